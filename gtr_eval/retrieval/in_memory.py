"""A dense system over a sentence-transformers model held in memory: a model being trained.

The trainer evaluator (`gtr_eval.training`) scores the model as it is at an evaluation step, and a
later `gtr-eval run` of the checkpoint saved at that step must give the same numbers.  So this builds
the retriever `run` builds for that checkpoint (`DenseRetriever`: the same spec fields, the same
`auto` backend rule, batching, corpus order and exact search), with the model handed in instead of
loaded: what `resolve_dense` reads from a folder's files is read here from the model they would be
saved from.  Only the weights' name differs: a folder is named by its files' digest, a model in
memory by its tensors' (`tensors_sha256`), so the two never share a cache entry or an identity.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import defaults
from .backends import AUTO, BackendChoice
from .base import TEXT_FORMAT
from .dense import ROUTES, TWO_STACKS, DenseRetriever, DenseSpec
from .encoders import backend_rule, load_encoder
from .models import pooling_of, score_of

_DTYPES = {"torch.float32": "fp32", "torch.float16": "fp16", "torch.bfloat16": "bf16"}


def tensors_sha256(model) -> str:
    """sha256 over the model's tensors (names, dtypes, shapes, bytes) and its tokenizer's vocabulary:
    what the weights of a model in memory are named by (a training step changes it)."""
    import torch

    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}\0{t.dtype}\0{tuple(tensor.shape)}\0".encode())
        h.update(t.view(torch.uint8).numpy())
    vocab = getattr(getattr(model, "tokenizer", None), "get_vocab", None)
    if vocab is not None:
        h.update(repr(sorted(vocab().items())).encode())
    return h.hexdigest()


def _pooling(model) -> str | None:
    """The pooling the model's Pooling module does, named as `models.pooling` names a folder's."""
    for module in model:
        if type(module).__name__ == "Pooling":
            return pooling_of(module.get_config_dict())
    return None


def _fp32_bytes(model) -> Callable[[], int]:
    return lambda: 4 * sum(p.numel() for p in model.parameters())


def in_memory_spec(
    model,
    system: str,
    *,
    batch_size: int = defaults.BATCH_SIZE,
    top_k: int = defaults.TOP_K,
    backend: str = AUTO,
    label: str = "",
) -> DenseSpec:
    """The spec `run` would resolve for `model` saved to a folder (no preset: a checkpoint's)."""
    device = str(model.device)
    dtype = _DTYPES.get(str(next(model.parameters()).dtype), "fp32")
    router = any(type(m).__name__ == "Router" for m in model)
    if router:
        choice = BackendChoice(backend, "torch", TWO_STACKS)
    else:
        choice = backend_rule(backend, (device,), dtype, _fp32_bytes(model))
    digest = tensors_sha256(model)
    max_length = model.max_seq_length
    return DenseSpec(
        system=system,
        model=label or "(a model in memory)",
        weights_sha256=digest,
        query_weights_sha256=digest,
        query_prompt="",
        doc_prompt="",
        max_length=max_length,
        query_max_length=max_length,
        text_format=TEXT_FORMAT,
        score=score_of(model.similarity_fn_name) or "cos",
        pooling=_pooling(model),
        routes=ROUTES if router else None,
        dtype=dtype,
        batch_size=batch_size,
        device=device,
        backend=choice.backend,
        backend_requested=choice.requested,
        backend_reason=choice.reason,
        top_k=top_k,
        progress=False,
    )


class InMemoryDense(DenseRetriever):
    """`DenseRetriever` over `model` as it is now; `tokenizing` (a `TokenizationMemo`) is shared
    between the retrievers of successive evaluations; ONNX exports go to `export_dir`."""

    def __init__(self, model, spec: DenseSpec, tokenizing: Any = None, export_dir: Path | None = None):
        super().__init__(spec, cache_dir=None, progress=False)
        self._held = model
        self._tokenizing = tokenizing
        self._export_root = export_dir

    def _export_dir(self) -> Path | None:
        return self._export_root

    def encoder(self, side: str = "document"):
        if "document" not in self._encoders:
            spec = self.encoder_spec("document")
            enc = self._timed_load("load_model_s", lambda: load_encoder(spec, self._held))
            if self._tokenizing is not None:
                enc.tokenizing = self._tokenizing
            self._encoders["document"] = enc
            self._loaded["document_max_seq_length"] = enc.max_seq_length
            if (export_s := getattr(enc, "export_s", None)) is not None:
                self._loading["onnx_export_s"] = export_s
        return self._encoders["document"]


class TokenizationMemo:
    """A model's `preprocess`, remembered by its texts and prompt: a training run's evaluations
    tokenise the same corpus and queries every time, and the tokenizer does not train.

    Everything else is the model's (`__getattr__`), so batching sees the model itself.  At most
    `max_tokens` token ids are kept (padded ids counted); past that, texts are tokenised anew.
    """

    def __init__(self, model, max_tokens: int = 200_000_000):
        self._model = model
        self._memo: dict[bytes, dict] = {}
        self._kept = 0
        self.max_tokens = max_tokens

    def __getattr__(self, name: str):
        return getattr(self._model, name)

    def preprocess(self, texts: list[str], prompt: str | None = None, **kwargs) -> dict:
        h = hashlib.blake2b(digest_size=20)
        h.update(repr((prompt, sorted(kwargs.items()))).encode())
        for text in texts:
            h.update(text.encode("utf-8", "surrogatepass") + b"\0")
        key = h.digest()
        if key in self._memo:
            return dict(self._memo[key])
        features = self._model.preprocess(texts, prompt=prompt, **kwargs)
        size = int(getattr(features.get("input_ids"), "numel", lambda: 0)())
        if self._kept + size <= self.max_tokens:
            self._memo[key] = dict(features)
            self._kept += size
        return features
