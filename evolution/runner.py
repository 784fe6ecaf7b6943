"""Drive a search algorithm: ask -> score (sharded over ranks) -> tell, with files and exact resume.

An output directory holds::

    history.jsonl       one line per scored candidate, appended (flush + fsync) as scores arrive
    search_state.json   the algorithm's state after the last complete generation (atomic)
    best_arch.json      the best architecture, its score, the settings and the caller's metadata
    search_curve.png    best-so-far and mean score per generation (when matplotlib is installed)

Resuming reloads ``search_state.json`` and re-asks the interrupted generation (the generator
state makes it identical); candidates whose line already reached ``history.jsonl`` take their
score from there.  So no architecture is scored twice and the result equals an uninterrupted run.

Under ``torchrun`` every rank runs the same algorithm (same seed, same asks), scores its shard
``chunk[rank::world]`` and the scores are gathered in order; only rank 0 writes files.

Example:
    >>> from genas.spaces import create_space
    >>> from evolution import create_algorithm
    >>> algo = create_algorithm("evolution", create_space("nb201"), seed=0, iterations=3)
    >>> result = run_search(algo, lambda archs: [a.genes.count(3) for a in archs], None, progress=False)
    >>> result.num_scored
    150
"""

from __future__ import annotations

import json
import logging
import math
import os
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from genas.distributed import DistInfo, all_gather_objects, barrier, broadcast_object, dist_info
from genas.errors import CheckpointError, ConfigError, GenasError, NotTrainedError
from genas.io import atomic_write_json, atomic_write_text, check_writable_dir, to_jsonable
from genas.validation import check_int

from evolution.base import Individual, SearchAlgorithm

__all__ = ["run_search", "SearchResult", "read_history", "check_out_dir", "HISTORY_FILE", "STATE_FILE", "BEST_FILE", "CURVE_FILE"]

log = logging.getLogger(__name__)

HISTORY_FILE, STATE_FILE = "history.jsonl", "search_state.json"
BEST_FILE, CURVE_FILE = "best_arch.json", "search_curve.png"
RUN_FORMAT = "genas.search-run/1"
Fitness = Callable[[list[Any]], Sequence[float] | np.ndarray]


@dataclass
class SearchResult:
    """What :func:`run_search` returns."""

    best: Individual | None
    history: list[Individual]
    num_scored: int
    out_dir: Path | None
    algorithm: str = ""
    scored_now: int = 0  # fitness evaluations made by this call (resumed scores excluded)
    reused: int = 0  # scores taken from history.jsonl of an interrupted run
    curve: list[dict[str, float]] = field(default_factory=list)  # per generation: best so far, mean


def run_search(
    algorithm: SearchAlgorithm,
    fitness: Fitness,
    out_dir: str | os.PathLike | None,
    *,
    resume: bool = False,
    progress: bool = True,
    metadata: dict[str, Any] | None = None,
    chunk_size: int | None = None,
    record: Callable[[list[Individual]], dict[str, Any]] | None = None,
) -> SearchResult:
    """Run ``algorithm`` to completion with ``fitness(archs) -> scores`` (higher is better).

    Args:
        algorithm: A fresh algorithm (or, with ``resume``, one built with the same settings).
        fitness: Scores a list of architectures; NaN marks a failed evaluation.
        out_dir: Where files go (``None``: nothing is written and resume is impossible).
        resume: Continue the search saved in ``out_dir``.
        progress: Show a rich progress display (rank 0).
        metadata: Merged into ``best_arch.json`` (scorer, supernet checkpoint, versions, ...).
        chunk_size: Candidates scored between two history flushes (default: one per rank); an
            interruption loses at most one chunk of work.
        record: ``record(history) -> dict`` merged into ``best_arch.json`` at the end (e.g. the
            top-k with each scorer term, parameters and FLOPs).
    """
    if not isinstance(algorithm, SearchAlgorithm):
        raise ConfigError(f"run_search needs a SearchAlgorithm, got {type(algorithm).__name__}")
    if not callable(fitness):
        raise ConfigError(f"The 'fitness' parameter of run_search must be a callable. Got {fitness!r} instead.")
    info = dist_info()
    chunk = info.world_size if chunk_size is None else check_int(chunk_size, "chunk_size", "run_search", 1)
    out = None if out_dir is None else Path(out_dir)
    if resume and out is None:
        raise ConfigError("resume needs the output directory of the interrupted search")
    prep: dict[str, Any] = {"error": None, "state": None, "cache": {}}
    if info.is_main and out is not None:
        try:
            prep = _prepare(out, resume)
        except GenasError as exc:  # every rank must raise, not wait for a broadcast
            prep = {"error": exc, "state": None, "cache": {}}
    prep = broadcast_object(prep)
    if prep["error"] is not None:
        raise prep["error"]
    if prep["state"] is not None:
        algorithm.load_state_dict(prep["state"]["algorithm_state"])
        if metadata is None:
            metadata = prep["state"].get("metadata")
    cache: dict[str, dict[str, Any]] = prep["cache"]
    writer = _Writer(out, algorithm, metadata, record) if info.is_main and out is not None else None
    bar = _Progress(algorithm, enabled=progress and info.is_main)
    scored_now = reused = 0
    try:
        while not algorithm.done:
            batch = algorithm.ask()
            if not batch:
                break
            scores = np.empty(len(batch))
            for start in range(0, len(batch), chunk):
                part = batch[start : start + chunk]
                fresh = [a for a in part if str(a) not in cache]
                tic = time.perf_counter()
                values = iter(_score(fitness, fresh, info)) if fresh else iter(())
                seconds = (time.perf_counter() - tic) / max(len(fresh), 1)
                records = []
                for i, arch in enumerate(part, start=start):
                    old = cache.pop(str(arch), None)
                    score = _from_json(old["score"]) if old is not None else float(next(values))
                    scores[i] = score
                    records.append(_record(arch, score, algorithm, algorithm.num_scored + i, old, seconds))
                scored_now += len(fresh)
                reused += len(part) - len(fresh)
                if writer is not None:
                    writer.append(records)
                bar.advance(len(part))
            algorithm.tell(batch, scores)
            if writer is not None:
                writer.save_state()
            bar.generation_done(scores)
            log.info("generation %d: %d scored, best %.6g, batch mean %.6g", algorithm.generation - 1,
                     algorithm.num_scored, algorithm.best.score, _mean(scores))  # fmt: skip
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    curve = _curve(algorithm.history)
    if writer is not None:
        writer.finish(curve)
    barrier()
    return SearchResult(algorithm.best, list(algorithm.history), algorithm.num_scored, out, algorithm.name,
                        scored_now, reused, curve)  # fmt: skip


# ---- scoring ---------------------------------------------------------------------------------
def _call(fitness: Fitness, archs: list[Any]) -> list[float]:
    values = np.asarray(fitness(archs), dtype=np.float64).reshape(-1)
    if len(values) != len(archs):
        raise ValueError(f"the fitness function returned {len(values)} scores for {len(archs)} architectures")
    return values.tolist()


def _score(fitness: Fitness, archs: list[Any], info: DistInfo) -> list[float]:
    """Scores of ``archs`` in order; under torchrun each rank scores ``archs[rank::world]``."""
    if not info.distributed:
        return _call(fitness, archs)
    shard = archs[info.rank :: info.world_size]
    try:
        local: tuple[str, Any] = ("ok", _call(fitness, shard) if shard else [])
    except Exception as exc:  # tell the other ranks instead of leaving them waiting in the gather
        local = ("error", f"{type(exc).__name__}: {exc}")
        all_gather_objects(local)
        raise
    parts = all_gather_objects(local)
    for rank, (status, payload) in enumerate(parts):
        if status != "ok":
            raise RuntimeError(f"scoring failed on rank {rank}: {payload}")
    merged: list[float] = [0.0] * len(archs)
    for rank, (_, values) in enumerate(parts):
        merged[rank :: info.world_size] = values
    return merged


# ---- files -----------------------------------------------------------------------------------
def _to_json(score: float) -> float | None:
    return score if math.isfinite(score) else None


def _from_json(score: float | None) -> float:
    return math.nan if score is None else float(score)


def _record(arch: Any, score: float, algorithm: SearchAlgorithm, index: int, old: dict | None, seconds: float) -> dict:
    rec = {"index": index, "generation": algorithm.generation, "arch": str(arch)}
    if arch.to_json() != str(arch):
        rec["genotype"] = to_jsonable(arch.to_json())
    rec["score"] = _to_json(score)
    if old is not None:  # scored before an interruption: keep its timing
        rec.update({k: old[k] for k in ("seconds", "time") if k in old})
    else:
        rec.update(seconds=round(seconds, 6), time=round(time.time(), 3))
    return rec


def read_history(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a ``history.jsonl``; a partial last line (an interrupted write) is dropped."""
    path = Path(path)
    if not path.is_file():
        return []
    lines = path.read_text().split("\n")
    records = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if n == len(lines):  # the last line, without its newline: cut off mid-write
                log.warning("dropping the partial last line of %s", path)
                break
            raise CheckpointError(f"{path}, line {n} is not valid JSON; the search history is corrupt") from None
    return records


def check_out_dir(out: Path, resume: bool) -> None:
    """Refuse, before any work, an output directory that cannot hold this search (writes nothing).

    A directory with a partial ``history.jsonl`` but no saved state (a search killed in its first
    generation) is resumable; ``--resume`` of a directory holding no search is refused (nothing
    to continue: the search starts without ``--resume``).
    """
    out = check_writable_dir(out, "--out")
    started = (out / STATE_FILE).exists() or ((out / HISTORY_FILE).is_file() and (out / HISTORY_FILE).stat().st_size > 0)
    if started and not resume:
        raise ConfigError(f"{out} already holds a search ({STATE_FILE}, {HISTORY_FILE}); pass --resume to "
                          "continue it, or choose another output directory (evolve.py: --out DIR)")
    if resume and not started:
        raise NotTrainedError(f"nothing to resume: {out} holds no search (no {STATE_FILE}, no scored {HISTORY_FILE}); "
                              "start it without --resume")  # fmt: skip


def _prepare(out: Path, resume: bool) -> dict[str, Any]:
    """Rank 0: check the directory, load the saved state and the scores of an interrupted generation."""
    state_path, hist_path = out / STATE_FILE, out / HISTORY_FILE
    check_out_dir(out, resume)
    out.mkdir(parents=True, exist_ok=True)
    for leftover in out.glob(".*.tmp"):  # an atomic write cut off by kill -9
        leftover.unlink(missing_ok=True)
    if not resume:
        return {"error": None, "state": None, "cache": {}}
    state = None
    if state_path.is_file():
        try:
            state = json.loads(state_path.read_text())
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{state_path} is not valid JSON ({exc.msg}); cannot resume") from None
        if state.get("format") != RUN_FORMAT:
            raise CheckpointError(f"{state_path} is not a genas search state (format {RUN_FORMAT!r})")
    records = read_history(hist_path)
    done = 0 if state is None else int(state["history_lines"])
    if len(records) < done:  # history lost lines the state knows: rebuild them from the state
        records = [{"index": i, "generation": g, "arch": str(a), "score": _to_json(s)}
                   for i, (a, s, g) in enumerate(state["algorithm_state"]["history"])]  # fmt: skip
    kept, cache = records[:done], {r["arch"]: r for r in records[done:]}
    atomic_write_text(hist_path, "".join(json.dumps(r) + "\n" for r in kept))
    log.info("resuming %s: %d candidates in the saved state, %d scores reused", out, done, len(cache))
    return {"error": None, "state": state, "cache": cache}


class _Writer:
    """Rank 0's files: appended history lines, the state after each generation, the final results."""

    def __init__(self, out: Path, algorithm: SearchAlgorithm, metadata: dict[str, Any] | None,
                 record: Callable[[list[Individual]], dict[str, Any]] | None = None) -> None:  # fmt: skip
        self.out, self.algorithm, self.metadata, self.record = out, algorithm, dict(metadata or {}), record
        self.fh: TextIO | None = (out / HISTORY_FILE).open("a")

    def append(self, records: list[dict[str, Any]]) -> None:
        assert self.fh is not None
        self.fh.write("".join(json.dumps(to_jsonable(r), allow_nan=False) + "\n" for r in records))
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def save_state(self) -> None:
        atomic_write_json(self.out / STATE_FILE, {
            "format": RUN_FORMAT, "history_lines": self.algorithm.num_scored, "metadata": self.metadata,
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "algorithm_state": self.algorithm.state_dict(),
        }, indent=None)  # fmt: skip

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None

    def finish(self, curve: list[dict[str, float]]) -> None:
        algo, best = self.algorithm, self.algorithm.best
        core: dict[str, Any] = {"arch": None if best is None else str(best.arch)}
        if best is not None:
            if best.arch.to_json() != str(best.arch):
                core["genotype"] = best.arch.to_json()
            core.update(score=_to_json(best.score), generation=best.generation,
                        index=next(i for i, ind in enumerate(algo.history) if ind is best))  # fmt: skip
        core.update(space=algo.space.name, algorithm=algo.name, params=algo.params(), seed=algo.seed,
                    num_scored=algo.num_scored, generations=algo.generation)  # fmt: skip
        if algo.constraint is not None:
            core["constraint"] = getattr(algo.constraint, "describe", lambda: repr(algo.constraint))()
        extra = self.record(algo.history) if self.record is not None and best is not None else {}
        atomic_write_json(self.out / BEST_FILE, {**self.metadata, **core, **extra})
        scorer = self.metadata.get("scorer")
        head = f"scorer {scorer}: " if scorer else ""
        _plot_curve(curve, self.out / CURVE_FILE, f"{head}{algo.describe()}, seed {algo.seed}")


def _mean(scores: Sequence[float] | np.ndarray) -> float:
    finite = np.asarray(scores, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    return float(finite.mean()) if finite.size else math.nan


def _curve(history: list[Individual]) -> list[dict[str, float]]:
    """Per generation: best score so far and mean score of the generation's candidates."""
    rows, best = [], -math.inf
    for g in sorted({ind.generation for ind in history}):
        scores = [ind.score for ind in history if ind.generation == g]
        best = max([best, *(s for s in scores if not math.isnan(s))])
        rows.append({"generation": g, "best": best, "mean": _mean(scores), "count": len(scores)})
    return rows


def _plot_curve(curve: list[dict[str, float]], path: Path, title: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.info("matplotlib is not installed: skipping %s", path.name)
        return
    from genas.io import atomic_writer

    gens = [r["generation"] for r in curve]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(gens, [r["best"] for r in curve], marker="o", label="best so far")
    ax.plot(gens, [r["mean"] for r in curve], marker=".", label="generation mean")
    ax.set_xlabel("generation")
    ax.set_ylabel("score (higher is better)")
    ax.set_title(textwrap.fill(title, 90), fontsize=8)
    ax.legend()
    fig.tight_layout()
    with atomic_writer(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=100)
    plt.close(fig)


class _Progress:
    """Candidates scored, generation, best so far and batch mean: a bar on a terminal, a line per generation in a log."""

    def __init__(self, algorithm: SearchAlgorithm, enabled: bool) -> None:
        from genas.progress import Progress

        self.algorithm, self.done = algorithm, algorithm.num_scored
        self.bar = Progress(algorithm.name, algorithm.total_queries, {"gen": "{}", "best": "{}", "mean": "{}"},
                            enabled=enabled, completed=self.done)  # fmt: skip
        self.bar.__enter__()
        self.bar.update(self.done, gen=algorithm.generation, best=_fmt(algorithm.best and algorithm.best.score))

    def advance(self, n: int) -> None:
        self.done += n
        self.bar.update(self.done)

    def generation_done(self, scores: np.ndarray) -> None:
        algo = self.algorithm
        best, mean = _fmt(algo.best.score), _fmt(_mean(scores))
        self.bar.update(self.done, gen=algo.generation, best=best, mean=mean)
        self.bar.line(f"generation {algo.generation}  best {best}  mean {mean}  "
                      f"{algo.num_scored}/{algo.total_queries} scored", self.done)  # fmt: skip

    def close(self) -> None:
        self.bar.__exit__(None, None, None)


def _fmt(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.4g}"
