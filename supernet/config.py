"""The supernet stage's config sections: ``supernet`` (space and shape) and ``train`` (SPOS training).

Registered when :mod:`supernet` is imported; see :mod:`genas.config` for how sections are assembled.

Example:
    >>> from genas.config import load_config
    >>> load_config(None, ["--train.epochs", "3", "--supernet.space", "darts"]).supernet.space
    'darts'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from genas.config import Section, config_section
from genas.errors import ConfigError
from genas.schedule import SCHEDULE_CONSTRAINTS, SGD_CONSTRAINTS
from genas.validation import Boolean, Interval, Nullable, OneOf

__all__ = ["SupernetConfig", "TrainConfig", "UNSAMPLED_UPDATES", "STEPS"]

UNSAMPLED_UPDATES = ("decay", "freeze")
STEPS = ("eager", "graph")


@config_section("supernet")
@dataclass
class SupernetConfig(Section):
    """Search space and supernet shape (``None`` keeps the space's default)."""

    space: str = "nb201"
    channels: int = 16
    layers: int | None = None  # NB201: cells per stage (5); DARTS: total cells (8)
    affine: bool | None = None  # NB201: False (RLNAS); DARTS: True (GeNAS)
    track_running_stats: bool = True
    stem_multiplier: int | None = None  # DARTS only (3)
    stem: str | None = None  # DARTS only: cifar (one conv) | imagenet (DARTS NetworkImageNet's three convs, stride 8)

    constraints: ClassVar[dict[str, Any]] = {
        "space": OneOf(("darts", "nb201")), "channels": Interval(int, 1, 4096), "layers": Nullable(Interval(int, 1, 1000)),
        "affine": Nullable(Boolean()), "track_running_stats": Boolean(), "stem_multiplier": Nullable(Interval(int, 1, 64)),
        "stem": Nullable(OneOf(("cifar", "imagenet"))),
    }  # fmt: skip

    def check(self) -> None:
        if self.stem_multiplier is not None and self.space != "darts":
            raise ConfigError("The 'stem_multiplier' parameter of supernet applies only to space 'darts'.")
        if self.stem is not None and self.space != "darts":
            raise ConfigError(f"The 'stem' parameter of supernet applies only to space 'darts'. Got {self.stem!r} "
                              f"with space {self.space!r} instead.")  # fmt: skip


@config_section("train")
@dataclass
class TrainConfig(Section):
    """SPOS supernet training (SGD; cosine or linear decay from lr to lr_min per step, optional warm-up)."""

    epochs: int = 250
    lr: float = 0.025
    lr_min: float = 0.001
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    grad_clip: float | None = None
    schedule: str = "cosine"  # cosine | linear (RLNAS / SPOS ImageNet supernets), per step from lr to lr_min
    warmup_epochs: float = 0.0  # linear warm-up to lr over this many epochs
    label_smoothing: float = 0.0  # RLNAS ImageNet supernet: 0.1
    amp: str = "none"  # none | bf16 (CUDA)
    channels_last: bool = True
    unsampled_update: str = "decay"  # decay (reference code: zero-filled grads) | freeze (None grads)
    step: str = "eager"  # eager (the reference) | graph (masked path, one CUDA graph per step)
    step_fallback: bool = True  # graph on a configuration it cannot capture: eager with a warning (else an error)
    heldout_bn_batches: int = 1  # training batches each held-out path's BN statistics are recalibrated on (0: running stats)

    constraints: ClassVar[dict[str, Any]] = {
        **SGD_CONSTRAINTS, **SCHEDULE_CONSTRAINTS, "amp": OneOf(("bf16", "none")),
        "channels_last": Boolean(), "unsampled_update": OneOf(UNSAMPLED_UPDATES), "step": OneOf(STEPS),
        "step_fallback": Boolean(), "heldout_bn_batches": Interval(int, 0, 10_000),
    }  # fmt: skip
