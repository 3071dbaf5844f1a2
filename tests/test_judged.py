"""Judged@k equals ir_measures on the committed runs; condensed lists match hand counts and
trec_eval's judged-only mode; the ◇ mark appears where a system's top 10 was mostly never judged."""

from __future__ import annotations

import json
import math

import ir_measures
import pytest
import pytrec_eval
from click.testing import CliRunner
from conftest import BEIR_DATA, ROOT
from pooled_results import (
    BM25_JUDGED10,
    BM25_NDCG10,
    DATASET,
    NEW_JUDGED10,
    NEW_NDCG10,
    NEW_NDCG10_CONDENSED,
    make_pooled_results,
    stored_without_judged,
)

from gtr_eval import api
from gtr_eval.cli import cli
from gtr_eval.data import registry
from gtr_eval.data.loader import read_qrels
from gtr_eval.evaluation import (
    JUDGED_K_VALUES,
    condensed_names,
    evaluate,
    judged_at_k,
    metric_names,
    prepare_run,
    ranked,
    read_trec_run,
)
from gtr_eval.judgments import Judgments
from gtr_eval.report.tables import JUDGED_MARK, leaderboard, render
from gtr_eval.results import ResultsStore

COMMITTED = ROOT / "results"
SYSTEMS = ("bm25", "all-MiniLM-L6-v2", "rrf(bm25+all-MiniLM-L6-v2)")
PAIRS = [(s, d) for d in ("scifact", "nfcorpus") for s in SYSTEMS]
JUDGED = [ir_measures.Judged @ k for k in JUDGED_K_VALUES]


def _committed(system: str, dataset: str):
    qrels = read_qrels(BEIR_DATA / dataset / "qrels" / "test.tsv")[0]
    return qrels, read_trec_run(ResultsStore(COMMITTED).load(system, dataset).run_path)


def _by_rank(run: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """The run with each score replaced by minus its rank in trec_eval's order (ties: id descending),
    which is how every measure here ranks it; ir_measures' Judged breaks ties by id ascending."""
    return {q: {d: -float(i) for i, (d, _) in enumerate(ranked(docs))} for q, docs in run.items()}


@pytest.mark.slow
@pytest.mark.parametrize("system,dataset", PAIRS)
def test_judged_at_k_equals_ir_measures_on_the_committed_runs(beir_data, system, dataset):
    qrels, run = _committed(system, dataset)
    ours = evaluate(qrels, run)
    prepared = prepare_run(qrels, run, ignore_identical_ids=True)  # what every measure scores
    theirs = {
        (m.query_id, str(m.measure)): m.value
        for m in ir_measures.iter_calc(JUDGED, qrels, _by_rank(prepared))
    }
    aggregate = ir_measures.calc_aggregate(JUDGED, qrels, _by_rank(prepared))
    assert len(theirs) == len(qrels) * len(JUDGED_K_VALUES)
    for k in JUDGED_K_VALUES:
        for qid in qrels:
            assert ours.per_query[f"judged@{k}"][qid] == pytest.approx(theirs[(qid, f"Judged@{k}")], abs=1e-9)
        assert ours.metrics[f"judged@{k}"] == pytest.approx(aggregate[ir_measures.Judged @ k], abs=1e-9)
    # What the committed result stores, and what the table reads from it: the same numbers.
    stored = ResultsStore(COMMITTED).load(system, dataset)
    judgments = Judgments(beir_data)
    for k in JUDGED_K_VALUES:
        assert stored.metrics[f"judged@{k}"] == pytest.approx(ours.metrics[f"judged@{k}"], abs=1e-12)
        assert judgments.per_query(stored, f"judged@{k}") == pytest.approx(
            ours.per_query[f"judged@{k}"], abs=1e-12
        )


@pytest.mark.slow
@pytest.mark.parametrize("system,dataset", PAIRS)
def test_on_raw_scores_ir_measures_differs_only_where_ties_straddle_the_cut(beir_data, system, dataset):
    """Given the raw scores, ir_measures ranks tied documents by id ascending, we (and trec_eval, and
    every other measure of ours) by id descending; every difference is at such a tie."""
    qrels, run = _committed(system, dataset)
    prepared = prepare_run(qrels, run, ignore_identical_ids=True)
    ours = judged_at_k(qrels, prepared)
    differ = [
        (m.query_id, m.measure["cutoff"])
        for m in ir_measures.iter_calc(JUDGED, qrels, prepared)
        if abs(m.value - ours[f"judged@{m.measure['cutoff']}"][m.query_id]) > 1e-12
    ]
    for qid, k in differ:
        scores = [s for _, s in ranked(prepared[qid])]
        assert len(scores) > k and scores[k - 1] == scores[k], (qid, k)
    if (system, dataset) in (("bm25", "scifact"), ("all-MiniLM-L6-v2", "scifact")):
        assert not differ  # no ties at any cut: the raw scores agree too


@pytest.mark.slow
def test_judged_at_10_values_and_nfcorpus_judges_positives_only(beir_data):
    values = {
        (r.system, r.dataset): Judgments(beir_data).mean(r, "judged@10")
        for r in list(ResultsStore(COMMITTED))
    }
    assert round(values[("bm25", "scifact")], 3) == 0.091  # by construction: ~1 relevant document per query
    assert round(values[("all-MiniLM-L6-v2", "scifact")], 3) == 0.088
    grades = {
        g
        for docs in read_qrels(beir_data / "nfcorpus" / "qrels" / "test.tsv")[0].values()
        for g in docs.values()
    }
    assert grades == {1, 2}  # BEIR's NFCorpus qrels judge no document non-relevant: Judged@k is precision
    assert registry.judges_nonrelevant("nfcorpus") is False
    qrels, run = _committed("all-MiniLM-L6-v2", "nfcorpus")
    ev = evaluate(qrels, run)  # every query retrieves ≥ 10 here, so judged@10 is exactly P@10
    assert ev.per_query["judged@10"] == ev.per_query["p@10"]


def test_judged_at_k_conventions():
    qrels = {
        "q1": {"a": 0, "b": 1, "c": 2},  # grade 0 is judged too
        "q2": {"x": 1},
        "q3": {"a": 1},
    }
    run = {
        "q1": {"q1": 9.0, "a": 5.0, "z": 4.0, "b": 3.0},  # its own id first: dropped before scoring
        "q2": {"a": 2.0, "b": 1.0, "x": 0.5},  # a and b are judged, but for another query
        "q3": {},  # judged, nothing retrieved: 0
        "unjudged": {"a": 1.0},
    }
    ev = evaluate(qrels, run)
    assert ev.per_query["judged@1"] == {"q1": 1.0, "q2": 0.0, "q3": 0.0}
    assert ev.per_query["judged@3"] == {"q1": pytest.approx(2 / 3), "q2": pytest.approx(1 / 3), "q3": 0.0}
    assert ev.per_query["judged@10"]["q1"] == pytest.approx(2 / 3)  # 3 retrieved: divided by 3, not 10
    assert ev.metrics["judged@3"] == pytest.approx((2 / 3 + 1 / 3) / 3)  # mean over the judged queries
    kept = evaluate(qrels, run, ignore_identical_ids=False)
    assert kept.per_query["judged@1"]["q1"] == 0.0  # the query's own id is unjudged
    assert metric_names()[-len(JUDGED_K_VALUES) :] == [f"judged@{k}" for k in JUDGED_K_VALUES]
    assert not set(condensed_names()) & set(ev.metrics)  # condensed lists are opt-in


def test_condensed_lists_match_a_hand_count(tmp_path):
    results, data = make_pooled_results(tmp_path)
    qrels = read_qrels(data / "qrels" / "test.tsv")[0]
    new = read_trec_run(ResultsStore(results).load("newmodel", DATASET).run_path)
    ev = evaluate(qrels, new, condensed=True)
    assert ev.metrics["ndcg@10"] == pytest.approx(NEW_NDCG10)
    assert ev.metrics["ndcg@10'"] == pytest.approx(NEW_NDCG10_CONDENSED)  # (1 + 1/log2 3) / 2
    assert ev.metrics["p@1'"] == pytest.approx(0.5)  # r first on the even queries' condensed lists
    assert ev.metrics["mrr@10'"] == pytest.approx((1 + 1 / 2) / 2)
    assert ev.metrics["judged@10"] == pytest.approx(NEW_JUDGED10)
    bm25 = evaluate(
        qrels, read_trec_run(ResultsStore(results).load("bm25", DATASET).run_path), condensed=True
    )
    assert bm25.metrics["ndcg@10'"] == bm25.metrics["ndcg@10"] == pytest.approx(BM25_NDCG10)  # all judged
    # From a stored result that holds neither: the table computes them from the run file and qrels.
    stored_without_judged(results)
    board = leaderboard(list(ResultsStore(results)), metric="NDCG@10'")
    assert board.metric == "ndcg@10'"
    assert board.values.loc[DATASET, "newmodel"] == pytest.approx(NEW_NDCG10_CONDENSED)
    assert board.values.loc[DATASET, "bm25"] == pytest.approx(BM25_NDCG10)
    assert any("condensed list" in n and "Computed from the run file" in n for n in board.notes)
    assert not board.judged_marks.any().any() if board.judged_marks is not None else True


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["scifact", "nfcorpus"])
def test_condensed_lists_equal_trec_evals_judged_only_mode(beir_data, dataset):
    qrels, run = _committed("all-MiniLM-L6-v2", dataset)
    ours = evaluate(qrels, run, condensed=True).per_query
    prepared = prepare_run(qrels, run, ignore_identical_ids=True)
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "P.10"}, 1, True)  # judged_docs_only
    direct = evaluator.evaluate({q: docs for q, docs in prepared.items() if docs})
    for qid in qrels:
        assert ours["ndcg@10'"][qid] == pytest.approx(direct.get(qid, {}).get("ndcg_cut_10", 0.0), abs=1e-12)
        assert ours["p@10'"][qid] == pytest.approx(direct.get(qid, {}).get("P_10", 0.0), abs=1e-12)


def test_registry_says_which_qrels_judge_non_relevant_documents():
    pooled = {d for d in registry.names() if registry.get(d).judges_nonrelevant}
    assert {"trec-covid", "webis-touche2020", "dbpedia-entity", "scidocs", "robust04"} <= pooled
    assert not pooled & {"scifact", "nfcorpus", "nq", "fiqa", "msmarco", "cqadupstack"}
    assert registry.judges_nonrelevant("cqadupstack/android") is False
    assert registry.judges_nonrelevant("my-own-folder") is None
    assert json.loads(registry.datasets_json())[1]["judges_nonrelevant"] is True  # trec-covid


def test_a_system_the_pool_never_saw_is_marked_in_the_table(tmp_path):
    results, _ = make_pooled_results(tmp_path)
    stored_without_judged(results)  # as the committed results: computed from run file and qrels
    board = leaderboard(list(ResultsStore(results)))
    assert board.judged_marks.loc[DATASET, "newmodel"] and not board.judged_marks.loc[DATASET, "bm25"]
    assert board.judged.loc[DATASET, "newmodel"] == pytest.approx(NEW_JUDGED10)
    assert board.judged.loc[DATASET, "bm25"] == pytest.approx(BM25_JUDGED10)
    note = f"{JUDGED_MARK} newmodel on {DATASET}: ndcg@10 may be underestimated: 20% of its top 10 is judged, bm25's 100%."
    assert note in board.notes
    text = render(board)
    assert f" {NEW_NDCG10:.4f}{JUDGED_MARK} |" in text and note in text
    assert rf"{NEW_NDCG10:.4f}$^\diamond$" in render(board, "latex")
    csv_text = render(board, "csv")
    assert "newmodel judged mark" in csv_text.splitlines()[0] and JUDGED_MARK in csv_text
    # The baseline, when given, is what a system is compared with.
    assert not leaderboard(list(ResultsStore(results)), baseline="newmodel").judged_marks.any().any()
    # Judged@k and condensed scores are not themselves marked.
    assert leaderboard(list(ResultsStore(results)), metric="judged@10").judged_marks is None


def test_a_positives_only_dataset_is_not_checked(tmp_path):
    results, data = make_pooled_results(tmp_path)
    tsv = data / "qrels" / "test.tsv"
    tsv.write_text("".join(line for line in tsv.read_text().splitlines(True) if not line.endswith("\t0\n")))
    board = leaderboard(list(ResultsStore(results)))
    assert board.judged_marks is None and not any(JUDGED_MARK in n for n in board.notes)


def test_table_show_judged_and_the_cli(tmp_path):
    results, data = make_pooled_results(tmp_path)
    stored_without_judged(results)
    out = CliRunner().invoke(cli, ["table", "--results-dir", str(results), "--show", "judged"])
    assert out.exit_code == 0, out.output
    assert f"{NEW_NDCG10:.4f}{JUDGED_MARK} (20% judged)" in out.output and "(100% judged)" in out.output
    out = CliRunner().invoke(cli, ["table", "--results-dir", str(results), "--metric", "Judged@10"])
    assert out.exit_code == 0 and "| **1.0000** |" in out.output and " 0.2000 |" in out.output
    csv_out = CliRunner().invoke(
        cli, ["table", "--results-dir", str(results), "--show", "judged", "--format", "csv"]
    )
    header = csv_out.stdout.splitlines()[0].split(",")
    assert "bm25 judged@10" in header and "newmodel judged@10" in header
    assert api.table(results, show=["judged"], data_dir=None).text == render(
        leaderboard(list(ResultsStore(results)), show=["judged"])
    )


def test_judged_cannot_be_computed_without_the_dataset_files(tmp_path):
    results, data = make_pooled_results(tmp_path)
    stored_without_judged(results)
    (data / "qrels" / "test.tsv").rename(data / "qrels" / "moved.tsv")
    board = leaderboard(list(ResultsStore(results)), show=["judged"])
    assert board.judged.isna().all().all()
    assert any("Not available for bm25 on pooled" in n and "--data-dir" in n for n in board.notes)
    assert math.isnan(board.judged.loc[DATASET, "newmodel"])


def test_evaluate_json_has_judged_and_ci95(tmp_path):
    results, data = make_pooled_results(tmp_path)
    args = [
        "evaluate",
        "--qrels",
        str(data / "qrels" / "test.tsv"),
        "--json",
        "--resamples",
        "1000",
        "--seed",
        "3",
    ]
    out = CliRunner().invoke(
        cli, [*args, "--run", str(ResultsStore(results).load("newmodel", DATASET).run_path)]
    )
    assert out.exit_code == 0, out.output
    record = json.loads(out.stdout)
    assert record["metrics"]["judged@10"] == pytest.approx(NEW_JUDGED10)
    assert set(record["ci95"]) == set(record["metrics"])
    assert record["ci95"]["judged@10"] == [pytest.approx(0.2), pytest.approx(0.2)]  # the same on every query
    low, high = record["ci95"]["ndcg@10"]
    assert low <= record["metrics"]["ndcg@10"] <= high
    assert record["bootstrap"] == {"method": "percentile bootstrap over queries", "resamples": 1000, "seed": 3,
                                   "level": 0.95}  # fmt: skip
