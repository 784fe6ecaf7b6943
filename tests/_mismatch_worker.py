"""Run under torchrun by test_multinode.py: rank 1 is started with another train.lr than rank 0."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from genas.cli import run_cli  # noqa: E402
from supernet.cli import main  # noqa: E402

if __name__ == "__main__":
    extra = ["--train.lr", "0.1"] if os.environ["RANK"] == "1" else []
    sys.exit(run_cli(main, [*sys.argv[1:], *extra]))
