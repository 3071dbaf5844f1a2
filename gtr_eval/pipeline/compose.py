"""Systems made from stored runs: `rerank` (a cross-encoder over a run's top documents) and `fuse`
(several runs combined).  Each is a system like any other: its spec names its inputs by their run
files' sha256, per dataset, so a re-ranked or fused result made from an older input run is refused
rather than served, and its pairs go through the one pair pipeline (`pairs.each_pair`).

Names: `<candidates>>><cross-encoder>` (`bm25>>ms-marco-MiniLM-L6-v2`) and `fusion.fused_name`
(`rrf(bm25+all-MiniLM-L6-v2)`), unless `name` is given.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .. import fusion
from ..data.loader import BeirData
from ..data.units import DataOptions, DatasetUnit, unit_names
from ..errors import Mistake, did_you_mean
from ..evaluation import Run, ranked
from ..identity import Identity
from ..results import ResultsStore, validate_name
from ..retrieval.base import Report
from ..retrieval.factory import check_request
from ..retrieval.presets import CROSS_ENCODERS
from ..retrieval.rerank import CrossEncoderConfig, CrossEncoderScorer, RerankSpec, resolve_cross_encoder
from ..retrieval.spec import SystemSpec
from .pairs import Echo, Made, PairJob, PairStore, RunResults, Sweep, each_pair, input_run, read_input

# ---------------------------------------------------------------------------------------- rerank


@dataclass
class RerankConfig:
    candidates: str  # the stored system whose runs are re-ranked
    models: list[str]  # cross-encoders: hub ids, folders, or short names (presets.CROSS_ENCODERS)
    datasets: list[str]
    depth: int = 100
    data: DataOptions = field(default_factory=DataOptions)
    results_dir: Path = Path("results")
    cache_dir: Path | None = None
    overwrite: bool = False
    name: str | None = None  # the new system's name (one model only)
    encoder: CrossEncoderConfig = field(default_factory=lambda: CrossEncoderConfig(model=""))
    progress: bool = True


def rerank(cfg: RerankConfig, echo: Echo = print) -> RunResults:
    """Re-score the top `depth` documents of `candidates`' stored run per query, for every model and
    dataset.  Documents below `depth` are dropped, as in BEIR's `Rerank` (its result holds only the
    re-ranked top-k), so a re-ranked run's Recall@k for k >= depth is the first stage's Recall@depth."""
    if cfg.depth < 1:
        raise ValueError(f"depth must be >= 1, not {cfg.depth}")
    if cfg.name and len(cfg.models) != 1:
        raise Mistake("--name names one system: give one cross-encoder with it")
    for model in cfg.models:
        check_request(model, known=CROSS_ENCODERS)
    check_stored(cfg.results_dir, [cfg.candidates], cfg.data, cfg.datasets, "rerank")
    specs = [
        resolve_cross_encoder(
            CrossEncoderConfig(**{**cfg.encoder.__dict__, "model": m, "progress": cfg.progress}),
            cfg.candidates,
            cfg.depth,
            cfg.name,
        )
        for m in cfg.models
    ]
    for spec in specs:
        validate_name(spec.system, "system", max_slashes=0)
    units = _units(cfg.data, cfg.datasets)
    store = _store(cfg.results_dir, cfg.cache_dir, cfg.overwrite)
    sweep = Sweep(echo, len(units) * len(specs), cfg.progress)
    scorers = {spec.system: CrossEncoderScorer(spec, cfg.cache_dir) for spec in specs}

    def jobs() -> Iterator[PairJob]:
        for spec in specs:
            for unit in units:
                yield _composed(
                    spec, unit, store, lambda s, data, runs: _rerank_run(scorers[s.system], s, data, runs)
                )

    return _each(jobs(), store, sweep)


def candidate_pairs(run: Run, queries: dict[str, str], depth: int) -> list[tuple[str, str]]:
    """(query id, document id) of each query's top `depth` documents, in trec_eval's rank order."""
    return [(q, d) for q in queries if q in run for d, _ in ranked(run[q])[:depth]]


def _rerank_run(
    scorer: CrossEncoderScorer, spec: RerankSpec, data: BeirData, runs: list[Run]
) -> tuple[Run, Report]:
    (candidates,) = runs
    ids = candidate_pairs(candidates, data.queries, spec.depth)
    texts = [(data.queries[q], _doc_text(data, d, spec)) for q, d in ids]
    scores, report = scorer.score(texts, desc=f"{spec.system}: score pairs")
    run: Run = {}
    for (q, d), s in zip(ids, scores.tolist(), strict=True):
        run.setdefault(q, {})[d] = float(s)
    return run, report


def _doc_text(data: BeirData, doc_id: str, spec: RerankSpec) -> str:
    try:
        return data.corpus.text(data.corpus.index_of(doc_id))
    except KeyError:
        from .pairs import InputMissing

        raise InputMissing(
            f"the run of {spec.candidates} has document {doc_id!r}, which is not in {data.name}'s corpus "
            "(a run of other data?)"
        ) from None


# ------------------------------------------------------------------------------------------ fuse


@dataclass
class FuseConfig:
    systems: list[str]  # stored systems, fused in this order
    datasets: list[str]
    method: str = "rrf"  # fusion.METHODS
    k: int = fusion.RRF_K
    weights: list[float] | None = None
    top_k: int = 1000
    name: str | None = None
    data: DataOptions = field(default_factory=DataOptions)
    results_dir: Path = Path("results")
    cache_dir: Path | None = None  # where the corpus store (and dataset file digests) live
    overwrite: bool = False
    progress: bool = True

    def spec(self) -> fusion.FusionSpec:
        return fusion.fusion_spec(
            self.systems, self.method, self.k, self.weights, self.top_k, self.name, self.progress
        )

    def system_name(self) -> str:
        return self.spec().system


def fuse(cfg: FuseConfig, echo: Echo = print) -> RunResults:
    """Fuse the stored runs of `systems` on every dataset into one new stored system."""
    spec = cfg.spec()
    validate_name(spec.system, "system", max_slashes=0)
    check_stored(cfg.results_dir, cfg.systems, cfg.data, cfg.datasets, "fuse")
    units = _units(cfg.data, cfg.datasets)
    store = _store(cfg.results_dir, cfg.cache_dir, cfg.overwrite)
    sweep = Sweep(echo, len(units), cfg.progress)

    def fused(s: fusion.FusionSpec, data: BeirData, runs: list[Run]) -> tuple[Run, Report]:
        t0 = time.perf_counter()
        return fusion.fuse_spec(s, runs), Report({"fuse_s": time.perf_counter() - t0})

    return _each((_composed(spec, unit, store, fused) for unit in units), store, sweep)


# ---------------------------------------------------------------------------------------- shared


def check_stored(
    results_dir: Path, systems: Sequence[str], data: DataOptions, datasets: Sequence[str], role: str
):
    """Each input system has a stored result on at least one of the datasets asked for (else nothing
    can be made: a `Mistake`, said before any data is read or downloaded).  A pair whose input alone is
    missing, or is stored but cannot be served, fails on its own (`InputMissing`, saying why)."""
    names = [n for spec in data.expand(list(datasets)).datasets for n in unit_names(spec, data.data_dir)]
    stored = (
        sorted(p.name for p in Path(results_dir).iterdir() if p.is_dir() and not p.name.startswith("."))
        if Path(results_dir).is_dir()
        else []
    )
    for system in systems:
        if not any(ResultsStore(results_dir).path(system, n, data.split).is_file() for n in names):
            raise Mistake(
                f"{role}: no stored result of {system} on {', '.join(names)} in {results_dir}; run it first"
                f"{did_you_mean(system, [s for s in stored if s != system])}"
            )


def _composed(spec: SystemSpec, unit: DatasetUnit, store: PairStore, combine) -> PairJob:
    """A pair of a system made from stored runs: its identity names the runs it reads (their
    systems: the candidates, or the fused systems) by content; `combine(spec, data, runs)` makes it."""
    sources = [spec.candidates] if isinstance(spec, RerankSpec) else list(getattr(spec, "systems", ()))
    role = "rerank" if isinstance(spec, RerankSpec) else "fuse"

    def with_inputs(fingerprint) -> SystemSpec:
        return spec.with_inputs(
            tuple(input_run(store.results_dir, s, unit, fingerprint, role) for s in sources)
        )

    def identity() -> Identity:
        fingerprint = unit.fingerprint(store.store_dir)
        return Identity.of(with_inputs(fingerprint), fingerprint)

    def make(data: BeirData) -> Made:
        made_spec = with_inputs(unit.fingerprint(files_sha256=data.checksums))
        runs = [read_input(store.results_dir, ref, unit) for ref in made_spec.inputs]
        run, report = combine(made_spec, data, runs)
        return Made(made_spec, run, report)

    return PairJob(spec.system, unit, identity=identity, make=make)


def _units(data: DataOptions, datasets: Sequence[str]) -> list[DatasetUnit]:
    return [u for spec in data.expand(list(datasets)).datasets for u in data.units(spec)]


def _store(results_dir: Path, cache_dir: Path | None, overwrite: bool) -> PairStore:
    return PairStore(
        Path(results_dir), Path(cache_dir) / "corpus" if cache_dir is not None else None, overwrite
    )


def _each(jobs, store: PairStore, sweep: Sweep) -> RunResults:
    try:
        return each_pair(jobs, store, sweep)
    finally:
        sweep.close()
