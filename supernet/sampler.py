"""Uniform single-path samplers (SPOS, Guo et al. 2020), seeded and resumable.

NB201: an independent op per edge *per cell*, re-drawn while some node would receive
only ``none`` inputs.  DARTS: one normal and one reduce genotype shared by all cells of
that type, each node with 2 distinct inputs (the space's uniform sampler).
Every rank of a distributed run builds the sampler from the same seed, so all ranks
draw the same path in a step.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from genas.spaces import NB201Arch, NB201Space, SearchSpace
from genas.spaces.nb201 import NB201_EDGES

__all__ = ["UniformPathSampler"]

_NB201_NODE_EDGES = [[e for e, (to, _) in enumerate(NB201_EDGES) if to == j] for j in (1, 2, 3)]


class UniformPathSampler:
    """Draws one training path per step.

    Args:
        space: The supernet's search space.
        num_cells: Number of search cells (NB201 draws one architecture per cell).
        seed: Seed of the sampler's own generator.
    """

    def __init__(self, space: SearchSpace, num_cells: int, seed: int = 0) -> None:
        self.space = space
        self.num_cells = num_cells
        self.rng = np.random.default_rng(seed)

    def _nb201_cell(self) -> NB201Arch:
        while True:
            genes = self.rng.integers(0, 5, size=6)
            if all(genes[edges].any() for edges in _NB201_NODE_EDGES):
                return NB201Arch.from_genes(genes.tolist())

    def sample(self) -> Any:
        """The next path: a tuple of per-cell NB201 architectures, or one DARTS architecture."""
        if isinstance(self.space, NB201Space):
            return tuple(self._nb201_cell() for _ in range(self.num_cells))
        return self.space.sample(self.rng)

    def state_dict(self) -> dict[str, Any]:
        return {"bit_generator": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["bit_generator"]
