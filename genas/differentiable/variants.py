"""DARTS variants: a registry of their own, each changing only what it should, composable with every architect.

A variant changes the loss or the supernet, never the architect (A2M paper, section 4.2: A2M is
a plug-in).  The search loop calls the hooks of :class:`Variant`; each defaults to "change
nothing", so an empty :class:`VariantSet` is plain DARTS.  Built in (SPEC section 5, each
reference code's mechanics):

* ``beta`` (beta-DARTS, Ye et al. 2022): ``lambda_t * mean_e logsumexp(alpha_e)`` added to the
  validation loss, summed over the architecture groups, inside every gradient an architect
  takes; ``lambda_t = init + slope * epoch`` (both codes: 0 + 0.5 * epoch);
* ``sdarts-rs`` (SDARTS-RS, Chen & Hsieh 2020): in the weight step only, the mixing weights are
  ``softmax(alpha) + U(-eps_t, eps_t)``, clamped to [0, 1] and renormalised per edge,
  ``eps_t = eps_min + (eps_max - eps_min) * epoch / E`` (0.03 -> 0.3); alpha itself never changes;
* ``pc`` (PC-DARTS, Xu et al. 2020): 1/K of the channels through the mixed op (its ops built at
  C / K), the rest passed by (max-pooled on a reduce edge), channel shuffle; edge normalisation
  ``sum_i softmax(beta_j)_i * MixedOp_i`` with betas as extra architecture parameters, genotype
  strengths ``softmax(alpha) * softmax(beta)``; optional warm-up epochs without architecture steps;
* ``darts-minus`` (DARTS-, Chu et al. 2021): an auxiliary skip ``beta_t * x`` on every edge
  (factorized reduce on a stride-2 edge), ``beta_t = beta0 * (1 - epoch / E)``;
* ``na`` (NA-DARTS, Wang et al. 2021): the validation loss averaged over the architecture and
  ``samples`` neighbours, each ``size`` edges away (``docs/a2m.md`` gives the formula).

The seams: :meth:`Variant.val_loss` (beta, na), :meth:`Variant.weight_step_weights` (sdarts-rs),
:meth:`Variant.setup` with ``model.add_arch_parameter`` / ``model.add_weight_module`` and a
wrapped ``model.edge_fn`` (pc, darts-minus), :meth:`Variant.op_strengths` (pc),
:meth:`Variant.start_epoch` (schedules) and :meth:`Variant.arch_step_enabled` (pc warm-up).
The base class and the registry are in :mod:`genas.differentiable.variant_base`, the built-ins in
:mod:`genas.differentiable.variants_objective` (beta, sdarts-rs, na) and
:mod:`genas.differentiable.variants_network` (pc, darts-minus); this module is the front door.
Several variants apply in a fixed order (``Variant.priority``: pc, darts-minus, beta, na, sdarts-rs)
whatever order they are named in.

Example:
    >>> v = create_variants(["beta"], {"slope": 0.5})
    >>> v.names, v.variants[0].options()
    (['beta'], {'init': 0.0, 'slope': 0.5, 'normal_weight': 1.0, 'reduce_weight': 1.0})
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from genas.errors import ConfigError
from genas.registry import init_options
from genas.differentiable.variant_base import VARIANTS, LossFn, Variant, register_variant
from genas.differentiable.variants_network import DartsMinus, PartialChannels, channel_shuffle
from genas.differentiable.variants_objective import BetaDecay, NeighbourhoodAware, SmoothRandom

__all__ = [
    "Variant", "VariantSet", "LossFn", "VARIANTS", "register_variant", "create_variants", "list_variants",
    "variant_options", "BetaDecay", "SmoothRandom", "PartialChannels", "DartsMinus", "NeighbourhoodAware",
    "channel_shuffle",
]  # fmt: skip


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
        self.variants = sorted(variants, key=lambda v: (v.priority, v.name))  # the same set, the same search
        for v in self.variants:
            v.check_with({o.name: o for o in self.variants if o is not v})

    def check_budget(self, epochs: int) -> None:
        """Each variant's :meth:`~genas.differentiable.variant_base.Variant.check_budget` for a search of ``epochs``."""
        for v in self.variants:
            v.check_budget(epochs)

    @property
    def names(self) -> list[str]:
        return [v.name for v in self.variants]

    def __bool__(self) -> bool:
        return bool(self.variants)

    def setup(self, model: Any, generator: torch.Generator | None = None) -> None:
        """Check the variants apply to ``model``'s space, then let each change it (once, before the search)."""
        space = model.space.name
        for v in self.variants:
            if space not in v.spaces:
                raise ConfigError(f"variant {v.name!r} does not apply to search space {space!r}; "
                                  f"it applies to {', '.join(v.spaces)}")  # fmt: skip
        for v in self.variants:
            v.generator = generator
            v.setup(model)

    def check_architect(self, architect: str) -> None:
        """Refuse an architect or variant a variant cannot be combined with, naming why."""
        names = [architect, *self.names]
        for v in self.variants:
            for other, why in v.conflicts.items():
                if other in names:
                    raise ConfigError(f"variant {v.name!r} cannot be combined with {other!r}: {why}")

    def options(self) -> dict[str, dict[str, Any]]:
        return {v.name: v.options() for v in self.variants}

    def arch_step_enabled(self) -> bool:
        return all(v.arch_step_enabled() for v in self.variants)

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
        return {v.name: {"options": v.options(), **v.state_dict()} for v in self.variants}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        saved = sorted(state)
        if saved != sorted(self.names):
            raise ConfigError(f"the checkpoint was searched with variants {saved or 'none'}, this run has "
                              f"{sorted(self.names) or 'none'}: a resume must use the same --variant")  # fmt: skip
        for v in self.variants:
            saved_opts = state[v.name].get("options", {})
            if saved_opts != v.options():
                raise ConfigError(f"the checkpoint's variant {v.name!r} ran with {saved_opts}, this run has "
                                  f"{v.options()}: a resume must use the same options")  # fmt: skip
            v.load_state_dict({k: x for k, x in state[v.name].items() if k != "options"})


def list_variants(pattern: str = "*") -> list[str]:
    """Registered variant names matching ``pattern``, in the order they apply."""
    return VARIANTS.list(pattern)


def variant_options(name: str) -> list[str]:
    """The keyword options variant ``name`` accepts."""
    return init_options(VARIANTS.get(name))


def create_variants(names: Sequence[str], options: Mapping[str, Mapping[str, Any]] | None = None) -> VariantSet:
    """The :class:`VariantSet` of ``names`` (unknown names fail with a suggestion, duplicates are refused).

    Args:
        names: Variant names, e.g. ``["beta", "sdarts-rs"]``.
        options: Per variant, its options (``None`` values keep the defaults); an option the
            variant does not take is an error.  A flat mapping applies to a single variant.
    """
    names = [n.strip() for n in names]
    options = dict(options or {})
    if options and len(names) == 1 and not any(isinstance(v, Mapping) for v in options.values()):
        options = {names[0]: options}
    variants = []
    for n in names:
        opts = {k: v for k, v in dict(options.get(n, {})).items() if v is not None}
        accepted = variant_options(n)  # an unknown name fails here, with a suggestion
        bad = sorted(set(opts) - set(accepted))
        if bad:
            raise ConfigError(f"variant {n!r} has no option {bad[0]!r}; its options: {', '.join(accepted) or 'none'}")
        variants.append(VARIANTS.get(n)(**opts))
    return VariantSet(variants)  # refuses a name given twice
