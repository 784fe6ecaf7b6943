"""BatchNorm recalibration before evaluating a subnet (SPOS section 3.3).

Running statistics of a weight-sharing supernet mix every path, so before a subnet is
evaluated its BN statistics are reset and re-estimated on training batches in train
mode under ``no_grad``.  Default: cumulative averaging (``momentum=None``), which gives
the exact mean over the batches; the GeNAS code uses ``momentum=0.1``.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

__all__ = ["recalibrate_bn", "bn_modules"]


def bn_modules(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The BatchNorm layers of ``model`` that track running statistics."""
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable[torch.Tensor], momentum: float | None = None) -> nn.Module:
    """Reset and re-estimate BN running statistics of ``model`` on ``batches``; leave it in eval mode.

    Args:
        model: A subnet (or any module whose ``forward(x)`` takes an image batch).
        batches: Input tensors (or ``(x, y)`` pairs; labels are ignored).
        momentum: ``None`` for a cumulative average (default), or an exponential momentum (GeNAS: 0.1).

    Returns:
        ``model``, in eval mode.
    """
    layers = bn_modules(model)
    saved = [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = momentum
    model.train()
    try:
        for batch in batches:
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            model(x)
    finally:
        for m, mom in zip(layers, saved):
            m.momentum = mom
        model.eval()
    return model
