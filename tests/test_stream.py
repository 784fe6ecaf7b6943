"""Streaming datasets (issue 25): ImageFolder trees and WebDataset shards the test writes, decoded in workers.

Every image is a solid colour that encodes its number (:mod:`tests.imagedata`), so with
``augment="none"`` a test reads back exactly which files each batch of each rank held.
"""

from __future__ import annotations

import dataclasses
import io
import tarfile

import pytest
import torch

from genas.data import build_data, build_loader, concat, create_dataset, record_split
from genas.data.stream import FILE_LIST
from genas.errors import DataNotFoundError
from tests.imagedata import image_bytes, numbers, write_image_folder, write_shards
from tests.test_bad_input import bad_input_failure, listing


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("imf"))  # 3 classes x 40 train, x 4 val: numbers 0..131


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return write_shards(tmp_path_factory.mktemp("wds"))  # the same numbers and labels, 25 samples a shard


def bundle_of(name, root, workers=1):
    b = create_dataset(name, root=str(root), image_size=16, valid_fraction=0.25)
    return dataclasses.replace(b, **{p: with_workers(getattr(b, p), workers) for p in ("train", "valid", "test")})


def with_workers(ds, workers):
    return dataclasses.replace(ds, workers=workers)


def read_all(loader, epoch):
    loader.set_epoch(epoch)
    return [n for x, _ in loader for n in numbers(x)]


def test_a_folder_and_its_shards_give_the_same_split_and_the_same_images(folder, shards):
    a, b = bundle_of("imagefolder", folder), bundle_of("wds", shards)
    assert (a.num_classes, a.channels, a.image_size, a.augment) == (b.num_classes, 3, 16, "imagenet") == (3, 3, 16, "imagenet")
    for part in ("train", "valid", "test"):
        la, lb = (build_loader(getattr(x, part), x, 7, train=False) for x in (a, b))
        xa, xb = [torch.cat([x for x, _ in ld]) for ld in (la, lb)]
        assert torch.equal(xa, xb)  # the same bytes decoded the same way
    assert (len(a.train), len(a.valid), len(a.test)) == (90, 30, 12)
    assert sorted(numbers(next(iter(build_loader(a.test, a, 12, train=False)))[0])) == list(range(120, 132))  # val/


@pytest.mark.parametrize("fmt", ["imagefolder", "wds"])
@pytest.mark.parametrize("drop_last", [False, True])
def test_two_ranks_with_two_workers_each_read_every_sample_once_per_epoch(folder, shards, fmt, drop_last):
    b = bundle_of(fmt, folder if fmt == "imagefolder" else shards)
    train = with_workers(b.train, 2)
    loaders = [build_loader(train, b, 8, train=True, augment="none", rank=r, world_size=2, drop_last=drop_last, seed=5)
               for r in (0, 1)]  # fmt: skip
    allowed = set(numbers(torch.cat([x for x, _ in build_loader(b.train, b, 90, train=False)])))
    for epoch in (0, 1):
        parts = [read_all(ld, epoch) for ld in loaders]
        seen = parts[0] + parts[1]
        assert not set(parts[0]) & set(parts[1])  # disjoint ranks
        assert len(seen) == len(set(seen)) and set(seen) <= allowed  # nothing twice
        expected = 80 if drop_last else 90  # 45 a rank: 5 full batches of 8 with drop_last, else 6 batches
        assert len(seen) == expected
    again = build_loader(train, b, 8, train=True, augment="none", rank=0, world_size=2, drop_last=drop_last, seed=5)
    assert read_all(again, 1) == read_all(loaders[0], 1)  # the order depends only on seed and epoch
    assert read_all(loaders[0], 0) != read_all(loaders[0], 1)


def test_a_resume_mid_epoch_yields_exactly_the_remaining_batches_whatever_the_workers(folder):
    b = bundle_of("imagefolder", folder)
    full = build_loader(with_workers(b.train, 2), b, 8, train=True, seed=3)  # the ImageNet augmentation: random
    full.set_epoch(2)
    whole = list(full)
    resumed = list(build_loader(with_workers(b.train, 0), b, 8, train=True, seed=3).iter_from(2, 4))
    assert len(resumed) == len(whole) - 4 == 7
    for (xa, ya), (xb, yb) in zip(whole[4:], resumed):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not torch.equal(whole[0][0], list(full.iter_from(3, 0))[0][0])  # another epoch, other crops
    fixed = build_loader(b.train, b, 8, train=True, seed=3)
    x1, x2 = fixed.batches(3, 7), fixed.batches(3, 7)
    assert all(torch.equal(p[0], q[0]) for p, q in zip(x1, x2)) and len(x1) == 3


def test_undecodable_images_are_skipped_and_counted_once_an_epoch_or_raise(tmp_path, capfd):
    root = write_image_folder(tmp_path / "d", per_class=8, val_per_class=2)
    (root / "train" / "c1" / "broken.jpg").write_bytes(b"not an image at all")
    good = image_bytes(7, 1, fmt="JPEG")
    (root / "train" / "c2" / "truncated.jpg").write_bytes(good[: len(good) // 2])
    b = create_dataset("imagefolder", root=str(root), image_size=16, valid_fraction=0.2)
    everything = dataclasses.replace(concat(b.train, b.valid), workers=1)  # all 26 training files
    assert len(everything) == 26
    loader = build_loader(everything, b, 4, train=False)
    images = sum(len(x) for x, _ in loader)
    lines = capfd.readouterr().err.splitlines()
    warned = [ln for ln in lines if ln.startswith("warning: ")]
    assert images == 24
    assert len(warned) == 1 and "skipped 2 image(s)" in warned[0] and ("broken.jpg" in warned[0] or "truncated.jpg" in warned[0]), lines
    strict = build_loader(dataclasses.replace(everything, on_error="raise"), b, 4, train=False)
    with pytest.raises(DataNotFoundError, match=r"cannot decode image .*(broken|truncated)\.jpg"):
        list(strict)


def _tar(path, members):
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_bad_layouts_are_one_line_errors(tmp_path):
    def fails(name, root, needle):
        with pytest.raises(DataNotFoundError) as exc:
            create_dataset(name, root=str(root))
        assert needle in str(exc.value) and "\n" not in str(exc.value), str(exc.value)

    empty = write_image_folder(tmp_path / "empty", per_class=2, val_per_class=1)
    (empty / "train" / "c3").mkdir()
    fails("imagefolder", empty, "c3 holds no image")
    differ = write_image_folder(tmp_path / "differ", per_class=2, val_per_class=1)
    (differ / "val" / "c2").rename(differ / "val" / "zebra")
    fails("imagefolder", differ, "differ from train/'s")
    fails("imagefolder", tmp_path / "nowhere", "is not a folder")
    fails("imagefolder", tmp_path / "empty" / "val" / "c0", "no train/ folder")

    listed = write_shards(tmp_path / "listed", per_class=4, val_per_class=1, per_shard=6)
    (listed / "train.txt").write_text("train/shard-0000.tar\ntrain/shard-0099.tar\n")
    fails("wds", listed, "shard-0099.tar")
    gap = write_shards(tmp_path / "gap", classes=2, per_class=3, val_per_class=1)
    _tar(gap / "train" / "shard-0000.tar", [("a.png", image_bytes(0, 0)), ("a.cls", b"0"), ("b.png", image_bytes(1, 2)), ("b.cls", b"2")])
    fails("wds", gap, "no sample of class(es) [1]")
    extra = write_shards(tmp_path / "extra", classes=2, per_class=3, val_per_class=1)
    _tar(extra / "val" / "shard-0001.tar", [("z.png", image_bytes(9, 5)), ("z.cls", b"5")])
    fails("wds", extra, "hold class(es) [5] that no training shard")
    nolabel = write_shards(tmp_path / "nolabel", classes=2, per_class=3, val_per_class=1)
    _tar(nolabel / "train" / "shard-0009.tar", [("q.png", image_bytes(3, 0))])
    fails("wds", nolabel, "without a .cls label")
    (nolabel / "train" / "shard-0009.tar").write_bytes(b"garbage, not a tar")
    fails("wds", nolabel, "cannot read shard")


def test_the_run_records_its_split_and_later_readers_use_it(folder, tmp_path):
    from genas.config import DataConfig

    cfg = DataConfig(dataset="imagefolder", options=dict(root=str(folder), image_size=16, workers=0), valid_fraction=0.25)
    bundle = build_data(cfg, seed=4)
    record_split(bundle, tmp_path)
    assert (tmp_path / FILE_LIST).is_file()
    other_seed = build_data(cfg, seed=5)
    assert set(other_seed.valid.paths) != set(bundle.valid.paths)  # a new listing would split differently
    recorded = build_data(cfg, seed=5, run_dir=tmp_path)  # a reader of the run gets the run's files
    for part in ("train", "valid", "test"):
        a, b = getattr(bundle, part), getattr(recorded, part)
        assert a.paths.tolist() == b.paths.tolist() and a.labels.tolist() == b.labels.tolist()
    assert recorded.train.workers == 0 and recorded.num_classes == 3 and recorded.image_size == 16
    elsewhere = DataConfig(dataset="imagefolder", options=dict(root=str(tmp_path / "moved"), image_size=16, workers=0))
    assert len(build_data(elsewhere, seed=4, run_dir=tmp_path).valid) == 30  # nothing listed again
    counts = [int((bundle.valid.labels == c).sum()) for c in range(3)]
    assert counts == [10, 10, 10]  # class-balanced held-out part


def test_the_cli_trains_and_searches_on_a_folder_and_bad_folders_fail_in_one_line(folder, tmp_path, capsys):
    from genas.cli import run_cli
    from supernet.cli import main as train_main

    args = ["--data.dataset", "imagefolder", "--data.options.root", str(folder), "--data.options.image_size", "16", "--data.options.workers", "1",
            "--data.valid_fraction", "0.25", "--data.batch_size", "16", "--supernet.options.channels", "4", "--supernet.options.layers",
            "1", "--train.epochs", "1", "--run.root", str(tmp_path), "--run.name", "imf", "--run.progress", "false"]  # fmt: skip
    assert run_cli(train_main, args) == 0
    assert (tmp_path / "imf" / FILE_LIST).is_file() and (tmp_path / "imf" / "DONE").is_file()
    capsys.readouterr()
    watched = [tmp_path]
    bad = ["--data.options.workers", "-1", "--data.options.on_error", "ignore", "--data.augment", "cifar", "--data.options.image_size", "4"]
    for i in range(0, len(bad), 2):
        failure = bad_input_failure(capsys, "supernet.cli", [*args[:-4], "--run.name", "bad", bad[i], bad[i + 1]],
                                    bad[i].split(".")[-1], watched, listing)  # fmt: skip
        assert failure is None, failure
    failure = bad_input_failure(capsys, "supernet.cli", [*args[:-4], "--run.name", "bad", "--data.options.root", str(tmp_path / "no")],
                                "is not a folder", watched, listing)  # fmt: skip
    assert failure is None, failure


def test_decoding_in_the_callers_process_leaves_its_generators_alone(folder):
    import random

    b = bundle_of("imagefolder", folder, workers=0)
    torch.manual_seed(123)
    random.seed(9)
    expected = (torch.rand(3), random.random())
    torch.manual_seed(123)
    random.seed(9)
    x = next(iter(build_loader(b.train, b, 4, train=True, augment="spos")))[0]
    assert x.shape == (4, 3, 16, 16)
    assert torch.equal(torch.rand(3), expected[0]) and random.random() == expected[1]
