"""Start a standalone network from a trained supernet: copy the weights of the architecture's path.

The exported network is built with the supernet's geometry (channels, cells, BN options, the
supernet's pooling op) and the supernet subnet's weights are *copied* into it, so it computes
exactly what ``supernet.subnet(arch)`` computes and trains on from there without touching the
supernet. What the supernet never had (the DARTS auxiliary tower, a classifier for another number
of classes) starts fresh. A DARTS supernet with the ImageNet stem (``supernet.options.stem imagenet``) hands its
weights to ``darts_imagenet``, one with the CIFAR stem to ``darts``.

Example:
    >>> import torch
    >>> from supernet import create_supernet
    >>> sn = create_supernet("nb201", num_classes=10, channels=4, layers=1).eval()
    >>> arch = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"
    >>> net = network_from_supernet(sn, arch).eval()
    >>> x = torch.randn(2, 3, 16, 16)
    >>> torch.equal(net(x), sn.subnet(arch)(x))
    True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from genas.errors import CheckpointError, ConfigError

__all__ = ["network_from_supernet", "network_from_run", "check_supernet_run", "check_inherited", "GEOMETRY"]

#: Network hparams that must equal the supernet's for its weights to fit (supernet name -> network name).
GEOMETRY = {"channels": "channels", "layers": "layers", "in_chans": "in_chans", "affine": "affine",
            "track_running_stats": "track_running_stats", "stem_multiplier": "stem_multiplier"}  # fmt: skip


def _network_kwargs(hp: dict[str, Any], network: str, overrides: dict[str, Any], source: str) -> dict[str, Any]:
    kwargs = {}
    for sn_key, key in GEOMETRY.items():
        if sn_key not in hp or (key == "stem_multiplier" and network != "darts"):
            continue
        want = overrides.get(key)
        if want is not None and want != hp[sn_key]:
            raise ConfigError(
                f"{source} has {sn_key} {hp[sn_key]!r} but the network asks for {key} {want!r}; "
                f"leave model.options.{key} unset to take the supernet's"
            )
        kwargs[key] = hp[sn_key]
    if network in ("darts", "darts_imagenet"):
        kwargs["pool_bn"] = True  # the supernet's pooling op (pool + non-affine BN)
    rest = {k: v for k, v in overrides.items() if v is not None and k not in kwargs}
    return {**rest, **kwargs, "num_classes": overrides.get("num_classes") or hp.get("num_classes", 10)}


def network_from_supernet(supernet: Any, arch: Any, network: str | None = None, source: str = "the supernet",
                          **overrides: Any) -> Any:  # fmt: skip
    """A fresh network of ``arch`` carrying the supernet's weights for that architecture's path.

    Args:
        supernet: A :class:`supernet.base.Supernet` (its ``hparams`` give the geometry).
        arch: Anything :func:`genas.export.read_arch` reads, of the supernet's space.
        network: ``nb201`` or ``darts`` (default: the supernet's space).
        source: How messages name the supernet (e.g. the run directory).
        overrides: Other network arguments (``auxiliary``, ``num_classes``, ``drop_path_rate``...);
            geometry values must equal the supernet's.

    Raises:
        ConfigError: Another space, the ImageNet stem, or geometry that differs from the supernet's.
        CheckpointError: The weights do not fit (the message lists the first mismatch).
    """
    from genas.export import NETWORKS, create_network, read_arch

    hp = dict(supernet.hparams)
    space = hp.get("space")
    counterpart = "darts_imagenet" if hp.get("stem") == "imagenet" else space  # the network of the same stem
    network = network or counterpart
    cls = NETWORKS.get(network)
    if cls.space != space:
        raise ConfigError(f"{source} is a {space!r} supernet; network {network!r} builds {cls.space!r} architectures")
    if network != counterpart:
        stem = "the ImageNet stem" if counterpart == "darts_imagenet" else "the CIFAR stem"
        raise ConfigError(f"network {network!r} cannot inherit from {source}: its stem differs ({source} has {stem}); "
                          f"use network {counterpart!r} with --inherit")  # fmt: skip
    arch = read_arch(arch, space)
    net = create_network(network, arch, device=next(supernet.parameters()).device,
                         **_network_kwargs(hp, network, overrides, source))  # fmt: skip
    state = supernet.subnet(arch).state_dict()
    if network == "darts_imagenet":  # the supernet's stem module holds stem0 / stem1; the network has them itself
        state = {k.removeprefix("stem."): v for k, v in state.items()}
    if net.num_classes != hp.get("num_classes"):
        state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    try:
        missing, unexpected = net.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise CheckpointError(f"{source}: its weights do not fit network {network!r}: {str(exc).splitlines()[0]}") from exc
    fresh = [k for k in missing if not k.startswith(("auxiliary_head.", "classifier."))]
    if fresh or unexpected:
        raise CheckpointError(f"{source}: weights of network {network!r} do not line up with the subnet "
                              f"(missing {fresh[:3]}, unexpected {unexpected[:3]})")  # fmt: skip
    net.inherited = sorted({k.split(".")[0] for k in state})  # which parts came from the supernet
    return net


def check_supernet_run(run_dir: str | Path) -> None:
    """Refuse, in one line and reading only its config, a directory that is no supernet run to inherit from."""
    from supernet.factory import RUN_KINDS, run_kind

    path = Path(run_dir)
    kind = run_kind(path)
    if kind == "train":
        return
    if kind == "retrain":
        raise ConfigError(f"cannot inherit from {run_dir}: it is {RUN_KINDS[kind]}, not a supernet run; a retrained "
                          f"network is exported with --checkpoint {path / 'model.pt'}")  # fmt: skip
    if kind == "differentiable":
        raise ConfigError(f"cannot inherit from {run_dir}: it is {RUN_KINDS[kind]}, whose mixed-op supernet holds no "
                          f"single-path weights; its result is --arch {path / 'best_arch.json'}")  # fmt: skip
    what = "does not exist" if not path.exists() else "holds no supernet run (no config.yaml)"
    hint = ("the supernet's run directory (the parent of its search-* folders)" if path.name.startswith("search-")
            else "a run directory of tools/train_supernet.py")  # fmt: skip
    raise ConfigError(f"cannot inherit from {run_dir}: it {what}; give {hint}")


def network_from_run(run_dir: str | Path, arch: Any, network: str | None = None, which: str = "last",
                     device: torch.device | str = "cpu", **overrides: Any) -> tuple[Any, dict[str, Any]]:  # fmt: skip
    """:func:`network_from_supernet` on the supernet trained in ``run_dir`` (checkpoint ``which``).

    Returns:
        The network and a provenance record (run, checkpoint, supernet hparams) for its checkpoint.
    """
    from supernet.factory import load_trained

    check_supernet_run(run_dir)
    trained = load_trained(run_dir, which, device=device, with_init=False)
    source = f"supernet run {run_dir}"
    net = network_from_supernet(trained.model, arch, network, source=source, **overrides)
    shape = list(trained.input_shape) if getattr(trained, "input_shape", None) else None
    info = {"inherited_from": str(run_dir), "checkpoint": str(trained.checkpoint),
            "supernet_hparams": dict(trained.model.hparams), "data": trained.config.data.dataset, "input_shape": shape}  # fmt: skip
    if shape is not None:
        net.pretrained_cfg["input_size"] = tuple(shape)  # the supernet's data (the network's default is CIFAR's)
        info["subnet_max_abs_diff"] = check_inherited(net, trained.model, net.arch, shape, source)
    return net, info


def check_inherited(net: Any, supernet: Any, arch: Any, input_shape: Any, source: str = "the supernet",
                    atol: float = 1e-5) -> float:  # fmt: skip
    """Largest difference between ``net`` and ``supernet.subnet(arch)`` (eval mode) on two seeded random images.

    Compares the logits, or the last feature maps when ``net`` has another classifier.

    Raises:
        CheckpointError: The difference exceeds ``atol`` (the copy went wrong).
    """
    device = next(net.parameters()).device
    x = torch.randn(2, *input_shape, generator=torch.Generator().manual_seed(0)).to(device)
    sub = supernet.subnet(arch)
    modes = net.training, supernet.training
    net.eval()
    supernet.eval()
    try:
        with torch.no_grad():
            same_head = net.num_classes == supernet.hparams.get("num_classes")
            ours = net(x) if same_head else net.forward_features(x)
            theirs = sub(x) if same_head else sub.forward_features(x)
    finally:
        net.train(modes[0])
        supernet.train(modes[1])
    diff = float((ours - theirs).abs().max())
    if diff > atol:
        raise CheckpointError(f"{source}: the inherited network differs from the supernet's subnet by {diff:.3g} (> {atol:g})")
    return diff

