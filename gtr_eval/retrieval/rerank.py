"""Re-rankers (`base.Reranker`: re-score the top `depth` documents of a stored run, BEIR's protocol),
and the cross-encoder's scoring of (query, document) pairs with its resumable pair-score cache.

`rerank -m MODEL` takes a cross-encoder (`CrossEncoderReranker`) or a late-interaction model
(exact MaxSim, `multivector.MaxSimReranker`); which one a model is comes from its files
(`reranker_family`), and a bi-encoder is refused: it scores queries and documents apart, so it
searches (`run`) rather than re-ranks.

Scores are `CrossEncoder.predict` as the library computes it, with the model's own default
activation (raw logits for the ms-marco cross-encoders, whose config names Identity; Sigmoid for a
one-logit head that names none): the harness applies nothing of its own.

The cache is content-addressed twice over.  An entry per model setting (weights sha256, max length, dtype;
the activation is the model's own, fixed by its files) holds *jobs*; a job is the list of pairs one re-ranking had to score, each pair
named by a hash of its query text and document text, scored in shards of float32 with the embedding
cache's machinery (`cache.encode_sharded`: atomic shards, sha256 sidecars, one lock per shard).  A
later re-ranking looks every pair up in the finished jobs and scores only the rest as a new job, so
re-ranking another first stage, or to another depth, reuses every pair already scored; a re-ranking
killed mid-way finds its own unfinished job (same missing pairs, same name) and resumes at its last
complete shard.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .. import defaults
from .. import progress as bars
from ..artifacts import CacheRoot
from ..data.loader import Corpus
from ..errors import Mistake
from ..identity import cache_fields, ranking, setting
from ..io import atomic_write_bytes, atomic_write_json
from . import families
from .base import TEXT_FORMAT, Candidates, Report, Reranker, Run, Searched
from .cache import encode_sharded, read_complete
from .encoded import model_fields, run_fields
from .encoders import default_device
from .loaders import DTYPES, load_cross_encoder
from .models import resolve_model, system_name
from .multivector import MultiVectorConfig, resolve_multivector
from .presets import CROSS_ENCODERS, PRESETS
from .spec import SystemSpec
from .weights import weights_fingerprint

PAIR_FORMAT = f"(query text, {TEXT_FORMAT})"
HASH_BYTES = 16
Pair = tuple[str, str]


@dataclass
class CrossEncoderConfig:
    """What was asked for one re-ranker (`rerank -m MODEL` and its options); a late-interaction
    model takes the same ones (its corpus shards are `run`'s, so a full search's cache is reused)."""

    model: str
    revision: str | None = None
    max_length: int | None = None  # None: the model's own (its tokenizer's limit)
    batch_size: int | None = None  # None: 64 for a cross-encoder, the preset's or 32 for late interaction
    device: str | None = None
    dtype: str = defaults.DTYPE
    trust_remote_code: bool = False
    shard_size: int = (
        defaults.SHARD_SIZE
    )  # pairs per cache shard: the unit an interrupted re-ranking resumes from
    progress: bool = True


@dataclass(frozen=True, kw_only=True)
class RerankSpec(SystemSpec):
    """A cross-encoder re-scoring the top `depth` documents of a stored run (`inputs`); documents
    below the depth are dropped, as in BEIR's `Rerank`, so `top_k` is the depth."""

    retriever: str = "rerank"
    model: str = setting("")
    model_path: str = setting("")
    hub_id: str | None = setting(None)
    revision: str | None = setting(None)
    preset: str | None = setting(None)
    weights_sha256: str = ranking("", caches=("pairs",))
    max_length: int | None = ranking(None, caches=("pairs",))
    dtype: str = ranking("fp32", caches=("pairs",))
    pair_format: str = ranking(PAIR_FORMAT, caches=("pairs",))
    depth: int = defaults.RERANK_DEPTH
    candidates: str = setting("")  # the first stage's system (its run is in `inputs`)
    below_depth: str = setting("dropped (BEIR's Rerank returns only the re-ranked top-k)")
    batch_size: int = setting(defaults.BATCH_SIZE)
    device: str | None = setting(None)
    trust_remote_code: bool = setting(False)
    shard_size: int = setting(defaults.SHARD_SIZE)
    progress: bool = setting(True)


def resolve_cross_encoder(
    c: CrossEncoderConfig,
    candidates: str,
    depth: int,
    name: str | None = None,
    cache: CacheRoot | None = None,
) -> RerankSpec:
    """The spec of `candidates>>MODEL`: the cross-encoder found and fingerprinted, nothing loaded."""
    if c.dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, not {c.dtype!r}")
    if depth < 1:
        raise ValueError(f"depth must be >= 1, not {depth}")
    source = resolve_model(CROSS_ENCODERS.get(c.model, c.model), c.revision)
    return RerankSpec(
        system=name or rerank_name(candidates, system_name(c.model)),
        **model_fields(source, weights_fingerprint(source.path, cache), c.model),
        max_length=c.max_length,
        depth=depth,
        top_k=depth,
        candidates=candidates,
        **run_fields(c, None, defaults.BATCH_SIZE),
    )


def rerank_name(candidates: str, model_name: str) -> str:
    return f"{candidates}>>{model_name}"


def reranker_family(model: str, revision: str | None = None) -> str:
    """`cross-encoder` or `multivector` (late interaction); a bi-encoder or a learned sparse model is
    a `Mistake`, said in one line before anything loads."""
    if model in CROSS_ENCODERS or model in CROSS_ENCODERS.values():
        return "cross-encoder"
    family = families.of_request(model, "auto", revision).name
    if family == "multivector":
        return family
    if family == "sparse":
        raise Mistake(f"rerank: {model} is a learned sparse model; re-rank with a cross-encoder or a "
                      f"late-interaction model, or search with gtr-eval run -m {model}")  # fmt: skip
    if model in PRESETS or _bi_encoder_files(resolve_model(model, revision).path):
        raise Mistake(f"rerank: {model} is a bi-encoder (it encodes queries and documents apart), not a "
                      "re-ranker (a cross-encoder or a late-interaction model): search with `gtr-eval run -m "
                      f"{model}` and combine with `gtr-eval fuse`, or re-rank with a cross-encoder "
                      "(e.g. ms-marco-MiniLM-L6-v2)")  # fmt: skip
    return "cross-encoder"


def _bi_encoder_files(path: Path) -> bool:
    """A sentence-transformers save (modules.json) of anything but a CrossEncoder."""
    try:
        config = json.loads((path / "config_sentence_transformers.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        config = {}
    model_type = config.get("model_type") if isinstance(config, dict) else None
    return (path / "modules.json").is_file() and model_type != "CrossEncoder"


def resolve_reranker(
    c: CrossEncoderConfig,
    candidates: str,
    depth: int,
    name: str | None = None,
    cache: CacheRoot | None = None,
) -> SystemSpec:
    """The spec of `candidates>>MODEL`, for the re-ranker family `c.model` is (nothing loaded)."""
    if reranker_family(c.model, c.revision) == "cross-encoder":
        return resolve_cross_encoder(c, candidates, depth, name, cache)
    mv = MultiVectorConfig(model=c.model, revision=c.revision, max_length=c.max_length, batch_size=c.batch_size,
                           device=c.device, dtype=c.dtype, trust_remote_code=c.trust_remote_code,
                           name=name or rerank_name(candidates, system_name(c.model)), progress=c.progress)  # fmt: skip
    spec = resolve_multivector(mv, cache, candidates, depth)
    return replace(spec, top_k=depth)  # below the depth: dropped, as for a cross-encoder


def build_reranker(spec: SystemSpec, cache_dir: Path | None = None) -> Reranker:
    """The re-ranker that runs `spec` (nothing is loaded until it re-ranks)."""
    if isinstance(spec, RerankSpec):
        return CrossEncoderReranker(spec, cache_dir)
    if (reranker := families.of_spec(spec).reranker(spec, cache_dir)) is None:
        raise TypeError(f"no re-ranker runs a {type(spec).__name__}")
    return reranker


class CrossEncoderReranker(Reranker):
    """One cross-encoder: `rerank` scores each query's candidates as (query text, document text)
    pairs; `score(pairs)` goes through the cache, `predict(pairs)` straight to the library."""

    def __init__(self, spec: RerankSpec, cache_dir: Path | None = None):
        self.spec = spec
        self.cache_dir = cache_dir
        self.progress = spec.progress
        self._model = None
        self._load_s = 0.0

    @property
    def name(self) -> str:
        return self.spec.system

    @property
    def model(self):
        if self._model is None:
            t0 = time.perf_counter()
            s = self.spec
            self._model = load_cross_encoder(
                s.model_path, s.device or default_device(), s.dtype, s.max_length, s.trust_remote_code
            )
            self._load_s += time.perf_counter() - t0
        return self._model

    def activation(self) -> str:
        fn = self.model.activation_fn
        return f"{type(fn).__module__}.{type(fn).__qualname__}"

    def predict(self, pairs: Sequence[Pair]) -> np.ndarray:
        """The library's own scores, one float32 per pair (no cache)."""
        if not pairs:
            return np.zeros(0, dtype=np.float32)
        # A batch at a time, so the progress line moves per batch; longest first, as the library
        # orders one call's pairs, so batches of similar length waste little on padding.
        order = np.argsort([-(len(q) + len(d)) for q, d in pairs], kind="stable")
        out = np.empty(len(pairs), dtype=np.float32)
        size = self.spec.batch_size
        for start in range(0, len(pairs), size):
            rows = order[start : start + size]
            batch = [list(pairs[i]) for i in rows]
            scores = self.model.predict(
                batch, batch_size=size, show_progress_bar=False, convert_to_numpy=True
            )
            out[rows] = np.asarray(scores, dtype=np.float32).reshape(len(batch))
            bars.tick(len(batch))
        return out

    def key(self) -> dict:
        """Everything that changes a pair's score: the spec's fields that key the pair cache."""
        return {"kind": "cross-encoder pair scores", **cache_fields(self.spec, "pairs")}

    def score(self, pairs: Sequence[Pair], desc: str = "score pairs") -> tuple[np.ndarray, Report]:
        """Scores of `pairs` (in order), each distinct pair computed once and cached."""
        t0 = time.perf_counter()
        cache = PairScoreCache(self.cache_dir, self.key(), self.spec.shard_size)
        scores, stats = cache.scores(pairs, self.predict, desc=desc, progress=self.progress)
        timings = {"score_pairs_s": time.perf_counter() - t0}
        if self._load_s:
            timings["load_model_s"], self._load_s = self._load_s, 0.0
        if self._model is not None:
            stats = {
                **stats,
                "activation": self.activation(),
                "max_seq_length": int(self._model.max_seq_length),
            }
        return scores, Report(timings, {"pair_stats": stats})

    def rerank(self, corpus: Corpus, queries: dict[str, str], candidates: Candidates) -> Searched:
        ids = [(q, d) for q in queries for d in candidates.get(q, ())]
        texts = [(queries[q], corpus.text(corpus.index_of(d))) for q, d in ids]
        scores, report = self.score(texts, desc=f"{self.name}: score pairs")
        run: Run = {}
        for (q, d), s in zip(ids, scores.tolist(), strict=True):
            run.setdefault(q, {})[d] = float(s)
        return Searched(run, report)


# ------------------------------------------------------------------------------------- pair cache


def pair_hashes(pairs: Sequence[Pair]) -> np.ndarray:
    """One 16-byte digest per (query text, document text) pair (dtype V16), each text hashed once."""
    digests: dict[str, bytes] = {}

    def h(text: str) -> bytes:
        d = digests.get(text)
        if d is None:
            d = digests[text] = hashlib.sha256(text.encode("utf-8")).digest()
        return d

    out = b"".join(hashlib.sha256(h(q) + h(d)).digest()[:HASH_BYTES] for q, d in pairs)
    return np.frombuffer(out, dtype=f"V{HASH_BYTES}")


class PairScoreCache:
    """Finished jobs are looked up; the missing pairs are scored as one (resumable) job."""

    def __init__(self, cache_dir: Path | None, key: dict, shard_size: int = defaults.SHARD_SIZE):
        self.key = key
        self.shard_size = shard_size
        self.root = None if cache_dir is None else CacheRoot(Path(cache_dir)).entry("pair-scores", key)

    def scores(
        self,
        pairs: Sequence[Pair],
        predict: Callable[[Sequence[Pair]], np.ndarray],
        desc: str = "score pairs",
        progress: bool = True,
    ) -> tuple[np.ndarray, dict[str, int]]:
        hashes = pair_hashes(pairs)
        uniq, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
        values = np.full(len(uniq), np.nan, dtype=np.float32)
        found = self._lookup(uniq, values)
        missing = np.flatnonzero(~found)
        missing = missing[np.argsort(first[missing], kind="stable")]  # in the order the pairs came
        stats = {"pairs": len(pairs), "distinct_pairs": len(uniq), "pairs_reused": int(found.sum()),
                 "pairs_scored": 0, "shards_encoded": 0, "shards_reused": 0}  # fmt: skip
        if len(missing):
            rows = first[missing]  # positions in `pairs`
            job = self._job(uniq[missing])  # None without a cache: a temporary folder instead
            emb = encode_sharded(
                texts=lambda idx: [pairs[int(i)] for i in rows[idx]],
                order=np.arange(len(rows)),
                encode=lambda chunk: predict(chunk).reshape(-1, 1),
                key={**self.key, "rows": len(rows), "shard_size": self.shard_size},
                cache_dir=None,
                folder=job,
                shard_size=self.shard_size,
                desc=desc,
                progress=progress,
                unit="pair",
                what="pair score",
            )
            try:
                values[missing] = emb.matrix()[:, 0]
            finally:
                emb.close()
            stats.update(pairs_scored=len(rows), shards_encoded=emb.stats.shards_encoded,
                         shards_reused=emb.stats.shards_reused)  # fmt: skip
        elif progress:  # every pair was scored before: the stage says so
            with bars.bar(len(pairs), desc, "pair") as done:
                bars.served(done, len(pairs))
        return values[inverse.reshape(-1)], stats

    def _lookup(self, uniq: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Fill `values` from every finished job; returns which of `uniq` were found."""
        found = np.zeros(len(uniq), dtype=bool)
        if self.root is None or not (self.root / "jobs").is_dir():
            return found
        for folder in sorted((self.root / "jobs").iterdir()):
            done = _finished_job(folder)
            if done is None:
                continue
            keys, scores = done
            pos = np.searchsorted(uniq, keys)
            ok = pos < len(uniq)
            ok[ok] = uniq[pos[ok]] == keys[ok]
            values[pos[ok]] = scores[ok]
            found[pos[ok]] = True
        return found

    def _job(self, hashes: np.ndarray) -> Path | None:
        """The folder of the job scoring `hashes` (named by them: a restart finds the same one)."""
        if self.root is None:
            return None
        digest = hashlib.sha256(hashes.tobytes() + f"/{self.shard_size}".encode()).hexdigest()
        folder = self.root / "jobs" / digest
        if not (folder / "job.json").is_file():  # written last: with it, pairs.npy is complete
            buf = io.BytesIO()
            np.save(buf, hashes.view(np.uint8).reshape(len(hashes), HASH_BYTES), allow_pickle=False)
            atomic_write_bytes(folder / "pairs.npy", buf.getvalue())
            atomic_write_json(folder / "job.json", {"rows": len(hashes), "shard_size": self.shard_size})
        return folder


def _finished_job(folder: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(pair hashes, scores) of a job whose every shard is complete; None otherwise."""
    try:
        meta = json.loads((folder / "job.json").read_text())
        keys = np.load(folder / "pairs.npy", allow_pickle=False)
        rows, shard_size = int(meta["rows"]), int(meta["shard_size"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if keys.dtype != np.uint8 or keys.shape != (rows, HASH_BYTES):
        return None
    scores = read_complete(folder, rows, shard_size)
    if scores is None or scores.shape != (rows, 1):
        return None
    return np.ascontiguousarray(keys).view(f"V{HASH_BYTES}").reshape(rows), scores[:, 0]
