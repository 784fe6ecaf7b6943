"""The loader of a :class:`~genas.data.stream.FileDataset`: decode and augment in DataLoader workers.

It has the interface of :class:`genas.data.TensorLoader` (``set_epoch``, ``iter_from(epoch,
step)``, ``batches(n, seed)``, ``len``), so every stage trains on files exactly as on arrays.
The parts come from well-kept libraries: PIL decodes, ``timm.data.create_transform`` builds the
ImageNet transforms, ``torch.utils.data.DataLoader`` runs the workers (persistent, prefetching,
pinned memory on CUDA). What genas adds is the *plan*: the epoch's order is a permutation drawn
from ``(seed, epoch)`` alone, rank ``r`` of ``R`` takes positions ``r, r + R, ...`` (cut to a
multiple of ``R`` under ``drop_last``, as ``DistributedSampler``), and the DataLoader hands whole
batches to its workers in turn, so N ranks x W workers read disjoint samples that together cover
the epoch once. Every sample's augmentation is seeded from ``(seed, epoch, sample)``, not from
the worker that happens to decode it, so a resume at step k (``iter_from``) yields exactly the
batches an uninterrupted epoch would have, whatever the number of workers.

A file that cannot be decoded is skipped and counted (one warning line per epoch naming the count
and the first file; the batch is one smaller), or raises an error naming it with ``on_error="raise"``.
"""

from __future__ import annotations

import io
import random
import struct
import sys
from collections.abc import Iterator
from typing import Any

import torch

from genas.data.shards import FIXED_DRAW, Batch, ShardedEpochs, fixed_draw, torch_seed
from genas.data.stream import STREAM_AUGMENTATIONS, FileDataset
from genas.errors import DataNotFoundError

__all__ = ["StreamLoader", "STREAM_AUGMENTATIONS", "build_transform"]

DARTS_JITTER = (0.4, 0.4, 0.4, 0.2)  # brightness, contrast, saturation, hue (DARTS train_imagenet.py)



def build_transform(augment: str, image_size: int, mean: tuple[float, ...], std: tuple[float, ...]) -> Any:
    """timm's ImageNet transform for one of :data:`STREAM_AUGMENTATIONS` at ``image_size``."""
    from timm.data import create_transform

    if augment == "none":
        return create_transform(image_size, is_training=False, crop_pct=0.875, interpolation="bilinear", mean=mean, std=std)
    jitter = {"imagenet": DARTS_JITTER, "spos": DARTS_JITTER[:3]}.get(augment)
    return create_transform(image_size, is_training=True, scale=(0.08, 1.0), hflip=0.5, color_jitter=jitter,
                            interpolation="bilinear", mean=mean, std=std)  # fmt: skip


class _Decode(torch.utils.data.Dataset):
    """``dataset[(i, seed)]``: sample ``i`` decoded and augmented under ``seed``, or ``(None, name, why)``."""

    def __init__(self, ds: FileDataset, transform: Any) -> None:
        self.ds, self.transform = ds, transform

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, key: tuple[int, int]) -> tuple[Any, ...]:
        from PIL import Image, UnidentifiedImageError

        i, seed = key
        try:
            with Image.open(io.BytesIO(self.ds.read(i))) as im:
                image = im.convert("RGB")
        except (OSError, ValueError, SyntaxError, EOFError, struct.error, Image.DecompressionBombError) as exc:
            if isinstance(exc, UnidentifiedImageError):
                return None, self.ds.name(i), "not an image format PIL can identify"
            return None, self.ds.name(i), str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if torch.utils.data.get_worker_info() is not None:  # a worker process: its generators are its own
            return self._augment(image, seed), int(self.ds.labels[i])
        state = random.getstate()  # workers=0: decoding in the caller's process leaves its generators as they were
        with torch.random.fork_rng(devices=[]):
            try:
                return self._augment(image, seed), int(self.ds.labels[i])
            finally:
                random.setstate(state)

    def _augment(self, image: Any, seed: int) -> torch.Tensor:
        random.seed(seed)  # timm's crop draws from random, torchvision's flip / jitter from torch's CPU generator
        torch.default_generator.manual_seed(seed)  # (not torch.manual_seed: that would reseed CUDA's generators too)
        return self.transform(image)


def _collate(items: list[tuple[Any, ...]]) -> tuple[Any, Any, list[tuple[str, str]]]:
    good = [it for it in items if it[0] is not None]
    bad = [(it[1], it[2]) for it in items if it[0] is None]
    if not good:
        return None, None, bad
    return torch.stack([g[0] for g in good]), torch.tensor([g[1] for g in good], dtype=torch.int64), bad


class _Plan:
    """The DataLoader's batch sampler: the keys of batches ``step..`` of the current epoch.

    It holds copies, not the loader (no reference cycle: a dropped loader shuts its workers down at once).
    """

    def __init__(self, seed: int, shuffle: bool, positions: torch.Tensor, size: int, batch_size: int, batches: int):
        self.seed, self.shuffle, self.positions, self.size = seed, shuffle, positions, size
        self.batch_size, self.batches, self.epoch, self.step = batch_size, batches, 0, 0

    def __len__(self) -> int:
        return self.batches - self.step

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        g = torch.Generator().manual_seed(torch_seed(self.seed, self.epoch))
        order = (torch.randperm(self.size, generator=g) if self.shuffle else torch.arange(self.size))[self.positions].tolist()
        b = self.batch_size
        for s in range(self.step, self.batches):
            yield [(i, torch_seed(self.seed, self.epoch, i)) for i in order[s * b : (s + 1) * b]]


class StreamLoader(ShardedEpochs):
    """Iterates over ``(x, y)`` batches of a :class:`FileDataset`, decoded in ``ds.workers`` processes.

    ``x`` is float32 NCHW at ``image_size``, normalised with ``mean`` / ``std`` (channels_last when
    asked), on ``device``; ``y`` is int64. Build one with :func:`genas.data.build_loader`; the
    arguments are those of :class:`genas.data.TensorLoader` plus ``image_size``.
    """

    def __init__(self, ds: FileDataset, mean: tuple[float, ...], std: tuple[float, ...], batch_size: int, *,
                 shuffle: bool, augment: str, drop_last: bool, seed: int = 0, device: str | torch.device = "cpu",
                 channels_last: bool = False, rank: int = 0, world_size: int = 1, image_size: int = 224) -> None:  # fmt: skip
        super().__init__(len(ds), batch_size, drop_last, rank, world_size)
        self.ds, self.device = ds, torch.device(device)
        self.shuffle, self.augment, self.seed, self.channels_last = shuffle, augment, seed, channels_last
        self.image_size = image_size
        self.transform = build_transform(augment, image_size, mean, std)
        self._plan = _Plan(seed, shuffle, self._positions, len(ds), batch_size, self._num_batches)
        self._loader: torch.utils.data.DataLoader | None = None
        self.skipped: list[tuple[str, str]] = []  # files skipped in the epoch being read (name, why)

    def __repr__(self) -> str:
        return (f"StreamLoader(n={self.dataset_size}, batch_size={self._batch_size}, batches={len(self)}, "
                f"workers={self.ds.workers}, augment={self.augment!r}, size={self.image_size}, "
                f"rank={self.rank}/{self.world_size}, device={self.device})")  # fmt: skip

    def _data_loader(self, batch_sampler: Any, persistent: bool) -> torch.utils.data.DataLoader:
        workers = self.ds.workers
        return torch.utils.data.DataLoader(
            _Decode(self.ds, self.transform), batch_sampler=batch_sampler, num_workers=workers, collate_fn=_collate,
            pin_memory=self.device.type == "cuda", persistent_workers=persistent and workers > 0,
            prefetch_factor=4 if workers else None,
            generator=torch.Generator().manual_seed(self.seed),  # (the workers' base seeds: not the global generator)
        )  # fmt: skip

    def iter_from(self, epoch: int, step: int) -> Iterator[Batch]:
        """Yield the batches of ``epoch`` from ``step`` on, exactly as an uninterrupted pass would."""
        self._plan.epoch, self._plan.step = epoch, step
        if self._loader is None:
            self._loader = self._data_loader(self._plan, persistent=True)
        return self._deliver(self._loader, f"epoch {epoch + 1}" if self.shuffle else "an evaluation pass")

    def _deliver(self, loader: Any, when: str) -> Iterator[Batch]:
        """The batches of ``loader`` on the device; one warning line at the end naming what was skipped ``when``."""
        self.skipped = []
        for x, y, bad in loader:
            if bad and self.ds.on_error == "raise":
                name, why = bad[0]
                raise DataNotFoundError(f"cannot decode image {name}: {why}; allowed: a readable JPEG/PNG/WebP "
                                        "(or data.options.on_error skip to skip and count such files)")  # fmt: skip
            self.skipped += bad
            if x is None:
                raise DataNotFoundError(f"no image of a batch could be decoded ({len(bad)} files, first {bad[0][0]}: "
                                        f"{bad[0][1]}); check the dataset's files")  # fmt: skip
            x = x.to(self.device, non_blocking=True)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, y.to(self.device, non_blocking=True)
        if self.skipped:
            name, why = self.skipped[0]
            rank = f" (rank {self.rank})" if self.world_size > 1 else ""
            print(f"warning: skipped {len(self.skipped)} image(s) that could not be decoded in {when}{rank}, first {name} "
                  f"({why}); data.options.on_error raise stops at such a file instead", file=sys.stderr)  # fmt: skip

    def batches(self, n: int, seed: int) -> list[Batch]:
        """``n`` full batches drawn as :meth:`genas.data.TensorLoader.batches` draws them (for BN and scoring)."""
        _, order = fixed_draw(len(self.ds), n * self._batch_size, seed)
        keys = [(i, torch_seed(seed, FIXED_DRAW, p)) for p, i in enumerate(order.tolist())]
        plan = [keys[k * self._batch_size : (k + 1) * self._batch_size] for k in range(n)]
        return list(self._deliver(self._data_loader(plan, persistent=False), f"{n} fixed batches"))
