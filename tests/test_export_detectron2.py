"""The genas backbones in Detectron2, with the real library: RetinaNet from get_cfg() trains a step and predicts."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest
import torch

pytest.importorskip("detectron2", reason="Detectron2 is not installed (python .ci/install_dense.py installs the test wheels)")

from detectron2.config import get_cfg  # noqa: E402
from detectron2.modeling import BACKBONE_REGISTRY, build_model  # noqa: E402
from detectron2.structures import Boxes, Instances  # noqa: E402
from detectron2.utils.events import EventStorage  # noqa: E402

import genas.export.detectron2 as d2  # noqa: E402
from genas.export import create_network, save_network  # noqa: E402
from genas.errors import CheckpointError, ConfigError  # noqa: E402
from tests.conftest import REPO  # noqa: E402
from tests.test_export_networks import NB201  # noqa: E402

CONFIG = REPO / "configs" / "dense" / "detectron2_retinanet_genas.yaml"
BUILDERS = ["build_genas_backbone", "build_genas_fpn_backbone", "build_retinanet_genas_fpn_backbone"]


def tiny_cfg(**genas):
    cfg = d2.add_genas_config(get_cfg())
    cfg.merge_from_file(str(CONFIG))
    cfg.MODEL.GENAS.update({"ARCH": NB201, "CHANNELS": 8, "LAYERS": 1, **genas})
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.FPN.OUT_CHANNELS = 16
    cfg.MODEL.RETINANET.NUM_CLASSES = 3
    cfg.MODEL.RETINANET.SCORE_THRESH_TEST = 0.0  # an untrained model scores below the default threshold
    return cfg


def test_retinanet_with_the_genas_backbone_trains_a_step_and_predicts():
    torch.manual_seed(0)
    model = build_model(tiny_cfg())
    bottom_up = model.backbone.bottom_up
    assert isinstance(bottom_up, d2.GenasBackbone)
    assert {k: (v.channels, v.stride) for k, v in bottom_up.output_shape().items()} == {
        "res3": (16, 8), "res4": (32, 16), "res5": (64, 32)}  # fmt: skip
    assert [v.stride for v in model.backbone.output_shape().values()] == [8, 16, 32, 64, 128]
    image = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8)
    boxes = Instances((64, 64), gt_boxes=Boxes(torch.tensor([[4.0, 6.0, 30.0, 40.0], [20.0, 10.0, 60.0, 50.0]])),
                      gt_classes=torch.tensor([1, 2]))  # fmt: skip
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01)
    before = next(bottom_up.parameters()).detach().clone()
    model.train()
    with EventStorage(0):
        losses = model([{"image": image, "instances": boxes}])
    assert set(losses) == {"loss_cls", "loss_box_reg"} and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    opt.step()
    assert not torch.equal(next(bottom_up.parameters()), before)
    model.eval()
    with torch.no_grad():
        out = model([{"image": image, "height": 64, "width": 64}])
    inst = out[0]["instances"]
    assert len(inst) > 0 and inst.pred_boxes.tensor.shape[1] == 4 and torch.isfinite(inst.scores).all()


def test_weights_and_frozen_stages_from_the_config(tmp_path):
    net = create_network("nb201", NB201, channels=8, layers=1, geometry="dense")
    path = save_network(net, tmp_path / "model.pt")
    cfg = tiny_cfg(ARCH="", CHANNELS=0, LAYERS=0, WEIGHTS=str(path), FREEZE_AT=2, OUT_FEATURES=["res2", "res5"])
    cfg.MODEL.BACKBONE.NAME = "build_genas_backbone"
    backbone = BACKBONE_REGISTRY.get("build_genas_backbone")(cfg, d2.ShapeSpec(channels=3))
    assert torch.equal(backbone.body.net.stem[0].weight, net.stem[0].weight)
    net_ = backbone.body.net  # FREEZE_AT 2: the stem and res2 (level 0: the first stage's cell)
    assert not any(p.requires_grad for m in (net_.stem, net_.cells[0]) for p in m.parameters())
    assert all(p.requires_grad for p in net_.cells[1].parameters())
    x = torch.randn(1, 3, 64, 64)
    assert [tuple(v.shape[-2:]) for v in backbone(x).values()] == [(16, 16), (2, 2)]
    with pytest.raises(CheckpointError, match="holds the weights of .*, not of"):
        build_model(tiny_cfg(ARCH="|nor_conv_1x1~0|+|avg_pool_3x3~0|skip_connect~1|+|skip_connect~0|avg_pool_3x3~1|nor_conv_3x3~2|",
                             CHANNELS=0, LAYERS=0, WEIGHTS=str(path)))  # fmt: skip


def test_bad_config_values_are_named():
    with pytest.raises(ConfigError, match=r"OUT_FEATURES \['res6'\] are not levels of the nb201 backbone; it has "
                                          r"\['res2', 'res3', 'res4', 'res5'\]"):  # fmt: skip
        build_model(tiny_cfg(OUT_FEATURES=["res3", "res6"]))
    with pytest.raises(ConfigError, match=r"output_stride=8 cannot be given by nb201.*one of \[1, 2, 4\]"):
        BACKBONE_REGISTRY.get("build_genas_backbone")(tiny_cfg(GEOMETRY="cifar", OUTPUT_STRIDE=8), d2.ShapeSpec(channels=3))
    with pytest.raises(CheckpointError, match="no network checkpoint at"):
        build_model(tiny_cfg(WEIGHTS="/nonexistent/model.pt"))


@pytest.mark.parametrize("builder", BUILDERS[1:])
@pytest.mark.parametrize("genas, fpn, needle", [
    ({"OUTPUT_STRIDE": 8}, None, "MODEL.GENAS.OUTPUT_STRIDE = 8 cannot be used with {builder}: an FPN needs the levels "
                                 "at strides 4 / 8 / 16 / 32 (output stride 32, no dilation). Must set MODEL.GENAS.OUTPUT_STRIDE = 0"),
    ({"OUTPUT_STRIDE": 16}, None, "MODEL.GENAS.OUTPUT_STRIDE = 16 cannot be used with {builder}"),
    ({"OUT_FEATURES": ["res3", "res5"]}, [], "MODEL.FPN.IN_FEATURES ['res3', 'res5'] have strides [8, 32] on the genas "
                                             "backbone; {builder} needs a contiguous run of levels"),
    ({}, ["res5", "res4", "res3"], "MODEL.FPN.IN_FEATURES ['res5', 'res4', 'res3'] have strides [32, 16, 8]"),
    ({"OUT_FEATURES": ["res3", "res3", "res4"]}, [], "MODEL.GENAS.OUT_FEATURES ['res3', 'res3', 'res4'] names ['res3'] "
                                                     "more than once"),
    ({"FREEZE_AT": 9}, None, "MODEL.GENAS.FREEZE_AT = 9 is out of range: the nb201 backbone has a stem and 4 levels "
                             "(res2..res5), so FREEZE_AT must be an int in 0..5"),
    ({"FREEZE_AT": -1}, None, "MODEL.GENAS.FREEZE_AT = -1 is out of range"),
])  # fmt: skip
def test_what_the_fpn_cannot_use_is_refused_in_one_line_before_detectron2_asserts(builder, genas, fpn, needle):
    cfg = tiny_cfg(**genas)
    cfg.MODEL.BACKBONE.NAME = builder
    if fpn is not None:
        cfg.MODEL.FPN.IN_FEATURES = fpn
    with pytest.raises(ConfigError) as info:
        build_model(cfg)
    assert needle.format(builder=builder) in str(info.value) and "\n" not in str(info.value)


def test_registration_is_idempotent():
    assert d2.register() == BUILDERS
    importlib.reload(d2)  # a second import registers nothing twice (the registry would raise)
    assert d2.register() == BUILDERS and all(name in BACKBONE_REGISTRY for name in BUILDERS)
    cfg = d2.add_genas_config(d2.add_genas_config(get_cfg()))
    assert cfg.MODEL.GENAS.OUT_FEATURES == ["res3", "res4", "res5"]


def test_missing_detectron2_is_one_line_with_the_install_command():
    code = "import sys; sys.modules['detectron2'] = None; import genas.export.detectron2"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "MissingDependencyError: the Detectron2 backbone (genas.export.detectron2) needs the 'detectron2' package, " \
           "which is not installed: pip install 'setuptools<81' 'git+https://github.com/facebookresearch/detectron2.git'" in out.stderr  # fmt: skip
