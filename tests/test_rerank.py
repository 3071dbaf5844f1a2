"""Re-ranking with a tiny random cross-encoder in the ms-marco-MiniLM-L6-v2 layout (tests/tiny_models.py):
scores equal `CrossEncoder.predict`, the library's default activation is kept, BEIR's depth rule,
the pair-score cache (reuse across depths and first stages), stale inputs refused, and kill -9 /
resume of an interrupted scoring.  A tiny late-interaction model re-ranks through the same path
(exact MaxSim, the scores of its full search); a bi-encoder is refused."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from gtr_eval.cli import cli
from gtr_eval.data.units import resolve_dataset
from gtr_eval.evaluation import ranked, read_trec_run
from gtr_eval.results import ResultsStore

CE = "tiny-ce"  # the cross-encoder folder's name, hence the system suffix


def _invoke(*args: str):
    res = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res


@pytest.fixture(scope="module")
def tiny_ce(tmp_path_factory) -> Path:
    from tiny_models import build_tiny_cross_encoder

    return build_tiny_cross_encoder(tmp_path_factory.mktemp("ce") / CE)


@pytest.fixture(scope="module")
def demo_bm25(tmp_path_factory) -> Path:
    results = tmp_path_factory.mktemp("rerank") / "results"
    _invoke("run", "-m", "bm25", "-d", "demo", "--results-dir", str(results), "--quiet")
    return results


def _rerank(results: Path, model: Path, cache: Path, *extra: str):
    return _invoke("rerank", "--run", "bm25", "-m", str(model), "-d", "demo", "--results-dir", str(results),
                   "--cache-dir", str(cache), "--quiet", *extra)  # fmt: skip


def _library_scores(model_dir: Path, run: dict, depth: int) -> dict[str, dict[str, float]]:
    """`CrossEncoder.predict` on the (query, title + ' ' + text) pairs of each query's top `depth`."""
    from sentence_transformers import CrossEncoder

    data = resolve_dataset("demo")[0].load()
    model = CrossEncoder(str(model_dir), device="cpu")
    out = {}
    for q, docs in run.items():
        top = [d for d, _ in ranked(docs)[:depth]]
        texts = [data.corpus.text(data.corpus.index_of(d)) for d in top]
        out[q] = dict(zip(top, model.predict([(data.queries[q], t) for t in texts]).tolist(), strict=True))
    return out


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_rerank_scores_equal_cross_encoder_predict_and_keep_the_top_depth(tiny_ce, demo_bm25, tmp_path):
    results = _copy(demo_bm25, tmp_path / "results")
    res = _rerank(results, tiny_ce, tmp_path / "cache", "--depth", "5")
    stored = ResultsStore(results).load(f"bm25>>{CE}[depth=5]", "demo")  # the default depth is 100
    bm25 = read_trec_run(ResultsStore(results).load("bm25", "demo").run_path)
    ours = read_trec_run(stored.run_path)
    want = _library_scores(tiny_ce, bm25, depth=5)
    assert ours.keys() == {q for q, docs in bm25.items() if docs}
    for q, docs in ours.items():
        assert set(docs) == {d for d, _ in ranked(bm25[q])[:5]}  # BEIR: only the top `depth` survive
        np.testing.assert_allclose([docs[d] for d in want[q]], list(want[q].values()), rtol=0, atol=1e-6)
    assert len({round(s, 6) for docs in ours.values() for s in docs.values()}) > 10  # real, varied scores
    man = stored.spec
    assert man["retriever"] == "rerank" and man["candidates"] == "bm25" and man["depth"] == 5
    assert (
        stored.manifest["stats"]["pair_stats"]["activation"] == "torch.nn.modules.linear.Identity"
    )  # raw logits
    (candidates,) = man["inputs"]  # the candidate run, named by its content, and what made it
    assert candidates["system"] == "bm25" and candidates["model"]["retriever"] == "bm25s"
    assert (
        candidates["run_sha256"]
        == hashlib.sha256(ResultsStore(results).load("bm25", "demo").run_path.read_bytes()).hexdigest()
    )
    assert stored.identity.system["inputs"] == [{"system": "bm25", "run_sha256": candidates["run_sha256"]}]
    assert stored.manifest["stats"]["pair_stats"]["pairs_scored"] == sum(len(d) for d in ours.values())
    assert f"[cache] bm25>>{CE}[depth=5] on demo" in res.output
    with open(stored.run_path, "rb") as fh:
        import gzip

        assert all(
            line.split()[-1] == f"bm25>>{CE}[depth=5]"
            for line in gzip.decompress(fh.read()).decode().splitlines()
        )
    assert {r.system for r in list(ResultsStore(results))} == {"bm25", f"bm25>>{CE}[depth=5]"}
    table = _invoke("table", "--results-dir", str(results), "--baseline", "bm25").output
    assert f"bm25>>{CE}[depth=5]" in table
    latex = _invoke("table", "--results-dir", str(results), "--format", "latex").output
    assert rf"bm25\textgreater{{}}\textgreater{{}}{CE}" in latex


def test_without_an_activation_in_the_config_the_library_default_applies(tiny_ce, demo_bm25, tmp_path):
    """A one-logit head whose config names no activation gets Sigmoid from the library, and so here."""
    import shutil

    model = tmp_path / "plain-ce"
    shutil.copytree(tiny_ce, model)
    config = json.loads((model / "config.json").read_text())
    del config["sbert_ce_default_activation_function"]
    (model / "config.json").write_text(json.dumps(config))
    results = _copy(demo_bm25, tmp_path / "results")
    _rerank(results, model, tmp_path / "cache", "--depth", "4")
    stored = ResultsStore(results).load("bm25>>plain-ce[depth=4]", "demo")
    assert stored.manifest["stats"]["pair_stats"]["activation"] == "torch.nn.modules.activation.Sigmoid"
    ours = read_trec_run(stored.run_path)
    want = _library_scores(model, read_trec_run(ResultsStore(results).load("bm25", "demo").run_path), depth=4)
    for q, docs in ours.items():
        assert all(0.0 < s < 1.0 for s in docs.values())
        np.testing.assert_allclose([docs[d] for d in want[q]], list(want[q].values()), rtol=0, atol=1e-6)


def test_pair_cache_reuses_pairs_across_depths_and_first_stages(tiny_ce, demo_bm25, tmp_path):
    results, cache = _copy(demo_bm25, tmp_path / "results"), tmp_path / "cache"
    _rerank(results, tiny_ce, cache, "--depth", "3")
    first = ResultsStore(results).load(f"bm25>>{CE}[depth=3]", "demo").manifest["stats"]["pair_stats"]
    assert first["pairs_reused"] == 0 and first["pairs_scored"] == first["pairs"] > 0
    _rerank(results, tiny_ce, cache, "--depth", "6", "--name", "deeper")
    deeper = ResultsStore(results).load("deeper", "demo")
    stats = deeper.manifest["stats"]["pair_stats"]
    assert (
        stats["pairs_reused"] == first["pairs"] and stats["pairs_scored"] == stats["pairs"] - first["pairs"]
    )
    # scores of reused pairs are the same floats as in the first re-ranking
    shallow = read_trec_run(ResultsStore(results).load(f"bm25>>{CE}[depth=3]", "demo").run_path)
    deep = read_trec_run(deeper.run_path)
    assert all(deep[q][d] == s for q, docs in shallow.items() for d, s in docs.items())
    # a re-ranking of a fused first stage reuses every pair bm25's re-ranking already scored
    _invoke("fuse", "bm25", "deeper", "-d", "demo", "--results-dir", str(results))
    _invoke("rerank", "--run", "rrf(bm25+deeper)", "-m", str(tiny_ce), "--depth", "6", "-d", "demo",
            "--results-dir", str(results), "--cache-dir", str(cache), "--quiet")  # fmt: skip
    fused = (
        ResultsStore(results).load(f"rrf(bm25+deeper)>>{CE}[depth=6]", "demo").manifest["stats"]["pair_stats"]
    )
    assert fused["pairs_scored"] == 0 and fused["pairs_reused"] == fused["distinct_pairs"]
    # without a cache the same scores come from a temporary folder
    _rerank(results, tiny_ce, cache, "--depth", "3", "--name", "uncached", "--no-cache")
    assert read_trec_run(ResultsStore(results).load("uncached", "demo").run_path) == shallow


def test_another_depth_is_a_variant_and_another_candidate_run_is_refused(tiny_ce, demo_bm25, tmp_path):
    results, cache = _copy(demo_bm25, tmp_path / "results"), tmp_path / "cache"
    _rerank(results, tiny_ce, cache, "--depth", "3")
    three = f"bm25>>{CE}[depth=3]"  # the default depth is 100
    args = ["rerank", "--run", "bm25", "-m", str(tiny_ce), "-d", "demo", "--results-dir", str(results),
            "--cache-dir", str(cache), "--quiet"]  # fmt: skip
    out = CliRunner().invoke(cli, [*args, "--depth", "4"])
    assert out.exit_code == 0 and f"[done] bm25>>{CE}[depth=4] on demo" in out.output, out.output
    assert ResultsStore(results).load(three, "demo").spec["depth"] == 3  # kept beside it
    bm25 = ["run", "-m", "bm25", "-d", "demo", "--results-dir", str(results), "--quiet", "--overwrite"]
    rerun = CliRunner().invoke(cli, [*bm25, "--bm25-k1", "0.3", "--name", "bm25"])
    assert rerun.exit_code == 0  # bm25 re-run under its name, changed
    out = CliRunner().invoke(cli, [*args, "--depth", "3"])
    assert out.exit_code == 3, out.output
    (refused,) = [line for line in out.output.splitlines() if line.startswith("[refused]")]
    assert refused == (
        f"[refused] {three} on demo was made with other input runs (the run of bm25 differs); use --name NAME "
        "to keep both, or --overwrite to replace it"
    )  # only what changed is named
    _invoke(*args, "--depth", "3", "--overwrite")
    redone = ResultsStore(results).load(three, "demo")
    assert redone.spec["inputs"][0]["run_sha256"] == ResultsStore(results).load("bm25", "demo").run_sha256
    assert "[skip]" in _invoke(*args, "--depth", "3").output  # the same inputs again: served


def test_a_cross_encoder_with_several_labels_is_refused(demo_bm25, tmp_path):
    from tiny_models import _bert_folder

    model = tmp_path / "nli-ce"
    _bert_folder(model, 0, arch="BertForSequenceClassification", num_labels=3)
    results = _copy(demo_bm25, tmp_path / "results")
    out = CliRunner().invoke(cli, ["rerank", "--run", "bm25", "-m", str(model), "-d", "demo", "--results-dir",
                                   str(results), "--no-cache", "--quiet"])  # fmt: skip
    assert out.exit_code != 0 and "3 scores per pair" in out.output
    assert not ResultsStore(results).done("bm25>>nli-ce", "demo")


# ------------------------------------------------------------------ late interaction, bi-encoders


def test_a_late_interaction_model_reranks_through_the_same_path(tiny_ce, demo_bm25, tmp_path):
    """`rerank -m CROSS_ENCODER -m LATE_INTERACTION`: two composed systems, each naming bm25's run by
    its sha256; MaxSim re-scores the top depth with exactly the full search's scores (same vectors)."""
    from tiny_models import build_tiny_colbert

    colbert = build_tiny_colbert(tmp_path / "tiny-colbert", layout="pylate")
    results, cache = _copy(demo_bm25, tmp_path / "results"), tmp_path / "cache"
    _invoke("run", "-m", str(colbert), "-d", "demo", "--results-dir", str(results), "--cache-dir", str(cache),
            "--quiet")  # fmt: skip
    res = _rerank(results, tiny_ce, cache, "-m", str(colbert), "--depth", "5")
    assert "[cache] bm25>>tiny-colbert[depth=5] on demo: corpus embeddings: 1 shard from cache" in res.output
    bm25_sha = hashlib.sha256(ResultsStore(results).load("bm25", "demo").run_path.read_bytes()).hexdigest()
    bm25 = read_trec_run(ResultsStore(results).load("bm25", "demo").run_path)
    full = read_trec_run(ResultsStore(results).load("tiny-colbert", "demo").run_path)
    for system, retriever in [
        (f"bm25>>{CE}[depth=5]", "rerank"),
        ("bm25>>tiny-colbert[depth=5]", "multivector"),
    ]:
        stored = ResultsStore(results).load(system, "demo")
        man = stored.spec
        assert (man["retriever"], man["candidates"], man["depth"], man["top_k"]) == (retriever, "bm25", 5, 5)
        assert stored.identity.system["inputs"] == [{"system": "bm25", "run_sha256": bm25_sha}]
        ours = read_trec_run(stored.run_path)
        assert {q: set(d) for q, d in ours.items()} == {
            q: {d for d, _ in ranked(h)[:5]} for q, h in bm25.items() if h
        }
    maxsim = read_trec_run(ResultsStore(results).load("bm25>>tiny-colbert[depth=5]", "demo").run_path)
    assert all(s == full[q][d] for q, docs in maxsim.items() for d, s in docs.items())  # to the digit
    assert ResultsStore(results).load("bm25>>tiny-colbert[depth=5]", "demo").spec["search"] == "rerank"
    # a first stage run again with other settings is another input: refused until --overwrite
    again = _invoke("run", "-m", "bm25", "--bm25-k1", "0.9", "--name", "bm25", "--overwrite", "-d", "demo",
                    "--results-dir", str(results), "--cache-dir", str(cache), "--quiet")  # fmt: skip
    assert ResultsStore(results).load("bm25", "demo").spec["bm25"]["k1"] == 0.9, again.output
    out = CliRunner().invoke(cli, ["rerank", "--run", "bm25", "-m", str(colbert), "-d", "demo", "--depth", "5",
                                   "--results-dir", str(results), "--cache-dir", str(cache), "--quiet"])  # fmt: skip
    assert (
        out.exit_code == 3
        and "[refused] bm25>>tiny-colbert[depth=5] on demo was made with other input runs" in out.output
    )


def test_a_bi_encoder_is_refused_in_one_line(demo_bm25, tmp_path):
    from tiny_models import build_tiny_dense_pair, build_tiny_splade

    folder, _ = build_tiny_dense_pair(tmp_path / "bi")
    splade = build_tiny_splade(tmp_path / "tiny-splade")
    results = _copy(demo_bm25, tmp_path / "results")
    for model, said in [("all-MiniLM-L6-v2", "is a bi-encoder"), (str(folder), "is a bi-encoder"),
                        (str(splade), "is a learned sparse model")]:  # fmt: skip
        out = CliRunner().invoke(cli, ["rerank", "--run", "bm25", "-m", model, "-d", "demo", "--results-dir",
                                       str(results), "--no-cache", "--quiet"])  # fmt: skip
        assert out.exit_code != 0
        (line,) = out.output.strip().splitlines()
        assert f"{model} {said}" in line and f"gtr-eval run -m {model}" in line, line
    assert {r.system for r in ResultsStore(results)} == {"bm25"}


# ----------------------------------------------------------------------------------- kill -9, resume

KILL_AT_SHARD_WRITE = textwrap.dedent(
    """
    import os, signal, sys
    import gtr_eval.cli, gtr_eval.retrieval.cache as cache

    n, *argv = sys.argv[1:]
    real, calls = cache._write_shard, []

    def write_then_die(*args, **kwargs):
        if len(calls) == int(n):
            os.kill(os.getpid(), signal.SIGKILL)  # while scoring shard n: n shards complete
        calls.append(1)
        return real(*args, **kwargs)

    cache._write_shard = write_then_die
    sys.argv = ["gtr-eval", *argv]
    gtr_eval.cli.main()
    """
)


def _synthetic_bm25(root: Path) -> Path:
    """600 distinct short documents, 40 queries, and their BM25 run (each query matches many)."""
    from test_reliability import WORDS, _write_beir

    n = len(WORDS)
    docs = {f"s{i:04d}": " ".join([WORDS[(i * 7 + j * (i % 5 + 1)) % n] for j in range(2 + i % 5)] + [f"n{i}"])
            for i in range(600)}  # fmt: skip
    queries = {f"q{q}": f"{WORDS[q % n]} {WORDS[(3 * q + 1) % n]}" for q in range(40)}
    syn = _write_beir(
        root / "synthetic", docs, queries, [(f"q{q}", f"s{(q * 71) % 600:04d}", 1) for q in range(40)]
    )
    _invoke("run", "-m", "bm25", "-d", str(syn), "--results-dir", str(root / "results"), "--quiet")
    return syn


def test_kill_9_while_scoring_pairs_resumes_from_the_last_complete_shard(tiny_ce, tmp_path):
    syn = _synthetic_bm25(tmp_path)
    reference = _copy(tmp_path / "results", tmp_path / "reference")
    results, cache = tmp_path / "results", tmp_path / "cache"

    def args(res: Path, cache_dir: Path) -> list[str]:
        return [
            "rerank",
            "--run",
            "bm25",
            "-m",
            str(tiny_ce),
            "-d",
            str(syn),
            "--depth",
            "50",
            "--pair-shard-size",
            "64",
            "--results-dir",
            str(res),
            "--cache-dir",
            str(cache_dir),
            "--quiet",
        ]

    _invoke(*args(reference, tmp_path / "reference-cache"))
    want = ResultsStore(reference).load(f"bm25>>{CE}[depth=50]", "synthetic")
    want_stats = want.manifest["stats"]["pair_stats"]
    total = want_stats["shards_encoded"]
    assert total > 10 and want_stats["distinct_pairs"] > 1000

    out = subprocess.run([sys.executable, "-c", KILL_AT_SHARD_WRITE, "4", *args(results, cache)],
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert out.returncode == -signal.SIGKILL, out.stderr
    assert not ResultsStore(results).done(f"bm25>>{CE}[depth=50]", "synthetic")
    jobs = list((cache / "pair-scores").glob("*/*/jobs/*"))
    assert len(jobs) == 1 and len(list(jobs[0].glob("shard-*.json"))) == 4

    res = _invoke(*args(results, cache))
    assert (
        f"scores of {want_stats['pairs']:,} pairs: {want_stats['pairs_scored']:,} distinct pairs computed and "
        "saved (4 shards from an interrupted run)" in res.output
    )
    got = ResultsStore(results).load(f"bm25>>{CE}[depth=50]", "synthetic")
    stats = got.manifest["stats"]["pair_stats"]
    assert (stats["shards_encoded"], stats["shards_reused"], stats["pairs_reused"]) == (total - 4, 4, 0)
    assert got.metrics == want.metrics and got.per_query == want.per_query
    assert read_trec_run(got.run_path) == read_trec_run(want.run_path)
    assert list((cache / "pair-scores").glob("*/*/jobs/*")) == jobs  # the same job, resumed
    assert not [p for p in tmp_path.rglob("*.tmp")]
