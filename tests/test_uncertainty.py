"""Bootstrap intervals: against an independent numpy bootstrap (same resample count, another seed)
and the normal approximation, on the committed results; paired, averaged and Holm-widened ones;
and how they appear in `table --ci`, its CSV, LaTeX and the API."""

from __future__ import annotations

import io
import random

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import ROOT

from gtr_eval import api
from gtr_eval.cli import cli
from gtr_eval.report.tables import AVERAGE, CQADUPSTACK_SUBFORUMS, holm, leaderboard, render
from gtr_eval.results import ResultsStore, StoredResult
from gtr_eval.uncertainty import (
    Bootstrap,
    Draws,
    bootstrap_pvalue,
    dataset_rng,
    holm_levels,
    interval,
    paired_interval,
    percentile_interval,
    resample_means,
)

COMMITTED = ROOT / "results"
B = 10_000
MINILM = "all-MiniLM-L6-v2"


@pytest.fixture(scope="module")
def committed():
    return list(ResultsStore(COMMITTED))


def per_query(results, system: str, dataset: str, metric: str = "ndcg@10") -> dict[str, float]:
    return next(r for r in results if (r.system, r.dataset) == (system, dataset)).per_query[metric]


def independent_bootstrap(scores: np.ndarray, seed: int = 12345, level: float = 0.95) -> tuple[float, float]:
    """The textbook percentile bootstrap, written from scratch: index resamples, mean, percentiles."""
    rng = np.random.default_rng(seed)
    means = scores[rng.integers(0, len(scores), size=(B, len(scores)))].mean(axis=1)
    return tuple(np.percentile(means, [50 * (1 - level), 50 * (1 + level)]))


def normal_interval(scores: np.ndarray) -> tuple[float, float]:
    half = 1.96 * scores.std(ddof=1) / np.sqrt(len(scores))
    return scores.mean() - half, scores.mean() + half


def test_bm25_scifact_interval_agrees_with_an_independent_bootstrap_and_the_normal_approximation(committed):
    scores = np.array(list(per_query(committed, "bm25", "scifact").values()))
    board = leaderboard(committed, ci=Bootstrap(resamples=B))
    ours = board.ci_low.loc["scifact", "bm25"], board.ci_high.loc["scifact", "bm25"]
    assert board.values.loc["scifact", "bm25"] == pytest.approx(scores.mean())
    assert ours[0] < scores.mean() < ours[1]
    assert np.allclose(ours, independent_bootstrap(scores), rtol=0, atol=0.003)
    assert np.allclose(ours, normal_interval(scores), rtol=0, atol=0.01)
    pq = per_query(committed, "bm25", "scifact")
    assert ours == pytest.approx(interval([pq[q] for q in sorted(pq)], dataset="scifact"))


@pytest.mark.parametrize("dataset", ["scifact", "nfcorpus"])
def test_paired_interval_minilm_minus_bm25(committed, dataset):
    a, b = per_query(committed, MINILM, dataset), per_query(committed, "bm25", dataset)
    diff = np.array([a[q] - b[q] for q in sorted(a)])
    ours = paired_interval(a, b, Bootstrap(resamples=B), dataset)
    assert np.allclose(ours, independent_bootstrap(diff, seed=999), rtol=0, atol=0.003)
    assert np.allclose(ours, normal_interval(diff), rtol=0, atol=0.01)
    # The table's Δ is the same paired bootstrap, at the level Holm gives it among the two datasets.
    board = leaderboard(committed, baseline="bm25", ci=Bootstrap(resamples=B))
    level = board.diff_level.loc[dataset, MINILM]
    assert level in (0.95, 1 - 0.05 / 2)
    table = board.diff_low.loc[dataset, MINILM], board.diff_high.loc[dataset, MINILM]
    assert np.allclose(table, independent_bootstrap(diff, seed=7, level=level), rtol=0, atol=0.004)
    assert board.diff.loc[dataset, MINILM] == pytest.approx(diff.mean())
    if level == 0.95:
        assert table == pytest.approx(ours)  # the very same draws when Holm does not widen it


def test_the_average_interval_redraws_within_each_dataset_then_averages(committed):
    board = leaderboard(committed, ci=Bootstrap(resamples=B))
    rng = np.random.default_rng(2024)
    means = []
    for dataset in ("scifact", "nfcorpus"):
        scores = np.array(list(per_query(committed, "bm25", dataset).values()))
        means.append(scores[rng.integers(0, len(scores), size=(B, len(scores)))].mean(axis=1))
    expected = np.percentile(np.mean(means, axis=0), [2.5, 97.5])
    ours = board.ci_low.loc[AVERAGE, "bm25"], board.ci_high.loc[AVERAGE, "bm25"]
    assert np.allclose(ours, expected, rtol=0, atol=0.003)
    assert ours[1] - ours[0] < min(
        board.ci_high.loc[d, "bm25"] - board.ci_low.loc[d, "bm25"] for d in ("scifact", "nfcorpus")
    )


def test_a_datasets_draws_do_not_depend_on_the_other_datasets_of_the_table(committed):
    alone = leaderboard([r for r in committed if r.dataset == "scifact"], ci=Bootstrap(resamples=1000))
    both = leaderboard(committed, ci=Bootstrap(resamples=1000))
    assert alone.ci_low.loc["scifact"].equals(both.ci_low.loc["scifact"])
    other_seed = leaderboard(committed, ci=Bootstrap(resamples=1000, seed=1))
    assert not other_seed.ci_low.loc["scifact"].equals(both.ci_low.loc["scifact"])


def test_draws_are_the_same_however_the_resamples_are_blocked(monkeypatch):
    import gtr_eval.uncertainty as uncertainty

    scores = np.random.default_rng(0).random((300, 3))
    whole = resample_means(scores, 1000, dataset_rng(0, "x"))
    monkeypatch.setattr(uncertainty, "_BLOCK_ENTRIES", 7 * 300)  # blocks of 7 resamples
    assert np.allclose(resample_means(scores, 1000, dataset_rng(0, "x")), whole, rtol=0, atol=1e-12)
    assert whole.shape == (1000, 3) and resample_means(scores[:, 0], 10, dataset_rng(0, "x")).shape == (10,)


def test_draws_share_resamples_across_columns_and_calls():
    draws = Draws(Bootstrap(resamples=500))
    a = {f"q{i}": float(i % 3) for i in range(50)}
    b = {q: 2 * v for q, v in a.items()}
    first = draws.of("d", {"a": a})["a"]
    second = draws.of("d", {"b": b})["b"]
    assert np.allclose(second, 2 * first)  # the same queries drawn for both: b's means are twice a's
    other = {f"x{i}": 1.0 for i in range(49)}  # other queries: its own draws, constant means
    assert np.allclose(draws.of("d", {"c": other})["c"], 1.0)


def test_holm_levels():
    assert holm_levels([0.001, 0.04, 0.2]) == pytest.approx([1 - 0.05 / 3, 0.975, 0.975])
    # Holm stops at the first it keeps, even when a later p-value is under its own threshold.
    assert holm_levels([0.02, 0.021, 0.04]) == pytest.approx([1 - 0.05 / 3] * 3)
    assert holm_levels([0.3]) == [0.95]


def test_holm_widened_intervals_exclude_zero_exactly_where_holm_rejects():
    rng = np.random.default_rng(5)
    for _ in range(200):
        draws = [rng.normal(rng.uniform(-0.03, 0.03), 0.01, 4000) for _ in range(rng.integers(2, 8))]
        pvalues = [bootstrap_pvalue(d) for d in draws]
        levels = holm_levels(pvalues)
        excludes = [
            not (lo <= 0 <= hi)
            for lo, hi in (percentile_interval(d, lv) for d, lv in zip(draws, levels, strict=True))
        ]
        rejects = [p <= 0.05 for p in holm(pvalues)]
        assert excludes == rejects


def test_bootstrap_config_is_checked_and_recorded():
    with pytest.raises(ValueError, match="at least 100"):
        Bootstrap(resamples=10)
    with pytest.raises(ValueError, match="level"):
        Bootstrap(level=1.5)
    assert "10,000 resamples, seed 0" in Bootstrap().describe()
    assert bootstrap_pvalue(np.ones(100)) == 0.0 and bootstrap_pvalue(np.zeros(100)) == 1.0


def _stored(system: str, dataset: str, scores: list[float]) -> StoredResult:
    pq = {f"q{i}": s for i, s in enumerate(scores)}
    from pathlib import Path

    return StoredResult(
        system,
        dataset,
        "test",
        {"ndcg@10": float(np.mean(scores))},
        {"ndcg@10": pq},
        {},
        Path(f"{system}.json"),
    )


def test_cqadupstack_is_redrawn_within_each_subforum():
    rnd = random.Random(1)
    forums = {f: [rnd.random() ** 2 for _ in range(rnd.randint(15, 40))] for f in CQADUPSTACK_SUBFORUMS}
    results = [_stored("s", f"cqadupstack/{f}", v) for f, v in forums.items()]
    results += [_stored("t", f"cqadupstack/{f}", [x / 2 for x in v]) for f, v in forums.items()]
    board = leaderboard(results, ci=Bootstrap(resamples=B), baseline="t")
    rng = np.random.default_rng(77)
    redrawn = [np.asarray(v)[rng.integers(0, len(v), size=(B, len(v)))].mean(axis=1) for v in forums.values()]
    expected = np.percentile(np.mean(redrawn, axis=0), [2.5, 97.5])
    assert np.allclose(
        (board.ci_low.loc["cqadupstack", "s"], board.ci_high.loc["cqadupstack", "s"]), expected, atol=0.003
    )
    # t is s halved on every query: the paired difference is s / 2, drawn from the same resamples.
    half = np.array([board.ci_low.loc["cqadupstack", "s"], board.ci_high.loc["cqadupstack", "s"]]) / 2
    assert np.allclose(
        (board.diff_low.loc["cqadupstack", "s"], board.diff_high.loc["cqadupstack", "s"]), half, atol=1e-9
    )


def test_table_ci_renders_in_every_format(committed):
    board = leaderboard(committed, baseline="bm25", ci=Bootstrap(resamples=1000))
    lo, hi = board.ci_low.loc["scifact", MINILM], board.ci_high.loc["scifact", MINILM]
    text = render(board)
    assert f"{board.values.loc['scifact', MINILM]:.4f}‡ [{lo:.4f}, {hi:.4f}]" in text
    assert f"Δ {MINILM}−bm25" in text.splitlines()[0] and "Holm-corrected" in text
    assert "10,000" not in text and "1,000 resamples, seed 0" in text  # the note names what was drawn
    assert f"±{(hi - lo) / 2:.4f}" in render(board, ci_style="pm")
    assert rf"$\pm${(hi - lo) / 2:.4f}" in render(board, "latex", ci_style="pm")
    frame = pd.read_csv(io.StringIO(render(board, "csv")), index_col="dataset")
    assert frame.loc["scifact", f"{MINILM} low"] == pytest.approx(lo, abs=5e-5)
    assert frame.loc[AVERAGE, "bm25 high"] == pytest.approx(board.ci_high.loc[AVERAGE, "bm25"], abs=5e-5)
    assert frame.loc["scifact", f"Δ {MINILM}−bm25 low"] == pytest.approx(
        board.diff_low.loc["scifact", MINILM], abs=5e-5
    )
    with pytest.raises(ValueError, match="ci_style"):
        render(board, ci_style="wide")


def test_without_ci_the_table_is_as_before(committed):
    plain = render(leaderboard(committed, baseline="bm25"))
    assert "[" not in plain.split("Notes:")[0] and "bootstrap" not in plain and "Δ" not in plain


def test_table_cli_and_api_give_the_same_intervals(committed):
    args = ["table", "--results-dir", str(COMMITTED), "--ci", "--baseline", "bm25", "--resamples", "2000"]
    out = CliRunner().invoke(cli, args)
    assert out.exit_code == 0, out.output
    assert out.output == api.table(COMMITTED, baseline="bm25", ci=True, resamples=2000).text
    csv_out = CliRunner().invoke(cli, [*args, "--format", "csv", "--seed", "4"])
    assert "bm25 low,bm25 high" in csv_out.stdout.splitlines()[0]
    assert "2,000 resamples, seed 4" in csv_out.stderr  # the notes go to stderr with CSV


def test_a_result_without_per_query_scores_gets_no_interval(committed):
    lacking = [
        StoredResult(r.system, r.dataset, r.split, r.metrics, {}, r.manifest, r.path)
        if r.system == MINILM
        else r
        for r in committed
    ]
    board = leaderboard(lacking, ci=Bootstrap(resamples=500), baseline="bm25")
    assert board.ci_low[MINILM].isna().all() and board.ci_low["bm25"].notna().all()
    assert board.diff_low[MINILM].isna().all()
    assert any("No interval (no per-query scores)" in n and MINILM in n for n in board.notes)
    assert " – " in render(board).split("\n")[2] or "–" in render(board)


def test_evaluation_intervals_are_the_json_ci95(committed, beir_data):
    ev = api.evaluate_run(
        beir_data / "scifact" / "qrels" / "test.tsv", ResultsStore(COMMITTED).load("bm25", "scifact").run_path
    )
    intervals = ev.intervals(Bootstrap(resamples=B), dataset="scifact")
    board = leaderboard(committed, ci=Bootstrap(resamples=B))
    assert intervals["ndcg@10"] == pytest.approx(
        [board.ci_low.loc["scifact", "bm25"], board.ci_high.loc["scifact", "bm25"]]
    )
    assert set(intervals) == set(ev.metrics)
