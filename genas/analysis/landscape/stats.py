"""Neighbourhood statistics (A2M paper, section 5.1 and Table 8).

Pool the radius-r neighbour accuracies of every architecture whose accuracy lies in a tier
interval, and compare the pool with the accuracy distribution of the whole space by the
two-sample Kolmogorov-Smirnov statistic.  On the NB201 table everything is numpy gathers over
gene codes (:func:`~genas.analysis.landscape.neighborhood.nb201_neighbor_codes`); for other spaces
:func:`neighborhood_accuracies` pools any accuracy source.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from genas.tables.nb201 import NB201Table, normalize_dataset
from genas.errors import ConfigError
from genas.analysis.landscape.neighborhood import nb201_neighbor_codes, neighborhood, resolve_space
from genas.analysis.landscape.paper import PAPER_TIERS
from genas.analysis.landscape.sources import AccuracySource, evaluate
from genas.spaces import SearchSpace

__all__ = [
    "KSResult", "select_tier", "pooled_neighbor_accuracies", "ks_statistic", "tier_ks", "neighborhood_ks",
    "neighborhood_accuracies", "parse_tier",
]  # fmt: skip


@dataclass(frozen=True)
class KSResult:
    """KS comparison of one tier's pooled radius-r neighbourhood with the whole space."""

    dataset: str
    tier: str
    low: float
    high: float
    radius: int
    members: int
    samples: int
    statistic: float
    pvalue: float
    mean: float
    histogram: tuple[np.ndarray, np.ndarray] | None = field(default=None, compare=False, repr=False)

    def to_row(self) -> dict[str, Any]:
        """The scalar fields, for CSV/JSON."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "histogram"}


def _check_interval(low: Any, high: Any, name: str) -> tuple[float, float]:
    try:
        lo, hi = float(low), float(high)
    except (TypeError, ValueError):
        lo = hi = math.nan
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise ConfigError(f"tier {name}: the interval must be two finite numbers low <= high, got [{low}, {high}]")
    return lo, hi


def parse_tier(text: str) -> tuple[str, float, float]:
    """Read ``NAME=LOW:HIGH`` (e.g. ``A=92.3:93.7``) into ``(name, low, high)``."""
    name, sep, rest = str(text).partition("=")
    low, colon, high = rest.partition(":")
    if not sep or not colon or not name.strip():
        raise ConfigError(f"a tier is written NAME=LOW:HIGH, e.g. A=92.3:93.7; got {text!r}")
    try:
        lo, hi = float(low), float(high)
    except ValueError:
        raise ConfigError(f"tier {name.strip()}: LOW and HIGH must be numbers, got {text!r}") from None
    lo, hi = _check_interval(lo, hi, name.strip())
    return name.strip(), lo, hi


def select_tier(values: Any, low: float, high: float, name: str = "tier") -> np.ndarray:
    """Positions of ``values`` inside the inclusive interval ``[low, high]``; raises if there are none."""
    lo, hi = _check_interval(low, high, name)
    v = np.asarray(values, dtype=np.float64)
    pos = np.flatnonzero((v >= lo) & (v <= hi))
    if pos.size == 0:
        span = f"{np.nanmin(v):.2f}..{np.nanmax(v):.2f}" if v.size else "nothing"
        raise ConfigError(f"tier {name} [{lo:g}, {hi:g}] selects no architecture (accuracies span {span})")
    return pos


def pooled_neighbor_accuracies(acc_by_code: np.ndarray, codes: Any, radius: int, chunk: int = 2048) -> np.ndarray:
    """Accuracies of every radius-``radius`` neighbour of every code, pooled (duplicates kept).

    Args:
        acc_by_code: Accuracy per NB201 gene code (length 15,625; NaN = not tabulated).
        codes: Gene codes of the centres.
        radius: Neighbourhood radius (1..6).
        chunk: Centres processed per step, to bound memory.
    """
    codes = np.asarray(codes, dtype=np.int64).reshape(-1)
    parts = [
        acc_by_code[nb201_neighbor_codes(codes[i : i + chunk], radius)].ravel() for i in range(0, len(codes), chunk)
    ]
    nb201_neighbor_codes(codes[:0], radius)  # validates the radius even without centres
    pooled = np.concatenate(parts) if parts else np.empty(0)
    if np.isnan(pooled).any():
        raise ConfigError(
            f"the table lacks {int(np.isnan(pooled).sum())} radius-{radius} neighbour accuracies; "
            "neighbourhood statistics need every architecture (a full 15,625-row table)"
        )
    return pooled


def ks_statistic(sample: Any, reference: Any) -> tuple[float, float]:
    """Two-sample KS statistic and p-value (``scipy.stats.ks_2samp``, two-sided)."""
    from scipy import stats  # imported here: a 1-second import the command-line error paths do without

    res = stats.ks_2samp(np.asarray(sample, dtype=np.float64), np.asarray(reference, dtype=np.float64))
    return float(res.statistic), float(res.pvalue)


def tier_ks(
    table: NB201Table,
    dataset: str,
    tier: str,
    low: float,
    high: float,
    radius: int,
    metric: str | None = None,
    epochs: int = 200,
    bins: int | None = None,
) -> KSResult:
    """KS statistic of one tier at one radius on the NB201 table (``bins``: also keep a histogram)."""
    whole = table.column(dataset, metric, epochs)
    members = select_tier(whole, low, high, name=tier)
    pooled = pooled_neighbor_accuracies(table.column_by_code(dataset, metric, epochs), table.codes[members], radius)
    stat, pvalue = ks_statistic(pooled, whole)
    hist = None
    if bins:
        edges = np.linspace(float(whole.min()), float(whole.max()), int(bins) + 1)
        hist = (np.histogram(pooled, bins=edges, density=True)[0], edges)
    return KSResult(
        normalize_dataset(dataset), tier, float(low), float(high), int(radius), int(members.size), int(pooled.size),
        stat, pvalue, float(pooled.mean()), hist,
    )  # fmt: skip


def neighborhood_ks(
    table: NB201Table,
    dataset: str = "cifar10",
    tiers: Mapping[str, tuple[float, float]] | None = None,
    radii: Iterable[int] = (1, 2, 3),
    metric: str | None = None,
    epochs: int = 200,
    bins: int | None = None,
    callback: Callable[[KSResult], None] | None = None,
) -> list[KSResult]:
    """Table 8 of the A2M paper: KS statistic per tier and radius.

    Args:
        table: A complete NB201 table.
        dataset: Dataset name or alias.
        tiers: Tier name -> inclusive (low, high); default: the paper's tiers for ``dataset``.
        radii: Neighbourhood radii.
        metric: ``test`` (default) or ``valid``.
        epochs: 200 or 12.
        bins: Also keep a density histogram of each pool on this many bins.
        callback: Called with each result as soon as it is computed (progress display).
    """
    key = normalize_dataset(dataset)
    if tiers is None:
        if key not in PAPER_TIERS:
            raise ConfigError(f"no default tiers for dataset {dataset!r}; pass tiers={{'A': (low, high), ...}}")
        tiers = PAPER_TIERS[key]
    results = []
    for radius in radii:
        for name, (low, high) in tiers.items():
            res = tier_ks(table, dataset, name, low, high, radius, metric, epochs, bins)
            results.append(res)
            if callback is not None:
                callback(res)
    return results


def neighborhood_accuracies(
    archs: Sequence[Any],
    radius: int,
    source: AccuracySource,
    space: SearchSpace | str | None = None,
    k: int | None = None,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Pooled accuracies of the radius-``radius`` neighbours of ``archs`` in any space.

    All neighbours (or ``k`` sampled per centre with ``rng``) are evaluated with one call to
    ``source``; a neighbour shared by two centres counts twice, as in the paper's pools.
    """
    space, archs = resolve_space(space, *archs)
    pools = [neighborhood(a, radius, space, k, rng) for a in archs]
    unique = list(dict.fromkeys(n for pool in pools for n in pool))
    values = dict(zip(unique, evaluate(source, unique)))
    return np.array([values[n] for pool in pools for n in pool], dtype=np.float64)
