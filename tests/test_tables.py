"""Leaderboard: layout, best marks, Average, references and Δ, significance, CQADupStack, plots."""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import stats

from gtr_eval.cli import cli
from gtr_eval.evaluation import evaluate
from gtr_eval.identity import Identity
from gtr_eval.report.plots import plot_results
from gtr_eval.report.tables import (
    AVERAGE,
    BETTER,
    CQADUPSTACK_SUBFORUMS,
    WORSE,
    RefSpec,
    holm,
    leaderboard,
    load_references,
    paired_test,
    render,
    render_notes,
)
from gtr_eval.results import ResultsStore, StoredResult

METRIC = "ndcg@10"


def stored(system: str, dataset: str, scores: list[float]) -> StoredResult:
    per_query = {f"q{i}": s for i, s in enumerate(scores)}
    mean = sum(scores) / len(scores)
    return StoredResult(system, dataset, "test", {METRIC: mean}, {METRIC: per_query}, {}, Path("x.json"))


def two_by_two(n: int = 60) -> list[StoredResult]:
    """`good` beats `base` on every query of scifact; equal on nfcorpus."""
    rng = random.Random(0)
    base_sci = [rng.uniform(0.1, 0.5) for _ in range(n)]
    base_nf = [rng.uniform(0.1, 0.5) for _ in range(n)]
    return [
        stored("base", "scifact", base_sci),
        stored("good", "scifact", [s + rng.uniform(0.1, 0.3) for s in base_sci]),
        stored("base", "nfcorpus", base_nf),
        stored("good", "nfcorpus", list(base_nf)),
    ]


REFS = pd.DataFrame(
    [
        ("paper (second-hand copy, unconfirmed)", "gtr", "scifact", METRIC, 0.6, ""),
        ("paper (second-hand copy, unconfirmed)", "gtr", "nfcorpus", METRIC, 0.3, ""),
        ("other", "gtr", "scifact", METRIC, 0.1, "split=dev"),
    ],
    columns=["source", "system", "dataset", "metric", "value", "note"],
)


def test_layout_best_and_average():
    board = leaderboard(two_by_two())
    assert list(board.values.index) == ["nfcorpus", "scifact", AVERAGE]
    assert board.system_columns == ["base", "good"]
    sci = board.values.loc["scifact"]
    assert sci["good"] > sci["base"]
    assert board.best.loc["scifact", "good"] and not board.best.loc["scifact", "base"]
    assert board.best.loc["nfcorpus"].all()  # an exact tie marks both
    for col in ("base", "good"):
        assert board.values.loc[AVERAGE, col] == pytest.approx(
            board.values.loc[["nfcorpus", "scifact"], col].mean()
        )
    assert any("Average: plain mean over the table's 2 datasets" in n for n in board.notes)
    assert not board.covers


def test_a_system_missing_a_dataset_is_averaged_over_those_it_has_and_marked():
    results = two_by_two() + [stored("base", "fiqa", [0.9, 0.9])]
    board = leaderboard(results)
    assert pd.isna(board.values.loc["fiqa", "good"])
    assert board.values.loc[AVERAGE, "base"] == pytest.approx(
        board.values.loc[["nfcorpus", "scifact", "fiqa"], "base"].mean()
    )
    assert board.values.loc[AVERAGE, "good"] == pytest.approx(
        board.values.loc[["nfcorpus", "scifact"], "good"].mean()
    )
    assert board.covers == {"good": "2/3"} and not board.best.loc[AVERAGE].any()
    assert any("good (2/3)" in n for n in board.notes)


def test_average_per_column_when_a_reference_lacks_datasets_or_the_metric():
    partial = REFS.iloc[[0]]  # the paper's figure for scifact only
    board = leaderboard(two_by_two(), references=[RefSpec.parse("paper:gtr")], reference_table=partial,
                        diff_against="good")  # fmt: skip
    header = "gtr [paper]"
    for col in ("base", "good"):  # the systems: over both datasets, as before
        assert board.values.loc[AVERAGE, col] == pytest.approx(
            board.values.loc[["nfcorpus", "scifact"], col].mean()
        )
    assert board.values.loc[AVERAGE, header] == 0.6  # the reference: over the one it has
    assert board.values.loc[AVERAGE, "Δ ours−ref"] == pytest.approx(board.values.loc["scifact", "good"] - 0.6)
    assert not board.best.loc[AVERAGE, header]  # over other datasets: not compared
    assert board.best.loc[AVERAGE, ["base", "good"]].any()
    note = next(n for n in board.notes if n.startswith("Average:"))
    assert "plain mean over the table's 2 datasets" in note
    assert f"not compared for best: {header} (1/2)" in note and "(1/2)" in render(board)
    other_metric = REFS.assign(metric="recall@100")  # the source lacks this metric altogether
    board = leaderboard(two_by_two(), references=[RefSpec.parse("paper:gtr")], reference_table=other_metric)
    assert pd.isna(board.values.loc[AVERAGE, header])
    assert board.values.loc[AVERAGE, ["base", "good"]].notna().all()
    assert any(f"{header} (0/2)" in n for n in board.notes)
    assert any("the source lists no ndcg@10 for it; it lists recall@100" in n for n in board.notes)


def test_average_per_column_when_no_dataset_has_every_system():
    board = leaderboard([stored("a", "scifact", [0.2, 0.4]), stored("b", "nfcorpus", [0.5, 0.7])])
    assert board.values.loc[AVERAGE, "a"] == pytest.approx(0.3)
    assert board.values.loc[AVERAGE, "b"] == pytest.approx(0.6)
    assert not board.best.loc[AVERAGE].any()
    note = next(n for n in board.notes if n.startswith("Average:"))
    assert "not compared for best: a (1/2), b (1/2)" in note


def test_metric_names_are_normalised_and_unknown_ones_named():
    results = two_by_two()
    assert leaderboard(results, metric="NDCG@10").metric == METRIC
    assert leaderboard(results, metric="nDCG@10").values.equals(leaderboard(results).values)
    with pytest.raises(
        ValueError, match=r"unknown metric 'ndcg@11'; did you mean ndcg@10\? \(valid: ndcg@1, "
    ):
        leaderboard(results, metric="ndcg@11")
    with pytest.raises(ValueError, match="unknown metric 'foo'"):
        plot_results(results, "foo", "never.png")
    assert not Path("never.png").exists()


def test_renders_all_formats_with_marks():
    board = leaderboard(two_by_two(), baseline="base")
    good = f"{board.values.loc['scifact', 'good']:.4f}"
    md = render(board, "markdown")
    assert f"**{good}**{BETTER}" in md and "| Average" in md and "Notes:" in md
    assert r"\textbf{" + good + r"}$^\dagger$" in render(board, "latex")
    html = render(board, "html")
    assert f"<b>{good}</b>{BETTER}" in html and '<ul class="notes">' in html
    text = render(board, "csv")
    table = pd.read_csv(io.StringIO(text))  # clean CSV: no comment rows to skip
    assert list(table.columns) == ["dataset", "base", "good", "good sig", "best"]
    assert list(table["dataset"]) == ["nfcorpus", "scifact", AVERAGE]
    sci = table.set_index("dataset").loc["scifact"]
    assert f"{sci['good']:.4f}" == good and sci["good sig"] == BETTER and sci["best"] == "good"
    assert not [ln for ln in text.splitlines() if ln.startswith("#")]
    notes = render_notes(board)  # the notes travel beside the CSV, one `# ` line each
    assert notes.splitlines() == [f"# {n}" for n in board.notes] and "Holm" in notes
    with pytest.raises(ValueError):
        render(board, "xlsx")


def test_significance_marks_only_real_differences():
    results = two_by_two()
    rng = random.Random(1)
    worse = [max(0.0, s - rng.uniform(0.1, 0.3)) for s in results[0].per_query[METRIC].values()]
    results.append(stored("bad", "scifact", worse))
    board = leaderboard(results, baseline="base")
    assert board.system_columns == ["bad", "base", "good"]  # the order without a baseline
    assert board.marks.loc["scifact", "good"] == BETTER
    assert board.marks.loc["scifact", "bad"] == WORSE
    assert board.marks.loc["nfcorpus", "good"] == ""  # identical per-query scores
    assert board.pvalues.loc["nfcorpus", "good"] == 1.0
    assert (board.marks["base"] == "").all() and (board.marks.loc[AVERAGE] == "").all()
    assert any("Holm" in n and "'base'" in n for n in board.notes)
    wil = leaderboard(results, baseline="base", test="wilcoxon")
    assert wil.marks.loc["scifact", "good"] == BETTER
    assert any("Wilcoxon" in n for n in wil.notes)


def test_no_marks_for_noise():
    rng = random.Random(2)
    a = [rng.random() for _ in range(30)]
    b = [x + (0.05 if i % 2 else -0.05) for i, x in enumerate(a)]  # differs per query, not on average
    board = leaderboard([stored("a", "scifact", a), stored("b", "scifact", b)], baseline="a")
    assert board.marks.loc["scifact", "b"] == ""


def test_holm_and_paired_test():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])
    assert paired_test([0.1, 0.2], [0.1, 0.2]) == 1.0
    assert paired_test([0.5, 0.7, 0.9], [0.1, 0.3, 0.5]) == 0.0  # constant gain: t is infinite
    rng = random.Random(3)  # the t-test is scipy's ttest_rel, computed without importing scipy.stats
    for n in (2, 5, 300):
        a, b = [rng.random() for _ in range(n)], [rng.random() for _ in range(n)]
        assert paired_test(a, b) == pytest.approx(stats.ttest_rel(a, b).pvalue, rel=1e-12, abs=1e-300)
    assert paired_test([0.5, 0.7, 0.9], [0.1, 0.3, 0.5], test="wilcoxon") == pytest.approx(0.25)
    with pytest.raises(ValueError):
        paired_test([0.1, 0.2], [0.2, 0.1], test="sign")


def test_reference_column_and_delta():
    refs = [RefSpec.parse("paper:gtr")]  # unique prefix of the long source name
    board = leaderboard(two_by_two(), references=refs, diff_against="good", reference_table=REFS)
    header = "gtr [paper]"
    assert board.reference_columns == [header] and board.delta_columns == ["Δ ours−ref"]
    assert board.values.loc["scifact", header] == 0.6
    expected = board.values.loc["scifact", "good"] - 0.6
    assert board.values.loc["scifact", "Δ ours−ref"] == pytest.approx(expected)
    assert board.values.loc[AVERAGE, "Δ ours−ref"] == pytest.approx(
        board.values.loc[AVERAGE, "good"] - board.values.loc[AVERAGE, header]
    )
    assert not board.best["Δ ours−ref"].any()  # differences never compete for best
    notes = " ".join(board.notes)
    assert "paper (second-hand copy, unconfirmed)" in notes and "Second-hand" in notes
    md = render(board, "markdown")
    assert f"{expected:+.4f}" in md
    with pytest.raises(ValueError, match="no system"):
        leaderboard(two_by_two(), references=[RefSpec("other", "bm25")], reference_table=REFS)
    with pytest.raises(ValueError, match="unknown reference source .nope. .known: other"):
        leaderboard(two_by_two(), references=[RefSpec("nope", "gtr")], reference_table=REFS)


def test_package_references_load():
    refs = load_references()
    assert {"mteb-results", "pyserini-2cr"} <= set(refs["source"])
    board = leaderboard(two_by_two(), references=[RefSpec("mteb-results", "bm25s")])
    value = refs.query(
        "source == 'mteb-results' and system == 'bm25s' and dataset == 'scifact' and metric == @METRIC"
    )
    assert board.values.loc["scifact", "bm25s [mteb-results]"] == value["value"].item()


def cqa(system: str, forums, value: float) -> list[StoredResult]:
    return [
        stored(system, f"cqadupstack/{f}", [value + i / 100, value + i / 100]) for i, f in enumerate(forums)
    ]


def test_cqadupstack_collapsed_to_mean_of_12():
    results = cqa("a", CQADUPSTACK_SUBFORUMS, 0.3) + cqa("b", CQADUPSTACK_SUBFORUMS, 0.2)
    results += [stored("a", "scifact", [0.3, 0.5]), stored("b", "scifact", [0.1, 0.2])]
    board = leaderboard(results)
    assert "cqadupstack" in board.values.index
    assert not any(r.startswith("cqadupstack/") for r in board.values.index)
    assert board.values.loc["cqadupstack", "a"] == pytest.approx(0.3 + sum(range(12)) / 100 / 12)
    assert board.values.loc[AVERAGE, "a"] == pytest.approx(
        board.values.loc[["cqadupstack", "scifact"], "a"].mean()
    )


def test_cqadupstack_partial_is_marked_and_left_out_of_its_own_average_only():
    results = cqa("a", CQADUPSTACK_SUBFORUMS, 0.3) + cqa("b", CQADUPSTACK_SUBFORUMS[:5], 0.2)
    results += [stored("a", "scifact", [0.5]), stored("b", "scifact", [0.4])]
    board = leaderboard(results)
    assert board.values.loc["cqadupstack", "a"] == pytest.approx(0.3 + sum(range(12)) / 100 / 12)  # all 12
    assert board.values.loc["cqadupstack", "b"] == pytest.approx(0.2 + sum(range(5)) / 100 / 5)
    assert board.partial == {("cqadupstack", "b"): "5/12"}
    assert board.values.loc[AVERAGE, "a"] == pytest.approx((board.values.loc["cqadupstack", "a"] + 0.5) / 2)
    assert board.values.loc[AVERAGE, "b"] == pytest.approx(0.4)
    assert any("b 5/12" in n and "left out of that system's Average" in n for n in board.notes)


def test_unknown_systems_rejected():
    with pytest.raises(ValueError, match="baseline"):
        leaderboard(two_by_two(), baseline="nobody")
    with pytest.raises(ValueError):
        leaderboard([])


def write_store(root: Path) -> None:
    qrels = {f"q{i}": {f"d{i}": 1} for i in range(20)}
    for system, hit in (("bm25", 5), ("gtr", 1)):
        run = {
            q: {f"d{i}": 1.0 - r / 10 for r, i in enumerate([*range(50, 50 + hit - 1), int(q[1:])])}
            for q in qrels
        }
        for dataset in ("scifact", "nfcorpus"):
            identity = Identity({"system": system}, {"name": dataset})
            ResultsStore(root).save(system, dataset, "test", evaluate(qrels, run), run, {}, identity)


def test_table_and_plot_cli(tmp_path):
    write_store(tmp_path)
    out = tmp_path / "t.csv"
    args = [
        "table",
        "--results-dir",
        str(tmp_path),
        "--format",
        "csv",
        "--baseline",
        "bm25",
        "--output",
        str(out),
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(line for line in out.read_text().splitlines() if not line.startswith("#")))
    assert rows[0][:3] == ["dataset", "bm25", "gtr"] and rows[1][0] == "nfcorpus" and rows[1][2] == "1.0"
    assert rows[1][1].startswith("0.38685") and len(rows[1][1]) > 10  # every digit, not 0.3869
    md = CliRunner().invoke(
        cli, ["table", "--results-dir", str(tmp_path), "--reference", "mteb-results:bm25s"]
    )
    assert md.exit_code == 0 and "bm25s [mteb-results]" in md.stdout
    bad = CliRunner().invoke(cli, ["table", "--results-dir", str(tmp_path), "--reference", "nosuch"])
    assert bad.exit_code != 0 and "SOURCE:SYSTEM" in bad.output
    png = tmp_path / "chart.png"
    plotted = CliRunner().invoke(cli, ["plot", "--results-dir", str(tmp_path), "--output", str(png)])
    assert plotted.exit_code == 0, plotted.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_plot_api_writes_png(tmp_path):
    path = plot_results(two_by_two(), METRIC, tmp_path / "sub" / "c.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(path.parent.glob("*.tmp"))
