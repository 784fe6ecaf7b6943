"""The genas networks as Detectron2 backbones: ``build_genas_backbone`` and two FPN builders.

Importing this module registers, in Detectron2's ``BACKBONE_REGISTRY`` (idempotently: a second
import or :func:`register` call changes nothing):

* ``build_genas_backbone``: the network's levels as a :class:`GenasBackbone` (names ``res2`` ...
  ``res5`` for levels 0..3, the ResNet stage names of the same strides in the dense geometry);
* ``build_genas_fpn_backbone``: an FPN on it with a max-pooled top level (Faster / Mask R-CNN);
* ``build_retinanet_genas_fpn_backbone``: an FPN with RetinaNet's P6 / P7 (made from P5).

The options live under ``cfg.MODEL.GENAS`` (:func:`add_genas_config` adds them to a ``get_cfg()``)::

    ARCH           best_arch.json, an NB201 string or a DARTS Genotype ("": the checkpoint's)
    NETWORK        nb201 | darts | darts_imagenet ("": the architecture space's)
    WEIGHTS        a genas network checkpoint (tools/retrain.py's model.pt; "": fresh weights)
    CHANNELS, LAYERS   the network's C and depth (0: its default, or the checkpoint's)
    GEOMETRY       dense (levels at strides 4 / 8 / 16 / 32) | cifar ("": the checkpoint's, else dense)
    OUTPUT_STRIDE  0 (none) or 8 / 16: dilate the deeper stages (an FPN needs 0)
    OUT_FEATURES   the levels returned, e.g. ["res3", "res4", "res5"]
    FREEZE_AT      0: train all; 1: freeze the stem; k: the stem and res2..res(k) (Detectron2's meaning)
    NORM_EVAL      keep BatchNorm statistics frozen in training

Example (``configs/dense/detectron2_retinanet_genas.yaml``)::

    from detectron2.config import get_cfg
    from detectron2.modeling import build_model
    from genas.export.detectron2 import add_genas_config

    cfg = add_genas_config(get_cfg())
    cfg.merge_from_file("configs/dense/detectron2_retinanet_genas.yaml")
    cfg.MODEL.GENAS.ARCH = "best_arch.json"
    model = build_model(cfg)
"""

from __future__ import annotations

import math
import re
from typing import Any

from genas.export.deps import require

INSTALL = ("pip install 'setuptools<81' 'git+https://github.com/facebookresearch/detectron2.git' "
           "(see https://detectron2.readthedocs.io/en/latest/tutorials/install.html)")  # fmt: skip
detectron2 = require("detectron2", "the Detectron2 backbone (genas.export.detectron2)", INSTALL)

from detectron2.config import CfgNode  # noqa: E402
from detectron2.layers import ShapeSpec  # noqa: E402
from detectron2.modeling import BACKBONE_REGISTRY, Backbone  # noqa: E402
from detectron2.modeling.backbone.fpn import FPN, LastLevelMaxPool, LastLevelP6P7  # noqa: E402

from genas.export.backbone import DenseBackbone, backbone_network  # noqa: E402
from genas.errors import ConfigError  # noqa: E402

__all__ = ["GenasBackbone", "add_genas_config", "build_genas_backbone", "build_genas_fpn_backbone",
           "build_retinanet_genas_fpn_backbone", "register"]  # fmt: skip


def add_genas_config(cfg: CfgNode) -> CfgNode:
    """Add the ``MODEL.GENAS`` node with its defaults to ``cfg`` (once); return ``cfg``."""
    if "GENAS" in cfg.MODEL:
        return cfg
    cfg.MODEL.GENAS = CfgNode()
    g = cfg.MODEL.GENAS
    g.ARCH, g.NETWORK, g.WEIGHTS = "", "", ""
    g.CHANNELS, g.LAYERS, g.GEOMETRY, g.OUTPUT_STRIDE = 0, 0, "", 0
    g.OUT_FEATURES = ["res3", "res4", "res5"]
    g.FREEZE_AT, g.NORM_EVAL = 0, False
    return cfg


def level_name(index: int) -> str:
    """``res2`` for level 0, ``res3`` for level 1, ..."""
    return f"res{index + 2}"


class GenasBackbone(Backbone):
    """Detectron2's ``Backbone`` face of a :class:`genas.export.backbone.DenseBackbone`: a dict of named levels."""

    def __init__(self, body: DenseBackbone) -> None:
        super().__init__()
        self.body = body
        self._out_features = [level_name(i) for i in body.out_indices]
        self._out_feature_channels = {n: f["num_chs"] for n, f in zip(self._out_features, body.feature_info)}
        self._out_feature_strides = {n: f["reduction"] for n, f in zip(self._out_features, body.feature_info)}

    def forward(self, x: Any) -> dict[str, Any]:
        return dict(zip(self._out_features, self.body(x)))

    def output_shape(self) -> dict[str, ShapeSpec]:
        return {n: ShapeSpec(channels=self._out_feature_channels[n], stride=self._out_feature_strides[n])
                for n in self._out_features}  # fmt: skip


def _out_indices(names: list[str], levels: int, network: str) -> list[int]:
    allowed = [level_name(i) for i in range(levels)]
    bad = [n for n in names if n not in allowed]
    if bad or not names:
        raise ConfigError(f"MODEL.GENAS.OUT_FEATURES {list(names)} names no level of the {network} backbone"
                          if not names else f"MODEL.GENAS.OUT_FEATURES {bad} are not levels of the {network} backbone; "
                          f"it has {allowed}")  # fmt: skip
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"MODEL.GENAS.OUT_FEATURES {list(names)} names {twice} more than once; name each level of "
                          f"{allowed} at most once")  # fmt: skip
    return [int(re.fullmatch(r"res(\d+)", n).group(1)) - 2 for n in names]


def _frozen_stages(freeze_at: Any, levels: int, network: str) -> int:
    """MMSeg's ``frozen_stages`` of Detectron2's ``FREEZE_AT``, refused in Detectron2's terms when out of range."""
    if isinstance(freeze_at, bool) or not isinstance(freeze_at, int) or not 0 <= freeze_at <= levels + 1:
        raise ConfigError(f"MODEL.GENAS.FREEZE_AT = {freeze_at!r} is out of range: the {network} backbone has a stem and "
                          f"{levels} levels (res2..res{levels + 1}), so FREEZE_AT must be an int in 0..{levels + 1} "
                          f"(0: train all, 1: freeze the stem, k: the stem and res2..res<k>)")  # fmt: skip
    return freeze_at - 1


def build_genas_backbone(cfg: CfgNode, input_shape: ShapeSpec) -> GenasBackbone:
    """The genas network of ``cfg.MODEL.GENAS`` as a Detectron2 backbone."""
    g = cfg.MODEL.GENAS
    net = backbone_network(g.ARCH or None, g.NETWORK or None, g.WEIGHTS or None, in_chans=input_shape.channels,
                           channels=g.CHANNELS or None, layers=g.LAYERS or None, geometry=g.GEOMETRY or None,
                           output_stride=g.OUTPUT_STRIDE or None)  # fmt: skip
    levels = len(net.feature_info)
    indices = _out_indices(list(g.OUT_FEATURES), levels, net.name)
    frozen = _frozen_stages(g.FREEZE_AT, levels, net.name)
    return GenasBackbone(DenseBackbone(net, indices, frozen_stages=frozen, norm_eval=g.NORM_EVAL))


def _check_fpn_input(bottom_up: GenasBackbone, in_features: list[str], builder: str) -> None:
    """What Detectron2's FPN asserts, said up front in one line: levels from high to low resolution, strides doubling."""
    strides = [bottom_up.output_shape()[f].stride for f in in_features]
    if any(b != 2 * a for a, b in zip(strides, strides[1:])):
        dilated = bottom_up.body.net.hparams.get("output_stride")
        why = f" (the network of MODEL.GENAS.WEIGHTS is dilated to output stride {dilated})" if dilated else ""
        raise ConfigError(f"MODEL.FPN.IN_FEATURES {in_features} have strides {strides} on the genas backbone{why}; "
                          f"{builder} needs a contiguous run of levels from high to low resolution, each stride twice "
                          "the last. Must set MODEL.FPN.IN_FEATURES (or MODEL.GENAS.OUT_FEATURES) to such a run, e.g. "
                          "['res3', 'res4', 'res5']")  # fmt: skip


def _fpn(cfg: CfgNode, input_shape: ShapeSpec, top_block: Any, builder: str) -> FPN:
    if cfg.MODEL.GENAS.OUTPUT_STRIDE:  # before anything is built: a dilated network has no strides 16 / 32
        raise ConfigError(f"MODEL.GENAS.OUTPUT_STRIDE = {cfg.MODEL.GENAS.OUTPUT_STRIDE} cannot be used with {builder}: "
                          "an FPN needs the levels at strides 4 / 8 / 16 / 32 (output stride 32, no dilation). Must set "
                          "MODEL.GENAS.OUTPUT_STRIDE = 0 (8 and 16 are for DeepLab-style heads without an FPN)")  # fmt: skip
    bottom_up = build_genas_backbone(cfg, input_shape)
    in_features = list(cfg.MODEL.FPN.IN_FEATURES) or bottom_up._out_features
    missing = [f for f in in_features if f not in bottom_up._out_features]
    if missing:
        raise ConfigError(f"MODEL.FPN.IN_FEATURES {missing} are not in MODEL.GENAS.OUT_FEATURES {bottom_up._out_features}")
    _check_fpn_input(bottom_up, in_features, builder)
    if top_block == "p6p7":
        last = int(math.log2(bottom_up.output_shape()[in_features[-1]].stride))
        top_block = LastLevelP6P7(cfg.MODEL.FPN.OUT_CHANNELS, cfg.MODEL.FPN.OUT_CHANNELS, in_feature=f"p{last}")
    return FPN(bottom_up=bottom_up, in_features=in_features, out_channels=cfg.MODEL.FPN.OUT_CHANNELS,
               norm=cfg.MODEL.FPN.NORM, top_block=top_block, fuse_type=cfg.MODEL.FPN.FUSE_TYPE)  # fmt: skip


def build_genas_fpn_backbone(cfg: CfgNode, input_shape: ShapeSpec) -> FPN:
    """An FPN on the genas backbone with a max-pooled top level (Detectron2's ``build_resnet_fpn_backbone``)."""
    return _fpn(cfg, input_shape, LastLevelMaxPool(), "build_genas_fpn_backbone")


def build_retinanet_genas_fpn_backbone(cfg: CfgNode, input_shape: ShapeSpec) -> FPN:
    """An FPN on the genas backbone with RetinaNet's P6 and P7, made from the FPN's last level."""
    return _fpn(cfg, input_shape, "p6p7", "build_retinanet_genas_fpn_backbone")


def register() -> list[str]:
    """Register the builders in ``BACKBONE_REGISTRY`` unless they are there already; return their names."""
    names = []
    for fn in (build_genas_backbone, build_genas_fpn_backbone, build_retinanet_genas_fpn_backbone):
        if fn.__name__ not in BACKBONE_REGISTRY:
            BACKBONE_REGISTRY.register(fn)
        names.append(fn.__name__)
    return names


register()
