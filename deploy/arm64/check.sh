#!/bin/bash
# Prove the arm64 image on an x86 machine: the steps of Dockerfile.arm64, run in a Debian
# bookworm arm64 rootfs (debootstrap) under qemu-user-static, then inside it, as user edge, with
# no network and the model cache mounted read-only: the demo, a backend smoke test, the plate
# benchmark and the image's CMD (edge run). Needs root. Slow (an hour or two): not for CI.
#
# The image's models: Dockerfile.arm64's "models" stage runs on the build host, so here the host
# gathers them (the INT8 defaults built by edge convert: the host needs the [convert] extra), and
# the rootfs pulls them from that folder like the image's arm64 stage.
#
#   deploy/arm64/check.sh            (or: make arm64-check)
#
#   ARM64_CACHE   rootfs + wheels, reused between runs (default /work/arm64-cache)
#   EDGE_SHARED   the shared folder with models/ and data/ (default ../shared)
#   DEBIAN_MIRROR (default http://deb.debian.org/debian)
#   PLATES_DIR    OpenALPR folder for the plate benchmark (default $EDGE_SHARED/data/openalpr/eu)
#   PLATES_LIMIT  its first N labelled images (default 12; 0 = all, hours emulated)
#   RUN_SECONDS   how long edge run may take to its first track event (default 1800)
#   PY            the host's Python with edge's [convert] extra (default python3)
#
# Emulated speed is not device speed: the timings printed prove that it runs, nothing more.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${ARM64_CACHE:-/work/arm64-cache}
SHARED=$(cd "${EDGE_SHARED:-$REPO/../shared}" && pwd)
MIRROR_URL=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PLATES_DIR=${PLATES_DIR:-$SHARED/data/openalpr/eu}
ROOT=$CACHE/rootfs
WHEELS=$CACHE/wheels
HERE=$REPO/deploy/arm64
PY=${PY:-python3}
# the models the image carries (same list as Dockerfile.arm64's EDGE_MODELS)
MODELS=$(sed -n 's/^ARG EDGE_MODELS="\(.*\)"$/\1/p' "$REPO/Dockerfile.arm64")
NICE="nice -n 10"

step() { printf '\n== %s  [%s]\n' "$*" "$(date -u +%H:%M:%S)"; }
timed() { local t0=$SECONDS; "$@"; echo "   ($((SECONDS - t0)) s)"; }

[ "$(id -u)" = 0 ] || { echo "check.sh: needs root (debootstrap, chroot, mounts)" >&2; exit 1; }
[ -n "$MODELS" ] || { echo "check.sh: no ARG EDGE_MODELS=\"...\" line in Dockerfile.arm64" >&2; exit 1; }
mkdir -p "$CACHE"

step "host: qemu-user-static, binfmt, debootstrap"
if ! command -v debootstrap >/dev/null || ! [ -e /usr/bin/qemu-aarch64-static ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user-static binfmt-support debootstrap >/dev/null
fi
mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
update-binfmts --enable qemu-aarch64 2>/dev/null || true
grep -q enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 || { echo "qemu-aarch64 binfmt not enabled" >&2; exit 1; }

MOUNTS=()
bind() {  # bind SRC DEST [ro]
    mkdir -p "$ROOT$2"
    mountpoint -q "$ROOT$2" || mount --bind "$1" "$ROOT$2"
    [ "${3:-}" != ro ] || mount -o remount,bind,ro "$ROOT$2"
    MOUNTS+=("$ROOT$2")
}
cleanup() {
    local i
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount -l "${MOUNTS[i]}" 2>/dev/null || true; done
}
trap cleanup EXIT
# a run killed with SIGKILL leaves its mounts (the read-only model cache among them): drop them first
if [ -d "$ROOT" ]; then
    awk -v r="$ROOT/" 'index($2, r) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do umount -l "$m"; done
fi
in_root() { $NICE chroot "$ROOT" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin HOME=/root "$@"; }

step "rootfs: Debian bookworm arm64 (debootstrap, once) in $ROOT"
if [ ! -f "$ROOT/.edge-debootstrap-ok" ]; then
    rm -rf "$ROOT"
    timed $NICE debootstrap --arch=arm64 --variant=minbase bookworm "$ROOT" "$MIRROR_URL" >"$CACHE/debootstrap.log"
    touch "$ROOT/.edge-debootstrap-ok"
fi
in_root uname -m
bind /proc /proc
bind /sys /sys
bind /dev /dev
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"

APT=$(grep -v '^#' "$HERE/apt-packages.txt" | xargs)
step "rootfs: apt-get install python3 python3-venv $APT (once per package list)"
stamp="$ROOT/.edge-apt-$(echo "$APT" | md5sum | cut -c1-8)"
if [ ! -f "$stamp" ]; then
    timed in_root sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends python3 python3-venv $APT >/dev/null && apt-get clean"
    touch "$stamp"
fi
in_root python3 --version

step "wheels: aarch64 wheels of deploy/arm64/requirements.txt, downloaded on the host"
PLATFORMS=$(grep -v '^#' "$HERE/platforms.txt" | sed 's/^/--platform /' | xargs)
# shellcheck disable=SC2086
timed "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 $PLATFORMS \
    -r "$HERE/requirements.txt" -d "$WHEELS" 2>"$CACHE/pip-download.log" || { cat "$CACHE/pip-download.log"; exit 1; }
ls "$WHEELS" | sed 's/^/   /'

step "project: git-tracked files -> /opt/edge, install.sh (venv, wheels, editable edge, user edge)"
mkdir -p "$ROOT/opt/edge"
find "$ROOT/opt/edge" -mindepth 1 -maxdepth 1 ! -name venv ! -name model-cache -exec rm -rf {} +
(cd "$REPO" && git ls-files --cached --others --exclude-standard | while IFS= read -r f; do
    [ ! -f "$f" ] || cp --parents "$f" "$ROOT/opt/edge/"
done)
bind "$WHEELS" /wheels ro
timed in_root env EDGE_WHEELS=/wheels /opt/edge/deploy/arm64/install.sh

step "models (build host, as Dockerfile.arm64's models stage): edge models pull $MODELS"
# the INT8 defaults are built here by edge convert (NNCF): an INT8 IR is the same on every CPU
"$PY" -c "import nncf" 2>/dev/null || {
    echo "check.sh: the host needs the [convert] extra to build the INT8 defaults: pip install -c constraints.txt -e '.[convert]'" >&2
    exit 1
}
# shellcheck disable=SC2086
(cd "$REPO" && timed env EDGE_DATA_DIR="$SHARED/data" $NICE "$PY" -m edge models pull $MODELS \
    --mirror "$SHARED/models" --cache-dir "$CACHE/image-models")

step "models (arm64 stage): edge models pull $MODELS from that folder (sha256 / build report checked), read-only"
bind "$CACHE/image-models" /image-models ro
# shellcheck disable=SC2086
timed in_root edge models pull $MODELS --mirror /image-models --cache-dir /opt/edge/model-cache
in_root chmod -R a+rX,go-w /opt/edge/model-cache
bind "$ROOT/opt/edge/model-cache" /opt/edge/model-cache ro  # from here on even root cannot write it
umount -l "$ROOT/image-models"  # the runs below see no mirror at all
in_root sh -c 'cd /opt/edge/model-cache && for d in */; do printf "   %-58s %s\n" "${d%/}" "$(cat "$d"report.json >/dev/null 2>&1 && echo "built (report.json)" || echo "sha256 = manifest")"; done'

# the demo's footage: the lot clip and the photo its gate scene is made from (edge/demo.py GATE_PHOTO)
mkdir -p "$ROOT/usr/share/edge/data/videos" "$ROOT/usr/share/edge/data/openalpr/eu" "$ROOT/etc/edge"
cp -u "$SHARED/data/videos/car-detection.mp4" "$ROOT/usr/share/edge/data/videos/"
cp -u "$SHARED/data/openalpr/eu/eu10.jpg" "$ROOT/usr/share/edge/data/openalpr/eu/"
cp "$HERE/edge.yaml" "$ROOT/etc/edge/edge.yaml"
# the same config with the clip unpaced: emulated inference (~10 s a frame) cannot keep up with a
# real-time file, so a car would leave before its track is confirmed
sed 's/^\(    *\)loop: true$/&\n\1realtime: false/' "$HERE/edge.yaml" >"$ROOT/etc/edge/edge-emulated.yaml"
grep -q 'realtime: false' "$ROOT/etc/edge/edge-emulated.yaml" || { echo "check.sh: no 'loop: true' in deploy/arm64/edge.yaml" >&2; exit 1; }

# the unprivileged user, the image's environment, no network (unshare: an empty netns); every
# program execs the next, so a background run's $! is edge itself
AS_EDGE=(unshare --net chroot --userspec=edge:edge "$ROOT" /usr/bin/env -i -C /var/lib/edge
    PATH=/usr/local/bin:/usr/bin:/bin HOME=/var/lib/edge EDGE_MODEL_CACHE=/opt/edge/model-cache
    EDGE_SHARED=/usr/share/edge PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1)
as_edge() { $NICE "${AS_EDGE[@]}" "$@"; }
no_fallback() {  # LOG: a default that had to be fetched, built or replaced at run time fails the check
    if grep -E "running its source model|not in the model cache|cannot download|building .* first pull" "$1"; then
        echo "check.sh: a model was not served from the image's cache (above)" >&2
        exit 1
    fi
}
cd /  # chroot keeps the cwd outside; the commands below do not use it

step "inside arm64: uname -m = $(in_root uname -m), user = $(as_edge id -un), network: $(as_edge python3 -c 'import socket; print(socket.if_nameindex())')"
step "inside arm64: edge demo --fast (the lot, then the gate scene with its plate)"
timed as_edge edge demo --fast 2>&1 | tee "$CACHE/demo.log"
no_fallback "$CACHE/demo.log"
grep -q "through vehicle-detection-0200-openvino-int8" "$CACHE/demo.log" || { echo "check.sh: the demo did not run the INT8 default" >&2; exit 1; }

step "inside arm64: every model on every installed backend it supports (one inference each)"
timed as_edge /opt/edge/venv/bin/python /opt/edge/deploy/arm64/smoke.py $MODELS 2>&1 | tee "$CACHE/smoke.log"
no_fallback "$CACHE/smoke.log"

# PLATES_LIMIT: the first N labelled images of the folder (sorted by label file, as the bench reads
# them), copied as an OpenALPR-format folder; 0 = the whole folder. Under emulation each image takes
# seconds to tens of seconds, so the default keeps the check under an hour.
PLATES_LIMIT=${PLATES_LIMIT:-12}
if [ "$PLATES_LIMIT" = 0 ]; then
    step "inside arm64: edge plates bench $(basename "$PLATES_DIR") (all images)"
    bind "$PLATES_DIR" /data/plates ro
else
    step "inside arm64: edge plates bench $(basename "$PLATES_DIR") (first $PLATES_LIMIT labelled images)"
    rm -rf "$ROOT/data/plates" && mkdir -p "$ROOT/data/plates"
    find "$PLATES_DIR" -maxdepth 1 -name '*.txt' | LC_ALL=C sort | head -n "$PLATES_LIMIT" | while IFS= read -r txt; do
        cp "$txt" "$PLATES_DIR/$(cut -f1 "$txt")" "$ROOT/data/plates/"
    done
fi
timed as_edge edge plates bench /data/plates 2>&1 | tee "$CACHE/plates.log"
no_fallback "$CACHE/plates.log"

# RUN_SECONDS: how long the image's CMD may take to its first event (model loads are slow emulated)
step "inside arm64: edge run --config /etc/edge/edge-emulated.yaml (the image's CMD and config, clip unpaced) until its first track event"
$NICE "${AS_EDGE[@]}" edge run --config /etc/edge/edge-emulated.yaml >"$CACHE/run.log" 2>&1 &
run_pid=$!
t0=$SECONDS
until grep -q '"type": *"track"' "$CACHE/run.log" || ! kill -0 "$run_pid" 2>/dev/null \
        || ((SECONDS - t0 > ${RUN_SECONDS:-1800})); do
    sleep 5
done
kill -TERM "$run_pid" 2>/dev/null || true
wait "$run_pid" || true
grep -v '^{' "$CACHE/run.log" | sed 's/^/   /'
grep -m 3 '"type": *"track"' "$CACHE/run.log" | cut -c1-200 | sed 's/^/   /'
no_fallback "$CACHE/run.log"
grep -q '"type": *"track"' "$CACHE/run.log" || { echo "check.sh: edge run gave no track event" >&2; exit 1; }
echo "   first track event after $((SECONDS - t0)) s (emulated)"

step "inside arm64: edge config check deploy/profiles/*.yaml"
for f in "$ROOT"/opt/edge/deploy/profiles/*.yaml; do
    as_edge edge config check "/opt/edge/deploy/profiles/$(basename "$f")"
done
step "arm64 check passed"
