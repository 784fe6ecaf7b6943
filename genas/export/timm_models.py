"""The genas networks as timm models: ``genas_nb201``, ``genas_darts``, ``genas_darts_imagenet``.

Importing this module registers them (idempotently) with ``timm.models.register_model``; each entry
point goes through ``build_model_with_cfg`` like timm's own models, with a ``feature_cfg`` that picks
timm's getter feature wrapper, so ``features_only=True`` returns ``forward_intermediates``' maps.
(timm's default ``FeatureListNet`` runs a model's children one after another, which cannot feed a
DARTS cell its two input states.)

``arch=`` takes anything :func:`genas.export.read_arch` reads (a ``best_arch.json`` path, an NB201 string,
a ``Genotype``). ``pretrained=True`` loads a local genas network checkpoint through timm's own
pretrained-cfg file mechanism, ``pretrained_cfg_overlay=dict(file=PATH)``; the architecture and the
network's arguments then come from that file unless given (a different ``num_classes`` gets a fresh
classifier, as timm does for its own checkpoints).

Example:
    >>> import timm, torch
    >>> import genas.export.timm_models  # registers the genas_* models
    >>> m = timm.create_model("genas_nb201", arch="|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    ...                       num_classes=10, channels=8, layers=1, features_only=True, out_indices=(1, 2))
    >>> [tuple(f.shape) for f in m(torch.zeros(1, 3, 32, 32))], m.feature_info.reduction()
    ([(1, 16, 16, 16), (1, 32, 8, 8)], [2, 4])
"""

from __future__ import annotations

import os
from typing import Any

from genas.export.deps import require

timm = require("timm", "genas networks as timm models (genas.export.timm_models)")

from timm.models import build_model_with_cfg, generate_default_cfgs, is_model, model_entrypoint, register_model  # noqa: E402

from genas.export import NETWORKS, read_arch  # noqa: E402
from genas.export.base import Network, pretrained_cfg  # noqa: E402
from genas.export.checkpoint import NETWORK_FORMAT, read_network_file  # noqa: E402
from genas.errors import ConfigError  # noqa: E402

__all__ = ["genas_nb201", "genas_darts", "genas_darts_imagenet", "MODEL_NAMES", "default_cfgs"]

MODEL_NAMES = {"genas_nb201": "nb201", "genas_darts": "darts", "genas_darts_imagenet": "darts_imagenet"}

default_cfgs = generate_default_cfgs({
    model: pretrained_cfg(**NETWORKS.get(network).default_cfg_overrides) for model, network in MODEL_NAMES.items()
})  # fmt: skip


def _genas_file(overlay: dict[str, Any] | None) -> dict[str, Any] | None:
    """The record of a genas network checkpoint named by ``pretrained_cfg_overlay['file']``, if it is one."""
    path = (overlay or {}).get("file")
    if not path or not os.path.isfile(path):
        return None
    record = read_network_file(path)
    return record if record.get("format") == NETWORK_FORMAT else None


def _drop_missing_towers(state_dict: dict[str, Any], model: Network) -> dict[str, Any]:
    """timm's ``pretrained_filter_fn``: drop auxiliary-tower weights when the model has no tower."""
    if getattr(model, "auxiliary_head", None) is None:
        return {k: v for k, v in state_dict.items() if not k.startswith("auxiliary_head.")}
    return state_dict


def _create(variant: str, pretrained: bool = False, **kwargs: Any) -> Network:
    network = MODEL_NAMES[variant]
    cls = NETWORKS.get(network)
    arch = kwargs.pop("arch", None)
    record = _genas_file(kwargs.get("pretrained_cfg_overlay")) if pretrained else None
    if record is not None:
        if record["network"] != network:
            raise ConfigError(f"{kwargs['pretrained_cfg_overlay']['file']} holds a {record['network']!r} network; "
                              f"create it as {'genas_' + record['network']!r}, not {variant!r}")  # fmt: skip
        arch = record["arch"] if arch is None else arch
        for key, value in record["hparams"].items():
            kwargs.setdefault(key, value)
        overlay = dict(kwargs["pretrained_cfg_overlay"])
        for key, value in record.get("pretrained_cfg", {}).items():
            overlay.setdefault(key, tuple(value) if isinstance(value, list) else value)
        kwargs["pretrained_cfg_overlay"] = overlay
    if arch is None:
        raise ConfigError(f"{variant} needs arch=... (a best_arch.json path, an NB201 string or a DARTS Genotype), "
                          "or pretrained=True with pretrained_cfg_overlay=dict(file=<genas network checkpoint>)")  # fmt: skip
    kwargs["arch"] = read_arch(arch, cls.space)
    feature_cfg = dict(feature_cls="getter", out_indices=None)  # None: every level the network records
    return build_model_with_cfg(cls, variant, pretrained, feature_cfg=feature_cfg,
                                pretrained_filter_fn=_drop_missing_towers, **kwargs)  # fmt: skip


def genas_nb201(pretrained: bool = False, **kwargs: Any) -> Network:
    """NAS-Bench-201 macro network of ``arch`` (defaults C=16, N=5, CIFAR-10 input)."""
    return _create("genas_nb201", pretrained, **kwargs)


def genas_darts(pretrained: bool = False, **kwargs: Any) -> Network:
    """DARTS CIFAR evaluation network of ``arch`` (defaults C=36, 20 cells)."""
    return _create("genas_darts", pretrained, **kwargs)


def genas_darts_imagenet(pretrained: bool = False, **kwargs: Any) -> Network:
    """DARTS ImageNet evaluation network of ``arch`` (defaults C=48, 14 cells, 224 px, 1000 classes)."""
    return _create("genas_darts_imagenet", pretrained, **kwargs)


def register() -> list[str]:
    """Register the entry points with timm (again only if someone else took a name); return the names."""
    for fn in (genas_nb201, genas_darts, genas_darts_imagenet):
        if not (is_model(fn.__name__) and model_entrypoint(fn.__name__).__module__ == __name__):
            register_model(fn)
    return list(MODEL_NAMES)


register()
