"""How far each part of a trained supernet rotated from its init: the fixed part vs the cell ops.

The diagnostic behind ``train.unsampled_update`` (docs/ranking.md): the RLNAS angle of an
architecture concatenates its path's op weights with the fixed part (stem, fixed blocks,
classifier).  If the fixed part has rotated far more than the cell ops, it dominates every
architecture's vector and the angle ranks by how little conv mass a cell has.  This prints the
angle of the fixed part (all its parameters concatenated), and the mean and spread of the angle
of each cell op module that has parameters and was trained (its weights moved).

    python benchmarks/angle_parts.py runs/nb201-cifar10-15ep-decay runs/nb201-cifar10-15ep-freeze
"""

from __future__ import annotations

import argparse
import math
import sys

from _common import write_result  # noqa: F401  (puts the checkout on sys.path)


def angle(pairs: list[tuple]) -> float:
    dot = sum(float(a.double().flatten() @ b.double().flatten()) for a, b in pairs)
    na = sum(float(a.double().pow(2).sum()) for a, _ in pairs)
    nb = sum(float(b.double().pow(2).sum()) for _, b in pairs)
    return math.acos(max(-1.0, min(1.0, dot / math.sqrt(na * nb)))) if na and nb else 0.0


def parts(run: str) -> dict[str, float]:
    import numpy as np

    from supernet.factory import load_trained

    trained = load_trained(run)
    net, init = trained.model, trained.init_state
    names = {id(m): n for n, m in net.named_modules()}

    def pairs(mod) -> list[tuple]:
        prefix = names[id(mod)]
        return [(init[f"{prefix}.{n}"], p.detach()) for n, p in mod.named_parameters()]

    fixed = [pr for _, mod in net.fixed_modules() for pr in pairs(mod)]
    ops = []
    for cell in range(net.num_search_cells):
        for e in range(len(net.space.edges) if net.space.name == "nb201" else 14):
            for op in net.space.ops[1:]:
                mod = net.op_module(cell, e, op)
                prs = pairs(mod) if mod is not None else []
                if prs and any(not a.equal(b) for a, b in prs):
                    ops.append(angle(prs))
    return {"fixed_part": angle(fixed), "cell_ops_mean": float(np.mean(ops)), "cell_ops_std": float(np.std(ops)),
            "cell_ops_trained": len(ops)}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", help="training run directories")
    p.add_argument("--out", default=None, help="write the figures as JSON here")
    args = p.parse_args()
    rows = {run: parts(run) for run in args.runs}
    print("| run | fixed part θ/π | cell ops θ/π (mean ± std) | trained cell op modules |")
    print("| --- | --- | --- | --- |")
    for run, r in rows.items():
        print(f"| {run} | {r['fixed_part'] / math.pi:.4f} | {r['cell_ops_mean'] / math.pi:.4f} ± "
              f"{r['cell_ops_std'] / math.pi:.4f} | {r['cell_ops_trained']} |")  # fmt: skip
    write_result(args.out, rows)


if __name__ == "__main__":
    sys.exit(main())
