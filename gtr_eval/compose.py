"""Systems made from stored runs: `rerank` (a cross-encoder over a run's top documents) and `fuse`
(several runs combined).  Each result is stored like any other system's (metrics, per-query scores,
TREC run, manifest naming its inputs and their run files' sha256) through the runner's pair loop:
pairs already done are skipped, a pair another process holds is revisited, a kill leaves no result.

Names: `<candidates>>><cross-encoder>` (`bm25>>ms-marco-MiniLM-L6-v2`) and `fusion.fused_name`
(`rrf(bm25+all-MiniLM-L6-v2)`), unless `name` is given.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import fusion
from .data.loader import BeirData
from .data.units import DataOptions, DatasetUnit
from .evaluation import Run, evaluate, ranked, read_trec_run
from .io import sha256_file
from .results import StoredResult, load_result, save_result, validate_name
from .retrieval.rerank import CrossEncoderConfig, CrossEncoderScorer
from .runner import (
    DataMemo,
    PairJob,
    RunResults,
    Sweep,
    clear_leftovers,
    dataset_manifest,
    each_pair,
    echo_done,
    reusable,
)

Echo = Callable[[str], None]


# ---------------------------------------------------------------------------------------- rerank


@dataclass
class RerankConfig:
    candidates: str  # the stored system whose runs are re-ranked
    models: list[str]  # cross-encoders: hub ids, folders, or short names (retrieval.rerank.CROSS_ENCODERS)
    datasets: list[str]
    depth: int = 100
    data: DataOptions = field(default_factory=DataOptions)
    results_dir: Path = Path("results")
    cache_dir: Path | None = None
    overwrite: bool = False
    name: str | None = None  # the new system's name (one model only)
    encoder: CrossEncoderConfig = field(default_factory=lambda: CrossEncoderConfig(model=""))
    progress: bool = True


def rerank_name(candidates: str, model_name: str) -> str:
    return f"{candidates}>>{model_name}"


def rerank(cfg: RerankConfig, echo: Echo = print) -> RunResults:
    """Re-score the top `depth` documents of `candidates`' stored run per query, for every model and
    dataset.  Documents below `depth` are dropped, as in BEIR's `Rerank` (its result holds only the
    re-ranked top-k), so a re-ranked run's Recall@k for k >= depth is the first stage's Recall@depth."""
    if cfg.depth < 1:
        raise ValueError(f"depth must be >= 1, not {cfg.depth}")
    if cfg.name and len(cfg.models) != 1:
        raise ValueError("--name names one system: give one cross-encoder with it")
    scorers = {
        m: CrossEncoderScorer(
            CrossEncoderConfig(**{**cfg.encoder.__dict__, "model": m}), cfg.cache_dir, cfg.progress
        )
        for m in cfg.models
    }
    units = _units(cfg.data, cfg.datasets)
    sweep = Sweep(echo, len(units) * len(scorers), cfg.progress)
    data = DataMemo(sweep.say, cfg.cache_dir)

    def jobs():
        for unit in units:
            for scorer in scorers.values():
                name = cfg.name or rerank_name(cfg.candidates, scorer.name)
                validate_name(name, "system", max_slashes=0)
                yield PairJob(
                    name,
                    unit.name,
                    compute=lambda s=scorer, u=unit, n=name: _rerank_pair(cfg, s, n, u, data, sweep.say),
                    reuse=lambda s=scorer, u=unit, n=name: reusable(
                        cfg.results_dir, n, u.name, {**_rerank_settings(cfg, s, u), "top_k": cfg.depth}
                    ),
                )

    return _each(jobs(), cfg.results_dir, cfg.overwrite, sweep)


def _units(data: DataOptions, datasets: Sequence[str]) -> list[DatasetUnit]:
    return [u for spec in data.expand(list(datasets)).datasets for u in data.units(spec)]


def _each(jobs, results_dir: Path, overwrite: bool, sweep: Sweep) -> RunResults:
    try:
        return each_pair(jobs, results_dir, overwrite, sweep)
    finally:
        sweep.close()


def _candidate(cfg: RerankConfig, unit: DatasetUnit) -> tuple[StoredResult, Run, str]:
    try:
        stored = load_result(cfg.results_dir, cfg.candidates, unit.name)
    except ValueError as e:
        raise ValueError(
            f"rerank needs the stored run of {cfg.candidates} on {unit.name} ({e}); run it first"
        ) from None
    run = read_trec_run(stored.run_path)
    return stored, run, run_file_sha256(stored.run_path)


def _rerank_settings(cfg: RerankConfig, scorer: CrossEncoderScorer, unit: DatasetUnit) -> dict:
    _, _, sha = _candidate(cfg, unit)
    return {
        **scorer.settings(),
        "candidates": cfg.candidates,
        "candidate_run_sha256": sha,
        "depth": cfg.depth,
    }


def candidate_pairs(run: Run, queries: dict[str, str], depth: int) -> list[tuple[str, str]]:
    """(query id, document id) of each query's top `depth` documents, in trec_eval's rank order."""
    return [(q, d) for q in queries if q in run for d, _ in ranked(run[q])[:depth]]


def _rerank_pair(
    cfg: RerankConfig, scorer: CrossEncoderScorer, name: str, unit: DatasetUnit, load: DataMemo, echo: Echo
) -> StoredResult:
    clear_leftovers(cfg.results_dir, name, unit.name)
    scorer.timings.clear()
    stored, candidates, sha = _candidate(cfg, unit)
    data = load(unit)
    t0 = time.perf_counter()
    ids = candidate_pairs(candidates, data.queries, cfg.depth)
    texts = [(data.queries[q], _doc_text(data, d, stored)) for q, d in ids]
    scores = scorer.score(texts, desc=f"{name}: score pairs")
    run: Run = {}
    for (q, d), s in zip(ids, scores.tolist(), strict=True):
        run.setdefault(q, {})[d] = float(s)
    t1 = time.perf_counter()
    evaluation = evaluate(data.qrels, run, ignore_identical_ids=unit.ignore_identical_ids)
    manifest = {
        "retriever": "rerank",
        **scorer.manifest(),
        "candidates": cfg.candidates,
        "candidate_run_sha256": sha,
        "candidate_model": _model_summary(stored.manifest),
        "depth": cfg.depth,
        "top_k": cfg.depth,
        "below_depth": "dropped (BEIR's Rerank returns only the re-ranked top-k)",
        "dataset": dataset_manifest(unit, data),
        "pair_stats": scorer.stats,
        "timings": {
            "load_data_s": getattr(data, "manifest_timing", None),
            **scorer.timings,
            "rerank_total_s": t1 - t0,
            "evaluate_s": time.perf_counter() - t1,
        },
    }
    path = save_result(cfg.results_dir, name, unit.name, unit.split, evaluation, run, manifest)
    st = scorer.stats
    echo(
        f"[cache] {name} on {unit.name}: {st['pairs']} pairs ({st['distinct_pairs']} distinct): "
        f"{st['pairs_reused']} reused, {st['pairs_scored']} scored in {st['shards_encoded']} new shards "
        f"(+{st['shards_reused']} resumed)"
    )
    echo_done(echo, name, unit.name, evaluation.metrics, t1 - t0, path)
    return load_result(cfg.results_dir, name, unit.name)


def _doc_text(data: BeirData, doc_id: str, stored: StoredResult) -> str:
    try:
        return data.corpus.text(data.corpus.index_of(doc_id))
    except KeyError:
        raise ValueError(
            f"{stored.run_path}: document {doc_id!r} is not in {data.name}'s corpus (a run of other data?)"
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
    overwrite: bool = False
    progress: bool = True

    def system_name(self) -> str:
        return self.name or fusion.fused_name(self.method, self.systems, self.k, self.weights)


def fuse(cfg: FuseConfig, echo: Echo = print) -> RunResults:
    """Fuse the stored runs of `systems` on every dataset into one new stored system."""
    if len(cfg.systems) < 2:
        raise ValueError(f"fusion needs at least two systems, got {len(cfg.systems)}")
    if len(set(cfg.systems)) != len(cfg.systems):
        raise ValueError(f"a system is listed twice: {cfg.systems}")
    if cfg.method not in fusion.METHODS:
        raise ValueError(f"fusion method must be one of {fusion.METHODS}, not {cfg.method!r}")
    if cfg.method == "rrf" and cfg.weights is not None:
        raise ValueError("RRF takes no weights (use --minmax or --zscore for a weighted sum)")
    if cfg.weights is not None and len(cfg.weights) != len(cfg.systems):
        raise ValueError(f"{len(cfg.weights)} weights for {len(cfg.systems)} systems")
    name = cfg.system_name()
    validate_name(name, "system", max_slashes=0)
    units = _units(cfg.data, cfg.datasets)
    sweep = Sweep(echo, len(units), cfg.progress)
    data = DataMemo(sweep.say)

    def jobs():
        for unit in units:
            yield PairJob(
                name,
                unit.name,
                compute=lambda u=unit: _fuse_pair(cfg, name, u, data, sweep.say),
                reuse=lambda u=unit: reusable(cfg.results_dir, name, u.name, _fuse_settings(cfg, u)),
            )

    return _each(jobs(), cfg.results_dir, cfg.overwrite, sweep)


def _fusion_params(cfg: FuseConfig) -> dict:
    if cfg.method == "rrf":
        return {"method": "rrf", "k": cfg.k}
    weights = cfg.weights or [1.0 / len(cfg.systems)] * len(cfg.systems)
    return {"method": cfg.method, "norm": {"minmax": "min-max", "zscore": "z-score"}[cfg.method],
            "weights": weights}  # fmt: skip


def _inputs(cfg: FuseConfig, unit: DatasetUnit) -> list[tuple[StoredResult, Run, str]]:
    out = []
    for system in cfg.systems:
        try:
            stored = load_result(cfg.results_dir, system, unit.name)
        except ValueError as e:
            raise ValueError(
                f"fuse needs a stored result of {system} on {unit.name} ({e}); run it first"
            ) from None
        out.append((stored, read_trec_run(stored.run_path), run_file_sha256(stored.run_path)))
    return out


def _fuse_settings(cfg: FuseConfig, unit: DatasetUnit) -> dict:
    inputs = _inputs(cfg, unit)
    return {
        "fusion": _fusion_params(cfg),
        "inputs": [_input_entry(s, sha) for s, _, sha in inputs],
        "top_k": cfg.top_k,
    }


def _input_entry(stored: StoredResult, sha: str) -> dict:
    return {"system": stored.system, "run_sha256": sha, "model": _model_summary(stored.manifest)}


def _fuse_pair(cfg: FuseConfig, name: str, unit: DatasetUnit, load: DataMemo, echo: Echo) -> StoredResult:
    clear_leftovers(cfg.results_dir, name, unit.name)
    inputs = _inputs(cfg, unit)
    data = load(unit)  # for its qrels and checksum
    for stored, _, _ in inputs:
        checksum = (stored.manifest.get("dataset") or {}).get("checksum")
        if checksum and checksum != data.checksum:
            raise ValueError(
                f"{stored.path} was made on other data than {unit.path} (dataset checksum {checksum[:12]}… "
                f"vs {data.checksum[:12]}…); re-run {stored.system} on it first"
            )
    t0 = time.perf_counter()
    run = fusion.fuse([r for _, r, _ in inputs], cfg.method, k=cfg.k, weights=cfg.weights, top_k=cfg.top_k)
    t1 = time.perf_counter()
    evaluation = evaluate(data.qrels, run, ignore_identical_ids=unit.ignore_identical_ids)
    manifest = {
        "retriever": "fusion",
        "fusion": _fusion_params(cfg),
        "inputs": [_input_entry(s, sha) for s, _, sha in inputs],
        "top_k": cfg.top_k,
        "dataset": dataset_manifest(unit, data),
        "timings": {
            "load_data_s": getattr(data, "manifest_timing", None),
            "fuse_s": t1 - t0,
            "evaluate_s": time.perf_counter() - t1,
        },  # fmt: skip
    }
    path = save_result(cfg.results_dir, name, unit.name, unit.split, evaluation, run, manifest)
    echo_done(echo, name, unit.name, evaluation.metrics, t1 - t0, path)
    return load_result(cfg.results_dir, name, unit.name)


# ---------------------------------------------------------------------------------------- shared


def run_file_sha256(path: Path) -> str:
    """sha256 of a stored TREC run file: names exactly the run a composed system was made from."""
    return sha256_file(path)


def _model_summary(manifest: dict) -> dict:
    """The part of an input's manifest that says what made it."""
    keys = ("retriever", "model", "hub_id", "revision", "weights_sha256", "query_weights_sha256", "preset",
            "candidates", "fusion")  # fmt: skip
    return {k: manifest[k] for k in keys if k in manifest}
