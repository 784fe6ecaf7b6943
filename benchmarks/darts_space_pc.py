"""DARTS-space search on CPU: peak memory and seconds per step of darts / a2m, with and without PC-DARTS.

Setting (issue 13, item 5): the DARTS mixed-op search network, 8 cells, C = 16, 32x32 RGB input,
10 classes, batch 64, fp32, channels_last, one thread; PC-DARTS with K = 4 and edge
normalisation.  One step = the loop's ``search_step`` (architecture update, then weight update).
Each contender runs in its own process so that its peak resident memory (``ru_maxrss``) is its
own; the four processes run one after another, so the seconds are comparable only on an
otherwise idle machine.

    python benchmarks/darts_space_pc.py                 # ~10 minutes on one CPU thread
    python benchmarks/darts_space_pc.py --steps 1 --channels 8
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import torch

from _common import REPO, machine, write_result  # noqa: I001

CONTENDERS = [("darts", ""), ("darts", "pc"), ("a2m", ""), ("a2m", "pc")]


def child(architect: str, variant: str, args: argparse.Namespace) -> dict:
    from genas.differentiable import DifferentiableConfig, DifferentiableSearch, create_architect, create_mixed_supernet
    from genas.differentiable.variants import create_variants

    torch.manual_seed(0)
    model = create_mixed_supernet("darts", num_classes=10, channels=args.channels, layers=args.layers)
    g = torch.Generator().manual_seed(0)
    batch = (torch.randn(args.batch, 3, 32, 32, generator=g).contiguous(memory_format=torch.channels_last),
             torch.randint(0, 10, (args.batch,), generator=g))  # fmt: skip
    variants = create_variants([variant], {"k": 4}) if variant else None
    search = DifferentiableSearch(model, create_architect(architect), [batch], [batch], [batch],
                                  DifferentiableConfig(epochs=1), variants=variants)  # fmt: skip
    model.to(memory_format=torch.channels_last)
    search.search_step(batch, batch)  # warm-up
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        search.search_step(batch, batch)
        times.append(time.perf_counter() - t0)
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    params = sum(p.numel() for p in model.weight_parameters())
    return {"architect": architect, "variant": variant or "-", "seconds_per_step": min(times),
            "peak_rss_mib": round(rss_mib), "weights": params}  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "darts_space_pc_cpu.json"))
    args = p.parse_args()
    torch.set_num_threads(1)
    if args.child:
        architect, _, variant = args.child.partition(":")
        print(json.dumps(child(architect, variant, args)))
        return 0
    rows = []
    for architect, variant in CONTENDERS:
        cmd = [sys.executable, __file__, "--child", f"{architect}:{variant}", "--channels", str(args.channels),
               "--layers", str(args.layers), "--batch", str(args.batch), "--steps", str(args.steps)]  # fmt: skip
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    base = {r["architect"]: r["seconds_per_step"] for r in rows if r["variant"] == "-"}
    print(f"\nDARTS space, {args.layers} cells, C={args.channels}, batch {args.batch}, 1 thread")
    print("| architect | variant | s / step | vs same architect without pc | peak RSS (MiB) | weights |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        ratio = r["seconds_per_step"] / base[r["architect"]]
        print(f"| {r['architect']} | {r['variant']} | {r['seconds_per_step']:.2f} | {ratio:.2f}x | {r['peak_rss_mib']} | "
              f"{r['weights']:,} |")  # fmt: skip
    write_result(args.out, {"setting": vars(args) | {"child": None}, "machine": machine(torch.device("cpu")),
                            "rows": rows})  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
