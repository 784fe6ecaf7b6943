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
from genas.io import atomic_torch_save, atomic_write_json, atomic_write_text, check_writable_dir

if TYPE_CHECKING:
    import torch

__all__ = ["Run", "environment_record", "git_revision", "save_checkpoint", "load_checkpoint", "CHECKPOINT_FORMAT"]

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
    import torch

    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # truncated or not a torch file
        raise CheckpointError(f"checkpoint {path} is corrupt or unreadable ({type(exc).__name__}: {str(exc)[:120]})") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a genas supernet checkpoint (expected format {CHECKPOINT_FORMAT!r})")
    return state


class Run:
    """A run directory (created, or reopened for ``--resume``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.ckpt_dir = self.path / "checkpoints"

    @classmethod
    def create(cls, root: str | Path, name: str, cfg: Config | None = None, resume: bool = False,
               overwrite: bool = False) -> Run:  # fmt: skip
        """Check ``root/name`` for a new run (error if one exists, unless ``overwrite``) or one to resume.

        Nothing is written here: :meth:`prepare` makes the directory once every other check passed,
        so a command refused at start leaves nothing behind.
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
        return run

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
            for name_ in ("metrics.csv", "env.json", "DONE", "config.yaml"):
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
        p = self.path / "config.yaml"
        if not p.is_file():
            raise NotTrainedError(f"{self.path} holds no run (no config.yaml); check the path, or start the run without --resume")
        try:
            data = yaml_load(p.read_text(encoding="utf-8")) or {}
        except (UnicodeDecodeError, yaml.YAMLError) as exc:
            raise CheckpointError(f"{p} is not a readable config ({type(exc).__name__}); the run directory is damaged") from None
        if not isinstance(data, dict):
            raise CheckpointError(f"{p} does not hold a config mapping; the run directory is damaged")
        return data

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
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.path / "metrics.csv", buf.getvalue())

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
