"""A memory-lean builder of bm25s' index, and a top-k search over it, for corpora of any size.

`bm25s.tokenize` + `BM25.index` hold every document's token list as Python lists, then a dict of
document frequencies, then three arrays of all (document, term) scores and their sorted copies: at
MS MARCO's 8.8M passages that passes 24 GB.  Here the same index (bm25s' CSC score matrix:
`data`, `indices`, `indptr`, with bm25s' vocabulary and parameter files, loadable with
`bm25s.BM25.load(mmap=True)`) is built in two streamed passes:

1. Tokenise chunks of documents in worker processes (the corpus store is memory-mapped by each
   worker, so no text crosses a pipe), exactly as `bm25s.tokenize(texts, stopwords, stemmer)`
   does: lower-case, `(?u)\\b\\w\\w+\\b`, drop stopwords, stem.  Each chunk comes back as its unique
   (document, term, count) triples and document lengths, which are spilled to disk; the document
   frequency of each term (its column's length in the matrix) is summed as chunks arrive.
2. With the frequencies known, `indptr = cumsum(df)` fixes where every column starts, and the
   scores are computed chunk by chunk in document order with bm25s' own idf and tf functions and
   written straight into memory-mapped output files, each column filled in document order.

The result is bit-identical to bm25s' index up to the numbering of the vocabulary, which does not
enter any score: a query's score for a document is the sum, in query-token order, of the same
float32 values.  Search (`Searcher`) sums exactly like bm25s' `get_scores` (`np.add.at` per query
token, in order, float32), but selects the top k among the documents a query touches instead of
partitioning all N scores per query; documents sharing no term with the query score 0 and are not
returned.  Only the choice among documents tied at the k-th score can differ from bm25s, which
leaves it to argpartition (and so to the layout of all N scores); here it follows trec_eval's
ranking, document id descending, so the kept top k are the first k of the run file's order.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from itertools import chain, repeat
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

INDEX_FORMAT = 1
TOKEN_PATTERN = r"(?u)\b\w\w+\b"  # bm25s.tokenize's default (scikit-learn's CountVectorizer)
CHUNK_DOCS = 100_000
PARALLEL_MIN_DOCS = 200_000  # below this, tokenising in this process beats starting workers
INDEX_FILES = ("data.csc.index.npy", "indices.csc.index.npy", "indptr.csc.index.npy", "vocab.index.json",
               "params.index.json")  # fmt: skip


# --- pass 1: tokenising (runs in worker processes) ----------------------------------------------


class ChunkTokenizer:
    """bm25s.tokenize's rules, one chunk of texts at a time.

    Words map to stem ids that persist across the chunks one tokenizer sees (each worker process
    has its own); every chunk's result carries the stems first seen in it (`new_stems`, ids from
    `base` on), so the main process can translate this tokenizer's ids into global ones.
    """

    def __init__(self, stopwords: list[str] | tuple[str, ...], stemmer: str | None):
        self.stop = frozenset(stopwords)
        self.split = re.compile(TOKEN_PATTERN).findall
        self.stemmer = None
        if stemmer:
            import Stemmer

            self.stemmer = Stemmer.Stemmer(stemmer)
        self.word_id: dict[str, int] = {}  # -1: a stopword
        self.stem_id: dict[str, int] = {}

    def __call__(self, texts: list[str]) -> dict:
        """Unique (document, term, count) triples of the chunk, its document lengths and new stems."""
        base = len(self.stem_id)
        words = [self.split(t.lower()) for t in texts]
        raw_lengths = np.fromiter(map(len, words), np.int64, len(words))
        flat = list(chain.from_iterable(words))
        ids = np.fromiter(map(self.word_id.get, flat, repeat(-2)), np.int64, len(flat))
        unknown = np.flatnonzero(ids == -2)
        if len(unknown):
            new = list(dict.fromkeys(flat[i] for i in unknown.tolist()))
            kept = [w for w in new if w not in self.stop]
            stems = self.stemmer.stemWords(kept) if self.stemmer else kept
            self.word_id.update(dict.fromkeys(new, -1))
            self.word_id.update(
                (w, self.stem_id.setdefault(s, len(self.stem_id))) for w, s in zip(kept, stems, strict=True)
            )
            ids[unknown] = [self.word_id[flat[i]] for i in unknown.tolist()]
        doc_of = np.repeat(np.arange(len(texts), dtype=np.int64), raw_lengths)
        keep = ids >= 0
        ids, doc_of = ids[keep], doc_of[keep]
        width = max(1, len(self.stem_id))
        pairs, tf = np.unique(doc_of * width + ids, return_counts=True)
        docs, terms = np.divmod(pairs, width)
        return {
            "base": base,
            "new_stems": list(self.stem_id)[base:] if len(self.stem_id) > base else [],
            "lengths": np.bincount(doc_of, minlength=len(texts)).astype(np.int64),
            "terms": terms.astype(np.int32),
            "tf": tf.astype(np.int32),
            "terms_per_doc": np.bincount(docs, minlength=len(texts)).astype(np.int32),
        }


_WORKER: dict = {}


def _worker_init(store_path: str, stopwords: list[str], stemmer: str | None) -> None:
    from ..data.store import map_store

    _WORKER.update(table=map_store(Path(store_path)), tokenize=ChunkTokenizer(stopwords, stemmer))


def _worker_chunk(start: int, stop: int) -> dict:
    rows = _WORKER["table"].slice(start, stop - start)
    return {"tokenizer": os.getpid(), **_WORKER["tokenize"](_texts(rows))}


def _texts(rows) -> list[str]:
    titles, bodies = rows.column("title").to_pylist(), rows.column("text").to_pylist()
    return [(t + " " + b).strip() for t, b in zip(titles, bodies, strict=True)]


def _tokenized_chunks(corpus, stopwords, stemmer, workers: int) -> Iterator[tuple[int, dict]]:
    """(first document, tokenised chunk) in document order; in worker processes for large corpora."""
    n = len(corpus)
    bounds = [(a, min(n, a + CHUNK_DOCS)) for a in range(0, n, CHUNK_DOCS)]
    if workers <= 1 or n < PARALLEL_MIN_DOCS or corpus.store_path is None:
        tokenize = ChunkTokenizer(stopwords, stemmer)
        for a, b in bounds:
            yield a, {"tokenizer": 0, **tokenize(corpus.texts(range(a, b)))}
        return
    import multiprocessing as mp

    ctx = mp.get_context("spawn")  # no fork of a process that may hold torch threads
    with ProcessPoolExecutor(
        workers, ctx, _worker_init, (str(corpus.store_path), list(stopwords), stemmer)
    ) as pool:
        pending = []
        for a, b in bounds:
            pending.append((a, pool.submit(_worker_chunk, a, b)))
            if len(pending) > 2 * workers:  # a bounded number of chunks in flight
                first, fut = pending.pop(0)
                yield first, fut.result()
        for first, fut in pending:
            yield first, fut.result()


# --- pass 2: scores into the CSC matrix ---------------------------------------------------------


@dataclass
class BuildStats:
    documents: int
    vocabulary: int
    nonzeros: int
    tokenize_s: float
    scores_s: float


def build_index(corpus, folder: Path, config, workers: int = 2, progress: bool = True) -> BuildStats:
    """Write bm25s' index of `corpus` (BM25 `config`) into the empty folder `folder`."""
    from bm25s.scoring import _build_nonoccurrence_array, _select_idf_scorer, _select_tfc_scorer

    from .. import progress as bars

    stopwords = _stopwords(config.stopwords)
    n = len(corpus)
    spill = folder / "spill"
    spill.mkdir(parents=True)
    t0 = time.perf_counter()
    vocab: dict[str, int] = {}
    df = np.zeros(1 << 16, dtype=np.int64)
    lengths = np.zeros(n, dtype=np.int64)
    chunks: list[tuple[int, int]] = []
    bar = bars.bar(n, "BM25: tokenise", "doc", enabled=progress)
    local_to_global: dict[int, np.ndarray] = {}  # per tokenizer: its stem ids -> global ids
    for first, chunk in _tokenized_chunks(corpus, stopwords, config.stemmer, workers):
        known = local_to_global.get(chunk["tokenizer"], np.zeros(0, np.int32))
        if len(known) != chunk["base"]:
            raise RuntimeError("BM25 index: a tokenizer's chunks arrived out of order")
        new = np.fromiter((vocab.setdefault(s, len(vocab)) for s in chunk["new_stems"]), np.int32)
        gids = local_to_global[chunk["tokenizer"]] = np.concatenate([known, new])
        terms = gids[chunk["terms"]]
        if len(vocab) > len(df):
            df = np.concatenate([df, np.zeros(max(len(vocab), 2 * len(df)) - len(df), np.int64)])
        df[: len(vocab)] += np.bincount(terms, minlength=len(vocab))
        count = len(chunk["lengths"])
        lengths[first : first + count] = chunk["lengths"]
        for name, arr in (("terms", terms), ("tf", chunk["tf"]), ("tpd", chunk["terms_per_doc"])):
            np.save(spill / f"{first:010d}.{name}.npy", arr, allow_pickle=False)
        chunks.append((first, count))
        bar.update(count)
    bar.close()
    tokenize_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    df = df[: len(vocab)]
    avg_doc_len = lengths.mean()  # what bm25s computes: np.array([len(doc) ...]).mean()
    idf_fn = _select_idf_scorer(config.method)
    idf = _per_unique(df, lambda d: idf_fn(d, N=n)).astype(np.float32)
    nonoccurrence = None
    if config.method in ("bm25l", "bm25+"):
        nonoccurrence = _build_nonoccurrence_array(
            dict(enumerate(df.tolist())), n, idf_fn, _select_tfc_scorer(config.method), avg_doc_len, avg_doc_len,
            config.k1, config.b, config.delta,
        )  # fmt: skip
        np.save(folder / "nonoccurrence_array.index.npy", nonoccurrence, allow_pickle=False)
    tfc_fn = _select_tfc_scorer(config.method)
    indptr = np.zeros(len(vocab) + 1, dtype=np.int64)
    np.cumsum(df, out=indptr[1:])
    nnz = int(indptr[-1])
    data = _output(folder / INDEX_FILES[0], np.float32, nnz)
    indices = _output(folder / INDEX_FILES[1], np.int32, nnz)
    heads = indptr[:-1].copy()
    bar = bars.bar(n, "BM25: score", "doc", enabled=progress)
    for first, count in chunks:
        terms, tf, per_doc = (
            np.load(spill / f"{first:010d}.{x}.npy", allow_pickle=False) for x in ("terms", "tf", "tpd")
        )
        bar.update(count)
        if not len(terms):
            continue
        docs = np.repeat(np.arange(first, first + count, dtype=np.int64), per_doc)
        tfc = tfc_fn(tf_array=tf.astype(np.float32), l_d=lengths[docs], l_avg=avg_doc_len, k1=config.k1,
                     b=config.b, delta=config.delta)  # fmt: skip
        scores = idf[terms] * tfc
        if nonoccurrence is not None:
            scores -= nonoccurrence[terms]
        order = np.argsort(terms, kind="stable")  # by column; document order kept within each
        sorted_terms = terms[order]
        starts = np.flatnonzero(np.r_[True, sorted_terms[1:] != sorted_terms[:-1]])
        sizes = np.diff(np.r_[starts, len(sorted_terms)])
        pos = heads[sorted_terms] + (np.arange(len(sorted_terms)) - np.repeat(starts, sizes))
        data[pos] = scores[order]
        indices[pos] = docs[order]
        heads[sorted_terms[starts]] += sizes
    bar.close()
    if not np.array_equal(heads, indptr[1:]):
        raise RuntimeError("BM25 index: column fill does not match the document frequencies")
    if nnz:
        data.flush()
        indices.flush()
    else:
        np.save(folder / INDEX_FILES[0], data, allow_pickle=False)
        np.save(folder / INDEX_FILES[1], indices, allow_pickle=False)
    del data, indices
    np.save(folder / INDEX_FILES[2], indptr, allow_pickle=False)
    shutil.rmtree(spill)
    _write_vocab_and_params(folder, vocab, config, n)
    return BuildStats(n, len(vocab), nnz, tokenize_s, time.perf_counter() - t0)


def _output(path: Path, dtype, size: int) -> np.ndarray:
    """A memory-mapped .npy to fill in place (an empty array in memory when there is nothing)."""
    if not size:
        return np.zeros(0, dtype=dtype)
    return np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=(size,))


def _per_unique(values: np.ndarray, fn) -> np.ndarray:
    """fn(int(v)) for each value, computed once per distinct value (bm25s calls it per term)."""
    distinct, inverse = np.unique(values, return_inverse=True)
    return np.array([fn(int(v)) for v in distinct], dtype=np.float64)[inverse]


def _write_vocab_and_params(folder: Path, vocab: dict[str, int], config, n_docs: int) -> None:
    """bm25s' `save` files: vocab.index.json (with its empty token) and params.index.json."""
    import bm25s
    from bm25s.utils import json_functions

    vocab = dict(vocab)
    vocab.setdefault("", len(vocab))  # bm25s.BM25.index(create_empty_token=True) adds it
    (folder / INDEX_FILES[3]).write_text(json_functions.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    params = dict(k1=config.k1, b=config.b, delta=config.delta, method=config.method, idf_method=config.method,
                  dtype="float32", int_dtype="int32", num_docs=n_docs, version=bm25s.__version__, backend="numpy")  # fmt: skip
    (folder / INDEX_FILES[4]).write_text(json.dumps(params, indent=4))


def _stopwords(stopwords) -> list[str]:
    from bm25s.tokenization import _infer_stopwords

    return list(_infer_stopwords(stopwords))


def default_workers() -> int:
    return max(
        1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    )


# --- search -------------------------------------------------------------------------------------


class Searcher:
    """Exact top-k over bm25s' CSC score matrix (`data`, `indices`, `indptr`; memory-mapped or not).

    A query's scores are summed into a dense float32 buffer exactly as bm25s' `get_scores_from_ids`
    does (`np.add.at` over each query token's column, in query-token order), but only the documents
    in those columns are examined: a document holds at most T = len(tokens) of the gathered entries,
    so the k*T largest entries hold at least k distinct documents, and every document scoring at least
    the (k*T)-th entry value is a candidate.  The buffer is reset entry by entry; no pass over all N.
    Documents tied at the k-th score are kept in trec_eval's order, document id descending, given
    `tie_ids` (the id column), else lower indices first.
    """

    def __init__(self, data, indices, indptr, num_docs: int, tie_ids=None):
        self.data, self.indices, self.indptr = data, indices, np.asarray(indptr)
        self.buf = np.zeros(num_docs, dtype=np.float32)
        self.tie_ids = tie_ids

    def one(self, token_ids: list[int], k: int) -> tuple[np.ndarray, np.ndarray]:
        ids = np.asarray(token_ids, dtype=np.int64)
        if not len(ids):
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        cols = list(zip(self.indptr[ids].tolist(), self.indptr[ids + 1].tolist(), strict=True))
        docs = np.concatenate([self.indices[a:b] for a, b in cols])
        start = 0
        for a, b in cols:  # bm25s' get_scores: np.add.at per query token, in query order, float32
            np.add.at(self.buf, docs[start : start + b - a], self.data[a:b])
            start += b - a
        values = self.buf[docs]
        if len(docs) > len(self.buf) // 8:
            self.buf.fill(0)
        else:
            self.buf[docs] = 0
        most = k * len(ids)
        if len(docs) > most:
            keep = values >= np.partition(values, len(values) - most)[len(values) - most]
            docs, values = docs[keep], values[keep]
        cand, first = np.unique(docs, return_index=True)
        scores = values[first]
        cand, scores = cand[scores > 0], scores[scores > 0]
        if len(cand) > k:
            kth = scores[np.argpartition(-scores, k - 1)[k - 1]]
            above, tied = np.flatnonzero(scores > kth), np.flatnonzero(scores == kth)
            if self.tie_ids is not None:
                keys = self.tie_ids.take(cand[tied])
                tied = tied[sorted(range(len(tied)), key=keys.__getitem__, reverse=True)]
            top = np.concatenate([above, tied[: k - len(above)]])
            cand, scores = cand[top], scores[top]
        order = np.lexsort((cand, -scores))
        return cand[order], scores[order]

    def batch(self, queries: list[list[int]], k: int) -> tuple[np.ndarray, np.ndarray]:
        """(doc indices, scores), each (len(queries), k), best first; -1 / 0 pad short rows."""
        out_i = np.full((len(queries), k), -1, dtype=np.int64)
        out_s = np.zeros((len(queries), k), dtype=np.float32)
        for r, q in enumerate(queries):
            cand, scores = self.one(q, k)
            out_i[r, : len(cand)], out_s[r, : len(cand)] = cand, scores
        return out_i, out_s


_SEARCHER: dict = {}


def _search_init(folder: str, store_path: str | None) -> None:
    from ..data.store import map_store

    paths = [Path(folder) / name for name in INDEX_FILES[:3]]
    arrays = [np.load(path, mmap_mode="r", allow_pickle=False) for path in paths]
    params = json.loads((Path(folder) / INDEX_FILES[4]).read_text())
    tie_ids = None
    if store_path:
        from ..data.loader import TextColumn

        tie_ids = TextColumn(map_store(Path(store_path)).column("_id"))
    _SEARCHER["s"] = Searcher(*arrays, params["num_docs"], tie_ids)


def _search_batch(queries: list[list[int]], k: int):
    return _SEARCHER["s"].batch(queries, k)


SEARCH_BATCH = 256


def search(model, queries: list[list[int]], k: int, workers: int = 1, folder: Path | None = None,
           store_path: Path | None = None, tie_ids=None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Top-k of every query (lists of token ids), in `workers` processes when the index is saved in
    `folder` (each maps it and the corpus store's ids), else in this process over `model.scores`."""
    batches = [queries[a : a + SEARCH_BATCH] for a in range(0, len(queries), SEARCH_BATCH)]
    small = int(model.scores["num_docs"]) < PARALLEL_MIN_DOCS
    if workers <= 1 or folder is None or len(batches) < 2 or small:
        s = model.scores
        searcher = Searcher(s["data"], s["indices"], s["indptr"], int(s["num_docs"]), tie_ids)
        parts = [searcher.batch(b, k) for b in batches]
    else:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        init = (str(folder), str(store_path) if store_path else None)
        with ProcessPoolExecutor(workers, ctx, _search_init, init) as pool:
            parts = list(pool.map(_search_batch, batches, [k] * len(batches)))
    if not parts:
        return np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
