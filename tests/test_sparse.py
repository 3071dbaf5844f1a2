"""Learned sparse retrieval: the blocked inverted-index search against brute force, the CSR cache
(reuse, damage, no pickles, kill -9 / resume), family detection, the `splade-pp-ed` preset through
the hub code path, and the harness's scores against `SparseEncoder.similarity` on the demo set and
(slow) on the real NFCorpus.  Models are tiny random SPLADEs in naver's on-disk layouts
(tests/tiny_models.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from cli_process import gtr_eval
from family_helpers import (
    HUB_COMMIT,
    check_sampled_pairs,
    kill_during_encode_then_resume,
    library_scores,
    stored_pairs,
)
from tiny_gtr import install_as_hub_snapshot
from tiny_models import (
    build_tiny_colbert,
    build_tiny_dense_pair,
    build_tiny_inference_free_splade,
    build_tiny_router,
    build_tiny_splade,
)

from gtr_eval.data.loader import load_beir_folder
from gtr_eval.paths import BUNDLED
from gtr_eval.retrieval import families
from gtr_eval.retrieval.cache import CSRFormat, encode_sharded
from gtr_eval.retrieval.factory import RetrieverOptions, make_retriever
from gtr_eval.retrieval.loaders import load_sparse_encoder
from gtr_eval.retrieval.models import detect_family
from gtr_eval.retrieval.presets import PRESETS
from gtr_eval.retrieval.sparse import SparseConfig, SparseRetriever
from gtr_eval.retrieval.sparse_search import sparse_search

DEMO = BUNDLED / "demo"


@pytest.fixture(scope="module")
def tiny_splade(tmp_path_factory):
    return build_tiny_splade(tmp_path_factory.mktemp("splade") / "tiny-splade")


# ------------------------------------------------------------------------------------- the kernel


def _random_csr(rng, rows: int, vocab: int, nnz: int) -> sp.csr_matrix:
    cols = np.stack([rng.choice(vocab, size=nnz, replace=False) for _ in range(rows)])
    vals = rng.gamma(1.0, 1.0, size=(rows, nnz)).astype(np.float32)
    return sp.csr_matrix((vals.ravel(), cols.ravel(), np.arange(0, rows * nnz + 1, nnz)), shape=(rows, vocab))


def _chunks(d: sp.csr_matrix, size: int):
    for start in range(0, d.shape[0], size):
        yield start, d[start : start + size]


@pytest.mark.parametrize(("n", "chunk", "block_nnz", "max_pairs", "k"), [
    (500, 64, 1000, 300, 10),  # many blocks, a few queries per product
    (300, 300, 10**9, 10**9, 50),  # one block, one product
    (40, 7, 200, 1, 100),  # one query per product; k larger than the corpus
])  # fmt: skip
def test_sparse_search_equals_brute_force(n, chunk, block_nnz, max_pairs, k):
    rng = np.random.default_rng(n)
    vocab = 400
    d = _random_csr(rng, n, vocab, 12)
    q = _random_csr(rng, 9, vocab, 5)
    stats: dict = {}
    s, i = sparse_search(q, _chunks(d, chunk), k, block_nnz=block_nnz, max_pairs=max_pairs, stats=stats)
    dense = (q @ d.T).toarray()
    overlap = (q.astype(bool).astype(np.int32) @ d.astype(bool).astype(np.int32).T).toarray() > 0
    assert stats["pairs"] == overlap.sum() == (q @ d.T).nnz
    assert s.shape == i.shape == (9, k)
    for r in range(9):
        hits = np.flatnonzero(overlap[r])
        expect = hits[np.argsort(-dense[r, hits], kind="stable")][:k]
        got = i[r][np.isfinite(s[r])]
        assert len(got) == len(expect)  # only documents sharing a term, as many as exist up to k
        np.testing.assert_allclose(s[r][: len(got)], dense[r, expect], rtol=1e-6)  # same scores, same order
        np.testing.assert_allclose(dense[r, got], s[r][: len(got)], rtol=1e-6)
        assert np.all(i[r][len(got) :] == -1)


def test_sparse_search_rejects_gaps_and_vocabulary_mismatch():
    d = sp.csr_matrix(np.eye(4, dtype=np.float32))
    with pytest.raises(ValueError, match="consecutive"):
        sparse_search(d, [(0, d[:2]), (5, d[2:])], 2)
    with pytest.raises(ValueError, match="dimensions"):
        sparse_search(sp.csr_matrix(np.ones((1, 3), np.float32)), [(0, d)], 2)


# -------------------------------------------------------------------------------------- the cache


def test_csr_cache_round_trip_damage_and_no_pickles(tmp_path):
    rng = np.random.default_rng(0)
    matrix = _random_csr(rng, 10, 50, 4)
    calls: list[int] = []

    def encode(texts):
        calls.append(len(texts))
        return matrix[[int(t) for t in texts]]

    kw = dict(texts=lambda idx: [str(i) for i in idx], order=np.arange(10), encode=encode, key={"k": "csr"},
              cache_dir=tmp_path, shard_size=4, progress=False, fmt=CSRFormat())  # fmt: skip
    emb = encode_sharded(**kw)
    assert calls == [4, 4, 2]
    parts = sorted(p.name for p in emb.folder.glob("shard-000000.*"))
    assert parts == ["shard-000000.data.npy", "shard-000000.indices.npy", "shard-000000.indptr.npy",
                     "shard-000000.json"]  # fmt: skip
    for npy in emb.folder.glob("shard-*.npy"):  # plain numeric arrays: loadable without pickle
        assert np.load(npy, allow_pickle=False).dtype in (np.float32, np.int32, np.int64)
    back = sp.vstack([c for _, c in emb.chunks()]).tocsr()
    assert (back != matrix).nnz == 0

    # a part cut short (as a kill outside our atomic rename could leave it), another one missing,
    # and a part replaced by a pickled object array: all three shards are re-encoded, never read
    data = emb.folder / "shard-000000.data.npy"
    data.write_bytes(data.read_bytes()[:-4])
    (emb.folder / "shard-000001.indptr.npy").unlink()
    np.save(emb.folder / "shard-000002.indices.npy", np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    calls.clear()
    again = encode_sharded(**kw)
    assert calls == [4, 4, 2] and again.stats.shards_encoded == 3
    assert (sp.vstack([c for _, c in again.chunks()]).tocsr() != matrix).nnz == 0


# ----------------------------------------------------------------------------- families and loaders


def test_family_detection_from_the_checkpoint_layouts(tmp_path, tiny_gtr):
    assert detect_family(build_tiny_splade(tmp_path / "a", layout="st")) == "sparse"
    assert detect_family(build_tiny_splade(tmp_path / "splade-hf", layout="hf")) == "sparse"
    plain_mlm = build_tiny_splade(tmp_path / "bert-mlm", layout="hf")  # a masked LM not named SPLADE
    assert detect_family(plain_mlm) == "dense"
    assert detect_family(build_tiny_inference_free_splade(tmp_path / "if")) == "sparse"
    for layout in ("pylate", "stanford", "st"):
        assert detect_family(build_tiny_colbert(tmp_path / f"c-{layout}", layout=layout)) == "multivector"
    assert detect_family(tiny_gtr) == "dense"
    assert detect_family(build_tiny_router(tmp_path / "router")) == "dense"
    assert detect_family(build_tiny_dense_pair(tmp_path / "dpr")[0]) == "dense"
    # The list of families asks each in turn: the same answers, and a preset's family from the preset.
    assert families.of_request(str(plain_mlm)).name == "dense"
    assert families.of_request(str(tmp_path / "splade-hf")).name == "sparse"
    assert families.of_request(str(tmp_path / "c-stanford")).name == "multivector"
    assert families.of_request("splade-pp-ed").name == "sparse"
    assert families.of_request("colbertv2").name == "multivector"
    assert families.of_request("naver/splade-cocondenser-ensembledistil").name == "sparse"
    assert families.of_request("gtr-t5-base").name == "dense"
    with pytest.raises(ValueError, match="family"):
        make_retriever(str(tiny_gtr), RetrieverOptions(family="colbert"))
    forced = make_retriever(str(plain_mlm), RetrieverOptions(family="sparse", progress=False))
    assert isinstance(forced, SparseRetriever)


def test_both_splade_layouts_load_to_the_same_model(tmp_path):
    st = load_sparse_encoder(build_tiny_splade(tmp_path / "st", layout="st"), max_length=256)
    hf = load_sparse_encoder(build_tiny_splade(tmp_path / "splade-hf", layout="hf"), max_length=256)
    assert [type(m).__name__ for m in hf] == ["Transformer", "SpladePooling"]
    assert st.max_seq_length == hf.max_seq_length == 256 and st.similarity_fn_name == "dot"
    texts = ["how does bread rise in the oven", "tea brewing water"]
    assert (st.encode_document(texts) - hf.encode_document(texts)).coalesce().values().abs().max() == 0


# ------------------------------------------------------------------------------------- the retriever


def test_sparse_retriever_scores_equal_the_library_and_the_cache_is_reused(tiny_splade, tmp_path):
    data = load_beir_folder(DEMO)
    cfg = SparseConfig(model=str(tiny_splade), shard_size=5)
    r = SparseRetriever(cfg, cache_dir=tmp_path / "c", progress=False)
    indexed = r.index(data.corpus).stats
    searched = r.search(data.queries, top_k=7)
    run = searched.run
    shards = ("corpus_shards", "corpus_shards_encoded", "corpus_shards_reused", "corpus_complete")
    assert {k: indexed[k] for k in shards} == {
        "corpus_shards": 5,
        "corpus_shards_encoded": 5,
        "corpus_shards_reused": 0,
        "corpus_complete": True,
    }

    qids, docs = list(data.queries), data.corpus.texts()
    lib = library_scores(r.model, "sparse", [data.queries[q] for q in qids], docs)
    for row, qid in enumerate(qids):
        assert len(run[qid]) == 7
        expect = np.argsort(-lib[row], kind="stable")[:7]
        assert [data.corpus.ids[j] for j in expect] == list(run[qid])  # same documents, same order
        got = [run[qid][data.corpus.ids[j]] for j in expect]
        np.testing.assert_allclose(got, lib[row, expect], rtol=1e-6)

    # index statistics: the library's own non-zeros, and the bytes of the shard parts on disk
    d = r.model.encode_document(docs).coalesce()
    q = r.model.encode_query([data.queries[x] for x in qids]).coalesce()
    stats = searched.report.stats["index"]
    assert stats["nnz"] == d.values().count_nonzero()
    assert stats["avg_nnz_per_doc"] == pytest.approx(stats["nnz"] / len(docs), abs=0.01)
    assert stats["avg_nnz_per_query"] == pytest.approx(
        q.values().count_nonzero().item() / len(qids), abs=0.01
    )
    folder = Path(indexed["cache_folder"])
    assert stats["index_bytes"] == sum(p.stat().st_size for p in folder.glob("shard-*.npy"))

    again = SparseRetriever(cfg, cache_dir=tmp_path / "c", progress=False)
    reused = again.index(data.corpus).stats
    assert reused["corpus_shards_reused"] == 5 and reused["corpus_shards_encoded"] == 0
    assert reused["cache_folder"] == indexed["cache_folder"]
    assert again.search(data.queries, top_k=7).run == run
    # what changes the vectors changes the cache entry
    shorter = SparseRetriever(SparseConfig(model=str(tiny_splade), shard_size=5, max_length=8),
                              cache_dir=tmp_path / "c", progress=False)  # fmt: skip
    other = shorter.index(data.corpus).stats
    assert other["corpus_shards_encoded"] == 5 and other["cache_folder"] != indexed["cache_folder"]


def test_splade_preset_runs_through_the_hub_path_end_to_end(tmp_path):
    """`-m splade-pp-ed` resolved from an offline hub cache holding a tiny SPLADE in the upstream
    layout (a plain BertForMaskedLM folder), run by the CLI on the demo set beside bm25."""
    hub = tmp_path / "hub"
    hub_id = PRESETS["splade-pp-ed"].hub_id
    install_as_hub_snapshot(build_tiny_splade(tmp_path / "build", layout="hf"), hub, hub_id, HUB_COMMIT)
    results = tmp_path / "results"
    cmd = ["run", "-m", "bm25", "-m", "splade-pp-ed", "-d", "demo", "--results-dir", str(results),
           "--cache-dir", str(tmp_path / "cache"), "--quiet"]  # fmt: skip
    env = dict(os.environ, HF_HUB_CACHE=str(hub), HF_HUB_OFFLINE="1")
    out = gtr_eval(*cmd, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    stored = json.loads((results / "splade-pp-ed" / "demo.json").read_text())
    man, stats = stored["manifest"]["spec"], stored["manifest"]["stats"]
    assert (man["retriever"], man["hub_id"], man["revision"]) == ("sparse", hub_id, HUB_COMMIT)
    assert man["max_length"] == 256 and stats["model_settings"]["max_seq_length"] == 256
    assert man["score"] == "dot" and stats["index"]["docs"] == 24
    assert "[index] splade-pp-ed on demo: index_bytes" in out.stderr
    assert len(stored["per_query"]["ndcg@10"]) == 8

    # the stored run's scores are the library's, with the preset's settings
    data = load_beir_folder(DEMO)
    model = load_sparse_encoder(next(hub.glob("models--*/snapshots/*")), max_length=256)
    for qid, hits in stored_pairs(results, "splade-pp-ed", "demo", 8, 10):
        lib = library_scores(
            model, "sparse", [data.queries[qid]], [data.corpus.text(data.corpus.index_of(d)) for d, _ in hits]
        )
        np.testing.assert_allclose([s for _, s in hits], lib[0], rtol=1e-5)


def test_encode_shard_jobs_fill_the_sparse_cache_and_the_run_only_searches(tiny_splade, tmp_path):
    common = ["-d", "demo", "--cache-dir", str(tmp_path / "cache"), "--shard-size", "5", "--quiet"]
    from click.testing import CliRunner

    from gtr_eval.cli import cli

    for job in ("0/2", "1/2"):
        res = CliRunner().invoke(cli, ["encode", "-m", str(tiny_splade), *common, "--shard", job])
        assert res.exit_code == 0, res.output
    res = CliRunner().invoke(
        cli, ["run", "-m", str(tiny_splade), *common, "--results-dir", str(tmp_path / "r")]
    )
    assert res.exit_code == 0, res.output
    assert "[cache] tiny-splade on demo: corpus embeddings: 5 shards from cache" in res.stderr


def test_kill_9_during_sparse_encoding_resumes_from_the_last_complete_shard(tiny_splade, tmp_path):
    kill_during_encode_then_resume(tiny_splade, "tiny-splade", tmp_path)


def test_bench_sparse_quick():
    from test_search import _quick

    r = _quick("bench_sparse.py", "--skews", "0.5")
    (run,) = r["runs"]
    ours, peer = run["sides"]["ours"], run["sides"]["scipy"]
    assert run["same_top10"] == 1.0 and ours["pairs"] == peer["pairs"] > 0
    assert 140 <= run["avg_nnz_per_doc"] <= 170 and 20 <= run["avg_nnz_per_query"] <= 40


# ---------------------------------------------------------------------------------- real NFCorpus


@pytest.mark.slow
def test_tiny_splade_on_nfcorpus_scores_equal_the_library(tiny_splade, beir_data, shared_cache_dir, tmp_path):
    """The real NFCorpus end to end (128 tokens: the tiny vocabulary spells most words letter by
    letter, so longer inputs only cost time; a variant, `tiny-splade[max_length=128]`); sampled pairs
    scored again by the library."""
    results = tmp_path / "results"
    cmd = ["run", "-m", str(tiny_splade), "-d", "nfcorpus", "--data-dir", str(beir_data), "--max-length",
           "128", "--results-dir", str(results), "--cache-dir", str(shared_cache_dir), "--no-download", "--quiet"]  # fmt: skip
    out = gtr_eval(*cmd, timeout=1800)
    assert out.returncode == 0, out.stderr[-3000:]
    stored = json.loads((results / "tiny-splade[max_length=128]" / "nfcorpus.json").read_text())
    assert stored["manifest"]["stats"]["index"]["docs"] == 3633 and stored["scoring"]["judged_queries"] == 323
    assert "[index] tiny-splade[max_length=128] on nfcorpus: index_bytes" in out.stderr

    data = load_beir_folder(beir_data / "nfcorpus", split="test")
    check_sampled_pairs(
        results,
        "tiny-splade[max_length=128]",
        data,
        load_sparse_encoder(tiny_splade, max_length=128),
        "sparse",
        25,
    )
