"""Variants that change what the mixed-op network computes: ``pc`` (PC-DARTS) and ``darts-minus`` (DARTS-).

Both wrap ``model.edge_fn`` in :meth:`~genas.differentiable.variant_base.Variant.setup` (or, in
AsquaredM's NB201 forms, the NB201 ``model.cell_fn``); ``pc`` also rebuilds the edges' ops at
C / K and adds edge-normalisation betas, ``darts-minus`` adds auxiliary skip modules (one per
stride-2 edge) trained with the weights.  Registered on import
(:mod:`genas.differentiable.variants` imports this module).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genas.errors import ConfigError
from genas.validation import check_bool, check_choice, check_float, check_int
from genas.differentiable.variant_base import Variant, epochs_fraction, register_variant

__all__ = ["PartialChannels", "DartsMinus", "channel_shuffle", "PC_FORMS", "DARTS_MINUS_SOURCES"]


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


PC_FORMS = ("asquaredm", "pcdarts")
DARTS_MINUS_SOURCES = ("cell", "edge")


@register_variant("pc", description="PC-DARTS: 1/K partial channels + channel shuffle, edge-normalisation betas")
class PartialChannels(Variant):
    """PC-DARTS (Xu et al., ICLR 2020): partial channel connections and edge normalisation.

    ``setup`` rebuilds every edge's candidate ops at width C / K (K = 1 keeps the modules).  Two
    forms, the two codes behind the A2M paper's PC-DARTS rows:

    * ``pcdarts`` (the PC-DARTS paper and code, default): per *edge*, the first C / K channels of
      the edge's input go through the mixed op and the rest pass by (max-pooled 2x2 on a stride-2
      edge), then channel shuffle in K groups.  With ``edge_norm`` (default here) each node sums its
      inputs weighted by ``softmax(beta_j)`` (betas: ``<group>_beta``, ``1e-3 * randn``, trained by
      the architect with the alphas) and the genotype strengths are ``softmax(alpha) * softmax(beta)``;
    * ``asquaredm`` (AsquaredM's NB201 code, ``forward_pc``, which produced the paper's NB201 rows):
      per *cell*, the first C / K channels of the cell's input are the cell's node 0, so every edge
      of the cell sees the same channels; the cell's output node is concatenated with the other
      channels and shuffled in K groups.  No betas (``edge_norm`` false); NB201 only.

    ``warmup`` epochs train the weights only (PC-DARTS code: 15 of 50).

    Args:
        k: The channel proportion 1 / K (both codes: 4).
        edge_norm: Edge-normalisation betas (default: true for ``pcdarts``, false for ``asquaredm``,
            which does not define them).
        warmup: Epochs without architecture steps at the start.
        form: ``pcdarts`` (per edge) or ``asquaredm`` (per cell, NB201).
    """

    priority = 10

    def __init__(self, k: int = 4, edge_norm: bool | None = None, warmup: int = 0, form: str = "pcdarts") -> None:
        self.k = check_int(k, "k", "variant pc", 1, None)
        self.form = check_choice(form, "form", "variant pc", PC_FORMS)
        if edge_norm is None:
            edge_norm = self.form == "pcdarts"
        self.edge_norm = check_bool(edge_norm, "edge_norm", "variant pc")
        if self.form == "asquaredm" and self.edge_norm:
            raise ConfigError("variant pc: edge_norm true is not defined for form 'asquaredm' (AsquaredM's NB201 "
                              "PC-DARTS has no betas); allowed with form 'asquaredm': edge_norm false")  # fmt: skip
        self.warmup = check_int(warmup, "warmup", "variant pc", 0, None)
        self.epoch = 0
        self.beta_of: dict[str, str] = {}

    def options(self) -> dict[str, Any]:
        return {"k": self.k, "edge_norm": self.edge_norm, "warmup": self.warmup, "form": self.form}

    def setup(self, model: Any) -> None:
        if self.form == "asquaredm" and model.space.name != "nb201":
            raise ConfigError(f"variant pc: form 'asquaredm' (AsquaredM's per-cell channel sampling) is defined only "
                              f"on search space 'nb201', not {model.space.name!r}; allowed there: form 'pcdarts'")
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
        if self.form == "asquaredm":
            self._setup_per_cell(model)
            return
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

    def _setup_per_cell(self, model: Any) -> None:
        """AsquaredM's ``forward_pc``: the cell runs on the first C / K channels, the rest join its output."""
        inner, k = model.cell_fn, self.k

        def pc_cell(cell: nn.Module, x: torch.Tensor, edge: Callable[[int, torch.Tensor], torch.Tensor]) -> torch.Tensor:
            if k == 1:
                return inner(cell, x, edge)
            part = x.shape[1] // k
            y = inner(cell, x[:, :part], edge)  # every edge of the cell sees these channels
            return channel_shuffle(torch.cat([y, x[:, part:]], dim=1), k)

        model.cell_fn = pc_cell

    def check_budget(self, epochs: int) -> None:
        if self.warmup >= epochs:
            raise ConfigError(f"variant pc: warmup {self.warmup} leaves no architecture step in a search of "
                              f"differentiable.epochs {epochs}; allowed: warmup < epochs (PC-DARTS code: 15 of 50)")

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

    Each edge outputs ``mixed_op(x) + beta_t * skip(x)``, ``beta_t = beta0 * (1 - epoch / E)``
    (DARTS- code: linear decay from 1 to 0, set before each epoch).  ``beta0 = 0`` is plain DARTS.
    ``skip`` is the identity, and on a stride-2 edge a factorized reduce (trained with the
    weights, non-affine BN) of the edge's own: the DARTS- code builds one in every stride-2
    ``MixedOp``, so a DARTS reduce cell has 8.  What ``x`` is:

    * ``edge`` (DARTS- code, and AsquaredM's DARTS-space code; default): the edge's own input;
    * ``cell`` (AsquaredM's NB201 code, which produced the paper's NB201 rows): the cell's input,
      on every edge (``res += auxiliary_op(inputs)`` in its ``SearchCell``); NB201 only.

    Args:
        beta0: The auxiliary skip's weight at epoch 0.
        source: ``edge`` or ``cell``, what the auxiliary skip carries.
    """

    priority = 20

    def __init__(self, beta0: float = 1.0, source: str = "edge") -> None:
        self.beta0 = check_float(beta0, "beta0", "variant darts-minus", 0.0, None)
        self.source = check_choice(source, "source", "variant darts-minus", DARTS_MINUS_SOURCES)
        self.beta = self.beta0

    def options(self) -> dict[str, Any]:
        return {"beta0": self.beta0, "source": self.source}

    def check_with(self, others: Mapping[str, Variant]) -> None:
        pc = others.get("pc")
        if self.source == "cell" and isinstance(pc, PartialChannels) and pc.form == "asquaredm":
            raise ConfigError("variant darts-minus: source 'cell' with pc form 'asquaredm' is not defined (AsquaredM's "
                              "PC forward has no auxiliary skip); allowed with it: darts-minus source 'edge'")

    def setup(self, model: Any) -> None:
        from supernet.ops import BNOptions, FactorizedReduce

        if self.source == "cell":
            if model.space.name != "nb201":
                raise ConfigError(f"variant darts-minus: source 'cell' (AsquaredM's NB201 DARTS-) is defined only on "
                                  f"search space 'nb201', not {model.space.name!r}; allowed there: source 'edge'")
            self._setup_cell_input(model)
            return
        reduce_skips: dict[int, nn.Module] = {}  # id(the edge's op dict) -> that edge's factorized reduce
        for i, cell in enumerate(model.search_cells()):
            for e in range(len(cell.edges)):
                if model.edge_ref(cell, e).stride == 2:
                    bn = BNOptions(False, cell._bn.track_running_stats)
                    model.add_weight_module(f"aux_skip_{i}_{e}", FactorizedReduce(cell.channels, cell.channels, bn))
                    reduce_skips[id(cell.edges[e])] = model.extra[f"aux_skip_{i}_{e}"]
        inner, variant = model.edge_fn, self

        def minus_edge(ops: nn.ModuleDict, x: torch.Tensor, weights: Mapping[str, torch.Tensor], edge: Any) -> torch.Tensor:
            out = inner(ops, x, weights, edge)
            if variant.beta == 0.0:
                return out
            skip = reduce_skips[id(ops)](x) if edge.stride == 2 else x
            return out + variant.beta * skip

        model.edge_fn = minus_edge

    def _setup_cell_input(self, model: Any) -> None:
        """AsquaredM's NB201 ``SearchCell``: every edge adds ``beta_t`` times the cell's input (all stride 1)."""
        inner, variant = model.cell_fn, self

        def minus_cell(cell: nn.Module, x: torch.Tensor, edge: Callable[[int, torch.Tensor], torch.Tensor]) -> torch.Tensor:
            if variant.beta == 0.0:
                return inner(cell, x, edge)
            return inner(cell, x, lambda e, y: edge(e, y) + variant.beta * x)

        model.cell_fn = minus_cell

    def start_epoch(self, epoch: int, epochs: int) -> None:
        self.beta = self.beta0 * (1.0 - epochs_fraction(epoch, epochs))
