"""The ask/tell interface every search algorithm implements, and the algorithm registry.

An algorithm proposes batches of architectures (:meth:`SearchAlgorithm.ask`), is told their
fitness (:meth:`SearchAlgorithm.tell`, higher is better) and never proposes an architecture it
has already proposed.  It owns its ``numpy.random.Generator``; :meth:`~SearchAlgorithm.state_dict`
captures everything, generator included, so a loaded state continues exactly where it left off.
Scoring is the caller's business (see :func:`evolution.runner.run_search`).

Example:
    >>> from genas.spaces import create_space
    >>> algo = create_algorithm("random", create_space("nb201"), seed=0, num_samples=4)
    >>> while not algo.done:
    ...     batch = algo.ask()
    ...     algo.tell(batch, [a.genes.count(3) for a in batch])
    >>> algo.num_scored
    4
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from genas.errors import ConfigError
from genas.registry import Registry
from genas.spaces.base import SearchSpace
from genas.validation import Configurable, Interval, Nullable, check_int, check_params

__all__ = [
    "Individual", "SearchAlgorithm", "ALGORITHMS", "create_algorithm", "list_algorithms",
    "algorithm_from_config", "STATE_FORMAT",
]  # fmt: skip

STATE_FORMAT = "genas.search/1"
_COMMON = ("space", "seed", "constraint")

ALGORITHMS: Registry[type[SearchAlgorithm]] = Registry(
    "search algorithm", entry_point_group="genas.search_algorithms",
    builtins=("evolution.spos", "evolution.rea", "evolution.random_search"),
)  # fmt: skip


@dataclass(frozen=True)
class Individual:
    """One scored architecture: its fitness (higher is better) and the generation that proposed it."""

    arch: Any
    score: float
    generation: int


def _fitness(score: float) -> float:
    """Ranking key: NaN (a failed evaluation) ranks below everything."""
    return -math.inf if math.isnan(score) else score


class SearchAlgorithm(Configurable, ABC):
    """Base class: visited set, budget, generation counter, best individual, exact state.

    Subclasses implement :meth:`_propose` (the next batch, made with :meth:`_unique`) and
    :meth:`_update` (react to a scored batch), and list their hyper-parameters in ``_params``.

    Args:
        space: The search space whose operators the algorithm uses.
        seed: Seed of the algorithm's own ``numpy.random.default_rng``.
        constraint: Optional predicate ``constraint(arch) -> bool``; proposals failing it are
            re-drawn.  A ``describe()`` method, if present, is used in messages.
        max_queries: Stop after this many unique architectures were scored (``None``: the
            algorithm's own schedule decides).
    """

    name: ClassVar[str] = ""
    _params: ClassVar[tuple[str, ...]] = ()
    #: the limits of the hyper-parameters, read by ``__init__`` and by the ``search`` config section
    constraints: ClassVar[dict[str, Any]] = {}
    not_options: ClassVar[tuple[str, ...]] = _COMMON  # max_queries is an option
    #: random draws per needed architecture before giving up on a constraint or a full space
    random_tries: ClassVar[int] = 1000
    #: spaces up to this size are enumerated when random draws no longer find new architectures
    enumerate_limit: ClassVar[int] = 100_000

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        constraint: Callable[[Any], bool] | None = None,
        max_queries: int | None = None,
    ) -> None:
        owner = type(self).__name__
        if not isinstance(space, SearchSpace):
            raise ConfigError(f"The 'space' parameter of {owner} must be a SearchSpace. Got {space!r} instead.")
        if constraint is not None and not callable(constraint):
            raise ConfigError(
                f"The 'constraint' parameter of {owner} must be a callable or None. Got {constraint!r} instead."
            )
        check_int(seed, "seed", owner, 0)
        check_params(owner, {"max_queries": Nullable(Interval(int, 1))}, {"max_queries": max_queries})
        self.space, self.seed, self.constraint, self.max_queries = space, seed, constraint, max_queries
        self.rng = np.random.default_rng(seed)
        self.history: list[Individual] = []
        self.visited: set[Any] = set()
        self.generation = 0
        self._pending: list[Any] | None = None
        self._exhausted = False
        self._feasible: dict[Any, bool] = {}

    # ---- the interface -------------------------------------------------------------
    def ask(self) -> list[Any]:
        """The next batch to score (the same batch again until it is told; empty when done)."""
        if self._pending is not None:
            return list(self._pending)
        if self.done:
            return []
        batch = self._propose()
        if self.max_queries is not None:
            batch = batch[: self.max_queries - self.num_scored]
        if not batch:
            self._exhausted = True
            return []
        self.visited.update(batch)
        self._pending = batch
        return list(batch)

    def tell(self, archs: Sequence[Any], scores: Sequence[float] | np.ndarray) -> None:
        """Record the fitness (higher is better; NaN = failed) of the batch :meth:`ask` returned."""
        archs = list(archs)
        if not archs and self._pending is None:  # the empty batch of a finished search
            return
        if self._pending is None or archs != self._pending:
            raise ValueError(f"{type(self).__name__}.tell() must receive exactly the batch the last ask() returned")
        values = np.asarray(scores, dtype=np.float64).reshape(-1)
        if len(values) != len(archs):
            raise ValueError(f"{type(self).__name__}.tell() got {len(values)} scores for {len(archs)} architectures")
        batch = [Individual(a, float(s), self.generation) for a, s in zip(archs, values)]
        self.history.extend(batch)
        self._pending = None
        self._update(batch)
        self.generation += 1

    @property
    def done(self) -> bool:
        """True once the schedule, the query budget or the space is exhausted."""
        if self._pending is not None:
            return False
        if self.max_queries is not None and self.num_scored >= self.max_queries:
            return True
        return self._exhausted or self._finished()

    @property
    def num_scored(self) -> int:
        """Unique architectures scored so far."""
        return len(self.history)

    @property
    def best(self) -> Individual | None:
        """The best individual so far (the earliest among equals), or None before the first tell."""
        if not self.history:
            return None
        return max(self.history, key=lambda ind: _fitness(ind.score))

    @property
    def members(self) -> list[Individual]:
        """The current population (default: the last scored batch)."""
        last = self.generation - 1
        return [ind for ind in self.history if ind.generation == last]

    @property
    def total_queries(self) -> int:
        """Upper bound on the number of architectures the run will score (for progress bars)."""
        planned = self._planned_queries()
        return planned if self.max_queries is None else min(planned, self.max_queries)

    def params(self) -> dict[str, Any]:
        """Hyper-parameters, by the keyword names of ``__init__``."""
        return {name: getattr(self, name) for name in (*self._params, "max_queries")}

    def describe(self) -> str:
        """``'evolution(population=50, ...)'``, for logs and messages."""
        return f"{self.name}(" + ", ".join(f"{k}={v!r}" for k, v in self.params().items()) + ")"

    # ---- for subclasses ------------------------------------------------------------
    @abstractmethod
    def _propose(self) -> list[Any]:
        """Architectures of the next batch: new (not in :attr:`visited`), distinct, feasible."""

    def _update(self, batch: list[Individual]) -> None:
        """React to a scored batch (default: nothing beyond the history)."""

    @abstractmethod
    def _finished(self) -> bool:
        """True when the algorithm's own schedule is over."""

    @abstractmethod
    def _planned_queries(self) -> int:
        """Queries the schedule plans (before ``max_queries``)."""

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    def feasible(self, arch: Any) -> bool:
        """Whether ``arch`` meets the constraint (cached; always True without one)."""
        if self.constraint is None:
            return True
        ok = self._feasible.get(arch)
        if ok is None:
            if len(self._feasible) >= 100_000:  # a cache, not a record: keep it bounded
                self._feasible.clear()
            ok = self._feasible[arch] = bool(self.constraint(arch))
        return ok

    def _unique(self, make: Callable[[], Any], n: int, tries: int, taken: dict[Any, None]) -> list[Any]:
        """Up to ``n`` new feasible architectures from ``make()``, within ``tries`` calls; added to ``taken``."""
        found: list[Any] = []
        for _ in range(tries):
            if len(found) >= n:
                break
            arch = make()
            if arch in self.visited or arch in taken or not self.feasible(arch):
                continue
            taken[arch] = None
            found.append(arch)
        return found

    def _random(self, n: int, taken: dict[Any, None]) -> list[Any]:
        """Up to ``n`` new uniform samples; raises when the constraint rejects every draw.

        When ``random_tries x n`` draws find fewer than ``n`` and the space is small enough to
        enumerate (NB201), the rest is drawn from the unvisited feasible architectures, so a
        small space is exhausted exactly rather than declared exhausted by bad luck.
        """
        if n <= 0:
            return []
        tries = self.random_tries * n
        found: list[Any] = []
        any_feasible = False
        for _ in range(tries):
            if len(found) >= n:
                break
            arch = self.space.sample(self.rng)
            ok = self.feasible(arch)
            any_feasible = any_feasible or ok
            if ok and arch not in self.visited and arch not in taken:
                taken[arch] = None
                found.append(arch)
        if not any_feasible and not self.visited:  # every proposal so far met the constraint
            what = self.constraint.describe() if hasattr(self.constraint, "describe") else repr(self.constraint)
            raise ConfigError(
                f"constraints no architecture can meet: {what} (none of {tries} random {self.space.name} "
                "architectures passed); relax search.max_params / search.max_flops"
            )
        if len(found) < n and self.space.size <= self.enumerate_limit:  # nearly exhausted: pick from what is left
            left = [a for a in self.space.enumerate() if a not in self.visited and a not in taken and self.feasible(a)]
            picks = self.rng.choice(len(left), size=min(n - len(found), len(left)), replace=False) if left else []
            for i in picks:
                taken[left[int(i)]] = None
                found.append(left[int(i)])
        return found

    # ---- exact resume --------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: parameters, generator, history, pending batch (JSON-ready)."""
        return {
            "format": STATE_FORMAT,
            "algorithm": self.name,
            "space": self.space.name,
            "seed": self.seed,
            "params": self.params(),
            "rng": self.rng.bit_generator.state,
            "generation": self.generation,
            "exhausted": self._exhausted,
            "history": [[ind.arch.to_json(), ind.score, ind.generation] for ind in self.history],
            "pending": None if self._pending is None else [a.to_json() for a in self._pending],
            **self._extra_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; the settings it was saved with must equal this object's."""
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise ConfigError(f"not a genas search state (expected format {STATE_FORMAT!r})")
        mine = {"algorithm": self.name, "space": self.space.name, "seed": self.seed, "params": self.params()}
        saved = {k: state.get(k) for k in mine}
        if saved != mine:
            diff = ", ".join(f"{k} {saved[k]!r} (now {mine[k]!r})" for k in mine if saved[k] != mine[k])
            raise ConfigError(f"the saved search state was made with other settings: {diff}; resume with the same ones")
        parse = self.space.parse
        self.rng.bit_generator.state = state["rng"]
        self.generation = int(state["generation"])
        self._exhausted = bool(state["exhausted"])
        self.history = [Individual(parse(a), float(s), int(g)) for a, s, g in state["history"]]
        self._pending = None if state["pending"] is None else [parse(a) for a in state["pending"]]
        self.visited = {ind.arch for ind in self.history} | set(self._pending or ())
        self._load_extra_state(state)


# ---- front doors ---------------------------------------------------------------------------
def list_algorithms(pattern: str = "*") -> list[str]:
    """Names of registered search algorithms (``evolution``, ``random``, ``rea``, plugins)."""
    return ALGORITHMS.list(pattern)


def create_algorithm(
    name: str, space: SearchSpace, seed: int = 0, constraint: Callable[[Any], bool] | None = None, **params: Any
) -> SearchAlgorithm:
    """Build the algorithm registered as ``name``; ``None`` values keep the defaults.

    Example:
        >>> from genas.spaces import create_space
        >>> create_algorithm("rea", create_space("nb201"), seed=1, population=10, sample_size=3).describe()
        'rea(population=10, sample_size=3, cycles=950, batch_size=1, max_queries=None)'
    """
    cls = ALGORITHMS.get(name)
    return cls(space, seed=seed, constraint=constraint, **{k: v for k, v in params.items() if v is not None})


def algorithm_from_config(
    cfg: Any, space: SearchSpace, seed: int = 0, constraint: Callable[[Any], bool] | None = None
) -> SearchAlgorithm:
    """The algorithm named by ``cfg.algorithm`` (a :class:`evolution.config.SearchConfig`), fed the fields it takes.

    A config field is forwarded when the algorithm's ``__init__`` has a keyword of the same name
    (``population``, ``topk``, ... for ``evolution``); fields set to ``None`` keep the defaults.
    """
    cls = ALGORITHMS.get(cfg.algorithm)
    params = {k: getattr(cfg, k) for k in cls.option_defaults() if getattr(cfg, k, None) is not None}
    return create_algorithm(cfg.algorithm, space, seed=seed, constraint=constraint, **params)
