"""RLNAS / ABS angle: how far a subnet's weights moved from their initialisation.

theta(a) = arccos(<v0(a), vT(a)> / (|v0(a)| |vT(a)|)), with v the concatenation, along every
input->output path of every cell, of the path's op weights (RLNAS Algorithm 1, Zhang et al.
2021; Hu et al. 2020).  A path through ``none`` is dropped; parameter-free ops get a fixed
stand-in (avg/max pool: a C x 3 x 3 kernel of 1/9; skip: nothing in NB201, the C x C
identity in DARTS); the stem, fixed blocks and classifier are appended.  theta = 0 when
every path is dropped.

Because the cosine of two concatenations only needs per-segment dot products and squared
norms, those are computed once per parameter tensor; each architecture then costs a few
sums (scoring all 15,625 NB201 cells takes well under a second).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from genas.errors import NotTrainedError
from genas.lazy import lazy_import
from genas.spaces.darts import DARTS_EDGES, DARTS_NODES
from genas.spaces.nb201 import NB201_EDGES
from genas.validation import check_bool
from scorers.base import Needs, Scorer
from scorers.registry import register_scorer

if TYPE_CHECKING:
    from scorers.context import ScoringContext

torch = lazy_import("torch")
nn = lazy_import("torch.nn")  # imported when first used: listing scorers needs no torch

__all__ = ["Angle", "nb201_paths", "darts_paths"]

# NB201 cell paths by node, as in RLNAS: 0->3, 0->2->3, 0->1->2->3, 0->1->3
NB201_PATHS = ((0, 3), (0, 2, 3), (0, 1, 2, 3), (0, 1, 3))


def nb201_paths() -> list[list[int]]:
    """Edge indices of the 4 input->output paths of an NB201 cell."""
    return [[NB201_EDGES.index((b, a)) for a, b in zip(p, p[1:])] for p in NB201_PATHS]


def darts_paths() -> list[list[int]]:
    """Edge indices of every chain input (0 or 1) -> ... -> intermediate node of a DARTS cell (30 paths)."""
    out: list[list[int]] = []

    def extend(chain: list[int]) -> None:
        if chain[-1] >= 2:
            out.append([DARTS_EDGES.index((b, a)) for a, b in zip(chain, chain[1:])])
        for nxt in DARTS_NODES:
            if nxt > chain[-1]:
                extend(chain + [nxt])

    for start in (0, 1):
        extend([start])
    return out


class _Segments:
    """Per-tensor statistics (dot, |v0|^2, |vT|^2) keyed by name, with constant stand-ins."""

    def __init__(self, net: nn.Module, init: dict[str, torch.Tensor]) -> None:
        self.names = {id(m): n for n, m in net.named_modules()}
        self.stats: dict[str, tuple[float, float, float]] = {}
        final = dict(net.named_parameters())
        missing = [n for n in final if n not in init]
        if missing:
            raise NotTrainedError(f"the init checkpoint lacks {len(missing)} supernet parameters (e.g. {missing[0]!r})")
        for name, p in final.items():
            a = init[name].detach().double().flatten()
            b = p.detach().double().cpu().flatten()
            self.stats[name] = (float(a @ b), float(a @ a), float(b @ b))

    def module(self, mod: nn.Module) -> tuple[float, float, float]:
        prefix = self.names[id(mod)]
        acc = np.zeros(3)
        for n, _ in mod.named_parameters():
            acc += self.stats[f"{prefix}.{n}" if prefix else n]
        return tuple(acc)


@register_scorer("angle", description="RLNAS angle between init and trained path weights (radians)")
class Angle(Scorer):
    """RLNAS / ABS angle in radians (larger = the subnet's weights moved further: better).

    In weighted sums the angle enters as theta / pi.

    Args:
        include_fixed: Append the stem, fixed blocks and classifier to the vector (RLNAS). False
            gives the cells-only angle, a diagnostic of how much the fixed part dominates.
    """

    higher_is_better = True
    needs = Needs(supernet=True, init_weights=True)

    def __init__(self, include_fixed: bool = True) -> None:
        self.include_fixed = check_bool(include_fixed, "include_fixed", "angle")
        self._cache_key: int | None = None
        self._seg: _Segments | None = None

    def normalized(self, values: np.ndarray) -> np.ndarray:
        return values / math.pi

    def _segments(self, ctx: ScoringContext) -> _Segments:
        net = ctx.require_supernet(self.name)
        if ctx.init_state is None:
            raise NotTrainedError(
                "scorer 'angle' needs the init checkpoint (weights at step 0, checkpoints/init.pt of the training run); "
                "it is written by `python tools/train_supernet.py`"
            )
        key = id(ctx)
        if self._cache_key != key:
            self._seg, self._cache_key = _Segments(net, ctx.init_state), key
        return self._seg

    def score(self, archs: Any, ctx: ScoringContext) -> np.ndarray:
        seg = self._segments(ctx)
        net = ctx.supernet
        fixed = np.zeros(3)
        for _, mod in net.fixed_modules() if self.include_fixed else ():
            fixed += seg.module(mod)
        out = np.empty(len(archs))
        for i, arch in enumerate(archs):
            arch = ctx.space.parse(arch)
            total, kept = fixed.copy(), 0
            paths = nb201_paths() if ctx.space.name == "nb201" else darts_paths()
            for cell in range(net.num_search_cells):
                genes = _cell_genes(net, cell, arch)
                for path in paths:
                    if any(genes[e] == 0 for e in path):
                        continue
                    kept += 1
                    for e in path:
                        total += self._op_stats(net, seg, cell, e, ctx.space.ops[genes[e]])
            if kept == 0 or total[1] == 0 or total[2] == 0:
                out[i] = 0.0
            else:
                cos = total[0] / math.sqrt(total[1] * total[2])
                # a NaN weight gives a NaN cosine: the documented worst-value rule applies, not 0
                out[i] = math.acos(max(-1.0, min(1.0, cos))) if math.isfinite(cos) else math.nan
        return out

    @staticmethod
    def _op_stats(net: Any, seg: _Segments, cell: int, edge: int, op: str) -> np.ndarray:
        mod = net.op_module(cell, edge, op)
        stats = np.array(seg.module(mod)) if mod is not None else np.zeros(3)
        darts = net.space.name == "darts"
        channels = _channels(net, cell)
        if op in ("avg_pool_3x3", "max_pool_3x3"):
            stats += channels * 9 / 81.0  # a C x 3 x 3 kernel of 1/9, the same at init and after training
        elif op == "skip_connect" and darts and not list(mod.parameters()):
            stats += channels  # the C x C identity
        return stats


def _cell_genes(net: Any, cell: int, arch: Any) -> tuple[int, ...]:
    if net.space.name == "nb201":
        return arch.genes
    return arch.reduce if net.cells[cell].reduction else arch.normal


def _channels(net: Any, cell: int) -> int:
    """Channels C of the ops of search cell ``cell``."""
    if net.space.name == "nb201":
        per_stage = net.hparams["layers"]
        return net.hparams["channels"] * 2 ** (cell // per_stage)
    return net.cells[cell].preprocess1[1].out_channels
