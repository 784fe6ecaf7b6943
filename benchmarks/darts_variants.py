"""DARTS variants with and without A2M on NAS-Bench-201 / CIFAR-10, at a budget this CPU can run.

One command regenerates the comparison of ``docs/a2m.md`` (issue 12's DARTS-1st vs A2-DARTS run
is its first two rows):

    python benchmarks/darts_variants.py --data-root ../shared/data/cifar10/cifar10_uint8.npz \\
        --table ../shared/data/nb201/nb201_accuracy.csv

Every (variant, architect) pair runs ``tools/search_darts.py`` from the same seeds on the same
data with the A2M protocol of ``configs/a2m_nb201.yaml`` except the budget below; per epoch it
collects the skip count of the argmax cell and the benchmark's CIFAR-10 test accuracy of that
cell, and reports the cell of the selected epoch (lowest validation loss).  Runs go ``--workers``
at a time, one thread each; finished runs are reused (``--resume`` semantics), so an interrupted
comparison continues.  Prints a Markdown table and writes
``benchmarks/results/darts_variants.json``.

The budget (defaults): C = 8, N = 1 cell per stage, 2,560 images from each NB201 half of the
CIFAR-10 training set (``data.limit``), batch 64 (40 steps per epoch), 10 epochs, arch lr 3e-3
(10x the protocol's, so that 400 architecture steps move alpha about as far as 4,000 protocol
steps), PC-DARTS K = 2 (K = 4 would leave C / K = 2 channels per op), the validation loss on 4
batches of 256.  The paper's protocol is 50 epochs of 391 steps on C = 16, N = 5: about 50x the
steps, each about 20x the cost.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

VARIANTS = ["", "beta", "sdarts-rs", "pc", "darts-minus", "na"]
NAMES = {"": "DARTS-1st", "beta": "beta-DARTS", "sdarts-rs": "SDARTS-RS", "pc": "PC-DARTS", "darts-minus": "DARTS-",
         "na": "NA-DARTS"}  # fmt: skip
# A2M paper Table 2 (NB201, search on CIFAR-10, 5 seeds, CIFAR-10 test accuracy): without / with A2M
PAPER = {"": ("72.85 +- 35.21", "92.39 +- 0.52"), "beta": ("94.15", "94.15"), "sdarts-rs": ("80.57", "84.33"),
         "pc": ("70.92", "91.95"), "darts-minus": ("-", "-"), "na": ("-", "-")}  # fmt: skip


def run_one(args: argparse.Namespace, variant: str, architect: str, seed: int) -> dict:
    name = f"{architect}-{variant or 'plain'}-s{seed}"
    out = Path(args.root) / name
    cmd = [
        sys.executable, str(REPO / "tools" / "search_darts.py"), "--config", "a2m_nb201",
        "--data.options.root", args.data_root, "--data.limit", str(args.limit), "--supernet.options.channels", str(args.channels),
        "--supernet.options.layers", str(args.layers), "--differentiable.epochs", str(args.epochs),
        "--differentiable.arch_lr", str(args.arch_lr), "--differentiable.eval_batches", "4",
        "--differentiable.patience", "null", "--architect", architect, "--table", args.table,
        "--run.root", args.root, "--run.name", name, "--run.seed", str(seed), "--run.threads", "1",
        "--run.progress", "false",
    ]  # fmt: skip
    if variant:
        cmd += ["--variant", variant]
        if variant == "pc":
            cmd += ["--variants.options.pc.k", str(args.pc_k)]
    if (out / "DONE").exists():
        pass
    elif (out / "checkpoints" / "last.pt").exists():
        subprocess.run([*cmd, "--resume", str(out)], check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    else:
        subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    best = json.loads((out / "best_arch.json").read_text())
    return {
        "variant": variant, "architect": architect, "seed": seed, "arch": best["arch"],
        "selected_epoch": best["generation"], "bench_cifar10": best["nb201_test_accuracy"]["cifar10"],
        "bench_cifar100": best["nb201_test_accuracy"]["cifar100"],
        "bench_imagenet16": best["nb201_test_accuracy"]["imagenet16"],
        "skips_per_epoch": [int(r["skips"]) for r in rows],
        "bench_per_epoch": [float(r["bench_cifar10"]) for r in rows],
        "w_skip_last": float(rows[-1]["w_skip_connect"]), "seconds": sum(float(r["seconds"]) for r in rows),
    }  # fmt: skip


def summary(xs: list[float]) -> str:
    return f"{statistics.mean(xs):.2f}" + (f" +- {statistics.stdev(xs):.2f}" if len(xs) > 1 else "")


def table(results: list[dict], seeds: list[int]) -> str:
    lines = ["| variant | architect | CIFAR-10 test acc. of the selected cell | skips per epoch | "
             "CIFAR-10 acc. per epoch | paper (Table 2) | s / run |",
             "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for variant in VARIANTS:
        for architect in ("darts", "a2m"):
            rs = [r for r in results if r["variant"] == variant and r["architect"] == architect]
            if not rs:
                continue
            label = NAMES[variant] if architect == "darts" else f"A2-{NAMES[variant]}"
            skips = " / ".join("".join(str(s) for s in r["skips_per_epoch"]) for r in rs)
            per_epoch = " / ".join(" ".join(f"{b:.1f}" for b in r["bench_per_epoch"]) for r in rs)
            paper = PAPER[variant][architect == "a2m"]
            secs = statistics.mean(r["seconds"] for r in rs)
            lines.append(f"| {label} | {architect} | {summary([r['bench_cifar10'] for r in rs])} | {skips} | "
                         f"{per_epoch} | {paper} | {secs:.0f} |")  # fmt: skip
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-root", default=os.environ.get("GENAS_CIFAR10"), help="CIFAR-10 npz ($GENAS_CIFAR10)")
    p.add_argument("--table", default=os.environ.get("GENAS_NB201_TABLE"), help="NB201 table ($GENAS_NB201_TABLE)")
    p.add_argument("--root", default=str(REPO / "runs" / "darts-variants"), help="where the runs go")
    p.add_argument("--seeds", default="0", help="comma-separated seeds")
    p.add_argument("--variants", default=",".join(v or "plain" for v in VARIANTS))
    p.add_argument("--architects", default="darts,a2m")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--limit", type=int, default=2560)
    p.add_argument("--channels", type=int, default=8)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--arch-lr", type=float, default=3e-3)
    p.add_argument("--pc-k", type=int, default=2, help="PC-DARTS K (C = 8 leaves 2 channels per op at K = 4)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "darts_variants.json"))
    args = p.parse_args()
    if not args.data_root or not Path(args.data_root).exists() or not args.table or not Path(args.table).exists():
        print("skipped: needs --data-root (CIFAR-10 npz) and --table (NB201 accuracy table)")
        return 0
    seeds = [int(s) for s in args.seeds.split(",")]
    variants = ["" if v == "plain" else v for v in args.variants.split(",")]
    jobs = [(v, a, s) for v in variants for a in args.architects.split(",") for s in seeds]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(args.workers) as pool:
        results = list(pool.map(lambda job: run_one(args, *job), jobs))
    budget = {k: getattr(args, k) for k in ("epochs", "limit", "channels", "layers", "arch_lr", "pc_k")}
    report = {"budget": budget, "seeds": seeds, "results": results, "wall_seconds": round(time.perf_counter() - t0)}
    sys.path.insert(0, str(REPO))
    from genas.io import atomic_write_json

    atomic_write_json(args.out, report)
    print(table(results, seeds))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
