"""Build a tiny, randomly initialised GTR-architecture model in sentence-transformers layout.

GTR checkpoints are T5 encoders + mean pooling + a dense projection + normalization. Real weights
are not obtainable offline, so tests build the same architecture at toy size and load it through
exactly the loader the gtr-t5-* presets use.
"""

from __future__ import annotations

from pathlib import Path

WORDS = (
    "retrieval dense encoder query document passage bm25 model search index corpus bread oven "
    "yeast comet planet star tomato garden run marathon water chess coffee tea bee sleep memory"
).split()


def build_tiny_gtr(path: Path, seed: int = 0) -> Path:
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize, Pooling, Transformer
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=120, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>"
    )
    tok.train_from_iterator([" ".join(WORDS)] * 4 + WORDS, trainer)
    eos = tok.token_to_id("</s>")
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", eos)])
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )

    torch.manual_seed(seed)
    config = T5Config(
        vocab_size=tok.get_vocab_size(),
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        pad_token_id=0,
        eos_token_id=eos,
        decoder_start_token_id=0,
    )
    hf_dir = path / "_hf"
    T5EncoderModel(config).save_pretrained(hf_dir)
    hf_tok.save_pretrained(hf_dir)

    word = Transformer(str(hf_dir), max_seq_length=512)
    pooling = Pooling(word.get_embedding_dimension(), pooling_mode="mean")
    dense = Dense(32, 16, bias=False, activation_function=torch.nn.Identity())
    model = SentenceTransformer(modules=[word, pooling, dense, Normalize()], device="cpu")
    out = path / "model"
    model.save(str(out))
    return out


def install_as_hub_snapshot(model_dir: Path, hub_cache: Path, repo_id: str, commit: str = "0" * 40) -> Path:
    """Lay the model out as the Hugging Face hub cache would after a download of `repo_id`."""
    import shutil

    repo = hub_cache / ("models--" + repo_id.replace("/", "--"))
    snap = repo / "snapshots" / commit
    shutil.copytree(model_dir, snap)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snap
