"""Standalone networks: geometry, stage outputs, counts, inheriting a supernet's weights, the checkpoint file."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from genas.export import (
    create_network, load_network, model_stats, network_from_run, network_from_supernet, read_arch, save_network,
)  # fmt: skip
from genas.export.darts import drop_path
from genas.counting import count_flops, count_params
from genas.errors import CheckpointError, ConfigError, DataNotFoundError, InvalidArchitectureError
from genas.spaces import create_space

NB201 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|none~2|"
DARTS_V2 = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], "
    "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"
)
TINY = {"nb201": (NB201, dict(channels=4, layers=1), 16), "darts": (DARTS_V2, dict(channels=4, layers=5), 16),
        "darts_imagenet": (DARTS_V2, dict(channels=8, layers=3), 64)}  # fmt: skip


def tiny(name, **kw):
    arch, opts, size = TINY[name]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return create_network(name, arch, **{**opts, **kw}).eval(), size


def hooked_levels(net, x):
    """The outputs of the modules ``feature_info`` names, recorded by forward hooks (the independent answer)."""
    seen = {}
    handles = [net.get_submodule(f["module"]).register_forward_hook(lambda m, i, o, k=f["module"]: seen.setdefault(k, o))
               for f in net.feature_info]  # fmt: skip
    with torch.no_grad():
        out = net(x)
    for h in handles:
        h.remove()
    return [seen[f["module"]] for f in net.feature_info], out


@pytest.mark.parametrize("name", ["nb201", "darts", "darts_imagenet"])
def test_stage_outputs_are_the_modules_named_in_feature_info(name):
    net, size = tiny(name)
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        final, maps = net.forward_intermediates(x)
        feats = net.forward_features(x)
    expected, logits = hooked_levels(net, x)
    assert len(maps) == len(net.feature_info)
    for m, e, info in zip(maps, expected, net.feature_info):
        assert torch.equal(m, e)
        assert m.shape[1] == info["num_chs"] and m.shape[-1] == size // info["reduction"]
    assert torch.equal(final, feats) and torch.equal(maps[-1], feats)
    assert torch.equal(net.forward_head(feats), logits)
    pooled = net.forward_head(feats, pre_logits=True)
    assert pooled.shape == (2, net.num_features) and torch.equal(net.get_classifier()(pooled), logits)
    with torch.no_grad():
        only = net.forward_intermediates(x, indices=[0, -1], intermediates_only=True)
    assert torch.equal(only[0], maps[0]) and torch.equal(only[1], maps[-1])


def test_imagenet_stem_gives_four_levels_at_strides_4_8_16_32():
    net, _ = tiny("darts_imagenet")
    assert [f["reduction"] for f in net.feature_info] == [4, 8, 16, 32]
    assert [f["module"] for f in net.feature_info] == ["stem0", "cells.0", "cells.1", "cells.2"]
    cifar, _ = tiny("darts")
    assert [f["reduction"] for f in cifar.feature_info] == [1, 2, 4]


def test_out_indices_out_of_range_is_a_config_error():
    net, size = tiny("darts")
    with pytest.raises(ConfigError, match=r"out of range: darts has 3 feature levels: indices 0..2 or -3..-1"):
        net.forward_intermediates(torch.zeros(1, 3, size, size), indices=[0, 3])
    with pytest.raises(ConfigError, match="out of range"):
        net.prune_intermediate_layers(4)


def test_pruning_keeps_the_asked_levels_and_drops_the_rest():
    net, size = tiny("darts", auxiliary=True)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        before = net.forward_intermediates(x, indices=(0, 1), intermediates_only=True)
    assert net.prune_intermediate_layers((0, 1)) == [0, 1]
    assert len(net.cells) == 3 and net.auxiliary_head is None  # levels 0, 1 end at cells 0 and 2 of 5
    with torch.no_grad():
        after = net.forward_intermediates(x, indices=(0, 1), intermediates_only=True)
    assert all(torch.equal(a, b) for a, b in zip(before, after))


def test_parameter_counts_match_hand_counts():
    # NB201, C=4, N=1, every edge a skip: stem 108+8, block 4->8: 288+16 + 576+16 + 32,
    # block 8->16: 1152+32 + 2304+32 + 128, last BN 32, classifier 16*10+10
    net = create_network("nb201", "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|",
                         channels=4, layers=1)  # fmt: skip
    assert count_params(net) == 4894 == model_stats(net, 8)["params"]
    # DARTS V2 at C=36, 20 cells, the auxiliary tower left out: the reference code prints 3.349342 MB
    v2 = create_network("darts", DARTS_V2, channels=36, layers=20, auxiliary=True)
    assert model_stats(v2, 32)["params"] == 3_349_342


@pytest.mark.parametrize("space", ["nb201", "darts"])
def test_counts_equal_the_constraint_counters_on_the_supernet_subnet(space):
    from supernet import create_supernet
    from supernet.costs import arch_cost

    torch.manual_seed(0)
    sn = create_supernet(space, num_classes=10, channels=4, layers=1 if space == "nb201" else 4)
    rng = np.random.default_rng(0)
    for arch in [sn.space.sample(rng) for _ in range(3)]:
        params_m, mflops = arch_cost(sn, arch, (1, 3, 16, 16))  # what search.max_params / max_flops compare
        if space == "nb201":
            nets = [create_network("nb201", arch, channels=4, layers=1, affine=False)]  # the supernet's BN
        else:
            nets = [create_network("darts", arch, channels=4, layers=4, pool_bn=pb) for pb in (False, True)]
        for net in nets:
            stats = model_stats(net, 16)
            assert stats["params"] == round(params_m * 1e6) and stats["flops"] == pytest.approx(mflops * 1e6, rel=0, abs=1e-3)


def test_inherited_network_computes_the_supernet_subnet_and_owns_its_weights():
    from supernet import create_supernet

    torch.manual_seed(0)
    sn = create_supernet("darts", num_classes=10, channels=4, layers=3).eval()
    arch = sn.space.sample(np.random.default_rng(3))
    net = network_from_supernet(sn, arch, auxiliary=True).eval()
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(net(x), sn.subnet(arch)(x))
        net.cells[0].preprocess1[1].weight.add_(1.0)  # a copy: the supernet is untouched
        assert torch.equal(sn.subnet(arch)(x), sn(x, arch))
    assert net.hparams["pool_bn"] and net.auxiliary_head is not None


@pytest.mark.parametrize("fixture", ["tiny_run", "tiny_darts_run"])
def test_inherit_from_a_trained_run(fixture, request):
    from supernet.factory import load_trained

    run = request.getfixturevalue(fixture)
    trained = load_trained(run)
    arch = trained.model.space.sample(np.random.default_rng(5))
    net, info = network_from_run(run, str(arch))
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(net.eval()(x), trained.model.subnet(arch)(x))
    assert info["inherited_from"] == str(run) and info["input_shape"] == [1, 8, 8]
    assert info["subnet_max_abs_diff"] == 0.0  # checked while inheriting, on random images


def test_inherit_refuses_another_space_other_channels_and_a_search_folder(tiny_run, tmp_path):
    arch = create_space("darts").sample(np.random.default_rng(0))
    with pytest.raises(ConfigError, match=r"is a 'nb201' supernet; network 'darts' builds 'darts' architectures"):
        network_from_run(tiny_run, arch, network="darts")
    with pytest.raises(ConfigError, match=r"has channels 4 but the network asks for channels 16"):
        network_from_run(tiny_run, NB201, channels=16)
    with pytest.raises(InvalidArchitectureError, match="looks like a DARTS genotype"):
        network_from_run(tiny_run, str(arch))
    search = tmp_path / "search-accuracy-evolution"  # a search result folder, not its supernet
    search.mkdir()
    (search / "best_arch.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"it holds no supernet run \(no config.yaml\); give the supernet's run directory"):
        network_from_run(search, NB201)
    with pytest.raises(ConfigError, match="it does not exist; give a run directory of tools/train_supernet.py"):
        network_from_run(tiny_run / "nope", NB201)


def test_a_copy_that_differs_from_the_supernet_subnet_is_refused():
    from genas.export.inherit import check_inherited
    from supernet import create_supernet

    torch.manual_seed(0)
    sn = create_supernet("nb201", num_classes=10, channels=4, layers=1).eval()
    net = network_from_supernet(sn, NB201)
    assert check_inherited(net, sn, net.arch, (3, 8, 8)) == 0.0
    with torch.no_grad():
        net.stem[0].weight.mul_(2.0)
    with pytest.raises(CheckpointError, match="the inherited network differs from the supernet's subnet by"):
        check_inherited(net, sn, net.arch, (3, 8, 8))


def test_inherit_refuses_a_network_of_another_stem(tiny_darts_run):
    with pytest.raises(ConfigError, match="network 'darts_imagenet' cannot inherit .* the CIFAR stem.*use network 'darts'"):
        network_from_run(tiny_darts_run, DARTS_V2, network="darts_imagenet")


@pytest.mark.parametrize("name", ["nb201", "darts", "darts_imagenet"])
def test_checkpoint_rebuilds_the_network_alone(name, tmp_path):
    net, size = tiny(name, **({"auxiliary": True} if name != "nb201" else {}))
    path = save_network(net, tmp_path / "net.pt", {"note": "test"})
    back = load_network(path)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        assert torch.equal(back(x), net(x))
    assert back.arch == net.arch and back.hparams == net.hparams and type(back) is type(net)
    assert torch.load(path, weights_only=True)["meta"] == {"note": "test"}  # plain data: timm's loader reads it


def test_bad_checkpoints_name_the_problem(tmp_path, tiny_run):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt or not a torch file"):
        load_network(bad)
    with pytest.raises(CheckpointError, match="a supernet training checkpoint"):
        load_network(tiny_run / "checkpoints" / "last.pt")
    with pytest.raises(CheckpointError, match="no network checkpoint at"):
        load_network(tmp_path / "missing.pt")


def test_read_arch_from_a_search_result(tmp_path):
    from evolution import create_algorithm, run_search

    for space in ("nb201", "darts"):
        algo = create_algorithm("random", create_space(space), seed=0, num_samples=20)
        result = run_search(algo, lambda archs: [float(sum(a.genes)) for a in archs], tmp_path / space, progress=False)
        assert read_arch(tmp_path / space / "best_arch.json") == result.best.arch
        assert read_arch(str(tmp_path / space / "best_arch.json"), space=space) == result.best.arch
    with pytest.raises(InvalidArchitectureError, match=r"holds a 'nb201' architecture; a 'darts' architecture is needed"):
        read_arch(tmp_path / "nb201" / "best_arch.json", space="darts")
    (tmp_path / "empty.json").write_text(json.dumps({"arch": None, "space": "nb201"}))
    with pytest.raises(InvalidArchitectureError, match="holds no architecture"):
        read_arch(tmp_path / "empty.json")
    with pytest.raises(DataNotFoundError, match="no architecture file at"):
        read_arch(tmp_path / "nope.json")


def test_read_arch_from_a_differentiable_search_result(tmp_path):
    from genas.differentiable.records import write_best

    class Architect:
        name = "a2m"

        def options(self):
            return {"rho": 0.01}

    arch = create_space("darts").parse(DARTS_V2)
    row = {"epoch": 3, "valid_loss": 0.5, "valid_acc": 0.8}
    write_best(tmp_path / "best_arch.json", arch=arch, row=row, space="darts", architect=Architect(), settings={},
               seed=0, epochs_run=3, metadata={})  # fmt: skip
    assert read_arch(tmp_path / "best_arch.json") == arch  # the genotype key, as tools/search_darts.py writes it
    net = create_network("darts", str(tmp_path / "best_arch.json"), channels=4, layers=3)
    assert net.arch == arch


def test_malformed_genotypes_are_refused():
    seven = DARTS_V2.replace("('dil_conv_3x3', 2)], normal_concat", "], normal_concat")
    with pytest.raises(InvalidArchitectureError, match="normal cell: a Genotype lists 8 .* got 7"):
        create_network("darts", seven)
    genes = list(create_space("darts").parse(DARTS_V2).genes)
    genes[4] = 4  # a third input into node 3 (edge 2->3)
    with pytest.raises(InvalidArchitectureError, match="node 3: 3 non-none inputs"):
        create_network("darts", genes)


def test_drop_path_zeroes_whole_samples_and_rescales_the_rest():
    x = torch.ones(1000, 2, 3, 3)
    y = drop_path(x, 0.25, torch.Generator().manual_seed(0))
    per_sample = y.flatten(1)
    assert torch.equal(per_sample.unique(), torch.tensor([0.0, 1 / 0.75]))
    assert (per_sample.std(1) == 0).all()  # a sample is dropped or kept whole
    assert 0.2 < (per_sample[:, 0] == 0).float().mean() < 0.3
    net, size = tiny("darts")
    net.drop_path_prob = 0.3
    x = torch.randn(4, 3, size, size)
    with torch.no_grad():
        assert torch.equal(net.eval()(x), net(x))  # eval: no drop-path
        net.train()
        g = torch.Generator().manual_seed(1)
        net.set_drop_path_generator(g)
        a = net(x)
        g.manual_seed(1)
        assert torch.equal(net(x), a)  # the masks come from the given generator


def test_darts_v2_in_the_mobile_setting():
    """genas counts the multiply-adds of convolutions and linear layers: DARTS-V2 at 224 px, C=48, 14 cells."""
    net = create_network("darts_imagenet", DARTS_V2)
    assert net.hparams["channels"] == 48 and net.hparams["layers"] == 14
    assert count_params(net) == 4_718_752  # the paper's 4.7M
    flops = count_flops(net, (1, 3, 224, 224))
    assert flops == pytest.approx(529.911552e6, abs=1.0) and flops < 600e6  # inside the mobile setting
    fvcore = pytest.importorskip("fvcore.nn")
    by_op = fvcore.FlopCountAnalysis(net.eval(), torch.zeros(1, 3, 224, 224))
    by_op.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    ops = by_op.by_operator()
    assert ops["conv"] + ops["linear"] == pytest.approx(flops, abs=1.0)  # a third-party counter agrees on the convention
    assert ops["batch_norm"] == pytest.approx(8.28e6, rel=1e-2)  # what fvcore adds on top
