"""The per-epoch held-out accuracy (issue 27): each fixed path evaluated after BN recalibration, training untouched."""

from __future__ import annotations

import pytest
import torch

from genas.config import load_config
from genas.data import build_data, build_loader
from genas.runs import Run
from supernet.cli import train_from_config
from supernet.factory import build_supernet
from supernet.sampler import UniformPathSampler
from supernet.train import SupernetTrainer
from tests.conftest import TINY_TRAIN
from tests.test_kill_resume import assert_same_checkpoint


def test_the_recalibrated_column_leaves_the_training_run_bit_for_bit_as_it_was(tmp_path):
    runs = {}
    for n in (0, 3):
        cfg = load_config("quickstart", [*TINY_TRAIN, "--train.heldout_bn_batches", str(n), "--run.root", str(tmp_path),
                                         "--run.name", f"bn{n}"])  # fmt: skip
        runs[n] = Run(train_from_config(cfg).path)
    for which in ("init", "epoch_0001", "last"):
        a, b = runs[0].load(which), runs[3].load(which)
        assert_same_checkpoint(a, b)
        assert a["sampler"] == b["sampler"]
    drop = ("heldout_acc", "images_per_s", "seconds", "data_wait")
    ha, hb = runs[0].load("last")["history"], runs[3].load("last")["history"]
    assert [{k: v for k, v in r.items() if k not in drop} for r in ha] == [{k: v for k, v in r.items() if k not in drop} for r in hb]
    assert [r["heldout_acc"] for r in ha] != [r["heldout_acc"] for r in hb]  # the column itself did change


def _trainer(cfg, model, bn_batches):
    bundle = build_data(cfg.data, 0)
    loader = build_loader(bundle.train, bundle, 64, train=True, seed=0, channels_last=True)
    held = build_loader(bundle.valid, bundle, 256, train=False, channels_last=True)
    return SupernetTrainer(model, UniformPathSampler(model.space, model.num_search_cells, 0), loader, cfg.train,
                           torch.device("cpu"), progress=False, heldout=[next(iter(held))],
                           heldout_bn=loader.batches(bn_batches, 0) if bn_batches else None)  # fmt: skip


def test_recalibration_puts_every_bn_buffer_back_and_draws_no_global_random_numbers(tiny_run):
    cfg = load_config(None, base=Run(tiny_run).read_config())
    model = build_supernet(cfg.supernet, build_data(cfg.data, 0))
    model.load_state_dict(Run(tiny_run).load("last")["model"])
    model.train()
    trainer = _trainer(cfg, model, 2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    momenta = [m.momentum for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    rng = torch.get_rng_state()
    trainer.heldout_accuracy()
    assert torch.equal(torch.get_rng_state(), rng) and model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert momenta == [m.momentum for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


@pytest.mark.slow
def test_on_the_quickstart_the_heldout_column_follows_the_training_accuracy(tmp_path):
    """Half the quickstart's epochs (about 30 s here): measured train 0.620, held-out 0.589 with one
    recalibration batch, 0.184 with the running statistics of the supernet (the old column)."""
    cfg = load_config("quickstart", ["--train.epochs", "40", "--run.progress", "false", "--run.root", str(tmp_path)])
    run = Run(train_from_config(cfg).path)
    rows = run.load("last")["history"]
    train, held = rows[-1]["train_acc"], rows[-1]["heldout_acc"]
    assert train > 0.5 and held > train - 0.1, (train, held)
    model = build_supernet(cfg.supernet, build_data(cfg.data, 0))
    model.load_state_dict(run.load("last")["model"])
    old = _trainer(cfg, model, 0).heldout_accuracy()  # the supernet's running statistics: they belong to no path
    assert old < held - 0.2, (old, held)


def test_timed_batches_adds_up_the_time_spent_waiting_for_each_batch(monkeypatch):
    """data_wait's clock: each perf_counter call advances 1 s, so every next() (the last one included) waits 1 s."""
    import itertools

    import genas.training as training

    ticks = itertools.count()
    monkeypatch.setattr(training.time, "perf_counter", lambda: float(next(ticks)))
    batches = training.TimedBatches(["a", "b", "c"])
    assert list(batches) == ["a", "b", "c"] and batches.waited == 4.0  # 3 batches and the StopIteration
