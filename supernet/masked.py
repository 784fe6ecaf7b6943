"""A sampled SPOS path as one-hot masks over every op of every edge: a forward with static shapes.

The eager step runs only the sampled ops, so which kernels run changes from step to step and the
step cannot be captured as one CUDA graph.  Here every candidate op of every edge runs, and its
output is multiplied by its entry of a one-hot mask (1 for the sampled op, 0 for the others):

    edge output = sum over ops o of mask[cell, edge, o] * op_o(input)

Off-path outputs contribute exact zeros (``0 * y``, ``x + 0 = x``), so the forward gives the
eager step's logits, and the backward the eager step's gradients on the path; every parameter off
the path gets an exact *zero* gradient where the eager step leaves it ``None``.  Which parameters
the optimizer may update is therefore carried separately, per *unit* (a fixed module, or the
module of one (cell, edge, op)):

* ``ran``: the units whose forward ran in the eager step: the fixed modules and every non-``none``
  sampled op.  Only their BatchNorm running statistics may move (see :class:`MaskedBN`).
* ``live``: the units whose parameters got a gradient in the eager step: a sampled op whose output
  reaches the loss.  In NB201 an op into a node whose every outgoing edge is ``none`` runs but gets
  no gradient; a cell whose output does not depend on its input (all its paths from the input are
  ``none``) cuts off everything before it.

NB201 masks are per cell (the sampler draws an architecture per cell), DARTS masks per cell type
(one normal and one reduce genotype per step).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from genas.spaces import DARTS_OPS, NB201_OPS, NB201Arch
from genas.spaces.darts import DARTS_EDGES
from genas.spaces.nb201 import NB201_EDGES
from supernet.base import Supernet
from supernet.darts import DartsSupernet
from supernet.nb201 import NB201SearchCell, NB201Supernet

__all__ = ["PathMasks", "MaskedBN", "masked_forward", "masks_unavailable"]

_NB201_OPS = NB201_OPS[1:]  # the ops with a module, in mask order
_DARTS_OPS = DARTS_OPS[1:]


def masks_unavailable(model: nn.Module) -> str | None:
    """Why ``model`` has no masked forward (None when it has one)."""
    if not isinstance(model, (NB201Supernet, DartsSupernet)):
        return f"the {type(model).__name__} supernet has no masked step (only the built-in nb201 and darts supernets)"
    try:
        PathMasks(model)
    except ValueError as exc:
        return str(exc)
    return None


class PathMasks:
    """The units of a supernet and, per sampled path, its op masks and the ``ran`` / ``live`` units.

    Units ``0 .. F-1`` are the fixed modules (``model.fixed_modules()`` order), then one per
    (cell, edge, op) module in mask order.  :meth:`encode` packs one path into a float vector:
    the op masks (``mask_shape``), then ``ran`` and ``live`` (one entry per unit).

    Args:
        model: An NB201 or DARTS supernet.

    Raises:
        ValueError: A parameter of ``model`` belongs to no unit or to several (a plugin module).
    """

    def __init__(self, model: Supernet) -> None:
        self.model = model
        self.nb201 = isinstance(model, NB201Supernet)
        self.ops = _NB201_OPS if self.nb201 else _DARTS_OPS
        self.edges = len(NB201_EDGES) if self.nb201 else len(DARTS_EDGES)
        cells = model.num_search_cells
        self.mask_shape = (cells if self.nb201 else 2, self.edges, len(self.ops))
        fixed = model.fixed_modules()
        self.units: list[tuple[str, nn.Module]] = list(fixed)
        for k in range(cells):
            for e in range(self.edges):
                for op in self.ops:
                    self.units.append((f"cell {k} / edge {e} / {op}", model.op_module(k, e, op)))
        self.num_fixed = len(fixed)
        self.size = int(np.prod(self.mask_shape)) + 2 * len(self.units)
        self.param_unit = self._param_units()
        if self.nb201:  # a fixed module gets a gradient when every search cell after it passes one back
            search = [i for i, c in enumerate(model.cells) if isinstance(c, NB201SearchCell)]
            index = {id(m): i for i, m in enumerate(model.cells)}
            self._fixed_after = [  # search cells after each fixed module in forward order
                cells if name == "stem" else sum(i > index[id(m)] for i in search) if id(m) in index else 0
                for name, m in fixed
            ]
        else:
            self._darts_type = [int(c.reduction) for c in model.cells]

    def _param_units(self) -> dict[int, int]:
        owner: dict[int, int] = {}
        for u, (_, module) in enumerate(self.units):
            for p in module.parameters():
                if id(p) in owner:
                    raise ValueError(f"parameter shared by units {self.units[owner[id(p)]][0]!r} and {self.units[u][0]!r}")
                owner[id(p)] = u
        for name, p in self.model.named_parameters():
            if id(p) not in owner:
                raise ValueError(f"parameter {name!r} is in no op or fixed module of the supernet")
        return owner

    def op_unit(self, cell: int, edge: int, op: int) -> int:
        """The unit of op index ``op`` (in :attr:`ops`) on ``edge`` of search cell ``cell``."""
        return self.num_fixed + (cell * self.edges + edge) * len(self.ops) + op

    def encode(self, path: Any) -> np.ndarray:
        """``path`` as one float32 vector: op masks, then ``ran``, then ``live`` per unit."""
        mask = np.zeros(self.mask_shape, np.float32)
        ran = np.zeros(len(self.units), np.float32)
        live = np.zeros(len(self.units), np.float32)
        ran[: self.num_fixed] = 1.0
        if self.nb201:
            archs = self._nb201_cells(path)
            passes = []
            for k, arch in enumerate(archs):
                m, cell_ran, cell_live, passing = _nb201_cell(arch)
                mask[k] = m
                lo = self.op_unit(k, 0, 0)
                ran[lo : lo + m.size] = cell_ran.ravel()
                live[lo : lo + m.size] = cell_live.ravel()
                passes.append(passing)
            tail = np.logical_and.accumulate(np.array([True] + passes[::-1]))[::-1]  # tail[k]: cells k.. all pass
            for u, after in enumerate(self._fixed_after):
                live[u] = float(tail[len(archs) - after])
            for k in range(len(archs)):  # an op reaches the loss only if every later cell passes a gradient back
                lo = self.op_unit(k, 0, 0)
                live[lo : lo + mask[k].size] *= float(tail[k + 1])
        else:  # every active DARTS edge feeds a node, and every node the cell's output: all live
            arch = self.model.space.parse(path)
            for t, genes in enumerate((arch.normal, arch.reduce)):
                for e, g in enumerate(genes):
                    if g:
                        mask[t, e, g - 1] = 1.0
            for k, t in enumerate(self._darts_type):
                lo = self.op_unit(k, 0, 0)
                ran[lo : lo + mask[t].size] = mask[t].ravel()
            live[:] = ran
        return np.concatenate([mask.ravel(), ran, live])

    def _nb201_cells(self, path: Any) -> list[NB201Arch]:
        n = self.model.num_search_cells
        if isinstance(path, NB201Arch):
            return [path] * n
        if isinstance(path, (list, tuple)) and path and isinstance(path[0], NB201Arch):
            if len(path) != n:
                raise ValueError(f"a per-cell NB201 path needs {n} architectures, got {len(path)}")
            return list(path)
        return [self.model.space.parse(path)] * n

    def views(self, plan: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(op masks, ran, live)`` as views of an encoded vector on the device."""
        n = int(np.prod(self.mask_shape))
        u = len(self.units)
        return plan[:n].view(self.mask_shape), plan[n : n + u], plan[n + u :]


@functools.lru_cache(maxsize=None)
def _nb201_cell(arch: NB201Arch) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """(op mask, ran, live) of one NB201 cell, each (6, 4), and whether its output depends on its input."""
    mask = np.zeros((len(NB201_EDGES), len(_NB201_OPS)), np.float32)
    for e, op in enumerate(arch.ops):
        if op != "none":
            mask[e, _NB201_OPS.index(op)] = 1.0
    needed = {3}  # nodes whose value reaches the cell's output through non-none edges
    for j in (2, 1, 0):
        if any(to in needed and frm == j and op != "none" for (to, frm), op in zip(NB201_EDGES, arch.ops)):
            needed.add(j)
    live = mask * np.array([[to in needed] for to, _ in NB201_EDGES], np.float32)
    return mask, mask.copy(), live, 0 in needed


def masked_forward(model: Supernet, x: torch.Tensor, op_mask: torch.Tensor) -> torch.Tensor:
    """Logits of ``model`` with every op of every edge run, weighted by ``op_mask``.

    Args:
        model: An NB201 or DARTS supernet.
        x: Input batch.
        op_mask: ``PathMasks.mask_shape`` one-hot (or zero, for ``none``) weights on ``x``'s device.
    """
    ops = _NB201_OPS if isinstance(model, NB201Supernet) else _DARTS_OPS

    def edge_fn(cell: nn.Module, weights: torch.Tensor) -> Callable[[int, torch.Tensor], torch.Tensor]:
        def run(e: int, h: torch.Tensor) -> torch.Tensor:
            total = None
            for o, name in enumerate(ops):
                y = cell.edges[e][name](h) * weights[e, o]
                total = y if total is None else total + y
            return total

        return run

    if isinstance(model, NB201Supernet):
        return model.run(x, lambda k, cell, h: cell.forward_edges(h, edge_fn(cell, op_mask[k])))
    return model.run(x, lambda i, cell, s0, s1: cell.forward_edges(s0, s1, edge_fn(cell, op_mask[int(cell.reduction)])))


class MaskedBN:
    """Keeps the BatchNorm running statistics of the ops that did not run in the eager step.

    Every op runs in the masked forward, so every op BN updates its running mean, variance and
    batch count; :meth:`save` before the forward and :meth:`restore` after it put back the old
    values of the BNs whose unit is not in ``ran``, with a handful of foreach kernels (exact:
    ``lerp`` with weight 0 or 1, an integer subtraction for the counts).

    Args:
        masks: The supernet's units.
        device: Where the statistics live.
    """

    def __init__(self, masks: PathMasks, device: torch.device) -> None:
        layers, units = [], []
        for u in range(masks.num_fixed, len(masks.units)):
            for m in masks.units[u][1].modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
                    layers.append(m)
                    units.append(u)
        self.layers = layers
        self.stats = [t for m in layers for t in (m.running_mean, m.running_var)]
        self.counts = [m.num_batches_tracked for m in layers]
        self.saved = [torch.empty_like(t) for t in self.stats]
        sizes = [m.num_features for m in layers]
        self._elem_unit = torch.tensor(np.repeat(units, sizes), dtype=torch.long, device=device)
        self._layer_unit = torch.tensor(units, dtype=torch.long, device=device)
        self._keep = torch.zeros(sum(sizes), device=device)  # 1 where the old value comes back
        self._keep_count = torch.zeros(len(layers), dtype=torch.long, device=device)
        keep = list(self._keep.split(sizes)) if layers else []
        self._weights = [w for w in keep for _ in (0, 1)]  # the same weights for mean and variance
        self._count_weights = list(self._keep_count.unbind()) if layers else []

    def save(self) -> None:
        """Keep the running means and variances before the forward."""
        if self.layers:
            torch._foreach_copy_(self.saved, self.stats)

    def restore(self, ran: torch.Tensor) -> None:
        """After the forward: put back the statistics of every BN whose unit is 0 in ``ran``.

        Each op module runs once per masked forward, so its batch count went up by exactly one.
        """
        if not self.layers:
            return
        torch.index_select(ran, 0, self._elem_unit, out=self._keep)
        torch.sub(1.0, self._keep, out=self._keep)
        self._keep_count.copy_(1 - ran.index_select(0, self._layer_unit).long())
        torch._foreach_lerp_(self.stats, self.saved, self._weights)
        torch._foreach_sub_(self.counts, self._count_weights)
