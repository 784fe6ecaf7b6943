"""The supernet registry and its front door :func:`create_supernet`."""

from __future__ import annotations

from typing import Any

from genas.registry import Registry
from supernet.base import Supernet
from supernet.darts import DartsSupernet
from supernet.nb201 import NB201Supernet

__all__ = ["SUPERNETS", "create_supernet"]

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
