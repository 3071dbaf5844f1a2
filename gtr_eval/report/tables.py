"""Leaderboard tables: datasets × systems, published reference columns, significance marks.

A table is built once (`leaderboard`) as numbers plus marks, then rendered (`render`) as markdown,
CSV, LaTeX or HTML; the notes that explain every mark and averaging rule travel with the table in
markdown, LaTeX and HTML, since a table quoted without them is easy to misread.  CSV is kept clean
for `pandas.read_csv` (no comment rows): its notes are `render_notes` (`gtr-eval table` writes them
to stderr or `--notes FILE`).

With `ci`, every system cell gets a bootstrap interval over queries (`uncertainty`), the Average
one from the datasets' draws averaged, and with a baseline a Δ column per system: the paired
difference with its interval on the same draws, Holm-widened across the table's datasets.  On a
dataset whose qrels judge non-relevant documents too, a system whose Judged@10 falls under
`JUDGED_RATIO` × the baseline's (bm25's when no baseline is given) is marked ◇: its score may be
underestimated, since the unjudged documents it ranks are scored as non-relevant.
"""

from __future__ import annotations

import csv
import html
import io
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from tabulate import tabulate

from .. import defaults
from ..checkpoints import CheckpointName, parse_checkpoint_system
from ..data.registry import CQADUPSTACK_SUBSETS, DATASET_ORDER
from ..errors import Mistake, resolve, unknown
from ..evaluation import CONDENSED as CONDENSED_SUFFIX
from ..evaluation import is_condensed, is_judged, normalise_metric
from ..judgments import Judgments, is_derived
from ..paths import BUNDLED
from ..results import StoredResult, recorded_files
from ..uncertainty import Bootstrap, Draws, bootstrap_pvalue, holm_levels, percentile_interval
from .selection import Selection, select

PACKAGE_REFERENCES = BUNDLED / "published_scores.csv"
CQADUPSTACK = "cqadupstack"
CQADUPSTACK_SUBFORUMS = CQADUPSTACK_SUBSETS
AVERAGE = "Average"
MTEB_FOLDER = "mteb"  # `--reference mteb:DIR`: a folder of MTEB result files
DECIMALS = defaults.DECIMALS
BETTER, WORSE = "†", "‡"
MIXED_MARK = "§"  # a result made from other data files than the rest of its row
TESTS = ("ttest", "wilcoxon")
JUDGED_MARK = "◇"
JUDGED_AT = 10  # the cut-off of the Judged@k that marks, and that `show=("judged",)` shows
JUDGED_RATIO = 0.8  # marked: Judged@10 under this share of the baseline's, on a dataset judging non-relevant
JUDGED_REFERENCE = "bm25"  # whose Judged@10 a system is compared with when there is no baseline
SHOW = ("judged",)
CI_STYLES = ("brackets", "pm")
BEST_SUFFIX = " (best)"  # `--best-checkpoint`: a training run's checkpoints as one system `RUN (best)`


@dataclass(frozen=True)
class RefSpec:
    """One published column: the figures `source` lists for `system`."""

    source: str
    system: str

    @classmethod
    def parse(cls, text: str) -> RefSpec:
        """`SOURCE:SYSTEM`; split at the last colon, since sources carry free text.  `mteb:DIR` names a
        folder of MTEB result files (split at the first colon, so DIR may hold colons)."""
        if text.startswith(MTEB_FOLDER + ":") and text[len(MTEB_FOLDER) + 1 :].strip():
            return cls(MTEB_FOLDER, text[len(MTEB_FOLDER) + 1 :].strip())
        source, sep, system = text.rpartition(":")
        if not sep or not source.strip() or not system.strip():
            raise ValueError(f"reference {text!r} is not SOURCE:SYSTEM")
        return cls(source.strip(), system.strip())


@dataclass
class Leaderboard:
    """Numbers and marks of one table; `render` turns it into text."""

    metric: str
    values: pd.DataFrame  # rows: datasets then AVERAGE; columns: systems, references, deltas
    system_columns: list[str]
    reference_columns: list[str]
    delta_columns: list[str]
    best: pd.DataFrame  # bool, same shape as values
    marks: pd.DataFrame  # "", BETTER or WORSE
    pvalues: pd.DataFrame  # Holm-adjusted p-values; NaN where not tested
    notes: list[str] = field(default_factory=list)
    baseline: str | None = None
    bootstrap: Bootstrap | None = None  # set when the board has intervals
    ci_low: pd.DataFrame | None = None  # interval of each system cell (NaN: none), same shape as values
    ci_high: pd.DataFrame | None = None
    diff: pd.DataFrame | None = None  # system − baseline per row (with a baseline and intervals)
    diff_low: pd.DataFrame | None = None  # its paired interval, Holm-widened across the datasets
    diff_high: pd.DataFrame | None = None
    diff_level: pd.DataFrame | None = None  # the confidence level each Δ interval was drawn at
    judged: pd.DataFrame | None = None  # Judged@10 of each system cell, when shown or checked
    judged_marks: pd.DataFrame | None = None  # bool: ◇, the score may be underestimated
    show_judged: bool = False
    steps: dict[tuple[str, str], int] = field(default_factory=dict)  # (row, column): the step shown (@N)
    decimals: int = DECIMALS  # what the text formats show, and what best is decided on
    covers: dict[str, str] = field(default_factory=dict)  # column -> `k/n` when its Average is partial
    mixed: dict[tuple[str, str], str] = field(default_factory=dict)  # (row, column) -> why it is marked
    partial: dict[tuple[str, str], str] = field(default_factory=dict)  # (row, column) -> `k/12` (CQADupStack)

    @property
    def value_columns(self) -> list[str]:
        return self.system_columns + self.reference_columns

    @property
    def diff_columns(self) -> list[str]:
        """The systems with a Δ-vs-baseline column (rendered after the value columns)."""
        if self.diff is None or self.baseline is None:
            return []
        return [s for s in self.system_columns if s != self.baseline]


@dataclass(frozen=True)
class Table:
    """A built table as data and as text (what `api.table` returns): `frame` one row per cell, `text`
    rendered in `fmt`; `str(table)` is the text."""

    board: Leaderboard
    fmt: str = "markdown"
    ci_style: str = "brackets"

    @property
    def text(self) -> str:
        return render(self.board, self.fmt, ci_style=self.ci_style)

    def render(self, fmt: str) -> str:
        return render(self.board, fmt, ci_style=self.ci_style)

    @property
    def frame(self) -> pd.DataFrame:
        return table_frame(self.board)

    def __str__(self) -> str:
        return self.text


def table_frame(board: Leaderboard) -> pd.DataFrame:
    """The board's cells in long form, unrounded: dataset (a row of the table, `Average` too), column,
    kind (system, reference, delta), value, ci_low, ci_high, best, mark (†/‡ against the baseline),
    p (its Holm-adjusted p-value), judged (Judged@10), underjudged (◇), covers (`k/n`: an Average over
    fewer of the table's datasets than it has) and mixed (the note of a cell made from other data files
    than the rest of its row)."""
    kinds = {c: "system" for c in board.system_columns}
    kinds.update({c: "reference" for c in board.reference_columns})
    kinds.update({c: "delta" for c in board.delta_columns})
    records = []
    for row in board.values.index:
        for col in board.values.columns:

            def at(frame, r=row, c=col):
                return frame.loc[r, c] if frame is not None and c in frame.columns else math.nan

            records.append(
                {
                    "dataset": row,
                    "column": col,
                    "kind": kinds.get(col, "system"),
                    "value": board.values.loc[row, col],
                    "ci_low": at(board.ci_low),
                    "ci_high": at(board.ci_high),
                    "best": bool(board.best.loc[row, col]),
                    "mark": board.marks.loc[row, col],
                    "p": board.pvalues.loc[row, col],
                    "judged": at(board.judged),
                    "underjudged": bool(_judged_mark_text(board, row, col)),
                    "covers": board.covers.get(col, "") if row == AVERAGE else "",
                    "mixed": board.mixed.get((row, col), ""),
                }
            )
    return pd.DataFrame.from_records(records)


# --- references --------------------------------------------------------------------------------


def load_references(path: Path | str | None = None) -> pd.DataFrame:
    """Published figures (source, system, dataset, metric, value, note); the package copy by default."""
    path = Path(path) if path else PACKAGE_REFERENCES
    refs = pd.read_csv(path, dtype={"source": str, "system": str, "dataset": str, "metric": str})
    missing = {"source", "system", "dataset", "metric", "value"} - set(refs.columns)
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)}")
    refs["note"] = refs["note"].fillna("") if "note" in refs else ""
    refs["value"] = pd.to_numeric(refs["value"], errors="raise")
    return refs


def resolve_reference(refs: pd.DataFrame, spec: RefSpec) -> RefSpec:
    """Exact source name, or an unambiguous prefix of one (`gtr-paper-table` for its long name)."""
    sources = sorted(refs["source"].unique())
    matches = [s for s in sources if s == spec.source] or [s for s in sources if s.startswith(spec.source)]
    if len(matches) != 1:
        if matches:
            raise Mistake(f"reference source {spec.source!r} matches several: {', '.join(matches)}")
        raise unknown("reference source", spec.source, sources, "references")
    systems = sorted(refs.loc[refs["source"] == matches[0], "system"].unique())
    if spec.system not in systems:
        hint = (
            f" (nor is {spec.system!r} a folder of MTEB result files)" if spec.source == MTEB_FOLDER else ""
        )
        problem = f"source {matches[0]!r} has no system {spec.system!r}{hint}"
        raise unknown("system", spec.system, systems, "references", problem=problem)
    return RefSpec(matches[0], spec.system)


def _is_mteb_folder(spec: RefSpec) -> bool:
    return spec.source == MTEB_FOLDER and Path(spec.system).expanduser().is_dir()


def mteb_folder_spec(spec: RefSpec) -> RefSpec:
    """`mteb:DIR` as the (source, system) its rows carry in the reference table; other specs as given.

    `mteb:NAME` where NAME is not a folder keeps its old meaning, a prefix of the `mteb-results` source.
    """
    if not _is_mteb_folder(spec):
        return spec
    from .mteb import find_model_folder, read_model_folder

    folder = find_model_folder(Path(spec.system).expanduser())
    return RefSpec(f"{MTEB_FOLDER}:{folder}", read_model_folder(folder).name)


def with_mteb_folders(refs: pd.DataFrame, specs: Sequence[RefSpec]) -> pd.DataFrame:
    """`refs` plus the rows of every `mteb:DIR` folder among `specs`."""
    from .mteb import read_model_folder, reference_rows

    rows = []
    for spec in specs:
        if _is_mteb_folder(spec):
            model = read_model_folder(Path(spec.system).expanduser())
            rows += reference_rows(model, f"{MTEB_FOLDER}:{model.path}")
    return pd.concat([refs, pd.DataFrame(rows)], ignore_index=True) if rows else refs


def _reference_header(spec: RefSpec) -> str:
    if spec.source.startswith(MTEB_FOLDER + ":"):  # a folder: its revision tells two columns apart
        revision = Path(spec.source).name
        return (
            f"{spec.system}{'' if revision == 'no_revision_available' else '@' + revision[:8]} [MTEB files]"
        )
    return f"{spec.system} [{spec.source.split(' (')[0]}]"


# --- collecting our numbers --------------------------------------------------------------------


@dataclass
class _Cell:
    value: float
    per_query: dict[str, float] | None
    # The per-query scores by the stored dataset they come from (`scifact`; a CQADupStack row: its
    # subforums): each is redrawn on its own, and the row is the plain mean of their means.
    parts: dict[str, dict[str, float]] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # the data files it was made from: path -> sha256
    written: float = 0.0  # when its record was written (the newest of a CQADupStack row's)
    partial: str = ""  # `k/12`: a CQADupStack cell over fewer subforums than BEIR's figure


def _written(r: StoredResult) -> float:
    """When `r`'s record was written (0 for results built in memory)."""
    try:
        return r.path.stat().st_mtime
    except OSError:
        return 0.0


def _collect(results: Iterable[StoredResult], metric: str) -> tuple[dict[str, dict[str, _Cell]], list[str]]:
    """{row: {system: cell}} with CQADupStack subforums collapsed into one row; plus notes.  A split
    other than the dataset's own is a row of its own (`scifact [train]`)."""
    rows: dict[str, dict[str, _Cell]] = {}
    subforums: dict[str, dict[str, StoredResult]] = {}
    for r in results:
        if r.dataset.startswith(CQADUPSTACK + "/") and r.default_split:
            subforums.setdefault(r.system, {})[r.dataset.split("/", 1)[1]] = r
            continue
        value, per_query = r.metrics.get(metric), r.per_query.get(metric)
        rows.setdefault(r.label, {})[r.system] = _Cell(
            float(value) if value is not None else math.nan,
            per_query,
            {r.label: per_query} if per_query else {},
            recorded_files(r.manifest),
            _written(r),
        )
    notes: list[str] = []
    if subforums:
        label, cells, note = _collapse_cqadupstack(subforums, metric)
        rows[label] = cells
        notes.append(note)
    return rows, notes


def subforum_mean(
    subs: Mapping[str, StoredResult], metric: str, subforums: Sequence[str]
) -> tuple[float, dict[str, float] | None]:
    """BEIR's CQADupStack figure: the plain mean of the subforums' scores, not a mean pooled over
    their queries (tables and the paper layout both use this one definition).  Also returns the
    per-query scores of all subforums (ids prefixed by subforum) for significance tests, or None
    when a subforum lacks them."""
    values = [float(subs[f].metrics[metric]) for f in subforums]
    pooled: dict[str, float] | None = {}
    for f in subforums:
        pq = subs[f].per_query.get(metric)
        if pq is None or pooled is None:
            pooled = None
            continue
        pooled.update({f"{f}/{q}": v for q, v in pq.items()})
    return (float(np.mean(values)) if values else math.nan), pooled


def _collapse_cqadupstack(
    by_system: dict[str, dict[str, StoredResult]], metric: str
) -> tuple[str, dict[str, _Cell], str]:
    """One row per system's subforums, each system on its own (so another system never changes it):
    BEIR's figure, the mean of the 12, where it has all 12; else the mean of those it has, marked
    `k/12` (`_Cell.partial`), which its Average, best and the tests leave out."""
    n = len(CQADUPSTACK_SUBFORUMS)
    cells, short = {}, []
    for system, subs in by_system.items():
        have = sorted(f for f, r in subs.items() if metric in r.metrics)
        value, pooled = subforum_mean(subs, metric, have)
        whole = set(have) >= set(CQADUPSTACK_SUBFORUMS)
        parts = {subs[f].label: subs[f].per_query.get(metric) for f in have}
        files = {f"{f}/{path}": sha for f in have for path, sha in recorded_files(subs[f].manifest).items()}
        written = max((_written(subs[f]) for f in have), default=0.0)
        partial = "" if whole or not have else f"{len(have)}/{n}"
        if partial:
            short.append(f"{system} {partial}")
        cells[system] = _Cell(
            value, pooled if whole else None, parts if whole and all(parts.values()) else {}, files, written,
            partial,
        )  # fmt: skip
    note = f"{CQADUPSTACK}: mean of its {n} subforums (BEIR's convention)"
    if short:
        note += (
            f"; where fewer are stored ({', '.join(short)}) the cell is the mean of those, marked (k/{n}): "
            "not BEIR's figure, so it is left out of that system's Average, not compared for best and "
            "not tested"
        )
    return CQADUPSTACK, cells, note + "."


def _order_rows(rows: Iterable[str], selection: Selection | None = None) -> list[str]:
    """Rows in the order of the selection's dataset patterns, then BEIR's order, then by name."""
    rank = {name: i for i, name in enumerate(DATASET_ORDER)}
    selection = selection or Selection()

    def key(row: str) -> tuple[int, int, str]:
        base = re.split(r" [(\[]", row)[0]  # `cqadupstack (11/12)`, `scifact [train]`
        return (selection.dataset_rank(row), rank.get(base, len(rank)), row)

    return sorted(rows, key=key)


# --- building ----------------------------------------------------------------------------------


def leaderboard(
    results: Sequence[StoredResult],
    metric: str = "ndcg@10",
    references: Sequence[RefSpec] = (),
    baseline: str | None = None,
    alpha: float = 0.05,
    diff_against: str | None = None,
    test: str = "ttest",
    reference_table: pd.DataFrame | None = None,
    ci: Bootstrap | None = None,
    show: Sequence[str] = (),
    judgments: Judgments | None = None,
    draws: Draws | None = None,
    best_checkpoint: bool = False,
    selection: Selection | None = None,
    decimals: int = DECIMALS,
) -> Leaderboard:
    """Build the table for `metric` (a name as papers write it, `NDCG@10`, `R@100`, is normalised; an
    unknown one is a ValueError naming the closest); see the notes it carries for every rule it applies.

    `ci`: add bootstrap intervals (and, with `baseline`, paired Δ intervals).  `show=("judged",)`: add
    each system's Judged@10.  `judgments` finds the qrels behind the results (Judged@k and condensed
    lists of results that do not store them; the ◇ check), `draws` caches bootstrap draws across
    boards (the report builds one per metric and baseline).  `best_checkpoint`: each training run's
    checkpoints (`NAME@step-N`) as one system `NAME (best)`, its cell per dataset the best stored
    checkpoint there, with its step (`board.steps`).  `selection`: only the systems and datasets it
    matches, columns and rows in its order (`report.selection`).  `decimals`: what the text formats
    show (and what best is decided on); CSV keeps every digit."""
    selection = selection or Selection()
    results = select(results, selection)
    metric = normalise_metric(metric, known=sorted({m for r in results for m in r.metrics}))
    if not results:
        raise ValueError("no stored results to tabulate")
    unknown = sorted(set(show) - set(SHOW))
    if unknown:
        raise ValueError(f"unknown show {unknown}; choose from {SHOW}")
    judgments = judgments if judgments is not None else Judgments()
    results, derived_note = _with_metric(results, metric, judgments)
    picks = _best_checkpoints(results, metric) if best_checkpoint else None
    if picks is not None:
        results = picks.results
    cells, notes = _collect(results, metric)
    systems = sorted({r.system for r in results}, key=lambda s: (selection.system_rank(s), s))
    shown = " among the systems selected" if selection.systems else ""
    baseline, diff_against = (
        None if name is None else resolve(role, name, systems, "table", problem=f"{role} {name!r} has no stored results{shown}")
        for name, role in ((baseline, "baseline"), (diff_against, "diff-against system"))
    )  # fmt: skip
    rows = _order_rows(cells, selection)
    values = pd.DataFrame(
        [[cells[r][s].value if s in cells[r] else math.nan for s in systems] for r in rows],
        index=rows,
        columns=systems,
        dtype=float,
    )
    ref_cols, delta_cols = _add_references(values, metric, references, diff_against, reference_table, notes)
    value_cols = systems + ref_cols
    partial = {(r, s): c.partial for r in rows for s, c in cells[r].items() if c.partial}
    covers = _add_average(values, systems, ref_cols, delta_cols, notes, set(partial))
    mixed, mixed_notes = _mixed_data(cells, rows, systems, baseline)
    for s in systems:
        if any((row, s) in mixed for row in rows):
            mixed[(AVERAGE, s)] = "its Average mixes results made from other data files"
    if mixed_notes:
        mixed_notes.append(
            f"{MIXED_MARK} on an Average: it includes a {MIXED_MARK} cell, so it is not compared for best."
        )
    best = _best_mask(values, value_cols, set(covers) | set(partial) | set(mixed), decimals)
    marks = pd.DataFrame("", index=values.index, columns=values.columns)
    pvalues = pd.DataFrame(math.nan, index=values.index, columns=values.columns)
    if baseline is not None:
        skip = set(partial) | set(mixed)
        _significance(cells, rows, systems, baseline, metric, alpha, test, marks, pvalues, notes, skip)
    notes += mixed_notes
    notes.insert(0, _metric_note(metric, decimals))
    notes.insert(1, _best_note())
    if derived_note:
        notes.insert(2, derived_note)
    board = Leaderboard(metric, values, systems, ref_cols, delta_cols, best, marks, pvalues, notes, baseline)
    board.decimals, board.covers, board.mixed, board.partial = decimals, covers, mixed, partial
    if picks is not None:
        _show_steps(board, picks)
    if ci is not None:
        _intervals(board, cells, rows, draws if draws is not None else Draws(ci), ci)
    _judged(board, results, judgments, "judged" in show)
    return board


def _metric_note(metric: str, decimals: int = DECIMALS) -> str:
    return f"Metric: {metric}, shown with {_count(decimals, 'decimal')}; '–' means no value."


def _count(n: int, noun: str) -> str:
    """`1 dataset`, `2 datasets`."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _best_note() -> str:
    return (
        "Best value in each row (system and reference columns, compared after rounding, ties all "
        "marked) is bold; CSV keeps every digit and names it in the `best` column."
    )


def _add_references(
    values: pd.DataFrame,
    metric: str,
    references: Sequence[RefSpec],
    diff_against: str | None,
    reference_table: pd.DataFrame | None,
    notes: list[str],
) -> tuple[list[str], list[str]]:
    """Append published columns (and Δ columns against `diff_against`) in place."""
    if not references:
        if diff_against is not None:
            raise ValueError("diff_against needs at least one reference column")
        return [], []
    refs = load_references() if reference_table is None else reference_table
    refs = with_mteb_folders(refs, references)
    ref_cols, delta_cols = [], []
    for spec in references:
        spec, by_dataset = _reference_column(refs, spec, metric)
        header = _reference_header(spec)
        values[header] = [
            float(by_dataset.at[row, "value"]) if row in by_dataset.index else math.nan
            for row in values.index
        ]
        ref_cols.append(header)
        listed = refs.loc[(refs["source"] == spec.source) & (refs["system"] == spec.system), "metric"]
        notes.append(_reference_note(header, spec, by_dataset, metric, sorted(set(listed)), values.index))
    if diff_against is not None:
        for header in ref_cols:
            delta = "Δ ours−ref" if len(ref_cols) == 1 else f"Δ ours−{header}"
            values[delta] = values[diff_against] - values[header]
            delta_cols.append(delta)
        notes.append(f"Δ: ours = {diff_against!r}, minus the reference column, both unrounded.")
    return ref_cols, delta_cols


def _reference_column(refs: pd.DataFrame, spec: RefSpec, metric: str) -> tuple[RefSpec, pd.DataFrame]:
    """The resolved `spec` and its published rows for `metric`, one per dataset (indexed by it)."""
    spec = resolve_reference(refs, mteb_folder_spec(spec))
    sel = refs[(refs["source"] == spec.source) & (refs["system"] == spec.system) & (refs["metric"] == metric)]
    return spec, sel.drop_duplicates("dataset").set_index("dataset")


def reference_values(
    spec: RefSpec, metric: str, reference_table: pd.DataFrame | None = None
) -> tuple[str, dict[str, float]]:
    """The column header `table --reference` gives `spec`, and its published `metric` by dataset: the
    learning curve reads references exactly as the table does (same names, same prefixes, `mteb:DIR`)."""
    refs = with_mteb_folders(load_references() if reference_table is None else reference_table, [spec])
    spec, by_dataset = _reference_column(refs, spec, metric)
    return _reference_header(spec), {str(d): float(v) for d, v in by_dataset["value"].items()}


def _reference_note(
    header: str,
    spec: RefSpec,
    by_dataset: pd.DataFrame,
    metric: str,
    listed: Sequence[str] = (),
    shown: Iterable[str] = (),
) -> str:
    """What a reference column is; the source's remarks on the datasets shown (`shown`)."""
    shown = set(shown)
    if spec.source.startswith(MTEB_FOLDER + ":"):
        note = (
            f"`{header}`: {metric} of {spec.system!r} read from the MTEB result files in {spec.source[5:]!r}"
        )
    else:
        note = f"`{header}`: published {metric} of {spec.system!r} from source {spec.source!r}"
    if by_dataset.empty:
        has = f"; it lists {', '.join(listed)} (`gtr-eval references`)" if listed else ""
        note += f" (the source lists no {metric} for it{has})"
    remarks = sorted(
        {f"{d}: {n}" for d, n in by_dataset["note"].items() if n and n != "split=test" and d in shown}
    )
    if remarks:
        note += "; source remarks: " + "; ".join(remarks)
    if "unconfirmed" in spec.source or "second-hand" in spec.source:
        note += ". Second-hand figures: check against the original before citing"
    return note + "."


def _add_average(
    values: pd.DataFrame,
    systems: list[str],
    ref_cols: list[str],
    delta_cols: list[str],
    notes: list[str],
    set_aside: set[tuple[str, str]],
) -> dict[str, str]:
    """Append the Average row: each column's plain mean over the table's datasets it has a value on
    (cells in `set_aside`, a CQADupStack row over fewer than its 12 subforums, do not count), so
    adding or removing a column never changes another's.  Returns `k/n` for each system or reference
    column that has fewer than all n: its Average is marked so and not compared for best."""
    rows = [r for r in values.index if r != AVERAGE]
    covers = {}
    for col in values.columns:
        have = [r for r in rows if pd.notna(values.loc[r, col]) and (r, col) not in set_aside]
        values.loc[AVERAGE, col] = values.loc[have, col].mean() if have else math.nan
        if col in systems + ref_cols and len(have) < len(rows):
            covers[col] = f"{len(have)}/{len(rows)}"
    note = (
        f"Average: plain mean over the table's {_count(len(rows), 'dataset')}, each column on its own, so "
        "another column never changes it"
    )
    if covers:
        short = ", ".join(f"{c} ({k})" for c, k in covers.items())
        note += (
            f"; a column with fewer shows the mean of those it has, marked (k/{len(rows)}), and is not "
            f"compared for best: {short}"
        )
    if delta_cols:
        note += "; a Δ column averages over the datasets both of its sides have"
    notes.append(note + ".")
    return covers


def _best_mask(
    values: pd.DataFrame, value_cols: list[str], set_aside: set, decimals: int = DECIMALS
) -> pd.DataFrame:
    """Per row, the best of the value columns as shown (rounded to `decimals`), leaving out the cells
    in `set_aside`: (row, column) pairs, or a column name for its Average (one over fewer datasets)."""
    best = pd.DataFrame(False, index=values.index, columns=values.columns)
    rounded = values[value_cols].round(decimals)
    for row in values.index:
        cols = [
            c for c in value_cols if (row, c) not in set_aside and not (row == AVERAGE and c in set_aside)
        ]
        present = rounded.loc[row, cols].dropna()
        if len(present) >= 2:
            best.loc[row, present.index[present == present.max()]] = True
    return best


# --- results made from other data files --------------------------------------------------------


def mixed_data(
    results: Sequence[StoredResult], baseline: str | None = None
) -> tuple[dict[tuple[str, str], str], list[str]]:
    """(row, system) -> why, for each stored result made from other data files than its row's
    reference (the rule of the table's § mark, `_mixed_data`; rows as tables name them, CQADupStack
    subforums each a row of their own), and the notes saying so: what the paper table and the figures
    mark, so every reading command flags the same results."""
    cells: dict[str, dict[str, _Cell]] = {}
    for r in results:
        cells.setdefault(r.label, {})[r.system] = _Cell(
            math.nan, None, {}, recorded_files(r.manifest), _written(r)
        )
    return _mixed_data(cells, list(cells), sorted({r.system for r in results}), baseline)


def _mixed_data(
    cells: dict[str, dict[str, _Cell]], rows: list[str], systems: list[str], baseline: str | None
) -> tuple[dict[tuple[str, str], str], list[str]]:
    """The cells made from other data files than their row's reference result (the baseline's, else
    the row's most recently written one), by the digests the results record; a cell's reason, and one
    note per row naming the files that differ.  Marked cells are never compared for best or tested
    against the reference (`leaderboard` marks their Averages too)."""
    mixed: dict[tuple[str, str], str] = {}
    notes = []
    for row in rows:
        have = {s: c for s, c in cells[row].items() if s in systems and c.files}
        if len(have) < 2:
            continue
        ref = baseline if baseline in have else max(have, key=lambda s: (have[s].written, s))
        theirs = have[ref].files
        differ = {}
        for s, c in have.items():
            paths = sorted(p for p in set(c.files) & set(theirs) if c.files[p] != theirs[p])
            if s != ref and paths:
                differ[s] = paths
                mixed[(row, s)] = (
                    f"{row}: {', '.join(paths)} differ{'s' if len(paths) == 1 else ''} from {ref}'s"
                )
        if differ:
            files = sorted({p for paths in differ.values() for p in paths})
            notes.append(
                f"{MIXED_MARK} {row}: {', '.join(files)} differ{'s' if len(files) == 1 else ''} from {ref}'s "
                f"for {', '.join(sorted(differ))} (made from other data files): not compared with {ref} "
                "for best, nor tested against it; rerun them on the same data to compare."
            )
    return mixed, notes


# --- best checkpoint per dataset ---------------------------------------------------------------

_SUBFORUMS = CQADUPSTACK + "/*"  # the group of a run's CQADupStack subforums: one step for all 12


@dataclass
class _Picks:
    """A table's checkpoints collapsed: the results it shows, and what was picked from what."""

    results: list[StoredResult]
    steps: dict[tuple[str, str], int]  # (best system, dataset group) -> the step picked
    checkpoints: dict[str, list[StoredResult]]  # best system -> every stored result of its run


def _group(r: StoredResult) -> str:
    """What one step is picked for: a dataset row; CQADupStack's subforums together, since its row
    is their mean and a row mixing steps would be no checkpoint's score."""
    return _SUBFORUMS if r.dataset.startswith(CQADUPSTACK + "/") and r.default_split else r.label


def _row_group(row: str) -> str:
    return _SUBFORUMS if row == CQADUPSTACK or row.startswith(CQADUPSTACK + " (") else row


def checkpoint_names(systems: Iterable[str]) -> dict[str, CheckpointName]:
    """The checkpoint systems among `systems` (`NAME@step-N`), each read back as (run, step); a
    ValueError when two names give one run the same step (`x@step-1000`, `x@step-01000`), since
    their scores would land on one point."""
    names: dict[str, CheckpointName] = {}
    for system in sorted(set(systems)):
        if (name := parse_checkpoint_system(system)) is not None:
            names[system] = name
    seen: dict[CheckpointName, str] = {}
    for system, name in names.items():
        if name in seen:
            raise ValueError(
                f"systems {seen[name]!r} and {system!r} are both step {name.step} of {name.run!r}"
            )
        seen[name] = system
    return names


def _best_checkpoints(results: Sequence[StoredResult], metric: str) -> _Picks:
    """Each training run's checkpoints as one system `RUN (best)`: per dataset the stored result of
    the step best at `metric` (ties: the earliest); other systems as they are.  A `Mistake` when
    there is no checkpoint, since a table silently without the collapse would read as one with it."""
    others, groups = [], {}
    names = checkpoint_names(r.system for r in results)
    for r in results:
        name = names.get(r.system)
        if name is None:
            others.append(r)
            continue
        groups.setdefault((name.run + BEST_SUFFIX, _group(r)), {}).setdefault(name.step, []).append(r)
    if not groups:
        systems = sorted({r.system for r in results})
        raise Mistake(
            "best checkpoint: no checkpoint systems (NAME@step-N) among the stored results; "
            f"systems: {', '.join(systems) or 'none'}"
        )
    clash = sorted({s for s, _ in groups} & {r.system for r in others})
    if clash:
        raise ValueError(f"best checkpoint: a stored system is already named {clash[0]!r}")
    picks = _Picks(list(others), {}, {})
    for (system, group), by_step in groups.items():
        step = _best_step(by_step, metric)
        picks.results += [replace(r, system=system) for r in by_step[step]]
        picks.steps[(system, group)] = step
        picks.checkpoints.setdefault(system, []).extend(r for rs in by_step.values() for r in rs)
    picks.results.sort(key=lambda r: (r.system, r.dataset))
    return picks


def _best_step(by_step: Mapping[int, Sequence[StoredResult]], metric: str) -> int:
    """The step with the best `metric` (CQADupStack: the mean of its subforums, among the steps with
    the most of them); ties go to the earliest step."""

    def key(step: int) -> tuple[int, float, int]:
        values = [float(r.metrics[metric]) for r in by_step[step] if metric in r.metrics]
        values = [v for v in values if not math.isnan(v)]
        return len(values), (float(np.mean(values)) if values else -math.inf), -step

    return max(by_step, key=key)


def _show_steps(board: Leaderboard, picks: _Picks) -> None:
    """Record the step behind every `RUN (best)` cell and say, in a note near the top, how it was
    chosen: on the evaluated split itself, which makes the figure optimistic."""
    for row in board.values.index:
        for system in board.system_columns:
            step = picks.steps.get((system, _row_group(row)))
            if step is not None and pd.notna(board.values.loc[row, system]):
                board.steps[(row, system)] = step
    averaged = _average_rows(board)
    notes = [_best_checkpoint_note(board, s, picks, averaged[s]) for s in sorted(picks.checkpoints)]
    board.notes[1:1] = notes


def _best_checkpoint_note(board: Leaderboard, system: str, picks: _Picks, rows: Sequence[str]) -> str:
    run = system.removesuffix(BEST_SUFFIX)
    n = len({r.system for r in picks.checkpoints[system]})
    note = (
        f"{system}: per dataset, the best {board.metric} of the {_count(n, 'stored checkpoint')} of training run "
        f"{run!r} ({run}@step-N), at the step shown (@N). The step is chosen on the evaluated split "
        "itself (test; dev for MS MARCO), so these scores are optimistic (selection on test data), and "
        "their marks and intervals do not account for the selection. Its Average is the mean of the "
        "per-dataset bests, each at its own step"
    )
    single = _best_single_checkpoint(picks.checkpoints[system], board.metric, rows)
    if single is not None:
        step, mean = single
        note += f"; the one checkpoint best on average over the same datasets: step {step} ({fixed(mean, board.decimals)})"
    return note + "."


def _best_single_checkpoint(
    results: Sequence[StoredResult], metric: str, rows: Sequence[str]
) -> tuple[int, float] | None:
    """(step, Average) of the checkpoint with the best mean over `rows` among those stored on all of
    them (ties: the earliest); None when none is."""
    cells, _ = _collect(results, metric)
    means = {}
    for system in {r.system for r in results}:
        values = [cells[row][system].value for row in rows if row in cells and system in cells[row]]
        if rows and len(values) == len(rows) and not any(math.isnan(v) for v in values):
            means[parse_checkpoint_system(system).step] = float(np.mean(values))
    if not means:
        return None
    step = max(means, key=lambda s: (means[s], -s))
    return step, means[step]


# --- significance ------------------------------------------------------------------------------


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (step-down, monotone, capped at 1)."""
    order = np.argsort(pvalues, kind="stable")
    m = len(pvalues)
    adjusted = [0.0] * m
    running = 0.0
    for step, i in enumerate(order):
        running = max(running, min(1.0, (m - step) * float(pvalues[i])))
        adjusted[i] = running
    return adjusted


def paired_test(a: Sequence[float], b: Sequence[float], test: str = "ttest") -> float:
    """Two-sided p-value of a paired test; identical scores give p = 1 (no evidence of a difference)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = x - y
    if np.allclose(diff, 0.0, rtol=0, atol=1e-12):
        return 1.0
    if test == "ttest":
        if np.allclose(diff, diff[0], rtol=0, atol=1e-12):
            return 0.0  # the same nonzero gain on every query: t is infinite
        p = _ttest_rel_pvalue(diff)
    elif test == "wilcoxon":
        from scipy import stats  # 0.7 s to import: only the Wilcoxon test pays it

        p = stats.wilcoxon(x, y, zero_method="wilcox").pvalue
    else:
        raise ValueError(f"unknown test {test!r}; choose from {TESTS}")
    return 1.0 if np.isnan(p) else float(p)


def _ttest_rel_pvalue(diff: np.ndarray) -> float:
    """`scipy.stats.ttest_rel`'s two-sided p-value (the same formula: t = mean / sqrt(var/n), twice
    Student's t tail with n − 1 degrees of freedom), without importing scipy.stats, whose import alone
    takes longer than a table (scipy.special, which holds the tail, is a quarter of it)."""
    from scipy import special

    n = len(diff)
    t = np.mean(diff) / np.sqrt(np.var(diff, ddof=1) / n)
    return float(2 * special.stdtr(n - 1, -abs(t)))


def _significance(
    cells: dict[str, dict[str, _Cell]],
    rows: list[str],
    systems: list[str],
    baseline: str,
    metric: str,
    alpha: float,
    test: str,
    marks: pd.DataFrame,
    pvalues: pd.DataFrame,
    notes: list[str],
    skip: set[tuple[str, str]] = frozenset(),
) -> None:
    """Per system: a paired test per dataset against `baseline`, Holm-corrected across datasets; not
    on the cells in `skip` (made from other data files, or CQADupStack over fewer subforums)."""
    if test not in TESTS:
        raise ValueError(f"unknown test {test!r}; choose from {TESTS}")
    untested: set[str] = set()
    set_aside = []
    for system in [s for s in systems if s != baseline]:
        tested: list[tuple[str, float, float]] = []  # (row, p, mean difference)
        for row in rows:
            if (row, system) in skip:
                set_aside.append(f"{system} on {row}")
                continue
            pair = _paired_scores(cells[row], system, baseline)
            if pair is None:
                untested.add(row)
                continue
            a, b = pair
            tested.append((row, paired_test(a, b, test), float(np.mean(a - b))))
        for (row, _, diff), p_adj in zip(tested, holm([p for _, p, _ in tested]), strict=True):
            pvalues.loc[row, system] = p_adj
            if p_adj < alpha and diff != 0:
                marks.loc[row, system] = BETTER if diff > 0 else WORSE
    name = "paired two-sided t-test" if test == "ttest" else "two-sided Wilcoxon signed-rank test"
    note = (
        f"{BETTER} / {WORSE}: significantly better / worse than baseline {baseline!r} ({name} over "
        f"per-query {metric}, Holm–Bonferroni correction over the datasets tested per system, α={alpha})."
    )
    if untested:
        note += f" Not tested (missing per-query scores): {', '.join(sorted(untested))}."
    if set_aside:
        note += f" Not tested (other data files, or fewer CQADupStack subforums): {', '.join(set_aside)}."
    notes.append(note)


def _paired_scores(row: dict[str, _Cell], system: str, baseline: str) -> tuple[np.ndarray, np.ndarray] | None:
    if system not in row or baseline not in row:
        return None
    ours, base = row[system].per_query, row[baseline].per_query
    if not ours or not base:
        return None
    qids = sorted(set(ours) & set(base))
    if len(qids) < 2:
        return None
    return np.array([ours[q] for q in qids]), np.array([base[q] for q in qids])


# --- derived metrics: Judged@k and condensed lists of results that do not store them ------------


def _with_metric(
    results: Sequence[StoredResult], metric: str, judgments: Judgments
) -> tuple[list[StoredResult], str]:
    """`results`, each holding `metric` where it can be had: stored, else (Judged@k, condensed lists)
    computed from its run file and qrels; plus a note saying so (empty when nothing was computed)."""
    if not is_derived(metric):
        return list(results), ""
    out, computed, missing = [], 0, []
    for r in results:
        scores = None if metric in r.metrics else judgments.per_query(r, metric)
        if scores:
            mean = float(np.mean(list(scores.values())))
            r = replace(r, metrics={**r.metrics, metric: mean}, per_query={**r.per_query, metric: scores})
            computed += 1
        elif metric not in r.metrics:
            missing.append(f"{r.system} on {r.label} ({judgments.missing(r) or 'no per-query scores'})")
        out.append(r)
    what = (
        "the condensed list: unjudged documents removed before scoring (Sakai 2007), so unjudged is no "
        "longer non-relevant; not comparable with the uncondensed score, nor across pools"
        if is_condensed(metric)
        else "the share of the top k judged for the query, any grade (ir_measures' Judged@k)"
    )
    note = f"{metric}: {what}."
    if computed:
        note += f" Computed from the run file and qrels of {_count(computed, 'result')} that do not store it."
    if missing:
        note += f" Not available for {'; '.join(missing)}: pass --data-dir where the dataset folders are."
    return out, note


# --- uncertainty: bootstrap intervals ----------------------------------------------------------


def _intervals(
    board: Leaderboard, cells: dict[str, dict[str, _Cell]], rows: list[str], draws: Draws, config: Bootstrap
) -> None:
    """Fill the board's intervals (and with a baseline its Δ intervals) from bootstrap draws."""
    frame = partial(pd.DataFrame, math.nan, index=board.values.index, columns=board.values.columns)
    board.bootstrap, board.ci_low, board.ci_high = config, frame(), frame()
    metric, systems = board.metric, board.system_columns
    for name, columns in _columns_by_dataset(cells, rows, systems, metric).items():
        draws.of(name, columns)  # one set of resamples per dataset serves all its systems
    found = {
        (row, s): d
        for row in rows
        for s in systems
        if (d := _cell_draws(draws, cells[row], s, metric)) is not None
    }
    lacking = sorted(
        f"{s} on {row}"
        for row in rows
        for s in systems
        if s in cells[row]
        and not math.isnan(cells[row][s].value)
        and (row, s) not in found
        and (row, s) not in board.partial  # fewer subforums: no interval, for the reason its note gives
    )
    averaged = _average_rows(board)
    for s in systems:
        if averaged[s] and all((row, s) in found for row in averaged[s]):
            found[(AVERAGE, s)] = np.mean([found[(row, s)] for row in averaged[s]], axis=0)
    for (row, s), d in found.items():
        board.ci_low.loc[row, s], board.ci_high.loc[row, s] = percentile_interval(d, config.level)
    board.notes.append(_interval_note(config, lacking))
    if board.baseline is not None:
        _diff_intervals(board, cells, rows, draws, config, averaged)


def _columns_by_dataset(
    cells: dict[str, dict[str, _Cell]], rows: list[str], systems: list[str], metric: str
) -> dict[str, dict[tuple[str, str], dict[str, float]]]:
    out: dict[str, dict[tuple[str, str], dict[str, float]]] = {}
    for row in rows:
        for s in systems:
            for name, pq in (cells[row][s].parts if s in cells[row] else {}).items():
                out.setdefault(name, {})[(s, metric)] = pq
    return out


def _cell_draws(draws: Draws, row: dict[str, _Cell], system: str, metric: str) -> np.ndarray | None:
    """The redrawn means of one cell: each stored dataset behind it redrawn on its own, then the
    plain mean of their means (one dataset: its draws; CQADupStack: the mean of its subforums')."""
    cell = row.get(system)
    if cell is None or not cell.parts:
        return None
    parts = [draws.of(name, {(system, metric): pq})[(system, metric)] for name, pq in cell.parts.items()]
    return np.mean(parts, axis=0)


def _paired_draws(
    draws: Draws, row: dict[str, _Cell], system: str, baseline: str, metric: str
) -> np.ndarray | None:
    """The redrawn mean differences system − baseline on one row, both redrawn with the same queries:
    the difference of their draws when they score the same queries, else draws of the per-query
    differences over the queries both score."""
    a, b = row.get(system), row.get(baseline)
    if a is None or b is None or not a.parts or set(a.parts) != set(b.parts):
        return None
    out = []
    for name, pa in a.parts.items():
        pb = b.parts[name]
        if set(pa) == set(pb):
            got = draws.of(name, {(system, metric): pa, (baseline, metric): pb})
            out.append(got[(system, metric)] - got[(baseline, metric)])
            continue
        common = sorted(set(pa) & set(pb))
        if len(common) < 2:
            return None
        key = ("Δ", system, baseline, metric)
        out.append(draws.of(name, {key: {q: pa[q] - pb[q] for q in common}})[key])
    return np.mean(out, axis=0)


def _average_rows(board: Leaderboard) -> dict[str, list[str]]:
    """Per system column, the rows its Average is the mean of (as `_add_average` decides)."""
    values = board.values
    rows = [r for r in values.index if r != AVERAGE]
    return {
        s: [r for r in rows if pd.notna(values.loc[r, s]) and (r, s) not in board.partial]
        for s in board.system_columns
    }


def _diff_intervals(
    board: Leaderboard,
    cells: dict[str, dict[str, _Cell]],
    rows: list[str],
    draws: Draws,
    config: Bootstrap,
    averaged: dict[str, list[str]],
) -> None:
    """Per system: the paired Δ interval on each dataset at the Holm level its bootstrap p-value
    earns among the datasets tested for that system; the Average's at the plain level."""
    frame = partial(pd.DataFrame, math.nan, index=board.values.index, columns=board.system_columns)
    board.diff, board.diff_low, board.diff_high, board.diff_level = frame(), frame(), frame(), frame()
    base, metric = board.baseline, board.metric
    tested_counts = []
    for s in board.diff_columns:
        tested = [
            (row, d)
            for row in rows
            if (row, s) not in board.mixed
            and (row, s) not in board.partial
            and (d := _paired_draws(draws, cells[row], s, base, metric)) is not None
        ]
        levels = holm_levels([bootstrap_pvalue(d) for _, d in tested], config.level)
        for (row, d), level in zip(tested, levels, strict=True):
            _set_diff(board, row, s, d, level)
        same_rows = averaged[s] == averaged[base]  # else the two Averages are over other datasets
        if averaged[s] and same_rows and {r for r, _ in tested} >= set(averaged[s]):
            by_row = dict(tested)
            _set_diff(board, AVERAGE, s, np.mean([by_row[r] for r in averaged[s]], axis=0), config.level)
        tested_counts.append(len(tested))
    if tested_counts:
        board.notes.append(_diff_note(board, config, max(tested_counts)))


def _set_diff(board: Leaderboard, row: str, system: str, d: np.ndarray, level: float) -> None:
    board.diff.loc[row, system] = board.values.loc[row, system] - board.values.loc[row, board.baseline]
    board.diff_low.loc[row, system], board.diff_high.loc[row, system] = percentile_interval(d, level)
    board.diff_level.loc[row, system] = level


def _interval_note(config: Bootstrap, lacking: Sequence[str]) -> str:
    note = (
        f"[low, high]: {config.describe()}: each dataset's queries are redrawn on their own, the same "
        "draws for every system; the Average's by redrawing within each dataset, then averaging "
        "(CQADupStack: within each subforum). It measures the sampling of queries, not of datasets, "
        "qrels or pools."
    )
    if lacking:
        note += f" No interval (no per-query scores): {', '.join(lacking)}."
    return note


def _diff_note(board: Leaderboard, config: Bootstrap, m: int) -> str:
    alpha = 1 - config.level
    return (
        f"Δ SYSTEM−{board.baseline}: the difference of the means, with its paired interval on the same "
        f"resamples, Holm-corrected over the datasets of each system (up to {m}): the dataset with the "
        f"i-th smallest bootstrap p-value gets level 1−{alpha:g}/({m}−i+1) until the first Holm keeps, "
        "which and all after it get that one's level; so an interval excludes 0 where Holm on the "
        f"bootstrap p-values rejects. The Average's interval is a plain {config.level:.0%} one. The marks "
        "come from the significance test, so near α the two may disagree."
    )


# --- judged: how much of each top 10 the assessors saw -----------------------------------------


def _judged(board: Leaderboard, results: Sequence[StoredResult], judgments: Judgments, show: bool) -> None:
    """Judged@10 of every cell when shown; and the ◇ check: on a dataset whose qrels judge
    non-relevant documents too, a system whose Judged@10 is under JUDGED_RATIO × the reference's."""
    name = f"judged@{JUDGED_AT}"
    systems = board.system_columns
    ref = board.baseline or (JUDGED_REFERENCE if JUDGED_REFERENCE in systems else None)
    check = (
        ref is not None and len(systems) > 1 and not (is_judged(board.metric) or is_condensed(board.metric))
    )
    pooled = {r.label for r in results if check and "/" not in r.dataset and judgments.judges_nonrelevant(r)}
    pooled &= set(board.values.index)
    if not (show or pooled):
        return
    wanted = results if show else [r for r in results if r.label in pooled]
    have, note = _with_metric(wanted, name, judgments)
    cells, _ = _collect(have, name)
    judged = pd.DataFrame(math.nan, index=board.values.index, columns=systems)
    for row, by_system in cells.items():
        for s, cell in by_system.items():
            if row in judged.index and s in systems:
                judged.loc[row, s] = cell.value
    averaged = _average_rows(board)
    for s in systems:
        if averaged[s] and judged.loc[averaged[s], s].notna().all():
            judged.loc[AVERAGE, s] = judged.loc[averaged[s], s].mean()
    board.judged, board.show_judged = judged, show
    board.judged_marks = pd.DataFrame(False, index=board.values.index, columns=systems)
    lines = [_judged_mark(board, row, s, ref) for row in sorted(pooled) for s in systems if s != ref]
    lines = [line for line in lines if line]
    if show:
        board.notes.append(
            f"(n% judged): Judged@{JUDGED_AT}, the share of the system's top {JUDGED_AT} that the qrels "
            "judge for the query, any grade. On qrels of positives only it is a precision, not a gap."
        )
    if lines:
        board.notes.append(
            f"{JUDGED_MARK}: Judged@{JUDGED_AT} under {JUDGED_RATIO:g}× {ref}'s on a dataset whose qrels judge "
            "non-relevant documents too (the registry's judges_nonrelevant; for other datasets, a "
            "grade 0 in the qrels): the unjudged documents it ranks count as non-relevant, so its "
            f"score may be underestimated ({board.metric}{CONDENSED_SUFFIX} scores the condensed lists). "
            "Positives-only qrels are not checked."
        )
        board.notes.extend(lines)
    if note and (show or lines) and "Not available" in note:
        board.notes.append(note)


def _judged_mark(board: Leaderboard, row: str, system: str, ref: str) -> str:
    """Mark one cell when its Judged@10 is well below the reference's; the note line, or ''."""
    ours, theirs = board.judged.loc[row, system], board.judged.loc[row, ref]
    if pd.isna(ours) or pd.isna(theirs) or pd.isna(board.values.loc[row, system]) or theirs <= 0:
        return ""
    if ours >= JUDGED_RATIO * theirs:
        return ""
    board.judged_marks.loc[row, system] = True
    return (
        f"{JUDGED_MARK} {system} on {row}: {board.metric} may be underestimated: {ours:.0%} of its top "
        f"{JUDGED_AT} is judged, {ref}'s {theirs:.0%}."
    )


# --- rendering ---------------------------------------------------------------------------------

FORMATS = ("markdown", "csv", "latex", "html")


def render(board: Leaderboard, fmt: str = "markdown", ci_style: str = "brackets") -> str:
    """The board as text.  With intervals, `ci_style` "brackets" writes `0.6863 [0.6563, 0.7156]`,
    "pm" `0.6863 ±0.0297` (half the interval's width; a percentile interval may be asymmetric); CSV
    always has them as separate low and high columns."""
    if ci_style not in CI_STYLES:
        raise ValueError(f"unknown ci_style {ci_style!r}; choose from {CI_STYLES}")
    if fmt == "markdown":
        return _render_markdown(board, ci_style)
    if fmt == "csv":
        return _render_csv(board)
    if fmt == "latex":
        return _render_latex(board, ci_style)
    if fmt == "html":
        return _render_html(board, ci_style)
    raise ValueError(f"unknown format {fmt!r}; choose from {FORMATS}")


def fixed(value: float, decimals: int = DECIMALS, signed: bool = False) -> str:
    """`value` with `decimals` decimals (`signed`: with its sign); a value that rounds to zero is
    `0.0000`, never `-0.0000`."""
    text = f"{value:{'+' if signed else ''}.{decimals}f}"
    return f"{0.0:.{decimals}f}" if float(text) == 0 else text


def _number(board: Leaderboard, row: str, col: str) -> str:
    value = board.values.loc[row, col]
    if pd.isna(value):
        return "–"
    return fixed(value, board.decimals, signed=col in board.delta_columns)


def _interval_text(low: float, high: float, style: str, decimals: int, signed: bool = False) -> str:
    """` [low, high]` or ` ±half-width`; '' when there is no interval."""
    if pd.isna(low) or pd.isna(high):
        return ""
    if style == "pm":
        return f" ±{fixed((high - low) / 2, decimals)}"
    return f" [{fixed(low, decimals, signed)}, {fixed(high, decimals, signed)}]"


def coverage(board: Leaderboard, row: str, col: str) -> str:
    """` (k/n)` (the report shows it too) after a value over fewer datasets (Average) or subforums (CQADupStack) than it has."""
    if pd.isna(board.values.loc[row, col]):
        return ""
    k = board.covers.get(col) if row == AVERAGE else board.partial.get((row, col))
    return f" ({k})" if k else ""


def _cell_suffix(board: Leaderboard, row: str, col: str, style: str) -> str:
    """What follows a number and its marks: its coverage (k/n); for a system its step, interval and
    Judged@10 when shown."""
    text = coverage(board, row, col)
    if col not in board.system_columns:
        return text
    step = board.steps.get((row, col))
    text += f" @{step}" if step is not None else ""
    if board.ci_low is not None:
        text += _interval_text(board.ci_low.loc[row, col], board.ci_high.loc[row, col], style, board.decimals)
    if board.show_judged and board.judged is not None and pd.notna(board.judged.loc[row, col]):
        text += f" ({board.judged.loc[row, col]:.0%} judged)"
    return text


def _judged_mark_text(board: Leaderboard, row: str, col: str) -> str:
    marked = board.judged_marks is not None and col in board.judged_marks and board.judged_marks.loc[row, col]
    return JUDGED_MARK if marked else ""


def _mixed_mark_text(board: Leaderboard, row: str, col: str) -> str:
    return MIXED_MARK if (row, col) in board.mixed else ""


def _diff_headers(board: Leaderboard) -> list[str]:
    return [f"Δ {s}−{board.baseline}" for s in board.diff_columns]


def _diff_text(board: Leaderboard, row: str, system: str, style: str) -> str:
    value = board.diff.loc[row, system]
    if pd.isna(value):
        return "–"
    low, high = board.diff_low.loc[row, system], board.diff_high.loc[row, system]
    return fixed(value, board.decimals, signed=True) + _interval_text(low, high, style, board.decimals, True)


def _styled_rows(board: Leaderboard, bold, escape, style: str = "brackets") -> list[list[str]]:
    """Rows of cells: escaped dataset name, then numbers with bold, significance and judged marks,
    intervals; then the Δ-vs-baseline columns."""
    out = []
    for row in board.values.index:
        cells = [escape(row)]
        for col in board.values.columns:
            text = escape(_number(board, row, col))
            marks = (
                board.marks.loc[row, col]
                + _mixed_mark_text(board, row, col)
                + _judged_mark_text(board, row, col)
            )
            cells.append(
                (bold(text) if board.best.loc[row, col] else text)
                + escape(marks)
                + escape(_cell_suffix(board, row, col, style))
            )
        cells += [escape(_diff_text(board, row, s, style)) for s in board.diff_columns]
        out.append(cells)
    return out


def _headers(board: Leaderboard) -> list[str]:
    return ["dataset", *board.values.columns, *_diff_headers(board)]


def _render_markdown(board: Leaderboard, style: str = "brackets") -> str:
    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    headers = [esc(h) for h in _headers(board)]
    rows = _styled_rows(board, lambda t: f"**{t}**", esc, style)
    table = tabulate(
        rows,
        headers=headers,
        tablefmt="pipe",
        colalign=("left",) + ("right",) * (len(headers) - 1),
        disable_numparse=True,
    )
    return table + "\n\nNotes:\n" + "".join(f"- {n}\n" for n in board.notes)


def _full(value: float) -> str:
    """A CSV number: every digit (the shortest text that reads back as the same float)."""
    return "" if pd.isna(value) else repr(float(value))


def _render_csv(board: Leaderboard) -> str:
    """Plain numbers; intervals as `SYSTEM low` / `SYSTEM high` columns, each Δ with its own low and
    high, Judged@10 and the ◇ mark in columns of their own."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    sig_cols = [s for s in board.system_columns if s != board.baseline] if board.baseline else []
    ci_cols = board.system_columns if board.ci_low is not None else []
    judged_cols = board.system_columns if board.show_judged else []
    mark_cols = (
        board.system_columns if board.judged_marks is not None and board.judged_marks.any().any() else []
    )
    header = ["dataset", *board.values.columns, *(f"{s} sig" for s in sig_cols)]
    header += [f"{s} {end}" for s in ci_cols for end in ("low", "high")]
    header += [f"{d}{end}" for d in _diff_headers(board) for end in ("", " low", " high")]
    header += [f"{s} judged@{JUDGED_AT}" for s in judged_cols] + [f"{s} judged mark" for s in mark_cols]
    step_cols = [s for s in board.system_columns if any(col == s for _, col in board.steps)]
    header += [f"{s} step" for s in step_cols]
    flagged = {c for c in board.covers} | {c for _, c in board.partial} | {c for _, c in board.mixed}
    flag_cols = [c for c in board.values.columns if c in flagged]
    header += [f"{c} covers" for c in flag_cols] + [f"{c} mixed" for c in flag_cols]
    writer.writerow([*header, "best"])
    for row in board.values.index:
        line = [row, *(_full(v) for v in board.values.loc[row, board.values.columns])]
        line += [board.marks.loc[row, s] for s in sig_cols]
        line += [_full(f.loc[row, s]) for s in ci_cols for f in (board.ci_low, board.ci_high)]
        line += [
            _full(f.loc[row, s])
            for s in board.diff_columns
            for f in (board.diff, board.diff_low, board.diff_high)
        ]
        line += [_full(board.judged.loc[row, s]) for s in judged_cols]
        line += [_judged_mark_text(board, row, s) for s in mark_cols]
        line += [str(board.steps.get((row, s), "")) for s in step_cols]
        line += [coverage(board, row, c).strip(" ()") for c in flag_cols]
        line += [board.mixed.get((row, c), "") for c in flag_cols]
        line.append(";".join(c for c in board.values.columns if board.best.loc[row, c]))
        writer.writerow(line)
    return buf.getvalue()


def render_notes(board: Leaderboard) -> str:
    """The notes of a CSV table, one `# ` line each (CSV itself stays clean for `pandas.read_csv`)."""
    return "".join(f"# {note}\n" for note in board.notes)


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",  # re-ranked systems are named `bm25>>model`
    ">": r"\textgreater{}",
    "Δ": r"$\Delta$",
    "−": "$-$",
    "–": "--",
    "α": r"$\alpha$",
    "±": r"$\pm$",
    "×": r"$\times$",
    BETTER: r"$^\dagger$",
    WORSE: r"$^\ddagger$",
    JUDGED_MARK: r"$^\diamond$",
    MIXED_MARK: r"$^\S$",
    "`": "",
    "²": r"\textsuperscript{2}",
    "≥": r"$\geq$",
    "≤": r"$\leq$",
    "→": r"$\rightarrow$",
    "·": r"$\cdot$",
    "…": r"\ldots{}",
    "\u2019": "'",
    "\u201c": "``",
    "\u201d": "''",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(c, c) for c in text)


def _render_latex(board: Leaderboard, style: str = "brackets") -> str:
    rows = _styled_rows(board, lambda t: rf"\textbf{{{t}}}", latex_escape, style)
    headers = _headers(board)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\begin{tabular}{l" + "r" * (len(headers) - 1) + "}",
        r"\toprule",
        " & ".join(latex_escape(h) for h in headers) + r" \\",
        r"\midrule",
    ]
    for row, cells in zip(board.values.index, rows, strict=True):
        if row == AVERAGE:
            lines.append(r"\midrule")
        lines.append(" & ".join(cells) + r" \\")
    caption = f"{board.metric} per dataset (BEIR, zero-shot). The best value of each row is in bold."
    lines[2:2] = [rf"\caption{{{latex_escape(caption)}}}"]
    lines += [r"\bottomrule", r"\end{tabular}"]
    if board.notes:  # the notes as small lines below the tabular: a caption stays two sentences
        lines += [r"\par\smallskip\footnotesize"] + [latex_escape(n) + r"\par" for n in board.notes]
    return "\n".join([*lines, r"\end{table}"]) + "\n"


def _render_html(board: Leaderboard, style: str = "brackets") -> str:
    def esc(text: str) -> str:
        return html.escape(text, quote=True)

    rows = _styled_rows(board, lambda t: f"<b>{t}</b>", esc, style)
    head = "".join(f"<th>{esc(h)}</th>" for h in _headers(board))
    body = []
    for row, cells in zip(board.values.index, rows, strict=True):
        cls = ' class="average"' if row == AVERAGE else ""
        tds = f"<th>{cells[0]}</th>" + "".join(f'<td align="right">{c}</td>' for c in cells[1:])
        body.append(f"<tr{cls}>{tds}</tr>")
    notes = "".join(f"<li>{esc(n)}</li>" for n in board.notes)
    return (
        f'<table class="leaderboard">\n<thead><tr>{head}</tr></thead>\n<tbody>\n'
        + "\n".join(body)
        + f'\n</tbody>\n</table>\n<ul class="notes">{notes}</ul>\n'
    )


# --- what `--reference` accepts ----------------------------------------------------------------


@dataclass(frozen=True)
class ReferenceEntry:
    """One SOURCE:SYSTEM of the reference table: what to type, and what it has per metric."""

    spec: str  # what `--reference` takes: the shortest unambiguous source prefix, then the system
    source: str
    system: str
    datasets: dict[str, list[str]]  # metric -> datasets, in the BEIR order


def _short_source(source: str, sources: Sequence[str]) -> str:
    """The source's name up to its remark in parentheses when that prefix names it alone."""
    short = source.split(" (")[0]
    return short if [s for s in sources if s.startswith(short)] == [source] else source


def reference_catalogue(refs: pd.DataFrame | None = None, metric: str | None = None) -> list[ReferenceEntry]:
    """Every SOURCE:SYSTEM of `refs` (the bundled published_scores.csv by default), with the datasets
    it has per metric; `metric`: only those that have it (and only that metric)."""
    refs = load_references() if refs is None else refs
    if metric is not None:
        metric = normalise_metric(metric, known=sorted(set(refs["metric"])))
        refs = refs[refs["metric"] == metric]
    sources = sorted(refs["source"].unique())
    entries = []
    for (source, system), rows in refs.groupby(["source", "system"], sort=True):
        by_metric: dict[str, list[str]] = {}
        for m, sub in rows.groupby("metric", sort=True):
            by_metric[m] = _order_rows(sub["dataset"].unique())
        entries.append(
            ReferenceEntry(f"{_short_source(source, sources)}:{system}", source, system, by_metric)
        )
    return entries


def render_references(refs: pd.DataFrame | None = None, metric: str | None = None, width: int = 100) -> str:
    """The catalogue as text: per SOURCE:SYSTEM, its full source name, then a line per metric with
    the datasets."""
    import textwrap

    entries = reference_catalogue(refs, metric)
    if not entries:
        return f"No reference has {metric}.\n"
    lines = [
        *textwrap.wrap(
            "Published columns for `gtr-eval table --reference SOURCE:SYSTEM`, from the bundled "
            "published_scores.csv (a unique prefix of SOURCE is enough):",
            width,
        ),
        "",
    ]
    for e in entries:
        lines.append(e.spec if e.spec.startswith(e.source + ":") else f"{e.spec}    (source: {e.source})")
        for m, datasets in e.datasets.items():
            head = f"    {m:<11} {len(datasets):>2} dataset{'s' if len(datasets) != 1 else ''}: "
            lines += textwrap.wrap(
                ", ".join(datasets),
                width,
                initial_indent=head,
                subsequent_indent=" " * 8,
                break_on_hyphens=False,
            )
    lines += [
        "",
        "Also: mteb:DIR, a folder of MTEB result files (one model's), read as a column of its own.",
    ]
    return "\n".join(lines) + "\n"
