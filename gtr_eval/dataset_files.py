"""The dataset files behind a stored result: its judged queries, their texts and a few documents.

Results do not carry qrels or texts, so reports and exports that show them find the BEIR folder the
run used: the path its manifest recorded, else `<data-dir>/<dataset>`, else (for an imported run) the
qrels file it was scored with.  A folder whose qrels or queries file differs from the one the run was
scored with (sha256 in the manifest) is not used: its judgments would not explain the scores.

Only small files are read whole; documents are picked out of corpus.jsonl in one streaming pass
that parses just the lines whose id is wanted, so an MS MARCO-sized corpus costs a scan, not memory.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .data.jsonl import json_problem
from .data.loader import DataError, read_qrels, read_queries
from .evaluation import Qrels, read_qrels_any
from .io import sha256_file
from .results import StoredResult, recorded_files

_ID_PREFIX = re.compile(rb'^\{\s*"_id"\s*:\s*"((?:[^"\\]|\\.)*)"')


@dataclass
class DatasetFiles:
    """Where a result's judgments came from, and what they are."""

    dataset: str
    split: str
    qrels: Qrels
    queries: dict[str, str]  # judged queries only; empty when only a qrels file is known
    folder: Path | None  # the BEIR folder, when there is one (documents come from it)
    source: str  # a line for the report: which files were used


def _candidates(result: StoredResult, data_dir: Path | None) -> list[Path]:
    """Where the result's dataset may be: the folder its manifest records (absolute; a relative one,
    as older results wrote it, from here), the same folder relative to the results folder, then
    `<data-dir>/<dataset>`."""
    dataset = result.manifest.get("dataset") or {}
    found = []
    if recorded := dataset.get("path"):
        found.append(Path(recorded).expanduser())
    root = result.path.parents[1 + result.dataset.count("/")]  # <root>/<system>/[group/]<dataset>.json
    if relative := dataset.get("path_from_results"):
        found.append(root / relative)
    if data_dir is not None:
        found.append(Path(data_dir).expanduser() / result.dataset)
    return list(dict.fromkeys(found))


def locate(result: StoredResult, data_dir: Path | None = None) -> tuple[DatasetFiles | None, str]:
    """The files behind `result`, or None and why not."""
    split = result.split
    expected = recorded_files(result.manifest)
    tried = []
    for folder in _candidates(result, data_dir):
        qrels_path, queries_path = folder / "qrels" / f"{split}.tsv", folder / "queries.jsonl"
        if not (qrels_path.is_file() and queries_path.is_file()):
            tried.append(f"{folder} (no queries.jsonl or qrels/{split}.tsv)")
            continue
        changed = [
            name
            for name, path in ((f"qrels/{split}.tsv", qrels_path), ("queries.jsonl", queries_path))
            if expected.get(name) and sha256_file(path) != expected[name]
        ]
        if changed:
            tried.append(f"{folder} ({', '.join(changed)} differ from the files the run was scored with)")
            continue
        qrels = read_qrels(qrels_path)[0]
        queries, _ = read_queries(queries_path)
        judged = {q: docs for q, docs in qrels.items() if q in queries}
        return DatasetFiles(
            result.dataset, split, judged, {q: queries[q] for q in judged}, folder, str(folder)
        ), ""
    imported = (result.spec.get("imported") or {}).get("qrels_file")
    if imported and Path(imported).is_file():
        return DatasetFiles(result.dataset, split, read_qrels_any(imported), {}, None, str(imported)), ""
    return None, "; ".join(tried) or "no dataset folder recorded and no --data-dir given"


def read_documents(folder: Path, doc_ids: Iterable[str]) -> dict[str, tuple[str, str]]:
    """(title, text) of the wanted documents, in one pass over corpus.jsonl."""
    wanted = set(doc_ids)
    found: dict[str, tuple[str, str]] = {}
    path = Path(folder) / "corpus.jsonl"
    if not wanted:
        return found
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            m = _ID_PREFIX.match(raw)
            if (
                m is not None
                and b"\\" not in m.group(1)
                and m.group(1).decode("utf-8", "replace") not in wanted
            ):
                continue
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw)
            except ValueError as e:
                raise DataError(path, lineno, json_problem(e)) from None
            doc_id = str(rec.get("_id", "")) if isinstance(rec, dict) else ""
            if doc_id in wanted:
                found[doc_id] = (rec.get("title") or "", rec.get("text") or "")
                if len(found) == len(wanted):
                    break
    return found
