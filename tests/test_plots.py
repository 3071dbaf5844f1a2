"""Figures for papers: `plot` writes the format its name says, at paper sizes, byte-stable; the bar
labels are the table's cells (4 decimals, its significance marks); the learning curve has intervals
and a y-axis that does not turn noise into a climb.

The results folder: bm25, a system better than it on every query of scifact (`good`) and one worse
(`poor`), on scifact and nfcorpus, 40 queries each, stored as `run` stores them.
"""

from __future__ import annotations

import random
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from gtr_eval import api
from gtr_eval.cli import cli
from gtr_eval.defaults import FIGURE_FONT_SIZE, FIGURE_WIDTHS
from gtr_eval.evaluation import evaluate
from gtr_eval.identity import Identity
from gtr_eval.report.plots import (
    MIN_SPAN,
    MIXED_HATCH,
    PNG_DPI,
    Curve,
    CurveLine,
    bar_board,
    bar_description,
    bar_figure,
    bar_label,
    curve_figure,
    curve_limits,
)
from gtr_eval.report.selection import Selection
from gtr_eval.report.tables import BETTER, MIXED_MARK, WORSE, render
from gtr_eval.results import ResultsStore

QUERIES = 40
RANKS = {  # the rank of each query's relevant document, per system and dataset
    "scifact": {"bm25": (2, 5), "good": (1, 1), "poor": (6, 12)},
    "nfcorpus": {"bm25": (1, 6), "good": (1, 6), "poor": (1, 6)},
}
COMMITTED = Path(__file__).resolve().parents[1] / "results"
MAGIC = {"pdf": (b"%PDF-",), "svg": (b"<?xml", b"<svg"), "png": (b"\x89PNG\r\n\x1a\n",)}


def _store(root: Path, stale: tuple[str, str] | None = None) -> Path:
    """The results folder; `stale` (system, dataset): that result was made from other qrels."""
    rng = random.Random(0)
    qrels = {f"q{i}": {f"d{i}": 1} for i in range(QUERIES)}
    for dataset, systems in RANKS.items():
        for system, (best, worst) in systems.items():
            run = {}
            for q in qrels:
                rank = rng.randint(best, worst)
                ids = [f"x{j}" for j in range(rank - 1)] + [f"d{q[1:]}"] + [f"y{j}" for j in range(5)]
                run[q] = {doc: 1.0 - r / 100 for r, doc in enumerate(ids)}
            sha = "old" if (system, dataset) == stale else "new"
            manifest = {"dataset": {"files_sha256": {"qrels/test.tsv": sha}}}
            identity = Identity({"system": system}, {"name": dataset})
            ResultsStore(root).save(system, dataset, "test", evaluate(qrels, run), run, manifest, identity)
    return root


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    return _store(tmp_path_factory.mktemp("results"))


def _plot(results: Path, output: Path, *args: str):
    return CliRunner().invoke(
        cli, ["plot", "--results-dir", str(results), "--resamples", "200", "--output", str(output), *args]
    )


@pytest.mark.parametrize("fmt", ["pdf", "svg", "png"])
def test_the_output_name_picks_the_format_and_a_regenerated_figure_is_byte_identical(results, tmp_path, fmt):
    first, second = tmp_path / f"a.{fmt}", tmp_path / f"b.{fmt}"
    for path in (first, second):
        out = _plot(results, path, "--width", "single")
        assert out.exit_code == 0, out.output
        assert out.stdout.strip() == str(path)
    data = first.read_bytes()
    assert data.startswith(MAGIC[fmt])
    assert data == second.read_bytes()  # no timestamp, no random id
    inches = FIGURE_WIDTHS["single"]
    shown = bar_description(bar_board(list(ResultsStore(results)), "ndcg@10", ci=None))
    if fmt == "png":
        with Image.open(first) as image:
            image.load()
            assert image.format == "PNG"
            assert image.width == round(inches * PNG_DPI)
            assert image.info["dpi"] == pytest.approx((PNG_DPI, PNG_DPI), abs=0.01)
            assert np.asarray(image.convert("L")).std() > 0  # a drawing, not a blank
            assert image.text["Description"] == shown
    elif fmt == "svg":
        root = ET.parse(first).getroot()
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert float(root.get("width").removesuffix("pt")) == pytest.approx(inches * 72)
        assert len(root.findall(".//{http://www.w3.org/2000/svg}path")) > 10  # vector shapes
        assert b"<image" not in data  # no raster inside
        assert root.find(".//{http://purl.org/dc/elements/1.1/}description").text == shown
    else:
        assert data.rstrip().endswith(b"%%EOF")
        assert re.search(rb"/Type /Page\b", data)
        box = re.search(rb"/MediaBox \[ *0 0 ([0-9.]+) ([0-9.]+) *\]", data)
        assert box and float(box.group(1)) == pytest.approx(inches * 72)
        assert b"/Type3" not in data  # TrueType fonts, as conference checkers ask
        assert b"/CreationDate" not in data


@pytest.mark.parametrize("metric", ["ndcg@10", "recall@100"])
def test_the_committed_plots_show_the_committed_results(metric):
    """docs/figures.md's command wrote them: each bar's label, read from the figure's metadata, is the
    table's cell for the committed results as they are now."""
    with Image.open(COMMITTED / "plots" / f"{metric}.png") as image:
        assert image.width == round(FIGURE_WIDTHS["double"] * PNG_DPI)
        written = image.text["Description"]
    assert written == bar_description(bar_board(list(ResultsStore(COMMITTED)), metric, ci=None))
    assert "marks against bm25" in written and BETTER in written


def test_a_selection_chooses_and_orders_the_bars(results):
    board = bar_board(
        list(ResultsStore(results)), "ndcg@10", ci=None, selection=Selection(("poor", "bm25"), ("scifact",))
    )
    fig = bar_figure(board)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["poor", "bm25"]
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["scifact", "Average"]
    assert bar_label(board, "scifact", "poor").endswith(WORSE)  # still tested against bm25
    outside = _plot(results, results.parent / "sel.png", "-s", "good", "--baseline", "bm25")
    assert outside.exit_code == 2 and "among the systems chosen (-s)" in outside.stderr
    out = _plot(results, results.parent / "sel.png", "-s", "nosuch")
    assert out.exit_code == 2 and "nosuch" in out.stderr


def test_an_unknown_suffix_is_a_mistake_before_any_work(tmp_path):
    empty = tmp_path / "empty"  # no results at all: the suffix is what is wrong, and said first
    empty.mkdir()
    for name in ("chart.jpg", "chart"):
        out = _plot(empty, tmp_path / name)
        assert out.exit_code == 2
        assert out.stderr.count("\n") == 1 and ".pdf, .svg or .png" in out.stderr, out.stderr
        assert not (tmp_path / name).exists()


def _markdown_cells(text: str) -> dict[tuple[str, str], str]:
    """(row, column) → cell of a markdown table, bold removed."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    cells = {}
    for line in lines[2:]:
        row = [c.strip().replace("**", "") for c in line.strip("|").split("|")]
        cells.update({(row[0], col): cell for col, cell in zip(header[1:], row[1:], strict=True)})
    return cells


def test_bar_labels_are_the_tables_cells_with_its_significance_marks(results):
    board = bar_board(list(ResultsStore(results)), "ndcg@10", ci=None)
    assert board.baseline == "bm25"  # the default baseline, since it is stored
    fig = bar_figure(board)
    labels = sorted(t.get_text() for t in fig.axes[0].texts)
    cells = _markdown_cells(render(board))
    expected = sorted(cells[row, system] for row in board.values.index for system in board.system_columns)
    assert labels == expected
    assert cells["scifact", "good"].endswith(BETTER) and cells["scifact", "poor"].endswith(WORSE)
    assert all(re.fullmatch(r"\d\.\d{4}[†‡]?", label) for label in labels)
    bold = {t.get_text() for t in fig.axes[0].texts if t.get_fontweight() == "bold"}
    assert cells["scifact", "good"] in bold and cells["scifact", "poor"] not in bold
    assert "significantly better/worse than bm25" in fig.axes[0].get_xlabel()


def test_a_result_made_from_other_data_is_marked_hatched_and_not_tested(tmp_path):
    board = bar_board(list(ResultsStore(_store(tmp_path, stale=("poor", "scifact")))), "ndcg@10", ci=None)
    assert ("scifact", "poor") in board.mixed
    fig = bar_figure(board)
    labels = {t.get_text() for t in fig.axes[0].texts}
    cells = _markdown_cells(render(board))
    assert cells["scifact", "poor"] == bar_label(board, "scifact", "poor")
    assert bar_label(board, "scifact", "poor").endswith(MIXED_MARK) and WORSE not in bar_label(
        board, "scifact", "poor"
    )
    assert cells["scifact", "poor"] in labels and cells["Average", "poor"] in labels
    hatched = [p for p in fig.axes[0].patches if p.get_hatch()]
    assert len(hatched) == 2  # its scifact bar and its Average
    assert all(p.get_hatch() == MIXED_HATCH for p in hatched)
    assert f"{MIXED_MARK}, hatched" in fig.axes[0].get_xlabel()


def test_a_named_baseline_marks_against_it_and_an_unknown_one_is_a_mistake(results, tmp_path):
    board = bar_board(list(ResultsStore(results)), "ndcg@10", ci=None, baseline="good")
    assert board.baseline == "good" and board.marks.loc["scifact", "bm25"] == WORSE
    out = _plot(results, tmp_path / "x.pdf", "--baseline", "bm26")
    assert out.exit_code == 2 and "did you mean bm25?" in out.stderr


@pytest.mark.parametrize("width", ["single", "double"])
def test_paper_widths_and_font_size(results, width):
    fig = bar_figure(bar_board(list(ResultsStore(results)), "ndcg@10", ci=None), width)
    assert fig.get_size_inches()[0] == pytest.approx(FIGURE_WIDTHS[width])
    ax = fig.axes[0]
    texts = [*ax.texts, *ax.get_yticklabels(), ax.xaxis.label, *fig.legends[0].get_texts()]
    assert {t.get_fontsize() for t in texts} == {FIGURE_FONT_SIZE}
    fig.draw_without_rendering()  # laid out: nothing sticks out of the figure
    box = fig.get_tightbbox()
    assert box.x0 >= -0.01 and box.x1 <= fig.get_size_inches()[0] + 0.01


def test_the_api_writes_a_pdf(results, tmp_path):
    path = api.plot(results, output=tmp_path / "api.pdf", resamples=200, width="single")
    assert path.read_bytes().startswith(b"%PDF-")


# --- learning curve: intervals and the y-axis --------------------------------------------------


def _curve(scores, low, high, baseline=None) -> Curve:
    line = CurveLine("scifact", (1000, 2000, 3000), tuple(scores), baseline, None, tuple(low), tuple(high))
    return Curve("tiny", "ndcg@10", (line,), "bm25" if baseline else None, None)


def test_noise_does_not_fill_the_y_axis():
    """The issue's case: checkpoints at 0.682-0.688, each interval ±0.002."""
    scores = (0.682, 0.688, 0.685)
    curve = _curve(scores, [s - 0.002 for s in scores], [s + 0.002 for s in scores], baseline=0.684)
    low, high = curve_limits(curve)
    assert high - low == pytest.approx(MIN_SPAN)
    assert low < 0.680 and high > 0.690  # every interval inside
    assert (high - low) > 5 * (max(scores) - min(scores))


def test_the_y_axis_holds_wide_intervals_and_stays_inside_0_1():
    wide = _curve((0.5, 0.6, 0.55), (0.3, 0.45, 0.4), (0.7, 0.75, 0.7))
    low, high = curve_limits(wide)
    assert low < 0.3 and high > 0.75 and high - low > MIN_SPAN
    near_one = _curve((0.995, 0.996, 0.997), (0.994,) * 3, (0.998,) * 3)
    low, high = curve_limits(near_one)
    assert high == pytest.approx(1.0) and high - low == pytest.approx(MIN_SPAN)


def test_the_curve_draws_each_interval_as_an_error_bar():
    scores = (0.682, 0.688, 0.685)
    curve = _curve(scores, [s - 0.003 for s in scores], [s + 0.004 for s in scores])
    ax = curve_figure(curve, "single").axes[0]
    (bars,) = [c for c in ax.containers if c.has_yerr]
    segments = bars.lines[2][0].get_segments()
    assert [tuple(np.round(s[:, 1], 6)) for s in segments] == [
        (round(s - 0.003, 6), round(s + 0.004, 6)) for s in scores
    ]
    assert ax.get_ylim() == pytest.approx(curve_limits(curve))
    assert "95% bootstrap" not in ax.get_title()  # this curve says it has no bootstrap
