"""The only place that names a private attribute of a dependency, each one behind a small function.

Our BM25 index is bm25s' own file format, written by hand (`retrieval.bm25_index`), and its scores must
be bit-identical to bm25s': so we call bm25s' own score functions, which it does not export.  Our top-k
search adds postings with scipy's CSC kernel in place, which scipy keeps private.  PyLate checkpoints
spell their projection in a way sentence-transformers does not resolve by itself.  No public API gives
these; each shim below says why it exists, for which versions it was written, and what replaces it
when the private name goes.  `tests/test_compat.py` checks each one still behaves as relied on, and
that no other module of the package names these attributes.

Versions: bm25s 0.3 (pinned in pyproject.toml to its tested minor release, 0.3.16), scipy 1.17,
sentence-transformers 6.2 and 6.3.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

# --- bm25s --------------------------------------------------------------------------------------
# bm25s 0.3 builds its index from `bm25s.scoring._select_tfc_scorer(method)` (the term-frequency part
# of a score), `_select_idf_scorer(method)` and, for bm25l/bm25+, `_build_nonoccurrence_array`.  Our
# streamed builder computes the same float32 values with the same functions, so the index it writes
# scores exactly as one `bm25s.BM25.index` writes.


def bm25s_tfc_scorer(method: str) -> Callable:
    """bm25s' term-frequency component for `method`: f(tf_array, l_d, l_avg, k1, b, delta)."""
    from bm25s.scoring import _select_tfc_scorer

    return _select_tfc_scorer(method)


def bm25s_idf_scorer(method: str) -> Callable:
    """bm25s' inverse document frequency for `method`: f(df, N) -> float."""
    from bm25s.scoring import _select_idf_scorer

    return _select_idf_scorer(method)


def bm25s_nonoccurrence(
    df: np.ndarray, n_docs: int, method: str, avg_doc_len: float, k1, b, delta
) -> np.ndarray:
    """bm25s' per-term score of a term a document lacks (bm25l, bm25+), float32, by term id."""
    from bm25s.scoring import _build_nonoccurrence_array

    return _build_nonoccurrence_array(
        dict(enumerate(df.tolist())), n_docs, bm25s_idf_scorer(method), bm25s_tfc_scorer(method),
        avg_doc_len, avg_doc_len, k1, b, delta,
    )  # fmt: skip


# --- scipy --------------------------------------------------------------------------------------
# `scipy.sparse._sparsetools.csc_matvec` (scipy 1.x) adds a CSC matrix times a vector INTO an output
# buffer; the public `csc_array @ x` allocates a new vector of the output's length per call, which per
# query token is several times the work.  When it is gone, `None`: the caller adds with `np.add.at`
# (the same float32 sums, about twice the time).


def csc_matvec() -> Callable | None:
    """scipy's in-place kernel f(n_row, n_col, indptr, indices, data, x, y): y += A @ x; None if gone."""
    try:
        from scipy.sparse import _sparsetools
    except ImportError:  # pragma: no cover - scipy moved its private kernels
        return None
    return getattr(_sparsetools, "csc_matvec", None)


# --- sentence-transformers ----------------------------------------------------------------------
# lightonai's PyLate saves name their projection `pylate.models.Dense` in modules.json.
# sentence-transformers 6.2-6.3 rewrites only `pylate.models.Dense.Dense` to its own Dense module (a
# module-level table, `_CLASS_REF_ALIASES`), through two overridable methods of the model class.  A
# subclass maps the short spelling to the long one for its own instances, so nothing is changed for
# the rest of the process; once sentence-transformers knows the spelling, the mapping is a no-op.

PYLATE_CLASS_REFS = {"pylate.models.Dense": "pylate.models.Dense.Dense"}


@functools.cache
def multivector_encoder_class() -> type:
    """sentence-transformers' MultiVectorEncoder, resolving PyLate's spellings of its module classes."""
    from sentence_transformers import MultiVectorEncoder

    class PyLateMultiVectorEncoder(MultiVectorEncoder):
        def _load_module_class_from_ref(self, class_ref: str, *args, **kwargs):
            return super()._load_module_class_from_ref(
                PYLATE_CLASS_REFS.get(class_ref, class_ref), *args, **kwargs
            )

        def _get_module_init_defaults(self, class_ref: str):
            return super()._get_module_init_defaults(PYLATE_CLASS_REFS.get(class_ref, class_ref))

    PyLateMultiVectorEncoder.__name__ = PyLateMultiVectorEncoder.__qualname__ = "MultiVectorEncoder"
    return PyLateMultiVectorEncoder
