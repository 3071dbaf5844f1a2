"""Atomic writes: a reader sees the old file or the new one, never half of one; file checksums and the
memo files that keep them (`artifacts` keys them).  A write that finds the disk full says which path
it was writing and how much it needed (`DiskFull`): Python's own `[Errno 28] No space left on
device` names neither."""

from __future__ import annotations

import errno
import glob
import gzip
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


class DiskFull(OSError):
    """No space left on the device (ENOSPC) while writing `path`, in one line: the path, what the write
    needed or had written when known, and what is free there."""

    def __init__(self, path: Path | str, needed: int | None = None, written: int | None = None):
        super().__init__(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        self.path, self.needed, self.written = Path(path), needed, written
        self.free = free_bytes(self.path)

    def __str__(self) -> str:
        parts = [f"{size_text(self.needed)} needed" if self.needed is not None else None,
                 f"{size_text(self.written)} written when it ran out" if self.written is not None else None,
                 f"{size_text(self.free)} free there" if self.free is not None else None]  # fmt: skip
        known = "; ".join(p for p in parts if p)
        return (f"disk full writing {self.path}{f' ({known})' if known else ''}: free some space, or "
                "write elsewhere (--cache-dir, --results-dir)")  # fmt: skip


def free_bytes(path: Path) -> int | None:
    """Free bytes on the file system holding `path` (or its nearest existing parent); None if unknown."""
    for folder in (path, *path.parents):
        try:
            return shutil.disk_usage(folder).free
        except OSError:
            continue
    return None


def size_text(n: int) -> str:
    """Bytes for a person: `512 B`, `3.4 MB`, `1.2 GB`."""
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over `path`."""
    with atomic_writer(path, needed=len(data)) as fh:
        fh.write(data)


@contextmanager
def atomic_writer(
    path: Path | str, gzip_level: int | None = None, needed: int | None = None
) -> Iterator[IO[bytes]]:
    """A binary stream that replaces `path` atomically when the block ends (removed on error).

    For outputs too large to build in memory first (a 7M-line run file).  With `gzip_level` the
    stream is gzip-compressed, without a file name or time stamp, so equal content gives equal bytes.
    A full disk is a `DiskFull` naming `path`, the bytes `needed` when the caller knows them, and
    how much had been written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            if gzip_level is None:
                yield fh
            else:
                with gzip.GzipFile(
                    filename="", mode="wb", fileobj=fh, compresslevel=gzip_level, mtime=0
                ) as gz:
                    yield gz  # type: ignore[misc]
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        written = _size_or_none(tmp)
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno == errno.ENOSPC and not isinstance(e, DiskFull):
            raise DiskFull(path, needed, written) from e
        raise


def _size_or_none(path: Path | str) -> int | None:
    try:
        return os.path.getsize(path)
    except OSError:
        return None


def temp_files(path: Path | str) -> list[Path]:
    """The temporary files that writes of `path` killed before their rename left behind."""
    path = Path(path)
    return sorted(path.parent.glob(f".{glob.escape(path.name)}.*.tmp"))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path | str, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path | str, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=False, ensure_ascii=False) + "\n")


def atomic_write_gzip_text(path: Path | str, text: str) -> None:
    # mtime=0 keeps the archive byte-identical for identical content.
    atomic_write_bytes(path, gzip.compress(text.encode("utf-8"), mtime=0))


def sha256_file(path: Path | str) -> str:
    """sha256 of a file, read in 4 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def read_memo(memo: Path) -> str | None:
    try:
        return memo.read_text().strip() or None
    except OSError:
        return None


def write_memo(memo: Path, sha: str) -> None:
    try:
        atomic_write_text(memo, sha)
    except OSError:
        pass  # only a speed-up


def last_json_object(text: str) -> dict | None:
    """The last line of `text` that parses as a JSON object (what a child process prints for its parent)."""
    for line in reversed(text.strip().splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None
