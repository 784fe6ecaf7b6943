"""Weight-sharing supernets, their single-path samplers, training and BN recalibration.

Example:
    >>> import torch
    >>> from supernet import create_supernet
    >>> net = create_supernet("nb201", num_classes=10, channels=8, layers=1)
    >>> arch = net.space.parse("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|skip_connect~0|none~1|avg_pool_3x3~2|")
    >>> net(torch.randn(2, 3, 16, 16), arch).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

from typing import Any

from genas.registry import Registry
from supernet.base import FeatureInfo, Subnet, Supernet
from supernet.bn import recalibrate_bn
from supernet.darts import DartsSubnet, DartsSupernet
from supernet.nb201 import NB201Subnet, NB201Supernet
from supernet.sampler import UniformPathSampler

__all__ = [
    "SUPERNETS", "create_supernet", "Supernet", "Subnet", "FeatureInfo", "NB201Supernet", "NB201Subnet",
    "DartsSupernet", "DartsSubnet", "UniformPathSampler", "recalibrate_bn",
]  # fmt: skip

SUPERNETS: Registry[type[Supernet]] = Registry("supernet")
SUPERNETS.add("nb201", NB201Supernet, description="NAS-Bench-201 macro network, per-cell single-path sampling")
SUPERNETS.add("darts", DartsSupernet, description="DARTS 8-cell network, shared normal/reduce genotype")


def create_supernet(space: str, **kwargs: Any) -> Supernet:
    """Build the supernet of search space ``space``; ``None`` options keep their defaults.

    Example:
        >>> net = create_supernet("darts", num_classes=10, channels=4, layers=3)
        >>> type(net).__name__
        'DartsSupernet'
    """
    cls = SUPERNETS.get(space)
    return cls(**{k: v for k, v in kwargs.items() if v is not None})
