"""From a `-m` argument and the run's options to a system's spec (`resolve`), and from a spec to the
retriever that runs it (`build`): lookups in the list of families (`families`), which does the work.

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
from ..checkpoints import (
    checkpoint_system,
    find_checkpoints,
    in_step_order,
    parse_checkpoint_system,
    step_of_folder,
)
from ..data.units import looks_like_path, missing_folder
from ..errors import Mistake, canonical, did_you_mean, isolated, unknown
from ..identity import variant_suffix
from . import families
from .base import Retriever
from .bm25 import BM25Config
from .dense import pair_name
from .families import ModelPair, Request
from .models import MODEL_MARKERS, system_name
from .presets import PRESETS
from .spec import SystemSpec

__all__ = ["ModelPair", "Request", "RetrieverOptions", "build", "make_retriever", "resolve", "resolve_named"]


@dataclass
class RetrieverOptions:
    """Options shared by all models of one `run`, flat.  A run builds them from the option groups
    (`gtr_eval.options.retriever_options`: the encoder, search, BM25, cache and progress values); both
    take their defaults from `gtr_eval.defaults`."""

    cache_dir: Path | None = None
    device: str | None = None
    dtype: str = defaults.DTYPE
    batch_size: int | None = None
    backend: str = defaults.BACKEND  # ONNX fp32 on a non-Intel CPU, else torch (`encoders.choose_backend`)
    query_prompt: str | None = None
    doc_prompt: str | None = None
    max_length: int | None = None
    trust_remote_code: bool = False
    bm25: BM25Config = field(default_factory=BM25Config)
    progress: bool = True
    shard_size: int = defaults.SHARD_SIZE
    cache_dtype: str = (
        defaults.CACHE_DTYPE
    )  # corpus vectors on disk: fp32, or fp16 (half the disk; scored in fp32)
    processes: int = (
        defaults.PROCESSES
    )  # corpus-encoding worker processes on `device` (cpu: threads split between them)
    devices: tuple[str, ...] | None = (
        None  # one worker per entry, e.g. ("cuda:0", "cuda:1"); wins over processes
    )
    score: str | None = None  # dense: "dot" or "cos"; None: the preset's, else the model's own, else cos
    # Learned sparse and late-interaction models (see sparse.py, multivector.py).
    family: str = (
        defaults.FAMILY
    )  # auto: the family the request names, or its preset's, or that detects its folder
    maxsim_search: str = (
        defaults.MAXSIM_SEARCH
    )  # late interaction: auto (full up to 200,000 documents) or full


# A hub id: `org/name` (one slash; letters, digits, `-`, `_`, `.`), not starting with `.` or `-`.
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w][\w.-]*")
# A `-m` holding a glob's wildcards (no hub id or preset does).
_GLOB = re.compile(r"[*?[]")


def check_request(request: Request, known: Iterable[str] | None = None) -> None:
    """`-m` must name a system a family answers to (bm25, bm25-flat / bm25-multifield, which the
    family checks: Lucene's extra installed), a preset, an existing folder or something shaped like a
    hub id (`org/name`): a typo, or a Lucene system without its extra, is a `Mistake` said in one line
    before anything is downloaded or loaded."""
    if isinstance(request, ModelPair):
        check_request(request.query, known)
        check_request(request.doc, known)
        return
    known = [*families.request_names(), *PRESETS] if known is None else list(known)
    if (family := families.by_request_name(request)) is not None and request.lower() in known:
        family.check(request)
        return
    if request in known or Path(request).expanduser().is_dir():
        return
    if request.startswith(("./", "../", "~", "/")) or (
        looks_like_path(request) and not HUB_ID.fullmatch(request)
    ):
        raise missing_folder(request, "model folder")
    if not HUB_ID.fullmatch(request):
        raise unknown("model", request, known, "run --help", other="or a model folder, or a hub id org/name")


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
        if families.detecting(folder) is not None:
            return [request]
        if found := find_checkpoints(folder):
            return [str(p) for p in found]
        raise Mistake(
            f"{request}: no model in this folder (no {' or '.join(MODEL_MARKERS)}) and no checkpoint-<N> "
            "folders in it"
        )
    if not _GLOB.search(request):  # a preset or family name, case aside: `GTR-T5-Base` is gtr-t5-base
        return [canonical(request, [*families.request_names(), *PRESETS]) or request]
    matches = [Path(p) for p in sorted(glob.glob(str(folder)))]
    models = [str(p) for p in matches if p.is_dir() and (families.detecting(p) or find_checkpoints(p))]
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
    if families.by_request_name(request) is not None:
        return request.lower()
    return system_name(request)


def resolve(request: Request, opts: RetrieverOptions, top_k: int = defaults.TOP_K) -> SystemSpec:
    """The spec of `request` (`bm25`, `bm25-flat`, a preset, a hub id, a local folder, a `ModelPair`),
    made by the family that runs it (`families.of_request`)."""
    return families.of_request(request, opts.family).resolve(request, opts, top_k)


def resolve_named(request: Request, opts: RetrieverOptions, top_k: int = defaults.TOP_K) -> SystemSpec:
    """`resolve`, its system named for what it is: the preset's name with default options, else that
    name with what changes its rankings (`identity.variant_suffix`): `bm25[k1=0.9]`,
    `all-MiniLM-L6-v2[max_length=128]`, a checkpoint `out[max_length=128]@step-1000`.  So a variant
    is stored beside its preset, never in its place."""
    spec = resolve(request, opts, top_k)
    preset = preset_options(opts)
    if opts == preset and top_k == defaults.TOP_K:
        return spec
    try:
        suffix = variant_suffix(resolve(request, preset), spec)
    except Exception as e:  # the preset itself does not resolve: the name stays (a refusal guards it)
        if not isolated(e):
            raise
        return spec
    checkpoint = parse_checkpoint_system(spec.system)
    if checkpoint is None:
        return replace(spec, system=spec.system + suffix)
    return replace(spec, system=checkpoint_system(checkpoint.run + suffix, checkpoint.step))


def preset_options(opts: RetrieverOptions) -> RetrieverOptions:
    """The default options, but for those that find the model and say where it runs (which only
    settings depend on): what a system's variant name is measured from."""
    return RetrieverOptions(cache_dir=opts.cache_dir, device=opts.device, family=opts.family,
                            trust_remote_code=opts.trust_remote_code, progress=opts.progress)  # fmt: skip


def build(spec: SystemSpec, cache_dir: Path | None = None) -> Retriever:
    """The retriever that runs `spec` (nothing is loaded until it indexes)."""
    return families.of_spec(spec).build(spec, cache_dir)


def make_retriever(request: Request, opts: RetrieverOptions, top_k: int = defaults.TOP_K) -> Retriever:
    """`build(resolve(...))`: a retriever for `request` (tests, benchmarks, `encode`)."""
    return build(resolve(request, opts, top_k), opts.cache_dir)
