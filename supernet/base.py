"""What every weight-sharing supernet offers to training, scorers and export.

A supernet holds one module per (cell, edge, op).  ``forward(x, path)`` runs only the
sampled path; ``subnet(arch)`` returns a standalone ``nn.Module`` that *shares* the
active modules (no copy), exposes only the active parameters, and has the same
``forward_features`` / ``forward_head`` / ``feature_info`` surface as a timm model.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from genas.registry import Registry
from genas.validation import Boolean, Configurable, Interval
from genas.spaces import SearchSpace

__all__ = ["Supernet", "Subnet", "FeatureInfo", "SUPERNETS", "renamed_in_chans"]


def renamed_in_chans(in_chans: int, in_channels: int | None) -> int:
    """The image channels from ``in_chans``, or from the old keyword ``in_channels`` (one deprecation line).

    Supernets and networks (and timm) name the image channels ``in_chans``; the supernets' old
    ``in_channels`` keeps working for one release.
    """
    if in_channels is None:
        return in_chans
    from genas.errors import deprecated

    deprecated("the supernet keyword in_channels", "in_chans (the networks' and timm's name)")
    return in_channels


@dataclass(frozen=True)
class FeatureInfo:
    """One feature level of a network: channels, total stride, and the module that produces it."""

    num_chs: int
    reduction: int
    module: str


class Supernet(nn.Module, Configurable, ABC):
    """Base class: subclasses set ``space`` and ``hparams`` and implement the abstract methods."""

    #: what the stage passes itself (the data's classes and image channels, where to build); the
    #: other ``__init__`` keywords are the options of the ``supernet`` config section
    not_options: ClassVar[tuple[str, ...]] = ("num_classes", "in_chans", "device", "dtype", "in_channels")
    constraints: ClassVar[dict[str, Any]] = {
        "channels": Interval(int, 1, 4096), "layers": Interval(int, 1, 1000), "affine": Boolean(),
        "track_running_stats": Boolean(),
    }  # fmt: skip

    space: SearchSpace
    hparams: dict[str, Any]

    @abstractmethod
    def forward(self, x: torch.Tensor, path: Any) -> torch.Tensor:
        """Logits of ``x`` through the sampled ``path`` only."""

    @abstractmethod
    def subnet(self, arch: Any) -> Subnet:
        """The standalone view of ``arch`` (shares this supernet's modules)."""

    @abstractmethod
    def op_module(self, cell: int, edge: int, op: str) -> nn.Module | None:
        """The module of ``op`` on ``edge`` of search cell ``cell`` (``None`` for parameter-free ``none``)."""

    @abstractmethod
    def fixed_modules(self) -> list[tuple[str, nn.Module]]:
        """The modules every path runs (stem, fixed reduction blocks, head), in forward order."""

    @property
    @abstractmethod
    def num_search_cells(self) -> int:
        """Number of cells whose ops are searched (each samples its own path in NB201)."""

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.hparams.items())


class Subnet(nn.Module, ABC):
    """A single architecture of a supernet, sharing its modules (and so its weights).

    Subclasses set ``global_pool`` and ``classifier`` (the supernet's) and implement
    :meth:`forward_features`; the head is the same for every space.
    """

    arch: Any
    feature_info: list[FeatureInfo]
    global_pool: nn.Module
    classifier: nn.Module

    @abstractmethod
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map (before pooling and the classifier), as timm models return it."""

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pooling and classifier on ``forward_features``'s output (pooled features if ``pre_logits``)."""
        x = torch.flatten(self.global_pool(x), 1)
        return x if pre_logits else self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


#: The supernet registry; the built-in supernets register themselves in their modules, imported on the first lookup.
SUPERNETS: Registry[type[Supernet]] = Registry("supernet", builtins=("supernet.nb201", "supernet.darts"))
