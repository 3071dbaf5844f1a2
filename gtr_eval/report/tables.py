"""Leaderboard tables: datasets × systems, published reference columns, significance marks.

A table is built once (`leaderboard`) as numbers plus marks, then rendered (`render`) as markdown,
CSV, LaTeX or HTML; the notes that explain every mark and averaging rule travel with the table in
each format, since a table quoted without them is easy to misread.
"""

from __future__ import annotations

import csv
import html
import io
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from tabulate import tabulate

from ..data.registry import CQADUPSTACK_SUBSETS, DATASET_ORDER
from ..paths import BUNDLED
from ..results import StoredResult

PACKAGE_REFERENCES = BUNDLED / "published_scores.csv"
CQADUPSTACK = "cqadupstack"
CQADUPSTACK_SUBFORUMS = CQADUPSTACK_SUBSETS
AVERAGE = "Average"
MTEB_FOLDER = "mteb"  # `--reference mteb:DIR`: a folder of MTEB result files
DECIMALS = 4
BETTER, WORSE = "†", "‡"
TESTS = ("ttest", "wilcoxon")


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

    @property
    def value_columns(self) -> list[str]:
        return self.system_columns + self.reference_columns


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
        raise ValueError(f"reference source {spec.source!r} matches {matches or 'nothing'}; known: {sources}")
    systems = sorted(refs.loc[refs["source"] == matches[0], "system"].unique())
    if spec.system not in systems:
        hint = (
            f" (nor is {spec.system!r} a folder of MTEB result files)" if spec.source == MTEB_FOLDER else ""
        )
        raise ValueError(f"source {matches[0]!r} has no system {spec.system!r}{hint}; it has {systems}")
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


def _collect(results: Iterable[StoredResult], metric: str) -> tuple[dict[str, dict[str, _Cell]], list[str]]:
    """{row: {system: cell}} with CQADupStack subforums collapsed into one row; plus notes.  A split
    other than the dataset's own is a row of its own (`scifact [train]`)."""
    rows: dict[str, dict[str, _Cell]] = {}
    subforums: dict[str, dict[str, StoredResult]] = {}
    for r in results:
        if r.dataset.startswith(CQADUPSTACK + "/") and r.default_split:
            subforums.setdefault(r.system, {})[r.dataset.split("/", 1)[1]] = r
            continue
        value = r.metrics.get(metric)
        rows.setdefault(r.label, {})[r.system] = _Cell(
            float(value) if value is not None else math.nan, r.per_query.get(metric)
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
    """Mean over the subforums every system has (BEIR's figure when that is all 12)."""
    with_metric = {s: {f for f, r in subs.items() if metric in r.metrics} for s, subs in by_system.items()}
    common = sorted(set.intersection(*with_metric.values()))
    complete = set(common) >= set(CQADUPSTACK_SUBFORUMS)
    label = CQADUPSTACK if complete else f"{CQADUPSTACK} ({len(common)}/{len(CQADUPSTACK_SUBFORUMS)})"
    cells = {system: _Cell(*subforum_mean(subs, metric, common)) for system, subs in by_system.items()}
    if complete:
        note = f"{CQADUPSTACK}: mean of its {len(CQADUPSTACK_SUBFORUMS)} subforums (BEIR's convention)."
    else:
        note = (
            f"{label}: only {len(common)} of {len(CQADUPSTACK_SUBFORUMS)} subforums are stored for every "
            "system, so the row is their mean, not the official figure; it is left out of the Average "
            "and gets no reference values."
        )
    return label, cells, note


def _order_rows(rows: Iterable[str]) -> list[str]:
    rank = {name: i for i, name in enumerate(DATASET_ORDER)}

    def key(row: str) -> tuple[int, str]:
        base = re.split(r" [(\[]", row)[0]  # `cqadupstack (11/12)`, `scifact [train]`
        return (rank.get(base, len(rank)), row)

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
) -> Leaderboard:
    """Build the table for `metric`; see the notes it carries for every rule it applies."""
    if not results:
        raise ValueError("no stored results to tabulate")
    cells, notes = _collect(results, metric)
    systems = sorted({r.system for r in results})
    for name, role in ((baseline, "baseline"), (diff_against, "diff-against system")):
        if name is not None and name not in systems:
            raise ValueError(f"{role} {name!r} has no stored results; systems: {systems}")
    if baseline is not None:
        systems.remove(baseline)
        systems.insert(0, baseline)
    rows = _order_rows(cells)
    values = pd.DataFrame(
        [[cells[r][s].value if s in cells[r] else math.nan for s in systems] for r in rows],
        index=rows,
        columns=systems,
        dtype=float,
    )
    ref_cols, delta_cols = _add_references(values, metric, references, diff_against, reference_table, notes)
    value_cols = systems + ref_cols
    _add_average(values, value_cols, notes)
    best = _best_mask(values, value_cols)
    marks = pd.DataFrame("", index=values.index, columns=values.columns)
    pvalues = pd.DataFrame(math.nan, index=values.index, columns=values.columns)
    if baseline is not None:
        _significance(cells, rows, systems, baseline, metric, alpha, test, marks, pvalues, notes)
    notes.insert(0, _metric_note(metric))
    notes.insert(1, _best_note())
    return Leaderboard(metric, values, systems, ref_cols, delta_cols, best, marks, pvalues, notes, baseline)


def _metric_note(metric: str) -> str:
    return f"Metric: {metric}, shown with {DECIMALS} decimals; '–' means no value."


def _best_note() -> str:
    return (
        "Best value in each row (system and reference columns, compared after rounding, ties all "
        "marked) is bold; CSV keeps plain numbers and names it in the `best` column."
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
        spec = resolve_reference(refs, mteb_folder_spec(spec))
        header = _reference_header(spec)
        sel = refs[
            (refs["source"] == spec.source) & (refs["system"] == spec.system) & (refs["metric"] == metric)
        ]
        by_dataset = sel.drop_duplicates("dataset").set_index("dataset")
        values[header] = [
            float(by_dataset.at[row, "value"]) if row in by_dataset.index else math.nan
            for row in values.index
        ]
        ref_cols.append(header)
        notes.append(_reference_note(header, spec, by_dataset, metric))
    if diff_against is not None:
        for header in ref_cols:
            delta = "Δ ours−ref" if len(ref_cols) == 1 else f"Δ ours−{header}"
            values[delta] = values[diff_against] - values[header]
            delta_cols.append(delta)
        notes.append(f"Δ: ours = {diff_against!r}, minus the reference column, both unrounded.")
    return ref_cols, delta_cols


def _reference_note(header: str, spec: RefSpec, by_dataset: pd.DataFrame, metric: str) -> str:
    if spec.source.startswith(MTEB_FOLDER + ":"):
        note = (
            f"`{header}`: {metric} of {spec.system!r} read from the MTEB result files in {spec.source[5:]!r}"
        )
    else:
        note = f"`{header}`: published {metric} of {spec.system!r} from source {spec.source!r}"
    if by_dataset.empty:
        note += f" (the source lists no {metric} for it)"
    remarks = sorted({f"{d}: {n}" for d, n in by_dataset["note"].items() if n and n != "split=test"})
    if remarks:
        note += "; source remarks: " + "; ".join(remarks)
    if "unconfirmed" in spec.source or "second-hand" in spec.source:
        note += ". Second-hand figures: check against the original before citing"
    return note + "."


def _add_average(values: pd.DataFrame, value_cols: list[str], notes: list[str]) -> None:
    """Append the Average row over datasets where every shown column has a value."""
    eligible = [r for r in values.index if " (" not in r and values.loc[r, value_cols].notna().all()]
    left_out = [r for r in values.index if r not in eligible]
    # Δ columns average over the same datasets, so their Average is the difference of Averages.
    values.loc[AVERAGE] = values.loc[eligible].mean() if eligible else math.nan
    note = f"Average: plain mean over the {len(eligible)} datasets where every column has a value"
    notes.append(note + (f" (left out: {', '.join(left_out)})." if left_out else "."))


def _best_mask(values: pd.DataFrame, value_cols: list[str]) -> pd.DataFrame:
    best = pd.DataFrame(False, index=values.index, columns=values.columns)
    rounded = values[value_cols].round(DECIMALS)
    for row in values.index:
        present = rounded.loc[row].dropna()
        if len(present) >= 2:
            best.loc[row, present.index[present == present.max()]] = True
    return best


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
        p = stats.ttest_rel(x, y).pvalue
    elif test == "wilcoxon":
        p = stats.wilcoxon(x, y, zero_method="wilcox").pvalue
    else:
        raise ValueError(f"unknown test {test!r}; choose from {TESTS}")
    return 1.0 if np.isnan(p) else float(p)


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
) -> None:
    """Per system: a paired test per dataset against `baseline`, Holm-corrected across datasets."""
    if test not in TESTS:
        raise ValueError(f"unknown test {test!r}; choose from {TESTS}")
    untested: set[str] = set()
    for system in systems[1:]:
        tested: list[tuple[str, float, float]] = []  # (row, p, mean difference)
        for row in rows:
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


# --- rendering ---------------------------------------------------------------------------------

FORMATS = ("markdown", "csv", "latex", "html")


def render(board: Leaderboard, fmt: str = "markdown") -> str:
    if fmt == "markdown":
        return _render_markdown(board)
    if fmt == "csv":
        return _render_csv(board)
    if fmt == "latex":
        return _render_latex(board)
    if fmt == "html":
        return _render_html(board)
    raise ValueError(f"unknown format {fmt!r}; choose from {FORMATS}")


def _number(board: Leaderboard, row: str, col: str) -> str:
    value = board.values.loc[row, col]
    if pd.isna(value):
        return "–"
    return f"{value:+.{DECIMALS}f}" if col in board.delta_columns else f"{value:.{DECIMALS}f}"


def _styled_rows(board: Leaderboard, bold, escape) -> list[list[str]]:
    """Rows of cells: escaped dataset name, then numbers with bold and significance marks."""
    out = []
    for row in board.values.index:
        cells = [escape(row)]
        for col in board.values.columns:
            text = escape(_number(board, row, col))
            cells.append(
                (bold(text) if board.best.loc[row, col] else text) + escape(board.marks.loc[row, col])
            )
        out.append(cells)
    return out


def _render_markdown(board: Leaderboard) -> str:
    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    headers = ["dataset"] + [esc(c) for c in board.values.columns]
    rows = _styled_rows(board, lambda t: f"**{t}**", esc)
    table = tabulate(
        rows,
        headers=headers,
        tablefmt="pipe",
        colalign=("left",) + ("right",) * len(board.values.columns),
        disable_numparse=True,
    )
    return table + "\n\nNotes:\n" + "".join(f"- {n}\n" for n in board.notes)


def _render_csv(board: Leaderboard) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    sig_cols = board.system_columns[1:] if board.baseline else []
    writer.writerow(["dataset", *board.values.columns, *(f"{s} sig" for s in sig_cols), "best"])
    for row in board.values.index:
        numbers = [
            "" if pd.isna(v) else f"{v:.{DECIMALS}f}" for v in board.values.loc[row, board.values.columns]
        ]
        sig = [board.marks.loc[row, s] for s in sig_cols]
        best = ";".join(c for c in board.values.columns if board.best.loc[row, c])
        writer.writerow([row, *numbers, *sig, best])
    for note in board.notes:
        buf.write(f"# {note}\n")
    return buf.getvalue()


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
    BETTER: r"$^\dagger$",
    WORSE: r"$^\ddagger$",
    "`": "",
}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(c, c) for c in text)


def _render_latex(board: Leaderboard) -> str:
    rows = _styled_rows(board, lambda t: rf"\textbf{{{t}}}", _latex_escape)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\begin{tabular}{l" + "r" * len(board.values.columns) + "}",
        r"\toprule",
        " & ".join(_latex_escape(h) for h in ["dataset", *board.values.columns]) + r" \\",
        r"\midrule",
    ]
    for row, cells in zip(board.values.index, rows, strict=True):
        if row == AVERAGE:
            lines.append(r"\midrule")
        lines.append(" & ".join(cells) + r" \\")
    caption = " ".join(_latex_escape(n) for n in board.notes)
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{caption}}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def _render_html(board: Leaderboard) -> str:
    def esc(text: str) -> str:
        return html.escape(text, quote=True)

    rows = _styled_rows(board, lambda t: f"<b>{t}</b>", esc)
    head = "".join(f"<th>{esc(h)}</th>" for h in ["dataset", *board.values.columns])
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
