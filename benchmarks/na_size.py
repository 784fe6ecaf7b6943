"""How large is the ``na`` variant's neighbourhood term, at initialisation and after alpha has peaked? (issue 28)

Runs the differentiable quickstart (A2M, NB201 C = 8 N = 1 on digits, no download) with ``--variant
na`` and measures, on 8 validation batches with the run's trained weights, the neighbourhood term
``L_NA(alpha) - L_val(alpha)`` (mean absolute value over the batches, 3 neighbours of radius 1)
for alpha at the usual ``1e-3 * randn`` start, for the run's final alpha, and for that alpha
peaked by hand (3 added to each edge's strongest logit: softmax weight about 0.83, what a long
search reaches), for several ``margin`` values.  Prints a Markdown table and writes ``benchmarks/results/na_size.json``.

    python benchmarks/na_size.py --epochs 15
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from _common import REPO  # noqa: F401  (puts the repository on sys.path)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--margins", default="0,0.5,1,2,4")
    p.add_argument("--batches", type=int, default=8)
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "na_size.json"))
    args = p.parse_args()

    import torch
    import torch.nn.functional as F

    from genas.config import load_config
    from genas.differentiable.search import batch_stats_only
    from genas.differentiable.stage import run
    from genas.differentiable.variants import NeighbourhoodAware
    from genas.io import atomic_write_json

    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config("a2m_quickstart", ["--run.root", tmp, "--run.progress", "false", "--variants.use", "na",
                                             "--differentiable.epochs", str(args.epochs)])  # fmt: skip
        search = run(cfg)
    model = search.model
    model.eval()
    batches = [b for _, b in zip(range(args.batches), search.valid_loader)]
    final = {k: v.detach().clone() for k, v in model.arch_values().items()}
    g = torch.Generator().manual_seed(0)
    init = {k: 1e-3 * torch.randn(v.shape, generator=g) for k, v in final.items()}

    def loss_fn(x, y):
        def loss(arch):
            with torch.no_grad(), batch_stats_only(model):
                return F.cross_entropy(model(x, arch), y)

        return loss

    peaked = {k: v + 3.0 * F.one_hot(v.argmax(-1), v.shape[-1]).to(v) for k, v in final.items()}
    rows = []
    for label, arch in (("initial (1e-3 randn)", init), ("final (after the search)", final),
                        ("peaked (final + 3 on each edge's argmax)", peaked)):
        top = {k: float(torch.softmax(v, -1).max(-1).values.mean()) for k, v in arch.items()}
        for margin in [float(m) for m in args.margins.split(",")]:
            v = NeighbourhoodAware(size=1, samples=3, margin=margin)
            v.generator = torch.Generator().manual_seed(1)
            v.setup(model)
            terms, plains = [], []
            for x, y in batches:
                x, y = x.to(next(model.parameters()).device), y.to(next(model.parameters()).device)
                plain = float(loss_fn(x, y)(arch))
                terms.append(abs(float(v.val_loss(loss_fn(x, y))(arch)) - plain))
                plains.append(plain)
            rows.append({"alpha": label, "mean_top_weight": round(top["alpha"], 4), "margin": margin,
                         "na_term": sum(terms) / len(terms), "val_loss": sum(plains) / len(plains)})  # fmt: skip
    print("| alpha | mean top softmax weight | margin | mean abs(L_NA - L_val) | L_val |")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['alpha']} | {r['mean_top_weight']:.3f} | {r['margin']:g} | {r['na_term']:.2e} | {r['val_loss']:.3f} |")
    atomic_write_json(Path(args.out), {"epochs": args.epochs, "batches": args.batches, "size": 1, "samples": 3,
                                       "rows": rows})  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
