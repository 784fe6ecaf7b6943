"""What the in-memory and the streaming loader share: which places of each epoch's order this rank takes.

Both loaders (:class:`genas.data.TensorLoader`, :class:`genas.data.stream_loader.StreamLoader`)
derive from :class:`ShardedEpochs`; each adds how an epoch's batches are made (``iter_from``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator

import numpy as np
import torch

from genas.validation import check_int

__all__ = ["ShardedEpochs", "Batch", "torch_seed", "fixed_draw"]

Batch = tuple[torch.Tensor, torch.Tensor]
FIXED_DRAW = 0xBA7C  # the purpose word of ``batches(n, seed)``'s draws, apart from the epochs' (seed, epoch)


def torch_seed(*words: int) -> int:
    """A 63-bit torch seed that depends on every word (mixed by numpy's SeedSequence)."""
    state = np.random.SeedSequence(list(words)).generate_state(2, np.uint32)
    return (int(state[0]) << 31) | (int(state[1]) >> 1)


def fixed_draw(size: int, need: int, seed: int) -> tuple[torch.Generator, torch.Tensor]:
    """The order of a loader's ``batches(n, seed)``: ``need`` indices from successive permutations of ``range(size)``.

    Returns the generator too, positioned after the permutations, for the draw's augmentation.
    """
    g = torch.Generator().manual_seed(torch_seed(seed, FIXED_DRAW))
    reps = -(-need // size) if size and need else 0
    order = torch.cat([torch.randperm(size, generator=g) for _ in range(reps)])[:need] if reps else torch.zeros(0, dtype=torch.long)
    return g, order


class ShardedEpochs(ABC):
    """What both loaders share: this rank's places in each epoch's order, the batch count, the epoch.

    With ``world_size > 1`` every rank takes the strided shard ``positions = rank, rank + world_size, ...``
    of the epoch's order; with ``drop_last`` the order is first cut to a multiple of ``world_size`` (as
    ``DistributedSampler(drop_last=True)``) and the last partial batch dropped, so all ranks run the same steps.
    """

    def __init__(self, n: int, batch_size: int, drop_last: bool, rank: int, world_size: int) -> None:
        self._n, self._batch_size, self.drop_last, self.rank, self.world_size = n, batch_size, drop_last, rank, world_size
        self.epoch = 0
        total = n - n % world_size if drop_last else n
        self._positions = torch.arange(rank, total, world_size)  # this rank's places in the epoch order
        shard = len(self._positions)
        self._num_batches = shard // batch_size if drop_last else -(-shard // batch_size)

    @property
    def batch_size(self) -> int:
        """Samples per batch (the last one may be smaller when ``drop_last`` is false)."""
        return self._batch_size

    @property
    def num_samples(self) -> int:
        """Samples this rank yields per epoch."""
        return self._num_batches * self._batch_size if self.drop_last else len(self._positions)

    @property
    def dataset_size(self) -> int:
        """Samples in the whole dataset (all ranks)."""
        return self._n

    def __len__(self) -> int:
        return self._num_batches

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order and augmentation the next ``iter()`` uses."""
        self.epoch = check_int(epoch, "epoch", f"{type(self).__name__}.set_epoch", 0)

    def __iter__(self) -> Iterator[Batch]:
        return self.iter_from(self.epoch, 0)

    @abstractmethod
    def iter_from(self, epoch: int, step: int) -> Iterator[Batch]:
        """Yield the batches of ``epoch`` from ``step`` on, exactly as an uninterrupted pass would (each loader's own)."""
