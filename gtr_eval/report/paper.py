"""The GTR paper's BEIR tables, regenerated from stored results, and the golden-score check.

`paper_table` lays our numbers beside the published ones (the GTR paper's, second-hand, and MTEB's)
per GTR size, for BM25 and for any other evaluated system, in the paper's dataset order; a system
that was not run leaves a marked gap rather than a silent hole (`run_systems_only` keeps only the
systems with a stored result, as `gtr-eval paper` prints by default).  `check_golden` compares stored
results with expected scores, each of which names where it comes from; a pair with no stored result
is MISSING, not FAIL.  Without a golden file of its own a results folder is checked against the one
shipped with gtr-eval (`BUNDLED_GOLDEN`, which the repository's results/golden.yaml links to).
"""

from __future__ import annotations

import math
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
from .tables import CQADUPSTACK, CQADUPSTACK_SUBFORUMS, DATASET_ORDER, load_references, subforum_mean

PAPER_REF = "gtr-paper-table (second-hand copy, unconfirmed)"
BEIR_REF = "beir-paper-table2 (second-hand copy)"
PYSERINI = "pyserini-2cr"
MTEB = "mteb-results"
EXACT = (MTEB, PYSERINI)  # sources with 4 or more decimals; second-hand copies have 3
NOT_RUN = "not run"
METRICS = ("ndcg@10", "recall@100")


@dataclass(frozen=True)
class Group:
    """One system of the paper's table: our system name and the published columns beside it."""

    label: str
    system: str
    references: tuple[tuple[str, str, str], ...]  # (column label, source, system in the CSV)
    delta: bool = True  # False when the reference is another model (BEIR's ColBERT is v1, ours v2)


# The BM25 column shows one of three systems (`paper --bm25`), each beside its own published setting
# first (Δ is taken against it): bm25 (bm25s) beside MTEB's bm25s, bm25-flat / bm25-multifield
# (Lucene through Anserini) beside Pyserini 2CR's flat / multifield condition.
BM25S_MTEB = ("bm25s MTEB", MTEB, "bm25s")
LUCENE_FLAT = ("Lucene flat", PYSERINI, "bm25-pyserini-flat")
LUCENE_MULTIFIELD = ("Lucene multifield", PYSERINI, "bm25-pyserini-multifield")
BM25_REFERENCES = {
    "bm25": (BM25S_MTEB, LUCENE_MULTIFIELD),
    "bm25-flat": (LUCENE_FLAT, LUCENE_MULTIFIELD),
    "bm25-multifield": (LUCENE_MULTIFIELD, LUCENE_FLAT),
}


def bm25_group(system: str = "bm25") -> Group:
    """The BM25 column from `system`; a Lucene system names itself in the column's label."""
    if system not in BM25_REFERENCES:
        from ..errors import Mistake, did_you_mean

        raise Mistake(f"the BM25 column shows {', '.join(BM25_REFERENCES)}, not {system!r}"
                      f"{did_you_mean(system, BM25_REFERENCES)}")  # fmt: skip
    return Group("BM25" if system == "bm25" else f"BM25 ({system})", system, BM25_REFERENCES[system])


PAPER_GROUPS = (
    bm25_group("bm25"),
    Group("GTR-Base", "gtr-t5-base", (("paper²", PAPER_REF, "gtr-base"), ("MTEB", MTEB, "gtr-t5-base"))),
    Group("GTR-Large", "gtr-t5-large", (("MTEB", MTEB, "gtr-t5-large"),)),
    Group("GTR-XL", "gtr-t5-xl", (("MTEB", MTEB, "gtr-t5-xl"),)),
    Group("GTR-XXL", "gtr-t5-xxl", (("paper²", PAPER_REF, "gtr-xxl"), ("MTEB", MTEB, "gtr-t5-xxl"))),
    # The paper's baselines (BEIR's Table 2 models), SPLADE++ and Contriever; re-ranking last.
    Group("DPR", "dpr", (("BEIR²", BEIR_REF, "dpr"),)),
    Group("ANCE", "ance", (("BEIR²", BEIR_REF, "ance"),)),
    Group("TAS-B", "tas-b", (("BEIR²", BEIR_REF, "tas-b"),)),
    Group("GenQ", "genq", (("BEIR²", BEIR_REF, "genq"),)),
    Group("ColBERT", "colbertv2", (("v1 BEIR²", BEIR_REF, "colbert"),), delta=False),
    Group("SPLADE++", "splade-pp-ed", (("Pyserini", PYSERINI, "splade-pp-ed"),)),
    Group("Contriever", "contriever-msmarco", (("Pyserini", PYSERINI, "contriever-msmarco"),)),
    Group("BM25+CE", "bm25>>ms-marco-MiniLM-L6-v2", (("BEIR²", BEIR_REF, "bm25+ce"),)),
)

NOTES = (
    "ours = this harness's stored result; `not run` marks a system not evaluated on that dataset.",
    "paper² = the GTR paper's NDCG@10 as copied by a later paper (second-hand, unconfirmed, "
    "3 decimals); the paper's Large/XL columns and Recall@100 are not available to us.",
    "MTEB = the MTEB results repository (sentence-transformers ports of the GTR checkpoints). BM25 ours = "
    "bm25 (bm25s, k1 1.5, b 0.75: MTEB's setting) unless the column names bm25-flat or bm25-multifield "
    "(Lucene BM25 through Anserini, k1 0.9, b 0.4: `paper --bm25`); Lucene flat / multifield = Pyserini "
    "2CR's two BM25 conditions, multifield being the BEIR paper's setting.",
    "BEIR² = the BEIR paper's Table 2 (NDCG@10, 3 decimals) as copied by a later source. Its ColBERT is v1 (ours: colbertv2, so no Δ); its BM25+CE re-ranks "
    "Elasticsearch BM25's top 100 with ms-marco-MiniLM-L6-v2 (ours: our bm25's, `gtr-eval rerank`). "
    "Pyserini = Pyserini 2CR (SPLADE++ ED, Contriever-MSMARCO).",
    "GenQ (BEIR's per-dataset synthetic-query models) has no preset: its column stays `not run`.",
    "Δ = ours − the first reference beside it that has a value.",
    "cqadupstack = mean of its 12 subforums (BEIR's convention); msmarco is scored on dev.",
)


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


def table_groups(results: Sequence[StoredResult], bm25: str = "bm25") -> list[Group]:
    """The paper's groups (the BM25 column from `bm25`), then every other evaluated system: the other
    BM25 systems beside their published settings, the rest with MTEB's figure when MTEB has one."""
    groups = [bm25_group(bm25), *PAPER_GROUPS[1:]]
    known = {g.system for g in groups}
    extra = sorted({r.system for r in results} - known)
    return [*groups, *(Group(s, s, BM25_REFERENCES.get(s, (("MTEB", MTEB, s),))) for s in extra)]


def paper_table(
    results: Sequence[StoredResult],
    metric: str = "ndcg@10",
    only_run: bool = False,
    refs: pd.DataFrame | None = None,
    run_systems_only: bool = False,
    bm25: str = "bm25",
) -> pd.DataFrame:
    """Rows: datasets in the paper's order (`only_run`: those with a stored result); columns: per group
    ours, references, Δ (strings); `run_systems_only`: only the groups with a stored result (for
    `metric`, on a dataset of the paper's); `bm25`: the system the BM25 column shows (bm25,
    bm25-flat or bm25-multifield).  The metric name is normalised (`NDCG@10`); an unknown one is a
    ValueError naming the closest."""
    metric = normalise_metric(metric, known=sorted({m for r in results for m in r.metrics}))
    refs = load_references() if refs is None else refs
    ref = {
        (s, sy, d): v
        for s, sy, d, v in refs.loc[
            refs["metric"] == metric, ["source", "system", "dataset", "value"]
        ].itertuples(index=False)
    }
    ours = _our_scores(results, metric)
    datasets = list(DATASET_ORDER)
    if only_run:
        datasets = [d for d in datasets if any(k[1] == d for k in ours)]
    groups = table_groups(results, bm25)
    if run_systems_only:
        groups = [g for g in groups if any((g.system, d) in ours for d in DATASET_ORDER)]
    rows = []
    for d in datasets:
        row: dict[str, str] = {"dataset": d}
        for g in groups:
            mine = ours.get((g.system, d))
            row[f"{g.label} ours"] = NOT_RUN if mine is None else f"{mine:.4f}"
            first_ref = None
            for label, source, system in g.references:
                v = ref.get((source, system, d))
                row[f"{g.label} {label}"] = "" if v is None else f"{v:.4f}" if source in EXACT else f"{v:.3f}"
                first_ref = first_ref if first_ref is not None else v
            diff = None if mine is None or first_ref is None or not g.delta else mine - first_ref
            row[f"{g.label} Δ"] = "" if diff is None else f"{diff:+.4f}"
        rows.append(row)
    if not rows:  # e.g. only non-BEIR datasets are stored and only_run is set
        return pd.DataFrame(index=pd.Index([], name="dataset"))
    table = pd.DataFrame(rows).set_index("dataset")
    # Drop reference/Δ columns that are empty for every shown row; keep `ours` so gaps stay visible.
    keep = [c for c in table.columns if c.endswith(" ours") or (table[c] != "").any()]
    return table[keep]


# Which columns each note explains (by a word of their labels); a note without an entry is always kept.
_NOTE_KEYS = {
    NOTES[1]: ("paper²",),
    NOTES[2]: ("MTEB", "Lucene"),
    NOTES[3]: ("BEIR²", "Pyserini"),
    NOTES[4]: ("GenQ",),
    NOTES[5]: ("Δ",),
}
NOTE_WIDTH = 100


def render_paper(table: pd.DataFrame, metric: str, fmt: str = "markdown", compact: bool = False) -> str:
    """The table with its title and notes.  `compact` (a terminal's view, `gtr-eval paper`): only the
    notes about columns the table has, wrapped at `NOTE_WIDTH`; the committed tables keep them all."""
    import textwrap

    title = f"GTR paper table, {metric} (BEIR, zero-shot)"
    if fmt == "csv":
        return table.to_csv()
    notes = list(NOTES)
    if compact:
        words = {w for c in table.columns for w in str(c).split()}
        notes = [n for n in notes if n not in _NOTE_KEYS or words & set(_NOTE_KEYS[n])]
    tablefmt = {"markdown": "github", "latex": "latex_booktabs", "html": "html"}[fmt]
    body = tabulate(
        table.reset_index().values.tolist(),
        headers=["dataset", *table.columns],
        tablefmt=tablefmt,
        disable_numparse=True,
    )
    if compact:
        notes = "\n".join("\n".join(textwrap.wrap(n, NOTE_WIDTH, initial_indent="- ", subsequent_indent="  ",
                                                  break_on_hyphens=False)) for n in notes)  # fmt: skip
    else:
        notes = "\n".join(f"- {n}" for n in notes)
    if fmt == "markdown":
        return f"**{title}**\n\n{body}\n\n{notes}\n"
    return f"{title}\n{body}\n{notes}\n"


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


def render_check(rows: Sequence[CheckRow]) -> str:
    """The checked rows as a table, then one line naming the MISSING pairs (not run), then the counts."""
    missing = [r for r in rows if r.status == "MISSING"]
    rows = [r for r in rows if r.status != "MISSING"]
    body = [
        [
            r.status,
            r.expectation.system,
            r.expectation.dataset,
            r.expectation.metric,
            f"{r.expectation.expected:.5f}",
            "missing" if r.actual is None else f"{r.actual:.5f}",
            "" if r.diff is None else f"{r.diff:+.5f}",
            f"±{r.expectation.tolerance:g}",
            r.expectation.source,
        ]
        for r in rows
    ]
    headers = ["status", "system", "dataset", "metric", "expected", "actual", "diff", "tolerance", "source"]
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
        text += f"MISSING (no stored result, not run; not a failure): {len(missing)} check(s) of {named}\n\n"
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
        atomic_write_text(path, render_paper(paper_table(results, metric, only_run=only_run), metric))
        written.append(path)
        baseline = LEADERBOARD_BASELINE if LEADERBOARD_BASELINE in systems and len(systems) > 1 else None
        board = leaderboard(results, metric=metric, baseline=baseline)
        path = out_dir / f"leaderboard-{metric}.md"
        atomic_write_text(path, render(board, "markdown"))
        written.append(path)
    return written
