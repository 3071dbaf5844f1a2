"""benchmarks/bench_scale.py: its memory watchdog kills a side that grows past the limit (and says
so), the synthetic generator is deterministic, and a quick run gives the same BM25 scores as bm25s."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))


def test_watchdog_kills_a_side_above_the_limit_and_records_it():
    import bench_scale

    grow = "import time; x = bytearray(400 << 20); x[::4096] = b'1' * len(x[::4096]); time.sleep(30)"
    m = bench_scale.measure([sys.executable, "-c", grow], limit_gb=0.2, timeout_s=60)
    assert m["status"].startswith("out of memory (killed at") and m["wall_s"] < 30
    assert m["peak_anon_mib"] > 0.2 * 1024
    ok = bench_scale.measure([sys.executable, "-c", "print('{\"x\": 1}')"], limit_gb=1)
    assert ok["status"] == "ok" and bench_scale._last_json([line for _, line in ok["lines"]]) == {"x": 1}


def test_synthetic_corpus_is_deterministic(tmp_path):
    import make_synthetic

    a = make_synthetic.generate(tmp_path / "a", 2_000, 30, seed=3, vocab_size=20_000)
    b = make_synthetic.generate(tmp_path / "b", 2_000, 30, seed=3, vocab_size=20_000)
    for name in ("corpus.jsonl", "queries.jsonl", "qrels/dev.tsv"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    lengths = [len(json.loads(line)["text"].split()) for line in (a / "corpus.jsonl").open()]
    assert min(lengths) >= 15 and max(lengths) <= 95 and 45 < sum(lengths) / len(lengths) < 65
    (a / "queries.jsonl").unlink()
    make_synthetic.generate(a, 2_000, 30, seed=3, vocab_size=20_000, queries_only=True)
    assert (a / "queries.jsonl").read_bytes() == (b / "queries.jsonl").read_bytes()


@pytest.mark.slow
def test_bench_scale_quick_bm25_equals_bm25s(tmp_path):
    out = subprocess.run(
        [sys.executable, str(BENCH / "bench_scale.py"), "--quick", "--sides", "open,beir-load,bm25,bm25s"],
        capture_output=True, text=True, timeout=900, env=dict(os.environ, GTR_EVAL_BENCH_QUICK_DIR=str(tmp_path)),
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    record = json.loads((tmp_path / "scale.quick.json").read_text())
    sides = record["sizes"]["quick"]["sides"]
    assert all(s["status"] == "ok" for s in sides.values())
    assert sides["open-first"]["docs"] == sides["beir-load"]["docs"] == 30_000
    assert (
        sides["bm25-first"]["ndcg@10"] == sides["bm25-second"]["ndcg@10"] == sides["bm25s-direct"]["ndcg@10"]
    )
    assert sides["bm25-second"]["index_reused"] and not sides["bm25-first"]["index_reused"]
