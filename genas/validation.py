"""Parameter checks with one error template, run once at each public entry point.

Messages follow one shape, e.g.::

    The 'population_size' parameter of Evolution must be an int in the range [2, inf). Got 1 instead.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from genas.errors import ConfigError
from genas.registry import suggest

__all__ = ["check_int", "check_float", "check_choice", "check_bool", "check_increasing", "check_probability"]


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
