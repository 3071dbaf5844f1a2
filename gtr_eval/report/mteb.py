"""MTEB result files: our results written as MTEB writes them, and a folder of them read back.

The layout is mteb 2.x's `ResultCache`: `<root>/<org>__<model>/<revision>/<Task>.json`, with a
`model_meta.json` beside the task files (`no_revision_available` when the revision is unknown).  A
task file holds `scores[split]`, a list with one entry per HF subset; the BEIR tasks have one subset,
`default`, whose entry carries `main_score` (NDCG@10) and keys such as `ndcg_at_10`, `recall_at_100`,
`map_at_10`, `precision_at_10`, `mrr_at_10`, all fractions.  mteb's reader (`TaskResult.from_disk`)
needs `dataset_revision`, `task_name`, `mteb_version` and `evaluation_time` to be present (the last two
may be null) and `hf_subset`, `languages` and `main_score` in every entry.

Files written by mteb before 1.11 keep the metrics directly under the split (`{"test": {...}}`); the
reader accepts both.  CQADupStack is 12 tasks, one per subforum; as a reference column it becomes one
row, the mean of the 12 (BEIR's convention), or MTEB's aggregate `CQADupstackRetrieval` file when the
folder has only that.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.jsonl import json_problem
from ..data.loader import DataError
from ..data.registry import CQADUPSTACK_SUBSETS
from ..io import atomic_write_json
from ..results import StoredResult

# Our dataset name -> MTEB task name (BEIR's public datasets; BEIR v2 data, so Touche2020, not v3).
TASKS: dict[str, str] = {
    "msmarco": "MSMARCO",
    "trec-covid": "TRECCOVID",
    "nfcorpus": "NFCorpus",
    "nq": "NQ",
    "hotpotqa": "HotpotQA",
    "fiqa": "FiQA2018",
    "arguana": "ArguAna",
    "webis-touche2020": "Touche2020",
    "quora": "QuoraRetrieval",
    "dbpedia-entity": "DBPedia",
    "scidocs": "SCIDOCS",
    "fever": "FEVER",
    "climate-fever": "ClimateFEVER",
    "scifact": "SciFact",
    **{f"cqadupstack/{f}": f"CQADupstack{f.capitalize()}Retrieval" for f in CQADUPSTACK_SUBSETS},
}
CQADUPSTACK_AGGREGATE = "CQADupstackRetrieval"
DATASETS: dict[str, str] = {task: dataset for dataset, task in TASKS.items()}
SPLITS = {"msmarco": "dev"}  # every other BEIR task is scored on test
NO_REVISION = "no_revision_available"
MAIN_METRIC = "ndcg@10"
LANGUAGES = ["eng-Latn"]

_OUR_FAMILIES = {"ndcg": "ndcg", "recall": "recall", "map": "map", "p": "precision", "mrr": "mrr"}
_MTEB_FAMILIES = {v: k for k, v in _OUR_FAMILIES.items()}
_MTEB_KEY = re.compile(r"(ndcg|recall|map|precision|mrr)_at_(\d+)")
_SHA = re.compile(r"[0-9a-f]{40}")


def mteb_key(metric: str) -> str | None:
    """`ndcg@10` -> `ndcg_at_10`, `p@5` -> `precision_at_5`; None for a metric MTEB has no key for
    (our uncut `mrr`)."""
    family, sep, k = metric.partition("@")
    if not sep or family not in _OUR_FAMILIES or not k.isdigit():
        return None
    return f"{_OUR_FAMILIES[family]}_at_{k}"


def our_metric(key: str) -> str | None:
    """The inverse of `mteb_key`; None for MTEB keys we do not compute (nauc_*, cv_recall_*, ...)."""
    m = _MTEB_KEY.fullmatch(key)
    return f"{_MTEB_FAMILIES[m.group(1)]}@{m.group(2)}" if m else None


def split_of(dataset: str) -> str:
    return SPLITS.get(dataset, "test")


# --- writing -----------------------------------------------------------------------------------


def model_name(result: StoredResult) -> str:
    """The name MTEB would file the model under: the hub id when the run recorded one."""
    spec = result.spec
    return str(spec.get("hub_id") or spec.get("model") or result.system)


def revision_folder(result: StoredResult) -> str:
    """A commit sha as recorded, else `no_revision_available` (MTEB's name for an unknown revision)."""
    revision = str(result.spec.get("revision") or "")
    return revision if _SHA.fullmatch(revision) else NO_REVISION


def model_folder(root: Path | str, name: str, revision: str) -> Path:
    """`<root>/<org>__<model>/<revision>`, as mteb's ResultCache names it."""
    return Path(root) / name.replace("/", "__").replace(" ", "_") / revision


def task_result(result: StoredResult) -> dict[str, Any]:
    """One MTEB task file for one stored (system, dataset) result."""
    task = TASKS[result.dataset]
    entry: dict[str, Any] = {"hf_subset": "default", "languages": LANGUAGES}
    entry["main_score"] = result.metrics[MAIN_METRIC]
    for metric, value in result.metrics.items():
        key = mteb_key(metric)
        if key is not None:
            entry[key] = value
    timings = result.manifest.get("timings") or {}
    seconds = [
        timings[k] for k in ("retrieve_total_s", "evaluate_s") if isinstance(timings.get(k), int | float)
    ]
    dataset = result.manifest.get("dataset") or {}
    checksum = dataset.get("checksum")
    return {
        # Not a hub revision: the data came from BEIR's files, named by their checksum.
        "dataset_revision": f"beir-files-sha256:{checksum}" if checksum else "unknown",
        "task_name": task,
        "mteb_version": None,  # written by gtr-eval, not by mteb
        "scores": {result.split: [entry]},
        "evaluation_time": float(sum(seconds)) if seconds else None,
        "kg_co2_emissions": None,
    }


def model_meta(name: str, revision: str, results: Sequence[StoredResult]) -> dict[str, Any]:
    """The fields of MTEB's `model_meta.json` that a stored result can state truthfully."""
    spec = results[0].spec
    meta: dict[str, Any] = {"name": name, "revision": revision}
    if spec.get("max_length"):
        meta["max_tokens"] = spec["max_length"]
    similarity = {"cos": "cosine", "dot": "dot"}.get(str(spec.get("score")))
    if similarity:
        meta["similarity_fn_name"] = similarity
    if spec.get("retriever") == "dense":
        meta["framework"] = ["Sentence Transformers"]
    return meta


@dataclass
class MtebExport:
    written: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "system/dataset: why"


def write_mteb(results: Iterable[StoredResult], output: Path | str) -> MtebExport:
    """Every result whose dataset has an MTEB task, as `<output>/<model>/<revision>/<Task>.json`."""
    out = MtebExport()
    folders: dict[Path, list[StoredResult]] = {}
    for r in results:
        if r.dataset not in TASKS:
            out.skipped.append(f"{r.system}/{r.dataset}: MTEB has no task for this dataset")
            continue
        if MAIN_METRIC not in r.metrics:
            out.skipped.append(f"{r.system}/{r.dataset}: no {MAIN_METRIC} stored")
            continue
        folders.setdefault(model_folder(output, model_name(r), revision_folder(r)), []).append(r)
    for folder, group in sorted(folders.items()):
        systems = sorted({r.system for r in group})
        if len(systems) > 1:
            raise ValueError(
                f"systems {systems} would share the MTEB folder {folder}; export them separately"
            )
        for r in group:
            path = folder / f"{TASKS[r.dataset]}.json"
            atomic_write_json(path, task_result(r))
            out.written.append(path)
        meta_path = folder / "model_meta.json"
        atomic_write_json(meta_path, model_meta(model_name(group[0]), folder.name, group))
        out.written.append(meta_path)
    return out


# --- reading -----------------------------------------------------------------------------------


@dataclass
class MtebModel:
    """The scores of one model folder, keyed by our dataset names."""

    name: str
    revision: str
    path: Path
    scores: dict[str, dict[str, float]]  # dataset -> metric -> value
    notes: list[str] = field(default_factory=list)


def find_model_folder(path: Path | str) -> Path:
    """The revision folder `path` stands for: itself when it holds task files, else its only
    model/revision below (two levels at most); several candidates are an error naming them."""
    path = Path(path)
    if not path.is_dir():
        raise DataError(path, None, "not a folder of MTEB result files")
    for _ in range(3):
        if _task_files(path):
            return path
        subdirs = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
        candidates = [d for d in subdirs if _task_files(d) or any(s.is_dir() for s in d.iterdir())]
        if len(candidates) != 1:
            listing = ", ".join(d.name for d in candidates) or "none"
            raise DataError(path, None, f"expected one MTEB model or revision folder here, found: {listing}")
        path = candidates[0]
    raise DataError(path, None, "no MTEB task files (<Task>.json) found")


def _task_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.json") if p.name != "model_meta.json")


def read_model_folder(path: Path | str) -> MtebModel:
    """Read a folder of MTEB task files (see `find_model_folder`) into our datasets and metrics."""
    folder = find_model_folder(path)
    meta_path = folder / "model_meta.json"
    meta = _read_json(meta_path) if meta_path.is_file() else {}
    name = str(meta.get("name") or folder.parent.name.replace("__", "/"))
    revision = str(meta.get("revision") or folder.name)
    scores: dict[str, dict[str, float]] = {}
    aggregate: dict[str, float] | None = None
    ignored = []
    for file in _task_files(folder):
        data = _read_json(file)
        task = str(data.get("task_name") or data.get("mteb_dataset_name") or file.stem)
        if task == CQADUPSTACK_AGGREGATE:
            aggregate = _split_scores(data, "test", file)
        elif task in DATASETS:
            dataset = DATASETS[task]
            scores[dataset] = _split_scores(data, split_of(dataset), file)
        else:
            ignored.append(task)
    model = MtebModel(name, revision, folder, scores)
    if ignored:
        model.notes.append(f"not BEIR tasks, ignored: {', '.join(sorted(ignored))}")
    _collapse_cqadupstack(model, aggregate)
    return model


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(path, None, f"cannot read ({e})") from None
    except json.JSONDecodeError as e:
        raise DataError(path, e.lineno, json_problem(e)) from None
    if not isinstance(data, dict):
        raise DataError(path, None, "expected a JSON object")
    return data


def _split_scores(data: Mapping[str, Any], split: str, path: Path) -> dict[str, float]:
    """Our metrics from the split's `default` subset (or its only subset); pre-1.11 files too."""
    if "scores" in data:
        entries = (data.get("scores") or {}).get(split)
        if not isinstance(entries, list) or not entries:
            raise DataError(path, None, f"no scores for split {split!r}")
        entry = next((e for e in entries if isinstance(e, dict) and e.get("hf_subset") == "default"), None)
        if entry is None:
            if len(entries) != 1 or not isinstance(entries[0], dict):
                subsets = [e.get("hf_subset") for e in entries if isinstance(e, dict)]
                raise DataError(path, None, f"split {split!r} has no 'default' subset; subsets: {subsets}")
            entry = entries[0]
    else:
        entry = data.get(split)
        if not isinstance(entry, dict):
            raise DataError(path, None, f"no scores for split {split!r}")
    out = {}
    for key, value in entry.items():
        metric = our_metric(key)
        if metric is not None and isinstance(value, int | float) and math.isfinite(value):
            out[metric] = float(value)
    if not out:
        raise DataError(path, None, f"split {split!r} holds no ndcg/recall/map/precision/mrr scores")
    return out


def _collapse_cqadupstack(model: MtebModel, aggregate: dict[str, float] | None) -> None:
    """Replace the subforum entries by one `cqadupstack` row, as our tables show it."""
    subs = {d: model.scores.pop(d) for d in [d for d in model.scores if d.startswith("cqadupstack/")]}
    if len(subs) == len(CQADUPSTACK_SUBSETS):
        common = set.intersection(*(set(s) for s in subs.values()))
        model.scores["cqadupstack"] = {
            m: sum(s[m] for s in subs.values()) / len(subs) for m in sorted(common)
        }
        model.notes.append("cqadupstack: mean of the 12 subforum tasks (BEIR's convention)")
    elif aggregate is not None:
        model.scores["cqadupstack"] = aggregate
        model.notes.append(f"cqadupstack: MTEB's aggregate task {CQADUPSTACK_AGGREGATE}")
    elif subs:
        model.notes.append(
            f"cqadupstack: only {len(subs)} of {len(CQADUPSTACK_SUBSETS)} subforum tasks, so no cqadupstack row"
        )


def reference_rows(model: MtebModel, source: str) -> list[dict[str, Any]]:
    """The model's scores as rows of the published-scores table (source, system, dataset, metric, value, note)."""
    note = "; ".join(model.notes)
    return [
        {
            "source": source,
            "system": model.name,
            "dataset": dataset,
            "metric": metric,
            "value": value,
            "note": f"split={split_of(dataset)}" + (f"; {note}" if note and dataset == "cqadupstack" else ""),
        }
        for dataset, metrics in sorted(model.scores.items())
        for metric, value in sorted(metrics.items())
    ]
