"""The optimiser and learning-rate schedule every trainer shares (supernet, differentiable search, retraining).

Example:
    >>> round(cosine_lr(50, 100, 0.025, 0.001), 6)
    0.013
"""

from __future__ import annotations

import math
from typing import Any

from genas.validation import Boolean, Interval, Nullable, OneOf

__all__ = ["cosine_lr", "lr_at", "sgd", "SGD_CONSTRAINTS", "SCHEDULE_CONSTRAINTS"]

#: The SGD + cosine keys the three trainers' sections share (``train``, ``differentiable``,
#: ``retrain``): one table of limits, merged into each section's ``constraints``; their defaults
#: stay each section's own (each reference protocol's).
SGD_CONSTRAINTS: dict[str, Any] = {
    "epochs": Interval(int, 1, 100_000), "lr": Interval(float, 0.0, 100.0, "right"),
    "lr_min": Interval(float, 0.0, "lr"), "momentum": Interval(float, 0.0, 1.0, "left"), "nesterov": Boolean(),
    "weight_decay": Interval(float, 0.0, 1.0), "grad_clip": Nullable(Interval(float, 0.0, None, "neither")),
}  # fmt: skip


#: The schedule keys of the per-step trainers (``train``, ``retrain``): the shape of the decay, a linear
#: warm-up and label smoothing. The defaults (cosine, no warm-up, no smoothing) are the CIFAR recipes';
#: the ImageNet recipes (RLNAS / SPOS supernets, DARTS-line retraining) use linear decay, 5 warm-up
#: epochs for large batches and smoothing 0.1.
SCHEDULE_CONSTRAINTS: dict[str, Any] = {
    "schedule": OneOf(("cosine", "linear")), "warmup_epochs": Interval(float, 0.0, 10_000.0),
    "label_smoothing": Interval(float, 0.0, 1.0, "left"),
}  # fmt: skip


def lr_at(step: int, total_steps: int, steps_per_epoch: int, cfg: Any) -> float:
    """The learning rate of optimisation step ``step`` (0-based) under a section's schedule keys.

    During the first ``warmup_epochs * steps_per_epoch`` steps the rate rises linearly to ``lr``
    (reaching it at the warm-up's last step); then it decays, by ``schedule``, from ``lr`` to
    ``lr_min`` at ``total_steps``: ``"cosine"`` (:func:`cosine_lr`) or ``"linear"`` (RLNAS, SPOS,
    PC-DARTS' ImageNet retraining). Sections without the keys get plain cosine.

    Example:
        >>> from types import SimpleNamespace as S
        >>> cfg = S(lr=0.5, lr_min=0.0, schedule="linear", warmup_epochs=1)
        >>> [round(lr_at(s, 10, 2, cfg), 4) for s in (0, 1, 2, 6, 10)]
        [0.25, 0.5, 0.5, 0.25, 0.0]
    """
    warm = int(round(getattr(cfg, "warmup_epochs", 0.0) * steps_per_epoch))
    if step < warm:
        return cfg.lr * (step + 1) / warm
    span, done = max(total_steps - warm, 1), min(step - warm, total_steps - warm)
    if getattr(cfg, "schedule", "cosine") == "linear":
        return cfg.lr_min + (cfg.lr - cfg.lr_min) * (1.0 - done / span)
    return cosine_lr(done, span, cfg.lr, cfg.lr_min)


def cosine_lr(step: int, total_steps: int, lr: float, lr_min: float) -> float:
    """Cosine annealing from ``lr`` at step 0 to ``lr_min`` at ``total_steps``."""
    t = min(step, total_steps) / max(total_steps, 1)
    return lr_min + 0.5 * (lr - lr_min) * (1.0 + math.cos(math.pi * t))


def sgd(params: Any, cfg: Any) -> Any:
    """``torch.optim.SGD`` over ``params`` with a section's ``lr``, ``momentum``, ``nesterov`` (only with momentum) and ``weight_decay``."""
    import torch

    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0,
                           weight_decay=cfg.weight_decay)  # fmt: skip
