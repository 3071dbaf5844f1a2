"""External TREC runs (Pyserini, Anserini, any system) stored as systems of their own.

An imported run is one pair of the pair pipeline: scored by the same `evaluate` as ours (BEIR's
conventions: identical ids dropped, judged queries without results count zero, MRR@10 with
trec_eval's tie order) and stored with per-query scores, so it sits in tables, plots, reports and
significance tests like a run of this harness.  Its identity is the run file's sha256 and the
judgments' (the qrels file, or the dataset's queries and qrels): importing the same file again is
served as done, another file under the same name is refused unless `overwrite`.  Its manifest says
where it came from instead of a model and hardware, which the harness cannot know.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..data import registry
from ..data.loader import BeirData, Corpus, DataError, Qrels, read_qrels, read_queries
from ..data.units import DatasetUnit, check_has_split
from ..dataset_files import locate
from ..errors import Mistake, did_you_mean
from ..evaluation import check_overlap, read_qrels_any, read_trec_run
from ..identity import Identity, setting
from ..io import sha256_file
from ..paths import BUNDLED
from ..results import ResultsStore, StoredResult
from ..retrieval.spec import InputRun, SystemSpec
from .pairs import Made, PairJob, PairStore, Sweep, each_pair


@dataclass(frozen=True, kw_only=True)
class ImportSpec(SystemSpec):
    """An external run, named by its file's content (`inputs`)."""

    retriever: str = "imported"
    top_k: int = setting(0)  # the deepest ranking in the file: a fact of the run, not a setting
    imported: dict = setting(default_factory=dict)  # the run and qrels files, where they were
    hardware: dict = setting(
        default_factory=lambda: {
            "note": "not recorded: the run was made outside gtr-eval (versions are those that scored it)"
        }
    )


@dataclass
class ImportedRun:
    result: StoredResult
    warnings: list[str] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return self.result.path


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
    echo=lambda _: None,
) -> ImportedRun:
    """Score `run_file` and store it as `system` on `dataset`.  Stored already from the same file and
    judgments: served as it is; from another: refused unless `overwrite` (`errors.Refused`)."""
    run_file = Path(run_file)
    dataset = registry.canonical_name(dataset)  # `SciFact`: scifact
    split = split or registry.default_split(dataset)
    ResultsStore(results_dir).path(system, dataset, split)  # validates the names before any work
    unit = _unit(dataset, split, Path(qrels_file) if qrels_file else None, data_dir, ignore_identical_ids)
    sha = sha256_file(run_file)
    run = read_trec_run(run_file)
    qrels_path = Path(unit.path) / unit.data_files()[-1]
    qrels = unit.load().qrels
    overlap = check_overlap(qrels, run, qrels_path, run_file)  # a run of another dataset: refused now
    spec = ImportSpec(
        system=system,
        inputs=(InputRun(system=run_file.name, run_sha256=sha, result=str(run_file.resolve())),),
        top_k=max((len(docs) for docs in run.values()), default=0),
        imported={
            "run_file": str(run_file.resolve()),
            "run_sha256": sha,
            "qrels_file": str(qrels_path.resolve()),
            "qrels_sha256": sha256_file(qrels_path),
        },
    )
    store = PairStore(Path(results_dir), None, overwrite, rename="another SYSTEM name")
    job = PairJob(
        system,
        unit,
        identity=lambda: Identity.of(spec, unit.fingerprint()),
        make=lambda data: Made(spec, run),
    )
    sweep = Sweep(echo, 1, progress=False)
    try:
        out = each_pair([job], store, sweep)
    finally:
        sweep.close()
    if out.failures:
        raise out.failures[0].cause or ValueError(out.failures[0].error)
    (stored,) = out
    warnings = [overlap] if overlap else []
    warnings += _coverage_warnings(run, qrels) + _qrels_warnings(results_dir, stored, qrels, data_dir)
    return ImportedRun(stored, warnings)


def _unit(
    dataset: str, split: str, qrels_file: Path | None, data_dir: Path | str | None, ignore_identical_ids: bool
) -> DatasetUnit:
    """The judgments as a dataset unit: a qrels file alone, else `<data_dir>/<dataset>`'s queries and
    qrels (judged queries missing from queries.jsonl dropped, as a run of this harness reads them)."""
    if qrels_file is not None:
        return DatasetUnit(dataset, qrels_file.parent, split, ignore_identical_ids, loader=_read_judgments,
                           files=(qrels_file.name,))  # fmt: skip
    if data_dir is None:
        raise ValueError("give --qrels FILE, or --data-dir holding the dataset")
    root = Path(data_dir).expanduser()
    bundled = dataset in registry.names() and registry.get(dataset).bundled
    folder = BUNDLED / dataset if bundled else root / dataset
    if not folder.is_dir():
        here = [p.name for p in root.iterdir() if p.is_dir()] if root.is_dir() else []
        near = did_you_mean(dataset, [*here, *registry.names()])
        raise Mistake(f"{folder}: no BEIR dataset here (no such folder{near}); give --qrels FILE")
    check_has_split(dataset, folder, split)
    if not (folder / "qrels" / f"{split}.tsv").is_file() or not (folder / "queries.jsonl").is_file():
        raise DataError(
            folder, None, f"no BEIR dataset here (queries.jsonl, qrels/{split}.tsv); give --qrels FILE"
        )
    return DatasetUnit(dataset, folder, split, ignore_identical_ids, loader=_read_judgments,
                       files=("queries.jsonl", f"qrels/{split}.tsv"))  # fmt: skip


def _read_judgments(unit: DatasetUnit) -> BeirData:
    files = unit.data_files()
    if len(files) == 1:
        path = Path(unit.path) / files[0]
        qrels, queries, checksums = read_qrels_any(path), {}, {files[0]: sha256_file(path)}
    else:
        qrels, qrels_sha = read_qrels(Path(unit.path) / files[1])
        all_queries, queries_sha = read_queries(Path(unit.path) / files[0])
        qrels = {q: docs for q, docs in qrels.items() if q in all_queries}
        queries = {q: all_queries[q] for q in qrels}
        checksums = {files[0]: queries_sha, files[1]: qrels_sha}
    empty = Corpus.from_records([])
    return BeirData(unit.name, Path(unit.path), unit.split, empty, queries, qrels, checksums)


def _coverage_warnings(run: dict, qrels: Qrels) -> list[str]:
    out = []
    missing = [q for q in qrels if not run.get(q)]
    if missing:
        out.append(
            f"{len(missing)} of {len(qrels)} judged queries have no results in the run; they score 0 "
            "(check that the query ids match the qrels)"
        )
    if unjudged := sum(1 for q in run if q not in qrels):
        out.append(f"{unjudged} queries of the run have no judgments and were ignored")
    return out


def _qrels_warnings(results_dir, stored: StoredResult, qrels: Qrels, data_dir) -> list[str]:
    """Warn when other systems on this dataset were scored against other judgments."""
    out = []
    for other in ResultsStore(results_dir):
        if other.dataset != stored.dataset or other.system == stored.system:
            continue
        if other.split != stored.split:
            out.append(
                f"{other.system} on {stored.dataset} was scored on split {other.split!r}, this run on {stored.split!r}"
            )
            continue
        files, _ = locate(other, Path(data_dir) if data_dir else None)
        if files is not None and files.qrels != qrels:
            out.append(
                f"{other.system} on {stored.dataset} was scored with a different qrels file; comparisons between "
                "them may not be fair"
            )
    return out
