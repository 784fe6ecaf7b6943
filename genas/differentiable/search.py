"""The differentiable search loop: weights on the train half, alphas on the valid half (SPEC section 5).

Each step takes one training batch and one validation batch.  The architecture step asks the
architect for the gradient of the validation loss (variants' terms included) and applies Adam to
the alphas; the weight step runs SGD on the training batch with the current alphas (detached).
The order is ``differentiable.order`` (``arch_first``: DARTS / A2M code).  BN running statistics
are updated by the weight step only: the architecture passes use batch statistics without
recording them, so every architect sees the same network state.

After each epoch: the validation loss / accuracy of the mixed-op supernet (eval mode, the whole
valid half, not augmented), the derived genotype, its skip count, the mean softmax weight per op
and (NB201, with a table) the benchmark accuracy of the derived cell; a checkpoint, then
``metrics.csv`` and the alpha plot, all written atomically.  With ``checkpoint_steps`` N the
checkpoint is also written every N steps inside an epoch.  Resume continues at the checkpoint's
step: the data order of every epoch is a pure function of (seed, epoch) and the validation stream
of the global step, so the alphas and the genotype equal those of an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genas.distributed import DistInfo, all_reduce_mean, convert_sync_batchnorm
from genas.errors import CheckpointError, ConfigError
from genas.io import atomic_torch_save, read_torch_file
from genas.runs import Run
from genas.schedule import cosine_lr, sgd
from genas.differentiable.architects import Architect, ArchStep
from genas.differentiable.config import DifferentiableConfig
from genas.differentiable.mixed import MixedOpSupernet
from genas.differentiable.records import EpochPrinter, benchmark_columns, plot_alphas
from genas.differentiable.variants import LossFn, VariantSet

__all__ = ["DifferentiableSearch", "batch_stats_only", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "genas.differentiable/1"
Batch = tuple[torch.Tensor, torch.Tensor]


@contextlib.contextmanager
def batch_stats_only(model: nn.Module) -> Iterator[None]:
    """BN layers in training mode normalise with batch statistics but do not update their running ones."""
    bns = [m for m in model.modules()
           if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training and m.track_running_stats]  # fmt: skip
    for m in bns:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in bns:
            m.track_running_stats = True


class DifferentiableSearch:
    """Runs a differentiable search to the end, with per-epoch records and exact resume.

    Args:
        model: The mixed-op supernet (on its device); the variants change it here, before the optimizers exist.
        architect: Computes the architecture gradient.
        train_loader: The train half (weights), a ``TensorLoader``.
        valid_loader: The valid half as the architecture step sees it (shuffled, maybe augmented).
        eval_loader: The valid half in order, not augmented (the per-epoch validation loss).
        cfg: The ``differentiable`` section.
        variants: DARTS variants (empty: plain DARTS).
        table: An NB201 table for the benchmark accuracy of each derived cell (NB201 only).
        out: The run directory (checkpoints, ``metrics.csv``, the plot); None writes nothing.
        seed: Seeds the variants' generator.
        printer: Where per-epoch lines and the progress bar go.
        extra_state: Saved with every checkpoint as is (e.g. the resolved config).
        dist: This process's rank under ``torchrun``: the loaders are sharded, every weight and
            architecture gradient is averaged over the ranks and BN normalises over the global
            batch (``genas.distributed.SyncBatchNorm``), so every rank holds the same alphas and
            weights as one process with the whole batch; only rank 0 writes.
        checkpoint_steps: Also write the checkpoint every this many search steps inside an epoch
            (0: at epoch ends only).
    """

    def __init__(
        self,
        model: MixedOpSupernet,
        architect: Architect,
        train_loader: Any,
        valid_loader: Any,
        eval_loader: Any,
        cfg: DifferentiableConfig,
        *,
        variants: VariantSet | None = None,
        table: Any = None,
        out: Path | None = None,
        seed: int = 0,
        printer: EpochPrinter | None = None,
        extra_state: dict[str, Any] | None = None,
        dist: DistInfo | None = None,
        checkpoint_steps: int = 0,
    ) -> None:
        if len(train_loader) == 0 or len(valid_loader) == 0:
            raise ConfigError("the train and valid halves must each hold at least one batch; lower data.batch_size")
        self.model, self.architect, self.cfg = model, architect, cfg
        self.train_loader, self.valid_loader, self.eval_loader = train_loader, valid_loader, eval_loader
        self.variants = variants or VariantSet()
        self.table, self.out, self.printer = table, out, printer or EpochPrinter(enabled=False)
        self.extra_state = extra_state or {}
        self.generator = torch.Generator().manual_seed(seed)
        self.variants.check_architect(architect.name)
        with torch.random.fork_rng(devices=[]):  # modules a variant builds are seeded, the caller's RNG untouched
            torch.manual_seed(seed)
            self.variants.setup(model, self.generator)
        self.dist = dist or DistInfo()
        if self.dist.distributed:
            convert_sync_batchnorm(model)
            if not self.dist.is_main:
                self.out, self.printer = None, EpochPrinter(enabled=False)
        self.w_opt = sgd(model.weight_parameters(), cfg)
        self.a_opt = torch.optim.Adam(model.arch_parameters(), lr=cfg.arch_lr, betas=tuple(cfg.arch_betas),
                                      weight_decay=cfg.arch_weight_decay)  # fmt: skip
        self.checkpoint_steps = checkpoint_steps
        self.epoch = 0
        self.step = 0  # steps done in the unfinished epoch
        self._sums = _zero_sums()  # its summed training loss, correct count and images so far
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None  # the epoch with the lowest validation loss
        self.stopped = False

    # ---- state ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT, "hparams": dict(self.model.hparams),
            "architect": self.architect.name, "architect_options": self.architect.options(),
            "variants": self.variants.state_dict(), "model": self.model.state_dict(),
            "weight_optimizer": self.w_opt.state_dict(), "arch_optimizer": self.a_opt.state_dict(),
            "generator": self.generator.get_state(), "epoch": self.epoch, "step": self.step,
            "epoch_sums": dict(self._sums), "history": list(self.history), "best": self.best, "stopped": self.stopped,
            **self.extra_state,
        }  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("architect") != self.architect.name or state.get("architect_options") != self.architect.options():
            raise ConfigError(
                f"this run was searched with architect {state.get('architect')!r} {state.get('architect_options')}; "
                f"a resume must use the same (here: {self.architect.name!r} {self.architect.options()}): "
                f"pass --architect {state.get('architect')} or start a new run with --run.name NAME"
            )
        if state.get("hparams") != self.model.hparams:
            raise CheckpointError(f"the checkpoint's supernet {state.get('hparams')} differs from this config's "
                                  f"{self.model.hparams}")  # fmt: skip
        best, sums = state.get("best"), state.get("epoch_sums", _zero_sums())
        if not (best is None or (isinstance(best, dict) and type(best.get("epoch")) is int
                                 and isinstance(best.get("valid_loss"), float) and isinstance(best.get("arch"), str))):
            raise CheckpointError(f"the checkpoint's best epoch {best!r} is damaged")
        if not isinstance(state.get("stopped"), bool) or not isinstance(sums, dict) or \
                not all(isinstance(sums.get(k), (int, float)) for k in ("loss", "correct", "seen")):  # fmt: skip
            raise CheckpointError("the checkpoint's early-stop flag or epoch sums are damaged")
        self.variants.load_state_dict(state.get("variants", {}))
        self.model.load_state_dict(state["model"])
        self.w_opt.load_state_dict(state["weight_optimizer"])
        self.a_opt.load_state_dict(state["arch_optimizer"])
        self.generator.set_state(state["generator"])
        self.epoch, self.step, self.history = state["epoch"], state.get("step", 0), list(state["history"])
        self._sums = {k: sums[k] for k in ("loss", "correct", "seen")}
        if not self.dist.is_main:  # rank 0 carries the (all-rank) sums of the unfinished epoch
            self._sums = _zero_sums()
        self.best, self.stopped = best, state["stopped"]

    def save(self, sums: dict[str, float] | None = None) -> None:
        """Write ``checkpoints/last.pt`` (rank 0); ``sums`` replaces the unfinished epoch's sums (the all-rank ones)."""
        if self.out is not None:
            state = self.state_dict()
            if sums is not None:
                state["epoch_sums"] = sums
            atomic_torch_save(state, self.out / "checkpoints" / "last.pt")

    @staticmethod
    def read_checkpoint(path: Path, map_location: Any = "cpu") -> dict[str, Any]:
        """A checkpoint written by :meth:`save`, or :class:`CheckpointError`."""
        state = read_torch_file(path, "checkpoint", (CHECKPOINT_FORMAT,), map_location)
        if state.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"{path} is not a differentiable-search checkpoint "
                                  f"(expected format {CHECKPOINT_FORMAT!r})")  # fmt: skip
        return state

    # ---- one step ------------------------------------------------------------------------
    def _loss_fn(self, batch: Batch, with_variants: bool) -> LossFn:
        x, y = batch
        model = self.model

        def loss(arch: Any) -> torch.Tensor:
            with batch_stats_only(model):
                return F.cross_entropy(model(x, arch), y)

        return self.variants.val_loss(loss) if with_variants else loss

    def arch_step(self, train_batch: Batch, valid_batch: Batch) -> None:
        """One architecture update: the architect's gradient, then Adam on the alphas."""
        step = ArchStep(
            val_loss=self._loss_fn(valid_batch, with_variants=True), arch=self.model.arch_values(),
            train_loss=self._loss_fn(train_batch, with_variants=False) if self.architect.needs_train_batch else None,
            weights=self.model.weight_parameters(), optimizer=self.w_opt,
            reduce=all_reduce_mean if self.dist.distributed else None,
        )  # fmt: skip
        grads = self.architect.gradient(step)
        for name, p in self.model.arch.items():
            p.grad = grads[name].detach()
        self.a_opt.step()
        self.a_opt.zero_grad(set_to_none=True)

    def weight_step(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """One SGD step on the weights with the current (detached) alphas; returns (summed loss, correct)."""
        x, y = batch
        weights = self.variants.weight_step_weights(self.model.mixing_weights(self.model.arch_values()), self.generator)
        logits = self.model.forward_weights(x, weights)
        loss = F.cross_entropy(logits, y)
        self.w_opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.dist.distributed:  # the mean over ranks, as the gradient of the global batch
            params = [p for p in self.model.weight_parameters() if p.grad is not None]
            for p, g in zip(params, all_reduce_mean([p.grad for p in params])):
                p.grad.copy_(g)
        if self.cfg.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.model.weight_parameters(), self.cfg.grad_clip)
        self.w_opt.step()
        with torch.no_grad():
            return loss.detach() * y.numel(), (logits.argmax(1) == y).sum()

    def search_step(self, train_batch: Batch, valid_batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """The two updates of one step, in ``cfg.order`` (the weight step only in a variant's warm-up)."""
        if not self.variants.arch_step_enabled():
            return self.weight_step(train_batch)
        if self.cfg.order == "arch_first":
            self.arch_step(train_batch, valid_batch)
            return self.weight_step(train_batch)
        out = self.weight_step(train_batch)
        self.arch_step(train_batch, valid_batch)
        return out

    # ---- the loop ------------------------------------------------------------------------
    def _valid_stream(self, epoch: int, step: int = 0) -> Iterator[Batch]:
        """The validation batches of ``epoch`` from ``step`` on: one per step, cycling the valid half's (seeded) epochs."""
        per_epoch, n = len(self.train_loader), len(self.valid_loader)
        cycle, start = divmod(epoch * per_epoch + step, n)
        while True:
            yield from self.valid_loader.iter_from(cycle, start)
            cycle, start = cycle + 1, 0

    def done(self) -> bool:
        return self.stopped or self.epoch >= self.cfg.epochs

    def fit(self, max_epochs: int | None = None) -> list[dict[str, Any]]:
        """Search until ``cfg.epochs``, early stopping, or ``max_epochs`` more epochs; return the metrics rows."""
        ran = 0
        self.model.train()
        n = len(self.train_loader)
        with self.printer.bar(self.cfg.epochs, n) as bar:
            while not self.done() and (max_epochs is None or ran < max_epochs):
                lr = cosine_lr(self.epoch, self.cfg.epochs, self.cfg.lr, self.cfg.lr_min)
                for group in self.w_opt.param_groups:
                    group["lr"] = lr
                self.variants.start_epoch(self.epoch, self.cfg.epochs)
                t0 = time.perf_counter()
                valid = self._valid_stream(self.epoch, self.step)
                bar.start_epoch(self.epoch)
                for train_batch in self.train_loader.iter_from(self.epoch, self.step):
                    loss, corr = self.search_step(train_batch, next(valid))
                    sums = self._sums  # continued in the same order after a resume: the same float sums
                    self._sums = {"loss": sums["loss"] + loss.item(), "correct": sums["correct"] + int(corr),
                                  "seen": sums["seen"] + len(train_batch[1])}  # fmt: skip
                    self.step += 1
                    bar.update(self.step, self._sums["loss"] / self._sums["seen"])
                    if self.checkpoint_steps and (self.epoch * n + self.step) % self.checkpoint_steps == 0 and self.step < n:
                        self.save(dict(zip(("loss", "correct", "seen"), self._sum_over_ranks(*self._sums.values()))))
                loss_sum, correct, seen = self._sum_over_ranks(self._sums["loss"], self._sums["correct"], self._sums["seen"])
                self._end_epoch(lr, loss_sum / seen, correct / seen, time.perf_counter() - t0)
                ran += 1
        return self.history

    @torch.no_grad()
    def evaluate(self) -> tuple[float, float]:
        """Mean loss and accuracy of the mixed-op supernet on the valid half (eval mode)."""
        self.model.eval()
        loss, correct, seen = 0.0, 0, 0
        try:
            for i, (x, y) in enumerate(self.eval_loader):
                if self.cfg.eval_batches is not None and i >= self.cfg.eval_batches:
                    break
                logits = self.model(x)
                loss += F.cross_entropy(logits, y, reduction="sum").item()
                correct += int((logits.argmax(1) == y).sum())
                seen += len(y)
        finally:
            self.model.train()
        loss, correct, seen = self._sum_over_ranks(loss, correct, seen)
        return loss / max(seen, 1), correct / max(seen, 1)

    def _sum_over_ranks(self, *values: float) -> list[float]:
        """Sums over the ranks (the values themselves in one process): every rank sees the same records."""
        if not self.dist.distributed:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.model.arch_parameters()[0].device)
        torch.distributed.all_reduce(t)
        return t.tolist()

    def derived(self) -> Any:
        """The discrete architecture of the current alphas."""
        with torch.no_grad():
            return self.model.derive(self.variants.op_strengths(self.model.mixing_weights()))

    def _end_epoch(self, lr: float, train_loss: float, train_acc: float, seconds: float) -> None:
        valid_loss, valid_acc = self.evaluate()
        arch = self.derived()
        self.epoch += 1
        self.step, self._sums = 0, _zero_sums()
        row: dict[str, Any] = {
            "epoch": self.epoch, "lr": round(lr, 8), "train_loss": round(train_loss, 6), "train_acc": round(train_acc, 6),
            "valid_loss": round(valid_loss, 6), "valid_acc": round(valid_acc, 6),
            **self.model.skip_counts(arch), **benchmark_columns(self.table, arch),
            **self.model.op_weight_means(self.model.mixing_weights()), "arch": str(arch), "seconds": round(seconds, 2),
        }  # fmt: skip
        self.history.append(row)
        if self.best is None or (math.isfinite(valid_loss) and valid_loss < self.best["valid_loss"]):
            self.best = {"epoch": self.epoch, "valid_loss": valid_loss, "arch": str(arch)}
        if self.cfg.patience is not None and self.epoch - self.best["epoch"] > self.cfg.patience:
            self.stopped = True
        self.printer.epoch_line(row, self.cfg.epochs, stopped=self.stopped)
        if self.out is not None:
            self.save()
            Run(self.out).write_metrics(self.history)
            marked = self.best["epoch"] if self.cfg.select == "best_valid" else None
            plot_alphas(self.history, self.out / "alphas.png", marked)

    def selected(self) -> dict[str, Any]:
        """The metrics row of the reported epoch: lowest validation loss, or the last (``cfg.select``)."""
        if not self.history:
            raise ConfigError("nothing searched yet")
        if self.cfg.select == "last" or self.best is None:
            return self.history[-1]
        return self.history[self.best["epoch"] - 1]


def _zero_sums() -> dict[str, float]:
    return {"loss": 0.0, "correct": 0, "seen": 0}
