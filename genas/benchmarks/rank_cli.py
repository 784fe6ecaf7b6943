"""``python tools/rank_nb201.py``: how well scorers rank NB201 architectures against the benchmark.

Scores a seeded sample of NAS-Bench-201 cells (or all 15,625) on a trained NB201 supernet with
one or more scorers, then reports Kendall tau-b, Spearman rho and top-k precision against the
table's accuracies.  Writes ``scores.csv`` (index, arch, benchmark accuracy, one column per scorer),
``summary.json`` and ``scatter.png``.  The ground-truth column is named after the table column
(``nb201_cifar10_test``), so it never clashes with a scorer named ``accuracy``.  Scores are saved as they come; ``--resume`` continues.

    python tools/rank_nb201.py --supernet runs/nb201-cifar10 --scorer accuracy,angle,flatness,angle+flatness \\
        --sample 200 --table ../shared/data/nb201/nb201_accuracy.csv --dataset cifar10
"""

from __future__ import annotations

import csv
import io
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from genas.cli import ArgumentParser
from genas.config import load_config, split_overrides
from genas.errors import ConfigError, NotTrainedError
from genas.io import atomic_write_json, atomic_write_text
from genas.runs import Run

__all__ = ["main", "sample_archs", "read_archs"]


def _parser() -> ArgumentParser:
    p = ArgumentParser(prog="rank_nb201.py", description="Kendall tau of scorers against NAS-Bench-201.",
                                epilog="Scoring settings: --score.eval_batches N, --score.bn_batches N, "
                                       "--score.options.NAME value, --run.device cuda.")  # fmt: skip
    p.add_argument("--supernet", default=None, metavar="RUN_DIR", help="trained NB201 supernet run (not needed for nb201)")
    p.add_argument("--scorer", action="append", required=True, help="scorer expression(s); repeat or comma-separate")
    p.add_argument("--sample", default="200", help="number of architectures, or 'all' (default 200)")
    p.add_argument("--archs", default=None, metavar="FILE", help="score these architectures (one NB201 string or index per line) instead of a sample")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample and of the scorers")
    p.add_argument("--table", default=None, help="NB201 table CSV (default: $GENAS_NB201_TABLE)")
    p.add_argument("--dataset", default="cifar10", help="table dataset: cifar10, cifar100, imagenet16-120, cifar10-valid")
    p.add_argument("--metric", default="test", help="table metric: test or valid")
    p.add_argument("--epochs", default="200", help="table schedule: 200 or 12")
    p.add_argument("--topk", default="10,10%", help="top-k precision levels (default 10,10%%)")
    p.add_argument("--out", default=None, help="output directory (default: RUN_DIR/rank-nb201-...)")
    p.add_argument("--resume", action="store_true", help="reuse the scores already in --out")
    p.add_argument("--plugin", action="append", default=[], help="load scorer plugins (file or module)")
    return p


def sample_archs(n: int | str, seed: int) -> list[Any]:
    """A seeded sample of ``n`` distinct NB201 cells (or all 15,625, in benchmark-index-free gene order)."""
    from genas.spaces import create_space

    space = create_space("nb201")
    archs = list(space.enumerate())
    if str(n) == "all":
        return archs
    try:
        k = int(n)
    except ValueError as exc:
        raise ConfigError(f"--sample must be a number of architectures or 'all', got {n!r}") from exc
    if not 2 <= k <= len(archs):
        raise ConfigError(f"--sample must be in [2, {len(archs)}] or 'all', got {k}")
    idx = np.random.default_rng(seed).choice(len(archs), size=k, replace=False)
    return [archs[i] for i in idx]


def read_archs(path: str, table: Any) -> list[Any]:
    """Architectures listed in a file, one NB201 string or benchmark index per line (# comments allowed)."""
    from genas.errors import DataNotFoundError, InvalidArchitectureError
    from genas.spaces import create_space

    space = create_space("nb201")
    p = Path(path)
    if not p.is_file():
        raise DataNotFoundError(f"--archs file {path} does not exist")
    archs = []
    for n, line in enumerate(p.read_text().splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            archs.append(table.arch(int(text)) if text.isdigit() else space.parse(text))
        except InvalidArchitectureError as exc:
            raise InvalidArchitectureError(f"{path}:{n}: {exc}") from exc
    if len(set(archs)) < 2:
        raise ConfigError(f"--archs file {path} lists fewer than 2 distinct architectures")
    return list(dict.fromkeys(archs))


def _write_csv(path: Path, rows: list[dict[str, Any]], fields: list[str]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def _scatter(path: Path, rows: list[dict[str, Any]], names: list[str], truth_col: str, reports: dict[str, Any], title: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    cols = min(3, len(names))
    nrows = -(-len(names) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.6 * nrows), squeeze=False)
    for ax in axes.flat[len(names):]:
        ax.set_visible(False)
    acc = np.array([float(r[truth_col]) for r in rows])
    for ax, name in zip(axes.flat, names):
        ax.scatter([float(r[name]) for r in rows], acc, s=8, alpha=0.6)
        ax.set_title(f"{name}\ntau = {reports[name]['kendall_tau']:.3f}", fontsize=9)
        ax.set_xlabel("score")
        ax.set_ylabel("benchmark accuracy (%)")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    from genas.benchmarks import column_name, load_nb201_table
    from genas.benchmarks.ranking import parse_topk, rank_report
    from genas.distributed import resolve_device
    from scorers import ScoringContext, cached_scores, create_scorers, load_plugin, origin_of

    argv = list(sys.argv[1:] if argv is None else argv)
    rest, overrides = split_overrides(argv)
    args = _parser().parse_args(rest)
    exprs = [e.strip() for item in args.scorer for e in item.split(",") if e.strip()]
    for plugin in args.plugin:
        load_plugin(plugin)
    table = load_nb201_table(args.table)
    if args.table:  # the `nb201` oracle scorer reads the same table
        os.environ.setdefault("GENAS_NB201_TABLE", str(args.table))
    column_name(args.dataset, args.metric, args.epochs)  # check the names before any work
    base = Run(args.supernet).read_config() if args.supernet else None
    cfg = load_config(None, overrides, base=base)
    scorers = create_scorers(exprs, **cfg.score.options)
    archs = read_archs(args.archs, table) if args.archs else sample_archs(args.sample, args.seed)
    parse_topk(args.topk, len(archs))
    needs_net = any(s.needs.supernet for s in scorers)
    device = resolve_device(cfg.run.device)
    if needs_net:
        if not args.supernet:
            raise NotTrainedError("these scorers need a trained NB201 supernet: pass --supernet RUN_DIR "
                                  "(train one with `python tools/train_supernet.py`)")  # fmt: skip
        if cfg.supernet.space != "nb201":
            raise ConfigError(f"rank_nb201 needs an NB201 supernet; {args.supernet} was trained on space {cfg.supernet.space!r}")
        sc = cfg.score
        ctx = ScoringContext.from_run(args.supernet, checkpoint=sc.checkpoint, device=device, bn_batches=sc.bn_batches,
                                      bn_batch_size=sc.bn_batch_size, bn_momentum=sc.bn_momentum,
                                      eval_batches=sc.eval_batches, eval_batch_size=sc.eval_batch_size, seed=args.seed,
                                      data=any(s.needs.data for s in scorers))  # fmt: skip
    else:
        ctx = ScoringContext.for_space("nb201", seed=args.seed)
    root = Path(args.supernet) if args.supernet else Path(cfg.run.root)
    out = Path(args.out) if args.out else root / f"rank-nb201-{args.dataset}-n{len(archs)}-s{args.seed}"
    scores_path = out / "scores.csv"
    if scores_path.exists() and not args.resume:
        raise ConfigError(f"{out} already holds ranking results; pass --resume to continue them or --out DIR")
    names = [s.name for s in scorers]
    truth_col = "nb201_" + column_name(args.dataset, args.metric, args.epochs)  # never clashes with a scorer name
    fields = ["index", "arch", truth_col, *names]
    acc = table.accuracy(archs, dataset=args.dataset, metric=args.metric, epochs=args.epochs)
    done: dict[str, dict[str, Any]] = {}
    if args.resume and scores_path.exists():
        with scores_path.open(newline="") as fh:
            done = {r["arch"]: r for r in csv.DictReader(fh) if all(r.get(n) not in (None, "") for n in names)}
    rows: list[dict[str, Any]] = []
    out.mkdir(parents=True, exist_ok=True)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    last_save = time.monotonic()
    with Progress(TextColumn("[bold]scoring"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("ETA"),
                  TimeRemainingColumn(), disable=not cfg.run.progress) as bar:  # fmt: skip
        task = bar.add_task("score", total=len(archs))
        for arch, a in zip(archs, acc):
            key = str(arch)
            if key in done:
                rows.append({f: done[key][f] for f in fields})
            else:
                row = {"index": table.index_of(arch), "arch": key, truth_col: float(a)}
                for s in scorers:
                    row[s.name] = float(cached_scores(s, [arch], ctx, origin_of(s.name))[0])
                rows.append(row)
                if time.monotonic() - last_save > 20:
                    _write_csv(scores_path, rows, fields)
                    last_save = time.monotonic()
            bar.advance(task)
    _write_csv(scores_path, rows, fields)
    truth = np.array([float(r[truth_col]) for r in rows])
    reports = {n: rank_report([float(r[n]) for r in rows], truth, args.topk).as_dict() for n in names}
    summary = {"table_column": column_name(args.dataset, args.metric, args.epochs), "sample": len(rows), "seed": args.seed,
               "supernet": args.supernet, "checkpoint": ctx.metadata.get("checkpoint"),
               "budget": {k: v for k, v in cfg.to_dict()["score"].items() if k not in ("scorer", "options", "plugins")},
               "scorers": {s.name: s.options() for s in scorers}, "results": reports}  # fmt: skip
    atomic_write_json(out / "summary.json", summary)
    plotted = _scatter(out / "scatter.png", rows, names, truth_col, reports, f"NB201 {summary['table_column']}, n = {len(rows)}")
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"ranking vs NB201 {summary['table_column']} (n = {len(rows)})")
    cols = ["kendall_tau", "spearman", *[k for k in next(iter(reports.values())) if k.startswith("precision@")]]
    t.add_column("scorer")
    for c in cols:
        t.add_column(c)
    for n, r in reports.items():
        t.add_row(n, *[f"{r[c]:.4f}" for c in cols])
    Console().print(t)
    print(f"results in {out}" + ("" if plotted else " (install matplotlib for scatter.png)"))
    return 0
