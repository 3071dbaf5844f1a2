"""Scoped search: each query searches only its own scope's documents (PeerQA: its own paper).

Works with any `Retriever`; see `gtr_eval.data.peerqa` for why PeerQA is scored this way.
"""

from __future__ import annotations

import time

from ..data.loader import Corpus
from ..data.peerqa import Groups
from .base import Report, Retriever, Run, Searched


def scoped_search(
    retriever: Retriever, corpus: Corpus, queries: dict[str, str], groups: Groups, top_k: int
) -> Searched:
    """Per scope: index its documents once, search its queries only; one run for all queries.

    A dense retriever encodes each document exactly once (each document is in one scope).  The
    report adds up every scope's (timings and counts summed).
    """
    scoped = {q for qs in groups.queries.values() for q in qs}
    if unscoped := [q for q in queries if q not in scoped]:
        raise ValueError(f"{len(unscoped)} queries belong to no scope, e.g. {unscoped[0]!r}")
    progress = retriever.progress
    scopes = [s for s, qs in groups.queries.items() if any(q in queries for q in qs)]
    from ..progress import bar

    papers = bar(len(scopes), f"{retriever.name}: per-paper search", "paper", enabled=progress)
    report = Report()
    run: Run = {}
    t0 = time.perf_counter()
    try:
        retriever.progress = False  # one bar, not two per paper
        for scope in scopes:
            sub = corpus.subset(groups.docs[scope])
            report += retriever.index(sub)
            part = retriever.search({q: queries[q] for q in groups.queries[scope] if q in queries}, top_k)
            report += part.report
            allowed = set(sub.ids)
            run.update({q: {d: s for d, s in hits.items() if d in allowed} for q, hits in part.run.items()})
            papers.update(1)
    finally:
        retriever.progress = progress
        papers.close()
    return Searched(run, report + Report({"scoped_search_s": time.perf_counter() - t0}))
