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

import hashlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:  # the context pulls in torch and the supernet; scorer modules only name it
    from scorers.context import ScoringContext

__all__ = ["Needs", "Scorer", "finalize_scores", "cached_scores", "noise_seed"]


def noise_seed(*parts: object) -> int:
    """A stable 63-bit seed from ``parts`` (independent of Python's hash randomisation)."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


@dataclass(frozen=True)
class Needs:
    """What a scorer needs from the engine.

    Attributes:
        supernet: Trained supernet weights (``ctx.supernet``).
        init_weights: The step-0 weights (``ctx.init_state``; the ``init`` checkpoint).
        data: Labelled held-out batches (``ctx.valid_batches``) and BN recalibration batches.
        batches: How many validation batches it reads per candidate (None: all that ``ctx`` holds).
        fresh_network: A freshly initialised network of each architecture and labelled training
            images (``ctx.fresh``, see ``ScoringContext.for_data``): the zero-cost proxies.
    """

    supernet: bool = True
    init_weights: bool = False
    data: bool = False
    batches: int | None = None
    fresh_network: bool = False

    def __or__(self, other: Needs) -> Needs:
        merged = {}
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            merged[f.name] = (a or b) if isinstance(a, bool) else (None if a is None or b is None else max(a, b))
        return Needs(**merged)

    def describe(self) -> str:
        parts = [name for name, on in (("supernet", self.supernet), ("init weights", self.init_weights),
                                       ("labelled data", self.data), ("fresh network", self.fresh_network)) if on]  # fmt: skip
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

    def default_weight(self, gamma: float) -> float:
        """This scorer's weight in a sum when the expression gives none (GeNAS eq. 5 gives flatness gamma)."""
        return 1.0

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


def finalize_scores(scorer: Scorer, archs: Sequence[Any], values: Any, origin: str = "",
                    tally: dict[str, int] | None = None) -> np.ndarray:  # fmt: skip
    """Check a scorer's output shape and replace NaN/inf by the worst value (with a warning).

    ``tally`` (a session's ``ctx.replaced``) counts the replaced scores per scorer; the warning
    gives this call's count and the session's total, so every replacement is counted.
    """
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
        n = int(bad.sum())
        total = ""
        if tally is not None:
            tally[scorer.name] = tally.get(scorer.name, 0) + n
            total = f"; {tally[scorer.name]} so far in this session"
        warnings.warn(
            f"scorer {scorer.name!r}: {n} non-finite score(s) replaced by the worst value ({scorer.worst}){total}",
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
        values = finalize_scores(scorer, todo, scorer.score(todo, ctx), origin, getattr(ctx, "replaced", None))
        ctx.score_cache.update({(key, a): v for a, v in zip(todo, values.tolist())})
    return np.array([ctx.score_cache[(key, a)] for a in archs], dtype=np.float64)
