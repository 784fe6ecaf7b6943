"""Datasets read from disk as they are used: an ImageFolder tree or WebDataset tar shards.

ImageNet does not fit in memory (1.28M JPEGs, about 140 GB), so these two formats keep only a
*file list* in memory (:class:`FileDataset`: where each image's bytes are, and its label) and
decode in DataLoader workers (:mod:`genas.data.stream_loader`). Layouts, under ``data.options.root``:

- ``imagefolder``: ``train/<class>/<image>`` and ``val/<class>/<image>`` (torchvision's and
  timm's ImageFolder; class indices are the sorted folder names of ``train/``).
- ``wds``: ``train/*.tar`` and ``val/*.tar`` WebDataset shards (or ``train.txt`` / ``val.txt``
  listing shard paths, one per line, relative to the root), each sample a ``<key>.jpg`` (or
  ``.jpeg``/``.png``/``.webp``) plus ``<key>.cls`` holding its class index as text. Each shard is
  indexed once (tar headers only) and samples are read by byte offset, so any order is possible
  and a resume continues at the exact sample.

The supernet's ``train`` part and the scorers' ``valid`` part are carved from ``train/`` as a
seeded, class-balanced split (``valid_fraction``, default 0.04: about 50 images per ImageNet
class, as SPOS holds out); ``test`` is ``val/``. :func:`write_file_list` records the three
parts in a run directory and :func:`read_file_list` reads them back, so the scorers, a resume and
every node use the same files even if the folder changes. See ``docs/data.md``.
"""

from __future__ import annotations

import csv
import os
import tarfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from genas.data.base import DATASETS, DataBundle, split_rng, stratified_split
from genas.errors import ConfigError, DataNotFoundError
from genas.io import atomic_writer

__all__ = ["FileDataset", "IMAGE_EXTENSIONS", "STREAM_AUGMENTATIONS", "IMAGENET_STATS", "list_image_folder", "index_shards",
           "write_file_list", "read_file_list", "FILE_LIST", "concat_files"]  # fmt: skip

#: Image file endings read from folders and shards (lower-cased).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
#: Training augmentations of the streaming formats. ``"imagenet"``: RandomResizedCrop (scale 0.08-1),
#: horizontal flip and ColorJitter(0.4, 0.4, 0.4, hue 0.2), the DARTS ImageNet recipe; ``"spos"``: the
#: same with SPOS's ColorJitter(0.4, 0.4, 0.4), no hue; ``"rrc"``: without colour jitter; ``"none"``:
#: resize to size / 0.875 (256 for 224) and centre crop.
STREAM_AUGMENTATIONS = ("imagenet", "spos", "rrc", "none")
#: torchvision's ImageNet mean / std of x/255, used by both formats.
IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
#: The file a run keeps its data split in (:func:`write_file_list`).
FILE_LIST = "data_files.csv"
#: Default share of ``train/`` held out as ``valid`` (SPOS / GeNAS: 50 images per ImageNet class).
DEFAULT_VALID_FRACTION = 0.04


@dataclass(frozen=True, eq=False)
class FileDataset:
    """The images of one split as a file list: path, byte range inside a shard, label.

    Attributes:
        paths: ``(N,)`` fixed-width bytes array (``os.fsencode`` of each path): the image file, or the shard
            that holds it. Bytes in one buffer, not a list of ``str`` objects: DataLoader workers forked from
            the process share it without touching it (reference counts on a million Python strings would copy
            their pages into every worker).
        offsets: ``(N,)`` int64 byte offset of the image inside its shard; -1 for a plain file.
        sizes: ``(N,)`` int64 byte size inside the shard; -1 for a plain file.
        labels: ``(N,)`` int64 class indices.
        workers: DataLoader worker processes that decode and augment (``data.options.workers``).
        on_error: A file that cannot be decoded: ``"skip"`` it (counted, one warning line per epoch)
            or ``"raise"`` an error naming it (``data.options.on_error``).
    """

    paths: np.ndarray
    offsets: np.ndarray
    sizes: np.ndarray
    labels: np.ndarray
    workers: int = 4
    on_error: str = "skip"

    def __post_init__(self) -> None:
        n = len(self.labels)
        for name in ("paths", "offsets", "sizes"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"FileDataset: {name} has {len(getattr(self, name))} entries, labels {n}")
        object.__setattr__(self, "labels", np.asarray(self.labels, dtype=np.int64))
        object.__setattr__(self, "offsets", np.asarray(self.offsets, dtype=np.int64))
        object.__setattr__(self, "sizes", np.asarray(self.sizes, dtype=np.int64))
        paths = np.asarray(self.paths)
        if paths.dtype.kind != "S":
            paths = np.array([os.fsencode(p) for p in paths.tolist()], dtype=np.bytes_) if len(paths) else np.zeros(0, "S1")
        object.__setattr__(self, "paths", paths)

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        return f"FileDataset(n={len(self)}, first={self.name(0) if len(self) else None!r})"

    def name(self, i: int) -> str:
        """Sample ``i``'s file, or ``shard.tar@offset`` for a sample inside a shard."""
        path = self.path(i)
        return path if self.offsets[i] < 0 else f"{path}@{int(self.offsets[i])}"

    def path(self, i: int) -> str:
        """The file that holds sample ``i`` (the image, or its shard)."""
        return os.fsdecode(self.paths[i])

    def read(self, i: int) -> bytes:
        """The encoded bytes of sample ``i`` (``os.pread`` inside a shard: no shared file position)."""
        if self.offsets[i] < 0:
            with open(self.path(i), "rb") as fh:
                return fh.read()
        fd = os.open(self.path(i), os.O_RDONLY)
        try:
            return os.pread(fd, int(self.sizes[i]), int(self.offsets[i]))
        finally:
            os.close(fd)

    def subset(self, indices: Any) -> FileDataset:
        """A new dataset holding the samples at ``indices`` (ints or a boolean mask), in that order."""
        idx = np.asarray(indices)
        if idx.dtype != np.bool_:
            idx = idx.astype(np.int64, copy=False)
        return replace(self, paths=self.paths[idx], offsets=self.offsets[idx], sizes=self.sizes[idx], labels=self.labels[idx])

    def with_random_labels(self, num_classes: int, seed: int) -> FileDataset:
        """The same files with labels drawn as :meth:`genas.data.ArrayDataset.with_random_labels` draws them."""
        rng = np.random.default_rng([seed, 0x524C])
        return replace(self, labels=rng.integers(0, num_classes, size=len(self), dtype=np.int64))


def concat_files(parts: list[FileDataset]) -> FileDataset:
    """The samples of ``parts`` one after the other (reading settings of the first)."""
    if not parts:
        return FileDataset(np.zeros(0, object), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))
    return replace(parts[0], **{f: np.concatenate([getattr(p, f) for p in parts]) for f in ("paths", "offsets", "sizes", "labels")})


def _need_dir(path: Path, dataset: str, what: str) -> Path:
    if not path.is_dir():
        raise DataNotFoundError(f"{dataset}: no {what} folder at {path}; allowed layout: ROOT/train/ and ROOT/val/ "
                                "(docs/data.md)")  # fmt: skip
    return path


def list_image_folder(folder: Path, classes: list[str] | None = None) -> tuple[FileDataset, list[str]]:
    """Every image under ``folder/<class>/`` (recursively), sorted; the class names (sorted folder names).

    Args:
        folder: The split's folder, e.g. ``ROOT/train``.
        classes: The class names to expect (those of ``train/``); None takes ``folder``'s own.

    Raises:
        DataNotFoundError: A class folder holds no image, or the class sets of the two folders differ.
    """
    found = sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))
    if not found:
        raise DataNotFoundError(f"imagefolder: {folder} holds no class folder; allowed layout: "
                                f"{folder}/<class>/<image>{IMAGE_EXTENSIONS[0]}")  # fmt: skip
    if classes is not None and found != classes:
        extra, missing = sorted(set(found) - set(classes)), sorted(set(classes) - set(found))
        raise DataNotFoundError(f"imagefolder: the class folders of {folder} differ from train/'s: "
                                f"extra {extra[:5]}, missing {missing[:5]}; both must hold the same classes")  # fmt: skip
    paths, labels = [], []
    for label, name in enumerate(found):
        files = sorted(str(Path(d) / f) for d, _, fs in os.walk(folder / name) for f in fs
                       if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith("."))  # fmt: skip
        if not files:
            raise DataNotFoundError(f"imagefolder: class folder {folder / name} holds no image; allowed endings: "
                                    f"{', '.join(IMAGE_EXTENSIONS)} (remove the folder or add its images)")  # fmt: skip
        paths += files
        labels += [label] * len(files)
    n = len(paths)
    return FileDataset(np.array(paths, dtype=object), np.full(n, -1), np.full(n, -1), np.array(labels, dtype=np.int64)), found


def _shard_paths(root: Path, part: str) -> list[Path]:
    listing = root / f"{part}.txt"
    if listing.is_file():
        lines = [ln.strip() for ln in listing.read_text(encoding="utf-8").splitlines()]
        shards = [root / ln for ln in lines if ln and not ln.startswith("#")]
        missing = [str(s) for s in shards if not s.is_file()]
        if missing:
            raise DataNotFoundError(f"wds: {listing} lists {len(missing)} shard(s) that do not exist, first {missing[0]}; "
                                    "every listed shard must be a .tar file")  # fmt: skip
    else:
        shards = sorted(_need_dir(root / part, "wds", f"{part}/ (or {part}.txt)").glob("*.tar"))
    if not shards:
        raise DataNotFoundError(f"wds: no .tar shard in {root / part}; allowed: ROOT/{part}/*.tar or ROOT/{part}.txt")
    return shards


def index_shards(shards: list[Path]) -> FileDataset:
    """Index WebDataset shards: each ``<key>.<image ext>`` member paired with its ``<key>.cls`` label.

    Raises:
        DataNotFoundError: A shard is not a readable tar, or an image has no ``.cls`` (or a bad one).
    """
    parts = []
    for shard in shards:
        images: dict[str, tuple[int, int]] = {}
        labels: dict[str, int] = {}
        try:
            with tarfile.open(shard, "r:") as tar:
                for m in tar:
                    if not m.isfile():
                        continue
                    base = m.name.rsplit("/", 1)[-1]
                    key = m.name[: len(m.name) - len(base)] + base.split(".", 1)[0]
                    ext = "." + base.split(".", 1)[1].lower() if "." in base else ""
                    if ext in IMAGE_EXTENSIONS:
                        images[key] = (m.offset_data, m.size)
                    elif ext == ".cls":
                        text = tar.extractfile(m).read().decode("utf-8", "replace").strip()  # type: ignore[union-attr]
                        if not text.lstrip("-").isdigit() or int(text) < 0:
                            raise DataNotFoundError(f"wds: {shard}: {m.name} holds {text[:20]!r}; a .cls must hold a "
                                                    "class index (a non-negative integer)")  # fmt: skip
                        labels[key] = int(text)
        except (tarfile.TarError, OSError, EOFError) as exc:
            if isinstance(exc, DataNotFoundError):
                raise
            raise DataNotFoundError(f"wds: cannot read shard {shard}: {exc}; every shard must be an uncompressed .tar "
                                    "(samples are read by byte offset)") from None
        unlabelled = sorted(set(images) - set(labels))
        if unlabelled:
            raise DataNotFoundError(f"wds: {shard}: {len(unlabelled)} image(s) without a .cls label, first "
                                    f"{unlabelled[0]!r}; every sample needs <key>.cls")  # fmt: skip
        keys = sorted(images)
        n = len(keys)
        parts.append(FileDataset(np.full(n, str(shard), dtype=object), np.array([images[k][0] for k in keys]),
                                 np.array([images[k][1] for k in keys]), np.array([labels[k] for k in keys])))  # fmt: skip
    return concat_files(parts)


def _check_classes(train: FileDataset, test: FileDataset, root: Path) -> int:
    present = np.unique(train.labels)
    num_classes = int(present.max(initial=-1)) + 1
    if len(present) != num_classes:
        gap = sorted(set(range(num_classes)) - set(present.tolist()))
        raise DataNotFoundError(f"wds: the training shards of {root} hold no sample of class(es) {gap[:5]} "
                                f"(labels span 0..{num_classes - 1}); every class needs training samples")  # fmt: skip
    extra = sorted(set(np.unique(test.labels).tolist()) - set(present.tolist()))
    if extra:
        raise DataNotFoundError(f"wds: the val shards of {root} hold class(es) {extra[:5]} that no training shard "
                                f"holds (classes 0..{num_classes - 1}); both must hold the same classes")  # fmt: skip
    return num_classes


def _bundle(name: str, pool: FileDataset, test: FileDataset, num_classes: int, valid_fraction: float | None,
            seed: int, image_size: int) -> DataBundle:  # fmt: skip
    fraction = DEFAULT_VALID_FRACTION if valid_fraction is None else valid_fraction
    n_valid = int(round(fraction * len(pool)))
    if not 0 < n_valid < len(pool):
        raise ConfigError(f"The 'valid_fraction' parameter of create_dataset({name!r}) gives {n_valid} of {len(pool)} "
                          f"training images for valid; it must leave at least one on each side. Got {fraction!r} instead.")  # fmt: skip
    valid_idx, train_idx = stratified_split(pool.labels, n_valid, split_rng(seed, 1))
    return DataBundle(name=name, num_classes=num_classes, channels=3, image_size=image_size, mean=IMAGENET_STATS[0],
                      std=IMAGENET_STATS[1], train=pool.subset(train_idx), valid=pool.subset(valid_idx), test=test,
                      augment="imagenet")  # fmt: skip


def _root(name: str, root: str | None) -> Path:
    if root is None:
        env = os.environ.get("GENAS_IMAGENET")
        if not env:
            raise DataNotFoundError(f"{name}: no data.options.root given and $GENAS_IMAGENET is unset; pass data.options.root ROOT "
                                    "holding train/ and val/")  # fmt: skip
        root = env
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DataNotFoundError(f"{name}: data.options.root {path} is not a folder; allowed: a folder holding train/ and val/")
    return path


@DATASETS.register("imagefolder", splits=("default",), files=True, stream=True)
def imagefolder_builder(*, root: str | None, split: str, download: bool, valid_fraction: float | None,
                        limit: int | None, seed: int, image_size: int = 224) -> DataBundle:  # fmt: skip
    """ImageNet-style folders ``ROOT/train/<class>/*.jpg`` and ``ROOT/val/<class>/*.jpg`` (``$GENAS_IMAGENET``)."""
    path = _root("imagefolder", root)
    pool, classes = list_image_folder(_need_dir(path / "train", "imagefolder", "train/"))
    test, _ = list_image_folder(_need_dir(path / "val", "imagefolder", "val/"), classes)
    return _bundle("imagefolder", pool, test, len(classes), valid_fraction, seed, image_size)


@DATASETS.register("wds", splits=("default",), files=True, stream=True)
def wds_builder(*, root: str | None, split: str, download: bool, valid_fraction: float | None,
                limit: int | None, seed: int, image_size: int = 224) -> DataBundle:  # fmt: skip
    """WebDataset shards ``ROOT/train/*.tar`` and ``ROOT/val/*.tar`` of ``<key>.jpg`` + ``<key>.cls`` samples."""
    path = _root("wds", root)
    pool, test = index_shards(_shard_paths(path, "train")), index_shards(_shard_paths(path, "val"))
    return _bundle("wds", pool, test, _check_classes(pool, test, path), valid_fraction, seed, image_size)


_FIELDS = ("part", "label", "offset", "size", "path")


def write_file_list(bundle: DataBundle, path: str | os.PathLike) -> None:
    """Record ``bundle``'s train / valid / test files in a CSV (atomically): the run's data split."""
    with atomic_writer(path, "w") as fh:
        out = csv.writer(fh)
        out.writerow(_FIELDS)
        for part in ("train", "valid", "test"):
            ds = getattr(bundle, part)
            out.writerows((part, int(lab), int(off), int(size), p)
                          for lab, off, size, p in zip(ds.labels, ds.offsets, ds.sizes, map(os.fsdecode, ds.paths)))  # fmt: skip


def read_file_list(name: str, path: str | os.PathLike, image_size: int | None = None) -> DataBundle:
    """The bundle of streaming dataset ``name`` whose three parts were recorded at ``path`` (:func:`write_file_list`).

    Nothing is listed or indexed again (a resume on ImageNet does not re-read 1.28M directory entries or
    every shard's headers); the classes are the recorded labels' range.
    """
    rows: dict[str, list[list[str]]] = {"train": [], "valid": [], "test": []}
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            if next(reader, None) != list(_FIELDS):
                raise ValueError("the header is not " + ",".join(_FIELDS))
            for row in reader:
                rows[row[0]].append(row)
        parts = {part: FileDataset(np.array([r[4] for r in rs], dtype=object), np.array([int(r[2]) for r in rs]),
                                   np.array([int(r[3]) for r in rs]), np.array([int(r[1]) for r in rs]))
                 for part, rs in rows.items()}  # fmt: skip
    except (OSError, ValueError, KeyError, IndexError) as exc:
        raise DataNotFoundError(f"{path}: not a readable data split ({exc}); delete it to list the data again") from None
    num_classes = int(max((int(p.labels.max(initial=-1)) for p in parts.values()), default=-1)) + 1
    return DataBundle(name=name, num_classes=num_classes, channels=3, image_size=image_size or 224,
                      mean=IMAGENET_STATS[0], std=IMAGENET_STATS[1], augment="imagenet", **parts)  # fmt: skip
