"""Late interaction (ColBERT and any sentence-transformers `MultiVectorEncoder`), scored by exact MaxSim.

Documents are encoded with `encode_document` (the [D] marker, the document length, punctuation
masking) and their token vectors cached per shard as one float16 matrix + offsets; queries with
`encode_query` (the [Q] marker and [MASK] expansion to the checkpoint's query length).  Scoring
upcasts to float32.

Two modes, recorded in the manifest as `mode`:

* `full`: exact MaxSim of every query against every document, one shard at a time.  The default
  for corpora of at most `full_max_docs` documents (200,000: TREC-COVID and every smaller BEIR set).
* `rerank`: the standard two-stage search: the top `depth` documents of another system's stored
  run on the same dataset (`--candidates bm25 --depth 1000`) are re-scored by exact MaxSim.  The
  manifest names the candidate system, the depth and the sha256 of the run file used.  A larger
  corpus without `--candidates` is an error before any encoding starts (`--maxsim-search full`
  forces the full search).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np

from ..data.loader import Corpus
from .base import Run
from .cache import RaggedTokens, ShardSelector, TokensFormat
from .encoded import EncodedConfig, EncodedRetriever, ranked_run
from .maxsim import maxsim_full, maxsim_rerank
from .models import load_multivector_encoder

MODES = ("auto", "full", "rerank")
FULL_MAX_DOCS = 200_000
TOKEN_DTYPES = ("float16", "float32")


@dataclass
class MultiVectorConfig(EncodedConfig):
    token_dtype: str = "float16"  # how document token vectors are stored (scored in float32)
    search: str = "auto"  # auto: rerank with candidates, else full up to full_max_docs documents
    candidates: str | None = None  # the system whose stored run gives the candidates
    depth: int = 1000
    full_max_docs: int = FULL_MAX_DOCS


class MultiVectorRetriever(EncodedRetriever):
    family = "multivector"
    query_format = TokensFormat("float32")

    def __init__(self, config: MultiVectorConfig, cache_dir=None, progress: bool = True):
        if config.search not in MODES:
            raise ValueError(f"search must be one of {MODES}, not {config.search!r}")
        if config.token_dtype not in TOKEN_DTYPES:
            raise ValueError(f"token_dtype must be one of {TOKEN_DTYPES}, not {config.token_dtype!r}")
        if config.search == "rerank" and not config.candidates:
            raise ValueError("--maxsim-search rerank needs --candidates SYSTEM (the first stage)")
        if config.search == "full" and config.candidates:
            raise ValueError("--maxsim-search full searches every document: drop --candidates")
        if config.depth < 1:
            raise ValueError(f"depth must be >= 1, not {config.depth}")
        super().__init__(config, cache_dir, progress)
        self.doc_format = TokensFormat(config.token_dtype)
        self.mode = "rerank" if config.candidates else ("full" if config.search == "full" else None)
        self._candidates: Run | None = None
        self._candidate_source: dict = {}
        self.index_stats: dict = {}

    def _load(self):
        c = self.config
        model = load_multivector_encoder(
            self.source.path, c.device, c.dtype, self.max_length, c.trust_remote_code
        )
        if model.similarity_fn_name not in ("maxsim", "meanmaxsim"):
            raise ValueError(f"{self.name}: similarity {model.similarity_fn_name!r} is not MaxSim")
        self.max_length = model[0].document_length or model.max_seq_length
        return model

    def model_settings(self) -> dict:
        m = self.model
        return {
            "document_length": m[0].document_length,
            "query_length": m[0].query_length,
            "query_expansion": m[0].query_expansion,
            "max_seq_length": m.max_seq_length,
            "prompts": dict(m.prompts),
            "similarity": m.similarity_fn_name,
            "modules": [type(x).__name__ for x in m],
        }

    def _encode(self, texts: list[str], task: str) -> RaggedTokens:
        method = self.model.encode_query if task == "query" else self.model.encode_document
        vectors = method(
            texts,
            prompt=self._prompt(task),
            batch_size=self.batch_size,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return RaggedTokens.from_list(vectors, np.float32)

    # ----------------------------------------------------------------------------- search modes

    def index(self, corpus: Corpus, select: ShardSelector | None = None) -> None:
        if self.mode is None and len(corpus) > self.config.full_max_docs:
            raise ValueError(
                f"{self.name}: exact MaxSim over all {len(corpus):,} documents (more than "
                f"{self.config.full_max_docs:,}) is too costly; re-rank a first stage instead with "
                "--candidates SYSTEM --depth 1000 (e.g. -m bm25 listed before this model and "
                "--candidates bm25), or force it with --maxsim-search full"
            )
        super().index(corpus, select)

    def candidate_system(self) -> str | None:
        return self.config.candidates

    def use_candidates(self, run: Run, source: dict) -> None:
        """The first stage's run (query -> {doc: score}) and where it came from (system, file, sha256)."""
        self._candidates = run
        self._candidate_source = dict(source)

    def search(self, queries: dict[str, str], top_k: int) -> Run:
        emb = self._corpus()
        if self.config.candidates and self._candidates is None:
            raise RuntimeError(f"{self.name}: re-ranking needs the candidates of {self.config.candidates!r}")
        if not queries:
            return {}
        q = self.encode_queries(queries)
        t0 = time.perf_counter()
        mean = self.model.similarity_fn_name == "meanmaxsim"
        qids = list(queries)
        if self.config.candidates:
            run = self._rerank(q, qids, top_k, mean)
        else:
            scores, rows = maxsim_full(q, emb.chunks(), top_k, normalize_by_length=mean)
            run = ranked_run(qids, self._doc_ids, scores, rows, emb.order)
        self.timings["search_s"] = time.perf_counter() - t0
        self.index_stats = self._index_stats(float(q.lengths().mean()))
        return run

    def _rerank(self, q: RaggedTokens, qids: list[str], top_k: int, mean: bool) -> Run:
        emb = self._corpus()
        position = {d: i for i, d in enumerate(self._doc_ids)}
        row_of = np.empty(len(emb.order), dtype=np.int64)
        row_of[emb.order] = np.arange(len(emb.order))
        candidates = []
        for qid in qids:
            hits = sorted((self._candidates or {}).get(qid, {}).items(), key=lambda x: (-x[1], x[0]))
            idx = [position[d] for d, _ in hits[: self.config.depth] if d in position]
            candidates.append(row_of[np.asarray(idx, dtype=np.int64)])
        scored = maxsim_rerank(q, emb.chunks(), candidates, normalize_by_length=mean)
        run: Run = {}
        for qid, by_row in zip(qids, scored, strict=True):
            best = sorted(by_row.items(), key=lambda x: -x[1])[:top_k]
            run[qid] = {self._doc_ids[int(emb.order[r])]: s for r, s in best}
        return run

    def _index_stats(self, query_tokens: float) -> dict:
        emb = self._corpus()
        tokens = sum(json.loads(p.read_text())["parts"]["tokens"]["shape"][0] for p in emb.shard_paths)
        return {
            "index_bytes": self.index_bytes(),
            "docs": len(emb.order),
            "token_vectors": tokens,
            "avg_tokens_per_doc": round(tokens / max(1, len(emb.order)), 2),
            "avg_tokens_per_query": round(query_tokens, 2),
            "token_dtype": self.config.token_dtype,
        }

    def settings(self) -> dict:
        c = self.config
        return {**super().settings(), "candidates": c.candidates, "depth": c.depth if c.candidates else None}

    def manifest(self) -> dict:
        c = self.config
        search = {"mode": "rerank" if c.candidates else "full", "candidates": c.candidates}
        search["depth"] = c.depth if c.candidates else None
        if c.candidates:
            search["candidates_run"] = self._candidate_source.get("run_file")
            search["candidates_sha256"] = self._candidate_source.get("run_sha256")
        return {
            **super().manifest(),
            "score": self.model.similarity_fn_name,
            **search,
            "index": self.index_stats,
        }
