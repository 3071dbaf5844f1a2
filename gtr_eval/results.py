"""The results store: one JSON (metrics, per-query scores, manifest) and one TREC run per pair.

Layout: `<results-dir>/<system>/<dataset>.json` and beside it `<dataset>.run.trec.gz`; a dataset
name may hold one `/` (`cqadupstack/android` -> `<system>/cqadupstack/android.json`).  The run file
is written first and the JSON last, both atomically, so an existing JSON always has its run beside
it: the JSON's existence is what marks a (system, dataset) pair done, and an interrupted job resumes
by skipping exactly the pairs that have one.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from .data.loader import DataError
from .evaluation import Evaluation, Run, write_trec_run
from .io import atomic_write_json

RUN_SUFFIX = ".run.trec.gz"
_REQUIRED_KEYS = ("system", "dataset", "split", "metrics")
_VERSIONED_PACKAGES = {
    "gtr_eval": "gtr-eval",
    "torch": "torch",
    "sentence_transformers": "sentence-transformers",
    "transformers": "transformers",
    "bm25s": "bm25s",
    "pytrec_eval": "pytrec-eval-terrier",
    "beir": "beir",
    "numpy": "numpy",
}


@dataclass
class StoredResult:
    system: str
    dataset: str
    split: str
    metrics: dict[str, float]
    per_query: dict[str, dict[str, float]]
    manifest: dict[str, Any]
    path: Path

    @property
    def run_path(self) -> Path:
        return self.path.with_name(_leaf(self.dataset) + RUN_SUFFIX)


def _leaf(dataset: str) -> str:
    return dataset.rsplit("/", 1)[-1]


def validate_name(name: str, what: str, max_slashes: int) -> None:
    """Reject names that could escape the results folder or collide with another pair's files.

    A system name may not hold `/` at all (otherwise system `a`, dataset `b/c` and system `a/b`,
    dataset `c` would share a file); callers slug model ids such as `org/model` first.
    """
    problem = None
    if not name or "\\" in name or "\0" in name or name.startswith("/"):
        problem = "empty, or has a backslash, NUL or leading '/'"
    elif name.count("/") > max_slashes:
        problem = f"at most {max_slashes} '/' allowed"
    elif any(part in ("", ".", "..") or part.startswith(".") for part in name.split("/")):
        problem = "has an empty, '.', '..' or hidden (leading '.') path component"
    elif name.endswith((".json", RUN_SUFFIX, ".tmp")):
        problem = "ends with a store file suffix"
    if problem:
        raise ValueError(f"invalid {what} name {name!r}: {problem}")


def result_path(results_dir: Path | str, system: str, dataset: str) -> Path:
    validate_name(system, "system", max_slashes=0)
    validate_name(dataset, "dataset", max_slashes=1)
    return Path(results_dir) / system / f"{dataset}.json"


def is_done(results_dir: Path | str, system: str, dataset: str) -> bool:
    """True when the pair's JSON parses with metrics and its run file is there."""
    path = result_path(results_dir, system, dataset)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        isinstance(record, dict)
        and isinstance(record.get("metrics"), dict)
        and bool(record["metrics"])
        and path.with_name(_leaf(dataset) + RUN_SUFFIX).is_file()
    )


def save_result(
    results_dir: Path | str,
    system: str,
    dataset: str,
    split: str,
    evaluation: Evaluation,
    run: Run,
    manifest: dict[str, Any],
) -> Path:
    """Write the run, then the JSON (both atomic); returns the JSON's path."""
    path = result_path(results_dir, system, dataset)
    run_file = path.with_name(_leaf(dataset) + RUN_SUFFIX)
    write_trec_run(run, run_file, tag=system.replace(" ", "_") or "run")
    record = {
        "system": system,
        "dataset": dataset,
        "split": split,
        "metrics": evaluation.metrics,
        "scoring": {
            "k_values": list(evaluation.k_values),
            "ignore_identical_ids": evaluation.ignore_identical_ids,
            "judged_queries": evaluation.n_queries,
            "judged_queries_without_results": len(evaluation.missing_queries),
            "unjudged_queries_ignored": evaluation.unjudged_queries,
        },
        "per_query": evaluation.per_query,
        "manifest": complete_manifest(manifest),
        "run_file": run_file.name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    atomic_write_json(path, record)
    return path


def complete_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    """The caller's manifest plus environment facts; keys the caller already set are kept."""
    auto = {
        "versions": package_versions(),
        "git_commit": git_commit(),
        "hardware": hardware(),
        "python": platform.python_version(),
    }
    return {**auto, **manifest}


def package_versions() -> dict[str, str]:
    """Installed versions read from package metadata: no import, so no multi-second torch import."""
    versions = {}
    for module, dist in _VERSIONED_PACKAGES.items():
        try:
            versions[module] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return versions


def git_commit(cwd: Path | str | None = None) -> str | None:
    """HEAD of the git checkout at `cwd` (default: the working dir), or None outside one."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd or os.getcwd(),
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def hardware() -> dict[str, Any]:
    """Platform and CPUs; the CUDA device only if torch is already imported (a GPU run imports it)."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            if torch.cuda.is_available():
                info["cuda_device"] = torch.cuda.get_device_name(torch.cuda.current_device())
        except Exception:  # noqa: BLE001 - a broken driver must not lose a finished result
            pass
    return info


def load_result(results_dir: Path | str, system: str, dataset: str) -> StoredResult:
    """The stored result of one pair; `DataError` naming the file when it is missing or corrupt."""
    path = result_path(results_dir, system, dataset)
    if not path.is_file():
        raise DataError(path, None, f"no stored result for {system} on {dataset}")
    return _read_result(path)


def load_results(results_dir: Path | str) -> list[StoredResult]:
    """Every stored result under `results_dir`, sorted by (system, dataset).

    Only `<system>/<dataset>.json` and `<system>/<group>/<dataset>.json` are read; temporary and
    hidden files are skipped.  A corrupt or incomplete JSON raises `DataError` naming the file.
    """
    root = Path(results_dir)
    if not root.is_dir():
        raise DataError(root, None, "results folder does not exist")
    found = []
    for pattern in ("*/*.json", "*/*/*.json"):
        for path in root.glob(pattern):
            if any(part.startswith(".") for part in path.relative_to(root).parts):
                continue
            found.append(_read_result(path))
    return sorted(found, key=lambda r: (r.system, r.dataset))


def _read_result(path: Path) -> StoredResult:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(path, None, f"cannot read result ({e})") from None
    except json.JSONDecodeError as e:
        raise DataError(
            path, e.lineno, f"corrupt result JSON ({e.msg}); delete it to recompute the pair"
        ) from None
    if not isinstance(record, dict) or any(k not in record for k in _REQUIRED_KEYS):
        raise DataError(path, None, f"not a result record: needs keys {', '.join(_REQUIRED_KEYS)}")
    return StoredResult(
        system=record["system"],
        dataset=record["dataset"],
        split=record["split"],
        metrics=record["metrics"],
        per_query=record.get("per_query") or {},
        manifest=record.get("manifest") or {},
        path=path,
    )
