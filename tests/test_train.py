"""Supernet training runs: run directory, checkpoints, exact resume, CLI errors."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest
import torch

from genas.config import load_config
from genas.runs import Run
from supernet.cli import train_from_config
from tests.conftest import REPO, TINY_TRAIN

TOOL = [sys.executable, str(REPO / "tools" / "train_supernet.py")]


def tiny_cfg(root, name, *extra):
    return load_config("quickstart", [*TINY_TRAIN, "--run.root", str(root), "--run.name", name, *extra])


def test_run_directory_contents(tiny_run):
    run = Run(tiny_run)
    for f in ("config.yaml", "env.json", "metrics.csv", "DONE"):
        assert (tiny_run / f).is_file(), f
    ckpts = sorted(p.name for p in run.ckpt_dir.glob("*.pt"))
    assert ckpts == ["epoch_0001.pt", "epoch_0002.pt", "init.pt", "last.pt"]
    env = json.loads((tiny_run / "env.json").read_text())
    assert env["seed"] == 0 and "torch" in env["versions"] and "git_revision" in env
    rows = list(csv.DictReader((tiny_run / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2] and float(rows[-1]["train_loss"]) > 0
    init, last = run.load("init"), run.load("last")
    assert init["global_step"] == 0 and last["epoch"] == 2
    changed = [k for k in init["model"] if not torch.equal(init["model"][k], last["model"][k])]
    assert changed  # training moved the weights; init kept the step-0 ones
    assert not list(tiny_run.rglob(".*.tmp"))  # no leftovers of atomic writes


def test_interrupted_and_resumed_run_ends_with_the_same_weights(tmp_path):
    full = train_from_config(tiny_cfg(tmp_path, "full"))
    cut = tiny_cfg(tmp_path, "cut")
    train_from_config(cut, max_steps=4)  # stops mid-epoch 1 (6 steps per epoch), like Ctrl-C
    partial = Run(tmp_path / "cut")
    assert partial.load("last")["step"] == 4 and not partial.done
    train_from_config(cut, resume_dir=str(partial.path), max_steps=5)  # into epoch 2, stop again
    train_from_config(cut, resume_dir=str(partial.path))
    a, b = Run(full.path).load("last"), partial.load("last")
    assert a["global_step"] == b["global_step"]
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert a["history"][-1]["train_loss"] == b["history"][-1]["train_loss"]


def test_existing_run_is_not_overwritten_silently(tmp_path):
    train_from_config(tiny_cfg(tmp_path, "r", "--train.epochs", "1"))
    from genas.errors import ConfigError

    with pytest.raises(ConfigError, match="already holds a run; continue it with --resume"):
        train_from_config(tiny_cfg(tmp_path, "r", "--train.epochs", "1"))


def run_tool(*args, cwd=None):
    return subprocess.run([*TOOL, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def assert_one_line_error(proc, needle):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in proc.stderr
    assert needle in lines[0], lines[0]


def test_cli_rejects_bad_input_with_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    cases = [
        (["--train.lrr", "0.1"], "Did you mean 'train.lr'"),
        (["--run.root", str(blocker / "sub")], "is not a directory"),
        (["--data.dataset", "fashion-mnist", "--data.options.root", str(tmp_path / "none"), "--run.root", str(tmp_path)],
         "train-images-idx3-ubyte"),
        (["--data.dataset", "cifar11", "--run.root", str(tmp_path)], "Did you mean 'cifar10'"),
        (["--resume", str(tmp_path / "nothing")], "holds no run"),
    ]  # fmt: skip
    for args, needle in cases:
        assert_one_line_error(run_tool(*args), needle)
    assert not (blocker.parent / "none").exists()


def test_cli_resume_rejects_corrupt_and_incompatible_checkpoints(tmp_path):
    ok = run_tool(*TINY_TRAIN, "--run.root", str(tmp_path), "--run.name", "r", "--train.epochs", "1")
    assert ok.returncode == 0, ok.stderr
    last = tmp_path / "r" / "checkpoints" / "last.pt"
    good = last.read_bytes()
    last.write_bytes(good[: len(good) // 2])
    assert_one_line_error(run_tool("--resume", str(tmp_path / "r")), "corrupt or unreadable")
    torch.save({"format": "something else"}, last)
    assert_one_line_error(run_tool("--resume", str(tmp_path / "r")), "not a genas supernet checkpoint")
    last.write_bytes(good)
    assert_one_line_error(run_tool("--resume", str(tmp_path / "r"), "--supernet.options.channels", "8"), "incompatible")


def test_tensorboard_logging(tmp_path):
    pytest.importorskip("tensorboard")
    run = train_from_config(tiny_cfg(tmp_path, "tb", "--train.epochs", "1", "--run.tensorboard", "true"))
    assert list((run.path / "tb").glob("events.out.tfevents.*"))


def test_tensorboard_needs_its_package(monkeypatch):
    import importlib.util

    from genas.errors import ConfigError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    with pytest.raises(ConfigError, match=r"pip install -e '.\[tb\]'"):
        load_config("quickstart", ["--run.tensorboard", "true"])
