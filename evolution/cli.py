"""``python tools/evolve.py``: search a trained supernet for the best subnet under any scorer.

Usage::

    python tools/evolve.py --scorer angle+flatness             # the default run's supernet (quickstart)
    python tools/evolve.py --scorer accuracy --supernet runs/nb201-cifar10 --search.options.iterations 20
    python tools/evolve.py --scorer flatness --score.options.sigmas "[1e-3,3e-3,6e-3]"
    python tools/evolve.py --scorer my_score --plugin my_scorers.py
    python tools/evolve.py --scorer synflow                     # zero-cost proxy: no trained supernet needed
    python tools/evolve.py --scorer accuracy --search.algorithm rea --search.options.cycles 500
    python tools/evolve.py --list-scorers
    python tools/evolve.py --resume                             # continue an interrupted search

Every name, option and budget is checked before the supernet or any data is read; a budget no
architecture can meet is reported with the space's achievable range.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from genas.cli import ArgumentParser, add_check, checked, load_plugins, parse_args
from genas.config import Config, load_config

__all__ = ["main", "search_from_config"]


def _parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="evolve.py",
        description="Evolutionary search over subnets of a trained supernet, ranked by a registered scorer.",
        epilog="Config values can be overridden as --section.key value (sections: run, score, search). "
        "Scorer options: --score.options.NAME value (e.g. --score.options.gamma 8). "
        "Algorithm options: --search.options.NAME value (e.g. --search.options.cycles 500 with --search.algorithm rea).",
    )
    p.add_argument("--scorer", default=None, help="scorer expression, e.g. accuracy, angle+flatness, na:accuracy, synflow")
    p.add_argument("--supernet", default=None, metavar="RUN_DIR", help="training run to search (default: the config's run)")
    p.add_argument("--config", default="quickstart", help="YAML file or a name in configs/ (default: quickstart)")
    p.add_argument("--out", default=None, help="output directory (default: RUN_DIR/search-<scorer>-<algorithm>[-<options hash>])")
    p.add_argument("--resume", action="store_true", help="continue the interrupted search in --out")
    p.add_argument("--plugin", action="append", default=[], metavar="FILE_OR_MODULE", help="load scorer plugins")
    p.add_argument("--list-scorers", action="store_true", help="list registered scorers and exit")
    return add_check(p)


def print_scorers() -> None:
    from rich.console import Console
    from rich.table import Table

    from scorers import scorer_table

    table = Table(title="genas scorers (larger score = better unless noted)")
    for col in ("name", "better", "needs", "description"):
        table.add_column(col)
    for row in scorer_table():
        table.add_row(*row)
    Console().print(table)


def search_from_config(cfg: Config, run_dir: Path | None, out: Path, resume: bool = False) -> Any:
    """:func:`evolution.stage.run` (kept for scripts that call it by this name)."""
    from evolution.stage import run

    return run(cfg, run_dir, out, resume)


def main(argv: Sequence[str] | None = None) -> int:
    args, overrides = parse_args(_parser(), argv)
    import evolution  # noqa: F401  (each stage registers its config sections)
    import scorers  # noqa: F401
    import supernet  # noqa: F401
    load_plugins(args.plugin)
    if args.list_scorers:
        print_scorers()
        return 0
    from genas.errors import ConfigError
    from supernet.factory import default_run_name

    if args.scorer is not None:
        overrides.append(("score.scorer", args.scorer))
    cfg = load_config(args.config, overrides)
    if "," in cfg.score.scorer:
        raise ConfigError(f"evolve.py searches with one scorer expression, got {cfg.score.scorer!r}; "
                          "combine scorers with + (e.g. angle+flatness)")  # fmt: skip
    if checked(args, "evolve.py command line and config"):
        return 0
    from evolution.stage import run  # the stage itself: scorer, context, constraint, algorithm, each built once

    run_dir = Path(args.supernet) if args.supernet else Path(cfg.run.root) / default_run_name(cfg)
    where = "--supernet" if args.supernet else f"the default run of config {args.config!r}"
    run(cfg, run_dir, Path(args.out) if args.out else None, resume=args.resume, where=where)
    return 0
