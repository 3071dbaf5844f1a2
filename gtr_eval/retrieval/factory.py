"""From a `-m` argument and the run's options to a system's spec (`resolve`), and from a spec to the
retriever that runs it (`build`).

Resolving finds the model (local folder, hub cache, else a download), fingerprints its weights and
reads its settings from its files; nothing is loaded, so a sweep decides which pairs are done from
specs alone and builds a retriever only for a pair it computes.
"""

from __future__ import annotations

import glob
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from itertools import groupby
from pathlib import Path

from .. import defaults
from ..checkpoints import find_checkpoints, in_step_order, step_of_folder
from ..data.units import looks_like_path, missing_folder
from ..errors import Mistake, did_you_mean
from .base import Retriever
from .bm25 import BM25Config, BM25Retriever, BM25Spec
from .dense import DenseConfig, DenseRetriever, DenseSpec, pair_name, resolve_dense
from .encoders import default_device
from .lucene import CONDITIONS, LuceneRetriever, LuceneSpec, is_lucene, resolve_lucene, runtime
from .models import FAMILIES, MODEL_MARKERS, holds_model, model_family, system_name
from .multivector import MultiVectorConfig, MultiVectorRetriever, MultiVectorSpec, resolve_multivector
from .presets import PRESETS
from .sparse import SparseConfig, SparseRetriever, SparseSpec, resolve_sparse
from .spec import SystemSpec


@dataclass(frozen=True)
class ModelPair:
    """`--query-model Q --doc-model D`: one asymmetric system, queries encoded by Q, documents by D."""

    query: str
    doc: str

    def __str__(self) -> str:
        return f"{self.query} (queries) + {self.doc} (documents)"


Request = str | ModelPair


@dataclass
class RetrieverOptions:
    """Options shared by all models of one `run`, flat.  A run builds them from the option groups
    (`gtr_eval.options.retriever_options`: the encoder, search, BM25, cache and progress values), whose
    defaults these repeat (tests/test_options.py holds them equal)."""

    cache_dir: Path | None = None
    device: str | None = None
    dtype: str = "fp32"
    batch_size: int | None = None
    backend: str = "auto"  # ONNX fp32 on a non-Intel CPU, else torch (`encoders.choose_backend`)
    query_prompt: str | None = None
    doc_prompt: str | None = None
    max_length: int | None = None
    trust_remote_code: bool = False
    bm25: BM25Config = field(default_factory=BM25Config)
    progress: bool = True
    shard_size: int = defaults.SHARD_SIZE
    cache_dtype: str = "fp32"  # corpus vectors on disk: fp32, or fp16 (half the disk; scored in fp32)
    processes: int = 1  # corpus-encoding worker processes on `device` (cpu: threads split between them)
    devices: tuple[str, ...] | None = (
        None  # one worker per entry, e.g. ("cuda:0", "cuda:1"); wins over processes
    )
    score: str | None = None  # dense: "dot" or "cos"; None: the preset's, else the model's own, else cos
    # Learned sparse and late-interaction models (see sparse.py, multivector.py).
    family: str = "auto"  # auto: from the preset or the model's files (models.detect_family)
    candidates: str | None = None  # re-rank this system's stored run (late interaction: two-stage)
    depth: int = defaults.CANDIDATE_DEPTH  # candidates per query taken from that run
    maxsim_search: str = "auto"  # late interaction: auto, full or rerank


# A hub id: `org/name` (one slash; letters, digits, `-`, `_`, `.`), not starting with `.` or `-`.
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w][\w.-]*")
# A `-m` holding a glob's wildcards (no hub id or preset does).
_GLOB = re.compile(r"[*?[]")


def check_request(request: Request, known: Iterable[str] | None = None) -> None:
    """`-m` must name bm25, bm25-flat / bm25-multifield (Lucene: their extra installed), a preset, an
    existing folder or something shaped like a hub id (`org/name`): a typo, or a Lucene system without
    its extra, is a `Mistake` said in one line before anything is downloaded or loaded."""
    if isinstance(request, ModelPair):
        check_request(request.query, known)
        check_request(request.doc, known)
        return
    known = ["bm25", *CONDITIONS, *PRESETS] if known is None else list(known)
    if is_lucene(request) and request.lower() in known:
        runtime(request.lower())  # the lucene extra missing: said now, in one line, before any work
        return
    if request.lower() == "bm25" or request in known or Path(request).expanduser().is_dir():
        return
    if request.startswith(("./", "../", "~", "/")) or (
        looks_like_path(request) and not HUB_ID.fullmatch(request)
    ):
        raise missing_folder(request, "model folder")
    if not HUB_ID.fullmatch(request):
        raise Mistake(
            f"unknown model {request!r}{did_you_mean(request, known)} (known: {', '.join(known)}; or a model "
            "folder, or a Hugging Face hub id org/name)"
        )


def expand_requests(requests: Iterable[Request]) -> list[Request]:
    """Each `-m` as the models it stands for: a glob (`'out/checkpoint-*'`, quoted so the shell leaves
    it) its matching model folders, a trainer's output folder with no model of its own its
    `checkpoint-<N>` folders, anything else itself; checkpoints of a run side by side (a glob the
    shell expanded, in name order) in step order.  Each checkpoint is then a system `RUN@step-N`
    (`models.system_name`).  A glob matching no model folder, or a folder holding neither a model nor
    checkpoints, is a `Mistake`, said before any work."""
    expanded = [model for request in requests for model in _expand(request)]
    ordered: list[Request] = []
    for is_checkpoint, group in groupby(expanded, key=_is_checkpoint):
        members = list(group)
        ordered += in_step_order(members) if is_checkpoint else members  # type: ignore[arg-type]
    return ordered


def _is_checkpoint(request: Request) -> bool:
    return isinstance(request, str) and step_of_folder(request) is not None


def _expand(request: Request) -> list[Request]:
    if not isinstance(request, str):
        return [request]
    folder = Path(request).expanduser()
    if folder.is_dir():
        if holds_model(folder):
            return [request]
        if found := find_checkpoints(folder):
            return [str(p) for p in found]
        raise Mistake(
            f"{request}: no model in this folder (no {' or '.join(MODEL_MARKERS)}) and no checkpoint-<N> "
            "folders in it"
        )
    if not _GLOB.search(request):
        return [request]
    matches = [Path(p) for p in sorted(glob.glob(str(folder)))]
    models = [str(p) for p in matches if p.is_dir() and (holds_model(p) or find_checkpoints(p))]
    if not models:
        raise _no_match(request)
    return [model for m in models for model in _expand(m)]


def _no_match(pattern: str) -> Mistake:
    """A glob that matches no model folder, with what is there: the checkpoints of the folder it
    looks in, else the folder closest to its first wildcard part or to the folder that is missing."""
    parts = Path(pattern).expanduser().parts
    fixed = next(i for i, part in enumerate(parts) if _GLOB.search(part))
    base = Path(*parts[:fixed]) if fixed else Path(".")
    if not base.is_dir():
        return Mistake(f"{pattern}: no model folder matches ({missing_folder(str(base))})")
    if found := find_checkpoints(base):
        steps = found[0].name + (f" … {found[-1].name}" if len(found) > 1 else "")
        return Mistake(f"{pattern}: no model folder matches ({base} holds {len(found)} checkpoints: {steps})")
    near = did_you_mean(parts[fixed], [p.name for p in base.iterdir() if p.is_dir()])
    return Mistake(f"{pattern}: no model folder matches{near}")


def system_of(request: Request) -> str:
    """The name `request`'s results are stored under, without resolving anything (for failure lines)."""
    if isinstance(request, ModelPair):
        return pair_name(request.query, request.doc)
    if request.lower() == "bm25" or is_lucene(request):
        return request.lower()
    return system_name(request)


def resolve(request: Request, opts: RetrieverOptions, top_k: int = defaults.TOP_K) -> SystemSpec:
    """The spec of `bm25`, `bm25-flat` / `bm25-multifield`, a preset, a hub id, a local folder, or a
    `ModelPair`."""
    if isinstance(request, str) and request.lower() == "bm25":
        return BM25Spec(system="bm25", bm25=opts.bm25, top_k=top_k, progress=opts.progress)
    if is_lucene(request):
        return resolve_lucene(request, top_k, opts.progress)
    pair = request if isinstance(request, ModelPair) else None
    model = pair.doc if pair else request
    family = "dense" if pair else (model_family(model) if opts.family == "auto" else opts.family)
    if family not in FAMILIES:
        raise ValueError(f"family must be auto or one of {', '.join(FAMILIES)}, not {family!r}")
    common = dict(
        model=model,
        query_prompt=opts.query_prompt,
        doc_prompt=opts.doc_prompt,
        max_length=opts.max_length,
        batch_size=opts.batch_size,
        device=_single_device(opts) or opts.device,
        dtype=opts.dtype,
        trust_remote_code=opts.trust_remote_code,
        shard_size=opts.shard_size,
        progress=opts.progress,
    )
    if family == "dense":
        cfg = DenseConfig(**common, query_model=pair.query if pair else None, score=opts.score,
                          backend=opts.backend, cache_dtype=opts.cache_dtype, devices=_worker_devices(opts))  # fmt: skip
        spec: SystemSpec = resolve_dense(cfg, export_dir=_export_dir(opts))
    else:
        _check_family_options(family, model, opts)
        if family == "sparse":
            spec = resolve_sparse(SparseConfig(**common))
        else:
            spec = resolve_multivector(
                MultiVectorConfig(
                    **common, search=opts.maxsim_search, candidates=opts.candidates, depth=opts.depth
                )
            )
    return replace(spec, top_k=top_k)


def build(spec: SystemSpec, cache_dir: Path | None = None) -> Retriever:
    """The retriever that runs `spec` (nothing is loaded until it indexes)."""
    if isinstance(spec, BM25Spec):
        return BM25Retriever(spec, cache_dir=cache_dir)
    if isinstance(spec, LuceneSpec):
        return LuceneRetriever(spec, cache_dir=cache_dir)
    if isinstance(spec, DenseSpec):
        return DenseRetriever(spec, cache_dir=cache_dir)
    if isinstance(spec, SparseSpec):
        return SparseRetriever(spec, cache_dir=cache_dir)
    if isinstance(spec, MultiVectorSpec):
        return MultiVectorRetriever(spec, cache_dir=cache_dir)
    raise TypeError(f"no retriever runs a {type(spec).__name__}")


def make_retriever(request: Request, opts: RetrieverOptions, top_k: int = defaults.TOP_K) -> Retriever:
    """`build(resolve(...))`: a retriever for `request` (tests, benchmarks, `encode`)."""
    return build(resolve(request, opts, top_k), opts.cache_dir)


def _export_dir(opts: RetrieverOptions) -> Path | None:
    return Path(opts.cache_dir) / "onnx" if opts.cache_dir is not None else None


def _check_family_options(family: str, model: str, opts: RetrieverOptions) -> None:
    """Options only dense models take (sparse and late-interaction models encode in-process with torch)."""
    if opts.backend not in ("auto", "torch"):  # auto settles on torch for these families
        raise ValueError(f"{model}: {family} models run with --backend torch, not {opts.backend}")
    if opts.cache_dtype != "fp32":
        raise ValueError(
            f"{model}: --cache-dtype is for dense vectors ({family} caches have their own layout)"
        )
    if _worker_devices(opts):
        raise ValueError(
            f"{model}: {family} models encode in-process; use --device, or --shard jobs of `gtr-eval encode`"
        )


def _listed_devices(opts: RetrieverOptions) -> tuple[str, ...]:
    devices = opts.devices.split(",") if isinstance(opts.devices, str) else (opts.devices or ())
    return tuple(d.strip() for d in devices if d.strip())


def _single_device(opts: RetrieverOptions) -> str | None:
    devices = _listed_devices(opts)
    return devices[0] if len(devices) == 1 else None


def _worker_devices(opts: RetrieverOptions) -> tuple[str, ...] | None:
    if opts.devices:
        devices = _listed_devices(opts)
        return devices if len(devices) > 1 else None  # one device: encode in-process on it
    if opts.processes > 1:
        return (opts.device or default_device(),) * opts.processes
    return None
