"""What the learned sparse and the late-interaction retrievers share: a model resolved like any
other (preset, hub id or folder), its corpus encoded once into the sharded cache in the family's
own shard format, queries encoded (and cached) the same way, and a manifest that says all of it.

The dense retriever predates this base and keeps its own code path (ONNX backends, worker pools);
the two families here run sentence-transformers' `SparseEncoder` / `MultiVectorEncoder` in-process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data.loader import Corpus
from .base import TEXT_FORMAT, Retriever, Run
from .cache import PartsFormat, ShardedEmbeddings, ShardSelector, encode_sharded, queries_digest
from .models import resolve_model, weights_fingerprint


@dataclass
class EncodedConfig:
    """Settings of a sparse or late-interaction model run; `None` means the preset's, else the model's."""

    model: str
    revision: str | None = None
    # Sparse: tokens per query and per document.  Late interaction: tokens per document (a ColBERT
    # query is always padded/truncated to the checkpoint's query length).
    max_length: int | None = None
    batch_size: int | None = None
    device: str | None = None
    dtype: str = "fp32"
    trust_remote_code: bool = False
    shard_size: int = 2048
    name: str | None = None
    query_prompt: str | None = None  # None: the model's own prompt (ColBERT: its [Q] marker)
    doc_prompt: str | None = None


class EncodedRetriever(Retriever):
    """Encode the corpus into cache shards of `doc_format`, queries into one shard of `query_format`."""

    family: str
    doc_format: PartsFormat
    query_format: PartsFormat
    backend = "torch"  # these families encode with the sentence-transformers model itself

    def settle_backend(self) -> None:
        """Nothing to settle: `auto` is torch here (the dense retriever's hook, for `encode --ray`)."""

    def __init__(self, config: EncodedConfig, cache_dir: Path | None = None, progress: bool = True):
        t0 = time.perf_counter()
        self.config = config
        self.cache_dir = cache_dir
        self.progress = progress
        self.timings: dict[str, float] = {}
        self.stats: dict[str, int] = {}
        self.source = resolve_model(config.model, config.revision)
        self.name = config.name or self.source.name
        preset = self.source.preset
        self.batch_size = config.batch_size or (preset.batch_size if preset else 32)
        self.max_length = config.max_length or (preset.max_length if preset else None)
        self.fingerprint = weights_fingerprint(self.source.path)
        self._model = None
        self._emb: ShardedEmbeddings | None = None
        self._doc_ids: list[str] = []
        self.timings["resolve_s"] = time.perf_counter() - t0

    # ----------------------------------------------------------------------------- the family's part

    def _load(self):
        """Load the model (once); apply `max_length`."""
        raise NotImplementedError

    def _encode(self, texts: list[str], task: str):
        """Encode texts for `task` ("query" or "document") into what the shard format stores."""
        raise NotImplementedError

    def model_settings(self) -> dict[str, Any]:
        """The loaded model's settings that change its vectors (lengths, prompts, markers, similarity)."""
        raise NotImplementedError

    # ---------------------------------------------------------------------------------- shared part

    @property
    def model(self):
        if self._model is None:
            t0 = time.perf_counter()
            self._model = self._load()
            self.timings["load_model_s"] = time.perf_counter() - t0
        return self._model

    def _prompt(self, task: str) -> str | None:
        return self.config.query_prompt if task == "query" else self.config.doc_prompt

    def _key(self, kind: str, content: str) -> dict:
        task = "document" if kind == "corpus" else "query"
        fmt = self.doc_format if kind == "corpus" else self.query_format
        return {
            "kind": kind,
            "family": self.family,
            "storage": f"{fmt.name}:{getattr(fmt, 'dtype', 'float32')}",
            "weights_sha256": self.fingerprint,
            "prompt_override": self._prompt(task),
            "model_settings": self.model_settings(),
            "dtype": self.config.dtype,
            "content": content,
            "text_format": TEXT_FORMAT if kind == "corpus" else "query text",
        }

    def index(self, corpus: Corpus, select: ShardSelector | None = None) -> None:
        """Encode (or reuse) the corpus shards; `select` limits this call to some shards (`--shard I/N`)."""
        t0 = time.perf_counter()
        self.close()
        order = np.argsort(-corpus.char_lengths(), kind="stable")  # longest first, as dense does
        self._doc_ids = corpus.ids
        self._emb = encode_sharded(
            texts=corpus.texts,
            order=order,
            encode=lambda texts: self._encode(texts, "document"),
            key=self._key("corpus", corpus.content_hash()),
            cache_dir=self.cache_dir,
            shard_size=self.config.shard_size,
            desc=f"{self.name}: encode corpus",
            progress=self.progress,
            select=select,
            fmt=self.doc_format,
        )
        self.stats = {
            "corpus_shards": self._emb.stats.shards_total,
            "corpus_shards_encoded": self._emb.stats.shards_encoded,
            "corpus_shards_reused": self._emb.stats.shards_reused,
        }
        self.timings["encode_corpus_s"] = time.perf_counter() - t0

    def encode_queries(self, queries: dict[str, str]):
        """All queries as one cached shard, in the order of `queries`."""
        t0 = time.perf_counter()
        qids = list(queries)
        texts = [queries[q] for q in qids]
        emb = encode_sharded(
            texts=lambda idx: [texts[i] for i in idx],
            order=np.arange(len(texts)),
            encode=lambda batch: self._encode(batch, "query"),
            key=self._key("queries", queries_digest(qids, texts)),
            cache_dir=self.cache_dir,
            shard_size=max(1, len(texts)),
            desc=f"{self.name}: encode queries",
            progress=False,
            fmt=self.query_format,
        )
        try:
            ((_, vectors),) = emb.chunks()
            return _in_memory(vectors)
        finally:
            emb.close()
            self.timings["encode_queries_s"] = time.perf_counter() - t0

    def _corpus(self) -> ShardedEmbeddings:
        if self._emb is None:
            raise RuntimeError(f"{self.name}: index a corpus before searching")
        if not self._emb.complete:
            raise RuntimeError(
                f"{self.name}: the corpus is only partly encoded (a --shard job); run without it"
            )
        return self._emb

    def index_bytes(self) -> int:
        """Bytes of the corpus shards on disk (the index this family searches)."""
        return sum(self.doc_format.disk_bytes(p) for p in self._corpus().shard_paths)

    def close(self) -> None:
        if getattr(self, "_emb", None) is not None:
            self._emb.close()
            self._emb = None

    def settings(self) -> dict:
        return {
            "weights_sha256": self.fingerprint,
            "query_prompt": self.config.query_prompt,
            "doc_prompt": self.config.doc_prompt,
            "dtype": self.config.dtype,
        }

    def manifest(self) -> dict:
        s = self.source
        return {
            "retriever": self.family,
            "model": self.config.model,
            "model_path": str(s.path),
            "hub_id": s.hub_id,
            "revision": s.revision,
            "weights_sha256": self.fingerprint,
            "query_prompt": self.config.query_prompt,
            "doc_prompt": self.config.doc_prompt,
            "max_length": self.max_length,
            "model_settings": self.model_settings(),
            "dtype": self.config.dtype,
            "batch_size": self.batch_size,
            "text_format": TEXT_FORMAT,
            "trust_remote_code": self.config.trust_remote_code,
            "shard_size": self.config.shard_size,
        }


def _in_memory(vectors):
    """A shard read back memory-mapped, copied so the temporary cache folder can go."""
    import scipy.sparse as sp

    from .cache import RaggedTokens

    if isinstance(vectors, RaggedTokens):
        return RaggedTokens(np.array(vectors.vectors, dtype=np.float32), np.array(vectors.offsets))
    if sp.issparse(vectors):
        return vectors.copy()
    return np.array(vectors)


def ranked_run(qids: list[str], doc_ids, scores: np.ndarray, rows: np.ndarray, order: np.ndarray) -> Run:
    """(query, k) blocks of scores and shard-row indices as a run; `-inf` marks no hit (dropped)."""
    run: Run = {}
    for r, q in enumerate(qids):
        keep = np.isfinite(scores[r])
        run[q] = {
            doc_ids[j]: float(s)
            for j, s in zip(order[rows[r][keep]].tolist(), scores[r][keep].tolist(), strict=True)
        }
    return run
