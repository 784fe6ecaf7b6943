"""Reading a network checkpoint's record: the file format below every other export module.

:mod:`genas.export.arch` reads an architecture from a network file through :func:`read_record`, and
:mod:`genas.export.checkpoint` builds on it (hyperparameters checked against the network registry,
the network rebuilt), so that no import runs in a circle (arch -> checkpoint -> registry -> arch).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from genas.errors import CheckpointError
from genas.io import read_torch_file

__all__ = ["NETWORK_FORMAT", "read_record"]

NETWORK_FORMAT = "genas.network/1"


def read_record(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The raw record of a network checkpoint (its format and field types checked), or one
    :class:`CheckpointError` naming what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no network checkpoint at {path}; write one with tools/retrain.py or tools/export.py --format pt")
    record = read_torch_file(path, "network checkpoint", (NETWORK_FORMAT,), map_location, weights_only=True,
                             corrupt="is corrupt or not a torch file")  # fmt: skip
    if record.get("format") != NETWORK_FORMAT:
        fmt = record.get("format")
        if fmt == "genas.supernet/1" and "network" in record:  # a retrain run's training checkpoint
            run, model = path.parent.parent, path.parent.parent / "model.pt"
            where = (f"its network checkpoint is {model}" if model.is_file() else
                     f"it has no model.pt yet: finish it (tools/retrain.py --resume {run}), then give {model}")  # fmt: skip
            raise CheckpointError(f"{path} is a training checkpoint of retrain run {run}, not a network checkpoint; {where}")
        hint = " (a supernet training checkpoint: export a subnet with --inherit RUN_DIR)" if fmt == "genas.supernet/1" else ""
        raise CheckpointError(f"{path} is not a genas network checkpoint (expected format {NETWORK_FORMAT!r}){hint}")
    for key, kind in (("network", str), ("hparams", dict), ("state_dict", dict)):
        if not isinstance(record.get(key), kind):
            raise CheckpointError(f"network checkpoint {path} is damaged: its {key!r} is {record.get(key)!r}, "
                                  f"not a {kind.__name__}")  # fmt: skip
    return record
