#!/usr/bin/env python
"""Search algorithms on the NAS-Bench-201 table: best-found test accuracy after N unique queries.

Each algorithm maximises an oracle fitness read from the table (default ``cifar10_valid``: the
200-epoch validation accuracy of the ``cifar10-valid`` run); after every query the reported number
is the ``cifar10_test`` accuracy of the best-by-fitness architecture found so far.  Mean and
standard deviation over seeds at each budget (default 150 and 500 unique architectures).

Usage:
    python benchmarks/search_algorithms.py [--table PATH] [--seeds 20] [--budgets 150 500]
        [--fitness cifar10_valid] [--report cifar10_test] [--out results.json]

The table comes from ``--table``, else ``$GENAS_NB201_TABLE``, else
``../shared/data/nb201/nb201_accuracy.csv`` next to the repository.  See docs/search_algorithms.md.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without install

import numpy as np  # noqa: E402

from evolution import Evolution, RandomSearch, RegularizedEvolution, SearchAlgorithm  # noqa: E402
from genas.tables import ACCURACY_COLUMNS, NB201_TABLE_ENV, NB201Table, load_nb201_table  # noqa: E402
from genas.cli import run_cli  # noqa: E402
from genas.errors import ConfigError, DataNotFoundError  # noqa: E402
from genas.io import atomic_write_json  # noqa: E402
from genas.spaces import NB201Space  # noqa: E402

DEFAULT_TABLE = ROOT.parent / "shared" / "data" / "nb201" / "nb201_accuracy.csv"
SPACE = NB201Space()

# name -> (description, factory(seed, budget))
ALGORITHMS: dict[str, tuple[str, Callable[[int, int], SearchAlgorithm]]] = {
    "random": ("random search, unique uniform samples",
               lambda seed, n: RandomSearch(SPACE, seed=seed, num_samples=n, batch_size=1)),
    "rea": ("REA, NB201 setting: population 10, sample size 3, one edge mutated",
            lambda seed, n: RegularizedEvolution(SPACE, seed=seed, population=10, sample_size=3, cycles=n - 10)),
    "evolution-rlnas": ("SPOS evolution, RLNAS NB201 variant: P=100, top-30, 50 mutations + 50 crossovers",
                        lambda seed, n: Evolution(SPACE, seed=seed, population=100, topk=30, mutations=50,
                                                  crossovers=50, iterations=math.ceil(n / 100))),
    "evolution-spos": ("SPOS evolution, SPEC defaults: P=50, top-10, 25 mutations + 25 crossovers",
                       lambda seed, n: Evolution(SPACE, seed=seed, population=50, topk=10, mutations=25,
                                                 crossovers=25, iterations=math.ceil(n / 50))),
}  # fmt: skip


def _column(table: NB201Table, name: str) -> np.ndarray:
    """A table column indexed by gene code, from its name (``cifar10_valid``, ``cifar10_test_12ep``)."""
    if name not in ACCURACY_COLUMNS:
        from genas.validation import check_choice

        check_choice(name, "column", "search_algorithms", ACCURACY_COLUMNS)
    stem, epochs = (name[: -len("_12ep")], 12) if name.endswith("_12ep") else (name, 200)
    dataset, metric = stem.rsplit("_", 1)
    return table.column_by_code(dataset, metric, epochs)


def trajectory(algo: SearchAlgorithm, fitness: np.ndarray, report: np.ndarray) -> np.ndarray:
    """``report`` accuracy of the best-by-fitness architecture after each unique query."""
    out: list[float] = []
    best_fit, best_rep = -math.inf, math.nan
    while not algo.done:
        batch = algo.ask()
        codes = np.fromiter((a.code for a in batch), dtype=np.int64, count=len(batch))
        scores = fitness[codes]
        algo.tell(batch, scores)
        for code, s in zip(codes, scores):
            if s > best_fit:  # strict: the earliest among equals stays best, as in SearchAlgorithm.best
                best_fit, best_rep = s, report[code]
            out.append(best_rep)
    return np.asarray(out)


def run(
    table: NB201Table, names: Sequence[str], seeds: int, budgets: Sequence[int], fitness: str, report: str,
    shuffle: bool = False,
) -> dict[str, Any]:
    fit, rep = _column(table, fitness), _column(table, report)
    if shuffle:  # control: the same values on randomly permuted architectures (no structure left to exploit)
        fit = np.random.default_rng(0).permutation(fit)
    if np.isnan(fit).any() or np.isnan(rep).any():
        raise ConfigError(f"the table {table.source} does not cover all 15,625 architectures")
    horizon = max(budgets)
    results: dict[str, Any] = {}
    for name in names:
        desc, make = ALGORITHMS[name]
        tic = time.perf_counter()
        curves = []
        for seed in range(seeds):
            curve = trajectory(make(seed, horizon), fit, rep)
            if len(curve) != horizon:
                raise RuntimeError(f"{name} seed {seed} scored {len(curve)} architectures, expected {horizon}")
            curves.append(curve)
        arr = np.stack(curves)
        results[name] = {
            "description": desc,
            "seconds": round(time.perf_counter() - tic, 2),
            "budgets": {str(b): {"mean": float(arr[:, b - 1].mean()), "std": float(arr[:, b - 1].std(ddof=0)),
                                 "values": arr[:, b - 1].tolist()} for b in budgets},  # fmt: skip
        }
    top = int(np.argmax(fit))
    results["_oracle"] = {"fitness_optimum_" + report: float(rep[top]), "best_" + report: float(np.max(rep)),
                          "mean_" + report: float(np.mean(rep))}  # fmt: skip
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", default=None, help=f"NB201 CSV (default: ${NB201_TABLE_ENV} or {DEFAULT_TABLE})")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budgets", type=int, nargs="+", default=[150, 500])
    parser.add_argument("--fitness", default="cifar10_valid", help="table column maximised (oracle fitness)")
    parser.add_argument("--report", default="cifar10_test", help="table column reported for the best-by-fitness arch")
    parser.add_argument("--shuffle-fitness", action="store_true",
                        help="control run: permute the fitness values over architectures (seeded)")
    parser.add_argument("--algorithms", nargs="+", default=list(ALGORITHMS), choices=list(ALGORITHMS))
    parser.add_argument("--out", default=None, help="write all results (per-seed values included) to this JSON file")
    args = parser.parse_args(argv)
    if args.seeds < 1 or min(args.budgets) < 1:
        raise ConfigError("--seeds and --budgets must be positive")
    path = args.table or os.environ.get(NB201_TABLE_ENV) or DEFAULT_TABLE
    if not Path(path).exists():
        raise DataNotFoundError(f"NAS-Bench-201 table not found: {path}; pass --table PATH or set {NB201_TABLE_ENV}")
    table = load_nb201_table(path)
    results = run(table, args.algorithms, args.seeds, sorted(set(args.budgets)), args.fitness, args.report,
                  args.shuffle_fitness)

    from rich.console import Console
    from rich.table import Table

    what = f"shuffled {args.fitness}" if args.shuffle_fitness else args.fitness
    show = Table(title=f"NB201: {args.report} of the best-by-{what} architecture, {args.seeds} seeds (mean ± std)")
    show.add_column("algorithm")
    for b in sorted(set(args.budgets)):
        show.add_column(f"{b} queries", justify="right")
    show.add_column("time", justify="right")
    for name in args.algorithms:
        r = results[name]
        cells = [f"{v['mean']:.2f} ± {v['std']:.2f}" for v in r["budgets"].values()]
        show.add_row(name, *cells, f"{r['seconds']:.1f} s")
    console = Console(highlight=False)
    console.print(show)
    for name in args.algorithms:
        console.print(f"  {name}: {results[name]['description']}")
    o = results["_oracle"]
    print(f"oracle: the fitness optimum has {args.report} {o['fitness_optimum_' + args.report]:.2f}; "
          f"best in table {o['best_' + args.report]:.2f}; space mean {o['mean_' + args.report]:.2f}")  # fmt: skip
    if args.out:
        meta = {"table": table.source, "seeds": args.seeds, "fitness": what, "report": args.report,
                "command": " ".join(["python", "benchmarks/search_algorithms.py", *(argv or sys.argv[1:])])}
        atomic_write_json(args.out, {**meta, "results": results})
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
