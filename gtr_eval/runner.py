"""`run`: every (system, dataset) pair once, skip what is done, resume what was cut short.

A pair is done when its result JSON exists (written atomically after its run file), so a run killed
anywhere restarts at the first unfinished pair; the embedding cache makes an interrupted encode
resume at its last complete shard.  A file lock per pair lets two processes share one results folder:
the second skips pairs the first is working on and comes back to them at the end.

A sweep (`-d beir`) is many pairs: one that fails (a download, bad data, a model that will not load or
runs out of memory) is reported and skipped, the others go on, and the result lists what failed and
why. One overall progress line (pairs done of all, elapsed, estimate) sits above the per-stage bars.
"""

from __future__ import annotations

import glob
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock, Timeout

from .data.download import DownloadError, dataset_source
from .data.loader import BeirData
from .data.units import DataOptions, DatasetUnit, unit_names
from .evaluation import evaluate
from .results import RUN_SUFFIX, StoredResult, is_done, load_result, result_path, save_result
from .retrieval.base import Retriever
from .retrieval.factory import RetrieverOptions, make_retriever
from .retrieval.models import system_name

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
        """Every unit of the run (sweeps expanded), downloading what is missing."""
        return [u for spec in self.data.expand(self.datasets).datasets for u in self.data.units(spec)]


def _pair_lock(cfg: RunConfig, system: str, dataset: str) -> FileLock:
    lock_dir = Path(cfg.results_dir) / ".locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    return FileLock(str(lock_dir / f"{system}__{dataset.replace('/', '--')}.lock"))


PAIR_ERRORS = (RuntimeError, ValueError, OSError, MemoryError)
"""What one pair may raise without stopping a sweep: download failures (DownloadError), bad data
(DataError), a model that cannot be fetched or runs out of memory (torch's OutOfMemoryError is a
RuntimeError), a full disk. Anything else is a bug and stops the run."""


@dataclass
class PairFailure:
    system: str
    dataset: str
    stage: str  # "download", "data", "model", "reuse" (a stored result made otherwise) or "run"
    error: str

    def __str__(self) -> str:
        return f"{self.system} on {self.dataset}: {self.stage} failed: {self.error}"


class RunResults(list):
    """The stored results of the pairs that succeeded (a list), with what failed and what was skipped."""

    def __init__(self, results=(), failures=(), skipped=()):
        super().__init__(results)
        self.failures: list[PairFailure] = list(failures)
        self.skipped: list[tuple[str, str]] = list(skipped)


def _describe(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    if isinstance(e, MemoryError) or "out of memory" in text.lower():
        return f"out of memory ({type(e).__name__}{': ' + text if text else ''})"
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


class _Sweep:
    """Bookkeeping for one `run`: retrievers built once, the overall progress line, failures."""

    def __init__(self, cfg: RunConfig, echo: Callable[[str], None], total: int):
        from tqdm.auto import tqdm

        self.cfg, self._echo = cfg, echo
        self.retrievers: dict[str, Retriever] = {}
        self.broken: dict[str, str] = {}  # model spec -> why it could not be built
        self.out = RunResults()
        self.bar = tqdm(total=total, desc="pairs", unit="pair", position=0, leave=True, file=sys.stderr,
                        disable=not cfg.options.progress, dynamic_ncols=True)

    def say(self, msg: str) -> None:
        if self.bar.disable:
            self._echo(msg)
            return
        with self.bar.external_write_mode(file=sys.stderr):
            self._echo(msg)

    def retriever(self, spec: str) -> Retriever:
        if spec not in self.retrievers:
            try:
                self.retrievers[spec] = make_retriever(spec, self.cfg.options)
            except PAIR_ERRORS as e:
                self.broken[spec] = _describe(e)
                raise
        return self.retrievers[spec]

    def fail(self, system: str, dataset: str, stage: str, e: BaseException | str, say: bool = True) -> None:
        failure = PairFailure(system, dataset, stage, e if isinstance(e, str) else _describe(e))
        self.out.failures.append(failure)
        if say:
            self.say(f"[fail] {failure}")
        self.step()

    def step(self) -> None:
        if self.out.failures:
            self.bar.set_postfix(failed=len(self.out.failures), refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()
        for r in self.retrievers.values():
            r.close()


def run(cfg: RunConfig, echo: Callable[[str], None] = print) -> RunResults:
    """Evaluate every model on every dataset; returns the stored results of all requested pairs.

    A pair that fails (a download, bad data, a model that cannot load or runs out of memory) is
    reported and skipped; the others go on. `RunResults.failures` says what failed and why.
    """
    selection = cfg.data.expand(cfg.datasets)
    planned = {spec: unit_names(spec, cfg.data.data_dir) for spec in selection.datasets}
    sweep = _Sweep(cfg, echo, total=len(cfg.models) * sum(len(u) for u in planned.values()))
    sweep.out.skipped = selection.skipped
    for name, why in selection.skipped:
        sweep.say(f"[skip] {name}: {why}")
    deferred: list[tuple[DatasetUnit, str]] = []
    try:
        for spec in selection.datasets:
            try:
                units = cfg.data.units(spec)
            except PAIR_ERRORS as e:
                stage = "download" if isinstance(e, DownloadError) else "data"
                units_note = f" ({len(planned[spec])} subforums)" if len(planned[spec]) > 1 else ""
                for model in cfg.models:
                    sweep.say(f"[fail] {_system(sweep, model)} on {spec}{units_note}: {stage} failed: {_describe(e)}")
                    for unit_name in planned[spec]:
                        sweep.fail(_system(sweep, model), unit_name, stage, e, say=False)
                continue
            for unit in units:
                deferred += _run_unit(cfg, sweep, unit)
        for unit, spec in deferred:
            _run_deferred(cfg, sweep, unit, spec)
    finally:
        sweep.close()
    return sweep.out


def _system(sweep: _Sweep, spec: str) -> str:
    r = sweep.retrievers.get(spec)
    return r.name if r is not None else ("bm25" if spec == "bm25" else system_name(spec))


def _run_unit(cfg: RunConfig, sweep: _Sweep, unit: DatasetUnit) -> list[tuple[DatasetUnit, str]]:
    """Every model on one unit; returns the pairs another process holds, to come back to."""
    data: BeirData | None = None
    data_error: BaseException | None = None  # data that would not load is not read again for the next model
    deferred = []
    for spec in cfg.models:
        if spec in sweep.broken:
            sweep.fail(_system(sweep, spec), unit.name, "model", sweep.broken[spec])
            continue
        try:
            retriever = sweep.retriever(spec)
        except PAIR_ERRORS as e:
            sweep.fail(_system(sweep, spec), unit.name, "model", e)
            continue
        name = retriever.name
        if not cfg.overwrite and is_done(cfg.results_dir, name, unit.name):
            try:
                sweep.out.append(_reusable(cfg, retriever, unit))
            except PAIR_ERRORS as e:
                sweep.fail(name, unit.name, "reuse", e)
                continue
            sweep.say(f"[skip] {name} on {unit.name}: already done")
            sweep.step()
            continue
        lock = _pair_lock(cfg, name, unit.name)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            sweep.say(f"[busy] {name} on {unit.name}: another process is on it; coming back later")
            deferred.append((unit, spec))
            continue
        stage = "data"
        try:
            if not cfg.overwrite and is_done(cfg.results_dir, name, unit.name):  # done since checked
                sweep.say(f"[skip] {name} on {unit.name}: finished by another process")
                sweep.out.append(load_result(cfg.results_dir, name, unit.name))
            else:
                if data_error is not None:
                    raise data_error
                data = data or _load(unit, sweep.say)
                stage = "run"
                sweep.out.append(_evaluate_pair(cfg, retriever, unit, data, sweep.say))
        except PAIR_ERRORS as e:
            _release_memory()
            data_error = e if stage == "data" else data_error
            sweep.fail(name, unit.name, stage, e)
            continue
        finally:
            lock.release()
        sweep.step()
    return deferred


def _run_deferred(cfg: RunConfig, sweep: _Sweep, unit: DatasetUnit, spec: str) -> None:
    retriever = sweep.retrievers[spec]
    try:
        with _pair_lock(cfg, retriever.name, unit.name):
            if cfg.overwrite or not is_done(cfg.results_dir, retriever.name, unit.name):
                sweep.out.append(_evaluate_pair(cfg, retriever, unit, _load(unit, sweep.say), sweep.say))
            else:
                sweep.say(f"[skip] {retriever.name} on {unit.name}: finished by another process")
                sweep.out.append(load_result(cfg.results_dir, retriever.name, unit.name))
    except PAIR_ERRORS as e:
        _release_memory()
        sweep.fail(retriever.name, unit.name, "run", e)
        return
    sweep.step()


def _release_memory() -> None:
    """After an out-of-memory error, give the next pair the memory back."""
    import gc

    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def failure_summary(results: RunResults) -> str:
    """What failed and why; CQADupStack subforums that failed alike are one line."""
    groups: dict[tuple[str, str, str, str], list[str]] = {}
    for f in results.failures:
        groups.setdefault((f.system, f.dataset.split("/")[0], f.stage, f.error), []).append(f.dataset)
    lines = [f"{len(results.failures)} pair(s) failed and were skipped; the others finished:"]
    for (system, dataset, stage, error), units in groups.items():
        where = units[0] if len(units) == 1 else f"{dataset} ({len(units)} subforums)"
        lines.append(f"  - {system} on {where}: {stage} failed: {error}")
    return "\n".join(lines)


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


def _load(unit: DatasetUnit, echo) -> BeirData:
    t0 = time.perf_counter()
    data = unit.load()
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
            "source": dataset_source(unit.path),
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
