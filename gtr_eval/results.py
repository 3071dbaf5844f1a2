"""The results store: one JSON (metrics, per-query scores, identity, manifest) and one TREC run per
(system, dataset, split), owned by one object, `ResultsStore`: nothing else knows the file names,
the locks or the temporary files.

Layout: `<results-dir>/<system>/<dataset>.json` and beside it the run,
`<dataset>.<sha256 prefix>.run.trec.gz`; a dataset name may hold one `/` (`cqadupstack/android` ->
`<system>/cqadupstack/android.json`).  A split other than the dataset's own (test; dev for msmarco)
is another result, stored beside it as `<dataset>@<split>.json`.

A result is committed by one rename, the JSON's.  The run is written first under a name of its own
(its content's sha256), and the JSON records that name and the full sha256; so a job killed at any
point leaves either the old result whole (its JSON and the run it names) or the new one whole, and
the orphan run of a killed write is a leftover the store removes.  The run a JSON names is removed
only after another JSON has replaced it.  A JSON whose run file is missing or is not what was written
is not served: `done` is false (the pair is computed again) and `load` refuses in one line naming
the file.  The check reads the run once per process and file version (a stat key with the change
time, which a user cannot set back).

A stored result is served again only for the inputs that made it: its JSON records its identity
(`identity.Identity`: the ranking fields of the system's spec and the dataset's fingerprint), and
`reuse` returns it only when the identity asked for now is the same; otherwise it refuses, in one
line naming what differs.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from fnmatch import fnmatchcase
from importlib import metadata
from pathlib import Path
from typing import Any

from filelock import FileLock

from .data.loader import DataError
from .data.registry import default_split
from .errors import Refused
from .evaluation import Evaluation, Run, write_trec_run
from .identity import Identity, differences, made_otherwise
from .io import atomic_write_json, sha256_file, temp_files

RUN_SUFFIX = ".run.trec.gz"
_RUN_NAME = re.compile(r"(?P<stem>.+)\.(?P<digest>[0-9a-f]{16})" + re.escape(RUN_SUFFIX))
_REQUIRED_KEYS = ("system", "dataset", "split", "identity", "metrics", "manifest", "run")
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


@dataclass(frozen=True)
class StoredResult:
    system: str
    dataset: str
    split: str
    metrics: dict[str, float]
    per_query: dict[str, dict[str, float]]
    manifest: dict[str, Any]  # `spec`: what made it; `dataset`, `stats`, `timings`, environment facts
    path: Path
    identity: Identity | None = None  # None only for results built in memory (tables of given scores)
    run_file: str = ""  # the run's file name beside `path`
    run_sha256: str = ""

    @property
    def run_path(self) -> Path:
        return self.path.with_name(self.run_file)

    @property
    def spec(self) -> dict[str, Any]:
        """The spec of the system that made it, as recorded (settings included)."""
        return self.manifest.get("spec") or {}

    @property
    def default_split(self) -> bool:
        """Whether this is the split the dataset is evaluated on (test; dev for msmarco)."""
        return self.split == default_split(self.dataset)

    @property
    def label(self) -> str:
        """The dataset as tables name it: `scifact`, or `scifact [train]` for another split."""
        return self.dataset if self.default_split else f"{self.dataset} [{self.split}]"


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


def reuse(stored: StoredResult, wanted: Identity, rename: str = "--name NAME") -> StoredResult:
    """`stored`, if it was made from exactly the inputs `wanted` names; else `Refused`, one line
    saying what it was made with (the first differences), then how to keep both (`rename`: another
    name) or replace it: `bm25 on scifact was made with other qrels (qrels/test.tsv differs); use
    --name NAME to keep both, or --overwrite to replace it`."""
    if stored.identity is not None and stored.identity.digest == wanted.digest:
        return stored
    subject = f"{stored.system} on {stored.label}"
    hint = f"use {rename} to keep both, or --overwrite to replace it"
    if stored.identity is None:
        raise Refused(f"{subject} records no identity (what made it); {hint}")
    old, new = stored.identity, wanted
    changes = differences(
        {"system": old.system, "dataset": old.dataset}, {"system": new.system, "dataset": new.dataset}
    )
    raise Refused(f"{subject} was made {made_otherwise(changes)}; {hint}")


def matches(pattern: str, name: str) -> bool:
    """Whether `pattern` selects the system or dataset `name`: equal to it (case aside), or a shell-style
    glob that matches it.  Brackets holding `=` are a variant's settings (`bm25[k1=0.9]`), not a glob's
    character class: they match themselves."""
    pattern, name = pattern.casefold(), name.casefold()
    glob = _VARIANT.sub(lambda m: m.group(0).replace("[", "[[]", 1), pattern)
    return name == pattern or fnmatchcase(name, glob)


_VARIANT = re.compile(r"\[[^\]]*=[^\]]*\]")


def matching(pattern: str, names: Iterable[str]) -> list[str]:
    """The names `pattern` selects (`matches`), in the order given."""
    return [n for n in names if matches(pattern, n)]


@dataclass(frozen=True)
class ResultsStore:
    """One results folder: where each pair's files are, its lock and leftovers, whether it is done,
    and loading, saving and listing results."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    def path(self, system: str, dataset: str, split: str | None = None) -> Path:
        """The JSON of `system` on `dataset` (`split`; None: the dataset's own); names validated."""
        validate_name(system, "system", max_slashes=0)
        validate_name(dataset, "dataset", max_slashes=1)
        if split is not None:
            validate_name(split, "split", max_slashes=0)
        leaf = dataset.rsplit("/", 1)[-1]
        stem = leaf if split is None or split == default_split(dataset) else f"{leaf}@{split}"
        return (self.root / system / dataset).with_name(stem + ".json")

    def lock(self, system: str, dataset: str, split: str | None = None) -> FileLock:
        """The lock of one pair: one process computes or replaces it at a time."""
        name = self.path(system, dataset, split).relative_to(self.root)
        lock_dir = self.root / ".locks"
        lock_dir.mkdir(parents=True, exist_ok=True)
        return FileLock(str(lock_dir / (str(name).replace("/", "__") + ".lock")))

    def clear_leftovers(self, system: str, dataset: str, split: str | None = None) -> None:
        """Remove what killed writes of a pair left: temporary files, and runs its JSON does not name
        (call with the pair's lock held)."""
        path = self.path(system, dataset, split)
        named = _named_run(path)
        for run in _runs_of(path):
            if run.name != named:
                run.unlink(missing_ok=True)
        staged = _staged_run(path)
        for stale in [staged, *temp_files(staged), *temp_files(path)]:
            stale.unlink(missing_ok=True)

    def done(self, system: str, dataset: str, split: str | None = None) -> bool:
        """True when the pair's JSON is a result and the run it names is there as written (whatever
        made it: `reuse` says whether it may be served)."""
        try:
            self.load(system, dataset, split)
        except DataError:
            return False
        return True

    def damaged(self, system: str, dataset: str, split: str | None = None) -> str | None:
        """Why the pair's JSON, which is there, cannot be served (one line); None when it is not there
        or it loads."""
        if not self.path(system, dataset, split).is_file():
            return None
        try:
            self.load(system, dataset, split)
        except DataError as e:
            return e.problem
        return None

    def load(self, system: str, dataset: str, split: str | None = None) -> StoredResult:
        """The stored result of one pair; `DataError` naming the file when it is missing, corrupt,
        or its run file is missing or not what was written."""
        path = self.path(system, dataset, split)
        if not path.is_file():
            where = "" if split is None or split == default_split(dataset) else f" ({split} split)"
            raise DataError(path, None, f"no stored result for {system} on {dataset}{where}")
        return _read_result(path)

    def __iter__(self) -> Iterator[StoredResult]:
        """Every stored result, sorted by (system, dataset); `DataError` for a folder that is not there
        and for the first result that does not load."""
        if not self.root.is_dir():
            raise DataError(self.root, None, "results folder does not exist")
        found = []
        for pattern in ("*/*.json", "*/*/*.json"):
            for path in self.root.glob(pattern):
                if not any(part.startswith(".") for part in path.relative_to(self.root).parts):
                    found.append(_read_result(path))
        yield from sorted(found, key=lambda r: (r.system, r.dataset))

    def save(
        self,
        system: str,
        dataset: str,
        split: str,
        evaluation: Evaluation,
        run: Run,
        manifest: dict[str, Any],
        identity: Identity,
    ) -> StoredResult:
        """Write the run under its content's name, then commit the JSON naming it (the one rename);
        then remove the run the JSON replaced.  Returns what it wrote."""
        path = self.path(system, dataset, split)
        staged = _staged_run(path)
        write_trec_run(run, staged, tag=system.replace(" ", "_") or "run")
        digest = sha256_file(staged)
        run_file = path.with_name(f"{path.stem}.{digest[:16]}{RUN_SUFFIX}")
        os.replace(staged, run_file)
        result = StoredResult(
            system, dataset, split, dict(evaluation.metrics), evaluation.per_query,
            complete_manifest(manifest), path, identity, run_file.name, digest,
        )  # fmt: skip
        atomic_write_json(path, _record(result, evaluation))
        _verified[_stat_key(run_file)] = digest
        for old in _runs_of(path):
            if old != run_file:
                old.unlink(missing_ok=True)
        return result


def _record(result: StoredResult, evaluation: Evaluation) -> dict[str, Any]:
    return {
        "system": result.system,
        "dataset": result.dataset,
        "split": result.split,
        "identity": result.identity.record(),
        "metrics": result.metrics,
        "scoring": {
            "k_values": list(evaluation.k_values),
            "ignore_identical_ids": evaluation.ignore_identical_ids,
            "judged_queries": evaluation.n_queries,
            "judged_queries_without_results": len(evaluation.missing_queries),
            "unjudged_queries_ignored": evaluation.unjudged_queries,
        },
        "per_query": result.per_query,
        "manifest": result.manifest,
        "run": {"file": result.run_file, "sha256": result.run_sha256},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _staged_run(path: Path) -> Path:
    """Where a pair's run is written before it is named by its content."""
    return path.with_name(f"{path.stem}.staged{RUN_SUFFIX}")


def _runs_of(path: Path) -> list[Path]:
    """The run files of the pair whose JSON is `path`, named by their content."""
    return sorted(
        p
        for p in path.parent.glob(f"*{RUN_SUFFIX}")
        if (m := _RUN_NAME.fullmatch(p.name)) and m["stem"] == path.stem
    )


def _named_run(path: Path) -> str | None:
    """The run file name the JSON at `path` records, if it can be read."""
    try:
        run = json.loads(path.read_text(encoding="utf-8")).get("run") or {}
    except (OSError, ValueError, AttributeError):
        return None
    return run.get("file") if isinstance(run, dict) else None


# Run files whose sha256 this process has read, by a stat key that changes whenever the file does.
_verified: dict[tuple[str, int, int, int, int, int], str] = {}


def _stat_key(path: Path) -> tuple[str, int, int, int, int, int]:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


def _check_run(path: Path, name: Any, sha256: Any) -> None:
    """`DataError` unless the run file `name` beside `path` is there with content `sha256`."""
    if not isinstance(name, str) or not _RUN_NAME.fullmatch(name) or not isinstance(sha256, str):
        raise DataError(path, None, "not a result record: its run file is not named with its sha256")
    run_file = path.with_name(name)
    try:
        key = _stat_key(run_file)
    except OSError:
        raise DataError(path, None, f"its run file {name} is missing") from None
    if key not in _verified:
        _verified[key] = sha256_file(run_file)
    if _verified[key] != sha256:
        raise DataError(path, None, f"its run file {name} is not the run it was stored with (sha256 differs)")


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
    identity = Identity.from_record(record["identity"])
    run = record["run"] if isinstance(record["run"], dict) else {}
    if identity is None:
        raise DataError(path, None, "not a result record: its identity has no system and dataset")
    _check_run(path, run.get("file"), run.get("sha256"))
    return StoredResult(
        system=record["system"],
        dataset=record["dataset"],
        split=record["split"],
        metrics=record["metrics"],
        per_query=record.get("per_query") or {},
        manifest=record["manifest"],
        path=path,
        identity=identity,
        run_file=run["file"],
        run_sha256=run["sha256"],
    )


def recorded_files(manifest: dict[str, Any]) -> dict[str, str]:
    """The sha256 of each dataset file a result was made from, by its path in the dataset folder."""
    return dict((manifest.get("dataset") or {}).get("files_sha256") or {})
