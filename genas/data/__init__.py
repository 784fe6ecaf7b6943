"""Datasets and their loaders: held in memory as uint8 arrays, or streamed from files (ImageNet).

Two front doors::

    bundle = create_dataset("cifar10", root="data/", split="nb201")
    loader = build_loader(bundle.train, bundle, 256, train=True, seed=0, device="cuda")

:func:`create_dataset` looks the name up in :data:`DATASETS` (``list_datasets()`` shows them)
and returns a :class:`DataBundle` with train / valid / test :class:`ArrayDataset` splits;
:func:`build_loader` wraps one split in a :class:`TensorLoader`. The streaming datasets
(``imagefolder``, ``wds``: :mod:`genas.data.stream`) hold file lists instead and get a
:class:`~genas.data.stream_loader.StreamLoader` with the same interface. See ``docs/data.md``.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

from genas.data.base import AUGMENTATIONS, DATASETS, ArrayDataset, DataBundle, cap, split_rng
from genas.lazy import lazy_exports
from genas.errors import ConfigError
from genas.io import atomic_writer
from genas.validation import check_bool, check_choice, check_float, check_int

__getattr__, __dir__ = lazy_exports(__name__, {"TensorLoader": "genas.data.loader", "build_loader": "genas.data.loader"})

__all__ = [
    "DATASETS",
    "AUGMENTATIONS",
    "ArrayDataset",
    "DataBundle",
    "TensorLoader",
    "build_loader",
    "create_dataset",
    "list_datasets",
    "save_split_npz",
    "build_data",
    "record_split",
    "concat",
]


def list_datasets(pattern: str = "*") -> list[str]:
    """Registered dataset names matching the shell-style ``pattern``, naturally sorted."""
    return DATASETS.list(pattern)


def create_dataset(
    name: str,
    root: str | None = None,
    split: str = "default",
    download: bool = False,
    valid_fraction: float | None = None,
    limit: int | None = None,
    seed: int = 0,
    image_size: int | None = None,
) -> DataBundle:
    """Load a registered dataset and split it into train / valid / test.

    Args:
        name: A name from :func:`list_datasets`, e.g. ``"digits"`` (the default, no files needed).
        root: Where the files are (a folder, or the file for ``npz``); None searches the
            dataset's environment variable and default folders. Ignored by datasets without files.
        split: ``"default"`` or, where supported, ``"nb201"`` (the NAS-Bench-201 protocol).
        download: Let torchvision download CIFAR into ``root`` (needs internet).
        valid_fraction: Share of the official training set held out as ``valid`` with
            ``split="default"``; None keeps the dataset's default.
        limit: Cap every split at this many samples (a seeded, stratified subset) for quick runs;
            for ``synthetic`` it is the number of training images.
        seed: Seeds the splits, the ``limit`` subsets and synthetic data.
        image_size: Side of the images a streaming dataset's loader produces (its crop; 224 when
            None); in-memory datasets have their own size and refuse it.

    Returns:
        The bundle.

    Raises:
        UnknownNameError: ``name`` is not registered (the message suggests close names).
        ConfigError: An option is out of range or not supported by the dataset.
        DataNotFoundError: The dataset's files are not where they were looked for.

    Example:
        >>> from genas.data import create_dataset
        >>> bundle = create_dataset("digits", seed=0)
        >>> len(bundle.train), len(bundle.valid), len(bundle.test), bundle.num_classes
        (1078, 360, 359, 10)
    """
    entry = DATASETS.entry(name)
    owner = f"create_dataset({name!r})"
    check_choice(split, "split", owner, entry.meta.get("splits", ("default",)))
    check_bool(download, "download", owner)
    if download and entry.meta.get("files", True) and not entry.meta.get("download", False):
        raise ConfigError(
            f"The 'download' parameter of {owner} must be false: genas cannot download {name}; "
            "docs/data.md says where to get its files. Got True instead."
        )
    if root is not None and not isinstance(root, str):
        root = str(root)  # accept pathlib.Path
    if valid_fraction is not None:
        check_float(valid_fraction, "valid_fraction", owner, 0.0, 1.0, closed="neither")
    if limit is not None:
        check_int(limit, "limit", owner, 1)
    check_int(seed, "seed", owner, 0)
    extra = {}
    if image_size is not None:
        if not entry.meta.get("stream", False):
            raise ConfigError(f"The 'image_size' parameter of {owner} must be unset (null): {name} images have their "
                              f"own size; only the streaming datasets (imagefolder, wds) take one. Got {image_size!r} instead.")  # fmt: skip
        extra["image_size"] = check_int(image_size, "image_size", owner, 8, 4096)
    bundle = entry.obj(
        root=root, split=split, download=download, valid_fraction=valid_fraction, limit=limit, seed=seed, **extra
    )
    if limit is None:
        return bundle
    rng = split_rng(seed, 3)
    parts = {part: cap(getattr(bundle, part), limit, rng) for part in ("train", "valid", "test")}
    return dataclasses.replace(bundle, **parts)


def save_split_npz(bundle: DataBundle, path: str, sizes: dict[str, int] | None = None) -> None:
    """Write ``bundle``'s three splits, as they are, to an npz file readable as ``npz`` or CIFAR.

    The file holds ``x_train/y_train``, ``x_valid/y_valid`` and ``x_test/y_test``; reading it
    back (``create_dataset("cifar10", root=path)`` or ``"npz"``) takes the splits as written,
    so a split made on one machine (the NAS-Bench-201 halves, say) travels unchanged, and
    ``sizes`` keeps only the first N samples of a split (a smaller file for a remote machine).

    Args:
        bundle: The splits to write.
        path: The ``.npz`` file, written atomically.
        sizes: Optional ``{"train"|"valid"|"test": N}`` caps (the first N, in order).

    Example:
        >>> import tempfile, os
        >>> from genas.data import create_dataset, save_split_npz
        >>> bundle = create_dataset("digits", seed=0)
        >>> path = os.path.join(tempfile.mkdtemp(), "digits.npz")
        >>> save_split_npz(bundle, path, sizes={"valid": 100})
        >>> again = create_dataset("npz", root=path)
        >>> len(again.train), len(again.valid), len(again.test)
        (1078, 100, 359)
    """
    sizes = dict(sizes or {})
    unknown = set(sizes) - {"train", "valid", "test"}
    if unknown:
        raise ConfigError(f"save_split_npz: unknown split(s) {sorted(unknown)} in sizes; allowed: train, valid, test.")
    arrays = {}
    for part in ("train", "valid", "test"):
        ds = getattr(bundle, part)
        n = check_int(sizes.get(part, len(ds)), f"sizes[{part!r}]", "save_split_npz", 1)
        arrays[f"x_{part}"], arrays[f"y_{part}"] = ds.images[:n], ds.labels[:n]
    with atomic_writer(path, "wb") as fh:
        np.savez(fh, **arrays)


def build_data(cfg: Any, seed: int, run_dir: str | os.PathLike | None = None) -> DataBundle:
    """The dataset bundle of a ``data`` config section (random labels applied to the training split if asked).

    Args:
        cfg: A :class:`genas.config.DataConfig` (``dataset``, its ``options``, ``limit``, ...).
        seed: The run's seed (splits, caps and random labels derive from it).
        run_dir: A run directory; for a streaming dataset whose split that run recorded
            (:func:`record_split`), the recorded files are used, not a new listing.
    """
    from genas.data.stream import FILE_LIST, read_file_list

    recorded = Path(run_dir) / FILE_LIST if run_dir is not None else None
    opts = cfg.dataset_kwargs()
    stream = DATASETS.entry(cfg.dataset).meta.get("stream", False)
    if stream and recorded is not None and recorded.is_file():
        bundle = read_file_list(cfg.dataset, recorded, opts["image_size"])  # the run's own files, not a new listing
    else:
        bundle = create_dataset(cfg.dataset, root=opts.get("root"), split=opts.get("split", "default"),
                                download=opts.get("download", False), valid_fraction=cfg.valid_fraction, limit=cfg.limit,
                                seed=seed, image_size=opts.get("image_size"))  # fmt: skip
    if stream:
        bundle = dataclasses.replace(bundle, **{part: dataclasses.replace(getattr(bundle, part), workers=opts["workers"],
                                     on_error=opts["on_error"]) for part in ("train", "valid", "test")})  # fmt: skip
    if cfg.random_labels:
        bundle = dataclasses.replace(bundle, train=bundle.train.with_random_labels(bundle.num_classes, seed))
    return bundle


def concat(first: Any, second: Any) -> Any:
    """One split holding ``first``'s samples then ``second``'s (two :class:`ArrayDataset` or two file lists)."""
    from genas.data.stream import FileDataset, concat_files

    if isinstance(first, FileDataset):
        return concat_files([first, second])
    return ArrayDataset(np.concatenate([first.images, second.images]), np.concatenate([first.labels, second.labels]))


def record_split(bundle: DataBundle, run_dir: str | os.PathLike) -> None:
    """Write a streaming bundle's file lists into ``run_dir`` (atomically, as ``data_files.csv``).

    Later :func:`build_data` calls given the same ``run_dir`` (a resume, the scorers of an evolution
    on this supernet, another node) read the files from there. In-memory bundles write nothing.
    """
    from genas.data.stream import FILE_LIST, FileDataset, write_file_list

    if isinstance(bundle.train, FileDataset):
        write_file_list(bundle, Path(run_dir) / FILE_LIST)
