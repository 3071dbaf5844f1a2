"""Read a BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv) into compact structures.

The corpus keeps its text in two UTF-8 byte buffers with offsets rather than a dict per document,
so MS MARCO's 8.8M passages cost roughly their size on disk plus the ids.  Every malformed input is
a `DataError` naming the file and line: a week-long run should not fail an hour in on a bad row.
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

QRELS_HEADER = ("query-id", "corpus-id", "score")


class DataError(ValueError):
    """Bad input: the message names the file, the line and the problem."""

    def __init__(self, path: Path | str, line: int | str | None, problem: str):
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {problem}")
        self.path, self.line, self.problem = str(path), line, problem


class TextColumn(Sequence[str]):
    """Strings stored as one UTF-8 buffer plus offsets; decoded on access."""

    def __init__(self, buffer: bytes | np.ndarray, offsets: np.ndarray):
        self._buf = np.frombuffer(buffer, dtype=np.uint8) if isinstance(buffer, bytes | bytearray) else buffer
        self._off = offsets

    @classmethod
    def from_strings(cls, items: Sequence[str]) -> TextColumn:
        builder = _ColumnBuilder()
        for s in items:
            builder.append(s.encode("utf-8"))
        return builder.build()

    def __len__(self) -> int:
        return len(self._off) - 1

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self._buf[self._off[i] : self._off[i + 1]].tobytes().decode("utf-8")

    def byte_lengths(self) -> np.ndarray:
        return np.diff(self._off)


class _ColumnBuilder:
    def __init__(self) -> None:
        self.buf = bytearray()
        self.ends: list[int] = []

    def append(self, raw: bytes) -> None:
        self.buf += raw
        self.ends.append(len(self.buf))

    def build(self) -> TextColumn:
        offsets = np.zeros(len(self.ends) + 1, dtype=np.int64)
        offsets[1:] = self.ends
        return TextColumn(np.frombuffer(bytes(self.buf), dtype=np.uint8), offsets)


@dataclass
class Corpus:
    """Documents in file order. `text(i)` is BEIR's `(title + " " + text).strip()`."""

    ids: list[str]
    titles: TextColumn
    bodies: TextColumn
    checksum: str = ""
    _index: dict[str, int] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.ids)

    def text(self, i: int) -> str:
        return (self.titles[i] + " " + self.bodies[i]).strip()

    def texts(self, indices: Sequence[int] | None = None) -> list[str]:
        rng = range(len(self)) if indices is None else indices
        return [self.text(int(i)) for i in rng]

    def char_lengths(self) -> np.ndarray:
        """Byte length of title + text: the key BEIR sorts by before encoding (longest first)."""
        return self.titles.byte_lengths() + self.bodies.byte_lengths()

    def content_hash(self) -> str:
        """The corpus file's sha256 when loaded from disk, else a hash of ids and texts."""
        if not self.checksum:
            h = hashlib.sha256()
            for i in range(len(self)):
                h.update(f"{self.ids[i]}\0{self.titles[i]}\0{self.bodies[i]}\n".encode())
            self.checksum = "content:" + h.hexdigest()
        return self.checksum

    def index_of(self, doc_id: str) -> int:
        if self._index is None:
            self._index = {d: i for i, d in enumerate(self.ids)}
        return self._index[doc_id]

    def subset(self, indices: Sequence[int]) -> Corpus:
        idx = [int(i) for i in indices]
        return Corpus(
            ids=[self.ids[i] for i in idx],
            titles=TextColumn.from_strings([self.titles[i] for i in idx]),
            bodies=TextColumn.from_strings([self.bodies[i] for i in idx]),
        )

    @classmethod
    def from_records(cls, records: Sequence[tuple[str, str, str]]) -> Corpus:
        """(id, title, text) triples; for tests and small in-memory corpora."""
        return cls(
            ids=[r[0] for r in records],
            titles=TextColumn.from_strings([r[1] for r in records]),
            bodies=TextColumn.from_strings([r[2] for r in records]),
        )


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
    checksums: dict[str, str]

    @property
    def checksum(self) -> str:
        """One id for exactly these files (corpus, queries, qrels of the split)."""
        h = hashlib.sha256()
        for k in sorted(self.checksums):
            h.update(f"{k}={self.checksums[k]};".encode())
        return h.hexdigest()


def _lines(path: Path, hasher, opener=open) -> Iterator[tuple[int, str]]:
    """Numbered lines, LF or CRLF, with UTF-8 errors reported by line; feeds `hasher` the raw bytes.

    `opener` may be `gzip.open` (the hub's `corpus.jsonl.gz`): lines are then those of the content."""
    with opener(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            hasher.update(raw)
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(path, lineno, f"not valid UTF-8 ({e.reason} at byte {e.start})") from None
            yield lineno, line.rstrip("\r\n")


def _json_record(path: Path, lineno: int, line: str, required: tuple[str, ...]) -> dict:
    try:
        rec = json.loads(line)
    except json.JSONDecodeError as e:
        raise DataError(path, lineno, f"invalid JSON ({e.msg}, column {e.colno})") from None
    except RecursionError:
        raise DataError(path, lineno, "invalid JSON (nested too deeply)") from None
    except ValueError as e:  # e.g. an integer literal longer than Python's 4300-digit limit
        raise DataError(path, lineno, f"invalid JSON ({e})") from None
    if not isinstance(rec, dict):
        raise DataError(path, lineno, "expected a JSON object")
    check_record(path, lineno, rec, required)
    if "\\u" in line:  # only a \uXXXX escape can yield a lone surrogate, which UTF-8 cannot encode
        for key in ("_id", "title", "text"):
            if isinstance(rec.get(key), str):
                try:
                    rec[key].encode("utf-8")
                except UnicodeEncodeError:
                    raise DataError(
                        path, lineno, f"field {key!r} holds a lone surrogate escape (\\ud800-\\udfff)"
                    ) from None
    return rec


def jsonl_records(path: Path, required: tuple[str, ...], opener=open) -> Iterator[tuple[int, dict]]:
    """(line number, record) for each non-blank line, checked exactly as corpus.jsonl's lines are."""
    for lineno, line in _lines(path, _NoHash(), opener):
        if line.strip():
            yield lineno, _json_record(path, lineno, line, required)


class _NoHash:
    def update(self, _: bytes) -> None:
        pass


def check_record(path: Path | str, where: int | str, rec: dict, required: tuple[str, ...]) -> None:
    """The checks every corpus or query record passes, from a jsonl line or a parquet row alike."""
    for key in required:
        if key not in rec:
            raise DataError(path, where, f"missing field {key!r}")
    if not isinstance(rec["_id"], str | int) or str(rec["_id"]) == "":
        raise DataError(path, where, "field '_id' must be a non-empty string")
    for key in ("title", "text"):
        if key in rec and rec[key] is not None and not isinstance(rec[key], str):
            raise DataError(path, where, f"field {key!r} must be a string")


def read_corpus(path: Path) -> tuple[Corpus, str]:
    """Stream corpus.jsonl into a `Corpus`; returns it with the file's sha256."""
    path = Path(path)
    hasher = hashlib.sha256()
    ids: list[str] = []
    seen: dict[str, int] = {}
    titles, bodies = _ColumnBuilder(), _ColumnBuilder()
    for lineno, line in _lines(path, hasher):
        if not line.strip():
            continue
        rec = _json_record(path, lineno, line, ("_id", "text"))
        doc_id = str(rec["_id"])
        if doc_id in seen:
            raise DataError(path, lineno, f"duplicate document id {doc_id!r} (first on line {seen[doc_id]})")
        seen[doc_id] = lineno
        ids.append(doc_id)
        titles.append((rec.get("title") or "").encode("utf-8"))
        bodies.append((rec.get("text") or "").encode("utf-8"))
    if not ids:
        raise DataError(path, None, "empty corpus: no documents")
    sha = hasher.hexdigest()
    return Corpus(ids=ids, titles=titles.build(), bodies=bodies.build(), checksum=sha), sha


def read_queries(path: Path) -> tuple[dict[str, str], str]:
    path = Path(path)
    hasher = hashlib.sha256()
    queries: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for lineno, line in _lines(path, hasher):
        if not line.strip():
            continue
        rec = _json_record(path, lineno, line, ("_id", "text"))
        qid = str(rec["_id"])
        if qid in queries:
            raise DataError(path, lineno, f"duplicate query id {qid!r} (first on line {first_line[qid]})")
        first_line[qid] = lineno
        queries[qid] = rec["text"] or ""
    if not queries:
        raise DataError(path, None, "empty query set: no queries")
    return queries, hasher.hexdigest()


def read_qrels(path: Path) -> tuple[Qrels, str]:
    """BEIR qrels: a `query-id corpus-id score` header, then tab-separated rows with integer scores."""
    path = Path(path)
    hasher = hashlib.sha256()
    qrels: Qrels = {}
    for lineno, line in _lines(path, hasher):
        if lineno == 1:
            header = tuple(c.strip() for c in line.split("\t"))
            if header != QRELS_HEADER:
                raise DataError(path, 1, f"bad header {line!r}; expected 'query-id<TAB>corpus-id<TAB>score'")
            continue
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) != 3:
            raise DataError(path, lineno, f"expected 3 tab-separated columns, found {len(cols)}")
        qid, did, score = (c.strip() for c in cols)
        try:
            grade = int(score)
        except ValueError:
            raise DataError(path, lineno, f"score {score!r} is not an integer") from None
        qrels.setdefault(qid, {})[did] = grade
    if not qrels:
        raise DataError(path, None, "no judgments")
    return qrels, hasher.hexdigest()


def load_beir_folder(path: Path, split: str = "test", name: str | None = None) -> BeirData:
    """Load a BEIR folder the way BEIR's GenericDataLoader does: keep only queries judged in `split`.

    Judgments naming unknown queries or documents are kept out with a warning and counts, since BEIR
    tolerates them (they can only lower recall, never raise it).
    """
    path = Path(path)
    for part in ("corpus.jsonl", "queries.jsonl", f"qrels/{split}.tsv"):
        if not (path / part).is_file():
            raise DataError(path / part, None, f"missing: not a BEIR folder with split {split!r}")
    corpus, corpus_sha = read_corpus(path / "corpus.jsonl")
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
        checksums={"corpus": corpus_sha, "queries": queries_sha, f"qrels/{split}": qrels_sha},
    )


def _drop_unknown(qrels: Qrels, queries: dict[str, str], corpus: Corpus, path: Path) -> Qrels:
    doc_ids = set(corpus.ids)
    unknown_q = [q for q in qrels if q not in queries]
    unknown_d = sum(1 for q in qrels for d in qrels[q] if d not in doc_ids)
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
