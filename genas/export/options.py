"""What a standalone network may be asked for in the ``model`` section: its geometries and its options' limits.

A leaf module (no torch, nothing of genas.export below it), read by the ``model`` config section,
by :class:`genas.export.base.Network` (each network takes the options its ``__init__`` names) and by
:mod:`genas.export.geometry`.
"""

from __future__ import annotations

from typing import Any

from genas.validation import Boolean, Interval, Nullable, OneOf

__all__ = ["GEOMETRIES", "NETWORK_CONSTRAINTS"]

GEOMETRIES = ("cifar", "dense")  # the network geometries of genas.export.geometry

#: the limits of every network's options
NETWORK_CONSTRAINTS: dict[str, Any] = {
    "channels": Interval(int, 1, 4096), "layers": Interval(int, 1, 1000), "auxiliary": Boolean(),
    "affine": Boolean(), "track_running_stats": Boolean(), "stem_multiplier": Interval(int, 1, 64),
    "pool_bn": Boolean(), "geometry": OneOf(GEOMETRIES), "output_stride": Nullable(Interval(int, 1, 1024)),
}  # fmt: skip
