"""The genas backbone under MMSegmentation's own trainer: MMEngine's Runner trains and evaluates DeepLabV3
(``configs/dense/mmseg_deeplabv3_genas_tiny.py``) on a generated Cityscapes-layout folder, loads a genas
checkpoint through ``init_cfg`` with stages frozen, and runs on 2 CPU processes under torchrun."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("mmseg", reason="MMSegmentation is not installed (python .ci/install_dense.py installs the test wheels)")
pytest.importorskip("mmseg.models", reason="mmseg.models does not import (mmcv without its compiled ops)")

from mmengine.config import Config  # noqa: E402
from mmengine.hooks import Hook  # noqa: E402
from mmengine.runner import Runner  # noqa: E402
from PIL import Image  # noqa: E402

from genas.errors import CheckpointError  # noqa: E402
from genas.export import create_network, load_network, save_network  # noqa: E402
from tests.conftest import REPO  # noqa: E402
from tests.test_export_networks import NB201  # noqa: E402

pytestmark = pytest.mark.slow

TINY = REPO / "configs" / "dense" / "mmseg_deeplabv3_genas_tiny.py"
PALETTE = {0: (128, 64, 128), 2: (70, 70, 70), 8: (107, 142, 35), 10: (70, 130, 180), 13: (0, 0, 142)}  # Cityscapes'


def write_cityscapes(root: Path, train: int = 8, val: int = 4, seed: int = 0) -> Path:
    """Cityscapes' layout with 64x128 scenes: sky, buildings, vegetation, road and a car, each class its own colour."""
    rng = np.random.default_rng(seed)
    colour = np.array([PALETTE.get(c, (0, 0, 0)) for c in range(256)], np.int16)
    for split, n, city in (("train", train, "aachen"), ("val", val, "lindau")):
        for i in range(n):
            label = np.zeros((64, 128), np.uint8)  # road
            horizon = int(rng.integers(20, 36))
            label[:horizon] = 10  # sky
            for _ in range(3):
                x, w, h = int(rng.integers(0, 112)), int(rng.integers(12, 32)), int(rng.integers(10, horizon))
                label[horizon - h : horizon, x : x + w] = 2  # building
            yy, xx = np.mgrid[:64, :128]
            cy, cx, r = int(rng.integers(horizon - 8, horizon + 4)), int(rng.integers(10, 118)), int(rng.integers(5, 10))
            label[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = 8  # vegetation
            x, y = int(rng.integers(0, 96)), int(rng.integers(horizon + 4, 52))
            label[y : y + 10, x : x + 28] = 13  # car
            image = np.clip(colour[label] + rng.integers(-20, 21, (64, 128, 3)), 0, 255).astype(np.uint8)
            for folder, suffix, array in (("leftImg8bit", "leftImg8bit", image), ("gtFine", "gtFine_labelTrainIds", label)):
                path = root / folder / split / city / f"{city}_{i:06d}_000019_{suffix}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(array).save(path)
    return root


def user_config(tmp_path: Path, name: str, extra: str = "") -> Path:
    """A config file as a user writes one: the tiny recipe pointed at the generated data, plus ``extra`` lines."""
    data_root = write_cityscapes(tmp_path / "cityscapes")
    path = tmp_path / f"{name}.py"
    path.write_text(f"_base_ = [{str(TINY)!r}]\n"
                    f"data_root = {str(data_root)!r}\n"
                    "train_dataloader = dict(dataset=dict(data_root=data_root))\n"
                    "val_dataloader = dict(dataset=dict(data_root=data_root))\n"
                    "test_dataloader = val_dataloader\n"
                    f"work_dir = {str(tmp_path / 'work_dir')!r}\n"
                    # mmseg's runtime names its visualizer 'visualizer', one per process: a second Runner here would log
                    # into the first one's folder
                    f"visualizer = dict(name={f'{name}-{tmp_path.name}'!r})\n" + extra)  # fmt: skip
    return path


def logged(work_dir: Path) -> tuple[list[float], list[dict]]:
    """The training losses (one per iteration) and the validation rows of the run's ``vis_data/scalars.json``."""
    (path,) = work_dir.glob("*/vis_data/scalars.json")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [r["loss"] for r in rows if "loss" in r], [r for r in rows if "mIoU" in r]


def test_runner_trains_and_evaluates_deeplabv3_on_a_cityscapes_folder(tmp_path):
    cfg = Config.fromfile(str(user_config(tmp_path, "deeplabv3_genas_tiny")))
    assert cfg.custom_imports.imports == ["genas.export.mmseg"] and cfg.model.backbone.type == "GenasBackbone"
    runner = Runner.from_cfg(cfg)
    runner.train()
    losses, val = logged(tmp_path / "work_dir")
    assert len(losses) == 30 and all(math.isfinite(v) for v in losses)
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5]), losses
    assert len(val) == 1 and math.isfinite(val[0]["mIoU"]) and val[0]["step"] == 30, val
    assert (tmp_path / "work_dir" / "iter_30.pth").is_file()


def test_mmsegs_own_tools_train_py_takes_the_config_as_it_is(tmp_path):
    """MMSegmentation's stock ``tools/train.py`` (its wheel ships it as ``mmseg/.mim/tools/train.py``, what
    ``mim train mmsegmentation`` runs) trains the genas config with no change: ``custom_imports`` does the rest."""
    import mmseg

    script = Path(mmseg.__file__).parent / ".mim" / "tools" / "train.py"
    if not script.is_file():
        pytest.skip("this mmsegmentation install does not ship tools/train.py (mmseg/.mim/tools)")
    config = user_config(tmp_path, "deeplabv3_genas_stock")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, str(script), str(config), "--work-dir", str(tmp_path / "stock"), "--cfg-options",
           "train_cfg.max_iters=6", "train_cfg.val_interval=6", "default_hooks.checkpoint.interval=6"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    losses, val = logged(tmp_path / "stock")
    assert len(losses) == 6 and all(math.isfinite(v) for v in losses)
    assert len(val) == 1 and math.isfinite(val[0]["mIoU"]) and (tmp_path / "stock" / "iter_6.pth").is_file()


class Snapshot(Hook):
    """Once the Runner has initialised the model (``before_train``): the backbone's levels on ``x`` and its state."""

    def __init__(self, x: torch.Tensor) -> None:
        self.x, self.levels, self.state = x, None, None

    def before_train(self, runner: Runner) -> None:
        backbone = runner.model.backbone
        with torch.no_grad():
            self.x = self.x.to(next(backbone.parameters()).device)
            self.levels = backbone.eval()(self.x)
        backbone.train()
        self.state = {k: v.clone() for k, v in backbone.state_dict().items()}


def test_pretrained_weights_arrive_and_frozen_stages_hold_through_training(tmp_path):
    torch.manual_seed(1)
    net = create_network("nb201", NB201, channels=8, layers=1, geometry="dense", output_stride=8).train()
    with torch.no_grad():
        for _ in range(3):  # running statistics that are not BN's defaults
            net(torch.rand(4, 3, 64, 64) * 2 + 0.5)
    path = save_network(net, tmp_path / "model.pt")
    init = dict(type="Pretrained", checkpoint=str(path))
    extra = f"model = dict(backbone=dict(arch=None, frozen_stages=2, norm_eval=True, init_cfg={init!r}))\n"
    cfg = Config.fromfile(str(user_config(tmp_path, "deeplabv3_genas_pretrained", extra)))
    runner = Runner.from_cfg(cfg)
    snapshot = Snapshot(torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)))
    runner.register_hook(snapshot)
    runner.train()

    with torch.no_grad():
        expected = load_network(path, snapshot.x.device).forward_intermediates(snapshot.x, intermediates_only=True)
    assert [m.shape[1:] for m in snapshot.levels] == [(8, 16, 16), (16, 8, 8), (32, 8, 8), (64, 8, 8)]
    for got, want in zip(snapshot.levels, expected, strict=True):
        torch.testing.assert_close(got, want)  # the checkpoint's network, level by level
    body = runner.model.backbone.body.net
    after = runner.model.backbone.state_dict()
    prefix = {id(p): f"body.net.{n}" for n, p in body.named_parameters()}
    frozen = [prefix[id(p)] for group in body.stage_modules()[:3] for m in group for p in m.parameters()]
    trained = [prefix[id(p)] for m in body.stage_modules()[3] for p in m.parameters()]
    stats = [k for k in after if k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert frozen and trained and stats
    assert all(torch.equal(after[k], snapshot.state[k]) for k in frozen + stats)  # stem, levels 0-1; all BN (norm_eval)
    assert any(not torch.equal(after[k], snapshot.state[k]) for k in trained)  # level 2 learnt

    cfg.model.backbone.arch = Config.fromfile(str(TINY)).model.backbone.arch  # the checkpoint holds another cell
    with pytest.raises(CheckpointError, match="holds the weights of .*, not of") as info:
        Runner.from_cfg(cfg)
    assert "\n" not in str(info.value)


WORKER = """\
import sys

import torch.distributed as dist
from mmengine.config import Config
from mmengine.runner import Runner

# MMEngine 0.10.7's pytorch launcher calls torch.cuda.set_device, which needs a GPU: the gloo group opens here, and the
# Runner (launcher="pytorch") finds it open
dist.init_process_group(backend="gloo")
cfg = Config.fromfile(sys.argv[1])
cfg.launcher = "pytorch"
Runner.from_cfg(cfg).train()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.distributed
def test_torchrun_trains_on_two_cpu_processes(tmp_path):
    extra = "model_wrapper_cfg = dict(type='MMDistributedDataParallel', device_ids=None)  # a CPU model: no device ids\n"
    config = user_config(tmp_path, "deeplabv3_genas_ddp", extra)
    script = tmp_path / "train.py"
    script.write_text(WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(free_port()), str(script), str(config)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    work_dir = tmp_path / "work_dir"
    losses, val = logged(work_dir)  # rank 0's losses on its shard; the metric gathers both ranks' images
    assert len(losses) == 30 and all(math.isfinite(v) for v in losses)
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5]), losses
    assert len(val) == 1 and math.isfinite(val[0]["mIoU"]), val
    assert (work_dir / "iter_30.pth").is_file() and (work_dir / "deeplabv3_genas_ddp.py").is_file()
    (log,) = work_dir.glob("*/*.log")
    assert "Distributed launcher: pytorch" in log.read_text() and "GPU number: 2" in log.read_text()  # world size
