"""The built-in datasets, one registered builder each.

Every builder takes the same keywords (``root, split, download, valid_fraction, limit, seed``),
already checked by :func:`genas.data.create_dataset`, and returns a :class:`DataBundle`.
File formats and search paths live in :mod:`genas.data.files`; see ``docs/data.md``.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from genas.data import files
from genas.data.base import (
    DATASETS,
    ArrayDataset,
    Builder,
    DataBundle,
    channel_stats,
    make_bundle,
    split_rng,
    stratified_split,
)
from genas.errors import DataNotFoundError

__all__ = ["SYNTHETIC_IMAGE_SIZE", "FASHION_MNIST_DIR", "CACHE_DIR", "synthetic_builder"]

#: Side of the images of the ``synthetic`` dataset.
SYNTHETIC_IMAGE_SIZE = 32
#: Where the Debian package ``dataset-fashion-mnist`` installs the four ``*-ubyte.gz`` files.
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
#: Default folder for CIFAR and ImageNet16 when neither ``root`` nor the env var is set.
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "genas" / "data"

# Standard statistics of x/255 on each official training set.
CIFAR10_STATS = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
CIFAR100_STATS = ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
FASHION_MNIST_STATS = ((0.2860,), (0.3530,))
IMAGENET16_STATS = (  # NAS-Bench-201's values
    tuple(v / 255 for v in (122.68, 116.66, 104.01)),
    tuple(v / 255 for v in (63.22, 61.26, 65.09)),
)


@functools.lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    images.setflags(write=False)
    labels = digits.target.astype(np.int64)
    labels.setflags(write=False)
    return images, labels


@DATASETS.register(
    "digits", description="scikit-learn 8x8 handwritten digits, 1797 images, 10 classes (default; no files)",
    splits=("default",), files=False, download=False,
)
def _digits(
    *, root: str | None, split: str, download: bool, valid_fraction: float | None, limit: int | None, seed: int
) -> DataBundle:
    """60/20/20 stratified train/valid/test split of scikit-learn's ``load_digits``."""
    images, labels = _digits_arrays()
    full = ArrayDataset(images, labels)
    test_idx, pool_idx = stratified_split(labels, int(round(0.2 * len(labels))), split_rng(seed, 0))
    return make_bundle(
        "digits", full.subset(pool_idx), full.subset(test_idx), split=split, valid_fraction=valid_fraction,
        default_valid_fraction=0.25, seed=seed, augment="none",
    )


def synthetic_builder(
    image_size: int = SYNTHETIC_IMAGE_SIZE,
    channels: int = 3,
    num_classes: int = 10,
    default_train: int = 512,
    name: str = "synthetic",
) -> Builder:
    """Make a builder of seeded images whose label is learnable from a class template.

    Each class owns a blocky random colour template; an image is half its class template and
    half uniform noise. ``limit`` sets the number of training images (default
    ``default_train``); valid and test each get ``valid_fraction`` (default 1/4) of that.
    Register a variant with e.g. ``DATASETS.add("synthetic-16", synthetic_builder(16, name="synthetic-16"),
    splits=("default",), files=False, download=False)``.

    Args:
        image_size: Side of the square images.
        channels: Channels per image.
        num_classes: Number of classes (balanced).
        default_train: Training images when ``limit`` is unset.
        name: The bundle's name.

    Returns:
        A dataset builder for :data:`DATASETS`.
    """

    def build(
        *, root: str | None, split: str, download: bool, valid_fraction: float | None, limit: int | None, seed: int
    ) -> DataBundle:
        rng = split_rng(seed, 2)
        blocks = min(4, image_size)
        templates = rng.random((num_classes, blocks, blocks, channels))
        cells = (np.arange(image_size) * blocks) // image_size
        templates = templates[:, cells][:, :, cells]  # nearest upsampling to image_size

        def draw(n: int) -> ArrayDataset:
            labels = rng.permutation(np.arange(n) % num_classes).astype(np.int64)
            noise = rng.random((n, image_size, image_size, channels))
            images = np.round(255.0 * (0.5 * templates[labels] + 0.5 * noise)).astype(np.uint8)
            return ArrayDataset(images, labels)

        n_train = default_train if limit is None else limit
        n_eval = max(1, int(round(n_train * (0.25 if valid_fraction is None else valid_fraction))))
        train, valid, test = draw(n_train), draw(n_eval), draw(n_eval)
        mean, std = channel_stats(train.images)
        return DataBundle(
            name=name, num_classes=num_classes, channels=channels, image_size=image_size,
            mean=mean, std=std, train=train, valid=valid, test=test, augment="none",
        )

    build.__doc__ = f"Seeded {channels}x{image_size}x{image_size} images, {num_classes} learnable classes."
    return build


DATASETS.add(
    "synthetic", synthetic_builder(), description="seeded 3x32x32 class-template images (fast tests; no files)",
    splits=("default",), files=False, download=False,
)


@DATASETS.register(
    "npz", description="any npz file with uint8 NHWC x_train/y_train/x_test/y_test (root = the file)",
    splits=("default", "nb201"), files=True, download=False,
)
def _npz(
    *, root: str | None, split: str, download: bool, valid_fraction: float | None, limit: int | None, seed: int
) -> DataBundle:
    """Generic npz arrays; mean/std from ``x_train``; num_classes = largest label + 1."""
    path = files.locate(
        "npz", root, "GENAS_NPZ", [], lambda p: p if p.is_file() else None, "npz file",
        "Pass data.options.root=/path/to/file.npz (arrays x_train, y_train, x_test, y_test) or set $GENAS_NPZ.",
    )
    train_pool, test_pool, valid_pool = files.read_npz(path)
    return make_bundle(
        "npz", train_pool, test_pool, valid_pool=valid_pool, split=split, valid_fraction=valid_fraction,
        default_valid_fraction=0.1, seed=seed, augment="none",
    )


@DATASETS.register(
    "fashion-mnist", description="Fashion-MNIST 28x28 grayscale, 10 classes (local IDX files)",
    splits=("default",), files=True, download=False,
)
def _fashion_mnist(
    *, root: str | None, split: str, download: bool, valid_fraction: float | None, limit: int | None, seed: int
) -> DataBundle:
    """Fashion-MNIST from IDX files; valid is a stratified 1/6 of the 60k training images."""
    folder = files.locate(
        "fashion-mnist", root, "GENAS_FASHION_MNIST", [FASHION_MNIST_DIR], files.fashion_mnist_probe,
        "train-images-idx3-ubyte(.gz)",
        "Install with `apt-get install dataset-fashion-mnist`, set $GENAS_FASHION_MNIST, or pass data.options.root.",
    )
    train_pool, test_pool = files.read_fashion_mnist(folder)
    mean, std = FASHION_MNIST_STATS
    return make_bundle(
        "fashion-mnist", train_pool, test_pool, split=split, valid_fraction=valid_fraction,
        default_valid_fraction=1 / 6, seed=seed, augment="none", num_classes=10, mean=mean, std=std,
    )


def _cifar(name: str, num_classes: int, stats, nb201_valid_from: str) -> Builder:
    folder_name = "cifar-10-batches-py" if name == "cifar10" else "cifar-100-python"
    env_var = "GENAS_" + name.upper()

    def build(
        *, root: str | None, split: str, download: bool, valid_fraction: float | None, limit: int | None, seed: int
    ) -> DataBundle:
        if download:
            path = Path(root or os.environ.get(env_var) or CACHE_DIR / name).expanduser()
        else:
            path = files.locate(
                name, root, env_var, [CACHE_DIR / name], files.cifar_probe(folder_name),
                f"{folder_name}/ (torchvision layout) or .npz file",
                f"Pass data.options.root (a folder or an npz file), set ${env_var}, or pass data.options.download=true "
                "(needs internet).",
            )
        train_pool, test_pool, valid_pool = files.read_cifar(name, path, download)
        return make_bundle(
            name, train_pool, test_pool, valid_pool=valid_pool, split=split, valid_fraction=valid_fraction,
            default_valid_fraction=0.1, seed=seed, augment="cifar", num_classes=num_classes, mean=stats[0],
            std=stats[1], nb201_valid_from=nb201_valid_from,
        )

    build.__doc__ = f"{name} via torchvision (or an npz file); split='nb201' follows NAS-Bench-201."
    return build


DATASETS.add(
    "cifar10", _cifar("cifar10", 10, CIFAR10_STATS, "train"),
    description="CIFAR-10 32x32, 10 classes (torchvision folder or npz file)",
    splits=("default", "nb201"), files=True, download=True,
)
DATASETS.add(
    "cifar100", _cifar("cifar100", 100, CIFAR100_STATS, "test"),
    description="CIFAR-100 32x32, 100 classes (torchvision folder or npz file)",
    splits=("default", "nb201"), files=True, download=True,
)


@DATASETS.register(
    "imagenet16-120", description="downsampled ImageNet 16x16, first 120 classes (NAS-Bench-201 files)",
    splits=("default", "nb201"), files=True, download=False,
)
def _imagenet16_120(
    *, root: str | None, split: str, download: bool, valid_fraction: float | None, limit: int | None, seed: int
) -> DataBundle:
    """ImageNet16-120 from the ``train_data_batch_*`` / ``val_data`` pickles."""
    folder = files.locate(
        "imagenet16-120", root, "GENAS_IMAGENET16", [CACHE_DIR / "ImageNet16"], files.imagenet16_probe,
        "train_data_batch_1 (downsampled ImageNet 16x16 pickles)",
        "Get Imagenet16_train.zip / Imagenet16_val.zip from image-net.org (Downsampled ImageNet), "
        "unpack both into one folder, and pass data.options.root or set $GENAS_IMAGENET16.",
    )
    train_pool, val_pool = files.read_imagenet16(folder, 120)
    if len(train_pool) == 0:
        raise DataNotFoundError(f"imagenet16-120: no images with labels 1..120 in {folder}.")
    mean, std = IMAGENET16_STATS
    return make_bundle(
        "imagenet16-120", train_pool, val_pool, split=split, valid_fraction=valid_fraction,
        default_valid_fraction=0.05, seed=seed, augment="cifar", num_classes=120, mean=mean, std=std,
        nb201_valid_from="test",
    )
