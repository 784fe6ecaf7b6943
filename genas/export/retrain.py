"""Training a standalone network: the DARTS / NB201 evaluation protocol, resumable at any step.

One SGD step per batch with a cosine or linear learning rate per step (``lr`` -> ``lr_min``, after an
optional linear warm-up; ``lr`` scaled linearly with the global batch when ``lr_reference_batch``
is set), label smoothing, the auxiliary
tower's loss weighted by ``aux_weight`` (DARTS), drop-path raised linearly to ``drop_path`` over the
epochs (DARTS sets ``drop_path * epoch / epochs`` at the start of each epoch), gradients clipped at
``grad_clip``; after each epoch the network is evaluated on the test split (and on valid when it
was held out) and one row goes to ``metrics.csv``.

Exact resume: a checkpoint holds the weights, the optimizer, the drop-path generator and the
position (epoch, step); the data order and augmentation are a pure function of (seed, epoch), and
the lr and drop-path probability of the step count, so a run stopped anywhere and resumed ends with
the weights of an uninterrupted run.  ``last`` is written at every epoch end (before the metrics
row, so ``metrics.csv`` is never ahead of it) and, with ``checkpoint_steps`` N, every N steps.

Under ``torchrun`` the network is wrapped in DDP, each rank trains on its shard of every epoch and
evaluates its shard of the eval splits (the metrics are summed over the ranks); rank 0 writes. With
``ema_decay`` an exponential moving average of the weights (``torch.optim.swa_utils.AveragedModel``,
buffers included) is kept, evaluated each epoch (``ema_<split>_acc`` columns) and checkpointed.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genas.distributed import DistInfo
from genas.errors import TrainingDivergedError
from genas.progress import Progress
from genas.schedule import lr_at, sgd
from genas.training import evaluate as evaluate_batches

__all__ = ["Retrainer", "evaluate", "plot_learning_curve"]


def evaluate(net: nn.Module, loader: Any, dist: DistInfo | None = None) -> dict[str, float]:
    """Mean cross-entropy and top-1 accuracy of ``net`` in eval mode over ``loader``, as a dict.

    The loop is :func:`genas.training.evaluate` (the one every trainer shares), run without
    gradients with ``net`` switched to eval mode and back. With a distributed ``dist`` each rank
    passes its shard and the means are taken over all ranks' images (a collective).
    """
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            loss, acc = evaluate_batches(net, loader)
    finally:
        net.train(was_training)
    if dist is not None and dist.distributed:
        n = float(loader.num_samples)
        t = torch.tensor([loss * n, acc * n, n], dtype=torch.float64, device=next(net.parameters()).device)
        torch.distributed.all_reduce(t)
        loss, acc = t[0].item() / t[2].item(), t[1].item() / t[2].item()
    return {"loss": loss, "acc": acc}


class _TrainForward(nn.Module):
    """``(logits, auxiliary logits or None)`` of a network in training: what DDP wraps (it hooks ``forward``)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if hasattr(self.net, "forward_train"):
            return self.net.forward_train(x)
        return self.net(x), None


class Retrainer:
    """Trains one network with the ``retrain`` config section.

    Args:
        net: The network (on ``device``); a DARTS network's drop-path and auxiliary tower are used.
        loader: The training loader (``genas.data.TensorLoader``).
        eval_loaders: Split name -> loader evaluated after every epoch (``test``, ``valid``).
        cfg: A :class:`genas.export.config.RetrainConfig`.
        device: Where the network lives.
        run: Run directory for checkpoints and metrics (None: nothing is written).
        seed: Seeds the drop-path generator.
        checkpoint_every: Epochs between kept checkpoints ``epoch_NNNN`` (``last`` is written every epoch).
        checkpoint_steps: Also write ``last`` every this many steps inside an epoch (0: at epoch ends only).
        progress: Show progress (a rich bar on a terminal, a plain line per epoch otherwise).
        extra_state: Saved into every checkpoint as is (e.g. the resolved config).
        dist: The process group (``torchrun``): DDP, sharded loaders, metrics summed over ranks, rank 0 writes.
    """

    def __init__(self, net: nn.Module, loader: Any, eval_loaders: dict[str, Any], cfg: Any, device: torch.device,
                 run: Any = None, seed: int = 0, checkpoint_every: int = 1, progress: bool = True,
                 extra_state: dict[str, Any] | None = None, checkpoint_steps: int = 0,
                 dist: DistInfo | None = None) -> None:  # fmt: skip
        self.net, self.loader, self.eval_loaders, self.cfg, self.device = net, loader, eval_loaders, cfg, device
        self.dist = dist or DistInfo()
        self.run, self.checkpoint_every, self.progress = run, checkpoint_every, progress
        self.checkpoint_steps = checkpoint_steps
        self.extra_state = dict(extra_state or {})
        if cfg.channels_last:
            net.to(memory_format=torch.channels_last)
        self.optimizer = sgd(net.parameters(), cfg)
        self.forward: nn.Module = _TrainForward(net)
        if self.dist.distributed:
            ids = [device.index] if device.type == "cuda" else None
            # an NB201 cell may hold ops on a dead edge (into a node no later edge reads): they get no gradient
            unused = getattr(net, "space", None) == "nb201"
            self.forward = nn.parallel.DistributedDataParallel(self.forward, device_ids=ids, find_unused_parameters=unused)
        global_batch = loader.batch_size * self.dist.world_size
        self.lr_scale = global_batch / cfg.lr_reference_batch if cfg.lr_reference_batch else 1.0
        self.ema = None
        if cfg.ema_decay is not None:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            self.ema = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)
        self.generator = torch.Generator(device=device).manual_seed(seed)  # the same on every rank
        if hasattr(net, "set_drop_path_generator"):
            net.set_drop_path_generator(self.generator)
        self.epoch = self.step = self.global_step = 0
        self.history: list[dict[str, Any]] = []
        self._sums = {"loss": 0.0, "correct": 0.0, "seen": 0.0}  # of an unfinished epoch
        self.total_steps = cfg.epochs * len(loader)

    # ---- state -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "network": self.net.name, "arch": self.net.arch.to_json(), "hparams": dict(self.net.hparams),
            "model": self.net.state_dict(), "optimizer": self.optimizer.state_dict(),
            "drop_path_generator": self.generator.get_state(), "epoch": self.epoch, "step": self.step,
            "global_step": self.global_step, "history": list(self.history), "epoch_sums": dict(self._sums),
            **({"ema_model": self.ema.state_dict()} if self.ema is not None else {}), **self.extra_state,
        }  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["drop_path_generator"].cpu())
        self.epoch, self.step, self.global_step = state["epoch"], state["step"], state["global_step"]
        self.history = list(state.get("history", []))
        self._sums = dict(state.get("epoch_sums", self._sums))
        if not self.dist.is_main:  # rank 0 carries the (all-rank) sums of the unfinished epoch
            self._sums = {k: 0.0 for k in self._sums}
        if self.ema is not None and "ema_model" in state:
            self.ema.load_state_dict(state["ema_model"])
        elif self.ema is not None:  # EMA switched on at a resume: it starts from the loaded weights
            from torch.optim.swa_utils import AveragedModel

            self.ema = AveragedModel(self.net, multi_avg_fn=self.ema.multi_avg_fn, use_buffers=True)

    def _global_sums(self) -> None:
        """Sum the unfinished epoch's loss / correct / images over the ranks onto rank 0 (a collective)."""
        if self.dist.distributed:
            t = torch.tensor([self._sums[k] for k in ("loss", "correct", "seen")], dtype=torch.float64, device=self.device)
            torch.distributed.all_reduce(t)
            total = dict(zip(("loss", "correct", "seen"), t.tolist()))
            self._sums = total if self.dist.is_main else {k: 0.0 for k in total}

    def _save(self, which: str) -> None:
        """Write checkpoint ``which`` (rank 0); every rank calls it (the epoch's sums are gathered first)."""
        self._global_sums()
        if self.run is not None and self.dist.is_main:
            self.run.save(which, self.state_dict())

    # ---- one step ------------------------------------------------------------------------
    def _lr(self) -> float:
        """This step's learning rate: the section's schedule, scaled to the global batch."""
        return self.lr_scale * lr_at(self.global_step, self.total_steps, len(self.loader), self.cfg)

    def _drop_path_prob(self) -> float:
        return self.cfg.drop_path * self.epoch / self.cfg.epochs

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, int]:
        """One SGD step; returns (summed loss of the main head, correct count)."""
        for group in self.optimizer.param_groups:
            group["lr"] = self._lr()
        self.optimizer.zero_grad(set_to_none=True)
        logits, aux = self.forward(x)
        smooth = self.cfg.label_smoothing
        loss = F.cross_entropy(logits, y, label_smoothing=smooth)
        total = loss if aux is None else loss + self.cfg.aux_weight * F.cross_entropy(aux, y, label_smoothing=smooth)
        total.backward()
        if self.cfg.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.net.parameters(), self.cfg.grad_clip)
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update_parameters(self.net)
        return loss.item() * len(y), int((logits.argmax(1) == y).sum())

    # ---- the loop --------------------------------------------------------------------------
    def fit(self, max_steps: int | None = None) -> list[dict[str, Any]]:
        """Train to ``cfg.epochs`` (or ``max_steps`` more steps, then save ``last`` and stop); return the metrics rows."""
        self.net.train()
        done = 0
        fields = {"epoch": "{}", "loss": "{:.4f}", "img/s": "{:.0f}"}
        bar = Progress("retrain", self.total_steps, fields, enabled=self.progress and self.dist.is_main,
                       completed=self.global_step)  # fmt: skip
        try:
            with bar:
                while self.epoch < self.cfg.epochs:
                    if hasattr(self.net, "drop_path_prob"):
                        self.net.drop_path_prob = self._drop_path_prob()
                    t0, seen = time.perf_counter(), 0
                    for x, y in self.loader.iter_from(self.epoch, self.step):
                        loss, correct = self.train_step(x, y)
                        self._sums = {"loss": self._sums["loss"] + loss, "correct": self._sums["correct"] + correct,
                                      "seen": self._sums["seen"] + len(y)}  # fmt: skip
                        seen += len(y)
                        self.step += 1
                        self.global_step += 1
                        done += 1
                        bar.update(self.global_step, epoch=self.epoch + 1, loss=loss / len(y),
                                   **{"img/s": seen / max(time.perf_counter() - t0, 1e-9)})  # fmt: skip
                        if max_steps is not None and done >= max_steps:
                            self._save("last")
                            return self.history
                        if self.checkpoint_steps and self.global_step % self.checkpoint_steps == 0 and self.step < len(self.loader):
                            self._save("last")
                    row = self._end_epoch(time.perf_counter() - t0)
                    bar.line(f"epoch {row['epoch']}/{self.cfg.epochs}  " + "  ".join(
                        f"{k} {v:.4g}" for k, v in row.items() if k != "epoch"), self.global_step)  # fmt: skip
        except KeyboardInterrupt:
            single = not self.dist.distributed  # (with several ranks the step checkpoints are what is kept)
            if single and len(self.history) == self.epoch and self.step < len(self.loader):  # not inside the epoch-end bookkeeping
                self._save("last")  # (there the last checkpoint stays)
            raise
        return self.history

    def _end_epoch(self, seconds: float) -> dict[str, Any]:
        self._global_sums()
        n = max(self._sums["seen"], 1.0)
        train_loss = self._sums["loss"] / n
        if not math.isfinite(train_loss):
            raise TrainingDivergedError(f"the training loss became {train_loss} in epoch {self.epoch + 1}; "
                                        "the last good checkpoint is kept (lower retrain.lr or set retrain.grad_clip)")  # fmt: skip
        row: dict[str, Any] = {"epoch": self.epoch + 1, "train_loss": round(train_loss, 6),
                               "train_acc": round(self._sums["correct"] / n, 6)}  # fmt: skip
        for split, loader in self.eval_loaders.items():
            metrics = evaluate(self.net, loader, self.dist)
            row.update({f"{split}_loss": round(metrics["loss"], 6), f"{split}_acc": round(metrics["acc"], 6)})
            if self.ema is not None:
                row[f"ema_{split}_acc"] = round(evaluate(self.ema.module, loader, self.dist)["acc"], 6)
        row.update(lr=round(self._lr(), 8),
                   drop_path=round(self._drop_path_prob(), 6), seconds=round(seconds, 2))  # fmt: skip
        self._sums = {"loss": 0.0, "correct": 0.0, "seen": 0.0}
        self.history.append(row)
        self.epoch, self.step = self.epoch + 1, 0
        if self.run is not None:  # checkpoints first: a kill in between leaves metrics.csv behind last.pt, never ahead
            if self.checkpoint_every and self.epoch % self.checkpoint_every == 0:
                self._save(f"epoch_{self.epoch:04d}")
            self._save("last")
            if self.dist.is_main:
                self.run.write_metrics(self.history)
        return row


def plot_learning_curve(rows: list[dict[str, Any]], path: Any, title: str) -> bool:
    """Loss and accuracy per epoch (train and every evaluated split) as a PNG, written atomically.

    Returns:
        False when matplotlib is not installed (the ``plot`` extra); nothing is written then.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    from genas.io import atomic_writer

    epochs = [r["epoch"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, metric in zip(axes, ("loss", "acc")):
        for key in [k for k in rows[0] if k.endswith(f"_{metric}")]:
            ax.plot(epochs, [r[key] for r in rows], marker="." if len(rows) < 60 else None, label=key.split("_")[0])
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_ylabel("cross-entropy" if metric == "loss" else "top-1 accuracy")
        ax.legend()
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_writer(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=100)
    plt.close(fig)
    return True
