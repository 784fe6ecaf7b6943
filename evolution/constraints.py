"""Resource constraints for search: parameter and FLOP budgets, and the counters behind them.

The search side only needs a predicate ``constraint(arch) -> bool``.  :class:`Constraint` builds
one from ``search.max_params`` (millions) and ``search.max_flops`` (MFLOPs) and a ``cost(arch) ->
(params_M, flops_M)`` function the caller supplies (the supernet side knows how to build a subnet
and count it, e.g. with :func:`count_params` and :func:`count_flops`).

Example:
    >>> import torch.nn as nn
    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.Flatten(), nn.Linear(8 * 4 * 4, 10))
    >>> count_params(net), count_flops(net, (1, 3, 4, 4))
    (1506, 4736.0)
    >>> c = Constraint(lambda arch: (1.2, 250.0), max_params=1.0)
    >>> c("any"), c.describe()
    (False, 'params <= 1 M (search.max_params)')
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn as nn

from genas.errors import ConfigError
from genas.validation import check_float

__all__ = ["Constraint", "count_params", "count_flops"]


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


def _budget(value: float | None, name: str) -> float | None:
    return None if value is None else check_float(value, name, "Constraint", 0.0, None, "neither")


class Constraint:
    """``constraint(arch)`` is True when the architecture fits the parameter and FLOP budgets.

    Args:
        cost: ``cost(arch) -> (params_M, flops_M)``, in millions of parameters and MFLOPs.
        max_params: Budget in millions of parameters, or None for no limit.
        max_flops: Budget in MFLOPs, or None for no limit.
    """

    def __init__(
        self,
        cost: Callable[[Any], tuple[float, float]],
        max_params: float | None = None,
        max_flops: float | None = None,
    ) -> None:
        if not callable(cost):
            raise ConfigError(f"The 'cost' parameter of Constraint must be a callable. Got {cost!r} instead.")
        if max_params is None and max_flops is None:
            raise ConfigError("a Constraint needs max_params or max_flops (or both); use no constraint instead")
        self.cost = cost
        self.max_params = _budget(max_params, "max_params")
        self.max_flops = _budget(max_flops, "max_flops")

    @classmethod
    def from_config(cls, cfg: Any, cost: Callable[[Any], tuple[float, float]]) -> Constraint | None:
        """From a :class:`genas.config.SearchConfig` (``max_params``, ``max_flops``); None when neither is set."""
        if cfg.max_params is None and cfg.max_flops is None:
            return None
        return cls(cost, cfg.max_params, cfg.max_flops)

    def __call__(self, arch: Any) -> bool:
        params, flops = self.cost(arch)
        if self.max_params is not None and params > self.max_params:
            return False
        return self.max_flops is None or flops <= self.max_flops

    def describe(self) -> str:
        """``'params <= 3.5 M (search.max_params) and FLOPs <= 600 MFLOPs (search.max_flops)'``."""
        parts = []
        if self.max_params is not None:
            parts.append(f"params <= {self.max_params:g} M (search.max_params)")
        if self.max_flops is not None:
            parts.append(f"FLOPs <= {self.max_flops:g} MFLOPs (search.max_flops)")
        return " and ".join(parts)

    def __repr__(self) -> str:
        return f"Constraint({self.describe()})"
