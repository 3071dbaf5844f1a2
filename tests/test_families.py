"""Asymmetric dual encoders and the dense baselines' presets, on tiny random models in the real
checkpoints' layouts (tests/tiny_models.py) loaded through the presets' own code path (an offline
hub cache): scores equal the library's own, each side has its own cache key, published settings are
applied and deviations warn, and kill -9 / resume works for the two-model system."""

from __future__ import annotations

import json
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from tiny_gtr import install_as_hub_snapshot

from gtr_eval.cli import cli
from gtr_eval.data.units import resolve_dataset
from gtr_eval.evaluation import ranked, read_trec_run
from gtr_eval.results import ResultsStore
from gtr_eval.retrieval.dense import DenseConfig, DenseRetriever
from gtr_eval.retrieval.presets import DENSE_BASELINES, PRESETS
from gtr_eval.retrieval.weights import weights_fingerprint

COMMIT = "c" * 40
UNPUBLISHED = "scores will not match published ones"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    import tiny_models as tm

    root = tmp_path_factory.mktemp("families")
    q, d = tm.build_tiny_dense_pair(root / "pair")
    plain = root / "plain-bert"  # a plain HF BertModel folder, no sentence-transformers files
    tm._bert_folder(plain, 7, arch="BertModel")
    return {"query": q, "doc": d, "router": tm.build_tiny_router(root / "router"), "plain": plain}


@pytest.fixture()
def hub(tmp_path, monkeypatch) -> Path:
    """An empty offline hub cache that `snapshot_download` (hence every preset) reads."""
    import huggingface_hub.constants as constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def _install(tiny: dict[str, Path], hub: Path, key: str) -> None:
    preset = PRESETS[key]
    folder = tiny["plain"] if key == "contriever-msmarco" else tiny["doc"]  # contriever has no ST files
    install_as_hub_snapshot(folder, hub, preset.hub_id, COMMIT)
    if preset.query_hub_id:
        install_as_hub_snapshot(tiny["query"], hub, preset.query_hub_id, COMMIT)


def _ours(warned: list[warnings.WarningMessage]) -> list[str]:
    return [
        str(w.message) for w in warned if UNPUBLISHED in str(w.message) or "trained with" in str(w.message)
    ]


@pytest.mark.parametrize("key", sorted(DENSE_BASELINES))
def test_each_baseline_preset_resolves_through_the_hub_with_its_published_settings(tiny, hub, key):
    _install(tiny, hub, key)
    preset = PRESETS[key]
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        r = DenseRetriever(DenseConfig(model=key), progress=False)
        q = r.encoder("query").encode(["how does bread rise"], r.spec.query_prompt, "query")
    assert _ours(warned) == []
    man = r.spec.record()  # what the stored result's manifest records of the system
    assert (man["hub_id"], man["revision"], man["preset"]) == (preset.hub_id, COMMIT, key)
    assert (man["score"], man["max_length"]) == (preset.score, preset.max_length)
    assert (man["query_prompt"], man["doc_prompt"]) == (preset.query_prompt, preset.doc_prompt)
    assert q.shape == (1, 32)
    if key == "dpr":
        assert (
            man["query_hub_id"] == preset.query_hub_id
            and man["text_format"] == "(title + ' [SEP] ' + text).strip()"
        )
        assert man["query_weights_sha256"] != man["weights_sha256"]
        assert r.asymmetric and r.encoder("query") is not r.encoder("document")
    else:
        assert man["query_hub_id"] is None and man["query_model_path"] is None
        assert man["text_format"] == "(title + ' ' + text).strip()"
        assert man["query_weights_sha256"] == man["weights_sha256"]  # one model encodes both sides
        assert not r.asymmetric and r.encoder("query") is r.encoder("document")


def test_contriever_without_st_files_gets_the_library_s_mean_pooling(tiny, hub):
    """facebook/contriever-msmarco is a plain BertModel folder: sentence-transformers adds mean pooling
    (Contriever's own), and the preset scores by dot product."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    _install(tiny, hub, "contriever-msmarco")
    r = DenseRetriever(DenseConfig(model="contriever-msmarco"), progress=False)
    texts = ["how does bread rise", "tea brewing water"]
    ours = r.encoder("document").encode(texts, "", "document")
    tok, bert = AutoTokenizer.from_pretrained(tiny["plain"]), AutoModel.from_pretrained(tiny["plain"]).eval()
    with torch.no_grad():
        enc = tok(texts, padding=True, return_tensors="pt")
        hidden = bert(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).float()
        mean = (hidden * mask).sum(1) / mask.sum(1)
    np.testing.assert_allclose(ours, mean.numpy(), rtol=1e-5, atol=1e-5)
    assert r.spec.score == "dot"


def _library_topk(query_model: Path, doc_model: Path, sep: str, k: int, router: bool = False):
    """Top-k per demo query by the library's own encode_query / encode_document and dot product."""
    from sentence_transformers import SentenceTransformer

    data = resolve_dataset("demo")[0].load()
    qm = SentenceTransformer(str(query_model), device="cpu")
    dm = qm if router else SentenceTransformer(str(doc_model), device="cpu")
    docs = [(data.corpus.titles[i] + sep + data.corpus.bodies[i]).strip() for i in range(len(data.corpus))]
    qe = qm.encode_query(list(data.queries.values()), convert_to_tensor=True)
    de = dm.encode_document(docs, convert_to_tensor=True)
    scores = (qm.similarity(qe, de) if router else qe @ de.T).numpy()
    return {q: {data.corpus.ids[j]: float(scores[r, j]) for j in np.argsort(-scores[r])[:k]}
            for r, q in enumerate(data.queries)}  # fmt: skip


def _assert_same_top(run: dict, want: dict) -> None:
    assert run.keys() == want.keys()
    for q, docs in want.items():
        got = dict(ranked(run[q])[: len(docs)])
        assert list(got) == list(docs), q
        np.testing.assert_allclose(list(got.values()), list(docs.values()), rtol=1e-5, atol=1e-5)


def _run(*args: str):
    res = CliRunner().invoke(cli, ["run", *args, "--quiet"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res


def test_dpr_preset_on_demo_equals_the_library_and_keeps_a_cache_key_per_side(tiny, hub, tmp_path):
    _install(tiny, hub, "dpr")
    results, cache = tmp_path / "results", tmp_path / "cache"
    _run("-m", "dpr", "-d", "demo", "--results-dir", str(results), "--cache-dir", str(cache), "--top-k", "5")
    stored = ResultsStore(results).load("dpr[top_k=5]", "demo")  # a variant: 5 documents a query
    want = _library_topk(tiny["query"], tiny["doc"], " [SEP] ", 5)
    _assert_same_top(read_trec_run(stored.run_path), want)
    keys = [json.loads(p.read_text()) for p in cache.glob("embeddings/*/*/key.json")]
    by_kind = {k["kind"]: k for k in keys}
    assert len(keys) == len(by_kind) == 2
    # each side is keyed by its own model only: the corpus by the document encoder's weights, the
    # queries by the query encoder's
    assert by_kind["corpus"]["weights_sha256"] == weights_fingerprint(tiny["doc"])
    assert "query_weights_sha256" not in by_kind["corpus"]
    assert by_kind["queries"]["query_weights_sha256"] == weights_fingerprint(tiny["query"])
    assert "weights_sha256" not in by_kind["queries"]
    assert stored.spec["query_weights_sha256"] == weights_fingerprint(tiny["query"])
    # the same two models named by their hub ids are the preset (its name and settings)
    res = _run("--query-model", PRESETS["dpr"].query_hub_id, "--doc-model", PRESETS["dpr"].hub_id, "-d", "demo",
               "--results-dir", str(results), "--cache-dir", str(cache), "--top-k", "5")  # fmt: skip
    assert "[skip] dpr[top_k=5] on demo: already done" in res.output


def test_query_and_doc_model_options_make_one_system_equal_to_the_library(tiny, tmp_path):
    results, cache = tmp_path / "results", tmp_path / "cache"
    _run("--query-model", str(tiny["query"]), "--doc-model", str(tiny["doc"]), "--score", "dot", "-d", "demo",
         "--results-dir", str(results), "--cache-dir", str(cache), "--top-k", "5")  # fmt: skip
    stored = ResultsStore(results).load("question_encoder~ctx_encoder[top_k=5,score=dot]", "demo")
    _assert_same_top(read_trec_run(stored.run_path), _library_topk(tiny["query"], tiny["doc"], " ", 5))
    man = stored.spec
    assert man["retriever"] == "dense" and man["score"] == "dot"
    # asymmetric: the query encoder is recorded beside the document encoder, each by its weights
    assert (man["model_path"], man["query_model_path"]) == (str(tiny["doc"]), str(tiny["query"]))
    assert man["weights_sha256"] == weights_fingerprint(tiny["doc"])
    assert man["query_weights_sha256"] == weights_fingerprint(tiny["query"])
    assert stored.identity.system["query_weights_sha256"] == weights_fingerprint(tiny["query"])
    out = CliRunner().invoke(cli, ["run", "--query-model", str(tiny["query"]), "-d", "demo"])
    assert out.exit_code != 0 and "go together" in out.output
    out = CliRunner().invoke(cli, ["run", "-d", "demo"])
    assert out.exit_code != 0 and "at least one -m" in out.output


def test_a_router_model_routes_queries_and_documents_and_scores_as_it_declares(tiny, tmp_path):
    results, cache = tmp_path / "results", tmp_path / "cache"
    _run("-m", str(tiny["router"]), "-d", "demo", "--results-dir", str(results), "--cache-dir", str(cache),
         "--top-k", "5")  # fmt: skip
    stored = ResultsStore(results).load("model[top_k=5]", "demo")
    assert stored.spec["score"] == "dot"  # from the model's config_sentence_transformers.json
    assert "Router" in stored.spec["routes"]
    _assert_same_top(
        read_trec_run(stored.run_path), _library_topk(tiny["router"], tiny["router"], " ", 5, router=True)
    )
    with pytest.raises(ValueError, match="Router"):
        DenseRetriever(DenseConfig(model=str(tiny["router"]), backend="onnx"), progress=False)
    assert stored.spec["backend"] == "torch" and stored.spec["backend_requested"] == "auto"
    assert "separate query and document encoders" in stored.spec["backend_reason"]
    pair = DenseRetriever(DenseConfig(model=str(tiny["doc"]), query_model=str(tiny["query"]), device="cpu"),
                          progress=False)  # fmt: skip
    assert pair.spec.backend == "torch" and "separate" in pair.spec.backend_reason


def test_known_models_warn_when_run_with_settings_their_authors_did_not_use(tiny, hub, tmp_path):
    for key in ("tas-b", "e5-base-v2", "dpr"):
        _install(tiny, hub, key)

    def warned(**kw) -> list[str]:
        with warnings.catch_warnings(record=True) as got:
            warnings.simplefilter("always")
            DenseRetriever(DenseConfig(**kw), progress=False)
        return _ours(got)

    assert warned(model="tas-b") == []
    assert "scoring 'cos' instead of 'dot'" in warned(model="tas-b", score="cos")[0]
    assert "max length 256 instead of 512" in warned(model="tas-b", max_length=256)[0]
    assert "trained with prompts query='query: '" in warned(model="e5-base-v2", query_prompt="")[0]
    assert "not sentence-transformers/facebook-dpr-question_encoder" in warned(model=PRESETS["dpr"].hub_id)[0]
    # a local copy named like the hub model is the same known model
    local = tmp_path / "msmarco-distilbert-base-tas-b"
    local.symlink_to(tiny["doc"], target_is_directory=True)
    r = DenseRetriever(DenseConfig(model=str(local)), progress=False)
    assert (r.spec.score, r.spec.preset) == ("dot", "tas-b")
    assert "instead of 'dot'" in warned(model=str(local), score="cos")[0]
    # a model that declares its score function: running it otherwise warns too
    assert "scoring 'cos' instead of 'dot'" in warned(model=str(tiny["router"]), score="cos")[0]
    assert warned(model=str(tiny["doc"]), score="dot") == []  # unknown model, nothing declared
    # another query encoder in front of a preset's document encoder: its own name, the preset's settings
    mixed = DenseRetriever(DenseConfig(model="tas-b", query_model=str(tiny["query"])), progress=False)
    assert (mixed.name, mixed.spec.score, mixed.asymmetric) == ("question_encoder~tas-b", "dot", True)


def test_kill_9_during_the_document_encoders_corpus_encoding_resumes(tiny, tmp_path):
    """The reliability test's kill, on a two-model system: resume at the last complete shard."""
    from cli_process import GTR_EVAL
    from test_reliability import (
        SHARD,
        _cache_lines,
        _complete_shards,
        _sigkill,
        _synthetic,
        _wait_until,
    )

    syn = _synthetic(tmp_path / "synthetic")
    n_shards = -(-3000 // SHARD)

    def args(results: Path, cache: Path) -> list[str]:
        return [
            "run",
            "--query-model",
            str(tiny["query"]),
            "--doc-model",
            str(tiny["doc"]),
            "-d",
            str(syn),
            "--results-dir",
            str(results),
            "--cache-dir",
            str(cache),
            "--shard-size",
            str(SHARD),
            "--quiet",
        ]

    reference = tmp_path / "reference"
    _run(*args(reference, tmp_path / "reference-cache")[1:-1])
    results, cache = tmp_path / "results", tmp_path / "cache"
    with open(tmp_path / "stderr.txt", "wb") as err:
        proc = subprocess.Popen([*GTR_EVAL, *args(results, cache)], stdout=subprocess.DEVNULL, stderr=err)
        _wait_until(lambda: _complete_shards(cache) >= 1, proc, "the first corpus shard")
        _sigkill(proc)
    complete = _complete_shards(cache)
    assert 1 <= complete < n_shards
    res = _run(*args(results, cache)[1:-1])
    encoded, total, reused = _cache_lines(res.output)["synthetic"]
    assert (total, reused, encoded) == (n_shards, complete, n_shards - complete)
    name = "question_encoder~ctx_encoder"
    got, want = ResultsStore(results).load(name, "synthetic"), ResultsStore(reference).load(name, "synthetic")
    assert got.metrics == want.metrics and got.per_query == want.per_query


def test_the_task_routes_only_router_models(tiny):
    """Queries are encoded with task "query", documents with "document": for a model without a Router
    (the committed all-MiniLM-L6-v2 runs) that changes nothing, bit for bit."""
    from gtr_eval.retrieval.backends import EncoderSpec
    from gtr_eval.retrieval.encoders import TorchEncoder
    from gtr_eval.retrieval.models import resolve_model

    texts = ["how does bread rise", "Coffee and tea brewing in the morning, " * 8, "x"]
    minilm = TorchEncoder(
        EncoderSpec(str(resolve_model("all-MiniLM-L6-v2").path), device="cpu", batch_size=2)
    )
    plain = minilm.encode(texts, "")
    assert np.array_equal(plain, minilm.encode(texts, "", "query"))
    assert np.array_equal(plain, minilm.encode(texts, "", "document"))
    router = TorchEncoder(EncoderSpec(str(tiny["router"]), device="cpu"))
    assert not np.allclose(router.encode(texts, "", "query"), router.encode(texts, "", "document"))
