"""The ``search`` config section: which search algorithm, its own options, and the resource budget.

The shape every pluggable kind has in the config (:class:`genas.sections.PluginSection`): a name
and an options mapping.  The keys of the section are ``algorithm``, ``options`` (the algorithm's own
options, named as its ``__init__`` names them and limited by its ``constraints`` table:
``--search.options.cycles 500`` for ``rea``, ``--search.options.topk 10`` for ``evolution``),
``max_params`` and ``max_flops``.  Changing the algorithm in a later layer (``--search.algorithm rea``
over a YAML file written for ``evolution``) drops the earlier layer's options that the new algorithm
does not take; an option given in the same layer as the algorithm that it does not take is an error
naming the options it does take.  The old spelling without ``options.`` (``--search.cycles 500``)
still works for one release, with a one-line deprecation warning.  Reading ``cfg.search.cycles``
stays the way to get an option's value.

Example:
    >>> from genas.config import load_config
    >>> cfg = load_config("quickstart", ["--search.algorithm", "rea", "--search.options.cycles", "500"])
    >>> cfg.search.algorithm, cfg.search.population, cfg.search.cycles
    ('rea', 30, 500)
"""

from __future__ import annotations

from typing import Any, ClassVar

from genas.config import config_section
from genas.sections import PluginSection
from genas.validation import Interval, Nullable

__all__ = ["SearchConfig"]

_BUDGET = Nullable(Interval(float, 0.0, None, "neither"))


@config_section("search")
class SearchConfig(PluginSection):
    """Architecture search over the trained supernet (SPEC section 4 defaults).

    Args:
        algorithm: A registered search algorithm (``evolution``, ``rea``, ``random``, plugins).
        max_params: Budget in millions of parameters (None: no limit).
        max_flops: Budget in MFLOPs (None: no limit).
        options: The algorithm's own options (checked against its ``constraints``).
        **old: The options by their old spelling, as keywords (deprecated: one warning line each).
    """

    choice: ClassVar[str] = "algorithm"
    default: ClassVar[str] = "evolution"
    kind: ClassVar[str] = "search algorithm"
    common: ClassVar[dict[str, tuple[Any, Any, Any]]] = {
        "max_params": (None, float | None, _BUDGET), "max_flops": (None, float | None, _BUDGET)}
    example: ClassVar[str] = "{population: 50}"

    @classmethod
    def plugin(cls, name: str) -> Any:
        from evolution.base import ALGORITHMS

        return ALGORITHMS.get(name)

