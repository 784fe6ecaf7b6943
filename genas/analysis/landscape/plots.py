"""Figures of the landscape study: neighbourhood histograms (paper Fig. 4, 12, 13) and accuracy paths (Fig. 7).

matplotlib is optional (``pip install genas[plot]``); these functions raise ``ImportError``
without it, and write PNGs atomically.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from genas.io import atomic_writer
from genas.analysis.landscape.paths import AccuracyPath
from genas.analysis.landscape.stats import KSResult

__all__ = ["plot_neighborhood_histograms", "plot_accuracy_paths"]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | os.PathLike) -> None:
    with atomic_writer(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=110, bbox_inches="tight")


def plot_neighborhood_histograms(
    results: Sequence[KSResult], whole: np.ndarray, path: str | os.PathLike, title: str = ""
) -> None:
    """One panel per (tier, radius): the pooled neighbourhood density over the whole-space density.

    Args:
        results: KS results computed with ``bins`` (they carry their histograms).
        whole: Accuracies of the whole space.
        path: PNG file to write.
        title: Figure title.
    """
    plt = _pyplot()
    tiers = list(dict.fromkeys(r.tier for r in results))
    radii = sorted({r.radius for r in results})
    fig, axes = plt.subplots(len(tiers), len(radii), figsize=(3.2 * len(radii), 2.2 * len(tiers)), squeeze=False)
    for res in results:
        if res.histogram is None:
            raise ValueError("plot_neighborhood_histograms needs results computed with bins=...")
        ax = axes[tiers.index(res.tier)][radii.index(res.radius)]
        density, edges = res.histogram
        ax.hist(whole, bins=edges, density=True, color="tab:green", alpha=0.35, label="whole space")
        ax.stairs(density, edges, color="tab:blue", linewidth=1.2, label="neighbours")
        ax.axvspan(res.low, res.high, color="tab:red", alpha=0.25, label="tier")
        ax.set_title(f"tier {res.tier}, r={res.radius}: KS {res.statistic:.3f}", fontsize=9)
        ax.tick_params(labelsize=7)
    axes[0][0].legend(fontsize=6, loc="upper left")
    for ax in axes[-1]:
        ax.set_xlabel("test accuracy (%)", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def plot_accuracy_paths(paths: Mapping[str, AccuracyPath], path: str | os.PathLike, title: str = "") -> None:
    """Accuracy paths (level means with one standard deviation) with their raw barriers in the legend."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.0, 3.4))
    for name, ap in paths.items():
        x = np.arange(len(ap.values))
        b = ap.barrier()
        label = f"{name}: barrier {b.raw:.2f} ({b.normalized:.3f})"
        bars = ax.errorbar(x, ap.values, yerr=ap.stds, marker="o", capsize=3, label=label)
        color = bars.lines[0].get_color()
        ax.scatter([x[0], x[-1]], [ap.values[0], ap.values[-1]], marker="s", s=40, zorder=3, color=color)
    ax.set_xlabel("moves from a")
    ax.set_ylabel("test accuracy (%)")
    ax.set_xticks(range(max(len(ap.values) for ap in paths.values())))
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
