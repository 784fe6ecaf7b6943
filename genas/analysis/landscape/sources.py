"""Accuracy sources: where the landscape tools get the accuracy of an architecture.

A source is any callable that maps a sequence of architectures to a 1-D float array of the
same length (percent by convention), so a table lookup, a hand-written function, a full
training run (:class:`~genas.analysis.landscape.training.TrainToThresholdSource`) or a supernet
scorer all plug in the same way::

    class MyScorerSource:
        def __call__(self, archs):
            return np.array([score(a) for a in archs])

Every landscape function evaluates all the architectures it needs in one call, so a source
may batch (a scorer on a GPU) or cache (:class:`CallableSource`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from genas.tables.nb201 import NB201Table
from genas.errors import ConfigError

__all__ = ["AccuracySource", "TableSource", "CallableSource", "ScorerSource", "evaluate"]


@runtime_checkable
class AccuracySource(Protocol):
    """Anything with ``__call__(archs) -> np.ndarray`` (one float per architecture)."""

    def __call__(self, archs: Sequence[Any]) -> np.ndarray: ...


def evaluate(source: AccuracySource, archs: Sequence[Any]) -> np.ndarray:
    """Call ``source`` on ``archs`` and check it returned one finite float per architecture."""
    archs = list(archs)
    if not callable(source):
        raise ConfigError(
            f"an accuracy source must be callable as source(archs) -> np.ndarray, got {type(source).__name__}"
        )
    if not archs:
        return np.empty(0)
    values = np.asarray(source(archs), dtype=np.float64)
    if values.shape != (len(archs),):
        raise ConfigError(
            f"accuracy source {type(source).__name__} returned shape {values.shape} for {len(archs)} "
            f"architectures; expected ({len(archs)},)"
        )
    if not np.all(np.isfinite(values)):
        bad = int(np.flatnonzero(~np.isfinite(values))[0])
        raise ConfigError(f"accuracy source {type(source).__name__} returned {values[bad]} for {archs[bad]}")
    return values


class TableSource:
    """Accuracies looked up in a :class:`~genas.tables.NB201Table`.

    Args:
        table: The benchmark table.
        dataset: Dataset name or alias (``cifar10``, ``c100``, ``ImageNet16-120``, ...).
        metric: ``test`` or ``valid`` (default ``test``).
        epochs: Training schedule, 200 or 12.
    """

    def __init__(
        self, table: NB201Table, dataset: str = "cifar10", metric: str | None = None, epochs: int = 200
    ) -> None:
        self.table = table
        self.dataset, self.metric, self.epochs = dataset, metric, epochs
        self.values = table.column(dataset, metric, epochs)  # validates the names once, here

    def __call__(self, archs: Sequence[Any]) -> np.ndarray:
        return np.asarray(self.table.accuracy(list(archs), self.dataset, self.metric, self.epochs), dtype=np.float64)

    def __repr__(self) -> str:
        return f"TableSource(dataset={self.dataset!r}, metric={self.metric!r}, epochs={self.epochs})"


class CallableSource:
    """Wrap a per-architecture function ``fn(arch) -> float`` as a source.

    Args:
        fn: Returns the accuracy of one architecture.
        cache: Remember values by architecture (architectures are hashable), so paths and
            overlapping neighbourhoods never evaluate an architecture twice.
    """

    def __init__(self, fn: Callable[[Any], float], cache: bool = True) -> None:
        if not callable(fn):
            raise ConfigError(f"CallableSource needs a function fn(arch) -> float, got {type(fn).__name__}")
        self.fn = fn
        self.cache: dict[Any, float] | None = {} if cache else None

    def __call__(self, archs: Sequence[Any]) -> np.ndarray:
        out = np.empty(len(archs))
        for i, arch in enumerate(archs):
            if self.cache is None:
                out[i] = float(self.fn(arch))
                continue
            if arch not in self.cache:
                self.cache[arch] = float(self.fn(arch))
            out[i] = self.cache[arch]
        return out

    def __repr__(self) -> str:
        return f"CallableSource({getattr(self.fn, '__name__', self.fn)!r})"


class ScorerSource:
    """Any registered scorer on a trained supernet, as a source (values in the scorer's own units).

    Args:
        scorer: A scorer from :func:`scorers.create_scorer` (``accuracy``, ``angle+flatness``, a plugin...).
        ctx: The :class:`scorers.ScoringContext` it evaluates in.

    Example:
        >>> src = ScorerSource.from_config(cfg.score, "runs/nb201-digits")  # doctest: +SKIP
        >>> accuracy_path(path_tree(a, b), src).barrier()                    # doctest: +SKIP
    """

    def __init__(self, scorer: Any, ctx: Any) -> None:
        self.scorer, self.ctx = scorer, ctx

    @classmethod
    def from_config(cls, score: Any, run_path: str | None, device: Any = "cpu", seed: int = 0) -> ScorerSource:
        """The scorer of a ``score`` config section (expression, options, budget) on training run ``run_path``."""
        from scorers import ScoringContext, create_scorer

        scorer = create_scorer(score.scorer, **score.options)
        return cls(scorer, ScoringContext.from_config(score, run_path, device=device, seed=seed, scorers=[scorer]))

    def __call__(self, archs: Sequence[Any]) -> np.ndarray:
        return self.ctx.score(self.scorer, archs)

    def __repr__(self) -> str:
        return f"ScorerSource({self.scorer.name!r})"
