"""`run --plan`: what a sweep will download, what is already done, and roughly how long the rest takes.

Nothing is loaded. Sizes come from the registry (documents, queries, average lengths in words, zip
sizes), model sizes from the presets or a local folder's safetensors headers, and times from a
compute model: encoding costs 2 × (parameters outside the embeddings) FLOPs per token, exact search
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

from ..data import registry
from ..data.units import Selection, unit_names
from ..results import ResultsStore
from ..retrieval import models as model_registry
from ..retrieval import presets, weights
from ..retrieval.backends import ONNX_MAX_BYTES
from ..retrieval.lucene import is_lucene
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
# results/bm25/{scifact,nfcorpus}.json: index_s 0.7105 and 0.6594 for 5,183 x 213.63 and
# 3,633 x 232.26 words; search_s 0.0850 and 0.0740 for 300 x 5,183 and 323 x 3,633 (query, doc) pairs.
BM25_WORDS_PER_S = (5_183 * 213.63 + 3_633 * 232.26) / (0.7105 + 0.6594)
BM25_S_PER_QUERY_DOC = (0.0850 + 0.0740) / (300 * 5_183 + 323 * 3_633)
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
# Assumed (see the module docstring).
GPU_FLOPS = {"fp16": 312e12 / 3, "bf16": 312e12 / 3, "fp32": 19.5e12 * 2 / 3}
UNKNOWN_DOC_WORDS = 100.0  # a folder outside the registry: estimated from its size below
BYTES_PER_WORD = 6.5  # corpus.jsonl bytes per word of text, JSON included (SciFact: 6.6, NFCorpus: 6.4)


@dataclass(frozen=True)
class ModelCost:
    """What the plan needs to know about one `-m` argument, found without loading it."""

    spec: str
    system: str
    dense: bool
    compute_params: int | None = None
    max_length: int = 512
    dim: int = 768
    download_gb: float | None = 0.0  # weights still to fetch; None: unknown


@dataclass(frozen=True)
class Device:
    kind: str  # "cpu" or "gpu"
    name: str
    dtype: str = "fp32"
    count: int = 1
    backend: str = "torch"


@dataclass
class DatasetPlan:
    dataset: str
    units: list[str]
    num_docs: int | None
    num_queries: int | None
    download_gb: float | None  # 0 when present locally; None: unknown
    done: dict[str, int] = field(default_factory=dict)  # system -> units with a stored result
    seconds: dict[str, float | None] = field(default_factory=dict)  # system -> for the units left


@dataclass
class Plan:
    datasets: list[DatasetPlan]
    models: list[ModelCost]
    device: Device
    skipped: list[tuple[str, str]]

    @property
    def pairs(self) -> int:
        return sum(len(d.units) for d in self.datasets) * len(self.models)

    @property
    def pairs_done(self) -> int:
        return sum(n for d in self.datasets for n in d.done.values())


def model_cost(spec, max_length: int | None = None) -> ModelCost:
    """bm25, a preset, a local folder, or a hub id (known only if it is in the local hub cache); or
    an asymmetric pair (`--query-model/--doc-model`), costed by its document model, which encodes the
    corpus."""
    if not isinstance(spec, str):
        doc = model_cost(spec.doc, max_length)
        system = f"{model_registry.system_name(spec.query)}~{doc.system}"
        return replace(doc, spec=str(spec), system=system)
    if spec == "bm25" or is_lucene(spec):
        return ModelCost(spec, spec.lower(), dense=False)
    system = model_registry.system_name(spec)
    known = presets.preset_of(spec)  # a preset's name or its hub id
    preset = known[1] if known else None
    local = Path(spec).expanduser()
    if preset is not None:
        cached = spec == "all-MiniLM-L6-v2" and model_registry.packaged_minilm() is not None
        cached = cached or _hub_cached(preset.hub_id) is not None
        return ModelCost(
            spec,
            system,
            True,
            preset.compute_params,
            max_length or preset.max_length or 512,
            preset.dim,
            0.0 if cached else preset.weights_gb,
        )
    folder = local if local.is_dir() else _hub_cached(spec)
    if folder is None:
        return ModelCost(spec, system, True, None, max_length or 512, 768, None)
    return ModelCost(
        spec,
        system,
        True,
        weights.compute_params(folder),
        max_length or _folder_max_length(folder),
        _folder_dim(folder),
        0.0,
    )


def _hub_cached(repo_id: str) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(repo_id, "modules.json")
    except Exception:  # an invalid repo id: not cached
        return None
    return Path(hit).parent if isinstance(hit, str) else None


def _folder_max_length(folder: Path) -> int:
    import json

    try:
        return int(json.loads((folder / "sentence_bert_config.json").read_text())["max_seq_length"])
    except (OSError, ValueError, KeyError, TypeError):
        return 512


def _folder_dim(folder: Path) -> int:
    import json

    try:
        return int(json.loads((folder / "1_Pooling" / "config.json").read_text())["word_embedding_dimension"])
    except (OSError, ValueError, KeyError, TypeError):
        return 768


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
    if cost.compute_params is None:
        return None
    tokens = docs * _tokens(doc_words, cost.max_length) + queries * _tokens(query_words, cost.max_length)
    flops = 2 * cost.compute_params * tokens
    if device.kind == "gpu":
        encode = flops / (GPU_FLOPS.get(device.dtype, GPU_FLOPS["fp32"]) * device.count)
        search = 2 * queries * docs * cost.dim / GPU_FLOPS["fp32"]
    else:
        backend = device.backend
        # `auto`: ONNX for fp32 weights under 2 GiB (on an Intel CPU `auto` runs torch in small
        # batches instead, measured slightly faster than ONNX there: the ONNX rate is the estimate)
        if backend == "auto":
            backend = "onnx" if cost.compute_params * 4 < ONNX_MAX_BYTES else "torch"
        encode = flops / (CPU_FLOPS * CPU_BACKEND_SPEEDUP.get(backend, 1.0))
        search = 2 * queries * docs * cost.dim / CPU_SEARCH_FLOPS
    return encode + search


def bm25_seconds(docs: float, doc_words: float, queries: float) -> float:
    return docs * doc_words / BM25_WORDS_PER_S + queries * docs * BM25_S_PER_QUERY_DOC


def lucene_seconds(docs: float, doc_words: float, queries: float) -> float:
    """Anserini: one JVM to index (after the collection is written), one to search."""
    index = LUCENE_INDEX_FIXED_S + docs / LUCENE_WRITE_DOCS_PER_S + docs * doc_words / LUCENE_WORDS_PER_S
    return index + LUCENE_SEARCH_FIXED_S + queries * (LUCENE_S_PER_QUERY + docs * LUCENE_S_PER_QUERY_DOC)


def _tokens(words: float, max_length: int) -> float:
    return min(words * TOKENS_PER_WORD + 2, max_length)  # + [CLS]/[SEP] or </s>


def make_plan(
    selection: Selection,
    models: Sequence[ModelCost],
    device: Device,
    data_dir: Path,
    results_dir: Path,
) -> Plan:
    data_dir = Path(data_dir).expanduser()
    rows = [_dataset_plan(spec, models, device, data_dir, Path(results_dir)) for spec in selection.datasets]
    return Plan(rows, list(models), device, list(selection.skipped))


def plan_run(cfg: RunConfig) -> Plan:
    """The plan of `run` with `cfg` (models, datasets, options); the device is looked up only for dense
    models."""
    cfg.check()  # an unknown model or dataset is said now, as `run` would say it
    o = cfg.options
    # Named as `run` stores them (`--name`, checkpoints `RUN@step-N`), so done pairs are found.
    costs = [replace(model_cost(m, o.max_length), system=cfg.system_of(m)) for m in cfg.models]
    dense = any(c.dense for c in costs)  # BM25 alone runs on the CPU: no need to look for a GPU
    where = resolve_device(o.device, o.devices, o.dtype, o.backend) if dense else Device("cpu", "cpu")
    return make_plan(cfg.data.expand(cfg.datasets), costs, where, cfg.data.data_dir, cfg.results_dir)


def _dataset_plan(
    spec: str, models: Sequence[ModelCost], device: Device, data_dir: Path, results_dir: Path
) -> DatasetPlan:
    units = unit_names(spec, data_dir)
    docs, queries, doc_words, query_words, download = _sizes(spec, data_dir)
    row = DatasetPlan(spec, units, docs, queries, download)
    for m in models:
        done = sum(ResultsStore(results_dir).done(m.system, u) for u in units)
        row.done[m.system] = done
        left = (len(units) - done) / len(units)
        if left == 0:
            row.seconds[m.system] = 0.0
        elif docs is None or queries is None:
            row.seconds[m.system] = None
        elif not m.dense:
            lexical = lucene_seconds if is_lucene(m.spec) else bm25_seconds
            row.seconds[m.system] = left * lexical(docs, doc_words, queries)
        else:
            # CQADupStack: each subforum searches only its own documents (about 1/12 of the total).
            per_unit = encode_seconds(
                m, device, docs / len(units), doc_words, queries / len(units), query_words
            )
            row.seconds[m.system] = None if per_unit is None else per_unit * (len(units) - done)
    return row


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
            cells += [f"{d.done[s]}/{len(d.units)}", duration(d.seconds[s])]
        docs = "?" if d.num_docs is None else f"{d.num_docs:,}"
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
    weights = [(m.system, m.download_gb) for m in plan.models if m.dense and m.download_gb != 0.0]
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
    if weights:
        sizes = ", ".join(
            f"{system} {'size unknown' if gb is None else f'{gb:.2f} GB'}" for system, gb in weights
        )
        lines.append(f"Model weights to download (in the total): {sizes}")
    lines += ["", *textwrap.wrap(_basis(plan.device), 100)]
    return "\n".join(lines) + "\n"


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
