"""Batches of equal token counts (`batching`) and the CPU encoders built on them: the same vectors as
sentence-transformers' own `encode`, every text once, no token dropped."""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from gtr_eval.retrieval import hardware
from gtr_eval.retrieval.backends import EncoderSpec
from gtr_eval.retrieval.batching import token_batches
from gtr_eval.retrieval.encoders import load_encoder
from tests.tiny_gtr import WORDS


def _texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 40))) for _ in range(n)]


class _WordModel:
    """A stand-in with sentence-transformers' `preprocess` contract: one token per word plus one,
    padded with -1 on `side`, a prompt length and a modality passed through."""

    def __init__(self, side: str | None):
        self.tokenizer = type("Tok", (), {"padding_side": side})() if side else object()
        self.side = side or "right"

    def preprocess(self, texts, prompt=None):
        ids = [[len(w) for w in ((prompt or "") + t).split()] + [0] for t in texts]
        width = max(map(len, ids))
        pad = [[-1] * (width - len(x)) for x in ids]
        rows = [x + p if self.side == "right" else p + x for x, p in zip(ids, pad, strict=True)]
        input_ids = torch.tensor(rows)
        return {
            "input_ids": input_ids,
            "attention_mask": (input_ids >= 0).long(),
            "prompt_length": 1,
            "modality": "text",
            "lengths": torch.tensor([len(x) for x in ids]),
        }


@pytest.mark.parametrize("side", ["right", "left", None])
def test_every_text_once_longest_first_with_no_token_lost_or_padding_kept(side):
    texts = _texts(23)
    model = _WordModel(side)
    seen, widths = [], []
    for rows, feats in token_batches(model, texts, "q: ", batch_size=4, chunk=10):
        assert feats["prompt_length"] == 1 and feats["modality"] == "text"  # passed through
        mask, ids = feats["attention_mask"], feats["input_ids"]
        assert mask.shape[0] == len(rows) <= 4
        for row, m, x in zip(rows, mask, ids, strict=True):
            want = model.preprocess([texts[row]], "q: ")["input_ids"][0]
            assert x[m.bool()].tolist() == want.tolist()  # every token, in order
        assert (feats["lengths"] == mask.sum(1)).all()  # 1-d per-text tensors follow their rows
        if side is not None:  # a trimmed batch: its longest text fills it
            assert mask.sum(1).max() == mask.shape[1]
            widths.append(mask.shape[1])
        seen += rows.tolist()
    assert sorted(seen) == list(range(len(texts)))
    if side is not None:  # longest first within each chunk of 10
        assert widths[:3] == sorted(widths[:3], reverse=True)


def test_the_torch_encoder_gives_sentence_transformers_vectors(tiny_gtr):
    enc = load_encoder(EncoderSpec(str(tiny_gtr), batch_size=256, device="cpu"))
    assert enc.by_tokens
    texts = _texts(70, seed=1)
    ours = enc.encode(texts, "query: ")
    theirs = enc.model.encode(texts, batch_size=16, prompt="query: ", convert_to_numpy=True)
    np.testing.assert_allclose(ours, theirs, atol=1e-6)
    assert not np.allclose(ours, enc.model.encode(texts, batch_size=16, convert_to_numpy=True), atol=1e-4)


def test_an_empty_prompt_means_the_models_default_one(tiny_gtr):
    enc = load_encoder(EncoderSpec(str(tiny_gtr), device="cpu"))
    enc.model.prompts = {"doc": "passage: "}
    enc.model.default_prompt_name = "doc"
    texts = _texts(9, seed=2)
    np.testing.assert_allclose(enc.encode(texts), enc.model.encode(texts, convert_to_numpy=True), atol=1e-6)
    np.testing.assert_allclose(enc.encode(texts), enc.encode(texts, "passage: "), atol=1e-6)


def test_a_left_padding_tokenizer_gives_the_same_vectors(tiny_gtr):
    enc = load_encoder(EncoderSpec(str(tiny_gtr), device="cpu"))
    texts = _texts(30, seed=3)
    right = enc.encode(texts)
    enc.model.tokenizer.padding_side = "left"
    np.testing.assert_allclose(enc.encode(texts), right, atol=1e-5)


def test_a_truncating_model_keeps_sentence_transformers_path(tiny_gtr):
    enc = load_encoder(EncoderSpec(str(tiny_gtr), device="cpu"))
    enc.model.truncate_dim = 4
    assert not enc.by_tokens
    assert enc.encode(_texts(5)).shape == (5, 4)


GLIBC = hardware.platform.system() == "Linux" and hardware.platform.libc_ver()[0] == "glibc"
FAULTS = textwrap.dedent(
    """
    import ctypes, resource, sys
    from gtr_eval.retrieval import hardware
    if sys.argv[1] == "reuse":
        assert hardware.reuse_freed_memory()
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    size = 48 << 20  # one big activation, allocated, filled and freed again and again
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        p = libc.malloc(size)
        ctypes.memset(p, 1, size)
        libc.free(p)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """
)


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_freed_activations_are_reused_not_faulted_in_again():
    def faults(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, check=True)
        return int(out.stdout)

    pages = (48 << 20) // 4096
    assert faults("default") > 15 * pages  # glibc maps and zeroes the block afresh each time
    assert faults("reuse") < 3 * pages  # faulted in once, then reused
