"""Bar chart of one metric: a group of horizontal bars per dataset, one bar per system.

Horizontal bars keep long dataset names readable and let 18+ datasets stack without rotated
labels.  The numbers come from `tables.leaderboard`, so the chart and the table always agree
(CQADupStack collapsed the same way, the same Average row).
"""

from __future__ import annotations

from collections.abc import Sequence
from io import BytesIO
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers; must precede pyplot

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..io import atomic_write_bytes  # noqa: E402
from ..results import StoredResult  # noqa: E402
from .tables import leaderboard  # noqa: E402


def plot_results(results: Sequence[StoredResult], metric: str, output: Path | str) -> Path:
    """Write a PNG chart of `metric` for every stored (system, dataset); returns its path.  The metric
    name is normalised as `leaderboard` does (`NDCG@10`); an unknown one is a ValueError."""
    board = leaderboard(results, metric=metric)
    values, metric = board.values, board.metric
    datasets = list(values.index)
    systems = list(values.columns)
    n_sys = len(systems)
    bar_h = 0.8 / n_sys
    height = max(3.0, 0.2 * len(datasets) * n_sys + 0.3 * len(datasets) + 1.5)
    fig, ax = plt.subplots(figsize=(10, height), layout="constrained")
    centers = np.arange(len(datasets))[::-1].astype(float)  # first dataset at the top
    colors = plt.get_cmap("tab10" if n_sys <= 10 else "tab20").colors
    for i, system in enumerate(systems):
        ys = centers + 0.4 - bar_h * (i + 0.5)
        xs = values[system].to_numpy(dtype=float)
        bars = ax.barh(
            ys, np.nan_to_num(xs), height=bar_h * 0.92, label=system, color=colors[i % len(colors)]
        )
        labels = ["n/a" if np.isnan(x) else f"{x:.3f}" for x in xs]
        ax.bar_label(bars, labels=labels, padding=2, fontsize=7)
    ax.set_yticks(centers, labels=datasets)
    for tick in ax.get_yticklabels():
        if tick.get_text() == "Average":
            tick.set_fontweight("bold")
    top = np.nanmax(values.to_numpy(dtype=float)) if np.isfinite(values.to_numpy(dtype=float)).any() else 1.0
    ax.set_xlim(0, max(top * 1.15, 0.05))
    ax.set_xlabel(metric)
    fig.suptitle(f"{metric} per dataset", fontsize=12, fontweight="bold")
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    for y in centers[:-1] - 0.5:
        ax.axhline(y, color="0.85", linewidth=0.6)
    fig.legend(loc="outside lower center", ncols=min(n_sys, 4), fontsize=9, frameon=False)
    ax.margins(y=0.01)
    return _save(fig, Path(output))


def _save(fig, output: Path) -> Path:
    buf = BytesIO()
    fig.savefig(buf, format="png", dpi=150)
    plt.close(fig)
    atomic_write_bytes(output, buf.getvalue())
    return output
