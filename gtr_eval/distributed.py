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
import math
import re
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import click
import numpy as np

if TYPE_CHECKING:
    from .encoders import EncoderSpec
    from .retrievers import DenseRetriever, RetrieverOptions
    from .runner import DatasetUnit, RunConfig

log = logging.getLogger(__name__)


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def parse_shard(text: str) -> tuple[int, int]:
    """`I/N` -> (I, N) with 0 <= I < N."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not m or not 0 <= int(m.group(1)) < int(m.group(2)):
        raise ValueError(f"--shard must be I/N with 0 <= I < N (e.g. 3/16), not {text!r}")
    return int(m.group(1)), int(m.group(2))


# ------------------------------------------------------------------------------ one machine: a pool

_WORKER: dict = {}


def _init_worker(spec: EncoderSpec, devices, threads: int | None) -> None:
    device = devices.get()
    cpu = device.startswith("cpu")
    _WORKER["encoder"] = replace(spec, device=device, threads=threads if cpu else spec.threads).load()


def _worker_encode(texts: list[str], prompt: str) -> np.ndarray:
    return _WORKER["encoder"].encode(texts, prompt)


class EncoderPool:
    """One process per device, each with its own copy of the model (spawned: CUDA-safe).

    CPU workers share the machine's cores: each gets `threads // n_cpu_workers` intra-op threads,
    where `threads` is the retriever's setting or torch's current default.
    """

    def __init__(self, retriever: DenseRetriever, devices: list[str]):
        self.retriever = retriever
        self.devices = list(devices)
        self.n = len(devices)
        self.batch_size = retriever.batch_size
        self._executor: ProcessPoolExecutor | None = None

    @property
    def executor(self) -> ProcessPoolExecutor:
        """Started on first use: a run whose shards are all cached spawns no worker."""
        if self._executor is None:
            import multiprocessing as mp

            import torch

            n_cpu = sum(d.startswith("cpu") for d in self.devices)
            total = self.retriever.config.threads or torch.get_num_threads()
            threads = max(1, total // n_cpu) if n_cpu else None
            # every worker truncates alike: the max length is fixed here, as in the cache key
            spec = replace(self.retriever.spec(), max_length=self.retriever.max_length())
            ctx = mp.get_context("spawn")
            queue = ctx.Queue()
            for d in self.devices:
                queue.put(d)
            self._executor = ProcessPoolExecutor(
                self.n, mp_context=ctx, initializer=_init_worker, initargs=(spec, queue, threads)
            )
            log.info(
                "encoder pool: %d workers on %s, %s threads each", self.n, ",".join(self.devices), threads
            )
        return self._executor

    def __enter__(self) -> EncoderPool:
        return self

    def __exit__(self, *exc) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)

    def encode_many(self, prompt: str) -> Callable[[Iterator[list[str]]], Iterator[np.ndarray]]:
        """Shards in, vectors out, in order; two shards' pieces stay queued so no worker idles."""

        def run(shards: Iterator[list[str]]) -> Iterator[np.ndarray]:
            window: deque[list[Future]] = deque()
            outstanding = 0
            it = iter(shards)
            exhausted = False
            try:
                while True:
                    while not exhausted and (len(window) < 2 or outstanding < 2 * self.n):
                        texts = next(it, None)
                        if texts is None:
                            exhausted = True
                            break
                        piece = max(1, min(4 * self.batch_size, math.ceil(len(texts) / (2 * self.n))))
                        futures = [
                            self.executor.submit(_worker_encode, texts[a : a + piece], prompt)
                            for a in range(0, len(texts), piece)
                        ]
                        window.append(futures)
                        outstanding += len(futures)
                    if not window:
                        return
                    futures = window.popleft()
                    outstanding -= len(futures)
                    parts = [f.result() for f in futures]
                    yield np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)
            finally:
                for futures in window:
                    for f in futures:
                        f.cancel()

        return run


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
    from .cache import shard_selector
    from .retrievers import DenseRetriever, make_retriever

    if threads:
        import torch

        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    data = unit.load()
    retriever = make_retriever(model, opts)
    if not isinstance(retriever, DenseRetriever):
        raise ValueError(f"{model}: only dense models have embeddings to encode")
    try:
        retriever.index(data.corpus, select=shard_selector(*shard) if shard[1] > 1 else None)
        return {
            "model": retriever.name,
            "dataset": unit.name,
            "shard": f"{shard[0]}/{shard[1]}",
            **retriever.stats,
            "complete": retriever._emb.complete,
            "folder": str(retriever._emb.folder),
            "seconds": time.perf_counter() - t0,
        }
    finally:
        retriever.close()


def describe(stats: dict) -> str:
    if stats["shard"] == "0/1":
        return (
            f"[cache] {stats['model']} on {stats['dataset']}: encoded {stats['corpus_shards_encoded']} of "
            f"{stats['corpus_shards']} corpus shards, reused {stats['corpus_shards_reused']}"
        )
    return (
        f"[cache] {stats['model']} on {stats['dataset']} (shard {stats['shard']}): encoded "
        f"{stats['corpus_shards_encoded']}, reused {stats['corpus_shards_reused']} of the "
        f"{stats['corpus_shards']} corpus shards; all complete: {'yes' if stats['complete'] else 'no'}"
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
    return [m for m in models if m != "bm25"]


def ray_encode_for_run(cfg: RunConfig, address: str | None = None, echo=print, **kw) -> None:
    """`run --ray`: encode every dense model's corpora on Ray first; the run then only searches."""
    from .runner import resolve_dataset

    units = [u for spec in cfg.datasets for u in resolve_dataset(spec, cfg)]
    if models := dense_models(list(cfg.models)):
        ray_encode(models, units, cfg.options, address=address, echo=echo, **kw)


# --------------------------------------------------------------------------------------------- CLI


@click.command("encode")
@click.option(
    "-m", "--model", "models", multiple=True, required=True, help="Dense model (as for `run`). Repeatable."
)
@click.option(
    "-d", "--dataset", "datasets", multiple=True, required=True, help="Dataset (as for `run`). Repeatable."
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="GTR_EVAL_DATA_DIR",
    default="./data",
    show_default="$GTR_EVAL_DATA_DIR or ./data",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Embedding cache shared by all jobs  [default: $GTR_EVAL_CACHE_DIR, else the user cache dir]",
)
@click.option(
    "--shard",
    "shard",
    default=None,
    metavar="I/N",
    help="Encode only the cache shards whose number % N == I (job I of N).",
)
@click.option("--split", default=None)
@click.option("--no-download", is_flag=True, help="Fail instead of downloading a missing dataset.")
@click.option("--device", default=None)
@click.option("--dtype", type=click.Choice(["fp32", "fp16", "bf16"]), default="fp32", show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=None)
@click.option(
    "--backend",
    type=click.Choice(["torch", "onnx", "onnx-int8", "openvino"]),
    default="torch",
    show_default=True,
)
@click.option("--doc-prompt", default=None)
@click.option("--max-length", type=click.IntRange(1), default=None)
@click.option("--trust-remote-code", is_flag=True)
@click.option("--shard-size", type=click.IntRange(1), default=2048, show_default=True)
@click.option(
    "--processes",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Worker processes for this job's shards.",
)
@click.option("--devices", default=None, help="One worker per device, e.g. cuda:0,cuda:1 or cpu,cpu.")
@click.option("--ray", "use_ray", is_flag=True, help="Run the N shard jobs as Ray tasks, then merge.")
@click.option(
    "--ray-address", default=None, help="Ray cluster (e.g. auto, ray://head:10001)  [default: local]"
)
@click.option(
    "--ray-tasks", type=click.IntRange(1), default=None, help="N  [default: cluster CPUs / --ray-cpus]"
)
@click.option(
    "--ray-cpus", type=float, default=1.0, show_default=True, help="CPUs per Ray task (= its threads)."
)
@click.option("--ray-gpus", type=float, default=0.0, show_default=True, help="GPUs per Ray task.")
@click.option("--quiet", is_flag=True)
def encode_cmd(
    models,
    datasets,
    data_dir,
    cache_dir,
    shard,
    split,
    no_download,
    device,
    dtype,
    batch_size,
    backend,
    doc_prompt,
    max_length,
    trust_remote_code,
    shard_size,
    processes,
    devices,
    use_ray,
    ray_address,
    ray_tasks,
    ray_cpus,
    ray_gpus,
    quiet,
) -> None:
    """Encode corpora into the embedding cache, all of it or one shard job's part.

    Use the same model options as the later `gtr-eval run` (they are part of the cache key); that run
    then finds every shard and only encodes the queries and searches.

    \b
    Examples:
      gtr-eval encode -m gtr-t5-base -d nq --shard $SLURM_ARRAY_TASK_ID/16 --cache-dir /shared/cache
      gtr-eval encode -m gtr-t5-base -d nq --ray --ray-address auto --cache-dir /shared/cache
    """
    from .cache import default_cache_dir
    from .retrievers import RetrieverOptions
    from .runner import RunConfig, resolve_dataset

    try:
        index = parse_shard(shard) if shard else (0, 1)
        if use_ray and shard:
            raise ValueError("--shard and --ray do not mix: --ray runs all N jobs (set N with --ray-tasks)")
        opts = RetrieverOptions(
            cache_dir=cache_dir or default_cache_dir(),
            device=device,
            dtype=dtype,
            batch_size=batch_size,
            backend=backend,
            doc_prompt=doc_prompt,
            max_length=max_length,
            trust_remote_code=trust_remote_code,
            progress=not quiet,
            shard_size=shard_size,
            processes=processes,
            devices=devices,
        )
        cfg = RunConfig(
            list(models), list(datasets), data_dir=data_dir, download=not no_download, split=split
        )
        units = [u for spec in datasets for u in resolve_dataset(spec, cfg)]
        dense = dense_models(list(models))
        if len(dense) < len(models):
            click.echo("note: bm25 has no embeddings; skipped", err=True)
        echo = lambda s: click.echo(s, err=True)  # noqa: E731
        if use_ray:
            ray_encode(
                dense,
                units,
                opts,
                address=ray_address,
                tasks=ray_tasks,
                cpus_per_task=ray_cpus,
                gpus_per_task=ray_gpus,
                echo=echo,
            )
            return
        for m in dense:
            for u in units:
                echo(describe(encode_job(m, u, opts, index)))
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise click.ClickException(str(e)) from e
