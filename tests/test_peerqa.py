"""PeerQA: loader, qrels, per-paper (scoped) retrieval and metrics, on the handmade fixture.

The fixture (gtr_eval/data/peerqa_fixture) is in the released layout: paper A (14 paragraphs) and
paper B (8 paragraphs); questions q-a1, q-a2 (paper A), q-b2 (paper B) have mapped evidence, q-a3
has none (`answer_evidence_mapped` null, unanswerable) and q-b1's evidence maps to nothing
(`idx: [null]`).  Paper B's paragraph 7 is a lure: it repeats q-a2's words, so a search over both
papers ranks it above q-a2's own evidence (A/5).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from gtr_eval.cli import cli
from gtr_eval.data.loader import Corpus, DataError
from gtr_eval.data.peerqa import Groups, load_peerqa
from gtr_eval.data.units import peerqa_units, resolve_dataset
from gtr_eval.evaluation import evaluate, read_trec_run
from gtr_eval.results import ResultsStore
from gtr_eval.retrieval.base import Report, Retriever, Searched
from gtr_eval.retrieval.bm25 import BM25Retriever
from gtr_eval.retrieval.factory import RetrieverOptions, make_retriever
from gtr_eval.retrieval.scoped import scoped_search
from gtr_eval.retrieval.spec import SystemSpec

FIXTURE = Path(__file__).resolve().parents[1] / "gtr_eval" / "data" / "bundled" / "peerqa_fixture"
A = "openreview/ICLR-2022-conf/Fx7aB2kQ9z"
B = "egu/ESurf/esurf-9-1-2021"


@pytest.fixture
def data_dir(tmp_path) -> Path:
    """DATA_DIR with DATA_DIR/peerqa/{papers,qa}.jsonl, as `gtr-eval run -d peerqa` expects."""
    shutil.copytree(FIXTURE, tmp_path / "data" / "peerqa")
    return tmp_path / "data"


def _edit(folder: Path, name: str, lines: list[str]) -> None:
    (folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8")


# ------------------------------------------------------------------------------- corpus and qrels


def test_paragraph_corpus_and_qrels():
    d = load_peerqa(FIXTURE)
    assert d.name == "peerqa" and len(d.corpus) == 14 + 8
    # Paragraph = its rows' content joined by one space, in idx order; no title, no heading.
    i = d.corpus.index_of(f"{A}/5")
    assert d.corpus.text(i) == (
        "Our model attends to a fixed window around each token. The window size is 256 tokens in all experiments."
    )
    assert d.corpus.text(d.corpus.index_of(f"{A}/1")) == "Abstract"  # headings are paragraphs too
    # Only questions with mapped evidence; binary grades even when two evidence rows share a paragraph.
    assert d.qrels == {"q-a1": {f"{A}/11": 1, f"{A}/9": 1}, "q-a2": {f"{A}/5": 1}, "q-b2": {f"{B}/5": 1}}
    assert set(d.queries) == {"q-a1", "q-a2", "q-b2"}
    assert d.queries["q-b2"] == "How was the geophone signal calibrated?"
    assert d.groups.queries == {A: ["q-a1", "q-a2"], B: ["q-b2"]}
    assert [d.corpus.ids[i] for i in d.groups.docs[B]] == [f"{B}/{p}" for p in range(8)]
    assert len(set(d.corpus.ids)) == len(d.corpus)


def test_sentence_corpus_qrels_and_template():
    d = load_peerqa(FIXTURE, "sentences")
    assert len(d.corpus) == 28 and d.corpus.ids[0] == f"{B}/0/0"
    assert d.qrels["q-a2"] == {f"{A}/5/0": 1, f"{A}/5/1": 1}
    assert d.qrels["q-a1"] == {f"{A}/11/0": 1, f"{A}/9/1": 1}
    t = load_peerqa(FIXTURE, "paragraphs", template="Title: {title} Paragraph: {content}")
    assert t.corpus.text(t.corpus.index_of(f"{B}/4")) == (
        "Title: Sediment Transport In Alpine Rivers Paragraph: "
        "Geophones were installed on the river bed to record particle impacts."
    )
    ab = load_peerqa(FIXTURE, "sentences", template="{abstract} | {content}")
    assert ab.corpus.text(0).startswith("We measure bedload transport in three alpine rivers")


def test_units_and_missing_files(tmp_path, data_dir):
    (unit,) = resolve_dataset("peerqa-sentences", data_dir)
    assert unit.name == "peerqa-sentences" and not unit.ignore_identical_ids
    assert unit.load().granularity == "sentences"
    # missing files are the pair's data failure (a DataError, reported per pair), not a crash
    with pytest.raises(DataError, match=r"qa\.jsonl.*tudatalib.*extract_text_from_pdf\.py") as e:
        peerqa_units(tmp_path / "nowhere")
    assert e.value.stage == "data" and e.value.path == str(tmp_path / "nowhere" / "peerqa")


@pytest.mark.parametrize(
    ("name", "line", "problem"),
    [
        ("papers.jsonl", '{"idx": 0, "pidx": 0', "invalid JSON"),
        ("papers.jsonl", '{"idx": 0, "pidx": 0, "sidx": 0, "paper_id": "p"}', "missing field 'content'"),
        ("papers.jsonl", '{"idx": "x", "pidx": 0, "sidx": 0, "paper_id": "p", "content": ""}', "'idx'"),
        ("qa.jsonl", '{"question_id": "q", "paper_id": "p", "question": "?"}', "'answer_evidence_mapped'"),
        ("qa.jsonl", "[1, 2]", "expected a JSON object"),
    ],
)
def test_bad_lines_are_data_errors(tmp_path, name, line, problem):
    folder = tmp_path / "peerqa"
    shutil.copytree(FIXTURE, folder)
    lines = (folder / name).read_text(encoding="utf-8").splitlines()
    _edit(folder, name, [*lines[:2], line, *lines[2:]])
    with pytest.raises(DataError, match=problem) as e:
        load_peerqa(folder)
    assert e.value.path == str(folder / name) and e.value.line == 3


def test_unknown_evidence_idx_and_duplicates(tmp_path):
    folder = tmp_path / "peerqa"
    shutil.copytree(FIXTURE, folder)
    qa = (folder / "qa.jsonl").read_text(encoding="utf-8").splitlines()
    bad = json.loads(qa[4])
    bad["answer_evidence_mapped"][0]["idx"] = [99]
    _edit(folder, "qa.jsonl", [*qa[:4], json.dumps(bad)])
    with pytest.raises(DataError, match="evidence idx 99 is not a row of paper") as e:
        load_peerqa(folder)
    assert e.value.line == 5
    _edit(folder, "qa.jsonl", [*qa, qa[0]])
    with pytest.raises(DataError, match="duplicate question_id 'q-a1'"):
        load_peerqa(folder)


# --------------------------------------------------------------------------------- scoped search


class Scripted(Retriever):
    """Ranks by a fixed list per query, restricted to what was indexed; records every call."""

    def __init__(self, rankings: dict[str, list[str]]):
        self.spec = SystemSpec(system="scripted", retriever="scripted")
        self.rankings = rankings
        self.indexed: list[list[str]] = []
        self.searched: list[list[str]] = []

    def index(self, corpus: Corpus) -> Report:
        self.indexed.append(list(corpus.ids))
        return Report({"index_s": 1.0})

    def search(self, queries: dict[str, str], top_k: int) -> Searched:
        self.searched.append(list(queries))
        ids = set(self.indexed[-1])
        out = {}
        for q in queries:
            ranked = [d for d in self.rankings[q] if d in ids][:top_k]
            out[q] = {d: float(len(ranked) - r) for r, d in enumerate(ranked)}
        return Searched(out)


def test_scoped_search_metrics_by_hand():
    d = load_peerqa(FIXTURE)
    a = [f"{A}/{p}" for p in (4, 11, 0, 1, 2, 3, 5, 6, 7, 8, 10, 9)]  # A/11 rank 2, A/9 rank 12
    rankings = {
        "q-a1": a,
        "q-a2": [f"{A}/4", f"{A}/6", f"{A}/5", f"{A}/0"],  # A/5 rank 3
        # B's questions may only see B: the A paragraph listed first is not in B's index.
        "q-b2": [f"{A}/5", f"{B}/4", f"{B}/7", f"{B}/2", f"{B}/5", f"{B}/0"],  # B/5 rank 4
    }
    r = Scripted(rankings)
    searched = scoped_search(r, d.corpus, d.queries, d.groups, top_k=1000)
    run = searched.run
    # One index per paper, each document indexed exactly once, each query searched once in its paper.
    assert sorted(r.indexed) == sorted([[f"{A}/{p}" for p in range(14)], [f"{B}/{p}" for p in range(8)]])
    assert sorted(map(sorted, r.searched)) == [["q-a1", "q-a2"], ["q-b2"]]
    assert all(doc.startswith(B + "/") for doc in run["q-b2"])
    assert searched.report.timings["index_s"] == 2.0  # summed over the two papers
    ev = evaluate(d.qrels, run, ignore_identical_ids=False)
    assert ev.per_query["mrr"] == pytest.approx({"q-a1": 1 / 2, "q-a2": 1 / 3, "q-b2": 1 / 4})
    assert ev.per_query["recall@10"] == pytest.approx({"q-a1": 1 / 2, "q-a2": 1.0, "q-b2": 1.0})
    assert ev.metrics["mrr"] == pytest.approx(13 / 36)
    assert ev.metrics["recall@10"] == pytest.approx(5 / 6)


def test_scoped_search_refuses_unscoped_queries():
    corpus = Corpus.from_records([("p/0", "", "x")])
    groups = Groups(docs={"p": [0]}, queries={"p": ["q1"]})
    with pytest.raises(ValueError, match="belong to no scope"):
        scoped_search(Scripted({}), corpus, {"q1": "x", "q2": "y"}, groups, 10)


def test_bm25_stays_in_the_question_paper():
    d = load_peerqa(FIXTURE)
    bm25 = BM25Retriever(progress=False)
    bm25.index(d.corpus)
    assert next(iter(bm25.search(d.queries, 5).run["q-a2"])) == f"{B}/7"  # unscoped: the lure wins
    run = scoped_search(bm25, d.corpus, d.queries, d.groups, top_k=1000).run
    for q, hits in run.items():
        paper = A if q.startswith("q-a") else B
        assert hits and all(doc.startswith(paper + "/") for doc in hits)
    assert max(run["q-a2"], key=run["q-a2"].get) == f"{A}/5"
    # Hand check: every question's first hit is relevant and q-a1's A/9 is third of 14.
    ev = evaluate(d.qrels, run, ignore_identical_ids=False)
    assert ev.metrics["mrr"] == 1.0 and ev.metrics["recall@10"] == 1.0


def test_dense_encodes_each_paragraph_once(tmp_path):
    d = load_peerqa(FIXTURE)
    dense = make_retriever("all-MiniLM-L6-v2", RetrieverOptions(cache_dir=tmp_path / "cache", progress=False))
    encoded: list[str] = []
    encoder = dense.encoder("document")  # whichever backend `auto` chose: torch or ONNX Runtime
    assert dense.encoder("query") is encoder  # one model encodes queries and documents
    real_encode = encoder.encode

    def spy(texts, *args, **kwargs):
        encoded.extend(texts)
        return real_encode(texts, *args, **kwargs)

    encoder.encode = spy
    searched = scoped_search(dense, d.corpus, d.queries, d.groups, top_k=1000)
    run = searched.run
    queries = set(d.queries.values())
    docs = [t for t in encoded if t not in queries]
    assert sorted(docs) == sorted(d.corpus.texts())  # every paragraph once, for 3 questions
    stats = searched.report.stats  # summed over the papers
    assert stats["corpus_shards"] == stats["corpus_shards_encoded"] == 2  # one shard per paper
    assert all(len(hits) == (14 if q.startswith("q-a") else 8) for q, hits in run.items())


# ------------------------------------------------------------------------------------------- CLI


def test_cli_run_and_table(tmp_path, data_dir):
    results = tmp_path / "results"
    runner = CliRunner()
    args = ["run", "-m", "bm25", "-m", "all-MiniLM-L6-v2", "-d", "peerqa", "--data-dir", str(data_dir)]
    res = runner.invoke(
        cli, [*args, "--results-dir", str(results), "--cache-dir", str(tmp_path / "c"), "--quiet"]
    )
    assert res.exit_code == 0, res.output
    for system in ("bm25", "all-MiniLM-L6-v2"):
        record = json.loads((results / system / "peerqa.json").read_text(encoding="utf-8"))
        # per-paper scoring is part of what the result was made from (its identity), and recorded
        assert record["manifest"]["dataset"]["scope"] == record["identity"]["dataset"]["scope"] == "paper"
        assert 0 < record["metrics"]["mrr"] <= 1 and "recall@10" in record["metrics"]
        run = read_trec_run(ResultsStore(results).load(system, "peerqa").run_path)
        assert set(run) == {"q-a1", "q-a2", "q-b2"}
        assert all(doc.startswith((B if q == "q-b2" else A) + "/") for q, hits in run.items() for doc in hits)
    bm25 = json.loads((results / "bm25" / "peerqa.json").read_text(encoding="utf-8"))
    assert bm25["metrics"]["mrr"] == 1.0
    res = runner.invoke(
        cli, ["table", "--results-dir", str(results), "--metric", "mrr", "--reference", "peerqa:gtr-xl"]
    )
    assert res.exit_code == 0, res.output
    row = next(line for line in res.output.splitlines() if line.startswith("| peerqa"))
    assert "1.0000" in row and "0.4142" in row
    assert "all-MiniLM-L6-v2" in res.output and "gtr-xl [peerqa]" in res.output
