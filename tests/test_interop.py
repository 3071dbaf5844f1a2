"""Results in and out: MTEB result files (written, read back, read by mteb itself), TREC runs, ranx
JSON, CSV, and external TREC runs imported as systems."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from demo_results import DEMO, demo_run, make_demo_results

from gtr_eval.cli import cli
from gtr_eval.data.loader import DataError, load_beir_folder, read_qrels
from gtr_eval.errors import Refused
from gtr_eval.evaluation import (
    evaluate,
    judged_names,
    metric_names,
    read_qrels_any,
    read_trec_run,
    write_trec_run,
)
from gtr_eval.pipeline.imported import import_trec_run
from gtr_eval.report import mteb
from gtr_eval.report.export import export_results
from gtr_eval.report.tables import AVERAGE, WORSE, RefSpec, leaderboard, load_references
from gtr_eval.results import ResultsStore, StoredResult

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "results"
MAPPED = [m for m in metric_names() if mteb.mteb_key(m)]  # every metric but the uncut mrr


@pytest.fixture()
def demo(tmp_path) -> Path:
    return make_demo_results(tmp_path / "results")


# --- MTEB: names and keys ------------------------------------------------------------------------


def test_metric_keys_map_both_ways():
    assert mteb.mteb_key("ndcg@10") == "ndcg_at_10"
    assert mteb.mteb_key("p@5") == "precision_at_5"
    assert mteb.mteb_key("mrr@10") == "mrr_at_10"
    assert mteb.mteb_key("mrr") is None
    for metric in MAPPED:
        assert mteb.our_metric(mteb.mteb_key(metric)) == metric
    assert mteb.our_metric("nauc_ndcg_at_10_max") is None
    assert mteb.our_metric("cv_recall_at_10") is None


def test_task_names_cover_beir_and_the_cqadupstack_subforums():
    assert mteb.TASKS["scifact"] == "SciFact" and mteb.TASKS["fiqa"] == "FiQA2018"
    assert mteb.TASKS["cqadupstack/gis"] == "CQADupstackGisRetrieval"
    assert mteb.TASKS["cqadupstack/wordpress"] == "CQADupstackWordpressRetrieval"
    assert mteb.split_of("msmarco") == "dev" and mteb.split_of("scifact") == "test"


# --- MTEB: export ------------------------------------------------------------------------------


def test_mteb_export_of_the_committed_results(tmp_path):
    out = tmp_path / "mteb"
    done = export_results(list(ResultsStore(COMMITTED)), "mteb", out)
    minilm = out / "sentence-transformers__all-MiniLM-L6-v2" / "no_revision_available"
    assert sorted(p.name for p in minilm.iterdir()) == ["NFCorpus.json", "SciFact.json", "model_meta.json"]
    assert (out / "bm25" / "no_revision_available" / "SciFact.json") in done.written
    meta = json.loads((minilm / "model_meta.json").read_text())
    assert (
        meta["name"] == "sentence-transformers/all-MiniLM-L6-v2"
        and meta["revision"] == "no_revision_available"
    )
    record = json.loads((minilm / "SciFact.json").read_text())
    stored = ResultsStore(COMMITTED).load("all-MiniLM-L6-v2", "scifact")
    assert record["task_name"] == "SciFact"
    assert {"dataset_revision", "mteb_version", "evaluation_time"} <= set(record)
    (entry,) = record["scores"]["test"]
    assert entry["hf_subset"] == "default" and entry["languages"] == ["eng-Latn"]
    assert entry["main_score"] == entry["ndcg_at_10"] == stored.metrics["ndcg@10"]
    for metric in MAPPED:
        assert entry[mteb.mteb_key(metric)] == stored.metrics[metric]
    assert "mrr" not in entry


def test_exported_minilm_agrees_with_the_published_mteb_figures(tmp_path):
    """A sanity check against MTEB's own numbers for the same model (published_scores.csv)."""
    export_results(list(ResultsStore(COMMITTED)), "mteb", tmp_path)
    folder = tmp_path / "sentence-transformers__all-MiniLM-L6-v2" / "no_revision_available"
    refs = load_references()
    published = refs[(refs["source"] == "mteb-results") & (refs["system"] == "all-MiniLM-L6-v2")]
    checked = 0
    for dataset, task in (("scifact", "SciFact"), ("nfcorpus", "NFCorpus")):
        entry = json.loads((folder / f"{task}.json").read_text())["scores"]["test"][0]
        for metric, tolerance in (("ndcg@10", 0.001), ("recall@100", 0.003)):
            row = published[(published["dataset"] == dataset) & (published["metric"] == metric)]
            assert len(row) == 1
            assert entry[mteb.mteb_key(metric)] == pytest.approx(float(row["value"].iloc[0]), abs=tolerance)
            checked += 1
    assert checked == 4


def test_mteb_export_names_revisions_splits_and_skips(tmp_path):
    def result(dataset: str, split: str = "test", revision: str = "") -> StoredResult:
        metrics = {m: 0.5 for m in metric_names()}
        manifest = {"spec": {"hub_id": "org/model", "revision": revision}, "dataset": {"checksum": "abc"}}
        return StoredResult("m", dataset, split, metrics, {}, manifest, tmp_path / "x.json")

    sha = "8b3219a92973c328a8e22fadcfa821b5dc75636a"
    done = mteb.write_mteb(
        [
            result("msmarco", "dev", sha),
            result("cqadupstack/tex", revision=sha),
            result("bioasq", revision=sha),
        ],
        tmp_path,
    )
    folder = tmp_path / "org__model" / sha
    assert json.loads((folder / "MSMARCO.json").read_text())["scores"].keys() == {"dev"}
    assert (
        json.loads((folder / "CQADupstackTexRetrieval.json").read_text())["dataset_revision"]
        == "beir-files-sha256:abc"
    )
    assert json.loads((folder / "model_meta.json").read_text())["revision"] == sha
    assert done.skipped == ["m/bioasq: MTEB has no task for this dataset"]


# --- MTEB: reading a folder as a reference column ------------------------------------------------


def test_mteb_round_trip_gives_our_numbers_as_a_reference_column(tmp_path):
    results = list(ResultsStore(COMMITTED))
    export_results(results, "mteb", tmp_path)
    folder = tmp_path / "sentence-transformers__all-MiniLM-L6-v2"
    for metric in ("ndcg@10", "recall@100", "map@10", "mrr@10", "p@10", "ndcg@1000"):
        board = leaderboard(results, metric=metric, references=[RefSpec.parse(f"mteb:{folder}")])
        (column,) = board.reference_columns
        assert column == "sentence-transformers/all-MiniLM-L6-v2 [MTEB files]"
        assert any(
            n.startswith(f"`{column}`: {metric} of") and "read from the MTEB result files in" in n
            for n in board.notes
        )
        for dataset in ("scifact", "nfcorpus"):
            assert (
                board.values.loc[dataset, column]
                == ResultsStore(COMMITTED).load("all-MiniLM-L6-v2", dataset).metrics[metric]
            )
        assert board.values.loc[AVERAGE, column] == board.values.loc[AVERAGE, "all-MiniLM-L6-v2"]


def test_table_cli_reads_an_mteb_folder(tmp_path):
    export_results(list(ResultsStore(COMMITTED)), "mteb", tmp_path)
    folder = tmp_path / "bm25" / "no_revision_available"
    out = CliRunner().invoke(
        cli,
        [
            "table",
            "--results-dir",
            str(COMMITTED),
            "--reference",
            f"mteb:{folder}",
            "--format",
            "csv",
            "--diff-against",
            "bm25",
        ],
    )
    assert out.exit_code == 0, out.output
    frame = pd.read_csv(pd.io.common.StringIO(out.output), comment="#")
    assert list(frame["Δ ours−ref"]) == [0.0, 0.0, 0.0]
    assert "bm25 [MTEB files]" in frame.columns


def test_mteb_prefix_still_names_the_bundled_source():
    board = leaderboard(list(ResultsStore(COMMITTED)), references=[RefSpec.parse("mteb:gtr-t5-base")])
    assert board.reference_columns == ["gtr-t5-base [mteb-results]"]
    with pytest.raises(ValueError, match="nor is 'no-such-dir' a folder of MTEB result files"):
        leaderboard(list(ResultsStore(COMMITTED)), references=[RefSpec.parse("mteb:no-such-dir")])


def _task_file(folder: Path, task: str, scores, **top) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    record = {
        "dataset_revision": "r",
        "task_name": task,
        "mteb_version": "1.12.75",
        "evaluation_time": 1.0,
        "scores": scores,
        **top,
    }
    (folder / f"{task}.json").write_text(json.dumps(record))


def test_reader_handles_real_world_variants(tmp_path):
    folder = tmp_path / "org__model" / "abc"
    entry = {
        "hf_subset": "default",
        "languages": ["eng-Latn"],
        "main_score": 0.5,
        "ndcg_at_10": 0.5,
        "recall_at_100": 0.9,
        "nauc_ndcg_at_10_max": 0.1,
        "mrr_at_10": 0.4,
    }
    _task_file(folder, "SciFact", {"test": [entry], "train": [dict(entry, ndcg_at_10=0.9)]})
    _task_file(
        folder, "MSMARCO", {"dev": [dict(entry, ndcg_at_10=0.41)], "test": [dict(entry, ndcg_at_10=0.7)]}
    )
    # A file written before mteb 1.11: metrics directly under the split, no task_name.
    (folder / "NFCorpus.json").write_text(
        json.dumps({"mteb_dataset_name": "NFCorpus", "test": {"ndcg_at_10": 0.3}})
    )
    _task_file(folder, "Banking77Classification", {"test": [entry]})
    for i, forum in enumerate(mteb.CQADUPSTACK_SUBSETS):
        _task_file(folder, mteb.TASKS[f"cqadupstack/{forum}"], {"test": [dict(entry, ndcg_at_10=i / 10)]})
    model = mteb.read_model_folder(tmp_path)  # the root: its only model and revision are found
    assert (model.name, model.revision) == ("org/model", "abc")
    assert model.scores["scifact"] == {"ndcg@10": 0.5, "recall@100": 0.9, "mrr@10": 0.4}
    assert model.scores["msmarco"]["ndcg@10"] == 0.41  # the dev split
    assert model.scores["nfcorpus"] == {"ndcg@10": 0.3}
    assert model.scores["cqadupstack"]["ndcg@10"] == pytest.approx(sum(range(12)) / 10 / 12)
    assert not any(d.startswith("cqadupstack/") for d in model.scores)
    assert any("Banking77Classification" in n for n in model.notes)


def test_reader_cqadupstack_aggregate_and_partial(tmp_path):
    entry = {"hf_subset": "default", "languages": ["eng-Latn"], "main_score": 0.2, "ndcg_at_10": 0.2}
    _task_file(tmp_path / "a", "CQADupstackRetrieval", {"test": [entry]})
    assert mteb.read_model_folder(tmp_path / "a").scores["cqadupstack"] == {"ndcg@10": 0.2}
    _task_file(tmp_path / "b", "CQADupstackTexRetrieval", {"test": [entry]})
    partial = mteb.read_model_folder(tmp_path / "b")
    assert "cqadupstack" not in partial.scores and "only 1 of 12" in partial.notes[0]


def test_reader_errors_name_the_problem(tmp_path):
    _task_file(
        tmp_path / "m1" / "r1",
        "SciFact",
        {"test": [{"hf_subset": "default", "main_score": 1, "ndcg_at_10": 1}]},
    )
    _task_file(
        tmp_path / "m2" / "r1",
        "SciFact",
        {"test": [{"hf_subset": "default", "main_score": 1, "ndcg_at_10": 1}]},
    )
    with pytest.raises(DataError, match="expected one MTEB model or revision folder here, found: m1, m2"):
        mteb.read_model_folder(tmp_path)
    _task_file(tmp_path / "bad", "SciFact", {"dev": [{"hf_subset": "default", "main_score": 1}]})
    with pytest.raises(DataError, match="SciFact.json: no scores for split 'test'"):
        mteb.read_model_folder(tmp_path / "bad")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "SciFact.json").write_text("{")
    with pytest.raises(DataError, match="SciFact.json:1: invalid JSON"):
        mteb.read_model_folder(tmp_path / "broken")


@pytest.mark.slow
def test_exported_files_load_with_mtebs_own_reader(tmp_path):
    """mteb 2.x (`TaskResult.from_disk`, `ResultCache.load_results`) reads what we write."""
    mteb_pkg = pytest.importorskip("mteb")
    results = list(ResultsStore(COMMITTED))
    export_results(results, "mteb", tmp_path / "results")
    for r in results:
        folder = mteb.model_folder(tmp_path / "results", mteb.model_name(r), mteb.revision_folder(r))
        task = mteb_pkg.TaskResult.from_disk(folder / f"{mteb.TASKS[r.dataset]}.json")
        assert task.task_name == mteb.TASKS[r.dataset]
        assert task.get_score() == pytest.approx(r.metrics["ndcg@10"], abs=1e-12)
        scores = task.scores["test"][0]
        for metric in MAPPED:
            assert scores[mteb.mteb_key(metric)] == pytest.approx(r.metrics[metric], abs=1e-12)
    cache = mteb_pkg.ResultCache(cache_path=tmp_path)
    models = sorted({mteb.model_name(r) for r in results})
    assert len(models) == len({r.system for r in results}) >= 3  # bm25, a dense model, a fused run
    bench = cache.load_results(models=models, tasks=["SciFact", "NFCorpus"], include_remote=False)
    found = {(m.model_name, t.task_name): t.get_score() for m in bench.model_results for t in m.task_results}
    assert found == pytest.approx(
        {(mteb.model_name(r), mteb.TASKS[r.dataset]): r.metrics["ndcg@10"] for r in results}
    )


# --- TREC, ranx, CSV ---------------------------------------------------------------------------


def test_trec_export_copies_runs_and_writes_qrels(demo, tmp_path):
    done = export_results(list(ResultsStore(demo)), "trec", tmp_path / "out")
    for system in ("alpha", "beta"):
        copied = tmp_path / "out" / system / "demo.run.trec.gz"
        assert copied.read_bytes() == (ResultsStore(demo).load(system, "demo").run_path).read_bytes()
    qrels_file = tmp_path / "out" / "qrels" / "demo.test.qrels"
    assert qrels_file in done.written and not done.notes
    assert read_qrels_any(qrels_file) == read_qrels(DEMO / "qrels" / "test.tsv")[0]


def test_ranx_and_csv_exports_hold_the_stored_numbers(demo, tmp_path):
    results = list(ResultsStore(demo))
    export_results(results, "ranx", tmp_path / "ranx")
    run = json.loads((tmp_path / "ranx" / "alpha" / "demo.run.json").read_text())
    assert run == read_trec_run(ResultsStore(demo).load("alpha", "demo").run_path)
    assert (
        json.loads((tmp_path / "ranx" / "qrels" / "demo.test.json").read_text())
        == read_qrels(DEMO / "qrels" / "test.tsv")[0]
    )
    export_results(results, "csv", tmp_path / "csv")
    long = pd.read_csv(tmp_path / "csv" / "per_query.csv", dtype={"query_id": str})
    wide = long.pivot_table(index=["system", "query_id"], columns="metric", values="value")
    for r in results:
        for metric, scores in r.per_query.items():
            for qid, value in scores.items():
                assert wide.loc[(r.system, qid), metric] == value
    means = pd.read_csv(tmp_path / "csv" / "metrics.csv").set_index(["system", "metric"])["value"]
    assert means[("beta", "ndcg@10")] == ResultsStore(demo).load("beta", "demo").metrics["ndcg@10"]


def test_export_notes_when_qrels_cannot_be_found(tmp_path):
    results = make_demo_results(tmp_path / "results")
    record = json.loads((results / "alpha" / "demo.json").read_text())
    record["manifest"]["dataset"]["path"] = str(tmp_path / "gone")
    record["manifest"]["dataset"].pop("path_from_results", None)  # the folder is gone by either route
    (results / "alpha" / "demo.json").write_text(json.dumps(record))
    done = export_results([ResultsStore(results).load("alpha", "demo")], "ranx", tmp_path / "out")
    assert not (tmp_path / "out" / "qrels").exists()
    assert "no qrels for demo" in done.notes[0] and "--data-dir" in done.notes[0]
    done = export_results(
        [ResultsStore(results).load("alpha", "demo")], "ranx", tmp_path / "out", data_dir=DEMO.parent
    )
    assert (tmp_path / "out" / "qrels" / "demo.test.json").is_file() and not done.notes


def test_export_cli_filters_and_reports(demo, tmp_path):
    out = CliRunner().invoke(
        cli,
        [
            "export",
            "--results-dir",
            str(demo),
            "--format",
            "csv",
            "--output",
            str(tmp_path / "o"),
            "--system",
            "beta",
        ],
    )
    assert out.exit_code == 0, out.output
    assert set(pd.read_csv(tmp_path / "o" / "metrics.csv")["system"]) == {"beta"}
    bad = CliRunner().invoke(
        cli,
        [
            "export",
            "--results-dir",
            str(demo),
            "--format",
            "csv",
            "--output",
            str(tmp_path / "o"),
            "--system",
            "nobody",
        ],
    )
    assert bad.exit_code == 2 and "--system 'nobody' matches nothing stored" in bad.output


@pytest.mark.slow
def test_ranx_scores_the_exported_files_as_we_do(tmp_path, beir_data):
    """ranx reads the Run/Qrels JSON and computes the same NDCG@10 and Recall@100 as the stored
    results (SciFact has no tied scores to order differently).  numba's JIT is off in the child: ranx's
    first compile takes minutes on two cores, and the numbers do not depend on it."""
    pytest.importorskip("ranx")
    results = [r for r in ResultsStore(COMMITTED) if r.dataset == "scifact"]
    export_results(results, "ranx", tmp_path, data_dir=beir_data)
    script = (
        "import json, sys, ranx\n"
        "q = ranx.Qrels.from_file(sys.argv[1])\n"
        "out = {}\n"
        "for name in sys.argv[2:]:\n"
        "    out[name] = ranx.evaluate(q, ranx.Run.from_file(sys.argv[1].rsplit('/qrels/', 1)[0] + '/' + name + "
        "'/scifact.run.json'), ['ndcg@10', 'recall@100', 'map@100'])\n"
        "print(json.dumps({k: {m: float(v) for m, v in d.items()} for k, d in out.items()}))\n"
    )
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            str(tmp_path / "qrels" / "scifact.test.json"),
            *(r.system for r in results),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    scored = json.loads(proc.stdout.strip().splitlines()[-1])
    for r in results:
        for metric in ("ndcg@10", "recall@100", "map@100"):
            assert scored[r.system][metric] == pytest.approx(r.metrics[metric], abs=1e-9), (r.system, metric)


def test_demo_results_record_their_identity_and_are_inputs_like_any_run(demo):
    """The shared demo store is written as the pipeline writes results: fusion takes it as input."""
    from demo_results import demo_spec

    from gtr_eval.api import fuse as api_fuse
    from gtr_eval.data.units import resolve_dataset
    from gtr_eval.fusion import fuse
    from gtr_eval.identity import Identity

    (unit,) = resolve_dataset("demo")
    alpha = ResultsStore(demo).load("alpha", "demo")
    assert alpha.identity == Identity.of(demo_spec("alpha"), unit.fingerprint())
    assert alpha.manifest["dataset"]["files_sha256"] == dict(unit.fingerprint().files_sha256)
    lines: list[str] = []
    done = api_fuse(["alpha", "beta"], ["demo"], results_dir=demo, no_cache=True, progress=False,
                    echo=lines.append)  # fmt: skip
    assert not done.failures and [r.system for r in done] == ["rrf(alpha+beta)"]
    runs = [read_trec_run(ResultsStore(demo).load(s, "demo").run_path) for s in ("alpha", "beta")]
    assert read_trec_run(done[0].run_path) == fuse(runs, "rrf", top_k=1000)
    again = api_fuse(["alpha", "beta"], ["demo"], results_dir=demo, no_cache=True, progress=False,
                     echo=lines.append)  # fmt: skip
    assert not again.failures and "[skip] rrf(alpha+beta) on demo: already done" in lines


# --- import ------------------------------------------------------------------------------------


def _write_run(path: Path, run: dict[str, dict[str, float]], tag: str = "pyserini") -> Path:
    write_trec_run(run, path, tag=tag)
    return path


def test_import_scores_like_evaluate_and_records_where_it_came_from(demo, tmp_path):
    data = load_beir_folder(DEMO, "test")
    run = demo_run(data, "external", 0.4)
    run_file = _write_run(tmp_path / "ext.trec", run)
    done = import_trec_run(run_file, demo, "pyserini-bm25", "demo", qrels_file=DEMO / "qrels" / "test.tsv")
    stored = ResultsStore(demo).load("pyserini-bm25", "demo")
    expected = evaluate(data.qrels, run)
    assert stored.metrics == expected.metrics and stored.per_query == expected.per_query
    assert done.warnings == []
    provenance = stored.spec["imported"]
    assert provenance["run_file"] == str(run_file.resolve())
    assert provenance["run_sha256"] == __import__("hashlib").sha256(run_file.read_bytes()).hexdigest()
    assert provenance["qrels_file"] == str((DEMO / "qrels" / "test.tsv").resolve())
    # the judgments are the qrels file alone, named as it is in its folder
    assert stored.manifest["dataset"]["files_sha256"] == {"test.tsv": data.checksums["qrels/test.tsv"]}
    assert stored.identity.dataset["files_sha256"] == {"test.tsv": data.checksums["qrels/test.tsv"]}
    assert stored.identity.system["inputs"] == [
        {"system": "ext.trec", "run_sha256": provenance["run_sha256"]}
    ]
    assert read_trec_run(stored.run_path) == read_trec_run(run_file)
    # the same file and judgments again: served as done, not rewritten
    before = stored.path.read_bytes()
    again = import_trec_run(run_file, demo, "pyserini-bm25", "demo", qrels_file=DEMO / "qrels" / "test.tsv")
    assert again.path == stored.path and again.result.metrics == stored.metrics and again.warnings == []
    assert stored.path.read_bytes() == before
    # another file under the same name: refused, the stored result kept
    other = _write_run(tmp_path / "ext.trec", demo_run(data, "other", 0.1))
    with pytest.raises(Refused, match=r"with other input runs \(the run of ext.trec differs\)") as refused:
        import_trec_run(other, demo, "pyserini-bm25", "demo", qrels_file=DEMO / "qrels" / "test.tsv")
    assert refused.value.stage == "reuse" and str(refused.value).endswith(
        "; use another SYSTEM name to keep both, or --overwrite to replace it"
    )
    assert stored.path.read_bytes() == before
    # the same file scored with other judgments (the dataset's queries and qrels): refused too
    _write_run(run_file, run)
    with pytest.raises(Refused, match="queries.jsonl"):
        import_trec_run(run_file, demo, "pyserini-bm25", "demo", data_dir=DEMO.parent)
    assert stored.path.read_bytes() == before
    assert (
        import_trec_run(
            run_file, demo, "pyserini-bm25", "demo", data_dir=DEMO.parent, overwrite=True
        ).warnings
        == []
    )


def test_import_warns_about_missing_queries_and_other_judgments(demo, tmp_path):
    data = load_beir_folder(DEMO, "test")
    run = demo_run(data, "external", 0.4)
    del run["q1"]
    run["unjudged"] = {"d01": 1.0}
    other_qrels = tmp_path / "qrels.txt"
    other_qrels.write_text(
        "".join(
            f"{q} 0 {d} {g}\n"
            for q, docs in data.qrels.items()
            for d, g in docs.items()
            if (q, d) != ("q2", "d04")
        )
    )
    done = import_trec_run(_write_run(tmp_path / "r.trec", run), demo, "ext", "demo", qrels_file=other_qrels)
    assert any("1 of 8 judged queries have no results" in w for w in done.warnings)
    assert any("1 queries of the run have no judgments" in w for w in done.warnings)
    assert any("alpha on demo was scored with a different qrels file" in w for w in done.warnings)
    assert ResultsStore(demo).load("ext", "demo").per_query["ndcg@10"]["q1"] == 0.0


def test_import_of_the_same_judgments_in_trec_format_does_not_warn(demo, tmp_path):
    data = load_beir_folder(DEMO, "test")
    trec_qrels = tmp_path / "qrels.trec"
    trec_qrels.write_text(
        "".join(f"{q} 0 {d} {g}\n" for q, docs in data.qrels.items() for d, g in docs.items())
    )
    run_file = _write_run(tmp_path / "r.trec", demo_run(data, "x", 0.3))
    assert import_trec_run(run_file, demo, "ext", "demo", qrels_file=trec_qrels).warnings == []


def test_import_cli_and_bad_input(demo, tmp_path):
    data = load_beir_folder(DEMO, "test")
    run_file = _write_run(tmp_path / "r.trec.gz", demo_run(data, "x", 0.5))
    runner = CliRunner()
    args = [
        "import",
        "--results-dir",
        str(demo),
        "--run",
        str(run_file),
        "--name",
        "anserini",
        "--dataset",
        "demo",
        "--data-dir",
        str(DEMO.parent),
    ]
    out = runner.invoke(cli, args)
    assert out.exit_code == 0, out.output
    assert "[imported] anserini on demo: nDCG@10" in out.output
    stored = ResultsStore(demo).load("anserini", "demo")
    before = stored.path.read_bytes()
    again = runner.invoke(cli, args)  # the same file again: served as done, not rewritten
    assert again.exit_code == 0, again.output
    assert "[imported] anserini on demo: nDCG@10" in again.output and stored.path.read_bytes() == before
    other = _write_run(tmp_path / "r.trec.gz", demo_run(data, "y", 0.1))  # another file, the same name
    refused = runner.invoke(cli, args)
    assert refused.exit_code == 3
    assert (
        "[refused] anserini on demo was made with other input runs (the run of r.trec.gz differs); use another "
        "SYSTEM name to keep both, or --overwrite to replace it" in refused.output
    )
    assert stored.path.read_bytes() == before
    replaced = runner.invoke(cli, [*args, "--overwrite"])
    assert replaced.exit_code == 0, replaced.output
    assert read_trec_run(ResultsStore(demo).load("anserini", "demo").run_path) == read_trec_run(other)
    bad = tmp_path / "bad.trec"
    bad.write_text("q1 Q0 d01 1 0.5 tag\nq1 Q0 d02 2 oops tag\n")
    out = runner.invoke(cli, [*args[:4], str(bad), *args[5:], "--overwrite"])
    assert out.exit_code != 0 and "bad.trec:2: score 'oops' is not a number" in out.output
    out = runner.invoke(
        cli,
        [
            "import",
            "--results-dir",
            str(demo),
            "--run",
            str(run_file),
            "--name",
            "a/b",
            "--dataset",
            "demo",
            "--data-dir",
            str(DEMO.parent),
        ],
    )
    assert out.exit_code != 0 and "invalid system name" in out.output
    out = runner.invoke(
        cli,
        [
            "import",
            "--results-dir",
            str(demo),
            "--run",
            str(run_file),
            "--name",
            "z",
            "--dataset",
            "scifact",
            "--data-dir",
            str(tmp_path),
        ],
    )
    assert out.exit_code != 0 and "no BEIR dataset here" in out.output


@pytest.mark.slow
def test_imported_trec_run_sits_in_the_table_with_a_significance_mark(tmp_path, beir_data):
    """Import BM25's own SciFact run (identical numbers) and a copy with each query's top 10 reversed
    (worse): both appear in `gtr-eval table`, the reversed one marked significantly worse than bm25."""
    results = tmp_path / "results"
    shutil.copytree(COMMITTED, results, ignore=shutil.ignore_patterns("plots", "tables"))
    original = ResultsStore(results).load("bm25", "scifact").run_path
    import_trec_run(original, results, "bm25-again", "scifact", data_dir=beir_data)
    again, bm25 = (
        ResultsStore(results).load("bm25-again", "scifact"),
        ResultsStore(results).load("bm25", "scifact"),
    )
    # The same run, imported: every metric and per-query score is the stored one, judged@k included.
    assert again.metrics == bm25.metrics and again.per_query == bm25.per_query
    assert set(judged_names()) <= set(again.metrics)

    lines = gzip.open(original, "rt").read().splitlines()
    by_query: dict[str, list[str]] = {}
    for line in lines:
        by_query.setdefault(line.split()[0], []).append(line)
    reversed_run = tmp_path / "reversed.trec"
    with open(reversed_run, "w") as fh:
        for rows in by_query.values():
            top = rows[:10]
            scores = [r.split()[4] for r in top]
            for rank, (row, score) in enumerate(zip(reversed(top), scores, strict=True), start=1):
                q, _, doc, _, _, _ = row.split()
                fh.write(f"{q} Q0 {doc} {rank} {score} reversed\n")
            fh.writelines(r + "\n" for r in rows[10:])
    done = import_trec_run(reversed_run, results, "bm25-reversed", "scifact", data_dir=beir_data)
    assert done.result.metrics["ndcg@10"] < bm25.metrics["ndcg@10"] - 0.1
    assert done.result.metrics["recall@10"] == bm25.metrics["recall@10"]

    out = CliRunner().invoke(
        cli, ["table", "--results-dir", str(results), "--baseline", "bm25", "--format", "csv"]
    )
    assert out.exit_code == 0, out.output
    frame = pd.read_csv(pd.io.common.StringIO(out.output), comment="#", keep_default_na=False).set_index(
        "dataset"
    )
    assert frame.loc["scifact", "bm25-reversed sig"] == WORSE
    assert frame.loc["scifact", "bm25-again sig"] == ""
    assert float(frame.loc["scifact", "bm25-reversed"]) == done.result.metrics["ndcg@10"]  # CSV: every digit
    assert frame.loc["nfcorpus", "bm25-reversed"] == ""  # not imported there
