"""Learned sparse retrieval (SPLADE and any sentence-transformers `SparseEncoder`).

Documents are encoded once into CSR cache shards (documents x vocabulary; data / indices / indptr
`.npy` parts, never pickled); search is exact, by dot product, over an inverted index built per
block of shards (`sparse_search`).  The manifest and the run's `[index]` line report the index
size on disk and the average number of non-zeros per document and per query.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np

from .base import Run
from .cache import CSRFormat
from .encoded import EncodedConfig, EncodedRetriever, ranked_run
from .models import load_sparse_encoder
from .sparse_search import coo_to_csr, sparse_search


@dataclass
class SparseConfig(EncodedConfig):
    pass


class SparseRetriever(EncodedRetriever):
    family = "sparse"
    doc_format = CSRFormat()
    query_format = CSRFormat()

    def __init__(self, config: SparseConfig, cache_dir=None, progress: bool = True):
        super().__init__(config, cache_dir, progress)
        self.index_stats: dict = {}

    def _load(self):
        c = self.config
        model = load_sparse_encoder(self.source.path, c.device, c.dtype, self.max_length, c.trust_remote_code)
        if model.similarity_fn_name not in ("dot", "cosine"):
            raise ValueError(
                f"{self.name}: similarity {model.similarity_fn_name!r} is not supported for sparse search "
                "(dot or cosine)"
            )
        self.max_length = model.max_seq_length
        return model

    def model_settings(self) -> dict:
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
            prompt=self._prompt(task),
            batch_size=self.batch_size,
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

    def search(self, queries: dict[str, str], top_k: int) -> Run:
        emb = self._corpus()
        if not queries:
            return {}
        q = self.encode_queries(queries)
        t0 = time.perf_counter()
        scores, rows = sparse_search(q, emb.chunks(), top_k)
        run = ranked_run(list(queries), self._doc_ids, scores, rows, emb.order)
        self.timings["search_s"] = time.perf_counter() - t0
        self.index_stats = self._index_stats(q.nnz / max(1, q.shape[0]))
        return run

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

    def manifest(self) -> dict:
        return {**super().manifest(), "score": "dot", "index": self.index_stats}
