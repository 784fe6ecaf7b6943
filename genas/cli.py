"""Shared command-line plumbing: the prologue every command starts with, one-line errors.

Every tool in ``tools/`` is a thin script whose ``main(argv)`` is wrapped by :func:`run_cli`,
which turns user mistakes (:class:`~genas.errors.GenasError`) into a single ``error: ...`` line
on stderr and exit status 2, and Ctrl-C into status 130.  Each ``main`` starts with the same
prologue, so a command keeps only what is its own:

    args, overrides = parse_args(parser, argv)        # --section.key value split off; no torch yet
    load_plugins(args.plugin)                           # files or modules that register names
    cfg = load_config(args.config, overrides, base)     # every section checked, before any work
    rt = start_runtime(cfg)                             # threads, device and rank (LOCAL_RANK), DDP

:func:`parse_args` builds nothing heavy, so ``--help`` answers without importing torch.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from genas.errors import GenasError

__all__ = ["run_cli", "ArgumentParser", "parse_args", "load_plugins", "start_runtime", "Runtime", "add_check", "checked",
           "run_config", "add_run_arguments", "config_or_done"]

CHECK_HELP = ("check the command line, the config and every name and option in it (and an architecture "
              "given on the command line), then exit without reading data or writing anything")  # fmt: skip


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a usage mistake as one ``error:`` line (exit 2), like every other user error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _one_line_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001
    """genas's own warnings as one ``warning:`` line (others keep Python's format)."""
    from genas.errors import GenasDeprecationWarning, GenasWarning

    if issubclass(category, (GenasDeprecationWarning, GenasWarning)):
        return f"warning: {message}\n"
    return _PYTHON_FORMAT(message, category, filename, lineno, line)


_PYTHON_FORMAT = warnings.formatwarning


def run_cli(main_fn: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Run ``main_fn(argv)`` and map its outcome to an exit status (0 ok, 2 user error, 130 interrupted)."""
    warnings.formatwarning = _one_line_warning
    try:
        code = main_fn(argv)
    except GenasError as exc:
        msg = " ".join(str(exc).split("\n"))
        print(f"error: {msg}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted (resume with --resume)", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `genas list | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return int(code or 0)


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[tuple[str, str]]]:
    """Split ``--section.key value`` overrides off ``argv`` (default ``sys.argv[1:]``) and parse the rest."""
    from genas.parsing import split_overrides

    rest, overrides = split_overrides(list(sys.argv[1:] if argv is None else argv))
    return parser.parse_args(rest), overrides


def load_plugins(specs: Sequence[str]) -> None:
    """Import every plugin (``--plugin FILE_OR_MODULE``, ``score.plugins``); each registers its own names."""
    from genas.plugins import import_plugin

    for spec in specs:
        import_plugin(spec)


@dataclass(frozen=True)
class Runtime:
    """Where a command runs: the torch device and this process's rank (``genas.distributed.DistInfo``)."""

    device: Any
    dist: Any

    @property
    def is_main(self) -> bool:
        return self.dist.is_main


def start_runtime(cfg: Any) -> Runtime:
    """Apply ``run.threads``, resolve ``run.device`` for this rank and join the process group under torchrun."""
    from genas.distributed import check_same_on_all_ranks, init_distributed, resolve_device, set_threads

    set_threads(cfg.run.threads)
    device = resolve_device(cfg.run.device)
    info = init_distributed(device)
    if info.distributed:
        check_same_on_all_ranks(cfg.to_dict())  # before anything is read or written
    return Runtime(device, info)


def add_check(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Give a command the ``--check`` flag (the docs' commands are tested with it, so they cannot rot)."""
    parser.add_argument("--check", action="store_true", help=CHECK_HELP)
    return parser


def add_run_arguments(parser: argparse.ArgumentParser, default_config: str, stop: str = "--max-steps",
                      plugins: str = "datasets, ...") -> argparse.ArgumentParser:
    """The options of a command that owns a run directory: ``--config``, ``--resume``, a stop
    (``--max-steps`` / ``--max-epochs``), ``--plugin``, ``--print-config`` and ``--check``."""
    unit = stop.rsplit("-", 1)[-1]
    parser.add_argument("--config", default=default_config, help=f"YAML file or a name in configs/ (default: {default_config})")
    parser.add_argument("--resume", nargs="?", const="", default=None, metavar="RUN_DIR",
                        help="continue an interrupted run (the config's run, or RUN_DIR); 'auto': continue the "
                        "config's run if it exists, else start it (the default under torchrun --max-restarts)")  # fmt: skip
    parser.add_argument(stop, type=int, default=None, help=f"stop after this many {unit} (resume later)")
    parser.add_argument("--plugin", action="append", default=[], metavar="FILE_OR_MODULE", help=f"load plugins ({plugins})")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    return add_check(parser)


def checked(args: argparse.Namespace, what: str) -> bool:
    """True (after saying so) when ``--check`` was given: the command stops before any work."""
    if getattr(args, "check", False):
        print(f"ok: {what}")
        return True
    return False


RESUME_AUTO = "auto"  # --resume auto: continue the config's run when it exists, else start it


def run_config(args: argparse.Namespace, overrides: list, run_name: Callable[[Any], str]) -> Any:
    """The config of a command that owns a run directory: ``--config`` + overrides, or on ``--resume``
    the run's own ``config.yaml`` + overrides (``args.resume`` is then set to the run directory;
    a bare ``--resume`` names the run the config would create, ``run_name(cfg)`` under ``run.root``).

    ``--resume auto`` — also what a start without ``--resume`` means under ``torchrun --max-restarts N``
    (:func:`genas.distributed.elastic_restarts`), so that a restarted worker group continues instead
    of refusing the run its predecessor left — resumes the config's run when it has started (its
    ``config.yaml`` exists) and otherwise starts it (``args.resume`` becomes None).  Its
    ``run.overwrite true`` replaces an existing run on the first start only, never on a restart.
    """
    from pathlib import Path

    from genas.config import load_config
    from genas.distributed import elastic_restarts
    from genas.runs import Run

    restarts = elastic_restarts()
    if args.resume is None and restarts.enabled:
        args.resume = RESUME_AUTO
    if args.resume is None:
        return load_config(args.config, overrides)
    if args.resume in ("", RESUME_AUTO):
        probe = load_config(args.config, overrides)
        path = Path(probe.run.root) / run_name(probe)
        if args.resume == RESUME_AUTO and (not (path / "config.yaml").exists() or (probe.run.overwrite and restarts.count == 0)):
            args.resume = None  # nothing to continue (or replaced on purpose): a plain start
            return probe
        args.resume = str(path)
    return load_config(None, overrides, base=Run(args.resume).read_config())


def config_or_done(args: argparse.Namespace, overrides: list, run_name: Callable[[Any], str], tool: str) -> Any:
    """:func:`run_config`, after the two flags that end a run command early: ``--check`` (the
    config is loaded and checked, nothing else) and ``--print-config``. None when the command is done."""
    from genas.config import dump_config, load_config

    if args.check:
        load_config(args.config, overrides)
        checked(args, f"{tool} command line and config")
        return None
    cfg = run_config(args, overrides, run_name)
    if args.print_config:
        print(dump_config(cfg), end="")
        return None
    return cfg
