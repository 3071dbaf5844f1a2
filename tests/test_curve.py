"""Learning curves and best checkpoints: `plot --curve` and `table --best-checkpoint` over checkpoint
systems (`NAME@step-N`) stored by the pair pipeline's own `store_pair`.

The results folder: training run `tiny` with three checkpoints, `bm25` and a plain system `alpha`, on
two datasets, the bundled demo set and a copy of it named `scifact` (so a published figure exists for
it and none for `demo`).  Step 3000 is stored on demo only, so the scifact line has two points.  The
checkpoints' rankings are made up with a relevance boost per (system, dataset): demo's best step is
2000, scifact's is 1000 (checked against the stored scores, not assumed).
"""

from __future__ import annotations

import csv
import io
import math
import shutil
from pathlib import Path

import matplotlib.image
import pytest
from click.testing import CliRunner
from demo_results import DEMO, demo_run, demo_spec

from gtr_eval import api
from gtr_eval.cli import cli
from gtr_eval.data.units import resolve_dataset
from gtr_eval.pipeline.pairs import Made, store_pair
from gtr_eval.report.plots import CURVE_XLABEL, curve_figure, learning_curve
from gtr_eval.report.tables import AVERAGE, BETTER, RefSpec, leaderboard, reference_values, render
from gtr_eval.results import ResultsStore
from gtr_eval.retrieval.base import Report

RUN = "tiny"
STEPS = (1000, 2000, 3000)
BOOSTS = {
    "demo": {
        f"{RUN}@step-1000": 0.05,
        f"{RUN}@step-2000": 2.0,
        f"{RUN}@step-3000": 0.3,
        "bm25": 0.4,
        "alpha": 0.6,
    },
    "scifact": {f"{RUN}@step-1000": 2.0, f"{RUN}@step-2000": 0.3, "bm25": 0.1, "alpha": 0.5},
}
REFERENCE = "mteb-results:gtr-t5-base"  # publishes scifact, not demo


def _store(results: Path, root: Path, boosts: dict[str, dict[str, float]]) -> Path:
    """Each (system, dataset) scored and stored as `run` stores a pair."""
    copy = shutil.copytree(DEMO, root / "data" / "scifact")
    units = {"demo": resolve_dataset("demo")[0], "scifact": resolve_dataset(str(copy))[0]}
    for name, systems in boosts.items():
        unit = units[name]
        data = unit.load(store_dir=root / "store")
        for system, boost in systems.items():
            made = Made(demo_spec(system), demo_run(data, system, boost), Report({}))
            store_pair(results, unit, data, made, 0.1, echo=lambda _: None)
    return results


@pytest.fixture
def results(tmp_path) -> Path:
    return _store(tmp_path / "results", tmp_path, BOOSTS)


def _score(results: Path, system: str, dataset: str) -> float:
    return ResultsStore(results).load(system, dataset).metrics["ndcg@10"]


def _stored_curve(results: Path, dataset: str) -> tuple[list[int], list[float]]:
    steps = [s for s in STEPS if f"{RUN}@step-{s}" in BOOSTS[dataset]]
    return steps, [_score(results, f"{RUN}@step-{s}", dataset) for s in steps]


def _cli(*args: str):
    return CliRunner().invoke(cli, list(args))


# --- plot --curve ------------------------------------------------------------------------------


def test_plot_curve_writes_a_png_at_the_default_path(results):
    out = _cli("plot", "--curve", "--results-dir", str(results))
    assert out.exit_code == 0, out.output
    path = results / "plots" / f"curve-{RUN}-ndcg@10.png"
    assert out.stdout.strip() == str(path)
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 100 and image.shape[1] > 100 and image.std() > 0  # a drawing, not a blank


def test_the_figure_has_a_line_per_dataset_at_the_stored_scores(results):
    curve = learning_curve(list(ResultsStore(results)))
    fig = curve_figure(curve)
    (ax,) = fig.axes
    assert ax.get_xlabel() == CURVE_XLABEL == "training step"
    assert ax.get_ylabel() == "ndcg@10"
    solid = [line for line in ax.get_lines() if line.get_linestyle() == "-"]
    assert sorted(line.get_label() for line in solid) == ["demo", "scifact"]  # one line per dataset
    for line in solid:
        steps, scores = _stored_curve(results, line.get_label())
        assert list(line.get_xdata()) == steps  # only the checkpoints stored there, in step order
        assert list(line.get_ydata()) == pytest.approx(scores, abs=1e-12)
    dashed = {line.get_label(): line for line in ax.get_lines() if line.get_linestyle() == "--"}
    assert sorted(dashed) == ["bm25: demo", "bm25: scifact"]
    for dataset in ("demo", "scifact"):
        assert list(dashed[f"bm25: {dataset}"].get_ydata()) == pytest.approx(
            [_score(results, "bm25", dataset)] * 2
        )
    assert not [line for line in ax.get_lines() if line.get_linestyle() == ":"]  # no reference asked for
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["scifact", "demo", "bm25 (dashed)"]


def test_each_checkpoint_has_the_tables_interval_and_the_axis_holds_them(results):
    stored = list(ResultsStore(results))
    curve = learning_curve(stored)
    board = leaderboard([r for r in stored if "@step-" in r.system], ci=curve.bootstrap)
    assert curve.bootstrap is not None
    for line in curve.lines:
        assert len(line.low) == len(line.high) == len(line.steps)
        for step, low, high in zip(line.steps, line.low, line.high, strict=True):
            system = f"{RUN}@step-{step}"
            assert (low, high) == (
                board.ci_low.loc[line.dataset, system],
                board.ci_high.loc[line.dataset, system],
            )
        assert all(lo <= s <= hi for lo, s, hi in zip(line.low, line.scores, line.high, strict=True))
    (ax,) = curve_figure(curve).axes
    low, high = ax.get_ylim()
    assert low <= min(v for line in curve.lines for v in line.low)
    assert high >= max(v for line in curve.lines for v in line.high)
    assert len([c for c in ax.containers if c.has_yerr]) == len(curve.lines)
    plain = learning_curve(stored, ci=None)
    assert plain.bootstrap is None and all(not line.low for line in plain.lines)
    assert not curve_figure(plain).axes[0].containers


def test_checkpoints_carry_the_tables_marks_against_the_baseline(results):
    stored = list(ResultsStore(results))
    curve = learning_curve(stored, ci=None)
    board = leaderboard([r for r in stored if r.system != "alpha"], baseline="bm25")
    marks = {
        (line.dataset, step): m
        for line in curve.lines
        for step, m in zip(line.steps, line.marks, strict=True)
    }
    assert len(marks) == 5 and marks == {
        (row, step): board.marks.loc[row, f"{RUN}@step-{step}"] for row, step in marks
    }
    assert BETTER in marks.values()  # the boosted checkpoints (demo 2000, scifact 1000) beat bm25
    ax = curve_figure(curve).axes[0]
    assert sorted(t.get_text() for t in ax.texts) == sorted(m for m in marks.values() if m)
    assert "significantly better/worse than bm25" in ax.get_title()
    other = learning_curve(stored, baseline="alpha", ci=None)
    assert other.lines != curve.lines  # the marks follow the baseline asked for


def test_a_reference_draws_a_dotted_line_where_it_publishes_a_figure(results):
    curve = learning_curve(list(ResultsStore(results)), reference=REFERENCE)
    (ax,) = curve_figure(curve).axes
    header, published = reference_values(RefSpec.parse(REFERENCE), "ndcg@10")
    dotted = [line for line in ax.get_lines() if line.get_linestyle() == ":"]
    assert [line.get_label() for line in dotted] == [f"{header}: scifact"]  # demo has no published figure
    assert list(dotted[0].get_ydata()) == [published["scifact"]] * 2
    assert any("no dotted line there" in note and "demo" in note for note in curve.notes)
    out = _cli("plot", "--curve", "--results-dir", str(results), "--reference", REFERENCE,
               "--output", str(results.parent / "c.png"))  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "note:" in out.stderr and (results.parent / "c.png").stat().st_size > 0


def test_another_metric_and_baseline(results):
    curve = learning_curve(list(ResultsStore(results)), metric="R@100", baseline="alpha")
    assert curve.metric == "recall@100" and curve.baseline == "alpha"
    by_dataset = {line.dataset: line for line in curve.lines}
    stored = ResultsStore(results).load("alpha", "demo").metrics["recall@100"]
    assert by_dataset["demo"].baseline == pytest.approx(stored)
    (ax,) = curve_figure(curve).axes
    assert ax.get_ylabel() == "recall@100"


def test_the_api_writes_the_same_figure(results, tmp_path):
    path = api.plot_curve(results, output=tmp_path / "api.png", data_dir=None)
    assert path == tmp_path / "api.png" and path.stat().st_size > 0


def test_no_checkpoint_systems_is_one_line_exit_2(tmp_path):
    plain = _store(tmp_path / "results", tmp_path, {"demo": {"bm25": 0.4, "alpha": 0.6}})
    out = _cli("plot", "--curve", "--results-dir", str(plain))
    assert out.exit_code == 2, out.output
    (line,) = [x for x in out.output.splitlines() if x.strip()]
    assert line.startswith("Error: no checkpoint systems (NAME@step-N)") and "alpha, bm25" in line
    assert not (plain / "plots").exists()


def test_the_run_is_chosen_when_there_are_several(tmp_path):
    boosts = {"demo": {"a@step-10": 0.1, "a@step-20": 0.5, "b@step-10": 0.2, "bm25": 0.4}}
    results = _store(tmp_path / "results", tmp_path, boosts)
    both = _cli("plot", "--curve", "--results-dir", str(results))
    assert both.exit_code == 2 and "2 training runs (a, b); choose one with --run" in both.stderr
    typo = _cli("plot", "--curve", "--results-dir", str(results), "--run", "c")
    assert typo.exit_code == 2 and "no training run 'c'" in typo.stderr and "runs: a, b" in typo.stderr
    chosen = learning_curve(list(ResultsStore(results)), run="a")
    assert [line.steps for line in chosen.lines] == [(10, 20)]
    missing = _cli("plot", "--curve", "--results-dir", str(results), "--run", "a", "--baseline", "bm26")
    assert (
        missing.exit_code == 2
        and "baseline 'bm26' has no stored results; did you mean bm25?" in missing.stderr
    )


def test_curve_options_need_curve(results):
    out = _cli("plot", "--results-dir", str(results), "--run", RUN)
    assert out.exit_code == 2 and "go with --curve" in out.stderr


# --- table --best-checkpoint -------------------------------------------------------------------


def _best_step(results: Path, dataset: str) -> int:
    steps, scores = _stored_curve(results, dataset)
    return steps[max(range(len(steps)), key=lambda i: scores[i])]


def test_best_checkpoint_picks_each_datasets_best_step(results):
    assert (_best_step(results, "demo"), _best_step(results, "scifact")) == (
        2000,
        1000,
    )  # the fixture's design
    board = leaderboard(list(ResultsStore(results)), best_checkpoint=True)
    best = f"{RUN} (best)"
    assert board.system_columns == ["alpha", "bm25", best]  # the checkpoints are one column
    for dataset in ("demo", "scifact"):
        step = _best_step(results, dataset)
        assert board.steps[(dataset, best)] == step
        assert board.values.loc[dataset, best] == _score(results, f"{RUN}@step-{step}", dataset)
        for plain in ("alpha", "bm25"):  # other systems as they are
            assert board.values.loc[dataset, plain] == _score(results, plain, dataset)
    assert (AVERAGE, best) not in board.steps
    note = board.notes[1]
    assert note.startswith(f"{best}: per dataset, the best ndcg@10 of the 3 stored checkpoints")
    assert "chosen on the evaluated split itself" in note and "optimistic (selection on test data)" in note
    single = max((1000, 2000), key=lambda s: sum(_score(results, f"{RUN}@step-{s}", d) for d in BOOSTS))
    assert f"the one checkpoint best on average over the same datasets: step {single} (" in note


def test_best_checkpoint_in_text_and_csv(results):
    out = _cli("table", "--results-dir", str(results), "--best-checkpoint", "--baseline", "bm25")
    assert out.exit_code == 0, out.output
    demo = next(line for line in out.stdout.splitlines() if line.startswith("| demo"))
    value = _score(results, f"{RUN}@step-2000", "demo")
    assert f"{value:.4f}" in demo and "@2000" in demo
    assert "selection on test data" in out.stdout
    csv_out = _cli("table", "--results-dir", str(results), "--best-checkpoint", "--format", "csv")
    rows = {r["dataset"]: r for r in csv.DictReader(io.StringIO(csv_out.stdout))}
    assert rows["demo"][f"{RUN} (best) step"] == "2000" and rows["scifact"][f"{RUN} (best) step"] == "1000"
    assert rows[AVERAGE][f"{RUN} (best) step"] == ""
    assert float(rows["scifact"][f"{RUN} (best)"]) == pytest.approx(
        _score(results, f"{RUN}@step-1000", "scifact"), abs=5e-5
    )
    assert "selection on test data" in csv_out.stderr  # the notes, outside the CSV
    import pandas as pd

    frame = pd.read_csv(io.StringIO(csv_out.stdout))
    assert frame[f"{RUN} (best) step"].dropna().tolist() == [1000, 2000]


def test_without_the_option_checkpoints_are_columns_of_their_own(results):
    board = leaderboard(list(ResultsStore(results)))
    assert [s for s in board.system_columns if "@step-" in s] == [f"{RUN}@step-{s}" for s in STEPS]
    assert not board.steps and " @1000" not in render(board)
    assert math.isnan(board.values.loc["scifact", f"{RUN}@step-3000"])


def test_best_checkpoint_without_checkpoints_is_exit_2(tmp_path):
    plain = _store(tmp_path / "results", tmp_path, {"demo": {"bm25": 0.4}})
    out = _cli("table", "--results-dir", str(plain), "--best-checkpoint")
    assert out.exit_code == 2 and "no checkpoint systems" in out.stderr
