"""Backbone geometry of the networks (dense stem, output stride, frozen stages) and the shared backbone core."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest
import torch

from genas.export import create_network, save_network
from genas.export.backbone import create_backbone
from genas.cli import run_cli
from genas.errors import CheckpointError, ConfigError, InvalidArchitectureError
from tests.test_export_networks import DARTS_V2, NB201, hooked_levels

OTHER_NB201 = "|nor_conv_1x1~0|+|avg_pool_3x3~0|skip_connect~1|+|skip_connect~0|avg_pool_3x3~1|nor_conv_3x3~2|"
DENSE = {"nb201": (NB201, dict(channels=4, layers=1, geometry="dense")),
         "darts": (DARTS_V2, dict(channels=4, layers=4, geometry="dense")),
         "darts_imagenet": (DARTS_V2, dict(channels=8, layers=3))}  # fmt: skip


def dense(name, **kw):
    arch, opts = DENSE[name]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return create_network(name, arch, **{**opts, **kw}).eval()


@pytest.mark.parametrize("name", list(DENSE))
def test_dense_levels_sit_at_strides_4_to_32_and_timm_reports_the_same(name):
    net = dense(name)
    assert [f["reduction"] for f in net.feature_info] == [4, 8, 16, 32]
    x = torch.randn(2, 3, 64, 64)
    expected, _ = hooked_levels(net, x)
    with torch.no_grad():
        maps = net.forward_intermediates(x, intermediates_only=True)
    assert [64 // m.shape[-1] for m in maps] == [4, 8, 16, 32] and all(torch.equal(a, b) for a, b in zip(maps, expected))
    assert [m.shape[1] for m in maps] == [f["num_chs"] for f in net.feature_info]
    body = create_backbone(DENSE[name][0], name, **DENSE[name][1])
    assert body.feature_info == net.feature_info  # one record: the network's
    timm = pytest.importorskip("timm", reason="timm is not installed (pip install -e '.[export]')")
    importlib.import_module("genas.export.timm_models")  # registers the genas_* models

    feats = timm.create_model(f"genas_{name}", arch=DENSE[name][0], features_only=True, **DENSE[name][1])
    assert feats.feature_info.reduction() == [4, 8, 16, 32]
    assert feats.feature_info.channels() == [f["num_chs"] for f in net.feature_info]


@pytest.mark.parametrize("name", list(DENSE))
@pytest.mark.parametrize("output_stride", [8, 16])
def test_output_stride_dilates_the_deep_stages_and_keeps_the_weights(name, output_stride):
    net = dense(name)
    dilated = dense(name, output_stride=output_stride)
    dilated.load_state_dict(net.state_dict())  # same shapes: a checkpoint loads at any output stride
    strides = [min(s, output_stride) for s in (4, 8, 16, 32)]
    assert [f["reduction"] for f in dilated.feature_info] == strides
    with torch.no_grad():
        maps = dilated.forward_intermediates(torch.randn(2, 3, 64, 64), intermediates_only=True)
        shallow = net.forward_intermediates(torch.randn(2, 3, 64, 64), indices=1, intermediates_only=True)
    assert [64 // m.shape[-1] for m in maps] == strides and shallow[0].shape[1] == maps[-1].shape[1]
    assert dilated.hparams["output_stride"] == output_stride


def test_output_stride_the_geometry_cannot_give_is_refused():
    with pytest.raises(ConfigError, match=r"output_stride=8 cannot be given by nb201: its stem reaches stride 1 and its "
                                          r"last level stride 4, so output_stride must be one of \[1, 2, 4\]"):  # fmt: skip
        create_network("nb201", NB201, channels=4, layers=1, output_stride=8)
    with pytest.raises(ConfigError, match=r"output_stride=4 cannot be given by darts_imagenet.*one of \[8, 16, 32\]"):
        dense("darts_imagenet", output_stride=4)
    with pytest.raises(ConfigError, match=r"The 'geometry' parameter of darts must be one of \['cifar', 'dense'\]"):
        create_network("darts", DARTS_V2, channels=4, layers=4, geometry="wide")
    with pytest.raises(ConfigError, match="geometry 'dense' of darts needs layers >= 4"):
        create_network("darts", DARTS_V2, channels=4, layers=3, geometry="dense")
    with pytest.raises(ConfigError, match="auxiliary=True of darts needs the classification geometry"):
        create_network("darts", DARTS_V2, channels=4, layers=4, geometry="dense", auxiliary=True)


def test_frozen_stages_and_norm_eval():
    body = create_backbone(NB201, channels=4, layers=1, frozen_stages=1, norm_eval=False).train()
    net = body.net
    frozen = [p for m in (net.stem, net.cells[0]) for p in m.parameters()]
    assert frozen and not any(p.requires_grad for p in frozen)
    assert all(p.requires_grad for p in net.cells[1].parameters())
    assert not net.stem[1].training and net.cells[1].conv_a[2].training
    body = create_backbone(NB201, channels=4, layers=1, norm_eval=True).train()
    bns = [m for m in body.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns) and all(p.requires_grad for p in body.parameters())
    assert isinstance(body.net.classifier, torch.nn.Identity)  # the head is dropped
    body = create_backbone(DARTS_V2, "darts_imagenet", channels=8, layers=3, out_indices=(2,), frozen_stages=4)
    assert not any(p.requires_grad for p in body.parameters()) and body(torch.zeros(1, 3, 64, 64))[0].shape[-1] == 4


def test_backbone_from_a_network_checkpoint(tmp_path):
    net = dense("darts")
    path = save_network(net, tmp_path / "net.pt")
    body = create_backbone(checkpoint=path, out_indices=(1, 3), output_stride=16).eval()
    ref = dense("darts", output_stride=16)
    ref.load_state_dict(net.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        got, want = body(x), ref.forward_intermediates(x, indices=(1, 3), intermediates_only=True)
    assert all(torch.equal(a, b) for a, b in zip(got, want)) and body.feature_info[-1]["reduction"] == 16
    assert create_backbone(DARTS_V2, checkpoint=path).feature_info == net.feature_info  # the file's geometry
    nb = save_network(create_network("nb201", NB201, channels=4, layers=1), tmp_path / "nb.pt")
    with pytest.raises(CheckpointError, match=r"holds the weights of \|nor_conv_3x3~0\|.*, not of \|nor_conv_1x1~0\|"):
        create_backbone(OTHER_NB201, checkpoint=nb)
    with pytest.raises(CheckpointError, match="holds a 'nb201' network, not 'darts'"):
        create_backbone(network="darts", checkpoint=nb)
    with pytest.raises(CheckpointError, match="its weights do not fit this backbone"):
        create_backbone(checkpoint=nb, geometry="dense")  # a CIFAR-geometry checkpoint has no dense stem


def test_bad_backbone_options_name_the_value_and_what_is_allowed():
    with pytest.raises(InvalidArchitectureError):
        create_backbone("|not_an_op~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    with pytest.raises(ConfigError, match=r"out_indices \(0, 4\) is out of range: nb201 has 4 feature levels: indices 0..3"):
        create_backbone(NB201, channels=4, layers=1, out_indices=(0, 4))
    with pytest.raises(ConfigError, match=r"'frozen_stages' parameter of the nb201 backbone must be an int in the range \[-1, 4\]"):
        create_backbone(NB201, channels=4, layers=1, frozen_stages=5)
    with pytest.raises(ConfigError, match="a genas backbone needs arch"):
        create_backbone()


def test_export_cli_says_in_one_line_what_output_stride_and_geometry_allow(capsys):
    from genas.export.cli import main

    code = run_cli(main, ["--arch", NB201, "--model.options.output_stride", "8", "--format", "pt", "--out", "/nonexistent/x.pt"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "output_stride must be one of [1, 2, 4]" in err
    code = run_cli(main, ["--arch", NB201, "--model.options.geometry", "wide", "--check"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "geometry" in err and "'dense'" in err


def test_genas_imports_neither_framework():
    code = "import sys, genas.export, genas.export.backbone, genas.export.timm_models; print(any(m in sys.modules for m in ('detectron2', 'mmseg', 'mmengine')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
