"""A result has one commit point: `kill -9` between writing a new run and committing its JSON leaves
the old result whole (its JSON and the run it names), which `run`, `fuse` and `export` then serve
consistently; a run file swapped under a JSON is refused in one line, and the pair is recomputed."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from gtr_eval.cli import cli
from gtr_eval.data.units import resolve_dataset
from gtr_eval.evaluation import evaluate, read_trec_run
from gtr_eval.io import sha256_file
from gtr_eval.results import ResultsStore

# `gtr-eval` killed (SIGKILL) at the moment it would commit a result's JSON, after its run is written.
KILLED_AT_COMMIT = """
import os, signal, sys
import gtr_eval.results as results
write = results.atomic_write_json
def killed(path, obj):
    if str(path).endswith(".json"):
        os.kill(os.getpid(), signal.SIGKILL)
    write(path, obj)
results.atomic_write_json = killed
from gtr_eval.cli import cli
cli(sys.argv[1:])
"""


def _cli(*args: str):
    return CliRunner().invoke(cli, [*args])


def _run(results: Path, *args: str):
    return _cli("run", *args, "-d", "demo", "--results-dir", str(results))


def _files(results: Path, system: str) -> list[str]:
    return sorted(p.name for p in (results / system).iterdir())


def _rescored(stored) -> dict[str, float]:
    data = resolve_dataset("demo")[0].load()
    return evaluate(data.qrels, read_trec_run(stored.run_path)).metrics


def _killed_overwrite(results: Path) -> subprocess.CompletedProcess:
    args = [
        "run",
        "-m",
        "bm25",
        "-d",
        "demo",
        "--results-dir",
        str(results),
        "--overwrite",
        "--bm25-k1",
        "0.3",
        "--name",
        "bm25",
    ]
    return subprocess.run(
        [sys.executable, "-c", KILLED_AT_COMMIT, *args], capture_output=True, text=True, env=dict(os.environ)
    )


def test_a_kill_between_the_run_and_the_json_leaves_the_old_result_whole(tmp_path):
    results = tmp_path / "r"
    assert _run(results, "-m", "bm25", "-m", "all-MiniLM-L6-v2", "--quiet").exit_code == 0
    store = ResultsStore(results)
    old = store.load("bm25", "demo")
    assert old.spec["bm25"]["k1"] == 1.5

    killed = _killed_overwrite(results)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert len(_files(results, "bm25")) == 3  # the new run was written (under its own name), no JSON

    # The store serves the old JSON with its own run: the scores it records are the run's.
    served = store.load("bm25", "demo")
    assert served == old and served.spec["bm25"]["k1"] == 1.5
    assert sha256_file(served.run_path) == old.run_sha256
    assert _rescored(served) == served.metrics

    again = _run(results, "-m", "bm25")
    assert again.exit_code == 0 and "[skip] bm25 on demo: already done" in again.output

    # fuse reads the run the JSON names
    fuse = ["fuse", "--rrf", "bm25", "all-MiniLM-L6-v2", "-d", "demo", "--results-dir", str(results)]
    assert _cli(*fuse).exit_code == 0
    inputs = store.load("rrf(bm25+all-MiniLM-L6-v2)", "demo").spec["inputs"]
    assert {i["system"]: i["run_sha256"] for i in inputs}["bm25"] == old.run_sha256

    # export --format trec copies the run the JSON names
    out = tmp_path / "out"
    exported = _cli("export", "--format", "trec", "--results-dir", str(results), "--output", str(out))
    assert exported.exit_code == 0, exported.output
    assert (out / "bm25" / "demo.run.trec.gz").read_bytes() == old.run_path.read_bytes()

    # The same overwrite, not killed: the new result replaces the old one, and the orphan run and the
    # old run are gone.
    done = _run(results, "-m", "bm25", "--overwrite", "--bm25-k1", "0.3", "--name", "bm25", "--quiet")
    assert done.exit_code == 0, done.output
    new = store.load("bm25", "demo")
    assert new.spec["bm25"]["k1"] == 0.3 and new.run_sha256 != old.run_sha256
    assert _rescored(new) == new.metrics
    assert _files(results, "bm25") == sorted(["demo.json", new.run_file])


def test_a_swapped_run_file_is_refused_in_one_line_and_recomputed(tmp_path):
    results = tmp_path / "r"
    assert _run(results, "-m", "bm25", "-m", "all-MiniLM-L6-v2", "--quiet").exit_code == 0
    store = ResultsStore(results)
    bm25, dense = store.load("bm25", "demo"), store.load("all-MiniLM-L6-v2", "demo")
    shutil.copyfile(dense.run_path, bm25.run_path)  # another run under the name bm25's JSON records
    why = f"{bm25.path}: its run file {bm25.run_file} is not the run it was stored with (sha256 differs)"

    table = _cli("table", "--results-dir", str(results))
    assert table.exit_code != 0 and why in table.output
    exported = _cli(
        "export", "--format", "trec", "--results-dir", str(results), "--output", str(tmp_path / "o")
    )
    assert exported.exit_code != 0 and why in exported.output
    assert not (tmp_path / "o" / "bm25" / "demo.run.trec.gz").exists()

    fuse = _cli("fuse", "--rrf", "bm25", "all-MiniLM-L6-v2", "-d", "demo", "--results-dir", str(results))
    assert fuse.exit_code != 0
    said = [line for line in fuse.output.splitlines() if why in line]  # the pair's line, then the summary
    assert said and said[0].startswith(
        "[fail] rrf(bm25+all-MiniLM-L6-v2) on demo: input failed: fuse cannot use it"
    )
    assert not store.done("rrf(bm25+all-MiniLM-L6-v2)", "demo")

    again = _run(results, "-m", "bm25")  # not done: computed again, without --overwrite, saying why
    assert again.exit_code == 0 and "[done] bm25 on demo" in again.output
    redo = [line for line in again.output.splitlines() if line.startswith("[redo] bm25 on demo")]
    assert redo == [f"[redo] bm25 on demo: its run file {bm25.run_file} is not the run it was stored with "
                    "(sha256 differs); computing it again"]  # fmt: skip
    fresh = store.load("bm25", "demo")
    assert fresh.metrics == bm25.metrics and _files(results, "bm25") == sorted(["demo.json", fresh.run_file])
