"""kill -9 of a real SciFact run with all-MiniLM-L6-v2, then resume: only the missing shards are
encoded and the scores equal the uninterrupted run's.  About 5 minutes of CPU (one full encode)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from cli_process import GTR_EVAL

from gtr_eval.results import ResultsStore

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "results" / "all-MiniLM-L6-v2" / "scifact.json"  # an uninterrupted run of the same model
SHARDS = 3  # 5,183 documents at the default 2,048 per shard
CACHE_LINE = re.compile(
    r"\[cache\] all-MiniLM-L6-v2 on scifact: corpus embeddings: (?:(\d+) shards? from cache)?(?:, )?"
    r"(?:(\d+)(?: shards?)? computed and saved)?$",
    re.M,
)
FIRST_SHARD_TIMEOUT = 1200  # seconds: the first shard holds the 2,048 longest documents
RESTART_TIMEOUT = 1800


def _corpus_shards(cache: Path) -> int:
    for key in (cache / "embeddings").glob("*/*/key.json"):
        try:
            if json.loads(key.read_text())["kind"] == "corpus":
                return len(list(key.parent.glob("shard-*.json")))
        except (OSError, ValueError, KeyError):
            continue
    return 0


@pytest.mark.slow
def test_scifact_killed_after_first_shard_resumes_and_scores_the_same(beir_data, tmp_path, capsys):
    results, cache = tmp_path / "results", tmp_path / "cache"
    cmd = [*GTR_EVAL, "run", "-m", "all-MiniLM-L6-v2", "-d", "scifact", "--data-dir", str(beir_data),
           "--results-dir", str(results), "--cache-dir", str(cache), "--no-download", "--quiet"]  # fmt: skip
    env = dict(os.environ, HF_HUB_OFFLINE="1")

    with open(tmp_path / "killed.stderr", "wb") as err:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + FIRST_SHARD_TIMEOUT
        try:
            while _corpus_shards(cache) < 1:
                assert proc.poll() is None, f"exited ({proc.returncode}) before the first shard"
                assert time.monotonic() < deadline, "timed out waiting for the first corpus shard"
                time.sleep(0.2)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    complete = _corpus_shards(cache)
    assert 1 <= complete < SHARDS
    assert not ResultsStore(results).done("all-MiniLM-L6-v2", "scifact")

    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=RESTART_TIMEOUT)
    assert out.returncode == 0, out.stderr
    line = CACHE_LINE.search(out.stderr)
    assert line, out.stderr
    with capsys.disabled():
        print(f"\n{line.group(0)}  (shards complete at the kill: {complete})")
    reused, encoded = (int(n or 0) for n in line.groups())
    total = reused + encoded
    assert (total, reused, encoded) == (SHARDS, complete, SHARDS - complete)

    metrics = ResultsStore(results).load("all-MiniLM-L6-v2", "scifact").metrics
    expected = json.loads(COMMITTED.read_text(encoding="utf-8"))["metrics"]
    assert metrics.keys() == expected.keys()
    for name, value in expected.items():
        assert metrics[name] == pytest.approx(value, abs=1e-6), name
    assert not [p for p in results.rglob("*") if p.name.endswith(".tmp")]
