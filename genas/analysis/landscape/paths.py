"""Shortest-path trees, accuracy paths and barriers between two architectures (A2M 4.1.2, eq. 9).

The path tree from ``a`` to ``b`` holds every shortest sequence of single moves that turns
``a`` into ``b``; a move is allowed only if it lowers ``space.distance(., b)`` by one (NB201:
set one differing edge to ``b``'s op; DARTS: give a shared input ``b``'s op, or swap an input
``b`` lacks for one it has, with ``b``'s op).  Level ``k`` holds the *unique* architectures
``k`` moves from ``a``; for NB201 archs differing in ``d`` edges level ``k`` has ``C(d, k)``.

The accuracy path is ``acc(a)``, the mean accuracy of each level ``1..d-1``, ``acc(b)``; the
barrier compares the endpoint mean with the lowest point of that path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from genas.errors import ConfigError
from genas.analysis.landscape.neighborhood import resolve_space, single_moves
from genas.analysis.landscape.sources import AccuracySource, evaluate
from genas.spaces import SearchSpace
from genas.validation import check_choice

__all__ = ["PathTree", "path_tree", "AccuracyPath", "accuracy_path", "Barrier", "barrier", "BARRIER_FORMS"]

BARRIER_FORMS = ("paper", "path", "reference")


@dataclass(frozen=True)
class PathTree:
    """Unique architectures per level of the shortest-path tree: ``levels[0] == (a,)``, ``levels[-1] == (b,)``."""

    a: Any
    b: Any
    levels: tuple[tuple[Any, ...], ...]

    @property
    def distance(self) -> int:
        return len(self.levels) - 1

    @property
    def level_sizes(self) -> list[int]:
        return [len(level) for level in self.levels]


def path_tree(a: Any, b: Any, space: SearchSpace | str | None = None) -> PathTree:
    """The shortest-path tree from ``a`` to ``b`` (both of the same space).

    Args:
        a: Source architecture.
        b: Target architecture.
        space: The search space (default: the architectures' own).
    """
    space, (a, b) = resolve_space(space, a, b)
    d = space.distance(a, b)
    levels: list[tuple[Any, ...]] = [(a,)]
    for step in range(d):
        target = d - step - 1
        nxt: dict[Any, None] = {}
        for node in levels[-1]:
            for m in single_moves(space, node):
                if m not in nxt and space.distance(m, b) == target:
                    nxt[m] = None
        if not nxt:  # a distance whose moves cannot realise it would be a bug in the space
            raise ConfigError(f"no move from {levels[-1][0]} brings it closer to {b} in the {space.name} space")
        levels.append(tuple(nxt))
    return PathTree(a, b, tuple(levels))


@dataclass(frozen=True)
class Barrier:
    """Barrier of an accuracy path: ``raw = reference - minimum``, ``normalized = raw / reference``."""

    raw: float
    normalized: float
    minimum: float
    reference: float
    form: str


@dataclass(frozen=True)
class AccuracyPath:
    """Accuracies along a path tree.

    ``values[k]`` is ``acc(a)`` for ``k = 0``, ``acc(b)`` for ``k = d`` and the mean over the
    unique architectures of level ``k`` in between; ``level_accuracies[k]`` holds the raw values.
    """

    tree: PathTree
    level_accuracies: tuple[np.ndarray, ...]

    @property
    def values(self) -> np.ndarray:
        return np.array([float(np.mean(v)) for v in self.level_accuracies])

    @property
    def stds(self) -> np.ndarray:
        return np.array([float(np.std(v)) for v in self.level_accuracies])

    def barrier(self, form: str = "paper") -> Barrier:
        """See :func:`barrier`."""
        return barrier(self.values, form)

    def to_json(self) -> dict[str, Any]:
        b = self.barrier()
        return {
            "a": self.tree.a, "b": self.tree.b, "distance": self.tree.distance,
            "level_sizes": self.tree.level_sizes, "values": self.values.tolist(), "stds": self.stds.tolist(),
            "barrier": b.raw, "barrier_normalized": b.normalized,
        }  # fmt: skip


def accuracy_path(tree: PathTree, source: AccuracySource) -> AccuracyPath:
    """Evaluate every architecture of ``tree`` with one call to ``source``."""
    flat = [arch for level in tree.levels for arch in level]
    values = evaluate(source, flat)
    splits = np.cumsum([len(level) for level in tree.levels])[:-1]
    return AccuracyPath(tree, tuple(np.split(values, splits)))


def barrier(values: Any, form: str = "paper") -> Barrier:
    """Accuracy barrier of an accuracy path ``values = [acc(a), level means..., acc(b)]``.

    Args:
        values: The accuracy path.
        form: ``"paper"`` (A2M eq. 9, the default): ``(acc(a) + acc(b)) / 2`` minus the lowest
            *intermediate* level mean (the whole path when ``a`` and ``b`` are adjacent), so a path
            that rises between its endpoints has a negative barrier.  ``"path"``: the minimum is
            taken over the whole path, endpoints included (never negative).  ``"reference"``: the
            A2M code's ``compute_barrier``, ``(values[0] + values[1]) / 2 - min(values)``, which
            pairs ``acc(a)`` with the first level mean instead of ``acc(b)``.

    Returns:
        The raw barrier and the barrier divided by the endpoint mean of the chosen form.
    """
    check_choice(form, "form", "barrier", BARRIER_FORMS)
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size == 0 or not np.all(np.isfinite(v)):
        raise ConfigError(f"an accuracy path needs at least one finite value, got {v.tolist()!r}")
    if form == "reference":
        ref = (v[0] + v[min(1, v.size - 1)]) / 2
        low = v.min()
    else:
        ref = (v[0] + v[-1]) / 2
        low = v[1:-1].min() if form == "paper" and v.size > 2 else v.min()
    raw = float(ref - low)
    return Barrier(raw, raw / float(ref) if ref else float("nan"), float(low), float(ref), form)
