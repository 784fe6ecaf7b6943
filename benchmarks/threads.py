"""Training and flatness throughput with 1 and 2 intra-op threads, idle and beside a competing process.

Why: on a shared 2-core machine two torch threads that spin against another process can collapse
throughput several-fold (issue 11 saw 280-760 img/s with 2 threads and 2,500-2,960 with one).
This measures the four cells of {1, 2 threads} x {idle, one competing CPU-bound process} in one
run, each contender in a fresh process so ``torch.set_num_threads`` applies cleanly, and prints
the ratios that ``run.threads``'s default is chosen from.

    python benchmarks/threads.py                      # ~4 minutes on 2 cores
    python benchmarks/threads.py --out benchmarks/results/threads_cpu.json

Training: the quickstart NB201 supernet (C=16, N=2) on digits, batch 64, SPOS steps of
``SupernetTrainer.train_step``.  Flatness: seconds per candidate of the ``flatness`` scorer
(paper defaults, 1,024 held-out images) on an untrained C=16, N=5 NB201 supernet at 32x32.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from _common import REPO, write_result  # noqa: F401  (puts the checkout on sys.path)

WORKER = r"""
import json, sys, time
sys.path.insert(0, {repo!r})
import numpy as np, torch
torch.set_num_threads({threads})
from genas.data import build_loader, create_dataset
from supernet import UniformPathSampler, create_supernet
kind = {kind!r}
if kind == "train":
    from supernet.config import TrainConfig
    from supernet.train import SupernetTrainer
    data = create_dataset("digits", seed=0)
    loader = build_loader(data.train, data, 64, train=True, seed=0, channels_last=True)
    torch.manual_seed(0)
    net = create_supernet("nb201", num_classes=10, in_chans=1, channels=16, layers=2)
    t = SupernetTrainer(net, UniformPathSampler(net.space, net.num_search_cells, 0), loader,
                        TrainConfig(epochs=100), torch.device("cpu"), progress=False)
    batches = list(loader)
    for x, y in batches[:5]:
        t.train_step(x, y)
    t0, n = time.perf_counter(), 0
    while time.perf_counter() - t0 < {seconds}:
        for x, y in batches:
            t.train_step(x, y)
            n += y.numel()
    print(json.dumps({{"value": n / (time.perf_counter() - t0), "unit": "img/s"}}))
else:
    from scorers import ScoringContext, create_scorer
    data = create_dataset("synthetic", seed=0)
    torch.manual_seed(0)
    net = create_supernet("nb201", num_classes=data.num_classes, in_chans=data.channels, channels=16, layers=5).eval()
    valid = build_loader(data.valid, data, 256, train=False, channels_last=True).batches(4, 0)
    bn = build_loader(data.train, data, 64, train=True, seed=0, channels_last=True).batches(14, 0)
    ctx = ScoringContext(net, train_batches=bn, valid_batches=valid)
    f = create_scorer("flatness")
    rng = np.random.default_rng(0)
    archs = [net.space.sample(rng) for _ in range(6)]
    f.score(archs[:1], ctx)
    t0 = time.perf_counter()
    f.score(archs[1:], ctx)
    print(json.dumps({{"value": (time.perf_counter() - t0) / 5, "unit": "s/candidate"}}))
"""

SPIN = "import time\nwhile True:\n    pass\n"


def measure(kind: str, threads: int, loaded: bool, seconds: float) -> float:
    load = subprocess.Popen([sys.executable, "-c", SPIN]) if loaded else None
    try:
        time.sleep(0.5 if loaded else 0)
        code = WORKER.format(repo=str(REPO), threads=threads, kind=kind, seconds=seconds)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])["value"]
    finally:
        if load is not None:
            load.kill()
            load.wait()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=20.0, help="timed seconds per training contender")
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds (the median is reported)")
    p.add_argument("--out", default=None, help="write the result JSON here")
    args = p.parse_args()
    cells = [(k, t, l) for k in ("train", "flatness") for l in (False, True) for t in (1, 2)]
    values: dict[str, list[float]] = {f"{k}/{t}t/{'loaded' if l else 'idle'}": [] for k, t, l in cells}
    for r in range(args.rounds):
        for k, t, l in cells if r % 2 == 0 else reversed(cells):
            values[f"{k}/{t}t/{'loaded' if l else 'idle'}"].append(measure(k, t, l, args.seconds))
            print(f"round {r + 1}: {k} threads={t} {'loaded' if l else 'idle'}: {values[f'{k}/{t}t/' + ('loaded' if l else 'idle')][-1]:.4g}", flush=True)
    med = {k: sorted(v)[len(v) // 2] for k, v in values.items()}
    print("\n| measure | 1 thread | 2 threads | 2 threads / 1 thread |")
    print("| --- | --- | --- | --- |")
    for k in ("train", "flatness"):
        for state in ("idle", "loaded"):
            one, two = med[f"{k}/1t/{state}"], med[f"{k}/2t/{state}"]
            unit = "img/s" if k == "train" else "s/candidate"
            gain = two / one if k == "train" else one / two  # > 1: 2 threads faster
            print(f"| {k}, {state} ({unit}) | {one:.4g} | {two:.4g} | {gain:.2f}x faster |")
    write_result(args.out, {"values": values, "median": med})


if __name__ == "__main__":
    main()
