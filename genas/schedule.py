"""The optimiser and learning-rate schedule every trainer shares (supernet, differentiable search, retraining).

Example:
    >>> round(cosine_lr(50, 100, 0.025, 0.001), 6)
    0.013
"""

from __future__ import annotations

import math
from typing import Any

from genas.validation import Boolean, Interval, Nullable

__all__ = ["cosine_lr", "sgd", "SGD_CONSTRAINTS"]

#: The SGD + cosine keys the three trainers' sections share (``train``, ``differentiable``,
#: ``retrain``): one table of limits, merged into each section's ``constraints``; their defaults
#: stay each section's own (each reference protocol's).
SGD_CONSTRAINTS: dict[str, Any] = {
    "epochs": Interval(int, 1, 100_000), "lr": Interval(float, 0.0, 100.0, "right"),
    "lr_min": Interval(float, 0.0, "lr"), "momentum": Interval(float, 0.0, 1.0, "left"), "nesterov": Boolean(),
    "weight_decay": Interval(float, 0.0, 1.0), "grad_clip": Nullable(Interval(float, 0.0, None, "neither")),
}  # fmt: skip


def cosine_lr(step: int, total_steps: int, lr: float, lr_min: float) -> float:
    """Cosine annealing from ``lr`` at step 0 to ``lr_min`` at ``total_steps``."""
    t = min(step, total_steps) / max(total_steps, 1)
    return lr_min + 0.5 * (lr - lr_min) * (1.0 + math.cos(math.pi * t))


def sgd(params: Any, cfg: Any) -> Any:
    """``torch.optim.SGD`` over ``params`` with a section's ``lr``, ``momentum``, ``nesterov`` (only with momentum) and ``weight_decay``."""
    import torch

    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0,
                           weight_decay=cfg.weight_decay)  # fmt: skip
