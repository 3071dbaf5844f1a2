"""BM25: bm25s (Lucene variant by default) with PyStemmer, BEIR's text `title + " " + text`.

The index is bm25s' own (its CSC score matrix and vocabulary files), built by `bm25_index` in two
streamed passes so that MS MARCO-size corpora fit in a few GB, and saved in the cache keyed by the
corpus content (and the store file it was read from), the BM25 parameters and the tokeniser, as a
folder built by `artifacts.build_folder` (checksummed, verified when a process first opens it): a
second run on the same corpus maps the saved index (`bm25s.BM25.load(mmap=True)`) instead of
indexing again.  Scores are bm25s' to the
bit (tests compare whole runs with `bm25s.tokenize` + `bm25s.BM25.index` + `retrieve`).
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from .. import progress as bars
from ..artifacts import CacheRoot
from ..data.loader import Corpus
from ..data.store import store_sha256
from ..identity import record, setting
from .base import TEXT_FORMAT, Report, Retriever, Searched, to_run
from .bm25_index import (
    INDEX_FORMAT,
    TOKEN_PATTERN,
    BuildStats,
    build_index,
    default_workers,
    search,
)
from .spec import SystemSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BM25Config:
    """Defaults are the published bm25s BEIR setting (MTEB's `bm25s` baseline)."""

    k1: float = 1.5
    b: float = 0.75
    method: str = "lucene"
    stopwords: str | None = "en"
    stemmer: str | None = "english"
    delta: float = 0.5


@dataclass(frozen=True, kw_only=True)
class BM25Spec(SystemSpec):
    """bm25s: its parameters, the text it indexes and how that text is tokenised."""

    retriever: str = "bm25s"
    bm25: BM25Config = field(default_factory=BM25Config)
    text_format: str = TEXT_FORMAT
    token_pattern: str = TOKEN_PATTERN
    lowercase: bool = True
    workers: int | None = setting(None)  # tokenising / searching processes; None: `default_workers()`
    progress: bool = setting(True)


class BM25Retriever(Retriever):
    def __init__(
        self,
        spec: BM25Spec | BM25Config | None = None,
        cache_dir: Path | None = None,
        progress: bool | None = None,
        workers: int | None = None,
    ):
        """From its spec; given parameters only (a `BM25Config`), the spec of `bm25` with them."""
        if not isinstance(spec, BM25Spec):
            spec = BM25Spec(system="bm25", bm25=spec or BM25Config())
        if progress is not None or workers is not None:
            spec = replace(spec, progress=spec.progress if progress is None else progress,
                           workers=workers or spec.workers)  # fmt: skip
        self.spec = spec
        self.config = self.spec.bm25
        self.progress = self.spec.progress
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.workers = self.spec.workers or default_workers()
        self._model = None

    def _tokenize(self, texts: list[str]):
        import bm25s

        stemmer = None
        if self.config.stemmer:
            import Stemmer

            stemmer = Stemmer.Stemmer(self.config.stemmer)
        return bm25s.tokenize(texts, stopwords=self.config.stopwords, stemmer=stemmer, show_progress=False)

    def index_key(self, corpus: Corpus) -> dict:
        """What the saved index is of: the corpus content, the spec's ranking fields (top-k aside: it
        only cuts the search) and the versions of the code that wrote it."""
        from importlib.metadata import version

        import bm25s

        ranking = {
            k: v for k, v in record(self.spec, ranking_only=True).items() if k not in ("top_k", "inputs")
        }
        return {
            "kind": "bm25-index",
            "format": INDEX_FORMAT,
            "corpus": corpus.content_hash(),
            "store": store_sha256(corpus.store_path),
            **ranking,
            "bm25s": bm25s.__version__,
            "PyStemmer": version("PyStemmer") if self.config.stemmer else None,
        }

    def index(self, corpus: Corpus) -> Report:
        import bm25s

        t0 = time.perf_counter()
        self._model = None  # the previous corpus's index
        cached = self.cache_dir is not None and corpus.store_path is not None
        if cached:
            folder, reused, stats = self._cached_index(corpus)
            self._model = bm25s.BM25.load(folder, mmap=True)
        else:  # an in-memory corpus (PeerQA's papers, tests): build, load into memory, drop the files
            with tempfile.TemporaryDirectory(prefix="gtr-eval-bm25-") as tmp:
                folder = Path(tmp) / "index"
                folder.mkdir()
                stats = build_index(corpus, folder, self.config, self.workers, self.progress)
                self._model = bm25s.BM25.load(folder, mmap=False)
            reused = False
        self._doc_ids = corpus.ids
        self._folder = folder if cached else None  # workers read a saved index and map the corpus store
        self._store_path = corpus.store_path
        info = {"cached": cached, "reused": reused, **({"path": str(folder)} if cached else {}),
                **({"build": asdict(stats)} if stats is not None else {})}  # fmt: skip
        return Report({"index_s": time.perf_counter() - t0}, {"bm25_index": info})

    def _cached_index(self, corpus: Corpus) -> tuple[Path, bool, BuildStats | None]:
        """The saved index of `corpus` (built atomically if missing or failing its checksums); True if
        it was there, and the build's figures if it was built here."""
        key = self.index_key(corpus)
        cache = CacheRoot(Path(self.cache_dir))
        folder = cache.entry("bm25", key)
        built: list[BuildStats] = []

        def make(tmp: Path) -> None:
            built.append(build_index(corpus, tmp, self.config, self.workers, self.progress))
            (tmp / "gtr-eval.json").write_text(json.dumps({"key": key, **asdict(built[0])}, indent=1))

        reused = cache.build(folder, make, "bm25 index")
        return folder, reused, built[0] if built else None

    def search(self, queries: dict[str, str], top_k: int) -> Searched:
        import bm25s

        t0 = time.perf_counter()
        qids = list(queries)
        n_docs = int(self._model.scores["num_docs"])
        k = min(top_k, n_docs)
        with bars.bar(len(qids), "BM25: search", "query", enabled=self.progress) as searching:
            tokens = self._tokenize([queries[q] for q in qids])
            if self._model.nonoccurrence_array is not None:  # bm25l, bm25+: every document has a score
                indices, scores = self._model.retrieve(
                    tokens, k=k, show_progress=False, n_threads=self.workers
                )
            else:
                strings = bm25s.tokenization.convert_tokenized_to_string_list(tokens)
                token_ids = [self._model.get_tokens_ids(q) for q in strings]
                indices, scores = search(self._model, token_ids, k, self.workers, self._folder, self._store_path,
                                         tie_ids=self._doc_ids)  # fmt: skip
            searching.update(len(qids))
        # bm25s pads with score 0 when fewer than k documents share a term: keep real hits only.
        run = to_run(qids, self._doc_ids, scores, indices, keep=scores > 0)
        return Searched(run, Report({"search_s": time.perf_counter() - t0}))

    def close(self) -> None:
        self._model = None


# ------------------------------------------------------------- what a run costs (for `run --plan`)
# results/bm25/{scifact,nfcorpus}.json: index_s 0.7105 and 0.6594 for 5,183 x 213.63 and
# 3,633 x 232.26 words; search_s 0.0850 and 0.0740 for 300 x 5,183 and 323 x 3,633 (query, doc) pairs.
BM25_WORDS_PER_S = (5_183 * 213.63 + 3_633 * 232.26) / (0.7105 + 0.6594)
BM25_S_PER_QUERY_DOC = (0.0850 + 0.0740) / (300 * 5_183 + 323 * 3_633)


def bm25_seconds(docs: float, doc_words: float, queries: float) -> float:
    """bm25s on the CPU: indexing by words, search by (query, document) pairs."""
    return docs * doc_words / BM25_WORDS_PER_S + queries * docs * BM25_S_PER_QUERY_DOC
