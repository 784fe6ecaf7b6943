"""Does the evolution find better architectures than random search with the same scorer? (issue 24, item 4)

On a trained NB201 supernet, for each seed: SPOS evolution driven by a scorer expression, random
search with the same number of queries and the same scorer, and evolution driven by the NB201 table
itself (the ceiling: the oracle ``cifar10_valid`` column, as ``benchmarks/search_algorithms.py``).
Each returns its best-by-score architecture; the figure is that architecture's NB201 test accuracy.
One scoring context serves every search, so an architecture is scored once whichever search asks.

    python benchmarks/search_check.py runs/nb201-cifar10-15ep-decay --table ../shared/data/nb201/nb201_accuracy.csv \\
        --scorer '{"scorer": "angle+flatness", "weighting": "zscore"}' --seeds 5 --population 20 --iterations 3 \\
        --out benchmarks/results/search_check.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from _common import REPO  # noqa: F401  (puts the repository on sys.path)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run")
    p.add_argument("--table", required=True)
    p.add_argument("--scorer", nargs="+", default=['{"scorer": "angle+flatness"}'], metavar="JSON",
                   help='scorers to search with, each a JSON object: {"scorer": EXPR, OPTION: VALUE, ...}')
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--population", type=int, default=20)
    p.add_argument("--iterations", type=int, default=3)
    p.add_argument("--dataset", default="cifar10")
    p.add_argument("--eval-batches", type=int, default=1)
    p.add_argument("--eval-batch-size", type=int, default=256)
    p.add_argument("--bn-batches", type=int, default=14)
    p.add_argument("--bn-batch-size", type=int, default=64)
    p.add_argument("--methods", default="evolution,random", help="which of evolution, random to run per scorer")
    p.add_argument("--out", required=True, help="results JSON; rows already in it are kept and not rerun")
    args = p.parse_args()

    from scipy.stats import wilcoxon

    from evolution import Evolution, RandomSearch
    from genas.io import atomic_write_json
    from genas.tables import load_nb201_table
    from scorers import ScoringContext, create_scorer

    table = load_nb201_table(args.table)
    ctx = ScoringContext.from_run(args.run, bn_batches=args.bn_batches, bn_batch_size=args.bn_batch_size,
                                  eval_batches=args.eval_batches, eval_batch_size=args.eval_batch_size, seed=0)  # fmt: skip
    configs = [json.loads(text) for text in args.scorer]
    queries = args.population * args.iterations
    half = args.population // 2

    def evolution(seed: int) -> Evolution:
        """SPOS evolution in the SPEC default's proportions (P = 50: top-10, 25 mutations + 25 crossovers)."""
        return Evolution(ctx.space, seed=seed, population=args.population, topk=max(2, args.population // 5),
                         mutations=half, crossovers=args.population - half, iterations=args.iterations)  # fmt: skip

    def run(algo, fitness) -> tuple[object, int]:
        while not algo.done:
            batch = algo.ask()
            algo.tell(batch, fitness(batch))
        best = max(algo.history, key=lambda ind: (ind.score, -algo.history.index(ind)))
        return best.arch, len(algo.history)

    def test_acc(arch) -> float:
        return float(table.accuracy([arch], dataset=args.dataset)[0])

    oracle = lambda batch: np.asarray(table.accuracy(batch, dataset="cifar10-valid"), dtype=np.float64)  # noqa: E731
    setting = {"run": args.run, "queries": queries, "population": args.population, "iterations": args.iterations,
               "budget": {"eval": [args.eval_batches, args.eval_batch_size], "bn": [args.bn_batches, args.bn_batch_size]},
               "report": f"{args.dataset} test accuracy of the returned architecture"}  # fmt: skip
    out = Path(args.out)
    result = json.loads(out.read_text()) if out.is_file() else {**setting, "scorers": [], "methods": {}, "archs": {}}
    if any(result.get(k) != v for k, v in setting.items()):
        sys.exit(f"error: {out} holds results of another setting; give another --out")
    result["seeds"] = args.seeds
    result["scorers"] = result["scorers"] + [c for c in configs if c not in result["scorers"]]
    start = time.time()
    result["methods"]["evolution[nb201 oracle]"] = [test_acc(run(evolution(s), oracle)[0]) for s in range(args.seeds)]
    print(f"evolution[nb201 oracle]: {result['methods']['evolution[nb201 oracle]']}", flush=True)
    labels = []
    for config in configs:
        options = dict(config)
        expr = options.pop("scorer")
        expr = expr + ("" if not options else json.dumps(options, sort_keys=True, separators=(",", ":")))
        labels.append(expr)
        scorer = create_scorer(config["scorer"], **options)
        fitness = lambda batch: ctx.score(scorer, batch)  # noqa: E731
        for method, make in (("evolution", evolution), ("random", lambda s: RandomSearch(ctx.space, seed=s,
                                                                                          num_samples=queries,
                                                                                          batch_size=args.population))):  # fmt: skip
            if method not in args.methods.split(","):
                continue
            key = f"{method}[{expr}]"
            accs, archs = result["methods"].setdefault(key, []), result["archs"].setdefault(key, [])
            for s in range(len(accs), args.seeds):  # the rows already in --out are kept
                arch, n = run(make(s), fitness)
                assert n == queries, (method, n)
                accs.append(test_acc(arch))
                archs.append(str(arch))
                print(f"{key} seed {s}: {accs[-1]:.2f} ({arch}), {time.time() - start:.0f} s", flush=True)
                atomic_write_json(out, result)  # each seed kept: an interrupted check continues
    summary = {}
    for name, accs in result["methods"].items():
        summary[name] = {"mean": round(float(np.mean(accs)), 3), "std": round(float(np.std(accs, ddof=1)), 3)}
    for expr in labels:
        if not all(len(result["methods"].get(f"{m}[{expr}]", [])) == args.seeds for m in ("evolution", "random")):
            continue
        evo, rnd = np.array(result["methods"][f"evolution[{expr}]"]), np.array(result["methods"][f"random[{expr}]"])
        diff = evo - rnd
        nonzero = diff[diff != 0]
        summary[f"evolution - random [{expr}]"] = {
            "paired_differences": [round(float(d), 3) for d in diff], "mean": round(float(diff.mean()), 3),
            "wins_ties_losses": [int((diff > 0).sum()), int((diff == 0).sum()), int((diff < 0).sum())],
            "wilcoxon_p": round(float(wilcoxon(nonzero).pvalue), 4) if len(nonzero) >= 1 else None,
        }  # fmt: skip
    result["summary"] = summary
    result["seconds_last_invocation"] = round(time.time() - start, 1)
    atomic_write_json(out, result)
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
