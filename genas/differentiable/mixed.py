"""Mixed-op supernets: every edge is the softmax-weighted sum of its candidate ops (DARTS eq. 1).

A mixed-op supernet wraps the one-shot supernet of its space (``supernet.nb201`` /
``supernet.darts``): the same op modules, the same cell wiring, the same macro network, so
weights trained here are a genuine one-shot supernet (``model.net.subnet(arch)`` gives the
discrete network).  What it adds is the architecture parameters, kept apart from the weights:

* ``arch_parameters()``: the logits alpha, one (edges x ops) matrix per group: ``alpha``
  (NB201, shared by every cell, as in the benchmark's DARTS) or ``normal`` / ``reduce`` (DARTS);
* ``weight_parameters()``: everything in ``model.net``.

``none`` is the zero op: its weight takes part in the softmax, its output is zero, so it adds
nothing to the sum.  Variants (``genas.differentiable.variants``) change the search through these
seams: ``add_arch_parameter`` (extra parameters such as edge-normalisation betas, with their
own normaliser), ``add_weight_module`` (modules trained with the weights), ``edge_fn`` (how one
edge turns its ops and the weights into an output), on NB201 ``cell_fn`` (how one search cell runs
its edges on its input: AsquaredM's PC-DARTS samples the channels there, once per cell), and the
mixing weights handed to ``forward_weights``.

Example:
    >>> import torch
    >>> from genas.differentiable import create_mixed_supernet
    >>> net = create_mixed_supernet("nb201", num_classes=10, channels=4, layers=1)
    >>> net(torch.randn(2, 3, 8, 8)).shape, [p.shape for p in net.arch_parameters()]
    (torch.Size([2, 10]), [torch.Size([6, 5])])
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genas.registry import Registry
from genas.spaces import DARTS_OPS, NB201_OPS, DartsArch, NB201Arch, SearchSpace
from genas.spaces.darts import DARTS_EDGES, NODE_EDGES
from supernet.darts import DartsSupernet
from supernet.nb201 import NB201Supernet

__all__ = [
    "MIXED_SUPERNETS", "create_mixed_supernet", "MixedOpSupernet", "NB201MixedOp", "DartsMixedOp",
    "EdgeRef", "EdgeFn", "NB201CellFn", "mixed_op", "run_nb201_cell",
]  # fmt: skip

Weights = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class EdgeRef:
    """Which edge an edge function is computing.

    Attributes:
        group: The architecture parameter that weights it (``alpha``, ``normal``, ``reduce``).
        index: Its position in the space's edge order (the row of that parameter).
        stride: 2 on the input edges of a DARTS reduce cell, else 1.
    """

    group: str
    index: int
    stride: int = 1


#: ``edge_fn(ops, x, weights, edge) -> output``: ``ops`` maps op name -> module (no ``none``),
#: ``weights`` the normalised architecture weights of this forward pass.
EdgeFn = Callable[[nn.ModuleDict, torch.Tensor, Weights, EdgeRef], torch.Tensor]

#: ``cell_fn(cell, x, edge) -> output`` of one NB201 search cell on its input ``x``, where
#: ``edge(e, y)`` computes edge ``e`` on its input ``y`` (through ``edge_fn``).
NB201CellFn = Callable[[nn.Module, torch.Tensor, Callable[[int, torch.Tensor], torch.Tensor]], torch.Tensor]


def run_nb201_cell(cell: nn.Module, x: torch.Tensor, edge: Callable[[int, torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """The plain NB201 cell: its wiring run on the whole input (the default ``NB201MixedOp.cell_fn``)."""
    return cell.forward_edges(x, edge)


def mixed_op(ops: nn.ModuleDict, x: torch.Tensor, weights: Weights, edge: EdgeRef) -> torch.Tensor:
    """DARTS eq. 1, ``sum_o w_o * o(x)``; column 0 (``none``) is the zero op and adds nothing.

    When the weights need a gradient (an architecture pass) the sum is one matrix-vector product
    over the stacked op outputs, whose backward gives all ``dL/dw_o`` in one pass; the weight step
    (weights detached) keeps the plain multiply-add, which is cheaper there.  Same values either way.
    """
    w = weights[edge.group][edge.index]
    ys = [op(x) for op in ops.values()]
    if w.requires_grad:
        return _matvec_sum(w[1:], ys)
    out = w[1] * ys[0]
    for k in range(1, len(ys)):
        out = out + w[k + 1] * ys[k]
    return out


def _matvec_sum(w: torch.Tensor, ys: list[torch.Tensor]) -> torch.Tensor:
    """``sum_k w_k * ys[k]`` as ``w @ stack(flattened ys)``, flattening in the tensors' memory order."""
    y0 = ys[0]
    if y0.dim() == 4 and not y0.is_contiguous() and y0.is_contiguous(memory_format=torch.channels_last):
        b, c, h, wd = y0.shape
        flat = torch.stack([y.permute(0, 2, 3, 1).reshape(-1) for y in ys])  # views of NHWC memory
        return (w @ flat).view(b, h, wd, c).permute(0, 3, 1, 2)
    return (w @ torch.stack([y.reshape(-1) for y in ys])).view(y0.shape)


def _softmax(logits: torch.Tensor) -> torch.Tensor:
    return F.softmax(logits, dim=-1)


class MixedOpSupernet(nn.Module, ABC):
    """Base class: a one-shot supernet ``net`` plus architecture parameters.

    Args:
        net: The one-shot supernet whose modules (and wiring) the mixed ops use.
        groups: Architecture groups and their number of edges.
        num_ops: Candidate ops per edge (``none`` included).
        alpha_init: Alpha starts as ``alpha_init * randn`` (A2M / DARTS code: 1e-3).
        seed: Seeds the alpha draw.
    """

    space: SearchSpace

    def __init__(self, net: nn.Module, groups: Mapping[str, int], num_ops: int, alpha_init: float, seed: int) -> None:
        super().__init__()
        self.net = net
        self.arch = nn.ParameterDict()
        self._normalize: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}
        self.groups = tuple(groups)
        g = torch.Generator().manual_seed(seed)
        param = next(net.parameters())
        for name, edges in groups.items():
            init = alpha_init * torch.randn(edges, num_ops, generator=g, dtype=torch.float64)
            self.add_arch_parameter(name, init.to(param), _softmax)
        self.edge_fn: EdgeFn = mixed_op
        self.extra = nn.ModuleDict()  # weight modules a variant adds (DARTS- auxiliary skips)
        self.hparams = {**net.hparams, "mixed_op": True, "alpha_init": alpha_init}

    # ---- parameters ---------------------------------------------------------------------
    def add_arch_parameter(self, name: str, value: torch.Tensor, normalize: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """Register an architecture parameter and the map from it to the weights a forward pass uses."""
        self.arch[name] = nn.Parameter(value.detach().clone())
        self._normalize[name] = normalize

    def arch_parameters(self) -> list[nn.Parameter]:
        """The architecture parameters (alphas and any a variant added), in registration order."""
        return list(self.arch.values())

    def weight_parameters(self) -> list[nn.Parameter]:
        """Every weight of the network and of the variants' modules (what SGD trains); no architecture parameter."""
        return [*self.net.parameters(), *self.extra.parameters()]

    def add_weight_module(self, name: str, module: nn.Module) -> None:
        """Register a module whose weights train with the network's (e.g. DARTS-'s auxiliary skip)."""
        param = next(self.net.parameters())
        self.extra[name] = module.to(device=param.device, dtype=param.dtype)

    def search_cells(self) -> list[nn.Module]:
        """The search cells of ``net`` (each with ``edges``, ``channels`` and ``build_edges``)."""
        return [c for c in self.net.cells if hasattr(c, "build_edges")]

    @abstractmethod
    def edge_ref(self, cell: nn.Module, e: int) -> EdgeRef:
        """The :class:`EdgeRef` the forward pass hands ``edge_fn`` for edge ``e`` of search cell ``cell``."""

    @abstractmethod
    def node_inputs(self) -> dict[str, list[list[int]]]:
        """Per architecture group, the incoming edge indices of each intermediate node (PC-DARTS edge normalisation)."""

    def arch_values(self) -> dict[str, torch.Tensor]:
        """The architecture parameters as detached tensors, by name."""
        return {k: p.detach() for k, p in self.arch.items()}

    def mixing_weights(self, arch: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """The normalised weights of ``arch`` (default: the parameters), e.g. softmax over each edge's ops."""
        arch = self.arch if arch is None else arch
        return {k: self._normalize[k](arch[k]) for k in self.arch}

    # ---- forward ------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, arch: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Logits with architecture ``arch`` (a name -> logits mapping; default: the parameters)."""
        return self.forward_weights(x, self.mixing_weights(arch))

    @abstractmethod
    def forward_weights(self, x: torch.Tensor, weights: Weights) -> torch.Tensor:
        """Logits with every edge mixed by the given normalised ``weights``."""

    # ---- discretisation -----------------------------------------------------------------
    @abstractmethod
    def derive(self, strengths: Weights) -> Any:
        """The discrete architecture of per-edge op strengths (``mixing_weights`` or a variant's)."""

    @abstractmethod
    def skip_counts(self, arch: Any) -> dict[str, int]:
        """Number of ``skip_connect`` edges of a derived architecture, per cell type."""

    def op_weight_means(self, weights: Weights) -> dict[str, float]:
        """Mean softmax weight of each op over the edges of each group (``w_<op>`` or ``<group>_w_<op>``)."""
        out = {}
        for group in self.groups:
            prefix = "" if len(self.groups) == 1 else f"{group}_"
            means = weights[group].detach().mean(0).tolist()
            out.update({f"{prefix}w_{op}": round(m, 6) for op, m in zip(self.space.ops, means)})
        return out


class NB201MixedOp(MixedOpSupernet):
    """The NB201 mixed-op supernet: one alpha (6 x 5) shared by every search cell.

    Args:
        alpha_init: Alpha starts as ``alpha_init * randn``.
        seed: Seeds the alpha draw.
        affine: Learnable affine BN in the cells (A2M / AutoDL DARTS: False).
        geometry: The rest of :class:`supernet.nb201.NB201Supernet`'s arguments (``num_classes``,
            ``in_chans``, ``channels``, ``layers``, ``track_running_stats``, ``device``, ``dtype``).
    """

    def __init__(self, alpha_init: float = 1e-3, seed: int = 0, *, affine: bool = False, **geometry: Any) -> None:
        net = NB201Supernet(affine=affine, **geometry)
        super().__init__(net, {"alpha": len(net.space.edges)}, len(NB201_OPS), alpha_init, seed)
        self.space = net.space
        self.cell_fn: NB201CellFn = run_nb201_cell

    def forward_weights(self, x: torch.Tensor, weights: Weights) -> torch.Tensor:
        def cell_fn(k: int, cell: Any, h: torch.Tensor) -> torch.Tensor:
            return self.cell_fn(cell, h, lambda e, y: self.edge_fn(cell.edges[e], y, weights, self.edge_ref(cell, e)))

        return self.net.run(x, cell_fn)

    def edge_ref(self, cell: nn.Module, e: int) -> EdgeRef:
        return EdgeRef("alpha", e)

    def node_inputs(self) -> dict[str, list[list[int]]]:
        return {"alpha": [[e for e, (to, _) in enumerate(self.space.edges) if to == j] for j in (1, 2, 3)]}

    def derive(self, strengths: Weights) -> NB201Arch:
        """Argmax per edge, ``none`` included (the NB201 DARTS protocol)."""
        return NB201Arch.from_genes(strengths["alpha"].argmax(-1).tolist())

    def skip_counts(self, arch: NB201Arch) -> dict[str, int]:
        return {"skips": arch.ops.count("skip_connect")}


class DartsMixedOp(MixedOpSupernet):
    """The DARTS mixed-op supernet: ``normal`` and ``reduce`` alphas (14 x 8 each).

    Args:
        alpha_init: Alphas start as ``alpha_init * randn``.
        seed: Seeds the alpha draw.
        affine: Learnable affine BN in the cells (DARTS search model: False).
        geometry: The rest of :class:`supernet.darts.DartsSupernet`'s arguments (``num_classes``,
            ``in_chans``, ``channels``, ``layers`` (search: 8), ``track_running_stats``,
            ``stem_multiplier``, ``stem``, ``device``, ``dtype``).
    """

    def __init__(self, alpha_init: float = 1e-3, seed: int = 0, *, affine: bool = False, **geometry: Any) -> None:
        net = DartsSupernet(affine=affine, **geometry)
        edges = len(DARTS_EDGES)
        super().__init__(net, {"normal": edges, "reduce": edges}, len(DARTS_OPS), alpha_init, seed)
        self.space = net.space

    def forward_weights(self, x: torch.Tensor, weights: Weights) -> torch.Tensor:
        def cell_fn(i: int, cell: Any, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
            return cell.forward_edges(s0, s1, lambda e, y: self.edge_fn(cell.edges[e], y, weights, self.edge_ref(cell, e)))

        return self.net.run(x, cell_fn)

    def edge_ref(self, cell: nn.Module, e: int) -> EdgeRef:
        """Stride 2 on the edges from the two cell inputs (nodes 0, 1) of a reduce cell."""
        stride = 2 if cell.reduction and DARTS_EDGES[e][1] < 2 else 1
        return EdgeRef("reduce" if cell.reduction else "normal", e, stride)

    def node_inputs(self) -> dict[str, list[list[int]]]:
        nodes = [list(edges) for edges in NODE_EDGES.values()]
        return {"normal": nodes, "reduce": nodes}

    def derive(self, strengths: Weights) -> DartsArch:
        """Per node, the two input edges with the strongest non-``none`` op, each with that op (DARTS code)."""
        cells = {}
        for group in ("normal", "reduce"):
            w = strengths[group].detach().cpu()
            genes = [0] * len(DARTS_EDGES)
            for edges in NODE_EDGES.values():
                best = sorted(edges, key=lambda e: -float(w[e, 1:].max()))[:2]  # stable: ties keep edge order
                for e in best:
                    genes[e] = 1 + int(w[e, 1:].argmax())
            cells[group] = tuple(genes)
        return DartsArch(cells["normal"], cells["reduce"])

    def skip_counts(self, arch: DartsArch) -> dict[str, int]:
        skip = DARTS_OPS.index("skip_connect")
        return {"skips_normal": arch.normal.count(skip), "skips_reduce": arch.reduce.count(skip)}


MIXED_SUPERNETS: Registry[type[MixedOpSupernet]] = Registry("mixed-op supernet")
MIXED_SUPERNETS.add("nb201", NB201MixedOp, description="NAS-Bench-201 network, one alpha shared by all cells")
MIXED_SUPERNETS.add("darts", DartsMixedOp, description="DARTS network, normal and reduce alphas")


def create_mixed_supernet(space: str, **kwargs: Any) -> MixedOpSupernet:
    """Build the mixed-op supernet of search space ``space``; ``None`` options keep their defaults.

    Example:
        >>> net = create_mixed_supernet("darts", num_classes=10, channels=4, layers=3)
        >>> sorted(net.arch), len(net.weight_parameters()) > 0
        (['normal', 'reduce'], True)
    """
    cls = MIXED_SUPERNETS.get(space)
    return cls(**{k: v for k, v in kwargs.items() if v is not None})
