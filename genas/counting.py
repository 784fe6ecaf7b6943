"""Parameter and FLOP counting: the one pair of counters every stage uses.

Search constraints (``search.max_params`` / ``search.max_flops``), exported networks and the
model statistics all count with these two functions, so the numbers agree everywhere.

Example:
    >>> import torch.nn as nn
    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.Flatten(), nn.Linear(8 * 4 * 4, 10))
    >>> count_params(net), count_flops(net, (1, 3, 4, 4))
    (1506, 4736.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from genas.lazy import lazy_import

torch = lazy_import("torch")
nn = lazy_import("torch.nn")  # imported when first used: importing this module costs no torch

__all__ = ["count_params", "count_flops"]


def count_params(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters of ``module`` (shared tensors counted once)."""
    seen: dict[int, int] = {}
    for p in module.parameters():
        if not trainable_only or p.requires_grad:
            seen[id(p)] = p.numel()
    return int(sum(seen.values()))


def _kernel(m: nn.modules.conv._ConvNd) -> int:
    size = 1
    for k in m.kernel_size:
        size *= k
    return size


def count_flops(module: nn.Module, input_shape: Sequence[int], device: torch.device | str | None = None) -> float:
    """Multiply-adds of one forward pass of ``module`` on zeros of ``input_shape`` (batch included).

    Counts convolutions (``out_elements x in_channels/groups x kernel``, transposed convolutions
    from the input side) and linear layers (``out_elements x in_features``) actually executed, via
    forward hooks; biases, normalisation, activations and pooling are not counted (the usual
    convention behind "600M FLOPs" in the NAS literature).  Divide by ``1e6`` for MFLOPs.
    """
    total = [0.0]

    def hook(m: nn.Module, inputs: tuple[Any, ...], out: Any) -> None:
        if isinstance(m, nn.modules.conv._ConvTransposeNd):  # each input element scatters over the kernel
            total[0] += float(inputs[0].numel()) * (m.out_channels // m.groups) * _kernel(m)
        elif isinstance(m, nn.modules.conv._ConvNd):
            total[0] += float(out.numel()) * (m.in_channels // m.groups) * _kernel(m)
        elif isinstance(m, nn.Linear):
            total[0] += float(out.numel()) * m.in_features

    kinds = (nn.modules.conv._ConvNd, nn.Linear)
    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, kinds)]
    was_training = module.training
    if device is None:
        device = next((p.device for p in module.parameters()), torch.device("cpu"))
    try:
        module.eval()
        with torch.no_grad():
            module(torch.zeros(tuple(input_shape), device=device))
    finally:
        module.train(was_training)
        for h in handles:
            h.remove()
    return total[0]
