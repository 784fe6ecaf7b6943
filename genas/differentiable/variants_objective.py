"""Variants that change what the steps optimise: ``beta`` (beta-DARTS), ``sdarts-rs`` (SDARTS-RS), ``na`` (NA-DARTS).

``beta`` and ``na`` wrap the validation loss every architecture gradient is taken of;
``sdarts-rs`` replaces the mixing weights of the weight step only.  Registered on import
(:mod:`genas.differentiable.variants` imports this module).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from genas.errors import ConfigError
from genas.validation import check_float, check_int
from genas.differentiable.variant_base import LossFn, Variant, epochs_fraction, register_variant

__all__ = ["BetaDecay", "SmoothRandom", "NeighbourhoodAware"]


@register_variant("beta", description="beta-DARTS: lambda_t * mean logsumexp(alpha) added to the validation loss")
class BetaDecay(Variant):
    """beta-DARTS's beta-decay regulariser (Ye et al., CVPR 2022), on the alphas (not PC betas).

    The term ``lambda_t * sum_groups w_group * mean_e logsumexp(alpha_e)`` joins the validation
    loss, so it is inside every gradient an architect takes (all four of A2M's).  ``lambda_t =
    init + slope * epoch`` with the epoch counted from 0 (beta-DARTS code ``0 + 50 * epoch / 100``,
    A2M code ``epoch / 2``).  In the DARTS space the A2M paper (Appendix C.5, eq. 47) weighs the
    normal and the reduce alphas separately: ``w_normal`` = ``normal_weight``, ``w_reduce`` =
    ``reduce_weight`` (AsquaredM's ``--w_nor p`` is ``2p`` and ``2 (1 - p)``; its default p = 0.5
    is 1 and 1, genas's default).  NB201 has one alpha and the weights are not defined there.

    Args:
        init: lambda at epoch 0.
        slope: Increase of lambda per epoch.
        normal_weight: Weight of the normal cell's term (DARTS space; default 1).
        reduce_weight: Weight of the reduce cell's term (DARTS space; default 1).
    """

    priority = 30

    def __init__(self, init: float = 0.0, slope: float = 0.5, normal_weight: float | None = None,
                 reduce_weight: float | None = None) -> None:  # fmt: skip
        self.init = check_float(init, "init", "variant beta", 0.0, None)
        self.slope = check_float(slope, "slope", "variant beta", 0.0, None)
        self.cell_weights_set = normal_weight is not None or reduce_weight is not None
        self.normal_weight = check_float(1.0 if normal_weight is None else normal_weight, "normal_weight",
                                         "variant beta", 0.0, None)  # fmt: skip
        self.reduce_weight = check_float(1.0 if reduce_weight is None else reduce_weight, "reduce_weight",
                                         "variant beta", 0.0, None)  # fmt: skip
        self.lam = self.init
        self.groups: tuple[str, ...] = ()

    def options(self) -> dict[str, Any]:
        return {"init": self.init, "slope": self.slope, "normal_weight": self.normal_weight,
                "reduce_weight": self.reduce_weight}  # fmt: skip

    def setup(self, model: Any) -> None:
        self.groups = tuple(model.groups)
        if self.cell_weights_set and set(self.groups) != {"normal", "reduce"}:
            raise ConfigError(f"variant beta: normal_weight / reduce_weight weigh the DARTS space's normal and reduce "
                              f"alphas; search space {model.space.name!r} has one alpha group, so they are not "
                              f"defined there; allowed: leave both unset")  # fmt: skip

    def start_epoch(self, epoch: int, epochs: int) -> None:
        self.lam = self.init + self.slope * epoch

    def weight(self, group: str) -> float:
        """The weight of ``group``'s term: ``normal_weight`` / ``reduce_weight``, 1 for any other group."""
        return {"normal": self.normal_weight, "reduce": self.reduce_weight}.get(group, 1.0)

    def regulariser(self, arch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``sum over groups of w_group * mean_e logsumexp(alpha_e)`` (without lambda)."""
        groups = self.groups or tuple(arch)
        return sum(self.weight(g) * torch.logsumexp(arch[g], dim=-1).mean() for g in groups)

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
    perturbed argmax at 1); the architecture step and the stored alphas are untouched.
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
        self.eps = self.eps_min + (self.eps_max - self.eps_min) * epochs_fraction(epoch, epochs)

    def weight_step_weights(self, weights: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
        out = dict(weights)
        for name, w in weights.items():
            if w.dim() != 2:  # per-edge op weights only (not PC-DARTS's edge betas)
                continue
            noise = torch.rand(w.shape, generator=generator, dtype=torch.float64).to(w) * (2 * self.eps) - self.eps
            p = w.detach() + noise
            top = p.argmax(-1)  # as the reference's clip(): the argmax of the perturbed row, before the clamp
            p = p.clamp_(0.0, 1.0)
            dead = p.sum(-1) == 0
            if dead.any():
                p[dead, top[dead]] = 1.0
            out[name] = p / p.sum(-1, keepdim=True)
        return out


@register_variant("na", description="NA-DARTS: validation loss averaged over the architecture's neighbourhood")
class NeighbourhoodAware(Variant):
    """Neighbourhood-aware DARTS (Wang, Cao, Li, Kitani 2021), as genas reads it (``docs/a2m.md``).

    The paper's method section was not available to this project: this is genas's own reading.
    The validation loss becomes the mean over the architecture and ``samples`` neighbours; a
    neighbour differs in ``size`` random edges, on each of which the logit of the current
    strongest op is swapped with that of another op drawn uniformly (the continuous counterpart
    of replacing that edge's op: its argmax cell is a Hamming-``size`` neighbour), and ``margin``
    is added to the drawn op's logit.  Swap and shift are a fixed affine map of alpha, so every
    neighbour's loss is differentiable in alpha and the gradient flows through all of them.  The
    neighbours are drawn once per architecture step (the same for all of A2M's four gradients)
    from the search's seeded generator.  ``size = 0`` is plain DARTS.

    With ``margin`` 0 (a pure swap) a neighbour is as close to the architecture as alpha's logits
    are to each other: at the usual ``1e-3 * randn`` start its loss differs from the
    architecture's by about 1e-5, and the neighbourhood only tells apart different cells once
    alpha has peaked.  ``margin`` m makes the drawn op lead its edge by m logits whatever alpha's
    spread, so the neighbours are distinct cells from the first step (m = 2 of 5 ops: weight >= 0.65).

    Args:
        size: Edges changed per neighbour (the neighbourhood radius).
        samples: Neighbours averaged with the architecture itself.
        margin: Added to the drawn op's logit on each changed edge (0: the swap alone).
    """

    priority = 40

    def __init__(self, size: int = 1, samples: int = 3, margin: float = 0.0) -> None:
        self.size = check_int(size, "size", "variant na", 0, None)
        self.samples = check_int(samples, "samples", "variant na", 1, None)
        self.margin = check_float(margin, "margin", "variant na", 0.0, None)
        self.groups: tuple[str, ...] = ()

    def options(self) -> dict[str, Any]:
        return {"size": self.size, "samples": self.samples, "margin": self.margin}

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
    def neighbour(arch: Mapping[str, torch.Tensor], swaps: list[tuple[str, int, int, int]],
                  margin: float = 0.0) -> dict[str, torch.Tensor]:  # fmt: skip
        """``arch`` with logits ``top`` and ``o`` of each listed edge swapped, plus ``margin`` on ``o`` (affine in ``arch``)."""
        out = dict(arch)
        for g, e, top, o in swaps:
            a = out[g]
            perm = torch.arange(a.shape[-1], device=a.device)
            perm[top], perm[o] = o, top
            row = a[e][perm]
            if margin:
                row = row + margin * F.one_hot(torch.tensor(o, device=a.device), a.shape[-1]).to(row)
            out[g] = torch.cat([a[:e], row.unsqueeze(0), a[e + 1:]], dim=0)
        return out

    def val_loss(self, loss_fn: LossFn) -> LossFn:
        if self.size == 0:
            return loss_fn
        draws: list[list[tuple[str, int, int, int]]] | None = None
        margin = self.margin

        def na_loss(arch: Mapping[str, torch.Tensor]) -> torch.Tensor:
            nonlocal draws
            if draws is None:  # drawn at the first evaluation, at the step's alphas; reused by every gradient
                draws = self.draw({k: v.detach() for k, v in arch.items()})
            total = loss_fn(arch)
            for swaps in draws:
                total = total + loss_fn(self.neighbour(arch, swaps, margin))
            return total / (1 + len(draws))

        return na_loss
