"""The corpus store: corpus.jsonl converted once into a memory-mapped Arrow file.

MS MARCO's corpus.jsonl holds 8.8M lines (3-4 GB).  Parsing it in Python on every run costs over a
minute, and holding it as Python strings costs several times its size.  The store is an Arrow IPC
file (the format Hugging Face `datasets` memory-maps) with three string columns, `_id`, `title` and
`text`, written once per corpus content, keyed by the file's sha256, under the user cache.  Opening
it again maps the file: no parse, no copy; the pages are read from disk as they are used.

Conversion parses the file with pyarrow's multithreaded JSON reader in a child process (so that a
crash of the parser on hostile input, as pyarrow segfaults on a line holding only `null`, cannot
take the run down) while this process scans it (sha256, line count, UTF-8 validity, no byte-order
mark, no blank or indented line).  The child's result is kept only when it is provably what the
strict line-by-line reader (`jsonl.corpus_records`) gives: one row per line, every `_id` present,
non-empty, unique and free of whitespace and control characters (`jsonl.id_problem`, checked
on the id column at once), every `text` present.  Anything else (the parser's refusal or crash, a count
mismatch, a null) sends the file through the strict reader, which either loads it (integer ids,
null texts, blank lines are fine there) or raises its `DataError` naming the file and line.  Small
files go straight to the strict reader.

Files under `<cache>/corpus/`: `<sha[:2]>/<sha>.v1/corpus.arrow`, a folder built by
`artifacts.build_folder` (under a file lock, so that concurrent processes convert a corpus once; with a
checksum record verified the first time a process opens it, so a store edited or cut short on disk is
converted again, with a note); `tmp/` for conversions in progress (files of dead processes are
removed).  The sha256 of corpus.jsonl is memoised under the cache root's `memos/` by the file's full
stat key (`artifacts.stat_key`): a second open does not hash gigabytes again, and any change to the
file (even of the same size, its mtime restored) is hashed again; new content gets its own store.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from ..artifacts import RECORD, CacheRoot, file_memo, memoised_sha256, verify_folder
from ..io import last_json_object, read_memo, write_memo
from .jsonl import BAD_ID_CHAR_RE2, DataError, corpus_records

log = logging.getLogger(__name__)

STORE_VERSION = 2  # 2: ids with whitespace or control characters are refused
# Files below this size go straight to the strict reader: it takes well under a second on them,
# less than starting the fast path's child process.
FAST_PATH_MIN_BYTES = 32 << 20
SCAN_BLOCK = 8 << 20
JSON_PIECE = 64 << 20  # bytes parsed at a time (resident memory: about three times this)
JSON_BLOCK = 8 << 20  # pyarrow's unit of parallel parsing
STRICT_BATCH_ROWS = 1 << 16
_COLUMNS = ("_id", "title", "text")
STORE_FILE = "corpus.arrow"


def store_root() -> Path:
    return CacheRoot.of().area("corpus")


def cache_of(root: Path) -> CacheRoot:
    """The cache root whose corpus area is `root` (its memos live there)."""
    return CacheRoot(Path(root).parent)


def data_file_sha256(path: Path, root: Path | None = None) -> str:
    """The sha256 of a dataset file, memoised by its stat key under the cache of store root `root`."""
    return memoised_sha256(path, cache_of(Path(root) if root is not None else store_root()).memos("files"))


def _schema() -> pa.Schema:
    meta = {"gtr_eval_corpus_store": str(STORE_VERSION)}
    return pa.schema([(c, pa.string()) for c in _COLUMNS], metadata=meta)


@dataclass
class CorpusStore:
    """A corpus as an Arrow table; `path` is the memory-mapped file (None when held in memory)."""

    table: pa.Table
    sha256: str
    path: Path | None


@dataclass
class Scan:
    """What one pass over the raw bytes tells: the content hash, and whether the fast path applies.

    `clean` means: valid UTF-8, no byte-order mark, and every line starts with a non-blank byte.
    Then each line yields at least one row or an error in pyarrow, and "rows == lines" proves one
    row per line (two objects on one line would give more rows).
    """

    sha256: str
    size: int
    lines: int
    clean: bool


_INDENT = re.compile(rb"\n[\n\r\t ]")  # a line that is blank or starts with whitespace


def scan_file(path: Path) -> Scan:
    """Hash `path` (in a second thread: hashlib releases the GIL) while checking its lines."""
    h = hashlib.sha256()
    size = lines = 0
    clean = True
    decoder = codecs.getincrementaldecoder("utf-8")()
    prev = b"\n"  # a virtual newline before the first byte
    with open(path, "rb") as fh, ThreadPoolExecutor(1) as hashing:
        pending = None
        while block := fh.read(SCAN_BLOCK):
            if pending is not None:
                pending.result()
            pending = hashing.submit(h.update, block)
            if size == 0 and block.startswith(codecs.BOM_UTF8):
                clean = False
            size += len(block)
            lines += block.count(b"\n")
            if clean:
                clean = not (
                    prev == b"\n" and block[:1] in (b"\n", b"\r", b" ", b"\t")
                ) and not _INDENT.search(block)
            if clean and not (block.isascii() and not decoder.getstate()[0]):
                try:
                    decoder.decode(block)
                except UnicodeDecodeError:
                    clean = False
            prev = block[-1:]
        if pending is not None:
            pending.result()
    if clean:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            clean = False
    if size and prev != b"\n":
        lines += 1  # a last line without its newline
    return Scan(h.hexdigest(), size, lines, clean)


def open_corpus(path: Path, root: Path | None = None) -> CorpusStore:
    """The corpus of `path` (a BEIR corpus.jsonl), converting it on first use; `DataError` on bad input.

    On first use the fast reader's child process starts at once and parses while this process
    hashes and checks the file (`scan_file`); the result is kept only if the scan allows it.
    """
    path = Path(path)
    root = Path(root) if root is not None else store_root()
    cache = cache_of(root)
    memo = file_memo(path, cache.memos("files"))
    sha = read_memo(memo)
    if sha and (found := _open_stored(root, sha, cache)):
        return found
    work = _work_dir(root)
    stored = work is not None
    if not stored:
        work = Path(tempfile.mkdtemp(prefix="gtr-eval-corpus-"))
        warnings.warn(f"corpus store {root} is not writable; converting {path} into a temporary file",
                      stacklevel=2)  # fmt: skip
    fast = FastConversion(path, work) if path.stat().st_size >= FAST_PATH_MIN_BYTES else None
    try:
        scan = scan_file(path)
        if not stored:
            return _convert_unstored(path, work, scan, fast)
        folder = _store_folder(root, scan.sha256)
        cache.build(folder, lambda tmp: os.replace(_converted(path, work, scan, fast), tmp / STORE_FILE),
                    "corpus store")  # fmt: skip
        found = _map(folder / STORE_FILE, scan.sha256)
    finally:
        if fast is not None:
            fast.cancel()
    if found is None:
        raise RuntimeError(f"{folder}: the corpus store just written cannot be read back")
    write_memo(memo, scan.sha256)
    return found


def _open_stored(root: Path, sha: str, cache: CacheRoot) -> CorpusStore | None:
    """The store of content `sha`, if it is there and passes its checksums (else it is built again)."""
    folder = _store_folder(root, sha)
    if not folder.is_dir() or verify_folder(folder, cache.memos("folders")) is not None:
        return None
    return _map(folder / STORE_FILE, sha)


def _converted(src: Path, work: Path, scan: Scan, fast: FastConversion | None) -> Path:
    """A finished store file of `src` in `work`: the fast child's if it provably agrees, else strict.

    Not fsynced: a store cut short by a crash fails `_map`'s checks and is converted again.
    """
    if fast is not None and fast.agrees(scan):
        return fast.dst
    dst = work / f"strict-{os.getpid()}-{secrets.token_hex(4)}.arrow.tmp"
    try:
        _convert_strict(src, dst, scan.sha256)
    except BaseException:
        dst.unlink(missing_ok=True)
        raise
    return dst


def _work_dir(root: Path) -> Path | None:
    """`<root>/tmp` for conversions in progress (files of dead processes removed); None if unwritable."""
    work = root / "tmp"
    try:
        work.mkdir(parents=True, exist_ok=True)
        probe = work / f".probe-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError:
        return None
    for stale in work.glob("*.tmp"):
        try:
            pid = int(stale.name.split("-")[1])
            os.kill(pid, 0)
        except ProcessLookupError:
            stale.unlink(missing_ok=True)  # its process was killed mid-conversion
        except (ValueError, IndexError, PermissionError):
            continue
    return work


def store_sha256(store_file: Path | None) -> str | None:
    """The sha256 of a store file as its checksum record holds it: what an artifact derived from the
    store (a BM25 or Lucene index) is keyed by, so that a store converted again (after it failed its
    checksums) makes them be built again; None for a corpus held in memory."""
    if store_file is None:
        return None
    try:
        return json.loads((Path(store_file).parent / RECORD).read_text())["files"][STORE_FILE][1]
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None


def _store_folder(root: Path, sha: str) -> Path:
    return root / sha[:2] / f"{sha}.v{STORE_VERSION}"


def map_store(file: Path) -> pa.Table:
    """A store file, memory-mapped (for worker processes handed its path)."""
    return pa.ipc.open_file(pa.memory_map(str(file), "r")).read_all().replace_schema_metadata(None)


def _map(file: Path, sha: str) -> CorpusStore | None:
    """The store at `file`, memory-mapped, if it is a complete store of this version."""
    if not file.is_file():
        return None
    try:
        reader = pa.ipc.open_file(pa.memory_map(str(file), "r"))
        meta = reader.schema.metadata or {}
        if meta.get(b"gtr_eval_corpus_store") != str(STORE_VERSION).encode() or reader.schema.names != list(
            _COLUMNS
        ):
            raise ValueError("not a corpus store of this version")
        table = reader.read_all()
    except (OSError, ValueError, pa.ArrowException) as e:
        log.warning("%s: unreadable corpus store (%s); converting again", file, e)
        return None
    return CorpusStore(table.replace_schema_metadata(None), sha, file)


def _convert_unstored(src: Path, work: Path, scan: Scan, fast: FastConversion | None) -> CorpusStore:
    """No writable cache: convert into a temporary file, map it and delete it (the mapping stays)."""
    try:
        tmp = _converted(src, work, scan, fast)
        found = _map(tmp, scan.sha256)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if found is None:
        raise RuntimeError(f"{work}: the temporary corpus store cannot be read back")
    found.path = None
    return found


def _convert_strict(src: Path, dst: Path, sha: str) -> int:
    """The line-by-line reader's result, written in record batches; raises its `DataError`."""
    hasher = hashlib.sha256()
    schema = _schema()
    rows = 0
    with pa.OSFile(str(dst), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        cols: tuple[list[str], list[str], list[str]] = ([], [], [])
        for record in corpus_records(src, hasher):
            for col, value in zip(cols, record, strict=True):
                col.append(value)
            if len(cols[0]) == STRICT_BATCH_ROWS:
                writer.write_batch(pa.record_batch([pa.array(c, pa.string()) for c in cols], schema=schema))
                rows += len(cols[0])
                cols = ([], [], [])
        if cols[0]:
            writer.write_batch(pa.record_batch([pa.array(c, pa.string()) for c in cols], schema=schema))
            rows += len(cols[0])
    if hasher.hexdigest() != sha:
        raise DataError(src, None, "the file changed while it was being read; run again")
    return rows


class FastConversion:
    """`_fast_child` started in a fresh interpreter: it parses while the parent scans the file."""

    def __init__(self, src: Path, work: Path):
        self.dst = work / f"fast-{os.getpid()}-{secrets.token_hex(4)}.arrow.tmp"
        self.proc = _spawn_fast_child(src, self.dst)
        self.src = src

    def agrees(self, scan: Scan) -> bool:
        """True when the child's store (at `dst`) is exactly what the strict reader gives."""
        if not scan.clean:
            self.cancel()
            return False
        stdout, stderr = self.proc.communicate()
        stats = last_json_object(stdout) if self.proc.returncode == 0 else None
        if stats is None:
            log.info("%s: the fast reader declined (exit %s: %s); reading line by line", self.src,
                     self.proc.returncode, stderr.strip()[-300:])  # fmt: skip
            return False
        agrees = (
            stats["rows"] == scan.lines > 0
            and stats["distinct_ids"] == stats["rows"]
            and not (stats["null_ids"] or stats["empty_ids"] or stats["null_texts"] or stats["bad_ids"])
        )
        if not agrees:
            log.info("%s: the fast reader's result needs the line-by-line check (%s)", self.src, stats)
        return agrees

    def cancel(self) -> None:
        """Stop the child if it still runs; remove its file unless it became the store."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()
        self.dst.unlink(missing_ok=True)


def _spawn_fast_child(src: Path, dst: Path) -> subprocess.Popen:
    package_parent = str(Path(__file__).resolve().parents[2])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")])),
    }
    code = "import sys; from gtr_eval.data.store import _fast_child; _fast_child(*sys.argv[1:])"
    return subprocess.Popen([sys.executable, "-c", code, str(src), str(dst)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip


def _convert_fast(src: Path, dst: Path, scan: Scan) -> bool:
    """The fast path on its own (tests compare it with `_convert_strict`)."""
    conversion = FastConversion(src, dst.parent)
    if not conversion.agrees(scan):
        conversion.cancel()
        return False
    os.replace(conversion.dst, dst)
    return True


def _pieces(path: str, size: int):
    """The file in Arrow buffers of about `size` bytes, each ending at a line end (read, not mapped,
    so that resident memory stays one piece however large the file)."""
    with pa.OSFile(path, "r") as f:
        total, offset = f.size(), 0
        while offset < total:
            f.seek(offset)
            buf = f.read_buffer(min(size, total - offset))
            if offset + buf.size < total:
                cut = _last_newline(buf) + 1
                if cut == 0:  # one line longer than a piece: read a larger one
                    size *= 2
                    continue
                buf = buf.slice(0, cut)
            yield buf
            offset += buf.size


def _last_newline(buf: pa.Buffer) -> int:
    tail = 1 << 16
    while True:
        start = max(0, buf.size - tail)
        i = bytes(buf.slice(start)).rfind(b"\n")
        if i >= 0 or start == 0:
            return start + i if i >= 0 else -1
        tail *= 4


def _fast_child(src: str, dst: str) -> None:
    """Child process: parse `src` with pyarrow, write the store to `dst`, print its statistics.

    The file is parsed piece by piece with `read_json`, which splits each piece into blocks parsed
    on all cores (pyarrow's streaming JSON reader is single-threaded).  Stops at the first piece
    with a missing, empty or unusable `_id` or a missing `text`: the parent then reads the file
    line by line, which names the line.
    """
    import pyarrow.compute as pc
    import pyarrow.json as pj

    try:  # jemalloc keeps freed pieces for the next one: a third of the system time of mimalloc here
        pa.set_memory_pool(pa.jemalloc_memory_pool())
    except (NotImplementedError, pa.ArrowException):
        pass
    schema = _schema()
    read_options = pj.ReadOptions(block_size=JSON_BLOCK, use_threads=True)
    parse_options = pj.ParseOptions(
        explicit_schema=pa.schema([(c, pa.string()) for c in _COLUMNS]), unexpected_field_behavior="ignore"
    )
    stats = {"rows": 0, "null_ids": 0, "empty_ids": 0, "null_texts": 0, "bad_ids": 0, "distinct_ids": 0}
    ids_seen = []
    with pa.OSFile(dst, "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        for piece in _pieces(src, JSON_PIECE):
            table = pj.read_json(
                pa.BufferReader(piece), read_options=read_options, parse_options=parse_options
            )
            del piece
            ids, title, text = (table.column(c) for c in _COLUMNS)
            stats["rows"] += table.num_rows
            stats["null_ids"] += ids.null_count
            stats["null_texts"] += text.null_count
            stats["empty_ids"] += int(pc.sum(pc.equal(pc.binary_length(ids), 0)).as_py() or 0)
            stats["bad_ids"] += int(pc.sum(pc.match_substring_regex(ids, BAD_ID_CHAR_RE2)).as_py() or 0)
            if stats["null_ids"] or stats["empty_ids"] or stats["null_texts"] or stats["bad_ids"]:
                break
            writer.write_table(pa.table([ids, pc.fill_null(title, ""), text], schema=schema))
            ids_seen.extend(ids.chunks)
    if ids_seen:
        stats["distinct_ids"] = pc.count_distinct(pa.chunked_array(ids_seen, pa.string())).as_py()
    print(json.dumps(stats), flush=True)
