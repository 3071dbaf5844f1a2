"""Retriever families: what a family is (`Family`), the one list of them, and how a `-m` finds its own.

A family knows one kind of system end to end: the `-m` names it answers to (`bm25`), the model
folders it recognises (`detects`), how a request becomes its spec (`resolve`: nothing loaded), how a
spec becomes the retriever that runs it (`build`), what a run costs for `run --plan` (`cost`, from
the spec the run resolves, so the plan prices what the run will do) and, where it has one, a
re-ranker (`reranker`).  `factory`, the CLI's `--family` choices and the plan are lookups in this
list, so a new family is one object: the built-in ones below, one registered from Python
(`register`), or one another package declares in the entry-point group `gtr_eval.families`
(loaded the first time the list is read; docs/families.md, "Writing a family").
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ..artifacts import CacheRoot
from ..errors import Mistake, did_you_mean
from . import weights
from .base import Retriever
from .bm25 import BM25Retriever, BM25Spec, bm25_seconds
from .dense import DenseConfig, DenseRetriever, DenseSpec, resolve_dense
from .encoded import EncodedSpec
from .encoders import default_device
from .lucene import CONDITIONS, LuceneRetriever, LuceneSpec, lucene_seconds, resolve_lucene, runtime
from .models import detect_family, holds_model, resolve_model
from .multivector import (
    MaxSimReranker,
    MultiVectorConfig,
    MultiVectorRetriever,
    MultiVectorSpec,
    resolve_multivector,
)
from .presets import PRESETS, preset_of
from .sparse import SparseConfig, SparseRetriever, SparseSpec, resolve_sparse
from .spec import SystemSpec

log = logging.getLogger(__name__)

GROUP = "gtr_eval.families"  # the entry-point group other packages declare their families in


@dataclass(frozen=True)
class ModelPair:
    """`--query-model Q --doc-model D`: one asymmetric system, queries encoded by Q, documents by D."""

    query: str
    doc: str

    def __str__(self) -> str:
        return f"{self.query} (queries) + {self.doc} (documents)"


Request = str | ModelPair


# ------------------------------------------------------------------------------------ the protocol


@dataclass(frozen=True)
class Encoding:
    """Encoder work the plan prices with its compute model: 2 FLOPs per parameter per token."""

    compute_params: int | None  # parameters outside the token embeddings; None: unknown
    max_length: int  # tokens per text at most
    dim: int  # vector size (exact search: 2 x dim FLOPs per (query, document))


@dataclass(frozen=True)
class Cost:
    """What one system costs for `run --plan`: encoder work (`encoding`, priced on the run's device),
    or CPU seconds the family prices itself (`seconds(documents, words per document, queries)`), or
    neither (the time shows as unknown); and the gigabytes of weights still to download."""

    encoding: Encoding | None = None
    seconds: Callable[[float, float, float], float] | None = None
    download_gb: float | None = 0.0  # None: unknown


@runtime_checkable
class Family(Protocol):
    """One kind of system, end to end.  `FamilyBase` gives the optional parts their defaults."""

    name: str  # `--family NAME`
    spec_type: type[SystemSpec]  # the frozen spec dataclass `resolve` makes and `build` takes
    names: tuple[str, ...]  # `-m` values it answers to by name (`bm25`); () for model families

    def check(self, request: str) -> None:
        """What is wrong with a request by one of `names`, said before any work (a missing runtime)."""

    def detects(self, folder: Path) -> bool:
        """True when `folder` holds a model this family runs (read from its small files, nothing loaded)."""

    def resolve(self, request: Request, opts: Any, top_k: int) -> SystemSpec:
        """The spec of `request` under the run's options (`factory.RetrieverOptions`)."""

    def build(self, spec: SystemSpec, cache_dir: Path | None) -> Retriever:
        """The retriever that runs `spec` (nothing loaded until it indexes)."""

    def cost(self, spec: SystemSpec) -> Cost:
        """What running `spec` costs, for `run --plan`."""

    def note(self, spec: SystemSpec) -> str | None:
        """A line said when the retriever is built (dense: which backend runs it, and why)."""

    def reranker(self, spec: SystemSpec, cache_dir: Path | None) -> Any | None:
        """The re-ranker of a family that re-scores a first stage's run; None: it has none."""


class FamilyBase:
    """Defaults for a family's optional parts: no names, no folders, unknown cost, no note, no
    re-ranker.  A family subclasses it and sets `name` and `spec_type` and writes `resolve` and
    `build`."""

    name: str = ""
    spec_type: type[SystemSpec] = SystemSpec
    names: tuple[str, ...] = ()

    def check(self, request: str) -> None:
        return None

    def detects(self, folder: Path) -> bool:
        return False

    def cost(self, spec: SystemSpec) -> Cost:
        return Cost()

    def note(self, spec: SystemSpec) -> str | None:
        return None

    def reranker(self, spec: SystemSpec, cache_dir: Path | None) -> Any | None:
        return None


# ------------------------------------------------------------------------------ built-in families


class BM25Family(FamilyBase):
    name, spec_type, names = "bm25", BM25Spec, ("bm25",)

    def resolve(self, request: Request, opts: Any, top_k: int) -> BM25Spec:
        return BM25Spec(system="bm25", bm25=opts.bm25, top_k=top_k, progress=opts.progress)

    def build(self, spec: SystemSpec, cache_dir: Path | None) -> Retriever:
        return BM25Retriever(spec, cache_dir=cache_dir)

    def cost(self, spec: SystemSpec) -> Cost:
        return Cost(seconds=bm25_seconds)


class LuceneFamily(FamilyBase):
    """Anserini's BM25 (`bm25-flat`, `bm25-multifield`), with the `lucene` extra installed."""

    name, spec_type, names = "lucene", LuceneSpec, tuple(CONDITIONS)

    def check(self, request: str) -> None:
        runtime(request.lower())  # the lucene extra missing: said now, in one line, before any work

    def resolve(self, request: Request, opts: Any, top_k: int) -> LuceneSpec:
        return resolve_lucene(str(request), top_k, opts.progress)

    def build(self, spec: SystemSpec, cache_dir: Path | None) -> Retriever:
        return LuceneRetriever(spec, cache_dir=cache_dir)

    def cost(self, spec: SystemSpec) -> Cost:
        return Cost(seconds=lucene_seconds)


class EncoderFamily(FamilyBase):
    """What the families that encode with a model share: the request's common options, and a cost
    from the model the spec names (its preset's published sizes, else its folder's files)."""

    def cost(self, spec: SystemSpec) -> Cost:
        assert isinstance(spec, EncodedSpec)
        preset = PRESETS.get(spec.preset) if spec.preset else None
        folder = Path(spec.model_path)
        params = preset.compute_params if preset and preset.compute_params else weights.compute_params(folder)
        dim = preset.dim if preset else _folder_dim(folder)
        return Cost(Encoding(params, spec.max_length or 512, dim))

    @staticmethod
    def common(model: str, opts: Any) -> dict[str, Any]:
        return dict(
            model=model, query_prompt=opts.query_prompt, doc_prompt=opts.doc_prompt,
            max_length=opts.max_length, batch_size=opts.batch_size,
            device=_single_device(opts) or opts.device, dtype=opts.dtype,
            trust_remote_code=opts.trust_remote_code, shard_size=opts.shard_size, progress=opts.progress,
        )  # fmt: skip

    def check_options(self, model: str, opts: Any) -> None:
        """Options only dense models take (sparse and late-interaction models encode in-process with torch)."""
        if opts.backend not in ("auto", "torch"):  # auto settles on torch for these families
            raise ValueError(f"{model}: {self.name} models run with --backend torch, not {opts.backend}")
        if opts.cache_dtype != "fp32":
            raise ValueError(
                f"{model}: --cache-dtype is for dense vectors ({self.name} caches have their own layout)"
            )
        if _worker_devices(opts):
            raise ValueError(
                f"{model}: {self.name} models encode in-process; use --device, or --shard jobs of "
                "`gtr-eval encode`"
            )


class DenseFamily(EncoderFamily):
    """Any sentence-transformers (or plain Hugging Face) model: the family of every model folder no
    other family claims, and of asymmetric pairs."""

    name, spec_type = "dense", DenseSpec

    def detects(self, folder: Path) -> bool:
        return holds_model(folder)

    def resolve(self, request: Request, opts: Any, top_k: int) -> DenseSpec:
        pair = request if isinstance(request, ModelPair) else None
        model = pair.doc if pair else str(request)
        cfg = DenseConfig(**self.common(model, opts), query_model=pair.query if pair else None,
                          score=opts.score, backend=opts.backend, cache_dtype=opts.cache_dtype,
                          devices=_worker_devices(opts))  # fmt: skip
        return replace(resolve_dense(cfg, _cache(opts)), top_k=top_k)

    def build(self, spec: SystemSpec, cache_dir: Path | None) -> Retriever:
        return DenseRetriever(spec, cache_dir=cache_dir)

    def note(self, spec: SystemSpec) -> str | None:
        assert isinstance(spec, DenseSpec)
        auto = spec.backend_requested == "auto" and spec.backend_reason
        return f"[backend] {spec.system}: {spec.backend}" + (
            f" (auto: {spec.backend_reason})" if auto else ""
        )


class SparseFamily(EncoderFamily):
    """Learned sparse models (SPLADE and sentence-transformers' SparseEncoder)."""

    name, spec_type = "sparse", SparseSpec

    def detects(self, folder: Path) -> bool:
        return detect_family(folder) == "sparse"

    def resolve(self, request: Request, opts: Any, top_k: int) -> SparseSpec:
        self.check_options(str(request), opts)
        return replace(
            resolve_sparse(SparseConfig(**self.common(str(request), opts)), _cache(opts)), top_k=top_k
        )

    def build(self, spec: SystemSpec, cache_dir: Path | None) -> Retriever:
        return SparseRetriever(spec, cache_dir=cache_dir)


class MultiVectorFamily(EncoderFamily):
    """Late interaction (ColBERT, PyLate, sentence-transformers' MultiVectorEncoder)."""

    name, spec_type = "multivector", MultiVectorSpec

    def detects(self, folder: Path) -> bool:
        return detect_family(folder) == "multivector"

    def resolve(self, request: Request, opts: Any, top_k: int) -> MultiVectorSpec:
        self.check_options(str(request), opts)
        cfg = MultiVectorConfig(**self.common(str(request), opts), search=opts.maxsim_search)
        return replace(resolve_multivector(cfg, _cache(opts)), top_k=top_k)

    def build(self, spec: SystemSpec, cache_dir: Path | None) -> Retriever:
        return MultiVectorRetriever(spec, cache_dir=cache_dir)

    def reranker(self, spec: SystemSpec, cache_dir: Path | None) -> MaxSimReranker | None:
        """Exact MaxSim over a first stage's candidates (`rerank --run S -m COLBERT`)."""
        return MaxSimReranker(spec, cache_dir) if spec.search == "rerank" else None


# The catch-all `dense` is asked last: a folder is the first family's that detects it.
BUILTIN: tuple[Family, ...] = (BM25Family(), LuceneFamily(), SparseFamily(), MultiVectorFamily())
FALLBACK: Family = DenseFamily()

_registered: list[Family] = []
_plugins: list[Family] | None = None


# -------------------------------------------------------------------------------------- the list


def register(family: Family) -> Family:
    """Add `family` to the list for this process (a family from Python; packages use `GROUP`)."""
    _check(family, "register")
    _registered.append(family)
    return family


def unregister(name: str) -> None:
    """Take a family registered from Python off the list again (tests)."""
    _registered[:] = [f for f in _registered if f.name != name]


def families() -> tuple[Family, ...]:
    """Every family, in the order a folder is offered to them: built-in, registered, entry points,
    then the catch-all dense."""
    return (*BUILTIN, *_registered, *_entry_point_families(), FALLBACK)


def names() -> list[str]:
    """The `--family` choices."""
    return [f.name for f in families()]


def named(name: str) -> Family:
    for family in families():
        if family.name == name:
            return family
    known = names()
    raise Mistake(f"unknown family {name!r}{did_you_mean(name, known)} (known: auto, {', '.join(known)})")


def by_request_name(request: Request) -> Family | None:
    """The family `request` names (`bm25`, `bm25-flat`), if it names one."""
    if not isinstance(request, str):
        return None
    return next((f for f in families() if request.lower() in f.names), None)


def request_names() -> list[str]:
    return [n for f in families() for n in f.names]


def detecting(folder: Path) -> Family | None:
    """The first family that recognises the model in `folder`; None: no model there."""
    return next((f for f in families() if f.detects(Path(folder))), None)


def of_request(request: Request, choice: str = "auto", revision: str | None = None) -> Family:
    """The family that runs `request`: the one it names; `choice` (`--family`) unless auto; else
    the one that recognises its folder (a local one, or the hub snapshot of a hub id), a preset's
    own family without looking at its files."""
    if isinstance(request, ModelPair):
        return FALLBACK  # two encoders: the dense family's asymmetric systems
    if (by_name := by_request_name(request)) is not None:
        return by_name
    if choice != "auto":
        return named(choice)
    local = Path(request).expanduser()
    if not local.is_dir() and (known := preset_of(request)) is not None:
        return named(known[1].family)
    folder = local if local.is_dir() else resolve_model(request, revision).path
    return detecting(folder) or FALLBACK


def of_spec(spec: SystemSpec) -> Family:
    """The family whose spec type `spec` is."""
    for family in families():
        if type(spec) is family.spec_type:
            return family
    raise TypeError(f"no family runs a {type(spec).__name__} (families: {', '.join(names())})")


def _entry_point_families() -> list[Family]:
    """The families other packages declare under `GROUP`, loaded once: each entry point names a
    family object, or a class or function that makes one."""
    global _plugins
    if _plugins is None:
        _plugins = []
        for point in entry_points(group=GROUP):
            try:
                loaded = point.load()
            except Exception as e:  # a broken plugin: said in one line, not left to claim nothing
                raise Mistake(
                    f"the family {point.name} = {point.value} (entry point {GROUP}) does not load: "
                    f"{type(e).__name__}: {e}"
                ) from e
            family = loaded() if isinstance(loaded, type) or not isinstance(loaded, Family) else loaded
            _check(family, f"entry point {point.name} = {point.value}")
            _plugins.append(family)
    return _plugins


def _check(family: Any, source: str) -> None:
    if not isinstance(family, Family) or not family.name:
        raise TypeError(f"{source}: {family!r} is not a family (see gtr_eval.retrieval.families.Family)")
    taken = [*BUILTIN, *_registered, *(_plugins or ()), FALLBACK]
    if any(f.name == family.name for f in taken if f is not family):
        raise ValueError(f"{source}: a family named {family.name!r} is already registered")


# ---------------------------------------------------------------------------- encoder option helpers


def _listed_devices(opts: Any) -> tuple[str, ...]:
    devices = opts.devices.split(",") if isinstance(opts.devices, str) else (opts.devices or ())
    return tuple(d.strip() for d in devices if d.strip())


def _single_device(opts: Any) -> str | None:
    devices = _listed_devices(opts)
    return devices[0] if len(devices) == 1 else None


def _worker_devices(opts: Any) -> tuple[str, ...] | None:
    if opts.devices:
        devices = _listed_devices(opts)
        return devices if len(devices) > 1 else None  # one device: encode in-process on it
    if opts.processes > 1:
        return (opts.device or default_device(),) * opts.processes
    return None


def _folder_dim(folder: Path) -> int:
    """The vector size a sentence-transformers folder's Pooling module declares; 768 when unknown."""
    try:
        return int(json.loads((folder / "1_Pooling" / "config.json").read_text())["word_embedding_dimension"])
    except (OSError, ValueError, KeyError, TypeError):
        return 768


def _cache(opts: Any) -> CacheRoot | None:
    """The cache root in use (None: `--no-cache`): weights digests are memoised there."""
    return CacheRoot.optional(opts.cache_dir)
