"""Shared command-line plumbing: one-line errors, overrides, plugins.

Every tool in ``tools/`` is a thin script whose ``main(argv)`` is wrapped by
:func:`run_cli`, which turns user mistakes (:class:`~genas.errors.GenasError`) into a
single ``error: ...`` line on stderr and exit status 2, and Ctrl-C into status 130.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Sequence

from genas.errors import GenasError

__all__ = ["run_cli", "main", "ArgumentParser"]


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a usage mistake as one ``error:`` line (exit 2), like every other user error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def run_cli(main_fn: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Run ``main_fn(argv)`` and map its outcome to an exit status (0 ok, 2 user error, 130 interrupted)."""
    try:
        code = main_fn(argv)
    except GenasError as exc:
        msg = " ".join(str(exc).split("\n"))
        print(f"error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted (resume with --resume)", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `genas list | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return int(code or 0)


def main(argv: Sequence[str] | None = None) -> int:
    """The ``genas`` console entry point: ``genas <tool> [args]`` runs ``tools/<tool>.py``-equivalents."""
    from genas.commands import dispatch  # imported lazily: it pulls in the whole engine

    return dispatch(argv)
