"""Report commands as a user types them (issue 22): metric names as papers write them, an unknown one
in one line with the closest name (exit 2); clean CSV from `table --format csv`; an Average per column
when a reference lacks the metric; `paper --check` against the shipped golden file, with pairs not run
MISSING rather than FAIL; `paper` printing only what was run; `paper --reproduce` without a GPU; and
`gtr-eval references`.  All on a copy of the committed results."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from gtr_eval import api
from gtr_eval.cli import cli
from gtr_eval.report import paper
from gtr_eval.report.tables import AVERAGE, RefSpec, load_references, reference_catalogue, resolve_reference

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "results"
SYSTEMS = ["all-MiniLM-L6-v2", "bm25", "rrf(bm25+all-MiniLM-L6-v2)"]


def _cli(*args: str, input: str | None = None):
    return CliRunner().invoke(cli, list(args), input=input)


@pytest.fixture
def results(tmp_path) -> Path:
    """A copy of the committed results (golden.yaml included)."""
    copy = tmp_path / "results"
    shutil.copytree(COMMITTED, copy, ignore=shutil.ignore_patterns(".locks", "tables", "plots"))
    return copy


@pytest.fixture
def bm25_only(tmp_path) -> Path:
    """A user's own results folder: bm25 on SciFact and NFCorpus, no golden file of its own."""
    own = tmp_path / "mine"
    own.mkdir()
    shutil.copytree(COMMITTED / "bm25", own / "bm25")
    return own


# --- 1. metric names ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "written, stored",
    [
        ("NDCG@10", "ndcg@10"),
        ("nDCG@10", "ndcg@10"),
        ("R@100", "recall@100"),
        ("Recall@100", "recall@100"),
        ("MRR@10", "mrr@10"),
        ("P@10", "p@10"),
        ("MAP@100", "map@100"),
    ],
)
def test_table_plot_and_paper_take_metric_names_as_papers_write_them(results, tmp_path, written, stored):
    as_written = _cli("table", "--results-dir", str(results), "--metric", written)
    as_stored = _cli("table", "--results-dir", str(results), "--metric", stored)
    assert as_written.exit_code == 0, as_written.output
    assert as_written.stdout == as_stored.stdout
    assert f"Metric: {stored}," in as_written.stdout and "–" not in as_written.stdout.split("Notes:")[0]
    assert api.table(results, metric=written).text == api.table(results, metric=stored).text
    png = tmp_path / "chart.png"
    plotted = _cli("plot", "--results-dir", str(results), "--metric", written, "--output", str(png))
    assert plotted.exit_code == 0, plotted.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = _cli("paper", "--results-dir", str(results), "--metric", written)
    assert printed.exit_code == 0, printed.output
    assert f"GTR paper table, {stored} " in printed.stdout and f"| {paper.NOT_RUN}" not in printed.stdout


@pytest.mark.parametrize("command", [["table"], ["plot", "--output", "chart.png"], ["paper"], ["references"]])
@pytest.mark.parametrize(
    "metric, said",
    [
        ("ndcg@11", "unknown metric 'ndcg@11'; did you mean ndcg@10?"),
        ("NDCG@11", "unknown metric 'NDCG@11'; did you mean ndcg@10?"),
        ("recal@100", "unknown metric 'recal@100'; did you mean recall@100?"),
        ("foo", "unknown metric 'foo' (valid: "),
    ],
)
def test_an_unknown_metric_is_a_usage_error_listing_the_valid_names(
    results, tmp_path, monkeypatch, command, metric, said
):
    monkeypatch.chdir(tmp_path)
    out = _cli(*command, "--results-dir", str(results), "--metric", metric) if command[0] != "references" else (
        _cli(*command, "--metric", metric)
    )  # fmt: skip
    assert out.exit_code == 2, out.output
    (error,) = [line for line in out.stderr.splitlines() if line.startswith("Error:")]
    assert said in error
    assert len(error) < 200 and "see `gtr-eval table --help`" in error  # the closest few, not all of them
    assert not (tmp_path / "chart.png").exists()  # no chart of "n/a" bars
    assert not out.stdout  # nothing printed as if it had worked


def test_the_api_raises_the_same_valueerror():
    with pytest.raises(ValueError, match="unknown metric 'ndcg@11'; did you mean ndcg@10?") as raised:
        api.table(COMMITTED, metric="ndcg@11")
    cli_error = _cli("table", "--results-dir", str(COMMITTED), "--metric", "ndcg@11").stderr
    assert str(raised.value) in cli_error
    with pytest.raises(ValueError, match="unknown metric 'foo'"):
        paper.paper_table([], "foo")


# --- 2. clean CSV ------------------------------------------------------------------------------


def test_table_csv_is_clean_and_its_notes_go_to_stderr(results):
    out = _cli("table", "--results-dir", str(results), "--format", "csv", "--baseline", "bm25")
    assert out.exit_code == 0, out.output
    frame = pd.read_csv(io.StringIO(out.stdout))  # no comment= needed
    assert list(frame["dataset"]) == ["nfcorpus", "scifact", AVERAGE]
    assert list(frame.columns)[:4] == ["dataset", "all-MiniLM-L6-v2", "bm25", "rrf(bm25+all-MiniLM-L6-v2)"]
    assert not frame.isna().any().any() or set(frame.columns[frame.isna().any()]) <= {
        "all-MiniLM-L6-v2 sig",
        "rrf(bm25+all-MiniLM-L6-v2) sig",
    }
    assert "#" not in out.stdout
    notes = out.stderr.splitlines()
    assert notes and all(line.startswith("# ") for line in notes)
    assert any(line.startswith("# Average: plain mean over the table's 2 datasets") for line in notes)


def test_table_csv_notes_option_writes_them_to_a_file(results, tmp_path):
    table, notes = tmp_path / "t.csv", tmp_path / "notes.txt"
    out = _cli("table", "--results-dir", str(results), "--format", "csv", "--output", str(table),
               "--notes", str(notes))  # fmt: skip
    assert out.exit_code == 0, out.output
    assert out.stdout.strip() == str(table) and "#" not in out.stderr  # the notes went to the file
    assert list(pd.read_csv(table)["dataset"]) == ["nfcorpus", "scifact", AVERAGE]
    assert notes.read_text().startswith("# Metric: ndcg@10")
    helped = _cli("table", "--help")
    assert "--notes FILE" in helped.stdout and "pandas.read_csv" in helped.stdout


# --- 3. the Average with a reference that lacks the metric -------------------------------------


def test_a_reference_without_the_metric_leaves_the_other_averages(results):
    out = _cli(
        "table", "--results-dir", str(results), "--reference", "gtr-authors:gtr-base", "--format", "csv"
    )
    assert out.exit_code == 0, out.output
    frame = pd.read_csv(io.StringIO(out.stdout)).set_index("dataset")
    ref = "gtr-base [gtr-authors-release]"
    assert frame[ref].isna().all()  # the source has recall@100 only
    for system in SYSTEMS:
        mean = frame.loc[["nfcorpus", "scifact"], system].mean()
        assert frame.loc[AVERAGE, system] == pytest.approx(mean, abs=1e-12)  # CSV keeps every digit
    assert frame.loc[AVERAGE, "best"] == "rrf(bm25+all-MiniLM-L6-v2)"
    notes = out.stderr
    assert "Average: plain mean over the table's 2 datasets, each column on its own" in notes
    assert f"not compared for best: {ref} (0/2)" in notes
    assert "the source lists no ndcg@10 for it; it lists recall@100" in notes
    # where the reference has every dataset, the plain wording
    full = _cli("table", "--results-dir", str(results), "--reference", "gtr-authors:gtr-base", "--metric",
                "R@100", "--format", "csv")  # fmt: skip
    assert full.exit_code == 0, full.output
    frame = pd.read_csv(io.StringIO(full.stdout)).set_index("dataset")
    assert frame.loc[AVERAGE, ref] == pytest.approx(frame.loc[["nfcorpus", "scifact"], ref].mean(), abs=1e-4)
    assert (
        "# Average: plain mean over the table's 2 datasets, each column on its own, so another column "
        "never changes it." in full.stderr
    )


# --- 4. paper --check on a user's own results --------------------------------------------------


def test_paper_check_of_a_bm25_only_run_uses_the_shipped_golden_file_and_says_missing(bm25_only):
    out = _cli("paper", "--check", "--results-dir", str(bm25_only))
    assert out.exit_code == 0, out.output
    assert "golden file: the one shipped with gtr-eval" in out.stderr
    assert "12 OK, 0 OKISH, 0 FAIL, 24 MISSING" in out.stdout
    assert not [line for line in out.stdout.splitlines() if line.startswith("| FAIL")]
    assert "MISSING (no stored result, not run; not a failure): 24 checks of all-MiniLM-L6-v2" in out.stdout
    rows = api.paper_check(bm25_only)  # no golden file argument
    assert {r.status for r in rows} == {"OK", "MISSING"}
    assert sum(r.status == "MISSING" for r in rows) == 24
    assert all(r.expectation.system != "bm25" for r in rows if r.status == "MISSING")


def test_paper_check_still_fails_on_a_changed_score_and_on_nothing_to_check(bm25_only, tmp_path):
    import json

    path = bm25_only / "bm25" / "scifact.json"
    record = json.loads(path.read_text())
    record["metrics"]["ndcg@10"] += 0.01
    path.write_text(json.dumps(record))
    out = _cli("paper", "--check", "--results-dir", str(bm25_only))
    assert out.exit_code == 1
    assert [line for line in out.stdout.splitlines() if line.startswith("| FAIL")]
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = _cli("paper", "--check", "--results-dir", str(empty))
    assert nothing.exit_code == 2  # nothing to check: a mistake in what was asked
    assert "Error: nothing checked: none of the 36 checks" in nothing.stderr
    missing = _cli("paper", "--check", "--results-dir", str(bm25_only), "--golden", str(tmp_path / "no.yaml"))
    assert missing.exit_code == 2 and "does not exist" in missing.stderr


def test_the_shipped_golden_file_is_the_repositorys_and_is_packaged():
    assert (COMMITTED / "golden.yaml").resolve() == paper.BUNDLED_GOLDEN.resolve()  # one file, linked
    assert '"data/bundled/*.yaml"' in (ROOT / "pyproject.toml").read_text()
    assert paper.default_golden(COMMITTED) == COMMITTED / "golden.yaml"


# --- 5. paper prints what was run --------------------------------------------------------------


def test_paper_prints_only_the_systems_and_datasets_run_unless_all(results):
    out = _cli("paper", "--results-dir", str(results))
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    header = next(line for line in lines if line.startswith("| dataset"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    published = {"MTEB", "MTEB bm25s"}  # each beside the system it is the published figure of
    assert {c for c in columns[1:] if c not in published} == {"BM25", *SYSTEMS[::2]}
    assert f"| {paper.NOT_RUN}" not in out.stdout and "GTR-XXL" not in out.stdout
    rows = [line.split("|")[1].strip() for line in lines if line.startswith("| ") and "dataset" not in line]
    assert rows == ["nfcorpus", "scifact", "nfcorpus", "scifact"]  # two metrics
    assert max(len(line) for line in lines) <= 120  # was 665
    everything = _cli("paper", "--results-dir", str(results), "--all")
    assert everything.exit_code == 0
    assert "| GTR-XXL " in everything.stdout and "| msmarco" in everything.stdout
    assert f"| {paper.NOT_RUN}" in everything.stdout


def test_paper_output_dir_still_writes_the_committed_tables(results, tmp_path):
    out = _cli("paper", "--results-dir", str(results), "--only-run", "--output-dir", str(tmp_path / "t"))
    assert out.exit_code == 0, out.output
    for committed in sorted((COMMITTED / "tables").glob("*.md")):
        assert (tmp_path / "t" / committed.name).read_text() == committed.read_text(), committed.name


def test_paper_with_no_results_says_so(tmp_path):
    out = _cli("paper", "--results-dir", str(tmp_path / "none"))
    assert out.exit_code == 2
    assert "Error: no stored result in" in out.stderr and "paper --all" in out.stderr
    assert _cli("paper", "--results-dir", str(tmp_path / "none"), "--all").exit_code == 0


def test_reproduce_dry_run_without_a_gpu_says_so_and_plans_for_the_cpu(tmp_path, monkeypatch):
    from gtr_eval.retrieval import encoders

    monkeypatch.setattr(encoders, "default_device", lambda: "cpu")
    out = _cli("paper", "--reproduce", "--dry-run", "--data-dir", str(tmp_path / "d"), "--results-dir",
               str(tmp_path / "r"))  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "No GPU found" in out.stderr and "the plan is for the CPU, in fp32" in out.stderr
    assert "Device: cpu." in out.stdout and "on the CPU (auto)" in out.stdout
    assert not (tmp_path / "r").exists() and not (tmp_path / "d").exists()


def test_reproduce_asks_with_no_as_the_default_for_a_long_job(tmp_path, monkeypatch):
    from gtr_eval.retrieval import encoders

    monkeypatch.setattr(encoders, "default_device", lambda: "cpu")
    monkeypatch.setattr(api, "run", lambda *a, **k: pytest.fail("started without a yes"))
    args = ("paper", "--reproduce", "--data-dir", str(tmp_path / "d"), "--results-dir", str(tmp_path / "r"))
    out = _cli(*args, input="\n")  # Enter: the default answer
    assert out.exit_code == 0, out.output
    assert "Start? (about " in out.output and "[y/N]" in out.output and "not started" in out.stderr
    monkeypatch.setattr(paper, "plan_seconds", lambda plan: 600.0)  # a short job: Yes is the default
    short = _cli(*args, input="n\n")
    assert "[Y/n]" in short.output and "not started" in short.stderr


# --- 6. gtr-eval references --------------------------------------------------------------------


def test_references_lists_what_table_reference_accepts(results):
    out = _cli("references")
    assert out.exit_code == 0, out.output
    text = out.stdout
    assert "gtr-authors-release:gtr-base" in text and "mteb-results:gtr-t5-base" in text
    assert "gtr-paper-table:gtr-base    (source: gtr-paper-table (second-hand copy, unconfirmed))" in text
    assert "recall@100  19 datasets: msmarco, trec-covid" in text
    assert "mteb:DIR" in text
    refs = load_references()
    entries = reference_catalogue()
    assert len(entries) == len(refs.groupby(["source", "system"]))
    for e in entries:  # every listed SOURCE:SYSTEM resolves as --reference would
        assert resolve_reference(refs, RefSpec.parse(e.spec)) == RefSpec(e.source, e.system)
    used = _cli("table", "--results-dir", str(results), "--reference", "gtr-paper-table:gtr-base")
    assert used.exit_code == 0 and "gtr-base [gtr-paper-table]" in used.stdout
    recall = _cli("references", "--metric", "R@100")
    assert recall.exit_code == 0
    assert "gtr-authors-release:gtr-xxl" in recall.stdout and "beir-paper-table2" not in recall.stdout
    assert "ndcg@10" not in recall.stdout
    assert "references" in _cli("--help").stdout
