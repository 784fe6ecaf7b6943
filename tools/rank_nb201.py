#!/usr/bin/env python
"""Kendall tau / Spearman / top-k precision of scorers against NAS-Bench-201.  See ``--help``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without install

from genas.analysis.rank_cli import main  # noqa: E402
from genas.cli import run_cli  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_cli(main))
