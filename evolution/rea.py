"""Regularized (aging) evolution.

Real, Aggarwal, Huang and Le, "Regularized Evolution for Image Classifier Architecture Search",
AAAI 2019, Algorithm 1.  A queue of ``population`` individuals starts at random; each cycle
samples ``sample_size`` members uniformly with replacement (a tournament), mutates the best of
them with a single radius-1 move and appends the child, and the *oldest* member dies.  The
NAS-Bench-201 paper (Dong & Yang, ICLR 2020) runs it with ``population=10, sample_size=3``.

Differences from the paper, both for query-budget benchmarks: a child that was already scored
is re-drawn (a new tournament and move, at most 10 times per child, then a random architecture),
so no architecture is scored twice; and ``batch_size`` children can be proposed at once (each
from its own tournament on the same queue; ``batch_size=1`` is Algorithm 1) so a batch can be
scored in parallel, after which the ``batch_size`` oldest die.

The move: ``space.random_move`` where the space has one (DARTS: an op change or a connection
adjustment in one random cell, A2M 4.1.1); otherwise a uniformly drawn radius-1 neighbour
(NB201: one random edge set to another op).

Example:
    >>> from genas.spaces import create_space
    >>> algo = RegularizedEvolution(create_space("nb201"), seed=0, population=10, sample_size=3, cycles=90)
    >>> while not algo.done:
    ...     batch = algo.ask()
    ...     algo.tell(batch, [a.genes.count(3) for a in batch])
    >>> algo.num_scored, len(algo.members)
    (100, 10)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from genas.spaces.base import SearchSpace
from genas.validation import Interval

from evolution.base import ALGORITHMS, Individual, SearchAlgorithm, _fitness

__all__ = ["RegularizedEvolution"]


@ALGORITHMS.register("rea", description="regularized (aging) evolution, Real et al. 2019")
class RegularizedEvolution(SearchAlgorithm):
    """Aging evolution with tournament selection (see the module docstring).

    Args:
        space: Search space.
        seed: Seed of the algorithm's generator.
        constraint: Optional predicate ``constraint(arch) -> bool``.
        population: Size of the aging queue (and of the random initial population).
        sample_size: Tournament size.
        cycles: Children after the initial population (total queries: population + cycles).
        batch_size: Children proposed per ask.
        max_queries: Optional cap on the number of architectures scored.
    """

    name = "rea"
    _params = ("population", "sample_size", "cycles", "batch_size")
    constraints = {"population": Interval(int, 1), "sample_size": Interval(int, 1, "population"),
                   "cycles": Interval(int, 0), "batch_size": Interval(int, 1)}  # fmt: skip
    move_tries = 10

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        constraint: Callable[[Any], bool] | None = None,
        population: int = 50,
        sample_size: int = 10,
        cycles: int = 950,
        batch_size: int = 1,
        max_queries: int | None = None,
    ) -> None:
        opts = self.check_options(dict(population=population, sample_size=sample_size, cycles=cycles, batch_size=batch_size))
        self.population, self.sample_size, self.cycles, self.batch_size = opts.values()
        super().__init__(space, seed, constraint, max_queries)
        self.queue: deque[Individual] = deque()
        self.children = 0

    @property
    def members(self) -> list[Individual]:
        """The aging queue, oldest first."""
        return list(self.queue)

    def _move(self, arch: Any) -> Any:
        move = getattr(self.space, "random_move", None)
        child = move(arch, self.rng) if move is not None else self.space.sample_neighbors(arch, 1, 1, self.rng)[0]
        return self.space.repair(child, self.rng)

    def _child(self) -> Any:
        members = list(self.queue)
        picks = self.rng.integers(len(members), size=self.sample_size)
        parent = max((members[int(i)] for i in picks), key=lambda ind: _fitness(ind.score))
        return self._move(parent.arch)

    def _propose(self) -> list[Any]:
        taken: dict[Any, None] = {}
        if self.generation == 0 or not self.queue:
            return self._random(self.population, taken)
        n = min(self.batch_size, self.cycles - self.children)
        batch = self._unique(self._child, n, self.move_tries * n, taken)
        return batch + self._random(n - len(batch), taken)

    def _update(self, batch: list[Individual]) -> None:
        if self.generation > 0:
            self.children += len(batch)
        self.queue.extend(batch)
        while len(self.queue) > self.population:
            self.queue.popleft()

    def _finished(self) -> bool:
        return self.generation > 0 and self.children >= self.cycles

    def _planned_queries(self) -> int:
        return self.population + self.cycles

    def _extra_state(self) -> dict[str, Any]:
        position = {ind.arch: i for i, ind in enumerate(self.history)}
        return {"queue": [position[ind.arch] for ind in self.queue], "children": self.children}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.queue = deque(self.history[int(i)] for i in state["queue"])
        self.children = int(state["children"])
