"""Retraining: a short digits run learns, resume is exact, cutout, the run's files, and the command's bad input."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

import genas.export.config  # noqa: F401  (registers the model and retrain sections)
from genas.export import load_network
from genas.export.retrain import evaluate
from genas.export.retrain_cli import main as retrain_main
from genas.cli import run_cli
from genas.config import load_config
from genas.data import build_data, build_loader, create_dataset
from tests.test_export_networks import DARTS_V2, NB201

QUICK = ["--model.options.channels", "8", "--model.options.layers", "1", "--retrain.epochs", "3"]


def retrain(tmp_path, *args, name="r"):
    return run_cli(retrain_main, ["--run.root", str(tmp_path), "--run.name", name, *args])


def read_rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_short_retrain_on_digits_reaches_90_percent(tmp_path, capsys):
    assert retrain(tmp_path, "--arch", NB201, *QUICK) == 0  # NB201 C=8, N=1, 3 epochs on digits: ~15 s here
    run = tmp_path / "r"
    rows = read_rows(run / "metrics.csv")
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert {"train_loss", "train_acc", "test_loss", "test_acc", "lr", "drop_path", "seconds"} <= set(rows[0])
    assert float(rows[-1]["test_acc"]) >= 0.90  # measured 0.961 (seed 0)
    assert (run / "learning_curve.png").stat().st_size > 0 and (run / "DONE").is_file()
    net = load_network(run / "model.pt")  # the network checkpoint alone rebuilds the trained network
    bundle = build_data(load_config("retrain_quickstart").data, 0)
    test = build_loader(bundle.test, bundle, 256, train=False)
    assert evaluate(net, test)["acc"] == pytest.approx(float(rows[-1]["test_acc"]), abs=1e-6)
    assert net.pretrained_cfg["input_size"] == (1, 8, 8) and net.pretrained_cfg["mean"] == bundle.mean
    out = capsys.readouterr().out
    assert "epoch 3/3" in out and "elapsed" in out  # a plain line per epoch when not on a terminal
    assert retrain(tmp_path, "--resume", str(run)) == 0 and "is finished" in capsys.readouterr().out


@pytest.mark.slow
def test_resume_continues_to_the_weights_of_an_uninterrupted_run(tmp_path):
    opts = ["--arch", DARTS_V2, "--run.progress", "false", "--model.options.channels", "4", "--model.options.layers", "3",
            "--retrain.epochs", "2", "--retrain.drop_path", "0.3", "--retrain.cutout", "4", "--data.limit", "200",
            "--data.batch_size", "32", "--data.augment", "flip"]  # fmt: skip
    assert retrain(tmp_path, *opts, name="whole") == 0
    assert retrain(tmp_path, *opts, "--max-steps", "17", name="split") == 0  # stops inside epoch 2
    assert not (tmp_path / "split" / "model.pt").exists()
    assert retrain(tmp_path, "--resume", str(tmp_path / "split")) == 0
    whole, split = load_network(tmp_path / "whole" / "model.pt"), load_network(tmp_path / "split" / "model.pt")
    for (k, a), b in zip(whole.state_dict().items(), split.state_dict().values()):
        assert torch.equal(a, b), k
    drop = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert drop(read_rows(tmp_path / "whole" / "metrics.csv")) == drop(read_rows(tmp_path / "split" / "metrics.csv"))
    assert [r["drop_path"] for r in read_rows(tmp_path / "whole" / "metrics.csv")] == ["0.0", "0.15"]


def test_cutout_zeroes_one_clipped_square_and_leaves_the_other_draws_alone():
    bundle = create_dataset("synthetic", limit=64)
    plain = build_loader(bundle.train, bundle, 64, train=True, seed=3, augment="cifar")
    cut = build_loader(bundle.train, bundle, 64, train=True, seed=3, augment="cifar", cutout=16)
    (xp, yp), (xc, yc) = next(iter(plain)), next(iter(cut))
    assert torch.equal(yp, yc)
    zero = (xc == 0).all(1)  # (B, H, W): the cut pixels, all channels
    assert torch.equal(xc[~zero.unsqueeze(1).expand_as(xc)], xp[~zero.unsqueeze(1).expand_as(xp)])
    for mask in zero:
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        assert mask.sum() == len(rows) * len(cols)  # one axis-aligned rectangle
        for idx in (rows, cols):  # 16 wide unless clipped at an image border
            assert len(idx) == idx[-1] - idx[0] + 1 and (len(idx) == 16 or idx[0] == 0 or idx[-1] == 31)
    assert 0.1 < zero.float().mean() < 0.25  # E[area] / 32^2 is about 0.19 for centres drawn uniformly
    with pytest.raises(ValueError, match="'cutout' parameter of build_loader"):
        build_loader(bundle.train, bundle, 64, train=True, cutout=-1)


def test_auxiliary_tower_and_drop_path_train_on_32px(tmp_path):
    args = ["--arch", DARTS_V2, "--data.dataset", "synthetic", "--data.limit", "64", "--data.batch_size", "32",
            "--model.options.channels", "4", "--model.options.layers", "3", "--model.options.auxiliary", "true", "--retrain.drop_path", "0.2",
            "--retrain.epochs", "1", "--run.progress", "false"]  # fmt: skip
    assert retrain(tmp_path, *args) == 0
    net = load_network(tmp_path / "r" / "model.pt")
    assert net.auxiliary_head is not None
    logits, aux = net.train().forward_train(torch.zeros(2, 3, 32, 32))
    assert logits.shape == aux.shape == (2, 10)


def test_inherit_starts_from_the_supernet_subnet(tiny_run, tmp_path):
    from supernet.factory import load_trained

    trained = load_trained(tiny_run)
    arch = trained.model.space.sample(np.random.default_rng(1))
    assert retrain(tmp_path, "--arch", str(arch), "--inherit", str(tiny_run), "--retrain.epochs", "1",
                   "--retrain.lr", "1e-9", "--retrain.lr_min", "0", "--retrain.weight_decay", "0", "--retrain.momentum", "0",
                   "--run.progress", "false", "--data.limit", "64") == 0  # fmt: skip
    net = load_network(tmp_path / "r" / "model.pt")
    assert net.hparams["channels"] == 4 and net.hparams["affine"] is False  # the supernet's geometry
    mine = net.state_dict()
    for k, v in trained.model.subnet(arch).named_parameters():  # a near-zero lr: still the supernet's weights
        assert torch.allclose(mine[k], v, rtol=0, atol=1e-6), k


def _bad_cases(tiny_run, blocker):
    seven = DARTS_V2.replace("('dil_conv_3x3', 2)], normal_concat", "], normal_concat")
    return [
        (["--arch", NB201, "--model.network", "darts"], "looks like an NB201 string, not a DARTS architecture"),
        (["--arch", seven], "normal cell: a Genotype lists 8 (op, input) pairs, got 7"),
        (["--arch", DARTS_V2, "--inherit", str(tiny_run)], "is a 'nb201' supernet; network 'darts' builds 'darts' architectures"),
        (["--arch", NB201, "--inherit", str(tiny_run), "--model.options.channels", "16"], "has channels 4 but the network asks for channels 16"),
        (["--arch", NB201, "--retrain.drop_path", "0.2"], "retrain.drop_path 0.2 applies to DARTS networks"),
        (["--arch", DARTS_V2, "--model.options.auxiliary", "true"], "the DARTS auxiliary head needs 32x32"),
        (["--arch", NB201, "--run.root", str(blocker)], "is not a directory"),
        ([], "no architecture: give --arch"),
        (["--arch", "missing/best_arch.json"], "no architecture file at missing/best_arch.json"),
    ]  # fmt: skip


def test_bad_input_is_one_line_exit_2_and_nothing_written(tiny_run, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a directory is needed")
    for args, message in _bad_cases(tiny_run, blocker):
        assert retrain(tmp_path / "runs", *QUICK, *args) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and message in err, (args, err)
        assert not (tmp_path / "runs").exists()  # nothing half-written


def test_check_reads_the_architecture_and_the_inherit_run_and_writes_nothing(tiny_run, tmp_path, capsys):
    assert retrain(tmp_path / "runs", "--arch", NB201, "--inherit", str(tiny_run), "--check") == 0
    out = capsys.readouterr().out
    assert out == f"ok: retrain.py command line, config and the nb201 network of {NB201}, supernet run {tiny_run}\n"
    cases = [(["--arch", "|nor_conv_3x3~0|+|none~0|"], "malformed NB201 string"),
             (["--arch", NB201, "--model.network", "darts"], "looks like an NB201 string, not a DARTS architecture"),
             (["--arch", NB201, "--retrain.drop_path", "0.2"], "applies to DARTS networks"),
             (["--arch", NB201, "--inherit", str(tiny_run), "--model.options.channels", "16"], "has channels 4 but the network asks"),
             (["--arch", NB201, "--inherit", str(tmp_path)], "holds no supernet run (no config.yaml)")]  # fmt: skip
    for args, message in cases:
        assert retrain(tmp_path / "runs", *args, "--check") == 2, args
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and message in err, (args, err)
    assert not (tmp_path / "runs").exists()


def test_train_on_holds_valid_out_when_asked(tmp_path):
    assert retrain(tmp_path, "--arch", NB201, *QUICK, "--retrain.epochs", "1", "--retrain.train_on", "train",
                   "--data.limit", "100") == 0  # fmt: skip
    assert {"valid_acc", "test_acc"} <= set(read_rows(tmp_path / "r" / "metrics.csv")[0])
