"""Exact (brute-force) top-k search over corpus chunks.

Memory stays bounded by one corpus chunk plus a (query block x chunk) score block: the full
queries x corpus matrix is never formed, so a 10k x 8.8M search needs no more than a 50k-document
search does.  A running top-k per query is merged after each chunk.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import torch

SCORE_FUNCTIONS = ("dot", "cos")


def _normalize(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x, p=2, dim=1)


def exact_search(
    queries: np.ndarray,
    chunks: Iterable[tuple[int, np.ndarray]],
    top_k: int,
    score: str = "dot",
    block_bytes: int = 256 << 20,
    device: str = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k over `chunks` of (first row index, rows).

    Returns (scores, indices), each (n_queries, k) with k = min(top_k, corpus size), best first.
    Indices count rows across all chunks in the order given.  `block_bytes` caps the score block.
    """
    if score not in SCORE_FUNCTIONS:
        raise ValueError(f"score must be one of {SCORE_FUNCTIONS}, not {score!r}")
    q = torch.as_tensor(np.ascontiguousarray(queries, dtype=np.float32), device=device)
    if score == "cos":
        q = _normalize(q)
    n_q = q.shape[0]
    best_s = torch.full((n_q, 0), -torch.inf, device=device)
    best_i = torch.zeros((n_q, 0), dtype=torch.int64, device=device)
    for start, rows in chunks:
        d = torch.as_tensor(
            np.array(rows, dtype=np.float32), device=device
        )  # copy: shards are read-only memmaps
        if score == "cos":
            d = _normalize(d)
        block = max(1, block_bytes // max(1, 4 * d.shape[0]))
        new_s, new_i = [], []
        for qs in range(0, n_q, block):
            s = q[qs : qs + block] @ d.T
            s.nan_to_num_(nan=-1.0)
            k = min(top_k, s.shape[1])
            vs, ix = torch.topk(s, k, dim=1)
            new_s.append(vs)
            new_i.append(ix + start)
        best_s, best_i = _merge(best_s, best_i, torch.cat(new_s), torch.cat(new_i), top_k)
    return best_s.cpu().numpy(), best_i.cpu().numpy()


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
