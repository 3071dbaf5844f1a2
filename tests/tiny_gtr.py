"""Build a tiny, randomly initialised GTR-architecture model in sentence-transformers layout.

GTR checkpoints are T5 encoders + mean pooling + a dense projection + normalization. Real weights
are not obtainable offline, so tests build the same architecture at toy size and load it through
exactly the loader the gtr-t5-* presets use.  `build_gtr` takes the sizes as a parameter:
benchmarks/bench_gpu.py builds gtr-t5-base and gtr-t5-large shapes with it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

WORDS = (
    "retrieval dense encoder query document passage bm25 model search index corpus bread oven "
    "yeast comet planet star tomato garden run marathon water chess coffee tea bee sleep memory"
).split()


@dataclass(frozen=True)
class T5Shape:
    """The sizes of a GTR checkpoint: its T5 encoder's config and the dense projection's output."""

    d_model: int
    num_layers: int
    num_heads: int
    d_ff: int
    vocab_size: int = 32128  # T5's (32,000 SentencePiece pieces + 100 sentinels + padding to 128)
    d_kv: int = 64
    out_dim: int = 768


TINY = T5Shape(d_model=32, num_layers=2, num_heads=4, d_ff=64, vocab_size=0, d_kv=8, out_dim=16)


def build_tiny_gtr(path: Path, seed: int = 0) -> Path:
    return build_gtr(path, TINY, seed)


def build_gtr(
    path: Path,
    shape: T5Shape,
    seed: int = 0,
    texts: Iterable[str] | None = None,
    tokenizer_vocab: int = 120,
    weights_dtype: str | None = None,
    name: str = "model",
    max_seq_length: int = 512,
) -> Path:
    """A GTR-architecture model of `shape` with seeded random weights, saved as sentence-transformers
    saves the hub checkpoints (`path/name`).  The tokenizer is trained here: a Unigram one on `WORDS`
    (the default), or a BPE one of `tokenizer_vocab` pieces on `texts`; a `vocab_size` of 0 sizes the
    embedding to the tokenizer.  `weights_dtype="float16"` stores the weights as the hub copies do."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize, Pooling, Transformer
    from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

    tok = _tokenizer(texts, tokenizer_vocab)
    eos = tok.token_to_id("</s>")
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )

    torch.manual_seed(seed)
    config = T5Config(
        vocab_size=shape.vocab_size or tok.get_vocab_size(),
        d_model=shape.d_model,
        d_kv=shape.d_kv,
        d_ff=shape.d_ff,
        num_layers=shape.num_layers,
        num_heads=shape.num_heads,
        pad_token_id=0,
        eos_token_id=eos,
        decoder_start_token_id=0,
    )
    hf_dir = path / "_hf"
    encoder = T5EncoderModel(config)
    if weights_dtype is not None:
        encoder = encoder.to(getattr(torch, weights_dtype))
    encoder.save_pretrained(hf_dir)
    hf_tok.save_pretrained(hf_dir)

    word = Transformer(str(hf_dir), max_seq_length=max_seq_length)
    pooling = Pooling(word.get_embedding_dimension(), pooling_mode="mean")
    dense = Dense(shape.d_model, shape.out_dim, bias=False, activation_function=torch.nn.Identity())
    model = SentenceTransformer(modules=[word, pooling, dense, Normalize()], device="cpu")
    out = path / name
    model.save(str(out))
    return out


def _tokenizer(texts: Iterable[str] | None, vocab: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    specials = ["<pad>", "</s>", "<unk>"]
    if texts is None:
        tok = Tokenizer(models.Unigram())
        trainer = trainers.UnigramTrainer(vocab_size=vocab, special_tokens=specials, unk_token="<unk>")
        texts = [" ".join(WORDS)] * 4 + WORDS
    else:  # BPE: trains in seconds on a corpus (Unigram's EM takes far longer)
        tok = Tokenizer(models.BPE(unk_token="<unk>"))
        trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=specials)
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(texts, trainer)
    eos = tok.token_to_id("</s>")
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", eos)])
    return tok


def install_as_hub_snapshot(model_dir: Path, hub_cache: Path, repo_id: str, commit: str = "0" * 40) -> Path:
    """Lay the model out as the Hugging Face hub cache would after a download of `repo_id`."""
    import shutil

    repo = hub_cache / ("models--" + repo_id.replace("/", "--"))
    snap = repo / "snapshots" / commit
    shutil.copytree(model_dir, snap)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snap
