"""Learning-rate schedules shared by every trainer (supernet, differentiable search, retraining).

Example:
    >>> round(cosine_lr(50, 100, 0.025, 0.001), 6)
    0.013
"""

from __future__ import annotations

import math

__all__ = ["cosine_lr"]


def cosine_lr(step: int, total_steps: int, lr: float, lr_min: float) -> float:
    """Cosine annealing from ``lr`` at step 0 to ``lr_min`` at ``total_steps``."""
    t = min(step, total_steps) / max(total_steps, 1)
    return lr_min + 0.5 * (lr - lr_min) * (1.0 + math.cos(math.pi * t))
