"""The seams DARTS variants plug into, so that every architect works with every variant.

A variant changes the loss or the supernet, never the architect (A2M paper, section 4.2: A2M is
a plug-in).  The search loop calls these hooks; each defaults to "change nothing", so an empty
:class:`VariantSet` is plain DARTS.  What the known variants need, and where it goes:

* a term added to the validation loss, inside every gradient an architect takes (beta-DARTS),
  or the loss aggregated over neighbouring architectures (NA-DARTS): :meth:`Variant.val_loss`
  wraps the validation loss the architect differentiates;
* the architecture weights replaced in the weight step only (SDARTS-RS):
  :meth:`Variant.weight_step_weights`;
* a different mixed op or edge (PC-DARTS partial channels, DARTS- auxiliary skip) and extra
  architecture parameters (PC-DARTS edge-normalisation betas): :meth:`Variant.setup` may call
  ``model.add_arch_parameter`` and replace ``model.edge_fn``; the architects update every
  architecture parameter, betas included;
* different strengths for the derived genotype (PC-DARTS softmax(alpha) * softmax(beta)):
  :meth:`Variant.op_strengths`;
* schedules (beta-DARTS lambda_t, DARTS- beta_t, SDARTS eps_t): :meth:`Variant.start_epoch`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import torch

from genas.errors import ConfigError

__all__ = ["Variant", "VariantSet", "LossFn"]

#: A validation (or training) loss on a fixed batch, as a function of the architecture logits.
LossFn = Callable[[Mapping[str, torch.Tensor]], torch.Tensor]


class Variant:
    """Base class of a DARTS variant; override only the hooks the variant needs."""

    name: ClassVar[str] = "variant"

    def setup(self, model: Any) -> None:
        """Change the mixed-op supernet once, before the search (extra parameters, ``edge_fn``)."""

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


class VariantSet:
    """Several variants applied in order; empty = plain DARTS.

    Args:
        variants: The variants; names must be unique.
    """

    def __init__(self, variants: Sequence[Variant] = ()) -> None:
        names = [v.name for v in variants]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ConfigError(f"variant {dup[0]!r} is given twice; each variant applies once")
        self.variants = list(variants)

    @property
    def names(self) -> list[str]:
        return [v.name for v in self.variants]

    def __bool__(self) -> bool:
        return bool(self.variants)

    def setup(self, model: Any) -> None:
        for v in self.variants:
            v.setup(model)

    def start_epoch(self, epoch: int, epochs: int) -> None:
        for v in self.variants:
            v.start_epoch(epoch, epochs)

    def val_loss(self, loss_fn: LossFn) -> LossFn:
        for v in self.variants:
            loss_fn = v.val_loss(loss_fn)
        return loss_fn

    def weight_step_weights(self, weights: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
        for v in self.variants:
            weights = v.weight_step_weights(weights, generator)
        return weights

    def op_strengths(self, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        for v in self.variants:
            weights = v.op_strengths(weights)
        return weights

    def state_dict(self) -> dict[str, Any]:
        return {v.name: v.state_dict() for v in self.variants}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        saved = sorted(state)
        if saved != sorted(self.names):
            raise ConfigError(f"the checkpoint was searched with variants {saved}, this run has {sorted(self.names)}")
        for v in self.variants:
            v.load_state_dict(state[v.name])
