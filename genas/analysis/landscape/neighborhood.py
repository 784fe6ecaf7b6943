"""Neighbourhoods and neighbour trees in architecture space (A2M paper, section 4.1.1).

A radius-r neighbour is reached by r single moves on distinct elements of the encoding:
NB201 changes the op of one edge (an edge already changed is never changed again); DARTS
changes the op of an existing input edge or adjusts a connection (drop one input of a node,
add another with some op), in either cell, never touching a gene slot an earlier move
touched, so no move undoes an earlier one.  With that rule level r of the neighbour tree is
exactly the set of architectures at distance r.

:func:`nb201_neighbor_codes` is the vectorised form for the NB201 table: every radius-r
neighbour of many architectures at once, as gene codes.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache
from math import comb
from typing import Any

import numpy as np

from genas.tables.nb201 import codes_to_genes
from genas.errors import ConfigError, InvalidArchitectureError
from genas.spaces import SearchSpace, create_space
from genas.spaces.base import Architecture
from genas.spaces.nb201 import NB201_CODE_WEIGHTS

__all__ = [
    "resolve_space", "single_moves", "neighborhood", "NeighborTree", "neighbor_tree",
    "sample_tree_neighbors", "nb201_neighbor_codes", "nb201_neighborhood_size",
]  # fmt: skip


def resolve_space(space: SearchSpace | str | None, *archs: Any) -> tuple[SearchSpace, list[Any]]:
    """The space to work in and ``archs`` parsed into it; architectures of two spaces are refused."""
    spaces = sorted({a.space for a in archs if isinstance(a, Architecture)})
    if len(spaces) > 1:
        names = " and ".join(map(repr, spaces))
        raise InvalidArchitectureError(f"architectures from different spaces ({names}) cannot be compared")
    if isinstance(space, str):
        space = create_space(space)
    if space is None:
        if not spaces:
            raise ConfigError("cannot tell the space of plain strings or tuples; pass space='nb201' or space='darts'")
        space = create_space(spaces[0])
    if spaces and spaces[0] != space.name:
        raise InvalidArchitectureError(f"a {spaces[0]!r} architecture was given to the {space.name!r} space")
    return space, [space.parse(a) for a in archs]


def single_moves(space: SearchSpace, arch: Any) -> list[Any]:
    """Every radius-1 move: ``space.moves(arch)`` where the space defines it, else ``space.neighbors(arch, 1)``."""
    moves = getattr(space, "moves", None)
    return list(moves(arch)) if callable(moves) else list(space.neighbors(arch, 1))


def _check_radius(radius: Any, space: SearchSpace, name: str, low: int = 1) -> int:
    high = getattr(space, "num_edges", None)
    ok = isinstance(radius, (int, np.integer)) and not isinstance(radius, bool)
    if not ok or radius < low or (high is not None and radius > high):
        bound = "inf)" if high is None else f"{high}] (the number of {space.name} edges)"
        raise ConfigError(f"The {name!r} parameter must be an int in the range [{low}, {bound}. Got {radius!r} instead.")
    return int(radius)


def _changed(a: Any, b: Any) -> frozenset[int]:
    return frozenset(i for i, (x, y) in enumerate(zip(a.genes, b.genes)) if x != y)


def _allowed_moves(space: SearchSpace, root: Any, node: Any) -> list[Any]:
    """Moves from ``node`` that touch no gene slot already changed on the way from ``root``."""
    touched = _changed(root, node)
    return [m for m in single_moves(space, node) if not (_changed(node, m) & touched)]


def neighborhood(
    arch: Any,
    radius: int = 1,
    space: SearchSpace | str | None = None,
    k: int | None = None,
    rng: np.random.Generator | None = None,
) -> list[Any]:
    """Architectures at exactly ``radius`` moves: all of them, or ``k`` drawn with ``rng``.

    Args:
        arch: The centre.
        radius: Number of moves.
        space: The search space (default: the architecture's own).
        k: Sample size for spaces too large to enumerate (uses ``space.sample_neighbors``).
        rng: Generator for the sample; required with ``k``.
    """
    space, (arch,) = resolve_space(space, arch)
    if k is None:
        return space.neighbors(arch, radius)
    if rng is None:
        raise ConfigError("neighborhood(..., k=...) draws a sample: pass rng=np.random.default_rng(seed)")
    return space.sample_neighbors(arch, radius, k, rng)


@dataclass(frozen=True)
class NeighborTree:
    """Levels of a neighbour tree: ``levels[r]`` are the unique architectures r moves from the root.

    ``edges[r]`` lists ``(i, j)``: a move from ``levels[r][i]`` to ``levels[r + 1][j]``.
    """

    root: Any
    levels: tuple[tuple[Any, ...], ...]
    edges: tuple[tuple[tuple[int, int], ...], ...]

    @property
    def level_sizes(self) -> list[int]:
        return [len(level) for level in self.levels]


def neighbor_tree(
    root: Any,
    depth: int,
    space: SearchSpace | str | None = None,
    k: int | None = None,
    rng: np.random.Generator | None = None,
) -> NeighborTree:
    """Build the neighbour tree of ``root`` to ``depth`` levels by moves that never undo an earlier one.

    Args:
        root: The root architecture.
        depth: Number of levels below the root.
        space: The search space (default: the root's own).
        k: Expand at most ``k`` random allowed moves per node (``None``: every move; NB201
            depth 3 gives 24 / 240 / 1,280 unique architectures, DARTS depth 1 gives 264).
        rng: Generator for ``k``.
    """
    space, (root,) = resolve_space(space, root)
    _check_radius(depth, space, "depth", low=0)
    if k is not None and rng is None:
        raise ConfigError("neighbor_tree(..., k=...) samples moves: pass rng=np.random.default_rng(seed)")
    levels: list[list[Any]] = [[root]]
    edges: list[list[tuple[int, int]]] = []
    for _ in range(depth):
        pos: dict[Any, int] = {}
        level_edges: dict[tuple[int, int], None] = {}
        for i, node in enumerate(levels[-1]):
            children = _allowed_moves(space, root, node)
            if k is not None and len(children) > k:
                children = [children[j] for j in sorted(rng.choice(len(children), size=k, replace=False))]
            for child in children:
                level_edges.setdefault((i, pos.setdefault(child, len(pos))), None)
        levels.append(list(pos))
        edges.append(list(level_edges))
        if not pos:
            break
    return NeighborTree(root, tuple(map(tuple, levels)), tuple(map(tuple, edges)))


def sample_tree_neighbors(
    arch: Any, radius: int, k: int, rng: np.random.Generator, space: SearchSpace | str | None = None, max_tries: int = 50
) -> list[Any]:
    """Up to ``k`` distinct radius-``radius`` neighbours by random walks that never undo a move.

    Each step picks uniformly among the allowed moves of the current architecture (A2M's
    procedure for the DARTS neighbourhood samples of its Fig. 6).
    """
    space, (arch,) = resolve_space(space, arch)
    _check_radius(radius, space, "radius")
    found: dict[Any, None] = {}
    for _ in range(max_tries * k):
        cur = arch
        for _ in range(radius):
            moves = _allowed_moves(space, arch, cur)
            if not moves:
                break
            cur = moves[int(rng.integers(len(moves)))]
        if space.distance(arch, cur) == radius:
            found.setdefault(cur)
            if len(found) == k:
                break
    return list(found)


# ---- NB201, vectorised ----------------------------------------------------------------
def _check_nb201_radius(radius: int) -> int:
    if not isinstance(radius, (int, np.integer)) or isinstance(radius, bool) or not 1 <= radius <= 6:
        raise ConfigError(
            "The 'radius' parameter must be an int in the range [1, 6] (the number of NB201 edges). "
            f"Got {radius!r} instead."
        )
    return int(radius)


def nb201_neighborhood_size(radius: int) -> int:
    """``C(6, r) * 4**r``: 24, 240, 1,280 for r = 1, 2, 3."""
    r = _check_nb201_radius(radius)
    return comb(6, r) * 4**r


@lru_cache(maxsize=8)
def _deltas(radius: int) -> np.ndarray:
    """Every way to change exactly ``radius`` edges: an (M, 6) array of op shifts in 0..4 (0 = unchanged)."""
    rows = []
    for edges in itertools.combinations(range(6), radius):
        for shift in itertools.product(range(1, 5), repeat=radius):
            row = [0] * 6
            for e, s in zip(edges, shift):
                row[e] = s
            rows.append(row)
    out = np.array(rows, dtype=np.int64)
    out.setflags(write=False)
    return out


def nb201_neighbor_codes(codes: Any, radius: int) -> np.ndarray:
    """Gene codes of every radius-``radius`` neighbour of each code: shape ``(len(codes), C(6,r) * 4**r)``.

    Changing an edge to any other op is adding a shift in 1..4 modulo 5 to its op index.
    """
    deltas = _deltas(_check_nb201_radius(radius))
    genes = codes_to_genes(codes)
    out = np.zeros((len(genes), len(deltas)), dtype=np.int64)
    for e, w in enumerate(NB201_CODE_WEIGHTS):
        out += ((genes[:, e : e + 1] + deltas[None, :, e]) % 5) * w
    return out

