"""Tests of genas.data: datasets, splits, and the in-memory TensorLoader (CPU, small inputs)."""

from __future__ import annotations

import gzip
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from genas.data import (
    DATASETS,
    ArrayDataset,
    DataBundle,
    TensorLoader,
    build_loader,
    create_dataset,
    list_datasets,
    save_split_npz,
)
from genas.data.base import stratified_split
from genas.errors import ConfigError, DataNotFoundError, UnknownNameError

REPO = Path(__file__).resolve().parents[1]
CIFAR10_NPZ = Path(os.environ.get("GENAS_CIFAR10_NPZ", REPO / "../shared/data/cifar10/cifar10_uint8.npz"))
FASHION_DIR = Path(os.environ.get("GENAS_FASHION_MNIST", "/usr/share/datasets/fashion-mnist"))


def toy(n: int = 40, size: int = 8, augment: str = "cifar") -> DataBundle:
    """Random images whose label is their index, normalised to raw pixel values (mean 0, std 1/255)."""
    rng = np.random.default_rng(123)
    ds = ArrayDataset(rng.integers(0, 256, (n, size, size, 1), dtype=np.uint8), np.arange(n))
    return DataBundle("toy", n, 1, size, (0.0,), (1 / 255,), ds, ds, ds, augment)


def ids(loader, epoch: int = 0) -> list[int]:
    return torch.cat([y for _, y in loader.iter_from(epoch, 0)]).tolist()


@pytest.fixture(scope="module")
def digits() -> DataBundle:
    return create_dataset("digits", seed=0)


def write_npz(path: Path, n_train: int = 40, n_test: int = 10, size: int = 4) -> None:
    rng = np.random.default_rng(0)
    np.savez(
        path,
        x_train=rng.integers(0, 256, (n_train, size, size, 3), dtype=np.uint8),
        y_train=np.arange(n_train) % 4,
        x_test=rng.integers(0, 256, (n_test, size, size, 3), dtype=np.uint8),
        y_test=np.arange(n_test) % 4,
    )


# ----------------------------------------------------------------------------- datasets


def test_digits_shapes_dtypes_and_normalisation(digits):
    assert (digits.num_classes, digits.channels, digits.image_size, digits.augment) == (10, 1, 8, "none")
    assert (len(digits.train), len(digits.valid), len(digits.test)) == (1078, 360, 359)
    assert digits.train.images.dtype == np.uint8 and digits.train.images.shape[1:] == (8, 8, 1)
    assert digits.train.labels.dtype == np.int64 and digits.train.images.max() == 255
    x = torch.cat([x for x, _ in build_loader(digits.train, digits, 128, train=False)])
    assert x.dtype == torch.float32 and x.shape == (1078, 1, 8, 8)
    assert abs(x.mean().item()) < 0.05 and abs(x.std().item() - 1) < 0.05


def test_splits_are_stratified_disjoint_and_seeded(tmp_path):
    labels = np.repeat(np.arange(3), [10, 20, 30])
    first, rest = stratified_split(labels, 30, np.random.default_rng(0))
    assert np.bincount(labels[first]).tolist() == [5, 10, 15]
    assert np.intersect1d(first, rest).size == 0 and len(first) + len(rest) == 60
    # npz rows are unique, so disjointness of the splits shows in the pixel bytes
    write_npz(tmp_path / "d.npz", n_train=40)
    for split, sizes in (("default", (36, 4)), ("nb201", (20, 20))):
        b = create_dataset("npz", root=str(tmp_path / "d.npz"), split=split, seed=1)
        assert (len(b.train), len(b.valid), len(b.test)) == (*sizes, 10)
        tr = {im.tobytes() for im in b.train.images}
        va = {im.tobytes() for im in b.valid.images}
        assert not tr & va and len(tr | va) == 40
        again = create_dataset("npz", root=tmp_path / "d.npz", split=split, seed=1)
        assert np.array_equal(again.valid.images, b.valid.images)
    other = create_dataset("npz", root=str(tmp_path / "d.npz"), seed=2)
    assert not np.array_equal(other.valid.images, create_dataset("npz", root=str(tmp_path / "d.npz")).valid.images)


def test_npz_metadata_and_limit(tmp_path):
    write_npz(tmp_path / "d.npz", n_train=40)
    b = create_dataset("npz", root=str(tmp_path / "d.npz"), valid_fraction=0.25, limit=8)
    assert (b.num_classes, b.channels, b.image_size) == (4, 3, 4)
    assert (len(b.train), len(b.valid), len(b.test)) == (8, 8, 8)
    assert np.bincount(b.train.labels).tolist() == [2, 2, 2, 2]  # limit keeps classes balanced
    full = np.load(tmp_path / "d.npz")["x_train"] / 255.0
    assert np.allclose(b.mean, full.mean(axis=(0, 1, 2)), atol=1e-5)
    assert np.allclose(b.std, full.std(axis=(0, 1, 2)), atol=1e-5)


def test_saved_split_travels_unchanged(tmp_path):
    """A split written by save_split_npz reads back as the same train/valid/test, in order."""
    write_npz(tmp_path / "d.npz", n_train=40)
    made = create_dataset("npz", root=str(tmp_path / "d.npz"), split="nb201", seed=3)
    save_split_npz(made, str(tmp_path / "s.npz"), sizes={"valid": 5})
    for split in ("default", "nb201"):  # a stored valid split wins over any carving
        back = create_dataset("npz", root=str(tmp_path / "s.npz"), split=split)
        assert np.array_equal(back.train.images, made.train.images)
        assert np.array_equal(back.train.labels, made.train.labels)
        assert np.array_equal(back.valid.images, made.valid.images[:5])
        assert np.array_equal(back.test.labels, made.test.labels)
    with pytest.raises(ConfigError, match="ready-made valid split"):
        create_dataset("npz", root=str(tmp_path / "s.npz"), valid_fraction=0.2)
    with pytest.raises(ConfigError, match="unknown split"):
        save_split_npz(made, str(tmp_path / "t.npz"), sizes={"val": 5})
    assert not (tmp_path / "t.npz").exists()
    arrays = dict(np.load(tmp_path / "s.npz"))
    del arrays["y_valid"]
    np.savez(tmp_path / "half.npz", **arrays)
    with pytest.raises(DataNotFoundError, match="only one of x_valid / y_valid"):
        create_dataset("npz", root=str(tmp_path / "half.npz"))


def test_synthetic_is_seeded_and_sized():
    a, b = create_dataset("synthetic", limit=40, seed=3), create_dataset("synthetic", limit=40, seed=3)
    assert (len(a.train), len(a.valid), a.channels, a.image_size, a.num_classes) == (40, 10, 3, 32, 10)
    assert np.array_equal(a.train.images, b.train.images) and np.array_equal(a.test.labels, b.test.labels)
    assert not np.array_equal(a.train.images, create_dataset("synthetic", limit=40, seed=4).train.images)


def test_random_labels_fixed_by_seed_and_uniform(digits):
    r1, r2 = digits.train.with_random_labels(10, seed=5), digits.train.with_random_labels(10, seed=5)
    assert np.array_equal(r1.labels, r2.labels) and r1.images is digits.train.images
    assert not np.array_equal(r1.labels, digits.train.with_random_labels(10, seed=6).labels)
    counts = np.bincount(r1.labels, minlength=10)
    assert counts.min() > 70 and counts.max() < 150  # expected 107.8 each
    assert np.mean(r1.labels == digits.train.labels) < 0.2


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_missing_names_the_file(tmp_path, monkeypatch):
    monkeypatch.delenv("GENAS_FASHION_MNIST", raising=False)
    with pytest.raises(DataNotFoundError) as err:
        create_dataset("fashion-mnist", root=str(tmp_path))
    msg = str(err.value)
    assert "train-images-idx3-ubyte" in msg and str(tmp_path) in msg and "\n" not in msg
    assert "apt-get install dataset-fashion-mnist" in msg


def test_fashion_mnist_reads_idx_files(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 24), ("t10k", 6)):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 3)
    monkeypatch.setenv("GENAS_FASHION_MNIST", str(tmp_path))
    b = create_dataset("fashion-mnist")
    assert (len(b.train), len(b.valid), len(b.test), b.channels, b.image_size) == (20, 4, 6, 1, 28)


@pytest.mark.skipif(not (FASHION_DIR / "train-images-idx3-ubyte.gz").exists(), reason="no Fashion-MNIST files")
def test_fashion_mnist_real_files():
    b = create_dataset("fashion-mnist", root=str(FASHION_DIR), limit=100)
    assert (len(b.train), len(b.test), b.num_classes) == (100, 100, 10)


def test_imagenet16_filters_labels_and_nb201_halves_val(tmp_path):
    rng = np.random.default_rng(0)

    def dump(name: str, labels: list[int]) -> None:
        data = rng.integers(0, 256, (len(labels), 3 * 16 * 16), dtype=np.uint8)
        with open(tmp_path / name, "wb") as fh:
            pickle.dump({"data": data, "labels": labels}, fh)

    for i in range(1, 11):
        dump(f"train_data_batch_{i}", [1, 2, 120, 121, 999])
    dump("val_data", [1, 1, 2, 2, 500])
    b = create_dataset("imagenet16-120", root=str(tmp_path), split="nb201")
    assert (len(b.train), len(b.valid), len(b.test), b.num_classes, b.image_size) == (30, 2, 2, 120, 16)
    assert set(b.train.labels.tolist()) == {0, 1, 119} and b.augment == "cifar"


def test_real_cifar10_npz():
    if not CIFAR10_NPZ.is_file():
        pytest.skip(f"{CIFAR10_NPZ} not present (set $GENAS_CIFAR10_NPZ)")
    b = create_dataset("cifar10", root=str(CIFAR10_NPZ), split="nb201", limit=2000)
    assert (b.num_classes, b.channels, b.image_size, b.augment) == (10, 3, 32, "cifar")
    assert (len(b.train), len(b.valid), len(b.test)) == (2000, 2000, 2000)
    assert np.bincount(b.train.labels).tolist() == [200] * 10
    x, _ = next(iter(build_loader(b.train, b, 64, train=True)))
    assert x.shape == (64, 3, 32, 32)
    x = torch.cat([x for x, _ in build_loader(b.train, b, 500, train=False)])
    assert torch.allclose(x.mean((0, 2, 3)), torch.zeros(3), atol=0.1)  # standard CIFAR-10 mean/std


# ----------------------------------------------------------------------------- errors


def test_unknown_name_suggests_close_match():
    with pytest.raises(UnknownNameError, match="cifar10"):
        create_dataset("cifar-10")
    assert list_datasets("cifar*") == ["cifar10", "cifar100"] and "digits" in DATASETS


@pytest.mark.parametrize(
    "kwargs",
    [dict(split="nb201"), dict(limit=0), dict(valid_fraction=1.5), dict(seed=-1), dict(download="yes")],
)
def test_bad_options_raise_config_error(kwargs):
    with pytest.raises(ConfigError):
        create_dataset("digits", **kwargs)


def test_bad_loader_options_raise_config_error(digits):
    for kwargs in (dict(augment="crops"), dict(rank=2, world_size=2), dict(batch_size=0), dict(batch_size=2000)):
        args = dict(batch_size=32, train=True) | kwargs
        with pytest.raises(ConfigError):
            build_loader(digits.train, digits, **args)
    with pytest.raises(ConfigError, match="download"):
        create_dataset("fashion-mnist", download=True)


# ----------------------------------------------------------------------------- loader


def test_eval_loader_is_ordered_complete_and_keeps_last_batch():
    loader = build_loader(toy(40).train, toy(40), 16, train=False)
    assert len(loader) == 3 and loader.num_samples == 40 and ids(loader) == list(range(40))


def test_training_order_is_deterministic_per_epoch():
    b = toy(40, augment="none")
    a1, a2 = build_loader(b.train, b, 8, train=True, seed=1), build_loader(b.train, b, 8, train=True, seed=1)
    assert len(a1) == 5 and ids(a1) == ids(a2) and sorted(ids(a1)) == list(range(40))
    assert ids(a1, 0) != ids(a1, 1)
    a1.set_epoch(1)
    assert torch.cat([y for _, y in a1]).tolist() == ids(a2, 1)
    assert ids(build_loader(b.train, b, 8, train=True, seed=2)) != ids(a1, 0)


def test_iter_from_equals_tail_of_full_pass():
    b = toy(40)
    loader = build_loader(b.train, b, 8, train=True, seed=3)
    full = list(loader.iter_from(2, 0))
    tail = list(loader.iter_from(2, 3))
    assert len(tail) == 2
    for (x1, y1), (x2, y2) in zip(full[3:], tail):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)


def test_sharding_is_disjoint_and_covers_the_epoch_prefix():
    b = toy(42, augment="none")
    ref = build_loader(b.train, b, 42, train=True, seed=4, drop_last=False)
    perm = ids(ref, 1)
    shards = [build_loader(b.train, b, 5, train=True, seed=4, rank=r, world_size=2) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == 4
    got = [ids(s, 1) for s in shards]
    assert not set(got[0]) & set(got[1])
    assert sorted(got[0] + got[1]) == sorted(perm[: 2 * 4 * 5])
    # evaluation shards: no padding, together exactly the dataset
    ev = [build_loader(b.test, b, 4, train=False, rank=r, world_size=4) for r in range(4)]
    assert sorted(sum((ids(e) for e in ev), [])) == list(range(42))


def test_crop_and_flip_are_real_crops_of_the_padded_image():
    b = toy(40, augment="cifar")
    x, y = next(iter(build_loader(b.train, b, 40, train=True, seed=0)))
    assert x.shape == (40, 1, 8, 8)
    padded = np.pad(b.train.images[..., 0], ((0, 0), (1, 1), (1, 1))).astype(np.float32)
    changed = flipped = 0
    for img, label in zip(x[:, 0].numpy(), y.tolist()):
        src = padded[label]
        crops = {(dy, dx, f): src[dy : dy + 8, dx : dx + 8][:, ::-1] if f else src[dy : dy + 8, dx : dx + 8]
                 for dy in range(3) for dx in range(3) for f in (0, 1)}
        match = [k for k, c in crops.items() if np.allclose(c, img, atol=1e-3)]
        assert match, "augmented image is not a crop of the padded original"
        changed += (1, 1, 0) not in match
        flipped += any(k[2] for k in match)
    assert changed > 20 and 5 < flipped < 35


def test_flip_of_known_image_is_its_mirror():
    b = toy(40, augment="flip")
    x, y = next(iter(build_loader(b.train, b, 40, train=True, seed=0)))
    originals = torch.from_numpy(b.train.images[y.numpy(), :, :, 0]).float()
    mirrored = torch.isclose(x[:, 0], originals.flip(-1), atol=1e-3).flatten(1).all(1)
    same = torch.isclose(x[:, 0], originals, atol=1e-3).flatten(1).all(1)
    assert bool((mirrored | same).all()) and 5 < int(mirrored.sum()) < 35


def test_channels_last_output():
    b = create_dataset("synthetic", limit=16)
    x, _ = next(iter(build_loader(b.train, b, 8, train=True, augment="cifar", channels_last=True)))
    assert x.shape == (8, 3, 32, 32) and x.is_contiguous(memory_format=torch.channels_last)
    x, _ = next(iter(build_loader(b.train, b, 8, train=True, channels_last=False)))
    assert x.is_contiguous()


def test_fixed_batches_are_seeded_and_cycle():
    b = toy(10)
    loader = build_loader(b.train, b, 4, train=True, seed=0)
    first, again = loader.batches(5, seed=7), loader.batches(5, seed=7)
    assert len(first) == 5 and all(x.shape == (4, 1, 8, 8) for x, _ in first)
    assert all(torch.equal(a[0], c[0]) and torch.equal(a[1], c[1]) for a, c in zip(first, again))
    seen = torch.cat([y for _, y in first]).tolist()
    assert sorted(seen[:10]) == list(range(10))  # one full pass before any repeat
    assert [y.tolist() for _, y in loader.batches(5, seed=8)] != [y.tolist() for _, y in first]


def test_loader_holds_data_once_and_reports_sizes(digits):
    loader = build_loader(digits.train, digits, 100, train=True)
    assert isinstance(loader, TensorLoader) and len(loader) == 10 and loader.num_samples == 1000
    assert loader.batch_size == 100 and loader.dataset_size == 1078
