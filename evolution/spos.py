"""Evolutionary search of SPOS and GeNAS (the SPEC section 4 defaults).

Guo et al., "Single Path One-Shot Neural Architecture Search with Uniform Sampling", ECCV 2020,
section 3.4; GeNAS (Jeong et al., IJCAI 2023) and RLNAS (Zhang et al., ICCV 2021) search with the
same routine.  Generation 0 draws ``population`` architectures at random.  Every later generation
keeps the ``topk`` best architectures scored so far and proposes

* ``mutations`` children: a random top-k parent, each gene changed with ``mutation_prob``
  (``space.mutate``; in the DARTS space both the normal and the reduce cell mutate),
* ``crossovers`` children: uniform crossover of two distinct random top-k parents,
* random architectures to refill the batch to ``population``,

repairing after every operator.  A child already visited (or failing the constraint) is re-drawn,
at most ``10 x`` the number wanted (as the SPOS reference code does); the shortfall is filled at
random.  ``iterations`` generations of ``population`` give ``population x iterations`` candidates
(1,000 by default), none scored twice.  RLNAS's NB201 variant: ``population=100, topk=30,
mutations=50, crossovers=50``.

Example:
    >>> from genas.spaces import create_space
    >>> algo = Evolution(create_space("nb201"), seed=0, population=20, topk=5, mutations=8,
    ...                  crossovers=8, iterations=10)
    >>> while not algo.done:
    ...     batch = algo.ask()
    ...     algo.tell(batch, [a.genes.count(3) for a in batch])  # number of nor_conv_3x3 edges
    >>> algo.best.score, algo.num_scored
    (6.0, 200)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from genas.errors import ConfigError
from genas.spaces.base import SearchSpace
from genas.validation import Interval

from evolution.base import ALGORITHMS, Individual, SearchAlgorithm, _fitness

__all__ = ["Evolution"]


@ALGORITHMS.register("evolution", description="SPOS/GeNAS evolution: top-k, mutation, crossover, random refill")
class Evolution(SearchAlgorithm):
    """SPOS evolutionary search (see the module docstring).

    Args:
        space: Search space (its ``sample``, ``mutate``, ``crossover`` and ``repair`` are used).
        seed: Seed of the algorithm's generator.
        constraint: Optional predicate ``constraint(arch) -> bool``.
        population: Candidates per generation.
        topk: Parents kept: the best ``topk`` architectures scored so far.
        mutations: Mutated children per generation.
        crossovers: Crossover children per generation.
        mutation_prob: Per-gene mutation probability.
        iterations: Generations, the random one included.
        max_queries: Optional cap on the number of architectures scored.
    """

    name = "evolution"
    _params = ("population", "topk", "mutations", "crossovers", "mutation_prob", "iterations")
    constraints = {
        "population": Interval(int, 2), "topk": Interval(int, 1, "population"), "mutations": Interval(int, 0),
        "crossovers": Interval(int, 0), "mutation_prob": Interval(float, 0.0, 1.0), "iterations": Interval(int, 1),
    }  # fmt: skip
    operator_tries = 10  # SPOS reference code: max_iters = 10 x the number of children wanted

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        constraint: Callable[[Any], bool] | None = None,
        population: int = 50,
        topk: int = 10,
        mutations: int = 25,
        crossovers: int = 25,
        mutation_prob: float = 0.1,
        iterations: int = 20,
        max_queries: int | None = None,
    ) -> None:
        opts = self.check_options(dict(population=population, topk=topk, mutations=mutations, crossovers=crossovers,
                                       mutation_prob=mutation_prob, iterations=iterations))  # fmt: skip
        self.population, self.topk, self.mutations = opts["population"], opts["topk"], opts["mutations"]
        self.crossovers, self.mutation_prob, self.iterations = opts["crossovers"], opts["mutation_prob"], opts["iterations"]
        super().__init__(space, seed, constraint, max_queries)
        self.top: list[Individual] = []

    @classmethod
    def _check_more(cls, values: dict[str, Any], owner: str) -> None:
        n = values.get("population", 50)
        m, c = values.get("mutations", 25), values.get("crossovers", 25)
        if m + c > n:
            raise ConfigError(f"The 'mutations' and 'crossovers' parameters of {owner} must sum to at most population "
                              f"({n}). Got {m} + {c} instead.")  # fmt: skip

    # ---- proposals -----------------------------------------------------------------
    def _mutant(self) -> Any:
        parent = self.top[int(self.rng.integers(len(self.top)))]
        return self.space.repair(self.space.mutate(parent.arch, self.rng, self.mutation_prob), self.rng)

    def _crossover_child(self) -> Any:
        if len(self.top) >= 2:
            i, j = (int(x) for x in self.rng.choice(len(self.top), size=2, replace=False))
        else:
            i = j = 0
        return self.space.repair(self.space.crossover(self.top[i].arch, self.top[j].arch, self.rng), self.rng)

    def _propose(self) -> list[Any]:
        taken: dict[Any, None] = {}
        batch: list[Any] = []
        if self.top:
            batch += self._unique(self._mutant, self.mutations, self.operator_tries * self.mutations, taken)
            batch += self._unique(self._crossover_child, self.crossovers, self.operator_tries * self.crossovers, taken)
        batch += self._random(self.population - len(batch), taken)
        return batch

    def _update(self, batch: list[Individual]) -> None:
        # stable sort: among equal scores the earlier-scored individual ranks first
        self.top = sorted(self.top + batch, key=lambda ind: -_fitness(ind.score))[: self.topk]

    def _finished(self) -> bool:
        return self.generation >= self.iterations

    def _planned_queries(self) -> int:
        return self.population * self.iterations

    # ---- state ---------------------------------------------------------------------
    def _extra_state(self) -> dict[str, Any]:
        position = {ind.arch: i for i, ind in enumerate(self.history)}
        return {"top": [position[ind.arch] for ind in self.top]}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.top = [self.history[int(i)] for i in state["top"]]
