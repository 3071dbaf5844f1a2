"""The data folder is only read: a run, a reduced corpus and a plan write nothing under it, so it can be
read-only (shared data); derived data (reduced corpora) lives in the cache, and `--plan` knows it."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from gtr_eval.cli import cli
from gtr_eval.paths import BUNDLED
from gtr_eval.results import ResultsStore


def _read_only_copy(source: Path, dest: Path) -> Path:
    """`source` copied to `dest` and made read-only (chmod -R a-w), as a shared data folder is."""
    shutil.copytree(source, dest)
    for path in [dest, *dest.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    return dest


def _snapshot(folder: Path) -> dict[str, tuple]:
    """Every path under `folder` with its size and modification time: what a write would change (the
    test may run as root, whom a read-only mode does not stop)."""
    return {str(p.relative_to(folder)): (p.is_dir(), p.stat().st_size, p.stat().st_mtime_ns)
            for p in [folder, *folder.rglob("*")]}  # fmt: skip


def _writable_again(folder: Path) -> None:
    for path in [folder, *folder.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)


def _cli(*args) -> tuple[int, str]:
    out = CliRunner().invoke(cli, [str(a) for a in args])
    return out.exit_code, out.output


@pytest.fixture
def read_only_demo(tmp_path):
    data = _read_only_copy(BUNDLED / "demo", tmp_path / "ro-data" / "demo")
    yield data
    _writable_again(data.parent)


def test_reduce_corpus_builds_in_the_cache_and_the_plan_shows_it(tmp_path, read_only_demo):
    data, before = read_only_demo, _snapshot(read_only_demo.parent)
    common = [
        "--data-dir",
        data.parent,
        "--results-dir",
        tmp_path / "results",
        "--cache-dir",
        tmp_path / "cache",
    ]
    code, planned = _cli("run", "-m", "bm25", "-d", data, "--reduce-corpus", 2, "--plan", *common)
    assert code == 0, planned
    assert "demo~bm25top2" in planned and "Reduced corpora to make first" in planned
    assert "0 already done, 1 to run" in planned

    code, output = _cli("run", "-m", "bm25", "-d", data, "--reduce-corpus", 2, "--quiet", *common)
    assert code == 0, output
    (stored,) = list(ResultsStore(tmp_path / "results"))
    reduced = Path(stored.manifest["dataset"]["path"])
    assert reduced.is_relative_to(tmp_path / "cache" / "reduced")  # derived data: in the cache
    kept = stored.manifest["dataset"]["reduction"]["documents"]
    assert 0 < kept < sum(1 for _ in (data / "corpus.jsonl").open())

    code, planned = _cli("run", "-m", "bm25", "-d", data, "--reduce-corpus", 2, "--plan", *common)
    assert code == 0, planned
    row = next(line for line in planned.splitlines() if line.startswith(f"| {data}"))
    assert f"| {kept:,} " in row and "| 1/1 " in row  # the reduced count as built, and done
    assert "1 already done, 0 to run" in planned and "Reduced corpora built in the cache" in planned
    assert _snapshot(data.parent) == before

    _writable_again(data.parent)  # the source changes: the reduction in the cache is no longer its
    with (data / "corpus.jsonl").open("a") as fh:
        fh.write('{"_id": "new", "title": "", "text": "a document added since"}\n')
    code, planned = _cli("run", "-m", "bm25", "-d", data, "--reduce-corpus", 2, "--plan", *common)
    assert code == 0 and "Reduced corpora to make first" in planned and "built in the cache" not in planned


def test_reduce_corpus_with_no_cache_writes_neither_data_folder_nor_cache_dir(tmp_path, read_only_demo):
    data, before = read_only_demo, _snapshot(read_only_demo.parent)
    code, output = _cli("run", "-m", "bm25", "-d", data, "--reduce-corpus", 2, "--no-cache", "--quiet",
                        "--results-dir", tmp_path / "results")  # fmt: skip
    assert code == 0, output
    (stored,) = list(ResultsStore(tmp_path / "results"))
    assert stored.dataset == "demo~bm25top2"
    made = Path(stored.manifest["dataset"]["path"])  # in a temporary cache, removed when the process ends
    assert made.is_relative_to(tempfile.gettempdir()) and made.parents[2].name.startswith("gtr-eval-reduced-")
    assert _snapshot(data.parent) == before


@pytest.mark.slow
@pytest.mark.parametrize("reduce", [[], ["--reduce-corpus", 100]], ids=["full", "reduced"])
def test_first_hour_bm25_on_a_read_only_copy_of_scifact(tmp_path, beir_data, reduce):
    """The first run a newcomer makes, on the real SciFact made read-only: it runs, and nothing is
    written under the data folder (a reduced corpus included)."""
    data = _read_only_copy(beir_data / "scifact", tmp_path / "ro-data" / "scifact")
    before = _snapshot(data.parent)
    try:
        code, output = _cli("run", "-m", "bm25", "-d", "scifact", *reduce, "--quiet", "--data-dir", data.parent,
                            "--results-dir", tmp_path / "results", "--cache-dir", tmp_path / "cache")  # fmt: skip
        assert code == 0, output
        (stored,) = list(ResultsStore(tmp_path / "results"))
        assert stored.dataset == ("scifact~bm25top100" if reduce else "scifact")
        assert stored.metrics["ndcg@10"] > 0.5  # a real ranking, not an empty one
        assert _snapshot(data.parent) == before
        assert os.access(tmp_path / "cache", os.W_OK) and any((tmp_path / "cache").iterdir())
    finally:
        _writable_again(data.parent)


def test_a_bad_id_is_refused_before_any_index_and_the_other_datasets_run(tmp_path):
    """A query id with a tab fails its pair at load, naming file and line, before BM25 indexes
    anything; the next dataset of the run still runs."""
    bad = tmp_path / "bad"
    shutil.copytree(BUNDLED / "demo", bad)
    queries = bad / "queries.jsonl"
    lines = queries.read_text().splitlines()
    lines[-1] = lines[-1].replace('"_id": "', '"_id": "x\\t', 1)
    queries.write_text("\n".join(lines) + "\n")
    cache = tmp_path / "cache"
    code, output = _cli("run", "-m", "bm25", "-d", bad, "-d", "demo", "--results-dir", tmp_path / "results",
                        "--cache-dir", cache, "--quiet")  # fmt: skip
    assert code == 3, output
    assert f"{queries}:{len(lines)}: query id 'x\\t" in output and "contains a tab" in output
    assert [r.dataset for r in ResultsStore(tmp_path / "results")] == ["demo"]
    assert len([p for p in (cache / "bm25").glob("*/*") if p.is_dir()]) == 1  # demo's index only
