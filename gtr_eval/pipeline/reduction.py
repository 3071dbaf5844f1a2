"""A dataset with a smaller corpus, for evaluations that must be quick (a training loop's): the
documents judged relevant for the split's queries plus BM25's top-k documents of each query, the way
NanoBEIR's corpora were built.

The reduced dataset is a BEIR folder of its own, derived data in the cache, never in the data folder
(which may be read-only): `<cache>/reduced/<name>~bm25top<k>/<source>/`, where `<source>` names the
source folder and split (so two folders of the same name never share one); with no cache
(`--no-cache`) in a temporary folder removed when the process ends.  Its corpus holds the kept lines of the original `corpus.jsonl` byte for byte, in their order; `queries.jsonl`
and the split's qrels are copied as they are.  Its name says it is reduced, and its files' digests
differ from the full dataset's, so a result on it is never taken for (or served as) one on the full
set.  `reduction.json` records what it was made from (the source's fingerprint) and how; a source
that has changed since is reduced again.  BM25 is this package's (`bm25`, BEIR's parameters), and its
ranking is deterministic (ties broken by document order), so the same source and k give the same
folder on every machine.  The folder is built by `artifacts.build_folder` (under a lock, renamed
into place, with a checksum record verified when a process first uses it: an edited reduced corpus is
made again, with a note).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from ..artifacts import CacheRoot, file_memo, key_digest
from ..data.units import DatasetUnit
from ..identity import record
from ..io import atomic_write_json, read_memo

RECIPE = "qrels-relevant + bm25 top-k, v1"
MARKER = "reduction.json"


def reduced_name(name: str, top_k: int) -> str:
    return f"{name}~bm25top{top_k}"


def reduced_folder(cache: CacheRoot, unit: DatasetUnit, top_k: int) -> Path:
    """Where the reduction of `unit` to `top_k` lives in `cache` (`run --plan` looks there too)."""
    source = key_digest({"source": str(Path(unit.path).expanduser().resolve()), "split": unit.split})
    return cache.area("reduced") / reduced_name(unit.name, top_k) / source[:16]


def reduce_unit(
    unit: DatasetUnit,
    top_k: int,
    cache: CacheRoot | None,
    store_dir: Path | None = None,
    echo=print,
) -> DatasetUnit:
    """The reduced copy of `unit` in `cache` (made now unless one of the same source and k is there);
    with no cache, in a temporary folder that lasts as long as the process."""
    if top_k < 1:
        raise ValueError(f"--reduce-corpus takes a positive number of BM25 documents per query, not {top_k}")
    if unit.loader is not None:
        raise ValueError(f"{unit.name}: only BEIR folders can be reduced (not {unit.name}'s own layout)")
    index_cache = cache.path if cache is not None else None
    cache = cache if cache is not None else _temporary_cache()
    name = reduced_name(unit.name, top_k)
    folder = reduced_folder(cache, unit, top_k)
    recipe = {"recipe": RECIPE, "top_k": top_k, "source": record(unit.fingerprint(store_dir))}
    made = cache.build(folder, lambda tmp: _build(unit, tmp, recipe, store_dir, index_cache), "reduced dataset",
                       current=lambda f: _marker(f).get("made_from") == recipe)  # fmt: skip
    if not made:
        kept = _marker(folder)["documents"]
        echo(f"[data] {name}: {kept:,} documents kept (relevant + BM25 top {top_k}) -> {folder}")
    return DatasetUnit(name, folder, unit.split, unit.ignore_identical_ids)


_TEMPORARY: list[tempfile.TemporaryDirectory] = []


def _temporary_cache() -> CacheRoot:
    """A cache for this process only (`--no-cache`), removed when it ends."""
    if not _TEMPORARY:
        _TEMPORARY.append(tempfile.TemporaryDirectory(prefix="gtr-eval-reduced-"))
    return CacheRoot(Path(_TEMPORARY[0].name))


def built_count(cache: CacheRoot, unit: DatasetUnit, top_k: int) -> int | None:
    """How many documents the reduction of `unit` in `cache` holds, if it is there and was made from
    the source files as they are now (by the cache's memos of their digests: nothing is read); None
    when it is not, or cannot be told without reading the files (the run then makes it)."""
    folder = reduced_folder(cache, unit, top_k)
    made = _marker(folder).get("made_from") or {}
    recorded = (made.get("source") or {}).get("files_sha256") or {}
    if made.get("recipe") != RECIPE or not recorded:
        return None
    for name in unit.data_files():
        try:
            digest = read_memo(file_memo(Path(unit.path) / name, cache.memos("files")))
        except OSError:
            return None
        if digest is None or digest != recorded.get(name):
            return None
    kept = _marker(folder).get("documents")
    return kept if isinstance(kept, int) else None


def reduction_of(folder: Path | str) -> dict | None:
    """What a reduced folder records about how it was made (None for any other folder): a result's
    manifest carries it."""
    return _marker(Path(folder)) or None


def _marker(folder: Path) -> dict:
    try:
        value = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def kept_documents(unit: DatasetUnit, top_k: int, store_dir: Path | None, cache_dir: Path | None) -> set[str]:
    """Every document judged relevant (grade > 0) for a query of the split, and BM25's top `top_k`
    documents of each of those queries."""
    from ..retrieval.factory import RetrieverOptions, make_retriever

    data = unit.load(store_dir=store_dir)
    keep = {d for docs in data.qrels.values() for d, grade in docs.items() if grade > 0}
    bm25 = make_retriever("bm25", RetrieverOptions(cache_dir=cache_dir, progress=False), top_k)
    try:
        bm25.index(data.corpus)
        run = bm25.search(data.queries, top_k).run
    finally:
        bm25.close()
    keep.update(d for docs in run.values() for d in docs)
    return keep


def _build(
    unit: DatasetUnit, tmp: Path, recipe: dict, store_dir: Path | None, cache_dir: Path | None
) -> None:
    """Write the reduced folder's files into `tmp` (`build_folder` renames it into place)."""
    keep = kept_documents(unit, recipe["top_k"], store_dir, cache_dir)
    (tmp / "qrels").mkdir()
    kept = _copy_corpus(Path(unit.path) / "corpus.jsonl", tmp / "corpus.jsonl", keep)
    shutil.copyfile(Path(unit.path) / "queries.jsonl", tmp / "queries.jsonl")
    shutil.copyfile(Path(unit.path) / "qrels" / f"{unit.split}.tsv", tmp / "qrels" / f"{unit.split}.tsv")
    atomic_write_json(tmp / MARKER, {"made_from": recipe, "documents": kept, "source_path": str(unit.path)})


def _copy_corpus(source: Path, dest: Path, keep: set[str]) -> int:
    """The lines of `source` whose `_id` is in `keep`, as they are; returns how many."""
    kept = 0
    with open(source, "rb") as fin, open(dest, "wb") as fout:
        for line in fin:
            if line.strip() and str(json.loads(line)["_id"]) in keep:
                fout.write(line if line.endswith(b"\n") else line + b"\n")
                kept += 1
    return kept
