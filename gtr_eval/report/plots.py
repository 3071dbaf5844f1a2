"""Charts of stored results: a bar chart of one metric, and the learning curve of a training run.

Bar chart: a group of horizontal bars per dataset, one bar per system.  Horizontal bars keep long
dataset names readable and let 18+ datasets stack without rotated labels.  The numbers come from
`tables.leaderboard`, so the chart and the table always agree (CQADupStack collapsed the same way,
the same Average row), and so do the error bars: each system's 95% bootstrap interval over queries
(`uncertainty`), the Average's from the datasets' draws.

Learning curve (`plot --curve`): the checkpoints of one training run (`NAME@step-N`,
`checkpoints`) by step, a line per dataset, beside each dataset's baseline (dashed) and published
figure (dotted).  Its numbers also come from `leaderboard`, over the results the table reads, so a
point is drawn only for a checkpoint stored on that dataset.

Figures are `matplotlib.figure.Figure`s rendered by Agg when saved: pyplot is never imported, so no
backend is chosen and no figure registered for the process that imports this module.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..errors import Mistake, did_you_mean
from ..io import atomic_write_bytes
from ..judgments import Judgments
from ..results import StoredResult
from ..uncertainty import DEFAULT_BOOTSTRAP, Bootstrap
from .selection import Selection
from .tables import AVERAGE, RefSpec, checkpoint_names, leaderboard, reference_values

if TYPE_CHECKING:
    import pandas as pd

CURVE_XLABEL = "training step"
CURVE_BASELINE = "bm25"  # the dashed lines, when stored and no other baseline is asked for


def plot_results(
    results: Sequence[StoredResult],
    metric: str,
    output: Path | str,
    ci: Bootstrap | None = DEFAULT_BOOTSTRAP,
    judgments: Judgments | None = None,
    selection: Selection | None = None,
) -> Path:
    """Write a PNG chart of `metric` for every stored (system, dataset); returns its path.  The metric
    name is normalised as `leaderboard` does (`NDCG@10`); an unknown one is a ValueError.  `ci`: error
    bars from these bootstrap intervals (None: none); bars without per-query scores get none."""
    board = leaderboard(results, metric=metric, ci=ci, judgments=judgments, selection=selection)
    values, metric = board.values, board.metric
    datasets = list(values.index)
    systems = list(values.columns)
    n_sys = len(systems)
    bar_h = 0.8 / n_sys
    height = max(3.0, 0.2 * len(datasets) * n_sys + 0.3 * len(datasets) + 1.5)
    fig = Figure(figsize=(10, height), layout="constrained")
    ax = fig.add_subplot()
    centers = np.arange(len(datasets))[::-1].astype(float)  # first dataset at the top
    colors = _colors(n_sys)
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


def _colors(n: int) -> Sequence:
    return matplotlib.colormaps["tab10" if n <= 10 else "tab20"].colors


def _save(fig: Figure, output: Path) -> Path:
    """Render to PNG in memory, then write atomically: an interrupted plot leaves no half a file."""
    buf = BytesIO()
    fig.savefig(buf, format="png", dpi=150)
    atomic_write_bytes(output, buf.getvalue())
    return output


# --- learning curve ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CurveLine:
    """One dataset of a learning curve: the stored checkpoints' scores in step order, and the
    heights of its baseline and reference lines (None: not stored / not published)."""

    dataset: str
    steps: tuple[int, ...]
    scores: tuple[float, ...]
    baseline: float | None = None
    reference: float | None = None


@dataclass(frozen=True)
class Curve:
    """What a learning-curve figure shows, so that it can be checked (and reused) without pixels."""

    run: str
    metric: str
    lines: tuple[CurveLine, ...]
    baseline: str | None  # the system of the dashed lines; None when it has no line
    reference: str | None  # the header `table --reference` gives the dotted lines' source
    notes: tuple[str, ...] = ()  # what the figure lacks and why (said on stderr by the CLI)


def learning_curve(
    results: Sequence[StoredResult],
    metric: str = "ndcg@10",
    run: str | None = None,
    baseline: str | None = None,
    reference: str | RefSpec | None = None,
    judgments: Judgments | None = None,
    reference_table: pd.DataFrame | None = None,
) -> Curve:
    """The learning curve of training run `run` (None: the only one stored) for `metric` (normalised
    as `leaderboard` does).  `baseline`: the system of the dashed lines (None: bm25 when stored; a
    named one must be stored); `reference`: a `table --reference` SOURCE:SYSTEM.  No checkpoint, an
    unknown run or several runs and none chosen: a `Mistake` naming what is there."""
    names = checkpoint_names(r.system for r in results)
    run = _pick_run(sorted({n.run for n in names.values()}), run, sorted({r.system for r in results}))
    steps = {s: n.step for s, n in names.items() if n.run == run}
    board = leaderboard([r for r in results if r.system in steps], metric=metric, judgments=judgments)
    metric, values = board.metric, board.values
    base, base_values = _baseline_values(results, baseline, metric, judgments)
    header, ref_values = _reference_values(reference, metric, reference_table)
    lines = []
    for row in (r for r in values.index if r != AVERAGE):
        points = sorted(
            (step, float(values.loc[row, s])) for s, step in steps.items() if np.isfinite(values.loc[row, s])
        )
        if points:
            xs, ys = zip(*points, strict=True)
            lines.append(CurveLine(row, xs, ys, base_values.get(row), ref_values.get(row)))
    notes = _curve_notes(lines, base, header)
    has_base = any(line.baseline is not None for line in lines)
    return Curve(run, metric, tuple(lines), base if has_base else None, header, notes)


def _pick_run(runs: Sequence[str], run: str | None, systems: Sequence[str]) -> str:
    """The training run to draw: the one asked for, or the only one stored."""
    if not runs:
        raise Mistake(
            "no checkpoint systems (NAME@step-N) among the stored results, so no learning curve; "
            f"systems: {', '.join(systems) or 'none'}"
        )
    if run is None:
        if len(runs) > 1:
            raise Mistake(
                f"the results hold {len(runs)} training runs ({', '.join(runs)}); choose one with --run"
            )
        return runs[0]
    if run not in runs:
        raise Mistake(
            f"no training run {run!r} among the checkpoints{did_you_mean(run, runs)}; runs: {', '.join(runs)}"
        )
    return run


def _baseline_values(
    results: Sequence[StoredResult], baseline: str | None, metric: str, judgments: Judgments | None
) -> tuple[str, dict[str, float]]:
    """The baseline system and its score per dataset row (rows named as the curve's)."""
    name = baseline or CURVE_BASELINE
    stored = [r for r in results if r.system == name]
    if not stored:
        if baseline is None:
            return name, {}
        systems = sorted({r.system for r in results})
        raise Mistake(f"baseline {baseline!r} has no stored results{did_you_mean(baseline, systems)}")
    values = leaderboard(stored, metric=metric, judgments=judgments).values[name]
    return name, {row: float(v) for row, v in values.items() if row != AVERAGE and np.isfinite(v)}


def _reference_values(
    reference: str | RefSpec | None, metric: str, reference_table: pd.DataFrame | None
) -> tuple[str | None, dict[str, float]]:
    if reference is None:
        return None, {}
    spec = reference if isinstance(reference, RefSpec) else RefSpec.parse(reference)
    return reference_values(spec, metric, reference_table)


def _curve_notes(lines: Sequence[CurveLine], baseline: str, reference: str | None) -> tuple[str, ...]:
    """One line for each kind of line the figure lacks on some dataset."""
    notes = []
    no_base = [line.dataset for line in lines if line.baseline is None]
    if no_base:
        notes.append(f"no {baseline} result stored for {', '.join(no_base)}: no dashed line there")
    no_ref = [line.dataset for line in lines if line.reference is None]
    if reference is not None and no_ref:
        notes.append(f"{reference} publishes no figure for {', '.join(no_ref)}: no dotted line there")
    return tuple(notes)


def curve_figure(curve: Curve) -> Figure:
    """The figure of `curve`: per dataset (one colour each) the checkpoints' scores against the step,
    solid with a marker per stored checkpoint; its baseline dashed and its reference dotted, as
    horizontal lines in the same colour.  The legend names the datasets and the two line styles."""
    fig = Figure(figsize=(9, 5), layout="constrained")
    ax = fig.add_subplot()
    colors = _colors(len(curve.lines))
    handles = []
    for i, line in enumerate(curve.lines):
        color = colors[i % len(colors)]
        (drawn,) = ax.plot(line.steps, line.scores, marker="o", color=color, label=line.dataset)
        handles.append(drawn)
        if line.baseline is not None:
            ax.axhline(
                line.baseline,
                color=color,
                linestyle="--",
                linewidth=1,
                label=f"{curve.baseline}: {line.dataset}",
            )
        if line.reference is not None:
            ax.axhline(
                line.reference,
                color=color,
                linestyle=":",
                linewidth=1.5,
                label=f"{curve.reference}: {line.dataset}",
            )
    handles += _style_handles(curve)
    steps = sorted({s for line in curve.lines for s in line.steps})
    if len(steps) <= 12:
        ax.set_xticks(steps)
    ax.set_xlabel(CURVE_XLABEL)
    ax.set_ylabel(curve.metric)
    ax.set_title(f"{curve.metric} over training: {curve.run}", fontweight="bold")
    ax.grid(alpha=0.3)
    fig.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False)
    return fig


def _style_handles(curve: Curve) -> list[Line2D]:
    """Legend entries for the horizontal lines: one per style, not one per dataset."""
    out = []
    if any(line.baseline is not None for line in curve.lines):
        out.append(
            Line2D([], [], color="0.35", linestyle="--", linewidth=1, label=f"{curve.baseline} (dashed)")
        )
    if any(line.reference is not None for line in curve.lines):
        out.append(
            Line2D([], [], color="0.35", linestyle=":", linewidth=1.5, label=f"{curve.reference} (dotted)")
        )
    return out


def default_curve_output(results_dir: Path | str, curve: Curve) -> Path:
    """`RESULTS_DIR/plots/curve-<run>-<metric>.png`, beside the other committed plots."""
    return Path(results_dir) / "plots" / f"curve-{_slug(curve.run)}-{_slug(curve.metric)}.png"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9@._-]+", "_", text)


def plot_curve(curve: Curve, output: Path | str) -> Path:
    """Write `curve_figure(curve)` as a PNG (atomically); returns its path."""
    return _save(curve_figure(curve), Path(output))
