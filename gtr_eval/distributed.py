"""Encoding a corpus on many devices, processes or machines; searching stays one cheap merge step.

Three ways, one cache layout.  The corpus is cut into cache shards over a deterministic
longest-first order, so shard i means the same documents to every process that computes it:

* `EncoderPool` (`run --processes N` / `--devices cuda:0,cuda:1`): worker processes on one machine,
  each with its own model; the main process hands them pieces of shards and writes the shards.
* `gtr-eval encode --shard I/N`: one job of N encodes the shards with number % N == I into the
  (shared) cache; any scheduler can run the N jobs (a SLURM array, Kubernetes, GNU parallel).  A
  later `gtr-eval run` with the same options finds every shard complete and only searches.
* `--ray`: the same N jobs as Ray tasks (`ray.init(address)`), then the merge check.

Shards are claimed with per-shard file locks, so jobs that overlap never write a shard twice.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from .artifacts import CacheRoot
from .data.units import DatasetUnit
from .pipeline.runner import RunConfig
from .retrieval import families
from .retrieval.cache import shard_selector
from .retrieval.encoded import EncodedRetriever
from .retrieval.factory import RetrieverOptions, make_retriever

log = logging.getLogger(__name__)


def parse_shard(text: str) -> tuple[int, int]:
    """`I/N` -> (I, N) with 0 <= I < N."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not m or not 0 <= int(m.group(1)) < int(m.group(2)):
        raise ValueError(f"--shard must be I/N with 0 <= I < N (e.g. 3/16), not {text!r}")
    return int(m.group(1)), int(m.group(2))


# ------------------------------------------------------------------ many machines: shards as jobs


def encode_job(
    model: str,
    unit: DatasetUnit,
    opts: RetrieverOptions,
    shard: tuple[int, int] = (0, 1),
    threads: int | None = None,
) -> dict:
    """Encode the corpus shards of (model, dataset unit) that job `shard` = (I, N) owns.

    The unit of work of `gtr-eval encode --shard I/N`, of a Ray task, and of the merge check (0/1).
    """
    if threads:
        import torch

        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    data = unit.load(store_dir=CacheRoot.corpus_area(opts.cache_dir))
    retriever = make_retriever(model, opts)
    if not isinstance(retriever, EncodedRetriever):
        raise ValueError(f"{model}: only dense, sparse and late-interaction models have vectors to encode")
    try:
        stats = dict(
            retriever.index(data.corpus, select=shard_selector(*shard) if shard[1] > 1 else None).stats
        )
        return {
            "model": retriever.name,
            "dataset": unit.name,
            "shard": f"{shard[0]}/{shard[1]}",
            "backend": getattr(retriever.spec, "backend", "torch"),
            **{k: stats[k] for k in ("corpus_shards", "corpus_shards_encoded", "corpus_shards_reused")},
            "complete": stats["corpus_complete"],
            "folder": stats["cache_folder"],
            "seconds": time.perf_counter() - t0,
        }
    finally:
        retriever.close()


def describe(stats: dict) -> str:
    if stats["shard"] == "0/1":
        return (
            f"[cache] {stats['model']} on {stats['dataset']}: encoded {stats['corpus_shards_encoded']} of "
            f"{stats['corpus_shards']} corpus shards, reused {stats['corpus_shards_reused']} (backend {stats['backend']})"
        )
    return (
        f"[cache] {stats['model']} on {stats['dataset']} (shard {stats['shard']}): encoded "
        f"{stats['corpus_shards_encoded']}, reused {stats['corpus_shards_reused']} of the "
        f"{stats['corpus_shards']} corpus shards; all complete: {'yes' if stats['complete'] else 'no'} "
        f"(backend {stats['backend']})"
    )


def _absolute(unit: DatasetUnit) -> DatasetUnit:
    return replace(unit, path=Path(unit.path).resolve())


def ray_encode(
    models: list[str],
    units: list[DatasetUnit],
    opts: RetrieverOptions,
    address: str | None = None,
    tasks: int | None = None,
    cpus_per_task: float = 1,
    gpus_per_task: float = 0,
    echo: Callable[[str], None] = print,
) -> list[dict]:
    """Run the N shard jobs of every (model, unit) as Ray tasks, then merge-check in this process.

    Tasks write to `opts.cache_dir`, which every node must see at the same path (a shared file
    system); so must the dataset folders.  `tasks` defaults to the cluster's CPUs / `cpus_per_task`.
    """
    try:
        import ray
    except ImportError as e:
        raise RuntimeError("--ray needs `pip install ray` (or `pip install gtr-eval[ray]`)") from e
    if opts.cache_dir is None:
        raise ValueError("--ray needs a cache folder every task can write (not --no-cache)")
    opts = replace(opts, cache_dir=Path(opts.cache_dir).resolve(), progress=False)
    units = [_absolute(u) for u in units]
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    n = tasks or max(1, int(ray.cluster_resources().get("CPU", 1) // max(cpus_per_task, 1e-9)))
    threads = max(1, int(cpus_per_task)) if not gpus_per_task else None
    job = ray.remote(encode_job).options(num_cpus=cpus_per_task, num_gpus=gpus_per_task, max_retries=2)
    if gpus_per_task and not opts.device:
        opts = replace(opts, device="cuda")  # Ray sets CUDA_VISIBLE_DEVICES to the task's GPUs
    t0 = time.perf_counter()
    # Which backend each task settles on does not matter: the cache is keyed by what the vectors are
    # (`backends`: fp32 backends give the same ones), so every task fills the same entry.
    refs = [job.remote(m, u, opts, (i, n), threads) for m in models for u in units for i in range(n)]
    for stats in ray.get(refs):
        echo(describe(stats))
    echo(
        f"[ray] {len(refs)} tasks ({n} shards x {len(models)} models x {len(units)} datasets) in "
        f"{time.perf_counter() - t0:.1f} s"
    )
    return [merge(m, u, opts, echo) for m in models for u in units]


def merge(model: str, unit: DatasetUnit, opts: RetrieverOptions, echo: Callable[[str], None] = print) -> dict:
    """The merge step: every shard checked (and any a failed job left missing encoded here)."""
    stats = encode_job(model, unit, opts)
    echo(describe(stats))
    return stats


def dense_models(models: list[str]) -> list[str]:
    """The models that encode a corpus (a system a family answers to by name, like BM25, has no
    embeddings)."""
    return [m for m in models if families.by_request_name(m) is None]


def ray_encode_for_run(cfg: RunConfig, address: str | None = None, echo=print, **kw) -> None:
    """`run --ray`: encode every dense model's corpora on Ray first; the run then only searches."""
    units = cfg.units()
    if models := dense_models(list(cfg.models)):
        ray_encode(models, units, cfg.options, address=address, echo=echo, **kw)
