"""A small results store over the bundled demo set, written the way the pipeline writes it.

Two systems with deterministic made-up rankings, each described by a dense system's spec (made-up
weights, so nothing is loaded), scored and stored by the pair pipeline's own `store_pair`: the result
JSON has its identity (`Identity.of(spec, fingerprint)`) and the manifest reports and exports read
(the spec's fields, the dataset's path, fingerprint and file hashes, stats, timings).  So tests of
the report and the exporters run in a second without a retriever, and `fuse`/`rerank` take these
results as inputs like any run's.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from gtr_eval.data.units import resolve_dataset
from gtr_eval.paths import BUNDLED
from gtr_eval.pipeline.pairs import Made, store_pair
from gtr_eval.retrieval.base import Report
from gtr_eval.retrieval.dense import DenseSpec

DEMO = BUNDLED / "demo"


def _score(system: str, qid: str, doc: str) -> float:
    digest = hashlib.sha256(f"{system}|{qid}|{doc}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32


def demo_run(data, system: str, boost: float) -> dict[str, dict[str, float]]:
    """Every document for every query; relevant ones get `boost` added, so a larger boost ranks better."""
    run = {}
    for qid in data.queries:
        relevant = {d for d, g in data.qrels[qid].items() if g > 0}
        run[qid] = {
            d: round(_score(system, qid, d) + (boost if d in relevant else 0.0), 6) for d in data.corpus.ids
        }
    return run


def demo_spec(system: str) -> DenseSpec:
    """The spec a demo system's results record: a dense model named by made-up weights."""
    return DenseSpec(
        system=system,
        model=system,
        hub_id=f"example-org/{system}",
        revision="0123456789abcdef0123456789abcdef01234567",
        weights_sha256=hashlib.sha256(system.encode()).hexdigest(),
        query_weights_sha256=hashlib.sha256(system.encode()).hexdigest(),
        score="cos",
        max_length=128,
        top_k=1000,
        progress=False,
    )


def make_demo_results(results_dir: Path, systems: dict[str, float] | None = None) -> Path:
    (unit,) = resolve_dataset("demo")
    assert Path(unit.path) == DEMO
    data = unit.load()
    for system, boost in (systems or {"alpha": 0.6, "beta": 0.2}).items():
        made = Made(demo_spec(system), demo_run(data, system, boost), Report({"search_s": 0.25}))
        store_pair(Path(results_dir), unit, data, made, 0.5, echo=lambda _: None)
    return Path(results_dir)
