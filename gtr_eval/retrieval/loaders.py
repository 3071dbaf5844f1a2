"""The one loader per model family, for presets, hub ids and local folders alike.

Every dense model, the GTR presets included, goes through `load_sentence_transformer`; learned sparse
models through `load_sparse_encoder`, late interaction through `load_multivector_encoder`,
cross-encoders through `load_cross_encoder`.  A model that cannot be loaded is a `ModelError` (a
pair failure a sweep reports and goes on from); running out of memory is left as it is.
`trust_remote_code` stays off unless the user asks: a model folder must not run code by default.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

from .. import defaults
from ..errors import ModelError, is_out_of_memory
from ..progress import quiet_dependencies


def _loading(fn):
    """Errors while loading a model become `ModelError` naming the folder (out of memory stays)."""

    @functools.wraps(fn)
    def load(path, *args, **kwargs):
        try:
            with quiet_dependencies():  # no "Loading weights" bar: the pair's own lines say it
                return fn(path, *args, **kwargs)
        except ModelError:
            raise
        except Exception as e:
            if is_out_of_memory(e):
                raise
            raise ModelError(f"cannot load the model at {path} ({type(e).__name__}: {e})") from e

    return load


DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def _device_and_dtype(device: str | None, dtype: str):
    """The device to load on (cuda when available) and the torch dtype; a warning for half precision
    on the CPU."""
    import torch

    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, not {dtype!r}")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if dtype != "fp32" and device == "cpu":
        warnings.warn(f"{dtype} on the CPU changes the scores; fp32 is the CPU default", stacklevel=4)
    return device, getattr(torch, DTYPES[dtype])


@_loading
def load_sentence_transformer(
    path: Path,
    device: str | None = None,
    dtype: str = defaults.DTYPE,
    max_length: int | None = None,
    trust_remote_code: bool = False,
    backend: str = "torch",
):
    """The one loader for every dense model, GTR presets included."""
    from sentence_transformers import SentenceTransformer

    device, torch_dtype = _device_and_dtype(device, dtype)
    kwargs = {"model_kwargs": {"torch_dtype": torch_dtype}} if backend == "torch" else {}
    model = SentenceTransformer(
        str(path), device=device, trust_remote_code=trust_remote_code, backend=backend, **kwargs
    )
    if max_length is not None:
        model.max_seq_length = max_length
    return model


def _load_family_model(cls, path: Path, device: str | None, dtype: str, trust_remote_code: bool):
    device, torch_dtype = _device_and_dtype(device, dtype)
    return cls(
        str(path),
        device=device,
        trust_remote_code=trust_remote_code,
        model_kwargs={"torch_dtype": torch_dtype},
    )


@_loading
def load_sparse_encoder(
    path: Path,
    device: str | None = None,
    dtype: str = defaults.DTYPE,
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


@_loading
def load_multivector_encoder(
    path: Path,
    device: str | None = None,
    dtype: str = defaults.DTYPE,
    document_length: int | None = None,
    trust_remote_code: bool = False,
):
    """The one loader for late-interaction models: Stanford ColBERT, PyLate and native saves.

    lightonai's PyLate saves name their projection `pylate.models.Dense`, a spelling
    sentence-transformers only knows as `pylate.models.Dense.Dense`: `compat.multivector_encoder_class`
    resolves both to the same Dense module.  `document_length` sets the document truncation (queries
    keep the checkpoint's fixed, [MASK]-expanded length).
    """
    from ..compat import multivector_encoder_class

    model = _load_family_model(multivector_encoder_class(), path, device, dtype, trust_remote_code)
    if document_length is not None:
        model[0].document_length = document_length
    return model


@_loading
def load_cross_encoder(
    path: Path,
    device: str | None = None,
    dtype: str = defaults.DTYPE,
    max_length: int | None = None,
    trust_remote_code: bool = False,
):
    """sentence-transformers' CrossEncoder with its default activation; one score per pair or an error."""
    from sentence_transformers import CrossEncoder

    device, torch_dtype = _device_and_dtype(device, dtype)
    model = CrossEncoder(
        str(path),
        device=device,
        max_length=max_length,
        trust_remote_code=trust_remote_code,
        model_kwargs={"torch_dtype": torch_dtype},
    )
    if model.num_labels != 1:
        raise ModelError(
            f"{path}: the cross-encoder gives {model.num_labels} scores per pair; re-ranking needs one"
        )
    return model
