"""kill -9 of a real SciFact run with all-MiniLM-L6-v2, then resume: only the missing shards are
encoded and the scores equal the uninterrupted run's.  The run itself is the session fixture
`scifact_minilm_resumed` (tests/kill_resume.py), whose vectors the session's cache then reuses."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from kill_resume import CACHE_LINE

from gtr_eval.results import ResultsStore

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "results" / "all-MiniLM-L6-v2" / "scifact.json"  # an uninterrupted run of the same model
SHARDS = 3  # 5,183 documents at the default 2,048 per shard


@pytest.mark.slow
def test_scifact_killed_after_first_shard_resumes_and_scores_the_same(scifact_minilm_resumed, capsys):
    run = scifact_minilm_resumed
    assert run.killed_returncode == -signal.SIGKILL
    assert 1 <= run.shards_at_kill < SHARDS
    assert not run.done_after_kill

    assert run.resumed_returncode == 0, run.resumed_stderr
    line = CACHE_LINE.search(run.resumed_stderr)
    assert line, run.resumed_stderr
    with capsys.disabled():
        print(f"\n{line.group(0)}  (shards complete at the kill: {run.shards_at_kill})")
    reused, encoded = (int(n or 0) for n in line.groups())
    total = reused + encoded
    assert (total, reused, encoded) == (SHARDS, run.shards_at_kill, SHARDS - run.shards_at_kill)

    metrics = ResultsStore(run.results).load("all-MiniLM-L6-v2", "scifact").metrics
    expected = json.loads(COMMITTED.read_text(encoding="utf-8"))["metrics"]
    assert metrics.keys() == expected.keys()
    for name, value in expected.items():
        assert metrics[name] == pytest.approx(value, abs=1e-6), name
    assert not run.leftovers
