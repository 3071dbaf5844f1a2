"""`run`: every (system, dataset) pair once; serve what is done, compute the rest, resume what was cut short.

Each `-m` is resolved once into its spec by the family that runs it (`retrieval.factory.resolve`:
the model found and fingerprinted, nothing loaded); each dataset unit has its fingerprint.  Together
they are the identity a stored result must have to be served (`pairs.each_pair`), so a done pair is decided
without building a retriever.  Systems run one after the other, each over every dataset: its
retriever is built when its first pair needs computing and released after its last dataset, so a
sweep of many models holds one at a time.

A sweep (`-d beir`) is many pairs: one that fails (a download, bad data, a model that will not load or
runs out of memory) is reported and skipped, the others go on, and the result lists what failed and
why.  The embedding cache makes an interrupted encode resume at its last complete shard.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from .. import defaults, paths
from ..artifacts import CacheRoot
from ..checkpoints import checkpoint_system, step_of_folder
from ..data.download import DownloadError
from ..data.loader import BeirData
from ..data.units import DataOptions, DatasetUnit, unit_names
from ..errors import Mistake, ModelError, isolated
from ..identity import Identity
from ..results import validate_name
from ..retrieval import families
from ..retrieval.base import Retriever
from ..retrieval.factory import (
    ModelPair,
    Request,
    RetrieverOptions,
    build,
    check_request,
    expand_requests,
    resolve,
    resolve_named,
    system_of,
)
from ..retrieval.spec import SystemSpec
from .pairs import (
    Echo,
    Made,
    PairJob,
    PairStore,
    RunResults,
    Sweep,
    describe_error,
    each_pair,
)

log = logging.getLogger(__name__)


@dataclass
class RunConfig:
    models: list[str | ModelPair]  # globs and trainer output folders become their checkpoints
    datasets: list[str]
    data: DataOptions = field(default_factory=DataOptions)
    results_dir: Path = paths.RESULTS_DIR
    top_k: int = defaults.TOP_K
    overwrite: bool = False
    options: RetrieverOptions = field(default_factory=RetrieverOptions)
    name: str | None = None  # the one system's name instead of its own (`run --name`: a variant)
    # Each dataset's corpus reduced to its relevant documents + BM25's top k per query (`reduction`):
    # another dataset, `<name>~bm25top<k>`.
    reduce_corpus: int | None = None

    def __post_init__(self) -> None:
        # Here, so the CLI and the API sweep the same checkpoints (a glob matching nothing: a Mistake).
        self.models = expand_requests(self.models)

    def system_of(self, request: Request) -> str:
        """The system `request`'s results are stored under, found without resolving it: its own name
        (less a variant's suffix: see `spec_of`), or `--name`'s; of a checkpoint, `NAME@step-N`
        (`--name` names a checkpoint sweep's training run)."""
        if self.name is None:
            return system_of(request)
        step = step_of_folder(request) if isinstance(request, str) else None
        return self.name if step is None else checkpoint_system(self.name, step)

    def spec_of(self, request: Request) -> SystemSpec:
        """`request`'s spec under this run's options, named as its results are stored: `--name`'s, or
        its own with what differs from its preset's defaults (`factory.resolve_named`: `bm25[k1=0.9]`)."""
        if self.name is None:
            return resolve_named(request, self.options, self.top_k)
        return replace(resolve(request, self.options, self.top_k), system=self.system_of(request))

    def check(self) -> None:
        """What can be wrong with the request itself, said before any work: unknown models or
        datasets, `--name` with several models (but checkpoints), a `--split` a dataset lacks."""
        for request in self.models:
            check_request(request)
        if self.name is not None:
            self._check_name(self.name)
        self.data.check_split(self.datasets)

    def _check_name(self, name: str) -> None:
        """`--name` names one system, or the run of checkpoints, whose systems must stay apart."""
        validate_name(name, "system", max_slashes=0)
        sweep = all(isinstance(m, str) and step_of_folder(m) is not None for m in self.models)
        if len(self.models) != 1 and not sweep:
            raise Mistake(
                f"--name names one system (or the run of a checkpoint sweep): give one -m with it, not "
                f"{len(self.models)}"
            )
        systems = [self.system_of(m) for m in self.models]
        if twice := next((s for s in systems if systems.count(s) > 1), None):
            raise Mistake(f"--name {name}: two checkpoints of this sweep would both be {twice}")

    def units(self) -> list[DatasetUnit]:
        """Every unit of the run (sweeps expanded), downloading (and reducing) what is missing."""
        found = Units(self)
        return [u for spec in self.data.expand(self.datasets).datasets for u in found(spec)]

    @property
    def store_dir(self) -> Path | None:
        """The corpus store (memory-mapped corpora, and the memo of dataset file digests)."""
        cache = self.options.cache_dir
        return CacheRoot.corpus_area(cache)


class Units:
    """What each `-d` argument stands for, downloaded (once) when first needed; a failure is kept and
    raised again for every system that asks."""

    def __init__(self, cfg: RunConfig, say: Echo = print):
        self.cfg, self.say = cfg, say
        self._found: dict[str, list[DatasetUnit] | BaseException] = {}

    def __call__(self, spec: str) -> list[DatasetUnit]:
        if spec not in self._found:
            try:
                self._found[spec] = self._units(spec)
            except Exception as e:
                if not isolated(e):
                    raise
                self._found[spec] = e
        found = self._found[spec]
        if isinstance(found, BaseException):
            raise found
        return found

    def _units(self, spec: str) -> list[DatasetUnit]:
        cfg = self.cfg
        units = cfg.data.units(spec)
        if cfg.reduce_corpus is None:
            return units
        from .reduction import reduce_unit

        cache = CacheRoot.optional(cfg.options.cache_dir)
        return [reduce_unit(u, cfg.reduce_corpus, cache, cfg.store_dir, self.say) for u in units]


class Built:
    """A system's retriever, built when its first pair is computed and released after its last.  A
    retriever that cannot be built is not tried again for the system's next dataset."""

    def __init__(self, spec: SystemSpec, cache_dir: Path | None, say: Echo):
        self.spec, self.cache_dir, self.say = spec, cache_dir, say
        self._retriever: Retriever | None = None
        self._error: BaseException | None = None

    def __call__(self) -> Retriever:
        if self._error is not None:
            raise self._error
        if self._retriever is None:
            try:
                self._retriever = build(self.spec, self.cache_dir)
            except Exception as e:
                if isolated(e):
                    self._error = e
                raise
            if (note := families.of_spec(self.spec).note(self.spec)) is not None:  # dense: its backend
                self.say(note)
        return self._retriever

    def broken(self, e: BaseException) -> None:
        """Its model would not load (on first use, inside a pair): its other pairs are told the same."""
        self._error = e
        self.close()

    def close(self) -> None:
        if self._retriever is not None:
            self._retriever.close()
            self._retriever = None


def run(cfg: RunConfig, echo: Echo = print) -> RunResults:
    """Evaluate every model on every dataset; returns the stored results of all requested pairs.

    A pair that fails (a download, bad data, a model that cannot load or runs out of memory) is
    reported and skipped; the others go on. `RunResults.failures` says what failed and why.  A stored
    result made from other inputs (another split is another result, stored beside it) is refused
    unless `cfg.overwrite`.
    """
    cfg.check()
    selection = cfg.data.expand(cfg.datasets)
    total = len(cfg.models) * sum(len(unit_names(s, cfg.data.data_dir)) for s in selection.datasets)
    sweep = Sweep(echo, total, cfg.options.progress)
    sweep.out.skipped = selection.skipped
    for name, why in selection.skipped:
        sweep.say(f"[skip] {name}: {why}")
    store = PairStore(Path(cfg.results_dir), cfg.store_dir, cfg.overwrite)
    units = Units(cfg, sweep.say)
    built: list[Built] = []

    def jobs() -> Iterator[PairJob]:
        for request in cfg.models:
            try:
                spec = cfg.spec_of(request)
            except Exception as e:
                if not isolated(e):
                    raise
                yield from _failed_everywhere(request, "model", e, selection.datasets, cfg, sweep)
                continue
            system = Built(spec, cfg.options.cache_dir, sweep.say)
            built.append(system)
            for dataset in selection.datasets:
                try:
                    found = units(dataset)
                except Exception as e:
                    if not isolated(e):
                        raise
                    yield from _failed_units(spec.system, dataset, e, cfg, sweep)
                    continue
                for unit in found:
                    yield _pair(spec, unit, system, store)
            system.close()  # after its last dataset (a deferred pair builds it again)

    try:
        return each_pair(jobs(), store, sweep)
    finally:
        sweep.close()
        for system in built:
            system.close()


def _pair(spec: SystemSpec, unit: DatasetUnit, retriever: Built, store: PairStore) -> PairJob:
    """The job of `spec` on `unit`: its identity from the spec and the unit's fingerprint, its run
    from the retriever."""

    def identity() -> Identity:
        return Identity.of(spec, unit.fingerprint(store.store_dir))

    def make(data: BeirData) -> Made:
        r = retriever()
        try:
            if (groups := getattr(data, "groups", None)) is not None:  # PeerQA: each query searches its paper
                from ..retrieval.scoped import scoped_search

                searched = scoped_search(r, data.corpus, data.queries, groups, spec.top_k)
                report = searched.report
            else:
                report = r.index(data.corpus)
                searched = r.search(data.queries, spec.top_k)
                report = report + searched.report
        except ModelError as e:
            retriever.broken(e)
            raise
        return Made(r.spec, searched.run, report)

    return PairJob(spec.system, unit, identity=identity, make=make)


def _failed_everywhere(
    request: Request, stage: str, e: BaseException, datasets, cfg: RunConfig, sweep: Sweep
):
    """A system that cannot be resolved fails on every unit of every dataset, said in one line."""
    system = cfg.system_of(request)
    sweep.say(f"[fail] {system}: {stage} failed: {describe_error(e)}")
    for dataset in datasets:
        for name in unit_names(dataset, cfg.data.data_dir):
            yield PairJob(system, _placeholder(name, cfg), failed=(stage, e), quiet=True)


def _failed_units(system: str, dataset: str, e: BaseException, cfg: RunConfig, sweep: Sweep):
    """Failed jobs for every unit of `dataset` (whose folders would not download or load), in one line."""
    stage = "download" if isinstance(e, DownloadError) else getattr(e, "stage", "data")
    names = unit_names(dataset, cfg.data.data_dir)
    note = f" ({len(names)} subforums)" if len(names) > 1 else ""
    sweep.say(f"[fail] {system} on {dataset}{note}: {stage} failed: {describe_error(e)}")
    for name in names:
        yield PairJob(system, _placeholder(name, cfg), failed=(stage, e), quiet=True)


def _placeholder(name: str, cfg: RunConfig) -> DatasetUnit:
    """A unit that never loads: it only names a pair that failed before its data was found."""
    from ..data.registry import default_split

    return DatasetUnit(name, Path(cfg.data.data_dir) / name, cfg.data.split or default_split(name))
