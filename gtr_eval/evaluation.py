"""Score a run against qrels the way BEIR does, with every convention written down.

Conventions (each has a test in tests/test_evaluation.py; (e) and (f) in tests/test_judged.py):

(a) Identical ids.  With `ignore_identical_ids` (BEIR's `EvaluateRetrieval.evaluate` default) a
    retrieved document whose id equals the query id is dropped before scoring.  It matters for
    ArguAna and Quora, where queries are also corpus documents and would otherwise find themselves.
(b) The mean is over the *judged* queries: a judged query with no retrieved document scores zero in
    every measure, and queries in the run but not in the qrels are ignored.  BEIR divides by the
    number of queries present in both run and qrels instead; when the run covers every judged
    query (what a retriever produces) the two are identical, and ours cannot be inflated by a run
    that silently skips hard queries.
(c) Relevance is grade > 0 for the binary measures (recall, precision, MAP, MRR: pytrec_eval's
    relevance_level=1); NDCG uses the graded gains as they are.
(d) `average_subsets` is a plain mean of per-subset metrics; BEIR's CQADupStack figure is the mean
    of its 12 subforums, not a pooled mean over their queries.
(e) `judged@k` (k in 1, 3, 5, 10, 100) is ir_measures' `Judged@k`: the share of a query's top k that
    has a judgment *for that query*, any grade, 0 included (beir's `Hole@k` instead counts a document
    as judged when any query judged it).  The denominator is min(k, documents retrieved), as in
    ir_measures; a judged query that retrieves nothing scores 0, per (b).  It is computed on the same
    prepared run as every other measure (after (a)'s identical-id removal, ranked as below), so
    `judged@10` describes exactly the top 10 that `ndcg@10` scored (given raw scores, ir_measures
    breaks ties by document id ascending instead).  It says how much of a ranking the assessors
    saw, not how good it is: on qrels that hold positives only (SciFact, NQ, ...) it is a precision
    in disguise (SciFact's Judged@10: 0.091 for BM25, 0.088 for all-MiniLM-L6-v2).
(f) Condensed lists (Sakai 2007, "judged-only" evaluation; trec_eval's `-J`), opt-in with
    `evaluate(..., condensed=True)`: every unjudged document is removed from the ranking, the rest
    moves up, and the usual measures are computed on what is left, named with a prime
    (`ndcg@10'`, `p@10'`, `mrr@10'`).  Unjudged documents then no longer count as non-relevant,
    which removes the bias against a system the pool never saw; but the scores reward retrieving
    judged documents at all (on positives-only qrels NDCG@10' is little more than recall), are not
    comparable with the uncondensed ones or across pools, and dropping what was never judged can
    flatter a system unlike those that built the pool as much as counting it non-relevant hurts it.

Ties: every measure ranks tied scores as trec_eval does (score descending, then document id
descending): the pytrec_eval measures natively, `mrr@10` through `ranked`, and the TREC run files
are written in that order.  BEIR's `custom_metrics.mrr` instead keeps the run's insertion order
among ties, which depends on the search kernel (NFCorpus has exact duplicate documents, which tie);
ours does not, so MRR@10 is deterministic and agrees with `recip_rank` within the top 10.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytrec_eval

from .data.loader import QRELS_HEADER, DataError, Judgments, read_qrels
from .io import atomic_writer
from .uncertainty import Bootstrap, Draws, percentile_interval

Qrels = dict[str, dict[str, int]]
Run = dict[str, dict[str, float]]

DEFAULT_K_VALUES: tuple[int, ...] = (1, 3, 5, 10, 100, 1000)
MRR_CUTOFF = 10
JUDGED_K_VALUES: tuple[int, ...] = (1, 3, 5, 10, 100)
CONDENSED = "'"  # the suffix of a condensed-list measure: `ndcg@10'`
EVAL_BATCH_QUERIES = 1000

# Our metric prefix -> (pytrec_eval measure family, prefix of pytrec_eval's per-query key).
_PYTREC_FAMILIES = {
    "ndcg": ("ndcg_cut", "ndcg_cut_"),
    "recall": ("recall", "recall_"),
    "map": ("map_cut", "map_cut_"),
    "p": ("P", "P_"),
}


@dataclass
class Evaluation:
    """Mean metrics plus the per-query scores behind them (needed for significance tests)."""

    metrics: dict[str, float]
    per_query: dict[str, dict[str, float]]
    k_values: tuple[int, ...] = DEFAULT_K_VALUES
    ignore_identical_ids: bool = True
    missing_queries: list[str] = field(default_factory=list)
    unjudged_queries: int = 0

    @property
    def n_queries(self) -> int:
        return len(next(iter(self.per_query.values()), {}))

    def intervals(self, bootstrap: Bootstrap | None = None, dataset: str = "") -> dict[str, list[float]]:
        """[low, high] of every metric's mean: the percentile bootstrap over the judged queries
        (`uncertainty`; 95%, 10,000 resamples, seed 0 by default), all metrics redrawn with the same
        resamples.  `dataset` names the stream of draws (tables draw each dataset's by its name)."""
        bootstrap = bootstrap or Bootstrap()
        draws = Draws(bootstrap).of(dataset, self.per_query)
        return {m: list(percentile_interval(draws[m], bootstrap.level)) for m in self.metrics if m in draws}


def metric_names(k_values: Sequence[int] = DEFAULT_K_VALUES) -> list[str]:
    """Every key `evaluate` returns (without `condensed`), in a stable display order."""
    return _score_names(k_values) + judged_names()


def _score_names(k_values: Sequence[int]) -> list[str]:
    """The relevance measures: those a condensed list is scored with too."""
    names = [f"{m}@{k}" for m in _PYTREC_FAMILIES for k in k_values]
    return names + [f"mrr@{MRR_CUTOFF}", "mrr"]


def judged_names() -> list[str]:
    return [f"judged@{k}" for k in JUDGED_K_VALUES]


def condensed_names(k_values: Sequence[int] = DEFAULT_K_VALUES) -> list[str]:
    """What `evaluate(..., condensed=True)` adds: each relevance measure on the condensed list."""
    return [name + CONDENSED for name in _score_names(k_values)]


def is_judged(metric: str) -> bool:
    return metric in judged_names()


def is_condensed(metric: str) -> bool:
    return metric.endswith(CONDENSED)


def evaluate(
    qrels: Qrels,
    run: Run,
    k_values: Iterable[int] = DEFAULT_K_VALUES,
    ignore_identical_ids: bool = True,
    condensed: bool = False,
) -> Evaluation:
    """Score `run` against `qrels` (inputs are not modified); see the module docstring.  `condensed`
    adds every relevance measure on the condensed list (convention (f)), named with a prime."""
    ks = tuple(sorted({int(k) for k in k_values}))
    if not ks or ks[0] < 1:
        raise ValueError(f"k_values must be positive integers, got {ks}")
    if not qrels:
        raise ValueError("qrels are empty: nothing to evaluate against")
    qrels = {str(q): {str(d): int(g) for d, g in docs.items()} for q, docs in qrels.items()}
    names = metric_names(ks) + (condensed_names(ks) if condensed else [])
    per_query: dict[str, dict[str, float]] = {name: {} for name in names}
    missing: list[str] = []
    by_id = {str(q): docs for q, docs in run.items()}
    qids = list(qrels)
    # Query batches: every measure is per query, so the result is the same, and the copies (and
    # pytrec_eval's own) of a 7M-entry run never exist at once.
    for start in range(0, len(qids), EVAL_BATCH_QUERIES):
        part = {q: qrels[q] for q in qids[start : start + EVAL_BATCH_QUERIES]}
        judged_run = prepare_run(part, {q: by_id[q] for q in part if q in by_id}, ignore_identical_ids)
        scored = _relevance_per_query(part, judged_run, ks)
        scored.update(judged_at_k(part, judged_run))
        if condensed:
            on_judged = _relevance_per_query(part, condensed_run(part, judged_run), ks)
            scored.update({name + CONDENSED: scores for name, scores in on_judged.items()})
        for name, scores in per_query.items():
            scores.update(scored[name])
        missing += [q for q in part if not judged_run.get(q)]
    n = len(qrels)
    metrics = {name: float(sum(scores.values()) / n) for name, scores in per_query.items()}
    return Evaluation(
        metrics=metrics,
        per_query=per_query,
        k_values=ks,
        ignore_identical_ids=ignore_identical_ids,
        missing_queries=sorted(missing),
        unjudged_queries=sum(1 for q in run if str(q) not in qrels),
    )


def _relevance_per_query(qrels: Qrels, run: Run, ks: tuple[int, ...]) -> dict[str, dict[str, float]]:
    scored = _pytrec_per_query(qrels, run, ks)
    scored[f"mrr@{MRR_CUTOFF}"] = mrr_at_k(qrels, run, MRR_CUTOFF)
    return scored


def judged_at_k(
    qrels: Qrels, run: Run, k_values: Iterable[int] = JUDGED_K_VALUES
) -> dict[str, dict[str, float]]:
    """`judged@k` per judged query (convention (e)): of the top min(k, retrieved) documents in
    trec_eval's order, the share that `qrels` judges for that query, whatever the grade; 0 for a
    query that retrieves nothing.  `run` is taken as given: prepare it as `evaluate` does first."""
    ks = sorted({int(k) for k in k_values})
    out: dict[str, dict[str, float]] = {f"judged@{k}": dict.fromkeys(qrels, 0.0) for k in ks}
    for qid, docs in run.items():
        if qid not in qrels or not docs:
            continue
        judged = qrels[qid]
        hits = np.cumsum([d in judged for d, _ in ranked(docs)[: ks[-1]]])
        for k in ks:
            top = min(k, len(hits))
            out[f"judged@{k}"][qid] = float(hits[top - 1]) / top
    return out


def condensed_run(qrels: Qrels, run: Run) -> Run:
    """The condensed list of each query (convention (f)): only the documents `qrels` judges for it,
    with their scores, so they keep their order and close up the gaps the unjudged ones leave."""
    return {qid: {d: s for d, s in docs.items() if d in qrels.get(qid, {})} for qid, docs in run.items()}


def prepare_run(qrels: Qrels, run: Run, ignore_identical_ids: bool) -> Run:
    """A copy holding only judged queries, float scores and (optionally) no query-id documents: the
    run every measure of `evaluate` scores (convention (a))."""
    out: Run = {}
    for qid, docs in run.items():
        qid = str(qid)
        if qid not in qrels:
            continue
        out[qid] = {str(d): float(s) for d, s in docs.items() if not (ignore_identical_ids and str(d) == qid)}
    return out


def _pytrec_per_query(qrels: Qrels, run: Run, ks: tuple[int, ...]) -> dict[str, dict[str, float]]:
    """One pytrec_eval pass for all measures; judged queries it does not report score zero."""
    cut = ",".join(str(k) for k in ks)
    measures = {f"{family}.{cut}" for family, _ in _PYTREC_FAMILIES.values()} | {"recip_rank"}
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, measures, relevance_level=1)
    scores = evaluator.evaluate({q: docs for q, docs in run.items() if docs})
    per_query: dict[str, dict[str, float]] = {}
    for name, (_, key_prefix) in _PYTREC_FAMILIES.items():
        for k in ks:
            key = f"{key_prefix}{k}"
            per_query[f"{name}@{k}"] = {q: float(scores.get(q, {}).get(key, 0.0)) for q in qrels}
    per_query["mrr"] = {q: float(scores.get(q, {}).get("recip_rank", 0.0)) for q in qrels}
    return per_query


def ranked(docs: Mapping[str, float]) -> list[tuple[str, float]]:
    """trec_eval's order: score descending, ties by document id descending."""
    return sorted(docs.items(), key=lambda item: (float(item[1]), item[0]), reverse=True)


def mrr_at_k(qrels: Qrels, run: Run, k: int = MRR_CUTOFF) -> dict[str, float]:
    """Per judged query: 1/rank of the first document with grade > 0 in the top `k`, else 0.

    BEIR's `custom_metrics.mrr`, with one difference that only tied scores can show: BEIR keeps the
    run's insertion order among ties, which depends on the search algorithm (duplicate documents, as
    NFCorpus has, tie exactly); we rank ties like trec_eval (`ranked`), so MRR@10 is deterministic and
    agrees with `recip_rank`.  On a run read back from a file this harness wrote, the two coincide.
    """
    out = dict.fromkeys(qrels, 0.0)
    for qid, docs in run.items():
        if qid not in out:
            continue
        relevant = {d for d, g in qrels[qid].items() if g > 0}
        if not docs or not relevant:
            continue
        for rank, (doc_id, _) in enumerate(ranked(docs)[:k], start=1):
            if doc_id in relevant:
                out[qid] = 1.0 / rank
                break
    return out


def average_subsets(metric_dicts: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Plain mean per metric over subsets (BEIR's CQADupStack convention: mean of 12 subforums).

    Only metrics present in every subset are averaged, so a missing one cannot skew the mean.
    """
    if not metric_dicts:
        raise ValueError("no subsets to average")
    common = set(metric_dicts[0]).intersection(*metric_dicts[1:])
    order = [m for m in metric_dicts[0] if m in common]
    return {m: float(np.mean([d[m] for d in metric_dicts])) for m in order}


# --- TREC run and qrels files ------------------------------------------------------------------


RUN_GZIP_LEVEL = 1  # a 7M-line run: 2 s at level 1, 24 s at gzip's default 9, for a 10% larger file


def write_trec_run(run: Run, path: Path | str, tag: str) -> None:
    """Write `qid Q0 docid rank score tag` lines, ranks 1.. in descending score order.

    Scores are written with `repr(float)` so reading the file back gives the identical floats.  Ties
    are ranked as trec_eval ranks them (`ranked`), so the file's order is what every scorer sees.
    Gzip-compressed when `path` ends with `.gz`; streamed query by query and replaced atomically.
    """
    if not tag or any(c.isspace() for c in tag):
        raise ValueError(f"run tag must be non-empty and without whitespace, got {tag!r}")
    level = RUN_GZIP_LEVEL if str(path).endswith(".gz") else None
    with atomic_writer(path, gzip_level=level) as out:
        for qid, docs in run.items():
            _check_token(qid, "query id")
            if len(" ".join(docs).split()) != len(docs):  # an id is empty or holds whitespace
                for doc_id in docs:
                    _check_token(doc_id, "document id")
            lines = [
                f"{qid} Q0 {d} {r} {float(s)!r} {tag}\n" for r, (d, s) in enumerate(ranked(docs), start=1)
            ]
            out.write("".join(lines).encode("utf-8"))


def _check_token(value: str, what: str) -> None:
    if not value or any(c.isspace() for c in str(value)):
        raise ValueError(f"{what} {value!r} cannot be written to a TREC file (empty or has whitespace)")


def _text_lines(path: Path) -> Iterator[tuple[int, str]]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", newline="") as fh:
        try:
            for lineno, line in enumerate(fh, start=1):
                yield lineno, line.rstrip("\r\n")
        except (UnicodeDecodeError, OSError, EOFError) as e:
            raise DataError(path, None, f"unreadable ({e})") from None


def read_trec_run(path: Path | str) -> Run:
    """Read a TREC run (plain or .gz); the rank column is ignored, as trec_eval does."""
    path = Path(path)
    run: Run = {}
    for lineno, line in _text_lines(path):
        if not line.strip():
            continue
        cols = line.split()
        if len(cols) != 6:
            raise DataError(
                path, lineno, f"expected 6 columns 'qid Q0 docid rank score tag', found {len(cols)}"
            )
        qid, _, doc_id, _, score, _ = cols
        try:
            value = float(score)
        except ValueError:
            raise DataError(path, lineno, f"score {score!r} is not a number") from None
        if not np.isfinite(value):
            raise DataError(path, lineno, f"score {score!r} is not finite")
        docs = run.setdefault(qid, {})
        if doc_id in docs:
            raise DataError(path, lineno, f"document {doc_id!r} listed twice for query {qid!r}")
        docs[doc_id] = value
    if not run:
        raise DataError(path, None, "empty run: no lines")
    return run


def read_qrels_any(path: Path | str) -> Qrels:
    """Read BEIR qrels (tsv with a `query-id corpus-id score` header) or TREC qrels (`qid 0 docid grade`).

    The format is told by the first non-empty line: BEIR's header, or else four columns.
    """
    path = Path(path)
    lines = _text_lines(path)
    first = next((line for _, line in lines if line.strip()), None)
    lines.close()
    if first is None:
        raise DataError(path, None, "empty qrels file")
    if tuple(c.strip() for c in first.split("\t")) == QRELS_HEADER:
        if path.name.endswith(".gz"):
            raise DataError(path, None, "BEIR tsv qrels must be uncompressed")
        return read_qrels(path)[0]
    return _read_trec_qrels(path)


def _read_trec_qrels(path: Path) -> Qrels:
    judged = Judgments(path)
    for lineno, line in _text_lines(path):
        if not line.strip():
            continue
        cols = line.split()
        if len(cols) != 4:
            raise DataError(
                path,
                lineno,
                f"expected TREC qrels 'qid 0 docid grade' (4 columns) or a BEIR header, found {len(cols)} columns",
            )
        qid, _, doc_id, grade = cols
        try:
            value = int(grade)
        except ValueError:
            raise DataError(path, lineno, f"grade {grade!r} is not an integer") from None
        judged.add(lineno, qid, doc_id, value)
    return judged.qrels()


def check_overlap(qrels: Qrels, run: Run, qrels_file: Path | str, run_file: Path | str) -> str | None:
    """A run scored against judgments it does not belong to would score all zeros, silently: no query
    of the run judged is a `DataError`; judgments covering under half the run's queries (or the run
    answering under half the judged ones) give a warning with the counts, returned; else None."""
    answered = [q for q, docs in run.items() if docs]
    judged = [q for q in answered if q in qrels]
    if not judged:
        raise DataError(
            run_file,
            None,
            f"none of its {len(answered):,} queries is judged in {qrels_file} ({len(qrels):,} judged queries): "
            "a run of another dataset or split?",
        )
    if len(judged) < 0.5 * len(answered) or len(judged) < 0.5 * len(qrels):
        return (
            f"only {len(judged):,} of the run's {len(answered):,} queries are among the {len(qrels):,} judged "
            f"in {qrels_file}: is it a run of this dataset and split?"
        )
    return None


# --- metric names as people write them -------------------------------------------------------------

# How papers and tools spell each family (lowercased), to the prefix `evaluate` stores it under.
METRIC_ALIASES = {
    "ndcg": "ndcg",
    "ndcg_cut": "ndcg",
    "recall": "recall",
    "r": "recall",
    "map": "map",
    "map_cut": "map",
    "p": "p",
    "precision": "p",
    "mrr": "mrr",
    "rr": "mrr",
    "recip_rank": "mrr",
    "judged": "judged",
}


def normalise_metric(name: str, known: Iterable[str] = ()) -> str:
    """The stored name of a metric written as papers and tools write it: case aside (`NDCG@10`,
    `nDCG@10` -> `ndcg@10`, `MAP@100`, `P@10`, `MRR@10`, `MRR`), `R@100` / `Recall@100` ->
    `recall@100`, `precision@10` -> `p@10`, pytrec_eval's `ndcg_cut_10` / `P_10` / `recip_rank`.
    `Judged@10` -> `judged@10`; a trailing prime names the condensed-list measure (`nDCG@10'` ->
    `ndcg@10'`).  Valid names are `metric_names()`, `condensed_names()` and `known` (e.g. what stored
    results hold).  Any other name is
    an `errors.Mistake` (a ValueError) listing the valid names, with the closest one suggested."""
    import re

    from .errors import Mistake, short_list

    valid = list(dict.fromkeys([*metric_names(), *known]))
    if name in valid or name in condensed_names():
        return name
    text = re.sub(r"\s+", "", str(name))
    if text.endswith(("'", "′", "’")) and len(text) > 1:  # a condensed-list measure: `nDCG@10'`
        base = normalise_metric(text[:-1], [m for m in known if not is_condensed(m)])
        if base + CONDENSED in condensed_names() or base + CONDENSED in known:
            return base + CONDENSED
        raise Mistake(f"{name!r}: only the relevance measures have a condensed-list version, not {base}")
    by_lower = {v.lower(): v for v in valid}
    text = re.sub(r"\s+", "", str(name)).lower()
    parsed = re.fullmatch(r"([a-z]+(?:_[a-z]+)*)(?:[@_]?(\d+))?", text)
    family, k = (parsed.group(1), parsed.group(2)) if parsed else (None, None)
    if family is not None:
        canonical = METRIC_ALIASES.get(family, family) + (f"@{int(k)}" if k is not None else "")
        if canonical in by_lower:
            return by_lower[canonical]
    if text in by_lower:
        return by_lower[text]
    closest = _closest_metric(text, family, k, valid)
    hint = f"; did you mean {closest}?" if closest else ""
    raise Mistake(f"unknown metric {name!r}{hint} (valid: {short_list(valid, 'table --help', near=text)})")


def _closest_metric(text: str, family: str | None, k: str | None, valid: Sequence[str]) -> str | None:
    """The valid name nearest `text`: its family (spelled as papers do, or a typo of one) at the
    nearest cut-off on a log scale (`ndcg@11` -> `ndcg@10`); else the closest spelling."""
    import difflib
    import math

    families: dict[str, list[int]] = {}
    for v in valid:
        head, _, cut = v.partition("@")
        families.setdefault(head, [])
        if cut.isdigit():
            families[head].append(int(cut))
    if family is not None:
        family = METRIC_ALIASES.get(family, family)
        if family not in families:
            close = difflib.get_close_matches(family, list(families), n=1, cutoff=0.6)
            family = close[0] if close else None
    if family is not None:
        cuts = families[family]
        if k is not None and int(k) > 0 and cuts:
            best = min(cuts, key=lambda c: (abs(math.log(c / int(k))), c))
            return f"{family}@{best}"
        if k is None and family in valid:
            return family
        if cuts:
            return f"{family}@{10 if 10 in cuts else cuts[0]}"
    close = difflib.get_close_matches(text, [v.lower() for v in valid], n=1, cutoff=0.6)
    return next((v for v in valid if v.lower() == close[0]), None) if close else None
