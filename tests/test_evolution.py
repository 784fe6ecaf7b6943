"""Search algorithms (evolution, rea, random), constraints and the search runner."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import torch.nn as nn

from evolution import (
    Constraint,
    Evolution,
    RandomSearch,
    RegularizedEvolution,
    SearchAlgorithm,
    algorithm_from_config,
    count_flops,
    count_params,
    create_algorithm,
    list_algorithms,
    read_history,
    run_search,
)
from evolution.config import SearchConfig
from genas.errors import ConfigError, UnknownNameError
from genas.spaces import DartsSpace, NB201Arch, NB201Space

NB201 = NB201Space()
SMALL = {  # a few hundred queries per algorithm, so every test stays fast
    "evolution": dict(population=20, topk=5, mutations=8, crossovers=8, iterations=6),
    "rea": dict(population=10, sample_size=3, cycles=110),
    "random": dict(num_samples=120, batch_size=16),
}


def conv3(archs):
    """Synthetic fitness: the number of nor_conv_3x3 edges (optimum 6, a single architecture)."""
    return [a.ops.count("nor_conv_3x3") for a in archs]


def smooth(archs):
    """A fitness with few ties: conv3 plus a small per-architecture term."""
    return [a.ops.count("nor_conv_3x3") + 1e-5 * a.code for a in archs]


def drive(algo: SearchAlgorithm, fitness=smooth, steps: int | None = None) -> SearchAlgorithm:
    n = 0
    while not algo.done and (steps is None or n < steps):
        batch = algo.ask()
        algo.tell(batch, fitness(batch))
        n += 1
    return algo


def trace(algo: SearchAlgorithm) -> list[tuple[str, float, int]]:
    return [(str(i.arch), i.score, i.generation) for i in algo.history]


# ---- the algorithms ---------------------------------------------------------------------------
def test_registry_lists_the_three_algorithms():
    assert list_algorithms() == ["evolution", "random", "rea"]
    with pytest.raises(UnknownNameError, match="Did you mean 'evolution'"):
        create_algorithm("evolutoin", NB201)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_no_architecture_is_scored_twice(name):
    calls: Counter = Counter()

    def fitness(archs):
        calls.update(archs)
        return smooth(archs)

    algo = drive(create_algorithm(name, NB201, seed=1, **SMALL[name]), fitness)
    assert algo.num_scored == algo.total_queries == sum(calls.values())
    assert max(calls.values()) == 1
    assert algo.ask() == [] and algo.done


def test_evolution_finds_the_optimum_and_keeps_its_schedule():
    algo = Evolution(NB201, seed=0, population=20, topk=5, mutations=8, crossovers=8, iterations=8)
    sizes = []
    while not algo.done:
        batch = algo.ask()
        sizes.append(len(batch))
        algo.tell(batch, conv3(batch))
    assert sizes == [20] * 8 and algo.generation == 8
    assert algo.best.score == 6 and algo.best.arch == NB201Arch(("nor_conv_3x3",) * 6)
    assert len(algo.top) == 5 and [i.score for i in algo.top] == sorted((i.score for i in algo.top), reverse=True)
    assert len(algo.members) == 20 and all(i.generation == 7 for i in algo.members)


def test_evolution_children_come_from_the_top_k():
    algo = drive(Evolution(NB201, seed=2, population=40, topk=5, mutations=20, crossovers=10), steps=1)
    parents = [i.arch for i in algo.top]
    batch = algo.ask()
    mutants, crosses = batch[:20], batch[20:30]
    dist = [min(NB201.distance(c, p) for p in parents) for c in mutants]
    # each gene changes with p = 0.1; a child equal to its parent is re-drawn: E[distance | >= 1] = 0.6 / (1 - 0.9**6)
    assert min(dist) >= 1 and np.mean(dist) < 2.0
    for child in crosses:  # every gene of a crossover child comes from some top-k parent
        assert all(any(child.ops[e] == p.ops[e] for p in parents) for e in range(6))


def test_mutation_changes_genes_with_the_given_probability():
    rng = np.random.default_rng(0)
    parent = NB201.sample(rng)
    changed = np.mean([[x != y for x, y in zip(parent.ops, NB201.mutate(parent, rng, 0.1).ops)] for _ in range(3000)])
    assert 0.09 < changed < 0.11


def test_darts_evolution_mutates_both_cells():
    space = DartsSpace()
    algo = Evolution(space, seed=0, population=30, topk=5, mutations=30, crossovers=0)
    drive(algo, lambda b: [0.0] * len(b), steps=1)
    changed = Counter()
    for child in algo.ask():
        parent = min((i.arch for i in algo.top), key=lambda p: space.distance(child, p))
        changed["normal"] += child.normal != parent.normal
        changed["reduce"] += child.reduce != parent.reduce
    assert changed["normal"] > 5 and changed["reduce"] > 5


def test_rea_ages_out_the_oldest_and_moves_one_step():
    algo = RegularizedEvolution(NB201, seed=0, population=10, sample_size=3, cycles=40)
    drive(algo, steps=1)
    for _ in range(40):
        members = [i.arch for i in algo.members]
        (child,) = algo.ask()
        assert min(NB201.distance(child, m) for m in members) == 1  # a radius-1 move of a member
        algo.tell([child], smooth([child]))
        assert [i.arch for i in algo.members] == members[1:] + [child]  # the oldest died
    assert algo.done and algo.num_scored == 50


def test_rea_and_random_reach_the_optimum_region():
    rea = drive(RegularizedEvolution(NB201, seed=0, population=10, sample_size=3, cycles=290), conv3)
    assert rea.best.score == 6
    rnd = drive(RandomSearch(NB201, seed=0, num_samples=300, batch_size=7), conv3)
    assert rnd.best.score >= 4 and len({i.arch for i in rnd.history}) == 300


def test_random_search_stops_when_the_feasible_space_is_exhausted():
    prefix = ("skip_connect",) * 4
    algo = RandomSearch(NB201, seed=0, num_samples=30, constraint=lambda a: a.ops[:4] == prefix)
    drive(algo)
    assert algo.done and algo.num_scored == 25  # 5 x 5 choices on the last two edges


def test_max_queries_truncates_and_keeps_the_prefix():
    full = drive(Evolution(NB201, seed=4, **{**SMALL["evolution"], "iterations": 4}))
    capped = drive(Evolution(NB201, seed=4, **{**SMALL["evolution"], "iterations": 4}, max_queries=33))
    assert capped.num_scored == 33 and trace(capped) == trace(full)[:33]


def test_ask_is_idempotent_until_tell():
    algo = RandomSearch(NB201, seed=0, num_samples=10, batch_size=4)
    first = algo.ask()
    assert algo.ask() == first
    with pytest.raises(ValueError, match="exactly the batch"):
        algo.tell(first[:2], [0.0, 0.0])
    with pytest.raises(ValueError, match="2 scores for 4"):
        algo.tell(first, [0.0, 0.0])


def test_nan_scores_rank_last():
    algo = RandomSearch(NB201, seed=0, num_samples=8, batch_size=8)
    batch = algo.ask()
    algo.tell(batch, [np.nan, 1.0] + [np.nan] * 6)
    assert algo.best.arch == batch[1]


@pytest.mark.parametrize("name", sorted(SMALL))
def test_state_dict_round_trip_continues_identically(name):
    make = lambda: create_algorithm(name, NB201, seed=7, **SMALL[name])  # noqa: E731
    a = drive(make(), steps=3)
    a.ask()  # a pending batch is part of the state too
    b = make()
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    assert b.generation == a.generation and trace(b) == trace(a)
    assert trace(drive(b)) == trace(drive(a)) and a.num_scored == a.total_queries


def test_load_state_dict_refuses_other_settings():
    state = drive(Evolution(NB201, seed=0, **SMALL["evolution"]), steps=1).state_dict()
    with pytest.raises(ConfigError, match=r"other settings: params .*'topk': 5"):
        Evolution(NB201, seed=0, **{**SMALL["evolution"], "topk": 6}).load_state_dict(state)
    with pytest.raises(ConfigError, match="seed 0 \\(now 1\\)"):
        Evolution(NB201, seed=1, **SMALL["evolution"]).load_state_dict(state)


# ---- parameters ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: Evolution(NB201, population=1),
         "The 'population' parameter of Evolution must be an int in the range [2, inf). Got 1 instead."),
        (lambda: Evolution(NB201, population=10, topk=11),
         "The 'topk' parameter of Evolution must be an int in the range [1, 10]. Got 11 instead."),
        (lambda: Evolution(NB201, mutation_prob=1.5),
         "The 'mutation_prob' parameter of Evolution must be a float in the range [0.0, 1.0]. Got 1.5 instead."),
        (lambda: Evolution(NB201, population=10, topk=2, mutations=6, crossovers=6),
         "The 'mutations' and 'crossovers' parameters of Evolution must sum to at most population (10). Got 6 + 6"),
        (lambda: RegularizedEvolution(NB201, population=5, sample_size=6),
         "The 'sample_size' parameter of RegularizedEvolution must be an int in the range [1, 5]. Got 6 instead."),
        (lambda: RandomSearch(NB201, num_samples=0),
         "The 'num_samples' parameter of RandomSearch must be an int in the range [1, inf). Got 0 instead."),
        (lambda: RandomSearch(NB201, max_queries=2.5),
         "The 'max_queries' parameter of RandomSearch must be an int in the range [1, inf). Got 2.5 instead."),
        (lambda: RandomSearch("nb201"), "The 'space' parameter of RandomSearch must be a SearchSpace."),
    ],
)  # fmt: skip
def test_invalid_parameters_raise_sklearn_style_messages(make, message):
    with pytest.raises(ConfigError) as info:
        make()
    assert str(info.value).startswith(message)


def test_unknown_keyword_is_an_error_not_ignored():
    with pytest.raises(TypeError, match="mutation_rate"):
        create_algorithm("evolution", NB201, mutation_rate=0.2)


def test_algorithm_from_config_forwards_only_the_fields_taken():
    cfg = SearchConfig(options=dict(population=30, topk=6, mutations=10, crossovers=12, mutation_prob=0.2, iterations=3))
    evo = algorithm_from_config(cfg, NB201, seed=3)
    assert evo.params() == dict(population=30, topk=6, mutations=10, crossovers=12, mutation_prob=0.2,
                                iterations=3, max_queries=None)  # fmt: skip
    rea = algorithm_from_config(SearchConfig(algorithm="rea", options={"population": 20}), NB201)
    assert (rea.population, rea.sample_size, rea.cycles) == (20, 10, 950)
    rnd = algorithm_from_config(SearchConfig(algorithm="random"), NB201)
    assert rnd.params() == dict(num_samples=1000, batch_size=50, max_queries=None)


# ---- constraints --------------------------------------------------------------------------------
def test_count_flops_and_params_on_a_tiny_conv_net():
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),  # 8x8 out: 8*64 outputs x 3*9 MACs = 13,824
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=4),  # 4x4 out: 8*16 x (8/4)*9 = 2,304
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 10),  # 10 x 8 = 80
    )
    assert count_flops(net, (1, 3, 8, 8)) == 13_824 + 2_304 + 80
    assert count_flops(net, (2, 3, 8, 8)) == 2 * (13_824 + 2_304 + 80)
    assert count_params(net) == 216 + (8 * 2 * 9 + 8) + (80 + 10)
    assert net.training  # the mode is restored


def test_constraint_from_budgets_and_config():
    cost = lambda arch: (arch.ops.count("nor_conv_3x3") * 0.5, 100.0)  # noqa: E731
    c = Constraint(cost, max_params=1.0, max_flops=200)
    assert c.describe() == "params <= 1 M (search.max_params) and FLOPs <= 200 MFLOPs (search.max_flops)"
    algo = drive(Evolution(NB201, seed=0, constraint=c, **SMALL["evolution"]), conv3)
    assert all(cost(i.arch)[0] <= 1.0 for i in algo.history) and algo.best.score == 2
    assert Constraint.from_config(SearchConfig(), cost) is None
    assert Constraint.from_config(SearchConfig(max_flops=50.0), cost).max_flops == 50.0


@pytest.mark.parametrize("name", sorted(SMALL))
def test_constraint_nothing_can_meet_raises(name):
    c = Constraint(lambda arch: (5.0, 100.0), max_params=1.0)
    algo = create_algorithm(name, NB201, seed=0, constraint=c, **SMALL[name])
    with pytest.raises(ConfigError, match=r"constraints no architecture can meet: params <= 1 M \(search.max_params\)"):
        algo.ask()


# ---- the runner ---------------------------------------------------------------------------------
def make_evolution(**kw):
    return Evolution(NB201, seed=3, population=12, topk=4, mutations=4, crossovers=4, iterations=4, **kw)


def rows(path):
    return [(r["index"], r["generation"], r["arch"], r["score"]) for r in read_history(path / "history.jsonl")]


def test_run_search_writes_history_state_best_and_curve(tmp_path):
    res = run_search(make_evolution(), smooth, tmp_path, progress=False, metadata={"scorer": "conv3"})
    assert res.num_scored == res.scored_now == 48 and res.reused == 0
    hist = read_history(tmp_path / "history.jsonl")
    assert [r["index"] for r in hist] == list(range(48)) and [r["generation"] for r in hist[:13]] == [0] * 12 + [1]
    best = json.loads((tmp_path / "best_arch.json").read_text())
    assert best["arch"] == str(res.best.arch) and best["score"] == res.best.score == max(r["score"] for r in hist)
    assert (best["scorer"], best["algorithm"], best["seed"], best["num_scored"]) == ("conv3", "evolution", 3, 48)
    assert json.loads((tmp_path / "search_state.json").read_text())["history_lines"] == 48
    assert (tmp_path / "search_curve.png").stat().st_size > 0
    assert [r["generation"] for r in res.curve] == [0, 1, 2, 3]
    assert all(b >= a for a, b in zip([r["best"] for r in res.curve], [r["best"] for r in res.curve][1:]))
    with pytest.raises(ConfigError, match="already holds a search .* --resume"):
        run_search(make_evolution(), smooth, tmp_path, progress=False)


def test_run_search_darts_history_has_genotypes(tmp_path):
    algo = Evolution(DartsSpace(), seed=0, population=6, topk=2, mutations=2, crossovers=2, iterations=2)
    run_search(algo, lambda b: [float(sum(a.genes)) for a in b], tmp_path, progress=False)
    rec = read_history(tmp_path / "history.jsonl")[0]
    assert DartsSpace().parse(rec["genotype"]) == DartsSpace().parse(rec["arch"])
    assert "genotype" in json.loads((tmp_path / "best_arch.json").read_text())


@pytest.mark.parametrize("interrupt_after", [5, 17, 36])  # in generation 0, mid generation 1, at the end of 2
def test_resume_scores_nothing_twice_and_matches_an_uninterrupted_run(tmp_path, interrupt_after):
    ref = run_search(make_evolution(), smooth, tmp_path / "ref", progress=False)
    calls: Counter = Counter()
    limit = [interrupt_after]

    def fitness(archs):
        if sum(calls.values()) >= limit[0]:
            raise KeyboardInterrupt
        calls.update(str(a) for a in archs)
        return smooth(archs)

    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_search(make_evolution(), fitness, out, progress=False)
    with (out / "history.jsonl").open("a") as fh:
        fh.write('{"index": 99, "gener')  # a write cut off by the interruption
    limit[0] = 10**9
    res = run_search(make_evolution(), fitness, out, resume=True, progress=False)
    assert set(calls.values()) == {1} and len(calls) == 48  # every architecture scored exactly once
    assert res.reused == interrupt_after % 12 and res.scored_now == 48 - interrupt_after
    assert rows(out) == rows(tmp_path / "ref")
    assert [(str(i.arch), i.score) for i in res.history] == [(str(i.arch), i.score) for i in ref.history]
    best, best_ref = (json.loads((d / "best_arch.json").read_text()) for d in (out, tmp_path / "ref"))
    assert best == best_ref


def test_resume_reuses_the_scores_of_the_interrupted_generation(tmp_path):
    n = 0

    def fitness(archs):
        nonlocal n
        n += len(archs)
        if n > 17:
            raise KeyboardInterrupt
        return smooth(archs)

    with pytest.raises(KeyboardInterrupt):
        run_search(make_evolution(), fitness, tmp_path, progress=False)
    res = run_search(make_evolution(), smooth, tmp_path, resume=True, progress=False)
    assert res.reused == 5 and res.scored_now == 48 - 17  # 12 in the saved state, 5 from history.jsonl


def test_resume_with_other_settings_is_refused(tmp_path):
    run_search(make_evolution(max_queries=20), smooth, tmp_path, progress=False)
    with pytest.raises(ConfigError, match="other settings"):
        run_search(make_evolution(), smooth, tmp_path, resume=True, progress=False)


def test_fitness_returning_the_wrong_length_is_reported():
    with pytest.raises(ValueError, match="returned 1 scores for 12"):
        run_search(make_evolution(), lambda archs: [0.0], None, progress=False, chunk_size=12)
