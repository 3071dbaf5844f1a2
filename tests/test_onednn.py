"""oneDNN fused linear layers (`onednn`): which modules are rewritten, and that a rewritten model
gives the outputs of the original up to float rounding, with padding, for BERT, MPNet and T5 (GTR)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from gtr_eval.retrieval import onednn
from gtr_eval.retrieval.encoders import EncoderSpec, load_encoder
from gtr_eval.retrieval.onednn import FusedLinear, LinearAddNorm, fuse_linears
from tests.tiny_gtr import WORDS

pytestmark = pytest.mark.skipif(not onednn.available(), reason="needs torch's oneDNN on an x86-64 CPU")


def _inputs(vocab: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (4, 37), generator=g)
    mask = torch.ones_like(ids)
    for row, length in enumerate((37, 30, 9, 1)):  # right padding of every width
        mask[row, length:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def _fused_and_original(model: nn.Module) -> tuple[nn.Module, nn.Module, int]:
    model.eval()
    original = copy.deepcopy(model)
    return model, original, fuse_linears(model)


def _same_outputs(a: nn.Module, b: nn.Module, inputs: dict) -> None:
    with torch.inference_mode():
        x, y = a(**inputs).last_hidden_state, b(**inputs).last_hidden_state
    rows = inputs["attention_mask"].bool()  # padded positions are never read
    torch.testing.assert_close(x[rows], y[rows], rtol=1e-5, atol=1e-5)


def _bert(hidden_act: str = "gelu"):
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, hidden_act=hidden_act, initializer_range=0.2)  # fmt: skip
    return BertModel(config)


@pytest.mark.parametrize(("act", "post_op"), [("gelu", ("gelu", "none")), ("relu", ("relu", ""))])
def test_bert_blocks_run_fused_with_the_original_outputs(act, post_op):
    model, original, count = _fused_and_original(_bert(act))
    assert count == 2 * 6 + 1  # per layer: q, k, v, 2 output blocks, intermediate; the pooler
    layer = model.encoder.layer[1]
    assert isinstance(layer.intermediate, FusedLinear)
    assert (layer.intermediate.post_op, layer.intermediate.algorithm) == post_op
    assert isinstance(layer.output, LinearAddNorm) and isinstance(layer.attention.output, LinearAddNorm)
    assert (
        isinstance(layer.attention.self.query, FusedLinear) and layer.attention.self.query.post_op == "none"
    )
    assert not any(isinstance(m, nn.Linear) for m in model.modules())
    _same_outputs(model, original, _inputs(120))


def test_an_activation_without_a_onednn_twin_stays_and_only_its_product_is_fused():
    model, original, count = _fused_and_original(_bert("gelu_new"))  # the tanh formula, in Python
    intermediate = model.encoder.layer[0].intermediate
    assert type(intermediate).__name__ == "BertIntermediate"
    assert isinstance(intermediate.dense, FusedLinear) and intermediate.dense.post_op == "none"
    assert count == 13
    _same_outputs(model, original, _inputs(120))


def test_a_lookalike_with_another_forward_keeps_it():
    class Lookalike(nn.Module):  # BERT's attribute names, but not BERT's arithmetic
        def __init__(self):
            super().__init__()
            self.dense = nn.Linear(8, 8)
            self.intermediate_act_fn = nn.GELU()

        def forward(self, x):
            return self.intermediate_act_fn(self.dense(x)) * 2

    parent = nn.Sequential(Lookalike()).eval()
    x = torch.randn(3, 8)
    want = parent(x)
    assert fuse_linears(parent) == 1
    assert isinstance(parent[0], Lookalike) and isinstance(parent[0].dense, FusedLinear)
    torch.testing.assert_close(parent(x), want, rtol=1e-5, atol=1e-6)


def test_subclasses_and_hooked_linears_are_left_alone():
    class Doubling(nn.Linear):
        def forward(self, x):
            return super().forward(x) * 2

    hooked = nn.Linear(8, 8)
    hooked.register_forward_hook(lambda module, args, out: out + 1)
    parent = nn.Sequential(Doubling(8, 8), hooked).eval()
    x = torch.randn(3, 8)
    want = parent(x)
    assert fuse_linears(parent) == 0
    assert type(parent[0]) is Doubling and type(parent[1]) is nn.Linear
    torch.testing.assert_close(parent(x), want)


def test_an_output_block_with_its_arguments_swapped_is_not_taken_for_berts():
    class Swapped(nn.Module):  # BertOutput's bytecode, the residual first
        def __init__(self):
            super().__init__()
            self.dense, self.LayerNorm, self.dropout = nn.Linear(8, 8), nn.LayerNorm(8), nn.Dropout(0.1)

        def forward(self, input_tensor, hidden_states):
            hidden_states = self.dense(hidden_states)
            hidden_states = self.dropout(hidden_states)
            hidden_states = self.LayerNorm(hidden_states + input_tensor)
            return hidden_states

    parent = nn.Sequential(Swapped()).eval()
    h, r = torch.randn(2, 3, 8), torch.randn(2, 3, 8)
    want = parent[0](input_tensor=r, hidden_states=h)
    assert fuse_linears(parent) == 1  # only its product
    assert type(parent[0]) is Swapped and isinstance(parent[0].dense, FusedLinear)
    torch.testing.assert_close(parent[0](input_tensor=r, hidden_states=h), want, rtol=1e-5, atol=1e-5)


def test_mpnet_copies_of_bert_blocks_are_recognised():
    from transformers import MPNetConfig, MPNetModel

    torch.manual_seed(0)
    config = MPNetConfig(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, initializer_range=0.2)  # fmt: skip
    model, original, count = _fused_and_original(MPNetModel(config))
    layer = model.encoder.layer[0]
    assert isinstance(layer.intermediate, FusedLinear) and layer.intermediate.post_op == "gelu"
    assert isinstance(layer.output, LinearAddNorm)
    assert count > 0 and not any(isinstance(m, nn.Linear) for m in model.modules())
    _same_outputs(model, original, _inputs(120))


def test_t5_linears_are_fused_one_by_one():
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(0)
    config = T5Config(
        vocab_size=120, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, feed_forward_proj="gated-gelu"
    )  # T5 v1.1 gated feed-forward
    model, original, count = _fused_and_original(T5EncoderModel(config))
    assert count == 2 * (4 + 3)  # q, k, v, o; wi_0, wi_1, wo (no biases)
    assert not any(isinstance(m, nn.Linear) for m in model.modules())
    _same_outputs(model, original, _inputs(120))


def test_nothing_changes_in_training_mode_or_without_onednn(monkeypatch):
    model = _bert().train()
    assert fuse_linears(model) == 0
    model.eval().encoder.layer[1].output.dropout.train()  # one dropout still active
    assert fuse_linears(model) == 0
    assert isinstance(model.encoder.layer[0].intermediate.dense, nn.Linear)
    model.eval()
    monkeypatch.setattr(onednn, "available", lambda: False)
    assert fuse_linears(model) == 0
    assert isinstance(model.encoder.layer[0].attention.self.query, nn.Linear)


def test_the_cpu_torch_encoder_runs_fused_and_gives_sentence_transformers_vectors(tiny_gtr):
    from sentence_transformers import SentenceTransformer

    enc = load_encoder(EncoderSpec(str(tiny_gtr), backend="torch", device="cpu"))
    assert enc.fused_linears == 2 * (4 + 2)  # q, k, v, o; wi, wo (the tiny GTR has T5 v1.0 feed-forward)
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, size=int(n))) for n in rng.integers(1, 60, size=40)]
    want = SentenceTransformer(str(tiny_gtr), device="cpu").encode(texts, batch_size=7)
    np.testing.assert_allclose(enc.encode(texts), want, rtol=1e-5, atol=1e-6)
