#!/usr/bin/env python
"""Architecture-landscape study on the NAS-Bench-201 table (A2M paper).  See ``analysis/landscape/cli.py``.

    python tools/landscape.py neighbourhood --table nb201_accuracy.csv --dataset all --out runs/landscape
    python tools/landscape.py path --pairs paper --dataset all --out runs/landscape
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without install

from genas.cli import run_cli  # noqa: E402
from genas.analysis.landscape.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_cli(main))
