"""Pruning-at-initialisation saliencies summed over a network (Abdelfattah et al., ICLR 2021).

"Zero-Cost Proxies for Lightweight NAS" scores a network by summing a per-weight saliency over
the weights of every convolution and linear layer, on one batch of 64 labelled training images,
the network freshly initialised and in train mode (BN on batch statistics).  Following the
reference code (``foresight/pruners/measures/*.py`` of SamsungLabs/zero-cost-nas):

* ``grad_norm`` = sum over layers of ||dL/dW||_2 (one norm per layer, then summed);
* ``snip`` = sum |W * dL/dW| (Lee et al., ICLR 2019: |dL/dm| of a multiplicative mask at m = 1);
* ``grasp`` = sum -W * (H g) with g = dL/dW and H the Hessian (Wang et al., ICLR 2020);
* ``fisher`` = sum over layers and output channels of 0.5 * mean_n (sum_s a * dL/da)^2, a the
  layer's output (before BN), each channel's value counted once per weight of that channel, as the
  reference broadcasts it (Theis et al. 2018; Turner et al. 2020);
* ``synflow`` = sum |W * dR/dW| with R = 1^T f(1), every parameter replaced by its absolute value,
  BN removed as the reference removes it (all but the NB201 reduction blocks' BN, which stay on
  batch statistics: ``bn="reference"``), an all-ones input of one image, in float64 (Tanaka et
  al., NeurIPS 2020).

Each value was checked against the reference code on the same weights and batch (relative
differences below 2e-6; ``docs/scorers.md``).

``grad_norm``, ``snip`` and ``fisher`` read the same forward/backward pass, and ``grasp`` its
gradient, so scoring several of them on one architecture costs one pass (``FreshNetworks.cached``).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


from genas.lazy import lazy_import
from genas.validation import check_choice
from scorers.fresh import FreshNetworks
from scorers.registry import register_scorer
from scorers.zero_cost import ZeroCostScorer, log_normalized

torch = lazy_import("torch")
F = lazy_import("torch.nn.functional")
nn = lazy_import("torch.nn")  # imported when first used: listing scorers needs no torch

__all__ = ["GradNorm", "Snip", "Grasp", "Fisher", "Synflow", "GradientPass", "loss_gradients", "grasp_value", "synflow_value"]


def weight_layers(net: nn.Module) -> list[nn.Module]:
    """The conv and linear layers of ``net`` in module order (each once), whose weights the sums run over."""
    return [m for m in net.modules() if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear))]


@dataclass
class GradientPass:
    """One loss forward/backward pass: per conv/linear layer, its weight, dL/dW and per-channel Fisher terms."""

    weights: list[torch.Tensor]
    grads: list[torch.Tensor | None]
    fisher: list[torch.Tensor | None]

    def grad_norm(self) -> float:
        return float(sum(g.norm().item() for g in self.grads if g is not None))

    def snip(self) -> float:
        return float(sum((w * g).abs().sum().item() for w, g in zip(self.weights, self.grads) if g is not None))

    def fisher_sum(self) -> float:
        return float(sum(f.abs().sum().item() * w[0].numel() for w, f in zip(self.weights, self.fisher) if f is not None))


def loss_gradients(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> GradientPass:
    """Cross-entropy gradients of ``net``'s conv/linear weights on ``(x, y)``, and their Fisher terms.

    The Fisher term of a layer with output ``a`` (N x C x ...) is ``0.5 * mean_n (sum_s a * dL/da)^2``
    per channel (the reference's backward hook on an identity after the layer).
    """
    layers = weight_layers(net)
    fisher: list[torch.Tensor | None] = [None] * len(layers)

    def forward_hook(i: int):
        def hook(module: nn.Module, inputs: Any, out: torch.Tensor) -> None:
            if not out.requires_grad:
                return
            act = out.detach()

            def on_grad(grad: torch.Tensor) -> None:
                g_nk = (act * grad).sum(tuple(range(2, act.dim()))) if act.dim() > 2 else act * grad
                term = g_nk.pow(2).mean(0).mul(0.5)
                fisher[i] = term if fisher[i] is None else fisher[i] + term

            out.register_hook(on_grad)

        return hook

    handles = [m.register_forward_hook(forward_hook(i)) for i, m in enumerate(layers)]
    try:
        with torch.enable_grad():
            loss = F.cross_entropy(net(x), y)
            grads = torch.autograd.grad(loss, [m.weight for m in layers], allow_unused=True)
    finally:
        for h in handles:
            h.remove()
    return GradientPass([m.weight.detach().clone() for m in layers], list(grads), fisher)


def grasp_value(net: nn.Module, x: torch.Tensor, y: torch.Tensor, first: Sequence[torch.Tensor | None] | None = None) -> float:
    """GraSP: sum -W * (H g), with g = dL/dW (``first`` if already computed on the same weights and batch)."""
    layers = weight_layers(net)
    weights = [m.weight for m in layers]
    with torch.enable_grad():
        if first is None:
            first = torch.autograd.grad(F.cross_entropy(net(x), y), weights, allow_unused=True)
        grad_f = torch.autograd.grad(F.cross_entropy(net(x), y), weights, create_graph=True, allow_unused=True)
        terms = [(g.detach() * f).sum() for g, f in zip(first, grad_f) if g is not None and f is not None]
        if not terms:
            return 0.0
        hg = torch.autograd.grad(torch.stack(terms).sum(), weights, allow_unused=True)
    return float(sum((-w.detach() * h).sum().item() for w, h in zip(weights, hg) if h is not None))


SYNFLOW_BN = ("off", "reference", "train")


def _drop_batchnorm(net: nn.Module, keep: tuple[type, ...] = ()) -> None:
    """Replace every BN layer of ``net`` by an identity, except those inside a module of a ``keep`` type."""
    kept = {id(m) for block in net.modules() if keep and isinstance(block, keep) for m in block.modules()}
    for module in list(net.modules()):
        if id(module) in kept:
            continue
        for name, child in module.named_children():
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                setattr(module, name, nn.Identity())


def _reference_keep() -> tuple[type, ...]:
    from supernet.ops import ResNetBasicBlock

    return (ResNetBasicBlock,)


def synflow_value(net: nn.Module, input_shape: Sequence[int], bn: str = "reference") -> float:
    """SynFlow of ``net`` (left unchanged): sum |W * dR/dW|, R = sum of the outputs on an all-ones image.

    Args:
        net: The network (a deep copy is modified: absolute values, float64, BN removed).
        input_shape: (channels, height, width) of one image.
        bn: ``"off"`` removes every BN layer (Tanaka et al.; the zero-cost-nas generic ``copynet``);
            ``"reference"`` removes all but those of NB201's ResNet reduction blocks, which stay on
            batch statistics, as the zero-cost-nas NB201 network scored by its ``synflow`` does
            (``get_prunable_copy(bn=False)`` does not reach the reduction blocks); ``"train"`` keeps
            every BN on batch statistics (the reference ``synflow_bn``).
    """
    device = next(net.parameters()).device
    net = copy.deepcopy(net)
    if bn != "train":
        _drop_batchnorm(net, _reference_keep() if bn == "reference" else ())
    net.double()
    with torch.no_grad():
        for t in net.state_dict().values():
            t.abs_()
    weights = [m.weight for m in weight_layers(net)]
    with torch.enable_grad():
        out = net(torch.ones((1, *input_shape), dtype=torch.float64, device=device))
        grads = torch.autograd.grad(out.sum(), weights, allow_unused=True)
    return float(sum((w.detach() * g).abs().sum().item() for w, g in zip(weights, grads) if g is not None))


class _OnePass(ZeroCostScorer):
    """A saliency read from the shared loss gradient pass of ``batch_size`` images."""

    def __init__(self, batch_size: int = 64) -> None:
        self.batch_size = self._batch_size(batch_size)

    def normalized(self, values: Any) -> Any:
        return log_normalized(values)

    def gradient_pass(self, arch: Any, fresh: FreshNetworks) -> GradientPass:
        x, y = fresh.images(self.batch_size, self.name)
        return fresh.cached(("loss-gradients", arch, self.batch_size), lambda: loss_gradients(fresh.network(arch, self.name), x, y))


@register_scorer("grad_norm", description="sum over layers of ||dL/dW|| at init, 64 images (Abdelfattah et al. 2021)")
class GradNorm(_OnePass):
    """grad_norm (Abdelfattah et al., ICLR 2021): sum over conv/linear layers of ||dL/dW||_2 at init.

    Args:
        batch_size: Labelled training images in the one batch (reference: 64).
    """

    def measure(self, arch: Any, fresh: FreshNetworks) -> float:
        return self.gradient_pass(arch, fresh).grad_norm()


@register_scorer("snip", description="SNIP saliency sum |W * dL/dW| at init (Lee et al. 2019; Abdelfattah et al. 2021)")
class Snip(_OnePass):
    """snip (Lee et al., ICLR 2019, as a NAS proxy in Abdelfattah et al., ICLR 2021): sum |W * dL/dW|.

    Args:
        batch_size: Labelled training images in the one batch (reference: 64).
    """

    def measure(self, arch: Any, fresh: FreshNetworks) -> float:
        return self.gradient_pass(arch, fresh).snip()


@register_scorer("fisher", description="channel Fisher information at init (Turner et al. 2020; Abdelfattah et al. 2021)")
class Fisher(_OnePass):
    """fisher (Theis et al. 2018; Turner et al., ICLR 2020; Abdelfattah et al., ICLR 2021): per-channel Fisher terms.

    Args:
        batch_size: Labelled training images in the one batch (reference: 64).
    """

    def measure(self, arch: Any, fresh: FreshNetworks) -> float:
        return self.gradient_pass(arch, fresh).fisher_sum()


@register_scorer("grasp", description="GraSP sum -W * Hg at init (Wang et al. 2020; Abdelfattah et al. 2021)")
class Grasp(_OnePass):
    """grasp (Wang et al., ICLR 2020; Abdelfattah et al., ICLR 2021): sum -W * (H g), g = dL/dW at init.

    It can be negative, so in sums it enters as it is (not as a logarithm).

    Args:
        batch_size: Labelled training images in the one batch (reference: 64).
    """

    def normalized(self, values: Any) -> Any:
        return values

    def measure(self, arch: Any, fresh: FreshNetworks) -> float:
        first = self.gradient_pass(arch, fresh).grads
        x, y = fresh.images(self.batch_size, self.name)
        return grasp_value(fresh.network(arch, self.name), x, y, first)


@register_scorer("synflow", description="SynFlow sum |W * dR/dW|, |weights|, ones input, float64, BN as zero-cost-nas (Tanaka et al. 2020)")
class Synflow(ZeroCostScorer):
    """synflow (Tanaka et al., NeurIPS 2020; Abdelfattah et al., ICLR 2021): data-free synaptic flow.

    Every parameter is replaced by its absolute value, the network runs in float64 on one all-ones
    image and R = sum of the outputs; the score is sum |W * dR/dW| over conv/linear weights.

    Args:
        bn: ``"reference"`` (default: BN removed as the zero-cost-nas ``synflow`` removes it, all but
            the NB201 reduction blocks' BN; on DARTS every BN), ``"off"`` (every BN removed) or
            ``"train"`` (every BN kept on batch statistics: the reference ``synflow_bn``).
    """

    def __init__(self, bn: str = "reference") -> None:
        if bn is False:  # YAML, and so --score.options.bn off, reads `off` as false
            bn = "off"
        self.bn = check_choice(bn, "bn", self.owner, SYNFLOW_BN)

    def normalized(self, values: Any) -> Any:
        return log_normalized(values)

    def measure(self, arch: Any, fresh: FreshNetworks) -> float:
        return synflow_value(fresh.network(arch, self.name), fresh.image_shape, self.bn)
