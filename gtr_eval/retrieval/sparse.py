"""Learned sparse retrieval (SPLADE and any sentence-transformers `SparseEncoder`).

Documents are encoded once into CSR cache shards (documents x vocabulary; data / indices / indptr
`.npy` parts, never pickled); search is exact, by dot product, over an inverted index built per
block of shards (`sparse_search`).  The manifest and the run's `[index]` line report the index
size on disk and the average number of non-zeros per document and per query.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace

import numpy as np

from ..artifacts import CacheRoot
from ..errors import ModelError
from .base import Searched
from .cache import CSRFormat
from .encoded import EncodedConfig, EncodedRetriever, EncodedSpec, model_fields, run_fields
from .loaders import load_sparse_encoder
from .models import resolve_model
from .sparse_search import coo_to_csr, sparse_search
from .weights import weights_fingerprint


@dataclass
class SparseConfig(EncodedConfig):
    pass


@dataclass(frozen=True, kw_only=True)
class SparseSpec(EncodedSpec):
    retriever: str = "sparse"
    score: str = "dot"


def resolve_sparse(c: EncodedConfig, cache: CacheRoot | None = None) -> SparseSpec:
    """The spec of a learned sparse system: `max_length` caps queries and documents alike; prompts
    left None are the model's own."""
    source = resolve_model(c.model, c.revision)
    preset = source.preset
    weights = weights_fingerprint(source.path, cache)
    max_length = c.max_length or (preset.max_length if preset else None)
    return SparseSpec(
        system=c.name or source.name,
        **model_fields(source, weights, c.model),
        query_weights_sha256=weights,
        query_prompt=c.query_prompt,
        doc_prompt=c.doc_prompt,
        max_length=max_length,
        query_max_length=max_length,
        **run_fields(c, preset, 32),
    )


class SparseRetriever(EncodedRetriever):
    doc_format = CSRFormat()
    query_format = CSRFormat()

    def __init__(self, spec: SparseSpec | EncodedConfig, cache_dir=None, progress: bool | None = None):
        """From its spec; given what was asked instead (a `SparseConfig`), it is resolved first."""
        spec = resolve_sparse(spec) if isinstance(spec, EncodedConfig) else spec
        super().__init__(spec if progress is None else replace(spec, progress=progress), cache_dir)

    def _load(self):
        s = self.spec
        model = load_sparse_encoder(s.model_path, s.device, s.dtype, s.max_length, s.trust_remote_code)
        if model.similarity_fn_name not in ("dot", "cosine"):
            raise ModelError(
                f"{self.name}: similarity {model.similarity_fn_name!r} is not supported for sparse search "
                "(dot or cosine)"
            )
        return model

    def model_settings(self) -> dict:
        """The loaded model's settings (fixed by its files and the spec; for the record)."""
        m = self.model
        return {
            "max_seq_length": m.max_seq_length,
            "prompts": dict(m.prompts),
            "similarity": m.similarity_fn_name,
            "max_active_dims": m.max_active_dims,
        }

    def _encode(self, texts: list[str], task: str):
        method = self.model.encode_query if task == "query" else self.model.encode_document
        x = method(
            texts,
            prompt=self.spec.query_prompt if task == "query" else self.spec.doc_prompt,
            batch_size=self.spec.batch_size,
            convert_to_tensor=True,
            convert_to_sparse_tensor=True,
            save_to_cpu=True,
            show_progress_bar=False,
        )
        m = coo_to_csr(x)
        if self.model.similarity_fn_name == "cosine":  # unit rows: the dot product is the cosine
            norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
            m = (m.multiply(1.0 / np.maximum(norms, 1e-12)[:, None])).tocsr().astype(np.float32)
        return m

    def search(self, queries: dict[str, str], top_k: int) -> Searched:
        emb = self._corpus()
        if not queries:
            return Searched({}, self._report({}))
        t0 = time.perf_counter()
        q = self.encode_queries(queries)
        t1 = time.perf_counter()
        scores, rows = sparse_search(q, emb.chunks(), top_k)
        run = self._ranked(list(queries), scores, rows)
        stats = {"index": self._index_stats(q.nnz / max(1, q.shape[0]))}
        if self._model is not None:
            stats["model_settings"] = self.model_settings()
        return Searched(
            run, self._report({"encode_queries_s": t1 - t0, "search_s": time.perf_counter() - t1}, stats)
        )

    def _index_stats(self, query_nnz: float) -> dict:
        emb = self._corpus()
        nnz = sum(json.loads(p.read_text())["nnz"] for p in emb.shard_paths)
        return {
            "index_bytes": self.index_bytes(),
            "docs": len(emb.order),
            "nnz": nnz,
            "avg_nnz_per_doc": round(nnz / max(1, len(emb.order)), 2),
            "avg_nnz_per_query": round(query_nnz, 2),
        }
