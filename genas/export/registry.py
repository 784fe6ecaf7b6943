"""The network registry and its front door :func:`create_network`."""

from __future__ import annotations

from typing import Any

from genas.export.arch import read_arch
from genas.export.base import NETWORKS, Network

__all__ = ["NETWORKS", "create_network", "list_networks", "network_for_space"]



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
