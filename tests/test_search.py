"""Exact search against brute-force numpy, per-shard claiming in the cache, and the benchmark
scripts in --quick mode (tiny model, bundled demo data)."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from gtr_eval.paths import BUNDLED
from gtr_eval.retrieval.cache import encode_sharded, shard_selector
from gtr_eval.retrieval.search import array_chunks, exact_search

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


def brute(q: np.ndarray, d: np.ndarray, k: int, score: str) -> tuple[np.ndarray, np.ndarray]:
    if score == "cos":
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
        d = d / np.linalg.norm(d, axis=1, keepdims=True)
    s = q @ d.T
    idx = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(s, idx, axis=1), idx


@pytest.mark.parametrize("kernel", ["torch", "faiss"])
@pytest.mark.parametrize("score", ["dot", "cos"])
@pytest.mark.parametrize(("n", "chunk", "k"), [(1000, 97, 10), (300, 300, 50), (40, 7, 100)])
def test_exact_search_equals_brute_force(kernel, score, n, chunk, k):
    rng = np.random.default_rng(n + k)
    d = rng.standard_normal((n, 24)).astype(np.float32) * rng.uniform(0.5, 2, (n, 1)).astype(np.float32)
    q = rng.standard_normal((13, 24)).astype(np.float32)
    # small corpus blocks and score blocks: many chunks, several blocks per chunk, k > block sometimes
    s, i = exact_search(
        q,
        array_chunks(d, chunk),
        k,
        score=score,
        corpus_block_bytes=4 * 24 * 150,
        block_bytes=4 * 64,
        kernel=kernel,
    )
    es, ei = brute(q, d, k, score)
    assert s.shape == i.shape == (13, min(k, n))  # k > corpus: the whole corpus, ranked
    np.testing.assert_array_equal(i, ei)
    np.testing.assert_allclose(s, es, rtol=1e-5, atol=1e-5)


def test_exact_search_rejects_gaps_and_bad_arguments():
    d = np.ones((4, 3), np.float32)
    with pytest.raises(ValueError, match="consecutive"):
        exact_search(d, [(0, d[:2]), (5, d[2:])], 2, corpus_block_bytes=4 * 3 * 10)
    with pytest.raises(ValueError, match="score"):
        exact_search(d, array_chunks(d), 2, score="l2")


def test_shard_jobs_split_the_work_and_the_merge_reuses_everything(tmp_path):
    calls: list[int] = []

    def encode(texts):
        calls.append(len(texts))
        return np.array([[float(t), 1.0] for t in texts], dtype=np.float32)

    kw = dict(
        texts=lambda idx: [str(i) for i in idx],
        order=np.arange(10)[::-1].copy(),
        encode=encode,
        key={"k": "jobs"},
        cache_dir=tmp_path,
        shard_size=3,
        progress=False,
    )
    a = encode_sharded(**kw, select=shard_selector(0, 2))  # shards 0 and 2
    assert not a.complete and a.stats.shards_encoded == 2
    with pytest.raises(RuntimeError, match="other jobs"):
        next(a.chunks())
    b = encode_sharded(**kw, select=shard_selector(1, 2))  # shards 1 and 3
    assert b.complete and b.stats.shards_encoded == 2
    calls.clear()
    merged = encode_sharded(**kw)
    assert calls == [] and merged.stats.shards_reused == 4
    np.testing.assert_array_equal(merged.matrix()[:, 0], np.arange(10))
    with pytest.raises(ValueError):
        shard_selector(2, 2)


def _quick(script: str, *args: str, timeout: int = 240) -> dict:
    """Scripts that start child processes themselves run as a subprocess, the others in-process; the
    record is written to a temporary folder and read from there."""
    with tempfile.TemporaryDirectory(prefix="gtr-eval-bench-quick-") as folder:
        with mock.patch.dict(os.environ, {"GTR_EVAL_BENCH_QUICK_DIR": folder}):
            if script in ("bench_search.py", "bench_dense_e2e.py"):
                out = subprocess.run(
                    [sys.executable, str(BENCH / script), "--quick", *args],
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                )
                assert out.returncode == 0, out.stderr[-3000:]
                path = Path(out.stdout.strip().splitlines()[-1].removeprefix("-> "))
            else:
                sys.path.insert(0, str(BENCH))
                module = importlib.import_module(script.removesuffix(".py"))
                module.main(["--quick", *args])
                path = Path(folder) / f"{module.NAME}.quick.json"
        assert path.parent == Path(folder), path
        record = json.loads(path.read_text())
    assert record["quick"] is True and len(record["loadavg"]) == 3
    return record


DEMO = str(BUNDLED / "demo")


def test_quick_records_go_to_a_temporary_folder_never_into_the_repository(monkeypatch, tmp_path):
    sys.path.insert(0, str(BENCH))
    import _common

    monkeypatch.delenv("GTR_EVAL_BENCH_QUICK_DIR", raising=False)
    quick = _common.record_path("search", quick=True)
    assert quick.parent == Path(tempfile.gettempdir()) / "gtr-eval-bench-quick"
    assert _common.ROOT not in quick.parents
    monkeypatch.setenv("GTR_EVAL_BENCH_QUICK_DIR", str(tmp_path))
    assert _common.record_path("search", quick=True) == tmp_path / "search.quick.json"
    assert _common.record_path("search", quick=False) == BENCH / "results" / "search.json"


def test_bench_search_quick():
    r = _quick("bench_search.py")
    assert r["rss_ok"] and r["same_top10_indices"] == 1.0
    assert r["kernels"]["same_indices"] > 0.999  # the kernels round differently: rare swaps of near-ties


def test_bench_bm25_and_evaluation_quick():
    r = _quick("bench_bm25.py", "--dataset", DEMO)
    assert r["ndcg@10"]["ours"] == pytest.approx(r["ndcg@10"]["peer"])
    r = _quick("bench_eval.py", "--dataset", DEMO)
    assert r["ndcg@10"]["ours"] == pytest.approx(r["ndcg@10"]["peer"])


def test_bench_dense_scripts_quick(tiny_gtr):
    model = str(tiny_gtr)
    r = _quick("bench_dense_e2e.py", "--model", model, "--dataset", DEMO)
    from gtr_eval.retrieval.hardware import torch_fastest_on_cpu

    # what `run` does on this CPU without flags: torch on an Intel CPU, ONNX Runtime on others
    assert r["sides"]["default"]["backend"] == ("torch" if torch_fastest_on_cpu() else "onnx")
    assert r["sides"]["default"]["ndcg@10"] == pytest.approx(
        r["sides"]["beir"]["ndcg@10"], abs=1e-5
    )  # beir rounds to 5 places
    r = _quick("bench_encode_overhead.py", "--model", model, "--dataset", DEMO)
    assert r["ours_s"] > 0 and r["peer_s"] > 0


def test_bench_cpu_floor_counts_the_flop_torch_counts():
    """The floor benchmark's FLOP formula against torch's own counter on the real model (eager
    attention, whose products the counter sees; the counter also sees BERT's pooler, 2·h² a text,
    which the formula leaves out as no embedding uses it)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    sys.path.insert(0, str(BENCH))
    from bench_cpu_floor import work

    from gtr_eval.retrieval.loaders import load_sentence_transformer
    from gtr_eval.retrieval.models import resolve_model

    st = load_sentence_transformer(resolve_model("all-MiniLM-L6-v2").path, device="cpu")
    st[0].auto_model.set_attn_implementation("eager")
    cfg = st[0].auto_model.config
    texts = ["a short one", "a somewhat longer text about retrieval " * 5, "x " * 400]  # 400 x: truncated
    counted, lengths = 0, []
    for text in texts:  # one at a time: no padding
        features = st.preprocess([text])
        lengths.append(int(features["input_ids"].shape[1]))
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            st(features)
        counted += counter.get_total_flops()
    assert lengths[-1] == st.max_seq_length
    pooler = 2 * cfg.hidden_size**2 * len(texts)
    assert (
        work(lengths, cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers)["total"] + pooler
        == counted
    )


def test_bench_cpu_floor_quick():
    r = _quick("bench_cpu_floor.py", "--dataset", DEMO)
    assert r["sample_docs"] == r["corpus_docs"] == 24 and r["corpus_tflop"]["attention"] > 0
    assert r["achieved_gflops"] > 0 and set(r["product_gflops"]) >= {"fp32 F.linear", "bf16 F.linear"}
    p = r["projected_encode_s"]
    assert p["every_flop_at_fp32_product_peak"] == pytest.approx(
        p["at_achieved_rate"] * r["achieved_gflops"] / r["fp32_product_peak_gflops"]
    )


def test_run_all_renders_the_readme_from_records(tmp_path, monkeypatch):
    sys.path.insert(0, str(BENCH))
    import run_all

    monkeypatch.setattr(run_all, "RESULTS", tmp_path)
    text = run_all.readme()
    assert "Not measured yet" in text and "#SBATCH --array=0-15" in text and "--ray" in text
