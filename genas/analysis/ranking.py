"""How well a scorer ranks architectures: Kendall tau, Spearman and top-k precision.

Kendall's tau is the tie-aware tau-b of ``scipy.stats.kendalltau`` (the NB201 table has many
exact ties, e.g. 341 architectures at chance level on CIFAR-10).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from genas.errors import ConfigError

__all__ = ["RankingReport", "rank_report", "precision_at_k", "parse_topk"]


@dataclass(frozen=True)
class RankingReport:
    """Agreement between scores and ground-truth accuracies of the same architectures."""

    n: int
    kendall_tau: float
    spearman: float
    precision: dict[str, float]  # "top-10" / "top-5%" -> precision

    def as_dict(self) -> dict[str, float | int]:
        return {"n": self.n, "kendall_tau": self.kendall_tau, "spearman": self.spearman,
                **{f"precision@{k}": v for k, v in self.precision.items()}}  # fmt: skip


def parse_topk(spec: str | Sequence[str], n: int) -> dict[str, int]:
    """``"10,5%"`` -> {"top-10": 10, "top-5%": round(0.05 n)} (at least 1, at most n)."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out = {}
    for item in (s.strip() for s in items if str(s).strip()):
        try:
            k = max(1, round(float(item[:-1]) / 100 * n)) if item.endswith("%") else int(item)
        except ValueError as exc:
            raise ConfigError(f"top-k {item!r} is neither an integer nor a percentage like '5%'") from exc
        if not 1 <= k <= n:
            raise ConfigError(f"top-k {item!r} selects {k} of {n} architectures; it must be in [1, {n}]")
        out[f"top-{item}"] = k
    return out


def precision_at_k(scores: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Share of the k best by score that are among the k best by ground truth (ties broken by order)."""
    top_s = set(np.argsort(-scores, kind="stable")[:k].tolist())
    top_t = set(np.argsort(-truth, kind="stable")[:k].tolist())
    return len(top_s & top_t) / k


def rank_report(scores: Sequence[float], truth: Sequence[float], topk: str | Sequence[str] = "10,10%") -> RankingReport:
    """Kendall tau-b, Spearman rho and precision@k of ``scores`` against ``truth``."""
    s = np.asarray(scores, dtype=np.float64)
    t = np.asarray(truth, dtype=np.float64)
    if s.shape != t.shape or s.ndim != 1 or len(s) < 2:
        raise ConfigError(f"need two equally long 1-D score lists of at least 2 items, got {s.shape} and {t.shape}")
    finite = np.isfinite(s)
    s = np.where(finite, s, np.nanmin(np.where(finite, s, np.nan)) - 1.0 if finite.any() else 0.0)
    tau = stats.kendalltau(s, t).statistic
    rho = stats.spearmanr(s, t).statistic
    prec = {name: precision_at_k(s, t, k) for name, k in parse_topk(topk, len(s)).items()}
    return RankingReport(len(s), float(np.nan_to_num(tau)), float(np.nan_to_num(rho)), prec)
