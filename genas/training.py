"""The plain training and evaluation loops every stage shares for standalone networks.

:func:`train_epoch` runs one epoch of cross-entropy training (optional gradient clipping and an
auxiliary-head loss) and :func:`evaluate` the mean loss and top-1 of a model over batches, both
summing per image on the device and syncing once at the end.  Subnet scoring (``scorers``), the
landscape's train-to-threshold source (``genas.analysis.landscape``) and retraining (``export``) call
these instead of writing their own loops; SPOS supernet training (``supernet.train``) has its own
step because a step there samples a path.

Example:
    >>> import torch
    >>> model = torch.nn.Linear(4, 3)
    >>> batches = [(torch.randn(8, 4), torch.randint(0, 3, (8,))) for _ in range(2)]
    >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> stats = train_epoch(model, batches, opt)
    >>> sorted(stats), 0.0 <= evaluate(model, batches)[1] <= 1.0
    (['accuracy', 'images', 'loss'], True)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genas.errors import ConfigError, TrainingDivergedError

__all__ = ["train_epoch", "evaluate", "TimedBatches", "usable_channels_last"]

Batch = tuple[torch.Tensor, torch.Tensor]


def train_epoch(
    model: nn.Module,
    batches: Iterable[Batch],
    optimizer: torch.optim.Optimizer,
    *,
    grad_clip: float | None = None,
    device: torch.device | str | None = None,
    aux_weight: float = 0.0,
    before_step: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """One epoch of cross-entropy training; returns the mean loss, top-1 (fraction) and image count.

    Args:
        model: In train mode for the epoch; ``model(x)`` returns logits, or ``(logits, aux_logits)``
            when it has an auxiliary head (DARTS), whose loss is added with ``aux_weight``.
        batches: ``(inputs, targets)`` pairs (moved to ``device`` if given).
        optimizer: Steps once per batch.
        grad_clip: Clip the gradient norm to this value (None: no clipping).
        device: Where the batches go (None: where they are).
        aux_weight: Weight of the auxiliary loss.
        before_step: Called with the batch index before each step (e.g. to set the learning rate).

    Raises:
        TrainingDivergedError: The loss became NaN or infinite.
        ConfigError: ``batches`` yielded nothing.
    """
    model.train()
    params = [p for g in optimizer.param_groups for p in g["params"]]
    loss_sum = torch.zeros((), dtype=torch.float64)
    correct = torch.zeros((), dtype=torch.long)
    n = 0
    for i, (x, y) in enumerate(batches):
        if device is not None:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if before_step is not None:
            before_step(i)
        optimizer.zero_grad(set_to_none=True)
        out = model(x)
        logits, aux = out if isinstance(out, tuple) else (out, None)
        loss = F.cross_entropy(logits.float(), y)
        if aux is not None and aux_weight:
            loss = loss + aux_weight * F.cross_entropy(aux.float(), y)
        loss.backward()
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(params, grad_clip)
        optimizer.step()
        with torch.no_grad():
            loss_sum = loss_sum.to(loss.device) + loss.detach().double() * y.numel()
            correct = correct.to(y.device) + (logits.argmax(1) == y).sum()
        n += y.numel()
    if n == 0:
        raise ConfigError("train_epoch: the batches yielded nothing (an empty split, or a batch larger than it?)")
    mean = loss_sum.item() / n
    if mean != mean or mean in (float("inf"), float("-inf")):
        raise TrainingDivergedError("training diverged: the epoch's loss is NaN or infinite; lower the learning rate "
                                    "or clip gradients")  # fmt: skip
    return {"loss": mean, "accuracy": correct.item() / n, "images": n}


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable[Batch], device: torch.device | str | None = None) -> tuple[float, float]:
    """(mean cross-entropy, top-1 as a fraction) of ``model`` over ``batches``, summed per image.

    The model is evaluated as it is (call ``model.eval()`` first for eval-mode BN); only the main
    logits of a model with an auxiliary head count.
    """
    loss = torch.zeros((), dtype=torch.float64)
    correct = torch.zeros((), dtype=torch.long)
    n = 0
    for x, y in batches:
        if device is not None:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        out = model(x)
        logits = out[0] if isinstance(out, tuple) else out
        loss = loss.to(y.device) + F.cross_entropy(logits.float(), y, reduction="sum").double()
        correct = correct.to(y.device) + (logits.argmax(1) == y).sum()
        n += y.numel()
    if n == 0:
        raise ConfigError("evaluate: the batches yielded nothing")
    return loss.item() / n, correct.item() / n


class TimedBatches:
    """An iterable of batches that adds up, in ``waited``, the seconds its consumer spent waiting for each next one.

    The ``data_wait`` of a training epoch (decode, augment and copy not hidden behind the step):
    ``waited / epoch seconds``.
    """

    def __init__(self, batches: Iterable[Any]) -> None:
        self.batches, self.waited = batches, 0.0

    def __iter__(self) -> Iterator[Any]:
        it = iter(self.batches)
        while True:
            start = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                return
            finally:
                self.waited += time.perf_counter() - start
            yield batch


def usable_channels_last(model: nn.Module, device: torch.device | str, wanted: bool) -> bool:
    """``wanted``, unless this CPU run would hit a crash of torch's oneDNN kernels; then False, with a warning line.

    torch 2.14.1 on CPU corrupts its heap (a segfault or ``free(): invalid next size``) in the
    backward of a stride-2 1x1 convolution in channels_last with fewer than 16 input channels on
    inputs of about 50 px and more (measured: 8 -> 4 channels at 56x56; 24 channels and 28x28 run).
    DARTS's FactorizedReduce is such a convolution in small networks at ImageNet resolution. CUDA is
    unaffected, and so are the real ImageNet widths (C=48).
    """
    if not wanted or torch.device(device).type != "cpu":
        return wanted
    risky = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)
             and m.stride == (2, 2) and m.in_channels < 16]  # fmt: skip
    if risky:
        import warnings

        from genas.errors import GenasWarning

        warnings.warn("channels_last is off for this CPU run: torch's oneDNN CPU kernels crash in the backward of a "
                      f"stride-2 1x1 convolution with {risky[0].in_channels} (< 16) input channels in channels_last "
                      "(docs/training.md); CUDA runs keep it", GenasWarning, stacklevel=2)  # fmt: skip
        return False
    return wanted
