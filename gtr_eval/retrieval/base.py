"""The one interface every retriever implements: index a corpus, then search queries for the top k.

Like BEIR's `BaseSearch`, it is deliberately narrow: the runner, PeerQA's scoped search and the
distributed encoders need nothing else.  `manifest()` records what made a ranking and `settings()`
the part of it that must match before a stored result is reused.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from ..data.loader import Corpus

Run = dict[str, dict[str, float]]

TEXT_FORMAT = "(title + ' ' + text).strip()"


class Retriever(ABC):
    """Index once, search many query sets. `manifest()` says everything that made the ranking."""

    name: str
    timings: dict[str, float]

    @abstractmethod
    def index(self, corpus: Corpus) -> None: ...

    @abstractmethod
    def search(self, queries: dict[str, str], top_k: int) -> Run: ...

    @abstractmethod
    def manifest(self) -> dict: ...

    def settings(self) -> dict:
        """The manifest entries that change the ranking; a stored result must match them to be reused."""
        return {}

    def candidate_system(self) -> str | None:
        """The system whose stored run on the same dataset this retriever re-scores (a two-stage
        search), or None.  The runner then hands that run to `use_candidates` before `search`."""
        return None

    def use_candidates(self, run: Run, source: dict) -> None:
        """The first stage's run and where it came from (`system`, `run_file`, `run_sha256`)."""
        raise NotImplementedError(f"{type(self).__name__} does not re-rank candidates")

    def close(self) -> None:  # noqa: B027 - optional hook: most retrievers hold nothing to release
        """Release files and models; the runner calls it once the retriever is no longer needed."""


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
