"""The genas backbone in MMSegmentation, with the real library: DeepLabV3 (ASPP) from the example config."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest
import torch

pytest.importorskip("mmseg", reason="MMSegmentation is not installed (python .ci/install_dense.py installs the test wheels)")
pytest.importorskip("mmseg.models", reason="mmseg.models does not import (mmcv without its compiled ops)")

from mmengine.config import Config  # noqa: E402
from mmengine.optim import OptimWrapper  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmengine.structures import PixelData  # noqa: E402
from mmseg.registry import MODELS  # noqa: E402
from mmseg.structures import SegDataSample  # noqa: E402
from mmseg.utils import register_all_modules  # noqa: E402

from genas.export import create_network, save_network  # noqa: E402
from genas.errors import CheckpointError, ConfigError  # noqa: E402
from tests.conftest import REPO  # noqa: E402
from tests.test_export_networks import NB201  # noqa: E402

CONFIG = REPO / "configs" / "dense" / "mmseg_deeplabv3_genas.py"
OTHER_NB201 = "|nor_conv_1x1~0|+|avg_pool_3x3~0|skip_connect~1|+|skip_connect~0|avg_pool_3x3~1|nor_conv_3x3~2|"


@pytest.fixture(scope="module")
def cfg():
    config = Config.fromfile(str(CONFIG))  # its custom_imports import genas.export.mmseg
    register_all_modules(init_default_scope=False)
    init_default_scope("mmseg")
    config.model.backbone.update(arch=NB201, channels=8, layers=1)
    config.model.decode_head.update(in_channels=64, channels=16, num_classes=3)
    config.model.data_preprocessor.size = (64, 64)
    return config


def batch(n=2):
    g = torch.Generator().manual_seed(0)
    samples = []
    for _ in range(n):
        s = SegDataSample(gt_sem_seg=PixelData(data=torch.randint(0, 3, (1, 64, 64), generator=g)))
        s.set_metainfo(dict(img_shape=(64, 64), ori_shape=(64, 64), pad_shape=(64, 64)))
        samples.append(s)
    images = [torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8, generator=g) for _ in range(n)]
    return dict(inputs=images, data_samples=samples)


def test_deeplabv3_builds_from_the_config_and_trains_a_step(cfg):
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    assert type(model.backbone).__name__ == "GenasBackbone" and type(model.decode_head).__name__ == "ASPPHead"
    assert [(f["num_chs"], f["reduction"]) for f in model.backbone.feature_info] == [(8, 4), (16, 8), (32, 8), (64, 8)]
    data = model.data_preprocessor(batch(), training=True)
    model.train()
    logits = model(data["inputs"], data["data_samples"], mode="tensor")
    assert logits.shape == (2, 3, 8, 8)  # output stride 8
    losses = model(data["inputs"], data["data_samples"], mode="loss")
    assert torch.isfinite(losses["decode.loss_ce"])
    before = model.backbone.body.net.stem[0].weight.detach().clone()
    log = model.train_step(batch(), OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01)))
    assert torch.isfinite(log["loss"]) and not torch.equal(model.backbone.body.net.stem[0].weight, before)
    model.eval()
    pred = model.test_step(batch(1))[0].pred_sem_seg.data
    assert pred.shape == (1, 64, 64) and int(pred.max()) < 3


def test_pretrained_init_cfg_loads_a_genas_checkpoint(cfg, tmp_path):
    net = create_network("nb201", NB201, channels=8, layers=1, geometry="dense")
    path = save_network(net, tmp_path / "model.pt")
    init = dict(type="Pretrained", checkpoint=str(path))
    backbone = MODELS.build(dict(type="GenasBackbone", out_indices=(3,), frozen_stages=0, norm_eval=True, init_cfg=init))
    backbone.init_weights()
    assert torch.equal(backbone.body.net.stem[0].weight, net.stem[0].weight)
    assert not any(p.requires_grad for p in backbone.body.net.stem.parameters())
    backbone.train()
    assert not any(m.training for m in backbone.modules() if isinstance(m, torch.nn.BatchNorm2d))
    with pytest.raises(CheckpointError, match="holds the weights of .*, not of"):
        MODELS.build(dict(type="GenasBackbone", arch=OTHER_NB201, init_cfg=init))


def test_bad_arguments_are_named(cfg):
    with pytest.raises(ConfigError, match=r"out_indices \(0, 4\) is out of range: nb201 has 4 feature levels"):
        MODELS.build(dict(type="GenasBackbone", arch=NB201, channels=4, layers=1, out_indices=(0, 4)))
    with pytest.raises(ConfigError, match=r"output_stride=3 cannot be given by nb201.*one of \[4, 8, 16, 32\]"):
        MODELS.build(dict(type="GenasBackbone", arch=NB201, channels=4, layers=1, output_stride=3))
    with pytest.raises(ConfigError, match=r"'frozen_stages' parameter of the nb201 backbone"):
        MODELS.build(dict(type="GenasBackbone", arch=NB201, channels=4, layers=1, frozen_stages=7))
    with pytest.raises(TypeError):  # a typo raises instead of vanishing
        MODELS.build(dict(type="GenasBackbone", arch=NB201, out_indice=(0,)))


@pytest.mark.parametrize("args, needle", [
    ({"out_indices": (3, 2, 1, 0)}, "out_indices=(3, 2, 1, 0) of GenasBackbone (nb201) must list distinct levels from "
                                    "high to low resolution (strides growing), as MMSeg's heads and necks index them; "
                                    "e.g. (0, 1, 2, 3) of its levels 0..3"),
    ({"out_indices": (0, 1, 1, 3)}, "out_indices=(0, 1, 1, 3) of GenasBackbone (nb201) must list distinct levels"),
    ({"out_indices": (0, 1, 2, 5)}, "out_indices (0, 1, 2, 5) is out of range: nb201 has 4 feature levels: indices 0..3"),
    ({"frozen_stages": 5}, "The 'frozen_stages' parameter of the nb201 backbone must be an int in the range [-1, 4] "
                           "(-1: none, 0: the stem, k: the stem and levels 0..k-1). Got 5 instead."),
    ({"frozen_stages": -2}, "must be an int in the range [-1, 4]"),
])  # fmt: skip
def test_levels_the_head_cannot_use_and_stages_beyond_the_depth_are_one_line(cfg, args, needle):
    with pytest.raises(ConfigError) as info:
        MODELS.build(dict(type="GenasBackbone", arch=NB201, channels=4, layers=1, **args))
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_registration_is_idempotent():
    import genas.export.mmseg

    assert genas.export.mmseg.register() == "GenasBackbone"
    importlib.reload(genas.export.mmseg)
    assert genas.export.mmseg.register() == "GenasBackbone" and MODELS.get("GenasBackbone") is genas.export.mmseg.GenasBackbone


def test_missing_mmseg_is_one_line_with_the_install_command():
    code = "import sys; sys.modules['mmseg'] = None; import genas.export.mmseg"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "MissingDependencyError: the MMSegmentation backbone (genas.export.mmseg) needs the 'mmseg' package, which is " \
           "not installed: pip install mmengine 'mmcv>=2.0.0rc4,<2.2.0' mmsegmentation ftfy regex" in out.stderr  # fmt: skip
