"""Install the dense-task test dependencies (Detectron2, MMSegmentation) from prebuilt wheels, if there are any.

Neither library has a wheel for this Python / torch on the registries, so CI installs the ones in
``../shared/wheels`` (or ``$GENAS_WHEELS``) with the pins of setup.cfg's ``detectron2`` and ``mmseg``
extras, keeping the installed torch (a constraints file pins it). Without the wheels it says so in
one line and exits 0: tests/test_export_detectron2.py and tests/test_export_mmseg.py then skip.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WHEELS = {"detectron2": ("detectron2-0.6-cp311-cp311-linux_x86_64.whl", "detectron2"),
          "mmseg": ("mmcv-2.1.0-cp311-cp311-linux_x86_64.whl", "mmseg")}  # fmt: skip


def main() -> int:
    wheels = Path(os.environ.get("GENAS_WHEELS") or REPO.parent / "shared" / "wheels")
    found = {name: wheels / whl for name, (whl, _) in WHEELS.items() if (wheels / whl).is_file()}
    if not found:
        print(f"install_dense: no wheels in {wheels} (set GENAS_WHEELS); the Detectron2 / MMSeg tests will skip")
        return 0
    try:
        pins = [f"torch=={version('torch')}", f"torchvision=={version('torchvision')}"]
    except PackageNotFoundError:
        print("install_dense: torch is not installed; install genas first (pip install -e '.[test]')")
        return 1
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(pins) + "\n")
    extras = ",".join(found)
    cmd = [sys.executable, "-m", "pip", "install", "-c", f.name, "-e", f"{REPO}[{extras}]", *map(str, found.values())]
    missing = sorted(set(WHEELS) - set(found))
    print(f"install_dense: {' '.join(cmd[3:])}" + (f" (no wheel for {', '.join(missing)})" if missing else ""), flush=True)
    try:
        return subprocess.run(cmd).returncode
    finally:
        os.unlink(f.name)


if __name__ == "__main__":
    sys.exit(main())
