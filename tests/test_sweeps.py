"""One-word sweeps (`-d beir`, `beir-small`, `paper`), `run --plan`, and sweeps that survive failures."""

from __future__ import annotations

import json
import re
import shutil
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from gtr_eval.cli import cli
from gtr_eval.data import download as dl
from gtr_eval.data import registry
from gtr_eval.data.registry import DATASET_ORDER, GROUPS, DatasetInfo
from gtr_eval.data.units import expand_datasets
from gtr_eval.paths import BUNDLED
from gtr_eval.pipeline import plan as planning
from gtr_eval.retrieval import families
from gtr_eval.retrieval.base import Report, Retriever, Searched
from gtr_eval.retrieval.families import FamilyBase
from gtr_eval.retrieval.spec import SystemSpec

ROOT = Path(__file__).resolve().parents[1]
DEMO = BUNDLED / "demo"
BEIR_14 = [
    "trec-covid",
    "nfcorpus",
    "nq",
    "hotpotqa",
    "fiqa",
    "arguana",
    "webis-touche2020",
    "cqadupstack",
    "quora",
    "dbpedia-entity",
    "scidocs",
    "fever",
    "climate-fever",
    "scifact",
]
NON_PUBLIC = ["bioasq", "signal1m", "trec-news", "robust04"]


def _cli(*args: str):
    return CliRunner().invoke(cli, list(args))


# ---------------------------------------------------------------------------------------------
# Groups


def test_beir_is_the_14_public_zero_shot_sets_in_the_papers_order():
    assert list(GROUPS["beir"].members) == BEIR_14
    assert all(registry.get(n).public for n in BEIR_14) and "msmarco" not in BEIR_14
    small = GROUPS["beir-small"].members
    assert list(small) == [n for n in BEIR_14 if registry.get(n).num_docs < 600_000]
    assert set(small) == {
        "trec-covid",
        "nfcorpus",
        "fiqa",
        "arguana",
        "webis-touche2020",
        "cqadupstack",
        "quora",
        "scidocs",
        "scifact",
    }
    paper = GROUPS["paper"].members
    assert sorted(paper) == sorted(BEIR_14 + NON_PUBLIC)
    assert list(paper) == [d for d in DATASET_ORDER if d in paper]  # the GTR paper's row order


def test_paper_takes_non_public_sets_found_locally_and_says_why_others_are_skipped(tmp_path):
    shutil.copytree(DEMO, tmp_path / "robust04")
    sel = expand_datasets(["paper"], tmp_path)
    assert sel.datasets[4:7] == ["fiqa", "robust04", "arguana"]  # in the paper's place
    assert [n for n, _ in sel.skipped] == ["bioasq", "signal1m", "trec-news"]
    assert all("not public and not found at" in why for _, why in sel.skipped)
    # A dataset named twice (alone and in a sweep) is run once, where it first appears.
    again = expand_datasets(["scifact", "beir-small", "nfcorpus"], tmp_path)
    assert (
        again.datasets[0] == "scifact"
        and again.datasets.count("scifact") == again.datasets.count("nfcorpus") == 1
    )
    with pytest.raises(
        KeyError, match="unknown dataset 'bier'; did you mean beir\\? .see `gtr-eval datasets`"
    ):
        expand_datasets(["bier"], tmp_path)


# ---------------------------------------------------------------------------------------------
# --plan


def _plan_rows(output: str) -> dict[str, list[str]]:
    rows = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] not in ("dataset",) and not set(cells[0]) <= set("-:"):
            rows[cells[0]] = cells[1:]
    return rows


def test_plan_for_bm25_on_beir_lists_the_14_sets_and_runs_nothing(tmp_path):
    data, results = tmp_path / "data", tmp_path / "results"
    out = _cli(
        "run", "-m", "bm25", "-d", "beir", "--plan", "--data-dir", str(data), "--results-dir", str(results)
    )
    assert out.exit_code == 0, out.output
    rows = _plan_rows(out.stdout)
    assert list(rows) == [*BEIR_14, "total"]
    assert "14 dataset(s) = 25 pairs" in out.stdout  # CQADupStack counts its 12 subforums
    zip_gb = sum(registry.get(n).zip_gb for n in BEIR_14)
    assert rows["total"][2] == f"{zip_gb:.2f}"
    assert rows["cqadupstack"][3] == "0/12" and rows["total"][3] == "0/25"
    assert (
        rows["scifact"][1] == "300"
        and rows["total"][1] == f"{sum(registry.get(n).num_queries for n in BEIR_14):,}"
    )
    assert all(cells[4] not in ("?", "–", "0 s") for cells in rows.values())  # a time for every set
    assert "Nothing has been downloaded or run." in out.stdout
    assert not data.exists() and not results.exists()


def test_plan_costs_an_asymmetric_pair_by_its_document_model(tmp_path):
    args = [
        "-d",
        "scifact",
        "--plan",
        "--data-dir",
        str(tmp_path / "data"),
        "--results-dir",
        str(tmp_path / "r"),
    ]
    pair = _cli("run", "--query-model", "some/query-encoder", "--doc-model", "intfloat/e5-base-v2", *args)
    alone = _cli("run", "-m", "e5-base-v2", *args)
    assert pair.exit_code == 0 and alone.exit_code == 0, pair.output + alone.output
    pair_rows, alone_rows = _plan_rows(pair.stdout), _plan_rows(alone.stdout)
    assert "query-encoder~e5-base-v2 done" in pair.stdout
    assert pair_rows["scifact"][4] == alone_rows["scifact"][4] != "?"  # the corpus encoder's time


def test_plan_counts_what_is_done_and_present():
    """The committed results hold bm25 on scifact and nfcorpus; ../shared holds their data."""
    shared = ROOT.parent / "shared" / "data" / "beir"
    out = _cli(
        "run",
        "-m",
        "bm25",
        "-m",
        "gtr-t5-base",
        "-d",
        "scifact",
        "-d",
        "nfcorpus",
        "-d",
        "fiqa",
        "--plan",
        "--device",
        "cpu",
        "--data-dir",
        str(shared),
        "--results-dir",
        str(ROOT / "results"),
    )
    assert out.exit_code == 0, out.output
    rows = _plan_rows(out.stdout)
    assert rows["scifact"][3:5] == ["1/1", "–"]  # bm25 done: nothing left
    assert rows["scifact"][5] == "0/1" and rows["scifact"][6] not in ("–", "?")
    assert rows["fiqa"][2] == "0.017"
    if (shared / "scifact" / "corpus.jsonl").is_file():
        assert rows["scifact"][2] == "present"


def test_plan_times_grow_with_model_size_and_shrink_on_a_gpu():
    sel = expand_datasets(["nfcorpus"], "/nonexistent")
    costs = [planning.model_cost(m) for m in ("all-MiniLM-L6-v2", "gtr-t5-base", "gtr-t5-xxl")]
    cpu = planning.make_plan(
        sel, costs, planning.Device("cpu", "cpu"), Path("/nonexistent"), Path("/nonexistent")
    )
    gpu = planning.make_plan(
        sel, costs, planning.Device("gpu", "cuda", "fp16"), Path("/nonexistent"), Path("/nonexistent")
    )
    c, g = cpu.datasets[0].seconds, gpu.datasets[0].seconds
    assert c["all-MiniLM-L6-v2"] < c["gtr-t5-base"] < c["gtr-t5-xxl"]
    assert all(g[m] < c[m] / 100 for m in c)
    # The CPU rate is the one measured: all-MiniLM-L6-v2 encodes SciFact in about 280 s with torch and
    # 126 s with ONNX (dense_e2e.epyc.json); `auto` plans at the ONNX rate for a model under 2 GiB.
    minilm = planning.model_cost("all-MiniLM-L6-v2")
    scifact = registry.get("scifact")
    encode = planning.encode_seconds(
        minilm, planning.Device("cpu", "cpu"), scifact.num_docs, scifact.doc_words, 0, 0
    )
    record = json.loads((ROOT / "benchmarks" / "results" / "dense_e2e.epyc.json").read_text())
    assert encode == pytest.approx(record["sides"]["torch"]["encode_corpus_s"], rel=0.05)
    auto = planning.encode_seconds(minilm, planning.Device("cpu", "cpu", backend="auto"), scifact.num_docs,
                                   scifact.doc_words, 0, 0)  # fmt: skip
    assert auto == pytest.approx(record["sides"]["onnx"]["encode_corpus_s"], rel=0.05)


def test_plan_for_paper_says_what_is_skipped(tmp_path):
    out = _cli(
        "run",
        "-m",
        "bm25",
        "-d",
        "paper",
        "--plan",
        "--data-dir",
        str(tmp_path),
        "--results-dir",
        str(tmp_path / "r"),
    )
    assert out.exit_code == 0, out.output
    for name in NON_PUBLIC:
        assert re.search(rf"Skipped: {name}: not public and not found at", out.stdout)
    assert list(_plan_rows(out.stdout)) == [*BEIR_14, "total"]


# ---------------------------------------------------------------------------------------------
# Sweeps that survive failures


class _Failing(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        self.send_error(404)


@pytest.fixture
def broken_zip_dataset(monkeypatch):
    """A registry dataset `gone` whose zip server answers 404 (and which has no hub copy)."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Failing)
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    monkeypatch.setitem(registry._REGISTRY, "gone", DatasetInfo("gone", None, "0" * 32, "test", 5, 2))
    monkeypatch.setattr(dl, "RETRY_BACKOFF_S", 0.0)
    yield f"http://127.0.0.1:{srv.server_address[1]}/"
    srv.shutdown()
    srv.server_close()


def test_a_sweep_with_broken_datasets_finishes_the_others_and_reports_them(tmp_path, broken_zip_dataset):
    good_a = shutil.copytree(DEMO, tmp_path / "good-a")
    good_b = shutil.copytree(DEMO, tmp_path / "good-b")
    bad = shutil.copytree(DEMO, tmp_path / "bad")
    lines = (bad / "corpus.jsonl").read_text().splitlines(keepends=True)
    lines[2] = lines[2][:20] + "\n"  # line 3 cut short
    (bad / "corpus.jsonl").write_text("".join(lines))
    results = tmp_path / "results"
    out = _cli(
        "run",
        "-m",
        "bm25",
        "-d",
        str(good_a),
        "-d",
        str(bad),
        "-d",
        "gone",
        "-d",
        str(good_b),
        "--data-dir",
        str(tmp_path / "data"),
        "--base-url",
        broken_zip_dataset,
        "--results-dir",
        str(results),
    )
    assert out.exit_code == 3, out.output
    assert (results / "bm25" / "good-a.json").is_file() and (results / "bm25" / "good-b.json").is_file()
    assert not (results / "bm25" / "bad.json").exists() and not (results / "bm25" / "gone.json").exists()
    summary = out.stderr[out.stderr.index("2 pair(s) failed") :]
    assert f"bm25 on bad: data failed: {bad / 'corpus.jsonl'}:3: invalid JSON" in summary
    assert "bm25 on gone: download failed: HTTP 404" in summary
    assert "good-a" in out.stdout and "good-b" in out.stdout  # the summary table of what finished
    assert re.search(r"^pairs: 4 pairs in .*, failed 2$", out.stderr, re.M)  # one overall line, piped
    # Run again: the finished pairs are skipped, the broken ones tried (and reported) again.
    again = _cli(
        "run", "-m", "bm25", "-d", str(good_a), "-d", str(bad), "--results-dir", str(results), "--quiet"
    )
    assert again.exit_code == 3 and "[skip] bm25 on good-a: already done" in again.stderr


class _Exploding(Retriever):
    """A retriever that runs out of memory on one dataset."""

    def __init__(self, spec):
        self.spec = spec

    def index(self, corpus):
        if len(corpus) == 3:
            raise MemoryError("Unable to allocate 9.31 TiB for an array")
        return Report()

    def search(self, queries, top_k):
        return Searched({q: {} for q in queries})


@dataclass(frozen=True, kw_only=True)
class _ExplodingSpec(SystemSpec):
    retriever: str = "test"


class _ExplodingFamily(FamilyBase):
    """`-m exploding` (or `x`): a family of its own, whose retriever is an `_Exploding`."""

    name, spec_type, names = "exploding", _ExplodingSpec, ("x", "exploding")

    def resolve(self, request, opts, top_k):
        return _ExplodingSpec(system="exploding", top_k=top_k)

    def build(self, spec, cache_dir):
        return _Exploding(spec)


def _exploding(monkeypatch, fail: str | None = None, resolved: list | None = None):
    """The `exploding` family registered for this test only; `-m FAIL` cannot be found; `resolved`
    collects every request resolved."""
    from gtr_eval.errors import ModelError
    from gtr_eval.pipeline import runner

    monkeypatch.setattr(families, "_registered", [_ExplodingFamily()])  # restored after the test
    real_resolve = runner.resolve_named  # what a run resolves its models with (and names them)

    def resolve(request, opts, top_k=1000):
        if resolved is not None:
            resolved.append(request)
        if request == fail:
            raise ModelError(f"cannot get model {fail!r} from the Hugging Face hub (offline)")
        return real_resolve(request, opts, top_k)

    monkeypatch.setattr(runner, "resolve_named", resolve)


def test_out_of_memory_fails_the_pair_not_the_sweep(tmp_path, monkeypatch):
    from gtr_eval.data.units import DataOptions
    from gtr_eval.pipeline import pairs, runner
    from gtr_eval.retrieval.factory import RetrieverOptions

    small = tmp_path / "small"
    small.mkdir()
    corpus = (DEMO / "corpus.jsonl").read_text().splitlines(keepends=True)
    (small / "corpus.jsonl").write_text("".join(corpus[:3]))
    shutil.copy(DEMO / "queries.jsonl", small / "queries.jsonl")
    shutil.copytree(DEMO / "qrels", small / "qrels")
    _exploding(monkeypatch)
    cfg = runner.RunConfig(
        ["x"],
        [str(small), "demo"],
        data=DataOptions(tmp_path),
        results_dir=tmp_path / "r",
        options=RetrieverOptions(progress=False),
    )
    with pytest.warns(UserWarning, match="judged queries not in"):
        out = runner.run(cfg, echo=lambda s: None)
    assert [r.dataset for r in out] == ["demo"]
    assert [(f.dataset, f.stage) for f in out.failures] == [("small", "run")]
    assert out.failures[0].error.startswith("out of memory (MemoryError: Unable to allocate")
    assert "1 pair(s) failed" in pairs.failure_summary(out)


def test_a_bug_in_a_pair_stops_the_sweep(tmp_path, monkeypatch):
    """Only the documented failure kinds are a pair's failure; a programming error is not hidden in a
    `[fail]` line."""
    from gtr_eval.pipeline import runner

    _exploding(monkeypatch)
    monkeypatch.setattr(_Exploding, "search", lambda self, q, k: {}["bug"])
    cfg = runner.RunConfig(["x"], ["demo"], results_dir=tmp_path / "r")
    cfg.options.progress = False
    with pytest.raises(KeyError, match="bug"):
        runner.run(cfg, echo=lambda s: None)


@pytest.mark.slow
def test_beir_small_sweep_runs_what_is_there_and_reports_the_rest(beir_data, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for name in ("scifact", "nfcorpus"):
        (data / name).symlink_to(beir_data / name)
    results = tmp_path / "results"
    out = _cli(
        "run",
        "-m",
        "bm25",
        "-d",
        "beir-small",
        "--no-download",
        "--data-dir",
        str(data),
        "--results-dir",
        str(results),
        "--quiet",
    )
    assert out.exit_code == 3, out.output
    assert sorted(p.name for p in (results / "bm25").glob("*.json")) == ["nfcorpus.json", "scifact.json"]
    stored = json.loads((results / "bm25" / "scifact.json").read_text())
    assert stored["metrics"]["ndcg@10"] == pytest.approx(0.6863, abs=5e-5)
    assert stored["manifest"]["dataset"]["source"] == {"source": "local folder"}
    assert "18 pair(s) failed" in out.stderr  # 7 missing sets, CQADupStack counting 12
    assert "bm25 on cqadupstack (12 subforums): download failed: not found under" in out.stderr


def test_a_model_that_cannot_load_fails_its_pairs_once_and_bad_data_is_read_once(tmp_path, monkeypatch):
    from gtr_eval.data.units import DataOptions
    from gtr_eval.pipeline import pairs, runner
    from gtr_eval.retrieval.factory import RetrieverOptions

    resolved, loads = [], []
    real_load = pairs.load_unit

    def load(unit, echo, store_dir=None):
        loads.append(unit.name)
        return real_load(unit, echo, store_dir)

    _exploding(monkeypatch, fail="org/missing-model", resolved=resolved)
    monkeypatch.setattr(pairs, "load_unit", load)
    bad = shutil.copytree(DEMO, tmp_path / "bad")
    (bad / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\thigh\n")
    cfg = runner.RunConfig(
        ["bm25", "org/missing-model", "exploding"],
        ["demo", str(bad)],
        data=DataOptions(tmp_path),
        results_dir=tmp_path / "r",
        options=RetrieverOptions(progress=False),
    )
    out = runner.run(cfg, echo=lambda s: None)
    assert sorted((r.system, r.dataset) for r in out) == [("bm25", "demo"), ("exploding", "demo")]
    assert resolved.count("org/missing-model") == 1  # not tried again for the second dataset
    failures = {(f.system, f.dataset, f.stage) for f in out.failures}
    assert failures == {
        ("missing-model", "demo", "model"),
        ("missing-model", "bad", "model"),
        ("bm25", "bad", "data"),
        ("exploding", "bad", "data"),
    }
    assert loads.count("bad") == 1  # the second model is told, not made to read the bad file again
    assert all("score 'high' is not an integer" in f.error for f in out.failures if f.stage == "data")


def test_a_model_that_resolves_but_will_not_load_fails_each_dataset_once_without_reloading(
    tmp_path, monkeypatch
):
    """The weights are found and fingerprinted, but loading them fails on the first pair: that pair and
    the system's other datasets fail at stage `model`, and the load is not tried again for each."""
    from gtr_eval.errors import ModelError
    from gtr_eval.pipeline import runner

    _exploding(monkeypatch)
    loads = []

    def index(self, corpus):
        loads.append(corpus)
        raise ModelError("cannot load the model at /m (OSError: no weights)")

    monkeypatch.setattr(_Exploding, "index", index)
    folder = shutil.copytree(DEMO, tmp_path / "demo-copy")
    cfg = runner.RunConfig(["x", "bm25"], ["demo", str(folder)], results_dir=tmp_path / "r")
    cfg.options.progress = False
    out = runner.run(cfg, echo=lambda s: None)
    assert len(loads) == 1
    assert [(f.system, f.dataset, f.stage) for f in out.failures] == [
        ("exploding", "demo", "model"),
        ("exploding", "demo-copy", "model"),
    ]
    assert all("cannot load the model at /m" in f.error for f in out.failures)
    assert sorted(r.dataset for r in out if r.system == "bm25") == ["demo", "demo-copy"]


def test_the_python_api_plans_as_the_cli_does(tmp_path):
    from gtr_eval.api import plan

    args = (
        "-m",
        "bm25",
        "-d",
        "beir-small",
        "--data-dir",
        str(tmp_path),
        "--results-dir",
        str(tmp_path / "r"),
    )
    assert (
        plan(["bm25"], ["beir-small"], data_dir=tmp_path, results_dir=tmp_path / "r")
        == _cli("run", *args, "--plan").stdout
    )
