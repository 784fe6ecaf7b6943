"""How much TF32 convolutions change GeNAS flatness on CUDA: exact fp32 vs ``tf32=True``.

Scores a seeded sample of architectures of a trained supernet with the flatness scorer twice,
TF32 off (the default) and on, and prints the loss errors against the loss steps between sigma
levels, the relative error of F, and Kendall tau between the two rankings.

    python benchmarks/flatness_tf32.py --supernet runs/nb201-cifar10-64ep-gpu --archs 40
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy import stats

from _common import REPO  # noqa: F401  (puts the repository on sys.path)
from scorers import ScoringContext, create_scorer
from scorers.flatness import flatness_from_losses


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--supernet", required=True, help="trained run directory")
    p.add_argument("--archs", type=int, default=40)
    p.add_argument("--device", default="cuda")
    p.add_argument("--eval-batches", type=int, default=4)
    args = p.parse_args()
    ctx = ScoringContext.from_run(args.supernet, device=args.device, bn_batches=14, bn_batch_size=64,
                                  eval_batches=args.eval_batches, eval_batch_size=256, seed=0)  # fmt: skip
    rng = np.random.default_rng(0)
    archs = [ctx.space.sample(rng) for _ in range(args.archs)]
    losses = {}
    for tf32 in (False, True):
        scorer = create_scorer("flatness", tf32=tf32)
        losses[tf32] = np.array([scorer.losses(a, ctx) for a in archs])
    sigmas = create_scorer("flatness").sigmas
    exact = np.array([flatness_from_losses(x, sigmas) for x in losses[False]])
    fast = np.array([flatness_from_losses(x, sigmas) for x in losses[True]])
    err, steps = np.abs(losses[True] - losses[False]), np.abs(np.diff(losses[False], axis=1))
    print(f"tf32 loss error: max {err.max():.2e} median {np.median(err):.2e}; loss steps between levels: "
          f"median {', '.join(f'{np.median(s):.2e}' for s in steps.T)}")  # fmt: skip
    rel = np.abs(fast / exact - 1)
    print(f"flatness relative error: max {rel.max():.2e} median {np.median(rel):.2e}; "
          f"Kendall tau exact vs tf32 {stats.kendalltau(exact, fast)[0]:.4f} (n = {len(archs)})")  # fmt: skip


if __name__ == "__main__":
    main()
