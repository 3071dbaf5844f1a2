"""`gtr-eval report`: a static site of the stored results that opens from `file://`, offline.

Every number is computed here, by the same functions as `table` and `paper` (`leaderboard`,
`paper_table`, `check_golden`), and embedded in each page as one JSON blob; a small vanilla script
(`assets/report.js`) draws the tables and SVG charts from it and handles sorting, the metric and
baseline switches and the two-system comparison.  Nothing is fetched: the data sits in the page
(`fetch()` of a local file fails under file://), and the script and stylesheet are files beside it.

Pages: `index.html` (leaderboard, chart, GTR paper tables with the golden check, the runs) and
`datasets/<name>.html` per stored dataset (every metric for every system, a per-query comparison of
two systems, and the queries where they disagree most with the relevant document and each system's
rank for it).  Clicking a number shows its provenance (model, revision, weights hash, settings,
versions, hardware, timings).  Every leaderboard number carries its 95% bootstrap interval (shown
in the cell and as error bars in the chart), with a baseline its paired Δ interval, and its
Judged@10 with the ◇ mark of `table` (the qrels are found as the dataset pages find them).
"""

from __future__ import annotations

import gzip
import html
import json
import math
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from itertools import combinations
from pathlib import Path
from string import Template
from typing import Any

import numpy as np

from .. import __version__
from ..dataset_files import DatasetFiles, locate, read_documents
from ..errors import resolve
from ..evaluation import metric_names, ranked
from ..io import atomic_write_text
from ..judgments import Judgments
from ..results import StoredResult
from ..uncertainty import DEFAULT_BOOTSTRAP, Bootstrap, Draws
from . import paper
from .selection import Selection, select
from .tables import (
    AVERAGE,
    CQADUPSTACK,
    DECIMALS,
    JUDGED_MARK,
    MIXED_MARK,
    Leaderboard,
    RefSpec,
    coverage,
    leaderboard,
    paired_test,
)

HEADLINE_METRICS = ("ndcg@10", "recall@100", "mrr@10", "map@10")
QUERY_METRICS = ("ndcg@10", "recall@100", "mrr@10", "map@10", "recall@10", "ndcg@100")
ASSETS = ("report.css", "report.js")
SNIPPET_CHARS = 400


@dataclass
class ReportConfig:
    """What `gtr-eval report` builds; see `build_site`."""

    output: Path = Path("report")
    data_dir: Path | None = None  # where query and document texts are looked up
    baseline: str | None = "auto"  # "auto": bm25 when stored, else no significance marks
    references: Sequence[RefSpec] = ()
    golden: Path | None = (
        None  # default: <results-dir>/golden.yaml, else the one shipped (as `paper --check`)
    )
    alpha: float = 0.05
    test: str = "ttest"
    top_queries: int = 20
    title: str = "Retrieval results"
    bootstrap: Bootstrap | None = DEFAULT_BOOTSTRAP  # the leaderboard's intervals; None: none
    selection: Selection = Selection()  # the systems and datasets shown, in its order (`-s`, `-d`)


@dataclass
class _Context:
    results: list[StoredResult]
    config: ReportConfig
    reference_table: Any
    provenance: list[dict[str, Any]] = field(default_factory=list)
    prov_index: dict[tuple[str, str], int] = field(default_factory=dict)
    judgments: Judgments = field(default_factory=Judgments)
    draws: Draws | None = None  # bootstrap draws, shared by every board (one per metric and baseline)


def build_site(
    results: Sequence[StoredResult],
    config: ReportConfig,
    results_dir: Path | None = None,
    reference_table=None,
    echo: Callable[[str], None] = lambda _: None,
) -> Path:
    """Write the site into `config.output`; returns the path of index.html."""
    if not results:
        raise ValueError("no stored results to report")
    results = select(results, config.selection)
    if config.baseline not in (None, "auto"):  # checked before anything is written (`BM25`: bm25)
        systems, base = sorted({r.system for r in results}), config.baseline
        problem = f"baseline {base!r} has no stored results"
        config = replace(config, baseline=resolve("baseline", base, systems, "table", problem=problem))
    ctx = _Context(sorted(results, key=lambda r: (r.system, r.label)), config, reference_table)
    ctx.judgments = Judgments(config.data_dir)
    ctx.draws = Draws(config.bootstrap) if config.bootstrap is not None else None
    for r in ctx.results:  # rows are datasets as tables name them: `scifact`, `scifact [train]`
        ctx.prov_index[(r.system, r.label)] = len(ctx.provenance)
        ctx.provenance.append(_provenance(r, results_dir))
    out = Path(config.output)
    (out / "assets").mkdir(parents=True, exist_ok=True)
    for name in ASSETS:
        source = resources.files("gtr_eval.report").joinpath("assets", name)
        with resources.as_file(source) as path:
            shutil.copyfile(path, out / "assets" / name)
    datasets = sorted({r.label for r in ctx.results})
    for dataset in datasets:
        echo(f"[report] dataset page: {dataset}")
        atomic_write_text(out / dataset_href(dataset), _dataset_page(ctx, dataset))
    golden = config.golden or (paper.default_golden(results_dir) if results_dir else None)
    index = out / "index.html"
    atomic_write_text(index, _index_page(ctx, datasets, golden))
    return index


def dataset_href(dataset: str) -> str:
    """`datasets/<name>.html`; a CQADupStack subforum `cqadupstack/android` -> `cqadupstack--android`,
    another split `scifact [train]` -> `scifact@train`."""
    return f"datasets/{dataset.replace('/', '--').replace(' [', '@').rstrip(']')}.html"


# --- page frame ---------------------------------------------------------------------------------

_PAGE = Template(
    """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="gtr-eval $version">
<title>$title</title>
<link rel="stylesheet" href="${root}assets/report.css">
</head>
<body data-page="$page">
<header class="top"><nav><a href="${root}index.html">Leaderboard</a> · <a href="${root}index.html#paper">Paper tables</a> · <a href="${root}index.html#datasets">Datasets</a> · <a href="${root}index.html#runs">Runs</a></nav>
<h1>$heading</h1></header>
<noscript><p class="warn">The tables and charts are drawn by the page's script; enable JavaScript to see them.</p></noscript>
<main>
$body
</main>
<dialog id="provenance"><form method="dialog"><button class="close" aria-label="Close">×</button></form><div id="provenance-body"></div></dialog>
<footer>Generated by gtr-eval $version from stored results. Numbers are shown with $decimals decimals; hover a number for its full value, click it for its provenance.</footer>
<script type="application/json" id="report-data">$data</script>
<script src="${root}assets/report.js"></script>
</body>
</html>
"""
)


def _json_for_script(obj: Any) -> str:
    """JSON that cannot close or comment out its <script> element (every `<` written as `\\u003c`,
    which only occurs inside strings); NaN becomes null."""
    text = json.dumps(_clean(obj), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c")


def _clean(obj: Any) -> Any:
    if isinstance(obj, float | np.floating):
        return None if math.isnan(obj) or math.isinf(obj) else float(obj)
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def _page(title: str, heading: str, page: str, body: str, data: dict[str, Any], root: str) -> str:
    return _PAGE.substitute(
        title=html.escape(title),
        heading=html.escape(heading),
        page=page,
        body=body,
        data=_json_for_script(data),
        root=root,
        version=html.escape(__version__),
        decimals=DECIMALS,
    )


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


# --- provenance ---------------------------------------------------------------------------------


def _provenance(r: StoredResult, results_dir: Path | None) -> dict[str, Any]:
    """What the dialog shows for one stored pair: identity, then the manifest as recorded."""
    where = r.path
    if results_dir is not None:
        try:
            where = r.path.resolve().relative_to(Path(results_dir).resolve().parent)
        except ValueError:
            pass
    return {
        "system": r.system,
        "dataset": r.dataset,
        "split": r.split,
        "result_file": str(where),
        "run_file": r.run_path.name,
        "manifest": r.manifest,
    }


# --- index --------------------------------------------------------------------------------------


def _common_metrics(results: Sequence[StoredResult]) -> list[str]:
    """Metrics every result has, headline ones first, then in `metric_names` order."""
    common = set.intersection(*(set(r.metrics) for r in results))
    order = [*HEADLINE_METRICS, *metric_names(), *sorted(common)]
    return [m for i, m in enumerate(order) if m in common and m not in order[:i]]


def _baselines(ctx: _Context, systems: list[str]) -> tuple[list[str], str | None]:
    base = ctx.config.baseline
    if base == "auto":
        base = "bm25" if "bm25" in systems and len(systems) > 1 else None
    return (systems if len(systems) > 1 else []), base


def _board_data(ctx: _Context, metric: str, baselines: list[str]) -> dict[str, Any]:
    cfg = ctx.config
    kw = dict(
        metric=metric,
        references=cfg.references,
        alpha=cfg.alpha,
        test=cfg.test,
        reference_table=ctx.reference_table,
        ci=cfg.bootstrap,
        judgments=ctx.judgments,
        draws=ctx.draws,
        selection=cfg.selection,
    )
    board = leaderboard(ctx.results, show=("judged",), **kw)
    columns = list(board.values.columns)
    rows = list(board.values.index)
    prov = [[_cell_provenance(ctx, row, col, board.system_columns) for col in columns] for row in rows]
    sig = {}
    for base in baselines:
        b = leaderboard(ctx.results, baseline=base, **kw)
        sig[base] = {
            "marks": [[b.marks.loc[r, c] for c in columns] for r in rows],
            "p": [[float(b.pvalues.loc[r, c]) for c in columns] for r in rows],
            # ◇ stays as the board without a baseline has it (against bm25), whatever the baseline
            "notes": [n for n in b.notes if n not in board.notes and not n.startswith(JUDGED_MARK)],
            "diff": _grid(b.diff, rows, columns),
            "diffLow": _grid(b.diff_low, rows, columns),
            "diffHigh": _grid(b.diff_high, rows, columns),
            "diffLevel": _grid(b.diff_level, rows, columns),
        }
    ref_notes = {
        c: next((n for n in board.notes if n.startswith(f"`{c}`")), "") for c in board.reference_columns
    }
    return {
        "rows": rows,
        "columns": columns,
        "kinds": ["system" if c in board.system_columns else "reference" for c in columns],
        "values": board.values.to_numpy(dtype=float).tolist(),
        "best": board.best.to_numpy(dtype=bool).tolist(),
        "provenance": prov,
        "referenceNotes": ref_notes,
        "notes": board.notes,
        "sig": sig,
        "ciLow": _grid(board.ci_low, rows, columns),
        "ciHigh": _grid(board.ci_high, rows, columns),
        "level": cfg.bootstrap.level if cfg.bootstrap is not None else None,
        "judged": _grid(board.judged, rows, columns),
        "judgedMarks": _marks_grid(board, rows, columns),
        "judgedMark": JUDGED_MARK,
        "mixed": [[board.mixed.get((r, c), "") for c in columns] for r in rows],
        "mixedMark": MIXED_MARK,
        "coverage": [[coverage(board, r, c) for c in columns] for r in rows],
    }


def _grid(frame, rows: list[str], columns: list[str]) -> list[list[float | None]] | None:
    """A frame's values over the board's rows × columns (None where it has none), for the page."""
    if frame is None:
        return None
    return [[float(frame.loc[r, c]) if c in frame.columns else None for c in columns] for r in rows]


def _marks_grid(board: Leaderboard, rows: list[str], columns: list[str]) -> list[list[bool]]:
    marks = board.judged_marks
    return [
        [bool(marks is not None and c in marks.columns and marks.loc[r, c]) for c in columns] for r in rows
    ]


def _cell_provenance(ctx: _Context, row: str, col: str, systems: list[str]) -> list[int]:
    """Indices of the stored pairs a leaderboard cell comes from (a CQADupStack row: its subforums;
    the Average: every dataset of the column)."""
    if col not in systems:
        return []
    if row == AVERAGE:
        return [i for (s, _), i in ctx.prov_index.items() if s == col]
    base = row.split(" (")[0]
    if base == CQADUPSTACK:
        return [i for (s, d), i in ctx.prov_index.items() if s == col and d.startswith(CQADUPSTACK + "/")]
    i = ctx.prov_index.get((col, row))
    return [] if i is None else [i]


def _index_page(ctx: _Context, datasets: list[str], golden: Path | None) -> str:
    systems = sorted({r.system for r in ctx.results})
    baselines, default_baseline = _baselines(ctx, systems)
    metrics = _common_metrics(ctx.results)
    _draw_all(ctx, metrics)
    boards = {m: _board_data(ctx, m, baselines) for m in metrics}
    pages = {d: dataset_href(d) for d in datasets}
    pages.update({CQADUPSTACK: "#datasets"} if any(d.startswith(CQADUPSTACK + "/") for d in datasets) else {})
    data = {
        "page": "index",
        "metrics": metrics,
        "defaultMetric": "ndcg@10" if "ndcg@10" in metrics else metrics[0],
        "baselines": baselines,
        "defaultBaseline": default_baseline,
        "systems": systems,
        "boards": boards,
        "pages": pages,
        "provenance": ctx.provenance,
        "decimals": DECIMALS,
    }
    body = "\n".join(
        [
            _selection_hint(ctx.config.selection),
            _leaderboard_section(),
            _paper_section(ctx, golden),
            _datasets_section(ctx, datasets),
            _runs_section(ctx),
        ]
    )
    return _page(ctx.config.title, ctx.config.title, "index", body, data, "")


def _selection_hint(selection: Selection) -> str:
    """What `-s`/`-d` chose, above everything they filter ('' when all is shown)."""
    parts = [
        f"{what} matching {', '.join(patterns)}"
        for what, patterns in (("systems", selection.systems), ("datasets", selection.datasets))
        if patterns
    ]
    return f"<p class='hint selection'>Showing only {_esc(' and '.join(parts))}.</p>" if parts else ""


def _draw_all(ctx: _Context, metrics: list[str]) -> None:
    """Bootstrap every (system, metric) of a dataset with one set of resamples, before the boards
    (one per metric and baseline) read their draws."""
    if ctx.draws is None:
        return
    for label in sorted({r.label for r in ctx.results}):
        stored = [r for r in ctx.results if r.label == label]
        columns = {(r.system, m): r.per_query[m] for r in stored for m in metrics if r.per_query.get(m)}
        ctx.draws.of(label, columns)


def _leaderboard_section() -> str:
    return """<section id="leaderboard">
<h2>Leaderboard</h2>
<div class="controls">
<label>Metric <select id="metric"></select></label>
<label>Significance against <select id="baseline"></select></label>
<label><input type="checkbox" id="show-ci" checked> intervals</label>
<label><input type="checkbox" id="show-judged"> Judged@10</label>
<span class="hint">Click a column header to sort; click a number for its provenance.</span>
</div>
<div class="table-wrap"><table id="leaderboard-table" class="numbers"></table></div>
<ul id="leaderboard-notes" class="notes"></ul>
<figure class="chart"><div id="leaderboard-chart"></div><figcaption id="leaderboard-caption"></figcaption></figure>
</section>"""


def _golden_statuses(rows: Sequence[paper.CheckRow]) -> dict[tuple[str, str, str], list[paper.CheckRow]]:
    out: dict[tuple[str, str, str], list[paper.CheckRow]] = {}
    for r in rows:
        e = r.expectation
        out.setdefault((e.system, e.dataset, e.metric), []).append(r)
    return out


_STATUS_ORDER = {"OK": 0, "OKISH": 1, "FAIL": 2}


def _paper_section(ctx: _Context, golden: Path | None) -> str:
    checks: list[paper.CheckRow] = []
    golden_note = ""
    if golden is not None and Path(golden).is_file():
        try:
            expected = paper.load_golden(Path(golden))
            shown = [e for e in expected if ctx.config.selection.shows(e.system, e.dataset)]
            checks = paper.check_golden(ctx.results, shown)
        except ValueError as e:
            golden_note = f"<p class='warn'>Golden file not usable: {_esc(e)}</p>"
    else:
        golden_note = "<p class='hint'>No golden file (results/golden.yaml), so no golden-check status.</p>"
    statuses = _golden_statuses(checks)
    parts = [
        '<section id="paper">',
        "<h2>GTR paper tables</h2>",
        "<p>Our stored results, each beside the published figure for the same system, in the GTR paper's "
        "dataset order (the table `gtr-eval paper` prints). A badge after our number gives the golden check "
        "for it (hover for the expectations).</p>",
    ]
    groups = paper.table_groups(ctx.results)
    column_system = {f"{g.label} ours": g.system for g in groups}
    for metric in paper.METRICS:
        table = paper.paper_table(
            ctx.results, metric, only_run=True, refs=ctx.reference_table, run_systems_only=True
        )
        if table.empty:
            parts.append("<p class='hint'>None of the stored datasets is in the paper's table.</p>")
            break
        parts.append(
            _paper_table_html(ctx, table, metric, column_system, statuses, [g.label for g in groups])
        )
    parts.append('<ul class="notes">' + "".join(f"<li>{_esc(n)}</li>" for n in paper.NOTES) + "</ul>")
    parts.append(golden_note)
    if checks:
        parts.append(_golden_table_html(checks, golden))
    parts.append("</section>")
    return "\n".join(parts)


def _paper_header(columns: Sequence[str], labels: Sequence[str]) -> str:
    """Two header rows: the system (spanning its columns), then ours / its published figure."""
    spans: list[list[Any]] = []  # [label, count]
    subs = []
    for col in columns:
        label = max((g for g in labels if col.startswith(g + " ")), key=len, default="")
        subs.append(col[len(label) :].strip() if label else col)
        if spans and spans[-1][0] == label:
            spans[-1][1] += 1
        else:
            spans.append([label, 1])
    top = "".join(f'<th colspan="{n}" class="group">{_esc(label)}</th>' for label, n in spans)
    return (
        f'<tr><th rowspan="2">dataset</th>{top}</tr>'
        f"<tr>{''.join(f'<th>{_esc(sub)}</th>' for sub in subs)}</tr>"
    )


def _paper_table_html(ctx, table, metric: str, column_system: dict[str, str], statuses, labels) -> str:
    head = _paper_header(list(table.columns), labels)
    body = []
    for dataset, row in table.iterrows():
        cells = [f"<th>{_esc(dataset)}</th>"]
        for col, value in row.items():
            cls = "ours" if col in column_system else "ref"
            attrs = f' class="{cls}"'
            badge = ""
            system = column_system.get(col)
            if system is not None and value != paper.NOT_RUN:
                idx = _prov_for(ctx, system, str(dataset))
                attrs += f' data-prov="{",".join(map(str, idx))}"' if idx else ""
                found = statuses.get((system, str(dataset), metric), [])
                if found:
                    worst = max(found, key=lambda c: _STATUS_ORDER[c.status]).status
                    tip = "; ".join(
                        f"{c.status}: expected {c.expectation.expected:g} ±{c.expectation.tolerance:g} "
                        f"({c.expectation.source})"
                        for c in found
                    )
                    badge = f' <span class="badge {worst.lower()}" title="{_esc(tip)}">{worst}</span>'
            cells.append(f"<td{attrs}>{_esc(value)}{badge}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f'<h3>{_esc(metric)}</h3>\n<div class="table-wrap"><table class="paper numbers" data-metric="{_esc(metric)}">'
        f"<thead>{head}</thead><tbody>{''.join(body)}</tbody></table></div>"
    )


def _prov_for(ctx: _Context, system: str, dataset: str) -> list[int]:
    if dataset == CQADUPSTACK:
        return [i for (s, d), i in ctx.prov_index.items() if s == system and d.startswith(CQADUPSTACK + "/")]
    i = ctx.prov_index.get((system, dataset))
    return [] if i is None else [i]


def _golden_table_html(checks: Sequence[paper.CheckRow], golden: Path | None) -> str:
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "status",
            "system",
            "dataset",
            "metric",
            "expected",
            "ours",
            "Δ",
            "tolerance",
            "source",
        )
    )
    rows = []
    for c in checks:
        e = c.expectation
        expected, actual, diff = paper.check_cells(c)
        rows.append(
            f'<tr><td><span class="badge {c.status.lower()}">{c.status}</span></td><td>{_esc(e.system)}</td>'
            f"<td>{_esc(e.dataset)}</td><td>{_esc(e.metric)}</td><td class='num'>{expected}</td>"
            f"<td class='num'>{actual}</td><td class='num'>{diff}</td><td class='num'>±{e.tolerance:g}</td>"
            f"<td>{_esc(e.source)}</td></tr>"
        )
    counts = ", ".join(f"{sum(c.status == s for c in checks)} {s}" for s in ("OK", "OKISH", "FAIL"))
    return (
        f'<h3 id="golden">Golden check <span class="hint">({_esc(golden)}: {counts}; OK within the tolerance, '
        f"OKISH within twice it)</span></h3>"
        f'<div class="table-wrap"><table class="golden"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}'
        "</tbody></table></div>"
    )


def _datasets_section(ctx: _Context, datasets: list[str]) -> str:
    items = []
    for d in datasets:
        systems = sorted(r.system for r in ctx.results if r.label == d)
        split = next(r.split for r in ctx.results if r.label == d)
        items.append(
            f'<li><a href="{_esc(dataset_href(d))}">{_esc(d)}</a> <span class="hint">({_esc(split)}; '
            f"{_esc(', '.join(systems))})</span></li>"
        )
    return f'<section id="datasets"><h2>Datasets</h2><ul class="datasets">{"".join(items)}</ul></section>'


def _runs_section(ctx: _Context) -> str:
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "system",
            "dataset",
            "model",
            "revision",
            "weights sha256",
            "settings",
            "created from commit",
        )
    )
    rows = []
    for i, p in enumerate(ctx.provenance):
        m, s = p["manifest"], p["manifest"].get("spec") or {}
        settings = _settings_summary(s)
        rows.append(
            f'<tr><td><a href="#" data-prov="{i}">{_esc(p["system"])}</a></td><td>{_esc(p["dataset"])}</td>'
            f"<td>{_esc(s.get('hub_id') or s.get('model') or s.get('retriever') or '')}</td>"
            f"<td>{_esc(s.get('revision') or '')}</td><td class='hash'>{_esc((s.get('weights_sha256') or '')[:16])}</td>"
            f"<td>{_esc(settings)}</td><td class='hash'>{_esc((m.get('git_commit') or '')[:12])}</td></tr>"
        )
    return (
        '<section id="runs"><h2>Runs</h2><p class="hint">One row per stored (system, dataset); click the system '
        "for the full provenance.</p>"
        f'<div class="table-wrap"><table class="runs"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}'
        "</tbody></table></div></section>"
    )


def _settings_summary(m: dict[str, Any]) -> str:
    """The settings of a recorded spec, in a few words."""
    if m.get("retriever") == "imported":
        return f"imported TREC run {Path(str((m.get('imported') or {}).get('run_file', ''))).name}"
    if isinstance(m.get("bm25"), dict):
        b = m["bm25"]
        return f"BM25 {b.get('method')} k1={b.get('k1')} b={b.get('b')}"
    keys = ("dtype", "backend", "max_length", "score", "batch_size")
    return ", ".join(f"{k}={m[k]}" for k in keys if m.get(k) is not None)


# --- dataset pages ------------------------------------------------------------------------------


def _dataset_page(ctx: _Context, dataset: str) -> str:
    stored = [r for r in ctx.results if r.label == dataset]
    systems = [r.system for r in stored]
    metrics = [m for m in metric_names() if any(m in r.metrics for r in stored)]
    metrics += sorted({m for r in stored for m in r.metrics} - set(metrics))
    files, why = _dataset_files(stored, ctx.config.data_dir)
    qmetrics = [m for m in QUERY_METRICS if all(m in r.per_query for r in stored)]
    qids = sorted({q for r in stored for m in qmetrics for q in r.per_query[m]})
    per_query = {
        r.system: {m: [_round(r.per_query[m].get(q)) for q in qids] for m in qmetrics} for r in stored
    }
    comparison = _Comparison(ctx, stored, files)
    pairs = {}
    for a, b in combinations(stored, 2):
        pairs[f"{a.system}\t{b.system}"] = {m: comparison.pair(a, b, m) for m in qmetrics}
    comparison.finish()
    data = {
        "page": "dataset",
        "dataset": dataset,
        "split": stored[0].split,
        "systems": systems,
        "metrics": metrics,
        "values": {r.system: {m: r.metrics.get(m) for m in metrics} for r in stored},
        "queryMetrics": qmetrics,
        "qids": qids,
        "perQuery": per_query,
        "pairs": pairs,
        "queries": comparison.query_texts(),
        "docs": comparison.documents(),
        "provenance": [ctx.provenance[ctx.prov_index[(r.system, dataset)]] for r in stored],
        "decimals": DECIMALS,
        "defaultPair": _default_pair(ctx, systems),
        "textSource": files.source if files else None,
        "textMissing": None if files else why,
    }
    n_queries = len(qids)
    body = f"""<p class="lede">Split <b>{_esc(stored[0].split)}</b>, {n_queries} judged queries,
{len(systems)} system{"s" if len(systems) != 1 else ""}. <a href="../index.html">Back to the leaderboard</a>.</p>
<section id="metrics"><h2>Every metric</h2>
<p class="hint">Best value per metric in bold. Click a number for its provenance.</p>
<div class="table-wrap"><table id="metrics-table" class="numbers"></table></div></section>
<section id="compare"><h2>Per-query comparison</h2>
<div class="controls">
<label>System A <select id="system-a"></select></label>
<label>System B <select id="system-b"></select></label>
<label>Metric <select id="query-metric"></select></label>
</div>
<p id="compare-summary"></p>
<div class="charts"><figure class="chart"><div id="scatter"></div><figcaption>Each point is a query: A's score
across, B's up. Above the diagonal B is better.</figcaption></figure>
<figure class="chart"><div id="wtl"></div><figcaption>Queries where B wins, ties and loses against A.</figcaption></figure></div>
<h3>Where they disagree most</h3>
<p class="hint" id="disagree-source"></p>
<div class="table-wrap"><table id="disagree-table"></table></div>
</section>"""
    title = f"{dataset} — {ctx.config.title}"
    return _page(title, dataset, "dataset", body, data, "../")


def _dataset_files(stored: list[StoredResult], data_dir: Path | None) -> tuple[DatasetFiles | None, str]:
    """The first BEIR folder any of the systems' manifests leads to (documents come only from a
    folder), else the qrels file an imported run was scored with, else why none was found."""
    fallback, reasons = None, []
    for r in stored:
        files, why = locate(r, data_dir)
        if files is not None and files.folder is not None:
            return files, ""
        fallback = fallback or files
        reasons.append(why)
    return fallback, "" if fallback else "; ".join(dict.fromkeys(w for w in reasons if w))


def _default_pair(ctx: _Context, systems: list[str]) -> list[str]:
    base = ctx.config.baseline
    a = base if base in systems else ("bm25" if "bm25" in systems else systems[0])
    b = next((s for s in systems if s != a), a)
    return [a, b]


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)


class _Comparison:
    """Per-pair statistics and the queries where two systems disagree most, with the relevant
    document the better system ranks highest and where each system ranks it.

    `pair` ranks the queries from the stored per-query scores; `finish` then reads each run file
    once, keeping only the lines of the queries listed, and fills in documents and ranks.
    """

    def __init__(self, ctx: _Context, stored: list[StoredResult], files: DatasetFiles | None):
        self.ctx, self.stored, self.files = ctx, stored, files
        self._pending: list[tuple[StoredResult, StoredResult, dict[str, Any]]] = []
        self._docs: set[str] = set()

    def pair(self, a: StoredResult, b: StoredResult, metric: str) -> dict[str, Any]:
        pa, pb = a.per_query[metric], b.per_query[metric]
        qids = sorted(set(pa) & set(pb))
        x = np.array([pa[q] for q in qids], dtype=float)
        y = np.array([pb[q] for q in qids], dtype=float)
        diff = y - x
        order = sorted(range(len(qids)), key=lambda i: (-abs(diff[i]), qids[i]))
        top = [
            {"q": qids[i], "a": float(x[i]), "b": float(y[i])}
            for i in order[: self.ctx.config.top_queries]
            if diff[i] != 0
        ]
        self._pending += [(a, b, row) for row in top]
        return {
            "n": len(qids),
            "meanA": float(x.mean()) if len(qids) else None,
            "meanB": float(y.mean()) if len(qids) else None,
            "p": paired_test(x, y, self.ctx.config.test) if len(qids) >= 2 else None,
            "wins": int((diff > 0).sum()),
            "ties": int((diff == 0).sum()),
            "losses": int((diff < 0).sum()),
            "top": top,
        }

    def finish(self) -> None:
        if self.files is None or not self._pending:
            return
        wanted: dict[str, set[str]] = {}
        for a, b, row in self._pending:
            for r in (a, b):
                wanted.setdefault(r.system, set()).add(row["q"])
        ranks = {r.system: _ranks(r, wanted[r.system]) for r in self.stored if r.system in wanted}
        for a, b, row in self._pending:
            self._fill(row, ranks[a.system].get(row["q"], {}), ranks[b.system].get(row["q"], {}))

    def _fill(self, row: dict[str, Any], ranks_a: dict[str, int], ranks_b: dict[str, int]) -> None:
        relevant = {d: g for d, g in self.files.qrels.get(row["q"], {}).items() if g > 0}
        if not relevant:
            return
        ranks_w = ranks_b if row["b"] > row["a"] else ranks_a
        doc = min(relevant, key=lambda d: (ranks_w.get(d, math.inf), -relevant[d], d))
        if doc not in ranks_w:  # the better system found none: show a most relevant one
            top_grade = max(relevant.values())
            doc = min(d for d, g in relevant.items() if g == top_grade)
        self._docs.add(doc)
        row.update(
            doc=doc, grade=relevant[doc], nrel=len(relevant), rankA=ranks_a.get(doc), rankB=ranks_b.get(doc)
        )

    def query_texts(self) -> dict[str, str]:
        if self.files is None:
            return {}
        listed = {row["q"] for _, _, row in self._pending}
        return {q: self.files.queries[q] for q in sorted(listed) if q in self.files.queries}

    def documents(self) -> dict[str, dict[str, str]]:
        if self.files is None or self.files.folder is None or not self._docs:
            return {}
        found = read_documents(self.files.folder, self._docs)
        return {
            d: {"title": title, "text": text[:SNIPPET_CHARS] + ("…" if len(text) > SNIPPET_CHARS else "")}
            for d, (title, text) in sorted(found.items())
        }


def _ranks(result: StoredResult, qids: set[str]) -> dict[str, dict[str, int]]:
    """Rank of every retrieved document for the queries `qids`, in one pass over the run file,
    ordered as they were scored (trec_eval's tie order; the query's own id dropped when the scoring
    dropped it)."""
    docs: dict[str, dict[str, float]] = {q: {} for q in qids}
    opener = gzip.open if result.run_path.name.endswith(".gz") else open
    with opener(result.run_path, "rt", encoding="utf-8") as fh:
        for line in fh:
            qid, _, rest = line.partition(" ")
            if qid in docs:
                cols = rest.split()
                docs[qid][cols[1]] = float(cols[3])
    drop = (result.manifest.get("dataset") or {}).get("ignore_identical_ids", True)
    return {
        q: {
            d: i
            for i, (d, _) in enumerate(ranked({d: s for d, s in found.items() if not (drop and d == q)}), 1)
        }
        for q, found in docs.items()
    }
