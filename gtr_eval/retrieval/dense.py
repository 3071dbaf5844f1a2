"""Dense retrieval: any sentence-transformers model (GTR presets included), an on-disk embedding
cache in shards, and exact chunked search by dot product or cosine.

Asymmetric dual encoders are one system too: two models (DPR's question and context encoders,
`query_model` + `model`), or one model whose `Router` sends queries and documents through different
stacks (queries are encoded with task "query", documents with task "document").  Each side keeps its
own cache key (its own weights hash and max length).
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..data.loader import Corpus
from .base import TEXT_FORMAT, Retriever, Run, to_run
from .cache import STORAGE_DTYPES, ShardedEmbeddings, ShardSelector, encode_sharded, queries_digest
from .encoders import (
    AUTO,
    ONNX_BACKENDS,
    BackendChoice,
    EncoderSpec,
    choose_backend,
    configured_similarity,
    default_device,
    has_router,
    load_encoder,
)
from .models import (
    PRESETS,
    ModelSource,
    Preset,
    known_prompts,
    pair_preset,
    resolve_model,
    weights_fingerprint,
)
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
    backend: str = AUTO  # auto: ONNX fp32 on a non-Intel CPU, else torch (see `encoders.choose_backend`)
    trust_remote_code: bool = False
    shard_size: int = 2048
    name: str | None = None
    # Encode the corpus in one worker process per entry (`cpu,cpu`, `cuda:0,cuda:1`); None: in-process.
    devices: tuple[str, ...] | None = None
    threads: int | None = None  # intra-op threads of the in-process encoder; None: torch's default
    query_model: str | None = None  # asymmetric: the query encoder (`model` then encodes documents)
    cache_dtype: str = "fp32"  # how corpus vectors are stored (fp16: half the disk); scored in fp32


def text_format(title_sep: str) -> str:
    return TEXT_FORMAT if title_sep == " " else f"(title + {title_sep!r} + text).strip()"


class DenseRetriever(Retriever):
    """Encode the corpus once (cached in shards), then exact top-k by dot product or cosine."""

    def __init__(self, config: DenseConfig, cache_dir: Path | None = None, progress: bool = True):
        self.config = config
        self.cache_dir = cache_dir
        self.progress = progress
        self.timings: dict[str, float] = {}
        t0 = time.perf_counter()
        if config.backend in ONNX_BACKENDS and (config.dtype != "fp32" or (config.device or "cpu") != "cpu"):
            raise ValueError(
                f"--backend {config.backend} runs fp32 on the CPU; drop --dtype/--device or use torch"
            )
        if config.cache_dtype not in STORAGE_DTYPES:
            raise ValueError(
                f"cache dtype must be one of {sorted(STORAGE_DTYPES)}, not {config.cache_dtype!r}"
            )
        self.source = resolve_model(config.model, config.revision)
        self.query_source = self._query_source()
        self.preset_name, self.preset = self._preset()
        preset = self.preset
        self.name = config.name or self._default_name()
        if config.backend in ONNX_BACKENDS and any(has_router(s.path) for s in self._sources()):
            raise ValueError(
                f"{self.name}: a model with a Router (query/document routes) runs on --backend torch"
            )
        self.query_prompt, self.doc_prompt = self._prompts()
        self.score = config.score or (preset.score if preset else None) or self._stored_score() or "cos"
        self.batch_size = config.batch_size or (preset.batch_size if preset else 64)
        self.title_sep = preset.title_sep if preset else " "
        self.fingerprint = weights_fingerprint(self.source.path)
        self.query_fingerprint = (
            weights_fingerprint(self.query_source.path) if self.query_source else self.fingerprint
        )
        self.choice = self._choose_backend()
        if self.choice.requested == AUTO and "not installed" in self.choice.reason:
            log.warning("note: %s runs with torch: %s", self.name, self.choice.reason)
        self._encoder_impl = None
        self._query_encoder_impl = None
        self._emb: ShardedEmbeddings | None = None
        self._max_length = config.max_length or (preset.max_length if preset else None)
        self._query_max_length = self._max_length
        self._warn_unpublished()
        self.timings["resolve_s"] = time.perf_counter() - t0
        self.stats: dict[str, int] = {}

    # --- which models, with which settings ---------------------------------------------------

    @property
    def asymmetric(self) -> bool:
        """Two models (queries and documents); a Router model is one model and not counted here."""
        return self.query_source is not None

    def _query_source(self) -> ModelSource | None:
        c = self.config
        if c.query_model is not None:
            return resolve_model(c.query_model)
        preset = PRESETS.get(c.model)
        if preset is not None and preset.query_hub_id:  # `-m dpr`: the preset names both encoders
            return resolve_model(preset.query_hub_id)
        return None

    def _sources(self) -> list[ModelSource]:
        return [self.source] + ([self.query_source] if self.query_source else [])

    def _preset(self) -> tuple[str | None, Preset | None]:
        """The published settings that apply: the preset named, or the one these models belong to."""
        if (pair := self._pair_preset()) is not None:
            return pair
        return self.source.preset_name, self.source.preset

    def _pair_preset(self) -> tuple[str, Preset] | None:
        """`--query-model/--doc-model` naming both encoders of an asymmetric preset (DPR's pair)."""
        c = self.config
        if c.query_model is None or c.model in PRESETS:
            return None
        return pair_preset(c.query_model, c.model)

    def _default_name(self) -> str:
        """A preset's name; for two other models `<query model>~<document model>`."""
        if self.query_source is None or self.config.query_model is None:  # one model, or `-m dpr`
            return self.source.name
        pair = self._pair_preset()
        return pair[0] if pair else f"{self.query_source.name}~{self.source.name}"

    def _stored_score(self) -> str | None:
        """The score function the (document) model's own folder declares, if any."""
        return configured_similarity(self.source.path)

    def _prompts(self) -> tuple[str, str]:
        c = self.config
        known = self._published_prompts()
        q = c.query_prompt if c.query_prompt is not None else (known[0] if known else "")
        d = c.doc_prompt if c.doc_prompt is not None else (known[1] if known else "")
        if known and (q, d) != known:
            warnings.warn(
                f"{c.model} was trained with prompts query={known[0]!r} doc={known[1]!r} but runs with "
                f"query={q!r} doc={d!r}; scores will not match published ones",
                stacklevel=3,
            )
        return q, d

    def _published_prompts(self) -> tuple[str, str] | None:
        """A preset's prompts, else those its family is known for (e5, bge, gte), else None."""
        if self.preset is not None:
            return self.preset.query_prompt, self.preset.doc_prompt
        for s, spec in ((self.source, self.config.model), (self.query_source, self.config.query_model)):
            if s is not None and (
                known := known_prompts(s.hub_id or spec or "") or known_prompts(spec or "")
            ):
                return known
        return None

    def _warn_unpublished(self) -> None:
        """Warn when a known model runs with settings its authors did not use (prompts: `_prompts`)."""
        c, p = self.config, self.preset
        published_score = (p.score if p else None) or self._stored_score()
        problems = []
        if c.score and published_score and c.score != published_score:
            problems.append(f"scoring {c.score!r} instead of {published_score!r}")
        if c.max_length and p and p.max_length and c.max_length != p.max_length:
            problems.append(f"max length {c.max_length} instead of {p.max_length}")
        if p and p.query_hub_id and self.query_source is None and c.model not in PRESETS:
            problems.append(
                f"queries through the document encoder, not {p.query_hub_id} (use -m {self.preset_name})"
            )
        if problems:
            where = f" (published settings: {p.source})" if p and p.source else ""
            warnings.warn(
                f"{c.model} runs with {'; '.join(problems)}{where}; scores will not match published ones",
                stacklevel=3,
            )

    def _choose_backend(self) -> BackendChoice:
        c = self.config
        if c.backend == AUTO and (self.asymmetric or any(has_router(s.path) for s in self._sources())):
            return BackendChoice(AUTO, "torch", "separate query and document encoders run with torch")
        devices = c.devices or (c.device or default_device(),)
        return choose_backend(
            c.backend, self.source.path, devices, c.dtype, self._export_dir(), self.fingerprint
        )

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

    def spec(
        self, device: str | None = None, threads: int | None = None, side: str = "document"
    ) -> EncoderSpec:
        """What a process needs to build this retriever's encoder of `side` (picklable)."""
        c = self.config
        query = side == "query" and self.query_source is not None
        return EncoderSpec(
            path=str((self.query_source if query else self.source).path),
            backend=self.backend,
            device=device if device is not None else c.device,
            dtype=c.dtype,
            max_length=self._query_max_length if query else self._max_length,
            batch_size=self.batch_size,
            trust_remote_code=c.trust_remote_code,
            threads=threads if threads is not None else c.threads,
            fingerprint=self.query_fingerprint if query else self.fingerprint,
            export_dir=str(self._export_dir()) if self._export_dir() else None,
        )

    @property
    def encoder(self):
        """The document encoder (the only one unless the system is asymmetric)."""
        if self._encoder_impl is None:
            t0 = time.perf_counter()
            self._encoder_impl = load_encoder(self.spec())
            self._max_length = self._encoder_impl.max_seq_length
            self.timings["load_model_s"] = time.perf_counter() - t0
            if (export_s := getattr(self._encoder_impl, "export_s", None)) is not None:
                self.timings["onnx_export_s"] = export_s
        return self._encoder_impl

    @property
    def query_encoder(self):
        if self.query_source is None:
            return self.encoder
        if self._query_encoder_impl is None:
            t0 = time.perf_counter()
            self._query_encoder_impl = load_encoder(self.spec(side="query"))
            self._query_max_length = self._query_encoder_impl.max_seq_length
            self.timings["load_query_model_s"] = time.perf_counter() - t0
        return self._query_encoder_impl

    @property
    def model(self):
        """The sentence-transformers model (for the onnx backends: the one that tokenizes).  On the CPU
        its linear layers may run through oneDNN (`onednn`): fine to encode with, not to save or cast."""
        return self.encoder.model

    def max_length(self) -> int:
        if self._max_length is None:
            self._max_length = self.encoder.max_seq_length
        return self._max_length

    def query_max_length(self) -> int:
        if self.query_source is None:
            return self.max_length()
        if self._query_max_length is None:
            self._query_max_length = self.query_encoder.max_seq_length
        return self._query_max_length

    def _encoder(self, prompt: str, task: str = "document"):
        def encode(texts: list[str]) -> np.ndarray:
            encoder = self.query_encoder if task == "query" else self.encoder
            return encoder.encode(texts, prompt, task)

        return encode

    def _key(self, kind: str, content: str, prompt: str) -> dict:
        query = kind == "queries"
        key = {
            "kind": kind,
            "weights_sha256": self.query_fingerprint if query else self.fingerprint,
            "prompt": prompt,
            "max_length": self.query_max_length() if query else self.max_length(),
            "dtype": self.config.dtype,
            "backend": self.backend,
            "content": content,
            "text_format": "query text" if query else text_format(self.title_sep),
        }
        return key | self._backend_key() | self._storage_key(kind)

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
            texts=corpus.texts if self.title_sep == " " else self._titled_texts(corpus),
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

    def _titled_texts(self, corpus: Corpus):
        """Documents as `(title + sep + text).strip()`: BEIR joins DPR's with " [SEP] "."""
        sep = self.title_sep

        def texts(indices) -> list[str]:
            return [(corpus.titles[int(i)] + sep + corpus.bodies[int(i)]).strip() for i in indices]

        return texts

    def encode_queries(self, queries: dict[str, str]) -> np.ndarray:
        self.settle_backend()
        qids = list(queries)
        texts = [queries[q] for q in qids]
        emb = encode_sharded(
            texts=lambda idx: [texts[i] for i in idx],
            order=np.arange(len(texts)),
            encode=self._encoder(self.query_prompt, "query"),
            key=self._key("queries", queries_digest(qids, texts), self.query_prompt),
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
        out = {
            "weights_sha256": self.fingerprint,
            "query_prompt": self.query_prompt,
            "doc_prompt": self.doc_prompt,
            "score": self.score,
            "dtype": self.config.dtype,
            "backend": self.backend,
            "cache_dtype": self.config.cache_dtype,
        }
        if self.query_source is not None:
            out["query_weights_sha256"] = self.query_fingerprint
        if self.title_sep != " ":
            out["text_format"] = text_format(self.title_sep)
        return out

    def manifest(self) -> dict:
        s = self.source
        out = {
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
            "text_format": text_format(self.title_sep),
            "trust_remote_code": self.config.trust_remote_code,
            "shard_size": self.config.shard_size,
            "cache_dtype": self.config.cache_dtype,
        } | self._backend_key()
        if self.preset_name:
            out["preset"] = self.preset_name
        if (q := self.query_source) is not None:
            out |= {
                "retriever": "dense (asymmetric)",
                "query_model": self.config.query_model or self.preset.query_hub_id,
                "query_model_path": str(q.path),
                "query_hub_id": q.hub_id,
                "query_revision": q.revision,
                "query_weights_sha256": self.query_fingerprint,
                "query_max_length": self.query_max_length(),
            }
        elif has_router(s.path):
            out["routes"] = "Router: queries with task 'query', documents with task 'document'"
        return out
