"""``python tools/search_darts.py``: differentiable architecture search (DARTS, DARTS 2nd order, A2M).

Usage::

    python tools/search_darts.py                                    # quickstart: NB201 on digits, a2m, minutes
    python tools/search_darts.py --architect darts                  # first-order DARTS instead
    python tools/search_darts.py --config a2m_nb201 --data.options.root /data/cifar10 --table nb201_accuracy.csv
    python tools/search_darts.py --config a2m_darts --data.options.root /data/cifar10
    python tools/search_darts.py --differentiable.architect_options.rho 0.1 --differentiable.epochs 10
    python tools/search_darts.py --resume                           # continue the run the config names
    python tools/search_darts.py --resume auto --run.checkpoint_steps 20   # continue it if it exists, else start
    python tools/search_darts.py --list-architects

Every option is a config key (``--differentiable.KEY``, ``--supernet.KEY``, ``--data.KEY``,
``--run.KEY``); ``--architect`` and ``--table`` are short for ``--differentiable.architect`` /
``--differentiable.table``.  Everything is checked before anything is written.
"""

from __future__ import annotations

from typing import Any, Sequence

from genas.cli import ArgumentParser, add_run_arguments, config_or_done, load_plugins, parse_args
from genas.config import Config

__all__ = ["main", "search_from_config"]


def _parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="search_darts.py",
        description="Differentiable architecture search on a mixed-op supernet with a pluggable architect.",
        epilog="Any config value can be overridden as --section.key value (sections: run, data, supernet, "
        "differentiable), e.g. --differentiable.architect_options.rho 0.1.",
    )
    p.add_argument("--architect", default=None, help="darts | darts2 | a2m (= --differentiable.architect)")
    p.add_argument("--variant", default=None, metavar="NAMES",
                   help="DARTS variants, comma-separated: beta, sdarts-rs, pc, darts-minus, na (= --variants.use)")
    p.add_argument("--table", default=None, help="NAS-Bench-201 table for per-epoch benchmark accuracy (NB201 only)")
    p.add_argument("--list-architects", action="store_true", help="list registered architects and exit")
    p.add_argument("--list-variants", action="store_true", help="list registered variants and exit")
    return add_run_arguments(p, "a2m_quickstart", stop="--max-epochs", plugins="architects, ...")


def search_from_config(cfg: Config, resume_dir: str | None = None, max_epochs: int | None = None,
                       variants: Any = None) -> Any:  # fmt: skip
    """:func:`genas.differentiable.stage.run` (kept for scripts that call it by this name)."""
    from genas.differentiable.stage import run

    return run(cfg, resume_dir, max_epochs, variants)


def print_registry(kind: str) -> None:
    """The registered architects or variants as a table (``--list-architects`` / ``--list-variants``)."""
    from rich.console import Console
    from rich.table import Table

    from genas.differentiable.architects import ARCHITECTS, architect_options
    from genas.differentiable.variants import VARIANTS, variant_options

    registry, options, flag = ((ARCHITECTS, architect_options, "--architect NAME") if kind == "architects"
                               else (VARIANTS, variant_options, "--variant NAME,NAME"))  # fmt: skip
    table = Table(title=f"genas {kind} ({flag})")
    for col in ("name", "options", "description"):
        table.add_column(col)
    for entry in registry.entries():
        table.add_row(entry.name, ", ".join(options(entry.name)) or "-", entry.description)
    Console().print(table)


def main(argv: Sequence[str] | None = None) -> int:
    args, overrides = parse_args(_parser(), argv)
    import genas.differentiable  # noqa: F401  (registers the differentiable section and the architects)
    import supernet  # noqa: F401  (registers the supernet section)

    load_plugins(args.plugin)
    if args.list_architects or args.list_variants:
        print_registry("architects" if args.list_architects else "variants")
        return 0
    if args.variant is not None:
        overrides.append(("variants.use", args.variant))
    if args.architect is not None:
        overrides.append(("differentiable.architect", args.architect))
    if args.table is not None:
        overrides.append(("differentiable.table", args.table))
    from genas.differentiable.stage import default_run_name, run

    cfg = config_or_done(args, overrides, default_run_name, "search_darts.py")
    if cfg is not None:
        run(cfg, args.resume, args.max_epochs)
    return 0
