"""GeNAS flatness of the loss surface around a subnet's trained weights (Jeong et al., IJCAI 2023).

With increasing noise levels sigma_1 < ... < sigma_t and L_i the validation loss with every
learnable parameter perturbed by N(0, sigma_i^2) (paper eq. 3-4):

    F = 1 / ( sum_{i=1}^{t-1} |L_{i+1} - L_i| / (sigma_{i+1} - sigma_i)  +  alpha * |L_1| / sigma_1 )

The first term is the sharpness, the second the depth of the minimum; larger F = flatter and
deeper.  ``mode="paper"`` (default) draws independent noise at each level (NB201 defaults
sigma = 2e-3, 1e-2, 2e-2, alpha = 1; paper Tables 5-6).  ``mode="reference"`` reproduces the
GeNAS code (``tester_wlm.py``): noise added cumulatively on one copy, one draw per level,
per-batch mean losses, a 1e-5 guard in the denominator, sigma = 1e-3, 3e-3, 6e-3 unless given.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


from genas.validation import check_bool, check_choice, check_float, check_increasing, check_int
from scorers.base import Needs, Scorer, ScoringContext
from scorers.perturb import NoisePlan, make_noise, perturbed_losses
from scorers.registry import register_scorer

__all__ = ["Flatness", "flatness_from_losses", "PAPER_SIGMAS", "REFERENCE_SIGMAS"]

PAPER_SIGMAS = (2e-3, 1e-2, 2e-2)
REFERENCE_SIGMAS = (1e-3, 3e-3, 6e-3)


def flatness_from_losses(losses: Sequence[float], sigmas: Sequence[float], alpha: float = 1.0, guard: float = 0.0) -> float:
    """GeNAS eq. 4 from the losses at each sigma level."""
    L = np.asarray(losses, dtype=np.float64)
    s = np.asarray(sigmas, dtype=np.float64)
    sharp = float(np.sum(np.abs(np.diff(L)) / np.diff(s))) if len(L) > 1 else 0.0
    depth = alpha * abs(float(L[0])) / float(s[0])
    return 1.0 / (sharp + depth + guard)


@register_scorer("flatness", description="GeNAS flatness + depth of the minimum under Gaussian weight noise (eq. 4)")
class Flatness(Scorer):
    """GeNAS flatness (eq. 4) by batched weight perturbation.

    Args:
        sigmas: Strictly increasing noise levels (default: paper NB201 values, or the GeNAS code's in
            reference mode).
        alpha: Weight of the depth term |L_1| / sigma_1 (paper: 1).
        draws: Independent noise draws per level, losses averaged (paper / reference code: 1).
        mode: ``"paper"`` (independent draws per level) or ``"reference"`` (GeNAS code: cumulative noise).
        common_random_numbers: Use the same noise tensors for every candidate (per parameter name).
        active_only: Perturb only the active path's parameters (exactly the same loss, far cheaper);
            False perturbs every supernet parameter, as the reference procedure does.
        batching: ``"vmap"`` (one batched forward of all levels and draws), ``"threads"`` (one
            BN-folded replica per CPU core; one replica on CUDA), ``"loop"`` (sequential, in place)
            or ``"auto"`` (threads on CPU, loop on CUDA; measured in ``benchmarks/flatness_speed.py``).
        eval_batches: Validation batches per candidate (None: all in the context).
        tf32: Allow TF32 convolutions on CUDA: 1.44x faster on an H100, where it moved the losses
            by a median 6e-5 and left a ranking of 40 architectures unchanged (``benchmarks/RESULTS.md``);
            off by default, so every engine gives the same exact-fp32 losses.
    """

    higher_is_better = True
    needs = Needs(supernet=True, data=True)

    def __init__(
        self,
        sigmas: Sequence[float] | None = None,
        alpha: float = 1.0,
        draws: int = 1,
        mode: str = "paper",
        common_random_numbers: bool = True,
        active_only: bool = True,
        batching: str = "auto",
        eval_batches: int | None = None,
        tf32: bool = False,
    ) -> None:
        owner = "flatness"
        self.mode = check_choice(mode, "mode", owner, ("paper", "reference"))
        default = PAPER_SIGMAS if mode == "paper" else REFERENCE_SIGMAS
        self.sigmas = tuple(check_increasing(default if sigmas is None else sigmas, "sigmas", owner))
        self.alpha = check_float(alpha, "alpha", owner, 0.0)
        self.draws = check_int(draws, "draws", owner, 1)
        if mode == "reference" and draws != 1:
            from genas.errors import ConfigError

            raise ConfigError("flatness mode 'reference' (the GeNAS code) uses one draw per sigma; set draws=1 or mode='paper'")
        self.common_random_numbers = check_bool(common_random_numbers, "common_random_numbers", owner)
        self.active_only = check_bool(active_only, "active_only", owner)
        self.batching = check_choice(batching, "batching", owner, ("auto", "loop", "threads", "vmap"))
        self.eval_batches = None if eval_batches is None else check_int(eval_batches, "eval_batches", owner, 1)
        self.tf32 = check_bool(tf32, "tf32", owner)

    @property
    def beta(self) -> float:
        """GeNAS eq. 5 normalisation 1 / sigma_1."""
        return 1.0 / self.sigmas[0]

    def normalized(self, values: np.ndarray) -> np.ndarray:
        return self.beta * values

    def losses(self, arch: Any, ctx: ScoringContext) -> np.ndarray:
        """Mean validation loss at each sigma level (averaged over draws)."""
        net = ctx.require_supernet(self.name)
        sub = ctx.subnet(arch)
        names = {id(p): n for n, p in net.named_parameters()}
        source = sub if self.active_only else net
        named = [(names[id(p)], p) for p in source.parameters()]
        plan = NoisePlan(self.sigmas, self.draws, cumulative=self.mode == "reference", seed=ctx.seed,
                         arch_key="" if self.common_random_numbers else str(ctx.space.parse(arch)))  # fmt: skip
        noise = make_noise({k: p.detach() for k, p in named}, plan, cache=ctx.noise_cache)
        batching = self.batching
        if batching == "auto":
            batching = "loop" if ctx.device.type == "cuda" else "threads"
        if not self.active_only:
            batching = "loop"  # the inactive parameters are not in the subnet's functional call
        batches = ctx.valid_batches if self.eval_batches is None else ctx.valid_batches[: self.eval_batches]
        losses = perturbed_losses(sub, named, noise, batches, batching, per_batch_mean=self.mode == "reference",
                                  exact=not self.tf32)  # fmt: skip
        return losses.reshape(len(self.sigmas), self.draws).mean(1)

    def score_one(self, arch: Any, ctx: ScoringContext) -> float:
        guard = 1e-5 if self.mode == "reference" else 0.0
        return flatness_from_losses(self.losses(arch, ctx), self.sigmas, self.alpha, guard)


