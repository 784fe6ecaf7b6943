"""NAS-Bench-201 cell space (Dong & Yang, ICLR 2020).

A cell has 4 nodes (0 = input, 3 = output) and 6 edges ``j<-i`` in the order
(1<-0), (2<-0), (2<-1), (3<-0), (3<-1), (3<-2); each edge carries one of 5 ops.
The string format is the benchmark's key, e.g.
``|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from genas.errors import InvalidArchitectureError
from genas.registry import suggest
from genas.spaces.base import SPACES, Architecture, SearchSpace

__all__ = ["NB201_OPS", "NB201_EDGES", "NB201_CODE_WEIGHTS", "NB201Arch", "NB201Space"]

NB201_OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NB201_EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))  # (to, from)
_NODE_EDGES = {j: [e for e, (to, _) in enumerate(NB201_EDGES) if to == j] for j in (1, 2, 3)}
NB201_CODE_WEIGHTS: tuple[int, ...] = (5**5, 5**4, 5**3, 5**2, 5, 1)  # gene code = sum(gene * weight)


@dataclass(frozen=True, order=True)
class NB201Arch(Architecture):
    """One NB201 cell: the op name on each of the 6 edges, in :data:`NB201_EDGES` order."""

    ops: tuple[str, ...]
    space: ClassVar[str] = "nb201"

    def __post_init__(self) -> None:
        ops = tuple(self.ops)
        if len(ops) != 6:
            raise InvalidArchitectureError(f"an NB201 cell has 6 edges, got {len(ops)} ops: {ops!r}")
        for (to, frm), op in zip(NB201_EDGES, ops):
            if op not in NB201_OPS:
                raise InvalidArchitectureError(
                    f"NB201 edge {to}<-{frm}: unknown op {op!r}.{suggest(str(op), NB201_OPS)} "
                    f"Allowed: {', '.join(NB201_OPS)}"
                )
        object.__setattr__(self, "ops", ops)

    # -- encodings -------------------------------------------------------------------
    @property
    def genes(self) -> tuple[int, ...]:
        """Op indices (positions in :data:`NB201_OPS`) per edge."""
        return tuple(NB201_OPS.index(op) for op in self.ops)

    @property
    def code(self) -> int:
        """The genes as one base-5 integer in [0, 15624], the first edge most significant."""
        return int(sum(g * w for g, w in zip(self.genes, NB201_CODE_WEIGHTS)))

    @classmethod
    def from_code(cls, code: int) -> NB201Arch:
        """Inverse of :attr:`code`."""
        if not isinstance(code, (int, np.integer)) or isinstance(code, bool) or not 0 <= int(code) < 5**6:
            raise InvalidArchitectureError(f"an NB201 gene code is an int in [0, {5**6 - 1}], got {code!r}")
        return cls.from_genes(tuple(int(code) // w % 5 for w in NB201_CODE_WEIGHTS))

    @classmethod
    def from_genes(cls, genes: Any) -> NB201Arch:
        """Build from 6 op indices."""
        genes = tuple(genes)
        if len(genes) != 6:
            raise InvalidArchitectureError(f"an NB201 gene vector has 6 entries, got {len(genes)}: {genes!r}")
        bad = [g for g in genes if not isinstance(g, (int, np.integer)) or not 0 <= int(g) < len(NB201_OPS)]
        if bad:
            raise InvalidArchitectureError(f"NB201 genes must be ints in [0, 4]; got {bad[0]!r} in {genes!r}")
        return cls(tuple(NB201_OPS[int(g)] for g in genes))

    def __str__(self) -> str:
        nodes = []
        for j in (1, 2, 3):
            nodes.append("|" + "|".join(f"{self.ops[e]}~{NB201_EDGES[e][1]}" for e in _NODE_EDGES[j]) + "|")
        return "+".join(nodes)

    @classmethod
    def from_string(cls, text: str) -> NB201Arch:
        """Parse the benchmark's string format, naming the first problem found."""
        if not isinstance(text, str):
            raise InvalidArchitectureError(f"an NB201 architecture string must be a str, got {type(text).__name__}")
        s = text.strip()
        parts = s.split("+")
        if len(parts) != 3:
            raise InvalidArchitectureError(
                f"malformed NB201 string {text!r}: expected 3 nodes separated by '+', found {len(parts)}"
            )
        ops: list[str] = []
        for j, part in enumerate(parts, start=1):
            for end, side in ((part[:1], "leading"), (part[-1:], "trailing")):  # a '|' lost to a shell or an edit
                if end != "|" and part.strip("|"):
                    outer = (j, side) in ((1, "leading"), (3, "trailing"))  # the string's own first / last '|'
                    where = f"the {side} '|'" if outer else f"node {j}'s {side} '|'"
                    raise InvalidArchitectureError(
                        f"malformed NB201 string {text!r}: {where} is missing ({part!r}); an NB201 string must be "
                        "written '|op~0|+|op~0|op~1|+|op~0|op~1|op~2|'"
                    )
            if not (part.startswith("|") and part.endswith("|")) or len(part) < 2:
                raise InvalidArchitectureError(
                    f"malformed NB201 string {text!r}: node {j} must be written '|op~i|...|', got {part!r}"
                )
            items = part[1:-1].split("|")
            if len(items) != j:
                raise InvalidArchitectureError(
                    f"malformed NB201 string {text!r}: node {j} needs {j} input(s), got {len(items)} in {part!r}"
                )
            for i, item in enumerate(items):
                op, sep, src = item.partition("~")
                if not sep or src != str(i):
                    raise InvalidArchitectureError(
                        f"malformed NB201 string {text!r}: node {j}, entry {item!r} must be 'op~{i}' "
                        f"(inputs are listed in order 0..{j - 1})"
                    )
                if op not in NB201_OPS:
                    raise InvalidArchitectureError(
                        f"malformed NB201 string {text!r}: node {j} <- {i}: unknown op {op!r}."
                        f"{suggest(op, NB201_OPS)} Allowed: {', '.join(NB201_OPS)}"
                    )
                ops.append(op)
        return cls(tuple(ops))

    def to_json(self) -> str:
        return str(self)

    def edge(self, to: int, frm: int) -> str:
        """The op on edge ``to<-frm``."""
        return self.ops[NB201_EDGES.index((to, frm))]

    def is_connected(self) -> bool:
        """True if some input->output path has no ``none`` edge (else the cell outputs zeros)."""
        reach = {0}
        for e, (to, frm) in enumerate(NB201_EDGES):
            if frm in reach and self.ops[e] != "none":
                reach.add(to)
        return 3 in reach


class NB201Space(SearchSpace):
    """The 5^6 = 15,625 NAS-Bench-201 cells, with Hamming-distance geometry."""

    name: ClassVar[str] = "nb201"
    arch_type: ClassVar[type] = NB201Arch
    ops: ClassVar[tuple[str, ...]] = NB201_OPS
    edges: ClassVar[tuple[tuple[int, int], ...]] = NB201_EDGES
    num_edges: ClassVar[int] = 6

    def parse(self, obj: Any) -> NB201Arch:
        if isinstance(obj, NB201Arch):
            return obj
        if isinstance(obj, Architecture):
            raise InvalidArchitectureError(
                f"architecture from the {obj.space!r} space given where an NB201 architecture is expected: {obj}"
            )
        if isinstance(obj, str):
            s = obj.strip()
            if s.startswith("Genotype(") or s.startswith("{"):
                raise InvalidArchitectureError(
                    f"{s[:40]!r}... looks like a DARTS genotype; an NB201 architecture is written "
                    "'|op~0|+|op~0|op~1|+|op~0|op~1|op~2|'"
                )
            return NB201Arch.from_string(s)
        if isinstance(obj, (tuple, list, np.ndarray)):
            seq = list(obj)
            if seq and all(isinstance(x, str) for x in seq):
                return NB201Arch(tuple(seq))
            return NB201Arch.from_genes(seq)
        raise InvalidArchitectureError(f"cannot read an NB201 architecture from {type(obj).__name__}: {obj!r}")

    # ---- random operators ----------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> NB201Arch:
        return NB201Arch.from_genes(rng.integers(0, len(NB201_OPS), size=6).tolist())

    def mutate(self, arch: NB201Arch, rng: np.random.Generator, prob: float = 0.1) -> NB201Arch:
        genes = list(arch.genes)
        for e in range(6):
            if rng.random() < prob:
                genes[e] = _other_op(genes[e], rng, len(NB201_OPS))
        return NB201Arch.from_genes(genes)

    def crossover(self, a: NB201Arch, b: NB201Arch, rng: np.random.Generator) -> NB201Arch:
        pick = rng.random(6) < 0.5
        return NB201Arch.from_genes([ga if p else gb for ga, gb, p in zip(a.genes, b.genes, pick)])

    # ---- geometry ------------------------------------------------------------------
    def neighbors(self, arch: NB201Arch, radius: int = 1) -> list[NB201Arch]:
        """Every cell that differs from ``arch`` on exactly ``radius`` edges (24 / 240 / 1,280)."""
        arch = self.parse(arch)
        _check_radius(radius, self.num_edges)
        genes = arch.genes
        out = []
        for edges in itertools.combinations(range(6), radius):
            choices = [[o for o in range(len(NB201_OPS)) if o != genes[e]] for e in edges]
            for new in itertools.product(*choices):
                g = list(genes)
                for e, o in zip(edges, new):
                    g[e] = o
                out.append(NB201Arch.from_genes(g))
        return out

    def distance(self, a: NB201Arch, b: NB201Arch) -> int:
        """Hamming distance: the number of edges whose op differs."""
        a, b = self.parse(a), self.parse(b)
        return sum(x != y for x, y in zip(a.ops, b.ops))

    @property
    def size(self) -> int:
        return len(NB201_OPS) ** 6

    def enumerate(self) -> Iterator[NB201Arch]:
        """All 15,625 cells, genes in lexicographic order of op indices."""
        for genes in itertools.product(range(len(NB201_OPS)), repeat=6):
            yield NB201Arch.from_genes(genes)


def _other_op(current: int, rng: np.random.Generator, n_ops: int, low: int = 0) -> int:
    """A uniformly drawn op index in ``[low, n_ops)`` different from ``current``."""
    choices = [o for o in range(low, n_ops) if o != current]
    return int(choices[rng.integers(len(choices))])


def _check_radius(radius: int, max_radius: int) -> None:
    if not isinstance(radius, (int, np.integer)) or isinstance(radius, bool) or not 1 <= radius <= max_radius:
        from genas.errors import ConfigError

        raise ConfigError(
            f"The 'radius' parameter must be an int in the range [1, {max_radius}] "
            f"(the number of edges). Got {radius!r} instead."
        )


SPACES.add("nb201", NB201Space, description="NAS-Bench-201 cell: 6 edges x 5 ops (15,625 architectures)")
