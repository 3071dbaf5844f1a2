"""Fault injection on `gtr-eval run`: kill -9 while encoding, searching and writing results, kill
during the second dataset, two runs at once on one results folder, hostile dataset text.

Every run uses the tiny random GTR model (tests/tiny_gtr.py), the bundled demo set and a synthetic
BEIR folder of 3,000 short documents, so the whole module takes well under a minute.  The kills
are real `SIGKILL`s of a `gtr-eval` process; restarts run the same command in-process (no second
torch import) and must give exactly what one uninterrupted run (in its own results folder and
cache) gives.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import queue
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from cli_process import GTR_EVAL
from click.testing import CliRunner

from gtr_eval.cli import cli
from gtr_eval.data.loader import load_beir_folder
from gtr_eval.evaluation import read_trec_run
from gtr_eval.results import RUN_SUFFIX, ResultsStore
from gtr_eval.retrieval.cache import encode_sharded

PACKAGE = Path(__file__).resolve().parents[1] / "gtr_eval"
SYSTEM = "tiny-gtr"  # the name of the model folder (a symlink to the tiny model)
SYN = "synthetic"  # the synthetic dataset's folder name, hence its dataset name
N_DOCS = 3000
SHARD = 64  # -> 47 corpus shards: a wide window to kill between two of them
N_SHARDS = math.ceil(N_DOCS / SHARD)
TIMEOUT = 180  # seconds; any single gtr-eval process here takes ~10 s
CACHE_LINE = re.compile(
    r"\[cache\] (\S+) on (\S+): corpus embeddings: (?:([\d,]+) shards? from cache)?(?:, )?"
    r"(?:([\d,]+)(?: shards?)? computed and saved)?$",
    re.M,
)
WORDS = (
    "retrieval dense encoder query document passage bm25 model search index corpus bread oven "
    "yeast comet planet star tomato garden run marathon water chess coffee tea bee sleep memory"
).split()


# ------------------------------------------------------------------------------------------ helpers


def _write_beir(root: Path, docs: dict[str, str], queries: dict[str, str], qrels: list[tuple]) -> Path:
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    with open(root / "corpus.jsonl", "w", encoding="utf-8") as fh:
        for i, t in docs.items():
            fh.write(json.dumps({"_id": i, "title": "", "text": t}) + "\n")
    with open(root / "queries.jsonl", "w", encoding="utf-8") as fh:
        for i, t in queries.items():
            fh.write(json.dumps({"_id": i, "text": t}) + "\n")
    lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{s}" for q, d, s in qrels]
    (root / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def _synthetic(root: Path) -> Path:
    """3,000 deterministic short documents, 40 queries with one relevant document each."""
    n = len(WORDS)
    docs = {
        f"s{i:04d}": " ".join(WORDS[(i * 7 + j * (i % 5 + 1)) % n] for j in range(2 + i % 5))
        for i in range(N_DOCS)
    }
    queries = {f"q{q}": f"{WORDS[q % n]} {WORDS[(3 * q + 1) % n]}" for q in range(40)}
    qrels = [(f"q{q}", f"s{(q * 71) % N_DOCS:04d}", 1) for q in range(40)]
    return _write_beir(root, docs, queries, qrels)


def _args(model: Path, datasets: list[str], results: Path, cache: Path, *extra: str) -> list[str]:
    args = ["run", "-m", str(model)]
    for d in datasets:
        args += ["-d", d]
    return [*args, "--results-dir", str(results), "--cache-dir", str(cache), "--shard-size", str(SHARD),
            "--quiet", *extra]  # fmt: skip


def _in_process(args: list[str]):
    """The same command as a plain restart, run in this process; returns the click Result."""
    res = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res


def _cache_lines(stderr: str) -> dict[str, tuple[int, int, int]]:
    """dataset -> (encoded, total, reused) from the `[cache]` lines."""
    counts = {m[2]: (int(m[4] or 0), int(m[3] or 0)) for m in CACHE_LINE.finditer(stderr)}
    return {name: (encoded, encoded + reused, reused) for name, (encoded, reused) in counts.items()}


def _corpus_shard_folder(cache: Path) -> Path | None:
    for key in (cache / "embeddings").glob("*/*/key.json"):
        try:
            if json.loads(key.read_text())["kind"] == "corpus":
                return key.parent
        except (OSError, ValueError, KeyError):
            continue  # being written
    return None


def _complete_shards(cache: Path) -> int:
    """Corpus shards whose sidecar exists (it is written, atomically, after its .npy)."""
    folder = _corpus_shard_folder(cache)
    return len(list(folder.glob("shard-*.json"))) if folder else 0


def _wait_until(pred, proc: subprocess.Popen, what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if proc.poll() is not None:
            pytest.fail(f"gtr-eval exited ({proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


def _sigkill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL


def _temp_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.name.endswith(".tmp"))


def _assert_same_result(results: Path, reference: Path, dataset: str) -> None:
    """Metrics, per-query scores and the run file equal those of the uninterrupted run."""
    got, want = ResultsStore(results).load(SYSTEM, dataset), ResultsStore(reference).load(SYSTEM, dataset)
    assert got.metrics == want.metrics
    assert got.per_query == want.per_query
    got_run, want_run = read_trec_run(got.run_path), read_trec_run(want.run_path)
    assert got_run.keys() == want_run.keys()
    for qid, docs in want_run.items():
        assert list(got_run[qid]) == list(docs), qid  # same documents in the same order
        np.testing.assert_allclose(list(got_run[qid].values()), list(docs.values()), rtol=1e-6)


# ----------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def env(tmp_path_factory, tiny_gtr):
    """The tiny model as `tiny-gtr`, the synthetic folder, and an uninterrupted reference run."""
    root = tmp_path_factory.mktemp("reliability")
    model = root / SYSTEM
    model.symlink_to(tiny_gtr, target_is_directory=True)
    syn = _synthetic(root / SYN)
    reference = root / "reference"
    res = _in_process(_args(model, ["demo", str(syn)], reference, root / "reference-cache"))
    assert _cache_lines(res.stderr)[SYN] == (N_SHARDS, N_SHARDS, 0)
    return {"model": model, "syn": syn, "reference": reference}


# --------------------------------------------------------------------------- 1. kill while encoding


def test_kill_9_during_corpus_encoding_resumes_from_the_last_complete_shard(env, tmp_path):
    results, cache = tmp_path / "results", tmp_path / "cache"
    args = _args(env["model"], [str(env["syn"])], results, cache)
    with open(tmp_path / "stderr.txt", "wb") as err:
        proc = subprocess.Popen([*GTR_EVAL, *args], stdout=subprocess.DEVNULL, stderr=err)
        _wait_until(lambda: _complete_shards(cache) >= 1, proc, "the first corpus shard")
        _sigkill(proc)
    complete = _complete_shards(cache)
    assert 1 <= complete < N_SHARDS, f"not killed mid-encode: {complete} of {N_SHARDS} shards"
    assert not ResultsStore(results).done(SYSTEM, SYN)
    assert not (results / SYSTEM / f"{SYN}.json").exists()

    res = _in_process(args)
    encoded, total, reused = _cache_lines(res.stderr)[SYN]
    assert (total, reused, encoded) == (N_SHARDS, complete, N_SHARDS - complete)
    assert reused >= 1
    _assert_same_result(results, env["reference"], SYN)
    assert not _temp_files(results)


# ------------------------------------------------------------------ 2. kill while searching/writing

KILLER = textwrap.dedent(
    """
    import os, signal, sys
    import gtr_eval.cli, gtr_eval.io, gtr_eval.retrieval.dense

    point, target, *argv = sys.argv[1:]

    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    if point == "search":
        gtr_eval.retrieval.dense.exact_search = die
    else:  # kill at the rename of `target` (its temp file is complete, fsynced, not yet renamed)
        real_replace = gtr_eval.io.os.replace

        def replace(src, dst, *args, **kwargs):
            if os.path.abspath(dst) == target:
                die()
            return real_replace(src, dst, *args, **kwargs)

        gtr_eval.io.os.replace = replace
    sys.argv = ["gtr-eval", *argv]
    gtr_eval.cli.main()
    """
)


@pytest.mark.parametrize("point", ["search", "run-file-write", "json-rename"])
def test_kill_9_during_search_or_result_writing_leaves_the_pair_not_done(env, tmp_path, point):
    results, cache = tmp_path / "results", tmp_path / "cache"
    json_path = results / SYSTEM / "demo.json"
    staged = results / SYSTEM / f"demo.staged{RUN_SUFFIX}"  # the run, before it is named by its content
    target = {"search": "", "run-file-write": staged, "json-rename": json_path}[point]
    args = _args(env["model"], ["demo"], results, cache)
    out = subprocess.run(
        [sys.executable, "-c", KILLER, point, str(Path(target).absolute() if target else ""), *args],
        capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert out.returncode == -signal.SIGKILL, out.stderr
    assert "[data] demo" in out.stderr and "[done]" not in out.stderr

    assert not json_path.exists()
    assert not ResultsStore(results).done(SYSTEM, "demo")
    runs = sorted((results / SYSTEM).glob(f"demo.*{RUN_SUFFIX}")) if (results / SYSTEM).exists() else []
    assert len(runs) == (point == "json-rename")  # the run is written and named before the JSON
    leftovers = _temp_files(results)
    if point == "search":
        assert leftovers == []
    else:  # the killed write left its complete temp file; nothing may take it for a result
        assert [p.name.split(".tmp")[0].rsplit(".", 1)[0] for p in leftovers] == [f".{target.name}"]
    assert list(ResultsStore(results)) == []  # the store reader skips temp files

    res = _in_process(args)
    assert "[skip]" not in res.stderr
    encoded, total, reused = _cache_lines(res.stderr)["demo"]
    assert (encoded, total, reused) == (0, 1, 1)  # the encode finished before the kill: kept
    assert ResultsStore(results).done(SYSTEM, "demo")
    _assert_same_result(results, env["reference"], "demo")
    assert not _temp_files(results)  # the restart removed the killed write's temp file
    stored = ResultsStore(results).load(SYSTEM, "demo")
    assert sorted(p.name for p in (results / SYSTEM).iterdir()) == sorted(["demo.json", stored.run_file])


# ------------------------------------------------------------- 3. kill during the second dataset


def _stderr_lines(proc: subprocess.Popen) -> queue.Queue:
    lines: queue.Queue = queue.Queue()

    def pump() -> None:
        for line in proc.stderr:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def test_kill_during_second_dataset_then_restart_skips_the_first_and_leaves_no_partial_file(env, tmp_path):
    results, cache = tmp_path / "results", tmp_path / "cache"
    args = _args(env["model"], ["demo", str(env["syn"])], results, cache)
    proc = subprocess.Popen([*GTR_EVAL, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines, seen = _stderr_lines(proc), []
    deadline = time.monotonic() + TIMEOUT
    while not (seen and seen[-1].startswith(f"[data] {SYN}:")):
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            proc.kill()
            pytest.fail(f"no [data] line for the second dataset in {TIMEOUT} s: {seen}")
        if line is None:
            pytest.fail(f"gtr-eval ended before the second dataset: {seen}")
        seen.append(line)
    _sigkill(proc)
    assert any(s.startswith("[done] tiny-gtr on demo") for s in seen)
    assert ResultsStore(results).done(SYSTEM, "demo") and not ResultsStore(results).done(SYSTEM, SYN)
    assert not (results / SYSTEM / f"{SYN}.json").exists()

    res = _in_process(args)
    assert f"[skip] {SYSTEM} on demo: already done" in res.stderr
    assert "[data] demo" not in res.stderr  # the first dataset is not even loaded again
    assert f"[done] {SYSTEM} on {SYN}" in res.stderr
    assert not _temp_files(results)
    assert [(r.system, r.dataset) for r in list(ResultsStore(results))] == [(SYSTEM, "demo"), (SYSTEM, SYN)]
    for dataset in ("demo", SYN):
        _assert_same_result(results, env["reference"], dataset)


# ------------------------------------------------------------------------- 4. two runs at once


def test_two_concurrent_runs_compute_each_pair_once_and_share_the_cache(env, tmp_path):
    results, cache = tmp_path / "results", tmp_path / "cache"
    args = _args(env["model"], ["demo", str(env["syn"])], results, cache)
    procs, logs = [], []
    for i in range(2):
        log = open(tmp_path / f"stderr-{i}.txt", "w+")  # noqa: SIM115 - closed below
        logs.append(log)
        procs.append(subprocess.Popen([*GTR_EVAL, *args], stdout=subprocess.DEVNULL, stderr=log, text=True))
    try:
        codes = [p.wait(timeout=TIMEOUT) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    stderr = []
    for log in logs:
        log.seek(0)
        stderr.append(log.read())
        log.close()
    assert codes == [0, 0], stderr

    for dataset in ("demo", SYN):
        done = [s.count(f"[done] {SYSTEM} on {dataset}:") for s in stderr]
        assert sorted(done) == [0, 1], (dataset, stderr)  # computed by exactly one process
        other = stderr[done.index(0)]
        assert re.search(
            rf"\[skip\] {SYSTEM} on {re.escape(dataset)}: (already done|finished by another process)", other
        ), other
        if f"[busy] {SYSTEM} on {dataset}:" in other:
            assert f"[skip] {SYSTEM} on {dataset}: finished by another process" in other
    for path in results.glob(f"{SYSTEM}/*.json"):
        json.loads(path.read_text(encoding="utf-8"))  # complete, valid JSON
    assert [r.dataset for r in list(ResultsStore(results))] == ["demo", SYN]
    assert not _temp_files(results)
    for dataset in ("demo", SYN):
        _assert_same_result(results, env["reference"], dataset)

    # The shared cache is intact: a fresh run over it encodes nothing and scores the same.
    again = tmp_path / "again"
    res = _in_process(_args(env["model"], ["demo", str(env["syn"])], again, cache))
    assert _cache_lines(res.stderr) == {"demo": (0, 1, 1), SYN: (0, N_SHARDS, N_SHARDS)}
    for dataset in ("demo", SYN):
        _assert_same_result(again, env["reference"], dataset)


# -------------------------------------------------------------------------------- 5. hostile input


def test_hostile_dataset_text_is_only_text(env, tmp_path):
    marker = tmp_path / "pwned"
    touch = f"touch {marker}"
    protocol0_pickle = f"cos\nsystem\n(S'{touch}'\ntR."  # runs `touch` if ever unpickled
    payloads = [
        f"__import__('os').system('{touch}')",
        f"$({touch})",
        f"`{touch}`",
        f"; {touch}; rm -rf $HOME/nothing-here",
        "{{ cycler.__init__.__globals__.os.popen('" + touch + "').read() }}",
        protocol0_pickle,
        "\x80\x04\x95\x1c\x00\x00\x00\x00\x00\x00\x00\x8c\x05posix\x94\x8c\x06system\x94\x93R.",
        "%s%s%n%x ${IFS} \\x00 \u202e reversed",
        "'; DROP TABLE documents; --",
    ]
    docs = {f"h{i}": f"{p} {WORDS[i]} {WORDS[i + 1]}" for i, p in enumerate(payloads)}
    docs.update({f"ok{i}": f"{WORDS[i]} {WORDS[-i - 1]} tea" for i in range(10)})
    queries = {f"q{i}": p for i, p in enumerate(payloads)}
    qrels = [(f"q{i}", f"h{i}", 1) for i in range(len(payloads))]
    folder = _write_beir(tmp_path / "hostile", docs, queries, qrels)

    data = load_beir_folder(folder)
    assert [data.corpus.texts()[data.corpus.ids.index(f"h{i}")] for i in range(len(payloads))] == [
        docs[f"h{i}"] for i in range(len(payloads))
    ]
    assert data.queries == queries

    results, cache = tmp_path / "results", tmp_path / "cache"
    args = _args(env["model"], [str(folder)], results, cache)
    args[1:1] = ["-m", "bm25"]
    res = _in_process(args)
    assert not marker.exists()
    stored = {r.system: r for r in list(ResultsStore(results))}
    assert set(stored) == {"bm25", SYSTEM}
    bm25_run = read_trec_run(stored["bm25"].run_path)
    assert bm25_run["q0"] and max(bm25_run["q0"], key=bm25_run["q0"].get) == "h0"  # searched as text
    assert f"[done] {SYSTEM} on hostile" in res.stderr
    for npy in (cache / "embeddings").rglob("*.npy"):  # only plain numeric arrays in the cache
        assert np.load(npy, allow_pickle=False).dtype in (np.float32, np.int64)
    with gzip.open(stored[SYSTEM].run_path, "rt") as fh:
        assert all(len(line.split()) == 6 for line in fh)
    assert not marker.exists()


FORBIDDEN = {
    "pickle module": re.compile(
        r"\bimport\s+(c?pickle|dill|joblib|shelve|marshal)\b|\bfrom\s+(pickle|dill|joblib)\b"
    ),
    "pickle load": re.compile(r"\b(pickle|dill|joblib|marshal)\.loads?\("),
    "torch.load": re.compile(r"\btorch\.load\("),
    "allow_pickle=True": re.compile(r"allow_pickle\s*=\s*True"),
    "eval/exec": re.compile(r"(?<![\w.])(eval|exec)\("),
    "yaml.load": re.compile(r"\byaml\.(unsafe_)?load\("),
    "shell": re.compile(r"shell\s*=\s*True|\bos\.(system|popen)\("),
}


def test_package_never_unpickles_or_evaluates_stored_data():
    sources = sorted(PACKAGE.rglob("*.py"))
    assert len(sources) >= 10
    found = []
    for path in sources:
        text = path.read_text(encoding="utf-8")
        found += [f"{path.name}: {what}" for what, rx in FORBIDDEN.items() if rx.search(text)]
        # every array load refuses pickles explicitly
        for call in re.finditer(r"np\.load\(([^)]*)\)", text):
            if "allow_pickle=False" not in call.group(1):
                found.append(f"{path.name}: np.load without allow_pickle=False")
    assert found == []
    assert FORBIDDEN["torch.load"].search("x = torch.load(f)")  # the scan does catch them
    assert FORBIDDEN["pickle load"].search("pickle.loads(b)")


def test_cache_shards_of_another_shard_size_are_not_mistaken_for_this_one(tmp_path):
    """250 docs: shard 1 at size 50 (docs 50-99) and at size 200 (docs 200-249) both have 50 rows."""
    kw = dict(
        texts=lambda idx: [str(i) for i in idx],
        order=np.arange(250),
        encode=lambda texts: np.array([[float(t), 1.0] for t in texts], dtype=np.float32),
        key={"k": "shard-size"},
        cache_dir=tmp_path,
        progress=False,
    )
    encode_sharded(**kw, shard_size=50)
    emb = encode_sharded(**kw, shard_size=200)
    assert emb.stats.shards_reused == 0
    np.testing.assert_array_equal(emb.matrix()[:, 0], np.arange(250))
