"""Checkpoint sweeps: `run -m 'out/checkpoint-*'` or `-m out/` evaluates each of a trainer's
checkpoints, in step order, as system `out@step-N`; the trainer's own state is not the model's."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from gtr_eval import api
from gtr_eval.cli import cli
from gtr_eval.retrieval.weights import TRAINER_STATE_FILES, weights_fingerprint

STEPS = (2, 10, 6)  # made in this order; name order (10, 2, 6) and step order (2, 6, 10) differ
SYSTEMS = ["out@step-2", "out@step-6", "out@step-10"]
# Dummy contents for the files a transformers Trainer writes beside the model in each checkpoint.
TRAINER_FILES = {
    "optimizer.pt": b"adam moments",
    "scheduler.pt": b"lr schedule",
    "rng_state.pth": b"rng",
    "trainer_state.json": b'{"global_step": 0}',
    "training_args.bin": b"args",
}


def _save_checkpoint(folder: Path, seed: int) -> Path:
    """A tiny sentence-transformers model saved as the trainer saves one, its trainer state beside it."""
    from sentence_transformers import SentenceTransformer
    from tiny_models import build_tiny_dense_pair

    _, doc = build_tiny_dense_pair(folder.parent / f"_tiny-{seed}", seed=seed, max_seq_length=64)
    SentenceTransformer(str(doc), device="cpu").save(str(folder))
    shutil.rmtree(doc.parent)
    for name, content in TRAINER_FILES.items():
        (folder / name).write_bytes(content)
    return folder


@pytest.fixture(scope="module")
def trainer_run(tmp_path_factory) -> Path:
    """`<tmp>/out/checkpoint-{2,10,6}`: the layout a transformers / sentence-transformers Trainer writes."""
    out = tmp_path_factory.mktemp("train") / "out"
    for step in STEPS:
        _save_checkpoint(out / f"checkpoint-{step}", seed=step)
    (out / "runs").mkdir()  # a trainer's TensorBoard logs: neither a model nor a checkpoint
    return out


def _run(*args: str):
    return CliRunner().invoke(cli, ["run", "-d", "demo", "--backend", "torch", "--quiet", *args])


def _computed(output: str) -> list[str]:
    return re.findall(r"^\[done\] (\S+) on demo", output, flags=re.M)


def test_a_glob_runs_each_checkpoint_in_step_order_and_resumes(trainer_run, tmp_path):
    results = tmp_path / "results"
    first = _run("-m", f"{trainer_run}/checkpoint-*", "--results-dir", str(results))
    assert first.exit_code == 0, first.output
    assert _computed(first.output) == SYSTEMS
    assert sorted(p.name for p in results.iterdir() if not p.name.startswith(".")) == sorted(SYSTEMS)
    assert all((results / s / "demo.json").is_file() for s in SYSTEMS)
    again = _run("-m", str(trainer_run), "--results-dir", str(results))  # the folder form: the same
    assert again.exit_code == 0, again.output
    assert _computed(again.output) == []
    assert [s for s in SYSTEMS if f"[skip] {s} on demo: already done" in again.output] == SYSTEMS
    shell = [f"{trainer_run}/checkpoint-{n}" for n in sorted(map(str, STEPS))]  # as the shell sorts
    expanded = _run(*(a for path in shell for a in ("-m", path)), "--results-dir", str(results))
    assert expanded.exit_code == 0 and _computed(expanded.output) == []
    assert [s for s in SYSTEMS if f"[skip] {s} on demo" in expanded.output] == SYSTEMS


def test_plan_lists_each_checkpoint_system(trainer_run, tmp_path):
    planned = _run("-m", str(trainer_run), "--results-dir", str(tmp_path), "--plan")
    assert planned.exit_code == 0, planned.output
    assert "Plan: 3 system(s) x 1 dataset(s) = 3 pairs" in planned.output
    header = next(line for line in planned.output.splitlines() if line.startswith("| dataset"))
    assert re.findall(r"(\S+) done", header) == SYSTEMS


def test_the_api_expands_the_same_checkpoints(trainer_run, tmp_path):
    cfg = api.run_config([f"{trainer_run}/checkpoint-*"], ["demo"], results_dir=tmp_path)
    assert [cfg.system_of(m) for m in cfg.models] == SYSTEMS
    assert cfg.models == [str(trainer_run / f"checkpoint-{s}") for s in (2, 6, 10)]


def test_name_names_the_training_run(trainer_run, tmp_path):
    cfg = api.run_config([str(trainer_run)], ["demo"], results_dir=tmp_path, name="lr3e-5")
    cfg.check()
    assert [cfg.system_of(m) for m in cfg.models] == ["lr3e-5@step-2", "lr3e-5@step-6", "lr3e-5@step-10"]
    planned = _run("-m", str(trainer_run), "--name", "lr3e-5", "--results-dir", str(tmp_path), "--plan")
    assert planned.exit_code == 0 and "lr3e-5@step-10 done" in planned.output
    other = tmp_path / "other"
    shutil.copytree(trainer_run / "checkpoint-2", other / "checkpoint-2")
    both = _run("-m", str(trainer_run), "-m", str(other), "--name", "x", "--results-dir", str(tmp_path))
    assert both.exit_code == 2
    assert "Error: --name x: two checkpoints of this sweep would both be x@step-2" in both.output
    mixed = _run("-m", str(trainer_run), "-m", "bm25", "--name", "x", "--results-dir", str(tmp_path))
    assert (
        mixed.exit_code == 2 and "--name names one system (or the run of a checkpoint sweep)" in mixed.output
    )


def test_a_glob_matching_nothing_or_an_empty_folder_is_one_line_before_any_work(trainer_run, tmp_path):
    results = tmp_path / "results"
    nothing = _run("-m", f"{trainer_run}/checkpoint-9*", "--results-dir", str(results))
    assert nothing.exit_code == 2
    assert nothing.output.strip().splitlines() == [
        f"Error: {trainer_run}/checkpoint-9*: no model folder matches ({trainer_run} holds 3 checkpoints: "
        "checkpoint-2 … checkpoint-10)"
    ]
    typo = _run("-m", f"{trainer_run.parent}/ot/checkpoint-*", "--results-dir", str(results))
    assert typo.exit_code == 2 and "no model folder matches (" in typo.output
    assert "ot: no such folder; did you mean out?)" in typo.output
    empty = _run("-m", str(trainer_run / "runs"), "--results-dir", str(results))
    assert empty.exit_code == 2 and len(empty.output.strip().splitlines()) == 1
    assert "no model in this folder (no config.json or modules.json) and no checkpoint-<N> folders" in (
        empty.output
    )
    assert not results.exists()


def test_a_checkpoint_given_alone_is_named_after_its_run(trainer_run, tmp_path, monkeypatch):
    cfg = api.run_config([str(trainer_run / "checkpoint-10")], ["demo"], results_dir=tmp_path)
    assert cfg.system_of(cfg.models[0]) == "out@step-10"
    monkeypatch.chdir(trainer_run)  # given relative to the run folder: still its run's name
    cfg = api.run_config(["checkpoint-10"], ["demo"], results_dir=tmp_path)
    assert cfg.system_of(cfg.models[0]) == "out@step-10"


# ---------------------------------------------------------------------------------- the fingerprint


def test_trainer_state_is_not_part_of_the_weights_fingerprint(trainer_run, tmp_path):
    bare = shutil.copytree(trainer_run / "checkpoint-2", tmp_path / "model")
    for name in TRAINER_FILES:
        (bare / name).unlink()
    assert weights_fingerprint(bare) == weights_fingerprint(trainer_run / "checkpoint-2")
    (bare / "rng_state_3.pth").write_bytes(b"another rank")  # per-process rng states too
    (bare / "optimizer.bin").write_bytes(b"accelerate's name")
    assert weights_fingerprint(bare) == weights_fingerprint(trainer_run / "checkpoint-2")
    assert {"optimizer.pt", "rng_state*.pth", "trainer_state.json"} <= set(TRAINER_STATE_FILES)


def test_a_model_folder_without_trainer_state_keeps_its_stored_digest(tmp_path):
    """Stored results name their model by this digest: computed before trainer state was left out."""
    model = tmp_path / "m"
    (model / "1_Pooling").mkdir(parents=True)
    (model / "config.json").write_text('{"hidden_size": 32}')
    (model / "model.safetensors").write_bytes(bytes(range(256)) * 4)
    (model / "1_Pooling" / "config.json").write_text('{"pooling_mode_mean_tokens": true}')
    (model / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    (model / "pytorch_model.bin").write_bytes(b"weights")
    (model / "README.md").write_text("not hashed")
    assert weights_fingerprint(model) == "dab5ed11b77933e7247971aef0a47d184631df7f99c825ccede28258c794df53"
    # a sub-module's file named like trainer state is the model's own
    (model / "1_Pooling" / "optimizer.pt").write_bytes(b"part of the model")
    assert weights_fingerprint(model) != "dab5ed11b77933e7247971aef0a47d184631df7f99c825ccede28258c794df53"


def test_a_run_folder_holding_its_final_model_is_that_model(tmp_path):
    """`trainer.save_model(out)` at the end of training puts the final model beside the checkpoints:
    `-m out` is then that model, and the checkpoints are asked for by a glob."""
    from gtr_eval.retrieval.factory import expand_requests

    out = tmp_path / "out"
    for folder in (out, out / "checkpoint-500", out / "checkpoint-1000"):
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}")
    assert expand_requests([str(out), "bm25"]) == [str(out), "bm25"]
    steps = expand_requests(["bm25", f"{out}/checkpoint-*"])
    assert steps == ["bm25", str(out / "checkpoint-500"), str(out / "checkpoint-1000")]
