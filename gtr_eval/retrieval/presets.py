"""Published evaluation settings of known models, as data: the GTR sizes, BEIR's dense baselines,
SPLADE++, ColBERTv2, the cross-encoders BEIR re-ranks with, and the prompts popular families were
trained with.  A preset only names a model and its settings; every model loads the same way
(`loaders`), so testing the loaders on a local folder tests the GTR path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .. import defaults


@dataclass(frozen=True)
class Preset:
    """A model's published evaluation settings.  `hub_id` is the document encoder; an asymmetric
    model (DPR) names its query encoder in `query_hub_id`."""

    hub_id: str
    max_length: int | None = None
    score: str = "dot"
    normalize: bool = True
    batch_size: int = defaults.BATCH_SIZE
    query_prompt: str = ""
    doc_prompt: str = ""
    # For `run --plan` only: parameters outside the token embeddings (what costs compute per token),
    # the embedding size, and the download size of the weights.
    compute_params: int | None = None
    dim: int = 768
    weights_gb: float = 0.0
    query_hub_id: str | None = None
    title_sep: str = " "  # between title and text: BEIR's DPR setting is " [SEP] "
    source: str = ""  # where the settings are published
    family: str = "dense"  # which family runs it (`families`), known without looking at its files


# GTR: sentence-transformers ports of the paper's checkpoints; T5 encoder + mean pooling + dense
# projection + normalize, scored by dot product (= cosine), 512 tokens.  Batch sizes suit one
# 80 GB GPU in fp16 and are halved per size step; on CPU they only bound memory.
# Parameter counts: T5 1.0 base/large/3B/11B encoder configs counted by transformers on the meta
# device (totals 110M, 335M, 1.24B, 4.86B, as MTEB's model metadata lists); weights are stored in fp16.
PRESETS: dict[str, Preset] = {
    "gtr-t5-base": Preset(
        "sentence-transformers/gtr-t5-base", 512, batch_size=256, compute_params=84_954_240, weights_gb=0.22
    ),
    "gtr-t5-large": Preset(
        "sentence-transformers/gtr-t5-large", 512, batch_size=128, compute_params=302_040_576, weights_gb=0.67
    ),
    "gtr-t5-xl": Preset(
        "sentence-transformers/gtr-t5-xl", 512, batch_size=64, compute_params=1_208_010_752, weights_gb=2.48
    ),
    "gtr-t5-xxl": Preset(
        "sentence-transformers/gtr-t5-xxl", 512, batch_size=32, compute_params=4_831_892_480, weights_gb=9.73
    ),
    # MTEB's setting for this model: cosine, 256 tokens (the model's own limit). 22.7M parameters,
    # 10.8M outside the embeddings (counted on the packaged weights); the package carries them.
    "all-MiniLM-L6-v2": Preset(
        "sentence-transformers/all-MiniLM-L6-v2",
        256,
        "cos",
        False,
        128,
        compute_params=10_794_624,
        dim=384,
        weights_gb=0.09,
    ),
}

# --- Dense baselines of the GTR paper's comparison (BEIR's models), with their published settings.
# Pooling and normalisation live in each checkpoint's own files; these fix what the checkpoints do
# not store: the score function (none of the first four saves one, and sentence-transformers would
# then default to cosine), prompts, max length and BEIR's title separator.  docs/families.md lists
# the sources.
# For `run --plan`: a BERT/RoBERTa-base encoder's 12 layers hold 85,054,464 parameters outside the
# embeddings (DistilBERT's 6: 42,527,232); weights_gb is the fp32 checkpoint size (DPR: both encoders).
BASE_LAYERS, DISTILBERT_LAYERS = 85_054_464, 42_527_232
DENSE_BASELINES: dict[str, Preset] = {
    "tas-b": Preset(
        "sentence-transformers/msmarco-distilbert-base-tas-b",
        512,
        "dot",
        False,
        compute_params=DISTILBERT_LAYERS,
        weights_gb=0.27,
        source="sentence-transformers model card (util.dot_score); TAS-B authors' card (CLS pooling)",
    ),
    "ance": Preset(
        "sentence-transformers/msmarco-roberta-base-ance-firstp",
        512,
        "dot",
        False,
        compute_params=BASE_LAYERS,
        weights_gb=0.5,
        source="BEIR examples/retrieval/evaluation/dense/evaluate_ance.py (score_function='dot')",
    ),
    "dpr": Preset(
        "sentence-transformers/facebook-dpr-ctx_encoder-multiset-base",
        512,
        "dot",
        False,
        compute_params=BASE_LAYERS,
        weights_gb=0.88,
        query_hub_id="sentence-transformers/facebook-dpr-question_encoder-multiset-base",
        title_sep=" [SEP] ",
        source="BEIR examples/retrieval/evaluation/dense/evaluate_dpr.py (dot, title ' [SEP] ' text)",
    ),
    "contriever-msmarco": Preset(
        "facebook/contriever-msmarco",
        512,
        "dot",
        False,
        compute_params=BASE_LAYERS,
        weights_gb=0.44,
        source="facebookresearch/contriever README and eval_beir.py (--metric dot, mean pooling, 512)",
    ),
    "e5-base-v2": Preset(
        "intfloat/e5-base-v2",
        512,
        "cos",
        True,
        compute_params=BASE_LAYERS,
        weights_gb=0.44,
        query_prompt="query: ",
        doc_prompt="passage: ",
        source="intfloat/e5-base-v2 model card ('query: ' / 'passage: ', 512 tokens, cosine)",
    ),
    "bge-base-en-v1.5": Preset(
        "BAAI/bge-base-en-v1.5",
        512,
        "cos",
        True,
        compute_params=BASE_LAYERS,
        weights_gb=0.44,
        query_prompt="Represent this sentence for searching relevant passages: ",
        source="BAAI/bge-base-en-v1.5 model card and FlagEmbedding (query instruction, CLS, normalized)",
    ),
}
PRESETS.update(DENSE_BASELINES)

# Prompts that popular families were trained with; running them without costs several points.
KNOWN_PROMPTS: list[tuple[str, str, str]] = [
    (
        r"(^|/)(multilingual-)?e5-.*instruct",
        "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery: ",
        "",
    ),
    (r"(^|/)(multilingual-)?e5-", "query: ", "passage: "),
    (r"(^|/)bge-.*-en(-v1\.5)?$", "Represent this sentence for searching relevant passages: ", ""),
    (r"(^|/)bge-.*-zh", "为这个句子生成表示以用于检索相关文章：", ""),
    (
        r"(^|/)gte-qwen",
        "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery: ",
        "",
    ),
    (r"(^|/)gte-(base|large|small)-en-v1\.5$", "", ""),
]


def known_prompts(model: str) -> tuple[str, str] | None:
    name = model.lower().rstrip("/")
    for pattern, q, d in KNOWN_PROMPTS:
        if re.search(pattern, name):
            return q, d
    return None


PRESETS.update(
    {
        # SPLADE++ EnsembleDistil: naver's training and BEIR evaluation truncate queries and
        # documents at 256 tokens (sentence-transformers would use 512); scored by dot product.
        "splade-pp-ed": Preset(
            "naver/splade-cocondenser-ensembledistil",
            256,
            "dot",
            False,
            32,
            compute_params=BASE_LAYERS,
            weights_gb=0.44,
            family="sparse",
        ),
        # ColBERTv2: queries are the checkpoint's 32 tokens ([MASK]-expanded); documents 300 tokens,
        # as the ColBERT introduction notebook indexes out-of-domain collections (LoTTE) with this
        # checkpoint; its own `doc_maxlen` 180 (artifact.metadata) suits MS MARCO's short passages.
        "colbertv2": Preset(
            "colbert-ir/colbertv2.0",
            300,
            "maxsim",
            False,
            32,
            compute_params=BASE_LAYERS,
            weights_gb=0.44,
            family="multivector",
        ),
    }
)
# Short names for the cross-encoders BEIR and the sentence-transformers docs use (`rerank -m`).
CROSS_ENCODERS = {
    "ms-marco-MiniLM-L6-v2": "cross-encoder/ms-marco-MiniLM-L6-v2",
    "ms-marco-MiniLM-L12-v2": "cross-encoder/ms-marco-MiniLM-L12-v2",
}


def _last_part(name: str) -> str:
    return name.replace("\\", "/").rstrip("/").split("/")[-1].lower()


def preset_of(name: str) -> tuple[str, Preset] | None:
    """The preset whose document model `name` is: a preset name, its hub id, or a folder (a local
    copy, a hub-cache snapshot) named like that hub id.  Known models get their published settings
    (and a warning when run otherwise) however they are given."""
    if name in PRESETS:
        return name, PRESETS[name]
    return preset_by_model_name(name)


def preset_by_model_name(name: str) -> tuple[str, Preset] | None:
    """Matched by the model's hub id or its last part only (a folder named `dpr` is not the preset)."""
    for key, preset in PRESETS.items():
        if preset.hub_id == name:
            return key, preset
    last = _last_part(name)
    for key, preset in PRESETS.items():
        if _last_part(preset.hub_id) == last:
            return key, preset
    return None


def pair_preset(query: str, doc: str) -> tuple[str, Preset] | None:
    """The asymmetric preset (DPR) whose query and document models these are (hub ids or folders)."""
    for key, preset in PRESETS.items():
        if (
            preset.query_hub_id
            and _last_part(preset.query_hub_id) == _last_part(query)
            and _last_part(preset.hub_id) == _last_part(doc)
        ):
            return key, preset
    return None
