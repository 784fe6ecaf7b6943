"""The genas networks as timm models, with the real timm: create_model, features_only, pretrained files, the API."""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings

import pytest
import torch

timm = pytest.importorskip("timm", reason="timm is not installed (pip install -e '.[export]')")

import genas.export.timm_models  # noqa: E402  (registers the genas_* models)
from genas.export import create_network, save_network  # noqa: E402
from genas.errors import ConfigError  # noqa: E402
from tests.test_export_networks import DARTS_V2, NB201, hooked_levels  # noqa: E402

SMALL = {"genas_nb201": dict(arch=NB201, channels=4, layers=1), "genas_darts": dict(arch=DARTS_V2, channels=4, layers=5),
         "genas_darts_imagenet": dict(arch=DARTS_V2, channels=8, layers=3)}  # fmt: skip
SIZE = {"genas_nb201": 16, "genas_darts": 16, "genas_darts_imagenet": 64}


def seeded(fn, *args, **kwargs):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return fn(*args, **kwargs)


def test_models_are_registered():
    assert timm.list_models("genas_*") == ["genas_darts", "genas_darts_imagenet", "genas_nb201"]
    assert timm.models.is_model("genas_darts")


@pytest.mark.parametrize("name", list(SMALL))
def test_create_model_is_the_genas_network(name):
    m = seeded(timm.create_model, name, num_classes=7, **SMALL[name]).eval()
    opts = dict(SMALL[name])
    net = seeded(create_network, genas.export.timm_models.MODEL_NAMES[name], opts.pop("arch"), num_classes=7, **opts).eval()
    x = torch.randn(2, 3, SIZE[name], SIZE[name])
    with torch.no_grad():
        assert torch.equal(m(x), net(x))
    assert m.pretrained_cfg["architecture"] == name and m.default_cfg is m.pretrained_cfg
    assert m.num_classes == 7 and m.get_classifier().out_features == 7


@pytest.mark.parametrize("name", list(SMALL))
def test_features_only_returns_the_networks_own_stage_outputs(name, tmp_path):
    opts = dict(SMALL[name])
    net = seeded(create_network, genas.export.timm_models.MODEL_NAMES[name], opts.pop("arch"), **opts).eval()
    path = save_network(net, tmp_path / "net.pt")
    overlay = dict(file=str(path))
    x = torch.randn(2, 3, SIZE[name], SIZE[name])
    levels = len(net.feature_info)
    feats = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay, features_only=True,
                              out_indices=(0, levels - 1)).eval()  # fmt: skip
    assert type(feats).__name__ == "FeatureGetterNet"
    expected, logits = hooked_levels(net, x)
    with torch.no_grad():
        got = feats(x)
        own = net.forward_intermediates(x, indices=(0, levels - 1), intermediates_only=True)
    assert len(got) == 2 and all(torch.equal(a, b) for a, b in zip(got, own))
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[-1])
    info = net.feature_info
    assert feats.feature_info.channels() == [info[0]["num_chs"], info[-1]["num_chs"]]
    assert feats.feature_info.reduction() == [info[0]["reduction"], info[-1]["reduction"]]
    whole = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay).eval()
    with torch.no_grad():
        assert torch.equal(whole(x), logits)  # the final output is unchanged
    all_levels = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay, features_only=True).eval()
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(all_levels(x), expected))


def test_out_indices_out_of_range_fail_at_creation():
    with pytest.raises(ConfigError, match=r"out_indices \(0, 3\) is out of range: darts has 3 feature levels"):
        timm.create_model("genas_darts", features_only=True, out_indices=(0, 3), **SMALL["genas_darts"])
    with pytest.raises(ConfigError, match="genas_nb201 needs arch="):
        timm.create_model("genas_nb201")


def test_pretrained_file_with_another_head_keeps_the_body(tmp_path):
    net = seeded(create_network, "darts", DARTS_V2, channels=4, layers=5, auxiliary=True).eval()
    path = save_network(net, tmp_path / "net.pt")
    m = timm.create_model("genas_darts", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)), num_classes=3,
                          auxiliary=False).eval()  # fmt: skip
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(m.forward_features(x), net.forward_features(x))
    assert m(x).shape == (2, 3) and m.auxiliary_head is None
    nb = save_network(seeded(create_network, "nb201", NB201, channels=4, layers=1), tmp_path / "nb.pt")
    with pytest.raises(ConfigError, match="holds a 'nb201' network; create it as 'genas_nb201'"):
        timm.create_model("genas_darts", pretrained=True, pretrained_cfg_overlay=dict(file=str(nb)))
    with pytest.raises(RuntimeError, match="No pretrained weights exist"):
        timm.create_model("genas_nb201", pretrained=True, **SMALL["genas_nb201"])


def test_model_api_reset_classifier_and_pre_logits():
    m = seeded(timm.create_model, "genas_darts", **SMALL["genas_darts"]).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        pooled = m.forward_head(m.forward_features(x), pre_logits=True)
        m.reset_classifier(5)
        assert m(x).shape == (2, 5) and m.num_classes == 5
        m.reset_classifier(0)
        assert torch.equal(m(x), pooled) and isinstance(m.get_classifier(), torch.nn.Identity)
    with pytest.raises(ConfigError, match="global_pool of darts must be 'avg'"):
        m.reset_classifier(3, "max")


def test_registration_is_idempotent():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # timm warns when a name is registered twice
        importlib.reload(genas.export.timm_models)
    assert timm.create_model("genas_nb201", **SMALL["genas_nb201"]).num_classes == 10


def test_genas_does_not_import_timm_and_says_how_to_install_it():
    code = "import sys, genas, genas.data, supernet, genas.export, genas.export.retrain; print('timm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    code = "import sys; sys.modules['timm'] = None; import genas.export.timm_models"  # as if timm were not installed
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "MissingDependencyError: genas networks as timm models (genas.export.timm_models) needs the 'timm' package, " \
           "which is not installed: pip install 'genas[export]'" in out.stderr  # fmt: skip
