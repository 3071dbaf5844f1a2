"""Atomic writes: a reader sees the old file or the new one, never half of one; file checksums and the
memo files that keep them (`artifacts` keys them)."""

from __future__ import annotations

import glob
import gzip
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over `path`."""
    with atomic_writer(path) as fh:
        fh.write(data)


@contextmanager
def atomic_writer(path: Path | str, gzip_level: int | None = None) -> Iterator[IO[bytes]]:
    """A binary stream that replaces `path` atomically when the block ends (removed on error).

    For outputs too large to build in memory first (a 7M-line run file).  With `gzip_level` the
    stream is gzip-compressed, without a file name or time stamp, so equal content gives equal bytes.
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
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
