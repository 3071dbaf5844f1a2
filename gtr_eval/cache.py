"""Content-addressed embedding cache, written in shards so an interrupted encode resumes.

A cache entry is a folder named by the sha256 of everything that changes the vectors (model weights,
prompts, max length, dtype, backend, dataset checksum, text formatting).  Each shard is a `.npy`
written atomically, followed by a sidecar `.json` with its row count, dimension and sha256: a shard
counts as complete only when both exist and agree, so a file cut short by `kill -9` is re-encoded,
never read back.  Arrays are loaded with `allow_pickle=False` and memory-mapped.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from filelock import FileLock
from tqdm.auto import tqdm

from .io import atomic_write_bytes, atomic_write_json

log = logging.getLogger(__name__)

Encoder = Callable[[list[str]], np.ndarray]


def default_cache_dir() -> Path:
    """`$GTR_EVAL_CACHE_DIR`, else the user cache directory (honours `XDG_CACHE_HOME`)."""
    if env := os.environ.get("GTR_EVAL_CACHE_DIR"):
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("gtr-eval"))


def cache_key(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class EncodeStats:
    shards_total: int = 0
    shards_encoded: int = 0
    shards_reused: int = 0


@dataclass
class ShardedEmbeddings:
    """Embeddings of `order[r]`-th documents in row r, stored as shard files."""

    folder: Path
    order: np.ndarray
    shard_size: int
    shard_paths: list[Path]
    stats: EncodeStats = field(default_factory=EncodeStats)
    _tmp: tempfile.TemporaryDirectory | None = None

    def chunks(self) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, memory-mapped rows) per shard: search reads one shard at a time."""
        for i, path in enumerate(self.shard_paths):
            yield i * self.shard_size, np.load(path, mmap_mode="r", allow_pickle=False)

    def matrix(self) -> np.ndarray:
        """All rows in document order (row i = document i); loads everything into memory."""
        rows = np.concatenate([c for _, c in self.chunks()]) if self.shard_paths else np.zeros((0, 0))
        out = np.empty_like(rows)
        out[self.order] = rows
        return out

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def _shard_complete(npy: Path, rows: int, start: int) -> bool:
    meta_path = npy.with_suffix(".json")
    if not (npy.is_file() and meta_path.is_file()):
        return False
    try:
        meta = json.loads(meta_path.read_text())
        # `start` (absent in old sidecars): a shard of another --shard-size may have the same row count.
        if meta["rows"] != rows or meta.get("start", start) != start or meta["bytes"] != npy.stat().st_size:
            return False
        return meta["sha256"] == _sha256_file(npy)
    except (OSError, ValueError, KeyError):
        return False


def _write_shard(npy: Path, array: np.ndarray, start: int) -> None:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)
    data = buf.getvalue()
    atomic_write_bytes(npy, data)
    meta = {"rows": int(array.shape[0]), "start": start, "dim": int(array.shape[1]), "bytes": len(data)}
    meta["sha256"] = hashlib.sha256(data).hexdigest()
    atomic_write_json(npy.with_suffix(".json"), meta)


def encode_sharded(
    texts: Callable[[np.ndarray], list[str]],
    order: np.ndarray,
    encode: Encoder,
    key: dict,
    cache_dir: Path | None,
    shard_size: int = 2048,
    desc: str = "encode",
    progress: bool = True,
) -> ShardedEmbeddings:
    """Encode `texts(order[a:b])` shard by shard, reusing complete shards from the cache.

    With `cache_dir=None` the shards go to a temporary folder removed by `close()`, so memory stays
    bounded by one shard even without a cache.
    """
    tmp = None
    if cache_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="gtr-eval-emb-")
        folder = Path(tmp.name)
    else:
        digest = cache_key(key)
        folder = Path(cache_dir) / "embeddings" / digest[:2] / digest
    folder.mkdir(parents=True, exist_ok=True)
    n_shards = (len(order) + shard_size - 1) // shard_size
    paths = [folder / f"shard-{i:06d}.npy" for i in range(n_shards)]
    stats = EncodeStats(shards_total=n_shards)
    with FileLock(str(folder / ".lock")):
        atomic_write_json(folder / "key.json", key)
        _check_order(folder, order)
        bar = tqdm(total=len(order), desc=desc, unit="doc", disable=not progress, leave=False)
        for i, path in enumerate(paths):
            idx = order[i * shard_size : (i + 1) * shard_size]
            if _shard_complete(path, len(idx), i * shard_size):
                stats.shards_reused += 1
            else:
                _write_shard(path, encode(texts(idx)), i * shard_size)
                stats.shards_encoded += 1
            bar.update(len(idx))
        bar.close()
    log.info(
        "%s: %d shards encoded, %d reused from %s", desc, stats.shards_encoded, stats.shards_reused, folder
    )
    return ShardedEmbeddings(folder, order, shard_size, paths, stats, tmp)


def _check_order(folder: Path, order: np.ndarray) -> None:
    """The row order is part of what the shards mean; a mismatch invalidates the entry."""
    path = folder / "order.npy"
    if path.is_file():
        try:
            if np.array_equal(np.load(path, allow_pickle=False), order):
                return
        except (OSError, ValueError):
            pass
        log.warning("%s: row order changed; discarding its shards", folder)
        for p in folder.glob("shard-*"):
            p.unlink()
    buf = io.BytesIO()
    np.save(buf, order.astype(np.int64), allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


def clear(cache_dir: Path) -> None:
    shutil.rmtree(Path(cache_dir) / "embeddings", ignore_errors=True)
