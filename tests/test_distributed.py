"""Encoding across processes, shard jobs and Ray gives the same rankings as one process.

The pool and the `encode --shard` CLI run on the bundled demo set (fast); the Ray and shard-job
comparison on NFCorpus with the tiny GTR model is marked slow (real data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from gtr_eval.cli import cli
from gtr_eval.data.loader import load_beir_folder
from gtr_eval.data.units import DatasetUnit
from gtr_eval.distributed import encode_job, parse_shard, ray_encode
from gtr_eval.evaluation import read_trec_run
from gtr_eval.paths import BUNDLED
from gtr_eval.pipeline.runner import RunConfig, run
from gtr_eval.retrieval.cache import read_complete
from gtr_eval.retrieval.dense import DenseConfig, DenseRetriever
from gtr_eval.retrieval.factory import RetrieverOptions

DEMO = BUNDLED / "demo"


def top(run_: dict, n: int = 10) -> dict[str, list[str]]:
    return {q: sorted(docs, key=lambda d: (-docs[d], d))[:n] for q, docs in run_.items()}


def test_pool_of_two_processes_matches_one_process(tiny_gtr, tmp_path, amd_cpu):
    data = load_beir_folder(DEMO)
    one = DenseRetriever(
        DenseConfig(model=str(tiny_gtr), shard_size=5), cache_dir=tmp_path / "a", progress=False
    )
    one_index = one.index(data.corpus).stats
    two = DenseRetriever(
        DenseConfig(model=str(tiny_gtr), shard_size=5, devices=("cpu", "cpu")),
        cache_dir=tmp_path / "b",
        progress=False,
    )
    two_index = two.index(data.corpus).stats
    assert two_index["corpus_shards_encoded"] == 5
    # `auto` settles before the workers start: the same backend runs in the pool as in-process
    assert one.spec.backend == two.spec.backend == "onnx"
    vectors = [read_complete(Path(s["cache_folder"]), len(data.corpus), 5) for s in (one_index, two_index)]
    np.testing.assert_allclose(vectors[1], vectors[0], atol=1e-5)
    assert top(two.search(data.queries, 5).run, 5) == top(one.search(data.queries, 5).run, 5)
    # everything cached: no worker process is started at all
    again = DenseRetriever(two.spec, cache_dir=tmp_path / "b", progress=False)
    assert again.index(data.corpus).stats["corpus_shards_reused"] == 5


def test_parse_shard():
    assert parse_shard("3/16") == (3, 16)
    for bad in ("16/16", "1", "-1/2", "a/b"):
        with pytest.raises(ValueError):
            parse_shard(bad)


def test_encode_shard_jobs_then_run_reuses_every_shard(tiny_gtr, tmp_path):
    cache, results = str(tmp_path / "cache"), str(tmp_path / "results")
    common = ["-m", str(tiny_gtr), "-d", "demo", "--cache-dir", cache, "--shard-size", "5", "--quiet"]
    runner = CliRunner()
    first = runner.invoke(cli, ["encode", *common, "--shard", "0/2"])
    assert first.exit_code == 0, first.output
    assert "encoded 3, reused 0 of the 5 corpus shards; all complete: no" in first.output
    second = runner.invoke(cli, ["encode", *common, "--shard", "1/2"])
    assert "encoded 2, reused 0 of the 5 corpus shards; all complete: yes" in second.output
    merged = runner.invoke(cli, ["run", *common, "--results-dir", results])
    assert merged.exit_code == 0, merged.output
    assert "corpus embeddings: 5 shards from cache" in merged.output
    bad = runner.invoke(cli, ["encode", *common, "--shard", "2/2"])
    assert bad.exit_code != 0 and "--shard must be I/N" in bad.output


MAX_LENGTH = 128  # the tiny model's vocabulary is letters: longer inputs only cost time


@pytest.mark.slow
def test_ray_and_shard_jobs_match_a_single_process_on_nfcorpus(tiny_gtr, beir_data, tmp_path):
    ray = pytest.importorskip("ray")
    unit = DatasetUnit("nfcorpus", beir_data / "nfcorpus", "test")
    model = str(tiny_gtr)

    def merged_run(cache: Path) -> tuple[dict, list[str]]:
        lines: list[str] = []
        opts = RetrieverOptions(cache_dir=cache, progress=False, max_length=MAX_LENGTH)
        cfg = RunConfig([model], [str(unit.path)], results_dir=cache / "results", top_k=10, options=opts)
        (result,) = run(cfg, echo=lines.append)
        return top(read_trec_run(result.run_path)), lines

    single, _ = merged_run(tmp_path / "single")

    opts = RetrieverOptions(cache_dir=tmp_path / "shards", progress=False, max_length=MAX_LENGTH)
    jobs = [encode_job(model, unit, opts, (i, 2)) for i in range(2)]
    assert [j["corpus_shards_encoded"] for j in jobs] == [1, 1] and jobs[1]["complete"]
    sharded, lines = merged_run(tmp_path / "shards")
    assert any("corpus embeddings: 2 shards from cache" in s for s in lines)
    assert sharded == single

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        merged = ray_encode(
            [model],
            [unit],
            RetrieverOptions(cache_dir=tmp_path / "ray", max_length=MAX_LENGTH),
            tasks=2,
            echo=print,
        )
    finally:
        ray.shutdown()
    assert merged[0]["corpus_shards_reused"] == 2 and merged[0]["corpus_shards_encoded"] == 0
    via_ray, lines = merged_run(tmp_path / "ray")
    assert any("corpus embeddings: 2 shards from cache" in s for s in lines)
    assert via_ray == single
