"""Training a standalone network: the DARTS / NB201 evaluation protocol, resumable at any step.

One SGD step per batch with a cosine learning rate per step (``lr`` -> ``lr_min``), the auxiliary
tower's loss weighted by ``aux_weight`` (DARTS), drop-path raised linearly to ``drop_path`` over the
epochs (DARTS sets ``drop_path * epoch / epochs`` at the start of each epoch), gradients clipped at
``grad_clip``; after each epoch the network is evaluated on the test split (and on valid when it
was held out) and one row goes to ``metrics.csv``.

Exact resume: a checkpoint holds the weights, the optimizer, the drop-path generator and the
position (epoch, step); the data order and augmentation are a pure function of (seed, epoch), and
the lr and drop-path probability of the step count, so a run stopped anywhere and resumed ends with
the weights of an uninterrupted run.  ``last`` is written at every epoch end (before the metrics
row, so ``metrics.csv`` is never ahead of it) and, with ``checkpoint_steps`` N, every N steps.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genas.errors import TrainingDivergedError
from genas.progress import Progress
from genas.schedule import cosine_lr, sgd
from genas.training import evaluate as evaluate_batches

__all__ = ["Retrainer", "evaluate", "plot_learning_curve"]


def evaluate(net: nn.Module, loader: Any) -> dict[str, float]:
    """Mean cross-entropy and top-1 accuracy of ``net`` in eval mode over ``loader``, as a dict.

    The loop is :func:`genas.training.evaluate` (the one every trainer shares), run without
    gradients with ``net`` switched to eval mode and back.
    """
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            loss, acc = evaluate_batches(net, loader)
    finally:
        net.train(was_training)
    return {"loss": loss, "acc": acc}


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
    """

    def __init__(self, net: nn.Module, loader: Any, eval_loaders: dict[str, Any], cfg: Any, device: torch.device,
                 run: Any = None, seed: int = 0, checkpoint_every: int = 1, progress: bool = True,
                 extra_state: dict[str, Any] | None = None, checkpoint_steps: int = 0) -> None:  # fmt: skip
        self.net, self.loader, self.eval_loaders, self.cfg, self.device = net, loader, eval_loaders, cfg, device
        self.run, self.checkpoint_every, self.progress = run, checkpoint_every, progress
        self.checkpoint_steps = checkpoint_steps
        self.extra_state = dict(extra_state or {})
        if cfg.channels_last:
            net.to(memory_format=torch.channels_last)
        self.optimizer = sgd(net.parameters(), cfg)
        self.generator = torch.Generator(device=device).manual_seed(seed)
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
            **self.extra_state,
        }  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["drop_path_generator"].cpu())
        self.epoch, self.step, self.global_step = state["epoch"], state["step"], state["global_step"]
        self.history = list(state.get("history", []))
        self._sums = dict(state.get("epoch_sums", self._sums))

    def _save(self, which: str) -> None:
        if self.run is not None:
            self.run.save(which, self.state_dict())

    # ---- one step ------------------------------------------------------------------------
    def _drop_path_prob(self) -> float:
        return self.cfg.drop_path * self.epoch / self.cfg.epochs

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, int]:
        """One SGD step; returns (summed loss of the main head, correct count)."""
        for group in self.optimizer.param_groups:
            group["lr"] = cosine_lr(self.global_step, self.total_steps, self.cfg.lr, self.cfg.lr_min)
        self.optimizer.zero_grad(set_to_none=True)
        if hasattr(self.net, "forward_train"):
            logits, aux = self.net.forward_train(x)
        else:
            logits, aux = self.net(x), None
        loss = F.cross_entropy(logits, y)
        total = loss if aux is None else loss + self.cfg.aux_weight * F.cross_entropy(aux, y)
        total.backward()
        if self.cfg.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.net.parameters(), self.cfg.grad_clip)
        self.optimizer.step()
        return loss.item() * len(y), int((logits.argmax(1) == y).sum())

    # ---- the loop --------------------------------------------------------------------------
    def fit(self, max_steps: int | None = None) -> list[dict[str, Any]]:
        """Train to ``cfg.epochs`` (or ``max_steps`` more steps, then save ``last`` and stop); return the metrics rows."""
        self.net.train()
        done = 0
        fields = {"epoch": "{}", "loss": "{:.4f}", "img/s": "{:.0f}"}
        bar = Progress("retrain", self.total_steps, fields, enabled=self.progress, completed=self.global_step)
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
            if len(self.history) == self.epoch and self.step < len(self.loader):  # not inside the epoch-end bookkeeping
                self._save("last")  # (there the last checkpoint stays)
            raise
        return self.history

    def _end_epoch(self, seconds: float) -> dict[str, Any]:
        n = max(self._sums["seen"], 1.0)
        train_loss = self._sums["loss"] / n
        if not math.isfinite(train_loss):
            raise TrainingDivergedError(f"the training loss became {train_loss} in epoch {self.epoch + 1}; "
                                        "the last good checkpoint is kept (lower retrain.lr or set retrain.grad_clip)")  # fmt: skip
        row: dict[str, Any] = {"epoch": self.epoch + 1, "train_loss": round(train_loss, 6),
                               "train_acc": round(self._sums["correct"] / n, 6)}  # fmt: skip
        for split, loader in self.eval_loaders.items():
            metrics = evaluate(self.net, loader)
            row.update({f"{split}_loss": round(metrics["loss"], 6), f"{split}_acc": round(metrics["acc"], 6)})
        row.update(lr=round(cosine_lr(self.global_step, self.total_steps, self.cfg.lr, self.cfg.lr_min), 8),
                   drop_path=round(self._drop_path_prob(), 6), seconds=round(seconds, 2))  # fmt: skip
        self._sums = {"loss": 0.0, "correct": 0.0, "seen": 0.0}
        self.history.append(row)
        self.epoch, self.step = self.epoch + 1, 0
        if self.run is not None:  # checkpoints first: a kill in between leaves metrics.csv behind last.pt, never ahead
            if self.checkpoint_every and self.epoch % self.checkpoint_every == 0:
                self._save(f"epoch_{self.epoch:04d}")
            self._save("last")
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
