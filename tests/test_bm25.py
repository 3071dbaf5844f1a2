"""The lean BM25 index and search against bm25s itself: the same CSC score matrix bit for bit (up to
the numbering of the vocabulary), the same runs up to the choice among documents tied at the
cut-off, the saved index reused, worker processes giving the same result, interrupted builds."""

from __future__ import annotations

import json
from pathlib import Path

import bm25s
import numpy as np
import pytest
import Stemmer

from gtr_eval.data.loader import Corpus, load_beir_folder, read_corpus
from gtr_eval.evaluation import evaluate
from gtr_eval.retrieval import bm25_index
from gtr_eval.retrieval.bm25 import BM25Config, BM25Retriever

SHARED_BEIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "beir"

DOCS = [
    ("d0", "Apples", "apples and pears are fruit; apples are red"),
    ("d1", "", "cars and trucks drive on roads"),
    ("d2", "", ""),  # empty: length 0
    ("d3", "The", "and the of a"),  # stopwords only
    ("d4", "Straße", "Größe İstanbul café naïve façade — running runners ran"),
    ("d5", "", "apples apples apples pears"),
    ("d6", "Fruit", "pears and apples"),
    ("d7", "", "red trucks and red cars"),
    ("d8", "", "fruit fruit trucks roads"),
    ("d9", "Fruit", "pears and apples"),  # the same text as d6: they tie
]
QUERIES = {
    "q1": "apples pears",
    "q2": "red red cars",  # a repeated token is summed twice, as bm25s does
    "q3": "the of and",  # only stopwords: no hit
    "q4": "zebra quantum",  # no known token: no hit
    "q5": "fruit apples trucks roads running",
    "q6": "Istanbul straße cafe",
}


def _reference(corpus: Corpus, queries: dict[str, str], k: int, config: BM25Config) -> dict:
    """The harness' BM25 before the lean index: bm25s.tokenize + BM25.index + retrieve."""
    stemmer = Stemmer.Stemmer(config.stemmer) if config.stemmer else None
    kwargs = {"delta": config.delta} if config.method in ("bm25l", "bm25+") else {}
    model = bm25s.BM25(k1=config.k1, b=config.b, method=config.method, **kwargs)
    model.index(bm25s.tokenize(corpus.texts(), stopwords=config.stopwords, stemmer=stemmer, show_progress=False),
                show_progress=False)  # fmt: skip
    qids = list(queries)
    tokens = bm25s.tokenize([queries[q] for q in qids], stopwords=config.stopwords, stemmer=stemmer,
                            show_progress=False)  # fmt: skip
    idx, scores = model.retrieve(tokens, k=min(k, len(corpus)), show_progress=False)
    ids = list(corpus.ids)
    run = {
        q: {ids[j]: float(s) for j, s in zip(idx[r], scores[r], strict=True) if s > 0}
        for r, q in enumerate(qids)
    }
    return {"model": model, "run": run}


def _columns(model) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """term -> (document indices, float32 score bits) of the CSC matrix."""
    s, inv = model.scores, {v: t for t, v in model.vocab_dict.items()}
    out = {}
    for col in range(len(s["indptr"]) - 1):
        a, b = int(s["indptr"][col]), int(s["indptr"][col + 1])
        out[inv[col]] = (np.asarray(s["indices"][a:b]), np.asarray(s["data"][a:b]).view(np.uint32))
    return out


def assert_same_columns(ours, theirs) -> None:
    a, b = _columns(ours), _columns(theirs)
    assert set(a) == set(b)
    for term in a:
        assert np.array_equal(a[term][0], b[term][0]) and np.array_equal(a[term][1], b[term][1]), term
    assert set(ours.vocab_dict) == set(theirs.vocab_dict)  # the empty token included


def assert_same_up_to_cutoff_ties(run: dict, ref: dict) -> None:
    """Same hits and scores, except which of several documents tied at the last kept score stay."""
    assert run.keys() == ref.keys()
    for q in ref:
        assert len(run[q]) == len(ref[q]), q
        if not ref[q]:
            continue
        last = min(ref[q].values())
        assert min(run[q].values()) == last, q
        assert {d: s for d, s in run[q].items() if s > last} == {
            d: s for d, s in ref[q].items() if s > last
        }, q


METHODS = ["lucene", "robertson", "atire", "bm25l", "bm25+"]


@pytest.mark.parametrize("method", METHODS)
def test_index_is_bm25s_index_bit_for_bit(method):
    corpus = Corpus.from_records(DOCS)
    config = BM25Config(method=method)
    ours = BM25Retriever(config, progress=False)
    ours.index(corpus)
    ref = _reference(corpus, QUERIES, 5, config)
    assert_same_columns(ours._model, ref["model"])
    if method in ("bm25l", "bm25+"):
        nonocc = {t: ours._model.nonoccurrence_array[i] for t, i in ours._model.vocab_dict.items() if t}
        ref_nonocc = {t: ref["model"].nonoccurrence_array[i] for t, i in ref["model"].vocab_dict.items() if t}
        assert nonocc == ref_nonocc


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("k", [1, 2, 3, 100])
def test_runs_equal_bm25s_up_to_cutoff_ties(method, k):
    corpus = Corpus.from_records(DOCS)
    config = BM25Config(method=method)
    ours = BM25Retriever(config, progress=False)
    ours.index(corpus)
    run = ours.search(QUERIES, k).run
    ref = _reference(corpus, QUERIES, k, config)["run"]
    assert_same_up_to_cutoff_ties(run, ref)
    if method == "lucene":
        assert run["q3"] == run["q4"] == {}
        if k == 100:
            assert run["q1"]["d6"] == run["q1"]["d9"]


def test_ties_at_the_cutoff_keep_trec_evals_order():
    corpus = Corpus.from_records([(f"x{i}", "", "apples") for i in range(5)] + [("y", "", "apples apples")])
    ours = BM25Retriever(progress=False)
    ours.index(corpus)
    run = ours.search({"q": "apples"}, 3).run["q"]
    # y scores highest; x0..x4 tie, and trec_eval ranks ties by id descending: x4, x3 are kept
    assert set(run) == {"y", "x4", "x3"} and run["x4"] == run["x3"] < run["y"]


def test_corpus_without_any_token_gives_empty_runs():
    """bm25s' own index raises on it (an empty vocabulary); every query here simply finds nothing."""
    ours = BM25Retriever(progress=False)
    ours.index(Corpus.from_records([("a", "", ""), ("b", "The", "of and")]))
    assert ours.search({"q": "the apples"}, 10).run == {"q": {}}


def _store_corpus(tmp_path: Path, n: int = 300) -> Corpus:
    rng = np.random.default_rng(0)
    words = ["apple", "pear", "fruit", "red", "car", "truck", "road", "drive", "blue", "sky", "the", "of"]
    lines = [
        json.dumps({"_id": f"doc{i}", "title": "", "text": " ".join(rng.choice(words, rng.integers(0, 12)))})
        for i in range(n)
    ]
    (tmp_path / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    corpus, _ = read_corpus(tmp_path / "corpus.jsonl", tmp_path / "store")
    return corpus


def test_saved_index_is_reused_by_the_next_run(tmp_path, monkeypatch):
    corpus = _store_corpus(tmp_path)
    first = BM25Retriever(progress=False, cache_dir=tmp_path / "cache")
    first_info = first.index(corpus).stats["bm25_index"]
    assert first_info["cached"] and not first_info["reused"]
    run = first.search({"q": "red apple", "r": "truck road"}, 50).run
    monkeypatch.setattr(bm25_index, "build_index", lambda *a, **k: pytest.fail("indexed again"))
    monkeypatch.setattr("gtr_eval.retrieval.bm25.build_index", lambda *a, **k: pytest.fail("indexed again"))
    second = BM25Retriever(progress=False, cache_dir=tmp_path / "cache")
    second_info = second.index(corpus).stats["bm25_index"]
    assert second_info["reused"] and second_info["path"] == first_info["path"]
    assert second.search({"q": "red apple", "r": "truck road"}, 50).run == run
    other = BM25Retriever(BM25Config(k1=0.9), progress=False, cache_dir=tmp_path / "cache")
    with pytest.raises(pytest.fail.Exception, match="indexed again"):
        other.index(corpus)  # other parameters: another index


def test_worker_processes_give_the_same_index_and_run(tmp_path, monkeypatch):
    corpus = _store_corpus(tmp_path, 700)
    queries = {
        f"q{i}": q
        for i, q in enumerate(["red apple", "truck road drive", "sky", "the", "pear pear fruit"] * 60)
    }
    single = BM25Retriever(progress=False, cache_dir=tmp_path / "one", workers=1)
    single.index(corpus)
    expected = single.search(queries, 40).run
    monkeypatch.setattr(bm25_index, "PARALLEL_MIN_DOCS", 0)
    monkeypatch.setattr(bm25_index, "CHUNK_DOCS", 97)
    monkeypatch.setattr(bm25_index, "SEARCH_BATCH", 64)
    multi = BM25Retriever(progress=False, cache_dir=tmp_path / "two", workers=2)
    multi.index(corpus)
    assert_same_columns(multi._model, single._model)
    assert multi.search(queries, 40).run == expected
    ref = _reference(corpus, queries, 40, BM25Config())["run"]
    assert_same_up_to_cutoff_ties(expected, ref)


# Words the tokeniser's two paths (bytes for ASCII documents, str.lower() and the regex for the
# others) must both get right: Unicode case rules and word characters, words around the 8-byte key
# words and past the 32-byte keys, stopwords in any case, empty and stopword-only documents.
TRICKY = [
    ("t0", "Straße ΣΑΣ ΟΔΟΣ'Σ İstanbul", "K café naïve ﬁne Ⅻ ½ ٣٤ x² ß_ß A_B __ a1 1a"),
    ("t1", "", "ab\tcd\nEF gh-ij HELLO world the THE The of"),
    (
        "t2",
        "Lengths",
        " ".join(
            c * n for c, n in zip("abcdefghijk", (7, 8, 9, 16, 17, 24, 25, 32, 33, 40, 70), strict=True)
        ),
    ),
    ("t3", "", "ünïcödé" * 5 + " " + "ü" * 20 + " naïve naive NAÏVE"),
    ("t4", "", ""),
    ("t5", "", "a b c d"),
    ("t6", "Apples", "apples and pears " * 3 + "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
    ("t7", "The", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb ccccccccc ccccccccc"),
]


@pytest.mark.parametrize(
    "config", [BM25Config(), BM25Config(stopwords=None, stemmer=None)], ids=["en", "plain"]
)
@pytest.mark.parametrize("collide", [False, True])
def test_tokeniser_paths_and_hash_collisions_give_bm25s_index(monkeypatch, collide, config):
    """Words are looked up through a hash of their bytes; equal hashes are checked by key, so even a
    hash that puts most words on a few values (every lookup a collision) gives bm25s' index."""
    if collide:
        monkeypatch.setattr(
            bm25_index, "key_hash", lambda keys: (keys[0] & np.uint64(7)) ^ (keys[1] & np.uint64(3))
        )
    corpus = Corpus.from_records(DOCS + TRICKY)
    ours = BM25Retriever(config, progress=False)
    ours.index(corpus)
    queries = {**QUERIES, "u": "naive straße istanbul ccccccccc", "v": "a" * 36 + " pears"}
    ref = _reference(corpus, queries, 100, config)
    assert_same_columns(ours._model, ref["model"])
    assert_same_up_to_cutoff_ties(ours.search(queries, 100).run, ref["run"])


def test_worker_processes_tokenise_unicode_and_huge_term_frequencies(tmp_path, monkeypatch):
    """The worker path on documents that need the str.lower() path, and a term frequency past the
    spill's 16 bits (its chunk spilled in the wide format)."""
    rng = np.random.default_rng(1)
    words = ["apple", "Äpfel", "pear", "Straße", "straße", "naïve", "naive", "İstanbul", "ΣΑΣ", "the", "of"]
    records = [(f"d{i}", "", " ".join(rng.choice(words, rng.integers(0, 12)))) for i in range(400)]
    records += TRICKY + [("huge", "", "apple " * 70_000 + "pear")]
    lines = [json.dumps({"_id": d, "title": t, "text": x}, ensure_ascii=False) for d, t, x in records]
    (tmp_path / "corpus.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    corpus, _ = read_corpus(tmp_path / "corpus.jsonl", tmp_path / "store")
    monkeypatch.setattr(bm25_index, "PARALLEL_MIN_DOCS", 0)
    monkeypatch.setattr(bm25_index, "CHUNK_DOCS", 60)
    multi = BM25Retriever(progress=False, cache_dir=tmp_path / "cache", workers=2)
    multi.index(corpus)
    queries = {"q": "apple pear", "r": "straße naive", "s": "istanbul σας", "t": "a" * 36}
    ref = _reference(corpus, queries, 50, BM25Config())
    assert_same_columns(multi._model, ref["model"])
    assert_same_up_to_cutoff_ties(multi.search(queries, 50).run, ref["run"])


def test_search_without_scipys_kernel_gives_the_same_runs(monkeypatch):
    corpus = Corpus.from_records(DOCS + TRICKY)
    ours = BM25Retriever(progress=False)
    ours.index(corpus)
    run = ours.search(QUERIES, 3).run
    monkeypatch.setattr(bm25_index, "_add_columns", lambda: bm25_index._add_at)
    assert ours.search(QUERIES, 3).run == run


def test_interrupted_build_leaves_no_index(tmp_path, monkeypatch):
    corpus = _store_corpus(tmp_path)

    def crash(*a, **k):
        raise KeyboardInterrupt  # as if killed while spilling

    with monkeypatch.context() as patched:
        patched.setattr(bm25_index, "_append", crash)
        with pytest.raises(KeyboardInterrupt):
            BM25Retriever(progress=False, cache_dir=tmp_path / "cache").index(corpus)
    assert not [p for p in (tmp_path / "cache" / "bm25").rglob("*") if p.is_dir() and len(p.name) == 64]
    again = BM25Retriever(progress=False, cache_dir=tmp_path / "cache")
    again_info = again.index(corpus).stats["bm25_index"]
    assert not again_info["reused"] and not list((tmp_path / "cache").rglob("*.tmp"))


@pytest.mark.slow
@pytest.mark.parametrize("name, ndcg", [("scifact", 0.68630), ("nfcorpus", 0.32102)])
def test_real_sets_score_as_before(tmp_path, name, ndcg):
    path = SHARED_BEIR / name
    if not (path / "corpus.jsonl").is_file():
        pytest.skip(f"real BEIR data not found at {path}")
    data = load_beir_folder(path, store_dir=tmp_path / "store")
    ours = BM25Retriever(progress=False, cache_dir=tmp_path / "cache")
    ours.index(data.corpus)
    run = ours.search(data.queries, 1000).run
    ref = _reference(data.corpus, data.queries, 1000, BM25Config())
    assert_same_columns(ours._model, ref["model"])
    assert_same_up_to_cutoff_ties(run, ref["run"])
    ours_m, ref_m = evaluate(data.qrels, run).metrics, evaluate(data.qrels, ref["run"]).metrics
    assert round(ours_m["ndcg@10"], 5) == ndcg
    assert ours_m.keys() == ref_m.keys() and all(abs(ours_m[m] - ref_m[m]) < 1e-8 for m in ours_m)
    again = BM25Retriever(progress=False, cache_dir=tmp_path / "cache")
    again_info = again.index(data.corpus).stats["bm25_index"]
    assert again_info["reused"] and again.search(data.queries, 1000).run == run
