"""Tiny, randomly initialised retrieval models in the on-disk layouts of real hub checkpoints.

Real weights are not reachable offline, so each builder writes the *same files* a real checkpoint has
(config.json / tokenizer / ``modules.json`` / per-module sub-folders / ``config_sentence_transformers.json``
/ ``artifact.metadata`` ...) but with a 2-layer, hidden-32 BERT and a 136-entry WordPiece vocabulary
trained with the ``tokenizers`` library. The folders load with the normal sentence-transformers 6
constructors (``SparseEncoder(path)``, ``MultiVectorEncoder(path)``, ``CrossEncoder(path)``,
``SentenceTransformer(path)``), i.e. through exactly the loader code the real presets hit.

Layouts reproduced (docs/families.md names the real checkpoints):

* ``build_tiny_splade``      naver/splade-* : ``layout="st"`` = the layout naver added for ST support
                             (modules.json with ``sentence_transformers.sparse_encoder.models.MLMTransformer``
                             + ``1_SpladePooling``); ``layout="hf"`` = plain ``BertForMaskedLM`` folder with no
                             ST files (the original naver/splade-cocondenser-ensembledistil upload); ST6 then
                             builds Transformer(fill-mask) + SpladePooling("max") itself.
* ``build_tiny_colbert``     ``layout="pylate"`` = PyLate save (``model_type: "ColBERT"``, Transformer + ``1_Dense``
                             with ``pylate.models.Dense.Dense``, query/document prefix ``[unused0]``/``[unused1]``
                             like lightonai/colbertv2.0); ``layout="stanford"`` = colbert-ir/colbertv2.0
                             (``architectures: ["HF_ColBERT"]``, ``linear.weight`` inside the root weights file,
                             ``artifact.metadata``); ``layout="st"`` = native ST6 ``MultiVectorEncoder.save``.
* ``build_tiny_cross_encoder`` cross-encoder/ms-marco-MiniLM-L6-v2: plain ``BertForSequenceClassification``
                             (num_labels=1) with ``sbert_ce_default_activation_function = Identity`` in config.json.
* ``build_tiny_dense_pair``  sentence-transformers/facebook-dpr-{question,ctx}_encoder-*: two ST folders,
                             Transformer + CLS Pooling, legacy ``sentence_transformers.models.*`` type names.
* ``build_tiny_router``      one ST6 model whose ``Router`` sends ``task="query"``/``"document"`` to different
                             Transformer+Pooling stacks (written by ``SentenceTransformer.save``).
* ``build_tiny_inference_free_splade`` SparseEncoder with a Router: query = ``SparseStaticEmbedding`` (IDF),
                             document = MLM + SpladePooling (opensearch "doc-only"/inference-free layout).

Every builder is deterministic (fixed seed) and takes well under a second after the first import.
"""

from __future__ import annotations

import functools
import json
import shutil
import string
from pathlib import Path

WORDS = (
    "retrieval dense sparse encoder query document passage bm25 model search index corpus bread oven "
    "yeast comet planet star tomato garden run marathon water chess coffee tea bee sleep memory "
    "the a of and in is to what how why who where does baking rising orbit grows brewing"
).split()

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused0]", "[unused1]"]
HIDDEN = 32
ST_VERSION = {"sentence_transformers": "5.0.0", "transformers": "4.53.0", "pytorch": "2.7.0"}

__all__ = [
    "WORDS",
    "build_tiny_splade",
    "build_tiny_inference_free_splade",
    "build_tiny_colbert",
    "build_tiny_cross_encoder",
    "build_tiny_dense_pair",
    "build_tiny_router",
]


# --------------------------------------------------------------------------------------------- helpers
@functools.lru_cache(maxsize=1)
def _vocab() -> tuple[tuple[str, int], ...]:
    """Train a tiny uncased WordPiece vocabulary (BERT-style normaliser / pre-tokenizer) and canonicalise it.

    Punctuation is forced into the alphabet so that ColBERT's punctuation skiplist resolves to real ids,
    and ``[unused0]``/``[unused1]`` exist (as in bert-base-uncased) for the Stanford ColBERT markers.

    Why the canonicalisation: the ``tokenizers`` trainers break count ties in Rust ``HashMap`` order, which
    is randomised per *process* (PYTHONHASHSEED does not help), so the raw trained vocab -- intermediate
    sub-words and all ids -- differs from run to run. (tests/tiny_gtr.py's Unigram vocab has
    the same problem.) We therefore train to convergence, where every training word has become one piece,
    and keep only the parts that do not depend on merge order: specials, single characters, ``##``
    continuation characters and the whole words, each group sorted. Out-of-list words still tokenize,
    WordPiece-style, into ``word-initial char + ##chars``.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=5000, special_tokens=SPECIAL_TOKENS, initial_alphabet=list(string.punctuation)
    )
    tok.train_from_iterator([" ".join(WORDS)] * 4 + WORDS, trainer)
    trained = set(tok.get_vocab())
    chars = sorted(t for t in trained if len(t) == 1)
    continuations = sorted(t for t in trained if len(t) == 3 and t.startswith("##"))
    words = sorted(t for t in trained if t in set(WORDS) and len(t) > 1)
    assert len(words) == len({w for w in WORDS if len(w) > 1}), "trainer did not converge to whole words"
    ordered = SPECIAL_TOKENS + chars + continuations + words
    return tuple((token, i) for i, token in enumerate(ordered))


def _tokenizer():
    """A transformers ``BertTokenizer`` (tokenizers backend) over the tiny vocab, model_max_length 512."""
    from transformers import BertTokenizer

    return BertTokenizer(vocab=dict(_vocab()), do_lower_case=True, model_max_length=512)


def _save_tokenizer(folder: Path) -> None:
    _tokenizer().save_pretrained(folder)
    # Real BERT checkpoints also ship vocab.txt (transformers v5 only writes tokenizer.json).
    (folder / "vocab.txt").write_text("".join(tok + "\n" for tok, _ in _vocab()), encoding="utf8")


def _bert_config(**overrides):
    from transformers import BertConfig

    kwargs = dict(
        vocab_size=len(_vocab()),
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        type_vocab_size=2,
        pad_token_id=0,
        # Larger than BERT's 0.02 so random models give visibly different scores (ties make ranking tests flaky).
        initializer_range=0.2,
    )
    kwargs.update(overrides)
    return BertConfig(**kwargs)


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf8")


def _fresh(path: Path | str) -> Path:
    path = Path(path)
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def _modules_json(*entries: tuple[str, str]) -> list[dict]:
    return [{"idx": i, "name": str(i), "path": p, "type": t} for i, (p, t) in enumerate(entries)]


def _bert_folder(folder: Path, seed: int, arch: str = "BertModel", **config_overrides) -> None:
    """Save a random BERT of class ``arch`` (+ tokenizer) as a plain HF folder."""
    import torch
    import transformers

    torch.manual_seed(seed)
    config = _bert_config(**config_overrides)
    model = getattr(transformers, arch)(config)
    model.save_pretrained(folder)
    _save_tokenizer(folder)


# ---------------------------------------------------------------------------------------------- SPLADE
def build_tiny_splade(path: Path | str, seed: int = 0, layout: str = "st", max_seq_length: int = 512) -> Path:
    """SPLADE (naver/splade-cocondenser-ensembledistil style): BertForMaskedLM + SpladePooling(max, relu).

    ``layout="st"``: modules.json [MLMTransformer @ "", SpladePooling @ "1_SpladePooling"] with the legacy
    ``sentence_transformers.sparse_encoder.models.*`` type names, sentence_bert_config.json,
    config_sentence_transformers.json (model_type SparseEncoder, similarity dot).
    ``layout="hf"``: only the HF files; ``SparseEncoder(path)`` detects ``*ForMaskedLM`` and adds
    SpladePooling(pooling_strategy="max") itself (similarity defaults to dot).
    Returns the folder to pass to ``SparseEncoder(...)``.
    """
    out = _fresh(path)
    _bert_folder(out, seed, arch="BertForMaskedLM")
    if layout == "hf":
        return out
    if layout != "st":
        raise ValueError(f"unknown layout {layout!r}")
    _write_json(
        out / "modules.json",
        _modules_json(
            ("", "sentence_transformers.sparse_encoder.models.MLMTransformer"),
            ("1_SpladePooling", "sentence_transformers.sparse_encoder.models.SpladePooling"),
        ),
    )
    _write_json(out / "sentence_bert_config.json", {"max_seq_length": max_seq_length, "do_lower_case": False})
    _write_json(
        out / "1_SpladePooling" / "config.json",
        {"pooling_strategy": "max", "activation_function": "relu", "word_embedding_dimension": len(_vocab())},
    )
    _write_json(
        out / "config_sentence_transformers.json",
        {
            "model_type": "SparseEncoder",
            "__version__": ST_VERSION,
            "prompts": {"query": "", "document": ""},
            "default_prompt_name": None,
            "similarity_fn_name": "dot",
        },
    )
    return out


def build_tiny_inference_free_splade(path: Path | str, seed: int = 0) -> Path:
    """Inference-free SPLADE: Router(query=[SparseStaticEmbedding], document=[MLM Transformer, SpladePooling]).

    Written with ``SparseEncoder.save`` (modules.json -> one Router; router_config.json; sub-folders
    ``query_0_SparseStaticEmbedding``, ``document_0_Transformer``, ``document_1_SpladePooling``).
    """
    import torch
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import (
        Router,
        SparseStaticEmbedding,
        SpladePooling,
        Transformer,
    )

    out = _fresh(path)
    hf = out / "_hf_mlm"
    _bert_folder(hf, seed, arch="BertForMaskedLM")
    doc = Transformer(str(hf), transformer_task="fill-mask")
    g = torch.Generator().manual_seed(seed + 1)
    idf = torch.rand(len(_vocab()), generator=g) * 3.0
    query = SparseStaticEmbedding(tokenizer=doc.tokenizer, weight=idf, frozen=True)
    router = Router.for_query_document(
        query_modules=[query], document_modules=[doc, SpladePooling(pooling_strategy="max")]
    )
    model = SparseEncoder(modules=[router], similarity_fn_name="dot", device="cpu")
    final = out / "model"
    model.save(str(final))
    shutil.rmtree(hf)
    return final


# --------------------------------------------------------------------------------------------- ColBERT
def _colbert_projection(seed: int, dim: int):
    import torch

    g = torch.Generator().manual_seed(seed + 1)
    return torch.randn(dim, HIDDEN, generator=g) * 0.2  # nn.Linear(HIDDEN, dim, bias=False).weight


def build_tiny_colbert(
    path: Path | str,
    seed: int = 0,
    dim: int = 16,
    layout: str = "pylate",
    query_length: int = 32,
    document_length: int = 180,
    pylate_dense_type: str = "pylate.models.Dense.Dense",
) -> Path:
    """ColBERT(v2)-style tiny model for ``MultiVectorEncoder(path)``.

    * ``layout="pylate"`` (default): the PyLate save format (e.g. lightonai/colbertv2.0, LateOn):
      root = BertModel + tokenizer + sentence_bert_config.json; ``1_Dense`` = config.json
      (in/out features, bias false, Identity) + model.safetensors (``linear.weight``); modules.json types
      ``sentence_transformers.models.Transformer`` / ``pylate_dense_type``; config_sentence_transformers.json
      with model_type "ColBERT", query_prefix "[unused0]", document_prefix "[unused1]", query_length,
      document_length, attend_to_expansion_tokens false, skiplist_words = string.punctuation.
      (lightonai/colbertv2.0 itself writes ``"pylate.models.Dense"`` -- pass that as ``pylate_dense_type``
      to reproduce; ST 6.2 cannot load that spelling without an alias.)
    * ``layout="stanford"``: colbert-ir/colbertv2.0: config.json architectures ["HF_ColBERT"], a single root
      model.safetensors holding ``bert.*`` + ``linear.weight``, artifact.metadata (query_maxlen,
      doc_maxlen, dim, mask_punctuation, attend_to_mask_tokens, [unused0]/[unused1] markers). No ST files.
    * ``layout="st"``: whatever ``MultiVectorEncoder.save`` writes for the stanford model (native ST6).
    """
    from safetensors.torch import save_file

    out = _fresh(path)
    weight = _colbert_projection(seed, dim)

    if layout in ("stanford", "st"):
        stan = out if layout == "stanford" else out / "_stanford"
        stan.mkdir(exist_ok=True)
        _bert_folder(stan, seed, arch="BertModel")
        from transformers import BertModel

        bert = BertModel.from_pretrained(stan)
        state = {f"bert.{k}": v.contiguous() for k, v in bert.state_dict().items()}
        state["linear.weight"] = weight.contiguous()
        (stan / "model.safetensors").unlink()
        save_file(state, str(stan / "model.safetensors"), metadata={"format": "pt"})
        cfg = json.loads((stan / "config.json").read_text())
        cfg["architectures"] = ["HF_ColBERT"]
        _write_json(stan / "config.json", cfg)
        _write_json(
            stan / "artifact.metadata",
            {
                "query_token_id": "[unused0]",
                "doc_token_id": "[unused1]",
                "query_token": "[Q]",
                "doc_token": "[D]",
                "similarity": "cosine",
                "query_maxlen": query_length,
                "attend_to_mask_tokens": False,
                "interaction": "colbert",
                "dim": dim,
                "doc_maxlen": document_length,
                "mask_punctuation": True,
            },
        )
        if layout == "stanford":
            return out
        from sentence_transformers import MultiVectorEncoder

        model = MultiVectorEncoder(str(stan), device="cpu")
        final = out / "model"
        model.save(str(final))
        shutil.rmtree(stan)
        return final

    if layout != "pylate":
        raise ValueError(f"unknown layout {layout!r}")
    _bert_folder(out, seed, arch="BertModel")
    _write_json(out / "sentence_bert_config.json", {"max_seq_length": 512, "do_lower_case": False})
    dense = out / "1_Dense"
    _write_json(
        dense / "config.json",
        {
            "in_features": HIDDEN,
            "out_features": dim,
            "bias": False,
            "activation_function": "torch.nn.modules.linear.Identity",
        },
    )
    save_file(
        {"linear.weight": weight.contiguous()}, str(dense / "model.safetensors"), metadata={"format": "pt"}
    )
    _write_json(
        out / "modules.json",
        _modules_json(("", "sentence_transformers.models.Transformer"), ("1_Dense", pylate_dense_type)),
    )
    _write_json(
        out / "config_sentence_transformers.json",
        {
            "model_type": "ColBERT",
            "__version__": ST_VERSION,
            "prompts": {"query": "", "document": ""},
            "default_prompt_name": None,
            "similarity_fn_name": "MaxSim",
            "query_prefix": "[unused0]",
            "document_prefix": "[unused1]",
            "query_length": query_length,
            "document_length": document_length,
            "attend_to_expansion_tokens": False,
            "skiplist_words": list(string.punctuation),
        },
    )
    return out


# --------------------------------------------------------------------------------------- cross-encoder
def build_tiny_cross_encoder(path: Path | str, seed: int = 0) -> Path:
    """cross-encoder/ms-marco-MiniLM-L6-v2 layout: plain BertForSequenceClassification, num_labels=1.

    No modules.json / ST files. config.json carries ``sbert_ce_default_activation_function:
    torch.nn.modules.linear.Identity`` like the real repo, so ``CrossEncoder.predict`` returns raw logits.
    """
    out = _fresh(path)
    _bert_folder(
        out,
        seed,
        arch="BertForSequenceClassification",
        num_labels=1,
        sbert_ce_default_activation_function="torch.nn.modules.linear.Identity",
    )
    return out


# ------------------------------------------------------------------------------------ dense bi-encoders
def _dense_st_folder(folder: Path, seed: int, max_seq_length: int, pooling: str) -> None:
    """Legacy ST bi-encoder folder (DPR / TAS-B / ANCE ports): Transformer @ root + 1_Pooling."""
    _bert_folder(folder, seed, arch="BertModel")
    _write_json(
        folder / "modules.json",
        _modules_json(
            ("", "sentence_transformers.models.Transformer"),
            ("1_Pooling", "sentence_transformers.models.Pooling"),
        ),
    )
    _write_json(
        folder / "sentence_bert_config.json", {"max_seq_length": max_seq_length, "do_lower_case": False}
    )
    _write_json(
        folder / "1_Pooling" / "config.json",
        {
            "word_embedding_dimension": HIDDEN,
            "pooling_mode_cls_token": pooling == "cls",
            "pooling_mode_mean_tokens": pooling == "mean",
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
        },
    )
    # The DPR ports predate similarity_fn_name: ST then defaults to *cosine*; DPR needs dot (BEIR's setting).
    _write_json(folder / "config_sentence_transformers.json", {"__version__": ST_VERSION})


def build_tiny_dense_pair(path: Path | str, seed: int = 0, max_seq_length: int = 512) -> tuple[Path, Path]:
    """DPR-style asymmetric pair as two separate ST folders with different random weights, CLS pooling.

    Returns ``(query_path, doc_path)``; load each with ``SentenceTransformer(p)`` and score with dot.
    """
    out = _fresh(path)
    q, d = out / "question_encoder", out / "ctx_encoder"
    _dense_st_folder(q, seed, max_seq_length, "cls")
    _dense_st_folder(d, seed + 1000, max_seq_length, "cls")
    return q, d


def build_tiny_router(path: Path | str, seed: int = 0) -> Path:
    """One SentenceTransformer whose Router maps task "query"/"document" to different BERT+CLS-pooling stacks.

    Saved with ``SentenceTransformer.save``: modules.json -> [Router @ ""], router_config.json,
    ``query_0_Transformer/``, ``query_1_Pooling/``, ``document_0_Transformer/``, ``document_1_Pooling/``.
    Default route (plain ``encode``) is "document".
    """
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Router, Transformer
    from sentence_transformers.sentence_transformer.modules import Pooling

    out = _fresh(path)
    qh, dh = out / "_hf_q", out / "_hf_d"
    _bert_folder(qh, seed, arch="BertModel")
    _bert_folder(dh, seed + 1000, arch="BertModel")
    q_tf, d_tf = Transformer(str(qh)), Transformer(str(dh))
    router = Router.for_query_document(
        query_modules=[q_tf, Pooling(HIDDEN, pooling_mode="cls")],
        document_modules=[d_tf, Pooling(HIDDEN, pooling_mode="cls")],
    )
    model = SentenceTransformer(modules=[router], similarity_fn_name="dot", device="cpu")
    final = out / "model"
    model.save(str(final))
    shutil.rmtree(qh)
    shutil.rmtree(dh)
    return final
