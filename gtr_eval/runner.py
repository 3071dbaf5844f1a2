"""`run`: every (system, dataset) pair once, skip what is done, resume what was cut short.

A pair is done when its result JSON exists (written atomically after its run file), so a run killed
anywhere restarts at the first unfinished pair; the embedding cache makes an interrupted encode
resume at its last complete shard.  A file lock per pair lets two processes share one results folder:
the second skips pairs the first is working on and comes back to them at the end.
"""

from __future__ import annotations

import glob
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock, Timeout

from .data.loader import BeirData
from .data.units import DataOptions, DatasetUnit
from .evaluation import evaluate
from .results import RUN_SUFFIX, StoredResult, is_done, load_result, result_path, save_result
from .retrieval.base import Retriever
from .retrieval.factory import ModelPair, RetrieverOptions, make_retriever

log = logging.getLogger(__name__)

@dataclass
class RunConfig:
    models: list[str | ModelPair]
    datasets: list[str]
    data: DataOptions = field(default_factory=DataOptions)
    results_dir: Path = Path("results")
    top_k: int = 1000
    overwrite: bool = False
    options: RetrieverOptions = field(default_factory=RetrieverOptions)

    def units(self) -> list[DatasetUnit]:
        return [u for spec in self.datasets for u in self.data.units(spec)]


def pair_lock(results_dir: Path | str, system: str, dataset: str) -> FileLock:
    """The lock of one (system, dataset) pair of a results folder: one process computes it."""
    lock_dir = Path(results_dir) / ".locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    return FileLock(str(lock_dir / f"{system}__{dataset.replace('/', '--')}.lock"))


@dataclass
class PairJob:
    """One (system, dataset) pair: `compute` makes and stores its result, `reuse` returns the stored
    one after checking it was made with the settings asked for now."""

    system: str
    dataset: str
    compute: Callable[[], StoredResult]
    reuse: Callable[[], StoredResult]


def each_pair(
    jobs: Iterable[PairJob], results_dir: Path | str, overwrite: bool, echo: Callable[[str], None] = print
) -> list[StoredResult]:
    """Compute every pair not done yet, once, however many processes share `results_dir`.

    A pair another process holds is skipped and revisited at the end (then it is usually done).
    `run`, `rerank` and `fuse` all go through here.
    """
    results: list[StoredResult] = []
    deferred: list[PairJob] = []
    for job in jobs:
        name, dataset = job.system, job.dataset
        if not overwrite and is_done(results_dir, name, dataset):
            echo(f"[skip] {name} on {dataset}: already done")
            results.append(job.reuse())
            continue
        lock = pair_lock(results_dir, name, dataset)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            echo(f"[busy] {name} on {dataset}: another process is on it; coming back later")
            deferred.append(job)
            continue
        try:
            if not overwrite and is_done(results_dir, name, dataset):  # done since checked
                echo(f"[skip] {name} on {dataset}: finished by another process")
                results.append(load_result(results_dir, name, dataset))
                continue
            results.append(job.compute())
        finally:
            lock.release()
    for job in deferred:
        with pair_lock(results_dir, job.system, job.dataset):
            if overwrite or not is_done(results_dir, job.system, job.dataset):
                results.append(job.compute())
            else:
                echo(f"[skip] {job.system} on {job.dataset}: finished by another process")
                results.append(load_result(results_dir, job.system, job.dataset))
    return results


class DataMemo:
    """The last dataset unit loaded: consecutive pairs on one dataset load it once."""

    def __init__(self, echo: Callable[[str], None]):
        self.echo = echo
        self._name: str | None = None
        self._data: BeirData | None = None

    def __call__(self, unit: DatasetUnit) -> BeirData:
        if self._name != unit.name or self._data is None:
            self._data = None  # release the previous dataset before loading the next
            self._data = _load(unit, self.echo)
            self._name = unit.name
        return self._data


def run(cfg: RunConfig, echo: Callable[[str], None] = print) -> list[StoredResult]:
    """Evaluate every model on every dataset; returns the stored results of all requested pairs."""
    retrievers: dict[str | ModelPair, Retriever] = {}
    data = DataMemo(echo)

    def jobs():
        for unit in cfg.units():
            for spec in cfg.models:
                retriever = retrievers.get(spec) or retrievers.setdefault(spec, make_retriever(spec, cfg.options))
                yield PairJob(
                    retriever.name,
                    unit.name,
                    compute=lambda r=retriever, u=unit: _evaluate_pair(cfg, r, u, data(u), echo),
                    reuse=lambda r=retriever, u=unit: reusable(
                        cfg.results_dir, r.name, u.name, {**r.settings(), "top_k": cfg.top_k}
                    ),
                )

    try:
        return each_pair(jobs(), cfg.results_dir, cfg.overwrite, echo)
    finally:
        for r in retrievers.values():
            r.close()


def reusable(results_dir: Path | str, system: str, dataset: str, wanted: dict) -> StoredResult:
    """The stored result, if it was made with the settings asked for now; else a clear error."""
    stored = load_result(results_dir, system, dataset)
    differ = {k: (stored.manifest.get(k), v) for k, v in wanted.items() if stored.manifest.get(k) != v}
    if differ:
        details = "; ".join(f"{k}: stored {old!r}, asked {new!r}" for k, (old, new) in differ.items())
        raise ValueError(
            f"{stored.path} was made with other settings ({details}). Use --overwrite to replace it, "
            "or another --results-dir to keep both."
        )
    return stored


def _load(unit: DatasetUnit, echo) -> BeirData:
    t0 = time.perf_counter()
    data = unit.load()
    data.manifest_timing = time.perf_counter() - t0  # type: ignore[attr-defined]
    echo(f"[data] {unit.name}: {len(data.corpus):,} documents, {len(data.queries):,} {unit.split} queries")
    return data


def _evaluate_pair(
    cfg: RunConfig, retriever: Retriever, unit: DatasetUnit, data: BeirData, echo
) -> StoredResult:
    clear_leftovers(cfg.results_dir, retriever.name, unit.name)
    retriever.timings.clear()
    t0 = time.perf_counter()
    if (groups := getattr(data, "groups", None)) is not None:  # PeerQA: each query searches its paper
        from .retrieval.scoped import scoped_search

        run = scoped_search(retriever, data.corpus, data.queries, groups, cfg.top_k)
    else:
        retriever.index(data.corpus)
        run = retriever.search(data.queries, cfg.top_k)
    t1 = time.perf_counter()
    evaluation = evaluate(data.qrels, run, ignore_identical_ids=unit.ignore_identical_ids)
    timings = {
        "load_data_s": getattr(data, "manifest_timing", None),
        **retriever.timings,
        "retrieve_total_s": t1 - t0,
        "evaluate_s": time.perf_counter() - t1,
    }
    manifest = {
        **retriever.manifest(),
        "top_k": cfg.top_k,
        "dataset": dataset_manifest(unit, data),
        "encode_stats": getattr(retriever, "stats", {}),
        "timings": timings,
    }
    path = save_result(cfg.results_dir, retriever.name, unit.name, unit.split, evaluation, run, manifest)
    if stats := getattr(retriever, "stats", None):
        echo(
            f"[cache] {retriever.name} on {unit.name}: encoded {stats['corpus_shards_encoded']} of "
            f"{stats['corpus_shards']} corpus shards, reused {stats['corpus_shards_reused']}"
        )
    echo_done(echo, retriever.name, unit.name, evaluation.metrics, t1 - t0, path)
    return load_result(cfg.results_dir, retriever.name, unit.name)


def clear_leftovers(results_dir: Path | str, system: str, dataset: str) -> None:
    """Remove the temp files of a write killed mid-way (call with the pair's lock held)."""
    final = result_path(results_dir, system, dataset)
    for leftover in (final.name, final.stem + RUN_SUFFIX):
        for stale in final.parent.glob(f".{glob.escape(leftover)}.*.tmp"):
            stale.unlink(missing_ok=True)


def dataset_manifest(unit: DatasetUnit, data: BeirData) -> dict:
    """What a result records about its data: files, checksums, split, sizes, conventions."""
    groups = getattr(data, "groups", None)
    return {
        "name": unit.name,
        "path": str(unit.path),
        "split": unit.split,
        "checksum": data.checksum,
        "files_sha256": data.checksums,
        "num_docs": len(data.corpus),
        "num_queries": len(data.queries),
        "ignore_identical_ids": unit.ignore_identical_ids,
        **({"retrieval_scope": "per paper (PeerQA)"} if groups is not None else {}),
    }


def echo_done(echo, system: str, dataset: str, metrics: dict, seconds: float, path: Path) -> None:
    echo(
        f"[done] {system} on {dataset}: nDCG@10 {metrics['ndcg@10']:.4f}  Recall@100 {metrics['recall@100']:.4f}"
        f"  MRR@10 {metrics['mrr@10']:.4f}  ({seconds:.1f} s) -> {path}"
    )


SUMMARY_METRICS = ("ndcg@10", "recall@100", "mrr@10")


def summary_table(results: list[StoredResult], metrics: tuple[str, ...] = SUMMARY_METRICS) -> str:
    """One line per (system, dataset) of this run; `gtr-eval table` makes the full leaderboard."""
    from tabulate import tabulate

    rows = [[r.system, r.dataset, *(r.metrics.get(m) for m in metrics)] for r in results]
    return tabulate(rows, headers=["system", "dataset", *metrics], floatfmt=".4f", tablefmt="github")
