"""The results store: one JSON (metrics, per-query scores, identity, manifest) and one TREC run per
(system, dataset, split).

Layout: `<results-dir>/<system>/<dataset>.json` and beside it `<dataset>.run.trec.gz`; a dataset
name may hold one `/` (`cqadupstack/android` -> `<system>/cqadupstack/android.json`).  A split other
than the dataset's own (test; dev for msmarco) is another result, stored beside it as
`<dataset>@<split>.json`.  The run file is written first and the JSON last, both atomically, so an
existing JSON always has its run beside it, and an interrupted job resumes by skipping exactly the
pairs that have one.

A stored result is served again only for the inputs that made it: its JSON records its identity
(`identity.Identity`: the ranking fields of the system's spec and the dataset's fingerprint), and
`reuse` returns it only when the identity asked for now is the same; otherwise it refuses, in one
line naming what differs.  A result written before identities were recorded is never taken as
equal: it is refused until `--overwrite` recomputes it.
"""

from __future__ import annotations

import functools
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
from .data.registry import default_split
from .errors import Refused
from .evaluation import Evaluation, Run, write_trec_run
from .identity import Identity, describe, differences
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
    identity: Identity | None = None  # None: stored before gtr-eval recorded what made a result

    @property
    def run_path(self) -> Path:
        return self.path.with_name(self.path.name.removesuffix(".json") + RUN_SUFFIX)

    @property
    def default_split(self) -> bool:
        """Whether this is the split the dataset is evaluated on (test; dev for msmarco)."""
        return self.split == default_split(self.dataset)

    @property
    def label(self) -> str:
        """The dataset as tables name it: `scifact`, or `scifact [train]` for another split."""
        return self.dataset if self.default_split else f"{self.dataset} [{self.split}]"


def _stem(dataset: str, split: str | None) -> str:
    """The file name (without suffix) of a dataset's result for `split` (None: its default split)."""
    leaf = dataset.rsplit("/", 1)[-1]
    return leaf if split is None or split == default_split(dataset) else f"{leaf}@{split}"


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
    elif what in ("dataset", "split") and "@" in name:
        problem = "has an '@' (it separates a dataset from its split in file names)"
    if problem:
        raise ValueError(f"invalid {what} name {name!r}: {problem}")


def result_path(results_dir: Path | str, system: str, dataset: str, split: str | None = None) -> Path:
    """Where the result of `system` on `dataset` (`split`; None: the dataset's own) is stored."""
    validate_name(system, "system", max_slashes=0)
    validate_name(dataset, "dataset", max_slashes=1)
    if split is not None:
        validate_name(split, "split", max_slashes=0)
    return (Path(results_dir) / system / dataset).with_name(_stem(dataset, split) + ".json")


def run_path(results_dir: Path | str, system: str, dataset: str, split: str | None = None) -> Path:
    path = result_path(results_dir, system, dataset, split)
    return path.with_name(path.name.removesuffix(".json") + RUN_SUFFIX)


def is_done(results_dir: Path | str, system: str, dataset: str, split: str | None = None) -> bool:
    """True when the pair's JSON parses with metrics and its run file is there (whatever made it:
    `reuse` says whether it may be served)."""
    path = result_path(results_dir, system, dataset, split)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        isinstance(record, dict)
        and isinstance(record.get("metrics"), dict)
        and bool(record["metrics"])
        and run_path(results_dir, system, dataset, split).is_file()
    )


def reuse(stored: StoredResult, wanted: Identity) -> StoredResult:
    """`stored`, if it was made from exactly the inputs `wanted` names; else `Refused`, saying in one
    line what differs (the first differences) and how to replace it."""
    if stored.identity is not None and stored.identity.digest == wanted.digest:
        return stored
    if stored.identity is None:
        why = "it was stored by an older gtr-eval that did not record what made it (split, data, settings)"
    else:
        old, new = stored.identity, wanted
        changes = differences(
            {"system": old.system, "dataset": old.dataset}, {"system": new.system, "dataset": new.dataset}
        )
        why = describe(changes) or "what made it differs"
    raise Refused(f"{why}; --overwrite replaces it")


def save_result(
    results_dir: Path | str,
    system: str,
    dataset: str,
    split: str,
    evaluation: Evaluation,
    run: Run,
    manifest: dict[str, Any],
    identity: Identity | None = None,
) -> Path:
    """Write the run, then the JSON (both atomic); returns the JSON's path."""
    path = result_path(results_dir, system, dataset, split)
    run_file = run_path(results_dir, system, dataset, split)
    write_trec_run(run, run_file, tag=system.replace(" ", "_") or "run")
    record = {
        "system": system,
        "dataset": dataset,
        "split": split,
        **({"identity": identity.record()} if identity is not None else {}),
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
        **source_commit(),
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


@functools.cache
def source_commit() -> dict[str, Any]:
    """gtr-eval's own commit: the HEAD of the git checkout this package is imported from (an editable
    install, a clone on `PYTHONPATH`), with whether it had uncommitted changes; for an installed
    package (no checkout around it), `git_commit` None.  Never the repository the shell is in."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return {"git_commit": None}
    commit = _git(root, "rev-parse", "HEAD")
    if commit is None:
        return {"git_commit": None}
    status = _git(root, "status", "--porcelain", "--untracked-files=no", "--", "gtr_eval", "pyproject.toml")
    return {"git_commit": commit, "git_dirty": bool(status)}


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


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


def load_result(results_dir: Path | str, system: str, dataset: str, split: str | None = None) -> StoredResult:
    """The stored result of one pair; `DataError` naming the file when it is missing or corrupt."""
    path = result_path(results_dir, system, dataset, split)
    if not path.is_file():
        where = "" if split is None or split == default_split(dataset) else f" ({split} split)"
        raise DataError(path, None, f"no stored result for {system} on {dataset}{where}")
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
        identity=Identity.from_record(record.get("identity")),
    )


def recorded_files(manifest: dict[str, Any]) -> dict[str, str]:
    """The sha256 of each dataset file a result was made from, by its path in the dataset folder.
    (Results written before files were named by path say `corpus`, `queries`, `qrels/test`.)"""
    files = (manifest.get("dataset") or {}).get("files_sha256") or {}
    old = {"corpus": "corpus.jsonl", "queries": "queries.jsonl"}
    return {
        old.get(k, f"{k}.tsv" if k.startswith("qrels/") and "." not in k else k): v for k, v in files.items()
    }
