"""Search spaces: architecture objects and the operators on them.

Example:
    >>> import numpy as np
    >>> from genas.spaces import create_space
    >>> space = create_space("nb201")
    >>> arch = space.sample(np.random.default_rng(0))
    >>> space.parse(str(arch)) == arch
    True
"""

from __future__ import annotations

from genas.spaces.base import SPACES, Architecture, SearchSpace
from genas.spaces.darts import DARTS_OPS, DartsArch, DartsSpace, Genotype
from genas.spaces.nb201 import NB201_OPS, NB201Arch, NB201Space

__all__ = [
    "SPACES", "create_space", "list_spaces", "space_of",
    "Architecture", "SearchSpace", "NB201Arch", "NB201Space", "DartsArch", "DartsSpace", "Genotype",
    "NB201_OPS", "DARTS_OPS",
]  # fmt: skip



def create_space(name: str) -> SearchSpace:
    """Return the search space registered as ``name`` (``nb201`` or ``darts``)."""
    return SPACES.get(name)()


def list_spaces(pattern: str = "*") -> list[str]:
    """Names of registered search spaces."""
    return SPACES.list(pattern)


def space_of(arch: Architecture) -> SearchSpace:
    """The space an architecture object belongs to."""
    return create_space(arch.space)
