"""Two torchrun "nodes" on this host (c10d rendezvous, gloo) against one node with two processes.

Each stage runs through its real command-line tool: two ``torchrun --nnodes 2 --nproc_per_node 1
--node-rank {0,1} --rdzv-backend c10d --rdzv-endpoint 127.0.0.1:PORT`` launches, started together,
must give the same result as one ``torchrun --nproc_per_node 2`` launch (to 1e-5): supernet
training, evolution with its scoring sharded over the ranks, and differentiable search.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO, TINY_TRAIN

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
SEARCH = ["--search.options.population", "6", "--search.options.topk", "2", "--search.options.mutations", "2",
          "--search.options.crossovers", "2", "--search.options.iterations", "2", "--run.progress", "false",
          "--score.bn_batches", "2", "--score.bn_batch_size", "32", "--score.eval_batches", "1"]  # fmt: skip
DARTS = ["--run.progress", "false", "--run.threads", "1", "--run.device", "cpu", "--data.limit", "128",
         "--data.augment", "none", "--supernet.options.channels", "4", "--supernet.options.layers", "1", "--differentiable.epochs", "2",
         "--differentiable.arch_lr", "0.01", "--differentiable.channels_last", "false", "--data.batch_size", "16"]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_node(tool: str, *args: str) -> None:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--rdzv-backend", "c10d",
           "--rdzv-endpoint", f"127.0.0.1:{free_port()}", str(REPO / "tools" / tool), *args]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]


def two_nodes(tool: str, *args: str) -> None:
    port = free_port()
    cmds = [[sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1", "--node-rank",
             str(rank), "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "genas-test",
             str(REPO / "tools" / tool), *args] for rank in (0, 1)]  # fmt: skip
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV) for c in cmds]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]


def states_close(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if torch.is_tensor(a[k]) and a[k].is_floating_point():
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-5, msg=k)
        elif torch.is_tensor(a[k]):
            assert torch.equal(a[k], b[k]), k


def test_two_nodes_train_search_and_search_darts_as_one_node_with_two_processes(tmp_path):
    root = ["--run.root", str(tmp_path)]
    for name, launch in (("one", one_node), ("two", two_nodes)):
        launch("train_supernet.py", *TINY_TRAIN, *root, "--run.name", f"{name}-train", "--run.device", "cpu")
    ckpt = {n: torch.load(tmp_path / f"{n}-train" / "checkpoints" / "last.pt", weights_only=False) for n in ("one", "two")}
    states_close(ckpt["one"]["model"], ckpt["two"]["model"])
    env = {n: json.loads((tmp_path / f"{n}-train" / "env.json").read_text()) for n in ("one", "two")}
    assert (env["one"]["world_size"], env["one"]["nodes"]) == (2, 1) and (env["two"]["world_size"], env["two"]["nodes"]) == (2, 2)

    for name, launch in (("one", one_node), ("two", two_nodes)):
        launch("evolve.py", "--supernet", str(tmp_path / "one-train"), "--scorer", "accuracy", *SEARCH,
               "--out", str(tmp_path / f"{name}-search"))  # fmt: skip
    best = {n: json.loads((tmp_path / f"{n}-search" / "best_arch.json").read_text()) for n in ("one", "two")}
    assert best["one"]["arch"] == best["two"]["arch"]
    assert best["one"]["score"] == pytest.approx(best["two"]["score"], abs=1e-5)
    history = {n: (tmp_path / f"{n}-search" / "history.jsonl").read_text().splitlines() for n in ("one", "two")}
    assert len(history["one"]) == len(history["two"]) > 6
    for a, b in zip(*(map(json.loads, history[n]) for n in ("one", "two"))):
        assert a["arch"] == b["arch"] and a["score"] == pytest.approx(b["score"], abs=1e-5)

    for name, launch in (("one", one_node), ("two", two_nodes)):
        launch("search_darts.py", "--config", "a2m_quickstart", *DARTS, *root, "--run.name", f"{name}-darts")
    darts = {n: torch.load(tmp_path / f"{n}-darts" / "checkpoints" / "last.pt", weights_only=False) for n in ("one", "two")}
    states_close(darts["one"]["model"], darts["two"]["model"])
    best = {n: json.loads((tmp_path / f"{n}-darts" / "best_arch.json").read_text()) for n in ("one", "two")}
    assert best["one"]["arch"] == best["two"]["arch"]


def test_two_nodes_stream_an_image_folder_as_one_node_with_two_processes(tmp_path):
    """Supernet training on an ImageFolder decoded by 2 workers a rank (the random ImageNet augmentation): the
    file split, the rank x worker sharding and every sample's augmentation do not depend on how ranks are placed."""
    from tests.imagedata import write_image_folder

    images = write_image_folder(tmp_path / "images")
    args = ["--data.dataset", "imagefolder", "--data.options.root", str(images), "--data.options.image_size", "16", "--data.options.workers", "2",
            "--data.valid_fraction", "0.25", "--data.batch_size", "8", "--supernet.options.channels", "4", "--supernet.options.layers",
            "1", "--train.epochs", "2", "--run.progress", "false", "--run.device", "cpu", "--run.root", str(tmp_path)]  # fmt: skip
    for name, launch in (("one", one_node), ("two", two_nodes)):
        launch("train_supernet.py", *args, "--run.name", name)
    ckpt = {n: torch.load(tmp_path / n / "checkpoints" / "last.pt", weights_only=False) for n in ("one", "two")}
    states_close(ckpt["one"]["model"], ckpt["two"]["model"])
    assert (tmp_path / "one" / "data_files.csv").read_text() == (tmp_path / "two" / "data_files.csv").read_text()


def test_ranks_started_with_different_configs_are_refused_in_one_line_before_any_write(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--rdzv-backend", "c10d",
           "--rdzv-endpoint", f"127.0.0.1:{free_port()}", str(REPO / "tests" / "_mismatch_worker.py"), *TINY_TRAIN,
           "--run.root", str(tmp_path / "runs"), "--run.device", "cpu"]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=600)
    assert out.returncode != 0
    errors = re.findall(r"error: .*?every node\)", out.stderr)  # the ranks' lines may interleave on one pipe
    assert errors and all(e == errors[0] for e in errors), out.stderr[-3000:]  # the same one line on each rank
    assert errors[0] == ("error: rank 1 was started with config key train.lr = 0.1, rank 0 with 0.05; every rank "
                         "must run the same config (the same command line and files on every node)"), errors[0]
    assert not (tmp_path / "runs").exists()


def test_a_rendezvous_that_never_completes_and_a_failed_worker_end_in_one_line_under_genas_launch(tmp_path):
    """``genas launch`` is torchrun (its parser and ``run``) with one-line errors: node 1 never starts here."""
    cmd = [sys.executable, "-m", "genas.launch", "--nnodes", "2", "--nproc-per-node", "1", "--node-rank", "0",
           "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{free_port()}", "--rdzv-id", "lonely",
           "--rdzv-conf", "join_timeout=3", str(REPO / "tools" / "train_supernet.py"), *TINY_TRAIN,
           "--run.root", str(tmp_path / "runs")]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=300)
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
    assert out.returncode == 2 and len(errors) == 1 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert "did not complete within join_timeout 3 s" in errors[0] and "--nnodes 2" in errors[0] and "lonely" in errors[0]
    assert not (tmp_path / "runs").exists()
    bad = [sys.executable, "-m", "genas.launch", "--nproc-per-node", "2", "--rdzv-backend", "c10d", "--rdzv-endpoint",
           f"127.0.0.1:{free_port()}", str(REPO / "tools" / "train_supernet.py"), "--train.epochs", "0"]  # fmt: skip
    out = subprocess.run(bad, capture_output=True, text=True, env=ENV, timeout=300)
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert lines[-1].startswith("error: worker rank ") and "exited with code 2" in lines[-1]
    assert all("'epochs' parameter of train" in ln for ln in lines[:-1]) and len(lines) >= 2
