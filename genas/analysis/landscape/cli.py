#!/usr/bin/env python
"""Architecture-landscape study on the NAS-Bench-201 table (A2M paper, Table 8 and Fig. 7).

    python tools/landscape.py neighbourhood --table nb201_accuracy.csv --dataset all --out runs/landscape
    python tools/landscape.py path --pairs paper --dataset all --out runs/landscape
    python tools/landscape.py path --a 81 --b 1459 --dataset cifar10

The table comes from ``--table PATH`` or ``$GENAS_NB201_TABLE``.  See docs/landscape.md.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from genas.tables import NB201Table, load_nb201_table, normalize_dataset
from genas.cli import ArgumentParser, add_check, checked, load_plugins, parse_args, start_runtime
from genas.config import load_config
from genas.errors import ConfigError
from genas.io import atomic_write_json, atomic_write_text, check_writable_dir
from genas.analysis.landscape import (
    DATASET_NAMES,
    PAPER_KS,
    PAPER_PAIRS,
    PAPER_TIERS,
    BARRIER_FORMS,
    AccuracyPath,
    KSResult,
    ScorerSource,
    TableSource,
    accuracy_path,
    neighborhood_ks,
    parse_tier,
    path_tree,
)
from genas.spaces import NB201Space

if TYPE_CHECKING:
    from rich.console import Console

ALL = ("cifar10", "cifar100", "imagenet16")


def _datasets(name: str) -> list[str]:
    if name.strip().lower() == "all":
        return list(ALL)
    key = normalize_dataset(name)
    if key == "cifar10-valid":
        raise ConfigError("--dataset cifar10-valid has no test split in the table; use --dataset cifar10 --metric valid")
    return [key]


def _console(stderr: bool = False) -> Console:  # rich is a core dependency, imported late to keep errors fast
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, highlight=False, width=None if stream.isatty() else 132)


# ---- neighbourhood ---------------------------------------------------------------------
def cmd_neighbourhood(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    datasets = _datasets(args.dataset)
    if args.tier and len(datasets) > 1:
        raise ConfigError("--tier sets the intervals of one dataset; pass a single --dataset with it")
    custom = {name: (lo, hi) for name, lo, hi in map(parse_tier, args.tier or [])}
    table = load_nb201_table(args.table)
    results: list[KSResult] = []
    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                  console=_console(stderr=True), transient=True) as progress:  # fmt: skip
        plan = {ds: custom or PAPER_TIERS[ds] for ds in datasets}
        task = progress.add_task("KS statistics", total=sum(len(t) for t in plan.values()) * len(args.radius))
        for ds in datasets:
            progress.update(task, description=f"KS statistics, {DATASET_NAMES[ds]}")
            results += neighborhood_ks(table, ds, plan[ds], args.radius, args.metric, args.epochs, bins=args.bins,
                                       callback=lambda _: progress.advance(task))  # fmt: skip
    show = Table(title=f"Neighbourhood KS statistic vs the whole space ({args.metric} accuracy, {args.epochs} epochs)")
    for col in ("dataset", "tier", "interval", "radius", "members", "samples", "KS", "paper KS", "paper samples"):
        show.add_column(col, justify="left" if col in ("dataset", "tier", "interval") else "right")
    rows = []
    comparable = not custom and (args.metric, args.epochs) == ("test", 200)  # the paper's setting
    for r in results:
        paper = PAPER_KS.get((r.dataset, r.tier, r.radius)) if comparable else None
        row = {**r.to_row(), "paper_statistic": paper and paper[0], "paper_samples": paper and paper[1]}
        rows.append(row)
        show.add_row(DATASET_NAMES[r.dataset], r.tier, f"[{r.low:g}, {r.high:g}]", str(r.radius), str(r.members),
                     str(r.samples), f"{r.statistic:.3f}", f"{paper[0]:.3f}" if paper else "-",
                     str(paper[1]) if paper else "-")  # fmt: skip
    _console().print(show)
    if args.out:
        out = Path(args.out)
        _write_csv(out / "ks.csv", rows)
        meta = {"table": table.source, "metric": args.metric, "epochs": args.epochs}
        atomic_write_json(out / "ks.json", {**meta, "results": rows})
        if args.bins:
            _plots(lambda ds: _plot_hist(table, ds, [r for r in results if r.dataset == ds], out, args), datasets)
        print(f"wrote {out / 'ks.csv'} and {out / 'ks.json'}")
    return 0


def _plot_hist(table: NB201Table, ds: str, results: list[KSResult], out: Path, args: argparse.Namespace) -> Path:
    from genas.analysis.landscape.plots import plot_neighborhood_histograms

    path = out / f"neighbourhood_{ds}.png"
    whole = table.column(ds, args.metric, args.epochs)
    plot_neighborhood_histograms(results, whole, path, title=f"{DATASET_NAMES[ds]}: radius-r neighbours of each tier")
    return path


# ---- path ------------------------------------------------------------------------------
def _arch(table: NB201Table, text: str):
    if text.strip().lstrip("+-").isdigit():
        return table.arch(int(text))  # an index out of range says so
    return NB201Space().parse(text)


def cmd_path(args: argparse.Namespace) -> int:
    from rich.table import Table

    if (args.a is None) != (args.b is None) or (args.a is None) == (args.pairs is None):
        raise ConfigError("give either --a and --b (NB201 index or string) or --pairs paper")
    if (args.scorer is None) != (args.supernet is None):
        raise ConfigError("--scorer and --supernet go together: a registered scorer evaluated on a trained supernet")
    if args.scorer and args.pairs:
        raise ConfigError("--pairs paper compares table accuracies; with --scorer give the two architectures with --a and --b")
    datasets = _datasets(args.dataset) if not args.scorer else ["cifar10"]
    table = load_nb201_table(args.table)
    what = f"scorer {args.scorer!r} on {args.supernet}" if args.scorer else f"{args.metric} accuracy, {args.epochs} epochs"
    show = Table(title=f"Accuracy paths and barriers ({what}, form {args.form!r})")
    for col in ("dataset", "pair", "a", "b", "d", "accuracy path", "barrier", "normalised"):
        show.add_column(col, justify="right" if col in ("d", "barrier", "normalised") else "left")
    report, checks = [], []
    by_dataset: dict[str, dict[str, AccuracyPath]] = {}
    for ds in datasets:
        pairs = PAPER_PAIRS[ds] if args.pairs else {"a-b": (args.a, args.b)}
        source = _scorer_source(args) if args.scorer else TableSource(table, ds, args.metric, args.epochs)
        paths: dict[str, AccuracyPath] = {}
        for name, (ia, ib) in pairs.items():
            a, b = _arch(table, str(ia)), _arch(table, str(ib))
            ap = paths[name] = accuracy_path(path_tree(a, b), source)
            bar = ap.barrier(args.form)
            ia, ib = table.index_of(a), table.index_of(b)
            report.append({"dataset": ds, "pair": name, "a_index": ia, "b_index": ib, **ap.to_json(),
                           "form": args.form, "barrier": bar.raw, "barrier_normalized": bar.normalized})  # fmt: skip
            trace = " -> ".join(f"{v:.2f}" for v in ap.values)
            show.add_row(DATASET_NAMES[ds], name, str(ia), str(ib), str(ap.tree.distance), trace,
                         f"{bar.raw:.3f}", f"{bar.normalized:.4f}")  # fmt: skip
        if args.pairs:
            bars = [paths[t].barrier(args.form).raw for t in ("A", "B", "C")]
            checks.append((ds, bars[0] < bars[1] < bars[2]))
        by_dataset[ds] = paths
    console = _console()
    console.print(show)
    for ds, ok in checks:
        console.print(f"{DATASET_NAMES[ds]}: barrier(A) < barrier(B) < barrier(C): {'yes' if ok else 'NO'}")
    if args.out:
        _plots(lambda d: _plot_paths(by_dataset[d], d, Path(args.out), args), datasets)
        atomic_write_json(Path(args.out) / "paths.json", {"table": table.source, "metric": args.metric,
                                                          "epochs": args.epochs, "paths": report})  # fmt: skip
        print(f"wrote {Path(args.out) / 'paths.json'}")
    return 0


def _scorer_source(args: argparse.Namespace) -> ScorerSource:
    """``--scorer`` on ``--supernet``, with the run's config, every ``--score.*`` override and ``--plugin``."""
    import scorers.config  # noqa: F401  (registers the score section)
    import supernet.config  # noqa: F401
    from genas.runs import Run

    load_plugins(args.plugin)
    cfg = load_config(None, [*args.overrides, ("score.scorer", args.scorer)], base=Run(args.supernet).read_config())
    rt = start_runtime(cfg)
    return ScorerSource.from_config(cfg.score, args.supernet, device=rt.device, seed=cfg.run.seed)


def _plot_paths(paths: dict[str, AccuracyPath], ds: str, out: Path, args: argparse.Namespace) -> Path:
    from genas.analysis.landscape.plots import plot_accuracy_paths

    path = out / f"paths_{ds}.png"
    plot_accuracy_paths(paths, path, title=f"{DATASET_NAMES[ds]}: accuracy paths")
    return path


# ---- shared ----------------------------------------------------------------------------
def _plots(fn: Callable[[str], Path], datasets: list[str]) -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("note: matplotlib is not installed; skipping the PNG figures (pip install genas[plot])")
        return
    for ds in datasets:
        print(f"wrote {fn(ds)}")


def _write_csv(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="landscape.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    common = ArgumentParser(add_help=False)
    common.add_argument("--table", help="NB201 accuracy CSV or benchmark file (default: $GENAS_NB201_TABLE)")
    common.add_argument("--dataset", default="cifar10", help="cifar10, cifar100, imagenet16-120 (or an alias) or all")
    common.add_argument("--metric", default="test", choices=["test", "valid"], help="accuracy column (default test)")
    common.add_argument("--epochs", default=200, type=int, choices=[200, 12], help="training schedule (default 200)")
    common.add_argument("--out", help="directory for CSV/JSON results and PNG figures")
    add_check(common)

    nb = sub.add_parser("neighbourhood", aliases=["neighborhood"], parents=[common],
                        help="KS statistic of tier neighbourhoods vs the whole space (paper Table 8)")  # fmt: skip
    nb.add_argument("--radius", type=int, nargs="+", default=[1, 2, 3], help="radii (default 1 2 3)")
    nb.add_argument("--tier", action="append", metavar="NAME=LOW:HIGH",
                    help="inclusive tier interval, repeatable (default: the paper's tiers of the dataset)")  # fmt: skip
    nb.add_argument("--bins", type=int, default=60, help="histogram bins of the figures (0: no figures)")
    nb.set_defaults(func=cmd_neighbourhood)

    pa = sub.add_parser("path", parents=[common], help="accuracy path and barrier between two architectures (Fig. 7)")
    pa.add_argument("--a", help="first architecture: NB201 index or string")
    pa.add_argument("--b", help="second architecture: NB201 index or string")
    pa.add_argument("--pairs", choices=["paper"], help="the paper's A/B/C pairs of each dataset")
    pa.add_argument("--form", default="paper", choices=BARRIER_FORMS, help="barrier form (default: paper eq. 9)")
    pa.add_argument("--scorer", help="use a registered scorer (e.g. accuracy) on --supernet instead of the table")
    pa.add_argument("--supernet", metavar="RUN_DIR", help="trained NB201 supernet run for --scorer")
    pa.add_argument("--plugin", action="append", default=[], metavar="FILE_OR_MODULE", help="load scorer plugins")
    pa.set_defaults(func=cmd_path)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args, overrides = parse_args(build_parser(), argv)
    args.overrides = overrides
    if overrides and not getattr(args, "scorer", None):
        raise ConfigError(f"--{overrides[0][0]} applies to a scorer; it needs `path --scorer NAME --supernet RUN_DIR`")
    if getattr(args, "radius", None) and any(r < 1 or r > 6 for r in args.radius):
        raise ConfigError(f"--radius must lie in 1..6 (NB201 has 6 edges), got {' '.join(map(str, args.radius))}")
    if getattr(args, "bins", 0) < 0:
        raise ConfigError(f"--bins must be 0 (no figures) or a positive number of bins, got {args.bins}")
    if args.out:
        check_writable_dir(args.out, "--out")  # before the work, not after it
    if checked(args, f"landscape.py {args.command} command line"):
        return 0
    return args.func(args)
