"""RetinaNet on the genas backbone trained by Detectron2's own DefaultTrainer and evaluated by COCOEvaluator.

The data is a COCO-format dataset the test writes (coloured rectangles on noise, their boxes in a
JSON file), registered with ``register_coco_instances``; the backbone starts from a genas network
checkpoint.  No part of Detectron2 is replaced.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("detectron2", reason="Detectron2 is not installed (python .ci/install_dense.py installs the test wheels)")
pytest.importorskip("pycocotools", reason="COCOEvaluator needs pycocotools")

from PIL import Image  # noqa: E402

from genas.export import create_network, save_network  # noqa: E402
from tests.conftest import REPO  # noqa: E402
from tests.test_export_networks import NB201  # noqa: E402

CONFIG = REPO / "configs" / "dense" / "detectron2_retinanet_genas.yaml"
COLOURS = {1: (230, 40, 40), 2: (40, 200, 40), 3: (40, 60, 230)}


def write_coco(root, name, n, seed):
    """``n`` 64 x 64 JPEGs with one or two filled rectangles each, and their COCO JSON."""
    rng = np.random.default_rng(seed)
    folder = root / name
    folder.mkdir(parents=True)
    images, annotations = [], []
    for i in range(n):
        pixels = rng.integers(0, 60, (64, 64, 3), dtype=np.uint8)
        for _ in range(int(rng.integers(1, 3))):
            cls = int(rng.integers(1, 4))
            w, h = (int(v) for v in rng.integers(14, 32, 2))
            x, y = int(rng.integers(0, 64 - w)), int(rng.integers(0, 64 - h))
            pixels[y:y + h, x:x + w] = COLOURS[cls]
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": cls, "iscrowd": 0,
                                "bbox": [x, y, w, h], "area": w * h})  # fmt: skip
        Image.fromarray(pixels).save(folder / f"{i:03d}.jpg", quality=95)
        images.append({"id": i + 1, "file_name": f"{i:03d}.jpg", "height": 64, "width": 64})
    categories = [{"id": c, "name": n} for c, n in ((1, "red"), (2, "green"), (3, "blue"))]
    path = root / f"{name}.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return [name, str(path), str(folder)]


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    net = create_network("nb201", NB201, channels=8, layers=1, geometry="dense")
    return {"train": write_coco(root, "shapes_train", 8, 0), "val": write_coco(root, "shapes_val", 8, 1),
            "weights": str(save_network(net, root / "model.pt")), "net": net}  # fmt: skip


def overrides(coco, out, iters=120, **extra):
    opts = {
        "MODEL.DEVICE": "cpu", "MODEL.GENAS.ARCH": "", "MODEL.GENAS.WEIGHTS": coco["weights"],
        "MODEL.FPN.OUT_CHANNELS": 16, "MODEL.RETINANET.NUM_CLASSES": 3,
        "MODEL.ANCHOR_GENERATOR.SIZES": "[[16], [32], [64], [128], [256]]",  # objects of 14-32 px "MODEL.RETINANET.SCORE_THRESH_TEST": 0.0,
        "DATASETS.TRAIN": "('shapes_train',)", "DATASETS.TEST": "('shapes_val',)",
        "INPUT.MIN_SIZE_TRAIN": "(64,)", "INPUT.MAX_SIZE_TRAIN": 64, "INPUT.MIN_SIZE_TEST": 64, "INPUT.MAX_SIZE_TEST": 64,
        "SOLVER.IMS_PER_BATCH": 4, "SOLVER.BASE_LR": 0.05, "SOLVER.MAX_ITER": iters, "SOLVER.STEPS": "()",
        "SOLVER.WARMUP_ITERS": 5, "SOLVER.CHECKPOINT_PERIOD": 10_000, "TEST.EVAL_PERIOD": 0,
        "DATALOADER.NUM_WORKERS": 0, "OUTPUT_DIR": str(out), "SEED": 0, **extra,
    }  # fmt: skip
    return [str(v) for kv in opts.items() for v in kv]


def argv(coco, out, **kw):
    return ["--config-file", str(CONFIG), "--coco", *coco["train"], "--coco", *coco["val"], *overrides(coco, out, **kw)]


def loss_rows(out):
    rows = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines() if line.strip()]
    return [r["total_loss"] for r in rows if "total_loss" in r]


def test_default_trainer_trains_from_genas_weights_and_coco_evaluator_scores_it(coco, tmp_path):
    from genas.export import detectron2_train as d2t

    args = d2t.parser().parse_args(argv(coco, tmp_path / "out", **{"MODEL.GENAS.FREEZE_AT": 2,
                                                                      "MODEL.GENAS.NORM_EVAL": True}))  # fmt: skip
    d2t.register_coco(args.coco)
    cfg = d2t.setup(args)
    trainer = d2t.Trainer(cfg)
    trainer.resume_or_load(resume=False)
    body = trainer.model.backbone.bottom_up.body
    x = torch.randn(2, 3, 64, 64)
    body.eval()
    with torch.no_grad():  # the checkpoint's weights arrived: the levels are the genas network's own
        want = coco["net"].eval().forward_intermediates(x, indices=list(body.out_indices), intermediates_only=True)
        for got, ref in zip(body(x), want):
            torch.testing.assert_close(got, ref)
    before = {k: v.clone() for k, v in body.state_dict().items()}
    trainer.train()
    after = body.state_dict()
    frozen = [k for k in before if k.startswith(("net.stem.", "net.cells.0."))]  # FREEZE_AT 2: the stem and res2
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)
    stats = [k for k in before if k.endswith(("running_mean", "running_var"))]  # NORM_EVAL: no statistic moves
    assert stats and all(torch.equal(before[k], after[k]) for k in stats)
    trained = [k for k in before if k.endswith("weight") and k.startswith("net.cells.") and k not in frozen]
    assert any(not torch.equal(before[k], after[k]) for k in trained)
    # total_loss is logged every 20 iterations (median of the window); the first window is left out because
    # RetinaNet divides by an average number of positive anchors that starts at 100 and takes ~20 steps to settle
    losses = loss_rows(tmp_path / "out")
    assert len(losses) == 6 and all(math.isfinite(v) for v in losses) and losses[-1] < 0.9 * losses[1], losses
    ap = d2t.Trainer.test(cfg, trainer.model)["bbox"]  # COCOEvaluator on shapes_val
    assert {"AP", "AP50", "AP-red", "AP-green", "AP-blue"} <= set(ap) and math.isfinite(ap["AP"]), ap
    assert all(math.isfinite(ap[k]) for k in ("AP", "AP50", "AP75", "APs")), ap  # APm / APl: no objects that large
    assert (tmp_path / "out" / "model_final.pth").is_file()
    assert (tmp_path / "out" / "inference" / "coco_instances_results.json").is_file()


def test_the_launcher_trains_with_two_processes_over_gloo(coco, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "genas.export.detectron2_train", "--num-gpus", "2", "--dist-url",
           f"tcp://127.0.0.1:{port}", *argv(coco, tmp_path / "ddp", iters=8)]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=600,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "ddp" / "model_final.pth").is_file()
    assert "World size: 2" in (tmp_path / "ddp" / "log.txt").read_text()  # default_setup's record of the group
    assert all(math.isfinite(v) for v in loss_rows(tmp_path / "ddp"))


@pytest.mark.parametrize("bad, needle", [
    (["--coco", "x", "missing.json", "."], "--coco x: no COCO annotation file at missing.json"),
    (["--config-file", "nope.yaml"], "--config-file nope.yaml: no such file"),
])  # fmt: skip
def test_bad_launcher_input_is_one_line(tmp_path, bad, needle):
    args = ["--config-file", str(CONFIG), *bad] if bad[0] == "--coco" else bad
    out = subprocess.run([sys.executable, "-m", "genas.export.detectron2_train", *args], capture_output=True,
                         text=True, cwd=tmp_path, timeout=300)  # fmt: skip
    lines = [line for line in out.stderr.splitlines() if line.strip() and "Warning" not in line and "warn" not in line]
    assert out.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"error: {needle}"), out.stderr


def test_a_darts_imagenet_checkpoint_arrives_in_the_trainer_and_trains(coco, tmp_path):
    from genas.export import detectron2_train as d2t
    from tests.test_export_networks import DARTS_V2

    net = create_network("darts_imagenet", DARTS_V2, channels=8, layers=3)
    weights = save_network(net, tmp_path / "darts.pt")
    args = d2t.parser().parse_args(argv({**coco, "weights": str(weights)}, tmp_path / "out", iters=4))
    d2t.register_coco(args.coco)
    trainer = d2t.Trainer(d2t.setup(args))
    body = trainer.model.backbone.bottom_up.body
    assert body.net.name == "darts_imagenet"
    x = torch.randn(2, 3, 64, 64)
    body.eval()
    with torch.no_grad():
        want = net.eval().forward_intermediates(x, indices=list(body.out_indices), intermediates_only=True)
        for got, ref in zip(body(x), want):
            torch.testing.assert_close(got, ref)
    trainer.train()
    assert all(math.isfinite(v) for v in loss_rows(tmp_path / "out"))
