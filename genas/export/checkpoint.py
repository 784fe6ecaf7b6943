"""The network checkpoint: architecture, hyperparameters, weights and provenance in one file.

``save_network(net, path)`` writes (atomically, through :mod:`genas.io`) a dict that
``torch.load(weights_only=True)`` can read, so timm's own pretrained-file loader takes it too
(it picks the ``state_dict`` key)::

    format        "genas.network/1"
    network       registry name ("nb201", "darts", "darts_imagenet")
    space, arch   the architecture's space and its JSON form
    hparams       the constructor arguments besides the architecture
    state_dict    the weights
    pretrained_cfg  input size, mean / std of the data it was trained on (timm's fields)
    meta          where it came from (retrain run, inherited supernet, metrics)

``load_network(path)`` rebuilds the network from that file alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from genas.errors import CheckpointError
from genas.export.record import NETWORK_FORMAT, read_record
from genas.io import atomic_torch_save, to_jsonable

__all__ = ["NETWORK_FORMAT", "save_network", "load_network", "load", "read_network_file"]

_CFG_KEYS = ("num_classes", "input_size", "mean", "std", "crop_pct", "interpolation", "pool_size")


def save_network(net: Any, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """Write ``net`` (a :class:`genas.export.base.Network`) to ``path`` atomically; return the path."""
    cfg = {k: to_jsonable(net.pretrained_cfg[k]) for k in _CFG_KEYS if net.pretrained_cfg.get(k) is not None}
    record = {
        "format": NETWORK_FORMAT, "network": net.name, "space": net.space, "arch": net.arch.to_json(),
        "arch_str": str(net.arch), "hparams": dict(net.hparams), "pretrained_cfg": cfg,
        "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()}, "meta": to_jsonable(meta or {}),
    }  # fmt: skip
    atomic_torch_save(record, path)
    return Path(path)


def write_network_file(net: Any, path: str | Path, image_size: int, metadata: dict[str, Any] | None = None) -> Path:
    """The ``pt`` export format's writer (:mod:`genas.export.format_registry`): :func:`save_network`."""
    return save_network(net, path, metadata)


def read_network_file(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The raw record of a network checkpoint, its hyperparameters checked against the network registry,
    or :class:`CheckpointError` naming what is wrong."""
    record = read_record(path, map_location)
    _check_hparams(Path(path), record["network"], record["hparams"])
    return record


def _check_hparams(path: Path, network: str, hparams: dict[str, Any]) -> None:
    """Refuse, in one line, hparams the network cannot be built from (an edited or damaged file)."""
    import inspect

    from genas.errors import GenasError
    from genas.export.registry import NETWORKS
    from genas.validation import Interval, check_params

    try:
        cls = NETWORKS.get(network)
    except GenasError as exc:
        raise CheckpointError(f"network checkpoint {path}: {exc}") from None
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "arch", "device", "dtype"}
    unknown = sorted(set(hparams) - accepted)
    if unknown:
        raise CheckpointError(f"network checkpoint {path}: hparams {unknown} are not arguments of network {network!r} "
                              f"(it takes {', '.join(sorted(accepted))}); the file is damaged or from another version")  # fmt: skip
    constraints = {**cls.constraints, "num_classes": Interval(int, 0, None), "in_chans": Interval(int, 1, 4096),
                   "drop_path_rate": Interval(float, 0.0, 1.0, "left")}  # fmt: skip
    try:
        check_params(f"network checkpoint {path}", constraints, hparams)
    except GenasError as exc:
        raise CheckpointError(str(exc)) from None


def load_network(path: str | Path, device: torch.device | str = "cpu") -> Any:
    """Rebuild the network saved at ``path`` with its weights, in eval mode.

    Example:
        >>> import tempfile, torch
        >>> from genas.export import create_network
        >>> net = create_network("nb201", "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|",
        ...                      channels=4, layers=1).eval()
        >>> path = save_network(net, tempfile.mkdtemp() + "/net.pt")
        >>> x = torch.randn(2, 3, 16, 16)
        >>> torch.equal(load_network(path)(x), net(x))
        True
    """
    from genas.export.registry import create_network

    from genas.errors import GenasError

    record = read_network_file(path)
    try:
        net = create_network(record["network"], record["arch"], device=device, **record["hparams"])
    except GenasError as exc:  # a malformed architecture, geometry its network refuses
        raise CheckpointError(f"network checkpoint {path} cannot be rebuilt: {exc}") from None
    try:
        net.load_state_dict(record["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(f"network checkpoint {path}: the weights do not fit its own architecture ({str(exc).splitlines()[0]})") from exc
    net.pretrained_cfg.update({k: tuple(v) if isinstance(v, list) else v for k, v in record.get("pretrained_cfg", {}).items()})
    net.pretrained_cfg["file"] = str(path)
    return net.eval()


load = load_network  # ``genas.export.load(path)``
