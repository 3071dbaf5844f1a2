"""Shared by tests/test_sparse.py and tests/test_multivector.py: the library's own scores for the
pairs a stored run holds, and the kill -9 / resume check for a family's corpus cache (the same
protocol as tests/test_reliability.py uses for dense models)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
from cli_process import GTR_EVAL
from test_reliability import (
    WORDS,
    _cache_lines,
    _complete_shards,
    _in_process,
    _sigkill,
    _temp_files,
    _wait_until,
    _write_beir,
)

from gtr_eval.evaluation import read_trec_run
from gtr_eval.results import ResultsStore

HUB_COMMIT = "c" * 40


def library_scores(
    model, family: str, queries: list[str], docs: list[str], token_dtype=np.float32
) -> np.ndarray:
    """(queries x docs) scores by the library itself: `SparseEncoder.similarity` (dot) or
    `MultiVectorEncoder.similarity` (MaxSim), on vectors from `encode_query` / `encode_document`.
    `token_dtype` rounds document token vectors as the cache stores them (float16 by default)."""
    import torch

    q = model.encode_query(queries)
    d = model.encode_document(docs)
    if family == "multivector":
        d = [torch.as_tensor(np.asarray(x.float().numpy(), dtype=token_dtype).astype(np.float32)) for x in d]
    return model.similarity(q, d).cpu().numpy()


def stored_pairs(results: Path, system: str, dataset: str, n_queries: int, per_query: int, seed: int = 0):
    """A seeded sample of (query id, [(doc id, score)]) from a stored run: each query's best hits."""
    run = read_trec_run(ResultsStore(results).load(system, dataset).run_path)
    qids = sorted(run)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(qids), size=min(n_queries, len(qids)), replace=False)
    return [(qids[i], sorted(run[qids[i]].items(), key=lambda x: -x[1])[:per_query]) for i in sorted(chosen)]


N_DOCS, SHARD = 1000, 50
N_SHARDS = N_DOCS // SHARD


def synthetic(root: Path) -> Path:
    """1,000 deterministic short documents, 20 queries with one relevant document each."""
    n = len(WORDS)
    docs = {
        f"s{i:04d}": " ".join(WORDS[(i * 7 + j * (i % 5 + 1)) % n] for j in range(2 + i % 5))
        for i in range(N_DOCS)
    }
    queries = {f"q{q}": f"{WORDS[q % n]} {WORDS[(3 * q + 1) % n]}" for q in range(20)}
    return _write_beir(root, docs, queries, [(f"q{q}", f"s{(q * 71) % N_DOCS:04d}", 1) for q in range(20)])


def _args(model: Path, syn: Path, results: Path, cache: Path) -> list[str]:
    return ["run", "-m", str(model), "-d", str(syn), "--results-dir", str(results), "--cache-dir", str(cache),
            "--shard-size", str(SHARD), "--quiet"]  # fmt: skip


def check_sampled_pairs(
    results: Path, system: str, data, model, family: str, n_queries: int, token_dtype=np.float32
):
    """For a seeded sample of queries: their stored top-20 scores equal the library's, and no
    document of a random sample of 300 others scores above the 20th hit (the search is exact).
    The library encodes the union of these documents once."""
    sample = stored_pairs(results, system, data.name, n_queries, 20)
    others = np.random.default_rng(0).choice(len(data.corpus), size=300, replace=False).tolist()
    docs = sorted({data.corpus.index_of(d) for _, hits in sample for d, _ in hits} | set(others))
    column = {j: c for c, j in enumerate(docs)}
    lib = library_scores(
        model, family, [data.queries[q] for q, _ in sample], data.corpus.texts(docs), token_dtype
    )
    for row, (_, hits) in enumerate(sample):
        cols = [column[data.corpus.index_of(d)] for d, _ in hits]
        np.testing.assert_allclose([s for _, s in hits], lib[row, cols], rtol=1e-5)
        if len(hits) == 20:
            rest = np.delete(lib[row], cols)
            assert rest.max() <= hits[-1][1] * (1 + 1e-5) + 1e-6


def kill_during_encode_then_resume(model: Path, system: str, tmp_path: Path) -> None:
    """kill -9 a `gtr-eval run` after its first corpus shard, restart it: only the missing shards are
    encoded, and the result equals an uninterrupted run's (own results folder and cache)."""
    syn = synthetic(tmp_path / "synthetic")
    reference = tmp_path / "reference"
    _in_process(_args(model, syn, reference, tmp_path / "reference-cache"))
    results, cache = tmp_path / "results", tmp_path / "cache"
    args = _args(model, syn, results, cache)
    with open(tmp_path / "stderr.txt", "wb") as err:
        proc = subprocess.Popen(
            [*GTR_EVAL, *args], stdout=subprocess.DEVNULL, stderr=err, env=dict(os.environ)
        )
        _wait_until(lambda: _complete_shards(cache) >= 1, proc, "the first corpus shard")
        _sigkill(proc)
    complete = _complete_shards(cache)
    assert 1 <= complete < N_SHARDS, f"not killed mid-encode: {complete} of {N_SHARDS} shards"
    assert not ResultsStore(results).done(system, syn.name)

    res = _in_process(args)
    encoded, total, reused = _cache_lines(res.stderr)[syn.name]
    assert (total, reused, encoded) == (N_SHARDS, complete, N_SHARDS - complete)
    got, want = ResultsStore(results).load(system, syn.name), ResultsStore(reference).load(system, syn.name)
    assert got.metrics == want.metrics and got.per_query == want.per_query
    got_run, want_run = read_trec_run(got.run_path), read_trec_run(want.run_path)
    assert got_run.keys() == want_run.keys()
    for qid, docs in want_run.items():
        assert list(got_run[qid]) == list(docs), qid
        np.testing.assert_allclose(list(got_run[qid].values()), list(docs.values()), rtol=1e-6)
    assert not _temp_files(results)
