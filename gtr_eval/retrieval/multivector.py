"""Late interaction (ColBERT and any sentence-transformers `MultiVectorEncoder`), scored by exact MaxSim.

Documents are encoded with `encode_document` (the [D] marker, the document length, punctuation
masking) and their token vectors cached per shard as one float16 matrix + offsets; queries with
`encode_query` (the [Q] marker and [MASK] expansion to the checkpoint's query length).  Scoring
upcasts to float32.

Two modes, recorded in the spec as `search`:

* `full` (`gtr-eval run`): exact MaxSim of every query against every document, one shard at a time.
  Allowed for corpora of at most `full_max_docs` documents (200,000: TREC-COVID and every smaller
  BEIR set) unless forced (`--maxsim-search full`); a larger corpus is refused before any encoding.
* `rerank` (`gtr-eval rerank --run SYSTEM -m MODEL`): the standard two-stage search, a `Reranker`
  (`MaxSimReranker`): the top `depth` documents of another system's stored run on the same dataset
  are re-scored by exact MaxSim.  The spec names that run in `inputs` by its sha256 (per dataset).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from .. import defaults
from ..artifacts import CacheRoot
from ..data.loader import Corpus
from ..errors import ModelError, TooLarge
from ..identity import ranking, setting
from .base import Candidates, Report, Reranker, Run, Searched
from .cache import RaggedTokens, ShardSelector, TokensFormat
from .encoded import EncodedConfig, EncodedRetriever, EncodedSpec, model_fields, run_fields
from .loaders import load_multivector_encoder
from .maxsim import maxsim_full, maxsim_rerank
from .models import resolve_model
from .weights import weights_fingerprint

MODES = ("auto", "full")
FULL_MAX_DOCS = 200_000
TOKEN_DTYPES = ("float16", "float32")


@dataclass
class MultiVectorConfig(EncodedConfig):
    token_dtype: str = "float16"  # how document token vectors are stored (scored in float32)
    search: str = defaults.MAXSIM_SEARCH  # auto: full up to full_max_docs documents; full: any corpus
    full_max_docs: int = FULL_MAX_DOCS


@dataclass(frozen=True, kw_only=True)
class MultiVectorSpec(EncodedSpec):
    retriever: str = "multivector"
    # The checkpoint's own fixed, [MASK]-expanded query length (None): it does not follow the
    # documents' --max-length, so a run at another document length is named for that alone.
    query_max_length: int | None = ranking(None, caches=("queries",))
    token_dtype: str = ranking("float16", caches=("corpus",))
    search: str = "full"  # full, or rerank (of `inputs`' run, top `depth`)
    depth: int | None = None
    candidates: str | None = setting(None)  # the first stage's system (its run is in `inputs`)
    forced_full: bool = setting(False)  # --maxsim-search full: no size limit
    full_max_docs: int = setting(FULL_MAX_DOCS)


def resolve_multivector(
    c: MultiVectorConfig, cache: CacheRoot | None = None, candidates: str | None = None, depth: int = 0
) -> MultiVectorSpec:
    """The spec of a full search, or with `candidates` of re-ranking that system's top `depth`
    (a `MaxSimReranker`; its system name is the caller's, `c.name`); weights digests memoised in
    `cache`, the cache root in use."""
    if c.search not in MODES:
        raise ValueError(f"search must be one of {MODES}, not {c.search!r}")
    if c.token_dtype not in TOKEN_DTYPES:
        raise ValueError(f"token_dtype must be one of {TOKEN_DTYPES}, not {c.token_dtype!r}")
    if candidates and depth < 1:
        raise ValueError(f"depth must be >= 1, not {depth}")
    source = resolve_model(c.model, c.revision)
    preset = source.preset
    weights = weights_fingerprint(source.path, cache)
    name = c.name or source.name
    return MultiVectorSpec(
        system=name,
        **model_fields(source, weights, c.model),
        query_weights_sha256=weights,
        query_prompt=c.query_prompt,
        doc_prompt=c.doc_prompt,
        max_length=c.max_length or (preset.max_length if preset else None),
        query_max_length=None,  # the checkpoint's fixed, [MASK]-expanded query length
        token_dtype=c.token_dtype,
        search="rerank" if candidates else "full",
        depth=depth if candidates else None,
        candidates=candidates,
        forced_full=c.search == "full",
        full_max_docs=c.full_max_docs,
        **run_fields(c, preset, 32),
    )


class MultiVectorRetriever(EncodedRetriever):
    query_format = TokensFormat("float32")

    def __init__(
        self, spec: MultiVectorSpec | MultiVectorConfig, cache_dir=None, progress: bool | None = None
    ):
        """From its spec; given what was asked instead (a `MultiVectorConfig`), it is resolved first."""
        spec = resolve_multivector(spec) if isinstance(spec, MultiVectorConfig) else spec
        spec = spec if progress is None else replace(spec, progress=progress)
        super().__init__(spec, cache_dir)
        self.spec: MultiVectorSpec = spec
        self.doc_format = TokensFormat(spec.token_dtype)

    def _load(self):
        s = self.spec
        model = load_multivector_encoder(s.model_path, s.device, s.dtype, s.max_length, s.trust_remote_code)
        if model.similarity_fn_name not in ("maxsim", "meanmaxsim"):
            raise ModelError(f"{self.name}: similarity {model.similarity_fn_name!r} is not MaxSim")
        return model

    def model_settings(self) -> dict:
        """The loaded model's settings (fixed by its files and the spec; for the record)."""
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
            prompt=self.spec.query_prompt if task == "query" else self.spec.doc_prompt,
            batch_size=self.spec.batch_size,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return RaggedTokens.from_list(vectors, np.float32)

    # ----------------------------------------------------------------------------- search modes

    def index(self, corpus: Corpus, select: ShardSelector | None = None):
        s = self.spec
        if s.search == "full" and not s.forced_full and len(corpus) > s.full_max_docs:
            raise TooLarge(
                f"{self.name}: exact MaxSim over all {len(corpus):,} documents (more than "
                f"{s.full_max_docs:,}) is too costly; re-rank a first stage instead (gtr-eval rerank "
                f"--run bm25 -m {s.model} --depth 1000), or force it with --maxsim-search full"
            )
        return super().index(corpus, select)

    def search(self, queries: dict[str, str], top_k: int) -> Searched:
        """Exact MaxSim of every query against every document."""
        if self.spec.search != "full":
            raise RuntimeError(f"{self.name} re-ranks {self.spec.candidates!r}: a MaxSimReranker runs it")

        def full(q: RaggedTokens, mean: bool) -> Run:
            scores, rows = maxsim_full(q, self._corpus().chunks(), top_k, normalize_by_length=mean)
            return self._ranked(list(queries), scores, rows)

        return self._scored(queries, full)

    def rescore(self, queries: dict[str, str], candidates: Candidates) -> Searched:
        """Exact MaxSim of each query with its candidates only (indexed corpus, cached vectors)."""
        return self._scored(queries, lambda q, mean: self._rerank(q, list(queries), mean, candidates))

    def _scored(self, queries: dict[str, str], score: Callable[[RaggedTokens, bool], Run]) -> Searched:
        """`score(encoded queries, meanmaxsim?)`'s run, with the search's timings and index stats."""
        self._corpus()
        if not queries:
            return Searched({}, self._report({}))
        t0 = time.perf_counter()
        q = self.encode_queries(queries)
        t1 = time.perf_counter()
        run = score(q, self.model.similarity_fn_name == "meanmaxsim")
        stats = {
            "index": self._index_stats(float(q.lengths().mean())),
            "model_settings": self.model_settings(),
        }
        return Searched(
            run, self._report({"encode_queries_s": t1 - t0, "search_s": time.perf_counter() - t1}, stats)
        )

    def _rerank(self, q: RaggedTokens, qids: list[str], mean: bool, candidates: Candidates) -> Run:
        emb = self._corpus()
        position = {d: i for i, d in enumerate(self._doc_ids)}
        row_of = np.empty(len(emb.order), dtype=np.int64)
        row_of[emb.order] = np.arange(len(emb.order))
        picked = [row_of[np.asarray([position[d] for d in candidates.get(qid, ())], dtype=np.int64)]
                  for qid in qids]  # fmt: skip
        scored = maxsim_rerank(q, emb.chunks(), picked, normalize_by_length=mean)
        run: Run = {}
        for qid, by_row in zip(qids, scored, strict=True):
            best = sorted(by_row.items(), key=lambda x: -x[1])
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
            "token_dtype": self.spec.token_dtype,
        }


class MaxSimReranker(Reranker):
    """Two-stage late interaction: the corpus encoded (or its cached token vectors reused, the same
    as a full search's), then each query's candidates re-scored by exact MaxSim."""

    def __init__(self, spec: MultiVectorSpec, cache_dir=None):
        self.spec = spec
        self._retriever = MultiVectorRetriever(spec, cache_dir)

    def rerank(self, corpus: Corpus, queries: dict[str, str], candidates: Candidates) -> Searched:
        indexed: Report = self._retriever.index(corpus)
        searched = self._retriever.rescore(queries, candidates)
        return Searched(searched.run, indexed + searched.report)

    def close(self) -> None:
        self._retriever.close()
