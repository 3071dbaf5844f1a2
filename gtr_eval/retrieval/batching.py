"""Batches of texts with equal token counts, for the CPU encoders (torch and ONNX).

sentence-transformers sorts a call's texts by characters and pads each batch to its longest text.
Characters are a rough proxy for tokens, so a batch of "equal" length still carries padding, and
every padded position costs a full pass through the model.  Here a chunk of texts is tokenised once
(padded to its longest text), sorted by its real token counts, and each batch takes its rows and only
the L columns that hold tokens, L its longest text.  The cut is exact: the columns dropped are
padding in every row of the batch, and the attention mask hides padding anyway.

Measured on the 2-core Intel Xeon, all-MiniLM-L6-v2 over the 5,183 SciFact documents in batches of 16
(one process, the same model): 127.6 s in token-count batches against 132.1 s for
sentence-transformers' own `encode`; the vectors differ by float rounding (max 1.7e-7).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from ..progress import tick

# Texts tokenised at once: bounds the padded id tensors (4,096 × 512 tokens × 3 int64 ≈ 50 MB).
CHUNK = 4096


def padding_side(model) -> str | None:
    """ "right" or "left" (where the model's tokenizer pads), None when it has no such tokenizer."""
    side = getattr(getattr(model, "tokenizer", None), "padding_side", None)
    return side if side in ("right", "left") else None


def token_batches(
    model, texts: list[str], prompt: str | None, batch_size: int, chunk: int = CHUNK
) -> Iterator[tuple[np.ndarray, dict]]:
    """`(rows, features)` per batch, longest first: `rows` index `texts`; every row is yielded once.

    `features` is what the sentence-transformers `model` takes in `forward` (and the ONNX graph as
    inputs): `model.preprocess` output, each per-text tensor cut to the batch's rows and tokens.  A
    model whose padding side is unknown gets sentence-transformers' batches (by characters) instead.
    """
    side = padding_side(model)
    if side is None:
        yield from _char_batches(model, texts, prompt, batch_size)
        return
    import torch

    for start in range(0, len(texts), chunk):
        part = texts[start : start + chunk]
        feats = model.preprocess(part, prompt=prompt)
        mask = feats.get("attention_mask")
        if not isinstance(mask, torch.Tensor):
            yield from _char_batches(model, part, prompt, batch_size, start)
            continue
        lengths = mask.sum(1).numpy()
        order = np.argsort(-lengths, kind="stable")
        for s in range(0, len(part), batch_size):
            rows = order[s : s + batch_size]
            width = max(1, int(lengths[rows[0]]))
            cols = slice(0, width) if side == "right" else slice(mask.shape[1] - width, None)
            picked = torch.from_numpy(rows)
            yield start + rows, {k: _cut(v, picked, cols, len(part)) for k, v in feats.items()}


def encode_batches(
    model, texts: list[str], prompt: str | None, batch_size: int, run: Callable[[dict], np.ndarray]
) -> np.ndarray:
    """`run(features)` over the `token_batches` of `texts`, its rows put back in `texts`' order."""
    out = None
    for rows, feats in token_batches(model, texts, prompt, batch_size):
        emb = run(feats)
        if out is None:
            out = np.empty((len(texts), emb.shape[1]), dtype=np.float32)
        out[rows] = emb
        tick(len(rows))  # a progress bar moves per batch, not per shard
    return out


def _char_batches(model, texts: list[str], prompt: str | None, batch_size: int, start: int = 0):
    """sentence-transformers' batching: sorted by characters, each batch tokenised on its own."""
    order = np.argsort([-len(t) for t in texts], kind="stable")
    for s in range(0, len(texts), batch_size):
        rows = order[s : s + batch_size]
        yield start + rows, model.preprocess([texts[i] for i in rows], prompt=prompt)


def _cut(value, rows, cols: slice, n: int):
    """A per-text tensor cut to `rows` (and 2-d ones to `cols`); anything else (a prompt length, the
    modality) passes through unchanged."""
    import torch

    if not isinstance(value, torch.Tensor) or value.ndim == 0 or value.shape[0] != n:
        return value
    value = value[rows]
    return value[:, cols].contiguous() if value.ndim >= 2 else value
