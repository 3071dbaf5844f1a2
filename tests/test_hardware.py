"""The CPU-dependent defaults: torch's kernels on an Intel CPU, ONNX Runtime and FAISS elsewhere."""

from __future__ import annotations

import numpy as np
import pytest

from gtr_eval.retrieval import hardware
from gtr_eval.retrieval.backends import EncoderSpec
from gtr_eval.retrieval.encoders import choose_backend, load_encoder
from gtr_eval.retrieval.hardware import CPU_BATCH
from gtr_eval.retrieval.search import auto_kernel, exact_search


@pytest.mark.parametrize(
    "vendor, backend, kernel",
    [("GenuineIntel", "torch", "torch"), ("AuthenticAMD", "onnx", "faiss"), ("arm", "onnx", "faiss")],
)
def test_the_cpu_vendor_decides_backend_and_kernel(vendor, backend, kernel, tiny_gtr, monkeypatch):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("faiss")
    monkeypatch.setattr(hardware, "cpu_vendor", lambda: vendor)
    got = choose_backend("auto", tiny_gtr, ("cpu",), "fp32")
    assert got.backend == backend
    assert ("Intel CPU" in got.reason) == (vendor == "GenuineIntel")
    assert auto_kernel("cpu") == kernel
    assert auto_kernel("cuda") == "torch"  # GPUs: torch whatever the CPU
    assert choose_backend("auto", tiny_gtr, ("cuda",), "fp32").backend == "torch"
    assert choose_backend("onnx", tiny_gtr, ("cpu",), "fp32").backend == "onnx"  # asked for: as asked


def test_cpu_vendor_is_read_from_the_machine():
    hardware.cpu_vendor.cache_clear()
    vendor = hardware.cpu_vendor()
    assert isinstance(vendor, str)
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        pytest.skip("no /proc/cpuinfo")
    listed = {line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("vendor_id")}
    if not listed:
        pytest.skip("/proc/cpuinfo names no vendor_id (not x86)")
    assert vendor and vendor in listed


def test_the_auto_kernel_ranks_as_both_kernels_do(monkeypatch):
    pytest.importorskip("faiss")
    rng = np.random.default_rng(0)
    q, d = rng.standard_normal((20, 16), dtype=np.float32), rng.standard_normal((500, 16), dtype=np.float32)
    for vendor in ("GenuineIntel", "AuthenticAMD"):
        monkeypatch.setattr(hardware, "cpu_vendor", lambda v=vendor: v)
        s, i = exact_search(q, [(0, d)], top_k=10)
        explicit = exact_search(q, [(0, d)], top_k=10, kernel=auto_kernel("cpu"))
        np.testing.assert_array_equal(i, explicit[1])
        np.testing.assert_array_equal(i, np.argsort(-(q @ d.T), axis=1, kind="stable")[:, :10])


def test_torch_encodes_in_small_batches_on_the_cpu(tiny_gtr):
    enc = load_encoder(EncoderSpec(str(tiny_gtr), batch_size=256, device="cpu"))
    assert enc.batch_size == CPU_BATCH
    assert load_encoder(EncoderSpec(str(tiny_gtr), batch_size=4, device="cpu")).batch_size == 4
    texts = [f"passage {i} " + "word " * (i % 17) for i in range(40)]
    one = np.stack([enc.model.encode(t, convert_to_numpy=True) for t in texts[:5]])
    np.testing.assert_allclose(enc.encode(texts)[:5], one, atol=1e-5)  # batching changes rounding only
