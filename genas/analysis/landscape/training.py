"""An accuracy source that trains every architecture to a fixed training-loss threshold.

The A2M paper (section 5.1) evaluates DARTS neighbours this way: each sampled neighbour is
trained from scratch and stopped once the training loss reaches a threshold (0.43 on
CIFAR-10, 1.0 on CIFAR-100, typically after 50-70 epochs), so that all neighbours are
compared at the same stage of optimisation; its validation accuracy is the landscape value.
This costs one full training per architecture.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from genas.errors import ConfigError
from genas.validation import check_float, check_int

__all__ = ["TrainToThresholdSource", "TrainRecord"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainRecord:
    """What happened when one architecture was trained."""

    arch: Any
    epochs: int
    train_loss: float
    reached: bool
    accuracy: float


class TrainToThresholdSource:
    """Train each architecture with SGD until an epoch's mean training loss drops below a threshold.

    Args:
        model_fn: ``model_fn(arch) -> torch.nn.Module`` whose ``forward(x)`` returns logits.
        train_loader: Iterable of ``(inputs, targets)`` batches used for training.
        valid_loader: Iterable of ``(inputs, targets)`` batches for the returned accuracy.
        loss_threshold: Stop after the first epoch whose mean training loss is below this value.
        max_epochs: Give up after this many epochs (the record then says ``reached=False``).
        device: Torch device the model and batches are moved to.
        lr: Initial SGD learning rate (cosine-annealed over ``max_epochs``, DARTS evaluation recipe).
        momentum: SGD momentum.
        weight_decay: SGD weight decay.
        grad_clip: Gradient-norm clip (``None``: no clipping).
        seed: Seed of the torch generator during each training run (model initialisation, dropout,
            a shuffling loader without its own generator); the global generator is restored afterwards.

    Example:
        >>> source = TrainToThresholdSource(build_net, train_loader, valid_loader, 0.43)  # doctest: +SKIP
        >>> source([arch_a, arch_b])  # doctest: +SKIP
        array([91.9, 92.4])
    """

    def __init__(
        self,
        model_fn: Callable[[Any], Any],
        train_loader: Iterable[Any],
        valid_loader: Iterable[Any],
        loss_threshold: float,
        max_epochs: int = 100,
        device: str = "cpu",
        lr: float = 0.025,
        momentum: float = 0.9,
        weight_decay: float = 3e-4,
        grad_clip: float | None = 5.0,
        seed: int = 0,
    ) -> None:
        owner = "TrainToThresholdSource"
        if not callable(model_fn):
            raise ConfigError(
                f"The 'model_fn' parameter of {owner} must be callable as model_fn(arch). Got {model_fn!r} instead."
            )
        self.model_fn = model_fn
        self.train_loader, self.valid_loader = train_loader, valid_loader
        self.loss_threshold = check_float(loss_threshold, "loss_threshold", owner, 0.0, None, closed="neither")
        self.max_epochs = check_int(max_epochs, "max_epochs", owner, 1)
        self.lr = check_float(lr, "lr", owner, 0.0, None, closed="neither")
        self.momentum = check_float(momentum, "momentum", owner, 0.0, 1.0)
        self.weight_decay = check_float(weight_decay, "weight_decay", owner, 0.0)
        self.grad_clip = None if grad_clip is None else check_float(grad_clip, "grad_clip", owner, 0.0, None, "neither")
        self.seed = check_int(seed, "seed", owner, 0)
        self.device = device
        self.records: list[TrainRecord] = []

    def __call__(self, archs: Sequence[Any]) -> np.ndarray:
        archs = list(archs)
        msg = (
            f"TrainToThresholdSource trains {len(archs)} architecture(s) from scratch, one full training each "
            f"(up to {self.max_epochs} epochs, until the training loss < {self.loss_threshold})"
        )
        warnings.warn(msg, UserWarning, stacklevel=2)
        logger.info(msg)
        return np.array([self.train_one(arch).accuracy for arch in archs], dtype=np.float64)

    def train_one(self, arch: Any) -> TrainRecord:
        """Train ``arch`` to the threshold, record and return what happened."""
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            model = self.model_fn(arch).to(self.device)
            epochs, loss, reached = self._train(model)
        accuracy = self._accuracy(model)
        record = TrainRecord(arch, epochs, loss, reached, accuracy)
        self.records.append(record)
        if not reached:
            warnings.warn(
                f"{arch}: training loss {loss:.4f} still above {self.loss_threshold} after {epochs} epochs",
                UserWarning, stacklevel=3,
            )  # fmt: skip
        logger.info("trained %s: %d epochs, train loss %.4f, accuracy %.2f%%", arch, epochs, loss, accuracy)
        return record

    def _train(self, model: Any) -> tuple[int, float, bool]:
        import torch

        from genas.training import train_epoch

        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.SGD(params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.max_epochs)
        mean_loss = float("inf")
        for epoch in range(1, self.max_epochs + 1):
            try:
                mean_loss = train_epoch(model, self.train_loader, opt, grad_clip=self.grad_clip, device=self.device)["loss"]
            except ConfigError:
                raise ConfigError("the train_loader of TrainToThresholdSource yielded no batch") from None
            sched.step()
            if mean_loss < self.loss_threshold:
                return epoch, mean_loss, True
        return self.max_epochs, mean_loss, False

    def _accuracy(self, model: Any) -> float:
        from genas.training import evaluate

        model.eval()
        try:
            return 100.0 * evaluate(model, self.valid_loader, device=self.device)[1]
        except ConfigError:
            raise ConfigError("the valid_loader of TrainToThresholdSource yielded no batch") from None
