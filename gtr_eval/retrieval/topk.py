"""A running top-k per query over score blocks (numpy), for the sparse and late-interaction searches.

Each block of (query rows x documents) scores is cut to its own top-k and merged into a fixed
(queries x k) buffer, so memory is the buffer plus one block, whatever the corpus size.  `-inf`
marks "no hit" (a document sharing no term with a sparse query, or a free slot) and never wins.
"""

from __future__ import annotations

import numpy as np


class RunningTopK:
    def __init__(self, n_queries: int, k: int):
        self.k = max(0, int(k))
        self.scores = np.full((n_queries, self.k), -np.inf, dtype=np.float32)
        self.indices = np.full((n_queries, self.k), -1, dtype=np.int64)

    def add(self, scores: np.ndarray, first: int, rows: slice = slice(None)) -> None:
        """Merge a block whose column j scores document `first + j` for the queries `rows`."""
        if self.k == 0 or scores.shape[1] == 0:
            return
        scores = np.nan_to_num(scores, nan=-np.inf, posinf=np.inf, neginf=-np.inf)
        cols = _top_columns(scores, self.k)
        self.merge(np.take_along_axis(scores, cols, 1), cols + first, rows)

    def merge(self, scores: np.ndarray, indices: np.ndarray, rows: slice | np.ndarray = slice(None)) -> None:
        """Merge candidate (scores, document indices) of the queries `rows`, any number per row."""
        if self.k == 0 or scores.shape[1] == 0:
            return
        s = np.concatenate([self.scores[rows], scores], axis=1)
        i = np.concatenate([self.indices[rows], indices], axis=1)
        keep = _top_columns(s, self.k)
        self.scores[rows] = np.take_along_axis(s, keep, 1)
        self.indices[rows] = np.take_along_axis(i, keep, 1)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(scores, indices), best first; unfilled slots are (-inf, -1)."""
        order = np.argsort(-self.scores, axis=1, kind="stable")
        return np.take_along_axis(self.scores, order, 1), np.take_along_axis(self.indices, order, 1)


def _top_columns(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of each row's k largest values (unordered); all columns when there are <= k."""
    n = scores.shape[1]
    if n <= k:
        return np.broadcast_to(np.arange(n), scores.shape).copy()
    return np.argpartition(-scores, k - 1, axis=1)[:, :k]


def csr_row_top_k(hits, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k largest stored entries of a CSR matrix: (scores, columns), (rows x k), unordered,
    padded with (-inf, -1).  Costs the row's stored entries only, not its full width."""
    n = hits.shape[0]
    scores = np.full((n, k), -np.inf, dtype=np.float32)
    cols = np.full((n, k), -1, dtype=np.int64)
    indptr, data, indices = hits.indptr, hits.data, hits.indices
    for r in range(n):
        a, b = indptr[r], indptr[r + 1]
        if b - a > k:
            sel = a + np.argpartition(-data[a:b], k - 1)[:k]
        else:
            sel = np.arange(a, b)
        scores[r, : len(sel)] = data[sel]
        cols[r, : len(sel)] = indices[sel]
    return scores, cols
