#!/usr/bin/env python
"""Differentiable architecture search (DARTS, DARTS 2nd order, A2M).  See ``differentiable/cli.py`` or ``--help``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without install

from genas.differentiable.cli import main  # noqa: E402
from genas.cli import run_cli  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_cli(main))
