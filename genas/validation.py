"""Parameter checks with one error template, run once at each public entry point.

Messages follow one shape, e.g.::

    The 'population_size' parameter of Evolution must be an int in the range [2, inf). Got 1 instead.

A public class declares its limits once, as a ``constraints`` table of the objects below
(:class:`Interval`, :class:`OneOf`, :class:`Boolean`, :class:`Increasing`, wrapped in
:class:`Nullable` where ``None`` is allowed), and :func:`check_params` applies it: the same
table serves the class's ``__init__`` and the config loader, which checks a section before any
data is read.  A bound may name another parameter (``Interval(int, 1, "population")``).

Example:
    >>> table = {"population": Interval(int, 2), "topk": Interval(int, 1, "population")}
    >>> check_params("evolution", table, {"population": 10, "topk": 3})
    {'population': 10, 'topk': 3}
    >>> check_params("evolution", table, {"population": 10, "topk": 11})
    Traceback (most recent call last):
    ...
    genas.errors.ConfigError: The 'topk' parameter of evolution must be an int in the range [1, 10]. Got 11 instead.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from genas.errors import ConfigError
from genas.registry import suggest

__all__ = [
    "check_int", "check_float", "check_choice", "check_bool", "check_increasing", "check_probability",
    "Interval", "OneOf", "Boolean", "Increasing", "Nullable", "Text", "check_params", "Configurable",
]  # fmt: skip


def _fmt_range(low: float | None, high: float | None, closed: str) -> str:
    lo = "-inf" if low is None else repr(low)
    hi = "inf" if high is None else repr(high)
    left = "[" if closed in ("both", "left") and low is not None else "("
    right = "]" if closed in ("both", "right") and high is not None else ")"
    return f"{left}{lo}, {hi}{right}"


def _in_range(value: float, low: float | None, high: float | None, closed: str) -> bool:
    if low is not None and (value < low or (value == low and closed not in ("both", "left"))):
        return False
    if high is not None and (value > high or (value == high and closed not in ("both", "right"))):
        return False
    return True


def check_int(
    value: Any, name: str, owner: str, low: int | None = None, high: int | None = None, closed: str = "both"
) -> int:
    """Return ``value`` if it is an int in the given range, else raise :class:`ConfigError`."""
    ok = isinstance(value, int) and not isinstance(value, bool) and _in_range(value, low, high, closed)
    if not ok:
        raise ConfigError(
            f"The {name!r} parameter of {owner} must be an int in the range "
            f"{_fmt_range(low, high, closed)}. Got {value!r} instead."
        )
    return value


def check_float(
    value: Any, name: str, owner: str, low: float | None = None, high: float | None = None, closed: str = "both"
) -> float:
    """Return ``float(value)`` if it is a finite real in the given range, else raise :class:`ConfigError`."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not _in_range(float(value), low, high, closed):
        raise ConfigError(
            f"The {name!r} parameter of {owner} must be a float in the range "
            f"{_fmt_range(low, high, closed)}. Got {value!r} instead."
        )
    return float(value)


def check_probability(value: Any, name: str, owner: str) -> float:
    """A float in [0, 1]."""
    return check_float(value, name, owner, 0.0, 1.0)


def check_bool(value: Any, name: str, owner: str) -> bool:
    """Return ``value`` if it is a bool, else raise :class:`ConfigError`."""
    if not isinstance(value, bool):
        raise ConfigError(f"The {name!r} parameter of {owner} must be a bool (true or false). Got {value!r} instead.")
    return value


def check_choice(value: Any, name: str, owner: str, options: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``options``, else raise with the sorted options."""
    opts = list(options)
    if value not in opts:
        hint = suggest(str(value), [str(o) for o in opts]) if isinstance(value, str) else ""
        listed = ", ".join(repr(o) for o in sorted(opts, key=str))
        raise ConfigError(f"The {name!r} parameter of {owner} must be one of {{{listed}}}. Got {value!r} instead.{hint}")
    return value


def check_increasing(values: Sequence[Any], name: str, owner: str, positive: bool = True) -> list[float]:
    """Return ``values`` as floats if they form a non-empty strictly increasing (positive) sequence."""
    try:
        floats = [float(v) for v in values]
    except (TypeError, ValueError):
        floats = []
    ok = bool(floats) and all(math.isfinite(v) for v in floats)
    ok = ok and all(b > a for a, b in zip(floats, floats[1:]))
    ok = ok and (not positive or floats[0] > 0)
    if not ok:
        what = "positive " if positive else ""
        raise ConfigError(
            f"The {name!r} parameter of {owner} must be a non-empty, strictly increasing list of {what}floats. "
            f"Got {list(values) if not isinstance(values, str) else values!r} instead."
        )
    return floats


# ---- declarative constraints ------------------------------------------------------------------
Bound = float | int | str | None


def _bound(bound: Bound, values: Mapping[str, Any]) -> Any:
    return values.get(bound) if isinstance(bound, str) else bound


@dataclass(frozen=True)
class Interval:
    """An int or a finite float in ``[low, high]`` (``closed``: both, left, right, neither); a bound may name a parameter."""

    type: type
    low: Bound = None
    high: Bound = None
    closed: str = "both"

    def check(self, value: Any, name: str, owner: str, values: Mapping[str, Any]) -> Any:
        low, high = _bound(self.low, values), _bound(self.high, values)
        if self.type is int:
            return check_int(value, name, owner, low, high, self.closed)
        return check_float(value, name, owner, low, high, self.closed)


@dataclass(frozen=True)
class OneOf:
    """One of a fixed set of values."""

    options: tuple[Any, ...]

    def check(self, value: Any, name: str, owner: str, values: Mapping[str, Any]) -> Any:
        return check_choice(value, name, owner, self.options)


@dataclass(frozen=True)
class Boolean:
    """``True`` or ``False`` (not 0/1, not "maybe")."""

    def check(self, value: Any, name: str, owner: str, values: Mapping[str, Any]) -> bool:
        return check_bool(value, name, owner)


@dataclass(frozen=True)
class Increasing:
    """A non-empty strictly increasing list of (positive) floats, returned as a tuple."""

    positive: bool = True

    def check(self, value: Any, name: str, owner: str, values: Mapping[str, Any]) -> tuple[float, ...]:
        return tuple(check_increasing(value, name, owner, self.positive))


@dataclass(frozen=True)
class Text:
    """A string of at most ``max_len`` characters (``non_empty``: at least one non-blank)."""

    max_len: int | None = None
    non_empty: bool = True

    def check(self, value: Any, name: str, owner: str, values: Mapping[str, Any]) -> str:
        ok = isinstance(value, str) and (not self.non_empty or value.strip() != "")
        if ok and self.max_len is not None and len(value) > self.max_len:
            raise ConfigError(f"The {name!r} parameter of {owner} must be at most {self.max_len} characters. "
                              f"Got {len(value)} characters ({value[:40]!r}...) instead.")  # fmt: skip
        if not ok:
            what = "a non-empty string" if self.non_empty else "a string"
            raise ConfigError(f"The {name!r} parameter of {owner} must be {what}. Got {value!r} instead.")
        return value


@dataclass(frozen=True)
class Nullable:
    """``None``, or a value the inner constraint accepts."""

    inner: Any

    def check(self, value: Any, name: str, owner: str, values: Mapping[str, Any]) -> Any:
        return None if value is None else self.inner.check(value, name, owner, values)


def check_params(owner: str, constraints: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """Check every value that has a constraint (in table order); return the checked values.

    Args:
        owner: What the parameters belong to, for messages (``"train"``, ``"evolution"``).
        constraints: name -> constraint object (``check(value, name, owner, values)``).
        values: The values to check; a name without a constraint is passed through.
    """
    out = dict(values)
    for name, constraint in constraints.items():
        if name in out:
            out[name] = constraint.check(out[name], name, owner, out)
    return out


class Configurable:
    """A plugin class whose ``__init__`` keywords are its options, limited by its own ``constraints`` table.

    The one shape config sections read (:class:`genas.config.PluginSection`): ``option_defaults``
    lists what a config may set, ``check_options`` checks it.  ``not_options`` names the ``__init__``
    arguments a stage passes itself (the search space, the data's image channels, the device).
    """

    constraints: ClassVar[dict[str, Any]] = {}
    not_options: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def option_defaults(cls) -> dict[str, Any]:
        """Every option ``__init__`` takes, with its default."""
        params = inspect.signature(cls.__init__).parameters
        kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        return {k: p.default for k, p in params.items() if k != "self" and k not in cls.not_options and p.kind in kinds}

    @classmethod
    def option_types(cls) -> dict[str, Any]:
        """The options' annotated types (what a config value is coerced to)."""
        import typing

        return typing.get_type_hints(cls.__init__)

    @classmethod
    def check_options(cls, values: dict[str, Any], owner: str | None = None) -> dict[str, Any]:
        """Check options against :attr:`constraints` (and :meth:`_check_more`); return them checked."""
        owner = owner or cls.__name__
        checked = check_params(owner, cls.constraints, values)
        cls._check_more(checked, owner)
        return checked

    @classmethod
    def _check_more(cls, values: dict[str, Any], owner: str) -> None:
        """Rules across options that a constraints table cannot state (default: none)."""
