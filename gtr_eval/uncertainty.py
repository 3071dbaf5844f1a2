"""How sure is a number: percentile-bootstrap intervals over queries, vectorised with numpy.

A score is a mean over a dataset's judged queries; the queries are a sample, so the mean has a
sampling error.  The bootstrap redraws the queries with replacement (`resamples` times, 10,000 by
default) and takes the 2.5th and 97.5th percentiles of the redrawn means as the 95% interval.

- One stream of draws per dataset, seeded by (seed, dataset name): adding a dataset to a table
  changes no other dataset's interval, and every system and metric of a dataset is redrawn with
  the *same* queries, so a difference of two systems (paired: the same resample for both) and an
  average over datasets are computed from the draws themselves.
- The BEIR Average: each dataset is redrawn within itself, then the redrawn means are averaged over
  the datasets (a stratified bootstrap), which is the interval of the mean over datasets; likewise
  CQADupStack's mean of its 12 subforums.
- Draws are counts (how often each query is drawn), `counts @ scores / n`: one matrix product per
  block of resamples serves every column (system × metric) of a dataset at once.

What an interval does not say: it is about redrawing queries from the same population, with the
same corpus, the same qrels and the same pooling; it says nothing about another dataset, and
nothing about queries the assessors judged differently (see `docs/uncertainty.md`).
"""

from __future__ import annotations

import zlib
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_RESAMPLES = 10_000
DEFAULT_SEED = 0
DEFAULT_LEVEL = 0.95
_BLOCK_ENTRIES = 1 << 22  # counts drawn per block (resamples × queries): 32 MiB of int64


@dataclass(frozen=True)
class Bootstrap:
    """How intervals are drawn; recorded beside every interval shown (tables name it in a note)."""

    resamples: int = DEFAULT_RESAMPLES
    seed: int = DEFAULT_SEED
    level: float = DEFAULT_LEVEL

    def __post_init__(self) -> None:
        if self.resamples < 100:
            raise ValueError(f"resamples must be at least 100, got {self.resamples}")
        if not 0 < self.level < 1:
            raise ValueError(f"level must be in (0, 1), got {self.level}")

    def describe(self) -> str:
        return f"{self.level:.0%} percentile bootstrap over queries, {self.resamples:,} resamples, seed {self.seed}"

    def record(self) -> dict[str, float | int | str]:
        return {
            "method": "percentile bootstrap over queries",
            "resamples": self.resamples,
            "seed": self.seed,
            "level": self.level,
        }


DEFAULT_BOOTSTRAP = Bootstrap()


def dataset_rng(seed: int, dataset: str) -> np.random.Generator:
    """The draws of one dataset: the same for every system and metric on it, independent of which
    other datasets are in the table (a stable hash of the name, not Python's salted `hash`)."""
    return np.random.default_rng([int(seed), zlib.crc32(dataset.encode("utf-8"))])


def resample_means(scores: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Means of `resamples` bootstrap resamples of the rows of `scores` (n queries × m columns, or n):
    shape (resamples, m), or (resamples,).  Drawn in blocks; the draws do not depend on the block
    size, since the generator yields the same stream however it is cut."""
    values = np.asarray(scores, dtype=float)
    flat = values.ndim == 1
    values = values[:, None] if flat else values
    n = values.shape[0]
    if n == 0:
        raise ValueError("no queries to resample")
    out = np.empty((resamples, values.shape[1]))
    block = max(1, _BLOCK_ENTRIES // n)
    for start in range(0, resamples, block):
        rows = min(block, resamples - start)
        picks = rng.integers(0, n, size=(rows, n))
        picks += (np.arange(rows) * n)[:, None]
        counts = np.bincount(picks.ravel(), minlength=rows * n).reshape(rows, n)
        out[start : start + rows] = counts.astype(float) @ values / n  # BLAS: float @ float
    return out[:, 0] if flat else out


def percentile_interval(draws: np.ndarray, level: float = DEFAULT_LEVEL) -> tuple[float, float]:
    """The central `level` interval of the draws: the percentile method with the empirical quantile
    (the ⌈B·q⌉-th smallest draw, no interpolation), so that an interval excludes 0 exactly when
    `bootstrap_pvalue` is under 1 − level (interpolating between two draws can break that tie)."""
    q = [(1 - level) / 2, (1 + level) / 2]
    low, high = np.quantile(np.asarray(draws, dtype=float), q, method="inverted_cdf")
    return float(low), float(high)


def interval(
    scores: Sequence[float], config: Bootstrap = DEFAULT_BOOTSTRAP, dataset: str = ""
) -> tuple[float, float]:
    """The interval of the mean of one system's per-query scores on one dataset.  The draws index
    the scores in the order given; `Draws` (and so every table) orders them by query id."""
    rng = dataset_rng(config.seed, dataset)
    return percentile_interval(resample_means(np.asarray(scores), config.resamples, rng), config.level)


def paired_interval(
    a: Mapping[str, float], b: Mapping[str, float], config: Bootstrap = DEFAULT_BOOTSTRAP, dataset: str = ""
) -> tuple[float, float]:
    """The interval of mean(a) − mean(b) over the queries both score, both redrawn with the same
    resamples (a paired bootstrap: query difficulty, shared by the two, cancels out)."""
    qids = sorted(set(a) & set(b))
    diff = np.array([a[q] - b[q] for q in qids], dtype=float)
    return interval(diff, config, dataset)


def bootstrap_pvalue(diff_draws: np.ndarray) -> float:
    """Two-sided bootstrap p-value of "no difference": twice the smaller share of the redrawn
    differences on either side of zero, at most 1."""
    d = np.asarray(diff_draws, dtype=float)
    return float(min(1.0, 2 * min(np.mean(d <= 0), np.mean(d >= 0))))


def holm_levels(pvalues: Sequence[float], level: float = DEFAULT_LEVEL) -> list[float]:
    """Confidence levels that make m intervals agree with Holm's step-down test at α = 1 − level:
    the comparison with the i-th smallest p-value (i = 0, 1, …) gets 1 − α/(m − i), until the first
    one Holm does not reject; it and all after it get that one's level.  So an interval excludes 0
    where Holm (on these p-values) rejects, and includes it where Holm stops."""
    alpha = 1 - level
    m = len(pvalues)
    out = [level] * m
    stopped: float | None = None
    for step, i in enumerate(np.argsort(pvalues, kind="stable")):
        step_level = 1 - alpha / (m - step)
        if stopped is None and pvalues[i] > alpha / (m - step):
            stopped = step_level
        out[i] = stopped if stopped is not None else step_level
    return out


class Draws:
    """Bootstrap draws of many columns (e.g. one per (system, metric)) of many datasets, each
    computed once: `of(dataset, columns)` redraws only the columns it has not seen.

    Columns of a dataset that cover the same queries share one set of resamples (their sorted ids
    index the draws); a column over other queries (another qrels version) gets its own, from the
    same seed."""

    def __init__(self, config: Bootstrap = DEFAULT_BOOTSTRAP):
        self.config = config
        self._cache: dict[tuple[str, Hashable], np.ndarray] = {}

    def of(self, dataset: str, columns: Mapping[Hashable, Mapping[str, float]]) -> dict[Hashable, np.ndarray]:
        """{column: redrawn means (resamples,)} for the per-query scores of each column."""
        todo = [c for c in columns if (dataset, c) not in self._cache and columns[c]]
        by_queries: dict[tuple[str, ...], list[Hashable]] = {}
        for c in todo:
            by_queries.setdefault(tuple(sorted(columns[c])), []).append(c)
        for qids, group in by_queries.items():
            matrix = np.array([[columns[c][q] for c in group] for q in qids], dtype=float)
            rng = dataset_rng(self.config.seed, dataset)
            means = resample_means(matrix, self.config.resamples, rng)
            for j, c in enumerate(group):
                self._cache[(dataset, c)] = means[:, j]
        return {c: self._cache[(dataset, c)] for c in columns if (dataset, c) in self._cache}
