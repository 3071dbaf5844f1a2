"""benchmarks/bench_gpu.py --quick: the GPU check's own code on the CPU at tiny sizes, so that the script
prepared for a lent GPU cannot rot.  Its record must hold every section, with sane figures, and say
that the GPU-only ones are absent."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
slow = pytest.mark.slow  # a SciFact subset from ../shared


def test_the_shapes_are_the_hub_checkpoints_sizes():
    """The encoders the GPU check builds have the presets' parameters outside the embeddings (the
    T5 1.0 base and large configs), counted on the meta device without allocating them."""
    import bench_gpu
    import torch
    from transformers import T5Config, T5EncoderModel

    from gtr_eval.retrieval.presets import PRESETS

    for name, shape in bench_gpu.SHAPES.items():
        config = T5Config(vocab_size=shape.vocab_size, d_model=shape.d_model, d_kv=shape.d_kv, d_ff=shape.d_ff,
                          num_layers=shape.num_layers, num_heads=shape.num_heads)  # fmt: skip
        with torch.device("meta"):
            encoder = T5EncoderModel(config)
        outside = sum(p.numel() for p in encoder.parameters()) - shape.vocab_size * shape.d_model
        assert outside == PRESETS[name].compute_params and shape.out_dim == PRESETS[name].dim == 768


@pytest.fixture(scope="module")
def record(beir_data, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("gpu-record")
    cmd = [sys.executable, str(BENCH / "bench_gpu.py"), "--quick", "--sizes", "gtr-t5-base",
           "--data", str(beir_data), "--output", str(out)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"-> {out / 'gpu.quick.json'}" in done.stdout
    return json.loads((out / "gpu.quick.json").read_text())


@slow
def test_runs_per_dtype_have_throughput_and_stage_shares(record):
    import torch

    runs = record["runs"]["gtr-t5-base"]["scifact"]
    assert set(runs) == {"default", "bf16", "fp16"}
    assert record["default_dtype"] == runs["default"]["dtype"] == "fp32"
    for dtype, run in runs.items():
        assert run["dtype"] == ("fp32" if dtype == "default" else dtype)
        assert run["docs_per_s"] > 0 and run["tokens_per_s"] > run["docs_per_s"]
        # the quick subset holds 100 documents, its relevant ones among them: any ranking scores > 0 at 100
        assert 0 <= run["ndcg@10"] <= run["ndcg@100"] <= 1 and run["ndcg@100"] > 0
        assert abs(sum(run["share"].values()) - 1) < 1e-6 and run["share"]["encode"] > 0
        if not torch.cuda.is_available():
            assert run["gpu_peak_mib"] is None
    data = record["data"]["gtr-t5-base"]["scifact"]
    assert data["docs"] == 100 and 0 < data["tokens"] <= 100 * record["max_length"]


@slow
def test_beir_side_by_side_gives_the_same_ndcg(record):
    beir = record["beir"]
    assert beir["ratio_time"] > 0 and beir["ours"]["wall_s"] > 0 and beir["beir"]["wall_s"] > 0
    assert beir["ndcg_equal"] and all(abs(d) <= beir["tolerance"] for d in beir["ndcg_diff"].values())
    assert beir["ours"]["ndcg@100"] > 0 and beir["beir"]["ndcg@100"] > 0


@slow
def test_search_ours_against_torch_topk_agrees(record):
    s = record["search"]
    assert (s["docs"], s["dim"], s["top_k"]) == (2000, 64, 1000)
    assert s["ours"]["search_s"] > 0 and s["torch_topk_blocks"]["search_s"] > 0 and s["ratio_time"] > 0
    # fp16 products on the peer's side round near-ties differently; most top-10 sets still agree
    assert s["same_top10"] >= 0.8


@slow
def test_gpu_only_fields_are_marked_absent_without_a_gpu(record):
    import torch

    if torch.cuda.is_available():  # the same script on a GPU: the CPU/GPU agreement is measured
        assert record["cpu_vs_gpu"]["within_tolerance"] and record["search"]["ours"]["gpu_peak_mib"] > 0
    else:
        assert record["device"] == "cpu (no GPU)" and "absent" in record["gpu_fields"]
        assert "absent" in record["cpu_vs_gpu"] and "absent" in record["search"]["faiss_gpu"]
        assert record["search"]["ours"]["gpu_peak_mib"] is None


@slow
def test_fp16_probe_and_projection(record):
    fp16 = record["fp16"]["gtr-t5-base"]
    assert fp16["probe"]["docs"] == 256 and fp16["probe"]["nonfinite_vectors"] == 0
    assert fp16["probe"]["min_cosine_to_fp32"] > 0.99 and fp16["overflows"] is False
    proj = record["projection"]
    assert len(proj["datasets"]) == 14 and proj["tokens_estimated"] > 1e9
    for dtype, hours in proj["hours"].items():
        assert dtype in ("fp32", "bf16", "fp16")
        assert hours["gtr-t5-xxl"] > hours["gtr-t5-base"] > 0


@slow
def test_the_readme_section_renders_from_the_record(record):
    import run_all

    text = "\n".join(run_all._gpu(record))
    base = record["runs"]["gtr-t5-base"]["scifact"]
    for dtype in ("default (fp32)", "bf16", "fp16"):
        assert f"| gtr-t5-base | scifact | {dtype} |" in text
    assert f"{base['default']['tokens_per_s']:,.0f}" in text and "ours / beir" in text
    assert "The 14 public BEIR sets" in text and "CPU vs GPU: no GPU" in text


def test_past_the_budget_or_on_a_failure_a_section_is_recorded_and_the_rest_goes_on(tmp_path):
    import time

    import bench_gpu

    st = bench_gpu.Setup(
        tmp_path, "quick", False, {}, {}, {}, tmp_path, {}, budget_s=0.0, t_start=time.perf_counter()
    )
    assert not st.in_budget("search") and "budget" in st.skipped["search"]
    assert 30.0 <= st.left_s() <= 60.0  # the grace minute at most, 30 s at least

    def broken():
        raise RuntimeError("gtr-eval run failed (1):\nCUDA out of memory")

    assert st.guarded("runs of gtr-t5-large", broken) is None
    assert (
        st.skipped["runs of gtr-t5-large"].startswith("failed:")
        and "out of memory" in st.skipped["runs of gtr-t5-large"]
    )
