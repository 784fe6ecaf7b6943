"""Validation accuracy and loss of a subnet after BN recalibration (SPOS's "PBS" proxy)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scorers.base import Needs, Scorer
from scorers.registry import register_scorer

if TYPE_CHECKING:
    from scorers.context import ScoringContext

__all__ = ["Accuracy", "Loss"]


@register_scorer("accuracy", description="top-1 on the held-out split after BN recalibration (a fraction)")
class Accuracy(Scorer):
    """Top-1 accuracy (fraction in [0, 1]) on the held-out batches, BN statistics recalibrated first."""

    higher_is_better = True
    needs = Needs(supernet=True, data=True)

    def score_one(self, arch: Any, ctx: ScoringContext) -> float:
        return ctx.evaluate(arch)[1]


@register_scorer("loss", description="negative mean cross-entropy on the held-out split (higher = better)")
class Loss(Scorer):
    """Negative mean cross-entropy on the held-out batches (so that larger is better, like every built-in)."""

    higher_is_better = True
    needs = Needs(supernet=True, data=True)

    def score_one(self, arch: Any, ctx: ScoringContext) -> float:
        return -ctx.evaluate(arch)[0]
