#!/usr/bin/env python
"""Export a found network as ONNX, TorchScript or a genas network checkpoint.  See ``export/cli.py`` or ``--help``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without install

from genas.export.cli import main  # noqa: E402
from genas.cli import run_cli  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_cli(main))
