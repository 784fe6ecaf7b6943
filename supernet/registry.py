"""The supernet registry and its front door :func:`create_supernet`."""

from __future__ import annotations

from typing import Any

from supernet.base import SUPERNETS, Supernet

__all__ = ["SUPERNETS", "create_supernet"]



def create_supernet(space: str, **kwargs: Any) -> Supernet:
    """Build the supernet of search space ``space``; ``None`` options keep their defaults.

    Example:
        >>> net = create_supernet("darts", num_classes=10, channels=4, layers=3)
        >>> type(net).__name__
        'DartsSupernet'
    """
    cls = SUPERNETS.get(space)
    return cls(**{k: v for k, v in kwargs.items() if v is not None})
