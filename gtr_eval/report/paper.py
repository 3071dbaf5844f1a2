"""The GTR paper's BEIR tables, regenerated from stored results, and the golden-score check.

`paper_table` puts one column per system shown, each followed by the published figure for the same
system where one exists (bm25 beside MTEB's bm25s, bm25-flat / bm25-multifield beside Pyserini 2CR's
flat / multifield, the GTR sizes beside the GTR authors' or MTEB's, every other system beside MTEB's
figure of that name when MTEB has one), in the paper's dataset order; by default only the systems
with a stored result (`gtr-eval paper` and the report alike), and `systems` picks and orders them.
`render_paper` writes it as markdown, CSV, HTML or a LaTeX `table` environment that compiles as is.
`check_golden` compares stored results with expected scores, each of which names where it comes
from; a published expectation keeps the figure's own decimals and the difference is shown exactly.
A pair with no stored result is MISSING, not FAIL.  Without a golden file of its own a results
folder is checked against the one shipped with gtr-eval (`BUNDLED_GOLDEN`, which the repository's
results/golden.yaml links to).
"""

from __future__ import annotations

import fnmatch
import html
import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml
from tabulate import tabulate

from .. import paths
from ..evaluation import normalise_metric
from ..paths import BUNDLED
from ..pipeline.plan import Device, Plan, make_plan, model_cost
from ..pipeline.plan import render_plan as render_plan
from ..results import StoredResult
from .tables import (
    CQADUPSTACK,
    CQADUPSTACK_SUBFORUMS,
    DATASET_ORDER,
    latex_escape,
    load_references,
    subforum_mean,
)

PAPER_REF = "gtr-paper-table (second-hand copy, unconfirmed)"
BEIR_REF = "beir-paper-table2 (second-hand copy)"
PYSERINI = "pyserini-2cr"
MTEB = "mteb-results"
GTR_AUTHORS = "gtr-authors-release"
SOURCE_DECIMALS = {MTEB: 5, PYSERINI: 4, PAPER_REF: 3, BEIR_REF: 3, GTR_AUTHORS: 3}
NOT_RUN = "not run"
METRICS = ("ndcg@10", "recall@100")
OURS = "ours"  # the suffix of a system's own column in the table's data (`BM25 ours`)


@dataclass(frozen=True)
class Reference:
    """A published figure's column: its short label, its source and the system's name in the CSV."""

    label: str
    source: str
    system: str


@dataclass(frozen=True)
class Group:
    """One system of the paper's table: its label, our system name, and where the published figure of
    the same system is, in order of preference: a table's column comes from the first of them that has
    its metric (the GTR authors' NDCG@10 and Recall@100 were published apart)."""

    label: str
    system: str
    references: tuple[Reference, ...] = ()


BM25_REFERENCES = {
    "bm25": Reference("MTEB bm25s", MTEB, "bm25s"),
    "bm25-flat": Reference("2CR flat", PYSERINI, "bm25-pyserini-flat"),
    "bm25-multifield": Reference("2CR multifield", PYSERINI, "bm25-pyserini-multifield"),
}


def _gtr(label: str, system: str, paper_name: str) -> Group:
    """A GTR size: the authors' figures (NDCG@10 from the paper, second-hand; Recall@100 from their
    release), else MTEB's run of the same checkpoint."""
    return Group(label, system, (Reference("paper²", PAPER_REF, paper_name),
                                 Reference("GTR authors", GTR_AUTHORS, paper_name), Reference("MTEB", MTEB, system)))  # fmt: skip


PAPER_GROUPS = (
    Group("BM25", "bm25", (BM25_REFERENCES["bm25"],)),
    Group("BM25 flat", "bm25-flat", (BM25_REFERENCES["bm25-flat"],)),
    Group("BM25 multifield", "bm25-multifield", (BM25_REFERENCES["bm25-multifield"],)),
    _gtr("GTR-Base", "gtr-t5-base", "gtr-base"),
    _gtr("GTR-Large", "gtr-t5-large", "gtr-large"),
    _gtr("GTR-XL", "gtr-t5-xl", "gtr-xl"),
    _gtr("GTR-XXL", "gtr-t5-xxl", "gtr-xxl"),
    # The paper's baselines (BEIR's Table 2 models), SPLADE++ and Contriever; re-ranking last.
    Group("DPR", "dpr", (Reference("BEIR²", BEIR_REF, "dpr"),)),
    Group("ANCE", "ance", (Reference("BEIR²", BEIR_REF, "ance"),)),
    Group("TAS-B", "tas-b", (Reference("BEIR²", BEIR_REF, "tas-b"),)),
    Group("GenQ", "genq", (Reference("BEIR²", BEIR_REF, "genq"),)),
    Group("ColBERT", "colbertv2"),  # BEIR's is ColBERT v1, another model: no published figure beside it
    Group("SPLADE++", "splade-pp-ed", (Reference("2CR", PYSERINI, "splade-pp-ed"),)),
    Group("Contriever", "contriever-msmarco", (Reference("2CR", PYSERINI, "contriever-msmarco"),)),
    Group("BM25+CE", "bm25>>ms-marco-MiniLM-L6-v2", (Reference("BEIR²", BEIR_REF, "bm25+ce"),)),
)

# One note per kind of column, kept only when the table has such a column (`_NOTE_KEYS`).
NOTES = (
    f"`{NOT_RUN}` marks a dataset a shown system was not evaluated on.",
    "MTEB bm25s = the MTEB results repository's bm25s (k1 1.5, b 0.75, the setting of our bm25; "
    "docs/bm25.md says why its SciFact NDCG@10 is 0.68736 and ours 0.68630).",
    "2CR = Pyserini's reproductions (BM25 flat / multifield through Lucene, k1 0.9, b 0.4, multifield "
    "being the BEIR paper's setting; SPLADE++ ED; Contriever-MSMARCO).",
    "MTEB = the MTEB results repository (for GTR sizes without the authors' figure, its runs of "
    "sentence-transformers ports of the same checkpoints).",
    "paper² = the GTR paper's NDCG@10 as copied by a later paper (second-hand, unconfirmed, 3 decimals).",
    "BEIR² = the BEIR paper's Table 2 (NDCG@10, 3 decimals) as copied by a later source; its BM25+CE "
    "re-ranks Elasticsearch BM25's top 100, ours our bm25's (`gtr-eval rerank`).",
    "GenQ (BEIR's per-dataset synthetic-query models) has no preset: its column stays `not run`.",
    "GTR authors = the GTR authors' released Recall@100 of their original TF checkpoints (3 decimals).",
    "cqadupstack = the mean of its 12 subforums (BEIR's convention).",
    "msmarco is scored on its dev split, as in the paper.",
)
_NOTE_KEYS = {  # what a note explains: a column's header, a row's dataset, or a gap
    NOTES[0]: (NOT_RUN,),
    NOTES[1]: ("MTEB bm25s",),
    NOTES[2]: ("2CR", "2CR flat", "2CR multifield"),
    NOTES[3]: ("MTEB",),
    NOTES[4]: ("paper²",),
    NOTES[5]: ("BEIR²",),
    NOTES[6]: ("GenQ",),
    NOTES[7]: ("GTR authors",),
    NOTES[8]: (CQADUPSTACK,),
    NOTES[9]: ("msmarco",),
}


def _our_scores(results: Sequence[StoredResult], metric: str) -> dict[tuple[str, str], float]:
    """(system, dataset) → value, with CQADupStack's subforums averaged when all 12 are present.
    Only each dataset's own split (the paper's): a train-split result is no paper figure."""
    scores: dict[tuple[str, str], float] = {}
    subs: dict[str, dict[str, StoredResult]] = {}
    for r in results:
        if metric not in r.metrics or not r.default_split:
            continue
        if r.dataset.startswith(CQADUPSTACK + "/"):
            subs.setdefault(r.system, {})[r.dataset.split("/", 1)[1]] = r
        else:
            scores[(r.system, r.dataset)] = r.metrics[metric]
    for system, by_forum in subs.items():
        if set(by_forum) >= set(CQADUPSTACK_SUBFORUMS):
            scores[(system, CQADUPSTACK)] = subforum_mean(by_forum, metric, CQADUPSTACK_SUBFORUMS)[0]
    return scores


def table_groups(results: Sequence[StoredResult], systems: Sequence[str] | None = None) -> list[Group]:
    """The paper's groups, then every other stored system beside MTEB's figure of its name; with
    `systems` (names or shell-style globs, case aside), only the groups they match, in their order.
    A pattern matching no group is a `Mistake` naming the closest system."""
    known = {g.system for g in PAPER_GROUPS}
    extra = sorted({r.system for r in results} - known)
    groups = [*PAPER_GROUPS, *(Group(s, s, (Reference("MTEB", MTEB, s),)) for s in extra)]
    if systems is None:
        return groups
    picked: list[Group] = []
    for pattern in systems:
        matched = [g for g in groups if fnmatch.fnmatchcase(g.system.casefold(), pattern.casefold())]
        if not matched:
            from ..errors import Mistake, did_you_mean

            names = [g.system for g in groups]
            raise Mistake(f"no system {pattern!r} in the paper's table{did_you_mean(pattern, names)}")
        picked += [g for g in matched if g not in picked]
    return picked


def published(value: float | None, source: str | None = None) -> str:
    """A published figure, never rounded, with the decimals its source publishes (`SOURCE_DECIMALS`;
    the CSV drops trailing zeros: 0.6 is the paper's 0.600), or more when the value has more."""
    if value is None:
        return ""
    text = repr(float(value))
    written = len(text.split(".")[1]) if "." in text and "e" not in text else 0
    return f"{value:.{max(written, SOURCE_DECIMALS.get(source, 0))}f}"


def paper_table(
    results: Sequence[StoredResult],
    metric: str = "ndcg@10",
    only_run: bool = False,
    refs: pd.DataFrame | None = None,
    run_systems_only: bool = False,
    systems: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Rows: datasets in the paper's order (`only_run`: those with a stored result); columns: per
    system `LABEL ours`, then `LABEL REF` when that system has a published figure on a shown row
    (strings; `table.attrs["headers"]` holds the header each column is printed under).
    `run_systems_only`: only the systems with a stored result for `metric` on a dataset of the
    paper's; `systems`: those named (globs allowed), in that order.  The metric name is normalised
    (`NDCG@10`); an unknown one is a ValueError naming the closest."""
    metric = normalise_metric(metric, known=sorted({m for r in results for m in r.metrics}))
    refs = load_references() if refs is None else refs
    picked = refs.loc[refs["metric"] == metric, ["source", "system", "dataset", "value"]]
    ref = {(s, sy, d): v for s, sy, d, v in picked.itertuples(index=False)}
    ours = _our_scores(results, metric)
    datasets = [d for d in DATASET_ORDER if not only_run or any(k[1] == d for k in ours)]
    groups = table_groups(results, systems)
    if run_systems_only:
        groups = [g for g in groups if any((g.system, d) in ours for d in DATASET_ORDER)]
    sources = {  # per system, the first of its references with a figure on a shown row
        g.label: next(
            (r for r in g.references if any((r.source, r.system, d) in ref for d in datasets)), None
        )
        for g in groups
    }
    rows, headers = [], {}
    for d in datasets:
        row: dict[str, str] = {"dataset": d}
        for g in groups:
            mine = ours.get((g.system, d))
            row[f"{g.label} {OURS}"] = NOT_RUN if mine is None else f"{mine:.4f}"
            headers[f"{g.label} {OURS}"] = g.label
            r = sources[g.label]
            if r is not None:
                row[f"{g.label} {r.label}"] = published(ref.get((r.source, r.system, d)), r.source)
                headers[f"{g.label} {r.label}"] = r.label
        rows.append(row)
    if not rows:  # e.g. only non-BEIR datasets are stored and only_run is set
        return pd.DataFrame(index=pd.Index([], name="dataset"))
    table = pd.DataFrame(rows).set_index("dataset")
    # Drop published columns that are empty on every shown row; `ours` stays so gaps stay visible.
    table = table[[c for c in table.columns if c.endswith(f" {OURS}") or (table[c] != "").any()]]
    table.attrs["headers"] = {c: headers[c] for c in table.columns}
    return table


def _best(table: pd.DataFrame) -> dict[str, set[str]]:
    """Per dataset, our columns holding the highest of our values (none when fewer than two ran)."""
    out: dict[str, set[str]] = {}
    mine = [c for c in table.columns if c.endswith(f" {OURS}")]
    for d, row in table[mine].iterrows():
        values = {c: float(v) for c, v in row.items() if v != NOT_RUN}
        top = max(values.values(), default=None)
        out[str(d)] = {c for c, v in values.items() if v == top} if len(values) > 1 else set()
    return out


def _notes(table: pd.DataFrame) -> list[str]:
    """The notes about what the table shows: its published columns, gaps and special rows."""
    headers = set(table.attrs.get("headers", {}).values())
    shown = headers | {str(d) for d in table.index} | ({NOT_RUN} if (table == NOT_RUN).any().any() else set())
    return [n for n in NOTES if shown & set(_NOTE_KEYS[n])]


NOTE_WIDTH = 100


def caption(metric: str) -> str:
    """The table's title: two short sentences (LaTeX puts them in `\\caption`)."""
    return (
        f"GTR paper table, {metric} (BEIR, zero-shot). "
        "Each system beside the published figure for the same system."
    )


def render_paper(table: pd.DataFrame, metric: str, fmt: str = "markdown", compact: bool = False) -> str:
    """The table with its caption and the notes about its columns; `compact` (a terminal's view,
    `gtr-eval paper`) wraps the notes at `NOTE_WIDTH`."""
    if fmt == "csv":
        return table.to_csv()
    notes = _notes(table)
    if fmt == "latex":
        return _render_latex(table, metric, notes)
    headers = ["dataset", *(table.attrs.get("headers", {}).get(c, c) for c in table.columns)]
    tablefmt = {"markdown": "github", "html": "html"}[fmt]
    body = tabulate(table.reset_index().values.tolist(), headers=headers, tablefmt=tablefmt,
                    disable_numparse=True)  # fmt: skip
    if compact:
        lines = [textwrap.wrap(n, NOTE_WIDTH, initial_indent="- ", subsequent_indent="  ",
                               break_on_hyphens=False) for n in notes]  # fmt: skip
        text = "\n".join("\n".join(n) for n in lines)
    else:
        text = "\n".join(f"- {n}" for n in notes)
    if fmt == "markdown":
        return f"**{caption(metric)}**\n\n{body}\n\n{text}\n"
    items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return f"<p>{html.escape(caption(metric))}</p>\n{body}\n<ul>{items}</ul>\n"


def _render_latex(table: pd.DataFrame, metric: str, notes: Sequence[str]) -> str:
    """A complete `table` environment (booktabs rules, our best value per dataset in bold, the caption,
    the notes as footnote-size lines after the tabular) that compiles as pasted, with only booktabs."""
    headers = table.attrs.get("headers", {})
    best = _best(table)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{latex_escape(caption(metric))}}}",
        r"\begin{tabular}{l" + "r" * len(table.columns) + "}",
        r"\toprule",
        " & ".join(latex_escape(h) for h in ["dataset", *(headers.get(c, c) for c in table.columns)])
        + r" \\",
        r"\midrule",
    ]
    for dataset, row in table.iterrows():
        cells = [latex_escape(str(dataset))]
        for col, value in row.items():
            text = latex_escape(str(value))
            cells.append(rf"\textbf{{{text}}}" if col in best[str(dataset)] else text)
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    lines += [r"\par\smallskip\footnotesize"] + [latex_escape(n) + r"\par" for n in notes]
    return "\n".join([*lines, r"\end{table}"]) + "\n"


# ---------------------------------------------------------------------------------------- golden


@dataclass(frozen=True)
class Expectation:
    system: str
    dataset: str
    metric: str
    expected: float
    tolerance: float
    source: str


BUNDLED_GOLDEN = BUNDLED / "golden.yaml"  # results/golden.yaml is a link to it: one file, shipped
STATUSES = ("OK", "OKISH", "FAIL", "MISSING")


def default_golden(results_dir: Path | str) -> Path:
    """RESULTS_DIR/golden.yaml when the results folder has one, else the golden file shipped with
    gtr-eval (expected scores of the committed results and published figures)."""
    own = Path(results_dir) / "golden.yaml"
    return own if own.is_file() else BUNDLED_GOLDEN


@dataclass(frozen=True)
class CheckRow:
    status: str  # OK (within tolerance), OKISH (within 2×), FAIL, MISSING (no stored result: not run)
    expectation: Expectation
    actual: float | None

    @property
    def diff(self) -> float | None:
        return None if self.actual is None else self.actual - self.expectation.expected


def load_golden(path: Path) -> list[Expectation]:
    if not Path(path).is_file():
        raise ValueError(f"{path}: no such golden file")
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ValueError(f"{path}: cannot read golden file ({e})") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: expected a mapping with a 'checks' list")
    out = []
    for i, item in enumerate(doc.get("checks", []), start=1):
        try:
            out.append(
                Expectation(
                    str(item["system"]),
                    str(item["dataset"]),
                    str(item["metric"]),
                    float(item["expected"]),
                    float(item["tolerance"]),
                    str(item["source"]),
                )
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path}: check #{i} is incomplete or malformed ({e!r})") from None
    if not out:
        raise ValueError(f"{path}: no checks")
    return out


def check_golden(results: Sequence[StoredResult], golden: Sequence[Expectation]) -> list[CheckRow]:
    """One row per expectation: OK within its tolerance, OKISH within twice it, FAIL beyond it or when
    the stored result lacks the metric; MISSING when the pair has no stored result (on the dataset's
    own split): a pair that was not run is not a failure."""
    by_key = {(r.system, r.dataset): r for r in results if r.default_split}
    rows = []
    for e in golden:
        r = by_key.get((e.system, e.dataset))
        if r is None:
            rows.append(CheckRow("MISSING", e, None))
            continue
        actual = r.metrics.get(e.metric)
        if actual is None or math.isnan(actual):
            rows.append(CheckRow("FAIL", e, None))
            continue
        gap = abs(actual - e.expected)
        status = "OK" if gap <= e.tolerance else "OKISH" if gap <= 2 * e.tolerance else "FAIL"
        rows.append(CheckRow(status, e, actual))
    return rows


def signed(diff: float, decimals: int) -> str:
    """A difference with its sign (− as a minus sign), and no sign at all when it rounds to zero."""
    text = f"{abs(diff):.{decimals}f}"
    if float(text) == 0:
        return text
    return ("+" if diff > 0 else "\u2212") + text


def _decimals(value: float) -> int:
    """How many decimals `value` was written with (its shortest round-trip text)."""
    return len(published(value).split(".")[-1]) if "." in published(value) else 0


def check_cells(row: CheckRow) -> tuple[str, str, str]:
    """Expected, ours and Δ as printed: the expected value as written (a published figure unrounded),
    ours and Δ at 5 decimals, or at the expected value's own precision when it has more."""
    places = max(5, _decimals(row.expectation.expected))
    ours = "missing" if row.actual is None else f"{row.actual:.{places}f}"
    diff = "" if row.diff is None else signed(row.diff, places)
    return published(row.expectation.expected), ours, diff


def render_check(rows: Sequence[CheckRow]) -> str:
    """The checked rows as a table (`check_cells`), then one line naming the MISSING pairs (not run),
    then the counts."""
    missing = [r for r in rows if r.status == "MISSING"]
    rows = [r for r in rows if r.status != "MISSING"]
    body = [
        [r.status, r.expectation.system, r.expectation.dataset, r.expectation.metric, *check_cells(r),
         f"±{r.expectation.tolerance:g}", r.expectation.source]
        for r in rows
    ]  # fmt: skip
    headers = ["status", "system", "dataset", "metric", "expected", "ours", "Δ", "tolerance", "source"]
    counts = {s: sum(r.status == s for r in rows) for s in STATUSES[:3]} | {"MISSING": len(missing)}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items())
    table = tabulate(body, headers=headers, tablefmt="github", disable_numparse=True) if rows else ""
    text = table + "\n\n" if table else ""
    if missing:
        pairs: dict[str, list[str]] = {}
        for r in missing:
            datasets = pairs.setdefault(r.expectation.system, [])
            if r.expectation.dataset not in datasets:
                datasets.append(r.expectation.dataset)
        named = "; ".join(f"{s} on {', '.join(d)}" for s, d in pairs.items())
        checks = "check" if len(missing) == 1 else "checks"
        text += f"MISSING (no stored result, not run; not a failure): {len(missing)} {checks} of {named}\n\n"
    return text + f"{summary}\n"


# ------------------------------------------------------------------------------------- reproduce

GTR_MODELS = ("gtr-t5-base", "gtr-t5-large", "gtr-t5-xl", "gtr-t5-xxl")


LONG_JOB_S = 3600.0  # `paper --reproduce` asks with No as the default answer beyond this


def reproduce_plan(
    data_dir: Path, results_dir: Path = paths.RESULTS_DIR, device: str | None = None, dtype: str | None = None
) -> Plan:
    """What `paper --reproduce` fetches, what is done, and rough hours per public dataset, on `device`
    (default: a GPU when torch sees one, else the CPU); `dtype` defaults to fp16 on a GPU, and is
    fp32 on the CPU."""
    from ..data import registry
    from ..data.units import Selection

    if device is None:
        from ..retrieval.encoders import default_device

        device = default_device()
    if device.startswith("cpu"):
        where = Device("cpu", device, "fp32", backend="auto")
    else:
        where = Device("gpu", device, dtype or "fp16")
    names = [n for n in registry.DATASET_ORDER if registry.get(n).public]
    costs = [model_cost(m) for m in ("bm25", *GTR_MODELS)]
    return make_plan(Selection(names), costs, where, data_dir, results_dir)


def plan_seconds(plan: Plan) -> float | None:
    """The plan's estimated total time, or None when a part of it is unknown."""
    times = [s for d in plan.datasets for s in d.seconds.values()]
    return None if any(t is None for t in times) else float(sum(times))


# ---------------------------------------------------------------------------------- committed tables

LEADERBOARD_BASELINE = "bm25"


def regenerate_tables(results: Sequence[StoredResult], out_dir: Path, only_run: bool = True) -> list[Path]:
    """Every table committed under results/tables: paper layout and leaderboards, both metrics.

    CI regenerates these from a fresh run and fails if they differ from the committed files, so
    they hold nothing that changes between identical runs (no paths, times or versions).
    """
    from ..io import atomic_write_text
    from .tables import leaderboard, render

    out_dir = Path(out_dir)
    written = []
    systems = {r.system for r in results}
    for metric in METRICS:
        path = out_dir / f"paper-{metric}.md"
        atomic_write_text(
            path, render_paper(paper_table(results, metric, only_run=only_run, run_systems_only=True), metric)
        )
        written.append(path)
        baseline = LEADERBOARD_BASELINE if LEADERBOARD_BASELINE in systems and len(systems) > 1 else None
        board = leaderboard(results, metric=metric, baseline=baseline)
        path = out_dir / f"leaderboard-{metric}.md"
        atomic_write_text(path, render(board, "markdown"))
        written.append(path)
    return written
