"""kill -9 of a real SciFact run with all-MiniLM-L6-v2 after its first corpus shard, then the resume.

It runs once per session (`scifact_minilm_resumed` in test_real_data.py), whose test checks what it
did, and the session's embedding cache then takes its vectors, so `test_real_data.py`'s run
does not encode SciFact a second time (one full encode of SciFact is about 3 minutes of CPU here).
The vectors it hands on were made by a killed-and-resumed run, which that test holds to the scores
of an uninterrupted run before anything else reads them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from cli_process import GTR_EVAL

SYSTEM, DATASET = "all-MiniLM-L6-v2", "scifact"
CACHE_LINE = re.compile(  # (reused, encoded): either may be absent
    r"\[cache\] all-MiniLM-L6-v2 on scifact: corpus embeddings: (?:(\d+) shards? from cache)?(?:, )?"
    r"(?:(\d+)(?: shards?)? computed and saved)?$",
    re.M,
)
FIRST_SHARD_TIMEOUT = 1200  # seconds: the first shard holds the 2,048 longest documents
RESTART_TIMEOUT = 1800


@dataclass(frozen=True)
class KillResume:
    results: Path
    cache: Path
    killed_returncode: int
    shards_at_kill: int
    done_after_kill: bool
    resumed_returncode: int
    resumed_stderr: str
    leftovers: tuple[str, ...]


def corpus_shards(cache: Path) -> int:
    """Complete corpus shards of the one corpus entry in `cache` (a cache used by this run alone)."""
    for key in (cache / "embeddings").glob("*/*/key.json"):
        try:
            if json.loads(key.read_text())["kind"] == "corpus":
                return len(list(key.parent.glob("shard-*.json")))
        except (OSError, ValueError, KeyError):
            continue
    return 0


def kill_and_resume(beir_data: Path, root: Path) -> KillResume:
    from gtr_eval.results import ResultsStore

    results, cache = root / "results", root / "cache"
    cmd = [*GTR_EVAL, "run", "-m", SYSTEM, "-d", DATASET, "--data-dir", str(beir_data),
           "--results-dir", str(results), "--cache-dir", str(cache), "--no-download", "--quiet"]  # fmt: skip
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    with open(root / "killed.stderr", "wb") as err:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + FIRST_SHARD_TIMEOUT
        try:
            while corpus_shards(cache) < 1:
                assert proc.poll() is None, f"exited ({proc.returncode}) before the first shard"
                assert time.monotonic() < deadline, "timed out waiting for the first corpus shard"
                time.sleep(0.2)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=60)
    at_kill = corpus_shards(cache)
    done = ResultsStore(results).done(SYSTEM, DATASET)
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=RESTART_TIMEOUT)
    leftovers = tuple(str(p) for p in results.rglob("*") if p.name.endswith(".tmp"))
    return KillResume(
        results, cache, proc.returncode, at_kill, bool(done), out.returncode, out.stderr, leftovers
    )


def hand_on_vectors(run: KillResume, shared_cache: Path) -> None:
    """Copy the run's embedding entries into the session cache, where it lacks them; only a resume
    that ended well hands anything on."""
    if run.resumed_returncode != 0:
        return
    for entry in (run.cache / "embeddings").glob("*/*"):
        target = shared_cache / entry.relative_to(run.cache)
        if not target.exists():
            tmp = target.with_name(target.name + ".copying")
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(entry, tmp)
            tmp.rename(target)
