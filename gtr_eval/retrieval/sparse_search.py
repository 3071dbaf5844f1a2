"""Exact top-k for learned sparse vectors: an inverted index per block of documents.

Scores are dot products of sparse query and document vectors over the vocabulary (what
`SparseEncoder.similarity` computes).  Consecutive cache shards (CSR, documents x vocabulary) are
stacked into a block of at most `block_nnz` non-zeros and transposed, which makes the block's
inverted index (term -> postings).  `Q_block @ D_blockᵀ` with both sides CSR then walks, for each
query term, exactly that term's postings: the cost is the sum of the query terms' document
frequencies, as in an inverted-index engine.  The result is scattered into a (query block x
document block) score block (bounded by `score_block_bytes`), cut to its top-k and merged into a
running top-k.  The full queries x corpus matrix is never formed.

A document sharing no term with a query gets no score and is not returned (as Lucene's impact
search, which Pyserini's SPLADE runs use, does not return it); so a query can have fewer than k
hits.  scipy drops products that sum to exactly 0, so a document whose overlap sums to 0 is treated
the same way (only possible for models with negative weights; SPLADE's are >= 0).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import scipy.sparse as sp

from .topk import RunningTopK


def sparse_search(
    queries: sp.spmatrix,
    chunks: Iterable[tuple[int, sp.spmatrix]],
    top_k: int,
    block_nnz: int = 16_000_000,
    score_block_bytes: int = 256 << 20,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k over `chunks` of (first row index, CSR rows), by dot product.

    Returns (scores, indices), each (n_queries, top_k), best first; slots without a hit hold
    (-inf, -1).  Indices count rows across all chunks in the order given.
    """
    q = sp.csr_matrix(queries, dtype=np.float32)
    q.sort_indices()
    top = RunningTopK(q.shape[0], top_k)
    for start, block in _blocks(chunks, block_nnz, q.shape[1]):
        inverted = block.T.tocsr()  # vocabulary x documents: each row is one term's postings
        n_docs = block.shape[0]
        q_rows = max(1, score_block_bytes // (8 * max(1, n_docs)))
        for q0 in range(0, q.shape[0], q_rows):
            hits = q[q0 : q0 + q_rows] @ inverted  # only (query, document) pairs sharing a term
            top.add(_scatter(hits, n_docs), start, slice(q0, q0 + q_rows))
    return top.result()


def _scatter(hits: sp.csr_matrix, n_docs: int) -> np.ndarray:
    """A sparse score block as a dense one with -inf where a document shares no term."""
    block = np.full((hits.shape[0], n_docs), -np.inf, dtype=np.float32)
    rows = np.repeat(np.arange(hits.shape[0]), np.diff(hits.indptr))
    block[rows, hits.indices] = hits.data
    return block


def _blocks(chunks: Iterable[tuple[int, sp.spmatrix]], block_nnz: int, vocab: int) -> Iterator[tuple[int, sp.csr_matrix]]:
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
