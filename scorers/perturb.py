"""Batched Gaussian weight perturbation: losses of one subnet at K noise levels.

The K perturbed copies (sigma levels x draws) of a subnet are evaluated on every validation
batch before moving to the next, so each batch is read once.  Two equivalent engines:

* ``vmap``: ``torch.func.functional_call`` vectorised over the K stacked parameter sets, one
  batched forward per validation batch (the fast path on GPUs, where K copies fill the device);
* ``loop``: the K parameter sets are swapped into the subnet in turn (pointer swaps, no copy of
  the supernet), which is as fast as ``vmap`` or faster on CPUs, where the work is compute-bound.

Noise is drawn per parameter tensor from a generator keyed by (seed, supernet parameter name,
level, draw[, architecture]), so the noise on a parameter does not depend on which other
parameters are perturbed: perturbing only the active path gives exactly the losses of
perturbing the whole supernet, and the same key across candidates gives common random numbers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

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


def noise_seed(*parts: object) -> int:
    """A stable 63-bit seed from ``parts`` (independent of Python's hash randomisation)."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def _standard_normal(like: torch.Tensor, seed: int) -> torch.Tensor:
    gen = torch.Generator(device=like.device).manual_seed(seed)
    z = torch.randn(like.shape, generator=gen, device=like.device, dtype=like.dtype)
    return z.contiguous(memory_format=torch.channels_last) if _is_channels_last(like) else z


def _is_channels_last(t: torch.Tensor) -> bool:
    return t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()


def make_noise(params: dict[str, torch.Tensor], plan: NoisePlan) -> list[dict[str, torch.Tensor]]:
    """K = len(sigmas) * draws noise dicts (level-major), keyed like ``params`` (supernet names)."""
    out: list[dict[str, torch.Tensor]] = []
    for d in range(plan.draws):
        prev = {n: torch.zeros_like(p) for n, p in params.items()} if plan.cumulative else None
        level_noise = []
        for i, sigma in enumerate(plan.sigmas):
            noise = {}
            for n, p in params.items():
                z = _standard_normal(p, noise_seed(plan.seed, n, i, d, plan.arch_key))
                if plan.cumulative:
                    step = sigma - (plan.sigmas[i - 1] if i else 0.0)
                    noise[n] = prev[n] + step * z
                else:
                    noise[n] = sigma * z
            if plan.cumulative:
                prev = noise
            level_noise.append(noise)
        out.extend(level_noise)
    # reorder draw-major -> level-major: index = level * draws + draw
    k = len(plan.sigmas)
    return [out[d * k + i] for i in range(k) for d in range(plan.draws)]


@torch.no_grad()
def perturbed_losses(
    model: nn.Module,
    named: Sequence[tuple[str, nn.Parameter]],
    noise: Sequence[dict[str, torch.Tensor]],
    batches: Sequence[Batch],
    batching: str = "loop",
    per_batch_mean: bool = False,
) -> np.ndarray:
    """Mean validation loss of ``model`` with each of the K noise dicts added to ``named`` parameters.

    Args:
        model: The subnet, in eval mode (BN statistics already recalibrated on clean weights).
        named: ``(key, parameter)`` pairs to perturb; ``key`` indexes the noise dicts.
        noise: K dicts key -> noise tensor.
        batches: Validation batches, each read once.
        batching: ``"vmap"`` (one batched forward of all K) or ``"loop"``.
        per_batch_mean: Average per-batch mean losses (GeNAS code) instead of per-image losses.

    Returns:
        K losses.
    """
    K = len(noise)
    sums = torch.zeros(K, dtype=torch.float64, device=batches[0][0].device)
    perturbed = [[p.detach() + nz[key] for key, p in named] for nz in noise]
    n_images = 0
    if batching == "vmap":
        local = {n: p for n, p in model.named_parameters()}
        by_id = {id(p): n for n, p in local.items()}
        names = [by_id[id(p)] for _, p in named]
        stacked = {n: torch.stack([perturbed[k][j] for k in range(K)]) for j, n in enumerate(names)}
        fixed = {n: p for n, p in local.items() if n not in stacked}
        buffers = dict(model.named_buffers())

        def forward(params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
            return functional_call(model, ({**params, **fixed}, buffers), (x,))

        batched = vmap(forward, in_dims=(0, None))
        for x, y in batches:
            logits = batched(stacked, x).float()  # (K, B, classes)
            losses = F.cross_entropy(logits.flatten(0, 1), y.repeat(K), reduction="none").view(K, -1).double()
            sums += losses.mean(1) if per_batch_mean else losses.sum(1)
            n_images += y.numel()
    elif batching == "loop":
        originals = [p.data for _, p in named]
        try:
            for x, y in batches:
                for k in range(K):
                    for (_, p), w in zip(named, perturbed[k]):
                        p.data = w  # swap the tensor in; nothing is copied
                    loss = F.cross_entropy(model(x).float(), y, reduction="mean" if per_batch_mean else "sum")
                    sums[k] += loss.double()
                n_images += y.numel()
        finally:
            for (_, p), w in zip(named, originals):
                p.data = w
    else:
        raise ValueError(f"batching must be 'vmap' or 'loop', got {batching!r}")
    denom = len(batches) if per_batch_mean else n_images
    return (sums / denom).cpu().numpy()
