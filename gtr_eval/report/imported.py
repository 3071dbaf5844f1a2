"""External TREC runs (Pyserini, Anserini, any system) stored as systems of their own.

An imported run is scored by the same `evaluate` as ours (BEIR's conventions: identical ids dropped,
judged queries without results count zero, MRR@10 with trec_eval's tie order), and stored through
`save_result` with per-query scores, so it sits in tables, plots, reports and significance tests like
a run of this harness.  Its manifest says where it came from (file, sha256, qrels) instead of a
model and hardware, which the harness cannot know.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from ..data import registry
from ..data.loader import DataError, read_qrels, read_queries
from ..evaluation import Evaluation, Qrels, evaluate, read_qrels_any, read_trec_run
from ..io import sha256_file
from ..results import is_done, load_results, result_path, save_result
from .dataset_files import locate


@dataclass
class ImportedRun:
    path: Path  # the stored result JSON
    evaluation: Evaluation
    warnings: list[str] = field(default_factory=list)


def default_split(dataset: str) -> str:
    """The registry's evaluation split for a known dataset (dev for msmarco), else test."""
    base = dataset.split("/", 1)[0]
    return registry.get(base).split if base in registry.names() else "test"


def _judgments(
    dataset: str, split: str, qrels_file: Path | None, data_dir: Path | None
) -> tuple[Qrels, Path, dict[str, str]]:
    """Qrels from `qrels_file`, else from `<data_dir>/<dataset>` as a run of this harness reads them
    (judged queries missing from queries.jsonl dropped); with the sha256 of the files used."""
    if qrels_file is not None:
        return read_qrels_any(qrels_file), Path(qrels_file), {f"qrels/{split}": sha256_file(Path(qrels_file))}
    if data_dir is None:
        raise ValueError("give --qrels FILE, or --data-dir holding the dataset")
    folder = Path(data_dir).expanduser() / dataset
    qrels_path, queries_path = folder / "qrels" / f"{split}.tsv", folder / "queries.jsonl"
    if not qrels_path.is_file() or not queries_path.is_file():
        raise DataError(
            folder, None, f"no BEIR dataset here (queries.jsonl, qrels/{split}.tsv); give --qrels FILE"
        )
    qrels, qrels_sha = read_qrels(qrels_path)
    queries, queries_sha = read_queries(queries_path)
    judged = {q: docs for q, docs in qrels.items() if q in queries}
    return judged, qrels_path, {f"qrels/{split}": qrels_sha, "queries": queries_sha}


def import_trec_run(
    run_file: Path | str,
    results_dir: Path | str,
    system: str,
    dataset: str,
    qrels_file: Path | str | None = None,
    data_dir: Path | str | None = None,
    split: str | None = None,
    ignore_identical_ids: bool = True,
    overwrite: bool = False,
) -> ImportedRun:
    """Score `run_file` and store it as `system` on `dataset`; refuses to replace a stored pair
    unless `overwrite`."""
    run_file = Path(run_file)
    split = split or default_split(dataset)
    path = result_path(results_dir, system, dataset)  # validates the names before any work
    if not overwrite and is_done(results_dir, system, dataset):
        raise FileExistsError(f"{path} exists; pass overwrite to replace it")
    qrels, qrels_path, files_sha = _judgments(
        dataset, split, Path(qrels_file) if qrels_file else None, Path(data_dir) if data_dir else None
    )
    run = read_trec_run(run_file)
    t0 = time.perf_counter()
    evaluation = evaluate(qrels, run, ignore_identical_ids=ignore_identical_ids)
    manifest = {
        "retriever": "imported",
        "imported": {
            "run_file": str(run_file.resolve()),
            "run_sha256": sha256_file(run_file),
            "qrels_file": str(qrels_path.resolve()),
            "qrels_sha256": files_sha[f"qrels/{split}"],
        },
        "top_k": max(len(docs) for docs in run.values()),
        "hardware": {
            "note": "not recorded: the run was made outside gtr-eval (versions are those that scored it)"
        },
        "dataset": {
            "name": dataset,
            "path": str(qrels_path.parent.parent) if "queries" in files_sha else None,
            "split": split,
            "files_sha256": files_sha,
            "num_queries": len(qrels),
            "ignore_identical_ids": ignore_identical_ids,
        },
        "timings": {"evaluate_s": time.perf_counter() - t0},
    }
    stored = save_result(results_dir, system, dataset, split, evaluation, run, manifest)
    warnings = _coverage_warnings(evaluation)
    warnings += _qrels_warnings(results_dir, system, dataset, split, qrels, files_sha, data_dir)
    return ImportedRun(stored, evaluation, warnings)


def _coverage_warnings(evaluation: Evaluation) -> list[str]:
    out = []
    if evaluation.missing_queries:
        out.append(
            f"{len(evaluation.missing_queries)} of {evaluation.n_queries} judged queries have no results in the "
            "run; they score 0 (check that the query ids match the qrels)"
        )
    if evaluation.unjudged_queries:
        out.append(f"{evaluation.unjudged_queries} queries of the run have no judgments and were ignored")
    return out


def _qrels_warnings(
    results_dir, system: str, dataset: str, split: str, qrels: Qrels, files_sha: dict[str, str], data_dir
) -> list[str]:
    """Warn when other systems on this dataset were scored against other judgments."""
    out = []
    for other in load_results(results_dir):
        if other.dataset != dataset or other.system == system:
            continue
        recorded = ((other.manifest.get("dataset") or {}).get("files_sha256") or {}).get(f"qrels/{split}")
        if other.split != split:
            out.append(
                f"{other.system} on {dataset} was scored on split {other.split!r}, this run on {split!r}"
            )
        elif recorded and recorded != files_sha[f"qrels/{split}"]:
            files, _ = locate(other, Path(data_dir) if data_dir else None)
            if files is None or files.qrels != qrels:
                out.append(
                    f"{other.system} on {dataset} was scored with a different qrels file (sha256 {recorded[:12]}…);"
                    " comparisons between them may not be fair"
                )
    return out
