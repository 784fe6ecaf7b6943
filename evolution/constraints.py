"""Resource constraints for search: parameter and FLOP budgets, and the counters behind them.

The search side only needs a predicate ``constraint(arch) -> bool``.  :class:`Constraint` builds
one from ``search.max_params`` (millions) and ``search.max_flops`` (MFLOPs) and a ``cost(arch) ->
(params_M, flops_M)`` function the caller supplies (the supernet side knows how to build a subnet
and count it, e.g. with :func:`genas.counting.count_params` and :func:`~genas.counting.count_flops`).

Example:
    >>> c = Constraint(lambda arch: (1.2, 250.0), max_params=1.0)
    >>> c("any"), c.describe()
    (False, 'params <= 1 M (search.max_params)')
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from genas.counting import count_flops, count_params
from genas.errors import ConfigError
from genas.validation import check_float

__all__ = ["Constraint", "count_params", "count_flops"]  # the counters live in genas.counting


def _budget(value: float | None, name: str) -> float | None:
    return None if value is None else check_float(value, name, "Constraint", 0.0, None, "neither")


class Constraint:
    """``constraint(arch)`` is True when the architecture fits the parameter and FLOP budgets.

    Args:
        cost: ``cost(arch) -> (params_M, flops_M)``, in millions of parameters and MFLOPs.
        max_params: Budget in millions of parameters, or None for no limit.
        max_flops: Budget in MFLOPs, or None for no limit.
    """

    def __init__(
        self,
        cost: Callable[[Any], tuple[float, float]],
        max_params: float | None = None,
        max_flops: float | None = None,
    ) -> None:
        if not callable(cost):
            raise ConfigError(f"The 'cost' parameter of Constraint must be a callable. Got {cost!r} instead.")
        if max_params is None and max_flops is None:
            raise ConfigError("a Constraint needs max_params or max_flops (or both); use no constraint instead")
        self.cost = cost
        self.max_params = _budget(max_params, "max_params")
        self.max_flops = _budget(max_flops, "max_flops")

    @classmethod
    def from_config(cls, cfg: Any, cost: Callable[[Any], tuple[float, float]]) -> Constraint | None:
        """From a :class:`evolution.config.SearchConfig` (``max_params``, ``max_flops``); None when neither is set."""
        if cfg.max_params is None and cfg.max_flops is None:
            return None
        return cls(cost, cfg.max_params, cfg.max_flops)

    def __call__(self, arch: Any) -> bool:
        params, flops = self.cost(arch)
        if self.max_params is not None and params > self.max_params:
            return False
        return self.max_flops is None or flops <= self.max_flops

    def describe(self) -> str:
        """``'params <= 3.5 M (search.max_params) and FLOPs <= 600 MFLOPs (search.max_flops)'``."""
        parts = []
        if self.max_params is not None:
            parts.append(f"params <= {self.max_params:g} M (search.max_params)")
        if self.max_flops is not None:
            parts.append(f"FLOPs <= {self.max_flops:g} MFLOPs (search.max_flops)")
        return " and ".join(parts)

    def __repr__(self) -> str:
        return f"Constraint({self.describe()})"
