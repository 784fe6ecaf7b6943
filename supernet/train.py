"""SPOS supernet training: one uniformly sampled path per step (Guo et al., ECCV 2020).

The trainer is resumable at step granularity: a checkpoint holds the weights, the
optimizer, the path sampler's generator and the position (epoch, step); the data
order is a pure function of (seed, epoch), and the learning rate a pure function of
the global step.  On CPU with the same seed, a run interrupted and resumed ends with
the same weights as an uninterrupted one.

What happens to the ops a step does not sample is ``train.unsampled_update``:

* ``decay`` (default, the reference code's dynamics): gradients are zero-filled each step, as
  ``optimizer.zero_grad()`` did in the PyTorch 1.4 / 1.7 that RLNAS and GeNAS ran on.  An op
  that has had a gradient once keeps receiving weight decay and momentum in every later step,
  sampled or not; an op never sampled keeps a ``None`` gradient and is untouched.
* ``freeze``: gradients are reset to ``None``, and SGD skips parameters without one, so an op
  off the step's path sees neither weight decay nor momentum from that step.

The choice changes the angle ranking as training goes on (``docs/ranking.md``): under
``freeze`` the fixed modules, updated every step, rotate away from their init far faster than
the cell ops.  Which parameters have been touched is part of the checkpoint, so a resumed
``decay`` run continues exactly.

``train.step`` chooses how a step runs: ``eager`` (default, the reference) runs the sampled ops
only; ``graph`` runs every op under one-hot masks with a masked SGD, captured as one CUDA graph
(:mod:`supernet.graph_step`), with the same losses and weights.  Where it cannot be captured (CPU,
DDP, a plugin supernet, data off the device) it falls back to ``eager`` with one warning naming the
reason, or raises when ``train.step_fallback`` is false.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from genas.distributed import DistInfo
from genas.errors import ConfigError, TrainingDivergedError
from genas.progress import Progress
from genas.runs import Run
from genas.schedule import cosine_lr, lr_at, sgd
from genas.training import TimedBatches
from supernet.bn import kept_bn_state, recalibrate_bn
from supernet.config import TrainConfig
from supernet.base import Supernet
from supernet.graph_step import GraphStep, graph_step_unavailable
from supernet.sampler import UniformPathSampler

__all__ = ["SupernetTrainer", "cosine_lr", "CHECK_EVERY", "HELDOUT_PATHS"]

CHECK_EVERY = 50  # steps between the (one-sync) checks for a non-finite loss
HELDOUT_PATHS, HELDOUT_SEED = 4, 0x4E4C  # fixed paths of the per-epoch held-out accuracy


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
        checkpoint_steps: Also write ``last`` every this many optimisation steps inside an epoch (0: at
            epoch ends only), so that a kill loses at most that many steps; a resume continues at that step.
        progress: Show a rich progress bar (rank 0).
        extra_state: Saved into every checkpoint as is (e.g. the resolved config).
        tensorboard: Also log each epoch's metrics to ``<run>/tb`` (rank 0).
        heldout: Fixed held-out ``(x, y)`` batches; each epoch's ``heldout_acc`` is the mean top-1 of
            :data:`HELDOUT_PATHS` fixed paths on them: a cheap signal that the supernet learns beyond
            its training batches.
        heldout_bn: Fixed training batches on which each held-out path's BN statistics are
            recalibrated before it is evaluated (as the ``accuracy`` scorer does); the supernet's own
            BN buffers are put back afterwards, so training is unchanged.  Empty: evaluate with the
            supernet's running statistics, which mix every path.
        graph_capture: With ``cfg.step == "graph"``: capture the step as a CUDA graph (True), or run
            the same masked step uncaptured on any device (False: what the CPU tests compare).
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
        heldout: Sequence[tuple[torch.Tensor, torch.Tensor]] | None = None,
        graph_capture: bool = True,
        checkpoint_steps: int = 0,
        heldout_bn: Sequence[tuple[torch.Tensor, torch.Tensor]] | None = None,
    ) -> None:
        self.model, self.sampler, self.loader, self.cfg = model, sampler, loader, cfg
        self.device, self.run, self.dist = device, run, dist
        self.checkpoint_every, self.checkpoint_steps, self.progress = checkpoint_every, checkpoint_steps, progress
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
        self.optimizer = sgd(model.parameters(), cfg)
        if cfg.amp == "bf16" and device.type == "cpu":
            warnings.warn("bf16 autocast on CPU is usually far slower than fp32 (measured 40x here)", stacklevel=2)
        self.autocast = (
            torch.autocast(device_type=device.type, dtype=torch.bfloat16) if cfg.amp == "bf16" else nullcontext()
        )
        self.epoch = 0
        self.step = 0  # within the epoch
        self.global_step = 0
        self.history: list[dict[str, Any]] = []
        self._sums: dict[str, float] = {"loss": 0.0, "correct": 0.0, "seen": 0.0}  # of the unfinished epoch, at its start
        self._live: tuple[torch.Tensor, torch.Tensor] | None = None  # the running sums (seeded with _sums) in fit
        self._live_seen = 0.0
        self.total_steps = cfg.epochs * len(loader)
        self.last_saved = "last"  # the checkpoint a resume would continue from
        self.heldout = list(heldout or [])
        self.heldout_bn = list(heldout_bn or [])
        probe = UniformPathSampler(model.space, model.num_search_cells, seed=HELDOUT_SEED)
        self.heldout_paths = [probe.sample() for _ in range(HELDOUT_PATHS)] if self.heldout else []
        self.graph: GraphStep | None = None
        if cfg.step == "graph":
            reason = graph_step_unavailable(model, loader, device, dist.distributed, capture=graph_capture)
            if reason is None:
                self.graph = GraphStep(model, self.optimizer, cfg, device, capture=graph_capture)
            else:
                self._fall_back(reason)

    def _fall_back(self, reason: str) -> None:
        """Train with the eager step from here on (one warning), or raise if ``train.step_fallback`` is false."""
        if not self.cfg.step_fallback:
            raise ConfigError(f"train.step 'graph' cannot run here: {reason}; pass --train.step eager "
                              "(or --train.step_fallback true to fall back with a warning)")  # fmt: skip
        warnings.warn(f"train.step 'graph' falls back to the eager step: {reason}", RuntimeWarning, stacklevel=3)
        if self.graph is not None and self.cfg.unsampled_update == "decay":  # hand the touched ops on
            touched = set(self.graph.touched_names())
            for name, p in self.model.named_parameters():
                if name in touched and p.grad is None:
                    p.grad = torch.zeros_like(p)
        self.graph = None

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
            "epoch_sums": self._epoch_sums(),  # loss / correct / seen so far in an unfinished epoch
            "unsampled_update": self.cfg.unsampled_update,
            "touched": self.graph.touched_names() if self.graph is not None else
                       [n for n, p in self.model.named_parameters() if p.grad is not None],  # fmt: skip
            **self.extra_state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = state.get("unsampled_update", "freeze")  # checkpoints older than the option ran `freeze`
        if saved != self.cfg.unsampled_update:
            raise ConfigError(
                f"the checkpoint was trained with train.unsampled_update {saved!r}, this config says "
                f"{self.cfg.unsampled_update!r}; a resume keeps the dynamics: pass --train.unsampled_update {saved}"
            )
        self.model.load_state_dict(state["model"])
        touched = set(state.get("touched", ()))
        if self.graph is not None:
            self.graph.load_touched(touched if saved == "decay" else ())
        else:
            for name, p in self.model.named_parameters():  # zero-filled gradients carry decay and momentum on
                p.grad = torch.zeros_like(p) if name in touched and saved == "decay" else None
        self.optimizer.load_state_dict(state["optimizer"])
        if self.graph is not None:
            self.graph.bind_optimizer()
        self.sampler.load_state_dict(state["sampler"])
        self.epoch, self.step, self.global_step = state["epoch"], state["step"], state["global_step"]
        self.history = list(state.get("history", []))
        sums = state.get("epoch_sums", {"loss": 0.0, "correct": 0.0, "seen": 0.0})
        self._sums = {k: float(sums[k]) for k in ("loss", "correct", "seen")}
        if not self.dist.is_main:  # rank 0 carries the (all-rank) sums of the unfinished epoch
            self._sums = {k: 0.0 for k in self._sums}
        self._live = None

    def _epoch_sums(self, over_ranks: bool = False) -> dict[str, float]:
        """Loss / correct / images of the unfinished epoch so far (``over_ranks``: summed over the ranks, a collective)."""
        if self._live is None:
            values = [self._sums["loss"], self._sums["correct"], self._sums["seen"]]
        else:
            values = [self._live[0].item(), float(self._live[1].item()), self._live_seen]
        if over_ranks and self.dist.distributed:
            t = torch.tensor(values, dtype=torch.float64, device=self.device)
            torch.distributed.all_reduce(t)
            values = t.tolist()
        return dict(zip(("loss", "correct", "seen"), values))

    def _hold(self, over_ranks: bool) -> None:
        """Stop the running sums here (fit returns): the sums so far become the base of the next fit."""
        sums = self._epoch_sums(over_ranks)
        self._sums = sums if self.dist.is_main or not over_ranks else {k: 0.0 for k in sums}
        self._live = None

    def _save(self, which: str, over_ranks: bool = False) -> None:
        """Write checkpoint ``which`` (rank 0); ``over_ranks``: every rank calls it, the epoch's sums are global."""
        sums = self._epoch_sums(over_ranks) if over_ranks else None
        if self.run is not None and self.dist.is_main:
            state = self.state_dict()
            if sums is not None:
                state["epoch_sums"] = sums
            self.run.save(which, state)
        if which in ("init", "last"):
            self.last_saved = which

    # ---- one step --------------------------------------------------------------------
    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One SGD step on one sampled path; returns (summed loss, correct count) as tensors."""
        path = self.sampler.sample()
        lr = lr_at(self.global_step, self.total_steps, len(self.loader), self.cfg)
        if self.graph is not None and not self.graph.on_device(x):
            self._fall_back(f"the training batches are on {str(x.device)!r}, not on the model's device {str(self.device)!r}")
        if self.graph is not None:
            return self.graph.step(x, y, path, lr)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=self.cfg.unsampled_update == "freeze")
        with self.autocast:
            logits = self.net(x, path)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=self.cfg.label_smoothing)
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

        Raises:
            TrainingDivergedError: The loss became NaN or infinite; ``last`` stays the last good checkpoint.
        """
        if self.global_step == 0 and self.step == 0 and self.epoch == 0:
            self._save("init")  # the weights at step 0: the angle scorer needs them
        self.model.train()
        steps_done, seen = 0, 0
        n = len(self.loader)
        bar = Progress("train", self.cfg.epochs * n, {"epoch": "{}", "loss": "{:.4f}", "img/s": "{:.0f}"},
                       enabled=self.progress and self.dist.is_main, completed=self.global_step)  # fmt: skip
        try:
            with bar:
                while self.epoch < self.cfg.epochs:
                    # the running sums start from those of the epoch's part before a resume: the same float32
                    # additions in the same order as an uninterrupted epoch, so its metrics row is the same too
                    loss_sum = torch.full((), self._sums["loss"], device=self.device)
                    correct = torch.full((), int(self._sums["correct"]), dtype=torch.long, device=self.device)
                    bad_step = torch.full((), -1, dtype=torch.long, device=self.device)  # first non-finite step
                    seen, t0 = 0, time.perf_counter()
                    self._live, self._live_seen = (loss_sum, correct), self._sums["seen"]
                    batches = TimedBatches(self.loader.iter_from(self.epoch, self.step))
                    for x, y in batches:
                        loss, corr = self.train_step(x, y)
                        loss_sum += loss
                        correct += corr
                        bad_step.masked_fill_((bad_step < 0) & ~torch.isfinite(loss), self.step)
                        seen += y.numel()
                        self._live_seen += y.numel()
                        self.step += 1
                        self.global_step += 1
                        steps_done += 1
                        if self.step % CHECK_EVERY == 0:
                            self._check_finite(bad_step)  # one host sync per CHECK_EVERY steps
                        if bar.interactive and (self.step % 10 == 0 or self.step == n):
                            ips = seen * self.dist.world_size / (time.perf_counter() - t0)
                            bar.update(self.global_step, epoch=f"{self.epoch + 1}/{self.cfg.epochs}",
                                       loss=loss.item() / y.numel(), **{"img/s": ips})  # fmt: skip
                        if on_step is not None:
                            on_step(self.global_step)
                        if max_steps is not None and steps_done >= max_steps:
                            self._check_finite(bad_step)
                            self._save("last", over_ranks=True)
                            self._hold(over_ranks=True)
                            return self.history
                        if self.checkpoint_steps and self.global_step % self.checkpoint_steps == 0 and self.step < n:
                            self._check_finite(bad_step)  # a checkpoint is only ever written of a finite run
                            self._save("last", over_ranks=True)
                    self._check_finite(bad_step)
                    row = self._end_epoch(loss_sum, correct, seen, time.perf_counter() - t0, batches.waited)
                    bar.line(_epoch_line(row, self.cfg.epochs), self.global_step)
        except KeyboardInterrupt:
            # not inside the epoch-end bookkeeping (history and epoch disagree there): the last checkpoint stays then
            if self._live is not None and len(self.history) == self.epoch and \
                    all(torch.isfinite(p).all() for p in self.model.parameters()):  # fmt: skip
                self._save("last")
                self._hold(over_ranks=False)
            raise
        return self.history

    def _check_finite(self, bad_step: torch.Tensor) -> None:
        step = int(bad_step.item())
        if step >= 0:
            raise TrainingDivergedError(
                f"training diverged: the loss became NaN or infinite in epoch {self.epoch + 1}, step {step + 1}; "
                f"the last good checkpoint (checkpoints/{self.last_saved}.pt) is kept; try a lower --train.lr (now {self.cfg.lr:g}) "
                f"or gradient clipping (--train.grad_clip 5)"
            )

    @torch.no_grad()
    def heldout_accuracy(self) -> float | None:
        """Mean top-1 of the fixed held-out paths on the held-out batches (None without held-out data).

        With ``heldout_bn`` batches each path's BN statistics are first re-estimated on them (reset,
        cumulative average, train-mode forwards of that path), as the ``accuracy`` scorer does; every
        BN buffer, momentum and module mode is put back afterwards, and nothing draws random numbers,
        so the training run continues exactly as without this column.
        """
        if not self.heldout:
            return None
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        seen = 0
        with self.autocast, kept_bn_state(self.model):
            for path in self.heldout_paths:
                if self.heldout_bn:
                    recalibrate_bn(self.model, self.heldout_bn, forward=lambda x, p=path: self.model(x, p))
                self.model.eval()
                for x, y in self.heldout:
                    correct += (self.model(x, path).argmax(1) == y).sum()
                    seen += y.numel()
        return correct.item() / max(seen, 1)

    def _end_epoch(self, loss_sum: torch.Tensor, correct: torch.Tensor, seen: int, seconds: float,
                   waited: float = 0.0) -> dict[str, Any]:  # fmt: skip
        stats = torch.stack([loss_sum.float(), correct.float(), torch.tensor(float(self._live_seen), device=self.device)])
        if self.dist.distributed:
            torch.distributed.all_reduce(stats)
            for buf in self.model.buffers():  # DDP syncs BN statistics at each forward; end the epoch in sync
                torch.distributed.broadcast(buf, 0)
        n = max(stats[2].item(), 1.0)
        row = {
            "epoch": self.epoch + 1,
            "train_loss": round(stats[0].item() / n, 6),
            "train_acc": round(stats[1].item() / n, 6),
            "lr": round(lr_at(self.global_step, self.total_steps, len(self.loader), self.cfg), 8),
            "images_per_s": round(seen * self.dist.world_size / max(seconds, 1e-9), 1),
            "seconds": round(seconds, 2),
            "data_wait": round(waited / max(seconds, 1e-9), 4),  # share of the epoch spent waiting for batches
        }
        acc = self.heldout_accuracy()
        if acc is not None:
            row = {**dict(list(row.items())[:3]), "heldout_acc": round(acc, 6), **dict(list(row.items())[3:])}
        self._sums, self._live, self._live_seen = {"loss": 0.0, "correct": 0.0, "seen": 0.0}, None, 0.0
        self.history.append(row)
        self.epoch += 1
        self.step = 0
        # checkpoints first, the metrics after: a kill in between leaves metrics.csv a row short of
        # last.pt, which the resume rewrites from the checkpoint's history; never a row ahead of it
        if self.checkpoint_every and self.epoch % self.checkpoint_every == 0:
            self._save(f"epoch_{self.epoch:04d}")
        self._save("last")
        if self.run is not None and self.dist.is_main:
            self.run.write_metrics(self.history)
        if self.tb is not None:
            for key, value in row.items():
                if key != "epoch":
                    self.tb.add_scalar(f"train/{key}", value, row["epoch"])
            self.tb.flush()
        return row


def _epoch_line(row: dict[str, Any], epochs: int) -> str:
    held = f"  held-out acc {row['heldout_acc']:.4f}" if "heldout_acc" in row else ""
    return (f"epoch {row['epoch']}/{epochs}  loss {row['train_loss']:.4f}  acc {row['train_acc']:.4f}{held}  "
            f"{row['images_per_s']:.0f} img/s")  # fmt: skip
