"""Neighbourhoods, paths, barriers, KS statistics, accuracy sources and the landscape CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from math import comb
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from genas.tables import NB201Table
from genas.errors import ConfigError, InvalidArchitectureError
from genas.analysis.landscape import (
    PAPER_KS,
    PAPER_PAIRS,
    CallableSource,
    TableSource,
    TrainToThresholdSource,
    accuracy_path,
    barrier,
    evaluate,
    nb201_neighbor_codes,
    neighbor_tree,
    neighborhood,
    neighborhood_accuracies,
    neighborhood_ks,
    parse_tier,
    path_tree,
    pooled_neighbor_accuracies,
    sample_tree_neighbors,
    select_tier,
    tier_ks,
)
from genas.spaces import DartsSpace, NB201Arch, NB201Space

ROOT = Path(__file__).resolve().parents[1]
REAL_TABLE = Path(os.environ.get("GENAS_NB201_TABLE") or ROOT.parent / "shared/data/nb201/nb201_accuracy.csv")
NB201, DARTS = NB201Space(), DartsSpace()


@pytest.fixture(scope="module")
def real_table() -> NB201Table:
    if not REAL_TABLE.is_file():
        pytest.skip(f"NB201 table not found at {REAL_TABLE} (set GENAS_NB201_TABLE)")
    return NB201Table.from_csv(REAL_TABLE)


@pytest.fixture(scope="module")
def toy_table() -> NB201Table:
    """Made-up complete table: accuracy = 10 * (number of nor_conv_3x3 edges) + 0.1 * (number of skips)."""
    genes = np.array([a.genes for a in NB201.enumerate()])
    acc = 10.0 * (genes == 3).sum(1) + 0.1 * (genes == 1).sum(1)
    archs = [NB201Arch.from_genes(g) for g in genes]
    return NB201Table(range(len(archs)), archs, {"cifar10_test": acc, "cifar100_test": acc / 2}, source="toy")


# ---- neighbourhoods ---------------------------------------------------------------------
@pytest.mark.parametrize(("radius", "count"), [(1, 24), (2, 240), (3, 1280)])
def test_nb201_neighbour_counts_and_vectorised_form(radius: int, count: int) -> None:
    arch = NB201.sample(np.random.default_rng(radius))
    nbrs = neighborhood(arch, radius)
    assert len(nbrs) == len(set(nbrs)) == count
    assert all(NB201.distance(arch, n) == radius for n in nbrs)
    codes = nb201_neighbor_codes([arch.code, 0], radius)
    assert codes.shape == (2, count)
    assert set(codes[0].tolist()) == {n.code for n in nbrs}
    assert set(codes[1].tolist()) == {n.code for n in neighborhood(NB201Arch.from_code(0), radius)}


def test_nb201_neighbour_tree_levels() -> None:
    tree = neighbor_tree(NB201.sample(np.random.default_rng(0)), 3)
    assert tree.level_sizes == [1, 24, 240, 1280]
    for r, level in enumerate(tree.levels):
        assert all(NB201.distance(tree.root, a) == r for a in level)


def test_darts_radius1_and_tree_never_undoes_a_move() -> None:
    rng = np.random.default_rng(0)
    root = DARTS.sample(rng)
    assert len(neighborhood(root, 1)) == 264
    assert neighbor_tree(root, 1).level_sizes == [1, 264]
    tree = neighbor_tree(root, 3, k=4, rng=rng)
    for r, edges in enumerate(tree.edges):
        for i, j in edges:
            parent, child = tree.levels[r][i], tree.levels[r + 1][j]
            before = {g for g, (x, y) in enumerate(zip(root.genes, parent.genes)) if x != y}
            move = {g for g, (x, y) in enumerate(zip(parent.genes, child.genes)) if x != y}
            assert move and not move & before  # a move never touches a slot an earlier move changed
            assert DARTS.distance(root, child) == r + 1
    sample = sample_tree_neighbors(root, 2, 5, rng)
    assert len(sample) == 5 and all(DARTS.distance(root, a) == 2 for a in sample)
    assert len(neighborhood(root, 3, k=3, rng=rng)) == 3


def test_neighbourhood_errors() -> None:
    arch = NB201.sample(np.random.default_rng(0))
    with pytest.raises(ConfigError, match=r"radius.*\[1, 6\]"):
        neighborhood(arch, 7)
    with pytest.raises(ConfigError, match=r"\[1, 6\]"):
        nb201_neighbor_codes([0], 7)
    with pytest.raises(ConfigError, match=r"depth.*\[0, 6\]"):
        neighbor_tree(arch, 7)
    with pytest.raises(ConfigError, match="rng"):
        neighborhood(arch, 1, k=3)


# ---- paths and barriers -----------------------------------------------------------------
@pytest.mark.parametrize("k", range(0, 7))
def test_nb201_path_levels_are_binomial(k: int) -> None:
    rng = np.random.default_rng(k)
    a = NB201.sample(rng)
    genes = list(a.genes)
    for e in rng.choice(6, size=k, replace=False):
        genes[e] = (genes[e] + int(rng.integers(1, 5))) % 5
    b = NB201Arch.from_genes(genes)
    tree = path_tree(a, b)
    assert tree.distance == k and tree.level_sizes == [comb(k, i) for i in range(k + 1)]
    assert tree.levels[0] == (a,) and tree.levels[-1] == (b,)
    assert path_tree(b, a).level_sizes == tree.level_sizes  # symmetric


def test_darts_path_uses_distance_decreasing_moves() -> None:
    rng = np.random.default_rng(3)
    a = DARTS.sample(rng)
    b = a
    for _ in range(2):
        b = DARTS.random_move(b, rng)
    tree = path_tree(a, b)
    assert tree.levels[-1] == (b,) and tree.distance == DARTS.distance(a, b)
    for r, level in enumerate(tree.levels):
        assert all(DARTS.distance(x, b) == tree.distance - r for x in level)


def test_path_between_spaces_is_refused() -> None:
    with pytest.raises(InvalidArchitectureError, match="different spaces"):
        path_tree(NB201.sample(np.random.default_rng(0)), DARTS.sample(np.random.default_rng(0)))
    with pytest.raises(ConfigError, match="space="):
        path_tree("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")


def test_barrier_forms_on_made_up_values() -> None:
    v = [90.0, 80.0, 85.0, 88.0]
    assert barrier(v).raw == pytest.approx(9.0) and barrier(v).normalized == pytest.approx(9.0 / 89.0)
    assert barrier(v, "path").raw == pytest.approx(9.0)
    assert barrier(v, "reference").raw == pytest.approx(5.0)  # (90 + 80) / 2 - 80
    rising = [80.0, 90.0, 90.0, 80.0]
    assert barrier(rising).raw == pytest.approx(-10.0) and barrier(rising, "path").raw == 0.0
    assert barrier([70.0, 72.0]).raw == pytest.approx(1.0)  # adjacent: the endpoints are the path
    with pytest.raises(ConfigError, match="'form'"):
        barrier(v, "max")


def test_barrier_on_a_made_up_table(toy_table: NB201Table) -> None:
    a = NB201Arch(("nor_conv_3x3",) * 6)  # 60
    b = NB201Arch(("none", "none", "none", "nor_conv_3x3", "nor_conv_3x3", "nor_conv_3x3"))  # 30
    ap = accuracy_path(path_tree(a, b), TableSource(toy_table, "cifar10"))
    np.testing.assert_allclose(ap.values, [60, 50, 40, 30])
    assert ap.tree.level_sizes == [1, 3, 3, 1]
    assert ap.barrier().raw == pytest.approx(5.0) and ap.barrier().normalized == pytest.approx(5.0 / 45.0)
    c = NB201Arch(("nor_conv_3x3", "none", "none", "nor_conv_3x3", "none", "none"))  # 20
    d = NB201Arch(("none", "nor_conv_3x3", "nor_conv_3x3", "none", "nor_conv_3x3", "nor_conv_3x3"))  # 40
    ap = accuracy_path(path_tree(c, d), TableSource(toy_table, "c10"))
    assert ap.tree.level_sizes == [comb(6, k) for k in range(7)]
    # a level-k architecture takes k of d's edges: on average 4k/6 of d's convs and 2 - 2k/6 of c's
    np.testing.assert_allclose(ap.values, [20.0] + [10 * (2 + k / 3) for k in range(1, 6)] + [40.0])
    assert ap.barrier().raw == pytest.approx(30.0 - 10 * (2 + 1 / 3))


# ---- KS statistics ----------------------------------------------------------------------
def test_ks_on_a_made_up_table(toy_table: NB201Table) -> None:
    whole = toy_table.column("c10")
    members = select_tier(whole, 40, 41, name="T")  # exactly four nor_conv_3x3 edges
    assert members.size == comb(6, 4) * 4**2
    pooled = pooled_neighbor_accuracies(toy_table.column_by_code("c10"), toy_table.codes[members], 2)
    brute = np.concatenate([toy_table.accuracy(neighborhood(toy_table.archs[m], 2), "c10") for m in members])
    np.testing.assert_array_equal(np.sort(pooled), np.sort(brute))
    res = tier_ks(toy_table, "cifar10", "T", 40, 41, 2, bins=10)
    assert (res.members, res.samples) == (members.size, members.size * 240)
    assert res.statistic == pytest.approx(stats.ks_2samp(brute, whole).statistic)
    assert res.histogram is not None and len(res.histogram[0]) == 10
    generic = neighborhood_accuracies([toy_table.archs[m] for m in members[:5]], 1, TableSource(toy_table))
    np.testing.assert_array_equal(np.sort(generic), np.sort(pooled_neighbor_accuracies(
        toy_table.column_by_code("c10"), toy_table.codes[members[:5]], 1)))  # fmt: skip


def test_ks_errors(toy_table: NB201Table) -> None:
    with pytest.raises(ConfigError, match=r"tier X \[95, 99\] selects no architecture \(accuracies span 0.00..60.00\)"):
        neighborhood_ks(toy_table, "c10", {"X": (95, 99)})
    with pytest.raises(ConfigError, match="low <= high"):
        select_tier(toy_table.column("c10"), 50, 40)
    with pytest.raises(ConfigError, match=r"\[1, 6\]"):
        tier_ks(toy_table, "c10", "A", 40, 41, 7)
    assert parse_tier("A=92.3:93.7") == ("A", 92.3, 93.7)
    with pytest.raises(ConfigError, match="NAME=LOW:HIGH"):
        parse_tier("A=92.3")
    partial = NB201Table([0, 1], toy_table.archs[:2], {"cifar10_test": [1.0, 2.0]})
    with pytest.raises(ConfigError, match="full 15,625-row table"):
        tier_ks(partial, "c10", "A", 0, 5, 1)


# ---- sources ----------------------------------------------------------------------------
def test_sources(toy_table: NB201Table) -> None:
    archs = toy_table.archs[:4]
    np.testing.assert_array_equal(TableSource(toy_table, "c100")(archs), toy_table.column("c100")[:4])
    with pytest.raises(ConfigError, match="no column 'cifar10_valid'"):
        TableSource(toy_table, "c10", "valid")
    calls = []
    src = CallableSource(lambda a: calls.append(a) or float(a.code))
    np.testing.assert_array_equal(src(archs + archs), [a.code for a in archs] * 2)
    assert len(calls) == 4
    with pytest.raises(ConfigError, match=r"shape \(2, 2\) for 4 architectures"):
        evaluate(lambda xs: np.zeros((2, 2)), archs)


class _TinyNet:
    """model_fn: a linear classifier whose width depends on the architecture's first gene."""

    def __call__(self, arch: NB201Arch):
        import torch

        width = 4 + arch.genes[0]
        return torch.nn.Sequential(torch.nn.Linear(8, width), torch.nn.ReLU(), torch.nn.Linear(width, 2))


def _loaders():
    import torch

    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 8, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    return [(x[i : i + 32], y[i : i + 32]) for i in range(0, 64, 32)], [(x[64:], y[64:])]


def test_train_to_threshold_source() -> None:
    train, valid = _loaders()
    archs = [NB201Arch.from_code(c) for c in (0, 3125 * 3)]
    src = TrainToThresholdSource(_TinyNet(), train, valid, loss_threshold=0.5, max_epochs=50, lr=0.3)
    with pytest.warns(UserWarning, match="one full training each"):
        acc = src(archs)
    assert acc.shape == (2,) and np.all((acc >= 0) & (acc <= 100))
    assert all(r.reached and r.train_loss < 0.5 for r in src.records)
    with pytest.warns(UserWarning):
        assert np.array_equal(src(archs), acc)  # seeded: the same accuracies again
    stuck = TrainToThresholdSource(_TinyNet(), train, valid, loss_threshold=1e-9, max_epochs=2)
    with pytest.warns(UserWarning) as caught:
        stuck(archs[:1])
    assert any("still above" in str(w.message) for w in caught)
    assert stuck.records[0].epochs == 2 and not stuck.records[0].reached
    with pytest.raises(ConfigError, match="'loss_threshold'"):
        TrainToThresholdSource(_TinyNet(), train, valid, loss_threshold=-1)


# ---- the paper, on the real table -------------------------------------------------------
def test_paper_barrier_ordering(real_table: NB201Table) -> None:
    for ds, pairs in PAPER_PAIRS.items():
        source = TableSource(real_table, ds)
        bars = [accuracy_path(path_tree(real_table.arch(a), real_table.arch(b)), source).barrier().raw
                for a, b in pairs.values()]  # fmt: skip
        assert bars[0] < bars[1] < bars[2], (ds, bars)


def test_paper_table8_ks_within_0015(real_table: NB201Table) -> None:
    for ds in ("cifar10", "cifar100", "imagenet16"):
        for res in neighborhood_ks(real_table, ds):
            paper = PAPER_KS.get((ds, res.tier, res.radius))
            if paper is not None:
                assert abs(res.statistic - paper[0]) <= 0.015, (res, paper)


# ---- the command-line tool --------------------------------------------------------------
def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != "GENAS_NB201_TABLE"} | (env or {})
    return subprocess.run([sys.executable, str(ROOT / "tools/landscape.py"), *args], capture_output=True, text=True,
                          cwd=ROOT, env=full_env, timeout=60)  # fmt: skip


def test_cli_user_mistakes_exit_2_with_one_line(tmp_path: Path) -> None:
    csv = tmp_path / "t.csv"
    csv.write_text("index,arch,cifar10_test\n0,|none~0|+|none~0|none~1|+|none~0|none~1|none~2|,10.0\n")
    cases = [
        ("path", "--a", "0", "--b", "1"),  # no table anywhere
        ("path", "--table", str(csv), "--a", "0", "--b", "99999"),  # index out of range
        ("neighbourhood", "--table", str(csv), "--tier", "A=1"),  # malformed tier
        ("neighborhood", "--radius", "x"),  # argparse mistake
        ("path", "--table", str(csv), "--dataset", "cifar1000", "--pairs", "paper"),
    ]
    for args in cases:
        proc = _cli(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, proc.stderr)
        assert "Traceback" not in proc.stderr


def test_cli_in_process_on_the_real_table(real_table: NB201Table, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import landscape as tool
    finally:
        sys.path.remove(str(ROOT / "tools"))
    common = ["--table", str(REAL_TABLE), "--out", str(tmp_path)]
    assert tool.main(["path", *common, "--pairs", "paper", "--dataset", "all"]) == 0
    out = capsys.readouterr().out
    assert out.count("barrier(A) < barrier(B) < barrier(C): yes") == 3
    assert (tmp_path / "paths.json").is_file()
    assert tool.main(["neighborhood", *common, "--dataset", "in16", "--radius", "1", "--bins", "0"]) == 0
    assert (tmp_path / "ks.csv").read_text().count("\n") == 4  # header + tiers A, B, C
