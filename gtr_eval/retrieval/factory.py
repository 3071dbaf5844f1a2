"""From a `-m` argument and the run's options to a retriever."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .base import Retriever
from .bm25 import BM25Config, BM25Retriever
from .dense import DenseConfig, DenseRetriever
from .encoders import default_device


@dataclass
class RetrieverOptions:
    """CLI-level options shared by all models of one `run`."""

    cache_dir: Path | None = None
    device: str | None = None
    dtype: str = "fp32"
    batch_size: int | None = None
    backend: str = "torch"
    query_prompt: str | None = None
    doc_prompt: str | None = None
    max_length: int | None = None
    trust_remote_code: bool = False
    bm25: BM25Config = field(default_factory=BM25Config)
    progress: bool = True
    shard_size: int = 2048
    processes: int = 1  # corpus-encoding worker processes on `device` (cpu: threads split between them)
    devices: tuple[str, ...] | None = (
        None  # one worker per entry, e.g. ("cuda:0", "cuda:1"); wins over processes
    )


def make_retriever(spec: str, opts: RetrieverOptions) -> Retriever:
    """`bm25`, a GTR/other preset name, a hub id, or a local sentence-transformers folder."""
    if spec == "bm25":
        return BM25Retriever(opts.bm25, progress=opts.progress, cache_dir=opts.cache_dir)
    cfg = DenseConfig(
        model=spec,
        query_prompt=opts.query_prompt,
        doc_prompt=opts.doc_prompt,
        max_length=opts.max_length,
        batch_size=opts.batch_size,
        device=_single_device(opts) or opts.device,
        dtype=opts.dtype,
        backend=opts.backend,
        trust_remote_code=opts.trust_remote_code,
        shard_size=opts.shard_size,
        devices=_worker_devices(opts),
    )
    return DenseRetriever(cfg, cache_dir=opts.cache_dir, progress=opts.progress)


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
