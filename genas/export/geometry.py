"""Backbone geometry of the networks: the dense-task stem and stage, and dilation for a smaller output stride.

A network's ``geometry`` decides where its feature levels sit:

* ``"cifar"`` (the default of ``nb201`` and ``darts``): the searched macro skeleton, a stride-1 stem
  and three stages, levels at strides 1 / 2 / 4 (what the search trained and the benchmarks report);
* ``"dense"``: the geometry FPN-style necks expect, levels at strides 4 / 8 / 16 / 32. The stem is
  the DARTS ImageNet stem's first half (3x3 conv stride 2, BN, ReLU, 3x3 conv stride 2, BN), and one
  more stage of the found cell follows the three (NB201: one more ResNet reduction block and N cells
  at 8C; DARTS: three reduce cells at 1/4, 2/4, 3/4 depth instead of two). The found cell is kept;
  the skeleton around it changes, as DARTS does when it moves a CIFAR cell to ImageNet;
* ``darts_imagenet`` has the DARTS ImageNet geometry, levels at 4 / 8 / 16 / 32 already.

``output_stride`` (DeepLabV3's term, timm's argument name) removes the stride of the stages deeper
than it and dilates their convolutions instead, as torchvision's ``replace_stride_with_dilation``
does: a block that ran at stride ``s`` runs at dilation ``s / output_stride``. A stride-2 pooling op
becomes stride 1 and DARTS's factorised reduction becomes its stride-1 analogue (the second 1x1 conv
reads the map shifted by one pixel), so the weights keep their shapes and a checkpoint loads into
any output stride. The levels' ``feature_info`` then reports the strides the maps really have.

Example:
    >>> import torch
    >>> from genas.export import create_network
    >>> net = create_network("nb201", "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
    ...                      channels=4, layers=1, geometry="dense", output_stride=8)
    >>> [f["reduction"] for f in net.feature_info], [tuple(m.shape[-2:]) for m in net.forward_intermediates(torch.zeros(1, 3, 64, 64), intermediates_only=True)]
    ([4, 8, 8, 8], [(16, 16), (8, 8), (8, 8), (8, 8)])
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genas.export.options import GEOMETRIES
from genas.errors import ConfigError
from supernet.ops import FactorizedReduce

__all__ = ["GEOMETRIES", "Block", "check_geometry", "dense_stem", "apply_output_stride", "StrideOneReduce"]



def check_geometry(geometry: Any, owner: str) -> None:
    """Raise ConfigError unless ``geometry`` is one of :data:`GEOMETRIES`."""
    if geometry not in GEOMETRIES:
        raise ConfigError(f"The 'geometry' parameter of {owner} must be one of {sorted(GEOMETRIES)}. Got {geometry!r} instead.")


def dense_stem(in_chans: int, c: int, **dd) -> nn.Sequential:
    """The stride-4 stem: conv3x3 s2 to c/2, BN, ReLU, conv3x3 s2 to c, BN (the DARTS ImageNet ``stem0``)."""
    half = max(1, c // 2)
    return nn.Sequential(
        nn.Conv2d(in_chans, half, 3, stride=2, padding=1, bias=False, **dd), nn.BatchNorm2d(half, **dd),
        nn.ReLU(inplace=False), nn.Conv2d(half, c, 3, stride=2, padding=1, bias=False, **dd), nn.BatchNorm2d(c, **dd),
    )  # fmt: skip


class StrideOneReduce(nn.Module):
    """DARTS's factorised reduction at stride 1: the same weights, the second conv on the map shifted by a pixel."""

    def __init__(self, reduce: FactorizedReduce) -> None:
        super().__init__()
        self.relu, self.conv_1, self.conv_2, self.bn = reduce.relu, reduce.conv_1, reduce.conv_2, reduce.bn
        self.conv_1.stride = self.conv_2.stride = (1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(F.pad(x[:, :, 1:, 1:], (0, 1, 0, 1)))], dim=1))


Block = tuple[nn.Module, int, int, tuple[str, ...] | None]  # (module, input stride, output stride, its children meant)


def _dilate(block: nn.Module, dilation: int, names: tuple[str, ...] | None = None) -> None:
    """Make ``block`` (or its children ``names``) run at stride 1, spatial convolutions dilated ``dilation`` times more."""
    parts = []
    for name, child in list(block.named_children()):
        if names is not None and name not in names:
            continue
        if isinstance(child, FactorizedReduce):
            child = StrideOneReduce(child)
            setattr(block, name, child)
        else:
            _dilate(child, 1)  # strides only (and nested reductions); the dilation is applied once, below
        parts.append(child)
    for m in (m for part in parts for m in part.modules()):
        if isinstance(m, nn.Conv2d):
            m.stride = (1, 1)
            if dilation > 1 and m.kernel_size != (1, 1):
                m.dilation = tuple(d * dilation for d in m.dilation)
                m.padding = tuple(p * dilation for p in m.padding)
        elif isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)) and m.stride not in (1, (1, 1)):
            if m.kernel_size == m.stride:  # NB201's AvgPool(2, 2) shortcut: the identity at stride 1
                m.kernel_size, m.padding = 1, 0
            m.stride = 1


def apply_output_stride(net: Any, output_stride: int | None, blocks: list[Block], stem_stride: int) -> None:
    """Dilate ``net``'s deep blocks so its maps stop shrinking at ``output_stride``; update ``feature_info``.

    Args:
        net: The network (its ``feature_info`` is rewritten).
        output_stride: The largest stride wanted (``None``: the network's own, no dilation).
        blocks: ``(module, stride of its input, stride of its output, children meant or None for all)``
            of every block after the stem (a DARTS cell's ``preprocess0`` is its own block: it reads
            the state before the last reduction).
        stem_stride: The stride the stem reaches (it is never dilated).

    Raises:
        ConfigError: ``output_stride`` is not one of the strides from the stem's to the last level's.
    """
    if output_stride is None:
        return
    last = max(f["reduction"] for f in net.feature_info)
    allowed = sorted({stem_stride, *(b[2] for b in blocks)})
    if isinstance(output_stride, bool) or output_stride not in allowed:
        raise ConfigError(f"output_stride={output_stride!r} cannot be given by {net.name}: its stem reaches stride "
                          f"{stem_stride} and its last level stride {last}, so output_stride must be one of {allowed}")  # fmt: skip
    for module, s_in, s_out, names in blocks:
        if s_out > output_stride:
            _dilate(module, max(1, s_in // output_stride), names)
    for f in net.feature_info:
        f["reduction"] = min(f["reduction"], output_stride)
