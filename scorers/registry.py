"""The scorer registry, plugin loading and the front door :func:`create_scorer`.

Names resolve in this order: the built-ins, modules loaded with ``--plugin`` (a file or
an importable module), and packages advertising an entry point in the ``genas.scorers``
group.  ``create_scorer`` also reads expressions: ``angle+flatness`` (GeNAS eq. 5),
``angle+0.5*flatness`` (any weighted sum, :class:`scorers.combine.WeightedSum`) and
``na:accuracy`` (neighbourhood-aware, :class:`scorers.neighborhood.NeighborhoodAware`).

Grammar: terms joined by ``+`` or ``-``, each ``[coef*]name`` where ``name`` is a registered
scorer or ``na:<name>``.  A single bare name is that scorer, unchanged.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genas.errors import ConfigError, PluginError
from genas.plugins import import_plugin, is_file_spec
from genas.registry import Registry
from genas.validation import check_choice, check_float, check_int
from scorers.base import Needs, Scorer
from scorers.combine import (
    DEFAULT_CALIBRATION,
    DEFAULT_GAMMA,
    DEFAULT_WEIGHTING,
    MIN_CALIBRATION,
    WEIGHTINGS,
    WeightedSum,
)
from scorers.neighborhood import NeighborhoodAware

__all__ = ["SCORERS", "register_scorer", "load_plugin", "build_scorer", "scorer_options", "origin_of",
           "create_scorer", "create_scorers", "parse_expression"]

_NUM = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_TERM = re.compile(rf"\s*(?P<op>[+-])?\s*(?:(?P<coef>{_NUM})\s*\*\s*)?(?P<name>[A-Za-z_][\w.]*(?::[A-Za-z_][\w.]*)?)\s*")
SCORERS: Registry[type[Scorer]] = Registry("scorer", entry_point_group="genas.scorers", builtins=tuple(
    f"scorers.{m}" for m in ("accuracy", "activation", "angle", "flatness", "oracle", "saliency", "zero_cost")))
_ORIGINS: dict[str, str] = {}


def register_scorer(
    name: str,
    *,
    description: str | None = None,
    higher_is_better: bool = True,
    needs: Needs | None = None,
    overwrite: bool = False,
) -> Callable[[Any], Any]:
    """Register a :class:`Scorer` subclass, or a plain function ``fn(arch, ctx) -> float``.

    Example:
        >>> from scorers import register_scorer
        >>> @register_scorer("num_convs", needs=Needs(supernet=False), overwrite=True)
        ... def num_convs(arch, ctx):
        ...     "Number of conv edges in the cell."
        ...     return sum("conv" in op for op in arch.ops)
    """

    def deco(obj: Any) -> Any:
        cls = obj
        if not (inspect.isclass(obj) and issubclass(obj, Scorer)):
            if not callable(obj):
                raise PluginError(f"register_scorer({name!r}) needs a Scorer subclass or a function, got {obj!r}")
            cls = _function_scorer(name, obj, higher_is_better, needs or Needs(supernet=False))
        if cls.score is Scorer.score and not callable(getattr(cls, "score_one", None)):
            raise PluginError(f"scorer {name!r} ({obj.__module__}.{obj.__qualname__}) must define score() or score_one()")
        cls.name = name
        if needs is not None and cls is obj:
            cls.needs = needs
        SCORERS.register(name, description=description, overwrite=overwrite)(cls)
        _ORIGINS[name] = getattr(obj, "__module__", "") or ""
        return obj

    return deco


def _function_scorer(name: str, fn: Callable[[Any, Any], float], higher: bool, needs: Needs) -> type[Scorer]:
    class FunctionScorer(Scorer):
        __doc__ = fn.__doc__
        higher_is_better = higher

        def score_one(self, arch: Any, ctx: Any) -> float:
            return float(fn(arch, ctx))

    FunctionScorer.needs = needs
    FunctionScorer.__name__ = FunctionScorer.__qualname__ = f"FunctionScorer[{name}]"
    return FunctionScorer


def origin_of(name: str) -> str:
    """The module (or plugin file) a scorer was registered from."""
    return _ORIGINS.get(name, "")


def load_plugin(spec: str) -> list[str]:
    """Import a plugin (a ``.py`` file or a dotted module) and return the scorer names it registered."""
    before = set(SCORERS.list())
    import_plugin(spec)
    added = sorted(set(SCORERS.list()) - before)
    origin = str(Path(spec)) if is_file_spec(spec) else spec
    for name in added:
        _ORIGINS[name] = f"plugin {origin}"
    return added


def build_scorer(name: str, options: dict[str, Any]) -> tuple[Scorer, set[str]]:
    """Instantiate scorer ``name`` with the options its ``__init__`` accepts; return it and the keys used."""
    cls = SCORERS.get(name)
    accepted = scorer_options(name)
    prefix = name + "."
    kwargs = {k: v for k, v in options.items() if k in accepted}
    kwargs.update({k[len(prefix):]: v for k, v in options.items() if k.startswith(prefix) and k[len(prefix):] in accepted})
    used = {k for k in options if k in accepted} | {k for k in options if k.startswith(prefix) and k[len(prefix):] in accepted}
    bad = [k for k in options if k.startswith(prefix) and k[len(prefix):] not in accepted]
    if bad:
        raise ConfigError(f"scorer {name!r} has no option {bad[0][len(prefix):]!r}; its options: {', '.join(sorted(accepted)) or 'none'}")
    try:
        scorer = cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"scorer {name!r}: {exc}") from exc
    return scorer, used


def scorer_options(name: str) -> set[str]:
    """The keyword options scorer ``name``'s constructor takes."""
    params = inspect.signature(SCORERS.get(name).__init__).parameters
    return {k for k, p in params.items() if k != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


def as_array(values: Sequence[float] | np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


# ---- expressions: sums and the neighbourhood wrapper ---------------------------------------------
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
