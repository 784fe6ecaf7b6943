"""The network registry and its front door :func:`create_network`."""

from __future__ import annotations

from typing import Any

from genas.export.arch import read_arch
from genas.export.base import Network
from genas.export.darts import DartsImageNetNetwork, DartsNetwork
from genas.export.nb201 import NB201Network
from genas.registry import Registry

__all__ = ["NETWORKS", "create_network", "list_networks", "network_for_space"]

NETWORKS: Registry[type[Network]] = Registry("network")
NETWORKS.add("nb201", NB201Network, description="NAS-Bench-201 macro network (C=16, N=5 cells per stage)")
NETWORKS.add("darts", DartsNetwork, description="DARTS CIFAR evaluation network (C=36, 20 cells, auxiliary tower, drop-path)")
NETWORKS.add("darts_imagenet", DartsImageNetNetwork, description="DARTS ImageNet evaluation network (C=48, 14 cells, stride-8 stem)")


def list_networks(pattern: str = "*") -> list[str]:
    """Registered network names."""
    return NETWORKS.list(pattern)


def network_for_space(space: str) -> str:
    """The default network of a search space (its CIFAR-stem network)."""
    return {"nb201": "nb201", "darts": "darts"}[space]


def create_network(name: str, arch: Any, **kwargs: Any) -> Network:
    """Build network ``name`` of ``arch`` (anything :func:`read_arch` reads); ``None`` options keep defaults.

    Raises:
        UnknownNameError: ``name`` is not registered (close matches are suggested).
        InvalidArchitectureError: ``arch`` is malformed or of another space.
    """
    cls = NETWORKS.get(name)
    arch = read_arch(arch, cls.space)
    return cls(arch, **{k: v for k, v in kwargs.items() if v is not None})
