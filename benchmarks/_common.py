"""Shared bits of the benchmark scripts: side-by-side timing and result files."""

from __future__ import annotations

import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def interleaved(runners: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Call each runner once per round, alternating, so every contender sees the same machine state."""
    out: dict[str, list[float]] = {k: [] for k in runners}
    for r in range(rounds):
        order = list(runners) if r % 2 == 0 else list(reversed(runners))
        for name in order:
            out[name].append(runners[name]())
    return out


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    """Seconds for one call of ``fn`` (synchronising CUDA around it)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def machine(device: torch.device) -> dict[str, Any]:
    return {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def write_result(path: str | None, result: dict[str, Any]) -> None:
    if path:
        from genas.io import atomic_write_json

        atomic_write_json(path, result)
        print(f"wrote {path}")


def print_json(result: dict[str, Any]) -> None:
    print(json.dumps(result, indent=2))
