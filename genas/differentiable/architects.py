"""Architects: the gradient the architecture optimizer applies to alpha (SPEC section 5).

One registry with the conventions of the scorer registry (decorator, close-match errors,
listing, entry-point group ``genas.architects``).  Built in:

* ``darts``: first-order DARTS, ``dL_val(w, alpha) / dalpha`` (Liu et al. 2019, eq. 7 with xi = 0);
* ``darts2``: second-order DARTS, the unrolled gradient with the finite-difference
  Hessian-vector product (DARTS eq. 7-8, reference ``cnn/architect.py``): xi = the current
  weight learning rate, R = 0.01 / ||v||;
* ``a2m``: Architecture-Aware Minimization (Gambella et al. 2025, eq. 8), first-order form:
  a USAM step of radius ``rho`` in alpha, plus the curvature term by a finite difference of
  step ``eps``, on the raw logits, all four gradients on the same validation batch.

An architect sees the search only through an :class:`ArchStep` (losses as functions of the
architecture logits, the weights, the weight optimizer), so variants that change the loss or
the supernet compose with every architect unchanged.  Gradients w.r.t. alpha are taken with
``torch.autograd.grad`` on the alphas alone: the weight gradients are never computed.

Example:
    >>> import torch
    >>> from genas.differentiable import ArchStep, create_architect
    >>> loss = lambda arch: (arch["alpha"] ** 2).sum()   # g = 2a, H = 2: (1 + 2 rho) * 2 (1 + 2 rho) a
    >>> step = ArchStep(val_loss=loss, arch={"alpha": torch.tensor([1.0, -2.0])})
    >>> create_architect("a2m", rho=0.1, eps=0.01).gradient(step)["alpha"]
    tensor([ 2.8800, -5.7600])
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from genas.errors import ConfigError
from genas.registry import Registry, init_options, register_subclass
from genas.validation import check_choice, check_float
from genas.differentiable.variants import LossFn

__all__ = [
    "ARCHITECTS", "register_architect", "create_architect", "list_architects", "architect_options",
    "Architect", "ArchStep", "arch_gradient", "a2m_gradient", "DartsArchitect", "Darts2Architect", "A2MArchitect",
]  # fmt: skip

Arch = dict[str, torch.Tensor]

ARCHITECTS: Registry[type[Architect]] = Registry("architect", entry_point_group="genas.architects")


@dataclass
class ArchStep:
    """Everything an architect may use for one architecture update.

    Attributes:
        val_loss: The validation loss on this step's batch as a function of the logits
            (variants' terms included; BN running statistics are not updated by it).
        arch: The current logits, by name (detached).
        train_loss: The training loss on this step's training batch (second-order only).
        weights: The network weights (second-order perturbs them in place and restores them).
        optimizer: The weight optimizer: its learning rate is xi, its momentum buffers and
            weight decay enter the unrolled step.
        reduce: Averages a list of tensors over the DDP ranks (None: one process); every gradient
            an architect takes goes through :meth:`grad`, so it is the global batch's.
    """

    val_loss: LossFn
    arch: Arch
    train_loss: LossFn | None = None
    weights: list[nn.Parameter] = field(default_factory=list)
    optimizer: torch.optim.Optimizer | None = None
    reduce: Callable[[list[torch.Tensor]], list[torch.Tensor]] | None = None

    def grad(self, loss_fn: LossFn, arch: Mapping[str, torch.Tensor]) -> Arch:
        """:func:`arch_gradient`, averaged over the ranks under DDP."""
        return dict(zip(arch, self.reduce_all(list(arch_gradient(loss_fn, arch).values()))))

    def reduce_all(self, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        """``tensors`` averaged over the ranks (themselves in one process)."""
        return tensors if self.reduce is None else self.reduce(tensors)


def register_architect(name: str, *, description: str | None = None, overwrite: bool = False) -> Callable[[type], type]:
    """Register an :class:`Architect` subclass under ``name``."""
    return register_subclass(ARCHITECTS, Architect, "register_architect", name, description=description,
                             overwrite=overwrite)  # fmt: skip


def list_architects(pattern: str = "*") -> list[str]:
    """Registered architect names matching ``pattern``."""
    return ARCHITECTS.list(pattern)


def architect_options(name: str) -> list[str]:
    """The keyword options architect ``name`` accepts."""
    return init_options(ARCHITECTS.get(name))


def create_architect(name: str, **options: Any) -> Architect:
    """Build architect ``name``; ``None`` options keep their defaults, unknown options raise.

    Example:
        >>> create_architect("a2m", rho=1e-2).options()
        {'rho': 0.01, 'eps': 0.01, 'fd': 'central'}
    """
    cls = ARCHITECTS.get(name)
    accepted = architect_options(name)
    bad = sorted(set(options) - set(accepted))
    if bad:
        raise ConfigError(f"architect {name!r} has no option {bad[0]!r}; its options: {', '.join(accepted) or 'none'}")
    return cls(**{k: v for k, v in options.items() if v is not None})


def arch_gradient(loss_fn: LossFn, arch: Mapping[str, torch.Tensor]) -> Arch:
    """``dloss/darch`` at ``arch``, by autograd on the architecture tensors only (no weight gradients)."""
    leaves = {k: v.detach().requires_grad_(True) for k, v in arch.items()}
    with torch.enable_grad():
        loss = loss_fn(leaves)
    grads = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
    return {k: torch.zeros_like(v) if g is None else g for (k, v), g in zip(leaves.items(), grads)}


def _axpy(a: float, x: Arch, y: Mapping[str, torch.Tensor]) -> Arch:
    """``y + a * x`` per tensor."""
    return {k: y[k] + a * x[k] for k in y}


def a2m_gradient(loss_fn: LossFn, arch: Mapping[str, torch.Tensor], rho: float, eps: float, fd: str = "central",
                 grad_fn: Callable[[LossFn, Mapping[str, torch.Tensor]], Arch] = arch_gradient) -> Arch:  # fmt: skip
    """The A2M architecture gradient (A2M paper eq. 8, first-order form).

    g0 = dL/da(a); a~ = a + rho g0; g1 = dL/da(a~); g+- = dL/da(a~ +- eps g1);
    result = g1 + rho (g+ - g-) / (2 eps), the finite difference estimating H(a~) g1.
    With ``fd="forward"`` the difference is one-sided, (g+ - g1) / eps: one gradient fewer,
    accurate to O(eps) instead of O(eps^2) (an option of genas, not of the paper).
    ``rho = 0`` returns g0 exactly (first-order DARTS).  ``grad_fn`` takes each of the gradients
    (under DDP: averaged over the ranks, so every point is the one-process point).
    """
    g0 = grad_fn(loss_fn, arch)
    tilde = _axpy(rho, g0, arch)
    g1 = grad_fn(loss_fn, tilde)
    g_plus = grad_fn(loss_fn, _axpy(eps, g1, tilde))
    if fd == "central":
        g_minus = grad_fn(loss_fn, _axpy(-eps, g1, tilde))
        hvp = {k: (g_plus[k] - g_minus[k]) / (2 * eps) for k in g1}
    else:
        hvp = {k: (g_plus[k] - g1[k]) / eps for k in g1}
    return {k: g1[k] + rho * hvp[k] for k in g1}


class Architect(ABC):
    """Base class: ``gradient(step)`` returns d(objective)/d(alpha) for every architecture parameter."""

    name: ClassVar[str] = "architect"
    needs_train_batch: ClassVar[bool] = False  # second-order methods use the training batch too

    @abstractmethod
    def gradient(self, step: ArchStep) -> Arch:
        """The gradient for the architecture optimizer, by parameter name."""

    def options(self) -> dict[str, Any]:
        """The options as set (for ``best_arch.json`` and resume checks)."""
        return {}

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options().items())
        return f"{type(self).__name__}({opts})"


@register_architect("darts", description="first-order DARTS: dL_val/dalpha")
class DartsArchitect(Architect):
    """First-order DARTS (Liu et al., ICLR 2019, eq. 7 with xi = 0)."""

    def gradient(self, step: ArchStep) -> Arch:
        return step.grad(step.val_loss, step.arch)


@register_architect("darts2", description="second-order DARTS: unrolled, finite-difference Hessian-vector product")
class Darts2Architect(Architect):
    """Second-order DARTS with the reference code's unrolled step and finite difference.

    w' = w - xi (m * momentum_buffer + dL_train/dw + wd * w); g = dL_val(w', a)/da and
    v = dL_val(w', a)/dw'; R = ``r`` / ||v||; result = g - xi (dL_train(w + R v)/da - dL_train(w - R v)/da) / (2R)
    (DARTS eq. 7-8), with xi, m and wd read from the weight optimizer (xi = its current lr).

    Args:
        r: The finite-difference scale (reference: 0.01).
    """

    needs_train_batch = True

    def __init__(self, r: float = 0.01) -> None:
        self.r = check_float(r, "r", "architect darts2", 0.0, None, closed="neither")

    def options(self) -> dict[str, Any]:
        return {"r": self.r}

    def gradient(self, step: ArchStep) -> Arch:
        if step.train_loss is None or step.optimizer is None or not step.weights:
            raise ConfigError("architect 'darts2' needs the training loss, the weights and the weight optimizer")
        weights, opt = step.weights, step.optimizer
        group = opt.param_groups[0]
        xi, momentum, wd = group["lr"], group.get("momentum", 0.0), group.get("weight_decay", 0.0)
        arch = {k: v.detach() for k, v in step.arch.items()}
        saved = [p.detach().clone() for p in weights]
        with torch.enable_grad():
            dw = torch.autograd.grad(step.train_loss(arch), weights, allow_unused=True)
        used = [i for i, g in enumerate(dw) if g is not None]  # the same on every rank: one graph
        dw = list(dw)
        for i, g in zip(used, step.reduce_all([dw[i] for i in used])):
            dw[i] = g
        try:
            with torch.no_grad():  # the unrolled weights w'
                for p, g in zip(weights, dw):
                    d = wd * p if g is None else g + wd * p
                    buf = opt.state.get(p, {}).get("momentum_buffer")
                    if buf is not None:
                        d = d + momentum * buf
                    p.sub_(xi * d)
            leaves = {k: v.requires_grad_(True) for k, v in ((k, v.clone()) for k, v in arch.items())}
            with torch.enable_grad():
                grads = torch.autograd.grad(step.val_loss(leaves), [*leaves.values(), *weights], allow_unused=True)
            g_arch = {k: torch.zeros_like(v) if g is None else g for (k, v), g in zip(leaves.items(), grads)}
            v = [torch.zeros_like(p) if g is None else g for p, g in zip(weights, grads[len(leaves):])]
            reduced = step.reduce_all([*g_arch.values(), *v])
            g_arch, v = dict(zip(g_arch, reduced[:len(g_arch)])), reduced[len(g_arch):]
            radius = self.r / torch.cat([t.reshape(-1) for t in v]).norm()
            with torch.no_grad():
                for p, w0, t in zip(weights, saved, v):
                    p.copy_(w0 + radius * t)
            g_plus = step.grad(step.train_loss, arch)
            with torch.no_grad():
                for p, w0, t in zip(weights, saved, v):
                    p.copy_(w0 - radius * t)
            g_minus = step.grad(step.train_loss, arch)
        finally:
            with torch.no_grad():
                for p, w0 in zip(weights, saved):
                    p.copy_(w0)
        return {k: g_arch[k] - xi * (g_plus[k] - g_minus[k]) / (2 * radius) for k in g_arch}


@register_architect("a2m", description="A2M (eq. 8): USAM step of radius rho in alpha + finite-difference curvature")
class A2MArchitect(Architect):
    """Architecture-Aware Minimization, the first-order form of the reference code.

    Args:
        rho: The architecture-neighbourhood radius (A2M code: 1e-2 on NB201, 1e-1 on DARTS).
        eps: The finite-difference step (A2M code: 1e-2).
        fd: ``central`` (the paper: g+ and g-, four gradients) or ``forward`` (g+ and g1, three).
    """

    def __init__(self, rho: float = 1e-2, eps: float = 1e-2, fd: str = "central") -> None:
        self.rho = check_float(rho, "rho", "architect a2m", 0.0, None, closed="neither")
        self.eps = check_float(eps, "eps", "architect a2m", 0.0, None, closed="neither")
        self.fd = check_choice(fd, "fd", "architect a2m", ("central", "forward"))

    def options(self) -> dict[str, Any]:
        return {"rho": self.rho, "eps": self.eps, "fd": self.fd}

    def gradient(self, step: ArchStep) -> Arch:
        return a2m_gradient(step.val_loss, step.arch, self.rho, self.eps, self.fd, grad_fn=step.grad)
