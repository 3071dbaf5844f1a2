"""Scoring matches pytrec_eval and BEIR, and each documented convention holds."""

from __future__ import annotations

import copy
import json
import math
import random

import pytest
import pytrec_eval
from beir.retrieval.evaluation import EvaluateRetrieval
from click.testing import CliRunner

from gtr_eval.cli import cli
from gtr_eval.data.loader import DataError
from gtr_eval.evaluation import (
    average_subsets,
    evaluate,
    metric_names,
    ranked,
    read_qrels_any,
    read_trec_run,
    write_trec_run,
)

K_VALUES = [1, 3, 5, 10, 100, 1000]


def synthetic(seed: int, n_queries: int = 40, n_docs: int = 300, depth: int = 120):
    """Graded qrels (0..2) and a tie-free run; some queries retrieve their own id."""
    rng = random.Random(seed)
    docs = [f"d{i}" for i in range(n_docs)] + [f"q{i}" for i in range(n_queries)]
    qrels = {}
    for i in range(n_queries):
        judged = rng.sample(docs[:n_docs], rng.randint(1, 8))
        qrels[f"q{i}"] = {d: rng.randint(0, 2) for d in judged}
    qrels["q0"] = {"d1": 0, "d2": 0}  # judged, nothing relevant
    run = {}
    for qid in qrels:
        pool = rng.sample(docs, depth) + list(qrels[qid])[:2] + ([qid] if rng.random() < 0.5 else [])
        scores = rng.sample(range(10**6), len(set(pool)))  # distinct integers: no ties
        # relevant documents get a boost so the metrics are spread out rather than all near zero
        boost = {d: 10**6 * g * rng.randint(0, 1) for d, g in qrels[qid].items()}  # no ties: s < 10**6
        run[qid] = {
            d: (s + boost.get(d, 0)) / 1000.0 for d, s in zip(dict.fromkeys(pool), scores, strict=True)
        }
    return qrels, run


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_pytrec_eval_and_beir(seed):
    qrels, run = synthetic(seed)
    original = copy.deepcopy(run)
    ev = evaluate(qrels, run, K_VALUES)
    assert run == original, "evaluate must not modify the run"
    assert list(ev.metrics) == metric_names(K_VALUES)

    beir_run = copy.deepcopy(run)
    ndcg, _map, recall, prec = EvaluateRetrieval.evaluate(qrels, beir_run, K_VALUES)  # pops identical ids
    mrr = EvaluateRetrieval.evaluate_custom(qrels, beir_run, K_VALUES, metric="mrr")
    for k in K_VALUES:
        assert ev.metrics[f"ndcg@{k}"] == pytest.approx(ndcg[f"NDCG@{k}"], abs=1e-4)
        assert ev.metrics[f"map@{k}"] == pytest.approx(_map[f"MAP@{k}"], abs=1e-4)
        assert ev.metrics[f"recall@{k}"] == pytest.approx(recall[f"Recall@{k}"], abs=1e-4)
        assert ev.metrics[f"p@{k}"] == pytest.approx(prec[f"P@{k}"], abs=1e-4)
    assert ev.metrics["mrr@10"] == pytest.approx(mrr["MRR@10"], abs=1e-4)

    # Exact agreement with pytrec_eval called directly on the same (identical-id-free) run.
    measures = {"ndcg_cut.10,100", "recall.100", "map_cut.10", "P.5", "recip_rank"}
    direct = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(beir_run)
    for ours, theirs in [
        ("ndcg@10", "ndcg_cut_10"),
        ("ndcg@100", "ndcg_cut_100"),
        ("recall@100", "recall_100"),
        ("map@10", "map_cut_10"),
        ("p@5", "P_5"),
        ("mrr", "recip_rank"),
    ]:
        for qid in qrels:
            assert ev.per_query[ours][qid] == direct[qid][theirs], (ours, qid)
        mean = sum(d[theirs] for d in direct.values()) / len(direct)
        assert ev.metrics[ours] == pytest.approx(mean, rel=1e-12)


def test_identical_ids_dropped_by_default():
    qrels = {"q1": {"d1": 1}}
    run = {"q1": {"q1": 0.9, "d1": 0.8, "d2": 0.7}}
    kept = evaluate(qrels, run, [10], ignore_identical_ids=False)
    dropped = evaluate(qrels, run, [10])
    assert dropped.metrics["mrr@10"] == 1.0 and dropped.metrics["ndcg@10"] == 1.0
    assert kept.metrics["mrr@10"] == 0.5
    assert kept.metrics["ndcg@10"] == pytest.approx(1 / math.log2(3))
    assert run["q1"]["q1"] == 0.9  # the caller's run is untouched


def test_judged_query_without_results_counts_as_zero_and_unjudged_ignored():
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}}
    run = {"q1": {"d1": 1.0, "x": 0.5}, "q3": {"d2": 1.0}}  # q2 missing, q3 unjudged
    ev = evaluate(qrels, run, [10, 100])
    for metric in ("ndcg@10", "mrr@10", "mrr", "recall@100", "map@10"):
        assert ev.metrics[metric] == pytest.approx((1.0 + 0.0) / 2), metric
        assert ev.per_query[metric] == {"q1": 1.0, "q2": 0.0}
    assert ev.missing_queries == ["q2"] and ev.unjudged_queries == 1
    # an empty result list is the same as an absent one
    assert evaluate(qrels, {**run, "q2": {}}, [10]).metrics["ndcg@10"] == pytest.approx(0.5)


def test_binary_relevance_is_grade_above_zero_and_ndcg_is_graded():
    qrels = {"q": {"d1": 2, "d2": 1, "d3": 0}}
    run = {"q": {"d3": 0.9, "d2": 0.8, "d1": 0.7}}
    ev = evaluate(qrels, run, [1, 3])
    assert ev.metrics["mrr@10"] == 0.5 and ev.metrics["mrr"] == 0.5  # d3 (grade 0) is not relevant
    assert ev.metrics["recall@1"] == 0.0 and ev.metrics["recall@3"] == 1.0
    assert ev.metrics["p@3"] == pytest.approx(2 / 3)
    dcg = 1 / math.log2(3) + 2 / math.log2(4)  # trec_eval gain = grade
    idcg = 2 / math.log2(2) + 1 / math.log2(3)
    assert ev.metrics["ndcg@3"] == pytest.approx(dcg / idcg)


def test_mrr_at_10_cutoff_and_trec_eval_tie_order():
    qrels = {"q": {"rel": 1}}
    far = {f"d{i}": 1.0 - i / 100 for i in range(10)} | {"rel": 0.5}  # rel at rank 11
    ev = evaluate(qrels, {"q": far}, [10])
    assert ev.metrics["mrr@10"] == 0.0 and ev.metrics["mrr"] == pytest.approx(1 / 11)
    # Ties rank like trec_eval (doc id descending), whatever the run's insertion order: "rel" > "a".
    for tied in ({"a": 1.0, "rel": 1.0}, {"rel": 1.0, "a": 1.0}):
        ev = evaluate(qrels, {"q": tied}, [10])
        assert ev.metrics["mrr@10"] == ev.metrics["mrr"] == 1.0
    for tied in ({"a": 1.0, "b": 1.0}, {"b": 1.0, "a": 1.0}):
        assert evaluate({"q": {"a": 1}}, {"q": tied}, [10]).metrics["mrr@10"] == 0.5
    # BEIR keeps insertion order among ties; on a run in trec_eval order (as we write runs) it agrees.
    canonical = dict(ranked({"a": 1.0, "rel": 1.0}))
    assert EvaluateRetrieval.evaluate_custom(qrels, {"q": canonical}, [10], "mrr")["MRR@10"] == 1.0


def test_average_subsets_is_plain_mean_of_common_metrics():
    subsets = [{"ndcg@10": 0.2, "mrr": 1.0}, {"ndcg@10": 0.4}, {"ndcg@10": 0.9, "mrr": 0.0}]
    assert average_subsets(subsets) == {"ndcg@10": pytest.approx(0.5)}
    with pytest.raises(ValueError):
        average_subsets([])


@pytest.mark.parametrize("name", ["run.trec", "run.trec.gz"])
def test_trec_run_round_trip_gives_identical_floats(tmp_path, name):
    run = {
        "q1": {"a": 0.1 + 0.2, "b": 1e-300, "c": -3.141592653589793, "d": 123456789.123456789},
        "q2": {"x": 2.0000000000000004, "y": 0.30000000000000004},
    }
    path = tmp_path / name
    write_trec_run(run, path, tag="sys")
    back = read_trec_run(path)
    assert back == run
    assert all(back[q][d].hex() == run[q][d].hex() for q in run for d in run[q])
    lines = read_lines(path)
    assert lines[0].split() == ["q1", "Q0", "d", "1", repr(123456789.123456789), "sys"]
    assert [ln.split()[3] for ln in lines[:4]] == ["1", "2", "3", "4"]
    assert not list(tmp_path.glob("*.tmp"))


def read_lines(path):
    import gzip

    raw = path.read_bytes()
    return (gzip.decompress(raw) if path.name.endswith(".gz") else raw).decode().splitlines()


def test_write_trec_run_rejects_whitespace(tmp_path):
    with pytest.raises(ValueError):
        write_trec_run({"q": {"a b": 1.0}}, tmp_path / "r.trec", tag="t")
    with pytest.raises(ValueError):
        write_trec_run({"q": {"a": 1.0}}, tmp_path / "r.trec", tag="my tag")


@pytest.mark.parametrize(
    "line, problem",
    [
        ("q1 Q0 d1 1 0.5", "expected 6 columns"),
        ("q1 Q0 d1 1 high t", "not a number"),
        ("q1 Q0 d1 1 nan t", "finite"),
    ],
)
def test_read_trec_run_reports_file_and_line(tmp_path, line, problem):
    path = tmp_path / "bad.trec"
    path.write_text(f"q1 Q0 d0 1 0.9 t\n{line}\n")
    with pytest.raises(DataError, match=problem) as err:
        read_trec_run(path)
    assert err.value.line == 2 and str(path) in str(err.value)


def test_read_trec_run_rejects_duplicate_document(tmp_path):
    path = tmp_path / "dup.trec"
    path.write_text("q1 Q0 d0 1 0.9 t\nq1 Q0 d0 2 0.8 t\n")
    with pytest.raises(DataError, match="twice"):
        read_trec_run(path)


def test_read_qrels_any_detects_beir_and_trec(tmp_path):
    beir = tmp_path / "test.tsv"
    beir.write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t0\nq2\td3\t2\n")
    trec = tmp_path / "qrels.txt"
    trec.write_text("q1 0 d1 1\nq1 0 d2 0\n\nq2\t0\td3\t2\n")
    expected = {"q1": {"d1": 1, "d2": 0}, "q2": {"d3": 2}}
    assert read_qrels_any(beir) == expected
    assert read_qrels_any(trec) == expected
    bad = tmp_path / "bad.txt"
    bad.write_text("q1 0 d1 1\nq1 d2 1\n")
    with pytest.raises(DataError) as err:
        read_qrels_any(bad)
    assert err.value.line == 2


@pytest.mark.parametrize("identical_flag", [[], ["--no-ignore-identical-ids"]])
def test_evaluate_cli_matches_api(tmp_path, identical_flag):
    qrels, run = synthetic(5, n_queries=15)
    qrels_path = tmp_path / "qrels.tsv"
    rows = [f"{q}\t{d}\t{g}" for q, docs in qrels.items() for d, g in docs.items()]
    qrels_path.write_text("query-id\tcorpus-id\tscore\n" + "\n".join(rows) + "\n")
    run_path = tmp_path / "run.trec.gz"
    write_trec_run(run, run_path, tag="t")
    result = CliRunner().invoke(
        cli, ["evaluate", "--qrels", str(qrels_path), "--run", str(run_path), "--json", *identical_flag]
    )
    assert result.exit_code == 0, result.output
    api = evaluate(qrels, run, ignore_identical_ids=not identical_flag)
    assert json.loads(result.stdout)["metrics"] == api.metrics
    table = CliRunner().invoke(
        cli, ["evaluate", "--qrels", str(qrels_path), "--run", str(run_path), *identical_flag]
    )
    assert table.exit_code == 0
    rows = {
        cells[0]: cells[1] for cells in (line.strip("|").split("|") for line in table.stdout.splitlines()[2:])
    }
    assert {m.strip(): v.strip() for m, v in rows.items()} == {m: f"{v:.4f}" for m, v in api.metrics.items()}


# --- at MS MARCO size: query-batched evaluation and a streamed run file -------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_query_batches_do_not_change_any_score(monkeypatch, seed):
    """`evaluate` scores 1,000 queries at a time (a 7M-entry run is never copied whole); every
    measure is per query, so batches of 1 or 7 give exactly what one batch gives."""
    import gtr_eval.evaluation as ev

    qrels, run = synthetic(seed)
    run["not-judged"] = {"d1": 1.0}
    run[f"q{len(qrels) - 1}"] = {}  # judged, retrieved nothing
    whole = evaluate(qrels, run)
    for size in (1, 7):
        monkeypatch.setattr(ev, "EVAL_BATCH_QUERIES", size)
        part = evaluate(qrels, run)
        assert part.metrics == whole.metrics and part.per_query == whole.per_query
        assert (
            part.missing_queries == whole.missing_queries
            and part.unjudged_queries == whole.unjudged_queries == 1
        )
        assert list(part.per_query["ndcg@10"]) == list(qrels)


def test_streamed_run_file_has_the_content_of_one_written_at_once(tmp_path):
    """Same lines as formatting the whole run first; gzip without name or time stamp: same bytes twice."""
    import gzip

    _, run = synthetic(3)
    path = tmp_path / "run.trec.gz"
    write_trec_run(run, path, tag="sys")
    expected = "".join(
        f"{q} Q0 {d} {r} {s!r} sys\n"
        for q, docs in run.items()
        for r, (d, s) in enumerate(ranked(docs), start=1)
    )
    assert gzip.decompress(path.read_bytes()).decode() == expected
    first = path.read_bytes()
    write_trec_run(run, path, tag="sys")
    assert path.read_bytes() == first and first[3] == 0  # FLG: no file name in the header


def test_run_file_cut_short_by_an_error_leaves_the_old_one(tmp_path):
    path = tmp_path / "run.trec.gz"
    write_trec_run({"q": {"a": 1.0}}, path, tag="sys")
    before = path.read_bytes()
    with pytest.raises(ValueError):
        write_trec_run({"q": {"a": 1.0}, "r": {"b c": 2.0}}, path, tag="sys")  # fails after the first query
    assert path.read_bytes() == before and not list(tmp_path.glob("*.tmp"))
