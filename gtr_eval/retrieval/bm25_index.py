"""A memory-lean builder of bm25s' index, and a top-k search over it, for corpora of any size.

`bm25s.tokenize` + `BM25.index` hold every document's token list as Python lists, then a dict of
document frequencies, then three arrays of all (document, term) scores and their sorted copies: at
MS MARCO's 8.8M passages that passes 24 GB.  Here the same index (bm25s' CSC score matrix:
`data`, `indices`, `indptr`, with bm25s' vocabulary and parameter files, loadable with
`bm25s.BM25.load(mmap=True)`) is built in two streamed passes, both in worker processes:

1. Tokenise chunks of documents (`ChunkTokenizer`: the corpus store is memory-mapped by each
   worker, so no text crosses a pipe) exactly as `bm25s.tokenize(texts, stopwords, stemmer)`
   does: lower-case, `(?u)\\b\\w\\w+\\b`, drop stopwords, stem.  ASCII documents are tokenised on
   their bytes with numpy and words are looked up by their bytes in hash tables, so no Python
   object is made per token; each distinct word is stemmed once.  Each chunk's unique (document,
   term, count) entries are spilled by the worker, in document order, into one file per bucket of
   terms (`ChunkSpiller`); the main process numbers the stems across workers and sums each term's
   document frequency (its column's length in the matrix).
2. With the frequencies known, `indptr = cumsum(df)` fixes where every column starts.  The columns
   are ordered bucket by bucket, so each bucket fills one contiguous range of the output files:
   a worker reads a bucket's entries, sorts them by column (a stable radix sort: document order
   kept), computes the scores with bm25s' own idf and tf functions and writes the range
   (`score_bucket`).

The result is bit-identical to bm25s' index up to the numbering of the vocabulary, which does not
enter any score: a query's score for a document is the sum, in query-token order, of the same
float32 values.  Search (`Searcher`) sums exactly like bm25s' `get_scores` (each query token's
column added in query order, float32), block of documents by block, and selects the top k among
the documents a query touches instead of partitioning all N scores per query; documents sharing no
term with the query score 0 and are not returned.  Only the choice among documents tied at the
k-th score can differ from bm25s, which leaves it to argpartition (and so to the layout of all N
scores); here it follows trec_eval's ranking, document id descending, so the kept top k are the
first k of the run file's order.  Worker processes read the saved index with `pread`, the store
pages they read are dropped from their address space after each chunk: what the processes hold is
what they compute on, not the files they read.
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
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

INDEX_FORMAT = 1
TOKEN_PATTERN = r"(?u)\b\w\w+\b"  # bm25s.tokenize's default (scikit-learn's CountVectorizer)
CHUNK_DOCS = 50_000  # at most 65,536: the spill numbers a chunk's documents in 16 bits
PARALLEL_MIN_DOCS = 200_000  # below this, tokenising in this process beats starting workers
INDEX_FILES = ("data.csc.index.npy", "indices.csc.index.npy", "indptr.csc.index.npy", "vocab.index.json",
               "params.index.json")  # fmt: skip


# --- pass 1: tokenising (runs in worker processes) ----------------------------------------------

KEY_WORDS = 4  # words of at most 8 * KEY_WORDS UTF-8 bytes are keyed by their bytes
KEY_BYTES = 8 * KEY_WORDS
_LOW_BYTES = np.array([(1 << (8 * i)) - 1 for i in range(8)] + [(1 << 64) - 1], dtype=np.uint64)
_MIX = [np.uint64(x) for x in (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93,
                               0xFF51AFD7ED558CCD)]  # fmt: skip


def ascii_lower(raw: np.ndarray) -> np.ndarray:
    """`str.lower()` of ASCII bytes: A-Z to a-z, every other byte kept."""
    upper = (raw - np.uint8(ord("A"))) < np.uint8(26)
    return raw | (upper.view(np.uint8) << np.uint8(5))


def word_runs(low: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(start, length) of every maximal run of ASCII word bytes ([0-9a-z_], the text lower-cased) in
    `low`, runs cut at `bounds` (the first byte of each document).  On ASCII text the runs of two or
    more bytes are exactly the matches of `(?u)\\b\\w\\w+\\b`."""
    if not len(low):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    w = ((low - np.uint8(ord("a"))) < np.uint8(26)) | ((low - np.uint8(ord("0"))) < np.uint8(10))
    w |= low == np.uint8(ord("_"))
    cut = bounds[(bounds > 0) & (bounds < len(w))]
    before = np.empty_like(w)  # the byte before is a word byte of the same document
    before[0] = False
    before[1:] = w[:-1]
    before[cut] = False
    after = np.empty_like(w)
    after[-1] = False
    after[:-1] = w[1:]
    after[cut - 1] = False
    starts = np.flatnonzero(w & ~before)
    ends = np.flatnonzero(w & ~after) + 1
    return starts, ends - starts


def byte_keys(padded: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    """Each word's first KEY_BYTES bytes as KEY_WORDS little-endian uint64 (zero past its end);
    `padded` holds at least KEY_BYTES zero bytes after the last word.  Word bytes are never 0, so two
    words of at most KEY_BYTES bytes have equal keys exactly when they are the same word."""
    win = np.ndarray((len(padded) - 7,), dtype="<u8", buffer=padded, strides=(1,))  # 8 bytes at any offset
    return [win[starts + 8 * j] & _LOW_BYTES[np.clip(lengths - 8 * j, 0, 8)] for j in range(KEY_WORDS)]


def key_hash(keys: list[np.ndarray]) -> np.ndarray:
    """A 64-bit mix of keys (one-to-one on words of up to 8 bytes); equal hashes are checked by key."""
    h = keys[0] * _MIX[0]
    for j in range(1, KEY_WORDS):
        h ^= h >> np.uint64(31)
        h += keys[j] * _MIX[j]
    h ^= h >> np.uint64(32)
    h *= _MIX[KEY_WORDS]
    h ^= h >> np.uint64(29)
    return h


def gather_words(buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> list[str]:
    """The ASCII words at (starts, lengths) of `buf` as strings: one gather, one decode, one split."""
    if not len(starts):
        return []
    lengths = lengths.astype(np.int64)
    before = np.cumsum(lengths) - lengths  # bytes of the words before each
    total = int(lengths.sum())
    k = np.arange(total, dtype=np.int64)
    out = np.full(total + len(starts) - 1, ord(" "), np.uint8)  # the words, one space apart
    out[k + np.repeat(np.arange(len(starts)), lengths)] = buf[k + np.repeat(starts - before, lengths)]
    return out.tobytes().decode("ascii").split(" ")


class ChunkTokenizer:
    """bm25s.tokenize's rules, one chunk of documents (an Arrow table with `title`, `text`) at a time:
    the text `title + " " + text`, lower-cased, its matches of `(?u)\\b\\w\\w+\\b`, stopwords dropped,
    each word stemmed.

    Documents in ASCII (all of the synthetic corpus, most of MS MARCO) are tokenised on their bytes
    with numpy: on ASCII, `str.lower()` maps A-Z only and a match is a maximal run of two or more of
    [0-9A-Za-z_].  Any other document goes through `str.lower()` and the regular expression, as
    bm25s does (Unicode's case rules and word characters are Python's), its words then as UTF-8
    bytes.  Words are looked up by key (their bytes, `byte_keys`) through a 64-bit hash in pandas'
    hash tables (`Index.get_indexer`), with no Python object per token: only a chunk's new words
    become strings, to be stemmed once each (PyStemmer).  Words longer than KEY_BYTES, and the rare
    word whose hash another word holds, are looked up by string in a dict (`other`).  Every hash
    match is confirmed by comparing the keys, so the result is exactly bm25s' tokenisation (tests
    force collisions).

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

            # PyStemmer's cache (10,000 words by default) makes stemming 8x slower on a vocabulary
            # of millions of words; here each word is stemmed once anyway.
            self.stemmer = Stemmer.Stemmer(stemmer, 0)
        self.stems: list[str] = []  # stem id -> stem
        self.stem_id: dict[str, int] = {}
        self.hash = key_hash
        # the words known by key, in the order they came: hash, key, term id (-1: a stopword)
        self.count = 0
        self.w_hash = np.zeros(0, np.uint64)
        self.w_keys = [np.zeros(0, np.uint64) for _ in range(KEY_WORDS)]
        self.w_tid = np.zeros(0, np.int64)
        self._index = self._recent = None  # pandas' hash tables of w_hash (see `_where`)
        self._big = 0  # how many words the first one holds
        self.other: dict[str, int] = {}  # words known by string: longer than KEY_BYTES, or hash taken
        self.other_short = 0  # how many of those are short enough for a key
        stop = [w for w in sorted(self.stop) if 0 < len(w.encode()) <= KEY_BYTES]
        if stop:
            encoded = [w.encode() for w in stop]
            lengths = np.array([len(e) for e in encoded], np.int64)
            buf = np.zeros(int(lengths.sum()) + KEY_BYTES, np.uint8)
            buf[: int(lengths.sum())] = np.frombuffer(b"".join(encoded), np.uint8)
            keys = byte_keys(buf, np.cumsum(lengths) - lengths, lengths)
            h = self.hash(keys)
            _, first = np.unique(h, return_index=True)
            self._store(h[first], [k[first] for k in keys], np.full(len(first), -1, np.int64))
            for i in sorted(set(range(len(stop))) - set(first.tolist())):  # a hash another stopword holds
                self.other[stop[i]] = -1
                self.other_short += 1

    def _store(self, hashes: np.ndarray, keys: list[np.ndarray], tids: np.ndarray) -> None:
        """Append words (distinct hashes, none held yet) to the arrays."""
        end = self.count + len(hashes)
        if end > len(self.w_hash):
            size = max(end, len(self.w_hash) * 3 // 2, 1 << 16)

            def grown(a):
                out = np.zeros(size, a.dtype)
                out[: self.count] = a[: self.count]
                return out

            self.w_hash, self.w_tid = grown(self.w_hash), grown(self.w_tid)
            self.w_keys = [grown(k) for k in self.w_keys]
        self.w_hash[self.count : end] = hashes
        self.w_tid[self.count : end] = tids
        for w, k in zip(self.w_keys, keys, strict=True):
            w[self.count : end] = k
        self.count = end
        self._recent = None

    def _where(self, h: np.ndarray) -> np.ndarray:
        """The word holding each hash (its index in the arrays), -1 where none does.  pandas' hash
        tables (`Index.get_indexer`): one over most words, rebuilt when the words added since pass a
        quarter of it, and one over those recent words."""
        import pandas as pd

        if self.count - self._big > max(self._big // 4, 1 << 16):
            self._index, self._big = None, self.count
        if self._index is None:
            self._index = pd.Index(self.w_hash[: self._big].copy())
            self._recent = None
        loc = self._index.get_indexer(h)
        if self.count > self._big:
            if self._recent is None:
                self._recent = pd.Index(self.w_hash[self._big : self.count].copy())
            miss = np.flatnonzero(loc < 0)
            found = self._recent.get_indexer(h[miss])
            loc[miss] = np.where(found >= 0, found + self._big, -1)
        return loc

    def _known(self, h: np.ndarray, keys: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """For tokens (hashes, keys): whether their hash is held, and the term id where the word
        holding it is the token's own (same key; -2 elsewhere)."""
        if not self.count:
            return np.zeros(len(h), dtype=bool), np.full(len(h), -2, np.int64)
        loc = self._where(h)
        held = loc >= 0
        at = np.where(held, loc, 0)
        same = held.copy()
        for mine, theirs in zip(keys, self.w_keys, strict=True):
            same &= mine == theirs[at]
        return held, np.where(same, self.w_tid[at], -2)

    def _term_ids(self, words: list[str]) -> list[int]:
        """Term ids of new words: -1 for a stopword, else its stem's id (stems numbered as first seen)."""
        kept = [w for w in words if w not in self.stop]
        stems = self.stemmer.stemWords(kept) if self.stemmer else kept
        ids, first = self.stem_id, len(self.stem_id)
        stem_ids = iter([ids.setdefault(s, len(ids)) for s in stems])
        if len(ids) > first:
            self.stems += dict.fromkeys(s for s in stems if ids[s] >= first)  # in id order
        return [-1 if w in self.stop else next(stem_ids) for w in words]

    def __call__(self, rows) -> dict:
        """Unique (document, term, count) triples of the chunk, its document lengths and new stems."""
        import pyarrow as pa
        import pyarrow.compute as pc

        t0 = time.perf_counter()
        n = rows.num_rows
        base = len(self.stems)
        title, text = (pc.fill_null(rows.column(c), "") for c in ("title", "text"))
        size = sum(pc.sum(pc.binary_length(c)).as_py() or 0 for c in (title, text)) + n
        if size >= 1 << 31:  # past 32-bit string offsets
            title, text = title.cast(pa.large_string()), text.cast(pa.large_string())
        joined = pc.binary_join_element_wise(title, text, " ")
        joined = joined.combine_chunks() if isinstance(joined, pa.ChunkedArray) else joined
        if not pa.types.is_large_string(joined.type):
            joined = joined.cast(pa.string())
        ascii_doc = pc.string_is_ascii(joined).to_numpy(zero_copy_only=False).astype(bool)
        t1 = time.perf_counter()

        # ASCII documents: words straight from the bytes (the others' bytes are skipped)
        off_type = np.int64 if pa.types.is_large_string(joined.type) else np.int32
        buffers = joined.buffers()
        offsets = np.frombuffer(buffers[1], off_type)[joined.offset : joined.offset + n + 1].astype(np.int64)
        data = np.frombuffer(buffers[2], np.uint8) if buffers[2] is not None else np.zeros(0, np.uint8)
        low = np.zeros(int(offsets[-1] - offsets[0]) + KEY_BYTES, np.uint8)
        low[: len(low) - KEY_BYTES] = ascii_lower(data[offsets[0] : offsets[-1]])
        bounds = offsets - offsets[0]
        starts, lengths = word_runs(low[: len(low) - KEY_BYTES], bounds)
        doc = np.repeat(np.arange(n), np.diff(np.searchsorted(starts, bounds)))
        keep = (lengths >= 2) & ascii_doc[doc]
        starts, lengths, doc = starts[keep], lengths[keep], doc[keep]
        keys = byte_keys(low, starts, lengths)
        n_ascii = len(starts)
        t2 = time.perf_counter()

        # other documents: str.lower() and the regular expression; their words then as UTF-8 bytes
        py_words: list[str] = []
        if not ascii_doc.all():
            rest = np.flatnonzero(~ascii_doc)
            words = [self.split(t.lower()) for t in joined.take(pa.array(rest)).to_pylist()]
            py_words = list(chain.from_iterable(words))
            encoded = [w.encode() for w in py_words]
            b_len = np.fromiter(map(len, encoded), np.int64, len(encoded))
            b_buf = np.zeros(int(b_len.sum()) + KEY_BYTES, np.uint8)
            b_buf[: int(b_len.sum())] = np.frombuffer(b"".join(encoded), np.uint8)
            b_keys = byte_keys(b_buf, np.cumsum(b_len) - b_len, b_len)
            keys = [np.concatenate(k) for k in zip(keys, b_keys, strict=True)]
            lengths = np.concatenate([lengths, b_len])
            doc = np.concatenate([doc, np.repeat(rest, np.fromiter(map(len, words), np.int64, len(words)))])
        t3 = time.perf_counter()

        def strings(idx: np.ndarray) -> list[str]:
            """The words of tokens `idx` (indices into this chunk's tokens)."""
            mine = idx < n_ascii
            if mine.all():
                return gather_words(low, starts[idx], lengths[idx])
            out = np.empty(len(idx), dtype=object)
            out[mine] = gather_words(low, starts[idx[mine]], lengths[idx[mine]])
            out[~mine] = [py_words[i - n_ascii] for i in idx[~mine].tolist()]
            return out.tolist()

        self.new_words_s = 0.0
        tid = self._lookup(keys, lengths, strings)
        t4 = time.perf_counter()
        kept = tid >= 0
        tid, doc = tid[kept], doc[kept]
        width = max(1, len(self.stems))
        pairs, tf = np.unique(doc * width + tid, return_counts=True)
        docs, terms = np.divmod(pairs, width)
        return {
            "base": base,
            "new_stems": self.stems[base:],
            "lengths": np.bincount(doc, minlength=n).astype(np.int64),
            "terms": terms.astype(np.int32),
            "tf": tf.astype(np.int32),
            "terms_per_doc": np.bincount(docs, minlength=n).astype(np.int32),
            "timings": {
                "text from the store": t1 - t0,
                "ASCII documents: words and keys": t2 - t1,
                "other documents: str.lower and the regex": t3 - t2,
                "word lookup": t4 - t3 - self.new_words_s,
                "new words: strings and stems": self.new_words_s,
                "(document, term, count) triples": time.perf_counter() - t4,
            },
        }

    def _lookup(self, keys: list[np.ndarray], lengths: np.ndarray, strings) -> np.ndarray:
        """The term id of every token (its key and byte length; `strings(idx)` the words), new words
        added: to the arrays when they have a key and their hash is free, else to `other`."""
        import pandas as pd

        tid = np.full(len(lengths), -2, np.int64)
        short = np.flatnonzero(lengths <= KEY_BYTES)
        by_string = [np.flatnonzero(lengths > KEY_BYTES)]
        if len(short):
            sk = [k[short] for k in keys]
            h = self.hash(sk)
            held, t = self._known(h, sk)
            by_string.append(short[held & (t == -2)])  # the hash is another word's
            miss = np.flatnonzero(~held)
            t0 = time.perf_counter()
            if len(miss):  # new words, or words known by string
                codes, uniq = pd.factorize(h[miss])
                rep = np.empty(len(uniq), np.int64)
                rep[codes] = miss  # one token of each distinct hash (any: all are checked against it)
                same = np.ones(len(miss), dtype=bool)
                for k in sk:
                    same &= k[miss] == k[rep][codes]
                clash = np.zeros(len(uniq), dtype=bool)  # two words of this chunk share the hash
                clash[codes[~same]] = True
                new = np.flatnonzero(~clash)
                words = strings(short[rep[new]])
                group_tid = np.full(len(uniq), -2, np.int64)
                if self.other_short:
                    found = [self.other.get(w) for w in words]
                    fresh = np.array([f is None for f in found], dtype=bool)
                    group_tid[new[~fresh]] = [f for f in found if f is not None]
                    new, words = new[fresh], [w for w, f in zip(words, fresh, strict=True) if f]
                ids = np.asarray(self._term_ids(words), np.int64)
                group_tid[new] = ids
                self._store(uniq[new], [k[rep[new]] for k in sk], ids)
                t[miss] = group_tid[codes]
                by_string.append(short[miss[clash[codes]]])
            self.new_words_s += time.perf_counter() - t0
            tid[short] = t
        slow = np.concatenate(by_string)
        if len(slow):  # one by one: by key where the arrays hold it, else by string
            fits = slow[lengths[slow] <= KEY_BYTES]
            if len(fits):
                fk = [k[fits] for k in keys]
                tid[fits] = self._known(self.hash(fk), fk)[1]
            rest = slow[tid[slow] == -2]
            for i, w in zip(rest.tolist(), strings(rest), strict=True):
                tid[i] = self._by_string(w)
        return tid

    def _by_string(self, w: str) -> int:
        if (t := self.other.get(w)) is None:
            t = self.other[w] = self._term_ids([w])[0]
            self.other_short += len(w.encode()) <= KEY_BYTES
        return t


_WORKER: dict = {}


class MappedStore:
    """The corpus store mapped with Python's `mmap`, so that a worker can drop the pages it read from
    its address space after each chunk (`madvise(MADV_DONTNEED)`: they stay in the page cache, but
    leave the worker's RSS, which otherwise grows by each page of the 4 GB store it ever touched)."""

    def __init__(self, path: Path):
        import mmap

        import pyarrow as pa

        with open(path, "rb") as fh:
            self.map = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        self.table = pa.ipc.open_file(pa.py_buffer(self.map)).read_all().replace_schema_metadata(None)

    def drop(self) -> None:
        import mmap

        if hasattr(mmap, "MADV_DONTNEED"):
            self.map.madvise(mmap.MADV_DONTNEED)


BUCKETS = 128  # spill buckets of terms (by a checksum of the stem) for large corpora: pass 2 runs per bucket
_NARROW = np.dtype([("term", "<i4"), ("doc", "<u2"), ("tf", "<u2")])  # doc: its number within the chunk
_WIDE = np.dtype([("term", "<i4"), ("doc", "<u4"), ("tf", "<u4")])  # a chunk of tf >= 65536 (or huge)


def stem_buckets(stems: list[str], buckets: int) -> np.ndarray:
    """The spill bucket of each stem: a checksum of its bytes (the same in every process)."""
    import zlib

    return np.fromiter((zlib.crc32(s.encode()) % buckets for s in stems), np.uint16, len(stems))


class ChunkSpiller:
    """Pass 1 in one process: tokenise chunks (`ChunkTokenizer`) and spill each chunk's (term,
    document, tf) entries, in document order, into one file per bucket (`<name>-<bucket>.bin`, the
    chunks' pieces one after the other, unbuffered: readable by another process once the chunk is
    done).  Terms are this tokenizer's stem ids; the main process gets the new stems, the document
    lengths and frequencies, and where the pieces are."""

    def __init__(self, folder: Path, name: str, buckets: int, stopwords, stemmer):
        self.tokenize = ChunkTokenizer(stopwords, stemmer)
        self.folder, self.name, self.buckets = Path(folder), name, buckets
        self.files = [open(self.folder / f"{name}-{b:05d}.bin", "wb", buffering=0) for b in range(buckets)]
        self.sizes = [0] * buckets
        self.bucket_of = np.zeros(0, np.uint16)  # stem id -> bucket

    def close(self) -> None:
        for fh in self.files:
            fh.close()

    def __call__(self, rows) -> dict:
        out = self.tokenize(rows)
        t0 = time.perf_counter()
        if out["new_stems"]:
            self.bucket_of = np.concatenate([self.bucket_of, stem_buckets(out["new_stems"], self.buckets)])
        terms, tf, per_doc = out.pop("terms"), out.pop("tf"), out.pop("terms_per_doc")
        n = len(per_doc)
        wide = bool(n > 65536 or (len(tf) and int(tf.max()) > 65535))
        dtype = _WIDE if wide else _NARROW
        docs = np.repeat(np.arange(n, dtype=dtype["doc"]), per_doc)
        rec = np.empty(len(terms), dtype)
        if self.buckets == 1:
            counts = [len(terms)]
            rec["term"], rec["doc"], rec["tf"] = terms, docs, tf
        else:
            bucket = self.bucket_of[terms]
            order = np.argsort(bucket, kind="stable")  # document order kept within each bucket
            counts = np.bincount(bucket, minlength=self.buckets).tolist()
            rec["term"], rec["doc"], rec["tf"] = terms[order], docs[order], tf[order]
        offsets, at = list(self.sizes), 0
        for b, count in enumerate(counts):
            if count:
                _append(self.files[b], rec[at : at + count])
                self.sizes[b] += count * dtype.itemsize
                at += count
        df_terms, df_counts = np.unique(terms, return_counts=True)  # each (document, term) once
        out["timings"]["spill"] = time.perf_counter() - t0
        return {"tokenizer": self.name, **out, "df_terms": df_terms.astype(np.int32),
                "df_counts": df_counts.astype(np.int64), "piece": (wide, offsets, counts)}  # fmt: skip


def _worker_init(store_path: str, stopwords: list[str], stemmer: str | None) -> None:
    _WORKER.update(store=MappedStore(Path(store_path)), stopwords=stopwords, stemmer=stemmer)


def _worker_chunk(spill: str, buckets: int, start: int, stop: int) -> dict:
    if _WORKER.get("spill") != spill:
        _WORKER.update(spill=spill, spiller=ChunkSpiller(Path(spill), f"w{os.getpid()}", buckets,
                                                         _WORKER["stopwords"], _WORKER["stemmer"]))  # fmt: skip
    store = _WORKER["store"]
    out = _WORKER["spiller"](store.table.slice(start, stop - start))
    store.drop()
    return out


def _tokenized_chunks(corpus, spill: Path, buckets: int, stopwords, stemmer, pool, workers: int
                      ) -> Iterator[tuple[int, dict]]:  # fmt: skip
    """(first document, tokenised and spilled chunk) in document order; in the `workers` processes
    of `pool`, if any."""
    n = len(corpus)
    bounds = [(a, min(n, a + CHUNK_DOCS)) for a in range(0, n, CHUNK_DOCS)]
    if pool is None:
        spiller = ChunkSpiller(spill, "p0", buckets, stopwords, stemmer)
        try:
            for a, b in bounds:
                yield a, spiller(corpus.rows(range(a, b)))
        finally:
            spiller.close()
        return
    pending = []
    for a, b in bounds:
        pending.append((a, pool.submit(_worker_chunk, str(spill), buckets, a, b)))
        if len(pending) > workers:  # a bounded number of chunks in flight
            first, fut = pending.pop(0)
            yield first, fut.result()
    for first, fut in pending:
        yield first, fut.result()


def _pool(corpus, stopwords, stemmer, workers: int):
    """Worker processes for a large corpus in a store (None: everything in this process)."""
    if workers <= 1 or len(corpus) < PARALLEL_MIN_DOCS or corpus.store_path is None:
        return None
    import multiprocessing as mp

    ctx = mp.get_context("spawn")  # no fork of a process that may hold torch threads
    return ProcessPoolExecutor(workers, ctx, _worker_init, (str(corpus.store_path), list(stopwords), stemmer))


# --- pass 2: scores into the CSC matrix ---------------------------------------------------------


@dataclass
class BuildStats:
    documents: int
    vocabulary: int
    nonzeros: int
    tokenize_s: float
    scores_s: float
    steps: dict = field(default_factory=dict)  # seconds per step (workers' steps summed over them)


_RADIX_MAX = 1 << 16  # a bucket of fewer columns sorts its entries by a uint16 key (numpy: radix sort)


def _bytes(arr: np.ndarray) -> memoryview:
    return memoryview(np.ascontiguousarray(arr).reshape(-1).view(np.uint8))


def _append(fh, rows: np.ndarray) -> None:
    view = _bytes(rows)
    while len(view):  # an unbuffered file may take part of it
        view = view[fh.write(view) :]


def _write_at(fh, arr: np.ndarray, offset: int) -> None:
    """`arr`'s bytes into the unbuffered file `fh` at `offset` (`os.pwrite` where there is one)."""
    view = _bytes(arr)
    while len(view):
        if hasattr(os, "pwrite"):
            done = os.pwrite(fh.fileno(), view, offset)
        else:  # pragma: no cover - Windows
            fh.seek(offset)
            done = fh.write(view)
        view, offset = view[done:], offset + done


def _read_at(fh, arr: np.ndarray, offset: int) -> None:
    """Fill `arr` from the unbuffered file `fh` at `offset` (`os.preadv` where there is one)."""
    view = _bytes(arr)
    while len(view):
        if hasattr(os, "preadv"):
            done = os.preadv(fh.fileno(), [view], offset)
        else:  # pragma: no cover - macOS, Windows
            fh.seek(offset)
            done = fh.readinto(view)
        if not done:
            raise OSError(f"{fh.name}: ends before byte {offset + len(view)}")
        view, offset = view[done:], offset + done


def score_bucket(job: dict, bucket: int, pieces: list, cache: dict) -> dict:
    """Pass 2 for one bucket: its entries, chunk by chunk in document order (`pieces`: first document,
    tokenizer, wide, byte offset, count), become its columns' scores and document indices, written
    at their place in the output files.  A bucket's columns are consecutive in the matrix, so its
    entries fill one contiguous range of each file."""
    from ..compat import bm25s_tfc_scorer

    t0 = time.perf_counter()
    spill = Path(job["spill"])
    if cache.get("scoring") != str(spill):
        for name in ("spiller", "spill"):
            cache.pop(name, None)  # pass 1's state: no longer needed
        cache.update(scoring=str(spill), maps={t: np.load(spill / f"map-{t}.npy", allow_pickle=False) for t in job["tokenizers"]},
                     **{k: np.load(spill / f"{k}.npy", allow_pickle=False) for k in job["arrays"]})  # fmt: skip
    terms, docs, tf = [], [], []
    for first, tokenizer, wide, offset, count in pieces:
        dtype = _WIDE if wide else _NARROW
        rec = np.fromfile(spill / f"{tokenizer}-{bucket:05d}.bin", dtype, count, offset=offset)
        terms.append(cache["maps"][tokenizer][rec["term"]])
        docs.append(rec["doc"].astype(np.int32) + np.int32(first))
        tf.append(rec["tf"])
    terms, docs, tf = (np.concatenate(x) if x else np.zeros(0, np.int32) for x in (terms, docs, tf))
    lo, hi = job["first_column"][bucket], job["first_column"][bucket + 1]
    column = cache["column_of"][terms] - lo  # the column within the bucket
    key = column.astype(np.uint16) if hi - lo <= _RADIX_MAX else column
    order = np.argsort(key, kind="stable")  # by column; document order kept within each
    t1 = time.perf_counter()
    if not np.array_equal(np.bincount(column, minlength=hi - lo), cache["df_by_column"][lo:hi]):
        raise RuntimeError("BM25 index: column fill does not match the document frequencies")
    tfc = bm25s_tfc_scorer(job["method"])(tf_array=tf.astype(np.float32), l_d=cache["lengths"][docs],
                                            l_avg=job["avg_doc_len"], k1=job["k1"], b=job["b"], delta=job["delta"])  # fmt: skip
    scores = cache["idf"][terms] * tfc
    if "nonoccurrence" in cache:
        scores -= cache["nonoccurrence"][terms]
    t2 = time.perf_counter()
    start = job["start"][bucket]
    for name, values in (("data", scores[order].astype(np.float32)), ("indices", docs[order])):
        with open(job[name], "r+b", buffering=0) as fh:
            _write_at(fh, values, job[f"{name}_offset"] + values.itemsize * start)
    return {"read and sort": t1 - t0, "scores": t2 - t1, "write": time.perf_counter() - t2}


def _worker_score(job: dict, bucket: int, pieces: list) -> dict:
    return score_bucket(job, bucket, pieces, _WORKER)


def build_index(corpus, folder: Path, config, workers: int = 2, progress: bool = True) -> BuildStats:
    """Write bm25s' index of `corpus` (BM25 `config`) into the empty folder `folder`."""
    pool = _pool(corpus, _stopwords(config.stopwords), config.stemmer, workers)
    try:
        return _build(corpus, folder, config, pool, workers, progress)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def _add_steps(steps: dict, prefix: str, timings: dict) -> None:
    for k, v in timings.items():
        steps[f"{prefix}{k}"] = steps.get(f"{prefix}{k}", 0.0) + v


def _build(corpus, folder: Path, config, pool, workers: int, progress: bool) -> BuildStats:
    from .. import progress as bars
    from ..compat import bm25s_idf_scorer, bm25s_nonoccurrence

    n = len(corpus)
    nb = BUCKETS if pool is not None else 1
    spill = folder / "spill"
    spill.mkdir(parents=True)
    t0 = time.perf_counter()
    steps: dict[str, float] = {}
    vocab: dict[str, int] = {}
    df = np.zeros(1 << 16, dtype=np.int64)
    lengths = np.zeros(n, dtype=np.int64)
    bar = bars.bar(n, "BM25: tokenise", "doc", enabled=progress)
    local_to_global: dict[str, np.ndarray] = {}  # per tokenizer: its stem ids -> global ids
    pieces: list[tuple[int, str, tuple]] = []
    chunks = _tokenized_chunks(corpus, spill, nb, _stopwords(config.stopwords), config.stemmer, pool, workers)
    for first, chunk in chunks:
        t1 = time.perf_counter()
        _add_steps(steps, "tokenise: ", chunk["timings"])
        name = chunk["tokenizer"]
        known = local_to_global.get(name, np.zeros(0, np.int32))
        if len(known) != chunk["base"]:
            raise RuntimeError("BM25 index: a tokenizer's chunks arrived out of order")
        new = np.fromiter((vocab.setdefault(s, len(vocab)) for s in chunk["new_stems"]), np.int32)
        gids = local_to_global[name] = np.concatenate([known, new])
        if len(vocab) > len(df):
            df = np.concatenate([df, np.zeros(max(len(vocab), 2 * len(df)) - len(df), np.int64)])
        df[gids[chunk["df_terms"]]] += chunk["df_counts"]
        count = len(chunk["lengths"])
        lengths[first : first + count] = chunk["lengths"]
        pieces.append((first, name, chunk["piece"]))
        steps["main process: vocabulary"] = (
            steps.get("main process: vocabulary", 0.0) + time.perf_counter() - t1
        )
        bar.update(count)
    bar.close()
    tokenize_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    vocab_size = len(vocab)
    stems = list(vocab)
    del vocab
    df = df[:vocab_size]
    avg_doc_len = lengths.mean()  # what bm25s computes: np.array([len(doc) ...]).mean()
    idf_fn = bm25s_idf_scorer(config.method)
    idf = _per_unique(df, lambda d: idf_fn(d, N=n)).astype(np.float32)
    # The matrix's columns: bucket by bucket, each bucket's terms in term id order.
    bucket_of = stem_buckets(stems, nb) if nb > 1 else np.zeros(vocab_size, np.uint16)
    by_column = np.lexsort((np.arange(vocab_size), bucket_of))  # column -> term id
    column_of = np.empty(vocab_size, np.int64)
    column_of[by_column] = np.arange(vocab_size)
    first_column = np.searchsorted(bucket_of[by_column], np.arange(nb + 1)).tolist()
    df_by_column = df[by_column]
    indptr = np.zeros(vocab_size + 1, dtype=np.int64)
    np.cumsum(df_by_column, out=indptr[1:])
    nnz = int(indptr[-1])
    arrays = {"lengths": lengths, "idf": idf, "column_of": column_of, "df_by_column": df_by_column}
    if config.method in ("bm25l", "bm25+"):
        nonoccurrence = bm25s_nonoccurrence(
            df, n, config.method, avg_doc_len, config.k1, config.b, config.delta
        )
        arrays["nonoccurrence"] = nonoccurrence
        np.save(folder / "nonoccurrence_array.index.npy", nonoccurrence[by_column], allow_pickle=False)
    for name, arr in arrays.items():
        np.save(spill / f"{name}.npy", arr, allow_pickle=False)
    for name, gids in local_to_global.items():
        np.save(spill / f"map-{name}.npy", gids, allow_pickle=False)
    del lengths, arrays, local_to_global
    job = {"spill": str(spill), "arrays": ["lengths", "idf", "column_of", "df_by_column"]
           + (["nonoccurrence"] if config.method in ("bm25l", "bm25+") else []),
           "tokenizers": sorted({name for _, name, _ in pieces}), "first_column": first_column,
           "start": indptr[first_column[:-1]].tolist(), "method": config.method, "k1": config.k1,
           "b": config.b, "delta": config.delta, "avg_doc_len": float(avg_doc_len)}  # fmt: skip
    for name, dtype in (("data", np.float32), ("indices", np.int32)):
        path = folder / INDEX_FILES[0 if name == "data" else 1]
        job[name], job[f"{name}_offset"] = str(path), _empty_npy(path, dtype, nnz)
    per_bucket = [[(first, name, wide, offsets[b], counts[b]) for first, name, (wide, offsets, counts) in pieces
                   if counts[b]] for b in range(nb)]  # fmt: skip
    bar = bars.bar(vocab_size, "BM25: weigh terms", "term", enabled=progress)  # bucket by bucket
    if pool is None:
        cache: dict = {}
        results = (score_bucket(job, b, per_bucket[b], cache) for b in range(nb))
    else:
        results = pool.map(_worker_score, [job] * nb, range(nb), per_bucket)
    for b, r in enumerate(results):
        _add_steps(steps, "scores: ", r)
        bar.update(first_column[b + 1] - first_column[b])
    bar.close()
    np.save(folder / INDEX_FILES[2], indptr, allow_pickle=False)
    shutil.rmtree(spill)
    _write_vocab_and_params(folder, dict(zip(stems, column_of.tolist(), strict=True)), config, n)
    return BuildStats(n, vocab_size, nnz, tokenize_s, time.perf_counter() - t0, steps)


def _empty_npy(path: Path, dtype, size: int) -> int:
    """An .npy file of `size` values, not yet written (a sparse file); returns where its data starts."""
    with open(path, "wb") as fh:
        header = {
            "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
            "fortran_order": False,
            "shape": (size,),
        }
        np.lib.format.write_array_header_1_0(fh, header)
        offset = fh.tell()
        fh.truncate(offset + np.dtype(dtype).itemsize * size)
    return offset


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
    """The stopword list bm25s' tokenizer uses for `stopwords` (a language name, a list, or None)."""
    from bm25s.tokenization import Tokenizer

    return list(Tokenizer(stopwords=stopwords).stopwords)


def default_workers() -> int:
    return max(
        1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    )


# --- search -------------------------------------------------------------------------------------


SEARCH_BLOCK = 1 << 17  # documents per block: its part of the score buffer (512 KiB) stays in cache


def _add_at(buf: np.ndarray, indices: np.ndarray, data: np.ndarray, a: int, b: int) -> None:
    np.add.at(buf, indices[a:b], data[a:b])


def _add_columns():
    """buf[indices[a:b]] += data[a:b], posting after posting in float32, in one call per column
    range and without a copy: scipy's CSC matrix-vector kernel (x = 1, so each term is data[i] itself),
    else numpy's `np.add.at` (same sums, twice the time)."""
    from ..compat import csc_matvec

    matvec = csc_matvec()
    if matvec is None:  # pragma: no cover - scipy moved its private kernels
        return _add_at
    one = np.ones(1, np.float32)

    def add(buf: np.ndarray, indices: np.ndarray, data: np.ndarray, a: int, b: int) -> None:
        # the column pointers must have the indices' dtype (int32), or scipy copies all the indices
        matvec(len(buf), 1, np.array([a, b], indices.dtype), indices, data, one, buf)

    return add


class Searcher:
    """Exact top-k over bm25s' CSC score matrix.

    A query's scores are summed into a dense float32 buffer exactly as bm25s' `get_scores_from_ids`
    does: each query token's column added in query-token order (float32), so every document's score
    is the same float32 sum.  The documents are taken block by block (SEARCH_BLOCK of them, the
    block's part of the buffer small enough for the CPU's cache): every token's postings in the
    block are added, then the block's scores, final now, are scanned for those at least the running
    k-th best score (the k-th best of the documents scored so far: never above the final k-th best),
    and the block is zeroed again.  Documents sharing no term with the query score 0 and are not
    returned.  Documents tied at the k-th score are kept in trec_eval's order, document id
    descending, given `tie_ids` (the id column), else lower indices first.

    `columns(cols)` gives the query's distinct columns (`cols`, a list of column numbers) as
    (indices, data, starts): the postings of column cols[i] are indices[starts[i]:starts[i + 1]].
    """

    def __init__(self, columns, num_docs: int, tie_ids=None):
        self.columns = columns
        self.num_docs = num_docs
        self.buf = np.zeros(num_docs, dtype=np.float32)
        self.tie_ids = tie_ids
        self.add = _add_columns()

    def one(self, token_ids: list[int], k: int) -> tuple[np.ndarray, np.ndarray]:
        if not len(token_ids) or not self.num_docs:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        cols = list(dict.fromkeys(int(t) for t in token_ids))
        indices, data, starts = self.columns(cols)
        where = {c: i for i, c in enumerate(cols)}
        order = [where[int(t)] for t in token_ids]  # query-token order, repeats included
        edges = np.arange(0, self.num_docs + SEARCH_BLOCK, SEARCH_BLOCK)
        edges[-1] = self.num_docs
        cuts = np.empty((len(cols), len(edges)), np.int64)
        for i in range(len(cols)):
            a, b = int(starts[i]), int(starts[i + 1])
            cuts[i] = np.searchsorted(indices[a:b], edges) + a
        cuts = cuts.tolist()
        buf, add = self.buf, self.add
        theta = np.float32(0)
        found_d, found_s, held = [], [], 0
        for blk in range(len(edges) - 1):
            lo, hi = int(edges[blk]), int(edges[blk + 1])
            touched = False
            for i in order:
                a, b = cuts[i][blk], cuts[i][blk + 1]
                if b > a:
                    add(buf, indices, data, a, b)
                    touched = True
            if not touched:
                continue
            window = buf[lo:hi]
            hit = np.flatnonzero(window >= theta) if theta > 0 else np.flatnonzero(window > 0)
            if len(hit):
                found_d.append(hit + lo)
                found_s.append(window[hit])
                held += len(hit)
            window[:] = 0
            if held > 2 * k:  # the k-th best so far becomes the bar
                d, s = np.concatenate(found_d), np.concatenate(found_s)
                theta = np.partition(s, len(s) - k)[len(s) - k]
                keep = s >= theta
                found_d, found_s, held = [d[keep]], [s[keep]], int(keep.sum())
        if not found_d:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        cand, scores = np.concatenate(found_d).astype(np.int64), np.concatenate(found_s)
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


def memory_columns(data, indices, indptr):
    """`Searcher` columns from the CSC arrays in memory (or memory-mapped)."""
    indptr = np.asarray(indptr)

    def columns(cols):
        segs = [(int(indptr[c]), int(indptr[c + 1])) for c in cols]
        starts = np.zeros(len(segs) + 1, np.int64)
        np.cumsum([b - a for a, b in segs], out=starts[1:])
        idx = np.concatenate([np.asarray(indices[a:b]) for a, b in segs]).astype(np.int32, copy=False)
        dat = np.concatenate([np.asarray(data[a:b]) for a, b in segs]).astype(np.float32, copy=False)
        return idx, dat, starts

    return columns


class FileColumns:
    """`Searcher` columns read from the saved index files (`os.preadv`) into reused buffers: no memory
    map, so the index's pages (page cache) never count in the process' RSS."""

    def __init__(self, folder: Path):
        self.indptr = np.load(folder / INDEX_FILES[2], allow_pickle=False)
        self.files = []
        for name, dtype in ((INDEX_FILES[1], np.int32), (INDEX_FILES[0], np.float32)):
            mapped = np.load(folder / name, mmap_mode="r", allow_pickle=False)  # only to read the header
            offset, stored = mapped.offset, mapped.dtype
            del mapped
            if stored != np.dtype(dtype):
                raise ValueError(f"{folder / name}: not a {np.dtype(dtype)} column")
            self.files.append((open(folder / name, "rb", buffering=0), offset, np.dtype(dtype)))
        self.buffers = [np.zeros(0, np.int32), np.zeros(0, np.float32)]

    def close(self) -> None:
        for fh, _, _ in self.files:
            fh.close()
        self.files = []

    def __call__(self, cols):
        segs = [(int(self.indptr[c]), int(self.indptr[c + 1])) for c in cols]
        starts = np.zeros(len(segs) + 1, np.int64)
        np.cumsum([b - a for a, b in segs], out=starts[1:])
        total = int(starts[-1])
        out = []
        for j, (fh, offset, dtype) in enumerate(self.files):
            if len(self.buffers[j]) < total:
                self.buffers[j] = np.empty(max(total, len(self.buffers[j]) * 3 // 2), dtype)
            buf = self.buffers[j]
            for (a, b), s in zip(segs, starts.tolist(), strict=False):
                _read_at(fh, buf[s : s + b - a], offset + dtype.itemsize * a)
            out.append(buf[:total])
        return out[0], out[1], starts


_SEARCHER: dict = {}


def _search_init(folder: str, store_path: str | None) -> None:
    from ..data.store import map_store

    params = json.loads((Path(folder) / INDEX_FILES[4]).read_text())
    tie_ids = None
    if store_path:
        from ..data.loader import TextColumn

        tie_ids = TextColumn(map_store(Path(store_path)).column("_id"))
    _SEARCHER["s"] = Searcher(FileColumns(Path(folder)), params["num_docs"], tie_ids)


def _search_batch(queries: list[list[int]], k: int):
    return _SEARCHER["s"].batch(queries, k)


SEARCH_BATCH = 256


def search(model, queries: list[list[int]], k: int, workers: int = 1, folder: Path | None = None,
           store_path: Path | None = None, tie_ids=None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Top-k of every query (lists of token ids), in `workers` processes when the index is saved in
    `folder` (each reads it and maps the corpus store's ids), else in this process: over the saved
    files, or `model.scores` for an index held in memory."""
    batches = [queries[a : a + SEARCH_BATCH] for a in range(0, len(queries), SEARCH_BATCH)]
    num_docs = int(model.scores["num_docs"])
    if workers <= 1 or folder is None or len(batches) < 2 or num_docs < PARALLEL_MIN_DOCS:
        if folder is not None:
            columns = FileColumns(Path(folder))
        else:
            columns = memory_columns(model.scores["data"], model.scores["indices"], model.scores["indptr"])
        searcher = Searcher(columns, num_docs, tie_ids)
        try:
            parts = [searcher.batch(b, k) for b in batches]
        finally:
            if isinstance(columns, FileColumns):
                columns.close()
    else:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        init = (str(folder), str(store_path) if store_path else None)
        with ProcessPoolExecutor(workers, ctx, _search_init, init) as pool:
            parts = list(pool.map(_search_batch, batches, [k] * len(batches)))
    if not parts:
        return np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
