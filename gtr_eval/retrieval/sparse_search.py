"""Exact top-k for learned sparse vectors: an inverted index per block of documents.

Scores are dot products of sparse query and document vectors over the vocabulary (what
`SparseEncoder.similarity` computes).  Consecutive cache shards (CSR, documents x vocabulary) are
stacked into a block of at most `block_nnz` non-zeros and transposed, which makes the block's
inverted index (term -> postings).  `Q_group @ D_blockᵀ` with both sides CSR then walks, for each
query term, exactly that term's postings: the cost is the sum of the query terms' document
frequencies, as in an inverted-index engine, and the result holds only the (query, document) pairs
that share a term.  Queries are grouped so that one product walks at most `max_pairs` postings,
which bounds its result; each row's top-k is cut from its stored entries and merged into a running
top-k.  The full queries x corpus product is never formed.

A document sharing no term with a query gets no score and is not returned (as Lucene's impact
search, which Pyserini's SPLADE runs use, does not return it); so a query can have fewer than k
hits.  scipy drops products that sum to exactly 0, so a document whose overlap sums to 0 is treated
the same way (only possible for models with negative weights; SPLADE's are >= 0).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import scipy.sparse as sp

from .topk import RunningTopK, csr_row_top_k


def sparse_search(
    queries: sp.spmatrix,
    chunks: Iterable[tuple[int, sp.spmatrix]],
    top_k: int,
    block_nnz: int = 16_000_000,
    max_pairs: int = 24_000_000,
    stats: dict | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k over `chunks` of (first row index, CSR rows), by dot product.

    Returns (scores, indices), each (n_queries, top_k), best first; slots without a hit hold
    (-inf, -1).  Indices count rows across all chunks in the order given.  `max_pairs` bounds the
    postings one product walks (hence its result size, about 12 bytes per pair).  `stats`, if
    given, receives `pairs` (query-document pairs sharing a term: the whole product's non-zeros)
    and `postings` (postings walked).
    """
    q = sp.csr_matrix(queries, dtype=np.float32)
    q.sort_indices()
    pattern = sp.csr_matrix((np.ones_like(q.data), q.indices, q.indptr), shape=q.shape)
    top = RunningTopK(q.shape[0], top_k)
    pairs = postings = 0
    for start, block in _blocks(chunks, block_nnz, q.shape[1]):
        inverted = block.T.tocsr()  # vocabulary x documents: each row is one term's postings
        walk = pattern @ np.diff(inverted.indptr).astype(np.float64)  # postings each query walks
        postings += int(walk.sum())
        for group in _groups(walk, max_pairs):
            hits = q[group] @ inverted  # only (query, document) pairs sharing a term
            pairs += hits.nnz
            scores, cols = csr_row_top_k(hits, top.k)
            top.merge(scores, np.where(cols >= 0, cols + start, -1), group)
    if stats is not None:
        stats.update(pairs=pairs, postings=postings)
    return top.result()


def _groups(walk: np.ndarray, max_pairs: int) -> Iterator[slice]:
    """Consecutive query ranges whose postings add up to at most `max_pairs` (at least one query)."""
    start, total = 0, 0.0
    for i, w in enumerate(walk.tolist()):
        if i > start and total + w > max_pairs:
            yield slice(start, i)
            start, total = i, 0.0
        total += w
    if start < len(walk):
        yield slice(start, len(walk))


def _blocks(
    chunks: Iterable[tuple[int, sp.spmatrix]], block_nnz: int, vocab: int
) -> Iterator[tuple[int, sp.csr_matrix]]:
    """Consecutive chunks stacked into blocks of at most `block_nnz` non-zeros (at least one chunk)."""
    pending: list[sp.csr_matrix] = []
    start = nnz = 0
    expect = None
    for first, rows in chunks:
        rows = sp.csr_matrix(rows, dtype=np.float32)
        if rows.shape[1] != vocab:
            raise ValueError(f"document vectors have {rows.shape[1]} dimensions, queries {vocab}")
        if expect is not None and first != expect:
            raise ValueError("corpus chunks must be consecutive")
        expect = first + rows.shape[0]
        if pending and nnz + rows.nnz > block_nnz:
            yield start, _stack(pending)
            pending, nnz = [], 0
        if not pending:
            start = first
        pending.append(rows)
        nnz += rows.nnz
    if pending:
        yield start, _stack(pending)


def _stack(parts: list[sp.csr_matrix]) -> sp.csr_matrix:
    return parts[0] if len(parts) == 1 else sp.vstack(parts, format="csr", dtype=np.float32)


def coo_to_csr(x) -> sp.csr_matrix:
    """A torch sparse COO tensor (what `SparseEncoder.encode_*` returns) as scipy CSR, no densifying."""
    x = x.coalesce()
    i = x.indices().cpu().numpy()
    v = x.values().detach().cpu().float().numpy()
    m = sp.csr_matrix((v, (i[0], i[1])), shape=tuple(x.shape), dtype=np.float32)
    m.eliminate_zeros()
    m.sort_indices()
    return m
