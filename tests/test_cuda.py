"""CUDA code paths: training with bf16 and channels_last, scoring, batched flatness, search.

Skipped where no GPU is present (CI); run on a GPU machine with ``pytest tests/test_cuda.py``.
``GENAS_TEST_DEVICE=cpu`` runs the same checks on the CPU (to try the tests themselves).
"""

from __future__ import annotations

import json
import math
import os
import warnings

import numpy as np
import pytest
import torch

from genas.config import load_config
from genas.runs import Run
from scorers import ScoringContext, create_scorer
from scorers.perturb import perturbed_losses
from supernet.cli import train_from_config
from tests.conftest import BEST, TINY_TRAIN, deepcopy_perturbed_losses

DEVICE = os.environ.get("GENAS_TEST_DEVICE", "cuda")
pytestmark = pytest.mark.skipif(DEVICE == "cuda" and not torch.cuda.is_available(), reason="needs a CUDA GPU")



@pytest.fixture(scope="module")
def cuda_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cuda-runs")
    over = [*TINY_TRAIN, "--supernet.options.channels", "8", "--run.device", DEVICE, "--run.root", str(root), "--run.name", "c"]
    return train_from_config(load_config("quickstart", over)).path


@pytest.mark.parametrize("amp,channels_last", [("none", False), ("bf16", True)])
def test_training_on_cuda(tmp_path, amp, channels_last):
    over = [*TINY_TRAIN, "--run.device", DEVICE, "--train.amp", amp, "--train.channels_last", str(channels_last).lower(),
            "--run.root", str(tmp_path), "--run.name", "r"]  # fmt: skip
    run = train_from_config(load_config("quickstart", over))
    state = Run(run.path).load("last")  # loads onto the CPU
    assert all(t.device.type == "cpu" and torch.isfinite(t).all() for t in state["model"].values() if t.is_floating_point())
    first, last = state["history"][0]["train_loss"], state["history"][-1]["train_loss"]
    assert math.isfinite(last) and last < first
    env = json.loads((run.path / "env.json").read_text())
    assert env["device"].startswith(DEVICE) and (env["cuda"] is not None) == (DEVICE == "cuda")


def test_cuda_and_cpu_checkpoints_score_alike(cuda_run):
    """A run trained on the GPU scores on the CPU and on the GPU with the same accuracy."""
    kw = dict(bn_batches=2, bn_batch_size=32, eval_batches=2, eval_batch_size=32, seed=0)
    gpu = ScoringContext.from_run(str(cuda_run), device=DEVICE, **kw)
    cpu = ScoringContext.from_run(str(cuda_run), device="cpu", **kw)
    archs = [gpu.space.parse(BEST)] + [gpu.space.sample(np.random.default_rng(i)) for i in range(3)]
    for name, tol in (("loss", 2e-3), ("angle", 1e-4), ("accuracy", 1 / 32)):  # accuracy: 64 images, 2 flips
        a, b = create_scorer(name).score(archs, gpu), create_scorer(name).score(archs, cpu)
        assert np.allclose(a, b, atol=tol), (name, a, b)


def test_batched_flatness_equals_the_loop_on_cuda(cuda_run):
    ctx = ScoringContext.from_run(str(cuda_run), device=DEVICE, bn_batches=2, bn_batch_size=32, eval_batches=2,
                                  eval_batch_size=32, seed=0)  # fmt: skip
    arch = ctx.space.parse(BEST)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # vmap may fall back to loop (BN under vmap on CUDA, torch 2.11)
        got = {b: create_scorer("flatness", batching=b).losses(arch, ctx) for b in ("vmap", "loop", "threads")}
    assert np.allclose(got["vmap"], got["loop"], atol=1e-5) and np.allclose(got["threads"], got["loop"], atol=1e-5), got
    # and both equal a deepcopy + perturb + evaluate loop with the same noise tensors
    sub, named, noise, manual = deepcopy_perturbed_losses(ctx, arch, (2e-3, 1e-2, 2e-2))
    assert np.allclose(got["loop"], manual, atol=1e-5), (got["loop"], manual)
    joined = perturbed_losses(sub, named, noise, ctx.valid_batches, "loop", merge=True)
    assert np.allclose(joined, manual, atol=1e-5), (joined, manual)
    assert torch.backends.cudnn.allow_tf32  # the TF32 guard restores the global flag


def test_search_on_cuda(cuda_run, tmp_path):
    from evolution.cli import main as evolve_main

    out = tmp_path / "search"
    evolve_main(["--supernet", str(cuda_run), "--scorer", "angle+flatness", "--out", str(out), "--run.device", DEVICE,
                 "--search.options.population", "8", "--search.options.topk", "3", "--search.options.mutations", "3", "--search.options.crossovers", "3",
                 "--search.options.iterations", "2", "--score.bn_batches", "2", "--score.eval_batches", "2", "--run.progress", "false"])  # fmt: skip
    best = json.loads((out / "best_arch.json").read_text())
    assert math.isfinite(best["score"])
