"""The results store: round trip, write order, name validation, clear errors."""

from __future__ import annotations

import json

import pytest

import gtr_eval.results as results_mod
from gtr_eval.data.loader import DataError
from gtr_eval.evaluation import evaluate, read_trec_run
from gtr_eval.results import is_done, load_result, load_results, result_path, save_result

QRELS = {"q1": {"d1": 1, "d2": 2}, "q2": {"d3": 1}}
RUN = {"q1": {"d2": 0.9, "d9": 0.5, "d1": 0.1 + 0.2}, "q2": {"d3": 0.7, "q2": 0.99}}


def save(root, system="bm25", dataset="scifact", manifest=None):
    ev = evaluate(QRELS, RUN)
    return save_result(
        root, system, dataset, "test", ev, RUN, manifest or {"model": "m", "python": "mine"}
    ), ev


def test_save_load_round_trip(tmp_path):
    path, ev = save(tmp_path)
    assert path == tmp_path / "bm25" / "scifact.json" == result_path(tmp_path, "bm25", "scifact")
    assert is_done(tmp_path, "bm25", "scifact")
    [stored] = load_results(tmp_path)
    assert (stored.system, stored.dataset, stored.split, stored.path) == ("bm25", "scifact", "test", path)
    assert stored.metrics == ev.metrics and stored.per_query == ev.per_query
    assert read_trec_run(stored.run_path) == RUN  # identical floats, identical-id entry kept
    record = json.loads(path.read_text())
    assert record["run_file"] == "scifact.run.trec.gz" and record["created"]
    assert record["scoring"]["ignore_identical_ids"] is True
    manifest = stored.manifest
    assert manifest["model"] == "m" and manifest["python"] == "mine"  # caller's keys win
    assert manifest["versions"]["pytrec_eval"] and manifest["versions"]["numpy"]
    assert manifest["hardware"]["cpu_count"] >= 1 and "git_commit" in manifest
    assert load_result(tmp_path, "bm25", "scifact").metrics == ev.metrics


def test_cqadupstack_subforum_nests_and_loads(tmp_path):
    path, _ = save(tmp_path, dataset="cqadupstack/android")
    assert path == tmp_path / "bm25" / "cqadupstack" / "android.json"
    assert (path.parent / "android.run.trec.gz").is_file()
    assert [r.dataset for r in load_results(tmp_path)] == ["cqadupstack/android"]


def test_no_tmp_left_and_run_written_before_json(tmp_path, monkeypatch):
    save(tmp_path)
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]

    def fail(*args, **kwargs):
        raise OSError("disk full")

    # JSON write fails: the run is there, the pair is not done, nothing half-written remains.
    monkeypatch.setattr(results_mod, "atomic_write_json", fail)
    with pytest.raises(OSError):
        save(tmp_path, dataset="nfcorpus")
    assert (tmp_path / "bm25" / "nfcorpus.run.trec.gz").is_file()
    assert not (tmp_path / "bm25" / "nfcorpus.json").exists()
    assert not is_done(tmp_path, "bm25", "nfcorpus")
    monkeypatch.undo()

    # Run write fails: no JSON may appear (a JSON always has its run beside it).
    monkeypatch.setattr(results_mod, "write_trec_run", fail)
    with pytest.raises(OSError):
        save(tmp_path, dataset="fiqa")
    assert not (tmp_path / "bm25" / "fiqa.json").exists()
    for json_path in tmp_path.rglob("*.json"):
        assert json_path.with_name(json_path.stem + ".run.trec.gz").is_file()


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
        result_path(tmp_path, system, dataset)
    with pytest.raises(ValueError):
        save(tmp_path, system=system, dataset=dataset)
    assert not list(tmp_path.iterdir())


def test_corrupt_json_error_names_file_and_is_not_done(tmp_path):
    path, _ = save(tmp_path)
    path.write_text('{"system": "bm25", "metrics": {')
    assert not is_done(tmp_path, "bm25", "scifact")
    with pytest.raises(DataError, match="corrupt") as err:
        load_results(tmp_path)
    assert str(path) in str(err.value)
    path.write_text('{"system": "bm25"}')
    with pytest.raises(DataError, match="not a result record") as err:
        load_results(tmp_path)
    assert str(path) in str(err.value)


def test_load_skips_temporary_and_hidden_files(tmp_path):
    save(tmp_path)
    (tmp_path / "bm25" / ".scifact.json.abc123.tmp").write_text("{half")
    (tmp_path / "bm25" / ".partial.json").write_text("{half")
    (tmp_path / "notes.json").write_text("not a result, not at result depth")
    assert [r.dataset for r in load_results(tmp_path)] == ["scifact"]


def test_is_done_needs_metrics_and_run(tmp_path):
    assert not is_done(tmp_path, "bm25", "scifact")
    path, _ = save(tmp_path)
    (path.parent / "scifact.run.trec.gz").unlink()
    assert not is_done(tmp_path, "bm25", "scifact")
    save(tmp_path)
    path.write_text(json.dumps({"system": "bm25", "metrics": {}}))
    assert not is_done(tmp_path, "bm25", "scifact")


def test_missing_results_dir_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_results(tmp_path / "nope")
