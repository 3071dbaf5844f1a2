"""Content-addressed embedding cache, written in shards so an interrupted encode resumes.

A cache entry is a folder named by the sha256 of everything that changes the vectors (model weights,
prompts, max length, dtype, backend, dataset checksum, text formatting).  Each shard is a `.npy`
written atomically, followed by a sidecar `.json` with its row count, dimension, storage dtype and
sha256: a shard counts as complete only when both exist and agree, so a file cut short by `kill -9`
is re-encoded, never read back.  Arrays are loaded with `allow_pickle=False` and memory-mapped.

Storage is float32, or float16 on request (`--cache-dtype fp16`: half the disk, 13.6 GB instead of
27 GB for 8.8M x 768).  The storage dtype is part of the key and of each sidecar; readers get
float32 back (`ShardedEmbeddings.matrix`, and `search._blocks` copies shards into a float32 block),
so scores are always computed in float32: half-precision products would round nearby scores
onto the same value and make spurious ties in the top-k.

Shard formats: dense vectors are one float32 `.npy` per shard (the layout every existing cache has).
Learned sparse vectors (`CSR`) and late-interaction token vectors (`RaggedTokens`) are several plain
numeric `.npy` parts per shard (CSR: data / indices / indptr; tokens: one 2-D matrix of every token
vector of the shard + int64 offsets), and their sidecar, written last, lists each part's size and
sha256: the same "complete only when the sidecar agrees" rule, part by part.

Locks: the entry's `.lock` guards only its key and row order; each shard is claimed through its own
lock (`.locks/shard-NNNNNN.lock`).  Processes sharing an entry therefore split its shards between
them (a shard held elsewhere is skipped, then waited for and reused at the end), which is what lets
`gtr-eval encode --shard I/N` jobs, Ray tasks and concurrent runs fill one cache without writing a
shard twice.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import tempfile
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout

from .. import defaults
from .. import progress as bars
from ..artifacts import CacheRoot
from ..errors import Interrupted
from ..io import atomic_write_bytes, atomic_write_json, sha256_file

log = logging.getLogger(__name__)

Encoder = Callable[[list[str]], np.ndarray]
STORAGE_DTYPES = {"fp32": "float32", "fp16": "float16"}  # --cache-dtype -> numpy dtype of the shards


def queries_digest(qids: list[str], texts: list[str]) -> str:
    """What a query shard's cache key names: every (id, text) pair, in order."""
    return hashlib.sha256(
        "\0".join(f"{q}\t{t}" for q, t in zip(qids, texts, strict=True)).encode()
    ).hexdigest()


@dataclass
class EncodeStats:
    shards_total: int = 0
    shards_encoded: int = 0
    shards_reused: int = 0


class DenseFormat:
    """One `.npy` per shard (float32, or float16 storage; memory-mapped when read) and its sidecar
    `.json`, which names the dtype."""

    name = "dense"

    def __init__(self, dtype: str = "float32"):
        if dtype not in STORAGE_DTYPES.values():
            raise ValueError(f"storage dtype must be one of {sorted(STORAGE_DTYPES.values())}, not {dtype!r}")
        self.dtype = dtype

    def path(self, folder: Path, i: int) -> Path:
        return folder / f"shard-{i:06d}.npy"

    def rows(self, value) -> int:
        return len(value)

    def write(self, path: Path, value, start: int) -> None:
        _write_shard(path, value, start, self.dtype)

    def complete(self, path: Path, rows: int, start: int) -> bool:
        return _shard_complete(path, rows, start, self.dtype)

    def load(self, path: Path):
        return np.load(path, mmap_mode="r", allow_pickle=False)


class PartsFormat:
    """A shard as several plain numeric `.npy` parts, `shard-NNNNNN.<part>.npy`, named by a sidecar
    `shard-NNNNNN.json` written last that holds each part's dtype, shape, size and sha256."""

    name = "parts"

    def path(self, folder: Path, i: int) -> Path:
        return folder / f"shard-{i:06d}.json"

    def part_path(self, path: Path, part: str) -> Path:
        return path.with_name(f"{path.stem}.{part}.npy")

    def rows(self, value) -> int:
        raise NotImplementedError

    def parts(self, value) -> tuple[dict[str, np.ndarray], dict]:
        """The arrays to store and extra sidecar fields (e.g. `dim`)."""
        raise NotImplementedError

    def assemble(self, arrays: dict[str, np.ndarray], meta: dict):
        raise NotImplementedError

    def write(self, path: Path, value, start: int) -> None:
        arrays, extra = self.parts(value)
        meta = {"format": self.name, "rows": self.rows(value), "start": start, **extra, "parts": {}}
        for part, array in arrays.items():
            buf = io.BytesIO()
            np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
            data = buf.getvalue()
            atomic_write_bytes(self.part_path(path, part), data)
            meta["parts"][part] = {
                "dtype": str(array.dtype),
                "shape": list(array.shape),
                "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        atomic_write_json(path, meta)

    def complete(self, path: Path, rows: int, start: int) -> bool:
        try:
            meta = json.loads(path.read_text())
            if meta["format"] != self.name or meta["rows"] != rows or meta["start"] != start:
                return False
            for part, info in meta["parts"].items():
                file = self.part_path(path, part)
                if file.stat().st_size != info["bytes"] or sha256_file(file) != info["sha256"]:
                    return False
            return True
        except (OSError, ValueError, KeyError, TypeError):
            return False

    def load(self, path: Path):
        meta = json.loads(path.read_text())
        files = {part: self.part_path(path, part) for part in meta["parts"]}
        arrays = {part: np.load(file, mmap_mode="r", allow_pickle=False) for part, file in files.items()}
        return self.assemble(arrays, meta)

    def disk_bytes(self, path: Path) -> int:
        """Bytes of the shard's parts (what the index costs on disk, sidecar aside)."""
        return sum(info["bytes"] for info in json.loads(path.read_text())["parts"].values())


class CSRFormat(PartsFormat):
    """Learned sparse vectors: a scipy CSR matrix (rows x vocabulary) as data / indices / indptr."""

    name = "csr"

    def rows(self, value) -> int:
        return int(value.shape[0])

    def parts(self, value) -> tuple[dict[str, np.ndarray], dict]:
        value = value.tocsr()
        value.sort_indices()
        arrays = {
            "data": value.data.astype(np.float32, copy=False),
            "indices": value.indices.astype(np.int32, copy=False),
            "indptr": value.indptr.astype(np.int64, copy=False),
        }
        return arrays, {"dim": int(value.shape[1]), "nnz": int(value.nnz)}

    def assemble(self, arrays: dict[str, np.ndarray], meta: dict):
        import scipy.sparse as sp

        return sp.csr_matrix(
            (np.asarray(arrays["data"]), np.asarray(arrays["indices"]), np.asarray(arrays["indptr"])),
            shape=(meta["rows"], meta["dim"]),
        )


@dataclass
class RaggedTokens:
    """Token vectors of many texts: text i owns rows `offsets[i]:offsets[i + 1]` of `vectors`."""

    vectors: np.ndarray  # (total tokens, dim), float16 or float32; memory-mapped when read from a shard
    offsets: np.ndarray  # (texts + 1,), int64, offsets[0] == 0

    @classmethod
    def from_list(cls, items: list, dtype=np.float32) -> RaggedTokens:
        mats = [np.asarray(m, dtype=np.float32) for m in items]
        dim = mats[0].shape[1] if mats else 0
        offsets = np.zeros(len(mats) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(m) for m in mats])
        vectors = np.concatenate(mats).astype(dtype) if mats else np.zeros((0, dim), dtype)
        return cls(vectors, offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def item(self, i: int) -> np.ndarray:
        """Text i's token vectors, as float32."""
        return np.asarray(self.vectors[self.offsets[i] : self.offsets[i + 1]], dtype=np.float32)


class TokensFormat(PartsFormat):
    """Late-interaction token vectors: `tokens` (all vectors of the shard, `dtype`) + int64 `offsets`."""

    name = "tokens"

    def __init__(self, dtype: str = "float16"):
        self.dtype = np.dtype(dtype)

    def rows(self, value) -> int:
        return len(value)

    def parts(self, value) -> tuple[dict[str, np.ndarray], dict]:
        ragged = value if isinstance(value, RaggedTokens) else RaggedTokens.from_list(value, self.dtype)
        tokens = ragged.vectors.astype(self.dtype, copy=False)
        return {"tokens": tokens, "offsets": ragged.offsets.astype(np.int64)}, {"dim": int(tokens.shape[1])}

    def assemble(self, arrays: dict[str, np.ndarray], meta: dict):
        return RaggedTokens(arrays["tokens"], np.asarray(arrays["offsets"]))


DENSE = DenseFormat()
ShardFormat = DenseFormat | PartsFormat


@dataclass
class ShardedEmbeddings:
    """Embeddings of `order[r]`-th documents in row r, stored as shard files."""

    folder: Path
    order: np.ndarray
    shard_size: int
    shard_paths: list[Path]
    stats: EncodeStats = field(default_factory=EncodeStats)
    _tmp: tempfile.TemporaryDirectory | None = None
    complete: bool = True  # False when a `select`ed encode left shards to other jobs
    fmt: ShardFormat = DENSE

    def chunks(self) -> Iterator[tuple[int, Any]]:
        """(first row, rows as stored) per shard, memory-mapped where the format allows: search reads
        one shard at a time.  Dense rows are an array (float16 shards are upcast to float32 by
        `search._blocks`); CSR a scipy matrix; tokens `RaggedTokens`."""
        if not self.complete:
            raise RuntimeError(f"{self.folder}: some shards are still to be encoded by other jobs")
        for i, path in enumerate(self.shard_paths):
            yield i * self.shard_size, self.fmt.load(path)

    def matrix(self) -> np.ndarray:
        """All rows in document order (row i = document i), float32; loads everything into memory."""
        rows = np.concatenate([c for _, c in self.chunks()]) if self.shard_paths else np.zeros((0, 0))
        out = np.empty(rows.shape, dtype=np.float32)
        out[self.order] = rows
        return out

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def _shard_complete(npy: Path, rows: int, start: int, dtype: str = "float32") -> bool:
    meta_path = npy.with_suffix(".json")
    if not (npy.is_file() and meta_path.is_file()):
        return False
    try:
        meta = json.loads(meta_path.read_text())
        # `start`: a shard of another --shard-size may have the same row count.
        if meta["rows"] != rows or meta["start"] != start or meta["bytes"] != npy.stat().st_size:
            return False
        if meta["dtype"] != dtype:
            return False
        return meta["sha256"] == sha256_file(npy)
    except (OSError, ValueError, KeyError):
        return False


def _write_shard(npy: Path, array: np.ndarray, start: int, dtype: str = "float32") -> None:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array, dtype=dtype), allow_pickle=False)
    data = buf.getvalue()
    atomic_write_bytes(npy, data)
    meta = {"rows": int(array.shape[0]), "start": start, "dim": int(array.shape[1]), "dtype": dtype}
    meta |= {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    atomic_write_json(npy.with_suffix(".json"), meta)


ShardSelector = Callable[[int], bool]
BatchEncoder = Callable[[Iterator[list[str]]], Iterator[np.ndarray]]


def shard_selector(index: int, count: int) -> ShardSelector:
    """`--shard I/N`: this job encodes the shards whose number modulo N is I."""
    if not 0 <= index < count:
        raise ValueError(f"shard index must be in [0, {count}), not {index}")
    return lambda i: i % count == index


def encode_sharded(
    texts: Callable[[np.ndarray], list[str]],
    order: np.ndarray,
    encode: Encoder,
    key: dict,
    cache_dir: Path | None,
    shard_size: int = defaults.SHARD_SIZE,
    desc: str = "encode",
    progress: bool = True,
    select: ShardSelector | None = None,
    encode_many: BatchEncoder | None = None,
    folder: Path | None = None,
    fmt: ShardFormat = DENSE,
    storage_dtype: str | None = None,
    unit: str = "doc",
    what: str = "corpus",
) -> ShardedEmbeddings:
    """Encode `texts(order[a:b])` shard by shard, reusing complete shards from the cache.

    With `cache_dir=None` the shards go to a temporary folder removed by `close()`, so memory stays
    bounded by one shard even without a cache.  Texts are fetched one shard at a time.

    `select(i)` limits the work to some shards (`--shard I/N`: other jobs encode the rest); the result
    is then `complete` only when every shard exists.  `encode_many` maps an iterator of shard texts to
    their vectors in order (a process pool keeps several shards in flight); default `map(encode, ...)`.

    Each shard is claimed with its own file lock, so processes that share a cache folder split the
    work between them: a shard another process holds is skipped and checked again at the end.

    `fmt` says what the encoder returns and how a shard is stored (dense float32 by default;
    `DenseFormat("float16")`, `CSRFormat`, `TokensFormat`).  `storage_dtype` ("float32" or "float16")
    is shorthand for a dense format of that dtype; put it in `key` too (a shard whose sidecar names
    another dtype is not complete, so it is encoded again rather than misread).

    Progress counts `unit`s (docs, queries, pairs); shards found complete count as served from the
    cache.  Ctrl-C raises `errors.Interrupted` saying how many `what` shards are saved.
    """
    if storage_dtype is not None:
        fmt = DenseFormat(storage_dtype)
    tmp = None
    if folder is None and cache_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="gtr-eval-emb-")
        folder = Path(tmp.name)
    elif folder is None:
        folder = CacheRoot(Path(cache_dir)).entry("embeddings", key)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    n_shards = (len(order) + shard_size - 1) // shard_size
    paths = [fmt.path(folder, i) for i in range(n_shards)]
    stats = EncodeStats(shards_total=n_shards)
    with FileLock(str(folder / ".lock")):
        atomic_write_json(folder / "key.json", key)
        _check_order(folder, order)
    (folder / ".locks").mkdir(exist_ok=True)
    chosen = [i for i in range(n_shards) if select is None or select(i)]

    def rows(i: int) -> np.ndarray:
        return order[i * shard_size : (i + 1) * shard_size]

    def complete(i: int) -> bool:
        return fmt.complete(paths[i], len(rows(i)), i * shard_size)

    bar = bars.bar(sum(len(rows(i)) for i in chosen), desc, unit, enabled=progress)
    ticks = bars.ShardTicks(bar)  # the encoder's batch loop moves it per batch

    def claims() -> Iterator[tuple[int, FileLock]]:
        """Shards this process must encode, each yielded with its lock held."""
        busy: list[int] = []
        for i in chosen:
            lock = FileLock(str(folder / ".locks" / f"shard-{i:06d}.lock"))
            try:
                lock.acquire(timeout=0)
            except Timeout:
                busy.append(i)  # another process is encoding it
                continue
            if complete(i):
                lock.release()
                stats.shards_reused += 1
                bars.served(bar, len(rows(i)))
                continue
            yield i, lock
        for i in busy:
            lock = FileLock(str(folder / ".locks" / f"shard-{i:06d}.lock"))
            lock.acquire()
            if complete(i):
                lock.release()
                stats.shards_reused += 1
                bars.served(bar, len(rows(i)))
                continue
            yield i, lock  # its owner died: encode it here

    held: deque[tuple[int, FileLock]] = deque()

    def feed() -> Iterator[list[str]]:
        for i, lock in claims():
            held.append((i, lock))
            yield texts(rows(i))

    try:
        with bars.ticking(ticks):
            for vectors in (encode_many or (lambda it: map(encode, it)))(feed()):
                i, lock = held.popleft()
                if (n := fmt.rows(vectors)) != len(rows(i)):
                    raise RuntimeError(f"encoder returned {n} vectors for {len(rows(i))} texts")
                fmt.write(paths[i], vectors, i * shard_size)
                lock.release()
                stats.shards_encoded += 1
                ticks.done(n)
    except KeyboardInterrupt:
        saved = [i for i in chosen if complete(i)]
        raise Interrupted(
            saved=f"{len(saved)} of {len(chosen)} {what} shards saved ({sum(len(rows(i)) for i in saved):,} "
            f"of {sum(len(rows(i)) for i in chosen):,} {bars.plural(unit)})"
        ) from None
    finally:
        for _, lock in held:
            lock.release()
        bar.close()
    log.info(
        "%s: %d shards encoded, %d reused from %s", desc, stats.shards_encoded, stats.shards_reused, folder
    )
    emb = ShardedEmbeddings(folder, order, shard_size, paths, stats, tmp, fmt=fmt)
    mine = set(chosen)
    emb.complete = all(complete(i) for i in range(n_shards) if i not in mine)
    return emb


def read_complete(folder: Path, n_rows: int, shard_size: int) -> np.ndarray | None:
    """The rows of an entry written by `encode_sharded` with `order = arange(n_rows)`, if every
    shard is complete; else None (an entry still being filled, or cut short by a kill)."""
    n_shards = (n_rows + shard_size - 1) // shard_size
    parts = []
    for i in range(n_shards):
        npy = Path(folder) / f"shard-{i:06d}.npy"
        if not _shard_complete(npy, min(shard_size, n_rows - i * shard_size), i * shard_size):
            return None
        parts.append(np.load(npy, allow_pickle=False))
    return np.concatenate(parts) if parts else np.zeros((0, 1), dtype=np.float32)


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
