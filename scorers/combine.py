"""Scorer expressions: weighted sums (GeNAS eq. 5) and the neighbourhood-aware wrapper.

Grammar: terms joined by ``+`` or ``-``, each ``[coef*]name`` where ``name`` is a registered
scorer or ``na:<name>``.  A single bare name is that scorer, unchanged.  In a sum every term
enters in its *normalised* form (angle: theta/pi, accuracy: a fraction, flatness: beta*F with
beta = 1/sigma_1) and lower-is-better scorers are negated; a flatness term without a
coefficient gets the GeNAS weight ``gamma`` (default 16, the reference run's), so
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

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from genas.errors import ConfigError
from genas.validation import check_choice, check_float, check_int
from scorers.base import Needs, Scorer, cached_scores
from scorers.neighborhood import NeighborhoodAware
from scorers.registry import build_scorer, origin_of, scorer_options

if TYPE_CHECKING:
    from scorers.context import ScoringContext

__all__ = ["create_scorer", "create_scorers", "WeightedSum", "parse_expression", "interpolated_cdf", "DEFAULT_GAMMA",
           "WEIGHTINGS"]

DEFAULT_GAMMA = 16.0
WEIGHTINGS = ("auto", "fixed", "rank", "zscore")
DEFAULT_WEIGHTING = "auto"  # rank, unless the expression sets its own scales (a coefficient, or gamma): fixed
DEFAULT_CALIBRATION = 32  # architectures drawn to measure each term's spread
MIN_CALIBRATION = 8  # fewer cannot estimate a spread
_NUM = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_TERM = re.compile(rf"\s*(?P<op>[+-])?\s*(?:(?P<coef>{_NUM})\s*\*\s*)?(?P<name>[A-Za-z_][\w.]*(?::[A-Za-z_][\w.]*)?)\s*")


@dataclass(frozen=True)
class Term:
    coef: float | None  # None: default weight (1, or gamma for flatness)
    sign: int
    name: str


def parse_expression(expr: str) -> list[Term]:
    """Split ``expr`` into signed terms, naming where it stops making sense."""
    if not isinstance(expr, str) or not expr.strip():
        raise ConfigError(f"a scorer expression must be a non-empty string, got {expr!r}")
    terms: list[Term] = []
    pos = 0
    while pos < len(expr):
        m = _TERM.match(expr, pos)
        if m is None or m.end() == pos or (terms and m["op"] is None):
            raise ConfigError(
                f"malformed scorer expression {expr!r}: cannot read {expr[pos:].strip()!r} (position {pos}); "
                "write terms like 'angle+0.5*flatness' or 'na:accuracy'"
            )
        coef = float(m["coef"]) if m["coef"] is not None else None
        terms.append(Term(coef, -1 if m["op"] == "-" else 1, m["name"]))
        pos = m.end()
    return terms


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
        value = scorer.normalized(cached_scores(scorer, archs, ctx, origin_of(scorer.name)))
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


def _single(name: str, options: dict[str, Any], used: set[str]) -> Scorer:
    if name.startswith("na:"):
        base = _single(name[3:], options, used)
        na_opts = {k[3:]: v for k, v in options.items() if k.startswith("na.")}
        used.update(f"na.{k}" for k in na_opts)
        try:
            return NeighborhoodAware(base, **na_opts)
        except TypeError as exc:
            raise ConfigError(f"scorer 'na:{base.name}': {exc}") from exc
    scorer, keys = build_scorer(name, options)
    used.update(keys)
    return scorer


def create_scorers(expressions: list[str], **options: Any) -> list[Scorer]:
    """Several scorers sharing one option set: each takes the options it accepts; an option no scorer
    takes is an error."""
    options = {k: v for k, v in options.items() if v is not None}
    out, used = [], set()
    for expr in expressions:
        scorer, keys = _create(expr, options, strict=False)
        out.append(scorer)
        used |= keys
    unused = sorted(set(options) - used)
    if unused:
        names = sorted({t.name.removeprefix("na:") for e in expressions for t in parse_expression(e)})
        raise ConfigError(f"option {unused[0]!r} is not taken by any of the scorers {', '.join(expressions)} "
                          f"(options: {_options_of(names)}); see docs/scorers.md for each scorer's options")  # fmt: skip
    return out


def _options_of(names: list[str]) -> str:
    return "; ".join(f"{n}: {', '.join(sorted(scorer_options(n))) or 'none'}" for n in names)


def create_scorer(expression: str, **options: Any) -> Scorer:
    """The front door: a scorer (or combination) from its expression and keyword options.

    Options go to every component whose constructor takes them; ``flatness.sigmas`` targets one
    component, ``na.k`` the neighbourhood wrapper, ``gamma`` the flatness weight in sums.

    Example:
        >>> from scorers import create_scorer
        >>> s = create_scorer("angle+flatness", sigmas=[2e-3, 1e-2, 2e-2], gamma=16)
        >>> [(w, p.name) for w, p in s.parts]
        [(1.0, 'angle'), (16.0, 'flatness')]
    """
    return _create(expression, {k: v for k, v in options.items() if v is not None}, strict=True)[0]


def _create(expression: str, options: dict[str, Any], strict: bool) -> tuple[Scorer, set[str]]:
    terms = parse_expression(expression)
    options = dict(options)
    owner = f"scorer {expression!r}"
    weighting = check_choice(options.pop("weighting", DEFAULT_WEIGHTING), "weighting", owner, WEIGHTINGS)
    calibration = options.pop("calibration", None)
    gamma = options.pop("gamma", None)
    explicit = weighting != "auto"
    if weighting == "auto":  # the expression's own scales win: a coefficient, or the paper's gamma
        weighting = "fixed" if gamma is not None or any(t.coef is not None for t in terms) else "rank"
    used: set[str] = set()
    if len(terms) == 1 and terms[0].coef is None and terms[0].sign == 1:
        scorer = _single(terms[0].name, options, used)
        if gamma is not None:
            check_float(gamma, "gamma", owner, 0.0)
        for key, given in (("weighting", explicit), ("calibration", calibration is not None)):
            if given and strict:
                raise ConfigError(f"option {key!r} weights the terms of a sum ('A+B'); {expression!r} is one scorer: "
                                  "give a sum such as 'angle+flatness', or drop the option")  # fmt: skip
            if given:
                options[key] = "unused"  # reported by create_scorers if no expression takes it
    else:
        if weighting == "fixed":
            if calibration is not None:
                why = "" if explicit else " (chosen because the expression gives its own coefficients or gamma)"
                raise ConfigError(f"option 'calibration' applies to weighting 'zscore' or 'rank', not 'fixed'{why} ({owner})")
            gamma = check_float(DEFAULT_GAMMA if gamma is None else gamma, "gamma", owner, 0.0)
        else:
            if gamma is not None:
                raise ConfigError(f"option 'gamma' is the flatness weight of weighting 'fixed' (GeNAS eq. 5); with weighting "
                                  f"{weighting!r} every term's scale is measured, so give a coefficient instead "
                                  "(e.g. 'angle+2*flatness')")  # fmt: skip
            calibration = check_int(DEFAULT_CALIBRATION if calibration is None else calibration, "calibration", owner,
                                    MIN_CALIBRATION, 100_000)  # fmt: skip
        parts = []
        for t in terms:
            s = _single(t.name, options, used)
            default = s.default_weight(float(gamma)) if weighting == "fixed" else 1.0
            parts.append((t.sign * (default if t.coef is None else t.coef), s))
        if not any(w != 0 for w, _ in parts):
            raise ConfigError(f"every term of scorer {expression!r} has weight 0; give at least one term a non-zero weight")
        scorer = WeightedSum(parts, expression.replace(" ", ""), weighting, calibration if weighting != "fixed" else None)
        used |= {"gamma", "weighting", "calibration"}
    unused = sorted(set(options) - used)
    if unused and strict:
        names = sorted({t.name.removeprefix("na:") for t in terms})
        raise ConfigError(f"option {unused[0]!r} is not taken by any part of scorer {expression!r} (options: {_options_of(names)}); "
                          "see docs/scorers.md for each scorer's options")  # fmt: skip
    return scorer, used
