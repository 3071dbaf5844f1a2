"""The results store: round trip, one commit point, run files checked, leftovers, names, clear errors."""

from __future__ import annotations

import json
import os

import pytest

import gtr_eval.results as results_mod
from gtr_eval.data.loader import DataError
from gtr_eval.evaluation import evaluate, read_trec_run
from gtr_eval.identity import Identity
from gtr_eval.io import sha256_file
from gtr_eval.results import ResultsStore

QRELS = {"q1": {"d1": 1, "d2": 2}, "q2": {"d3": 1}}
RUN = {"q1": {"d2": 0.9, "d9": 0.5, "d1": 0.1 + 0.2}, "q2": {"d3": 0.7, "q2": 0.99}}
OTHER_RUN = {"q1": {"d2": 0.4, "d9": 0.5, "d1": 0.3}, "q2": {"d3": 0.7}}


def save(root, system="bm25", dataset="scifact", manifest=None, run=RUN):
    ev = evaluate(QRELS, run)
    identity = Identity({"system": system, "k1": run["q1"]["d2"]}, {"dataset": dataset})
    manifest = manifest or {"spec": {"model": "m"}, "python": "mine"}
    return ResultsStore(root).save(system, dataset, "test", ev, run, manifest, identity), ev


def pair_files(root):
    return sorted(p.name for p in (root / "bm25").iterdir())


def test_save_load_round_trip(tmp_path):
    saved, ev = save(tmp_path)
    path = saved.path
    assert path == tmp_path / "bm25" / "scifact.json" == ResultsStore(tmp_path).path("bm25", "scifact")
    assert ResultsStore(tmp_path).done("bm25", "scifact")
    [stored] = list(ResultsStore(tmp_path))
    assert stored == saved  # what save returned is what was written (loaded: the same)
    assert (stored.system, stored.dataset, stored.split, stored.path) == ("bm25", "scifact", "test", path)
    assert stored.metrics == ev.metrics and stored.per_query == ev.per_query
    assert read_trec_run(stored.run_path) == RUN  # identical floats, identical-id entry kept
    record = json.loads(path.read_text())
    assert record["run"] == {"file": stored.run_file, "sha256": sha256_file(stored.run_path)}
    assert stored.run_file == f"scifact.{stored.run_sha256[:16]}.run.trec.gz" and record["created"]
    assert record["scoring"]["ignore_identical_ids"] is True
    manifest = stored.manifest
    assert stored.spec == {"model": "m"} and manifest["python"] == "mine"  # caller's keys win
    assert manifest["versions"]["pytrec_eval"] and manifest["versions"]["numpy"]
    assert manifest["hardware"]["cpu_count"] >= 1 and "git_commit" in manifest
    assert pair_files(tmp_path) == sorted(["scifact.json", stored.run_file])


def test_save_returns_without_reading_back(tmp_path, monkeypatch):
    def no_read(*args, **kwargs):
        raise AssertionError("save read the result back")

    monkeypatch.setattr(results_mod, "_read_result", no_read)
    saved, ev = save(tmp_path)
    assert saved.metrics == ev.metrics and saved.run_sha256 == sha256_file(saved.run_path)
    monkeypatch.undo()
    assert ResultsStore(tmp_path).load("bm25", "scifact") == saved


def test_replacing_a_result_removes_the_run_it_named(tmp_path):
    old, _ = save(tmp_path)
    new, _ = save(tmp_path, run=OTHER_RUN)
    assert old.run_file != new.run_file
    assert pair_files(tmp_path) == sorted(["scifact.json", new.run_file])
    assert read_trec_run(ResultsStore(tmp_path).load("bm25", "scifact").run_path) == OTHER_RUN


def test_a_failure_between_the_two_writes_leaves_the_old_result_whole(tmp_path, monkeypatch):
    old, _ = save(tmp_path)

    def fail(*args, **kwargs):
        raise OSError("killed before the JSON was renamed")

    monkeypatch.setattr(results_mod, "atomic_write_json", fail)
    with pytest.raises(OSError):
        save(tmp_path, run=OTHER_RUN)
    monkeypatch.undo()
    assert len(pair_files(tmp_path)) == 3  # the new run was written, under its own name
    store = ResultsStore(tmp_path)
    assert store.done("bm25", "scifact")
    served = store.load("bm25", "scifact")
    assert served == old and read_trec_run(served.run_path) == RUN  # the old JSON with its own run
    with store.lock("bm25", "scifact"):
        store.clear_leftovers("bm25", "scifact")
    assert pair_files(tmp_path) == sorted(["scifact.json", old.run_file])


def test_a_swapped_or_edited_run_is_not_served(tmp_path):
    old, _ = save(tmp_path)
    other, _ = save(tmp_path, dataset="nfcorpus", run=OTHER_RUN)
    store = ResultsStore(tmp_path)
    assert store.load("bm25", "scifact").run_sha256 == old.run_sha256  # verified once, memoised
    other.run_path.replace(old.run_path)  # another run under the recorded name
    assert not store.done("bm25", "scifact")
    with pytest.raises(DataError, match="not the run it was stored with") as err:
        store.load("bm25", "scifact")
    assert str(old.path) in str(err.value) and old.run_file in str(err.value)
    assert len(str(err.value).splitlines()) == 1
    old.run_path.unlink()
    with pytest.raises(DataError, match=f"its run file {old.run_file} is missing"):
        store.load("bm25", "scifact")
    with pytest.raises(DataError):
        list(store)


def test_a_same_size_edit_with_the_mtime_restored_is_caught(tmp_path):
    old, _ = save(tmp_path)
    store = ResultsStore(tmp_path)
    assert store.done("bm25", "scifact")
    st = old.run_path.stat()
    data = bytearray(old.run_path.read_bytes())
    data[-12] ^= 0xFF  # same size, other bytes
    old.run_path.write_bytes(bytes(data))
    os.utime(old.run_path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert not store.done("bm25", "scifact")


def test_leftovers_are_cleaned(tmp_path):
    kept, _ = save(tmp_path)
    folder = tmp_path / "bm25"
    orphan = folder / f"scifact.{'0' * 16}.run.trec.gz"
    orphan.write_bytes(b"an orphan run of a killed write")
    leftovers = [
        orphan,
        folder / ".scifact.json.abc123.tmp",
        folder / "scifact.staged.run.trec.gz",
        folder / ".scifact.staged.run.trec.gz.xyz.tmp",
    ]
    for p in leftovers[1:]:
        p.write_bytes(b"half")
    other = folder / f"nfcorpus.{'0' * 16}.run.trec.gz"  # another pair's file is not touched
    other.write_bytes(b"x")
    store = ResultsStore(tmp_path)
    with store.lock("bm25", "scifact"):
        store.clear_leftovers("bm25", "scifact")
    assert not any(p.exists() for p in leftovers)
    assert pair_files(tmp_path) == sorted(["scifact.json", kept.run_file, other.name])
    assert store.load("bm25", "scifact") == kept


def test_cqadupstack_subforum_nests_and_loads(tmp_path):
    saved, _ = save(tmp_path, dataset="cqadupstack/android")
    assert saved.path == tmp_path / "bm25" / "cqadupstack" / "android.json"
    assert saved.run_path.parent == saved.path.parent and saved.run_path.is_file()
    assert [r.dataset for r in list(ResultsStore(tmp_path))] == ["cqadupstack/android"]


def test_no_tmp_left_and_a_failed_write_leaves_no_result(tmp_path, monkeypatch):
    save(tmp_path)
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]

    def fail(*args, **kwargs):
        raise OSError("disk full")

    # JSON write fails: the pair is not done, nothing half-written remains.
    monkeypatch.setattr(results_mod, "atomic_write_json", fail)
    with pytest.raises(OSError):
        save(tmp_path, dataset="nfcorpus")
    assert not (tmp_path / "bm25" / "nfcorpus.json").exists()
    assert not ResultsStore(tmp_path).done("bm25", "nfcorpus")
    monkeypatch.undo()

    # Run write fails: no JSON may appear.
    monkeypatch.setattr(results_mod, "write_trec_run", fail)
    with pytest.raises(OSError):
        save(tmp_path, dataset="fiqa")
    assert not (tmp_path / "bm25" / "fiqa.json").exists()
    assert [r.dataset for r in ResultsStore(tmp_path)] == ["scifact"]


@pytest.mark.parametrize(
    "system, dataset",
    [
        ("..", "scifact"),
        ("bm25", "../scifact"),
        ("bm25", "cqadupstack/../../x"),
        ("/abs", "scifact"),
        ("bm25", "/scifact"),
        ("bm\\25", "scifact"),
        ("bm25", "a\\b"),
        ("org/model", "scifact"),
        ("bm25", "a/b/c"),
        ("bm25", ""),
        ("bm25", "cqadupstack/"),
        (".hidden", "scifact"),
    ],
)
def test_bad_names_rejected(tmp_path, system, dataset):
    with pytest.raises(ValueError, match="invalid"):
        ResultsStore(tmp_path).path(system, dataset)
    with pytest.raises(ValueError):
        save(tmp_path, system=system, dataset=dataset)
    assert not list(tmp_path.iterdir())


def test_corrupt_json_error_names_file_and_is_not_done(tmp_path):
    path = save(tmp_path)[0].path
    path.write_text('{"system": "bm25", "metrics": {')
    assert not ResultsStore(tmp_path).done("bm25", "scifact")
    with pytest.raises(DataError, match="corrupt") as err:
        list(ResultsStore(tmp_path))
    assert str(path) in str(err.value)
    path.write_text('{"system": "bm25"}')
    with pytest.raises(DataError, match="not a result record") as err:
        list(ResultsStore(tmp_path))
    assert str(path) in str(err.value)


def test_load_skips_temporary_and_hidden_files(tmp_path):
    save(tmp_path)
    (tmp_path / "bm25" / ".scifact.json.abc123.tmp").write_text("{half")
    (tmp_path / "bm25" / ".partial.json").write_text("{half")
    (tmp_path / "notes.json").write_text("not a result, not at result depth")
    assert [r.dataset for r in list(ResultsStore(tmp_path))] == ["scifact"]


def test_done_needs_a_result_record_and_its_run(tmp_path):
    assert not ResultsStore(tmp_path).done("bm25", "scifact")
    saved, _ = save(tmp_path)
    record = json.loads(saved.path.read_text())
    for key in ("identity", "run", "manifest"):  # records without them are not results
        saved.path.write_text(json.dumps({k: v for k, v in record.items() if k != key}))
        assert not ResultsStore(tmp_path).done("bm25", "scifact")


def test_missing_results_dir_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        list(ResultsStore(tmp_path / "nope"))
