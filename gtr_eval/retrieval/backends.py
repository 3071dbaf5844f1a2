"""The encoder backends, and the picklable description of one encoder (`EncoderSpec`).

Backends: `torch` (sentence-transformers as is), `onnx` (the whole sentence-transformers stack
exported to ONNX and run by ONNX Runtime in fp32), `onnx-int8` (the same graph with dynamic
per-channel int8 weights), `openvino` (passed to sentence-transformers, which needs `optimum-intel`).
`auto` is not a backend but a rule (`encoders.choose_backend`).

torch, onnx and openvino compute the same function in fp32: their vectors agree to float rounding
(ONNX: within 1e-5 of torch, tested; NDCG@10 equal to 1e-8 on SciFact), so which one ran is a
setting of a result, not part of what it is: a results folder made on an Intel CPU (where `auto` is
torch) is served on an AMD one (where it is ONNX), and the embedding cache is shared between them.
`onnx-int8` changes the numbers: its quantisation recipe is part of a result's identity
(`quantization`), and of the cache key.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import defaults

BACKENDS = ("torch", "onnx", "onnx-int8", "openvino")
ONNX_BACKENDS = ("onnx", "onnx-int8")
AUTO = defaults.BACKEND
# One ONNX file is one protobuf message, which cannot exceed 2 GiB; larger models would need the
# weights in side files, which this backend does not write.
ONNX_MAX_BYTES = 2**31


@dataclass(frozen=True)
class EncoderSpec:
    """What a process needs to build one encoder: a worker process, a Ray task or a SLURM job builds
    exactly the encoder the main process would."""

    path: str
    backend: str = "torch"
    device: str | None = None
    dtype: str = defaults.DTYPE
    max_length: int | None = None
    batch_size: int = defaults.BATCH_SIZE
    trust_remote_code: bool = False
    threads: int | None = None  # intra-op threads; None: leave torch's / ONNX Runtime's default
    fingerprint: str = ""  # weights sha256: names the exported ONNX model in `export_dir`
    export_dir: str | None = None  # where ONNX exports live; None: <user cache>/onnx


@dataclass(frozen=True)
class BackendChoice:
    """The backend that runs (`backend`), what was asked (`requested`), and why `auto` chose it."""

    requested: str
    backend: str
    reason: str = ""
