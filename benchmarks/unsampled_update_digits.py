"""The angle-ranking mechanism of ``train.unsampled_update`` on a CPU budget: digits, high weight decay.

Trains the quickstart NB201 supernet on scikit-learn's digits twice from the same seed, once with
``decay`` (the reference code's zero-filled gradients) and once with ``freeze`` (``None`` gradients),
at a weight decay of 5e-3 (10x the recipe's, so the effect that takes hundreds of CIFAR-10 epochs
shows in minutes), then ranks the same seeded NB201 sample by ``angle`` (and the cells-only angle)
against the NAS-Bench-201 CIFAR-10 table with ``tools/rank_nb201.py``.

    python benchmarks/unsampled_update_digits.py --table ../shared/data/nb201/nb201_accuracy.csv

Under ``freeze`` the fixed modules (stem, ResNet blocks, classifier), updated every step, rotate
away from their init while the cell ops, updated in about a fifth of the steps, barely move, so
architectures with little conv mass get the largest angle and tau turns negative; ``decay`` keeps
every used op decaying and the ranking positive.  Prints a table and writes
``benchmarks/results/unsampled_update_digits.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from angle_parts import parts  # noqa: E402
from genas.io import atomic_write_json  # noqa: E402


def tool(name: str, *args: str) -> None:
    subprocess.run([sys.executable, str(REPO / "tools" / name), *args], check=True, cwd=REPO)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--table", default=os.environ.get("GENAS_NB201_TABLE"), help="NB201 table CSV")
    p.add_argument("--epochs", type=int, default=80)
    p.add_argument("--weight-decay", default="5e-3")
    p.add_argument("--sample", default="1000")
    p.add_argument("--root", default=str(REPO / "runs" / "bench-unsampled"))
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "unsampled_update_digits.json"))
    args = p.parse_args()
    if not args.table:
        sys.exit("error: give --table or set $GENAS_NB201_TABLE (the NAS-Bench-201 accuracy CSV)")
    rows = {}
    for mode in ("decay", "freeze"):
        name = f"digits-wd{args.weight_decay}-{args.epochs}ep-{mode}"
        run = Path(args.root) / name
        if not (run / "DONE").exists():
            tool("train_supernet.py", "--run.root", args.root, "--run.name", name, "--train.epochs", str(args.epochs),
                 "--train.weight_decay", args.weight_decay, "--train.unsampled_update", mode, "--run.progress", "false",
                 "--run.overwrite", "true")  # fmt: skip
        rows[mode] = {}
        for label, extra in (("angle", []), ("angle, cells only", ["--score.options.include_fixed", "false"])):
            out = run / ("rank-angle" + ("-cells" if extra else ""))
            tool("rank_nb201.py", "--supernet", str(run), "--scorer", "angle", "--sample", args.sample, "--seed", "0",
                 "--table", args.table, "--dataset", "cifar10", "--out", str(out), "--resume", *extra)  # fmt: skip
            summary = json.loads((out / "summary.json").read_text())
            rows[mode][label] = summary["results"]["angle"]["kendall_tau"]
        metrics = (run / "metrics.csv").read_text().strip().splitlines()
        rows[mode]["final train loss"] = float(metrics[-1].split(",")[1])
        rotated = parts(str(run))  # how far the fixed part and the cell ops moved from their init
        rows[mode]["fixed part θ/π"] = rotated["fixed_part"] / math.pi
        rows[mode]["cell ops θ/π (mean)"] = rotated["cell_ops_mean"] / math.pi
    print(f"\nNB201 supernet on digits, {args.epochs} epochs, weight decay {args.weight_decay}, n = {args.sample}")
    print(f"{'':24}{'decay':>10}{'freeze':>10}")
    for key in rows["decay"]:
        print(f"{key:24}{rows['decay'][key]:10.3f}{rows['freeze'][key]:10.3f}")
    atomic_write_json(args.out, {"epochs": args.epochs, "weight_decay": args.weight_decay, "sample": args.sample,
                                 "results": rows})  # fmt: skip


if __name__ == "__main__":
    main()
