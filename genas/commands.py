"""The ``genas`` console command: one entry point for every tool.

    genas train ...        = python tools/train_supernet.py ...
    genas evolve ...       = python tools/evolve.py ...
    genas search-darts ... = python tools/search_darts.py ...
    genas rank-nb201 ...   = python tools/rank_nb201.py ...
    genas landscape ...    = python tools/landscape.py ...
    genas scorers          = python tools/evolve.py --list-scorers
    genas retrain ...      = python tools/retrain.py ...
    genas export ...       = python tools/export.py ...
    genas launch ...       = torchrun ... (one-line errors; genas/launch.py)
    genas --version        the installed genas version

Each command's module is imported only when that command runs, so ``genas --help`` and
``genas --version`` import no torch.
"""

from __future__ import annotations

import importlib
import sys
from typing import Sequence

from genas.cli import run_cli

__all__ = ["COMMANDS", "dispatch", "main"]

COMMANDS = {
    "train": ("supernet.cli", "train a weight-sharing supernet (SPOS)"),
    "evolve": ("evolution.cli", "search a trained supernet with a scorer"),
    "search-darts": ("genas.differentiable.cli", "differentiable search (DARTS, DARTS 2nd order, A2M)"),
    "rank-nb201": ("genas.analysis.rank_cli", "Kendall tau of scorers against NAS-Bench-201"),
    "landscape": ("genas.analysis.landscape.cli", "neighbourhoods, paths and barriers on the NB201 table"),
    "scorers": ("evolution.cli", "list registered scorers"),
    "retrain": ("genas.export.retrain_cli", "train a found architecture as a standalone network"),
    "export": ("genas.export.cli", "write a found network as ONNX / TorchScript / a network checkpoint"),
    "launch": ("genas.launch", "torchrun (its own arguments) with one-line errors for a failed rendezvous or worker"),
}


def _usage() -> str:
    lines = ["usage: genas <command> [options]", "", "commands:"]
    lines += [f"  {name:<12} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "`genas <command> --help` shows a command's options; `genas --version` the version."]
    return "\n".join(lines)


def dispatch(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if args[0] in ("-V", "--version"):
        from genas import __version__

        print(f"genas {__version__}")
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        from genas.registry import suggest

        print(f"error: unknown command {name!r}.{suggest(name, list(COMMANDS))} Commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    if name == "scorers":
        rest = ["--list-scorers", *rest]
    module = importlib.import_module(COMMANDS[name][0])
    return run_cli(module.main, rest)


def main(argv: Sequence[str] | None = None) -> int:
    """The ``genas`` console entry point."""
    return dispatch(argv)
