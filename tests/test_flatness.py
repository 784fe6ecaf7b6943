"""GeNAS flatness: eq. 4 by hand, noise plans, the perturbation engines and their options."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from genas.errors import ConfigError
from scorers import ScoringContext, create_scorer, flatness_from_losses
from scorers.perturb import NoisePlan, make_noise, perturbed_losses
from tests.conftest import deepcopy_perturbed_losses


def test_flatness_formula_by_hand():
    # sharpness 0.2/1 + 0.3/2 = 0.35, depth 1 * 0.5/1 -> F = 1 / 0.85
    assert flatness_from_losses([0.5, 0.7, 1.0], [1.0, 2.0, 4.0]) == pytest.approx(1 / 0.85)
    assert flatness_from_losses([0.5, 0.7, 1.0], [1.0, 2.0, 4.0], alpha=0.0) == pytest.approx(1 / 0.35)
    # |.| on differences: a loss that drops counts as sharpness too
    assert flatness_from_losses([0.5, 0.3], [1.0, 2.0], alpha=2.0) == pytest.approx(1 / (0.2 + 1.0))


def test_perturbed_losses_of_a_linear_model_by_hand():
    """CE of logits = (W + n) x with known noise tensors, computed independently."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2, bias=False).eval()
    x = torch.randn(5, 3)
    y = torch.tensor([0, 1, 1, 0, 1])
    named = [("w", model.weight)]
    plan = NoisePlan((0.1, 0.5), draws=2, seed=3)
    noise = make_noise({"w": model.weight.detach()}, plan)
    w0 = model.weight.detach().clone()
    expected = [F.cross_entropy(x @ (w0 + nz["w"]).T, y).item() for nz in noise]
    for batching in ("loop", "vmap", "threads"):
        got = perturbed_losses(model, named, noise, [(x[:2], y[:2]), (x[2:], y[2:])], batching)
        assert np.allclose(got, expected, atol=1e-6)
        assert torch.equal(model.weight, w0)  # the clean weights are back


def test_noise_plans_paper_and_reference():
    p = {"a": torch.zeros(1000)}
    paper = make_noise(p, NoisePlan((0.01, 0.1), seed=0))
    assert [round(float(n["a"].std()), 2) for n in paper] == [0.01, 0.1]
    ref = make_noise(p, NoisePlan((0.01, 0.03), cumulative=True, seed=0))
    step = ref[1]["a"] - ref[0]["a"]
    assert float(ref[0]["a"].std()) == pytest.approx(0.01, rel=0.1)
    assert float(step.std()) == pytest.approx(0.02, rel=0.1)  # level 2 adds N(0, (s2 - s1)^2)
    # noise of a parameter depends only on its name, not on the other parameters
    both = make_noise({"a": torch.zeros(1000), "b": torch.zeros(7)}, NoisePlan((0.01, 0.1), seed=0))
    assert all(torch.equal(x["a"], y["a"]) for x, y in zip(paper, both))


@pytest.mark.parametrize("mode", ["paper", "reference"])
def test_noise_scheme_is_an_option_of_its_own(ctx, archs, mode):
    """``noise`` selects the scheme in either mode; the losses are those of that scheme's noise plan."""
    arch = archs[0]
    f = create_scorer("flatness", mode=mode, noise="cumulative", batching="loop")
    g = create_scorer("flatness", mode=mode, noise="independent", batching="loop")
    assert (f.noise, g.noise) == ("cumulative", "independent")
    assert create_scorer("flatness", mode=mode).noise == "cumulative"  # the GeNAS code's, in both modes
    sub = ctx.subnet(arch)
    names = {id(p): n for n, p in ctx.supernet.named_parameters()}
    named = [(names[id(p)], p) for p in sub.parameters()]
    for scorer, cumulative in ((f, True), (g, False)):
        plan = NoisePlan(scorer.sigmas, 1, cumulative=cumulative, seed=ctx.seed)
        noise = make_noise({k: p.detach() for k, p in named}, plan)
        expected = perturbed_losses(sub, named, noise, ctx.valid_batches, "loop", per_batch_mean=mode == "reference")
        assert np.allclose(scorer.losses(arch, ctx), expected, atol=1e-6)
    assert not np.allclose(f.losses(arch, ctx), g.losses(arch, ctx))
    with pytest.raises(ConfigError, match="'noise' parameter of flatness must be one of"):
        create_scorer("flatness", noise="gaussian")


def test_effective_sigmas_of_the_cumulative_scheme():
    from scorers.flatness import PAPER_SIGMAS, effective_sigmas

    assert effective_sigmas(PAPER_SIGMAS, "independent") == PAPER_SIGMAS
    cum = effective_sigmas(PAPER_SIGMAS, "cumulative")  # sqrt(2e-3^2), sqrt(+8e-3^2), sqrt(+1e-2^2)
    assert cum == pytest.approx((2e-3, 68e-6**0.5, 168e-6**0.5)) and cum == pytest.approx((2e-3, 8.2e-3, 1.30e-2), abs=1e-4)


@pytest.mark.parametrize("noise", ["cumulative", "independent"])
def test_flatness_equals_the_sequential_reference_loop(ctx, archs, noise):
    """Batched (vmap) and loop engines agree with a deepcopy + perturb + evaluate loop (1e-5)."""
    arch = archs[0]
    f_vmap = create_scorer("flatness", batching="vmap", noise=noise)
    f_loop = create_scorer("flatness", batching="loop", noise=noise)
    f_all = create_scorer("flatness", active_only=False, noise=noise)
    f_threads = create_scorer("flatness", batching="threads", noise=noise)
    losses = [f.losses(arch, ctx) for f in (f_vmap, f_loop, f_all, f_threads)]
    manual = deepcopy_perturbed_losses(ctx, arch, f_loop.sigmas, cumulative=noise == "cumulative")[3]
    for got in losses:
        assert np.allclose(got, manual, atol=1e-5)
    F_value = f_loop.score([arch], ctx)[0]
    assert F_value == pytest.approx(flatness_from_losses(manual, f_loop.sigmas), rel=1e-5)
    assert F_value > 0


@pytest.mark.parametrize("per_batch_mean", [False, True])
def test_merged_batches_give_the_same_losses(ctx, archs, per_batch_mean):
    """Concatenating validation batches (the CUDA path) changes no loss, per image or per batch."""
    sub = ctx.subnet(archs[0])
    names = {id(p): n for n, p in ctx.supernet.named_parameters()}
    named = [(names[id(p)], p) for p in sub.parameters()]
    noise = make_noise({k: p.detach() for k, p in named}, NoisePlan((1e-2, 2e-2), seed=0))
    x, y = torch.cat([b[0] for b in ctx.valid_batches]), torch.cat([b[1] for b in ctx.valid_batches])
    uneven = [(x[:20], y[:20]), (x[20:], y[20:])]  # unequal sizes: per-batch means differ from per-image
    for engine in ("loop", "vmap", "threads"):
        apart = perturbed_losses(sub, named, noise, uneven, engine, per_batch_mean, merge=False)
        joined = perturbed_losses(sub, named, noise, uneven, engine, per_batch_mean, merge=True)
        assert np.allclose(apart, joined, atol=1e-6), engine
    mean_of_means = perturbed_losses(sub, named, noise, uneven, "loop", True, merge=True)
    per_image = perturbed_losses(sub, named, noise, uneven, "loop", False, merge=True)
    assert not np.allclose(mean_of_means, per_image, atol=1e-6)


def test_noise_cache_is_used_only_with_common_random_numbers(ctx, archs):
    params = {"a": torch.zeros(5), "b": torch.zeros(3)}
    cache: dict = {}
    first = make_noise(params, NoisePlan((1e-2, 2e-2), seed=0), cache=cache)
    assert len(cache) == 2
    again = make_noise(params, NoisePlan((1e-2, 2e-2), seed=0), cache=cache)
    assert all(x["a"] is y["a"] for x, y in zip(first, again))  # reused, not redrawn
    make_noise(params, NoisePlan((1e-2, 2e-2), seed=0, arch_key="arch"), cache=cache)
    assert len(cache) == 2  # per-architecture noise is never cached
    f = create_scorer("flatness")
    ctx.noise_cache.clear()
    f.losses(archs[0], ctx)
    assert ctx.noise_cache and all(key[0].arch_key == "" for key in ctx.noise_cache)


def test_flatness_options_change_what_they_should(ctx, archs):
    arch = archs[1]
    base = create_scorer("flatness").score([arch], ctx)[0]
    assert create_scorer("flatness", draws=3).score([arch], ctx)[0] != base
    crn_off = create_scorer("flatness", common_random_numbers=False)
    assert crn_off.score([arch], ctx)[0] != base
    ref = create_scorer("flatness", mode="reference")
    assert ref.sigmas == (1e-3, 3e-3, 6e-3) and ref.score([arch], ctx)[0] > 0
    with pytest.raises(ConfigError, match="one draw per sigma"):
        create_scorer("flatness", mode="reference", draws=2)
    other_seed = ScoringContext(ctx.supernet, train_batches=ctx.train_batches, valid_batches=ctx.valid_batches, seed=1)
    assert create_scorer("flatness").score([arch], other_seed)[0] != base


def test_threads_engine_folds_affine_bn_exactly(tiny_darts_run):
    """DARTS cells have affine BN after (separable) convs: the folded replicas give the same losses."""
    dctx = ScoringContext.from_run(str(tiny_darts_run), bn_batches=2, bn_batch_size=32, eval_batches=3, eval_batch_size=32)
    arch = dctx.space.sample(np.random.default_rng(1))
    threads = create_scorer("flatness", batching="threads").losses(arch, dctx)
    loop = create_scorer("flatness", batching="loop").losses(arch, dctx)
    assert np.allclose(threads, loop, atol=1e-5)
    from scorers.perturb import _FoldedReplica

    rep = _FoldedReplica(dctx.subnet(arch))
    n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in dctx.subnet(arch).modules())
    n_left = sum(isinstance(m, torch.nn.BatchNorm2d) for m in rep.module.modules())
    assert n_left < n_bn  # conv+BN pairs were folded (pool BNs, with no conv before them, stay)
