"""The launch-free SPOS training step (``train.step: graph``): masked forward, masked SGD, one CUDA graph.

At batch 64 a C=16 NB201 step on a GPU is launch-bound: some thousand tiny kernels launched from
Python (``benchmarks/RESULTS.md``).  This step has static shapes and no Python branching on the
path, so it is captured once with ``torch.cuda.graphs`` and replayed every step:

* **Path**: the sampled path is uploaded as one small vector (:class:`supernet.masked.PathMasks`):
  one-hot op masks, and per unit (fixed module or (cell, edge, op) module) whether it ran and
  whether it got a gradient in the eager step.  The sampler and its generator stay on the host,
  so the paths are exactly the eager step's.
* **Forward / backward**: :func:`supernet.masked.masked_forward`; every op runs, so every
  parameter receives a gradient, an exact zero off the path (where the eager step leaves it
  ``None``).  BatchNorm running statistics move only for the ops that ran
  (:class:`supernet.masked.MaskedBN`).
* **Optimizer**: SGD (momentum, nesterov, weight decay) as foreach kernels over all parameters,
  with a per-element 0/1 update mask and the learning rate in a device tensor.  The mask is
  ``train.unsampled_update``: ``decay`` updates every unit that has been ``live`` once (the eager
  step's zero-filled gradients: decay and momentum keep acting; never-used ops are untouched),
  ``freeze`` only this step's ``live`` units.  With mask 0 a parameter and its momentum buffer
  keep their exact values; with mask 1 the arithmetic is ``torch.optim.SGD``'s.
* **Clipping**: ``clip_grad_norm_`` over every gradient: the off-path ones are exact zeros, so the
  norm is that of the eager step's gradients.
* **Metrics**: the summed loss and the correct count are written to device tensors; nothing is
  read on the host during a step.

Uncaptured (``capture=False``) the same function runs on any device: that is what the CPU tests
compare with the eager step.  The momentum buffers are the optimizer's own state tensors, so its
``state_dict`` and a resume work as with the eager step.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from supernet.base import Supernet
from supernet.config import TrainConfig
from supernet.masked import MaskedBN, PathMasks, masked_forward, masks_unavailable

__all__ = ["GraphStep", "graph_step_unavailable", "WARMUP_STEPS"]

WARMUP_STEPS = 3  # side-stream runs before the capture (cuDNN autotuning, allocator), undone after


def _same_device(a: torch.device, b: torch.device) -> bool:
    return a.type == b.type and (a.index is None or b.index is None or a.index == b.index)


def graph_step_unavailable(model: nn.Module, loader: Any, device: torch.device, distributed: bool,
                           capture: bool = True) -> str | None:  # fmt: skip
    """Why the graph step cannot run on this configuration (None when it can).

    Args:
        model: The supernet.
        loader: The training loader (its ``device``, if it has one, is checked).
        device: Where the model lives.
        distributed: Whether the run is a DDP run.
        capture: Whether the step is to be captured as a CUDA graph.
    """
    if distributed:
        return "a distributed (DDP) run is not captured"
    reason = masks_unavailable(model)
    if reason is not None:
        return reason
    if capture and device.type != "cuda":
        return f"CUDA graphs need a CUDA device and this run is on {device.type!r}"
    data = getattr(loader, "device", None)
    if data is not None and not _same_device(torch.device(data), device):
        return f"the training data is on {str(data)!r}, not on the model's device {str(device)!r}"
    if capture and any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.momentum is None for m in model.modules()):
        return "a BatchNorm layer has momentum=None (a cumulative average reads its batch count on the host)"
    return None


def _like(flat: torch.Tensor, offset: int, p: torch.Tensor) -> torch.Tensor:
    """A view of ``flat`` from ``offset`` with ``p``'s shape and (dense) strides."""
    dense = p.is_contiguous() or p.is_contiguous(memory_format=torch.channels_last)
    if dense:
        return flat.as_strided(p.shape, p.stride(), offset)
    return flat[offset : offset + p.numel()].view(p.shape)


class GraphStep:
    """One masked SPOS step, captured as a CUDA graph on first use (or run uncaptured).

    Args:
        model: An NB201 or DARTS supernet on ``device``.
        optimizer: The trainer's ``torch.optim.SGD`` (its momentum buffers are bound to this step).
        cfg: The training settings (momentum, nesterov, weight decay, clipping, amp, unsampled_update).
        device: Where the model lives.
        capture: Capture the step as a CUDA graph (CUDA only); False runs it as plain PyTorch.
        lr_tensor: Read the learning rate from a device tensor (None: when capturing, where it must);
            else it is passed to the kernels as a number, as ``torch.optim.SGD`` does, which makes
            the uncaptured step bit-identical to the eager one on CPU (with the tensor the update
            ``p + (d * -lr)`` is rounded twice instead of once: within 1 ulp per step).
    """

    def __init__(self, model: Supernet, optimizer: torch.optim.Optimizer, cfg: TrainConfig, device: torch.device,
                 capture: bool = True, lr_tensor: bool | None = None) -> None:  # fmt: skip
        self.lr_tensor = capture if lr_tensor is None else lr_tensor
        self._neg_lr_value = 0.0  # -lr as a number (the uncaptured step)
        self.model, self.optimizer, self.cfg, self.device, self.capture = model, optimizer, cfg, device, capture
        self.masks = PathMasks(model)
        self.bn = MaskedBN(self.masks, device)
        self.names = [n for n, _ in model.named_parameters()]
        self.params = [p for _, p in model.named_parameters()]
        self.param_units = [self.masks.param_unit[id(p)] for p in self.params]
        sizes = [p.numel() for p in self.params]
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int) if sizes else []
        self._elem_unit = torch.tensor(np.repeat(self.param_units, sizes), dtype=torch.long, device=device)
        self._update = torch.zeros(sum(sizes), device=device)  # 1: this element steps
        self._scale = torch.zeros(sum(sizes), device=device)  # momentum where it steps, 1 elsewhere
        self._update_views = [_like(self._update, int(o), p) for o, p in zip(offsets, self.params)]
        self._scale_views = [_like(self._scale, int(o), p) for o, p in zip(offsets, self.params)]
        self.momentum = cfg.momentum
        self.nesterov = cfg.nesterov and cfg.momentum > 0
        self.bufs = [torch.zeros_like(p) for p in self.params] if self.momentum else []
        self._plan = torch.zeros(self.masks.size, device=device)
        self._op_mask, self._ran, self._live = self.masks.views(self._plan)
        self._touched = torch.zeros(len(self.masks.units), device=device)
        self._neg_lr = torch.zeros((), device=device)
        self._loss = torch.zeros((), device=device)
        self._correct = torch.zeros((), dtype=torch.long, device=device)
        self._graph: Any = None
        self._graph_grads: list[torch.Tensor | None] = []
        self._static: tuple[torch.Tensor, torch.Tensor] | None = None
        bf16 = cfg.amp == "bf16"
        self._autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=False)) if bf16 else nullcontext
        self.bind_optimizer()

    # ---- state shared with the trainer --------------------------------------------------
    def bind_optimizer(self) -> None:
        """Make this step's momentum buffers the optimizer's state (after building it or loading its state)."""
        for p, buf in zip(self.params, self.bufs):
            state = self.optimizer.state[p]
            saved = state.get("momentum_buffer")
            with torch.no_grad():
                if saved is None:
                    buf.zero_()
                elif saved is not buf:
                    buf.copy_(saved)
            state["momentum_buffer"] = buf

    def touched_names(self) -> list[str]:
        """Parameters the eager step would hold a gradient for now (``decay``: ever live; ``freeze``: live last step)."""
        units = (self._touched if self.cfg.unsampled_update == "decay" else self._live).cpu()
        return [n for n, u in zip(self.names, self.param_units) if units[u] > 0]

    def load_touched(self, names: list[str] | set[str]) -> None:
        """Mark the units of ``names`` as touched (a resumed ``decay`` run)."""
        names = set(names)
        touched = torch.zeros(len(self.masks.units))
        for n, u in zip(self.names, self.param_units):
            if n in names:
                touched[u] = 1.0
        self._touched.copy_(touched)

    # ---- the step -------------------------------------------------------------------------
    def on_device(self, t: torch.Tensor) -> bool:
        """Whether ``t`` is on this step's device (batches from the host would need a copy per step)."""
        return t.device == self._plan.device

    def step(self, x: torch.Tensor, y: torch.Tensor, path: Any, lr: float) -> tuple[torch.Tensor, torch.Tensor]:
        """One SGD step on ``path`` at learning rate ``lr``.

        Returns:
            (summed loss, correct count) as device tensors, overwritten by the next step.
        """
        plan = torch.from_numpy(self.masks.encode(path))
        if self.device.type == "cuda":
            plan = plan.pin_memory()  # the caching host allocator keeps it until the copy has run
        self._plan.copy_(plan, non_blocking=True)
        self._neg_lr_value = -lr
        if self.lr_tensor:
            self._neg_lr.fill_(-lr)
        if not self.capture:
            self._eager(x, y)
        elif self._graph is None:
            self._capture(x, y)
            self._replay(x, y)
        elif self._static is not None and x.shape == self._static[0].shape and y.shape == self._static[1].shape:
            self._replay(x, y)
        else:  # an odd-sized batch: the same function, uncaptured; the graph keeps its own gradients
            self._eager(x, y)
            for p, g in zip(self.params, self._graph_grads):
                p.grad = g
        return self._loss, self._correct

    def _eager(self, x: torch.Tensor, y: torch.Tensor) -> None:
        for p in self.params:
            p.grad = None
        self._body(x, y)

    def _replay(self, x: torch.Tensor, y: torch.Tensor) -> None:
        sx, sy = self._static
        sx.copy_(x, non_blocking=True)
        sy.copy_(y, non_blocking=True)
        self._graph.replay()

    def _body(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Forward, backward, clipping, SGD and metrics: the function that is captured."""
        self.bn.save()
        with self._autocast():
            logits = masked_forward(self.model, x, self._op_mask)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=self.cfg.label_smoothing)
        loss.backward()
        self.bn.restore(self._ran)  # after the backward, which reads the running statistics' versions
        with torch.no_grad():
            if self.cfg.grad_clip is not None:
                nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip)
            if self.cfg.unsampled_update == "decay":
                torch.maximum(self._touched, self._live, out=self._touched)
                units = self._touched
            else:
                units = self._live
            self._sgd(units)
            self._loss.copy_(loss.detach() * y.numel())
            self._correct.copy_((logits.argmax(1) == y).sum())

    def _sgd(self, units: torch.Tensor) -> None:
        """``torch.optim.SGD``'s update on the elements of ``units``; the others keep their exact values."""
        cfg = self.cfg
        torch.index_select(units, 0, self._elem_unit, out=self._update)
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        d = torch._foreach_add(grads, self.params, alpha=cfg.weight_decay) if cfg.weight_decay else grads
        if self.momentum:
            torch.sub(1.0, self._update, out=self._scale)
            self._scale.add_(self._update, alpha=self.momentum)  # exactly `momentum` where the mask is 1
            torch._foreach_mul_(self.bufs, self._scale_views)
            torch._foreach_addcmul_(self.bufs, d, self._update_views)
            if not self.nesterov:
                d = self.bufs
            else:
                d = torch._foreach_add(d, self.bufs, alpha=self.momentum)
        if self.lr_tensor:  # read by the captured graph at every replay: p + (d * -lr) * mask
            torch._foreach_addcmul_(self.params, torch._foreach_mul(d, self._neg_lr), self._update_views)
        else:  # SGD's own p.add_(d, alpha=-lr): bit-identical to the eager step on CPU
            torch._foreach_add_(self.params, torch._foreach_mul(d, self._update_views), alpha=self._neg_lr_value)

    # ---- CUDA graph -----------------------------------------------------------------------
    def _capture(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Warm up on a side stream, undo the warm-up's updates, then capture one step."""
        self._static = (x.clone(), y.clone())
        sx, sy = self._static
        state = [t for t in (*self.params, *self.bufs, *self.model.buffers(), self._touched)]
        saved = [t.detach().clone() for t in state]
        side = torch.cuda.Stream(device=self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(WARMUP_STEPS):
                self._eager(sx, sy)
        torch.cuda.current_stream(self.device).wait_stream(side)
        with torch.no_grad():
            for t, v in zip(state, saved):  # float and integer tensors alike
                t.copy_(v)
        for p in self.params:
            p.grad = None
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._body(sx, sy)
        self._graph = graph
        self._graph_grads = [p.grad for p in self.params]
