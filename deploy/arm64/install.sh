#!/bin/sh
# Install edge into /opt/edge on an arm64 Debian bookworm system: the one set of install steps
# shared by Dockerfile.arm64 (RUN) and deploy/arm64/check.sh (inside the emulated rootfs).
#
#   EDGE_WHEELS=DIR  install only from the wheel folder DIR (offline); unset: from PyPI
#   EDGE_HOME        the project folder (default /opt/edge); the venv goes to $EDGE_HOME/venv
#
# Creates the system user "edge" (no login, home /var/lib/edge) that runs the appliance.
set -eu
EDGE_HOME=${EDGE_HOME:-/opt/edge}
REQ="$EDGE_HOME/deploy/arm64/requirements.txt"

[ -x "$EDGE_HOME/venv/bin/python" ] || python3 -m venv "$EDGE_HOME/venv"
PIP="$EDGE_HOME/venv/bin/python -m pip --disable-pip-version-check --no-cache-dir"
if [ -n "${EDGE_WHEELS:-}" ]; then
    SRC="--no-index --find-links $EDGE_WHEELS"
else
    SRC=""
fi
# --no-deps: requirements.txt is the complete, pinned set; nothing unpinned sneaks in
# shellcheck disable=SC2086
$PIP install -q $SRC --no-deps -r "$REQ"
# editable: bench/ and deploy/ stay next to the package (edge plates bench runs bench/plates.py)
$PIP install -q --no-deps --no-build-isolation -e "$EDGE_HOME"
ln -sf "$EDGE_HOME/venv/bin/edge" /usr/local/bin/edge

if ! id edge >/dev/null 2>&1; then
    useradd --system --user-group --home-dir /var/lib/edge --no-create-home --shell /usr/sbin/nologin edge
fi
mkdir -p /var/lib/edge /etc/edge
chown edge:edge /var/lib/edge
"$EDGE_HOME/venv/bin/python" - <<'PY'
import importlib
for mod in ("numpy", "cv2", "ai_edge_litert.interpreter", "onnxruntime", "openvino"):
    m = importlib.import_module(mod)
    print(f"  {mod:28} {getattr(m, '__version__', 'ok')}")
PY
