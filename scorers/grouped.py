"""The ``grouped`` flatness engine: every perturbed copy of one or several candidates in one forward.

The K perturbed copies of a candidate (sigma levels x draws), and those of several candidates,
become G *groups* of one network: activations are ``(B, G * C, H, W)`` with group ``g``'s channels
at ``[g * C, (g + 1) * C)``.  Every per-channel operation (ReLU, pooling, sums, eval-mode BN) acts
on the groups as they are; a convolution becomes one grouped convolution (``groups = G *
conv.groups``, the G weight sets stacked) with the BatchNorm after it folded in (W * s and
beta - mean * s, s = gamma / sqrt(var + eps), per group: each group has its own perturbed weights
and its candidate's recalibrated statistics); the classifier is one batched matmul.  The first
convolution reads the shared input image once (a dense conv with G * C output channels).

Candidates differ in their cells: on each edge, the groups whose candidate uses an op module are
gathered (``index_select`` over channels), run through that module's grouped form, and added back
into the edge's output; an edge whose op is ``none`` for a group adds nothing there.  With one
candidate every edge has one op covering all groups and nothing is gathered.

This needs no vmap (which fails with BatchNorm on CUDA in torch 2.11) and issues one kernel per
layer for all G copies instead of G.  It knows the built-in NB201 and DARTS subnets' modules; any
other module raises ``ValueError`` naming it.  In fp32 it gives the ``loop`` engine's losses to 1e-5
(``tests/test_grouped_flatness.py``); ``precision`` ``tf32`` or ``bf16`` trade exactness for speed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from scorers.perturb import _groups, _reduce, exact_fp32
from supernet.darts import DartsFixedCell, DartsSubnet
from supernet.darts import run_cell as darts_cell
from supernet.nb201 import NB201FixedCell, NB201Subnet
from supernet.nb201 import run_cell as nb201_cell
from supernet.ops import FactorizedReduce, Identity, ResNetBasicBlock

__all__ = ["Candidate", "GroupedNetwork", "grouped_loss_sums", "PRECISIONS"]

PRECISIONS = ("bf16", "fp32", "tf32")
_STATELESS = (nn.ReLU, nn.AvgPool2d, nn.MaxPool2d, nn.Identity, Identity, nn.AdaptiveAvgPool2d)


@dataclass
class Candidate:
    """One candidate: its subnet, the parameters perturbed and their K perturbed values.

    Attributes:
        subnet: The candidate's subnet (modules shared with the supernet), in eval mode.
        params: The perturbed parameters (the subnet's own).
        values: K lists, the perturbed values of ``params`` in order.
        stats: ``id(bn) -> (running_mean, running_var)`` of the subnet's BN layers, taken right
            after its recalibration (the supernet's buffers are overwritten by the next candidate's).
    """

    subnet: nn.Module
    params: Sequence[torch.Tensor]
    values: Sequence[Sequence[torch.Tensor]]
    stats: dict[int, tuple[torch.Tensor, torch.Tensor]]

    @classmethod
    def of(cls, subnet: nn.Module, params: Sequence[torch.Tensor], values: Sequence[Sequence[torch.Tensor]]) -> Candidate:
        """A candidate whose BN statistics are those in its modules now (copied)."""
        stats = {id(m): (m.running_mean.clone(), m.running_var.clone()) for m in subnet.modules()
                 if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats}  # fmt: skip
        return cls(subnet, list(params), values, stats)


class _Groups:
    """Which candidate and perturbation each group is, and the value of any parameter in it."""

    def __init__(self, cands: Sequence[Candidate]) -> None:
        self.cands = cands
        self.of = [(c, k) for c, cand in enumerate(cands) for k in range(len(cand.values))]
        self.index = [{id(p): j for j, p in enumerate(cand.params)} for cand in cands]

    def value(self, g: int, p: torch.Tensor) -> torch.Tensor:
        c, k = self.of[g]
        j = self.index[c].get(id(p))
        return p.detach() if j is None else self.cands[c].values[k][j]

    def stats(self, g: int, bn: nn.modules.batchnorm._BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cands[self.of[g][0]].stats[id(bn)]


def _channels(gs: Sequence[int], width: int, device: torch.device) -> torch.Tensor:
    return (torch.tensor(list(gs), device=device).view(-1, 1) * width + torch.arange(width, device=device)).flatten()


class _Conv(nn.Module):
    """A conv (and the eval BN after it, folded) for the groups ``gs``; ``shared``: one input for all."""

    def __init__(self, conv: nn.Conv2d, bn: nn.modules.batchnorm._BatchNorm | None, G: _Groups, gs: Sequence[int],
                 shared: bool = False) -> None:  # fmt: skip
        super().__init__()
        ws, bs = [], []
        for g in gs:
            w = G.value(g, conv.weight)
            b = G.value(g, conv.bias) if conv.bias is not None else None
            if bn is not None:
                mean, var = G.stats(g, bn)
                s = torch.rsqrt(var + bn.eps)
                if bn.affine:
                    s = s * G.value(g, bn.weight)
                w = w * s.view(-1, 1, 1, 1)
                b = (G.value(g, bn.bias) if bn.affine else torch.zeros_like(mean)) - mean * s
            ws.append(w.contiguous())
            bs.append(b)
        self.weight = torch.cat(ws)
        self.bias = torch.cat(bs) if bs[0] is not None else None
        self.groups = conv.groups if shared else conv.groups * len(gs)
        if shared and conv.groups != 1:
            raise ValueError("the grouped engine shares the input only with a dense first convolution")
        self.stride, self.padding, self.dilation = conv.stride, conv.padding, conv.dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class _BN(nn.Module):
    """An eval-mode BN with each group's (perturbed) affine parameters and its candidate's statistics."""

    def __init__(self, bn: nn.modules.batchnorm._BatchNorm, G: _Groups, gs: Sequence[int]) -> None:
        super().__init__()
        cat = lambda f: torch.cat([f(g) for g in gs])  # noqa: E731
        self.weight = cat(lambda g: G.value(g, bn.weight)) if bn.affine else None
        self.bias = cat(lambda g: G.value(g, bn.bias)) if bn.affine else None
        self.mean = cat(lambda g: G.stats(g, bn)[0]) if bn.track_running_stats else None
        self.var = cat(lambda g: G.stats(g, bn)[1]) if bn.track_running_stats else None
        self.eps = bn.eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.mean, self.var, self.weight, self.bias, self.mean is None, 0.0, self.eps)


class _FactorizedReduce(nn.Module):
    """FactorizedReduce per group: the two half-width convs' outputs interleaved group by group."""

    def __init__(self, m: FactorizedReduce, G: _Groups, gs: Sequence[int]) -> None:
        super().__init__()
        self.n = len(gs)
        self.conv_1, self.conv_2 = _Conv(m.conv_1, None, G, gs), _Conv(m.conv_2, None, G, gs)
        self.c1, self.c2 = m.conv_1.out_channels, m.conv_2.out_channels
        self.bn = _BN(m.bn, G, gs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        a, b = self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])
        n, h, w = a.shape[0], a.shape[2], a.shape[3]
        y = torch.cat([a.view(n, self.n, self.c1, h, w), b.view(n, self.n, self.c2, h, w)], dim=2)
        return self.bn(y.view(n, -1, h, w))


class _ResNetBlock(nn.Module):
    def __init__(self, m: ResNetBasicBlock, G: _Groups, gs: Sequence[int]) -> None:
        super().__init__()
        self.conv_a, self.conv_b, self.downsample = (_build(c, G, gs) for c in (m.conv_a, m.conv_b, m.downsample))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


def _build(m: nn.Module, G: _Groups, gs: Sequence[int], shared: bool = False) -> nn.Module:
    """The grouped form of module ``m`` for the groups ``gs``."""
    if isinstance(m, nn.Sequential):
        layers, kids, i = [], list(m), 0
        while i < len(kids):
            k = kids[i]
            nxt = kids[i + 1] if i + 1 < len(kids) else None
            if isinstance(k, nn.Conv2d) and isinstance(nxt, nn.BatchNorm2d) and nxt.track_running_stats:
                layers.append(_Conv(k, nxt, G, gs, shared and not layers))
                i += 2
                continue
            layers.append(_Conv(k, None, G, gs, shared and not layers) if isinstance(k, nn.Conv2d) else _build(k, G, gs))
            i += 1
        return nn.Sequential(*layers)
    if isinstance(m, nn.Conv2d):
        return _Conv(m, None, G, gs, shared)
    if isinstance(m, nn.modules.batchnorm._BatchNorm):
        return _BN(m, G, gs)
    if isinstance(m, ResNetBasicBlock):
        return _ResNetBlock(m, G, gs)
    if isinstance(m, FactorizedReduce):
        return _FactorizedReduce(m, G, gs)
    if isinstance(m, _STATELESS):
        return m
    raise ValueError(f"the grouped engine has no grouped form of {type(m).__name__}")


class _Edge(nn.Module):
    """One edge of a cell for all groups: each op module on the groups whose candidate uses it."""

    def __init__(self, uses: dict[int, tuple[nn.Module, list[int]]], G: _Groups, total: int) -> None:
        super().__init__()
        self.ops = nn.ModuleList(_build(m, G, gs) for m, gs in uses.values())
        self.groups = [None if len(gs) == total else list(gs) for _, gs in uses.values()]  # None: every group
        self.total = total
        self._index: dict[tuple[int, int], torch.Tensor] = {}

    def _channels(self, i: int, width: int, device: torch.device) -> torch.Tensor:
        key = (i, width)
        if key not in self._index:
            self._index[key] = _channels(self.groups[i], width, device)
        return self._index[key]

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        out = None
        width = h.shape[1] // self.total
        for i, (op, gs) in enumerate(zip(self.ops, self.groups)):
            if gs is None:  # the only op of this edge: no gather
                return op(h)
            y = op(h.index_select(1, self._channels(i, width, h.device)))
            per = y.shape[1] // len(gs)
            if out is None:
                out = y.new_zeros((y.shape[0], per * self.total, *y.shape[2:]))
            out.index_add_(1, self._channels(i, per, h.device), y)
        return out


class _Cell(nn.Module):
    """A search cell of every group: edges shared by module, node sums as the space wires them."""

    def __init__(self, cells: Sequence[nn.Module], G: _Groups) -> None:
        super().__init__()
        total = len(G.of)
        first = cells[0]
        self.darts = isinstance(first, DartsFixedCell)
        per_group = [cells[G.of[g][0]] for g in range(total)]
        edges: dict[int, dict[int, tuple[nn.Module, list[int]]]] = {}
        for g, cell in enumerate(per_group):
            for e, op in _cell_ops(cell):
                edges.setdefault(e, {}).setdefault(id(op), (op, []))[1].append(g)
        if self.darts:
            self.pre0 = _build(first.preprocess0, G, range(total))
            self.pre1 = _build(first.preprocess1, G, range(total))
        self.edges = nn.ModuleDict({str(e): _Edge(uses, G, total) for e, uses in sorted(edges.items())})
        self.total = total

    def forward(self, *states: torch.Tensor) -> torch.Tensor:
        def edge_fn(e: int, h: torch.Tensor) -> torch.Tensor | None:
            key = str(e)
            return self.edges[key](h) if key in self.edges else None

        if not self.darts:
            return nb201_cell(states[0], edge_fn)
        out = darts_cell(self.pre0(states[0]), self.pre1(states[1]), edge_fn, edges=[int(k) for k in self.edges])
        n, c, h, w = out.shape
        nodes = 4  # DARTS concatenates nodes 2..5: node-major channels back to group-major
        return out.view(n, nodes, self.total, c // (nodes * self.total), h, w).transpose(1, 2).reshape(n, c, h, w)


def _cell_ops(cell: nn.Module) -> list[tuple[int, nn.Module]]:
    if isinstance(cell, DartsFixedCell):
        return list(zip(cell._edges, cell.ops))
    return [(e, op) for e, (op, none) in enumerate(zip(cell.edges, cell._none)) if not none]


class GroupedNetwork(nn.Module):
    """The subnets of ``cands``, each with its K perturbed weight sets, as one grouped network.

    ``forward(x)`` returns logits ``(B, G, classes)``, group ``g`` being candidate ``c``'s
    perturbation ``k`` in candidate-major order.

    Raises:
        ValueError: The candidates are not all NB201 or all DARTS subnets, or hold a module this
            engine has no grouped form of.
    """

    def __init__(self, cands: Sequence[Candidate]) -> None:
        super().__init__()
        subs = [c.subnet for c in cands]
        first = subs[0]
        if not isinstance(first, (NB201Subnet, DartsSubnet)) or any(type(s) is not type(first) for s in subs):
            raise ValueError(f"the grouped engine runs NB201 or DARTS subnets of one supernet, got {type(first).__name__}")
        G = _Groups(cands)
        every = range(len(G.of))
        self.nb201 = isinstance(first, NB201Subnet)
        self.stem = _build(first.stem, G, every, shared=True)
        self.cells = nn.ModuleList(
            _Cell([s.cells[i] for s in subs], G) if isinstance(cell, (NB201FixedCell, DartsFixedCell)) else _build(cell, G, every)
            for i, cell in enumerate(first.cells)
        )
        self.lastact = _build(first.lastact, G, every) if self.nb201 else nn.Identity()
        self.pool = first.global_pool
        head = first.classifier
        self.weight = torch.stack([G.value(g, head.weight) for g in every]).transpose(1, 2)  # (G, in, classes)
        self.bias = torch.stack([G.value(g, head.bias) for g in every]).unsqueeze(1)  # (G, 1, classes)
        self.groups = len(G.of)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        if self.nb201:
            for cell in self.cells:
                h = cell(h)
        else:
            s0 = h
            for cell in self.cells:
                s0, h = h, cell(s0, h)
        feats = torch.flatten(self.pool(self.lastact(h)), 1)  # (B, G * in)
        feats = feats.view(feats.shape[0], self.groups, -1).transpose(0, 1)  # (G, B, in)
        return torch.baddbmm(self.bias, feats, self.weight).transpose(0, 1)  # (B, G, classes)


@torch.no_grad()
def grouped_loss_sums(cands: Sequence[Candidate], batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
                      per_batch_mean: bool = False, precision: str = "fp32", merge: bool | None = None) -> torch.Tensor:  # fmt: skip
    """Summed validation losses of every group (candidate-major, K per candidate) in one forward per batch.

    Args:
        cands: The candidates (subnets of one supernet, BN statistics taken).
        batches: Validation batches.
        per_batch_mean: Sum per-batch mean losses (GeNAS code) instead of per-image losses.
        precision: ``fp32`` (exact: TF32 off on CUDA), ``tf32`` (PyTorch's TF32 setting kept) or
            ``bf16`` (autocast); the last two are not exact.
        merge: Join consecutive batches into bigger forwards (None: on CUDA).

    Returns:
        ``(G,)`` float64 sums.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    device = batches[0][0].device
    merge = device.type == "cuda" if merge is None else merge
    net = GroupedNetwork(cands)
    sums = torch.zeros(net.groups, dtype=torch.float64, device=device)
    bf16 = torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
    with exact_fp32() if precision == "fp32" else contextlib.nullcontext(), bf16:
        for x, y, sizes in _groups(batches, merge):
            x = x.contiguous() if device.type == "cuda" else x
            logits = net(x).float()  # (B, G, classes)
            target = y.unsqueeze(1).expand(-1, net.groups)
            losses = F.cross_entropy(logits.transpose(1, 2), target, reduction="none").double()  # (B, G)
            sums += _reduce(losses.transpose(0, 1), sizes, per_batch_mean)
    return sums
