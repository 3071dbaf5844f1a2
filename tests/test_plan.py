"""`run --plan` knows what is cached and what this machine does: corpus vectors already in the cache
shorten a dense model's time, and runs stored on this machine scale the compute model's rates."""

from __future__ import annotations

from pathlib import Path

import pytest

from gtr_eval import api, results
from gtr_eval.data.units import expand_datasets
from gtr_eval.pipeline import plan as planning

QUIET = dict(progress=False, echo=lambda _: None)


def _plan(models, results_dir, cache_dir, datasets=("demo",)) -> planning.Plan:
    return planning.plan_run(api.run_config(list(models), list(datasets), results_dir=results_dir,
                                            cache_dir=cache_dir, device="cpu"))  # fmt: skip


def test_a_model_whose_vectors_are_cached_is_planned_as_cached(tiny_gtr, tmp_path):
    cache = tmp_path / "cache"
    before = _plan([str(tiny_gtr)], tmp_path / "elsewhere", cache).datasets[0]
    api.run([str(tiny_gtr)], ["demo"], results_dir=tmp_path / "r", cache_dir=cache, **QUIET)
    # Another results folder (nothing done there), the same cache: every corpus shard is there.
    after = _plan([str(tiny_gtr)], tmp_path / "elsewhere", cache).datasets[0]
    system = tiny_gtr.name
    assert before.cached[system] == 0.0 and after.cached[system] == 1.0
    assert 0 < after.seconds[system] < before.seconds[system]
    assert "of vectors cached" in planning.render_plan(_plan([str(tiny_gtr)], tmp_path / "elsewhere", cache))
    # A shard cut short on disk is not counted.
    (corpus,) = [k.parent for k in (cache / "embeddings").glob("*/*/key.json") if '"corpus"' in k.read_text()]
    shard = corpus / "shard-000000.npy"
    shard.write_bytes(shard.read_bytes()[:-4])
    assert _plan([str(tiny_gtr)], tmp_path / "elsewhere", cache).datasets[0].cached[system] == 0.0


def test_runs_stored_on_this_machine_calibrate_the_rates(tmp_path, monkeypatch):
    stored = tmp_path / "r"
    api.run(["bm25"], ["demo"], results_dir=stored, **QUIET)
    sel = expand_datasets(["nfcorpus"], "/nonexistent")
    bm25 = [planning.model_cost("bm25")]
    cpu = planning.Device("cpu", "cpu")
    plain = planning.make_plan(sel, bm25, cpu, Path("/nonexistent"), tmp_path / "empty")
    calibrated = planning.make_plan(sel, bm25, cpu, Path("/nonexistent"), stored)
    (run,) = calibrated.calibration.runs
    assert (run.system, run.dataset) == ("bm25", "demo") and run.seconds > 0 and run.predicted > 0
    factor = calibrated.calibration.factor(bm25[0])
    assert factor == (pytest.approx(run.seconds / run.predicted), "its own fastest run")
    assert calibrated.datasets[0].seconds["bm25"] == pytest.approx(
        plain.datasets[0].seconds["bm25"] * factor[0]
    )
    assert "Calibrated on this machine by 1 stored run(s): bm25 on demo took" in planning.render_plan(
        calibrated
    )
    # The same results read on another machine calibrate nothing.
    monkeypatch.setattr(
        results, "hardware", lambda: {"platform": "elsewhere", "machine": "x", "cpu_count": 64}
    )
    moved = planning.make_plan(sel, bm25, cpu, Path("/nonexistent"), stored)
    assert moved.calibration.runs == () and moved.datasets[0].seconds == plain.datasets[0].seconds
    assert "Not calibrated" in planning.render_plan(moved)


def test_a_dense_model_without_runs_of_its_own_takes_the_fastest_of_its_kind():
    runs = (planning.Measured("a", "scifact", True, 300.0, 100.0), planning.Measured("b", "nfcorpus", True, 150.0, 100.0),
            planning.Measured("bm25", "scifact", False, 4.0, 1.0))  # fmt: skip
    calibration = planning.Calibration(runs)
    cost = planning.model_cost("all-MiniLM-L6-v2")
    assert calibration.factor(cost) == (1.5, "the fastest run of its kind")
    assert calibration.factor(planning.model_cost("bm25")) == (4.0, "its own fastest run")
    assert planning.Calibration(()).factor(cost) == (1.0, "not calibrated")
