"""DARTS cell space (Liu et al., ICLR 2019), as used by SPOS-style supernets and GeNAS.

Each of the two cell types (normal, reduce) has inputs c_{k-2}, c_{k-1} (nodes 0, 1),
intermediate nodes 2..5 and output concat(2..5).  Node j has a candidate edge from
every earlier node: 14 edges per cell in the order node2<-{0,1}, node3<-{0,1,2},
node4<-{0..3}, node5<-{0..4}.  A discrete cell keeps exactly 2 non-``none`` inputs
per node.  Encodings: the 28-integer tuple (14 normal genes, then 14 reduce genes)
and the DARTS ``Genotype`` namedtuple; both round-trip.
"""

from __future__ import annotations

import ast
import itertools
import json
from collections import namedtuple
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from genas.errors import ConfigError, InvalidArchitectureError
from genas.registry import suggest
from genas.spaces.base import SPACES, Architecture, SearchSpace
from genas.spaces.nb201 import _check_radius, _other_op

__all__ = ["DARTS_OPS", "DARTS_EDGES", "Genotype", "DartsArch", "DartsSpace"]

DARTS_OPS: tuple[str, ...] = (
    "none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
    "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5",
)  # fmt: skip
DARTS_NODES: tuple[int, ...] = (2, 3, 4, 5)
DARTS_EDGES: tuple[tuple[int, int], ...] = tuple((j, i) for j in DARTS_NODES for i in range(j))  # (to, from)
NODE_EDGES: dict[int, list[int]] = {j: [e for e, (to, _) in enumerate(DARTS_EDGES) if to == j] for j in DARTS_NODES}
CELLS: tuple[str, ...] = ("normal", "reduce")

Genotype = namedtuple("Genotype", "normal normal_concat reduce reduce_concat")


def _validate_cell(genes: tuple[int, ...], cell: str) -> None:
    if len(genes) != 14:
        raise InvalidArchitectureError(f"{cell} cell: expected 14 genes, got {len(genes)}")
    for e, g in enumerate(genes):
        if not isinstance(g, (int, np.integer)) or isinstance(g, bool) or not 0 <= int(g) < len(DARTS_OPS):
            to, frm = DARTS_EDGES[e]
            raise InvalidArchitectureError(
                f"{cell} cell / edge {frm}->{to}: gene {g!r} is not an op id in [0, {len(DARTS_OPS) - 1}]"
            )
    for j, edges in NODE_EDGES.items():
        used = [e for e in edges if genes[e] != 0]
        if len(used) != 2:
            names = ", ".join(f"{DARTS_EDGES[e][1]}->{j} {DARTS_OPS[genes[e]]}" for e in used) or "none"
            raise InvalidArchitectureError(
                f"{cell} cell / node {j}: {len(used)} non-none inputs ({names}); "
                "a discrete DARTS cell keeps exactly 2 inputs per node"
            )


@dataclass(frozen=True, order=True)
class DartsArch(Architecture):
    """A discrete DARTS architecture: 14 op ids for the normal cell and 14 for the reduce cell."""

    normal: tuple[int, ...]
    reduce: tuple[int, ...]
    space: ClassVar[str] = "darts"

    def __post_init__(self) -> None:
        for cell in CELLS:
            genes = tuple(int(g) if isinstance(g, np.integer) else g for g in getattr(self, cell))
            _validate_cell(genes, cell)
            object.__setattr__(self, cell, genes)

    # -- encodings -------------------------------------------------------------------
    @property
    def genes(self) -> tuple[int, ...]:
        """The 28-integer encoding: normal genes then reduce genes."""
        return self.normal + self.reduce

    @classmethod
    def from_genes(cls, genes: Any) -> DartsArch:
        genes = tuple(genes)
        if len(genes) != 28:
            raise InvalidArchitectureError(f"a DARTS gene tuple has 28 entries (14 normal + 14 reduce), got {len(genes)}")
        return cls(genes[:14], genes[14:])

    def cell(self, name: str) -> tuple[int, ...]:
        return self.normal if name == "normal" else self.reduce

    def to_genotype(self) -> Genotype:
        """The DARTS ``Genotype``; per node, inputs are listed in ascending input index."""
        cells = {}
        for cell in CELLS:
            genes = self.cell(cell)
            cells[cell] = [(DARTS_OPS[genes[e]], DARTS_EDGES[e][1]) for j in DARTS_NODES for e in NODE_EDGES[j] if genes[e]]
        return Genotype(cells["normal"], list(DARTS_NODES), cells["reduce"], list(DARTS_NODES))

    @classmethod
    def from_genotype(cls, genotype: Any) -> DartsArch:
        """Build from a DARTS ``Genotype`` (or any object with the same four fields)."""
        try:
            fields = {f: getattr(genotype, f) for f in Genotype._fields}
        except AttributeError as exc:
            raise InvalidArchitectureError(f"not a DARTS Genotype: {genotype!r}") from exc
        cells = {}
        for cell in CELLS:
            concat = fields[f"{cell}_concat"]
            if not _is_list(concat) or list(concat) != list(DARTS_NODES):
                raise InvalidArchitectureError(f"{cell}_concat must be a list of node indices, [2, 3, 4, 5] (the cell's "
                                               f"output joins its 4 intermediate nodes); got {concat!r}")  # fmt: skip
            if not _is_list(fields[cell]):
                raise InvalidArchitectureError(f"{cell} must be a list of 8 (op, input) pairs, 2 per node; "
                                               f"got {fields[cell]!r}")  # fmt: skip
            pairs = list(fields[cell])
            if len(pairs) != 8:
                raise InvalidArchitectureError(f"{cell} cell: a Genotype lists 8 (op, input) pairs, got {len(pairs)}")
            genes = [0] * 14
            for k, pair in enumerate(pairs):
                j = DARTS_NODES[k // 2]
                try:
                    op, frm = pair
                except (TypeError, ValueError) as exc:
                    raise InvalidArchitectureError(f"{cell} cell / node {j}: entry {pair!r} is not (op, input)") from exc
                if op not in DARTS_OPS or op == "none":
                    allowed = ", ".join(DARTS_OPS[1:])
                    raise InvalidArchitectureError(
                        f"{cell} cell / node {j}: op {op!r} not in [{allowed}].{suggest(str(op), DARTS_OPS[1:])}"
                    )
                if not isinstance(frm, int) or not 0 <= frm < j:
                    raise InvalidArchitectureError(f"{cell} cell / node {j}: input {frm!r} must be an int in [0, {j - 1}]")
                e = DARTS_EDGES.index((j, frm))
                if genes[e]:
                    raise InvalidArchitectureError(
                        f"{cell} cell / node {j}: input {frm} is used twice; the 28-gene encoding needs 2 distinct inputs"
                    )
                genes[e] = DARTS_OPS.index(op)
            cells[cell] = tuple(genes)
        return cls(cells["normal"], cells["reduce"])

    def __str__(self) -> str:
        return repr(self.to_genotype())

    def to_json(self) -> dict[str, Any]:
        g = self.to_genotype()
        return {"normal": [list(p) for p in g.normal], "normal_concat": g.normal_concat,
                "reduce": [list(p) for p in g.reduce], "reduce_concat": g.reduce_concat}  # fmt: skip


def _is_list(value: Any) -> bool:
    """A list, tuple or ``range`` (the DARTS code writes ``normal_concat=range(2, 6)``), not a number or a string."""
    return isinstance(value, (list, tuple, range))


def _literal(node: ast.expr) -> Any:
    """A literal, or ``range(a, b)`` as DARTS prints ``normal_concat`` (nothing is evaluated)."""
    if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "range" and not node.keywords:
        bounds = [ast.literal_eval(a) for a in node.args]
        if len(bounds) in (1, 2) and all(isinstance(b, int) and not isinstance(b, bool) for b in bounds):
            return list(range(*bounds))
    return ast.literal_eval(node)


def _parse_genotype_string(text: str) -> Genotype:
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as exc:
        raise InvalidArchitectureError(f"malformed DARTS genotype string: {exc.msg} in {text[:60]!r}") from exc
    if not (isinstance(tree, ast.Call) and getattr(tree.func, "id", None) == "Genotype"):
        raise InvalidArchitectureError(f"malformed DARTS genotype string {text[:60]!r}: expected Genotype(normal=..., ...)")
    try:
        args = [_literal(a) for a in tree.args]
        kwargs = {k.arg: _literal(k.value) for k in tree.keywords}
    except ValueError as exc:
        raise InvalidArchitectureError(f"malformed DARTS genotype string {text[:60]!r}: values must be literals") from exc
    try:
        return Genotype(*args, **kwargs)
    except TypeError as exc:
        raise InvalidArchitectureError(f"malformed DARTS genotype string: {exc}") from exc


class DartsSpace(SearchSpace):
    """Discrete DARTS architectures (normal + reduce cell, 2 inputs per node)."""

    name: ClassVar[str] = "darts"
    arch_type: ClassVar[type] = DartsArch
    ops: ClassVar[tuple[str, ...]] = DARTS_OPS
    edges: ClassVar[tuple[tuple[int, int], ...]] = DARTS_EDGES
    num_edges: ClassVar[int] = 28

    def parse(self, obj: Any) -> DartsArch:
        if isinstance(obj, DartsArch):
            return obj
        try:
            return self._parse(obj)
        except InvalidArchitectureError:
            raise
        except (ValueError, TypeError, KeyError, IndexError, SyntaxError) as exc:  # broken JSON, a number for a list
            shown = obj if not isinstance(obj, str) else obj.strip()
            msg = " ".join(str(exc).split()) or type(exc).__name__
            raise InvalidArchitectureError(f"cannot read a DARTS architecture from {str(shown)[:80]!r}: {msg}; expected "
                                           "Genotype(...), its JSON form or 28 integers") from None  # fmt: skip

    def _parse(self, obj: Any) -> DartsArch:
        if isinstance(obj, Architecture):
            raise InvalidArchitectureError(
                f"architecture from the {obj.space!r} space given where a DARTS architecture is expected: {obj}"
            )
        if isinstance(obj, tuple) and hasattr(obj, "_fields"):
            return DartsArch.from_genotype(obj)
        if isinstance(obj, dict):
            return DartsArch.from_genotype(Genotype(**{f: obj.get(f, list(DARTS_NODES)) for f in Genotype._fields}))
        if isinstance(obj, str):
            s = obj.strip()
            if s.startswith("Genotype"):
                return DartsArch.from_genotype(_parse_genotype_string(s))
            if s.startswith("{"):
                return self.parse(json.loads(s))
            if s.startswith("|") or "~" in s:  # '~' is NB201's op~input; no DARTS form has it
                raise InvalidArchitectureError(f"{s[:40]!r}... looks like an NB201 string, not a DARTS architecture")
            try:
                genes = [int(t) for t in s.strip("[]()").replace(",", " ").split()]
            except ValueError as exc:
                raise InvalidArchitectureError(
                    f"cannot read a DARTS architecture from {s[:60]!r}: expected Genotype(...), JSON or 28 integers"
                ) from exc
            return DartsArch.from_genes(genes)
        if isinstance(obj, (list, tuple, np.ndarray)):
            return DartsArch.from_genes(list(obj))
        raise InvalidArchitectureError(f"cannot read a DARTS architecture from {type(obj).__name__}: {obj!r}")

    # ---- random operators ----------------------------------------------------------
    def repair_genes(self, genes: list[int], rng: np.random.Generator) -> list[int]:
        """Exactly 2 non-none inputs per node: drop random extras, add random edges with random ops."""
        genes = list(genes)
        for base in (0, 14):
            for j in DARTS_NODES:
                edges = [base + e for e in NODE_EDGES[j]]
                used = [e for e in edges if genes[e]]
                if len(used) > 2:
                    for e in rng.choice(used, size=len(used) - 2, replace=False):
                        genes[int(e)] = 0
                elif len(used) < 2:
                    free = [e for e in edges if not genes[e]]
                    for e in rng.choice(free, size=2 - len(used), replace=False):
                        genes[int(e)] = int(rng.integers(1, len(DARTS_OPS)))
        return genes

    def repair(self, arch: Any, rng: np.random.Generator) -> DartsArch:
        genes = arch.genes if isinstance(arch, DartsArch) else list(arch)
        return DartsArch.from_genes(self.repair_genes(list(genes), rng))

    def sample(self, rng: np.random.Generator) -> DartsArch:
        """Per node, 2 distinct inputs uniformly and an op uniformly among the 7 non-none ops."""
        genes = [0] * 28
        for base in (0, 14):
            for j in DARTS_NODES:
                for e in rng.choice(NODE_EDGES[j], size=2, replace=False):
                    genes[base + int(e)] = int(rng.integers(1, len(DARTS_OPS)))
        return DartsArch.from_genes(genes)

    def mutate(self, arch: DartsArch, rng: np.random.Generator, prob: float = 0.1) -> DartsArch:
        """Each of the 28 genes (both cells) changes to another op with probability ``prob``, then repair."""
        genes = list(self.parse(arch).genes)
        for e in range(28):
            if rng.random() < prob:
                genes[e] = _other_op(genes[e], rng, len(DARTS_OPS))
        return DartsArch.from_genes(self.repair_genes(genes, rng))

    def crossover(self, a: DartsArch, b: DartsArch, rng: np.random.Generator) -> DartsArch:
        """Uniform crossover per node: each node of each cell takes both its inputs from ``a`` or ``b``."""
        ga, gb = list(self.parse(a).genes), list(self.parse(b).genes)
        child = list(ga)
        for base in (0, 14):
            for j in DARTS_NODES:
                if rng.random() < 0.5:
                    for e in NODE_EDGES[j]:
                        child[base + e] = gb[base + e]
        return DartsArch.from_genes(child)

    # ---- geometry ------------------------------------------------------------------
    def moves(self, arch: DartsArch) -> list[DartsArch]:
        """Every radius-1 move (A2M 4.1.1): op changes and connection adjustments, in both cells."""
        arch = self.parse(arch)
        out = []
        genes = arch.genes
        for base in (0, 14):
            for j in DARTS_NODES:
                edges = [base + e for e in NODE_EDGES[j]]
                used = [e for e in edges if genes[e]]
                free = [e for e in edges if not genes[e]]
                for e in used:  # operation change
                    for op in range(1, len(DARTS_OPS)):
                        if op != genes[e]:
                            g = list(genes)
                            g[e] = op
                            out.append(DartsArch.from_genes(g))
                for drop, add in itertools.product(used, free):  # connection adjustment
                    for op in range(1, len(DARTS_OPS)):
                        g = list(genes)
                        g[drop], g[add] = 0, op
                        out.append(DartsArch.from_genes(g))
        return out

    def random_move(self, arch: DartsArch, rng: np.random.Generator) -> DartsArch:
        """One radius-1 move: a random cell, then an op change or a connection adjustment."""
        genes = list(self.parse(arch).genes)
        base = 14 * int(rng.integers(2))
        j = DARTS_NODES[int(rng.integers(len(DARTS_NODES)))]
        edges = [base + e for e in NODE_EDGES[j]]
        used = [e for e in edges if genes[e]]
        free = [e for e in edges if not genes[e]]
        if free and rng.random() < 0.5:
            drop, add = used[int(rng.integers(2))], free[int(rng.integers(len(free)))]
            genes[drop], genes[add] = 0, int(rng.integers(1, len(DARTS_OPS)))
        else:
            e = used[int(rng.integers(2))]
            genes[e] = _other_op(genes[e], rng, len(DARTS_OPS), low=1)
        return DartsArch.from_genes(genes)

    def neighbors(self, arch: DartsArch, radius: int = 1) -> list[DartsArch]:
        """Every architecture at exactly ``radius`` moves (radius 1 or 2; use ``sample_neighbors`` beyond)."""
        arch = self.parse(arch)
        _check_radius(radius, self.num_edges)
        if radius > 2:
            raise ConfigError(
                f"the DARTS radius-{radius} neighbourhood is too large to enumerate; "
                "use sample_neighbors(arch, radius, k, rng) for a seeded sample"
            )
        frontier = {arch}
        seen = {arch}
        for _ in range(radius):
            nxt = set()
            for a in frontier:
                for b in self.moves(a):
                    if b not in seen:
                        nxt.add(b)
            seen |= nxt
            frontier = nxt
        return sorted(frontier)

    def sample_neighbors(self, arch: Any, radius: int, k: int, rng: np.random.Generator) -> list[DartsArch]:
        """Up to ``k`` distinct architectures at exactly ``radius``, by random walks of ``radius`` moves."""
        arch = self.parse(arch)
        _check_radius(radius, self.num_edges)
        if radius == 1:
            return super().sample_neighbors(arch, 1, k, rng)
        found: dict[DartsArch, None] = {}
        for _ in range(50 * k):
            cur = arch
            for _ in range(radius):
                cur = self.random_move(cur, rng)
            if self.distance(arch, cur) == radius:
                found.setdefault(cur)
                if len(found) == k:
                    break
        return list(found)

    def distance(self, a: Any, b: Any) -> int:
        """Minimal moves: per node, inputs with another op count 1, inputs to swap count 1 each."""
        ga, gb = self.parse(a).genes, self.parse(b).genes
        d = 0
        for base in (0, 14):
            for j in DARTS_NODES:
                edges = [base + e for e in NODE_EDGES[j]]
                ina = {e for e in edges if ga[e]}
                inb = {e for e in edges if gb[e]}
                d += len(ina - inb) + sum(ga[e] != gb[e] for e in ina & inb)
        return d

    @property
    def size(self) -> int:
        per_cell = 1
        for j in DARTS_NODES:
            per_cell *= (j * (j - 1) // 2) * (len(DARTS_OPS) - 1) ** 2
        return per_cell**2


SPACES.add("darts", DartsSpace, description="DARTS normal + reduce cells, 2 inputs per node, 8 ops")
