"""Write constraints.txt: the exact versions pip resolves today for ``.[test]`` (``make lock``).

pip's own resolver (``pip install --dry-run --report``) rather than uv's: uv ignores upper bounds of
Requires-Python and pinned backports.strenum 1.3.1 (Python <3.11 only), which pip then cannot install.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

HEADER = """\
# Exact versions `make test`, .ci/run and CI install (pip install -c constraints.txt -e ".[test]"): one known-good
# set for Python {py} on Linux x86_64. Regenerate with `make lock` (.ci/lock.py: pip's resolver on pyproject.toml) and
# run `make test` before committing it; `make test-latest` runs the suite on the newest versions pyproject allows.
# deploy/arm64/requirements.txt is the aarch64 image's own pinned set.
"""


def main() -> int:
    """Resolve ``.[test]`` with pip, ignoring what is installed, and write every pin."""
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        print("resolving .[test] with pip (about a minute)...", file=sys.stderr)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
             "--report", str(report), "-e", ".[test]"],
            cwd=root, check=True,
        )
        installs = json.loads(report.read_text())["install"]
    pins = sorted(
        f"{i['metadata']['name'].lower().replace('_', '-')}=={i['metadata']['version']}"
        for i in installs if not i.get("is_direct")  # the project itself is the only direct one
    )
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    (root / "constraints.txt").write_text(HEADER.format(py=py) + "\n".join(pins) + "\n")
    print(f"constraints.txt: {len(pins)} pins for Python {py}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
