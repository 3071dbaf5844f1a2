"""The one interface every retriever implements: index a corpus, then search queries for the top k.

Like BEIR's `BaseSearch`, it is deliberately narrow: `index`, `search`, `close`, and the `spec` the
retriever was built from (`spec.SystemSpec`: what makes its rankings, resolved before it was built).
What a stage took and did (timings, shards encoded or reused, index size) comes back as a `Report`,
never as attributes to look up.

A `Reranker` is the second stage's interface, as narrow: it re-scores the candidates a first stage's
stored run gives each query (a cross-encoder, or exact MaxSim of a late-interaction model), so a
retriever never has to know about another system's run.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..data.loader import Corpus
from .spec import SystemSpec

Run = dict[str, dict[str, float]]

TEXT_FORMAT = "(title + ' ' + text).strip()"


@dataclass(frozen=True)
class Report:
    """What one stage (or several, added up) took and did: seconds per step, and counts."""

    timings: Mapping[str, float] = field(default_factory=dict)
    stats: Mapping[str, Any] = field(default_factory=dict)

    def __add__(self, other: Report) -> Report:
        """Both stages: timings and numeric counts summed (PeerQA searches paper by paper), other
        entries the later one's."""
        timings = dict(self.timings)
        for k, v in other.timings.items():
            timings[k] = timings.get(k, 0.0) + v
        return Report(timings, _merged(self.stats, other.stats))


def _merged(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        old = out.get(k)
        if isinstance(v, int | float) and not isinstance(v, bool) and isinstance(old, int | float):
            out[k] = old + v
        elif isinstance(v, Mapping) and isinstance(old, Mapping):
            out[k] = _merged(old, v)
        else:
            out[k] = v
    return out


@dataclass(frozen=True)
class Searched:
    """A search's run (query -> document -> score) and its report."""

    run: Run
    report: Report = field(default_factory=Report)


class Retriever(ABC):
    """Index once, search many query sets.  `spec` says everything that makes the rankings."""

    spec: SystemSpec
    progress: bool = True

    @property
    def name(self) -> str:
        return self.spec.system

    @abstractmethod
    def index(self, corpus: Corpus) -> Report: ...

    @abstractmethod
    def search(self, queries: dict[str, str], top_k: int) -> Searched:
        """The top `top_k` documents of each query."""

    def close(self) -> None:  # noqa: B027 - optional hook: most retrievers hold nothing to release
        """Release files and models; the runner calls it after the retriever's last dataset."""


Candidates = dict[str, list[str]]  # query id -> document ids, the first stage's best first


class Reranker(ABC):
    """Re-score each query's candidates: the top `spec.depth` documents of the stored run of
    `spec.candidates` (picked, in the first stage's rank order, by the pipeline, which checks they
    are in the corpus).  Documents below the depth are dropped, as in BEIR's `Rerank`."""

    spec: SystemSpec

    @property
    def name(self) -> str:
        return self.spec.system

    @abstractmethod
    def rerank(self, corpus: Corpus, queries: dict[str, str], candidates: Candidates) -> Searched:
        """The candidates of each query in `queries`, with their new scores."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release files and models (after the re-ranker's last dataset)."""


def to_run(
    qids: list[str], doc_ids, scores: np.ndarray, indices: np.ndarray, keep: np.ndarray | None = None
) -> Run:
    """Rows of (scores, corpus indices) as a run; `keep` (same shape) masks entries out.

    `doc_ids` is the corpus' id column (its `take` gathers all ids in one vectorised call) or any
    indexable sequence of ids.
    """
    scores, indices = np.asarray(scores), np.asarray(indices)
    if keep is None:
        keep = np.ones(indices.shape, dtype=bool)
    counts = keep.sum(axis=1)
    flat = indices[keep]
    names = doc_ids.take(flat) if hasattr(doc_ids, "take") else [doc_ids[j] for j in flat.tolist()]
    values = scores[keep].tolist()
    run: Run = {}
    start = 0
    for q, count in zip(qids, counts.tolist(), strict=True):
        run[q] = dict(zip(names[start : start + count], values[start : start + count], strict=True))
        start += count
    return run
