"""`run --plan`: what a sweep will download, what is already done, and roughly how long the rest takes.

Nothing is loaded. Sizes come from the registry (documents, queries, average lengths in words, zip
sizes); each system is resolved as `run` resolves it and priced by its family (`families.Family.cost`:
model sizes from the presets or the model folder's safetensors headers), so the plan costs the
settings the run will use; a model not on this machine yet is priced by its preset's published sizes.
Times come from a compute model: encoding costs 2 × (parameters outside the embeddings) FLOPs per token, exact search
2 × dimension FLOPs per (query, document), and each device does an effective number of FLOP/s:

- CPU: measured on this project's CI machine type (2-core AMD EPYC, torch 2.13.0, fp32) by the
  committed benchmark records (`benchmarks/results/*.json`) and results (`results/bm25/*.json`);
  the arithmetic is spelled out beside each constant below.
- GPU: assumed, not measured (the CI machine has none): a third of an A100's dense fp16 tensor-core
  peak (312 TFLOP/s) in fp16/bf16, two thirds of its fp32 peak (19.5 TFLOP/s) in fp32. An H100 is
  faster; a smaller GPU slower.

Real throughput also depends on padding, attention (ignored here) and the disk. On the CPU the
model predicts 18.5 documents/s for all-MiniLM-L6-v2 on SciFact where an independent run measured
16.1 (benchmarks/results/parallel.json, 1,000 documents): take CPU hours as good to a factor of
two, GPU hours as an order of magnitude.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from tabulate import tabulate

from .. import defaults
from ..artifacts import CacheRoot
from ..data import registry
from ..data.units import DataOptions, Selection, folder_units, unit_names
from ..errors import isolated
from ..results import ResultsStore
from ..retrieval import families, presets
from ..retrieval import models as model_registry
from ..retrieval.backends import ONNX_MAX_BYTES
from ..retrieval.bm25 import BM25_WORDS_PER_S
from ..retrieval.factory import ModelPair, Request, RetrieverOptions, resolve_named, system_of
from ..retrieval.families import Cost, Encoding
from ..retrieval.lucene import LUCENE_WORDS_PER_S
from ..retrieval.spec import SystemSpec
from .reduction import built_count, reduced_name
from .runner import RunConfig

# all-MiniLM-L6-v2's WordPiece tokens per whitespace word on SciFact (1.571) and NFCorpus (1.529).
TOKENS_PER_WORD = 1.55
MINILM = presets.PRESETS["all-MiniLM-L6-v2"]
# benchmarks/results/dense_e2e.epyc.json (AMD EPYC): all-MiniLM-L6-v2, torch fp32, batch 128, 2 threads, encoded
# SciFact's 5,183 documents (213.63 words each, 256-token limit) in 280.27 s: ≈ 1.0e11 FLOP/s.
CPU_FLOPS = 5_183 * min(213.63 * TOKENS_PER_WORD, 256) * 2 * MINILM.compute_params / 280.27
# The same benchmark with --backend onnx: 126.00 s; benchmarks/results/onnx.json: int8 2.61x torch.
CPU_BACKEND_SPEEDUP = {"torch": 1.0, "onnx": 280.27 / 126.00, "onnx-int8": 2.61, "openvino": 1.0}
# benchmarks/results/search.json: 10,000 queries x 1,000,000 x 384 float32, top-1000, 46.41 s.
CPU_SEARCH_FLOPS = 2 * 10_000 * 1_000_000 * 384 / 46.41
# Assumed (see the module docstring).
GPU_FLOPS = {"fp16": 312e12 / 3, "bf16": 312e12 / 3, "fp32": 19.5e12 * 2 / 3}
UNKNOWN_DOC_WORDS = 100.0  # a folder outside the registry: estimated from its size below
BYTES_PER_WORD = 6.5  # corpus.jsonl bytes per word of text, JSON included (SciFact: 6.6, NFCorpus: 6.4)


@dataclass(frozen=True)
class ModelCost:
    """What the plan knows about one `-m` argument, found without loading it: the system it is stored
    under and what its family says running it costs."""

    spec: str
    system: str
    cost: Cost
    resolved: SystemSpec | None = None  # as `run` resolves it (None: not on this machine, or unresolvable)

    @property
    def encodes(self) -> bool:
        """True when it runs a model (priced on the run's device)."""
        return self.cost.encoding is not None


@dataclass(frozen=True)
class Device:
    kind: str  # "cpu" or "gpu"
    name: str
    dtype: str = defaults.DTYPE
    count: int = 1
    backend: str = "torch"


@dataclass(frozen=True)
class Reduction:
    """`--reduce-corpus k`: each corpus reduced to its relevant documents and BM25's top k, in
    `cache` (None: a temporary one, so nothing is built yet)."""

    top_k: int
    cache: CacheRoot | None
    split: str | None = None


@dataclass
class DatasetPlan:
    dataset: str
    units: list[str]
    num_docs: int | None
    num_queries: int | None
    download_gb: float | None  # 0 when present locally; None: unknown
    done: dict[str, int] = field(default_factory=dict)  # system -> units with a stored result
    seconds: dict[str, float | None] = field(default_factory=dict)  # system -> for the units left
    reduced: str | None = None  # with --reduce-corpus: "built" (num_docs counted), else "estimated"
    cached: dict[str, float] = field(default_factory=dict)  # system -> share of its corpus vectors cached


@dataclass
class Plan:
    datasets: list[DatasetPlan]
    models: list[ModelCost]
    device: Device
    skipped: list[tuple[str, str]]
    calibration: Calibration | None = None

    @property
    def pairs(self) -> int:
        return sum(len(d.units) for d in self.datasets) * len(self.models)

    @property
    def pairs_done(self) -> int:
        return sum(n for d in self.datasets for n in d.done.values())


def model_cost(request: Request, opts: RetrieverOptions | None = None, top_k: int = 1000) -> ModelCost:
    """The cost of `request` as its family prices the spec `run` resolves with `opts`; a model not on
    this machine (a hub id or preset not in the local hub cache: resolving it would download it) by
    its preset's published sizes, else unknown; a model that cannot be resolved, unknown."""
    opts = opts or RetrieverOptions(progress=False)
    if not _on_this_machine(request):
        return ModelCost(str(request), system_of(request), _published(request, opts))
    try:
        spec = resolve_named(request, opts, top_k)  # a variant's name: `bm25[k1=0.9]`, as `run` stores it
    except Exception as e:
        if not isolated(e):
            raise
        return ModelCost(str(request), system_of(request), Cost(download_gb=None))
    return ModelCost(str(request), spec.system, families.of_spec(spec).cost(spec), spec)


def _on_this_machine(request: Request) -> bool:
    """Whether resolving `request` needs nothing from the network."""
    if isinstance(request, ModelPair):
        return _on_this_machine(request.query) and _on_this_machine(request.doc)
    if families.by_request_name(request) is not None or Path(request).expanduser().is_dir():
        return True
    known = presets.preset_of(request)
    if known is not None and known[1].hub_id == presets.PRESETS["all-MiniLM-L6-v2"].hub_id:
        if model_registry.packaged_minilm() is not None:
            return True
    hub_ids = [known[1].hub_id, known[1].query_hub_id] if known else [request]
    return all(_hub_cached(h) is not None for h in hub_ids if h)


def _published(request: Request, opts: RetrieverOptions) -> Cost:
    """A model not downloaded yet: its preset's sizes and download; unknown for any other."""
    known = presets.preset_of(request.doc if isinstance(request, ModelPair) else request)
    if known is None:
        return Cost(Encoding(None, opts.max_length or 512, 768), download_gb=None)
    p = known[1]
    return Cost(Encoding(p.compute_params, opts.max_length or p.max_length or 512, p.dim), None, p.weights_gb)


def _hub_cached(repo_id: str) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache

        for marker in model_registry.MODEL_MARKERS:
            if isinstance(hit := try_to_load_from_cache(repo_id, marker), str):
                return Path(hit).parent
    except Exception:  # an invalid repo id: not cached
        return None
    return None


def resolve_device(
    device: str | None, devices: Sequence[str] | str | None, dtype: str, backend: str
) -> Device:
    """The device the run would use (cuda when available, as `run` does), without loading a model."""
    listed = devices.split(",") if isinstance(devices, str) else list(devices or ())
    listed = [d.strip() for d in listed if d.strip()]
    name = listed[0] if listed else device
    if name is None:
        from ..retrieval.encoders import default_device

        name = default_device()
    kind = "cpu" if name.startswith("cpu") or backend in ("onnx", "onnx-int8") else "gpu"
    return Device(kind, name, dtype if kind == "gpu" else "fp32", max(1, len(listed)), backend)


def encode_seconds(
    cost: ModelCost, device: Device, docs: float, doc_words: float, queries: float, query_words: float
) -> float | None:
    """Corpus and queries through the encoder, then exact search."""
    enc = cost.cost.encoding
    if enc is None or enc.compute_params is None:
        return None
    tokens = docs * _tokens(doc_words, enc.max_length) + queries * _tokens(query_words, enc.max_length)
    flops = 2 * enc.compute_params * tokens
    if device.kind == "gpu":
        encode = flops / (GPU_FLOPS.get(device.dtype, GPU_FLOPS["fp32"]) * device.count)
        search = 2 * queries * docs * enc.dim / GPU_FLOPS["fp32"]
    else:
        backend = device.backend
        # `auto`: ONNX for fp32 weights under 2 GiB (on an Intel CPU `auto` runs torch in small
        # batches instead, measured slightly faster than ONNX there: the ONNX rate is the estimate)
        if backend == "auto":
            backend = "onnx" if enc.compute_params * 4 < ONNX_MAX_BYTES else "torch"
        encode = flops / (CPU_FLOPS * CPU_BACKEND_SPEEDUP.get(backend, 1.0))
        search = 2 * queries * docs * enc.dim / CPU_SEARCH_FLOPS
    return encode + search


def _tokens(words: float, max_length: int) -> float:
    return min(words * TOKENS_PER_WORD + 2, max_length)  # + [CLS]/[SEP] or </s>


def make_plan(
    selection: Selection,
    models: Sequence[ModelCost],
    device: Device,
    data_dir: Path,
    results_dir: Path,
    reduction: Reduction | None = None,
    caches: Caches | None = None,
) -> Plan:
    """The plan of `models` on `selection`; with `caches`, what the cache already holds shortens it, and
    the runs stored in `results_dir` on this machine calibrate its rates."""
    data_dir = Path(data_dir).expanduser()
    calibration = calibrate(results_dir, models, device)
    rows = [_dataset_plan(spec, models, device, data_dir, Path(results_dir), reduction, caches, calibration)
            for spec in selection.datasets]  # fmt: skip
    return Plan(rows, list(models), device, list(selection.skipped), calibration)


def plan_run(cfg: RunConfig) -> Plan:
    """The plan of `run` with `cfg` (models, datasets, options); the device is looked up only for dense
    models."""
    cfg.check()  # an unknown model or dataset is said now, as `run` would say it
    o = cfg.options
    # Named as `run` stores them (the spec's own name, `--name`'s, checkpoints `RUN@step-N`).
    costs = [model_cost(m, o, cfg.top_k) for m in cfg.models]
    if cfg.name is not None:
        costs = [replace(c, system=cfg.system_of(m)) for c, m in zip(costs, cfg.models, strict=True)]
    encodes = any(c.encodes for c in costs)  # BM25 alone runs on the CPU: no need to look for a GPU
    where = resolve_device(o.device, o.devices, o.dtype, o.backend) if encodes else Device("cpu", "cpu")
    reduction = None
    if cfg.reduce_corpus is not None:
        reduction = Reduction(cfg.reduce_corpus, CacheRoot.optional(o.cache_dir), cfg.data.split)
    caches = Caches(cfg.data, o.cache_dir, cfg.store_dir)
    return make_plan(
        cfg.data.expand(cfg.datasets), costs, where, cfg.data.data_dir, cfg.results_dir, reduction, caches
    )


def _dataset_plan(
    spec: str,
    models: Sequence[ModelCost],
    device: Device,
    data_dir: Path,
    results_dir: Path,
    reduction: Reduction | None = None,
    caches: Caches | None = None,
    calibration: Calibration | None = None,
) -> DatasetPlan:
    units = unit_names(spec, data_dir)
    docs, queries, doc_words, query_words, download = _sizes(spec, data_dir)
    row = DatasetPlan(spec, units, docs, queries, download)
    if reduction is not None and spec not in ("peerqa", "peerqa-sentences"):
        row.units, row.num_docs, row.reduced = _reduced(spec, data_dir, reduction, docs, queries)
        units, docs = row.units, row.num_docs
    store = ResultsStore(results_dir)
    for m in models:
        pending = [u for u in units if not store.done(m.system, u)]
        done = len(units) - len(pending)
        row.done[m.system] = done
        left = (len(units) - done) / len(units)
        if left == 0:
            row.seconds[m.system] = 0.0
            continue
        if docs is None or queries is None:
            row.seconds[m.system] = None
            continue
        # CQADupStack: each subforum searches only its own documents (about 1/12 of the total).
        per_unit = estimate(m, device, docs / len(units), doc_words, queries / len(units), query_words)
        if per_unit is None:
            row.seconds[m.system] = None
            continue
        if calibration is not None:
            per_unit *= calibration.factor(m)[0]
        cached = 0.0
        if m.encodes and caches is not None and download == 0:
            cached = caches.corpus_share(spec, m, pending)
            row.cached[m.system] = cached
            # what is cached is the corpus encode; queries and search still run
            search_share = _search_share(
                m, device, docs / len(units), doc_words, queries / len(units), query_words
            )
            per_unit *= 1 - cached * (1 - search_share)
        row.seconds[m.system] = per_unit * (len(units) - done)
    return row


def _reduced(
    spec: str, data_dir: Path, reduction: Reduction, docs: int | None, queries: int | None
) -> tuple[list[str], int | None, str]:
    """The reduced units' names, their documents and whether that count is what was built (every
    unit's reduction is in the cache, made from the source files as they are now) or estimated
    (BM25's top k of each query, at most the whole corpus; relevant documents outside it not counted)."""
    units = folder_units(spec, data_dir, reduction.split)
    built = [built_count(reduction.cache, u, reduction.top_k) if reduction.cache else None for u in units]
    names = [reduced_name(u.name, reduction.top_k) for u in units]
    if all(n is not None for n in built):
        return names, sum(built), "built"  # type: ignore[arg-type]
    if docs is None or queries is None:
        return names, None, "estimated"
    return names, min(docs, queries * reduction.top_k), "estimated"


def estimate(
    m: ModelCost, device: Device, docs: float, doc_words: float, queries: float, query_words: float
) -> float | None:
    """Seconds for `m` on one unit of these sizes, by the compute model (uncalibrated)."""
    if not m.encodes:
        work = m.cost.seconds
        return None if work is None else work(docs, doc_words, queries)
    return encode_seconds(m, device, docs, doc_words, queries, query_words)


def _search_share(m: ModelCost, device: Device, docs, doc_words, queries, query_words) -> float:
    """The part of a dense estimate that is not the corpus encode (queries and search)."""
    whole = encode_seconds(m, device, docs, doc_words, queries, query_words) or 0.0
    corpus = encode_seconds(m, device, docs, doc_words, 0, query_words) or 0.0
    return 0.0 if whole <= 0 else max(0.0, (whole - corpus) / whole)


# ------------------------------------------------------------------------------------- the cache


@dataclass(frozen=True)
class Caches:
    """Where a run's caches are, to see what a plan need not compute again."""

    data: DataOptions
    cache_dir: Path | None
    store_dir: Path | None

    def corpus_share(self, spec: str, m: ModelCost, units: Sequence[str]) -> float:
        """The share of the corpus vectors of `units` (names) already in the cache as complete shards
        (each checked against its sha256, as a run checks it); 0 when unknown."""
        if m.resolved is None or not units:
            return 0.0
        try:
            found = {u.name: u for u in self.data.units(spec)}
            retriever = families.of_spec(m.resolved).build(m.resolved, self.cache_dir)
            shares = [corpus_cached(retriever, found[name], self.store_dir) for name in units]
        except Exception as e:  # the plan guesses; the run will say what is wrong
            if not isolated(e) and not isinstance(e, (OSError, ValueError, KeyError, AttributeError)):
                raise
            return 0.0
        return sum(shares) / len(shares)


def corpus_cached(retriever, unit, store_dir: Path | None) -> float:
    """The share of `unit`'s corpus whose vectors `retriever` would read from its cache."""
    if getattr(retriever, "cache_dir", None) is None or not hasattr(retriever, "key"):
        return 0.0
    import numpy as np

    content = unit.fingerprint(store_dir).files_sha256["corpus.jsonl"]
    folder = CacheRoot(Path(retriever.cache_dir)).entry("embeddings", retriever.key("corpus", content))
    order = folder / "order.npy"
    if not order.is_file():
        return 0.0
    n = len(np.load(order, mmap_mode="r", allow_pickle=False))
    size, fmt = retriever.spec.shard_size, retriever.doc_format
    rows = [min(size, n - start) for start in range(0, n, size)]
    done = sum(r for i, r in enumerate(rows) if fmt.complete(fmt.path(folder, i), r, i * size))
    return done / n if n else 0.0


# ------------------------------------------------------------------------------------- calibration


@dataclass(frozen=True)
class Measured:
    """A run stored on this machine beside what the compute model says it costs."""

    system: str
    dataset: str
    encodes: bool
    seconds: float  # what it took (model loading and data loading aside)
    predicted: float

    @property
    def ratio(self) -> float:
        return self.seconds / self.predicted


@dataclass(frozen=True)
class Calibration:
    """The compute model's rates scaled by runs stored on this machine: a system by its own fastest run,
    else by the fastest run of its kind (encoders, or the rest).  The fastest, because other work on the
    machine only ever slows a run down: the fastest is the nearest to what the machine can do."""

    runs: tuple[Measured, ...]

    def factor(self, m: ModelCost) -> tuple[float, str]:
        """(factor, where it comes from): 1 when nothing measured applies."""
        own = [r.ratio for r in self.runs if r.system == m.system]
        if own:
            return min(own), "its own fastest run"
        kind = [r.ratio for r in self.runs if r.encodes == m.encodes]
        if kind:
            return min(kind), "the fastest run of its kind"
        return 1.0, "not calibrated"


def same_machine(recorded: dict, device: Device) -> bool:
    """A stored run's `hardware` is this machine's, on the kind of device the plan prices."""
    from ..results import hardware

    here = hardware()
    keys = ("platform", "machine", "cpu_count")
    gpu = "cuda_device" in recorded
    return all(recorded.get(k) == here.get(k) for k in keys) and gpu == (device.kind == "gpu")


def calibrate(results_dir: Path, models: Sequence[ModelCost], device: Device) -> Calibration:
    """The runs in `results_dir` made on this machine, each priced by the compute model (systems of
    the plan as the plan prices them, others as `run` would resolve their names; a composed or unknown
    system is left out, and so is a run that computed nothing: all vectors or its index cached)."""
    planned = {m.system: m for m in models}
    priced: dict[str, ModelCost | None] = {}
    runs = []
    try:
        stored = list(ResultsStore(results_dir))
    except Exception as e:  # a results folder that will not read: plan uncalibrated
        if not isolated(e):
            raise
        stored = []
    for result in stored:
        manifest = result.manifest or {}
        if not same_machine(manifest.get("hardware") or {}, device) or result.dataset not in registry.names():
            continue
        if result.system not in priced:
            priced[result.system] = planned.get(result.system) or _priced(result.system)
        m = priced[result.system]
        took = _computed_seconds(manifest)
        if m is None or took is None:
            continue
        info = registry.get(result.dataset)
        docs = (manifest.get("dataset") or {}).get("num_docs") or info.num_docs
        queries = (manifest.get("dataset") or {}).get("num_queries") or info.num_queries
        predicted = estimate(m, device, docs, info.doc_words, queries, info.query_words)
        if predicted:
            runs.append(Measured(result.system, result.dataset, m.encodes, took, predicted))
    return Calibration(tuple(runs))


def _priced(system: str) -> ModelCost | None:
    """A stored system priced by its name, when its name is something `run` resolves (a preset, bm25)."""
    if ">>" in system or "(" in system or not (families.by_request_name(system) or presets.preset_of(system)):
        return None
    try:
        return model_cost(system)
    except Exception as e:
        if not isolated(e):
            raise
        return None


def _computed_seconds(manifest: dict) -> float | None:
    """What a stored run spent computing, scaled to the whole corpus when some vectors were cached;
    None when it computed nothing (its vectors or index all cached) or did not say."""
    t, stats = manifest.get("timings") or {}, manifest.get("stats") or {}
    total = t.get("retrieve_total_s")
    if total is None:
        return None
    total -= t.get("load_model_s") or 0.0
    if (stats.get("bm25_index") or {}).get("reused"):
        return None
    if "corpus_shards" in stats:
        encoded, shards = stats.get("corpus_shards_encoded", 0), stats["corpus_shards"]
        if not encoded:
            return None
        corpus = t.get("encode_corpus_s") or 0.0
        total += corpus * (shards / encoded - 1)
    return total


def _sizes(spec: str, data_dir: Path) -> tuple[int | None, int | None, float, float, float | None]:
    """(documents, judged queries, words per document, words per query, GB still to download)."""
    folder = Path(spec).expanduser()
    if (folder / "corpus.jsonl").is_file():
        known = registry.get(folder.resolve().name) if folder.resolve().name in registry.names() else None
        if known is not None:
            return known.num_docs, known.num_queries, known.doc_words, known.query_words, 0.0
        docs, size = _count_lines(folder / "corpus.jsonl")
        return docs, None, size / max(docs, 1) / BYTES_PER_WORD, 10.0, 0.0
    if spec in ("peerqa", "peerqa-sentences"):
        return None, None, UNKNOWN_DOC_WORDS, 10.0, 0.0
    info = registry.get(spec)
    present = info.bundled or registry.is_present(spec, data_dir)
    download = 0.0 if present else (info.zip_gb if info.public else None)
    return info.num_docs, info.num_queries, info.doc_words, info.query_words, download


def _count_lines(path: Path) -> tuple[int, int]:
    lines = size = 0
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 24), b""):
            lines += block.count(b"\n")
            size += len(block)
    return lines, size


# ------------------------------------------------------------------------------------------ render


def duration(seconds: float | None) -> str:
    if seconds is None or math.isnan(seconds):
        return "?"
    if seconds == 0:
        return "–"
    for limit, unit, scale in ((120, "s", 1), (7200, "min", 60), (172800, "h", 3600)):
        if seconds < limit:
            return f"{seconds / scale:.0f} {unit}" if unit == "s" else f"{seconds / scale:.1f} {unit}"
    return f"{seconds / 86400:.1f} d"


def _gb(value: float | None) -> str:
    if value is None:
        return "?"
    return "present" if value == 0 else f"{value:.3f}"


def render_plan(plan: Plan) -> str:
    systems = [m.system for m in plan.models]
    body = []
    for d in plan.datasets:
        cells = []
        for s in systems:
            cached = d.cached.get(s, 0.0)
            note = f" ({cached:.0%} of vectors cached)" if cached and d.seconds[s] else ""
            cells += [f"{d.done[s]}/{len(d.units)}", duration(d.seconds[s]) + note]
        docs = "?" if d.num_docs is None else f"{'~' if d.reduced == 'estimated' else ''}{d.num_docs:,}"
        queries = "?" if d.num_queries is None else f"{d.num_queries:,}"
        body.append([d.dataset, docs, queries, _gb(d.download_gb), *cells])
    totals = []
    for s in systems:
        secs = [d.seconds[s] for d in plan.datasets]
        known = sum(x for x in secs if x is not None)
        total = duration(known) + (" + ?" if any(x is None for x in secs) else "")
        totals += [
            f"{sum(d.done[s] for d in plan.datasets)}/{sum(len(d.units) for d in plan.datasets)}",
            total,
        ]
    download = sum(d.download_gb or 0.0 for d in plan.datasets)
    weights = [(m.system, m.cost.download_gb) for m in plan.models if m.cost.download_gb != 0.0]
    download_all = download + sum(gb or 0.0 for _, gb in weights)
    docs_total = sum(d.num_docs or 0 for d in plan.datasets)
    queries_total = sum(d.num_queries or 0 for d in plan.datasets)
    body.append(["total", f"{docs_total:,}", f"{queries_total:,}", f"{download_all:.2f}" if download_all else "–",
                 *totals])  # fmt: skip
    headers = ["dataset", "documents", "queries", "download GB"]
    for s in systems:
        headers += [f"{s} done", f"{s} time"]
    lines = [
        f"Plan: {len(plan.models)} system(s) x {len(plan.datasets)} dataset(s) = {plan.pairs} pairs "
        f"(CQADupStack counts its 12 subforums); {plan.pairs_done} already done, "
        f"{plan.pairs - plan.pairs_done} to run.",
        "",
        tabulate(body, headers=headers, tablefmt="github", disable_numparse=True),
        "",
    ]
    lines += [f"Skipped: {name}: {why}" for name, why in plan.skipped]
    lines += _reduction_note(plan)
    if weights:
        sizes = ", ".join(
            f"{system} {'size unknown' if gb is None else f'{gb:.2f} GB'}" for system, gb in weights
        )
        lines.append(f"Model weights to download (in the total): {sizes}")
    lines += ["", *textwrap.wrap(_calibration_note(plan), 100)]
    lines += [*textwrap.wrap(_basis(plan.device), 100)]
    return "\n".join(lines) + "\n"


def _reduction_note(plan: Plan) -> list[str]:
    """With --reduce-corpus: which reduced corpora are built (their document counts are exact) and
    which are to be made first (counts estimated, BM25 over the whole corpus to run)."""
    reduced = [d for d in plan.datasets if d.reduced is not None]
    if not reduced:
        return []
    built = [u for d in reduced if d.reduced == "built" for u in d.units]
    todo = [u for d in reduced if d.reduced != "built" for u in d.units]
    lines = [f"Reduced corpora built in the cache (documents counted): {', '.join(built)}"] if built else []
    if todo:
        lines.append(
            f"Reduced corpora to make first (~ documents: BM25's top k per query, estimated; BM25 runs over "
            f"the whole corpus once): {', '.join(todo)}"
        )
    return lines


def _calibration_note(plan: Plan) -> str:
    """Which stored runs scaled the rates, and by how much; or that none did."""
    runs = plan.calibration.runs if plan.calibration is not None else ()
    if not runs:
        return "Not calibrated: no run in the results folder was made on this machine (rates as below)."
    said = "; ".join(f"{r.system} on {r.dataset} took {duration(r.seconds)} where the rates below give "
                     f"{duration(r.predicted)} (x{r.ratio:.2f})" for r in runs[:4])  # fmt: skip
    more = f"; and {len(runs) - 4} more" if len(runs) > 4 else ""
    factors = ", ".join(
        f"{m.system} x{f:.2f} ({why})" for m in plan.models for f, why in [plan.calibration.factor(m)]
    )
    return f"Calibrated on this machine by {len(runs)} stored run(s): {said}{more}. Scaled: {factors}."


def _basis(device: Device) -> str:
    if device.kind == "gpu":
        rate = GPU_FLOPS.get(device.dtype, GPU_FLOPS["fp32"]) * device.count
        dense = (
            f"{device.name} x {device.count}, {device.dtype}, at an assumed {rate / 1e12:.0f} TFLOP/s effective "
            "(a third of an A100's peak; not measured here, so take the hours as an order of magnitude)"
        )
    else:
        rate = CPU_FLOPS * CPU_BACKEND_SPEEDUP.get(device.backend, 1.0)
        dense = (
            f"the CPU ({device.backend}) at {rate / 1e9:.0f} GFLOP/s effective, measured with all-MiniLM-L6-v2 "
            "on a 2-core AMD EPYC (benchmarks/results); good to about a factor of two"
        )
    return (
        f"Device: {device.name}. Times are rough and cover only what is left. Dense models: 2 FLOPs per "
        f"parameter per token on {dense}; exact search added. BM25 (CPU): "
        f"{BM25_WORDS_PER_S / 1e6:.1f}M words/s indexing and a search cost per (query, document) measured on "
        "SciFact and NFCorpus (results/bm25), extrapolated linearly, which overstates it on corpora of "
        f"millions; Lucene (bm25-flat, bm25-multifield): {LUCENE_WORDS_PER_S / 1e6:.1f}M words/s indexing, "
        "a JVM start per step, and a search cost per query and per (query, document) measured on "
        "corpora of up to 1M documents. Loading data is not counted. Nothing has been downloaded or run."
    )
