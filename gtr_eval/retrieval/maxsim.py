"""Exact late-interaction (MaxSim) scoring over token-vector shards.

score(q, d) = Σ over q's token vectors of the max over d's token vectors of their dot product, as
`MultiVectorEncoder.similarity` (`util.maxsim`) computes it.  Token vectors are stored as float16
(or float32) and scored in float32.

Two searches, each reading the corpus one shard at a time (memory: one shard, upcast, plus one
score block):

* `maxsim_full`: every query against every document.  Per shard and block of queries, one matrix
  product (query tokens x all token vectors of the shard) followed by a segmented max over each
  document's token range (`np.maximum.reduceat`), then the sum over query tokens; a running top-k
  keeps the best.  Cost grows with queries x corpus tokens: for small corpora.
* `maxsim_rerank`: only the (query, candidate) pairs of a first-stage run (two-stage ColBERT).

Queries of different lengths are padded with zero vectors, which add exactly 0 to every score.
A document with no token vector (everything masked out) cannot be scored and is never returned.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from .cache import RaggedTokens
from .topk import RunningTopK


def padded_queries(queries: RaggedTokens) -> tuple[np.ndarray, np.ndarray]:
    """(queries, max tokens, dim) float32 with zero padding, and each query's token count."""
    lengths = queries.lengths()
    dim = queries.vectors.shape[1]
    out = np.zeros((len(queries), int(lengths.max(initial=0)), dim), dtype=np.float32)
    for i in range(len(queries)):
        out[i, : lengths[i]] = queries.item(i)
    return out, lengths


def _dots(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b.T in float32.  torch's CPU matmul: numpy's OpenBLAS ran this wide product (query
    vectors x all token vectors of a shard) several times slower on the benchmark machine."""
    return torch.mm(torch.from_numpy(a), torch.from_numpy(b).T).numpy()


def _float32(x: np.ndarray) -> np.ndarray:
    """An in-memory, writable, C-ordered float32 copy (shards are read-only memory maps)."""
    return np.require(x, dtype=np.float32, requirements=["C", "W"])


def _segment_max(scores: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Max of `scores` (rows x tokens) over each document's token range: (rows x scorable docs),
    and which documents (those with at least one token) the columns are."""
    scorable = np.flatnonzero(np.diff(offsets) > 0)
    if len(scorable) == 0:
        return np.zeros((scores.shape[0], 0), np.float32), scorable
    return np.maximum.reduceat(scores, offsets[scorable], axis=1), scorable


def maxsim_full(
    queries: RaggedTokens,
    chunks: Iterable[tuple[int, RaggedTokens]],
    top_k: int,
    normalize_by_length: bool = False,
    score_block_bytes: int = 256 << 20,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact MaxSim top-k of every query over every document of `chunks` ((first row, tokens)).

    Returns (scores, indices), (n_queries, top_k), best first; unfilled slots are (-inf, -1).
    `normalize_by_length` divides by the query's token count (`meanmaxsim`).
    """
    q, q_len = padded_queries(queries)
    n_q, q_tokens, dim = q.shape
    top = RunningTopK(n_q, top_k)
    scale = 1.0 / np.maximum(q_len, 1) if normalize_by_length else None
    for start, shard in chunks:
        tokens = _float32(shard.vectors)  # upcast the whole shard once
        offsets = np.asarray(shard.offsets, dtype=np.int64)
        n_docs = len(offsets) - 1
        if tokens.shape[0] and tokens.shape[1] != dim:
            raise ValueError(f"document token vectors have {tokens.shape[1]} dimensions, queries {dim}")
        step = max(1, score_block_bytes // max(1, 4 * q_tokens * max(1, tokens.shape[0])))
        for q0 in range(0, n_q, step):
            block = q[q0 : q0 + step]
            sims = _dots(block.reshape(-1, dim), tokens)  # (queries x query tokens) x shard tokens
            best, scorable = _segment_max(sims, offsets)
            del sims
            scores = np.full((len(block), n_docs), -np.inf, dtype=np.float32)
            scores[:, scorable] = best.reshape(len(block), q_tokens, -1).sum(axis=1)
            if scale is not None:
                scores *= scale[q0 : q0 + step, None].astype(np.float32)
            top.add(scores, start, slice(q0, q0 + step))
        del tokens
    return top.result()


def maxsim_rerank(
    queries: RaggedTokens,
    chunks: Iterable[tuple[int, RaggedTokens]],
    candidates: list[np.ndarray],
    normalize_by_length: bool = False,
) -> list[dict[int, float]]:
    """Exact MaxSim of each query with its candidate rows only; `candidates[i]` holds row indices
    (counted across the chunks) for query i.  Returns, per query, {row: score}."""
    q, q_len = padded_queries(queries)
    dim = q.shape[2]
    qi = np.concatenate(
        [np.full(len(c), i, np.int64) for i, c in enumerate(candidates)] or [np.zeros(0, np.int64)]
    )
    rows = np.concatenate([np.asarray(c, np.int64) for c in candidates] or [np.zeros(0, np.int64)])
    by_row = np.argsort(rows, kind="stable")
    qi, rows = qi[by_row], rows[by_row]
    out: list[dict[int, float]] = [{} for _ in candidates]
    for start, shard in chunks:
        n_docs = len(shard)
        lo, hi = np.searchsorted(rows, [start, start + n_docs])
        if lo == hi:
            continue
        s_q, s_rows = qi[lo:hi], rows[lo:hi] - start
        lengths = shard.lengths()
        by_query = np.argsort(s_q, kind="stable")
        s_q, s_rows = s_q[by_query], s_rows[by_query]
        bounds = np.flatnonzero(np.diff(s_q)) + 1
        for group_q, group_rows in zip(np.split(s_q, bounds), np.split(s_rows, bounds), strict=True):
            query = int(group_q[0])
            group_rows = group_rows[lengths[group_rows] > 0]  # a document without tokens: no score
            if len(group_rows) == 0:
                continue
            tokens, offsets = _gather(shard, group_rows)
            if tokens.shape[1] != dim:
                raise ValueError(f"document token vectors have {tokens.shape[1]} dimensions, queries {dim}")
            best = np.maximum.reduceat(_dots(q[query], tokens), offsets[:-1], axis=1)
            scores = best.sum(axis=0)
            if normalize_by_length:
                scores = scores / np.float32(max(int(q_len[query]), 1))
            out[query].update(zip((group_rows + start).tolist(), scores.tolist(), strict=True))
    return out


def _gather(shard: RaggedTokens, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The token vectors of `rows` (float32, concatenated) and their offsets."""
    starts, lengths = shard.offsets[rows], shard.lengths()[rows]
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(lengths)
    index = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
    return _float32(shard.vectors[index]), offsets
