"""Search spaces: encodings, round trips, operators, neighbourhoods, errors."""

from __future__ import annotations

import csv
import itertools
import pickle
from math import comb

import numpy as np
import pytest

from genas.errors import ConfigError, InvalidArchitectureError
from genas.spaces import DartsArch, Genotype, NB201Arch, create_space, list_spaces
from tests.conftest import BEST

NB201 = create_space("nb201")
DARTS = create_space("darts")
DARTS_V2 = Genotype(
    normal=[("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)],
    normal_concat=[2, 3, 4, 5],
    reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
            ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)],
    reduce_concat=[2, 3, 4, 5],
)  # fmt: skip


def test_registry_lists_both_spaces():
    assert list_spaces() == ["darts", "nb201"]


def test_nb201_string_round_trip_all_15625():
    archs = list(NB201.enumerate())
    assert len(archs) == 15625 == NB201.size and len(set(archs)) == 15625
    for a in archs:
        assert NB201.parse(str(a)) == a
        assert NB201Arch.from_genes(a.genes) == a


def test_nb201_strings_match_benchmark_table(nb201_table_path):
    with open(nb201_table_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 15625
    for row in rows:
        assert str(NB201.parse(row["arch"])) == row["arch"]  # the benchmark's exact format


def test_nb201_known_string_and_objects_are_hashable_and_picklable():
    a = NB201.parse(BEST)
    assert a.ops == ("nor_conv_3x3",) * 3 + ("skip_connect", "nor_conv_3x3", "nor_conv_3x3")
    assert a.edge(3, 0) == "skip_connect" and a.is_connected()
    assert pickle.loads(pickle.dumps(a)) == a and hash(a) == hash(NB201.parse(BEST))
    assert not NB201.parse("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|").is_connected()


@pytest.mark.parametrize(
    "text, needle",
    [
        ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|", "expected 3 nodes"),
        ("|conv_7x7~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown op 'conv_7x7'"),
        ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2 needs 2 input(s)"),
        ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "must be 'op~0'"),
        ("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2", "must be written"),
        ("Genotype(normal=[])", "looks like a DARTS genotype"),
    ],
)
def test_nb201_malformed_strings_name_the_problem(text, needle):
    with pytest.raises(InvalidArchitectureError, match=None) as info:
        NB201.parse(text)
    assert needle in str(info.value)


def test_nb201_neighbour_counts_and_distance():
    a = NB201.parse(BEST)
    for r, n in ((1, 24), (2, 240), (3, 1280)):
        nb = NB201.neighbors(a, r)
        assert len(nb) == len(set(nb)) == n == comb(6, r) * 4**r
        assert all(NB201.distance(a, b) == r for b in nb)
    with pytest.raises(ConfigError, match="radius"):
        NB201.neighbors(a, 7)


def test_nb201_operators_are_seeded_and_valid():
    rng1, rng2 = np.random.default_rng(3), np.random.default_rng(3)
    s1 = [NB201.sample(rng1) for _ in range(20)]
    assert s1 == [NB201.sample(rng2) for _ in range(20)]
    a, b = s1[0], s1[1]
    rng = np.random.default_rng(0)
    children = [NB201.crossover(a, b, rng) for _ in range(50)]
    assert all(all(c.ops[i] in (a.ops[i], b.ops[i]) for i in range(6)) for c in children)
    assert NB201.mutate(a, rng, prob=0.0) == a
    m = NB201.mutate(a, rng, prob=1.0)
    assert NB201.distance(a, m) == 6


def test_darts_round_trips():
    arch = DARTS.parse(DARTS_V2)

    def per_node(pairs):  # the two inputs of a node, as a set: their order carries no meaning
        return [frozenset(pairs[k : k + 2]) for k in range(0, 8, 2)]

    g = arch.to_genotype()
    assert per_node(g.normal) == per_node(DARTS_V2.normal) and per_node(g.reduce) == per_node(DARTS_V2.reduce)
    assert g.normal_concat == g.reduce_concat == [2, 3, 4, 5]
    assert DARTS.parse(g) == arch and DARTS.parse(g).to_genotype() == g
    assert DARTS.parse(arch.genes) == arch and DartsArch.from_genes(list(arch.genes)) == arch
    assert DARTS.parse(str(arch)) == arch and DARTS.parse(arch.to_json()) == arch
    assert DARTS.parse(",".join(map(str, arch.genes))) == arch
    rng = np.random.default_rng(0)
    for _ in range(200):
        a = DARTS.sample(rng)
        assert DARTS.parse(a.to_genotype()) == a and DARTS.parse(a.genes) == a
        assert DARTS.parse(str(a)) == a and pickle.loads(pickle.dumps(a)) == a
    # a genotype whose node inputs are listed in another order maps to the same architecture
    shuffled = DARTS_V2._replace(normal=[DARTS_V2.normal[1], DARTS_V2.normal[0], *DARTS_V2.normal[2:]])
    assert DARTS.parse(shuffled) == arch


@pytest.mark.parametrize(
    "mutate, needle",
    [
        (lambda g: g[:27], "28 entries"),
        (lambda g: (9,) + g[1:], "normal cell / edge 0->2: gene 9"),
        (lambda g: g[:14] + (4, 4, 4) + g[17:], "reduce cell / node 3: 3 non-none inputs"),
        (lambda g: (0, 0) + g[2:], "normal cell / node 2: 0 non-none inputs"),
    ],
)
def test_darts_bad_tuples_say_where(mutate, needle):
    genes = DARTS.parse(DARTS_V2).genes
    with pytest.raises(InvalidArchitectureError) as info:
        DARTS.parse(mutate(genes))
    assert needle in str(info.value)


def test_darts_bad_genotypes_and_strings():
    bad_op = DARTS_V2._replace(normal=[("sep_conv_9x9", 0), *DARTS_V2.normal[1:]])
    with pytest.raises(InvalidArchitectureError, match="op 'sep_conv_9x9' not in"):
        DARTS.parse(bad_op)
    dup = DARTS_V2._replace(normal=[("sep_conv_3x3", 0), ("sep_conv_5x5", 0), *DARTS_V2.normal[2:]])
    with pytest.raises(InvalidArchitectureError, match="used twice"):
        DARTS.parse(dup)
    with pytest.raises(InvalidArchitectureError, match="malformed DARTS genotype"):
        DARTS.parse("Genotype(normal=[(")
    with pytest.raises(InvalidArchitectureError, match="NB201"):
        DARTS.parse(BEST)
    with pytest.raises(InvalidArchitectureError, match="'nb201' space"):
        DARTS.parse(NB201.parse(BEST))


def test_darts_repair_keeps_two_inputs_per_node():
    rng = np.random.default_rng(1)
    for _ in range(100):
        genes = rng.integers(0, 8, size=28) * (rng.random(28) < 0.3)
        arch = DARTS.repair(genes.tolist(), rng)  # constructing validates 2 inputs per node
        kept = [g for g, r in zip(genes, arch.genes) if r and g and r == g]
        assert len(kept) <= 16


def test_darts_operators_mutate_both_cells_and_stay_valid():
    rng = np.random.default_rng(0)
    a = DARTS.sample(rng)
    changed = {"normal": 0, "reduce": 0}
    for _ in range(50):
        m = DARTS.mutate(a, rng, prob=0.2)
        changed["normal"] += m.normal != a.normal
        changed["reduce"] += m.reduce != a.reduce
    assert changed["normal"] > 10 and changed["reduce"] > 10
    b = DARTS.sample(rng)
    for _ in range(20):
        c = DARTS.crossover(a, b, rng)
        for cell in ("normal", "reduce"):
            assert all(x in (y, z) for x, y, z in zip(c.cell(cell), a.cell(cell), b.cell(cell)))


def test_darts_neighbourhood_moves():
    rng = np.random.default_rng(0)
    a = DARTS.sample(rng)
    moves = DARTS.moves(a)
    # per cell: 8 used edges x 6 other ops, plus connection adjustments 2 x (j-2) x 7 for j = 3, 4, 5
    assert len(moves) == len(set(moves)) == 2 * (8 * 6 + 7 * 2 * (1 + 2 + 3)) == 264
    assert all(DARTS.distance(a, b) == 1 for b in moves)
    assert sorted(DARTS.neighbors(a, 1)) == sorted(moves)
    two = DARTS.neighbors(a, 2)
    assert all(DARTS.distance(a, b) == 2 for b in two[:: max(1, len(two) // 300)])
    sample = DARTS.sample_neighbors(a, 3, 10, np.random.default_rng(0))
    assert len(sample) == 10 and all(DARTS.distance(a, b) == 3 for b in sample)
    with pytest.raises(ConfigError, match="sample_neighbors"):
        DARTS.neighbors(a, 3)


def test_darts_distance_is_symmetric_and_zero_on_self():
    rng = np.random.default_rng(2)
    archs = [DARTS.sample(rng) for _ in range(6)]
    for x, y in itertools.product(archs, archs):
        assert DARTS.distance(x, y) == DARTS.distance(y, x)
        assert (DARTS.distance(x, y) == 0) == (x == y)


def test_a_space_too_large_to_enumerate_says_so():
    with pytest.raises(ConfigError, match="cannot be enumerated; use a seeded sample"):
        next(iter(DARTS.enumerate()))

