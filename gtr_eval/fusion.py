"""Fusion of runs: reciprocal rank fusion and normalised weighted sums, as pure functions.

Conventions (tested against ranx's `fuse` in tests/test_fusion.py):

- Ranks are taken in trec_eval's order (score descending, ties by document id descending: the order
  `evaluation.ranked` defines and our TREC files are written in), so tied inputs fuse the same way
  every time.  ranx breaks ties in whatever order its sort leaves them.
- RRF: score(d) = sum over runs of 1 / (k + rank(d)), rank starting at 1; a run that did not
  retrieve d adds nothing (Cormack et al. 2009; ranx's `rrf`).  k = 60 by default.
- Weighted sums: each run's scores are normalised per query, min-max to [0, 1] or z-score
  (mean 0, population standard deviation 1; a zero range or deviation divides by 1e-9, as ranx
  does), then summed with the weights; a run that did not retrieve d adds 0.  Default weights are
  equal and sum to 1.
- Queries: the union of the runs' queries (ranx needs identical query sets; a query missing from a
  run is an empty result there).  The fused run is cut to `top_k` documents per query.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from . import defaults
from .errors import Mistake
from .evaluation import Run, ranked
from .identity import setting
from .retrieval.spec import SystemSpec

METHODS = ("rrf", "minmax", "zscore")
RRF_K = 60
_EPS = 1e-9


@dataclass(frozen=True)
class FusionParams:
    """How runs are combined: RRF with its k, or a weighted sum of normalised scores."""

    method: str
    k: int | None = None  # RRF only
    norm: str | None = None  # min-max or z-score (weighted sums only)
    weights: tuple[float, ...] | None = None  # weighted sums only; in the inputs' order


@dataclass(frozen=True, kw_only=True)
class FusionSpec(SystemSpec):
    """A fused system: the fusion and the stored runs it combines (`inputs`, per dataset)."""

    retriever: str = "fusion"
    fusion: FusionParams
    systems: tuple[str, ...] = setting(())  # the input systems, in fusion order (runs: `inputs`)
    progress: bool = setting(True)


def fusion_spec(
    systems: Sequence[str],
    method: str = "rrf",
    k: int = RRF_K,
    weights: Sequence[float] | None = None,
    top_k: int = defaults.TOP_K,
    name: str | None = None,
    progress: bool = True,
) -> FusionSpec:
    """The spec of the fusion of `systems` (checked: two or more, each once, arguments that fit)."""
    if len(systems) < 2:
        raise Mistake(f"fusion needs at least two systems, got {len(systems)}")
    if len(set(systems)) != len(systems):
        raise Mistake(f"a system is listed twice: {', '.join(systems)}")
    if method not in METHODS:
        raise Mistake(f"fusion method must be one of {', '.join(METHODS)}, not {method!r}")
    if method == "rrf" and weights is not None:
        raise Mistake("RRF takes no weights (use --minmax or --zscore for a weighted sum)")
    if method == "rrf" and k < 0:
        raise Mistake(f"RRF k must be >= 0, not {k}")
    if weights is not None and len(weights) != len(systems):
        raise Mistake(f"{len(weights)} weights for {len(systems)} systems")
    if method == "rrf":
        params = FusionParams("rrf", k=k)
    else:
        norm = {"minmax": "min-max", "zscore": "z-score"}[method]
        params = FusionParams(method, norm=norm, weights=tuple(_weights(weights, len(systems))))
    return FusionSpec(
        system=name or fused_name(method, systems, k, weights),
        fusion=params,
        systems=tuple(systems),
        top_k=top_k,
        progress=progress,
    )


def fuse_spec(spec: FusionSpec, runs: Sequence[Run]) -> Run:
    """The fused run `spec` describes, of `runs` in its inputs' order."""
    f = spec.fusion
    return fuse(runs, f.method, k=f.k if f.k is not None else RRF_K, weights=f.weights, top_k=spec.top_k)


def rrf(runs: Sequence[Run], k: int = RRF_K) -> Run:
    """Reciprocal rank fusion of `runs`."""
    if k < 0:
        raise ValueError(f"RRF k must be >= 0, not {k}")
    rank_scores = [{q: {d: 1.0 / (k + r) for r, (d, _) in enumerate(ranked(docs), start=1)}
                    for q, docs in run.items()} for run in runs]  # fmt: skip
    return _weighted_sum(rank_scores, [1.0] * len(runs))


def normalized_sum(runs: Sequence[Run], weights: Sequence[float] | None = None, norm: str = "minmax") -> Run:
    """Per-query `norm` ("minmax" or "zscore") normalisation of each run, then a weighted sum."""
    weights = _weights(weights, len(runs))
    normalize = {"minmax": _minmax, "zscore": _zscore}.get(norm)
    if normalize is None:
        raise ValueError(f"norm must be 'minmax' or 'zscore', not {norm!r}")
    return _weighted_sum([{q: normalize(docs) for q, docs in run.items()} for run in runs], weights)


def fuse(
    runs: Sequence[Run],
    method: str = "rrf",
    k: int = RRF_K,
    weights: Sequence[float] | None = None,
    top_k: int | None = None,
) -> Run:
    """`method` in METHODS over at least two runs; cut to `top_k` per query when given."""
    if len(runs) < 2:
        raise ValueError(f"fusion needs at least two runs, got {len(runs)}")
    if method not in METHODS:
        raise ValueError(f"fusion method must be one of {', '.join(METHODS)}, not {method!r}")
    if method == "rrf":
        if weights is not None:
            raise ValueError("RRF takes no weights (use --minmax or --zscore for a weighted sum)")
        fused = rrf(runs, k)
    else:
        fused = normalized_sum(runs, weights, norm=method)
    return fused if top_k is None else cut(fused, top_k)


def cut(run: Run, top_k: int) -> Run:
    """The first `top_k` documents of each query in trec_eval's order."""
    return {q: dict(ranked(docs)[:top_k]) for q, docs in run.items()}


def fused_name(
    method: str, systems: Sequence[str], k: int = RRF_K, weights: Sequence[float] | None = None
) -> str:
    """The fused system's name: `rrf(bm25+all-MiniLM-L6-v2)`, `rrf-k10(a+b)`, `minmax(a@0.3+b@0.7)`.

    Only `( ) + @ .` and the input names' own characters: safe in file names on every system.
    """
    if method == "rrf":
        head = "rrf" if k == RRF_K else f"rrf-k{k}"
        return f"{head}({'+'.join(systems)})"
    w = _weights(weights, len(systems))
    if weights is None or all(math.isclose(x, w[0]) for x in w):
        return f"{method}({'+'.join(systems)})"
    return f"{method}({'+'.join(f'{s}@{_num(x)}' for s, x in zip(systems, w, strict=True))})"


def parse_weights(text: str | None) -> list[float] | None:
    """`0.3,0.7` -> [0.3, 0.7]."""
    if text is None:
        return None
    try:
        values = [float(x) for x in re.split(r"[,\s]+", text.strip()) if x]
    except ValueError:
        raise Mistake(f"--weights must be numbers separated by commas, not {text!r}") from None
    if not values or not all(math.isfinite(v) for v in values):
        raise Mistake(f"--weights must be finite numbers, not {text!r}")
    return values


def _num(x: float) -> str:
    return f"{x:g}"


def _weights(weights: Sequence[float] | None, n: int) -> list[float]:
    if weights is None:
        return [1.0 / n] * n
    if len(weights) != n:
        raise ValueError(f"{len(weights)} weights for {n} runs")
    return [float(w) for w in weights]


def _weighted_sum(runs: Sequence[Run], weights: Sequence[float]) -> Run:
    """Sum over runs in order (so the floats equal a left-to-right sum), union of queries and docs."""
    queries: dict[str, None] = {}
    for run in runs:
        queries.update(dict.fromkeys(run))
    fused: Run = {}
    for q in queries:
        parts = [run.get(q, {}) for run in runs]
        docs: dict[str, None] = {}
        for part in parts:
            docs.update(dict.fromkeys(part))
        fused[q] = {
            d: sum(w * part.get(d, 0.0) for w, part in zip(weights, parts, strict=True)) for d in docs
        }
    return fused


def _minmax(docs: dict[str, float]) -> dict[str, float]:
    if not docs:
        return {}
    lo, hi = min(docs.values()), max(docs.values())
    span = max(hi - lo, _EPS)
    return {d: (s - lo) / span for d, s in docs.items()}


def _zscore(docs: dict[str, float]) -> dict[str, float]:
    if not docs:
        return {}
    values = list(docs.values())
    mean = math.fsum(values) / len(values)
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / len(values))
    std = max(std, _EPS)
    return {d: (s - mean) / std for d, s in docs.items()}
