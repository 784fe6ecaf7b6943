"""The records every dataset produces, the dataset registry, and the seeded split helpers.

A dataset is held in memory as plain numpy arrays (:class:`ArrayDataset`: uint8 NHWC
images, int64 labels); a :class:`DataBundle` groups the train / valid / test splits with
what a model and a loader need to know (classes, channels, size, mean/std, augmentation).

Every split here is *stratified* (each class keeps its share, up to rounding) and
*seeded*: the same ``seed`` always gives the same indices, returned in their original
order, and nothing touches a global random state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import numpy as np

from genas.errors import ConfigError
from genas.registry import Registry
from genas.validation import Boolean, Configurable, Interval, Nullable, OneOf

__all__ = [
    "ArrayDataset",
    "DataBundle",
    "DATASETS",
    "AUGMENTATIONS",
    "Builder",
    "split_rng",
    "stratified_split",
    "cap",
    "channel_stats",
    "make_bundle",
    "dataset_options",
    "DatasetOptions",
]

#: Augmentation names understood by :func:`genas.data.build_loader`.
#: ``"cifar"`` = random crop with zero padding ``max(1, image_size // 8)`` (4 at 32x32, 2 at 16x16)
#: plus horizontal flip; ``"crop"`` and ``"flip"`` are its two halves; ``"none"`` does nothing.
#: Cutout (a zeroed square after normalisation) goes on top of any of them: ``build_loader(cutout=16)``.
AUGMENTATIONS = ("cifar", "crop", "flip", "none")


@dataclass(frozen=True, eq=False)
class ArrayDataset:
    """Images and labels of one split, in memory.

    Attributes:
        images: ``(N, H, W, C)`` uint8 array.
        labels: ``(N,)`` int64 array.
    """

    images: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        images, labels = np.asarray(self.images), np.asarray(self.labels)
        if images.ndim != 4 or images.dtype != np.uint8:
            raise ValueError(
                f"ArrayDataset images must be a (N, H, W, C) uint8 array. Got shape {images.shape} "
                f"and dtype {images.dtype} instead."
            )
        if labels.ndim != 1 or len(labels) != len(images) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(
                f"ArrayDataset labels must be a ({len(images)},) integer array. Got shape {labels.shape} "
                f"and dtype {labels.dtype} instead."
            )
        object.__setattr__(self, "images", images)
        object.__setattr__(self, "labels", labels.astype(np.int64, copy=False))

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        return f"ArrayDataset(images={self.images.shape}, labels={self.labels.shape})"

    def subset(self, indices: Sequence[int] | np.ndarray) -> ArrayDataset:
        """A new dataset holding the samples at ``indices`` (ints or a boolean mask), in that order."""
        idx = np.asarray(indices)
        if idx.dtype != np.bool_:
            idx = idx.astype(np.int64, copy=False)
        return ArrayDataset(self.images[idx], self.labels[idx])

    def with_random_labels(self, num_classes: int, seed: int) -> ArrayDataset:
        """The same images with labels drawn uniformly from ``range(num_classes)`` (RLNAS).

        The draw depends only on ``seed`` and ``len(self)``, so every run (and every rank)
        that asks with the same seed sees the same random labels.

        Args:
            num_classes: Number of classes to draw from.
            seed: Seed of the draw.

        Returns:
            A dataset sharing this one's images.
        """
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ConfigError(
                f"The 'num_classes' parameter of with_random_labels must be an int in the range [1, inf). "
                f"Got {num_classes!r} instead."
            )
        rng = np.random.default_rng([seed, 0x524C])  # "RL": its own stream, apart from the split streams
        return ArrayDataset(self.images, rng.integers(0, num_classes, size=len(self), dtype=np.int64))


@dataclass(frozen=True, eq=False)
class DataBundle:
    """A dataset's three splits and what models and loaders need to know about it.

    Attributes:
        name: Registry name, e.g. ``"cifar10"``.
        num_classes: Number of classes.
        channels: Image channels (1 or 3).
        image_size: Side of the square images.
        mean: Per-channel mean of ``x / 255``.
        std: Per-channel standard deviation of ``x / 255``.
        train: Split that trains the supernet weights (and recalibrates BN).
        valid: Held-out split the scorers use.
        test: Final evaluation split.
        augment: Default training augmentation, one of :data:`AUGMENTATIONS`.
    """

    name: str
    num_classes: int
    channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    train: ArrayDataset
    valid: ArrayDataset
    test: ArrayDataset
    augment: str

    def __post_init__(self) -> None:
        for part in ("train", "valid", "test"):
            labels = getattr(self, part).labels
            if labels.size and (labels.min() < 0 or labels.max() >= self.num_classes):
                from genas.errors import DataNotFoundError

                raise DataNotFoundError(f"dataset {self.name!r}: {part} labels span {labels.min()}..{labels.max()}, "
                                        f"outside the {self.num_classes} classes 0..{self.num_classes - 1}")  # fmt: skip

    def __repr__(self) -> str:
        return (
            f"DataBundle({self.name!r}, classes={self.num_classes}, {self.channels}x{self.image_size}x"
            f"{self.image_size}, train={len(self.train)}, valid={len(self.valid)}, test={len(self.test)}, "
            f"augment={self.augment!r})"
        )


#: Signature of a registered dataset builder; :func:`genas.data.create_dataset` validates the
#: options, calls it with all six as keywords, then applies ``limit`` to any split still larger.
Builder = Callable[..., DataBundle]

#: Every dataset genas can build. Register with ``splits=`` (the ``split`` values it accepts),
#: ``files=`` (whether it reads files), ``download=`` (whether ``download=True`` works) and
#: ``stream=`` (it returns file lists read by workers, and takes ``image_size``).
DATASETS: Registry[Builder] = Registry("dataset", builtins=("genas.data.datasets", "genas.data.stream"))


class DatasetOptions(Configurable):
    """The options a dataset takes in the ``data`` config section (``data.options``), read from its registry entry.

    A dataset is a builder function; what it takes follows from how it was registered: ``root`` if
    it reads files, ``download`` if genas can download it, ``split`` if it has more than the default
    split, and ``image_size``, ``workers``, ``on_error`` if it streams files through loader workers.
    """

    dataset: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    types: ClassVar[dict[str, Any]] = {"root": str | None, "download": bool, "split": str, "image_size": int | None,
                                       "workers": int, "on_error": str}  # fmt: skip

    @classmethod
    def option_defaults(cls) -> dict[str, Any]:
        return dict(cls.defaults)

    @classmethod
    def option_types(cls) -> dict[str, Any]:
        return {k: cls.types[k] for k in cls.defaults}


def dataset_options(name: str) -> type[DatasetOptions]:
    """The :class:`DatasetOptions` of registered dataset ``name`` (an unknown name: one line with a suggestion)."""
    meta = DATASETS.entry(name).meta
    defaults: dict[str, Any] = {}
    if meta.get("files", True):
        defaults["root"] = None
    if meta.get("download", False):
        defaults["download"] = False
    splits = tuple(meta.get("splits", ("default",)))
    if len(splits) > 1:
        defaults["split"] = "default"
    if meta.get("stream", False):
        defaults.update(image_size=None, workers=4, on_error="skip")
    constraints = {"split": OneOf(splits), "download": Boolean(), "image_size": Nullable(Interval(int, 8, 4096)),
                   "workers": Interval(int, 0, 256), "on_error": OneOf(("skip", "raise"))}  # fmt: skip
    return type(f"DatasetOptions[{name}]", (DatasetOptions,), {"dataset": name, "defaults": defaults, "constraints": constraints})


def split_rng(seed: int, purpose: int) -> np.random.Generator:
    """A generator for one purpose (split, limit, synthesis) that depends only on ``seed``."""
    return np.random.default_rng([seed, purpose])


def stratified_split(labels: np.ndarray, n_first: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Split ``range(len(labels))`` into ``n_first`` indices and the rest, class by class.

    Each class contributes ``count * n_first / N`` samples to the first part, rounded so the
    total is exactly ``n_first`` (largest remainders first).

    Args:
        labels: ``(N,)`` labels.
        n_first: Size of the first part, in ``[0, N]``.
        rng: Source of the per-class shuffles.

    Returns:
        The two index arrays, each sorted ascending.
    """
    n = len(labels)
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    exact = counts * (n_first / max(n, 1))
    quota = np.floor(exact).astype(np.int64)
    short = n_first - int(quota.sum())
    quota[np.argsort(quota - exact, kind="stable")[:short]] += 1
    by_class = np.split(np.argsort(inverse, kind="stable"), np.cumsum(counts)[:-1])
    picked = [rng.permutation(members)[:q] for members, q in zip(by_class, quota)]
    first = np.sort(np.concatenate(picked)) if picked else np.zeros(0, np.int64)
    mask = np.ones(n, dtype=bool)
    mask[first] = False
    return first, np.flatnonzero(mask)


def cap(ds: ArrayDataset, limit: int | None, rng: np.random.Generator) -> ArrayDataset:
    """``ds`` itself, or a stratified subset of ``limit`` samples when it is larger."""
    if limit is None or len(ds) <= limit:
        return ds
    return ds.subset(stratified_split(ds.labels, limit, rng)[0])


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean and std of ``images / 255`` (from a histogram, no float copy)."""
    levels = np.arange(256, dtype=np.float64) / 255.0
    means, stds = [], []
    for c in range(images.shape[-1]):
        hist = np.bincount(images[..., c].ravel(), minlength=256).astype(np.float64)
        total = max(hist.sum(), 1.0)
        mean = float(hist @ levels / total)
        var = float(hist @ (levels - mean) ** 2 / total)
        means.append(round(mean, 6))
        stds.append(round(max(var, 1e-12) ** 0.5, 6))
    return tuple(means), tuple(stds)


def _fraction_count(fraction: float, n: int, what: str, owner: str) -> int:
    count = int(round(fraction * n))
    if not 0 < count < n:
        raise ConfigError(
            f"The 'valid_fraction' parameter of {owner} gives {count} of {n} {what} samples for valid; "
            f"it must leave at least one sample on each side. Got {fraction!r} instead."
        )
    return count


def make_bundle(
    name: str,
    train_pool: ArrayDataset,
    test_pool: ArrayDataset,
    *,
    split: str,
    valid_fraction: float | None,
    default_valid_fraction: float,
    seed: int,
    augment: str,
    num_classes: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    nb201_valid_from: str = "train",
    valid_pool: ArrayDataset | None = None,
) -> DataBundle:
    """Carve valid out of an official train/test pair and fill in the bundle's metadata.

    ``split="default"``: valid is a stratified ``valid_fraction`` of ``train_pool``; test is
    ``test_pool``. ``split="nb201"``: with ``nb201_valid_from="train"`` train and valid are
    stratified halves of ``train_pool`` (CIFAR-10 in NAS-Bench-201); with ``"test"`` train is
    all of ``train_pool`` and valid / test are stratified halves of ``test_pool`` (CIFAR-100
    and ImageNet16-120 in NAS-Bench-201). A ``valid_pool`` is a split made ahead of time (an npz
    file written by :func:`save_split_npz`): train, valid and test are then taken as they are,
    whatever ``split`` says.

    Args:
        name: Registry name.
        train_pool: The official training set.
        test_pool: The official test (or validation) set.
        split: ``"default"`` or ``"nb201"``.
        valid_fraction: Share of ``train_pool`` held out as valid (``split="default"`` only).
        default_valid_fraction: Used when ``valid_fraction`` is None.
        seed: Seed of the split.
        augment: Default training augmentation.
        num_classes: Defaults to the largest label in either pool plus one.
        mean: Per-channel mean of x/255; computed from ``train_pool`` when None.
        std: Per-channel std of x/255; computed from ``train_pool`` when None.
        nb201_valid_from: Which pool ``split="nb201"`` halves, ``"train"`` or ``"test"``.
        valid_pool: A ready-made held-out split (then nothing is carved).

    Returns:
        The bundle (before any ``limit``).
    """
    owner = f"create_dataset({name!r})"
    rng = split_rng(seed, 1)
    if valid_pool is not None:
        if valid_fraction is not None:
            raise ConfigError(
                f"The 'valid_fraction' parameter of {owner} must be unset (null): the file holds a ready-made "
                f"valid split (x_valid). Got {valid_fraction!r} instead."
            )
        train, valid, test = train_pool, valid_pool, test_pool
    elif split == "nb201":
        if valid_fraction is not None:
            raise ConfigError(
                f"The 'valid_fraction' parameter of {owner} must be unset (null) with split='nb201', "
                f"which always uses halves. Got {valid_fraction!r} instead."
            )
        pool = train_pool if nb201_valid_from == "train" else test_pool
        first, second = stratified_split(pool.labels, len(pool) // 2, rng)
        if nb201_valid_from == "train":
            train, valid, test = pool.subset(first), pool.subset(second), test_pool
        else:
            train, valid, test = train_pool, pool.subset(first), pool.subset(second)
    else:
        fraction = default_valid_fraction if valid_fraction is None else valid_fraction
        n_valid = _fraction_count(fraction, len(train_pool), "training", owner)
        valid_idx, train_idx = stratified_split(train_pool.labels, n_valid, rng)
        train, valid, test = train_pool.subset(train_idx), train_pool.subset(valid_idx), test_pool
    if mean is None or std is None:
        mean, std = channel_stats(train_pool.images)
    if num_classes is None:
        num_classes = int(max(train_pool.labels.max(initial=-1), test_pool.labels.max(initial=-1))) + 1
    _, height, width, channels = train_pool.images.shape
    if height != width:
        raise ConfigError(f"{name}: images must be square; got {height}x{width}.")
    return DataBundle(
        name=name,
        num_classes=num_classes,
        channels=channels,
        image_size=height,
        mean=tuple(float(m) for m in mean),
        std=tuple(float(s) for s in std),
        train=train,
        valid=valid,
        test=test,
        augment=augment,
    )
