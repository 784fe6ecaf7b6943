"""Finding and reading dataset files: where to look, and the IDX, npz, CIFAR and ImageNet16 formats.

Each reader returns plain uint8 NHWC / int64 arrays wrapped in :class:`ArrayDataset`; a file
that is missing raises :class:`~genas.errors.DataNotFoundError` with one line naming the file
and every place that was searched.
"""

from __future__ import annotations

import gzip
import os
import pickle
import zipfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from genas.data.base import ArrayDataset
from genas.errors import DataNotFoundError

__all__ = ["locate", "read_idx", "read_fashion_mnist", "read_npz", "read_cifar", "read_imagenet16"]

FASHION_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IMAGENET16_TRAIN = tuple(f"train_data_batch_{i}" for i in range(1, 11))
IMAGENET16_VAL = "val_data"


def locate(
    dataset: str,
    root: str | os.PathLike | None,
    env_var: str,
    defaults: Sequence[str | os.PathLike],
    probe: Callable[[Path], Path | None],
    expected: str,
    hint: str,
) -> Path:
    """Return the first place that holds a dataset, or raise a one-line :class:`DataNotFoundError`.

    An explicit ``root`` is the only place looked at; otherwise ``$env_var`` and then
    ``defaults`` are tried in order.

    Args:
        dataset: Name used in the message.
        root: The ``data.options.root`` option, or None.
        env_var: Environment variable consulted when ``root`` is None.
        defaults: Fallback locations.
        probe: Maps a candidate path to the path to read (itself or a sub-folder), or None.
        expected: What was missing, for the message, e.g. ``"train-images-idx3-ubyte(.gz)"``.
        hint: How to get the files, appended to the message.

    Returns:
        The path returned by ``probe``.
    """
    if root is not None:
        candidates = [(Path(root).expanduser(), "data.options.root")]
    else:
        env = os.environ.get(env_var)
        candidates = [(Path(env).expanduser(), f"${env_var}")] if env else []
        candidates += [(Path(d).expanduser(), "default") for d in defaults]
    for path, _ in candidates:
        found = probe(path)
        if found is not None:
            return found
    looked = [f"{path} [{why}]" for path, why in candidates]
    if root is None and not os.environ.get(env_var):
        looked.insert(0, f"${env_var} [unset]")
    raise DataNotFoundError(f"{dataset}: no {expected} found (looked in: {', '.join(looked)}). {hint}")


def _plain_or_gz(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (plain or gzipped) of unsigned bytes, as used by MNIST and Fashion-MNIST."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[:3] != b"\x00\x00\x08":
        raise DataNotFoundError(f"{path} is not an IDX file of unsigned bytes (magic {raw[:4].hex()}).")
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataNotFoundError(f"{path} is truncated: header says {dims}, found {data.size} bytes of data.")
    return data.reshape(dims)


def fashion_mnist_probe(path: Path) -> Path | None:
    """The folder under ``path`` (itself or torchvision's ``FashionMNIST/raw``) holding the IDX files."""
    for folder in (path, path / "FashionMNIST" / "raw"):
        if _plain_or_gz(folder, FASHION_FILES["train"][0]) is not None:
            return folder
    return None


def read_fashion_mnist(folder: Path) -> tuple[ArrayDataset, ArrayDataset]:
    """Read the official train and test sets from a folder found by :func:`fashion_mnist_probe`."""
    out = []
    for part in ("train", "test"):
        arrays = []
        for stem in FASHION_FILES[part]:
            path = _plain_or_gz(folder, stem)
            if path is None:
                raise DataNotFoundError(f"fashion-mnist: no {stem}(.gz) in {folder} (the other files are there).")
            arrays.append(read_idx(path))
        images, labels = arrays
        out.append(ArrayDataset(images[..., None], labels.astype(np.int64)))
    return out[0], out[1]


def read_npz(path: Path) -> tuple[ArrayDataset, ArrayDataset, ArrayDataset | None]:
    """Read ``x_train, y_train, x_test, y_test`` (uint8 NHWC, integer labels) from an npz file.

    An optional ``x_valid, y_valid`` pair is a held-out split made ahead of time (see
    :func:`genas.data.save_split_npz`); it is returned third, or None when absent.
    """
    keys = ("x_train", "y_train", "x_test", "y_test")
    if path.is_dir():
        raise DataNotFoundError(f"{path} is a directory; data.options.root of dataset 'npz' is an .npz file")
    unreadable = (f"{path} is not a readable npz file ({{}}); expected arrays x_train, y_train, x_test, y_test "
                  "saved with numpy.savez")
    try:
        npz_file = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataNotFoundError(unreadable.format(type(exc).__name__)) from None
    if not hasattr(npz_file, "files"):
        raise DataNotFoundError(f"{path} holds a single array, not an npz archive of x_train, y_train, x_test, y_test")
    with npz_file as npz:
        missing = [k for k in keys if k not in npz.files]
        if missing:
            raise DataNotFoundError(f"{path}: npz file lacks array(s) {', '.join(missing)} (has {npz.files}).")
        if ("x_valid" in npz.files) != ("y_valid" in npz.files):
            raise DataNotFoundError(f"{path}: npz file has only one of x_valid / y_valid; give both or neither.")
        try:  # the members are read here: a truncated or corrupted archive fails now, not at open
            arrays = {k: npz[k] for k in (*keys, "x_valid", "y_valid") if k in npz.files}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise DataNotFoundError(unreadable.format(f"{type(exc).__name__}: {exc}")) from None
    parts = {}
    for name in ("train", "test", "valid"):
        if f"x_{name}" not in arrays:
            continue
        x, y = arrays[f"x_{name}"], arrays[f"y_{name}"]
        if x.dtype != np.uint8 or x.ndim not in (3, 4):
            raise DataNotFoundError(f"{path}: x_{name} must be uint8 (N, H, W[, C]); got {x.dtype} {x.shape}.")
        if len(x) != len(y):
            raise DataNotFoundError(f"{path}: x_{name} has {len(x)} images but y_{name} {len(y)} labels.")
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or (y.size and y.min() < 0):
            raise DataNotFoundError(f"{path}: y_{name} must hold non-negative integer class labels "
                                    f"(got dtype {y.dtype}, shape {y.shape}{f', min {y.min()}' if y.size else ''}).")
        parts[name] = ArrayDataset(x[..., None] if x.ndim == 3 else x, y.astype(np.int64))
    return parts["train"], parts["test"], parts.get("valid")


def cifar_probe(folder_name: str) -> Callable[[Path], Path | None]:
    """A probe accepting an npz file, or a folder holding torchvision's ``folder_name``."""

    def probe(path: Path) -> Path | None:
        if path.is_file() and path.suffix == ".npz":
            return path
        if (path / folder_name).is_dir():
            return path
        return None

    return probe


def read_cifar(name: str, path: Path, download: bool) -> tuple[ArrayDataset, ArrayDataset, ArrayDataset | None]:
    """Read CIFAR-10/100 (train, test, pre-made valid or None) from an npz file or a torchvision folder."""
    if path.suffix == ".npz":
        return read_npz(path)
    from torchvision import datasets as tv  # imported here: slow, and only these two need it

    cls = tv.CIFAR10 if name == "cifar10" else tv.CIFAR100
    try:
        parts = [cls(str(path), train=train, download=download) for train in (True, False)]
    except RuntimeError as exc:  # torchvision: "Dataset not found or corrupted"
        raise DataNotFoundError(f"{name}: torchvision could not read {path}: {exc}") from exc
    train, test = (ArrayDataset(np.asarray(p.data), np.asarray(p.targets, dtype=np.int64)) for p in parts)
    return train, test, None


def imagenet16_probe(path: Path) -> Path | None:
    """``path`` or ``path/ImageNet16`` when it holds ``train_data_batch_1``."""
    for folder in (path, path / "ImageNet16"):
        if (folder / IMAGENET16_TRAIN[0]).is_file():
            return folder
    return None


def _read_imagenet16_file(path: Path, max_label: int) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise DataNotFoundError(f"imagenet16-120: no {path.name} in {path.parent} (the first batch is there).")
    with open(path, "rb") as fh:  # the official files are pickles; only open files you trust
        entry = pickle.load(fh, encoding="latin1")
    labels = np.asarray(entry["labels"], dtype=np.int64)
    keep = labels <= max_label
    data = np.asarray(entry["data"], dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3 * 16 * 16 or len(data) != len(labels):
        raise DataNotFoundError(f"{path}: expected 'data' of shape (N, 768) for N labels, got {data.shape}.")
    data = data[keep]
    images = data.reshape(-1, 3, 16, 16).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels[keep] - 1


def read_imagenet16(folder: Path, max_label: int = 120) -> tuple[ArrayDataset, ArrayDataset]:
    """Read the downsampled-ImageNet 16x16 train batches and ``val_data``, keeping labels ``1..max_label``.

    Labels are shifted to ``0..max_label-1`` as NAS-Bench-201 does.
    """
    parts = [_read_imagenet16_file(folder / name, max_label) for name in IMAGENET16_TRAIN]
    train = ArrayDataset(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    val = ArrayDataset(*_read_imagenet16_file(folder / IMAGENET16_VAL, max_label))
    return train, val
