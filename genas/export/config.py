"""The export stage's config sections: ``model`` (which network, from which architecture) and ``retrain``.

Registered when :mod:`genas.export.config` is imported (the retrain and export commands do); see
:mod:`genas.config` for how sections are assembled. ``--arch`` and ``--inherit`` on the command
line are ``--model.arch`` and ``--model.inherit``.

Example:
    >>> from genas.config import load_config
    >>> cfg = load_config("retrain_darts_cifar10", ["--model.arch", "best_arch.json"])
    >>> cfg.model.channels, cfg.retrain.epochs, cfg.retrain.cutout, cfg.retrain.aux_weight
    (36, 600, 16, 0.4)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from genas.config import Section, config_section
from genas.sections import PluginSection
from genas.errors import ConfigError
from genas.schedule import SCHEDULE_CONSTRAINTS, SGD_CONSTRAINTS
from genas.validation import Boolean, Interval, Nullable, OneOf, Text

__all__ = ["ModelConfig", "RetrainConfig", "NETWORK_NAMES", "check_model_options"]

NETWORK_NAMES = ("darts", "darts_imagenet", "nb201")


class _FromArchitecture:
    """``model.network`` unset: the architecture's space picks the network (nb201 / darts) when it is read.

    Until then the options any network takes are accepted, limited by the networks' table, and
    checked again against the network the architecture resolves to (:func:`check_model_options`).
    """

    @staticmethod
    def _networks() -> list[Any]:
        from genas.export.registry import NETWORKS

        return [NETWORKS.get(n) for n in NETWORKS.list()]

    @classmethod
    def option_defaults(cls) -> dict[str, Any]:
        return {k: None for net in cls._networks() for k in net.option_defaults()}

    @classmethod
    def option_types(cls) -> dict[str, Any]:
        return {k: v for net in cls._networks() for k, v in net.option_types().items()}

    @classmethod
    def check_options(cls, values: dict[str, Any], owner: str | None = None) -> dict[str, Any]:
        return cls._networks()[0].check_options(values, owner)  # one table for every network (Network.constraints)


@config_section("model")
class ModelConfig(PluginSection):
    """The standalone network and where it comes from: ``network`` plus ``options``, and ``arch`` / ``inherit``.

    The options are the network class's own (``channels``, ``layers``, ``affine``,
    ``track_running_stats``, ``geometry``, ``output_stride``; DARTS also ``auxiliary``,
    ``stem_multiplier``, ``pool_bn``), limited by its ``constraints`` table; unset ones keep the
    network's default or the inherited supernet's value.  ``network`` unset: the architecture's
    space's (nb201 / darts).  ``--model.options.channels 36`` (the spelling before ``options.``) still works
    for one release, with a one-line deprecation warning.

    Args:
        network: nb201 | darts | darts_imagenet (a registered network), or None.
        arch: best_arch.json, an NB201 string, a DARTS Genotype, its JSON or 28 genes.
        inherit: A supernet run directory whose weights the network starts from.
        inherit_checkpoint: Which checkpoint of that run.
        options: The network's own options.
    """

    choice: ClassVar[str] = "network"
    default: ClassVar[Any] = None
    kind: ClassVar[str] = "network"
    record_defaults: ClassVar[bool] = False
    example: ClassVar[str] = "{channels: 36, layers: 20}"
    common: ClassVar[dict[str, tuple[Any, Any, Any]]] = {
        "arch": (None, Any, None), "inherit": (None, str | None, Nullable(Text())),
        "inherit_checkpoint": ("last", str, Text()),
    }  # fmt: skip

    @classmethod
    def plugin(cls, name: str | None) -> Any:
        if name is None:
            return _FromArchitecture
        from genas.export.registry import NETWORKS

        return NETWORKS.get(name)

    def network_kwargs(self) -> dict[str, Any]:
        """The set network options (unset ones keep the network's defaults)."""
        return dict(self.options)


def check_model_options(model: ModelConfig, network: str) -> None:
    """Refuse the ``model`` options that ``network`` has no argument for (retrain and export share this).

    Example:
        >>> check_model_options(ModelConfig(options={"auxiliary": True}), "nb201")
        Traceback (most recent call last):
        ...
        genas.errors.ConfigError: model.options.auxiliary applies to DARTS networks, not to nb201 (leave it unset)
    """
    if network == "nb201":
        for key in ("auxiliary", "stem_multiplier", "pool_bn"):
            if model.options.get(key) is not None:
                raise ConfigError(f"model.options.{key} applies to DARTS networks, not to nb201 (leave it unset)")
    if network == "darts_imagenet":
        for key, why in (("stem_multiplier", "its ImageNet stem is fixed"), ("geometry", "its stem has stride 8")):
            if model.options.get(key) is not None:
                raise ConfigError(f"model.options.{key} applies to the darts (CIFAR) network, not to darts_imagenet ({why})")
    model.plugin(network).check_options(model.network_kwargs(), owner="model")


@config_section("retrain")
@dataclass
class RetrainConfig(Section):
    """Training a network from scratch (or from inherited weights): SGD, cosine lr per step, eval each epoch."""

    epochs: int = 600
    lr: float = 0.025
    lr_min: float = 0.001
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 3e-4
    grad_clip: float | None = 5.0
    schedule: str = "cosine"  # cosine | linear (the DARTS-line ImageNet recipes), per step from lr to lr_min
    warmup_epochs: float = 0.0  # linear warm-up to lr (ImageNet at batch 1024: 5 epochs)
    label_smoothing: float = 0.0  # ImageNet: 0.1
    lr_reference_batch: int | None = None  # lr is for this global batch; scaled linearly to the actual one (None: as is)
    ema_decay: float | None = None  # keep an EMA of the weights with this decay (e.g. 0.9998), evaluated each epoch
    aux_weight: float = 0.4  # weight of the auxiliary tower's loss (model.options.auxiliary)
    drop_path: float = 0.0  # DARTS drop-path probability, raised linearly from 0 over the epochs
    cutout: int = 0  # cutout side in pixels after the data augmentation (DARTS: 16); 0: none
    train_on: str = "train+valid"  # train+valid: the full official training set; train: hold valid out
    channels_last: bool = False

    constraints: ClassVar[dict[str, Any]] = {
        **SGD_CONSTRAINTS, **SCHEDULE_CONSTRAINTS, "lr_reference_batch": Nullable(Interval(int, 1, 10_000_000)),
        "ema_decay": Nullable(Interval(float, 0.0, 1.0, "neither")), "aux_weight": Interval(float, 0.0, 100.0), "drop_path": Interval(float, 0.0, 1.0, "left"),
        "cutout": Interval(int, 0, 4096), "train_on": OneOf(("train", "train+valid")), "channels_last": Boolean(),
    }  # fmt: skip
