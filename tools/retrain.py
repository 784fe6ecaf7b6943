#!/usr/bin/env python
"""Train a found architecture as a standalone network.  See ``export/retrain_cli.py`` or ``--help``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without install

from genas.export.retrain_cli import main  # noqa: E402
from genas.cli import run_cli  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_cli(main))
