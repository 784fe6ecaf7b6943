"""Batched Gaussian weight perturbation: losses of one subnet at K noise levels.

The K perturbed copies (sigma levels x draws) of a subnet are evaluated on every validation
batch before moving to the next, so each batch is read once.  Three equivalent engines:

* ``vmap``: ``torch.func.functional_call`` vectorised over the K stacked parameter sets, one
  batched forward per validation batch.  Measured slower than ``loop`` on the CPU (1.7x) and
  unusable with BatchNorm on CUDA in torch 2.11 (a memory-format query vmap does not implement;
  the engine then warns and falls back to ``loop``), so it is never the default;
* ``loop``: the K parameter sets are swapped into the subnet in turn (pointer swaps, no copy of
  the supernet); the plain sequential form, used as the reference in tests, and the default on
  CUDA, where the validation batches are joined into forwards of up to 2,048 images in NCHW;
* ``threads``: the CPU engine.  Each worker thread owns a copy of the subnet (the active path
  only) whose conv+BN pairs are folded into one conv per perturbation, evaluates its share of the
  batches for all K parameter sets with single-threaded kernels, and the sums are added in a fixed
  order.  On a compute-bound CPU one small forward per core beats one forward split over all cores
  (measured 1.33x on 2 cores), and folding BN saves a pass over the activations (1.12x).

Noise is drawn per parameter tensor from a generator keyed by (seed, supernet parameter name,
level, draw[, architecture]), so the noise on a parameter does not depend on which other
parameters are perturbed: perturbing only the active path gives exactly the losses of
perturbing the whole supernet, and the same key across candidates gives common random numbers.

On CUDA the losses are computed with TF32 off by default (``exact``), so that every engine gives
the same losses to 1e-5 on any GPU generation.  Measured on an H100 (``benchmarks/RESULTS.md``):
TF32 moved the losses by a median 6e-5 against loss steps of 0.1-0.4 between sigma levels and left
the ranking of 40 architectures unchanged, for 1.44x the speed; the flatness option ``tf32`` allows it.
"""

from __future__ import annotations

import contextlib
import copy
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from scorers.base import noise_seed

__all__ = ["NoisePlan", "noise_seed", "make_noise", "perturbed_losses"]

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class NoisePlan:
    """Which perturbations to evaluate.

    Attributes:
        sigmas: Increasing noise levels.
        draws: Independent draws per level (the losses are averaged per level).
        cumulative: GeNAS reference code: level i adds N(0, (sigma_i - sigma_{i-1})^2) to level i-1's weights.
        seed: Base seed.
        arch_key: Mixed into the seed unless common random numbers are wanted ("" = common).
    """

    sigmas: tuple[float, ...]
    draws: int = 1
    cumulative: bool = False
    seed: int = 0
    arch_key: str = ""

    @property
    def size(self) -> int:
        return len(self.sigmas) * self.draws


def _standard_normal(like: torch.Tensor, seed: int) -> torch.Tensor:
    gen = torch.Generator(device=like.device).manual_seed(seed)
    z = torch.randn(like.shape, generator=gen, device=like.device, dtype=like.dtype)
    return z.contiguous(memory_format=torch.channels_last) if _is_channels_last(like) else z


def _is_channels_last(t: torch.Tensor) -> bool:
    return t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()


def make_noise(
    params: dict[str, torch.Tensor], plan: NoisePlan, cache: dict[Any, list[torch.Tensor]] | None = None
) -> list[dict[str, torch.Tensor]]:
    """K = len(sigmas) * draws noise dicts (level-major), keyed like ``params`` (supernet names).

    With common random numbers (``plan.arch_key == ""``) the noise of a parameter is the same for
    every candidate, so a ``cache`` dict (one per scoring session) keeps it: each supernet
    parameter's noise is drawn once per search instead of once per candidate.
    """
    per_name = {}
    for n, p in params.items():
        key = (plan, n)
        if cache is not None and not plan.arch_key and key in cache:
            per_name[n] = cache[key]
            continue
        per_name[n] = _noise_of(n, p, plan)
        if cache is not None and not plan.arch_key:
            cache[key] = per_name[n]
    return [{n: per_name[n][k] for n in params} for k in range(plan.size)]


def _noise_of(name: str, like: torch.Tensor, plan: NoisePlan) -> list[torch.Tensor]:
    """The K noise tensors of one parameter, level-major (index = level * draws + draw)."""
    levels: list[list[torch.Tensor]] = [[] for _ in plan.sigmas]
    for d in range(plan.draws):
        prev = None
        for i, sigma in enumerate(plan.sigmas):
            z = _standard_normal(like, noise_seed(plan.seed, name, i, d, plan.arch_key))
            if plan.cumulative:
                step = sigma - (plan.sigmas[i - 1] if i else 0.0)
                prev = step * z if prev is None else prev + step * z
                levels[i].append(prev)
            else:
                levels[i].append(sigma * z)
    return [t for level in levels for t in level]


@contextlib.contextmanager
def exact_fp32():
    """Turn TF32 off for cuDNN convolutions and CUDA matmuls inside the block (restored after)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@torch.no_grad()
def perturbed_losses(
    model: nn.Module,
    named: Sequence[tuple[str, nn.Parameter]],
    noise: Sequence[dict[str, torch.Tensor]],
    batches: Sequence[Batch],
    batching: str = "loop",
    per_batch_mean: bool = False,
    merge: bool | None = None,
    exact: bool = True,
) -> np.ndarray:
    """Mean validation loss of ``model`` with each of the K noise dicts added to ``named`` parameters.

    Args:
        model: The subnet, in eval mode (BN statistics already recalibrated on clean weights).
        named: ``(key, parameter)`` pairs to perturb; ``key`` indexes the noise dicts.
        noise: K dicts key -> noise tensor.
        batches: Validation batches, each read once.
        batching: ``"vmap"`` (one batched forward of all K), ``"loop"`` or ``"threads"``.
        per_batch_mean: Average per-batch mean losses (GeNAS code) instead of per-image losses.
        merge: Concatenate consecutive batches into forwards of up to :data:`MERGE_IMAGES`
            images (same losses, fewer kernel launches); None merges on CUDA only.
        exact: Turn TF32 off on CUDA (see the module notes); False keeps PyTorch's setting.

    Returns:
        K losses.
    """
    merge = batches[0][0].device.type == "cuda" if merge is None else merge
    with exact_fp32() if exact else contextlib.nullcontext():
        return _perturbed_losses(model, named, noise, batches, batching, per_batch_mean, merge)


#: Device types on which the vmap engine failed once (a batching rule missing in this torch):
#: later calls go straight to the loop engine instead of failing again per candidate.
_VMAP_FAILED: set[str] = set()

#: On CUDA, validation batches are concatenated into forwards of up to this many images (fewer
#: kernel launches per candidate; the per-image losses are the same).
MERGE_IMAGES = 2048


def _groups(batches: Sequence[Batch], merge: bool) -> list[tuple[torch.Tensor, torch.Tensor, list[int]]]:
    """``(x, y, sizes of the original batches in it)``; consecutive batches joined when ``merge``."""
    groups: list[tuple[list[torch.Tensor], list[torch.Tensor], list[int]]] = []
    for x, y in batches:
        if merge and groups and sum(groups[-1][2]) + len(y) <= MERGE_IMAGES:
            groups[-1][0].append(x), groups[-1][1].append(y), groups[-1][2].append(len(y))
        else:
            groups.append(([x], [y], [len(y)]))
    return [(torch.cat(xs) if len(xs) > 1 else xs[0], torch.cat(ys) if len(ys) > 1 else ys[0], n) for xs, ys, n in groups]


def _reduce(losses: torch.Tensor, sizes: list[int], per_batch_mean: bool) -> torch.Tensor:
    """Per-image losses ``(..., N)`` -> the sum of per-image losses, or of per-batch means."""
    if not per_batch_mean:
        return losses.sum(-1)
    return sum(part.mean(-1) for part in losses.split(sizes, dim=-1))


def _vmap_sums(model, named, perturbed, groups, per_batch_mean) -> torch.Tensor:
    """Loss sums of the K perturbed parameter sets by one vmapped forward per group of batches."""
    K = len(perturbed)
    local = {n: p for n, p in model.named_parameters()}
    by_id = {id(p): n for n, p in local.items()}
    names = [by_id[id(p)] for _, p in named]
    stacked = {n: torch.stack([perturbed[k][j].contiguous() for k in range(K)]) for j, n in enumerate(names)}
    fixed = {n: p.contiguous() for n, p in local.items() if n not in stacked}
    buffers = dict(model.named_buffers())

    def forward(params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(model, ({**params, **fixed}, buffers), (x,))

    batched = vmap(forward, in_dims=(0, None))
    sums = torch.zeros(K, dtype=torch.float64, device=groups[0][0].device)
    for x, y, sizes in groups:
        logits = batched(stacked, x.contiguous()).float()  # (K, B, classes)
        losses = F.cross_entropy(logits.flatten(0, 1), y.repeat(K), reduction="none").view(K, -1).double()
        sums += _reduce(losses, sizes, per_batch_mean)
    return sums


def _loop_sums(model, named, perturbed, groups, per_batch_mean) -> torch.Tensor:
    """Loss sums of the K perturbed parameter sets, swapped into ``model`` in turn (no copies)."""
    sums = torch.zeros(len(perturbed), dtype=torch.float64, device=groups[0][0].device)
    originals = [p.data for _, p in named]
    try:
        for x, y, sizes in groups:
            for k, values in enumerate(perturbed):
                for (_, p), w in zip(named, values):
                    p.data = w
                losses = F.cross_entropy(model(x).float(), y, reduction="none").double()
                sums[k] += _reduce(losses, sizes, per_batch_mean)
    finally:
        for (_, p), w in zip(named, originals):
            p.data = w
    return sums


def _perturbed_losses(model, named, noise, batches, batching, per_batch_mean, merge) -> np.ndarray:
    engines = {"vmap": _vmap_sums, "loop": _loop_sums, "threads": _threaded_sums}
    if batching not in engines:
        raise ValueError(f"batching must be 'vmap', 'loop' or 'threads', got {batching!r}")
    base = [p.detach() for _, p in named]
    perturbed = [torch._foreach_add(base, [nz[key] for key, _ in named]) for nz in noise]
    groups = _groups(batches, merge)
    device = groups[0][0].device.type
    if device == "cuda":  # cuDNN's fp32 NCHW convs: 1.2-1.6x its NHWC ones at C=16 (H100)
        perturbed = [[t.contiguous() for t in values] for values in perturbed]
        groups = [(x.contiguous(), y, sizes) for x, y, sizes in groups]
    if batching == "vmap" and device in _VMAP_FAILED:
        batching = "loop"
    try:
        sums = engines[batching](model, named, perturbed, groups, per_batch_mean)
    except RuntimeError as exc:  # a vmap batching rule this torch lacks for some layer
        if batching != "vmap" or ("vmap" not in str(exc) and "NYI" not in str(exc)):
            raise
        warnings.warn(f"flatness: the 'vmap' engine failed on this model ({exc}); using 'loop'", stacklevel=3)
        _VMAP_FAILED.add(device)
        sums = _loop_sums(model, named, perturbed, groups, per_batch_mean)
    denom = len(batches) if per_batch_mean else sum(y.numel() for _, y in batches)
    return (sums / denom).cpu().numpy()


class _FoldedReplica:
    """A copy of ``model`` whose eval-mode Conv2d -> BatchNorm2d pairs are folded into one conv.

    ``params_for(values)`` maps values of the *original* parameters (in ``model.parameters()``
    order) to the replica's parameters: folded weight W * s and bias beta - mean * s, with
    s = gamma / sqrt(var + eps) (gamma = 1, beta = 0 for a non-affine BN); the rest pass through.
    """

    def __init__(self, model: nn.Module) -> None:
        self.module = copy.deepcopy(model)
        index = {id(p): j for j, p in enumerate(self.module.parameters())}
        self.recipe: list[tuple[str, Any]] = []
        folded: dict[int, tuple[nn.Conv2d, nn.BatchNorm2d]] = {}
        for parent in list(self.module.modules()):
            if not isinstance(parent, nn.Sequential):
                continue
            for i in range(len(parent) - 1):
                conv, bn = parent[i], parent[i + 1]
                if (isinstance(conv, nn.Conv2d) and conv.bias is None and isinstance(bn, nn.BatchNorm2d)
                        and bn.track_running_stats and not bn.training):  # fmt: skip
                    new = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                                    conv.dilation, conv.groups, bias=True, device=conv.weight.device)  # fmt: skip
                    folded[id(new.weight)] = ("weight", conv, bn)
                    folded[id(new.bias)] = ("bias", conv, bn)
                    parent[i], parent[i + 1] = new, nn.Identity()
        for p in self.module.parameters():
            if id(p) in folded:
                part, conv, bn = folded[id(p)]
                self.recipe.append((part, (index[id(conv.weight)],
                                           index.get(id(bn.weight)) if bn.affine else None,
                                           index.get(id(bn.bias)) if bn.affine else None,
                                           bn.running_mean, bn.running_var, bn.eps)))  # fmt: skip
            else:
                self.recipe.append(("same", index[id(p)]))
        self.params = list(self.module.parameters())

    def params_for(self, values: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        out = []
        for kind, spec in self.recipe:
            if kind == "same":
                out.append(values[spec])
                continue
            w_idx, g_idx, b_idx, mean, var, eps = spec
            scale = torch.rsqrt(var + eps)
            if g_idx is not None:
                scale = scale * values[g_idx]
            if kind == "weight":
                w = values[w_idx]
                folded = w * scale.view(-1, 1, 1, 1)
                fmt = torch.channels_last if w.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
                out.append(folded.contiguous(memory_format=fmt))
            else:
                beta = values[b_idx] if b_idx is not None else torch.zeros_like(mean)
                out.append(beta - mean * scale)
        return out


def _threaded_sums(
    model: nn.Module,
    named: Sequence[tuple[str, nn.Parameter]],
    perturbed: Sequence[Sequence[torch.Tensor]],
    groups: Sequence[tuple[torch.Tensor, torch.Tensor, list[int]]],
    per_batch_mean: bool,
) -> torch.Tensor:
    """Loss sums of the K perturbed parameter sets, batches shared out over one thread per core.

    On CUDA there is one worker: the BN-folded replica alone (fewer kernels per forward).
    """
    order = {id(p): j for j, p in enumerate(model.parameters())}
    if len(order) != len(named) or any(id(p) not in order for _, p in named):
        raise ValueError("the 'threads' engine perturbs exactly the model's own parameters (active path)")
    K = len(perturbed)
    device = groups[0][0].device
    workers = 1 if device.type == "cuda" else max(1, min(torch.get_num_threads(), len(groups)))
    values = []
    for k in range(K):  # the perturbed values in model.parameters() order
        row: list[torch.Tensor] = [None] * len(named)  # type: ignore[list-item]
        for (_, p), v in zip(named, perturbed[k]):
            row[order[id(p)]] = v
        values.append(row)
    replicas = [_FoldedReplica(model) for _ in range(workers)]
    sets = [replicas[0].params_for(values[k]) for k in range(K)]  # identical for every replica
    partial = [torch.zeros(K, dtype=torch.float64, device=device) for _ in range(workers)]
    errors: list[BaseException] = []

    def work(w: int) -> None:
        rep = replicas[w]
        try:
            with torch.inference_mode():
                for x, y, sizes in groups[w::workers]:
                    for k in range(K):
                        for p, v in zip(rep.params, sets[k]):
                            p.data = v
                        losses = F.cross_entropy(rep.module(x).float(), y, reduction="none").double()
                        partial[w][k] += _reduce(losses, sizes, per_batch_mean)
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    threads_before = torch.get_num_threads()
    if workers > 1:
        torch.set_num_threads(1)
    try:
        pool = [threading.Thread(target=work, args=(w,), daemon=True) for w in range(1, workers)]
        for t in pool:
            t.start()
        work(0)
        for t in pool:
            t.join()
    finally:
        torch.set_num_threads(threads_before)
    if errors:
        raise errors[0]
    return sum(partial[1:], partial[0])
