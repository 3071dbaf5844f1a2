"""BEIR datasets from the Hugging Face hub, converted once into BEIR's own folder layout.

Two families of copies (docs/datasets.md compares them):
- `hf-beir`: `BeIR/<name>` holds corpus and queries, `BeIR/<name>-qrels` one `<split>.tsv` per
  split; `BeIR/cqadupstack` keeps a folder per forum in both. At the pinned commits corpus and
  queries are parquet (`corpus/*.parquet`, `queries/*.parquet`); older commits hold
  `corpus.jsonl.gz` and `queries.jsonl.gz`, which are read as well.
- `hf-mteb`: `mteb/<name>`, one repo, either BEIR's jsonl re-uploaded (`corpus.jsonl`,
  `queries.jsonl`, `qrels/<split>.jsonl` with float scores, often `qrels/<split>.tsv` too) or parquet
  written by MTEB (`corpus/<split>-*.parquet` with an `id` column, `queries/…`, `qrels/<split>-*.parquet`).
- `hf-nanobeir`: `zeta-alpha-ai/Nano<name>`, NanoBEIR's originals, parquet as MTEB writes it but with
  `_id` and no title (`corpus/train-*.parquet`: _id, text), and qrels without a score column (every
  pair listed is relevant: `HubCopy.scored` False, read as grade 1).

Whatever the layout, `fetch_unit` writes exactly BEIR's folder (corpus.jsonl, queries.jsonl,
qrels/<split>.tsv with the `query-id corpus-id score` header) so the loader reads it unchanged.
Every record passes the jsonl loader's checks, and a bad one is a `DataError` naming the hub file
and its parquet row or jsonl line. The evaluation split's counts are compared with the registry's,
so a different or incomplete copy is refused instead of scored.

Reaching the hub (`Hub`): a first connection that fails outright (DNS, refused, no route) ends the
source at once, other faults are retried as `gtr-eval download --retries` says, huggingface_hub's
own retries and warnings are kept out, and an unreachable hub still serves a complete copy from
the local hub cache.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..io import sha256_file
from ..progress import interactive
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


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


@dataclass
class Hub:
    """How one download reaches the hub, and what it has learned.

    Before `snapshot_download` goes online, one request (`HfApi.dataset_info`, which huggingface_hub
    does not retry) asks the endpoint for the repo. A connection that cannot be opened on the first
    try (DNS lookup failed, refused, no route) settles it at once; a timeout, a dropped connection
    or HTTP 5xx/408/429 is retried `retries` times, `backoff` seconds doubling (capped at 30 s): so
    huggingface_hub's own retries (five, up to 23 s, per request) never add to `gtr-eval download
    --retries`. An endpoint found unreachable is remembered (`unreachable`): the other repos of the
    download go straight to the local hub cache, as huggingface_hub itself would after its retries.
    `endpoint`: `$HF_ENDPOINT` read now (huggingface_hub reads it once, at import), else its default.
    """

    timeout: float = 10.0
    retries: int = 2
    backoff: float = 2.0
    say: Callable[[str], None] = _stderr
    progress: bool = True
    endpoint: str = ""
    unreachable: str | None = None

    def __post_init__(self) -> None:
        if not self.endpoint:
            from huggingface_hub import constants

            self.endpoint = os.environ.get("HF_ENDPOINT") or constants.ENDPOINT
        self.endpoint = self.endpoint.rstrip("/")

    def reach(self, repo: str, revision: str | None) -> str | None:
        """None when the endpoint answers about `repo`; else why it cannot be used now."""
        if self.unreachable is not None:
            return self.unreachable
        from huggingface_hub import HfApi
        from huggingface_hub.errors import HfHubHTTPError

        from .network import connection_failure

        api = HfApi(endpoint=self.endpoint)
        attempts = max(0, int(self.retries)) + 1
        for attempt in range(attempts):
            try:
                with _quiet(progress=False):
                    api.dataset_info(repo, revision=revision, timeout=self.timeout)
                return None
            except HfHubHTTPError as e:
                status = e.response.status_code if e.response is not None else None
                if status is None or (status < 500 and status not in (408, 429)):
                    return None  # it answered (404, 401, ...): snapshot_download says what
                why = f"{self.endpoint} answered HTTP {status}"
            except Exception as e:
                if not _network_error(e):
                    return None  # not the network's fault: snapshot_download reports it
                failure = connection_failure(e)
                if failure is not None and attempt == 0:
                    self.unreachable = f"{self.endpoint} cannot be reached ({failure})"
                    return self.unreachable
                why = (
                    f"{self.endpoint} did not answer within {self.timeout:g} s"
                    if _timed_out(e)
                    else f"{self.endpoint}: {failure or _first_line(e)}"
                )
            if attempt < attempts - 1:
                wait = min(self.backoff * 2**attempt, 30.0)
                self.say(f"{repo}: {why}; retrying in {wait:g} s ({attempts - attempt - 1} left)")
                time.sleep(wait)
        self.unreachable = f"{why} (gave up after {attempts} attempt(s))"
        return self.unreachable


def _network_error(e: BaseException) -> bool:
    """Whether `e` comes from the connection (an OSError, or the HTTP client's transport errors)."""
    x: BaseException | None = e
    while x is not None:
        module = type(x).__module__.split(".")[0]
        if isinstance(x, OSError) or module.startswith(("httpx", "httpcore", "h11", "urllib3", "requests")):
            return True
        x = x.__cause__ or x.__context__
    return False


def _timed_out(e: BaseException) -> bool:
    x: BaseException | None = e
    while x is not None:
        if isinstance(x, TimeoutError) or "Timeout" in type(x).__name__:
            return True
        x = x.__cause__ or x.__context__
    return False


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


@contextmanager
def _quiet(progress: bool) -> Iterator[None]:
    """huggingface_hub says only errors (its retry warnings would repeat what we say), and shows no
    progress bars unless `progress`; both restored afterwards."""
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
    from huggingface_hub.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars_off = not progress and not are_progress_bars_disabled()
    hf_logging.set_verbosity_error()
    if bars_off:
        disable_progress_bars()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars_off:
            enable_progress_bars()


def offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) as set now, or as huggingface_hub read it at import
    (it then refuses every request)."""
    from huggingface_hub import constants

    now = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return now.strip().upper() in ("1", "ON", "YES", "TRUE") or constants.is_offline_mode()


def snapshot(repo: str, revision: str | None, patterns: list[str], hub: Hub | None = None) -> Path:
    """The files of `repo` at `revision` matching `patterns`, from the hub cache or the hub.

    `HF_HUB_OFFLINE`, `HF_HUB_CACHE` and `HF_ENDPOINT` are read now rather than when huggingface_hub
    was imported. Offline, or when `hub` finds the endpoint unreachable, only the local hub cache
    is used (a complete copy of the revision there is served).
    """
    from huggingface_hub import snapshot_download

    hub = hub or Hub()
    where = f"{repo}@{(revision or 'main')[:12]}"
    cache = os.environ.get("HF_HUB_CACHE") or None
    why = "HF_HUB_OFFLINE is set" if offline() else hub.reach(repo, revision)
    try:
        with _quiet(hub.progress and interactive()):  # huggingface_hub's bars only on a terminal
            path = snapshot_download(
                repo,
                repo_type="dataset",
                revision=revision,
                allow_patterns=patterns,
                cache_dir=cache,
                local_files_only=why is not None,
                endpoint=hub.endpoint,
                etag_timeout=hub.timeout,
            )
    except Exception as e:  # the hub raises many types (HTTP, offline, not found); all mean "unavailable"
        if why is not None:
            raise HubUnavailable(
                f"cannot get {where}: {why}, and the hub cache holds no complete copy"
            ) from e
        raise HubUnavailable(f"cannot get {where} from the Hugging Face hub ({_first_line(e)})") from e
    return Path(path)


def fetch_unit(
    source: str,
    copy: HubCopy,
    split: str,
    expected: ExpectedRows | None,
    out: Path,
    progress: bool = True,
    hub: Hub | None = None,
) -> dict:
    """Fetch one BEIR folder's copy and write it in BEIR's layout into `out`; returns its provenance.

    `hub`: how to reach the hub (timeout, retries), shared by the units of one download."""
    hub = hub or Hub(progress=progress)
    prefix = f"{copy.folder}/" if copy.folder else ""
    tables = [p.format(f=prefix) for p in TABLE_PATTERNS]
    qrels_patterns = [p.format(f=prefix) for p in QRELS_PATTERNS]
    same_repo = (copy.repo, copy.revision) == (copy.qrels_repo, copy.qrels_revision)
    root = snapshot(copy.repo, copy.revision, tables + (qrels_patterns if same_repo else []), hub)
    qroot = root if same_repo else snapshot(copy.qrels_repo, copy.qrels_revision, qrels_patterns, hub)
    used = convert(
        root / copy.folder, qroot / copy.folder, split, expected, out, progress=progress, scored=copy.scored
    )
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
    root: Path,
    qroot: Path,
    split: str,
    expected: ExpectedRows | None,
    out: Path,
    progress: bool = True,
    scored: bool = True,
) -> list[Path]:
    """Write corpus.jsonl, queries.jsonl and qrels/<split>.tsv (every split found) into `out`.

    `scored` False: the qrels carry no score, every pair listed is relevant (grade 1). Returns the hub
    files read. Raises DataError for a bad record, a missing evaluation split, or counts other than
    `expected`.
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
        qrels = _read_qrels(files, scored)
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


def _records(
    files: list[Path], required: tuple[str, ...], what: str
) -> Iterator[tuple[Path, int | str, dict]]:
    """(file, line or parquet row, record) with `_id` as the id column, each record checked (its id
    as a `what` id: `jsonl.check_id`)."""
    for f in files:
        if f.suffix == ".parquet":
            for where, rec in _parquet_rows(f):
                if "_id" not in rec and "id" in rec:  # MTEB's parquet names the column `id`
                    rec["_id"] = rec.pop("id")
                check_record(f, where, rec, required, what)
                yield f, where, rec
        else:
            opener = gzip.open if f.suffix == ".gz" else open
            try:
                for lineno, rec in jsonl_records(f, required, opener, what):
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
    from ..progress import bar as progress_bar

    seen: dict[str, tuple[Path, int | str]] = {}
    with (
        open(dest, "w", encoding="utf-8", newline="\n") as out,
        progress_bar(total, f"converting {dest.name}", "doc", enabled=progress) as bar,
    ):
        for f, where, rec in _records(files, ("_id", "text"), "document"):
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
        for f, where, rec in _records(files, ("_id", "text"), "query"):
            qid = str(rec["_id"])
            if qid in ids:
                raise DataError(f, where, f"duplicate query id {qid!r} (first at {ids[qid]})")
            ids[qid] = where
            out.write(json.dumps({"_id": qid, "text": rec.get("text") or ""}, ensure_ascii=False) + "\n")
    if not ids:
        raise DataError(files[0], None, "empty query set: no queries")
    return set(ids)


def _read_qrels(files: list[Path], scored: bool = True) -> Qrels:
    if files[0].suffix == ".tsv":
        return read_qrels(files[0])[0]
    qrels: Qrels = {}
    for f in files:
        rows = _parquet_rows(f) if f.suffix == ".parquet" else _jsonl_rows(f)
        for where, rec in rows:
            if not scored:
                rec.setdefault("score", 1)  # a list of relevant pairs: each is grade 1
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
