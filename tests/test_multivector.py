"""Late interaction: the MaxSim kernels against sentence-transformers' own `util.maxsim`, the token
cache (float16 parts, damage, no pickles, kill -9 / resume), the three ColBERT checkpoint layouts,
the `colbertv2` preset through the hub code path in full and two-stage (`rerank --run bm25`) mode,
and the harness's scores against `MultiVectorEncoder.similarity` on the demo set and (slow) on the
real NFCorpus.  Models are tiny random ColBERTs in the real layouts (tests/tiny_models.py)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_process import gtr_eval
from family_helpers import (
    HUB_COMMIT,
    check_sampled_pairs,
    kill_during_encode_then_resume,
    library_scores,
    stored_pairs,
)
from sentence_transformers import util
from tiny_gtr import install_as_hub_snapshot
from tiny_models import build_tiny_colbert

from gtr_eval.data.loader import load_beir_folder
from gtr_eval.evaluation import ranked, read_trec_run
from gtr_eval.paths import BUNDLED
from gtr_eval.results import ResultsStore
from gtr_eval.retrieval.cache import RaggedTokens, TokensFormat, encode_sharded
from gtr_eval.retrieval.loaders import load_multivector_encoder
from gtr_eval.retrieval.maxsim import maxsim_full, maxsim_rerank
from gtr_eval.retrieval.multivector import MultiVectorConfig, MultiVectorRetriever
from gtr_eval.retrieval.presets import PRESETS

DEMO = BUNDLED / "demo"
FP16_BOUND = 32 * 2.0**-11  # 32 unit query vectors, unit document vectors rounded to float16


@pytest.fixture(scope="module")
def tiny_colbert(tmp_path_factory):
    return build_tiny_colbert(tmp_path_factory.mktemp("colbert") / "tiny-colbert", layout="pylate")


# ------------------------------------------------------------------------------------ the kernels


def _ragged(rng, n: int, lengths, dim: int) -> list[np.ndarray]:
    out = []
    for i in range(n):
        m = rng.standard_normal((int(lengths[i]), dim)).astype(np.float32)
        out.append(m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-9))
    return out


def _shards(docs: list[np.ndarray], size: int):
    for start in range(0, len(docs), size):
        yield start, RaggedTokens.from_list(docs[start : start + size])


@pytest.mark.parametrize(("n", "shard", "block_bytes", "k", "mean"), [
    (200, 32, 4096, 10, False),  # many shards, one query per score block
    (60, 60, 1 << 24, 100, False),  # one shard; k larger than the corpus
    (90, 17, 1 << 16, 5, True),  # meanmaxsim
])  # fmt: skip
def test_maxsim_full_and_rerank_equal_the_librarys_maxsim(n, shard, block_bytes, k, mean):
    rng = np.random.default_rng(n)
    docs = _ragged(rng, n, rng.integers(1, 40, n), 8)
    docs[3] = np.zeros((0, 8), np.float32)  # a document with no token vector: never returned
    queries = _ragged(rng, 6, [32, 32, 5, 1, 32, 12], 8)  # ragged queries (no expansion)
    lib = util.maxsim([torch.from_numpy(q) for q in queries], [torch.from_numpy(d) for d in docs]).numpy()
    if mean:
        lib = lib / np.array([len(q) for q in queries], np.float32)[:, None]
    q = RaggedTokens.from_list(queries)
    s, i = maxsim_full(q, _shards(docs, shard), k, normalize_by_length=mean, score_block_bytes=block_bytes)
    assert 3 not in i
    scorable = np.array([j for j in range(n) if j != 3])
    for r in range(len(queries)):
        expect = scorable[np.argsort(-lib[r, scorable], kind="stable")][: min(k, n - 1)]
        np.testing.assert_array_equal(i[r][: len(expect)], expect)
        np.testing.assert_allclose(s[r][: len(expect)], lib[r, expect], rtol=1e-5, atol=1e-5)
        assert np.all(i[r][len(expect) :] == -1)

    candidates = [rng.choice(n, size=min(n, 15), replace=False) for _ in queries]
    reranked = maxsim_rerank(q, _shards(docs, shard), candidates, normalize_by_length=mean)
    for r, cand in enumerate(candidates):
        assert set(reranked[r]) == set(cand.tolist()) - {3}
        for row, score in reranked[r].items():
            assert score == pytest.approx(float(lib[r, row]), rel=1e-5, abs=1e-5)


# -------------------------------------------------------------------------------------- the cache


def test_token_cache_stores_float16_parts_and_reencodes_damage(tmp_path):
    rng = np.random.default_rng(1)
    docs = _ragged(rng, 9, rng.integers(1, 12, 9), 4)
    calls: list[int] = []

    def encode(texts):
        calls.append(len(texts))
        return RaggedTokens.from_list([docs[int(t)] for t in texts])

    kw = dict(texts=lambda idx: [str(i) for i in idx], order=np.arange(9), encode=encode, key={"k": "tokens"},
              cache_dir=tmp_path, shard_size=4, progress=False, fmt=TokensFormat("float16"))  # fmt: skip
    emb = encode_sharded(**kw)
    assert calls == [4, 4, 1]
    tokens = np.load(emb.folder / "shard-000000.tokens.npy", allow_pickle=False)
    offsets = np.load(emb.folder / "shard-000000.offsets.npy", allow_pickle=False)
    assert tokens.dtype == np.float16 and offsets.dtype == np.int64 and offsets[-1] == len(tokens)
    back = [s.item(j) for _, s in emb.chunks() for j in range(len(s))]
    for a, b in zip(back, docs, strict=True):
        np.testing.assert_array_equal(a, b.astype(np.float16).astype(np.float32))
    (emb.folder / "shard-000001.json").unlink()  # sidecar lost: the shard is incomplete
    path = emb.folder / "shard-000002.offsets.npy"
    path.write_bytes(path.read_bytes()[:-8])
    calls.clear()
    again = encode_sharded(**kw)
    assert calls == [4, 1] and again.stats.shards_reused == 1


# ---------------------------------------------------------------------------------- the checkpoints


def test_the_colbert_layouts_load_through_one_loader_and_score_alike(tmp_path):
    texts = ["how does bread rise in the oven?", "tea, coffee and water."]
    models = {
        layout: load_multivector_encoder(
            build_tiny_colbert(tmp_path / layout, layout=layout), document_length=300
        )
        for layout in ("pylate", "stanford", "st")
    }
    # lightonai/colbertv2.0 spells its projection `pylate.models.Dense`: aliased by the loader
    models["pylate-lighton"] = load_multivector_encoder(
        build_tiny_colbert(tmp_path / "lighton", layout="pylate", pylate_dense_type="pylate.models.Dense"),
        document_length=300,
    )
    scores = {}
    for name, m in models.items():
        assert [type(x).__name__ for x in m] == ["Transformer", "Dense", "MultiVectorMask", "Normalize"], name
        assert m[0].document_length == 300 and m[0].query_expansion["length"] == 32
        scores[name] = library_scores(m, "multivector", texts, texts)
    for name, s in scores.items():
        np.testing.assert_allclose(s, scores["stanford"], rtol=1e-5, err_msg=name)


# ------------------------------------------------------------------------------------- the retriever


@pytest.mark.parametrize("token_dtype", ["float32", "float16"])
def test_full_search_scores_equal_the_library(tiny_colbert, tmp_path, token_dtype):
    data = load_beir_folder(DEMO)
    cfg = MultiVectorConfig(model=str(tiny_colbert), shard_size=5, token_dtype=token_dtype)
    r = MultiVectorRetriever(cfg, cache_dir=tmp_path / "c", progress=False)
    indexed = r.index(data.corpus)
    searched = r.search(data.queries, top_k=6)
    run = searched.run
    qids, docs = list(data.queries), data.corpus.texts()
    texts = [data.queries[q] for q in qids]
    stored = library_scores(r.model, "multivector", texts, docs, np.dtype(token_dtype))  # vectors as stored
    exact = library_scores(r.model, "multivector", texts, docs)  # float32 vectors
    for row, qid in enumerate(qids):
        expect = np.argsort(-stored[row], kind="stable")[:6]
        assert list(run[qid]) == [data.corpus.ids[j] for j in expect]
        got = np.array([run[qid][data.corpus.ids[j]] for j in expect])
        np.testing.assert_allclose(got, stored[row, expect], rtol=1e-5, atol=1e-5)
        assert np.abs(got - exact[row, expect]).max() <= (FP16_BOUND if token_dtype == "float16" else 1e-4)
    assert (r.spec.search, r.spec.candidates, r.spec.depth, r.spec.inputs) == ("full", None, None, ())
    index = searched.report.stats["index"]
    assert index["token_dtype"] == token_dtype and index["docs"] == 24
    n_tokens = sum(len(x) for x in r.model.encode_document(docs))
    assert index["token_vectors"] == n_tokens
    folder = Path(indexed.stats["cache_folder"])
    assert index["index_bytes"] == sum(p.stat().st_size for p in folder.glob("shard-*.npy"))


def test_large_corpus_full_search_is_refused_before_encoding(tiny_colbert, tmp_path):
    data = load_beir_folder(DEMO)
    r = MultiVectorRetriever(MultiVectorConfig(model=str(tiny_colbert), full_max_docs=10), cache_dir=tmp_path,
                             progress=False)  # fmt: skip
    with pytest.raises(ValueError, match="gtr-eval rerank --run bm25 -m"):
        r.index(data.corpus)
    assert not (tmp_path / "embeddings").exists()
    forced = MultiVectorRetriever(MultiVectorConfig(model=str(tiny_colbert), full_max_docs=10, search="full"),
                                  cache_dir=tmp_path, progress=False)  # fmt: skip
    assert forced.index(data.corpus).stats["corpus_shards_encoded"] == 1
    # two-stage: the first stage must have a stored run on the dataset first
    from click.testing import CliRunner

    from gtr_eval.cli import cli

    res = CliRunner().invoke(cli, ["rerank", "--run", "bm25", "-m", str(tiny_colbert), "-d", "demo", "--results-dir",
                                   str(tmp_path / "r"), "--cache-dir", str(tmp_path), "--quiet"])  # fmt: skip
    assert res.exit_code != 0 and "rerank: no stored result of bm25 on demo in" in res.output
    with pytest.raises(ValueError, match="search must be one of"):
        MultiVectorRetriever(MultiVectorConfig(model=str(tiny_colbert), search="rerank"))


def _top(run: dict[str, float], depth: int) -> set[str]:
    """The first stage's top `depth` in trec_eval's order (what a re-ranker re-scores)."""
    return {d for d, _ in ranked(run)[:depth]}


def _cli(args: list[str], env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return gtr_eval(*args, env=env, timeout=timeout)


def test_colbertv2_preset_full_and_two_stage_through_the_hub_path(tmp_path):
    """`-m colbertv2` from an offline hub cache holding a tiny Stanford-layout ColBERT: full exact
    search, then the two-stage mode (`rerank --run bm25 -m colbertv2`) re-ranking bm25's stored
    run, both on the demo set."""
    hub = tmp_path / "hub"
    hub_id = PRESETS["colbertv2"].hub_id
    install_as_hub_snapshot(
        build_tiny_colbert(tmp_path / "build", layout="stanford"), hub, hub_id, HUB_COMMIT
    )
    env = dict(os.environ, HF_HUB_CACHE=str(hub), HF_HUB_OFFLINE="1")
    common = ["-d", "demo", "--cache-dir", str(tmp_path / "cache"), "--quiet"]
    full, two = tmp_path / "full", tmp_path / "two-stage"
    out = _cli(["run", "-m", "colbertv2", *common, "--results-dir", str(full)], env)
    assert out.returncode == 0, out.stderr[-3000:]
    manifest = json.loads((full / "colbertv2" / "demo.json").read_text())["manifest"]
    man = manifest["spec"]
    assert (man["retriever"], man["hub_id"], man["revision"], man["search"]) == (
        "multivector",
        hub_id,
        HUB_COMMIT,
        "full",
    )
    settings = manifest["stats"]["model_settings"]
    assert (
        man["max_length"] == settings["document_length"] == 300
        and settings["query_expansion"]["length"] == 32
    )
    assert settings["prompts"] == {"query": "[unused0] ", "document": "[unused1] "}
    assert "[index] colbertv2 on demo: index_bytes" in out.stderr

    out = _cli(["run", "-m", "bm25", *common, "--results-dir", str(two)], env)
    assert out.returncode == 0, out.stderr[-3000:]
    out = _cli(["rerank", "--run", "bm25", "-m", "colbertv2", *common, "--results-dir", str(two), "--depth", "5"],
               env)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert (
        "[cache] bm25>>colbertv2[depth=5] on demo: corpus embeddings: 1 shard from cache" in out.stderr
    )  # same vectors
    stored = json.loads((two / "bm25>>colbertv2[depth=5]" / "demo.json").read_text())
    man = stored["manifest"]["spec"]
    bm25_run = ResultsStore(two).load("bm25", "demo").run_path
    assert (man["retriever"], man["search"], man["candidates"], man["depth"]) == (
        "multivector",
        "rerank",
        "bm25",
        5,
    )
    bm25_sha = hashlib.sha256(bm25_run.read_bytes()).hexdigest()
    assert [(i["system"], i["run_sha256"]) for i in man["inputs"]] == [("bm25", bm25_sha)]
    # the first stage's run is part of the result's identity (a changed run is another input)
    assert stored["identity"]["system"]["inputs"] == [{"system": "bm25", "run_sha256": bm25_sha}]

    first, second = (
        read_trec_run(bm25_run),
        read_trec_run(ResultsStore(two).load("bm25>>colbertv2[depth=5]", "demo").run_path),
    )
    full_run = read_trec_run(ResultsStore(full).load("colbertv2", "demo").run_path)
    for qid, hits in second.items():
        assert set(hits) == _top(first[qid], 5)  # exactly the first stage's top 5, re-scored
        for doc, score in hits.items():  # the same exact MaxSim as the full search
            assert score == pytest.approx(full_run[qid][doc], rel=1e-6)
    data = load_beir_folder(DEMO)
    model = load_multivector_encoder(next(hub.glob("models--*/snapshots/*")), document_length=300)
    for qid, hits in stored_pairs(two, "bm25>>colbertv2[depth=5]", "demo", 8, 5):
        docs = [data.corpus.text(data.corpus.index_of(d)) for d, _ in hits]
        lib = library_scores(model, "multivector", [data.queries[qid]], docs, np.float16)
        np.testing.assert_allclose([s for _, s in hits], lib[0], rtol=1e-5)


def test_api_rerank_takes_a_late_interaction_model(tiny_colbert, tmp_path):
    from gtr_eval.api import rerank, run

    quiet = dict(results_dir=tmp_path / "r", cache_dir=tmp_path / "c", progress=False, echo=lambda s: None)
    run(["bm25"], ["demo"], **quiet)
    (result,) = rerank("bm25", [str(tiny_colbert)], ["demo"], depth=3, **quiet)
    man = result.spec
    assert (result.system, man["search"], man["candidates"], man["depth"], man["top_k"]) == (
        "bm25>>tiny-colbert[depth=3]", "rerank", "bm25", 3, 3
    )  # fmt: skip
    assert [i["system"] for i in man["inputs"]] == ["bm25"]
    first = read_trec_run(ResultsStore(tmp_path / "r").load("bm25", "demo").run_path)
    second = read_trec_run(ResultsStore(tmp_path / "r").load("bm25>>tiny-colbert[depth=3]", "demo").run_path)
    assert {q: set(h) for q, h in second.items()} == {q: _top(h, 3) for q, h in first.items() if h}


def test_kill_9_during_token_encoding_resumes_from_the_last_complete_shard(tiny_colbert, tmp_path):
    kill_during_encode_then_resume(tiny_colbert, "tiny-colbert", tmp_path)


def test_bench_maxsim_quick():
    from test_search import _quick

    r = _quick("bench_maxsim.py")
    assert r["same_top10_sets"] == 1.0 and r["max_abs_score_diff_top10"] < 1e-4


# ---------------------------------------------------------------------------------- real NFCorpus


@pytest.mark.slow
def test_tiny_colbert_on_nfcorpus_full_and_reranked_scores_equal_the_library(
    tiny_colbert, beir_data, shared_cache_dir, tmp_path
):
    """The real NFCorpus end to end, full exact search then bm25's top 100 re-ranked (documents
    at 128 tokens); sampled pairs scored again by the library on the float16 vectors as stored."""
    results = tmp_path / "results"
    common = ["-d", "nfcorpus", "--data-dir", str(beir_data), "--max-length", "128", "--results-dir", str(results),
              "--cache-dir", str(shared_cache_dir), "--no-download", "--quiet"]  # fmt: skip
    out = _cli(["run", "-m", "bm25", "-m", str(tiny_colbert), *common], timeout=1800)
    assert out.returncode == 0, out.stderr[-3000:]
    stored = json.loads((results / "tiny-colbert[max_length=128]" / "nfcorpus.json").read_text())
    assert (
        stored["manifest"]["spec"]["search"] == "full"
        and stored["manifest"]["stats"]["index"]["docs"] == 3633
    )

    data = load_beir_folder(beir_data / "nfcorpus", split="test")
    model = load_multivector_encoder(tiny_colbert, document_length=128)
    check_sampled_pairs(results, "tiny-colbert[max_length=128]", data, model, "multivector", 15, np.float16)

    # two-stage on the same cache: bm25's top 100 re-scored, each score the full search's
    full = read_trec_run(ResultsStore(results).load("tiny-colbert[max_length=128]", "nfcorpus").run_path)
    out = _cli(["rerank", "--run", "bm25", "-m", str(tiny_colbert), *common, "--depth", "100"], timeout=1800)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (
        "[cache] bm25>>tiny-colbert[max_length=128] on nfcorpus: corpus embeddings: 2 shards from cache"
        in out.stderr
    )
    man = json.loads((results / "bm25>>tiny-colbert[max_length=128]" / "nfcorpus.json").read_text())[
        "manifest"
    ]["spec"]
    assert (man["search"], man["depth"]) == ("rerank", 100)
    assert [i["system"] for i in man["inputs"]] == ["bm25"]
    first = read_trec_run(ResultsStore(results).load("bm25", "nfcorpus").run_path)
    second = read_trec_run(
        ResultsStore(results).load("bm25>>tiny-colbert[max_length=128]", "nfcorpus").run_path
    )
    assert set(second) == {q for q, hits in first.items() if hits}  # BM25 finds nothing for some queries
    compared = 0
    for qid, hits in second.items():
        assert set(hits) == _top(first[qid], 100)
        both = [d for d in hits if d in full[qid]]
        np.testing.assert_allclose([hits[d] for d in both], [full[qid][d] for d in both], rtol=1e-6)
        compared += len(both)
    assert compared > 1000
