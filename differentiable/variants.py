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
Several variants apply in a fixed order (``Variant.priority``: pc, darts-minus, beta, na, sdarts-rs)
whatever order they are named in.

Example:
    >>> v = create_variants(["beta"], {"slope": 0.5})
    >>> v.names, v.variants[0].options()
    (['beta'], {'init': 0.0, 'slope': 0.5})
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from genas.errors import ConfigError
from genas.registry import Registry, init_options, register_subclass
from genas.validation import check_bool, check_float, check_int

__all__ = [
    "Variant", "VariantSet", "LossFn", "VARIANTS", "register_variant", "create_variants", "list_variants",
    "variant_options", "BetaDecay", "SmoothRandom", "PartialChannels", "DartsMinus", "NeighbourhoodAware",
    "channel_shuffle",
]  # fmt: skip

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


VARIANTS: Registry[type[Variant]] = Registry("variant", entry_point_group="genas.variants")


def register_variant(name: str, *, description: str | None = None, overwrite: bool = False) -> Callable[[type], type]:
    """Register a :class:`Variant` subclass under ``name``."""
    return register_subclass(VARIANTS, Variant, "register_variant", name, description=description, overwrite=overwrite)


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
    seen: set[str] = set()
    for n in names:
        VARIANTS.get(n)  # unknown: close-match suggestion
        if n in seen:
            raise ConfigError(f"variant {n!r} is given twice; each variant applies once")
        seen.add(n)
    options = dict(options or {})
    if options and len(names) == 1 and not any(isinstance(v, Mapping) for v in options.values()):
        options = {names[0]: options}
    variants = []
    for n in names:
        opts = {k: v for k, v in dict(options.get(n, {})).items() if v is not None}
        accepted = variant_options(n)
        bad = sorted(set(opts) - set(accepted))
        if bad:
            raise ConfigError(f"variant {n!r} has no option {bad[0]!r}; its options: {', '.join(accepted) or 'none'}")
        variants.append(VARIANTS.get(n)(**opts))
    return VariantSet(variants)


def _epochs_fraction(epoch: int, epochs: int) -> float:
    return epoch / max(epochs, 1)


@register_variant("beta", description="beta-DARTS: lambda_t * mean logsumexp(alpha) added to the validation loss")
class BetaDecay(Variant):
    """beta-DARTS's beta-decay regulariser (Ye et al., CVPR 2022), on the alphas (not PC betas).

    The term ``lambda_t * sum_groups mean_e logsumexp(alpha_e)`` joins the validation loss, so it
    is inside every gradient an architect takes (all four of A2M's).  ``lambda_t = init + slope *
    epoch`` with the epoch counted from 0 (beta-DARTS code ``0 + 50 * epoch / 100``, A2M code
    ``epoch / 2``).

    Args:
        init: lambda at epoch 0.
        slope: Increase of lambda per epoch.
    """

    priority = 30

    def __init__(self, init: float = 0.0, slope: float = 0.5) -> None:
        self.init = check_float(init, "init", "variant beta", 0.0, None)
        self.slope = check_float(slope, "slope", "variant beta", 0.0, None)
        self.lam = self.init
        self.groups: tuple[str, ...] = ()

    def options(self) -> dict[str, Any]:
        return {"init": self.init, "slope": self.slope}

    def setup(self, model: Any) -> None:
        self.groups = tuple(model.groups)

    def start_epoch(self, epoch: int, epochs: int) -> None:
        self.lam = self.init + self.slope * epoch

    def regulariser(self, arch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``sum over groups of mean_e logsumexp(alpha_e)`` (without lambda)."""
        groups = self.groups or tuple(arch)
        return sum(torch.logsumexp(arch[g], dim=-1).mean() for g in groups)

    def val_loss(self, loss_fn: LossFn) -> LossFn:
        lam = self.lam
        if lam == 0.0:
            return loss_fn
        return lambda arch: loss_fn(arch) + lam * self.regulariser(arch)


@register_variant("sdarts-rs", description="SDARTS-RS: uniform noise on softmax(alpha) in the weight step only")
class SmoothRandom(Variant):
    """SDARTS random smoothing (Chen & Hsieh, ICML 2020), as its reference code does it.

    In the weight step the mixing weights of each edge are ``softmax(alpha) + U(-eps_t, eps_t)``,
    clamped to [0, 1] and divided by their sum (an edge clamped to all zeros keeps its
    previous argmax at 1); the architecture step and the stored alphas are untouched.
    ``eps_t = eps_min + (eps_max - eps_min) * epoch / E`` (code: 0.03 -> 0.3).

    Args:
        eps_min: The noise half-width at epoch 0.
        eps_max: The half-width the schedule approaches at epoch E.
    """

    priority = 50

    conflicts = {"darts2": "darts2's unrolled step models the weight step, which sdarts-rs randomises "
                           "(SDARTS is first order); use darts or a2m"}  # fmt: skip

    def __init__(self, eps_min: float = 0.03, eps_max: float = 0.3) -> None:
        self.eps_min = check_float(eps_min, "eps_min", "variant sdarts-rs", 0.0, 1.0)
        self.eps_max = check_float(eps_max, "eps_max", "variant sdarts-rs", self.eps_min, 1.0)
        self.eps = self.eps_min

    def options(self) -> dict[str, Any]:
        return {"eps_min": self.eps_min, "eps_max": self.eps_max}

    def start_epoch(self, epoch: int, epochs: int) -> None:
        self.eps = self.eps_min + (self.eps_max - self.eps_min) * _epochs_fraction(epoch, epochs)

    def weight_step_weights(self, weights: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
        out = dict(weights)
        for name, w in weights.items():
            if w.dim() != 2:  # per-edge op weights only (not PC-DARTS's edge betas)
                continue
            noise = torch.rand(w.shape, generator=generator, dtype=torch.float64).to(w) * (2 * self.eps) - self.eps
            top = w.argmax(-1)
            p = (w.detach() + noise).clamp_(0.0, 1.0)
            dead = p.sum(-1) == 0
            if dead.any():
                p[dead, top[dead]] = 1.0
            out[name] = p / p.sum(-1, keepdim=True)
        return out


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet's channel shuffle: (B, g * c, H, W) -> interleave the g groups (PC-DARTS code)."""
    if groups == 1:
        return x
    b, c, h, w = x.shape
    return x.reshape(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


def _edge_softmax(nodes: list[list[int]]) -> Callable[[torch.Tensor], torch.Tensor]:
    """beta (one logit per edge) -> per-edge weights, a softmax over each node's incoming edges."""

    def normalize(beta: torch.Tensor) -> torch.Tensor:
        out = torch.empty_like(beta)
        for edges in nodes:
            out[edges] = F.softmax(beta[edges], dim=-1)
        return out

    return normalize


@register_variant("pc", description="PC-DARTS: 1/K partial channels + channel shuffle, edge-normalisation betas")
class PartialChannels(Variant):
    """PC-DARTS (Xu et al., ICLR 2020): partial channel connections and edge normalisation.

    ``setup`` rebuilds every edge's candidate ops at width C / K (K = 1 keeps the modules); an
    edge sends the first C / K channels through the mixed op and passes the rest by (max-pooled
    2x2 on a stride-2 edge), then shuffles the channels in K groups.  With ``edge_norm`` each
    node sums its inputs weighted by ``softmax(beta_j)`` (betas: ``<group>_beta``, ``1e-3 * randn``,
    trained by the architect with the alphas) and the genotype strengths are
    ``softmax(alpha) * softmax(beta)``.  The A2M code's NB201 PC-DARTS has no edge
    normalisation: ``edge_norm: false``.  ``warmup`` epochs train the weights only (PC-DARTS
    code: 15 of 50).

    Args:
        k: The channel proportion 1 / K (code: 4).
        edge_norm: Edge-normalisation betas.
        warmup: Epochs without architecture steps at the start.
    """

    priority = 10

    def __init__(self, k: int = 4, edge_norm: bool = True, warmup: int = 0) -> None:
        self.k = check_int(k, "k", "variant pc", 1, None)
        self.edge_norm = check_bool(edge_norm, "edge_norm", "variant pc")
        self.warmup = check_int(warmup, "warmup", "variant pc", 0, None)
        self.epoch = 0
        self.beta_of: dict[str, str] = {}

    def options(self) -> dict[str, Any]:
        return {"k": self.k, "edge_norm": self.edge_norm, "warmup": self.warmup}

    def setup(self, model: Any) -> None:
        cells = model.search_cells()
        bad = sorted({c.channels for c in cells if c.channels % self.k})
        if bad:
            widths = sorted({c.channels for c in cells})
            raise ConfigError(f"variant pc: K = {self.k} must divide the channels of every search cell "
                              f"({', '.join(map(str, widths))}); {bad[0]} is not a multiple of {self.k}")  # fmt: skip
        if self.k > 1:
            param = next(model.net.parameters())
            for cell in cells:
                cell.edges = cell.build_edges(cell.channels // self.k).to(device=param.device, dtype=param.dtype)
        if self.edge_norm:
            g = torch.Generator().manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=self.generator).item())
                                              if self.generator is not None else 0)  # fmt: skip
            for group, nodes in model.node_inputs().items():
                name = f"{group}_beta"
                edges = len(model.arch[group])
                init = 1e-3 * torch.randn(edges, generator=g, dtype=torch.float64)
                model.add_arch_parameter(name, init.to(model.arch[group]), _edge_softmax(nodes))
                self.beta_of[group] = name
        inner, k, beta_of = model.edge_fn, self.k, dict(self.beta_of)

        def pc_edge(ops: nn.ModuleDict, x: torch.Tensor, weights: Mapping[str, torch.Tensor], edge: Any) -> torch.Tensor:
            if k == 1:
                out = inner(ops, x, weights, edge)
            else:
                part = x.shape[1] // k
                y = inner(ops, x[:, :part], weights, edge)
                rest = x[:, part:]
                if y.shape[2] != x.shape[2]:
                    rest = F.max_pool2d(rest, 2, 2)
                out = channel_shuffle(torch.cat([y, rest], dim=1), k)
            if beta_of:
                out = weights[beta_of[edge.group]][edge.index] * out
            return out

        model.edge_fn = pc_edge

    def start_epoch(self, epoch: int, epochs: int) -> None:
        self.epoch = epoch

    def arch_step_enabled(self) -> bool:
        return self.epoch >= self.warmup

    def op_strengths(self, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if not self.beta_of:
            return weights
        out = dict(weights)
        for group, beta in self.beta_of.items():
            out[group] = weights[group] * weights[beta].unsqueeze(-1)
        return out


@register_variant("darts-minus", description="DARTS-: auxiliary skip beta_t * x on every edge, decaying to 0")
class DartsMinus(Variant):
    """DARTS- (Chu et al., ICLR 2021): an auxiliary skip connection on every edge.

    Each edge outputs ``mixed_op(x) + beta_t * skip(x)`` with ``skip`` the identity (a
    factorized reduce, trained with the weights, on a stride-2 edge, as the reference code);
    ``beta_t = beta0 * (1 - epoch / E)`` (code: linear decay from 1 to 0).  ``beta0 = 0`` is
    plain DARTS.

    Args:
        beta0: The auxiliary skip's weight at epoch 0.
    """

    priority = 20

    def __init__(self, beta0: float = 1.0) -> None:
        self.beta0 = check_float(beta0, "beta0", "variant darts-minus", 0.0, None)
        self.beta = self.beta0

    def options(self) -> dict[str, Any]:
        return {"beta0": self.beta0}

    def setup(self, model: Any) -> None:
        from supernet.ops import BNOptions, FactorizedReduce

        reduce_skips: dict[int, nn.Module] = {}
        for i, cell in enumerate(model.search_cells()):
            if getattr(cell, "reduction", False):
                bn = BNOptions(False, cell._bn.track_running_stats)
                skip = FactorizedReduce(cell.channels, cell.channels, bn)
                model.add_weight_module(f"aux_skip_{i}", skip)
                for e in range(len(cell.edges)):
                    reduce_skips[id(cell.edges[e])] = model.extra[f"aux_skip_{i}"]
        inner, variant = model.edge_fn, self

        def minus_edge(ops: nn.ModuleDict, x: torch.Tensor, weights: Mapping[str, torch.Tensor], edge: Any) -> torch.Tensor:
            out = inner(ops, x, weights, edge)
            if variant.beta == 0.0:
                return out
            skip = reduce_skips[id(ops)](x) if edge.stride == 2 else x
            return out + variant.beta * skip

        model.edge_fn = minus_edge

    def start_epoch(self, epoch: int, epochs: int) -> None:
        self.beta = self.beta0 * (1.0 - _epochs_fraction(epoch, epochs))


@register_variant("na", description="NA-DARTS: validation loss averaged over the architecture's neighbourhood")
class NeighbourhoodAware(Variant):
    """Neighbourhood-aware DARTS (Wang, Cao, Li, Kitani 2021), as genas reads it (``docs/a2m.md``).

    The validation loss becomes the mean over the architecture and ``samples`` neighbours; a
    neighbour differs in ``size`` random edges, on each of which the logit of the current
    strongest op is swapped with that of another op drawn uniformly (the continuous counterpart
    of replacing that edge's op: its argmax cell is a Hamming-``size`` neighbour).  A swap is a
    permutation of alpha, so every neighbour's loss is differentiable in alpha and the gradient
    flows through all of them.  The neighbours are drawn once per architecture step (the same
    for all of A2M's four gradients) from the search's seeded generator.  ``size = 0`` is plain
    DARTS.

    Args:
        size: Edges changed per neighbour (the neighbourhood radius).
        samples: Neighbours averaged with the architecture itself.
    """

    priority = 40

    def __init__(self, size: int = 1, samples: int = 3) -> None:
        self.size = check_int(size, "size", "variant na", 0, None)
        self.samples = check_int(samples, "samples", "variant na", 1, None)
        self.groups: tuple[str, ...] = ()

    def options(self) -> dict[str, Any]:
        return {"size": self.size, "samples": self.samples}

    def setup(self, model: Any) -> None:
        self.groups = tuple(model.groups)
        edges = sum(len(model.arch[g]) for g in self.groups)
        if self.size > edges:
            raise ConfigError(f"variant na: size {self.size} is more edges than the cell has ({edges}); "
                              f"allowed: 0 to {edges}")  # fmt: skip

    def draw(self, arch: Mapping[str, torch.Tensor]) -> list[list[tuple[str, int, int, int]]]:
        """``samples`` neighbours, each a list of (group, edge, the edge's argmax op, the op it is swapped with)."""
        groups = self.groups or tuple(arch)
        rows = [(g, e) for g in groups for e in range(len(arch[g]))]
        gen = self.generator if self.generator is not None else torch.Generator().manual_seed(0)
        out = []
        for _ in range(self.samples):
            picks = torch.randperm(len(rows), generator=gen)[: self.size].tolist()
            swaps = []
            for i in picks:
                g, e = rows[i]
                num_ops = arch[g].shape[-1]
                top = int(arch[g][e].argmax())
                other = int(torch.randint(0, num_ops - 1, (1,), generator=gen))
                swaps.append((g, e, top, other + (other >= top)))  # uniform over the ops other than the argmax
            out.append(swaps)
        return out

    @staticmethod
    def neighbour(arch: Mapping[str, torch.Tensor], swaps: list[tuple[str, int, int, int]]) -> dict[str, torch.Tensor]:
        """``arch`` with logits ``top`` and ``o`` of each listed edge swapped (differentiable: a fixed permutation)."""
        out = dict(arch)
        for g, e, top, o in swaps:
            a = out[g]
            perm = torch.arange(a.shape[-1], device=a.device)
            perm[top], perm[o] = o, top
            row = a[e][perm]
            out[g] = torch.cat([a[:e], row.unsqueeze(0), a[e + 1:]], dim=0)
        return out

    def val_loss(self, loss_fn: LossFn) -> LossFn:
        if self.size == 0:
            return loss_fn
        draws: list[list[tuple[str, int, int, int]]] | None = None

        def na_loss(arch: Mapping[str, torch.Tensor]) -> torch.Tensor:
            nonlocal draws
            if draws is None:  # drawn at the first evaluation, at the step's alphas; reused by every gradient
                draws = self.draw({k: v.detach() for k, v in arch.items()})
            total = loss_fn(arch)
            for swaps in draws:
                total = total + loss_fn(self.neighbour(arch, swaps))
            return total / (1 + len(draws))

        return na_loss
