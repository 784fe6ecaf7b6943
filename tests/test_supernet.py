"""Supernets: single-path forward, no update of unused ops, subnets, samplers, BN recalibration."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from supernet.config import TrainConfig
from genas.data import create_dataset
from genas.spaces import NB201Arch
from supernet import UniformPathSampler, create_supernet, recalibrate_bn
from genas.schedule import cosine_lr
from supernet.train import SupernetTrainer

ARCH = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"


def tiny(space="nb201", **kw):
    torch.manual_seed(0)
    opts = dict(num_classes=10, in_chans=3, channels=4, layers=1 if space == "nb201" else 3)
    return create_supernet(space, **{**opts, **kw})


def op_modules(net):
    """{(cell, edge, op): module} for every candidate op with a module."""
    out = {}
    for c in range(net.num_search_cells):
        for e in range(len(net.space.edges) if net.space.name == "nb201" else 14):
            for op in net.space.ops[1:]:
                out[(c, e, op)] = net.op_module(c, e, op)
    return out


def active_keys(net, path):
    keys = set()
    archs = path if isinstance(path, tuple) else [path] * net.num_search_cells
    for c, arch in enumerate(archs):
        genes = arch.genes if net.space.name == "nb201" else None
        if genes is not None:
            keys |= {(c, e, net.space.ops[g]) for e, g in enumerate(genes) if g}
        else:
            cell = net.cells[c]
            g = arch.reduce if cell.reduction else arch.normal
            keys |= {(c, e, net.space.ops[x]) for e, x in enumerate(g) if x}
    return keys


@pytest.mark.parametrize("space", ["nb201", "darts"])
def test_forward_runs_only_the_sampled_path(space):
    net = tiny(space)
    calls = set()
    for key, mod in op_modules(net).items():
        mod.register_forward_hook(lambda m, i, o, key=key: calls.add(key))
    sampler = UniformPathSampler(net.space, net.num_search_cells, seed=1)
    path = sampler.sample()
    out = net(torch.randn(2, 3, 16, 16), path)
    assert out.shape == (2, 10)
    assert calls == active_keys(net, path)


@pytest.mark.parametrize("space", ["nb201", "darts"])
@pytest.mark.parametrize("mode", ["freeze", "decay"])
def test_what_unsampled_ops_receive(space, mode):
    """freeze: an op off the path is untouched; decay: an op used before keeps decaying (zero-filled grads)."""
    net = tiny(space)
    data = create_dataset("synthetic", limit=64, seed=0)
    from genas.data import build_loader

    loader = build_loader(data.train, data, 16, train=True, seed=0)
    cfg = TrainConfig(epochs=1, lr=0.1, weight_decay=0.1, momentum=0.9, channels_last=False, unsampled_update=mode)
    trainer = SupernetTrainer(net, UniformPathSampler(net.space, net.num_search_cells, 0), loader, cfg, torch.device("cpu"), progress=False)
    batches = list(loader)
    ops = op_modules(net)
    # step 1 gives momentum buffers to the ops of path 1
    path1 = trainer.sampler.sample()
    trainer.sampler.sample = lambda: path1
    trainer.train_step(*batches[0])
    before = {k: [p.detach().clone() for p in m.parameters()] for k, m in ops.items()}
    had_grad = {k for k, m in ops.items() if any(p.grad is not None for p in m.parameters())}  # reached by backward
    path2 = UniformPathSampler(net.space, net.num_search_cells, 1).sample()
    trainer.sampler.sample = lambda: path2  # fix the second step's path to inspect it
    trainer.train_step(*batches[1])
    used2 = active_keys(net, path2)
    counts = {"frozen": 0, "moved": 0, "decayed": 0}
    for key, mod in ops.items():
        params = list(mod.parameters())
        if not params:
            continue
        same = all(torch.equal(a, p) for a, p in zip(before[key], params))
        if key in used2:
            counts["moved"] += not same
        elif key in had_grad and mode == "decay":
            assert not same and all(p.grad is not None and not p.grad.any() for p in params), key
            counts["decayed"] += 1
        else:
            assert same, f"unused op {key} changed"
            assert all(p.grad is None for p in params)
            counts["frozen"] += 1
    assert counts["frozen"] > 0 and counts["moved"] > 0
    assert (counts["decayed"] > 0) == (mode == "decay")


def test_nb201_sampler_is_per_cell_seeded_and_never_leaves_a_node_empty():
    net = tiny(layers=2)
    s1 = UniformPathSampler(net.space, net.num_search_cells, seed=7)
    s2 = UniformPathSampler(net.space, net.num_search_cells, seed=7)
    paths = [s1.sample() for _ in range(300)]
    assert paths == [s2.sample() for _ in range(300)]
    assert all(len(p) == net.num_search_cells for p in paths)
    assert any(len(set(p)) > 1 for p in paths)  # cells sample independently
    for path in paths:
        for a in path:
            assert a.ops[0] != "none" and {a.ops[1], a.ops[2]} != {"none"}
            assert {a.ops[3], a.ops[4], a.ops[5]} != {"none"}
    # resumable: state_dict restores the stream
    state = s1.state_dict()
    nxt = s1.sample()
    s2.load_state_dict(state)
    assert s2.sample() == nxt


def test_darts_sampler_shares_one_genotype_across_cells():
    net = tiny("darts")
    s = UniformPathSampler(net.space, net.num_search_cells, seed=0)
    path = s.sample()
    assert path.space == "darts"
    assert [c.reduction for c in net.cells] == [False, True, True]  # layers=3: reduce at 1 and 2


@pytest.mark.parametrize("space, arch", [("nb201", ARCH), ("darts", None)])
def test_subnet_shares_weights_and_matches_supernet(space, arch):
    net = tiny(space).eval()
    arch = net.space.parse(arch) if arch else net.space.sample(np.random.default_rng(0))
    sub = net.subnet(arch).eval()
    x = torch.randn(3, 3, 16, 16)
    assert torch.allclose(sub(x), net(x, arch))
    sub_ids = {id(p) for p in sub.parameters()}
    all_ids = {id(p) for p in net.parameters()}
    assert sub_ids < all_ids  # only the active path (plus the fixed parts), and the same tensors
    with torch.no_grad():
        next(net.classifier.parameters()).add_(1.0)
    assert torch.allclose(sub(x), net(x, arch))
    feats = sub.forward_features(x)
    assert feats.shape[1] == sub.feature_info[-1].num_chs == sub.num_features
    assert sub.forward_head(feats, pre_logits=True).shape == (3, sub.num_features)


def test_nb201_subnet_parameters_are_exactly_the_active_ops():
    net = tiny()
    arch = NB201Arch.from_string(ARCH)
    sub = net.subnet(arch)
    n_sub = sum(p.numel() for p in sub.parameters())
    fixed = sum(p.numel() for _, m in net.fixed_modules() for p in m.parameters())
    active = sum(p.numel() for k in active_keys(net, arch) for p in op_modules(net)[k].parameters())
    assert n_sub == fixed + active


def test_bn_recalibration_cumulative_average_is_the_exact_mean():
    torch.manual_seed(0)
    bn = torch.nn.BatchNorm2d(3)
    model = torch.nn.Sequential(bn)
    batches = [torch.randn(8, 3, 4, 4) * (i + 1) + i for i in range(5)]
    recalibrate_bn(model, batches)
    assert not model.training and bn.momentum == 0.1  # restored
    means = torch.stack([b.mean(dim=(0, 2, 3)) for b in batches]).mean(0)
    vars_ = torch.stack([b.var(dim=(0, 2, 3), unbiased=True) for b in batches]).mean(0)
    assert torch.allclose(bn.running_mean, means, atol=1e-5)
    assert torch.allclose(bn.running_var, vars_, atol=1e-4)
    recalibrate_bn(model, batches, momentum=0.1)  # GeNAS: exponential average from mean 0 / var 1
    expected = torch.zeros(3)
    for b in batches:
        expected = 0.9 * expected + 0.1 * b.mean(dim=(0, 2, 3))
    assert torch.allclose(bn.running_mean, expected, atol=1e-5)


def test_bn_options_and_darts_reduction_shapes():
    net = tiny(affine=True, track_running_stats=False)
    cell_bns = [m for m in net.cells.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert cell_bns and all(m.affine and not m.track_running_stats for m in cell_bns[:3])
    darts = tiny("darts", channels=4, layers=3)
    arch = darts.space.sample(np.random.default_rng(0))
    feats = darts.subnet(arch).forward_features(torch.randn(2, 3, 16, 16))
    assert feats.shape == (2, 4 * 4 * 4, 4, 4)  # two reductions: 16 -> 4, 4 nodes x 4C channels


def test_cosine_schedule_endpoints():
    assert cosine_lr(0, 100, 0.025, 0.001) == pytest.approx(0.025)
    assert cosine_lr(100, 100, 0.025, 0.001) == pytest.approx(0.001)
    assert cosine_lr(50, 100, 0.025, 0.001) == pytest.approx(0.013)


def test_random_labels_are_fixed_and_cover_classes():
    data = create_dataset("digits", seed=0)
    r1 = data.train.with_random_labels(10, seed=3).labels
    assert np.array_equal(r1, data.train.with_random_labels(10, seed=3).labels)
    assert not np.array_equal(r1, data.train.labels) and set(r1.tolist()) == set(range(10))


def test_training_step_decreases_loss_on_a_fixed_path():
    net = tiny()
    data = create_dataset("synthetic", limit=128, seed=0)
    from genas.data import build_loader

    x, y = next(iter(build_loader(data.train, data, 64, train=False)))
    arch = NB201Arch.from_string(ARCH)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = F.cross_entropy(net(x, arch), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_the_imagenet_stem_has_darts_networkimagenet_geometry_and_the_mobile_flop_convention():
    """The ImageNet supernet (DARTS NetworkImageNet stem, C=48, 14 cells, 224 px; RLNAS's search supernet):
    a DARTS-V2 path costs exactly what the exported ``darts_imagenet`` network costs, so ``search.max_flops
    600`` reads in the mobile-setting convention (multiply-adds of convolutions and linear layers)."""
    from genas.counting import count_flops, count_params
    from genas.export import create_network
    from supernet.costs import arch_cost
    from tests.test_export_networks import DARTS_V2

    tiny = create_supernet("darts", num_classes=5, channels=8, layers=3, stem="imagenet")
    assert tiny.hparams["stem"] == "imagenet" and "stem" not in create_supernet("darts", channels=4, layers=3).hparams
    assert [(f.num_chs, f.reduction) for f in tiny.feature_info_] == [(32, 8), (64, 16), (128, 32)]
    x = torch.randn(2, 3, 64, 64)
    assert tiny(x, DARTS_V2).shape == (2, 5) and tiny.subnet(DARTS_V2).forward_features(x).shape == (2, 128, 2, 2)
    net = create_supernet("darts", num_classes=1000, channels=48, layers=14, stem="imagenet")
    params, mflops = arch_cost(net, DARTS_V2, (1, 3, 224, 224))
    standalone = create_network("darts_imagenet", DARTS_V2)  # C=48, 14 cells, no auxiliary head in the count
    assert params * 1e6 == pytest.approx(count_params(standalone), abs=0.5) == 4_718_752
    assert mflops * 1e6 == pytest.approx(count_flops(standalone, (1, 3, 224, 224)), abs=1.0)
    assert mflops == pytest.approx(529.91, abs=0.01) and mflops < 600
    with pytest.raises(Exception, match="'stem' parameter"):
        create_supernet("darts", channels=4, layers=3, stem="mnist")
    from genas.errors import ConfigError
    from genas.export.inherit import network_from_supernet

    tiny.eval()
    inherited = network_from_supernet(tiny, DARTS_V2).eval()  # the ImageNet-stem supernet hands its path to darts_imagenet
    assert inherited.name == "darts_imagenet" and torch.equal(inherited(x), tiny.subnet(DARTS_V2)(x))
    with pytest.raises(ConfigError, match="use network 'darts_imagenet'"):
        network_from_supernet(tiny, DARTS_V2, network="darts")


@pytest.mark.parametrize("space", ["nb201", "darts"])
def test_image_channels_are_in_chans_as_in_networks_and_the_old_keyword_warns(space):
    """One name for the image channels (issue 23): ``in_chans``; ``in_channels`` works for one release, warned."""
    import genas.errors
    from genas.errors import GenasDeprecationWarning

    net = tiny(space, in_chans=1)
    assert net.hparams["in_chans"] == 1 and "in_channels" not in net.hparams
    genas.errors._WARNED.clear()
    with pytest.warns(GenasDeprecationWarning, match="in_channels is deprecated.*in_chans"):
        old = tiny(space, in_channels=1, in_chans=3)
    assert old.hparams == net.hparams
    assert all(torch.equal(a, b) for a, b in zip(old.state_dict().values(), net.state_dict().values()))
    assert net(torch.zeros(2, 1, 8, 8), net.space.sample(np.random.default_rng(0))).shape == (2, 10)
