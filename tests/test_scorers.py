"""Scorers: registry, plugins, known answers, combinations, errors (flatness: test_flatness.py)."""

from __future__ import annotations

import copy
import math
import sys
import textwrap
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from genas.errors import ConfigError, NotTrainedError, PluginError, UnknownNameError
from genas.spaces import NB201Arch
from scorers import (
    SCORERS,
    Needs,
    Scorer,
    ScoringContext,
    cached_scores,
    create_scorer,
    finalize_scores,
    list_scorers,
    load_plugin,
    register_scorer,
)
from scorers.angle import darts_paths, nb201_paths
from scorers.registry import origin_of
from tests.conftest import BEST, REPO

EMPTY = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


# ---- registry and plugins ----------------------------------------------------------------

def test_builtins_are_registered_with_direction_and_needs():
    assert {"accuracy", "loss", "angle", "flatness", "nb201"} <= set(list_scorers())
    assert SCORERS.get("angle").needs.init_weights and SCORERS.get("flatness").needs.data
    assert not SCORERS.get("nb201").needs.supernet


def test_unknown_scorer_suggests_and_says_how_to_register():
    with pytest.raises(UnknownNameError) as info:
        create_scorer("flatnes")
    msg = str(info.value)
    assert "Did you mean 'flatness'" in msg and "genas.scorers" in msg and "--plugin" in msg


@pytest.mark.parametrize("expr", ["angle++flatness", "2*", "angle flatness", "angle+", "*angle"])
def test_malformed_expressions(expr):
    with pytest.raises(ConfigError, match="malformed scorer expression"):
        create_scorer(expr)


@pytest.mark.parametrize("sigmas", [[0.02, 0.01], [0.01, 0.01], [], [-1e-3, 1e-3], "abc"])
def test_sigmas_must_increase(sigmas):
    with pytest.raises(ConfigError, match="strictly increasing"):
        create_scorer("flatness", sigmas=sigmas)


def test_unknown_option_is_rejected():
    with pytest.raises(ConfigError, match="option 'sigma' is not taken"):
        create_scorer("angle+flatness", sigma=[1e-3, 2e-3])
    with pytest.raises(ConfigError, match="scorer 'flatness' has no option 'gama'"):
        create_scorer("angle+flatness", **{"flatness.gama": 1})


def test_plugin_file_registers_and_scores(tmp_path, ctx, archs):
    plugin = tmp_path / "my_plugin.py"
    plugin.write_text(textwrap.dedent("""
        from scorers import Needs, register_scorer

        @register_scorer("test_num_convs", needs=Needs(supernet=False), overwrite=True)
        def num_convs(arch, ctx):
            "Number of conv edges."
            return sum("conv" in op for op in arch.ops)
    """))
    assert load_plugin(str(plugin)) == ["test_num_convs"]
    assert "test_num_convs" in list_scorers() and origin_of("test_num_convs") == f"plugin {plugin}"
    s = create_scorer("test_num_convs")
    assert s.score(archs[:1], ctx).tolist() == [5.0]
    combo = create_scorer("accuracy+0.5*test_num_convs")
    acc = create_scorer("accuracy").score(archs, ctx)
    convs = s.score(archs, ctx)
    assert np.allclose(combo.score(archs, ctx), acc + 0.5 * convs)


def test_plugin_errors_name_the_plugin(tmp_path):
    with pytest.raises(PluginError, match="plugin '.*nope.py' does not exist"):
        load_plugin(str(tmp_path / "nope.py"))
    bad = tmp_path / "bad_plugin.py"
    bad.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(PluginError, match=r"plugin '.*bad_plugin.py' raised on import: RuntimeError: boom"):
        load_plugin(str(bad))
    with pytest.raises(PluginError, match="no module 'no_such_genas_plugin'"):
        load_plugin("no_such_genas_plugin")


def test_a_scorer_class_without_score_is_refused_at_registration():
    class Empty(Scorer):
        pass

    with pytest.raises(PluginError, match=r"scorer 'test_empty' .*Empty\) must define score\(\) or score_one\(\)"):
        register_scorer("test_empty")(Empty)
    assert "test_empty" not in list_scorers()


def test_wrong_shape_and_nan_scores(ctx, archs):
    class Bad(Scorer):
        name = "bad"

        def score(self, a, c):
            return np.zeros((len(a), 2))

    with pytest.raises(PluginError, match=r"returned shape \(4, 2\) for 4 architectures"):
        finalize_scores(Bad(), archs, Bad().score(archs, ctx), "plugin x.py")

    class Nan(Scorer):
        name = "nan"

    with pytest.warns(RuntimeWarning, match="non-finite"):
        out = finalize_scores(Nan(), archs, [1.0, np.nan, np.inf, 2.0])
    assert out.tolist() == [1.0, -np.inf, -np.inf, 2.0]


def test_entry_point_plugin_is_discovered(tmp_path, monkeypatch, ctx, archs):
    """The example plugin of docs/writing_a_scorer.md, found through the genas.scorers entry point."""
    src = (REPO / "examples" / "scorer_plugin" / "genas_gradnorm.py").read_text()
    (tmp_path / "genas_gradnorm_ep.py").write_text(src.replace('"trained_grad_norm"', '"grad_norm_ep"'))
    dist = tmp_path / "genas_gradnorm_ep-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: genas-gradnorm-ep\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[genas.scorers]\ngrad_norm_ep = genas_gradnorm_ep\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(SCORERS, "_entry_points_loaded", False)
    scorer = create_scorer("grad_norm_ep", batches=1)  # no import, no --plugin: the entry point
    values = scorer.score(archs, ctx)
    assert values.shape == (4,) and np.all(values > 0)
    assert "grad_norm_ep" in list_scorers()
    sys.modules.pop("genas_gradnorm_ep", None)


def test_example_plugin_loads_from_file(ctx, archs):
    load_plugin(str(REPO / "examples" / "scorer_plugin" / "genas_gradnorm.py"))
    s = create_scorer("trained_grad_norm")
    assert np.all(s.score(archs, ctx) > 0) and s.batches == 1
    with pytest.raises(ConfigError, match="trained_grad_norm"):
        create_scorer("trained_grad_norm", batch=2)


# ---- contract: every registered scorer --------------------------------------------------

def _registered() -> list[str]:
    return list_scorers()  # the registry loads its built-in modules on this first lookup


#: options that keep the slow scorers small on the tiny supernet (the contract, not the figures, is tested)
CONTRACT_OPTIONS = {"na:accuracy": {"na.k": 2}}


@pytest.fixture(scope="module")
def tiny_table(tmp_path_factory, archs):
    """A NAS-Bench-201 table CSV holding only ``archs``, written by the test (no shared table needed)."""
    import csv

    path = tmp_path_factory.mktemp("table") / "nb201_accuracy.csv"
    cols = ["cifar10_test", "cifar100_test", "imagenet16_test", "cifar10_valid", "cifar10_test_12ep",
            "cifar10_valid_12ep", "cifar100_test_12ep", "cifar100_valid_12ep", "imagenet16_test_12ep",
            "imagenet16_valid_12ep"]  # fmt: skip
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["index", "arch", *cols])
        for i, a in enumerate(archs):
            w.writerow([i, str(a), *[f"{50 + 10 * i + j:.4f}" for j in range(len(cols))]])
    return path


@pytest.mark.parametrize("name", [*_registered(), "na:accuracy", "angle+flatness", "accuracy+0.5*synflow"])
def test_contract_shapes_and_determinism(name, tiny_run, archs, tiny_table, monkeypatch):
    """Every registered scorer (and each expression kind): one finite float per architecture, the same twice."""
    monkeypatch.setenv("GENAS_NB201_TABLE", str(tiny_table))
    opts = {k: v for k, v in CONTRACT_OPTIONS.get(name, {}).items() if k.split(".")[0] in name}
    import scorers.config  # noqa: F401  (the score section)
    import supernet.config  # noqa: F401
    from genas.config import load_config
    from genas.runs import Run

    budget = ["--score.bn_batches", "2", "--score.bn_batch_size", "32", "--score.eval_batches", "2",
              "--score.eval_batch_size", "32"]  # fmt: skip
    cfg = load_config(None, budget, base=Run(tiny_run).read_config())

    def run_once() -> np.ndarray:  # a fresh scorer in a fresh context, built as the tools build them
        scorer = create_scorer(name, **opts)
        ctx = ScoringContext.from_config(cfg.score, tiny_run, seed=0, scorers=[scorer], space="nb201", data=cfg.data,
                                         network=cfg.supernet)  # fmt: skip
        return ctx.score(scorer, archs)

    a, b = run_once(), run_once()
    assert a.shape == (len(archs),) and a.dtype == np.float64
    assert np.array_equal(a, b, equal_nan=True)
    assert np.isfinite(a[0]), f"{name} on the benchmark's best cell: {a[0]}"


def test_the_contract_covers_every_builtin():
    assert {"accuracy", "loss", "angle", "flatness", "nb201", "synflow", "naswot", "params", "flops"} <= set(_registered())


# ---- accuracy / loss ---------------------------------------------------------------------

def test_accuracy_recalibrates_bn_and_matches_a_manual_evaluation(ctx, archs):
    arch = archs[0]
    acc = create_scorer("accuracy").score([arch], ctx)[0]
    sub = copy.deepcopy(ctx.supernet.subnet(arch))
    for m in sub.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    sub.train()
    with torch.no_grad():
        for x, _ in ctx.train_batches:
            sub(x)
        sub.eval()
        correct = sum((sub(x).argmax(1) == y).sum().item() for x, y in ctx.valid_batches)
        loss = sum(F.cross_entropy(sub(x), y, reduction="sum").item() for x, y in ctx.valid_batches)
    n = sum(len(y) for _, y in ctx.valid_batches)
    assert acc == pytest.approx(correct / n)
    assert create_scorer("loss").score([arch], ctx)[0] == pytest.approx(-loss / n, rel=1e-5)


# ---- angle ---------------------------------------------------------------------------------

def _ctx_with_init(ctx, init):
    return ScoringContext(ctx.supernet, init_state=init, train_batches=ctx.train_batches, valid_batches=ctx.valid_batches)


def test_angle_of_identical_weights_is_zero_and_of_orthogonal_ones_is_half_pi(ctx, archs):
    net = ctx.supernet
    same = {k: v.clone() for k, v in net.state_dict().items()}
    assert np.allclose(create_scorer("angle").score(archs, _ctx_with_init(ctx, same)), 0.0, atol=1e-6)
    gen = torch.Generator().manual_seed(0)
    ortho = dict(same)
    for name, p in net.named_parameters():
        q = torch.randn(p.shape, generator=gen, dtype=torch.float64)
        pd = p.detach().double()
        ortho[name] = (q - (q * pd).sum() / (pd * pd).sum() * pd).float()
    # parameter-free stand-ins (avg-pool kernels) are identical at both ends, so use conv-only cells
    conv_only = [NB201Arch(("nor_conv_3x3",) * 6), NB201Arch(("nor_conv_1x1",) * 6)]
    values = create_scorer("angle").score(conv_only, _ctx_with_init(ctx, ortho))
    assert np.allclose(values, math.pi / 2, atol=1e-4)


def test_angle_is_zero_when_every_path_is_dropped(ctx):
    assert create_scorer("angle").score([EMPTY], ctx)[0] == 0.0


@pytest.mark.parametrize("include_fixed", [True, False])
def test_angle_matches_an_explicit_rlnas_vector_construction(ctx, archs, include_fixed):
    """Build both weight vectors as RLNAS does (concatenation per path per cell) and compare;
    ``include_fixed=False`` leaves the stem, fixed blocks and classifier out (cells only)."""
    net, init = ctx.supernet, ctx.init_state
    names = {id(m): n for n, m in net.named_modules()}

    def vec(arch, state):
        parts = []
        for _, mod in net.fixed_modules() if include_fixed else ():
            parts += [state[f"{names[id(mod)]}.{n}"].flatten() for n, _ in mod.named_parameters()]
        for cell in range(net.num_search_cells):
            for path in nb201_paths():
                ops = [arch.ops[e] for e in path]
                if "none" in ops:
                    continue
                for e, op in zip(path, ops):
                    mod = net.op_module(cell, e, op)
                    if op == "avg_pool_3x3":
                        c = net.hparams["channels"] * 2 ** (cell // net.hparams["layers"])
                        parts.append(torch.full((c * 9,), 1 / 9))
                    elif mod is not None:
                        parts += [state[f"{names[id(mod)]}.{n}"].flatten() for n, _ in mod.named_parameters()]
        return torch.cat(parts).double()

    final = net.state_dict()
    for arch in archs:
        v0, v1 = vec(arch, init), vec(arch, final)
        expected = math.acos(min(1.0, float((v0 @ v1) / (v0.norm() * v1.norm()))))
        got = create_scorer("angle", include_fixed=include_fixed).score([arch], ctx)[0]
        assert got == pytest.approx(expected, abs=1e-6)


def test_path_enumerations():
    assert len(nb201_paths()) == 4 and sorted(map(len, nb201_paths())) == [1, 2, 2, 3]
    assert len(darts_paths()) == 2 + 4 + 8 + 16


def test_angle_works_on_darts(tiny_darts_run):
    dctx = ScoringContext.from_run(str(tiny_darts_run), data=False)
    rng = np.random.default_rng(0)
    values = create_scorer("angle").score([dctx.space.sample(rng) for _ in range(3)], dctx)
    assert np.all((values > 0) & (values < math.pi))


def test_angle_without_init_checkpoint_is_a_clear_error(ctx, archs):
    bare = ScoringContext(ctx.supernet, init_state=None)
    with pytest.raises(NotTrainedError, match="init checkpoint"):
        create_scorer("angle").score(archs, bare)


# ---- combinations and na: ---------------------------------------------------------------------

def test_genas_combination_weights(ctx, archs):
    angle = create_scorer("angle").score(archs, ctx)
    flat = create_scorer("flatness").score(archs, ctx)
    acc = create_scorer("accuracy").score(archs, ctx)
    beta = 1 / 2e-3
    fixed = {"weighting": "fixed"}  # GeNAS eq. 5 (the default is `rank` for a sum without coefficients)
    assert np.allclose(create_scorer("angle+flatness", **fixed).score(archs, ctx), angle / math.pi + 16 * beta * flat)
    assert np.allclose(create_scorer("angle+flatness", gamma=4).score(archs, ctx), angle / math.pi + 4 * beta * flat)
    assert np.allclose(create_scorer("angle+0.5*flatness").score(archs, ctx), angle / math.pi + 0.5 * beta * flat)
    assert np.allclose(create_scorer("accuracy+flatness", **fixed).score(archs, ctx), acc + 16 * beta * flat)
    assert np.allclose(create_scorer("accuracy-2*angle").score(archs, ctx), acc - 2 * angle / math.pi)


def test_scores_are_cached_per_context(ctx, archs):
    calls = []

    class Counting(Scorer):
        name = "counting"
        needs = Needs(supernet=False)

        def score(self, a, c):
            calls.extend(a)
            return np.arange(len(a), dtype=float)

    s = Counting()
    cached_scores(s, archs, ctx)
    cached_scores(s, archs[::-1], ctx)
    assert len(calls) == len(archs)


def test_neighbourhood_aware_on_a_table_scorer():
    table = {}

    @register_scorer("test_table", needs=Needs(supernet=False), overwrite=True)
    def lookup(arch, ctx):
        return table.setdefault(arch, float(sum(arch.genes)))

    tctx = ScoringContext.for_space("nb201", seed=0)
    arch = tctx.space.parse(BEST)
    full = create_scorer("na:test_table", **{"na.k": 24})  # every radius-1 neighbour
    expected = np.mean([sum(arch.genes)] + [sum(b.genes) for b in tctx.space.neighbors(arch, 1)])
    assert full.score([arch], tctx)[0] == pytest.approx(expected)
    some = create_scorer("na:test_table", **{"na.k": 3, "na.aggregate": "min"})
    nb = some.neighbours(arch, tctx)
    assert len(nb) == 3 and some.score([arch], tctx)[0] == min([sum(arch.genes)] + [sum(b.genes) for b in nb])
    assert some.neighbours(arch, tctx) == nb  # the same neighbours every time


def test_nb201_oracle(nb201_table_path, monkeypatch):
    monkeypatch.setenv("GENAS_NB201_TABLE", str(nb201_table_path))
    tctx = ScoringContext.for_space("nb201")
    s = create_scorer("nb201", dataset="cifar10", metric="test")
    assert s.score([BEST], tctx)[0] == pytest.approx(94.3633)
    with pytest.raises(ConfigError):
        create_scorer("nb201", dataset="cifar11")


def test_warning_free_scoring(ctx, archs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        create_scorer("accuracy+flatness").score(archs, ctx)


def test_duplicate_names_and_repeated_plugins(tmp_path):
    with pytest.raises(ConfigError, match="scorer 'accuracy' is already registered"):
        register_scorer("accuracy")(lambda arch, ctx: 0.0)
    plugin = tmp_path / "twice.py"
    plugin.write_text("from scorers import Needs, register_scorer\n"
                      "register_scorer('test_twice', needs=Needs(supernet=False))(lambda arch, ctx: 1.0)\n")  # fmt: skip
    assert load_plugin(str(plugin)) == ["test_twice"]
    assert load_plugin(str(plugin)) == []  # the same file again is a no-op, not a clash
