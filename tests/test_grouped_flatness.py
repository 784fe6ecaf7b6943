"""The ``grouped`` flatness engine: K perturbed copies and several candidates as convolution groups.

The answer is the hand-written reference of ``tests/conftest.py`` (deepcopy the subnet, add the
noise, evaluate), and the ``loop`` engine; exact fp32 on CPU, to 1e-5.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genas.errors import ConfigError
from scorers import ScoringContext, create_scorer
from scorers.grouped import Candidate, GroupedNetwork, grouped_loss_sums
from tests.conftest import deepcopy_perturbed_losses


def test_grouped_equals_the_deepcopy_reference(ctx, archs):
    """One candidate, its 3 perturbed copies in one forward: the reference losses, and the same F."""
    arch = archs[0]
    grouped = create_scorer("flatness", batching="grouped")
    manual = deepcopy_perturbed_losses(ctx, arch, grouped.sigmas)[3]
    np.testing.assert_allclose(grouped.losses(arch, ctx), manual, atol=1e-5, rtol=0)
    loop = create_scorer("flatness", batching="loop")
    assert grouped.score([arch], ctx)[0] == pytest.approx(loop.score([arch], ctx)[0], rel=1e-3)


@pytest.mark.parametrize("mode,draws", [("paper", 2), ("reference", 1)])
def test_several_candidates_in_one_forward(ctx, archs, mode, draws):
    """Four NB201 candidates (different ops on each edge) x K copies in one network: each candidate's
    losses are those of the loop engine, per image or as per-batch means."""
    many = create_scorer("flatness", mode=mode, draws=draws, batching="grouped", candidates=4)
    loop = create_scorer("flatness", mode=mode, draws=draws, batching="loop")
    expected = [loop.losses(a, ctx) for a in archs]
    got = many.grouped_losses(archs, ctx)
    np.testing.assert_allclose(np.array(got), np.array(expected), atol=1e-5, rtol=0)
    one_by_one = create_scorer("flatness", mode=mode, draws=draws, batching="grouped").score(archs, ctx)
    np.testing.assert_allclose(many.score(archs, ctx), one_by_one, rtol=1e-3)


def test_darts_candidates_with_affine_bn_and_factorized_reduce(tiny_darts_run):
    """DARTS: affine BN, pooling BN, FactorizedReduce and the cell's node concatenation, 3 candidates at once."""
    dctx = ScoringContext.from_run(str(tiny_darts_run), bn_batches=2, bn_batch_size=32, eval_batches=2, eval_batch_size=32)
    rng = np.random.default_rng(1)
    darchs = [dctx.space.sample(rng) for _ in range(3)]
    loop = create_scorer("flatness", batching="loop")
    expected = np.array([loop.losses(a, dctx) for a in darchs])
    got = np.array(create_scorer("flatness", batching="grouped", candidates=3).grouped_losses(darchs, dctx))
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_bf16_reports_its_error_and_is_not_exact(ctx, archs):
    """bf16 autocast moves the losses (it is an option, not the default); the error against fp32 is small."""
    exact = create_scorer("flatness", batching="grouped").losses(archs[1], ctx)
    bf16 = create_scorer("flatness", batching="grouped", bf16=True).losses(archs[1], ctx)
    err = np.abs(bf16 - exact).max()
    assert 0 < err < 0.05 * np.abs(exact).max()


def test_grouped_network_shapes_and_the_clean_weights_stay(ctx, archs):
    sub = ctx.subnet(archs[0])
    params = list(sub.parameters())
    before = [p.detach().clone() for p in params]
    values = [[p.detach() + 0.01 * k for p in params] for k in range(3)]
    net = GroupedNetwork([Candidate.of(sub, params, values)])
    x, y = ctx.valid_batches[0]
    assert net(x).shape == (len(y), 3, 10)
    sums = grouped_loss_sums([Candidate.of(sub, params, values)], ctx.valid_batches)
    assert sums.shape == (3,) and sums.dtype == torch.float64
    assert all(torch.equal(p, b) for p, b in zip(params, before))


def test_grouped_options_are_checked():
    with pytest.raises(ConfigError, match="apply to batching 'grouped', not 'loop'"):
        create_scorer("flatness", batching="loop", candidates=2)
    with pytest.raises(ConfigError, match="'batching' parameter of flatness must be one of \\{'auto', 'grouped'"):
        create_scorer("flatness", batching="groups")
    with pytest.raises(ValueError, match="runs NB201 or DARTS subnets"):
        GroupedNetwork([Candidate.of(torch.nn.Linear(2, 2), [], [[]])])
