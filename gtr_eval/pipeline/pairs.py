"""The one pair pipeline: every (system, dataset) pair of a command, once, served or computed.

`run`, `rerank`, `fuse` and `import` each describe their pairs as `PairJob`s: the identity a stored
result must have to be served (`identity`: the system's spec and the dataset's fingerprint, known
before anything is built or loaded), and how to make the pair's run (`make`).  `each_pair` then
decides each pair the same way:

- a stored result whose identity is the one asked for is served (`[skip]`);
- a stored result made otherwise is refused, in one line naming what differs (`[refused]`), and
  `--overwrite` recomputes it;
- otherwise the pair is computed: `store_pair` evaluates the run under BEIR's conventions and hands
  it to the results store (`results.ResultsStore`), which commits it with its identity and manifest.

The store's lock per pair lets two processes share one results folder: the second skips pairs the first
is working on and comes back to them at the end.  A pair that fails at a known stage (download,
data, model, out of memory: `errors.isolated`) is reported and the sweep goes on; any other error is
a bug and stops it.  One overall progress line (pairs done of all) sits above the per-stage bars.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from filelock import Timeout

from ..data.download import dataset_source
from ..data.loader import BeirData
from ..data.units import DatasetFingerprint, DatasetUnit
from ..errors import Interrupted, PairError, is_out_of_memory, isolated
from ..evaluation import evaluate, read_trec_run
from ..identity import Identity, record
from ..results import ResultsStore, StoredResult, reuse
from ..retrieval.base import Report, Run
from ..retrieval.spec import InputRun, SystemSpec, model_summary
from .reduction import reduction_of

log = logging.getLogger(__name__)

Echo = Callable[[str], None]


class InputMissing(PairError, ValueError):
    """A stored run a system is made from (fusion's inputs, re-ranking candidates) is not there, or
    was made from other data."""

    stage = "input"


# ------------------------------------------------------------------------------- failures, progress


@dataclass
class PairFailure:
    system: str
    dataset: str
    stage: str  # download, data, model, input, reuse (a stored result made otherwise: refused), run
    error: str
    cause: BaseException | None = field(default=None, repr=False, compare=False)

    def __str__(self) -> str:
        if self.stage == "reuse":  # the error names the pair (`results.reuse`)
            return f"refused: {self.error}"
        return f"{self.system} on {self.dataset}: {self.stage} failed: {self.error}"


class RunResults(list):
    """The stored results of the pairs that succeeded (a list), with what failed and what was skipped."""

    def __init__(self, results=(), failures=(), skipped=()):
        super().__init__(results)
        self.failures: list[PairFailure] = list(failures)
        self.skipped: list[tuple[str, str]] = list(skipped)


def describe_error(e: BaseException) -> str:
    """One line for a pair's failure: the message (a `PairError`'s says what and where), or the
    exception's type when there is nothing else."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    if is_out_of_memory(e) or "out of memory" in text.lower():
        return f"out of memory ({type(e).__name__}{': ' + text if text else ''})"
    if isinstance(e, PairError):
        return text or type(e).__name__
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


class Sweep:
    """Bookkeeping for one command over many pairs: the overall progress line and what failed."""

    def __init__(self, echo: Echo, total: int | None, progress: bool = True):
        from ..progress import bar

        self._echo = echo
        self.out = RunResults()
        # Piped, each pair's own line says its progress: the sweep's line comes once, at the end.
        self.bar = bar(total, "pairs", "pair", enabled=progress, leave=True, position=0, heartbeat=None)

    def say(self, msg: str) -> None:
        if self.bar.disable or not hasattr(self.bar, "external_write_mode"):
            self._echo(msg)
            return
        with self.bar.external_write_mode(file=sys.stderr):
            self._echo(msg)

    def fail(self, system: str, dataset: str, stage: str, e: BaseException | str, say: bool = True) -> None:
        failure = PairFailure(system, dataset, stage, e if isinstance(e, str) else describe_error(e),
                              None if isinstance(e, str) else e)  # fmt: skip
        self.out.failures.append(failure)
        if say:
            refused = stage == "reuse"
            self.say(f"[refused] {failure.error}" if refused else f"[fail] {failure}")
        self.step()

    def step(self) -> None:
        if self.out.failures:
            self.bar.set_postfix(failed=len(self.out.failures), refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


# ------------------------------------------------------------------------------------ the pair loop


@dataclass
class Made:
    """What computing a pair made: the spec as it ran (settings as they ended up, inputs as read),
    the run, and what the retrieval took and did."""

    spec: SystemSpec
    run: Run
    report: Report = field(default_factory=Report)


@dataclass
class PairJob:
    """One (system, dataset unit) pair.  `identity()` is what a stored result must have been made
    from to be served (computed without building a retriever or loading data); `make(data)` computes
    the pair's run.  `failed`: a pair known to fail before it starts (its dataset would not
    download, its model would not resolve); `quiet` keeps its failure out of the log when one line
    already said it for many pairs."""

    system: str
    unit: DatasetUnit
    identity: Callable[[], Identity] | None = None
    make: Callable[[BeirData], Made] | None = None
    failed: tuple[str, BaseException | str] | None = None  # (stage, error)
    quiet: bool = False

    @property
    def dataset(self) -> str:
        return self.unit.name


@dataclass
class PairStore:
    """Where pairs are stored and their data read from: the results folder and the corpus store."""

    results_dir: Path
    store_dir: Path | None = None  # the corpus store; None: the user cache's
    overwrite: bool = False
    rename: str = "--name NAME"  # how a refusal says to keep both (`results.reuse`)

    @property
    def results(self) -> ResultsStore:
        return ResultsStore(self.results_dir)


def each_pair(jobs: Iterable[PairJob], store: PairStore, sweep: Sweep) -> RunResults:
    """Serve or compute every pair once, however many processes share the results folder.

    A pair another process holds is skipped and revisited at the end (then it is usually done).  A
    pair that fails at a known stage is recorded in `sweep` and the loop goes on.  Ctrl-C stops it with
    `errors.Interrupted`, which says how many pairs are done (stored: the same command resumes).
    """
    try:
        return _each_pair(jobs, store, sweep)
    except KeyboardInterrupt as e:  # a stage cut short says what it saved (`Interrupted.saved`)
        raise Interrupted(len(sweep.out), len(sweep.out.failures), getattr(e, "saved", None)) from None


def _each_pair(jobs: Iterable[PairJob], store: PairStore, sweep: Sweep) -> RunResults:
    data = DataMemo(sweep.say, store.store_dir)
    deferred: list[PairJob] = []
    for job in jobs:
        if job.failed is not None:
            sweep.fail(job.system, job.dataset, job.failed[0], job.failed[1], say=not job.quiet)
            continue
        if not store.overwrite and _stored(store, job):
            _serve(job, store, sweep, "already done")
            continue
        if not store.overwrite and (why := store.results.damaged(job.system, job.dataset, job.unit.split)):
            sweep.say(
                f"[redo] {job.system} on {job.dataset}{_split_note(job.unit)}: {why}; computing it again"
            )
        lock = store.results.lock(job.system, job.dataset, job.unit.split)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            sweep.say(f"[busy] {job.system} on {job.dataset}: another process is on it; coming back later")
            deferred.append(job)
            continue
        try:
            _decide(job, store, sweep, data)
        finally:
            lock.release()
    for job in deferred:
        with store.results.lock(job.system, job.dataset, job.unit.split):
            _decide(job, store, sweep, data)
    return sweep.out


def _stored(store: PairStore, job: PairJob) -> bool:
    return store.results.done(job.system, job.dataset, job.unit.split)


def _decide(job: PairJob, store: PairStore, sweep: Sweep, data: DataMemo) -> None:
    """With the pair's lock held: serve what another process finished meanwhile, else compute."""
    if not store.overwrite and _stored(store, job):
        _serve(job, store, sweep, "finished by another process")
    else:
        _compute(job, store, sweep, data)


def _serve(job: PairJob, store: PairStore, sweep: Sweep, why: str) -> None:
    """The stored result, if it was made from the inputs asked for now; else refused (one line)."""
    try:
        stored = store.results.load(job.system, job.dataset, job.unit.split)
        sweep.out.append(reuse(stored, job.identity(), store.rename))
    except Exception as e:
        if not isolated(e):
            raise
        sweep.fail(job.system, job.dataset, getattr(e, "stage", "run"), e)
        return
    sweep.say(f"[skip] {job.system} on {job.dataset}{_split_note(job.unit)}: {why}")
    sweep.step()


def _compute(job: PairJob, store: PairStore, sweep: Sweep, data: DataMemo) -> None:
    try:
        store.results.clear_leftovers(job.system, job.dataset, job.unit.split)
        loaded = data(job.unit)
        t0 = time.perf_counter()
        made = job.make(loaded)
        seconds = time.perf_counter() - t0
        sweep.out.append(store_pair(store.results_dir, job.unit, loaded, made, seconds, sweep.say))
    except Exception as e:
        if not isolated(e):
            raise
        _release_memory()
        sweep.fail(job.system, job.dataset, getattr(e, "stage", "run"), e)
        return
    sweep.step()


def store_pair(
    results_dir: Path, unit: DatasetUnit, data: BeirData, made: Made, seconds: float, echo: Echo
) -> StoredResult:
    """Evaluate `made.run` on `data` under BEIR's conventions and store it with its identity and
    manifest (the spec under `spec`, beside what the data, the retrieval and the time were)."""
    t0 = time.perf_counter()
    evaluation = evaluate(data.qrels, made.run, ignore_identical_ids=unit.ignore_identical_ids)
    fingerprint = unit.fingerprint(files_sha256=data.checksums)
    timings = {"load_data_s": getattr(data, "load_s", None), **made.report.timings, "retrieve_total_s": seconds,
               "evaluate_s": time.perf_counter() - t0}  # fmt: skip
    manifest = {
        "spec": made.spec.record(),
        "dataset": dataset_manifest(unit, data, fingerprint, results_dir),
        "stats": record(made.report.stats),
        "timings": timings,
    }
    system = made.spec.system
    identity = Identity.of(made.spec, fingerprint)
    stored = ResultsStore(results_dir).save(
        system, unit.name, unit.split, evaluation, made.run, manifest, identity
    )
    _echo_stats(echo, system, unit.name, made.report.stats)
    m = evaluation.metrics
    echo(
        f"[done] {system} on {unit.name}{_split_note(unit)}: nDCG@10 {m['ndcg@10']:.4f}  Recall@100 "
        f"{m['recall@100']:.4f}  MRR@10 {m['mrr@10']:.4f}  ({seconds:.1f} s) -> {stored.path}"
    )
    return stored


def _split_note(unit: DatasetUnit) -> str:
    from ..data.registry import default_split

    return "" if unit.split == default_split(unit.name) else f" ({unit.split} split)"


def _echo_stats(echo: Echo, system: str, dataset: str, stats) -> None:
    if index := stats.get("index"):  # sparse / late-interaction index size and density
        parts = (f"{k} {v:,}" if isinstance(v, int | float) else f"{k} {v}" for k, v in index.items())
        echo(f"[index] {system} on {dataset}: " + ", ".join(parts))
    if "corpus_shards" in stats:
        shards = _served(stats["corpus_shards_reused"], stats["corpus_shards_encoded"], "shard")
        echo(f"[cache] {system} on {dataset}: corpus embeddings: {shards}")
    if st := stats.get("pair_stats"):
        scores = _served(st["distinct_pairs"] - st["pairs_scored"], st["pairs_scored"], "distinct pair")
        resumed = f" ({st['shards_reused']} shards from an interrupted run)" if st["shards_reused"] else ""
        echo(f"[cache] {system} on {dataset}: scores of {st['pairs']:,} pairs: {scores}{resumed}")


def _served(cached: int, computed: int, unit: str) -> str:
    """`11 shards from cache`, `1 shard computed and saved`, `3 shards from cache, 8 computed and saved`."""
    from ..progress import plural

    if not computed:
        return f"{cached:,} {plural(unit, cached)} from cache"
    if not cached:
        return f"{computed:,} {plural(unit, computed)} computed and saved"
    return f"{cached:,} {plural(unit, cached)} from cache, {computed:,} computed and saved"


def dataset_manifest(
    unit: DatasetUnit, data: BeirData, fingerprint: DatasetFingerprint, results_dir: Path
) -> dict:
    """What a result records about its data: its fingerprint, where it was read (an absolute path, and
    the same relative to the results folder, so that a report or export finds the files from any
    working directory, and after folders are moved together), sizes, source."""
    path = Path(unit.path).resolve()
    try:
        relative = os.path.relpath(path, Path(results_dir).resolve())
    except ValueError:  # another drive (Windows)
        relative = None
    return {
        **record(fingerprint),
        "path": str(path),
        "path_from_results": relative,
        "checksum": data.checksum,
        "num_docs": len(data.corpus),
        "num_queries": len(data.queries),
        "source": dataset_source(unit.path),
        **({"reduction": made} if (made := reduction_of(unit.path)) else {}),
    }


def _release_memory() -> None:
    """After an out-of-memory error, give the next pair the memory back."""
    import gc

    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


class DataMemo:
    """The last dataset unit loaded: consecutive pairs on one unit load it once.  Data that would not
    load is not read again for a later pair: the same error is raised."""

    def __init__(self, echo: Echo, store_dir: Path | None = None):
        self.echo = echo
        self.store_dir = store_dir
        self._key: tuple[str, str] | None = None
        self._data: BeirData | None = None
        self._errors: dict[tuple[str, str], BaseException] = {}

    def __call__(self, unit: DatasetUnit) -> BeirData:
        key = (unit.name, unit.split)
        if key in self._errors:
            raise self._errors[key]
        if self._key != key:
            self._data = self._key = None  # release the previous dataset before loading the next
            try:
                self._data = load_unit(unit, self.echo, self.store_dir)
            except Exception as e:
                if isolated(e):
                    self._errors[key] = e
                raise
            self._key = key
        return self._data


def load_unit(unit: DatasetUnit, echo: Echo, store_dir: Path | None = None) -> BeirData:
    """Load a unit (its corpus mapped from the store in `store_dir`), timed (`load_s`)."""
    t0 = time.perf_counter()
    data = unit.load(store_dir=store_dir)
    data.load_s = time.perf_counter() - t0  # type: ignore[attr-defined]
    echo(f"[data] {unit.name}: {len(data.corpus):,} documents, {len(data.queries):,} {unit.split} queries")
    return data


# ------------------------------------------------------------------------------- input runs


def input_run(
    results_dir: Path, system: str, unit: DatasetUnit, fingerprint: DatasetFingerprint, role: str
) -> InputRun:
    """The stored run of `system` on `unit` that a composed system is made from, named by its
    content; `InputMissing` when it is not stored, or was made from other data than `fingerprint`."""
    results = ResultsStore(results_dir)
    try:
        stored = results.load(system, unit.name, unit.split)
    except PairError as e:
        if results.path(system, unit.name, unit.split).is_file():  # there, but not servable: say why
            raise InputMissing(f"{role} cannot use it: {e}; run {system} on {unit.name} again") from None
        split = _split_note(unit)
        raise InputMissing(
            f"{role} needs a stored result of {system} on {unit.name}{split} in {results_dir}; run it first"
        ) from None
    data = record(fingerprint, ranking_only=True)
    if dict(stored.identity.dataset) != data:
        from ..identity import describe, differences

        why = describe(differences({"dataset": stored.identity.dataset}, {"dataset": data}))
        raise InputMissing(f"{system} on {unit.name} was made from other data ({why}); re-run it first")
    return InputRun(
        system=system,
        run_sha256=stored.run_sha256,
        result=str(stored.path),
        model=model_summary(stored.spec),
    )


def read_input(results_dir: Path, ref: InputRun, unit: DatasetUnit) -> Run:
    """The run `ref` names, checked to be that content still."""
    stored = ResultsStore(results_dir).load(ref.system, unit.name, unit.split)
    if stored.run_sha256 != ref.run_sha256:
        raise InputMissing(f"{stored.run_path} changed while it was being read; run again")
    return read_trec_run(stored.run_path)


# ----------------------------------------------------------------------------------- summaries

SUMMARY_METRICS = ("ndcg@10", "recall@100", "mrr@10")


def summary_table(results: list[StoredResult], metrics: tuple[str, ...] = SUMMARY_METRICS) -> str:
    """One line per (system, dataset) of this run; `gtr-eval table` makes the full leaderboard."""
    from tabulate import tabulate

    rows = [[r.system, r.label, *(r.metrics.get(m) for m in metrics)] for r in results]
    return tabulate(rows, headers=["system", "dataset", *metrics], floatfmt=".4f", tablefmt="github")


def failure_summary(results: RunResults) -> str:
    """What failed and why; CQADupStack subforums that failed alike are one line.  Empty when the
    command was one pair that failed: its own line said it."""
    if len(results.failures) == 1 and not results:
        return ""
    groups: dict[tuple[str, str, str, str], list[str]] = {}
    for f in results.failures:
        groups.setdefault((f.system, f.dataset.split("/")[0], f.stage, f.error), []).append(f.dataset)
    refused = sum(f.stage == "reuse" for f in results.failures)
    failed = len(results.failures) - refused
    head = [
        f"{failed} pair(s) failed" if failed else "",
        f"{refused} stored result(s) refused" if refused else "",
    ]
    lines = [f"{' and '.join(h for h in head if h)} and were skipped; the others finished:"]
    for (system, dataset, stage, error), units in groups.items():
        if stage == "reuse":  # the error names the pair
            lines.append(f"  - refused: {error}")
            continue
        where = units[0] if len(units) == 1 else f"{dataset} ({len(units)} subforums)"
        lines.append(f"  - {system} on {where}: {stage} failed: {error}")
    return "\n".join(lines)
