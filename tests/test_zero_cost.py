"""Zero-cost proxies: known answers on tiny models, the fresh-network context, determinism, errors."""

from __future__ import annotations

import copy
import math
import os
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from genas.config import DataConfig
from genas.errors import ConfigError
from genas.spaces import NB201Space
from scorers import SCORERS, ScoringContext, cached_scores, create_scorer, list_scorers
from scorers.activation import jacov_value, naswot_value, zen_value
from scorers.fresh import FreshNetworks, default_init
from scorers.saliency import grasp_value, loss_gradients, synflow_value

ZERO_COST = ["grad_norm", "snip", "grasp", "fisher", "synflow", "jacov", "naswot", "zen", "params", "flops"]
TINY = {"channels": 4, "layers": 1}
EMPTY = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
SKIPS = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"
ONE_CONV = "|nor_conv_3x3~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"


def digits_ctx(seed: int = 0, **data) -> ScoringContext:
    return ScoringContext.for_data(DataConfig(dataset="digits", **data), "nb201", seed=seed, supernet=TINY)


@pytest.fixture(scope="module")
def zctx():
    return digits_ctx()


@pytest.fixture(scope="module")
def zarchs(zctx):
    rng = np.random.default_rng(0)
    return [zctx.space.parse(ONE_CONV)] + [zctx.space.sample(rng) for _ in range(2)]


def _linear_problem(seed: int = 0, n: int = 6, d: int = 5, c: int = 3):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(n, d, generator=g), torch.randint(0, c, (n,), generator=g)
    net = nn.Linear(d, c)
    default_init(net, torch.Generator().manual_seed(seed + 1))
    w, b = net.weight.detach().double().numpy(), net.bias.detach().double().numpy()
    logits = x.double().numpy() @ w.T + b
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    dlogits = (p - np.eye(c)[y.numpy()]) / n  # dL/dlogits of the mean cross-entropy
    return net, x, y, w, x.double().numpy(), p, dlogits


# ---- known answers -----------------------------------------------------------------------

def test_synflow_of_a_two_layer_linear_net_is_twice_the_path_sum():
    """R = 1^T |W2| |W1| 1 and each layer's sum |W * dR/dW| equals R, so synflow = 2R (BN removed)."""
    net = nn.Sequential(nn.Linear(4, 3, bias=False), nn.BatchNorm1d(3), nn.Linear(3, 2, bias=False))
    default_init(net, torch.Generator().manual_seed(0))
    w1, w2 = (m.weight.detach().double().abs().numpy() for m in (net[0], net[2]))
    path_sum = np.ones(2) @ w2 @ w1 @ np.ones(4)
    assert synflow_value(net, (4,)) == pytest.approx(2 * path_sum, rel=1e-12)
    assert net[0].weight.dtype == torch.float32 and (net[0].weight < 0).any()  # the network is left as it was


def test_snip_and_grad_norm_of_a_single_linear_layer():
    net, x, y, w, xs, _, dlogits = _linear_problem()
    grad_w = dlogits.T @ xs  # dL/dW, the bias is not summed over
    passed = loss_gradients(net, x, y)
    assert passed.grad_norm() == pytest.approx(np.linalg.norm(grad_w), rel=1e-5)
    assert passed.snip() == pytest.approx(np.abs(w * grad_w).sum(), rel=1e-5)


def test_fisher_of_a_linear_layer_and_of_a_conv_layer():
    net, x, y, _, xs, _, dlogits = _linear_problem()
    act = xs @ net.weight.detach().double().numpy().T + net.bias.detach().double().numpy()
    per_channel = 0.5 * np.mean((act * dlogits) ** 2, axis=0)
    assert loss_gradients(net, x, y).fisher_sum() == pytest.approx(per_channel.sum() * 5, rel=1e-5)  # x fan-in 5
    # 1x1 conv -> global average pool: dL/da = dlogits / (H W), so sum_s a * dL/da = logits * dlogits
    conv = nn.Sequential(nn.Conv2d(2, 3, 1, bias=False), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    default_init(conv, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(4)
    xc, yc = torch.randn(5, 2, 2, 2, generator=g), torch.tensor([0, 1, 2, 1, 0])
    logits = conv(xc).detach().double().numpy()
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    dl = (p - np.eye(3)[yc.numpy()]) / 5
    expected = (0.5 * np.mean((logits * dl) ** 2, axis=0)).sum() * 2  # fan-in 2 x 1 x 1
    assert loss_gradients(conv, xc, yc).fisher_sum() == pytest.approx(expected, rel=1e-5)


def test_grasp_of_a_linear_softmax_layer():
    """H g for softmax regression: (1/N) sum_n ((diag p_n - p_n p_n^T) G x_n) x_n^T, G = dL/dW."""
    net, x, y, w, xs, p, dlogits = _linear_problem(seed=5)
    grad_w = dlogits.T @ xs
    hg = np.zeros_like(w)
    for pn, xn in zip(p, xs):
        hg += np.outer((np.diag(pn) - np.outer(pn, pn)) @ (grad_w @ xn), xn) / len(xs)
    # the bias gets a gradient too, but GraSP (like the reference) sums over weights only and
    # builds Hg from the weight gradient alone
    assert grasp_value(net, x, y) == pytest.approx(float(np.sum(-w * hg)), rel=1e-4)


def test_jacov_closed_forms():
    # f(x) = W x: every image has the same input gradient, so the correlation matrix is all ones
    n, k = 6, 1e-5
    lin = nn.Sequential(nn.Flatten(), nn.Linear(8, 3))
    default_init(lin, torch.Generator().manual_seed(0))
    x = torch.randn(n, 8, generator=torch.Generator().manual_seed(1))
    expected = -((math.log(n + k) + 1 / (n + k)) + (n - 1) * (math.log(k) + 1 / k))
    assert jacov_value(lin, x) == pytest.approx(expected, rel=1e-6)

    class HalfSquare(nn.Module):  # f(x) = |x|^2 / 2, so the input gradient is x itself
        def forward(self, t):
            return 0.5 * t.pow(2).sum(1, keepdim=True)

    v = np.linalg.eig(np.corrcoef(x.double().numpy()))[0].real  # the reference's eig
    assert jacov_value(HalfSquare(), x) == pytest.approx(-np.sum(np.log(v + k) + 1 / (v + k)), rel=1e-6)


def test_naswot_of_known_activation_codes():
    """Codes 1100 and 1010 over 4 units agree on 2: K = [[4, 2], [2, 4]], log|K| = log 12 per ReLU."""
    x = torch.tensor([[1.0, 1.0, -1.0, -1.0], [1.0, -1.0, 1.0, -1.0]])
    assert naswot_value(nn.Sequential(nn.ReLU()), x) == pytest.approx(math.log(12))
    assert naswot_value(nn.Sequential(nn.ReLU(), nn.ReLU()), x) == pytest.approx(math.log(48))  # K doubles


def test_zen_of_a_batchnorm_layer_by_hand():
    g = torch.Generator().manual_seed(0)
    x, e = torch.randn(4, 2, 3, 3, generator=g), torch.randn(4, 2, 3, 3, generator=g)
    net = nn.Sequential(nn.BatchNorm2d(2)).train()
    got = zen_value(net, x, e, gamma=0.1)

    def bn(t):
        m, v = t.mean((0, 2, 3), keepdims=True), t.var((0, 2, 3), keepdims=True)
        return (t - m) / np.sqrt(v + 1e-5)

    a, b = x.double().numpy(), (x + 0.1 * e).double().numpy()
    delta = np.abs(bn(a) - bn(b)).reshape(4, -1).sum(1).mean()
    unbiased = [t.var((0, 2, 3), ddof=1) for t in (a, b)]
    running = 0.9 * (0.9 * 1.0 + 0.1 * unbiased[0]) + 0.1 * unbiased[1]  # two train-mode updates, momentum 0.1
    assert got == pytest.approx(math.log(delta) + math.log(math.sqrt(running.mean())), rel=1e-5)


def test_zen_counts_a_batchnorm_without_running_statistics_as_a_tracking_one():
    g = torch.Generator().manual_seed(1)
    x, e = torch.randn(4, 2, 3, 3, generator=g), torch.randn(4, 2, 3, 3, generator=g)
    tracking = zen_value(nn.Sequential(nn.BatchNorm2d(2)).train(), x, e, gamma=0.1)
    free = zen_value(nn.Sequential(nn.BatchNorm2d(2, track_running_stats=False)).train(), x, e, gamma=0.1)
    assert free == pytest.approx(tracking, rel=1e-6)


def test_params_and_flops_of_one_conv_edge(zctx):
    """One nor_conv_3x3 instead of a skip adds, per stage (C = 4, 8, 16; 8x8, 4x4, 2x2 maps), C*C*9
    weights plus the reference's C biases, and H*W*C*C*9 multiply-adds."""
    params, flops = create_scorer("params"), create_scorer("flops")
    p = params.score([ONE_CONV, SKIPS], zctx)
    f = flops.score([ONE_CONV, SKIPS], zctx)
    assert (p[0] - p[1]) * 1e6 == pytest.approx(sum(c * c * 9 + c for c in (4, 8, 16)))
    assert (f[0] - f[1]) * 1e6 == pytest.approx(sum(hw * c * c * 9 for hw, c in ((64, 4), (16, 8), (4, 16))))


# ---- the fresh-network context -----------------------------------------------------------

def test_fresh_networks_follow_the_reference_layout_and_seeded_init(zctx):
    net = zctx.fresh.network(ONE_CONV)
    cell_conv = net.cells[0].edges[0][1]
    cell_bn = net.cells[0].edges[0][2]
    assert cell_conv.bias is not None and not cell_bn.affine and not cell_bn.track_running_stats
    bound = 1 / math.sqrt(cell_conv.weight[0].numel())
    assert cell_conv.weight.abs().max() <= bound and net.training
    before = [p.detach().clone() for p in net.parameters()]
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    again = zctx.fresh.network(ONE_CONV)  # re-initialised: same weights as the first time
    assert all(torch.equal(a, b) for a, b in zip(before, again.parameters()))
    other = digits_ctx(seed=1).fresh.network(ONE_CONV)
    assert not torch.equal(before[0], next(other.parameters()))


def test_pytorch_default_init_distribution():
    layer = nn.Linear(400, 300)
    default_init(layer, torch.Generator().manual_seed(0))
    bound = 1 / math.sqrt(400)
    assert layer.weight.abs().max() <= bound and layer.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.02)


@pytest.mark.parametrize("name", ZERO_COST)
def test_contract_registered_deterministic_and_order_free(name, zarchs):
    entry = SCORERS.entry(name)
    assert name in list_scorers() and entry.description and entry.obj.__doc__
    assert entry.obj.needs.fresh_network and not entry.obj.needs.supernet
    a = create_scorer(name).score(zarchs, digits_ctx())
    b = create_scorer(name).score(zarchs[::-1], digits_ctx())[::-1]  # another order, another context
    assert a.shape == (len(zarchs),) and np.all(np.isfinite(a))
    assert np.array_equal(a, b)


def test_the_seed_changes_the_init_based_scores(zarchs):
    assert not np.array_equal(create_scorer("snip").score(zarchs, digits_ctx(0)), create_scorer("snip").score(zarchs, digits_ctx(1)))


def test_shared_gradient_pass_gives_the_standalone_values(zarchs):
    shared = digits_ctx()
    for name in ("snip", "grad_norm", "fisher", "grasp"):
        together = create_scorer(name).score(zarchs, shared)
        alone = create_scorer(name).score(zarchs, digits_ctx())
        assert np.allclose(together, alone, rtol=1e-6), name


def test_nan_rule_gives_the_worst_value(zctx):
    for name in ("jacov", "naswot", "zen"):
        with pytest.warns(RuntimeWarning, match=f"scorer '{name}': 1 non-finite"):
            values = cached_scores(create_scorer(name), [EMPTY, ONE_CONV], zctx)
        assert values[0] == -np.inf and np.isfinite(values[1])


def test_proxies_in_sums_and_na(zctx, zarchs):
    snip, syn = create_scorer("snip").score(zarchs, zctx), create_scorer("synflow").score(zarchs, zctx)
    combo = create_scorer("snip+0.5*synflow").score(zarchs, zctx)
    assert np.allclose(combo, np.log(snip) + 0.5 * np.log(syn))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.all(np.isfinite(create_scorer("na:params", **{"na.k": 2}).score(zarchs[:1], zctx)))


def test_synflow_bn_variant_differs(zctx, zarchs):
    variants = [create_scorer("synflow", bn=bn).score(zarchs, zctx) for bn in ("reference", "off", "train")]
    assert not np.allclose(variants[0], variants[1]) and not np.allclose(variants[0], variants[2])


def test_synflow_bn_off_from_yaml_and_the_command_line():
    from genas.config import load_config

    opts = load_config(None, ["--score.scorer", "synflow", "--score.options.bn", "off"]).score.options
    assert create_scorer("synflow", **opts).bn == "off"


def test_synflow_keeps_only_the_reduction_block_bn_as_the_reference(zctx):
    """zero-cost-nas scores synflow on ``get_prunable_copy(bn=False)`` of its NB201 network, which
    drops the BN of the stem, the cells and the head but not of the ResNet reduction blocks."""
    from scorers.saliency import _drop_batchnorm, _reference_keep
    from supernet.ops import ResNetBasicBlock

    net = copy.deepcopy(zctx.fresh.network(ONE_CONV))
    _drop_batchnorm(net, _reference_keep())
    left = [name for name, m in net.named_modules() if isinstance(m, nn.BatchNorm2d)]
    blocks = [name for name, m in net.named_modules() if isinstance(m, ResNetBasicBlock)]
    assert len(blocks) == 2 and len(left) == 4 and all(any(n.startswith(b + ".") for b in blocks) for n in left)


def test_proxies_run_on_darts():
    ctx = ScoringContext.for_data(DataConfig(dataset="digits"), "darts", supernet={"channels": 4, "layers": 3})
    arch = ctx.space.sample(np.random.default_rng(0))
    for name in ("synflow", "snip", "naswot", "params"):
        assert np.isfinite(create_scorer(name).score([arch], ctx)[0]), name


# ---- bad input ---------------------------------------------------------------------------------

def test_options_a_proxy_does_not_take():
    with pytest.raises(ConfigError, match=r"option 'batch_size' is not taken by any part of scorer 'synflow' \(options: synflow: bn\)"):
        create_scorer("synflow", batch_size=32)
    with pytest.raises(ConfigError, match="scorer 'snip' has no option 'batches'; its options: batch_size"):
        create_scorer("snip", **{"snip.batches": 2})
    with pytest.raises(ConfigError, match=r"The 'batch_size' parameter of scorer 'snip' must be an int in the range \[1, inf\)\. Got 0"):
        create_scorer("snip", batch_size=0)
    with pytest.raises(ConfigError, match=r"The 'bn' parameter of scorer 'synflow' must be one of \{'off', 'reference', 'train'\}\. Got 'of' instead"):
        create_scorer("synflow", bn="of")
    with pytest.raises(ConfigError, match="The 'mixup_gamma' parameter of scorer 'zen' must be a float in the range"):
        create_scorer("zen", mixup_gamma=0)


def test_a_batch_size_the_data_cannot_give():
    small = digits_ctx(limit=40)
    n = len(small.fresh.bundle.train)
    msg = rf"The 'batch_size' parameter of scorer 'naswot' must be an int in the range \[1, {n}\] .*holds {n} images\)\. Got 128 instead\."
    with pytest.raises(ConfigError, match=msg):
        create_scorer("naswot").score([ONE_CONV], small)


def test_a_space_without_networks_and_a_context_without_fresh_networks(zctx):
    class Toy(NB201Space):
        name = "toy"

    fresh = FreshNetworks(Toy(), zctx.fresh.bundle)
    with pytest.raises(ConfigError, match="scorer 'snip' .*does not support space 'toy'; supported spaces: darts, nb201"):
        fresh.network(ONE_CONV, "snip")
    with pytest.raises(ConfigError, match=r"scorer 'synflow' scores freshly initialised networks; .*ScoringContext\.for_data"):
        create_scorer("synflow").score([ONE_CONV], ScoringContext.for_space("nb201"))


# ---- CUDA ---------------------------------------------------------------------------------------

DEVICE = os.environ.get("GENAS_TEST_DEVICE", "cuda")


@pytest.mark.skipif(DEVICE == "cuda" and not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_device_path_matches_cpu(zarchs):
    cpu = digits_ctx()
    dev = ScoringContext.for_data(DataConfig(dataset="digits"), "nb201", supernet=TINY, device=DEVICE)
    for name in ZERO_COST:
        a, b = create_scorer(name).score(zarchs, cpu), create_scorer(name).score(zarchs, dev)
        assert np.allclose(a, b, rtol=1e-3, atol=1e-6), name


# ---- the command-line tools ---------------------------------------------------------------------

SMALL_SEARCH = ["--search.options.population", "6", "--search.options.topk", "2", "--search.options.mutations", "2", "--search.options.crossovers", "2",
                "--search.options.iterations", "2", "--run.progress", "false"]  # fmt: skip


@pytest.mark.slow
def test_evolve_with_a_proxy_needs_no_supernet(tmp_path):
    import json

    from evolution.cli import main as evolve_main

    over = ["--run.root", str(tmp_path / "runs"), "--supernet.options.channels", "4", "--supernet.options.layers", "1"]
    assert evolve_main(["--scorer", "synflow", *over, *SMALL_SEARCH]) == 0  # no run directory at all
    best = json.loads((tmp_path / "runs" / "nb201-digits" / "search-synflow-evolution" / "best_arch.json").read_text())
    assert best["scorer"] == "synflow" and best["supernet_run"] is None and best["score"] > 0


@pytest.mark.slow
def test_evolve_sums_a_proxy_with_a_one_shot_scorer(tiny_run, tmp_path):
    from evolution.cli import main as evolve_main

    out = tmp_path / "combo"
    assert evolve_main(["--supernet", str(tiny_run), "--scorer", "angle+0.01*synflow", "--out", str(out), *SMALL_SEARCH]) == 0
    assert (out / "best_arch.json").is_file()


def test_rank_nb201_scores_proxies_without_a_supernet(tmp_path, nb201_table_path):
    import json

    from genas.analysis.rank_cli import main as rank_main

    args = ["--scorer", "synflow,params", "--sample", "8", "--topk", "3", "--table", str(nb201_table_path),
            "--out", str(tmp_path / "rank"), "--run.progress", "false", "--supernet.options.channels", "4", "--supernet.options.layers", "1"]  # fmt: skip
    assert rank_main(args) == 0
    summary = json.loads((tmp_path / "rank" / "summary.json").read_text())
    assert set(summary["seconds_per_arch"]) == {"synflow", "params"} and summary["results"]["params"]["n"] == 8
