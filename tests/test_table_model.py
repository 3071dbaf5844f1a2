"""The table model every reading command uses: selection (-s/-d), Averages that do not move, the
table as data (`api.table`), mixed data marked, precision."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from click.testing import CliRunner

from gtr_eval import api
from gtr_eval.cli import cli
from gtr_eval.errors import Mistake
from gtr_eval.report.selection import Selection, select
from gtr_eval.report.tables import AVERAGE
from gtr_eval.results import StoredResult

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


def test_column_order_does_not_change_with_the_baseline():
    plain = _grid(_table())[0]
    assert _grid(_table("--baseline", "rrf(bm25+all-MiniLM-L6-v2)"))[0] == plain
