"""Run directories, environment records, metrics and atomic checkpoints.

A run directory holds::

    config.yaml        the resolved config
    env.json           package versions, seed, git revision, command line, host
    metrics.csv        one row per epoch (rewritten atomically)
    checkpoints/       init.pt (step 0), epoch_0005.pt etc. every N epochs, last.pt

Every file is written through :mod:`genas.io`, so an interrupted run leaves either the
previous version of a file or the new one, never half of it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from genas.config import Config, dump_config, yaml_load
from genas.errors import CheckpointError, ConfigError, NotTrainedError
from genas.io import atomic_torch_save, atomic_write_json, atomic_write_text, check_writable_dir, read_torch_file

if TYPE_CHECKING:
    import torch

_CONFIG_CACHE: dict[tuple[str, int, int, int], dict[str, Any]] = {}  # Run.read_config's parse, keyed by file version

__all__ = ["Run", "environment_record", "git_revision", "save_checkpoint", "load_checkpoint", "check_position",
           "resume_error", "CHECKPOINT_FORMAT"]  # fmt: skip

CHECKPOINT_FORMAT = "genas.supernet/1"
REPO_ROOT = Path(__file__).resolve().parent.parent


def git_revision(path: Path = REPO_ROOT) -> str | None:
    """The git commit of the genas checkout (with ``+dirty`` when modified), or None."""
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, timeout=5)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "-uno"], cwd=path, capture_output=True, text=True, timeout=5)
        return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def environment_record(seed: int | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Versions, hardware and invocation, for ``env.json``."""
    import numpy
    import torch

    import genas

    versions = {"genas": genas.__version__, "python": platform.python_version(), "torch": torch.__version__,
                "numpy": numpy.__version__}  # fmt: skip
    for mod in ("torchvision", "scipy", "sklearn", "yaml", "rich"):
        try:
            versions[mod] = __import__(mod).__version__
        except (ImportError, AttributeError):
            pass
    rec = {
        "versions": versions,
        "seed": seed,
        "git_revision": git_revision(),
        "command": [sys.executable, *sys.argv],
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "cpu_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "world_size": int(os.environ.get("WORLD_SIZE", "1")),
        "nodes": int(os.environ.get("GROUP_WORLD_SIZE", "1")),  # torchrun's agents (one per node)
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    rec.update(extra or {})
    return rec


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write a supernet checkpoint atomically, stamped with :data:`CHECKPOINT_FORMAT`."""
    atomic_torch_save({"format": CHECKPOINT_FORMAT, **state}, path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`, or raise :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise NotTrainedError(f"no checkpoint at {path}; train a supernet first with `python tools/train_supernet.py`")
    state = read_torch_file(path, "checkpoint", (CHECKPOINT_FORMAT,), map_location)
    if state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a genas supernet checkpoint (expected format {CHECKPOINT_FORMAT!r})")
    return state


def check_position(state: dict[str, Any], path: str | Path, steps_per_epoch: int | None = None) -> None:
    """Raise :class:`CheckpointError` unless a trainer checkpoint's position can be resumed from.

    ``epoch`` (and ``step`` / ``global_step`` where present) must be counts, ``step`` at most the
    ``steps_per_epoch`` of this config's epochs (another ``data.batch_size`` or ``data.limit`` changes that), and
    ``history`` one metrics row per finished epoch.  Run before anything is written: a checkpoint
    that would fail later (``epoch="one"``) is refused in one line with the disk as it was.
    """
    for key in ("epoch", "step", "global_step"):
        if key == "epoch" or key in state:
            value = state.get(key)
            if type(value) is not int or value < 0:
                raise CheckpointError(f"cannot resume from {path}: its {key} is {value!r}, not a count; the checkpoint "
                                      "is damaged (copy a periodic checkpoint such as checkpoints/epoch_0005.pt over "
                                      "last.pt, or start anew)")  # fmt: skip
    step = state.get("step", 0)  # == steps_per_epoch: the epoch's steps done, its end not yet recorded (--max-steps)
    if steps_per_epoch is not None and step > steps_per_epoch:
        raise CheckpointError(f"cannot resume from {path}: it stopped at step {step} of an epoch, but this config's "
                              f"epochs have {steps_per_epoch} steps; resume with the run's data.batch_size and data.limit")  # fmt: skip
    history = state.get("history", [])
    if not isinstance(history, list) or not all(isinstance(row, dict) for row in history) or len(history) != state["epoch"]:
        raise CheckpointError(f"cannot resume from {path}: its metrics history does not hold one row per finished epoch "
                              f"({state['epoch']}); the checkpoint is damaged")  # fmt: skip


def resume_error(path: str | Path, exc: BaseException) -> CheckpointError:
    """The one-line :class:`CheckpointError` for a checkpoint that fails to load into a trainer.

    ``load_state_dict`` messages span lines ("Error(s) in loading state_dict for X:" then the
    parameter); the first two are kept, on one line.
    """
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    what = " ".join(lines[:2]) if lines and lines[0].endswith(":") else (lines[0] if lines else type(exc).__name__)
    if len(what) > 300:
        what = what[:297] + "..."
    return CheckpointError(f"cannot resume from {path}: {what}; the checkpoint does not fit this run "
                           "(damaged, or from another config)")


class Run:
    """A run directory (created, or reopened for ``--resume``)."""

    #: The files every run may hold; each must be a plain file when it exists (a resume reads or replaces them).
    FILES = ("config.yaml", "env.json", "metrics.csv", "DONE", "checkpoints/init.pt", "checkpoints/last.pt")

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.ckpt_dir = self.path / "checkpoints"

    @classmethod
    def create(cls, root: str | Path, name: str, cfg: Config | None = None, resume: bool = False,
               overwrite: bool = False, outputs: tuple[str, ...] = ()) -> Run:  # fmt: skip
        """Check ``root/name`` for a new run (error if one exists, unless ``overwrite``) or one to resume.

        Nothing is written here: :meth:`prepare` makes the directory once every other check passed,
        so a command refused at start leaves nothing behind.  ``outputs`` names the command's own
        result files (``best_arch.json``, ``model.pt``), checked like :attr:`FILES`.
        """
        run = cls(Path(root) / name)
        if len(run.path.name.encode()) > 255:
            raise ConfigError(f"run name {run.path.name[:40]!r}... is {len(run.path.name.encode())} bytes; "
                              "file systems allow 255: choose a shorter --run.name")  # fmt: skip
        started = (run.path / "config.yaml").exists()  # a start that wrote its config (checkpoints or not)
        if resume and not started:
            raise NotTrainedError(f"nothing to resume: {run.path} holds no run (start it without --resume)")
        if started and not resume and not overwrite:
            raise ConfigError(f"{run.path} already holds a run; continue it with --resume, "
                              "start another with --run.name NAME, or replace it with --run.overwrite true")  # fmt: skip
        run.check_writable()
        run.check_files(outputs)
        return run

    def check_files(self, outputs: tuple[str, ...] = ()) -> None:
        """Raise :class:`CheckpointError` when something that is not a plain file stands where the run writes one.

        A directory at ``checkpoints/last.pt`` would otherwise be taken for "no checkpoint" (the
        run restarted from epoch 1) and fail at the first save, after the run's records changed.
        """
        if self.ckpt_dir.exists() and not self.ckpt_dir.is_dir():
            raise CheckpointError(f"{self.ckpt_dir} is not a directory; the run directory is damaged: move it away "
                                  "(or start another run with --run.name NAME)")  # fmt: skip
        for rel in (*self.FILES, *outputs):
            p = self.path / rel
            if (p.exists() or p.is_symlink()) and not p.is_file():
                what = "a directory" if p.is_dir() else "not a regular file"
                raise CheckpointError(f"{p} is {what}, not a file the run can read or replace; the run directory is "
                                      f"damaged: move {rel} away (or start another run with --run.name NAME)")  # fmt: skip

    def check_writable(self) -> None:
        """Raise :class:`ConfigError` unless the run directory can be created and written (writes nothing)."""
        check_writable_dir(self.path, "--run.root or --run.name")

    def prepare(self, fresh: bool = False) -> Run:
        """Make the directory (``fresh``: empty an old run first) and remove leftovers of interrupted writes."""
        try:
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"run directory {self.path} is not writable ({exc.strerror}); choose another with --run.root") from exc
        if fresh:
            for f in self.ckpt_dir.glob("*.pt"):
                f.unlink()
            for name_ in ("metrics.csv", "env.json", "DONE", "config.yaml", "data_files.csv"):
                (self.path / name_).unlink(missing_ok=True)
        for leftover in [*self.path.glob(".*.tmp"), *self.ckpt_dir.glob(".*.tmp")]:  # a kill -9 mid-write
            leftover.unlink(missing_ok=True)
        return self

    def latest(self) -> str | None:
        """The checkpoint a resume continues from: ``last``, else ``init`` (killed in epoch 1), else None."""
        for which in ("last", "init"):
            if self.checkpoint_path(which).is_file():
                return which
        return None

    # ---- records ---------------------------------------------------------------------
    def write_config(self, cfg: Config) -> None:
        atomic_write_text(self.path / "config.yaml", dump_config(cfg))

    def read_config(self) -> dict[str, Any]:
        """The run's ``config.yaml`` as a dict (parsed once per file version; each call gets its own copy)."""
        import copy

        p = self.path / "config.yaml"
        if not p.is_file():
            raise NotTrainedError(f"{self.path} holds no run (no config.yaml); check the path, or start the run without --resume")
        stat = p.stat()
        key = (str(p.resolve()), stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if key not in _CONFIG_CACHE:
            try:
                data = yaml_load(p.read_text(encoding="utf-8")) or {}
            except (UnicodeDecodeError, yaml.YAMLError) as exc:
                raise CheckpointError(f"{p} is not a readable config ({type(exc).__name__}); the run directory is damaged") from None
            if not isinstance(data, dict):
                raise CheckpointError(f"{p} does not hold a config mapping; the run directory is damaged")
            _CONFIG_CACHE.clear()  # one entry: the run a process works on
            _CONFIG_CACHE[key] = data
        return copy.deepcopy(_CONFIG_CACHE[key])

    def write_env(self, seed: int, extra: dict[str, Any] | None = None) -> None:
        env_path = self.path / "env.json"
        record = environment_record(seed, extra)
        if env_path.exists():  # keep the first start, record each resume
            old = json.loads(env_path.read_text())
            old.setdefault("resumed", []).append(record)
            record = old
        atomic_write_json(env_path, record)

    def read_metrics(self) -> list[dict[str, str]]:
        p = self.path / "metrics.csv"
        if not p.exists():
            return []
        with p.open(newline="") as fh:
            return list(csv.DictReader(fh))

    def write_metrics(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        buf = io.StringIO()
        fields = list(dict.fromkeys(k for row in rows for k in row))  # a resumed older run's rows may lack a new column
        writer = csv.DictWriter(buf, fieldnames=fields, restval="")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.path / "metrics.csv", buf.getvalue())

    def sync_metrics(self, rows: list[dict[str, Any]]) -> None:
        """Make ``metrics.csv`` hold exactly ``rows`` (a resumed checkpoint's history), removing it when empty.

        A kill between a checkpoint and the metrics written after it leaves the file a row short;
        rows beyond the checkpoint (an older writer's order) are dropped: the file agrees with what
        the resumed run continues from.
        """
        if rows:
            self.write_metrics(rows)
        else:
            (self.path / "metrics.csv").unlink(missing_ok=True)

    # ---- checkpoints -----------------------------------------------------------------
    def checkpoint_path(self, which: str) -> Path:
        """``init``, ``last``, ``epoch_0005`` or a path."""
        if which.endswith(".pt") or os.sep in which:
            return Path(which)
        return self.ckpt_dir / f"{which}.pt"

    def save(self, which: str, state: dict[str, Any]) -> Path:
        path = self.checkpoint_path(which)
        save_checkpoint(path, state)
        return path

    def load(self, which: str = "last", map_location: str | torch.device = "cpu") -> dict[str, Any]:
        return load_checkpoint(self.checkpoint_path(which), map_location)

    def mark_done(self, info: dict[str, Any]) -> None:
        atomic_write_json(self.path / "DONE", info)

    @property
    def done(self) -> bool:
        return (self.path / "DONE").exists()
