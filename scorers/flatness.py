"""GeNAS flatness of the loss surface around a subnet's trained weights (Jeong et al., IJCAI 2023).

With increasing noise levels sigma_1 < ... < sigma_t and L_i the validation loss with every
learnable parameter perturbed by N(0, sigma_i^2) (paper eq. 3-4):

    F = 1 / ( sum_{i=1}^{t-1} |L_{i+1} - L_i| / (sigma_{i+1} - sigma_i)  +  alpha * |L_1| / sigma_1 )

The first term is the sharpness, the second the depth of the minimum; larger F = flatter and
deeper.  ``mode="paper"`` (default) takes the paper's settings (NB201 defaults sigma = 2e-3, 1e-2,
2e-2, alpha = 1; paper Tables 5-6).  ``mode="reference"`` reproduces the GeNAS code
(``tester_wlm.py``) in everything: per-batch mean losses, a 1e-5 guard in the denominator,
sigma = 1e-3, 3e-3, 6e-3 unless given.

The noise scheme is its own option, ``noise``: ``cumulative`` (the default in both modes: the GeNAS
code, which produced the paper's figures, adds level i's noise N(0, (sigma_i - sigma_{i-1})^2) to level
i-1's weights, so its effective standard deviation is sqrt(sum_j (sigma_j - sigma_{j-1})^2): 2e-3,
8.2e-3, 1.30e-2 for the paper's list) or ``independent`` (the paper's text: level i draws
N(0, sigma_i^2) afresh).  See :func:`effective_sigmas` and ``docs/ranking.md`` for why it matters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np


from genas.validation import check_bool, check_choice, check_float, check_increasing, check_int
from scorers.base import Needs, Scorer
from scorers.registry import register_scorer

if TYPE_CHECKING:
    from scorers.context import ScoringContext

__all__ = ["Flatness", "flatness_from_losses", "flatness_terms", "effective_sigmas", "PAPER_SIGMAS", "REFERENCE_SIGMAS", "NOISE_SCHEMES"]

PAPER_SIGMAS = (2e-3, 1e-2, 2e-2)
REFERENCE_SIGMAS = (1e-3, 3e-3, 6e-3)
NOISE_SCHEMES = ("cumulative", "independent")


def effective_sigmas(sigmas: Sequence[float], noise: str = "independent") -> tuple[float, ...]:
    """The standard deviation of the total noise on the weights at each level.

    Example:
        >>> [round(s, 5) for s in effective_sigmas(PAPER_SIGMAS, "cumulative")]
        [0.002, 0.00825, 0.01296]
    """
    check_choice(noise, "noise", "flatness", NOISE_SCHEMES)
    if noise == "independent":
        return tuple(float(s) for s in sigmas)
    steps = np.diff(np.concatenate([[0.0], np.asarray(sigmas, dtype=np.float64)]))
    return tuple(float(v) for v in np.sqrt(np.cumsum(steps**2)))


def flatness_terms(losses: Sequence[float], sigmas: Sequence[float], alpha: float = 1.0) -> tuple[float, float]:
    """The two parts of eq. 4's denominator: (sharpness sum_i |L_{i+1} - L_i| / (sigma_{i+1} - sigma_i),
    depth alpha * |L_1| / sigma_1).

    Example:
        >>> flatness_terms([2.0, 2.1, 2.4], [1e-3, 2e-3, 4e-3])
        (250.0, 2000.0)
    """
    L = np.asarray(losses, dtype=np.float64)
    s = np.asarray(sigmas, dtype=np.float64)
    sharp = float(np.sum(np.abs(np.diff(L)) / np.diff(s))) if len(L) > 1 else 0.0
    return sharp, alpha * abs(float(L[0])) / float(s[0])


def flatness_from_losses(losses: Sequence[float], sigmas: Sequence[float], alpha: float = 1.0, guard: float = 0.0) -> float:
    """GeNAS eq. 4 from the losses at each sigma level."""
    sharp, depth = flatness_terms(losses, sigmas, alpha)
    return 1.0 / (sharp + depth + guard)


@register_scorer("flatness", description="GeNAS flatness + depth of the minimum under Gaussian weight noise (eq. 4)")
class Flatness(Scorer):
    """GeNAS flatness (eq. 4) by batched weight perturbation.

    Args:
        sigmas: Strictly increasing noise levels (default: paper NB201 values, or the GeNAS code's in
            reference mode).
        alpha: Weight of the depth term |L_1| / sigma_1 (paper: 1).
        draws: Independent noise draws per level, losses averaged (paper / reference code: 1).
        mode: ``"paper"`` or ``"reference"`` (the GeNAS code: per-batch mean losses,
            the 1e-5 guard, its sigmas).
        noise: ``"cumulative"`` (increments added level after level on one copy: the GeNAS code, which
            produced the paper's figures; the default) or ``"independent"`` (a fresh draw per level,
            as the paper's text reads).
        common_random_numbers: Use the same noise tensors for every candidate (per parameter name).
        active_only: Perturb only the active path's parameters (exactly the same loss, far cheaper);
            False perturbs every supernet parameter, as the reference procedure does.
        batching: ``"vmap"`` (one batched forward of all levels and draws), ``"threads"`` (one
            BN-folded replica per CPU core; one replica on CUDA), ``"loop"`` (sequential, in place),
            ``"grouped"`` (the K copies, and ``candidates`` candidates, as convolution groups with BN
            folded, one forward per batch: :mod:`scorers.grouped`) or ``"auto"`` (threads on CPU,
            loop on CUDA; measured in ``benchmarks/flatness_speed.py``).
        eval_batches: Validation batches per candidate (None: all in the context).
        tf32: Allow TF32 convolutions on CUDA: 1.44x faster on an H100, where it moved the losses
            by a median 6e-5 and left a ranking of 40 architectures unchanged (``benchmarks/RESULTS.md``);
            off by default, so every engine gives the same exact-fp32 losses.
        bf16: bf16 autocast for the ``grouped`` engine's forward (not exact; see ``benchmarks/RESULTS.md``).
        candidates: Candidates scored in one grouped forward (``grouped`` only): their K copies each
            are groups of one network; an edge runs each op module on the groups that use it.
    """

    higher_is_better = True
    needs = Needs(supernet=True, data=True)

    def __init__(
        self,
        sigmas: Sequence[float] | None = None,
        alpha: float = 1.0,
        draws: int = 1,
        mode: str = "paper",
        noise: str = "cumulative",
        common_random_numbers: bool = True,
        active_only: bool = True,
        batching: str = "auto",
        eval_batches: int | None = None,
        tf32: bool = False,
        bf16: bool = False,
        candidates: int = 1,
    ) -> None:
        owner = "flatness"
        self.mode = check_choice(mode, "mode", owner, ("paper", "reference"))
        default = PAPER_SIGMAS if mode == "paper" else REFERENCE_SIGMAS
        self.sigmas = tuple(check_increasing(default if sigmas is None else sigmas, "sigmas", owner))
        self.noise = check_choice(noise, "noise", owner, NOISE_SCHEMES)
        self.alpha = check_float(alpha, "alpha", owner, 0.0)
        self.draws = check_int(draws, "draws", owner, 1)
        if mode == "reference" and draws != 1:
            from genas.errors import ConfigError

            raise ConfigError("flatness mode 'reference' (the GeNAS code) uses one draw per sigma; set draws=1 or mode='paper'")
        self.common_random_numbers = check_bool(common_random_numbers, "common_random_numbers", owner)
        self.active_only = check_bool(active_only, "active_only", owner)
        self.batching = check_choice(batching, "batching", owner, ("auto", "grouped", "loop", "threads", "vmap"))
        self.eval_batches = None if eval_batches is None else check_int(eval_batches, "eval_batches", owner, 1)
        self.tf32 = check_bool(tf32, "tf32", owner)
        self.bf16 = check_bool(bf16, "bf16", owner)
        self.candidates = check_int(candidates, "candidates", owner, 1)
        if (self.bf16 or self.candidates > 1) and self.batching != "grouped":
            from genas.errors import ConfigError

            raise ConfigError(f"flatness options bf16 and candidates apply to batching 'grouped', not {self.batching!r}")

    @property
    def beta(self) -> float:
        """GeNAS eq. 5 normalisation 1 / sigma_1."""
        return 1.0 / self.sigmas[0]

    def normalized(self, values: np.ndarray) -> np.ndarray:
        return self.beta * values

    def default_weight(self, gamma: float) -> float:
        return gamma  # GeNAS eq. 5: S + gamma * beta * F

    def losses(self, arch: Any, ctx: ScoringContext) -> np.ndarray:
        """Mean validation loss at each sigma level (averaged over draws)."""
        from scorers.perturb import NoisePlan, make_noise, perturbed_losses

        if self.batching == "grouped" and self.active_only:
            return self.grouped_losses([arch], ctx)[0]
        net = ctx.require_supernet(self.name)
        sub = ctx.subnet(arch)
        names = {id(p): n for n, p in net.named_parameters()}
        source = sub if self.active_only else net
        named = [(names[id(p)], p) for p in source.parameters()]
        plan = NoisePlan(self.sigmas, self.draws, cumulative=self.noise == "cumulative", seed=ctx.seed,
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

    def grouped_losses(self, archs: Sequence[Any], ctx: ScoringContext) -> list[np.ndarray]:
        """:meth:`losses` of several candidates by the ``grouped`` engine, all in one forward per batch."""
        import torch

        from scorers.grouped import Candidate, grouped_loss_sums
        from scorers.perturb import NoisePlan, make_noise

        net = ctx.require_supernet(self.name)
        names = {id(p): n for n, p in net.named_parameters()}
        cands = []
        for arch in archs:
            sub = ctx.subnet(arch)  # recalibrates the shared BN buffers: Candidate.of copies them now
            named = [(names[id(p)], p) for p in sub.parameters()]
            plan = NoisePlan(self.sigmas, self.draws, cumulative=self.noise == "cumulative", seed=ctx.seed,
                             arch_key="" if self.common_random_numbers else str(ctx.space.parse(arch)))  # fmt: skip
            noise = make_noise({k: p.detach() for k, p in named}, plan, cache=ctx.noise_cache)
            base = [p.detach() for _, p in named]
            values = [torch._foreach_add(base, [nz[key] for key, _ in named]) for nz in noise]
            cands.append(Candidate.of(sub, [p for _, p in named], values))
        batches = ctx.valid_batches if self.eval_batches is None else ctx.valid_batches[: self.eval_batches]
        precision = "bf16" if self.bf16 else "tf32" if self.tf32 else "fp32"
        sums = grouped_loss_sums(cands, batches, per_batch_mean=self.mode == "reference", precision=precision)
        denom = len(batches) if self.mode == "reference" else sum(y.numel() for _, y in batches)
        return list((sums / denom).cpu().numpy().reshape(len(archs), len(self.sigmas), self.draws).mean(2))

    def score(self, archs: Sequence[Any], ctx: ScoringContext) -> np.ndarray:
        """Flatness of each architecture; ``candidates`` at a time with the ``grouped`` engine."""
        if self.batching != "grouped" or self.candidates == 1 or not self.active_only:
            return super().score(archs, ctx)
        guard = 1e-5 if self.mode == "reference" else 0.0
        out = []
        for i in range(0, len(archs), self.candidates):
            for losses in self.grouped_losses(archs[i : i + self.candidates], ctx):
                out.append(flatness_from_losses(losses, self.sigmas, self.alpha, guard))
        return np.array(out, dtype=np.float64)

    def score_one(self, arch: Any, ctx: ScoringContext) -> float:
        guard = 1e-5 if self.mode == "reference" else 0.0
        return flatness_from_losses(self.losses(arch, ctx), self.sigmas, self.alpha, guard)


