"""BatchNorm recalibration before evaluating a subnet (SPOS section 3.3).

Running statistics of a weight-sharing supernet mix every path, so before a subnet is
evaluated its BN statistics are reset and re-estimated on training batches in train
mode under ``no_grad``.  Default: cumulative averaging (``momentum=None``), which gives
the exact mean over the batches; the GeNAS code uses ``momentum=0.1``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import nn

__all__ = ["recalibrate_bn", "bn_modules", "kept_bn_state"]


def bn_modules(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The BatchNorm layers of ``model`` that track running statistics."""
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


@contextlib.contextmanager
def kept_bn_state(model: nn.Module) -> Iterator[None]:
    """Put every BN buffer (running mean / variance, batch count), BN momentum and the train/eval
    mode of ``model`` back as they were on exit: a recalibration inside leaves no trace.

    The buffers are copied back in place, so tensors other code holds (a captured CUDA graph) stay valid.
    """
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [([b.detach().clone() for b in m.buffers(recurse=False)], m.momentum) for m in layers]
    modes = [(m, m.training) for m in model.modules()]
    try:
        yield
    finally:
        with torch.no_grad():
            for m, (buffers, momentum) in zip(layers, saved):
                for b, keep in zip(m.buffers(recurse=False), buffers):
                    b.copy_(keep)
                m.momentum = momentum
        for m, training in modes:
            m.training = training


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable[torch.Tensor], momentum: float | None = None,
                   forward: Callable[[torch.Tensor], Any] | None = None) -> nn.Module:  # fmt: skip
    """Reset and re-estimate BN running statistics of ``model`` on ``batches``; leave it in eval mode.

    Args:
        model: A subnet (or any module whose ``forward(x)`` takes an image batch).
        batches: Input tensors (or ``(x, y)`` pairs; labels are ignored).
        momentum: ``None`` for a cumulative average (default), or an exponential momentum (GeNAS: 0.1).
        forward: Runs one batch (default ``model(x)``; a supernet needs its path: ``lambda x: model(x, path)``).

    Returns:
        ``model``, in eval mode.
    """
    layers = bn_modules(model)
    saved = [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = momentum
    model.train()
    run = forward if forward is not None else model
    try:
        for batch in batches:
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            run(x)
    finally:
        for m, mom in zip(layers, saved):
            m.momentum = mom
        model.eval()
    return model
