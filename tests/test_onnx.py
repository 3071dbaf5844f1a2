"""The ONNX Runtime backends on the tiny GTR model (T5 + mean pooling + dense + normalize)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from gtr_eval.data.loader import load_beir_folder  # noqa: E402
from gtr_eval.paths import BUNDLED  # noqa: E402
from gtr_eval.retrieval.dense import DenseConfig, DenseRetriever  # noqa: E402
from gtr_eval.retrieval.encoders import EncoderSpec, load_encoder  # noqa: E402

DEMO = BUNDLED / "demo"


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_onnx_vectors_match_torch(tiny_gtr):
    texts = load_beir_folder(DEMO).corpus.texts() + ["", "a query about bread " * 40]
    ref = load_encoder(EncoderSpec(str(tiny_gtr))).encode(texts, "query: ")
    fp32 = load_encoder(EncoderSpec(str(tiny_gtr), backend="onnx", batch_size=5)).encode(texts, "query: ")
    int8 = load_encoder(EncoderSpec(str(tiny_gtr), backend="onnx-int8")).encode(texts, "query: ")
    assert fp32.shape == int8.shape == ref.shape == (len(texts), 16) and fp32.dtype == np.float32
    assert cosines(fp32, ref).min() > 0.9999
    np.testing.assert_allclose(fp32, ref, atol=1e-4)
    assert cosines(int8, ref).min() > 0.98
    np.testing.assert_allclose(
        np.linalg.norm(int8, axis=1), 1.0, rtol=1e-4
    )  # GTR's Normalize is in the graph


def test_export_is_cached_and_vectors_have_their_own_cache_key(tiny_gtr, tmp_path):
    data = load_beir_folder(DEMO)
    from gtr_eval.retrieval.onnx_backend import model_folder

    a = DenseRetriever(
        DenseConfig(model=str(tiny_gtr), backend="onnx-int8"), cache_dir=tmp_path, progress=False
    )
    a.index(data.corpus)
    exported = model_folder(a.fingerprint) / "model-int8.onnx"
    stamp = exported.stat().st_mtime_ns
    b = DenseRetriever(
        DenseConfig(model=str(tiny_gtr), backend="onnx-int8"), cache_dir=tmp_path, progress=False
    )
    b.encoder  # noqa: B018
    assert exported.stat().st_mtime_ns == stamp  # reused, not exported again
    t = DenseRetriever(DenseConfig(model=str(tiny_gtr)), cache_dir=tmp_path, progress=False)
    t.index(data.corpus)
    assert t._emb.folder != a._emb.folder
    assert a.manifest()["backend"] == "onnx-int8" and "backend_recipe" in a.manifest()
    assert "backend_recipe" not in t.manifest()


def test_run_with_onnx_int8_end_to_end(tiny_gtr, tmp_path):
    results = tmp_path / "results"
    cmd = [sys.executable, "-m", "gtr_eval.cli", "run", "--backend", "onnx-int8", "-m", str(tiny_gtr), "-d", "demo",
           "--results-dir", str(results), "--cache-dir", str(tmp_path / "cache"), "--quiet"]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    stored = json.loads(next(results.glob("*/demo.json")).read_text())
    assert stored["manifest"]["backend"] == "onnx-int8"
    assert 0.0 <= stored["metrics"]["ndcg@10"] <= 1.0
