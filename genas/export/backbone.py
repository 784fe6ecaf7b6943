"""A found network as a multi-scale backbone: the part Detectron2 and MMSegmentation share.

:func:`create_backbone` builds the network (by default in the ``"dense"`` geometry of
:mod:`genas.export.geometry`: levels at strides 4 / 8 / 16 / 32), optionally from a genas network
checkpoint, and wraps it in a :class:`DenseBackbone`: the levels ``out_indices`` as a list of maps,
``frozen_stages`` and ``norm_eval`` as MMSeg's ResNet has them. Its ``feature_info`` is the
network's own record (channels, stride, module), the one timm's ``features_only`` reports, so
``timm.create_model("genas_nb201", arch=..., geometry="dense", features_only=True)`` describes the
same levels. :mod:`genas.export.detectron2` and :mod:`genas.export.mmseg` only translate names and configs.

Example:
    >>> import torch
    >>> body = create_backbone("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
    ...                        channels=8, layers=1, out_indices=(1, 2, 3), frozen_stages=1)
    >>> [(f["num_chs"], f["reduction"]) for f in body.feature_info], [m.shape[-1] for m in body(torch.zeros(1, 3, 64, 64))]
    ([(16, 8), (32, 16), (64, 32)], [8, 4, 2])
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from genas.export.arch import read_arch
from genas.export.base import Network, take_indices
from genas.export.checkpoint import read_network_file
from genas.export.registry import NETWORKS, create_network, network_for_space
from genas.errors import CheckpointError, ConfigError

__all__ = ["DenseBackbone", "create_backbone", "backbone_network"]

_HEAD_KEYS = ("classifier.", "auxiliary_head.")


class DenseBackbone(nn.Module):
    """The feature levels ``out_indices`` of a network, with the head and the unused deep layers dropped.

    Args:
        net: A network (:class:`genas.export.base.Network`); it is pruned in place.
        out_indices: Levels to return: all if None, the last n if an int, else those listed.
        frozen_stages: -1: train everything; k >= 0: freeze the stem and the modules of levels
            0..k-1 (no gradients, BN in eval mode), MMSeg's ``frozen_stages``.
        norm_eval: Keep every BatchNorm in eval mode in training (running statistics frozen).
    """

    def __init__(self, net: Network, out_indices: int | Sequence[int] | None = None, frozen_stages: int = -1,
                 norm_eval: bool = False) -> None:  # fmt: skip
        super().__init__()
        levels = len(net.feature_info)
        take, _ = take_indices(levels, out_indices, net.name)
        if isinstance(frozen_stages, bool) or not isinstance(frozen_stages, int) or not -1 <= frozen_stages <= levels:
            raise ConfigError(f"The 'frozen_stages' parameter of the {net.name} backbone must be an int in the range "
                              f"[-1, {levels}] (-1: none, 0: the stem, k: the stem and levels 0..k-1). "
                              f"Got {frozen_stages!r} instead.")  # fmt: skip
        self.out_indices = tuple(take)
        self.feature_info = [dict(net.feature_info[i]) for i in take]
        self.frozen_stages, self.norm_eval = frozen_stages, bool(norm_eval)
        net.prune_intermediate_layers(list(take), prune_head=True)
        self.net = net
        self._frozen = [m for group in net.stage_modules()[: frozen_stages + 1] for m in group]
        for m in self._frozen:
            m.requires_grad_(False)
        self.train(self.training)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.net.forward_intermediates(x, indices=list(self.out_indices), intermediates_only=True)

    def train(self, mode: bool = True) -> DenseBackbone:
        super().train(mode)
        for m in self._frozen:
            m.eval()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self


def _load_weights(net: Network, record: dict[str, Any], path: str | Path) -> None:
    own = net.state_dict()
    weights = {k: v for k, v in record["state_dict"].items() if not k.startswith(_HEAD_KEYS) or k in own}
    missing = [k for k in own if k not in weights and not k.startswith(_HEAD_KEYS)]
    try:
        result = net.load_state_dict(weights, strict=False)
    except RuntimeError as exc:
        raise CheckpointError(f"network checkpoint {path}: its weights do not fit this backbone (its hparams "
                              f"{record['hparams']}): {str(exc).splitlines()[1].strip()}") from exc  # fmt: skip
    if missing or result.unexpected_keys:
        raise CheckpointError(f"network checkpoint {path}: its weights do not fit this backbone (its hparams "
                              f"{record['hparams']}; missing {missing[:3]}, unexpected {result.unexpected_keys[:3]})")  # fmt: skip


def _own_geometry(network: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` without ``geometry: dense`` for a network whose levels are its own (``darts_imagenet``: strides 8..32)."""
    if "geometry" in inspect.signature(NETWORKS.get(network)).parameters or "geometry" not in kwargs:
        return kwargs
    if kwargs["geometry"] != "dense":
        raise ConfigError(f"geometry {kwargs['geometry']!r} does not apply to network {network!r}, whose levels are "
                          "its own ImageNet strides; leave geometry unset or 'dense'")  # fmt: skip
    return {k: v for k, v in kwargs.items() if k != "geometry"}


def backbone_network(arch: Any = None, network: str | None = None, checkpoint: str | Path | None = None,
                     **kwargs: Any) -> Network:  # fmt: skip
    """The network a backbone wraps: ``arch`` (anything :func:`genas.export.read_arch` reads) and/or a checkpoint.

    Without ``checkpoint`` the network is fresh, ``nb201`` / ``darts`` in the ``"dense"`` geometry
    unless ``geometry`` is given. With one, the network, the architecture and its arguments come from
    the file (``kwargs`` override them; ``output_stride`` keeps the weights' shapes) and its weights
    are loaded (the classification head is left out).

    Raises:
        ConfigError: No architecture, or an unknown option value.
        UnknownNameError: ``network`` is not registered.
        CheckpointError: The checkpoint holds another network or architecture, or its weights do not fit.
        InvalidArchitectureError: ``arch`` is malformed or of another space.
    """
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    if checkpoint is None:
        if arch is None:
            raise ConfigError("a genas backbone needs arch (a best_arch.json path, an NB201 string or a DARTS Genotype) "
                              "or a genas network checkpoint")  # fmt: skip
        space = NETWORKS.get(network).space if network else None
        arch = read_arch(arch, space)
        network = network or network_for_space(arch.space)
        if "geometry" in inspect.signature(NETWORKS.get(network)).parameters:  # darts_imagenet has its own
            kwargs.setdefault("geometry", "dense")
        return create_network(network, arch, **_own_geometry(network, kwargs))
    record = read_network_file(checkpoint)
    if network is not None and NETWORKS.get(network) is not NETWORKS.get(record["network"]):
        raise CheckpointError(f"network checkpoint {checkpoint} holds a {record['network']!r} network, not {network!r}")
    cls = NETWORKS.get(record["network"])
    stored = cls.parse_arch(record["arch"])
    if arch is not None and read_arch(arch, cls.space) != stored:
        raise CheckpointError(f"network checkpoint {checkpoint} holds the weights of {stored}, not of {read_arch(arch, cls.space)}; "
                              "leave arch unset to take the checkpoint's")  # fmt: skip
    net = create_network(record["network"], stored, **_own_geometry(record["network"], {**record["hparams"], **kwargs}))
    _load_weights(net, record, checkpoint)
    return net


def create_backbone(arch: Any = None, network: str | None = None, checkpoint: str | Path | None = None,
                    out_indices: int | Sequence[int] | None = None, frozen_stages: int = -1, norm_eval: bool = False,
                    **kwargs: Any) -> DenseBackbone:  # fmt: skip
    """A :class:`DenseBackbone` of :func:`backbone_network` (``kwargs`` are the network's arguments)."""
    return DenseBackbone(backbone_network(arch, network, checkpoint, **kwargs), out_indices, frozen_stages, norm_eval)
