"""The table model every reading command uses: selection (-s/-d), Averages that do not move, the
table as data (`api.table`), mixed data marked, precision."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from gtr_eval import api
from gtr_eval.cli import cli
from gtr_eval.errors import Mistake
from gtr_eval.paths import BUNDLED
from gtr_eval.report.selection import Selection, select
from gtr_eval.report.tables import (
    AVERAGE,
    BETTER,
    CQADUPSTACK_SUBFORUMS,
    MIXED_MARK,
    WORSE,
    fixed,
    leaderboard,
    mixed_data,
    render,
    table_frame,
)
from gtr_eval.results import ResultsStore, StoredResult
from gtr_eval.uncertainty import Bootstrap

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "results"
METRIC = "ndcg@10"


def stored(
    system: str, dataset: str, scores: list[float], files: dict[str, str] | None = None
) -> StoredResult:
    per_query = {f"q{i}": s for i, s in enumerate(scores)}
    manifest = {"dataset": {"files_sha256": files}} if files else {}
    mean = sum(scores) / len(scores)
    return StoredResult(
        system, dataset, "test", {METRIC: mean}, {METRIC: per_query}, manifest, Path("x.json")
    )


def _table(*args: str) -> str:
    out = CliRunner().invoke(cli, ["table", "--results-dir", str(COMMITTED), *args])
    assert out.exit_code == 0, out.output
    return out.output


def _grid(markdown: str) -> list[list[str]]:
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines if not line.startswith("|:")]


# --- selection ---------------------------------------------------------------------------------


def test_table_shows_exactly_the_selected_systems_and_datasets_in_the_order_given():
    grid = _grid(_table("-s", "bm25", "-s", "all-MiniLM-L6-v2", "-d", "scifact"))
    assert grid[0] == ["dataset", "bm25", "all-MiniLM-L6-v2"]
    assert [row[0] for row in grid[1:]] == ["scifact", AVERAGE]
    reverse = _grid(_table("-s", "ALL-*", "-s", "bm2?", "-d", "scifact", "-d", "nf*"))
    assert reverse[0] == ["dataset", "all-MiniLM-L6-v2", "bm25"]
    assert [row[0] for row in reverse[1:]] == ["scifact", "nfcorpus", AVERAGE]


@pytest.mark.parametrize("flag", ["--system", "--dataset"])
def test_a_pattern_matching_nothing_is_a_mistake_of_one_line(flag, tmp_path):
    for command in (
        ["table"],
        ["plot", "--output", str(tmp_path / "c.png")],
        ["paper"],
        ["report", "--output", str(tmp_path / "site")],
        ["export", "--format", "csv", "--output", str(tmp_path / "x")],
    ):
        out = CliRunner().invoke(cli, [*command, "--results-dir", str(COMMITTED), flag, "nothing*"])
        assert out.exit_code == 2, (command, out.output)
        assert out.output.strip().count("\n") == 0 and "'nothing*' matches nothing stored" in out.output
    assert not (tmp_path / "site").exists() and not (tmp_path / "x").exists()


def test_the_same_selection_in_every_reading_command(tmp_path):
    chosen = {"systems": ["bm25", "all-MiniLM-L6-v2"], "datasets": ["scifact"]}
    frame = api.table(COMMITTED, **chosen).frame
    assert sorted(set(frame["column"])) == ["all-MiniLM-L6-v2", "bm25"]
    assert sorted(set(frame["dataset"])) == [AVERAGE, "scifact"]
    done = api.export(COMMITTED, "csv", tmp_path / "x", **chosen)
    rows = list(csv.DictReader(open(tmp_path / "x" / "metrics.csv", encoding="utf-8")))
    assert {(r["system"], r["dataset"]) for r in rows} == {
        ("bm25", "scifact"),
        ("all-MiniLM-L6-v2", "scifact"),
    }
    assert done.written
    index = api.report(COMMITTED, tmp_path / "site", ci=False, **chosen)
    page = index.read_text(encoding="utf-8")
    assert "rrf(bm25+all-MiniLM-L6-v2)" not in page and "nfcorpus" not in page
    assert "Showing only systems matching bm25, all-MiniLM-L6-v2 and datasets matching scifact" in page
    out = CliRunner().invoke(
        cli, ["paper", "--results-dir", str(COMMITTED), "-s", "bm25", "-d", "scifact", "--metric", METRIC]
    )
    assert out.exit_code == 0, out.output
    assert "scifact" in out.output and "nfcorpus" not in out.output
    plotted = api.plot(COMMITTED, output=tmp_path / "c.png", ci=False, **chosen)
    assert plotted.read_bytes()[:4] == b"\x89PNG"


def test_select_orders_by_the_patterns_then_by_name():
    results = [stored(s, d, [0.5, 0.6]) for s in ("a", "b", "c") for d in ("scifact", "nfcorpus")]
    got = select(results, Selection(("c", "?"), ("nf*",)))
    assert [(r.system, r.dataset) for r in got] == [("c", "nfcorpus"), ("a", "nfcorpus"), ("b", "nfcorpus")]
    with pytest.raises(Mistake, match="'d' matches nothing"):
        select(results, Selection(("d",)))
    alone = [*results, stored("d", "fiqa", [0.1, 0.2])]
    with pytest.raises(Mistake, match="systems d on datasets scifact: each is stored, but not together"):
        select(alone, Selection("d", "scifact"))


def test_column_order_does_not_change_with_the_baseline():
    plain = _grid(_table())[0]
    assert _grid(_table("--baseline", "rrf(bm25+all-MiniLM-L6-v2)"))[0] == plain


# --- Averages that do not move -----------------------------------------------------------------


def _two_datasets() -> list[StoredResult]:
    return [
        stored("bm25", "scifact", [0.6, 0.8, 0.7]),
        stored("bm25", "nfcorpus", [0.3, 0.2, 0.4]),
        stored("dense", "scifact", [0.5, 0.9, 0.6]),
        stored("dense", "nfcorpus", [0.1, 0.5, 0.3]),
    ]


def test_a_system_on_one_of_two_datasets_changes_no_other_average():
    before = leaderboard(_two_datasets())
    after = leaderboard([*_two_datasets(), stored("rerank", "scifact", [0.9, 0.95, 0.9])])
    for system in ("bm25", "dense"):
        assert after.values.loc[AVERAGE, system] == before.values.loc[AVERAGE, system]
        assert after.best.loc[AVERAGE, system] == before.best.loc[AVERAGE, system]
    assert after.values.loc[AVERAGE, "rerank"] == pytest.approx(0.9166666, abs=1e-6)
    assert after.covers == {"rerank": "1/2"} and not after.best.loc[AVERAGE, "rerank"]
    assert after.best.loc["scifact", "rerank"]  # on a dataset it has, it is compared
    grid = _grid(render(after))
    average = dict(zip(grid[0], grid[-1], strict=True))
    assert average["rerank"] == "0.9167 (1/2)"  # marked, never bold
    assert average["bm25"] == "**0.5000**" and average["dense"] == "0.4833"
    assert "fewer shows the mean of those it has, marked (k/2)" in render(after)
    paired = leaderboard([*_two_datasets(), stored("rerank", "scifact", [0.9, 0.95, 0.9])], baseline="bm25",
                         ci=Bootstrap(resamples=200))  # fmt: skip
    assert pd.notna(paired.diff.loc[AVERAGE, "dense"])
    assert pd.isna(paired.diff.loc[AVERAGE, "rerank"])  # its Average is over other datasets than bm25's
    assert pd.notna(paired.diff.loc["scifact", "rerank"])
    frame = table_frame(after).set_index(["dataset", "column"])
    assert frame.loc[(AVERAGE, "rerank"), "covers"] == "1/2" and frame.loc[(AVERAGE, "bm25"), "covers"] == ""


def test_cqadupstack_is_averaged_per_system_so_a_partial_one_moves_nobody():
    def forums(system, names, base):
        return [stored(system, f"cqadupstack/{f}", [base + i / 100, base]) for i, f in enumerate(names)]

    full = forums("a", CQADUPSTACK_SUBFORUMS, 0.3) + [stored("a", "scifact", [0.5, 0.5])]
    alone = leaderboard(full)
    board = leaderboard(
        full + forums("b", CQADUPSTACK_SUBFORUMS[:5], 0.2) + [stored("b", "scifact", [0.4, 0.4])]
    )
    assert list(board.values.index) == ["cqadupstack", "scifact", AVERAGE]
    assert board.values.loc[AVERAGE, "a"] == alone.values.loc[AVERAGE, "a"]
    assert board.values.loc["cqadupstack", "a"] == pytest.approx(0.3 + sum(range(12)) / 200 / 12 * 1)
    assert board.partial == {("cqadupstack", "b"): "5/12"} and board.covers == {"b": "1/2"}
    assert board.values.loc[AVERAGE, "b"] == pytest.approx(0.4)  # its CQADupStack mean is not BEIR's
    assert not board.best.loc["cqadupstack", "a"]  # the only comparable cell: no best
    text = render(board)
    assert "(5/12)" in text and "b 5/12" in text


# --- mixed data --------------------------------------------------------------------------------


def test_results_made_from_other_qrels_are_marked_and_never_tested_against(tmp_path):
    """bm25, a variant and their fusion on a copy of the demo set; the qrels change and bm25 alone
    is run again: the other two are marked in the table and the report, and no test compares them."""
    demo = tmp_path / "demo"
    shutil.copytree(BUNDLED / "demo", demo)
    kw = dict(results_dir=tmp_path / "r", cache_dir=tmp_path / "c", echo=lambda _: None)
    api.run(["bm25"], [str(demo)], **kw)
    api.run(["bm25"], [str(demo)], bm25_k1=0.9, name="bm25b", **kw)
    api.fuse(["bm25", "bm25b"], [str(demo)], **kw)
    before = api.table(tmp_path / "r", baseline="bm25").board
    assert not before.mixed
    qrels = demo / "qrels" / "test.tsv"
    lines = qrels.read_text(encoding="utf-8").splitlines(keepends=True)
    qrels.write_text("".join(lines[:1] + lines[2:]), encoding="utf-8")  # one judgment fewer
    api.run(["bm25"], [str(demo)], overwrite=True, **kw)

    table = api.table(tmp_path / "r", baseline="bm25")
    board = table.board
    stale = ["bm25b", "rrf(bm25+bm25b)"]
    assert set(board.mixed) == {(r, s) for r in ("demo", AVERAGE) for s in stale}
    assert board.mixed[("demo", "bm25b")] == "demo: qrels/test.tsv differs from bm25's"
    assert all(pd.isna(board.pvalues.loc["demo", s]) and board.marks.loc["demo", s] == "" for s in stale)
    assert not board.best.loc["demo"].any() and not board.best.loc[AVERAGE].any()
    grid = _grid(table.text)
    assert [c.endswith(MIXED_MARK) for c in grid[1][1:]] == [False, True, True]
    assert f"{MIXED_MARK} demo: qrels/test.tsv differs from bm25's for bm25b, rrf(bm25+bm25b)" in table.text
    assert "Not tested (other data files" in table.text
    assert set(table.frame.query("mixed != ''")["column"]) == set(stale)
    assert BETTER not in table.text.split("Notes:")[0] and WORSE not in table.text.split("Notes:")[0]

    index = api.report(tmp_path / "r", tmp_path / "site", ci=False, baseline="bm25")
    page = index.read_text(encoding="utf-8")
    assert "qrels/test.tsv differs from bm25" in page and '"mixedMark"' in page
    marked, notes = mixed_data(list(ResultsStore(tmp_path / "r")))  # what the paper and figures mark
    assert set(marked) == {("demo", s) for s in stale} and len(notes) == 1


# --- precision ---------------------------------------------------------------------------------


def test_csv_keeps_every_digit_and_text_formats_round_without_negative_zero():
    results = [stored("a", "scifact", [0.123456789, 0.2]), stored("b", "scifact", [0.123456789, 0.2])]
    board = leaderboard(results, decimals=5)
    frame = list(csv.DictReader(io.StringIO(render(board, "csv"))))
    assert frame[0]["a"] == repr((0.123456789 + 0.2) / 2)
    assert "0.16173" in render(board) and "shown with 5 decimals" in render(board)
    assert "plain mean over the table's 1 dataset," in render(board)
    assert fixed(-0.00001) == "0.0000" and fixed(-0.00001, signed=True) == "0.0000"
    assert fixed(-0.5, signed=True) == "-0.5000" and fixed(0.5, 2, signed=True) == "+0.50"
    assert _grid(_table("--decimals", "5", "-s", "bm25", "-d", "scifact"))[1] == ["scifact", "0.68630"]
