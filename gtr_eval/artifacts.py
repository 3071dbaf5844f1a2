"""The cache: one root, its areas, the key-to-folder rule, memos, and folders built atomically and verified.

Everything the harness derives from its inputs and keeps for later runs (corpus stores, BM25 and
Lucene indexes, ONNX exports, embeddings, re-ranker pair scores, reduced datasets) lives in one `CacheRoot`:
`--cache-dir`, else `$GTR_EVAL_CACHE_DIR`, else the user cache.  Its memos live there too, never in
another root, so a run under a fresh `--cache-dir` owes nothing to what the user cache remembers.
Downloads live in the data folder but are built and verified the same way.

A stored number is only as good as the files it was made from, so:
- A memo of a file's digest is keyed by the file's full stat key (`stat_key`): size, mtime, ctime,
  inode and device.  An edit of the same size with its mtime restored (`touch -r`, `cp -p`,
  `rsync -t`) still moves ctime, which no user can set back, so it is hashed again.
- An artifact folder is built by `build_folder`: under a lock, into a temporary folder, with a
  checksum record of every file written (size and sha256), then renamed into place.  The first time a
  process opens it, `verify_folder` checks every file against that record (memoised by the files'
  stat keys, in the process and on disk); a folder that fails is rebuilt with a one-line note.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .io import DiskFull, atomic_write_json, read_memo, sha256_file, write_memo
from .paths import default_cache_dir

log = logging.getLogger(__name__)

AREAS = ("corpus", "bm25", "lucene", "onnx", "embeddings", "pair-scores", "reduced", "memos")
"""The cache root's folders, one per kind of artifact (`memos`: file and folder digests)."""
RECORD = ".checksums.json"
"""The checksum record `build_folder` writes in each artifact folder: relative path -> [size, sha256]."""

_VERIFIED: dict[Path, list] = {}  # folder -> the stat keys it was verified under, in this process


def stat_key(path: Path | str) -> list:
    """What identifies a file's content without reading it: path, size, mtime, ctime, inode, device.

    ctime is set by the kernel on every change (an edit, `os.utime`, a rename onto the path) and
    cannot be set back, so no edit keeps this key."""
    st = os.stat(path)
    return [str(Path(path).resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def key_digest(key: dict) -> str:
    """The sha256 that names a cache entry for `key` (JSON with sorted keys)."""
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


def memoised_sha256(path: Path | str, memo_dir: Path | None) -> str:
    """sha256 of a file, memoised in `memo_dir` (None: not memoised) by its `stat_key`: an unchanged
    4 GB corpus is hashed once, any change is hashed again."""
    if memo_dir is None:
        return sha256_file(path)
    memo = file_memo(path, memo_dir)
    if known := read_memo(memo):
        return known
    sha = sha256_file(path)
    write_memo(memo, sha)
    return sha


def file_memo(path: Path | str, memo_dir: Path) -> Path:
    """Where the digest of `path` as it is now is memoised in `memo_dir` (its `stat_key` names it)."""
    return Path(memo_dir) / f"{key_digest({'file': stat_key(path)})}.txt"


@dataclass(frozen=True)
class CacheRoot:
    """The cache folder in use, its areas and where an entry for a key lives."""

    path: Path

    @classmethod
    def of(cls, cache_dir: Path | str | None = None) -> CacheRoot:
        """The root at `cache_dir`, else the default (`$GTR_EVAL_CACHE_DIR`, else the user cache)."""
        return cls(Path(cache_dir) if cache_dir is not None else default_cache_dir())

    @classmethod
    def optional(cls, cache_dir: Path | str | None) -> CacheRoot | None:
        """The root at `cache_dir`; None for None (no cache: `--no-cache`)."""
        return cls(Path(cache_dir)) if cache_dir is not None else None

    @classmethod
    def corpus_area(cls, cache_dir: Path | str | None) -> Path | None:
        """Where the corpus stores of cache folder `cache_dir` live (None: no cache, the default's)."""
        root = cls.optional(cache_dir)
        return root.area("corpus") if root is not None else None

    def area(self, name: str) -> Path:
        if name not in AREAS:
            raise ValueError(f"no cache area {name!r}; the areas are {', '.join(AREAS)}")
        return self.path / name

    def entry(self, area: str, key: dict) -> Path:
        """Where the entry for `key` lives in `area`: named by the key's digest, so an entry is found
        only for the inputs that made it."""
        digest = key_digest(key)
        return self.area(area) / digest[:2] / digest

    def memos(self, kind: str) -> Path:
        """The memo folder for `kind` (files, weights, folders)."""
        return self.area("memos") / kind

    def sha256(self, path: Path | str) -> str:
        """sha256 of a file, memoised under this root by its stat key."""
        return memoised_sha256(path, self.memos("files"))

    def build(self, folder: Path, make: Callable[[Path], None], what: str, **kw) -> bool:
        """`build_folder` with this root's folder memos; True when a verified folder was reused."""
        return build_folder(folder, make, what, memo_dir=self.memos("folders"), **kw)


def build_folder(
    folder: Path,
    make: Callable[[Path], None],
    what: str,
    memo_dir: Path | None = None,
    remove: Callable[[Path], None] | None = None,
    current: Callable[[Path], bool] = lambda folder: True,
) -> bool:
    """Make `folder` once: `make(tmp)` fills a temporary folder beside it, a checksum record of every
    file in it is written, and it is renamed into place; all under a lock, so concurrent processes
    build it once.  True when a complete folder that passes `verify_folder` was already there; one
    that fails is removed and built again, with a note naming the file.  `remove` deletes a killed
    build's leftovers (default: `shutil.rmtree`).  A folder named for something other than its full
    key (a reduced dataset) says through `current` whether it was made from the inputs of now; one
    that was not is built again without a note.  A full disk is a `DiskFull` naming the folder and
    how much the build had written."""
    from filelock import FileLock

    remove = remove or (lambda p: shutil.rmtree(p, ignore_errors=True))
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        if folder.exists():
            bad = verify_folder(folder, memo_dir)
            if bad is None and current(folder):
                return True
            if bad is not None:
                log.warning("[cache] %s %s failed its checksum (%s); rebuilding", what, folder, bad)
            shutil.rmtree(folder, ignore_errors=True)
        for stale in folder.parent.glob(f".{folder.name}.*.tmp"):  # a build that was killed
            remove(stale)
        tmp = folder.parent / f".{folder.name}.{os.getpid()}.tmp"
        try:
            tmp.mkdir()
            make(tmp)
            write_record(tmp)
            tmp.rename(folder)
        except OSError as e:
            if e.errno != errno.ENOSPC or isinstance(e, DiskFull):
                raise
            raise DiskFull(folder, written=_folder_bytes(tmp)) from e
        finally:
            if tmp.exists():
                remove(tmp)
    _remember(folder, memo_dir)
    log.info("%s saved to %s", what, folder)
    return False


def _folder_bytes(folder: Path) -> int:
    """Bytes of the files under `folder` (what a build had written when the disk filled)."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def write_record(folder: Path) -> None:
    """Sync every file under `folder` and write its checksum record (`RECORD`)."""
    files = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != RECORD:
            with open(p, "rb+") as fh:
                os.fsync(fh.fileno())
            files[p.relative_to(folder).as_posix()] = [p.stat().st_size, sha256_file(p)]
    atomic_write_json(folder / RECORD, {"files": files})


def verify_folder(folder: Path, memo_dir: Path | None = None) -> str | None:
    """None when every file of `folder`'s checksum record is there with its size and sha256, else
    the first that is not (or the record itself).  Hashes only on the first check of these files as
    they are (same stat keys) in this process, or ever when `memo_dir` keeps the verdict."""
    folder = Path(folder)
    try:
        files = json.loads((folder / RECORD).read_text())["files"]
        snapshot = _snapshot(folder, files)
    except (OSError, ValueError, KeyError, TypeError):
        return RECORD
    if isinstance(snapshot, str):
        return snapshot
    if _VERIFIED.get(folder) == snapshot:
        return None
    memo = _verdict_memo(memo_dir, snapshot)
    if memo is None or read_memo(memo) != "ok":
        for name, (_, sha) in files.items():
            if sha256_file(folder / name) != sha:
                return name
        if memo is not None:
            write_memo(memo, "ok")
    _VERIFIED[folder] = snapshot
    return None


def _snapshot(folder: Path, files: dict) -> list | str:
    """The stat keys of the record and its files; the name of the first missing or resized file."""
    keys = [stat_key(folder / RECORD)]
    for name, (size, _) in files.items():
        try:
            key = stat_key(folder / name)
        except OSError:
            return name
        if key[1] != size:
            return name
        keys.append(key)
    return keys


def _verdict_memo(memo_dir: Path | None, snapshot: list) -> Path | None:
    return None if memo_dir is None else Path(memo_dir) / f"{key_digest({'folder': snapshot})}.txt"


def _remember(folder: Path, memo_dir: Path | None) -> None:
    """A folder this process just built is verified as it is."""
    try:
        files = json.loads((folder / RECORD).read_text())["files"]
    except (OSError, ValueError, KeyError):
        return
    snapshot = _snapshot(folder, files)
    if isinstance(snapshot, list):
        _VERIFIED[folder] = snapshot
        if (memo := _verdict_memo(memo_dir, snapshot)) is not None:
            write_memo(memo, "ok")
