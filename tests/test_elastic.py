"""torchrun elastic restarts (issue 27): a worker killed with SIGKILL, the group restarted, the run completed exactly.

Under ``torchrun --max-restarts N`` a start without ``--resume`` is ``--resume auto``: the restarted
worker group continues from the last checkpoint (here a step checkpoint inside the first epoch)
instead of refusing the run its predecessor left, and ends with the weights of an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch

from tests.conftest import REPO, TINY_TRAIN
from tests.test_kill_resume import assert_same_checkpoint

pytestmark = pytest.mark.distributed

TRAIN = [*TINY_TRAIN, "--train.epochs", "3", "--run.checkpoint_steps", "1", "--run.device", "cpu"]  # 3 steps per rank and epoch
DARTS = [  # 64 images per rank in batches of 16: 4 steps per epoch
    "--run.progress", "false", "--run.device", "cpu", "--data.limit", "128", "--data.augment", "none",
    "--data.batch_size", "16", "--supernet.options.channels", "4", "--supernet.options.layers", "1", "--differentiable.epochs", "2",
    "--differentiable.lr", "0.05", "--differentiable.channels_last", "false", "--run.checkpoint_steps", "1",
]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args, max_restarts=0):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--max-restarts", str(max_restarts),
           "--monitor-interval", "0.2", "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{free_port()}",
           *map(str, args)]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


STREAM = [  # an ImageFolder the test writes, decoded by 2 workers a rank with the (random) ImageNet augmentation
    "--data.dataset", "imagefolder", "--data.options.image_size", "16", "--data.options.workers", "2", "--data.valid_fraction", "0.25",
    "--data.batch_size", "8", "--supernet.options.channels", "4", "--supernet.options.layers", "1", "--train.epochs", "2",
    "--run.checkpoint_steps", "1", "--run.device", "cpu", "--run.progress", "false",
]  # fmt: skip


RETRAIN = [  # DDP retraining with an EMA of the weights and the lr scaled to the global batch: 4 steps a rank and epoch;
    # node 2's conv is a dead edge (node 3 reads node 2 through none), whose weights get no gradient under DDP
    "--arch", "|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|skip_connect~0|nor_conv_1x1~1|none~2|", "--model.options.channels", "4",
    "--model.options.layers", "1", "--retrain.epochs", "2", "--data.limit", "128", "--data.batch_size", "16",
    "--retrain.ema_decay", "0.9", "--retrain.lr_reference_batch", "16", "--run.checkpoint_steps", "1",
    "--run.device", "cpu", "--run.progress", "false",
]  # fmt: skip


@pytest.mark.parametrize("tool, args", [("train_supernet.py", TRAIN), ("search_darts.py", DARTS),
                                        ("train_supernet.py", STREAM), ("retrain.py", RETRAIN)],
                         ids=["train", "search_darts", "train-imagefolder", "retrain"])  # fmt: skip
def test_a_worker_killed_mid_run_is_restarted_and_the_run_ends_exactly(tmp_path, tool, args):
    if args is STREAM:
        from tests.imagedata import write_image_folder

        args = [*args, "--data.options.root", write_image_folder(tmp_path / "images")]  # 45 images a rank: 5 steps an epoch
    ref = torchrun(REPO / "tools" / tool, *args, "--run.root", tmp_path, "--run.name", "ref")
    out, _ = ref.communicate(timeout=600)
    assert ref.returncode == 0, out[-3000:]

    marker = tmp_path / "marker"  # rank 0 pauses right after its 2nd write of last.pt: step 2 of epoch 1
    cut = torchrun(REPO / "tests" / "_pause_at_write.py", "after", 2, marker, REPO / "tools" / tool,
                   *args, "--run.root", tmp_path, "--run.name", "cut", max_restarts=2)  # fmt: skip
    deadline = time.time() + 600
    while not (marker / "paused0").exists():
        assert cut.poll() is None, cut.stdout.read()[-3000:]
        assert time.time() < deadline
        time.sleep(0.05)
    state = torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", weights_only=False)
    assert (state["epoch"], state["step"]) == (0, 2)
    os.kill(int((marker / "pid1").read_text()), signal.SIGKILL)  # one worker, kill -9
    out, _ = cut.communicate(timeout=600)
    assert cut.returncode == 0, out[-3000:]
    assert "already holds a run" not in out
    env = json.loads((tmp_path / "cut" / "env.json").read_text())
    assert [r["resumed_from"] for r in env.get("resumed", [])] == ["last"]  # one restart, from the step checkpoint
    a = torch.load(tmp_path / "ref" / "checkpoints" / "last.pt", weights_only=False)
    b = torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", weights_only=False)
    assert_same_checkpoint(a, b)
    assert b["epoch"] == a["epoch"] > 1 and (tmp_path / "cut" / "DONE").is_file()
