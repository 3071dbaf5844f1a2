"""BEIR datasets from the Hugging Face hub, converted once into BEIR's own folder layout.

Two families of copies (docs/datasets.md compares them):
- `hf-beir`: `BeIR/<name>` holds corpus and queries, `BeIR/<name>-qrels` one `<split>.tsv` per
  split; `BeIR/cqadupstack` keeps a folder per forum in both. At the pinned commits corpus and
  queries are parquet (`corpus/*.parquet`, `queries/*.parquet`); older commits hold
  `corpus.jsonl.gz` and `queries.jsonl.gz`, which are read as well.
- `hf-mteb`: `mteb/<name>`, one repo, either BEIR's jsonl re-uploaded (`corpus.jsonl`,
  `queries.jsonl`, `qrels/<split>.jsonl` with float scores, often `qrels/<split>.tsv` too) or parquet
  written by MTEB (`corpus/<split>-*.parquet` with an `id` column, `queries/…`, `qrels/<split>-*.parquet`).

Whatever the layout, `fetch_unit` writes exactly BEIR's folder (corpus.jsonl, queries.jsonl,
qrels/<split>.tsv with the `query-id corpus-id score` header) so the loader reads it unchanged.
Every record passes the jsonl loader's checks, and a bad one is a `DataError` naming the hub file
and its parquet row or jsonl line. The evaluation split's counts are compared with the registry's,
so a different or incomplete copy is refused instead of scored.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import zlib
from collections.abc import Iterator
from pathlib import Path

from ..io import sha256_file
from .loader import QRELS_HEADER, DataError, Qrels, check_record, jsonl_records, read_qrels
from .registry import ExpectedRows, HubCopy

TABLE_PATTERNS = (
    "{f}corpus/*.parquet",
    "{f}queries/*.parquet",
    "{f}corpus.jsonl",
    "{f}queries.jsonl",
    "{f}corpus.jsonl.gz",
    "{f}queries.jsonl.gz",
)
QRELS_PATTERNS = ("{f}*.tsv", "{f}qrels/*.tsv", "{f}qrels/*.jsonl", "{f}qrels/*.parquet")


class HubUnavailable(RuntimeError):
    """The hub (or the local hub cache, offline) could not provide a repo at a revision."""


def snapshot(repo: str, revision: str | None, patterns: list[str]) -> Path:
    """The files of `repo` at `revision` matching `patterns`, from the hub cache or the hub.

    `HF_HUB_OFFLINE` and `HF_HUB_CACHE` are read now rather than when huggingface_hub was imported.
    """
    from huggingface_hub import snapshot_download

    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")
    try:
        path = snapshot_download(
            repo,
            repo_type="dataset",
            revision=revision,
            allow_patterns=patterns,
            cache_dir=os.environ.get("HF_HUB_CACHE") or None,
            local_files_only=offline,
        )
    except Exception as e:  # the hub raises many types (HTTP, offline, not found); all mean "unavailable"
        where = f"{repo}@{revision or 'main'}"
        text = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise HubUnavailable(
            f"cannot get {where} from the Hugging Face hub ({type(e).__name__}: {text})"
        ) from e
    return Path(path)


def fetch_unit(
    source: str, copy: HubCopy, split: str, expected: ExpectedRows | None, out: Path, progress: bool = True
) -> dict:
    """Fetch one BEIR folder's copy and write it in BEIR's layout into `out`; returns its provenance."""
    prefix = f"{copy.folder}/" if copy.folder else ""
    tables = [p.format(f=prefix) for p in TABLE_PATTERNS]
    qrels_patterns = [p.format(f=prefix) for p in QRELS_PATTERNS]
    same_repo = (copy.repo, copy.revision) == (copy.qrels_repo, copy.qrels_revision)
    root = snapshot(copy.repo, copy.revision, tables + (qrels_patterns if same_repo else []))
    qroot = root if same_repo else snapshot(copy.qrels_repo, copy.qrels_revision, qrels_patterns)
    used = convert(root / copy.folder, qroot / copy.folder, split, expected, out, progress=progress)
    repo_of = {root: copy.repo, qroot: copy.qrels_repo}
    return {
        "source": source,
        "repo": copy.repo,
        "revision": root.name,  # the snapshot folder is named for the commit it holds
        "pinned": copy.revision,
        "qrels_repo": copy.qrels_repo,
        "qrels_revision": qroot.name,
        "folder": copy.folder,
        "files_sha256": {_rel(p, repo_of): sha256_file(p) for p in used},
    }


def convert(
    root: Path, qroot: Path, split: str, expected: ExpectedRows | None, out: Path, progress: bool = True
) -> list[Path]:
    """Write corpus.jsonl, queries.jsonl and qrels/<split>.tsv (every split found) into `out`.

    Returns the hub files read. Raises DataError for a bad record, a missing evaluation split, or
    counts other than `expected`.
    """
    corpus_files = _table_files(root, "corpus", split)
    query_files = _table_files(root, "queries", split)
    splits = _qrels_files(qroot)
    if split not in splits:
        found = ", ".join(sorted(splits)) or "none"
        raise DataError(qroot, None, f"no qrels for split {split!r} in this copy (splits found: {found})")
    out.mkdir(parents=True, exist_ok=True)
    n_docs = _write_table(
        corpus_files,
        out / "corpus.jsonl",
        corpus=True,
        progress=progress,
        total=expected.documents if expected else None,
    )
    query_ids = _write_queries(query_files, out / "queries.jsonl")
    (out / "qrels").mkdir(exist_ok=True)
    judged = nonzero = 0
    for name, files in splits.items():
        qrels = _read_qrels(files)
        _write_qrels(qrels, out / "qrels" / f"{name}.tsv")
        if name == split:
            judged = sum(1 for q in qrels if q in query_ids)
            nonzero = sum(1 for docs in qrels.values() for s in docs.values() if s != 0)
    if expected is not None:
        _check_counts(expected, corpus_files[0], n_docs, splits[split][0], judged, nonzero, split)
    return [*corpus_files, *query_files, *(f for files in splits.values() for f in files)]


def _check_counts(
    expected: ExpectedRows, corpus: Path, docs: int, qrels: Path, judged: int, nonzero: int, split: str
) -> None:
    why = "; the registry expects {e:,}: a different or incomplete copy of the dataset, refused"
    if docs != expected.documents:
        raise DataError(corpus, None, f"{docs:,} documents" + why.format(e=expected.documents))
    if judged != expected.queries:
        raise DataError(
            qrels,
            None,
            f"{judged:,} judged {split} queries found in the queries" + why.format(e=expected.queries),
        )
    if nonzero != expected.judgments:
        raise DataError(
            qrels, None, f"{nonzero:,} non-zero {split} judgments" + why.format(e=expected.judgments)
        )


# ------------------------------------------------------------------------------------------ files


def _table_files(root: Path, kind: str, split: str) -> list[Path]:
    """`kind/*.parquet` (those of `split` when the folder has one file set per split), else
    `kind.jsonl` or `kind.jsonl.gz`."""
    parquet = sorted((root / kind).glob("*.parquet"))
    of_split = [p for p in parquet if p.name.startswith(f"{split}-")]
    if of_split or parquet:
        return of_split or parquet
    for name in (f"{kind}.jsonl", f"{kind}.jsonl.gz"):
        if (root / name).is_file():
            return [root / name]
    raise DataError(root, None, f"no {kind} file: expected {kind}/*.parquet, {kind}.jsonl or {kind}.jsonl.gz")


def _qrels_files(qroot: Path) -> dict[str, list[Path]]:
    """Split name -> files: `<split>.tsv` (BeIR), else `qrels/<split>.tsv`, `.jsonl` or `<split>-*.parquet`."""
    found: dict[str, list[Path]] = {}
    for folder in (qroot, qroot / "qrels"):
        for p in sorted(folder.glob("*.tsv")):
            found.setdefault(p.stem, [p])
    for p in sorted((qroot / "qrels").glob("*.jsonl")):
        found.setdefault(p.stem, [p])
    parquet: dict[str, list[Path]] = {}
    for p in sorted((qroot / "qrels").glob("*.parquet")):
        parquet.setdefault(p.name.split("-", 1)[0], []).append(p)
    for name, files in parquet.items():
        found.setdefault(name, files)
    return found


def _rel(p: Path, repo_of: dict[Path, str]) -> str:
    """`repo/path` of a snapshot file, e.g. `BeIR/scifact-qrels/test.tsv`."""
    for base, repo in repo_of.items():
        if p.is_relative_to(base):
            return f"{repo}/{p.relative_to(base).as_posix()}"
    return str(p)


# ---------------------------------------------------------------------------------------- records


def _records(files: list[Path], required: tuple[str, ...]) -> Iterator[tuple[Path, int | str, dict]]:
    """(file, line or parquet row, record) with `_id` as the id column, each record checked."""
    for f in files:
        if f.suffix == ".parquet":
            for where, rec in _parquet_rows(f):
                if "_id" not in rec and "id" in rec:  # MTEB's parquet names the column `id`
                    rec["_id"] = rec.pop("id")
                check_record(f, where, rec, required)
                yield f, where, rec
        else:
            opener = gzip.open if f.suffix == ".gz" else open
            try:
                for lineno, rec in jsonl_records(f, required, opener):
                    yield f, lineno, rec
            except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
                raise DataError(f, None, f"corrupt compressed file ({e})") from None


def _parquet_rows(f: Path) -> Iterator[tuple[str, dict]]:
    import pyarrow
    import pyarrow.parquet as pq

    row = 0
    try:
        for batch in pq.ParquetFile(f).iter_batches(batch_size=65_536):
            for rec in batch.to_pylist():
                yield f"row {row}", rec
                row += 1
    except (pyarrow.ArrowException, OSError) as e:
        raise DataError(f, f"row {row}", f"unreadable parquet ({e})") from None


def _write_table(files: list[Path], dest: Path, corpus: bool, progress: bool, total: int | None) -> int:
    from tqdm.auto import tqdm

    seen: dict[str, tuple[Path, int | str]] = {}
    with (
        open(dest, "w", encoding="utf-8", newline="\n") as out,
        tqdm(
            total=total, desc=f"converting {dest.name}", unit="doc", disable=not progress, leave=False
        ) as bar,
    ):
        for f, where, rec in _records(files, ("_id", "text")):
            doc_id = str(rec["_id"])
            if doc_id in seen:
                first = seen[doc_id][1]
                raise DataError(f, where, f"duplicate document id {doc_id!r} (first at {first})")
            seen[doc_id] = (f, where)
            line = {"_id": doc_id, "title": rec.get("title") or "", "text": rec.get("text") or ""}
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
            bar.update(1)
    if not seen:
        raise DataError(files[0], None, "empty corpus: no documents")
    return len(seen)


def _write_queries(files: list[Path], dest: Path) -> set[str]:
    ids: dict[str, int | str] = {}
    with open(dest, "w", encoding="utf-8", newline="\n") as out:
        for f, where, rec in _records(files, ("_id", "text")):
            qid = str(rec["_id"])
            if qid in ids:
                raise DataError(f, where, f"duplicate query id {qid!r} (first at {ids[qid]})")
            ids[qid] = where
            out.write(json.dumps({"_id": qid, "text": rec.get("text") or ""}, ensure_ascii=False) + "\n")
    if not ids:
        raise DataError(files[0], None, "empty query set: no queries")
    return set(ids)


def _read_qrels(files: list[Path]) -> Qrels:
    if files[0].suffix == ".tsv":
        return read_qrels(files[0])[0]
    qrels: Qrels = {}
    for f in files:
        rows = _parquet_rows(f) if f.suffix == ".parquet" else _jsonl_rows(f)
        for where, rec in rows:
            qid, did, grade = _judgment(f, where, rec)
            qrels.setdefault(qid, {})[did] = grade
    if not qrels:
        raise DataError(files[0], None, "no judgments")
    return qrels


def _jsonl_rows(f: Path) -> Iterator[tuple[int, dict]]:
    with open(f, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw)
            except ValueError as e:
                raise DataError(f, lineno, f"invalid JSON ({e})") from None
            if not isinstance(rec, dict):
                raise DataError(f, lineno, "expected a JSON object")
            yield lineno, rec


def _judgment(f: Path, where: int | str, rec: dict) -> tuple[str, str, int]:
    for key in QRELS_HEADER:
        if key not in rec:
            raise DataError(f, where, f"missing field {key!r}")
    qid, did, score = rec["query-id"], rec["corpus-id"], rec["score"]
    for key, value in (("query-id", qid), ("corpus-id", did)):
        if (
            not isinstance(value, str | int)
            or str(value).strip() == ""
            or any(c in str(value) for c in "\t\r\n")
        ):
            raise DataError(f, where, f"field {key!r} must be a non-empty string without tabs or line breaks")
    numeric = isinstance(score, int | float) and not isinstance(score, bool) and math.isfinite(score)
    if not numeric or score != int(score):
        raise DataError(f, where, f"score {score!r} is not an integer")
    return str(qid), str(did), int(score)


def _write_qrels(qrels: Qrels, dest: Path) -> None:
    with open(dest, "w", encoding="utf-8", newline="\n") as out:
        out.write("\t".join(QRELS_HEADER) + "\n")
        for qid, docs in qrels.items():
            for did, grade in docs.items():
                out.write(f"{qid}\t{did}\t{grade}\n")
