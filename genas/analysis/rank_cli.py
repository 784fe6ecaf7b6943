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
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from genas.cli import ArgumentParser, add_check, checked, load_plugins, parse_args, start_runtime
from genas.config import load_config
from genas.errors import ConfigError
from genas.io import atomic_write_json, atomic_write_text, atomic_writer, check_writable_dir, removed_on_error
from genas.progress import Progress
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
    return add_check(p)


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


def torch_threads() -> int | None:
    """The intra-op thread count scoring ran with (None where torch was never imported)."""
    torch = sys.modules.get("torch")
    return torch.get_num_threads() if torch is not None else None


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
    with atomic_writer(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=110)
    plt.close(fig)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    args, overrides = parse_args(_parser(), argv)
    import scorers.config  # noqa: F401  (each stage registers its config sections)
    import supernet.config  # noqa: F401,F811
    from genas.analysis.ranking import parse_topk, rank_report
    from genas.tables import column_name, load_nb201_table
    from scorers import ScoringContext, create_scorers
    from scorers.registry import parse_expression

    exprs = [e.strip() for item in args.scorer for e in item.split(",") if e.strip()]
    load_plugins(args.plugin)
    column_name(args.dataset, args.metric, args.epochs)  # check the names before any work
    overrides.append(("score.scorer", ",".join(exprs)))
    if args.table and any(t.name.removeprefix("na:") == "nb201" for e in exprs for t in parse_expression(e)):
        overrides.append(("score.options.nb201.table", str(args.table)))  # the oracle reads the same table
    base = Run(args.supernet).read_config() if args.supernet and not args.check else None
    cfg = load_config(None, overrides, base=base)
    if checked(args, "rank_nb201.py command line and config"):
        return 0
    if args.supernet and cfg.supernet.space != "nb201":
        raise ConfigError(f"rank_nb201 needs an NB201 supernet; {args.supernet} was trained on space {cfg.supernet.space!r}")
    table = load_nb201_table(args.table)
    chosen = create_scorers(exprs, **cfg.score.options)
    archs = read_archs(args.archs, table) if args.archs else sample_archs(args.sample, args.seed)
    parse_topk(args.topk, len(archs))
    root = Path(args.supernet) if args.supernet else Path(cfg.run.root)
    out = Path(args.out) if args.out else root / f"rank-nb201-{args.dataset}-n{len(archs)}-s{args.seed}"
    check_writable_dir(out, "--out")
    if (out / "scores.csv").exists() and not args.resume:
        raise ConfigError(f"{out} already holds ranking results; pass --resume to continue them or --out DIR")
    rt = start_runtime(cfg)
    ctx = ScoringContext.from_config(cfg.score, args.supernet, device=rt.device, seed=args.seed, scorers=chosen,
                                     space="nb201", data=cfg.data, network=cfg.supernet)  # fmt: skip
    scores_path = out / "scores.csv"
    names = [s.name for s in chosen]
    truth_col = "nb201_" + column_name(args.dataset, args.metric, args.epochs)  # never clashes with a scorer name
    fields = ["index", "arch", truth_col, *names]
    acc = table.accuracy(archs, dataset=args.dataset, metric=args.metric, epochs=args.epochs)
    done: dict[str, dict[str, Any]] = {}
    if args.resume and scores_path.exists():
        with scores_path.open(newline="") as fh:
            done = {r["arch"]: r for r in csv.DictReader(fh) if all(r.get(n) not in (None, "") for n in names)}
    rows: list[dict[str, Any]] = []
    # a scorer that fails before its first save (a plugin returning strings, shape (n, 2), n-1
    # scores) leaves nothing behind; saved scores stay, for --resume
    with removed_on_error(out, keep=scores_path.exists):
        out.mkdir(parents=True, exist_ok=True)
        last_save = time.monotonic()
        # wall and CPU time per scorer (work shared between proxies: the first pays); the CPU time is
        # the process's, so it holds when the process is paused or shares its cores
        seconds, cpu, scored = dict.fromkeys(names, 0.0), dict.fromkeys(names, 0.0), 0
        every = max(1, len(archs) // 10)
        with Progress("scoring", len(archs), enabled=cfg.run.progress) as bar:
            for i, (arch, a) in enumerate(zip(archs, acc), start=1):
                key = str(arch)
                if key in done:
                    rows.append({f: done[key][f] for f in fields})
                else:
                    row = {"index": table.index_of(arch), "arch": key, truth_col: float(a)}
                    for s in chosen:
                        start, start_cpu = time.perf_counter(), time.process_time()
                        row[s.name] = float(ctx.score(s, [arch])[0])
                        seconds[s.name] += time.perf_counter() - start
                        cpu[s.name] += time.process_time() - start_cpu
                    rows.append(row)
                    scored += 1
                    if time.monotonic() - last_save > 20:
                        _write_csv(scores_path, rows, fields)
                        last_save = time.monotonic()
                bar.update(i)
                if i % every == 0 or i == len(archs):
                    bar.line(f"scored {i}/{len(archs)} architectures", i)
    _write_csv(scores_path, rows, fields)
    truth = np.array([float(r[truth_col]) for r in rows])
    reports = {n: rank_report([float(r[n]) for r in rows], truth, args.topk).as_dict() for n in names}
    for n in names:
        values = np.array([float(r[n]) for r in rows])
        finite = values[np.isfinite(values)]
        if finite.size < len(values) or finite.max() == finite.min():
            bad = len(values) - finite.size
            why = f"{bad} of {len(values)} scores are not finite" if bad else f"all {len(values)} scores equal {finite[0]:.6g}"
            print(f"warning: scorer {n!r}: {why}; its tau says nothing about ranking", file=sys.stderr)
    # the times average over the architectures scored in this call (a --resume reuses the others)
    summary = {"table_column": column_name(args.dataset, args.metric, args.epochs), "sample": len(rows), "seed": args.seed,
               "supernet": args.supernet, "checkpoint": ctx.metadata.get("checkpoint"),
               "budget": {k: v for k, v in cfg.to_dict()["score"].items() if k not in ("scorer", "options", "plugins")},
               "scorers": {s.name: s.options() for s in chosen}, "results": reports,
               "seconds_per_arch": {n: seconds[n] / scored for n in names} if scored else None,
               "cpu_seconds_per_arch": {n: cpu[n] / scored for n in names} if scored else None,
               "timed_archs": scored, "threads": torch_threads()}  # fmt: skip
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
    if scored:
        print("seconds per architecture (wall / CPU): " + ", ".join(f"{n} {seconds[n] / scored:.3g} / {cpu[n] / scored:.3g}" for n in names))
    print(f"results in {out}" + ("" if plotted else " (install matplotlib for scatter.png)"))
    return 0
