"""The interface every search space implements.

An architecture is a frozen, hashable dataclass that pickles and JSON-dumps as is;
everything in genas that takes an architecture takes that object.  A space holds no
state besides its constants; every random function takes an explicit
``numpy.random.Generator``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np

from genas.errors import ConfigError
from genas.registry import Registry

__all__ = ["SearchSpace", "Architecture", "SPACES"]


class Architecture(ABC):
    """Base class of architecture objects (frozen dataclasses)."""

    space: ClassVar[str] = ""

    @abstractmethod
    def to_json(self) -> Any:
        """A JSON value that the space's ``parse`` turns back into this architecture."""


class SearchSpace(ABC):
    """A discrete architecture space with the operators search and analysis need."""

    name: ClassVar[str] = ""
    arch_type: ClassVar[type] = Architecture

    # ---- parsing -------------------------------------------------------------------
    @abstractmethod
    def parse(self, obj: Any) -> Any:
        """Turn a string, gene tuple, JSON value or architecture into an architecture of this space."""

    def check(self, arch: Any) -> Any:
        """Return ``arch`` if it belongs to this space, else raise :class:`InvalidArchitectureError`."""
        return self.parse(arch)

    # ---- random operators ----------------------------------------------------------
    @abstractmethod
    def sample(self, rng: np.random.Generator) -> Any:
        """Draw an architecture uniformly at random."""

    @abstractmethod
    def mutate(self, arch: Any, rng: np.random.Generator, prob: float = 0.1) -> Any:
        """Return a (repaired) copy of ``arch`` where each gene changes with probability ``prob``."""

    @abstractmethod
    def crossover(self, a: Any, b: Any, rng: np.random.Generator) -> Any:
        """Uniform crossover: each gene from ``a`` or ``b`` with probability 1/2, then repair."""

    def repair(self, arch: Any, rng: np.random.Generator) -> Any:
        """Return a valid architecture close to ``arch`` (identity where every gene vector is valid)."""
        return arch

    # ---- geometry ------------------------------------------------------------------
    @abstractmethod
    def neighbors(self, arch: Any, radius: int = 1) -> list[Any]:
        """Every architecture at exactly ``radius`` moves from ``arch``."""

    @abstractmethod
    def distance(self, a: Any, b: Any) -> int:
        """Smallest number of single moves that turns ``a`` into ``b``."""

    def sample_neighbors(self, arch: Any, radius: int, k: int, rng: np.random.Generator) -> list[Any]:
        """``k`` distinct neighbours at ``radius`` drawn without replacement (all of them if fewer)."""
        pool = self.neighbors(arch, radius)
        if k >= len(pool):
            return pool
        idx = rng.choice(len(pool), size=k, replace=False)
        return [pool[i] for i in sorted(idx)]

    # ---- enumeration ---------------------------------------------------------------
    @property
    @abstractmethod
    def size(self) -> int:
        """Number of architectures in the space."""

    def enumerate(self) -> Iterator[Any]:
        """Iterate over every architecture (only for spaces small enough; others raise ConfigError)."""
        raise ConfigError(
            f"the {self.name} space has {self.size:.3g} architectures and cannot be enumerated; "
            "use a seeded sample (e.g. sample(rng) or --sample N) instead"
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


#: The search-space registry; the built-in spaces register themselves in their modules, imported on the first lookup.
SPACES: Registry[type[SearchSpace]] = Registry("search space", builtins=("genas.spaces.nb201", "genas.spaces.darts"))
