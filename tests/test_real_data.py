"""End to end on the real BEIR SciFact and NFCorpus: BM25 and all-MiniLM-L6-v2 run once per session
through the CLI (encodings shared through the session's embedding cache) and fused by RRF, then
checked against the published figures, against pytrec_eval and beir on the saved TREC runs, the
fusion against ranx, against the golden file, and the committed tables are regenerated and compared.

SciFact's MiniLM vectors come from the module's kill -9 and resume of a real run
(`scifact_minilm_resumed`, tests/kill_resume.py), which its own test holds to an uninterrupted run's
scores: SciFact is encoded once per session."""

from __future__ import annotations

import gzip
import json
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytrec_eval
from cli_process import gtr_eval
from conftest import ROOT, SHARED
from kill_resume import CACHE_LINE, hand_on_vectors, kill_and_resume

from gtr_eval.results import ResultsStore

pytestmark = pytest.mark.slow

SYSTEMS = ("bm25", "all-MiniLM-L6-v2")
FUSED = (
    "rrf(bm25+all-MiniLM-L6-v2)"  # `gtr-eval fuse --rrf bm25 all-MiniLM-L6-v2`, part of the committed tables
)
DATASETS = ("scifact", "nfcorpus")


@pytest.fixture(scope="module")
def scifact_minilm_resumed(beir_data, shared_cache_dir, tmp_path_factory):
    """The session's one kill-and-resume of all-MiniLM-L6-v2 on the real SciFact; its vectors then
    serve the session's cache."""
    run = kill_and_resume(beir_data, tmp_path_factory.mktemp("kill-resume"))
    hand_on_vectors(run, shared_cache_dir)
    return run


COMMITTED_MINILM = ROOT / "results" / "all-MiniLM-L6-v2" / "scifact.json"  # an uninterrupted run
SHARDS = 3  # 5,183 documents at the default 2,048 per shard


def test_scifact_killed_after_first_shard_resumes_and_scores_the_same(scifact_minilm_resumed, capsys):
    run = scifact_minilm_resumed
    assert run.killed_returncode == -signal.SIGKILL
    assert 1 <= run.shards_at_kill < SHARDS
    assert not run.done_after_kill

    assert run.resumed_returncode == 0, run.resumed_stderr
    line = CACHE_LINE.search(run.resumed_stderr)
    assert line, run.resumed_stderr
    with capsys.disabled():
        print(f"\n{line.group(0)}  (shards complete at the kill: {run.shards_at_kill})")
    reused, encoded = (int(n or 0) for n in line.groups())
    total = reused + encoded
    assert (total, reused, encoded) == (SHARDS, run.shards_at_kill, SHARDS - run.shards_at_kill)

    metrics = ResultsStore(run.results).load("all-MiniLM-L6-v2", "scifact").metrics
    expected = json.loads(COMMITTED_MINILM.read_text(encoding="utf-8"))["metrics"]
    assert metrics.keys() == expected.keys()
    for name, value in expected.items():
        assert metrics[name] == pytest.approx(value, abs=1e-6), name
    assert not run.leftovers


@dataclass
class RealRun:
    results: Path
    stderr: str
    seconds: float


@pytest.fixture(scope="module")
def real_run(beir_data, shared_cache_dir, scifact_minilm_resumed, tmp_path_factory) -> RealRun:
    """The session's run.  SciFact's MiniLM vectors come from `scifact_minilm_resumed` (whose test
    holds them to an uninterrupted run's scores); NFCorpus is encoded here."""
    results = tmp_path_factory.mktemp("real") / "results"
    cmd = [
        "run",
        *(a for s in SYSTEMS for a in ("-m", s)),
        *(a for d in DATASETS for a in ("-d", d)),
        "--data-dir",
        str(beir_data),
        "--results-dir",
        str(results),
        "--cache-dir",
        str(shared_cache_dir),
        "--no-download",
        "--quiet",
    ]
    t0 = time.perf_counter()
    out = gtr_eval(*cmd, timeout=3600)
    assert out.returncode == 0, out.stderr[-3000:]
    print(out.stderr)
    seconds = time.perf_counter() - t0
    fuse = ["fuse", "--rrf", *SYSTEMS, *(a for d in DATASETS for a in ("-d", d)),
            "--data-dir", str(beir_data), "--results-dir", str(results), "--no-download"]  # fmt: skip
    fused = gtr_eval(*fuse, timeout=600)
    assert fused.returncode == 0, fused.stderr[-3000:]
    return RealRun(results, out.stderr, seconds)


def _load(run: RealRun, system: str, dataset: str):
    from gtr_eval.results import ResultsStore

    return ResultsStore(run.results).load(system, dataset)


# Published figures (../shared/reference/published_scores.csv): (system, dataset, metric) -> (source,
# published system, tolerance).  bm25s is MTEB's BM25 baseline, the setting our `bm25` follows.
PUBLISHED_SCORES = SHARED / "reference" / "published_scores.csv"
PUBLISHED = {
    ("bm25", "scifact", "ndcg@10"): ("mteb-results", "bm25s", 0.003),
    ("bm25", "scifact", "recall@100"): ("mteb-results", "bm25s", 0.005),
    ("bm25", "nfcorpus", "ndcg@10"): ("mteb-results", "bm25s", 0.003),
    ("all-MiniLM-L6-v2", "scifact", "ndcg@10"): ("mteb-results", "all-MiniLM-L6-v2", 0.001),
    ("all-MiniLM-L6-v2", "scifact", "recall@100"): ("mteb-results", "all-MiniLM-L6-v2", 0.003),
    ("all-MiniLM-L6-v2", "nfcorpus", "ndcg@10"): ("mteb-results", "all-MiniLM-L6-v2", 0.002),
}


def _published(source: str, system: str, dataset: str, metric: str) -> float:
    import csv

    with open(PUBLISHED_SCORES, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if (r["source"], r["system"], r["dataset"], r["metric"]) == (
            source, system, dataset, metric)]  # fmt: skip
    assert len(rows) == 1, f"{PUBLISHED_SCORES}: {len(rows)} rows for {source} {system} {dataset} {metric}"
    return float(rows[0]["value"])


@pytest.mark.parametrize("key", list(PUBLISHED), ids=["/".join(k) for k in PUBLISHED])
def test_reproduces_published_figures(real_run, key):
    system, dataset, metric = key
    source, published_system, tol = PUBLISHED[key]
    value = _published(source, published_system, dataset, metric)
    got = _load(real_run, system, dataset).metrics[metric]
    assert abs(got - value) <= tol, (
        f"{key}: {got:.5f} vs published {source} {published_system} {value} ± {tol}"
    )


def _read_gz_run(path: Path) -> dict[str, dict[str, float]]:
    run: dict[str, dict[str, float]] = {}
    with gzip.open(path, "rt") as fh:
        for line in fh:
            qid, _, did, _, score, _ = line.split()
            run.setdefault(qid, {})[did] = float(score)
    return run


PYTREC = {"ndcg": "ndcg_cut", "recall": "recall", "map": "map_cut", "p": "P"}
BEIR_KEYS = {"ndcg": "NDCG", "recall": "Recall", "map": "MAP", "p": "P"}


@pytest.mark.parametrize("system", [*SYSTEMS, FUSED])
@pytest.mark.parametrize("dataset", DATASETS)
def test_every_metric_equals_pytrec_eval_and_beir_on_the_saved_run(real_run, beir_data, system, dataset):
    from beir.datasets.data_loader import GenericDataLoader
    from beir.retrieval.evaluation import EvaluateRetrieval

    stored = _load(real_run, system, dataset)
    _, _, qrels = GenericDataLoader(str(beir_data / dataset)).load(split="test")
    run = _read_gz_run(stored.run_path)
    # BEIR's default: a document whose id equals the query id is not a hit.
    run = {q: {d: s for d, s in docs.items() if d != q} for q, docs in run.items()}
    ks = (1, 3, 5, 10, 100, 1000)
    measures = {f"{m}.{','.join(map(str, ks))}" for m in PYTREC.values()} | {"recip_rank"}
    per_query = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    # pytrec_eval and BEIR average over the judged queries that retrieved something; we count a judged
    # query with no hit as zero (BM25 on NFCorpus: 15 of 323 queries share no term with any document).
    # So BEIR's mean equals ours times len(qrels) / len(per_query); the factor is 1 when every query
    # retrieved something, which holds for every pair but BM25 on NFCorpus.
    scale = len(per_query) / len(qrels)
    assert scale == 1.0 or (system, dataset) == ("bm25", "nfcorpus")
    beir_scores = {}
    for part in EvaluateRetrieval.evaluate(qrels, run, list(ks)):
        beir_scores.update(part)
    beir_mrr = EvaluateRetrieval.evaluate_custom(qrels, run, [10], metric="mrr")["MRR@10"]
    checked = 0
    for key, ours in stored.metrics.items():
        name, _, k = key.partition("@")
        if name in PYTREC:
            direct = sum(v[f"{PYTREC[name]}_{k}"] for v in per_query.values()) / len(qrels)
            assert ours == pytest.approx(direct, abs=1e-4), key
            assert ours == pytest.approx(beir_scores[f"{BEIR_KEYS[name]}@{k}"] * scale, abs=1e-4), key
            checked += 1
        elif key == "mrr":
            assert ours == pytest.approx(
                sum(v["recip_rank"] for v in per_query.values()) / len(qrels), abs=1e-4
            )
            checked += 1
        elif key == "mrr@10":
            assert ours == pytest.approx(beir_mrr, abs=1e-4)  # BEIR's MRR already divides by len(qrels)
            checked += 1
    assert checked == 4 * len(ks) + 2


@pytest.mark.parametrize("dataset", DATASETS)
def test_fresh_fused_run_equals_ranx_rrf(real_run, dataset):
    """The fused system's run is ranx's RRF (k=60) of the two fresh runs, cut to the top 1000."""
    ranx = pytest.importorskip("ranx")
    from gtr_eval.evaluation import ranked

    inputs = [_read_gz_run(_load(real_run, s, dataset).run_path) for s in SYSTEMS]
    queries = sorted(set().union(*inputs))
    # distinct scores in trec_eval's order (ranx breaks ties arbitrarily); every query in every run
    as_ranks = [ranx.Run.from_dict({q: {d: float(-i) for i, (d, _) in enumerate(ranked(run.get(q, {})))}
                                    for q in queries}) for run in inputs]  # fmt: skip
    theirs = ranx.fuse(as_ranks, norm=None, method="rrf", params={"k": 60}).to_dict()
    ours = _read_gz_run(_load(real_run, FUSED, dataset).run_path)
    assert ours.keys() == theirs.keys()
    for q, docs in ours.items():
        top = dict(ranked(theirs[q])[:1000])
        assert list(dict(ranked(docs))) == list(top), q
        assert all(abs(docs[d] - top[d]) < 1e-12 for d in docs), q


def test_fresh_run_passes_the_golden_check(real_run):
    out = gtr_eval(
        "paper",
        "--check",
        "--results-dir",
        str(real_run.results),
        "--golden",
        str(ROOT / "results" / "golden.yaml"),
    )
    print(out.stdout)
    assert out.returncode == 0, out.stdout + out.stderr


def test_regenerated_tables_equal_the_committed_ones(real_run, tmp_path):
    out = gtr_eval(
        "paper",
        "--results-dir",
        str(real_run.results),
        "--only-run",
        "--output-dir",
        str(tmp_path),
    )
    assert out.returncode == 0, out.stderr
    committed = sorted((ROOT / "results" / "tables").glob("*.md"))
    assert [p.name for p in committed] == sorted(p.name for p in tmp_path.glob("*.md"))
    for path in committed:
        assert (tmp_path / path.name).read_text() == path.read_text(), f"{path.name} differs from a fresh run"


def test_second_run_reuses_the_cache_and_is_over_10x_faster(real_run, beir_data, shared_cache_dir, tmp_path):
    """On NFCorpus, which the session's run encodes itself (SciFact's vectors come from the cache)."""
    first = _load(real_run, "all-MiniLM-L6-v2", "nfcorpus").manifest
    cmd = [
        "run",
        "-m",
        "all-MiniLM-L6-v2",
        "-d",
        "nfcorpus",
        "--data-dir",
        str(beir_data),
        "--results-dir",
        str(tmp_path),
        "--cache-dir",
        str(shared_cache_dir),
        "--no-download",
        "--quiet",
    ]
    t0 = time.perf_counter()
    out = gtr_eval(*cmd, timeout=600)
    second_s = time.perf_counter() - t0
    assert out.returncode == 0, out.stderr
    assert re.search(r"corpus embeddings: \d+ shards from cache\n", out.stderr), out.stderr
    again = _load(type(real_run)(tmp_path, "", 0), "all-MiniLM-L6-v2", "nfcorpus")
    assert again.metrics == _load(real_run, "all-MiniLM-L6-v2", "nfcorpus").metrics
    if first["stats"]["corpus_shards_encoded"] == 0:
        pytest.skip("the session cache was warm before this run; no first-encode time to compare with")
    first_s = first["timings"]["retrieve_total_s"]  # model load + encode + search of the first run
    print(f"first run {first_s:.1f} s, whole second process {second_s:.1f} s: {first_s / second_s:.0f}x")
    assert first_s / second_s >= 10


@pytest.mark.parametrize("dataset", DATASETS)
def test_fp16_cache_storage_scores_like_fp32(real_run, beir_data, shared_cache_dir, tmp_path, dataset):
    """`--cache-dtype fp16` on the real sets, without encoding them again: the session's fp32 vectors
    (the model's output does not depend on storage) go through the cache's own writer as fp16, then
    through the normal search and evaluation.  NDCG@10 within 1e-4 of fp32, rankings nearly equal."""
    import numpy as np

    from gtr_eval.data.units import DataOptions
    from gtr_eval.evaluation import evaluate
    from gtr_eval.retrieval.dense import DenseConfig, DenseRetriever

    unit = DataOptions(data_dir=beir_data, download=False).units(dataset)[0]
    data = unit.load()
    stored = _load(real_run, "all-MiniLM-L6-v2", dataset)
    backend = stored.spec["backend"]  # what `auto` chose for the session's run
    full = DenseRetriever(
        DenseConfig(model="all-MiniLM-L6-v2", backend=backend), cache_dir=shared_cache_dir, progress=False
    )
    full_stats = full.index(data.corpus).stats
    assert full_stats["corpus_shards_encoded"] == 0  # the session's vectors, not a second encode
    half = DenseRetriever(
        DenseConfig(model="all-MiniLM-L6-v2", backend=backend, cache_dtype="fp16"),
        cache_dir=tmp_path,
        progress=False,
    )
    replay = (np.asarray(rows) for _, rows in full._corpus().chunks())  # shard by shard, in cache order
    half._encode = lambda texts, task: next(replay)
    half.encode_queries = full.encode_queries  # queries are stored in fp32 whatever --cache-dtype says
    half_stats = half.index(data.corpus).stats
    assert half_stats["corpus_shards_encoded"] == half_stats["corpus_shards"] == full_stats["corpus_shards"]
    assert all(
        np.load(p, mmap_mode="r", allow_pickle=False).dtype == np.float16 for p in half._corpus().shard_paths
    )

    runs = {"fp32": full.search(data.queries, 1000).run, "fp16": half.search(data.queries, 1000).run}
    m = {
        k: evaluate(data.qrels, r, ignore_identical_ids=unit.ignore_identical_ids).metrics
        for k, r in runs.items()
    }
    assert m["fp32"] == pytest.approx(stored.metrics, abs=1e-9)  # the normal path gives the stored scores

    def top(run, q, n):
        return sorted(run[q], key=lambda d: (-run[q][d], d))[:n]

    same10 = sum(top(runs["fp16"], q, 10) == top(runs["fp32"], q, 10) for q in runs["fp32"]) / len(
        runs["fp32"]
    )
    overlap100 = np.mean([len(set(top(runs["fp16"], q, 100)) & set(top(runs["fp32"], q, 100))) / 100
                          for q in runs["fp32"]])  # fmt: skip
    print(f"\n{dataset}: NDCG@10 fp32 {m['fp32']['ndcg@10']:.6f}, fp16 storage {m['fp16']['ndcg@10']:.6f} "
          f"(diff {m['fp16']['ndcg@10'] - m['fp32']['ndcg@10']:+.1e}); identical top-10 lists {same10:.1%}, "
          f"top-100 overlap {overlap100:.2%}")  # fmt: skip
    assert abs(m["fp16"]["ndcg@10"] - m["fp32"]["ndcg@10"]) <= 1e-4
    assert abs(m["fp16"]["recall@100"] - m["fp32"]["recall@100"]) <= 1e-3
    assert same10 >= 0.95 and overlap100 >= 0.99
