"""What architectures of a supernet cost: parameters and FLOPs of one, and the range over the space.

Every op of a cell maps ``C -> C`` channels at a resolution fixed by the macro network, so an
architecture's cost is the fixed part (stem, fixed blocks, preprocessing, classifier) plus one
term per (cell, edge, op) it uses.  :func:`cost_range` reads those terms once and returns the
exact minimum and maximum over the space (NB201: the cheapest / dearest op per edge, shared by
every cell; DARTS: per node the two cheapest / dearest distinct non-``none`` inputs), so a budget
no architecture can meet is reported in seconds, before any scoring.  The counters are
:func:`genas.counting.count_params` and :func:`~genas.counting.count_flops`, the ones export uses.

Example:
    >>> from supernet import create_supernet
    >>> net = create_supernet("nb201", num_classes=10, channels=4, layers=1)
    >>> r = cost_range(net, (1, 3, 8, 8))
    >>> r.params[0] < r.params[1] and r.flops[0] < r.flops[1]
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from genas.counting import count_flops, count_params
from genas.spaces.darts import DARTS_EDGES, DARTS_NODES
from supernet.base import Supernet

__all__ = ["arch_cost", "cost_range", "CostRange"]


def arch_cost(net: Supernet, arch: Any, input_shape: Sequence[int]) -> tuple[float, float]:
    """(millions of parameters, MFLOPs) of ``arch``'s subnet on one input of ``input_shape`` (batch 1)."""
    sub = net.subnet(arch)
    return count_params(sub) / 1e6, count_flops(sub, input_shape) / 1e6


@dataclass(frozen=True)
class CostRange:
    """Minimum and maximum over the space, in millions of parameters and MFLOPs."""

    params: tuple[float, float]
    flops: tuple[float, float]

    def describe(self) -> str:
        return (f"params {self.params[0]:.4g}-{self.params[1]:.4g} M, "
                f"FLOPs {self.flops[0]:.4g}-{self.flops[1]:.4g} MFLOPs")  # fmt: skip


def _edge_inputs(net: Supernet, arch: Any, input_shape: Sequence[int]) -> list[tuple[int, ...]]:
    """The shape of the states every edge of each search cell reads (batch 1)."""
    shapes: list[tuple[int, ...]] = []
    darts = net.space.name == "darts"
    cells = [c for c in net.cells if hasattr(c, "edges")]
    hooks = [(c.preprocess1 if darts else c).register_forward_hook(
        (lambda m, i, o: shapes.append(tuple(o.shape))) if darts else (lambda m, i, o: shapes.append(tuple(i[0].shape))))
        for c in cells]  # fmt: skip
    try:
        with torch.no_grad():
            net.eval()
            dev = next(net.parameters()).device
            net(torch.zeros(tuple(input_shape), device=dev), arch)
    finally:
        for h in hooks:
            h.remove()
    return shapes


def cost_range(net: Supernet, input_shape: Sequence[int]) -> CostRange:
    """Exact (min, max) parameters and FLOPs over every architecture of ``net``'s space."""
    space = net.space
    probe = space.sample(__import__("numpy").random.default_rng(0))
    shapes = _edge_inputs(net, probe, input_shape)
    ops = [op for op in space.ops if op != "none"]
    n_edges = len(space.edges) if space.name == "nb201" else len(DARTS_EDGES)
    # cost[(kind, edge, op)] summed over the cells of that kind (NB201: one kind, all cells share the arch)
    terms: dict[tuple[str, int, str], list[float]] = {}
    for cell in range(net.num_search_cells):
        kind = "reduce" if space.name == "darts" and net.cells[cell].reduction else "normal"
        for e in range(n_edges):
            shape = shapes[cell]
            if kind == "reduce" and DARTS_EDGES[e][1] >= 2:  # an intermediate node of a reduce cell: half resolution
                shape = (*shape[:2], (shape[2] + 1) // 2, (shape[3] + 1) // 2)
            for op in ops:
                mod = net.op_module(cell, e, op)
                p = count_params(mod) / 1e6
                f = count_flops(mod, shape) / 1e6
                acc = terms.setdefault((kind, e, op), [0.0, 0.0])
                acc[0] += p
                acc[1] += f
    used = _used_terms(space, probe)
    fixed = [c - sum(terms[t][i] for t in used if t in terms) for i, c in enumerate(arch_cost(net, probe, input_shape))]
    out = []
    for i in (0, 1):  # params, then FLOPs
        lo, hi = fixed[i], fixed[i]
        for kind in ("normal", "reduce") if space.name == "darts" else ("normal",):
            per_edge = {e: [terms[(kind, e, op)][i] for op in ops] for e in range(n_edges)}
            if space.name == "nb201":
                lo += sum(min(0.0, *v) for v in per_edge.values())  # `none` costs nothing
                hi += sum(max(v) for v in per_edge.values())
            else:
                for j in DARTS_NODES:
                    incoming = [e for e, (to, _) in enumerate(DARTS_EDGES) if to == j]
                    lo += sum(sorted(min(per_edge[e]) for e in incoming)[:2])
                    hi += sum(sorted((max(per_edge[e]) for e in incoming), reverse=True)[:2])
        out.append((max(lo, 0.0), hi))
    return CostRange(out[0], out[1])


def _used_terms(space: Any, arch: Any) -> list[tuple[str, int, str]]:
    if space.name == "nb201":
        return [("normal", e, op) for e, op in enumerate(arch.ops) if op != "none"]
    return [(kind, e, space.ops[g]) for kind, genes in (("normal", arch.normal), ("reduce", arch.reduce))
            for e, g in enumerate(genes) if g]  # fmt: skip
