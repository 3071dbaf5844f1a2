"""Systems made from stored runs: `rerank` (a re-ranker over a run's top documents: a cross-encoder,
or exact MaxSim of a late-interaction model, the two-stage search) and `fuse` (several runs
combined).  Each is a system like any other: its spec names its inputs by their run files' sha256,
per dataset, so a re-ranked or fused result made from an older input run is refused rather than
served, and its pairs go through the one pair pipeline (`pairs.each_pair`).

Names: `<candidates>>><model>` (`bm25>>ms-marco-MiniLM-L6-v2`, `bm25>>colbertv2`) and
`fusion.fused_name` (`rrf(bm25+all-MiniLM-L6-v2)`), unless `name` is given.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from .. import defaults, fusion, paths
from ..artifacts import CacheRoot
from ..data.loader import BeirData
from ..data.units import DataOptions, DatasetUnit, unit_names
from ..errors import Mistake, ModelError, canonical, did_you_mean
from ..evaluation import Run, ranked
from ..identity import Identity, variant_suffix
from ..results import ResultsStore, validate_name
from ..retrieval.base import Candidates, Report, Reranker
from ..retrieval.factory import check_request
from ..retrieval.presets import CROSS_ENCODERS, PRESETS
from ..retrieval.rerank import CrossEncoderConfig, build_reranker, resolve_reranker
from ..retrieval.spec import SystemSpec
from .pairs import (
    Echo,
    InputMissing,
    Made,
    PairJob,
    PairStore,
    RunResults,
    Sweep,
    each_pair,
    input_run,
    read_input,
)

# ---------------------------------------------------------------------------------------- rerank


@dataclass
class RerankConfig:
    candidates: str  # the stored system whose runs are re-ranked
    # Cross-encoders (hub ids, folders, presets.CROSS_ENCODERS' short names) or late-interaction
    # models (the colbertv2 preset, any MultiVectorEncoder); `retrieval.rerank.reranker_family`.
    models: list[str]
    datasets: list[str]
    depth: int = defaults.RERANK_DEPTH
    data: DataOptions = field(default_factory=DataOptions)
    results_dir: Path = paths.RESULTS_DIR
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
        raise Mistake(f"--depth must be >= 1, not {cfg.depth}")
    if cfg.name and len(cfg.models) != 1:
        raise Mistake("--name names one system: give one model with it")
    for model in cfg.models:
        check_request(model, known=[*CROSS_ENCODERS, *PRESETS])
    cfg = replace(cfg, candidates=stored_name(cfg.results_dir, cfg.candidates))
    check_stored(cfg.results_dir, [cfg.candidates], cfg.data, cfg.datasets, "rerank")
    try:
        specs = [_reranker_spec(cfg, m) for m in cfg.models]
    except ModelError as e:  # not found (offline, a typo of a hub id) before any work: a mistake
        raise Mistake(str(e)) from e
    for spec in specs:
        validate_name(spec.system, "system", max_slashes=0)
    units = _units(cfg.data, cfg.datasets)
    store = _store(cfg.results_dir, cfg.cache_dir, cfg.overwrite)
    sweep = Sweep(echo, len(units) * len(specs), cfg.progress)
    rerankers: list[Reranker] = []

    def jobs() -> Iterator[PairJob]:
        for spec in specs:
            reranker = build_reranker(spec, cfg.cache_dir)
            rerankers.append(reranker)
            for unit in units:
                yield _composed(spec, [cfg.candidates], "rerank", unit, store, _reranked(reranker))
            reranker.close()  # after its last dataset

    try:
        return _each(jobs(), store, sweep)
    finally:
        for reranker in rerankers:
            reranker.close()


def _reranker_spec(cfg: RerankConfig, model: str) -> SystemSpec:
    """The spec of `candidates>>model`, named `--name`, else for what differs from the re-ranker with
    the default options (`bm25>>ms-marco-MiniLM-L6-v2[depth=50]`), as `run` names its variants."""
    c = CrossEncoderConfig(**{**cfg.encoder.__dict__, "model": model, "progress": cfg.progress})
    cache = CacheRoot.optional(cfg.cache_dir)
    spec = resolve_reranker(c, cfg.candidates, cfg.depth, cfg.name, cache)
    if cfg.name is not None:
        return spec
    preset = CrossEncoderConfig(model=model, revision=c.revision, device=c.device,
                                trust_remote_code=c.trust_remote_code, progress=c.progress)  # fmt: skip
    preset_spec = resolve_reranker(preset, cfg.candidates, defaults.RERANK_DEPTH, None, cache)
    # a re-ranked run keeps `depth` documents a query: its top_k is said by its depth
    return replace(spec, system=spec.system + variant_suffix(replace(preset_spec, top_k=spec.top_k), spec))


def candidates_of(run: Run, data: BeirData, depth: int, first_stage: str) -> Candidates:
    """Each query's top `depth` documents of `run`, in trec_eval's rank order; a document that is not
    in the corpus means the run is of other data (`InputMissing`)."""
    out = {q: [d for d, _ in ranked(run[q])[:depth]] for q in data.queries if q in run}
    for docs in out.values():
        for d in docs:
            try:
                data.corpus.index_of(d)
            except KeyError:
                raise InputMissing(
                    f"the run of {first_stage} has document {d!r}, which is not in {data.name}'s corpus "
                    "(a run of other data?)"
                ) from None
    return out


def _reranked(reranker: Reranker):
    """`combine` for `_composed`: the one input run's candidates, re-scored by `reranker`."""

    def combine(spec: SystemSpec, data: BeirData, runs: list[Run]) -> tuple[Run, Report]:
        (first,) = runs
        candidates = candidates_of(first, data, spec.depth, spec.candidates)
        searched = reranker.rerank(data.corpus, data.queries, candidates)
        return searched.run, searched.report

    return combine


# ------------------------------------------------------------------------------------------ fuse


@dataclass
class FuseConfig:
    systems: list[str]  # stored systems, fused in this order
    datasets: list[str]
    method: str = "rrf"  # fusion.METHODS
    k: int = fusion.RRF_K
    weights: list[float] | None = None
    top_k: int = defaults.TOP_K
    name: str | None = None
    data: DataOptions = field(default_factory=DataOptions)
    results_dir: Path = paths.RESULTS_DIR
    cache_dir: Path | None = None  # where the corpus store (and dataset file digests) live
    overwrite: bool = False
    progress: bool = True

    def spec(self) -> fusion.FusionSpec:
        """The fused system's spec, named `--name`, else `fusion.fused_name` and what else differs
        from the defaults (`rrf(bm25+dense)[top_k=100]`), as `run` names its variants."""
        spec = fusion.fusion_spec(
            self.systems, self.method, self.k, self.weights, self.top_k, self.name, self.progress
        )
        if self.name is not None:
            return spec
        preset = fusion.fusion_spec(self.systems, self.method, self.k, self.weights, defaults.TOP_K, None)
        return replace(spec, system=spec.system + variant_suffix(preset, spec))

    def system_name(self) -> str:
        return self.spec().system


def fuse(cfg: FuseConfig, echo: Echo = print) -> RunResults:
    """Fuse the stored runs of `systems` on every dataset into one new stored system."""
    cfg = replace(cfg, systems=[stored_name(cfg.results_dir, s) for s in cfg.systems])
    spec = cfg.spec()
    validate_name(spec.system, "system", max_slashes=0)
    check_stored(cfg.results_dir, cfg.systems, cfg.data, cfg.datasets, "fuse")
    units = _units(cfg.data, cfg.datasets)
    store = _store(cfg.results_dir, cfg.cache_dir, cfg.overwrite)
    sweep = Sweep(echo, len(units), cfg.progress)

    def fused(s: fusion.FusionSpec, data: BeirData, runs: list[Run]) -> tuple[Run, Report]:
        t0 = time.perf_counter()
        return fusion.fuse_spec(s, runs), Report({"fuse_s": time.perf_counter() - t0})

    return _each((_composed(spec, spec.systems, "fuse", unit, store, fused) for unit in units), store, sweep)


# ---------------------------------------------------------------------------------------- shared


def _stored_systems(results_dir: Path) -> list[str]:
    folder = Path(results_dir)
    return (
        sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        if folder.is_dir()
        else []
    )


def stored_name(results_dir: Path, system: str) -> str:
    """`system` as stored, case aside (`BM25`: bm25, when exactly one stored system is spelt so)."""
    return canonical(system, _stored_systems(results_dir)) or system


def check_stored(
    results_dir: Path, systems: Sequence[str], data: DataOptions, datasets: Sequence[str], role: str
):
    """Each input system has a stored result on at least one of the datasets asked for (else nothing
    can be made: a `Mistake`, said before any data is read or downloaded).  A pair whose input alone is
    missing, or is stored but cannot be served, fails on its own (`InputMissing`, saying why)."""
    names = [n for spec in data.expand(list(datasets)).datasets for n in unit_names(spec, data.data_dir)]
    stored = _stored_systems(results_dir)
    where = ", ".join(names) if len(names) <= 3 else f"any of the {len(names)} datasets ({names[0]} …)"
    for system in systems:
        if not any(ResultsStore(results_dir).path(system, n, data.split).is_file() for n in names):
            raise Mistake(
                f"{role}: no stored result of {system} on {where} in {results_dir}; run it first"
                f"{did_you_mean(system, [s for s in stored if s != system])}"
            )


def _composed(
    spec: SystemSpec, sources: Sequence[str], role: str, unit: DatasetUnit, store: PairStore, combine
) -> PairJob:
    """A pair of a system made from the stored runs of `sources` (the candidates, or the fused
    systems): its identity names those runs by content; `combine(spec, data, runs)` makes it."""

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
    return PairStore(Path(results_dir), CacheRoot.corpus_area(cache_dir), overwrite)


def _each(jobs, store: PairStore, sweep: Sweep) -> RunResults:
    try:
        return each_pair(jobs, store, sweep)
    finally:
        sweep.close()
