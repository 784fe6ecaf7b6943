"""Issue 27: refused resumes change nothing, kill -9 at any moment resumes bit for bit, ``--resume auto``.

The kills are real ``SIGKILL``s of a tool's process, placed deterministically: ``_pause_at_write.py``
stops the tool at its K-th write of ``checkpoints/last.pt`` (inside the atomic write, or just after it)
and the test kills it there.  With ``run.checkpoint_steps`` a kill inside the first epoch continues at
the step of the last checkpoint; ``metrics.csv`` is never ahead of ``last.pt`` and agrees with it
again after the resume.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import genas.differentiable  # noqa: F401  (registers the differentiable section)
import genas.export.config  # noqa: F401  (registers the model and retrain sections)
import supernet  # noqa: F401  (registers the supernet and train sections)
from genas.cli import run_cli
from tests.conftest import REPO, TINY_TRAIN
from tests.test_export_networks import NB201

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
PAUSE = REPO / "tests" / "_pause_at_write.py"

DARTS_TINY = [  # 128 training images in batches of 16: 8 steps per epoch, a checkpoint every 2
    "--run.progress", "false", "--run.threads", "1", "--data.limit", "128", "--data.batch_size", "16",
    "--supernet.options.channels", "4", "--supernet.options.layers", "1", "--differentiable.epochs", "2",
    "--differentiable.lr", "0.05", "--differentiable.architect", "darts", "--run.checkpoint_steps", "2",
]  # fmt: skip
RETRAIN_TINY = [  # 256 images (train + valid) in batches of 32: 8 steps per epoch, a checkpoint every 2
    "--arch", NB201, "--model.options.channels", "4", "--model.options.layers", "1", "--retrain.epochs", "2", "--data.limit", "128",
    "--data.batch_size", "32", "--run.checkpoint_steps", "2", "--run.progress", "false", "--run.threads", "1",
]  # fmt: skip


# ---- helpers ---------------------------------------------------------------------------------------
def tool(name, *args):
    return subprocess.run([sys.executable, str(REPO / "tools" / name), *map(str, args)], capture_output=True,
                          text=True, env=ENV, timeout=600)  # fmt: skip


def kill_at_write(name, args, when, k, marker):
    """Start tool ``name``, SIGKILL it at its ``k``-th write of last.pt (``before`` / ``after`` the replace)."""
    marker.mkdir(parents=True, exist_ok=True)
    for f in marker.glob("paused*"):
        f.unlink()
    proc = subprocess.Popen([sys.executable, str(PAUSE), when, str(k), str(marker), str(REPO / "tools" / name),
                             *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)  # fmt: skip
    deadline = time.time() + 600
    while not (marker / "paused0").exists():
        assert proc.poll() is None, f"the tool ended before its write {k}: {proc.stderr.read().decode()[-2000:]}"
        assert time.time() < deadline
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL


def last(run_dir):
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)


def rows(run_dir):
    path = run_dir / "metrics.csv"
    if not path.exists():
        return []
    with path.open(newline="") as fh:
        return [{k: v for k, v in r.items() if k not in ("seconds", "images_per_s", "data_wait")} for r in csv.DictReader(fh)]


def tensors(obj, prefix=""):
    """Every tensor in a (nested) checkpoint, by its path."""
    if isinstance(obj, torch.Tensor):
        return {prefix: obj}
    out = {}
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else ()
    for k, v in items:
        out.update(tensors(v, f"{prefix}/{k}"))
    return out


def assert_same_checkpoint(a, b):
    ta, tb = tensors({k: a[k] for k in a if k != "config"}), tensors({k: b[k] for k in b if k != "config"})
    assert ta.keys() == tb.keys()
    for k in ta:
        assert torch.equal(ta[k], tb[k]), k
    assert (a["epoch"], a.get("step"), a.get("global_step")) == (b["epoch"], b.get("step"), b.get("global_step"))


def snapshot(root):
    return {p: (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def run(main, *argv):
    return run_cli(main, [*map(str, argv)])


def one_line_error(capsys, main, *argv):
    code = run(main, *argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: "), (code, err)
    return err[0]


# ---- 1. a checkpoint that cannot be resumed: one line, exit 2, nothing modified ------------------------
@pytest.fixture(scope="module")
def train_run(tmp_path_factory):
    """A supernet trained for 1 epoch (its last.pt a finished-epoch checkpoint)."""
    from supernet.cli import main

    root = tmp_path_factory.mktemp("train")
    assert run(main, *TINY_TRAIN, "--train.epochs", "1", "--run.root", root, "--run.name", "r") == 0
    return root / "r"


def _damage(state, how):
    if how == "epoch":
        state["epoch"] = "one"
    elif how == "step":
        state["step"] = 99
    else:  # weights of the wrong shape under the right hparams
        key = next(k for k, v in state["model"].items() if v.dim() == 4)
        state["model"][key] = torch.zeros(3, *state["model"][key].shape[1:])


def _refused_resume(capsys, main, source, tmp_path, how, *extra):
    """Copy run ``source``, damage its last.pt ``how``, resume it: one line, exit 2, every file as it was."""
    import shutil

    run_dir = tmp_path / "r"
    shutil.copytree(source, run_dir)
    ckpt = run_dir / "checkpoints" / "last.pt"
    if how == "directory":
        ckpt.unlink()
        ckpt.mkdir()
    else:
        state = torch.load(ckpt, weights_only=False)
        _damage(state, how)
        torch.save(state, ckpt)
    capsys.readouterr()
    before = snapshot(tmp_path)
    err = one_line_error(capsys, main, "--resume", run_dir, *extra)
    assert snapshot(tmp_path) == before  # config.yaml, env.json, metrics.csv, last.pt: all as they were
    return err


BAD = [
    ("directory", "last.pt is a directory, not a file the run can read or replace"),
    ("epoch", "its epoch is 'one', not a count"),
    ("shapes", "size mismatch for"),
]  # fmt: skip


@pytest.mark.parametrize("how, needle", BAD)
def test_train_refuses_a_bad_checkpoint_before_writing(train_run, tmp_path, capsys, how, needle):
    from supernet.cli import main

    err = _refused_resume(capsys, main, train_run, tmp_path, how, "--train.epochs", "2")
    assert needle in err, err


@pytest.fixture(scope="module")
def darts_run(tmp_path_factory):
    """A differentiable search stopped after its first of 2 epochs."""
    from genas.differentiable.cli import main

    root = tmp_path_factory.mktemp("darts")
    assert run(main, *DARTS_TINY, "--run.root", root, "--run.name", "r", "--max-epochs", "1") == 0
    return root / "r"


@pytest.mark.parametrize("how, needle", [
    *BAD, ("step", "stopped at step 99 of an epoch, but this config's epochs have 8 steps"),
])  # fmt: skip
def test_search_darts_refuses_a_bad_checkpoint_before_writing(darts_run, tmp_path, capsys, how, needle):
    from genas.differentiable.cli import main

    err = _refused_resume(capsys, main, darts_run, tmp_path, how)
    assert needle in err, err


@pytest.fixture(scope="module")
def retrain_run(tmp_path_factory):
    """A retrain stopped inside its first epoch (step 3 of 8)."""
    from genas.export.retrain_cli import main

    root = tmp_path_factory.mktemp("retrain")
    assert run(main, *RETRAIN_TINY, "--run.root", root, "--run.name", "r", "--max-steps", "3") == 0
    return root / "r"


@pytest.mark.parametrize("how, needle", [
    *BAD, ("step", "stopped at step 99 of an epoch, but this config's epochs have 8 steps"),
])  # fmt: skip
def test_retrain_refuses_a_bad_checkpoint_before_writing(retrain_run, tmp_path, capsys, how, needle):
    from genas.export.retrain_cli import main

    err = _refused_resume(capsys, main, retrain_run, tmp_path, how)
    assert needle in err, err


# ---- 2. evolve --resume without a search ------------------------------------------------------------------
def test_evolve_resume_without_a_search_is_refused(tmp_path, capsys):
    from evolution.cli import main

    err = one_line_error(capsys, main, "--scorer", "params", "--out", tmp_path / "none", "--resume")
    assert f"nothing to resume: {tmp_path / 'none'} holds no search" in err and "without --resume" in err, err
    assert not (tmp_path / "none").exists()


# ---- 3. kill -9 anywhere: the resumed run ends bit for bit where an uninterrupted one does -------------
def _killed_and_resumed(tmp_path, name, args, step_writes_left):
    """Kill ``name`` inside epoch 1 (after its first step checkpoint), then in the middle of the epoch-1 write
    of last.pt, then between that checkpoint and its metrics row; resume to the end each time."""
    ref, cut, marker = tmp_path / "ref", tmp_path / "cut", tmp_path / "marker"
    done = tool(name, *args, "--run.root", tmp_path, "--run.name", "ref")
    assert done.returncode == 0, done.stderr
    kill_at_write(name, [*args, "--run.root", tmp_path, "--run.name", "cut"], "after", 1, marker)
    state = last(cut)
    assert (state["epoch"], state["step"]) == (0, 2) and rows(cut) == []  # inside the first epoch
    resume = ["--resume", cut, "--run.progress", "false"]
    kill_at_write(name, resume, "before", step_writes_left + 1, marker)  # the epoch-end write, cut off
    state = last(cut)
    assert list((cut / "checkpoints").glob(".last.pt.*.tmp")) and (state["epoch"], state["step"]) == (0, 2 + 2 * step_writes_left)
    assert rows(cut) == []  # the metrics row of epoch 1 is never written before its checkpoint
    kill_at_write(name, resume, "after", 1, marker)  # last.pt of epoch 1 on disk, its metrics row not yet
    assert (last(cut)["epoch"], last(cut)["step"]) == (1, 0) and rows(cut) == []
    again = tool(name, *resume)
    assert again.returncode == 0, again.stderr
    assert_same_checkpoint(last(ref), last(cut))
    assert rows(cut) == rows(ref) and len(rows(ref)) == 2  # the very same floats, the resumed epoch's included
    assert (cut / "DONE").is_file() and not list(cut.rglob(".*.tmp"))
    return ref, cut


@pytest.mark.slow  # five processes of a few seconds each
def test_search_darts_killed_anywhere_resumes_bit_for_bit(tmp_path):
    # 8 steps per epoch, a checkpoint every 2: resumed at step 2, the steps 4 and 6 are written before the epoch end
    ref, cut = _killed_and_resumed(tmp_path, "search_darts.py", DARTS_TINY, step_writes_left=2)
    import json

    assert json.loads((ref / "best_arch.json").read_text())["arch"] == json.loads((cut / "best_arch.json").read_text())["arch"]


@pytest.mark.slow  # five processes of a few seconds each
def test_retrain_killed_anywhere_resumes_bit_for_bit(tmp_path):
    # 8 steps per epoch, a checkpoint every 2: resumed at step 2, the steps 4 and 6 are written before the epoch end
    ref, cut = _killed_and_resumed(tmp_path, "retrain.py", RETRAIN_TINY, step_writes_left=2)
    a, b = torch.load(ref / "model.pt", weights_only=False), torch.load(cut / "model.pt", weights_only=False)
    assert all(torch.equal(v, b["state_dict"][k]) for k, v in a["state_dict"].items())


def test_supernet_step_checkpoints_resume_mid_epoch(tmp_path, monkeypatch):
    """``run.checkpoint_steps`` in supernet training: killed after a checkpoint inside epoch 1, resumed exactly."""
    from genas.config import load_config
    from genas.runs import Run
    from supernet import train as train_mod
    from supernet.cli import train_from_config

    def cfg(name):
        return load_config("quickstart", [*TINY_TRAIN, "--run.checkpoint_steps", "4", "--run.root", str(tmp_path),
                                          "--run.name", name])  # fmt: skip

    class Killed(BaseException):
        pass

    full = train_from_config(cfg("full"))
    real_fit = train_mod.SupernetTrainer.fit

    def fit_then_die(self, max_steps=None, on_step=None):
        def die(step):
            if step == 5:  # 6 steps per epoch: the step-4 checkpoint is on disk, step 5 is lost
                raise Killed
        return real_fit(self, max_steps, die)

    monkeypatch.setattr(train_mod.SupernetTrainer, "fit", fit_then_die)
    with pytest.raises(Killed):
        train_from_config(cfg("cut"))
    monkeypatch.setattr(train_mod.SupernetTrainer, "fit", real_fit)
    cut = Run(tmp_path / "cut")
    state = cut.load("last")
    assert (state["epoch"], state["step"], state["epoch_sums"]["seen"]) == (0, 4, 4 * 32)
    train_from_config(cfg("cut"), resume_dir=str(cut.path))
    assert_same_checkpoint(Run(full.path).load("last"), cut.load("last"))
    assert len(rows(full.path)) == 2 and rows(full.path) == rows(cut.path)  # the resumed epoch's sums too


def test_a_stop_after_the_last_step_of_an_epoch_resumes(tmp_path):
    """``step`` equal to the steps of an epoch (its end not yet recorded) is a position a resume accepts."""
    from genas.config import load_config
    from genas.runs import Run
    from supernet.cli import train_from_config

    def cfg(name):
        return load_config("quickstart", [*TINY_TRAIN, "--run.root", str(tmp_path), "--run.name", name])

    full = train_from_config(cfg("full"))
    train_from_config(cfg("cut"), max_steps=6)  # 6 steps per epoch
    assert (Run(tmp_path / "cut").load("last")["epoch"], Run(tmp_path / "cut").load("last")["step"]) == (0, 6)
    train_from_config(cfg("cut"), resume_dir=str(tmp_path / "cut"))
    assert_same_checkpoint(Run(full.path).load("last"), Run(tmp_path / "cut").load("last"))


# ---- 4. --resume auto ------------------------------------------------------------------------------------
def test_resume_auto_starts_or_continues(tmp_path, monkeypatch):
    from genas.differentiable.cli import main

    args = [*DARTS_TINY, "--run.root", tmp_path, "--run.name"]
    assert run(main, *args, "ref") == 0
    assert run(main, *args, "auto", "--resume", "auto", "--max-epochs", "1") == 0  # nothing to continue: starts
    assert last(tmp_path / "auto")["epoch"] == 1 and not (tmp_path / "auto" / "DONE").exists()
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")  # a restarted torchrun worker group: auto, unasked
    monkeypatch.setenv("TORCHELASTIC_MAX_RESTARTS", "2")
    assert run(main, *args, "auto", "--run.overwrite", "true") == 0  # a restart never replaces
    assert_same_checkpoint(last(tmp_path / "ref"), last(tmp_path / "auto"))
    assert (tmp_path / "auto" / "DONE").is_file()
