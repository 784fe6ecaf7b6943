"""Shared fixtures: tiny configs, the optional shared data files, a tiny trained run."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SHARED = REPO.parent / "shared" / "data"


def shared_file(env: str, default: Path) -> Path | None:
    """A data file named by ``env`` (or the shared default), or None when absent."""
    path = Path(os.environ.get(env, default))
    return path if path.is_file() else None


@pytest.fixture(scope="session")
def nb201_table_path() -> Path:
    path = shared_file("GENAS_NB201_TABLE", SHARED / "nb201" / "nb201_accuracy.csv")
    if path is None:
        pytest.skip("NAS-Bench-201 table not found (set GENAS_NB201_TABLE)")
    return path


TINY_TRAIN = [
    "--run.progress", "false", "--run.checkpoint_every", "1",
    "--supernet.channels", "4", "--supernet.layers", "1",
    "--train.epochs", "2", "--data.batch_size", "32", "--data.limit", "200",
]  # fmt: skip


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """An NB201 supernet trained for 2 short epochs on digits (shared by scorer and search tests)."""
    from genas.config import load_config
    from supernet.cli import train_from_config

    root = tmp_path_factory.mktemp("runs")
    cfg = load_config("quickstart", [*TINY_TRAIN, "--run.root", str(root), "--run.name", "tiny"])
    return train_from_config(cfg).path


@pytest.fixture(scope="session")
def tiny_darts_run(tmp_path_factory) -> Path:
    """A DARTS supernet (3 cells, C=4) trained for a few steps on digits."""
    from genas.config import load_config
    from supernet.cli import train_from_config

    root = tmp_path_factory.mktemp("runs")
    over = [*TINY_TRAIN, "--supernet.space", "darts", "--supernet.layers", "3", "--train.epochs", "1",
            "--run.root", str(root), "--run.name", "tiny-darts"]  # fmt: skip
    return train_from_config(load_config("quickstart", over)).path
