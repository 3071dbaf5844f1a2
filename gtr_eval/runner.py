"""`run`: every (system, dataset) pair once, skip what is done, resume what was cut short.

A pair is done when its result JSON exists (written atomically after its run file), so a run killed
anywhere restarts at the first unfinished pair; the embedding cache makes an interrupted encode
resume at its last complete shard.  A file lock per pair lets two processes share one results folder:
the second skips pairs the first is working on and comes back to them at the end.

A sweep (`-d beir`) is many pairs: one that fails (a download, bad data, a model that will not load or
runs out of memory) is reported and skipped, the others go on, and the result lists what failed and
why. One overall progress line (pairs done of all, elapsed, estimate) sits above the per-stage bars.
`run`, `rerank` and `fuse` (gtr_eval/compose.py) all go through the one pair loop, `each_pair`.
"""

from __future__ import annotations

import glob
import logging
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock, Timeout

from .data.download import DownloadError, dataset_source
from .data.loader import BeirData
from .data.units import DataOptions, DatasetUnit, unit_names
from .evaluation import evaluate, read_trec_run
from .io import sha256_file
from .results import RUN_SUFFIX, StoredResult, is_done, load_result, result_path, save_result
from .retrieval.base import Retriever
from .retrieval.factory import ModelPair, RetrieverOptions, make_retriever
from .retrieval.models import system_name

log = logging.getLogger(__name__)

Echo = Callable[[str], None]


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
        """Every unit of the run (sweeps expanded), downloading what is missing."""
        return [u for spec in self.data.expand(self.datasets).datasets for u in self.data.units(spec)]


def pair_lock(results_dir: Path | str, system: str, dataset: str) -> FileLock:
    """The lock of one (system, dataset) pair of a results folder: one process computes it."""
    lock_dir = Path(results_dir) / ".locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    return FileLock(str(lock_dir / f"{system}__{dataset.replace('/', '--')}.lock"))


# ------------------------------------------------------------------------------- failures, progress

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


class StageError(RuntimeError):
    """A pair's failure at a known stage (its data would not load), carrying the original error."""

    def __init__(self, stage: str, error: BaseException):
        super().__init__(str(error))
        self.stage, self.error = stage, error


class RunResults(list):
    """The stored results of the pairs that succeeded (a list), with what failed and what was skipped."""

    def __init__(self, results=(), failures=(), skipped=()):
        super().__init__(results)
        self.failures: list[PairFailure] = list(failures)
        self.skipped: list[tuple[str, str]] = list(skipped)


def _describe(e: BaseException) -> str:
    if isinstance(e, StageError):
        e = e.error
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    if isinstance(e, MemoryError) or "out of memory" in text.lower():
        return f"out of memory ({type(e).__name__}{': ' + text if text else ''})"
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


class Sweep:
    """Bookkeeping for one command over many pairs: the overall progress line and what failed."""

    def __init__(self, echo: Echo, total: int | None, progress: bool = True):
        from tqdm.auto import tqdm

        self._echo = echo
        self.out = RunResults()
        self.bar = tqdm(total=total, desc="pairs", unit="pair", position=0, leave=True, file=sys.stderr,
                        disable=not progress, dynamic_ncols=True)  # fmt: skip

    def say(self, msg: str) -> None:
        if self.bar.disable:
            self._echo(msg)
            return
        with self.bar.external_write_mode(file=sys.stderr):
            self._echo(msg)

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


# ------------------------------------------------------------------------------------ the pair loop


@dataclass
class PairJob:
    """One (system, dataset) pair: `compute` makes and stores its result, `reuse` returns the stored
    one after checking it was made with the settings asked for now.  `failed`: a pair known to fail
    before it starts (its dataset would not download, its model would not load); `quiet` keeps its
    failure out of the log when one line already said it for many pairs."""

    system: str
    dataset: str
    compute: Callable[[], StoredResult] | None = None
    reuse: Callable[[], StoredResult] | None = None
    failed: tuple[str, BaseException | str] | None = None  # (stage, error)
    quiet: bool = False


def each_pair(jobs: Iterable[PairJob], results_dir: Path | str, overwrite: bool, sweep: Sweep) -> RunResults:
    """Compute every pair not done yet, once, however many processes share `results_dir`.

    A pair another process holds is skipped and revisited at the end (then it is usually done).  A
    pair that fails is recorded in `sweep` and the loop goes on.
    """
    deferred: list[PairJob] = []
    for job in jobs:
        name, dataset = job.system, job.dataset
        if job.failed is not None:
            sweep.fail(name, dataset, job.failed[0], job.failed[1], say=not job.quiet)
            continue
        if not overwrite and is_done(results_dir, name, dataset):
            try:
                sweep.out.append(job.reuse())
            except PAIR_ERRORS as e:
                sweep.fail(name, dataset, "reuse", e)
                continue
            sweep.say(f"[skip] {name} on {dataset}: already done")
            sweep.step()
            continue
        lock = pair_lock(results_dir, name, dataset)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            sweep.say(f"[busy] {name} on {dataset}: another process is on it; coming back later")
            deferred.append(job)
            continue
        try:
            if not overwrite and is_done(results_dir, name, dataset):  # done since checked
                sweep.say(f"[skip] {name} on {dataset}: finished by another process")
                sweep.out.append(load_result(results_dir, name, dataset))
            else:
                _compute(job, sweep)
                continue
        finally:
            lock.release()
        sweep.step()
    for job in deferred:
        with pair_lock(results_dir, job.system, job.dataset):
            if overwrite or not is_done(results_dir, job.system, job.dataset):
                _compute(job, sweep)
                continue
            sweep.say(f"[skip] {job.system} on {job.dataset}: finished by another process")
            sweep.out.append(load_result(results_dir, job.system, job.dataset))
        sweep.step()
    return sweep.out


def _compute(job: PairJob, sweep: Sweep) -> None:
    try:
        sweep.out.append(job.compute())
    except PAIR_ERRORS as e:
        _release_memory()
        sweep.fail(job.system, job.dataset, getattr(e, "stage", "run"), e)
        return
    sweep.step()


def _release_memory() -> None:
    """After an out-of-memory error, give the next pair the memory back."""
    import gc

    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


class DataMemo:
    """The last dataset unit loaded: consecutive pairs on one dataset load it once.  Data that would
    not load is not read again for the next system: the same `StageError("data", ...)` is raised."""

    def __init__(self, echo: Echo, cache_dir: Path | None = None):
        self.echo = echo
        self.cache_dir = cache_dir
        self._name: str | None = None
        self._data: BeirData | None = None
        self._error: StageError | None = None

    def __call__(self, unit: DatasetUnit) -> BeirData:
        if self._name != unit.name:
            self._data = self._error = None  # release the previous dataset before loading the next
            self._name = unit.name
            try:
                self._data = _load(unit, self.echo, self.cache_dir)
            except PAIR_ERRORS as e:
                self._error = StageError("data", e)
        if self._error is not None:
            raise self._error
        return self._data


def failed_units(spec: str, data: DataOptions, systems: list[str], sweep: Sweep, e: BaseException):
    """Failed jobs for every system on every unit of `spec` (whose folders would not download or
    load), announced in one line per system."""
    stage = "download" if isinstance(e, DownloadError) else "data"
    names = unit_names(spec, data.data_dir)
    note = f" ({len(names)} subforums)" if len(names) > 1 else ""
    for system in systems:
        sweep.say(f"[fail] {system} on {spec}{note}: {stage} failed: {_describe(e)}")
        for unit_name in names:
            yield PairJob(system, unit_name, failed=(stage, e), quiet=True)


# ------------------------------------------------------------------------------------------------ run


def run(cfg: RunConfig, echo: Echo = print) -> RunResults:
    """Evaluate every model on every dataset; returns the stored results of all requested pairs.

    A pair that fails (a download, bad data, a model that cannot load or runs out of memory) is
    reported and skipped; the others go on. `RunResults.failures` says what failed and why.
    """
    selection = cfg.data.expand(cfg.datasets)
    total = len(cfg.models) * sum(len(unit_names(s, cfg.data.data_dir)) for s in selection.datasets)
    sweep = Sweep(echo, total, cfg.options.progress)
    sweep.out.skipped = selection.skipped
    for name, why in selection.skipped:
        sweep.say(f"[skip] {name}: {why}")
    retrievers: dict[str | ModelPair, Retriever] = {}
    broken: dict[str | ModelPair, BaseException] = {}
    data = DataMemo(sweep.say, cfg.options.cache_dir)

    def system(spec: str | ModelPair) -> str:
        if spec in retrievers:
            return retrievers[spec].name
        if isinstance(spec, ModelPair):
            return f"{system_name(spec.query)}~{system_name(spec.doc)}"
        return "bm25" if spec == "bm25" else system_name(spec)

    def retriever(spec: str | ModelPair) -> Retriever:
        if spec in broken:
            raise broken[spec]
        if spec not in retrievers:
            try:
                retrievers[spec] = _make(spec, cfg.options, sweep.say)
            except PAIR_ERRORS as e:
                broken[spec] = e
                raise
        return retrievers[spec]

    def jobs():
        for spec in selection.datasets:
            try:
                units = cfg.data.units(spec)
            except PAIR_ERRORS as e:
                yield from failed_units(spec, cfg.data, [system(m) for m in cfg.models], sweep, e)
                continue
            for unit in units:
                for model in cfg.models:
                    try:
                        r = retriever(model)
                    except PAIR_ERRORS as e:
                        yield PairJob(system(model), unit.name, failed=("model", e))
                        continue
                    yield PairJob(
                        r.name,
                        unit.name,
                        compute=lambda r=r, u=unit: _evaluate_pair(cfg, r, u, data(u), sweep.say),
                        reuse=lambda r=r, u=unit: reusable(
                            cfg.results_dir, r.name, u.name, {**r.settings(), "top_k": cfg.top_k}
                        ),
                    )

    try:
        return each_pair(jobs(), cfg.results_dir, cfg.overwrite, sweep)
    finally:
        sweep.close()
        for r in retrievers.values():
            r.close()


def _make(spec: str | ModelPair, options: RetrieverOptions, say: Echo) -> Retriever:
    retriever = make_retriever(spec, options)
    if choice := getattr(retriever, "choice", None):  # dense: which backend encodes, and why
        say(
            f"[backend] {retriever.name}: {choice.backend}"
            + (f" (auto: {choice.reason})" if choice.reason else "")
        )
    return retriever


# Settings that manifests record only since they became options: what a manifest without them ran with.
IMPLIED = {"cache_dtype": "fp32"}


def reusable(results_dir: Path | str, system: str, dataset: str, wanted: dict) -> StoredResult:
    """The stored result, if it was made with the settings asked for now; else a clear error."""
    stored = load_result(results_dir, system, dataset)
    recorded = {**IMPLIED, **stored.manifest}
    differ = {k: (recorded.get(k), v) for k, v in wanted.items() if recorded.get(k) != v}
    if differ:
        details = "; ".join(f"{k}: stored {old!r}, asked {new!r}" for k, (old, new) in differ.items())
        raise ValueError(
            f"{stored.path} was made with other settings ({details}). Use --overwrite to replace it, "
            "or another --results-dir to keep both."
        )
    return stored


def _load(unit: DatasetUnit, echo, cache_dir: Path | None = None) -> BeirData:
    """Load a unit; its corpus store (memory-mapped Arrow) is kept in `cache_dir`/corpus, else in the
    loader's default place."""
    t0 = time.perf_counter()
    data = unit.load(store_dir=Path(cache_dir) / "corpus" if cache_dir is not None else None)
    data.manifest_timing = time.perf_counter() - t0  # type: ignore[attr-defined]
    echo(f"[data] {unit.name}: {len(data.corpus):,} documents, {len(data.queries):,} {unit.split} queries")
    return data


def _evaluate_pair(
    cfg: RunConfig, retriever: Retriever, unit: DatasetUnit, data: BeirData, echo
) -> StoredResult:
    clear_leftovers(cfg.results_dir, retriever.name, unit.name)
    retriever.timings.clear()
    t0 = time.perf_counter()
    first_stage = getattr(retriever, "candidate_system", lambda: None)()  # two-stage: the stored first stage
    if first_stage is not None:
        retriever.use_candidates(*_candidates(cfg, first_stage, retriever.name, unit.name))
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
    if index := manifest.get("index"):  # sparse / late-interaction index size and density
        parts = (f"{k} {v:,}" if isinstance(v, int | float) else f"{k} {v}" for k, v in index.items())
        echo(f"[index] {retriever.name} on {unit.name}: " + ", ".join(parts))
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
        "source": dataset_source(unit.path),
        **({"retrieval_scope": "per paper (PeerQA)"} if groups is not None else {}),
    }


def echo_done(echo, system: str, dataset: str, metrics: dict, seconds: float, path: Path) -> None:
    echo(
        f"[done] {system} on {dataset}: nDCG@10 {metrics['ndcg@10']:.4f}  Recall@100 {metrics['recall@100']:.4f}"
        f"  MRR@10 {metrics['mrr@10']:.4f}  ({seconds:.1f} s) -> {path}"
    )


def _candidates(cfg: RunConfig, system: str, reranker: str, dataset: str) -> tuple[dict, dict]:
    """The stored run of `system` on `dataset` (a two-stage search's first stage) and its identity."""
    if system == reranker:
        raise ValueError(f"{reranker} cannot re-rank its own run (--candidates {system})")
    if not is_done(cfg.results_dir, system, dataset):
        raise ValueError(
            f"--candidates {system}: no stored result of {system} on {dataset} in {cfg.results_dir}; "
            f"run it first (list -m {system} before {reranker} in the same run)"
        )
    path = load_result(cfg.results_dir, system, dataset).run_path
    return read_trec_run(path), {"system": system, "run_file": str(path), "run_sha256": sha256_file(path)}


SUMMARY_METRICS = ("ndcg@10", "recall@100", "mrr@10")


def summary_table(results: list[StoredResult], metrics: tuple[str, ...] = SUMMARY_METRICS) -> str:
    """One line per (system, dataset) of this run; `gtr-eval table` makes the full leaderboard."""
    from tabulate import tabulate

    rows = [[r.system, r.dataset, *(r.metrics.get(m) for m in metrics)] for r in results]
    return tabulate(rows, headers=["system", "dataset", *metrics], floatfmt=".4f", tablefmt="github")


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
