"""Thin helpers over ``torch.distributed`` for runs started with ``torchrun``.

genas uses PyTorch's own stack: ``torchrun`` sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``,
:func:`init_distributed` picks ``nccl`` on CUDA and ``gloo`` on CPU, training wraps the
supernet in ``DistributedDataParallel``, and search shards candidates across ranks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

__all__ = [
    "DistInfo", "init_distributed", "dist_info", "is_main", "barrier", "broadcast_object", "all_gather_objects",
    "resolve_device", "local_rank", "set_threads", "free_cores", "ElasticRestarts", "elastic_restarts",
    "check_same_on_all_ranks",
]  # fmt: skip

def local_rank() -> int:
    """This process's ``LOCAL_RANK`` (set by torchrun; 0 otherwise) — the one place it is read."""
    return int(os.environ.get("LOCAL_RANK", "0"))


@dataclass(frozen=True)
class ElasticRestarts:
    """How ``torchrun`` may restart this worker group: ``--max-restarts`` and how many restarts came before."""

    count: int = 0  # restarts of the worker group so far (0: the first start)
    max: int = 0  # torchrun --max-restarts (0: a failed worker ends the job)
    agent_store: bool = False  # the workers' store is the elastic agent's, one for every start of the group

    @property
    def enabled(self) -> bool:
        """True when a failed worker group is started again, so a start must continue what the last one left."""
        return self.max > 0 or self.count > 0


def elastic_restarts() -> ElasticRestarts:
    """torchrun's ``TORCHELASTIC_RESTART_COUNT`` / ``TORCHELASTIC_MAX_RESTARTS`` (and
    ``TORCHELASTIC_USE_AGENT_STORE``) — the one place they are read.

    Outside torchrun (or with values that are not numbers) both counts are 0.
    """
    def read(name: str) -> int:
        try:
            return max(0, int(os.environ.get(name, "0")))
        except ValueError:
            return 0

    return ElasticRestarts(read("TORCHELASTIC_RESTART_COUNT"), read("TORCHELASTIC_MAX_RESTARTS"),
                           os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True")  # fmt: skip


def free_cores() -> int:
    """The CPU cores this process may use that no other process is busy on: the cores it may run on
    (its affinity, shared among the ``LOCAL_WORLD_SIZE`` processes of a torchrun job) less the
    one-minute load average, at least 1."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    share = max(1, cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))
    try:
        busy = os.getloadavg()[0]
    except OSError:  # not available on this platform
        busy = 0.0
    return max(1, min(share, int(cores - busy + 0.5)))


def set_threads(threads: int | None) -> int:
    """Set torch's intra-op threads to ``threads`` and return the number in use.

    ``None`` (``run.threads`` unset) leaves ``$OMP_NUM_THREADS`` in charge when it is set (torchrun
    sets it to 1), and otherwise uses :func:`free_cores`: two threads spinning against another
    process on a 2-core machine ran 3.6x slower than one (``benchmarks/threads.py``), while on an
    idle machine every core helps.
    """
    if threads is None and not os.environ.get("OMP_NUM_THREADS"):
        threads = free_cores()
    if threads is not None:
        torch.set_num_threads(int(threads))
    return torch.get_num_threads()


@dataclass(frozen=True)
class DistInfo:
    """Rank, world size and local rank of this process (0, 1, 0 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(device: str, rank: int | None = None) -> torch.device:
    """``auto`` -> ``cuda:<LOCAL_RANK>`` when CUDA is available, else ``cpu``; ``cuda`` -> this rank's GPU."""
    from genas.errors import ConfigError

    local = local_rank() if rank is None else rank
    if device == "auto":
        return torch.device(f"cuda:{local}") if torch.cuda.is_available() else torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"run.device {device!r} is not a device; use auto, cpu, cuda or cuda:N") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"run.device is {device!r} but no CUDA device is available; use --run.device cpu or auto")
        if dev.index is None:
            dev = torch.device(f"cuda:{local}")
        if dev.index >= torch.cuda.device_count():
            raise ConfigError(f"run.device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return dev


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group when started by ``torchrun`` (env vars present); otherwise a no-op.

    Under ``torchrun --max-restarts`` every start of the worker group meets in the elastic agent's
    one store (same ``MASTER_PORT``), where the ranks of an earlier start left their addresses under
    the same keys: a restarted rank could read a dead peer's address and the group fail to connect
    (measured with gloo and torch 2.14: the restart failed in 1 of 4 trials, then every retry).  The
    group is therefore joined through a store prefixed by the restart count, fresh for each start.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        restarts = elastic_restarts()
        if restarts.agent_store:
            from torch.distributed.constants import default_pg_timeout

            agent = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world, is_master=False,
                                  timeout=default_pg_timeout)  # fmt: skip
            store = dist.PrefixStore(f"genas/start_{restarts.count}", agent)
            dist.init_process_group(backend=backend, store=store, rank=int(os.environ["RANK"]), world_size=world)
        else:
            dist.init_process_group(backend=backend)
    return dist_info()


def dist_info() -> DistInfo:
    """The current process's :class:`DistInfo`."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank())
    return DistInfo()


def is_main() -> bool:
    return dist_info().is_main


def barrier() -> None:
    if dist_info().distributed:
        dist.barrier()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Send ``obj`` from rank ``src`` to every rank (identity when not distributed)."""
    if not dist_info().distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (``[obj]`` when not distributed)."""
    info = dist_info()
    if not info.distributed:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def _flat(record: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(record, dict):
        out: dict[str, Any] = {}
        for k, v in record.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: record}


def check_same_on_all_ranks(record: dict[str, Any], what: str = "config") -> None:
    """Refuse, on every rank at once, ranks started with different values of a nested ``record``.

    Ranks launched with different command lines or files (one node's copy of a YAML edited) would
    train different things while averaging gradients; this gathers every rank's record and raises
    :class:`~genas.errors.ConfigError` on all of them naming the first key that differs.
    """
    from genas.errors import ConfigError

    records = all_gather_objects(_flat(record))
    base = records[0]
    for rank, other in enumerate(records[1:], start=1):
        for key in sorted(set(base) | set(other)):
            if base.get(key) != other.get(key):
                raise ConfigError(f"rank {rank} was started with {what} key {key} = {other.get(key)!r}, rank 0 with "
                                  f"{base.get(key)!r}; every rank must run the same {what} (the same command line "
                                  "and files on every node)")  # fmt: skip


def all_reduce_mean(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """The mean of each tensor over the ranks, in one collective (the tensors themselves when not distributed)."""
    world = dist_info().world_size
    if world <= 1 or not tensors:
        return tensors
    flat = torch.cat([t.detach().reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    flat /= world
    out, i = [], 0
    for t in tensors:
        out.append(flat[i:i + t.numel()].view_as(t))
        i += t.numel()
    return out


class SyncBatchNorm(torch.nn.modules.batchnorm._BatchNorm):
    """Batch normalisation over the global batch of every rank, on any device (gloo included).

    ``torch.nn.SyncBatchNorm`` runs on GPUs only; this one all-reduces the per-channel sums with
    ``torch.distributed.nn.functional.all_reduce``, which is differentiable, so the gradient of
    every rank's loss reaches every rank's inputs as in one process with the whole batch.  Running
    statistics (updated only in training mode with ``track_running_stats``) use the global
    unbiased variance, as ``BatchNorm2d`` on the whole batch does.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        use_batch = self.training or self.running_mean is None
        if not use_batch or not dist_info().distributed:
            return super().forward(input)
        from torch.distributed.nn.functional import all_reduce

        dims = [0, *range(2, input.dim())]
        count = torch.tensor([input.numel() / input.shape[1]], dtype=input.dtype, device=input.device)
        packed = all_reduce(torch.cat([input.sum(dims), (input * input).sum(dims), count]))
        c = input.shape[1]
        n = packed[-1]
        mean, sq = packed[:c] / n, packed[c:2 * c] / n
        var = sq - mean * mean
        shape = [1, c] + [1] * (input.dim() - 2)
        out = (input - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        if self.training and self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(m * mean.detach())
                self.running_var.mul_(1 - m).add_(m * var.detach() * n / (n - 1))
        return out


def convert_sync_batchnorm(module: torch.nn.Module) -> torch.nn.Module:
    """Every ``_BatchNorm`` of ``module`` as a :class:`SyncBatchNorm` (torch's own on CUDA), state kept."""
    first = next(iter(module.parameters()), None)
    if first is not None and first.device.type == "cuda":
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        if isinstance(child, torch.nn.modules.batchnorm._BatchNorm) and not isinstance(child, SyncBatchNorm):
            new = SyncBatchNorm(child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats,
                                device=child.running_mean.device if child.running_mean is not None else None)  # fmt: skip
            new.load_state_dict(child.state_dict())
            new.train(child.training)
            setattr(module, name, new)
        else:
            convert_sync_batchnorm(child)
    return module
