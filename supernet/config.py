"""The supernet stage's config sections: ``supernet`` (space and shape) and ``train`` (SPOS training).

Registered when :mod:`supernet` is imported; see :mod:`genas.config` for how sections are assembled.

Example:
    >>> from genas.config import load_config
    >>> cfg = load_config(None, ["--supernet.space", "darts", "--supernet.options.channels", "8"])
    >>> cfg.supernet.space, cfg.supernet.channels, cfg.supernet.layers  # layers unset: the builder's default
    ('darts', 8, None)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from genas.config import Section, config_section
from genas.sections import PluginSection
from genas.schedule import SCHEDULE_CONSTRAINTS, SGD_CONSTRAINTS
from genas.validation import Boolean, Interval, OneOf

__all__ = ["SupernetConfig", "TrainConfig", "UNSAMPLED_UPDATES", "STEPS"]

UNSAMPLED_UPDATES = ("decay", "freeze")
STEPS = ("eager", "graph")


@config_section("supernet")
class SupernetConfig(PluginSection):
    """The search space's supernet and its options: ``space`` plus ``options`` (:class:`genas.sections.PluginSection`).

    The options are the supernet class's own (``channels``, ``layers``, ``affine``,
    ``track_running_stats``; DARTS also ``stem_multiplier``, ``stem``), limited by its
    ``constraints`` table; an option left unset (or set to None) keeps the builder's default
    (the one-shot supernets: NB201 affine False (RLNAS), DARTS affine True (GeNAS); the mixed-op
    supernets of differentiable search: affine False).  ``--supernet.channels 8`` (the spelling
    before ``options.``) still works for one release, with a one-line deprecation warning.

    Args:
        space: ``nb201`` or ``darts`` (a registered supernet).
        options: The supernet's own options.
    """

    choice: ClassVar[str] = "space"
    default: ClassVar[str] = "nb201"
    kind: ClassVar[str] = "supernet"
    record_defaults: ClassVar[bool] = False
    example: ClassVar[str] = "{channels: 16, layers: 5}"

    @classmethod
    def plugin(cls, name: str) -> Any:
        from supernet.base import SUPERNETS

        return SUPERNETS.get(name)


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
