"""The NAS-Bench-201 macro network of one cell (Dong & Yang, ICLR 2020), as a standalone module.

Stem Conv3x3 + BN, three stages of ``layers`` copies of the cell with C, 2C, 4C channels separated
by ResNet basic blocks (stride 2), then BN + ReLU, global average pooling and a linear classifier;
the benchmark trains C = 16, N = 5 for 200 epochs. The modules are the supernet's own
(:mod:`supernet.ops`, :class:`supernet.nb201.NB201FixedCell`), built fresh, so module names and
weights line up with a supernet's subnet (``--inherit``).

Example:
    >>> import torch
    >>> net = NB201Network("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
    ...                    channels=8, layers=1)
    >>> [f["reduction"] for f in net.feature_info], net(torch.zeros(2, 3, 32, 32)).shape
    ([1, 2, 4], torch.Size([2, 10]))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from genas.export.base import NETWORKS, Network, geometry_hparams
from genas.export.geometry import apply_output_stride, check_geometry, dense_stem
from supernet.nb201 import NB201FixedCell
from supernet.ops import BNOptions, ResNetBasicBlock, nb201_op

__all__ = ["NB201Network"]


class NB201Network(Network):
    """NB201 macro network with one cell everywhere.

    Args:
        arch: An NB201 architecture (object or benchmark string).
        num_classes: Classifier outputs.
        in_chans: Image channels.
        channels: C, the width of the first stage (benchmark: 16).
        layers: N, cells per stage (benchmark: 5).
        affine: Learnable BN affine parameters in the cells (benchmark training: True).
        track_running_stats: Keep BN running statistics in the cells.
        geometry: ``"cifar"`` (levels at strides 1 / 2 / 4) or ``"dense"`` (a stride-4 stem and a fourth
            stage at 8C: levels at 4 / 8 / 16 / 32); see :mod:`genas.export.geometry`.
        output_stride: Dilate the stages deeper than this stride instead of striding (None: no dilation).
        device: Where to build the parameters.
        dtype: Parameter dtype.
    """

    name = "nb201"
    space = "nb201"

    def __init__(
        self,
        arch: Any,
        num_classes: int = 10,
        in_chans: int = 3,
        channels: int = 16,
        layers: int = 5,
        affine: bool = True,
        track_running_stats: bool = True,
        geometry: str = "cifar",
        output_stride: int | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(num_classes, in_chans)
        check_geometry(geometry, self.name)
        dd = dict(device=device, dtype=dtype)
        self.arch = self.parse_arch(arch)
        self.hparams = dict(num_classes=num_classes, in_chans=in_chans, channels=channels, layers=layers,
                            affine=affine, track_running_stats=track_running_stats)  # fmt: skip
        self.hparams.update(geometry_hparams(geometry, output_stride))
        bn = BNOptions(affine, track_running_stats)
        if geometry == "dense":
            self.stem, stride, widths = dense_stem(in_chans, channels, **dd), 4, (1, 2, 4, 8)
        else:
            self.stem = nn.Sequential(nn.Conv2d(in_chans, channels, 3, padding=1, bias=False, **dd), nn.BatchNorm2d(channels, **dd))
            stride, widths = 1, (1, 2, 4)
        stem_stride, blocks = stride, []
        cells: list[nn.Module] = []
        self.feature_info = []
        self._cell_level: dict[int, int] = {}
        c_prev = channels
        for stage, c in enumerate(w * channels for w in widths):
            if stage > 0:
                self._cell_level[len(cells) - 1] = stage - 1
                self.feature_info.append(dict(num_chs=c_prev, reduction=stride, module=f"cells.{len(cells) - 1}"))
                cells.append(ResNetBasicBlock(c_prev, c, BNOptions(), **dd))
                blocks.append((cells[-1], stride, 2 * stride, None))
                stride *= 2
            for _ in range(layers):
                ops = [None if op == "none" else nb201_op(op, c, bn, **dd) for op in self.arch.ops]
                cells.append(NB201FixedCell(ops))
                blocks.append((cells[-1], stride, stride, None))
            c_prev = c
        self.feature_info.append(dict(num_chs=c_prev, reduction=stride, module="lastact"))
        self.cells = nn.ModuleList(cells)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c_prev, **dd), nn.ReLU(inplace=False))
        self.num_features = c_prev
        self.classifier = nn.Linear(c_prev, num_classes, **dd) if num_classes else nn.Identity()
        apply_output_stride(self, output_stride, blocks, stem_stride)

    def _run(self, x: torch.Tensor, take: Sequence[int] = (), stop: int | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        maps: list[torch.Tensor] = []
        x = self.stem(x)
        for i, cell in enumerate(self.cells):
            x = cell(x)
            level = self._cell_level.get(i)
            if level is not None:
                if level in take:
                    maps.append(x)
                if level == stop:
                    return x, maps
        x = self.lastact(x)
        if len(self.feature_info) - 1 in take:
            maps.append(x)
        return x, maps

    def _prune_after(self, level: int) -> None:
        if level == len(self.feature_info) - 1:
            return
        last = next(i for i, lv in self._cell_level.items() if lv == level)
        self.cells = self.cells[: last + 1]
        self.lastact = nn.Identity()

    def stage_modules(self) -> list[list[nn.Module]]:
        groups: list[list[nn.Module]] = [[self.stem]] + [[] for _ in self.feature_info]
        level = 0
        for i, cell in enumerate(self.cells):
            groups[level + 1].append(cell)
            level += self._cell_level.get(i) is not None
        groups[-1].append(self.lastact)
        return groups


NETWORKS.add("nb201", NB201Network, description="NAS-Bench-201 macro network (C=16, N=5 cells per stage)")
