"""`gtr-eval paper`: golden check on the committed results, FAIL on an edited score, table gaps,
and the --reproduce plan."""

from __future__ import annotations

import json
import shutil

from click.testing import CliRunner
from conftest import ROOT

from gtr_eval.cli import cli
from gtr_eval.data.registry import CQADUPSTACK_SUBSETS
from gtr_eval.report.paper import NOT_RUN, Expectation, check_golden, load_golden, paper_table, reproduce_plan
from gtr_eval.results import StoredResult

RESULTS = ROOT / "results"


def _invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_committed_results_pass_the_golden_check():
    out = _invoke("paper", "--check", "--results-dir", str(RESULTS))
    assert out.exit_code == 0, out.output
    assert "FAIL" not in out.output.split("\n\n")[0]
    assert " 0 FAIL" in out.output


def test_editing_one_score_by_001_fails_naming_dataset_and_metric(tmp_path):
    copy = tmp_path / "results"
    shutil.copytree(RESULTS, copy)
    path = copy / "bm25" / "scifact.json"
    record = json.loads(path.read_text())
    record["metrics"]["ndcg@10"] += 0.01
    path.write_text(json.dumps(record))
    out = _invoke("paper", "--check", "--results-dir", str(copy))
    assert out.exit_code == 1
    fail_rows = [line for line in out.output.splitlines() if line.startswith("| FAIL")]
    assert fail_rows and all("scifact" in r and "ndcg@10" in r and "bm25" in r for r in fail_rows)


def _result(system, dataset, value):
    return StoredResult(system, dataset, "test", {"ndcg@10": value}, {}, {}, None)


def test_check_statuses_ok_okish_fail_and_missing():
    golden = [Expectation("s", d, "ndcg@10", 0.5, 0.01, "x") for d in ("a", "b", "c", "missing", "nometric")]
    stored = [_result("s", "a", 0.505), _result("s", "b", 0.515), _result("s", "c", 0.53)]
    stored.append(StoredResult("s", "nometric", "test", {"recall@100": 0.5}, {}, {}, None))
    rows = check_golden(stored, golden)
    # a pair not run is MISSING (not a failure); a stored result without the metric is a FAIL
    assert [r.status for r in rows] == ["OK", "OKISH", "FAIL", "MISSING", "FAIL"]
    assert rows[3].actual is None and rows[4].actual is None


def test_golden_file_names_a_source_for_every_check():
    checks = load_golden(RESULTS / "golden.yaml")
    assert checks and all(c.source.strip() for c in checks)
    assert {c.source.split(":")[0] for c in checks} >= {"own run", "published"}


def test_paper_table_marks_gaps_and_averages_cqadupstack():
    subs = CQADUPSTACK_SUBSETS
    results = [_result("gtr-t5-base", f"cqadupstack/{s}", 0.3 + i / 100) for i, s in enumerate(subs)]
    results.append(_result("bm25", "scifact", 0.6863))
    table = paper_table(results, "ndcg@10")
    assert table.loc["cqadupstack", "GTR-Base ours"] == f"{sum(0.3 + i / 100 for i in range(12)) / 12:.4f}"
    assert table.loc["scifact", "GTR-Base ours"] == NOT_RUN
    assert table.loc["scifact", "BM25 ours"] == "0.6863"
    assert table.loc["scifact", "GTR-XXL paper²"] == "0.662"  # second-hand paper figure, labelled
    assert list(table.index[:3]) == ["msmarco", "trec-covid", "bioasq"]  # the paper's order


def test_reproduce_dry_run_prints_plan_without_running(tmp_path):
    out = _invoke(
        "paper", "--reproduce", "--dry-run", "--data-dir", str(tmp_path), "--results-dir", str(tmp_path / "r")
    )
    assert out.exit_code == 0
    assert "msmarco" in out.output and "gtr-t5-xxl time" in out.output and "total" in out.output
    assert not (tmp_path / "r").exists()
    plan = {r.dataset: r for r in reproduce_plan(tmp_path, tmp_path / "r").datasets}
    assert "bioasq" not in plan and plan["scifact"].download_gb > 0
    assert plan["msmarco"].seconds["gtr-t5-xxl"] > plan["scifact"].seconds["gtr-t5-xxl"] > 0


def test_the_results_page_shows_the_committed_tables_verbatim():
    readme = (ROOT / "docs" / "results.md").read_text()
    for name in (
        "leaderboard-ndcg@10.md",
        "leaderboard-recall@100.md",
        "paper-ndcg@10.md",
        "paper-recall@100.md",
    ):
        assert (RESULTS / "tables" / name).read_text() in readme, (
            f"docs/results.md is out of date with {name}"
        )


def test_paper_table_has_the_baseline_columns_with_their_published_figures():
    results = [_result("dpr", "scifact", 0.3), _result("colbertv2", "scifact", 0.69),
               _result("bm25>>ms-marco-MiniLM-L6-v2", "scifact", 0.7), _result("splade-pp-ed", "scifact", 0.71),
               _result("rrf(bm25+all-MiniLM-L6-v2)", "scifact", 0.72)]  # fmt: skip
    table = paper_table(results, "ndcg@10", only_run=True)
    row = table.loc["scifact"]
    assert (row["DPR ours"], row["DPR BEIR²"], row["DPR Δ"]) == ("0.3000", "0.318", "-0.0180")
    assert (row["TAS-B ours"], row["TAS-B BEIR²"]) == (NOT_RUN, "0.643")
    assert (row["GenQ ours"], row["GenQ BEIR²"]) == (NOT_RUN, "0.644")
    assert row["ColBERT v1 BEIR²"] == "0.671" and "ColBERT Δ" not in table.columns  # v1 vs our v2: no Δ
    assert (row["SPLADE++ Pyserini"], row["SPLADE++ Δ"]) == ("0.7036", "+0.0064")
    assert row["Contriever Pyserini"] == "0.6768"
    assert (row["BM25+CE ours"], row["BM25+CE BEIR²"]) == ("0.7000", "0.688")
    assert row["rrf(bm25+all-MiniLM-L6-v2) ours"] == "0.7200"  # any other system: its own column
    columns = [c.split(" ")[0] for c in table.columns if c.endswith(" ours")]
    assert columns[columns.index("GTR-XXL") + 1 :][:8] == [
        "DPR", "ANCE", "TAS-B", "GenQ", "ColBERT", "SPLADE++", "Contriever", "BM25+CE"
    ]  # fmt: skip
