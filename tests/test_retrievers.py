"""Retrievers end to end on the bundled demo set, the GTR code path on a tiny random T5 model, and
the embedding cache (reuse, resume after a lost shard, no pickles)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from cli_process import gtr_eval

from gtr_eval.data.loader import Corpus, load_beir_folder
from gtr_eval.paths import BUNDLED
from gtr_eval.retrieval.bm25 import BM25Retriever
from gtr_eval.retrieval.cache import encode_sharded
from gtr_eval.retrieval.dense import DenseConfig, DenseRetriever
from gtr_eval.retrieval.loaders import load_sentence_transformer
from gtr_eval.retrieval.presets import PRESETS, known_prompts
from gtr_eval.retrieval.weights import weights_fingerprint

DEMO = BUNDLED / "demo"


def test_bm25_ranks_the_obvious_document_first():
    data = load_beir_folder(DEMO)
    bm25 = BM25Retriever(progress=False)
    bm25.index(data.corpus)
    run = bm25.search(data.queries, top_k=5).run
    top = {q: max(docs, key=docs.get) for q, docs in run.items()}
    assert top["q1"] == "d02"  # "how does bm25 rank documents"
    assert top["q8"] == "d16"  # espresso
    assert all(len(docs) <= 5 for docs in run.values())


def test_bm25_drops_padding_hits_with_zero_score():
    corpus = Corpus.from_records([("a", "", "apples and pears"), ("b", "", "cars and trucks")])
    bm25 = BM25Retriever(progress=False)
    bm25.index(corpus)
    run = bm25.search({"q": "apples"}, top_k=10).run
    assert list(run["q"]) == ["a"]


def test_gtr_preset_loads_through_the_hub_path_and_runs_end_to_end(tiny_gtr, tmp_path):
    """`-m gtr-t5-base` resolved from a (local, offline) hub cache holding the tiny GTR-layout model."""
    from tiny_gtr import install_as_hub_snapshot

    hub = tmp_path / "hub"
    commit = "a" * 40
    install_as_hub_snapshot(tiny_gtr, hub, PRESETS["gtr-t5-base"].hub_id, commit)
    env = dict(os.environ, HF_HUB_CACHE=str(hub), HF_HUB_OFFLINE="1")
    results = tmp_path / "results"
    cmd = [
        "run",
        "-m",
        "gtr-t5-base",
        "-d",
        "demo",
        "--results-dir",
        str(results),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--quiet",
    ]
    out = gtr_eval(*cmd, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    stored = json.loads((results / "gtr-t5-base" / "demo.json").read_text())
    man = stored["manifest"]["spec"]
    assert man["hub_id"] == "sentence-transformers/gtr-t5-base"
    assert man["revision"] == commit
    assert man["max_length"] == 512 and man["score"] == "dot"
    assert man["weights_sha256"] == weights_fingerprint(hub.glob("models--*/snapshots/*").__next__())
    assert 0.0 <= stored["metrics"]["ndcg@10"] <= 1.0
    assert len(stored["per_query"]["ndcg@10"]) == 8


def test_tiny_gtr_has_the_gtr_architecture(tiny_gtr):
    model = load_sentence_transformer(tiny_gtr)
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["Transformer", "Pooling", "Dense", "Normalize"]
    assert type(model[0].auto_model).__name__ == "T5EncoderModel"
    emb = model.encode(["a query about bread", "tomato garden"])
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)


def test_dense_search_equals_brute_force_and_second_run_reuses_cache(tiny_gtr, tmp_path):
    data = load_beir_folder(DEMO)
    cfg = DenseConfig(model=str(tiny_gtr), shard_size=5)
    first = DenseRetriever(cfg, cache_dir=tmp_path / "c", progress=False)
    stats = first.index(data.corpus).stats
    run = first.search(data.queries, top_k=3).run
    counts = ("corpus_shards", "corpus_shards_encoded", "corpus_shards_reused")
    assert {k: stats[k] for k in counts} == {
        "corpus_shards": 5,
        "corpus_shards_encoded": 5,
        "corpus_shards_reused": 0,
    }
    assert stats["corpus_complete"] is True

    model = load_sentence_transformer(tiny_gtr)
    d = model.encode(data.corpus.texts())
    q = model.encode(list(data.queries.values()))
    scores = q @ d.T
    for r, qid in enumerate(data.queries):
        expect = [data.corpus.ids[j] for j in np.argsort(-scores[r])[:3]]
        assert sorted(run[qid], key=run[qid].get, reverse=True) == expect

    again = DenseRetriever(cfg, cache_dir=tmp_path / "c", progress=False)
    stats = again.index(data.corpus).stats
    assert stats["corpus_shards_reused"] == 5 and stats["corpus_shards_encoded"] == 0
    assert again.search(data.queries, top_k=3).run == run


def test_cache_reencodes_only_a_damaged_or_missing_shard(tmp_path):
    calls: list[int] = []

    def encode(texts):
        calls.append(len(texts))
        return np.array([[len(t), 1.0] for t in texts], dtype=np.float32)

    texts = [f"doc {i}" * (i + 1) for i in range(10)]
    kw = dict(
        texts=lambda idx: [texts[i] for i in idx],
        order=np.arange(10),
        encode=encode,
        key={"k": 1},
        cache_dir=tmp_path,
        shard_size=4,
        progress=False,
    )
    emb = encode_sharded(**kw)
    assert calls == [4, 4, 2]
    shards = emb.shard_paths
    shards[1].write_bytes(
        shards[1].read_bytes()[:-8]
    )  # truncated, as a kill mid-write outside our rename could
    shards[2].unlink()
    calls.clear()
    emb2 = encode_sharded(**kw)
    assert calls == [4, 2]
    assert emb2.stats.shards_reused == 1 and emb2.stats.shards_encoded == 2
    np.testing.assert_array_equal(emb2.matrix()[:, 0], [len(t) for t in texts])


def test_cache_key_changes_with_prompt(tiny_gtr, tmp_path):
    data = load_beir_folder(DEMO)
    a = DenseRetriever(DenseConfig(model=str(tiny_gtr)), cache_dir=tmp_path, progress=False)
    b = DenseRetriever(
        DenseConfig(model=str(tiny_gtr), doc_prompt="passage: "), cache_dir=tmp_path, progress=False
    )
    content = data.corpus.content_hash()
    assert (
        a.key("corpus", content)["doc_prompt"] == "" and b.key("corpus", content)["doc_prompt"] == "passage: "
    )
    a_stats = a.index(data.corpus).stats
    b_stats = b.index(data.corpus).stats
    assert a_stats["cache_folder"] != b_stats["cache_folder"]
    assert b_stats["corpus_shards_encoded"] == b_stats["corpus_shards"]


def test_known_prompts_and_warning_when_missing(tiny_gtr):
    assert known_prompts("intfloat/e5-base-v2") == ("query: ", "passage: ")
    assert known_prompts("BAAI/bge-base-en-v1.5")[0].startswith("Represent this sentence")
    assert known_prompts("sentence-transformers/gtr-t5-base") is None
    e5_dir = tiny_gtr.parent / "e5-small-v2"
    if not e5_dir.exists():
        e5_dir.symlink_to(tiny_gtr, target_is_directory=True)
    with pytest.warns(UserWarning, match="trained with prompts"):
        DenseRetriever(DenseConfig(model=str(e5_dir), query_prompt=""), progress=False)
    r = DenseRetriever(DenseConfig(model=str(e5_dir)), progress=False)
    assert (r.spec.query_prompt, r.spec.doc_prompt) == ("query: ", "passage: ")


def test_cache_never_unpickles(tmp_path):
    kw = dict(
        texts=lambda idx: ["x"] * len(idx),
        order=np.arange(3),
        key={"k": 2},
        cache_dir=tmp_path,
        shard_size=3,
        progress=False,
        encode=lambda t: np.ones((len(t), 2), np.float32),
    )
    emb = encode_sharded(**kw)
    # Replace the shard by a pickled object array with a matching sidecar: loading must refuse it.
    obj = np.array([{"evil": 1}] * 3, dtype=object)
    np.save(emb.shard_paths[0], obj, allow_pickle=True)
    with pytest.raises(ValueError, match="allow_pickle"):
        np.load(emb.shard_paths[0], allow_pickle=False)
    emb2 = encode_sharded(**kw)  # sidecar hash no longer matches: re-encoded, not loaded
    assert emb2.stats.shards_encoded == 1
    assert emb2.matrix().dtype == np.float32


def test_trust_remote_code_is_off_unless_asked(tiny_gtr, monkeypatch):
    import sentence_transformers

    seen: list[bool] = []
    real = sentence_transformers.SentenceTransformer

    def spy(*args, **kwargs):
        seen.append(kwargs["trust_remote_code"])
        return real(*args, **kwargs)

    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", spy)
    load_sentence_transformer(tiny_gtr)
    load_sentence_transformer(tiny_gtr, trust_remote_code=True)
    assert seen == [False, True]
    spec = DenseRetriever(DenseConfig(model=str(tiny_gtr)), progress=False).spec
    assert spec.trust_remote_code is False and spec.record()["trust_remote_code"] is False
