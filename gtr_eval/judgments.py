"""What a stored result's qrels say about its ranking: Judged@k and condensed-list scores.

Both are defined in `evaluation` (conventions (e) and (f)).  A result stored since `evaluate`
computes `judged@k` holds it per query, like every other metric, and is served from there.  No
stored result holds condensed-list scores (they are opt-in), nor a result built with fewer metrics
`judged@k`, so these are computed here from what the result was scored with: its run file, and its qrels, found as the report finds them (`dataset_files.locate`: the
folder its manifest records, else `<data-dir>/<dataset>`; a folder whose qrels differ from the
sha256 the result recorded is not used).  The run is prepared as `evaluate` prepares it (the
query's own id dropped when the scoring dropped it, ties ranked as trec_eval ranks them), and
scored over the queries the result was scored over, so the numbers are the ones `evaluate` would
have stored.  Nothing is written: a stored result stays as it was made.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .data.registry import judges_nonrelevant as registry_judges_nonrelevant
from .dataset_files import DatasetFiles, locate
from .evaluation import Qrels, evaluate, is_condensed, is_judged, judged_at_k, prepare_run, read_trec_run
from .results import StoredResult, recorded_files


def _files_key(result: StoredResult) -> tuple:
    """What `locate` decides by: the dataset, split, recorded folder and recorded file digests."""
    dataset = result.manifest.get("dataset") or {}
    recorded = recorded_files(result.manifest)
    digests = tuple(recorded.get(name) for name in (f"qrels/{result.split}.tsv", "queries.jsonl"))
    root = result.path.parents[1 + result.dataset.count("/")]
    where = (dataset.get("path"), dataset.get("path_from_results"), str(root))
    imported = (result.spec.get("imported") or {}).get("qrels_file")
    return (result.dataset, result.split, where, digests, imported)


def is_derived(metric: str) -> bool:
    """Whether `metric` can be computed here for a result that does not store it."""
    return is_judged(metric) or is_condensed(metric)


class Judgments:
    """Judged@k and condensed-list per-query scores of stored results, each computed at most once
    (per result and family), and the qrels behind them.  `data_dir` is where a dataset folder is
    looked for when the manifest's path does not lead to one."""

    def __init__(self, data_dir: Path | str | None = None):
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self._files: dict[tuple, tuple[DatasetFiles | None, str]] = {}
        self._scores: dict[tuple[Path, str], dict[str, dict[str, float]]] = {}

    def per_query(self, result: StoredResult, metric: str) -> dict[str, float] | None:
        """The result's per-query `metric`: stored, else (Judged@k, condensed lists) computed from
        its run file and qrels; None when neither is possible (`missing` says why)."""
        if metric in result.per_query:
            return result.per_query[metric]
        if not is_derived(metric):
            return None
        family = "condensed" if is_condensed(metric) else "judged"
        key = (result.path, family)
        if key not in self._scores:
            self._scores[key] = self._compute(result, family)
        return self._scores[key].get(metric)

    def mean(self, result: StoredResult, metric: str) -> float | None:
        """The result's `metric`: stored, else the mean of the computed per-query scores (the mean
        over judged queries, as every stored mean is)."""
        if metric in result.metrics:
            return float(result.metrics[metric])
        scores = self.per_query(result, metric)
        return float(np.mean(list(scores.values()))) if scores else None

    def files(self, result: StoredResult) -> DatasetFiles | None:
        return self._locate(result)[0]

    def missing(self, result: StoredResult) -> str:
        """Why the result's derived scores cannot be computed ('' when they can)."""
        files, why = self._locate(result)
        if files is None:
            return why
        return "" if result.run_path.is_file() else f"its run file {result.run_path} is missing"

    def judges_nonrelevant(self, result: StoredResult) -> bool:
        """Whether the result's qrels judge documents non-relevant too (grade 0 or below): the
        registry's word for a known dataset, else what its qrels hold (False when not found)."""
        known = registry_judges_nonrelevant(result.dataset)
        if known is not None:
            return known
        files = self.files(result)
        return files is not None and any(g <= 0 for docs in files.qrels.values() for g in docs.values())

    def _locate(self, result: StoredResult) -> tuple[DatasetFiles | None, str]:
        """`dataset_files.locate`, once per dataset as the results recorded it (the systems of a
        dataset share one reading of its qrels and queries)."""
        key = _files_key(result)
        if key not in self._files:
            self._files[key] = locate(result, self.data_dir)
        return self._files[key]

    def _compute(self, result: StoredResult, family: str) -> dict[str, dict[str, float]]:
        files = self.files(result)
        if files is None or not result.run_path.is_file():
            return {}
        universe = next(iter(result.per_query.values()), None) or files.qrels
        qrels: Qrels = {q: files.qrels[q] for q in universe if q in files.qrels}
        if not qrels:
            return {}
        drop = bool((result.manifest.get("dataset") or {}).get("ignore_identical_ids", True))
        run = read_trec_run(result.run_path)
        if family == "judged":
            return judged_at_k(qrels, prepare_run(qrels, run, drop))
        scored = evaluate(qrels, run, ignore_identical_ids=drop, condensed=True).per_query
        return {name: scores for name, scores in scored.items() if is_condensed(name)}
