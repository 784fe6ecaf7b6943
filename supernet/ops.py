"""Candidate operations of the NB201 and DARTS cells, and the fixed building blocks.

NB201 ops follow the benchmark's code (``nor_conv_kxk`` = ReLU -> Conv -> BN); DARTS
ops follow ``cnn/operations.py`` of the DARTS reference code, with the pooling ops
followed by a non-affine BN as in its search model.  Every op maps ``C -> C``
channels; a stride-2 DARTS op halves the resolution.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = [
    "BNOptions", "ReLUConvBN", "ResNetBasicBlock", "FactorizedReduce", "SepConv", "DilConv",
    "PoolBN", "Identity", "nb201_op", "darts_op", "imagenet_stem",
]  # fmt: skip


class BNOptions:
    """How cell BNs are built: ``affine`` parameters and ``track_running_stats``."""

    def __init__(self, affine: bool = True, track_running_stats: bool = True) -> None:
        self.affine = affine
        self.track_running_stats = track_running_stats

    def __call__(self, channels: int, **dd) -> nn.BatchNorm2d:
        return nn.BatchNorm2d(channels, affine=self.affine, track_running_stats=self.track_running_stats, **dd)


class ReLUConvBN(nn.Sequential):
    """ReLU -> Conv(k, stride, no bias) -> BN (NB201 ``nor_conv_kxk`` and DARTS preprocessing)."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int, padding: int, bn: BNOptions, dilation: int = 1, **dd):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, k, stride, padding, dilation=dilation, bias=False, **dd),
            bn(c_out, **dd),
        )


class ResNetBasicBlock(nn.Module):
    """The NB201 reduction block: conv3x3(s2) -> conv3x3, shortcut AvgPool(2) + Conv1x1."""

    def __init__(self, c_in: int, c_out: int, bn: BNOptions, **dd) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, 1, bn, **dd)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1, bn, **dd)
        self.downsample = nn.Sequential(nn.AvgPool2d(2, 2, 0), nn.Conv2d(c_in, c_out, 1, bias=False, **dd))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class FactorizedReduce(nn.Module):
    """Halve the resolution with two offset stride-2 1x1 convs (DARTS skip on a stride-2 edge)."""

    def __init__(self, c_in: int, c_out: int, bn: BNOptions, **dd) -> None:
        super().__init__()
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False, **dd)
        self.conv_2 = nn.Conv2d(c_in, c_out - c_out // 2, 1, stride=2, bias=False, **dd)
        self.bn = bn(c_out, **dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


class SepConv(nn.Sequential):
    """DARTS separable conv: (ReLU, depthwise k, pointwise, BN) twice, the first with ``stride``."""

    def __init__(self, c: int, k: int, stride: int, padding: int, bn: BNOptions, **dd) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c, c, k, stride, padding, groups=c, bias=False, **dd),
            nn.Conv2d(c, c, 1, bias=False, **dd),
            bn(c, **dd),
            nn.ReLU(inplace=False),
            nn.Conv2d(c, c, k, 1, padding, groups=c, bias=False, **dd),
            nn.Conv2d(c, c, 1, bias=False, **dd),
            bn(c, **dd),
        )


class DilConv(nn.Sequential):
    """DARTS dilated separable conv: ReLU, depthwise k with dilation 2, pointwise, BN."""

    def __init__(self, c: int, k: int, stride: int, padding: int, bn: BNOptions, **dd) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c, c, k, stride, padding, dilation=2, groups=c, bias=False, **dd),
            nn.Conv2d(c, c, 1, bias=False, **dd),
            bn(c, **dd),
        )


class PoolBN(nn.Sequential):
    """3x3 pooling followed by a non-affine BN (DARTS search model)."""

    def __init__(self, kind: str, c: int, stride: int, bn: BNOptions | None, **dd) -> None:
        pool = (
            nn.AvgPool2d(3, stride, padding=1, count_include_pad=False)
            if kind == "avg"
            else nn.MaxPool2d(3, stride, padding=1)
        )
        layers: list[nn.Module] = [pool]
        if bn is not None:
            layers.append(BNOptions(False, bn.track_running_stats)(c, **dd))
        super().__init__(*layers)


class Identity(nn.Module):
    """Skip connection (kept as a module so every (cell, edge, op) has one)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def nb201_op(name: str, c: int, bn: BNOptions, **dd) -> nn.Module:
    """Build one NB201 candidate op (``none`` has no module and is skipped by the cell)."""
    if name == "skip_connect":
        return Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(c, c, 1, 1, 0, bn, **dd)
    if name == "nor_conv_3x3":
        return ReLUConvBN(c, c, 3, 1, 1, bn, **dd)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, 1, padding=1, count_include_pad=False)
    raise ValueError(f"no module for NB201 op {name!r}")


def darts_op(name: str, c: int, stride: int, bn: BNOptions, **dd) -> nn.Module:
    """Build one DARTS candidate op for an edge with ``stride``."""
    if name == "max_pool_3x3":
        return PoolBN("max", c, stride, bn, **dd)
    if name == "avg_pool_3x3":
        return PoolBN("avg", c, stride, bn, **dd)
    if name == "skip_connect":
        return Identity() if stride == 1 else FactorizedReduce(c, c, bn, **dd)
    if name == "sep_conv_3x3":
        return SepConv(c, 3, stride, 1, bn, **dd)
    if name == "sep_conv_5x5":
        return SepConv(c, 5, stride, 2, bn, **dd)
    if name == "dil_conv_3x3":
        return DilConv(c, 3, stride, 2, bn, **dd)
    if name == "dil_conv_5x5":
        return DilConv(c, 5, stride, 4, bn, **dd)
    raise ValueError(f"no module for DARTS op {name!r}")


def imagenet_stem(in_chans: int, c: int, **dd: Any) -> tuple[nn.Sequential, nn.Sequential]:
    """DARTS ``NetworkImageNet``'s two stems: ``stem0`` (3x3 stride-2 convs to C/2, then C) and ``stem1``
    (ReLU, a 3x3 stride-2 conv); the first cell reads ``(stem0(x), stem1(stem0(x)))`` at strides 4 and 8."""
    stem0 = nn.Sequential(
        nn.Conv2d(in_chans, c // 2, 3, stride=2, padding=1, bias=False, **dd), nn.BatchNorm2d(c // 2, **dd),
        nn.ReLU(inplace=False), nn.Conv2d(c // 2, c, 3, stride=2, padding=1, bias=False, **dd), nn.BatchNorm2d(c, **dd),
    )  # fmt: skip
    stem1 = nn.Sequential(nn.ReLU(inplace=False), nn.Conv2d(c, c, 3, stride=2, padding=1, bias=False, **dd),
                          nn.BatchNorm2d(c, **dd))  # fmt: skip
    return stem0, stem1
