"""Random search: the baseline every search algorithm must beat.

Li and Talwalkar, "Random Search and Reproducibility for Neural Architecture Search", UAI 2019;
the NAS-Bench-201 paper (Dong & Yang, ICLR 2020) reports it as "RS".  Architectures are drawn
uniformly (``space.sample``) without repetition, ``batch_size`` per ask, ``num_samples`` in all.

Example:
    >>> from genas.spaces import create_space
    >>> algo = RandomSearch(create_space("nb201"), seed=0, num_samples=30, batch_size=8)
    >>> sizes = []
    >>> while not algo.done:
    ...     batch = algo.ask()
    ...     sizes.append(len(batch))
    ...     algo.tell(batch, [0.0] * len(batch))
    >>> sizes
    [8, 8, 8, 6]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from genas.spaces.base import SearchSpace
from genas.validation import Interval

from evolution.base import ALGORITHMS, SearchAlgorithm

__all__ = ["RandomSearch"]


@ALGORITHMS.register("random", description="random search: unique uniform samples")
class RandomSearch(SearchAlgorithm):
    """Unique uniform samples (see the module docstring).

    Args:
        space: Search space.
        seed: Seed of the algorithm's generator.
        constraint: Optional predicate ``constraint(arch) -> bool``.
        num_samples: Architectures to score in all.
        batch_size: Architectures per ask.
        max_queries: Optional cap on the number of architectures scored.
    """

    name = "random"
    _params = ("num_samples", "batch_size")
    constraints = {"num_samples": Interval(int, 1), "batch_size": Interval(int, 1)}

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        constraint: Callable[[Any], bool] | None = None,
        num_samples: int = 1000,
        batch_size: int = 50,
        max_queries: int | None = None,
    ) -> None:
        opts = self.check_options(dict(num_samples=num_samples, batch_size=batch_size))
        self.num_samples, self.batch_size = opts["num_samples"], opts["batch_size"]
        super().__init__(space, seed, constraint, max_queries)

    def _propose(self) -> list[Any]:
        return self._random(min(self.batch_size, self.num_samples - self.num_scored), {})

    def _finished(self) -> bool:
        return self.num_scored >= self.num_samples

    def _planned_queries(self) -> int:
        return self.num_samples
