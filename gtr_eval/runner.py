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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock, Timeout

from .data.loader import BeirData
from .data.units import DataOptions, DatasetUnit
from .evaluation import evaluate
from .results import RUN_SUFFIX, StoredResult, is_done, load_result, result_path, save_result
from .retrieval.base import Retriever
from .retrieval.factory import RetrieverOptions, make_retriever

log = logging.getLogger(__name__)

@dataclass
class RunConfig:
    models: list[str]
    datasets: list[str]
    data: DataOptions = field(default_factory=DataOptions)
    results_dir: Path = Path("results")
    top_k: int = 1000
    overwrite: bool = False
    options: RetrieverOptions = field(default_factory=RetrieverOptions)

    def units(self) -> list[DatasetUnit]:
        return [u for spec in self.datasets for u in self.data.units(spec)]


def _pair_lock(cfg: RunConfig, system: str, dataset: str) -> FileLock:
    lock_dir = Path(cfg.results_dir) / ".locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    return FileLock(str(lock_dir / f"{system}__{dataset.replace('/', '--')}.lock"))


def run(cfg: RunConfig, echo: Callable[[str], None] = print) -> list[StoredResult]:
    """Evaluate every model on every dataset; returns the stored results of all requested pairs."""
    units = cfg.units()
    retrievers: dict[str, Retriever] = {}
    results: list[StoredResult] = []
    deferred: list[tuple[DatasetUnit, str]] = []
    for unit in units:
        data: BeirData | None = None
        for spec in cfg.models:
            retriever = retrievers.get(spec) or retrievers.setdefault(spec, make_retriever(spec, cfg.options))
            name = retriever.name
            if not cfg.overwrite and is_done(cfg.results_dir, name, unit.name):
                echo(f"[skip] {name} on {unit.name}: already done")
                results.append(_reusable(cfg, retriever, unit))
                continue
            lock = _pair_lock(cfg, name, unit.name)
            try:
                lock.acquire(timeout=0)
            except Timeout:
                echo(f"[busy] {name} on {unit.name}: another process is on it; coming back later")
                deferred.append((unit, spec))
                continue
            try:
                if not cfg.overwrite and is_done(cfg.results_dir, name, unit.name):  # done since checked
                    echo(f"[skip] {name} on {unit.name}: finished by another process")
                    results.append(load_result(cfg.results_dir, name, unit.name))
                    continue
                data = data or _load(unit, echo, cfg)
                results.append(_evaluate_pair(cfg, retriever, unit, data, echo))
            finally:
                lock.release()
    for unit, spec in deferred:
        retriever = retrievers[spec]
        with _pair_lock(cfg, retriever.name, unit.name):
            if cfg.overwrite or not is_done(cfg.results_dir, retriever.name, unit.name):
                results.append(_evaluate_pair(cfg, retriever, unit, _load(unit, echo, cfg), echo))
            else:
                echo(f"[skip] {retriever.name} on {unit.name}: finished by another process")
                results.append(load_result(cfg.results_dir, retriever.name, unit.name))
    for r in retrievers.values():
        r.close()
    return results


def _reusable(cfg: RunConfig, retriever: Retriever, unit: DatasetUnit) -> StoredResult:
    """The stored result, if it was made with the settings asked for now; else a clear error."""
    stored = load_result(cfg.results_dir, retriever.name, unit.name)
    wanted = {**retriever.settings(), "top_k": cfg.top_k}
    differ = {k: (stored.manifest.get(k), v) for k, v in wanted.items() if stored.manifest.get(k) != v}
    if differ:
        details = "; ".join(f"{k}: stored {old!r}, asked {new!r}" for k, (old, new) in differ.items())
        raise ValueError(
            f"{stored.path} was made with other settings ({details}). Use --overwrite to replace it, "
            "or another --results-dir to keep both."
        )
    return stored


def _load(unit: DatasetUnit, echo, cfg: RunConfig) -> BeirData:
    t0 = time.perf_counter()
    cache = cfg.options.cache_dir
    data = unit.load(store_dir=cache / "corpus" if cache is not None else None)  # the corpus store
    data.manifest_timing = time.perf_counter() - t0  # type: ignore[attr-defined]
    echo(f"[data] {unit.name}: {len(data.corpus):,} documents, {len(data.queries):,} {unit.split} queries")
    return data


def _evaluate_pair(
    cfg: RunConfig, retriever: Retriever, unit: DatasetUnit, data: BeirData, echo
) -> StoredResult:
    final = result_path(cfg.results_dir, retriever.name, unit.name)
    for leftover in (final.name, final.stem + RUN_SUFFIX):  # temp files of a run killed mid-write
        for stale in final.parent.glob(f".{glob.escape(leftover)}.*.tmp"):  # (we hold the pair's lock)
            stale.unlink(missing_ok=True)
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
        "dataset": {
            "name": unit.name,
            "path": str(unit.path),
            "split": unit.split,
            "checksum": data.checksum,
            "files_sha256": data.checksums,
            "num_docs": len(data.corpus),
            "num_queries": len(data.queries),
            "ignore_identical_ids": unit.ignore_identical_ids,
            **({"retrieval_scope": "per paper (PeerQA)"} if groups is not None else {}),
        },
        "encode_stats": getattr(retriever, "stats", {}),
        "timings": timings,
    }
    path = save_result(cfg.results_dir, retriever.name, unit.name, unit.split, evaluation, run, manifest)
    if stats := getattr(retriever, "stats", None):
        echo(
            f"[cache] {retriever.name} on {unit.name}: encoded {stats['corpus_shards_encoded']} of "
            f"{stats['corpus_shards']} corpus shards, reused {stats['corpus_shards_reused']}"
        )
    m = evaluation.metrics
    echo(
        f"[done] {retriever.name} on {unit.name}: nDCG@10 {m['ndcg@10']:.4f}  Recall@100 {m['recall@100']:.4f}"
        f"  MRR@10 {m['mrr@10']:.4f}  ({t1 - t0:.1f} s) -> {path}"
    )
    return load_result(cfg.results_dir, retriever.name, unit.name)


SUMMARY_METRICS = ("ndcg@10", "recall@100", "mrr@10")


def summary_table(results: list[StoredResult], metrics: tuple[str, ...] = SUMMARY_METRICS) -> str:
    """One line per (system, dataset) of this run; `gtr-eval table` makes the full leaderboard."""
    from tabulate import tabulate

    rows = [[r.system, r.dataset, *(r.metrics.get(m) for m in metrics)] for r in results]
    return tabulate(rows, headers=["system", "dataset", *metrics], floatfmt=".4f", tablefmt="github")
