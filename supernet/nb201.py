"""The NAS-Bench-201 weight-sharing supernet (Dong & Yang, ICLR 2020; SPOS training).

Macro network as in the benchmark: stem Conv3x3+BN, three stages of ``layers`` search
cells with C, 2C, 4C channels separated by ResNet basic blocks (stride 2), then
BN+ReLU, global average pooling and a linear classifier.  Benchmark values: C=16, N=5.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from genas.errors import InvalidArchitectureError
from genas.spaces import NB201_OPS, NB201Arch, NB201Space
from genas.spaces.nb201 import NB201_EDGES
from supernet.base import SUPERNETS, FeatureInfo, Subnet, Supernet, renamed_in_chans
from supernet.ops import BNOptions, ResNetBasicBlock, nb201_op

__all__ = ["NB201Supernet", "NB201Subnet", "NB201SearchCell", "run_cell"]

_INPUTS = {j: [(e, frm) for e, (to, frm) in enumerate(NB201_EDGES) if to == j] for j in (1, 2, 3)}


EdgeFn = Callable[[int, torch.Tensor], "torch.Tensor | None"]


def run_cell(x: torch.Tensor, edge_fn: EdgeFn) -> torch.Tensor:
    """The NB201 cell wiring: node j = sum over its incoming edges e (from node i) of ``edge_fn(e, node_i)``.

    One-shot cells pass the single active op of each edge, mixed-op cells the weighted sum of
    all of them; ``None`` from ``edge_fn`` (the ``none`` op) contributes nothing, and a node
    that receives nothing is zeros.
    """
    nodes = [x]
    for j in (1, 2, 3):
        total = None
        for e, frm in _INPUTS[j]:
            y = edge_fn(e, nodes[frm])
            if y is not None:
                total = y if total is None else total + y
        nodes.append(total if total is not None else torch.zeros_like(x))
    return nodes[3]


def _single_path(edge_ops: Sequence[nn.Module | None]) -> EdgeFn:
    return lambda e, h: None if edge_ops[e] is None else edge_ops[e](h)


class NB201SearchCell(nn.Module):
    """Six edges, each a ``ModuleDict`` op name -> module (``none`` has no module)."""

    def __init__(self, c: int, bn: BNOptions, **dd) -> None:
        super().__init__()
        self.channels, self._bn, self._dd = c, bn, dd
        self.edges = self.build_edges(c)

    def build_edges(self, c: int) -> nn.ModuleList:
        """Fresh candidate-op modules for the six edges at width ``c`` (PC-DARTS builds them at C / K)."""
        return nn.ModuleList(
            nn.ModuleDict({op: nb201_op(op, c, self._bn, **self._dd) for op in NB201_OPS if op != "none"})
            for _ in NB201_EDGES
        )

    def active(self, arch: NB201Arch) -> list[nn.Module | None]:
        return [None if op == "none" else self.edges[e][op] for e, op in enumerate(arch.ops)]

    def forward(self, x: torch.Tensor, arch: NB201Arch) -> torch.Tensor:
        return run_cell(x, _single_path(self.active(arch)))

    def forward_edges(self, x: torch.Tensor, edge_fn: EdgeFn) -> torch.Tensor:
        """The cell with edge ``e`` computed by ``edge_fn(e, input)`` (e.g. a mixed op over ``self.edges[e]``)."""
        return run_cell(x, edge_fn)


class NB201FixedCell(nn.Module):
    """One NB201 cell of a fixed architecture; its edge modules are shared with the supernet."""

    def __init__(self, edge_ops: list[nn.Module | None]) -> None:
        super().__init__()
        self.edges = nn.ModuleList(op if op is not None else nn.Identity() for op in edge_ops)
        self._none = [op is None for op in edge_ops]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return run_cell(x, _single_path([None if n else op for op, n in zip(self.edges, self._none)]))


class NB201Supernet(Supernet):
    """NB201 supernet; ``forward(x, path)`` with one architecture or one per search cell.

    Args:
        num_classes: Classifier outputs.
        in_chans: Image channels (timm's and the networks' name).
        channels: C, the width of the first stage (benchmark: 16).
        layers: N, search cells per stage (benchmark: 5).
        affine: Learnable affine BN parameters in the cells (RLNAS protocol: False).
        track_running_stats: Keep BN running statistics in the cells.
        device: Where to build the parameters.
        dtype: Parameter dtype.
        in_channels: The old name of ``in_chans`` (deprecated: one warning line).
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_chans: int = 3,
        channels: int = 16,
        layers: int = 5,
        affine: bool = False,
        track_running_stats: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        in_channels: int | None = None,
    ) -> None:
        super().__init__()
        in_chans = renamed_in_chans(in_chans, in_channels)
        dd = dict(device=device, dtype=dtype)
        self.space = NB201Space()
        self.hparams = dict(space="nb201", num_classes=num_classes, in_chans=in_chans, channels=channels,
                            layers=layers, affine=affine, track_running_stats=track_running_stats)  # fmt: skip
        bn = BNOptions(affine, track_running_stats)
        self.stem = nn.Sequential(nn.Conv2d(in_chans, channels, 3, padding=1, bias=False, **dd), nn.BatchNorm2d(channels, **dd))
        cells: list[nn.Module] = []
        self._search_idx: list[int] = []
        c_prev = channels
        for stage, c in enumerate((channels, 2 * channels, 4 * channels)):
            if stage > 0:
                cells.append(ResNetBasicBlock(c_prev, c, BNOptions(), **dd))
            for _ in range(layers):
                self._search_idx.append(len(cells))
                cells.append(NB201SearchCell(c, bn, **dd))
            c_prev = c
        self.cells = nn.ModuleList(cells)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c_prev, **dd), nn.ReLU(inplace=False))
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes, **dd)

    @property
    def num_search_cells(self) -> int:
        return len(self._search_idx)

    def _per_cell(self, path: Any) -> list[NB201Arch]:
        if isinstance(path, NB201Arch):
            return [path] * self.num_search_cells
        if isinstance(path, (list, tuple)) and path and isinstance(path[0], NB201Arch):
            if len(path) != self.num_search_cells:
                raise InvalidArchitectureError(
                    f"a per-cell NB201 path needs {self.num_search_cells} architectures, got {len(path)}"
                )
            return list(path)
        return [self.space.parse(path)] * self.num_search_cells

    def forward(self, x: torch.Tensor, path: Any) -> torch.Tensor:
        archs = self._per_cell(path)
        return self.run(x, lambda k, cell, h: cell(h, archs[k]))

    def run(self, x: torch.Tensor, search_cell: Callable[[int, NB201SearchCell, torch.Tensor], torch.Tensor],
            ) -> torch.Tensor:  # fmt: skip
        """The macro network with search cell ``k`` computed by ``search_cell(k, cell, input)``.

        ``forward`` runs one path per cell through it; the mixed-op supernet of
        :mod:`differentiable` runs every op of every edge, weighted, through the same network.
        """
        x = self.stem(x)
        k = 0
        for cell in self.cells:
            if isinstance(cell, NB201SearchCell):
                x = search_cell(k, cell, x)
                k += 1
            else:
                x = cell(x)
        return self.classifier(torch.flatten(self.global_pool(self.lastact(x)), 1))

    def op_module(self, cell: int, edge: int, op: str) -> nn.Module | None:
        if op == "none":
            return None
        return self.cells[self._search_idx[cell]].edges[edge][op]

    def fixed_modules(self) -> list[tuple[str, nn.Module]]:
        blocks = [(f"cells.{i}", c) for i, c in enumerate(self.cells) if not isinstance(c, NB201SearchCell)]
        return [("stem", self.stem), *blocks, ("lastact", self.lastact), ("classifier", self.classifier)]

    def subnet(self, arch: Any) -> NB201Subnet:
        return NB201Subnet(self, self.space.parse(arch))


class NB201Subnet(Subnet):
    """One NB201 architecture; modules (and weights) shared with the supernet that made it."""

    def __init__(self, supernet: NB201Supernet, arch: NB201Arch) -> None:
        super().__init__()
        self.arch = arch
        self.stem = supernet.stem
        self.cells = nn.ModuleList(
            NB201FixedCell(c.active(arch)) if isinstance(c, NB201SearchCell) else c for c in supernet.cells
        )
        self.lastact = supernet.lastact
        self.global_pool = supernet.global_pool
        self.classifier = supernet.classifier
        self.num_features = supernet.classifier.in_features
        c, layers = supernet.hparams["channels"], supernet.hparams["layers"]
        last = [layers - 1, 2 * layers, 3 * layers + 1]  # index of each stage's last cell
        self.feature_info = [FeatureInfo(c * 2**s, 2**s, f"cells.{i}") for s, i in enumerate(last)]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for cell in self.cells:
            x = cell(x)
        return self.lastact(x)


SUPERNETS.add("nb201", NB201Supernet, description="NAS-Bench-201 macro network, per-cell single-path sampling")
