"""Text encoders behind one call, `encode(texts, prompt) -> float32 vectors`, for every backend
(`backends`), and `choose_backend`, the rule `--backend auto` stands for: ONNX fp32 where it gives
the same vectors faster (a non-Intel CPU, fp32, a model that fits one ONNX file), torch elsewhere
(GPUs, Intel CPUs: see `hardware`).

On the CPU both backends run transformers in batches of at most `hardware.CPU_BATCH` texts, whatever
`--batch-size` says (larger values are split; the vectors differ from one big batch by float rounding
only): activations of small batches stay in the CPU's caches.  all-MiniLM-L6-v2 on 800 SciFact
documents, 2-core Intel Xeon, torch: 20.9 s in batches of 16, 23.9 s of 32, 30.6 s of 128 (beir's
default); ONNX Runtime on the AMD EPYC: batches of 16 were 27% faster than 128.  Each batch holds
texts of equal token counts, cut to its longest (`batching`), so almost nothing is padding.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from .backends import AUTO, BACKENDS, ONNX_BACKENDS, ONNX_MAX_BYTES, BackendChoice, EncoderSpec
from .batching import encode_batches
from .hardware import cpu_batch, torch_fastest_on_cpu

log = logging.getLogger(__name__)


class TextEncoder(Protocol):
    max_seq_length: int

    def encode(self, texts: list[str], prompt: str = "", task: str | None = None) -> np.ndarray: ...


def choose_backend(
    requested: str,
    path: Path,
    devices: Sequence[str],
    dtype: str,
    export_dir: Path | None = None,
    fingerprint: str = "",
) -> BackendChoice:
    """Settle `auto` without loading the model: ONNX fp32 on the CPU; torch on a GPU, on an Intel CPU
    (its MKL kernels are faster there), for another dtype, without onnx/onnxruntime, for weights of
    2 GiB or more, or where the export failed before.

    (A first export can still fail; `DenseRetriever` then falls back to torch, which gives the same
    vectors: the cache entry and the result's identity stay the same.)
    """
    from .onnx_backend import earlier_failure, model_folder
    from .weights import weights_fp32_bytes

    return backend_rule(
        requested,
        devices,
        dtype,
        lambda: weights_fp32_bytes(path),
        lambda: earlier_failure(model_folder(fingerprint, export_dir)),
    )


def backend_rule(
    requested: str,
    devices: Sequence[str],
    dtype: str,
    fp32_bytes: Callable[[], int],
    failed_before: Callable[[], str | None] = lambda: None,
) -> BackendChoice:
    """The rule `auto` stands for, for a model on disk (`choose_backend`) or in memory (a model being
    trained, `in_memory`): the facts it needs about the weights are asked for only when needed."""
    if requested != AUTO:
        if requested not in BACKENDS:
            raise ValueError(f"backend must be {AUTO} or one of {BACKENDS}, not {requested!r}")
        return BackendChoice(requested, requested)

    def use_torch(reason: str) -> BackendChoice:
        return BackendChoice(AUTO, "torch", reason)

    if gpu := [d for d in devices if not str(d).startswith("cpu")]:
        return use_torch(f"device {gpu[0]}: the ONNX backend runs on the CPU")
    if dtype != "fp32":
        return use_torch(f"dtype {dtype}: the ONNX backend runs fp32")
    if torch_fastest_on_cpu():
        return use_torch("Intel CPU: torch's MKL kernels encode faster than ONNX Runtime here")
    if missing := _missing_onnx():
        return use_torch(
            f"{missing} is not installed (`pip install onnx onnxruntime` makes CPU runs about 2x faster)"
        )
    size = fp32_bytes()
    if size >= ONNX_MAX_BYTES:
        return use_torch(f"{size / 2**30:.1f} GiB of fp32 weights: over the 2 GiB limit of one ONNX file")
    if failure := failed_before():
        return use_torch(f"its ONNX export failed before ({failure})")
    return BackendChoice(AUTO, "onnx", f"CPU, fp32, {size / 2**20:.0f} MiB of weights")


def _missing_onnx() -> str | None:
    import importlib.util

    return next((m for m in ("onnx", "onnxruntime") if importlib.util.find_spec(m) is None), None)


def load_encoder(spec: EncoderSpec, model=None) -> TextEncoder:
    """Build the encoder `spec` describes, in this process (the main one, a worker or a Ray task).

    `model`: a sentence-transformers model already in memory (one being trained) to use instead of
    loading `spec.path`; everything else (batching, tokenisation, the ONNX export) is as for a load."""
    if spec.backend not in BACKENDS:  # `auto` included: `choose_backend` settles it first
        raise ValueError(f"backend must be one of {BACKENDS}, not {spec.backend!r}")
    if spec.threads and (spec.device or "cpu").startswith("cpu"):
        import torch

        torch.set_num_threads(spec.threads)
    if spec.backend in ONNX_BACKENDS:
        from .onnx_backend import OnnxEncoder

        return OnnxEncoder(spec, model)
    return TorchEncoder(spec, model)


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class TorchEncoder:
    """sentence-transformers' own `encode` (it sorts each call by length and pads per batch)."""

    def __init__(self, spec: EncoderSpec, model=None):
        from .loaders import load_sentence_transformer

        self.spec = spec
        self.model = (
            model
            if model is not None
            else load_sentence_transformer(
                Path(spec.path),
                device=spec.device,
                dtype=spec.dtype,
                max_length=spec.max_length,
                trust_remote_code=spec.trust_remote_code,
                backend=spec.backend,
            )
        )
        # What tokenises: the model, or a memo of its `preprocess` that a caller hands in as
        # `tokenizing` (the trainer evaluator: the same corpus is tokenised once for every evaluation).
        self.tokenizing = self.model
        self.max_seq_length = self.model.max_seq_length
        # A transformer on the CPU runs in small batches (a static embedding is fastest in big ones),
        # of equal token counts (`batching`).
        self.cpu_transformer = str(self.model.device).startswith("cpu") and hasattr(
            self.model[0], "auto_model"
        )
        self.batch_size = cpu_batch(spec.batch_size) if self.cpu_transformer else spec.batch_size
        self.model.eval()

    @property
    def by_tokens(self) -> bool:
        """Batches of equal token counts (`batching`) for CPU transformers; a model that truncates its
        vectors (`truncate_dim`) keeps sentence-transformers' `encode`, which applies it."""
        return self.cpu_transformer and self.model.truncate_dim is None

    def encode(self, texts: list[str], prompt: str = "", task: str | None = None) -> np.ndarray:
        """`task` ("query" / "document") picks the route of a model with a `Router` (separate query
        and document stacks); a model without one encodes the same either way."""
        if self.by_tokens and texts:
            return self._encode_by_tokens(texts, prompt)
        emb = self.model.encode(
            texts,
            batch_size=self.batch_size,
            prompt=prompt or None,
            convert_to_numpy=True,
            show_progress_bar=False,
            **({"task": task} if task else {}),
        )
        return np.asarray(emb, dtype=np.float32)

    def _encode_by_tokens(self, texts: list[str], prompt: str) -> np.ndarray:
        """What `model.encode` returns (same prompt rule: an empty one means the model's default),
        in batches of equal token counts."""
        import torch

        model = self.model
        prompt = prompt or (
            model.prompts.get(model.default_prompt_name) if model.default_prompt_name else None
        )
        with torch.inference_mode():
            return encode_batches(
                self.tokenizing,
                texts,
                prompt,
                self.batch_size,
                lambda f: model(f)["sentence_embedding"].float().numpy(),
            )
