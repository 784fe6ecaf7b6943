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


BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


TINY_TRAIN = [
    "--run.progress", "false", "--run.checkpoint_every", "1",
    "--supernet.options.channels", "4", "--supernet.options.layers", "1",
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
    over = [*TINY_TRAIN, "--supernet.space", "darts", "--supernet.options.layers", "3", "--train.epochs", "1",
            "--run.root", str(root), "--run.name", "tiny-darts"]  # fmt: skip
    return train_from_config(load_config("quickstart", over)).path


def deepcopy_perturbed_losses(ctx, arch, sigmas, cumulative=True):
    """The reference procedure by hand, with the engine's noise tensors: deepcopy the subnet, add
    the noise, evaluate every validation batch; exact fp32 on CUDA.

    Returns:
        ``(subnet, [(supernet name, parameter)], noise dicts, mean loss per noise dict)``.
    """
    import copy

    import torch
    import torch.nn.functional as F

    from scorers.perturb import NoisePlan, exact_fp32, make_noise

    sub = ctx.subnet(arch)
    names = {id(p): n for n, p in ctx.supernet.named_parameters()}
    named = [(names[id(p)], p) for p in sub.parameters()]
    noise = make_noise({k: p.detach() for k, p in named}, NoisePlan(tuple(sigmas), cumulative=cumulative, seed=ctx.seed))
    n_images = sum(len(y) for _, y in ctx.valid_batches)
    losses = []
    with torch.no_grad(), exact_fp32():
        for nz in noise:
            model = copy.deepcopy(sub)
            for p_copy, (key, _) in zip(model.parameters(), named):
                p_copy.add_(nz[key])
            losses.append(sum(F.cross_entropy(model(x), y, reduction="sum").item() for x, y in ctx.valid_batches) / n_images)
    return sub, named, noise, losses


@pytest.fixture(scope="module")
def ctx(tiny_run):
    """A scoring context on ``tiny_run``: 2 BN batches, 2 validation batches of 32."""
    from scorers import ScoringContext

    return ScoringContext.from_run(str(tiny_run), bn_batches=2, bn_batch_size=32, eval_batches=2, eval_batch_size=32, seed=0)


@pytest.fixture(scope="module")
def archs(ctx):
    """The benchmark's best cell and three seeded samples."""
    import numpy as np

    rng = np.random.default_rng(0)
    return [ctx.space.parse(BEST)] + [ctx.space.sample(rng) for _ in range(3)]
