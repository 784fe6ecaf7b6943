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
from genas.errors import ConfigError
from genas.schedule import SCHEDULE_CONSTRAINTS, SGD_CONSTRAINTS
from genas.validation import Boolean, Interval, Nullable, OneOf, Text

__all__ = ["ModelConfig", "RetrainConfig", "NETWORK_NAMES", "check_model_options"]

NETWORK_NAMES = ("darts", "darts_imagenet", "nb201")
GEOMETRIES = ("cifar", "dense")  # the network geometries of genas.export.geometry (kept here: this module imports no torch)


@config_section("model")
@dataclass
class ModelConfig(Section):
    """The standalone network (``None`` keeps the network's default, or the inherited supernet's value)."""

    arch: Any = None  # best_arch.json, an NB201 string, a DARTS Genotype, its JSON or 28 genes
    network: str | None = None  # nb201 | darts | darts_imagenet; None: the architecture space's (nb201 / darts)
    channels: int | None = None  # C (nb201 16, darts 36, darts_imagenet 48)
    layers: int | None = None  # nb201: cells per stage (5); darts: total cells (20; darts_imagenet 14)
    auxiliary: bool | None = None  # DARTS auxiliary tower (its loss weight: retrain.aux_weight)
    affine: bool | None = None  # learnable BN affine parameters in the cells (True)
    stem_multiplier: int | None = None  # darts only (3)
    pool_bn: bool | None = None  # darts: the supernet's pooling op (pool + BN); --inherit sets it
    geometry: str | None = None  # nb201 / darts: cifar (levels at strides 1/2/4) | dense (4/8/16/32), genas.export.geometry
    output_stride: int | None = None  # dilate the stages deeper than this stride (DeepLabV3: 8 or 16); None: none
    inherit: str | None = None  # a supernet run directory whose weights the network starts from
    inherit_checkpoint: str = "last"  # which checkpoint of that run

    constraints: ClassVar[dict[str, Any]] = {
        "network": Nullable(OneOf(NETWORK_NAMES)), "channels": Nullable(Interval(int, 1, 4096)),
        "layers": Nullable(Interval(int, 1, 1000)), "auxiliary": Nullable(Boolean()), "affine": Nullable(Boolean()),
        "stem_multiplier": Nullable(Interval(int, 1, 64)), "pool_bn": Nullable(Boolean()), "inherit": Nullable(Text()),
        "geometry": Nullable(OneOf(GEOMETRIES)), "output_stride": Nullable(Interval(int, 1, 1024)),
        "inherit_checkpoint": Text(),
    }  # fmt: skip

    def network_kwargs(self) -> dict[str, Any]:
        """The set network arguments (unset ones keep the network's defaults)."""
        keys = ("channels", "layers", "auxiliary", "affine", "stem_multiplier", "pool_bn", "geometry", "output_stride")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


def check_model_options(model: ModelConfig, network: str) -> None:
    """Refuse the ``model`` options that ``network`` has no argument for (retrain and export share this).

    Example:
        >>> check_model_options(ModelConfig(auxiliary=True), "nb201")
        Traceback (most recent call last):
        ...
        genas.errors.ConfigError: model.auxiliary applies to DARTS networks, not to nb201 (leave it unset)
    """
    if network == "nb201":
        for key in ("auxiliary", "stem_multiplier", "pool_bn"):
            if getattr(model, key) is not None:
                raise ConfigError(f"model.{key} applies to DARTS networks, not to nb201 (leave it unset)")
    if network == "darts_imagenet":
        for key, why in (("stem_multiplier", "its ImageNet stem is fixed"), ("geometry", "its stem has stride 8")):
            if getattr(model, key) is not None:
                raise ConfigError(f"model.{key} applies to the darts (CIFAR) network, not to darts_imagenet ({why})")


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
    aux_weight: float = 0.4  # weight of the auxiliary tower's loss (model.auxiliary)
    drop_path: float = 0.0  # DARTS drop-path probability, raised linearly from 0 over the epochs
    cutout: int = 0  # cutout side in pixels after the data augmentation (DARTS: 16); 0: none
    train_on: str = "train+valid"  # train+valid: the full official training set; train: hold valid out
    channels_last: bool = False

    constraints: ClassVar[dict[str, Any]] = {
        **SGD_CONSTRAINTS, **SCHEDULE_CONSTRAINTS, "lr_reference_batch": Nullable(Interval(int, 1, 10_000_000)),
        "ema_decay": Nullable(Interval(float, 0.0, 1.0, "neither")), "aux_weight": Interval(float, 0.0, 100.0), "drop_path": Interval(float, 0.0, 1.0, "left"),
        "cutout": Interval(int, 0, 4096), "train_on": OneOf(("train", "train+valid")), "channels_last": Boolean(),
    }  # fmt: skip
