"""The ``score`` config section: the scorer expression, its options and the shared evaluation budget.

Checked at load, before any checkpoint or data is read: plugins are imported, the expression is
parsed, every name looked up (with a suggestion for a near miss) and every option given to the
scorers that take it, with their own checks (``--score.options.gamma abc`` is one line, not a
traceback).

Example:
    >>> from genas.config import load_config
    >>> load_config(None, ["--score.scorer", "angle+flatness", "--score.options.gamma", "8"]).score.options
    {'gamma': 8}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from genas.config import Section, config_section
from genas.validation import Interval, Nullable, Text

__all__ = ["ScoreConfig", "MAX_EXPRESSION"]

MAX_EXPRESSION = 500  # characters of a scorer expression


@config_section("score")
@dataclass
class ScoreConfig(Section):
    """How subnets are scored: the scorer expression, its options and the shared evaluation budget."""

    scorer: str = "accuracy"
    options: dict[str, Any] = field(default_factory=dict)  # forwarded to the scorer(s) by keyword
    plugins: list[str] = field(default_factory=list)  # files or modules that register scorers
    checkpoint: str = "last"  # which supernet checkpoint to score with
    bn_batches: int = 14  # BN recalibration batches (GeNAS 14 x 64; SPOS 200 x 128)
    bn_batch_size: int = 64
    bn_momentum: float | None = None  # None = cumulative average after a reset; the GeNAS code: reset + 0.1
    eval_batches: int | None = None  # validation batches per candidate; None = the whole split
    eval_batch_size: int = 256

    constraints: ClassVar[dict[str, Any]] = {
        "scorer": Text(MAX_EXPRESSION), "checkpoint": Text(), "bn_batches": Interval(int, 0, 100_000),
        "bn_batch_size": Interval(int, 1, 1_000_000), "bn_momentum": Nullable(Interval(float, 0.0, 1.0, "right")),
        "eval_batches": Nullable(Interval(int, 1)), "eval_batch_size": Interval(int, 1, 1_000_000),
    }  # fmt: skip

    def check(self) -> None:
        self.build()  # names, options and their values, before any work

    def build(self) -> list[Any]:
        """The scorers of ``scorer`` (comma-separated expressions) with ``options``, built once per value.

        The check at load builds them; a stage asking again gets the same objects, unless a field
        changed since, which builds them anew.
        """
        from scorers.registry import create_scorers
        from scorers.registry import load_plugin

        key = repr((self.scorer, sorted(self.options.items(), key=str), list(self.plugins)))
        built = self.__dict__.get("_built")
        if built is None or built[0] != key:
            for plugin in self.plugins:
                load_plugin(plugin)
            exprs = [e.strip() for e in self.scorer.split(",") if e.strip()]
            built = (key, create_scorers(exprs, **self.options))
            self.__dict__["_built"] = built
        return built[1]
