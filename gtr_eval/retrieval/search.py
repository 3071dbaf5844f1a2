"""Exact (brute-force) top-k search over corpus chunks.

Memory stays bounded by one corpus block plus a (query block x corpus block) score block: the full
queries x corpus matrix is never formed, and the corpus is never loaded whole, so a 10k x 8.8M
search needs little more than a 50k-document search does.  Small cache shards are copied into one
block of at most `corpus_block_bytes` (512 MiB; 20% faster than 128 MiB at 1M x 384, top-1000)
before scoring: fewer, larger matrix products and merges.  A running top-k per query is merged
after each block.  Measured at 1M x 384 with 10k queries, top-1000: peak RSS 1.6 GB for a 1.5 GB
matrix, against 3.4 GB for FAISS IndexFlatIP over the loaded matrix, in the same time.

Two kernels give the same result (up to the rounding of near-ties): `torch` (matmul + topk) and
`faiss` (`faiss.knn`: its BLAS matmul + heap k-selection per block).  `benchmarks/bench_search.py`
measures both: for top-1000 faiss was 1.7x faster on the AMD EPYC benchmark machine, torch 1.7x
faster on the Intel Xeon (torch's CPU matmul is MKL's, fast on Intel CPUs only; see `hardware`), so
`kernel="auto"` uses torch on GPUs and Intel CPUs, and faiss on other CPUs when it is installed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import torch

from .hardware import torch_fastest_on_cpu

SCORE_FUNCTIONS = ("dot", "cos")
KERNELS = ("auto", "torch", "faiss")


def _normalize(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x, p=2, dim=1)


def _blocks(chunks: Iterable[tuple[int, np.ndarray]], max_rows: int) -> Iterator[tuple[int, torch.Tensor]]:
    """Consecutive chunks copied into float32 blocks of at most `max_rows` rows (one reused buffer).

    The copy is also the upcast of float16 cache shards (`--cache-dtype fp16`): scores are computed
    in float32 only, since half-precision products round nearby scores onto one value (spurious ties).
    """
    buf: torch.Tensor | None = None
    start, fill = 0, 0
    for first, rows in chunks:
        rows = np.asarray(rows)
        if rows.ndim != 2:
            raise ValueError(f"corpus chunks must be 2-d, got shape {rows.shape}")
        if buf is None:
            buf = torch.empty((max(max_rows, 1), rows.shape[1]), dtype=torch.float32)
        pos = 0
        while pos < len(rows):
            if fill == 0:
                start = first + pos
            elif first + pos != start + fill:
                raise ValueError("corpus chunks must be consecutive")
            take = min(len(rows) - pos, len(buf) - fill)
            # copy out of the (read-only, memory-mapped) shard; its pages are dropped afterwards
            buf[fill : fill + take] = torch.from_numpy(np.array(rows[pos : pos + take], dtype=np.float32))
            fill += take
            pos += take
            if fill == len(buf):
                yield start, buf
                fill = 0
        del rows
    if buf is not None and fill:
        yield start, buf[:fill]


def exact_search(
    queries: np.ndarray,
    chunks: Iterable[tuple[int, np.ndarray]],
    top_k: int,
    score: str = "dot",
    block_bytes: int = 256 << 20,
    device: str = "cpu",
    corpus_block_bytes: int = 512 << 20,
    kernel: str = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k over `chunks` of (first row index, rows).

    Returns (scores, indices), each (n_queries, k) with k = min(top_k, corpus size), best first.
    Indices count rows across all chunks in the order given.  `block_bytes` caps the score block,
    `corpus_block_bytes` the corpus block.
    """
    if score not in SCORE_FUNCTIONS:
        raise ValueError(f"score must be one of {SCORE_FUNCTIONS}, not {score!r}")
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, not {kernel!r}")
    if kernel == "auto":
        kernel = auto_kernel(device)
    q = torch.as_tensor(np.ascontiguousarray(queries, dtype=np.float32), device=device)
    if score == "cos":
        q = _normalize(q)
    n_q, dim = q.shape
    max_rows = max(1, corpus_block_bytes // max(1, 4 * dim))
    best_s = torch.full((n_q, 0), -torch.inf, device=device)
    best_i = torch.zeros((n_q, 0), dtype=torch.int64, device=device)
    for start, block in _blocks(chunks, max_rows):
        d = block.to(device)
        if score == "cos":
            d = _normalize(d)
        k = min(top_k, d.shape[0])
        if kernel == "faiss":
            new_s, new_i = _faiss_topk(q, d, k)
        else:
            new_s, new_i = _torch_topk(q, d, k, block_bytes)
        best_s, best_i = _merge(best_s, best_i, new_s, new_i + start, top_k)
    return best_s.cpu().numpy(), best_i.cpu().numpy()


def auto_kernel(device: str = "cpu") -> str:
    """The faster kernel on `device` (see the module docstring)."""
    cpu = str(device).startswith("cpu")
    return "faiss" if cpu and _has_faiss() and not torch_fastest_on_cpu() else "torch"


def _has_faiss() -> bool:
    import importlib.util

    return importlib.util.find_spec("faiss") is not None


def _torch_topk(q: torch.Tensor, d: torch.Tensor, k: int, block_bytes: int):
    block = max(1, block_bytes // max(1, 4 * d.shape[0]))
    out_s = torch.empty((q.shape[0], k), dtype=torch.float32, device=q.device)
    out_i = torch.empty((q.shape[0], k), dtype=torch.int64, device=q.device)
    for qs in range(0, q.shape[0], block):
        s = q[qs : qs + block] @ d.T
        s.nan_to_num_(nan=-1.0)
        torch.topk(s, k, dim=1, sorted=False, out=(out_s[qs : qs + block], out_i[qs : qs + block]))
        del s
    return out_s, out_i


def _faiss_topk(q: torch.Tensor, d: torch.Tensor, k: int):
    import faiss

    s, i = faiss.knn(q.cpu().numpy(), d.cpu().numpy(), k, metric=faiss.METRIC_INNER_PRODUCT)
    s = np.nan_to_num(s, nan=-1.0)
    return torch.from_numpy(s), torch.from_numpy(i)


def _merge(a_s, a_i, b_s, b_i, top_k: int):
    s = torch.cat([a_s, b_s], dim=1)
    i = torch.cat([a_i, b_i], dim=1)
    k = min(top_k, s.shape[1])
    vs, pos = torch.topk(s, k, dim=1)
    return vs, torch.gather(i, 1, pos)


def array_chunks(matrix: np.ndarray, chunk_rows: int = 50_000) -> Iterator[tuple[int, np.ndarray]]:
    """Chunks of an in-memory or memory-mapped matrix."""
    for start in range(0, len(matrix), chunk_rows):
        yield start, matrix[start : start + chunk_rows]
