"""DARTS variants against closed forms and against plain DARTS where they must reduce to it."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

import genas.differentiable  # noqa: F401  (registers the differentiable sections)
import supernet  # noqa: F401
from genas.differentiable import ArchStep, create_architect, create_mixed_supernet
from genas.differentiable.cli import main, search_from_config
from genas.differentiable.search import batch_stats_only
from genas.differentiable.variants import (
    VARIANTS, BetaDecay, NeighbourhoodAware, Variant, VariantSet, channel_shuffle, create_variants, register_variant,
)  # fmt: skip
from genas.cli import run_cli
from genas.config import load_config
from genas.errors import ConfigError, UnknownNameError
from tests.test_search_darts import TINY, alphas

STEPS = 3


def tiny(space="nb201", **kw):
    torch.manual_seed(0)
    opts = dict(num_classes=5, in_chans=3, channels=4, layers=1 if space == "nb201" else 3, seed=0)
    return create_mixed_supernet(space, **{**opts, **kw})


def batches(n=STEPS, seed=1, size=8):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, 3, 8, 8, generator=g), torch.randint(0, 5, (size,), generator=g)) for _ in range(n)]


def run_steps(variants, space="nb201", architect="darts", epochs=2, **arch_opts):
    """A few search steps (architecture then weights) on fixed batches; returns the model."""
    from genas.differentiable.config import DifferentiableConfig
    from genas.differentiable.search import DifferentiableSearch

    model = tiny(space)
    data = batches()
    cfg = DifferentiableConfig(epochs=epochs, lr=0.1)
    search = DifferentiableSearch(model, create_architect(architect, **arch_opts), data, data, data, cfg,
                                  variants=variants, seed=0)  # fmt: skip
    for epoch in range(epochs):
        search.variants.start_epoch(epoch, epochs)
        for b in data:
            search.search_step(b, b)
    return model


def same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return all(k in sb and torch.equal(sa[k], sb[k]) for k in sa)  # b may hold a variant's unused modules


def loss_of(model, batch):
    x, y = batch

    def loss(arch):
        with batch_stats_only(model):
            return F.cross_entropy(model(x, arch), y)

    return loss


# ---- beta-DARTS ---------------------------------------------------------------------------------
@pytest.mark.parametrize("space", ["nb201", "darts"])
def test_beta_adds_the_closed_form_gradient_of_the_logsumexp_term(space):
    model = tiny(space)
    v = BetaDecay(slope=0.5)
    v.setup(model)
    v.start_epoch(6, 50)  # lambda = 3
    loss = loss_of(model, batches(1)[0])
    arch = {k: a + torch.randn_like(a) for k, a in model.arch_values().items()}  # away from uniform
    darts = create_architect("darts")
    plain = darts.gradient(ArchStep(val_loss=loss, arch=arch))
    with_beta = darts.gradient(ArchStep(val_loss=v.val_loss(loss), arch=arch))
    for g in model.groups:  # d/da_e [lam * mean_e logsumexp(a_e)] = lam / E * softmax(a_e)
        expected = 3.0 / len(arch[g]) * F.softmax(arch[g], dim=-1)
        torch.testing.assert_close(with_beta[g] - plain[g], expected, rtol=0, atol=1e-6)
    v.start_epoch(0, 50)
    assert v.val_loss(loss) is loss  # lambda_0 = 0: the loss itself


def test_a2m_with_beta_has_the_term_in_all_four_gradients():
    g = torch.Generator().manual_seed(0)
    m = torch.randn(6, 6, generator=g, dtype=torch.float64)
    h = m @ m.T / 6 + torch.eye(6, dtype=torch.float64)

    def loss(arch):
        a = arch["alpha"].reshape(-1)
        return 0.5 * a @ h @ a

    v = BetaDecay(init=2.0, slope=0.0)
    v.start_epoch(0, 1)
    arch = {"alpha": torch.randn(2, 3, generator=g, dtype=torch.float64)}
    rho, eps = 0.1, 1e-3

    def grad(a):  # the full gradient at a point: quadratic part + lambda / E * softmax
        return (h @ a.reshape(-1)).reshape(2, 3) + 2.0 / 2 * F.softmax(a, dim=-1)

    a = arch["alpha"]
    g0 = grad(a)
    tilde = a + rho * g0
    g1 = grad(tilde)
    expected = g1 + rho * (grad(tilde + eps * g1) - grad(tilde - eps * g1)) / (2 * eps)
    got = create_architect("a2m", rho=rho, eps=eps).gradient(ArchStep(val_loss=v.val_loss(loss), arch=arch))
    torch.testing.assert_close(got["alpha"], expected, rtol=0, atol=1e-9)
    without = create_architect("a2m", rho=rho, eps=eps).gradient(ArchStep(val_loss=loss, arch=arch))
    assert (got["alpha"] - without["alpha"]).abs().max() > 1e-2


# ---- SDARTS-RS ----------------------------------------------------------------------------------
def test_sdarts_rs_perturbs_the_weight_step_only():
    from genas.differentiable.variants import SmoothRandom

    model = tiny()
    v = SmoothRandom()
    v.start_epoch(25, 50)
    assert v.eps == pytest.approx(0.03 + 0.27 * 0.5)
    weights = model.mixing_weights(model.arch_values())
    before = {k: a.clone() for k, a in model.arch_values().items()}
    noisy = v.weight_step_weights(weights, torch.Generator().manual_seed(0))["alpha"]
    assert torch.equal(model.arch_values()["alpha"], before["alpha"])  # the stored alphas never change
    assert ((noisy >= 0) & (noisy <= 1)).all() and torch.allclose(noisy.sum(-1), torch.ones(6))
    assert 0 < (noisy - weights["alpha"]).abs().max() <= 2 * v.eps
    # the architecture step is that of plain DARTS: same gradient, same alphas after it
    plain, rs = tiny(), tiny()
    from genas.differentiable.config import DifferentiableConfig
    from genas.differentiable.search import DifferentiableSearch

    data = batches(1)
    cfg = DifferentiableConfig(epochs=1)
    s_plain = DifferentiableSearch(plain, create_architect("a2m"), data, data, data, cfg, seed=0)
    s_rs = DifferentiableSearch(rs, create_architect("a2m"), data, data, data, cfg, variants=VariantSet([SmoothRandom()]),
                                seed=0)  # fmt: skip
    s_rs.variants.start_epoch(10, 20)
    s_plain.arch_step(data[0], data[0])
    s_rs.arch_step(data[0], data[0])
    assert torch.equal(plain.arch_values()["alpha"], rs.arch_values()["alpha"])
    s_plain.weight_step(data[0])
    s_rs.weight_step(data[0])
    assert torch.equal(plain.arch_values()["alpha"], rs.arch_values()["alpha"])
    assert not torch.equal(plain.net.classifier.weight, rs.net.classifier.weight)  # the weight step saw the noise


def test_sdarts_rs_and_second_order_are_refused():
    with pytest.raises(ConfigError, match="cannot be combined with 'darts2'"):
        create_variants(["sdarts-rs"]).check_architect("darts2")


# ---- PC-DARTS -----------------------------------------------------------------------------------
@pytest.mark.parametrize("space", ["nb201", "darts"])
def test_pc_with_k1_and_no_edge_normalisation_is_exactly_darts(space):
    plain = run_steps(VariantSet(), space)
    pc = run_steps(create_variants(["pc"], {"k": 1, "edge_norm": False}), space)
    assert same_state(plain, pc)


@pytest.mark.parametrize("space", ["nb201", "darts"])
def test_pc_with_k1_and_equal_betas_is_darts_with_each_node_the_mean_of_its_inputs(space):
    # softmax over a node's m incoming edges of equal betas is 1/m: DARTS with node sums divided by m
    pc, plain = tiny(space), tiny(space)
    create_variants(["pc"], {"k": 1}).setup(pc)
    for g in pc.groups:
        pc.arch[f"{g}_beta"].data.zero_()
    inputs = {g: {e: len(edges) for edges in nodes for e in edges} for g, nodes in plain.node_inputs().items()}
    inner = plain.edge_fn
    plain.edge_fn = lambda ops, x, w, edge: inner(ops, x, w, edge) / inputs[edge.group][edge.index]
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(pc(x), plain(x), rtol=0, atol=1e-6)


def test_pc_partial_channels_shuffle_and_strengths():
    x = torch.arange(8.0).reshape(1, 8, 1, 1)
    assert channel_shuffle(x, 4).flatten().tolist() == [0, 2, 4, 6, 1, 3, 5, 7]
    full, pc = tiny("darts", channels=8), tiny("darts", channels=8)
    create_variants(["pc"], {"k": 4}).setup(pc)
    conv = pc.search_cells()[0].edges[0]["sep_conv_3x3"]
    assert next(conv.parameters()).shape[1] == 1 and len(pc.weight_parameters()) == len(full.weight_parameters())
    assert sum(p.numel() for p in pc.weight_parameters()) < sum(p.numel() for p in full.weight_parameters()) / 3
    assert pc(torch.randn(2, 3, 16, 16)).shape == (2, 5)  # reduce edges pool the bypassed channels
    assert sorted(pc.arch) == ["normal", "normal_beta", "reduce", "reduce_beta"]
    # genotype strengths: softmax(alpha) * softmax(beta); a dominant beta picks the edge
    v = create_variants(["pc"])
    model = tiny("darts")
    v.setup(model)
    with torch.no_grad():
        model.arch["normal_beta"][[2, 3, 4]] = torch.tensor([5.0, -5.0, -5.0])  # node 3 inputs: edges 2, 3, 4
        model.arch["normal"][2, 1:] = torch.tensor([0, 0, 0, 3.0, 0, 0, 0])
        model.arch["normal"][3, 1:] = torch.tensor([0, 0, 0, 0, 4.0, 0, 0])
        model.arch["normal"][4, 1:] = torch.tensor([0, 0, 0, 0, 0, 4.0, 0])
    strengths = v.op_strengths(model.mixing_weights())
    arch = model.derive(strengths)
    assert arch.normal[2] != 0 and sum(1 for e in (2, 3, 4) if arch.normal[e]) == 2
    plain_arch = model.derive(model.mixing_weights())  # alphas alone keep edges 3 and 4
    assert plain_arch.normal[2] == 0


def test_pc_warmup_skips_architecture_steps():
    model = run_steps(create_variants(["pc"], {"k": 2, "warmup": 5}), epochs=2)
    ref = tiny()
    create_variants(["pc"], {"k": 2, "warmup": 5}).setup(ref)
    assert torch.equal(model.arch["alpha"], ref.arch["alpha"])


def test_pc_k_must_divide_the_channels():
    with pytest.raises(ConfigError, match="K = 3 must divide the channels of every search cell"):
        create_variants(["pc"], {"k": 3}).setup(tiny())


# ---- DARTS- -------------------------------------------------------------------------------------
@pytest.mark.parametrize("space", ["nb201", "darts"])
def test_darts_minus_with_beta_zero_is_exactly_darts(space):
    plain = run_steps(VariantSet(), space)
    minus = run_steps(create_variants(["darts-minus"], {"beta0": 0.0}), space)
    assert same_state(plain, minus)


def test_darts_minus_adds_the_decaying_skip_to_every_edge():
    model, plain = tiny(), tiny()
    v = create_variants(["darts-minus"])
    v.setup(model)
    v.start_epoch(5, 20)  # beta = 0.75
    x = torch.randn(2, 4, 8, 8)
    ops = model.search_cells()[0].edges[0]
    w = model.mixing_weights()
    from genas.differentiable.mixed import EdgeRef

    edge = EdgeRef("alpha", 0)
    torch.testing.assert_close(model.edge_fn(ops, x, w, edge), plain.edge_fn(ops, x, w, edge) + 0.75 * x)
    darts = tiny("darts")
    create_variants(["darts-minus"]).setup(darts)
    reduce_cells = sum(c.reduction for c in darts.search_cells())
    assert reduce_cells == 2 and len(darts.extra) == 2 * 8  # one auxiliary factorized reduce per stride-2 edge
    assert darts(torch.randn(2, 3, 8, 8)).shape == (2, 5)
    assert {id(p) for p in darts.extra.parameters()} <= {id(p) for p in darts.weight_parameters()}


# ---- NA-DARTS -----------------------------------------------------------------------------------
def test_na_with_size_zero_is_exactly_darts():
    plain = run_steps(VariantSet())
    na = run_steps(create_variants(["na"], {"size": 0}))
    assert same_state(plain, na)


def test_na_loss_is_the_mean_over_the_architecture_and_its_swapped_neighbours():
    model = tiny()
    v = NeighbourhoodAware(size=2, samples=3)
    v.generator = torch.Generator().manual_seed(0)
    v.setup(model)
    arch = {"alpha": torch.randn(6, 5, dtype=torch.float32)}
    loss = loss_of(model, batches(1)[0])
    wrapped = v.val_loss(loss)
    v.generator.manual_seed(0)
    draws = v.draw(arch)
    assert len(draws) == 3 and all(len(d) == 2 and len({e for _, e, _, _ in d}) == 2 for d in draws)
    expected = loss(arch)
    for swaps in draws:
        n = arch["alpha"].clone()
        for _, e, top, o in swaps:
            assert top == int(arch["alpha"][e].argmax()) and o != top
            n[e, top], n[e, o] = arch["alpha"][e, o], arch["alpha"][e, top]
        assert (n.argmax(-1) != arch["alpha"].argmax(-1)).sum() == 2  # a Hamming-2 neighbour of the argmax cell
        expected = expected + loss({"alpha": n})
    v.generator.manual_seed(0)
    torch.testing.assert_close(wrapped(arch), expected / 4, rtol=0, atol=1e-6)
    grad = create_architect("darts").gradient(ArchStep(val_loss=v.val_loss(loss), arch=arch))["alpha"]
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_na_draws_once_per_step_for_all_four_a2m_gradients():
    v = NeighbourhoodAware(size=1, samples=2)
    v.generator = torch.Generator().manual_seed(0)
    calls = []
    wrapped = v.val_loss(lambda arch: (calls.append(arch["alpha"].argmax(-1).tolist()), (arch["alpha"] ** 2).sum())[1])
    create_architect("a2m", rho=0.01).gradient(ArchStep(val_loss=wrapped, arch={"alpha": torch.randn(6, 5)}))
    assert len(calls) == 4 * 3  # four gradients, each the architecture and two neighbours
    assert all(calls[i] == calls[i % 3] for i in range(len(calls)))  # the same neighbours every time


# ---- the registry, the set, the CLI -------------------------------------------------------------
def test_registry_errors_and_canonical_order():
    with pytest.raises(UnknownNameError, match="Did you mean 'beta'"):
        create_variants(["betta"])
    with pytest.raises(ConfigError, match="given twice"):
        create_variants(["pc", "pc"])
    with pytest.raises(ConfigError, match="variant 'pc' has no option 'kk'; its options: k, edge_norm, warmup"):
        create_variants(["pc"], {"pc": {"kk": 2}})
    with pytest.raises(ConfigError, match="'k' parameter of variant pc must be an int"):
        create_variants(["pc"], {"pc": {"k": 0}})
    assert create_variants(["sdarts-rs", "beta", "pc"]).names == create_variants(["pc", "sdarts-rs", "beta"]).names


def test_a_variant_for_another_space_is_refused():
    @register_variant("test-darts-only", description="applies to the DARTS space only")
    class DartsOnly(Variant):
        spaces = ("darts",)

    try:
        with pytest.raises(ConfigError, match="variant 'test-darts-only' does not apply to search space 'nb201'"):
            create_variants(["test-darts-only"]).setup(tiny())
    finally:
        VARIANTS._entries.pop("test-darts-only")


def test_search_with_variants_end_to_end_and_resume_checks(tmp_path, capsys):
    cfg = load_config("a2m_quickstart", [*TINY, "--run.root", str(tmp_path), "--run.name", "v",
                                         "--variants.use", "beta,pc,darts-minus", "--variants.options.pc.k", "2"])  # fmt: skip
    search_from_config(cfg, max_epochs=2)
    assert sorted(alphas(tmp_path / "v")) == ["alpha", "alpha_beta"]
    code = run_cli(main, ["--resume", str(tmp_path / "v"), "--variant", "beta,pc"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "searched with variants ['beta', 'darts-minus', 'pc']" in err[0], err
    code = run_cli(main, ["--resume", str(tmp_path / "v"), "--variants.options.pc.k", "4"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "a resume must use the same options" in err[0], err
    assert run_cli(main, ["--resume", str(tmp_path / "v")]) == 0
    best = json.loads((tmp_path / "v" / "best_arch.json").read_text())
    assert best["variants"] == ["pc", "darts-minus", "beta"]
    assert best["variant_options"]["pc"] == {"k": 2, "edge_norm": True, "warmup": 0, "form": "pcdarts"}


@pytest.mark.parametrize("extra, needle", [
    (["--variant", "betta"], "unknown variant 'betta'. Did you mean 'beta'?"),
    (["--variant", "beta,beta"], "variant 'beta' is given twice"),
    (["--variant", "pc", "--variants.options.pc.k", "3"], "K = 3 must divide the channels of every search cell"),
    (["--variant", "sdarts-rs", "--architect", "darts2"], "variant 'sdarts-rs' cannot be combined with 'darts2'"),
    (["--variant", "pc", "--variants.options.pc.k", "0"], "The 'k' parameter of variant pc must be"),
    (["--variant", "pc", "--variants.options.pc.form", "asquaredm", "--variants.options.pc.edge_norm", "true"],
     "edge_norm true is not defined for form 'asquaredm'"),
    (["--variant", "pc", "--variants.options.pc.k", "2", "--variants.options.pc.warmup", "3"],
     "variant pc: warmup 3 leaves no architecture step in a search of differentiable.epochs 3"),
    (["--data.batch_size", "4096"], "batch size 4096 is larger than the"),
])  # fmt: skip
def test_bad_variant_input_is_one_line_and_writes_nothing(tmp_path, capsys, extra, needle):
    code = run_cli(main, [*TINY, "--run.root", str(tmp_path), *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: "), err
    assert needle in err[0], err[0]
    assert not any(tmp_path.iterdir())


def test_list_variants(capsys):
    assert run_cli(main, ["--list-variants"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("beta", "sdarts-rs", "pc", "darts-minus", "na"))
