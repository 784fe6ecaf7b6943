"""What every weight-sharing supernet offers to training, scorers and export.

A supernet holds one module per (cell, edge, op).  ``forward(x, path)`` runs only the
sampled path; ``subnet(arch)`` returns a standalone ``nn.Module`` that *shares* the
active modules (no copy), exposes only the active parameters, and has the same
``forward_features`` / ``forward_head`` / ``feature_info`` surface as a timm model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from genas.spaces import SearchSpace

__all__ = ["Supernet", "Subnet", "FeatureInfo"]


@dataclass(frozen=True)
class FeatureInfo:
    """One feature level of a network: channels, total stride, and the module that produces it."""

    num_chs: int
    reduction: int
    module: str


class Supernet(nn.Module):
    """Base class: subclasses set ``space`` and implement ``forward``, ``subnet`` and ``op_module``."""

    space: SearchSpace
    hparams: dict[str, Any]

    def forward(self, x: torch.Tensor, path: Any) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def subnet(self, arch: Any) -> Subnet:  # pragma: no cover - abstract
        raise NotImplementedError

    def op_module(self, cell: int, edge: int, op: str) -> nn.Module | None:  # pragma: no cover - abstract
        """The module of ``op`` on ``edge`` of search cell ``cell`` (``None`` for parameter-free ``none``)."""
        raise NotImplementedError

    def fixed_modules(self) -> list[tuple[str, nn.Module]]:  # pragma: no cover - abstract
        """The modules every path runs (stem, fixed reduction blocks, head), in forward order."""
        raise NotImplementedError

    @property
    def num_search_cells(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.hparams.items())


class Subnet(nn.Module):
    """A single architecture of a supernet, sharing its modules (and so its weights)."""

    arch: Any
    feature_info: list[FeatureInfo]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
