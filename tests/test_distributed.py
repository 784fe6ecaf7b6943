"""DDP training with 2 CPU processes (gloo): identical weights on every rank, sharded data."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO, TINY_TRAIN

pytestmark = pytest.mark.distributed


def torchrun(script, *args, nproc=2):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_port", "0",
           "--rdzv-backend", "c10d", "--rdzv-endpoint", "localhost:0", str(script), *map(str, args)]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def test_ddp_ranks_end_with_identical_weights(tmp_path):
    proc = torchrun(REPO / "tests" / "_ddp_train_worker.py", tmp_path, *TINY_TRAIN,
                    "--run.root", tmp_path, "--run.name", "ddp", "--run.device", "cpu")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    for k in r0["model"]:
        assert torch.equal(r0["model"][k], r1["model"][k]), k
    # each rank takes half of the 200 training images (sharded): 3 full batches of 32
    assert r0["steps"] == r1["steps"] == 100 // 32 and r0["samples"] == 3 * 32
    saved = torch.load(tmp_path / "ddp" / "checkpoints" / "last.pt", weights_only=False)["model"]
    assert all(torch.equal(saved[k], r0["model"][k]) for k in saved)
