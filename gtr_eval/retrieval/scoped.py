"""Scoped search: each query searches only its own scope's documents (PeerQA: its own paper).

Works with any `Retriever`; see `gtr_eval.data.peerqa` for why PeerQA is scored this way.
"""

from __future__ import annotations

import time
from collections import defaultdict

from ..data.loader import Corpus
from ..data.peerqa import Groups
from .base import Retriever, Run


def scoped_search(
    retriever: Retriever, corpus: Corpus, queries: dict[str, str], groups: Groups, top_k: int
) -> Run:
    """Per scope: index its documents once, search its queries only; one run for all queries.

    Works with any `Retriever`; a dense one encodes each document exactly once (each document is in
    one scope).  Timings and encode statistics are summed over scopes.
    """
    scoped = {q for qs in groups.queries.values() for q in qs}
    if unscoped := [q for q in queries if q not in scoped]:
        raise ValueError(f"{len(unscoped)} queries belong to no scope, e.g. {unscoped[0]!r}")
    progress = getattr(retriever, "progress", False)
    scopes = [s for s, qs in groups.queries.items() if any(q in queries for q in qs)]
    if progress:
        from tqdm.auto import tqdm

        scopes = tqdm(scopes, desc=f"{retriever.name}: per-paper search", unit="paper")
    timings: dict[str, float] = defaultdict(float)
    stats: dict[str, int] = defaultdict(int)
    run: Run = {}
    t0 = time.perf_counter()
    try:
        if progress:
            retriever.progress = False  # type: ignore[attr-defined]  # one bar, not two per paper
        for scope in scopes:
            sub = corpus.subset(groups.docs[scope])
            retriever.timings.clear()
            retriever.index(sub)
            part = retriever.search({q: queries[q] for q in groups.queries[scope] if q in queries}, top_k)
            allowed = set(sub.ids)
            run.update({q: {d: s for d, s in hits.items() if d in allowed} for q, hits in part.items()})
            for k, v in retriever.timings.items():
                timings[k] += v
            for k, v in (getattr(retriever, "stats", None) or {}).items():
                stats[k] += v
    finally:
        if progress:
            retriever.progress = True  # type: ignore[attr-defined]
    retriever.timings.clear()
    retriever.timings.update(timings, scoped_search_s=time.perf_counter() - t0)
    if hasattr(retriever, "stats"):
        retriever.stats = dict(stats)  # type: ignore[attr-defined]
    return run
