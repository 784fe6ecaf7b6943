"""The weighted sum of scorers (GeNAS eq. 5): the scorer ``angle+flatness`` and every other sum builds.

The expression is read by :func:`scorers.registry.create_scorer`; this module is the sum itself.
In a sum every term enters in its *normalised* form (angle: theta/pi, accuracy: a fraction,
flatness: beta*F with beta = 1/sigma_1) and lower-is-better scorers are negated; a flatness term
without a coefficient gets the GeNAS weight ``gamma`` (default 16, the reference run's), so
``angle+flatness`` = theta/pi + gamma * beta * F.

That fixed weighting lets the term with the larger spread decide the order.  ``weighting`` sets each
term's scale from the candidates' own spread instead, with no benchmark accuracies (the default,
``auto``, is ``rank`` for a sum without coefficients such as ``angle+flatness``, and ``fixed`` when
the expression or ``gamma`` sets the scales, as in ``accuracy+0.5*synflow``): the terms are
measured on ``calibration`` architectures drawn from the space with the context's seed (scored once,
through the score cache, then fixed, so every candidate of a search is on one scale) and each enters as

* ``zscore``: (v - mean) / std over the calibration sample, times its coefficient (default 1);
* ``rank``: its empirical CDF over the calibration sample (midranks, linear between the sample's
  values and continued beyond its extremes, so it never saturates: :func:`interpolated_cdf`),
  times its coefficient.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from genas.errors import ConfigError
from scorers.base import Needs, Scorer

if TYPE_CHECKING:
    from scorers.context import ScoringContext

__all__ = ["WeightedSum", "interpolated_cdf", "DEFAULT_GAMMA", "WEIGHTINGS", "DEFAULT_WEIGHTING",
           "DEFAULT_CALIBRATION", "MIN_CALIBRATION"]

DEFAULT_GAMMA = 16.0
WEIGHTINGS = ("auto", "fixed", "rank", "zscore")
DEFAULT_WEIGHTING = "auto"  # rank, unless the expression sets its own scales (a coefficient, or gamma): fixed
DEFAULT_CALIBRATION = 32  # architectures drawn to measure each term's spread
MIN_CALIBRATION = 8  # fewer cannot estimate a spread


def interpolated_cdf(ref: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The calibration sample's empirical CDF at ``values``, strictly increasing, so that it breaks no ties.

    Through the midrank points (x_(i), (i - 1/2) / n) (tied values: their mean position), linear in
    between, and beyond the sample's extremes continued with slope 1 / (max - min): a candidate
    better than every calibration architecture is still ranked by how much better.

    Example:
        >>> interpolated_cdf(np.array([1.0, 2.0, 2.0, 4.0]), np.array([1.0, 2.0, 3.0, 4.0, 7.0]))
        array([0.125 , 0.5   , 0.6875, 0.875 , 1.875 ])
    """
    ref = np.sort(np.asarray(ref, dtype=np.float64))
    xs, counts = np.unique(ref, return_counts=True)
    pos = (np.cumsum(counts) - counts / 2.0) / len(ref)
    slope = 1.0 / (xs[-1] - xs[0])
    v = np.asarray(values, dtype=np.float64)
    out = np.interp(v, xs, pos)
    out = np.where(v > xs[-1], pos[-1] + (v - xs[-1]) * slope, out)
    return np.where(v < xs[0], pos[0] - (xs[0] - v) * slope, out)


class WeightedSum(Scorer):
    """sum_i w_i * (normalised score_i), lower-is-better components negated; see the module docstring.

    Args:
        parts: (weight, scorer) pairs.
        expression: The expression the parts came from (the scorer's name).
        weighting: ``fixed`` (GeNAS eq. 5), ``zscore`` or ``rank`` (scales measured on a calibration sample).
        calibration: Architectures in the calibration sample (``zscore`` / ``rank`` only).
    """

    higher_is_better = True

    def __init__(self, parts: Sequence[tuple[float, Scorer]], expression: str, weighting: str = DEFAULT_WEIGHTING,
                 calibration: int | None = None) -> None:  # fmt: skip
        self.parts = list(parts)
        self.expression = expression
        self.name = expression
        self.weighting = weighting
        self.calibration = calibration
        needs = Needs(supernet=False)
        for _, s in self.parts:
            needs = needs | s.needs
        self.needs = needs

    @staticmethod
    def _values(scorer: Scorer, archs: Sequence[Any], ctx: ScoringContext) -> np.ndarray:
        value = scorer.normalized(ctx.score(scorer, archs))  # cached, NaN rule applied
        return value if scorer.higher_is_better else -value

    def calibration_sample(self, ctx: ScoringContext) -> list[Any]:
        """The architectures the term scales are measured on: drawn from the space with the context's seed."""
        rng = np.random.default_rng([int(ctx.seed), 0x5CA1E])
        return [ctx.space.sample(rng) for _ in range(int(self.calibration or DEFAULT_CALIBRATION))]

    def term_scales(self, ctx: ScoringContext) -> list[np.ndarray]:
        """Each term's sorted values on the calibration sample (computed once per context)."""
        key = ("weighted-sum-calibration", repr(self))
        if key not in ctx.score_cache:
            sample = self.calibration_sample(ctx)
            scales = []
            for _, scorer in self.parts:
                v = np.sort(self._values(scorer, sample, ctx))
                if not np.all(np.isfinite(v)) or v[-1] - v[0] <= 0:
                    what = "no spread (one value on all of them)" if np.all(np.isfinite(v)) else "non-finite values"
                    raise ConfigError(f"scorer {self.expression!r} with weighting {self.weighting!r}: term {scorer.name!r} "
                                      f"has {what} over the {len(v)} calibration architectures; use weighting 'fixed' or "
                                      "a larger 'calibration'")  # fmt: skip
                scales.append(v)
            ctx.score_cache[key] = scales
        return ctx.score_cache[key]

    def score(self, archs: Sequence[Any], ctx: ScoringContext) -> np.ndarray:
        total = np.zeros(len(archs))
        scales = self.term_scales(ctx) if self.weighting != "fixed" else [None] * len(self.parts)
        for (weight, scorer), ref in zip(self.parts, scales):
            value = self._values(scorer, archs, ctx)
            if self.weighting == "zscore":
                value = (value - ref.mean()) / ref.std(ddof=1)
            elif self.weighting == "rank":
                value = interpolated_cdf(ref, value)
            total += weight * value
        return total

    def options(self) -> dict[str, Any]:
        out: dict[str, Any] = {"expression": self.expression, "parts": [(w, s.name, s.options()) for w, s in self.parts]}
        if self.weighting != "fixed":
            out.update(weighting=self.weighting, calibration=self.calibration or DEFAULT_CALIBRATION)
        return out
