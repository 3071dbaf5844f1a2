"""Bar chart of one metric: a group of horizontal bars per dataset, one bar per system.

Horizontal bars keep long dataset names readable and let 18+ datasets stack without rotated
labels.  The numbers come from `tables.leaderboard`, so the chart and the table always agree
(CQADupStack collapsed the same way, the same Average row), and so do the error bars: each system's
95% bootstrap interval over queries (`uncertainty`), the Average's from the datasets' draws.
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
from ..judgments import Judgments  # noqa: E402
from ..results import StoredResult  # noqa: E402
from ..uncertainty import DEFAULT_BOOTSTRAP, Bootstrap  # noqa: E402
from .tables import leaderboard  # noqa: E402


def plot_results(
    results: Sequence[StoredResult],
    metric: str,
    output: Path | str,
    ci: Bootstrap | None = DEFAULT_BOOTSTRAP,
    judgments: Judgments | None = None,
) -> Path:
    """Write a PNG chart of `metric` for every stored (system, dataset); returns its path.  The metric
    name is normalised as `leaderboard` does (`NDCG@10`); an unknown one is a ValueError.  `ci`: error
    bars from these bootstrap intervals (None: none); bars without per-query scores get none."""
    board = leaderboard(results, metric=metric, ci=ci, judgments=judgments)
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
        ax.barh(ys, np.nan_to_num(xs), height=bar_h * 0.92, label=system, color=colors[i % len(colors)])
        labels = ["n/a" if np.isnan(x) else f"{x:.3f}" for x in xs]
        errors = _error_bars(board, system, xs)
        ends = np.nan_to_num(xs)
        if errors is not None:
            ax.errorbar(ends, ys, xerr=errors, fmt="none", ecolor="0.2", elinewidth=0.8, capsize=2)
            ends = ends + errors[1]
        for end, y, label in zip(ends, ys, labels, strict=True):  # right of the bar or its error bar
            ax.annotate(label, (end, y), xytext=(3, 0), textcoords="offset points", va="center", fontsize=7)
    ax.set_yticks(centers, labels=datasets)
    for tick in ax.get_yticklabels():
        if tick.get_text() == "Average":
            tick.set_fontweight("bold")
    top = np.nanmax(values.to_numpy(dtype=float)) if np.isfinite(values.to_numpy(dtype=float)).any() else 1.0
    if board.ci_high is not None and np.isfinite(board.ci_high.to_numpy(dtype=float)).any():
        top = max(top, float(np.nanmax(board.ci_high.to_numpy(dtype=float))))
    ax.set_xlim(0, max(top * 1.15, 0.05))
    ax.set_xlabel(metric)
    title = f"{metric} per dataset" + (
        f" (bars: {board.bootstrap.level:.0%} bootstrap intervals)" if board.bootstrap else ""
    )
    fig.suptitle(title, fontsize=12, fontweight="bold")
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    for y in centers[:-1] - 0.5:
        ax.axhline(y, color="0.85", linewidth=0.6)
    fig.legend(loc="outside lower center", ncols=min(n_sys, 4), fontsize=9, frameon=False)
    ax.margins(y=0.01)
    return _save(fig, Path(output))


def _error_bars(board, system: str, xs: np.ndarray) -> np.ndarray | None:
    """matplotlib's asymmetric `xerr` (2 × datasets) of one system's bars; None without intervals."""
    if board.ci_low is None or system not in board.system_columns:
        return None
    low = board.ci_low[system].to_numpy(dtype=float)
    high = board.ci_high[system].to_numpy(dtype=float)
    if not np.isfinite(low).any():
        return None
    return np.nan_to_num(np.vstack([xs - low, high - xs]))


def _save(fig, output: Path) -> Path:
    buf = BytesIO()
    fig.savefig(buf, format="png", dpi=150)
    plt.close(fig)
    atomic_write_bytes(output, buf.getvalue())
    return output
