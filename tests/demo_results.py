"""A small results store over the bundled demo set, written the way the runner writes it.

Two systems with deterministic made-up rankings, scored by `evaluate` and stored by `save_result`
with the manifest fields reports and exports read (dataset path and file hashes), so tests of the
report and the exporters run in a second without a retriever.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from gtr_eval.data.loader import load_beir_folder
from gtr_eval.evaluation import evaluate
from gtr_eval.paths import BUNDLED
from gtr_eval.results import save_result

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


def make_demo_results(results_dir: Path, systems: dict[str, float] | None = None) -> Path:
    data = load_beir_folder(DEMO, "test", name="demo")
    for system, boost in (systems or {"alpha": 0.6, "beta": 0.2}).items():
        run = demo_run(data, system, boost)
        manifest = {
            "retriever": "dense",
            "model": system,
            "hub_id": f"example-org/{system}",
            "revision": "0123456789abcdef0123456789abcdef01234567",
            "weights_sha256": hashlib.sha256(system.encode()).hexdigest(),
            "score": "cos",
            "max_length": 128,
            "top_k": 1000,
            "dataset": {
                "name": "demo",
                "path": str(DEMO),
                "split": "test",
                "checksum": data.checksum,
                "files_sha256": data.checksums,
                "num_docs": len(data.corpus),
                "num_queries": len(data.queries),
                "ignore_identical_ids": True,
            },
            "timings": {"retrieve_total_s": 0.5, "evaluate_s": 0.25},
        }
        save_result(results_dir, system, "demo", "test", evaluate(data.qrels, run), run, manifest)
    return Path(results_dir)
