"""The genas networks as an MMSegmentation backbone: ``GenasBackbone`` in ``mmseg.registry.MODELS``.

Importing this module registers it (idempotently); a config reaches it with
``custom_imports = dict(imports=["genas.export.mmseg"], allow_failed_imports=False)`` and
``backbone=dict(type="GenasBackbone", arch="best_arch.json", ...)``. The arguments are MMSeg's usual
ones (``in_channels``, ``out_indices``, ``frozen_stages``, ``norm_eval``, ``init_cfg``) and the
network's (``network``, ``channels``, ``layers``, ``geometry``, ``output_stride``). Pretrained
weights come from a genas network checkpoint through MMSeg's own spelling,
``init_cfg=dict(type="Pretrained", checkpoint="model.pt")``: the architecture and arguments are read
from the file (``arch`` may then be left out; given, it must be the file's), the weights loaded when
the backbone is built (``init_weights`` keeps them). Output stride 8 for DeepLabV3 is
``output_stride=8``. See ``configs/dense/mmseg_deeplabv3_genas.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from genas.export.deps import require

INSTALL = ("pip install mmengine 'mmcv>=2.0.0rc4,<2.2.0' mmsegmentation ftfy regex "
           "(mmcv with its ops: see https://mmcv.readthedocs.io/en/latest/get_started/installation.html)")  # fmt: skip
mmseg = require("mmseg", "the MMSegmentation backbone (genas.export.mmseg)", INSTALL)
require("mmseg.models", "the MMSegmentation backbone (genas.export.mmseg)", INSTALL)  # needs mmcv's compiled ops

from mmengine.model import BaseModule  # noqa: E402
from mmseg.registry import MODELS  # noqa: E402

from genas.export.backbone import DenseBackbone, backbone_network  # noqa: E402
from genas.errors import ConfigError  # noqa: E402

__all__ = ["GenasBackbone", "register"]


def _pretrained(init_cfg: Any) -> str | None:
    """The checkpoint of an ``init_cfg=dict(type='Pretrained', checkpoint=...)``, else None."""
    cfgs = init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg]
    found = [c.get("checkpoint") for c in cfgs if isinstance(c, dict) and c.get("type") == "Pretrained"]
    if any(c.get("prefix") for c in cfgs if isinstance(c, dict) and c.get("type") == "Pretrained"):
        raise ConfigError("init_cfg of GenasBackbone: 'prefix' is not supported; give a genas network checkpoint")
    return found[0] if found else None


def _check_out_indices(out_indices: Any, levels: int, network: str) -> None:
    """MMSeg's heads and necks pick levels by position (``in_index``), strides growing: refuse repeats and another order."""
    from genas.export.base import take_indices

    taken, _ = take_indices(levels, out_indices, network)  # range and type, in one line
    if taken != sorted(set(taken)):
        raise ConfigError(f"out_indices={tuple(out_indices)!r} of GenasBackbone ({network}) must list distinct levels "
                          f"from high to low resolution (strides growing), as MMSeg's heads and necks index them; "
                          f"e.g. {tuple(range(levels))} of its levels 0..{levels - 1}")  # fmt: skip


class GenasBackbone(BaseModule):
    """A found network's levels for MMSegmentation (``mmseg/models/backbones/resnet.py``'s arguments).

    Args:
        arch: ``best_arch.json``, an NB201 string or a DARTS Genotype (None: the checkpoint's).
        network: ``nb201``, ``darts`` or ``darts_imagenet`` (None: the space's, or the checkpoint's).
        in_channels: Image channels.
        out_indices: Levels returned, in order.
        frozen_stages: -1: none; 0: the stem; k: the stem and levels 0..k-1.
        norm_eval: BatchNorm layers stay in eval mode in training.
        channels: C of the network (None: its default, or the checkpoint's).
        layers: Its depth (None: its default, or the checkpoint's).
        geometry: ``dense`` (strides 4 / 8 / 16 / 32, the default) or ``cifar``.
        output_stride: 8 or 16 for DeepLabV3 (None: 32, no dilation).
        init_cfg: MMEngine's init config; ``dict(type="Pretrained", checkpoint=PATH)`` loads a genas network checkpoint.
    """

    def __init__(self, arch: Any = None, network: str | None = None, in_channels: int = 3,
                 out_indices: Sequence[int] = (0, 1, 2, 3), frozen_stages: int = -1, norm_eval: bool = False,
                 channels: int | None = None, layers: int | None = None, geometry: str | None = None,
                 output_stride: int | None = None, init_cfg: Any = None) -> None:  # fmt: skip
        super().__init__(init_cfg=init_cfg)
        self.checkpoint = _pretrained(init_cfg)
        net = backbone_network(arch, network, self.checkpoint, in_chans=in_channels, channels=channels, layers=layers,
                               geometry=geometry, output_stride=output_stride)  # fmt: skip
        _check_out_indices(out_indices, len(net.feature_info), net.name)
        self.body = DenseBackbone(net, out_indices, frozen_stages, norm_eval)
        self.out_indices, self.frozen_stages, self.norm_eval = self.body.out_indices, frozen_stages, norm_eval
        self.feature_info = self.body.feature_info

    def init_weights(self) -> None:
        if self.checkpoint is not None:  # loaded (and checked against the architecture) when built
            self._is_init = True
            return
        super().init_weights()

    def forward(self, x: Any) -> tuple[Any, ...]:
        return tuple(self.body(x))


def register() -> str:
    """Register :class:`GenasBackbone` in MMSeg's ``MODELS`` (again only to replace an earlier import of this module)."""
    current = MODELS.module_dict.get(GenasBackbone.__name__)
    if current is not GenasBackbone:
        MODELS.register_module(module=GenasBackbone, force=current is not None and current.__module__ == __name__)
    return GenasBackbone.__name__


register()
