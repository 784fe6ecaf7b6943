"""The DARTS weight-sharing supernet (Liu et al., ICLR 2019) for SPOS / GeNAS training.

``layers`` cells (8 in the GeNAS supernet) with reduce cells at 1/3 and 2/3 depth; every
cell holds a module per (edge, op) and runs only the edges of the sampled genotype (one
normal and one reduce genotype shared by all cells of each type).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from genas.errors import ConfigError, InvalidArchitectureError
from genas.validation import Interval, OneOf
from genas.spaces import DARTS_OPS, DartsArch, DartsSpace
from genas.spaces.darts import DARTS_EDGES, DARTS_NODES, NODE_EDGES
from supernet.base import SUPERNETS, FeatureInfo, Subnet, Supernet, renamed_in_chans
from supernet.ops import BNOptions, FactorizedReduce, ReLUConvBN, darts_op, imagenet_stem

__all__ = ["DartsSupernet", "DartsSubnet", "DartsSearchCell", "run_cell"]


EdgeFn = Callable[[int, torch.Tensor], "torch.Tensor | None"]


def run_cell(s0: torch.Tensor, s1: torch.Tensor, edge_fn: EdgeFn, edges: Sequence[int] | None = None) -> torch.Tensor:
    """The DARTS cell wiring: node j = sum over its input edges e (from node i) of ``edge_fn(e, state_i)``.

    Args:
        s0: The preprocessed output of cell k-2 (node 0).
        s1: The preprocessed output of cell k-1 (node 1).
        edge_fn: Computes edge ``e`` (index in ``DARTS_EDGES``) on its input; ``None`` adds nothing.
        edges: The edges to run (a one-shot path: its 8 active edges); None runs all 14.

    Returns:
        The concatenation of nodes 2..5.
    """
    active = set(range(len(DARTS_EDGES))) if edges is None else set(edges)
    states = [s0, s1]
    for j in DARTS_NODES:
        total = None
        for e in NODE_EDGES[j]:
            if e in active:
                y = edge_fn(e, states[DARTS_EDGES[e][1]])
                if y is not None:
                    total = y if total is None else total + y
        if total is None:
            raise InvalidArchitectureError(f"DARTS cell node {j} has no input edge")
        states.append(total)
    return torch.cat(states[2:], dim=1)


class DartsSearchCell(nn.Module):
    """A DARTS cell with all 14 x 7 candidate op modules."""

    def __init__(self, c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool, bn: BNOptions, **dd):
        super().__init__()
        self.reduction = reduction
        pre_bn = BNOptions(bn.affine, bn.track_running_stats)
        self.preprocess0 = FactorizedReduce(c_pp, c, pre_bn, **dd) if reduction_prev else ReLUConvBN(c_pp, c, 1, 1, 0, pre_bn, **dd)
        self.preprocess1 = ReLUConvBN(c_p, c, 1, 1, 0, pre_bn, **dd)
        self.channels, self._bn, self._dd = c, bn, dd
        self.edges = self.build_edges(c)

    def build_edges(self, c: int) -> nn.ModuleList:
        """Fresh candidate-op modules for the 14 edges at width ``c`` (PC-DARTS builds them at C / K)."""
        return nn.ModuleList(
            nn.ModuleDict({op: darts_op(op, c, 2 if self.reduction and frm < 2 else 1, self._bn, **self._dd)
                           for op in DARTS_OPS[1:]})
            for _, frm in DARTS_EDGES
        )  # fmt: skip

    def active(self, genes: tuple[int, ...]) -> list[tuple[int, nn.Module]]:
        """(edge, op module) of the non-``none`` edges of ``genes``."""
        return [(e, self.edges[e][DARTS_OPS[genes[e]]]) for e in range(len(DARTS_EDGES)) if genes[e]]

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, genes: tuple[int, ...]) -> torch.Tensor:
        return _run_path(self.preprocess0(s0), self.preprocess1(s1), self.active(genes))

    def forward_edges(self, s0: torch.Tensor, s1: torch.Tensor, edge_fn: EdgeFn) -> torch.Tensor:
        """The cell with all 14 edges, edge ``e`` computed by ``edge_fn(e, input)`` (e.g. a mixed op)."""
        return run_cell(self.preprocess0(s0), self.preprocess1(s1), edge_fn)


def _run_path(s0: torch.Tensor, s1: torch.Tensor, active: list[tuple[int, nn.Module]]) -> torch.Tensor:
    ops = dict(active)
    return run_cell(s0, s1, lambda e, h: ops[e](h), edges=ops)


class DartsFixedCell(nn.Module):
    """A DARTS cell of one genotype; modules shared with the supernet."""

    def __init__(self, cell: DartsSearchCell, genes: tuple[int, ...]) -> None:
        super().__init__()
        self.reduction = cell.reduction
        self.preprocess0, self.preprocess1 = cell.preprocess0, cell.preprocess1
        active = cell.active(genes)
        self.ops = nn.ModuleList(op for _, op in active)
        self._edges = [e for e, _ in active]

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        return _run_path(self.preprocess0(s0), self.preprocess1(s1), list(zip(self._edges, self.ops)))


class ImageNetStem(nn.Module):
    """DARTS ``NetworkImageNet``'s stem: ``stem0`` (two stride-2 3x3 convs to C/2 then C) and ``stem1``
    (ReLU, a stride-2 3x3 conv); the cells start from ``(stem0(x), stem1(stem0(x)))`` at strides 4 and 8."""

    def __init__(self, in_chans: int, c: int, **dd: Any) -> None:
        super().__init__()
        self.stem0, self.stem1 = imagenet_stem(in_chans, c, **dd)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s0 = self.stem0(x)
        return s0, self.stem1(s0)


def stem_states(stem: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two states the first cell reads: the CIFAR stem's output twice, or the ImageNet stem's pair."""
    out = stem(x)
    return out if isinstance(out, tuple) else (out, out)


class DartsSupernet(Supernet):
    """DARTS supernet; ``forward(x, arch)`` with a :class:`DartsArch` (or anything that parses to one).

    Args:
        num_classes: Classifier outputs.
        in_chans: Image channels (timm's and the networks' name).
        channels: C of the first cell (GeNAS: 16).
        layers: Total number of cells (GeNAS supernet: 8); reduce cells at layers//3 and 2*layers//3.
        affine: Learnable affine BN parameters in the cells (GeNAS: True).
        track_running_stats: Keep BN running statistics in the cells.
        stem_multiplier: Stem width = stem_multiplier * C (DARTS: 3; the CIFAR stem only).
        stem: ``"cifar"`` (one 3x3 conv, stride 1) or ``"imagenet"``: the three-conv stride-8 stem of
            DARTS' ``NetworkImageNet`` (also RLNAS' ImageNet supernet, C=48, 14 cells, 224 input).
        device: Where to build the parameters.
        dtype: Parameter dtype.
        in_channels: The old name of ``in_chans`` (deprecated: one warning line).
    """

    constraints: ClassVar[dict[str, Any]] = {
        **Supernet.constraints, "stem_multiplier": Interval(int, 1, 64), "stem": OneOf(("cifar", "imagenet"))}

    def __init__(
        self,
        num_classes: int = 10,
        in_chans: int = 3,
        channels: int = 16,
        layers: int = 8,
        affine: bool = True,
        track_running_stats: bool = True,
        stem_multiplier: int = 3,
        stem: str = "cifar",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        in_channels: int | None = None,
    ) -> None:
        super().__init__()
        in_chans = renamed_in_chans(in_chans, in_channels)
        dd = dict(device=device, dtype=dtype)
        self.space = DartsSpace()
        self.hparams = dict(space="darts", num_classes=num_classes, in_chans=in_chans, channels=channels,
                            layers=layers, affine=affine, track_running_stats=track_running_stats,
                            stem_multiplier=stem_multiplier)  # fmt: skip
        if stem != "cifar":  # recorded only when not the default, so runs from before it still resume
            self.hparams["stem"] = stem
        bn = BNOptions(affine, track_running_stats)
        if stem == "imagenet":
            self.stem: nn.Module = ImageNetStem(in_chans, channels, **dd)
            c_pp, c_p, c, reduction_prev, stride = channels, channels, channels, True, 8
        elif stem == "cifar":
            c_curr = stem_multiplier * channels
            self.stem = nn.Sequential(nn.Conv2d(in_chans, c_curr, 3, padding=1, bias=False, **dd), nn.BatchNorm2d(c_curr, **dd))
            c_pp, c_p, c, reduction_prev, stride = c_curr, c_curr, channels, False, 1
        else:
            raise ConfigError(f"The 'stem' parameter of DartsSupernet must be 'cifar' or 'imagenet'. Got {stem!r} instead.")
        cells = []
        self.feature_info_: list[FeatureInfo] = []
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
        return self.run(x, lambda i, cell, s0, s1: cell(s0, s1, arch.reduce if cell.reduction else arch.normal))

    def run(self, x: torch.Tensor, cell_fn: Callable[[int, DartsSearchCell, torch.Tensor, torch.Tensor], torch.Tensor],
            ) -> torch.Tensor:  # fmt: skip
        """The network with cell ``i`` computed by ``cell_fn(i, cell, s0, s1)`` from the two previous outputs.

        ``forward`` runs one genotype through it; the mixed-op supernet of :mod:`differentiable`
        runs every op of every edge, weighted, through the same network.
        """
        s0, s1 = stem_states(self.stem, x)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell_fn(i, cell, s0, s1)
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
        s0, s1 = stem_states(self.stem, x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return s1


SUPERNETS.add("darts", DartsSupernet, description="DARTS 8-cell network, shared normal/reduce genotype")
