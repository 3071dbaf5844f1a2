"""Read a BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv) into compact structures.

The corpus is an Arrow table, memory-mapped from the corpus store (`store`): corpus.jsonl is
converted once, and every later open maps the file, so MS MARCO's 8.8M passages cost neither a
parse nor their size in memory, and nothing holds them as Python objects.  Readers fetch documents
by index range or index array (`texts`).  Every malformed input is a `DataError` naming the file and
line: a week-long run should not fail an hour in on a bad row.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .jsonl import DataError, check_id, check_record, jsonl_records, numbered_lines, unique_records
from .store import open_corpus

log = logging.getLogger(__name__)

QRELS_HEADER = ("query-id", "corpus-id", "score")
_COLUMNS = ("_id", "title", "text")

__all__ = [
    "BeirData",
    "Corpus",
    "DataError",
    "TextColumn",
    "check_record",
    "jsonl_records",
    "load_beir_folder",
    "read_corpus",
]


class TextColumn(Sequence[str]):
    """One string column of the corpus (Arrow, possibly memory-mapped); values decoded on access."""

    def __init__(self, column: pa.ChunkedArray):
        self.arrow = column

    def __len__(self) -> int:
        return len(self.arrow)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return self.take(range(*i.indices(len(self))))
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self.arrow[i].as_py()

    def __iter__(self) -> Iterator[str]:
        for chunk in self.arrow.chunks:
            yield from chunk.to_pylist()

    def __eq__(self, other) -> bool:
        if isinstance(other, TextColumn):
            return self.arrow.equals(other.arrow)
        if isinstance(other, list | tuple):
            return len(other) == len(self) and list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def index(self, value, start: int = 0, stop: int | None = None) -> int:  # type: ignore[override]
        hits = np.flatnonzero(
            pc.equal(self.arrow, pa.scalar(value, pa.string())).to_numpy(zero_copy_only=False)
        )
        hits = hits[(hits >= start) & (hits < (len(self) if stop is None else stop))]
        if not len(hits):
            raise ValueError(f"{value!r} is not in the column")
        return int(hits[0])

    def take(self, indices) -> list[str]:
        """The values at `indices` (any integer sequence or array), as Python strings.

        Taken chunk by chunk: `ChunkedArray.take` would first concatenate every chunk (at MS MARCO
        size, 90 MB copied for each call, which made BM25's tie-breaking a third of its search)."""
        idx = np.asarray(indices, dtype=np.int64)
        chunks = self.arrow.chunks
        if len(chunks) <= 1 or not len(idx):
            return self.arrow.take(pa.array(idx)).to_pylist()
        out: list = [None] * len(idx)
        for c, sel, rows in _by_chunk(self._chunk_starts(), len(self), idx):
            for j, v in zip(sel.tolist(), chunks[c].take(pa.array(rows)).to_pylist(), strict=True):
                out[j] = v
        return out

    def _chunk_starts(self) -> np.ndarray:
        if getattr(self, "_starts", None) is None:
            self._starts = np.cumsum([0] + [len(c) for c in self.arrow.chunks[:-1]], dtype=np.int64)
        return self._starts

    def byte_lengths(self) -> np.ndarray:
        return pc.binary_length(self.arrow).to_numpy().astype(np.int64)

    def positions(self, values) -> dict[str, int]:
        """Row of each of `values` found in the column (a vectorised lookup, no dict of every row)."""
        wanted = pa.array(list(values), pa.string())
        rows = np.flatnonzero(pc.is_in(self.arrow, value_set=wanted).to_numpy(zero_copy_only=False))
        return dict(zip(self.take(rows), rows.tolist(), strict=True))


def _by_chunk(starts: np.ndarray, n: int, idx: np.ndarray):
    """Row indices `idx` into `n` rows stored in chunks beginning at `starts`, chunk by chunk:
    (chunk, positions in `idx`, rows within the chunk).  Taking from each chunk avoids Arrow's
    whole-column concatenation (see `_gather`)."""
    if (idx < 0).any() or (idx >= n).any():
        raise IndexError(f"index out of range for {n} rows")
    which = np.searchsorted(starts, idx, side="right") - 1
    for c in np.unique(which):
        sel = np.flatnonzero(which == c)
        yield int(c), sel, idx[sel] - starts[c]


def _is_span(indices) -> bool:
    """A `range` of consecutive rows: a zero-copy slice of the table."""
    return isinstance(indices, range) and indices.step == 1


def _gather(table: pa.Table, idx: np.ndarray) -> pa.Table:
    """`table.take(idx)` chunk by chunk.  `Table.take` concatenates each column's chunks first: a
    copy of the whole corpus per call, and past 2 GiB of text (MS MARCO) an offset overflow."""
    batches = table.to_batches()
    if len(batches) <= 1 or not len(idx):
        return table.take(pa.array(idx, pa.int64()))
    starts = np.cumsum([0] + [b.num_rows for b in batches[:-1]], dtype=np.int64)
    parts, positions = [], []
    for c, sel, rows in _by_chunk(starts, table.num_rows, idx):
        parts.append(batches[c].take(pa.array(rows)))
        positions.append(sel)
    picked = pa.Table.from_batches(parts, schema=table.schema).combine_chunks()  # only the rows taken
    inverse = np.empty(len(idx), dtype=np.int64)
    inverse[np.concatenate(positions)] = np.arange(len(idx))
    return picked.take(pa.array(inverse))


class Corpus:
    """Documents in file order. `text(i)` is BEIR's `(title + " " + text).strip()`.

    `table` holds the columns `_id`, `title`, `text`; `store_path` is the memory-mapped store file it
    comes from (None for corpora built in memory), which worker processes can map themselves.
    """

    def __init__(self, table: pa.Table, checksum: str = "", store_path: Path | None = None):
        self.table = table.select(list(_COLUMNS))
        self.ids = TextColumn(self.table.column("_id"))
        self.titles = TextColumn(self.table.column("title"))
        self.bodies = TextColumn(self.table.column("text"))
        self.checksum = checksum
        self.store_path = store_path
        self._index: dict[str, int] | None = None

    def __len__(self) -> int:
        return self.table.num_rows

    def __repr__(self) -> str:
        where = f", store={self.store_path}" if self.store_path else ""
        return f"Corpus({len(self):,} documents{where})"

    def text(self, i: int) -> str:
        return (self.titles[i] + " " + self.bodies[i]).strip()

    def rows(self, indices: Sequence[int] | np.ndarray | None = None) -> pa.Table:
        """The rows at `indices`: a zero-copy slice for a `range` with step 1, else a gather."""
        if indices is None:
            return self.table
        if _is_span(indices):
            return self.table.slice(indices.start, len(indices))
        return _gather(self.table, np.asarray(indices, dtype=np.int64))

    def texts(self, indices: Sequence[int] | np.ndarray | None = None) -> list[str]:
        """Texts of `indices` (a range of rows for shards and chunks, rows in any order for
        length-ordered shards; default: every document)."""
        if indices is None or _is_span(indices):
            rows = self.rows(indices)  # a zero-copy slice
            titles, bodies = rows.column("title").to_pylist(), rows.column("text").to_pylist()
        else:  # two string columns taken chunk by chunk: 2,048 scattered rows of the 8.8M-passage
            # store in 3.5-20 ms against 18-91 ms for a gather of whole rows (`rows`)
            titles, bodies = self.titles.take(indices), self.bodies.take(indices)
        return [(t + " " + b).strip() for t, b in zip(titles, bodies, strict=True)]

    def char_lengths(self) -> np.ndarray:
        """Byte length of title + text: the key BEIR sorts by before encoding (longest first)."""
        return self.titles.byte_lengths() + self.bodies.byte_lengths()

    def content_hash(self) -> str:
        """The corpus file's sha256 when loaded from disk, else a hash of ids and texts."""
        if not self.checksum:
            h = hashlib.sha256()
            for batch in self.table.to_batches(max_chunksize=1 << 16):
                cols = [batch.column(c).to_pylist() for c in _COLUMNS]
                for doc_id, title, body in zip(*cols, strict=True):
                    h.update(f"{doc_id}\0{title}\0{body}\n".encode())
            self.checksum = "content:" + h.hexdigest()
        return self.checksum

    def index_of(self, doc_id: str) -> int:
        if self._index is None:
            self._index = {d: i for i, d in enumerate(self.ids)}
        return self._index[doc_id]

    def subset(self, indices: Sequence[int]) -> Corpus:
        return Corpus(self.rows(np.asarray(indices, dtype=np.int64)).combine_chunks())

    @classmethod
    def from_records(cls, records: Sequence[tuple[str, str, str]]) -> Corpus:
        """(id, title, text) triples; for tests and small in-memory corpora."""
        cols = [pa.array([r[i] for r in records], pa.string()) for i in range(3)]
        return cls(pa.table(dict(zip(_COLUMNS, cols, strict=True))))


Qrels = dict[str, dict[str, int]]


@dataclass
class BeirData:
    """One dataset split ready to evaluate: the queries are those judged in the split."""

    name: str
    path: Path
    split: str
    corpus: Corpus
    queries: dict[str, str]
    qrels: Qrels
    checksums: dict[str, str]  # sha256 of each file read, by its path in the folder

    @property
    def checksum(self) -> str:
        """One id for exactly these files (corpus, queries, qrels of the split)."""
        h = hashlib.sha256()
        for k in sorted(self.checksums):
            h.update(f"{k}={self.checksums[k]};".encode())
        return h.hexdigest()


def read_corpus(path: Path, store_dir: Path | None = None) -> tuple[Corpus, str]:
    """The corpus of `path` from the corpus store (converted on first use); returns it with the file's sha256."""
    store = open_corpus(Path(path), store_dir)
    return Corpus(store.table, checksum=store.sha256, store_path=store.path), store.sha256


def read_queries(path: Path) -> tuple[dict[str, str], str]:
    path = Path(path)
    hasher = hashlib.sha256()
    queries = {qid: rec["text"] or "" for qid, rec in unique_records(path, hasher, "query")}
    if not queries:
        raise DataError(path, None, "empty query set: no queries")
    return queries, hasher.hexdigest()


def read_qrels(path: Path) -> tuple[Qrels, str]:
    """BEIR qrels: a `query-id corpus-id score` header, then tab-separated rows with integer scores.

    Ids are read as BEIR's `GenericDataLoader` reads them (`csv.reader` with a tab delimiter: a
    field is kept as written, spaces included, unless it is quoted) and must then be usable ids
    (`jsonl.check_id`).  The same (query, document) judged twice with different grades is a
    `DataError` naming both lines (BEIR would silently keep the last); judged twice alike, a warning.
    """
    path = Path(path)
    hasher = hashlib.sha256()
    judged = Judgments(path)
    for lineno, line in numbered_lines(path, hasher):
        if lineno == 1:
            header = tuple(c.strip() for c in line.split("\t"))
            if header != QRELS_HEADER:
                raise DataError(path, 1, f"bad header {line!r}; expected 'query-id<TAB>corpus-id<TAB>score'")
            continue
        if not line.strip():
            continue
        cols = next(csv.reader([line], delimiter="\t")) if '"' in line else line.split("\t")
        if len(cols) != 3:
            raise DataError(path, lineno, f"expected 3 tab-separated columns, found {len(cols)}")
        qid, did, score = cols
        try:
            grade = int(score)
        except ValueError:
            raise DataError(path, lineno, f"score {score!r} is not an integer") from None
        judged.add(lineno, qid, did, grade)
    return judged.qrels(), hasher.hexdigest()


class Judgments:
    """Judgments of one file as they are read: ids checked (`jsonl.check_id`), a (query, document)
    judged twice with different grades refused naming both lines, judged twice alike warned of once."""

    def __init__(self, path: Path):
        self.path = path
        self._qrels: Qrels = {}
        self._first: dict[tuple[str, str], int] = {}
        self._repeated: list[tuple[int, int]] = []

    def add(self, lineno: int, qid: str, did: str, grade: int) -> None:
        check_id(self.path, lineno, qid, "query")
        check_id(self.path, lineno, did, "document")
        docs = self._qrels.setdefault(qid, {})
        if did not in docs:
            self._first[qid, did] = lineno
        elif docs[did] != grade:
            raise DataError(self.path, lineno, f"query {qid!r} judges document {did!r} {grade}, but "
                                               f"{docs[did]} on line {self._first[qid, did]}")  # fmt: skip
        else:
            self._repeated.append((self._first[qid, did], lineno))
        docs[did] = grade

    def qrels(self) -> Qrels:
        """What was read; `DataError` for none, one warning for the repeats."""
        if not self._qrels:
            raise DataError(self.path, None, "no judgments")
        if self._repeated:
            (a, b), n = self._repeated[0], len(self._repeated)
            warnings.warn(
                f"{self.path}: {n} judgment(s) repeated with the same grade (first: lines {a} and {b}); "
                "each counted once",
                stacklevel=3,
            )
        return self._qrels


def load_beir_folder(
    path: Path, split: str = "test", name: str | None = None, store_dir: Path | None = None
) -> BeirData:
    """Load a BEIR folder the way BEIR's GenericDataLoader does: keep only queries judged in `split`.

    The corpus comes from the corpus store in `store_dir` (default: `<user cache>/corpus`).

    Judgments naming unknown queries or documents are kept out with a warning and counts, since BEIR
    tolerates them (they can only lower recall, never raise it).
    """
    path = Path(path)
    for part in ("corpus.jsonl", "queries.jsonl", f"qrels/{split}.tsv"):
        if not (path / part).is_file():
            raise DataError(path / part, None, f"missing: not a BEIR folder with split {split!r}")
    corpus, corpus_sha = read_corpus(path / "corpus.jsonl", store_dir)
    all_queries, queries_sha = read_queries(path / "queries.jsonl")
    qrels, qrels_sha = read_qrels(path / "qrels" / f"{split}.tsv")
    qrels = _drop_unknown(qrels, all_queries, corpus, path / "qrels" / f"{split}.tsv")
    queries = {qid: all_queries[qid] for qid in qrels}
    return BeirData(
        name=name or path.name,
        path=path,
        split=split,
        corpus=corpus,
        queries=queries,
        qrels=qrels,
        checksums={"corpus.jsonl": corpus_sha, "queries.jsonl": queries_sha, f"qrels/{split}.tsv": qrels_sha},
    )


def _drop_unknown(qrels: Qrels, queries: dict[str, str], corpus: Corpus, path: Path) -> Qrels:
    judged = {d for docs in qrels.values() for d in docs}
    known = corpus.ids.positions(judged)  # a lookup of the judged ids only, not a set of every id
    unknown_q = [q for q in qrels if q not in queries]
    unknown_d = sum(1 for q in qrels for d in qrels[q] if d not in known)
    if unknown_q or unknown_d:
        warnings.warn(
            f"{path}: {len(unknown_q)} judged queries not in queries.jsonl and {unknown_d} judgments "
            "naming documents not in corpus.jsonl; the queries are skipped, the documents kept "
            "(they count as relevant but unretrievable, as in BEIR)",
            stacklevel=3,
        )
    kept = {q: docs for q, docs in qrels.items() if q in queries}
    if not kept:
        raise DataError(path, None, "no judged query is in queries.jsonl")
    return kept
