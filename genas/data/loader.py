"""A loader that keeps a whole dataset on the device and augments whole batches at once.

CIFAR-sized datasets fit in device memory as uint8 (150 MB for CIFAR-10), so a batch is one
gather plus a few tensor ops: no worker processes, no PIL, no per-image Python. Every random
choice of an epoch (the permutation, crop offsets, flips) is drawn up front from a CPU
``torch.Generator`` seeded from ``(seed, epoch)``, which makes epochs reproducible on any
device, identical across DDP ranks, and resumable mid-epoch with :meth:`TensorLoader.iter_from`.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from genas.data.base import AUGMENTATIONS, ArrayDataset, DataBundle
from genas.data.shards import Batch, ShardedEpochs, fixed_draw, torch_seed
from genas.errors import ConfigError
from genas.validation import check_bool, check_choice, check_int

__all__ = ["TensorLoader", "build_loader", "crop_padding"]


def crop_padding(image_size: int) -> int:
    """Zero padding of the random crop: 4 at 32x32 (CIFAR), 2 at 16x16 (ImageNet16), 1 at 8x8."""
    return max(1, image_size // 8)


def _to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    array = np.ascontiguousarray(array)
    if not array.flags.writeable:  # torch refuses to wrap read-only memory silently
        array = array.copy()
    return torch.from_numpy(array).to(device)


class TensorLoader(ShardedEpochs):
    """Iterates over ``(x, y)`` batches of a dataset held on ``device``; one pass is one epoch.

    ``x`` is float32 NCHW, normalised with the bundle's mean/std (channels_last memory format
    when asked); ``y`` is int64. Build one with :func:`build_loader`.

    With ``world_size > 1`` every rank draws the same permutation and takes the strided shard
    ``perm[rank::world_size]``; with ``drop_last`` the permutation is first cut to a multiple of
    ``world_size`` (as ``DistributedSampler(drop_last=True)``), so all ranks run the same steps.
    Without ``drop_last`` nothing is padded or repeated: shards differ by at most one sample and
    together cover the dataset exactly once.

    Args:
        ds: The split to hold on ``device``.
        mean: Per-channel mean of x/255.
        std: Per-channel std of x/255.
        batch_size: Samples per batch.
        shuffle: Draw a new permutation each epoch (else dataset order).
        augment: One of :data:`~genas.data.AUGMENTATIONS`.
        drop_last: Drop the last partial batch (and cut the epoch to a multiple of ``world_size``).
        seed: Seeds every epoch's permutation and augmentation together with the epoch number.
        device: Where the data and batches live.
        channels_last: Return ``x`` in channels_last memory format.
        rank: This process's rank.
        world_size: Number of processes sharing an epoch.
        cutout: Side of the square zeroed after normalisation, at a uniformly drawn centre and
            clipped at the border (DeVries & Taylor 2017, DARTS ``--cutout_length``); 0: none.
    """

    def __init__(
        self,
        ds: ArrayDataset,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        batch_size: int,
        *,
        shuffle: bool,
        augment: str,
        drop_last: bool,
        seed: int = 0,
        device: str | torch.device = "cpu",
        channels_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        cutout: int = 0,
    ) -> None:
        self.device = torch.device(device)
        self._images = _to_device(ds.images, self.device)  # NHWC uint8, moved once
        self._labels = _to_device(ds.labels, self.device)
        channels = self._images.shape[-1]
        self._scale = torch.tensor([1.0 / (255.0 * s) for s in std], device=self.device).view(1, channels, 1, 1)
        self._shift = torch.tensor([-m / s for m, s in zip(mean, std)], device=self.device).view(1, channels, 1, 1)
        super().__init__(len(ds), batch_size, drop_last, rank, world_size)
        self.shuffle, self.augment = shuffle, augment
        self.seed, self.channels_last = seed, channels_last
        self.pad = crop_padding(self._images.shape[1])
        self.cutout = cutout

    def __repr__(self) -> str:
        return (
            f"TensorLoader(n={self.dataset_size}, batch_size={self._batch_size}, batches={len(self)}, "
            f"shuffle={self.shuffle}, augment={self.augment!r}, rank={self.rank}/{self.world_size}, "
            f"device={self.device})"
        )

    def iter_from(self, epoch: int, step: int) -> Iterator[Batch]:
        """Yield the batches of ``epoch`` from ``step`` on, exactly as an uninterrupted pass would.

        Args:
            epoch: Epoch whose order and augmentation to use (``set_epoch`` is not changed).
            step: Index of the first batch to yield, in ``[0, len(self)]``.

        Returns:
            An iterator over ``(x, y)``.
        """
        check_int(epoch, "epoch", "TensorLoader.iter_from", 0)
        check_int(step, "step", "TensorLoader.iter_from", 0, len(self))
        order, offsets, flips = self._plan(self._generator(epoch), len(self._labels))
        order, offsets, flips = order[self._positions], offsets[self._positions], flips[self._positions]
        return self._iterate(order, offsets, flips, step)

    def _iterate(self, order: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor, step: int) -> Iterator[Batch]:
        order, offsets, flips = (t.to(self.device) for t in (order, offsets, flips))
        for i in range(step, len(self)):
            sl = slice(i * self._batch_size, (i + 1) * self._batch_size)
            yield self._batch(order[sl], offsets[sl], flips[sl])

    def batches(self, n: int, seed: int) -> list[Batch]:
        """A fixed list of ``n`` full batches, the same for a given ``seed`` on every rank.

        Meant for BN recalibration and scoring. Samples are drawn without replacement from
        successive permutations of the whole dataset (not sharded, always shuffled), so the
        list cycles through the data when ``n * batch_size`` exceeds its size. The loader's
        augmentation applies, seeded by ``seed`` too.

        Args:
            n: Number of batches.
            seed: Seed of the draw (independent of the loader's own seed).

        Returns:
            ``n`` tuples ``(x, y)`` on the loader's device.
        """
        check_int(n, "n", "TensorLoader.batches", 0)
        check_int(seed, "seed", "TensorLoader.batches", 0)
        need = n * self._batch_size
        g, order = fixed_draw(len(self._labels), need, seed)
        _, offsets, flips = self._plan(g, need, shuffle=False)
        order, offsets, flips = (t.to(self.device) for t in (order, offsets, flips))
        out = []
        for i in range(n):
            sl = slice(i * self._batch_size, (i + 1) * self._batch_size)
            out.append(self._batch(order[sl], offsets[sl], flips[sl]))
        return out

    def _generator(self, epoch: int) -> torch.Generator:
        return torch.Generator().manual_seed(torch_seed(self.seed, epoch))

    def _plan(self, g: torch.Generator, n: int, shuffle: bool | None = None) -> tuple[torch.Tensor, ...]:
        """Order, crop offsets ``(n, 2)`` (``(n, 4)`` with the cutout centres) and flip flags, all drawn from ``g``."""
        shuffle = self.shuffle if shuffle is None else shuffle
        order = torch.randperm(n, generator=g) if shuffle else torch.arange(n)
        offsets = torch.randint(0, 2 * self.pad + 1, (n, 2), generator=g)
        flips = torch.rand(n, generator=g) < 0.5
        if self.cutout:  # drawn last, so the other draws stay those of a loader without cutout
            offsets = torch.cat([offsets, torch.randint(0, self._images.shape[1], (n, 2), generator=g)], dim=1)
        return order, offsets, flips

    def _batch(self, idx: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor) -> Batch:
        x = self._images[idx]  # (B, H, W, C) uint8
        if self.augment in ("cifar", "crop"):
            x = self._crop(x, offsets, flips if self.augment == "cifar" else None)
        elif self.augment == "flip":
            x = torch.where(flips.view(-1, 1, 1, 1), x.flip(2), x)
        x = x.permute(0, 3, 1, 2)  # NCHW view of NHWC memory = channels_last
        if not self.channels_last:
            x = x.contiguous()
        x = x.float().mul_(self._scale).add_(self._shift)
        if self.cutout:
            x = x * self._cutout_mask(offsets[:, 2:], x.shape[-1])
        return x, self._labels[idx]

    def _cutout_mask(self, centres: torch.Tensor, size: int) -> torch.Tensor:
        """``(B, 1, H, W)`` mask, 0 on rows and columns within ``[c - cutout // 2, c + cutout // 2)`` of each centre."""
        pos = torch.arange(size, device=centres.device)
        half = self.cutout // 2
        inside = [(pos >= centres[:, i : i + 1] - half) & (pos < centres[:, i : i + 1] + half) for i in (0, 1)]
        return (~(inside[0].unsqueeze(2) & inside[1].unsqueeze(1))).unsqueeze(1).float()

    def _crop(self, x: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor | None) -> torch.Tensor:
        """Random crop of a zero-padded batch by one gather; a flip reverses the gathered columns."""
        b, h, w, c = x.shape
        p = self.pad
        padded = x.new_zeros((b, h + 2 * p, w + 2 * p, c))
        padded[:, p : p + h, p : p + w] = x
        rows = offsets[:, :1] + torch.arange(h, device=x.device)  # (B, H)
        cols = offsets[:, 1:2] + torch.arange(w, device=x.device)  # (B, W)
        if flips is not None:
            cols = torch.where(flips.view(-1, 1), cols.flip(1), cols)
        batch = torch.arange(b, device=x.device).view(-1, 1, 1)
        return padded[batch, rows.unsqueeze(2), cols.unsqueeze(1)]


def build_loader(
    ds: ArrayDataset,
    bundle: DataBundle,
    batch_size: int,
    *,
    train: bool,
    seed: int = 0,
    augment: str | None = None,
    device: str | torch.device = "cpu",
    channels_last: bool = False,
    rank: int = 0,
    world_size: int = 1,
    drop_last: bool | None = None,
    cutout: int = 0,
) -> ShardedEpochs:
    """Build the loader of one split: shuffled and augmented for training, in order for evaluation.

    Args:
        ds: The split to load (e.g. ``bundle.train``).
        bundle: Supplies mean/std and the default augmentation.
        batch_size: Samples per batch (per rank).
        train: Shuffle and, by default, augment and drop the last partial batch.
        seed: Seeds the per-epoch permutation and augmentation.
        augment: One of ``"cifar"``, ``"crop"``, ``"flip"``, ``"none"``; None means
            ``bundle.augment`` when training, else ``"none"``.
        device: Where the data lives and batches are made.
        channels_last: Return ``x`` in channels_last memory format.
        rank: This process's rank.
        world_size: Number of processes sharing the epoch.
        drop_last: Drop the last partial batch; None means ``train``.
        cutout: Cutout side in pixels after any augmentation (DARTS evaluation: 16 at 32x32); 0: none.

    Returns:
        The loader: a :class:`TensorLoader` for an in-memory split, a
        :class:`genas.data.stream_loader.StreamLoader` (the same interface, workers decoding files)
        for a split of a streaming dataset (``imagefolder``, ``wds``), whose augmentations are
        :data:`genas.data.stream.STREAM_AUGMENTATIONS`.

    Example:
        >>> from genas.data import create_dataset, build_loader
        >>> bundle = create_dataset("digits")
        >>> loader = build_loader(bundle.train, bundle, 64, train=True, seed=0)
        >>> x, y = next(iter(loader))
        >>> tuple(x.shape), y.dtype
        ((64, 1, 8, 8), torch.int64)
    """
    from genas.data.stream import STREAM_AUGMENTATIONS, FileDataset
    from genas.data.stream_loader import StreamLoader

    owner = "build_loader"
    check_int(batch_size, "batch_size", owner, 1)
    check_bool(train, "train", owner)
    check_int(seed, "seed", owner, 0)
    streamed = isinstance(ds, FileDataset)
    augment = (bundle.augment if train else "none") if augment is None else augment
    check_choice(augment, "augment", f"{owner} (dataset {bundle.name!r})", STREAM_AUGMENTATIONS if streamed else AUGMENTATIONS)
    check_bool(channels_last, "channels_last", owner)
    check_int(world_size, "world_size", owner, 1)
    check_int(rank, "rank", owner, 0, world_size - 1)
    drop_last = train if drop_last is None else check_bool(drop_last, "drop_last", owner)
    check_int(cutout, "cutout", owner, 0, 0 if streamed else 2 * bundle.image_size)
    common = dict(shuffle=train, augment=augment, drop_last=drop_last, seed=seed, device=device,
                  channels_last=channels_last, rank=rank, world_size=world_size)  # fmt: skip
    if streamed:
        loader: ShardedEpochs = StreamLoader(ds, bundle.mean, bundle.std, batch_size,
                                                           image_size=bundle.image_size, **common)  # fmt: skip
    elif not isinstance(ds, ArrayDataset):
        raise TypeError(f"build_loader expects a split of a bundle (e.g. bundle.train). Got {type(ds).__name__}.")
    elif ds.images.shape[1:] != (bundle.image_size, bundle.image_size, bundle.channels):
        raise ValueError(
            f"build_loader: images of shape {ds.images.shape[1:]} do not match bundle {bundle.name!r} "
            f"({bundle.image_size}, {bundle.image_size}, {bundle.channels})."
        )
    else:
        loader = TensorLoader(ds, bundle.mean, bundle.std, batch_size, cutout=cutout, **common)
    if len(loader) == 0 and len(ds) > 0:
        n = len(ds) // world_size
        per = f" each of the {world_size} ranks gets" if world_size > 1 else ""
        raise ConfigError(f"batch size {batch_size} is larger than the {n} images of this split{per}, so an epoch "
                          f"would have no step; allowed: a batch size of at most {n} (data.batch_size), or more "
                          "images (data.limit)")  # fmt: skip
    return loader
