"""The base of every DARTS variant: the :class:`Variant` hooks and the ``VARIANTS`` registry.

The built-in variants live in :mod:`genas.differentiable.variants_objective` (what the steps optimise:
``beta``, ``sdarts-rs``, ``na``) and :mod:`genas.differentiable.variants_network` (what the mixed-op network
computes: ``pc``, ``darts-minus``); :mod:`genas.differentiable.variants` is the front door
(:class:`~genas.differentiable.variants.VariantSet`, ``create_variants``) and imports both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch

from genas.registry import Registry, register_subclass

__all__ = ["Variant", "LossFn", "VARIANTS", "register_variant", "epochs_fraction"]

#: A validation (or training) loss on a fixed batch, as a function of the architecture logits.
LossFn = Callable[[Mapping[str, torch.Tensor]], torch.Tensor]


class Variant:
    """Base class of a DARTS variant; override only the hooks the variant needs."""

    name: ClassVar[str] = "variant"
    spaces: ClassVar[tuple[str, ...]] = ("nb201", "darts")  # the search spaces it applies to
    conflicts: ClassVar[dict[str, str]] = {}  # architect or variant name -> why they cannot be combined
    generator: torch.Generator | None = None  # the search's seeded generator (set by VariantSet.setup)
    priority: ClassVar[int] = 100  # application order: lower first (supernet changes, then losses)

    def options(self) -> dict[str, Any]:
        """The options as set (for ``best_arch.json`` and resume checks)."""
        return {}

    def check_with(self, others: Mapping[str, "Variant"]) -> None:
        """Refuse (``ConfigError``) a combination of this variant's options with the other variants' in the set."""

    def check_budget(self, epochs: int) -> None:
        """Refuse (``ConfigError``) options the search's ``epochs`` leave no room for."""

    def setup(self, model: Any) -> None:
        """Change the mixed-op supernet once, before the search (extra parameters, ``edge_fn``)."""

    def arch_step_enabled(self) -> bool:
        """Whether this epoch runs architecture steps (PC-DARTS warm-up trains the weights only)."""
        return True

    def start_epoch(self, epoch: int, epochs: int) -> None:
        """Set per-epoch schedules; ``epoch`` counts from 0."""

    def val_loss(self, loss_fn: LossFn) -> LossFn:
        """Wrap the validation loss every architecture gradient is taken of."""
        return loss_fn

    def weight_step_weights(self, weights: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
        """The normalised architecture weights the weight step uses (detached; the stored alphas never change)."""
        return weights

    def op_strengths(self, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The per-edge op strengths the genotype is derived from (default: the softmax weights)."""
        return weights

    def state_dict(self) -> dict[str, Any]:
        """What an exact resume needs beyond the epoch number."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""


VARIANTS: Registry[type[Variant]] = Registry("variant", entry_point_group="genas.variants", builtins=(
    "genas.differentiable.variants_objective", "genas.differentiable.variants_network"))


def register_variant(name: str, *, description: str | None = None, overwrite: bool = False) -> Callable[[type], type]:
    """Register a :class:`Variant` subclass under ``name``."""
    return register_subclass(VARIANTS, Variant, "register_variant", name, description=description, overwrite=overwrite)


def epochs_fraction(epoch: int, epochs: int) -> float:
    """``epoch / epochs``, the position of a linear schedule (epoch counted from 0)."""
    return epoch / max(epochs, 1)
