"""The DARTS weight-sharing supernet (Liu et al., ICLR 2019) for SPOS / GeNAS training.

``layers`` cells (8 in the GeNAS supernet) with reduce cells at 1/3 and 2/3 depth; every
cell holds a module per (edge, op) and runs only the edges of the sampled genotype (one
normal and one reduce genotype shared by all cells of each type).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from genas.spaces import DARTS_OPS, DartsArch, DartsSpace
from genas.spaces.darts import DARTS_EDGES, DARTS_NODES
from supernet.base import FeatureInfo, Subnet, Supernet
from supernet.ops import BNOptions, FactorizedReduce, ReLUConvBN, darts_op

__all__ = ["DartsSupernet", "DartsSubnet"]


def _run_cell(s0: torch.Tensor, s1: torch.Tensor, edges: list[tuple[int, int, nn.Module]]) -> torch.Tensor:
    """``edges``: (node, input, op) for the 8 active edges, in node order."""
    states = [s0, s1]
    for j in DARTS_NODES:
        states.append(sum(op(states[frm]) for node, frm, op in edges if node == j))
    return torch.cat(states[2:], dim=1)


class DartsSearchCell(nn.Module):
    """A DARTS cell with all 14 x 7 candidate op modules."""

    def __init__(self, c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool, bn: BNOptions, **dd):
        super().__init__()
        self.reduction = reduction
        pre_bn = BNOptions(bn.affine, bn.track_running_stats)
        self.preprocess0 = FactorizedReduce(c_pp, c, pre_bn, **dd) if reduction_prev else ReLUConvBN(c_pp, c, 1, 1, 0, pre_bn, **dd)
        self.preprocess1 = ReLUConvBN(c_p, c, 1, 1, 0, pre_bn, **dd)
        self.edges = nn.ModuleList(
            nn.ModuleDict({op: darts_op(op, c, 2 if reduction and frm < 2 else 1, bn, **dd) for op in DARTS_OPS[1:]})
            for _, frm in DARTS_EDGES
        )

    def active(self, genes: tuple[int, ...]) -> list[tuple[int, int, nn.Module]]:
        return [(to, frm, self.edges[e][DARTS_OPS[genes[e]]]) for e, (to, frm) in enumerate(DARTS_EDGES) if genes[e]]

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, genes: tuple[int, ...]) -> torch.Tensor:
        return _run_cell(self.preprocess0(s0), self.preprocess1(s1), self.active(genes))


class DartsFixedCell(nn.Module):
    """A DARTS cell of one genotype; modules shared with the supernet."""

    def __init__(self, cell: DartsSearchCell, genes: tuple[int, ...]) -> None:
        super().__init__()
        self.reduction = cell.reduction
        self.preprocess0, self.preprocess1 = cell.preprocess0, cell.preprocess1
        active = cell.active(genes)
        self.ops = nn.ModuleList(op for _, _, op in active)
        self._wiring = [(to, frm) for to, frm, _ in active]

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        edges = [(to, frm, op) for (to, frm), op in zip(self._wiring, self.ops)]
        return _run_cell(self.preprocess0(s0), self.preprocess1(s1), edges)


class DartsSupernet(Supernet):
    """DARTS supernet; ``forward(x, arch)`` with a :class:`DartsArch` (or anything that parses to one).

    Args:
        num_classes: Classifier outputs.
        in_channels: Image channels.
        channels: C of the first cell (GeNAS: 16).
        layers: Total number of cells (GeNAS supernet: 8); reduce cells at layers//3 and 2*layers//3.
        affine: Learnable affine BN parameters in the cells (GeNAS: True).
        track_running_stats: Keep BN running statistics in the cells.
        stem_multiplier: Stem width = stem_multiplier * C (DARTS: 3).
        device: Where to build the parameters.
        dtype: Parameter dtype.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        channels: int = 16,
        layers: int = 8,
        affine: bool = True,
        track_running_stats: bool = True,
        stem_multiplier: int = 3,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        self.space = DartsSpace()
        self.hparams = dict(space="darts", num_classes=num_classes, in_channels=in_channels, channels=channels,
                            layers=layers, affine=affine, track_running_stats=track_running_stats,
                            stem_multiplier=stem_multiplier)  # fmt: skip
        bn = BNOptions(affine, track_running_stats)
        c_curr = stem_multiplier * channels
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_curr, 3, padding=1, bias=False, **dd), nn.BatchNorm2d(c_curr, **dd))
        c_pp, c_p, c = c_curr, c_curr, channels
        cells, reduction_prev = [], False
        self.feature_info_: list[FeatureInfo] = []
        stride = 1
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                c *= 2
                stride *= 2
                if i > 0:
                    self.feature_info_.append(FeatureInfo(c_p, stride // 2, f"cells.{i - 1}"))
            cells.append(DartsSearchCell(c_pp, c_p, c, reduction, reduction_prev, bn, **dd))
            reduction_prev = reduction
            c_pp, c_p = c_p, len(DARTS_NODES) * c
        self.feature_info_.append(FeatureInfo(c_p, stride, f"cells.{layers - 1}"))
        self.cells = nn.ModuleList(cells)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes, **dd)

    @property
    def num_search_cells(self) -> int:
        return len(self.cells)

    def forward(self, x: torch.Tensor, path: Any) -> torch.Tensor:
        arch = self.space.parse(path)
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, arch.reduce if cell.reduction else arch.normal)
        return self.classifier(torch.flatten(self.global_pool(s1), 1))

    def op_module(self, cell: int, edge: int, op: str) -> nn.Module | None:
        return None if op == "none" else self.cells[cell].edges[edge][op]

    def fixed_modules(self) -> list[tuple[str, nn.Module]]:
        pre = []
        for i, c in enumerate(self.cells):
            pre += [(f"cells.{i}.preprocess0", c.preprocess0), (f"cells.{i}.preprocess1", c.preprocess1)]
        return [("stem", self.stem), *pre, ("classifier", self.classifier)]

    def subnet(self, arch: Any) -> DartsSubnet:
        return DartsSubnet(self, self.space.parse(arch))


class DartsSubnet(Subnet):
    """One DARTS architecture; modules (and weights) shared with its supernet."""

    def __init__(self, supernet: DartsSupernet, arch: DartsArch) -> None:
        super().__init__()
        self.arch = arch
        self.stem = supernet.stem
        self.cells = nn.ModuleList(DartsFixedCell(c, arch.reduce if c.reduction else arch.normal) for c in supernet.cells)
        self.global_pool = supernet.global_pool
        self.classifier = supernet.classifier
        self.num_features = supernet.classifier.in_features
        self.feature_info = list(supernet.feature_info_)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return s1

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.global_pool(x), 1)
        return x if pre_logits else self.classifier(x)
