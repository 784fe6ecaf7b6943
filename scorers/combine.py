"""Scorer expressions: weighted sums (GeNAS eq. 5) and the neighbourhood-aware wrapper.

Grammar: terms joined by ``+`` or ``-``, each ``[coef*]name`` where ``name`` is a registered
scorer or ``na:<name>``.  A single bare name is that scorer, unchanged.  In a sum every term
enters in its *normalised* form (angle: theta/pi, accuracy: a fraction, flatness: beta*F with
beta = 1/sigma_1) and lower-is-better scorers are negated; a flatness term without a
coefficient gets the GeNAS weight ``gamma`` (default 16, the reference run's), so
``angle+flatness`` = theta/pi + gamma * beta * F.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from genas.errors import ConfigError
from genas.validation import check_float
from scorers import builtins  # noqa: F401  (the built-in names, registered before any lookup)
from scorers.base import Needs, Scorer, cached_scores
from scorers.neighborhood import NeighborhoodAware
from scorers.registry import build_scorer, origin_of, scorer_options

if TYPE_CHECKING:
    from scorers.context import ScoringContext

__all__ = ["create_scorer", "create_scorers", "WeightedSum", "parse_expression", "DEFAULT_GAMMA"]

DEFAULT_GAMMA = 16.0
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


class WeightedSum(Scorer):
    """sum_i w_i * normalised score_i (lower-is-better components negated)."""

    higher_is_better = True

    def __init__(self, parts: Sequence[tuple[float, Scorer]], expression: str) -> None:
        self.parts = list(parts)
        self.expression = expression
        self.name = expression
        needs = Needs(supernet=False)
        for _, s in self.parts:
            needs = needs | s.needs
        self.needs = needs

    def score(self, archs: Sequence[Any], ctx: ScoringContext) -> np.ndarray:
        total = np.zeros(len(archs))
        for weight, scorer in self.parts:
            raw = cached_scores(scorer, archs, ctx, origin_of(scorer.name))
            value = scorer.normalized(raw)
            total += weight * (value if scorer.higher_is_better else -value)
        return total

    def options(self) -> dict[str, Any]:
        return {"expression": self.expression, "parts": [(w, s.name, s.options()) for w, s in self.parts]}


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
    gamma = check_float(options.pop("gamma", DEFAULT_GAMMA), "gamma", f"scorer {expression!r}", 0.0)
    used: set[str] = set()
    if len(terms) == 1 and terms[0].coef is None and terms[0].sign == 1:
        scorer = _single(terms[0].name, options, used)
    else:
        parts = []
        for t in terms:
            s = _single(t.name, options, used)
            default = s.default_weight(float(gamma))
            parts.append((t.sign * (default if t.coef is None else t.coef), s))
        scorer = WeightedSum(parts, expression.replace(" ", ""))
        used.add("gamma")
    unused = sorted(set(options) - used)
    if unused and strict:
        names = sorted({t.name.removeprefix("na:") for t in terms})
        raise ConfigError(f"option {unused[0]!r} is not taken by any part of scorer {expression!r} (options: {_options_of(names)}); "
                          "see docs/scorers.md for each scorer's options")  # fmt: skip
    return scorer, used
