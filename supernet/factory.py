"""From a config (or a finished run) to data, a supernet and its checkpointed weights.

These are the front doors downstream tools use: ``evolve``, ``rank_nb201`` and the
scorers never rebuild a supernet by hand, they call :func:`load_trained`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from genas.config import Config, load_config
from supernet.config import SupernetConfig
from genas.data import DataBundle, build_data
from genas.errors import CheckpointError, NotTrainedError
from genas.runs import Run
from supernet.registry import create_supernet
from supernet.base import Supernet

__all__ = ["build_data", "build_supernet", "TrainedSupernet", "load_trained", "default_run_name", "run_kind", "RUN_KINDS"]

#: What made a directory (:func:`run_kind`), as messages name it.
RUN_KINDS = {
    "train": "a supernet training run (tools/train_supernet.py)",
    "differentiable": "a differentiable search run (tools/search_darts.py)",
    "retrain": "a retrain run (tools/retrain.py)",
    "search": "the output folder of an evolution search (tools/evolve.py)",
}


def default_run_name(cfg: Config) -> str:
    """``run.name`` or ``<space>-<dataset>`` (e.g. ``nb201-digits``)."""
    return cfg.run.name or f"{cfg.supernet.space}-{cfg.data.dataset}"


def run_kind(path: str | Path) -> str | None:
    """Which command made the directory at ``path``: a key of :data:`RUN_KINDS`, or None (cannot tell).

    A config holds every section its process had registered, so the sections alone do not tell: a
    retrain run is the one whose ``model.arch`` is set (retraining writes the resolved architecture
    first); a differentiable search's ``metrics.csv`` has ``valid_loss`` and ``arch`` columns, a
    supernet training run's ``images_per_s`` (and it saves ``checkpoints/init.pt`` at step 0); before
    either, a config with only one of the ``differentiable`` / ``train`` sections tells. An evolution
    search's folder has no config but its ``search_state.json`` / ``history.jsonl``. Reads the config
    and one line of ``metrics.csv``; writes nothing.
    """
    path = Path(path)
    if not (path / "config.yaml").is_file():
        return "search" if any((path / f).is_file() for f in ("search_state.json", "history.jsonl")) else None
    try:
        sections = Run(path).read_config()
    except (NotTrainedError, CheckpointError):
        return None
    model = sections.get("model")
    if isinstance(model, dict) and model.get("arch") is not None and "retrain" in sections:
        return "retrain"
    try:
        with open(path / "metrics.csv", encoding="utf-8") as fh:
            columns = fh.readline().strip().split(",")
    except (OSError, UnicodeDecodeError):
        columns = []
    if "valid_loss" in columns and "arch" in columns:
        return "differentiable"
    if "images_per_s" in columns or (path / "checkpoints" / "init.pt").is_file():
        return "train"
    found = [kind for kind in ("differentiable", "train") if kind in sections]
    return found[0] if len(found) == 1 else None


def supernet_kwargs(cfg: SupernetConfig, bundle: DataBundle) -> dict[str, Any]:
    """The geometry record every supernet is built from: the ``supernet`` section on ``bundle``'s images."""
    return dict(num_classes=bundle.num_classes, in_chans=bundle.channels, **cfg.options)


def build_supernet(cfg: SupernetConfig, bundle: DataBundle, device: torch.device | str = "cpu") -> Supernet:
    """A freshly initialised supernet for ``cfg`` on ``bundle``'s images."""
    return create_supernet(cfg.space, device=device, **supernet_kwargs(cfg, bundle))


@dataclass
class TrainedSupernet:
    """A supernet with weights from a run, plus what scoring needs alongside it."""

    model: Supernet
    config: Config
    run: Run
    checkpoint: Path
    init_state: dict[str, torch.Tensor] | None  # weights at step 0 (angle scorer), if saved
    input_shape: tuple[int, int, int] | None = None  # (channels, height, width) of the images it trained on


def load_trained(
    run_path: str | Path, which: str = "last", device: torch.device | str = "cpu", with_init: bool = True
) -> TrainedSupernet:
    """Rebuild the supernet of a training run and load checkpoint ``which`` (``last``, ``init``, ``epoch_0010``).

    Raises:
        NotTrainedError: No run or checkpoint there (the message says which command makes it).
        CheckpointError: The checkpoint is corrupt or does not match the run's config.
    """
    run = Run(run_path)
    if not run.path.is_dir():
        raise NotTrainedError(f"no supernet run at {run.path}; train one with `python tools/train_supernet.py` "
                              "(or point --supernet at a run directory)")  # fmt: skip
    kind = run_kind(run.path)
    if kind in ("retrain", "differentiable"):  # else a checkpoint of another format, or "space None"
        made = run.path / ("model.pt" if kind == "retrain" else "best_arch.json")
        raise NotTrainedError(f"{run.path} is {RUN_KINDS[kind]}, not a supernet training run (it made {made}); "
                              "a trained supernet is the run directory of tools/train_supernet.py")  # fmt: skip
    cfg = load_config(None, base=run.read_config(), only=("run", "data", "supernet", "train"))
    state = run.load(which, map_location="cpu")
    hp = dict(state.get("hparams", {}))
    space = hp.pop("space", None)
    if space != cfg.supernet.space:
        raise CheckpointError(f"checkpoint {run.checkpoint_path(which)} is for space {space!r}, the run's config says {cfg.supernet.space!r}")
    model = create_supernet(space, device=device, **hp)
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError) as exc:
        raise CheckpointError(f"checkpoint {run.checkpoint_path(which)} does not fit the supernet: {str(exc).splitlines()[0]}") from exc
    init_state = None
    if with_init and run.checkpoint_path("init").is_file():
        init_state = run.load("init", map_location="cpu")["model"]
    model.eval()
    shape = tuple(state["input_shape"]) if state.get("input_shape") else None
    return TrainedSupernet(model, cfg, run, run.checkpoint_path(which), init_state, shape)
