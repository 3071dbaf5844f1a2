"""What every retriever that encodes texts shares (dense, learned sparse, late interaction): a spec
naming the model by its weights digest, the corpus encoded once into the sharded cache in the
family's shard format, queries encoded (and cached) as one shard, and cache keys derived from the
spec's fields (`identity.cache_fields`), so that what keys the vectors is declared once, on the
field itself.

The families differ only in their spec's extra fields, how they load and call their model
(`_encode`), and how they search (`search`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import defaults
from ..data.loader import Corpus
from ..identity import cache_fields, ranking, setting
from .base import TEXT_FORMAT, Report, Retriever, Run
from .cache import PartsFormat, ShardedEmbeddings, ShardFormat, ShardSelector, encode_sharded, queries_digest
from .models import ModelSource
from .spec import SystemSpec


@dataclass(frozen=True, kw_only=True)
class EncodedSpec(SystemSpec):
    """A model that encodes queries and documents: named by its weights, with what shapes its inputs.

    `query_weights_sha256` is the document model's own unless queries have their own encoder (DPR).
    A `max_length` of None means the model's own limit, which its files (hence its digest) fix.
    """

    model: str = setting("")  # as given (-m): a preset, a hub id or a folder
    model_path: str = setting("")
    hub_id: str | None = setting(None)
    revision: str | None = setting(None)
    preset: str | None = setting(None)
    weights_sha256: str = ranking("", caches=("corpus",))
    query_weights_sha256: str = ranking("", caches=("queries",))
    doc_prompt: str | None = ranking(None, caches=("corpus",))
    query_prompt: str | None = ranking(None, caches=("queries",))
    max_length: int | None = ranking(None, caches=("corpus",))
    query_max_length: int | None = ranking(None, caches=("queries",), follows="max_length")
    text_format: str = ranking(TEXT_FORMAT, caches=("corpus",))
    dtype: str = ranking("fp32", caches=("corpus", "queries"))
    batch_size: int = setting(defaults.BATCH_SIZE)
    device: str | None = setting(None)
    trust_remote_code: bool = setting(False)
    shard_size: int = setting(defaults.SHARD_SIZE)
    progress: bool = setting(True)


@dataclass
class EncodedConfig:
    """What was asked for a sparse or late-interaction model; `None` means the preset's, else the model's."""

    model: str
    revision: str | None = None
    # Sparse: tokens per query and per document.  Late interaction: tokens per document (a ColBERT
    # query is always padded/truncated to the checkpoint's query length).
    max_length: int | None = None
    batch_size: int | None = None
    device: str | None = None
    dtype: str = defaults.DTYPE
    trust_remote_code: bool = False
    shard_size: int = defaults.SHARD_SIZE
    name: str | None = None
    query_prompt: str | None = None  # None: the model's own prompt (ColBERT: its [Q] marker)
    doc_prompt: str | None = None
    progress: bool = True


def model_fields(source: ModelSource, weights: str, given: str) -> dict[str, Any]:
    """The spec fields that say which model this is (shared by every family that loads a model)."""
    return {
        "model": given,
        "model_path": str(source.path),
        "hub_id": source.hub_id,
        "revision": source.revision,
        "preset": source.preset_name,
        "weights_sha256": weights,
    }


def run_fields(c: Any, preset: Any, default_batch: int) -> dict[str, Any]:
    """The spec fields that say how the model runs (`c`: what was asked; a preset's batch size)."""
    batch_size = c.batch_size or (preset.batch_size if preset else default_batch)
    return {"dtype": c.dtype, "batch_size": batch_size, "device": c.device,
            "trust_remote_code": c.trust_remote_code, "shard_size": c.shard_size, "progress": c.progress}  # fmt: skip


class EncodedRetriever(Retriever):
    """Encode the corpus into cache shards of `doc_format`, queries into one shard of `query_format`."""

    doc_format: ShardFormat
    query_format: ShardFormat

    def __init__(self, spec: EncodedSpec, cache_dir: Path | None = None):
        self.spec = spec
        self.cache_dir = cache_dir
        self.progress = spec.progress
        self._emb: ShardedEmbeddings | None = None
        self._doc_ids = None
        self._loading: dict[str, float] = {}  # model load times not yet reported by a stage
        self._loaded: dict[str, Any] = {}  # what the loaded model(s) run with (effective lengths)

    # ----------------------------------------------------------------------------- the family's part

    def _encode(self, texts: list[str], task: str):
        """Encode texts for `task` ("query" or "document") into what the shard format stores."""
        raise NotImplementedError

    def _prepare(self) -> None:
        """Called before anything is encoded (dense: settle `auto` to the backend that will run)."""

    def _doc_texts(self, corpus: Corpus) -> Callable[[np.ndarray], list[str]]:
        return corpus.texts

    def _workers(self) -> contextlib.AbstractContextManager:
        """A context giving a many-shards encoder (worker processes), or None to encode in-process."""
        return contextlib.nullcontext(None)

    _model: Any = None

    def _load(self):
        """Load the family's model (`model` calls it once)."""
        raise NotImplementedError

    @property
    def model(self):
        if self._model is None:
            self._model = self._timed_load("load_model_s", self._load)
        return self._model

    def _timed_load(self, label: str, load: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        model = load()
        self._loading[label] = self._loading.get(label, 0.0) + time.perf_counter() - t0
        return model

    def _report(self, timings: dict[str, float], stats: dict[str, Any] | None = None) -> Report:
        loaded, self._loading = self._loading, {}
        facts = {"loaded": dict(self._loaded)} if self._loaded else {}
        return Report({**loaded, **timings}, {**facts, **(stats or {})})

    # ---------------------------------------------------------------------------------- shared part

    def key(self, kind: str, content: str) -> dict:
        """The cache key of `kind` ("corpus" or "queries") for `content`: the spec's fields that key
        it, the shard format, and the content's digest."""
        fmt = self.doc_format if kind == "corpus" else self.query_format
        return {
            "kind": kind,
            "family": self.spec.retriever,
            "storage": f"{fmt.name}:{getattr(fmt, 'dtype', 'float32')}",
            **cache_fields(self.spec, kind),
            "content": content,
        }

    def index(self, corpus: Corpus, select: ShardSelector | None = None) -> Report:
        """Encode (or reuse) the corpus shards; `select` limits this call to some shards (`--shard I/N`)."""
        t0 = time.perf_counter()
        self._release_corpus()
        self._prepare()
        # Longest first, as BEIR does: batches of similar length waste little on padding.  The order
        # is deterministic, so every job of a sharded encode agrees on what shard i holds.
        order = np.argsort(-corpus.char_lengths(), kind="stable")
        self._doc_ids = corpus.ids
        with self._workers() as encode_many:
            self._emb = encode_sharded(
                texts=self._doc_texts(corpus),
                order=order,
                encode=lambda texts: self._encode(texts, "document"),
                key=self.key("corpus", corpus.content_hash()),
                cache_dir=self.cache_dir,
                shard_size=self.spec.shard_size,
                desc=f"{self.name}: encode corpus",
                progress=self.progress,
                select=select,
                encode_many=encode_many,
                fmt=self.doc_format,
            )
        stats = self._emb.stats
        return self._report(
            {"encode_corpus_s": time.perf_counter() - t0},
            {
                "corpus_shards": stats.shards_total,
                "corpus_shards_encoded": stats.shards_encoded,
                "corpus_shards_reused": stats.shards_reused,
                "corpus_complete": self._emb.complete,
                "cache_folder": str(self._emb.folder),
            },
        )

    def encode_queries(self, queries: dict[str, str]):
        """All queries as one cached shard, in the order of `queries`."""
        self._prepare()
        qids = list(queries)
        texts = [queries[q] for q in qids]
        emb = encode_sharded(
            texts=lambda idx: [texts[i] for i in idx],
            order=np.arange(len(texts)),
            encode=lambda batch: self._encode(batch, "query"),
            key=self.key("queries", queries_digest(qids, texts)),
            cache_dir=self.cache_dir,
            shard_size=max(1, len(texts)),
            desc=f"{self.name}: encode queries",
            progress=False,
            unit="query",
            what="query",
            fmt=self.query_format,
        )
        try:
            ((_, vectors),) = emb.chunks()
            return _in_memory(vectors)
        finally:
            emb.close()

    def _corpus(self) -> ShardedEmbeddings:
        if self._emb is None:
            raise RuntimeError(f"{self.name}: index a corpus before searching")
        if not self._emb.complete:
            raise RuntimeError(
                f"{self.name}: the corpus is only partly encoded (a --shard job); run without it"
            )
        return self._emb

    def _ranked(self, qids: list[str], scores: np.ndarray, rows: np.ndarray) -> Run:
        """(query, k) blocks of scores and shard rows as a run (`-inf`: no hit, dropped)."""
        return ranked_run(qids, self._doc_ids, scores, rows, self._corpus().order)

    def index_bytes(self) -> int:
        """Bytes of the corpus shards on disk (the index this family searches)."""
        fmt = self.doc_format
        assert isinstance(fmt, PartsFormat)
        return sum(fmt.disk_bytes(p) for p in self._corpus().shard_paths)

    def _release_corpus(self) -> None:
        if getattr(self, "_emb", None) is not None:
            self._emb.close()
            self._emb = None

    def close(self) -> None:
        """Release the corpus's shards and the model(s)."""
        self._release_corpus()
        self._release_models()

    def _release_models(self) -> None:
        """Drop the loaded model (dense: its encoders) so that its memory goes back."""
        self._model = None


def _in_memory(vectors):
    """A shard read back memory-mapped, copied so the temporary cache folder can go."""
    import scipy.sparse as sp

    from .cache import RaggedTokens

    if isinstance(vectors, RaggedTokens):
        return RaggedTokens(np.array(vectors.vectors, dtype=np.float32), np.array(vectors.offsets))
    if sp.issparse(vectors):
        return vectors.copy()
    return np.array(vectors, dtype=np.float32)


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


def shard_texts(corpus: Corpus, sep: str) -> Callable[[np.ndarray], list[str]]:
    """Documents as `(title + sep + text).strip()` (BEIR joins DPR's with " [SEP] ")."""

    def texts(indices) -> list[str]:
        return [(corpus.titles[int(i)] + sep + corpus.bodies[int(i)]).strip() for i in indices]

    return texts
