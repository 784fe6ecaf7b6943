"""The differentiable search loop and its CLI: records, exact resume (also after kill -9), bad input."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import genas.differentiable  # noqa: F401  (registers the differentiable section)
import supernet  # noqa: F401
from genas.differentiable.cli import main, search_from_config
from genas.cli import run_cli
from genas.config import load_config
from tests.conftest import REPO

TINY = [
    "--run.progress", "false", "--run.threads", "1", "--data.limit", "128", "--data.batch_size", "32",
    "--supernet.options.channels", "4", "--supernet.options.layers", "1", "--differentiable.epochs", "3",
    "--differentiable.lr", "0.05",
]  # fmt: skip


def cfg_for(root, name, *extra):
    return load_config("a2m_quickstart", [*TINY, "--run.root", str(root), "--run.name", name, *extra])


def alphas(run_dir):
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)
    return {k[5:]: v for k, v in state["model"].items() if k.startswith("arch.")}


def test_records_of_a_search(tmp_path, capsys):
    search = search_from_config(cfg_for(tmp_path, "r", "--run.progress", "true"))
    out = tmp_path / "r"
    for f in ("config.yaml", "env.json", "metrics.csv", "alphas.png", "best_arch.json", "DONE", "checkpoints/last.pt"):
        assert (out / f).is_file(), f
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    for col in ("lr", "train_loss", "train_acc", "valid_loss", "valid_acc", "skips", "arch", "w_none", "w_skip_connect",
                "w_nor_conv_1x1", "w_nor_conv_3x3", "w_avg_pool_3x3"):  # fmt: skip
        assert col in rows[0], col
    assert abs(sum(float(rows[-1][f"w_{op}"]) for op in search.model.space.ops) - 1.0) < 1e-5
    best = json.loads((out / "best_arch.json").read_text())
    chosen = min(rows, key=lambda r: float(r["valid_loss"]))
    assert best["arch"] == chosen["arch"] and best["generation"] == int(chosen["epoch"])
    assert best["space"] == "nb201" and best["algorithm"] == "differentiable-a2m" and best["architect"] == "a2m"
    from genas.export.arch import read_arch

    assert read_arch(out / "best_arch.json", space="nb201") == search.model.space.parse(chosen["arch"])  # downstream
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("epoch ")]
    assert len(lines) == 3  # stdout is not a terminal here: one plain line per epoch
    assert not list(out.rglob(".*.tmp"))


def test_the_architecture_step_uses_one_validation_batch_for_all_four_gradients(tmp_path):
    search = search_from_config(cfg_for(tmp_path, "r", "--differentiable.epochs", "1"))
    seen = []
    handle = search.model.net.stem.register_forward_hook(lambda m, inp, out: seen.append(inp[0]))
    train, valid = next(iter(search.train_loader)), next(iter(search.valid_loader))
    search.arch_step(train, valid)
    handle.remove()
    assert len(seen) == 4 and all(x is valid[0] for x in seen)


def test_stop_and_resume_gives_the_same_alphas_and_genotype(tmp_path):
    search_from_config(cfg_for(tmp_path, "full"))
    cut = cfg_for(tmp_path, "cut")
    search_from_config(cut, max_epochs=1)
    assert not (tmp_path / "cut" / "DONE").exists()
    search_from_config(cut, resume_dir=str(tmp_path / "cut"), max_epochs=1)
    search_from_config(cut, resume_dir=str(tmp_path / "cut"))
    a, b = alphas(tmp_path / "full"), alphas(tmp_path / "cut")
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows_a = list(csv.DictReader((tmp_path / "full" / "metrics.csv").open()))
    rows_b = list(csv.DictReader((tmp_path / "cut" / "metrics.csv").open()))
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in rows_a] == [
        {k: v for k, v in r.items() if k != "seconds"} for r in rows_b]  # fmt: skip
    best_a, best_b = (json.loads((tmp_path / n / "best_arch.json").read_text()) for n in ("full", "cut"))
    assert best_a["arch"] == best_b["arch"]


@pytest.mark.slow
def test_kill_9_and_resume_gives_the_same_alphas_and_genotype(tmp_path):
    args = [*TINY, "--run.root", str(tmp_path), "--differentiable.architect", "darts", "--differentiable.epochs", "4"]
    tool = [sys.executable, str(REPO / "tools" / "search_darts.py")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ref = subprocess.run([*tool, *args, "--run.name", "ref"], capture_output=True, text=True, env=env, timeout=600)
    assert ref.returncode == 0, ref.stderr
    proc = subprocess.Popen([*tool, *args, "--run.name", "killed"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    metrics = tmp_path / "killed" / "metrics.csv"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not (metrics.exists() and metrics.read_text().count("\n") >= 3):
        time.sleep(0.05)  # two epochs written: kill inside the third
    assert proc.poll() is None, "the search ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "DONE").exists()
    again = subprocess.run([*tool, "--resume", str(tmp_path / "killed"), "--run.progress", "false"],
                           capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
    assert again.returncode == 0, again.stderr
    a, b = alphas(tmp_path / "ref"), alphas(tmp_path / "killed")
    assert all(torch.equal(a[k], b[k]) for k in a)
    best_a, best_b = (json.loads((tmp_path / n / "best_arch.json").read_text()) for n in ("ref", "killed"))
    assert best_a["arch"] == best_b["arch"] and best_a["generation"] == best_b["generation"]


def test_darts_space_search_and_second_order(tmp_path):
    search_from_config(cfg_for(tmp_path, "d", "--supernet.space", "darts", "--supernet.options.layers", "3",
                               "--differentiable.epochs", "1", "--differentiable.architect_options.rho", "0.1"))  # fmt: skip
    best = json.loads((tmp_path / "d" / "best_arch.json").read_text())
    assert best["arch"].startswith("Genotype(") and best["space"] == "darts" and "genotype" in best
    from genas.export.arch import read_arch

    assert str(read_arch(tmp_path / "d" / "best_arch.json", space="darts")) == best["arch"]
    row = next(csv.DictReader((tmp_path / "d" / "metrics.csv").open()))
    assert {"skips_normal", "skips_reduce", "normal_w_skip_connect", "reduce_w_none"} <= set(row)
    search_from_config(cfg_for(tmp_path, "o2", "--differentiable.architect", "darts2", "--differentiable.epochs", "1"))
    assert json.loads((tmp_path / "o2" / "best_arch.json").read_text())["algorithm"] == "differentiable-darts2"


def test_benchmark_accuracy_of_the_derived_cell(tmp_path, nb201_table_path):
    from genas.tables import load_nb201_table

    search_from_config(cfg_for(tmp_path, "t", "--differentiable.table", str(nb201_table_path), "--differentiable.epochs", "1"))
    row = next(csv.DictReader((tmp_path / "t" / "metrics.csv").open()))
    table = load_nb201_table(nb201_table_path)
    for key, dataset in (("cifar10", "cifar10"), ("cifar100", "cifar100"), ("imagenet16", "imagenet16")):
        assert float(row[f"bench_{key}"]) == pytest.approx(table.accuracy(row["arch"], dataset=dataset), abs=1e-4)
    best = json.loads((tmp_path / "t" / "best_arch.json").read_text())
    assert set(best["nb201_test_accuracy"]) == {"cifar10", "cifar100", "imagenet16"}


# ---- bad input: one line, exit 2, nothing written --------------------------------------------------
def cli(capsys, *argv):
    code = run_cli(main, list(argv))
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


@pytest.mark.parametrize("extra, needle", [
    (["--architect", "a2n"], "unknown architect 'a2n'. Did you mean 'a2m'?"),
    (["--differentiable.architect_options.rho", "0"], "The 'rho' parameter of architect a2m must be a float in the range (0.0, inf). Got 0.0"),
    (["--differentiable.architect_options.eps", "-0.01"], "The 'eps' parameter of architect a2m must be a float in the range (0.0, inf)"),
    (["--differentiable.architect_options.radius", "1"], "architect 'a2m' has no option 'radius'; its options: rho, eps, fd"),
    (["--supernet.space", "nb101"], "unknown supernet 'nb101'. Did you mean 'nb201'? Available: darts, nb201"),
    (["--supernet.options.stem", "imagenet"], "supernet 'nb201' takes no option 'stem'; its options: affine, channels, layers, track_running_stats"),
    (["--supernet.options.channels", "0"], "The 'channels' parameter of supernet must be an int in the range [1, 4096]. Got 0 instead."),
    (["--supernet.space", "darts", "--table", "x.csv"], "applies only to supernet.space 'nb201', not 'darts'"),
    (["--differentiable.rhoo", "0.1"], "Did you mean 'differentiable.architect_options.rho'"),
    (["--differentiable.select", "best"], "The 'select' parameter of differentiable must be one of"),
])  # fmt: skip
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, extra, needle):
    code, err = cli(capsys, *TINY, "--run.root", str(tmp_path), *extra)
    assert code == 2 and len(err) == 1 and err[0].startswith("error: "), err
    assert needle in err[0], err[0]
    assert not any(tmp_path.iterdir())


def test_resume_with_another_architect_is_refused_and_changes_nothing(tmp_path, capsys):
    search_from_config(cfg_for(tmp_path, "r", "--differentiable.epochs", "2"), max_epochs=1)
    before = {p: p.read_bytes() for p in (tmp_path / "r").rglob("*") if p.is_file()}
    code, err = cli(capsys, "--resume", str(tmp_path / "r"), "--architect", "darts")
    assert code == 2 and len(err) == 1 and "searched with architect 'a2m'" in err[0] and "--architect a2m" in err[0], err
    code, err = cli(capsys, "--resume", str(tmp_path / "r"), "--differentiable.architect_options.rho", "0.1")
    assert code == 2 and "a resume must use the same" in err[0], err
    after = {p: p.read_bytes() for p in (tmp_path / "r").rglob("*") if p.is_file()}
    assert after == before


def test_list_architects(capsys):
    assert run_cli(main, ["--list-architects"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("darts", "darts2", "a2m"))
