"""The ONNX Runtime backends on the tiny GTR model (T5 + mean pooling + dense + normalize)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from gtr_eval.data.loader import load_beir_folder  # noqa: E402
from gtr_eval.paths import BUNDLED  # noqa: E402
from gtr_eval.retrieval.backends import EncoderSpec  # noqa: E402
from gtr_eval.retrieval.dense import DenseConfig, DenseRetriever  # noqa: E402
from gtr_eval.retrieval.encoders import load_encoder  # noqa: E402

DEMO = BUNDLED / "demo"


@pytest.fixture(autouse=True)
def _onnx_cpu(amd_cpu):
    """`auto` picks ONNX Runtime on a non-Intel CPU; on an Intel CPU it is torch (test_hardware.py)."""


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
    from gtr_eval.data.units import DatasetFingerprint
    from gtr_eval.identity import Identity
    from gtr_eval.retrieval.onnx_backend import model_folder, recipe_id

    data = load_beir_folder(DEMO)
    a = DenseRetriever(
        DenseConfig(model=str(tiny_gtr), backend="onnx-int8"), cache_dir=tmp_path, progress=False
    )
    a_folder = a.index(data.corpus).stats["cache_folder"]
    # exported beside the embeddings
    exported = model_folder(a.spec.weights_sha256, tmp_path / "onnx") / "int8" / "model-int8.onnx"
    stamp = exported.stat().st_mtime_ns
    b = DenseRetriever(
        DenseConfig(model=str(tiny_gtr), backend="onnx-int8"), cache_dir=tmp_path, progress=False
    )
    b.encoder("document")
    assert exported.stat().st_mtime_ns == stamp  # reused, not exported again
    t = DenseRetriever(DenseConfig(model=str(tiny_gtr), backend="torch"), cache_dir=tmp_path, progress=False)
    t_stats = t.index(data.corpus).stats
    # int8 changes the vectors: its recipe keys the cache and is part of the result's identity
    assert t_stats["cache_folder"] != a_folder and t_stats["corpus_shards_encoded"] == 1
    content = data.corpus.content_hash()
    assert a.key("corpus", content)["quantization"] == f"onnx-int8 dynamic per-channel ({recipe_id()})"
    assert a.key("queries", content)["quantization"] == a.spec.quantization
    assert t.key("corpus", content)["quantization"] is None and t.spec.quantization is None
    assert a.spec.backend == "onnx-int8" and a.spec.record()["quantization"] == a.spec.quantization
    fp = DatasetFingerprint("demo", "test", data.checksums)
    assert Identity.of(a.spec, fp) != Identity.of(t.spec, fp)
    assert Identity.of(a.spec, fp).system["quantization"] == a.spec.quantization


def test_run_with_onnx_int8_end_to_end(tiny_gtr, tmp_path):
    results = tmp_path / "results"
    cmd = [sys.executable, "-m", "gtr_eval.cli", "run", "--backend", "onnx-int8", "-m", str(tiny_gtr), "-d", "demo",
           "--results-dir", str(results), "--cache-dir", str(tmp_path / "cache"), "--quiet"]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    stored = json.loads(next(results.glob("*/demo.json")).read_text())
    assert stored["manifest"]["spec"]["backend"] == "onnx-int8"
    assert 0.0 <= stored["metrics"]["ndcg@10"] <= 1.0


# ------------------------------------------------------------------ `--backend auto` (the default)


def _safetensors(path, shapes: dict[str, list[int]], dtype: str = "F32") -> None:
    """A safetensors file whose header declares `shapes` (the data is not needed to size the model)."""
    import struct

    header = json.dumps({k: {"dtype": dtype, "shape": v, "data_offsets": [0, 0]} for k, v in shapes.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(header)) + header.encode())


def test_weights_size_is_read_from_the_files_without_loading(tiny_gtr, tmp_path):
    from sentence_transformers import SentenceTransformer

    from gtr_eval.retrieval.weights import weights_fp32_bytes

    # the tiny model: its parameters' fp32 bytes, as torch counts them (tied embeddings once)
    st = SentenceTransformer(str(tiny_gtr), device="cpu")  # as saved (the CPU encoder repacks its linears)
    assert weights_fp32_bytes(tiny_gtr) == 4 * sum(p.numel() for p in st.parameters())
    _safetensors(tmp_path / "half" / "model.safetensors", {"w": [1000, 100]}, "F16")
    _safetensors(tmp_path / "half" / "onnx" / "model.safetensors", {"w": [10**9]})  # another runtime's copy
    assert weights_fp32_bytes(tmp_path / "half") == 4 * 100_000  # fp16 on disk counts as its fp32 export
    (tmp_path / "bin").mkdir()
    with open(tmp_path / "bin" / "pytorch_model.bin", "wb") as fh:  # a pickle: sized, never opened
        fh.truncate(3 * 2**30)  # sparse: 3 GiB on paper, nothing on disk
    assert weights_fp32_bytes(tmp_path / "bin") == 3 * 2**30


def test_auto_rules(tiny_gtr, tmp_path, monkeypatch):
    from gtr_eval.retrieval.encoders import choose_backend

    cpu = ("cpu",)
    ok = choose_backend("auto", tiny_gtr, cpu, "fp32")
    assert (ok.requested, ok.backend) == ("auto", "onnx") and "CPU, fp32" in ok.reason
    assert choose_backend("torch", tiny_gtr, ("cuda",), "fp16").backend == "torch"  # explicit: as asked
    assert choose_backend("onnx-int8", tiny_gtr, cpu, "fp32").reason == ""
    for devices, dtype, why in [(("cuda",), "fp32", "device cuda"), (("cpu", "cuda:1"), "fp32", "device cuda:1"),
                                (cpu, "bf16", "dtype bf16")]:  # fmt: skip
        got = choose_backend("auto", tiny_gtr, devices, dtype)
        assert got.backend == "torch" and why in got.reason
    big = tmp_path / "big"
    _safetensors(big / "model.safetensors", {"a": [2**28], "b": [2**28]})  # 2 x 1 GiB in fp32
    got = choose_backend("auto", big, cpu, "fp32")
    assert got.backend == "torch" and "2.0 GiB" in got.reason and "2 GiB limit" in got.reason
    _safetensors(big / "model.safetensors", {"a": [2**28], "b": [2**28 - 2**20]})  # just under
    assert choose_backend("auto", big, cpu, "fp32").backend == "onnx"
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "onnxruntime" else real_find_spec(n, *a)
    )
    got = choose_backend("auto", tiny_gtr, cpu, "fp32")
    assert got.backend == "torch" and "onnxruntime is not installed" in got.reason
    with pytest.raises(ValueError, match="backend must be"):
        choose_backend("tensorrt", tiny_gtr, cpu, "fp32")


def test_auto_runs_onnx_on_cpu_with_the_same_cache_entry_as_backend_onnx(tiny_gtr, tmp_path):
    from gtr_eval.data.units import DatasetFingerprint
    from gtr_eval.identity import Identity, cache_fields

    data = load_beir_folder(DEMO)
    fp = DatasetFingerprint("demo", "test", data.checksums)
    auto = DenseRetriever(DenseConfig(model=str(tiny_gtr)), cache_dir=tmp_path, progress=False)
    assert auto.spec.backend_requested == "auto" and auto.spec.backend == "onnx"
    indexed = auto.index(data.corpus)
    assert indexed.stats["corpus_shards_encoded"] == 1
    folder = indexed.stats["cache_folder"]
    key = json.loads((Path(folder) / "key.json").read_text())
    # the backend is a setting: fp32 ONNX vectors are torch's, so it keys no cache and no identity
    assert key == auto.key("corpus", data.corpus.content_hash())
    assert "backend" not in key and key["quantization"] is None
    assert "backend" not in cache_fields(auto.spec, "queries")
    assert "backend" not in Identity.of(auto.spec, fp).system
    m = auto.spec.record()
    assert (m["backend"], m["backend_requested"]) == ("onnx", "auto") and "CPU, fp32" in m["backend_reason"]
    assert indexed.timings["onnx_export_s"] > 0  # exported here, beside the embeddings
    explicit = DenseRetriever(
        DenseConfig(model=str(tiny_gtr), backend="onnx"), cache_dir=tmp_path, progress=False
    )
    reused = explicit.index(data.corpus).stats
    assert reused["cache_folder"] == folder and reused["corpus_shards_reused"] == 1
    assert explicit.spec.backend_reason == "" and explicit.spec.backend_requested == "onnx"
    assert Identity.of(explicit.spec, fp) == Identity.of(auto.spec, fp)
    torch_ = DenseRetriever(
        DenseConfig(model=str(tiny_gtr), backend="torch"), cache_dir=tmp_path, progress=False
    )
    shared = torch_.index(data.corpus).stats
    # torch and onnx fp32 compute the same vectors: one cache entry, one identity
    assert shared["cache_folder"] == folder and shared["corpus_shards_reused"] == 1
    assert shared["corpus_shards_encoded"] == 0
    assert Identity.of(torch_.spec, fp) == Identity.of(auto.spec, fp)
    assert Identity.of(torch_.spec, fp).digest == Identity.of(auto.spec, fp).digest
    # exported and encoded before: a second run settles `auto` and searches without loading the model
    # (the model's own max length is not read by loading it: None in the spec, fixed by the weights)
    hits = auto.search(data.queries, 5).run
    assert auto.spec.max_length is None and auto.model.max_seq_length == 512
    again = DenseRetriever(DenseConfig(model=str(tiny_gtr)), cache_dir=tmp_path, progress=False)
    again_indexed = again.index(data.corpus)
    searched = again.search(data.queries, 5)
    assert searched.run == hits
    assert not again._encoders  # no model loaded
    assert "load_model_s" not in again_indexed.timings and "load_model_s" not in searched.report.timings


def test_auto_uses_torch_on_a_gpu_for_fp16_or_without_onnx(tiny_gtr, tmp_path, monkeypatch, caplog):
    from gtr_eval.retrieval import dense

    with monkeypatch.context() as m:
        m.setattr(dense, "default_device", lambda: "cuda")  # as on a machine with a GPU
        r = DenseRetriever(DenseConfig(model=str(tiny_gtr)), cache_dir=tmp_path, progress=False)
    assert (
        r.spec.backend == "torch"
        and r.encoder_spec().backend == "torch"
        and "device cuda" in r.spec.backend_reason
    )
    r = DenseRetriever(DenseConfig(model=str(tiny_gtr), dtype="fp16"), cache_dir=tmp_path, progress=False)
    assert r.spec.backend == "torch" and r.spec.record()["backend"] == "torch"
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "onnx" else real_find_spec(n, *a)
    )
    with caplog.at_level("WARNING"):
        r = DenseRetriever(DenseConfig(model=str(tiny_gtr)), cache_dir=tmp_path, progress=False)
    assert r.spec.backend == "torch" and "note: model runs with torch: onnx is not installed" in caplog.text


def test_export_failure_falls_back_to_torch_naming_the_error(tiny_gtr, tmp_path, monkeypatch):
    from gtr_eval.data.units import DatasetFingerprint
    from gtr_eval.identity import Identity
    from gtr_eval.retrieval import onnx_backend
    from gtr_eval.retrieval.onnx_backend import OnnxExportError, model_folder

    calls = []

    def broken_export(*args, **kwargs):
        calls.append(1)
        raise RuntimeError("Could not trace the forward of ModelX\nlong traceback")

    monkeypatch.setattr(onnx_backend, "_export", broken_export)
    data = load_beir_folder(DEMO)
    fp = DatasetFingerprint("demo", "test", data.checksums)
    auto = DenseRetriever(DenseConfig(model=str(tiny_gtr)), cache_dir=tmp_path, progress=False)
    assert auto.spec.backend == "onnx"  # not known to fail yet
    before = Identity.of(auto.spec, fp)
    with pytest.warns(UserWarning, match="RuntimeError: Could not trace the forward of ModelX.*with torch"):
        indexed = auto.index(data.corpus)
    assert calls == [1] and auto.spec.backend == "torch" and auto.spec.record()["backend"] == "torch"
    assert Identity.of(auto.spec, fp) == before  # the fallback is a setting: the identity stays
    m = auto.spec.record()
    assert (m["backend"], m["backend_requested"]) == ("torch", "auto")
    assert "ONNX export failed" in m["backend_reason"] and "Could not trace" in m["backend_reason"]
    ref = DenseRetriever(
        DenseConfig(model=str(tiny_gtr), backend="torch"), cache_dir=tmp_path, progress=False
    )
    ref_stats = ref.index(data.corpus).stats
    assert (
        ref_stats["cache_folder"] == indexed.stats["cache_folder"] and ref_stats["corpus_shards_reused"] == 1
    )
    failed = json.loads(
        (model_folder(auto.spec.weights_sha256, tmp_path / "onnx") / "export-failed.json").read_text()
    )
    assert failed["error"] == "RuntimeError: Could not trace the forward of ModelX" and failed["torch"]
    # next time `auto` knows without trying again
    again = DenseRetriever(DenseConfig(model=str(tiny_gtr)), cache_dir=tmp_path, progress=False)
    assert again.spec.backend == "torch" and "failed before" in again.spec.backend_reason
    assert again.index(data.corpus).stats["corpus_shards_reused"] == 1
    assert calls == [1]
    # asked for explicitly, the same failure is an error, not a silent switch: the corpus is served
    # from the shared cache (nothing to export), but the first text to encode needs the export
    explicit = DenseRetriever(
        DenseConfig(model=str(tiny_gtr), backend="onnx"), cache_dir=tmp_path, progress=False
    )
    assert explicit.spec.backend == "onnx"
    assert explicit.index(data.corpus).stats["corpus_shards_reused"] == 1 and calls == [1]
    with pytest.raises(OnnxExportError, match="Could not trace"):
        explicit.search({"q-new": "a query nobody encoded before"}, 5)
    assert calls == [1, 1]


def test_default_cli_run_and_encode_agree_on_the_backend(tiny_gtr, tmp_path):
    from click.testing import CliRunner

    from gtr_eval.cli import cli

    common = ["-m", str(tiny_gtr), "-d", "demo", "--cache-dir", str(tmp_path / "cache"), "--quiet"]
    enc = CliRunner().invoke(cli, ["encode", *common])
    assert enc.exit_code == 0, enc.output
    assert "encoded 1 of 1 corpus shards, reused 0 (backend onnx)" in enc.output
    res = CliRunner().invoke(cli, ["run", *common, "--results-dir", str(tmp_path / "results")])
    assert res.exit_code == 0, res.output
    assert "[backend] model: onnx (auto: CPU, fp32" in res.output
    assert "corpus embeddings: 1 shard from cache" in res.output
    stored = json.loads((tmp_path / "results" / "model" / "demo.json").read_text())["manifest"]["spec"]
    assert (stored["backend"], stored["backend_requested"]) == ("onnx", "auto")
    assert "auto" in CliRunner().invoke(cli, ["run", "--help"]).output
