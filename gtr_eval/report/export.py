"""Stored results in the formats other tools read: MTEB result files, TREC runs, ranx JSON, CSV.

- `mteb`: one MTEB task file per (system, dataset) plus model_meta.json (see `report.mteb`).
- `trec`: the run files as stored (`<system>/<dataset>.run.trec.gz`) and, where the dataset files
  are found, TREC qrels (`qrels/<dataset>.<split>.qrels`) for trec_eval.
- `ranx`: `<system>/<dataset>.run.json` ({query: {doc: score}}, what ranx's `Run.save` writes for
  `.json`) and `qrels/<dataset>.<split>.json` ({query: {doc: grade}}, `Qrels.save`).
- `csv`: `per_query.csv` (system, dataset, split, query_id, metric, value: the long form pandas
  pivots) and `metrics.csv` (the means).

The qrels written are the judgments a run of this harness scores against: the split's qrels less
judged queries missing from queries.jsonl, as BEIR's loader keeps them.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..dataset_files import locate
from ..evaluation import read_trec_run
from ..io import atomic_write_text
from ..results import StoredResult
from .mteb import write_mteb

FORMATS = ("mteb", "trec", "ranx", "csv")


@dataclass
class Export:
    written: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def export_results(
    results: Sequence[StoredResult], fmt: str, output: Path | str, data_dir: Path | str | None = None
) -> Export:
    """Write `results` to `output` in `fmt` (one of FORMATS)."""
    if not results:
        raise ValueError("no stored results to export")
    output = Path(output)
    data = Path(data_dir) if data_dir else None
    if fmt == "mteb":
        done = write_mteb(results, output)
        return Export(done.written, [f"skipped {s}" for s in done.skipped])
    if fmt == "trec":
        return _export_trec(results, output, data)
    if fmt == "ranx":
        return _export_ranx(results, output, data)
    if fmt == "csv":
        return _export_csv(results, output)
    raise ValueError(f"unknown export format {fmt!r}; choose from {FORMATS}")


def _leaf_path(root: Path, system: str, dataset: str, suffix: str) -> Path:
    return root / system / f"{dataset}{suffix}"


def _qrels_by_dataset(results: Sequence[StoredResult], data_dir: Path | None, export: Export):
    """(dataset, split) -> qrels, for every dataset whose files are found."""
    found = {}
    for r in results:
        key = (r.dataset, r.split)
        if key in found:
            continue
        files, why = locate(r, data_dir)
        if files is None:
            found[key] = None
            export.notes.append(f"no qrels for {r.dataset} ({why}); pass --data-dir to include them")
        else:
            found[key] = files.qrels
    return {k: v for k, v in found.items() if v is not None}


def _export_trec(results: Sequence[StoredResult], output: Path, data_dir: Path | None) -> Export:
    export = Export()
    for r in results:
        target = _leaf_path(output, r.system, r.dataset, ".run.trec.gz")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(r.run_path, target)
        export.written.append(target)
    for (dataset, split), qrels in _qrels_by_dataset(results, data_dir, export).items():
        path = output / "qrels" / f"{dataset}.{split}.qrels"
        lines = (f"{q} 0 {d} {g}\n" for q, docs in qrels.items() for d, g in docs.items())
        atomic_write_text(path, "".join(lines))
        export.written.append(path)
    return export


def _export_ranx(results: Sequence[StoredResult], output: Path, data_dir: Path | None) -> Export:
    export = Export()
    for r in results:
        run = read_trec_run(r.run_path)
        path = _leaf_path(output, r.system, r.dataset, ".run.json")
        atomic_write_text(path, json.dumps(run, indent=1))
        export.written.append(path)
    for (dataset, split), qrels in _qrels_by_dataset(results, data_dir, export).items():
        path = output / "qrels" / f"{dataset}.{split}.json"
        atomic_write_text(path, json.dumps(qrels, indent=1))
        export.written.append(path)
    return export


def _export_csv(results: Sequence[StoredResult], output: Path) -> Export:
    per_query, means = io.StringIO(), io.StringIO()
    pq = csv.writer(per_query, lineterminator="\n")
    mw = csv.writer(means, lineterminator="\n")
    pq.writerow(["system", "dataset", "split", "query_id", "metric", "value"])
    mw.writerow(["system", "dataset", "split", "metric", "value"])
    export = Export()
    for r in results:
        for metric, value in r.metrics.items():
            mw.writerow([r.system, r.dataset, r.split, metric, repr(float(value))])
        for metric, scores in r.per_query.items():
            for qid, value in scores.items():
                pq.writerow([r.system, r.dataset, r.split, qid, metric, repr(float(value))])
        if not r.per_query:
            export.notes.append(f"{r.system}/{r.dataset}: no per-query scores stored")
    for name, buf in (("per_query.csv", per_query), ("metrics.csv", means)):
        atomic_write_text(output / name, buf.getvalue())
        export.written.append(output / name)
    return export
