"""Charts of stored results for papers: a bar chart of one metric, and the learning curve of a
training run, written as the format their file name says (PDF, SVG, PNG).

Bar chart: a group of horizontal bars per dataset, one bar per system.  Horizontal bars keep long
dataset names readable and let 18+ datasets stack without rotated labels.  The numbers come from
`tables.leaderboard`, so the chart and the table always agree (CQADupStack collapsed the same way,
the same Average row), and so do its marks: each bar's label is the table's cell, 4 decimals with
the significance marks of the table's paired test against the baseline (†/‡) and its ◇, bold where
the table bolds; the error bars are each system's 95% bootstrap interval over queries
(`uncertainty`), the Average's from the datasets' draws.

Learning curve (`plot --curve`): the checkpoints of one training run (`NAME@step-N`,
`checkpoints`) by step, a line per dataset with each checkpoint's bootstrap interval as an error
bar, beside each dataset's baseline (dashed) and published figure (dotted).  Its numbers also come
from `leaderboard`, over the results the table reads, so a point is drawn only for a checkpoint
stored on that dataset.  Its y-axis (`curve_limits`) holds every point, interval and line and spans
at least `MIN_SPAN`, so that differences inside the noise do not fill the height as a climb would.

Paper sizes: `width` "single" (one column, 3.35 in) or "double" (the text width, 7.0 in), text at
`FONT_SIZE` pt, so a figure is placed at 100% and its text matches a paper's captions.  Output is
deterministic: no timestamps in PDF or SVG, fixed SVG ids, PNG at `PNG_DPI`; the same results give
the same bytes (for one matplotlib version).  PDF embeds TrueType (Type 42) fonts, which
conference checkers ask for instead of Type 3.

Figures are `matplotlib.figure.Figure`s rendered when saved: pyplot is never imported, so no
backend is chosen and no figure registered for the process that imports this module.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..defaults import DECIMALS, FIGURE_FONT_SIZE, FIGURE_WIDTH, FIGURE_WIDTHS
from ..errors import Mistake, did_you_mean
from ..io import atomic_write_bytes
from ..judgments import Judgments
from ..results import StoredResult
from ..uncertainty import DEFAULT_BOOTSTRAP, Bootstrap
from .selection import Selection
from .tables import (
    AVERAGE,
    BETTER,
    JUDGED_MARK,
    MIXED_MARK,
    WORSE,
    Leaderboard,
    RefSpec,
    checkpoint_names,
    coverage,
    fixed,
    leaderboard,
    reference_values,
)

if TYPE_CHECKING:
    import pandas as pd

FORMATS = {".pdf": "pdf", ".svg": "svg", ".png": "png"}  # output suffix → what is written
PNG_DPI = 300  # print resolution
MIXED_HATCH = "////"  # a bar made from other data files than the rest of its row (the table's §)
FONT_SIZE = FIGURE_FONT_SIZE
MIN_SPAN = 0.05  # the learning curve's y-axis spans at least this much of the metric
DEFAULT_BASELINE = "bm25"  # marks (bars) and dashed lines (curve) compare with it where stored
CURVE_XLABEL = "training step"
_STYLE = {
    "font.size": FONT_SIZE,
    "axes.labelsize": FONT_SIZE,
    "axes.titlesize": FONT_SIZE,
    "xtick.labelsize": FONT_SIZE,
    "ytick.labelsize": FONT_SIZE,
    "legend.fontsize": FONT_SIZE,
    "pdf.fonttype": 42,
    "svg.hashsalt": "gtr-eval",  # fixed ids instead of random ones
}
_METADATA = {"pdf": {"CreationDate": None}, "svg": {"Date": None}, "png": {}}
_DESCRIPTION = {"pdf": "Subject", "svg": "Description", "png": "Description"}  # what a figure shows
_CHAR_WIDTH = 0.58 * FONT_SIZE / 72  # inches: a rough average glyph width, to size room for text


def figure_format(output: Path | str) -> str:
    """What `output`'s name asks for (`pdf`, `svg`, `png`); any other suffix is a `Mistake`."""
    suffix = Path(output).suffix.lower()
    if suffix not in FORMATS:
        said = f"'{Path(output).suffix}'" if suffix else "no suffix"
        names = ", ".join(list(FORMATS)[:-1]) + " or " + list(FORMATS)[-1]
        raise Mistake(f"figure {str(output)!r} has {said}; name it {names} (the format written)")
    return FORMATS[suffix]


def figure_width(width: str) -> float:
    """Inches of a named width (`FIGURE_WIDTHS`); another name is a `Mistake`."""
    if width not in FIGURE_WIDTHS:
        raise Mistake(f"unknown figure width {width!r}{did_you_mean(width, list(FIGURE_WIDTHS))}")
    return FIGURE_WIDTHS[width]


@contextmanager
def _style() -> Iterator[None]:
    """The paper style, in force while a figure is built (texts take their size when made) and saved."""
    with matplotlib.rc_context(_STYLE):
        yield


def _save(fig: Figure, output: Path, description: str) -> Path:
    """Render in the format the name says, in memory, then write atomically: an interrupted plot
    leaves no half a file.  `description` (the numbers the figure shows, as text) goes into the
    file's metadata, so a stored figure can be checked against the results without its pixels."""
    fmt = figure_format(output)
    metadata = {**_METADATA[fmt], _DESCRIPTION[fmt]: description}
    buf = BytesIO()
    with _style():
        fig.savefig(buf, format=fmt, dpi=PNG_DPI, metadata=metadata)
    atomic_write_bytes(output, buf.getvalue())
    return output


def _colors(n: int) -> Sequence:
    return matplotlib.colormaps["tab10" if n <= 10 else "tab20"].colors


def _legend_columns(names: Sequence[str], width: float) -> int:
    """As many legend columns as the longest name lets fit across the figure."""
    longest = max((len(n) for n in names), default=1) * _CHAR_WIDTH + 0.45  # the handle and the gap
    return max(1, min(len(names), int(width // longest)))


def _wrap(text: str, width: float) -> str:
    return "\n".join(textwrap.wrap(text, max(20, int(width / _CHAR_WIDTH))))


# --- bar chart ---------------------------------------------------------------------------------


def plot_results(
    results: Sequence[StoredResult],
    metric: str,
    output: Path | str,
    ci: Bootstrap | None = DEFAULT_BOOTSTRAP,
    judgments: Judgments | None = None,
    baseline: str | None = None,
    width: str = FIGURE_WIDTH,
    selection: Selection | None = None,
) -> Path:
    """Write the bar chart of `metric` for every stored (system, dataset) in the format `output`'s
    name says; returns its path.  The metric name is normalised as `leaderboard` does (`NDCG@10`); an
    unknown one is a ValueError.  `ci`: error bars from these bootstrap intervals (None: none); bars
    without per-query scores get none.  `baseline`: the system the marks compare with (None: bm25
    where stored, else no marks); `width`: a key of `FIGURE_WIDTHS`; `selection`: the systems and
    datasets shown, in its order (`report.selection`)."""
    figure_format(output)
    board = bar_board(results, metric, ci, judgments, baseline, selection)
    return _save(bar_figure(board, width), Path(output), bar_description(board))


def bar_board(
    results: Sequence[StoredResult],
    metric: str,
    ci: Bootstrap | None = DEFAULT_BOOTSTRAP,
    judgments: Judgments | None = None,
    baseline: str | None = None,
    selection: Selection | None = None,
) -> Leaderboard:
    """The table a bar chart draws: `leaderboard` with its intervals and its paired test against
    `baseline` (None: bm25 where stored)."""
    systems = sorted({r.system for r in results})
    if baseline is None and DEFAULT_BASELINE in systems:
        baseline = DEFAULT_BASELINE
    if baseline is not None and baseline not in systems:
        among = " among the systems chosen (-s)" if selection is not None and selection.systems else ""
        raise Mistake(f"baseline {baseline!r} has no stored results{among}{did_you_mean(baseline, systems)}")
    return leaderboard(
        results, metric=metric, ci=ci, judgments=judgments, baseline=baseline, selection=selection
    )


def bar_label(board: Leaderboard, row: str, system: str) -> str:
    """The label of one bar, as the table's cell writes it without its interval: the value with the
    table's decimals, its marks (†/‡, § for other data files, ◇) and its coverage `(k/n)`."""
    value = board.values.loc[row, system]
    if np.isnan(value):
        return "–"  # as the table writes no value
    judged = board.judged_marks is not None and bool(board.judged_marks.loc[row, system])
    marks = board.marks.loc[row, system] + (MIXED_MARK if (row, system) in board.mixed else "")
    return (
        fixed(value, board.decimals) + marks + (JUDGED_MARK if judged else "") + coverage(board, row, system)
    )


def bar_description(board: Leaderboard) -> str:
    """What a bar chart shows, as one line: the metric, the baseline and every bar's label."""
    against = f", marks against {board.baseline}" if board.baseline else ""
    rows = (
        f"{row}: " + ", ".join(f"{s} {bar_label(board, row, s)}" for s in board.system_columns)
        for row in board.values.index
    )
    return f"{board.metric}{against}; " + "; ".join(rows)


def bar_figure(board: Leaderboard, width: str = FIGURE_WIDTH) -> Figure:
    """The chart of `board`: per dataset row a bar per system with its interval, labelled as the
    table's cell (bold where the table bolds); the legend above, the marks' key under the axis."""
    inches = figure_width(width)
    values = board.values[board.system_columns]
    datasets, systems = list(values.index), list(values.columns)
    n_sys = len(systems)
    key = _bar_key(board, _axis_inches(datasets, inches))
    height = len(datasets) * (0.17 * n_sys + 0.12) + 0.75 + 0.16 * key.count("\n")
    height += 0.17 * math.ceil(n_sys / _legend_columns(systems, inches))
    with _style():
        fig = Figure(figsize=(inches, height), layout="constrained")
        ax = fig.add_subplot()
        centers = np.arange(len(datasets))[::-1].astype(float)  # first dataset at the top
        bar_h = 0.8 / n_sys
        colors = _colors(n_sys)
        for i, system in enumerate(systems):
            _draw_bars(ax, board, system, centers + 0.4 - bar_h * (i + 0.5), bar_h, colors[i % len(colors)])
        ax.set_yticks(centers, labels=datasets)
        for tick in ax.get_yticklabels():
            if tick.get_text() == AVERAGE:
                tick.set_fontweight("bold")
        ax.set_xlim(0, _bar_limit(board, datasets, systems, inches))
        top = max(1.0, _top(board, systems))  # no tick past 1 for a share: the room there is for labels
        ax.set_xticks([t for t in ax.get_xticks() if t <= top])
        ax.set_xlabel(f"{board.metric}\n{key}" if key else board.metric)
        ax.grid(axis="x", alpha=0.3)
        ax.set_axisbelow(True)
        for y in centers[:-1] - 0.5:
            ax.axhline(y, color="0.85", linewidth=0.5)
        ax.margins(y=0.01)
        fig.legend(loc="outside upper center", ncols=_legend_columns(systems, inches), frameon=False)
    return fig


def _draw_bars(ax, board: Leaderboard, system: str, ys: np.ndarray, bar_h: float, color) -> None:
    """One system's bars at heights `ys` (one per row), hatched where made from other data files,
    with their error bars and labels (right of the bar or its error bar; bold where the table bolds)."""
    rows = list(board.values.index)
    xs = board.values[system].to_numpy(dtype=float)
    bars = ax.barh(ys, np.nan_to_num(xs), height=bar_h * 0.92, label=system, color=color)
    for bar, row in zip(bars, rows, strict=True):
        if (row, system) in board.mixed:
            bar.set(hatch=MIXED_HATCH, edgecolor="white", linewidth=0)
    errors = _error_bars(board, system, xs)
    ends = np.nan_to_num(xs)
    if errors is not None:
        ax.errorbar(ends, ys, xerr=errors, fmt="none", ecolor="0.2", elinewidth=0.6, capsize=1.5)
        ends = ends + errors[1]
    for end, y, row in zip(ends, ys, rows, strict=True):
        weight = "bold" if board.best.loc[row, system] else "normal"
        label = bar_label(board, row, system)
        ax.annotate(
            label, (end, y), xytext=(2, 0), textcoords="offset points", va="center", fontweight=weight
        )


def _bar_key(board: Leaderboard, inches: float) -> str:
    """What the marks and error bars mean, in a line or two (the table's notes say it in full)."""
    parts = []
    if board.baseline is not None and len(board.system_columns) > 1:
        parts.append(
            f"{BETTER}/{WORSE}: significantly better/worse than {board.baseline} (paired test, Holm)"
        )
    if board.mixed:
        parts.append(f"{MIXED_MARK}, hatched: made from other data files than its row (not tested)")
    if board.judged_marks is not None and board.judged_marks.to_numpy().any():
        parts.append(f"{JUDGED_MARK}: few judged documents, may be underestimated")
    if board.bootstrap is not None:
        parts.append(f"bars: {board.bootstrap.level:.0%} bootstrap intervals")
    return "\n".join(_wrap(part, inches) for part in parts)


def _bar_limit(board: Leaderboard, datasets: list[str], systems: list[str], inches: float) -> float:
    """The x-axis end: past the longest bar (or interval) by the room its label needs."""
    top = _top(board, systems)
    label = max(len(bar_label(board, r, s)) for r in datasets for s in systems) * _CHAR_WIDTH + 0.1
    return max(top, 0.05) / max(1 - label / _axis_inches(datasets, inches), 0.5)


def _top(board: Leaderboard, systems: list[str]) -> float:
    """The longest bar, or interval, of `systems`."""
    ends = board.values[systems].to_numpy(dtype=float)
    if board.ci_high is not None:
        ends = np.fmax(ends, board.ci_high[systems].to_numpy(dtype=float))
    return float(np.nanmax(ends)) if np.isfinite(ends).any() else 1.0


def _axis_inches(datasets: list[str], inches: float) -> float:
    """About how wide the axis is: the figure less the dataset names on its left."""
    return max(inches - max(len(d) for d in datasets) * _CHAR_WIDTH - 0.5, 1.0)


def _error_bars(board: Leaderboard, system: str, xs: np.ndarray) -> np.ndarray | None:
    """matplotlib's asymmetric `xerr` (2 × datasets) of one system's bars; None without intervals."""
    if board.ci_low is None or system not in board.system_columns:
        return None
    low = board.ci_low[system].to_numpy(dtype=float)
    high = board.ci_high[system].to_numpy(dtype=float)
    if not np.isfinite(low).any():
        return None
    return np.nan_to_num(np.vstack([xs - low, high - xs]))


# --- learning curve ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CurveLine:
    """One dataset of a learning curve: the stored checkpoints' scores in step order with their
    bootstrap intervals (NaN: none, e.g. no per-query scores), and the heights of its baseline and
    reference lines (None: not stored / not published)."""

    dataset: str
    steps: tuple[int, ...]
    scores: tuple[float, ...]
    baseline: float | None = None
    reference: float | None = None
    low: tuple[float, ...] = ()  # empty: drawn without intervals
    high: tuple[float, ...] = ()
    marks: tuple[str, ...] = ()  # per checkpoint the table's marks against the baseline (†, ‡, §)


@dataclass(frozen=True)
class Curve:
    """What a learning-curve figure shows, so that it can be checked (and reused) without pixels."""

    run: str
    metric: str
    lines: tuple[CurveLine, ...]
    baseline: str | None  # the system of the dashed lines; None when it has no line
    reference: str | None  # the header `table --reference` gives the dotted lines' source
    notes: tuple[str, ...] = ()  # what the figure lacks and why (said on stderr by the CLI)
    bootstrap: Bootstrap | None = None  # how the error bars were drawn; None: no error bars


def learning_curve(
    results: Sequence[StoredResult],
    metric: str = "ndcg@10",
    run: str | None = None,
    baseline: str | None = None,
    reference: str | RefSpec | None = None,
    judgments: Judgments | None = None,
    reference_table: pd.DataFrame | None = None,
    ci: Bootstrap | None = DEFAULT_BOOTSTRAP,
) -> Curve:
    """The learning curve of training run `run` (None: the only one stored) for `metric` (normalised
    as `leaderboard` does).  `baseline`: the system of the dashed lines (None: bm25 when stored; a
    named one must be stored), and each checkpoint's marks (`table --baseline`'s paired test
    against it, §); `reference`: a `table --reference` SOURCE:SYSTEM; `ci`: each checkpoint's
    bootstrap interval, as the table computes it (None: none).  No checkpoint, an
    unknown run or several runs and none chosen: a `Mistake` naming what is there."""
    names = checkpoint_names(r.system for r in results)
    run = _pick_run(sorted({n.run for n in names.values()}), run, sorted({r.system for r in results}))
    steps = {s: n.step for s, n in names.items() if n.run == run}
    base = _baseline(results, baseline)
    stored_base = base in {r.system for r in results}
    chosen = [r for r in results if r.system in steps or r.system == base]
    board = leaderboard(
        chosen, metric=metric, judgments=judgments, ci=ci, baseline=base if stored_base else None
    )
    metric, values = board.metric, board.values
    header, ref_values = _reference_values(reference, metric, reference_table)
    lines = []
    for row in (r for r in values.index if r != AVERAGE):
        stored = sorted((step, s) for s, step in steps.items() if np.isfinite(values.loc[row, s]))
        if stored:
            systems = [s for _, s in stored]
            low, high = _intervals(board, row, systems)
            base_value = float(values.loc[row, base]) if stored_base else math.nan
            lines.append(
                CurveLine(
                    row,
                    tuple(step for step, _ in stored),
                    tuple(float(values.loc[row, s]) for s in systems),
                    base_value if np.isfinite(base_value) else None,
                    ref_values.get(row),
                    low,
                    high,
                    tuple(
                        board.marks.loc[row, s] + (MIXED_MARK if (row, s) in board.mixed else "")
                        for s in systems
                    ),
                )
            )
    notes = _curve_notes(lines, base, header)
    has_base = any(line.baseline is not None for line in lines)
    return Curve(run, metric, tuple(lines), base if has_base else None, header, notes, board.bootstrap)


def _intervals(board: Leaderboard, row: str, systems: list[str]) -> tuple[tuple[float, ...], ...]:
    if board.ci_low is None:
        return (), ()
    return tuple(tuple(float(frame.loc[row, s]) for s in systems) for frame in (board.ci_low, board.ci_high))


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


def _baseline(results: Sequence[StoredResult], baseline: str | None) -> str:
    """The system of the dashed lines and the marks: the one named, which must be stored, else bm25."""
    systems = sorted({r.system for r in results})
    if baseline is not None and baseline not in systems:
        raise Mistake(f"baseline {baseline!r} has no stored results{did_you_mean(baseline, systems)}")
    return baseline or DEFAULT_BASELINE


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


def curve_limits(curve: Curve) -> tuple[float, float]:
    """The y-axis of `curve`: every score, interval end, baseline and reference with a 5% margin,
    widened about its middle to at least `MIN_SPAN` (kept inside [0, 1] where the values allow), so
    that a difference of a few thousandths, inside the intervals, does not fill the height."""
    heights = [h for line in curve.lines for h in (*line.scores, *line.low, *line.high) if np.isfinite(h)]
    heights += [h for line in curve.lines for h in (line.baseline, line.reference) if h is not None]
    low, high = min(heights), max(heights)
    margin = 0.05 * (high - low)
    low, high = low - margin, high + margin
    if high - low < MIN_SPAN:
        middle = (low + high) / 2
        low, high = middle - MIN_SPAN / 2, middle + MIN_SPAN / 2
        shift = -low if low < 0 else 1 - high if high > 1 else 0.0
        low, high = low + shift, high + shift
    return low, high


def curve_figure(curve: Curve, width: str = FIGURE_WIDTH) -> Figure:
    """The figure of `curve`: per dataset (one colour each) the checkpoints' scores against the step,
    solid with a marker and an error bar (its interval) per stored checkpoint; its baseline dashed
    and its reference dotted, as horizontal lines in the same colour.  The legend, under the axis,
    names the datasets and the two line styles; the y-axis is `curve_limits`."""
    inches = figure_width(width)
    colors = _colors(len(curve.lines))
    with _style():
        fig = Figure(figsize=(inches, 0.45 * inches + 1.0), layout="constrained")  # height: below
        ax = fig.add_subplot()
        handles = []
        for i, line in enumerate(curve.lines):
            color = colors[i % len(colors)]
            (drawn,) = ax.plot(
                line.steps, line.scores, marker="o", markersize=3, color=color, label=line.dataset
            )
            handles.append(drawn)
            for step, score, mark in zip(line.steps, line.scores, line.marks, strict=False):
                if mark:  # the table's marks against the baseline, above the point
                    ax.annotate(
                        mark, (step, score), xytext=(3, 3), textcoords="offset points", color=color, ha="left"
                    )
            if line.low:
                scores, low, high = (np.array(v, dtype=float) for v in (line.scores, line.low, line.high))
                errors = np.nan_to_num(np.vstack([scores - low, high - scores]))
                ax.errorbar(
                    line.steps, scores, yerr=errors, fmt="none", ecolor=color, elinewidth=0.7, capsize=2
                )
            for value, name, style, width in (
                (line.baseline, curve.baseline, "--", 1),
                (line.reference, curve.reference, ":", 1.5),
            ):
                if value is not None:
                    ax.axhline(
                        value, color=color, linestyle=style, linewidth=width, label=f"{name}: {line.dataset}"
                    )
        handles += _style_handles(curve)
        steps = sorted({s for line in curve.lines for s in line.steps})
        if len(steps) <= 12:
            ax.set_xticks(steps)
        ax.set_ylim(*curve_limits(curve))
        ax.set_title(_wrap(_curve_key(curve), inches - 0.2))
        ax.set_xlabel(CURVE_XLABEL)
        ax.set_ylabel(curve.metric)
        ax.grid(alpha=0.3)
        columns = _legend_columns([h.get_label() for h in handles], inches)
        fig.legend(handles=handles, loc="outside lower center", ncols=columns, frameon=False)
        fig.set_size_inches(inches, 0.45 * inches + 0.9 + 0.17 * math.ceil(len(handles) / columns))
    return fig


def _curve_key(curve: Curve) -> str:
    """The title: the run, what the error bars are and what the marks mean (those shown)."""
    parts = [curve.run]
    if curve.bootstrap:
        parts.append(f"error bars: {curve.bootstrap.level:.0%} bootstrap intervals")
    shown = {m for line in curve.lines for mark in line.marks for m in mark}
    if shown & {BETTER, WORSE}:
        parts.append(
            f"{BETTER}/{WORSE}: significantly better/worse than {curve.baseline} (paired test, Holm)"
        )
    if MIXED_MARK in shown:
        parts.append(f"{MIXED_MARK}: made from other data files than {curve.baseline}'s")
    return "; ".join(parts)


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


def plot_curve(curve: Curve, output: Path | str, width: str = FIGURE_WIDTH) -> Path:
    """Write `curve_figure(curve, width)` in the format `output`'s name says (atomically); returns its
    path."""
    figure_format(output)
    return _save(curve_figure(curve, width), Path(output), curve_description(curve))


def curve_description(curve: Curve) -> str:
    """What a learning curve shows, as one line: per dataset each step's score and marks."""
    lines = (
        f"{line.dataset}: "
        + ", ".join(
            f"{step} {score:.{DECIMALS}f}{mark}"
            for step, score, mark in zip(
                line.steps, line.scores, line.marks or [""] * len(line.steps), strict=True
            )
        )
        for line in curve.lines
    )
    return f"{curve.metric} over training of {curve.run}; " + "; ".join(lines)
