"""BM25: bm25s (Lucene variant by default) with PyStemmer, BEIR's text `title + " " + text`."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from ..data.loader import Corpus
from .base import TEXT_FORMAT, Retriever, Run


@dataclass
class BM25Config:
    """Defaults are the published bm25s BEIR setting (MTEB's `bm25s` baseline)."""

    k1: float = 1.5
    b: float = 0.75
    method: str = "lucene"
    stopwords: str | None = "en"
    stemmer: str | None = "english"
    delta: float = 0.5


class BM25Retriever(Retriever):
    def __init__(self, config: BM25Config | None = None, name: str = "bm25", progress: bool = True):
        self.config = config or BM25Config()
        self.name = name
        self.progress = progress
        self.timings: dict[str, float] = {}

    def _tokenize(self, texts: list[str]):
        import bm25s

        stemmer = None
        if self.config.stemmer:
            import Stemmer

            stemmer = Stemmer.Stemmer(self.config.stemmer)
        return bm25s.tokenize(
            texts, stopwords=self.config.stopwords, stemmer=stemmer, show_progress=self.progress
        )

    def index(self, corpus: Corpus) -> None:
        import bm25s

        t0 = time.perf_counter()
        c = self.config
        kwargs = {"delta": c.delta} if c.method in ("bm25l", "bm25+") else {}
        self._model = bm25s.BM25(k1=c.k1, b=c.b, method=c.method, **kwargs)
        self._model.index(self._tokenize(corpus.texts()), show_progress=self.progress)
        self._doc_ids = corpus.ids
        self.timings["index_s"] = time.perf_counter() - t0

    def search(self, queries: dict[str, str], top_k: int) -> Run:
        t0 = time.perf_counter()
        qids = list(queries)
        k = min(top_k, len(self._doc_ids))
        indices, scores = self._model.retrieve(
            self._tokenize([queries[q] for q in qids]), k=k, show_progress=self.progress
        )
        # bm25s pads with score 0 when fewer than k documents share a term: keep real hits only.
        run = {
            q: {self._doc_ids[j]: float(s) for j, s in zip(indices[r], scores[r], strict=True) if s > 0}
            for r, q in enumerate(qids)
        }
        self.timings["search_s"] = time.perf_counter() - t0
        return run

    def manifest(self) -> dict:
        return {"retriever": "bm25s", "bm25": asdict(self.config), "text_format": TEXT_FORMAT}

    def settings(self) -> dict:
        return {"bm25": asdict(self.config)}


