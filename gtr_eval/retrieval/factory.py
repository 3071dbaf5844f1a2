"""From a `-m` argument and the run's options to a retriever."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .base import Retriever
from .bm25 import BM25Config, BM25Retriever
from .dense import DenseConfig, DenseRetriever
from .encoders import default_device
from .models import FAMILIES, model_family


@dataclass(frozen=True)
class ModelPair:
    """`--query-model Q --doc-model D`: one asymmetric system, queries encoded by Q, documents by D."""

    query: str
    doc: str

    def __str__(self) -> str:
        return f"{self.query} (queries) + {self.doc} (documents)"


@dataclass
class RetrieverOptions:
    """CLI-level options shared by all models of one `run`."""

    cache_dir: Path | None = None
    device: str | None = None
    dtype: str = "fp32"
    batch_size: int | None = None
    backend: str = "auto"  # ONNX fp32 on a non-Intel CPU, else torch (`encoders.choose_backend`)
    query_prompt: str | None = None
    doc_prompt: str | None = None
    max_length: int | None = None
    trust_remote_code: bool = False
    bm25: BM25Config = field(default_factory=BM25Config)
    progress: bool = True
    shard_size: int = 2048
    cache_dtype: str = "fp32"  # corpus vectors on disk: fp32, or fp16 (half the disk; scored in fp32)
    processes: int = 1  # corpus-encoding worker processes on `device` (cpu: threads split between them)
    devices: tuple[str, ...] | None = (
        None  # one worker per entry, e.g. ("cuda:0", "cuda:1"); wins over processes
    )
    score: str | None = None  # dense: "dot" or "cos"; None: the preset's, else the model's own, else cos
    # Learned sparse and late-interaction models (see sparse.py, multivector.py).
    family: str = "auto"  # auto: from the preset or the model's files (models.detect_family)
    candidates: str | None = None  # re-rank this system's stored run (late interaction: two-stage)
    depth: int = 1000  # candidates per query taken from that run
    maxsim_search: str = "auto"  # late interaction: auto, full or rerank


def make_retriever(spec: str | ModelPair, opts: RetrieverOptions) -> Retriever:
    """`bm25`, a GTR/other preset name, a hub id, a local sentence-transformers folder, or a
    `ModelPair` of query and document models."""
    if spec == "bm25":
        return BM25Retriever(opts.bm25, progress=opts.progress, cache_dir=opts.cache_dir)
    pair = spec if isinstance(spec, ModelPair) else None
    family = "dense" if pair else (model_family(spec) if opts.family == "auto" else opts.family)
    if family not in FAMILIES:
        raise ValueError(f"family must be auto or one of {', '.join(FAMILIES)}, not {family!r}")
    common = dict(
        model=pair.doc if pair else spec,
        query_prompt=opts.query_prompt,
        doc_prompt=opts.doc_prompt,
        max_length=opts.max_length,
        batch_size=opts.batch_size,
        device=_single_device(opts) or opts.device,
        dtype=opts.dtype,
        trust_remote_code=opts.trust_remote_code,
        shard_size=opts.shard_size,
    )
    if family in ("sparse", "multivector"):
        return _family_retriever(family, opts, common)
    cfg = DenseConfig(**common, query_model=pair.query if pair else None, score=opts.score, backend=opts.backend,
                      cache_dtype=opts.cache_dtype, devices=_worker_devices(opts))  # fmt: skip
    return DenseRetriever(cfg, cache_dir=opts.cache_dir, progress=opts.progress)


def _family_retriever(family: str, opts: RetrieverOptions, common: dict) -> Retriever:
    """A learned sparse or late-interaction retriever (in-process, torch backend)."""
    from .multivector import MultiVectorConfig, MultiVectorRetriever
    from .sparse import SparseConfig, SparseRetriever

    spec = common["model"]
    if opts.backend not in ("auto", "torch"):  # auto settles on torch for these families
        raise ValueError(f"{spec}: {family} models run with --backend torch, not {opts.backend}")
    if opts.cache_dtype != "fp32":
        raise ValueError(
            f"{spec}: --cache-dtype is for dense vectors ({family} caches have their own layout)"
        )
    if _worker_devices(opts):
        raise ValueError(
            f"{spec}: {family} models encode in-process; use --device, or --shard jobs of `gtr-eval encode`"
        )
    if family == "sparse":
        return SparseRetriever(SparseConfig(**common), cache_dir=opts.cache_dir, progress=opts.progress)
    cfg = MultiVectorConfig(**common, search=opts.maxsim_search, candidates=opts.candidates, depth=opts.depth)
    return MultiVectorRetriever(cfg, cache_dir=opts.cache_dir, progress=opts.progress)


def _single_device(opts: RetrieverOptions) -> str | None:
    devices = opts.devices.split(",") if isinstance(opts.devices, str) else (opts.devices or ())
    devices = [d.strip() for d in devices if d.strip()]
    return devices[0] if len(devices) == 1 else None


def _worker_devices(opts: RetrieverOptions) -> tuple[str, ...] | None:
    if opts.devices:
        devices = tuple(
            d.strip() for d in (opts.devices.split(",") if isinstance(opts.devices, str) else opts.devices)
        )
        devices = tuple(d for d in devices if d)
        return devices if len(devices) > 1 else None  # one device: encode in-process on it
    if opts.processes > 1:
        return (opts.device or default_device(),) * opts.processes
    return None
