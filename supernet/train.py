"""SPOS supernet training: one uniformly sampled path per step (Guo et al., ECCV 2020).

The trainer is resumable at step granularity: a checkpoint holds the weights, the
optimizer, the path sampler's generator and the position (epoch, step); the data
order is a pure function of (seed, epoch), and the learning rate a pure function of
the global step.  On CPU with the same seed, a run interrupted and resumed ends with
the same weights as an uninterrupted one.

Unused ops get no update: gradients are reset to ``None`` (not zero) each step, and
SGD skips parameters without a gradient, so an op not on the step's path sees neither
weight decay nor momentum from that step.
"""

from __future__ import annotations

import math
import time
import warnings
from contextlib import nullcontext
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from genas.config import TrainConfig
from genas.distributed import DistInfo
from genas.runs import Run
from supernet.base import Supernet
from supernet.sampler import UniformPathSampler

__all__ = ["SupernetTrainer", "cosine_lr"]


def cosine_lr(step: int, total_steps: int, lr: float, lr_min: float) -> float:
    """Cosine annealing from ``lr`` at step 0 to ``lr_min`` at ``total_steps``."""
    t = min(step, total_steps) / max(total_steps, 1)
    return lr_min + 0.5 * (lr - lr_min) * (1.0 + math.cos(math.pi * t))


class SupernetTrainer:
    """Trains a supernet with uniform single-path sampling.

    Args:
        model: The supernet (already on ``device``).
        sampler: The path sampler (same seed on every rank).
        loader: Training loader (``TensorLoader``); sharded per rank when distributed.
        cfg: Optimisation settings.
        device: Where the model lives.
        run: Run directory for checkpoints and metrics (rank 0 writes); None for none.
        dist: Rank information; the model is wrapped in DDP when ``dist.distributed``.
        checkpoint_every: Epochs between periodic checkpoints (0: only ``init`` and ``last``).
        progress: Show a rich progress bar (rank 0).
        extra_state: Saved into every checkpoint as is (e.g. the resolved config).
        tensorboard: Also log each epoch's metrics to ``<run>/tb`` (rank 0).
    """

    def __init__(
        self,
        model: Supernet,
        sampler: UniformPathSampler,
        loader: Any,
        cfg: TrainConfig,
        device: torch.device,
        run: Run | None = None,
        dist: DistInfo = DistInfo(),
        checkpoint_every: int = 1,
        progress: bool = True,
        extra_state: dict[str, Any] | None = None,
        tensorboard: bool = False,
    ) -> None:
        self.model, self.sampler, self.loader, self.cfg = model, sampler, loader, cfg
        self.device, self.run, self.dist = device, run, dist
        self.checkpoint_every, self.progress = checkpoint_every, progress
        self.extra_state = extra_state or {}
        self.tb = None
        if tensorboard and run is not None and dist.is_main:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run.path / "tb"))
        if cfg.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.net: nn.Module = model
        if dist.distributed:
            ids = [device.index] if device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)
        self.optimizer = torch.optim.SGD(
            model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0,
            weight_decay=cfg.weight_decay,
        )  # fmt: skip
        if cfg.amp == "bf16" and device.type == "cpu":
            warnings.warn("bf16 autocast on CPU is usually far slower than fp32 (measured 40x here)", stacklevel=2)
        self.autocast = (
            torch.autocast(device_type=device.type, dtype=torch.bfloat16) if cfg.amp == "bf16" else nullcontext()
        )
        self.epoch = 0
        self.step = 0  # within the epoch
        self.global_step = 0
        self.history: list[dict[str, Any]] = []
        self._sums: dict[str, float] = {"loss": 0.0, "correct": 0.0, "seen": 0.0}
        self.total_steps = cfg.epochs * len(loader)

    # ---- state -----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "hparams": dict(self.model.hparams),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "sampler": self.sampler.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "global_step": self.global_step,
            "history": list(self.history),
            "epoch_sums": dict(self._sums),  # loss / correct / seen so far in an unfinished epoch
            **self.extra_state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.sampler.load_state_dict(state["sampler"])
        self.epoch, self.step, self.global_step = state["epoch"], state["step"], state["global_step"]
        self.history = list(state.get("history", []))
        self._sums = dict(state.get("epoch_sums", self._sums))

    def _save(self, which: str) -> None:
        if self.run is not None and self.dist.is_main:
            self.run.save(which, self.state_dict())

    # ---- one step --------------------------------------------------------------------
    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One SGD step on one sampled path; returns (summed loss, correct count) as tensors."""
        path = self.sampler.sample()
        for group in self.optimizer.param_groups:
            group["lr"] = cosine_lr(self.global_step, self.total_steps, self.cfg.lr, self.cfg.lr_min)
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast:
            logits = self.net(x, path)
            loss = F.cross_entropy(logits.float(), y)
        loss.backward()
        if self.cfg.grad_clip is not None:
            nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.grad is not None], self.cfg.grad_clip)
        self.optimizer.step()
        with torch.no_grad():
            return loss.detach() * y.numel(), (logits.argmax(1) == y).sum()

    # ---- the loop ----------------------------------------------------------------------
    def fit(self, max_steps: int | None = None, on_step: Callable[[int], None] | None = None) -> list[dict[str, Any]]:
        """Train until ``cfg.epochs`` (or ``max_steps`` more steps, then save ``last`` and stop).

        Args:
            max_steps: Stop after this many steps of this call (checkpoint kept for resume).
            on_step: Called with the global step after every step.

        Returns:
            One metrics row per completed epoch.
        """
        if self.global_step == 0 and self.step == 0 and self.epoch == 0:
            self._save("init")  # the weights at step 0: the angle scorer needs them
        self.model.train()
        steps_done, seen = 0, 0
        self._sums_ref: tuple[torch.Tensor, torch.Tensor] | None = None
        bar = _Progress(self.cfg.epochs, len(self.loader), enabled=self.progress and self.dist.is_main)
        try:
            with bar:
                while self.epoch < self.cfg.epochs:
                    loss_sum = torch.zeros((), device=self.device)
                    correct = torch.zeros((), dtype=torch.long, device=self.device)
                    seen, t0 = 0, time.perf_counter()
                    self._sums_ref = (loss_sum, correct)
                    bar.start_epoch(self.epoch, self.global_step)
                    for x, y in self.loader.iter_from(self.epoch, self.step):
                        loss, corr = self.train_step(x, y)
                        loss_sum += loss
                        correct += corr
                        seen += y.numel()
                        self.step += 1
                        self.global_step += 1
                        steps_done += 1
                        if bar.enabled and (self.step % 10 == 0 or self.step == len(self.loader)):
                            ips = seen * self.dist.world_size / (time.perf_counter() - t0)
                            bar.update(self.global_step, self.step, loss.item() / y.numel(), ips)
                        if on_step is not None:
                            on_step(self.global_step)
                        if max_steps is not None and steps_done >= max_steps:
                            self._stash(loss_sum, correct, seen)
                            self._save("last")
                            return self.history
                    self._end_epoch(loss_sum, correct, seen, time.perf_counter() - t0)
        except KeyboardInterrupt:
            if self._sums_ref is not None:
                self._stash(*self._sums_ref, seen)
            self._save("last")
            raise
        return self.history

    def _stash(self, loss_sum: torch.Tensor, correct: torch.Tensor, seen: int) -> None:
        """Keep the unfinished epoch's sums (on top of any restored ones) for the checkpoint."""
        self._sums = {"loss": self._sums["loss"] + loss_sum.item(), "correct": self._sums["correct"] + correct.item(),
                      "seen": self._sums["seen"] + seen}  # fmt: skip

    def _end_epoch(self, loss_sum: torch.Tensor, correct: torch.Tensor, seen: int, seconds: float) -> None:
        prev, self._sums = self._sums, {"loss": 0.0, "correct": 0.0, "seen": 0.0}
        stats = torch.stack([loss_sum.float() + prev["loss"], correct.float() + prev["correct"],
                             torch.tensor(float(seen) + prev["seen"], device=self.device)])  # fmt: skip
        if self.dist.distributed:
            torch.distributed.all_reduce(stats)
            for buf in self.model.buffers():  # DDP syncs BN statistics at each forward; end the epoch in sync
                torch.distributed.broadcast(buf, 0)
        n = max(stats[2].item(), 1.0)
        row = {
            "epoch": self.epoch + 1,
            "train_loss": round(stats[0].item() / n, 6),
            "train_acc": round(stats[1].item() / n, 6),
            "lr": round(cosine_lr(self.global_step, self.total_steps, self.cfg.lr, self.cfg.lr_min), 8),
            "images_per_s": round(stats[2].item() / max(seconds, 1e-9), 1),
            "seconds": round(seconds, 2),
        }
        self.history.append(row)
        self.epoch += 1
        self.step = 0
        if self.run is not None and self.dist.is_main:
            self.run.write_metrics(self.history)
        if self.tb is not None:
            for key, value in row.items():
                if key != "epoch":
                    self.tb.add_scalar(f"train/{key}", value, row["epoch"])
            self.tb.flush()
        if self.checkpoint_every and self.epoch % self.checkpoint_every == 0:
            self._save(f"epoch_{self.epoch:04d}")
        self._save("last")


class _Progress:
    """A rich progress bar: epoch, step, loss, throughput, ETA of the whole run (silent when disabled)."""

    def __init__(self, epochs: int, steps_per_epoch: int, enabled: bool) -> None:
        self.epochs, self.steps, self.enabled = epochs, steps_per_epoch, enabled
        self.progress: Any = None
        self.task: Any = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("[bold]epoch {task.fields[epoch]}/{task.fields[epochs]}"),
                TextColumn("step {task.fields[step]}/{task.fields[steps]}"), BarColumn(),
                TextColumn("loss {task.fields[loss]:.4f}"), TextColumn("{task.fields[ips]:.0f} img/s"),
                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            )  # fmt: skip
            self.progress.__enter__()
            self.task = self.progress.add_task(
                "train", total=self.epochs * self.steps, epoch=1, epochs=self.epochs, step=0, steps=self.steps,
                loss=float("nan"), ips=0.0,
            )  # fmt: skip
        return self

    def start_epoch(self, epoch: int, global_step: int) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=global_step, epoch=epoch + 1)

    def update(self, global_step: int, step: int, loss: float, ips: float) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=global_step, step=step, loss=loss, ips=ips)

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)
