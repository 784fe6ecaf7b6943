"""Zero-cost proxies that read how a fresh network maps a batch: ``jacov``, ``naswot``, ``zen``.

* ``jacov``: Jacobian covariance (Mellor et al., "Neural Architecture Search without Training",
  arXiv v1 2020; ``jacob_cov`` of Abdelfattah et al., ICLR 2021).  With J the N x D matrix of
  input gradients of the summed outputs and v the eigenvalues of its N x N correlation matrix,
  ``-sum(log(v + k) + 1 / (v + k))``, k = 1e-5.
* ``naswot``: the activation-pattern score of Mellor et al., ICML 2021 (the paper's second
  version).  Each ReLU's input gives every image a binary code c; K = sum over ReLUs of
  c c^T + (1 - c)(1 - c)^T (units where two images agree) and the score is log|K|.
* ``zen``: Zen-score (Lin et al., "Zen-NAS", ICCV 2021).  Weights N(0, 1), Gaussian inputs x and
  e; log E_x ||f(x) - f(x + gamma e)||_1 of the pre-pooling features plus, for every BN layer,
  log sqrt(mean running variance) after the two train-mode forwards (as ``compute_zen_score.py``;
  for BN layers without running statistics, the variance they would have tracked).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from genas.lazy import lazy_import
from genas.validation import check_float, check_int
from scorers.base import noise_seed
from scorers.fresh import FreshNetworks, gaussian_init
from scorers.registry import register_scorer
from scorers.zero_cost import ZeroCostScorer

torch = lazy_import("torch")
nn = lazy_import("torch.nn")  # imported when first used: listing scorers needs no torch

__all__ = ["Jacov", "Naswot", "Zen", "jacov_value", "naswot_value", "zen_value"]


def jacov_value(net: nn.Module, x: torch.Tensor, k: float = 1e-5) -> float:
    """Jacobian-covariance score of ``net`` on ``x`` (NaN when the correlation is undefined)."""
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        out = net(x)
        (jac,) = torch.autograd.grad(out, x, grad_outputs=torch.ones_like(out), allow_unused=True)
    if jac is None:  # the output does not depend on the input (e.g. a cell of `none` edges)
        return math.nan
    j = jac.reshape(len(x), -1).double().cpu().numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = np.corrcoef(j)
    if not np.all(np.isfinite(corr)):  # an input-independent output: no correlation to read
        return math.nan
    v = np.linalg.eigvalsh(corr)
    with np.errstate(invalid="ignore"):
        return float(-np.sum(np.log(v + k) + 1.0 / (v + k)))


def naswot_value(net: nn.Module, x: torch.Tensor) -> float:
    """log|K| of the ReLU activation patterns of ``net`` on ``x`` (-inf when K is singular)."""
    n = len(x)
    kernel = torch.zeros((n, n), dtype=torch.float64, device=x.device)

    def hook(module: nn.Module, inputs: Any, out: Any) -> None:
        code = (inputs[0].detach().reshape(n, -1) > 0).float()
        # c c^T + (1 - c)(1 - c)^T = 2 c c^T - s 1^T - 1 s^T + D (s: active units per image, D: units);
        # one product instead of two, exact: every entry is an integer below 2^24 in float32
        ones = (code @ code.T).double()
        active = code.sum(1, dtype=torch.float64)
        kernel.add_(2 * ones - active[:, None] - active[None, :] + code.shape[1])

    handles = [m.register_forward_hook(hook) for m in net.modules() if "ReLU" in type(m).__name__]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in handles:
            h.remove()
    _, logdet = np.linalg.slogdet(kernel.cpu().numpy())  # the reference keeps log|det| whatever the sign
    return float(logdet)


def zen_value(net: nn.Module, x: torch.Tensor, noise: torch.Tensor, gamma: float = 1e-2) -> float:
    """Zen-score of ``net`` (as initialised, in train mode) on inputs ``x`` perturbed by ``gamma * noise``.

    The BN term reads, for every BN layer, the running variance that the two train-mode forwards
    leave from a reset (variance 1, the layer's momentum), computed from the layer's inputs, so a
    BN without running statistics (the NB201 cells of the zero-cost-nas network) counts as well.
    """
    features = getattr(net, "forward_features", net)
    layers = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    seen: dict[int, list[torch.Tensor]] = {id(m): [] for m in layers}

    def hook(module: nn.Module, inputs: Any) -> None:
        t = inputs[0].detach().transpose(0, 1).flatten(1)
        seen[id(module)].append(t.var(1, unbiased=True))  # what BN's running update uses

    handles = [m.register_forward_pre_hook(hook) for m in layers]
    try:
        with torch.no_grad():
            a, b = features(x), features(x + gamma * noise)
    finally:
        for h in handles:
            h.remove()
    delta = (a - b).abs().flatten(1).sum(1).mean()
    log_bn = 0.0
    for m in layers:
        if not seen[id(m)]:
            continue
        running = torch.ones_like(seen[id(m)][0])
        for k, v in enumerate(seen[id(m)]):
            factor = 1.0 / (k + 1) if m.momentum is None else m.momentum  # momentum None: cumulative average
            running = (1 - factor) * running + factor * v
        log_bn += float(torch.log(torch.sqrt(torch.mean(running))))
    return float(torch.log(delta)) + log_bn


@register_scorer("jacov", description="Jacobian covariance of 64 images at init (Mellor et al. 2021 v1; zero-cost-nas jacob_cov)")
class Jacov(ZeroCostScorer):
    """jacov (Mellor et al., arXiv:2006.04647v1; ``jacob_cov`` of Abdelfattah et al., ICLR 2021).

    Args:
        batch_size: Labelled training images (reference: 64, the zero-cost-nas batch).
    """

    def __init__(self, batch_size: int = 64) -> None:
        self.batch_size = self._batch_size(batch_size)

    def measure(self, arch: Any, fresh: FreshNetworks) -> float:
        x, _ = fresh.images(self.batch_size, self.name)
        return jacov_value(fresh.network(arch, self.name), x)


@register_scorer("naswot", description="NASWOT log|K| of ReLU activation codes of 128 images at init (Mellor et al. 2021)")
class Naswot(ZeroCostScorer):
    """naswot (Mellor et al., "Neural Architecture Search without Training", ICML 2021): log|K_H|.

    Args:
        batch_size: Training images (reference: 128).
    """

    def __init__(self, batch_size: int = 128) -> None:
        self.batch_size = self._batch_size(batch_size)

    def measure(self, arch: Any, fresh: FreshNetworks) -> float:
        x, _ = fresh.images(self.batch_size, self.name)
        return naswot_value(fresh.network(arch, self.name), x)


@register_scorer("zen", description="Zen-score: log expressivity of Gaussian-initialised features + BN scales (Lin et al. 2021)")
class Zen(ZeroCostScorer):
    """zen (Lin et al., "Zen-NAS: A Zero-Shot NAS for High-Performance Image Recognition", ICCV 2021).

    Reads no labels: the inputs are standard Gaussian images of the data's shape.

    Args:
        batch_size: Gaussian images per forward (reference search scripts: 64).
        mixup_gamma: Size of the input perturbation (reference ``mixup_gamma``: 1e-2; ``gamma`` is
            the flatness weight of sums).
        repeat: Independent draws (Gaussian init and inputs) averaged (reference search: 1).
    """

    def __init__(self, batch_size: int = 64, mixup_gamma: float = 1e-2, repeat: int = 1) -> None:
        self.batch_size = self._batch_size(batch_size)
        self.mixup_gamma = check_float(mixup_gamma, "mixup_gamma", self.owner, 0.0, None, closed="neither")
        self.repeat = check_int(repeat, "repeat", self.owner, 1)

    def measure(self, arch: Any, fresh: FreshNetworks) -> float:
        values = []
        for r in range(self.repeat):
            init = torch.Generator().manual_seed(noise_seed(fresh.seed, "zen-init", arch, r))
            net = gaussian_init(fresh.network(arch, self.name), init)
            gen = torch.Generator().manual_seed(noise_seed(fresh.seed, "zen-input", r))  # the same for every arch
            shape = (self.batch_size, *fresh.image_shape)
            x, e = torch.randn(shape, generator=gen), torch.randn(shape, generator=gen)
            values.append(zen_value(net, x.to(fresh.device), e.to(fresh.device), self.mixup_gamma))
        return float(np.mean(values))
