"""The scorer protocol and the context scorers evaluate in.

A scorer ranks architectures of a trained supernet.  It declares whether higher is
better and what it needs (:class:`Needs`), and scores a *batch* of architectures at a
time, so the engine (and the scorer) can share work across candidates.  Scorers never
build data or load checkpoints themselves: they receive a :class:`ScoringContext`.

Writing one (see ``docs/writing_a_scorer.md``)::

    from scorers import Needs, Scorer, register_scorer

    @register_scorer("width", description="mean channel count of the active ops")
    class Width(Scorer):
        higher_is_better = True
        needs = Needs(supernet=True)

        def score(self, archs, ctx):
            return np.array([...])
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np

__all__ = ["Needs", "Scorer", "ScoringContext", "finalize_scores", "cached_scores"]


@dataclass(frozen=True)
class Needs:
    """What a scorer needs from the engine.

    Attributes:
        supernet: Trained supernet weights (``ctx.supernet``).
        init_weights: The step-0 weights (``ctx.init_state``; the ``init`` checkpoint).
        data: Labelled held-out batches (``ctx.valid_batches``) and BN recalibration batches.
        batches: How many validation batches it reads per candidate (None: all that ``ctx`` holds).
    """

    supernet: bool = True
    init_weights: bool = False
    data: bool = False
    batches: int | None = None

    def __or__(self, other: Needs) -> Needs:
        merged = {}
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            merged[f.name] = (a or b) if isinstance(a, bool) else (None if a is None or b is None else max(a, b))
        return Needs(**merged)

    def describe(self) -> str:
        parts = [name for name, on in (("supernet", self.supernet), ("init weights", self.init_weights),
                                       ("labelled data", self.data)) if on]  # fmt: skip
        return ", ".join(parts) or "nothing"


class Scorer:
    """Base class of every scorer.

    Subclasses set ``higher_is_better`` and ``needs`` and implement :meth:`score` (or
    :meth:`score_one`).  Their ``__init__`` takes explicit keyword options (no ``**kwargs``),
    so a misspelt option raises instead of vanishing.
    """

    name: ClassVar[str] = ""
    higher_is_better: ClassVar[bool] = True
    needs: ClassVar[Needs] = Needs()

    def score(self, archs: Sequence[Any], ctx: ScoringContext) -> np.ndarray:
        """One float per architecture (default: ``self.score_one(arch, ctx)`` for each).

        A subclass overrides this or defines ``score_one``; ``register_scorer`` checks that it does.
        """
        return np.array([self.score_one(a, ctx) for a in archs], dtype=np.float64)  # type: ignore[attr-defined]

    def normalized(self, values: np.ndarray) -> np.ndarray:
        """The value used in weighted sums (angle: theta/pi, flatness: beta*F); default: unchanged."""
        return values

    @property
    def worst(self) -> float:
        """The value NaN/inf scores are replaced by: -inf when higher is better, +inf otherwise."""
        return -np.inf if self.higher_is_better else np.inf

    def options(self) -> dict[str, Any]:
        """The scorer's options as set (for records such as ``best_arch.json``)."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options().items())
        return f"{type(self).__name__}({opts})"


def finalize_scores(scorer: Scorer, archs: Sequence[Any], values: Any, origin: str = "") -> np.ndarray:
    """Check a scorer's output shape and replace NaN/inf by the worst value (with a warning)."""
    from genas.errors import PluginError

    where = f" (from {origin})" if origin else ""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise PluginError(f"scorer {scorer.name!r}{where} returned {type(values).__name__}, not numbers") from exc
    if arr.shape != (len(archs),):
        raise PluginError(
            f"scorer {scorer.name!r}{where} returned shape {arr.shape} for {len(archs)} architectures; "
            f"expected ({len(archs)},), one score per architecture"
        )
    bad = ~np.isfinite(arr)
    if bad.any():
        warnings.warn(
            f"scorer {scorer.name!r}: {int(bad.sum())} non-finite score(s) replaced by the worst value ({scorer.worst})",
            RuntimeWarning,
            stacklevel=2,
        )
        arr = np.where(bad, scorer.worst, arr)
    return arr


def cached_scores(scorer: Scorer, archs: Sequence[Any], ctx: ScoringContext, origin: str = "") -> np.ndarray:
    """``scorer``'s finalised scores of ``archs``, computing only those not yet cached in ``ctx``.

    Scores are deterministic for a fixed context, so a score computed once (for ``accuracy``
    alone, or as a part of ``accuracy+flatness``) is reused for the rest of the session.
    """
    key = repr(scorer)
    archs = [ctx.space.parse(a) for a in archs]
    todo = list(dict.fromkeys(a for a in archs if (key, a) not in ctx.score_cache))
    if todo:
        values = finalize_scores(scorer, todo, scorer.score(todo, ctx), origin)
        ctx.score_cache.update({(key, a): v for a, v in zip(todo, values.tolist())})
    return np.array([ctx.score_cache[(key, a)] for a in archs], dtype=np.float64)


# the context lives in its own module (it pulls in torch and the supernet); re-exported here
from scorers.context import ScoringContext  # noqa: E402
