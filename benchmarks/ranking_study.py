"""Why the flatness noise scheme matters, and how to weight a sum of scorers (issue 24).

Scores a seeded sample of NB201 cells (``tools/rank_nb201.py``'s sample: the same 200 for the same
seed) on a trained NB201 supernet, once, and keeps every part: accuracy, loss, angle and the held-out
losses L_1..L_t of ``flatness`` under both noise schemes (the real scorer's ``losses``).  Everything
else is computed from those parts by the library itself (the flatness values go into the context's
score cache, so the sums are scored by ``scorers.combine.WeightedSum`` exactly as a search scores them):

* per scheme: the effective sigma of each level, the median losses, the depth term alpha |L_1| / sigma_1
  and the sharpness term separately (their medians, their spread over the architectures, and the
  Kendall tau of each alone), and the tau of F;
* the tau of ``angle``, ``accuracy``, ``loss``, ``flatness`` (both schemes) and of ``angle+flatness`` /
  ``accuracy+flatness`` under every weighting (``fixed`` gamma 16, ``zscore``, ``rank``).

The label-free weightings measure each term on their own calibration sample (drawn with the scoring
seed), which is scored here as well but left out of the tau.

    python benchmarks/ranking_study.py runs/nb201-cifar10-15ep-decay --table ../shared/data/nb201/nb201_accuracy.csv \\
        --sample 200 --out benchmarks/results/ranking_study_200
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

from _common import REPO  # noqa: F401  (puts the repository on sys.path)

SCHEMES = ("independent", "cumulative")
EXPRESSIONS = ("angle+flatness", "accuracy+flatness", "angle+accuracy")
WEIGHTINGS = ("fixed", "zscore", "rank")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run", help="a trained NB201 run directory")
    p.add_argument("--table", required=True, help="the NB201 accuracy CSV")
    p.add_argument("--sample", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dataset", default="cifar10")
    p.add_argument("--eval-batches", type=int, default=4)
    p.add_argument("--eval-batch-size", type=int, default=256)
    p.add_argument("--bn-batches", type=int, default=14)
    p.add_argument("--bn-batch-size", type=int, default=64)
    p.add_argument("--calibration", type=int, default=32)
    p.add_argument("--flatness", default="true", choices=("true", "false"), help="false: angle / accuracy / loss only")
    p.add_argument("--reliability", type=int, default=0, metavar="K",
                   help="re-draw the noise (seed + 1) for the first K architectures: tau between the two draws")
    p.add_argument("--out", required=True)
    args = p.parse_args()

    import torch

    from genas.analysis.rank_cli import sample_archs
    from genas.analysis.ranking import rank_report
    from genas.tables import load_nb201_table
    from scorers import ScoringContext, create_scorer
    from scorers.flatness import effective_sigmas, flatness_from_losses, flatness_terms

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = load_nb201_table(args.table)
    archs = sample_archs(args.sample, args.seed)
    ctx = ScoringContext.from_run(args.run, bn_batches=args.bn_batches, bn_batch_size=args.bn_batch_size,
                                  eval_batches=args.eval_batches, eval_batch_size=args.eval_batch_size, seed=args.seed)  # fmt: skip
    use_flat = args.flatness == "true"
    calib = create_scorer("angle+accuracy", weighting="zscore", calibration=args.calibration).calibration_sample(ctx)
    todo = list(dict.fromkeys([*archs, *calib]))
    flats = {s: create_scorer("flatness", noise=s) for s in SCHEMES} if use_flat else {}
    plain = {n: create_scorer(n) for n in ("accuracy", "loss", "angle")}
    sigmas = next(iter(flats.values())).sigmas if flats else ()
    rows_path = out / "parts.csv"
    done = {}
    if rows_path.exists():
        with rows_path.open(newline="") as fh:
            done = {r["arch"]: r for r in csv.DictReader(fh)}
    fields = ["arch", "in_sample", "truth", *plain, *[f"L{i + 1}_{s}" for s in flats for i in range(len(sigmas))]]
    rows, start = [], time.time()
    for k, arch in enumerate(todo, 1):
        key = str(arch)
        if key in done:
            row = done[key]
        else:
            row = {"arch": key, "in_sample": int(k <= len(archs)), "truth": table.accuracy([arch], dataset=args.dataset)[0]}
            for n, s in plain.items():
                row[n] = float(ctx.score(s, [arch])[0])
            for scheme, s in flats.items():
                for i, v in enumerate(s.losses(arch, ctx)):
                    row[f"L{i + 1}_{scheme}"] = float(v)
            rows.append(row)
        for n, s in plain.items():
            ctx.score_cache[(repr(s), ctx.space.parse(key))] = float(row[n])
        for scheme, s in flats.items():
            losses = [float(row[f"L{i + 1}_{scheme}"]) for i in range(len(sigmas))]
            ctx.score_cache[(repr(s), ctx.space.parse(key))] = flatness_from_losses(losses, s.sigmas, s.alpha)
        done[key] = row
        if k % 10 == 0 or k == len(todo):
            _write(rows_path, [done[str(a)] for a in todo if str(a) in done], fields)
            print(f"{k}/{len(todo)} architectures, {time.time() - start:.0f} s", flush=True)
    sample_rows = [done[str(a)] for a in archs]
    truth = np.array([float(r["truth"]) for r in sample_rows])

    def tau(values) -> dict[str, float]:
        r = rank_report(list(map(float, values)), truth, "10%").as_dict()
        return {"tau": round(r["kendall_tau"], 4), "spearman": round(r["spearman"], 4),
                "precision@10%": round(r["precision@top-10%"], 4)}  # fmt: skip

    result: dict = {"run": args.run, "sample": len(archs), "seed": args.seed, "calibration": len(calib),
                    "budget": {"eval": [args.eval_batches, args.eval_batch_size], "bn": [args.bn_batches, args.bn_batch_size]},
                    "threads": torch.get_num_threads(), "schemes": {}, "tau": {}}  # fmt: skip
    for n, s in plain.items():
        result["tau"][n] = tau(ctx.score(s, archs))
    for scheme, s in flats.items():
        L = np.array([[float(r[f"L{i + 1}_{scheme}"]) for i in range(len(sigmas))] for r in sample_rows])
        terms = np.array([flatness_terms(row, s.sigmas, s.alpha) for row in L])
        sharp, depth = terms[:, 0], terms[:, 1]
        result["schemes"][scheme] = {
            "sigmas": list(s.sigmas), "effective_sigmas": [round(v, 6) for v in effective_sigmas(s.sigmas, scheme)],
            "median_losses": [round(float(v), 4) for v in np.median(L, 0)],
            "median_loss_rise": [round(float(v), 4) for v in np.median(np.diff(L, axis=1), 0)],
            "depth": {"median": round(float(np.median(depth)), 2), "std": round(float(depth.std()), 2), **tau(-depth)},
            "sharpness": {"median": round(float(np.median(sharp)), 2), "std": round(float(sharp.std()), 2), **tau(-sharp)},
            "sharpness_share_median": round(float(np.median(sharp / (sharp + depth))), 4),
            "flatness": tau(ctx.score(s, archs)),
        }
        result["tau"][f"flatness[{scheme}]"] = result["schemes"][scheme]["flatness"]
        for expr in [e for e in EXPRESSIONS if "flatness" in e]:
            for w in WEIGHTINGS:
                calibration = {"calibration": args.calibration} if w != "fixed" else {}
                combo = create_scorer(expr, noise=scheme, weighting=w, **calibration)
                result["tau"][f"{expr}[{w}][{scheme}]"] = tau(ctx.score(combo, archs))
    for expr in [e for e in EXPRESSIONS if "flatness" not in e]:
        for w in WEIGHTINGS:
            combo = create_scorer(expr, weighting=w, **({"calibration": args.calibration} if w != "fixed" else {}))
            result["tau"][f"{expr}[{w}]"] = tau(ctx.score(combo, archs))
    if args.reliability and flats:
        result["reliability"] = _reliability(ctx, flats, sample_rows[: args.reliability], archs[: args.reliability], out)
    (out / "summary.json").write_text(json.dumps(result, indent=1) + "\n")
    width = max(map(len, result["tau"]))
    for n, r in result["tau"].items():
        print(f"{n:<{width}}  tau {r['tau']:+.4f}  rho {r['spearman']:+.4f}  p@10% {r['precision@10%']:.3f}")
    for scheme, r in result["schemes"].items():
        print(scheme, json.dumps({k: v for k, v in r.items() if k != "flatness"}))
    if "reliability" in result:
        print("tau between two noise draws:", json.dumps(result["reliability"]))
    return 0


def _reliability(ctx, flats, rows, archs, out: Path) -> dict:
    """Kendall tau between two noise draws (seeds s and s + 1) of each flatness part, per scheme."""
    from scipy.stats import kendalltau

    from scorers.flatness import flatness_from_losses, flatness_terms

    seed, report = ctx.seed, {"archs": len(archs)}
    saved = out / "reliability_losses.json"
    redraw = json.loads(saved.read_text()) if saved.exists() else {}  # a rerun reuses the second draw
    if any(len(redraw.get(sch, [])) != len(archs) for sch in flats):
        ctx.seed = seed + 1  # the noise plan's seed; the BN and held-out batches stay those of the first pass
        try:
            redraw = {sch: [list(map(float, s.losses(a, ctx))) for a in archs] for sch, s in flats.items()}
        finally:
            ctx.seed = seed
    for sch, s in flats.items():
        n = len(s.sigmas)
        first = [[float(r[f"L{i + 1}_{sch}"]) for i in range(n)] for r in rows]
        parts = {}
        for name, fn in (("sharpness", lambda L: flatness_terms(L, s.sigmas, s.alpha)[0]),
                         ("depth", lambda L: flatness_terms(L, s.sigmas, s.alpha)[1]),
                         ("flatness", lambda L: flatness_from_losses(L, s.sigmas, s.alpha))):  # fmt: skip
            a, b = [fn(L) for L in first], [fn(L) for L in redraw[sch]]
            parts[name] = round(float(kendalltau(a, b).statistic), 4)
        report[sch] = parts
    (out / "reliability_losses.json").write_text(json.dumps(redraw) + "\n")
    return report


def _write(path: Path, rows: list[dict], fields: list[str]) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    tmp.replace(path)


if __name__ == "__main__":
    sys.exit(main())
