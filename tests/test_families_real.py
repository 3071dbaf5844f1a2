"""The new families end to end on the real NFCorpus with tiny random models (tests/tiny_models.py):
`-m dpr` from an offline hub cache and `gtr-eval rerank` of the committed bm25 run, each checked
against the library's own scoring."""

from __future__ import annotations

import os
import random
import shutil

import numpy as np
import pytest
from cli_process import gtr_eval
from conftest import ROOT
from tiny_gtr import install_as_hub_snapshot

from gtr_eval.data.loader import load_beir_folder
from gtr_eval.evaluation import ranked, read_trec_run
from gtr_eval.results import ResultsStore
from gtr_eval.retrieval.presets import PRESETS

pytestmark = pytest.mark.slow

SAMPLE = 25  # queries whose scores are recomputed with the library
MAX_LENGTH = 128  # the tiny models' vocabularies are mostly letters: longer inputs only cost time


@pytest.fixture(scope="module")
def nfcorpus(beir_data):
    return load_beir_folder(beir_data / "nfcorpus")


def _cli(*args: str, env: dict | None = None) -> str:
    out = gtr_eval(*args, "--quiet", timeout=1800, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stderr


def test_dpr_preset_on_nfcorpus_equals_encode_query_and_encode_document(beir_data, nfcorpus, tmp_path):
    from sentence_transformers import SentenceTransformer
    from tiny_models import build_tiny_dense_pair

    q_dir, d_dir = build_tiny_dense_pair(tmp_path / "pair")
    hub = tmp_path / "hub"
    install_as_hub_snapshot(q_dir, hub, PRESETS["dpr"].query_hub_id)
    install_as_hub_snapshot(d_dir, hub, PRESETS["dpr"].hub_id)
    env = dict(os.environ, HF_HUB_CACHE=str(hub), HF_HUB_OFFLINE="1")
    results = tmp_path / "results"
    _cli("run", "-m", "dpr", "-d", "nfcorpus", "--data-dir", str(beir_data), "--results-dir", str(results),
         "--cache-dir", str(tmp_path / "cache"), "--no-download", "--top-k", "10", "--max-length", str(MAX_LENGTH),
         env=env)  # fmt: skip
    (stored,) = list(ResultsStore(results))  # dpr, its variant for --top-k and --max-length
    run = read_trec_run(stored.run_path)
    assert len(run) == len(nfcorpus.queries) == 323
    assert stored.spec["query_weights_sha256"] != stored.spec["weights_sha256"]

    qm, dm = SentenceTransformer(str(q_dir), device="cpu"), SentenceTransformer(str(d_dir), device="cpu")
    qm.max_seq_length = dm.max_seq_length = MAX_LENGTH
    rng = random.Random(0)
    qids = rng.sample(sorted(run), SAMPLE)
    c = nfcorpus.corpus
    needed = sorted({c.index_of(d) for q in qids for d in run[q]} | set(rng.sample(range(len(c)), 200)))
    d_emb = dm.encode_document([(c.titles[i] + " [SEP] " + c.bodies[i]).strip() for i in needed])
    scores = qm.encode_query([nfcorpus.queries[q] for q in qids]) @ d_emb.T  # the library's, by dot product
    for row, q in enumerate(qids):
        lib = {c.ids[i]: float(s) for i, s in zip(needed, scores[row], strict=True)}
        top = dict(ranked(run[q]))
        np.testing.assert_allclose([lib[d] for d in top], list(top.values()), rtol=1e-4, atol=1e-4)
        # no other sampled document outscores the 10th hit: the search missed nothing the library ranks higher
        assert max(s for d, s in lib.items() if d not in top) <= min(top.values()) + 1e-4, q


def test_rerank_of_the_real_bm25_run_equals_cross_encoder_predict(beir_data, nfcorpus, tmp_path):
    from sentence_transformers import CrossEncoder
    from tiny_models import build_tiny_cross_encoder

    model = build_tiny_cross_encoder(tmp_path / "tiny-ce")
    results = tmp_path / "results"
    shutil.copytree(ROOT / "results" / "bm25", results / "bm25")  # the committed real run
    depth = 20
    data = ["-d", "nfcorpus", "--data-dir", str(beir_data), "--results-dir", str(results), "--no-download"]
    rerank = ["rerank", "--run", "bm25", "-m", str(model), "--depth", str(depth), *data,
              "--cache-dir", str(tmp_path / "c"), "--max-length", str(MAX_LENGTH)]  # fmt: skip
    stderr = _cli(*rerank)
    name = f"bm25>>tiny-ce[max_length={MAX_LENGTH},depth={depth}]"  # a variant: the default depth is 100
    assert f"[done] {name} on nfcorpus" in stderr
    stored = ResultsStore(results).load(name, "nfcorpus")
    bm25 = read_trec_run(ResultsStore(results).load("bm25", "nfcorpus").run_path)
    run = read_trec_run(stored.run_path)
    assert run.keys() == {q for q, docs in bm25.items() if docs}  # 15 queries BM25 answers nothing for
    assert all(set(run[q]) == {d for d, _ in ranked(bm25[q])[:depth]} for q in run)
    assert stored.manifest["stats"]["pair_stats"]["pairs"] == sum(len(docs) for docs in run.values())

    ce = CrossEncoder(str(model), device="cpu", max_length=MAX_LENGTH)
    for q in random.Random(1).sample(sorted(run), SAMPLE):
        docs = list(run[q])
        want = ce.predict(
            [(nfcorpus.queries[q], nfcorpus.corpus.text(nfcorpus.corpus.index_of(d))) for d in docs]
        )
        np.testing.assert_allclose([run[q][d] for d in docs], want, rtol=0, atol=1e-5)
