"""The options of `run`, `rerank`, `fuse` and `encode`, declared once as groups of fields.

Each group is a frozen dataclass whose fields carry the default, the help text, the choices and (for
folders) the environment variable that stands in for a missing value.  Both faces are derived from
these fields: the click options of the commands (`cli.options.click_options`) and the keyword
parameters of `api.run`, `api.rerank`, `api.fuse` (`takes`), so the command line and the Python API
cannot disagree on a name or a default.  A field's name is the API parameter and the click
parameter alike; its flag is `--field-name` unless it says otherwise (`--no-download` sets
`download` to False, `--quiet` sets `progress` to False).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import Field, dataclass, field, fields
from pathlib import Path
from typing import Any

from . import defaults, fusion, paths
from .data import registry
from .retrieval.bm25 import BM25Config


def option(
    default: Any,
    help: str = "",
    *,
    choices: Sequence[str] | None = None,
    flag: str | None = None,
    minimum: int | None = None,
    kind: type | None = None,
    show: str | bool | None = None,
    metavar: str | None = None,
    folder: bool = False,
    env: str | None = None,
    flags: dict[str, str] | None = None,
) -> Any:
    """A field of an option group: its default and what its command-line option shows.

        `flag`: the option's name when not `--field-name`; a boolean field defaulting to True is a flag
        that sets it to False.  `kind`: the value's type on the command line (int, float; str when not
        given).  `minimum`: the smallest int accepted.  `show`: the default as `--help` shows it (True: the
        value itself).  `folder`: a folder path; `env`: the variable that gives it when it is None
    (read by `paths` when the command or function runs).  `flags`: one flag per choice (`--rrf`, `--minmax`),
        with its help, instead of one option taking a value."""
    meta = dict(help=help, choices=choices, flag=flag, minimum=minimum, kind=kind, show=show,
                metavar=metavar, folder=folder, env=env, flags=flags)  # fmt: skip
    return field(default=default, metadata=meta)


# ------------------------------------------------------------------------------------------ groups


@dataclass(frozen=True)
class DataGroup:
    """Where datasets come from."""

    data_dir: Path | str | None = option(
        None, "Where datasets are (and are downloaded to).", folder=True, env=paths.DATA_DIR_ENV,
        show=f"${paths.DATA_DIR_ENV} or ./{paths.DATA_DIR}",
    )  # fmt: skip
    split: str | None = option(None, "Evaluation split  [default: the dataset's, e.g. test; dev for msmarco]")
    download: bool = option(True, "Fail instead of downloading a missing dataset.", flag="--no-download")
    base_url: str | None = option(
        None, "Dataset mirror serving NAME.zip (default: $GTR_EVAL_BASE_URL, else BEIR's)."
    )
    source: str = option(
        "auto",
        "Where missing datasets come from: BEIR's zip server (ukp), the Hugging Face hub copies of BEIR "
        "(hf-beir), of NanoBEIR (hf-nanobeir) or MTEB's (hf-mteb); auto tries those a dataset has, in that "
        "order, and says when it falls back.",
        choices=("auto", *registry.SOURCES),
        show=True,
    )
    reduce_corpus: int | None = option(
        None,
        "Evaluate on a smaller corpus: the documents judged relevant plus BM25's top K per query "
        "(as NanoBEIR was built), stored as the dataset <name>~bm25top<K>, never as the full one; what the "
        "trainer evaluator's reduce_corpus does (docs/training.md).",
        kind=int,
        minimum=1,
        metavar="K",
    )

    def data_options(self):
        """The `data.units.DataOptions` these stand for, the data folder resolved (`paths.data_dir`)."""
        from .data.units import DataOptions

        return DataOptions(paths.data_dir(self.data_dir), split=self.split, download=self.download,
                           base_url=self.base_url, source=self.source)  # fmt: skip


@dataclass(frozen=True)
class ResultsGroup:
    """Where results are stored, and under which name."""

    results_dir: Path | str | None = option(
        None, "The results store.", folder=True, env=paths.RESULTS_DIR_ENV,
        show=f"${paths.RESULTS_DIR_ENV} or ./{paths.RESULTS_DIR}",
    )  # fmt: skip
    overwrite: bool = option(False, "Recompute pairs whose stored result was made otherwise.")
    name: str | None = option(None, "The new system's name.", metavar="NAME")

    def folder(self) -> Path:
        return paths.results_dir(self.results_dir)


@dataclass(frozen=True)
class CacheGroup:
    """Where embeddings, pair scores, indexes and corpus stores are cached."""

    cache_dir: Path | str | None = option(
        None,
        f"Cache of embeddings and pair scores  [default: ${paths.CACHE_DIR_ENV}, else the user cache dir "
        "(XDG_CACHE_HOME)]",
        folder=True,
        env=paths.CACHE_DIR_ENV,
    )
    no_cache: bool = option(False, "Encode into a temporary folder, removed afterwards.")

    def folder(self) -> Path | None:
        """The cache in use (None: none, a temporary folder), resolved by `paths.cache_dir`."""
        return paths.cache_dir(self.cache_dir, self.no_cache)


@dataclass(frozen=True)
class ProgressGroup:
    progress: bool = option(True, "No progress bars.", flag="--quiet")


@dataclass(frozen=True)
class EncoderGroup:
    """How a model runs and encodes (part of the embedding cache key: `run` and `encode` share them)."""

    device: str | None = option(None, "cpu, cuda, cuda:1, mps …  [default: cuda if available]")
    dtype: str = option(defaults.DTYPE, choices=("fp32", "fp16", "bf16"), show=True)
    batch_size: int | None = option(
        None, f"[default: the preset's, else {defaults.BATCH_SIZE}]", kind=int, minimum=1
    )
    backend: str = option(
        defaults.BACKEND,
        "auto: ONNX Runtime fp32 on a non-Intel CPU (same scores, about 2x faster; exported once, "
        "cached), torch on an Intel CPU (MKL is faster there), on a GPU, for --dtype fp16/bf16, for "
        "weights of 2 GiB or more, for separate query/document encoders, or if the export fails. "
        "onnx-int8: dynamic int8 (CPU; own cache key).",
        choices=("auto", "torch", "onnx", "onnx-int8", "openvino"),
        show=True,
    )
    query_prompt: str | None = option(None, "Prefix for queries  [default: the model family's known one]")
    doc_prompt: str | None = option(None, "Prefix for documents  [default: the model family's known one]")
    max_length: int | None = option(None, "Max tokens  [default: preset's or model's]", kind=int, minimum=1)
    trust_remote_code: bool = option(False, "Allow a model folder to run its own Python code.")
    shard_size: int = option(
        defaults.SHARD_SIZE,
        "Documents per embedding-cache shard (the unit an interrupted encode resumes from).",
        kind=int,
        minimum=1,
        show=True,
    )
    cache_dtype: str = option(
        defaults.CACHE_DTYPE,
        "How corpus vectors are stored in the cache: fp16 takes half the disk; scores are "
        "computed in fp32 either way (NDCG@10 within 1e-4 of fp32 on SciFact and NFCorpus).",
        choices=("fp32", "fp16"),
        show=True,
    )
    processes: int = option(
        defaults.PROCESSES,
        "Encode the corpus in N worker processes on --device (CPU threads are split between them).",
        kind=int,
        minimum=1,
        show=True,
    )
    devices: str | None = option(None, "One corpus-encoding worker per device, e.g. cuda:0,cuda:1.")
    family: str = option(
        defaults.FAMILY,
        "Model family; auto: from the preset or the model's files (docs/families.md).",
        choices=lambda: ("auto", *_family_names()),
        show=True,
    )


@dataclass(frozen=True)
class SearchGroup:
    """How a system searches (not part of the embedding cache key)."""

    score: str | None = option(
        None,
        "Dense score function  [default: the preset's, else the model's own, else cos]",
        choices=("dot", "cos"),
    )
    maxsim_search: str = option(
        defaults.MAXSIM_SEARCH,
        "Late interaction: auto searches corpora up to 200,000 documents by exact MaxSim; full any "
        "corpus.  Two-stage: gtr-eval rerank --run SYSTEM -m MODEL.",
        choices=("auto", "full"),
        show=True,
    )
    top_k: int = option(defaults.TOP_K, "Documents kept per query.", kind=int, minimum=1, show=True)


def _family_names() -> list[str]:
    from .retrieval import families  # the models' code: loaded only when the choices are read

    return families.names()


_BM25 = BM25Config()


@dataclass(frozen=True)
class BM25Group:
    """bm25s's parameters (their defaults are `BM25Config`'s: the published BEIR setting)."""

    bm25_k1: float = option(_BM25.k1, kind=float, show=True)
    bm25_b: float = option(_BM25.b, kind=float, show=True)
    bm25_method: str = option(
        _BM25.method, choices=("lucene", "robertson", "atire", "bm25l", "bm25+"), show=True
    )

    def config(self) -> BM25Config:
        return BM25Config(k1=self.bm25_k1, b=self.bm25_b, method=self.bm25_method)


@dataclass(frozen=True)
class RerankGroup:
    """How a cross-encoder re-ranks a stored run."""

    depth: int = option(
        defaults.RERANK_DEPTH,
        "Documents re-scored per query (BEIR: 100); those below are dropped.",
        kind=int,
        minimum=1,
        show=True,
    )
    pair_shard_size: int = option(
        defaults.SHARD_SIZE,
        "Pairs per score-cache shard (the unit an interrupted re-ranking resumes from).",
        kind=int,
        minimum=1,
        show=True,
    )


@dataclass(frozen=True)
class FuseGroup:
    """How stored runs are fused."""

    method: str = option(
        "rrf",
        flags={
            "rrf": "Reciprocal rank fusion (the default).",
            "minmax": "Min-max normalised weighted sum.",
            "zscore": "Z-score normalised weighted sum.",
        },
    )
    k: int = option(fusion.RRF_K, "RRF's k.", kind=int, minimum=0, show=True)
    weights: Sequence[float] | None = option(
        None,
        "Weights of --minmax/--zscore, in SYSTEMS order  [default: equal, summing to 1]",
        metavar="W1,W2,…",
    )


# ------------------------------------------------------------- which command takes which fields


def pick(group: type, only: Iterable[str] | None = None, without: Iterable[str] = ()) -> tuple[Field, ...]:
    """Fields of `group`: all of them, those named in `only`, less those in `without`."""
    chosen = [f for f in fields(group) if f.name not in set(without)]
    if only is not None:
        by_name = {f.name: f for f in chosen}
        chosen = [by_name[n] for n in only]
    return tuple(chosen)


ENCODE = (*pick(DataGroup, without=["reduce_corpus"]), *pick(CacheGroup), *pick(ProgressGroup),
          *pick(EncoderGroup))  # fmt: skip
"""`encode`'s options: those of `run` that decide what lands in the embedding cache."""
RUN = (*pick(DataGroup), *pick(ResultsGroup), *pick(CacheGroup), *pick(ProgressGroup), *pick(EncoderGroup),
       *pick(SearchGroup), *pick(BM25Group))  # fmt: skip
"""`run`'s options (and `api.run`'s, `api.plan`'s and `api.run_config`'s parameters)."""
CROSS_ENCODER = pick(EncoderGroup, only=["device", "dtype", "batch_size", "max_length", "trust_remote_code"])
RERANK = (*pick(RerankGroup), *pick(DataGroup, without=["reduce_corpus"]), *pick(ResultsGroup),
          *CROSS_ENCODER, *pick(CacheGroup), *pick(ProgressGroup))  # fmt: skip
"""`rerank`'s options (and `api.rerank`'s parameters)."""
FUSE = (*pick(FuseGroup), *pick(SearchGroup, only=["top_k"]), *pick(DataGroup, without=["reduce_corpus"]),
        *pick(ResultsGroup), *pick(CacheGroup), *pick(ProgressGroup))  # fmt: skip
"""`fuse`'s options (and `api.fuse`'s parameters)."""


def group(cls: type, values: dict[str, Any]):
    """The `cls` group holding those of `values` that are its fields (the others at their defaults)."""
    return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})


def retriever_options(values: dict[str, Any]):
    """The `RetrieverOptions` of a run made of the encoder, search, BM25, cache and progress values."""
    from .retrieval.factory import RetrieverOptions

    taken = {f.name: values[f.name] for f in (*pick(EncoderGroup), *pick(SearchGroup, without=["top_k"]))
             if f.name in values}  # fmt: skip
    return RetrieverOptions(cache_dir=group(CacheGroup, values).folder(), progress=values.get("progress", True),
                            bm25=group(BM25Group, values).config(), **taken)  # fmt: skip


# ------------------------------------------------------------------------------ the API's face


def parameters(options: Iterable[Field]) -> list[inspect.Parameter]:
    """The options as keyword-only parameters, with their defaults and types."""
    kw = inspect.Parameter.KEYWORD_ONLY
    return [inspect.Parameter(f.name, kw, default=f.default, annotation=f.type) for f in options]


def takes(options: Iterable[Field]) -> Callable[[Callable], Callable]:
    """Give a function `f(positional…, *, extra…, **options)` the options as explicit keyword
    parameters: its signature lists each with its default, a call is checked against it (an unknown
    name is a TypeError, as for any function) and `f` receives every option, defaults filled in."""
    options = tuple(options)

    def decorate(func: Callable) -> Callable:
        own = inspect.signature(func).parameters.values()
        kept = [p for p in own if p.kind is not inspect.Parameter.VAR_KEYWORD]
        first = [p for p in kept if p.kind is not inspect.Parameter.KEYWORD_ONLY]
        extra = [p for p in kept if p.kind is inspect.Parameter.KEYWORD_ONLY]
        signature = inspect.signature(func).replace(parameters=[*first, *parameters(options), *extra])

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            return func(**bound.arguments)

        wrapper.__signature__ = signature  # type: ignore[attr-defined]
        return wrapper

    return decorate
