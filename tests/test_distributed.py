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


DARTS_TINY = [
    "--run.progress", "false", "--run.threads", "1", "--run.device", "cpu", "--data.limit", "128",
    "--data.augment", "none", "--supernet.options.channels", "4", "--supernet.options.layers", "1",
    "--differentiable.epochs", "2", "--differentiable.lr", "0.05", "--differentiable.arch_lr", "0.01",
    "--differentiable.channels_last", "false",
]  # fmt: skip


@pytest.mark.parametrize("architect, variant", [("a2m", "beta"), ("darts2", "pc")])
def test_ddp_differentiable_search_matches_one_process_at_the_same_global_batch(tmp_path, architect, variant):
    import supernet  # noqa: F401  (registers the supernet section)
    from genas.differentiable.cli import search_from_config
    from genas.config import load_config

    args = [*DARTS_TINY, "--differentiable.architect", architect, "--variants.use", variant,
            *(["--variants.options.pc.k", "2"] if variant == "pc" else [])]  # an option of a variant not in use is refused
    proc = torchrun(REPO / "tests" / "_ddp_darts_worker.py", tmp_path, *args, "--data.batch_size", "16",
                    "--run.root", tmp_path, "--run.name", "ddp")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"darts_rank{r}.pt", weights_only=False) for r in (0, 1))
    assert r0["steps"] == r1["steps"] == 4  # 128 images, 64 per rank, batches of 16
    for k in r0["arch"]:
        assert torch.equal(r0["arch"][k], r1["arch"][k]), k  # every rank holds the same alphas
    assert [row["arch"] for row in r0["history"]] == [row["arch"] for row in r1["history"]]
    assert [row["valid_loss"] for row in r0["history"]] == [row["valid_loss"] for row in r1["history"]]
    single = search_from_config(load_config("a2m_quickstart", [*args, "--data.batch_size", "32", "--run.root",
                                                               str(tmp_path), "--run.name", "one"]))  # fmt: skip
    assert len(single.train_loader) == 4
    for k, a in single.model.arch_values().items():
        torch.testing.assert_close(r0["arch"][k], a, rtol=0, atol=1e-5)
    assert single.model.arch_values()["alpha"].abs().max() > 1e-2  # moved far from the 1e-3 * randn init
    saved = torch.load(tmp_path / "ddp" / "checkpoints" / "last.pt", weights_only=False)
    assert all(torch.equal(saved["model"][f"arch.{k}"], r0["arch"][k]) for k in r0["arch"])  # rank 0 wrote it
    assert (tmp_path / "ddp" / "best_arch.json").is_file() and not (tmp_path / "ddp" / "rank1").exists()
