"""Neighbourhood-aware scoring (NA-NAS, Wang et al.): reward architectures in flat regions.

score(a) = aggregate of a base scorer over ``a`` and ``k`` radius-1 neighbours of ``a``,
sampled with a generator keyed by (seed, architecture), so the same architecture always gets
the same neighbours.  All candidates and neighbours of a batch are scored by the base scorer
in one call, through the context's score cache, so a neighbour shared by several candidates
(or already scored as a candidate) is scored once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from genas.validation import check_bool, check_choice, check_int
from scorers.base import Scorer, cached_scores, noise_seed

if TYPE_CHECKING:
    from scorers.context import ScoringContext

__all__ = ["NeighborhoodAware"]

_AGGREGATES = {"mean": np.mean, "median": np.median, "min": np.min, "max": np.max}


class NeighborhoodAware(Scorer):
    """``na:<base>``: aggregate of ``base`` over the architecture and ``k`` sampled radius-1 neighbours.

    Args:
        base: The wrapped scorer.
        k: Neighbours sampled per architecture (all of them if the neighbourhood is smaller).
        aggregate: ``mean`` (NA-NAS), ``median``, ``min`` or ``max``.
        include_self: Include the architecture itself in the aggregate.
    """

    def __init__(self, base: Scorer, k: int = 8, aggregate: str = "mean", include_self: bool = True) -> None:
        self.base = base
        self.k = check_int(k, "k", "na", 1)
        self.aggregate = check_choice(aggregate, "aggregate", "na", tuple(_AGGREGATES))
        self.include_self = check_bool(include_self, "include_self", "na")
        self.name = f"na:{base.name}"
        self.higher_is_better = base.higher_is_better
        self.needs = base.needs

    def normalized(self, values: np.ndarray) -> np.ndarray:
        return self.base.normalized(values)

    def default_weight(self, gamma: float) -> float:
        return self.base.default_weight(gamma)

    def neighbours(self, arch: Any, ctx: ScoringContext) -> list[Any]:
        rng = np.random.default_rng(noise_seed(ctx.seed, "na", str(arch)))
        return ctx.space.sample_neighbors(arch, 1, self.k, rng)

    def score(self, archs: Sequence[Any], ctx: ScoringContext) -> np.ndarray:
        archs = [ctx.space.parse(a) for a in archs]
        groups = [([a] if self.include_self else []) + self.neighbours(a, ctx) for a in archs]
        flat = [b for g in groups for b in g]
        values = dict(zip(flat, cached_scores(self.base, flat, ctx).tolist()))  # each distinct arch scored once
        agg = _AGGREGATES[self.aggregate]
        return np.array([agg([values[b] for b in g]) for g in groups])

    def options(self) -> dict[str, Any]:
        return {"base": self.base.name, "k": self.k, "aggregate": self.aggregate, "include_self": self.include_self}
