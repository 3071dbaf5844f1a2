"""Fusion: hand-computed cases, names, the `fuse` command, and the real SciFact and NFCorpus runs of
bm25 and all-MiniLM-L6-v2 (committed under results/) against ranx's `fuse` (an independent
implementation)."""

from __future__ import annotations

import hashlib
import json
import math
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import ROOT

from gtr_eval.cli import cli
from gtr_eval.evaluation import evaluate, ranked, read_qrels, read_trec_run
from gtr_eval.fusion import cut, fuse, fused_name, normalized_sum, parse_weights, rrf
from gtr_eval.identity import Identity
from gtr_eval.results import ResultsStore, recorded_files
from gtr_eval.retrieval.spec import SystemSpec

RESULTS = ROOT / "results"
INPUTS = ("bm25", "all-MiniLM-L6-v2")


def test_rrf_by_hand_with_ties_missing_docs_and_missing_queries():
    a = {"q1": {"d1": 0.9, "d2": 0.5, "d3": 0.5, "d4": 0.1}, "q2": {"d9": 1.0}}
    b = {"q1": {"d3": 12.0, "d1": 7.5, "d5": 3.0}, "q3": {"d7": 2.0}}
    got = rrf([a, b], k=60)
    # a ranks d1, d3, d2, d4: the d2/d3 tie goes to the larger id first (trec_eval's order)
    assert got["q1"]["d1"] == 1 / 61 + 1 / 62
    assert got["q1"]["d3"] == 1 / 62 + 1 / 61
    assert got["q1"]["d2"] == 1 / 63 and got["q1"]["d4"] == 1 / 64  # absent from b: nothing from b
    assert got["q1"]["d5"] == 1 / 63
    assert got["q2"] == {"d9": 1 / 61} and got["q3"] == {"d7": 1 / 61}  # union of the queries
    assert [d for d, _ in ranked(got["q1"])] == ["d3", "d1", "d5", "d2", "d4"]
    assert rrf([a, b], k=0)["q1"]["d1"] == 1 / 1 + 1 / 2


def test_minmax_and_zscore_weighted_sums_by_hand():
    a = {"q": {"x": 3.0, "y": 1.0, "z": 2.0}}
    b = {"q": {"x": 10.0, "w": 20.0}}
    mm = normalized_sum([a, b], [0.3, 0.7], "minmax")["q"]
    assert mm == pytest.approx({"x": 0.3 * 1.0 + 0.7 * 0.0, "y": 0.0, "z": 0.3 * 0.5, "w": 0.7 * 1.0})
    zs = normalized_sum([a, b], None, "zscore")["q"]  # equal weights 1/2; population std
    std_a = math.sqrt(2 / 3)
    assert zs == pytest.approx({"x": 0.5 * (1 / std_a) + 0.5 * -1.0, "y": 0.5 * (-1 / std_a), "z": 0.0,
                                "w": 0.5 * 1.0})  # fmt: skip
    flat = normalized_sum([{"q": {"x": 5.0, "y": 5.0}}, b], [1, 1], "minmax")["q"]
    assert flat["x"] == 0.0 + 0.0 and flat["y"] == 0.0  # a zero range divides by 1e-9, as ranx does
    # a query one run did not answer: the other run's normalised scores alone
    one = normalized_sum(
        [{"q": {}, "p": {"u": 1.0, "v": 3.0}}, {"q": {"x": 1.0, "y": 3.0}}], [0.4, 0.6], "zscore"
    )
    assert one == {"q": {"x": 0.6 * -1.0, "y": 0.6 * 1.0}, "p": {"u": 0.4 * -1.0, "v": 0.4 * 1.0}}


def test_fuse_cuts_to_top_k_in_trec_order_and_rejects_bad_arguments():
    a = {"q": {f"d{i}": float(i) for i in range(10)}}
    b = {"q": {f"d{i}": float(-i) for i in range(10)}}
    fused = fuse([a, b], "rrf", top_k=3)
    assert len(fused["q"]) == 3
    assert list(dict(ranked(fused["q"]))) == [d for d, _ in ranked(rrf([a, b])["q"])][:3]
    assert cut(a, 2) == {"q": {"d9": 9.0, "d8": 8.0}}
    with pytest.raises(ValueError, match="at least two"):
        fuse([a])
    with pytest.raises(ValueError, match="no weights"):
        fuse([a, b], "rrf", weights=[1, 2])
    with pytest.raises(ValueError, match="2 weights for 3"):
        fuse([a, b, a], "minmax", weights=[1, 2])
    with pytest.raises(ValueError, match="method"):
        fuse([a, b], "borda")


def test_fused_names_are_file_system_safe_and_say_the_method():
    assert fused_name("rrf", INPUTS) == "rrf(bm25+all-MiniLM-L6-v2)"
    assert fused_name("rrf", INPUTS, k=10) == "rrf-k10(bm25+all-MiniLM-L6-v2)"
    assert fused_name("minmax", ["a", "b"]) == "minmax(a+b)"
    assert fused_name("minmax", ["a", "b"], weights=[0.5, 0.5]) == "minmax(a+b)"
    assert fused_name("zscore", ["a", "b"], weights=[0.3, 0.7]) == "zscore(a@0.3+b@0.7)"
    assert parse_weights("0.3, 0.7") == [0.3, 0.7] and parse_weights(None) is None
    with pytest.raises(ValueError):
        parse_weights("a,b")


# ------------------------------------------------------------------------------- the fuse command


@pytest.fixture()
def committed_copy(tmp_path):
    """The committed real runs of bm25 and all-MiniLM-L6-v2 (SciFact, NFCorpus) in a scratch store."""
    out = tmp_path / "results"
    for system in INPUTS:
        shutil.copytree(RESULTS / system, out / system)
    return out


def _fuse_cli(results, *args, data_dir=None):
    extra = ["--data-dir", str(data_dir)] if data_dir else []
    return CliRunner().invoke(
        cli, ["fuse", *args, "--results-dir", str(results), *extra], catch_exceptions=False
    )


@pytest.mark.slow
def test_fuse_command_on_real_runs_writes_a_system_with_its_inputs_named(committed_copy, beir_data):
    # inputs that do not record their identity are not results: not fused, saying why
    for system in INPUTS:
        for path in (committed_copy / system).glob("*.json"):
            path.write_text(
                json.dumps({k: v for k, v in json.loads(path.read_text()).items() if k != "identity"})
            )
    old = _fuse_cli(committed_copy, "--rrf", *INPUTS, "-d", "scifact", "--no-download", data_dir=beir_data)
    assert old.exit_code == 3, old.output
    assert "bm25/scifact.json: not a result record" in old.output
    assert "run bm25 on scifact again" in old.output
    assert not (committed_copy / "rrf(bm25+all-MiniLM-L6-v2)").exists()
    for system in INPUTS:  # the committed inputs, with the identities they were stored with
        shutil.copytree(RESULTS / system, committed_copy / system, dirs_exist_ok=True)
    out = _fuse_cli(committed_copy, "--rrf", *INPUTS, "-d", "scifact", "-d", "nfcorpus", "--no-download",
                    data_dir=beir_data)  # fmt: skip
    assert out.exit_code == 0, out.output
    name = "rrf(bm25+all-MiniLM-L6-v2)"
    for dataset in ("scifact", "nfcorpus"):
        stored = ResultsStore(committed_copy).load(name, dataset)
        man = stored.spec
        assert man["retriever"] == "fusion"
        assert man["fusion"] == {"method": "rrf", "k": 60, "norm": None, "weights": None}
        assert [i["system"] for i in man["inputs"]] == list(INPUTS)
        for entry in man["inputs"]:
            path = ResultsStore(committed_copy).load(entry["system"], dataset).run_path
            assert entry["run_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        inputs = [read_trec_run(ResultsStore(committed_copy).load(s, dataset).run_path) for s in INPUTS]
        assert read_trec_run(stored.run_path) == fuse(inputs, "rrf", top_k=1000)
        assert len(stored.per_query["ndcg@10"]) == stored.manifest["dataset"]["num_queries"]
        assert stored.identity.dataset["files_sha256"] == recorded_files(stored.manifest)
        assert stored.identity.system["inputs"] == [
            {"system": e["system"], "run_sha256": e["run_sha256"]} for e in man["inputs"]
        ]
    again = _fuse_cli(committed_copy, "--rrf", *INPUTS, "-d", "scifact", "--no-download", data_dir=beir_data)
    assert again.exit_code == 0, again.output
    assert "[skip] rrf(bm25+all-MiniLM-L6-v2) on scifact: already done" in again.output
    # An input re-run (its run file changed): the fused result is stale and refused, not replaced
    fused_before = ResultsStore(committed_copy).load(name, "scifact").run_path.read_bytes()
    store = ResultsStore(committed_copy)
    bm25 = store.load("bm25", "scifact")
    changed = read_trec_run(bm25.run_path)
    changed[next(iter(changed))].popitem()  # one document fewer for one query
    qrels = read_qrels(beir_data / "scifact" / "qrels" / "test.tsv")[0]
    store.save("bm25", "scifact", "test", evaluate(qrels, changed), changed, bm25.manifest, bm25.identity)
    stale = CliRunner().invoke(cli, ["fuse", *INPUTS, "-d", "scifact", "--no-download", "--data-dir",
                                     str(beir_data), "--results-dir", str(committed_copy)])  # fmt: skip
    assert stale.exit_code == 3, stale.output
    assert (
        f"[refused] {name} on scifact was made with other input runs (the run of bm25 differs); use --name "
        "NAME to keep both, or --overwrite to replace it" in stale.output
    )
    assert ResultsStore(committed_copy).load(name, "scifact").run_path.read_bytes() == fused_before
    redo = _fuse_cli(
        committed_copy, *INPUTS, "-d", "scifact", "--no-download", "--overwrite", data_dir=beir_data
    )
    assert redo.exit_code == 0, redo.output
    inputs = [read_trec_run(ResultsStore(committed_copy).load(s, "scifact").run_path) for s in INPUTS]
    assert read_trec_run(ResultsStore(committed_copy).load(name, "scifact").run_path) == fuse(
        inputs, "rrf", top_k=1000
    )


def test_fuse_command_needs_stored_inputs_and_two_systems(committed_copy):
    out = CliRunner().invoke(
        cli, ["fuse", "bm25", "nope", "-d", "demo", "--results-dir", str(committed_copy)]
    )
    assert out.exit_code != 0 and "fuse: no stored result of bm25 on demo" in out.output
    out = CliRunner().invoke(cli, ["fuse", "bm25", "-d", "demo", "--results-dir", str(committed_copy)])
    assert out.exit_code != 0 and "at least two" in out.output
    out = CliRunner().invoke(cli, ["fuse", "--rrf", "--weights", "1,2", *INPUTS, "-d", "demo",
                                   "--results-dir", str(committed_copy)])  # fmt: skip
    assert out.exit_code != 0 and "no weights" in out.output


def test_fuse_on_demo_with_weights_evaluates_like_any_system(tmp_path):
    results = tmp_path / "r"
    run = CliRunner().invoke(
        cli, ["run", "-m", "bm25", "-d", "demo", "--results-dir", str(results), "--quiet"]
    )
    assert run.exit_code == 0, run.output
    # a second stored system on demo: the bm25 run with every score negated (the reverse ranking)
    from gtr_eval.data.units import resolve_dataset
    from gtr_eval.evaluation import evaluate as ev
    from gtr_eval.results import ResultsStore

    unit = resolve_dataset("demo")[0]
    data = unit.load()
    bm25 = read_trec_run(ResultsStore(results).load("bm25", "demo").run_path)
    rev = {q: {d: -s for d, s in docs.items()} for q, docs in bm25.items()}
    spec = SystemSpec(system="reverse", retriever="negated bm25")
    identity = Identity.of(spec, unit.fingerprint(files_sha256=data.checksums))
    ResultsStore(results).save("reverse", "demo", "test", ev(data.qrels, rev), rev,
                {"spec": spec.record(), "dataset": {"checksum": data.checksum}}, identity)  # fmt: skip
    out = _fuse_cli(results, "--minmax", "--weights", "0.8,0.2", "bm25", "reverse", "-d", "demo")
    assert out.exit_code == 0, out.output
    stored = ResultsStore(results).load("minmax(bm25@0.8+reverse@0.2)", "demo")
    params = {"method": "minmax", "k": None, "norm": "min-max", "weights": [0.8, 0.2]}
    assert stored.spec["fusion"] == params
    assert stored.identity.system["fusion"] == stored.spec["fusion"]
    fused = read_trec_run(stored.run_path)
    assert fused == normalized_sum([bm25, rev], [0.8, 0.2], "minmax")
    assert stored.metrics == evaluate(data.qrels, fused).metrics
    assert [i["system"] for i in stored.spec["inputs"]] == ["bm25", "reverse"]
    # an input made on other data than the dataset named now is refused
    stored_json = json.loads((results / "reverse" / "demo.json").read_text())
    stored_json["manifest"]["dataset"]["checksum"] = "0" * 64
    stored_json["identity"]["dataset"]["files_sha256"]["corpus.jsonl"] = "0" * 64
    (results / "reverse" / "demo.json").write_text(json.dumps(stored_json))
    out = CliRunner().invoke(
        cli, ["fuse", "--zscore", "bm25", "reverse", "-d", "demo", "--results-dir", str(results)]
    )
    assert out.exit_code == 3, out.output
    assert (
        "zscore(bm25+reverse) on demo: input failed: reverse on demo was made from other data" in out.output
    )
    assert "corpus.jsonl changed since the stored result (sha256 0000… → " in out.output
    assert "re-run it first" in out.output
    assert not (results / "zscore(bm25+reverse)").exists()
    assert {r.system for r in list(ResultsStore(results))} == {
        "bm25",
        "reverse",
        "minmax(bm25@0.8+reverse@0.2)",
    }


# ------------------------------------------------------------------- ranx on the real committed runs


def _ranx_runs(runs):
    """ranx Runs whose scores are distinct and give trec_eval's order (ranx breaks ties arbitrarily);
    every query present in every run (ranx rejects different query sets)."""
    from ranx import Run

    queries = sorted(set().union(*runs))
    out = []
    for run in runs:
        as_ranks = {q: {d: float(len(run.get(q, {})) - i) for i, (d, _) in enumerate(ranked(run.get(q, {})))}
                    for q in queries}  # fmt: skip
        out.append(Run.from_dict(as_ranks))
    return out


def _ranx_scored(runs, queries):
    from ranx import Run

    return [Run.from_dict({q: dict(run[q]) for q in queries}) for run in runs]


@pytest.fixture(scope="module")
def real_runs():
    return {
        d: [read_trec_run(ResultsStore(RESULTS).load(s, d).run_path) for s in INPUTS]
        for d in ("scifact", "nfcorpus")
    }


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["scifact", "nfcorpus"])
def test_rrf_equals_ranx_on_the_real_runs(real_runs, dataset):
    ranx = pytest.importorskip("ranx")
    runs = real_runs[dataset]
    theirs = ranx.fuse(_ranx_runs(runs), norm=None, method="rrf", params={"k": 60}).to_dict()
    ours = rrf(runs, k=60)
    assert ours.keys() == theirs.keys()
    n_docs = 0
    for q, docs in ours.items():
        assert docs.keys() == theirs[q].keys(), q  # the union of both runs' documents
        np.testing.assert_allclose([docs[d] for d in docs], [theirs[q][d] for d in docs], rtol=0, atol=1e-15)
        n_docs += len(docs)
    assert n_docs > len(ours) * 1000  # the union is larger than either run
    # the stored system keeps the top 1000 in trec_eval's order, ranked the same as ranx's scores
    top = fuse(runs, "rrf", top_k=1000)
    for q in ours:
        assert list(dict(ranked(top[q]))) == [d for d, _ in ranked(theirs[q])][:1000]


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["scifact", "nfcorpus"])
@pytest.mark.parametrize(("method", "ranx_norm", "weights"), [("minmax", "min-max", [0.3, 0.7]),
                                                               ("zscore", "zmuv", [0.5, 0.5])])  # fmt: skip
def test_normalized_sums_equal_ranx_on_the_real_runs(real_runs, dataset, method, ranx_norm, weights):
    ranx = pytest.importorskip("ranx")
    runs = real_runs[dataset]
    # ranx 0.3.21's z-score normalisation scrambles a run holding an empty query (BM25 returns nothing
    # for 15 NFCorpus queries), so ranx gets the queries every run answers; the fused empty-query case
    # is checked by hand above.
    both = [q for q in runs[0] if all(run.get(q) for run in runs)]
    assert len(both) >= 300
    theirs = ranx.fuse(_ranx_scored(runs, both), norm=ranx_norm, method="wsum", params={"weights": weights})
    theirs = theirs.to_dict()
    ours = normalized_sum([{q: run[q] for q in both} for run in runs], weights, method)
    assert ours.keys() == theirs.keys() == set(both)
    for q, docs in ours.items():
        assert docs.keys() == theirs[q].keys(), q
        np.testing.assert_allclose(
            [docs[d] for d in docs], [theirs[q][d] for d in docs], rtol=1e-9, atol=1e-9
        )
