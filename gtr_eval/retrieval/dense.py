"""Dense retrieval: any sentence-transformers model (GTR presets included), an on-disk embedding
cache in shards, and exact chunked search by dot product or cosine."""

from __future__ import annotations

import hashlib
import logging
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..data.loader import Corpus
from .base import TEXT_FORMAT, Retriever, Run, to_run
from .cache import STORAGE_DTYPES, ShardedEmbeddings, ShardSelector, encode_sharded
from .encoders import AUTO, ONNX_BACKENDS, EncoderSpec, choose_backend, default_device, load_encoder
from .models import known_prompts, resolve_model, weights_fingerprint
from .search import exact_search

log = logging.getLogger(__name__)


@dataclass
class DenseConfig:
    model: str
    revision: str | None = None
    query_prompt: str | None = None  # None: the model family's known prompt, if any
    doc_prompt: str | None = None
    max_length: int | None = None  # None: the preset's, else the model's own
    batch_size: int | None = None
    score: str | None = None  # "dot" or "cos"; None: the preset's, else "cos"
    device: str | None = None
    dtype: str = "fp32"
    backend: str = AUTO  # auto: ONNX fp32 on the CPU, torch on a GPU (see `encoders.choose_backend`)
    trust_remote_code: bool = False
    shard_size: int = 2048
    name: str | None = None
    # Encode the corpus in one worker process per entry (`cpu,cpu`, `cuda:0,cuda:1`); None: in-process.
    devices: tuple[str, ...] | None = None
    threads: int | None = None  # intra-op threads of the in-process encoder; None: torch's default
    cache_dtype: str = "fp32"  # how corpus vectors are stored (fp16: half the disk); scored in fp32


class DenseRetriever(Retriever):
    """Encode the corpus once (cached in shards), then exact top-k by dot product or cosine."""

    def __init__(self, config: DenseConfig, cache_dir: Path | None = None, progress: bool = True):
        self.config = config
        self.cache_dir = cache_dir
        self.progress = progress
        self.timings: dict[str, float] = {}
        t0 = time.perf_counter()
        if config.backend in ONNX_BACKENDS and (config.dtype != "fp32" or (config.device or "cpu") != "cpu"):
            raise ValueError(f"--backend {config.backend} runs fp32 on the CPU; drop --dtype/--device or use torch")
        if config.cache_dtype not in STORAGE_DTYPES:
            raise ValueError(f"cache dtype must be one of {sorted(STORAGE_DTYPES)}, not {config.cache_dtype!r}")
        self.source = resolve_model(config.model, config.revision)
        self.name = config.name or self.source.name
        preset = self.source.preset
        self.query_prompt, self.doc_prompt = self._prompts()
        self.score = config.score or (preset.score if preset else "cos")
        self.batch_size = config.batch_size or (preset.batch_size if preset else 64)
        self.fingerprint = weights_fingerprint(self.source.path)
        devices = config.devices or (config.device or default_device(),)
        self.choice = choose_backend(
            config.backend, self.source.path, devices, config.dtype, self._export_dir(), self.fingerprint
        )
        if self.choice.requested == AUTO and "not installed" in self.choice.reason:
            log.warning("note: %s runs with torch: %s", self.name, self.choice.reason)
        self._encoder_impl = None
        self._emb: ShardedEmbeddings | None = None
        self._max_length = config.max_length or (preset.max_length if preset else None)
        self.timings["resolve_s"] = time.perf_counter() - t0
        self.stats: dict[str, int] = {}

    def _prompts(self) -> tuple[str, str]:
        c = self.config
        known = known_prompts(self.source.hub_id or c.model) or known_prompts(c.model)
        q = c.query_prompt if c.query_prompt is not None else (known[0] if known else "")
        d = c.doc_prompt if c.doc_prompt is not None else (known[1] if known else "")
        if known and (q, d) != known:
            warnings.warn(
                f"{c.model} was trained with prompts query={known[0]!r} doc={known[1]!r} but runs with "
                f"query={q!r} doc={d!r}; scores will not match published ones",
                stacklevel=3,
            )
        return q, d

    @property
    def backend(self) -> str:
        """The backend that encodes (`auto` settled): it keys the cache and is recorded."""
        return self.choice.backend

    def _export_dir(self) -> Path | None:
        return Path(self.cache_dir) / "onnx" if self.cache_dir is not None else None

    def settle_backend(self) -> None:
        """`auto` chose ONNX: export now (or fall back to torch) before a cache key names the backend."""
        if self.choice.requested != AUTO or self.backend not in ONNX_BACKENDS or self._encoder_impl:
            return
        from .onnx_backend import OnnxExportError, exported, model_folder, record_failure

        if exported(model_folder(self.fingerprint, self._export_dir())):
            return  # exported before: a run whose vectors are all cached loads no model
        try:
            self.encoder  # noqa: B018  (exports the model, or finds its export)
        except OnnxExportError as e:
            record_failure(model_folder(self.fingerprint, self._export_dir()), e)
            warnings.warn(f"{e}; running with torch instead", stacklevel=3)
            self.choice = replace(self.choice, backend="torch", reason=f"ONNX export failed: {e}")

    def spec(self, device: str | None = None, threads: int | None = None) -> EncoderSpec:
        """What a process needs to build this retriever's encoder (picklable)."""
        c = self.config
        return EncoderSpec(
            path=str(self.source.path),
            backend=self.backend,
            device=device if device is not None else c.device,
            dtype=c.dtype,
            max_length=self._max_length,
            batch_size=self.batch_size,
            trust_remote_code=c.trust_remote_code,
            threads=threads if threads is not None else c.threads,
            fingerprint=self.fingerprint,
            export_dir=str(self._export_dir()) if self._export_dir() else None,
        )

    @property
    def encoder(self):
        if self._encoder_impl is None:
            t0 = time.perf_counter()
            self._encoder_impl = load_encoder(self.spec())
            self._max_length = self._encoder_impl.max_seq_length
            self.timings["load_model_s"] = time.perf_counter() - t0
            if (export_s := getattr(self._encoder_impl, "export_s", None)) is not None:
                self.timings["onnx_export_s"] = export_s
        return self._encoder_impl

    @property
    def model(self):
        """The sentence-transformers model (for the onnx backends: the one that tokenizes)."""
        return self.encoder.model

    def max_length(self) -> int:
        if self._max_length is None:
            self._max_length = self.encoder.max_seq_length
        return self._max_length

    def _encoder(self, prompt: str):
        def encode(texts: list[str]) -> np.ndarray:
            return self.encoder.encode(texts, prompt)

        return encode

    def _key(self, kind: str, content: str, prompt: str) -> dict:
        return {
            "kind": kind,
            "weights_sha256": self.fingerprint,
            "prompt": prompt,
            "max_length": self.max_length(),
            "dtype": self.config.dtype,
            "backend": self.backend,
            "content": content,
            "text_format": TEXT_FORMAT if kind == "corpus" else "query text",
        } | self._backend_key() | self._storage_key(kind)

    def _storage_key(self, kind: str) -> dict:
        """fp16 corpus storage keys apart; fp32 keys stay as they were (existing caches keep working).
        Queries are always stored in fp32: they are few, and they are the left side of every score."""
        if kind != "corpus" or self.config.cache_dtype == "fp32":
            return {}
        return {"storage_dtype": STORAGE_DTYPES[self.config.cache_dtype]}

    def _backend_key(self) -> dict:
        if self.backend not in ONNX_BACKENDS:
            return {}  # torch keys stay as they were: existing caches keep working
        from .onnx_backend import recipe_id

        return {"backend_recipe": recipe_id()}

    def index(self, corpus: Corpus, select: ShardSelector | None = None) -> None:
        """Encode (or reuse) the corpus shards; `select` limits this call to some shards (`--shard I/N`)."""
        t0 = time.perf_counter()
        self.settle_backend()
        # Longest first, as BEIR does: batches of similar length waste little on padding.  The order
        # is deterministic, so every job of a sharded encode agrees on what shard i holds.
        order = np.argsort(-corpus.char_lengths(), kind="stable")
        self._doc_ids = corpus.ids
        kw = dict(
            texts=corpus.texts,
            order=order,
            encode=self._encoder(self.doc_prompt),
            key=self._key("corpus", corpus.content_hash(), self.doc_prompt),
            cache_dir=self.cache_dir,
            shard_size=self.config.shard_size,
            desc=f"{self.name}: encode corpus",
            progress=self.progress,
            select=select,
            storage_dtype=STORAGE_DTYPES[self.config.cache_dtype],
        )
        devices = self.config.devices
        if devices and len(devices) > 1:
            from .pool import EncoderPool

            with EncoderPool(self, list(devices)) as pool:
                self._emb = encode_sharded(**kw, encode_many=pool.encode_many(self.doc_prompt))
        else:
            self._emb = encode_sharded(**kw)
        self.stats = {
            "corpus_shards": self._emb.stats.shards_total,
            "corpus_shards_encoded": self._emb.stats.shards_encoded,
            "corpus_shards_reused": self._emb.stats.shards_reused,
        }
        self.timings["encode_corpus_s"] = time.perf_counter() - t0

    def encode_queries(self, queries: dict[str, str]) -> np.ndarray:
        self.settle_backend()
        qids = list(queries)
        texts = [queries[q] for q in qids]
        digest = hashlib.sha256("\0".join(f"{q}\t{t}" for q, t in zip(qids, texts, strict=True)).encode())
        emb = encode_sharded(
            texts=lambda idx: [texts[i] for i in idx],
            order=np.arange(len(texts)),
            encode=self._encoder(self.query_prompt),
            key=self._key("queries", digest.hexdigest(), self.query_prompt),
            cache_dir=self.cache_dir,
            shard_size=max(1, len(texts)),
            desc=f"{self.name}: encode queries",
            progress=False,
        )
        try:
            return emb.matrix()
        finally:
            emb.close()

    def search(self, queries: dict[str, str], top_k: int) -> Run:
        if not self._emb.complete:
            raise RuntimeError(
                f"{self.name}: the corpus is only partly encoded (a --shard job); run without it"
            )
        t0 = time.perf_counter()
        q_emb = self.encode_queries(queries)
        self.timings["encode_queries_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        device = self.config.device or default_device()
        scores, rows = exact_search(q_emb, self._emb.chunks(), top_k, score=self.score, device=device)
        run = to_run(list(queries), self._doc_ids, scores, self._emb.order[rows])
        self.timings["search_s"] = time.perf_counter() - t0
        return run

    def close(self) -> None:
        if getattr(self, "_emb", None) is not None:
            self._emb.close()

    def settings(self) -> dict:
        """What changes the ranking, known without loading the model (see `runner`'s skip check)."""
        return {
            "weights_sha256": self.fingerprint,
            "query_prompt": self.query_prompt,
            "doc_prompt": self.doc_prompt,
            "score": self.score,
            "dtype": self.config.dtype,
            "backend": self.backend,
            "cache_dtype": self.config.cache_dtype,
        }

    def manifest(self) -> dict:
        s = self.source
        return {
            "retriever": "dense",
            "model": self.config.model,
            "model_path": str(s.path),
            "hub_id": s.hub_id,
            "revision": s.revision,
            "weights_sha256": self.fingerprint,
            "query_prompt": self.query_prompt,
            "doc_prompt": self.doc_prompt,
            "max_length": self.max_length(),
            "score": self.score,
            "dtype": self.config.dtype,
            "backend": self.backend,
            "backend_requested": self.choice.requested,
            **({"backend_reason": self.choice.reason} if self.choice.reason else {}),
            "batch_size": self.batch_size,
            "text_format": TEXT_FORMAT,
            "trust_remote_code": self.config.trust_remote_code,
            "shard_size": self.config.shard_size,
            "cache_dtype": self.config.cache_dtype,
        } | self._backend_key()


