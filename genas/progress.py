"""Progress of long work that reads on a terminal and in a log file alike.

On a terminal (stdout is a TTY) a rich bar shows the live fields; anywhere else (output
redirected to a file, a CI log, ``nohup``) there is no bar, and each finished unit of work (an
epoch, a generation) prints one plain line with the elapsed time and an ETA, flushed at once, so
``tail -f`` shows progress.  Rich bars stay on terminals; ``enabled=False`` silences both.

Example:
    >>> import io
    >>> out = io.StringIO()
    >>> with Progress("train", 4, {"loss": "{:.3f}"}, stream=out) as p:
    ...     p.update(2, loss=0.5)
    ...     p.line("epoch 1/2  loss 0.500", 2)
    >>> out.getvalue().startswith("epoch 1/2  loss 0.500  elapsed 0:00:00  ETA 0:00:00")
    True
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any

__all__ = ["Progress", "format_seconds"]


def format_seconds(seconds: float) -> str:
    """``3725`` -> ``'1:02:05'``."""
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Progress:
    """A rich bar (terminal) or plain lines (log) over ``total`` units.

    Args:
        title: Shown at the left of the bar.
        total: Units of work (steps, candidates) in the whole job.
        fields: Live fields of the bar: name -> format (``{"loss": "{:.4f}"}``).
        enabled: False prints nothing at all.
        stream: Where plain lines go (default ``sys.stdout``); a non-TTY stream means plain mode.
        completed: Units already done (a resumed job), excluded from the ETA's rate.
    """

    def __init__(self, title: str, total: int, fields: dict[str, str] | None = None, *, enabled: bool = True,
                 stream: IO[str] | None = None, completed: int = 0) -> None:  # fmt: skip
        self.title, self.total, self.fields = title, max(int(total), 1), dict(fields or {})
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stdout
        self.interactive = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start_done, self.t0 = completed, time.perf_counter()
        self._bar: Any = None
        self._task: Any = None
        self._values = {k: "-" for k in self.fields}

    def __enter__(self) -> Progress:
        if self.interactive:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            cols = [TextColumn(f"[bold]{self.title}"), BarColumn(), MofNCompleteColumn()]
            cols += [TextColumn(f"{k} {{task.fields[{k}]}}") for k in self.fields]
            cols += [TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]
            self._bar = RichProgress(*cols)
            self._bar.__enter__()
            self._task = self._bar.add_task(self.title, total=self.total, completed=self.start_done, **self._values)
        return self

    def update(self, completed: int, **fields: Any) -> None:
        """Move the bar to ``completed`` units and set live fields (terminal only)."""
        for k, v in fields.items():
            fmt = self.fields.get(k, "{}")
            self._values[k] = "-" if v is None else fmt.format(v)
        if self._bar is not None:
            self._bar.update(self._task, completed=completed, **self._values)

    def eta(self, completed: int) -> float:
        """Seconds left at the rate of this session's work so far."""
        done = completed - self.start_done
        elapsed = time.perf_counter() - self.t0
        return elapsed / done * (self.total - completed) if done > 0 else float("nan")

    def line(self, text: str, completed: int) -> None:
        """One plain line for a finished unit (log mode), with elapsed time and ETA; on a terminal, above the bar."""
        if not self.enabled:
            return
        eta = self.eta(completed)
        tail = f"  elapsed {format_seconds(time.perf_counter() - self.t0)}  ETA {'-' if eta != eta else format_seconds(eta)}"
        if self._bar is not None:
            self._bar.console.print(text + tail, highlight=False)
        else:
            print(text + tail, file=self.stream, flush=True)

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
            self._bar = None
