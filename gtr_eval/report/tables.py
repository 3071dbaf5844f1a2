"""Leaderboard tables: datasets × systems, published reference columns, significance marks.

A table is built once (`leaderboard`) as numbers plus marks, then rendered (`render`) as markdown,
CSV, LaTeX or HTML; the notes that explain every mark and averaging rule travel with the table in
markdown, LaTeX and HTML, since a table quoted without them is easy to misread.  CSV is kept clean
for `pandas.read_csv` (no comment rows): its notes are `render_notes` (`gtr-eval table` writes them
to stderr or `--notes FILE`).
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
from ..evaluation import normalise_metric
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
    """Build the table for `metric` (a name as papers write it, `NDCG@10`, `R@100`, is normalised; an
    unknown one is a ValueError naming the closest); see the notes it carries for every rule it applies."""
    metric = normalise_metric(metric, known=sorted({m for r in results for m in r.metrics}))
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
    comparable = _add_average(values, systems, ref_cols, delta_cols, notes)
    best = _best_mask(values, value_cols, comparable)
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
        listed = refs.loc[(refs["source"] == spec.source) & (refs["system"] == spec.system), "metric"]
        notes.append(_reference_note(header, spec, by_dataset, metric, sorted(set(listed)), values.index))
    if diff_against is not None:
        for header in ref_cols:
            delta = "Δ ours−ref" if len(ref_cols) == 1 else f"Δ ours−{header}"
            values[delta] = values[diff_against] - values[header]
            delta_cols.append(delta)
        notes.append(f"Δ: ours = {diff_against!r}, minus the reference column, both unrounded.")
    return ref_cols, delta_cols


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
) -> list[str]:
    """Append the Average row; return the columns whose Averages cover the same datasets (the only
    ones compared for the best Average).

    Systems are averaged over the datasets where every system has a value, so their Averages compare.
    Each reference (and Δ) column is averaged over those of them it has: a published source that
    lacks some datasets, or this metric altogether, no longer blanks every column's Average, and the
    note says which column covers fewer.  When no dataset has every system, each column's Average is
    its mean over the datasets it has, so said (and none is marked best)."""
    value_cols = systems + ref_cols
    rows = [r for r in values.index if " (" not in r]  # a partial CQADupStack row is no BEIR figure
    partial = [r for r in values.index if r not in rows]
    common = [r for r in rows if values.loc[r, systems].notna().all()]
    if not common:
        for col in values.columns:
            values.loc[AVERAGE, col] = values.loc[rows, col].mean() if rows else math.nan
        counts = ", ".join(f"{c} {int(values.loc[rows, c].notna().sum())}" for c in value_cols)
        notes.append(
            "Average: no dataset has a value in every system column, so each column's Average is its "
            f"mean over the datasets it has ({counts}); they do not compare, and none is marked best"
            + (f" (left out: {', '.join(partial)})." if partial else ".")
        )
        return []
    left_out = [r for r in values.index if r not in common]
    for col in values.columns:
        have = [r for r in common if pd.notna(values.loc[r, col])]
        values.loc[AVERAGE, col] = values.loc[have, col].mean() if have else math.nan
    short = {c: [r for r in common if pd.isna(values.loc[r, c])] for c in ref_cols}
    full = [c for c in value_cols if not short.get(c)]
    n = len(common)
    if all(not gaps for gaps in short.values()):
        note = f"Average: plain mean over the {n} datasets where every column has a value"
        notes.append(note + (f" (left out: {', '.join(left_out)})." if left_out else "."))
        return full
    note = (
        f"Average: mean over the {n} datasets where every system has a value"
        + (f" (left out: {', '.join(left_out)})" if left_out else "")
        + "; each reference column over those of them it has:"
    )
    parts = []
    for col, gaps in short.items():
        if not gaps:
            continue
        have = n - len(gaps)
        if have == 0:
            parts.append(f" `{col}` has none of them ('–')")
        else:
            parts.append(
                f" `{col}` has {have} of the {n} (lacks {', '.join(gaps)}), so its Average does not compare and is not marked best"
            )
    if delta_cols:
        parts.append(" a Δ column averages over the datasets both of its sides have")
    notes.append(note + ";".join(parts) + ".")
    return full


def _best_mask(values: pd.DataFrame, value_cols: list[str], average_cols: list[str]) -> pd.DataFrame:
    """Per row, the best of the value columns; in the Average row, only among `average_cols` (those
    averaged over the same datasets)."""
    best = pd.DataFrame(False, index=values.index, columns=values.columns)
    rounded = values[value_cols].round(DECIMALS)
    for row in values.index:
        present = rounded.loc[row, average_cols if row == AVERAGE else value_cols].dropna()
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
