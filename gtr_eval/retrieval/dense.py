"""Dense retrieval: any sentence-transformers model (GTR presets included), an on-disk embedding
cache in shards, and exact chunked search by dot product or cosine.

`resolve_dense` turns what was asked (`DenseConfig`: a preset, hub id or folder, and options) into
the system's `DenseSpec` before any weights are loaded: the preset's published settings, the
family's known prompts, the score function the model declares, the backend that will run.
Asymmetric dual encoders are one system too: two models (DPR's question and context encoders,
`query_model` + `model`), or one model whose `Router` sends queries and documents through different
stacks (queries are encoded with task "query", documents with task "document").  Each side keys its
own cache entry (its own weights digest, prompt and max length).
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .. import defaults
from .. import progress as bars
from ..artifacts import CacheRoot
from ..data.loader import Corpus
from ..identity import ranking, setting
from .backends import AUTO, ONNX_BACKENDS, EncoderSpec
from .base import TEXT_FORMAT, Searched, to_run
from .cache import STORAGE_DTYPES, DenseFormat
from .encoded import EncodedRetriever, EncodedSpec, model_fields, run_fields, shard_texts
from .encoders import choose_backend, default_device, load_encoder
from .models import (
    ModelSource,
    configured_max_length,
    configured_similarity,
    has_router,
    pooling,
    resolve_model,
    system_name,
)
from .presets import PRESETS, Preset, known_prompts, pair_preset
from .search import exact_search
from .weights import weights_fingerprint

log = logging.getLogger(__name__)

# What a spec records for a model with a `Router`, and why `auto` runs such a model (or two) with torch.
ROUTES = "Router: queries with task 'query', documents with task 'document'"
TWO_STACKS = "separate query and document encoders run with torch"


@dataclass
class DenseConfig:
    """What was asked for one dense system (`run -m MODEL` and its options)."""

    model: str
    revision: str | None = None
    query_prompt: str | None = None  # None: the model family's known prompt, if any
    doc_prompt: str | None = None
    max_length: int | None = None  # None: the preset's, else the model's own
    batch_size: int | None = None
    score: str | None = None  # "dot" or "cos"; None: the preset's, else the model's own, else "cos"
    device: str | None = None
    dtype: str = defaults.DTYPE
    backend: str = AUTO  # auto: ONNX fp32 on a non-Intel CPU, else torch (see `encoders.choose_backend`)
    trust_remote_code: bool = False
    shard_size: int = defaults.SHARD_SIZE
    name: str | None = None
    # Encode the corpus in one worker process per entry (`cpu,cpu`, `cuda:0,cuda:1`); None: in-process.
    devices: tuple[str, ...] | None = None
    threads: int | None = None  # intra-op threads of the in-process encoder; None: torch's default
    query_model: str | None = None  # asymmetric: the query encoder (`model` then encodes documents)
    cache_dtype: str = (
        defaults.CACHE_DTYPE
    )  # how corpus vectors are stored (fp16: half the disk); scored in fp32
    progress: bool = True


@dataclass(frozen=True, kw_only=True)
class DenseSpec(EncodedSpec):
    """A dense system: its encoder(s), the score function, and how vectors are stored."""

    retriever: str = "dense"
    score: str = "cos"
    pooling: str | None = None  # as the model's files declare it (fixed by its digest; recorded)
    routes: str | None = None  # a Router model: queries and documents take different stacks
    quantization: str | None = ranking(None, caches=("corpus", "queries"))  # onnx-int8's recipe
    cache_dtype: str = ranking("fp32", caches=("corpus",))  # fp16 storage rounds the vectors
    query_model: str | None = setting(None)
    query_model_path: str | None = setting(None)
    query_hub_id: str | None = setting(None)
    query_revision: str | None = setting(None)
    # Which backend runs is a setting: torch, onnx and openvino compute the same vectors in fp32
    # (`backends`), so a results folder made on one CPU is served on another.
    backend: str = setting("torch")
    backend_requested: str = setting(AUTO)
    backend_reason: str = setting("")
    devices: tuple[str, ...] | None = setting(None)
    threads: int | None = setting(None)


def text_format(title_sep: str) -> str:
    return TEXT_FORMAT if title_sep == " " else f"(title + {title_sep!r} + text).strip()"


def resolve_dense(c: DenseConfig, cache: CacheRoot | None = None) -> DenseSpec:
    """The spec of the system `c` asks for: models found (hub cache first) and fingerprinted (memoised
    in `cache`, the cache root in use), the published settings applied (with a warning where `c`
    departs from them), the backend chosen."""
    export_dir = cache.area("onnx") if cache is not None else None
    if c.backend in ONNX_BACKENDS and (c.dtype != "fp32" or (c.device or "cpu") != "cpu"):
        raise ValueError(f"--backend {c.backend} runs fp32 on the CPU; drop --dtype/--device or use torch")
    if c.cache_dtype not in STORAGE_DTYPES:
        raise ValueError(f"cache dtype must be one of {sorted(STORAGE_DTYPES)}, not {c.cache_dtype!r}")
    source = resolve_model(c.model, c.revision)
    query_source = _query_source(c)
    preset_name, preset = _pair_preset(c) or (source.preset_name, source.preset)
    name = c.name or _default_name(c, source, query_source)
    sources = [source] + ([query_source] if query_source else [])
    router = any(has_router(s.path) for s in sources)
    if c.backend in ONNX_BACKENDS and router:
        raise ValueError(f"{name}: a model with a Router (query/document routes) runs on --backend torch")
    query_prompt, doc_prompt = _prompts(c, preset, source, query_source)
    declared_score = configured_similarity(source.path)
    weights = weights_fingerprint(source.path, cache)
    query_weights = weights_fingerprint(query_source.path, cache) if query_source else weights
    choice = _backend(c, source, weights, export_dir, asymmetric=query_source is not None or router)
    if choice.requested == AUTO and "not installed" in choice.reason:
        log.warning("note: %s runs with torch: %s", name, choice.reason)
    max_length = c.max_length or (preset.max_length if preset else None) or configured_max_length(source.path)
    query_max_length = max_length
    if query_source is not None:
        query_max_length = c.max_length or (preset.max_length if preset else None)
        query_max_length = query_max_length or configured_max_length(query_source.path)
    _warn_unpublished(c, preset, preset_name, declared_score, query_source)
    title_sep = preset.title_sep if preset else " "
    quantization = None
    if choice.backend == "onnx-int8":
        from .onnx_backend import recipe_id

        quantization = f"onnx-int8 dynamic per-channel ({recipe_id()})"
    query = {}
    if query_source is not None:
        query = {
            "query_model": c.query_model or (preset.query_hub_id if preset else None),
            "query_model_path": str(query_source.path),
            "query_hub_id": query_source.hub_id,
            "query_revision": query_source.revision,
        }
    return DenseSpec(
        system=name,
        **{**model_fields(source, weights, c.model), "preset": preset_name},
        **query,
        query_weights_sha256=query_weights,
        query_prompt=query_prompt,
        doc_prompt=doc_prompt,
        max_length=max_length,
        query_max_length=query_max_length,
        text_format=text_format(title_sep),
        score=c.score or (preset.score if preset else None) or declared_score or "cos",
        pooling=pooling(source.path),
        routes=ROUTES if router else None,
        quantization=quantization,
        cache_dtype=c.cache_dtype,
        backend=choice.backend,
        backend_requested=choice.requested,
        backend_reason=choice.reason,
        devices=c.devices,
        threads=c.threads,
        **run_fields(c, preset, defaults.BATCH_SIZE),
    )


def _query_source(c: DenseConfig) -> ModelSource | None:
    if c.query_model is not None:
        return resolve_model(c.query_model)
    preset = PRESETS.get(c.model)
    if preset is not None and preset.query_hub_id:  # `-m dpr`: the preset names both encoders
        return resolve_model(preset.query_hub_id)
    return None


def _pair_preset(c: DenseConfig) -> tuple[str, Preset] | None:
    """`--query-model/--doc-model` naming both encoders of an asymmetric preset (DPR's pair)."""
    if c.query_model is None or c.model in PRESETS:
        return None
    return pair_preset(c.query_model, c.model)


def _default_name(c: DenseConfig, source: ModelSource, query_source: ModelSource | None) -> str:
    """A preset's name; for two other models `<query model>~<document model>`."""
    if query_source is None or c.query_model is None:  # one model, or `-m dpr`
        return source.name
    pair = _pair_preset(c)
    return pair[0] if pair else f"{query_source.name}~{source.name}"


def pair_name(query: str, doc: str) -> str:
    """The system name of `--query-model Q --doc-model D` when it is no preset's pair."""
    pair = pair_preset(query, doc)
    return pair[0] if pair else f"{system_name(query)}~{system_name(doc)}"


def _prompts(
    c: DenseConfig, preset: Preset | None, source: ModelSource, query_source: ModelSource | None
) -> tuple[str, str]:
    known = _published_prompts(c, preset, source, query_source)
    q = c.query_prompt if c.query_prompt is not None else (known[0] if known else "")
    d = c.doc_prompt if c.doc_prompt is not None else (known[1] if known else "")
    if known and (q, d) != known:
        warnings.warn(
            f"{c.model} was trained with prompts query={known[0]!r} doc={known[1]!r} but runs with "
            f"query={q!r} doc={d!r}; scores will not match published ones",
            stacklevel=4,
        )
    return q, d


def _published_prompts(
    c: DenseConfig, preset: Preset | None, source: ModelSource, query_source: ModelSource | None
) -> tuple[str, str] | None:
    """A preset's prompts, else those its family is known for (e5, bge, gte), else None."""
    if preset is not None:
        return preset.query_prompt, preset.doc_prompt
    for s, spec in ((source, c.model), (query_source, c.query_model)):
        if s is not None and (known := known_prompts(s.hub_id or spec or "") or known_prompts(spec or "")):
            return known
    return None


def _warn_unpublished(
    c: DenseConfig,
    p: Preset | None,
    preset_name: str | None,
    declared_score: str | None,
    query_source: ModelSource | None,
) -> None:
    """Warn when a known model runs with settings its authors did not use (prompts: `_prompts`)."""
    published_score = (p.score if p else None) or declared_score
    problems = []
    if c.score and published_score and c.score != published_score:
        problems.append(f"scoring {c.score!r} instead of {published_score!r}")
    if c.max_length and p and p.max_length and c.max_length != p.max_length:
        problems.append(f"max length {c.max_length} instead of {p.max_length}")
    if p and p.query_hub_id and query_source is None and c.model not in PRESETS:
        problems.append(f"queries through the document encoder, not {p.query_hub_id} (use -m {preset_name})")
    if problems:
        where = f" (published settings: {p.source})" if p and p.source else ""
        warnings.warn(
            f"{c.model} runs with {'; '.join(problems)}{where}; scores will not match published ones",
            stacklevel=4,
        )


def _backend(c: DenseConfig, source: ModelSource, weights: str, export_dir: Path | None, asymmetric: bool):
    from .backends import BackendChoice

    if c.backend == AUTO and asymmetric:
        return BackendChoice(AUTO, "torch", TWO_STACKS)
    devices = c.devices or (c.device or default_device(),)
    return choose_backend(c.backend, source.path, devices, c.dtype, export_dir, weights)


class DenseRetriever(EncodedRetriever):
    """Encode the corpus once (cached in shards), then exact top-k by dot product or cosine."""

    query_format = DenseFormat("float32")  # queries are few, and the left side of every score

    def __init__(
        self, spec: DenseSpec | DenseConfig, cache_dir: Path | None = None, progress: bool | None = None
    ):
        """From its spec; given what was asked instead (a `DenseConfig`), it is resolved first."""
        if isinstance(spec, DenseConfig):
            spec = resolve_dense(spec, CacheRoot.optional(cache_dir))
        spec = spec if progress is None else replace(spec, progress=progress)
        super().__init__(spec, cache_dir)
        self.spec: DenseSpec = spec
        self.doc_format = DenseFormat(STORAGE_DTYPES[spec.cache_dtype])
        self._encoders: dict[str, object] = {}

    @property
    def asymmetric(self) -> bool:
        return self.spec.query_model_path is not None

    def _export_dir(self) -> Path | None:
        return CacheRoot(Path(self.cache_dir)).area("onnx") if self.cache_dir is not None else None

    def _prepare(self) -> None:
        """`auto` chose ONNX: export now, or fall back to torch (a setting: the identity stays)."""
        s = self.spec
        if s.backend_requested != AUTO or s.backend not in ONNX_BACKENDS or self._encoders:
            return
        from .onnx_backend import OnnxExportError, exported, model_folder, record_failure

        folder = model_folder(s.weights_sha256, self._export_dir())
        if exported(folder):
            return  # exported before: a run whose vectors are all cached loads no model
        try:
            self.encoder("document")
        except OnnxExportError as e:
            record_failure(folder, e)
            warnings.warn(f"{e}; running with torch instead", stacklevel=3)
            self.spec = replace(s, backend="torch", backend_reason=f"ONNX export failed: {e}")

    def encoder_spec(self, side: str = "document", device: str | None = None, threads: int | None = None):
        """What a process needs to build this system's encoder of `side` (picklable)."""
        s = self.spec
        query = side == "query" and self.asymmetric
        return EncoderSpec(
            path=(s.query_model_path if query else s.model_path) or s.model_path,
            backend=s.backend,
            device=device if device is not None else s.device,
            dtype=s.dtype,
            max_length=s.query_max_length if query else s.max_length,
            batch_size=s.batch_size,
            trust_remote_code=s.trust_remote_code,
            threads=threads if threads is not None else s.threads,
            fingerprint=s.query_weights_sha256 if query else s.weights_sha256,
            export_dir=str(self._export_dir()) if self._export_dir() else None,
        )

    def encoder(self, side: str = "document"):
        """The encoder of `side` ("document" or "query"; one and the same unless asymmetric)."""
        side = side if self.asymmetric else "document"
        if side not in self._encoders:
            label = "load_query_model_s" if side == "query" else "load_model_s"
            enc = self._timed_load(label, lambda: load_encoder(self.encoder_spec(side)))
            self._encoders[side] = enc
            self._loaded[f"{side}_max_seq_length"] = enc.max_seq_length  # the length it truncates to
            if (export_s := getattr(enc, "export_s", None)) is not None:
                self._loading["onnx_export_s"] = export_s
        return self._encoders[side]

    def _release_models(self) -> None:
        self._encoders.clear()

    @property
    def model(self):
        """The sentence-transformers model (for the onnx backends: the one that tokenizes)."""
        return self.encoder("document").model

    def _encode(self, texts: list[str], task: str) -> np.ndarray:
        prompt = self.spec.query_prompt if task == "query" else self.spec.doc_prompt
        return self.encoder(task).encode(texts, prompt or "", task)

    def _doc_texts(self, corpus: Corpus):
        sep = self.spec.text_format
        return corpus.texts if sep == TEXT_FORMAT else shard_texts(corpus, _title_sep(sep))

    def _workers(self):
        devices = self.spec.devices
        if not devices or len(devices) < 2:
            return contextlib.nullcontext(None)
        from .pool import EncoderPool

        return EncoderPool(self.encoder_spec(), list(devices), self.spec.doc_prompt or "")

    def search(self, queries: dict[str, str], top_k: int) -> Searched:
        emb = self._corpus()
        t0 = time.perf_counter()
        q_emb = self.encode_queries(queries)
        t1 = time.perf_counter()
        device = self.spec.device or default_device()
        with bars.bar(len(queries), f"{self.name}: search", "query", enabled=self.progress) as searching:
            scores, rows = exact_search(q_emb, emb.chunks(), top_k, score=self.spec.score, device=device)
            searching.update(len(queries))
        run = to_run(list(queries), self._doc_ids, scores, emb.order[rows])
        return Searched(
            run, self._report({"encode_queries_s": t1 - t0, "search_s": time.perf_counter() - t1})
        )


def _title_sep(fmt: str) -> str:
    """The separator a `text_format` joins title and text with (each comes from a preset)."""
    seps = {text_format(p.title_sep): p.title_sep for p in PRESETS.values()}
    return seps[fmt]
