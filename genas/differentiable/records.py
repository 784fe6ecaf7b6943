"""What a differentiable search shows and leaves behind: terminal lines, benchmark columns, the alpha plot, best_arch.json.

* On a terminal, a rich progress bar (epoch, step, loss, ETA) and one summary line per epoch;
  when stdout is not a terminal (a log file, CI), only the summary lines, one per epoch.
* ``alphas.png``: the mean softmax weight of each op over the epochs and, with an NB201 table,
  the benchmark test accuracy of each epoch's derived cell (else the supernet's validation accuracy).
* ``best_arch.json``: the format ``tools/evolve.py`` writes (``arch``, ``genotype`` for DARTS,
  ``score``, ``space``, ``algorithm``, ``params``, ``seed``, ...), so downstream tools read either.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from genas.io import atomic_write_json, atomic_writer

__all__ = ["EpochPrinter", "benchmark_columns", "plot_alphas", "write_best", "BENCH_DATASETS"]

#: Column suffix -> the NB201 table's dataset name (test accuracy, 200 epochs).
BENCH_DATASETS = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet16": "imagenet16"}


def benchmark_columns(table: Any, arch: Any) -> dict[str, float]:
    """``bench_<dataset>``: the table's test accuracy of ``arch`` on each dataset the table holds."""
    if table is None:
        return {}
    out = {}
    for key, dataset in BENCH_DATASETS.items():
        try:
            out[f"bench_{key}"] = round(float(table.accuracy(arch, dataset=dataset)), 4)
        except Exception:  # a table file without that dataset's column
            continue
    return out


class EpochPrinter:
    """Per-epoch summary lines, and a rich bar within epochs when stdout is a terminal.

    Args:
        enabled: Print anything at all.
        bar: Show the rich bar (default: when stdout is a terminal).
    """

    def __init__(self, enabled: bool = True, bar: bool | None = None) -> None:
        self.enabled = enabled
        self.use_bar = enabled and (sys.stdout.isatty() if bar is None else bar)
        self._progress: Any = None

    @contextlib.contextmanager
    def bar(self, epochs: int, steps: int) -> Iterator[_Bar]:
        if not self.use_bar:
            yield _Bar(None, None, steps)
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}/{task.fields[epochs]}"),
            TextColumn("step {task.completed:.0f}/{task.total:.0f}"), BarColumn(),
            TextColumn("loss {task.fields[loss]:.4f}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
        )  # fmt: skip
        with progress:
            self._progress = progress
            task = progress.add_task("search", total=steps, epoch=1, epochs=epochs, loss=float("nan"))
            try:
                yield _Bar(progress, task, steps)
            finally:
                self._progress = None

    def epoch_line(self, row: dict[str, Any], epochs: int, stopped: bool = False) -> None:
        if not self.enabled:
            return
        parts = [f"epoch {row['epoch']}/{epochs}", f"train {row['train_loss']:.4f}/{row['train_acc']:.3f}",
                 f"valid {row['valid_loss']:.4f}/{row['valid_acc']:.3f}"]  # fmt: skip
        parts += [f"{k} {v}" for k, v in row.items() if k.startswith("skips")]
        parts += [f"{k[6:]} {v:.2f}" for k, v in row.items() if k.startswith("bench_")]
        line = "  ".join(parts) + f"  {row['arch']}" + ("  (early stop)" if stopped else "")
        if self._progress is not None:
            self._progress.console.print(line, highlight=False, soft_wrap=True)
        else:
            print(line, flush=True)


class _Bar:
    def __init__(self, progress: Any, task: Any, steps: int) -> None:
        self.progress, self.task, self.steps = progress, task, steps

    def start_epoch(self, epoch: int) -> None:
        if self.progress is not None:
            self.progress.reset(self.task, total=self.steps, epoch=epoch + 1)

    def update(self, step: int, loss: float) -> None:
        if self.progress is not None and (step % 5 == 0 or step == self.steps):
            self.progress.update(self.task, completed=step, loss=loss)


def plot_alphas(history: list[dict[str, Any]], path: Path, selected_epoch: int | None = None) -> bool:
    """Draw ``alphas.png`` from the metrics rows; False (nothing written) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    epochs = [r["epoch"] for r in history]
    weight_keys = [k for k in history[0] if "w_" in k and not k.startswith("bench")]
    bench_keys = [k for k in history[0] if k.startswith("bench_")]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 7), sharex=True)
    for key in weight_keys:
        group, _, op = key.partition("w_")
        top.plot(epochs, [r[key] for r in history], "--" if group.startswith("reduce") else "-", label=f"{group}{op}")
    top.set_ylabel("mean softmax weight")
    top.legend(fontsize=7, ncol=2)
    lower = bench_keys or ["valid_acc"]
    for key in lower:
        scale = 1.0 if key.startswith("bench_") else 100.0
        bottom.plot(epochs, [r[key] * scale for r in history], marker=".", label=key.replace("bench_", "NB201 "))
    bottom.set_ylabel("test accuracy of the derived cell (%)" if bench_keys else "supernet validation accuracy (%)")
    bottom.set_xlabel("epoch")
    bottom.legend(fontsize=7)
    if selected_epoch is not None:
        for ax in (top, bottom):
            ax.axvline(selected_epoch, color="grey", lw=0.8, ls=":")
    fig.tight_layout()
    with atomic_writer(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=110)
    plt.close(fig)
    return True


def write_best(path: Path, *, arch: Any, row: dict[str, Any], space: str, architect: Any, settings: dict[str, Any],
               seed: int, epochs_run: int, metadata: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """Write ``best_arch.json`` in the search runner's format; return what was written.

    ``score`` is minus the validation loss of the reported epoch (larger = better, as the
    ``loss`` scorer), ``generation`` that epoch.
    """
    core: dict[str, Any] = {"arch": str(arch)}
    if arch.to_json() != str(arch):
        core["genotype"] = arch.to_json()
    core.update(score=-row["valid_loss"], generation=row["epoch"], index=row["epoch"] - 1, space=space,
                algorithm=f"differentiable-{architect.name}", params={**architect.options(), **settings}, seed=seed,
                num_scored=epochs_run, generations=epochs_run)  # fmt: skip
    bench = {k[6:]: v for k, v in row.items() if k.startswith("bench_")}
    payload = {**metadata, "valid_loss": row["valid_loss"], "valid_acc": row["valid_acc"],
               **({"nb201_test_accuracy": bench} if bench else {}), **core}  # fmt: skip
    atomic_write_json(path, payload)
    return payload
