"""Mistakes caught before any work, in one clear line (as a user types the commands): model and dataset
typos with the closest name suggested, folders that are not there, composed systems without stored
inputs, runs of another dataset, JSON that does not parse, Ctrl-C, variants under their own name, data
paths found from any working directory, and CI that cannot go green by skipping."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_process import GTR_EVAL
from click.testing import CliRunner

from gtr_eval.cli import cli
from gtr_eval.paths import BUNDLED
from gtr_eval.results import ResultsStore

ROOT = Path(__file__).resolve().parents[1]
DEMO = BUNDLED / "demo"


def _cli(*args: str):
    return CliRunner().invoke(cli, list(args))


def _no_downloads(monkeypatch):
    """Any download attempt fails the test: a mistake must be said before one starts."""
    from gtr_eval.data import download

    monkeypatch.setattr(download, "download", lambda *a, **k: pytest.fail("a download was started"))


@pytest.mark.parametrize(
    "model, said",
    [
        ("bm-25", "unknown model 'bm-25'; did you mean bm25?"),
        ("gtr-t5-bse", "unknown model 'gtr-t5-bse'; did you mean gtr-t5-base?"),
        ("./my-modle", "./my-modle: no such model folder"),
        ("/no/such/model", "/no/such/model: no such model folder"),
    ],
)
def test_a_model_typo_is_one_line_with_the_closest_name_before_any_download(
    tmp_path, monkeypatch, model, said
):
    _no_downloads(monkeypatch)
    data = tmp_path / "data"
    out = _cli("run", "-m", "bm25", "-m", model, "-d", "scifact", "--data-dir", str(data), "--results-dir",
               str(tmp_path / "r"))  # fmt: skip
    assert out.exit_code == 2, out.output
    (line,) = [x for x in out.output.splitlines() if x.strip()]
    assert line.startswith(f"Error: {said}")
    assert not data.exists() and not (tmp_path / "r").exists()  # nothing was run, nothing fetched
    plan = _cli("run", "-m", model, "-d", "scifact", "--plan", "--data-dir", str(data))
    assert plan.exit_code == 2 and said in plan.output  # --plan flags it too


def test_model_names_are_case_blind_for_bm25(tmp_path):
    out = _cli("run", "-m", "BM25", "-d", "demo", "--results-dir", str(tmp_path), "--quiet")
    assert out.exit_code == 0, out.output
    assert ResultsStore(tmp_path).load("bm25", "demo").metrics["ndcg@10"] == pytest.approx(0.9463, abs=5e-5)


@pytest.mark.parametrize(
    "dataset, said",
    [
        ("scifactt", "unknown dataset 'scifactt'; did you mean scifact?"),
        ("/path/to/scifactt", "/path/to/scifactt: no such folder"),
        (str(BUNDLED), f"{BUNDLED}: not a BEIR folder (it has no corpus.jsonl)"),
    ],
)
def test_a_dataset_typo_or_a_missing_folder_is_said_before_any_download(tmp_path, monkeypatch, dataset, said):
    _no_downloads(monkeypatch)
    out = _cli("run", "-m", "bm25", "-d", dataset, "--data-dir", str(tmp_path / "data"))
    assert out.exit_code == 2, out.output
    assert out.output.strip().startswith(f"Error: {said}") and len(out.output.strip().splitlines()) == 1


def test_a_folder_near_a_typo_is_suggested(tmp_path, monkeypatch):
    shutil.copytree(DEMO, tmp_path / "scifact")
    monkeypatch.chdir(tmp_path)
    out = _cli("run", "-m", "bm25", "-d", "./scifactt")
    assert out.exit_code == 2 and "./scifactt: no such folder; did you mean scifact?" in out.output


@pytest.mark.parametrize("command", ["fuse", "rerank"])
def test_a_composed_system_without_stored_inputs_is_refused_before_any_download(
    tmp_path, monkeypatch, command
):
    _no_downloads(monkeypatch)
    results = tmp_path / "r"
    assert _cli("run", "-m", "bm25", "-d", "demo", "--results-dir", str(results), "--quiet").exit_code == 0
    args = ["-d", "scifact", "--data-dir", str(tmp_path / "data"), "--results-dir", str(results)]
    if command == "fuse":
        out = _cli("fuse", "bm25", "bm26", *args)
        said = "fuse: no stored result of bm25 on scifact"
    else:
        out = _cli("rerank", "--run", "bm25", "-m", "ms-marco-MiniLM-L6-v2", *args)
        said = "rerank: no stored result of bm25 on scifact"
    assert out.exit_code == 2, out.output
    assert said in out.output and "run it first" in out.output
    assert not (tmp_path / "data").exists()
    typo = _cli("fuse", "bm25", "bm26", "-d", "demo", "--results-dir", str(results))
    assert typo.exit_code == 2 and "no stored result of bm26 on demo" in typo.output


def test_a_run_of_another_dataset_is_refused_by_import_and_evaluate(tmp_path):
    results = tmp_path / "r"
    assert _cli("run", "-m", "bm25", "-d", "demo", "--results-dir", str(results), "--quiet").exit_code == 0
    run_file = ResultsStore(results).load("bm25", "demo").run_path
    other = tmp_path / "other-qrels.tsv"
    other.write_text("query-id\tcorpus-id\tscore\nx1\td01\t1\nx2\td02\t1\n")
    out = _cli("evaluate", "--qrels", str(other), "--run", str(run_file))
    assert out.exit_code == 2  # a mistake in what was given, found before scoring
    assert (
        f"none of its 8 queries is judged in {other} (2 judged queries): a run of another dataset or split?"
        in (out.output)
    )
    imported = _cli("import", "--run", str(run_file), "--name", "ext", "--dataset", "demo", "--qrels", str(other),
                    "--results-dir", str(results))  # fmt: skip
    assert imported.exit_code == 2 and "none of its 8 queries is judged" in imported.output
    assert not (results / "ext").exists()
    # a small overlap is scored, with a warning that counts it
    some = tmp_path / "some-qrels.tsv"
    lines = (DEMO / "qrels" / "test.tsv").read_text().splitlines()
    some.write_text("\n".join([lines[0], *[x for x in lines[1:] if x.split("\t")[0] in ("q1", "q2")]]) + "\n")
    warned = _cli("evaluate", "--qrels", str(some), "--run", str(run_file))
    assert warned.exit_code == 0
    assert f"warning: only 2 of the run's 8 queries are among the 2 judged in {some}" in warned.output


def test_json_that_does_not_parse_is_named_by_line_and_column(tmp_path):
    bad = shutil.copytree(DEMO, tmp_path / "bad")
    lines = (bad / "corpus.jsonl").read_text().splitlines(keepends=True)
    lines[2] = '{"_id": "d03", "title": "", "text": "cut short\n'
    (bad / "corpus.jsonl").write_text("".join(lines))
    column = lines[2].index('"cut') + 1  # where the string that never ends starts
    out = _cli("run", "-m", "bm25", "-d", str(bad), "--results-dir", str(tmp_path / "r"), "--quiet")
    assert out.exit_code == 3
    assert (
        f"[fail] bm25 on bad: data failed: {bad / 'corpus.jsonl'}:3: invalid JSON at column {column}: "
        "unterminated string" in out.output
    )
    assert "DataError" not in out.output
    assert "| system" not in out.output  # no empty results table


def test_run_name_stores_a_variant_beside_the_default_system(tmp_path):
    results = tmp_path / "r"
    assert _cli("run", "-m", "bm25", "-d", "demo", "--results-dir", str(results), "--quiet").exit_code == 0
    variant = _cli("run", "-m", "bm25", "--bm25-k1", "0.9", "--name", "bm25-k0.9", "-d", "demo", "--results-dir",
                   str(results), "--quiet")  # fmt: skip
    assert variant.exit_code == 0, variant.output
    default, other = (
        ResultsStore(results).load("bm25", "demo"),
        ResultsStore(results).load("bm25-k0.9", "demo"),
    )
    assert default.spec["bm25"]["k1"] == 1.5 and other.spec["bm25"]["k1"] == 0.9
    assert other.spec["system"] == "bm25-k0.9" and other.identity.digest != default.identity.digest
    assert "bm25-k0.9" in _cli("table", "--results-dir", str(results)).output
    two = _cli("run", "-m", "bm25", "-m", "all-MiniLM-L6-v2", "--name", "x", "-d", "demo", "--results-dir",
               str(results))  # fmt: skip
    assert two.exit_code == 2 and "--name names one system" in two.output


def test_data_paths_in_manifests_are_found_from_another_working_directory(tmp_path, monkeypatch):
    """A run with a relative `-d` from one folder; the report, from another, still finds the texts."""
    work = tmp_path / "work"
    shutil.copytree(DEMO, work / "data" / "mine")
    monkeypatch.chdir(work)
    assert _cli("run", "-m", "bm25", "-d", "data/mine", "--results-dir", "r", "--quiet").exit_code == 0
    stored = ResultsStore(work / "r").load("bm25", "mine").manifest["dataset"]
    assert stored["path"] == str((work / "data" / "mine").resolve())
    assert stored["path_from_results"] == os.path.join("..", "data", "mine")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    out = _cli("report", "--results-dir", str(work / "r"), "--output", "site")
    assert out.exit_code == 0, out.output
    page = (elsewhere / "site" / "datasets" / "mine.html").read_text()
    data = json.loads(page.split('id="report-data">', 1)[1].split("</script>", 1)[0])
    assert data["textMissing"] is None and data["textSource"] == str((work / "data" / "mine").resolve())
    # and after the two folders move together, through the path relative to the results folder
    moved = tmp_path / "moved"
    shutil.move(work, moved)
    out = _cli("report", "--results-dir", str(moved / "r"), "--output", "site2")
    page = (elsewhere / "site2" / "datasets" / "mine.html").read_text()
    data = json.loads(page.split('id="report-data">', 1)[1].split("</script>", 1)[0])
    assert out.exit_code == 0 and data["textMissing"] is None
    assert Path(data["textSource"]).resolve() == (moved / "data" / "mine").resolve()


def test_the_python_api_returns_failures_for_rerank_and_fuse_as_for_run(tmp_path):
    """A composed system whose input is missing on one dataset: that pair fails (stage `input`), the
    others are stored, and the API says so as `run` does (a list of results with `.failures`)."""
    from tiny_models import build_tiny_cross_encoder

    from gtr_eval import api

    results, copy = tmp_path / "r", shutil.copytree(DEMO, tmp_path / "demo-copy")
    quiet = dict(results_dir=results, progress=False, echo=lambda s: None, failures="collect")
    api.run(["bm25"], ["demo", str(copy)], **quiet)
    api.run(["bm25"], ["demo"], bm25_k1=0.9, name="bm25-k0.9", **quiet)
    fused = api.fuse(["bm25", "bm25-k0.9"], ["demo", str(copy)], **quiet)
    assert [r.dataset for r in fused] == ["demo"]
    assert [(f.dataset, f.stage) for f in fused.failures] == [("demo-copy", "input")]
    assert "fuse needs a stored result of bm25-k0.9 on demo-copy" in fused.failures[0].error
    (results / "bm25" / "demo-copy.json").unlink()
    model = build_tiny_cross_encoder(tmp_path / "tiny-ce")
    reranked = api.rerank(
        "bm25", [str(model)], ["demo", str(copy)], depth=5, cache_dir=tmp_path / "c", **quiet
    )
    assert [r.dataset for r in reranked] == ["demo"]
    assert [(f.dataset, f.stage) for f in reranked.failures] == [("demo-copy", "input")]


def test_under_ci_a_skipped_test_is_a_failed_one(tmp_path):
    """`.ci/run` sets CI=true; then a skip (missing data, Chromium, a test dependency) fails the suite."""
    (tmp_path / "conftest.py").write_text((ROOT / "tests" / "conftest.py").read_text())
    (tmp_path / "test_x.py").write_text(
        "import pytest\n\ndef test_needs_data():\n    pytest.skip('real BEIR data not found at /x')\n\n"
        "def test_fine():\n    assert True\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    run = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)]
    local = subprocess.run(run, env=env, capture_output=True, text=True, cwd=tmp_path)
    ci = subprocess.run(run, env=dict(env, CI="true"), capture_output=True, text=True, cwd=tmp_path)
    assert local.returncode == 0 and "1 skipped" in local.stdout, local.stdout
    assert ci.returncode == 1 and "skipped under CI, which must test everything" in ci.stdout, ci.stdout
    assert (ROOT / ".ci" / "run").read_text().count("export CI=true") == 1


@pytest.mark.slow
def test_ctrl_c_says_how_many_pairs_are_done_and_exits_130(beir_data, tmp_path):
    results = tmp_path / "r"
    cmd = [*GTR_EVAL, "run", "-m", "bm25", "-m", "all-MiniLM-L6-v2", "-d", str(beir_data / "nfcorpus"),
           "--results-dir", str(results), "--cache-dir", str(tmp_path / "c"), "--quiet"]  # fmt: skip
    proc = subprocess.Popen(
        cmd, stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT))
    )
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if line.startswith("[backend] all-MiniLM-L6-v2"):
            break
    time.sleep(10)  # well into encoding the corpus
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    assert proc.wait(timeout=120) == 130, rest
    said = rest.strip().splitlines()[-1]
    assert re.fullmatch(
        r"interrupted: \d+ of \d+ corpus shards saved \([\d,]+ of 3,633 docs\); 1 pair done; "
        r"rerun the same command to resume",
        said,
    ), said
    assert "Traceback" not in rest and any(x.startswith("[done] bm25 on nfcorpus") for x in seen)
    again = subprocess.run(cmd[:6] + cmd[8:], capture_output=True, text=True, timeout=300)  # -m bm25 only
    assert again.returncode == 0 and "[skip] bm25 on nfcorpus: already done" in again.stderr
    assert not [p for p in results.rglob("*") if p.name.endswith(".tmp")]
