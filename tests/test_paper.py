"""`gtr-eval paper`: golden check on the committed results, FAIL on an edited score, table gaps,
and the --reproduce plan."""

from __future__ import annotations

import json
import shutil

from cli_process import gtr_eval
from click.testing import CliRunner
from conftest import ROOT

from gtr_eval.cli import cli
from gtr_eval.data.registry import CQADUPSTACK_SUBSETS
from gtr_eval.report.paper import (
    NOT_RUN,
    Expectation,
    check_golden,
    load_golden,
    paper_table,
    render_check,
    reproduce_plan,
    signed,
)
from gtr_eval.report.tables import load_references
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
    assert (row["DPR ours"], row["DPR BEIR²"]) == ("0.3000", "0.318")
    assert (row["TAS-B ours"], row["TAS-B BEIR²"]) == (NOT_RUN, "0.643")
    assert (row["GenQ ours"], row["GenQ BEIR²"]) == (NOT_RUN, "0.644")
    # BEIR's ColBERT is v1, ours v2: another system, so no published figure beside it
    assert [c for c in table.columns if c.startswith("ColBERT")] == ["ColBERT ours"]
    assert row["SPLADE++ 2CR"] == "0.7036" and row["Contriever 2CR"] == "0.6768"
    assert (row["BM25+CE ours"], row["BM25+CE BEIR²"]) == ("0.7000", "0.688")
    assert row["rrf(bm25+all-MiniLM-L6-v2) ours"] == "0.7200"  # any other system: its own column
    assert not any("Δ" in c for c in table.columns)
    columns = [c.split(" ")[0] for c in table.columns if c.endswith(" ours")]
    assert columns[columns.index("GTR-XXL") + 1 :][:8] == [
        "DPR", "ANCE", "TAS-B", "GenQ", "ColBERT", "SPLADE++", "Contriever", "BM25+CE"
    ]  # fmt: skip


def test_each_bm25_system_sits_beside_the_published_figure_of_the_same_system():
    results = [_result(s, "scifact", 0.68) for s in ("bm25-multifield", "bm25", "bm25-flat")]
    table = paper_table(results, "ndcg@10", only_run=True, run_systems_only=True)
    assert list(table.columns) == [
        "BM25 ours", "BM25 MTEB bm25s", "BM25 flat ours", "BM25 flat 2CR flat",
        "BM25 multifield ours", "BM25 multifield 2CR multifield",
    ]  # fmt: skip
    # published figures keep their own decimals: MTEB's 5, 2CR's 4
    assert [table.loc["scifact", c] for c in table.columns[1::2]] == ["0.68736", "0.6789", "0.6647"]
    headers = table.attrs["headers"]
    assert [headers[c] for c in table.columns] == [
        "BM25", "MTEB bm25s", "BM25 flat", "2CR flat", "BM25 multifield", "2CR multifield"
    ]  # fmt: skip


def test_systems_pick_the_columns_in_their_order_and_the_order_is_stable(tmp_path):
    out = _invoke(
        "paper", "--results-dir", str(RESULTS), "--metric", "ndcg@10", "-s", "all-MiniLM-*", "-s", "bm25"
    )
    assert out.exit_code == 0, out.output
    header = next(line for line in out.output.splitlines() if line.startswith("| dataset"))
    assert [h.strip() for h in header.strip("|").split("|")] == [
        "dataset", "all-MiniLM-L6-v2", "MTEB", "BM25", "MTEB bm25s"
    ]  # fmt: skip
    plain = _invoke("paper", "--results-dir", str(RESULTS), "--metric", "ndcg@10")
    header = next(line for line in plain.output.splitlines() if line.startswith("| dataset"))
    assert [h.strip() for h in header.strip("|").split("|")][1:] == [
        "BM25", "MTEB bm25s", "all-MiniLM-L6-v2", "MTEB", "rrf(bm25+all-MiniLM-L6-v2)"
    ]  # fmt: skip
    unknown = gtr_eval("paper", "--results-dir", str(RESULTS), "-s", "bm52")
    assert unknown.returncode != 0 and "'bm52'" in unknown.stderr and "did you mean bm25" in unknown.stderr


def test_paper_on_the_committed_results_fits_120_characters_and_hides_systems_not_run():
    out = _invoke("paper", "--results-dir", str(RESULTS))
    assert out.exit_code == 0, out.output
    assert max(len(line) for line in out.output.splitlines()) <= 120
    assert NOT_RUN not in out.output.split("- ")[0] and "GTR-Base" not in out.output


def test_check_shows_the_published_figure_unrounded_and_the_exact_difference():
    out = _invoke("paper", "--check", "--results-dir", str(RESULTS))
    row = next(
        line
        for line in out.output.splitlines()
        if "bm25s" in line and "scifact" in line and "ndcg@10" in line
    )
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:7] == ["OK", "bm25", "scifact", "ndcg@10", "0.68736", "0.68630", "\u22120.00106"]
    golden = {
        (c.system, c.dataset, c.metric): c
        for c in load_golden(RESULTS / "golden.yaml")
        if "published" in c.source
    }
    refs = load_references()
    for (system, dataset, metric), check in golden.items():
        published_as = {
            "bm25": ("mteb-results", "bm25s"),
            "bm25-flat": ("pyserini-2cr", "bm25-pyserini-flat"),
        }
        source, name = published_as.get(system, ("mteb-results", system))
        value = refs.loc[(refs.source == source) & (refs.system == name) & (refs.dataset == dataset)
                         & (refs.metric == metric), "value"]  # fmt: skip
        assert list(value) == [check.expected], (system, dataset, metric)  # the same system, as published


def test_differences_that_round_to_zero_have_no_sign_and_notes_count_right():
    assert signed(-0.000001, 5) == "0.00000" and signed(0.0000049, 5) == "0.00000"
    assert signed(-0.00106, 5) == "\u22120.00106" and signed(0.0002, 5) == "+0.00020"
    golden = [Expectation("s", d, "ndcg@10", 0.5, 0.01, "x") for d in ("a", "b")]
    one = render_check(check_golden([_result("s", "a", 0.5)], golden))
    assert "1 check of s on b" in one
    two = render_check(check_golden([_result("s", "c", 0.5)], golden))
    assert "2 checks of s on a, b" in two


def test_gtr_sizes_sit_beside_the_authors_figures_with_the_decimals_they_published():
    results = [StoredResult(s, "scifact", "test", {"ndcg@10": 0.6, "recall@100": 0.9}, {}, {}, None)
               for s in ("gtr-t5-base", "gtr-t5-large")]  # fmt: skip
    ndcg = paper_table(results, "ndcg@10", only_run=True, run_systems_only=True)
    assert ndcg.loc["scifact", "GTR-Base paper²"] == "0.600"  # 3 decimals, though the CSV holds 0.6
    assert ndcg.loc["scifact", "GTR-Large MTEB"] == "0.63424"  # the authors published no Large NDCG@10
    recall = paper_table(results, "recall@100", only_run=True, run_systems_only=True)
    assert list(recall.columns) == [
        "GTR-Base ours",
        "GTR-Base GTR authors",
        "GTR-Large ours",
        "GTR-Large GTR authors",
    ]
    assert (recall.loc["scifact", "GTR-Base GTR authors"], recall.loc["scifact", "GTR-Large GTR authors"]) == (
        "0.872", "0.899")  # fmt: skip
