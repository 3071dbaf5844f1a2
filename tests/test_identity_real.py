"""One identity for every result, on the real SciFact (../shared/data) and the committed results:
another split is stored beside the test result, judgments cut short are refused in one line, the
committed fused result is served from the committed inputs, and every derived committed result names
input runs equal to the committed ones.  (The demo-set cases are in tests/test_identity.py; the
README's usage commands, walked offline on a copy of the committed results, in tests/test_readme.py.)
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import ROOT

from gtr_eval.cli import cli
from gtr_eval.results import ResultsStore

COMMITTED = ROOT / "results"
FUSED = "rrf(bm25+all-MiniLM-L6-v2)"


def _gtr(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`gtr-eval ARGS` run in this process (click's runner, in `cwd`), reported as a finished process:
    these tests are about what a run stores and says, not about processes, so they skip the start-up."""
    here = Path.cwd()
    try:
        os.chdir(cwd or here)
        out = CliRunner().invoke(cli, list(args))
    finally:
        os.chdir(here)
    return subprocess.CompletedProcess(args, out.exit_code, out.stdout, out.stderr)


def _scifact(tmp_path: Path, beir_data: Path) -> Path:
    """A folder named scifact (the registry's name: test is its split) with the real files; qrels copied so
    a test may change them, corpus and queries linked."""
    folder = tmp_path / "scifact"
    (folder / "qrels").mkdir(parents=True)
    for name in ("corpus.jsonl", "queries.jsonl"):
        (folder / name).symlink_to(beir_data / "scifact" / name)
    for qrels in (beir_data / "scifact" / "qrels").glob("*.tsv"):
        shutil.copy(qrels, folder / "qrels" / qrels.name)
    return folder


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_bm25_on_the_train_split_is_its_own_result_beside_the_test_one(beir_data, tmp_path):
    folder, results = _scifact(tmp_path, beir_data), tmp_path / "r"
    cache = ["--cache-dir", str(tmp_path / "cache"), "--results-dir", str(results), "--quiet"]
    test = _gtr("run", "-m", "bm25", "-d", str(folder), *cache)
    train = _gtr("run", "-m", "bm25", "-d", str(folder), "--split", "train", *cache)
    assert test.returncode == 0 and train.returncode == 0, test.stderr + train.stderr
    assert "[skip]" not in train.stderr  # the test result is not served as the train result
    assert round(ResultsStore(results).load("bm25", "scifact").metrics["ndcg@10"], 4) == 0.6863
    assert round(ResultsStore(results).load("bm25", "scifact", "train").metrics["ndcg@10"], 4) == 0.6964
    again_test = _gtr("run", "-m", "bm25", "-d", str(folder), *cache)
    again_train = _gtr("run", "-m", "bm25", "-d", str(folder), "--split", "train", *cache)
    assert "[skip] bm25 on scifact: already done" in again_test.stderr and "0.6863" in again_test.stdout
    assert "[skip] bm25 on scifact (train split): already done" in again_train.stderr
    assert "0.6964" in again_train.stdout and "scifact [train]" in again_train.stdout


@pytest.mark.slow
def test_qrels_cut_to_60_lines_are_refused_and_overwrite_scores_them_afresh(beir_data, tmp_path):
    folder, results = _scifact(tmp_path, beir_data), tmp_path / "r"
    cache = ["--cache-dir", str(tmp_path / "cache"), "--quiet"]
    assert _gtr("run", "-m", "bm25", "-d", str(folder), "--results-dir", str(results), *cache).returncode == 0
    qrels = folder / "qrels" / "test.tsv"
    before = _sha(qrels)
    qrels.write_text("".join(qrels.read_text().splitlines(keepends=True)[:60]))
    refused = _gtr("run", "-m", "bm25", "-d", str(folder), "--results-dir", str(results), *cache)
    assert refused.returncode == 3 and _sha(qrels) != before
    assert (
        "[refused] bm25 on scifact was made with other qrels (qrels/test.tsv differs); use --name NAME to keep "
        "both, or --overwrite to replace it"
    ) in refused.stderr
    assert "0.6863" not in refused.stdout  # the old score is not shown as this data's
    again = _gtr("run", "-m", "bm25", "-d", str(folder), "--results-dir", str(results), "--overwrite", *cache)
    fresh = _gtr("run", "-m", "bm25", "-d", str(folder), "--results-dir", str(tmp_path / "fresh"), *cache)
    assert again.returncode == 0 and fresh.returncode == 0
    got, want = (
        ResultsStore(results).load("bm25", "scifact"),
        ResultsStore(tmp_path / "fresh").load("bm25", "scifact"),
    )
    assert got.metrics == want.metrics and round(got.metrics["ndcg@10"], 4) != 0.6863


@pytest.fixture
def committed_copy(tmp_path, beir_data) -> Path:
    """A working folder holding `results/` (a copy of the committed one) and `data/` (the real SciFact
    and NFCorpus), as a checkout is after `make test`."""
    shutil.copytree(COMMITTED, tmp_path / "results")
    (tmp_path / "data").symlink_to(beir_data)
    return tmp_path


@pytest.mark.slow
def test_fusing_the_committed_results_needs_no_overwrite_and_stays_0_7182(committed_copy):
    out = _gtr("fuse", "--rrf", "bm25", "all-MiniLM-L6-v2", "-d", "scifact", "--results-dir", "results",
               cwd=committed_copy)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert f"[skip] {FUSED} on scifact: already done" in out.stderr
    assert (
        round(ResultsStore(committed_copy / "results").load(FUSED, "scifact").metrics["ndcg@10"], 4) == 0.7182
    )
    # and made afresh from the committed inputs, it is the committed fused result, byte for byte
    committed_run = ResultsStore(COMMITTED).load(FUSED, "scifact").run_path
    shutil.rmtree(committed_copy / "results" / FUSED)
    again = _gtr("fuse", "--rrf", "bm25", "all-MiniLM-L6-v2", "-d", "scifact", "--results-dir", "results",
               cwd=committed_copy)  # fmt: skip
    assert again.returncode == 0, again.stderr
    fresh = ResultsStore(committed_copy / "results").load(FUSED, "scifact")
    assert round(fresh.metrics["ndcg@10"], 4) == 0.7182 and _sha(fresh.run_path) == _sha(committed_run)
    assert fresh.identity == ResultsStore(COMMITTED).load(FUSED, "scifact").identity


def test_every_derived_committed_result_names_the_committed_inputs():
    """Fused and re-ranked results name their inputs by run sha256: each must be the committed run of that
    input on the same dataset and split, made from the same data (so the committed tables agree)."""
    results = list(ResultsStore(COMMITTED))
    derived = [r for r in results if r.spec.get("inputs")]
    assert derived, "the committed results hold a fused system"
    for r in results:
        assert r.identity is not None, f"{r.path}: no identity (regenerate the committed results)"
    for r in derived:
        for source in r.spec["inputs"]:
            stored = ResultsStore(COMMITTED).load(source["system"], r.dataset, r.split)
            assert source["run_sha256"] == _sha(stored.run_path), (
                f"{r.path}: {source['system']}'s run differs"
            )
            assert stored.identity.dataset == r.identity.dataset, (
                f"{r.path}: made from other data than its inputs"
            )
        inputs = r.identity.system["inputs"]
        assert [i["run_sha256"] for i in inputs] == [s["run_sha256"] for s in r.spec["inputs"]]
