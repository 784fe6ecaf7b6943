"""Variants that change what the mixed-op network computes: ``pc`` (PC-DARTS) and ``darts-minus`` (DARTS-).

Both wrap ``model.edge_fn`` in :meth:`~genas.differentiable.variant_base.Variant.setup`; ``pc`` also
rebuilds the edges' ops at C / K and adds edge-normalisation betas, ``darts-minus`` adds
auxiliary skip modules trained with the weights.  Registered on import
(:mod:`genas.differentiable.variants` imports this module).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genas.errors import ConfigError
from genas.validation import check_bool, check_float, check_int
from genas.differentiable.variant_base import Variant, epochs_fraction, register_variant

__all__ = ["PartialChannels", "DartsMinus", "channel_shuffle"]


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
            for group, nodes in model.node_inputs().items():
                name = f"{group}_beta"
                edges = len(model.arch[group])
                init = 1e-3 * torch.randn(edges, generator=self.generator, dtype=torch.float64)
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
        self.beta = self.beta0 * (1.0 - epochs_fraction(epoch, epochs))
