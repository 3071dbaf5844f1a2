"""A pooled dataset built by hand: qrels that judge non-relevant documents too (grade 0), one system
the pool was built from and one that retrieves mostly documents nobody judged.

Each of the 10 queries `q<i>` has one relevant document `r<i>` (grade 1) and nine judged
non-relevant ones `n<i>_0..8` (grade 0); `u<i>_*` are documents nobody judged.

- `bm25` (the pool's system): top 10 = n0, r, n1, …, n8: every document judged (Judged@10 = 1),
  the relevant one at rank 2, NDCG@10 = 1/log2(3); its condensed list is the same ranking.
- `newmodel`: even queries u, u, u, r, u, u, n0, u, u, u; odd queries u, n0, u, r, u, …: two of the
  top 10 judged (Judged@10 = 0.2), the relevant one at rank 4 (NDCG@10 = 1/log2(5)).  Condensed
  (unjudged removed): even queries r, n0, … (r first: NDCG@10' = 1), odd queries n0, r, …
  (r second: 1/log2(3)).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from gtr_eval.evaluation import evaluate
from gtr_eval.identity import Identity
from gtr_eval.results import ResultsStore

N_QUERIES = 10
DATASET = "pooled"

# The hand counts the tests check against.
BM25_NDCG10 = 1 / math.log2(3)
NEW_NDCG10 = 1 / math.log2(5)
NEW_NDCG10_CONDENSED = (1.0 + 1 / math.log2(3)) / 2
BM25_JUDGED10, NEW_JUDGED10 = 1.0, 0.2


def _qrels() -> dict[str, dict[str, int]]:
    return {f"q{i}": {f"r{i}": 1, **{f"n{i}_{j}": 0 for j in range(9)}} for i in range(N_QUERIES)}


def _rankings() -> dict[str, dict[str, list[str]]]:
    bm25, new = {}, {}
    for i in range(N_QUERIES):
        q, r, n, u = f"q{i}", f"r{i}", [f"n{i}_{j}" for j in range(9)], [f"u{i}_{j}" for j in range(12)]
        bm25[q] = [n[0], r, *n[1:], *u[:5]]
        if i % 2 == 0:
            new[q] = [u[0], u[1], u[2], r, u[3], u[4], n[0], u[5], u[6], u[7], n[1], u[8]]
        else:
            new[q] = [u[0], n[0], u[1], r, u[2], u[3], u[4], u[5], u[6], u[7], n[1], u[8]]
    return {"bm25": bm25, "newmodel": new}


def _as_run(ranking: dict[str, list[str]]) -> dict[str, dict[str, float]]:
    return {q: {d: float(len(docs) - rank) for rank, d in enumerate(docs)} for q, docs in ranking.items()}


def write_dataset(folder: Path) -> Path:
    """The BEIR folder: corpus, queries and qrels/test.tsv."""
    qrels, rankings = _qrels(), _rankings()
    docs = sorted({d for ranking in rankings.values() for ds in ranking.values() for d in ds})
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": d, "title": "", "text": f"document {d}"}) + "\n" for d in docs)
    )
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": f"query {q}"}) + "\n" for q in qrels)
    )
    lines = ["query-id\tcorpus-id\tscore"] + [
        f"{q}\t{d}\t{g}" for q, ds in qrels.items() for d, g in ds.items()
    ]
    (folder / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n")
    return folder


def make_pooled_results(root: Path) -> tuple[Path, Path]:
    """(results folder, dataset folder): both systems scored and stored as the pipeline stores them,
    each result recording the dataset folder in its manifest."""
    data = write_dataset(root / "data" / DATASET)
    results = root / "results"
    for system, ranking in _rankings().items():
        run = _as_run(ranking)
        manifest = {"dataset": {"name": DATASET, "path": str(data), "ignore_identical_ids": True}}
        identity = Identity({"system": system}, {"name": DATASET})
        ResultsStore(results).save(system, DATASET, "test", evaluate(_qrels(), run), run, manifest, identity)
    return results, data


def stored_without_judged(results: Path) -> None:
    """Strip the stored judged@k, as results written before gtr-eval stored it hold none."""
    for path in results.glob(f"*/{DATASET}.json"):
        record = json.loads(path.read_text())
        record["metrics"] = {m: v for m, v in record["metrics"].items() if not m.startswith("judged@")}
        record["per_query"] = {m: v for m, v in record["per_query"].items() if not m.startswith("judged@")}
        path.write_text(json.dumps(record))
