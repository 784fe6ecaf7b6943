"""The streaming data pipeline next to the ImageNet supernet's training step, side by side (issue 25, item 7).

Measured in one run, on images this script writes (ImageNet-like JPEGs: 500x375, quality 90, about
the size of an average ImageNet training file):

- decode + augment per worker: images/s of :class:`genas.data.stream_loader.StreamLoader` with W
  worker processes (PIL decode, timm's RandomResizedCrop 224 + flip + ColorJitter), timed over a
  second epoch (workers already started), divided by W; and the same in the main process (W = 0),
  split into decode alone and decode + augment;
- the training step: images/s of the DARTS-space ImageNet supernet (C=48, 14 cells, 224 px) on this
  CPU, and the share of a short training run spent waiting for data (``data_wait``) with W workers;
- the workers one GPU needs: the GPU step rate divided by the measured per-worker rate. No GPU is
  measured here: the step rate is the FLOP count of a mean path (3 forwards for forward + backward)
  at an assumed sustained rate of 5, 10 or 20 TFLOP/s on one H100 (``benchmarks/RESULTS.md`` measured
  55-64 TFLOP/s for plain fp32 NB201 subnet forwards; DARTS cells are full of depthwise convolutions,
  which run far below peak, hence the range).

    python benchmarks/data_pipeline.py                       # about 3 minutes on 2 cores
    python benchmarks/data_pipeline.py --images 512 --workers 1 2 --out benchmarks/results/data_pipeline.json
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def write_jpegs(root: Path, n: int, classes: int = 4, seed: int = 0) -> int:
    """``root/{train,val}/c<k>/*.jpg``: smooth colour fields plus grain, 500x375, quality 90. Returns bytes written."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    total = 0
    for part, count in (("train", n), ("val", max(classes, n // 16))):
        for i in range(count):
            folder = root / part / f"c{i % classes}"
            folder.mkdir(parents=True, exist_ok=True)
            low = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).resize((500, 375), Image.BICUBIC)
            grain = rng.normal(0, 12, (375, 500, 3))
            image = Image.fromarray(np.clip(np.asarray(low, dtype=np.float64) + grain, 0, 255).astype(np.uint8))
            buf = io.BytesIO()
            image.save(buf, format="JPEG", quality=90)
            (folder / f"{i:06d}.jpg").write_bytes(buf.getvalue())
            total += len(buf.getvalue())
    return total


def rate_in_process(ds, transform, n: int) -> dict[str, float]:
    """Images/s of decode alone and of decode + augment in this process."""
    from PIL import Image

    t0 = time.perf_counter()
    for i in range(n):
        with Image.open(io.BytesIO(ds.read(i))) as im:
            im.convert("RGB")
    decode = n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for i in range(n):
        with Image.open(io.BytesIO(ds.read(i))) as im:
            transform(im.convert("RGB"))
    return {"decode": round(decode, 1), "decode_augment": round(n / (time.perf_counter() - t0), 1)}


def rate_with_workers(bundle, workers: int, batch: int) -> float:
    """Images/s of a StreamLoader with ``workers`` processes over its second epoch."""
    from genas.data import build_loader

    loader = build_loader(dataclasses.replace(bundle.train, workers=workers), bundle, batch, train=True, seed=0)
    for _ in loader:  # epoch 0 starts the (persistent) workers
        pass
    loader.set_epoch(1)
    t0, seen = time.perf_counter(), 0
    for x, _ in loader:
        seen += len(x)
    return seen / (time.perf_counter() - t0)


def step_rate(batch: int, steps: int) -> tuple[float, float]:
    """(images/s of the ImageNet supernet's SPOS step on this CPU, MFLOPs of a mean path at 224 px)."""
    import torch

    from genas.counting import count_flops
    from supernet import UniformPathSampler, create_supernet

    torch.manual_seed(0)
    net = create_supernet("darts", num_classes=1000, channels=48, layers=14, stem="imagenet")
    sampler = UniformPathSampler(net.space, net.num_search_cells, seed=0)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    x, y = torch.randn(batch, 3, 224, 224), torch.randint(0, 1000, (batch,))
    flops = [count_flops(net.subnet(sampler.sample()), (1, 3, 224, 224)) / 1e6 for _ in range(8)]
    net(x, sampler.sample()).sum().backward()  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x, sampler.sample()), y).backward()
        opt.step()
    return batch * steps / (time.perf_counter() - t0), float(np.mean(flops))


def data_wait_share(root: Path, workers: int, epochs: int, channels: int = 16, layers: int = 5) -> float:
    """``data_wait`` of the last epoch of a supernet trained on the folder through the CLI."""
    import csv

    from genas.cli import run_cli
    from supernet.cli import main as train

    out = root / "runs"
    args = ["--data.dataset", "imagefolder", "--data.options.root", str(root), "--data.options.image_size", "224", "--data.options.workers",
            str(workers), "--data.batch_size", "16", "--data.valid_fraction", "0.1", "--supernet.space", "darts",
            "--supernet.options.stem", "imagenet", "--supernet.options.channels", str(channels), "--supernet.options.layers", str(layers),
            "--train.epochs", str(epochs), "--run.root", str(out), "--run.name", f"w{workers}-c{channels}",
            "--run.progress", "false"]  # fmt: skip
    assert run_cli(train, args) == 0
    rows = list(csv.DictReader(open(out / f"w{workers}-c{channels}" / "metrics.csv")))
    return float(rows[-1]["data_wait"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--step-batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--gpu-effective-tflops", type=float, nargs="+", default=[5.0, 10.0, 20.0],
                   help="assumed sustained TFLOP/s of one H100 on this supernet's step (see the docstring)")  # fmt: skip
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "data_pipeline.json"))
    args = p.parse_args()

    import torch

    from genas.data import create_dataset
    from genas.data.stream_loader import build_transform

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        size = write_jpegs(root, args.images)
        bundle = create_dataset("imagefolder", root=str(root), valid_fraction=0.05)
        transform = build_transform("imagenet", 224, bundle.mean, bundle.std)
        local = rate_in_process(bundle.train, transform, min(128, len(bundle.train)))
        per_worker = {w: round(rate_with_workers(bundle, w, args.batch) / w, 1) for w in args.workers}
        steps, mflops = step_rate(args.step_batch, args.steps)
        waits = {w: data_wait_share(root, w, 2) for w in args.workers}
        wait_full = data_wait_share(root, 1, 1, channels=48, layers=14)  # the ImageNet supernet itself, 1 worker
    # forward + backward = 3 forwards; 2 FLOPs a multiply-add
    gpu_rates = {t: round(t * 1e12 / (3 * 2 * mflops * 1e6)) for t in args.gpu_effective_tflops}
    best_worker = max(per_worker.values())
    result = {
        "images": args.images, "mean_jpeg_kb": round(size / (args.images + max(4, args.images // 16)) / 1024, 1),
        "in_process_images_per_s": local, "per_worker_images_per_s": per_worker,
        "cpu_step_images_per_s": round(steps, 2), "mean_path_mflops_224": round(mflops, 1),
        "data_wait_share_small_supernet": waits, "data_wait_share_imagenet_supernet_1_worker": wait_full,
        "gpu_step_images_per_s_estimate_by_tflops": gpu_rates,
        "workers_per_gpu_estimate_by_tflops": {t: round(r / best_worker, 1) for t, r in gpu_rates.items()},
        "torch_threads": 1,
    }  # fmt: skip
    for k, v in result.items():
        print(f"{k:36s} {v}")
    from genas.io import atomic_write_json

    atomic_write_json(Path(args.out), result)


if __name__ == "__main__":
    main()
