"""Kills, leftovers and non-finite numbers (issue 10): every kill resumable, no NaN passed off as a result."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
import torch

from genas.config import load_config
from genas.io import atomic_write_json, to_jsonable
from genas.runs import Run
from supernet.cli import train_from_config
from tests.conftest import REPO, TINY_TRAIN


class Killed(BaseException):
    """Stands in for SIGKILL inside the process: nothing catches it, nothing is saved on the way out."""


def tiny_cfg(root, name, *extra):
    return load_config("quickstart", [*TINY_TRAIN, "--run.root", str(root), "--run.name", name, *extra])


def same_weights(a: Run, b: Run) -> bool:
    sa, sb = a.load("last"), b.load("last")
    return sa["global_step"] == sb["global_step"] and all(torch.equal(sa["model"][k], sb["model"][k]) for k in sa["model"])


def test_training_killed_before_its_first_epoch_checkpoint_resumes_exactly(tmp_path, monkeypatch):
    full = train_from_config(tiny_cfg(tmp_path, "full"))
    from supernet import train as train_mod

    real_fit = train_mod.SupernetTrainer.fit

    def fit_then_die(self, max_steps=None, on_step=None):
        def die(step):
            if step == 3:  # init.pt is on disk, epoch 1 is not finished: no last.pt
                raise Killed
        return real_fit(self, max_steps, die)

    monkeypatch.setattr(train_mod.SupernetTrainer, "fit", fit_then_die)
    with pytest.raises(Killed):
        train_from_config(tiny_cfg(tmp_path, "cut"))
    monkeypatch.setattr(train_mod.SupernetTrainer, "fit", real_fit)
    cut = Run(tmp_path / "cut")
    assert sorted(p.name for p in cut.ckpt_dir.glob("*.pt")) == ["init.pt"]
    (cut.ckpt_dir / ".last.pt.abc123.tmp").write_bytes(b"half a checkpoint")  # an atomic write cut off by kill -9
    with pytest.raises(Exception, match="already holds a run; continue it with --resume"):
        train_from_config(tiny_cfg(tmp_path, "cut"))
    train_from_config(tiny_cfg(tmp_path, "cut"), resume_dir=str(cut.path))
    assert same_weights(Run(full.path), cut) and cut.done
    assert not list(cut.path.rglob(".*.tmp"))


def test_training_killed_before_any_checkpoint_restarts(tmp_path):
    cfg = tiny_cfg(tmp_path, "early")
    run = Run(tmp_path / "early").prepare()
    run.write_config(cfg)  # a start killed right after writing its config
    train_from_config(cfg, resume_dir=str(run.path))
    full = train_from_config(tiny_cfg(tmp_path, "full"))
    assert same_weights(Run(full.path), run)


def test_a_refused_resume_changes_nothing(tmp_path):
    run = train_from_config(tiny_cfg(tmp_path, "r", "--train.epochs", "1"))
    before = {p: p.read_bytes() for p in run.path.rglob("*") if p.is_file()}
    with pytest.raises(Exception, match="unsampled_update 'decay', this config says 'freeze'"):
        train_from_config(tiny_cfg(tmp_path, "r", "--train.unsampled_update", "freeze"), resume_dir=str(run.path))
    assert {p: p.read_bytes() for p in run.path.rglob("*") if p.is_file()} == before


def test_resuming_a_finished_run_says_so(tmp_path, capsys):
    run = train_from_config(tiny_cfg(tmp_path, "done", "--train.epochs", "1"))
    capsys.readouterr()
    train_from_config(tiny_cfg(tmp_path, "done", "--train.epochs", "1"), resume_dir=str(run.path))
    out = capsys.readouterr().out
    assert "is finished (1/1 epochs); nothing to resume" in out and "nan" not in out


def test_a_diverged_run_stops_with_one_line_and_keeps_the_last_good_checkpoint(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "train_supernet.py"), *TINY_TRAIN, "--train.lr", "100", "--train.weight_decay", "1", "--train.epochs", "8",
                           "--train.momentum", "0", "--run.root", str(tmp_path), "--run.name", "nan"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=3600)  # fmt: skip
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 3 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "NaN or infinite in epoch 1, step" in lines[0] and "--train.lr" in lines[0] and "grad_clip" in lines[0]
    assert "supernet trained" not in proc.stdout
    run = Run(tmp_path / "nan")
    assert not run.done
    kept = run.load(run.latest())
    assert all(torch.isfinite(v).all() for v in kept["model"].values() if v.is_floating_point())


def test_json_records_are_valid_json(tmp_path):
    assert to_jsonable({"a": float("nan"), "b": [np.float64("inf"), 1.5], "c": np.float32(2.0)}) == {
        "a": None, "b": [None, 1.5], "c": 2.0}
    atomic_write_json(tmp_path / "x.json", {"score": math.nan})
    assert json.loads((tmp_path / "x.json").read_text(), parse_constant=lambda c: pytest.fail(c)) == {"score": None}


def test_angle_of_nan_weights_gets_the_worst_value_and_every_replacement_is_counted(ctx, archs):
    from scorers import ScoringContext, create_scorer

    broken = {k: v.clone() for k, v in ctx.supernet.state_dict().items()}
    nan_ctx = ScoringContext(ctx.supernet, init_state={k: torch.full_like(v, math.nan) if v.is_floating_point() else v
                                                         for k, v in broken.items()})  # fmt: skip
    angle = create_scorer("angle")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = nan_ctx.score(angle, archs[:2])
        nan_ctx.score(angle, archs[2:])
    assert np.all(first == -np.inf)  # not 0: a NaN cosine is a failed evaluation
    texts = [str(w.message) for w in caught]
    assert any("2 non-finite score(s)" in t and "2 so far" in t for t in texts)
    assert any("so far" in t and f"{len(archs)} so far" in t for t in texts) and nan_ctx.replaced == {"angle": len(archs)}


def test_rank_says_when_a_scorer_carries_no_ranking(tmp_path, nb201_table_path, capsys, tiny_run):
    from genas.analysis.rank_cli import main as rank_main

    plugin = tmp_path / "flat_plugin.py"
    plugin.write_text("from scorers import Needs, register_scorer\n"
                      "@register_scorer('constant_one', needs=Needs(supernet=False), overwrite=True)\n"
                      "def constant_one(arch, ctx):\n    return 1.0\n")  # fmt: skip
    assert rank_main(["--scorer", "constant_one", "--plugin", str(plugin), "--sample", "20", "--table",
                      str(nb201_table_path), "--out", str(tmp_path / "r"), "--run.progress", "false"]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert "scorer 'constant_one': all 20 scores equal 1; its tau says nothing about ranking" in err


SEARCH = ["--search.options.population", "6", "--search.options.topk", "2", "--search.options.mutations", "2", "--search.options.crossovers", "2",
          "--search.options.iterations", "3", "--run.progress", "false", "--score.bn_batches", "2", "--score.bn_batch_size", "32",
          "--score.eval_batches", "2", "--score.eval_batch_size", "32"]  # fmt: skip


def test_search_killed_in_its_first_generation_resumes_exactly(tiny_run, tmp_path, monkeypatch):
    from evolution import runner
    from evolution.cli import main as evolve_main

    full, cut = tmp_path / "full", tmp_path / "cut"
    assert evolve_main(["--supernet", str(tiny_run), "--scorer", "accuracy", "--out", str(full), *SEARCH]) == 0
    real = runner._score
    calls = {"n": 0}

    def dying(fitness, archs, info):
        calls["n"] += 1
        if calls["n"] == 3:  # two candidates of generation 0 are in history.jsonl, no search_state.json yet
            raise Killed
        return real(fitness, archs, info)

    monkeypatch.setattr(runner, "_score", dying)
    with pytest.raises(Killed):
        evolve_main(["--supernet", str(tiny_run), "--scorer", "accuracy", "--out", str(cut), *SEARCH])
    monkeypatch.setattr(runner, "_score", real)
    assert not (cut / "search_state.json").exists() and len((cut / "history.jsonl").read_text().splitlines()) == 2
    (cut / ".best_arch.json.x.tmp").write_text("{")
    assert evolve_main(["--supernet", str(tiny_run), "--scorer", "accuracy", "--out", str(cut), "--resume", *SEARCH]) == 0
    a, b = (json.loads((d / "best_arch.json").read_text()) for d in (full, cut))
    assert (a["arch"], a["score"], a["num_scored"]) == (b["arch"], b["score"], b["num_scored"])
    assert [json.loads(x)["arch"] for x in (full / "history.jsonl").read_text().splitlines()] == [
        json.loads(x)["arch"] for x in (cut / "history.jsonl").read_text().splitlines()]
    assert not list(cut.glob(".*.tmp"))


@pytest.mark.slow
def test_kill_9_at_random_moments_then_resume(tmp_path):
    """SIGKILL a real training process at seeded random moments (the first ones before any checkpoint is
    likely), resume each time; the end is bit-identical to an uninterrupted run whatever the timing."""
    tool = [sys.executable, str(REPO / "tools" / "train_supernet.py"), *TINY_TRAIN, "--train.epochs", "3",
            "--run.root", str(tmp_path)]  # fmt: skip
    subprocess.run([*tool, "--run.name", "full"], check=True, capture_output=True, cwd=tmp_path, timeout=3600)
    rng = np.random.default_rng(0)
    resume: list[str] = []
    for delay in (0.5, *rng.uniform(1.0, 8.0, size=3)):
        proc = subprocess.Popen([*tool, "--run.name", "cut", *resume], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                cwd=tmp_path)  # fmt: skip
        time.sleep(delay)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        if (tmp_path / "cut" / "config.yaml").exists():
            resume = ["--resume", str(tmp_path / "cut")]
    subprocess.run([*tool, "--run.name", "cut", *resume], check=True, capture_output=True, cwd=tmp_path, timeout=3600)
    assert same_weights(Run(tmp_path / "full"), Run(tmp_path / "cut"))
