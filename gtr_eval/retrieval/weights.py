"""What identifies a model's weights, and what they cost, read from its files without loading it.

`weights_fingerprint` is the digest a result's identity and the embedding cache name a model by
(memoised under the cache root in use, by the files' full stat keys).
`safetensors_header` is the one reader of a safetensors file's JSON header (tensor names, shapes,
dtypes): `weights_fp32_bytes` (whether an ONNX export fits one file) and `compute_params`
(`run --plan`'s estimate) count from it, so nothing is loaded or unpickled.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from fnmatch import fnmatchcase
from pathlib import Path

from ..artifacts import CacheRoot, key_digest, stat_key
from ..io import read_memo, write_memo

# The files that define a model: weights, configs, tokenizer files and the Python code a
# `trust_remote_code` model runs. `.metadata`: Stanford ColBERT's `artifact.metadata` (markers,
# lengths, punctuation masking).
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".onnx", ".pt", ".json", ".txt", ".model", ".metadata", ".py")
# Folders of other runtimes' copies of the weights, which a sentence-transformers folder may carry.
_OTHER_RUNTIMES = {"onnx", "openvino"}
TRAINER_STATE_FILES = (
    "optimizer.pt", "optimizer.bin", "scheduler.pt", "scaler.pt", "rng_state*.pth", "training_args.bin",
    "trainer_state.json",
)  # fmt: skip
"""What a `transformers` Trainer (and sentence-transformers' trainer) saves at a checkpoint's root
beside the model, to resume training (`transformers.trainer`'s `OPTIMIZER_NAME`, `SCHEDULER_NAME`, …):
not part of the model, and the optimizer's state alone is about twice the weights.  The fingerprint
leaves them out, so the same weights saved with or without them are one model (one identity, one
embedding cache); a folder without them hashes exactly as before."""


def is_trainer_state(relative: Path) -> bool:
    """True for a file (path relative to the model folder) that is one of `TRAINER_STATE_FILES`."""
    return len(relative.parts) == 1 and any(fnmatchcase(relative.name, f) for f in TRAINER_STATE_FILES)


def _model_files(path: Path) -> list[Path]:
    """The files that define the model in folder `path` (`WEIGHT_SUFFIXES`, trainer state aside)."""
    return sorted(
        p for p in path.rglob("*")
        if p.is_file() and p.suffix in WEIGHT_SUFFIXES and not is_trainer_state(p.relative_to(path))
    )  # fmt: skip


def weights_fingerprint(path: Path, cache: CacheRoot | None = None) -> str:
    """sha256 over the files that define the model (names and contents; `_model_files`).

    Memoised by the full stat key of every file (`artifacts.stat_key`: any edit moves ctime, even one
    of the same size with its mtime restored): in this process, and on disk under `cache`'s memos (the
    cache root in use; None: not on disk).  Hashing an 11B-parameter checkpoint takes tens of seconds,
    and a done pair's identity check must not pay it again.
    """
    path = Path(path)
    files = _model_files(path)
    stamp = key_digest(
        {"weights": [str(path.resolve()), [(str(p.relative_to(path)), stat_key(p)) for p in files]]}
    )
    memo = cache.memos("weights") / f"{stamp}.txt" if cache is not None else None
    if known := _KNOWN.get(stamp) or (read_memo(memo) if memo is not None else None):
        _KNOWN[stamp] = known
        return known
    h = hashlib.sha256()
    for p in files:
        h.update(str(p.relative_to(path)).encode() + b"\0")
        with open(p, "rb") as fh:
            for block in iter(lambda fh=fh: fh.read(1 << 22), b""):
                h.update(block)
    digest = _KNOWN[stamp] = h.hexdigest()
    if memo is not None:
        write_memo(memo, digest)
    return digest


_KNOWN: dict[str, str] = {}  # stat stamp -> digest, for this process


def safetensors_header(path: Path) -> dict[str, dict]:
    """Tensor name -> {dtype, shape, data_offsets} of a safetensors file: an 8-byte little-endian
    header length, then a JSON header (its `__metadata__` entry left out)."""
    with open(path, "rb") as fh:
        (size,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(size))
    return {k: v for k, v in header.items() if k != "__metadata__"}


def _elements(info: dict) -> int:
    return math.prod(int(d) for d in info.get("shape", ()))


def weights_fp32_bytes(path: Path) -> int:
    """Bytes the model's parameters take in fp32, read from the files without loading the model.

    safetensors files count their tensors (an fp16 checkpoint counts double, as its fp32 export
    would); a folder with only PyTorch `.bin` files counts their size on disk (their contents are
    pickles, which are never opened here).
    """
    files = [
        p for p in sorted(Path(path).rglob("*"))
        if p.is_file() and not _OTHER_RUNTIMES & set(p.relative_to(path).parts[:-1])
    ]  # fmt: skip
    tensors = [p for p in files if p.suffix == ".safetensors"]
    if tensors:
        return sum(4 * _elements(v) for p in tensors for v in safetensors_header(p).values())
    return sum(
        p.stat().st_size for p in files if p.suffix == ".bin" and not is_trainer_state(p.relative_to(path))
    )


def compute_params(path: Path) -> int | None:
    """Parameters outside the token embeddings of a model folder (what costs compute per token), from
    its safetensors headers; None when it has none or one cannot be read."""
    files = sorted(Path(path).rglob("*.safetensors"))
    if not files:
        return None
    total = 0
    for file in files:
        try:
            header = safetensors_header(file)
        except (OSError, ValueError, struct.error):
            return None
        total += sum(
            _elements(info)
            for name, info in header.items()
            if "embed" not in name and not name.startswith("shared.")
        )
    return total
