"""The trainer evaluator (`gtr_eval.training.BeirEvaluator`) and reduced corpora (`pipeline.reduction`).

The main test trains a tiny randomly initialised model with sentence-transformers' trainer on
SciFact's train qrels, evaluating on SciFact test (reduced corpus) in the loop, then runs `gtr-eval
run` over the checkpoints the trainer saved: every step's NDCG@10 must be the in-loop one to 1e-6.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from gtr_eval.artifacts import CacheRoot
from gtr_eval.cli import cli
from gtr_eval.errors import Mistake
from gtr_eval.paths import BUNDLED
from gtr_eval.pipeline.reduction import reduce_unit, reduction_of
from gtr_eval.results import ResultsStore
from gtr_eval.retrieval.models import packaged_minilm

DEMO = BUNDLED / "demo"


def tiny_model(folder: Path, seed: int = 0, hidden: int = 32):
    """A randomly initialised 2-layer BERT with mean pooling and all-MiniLM-L6-v2's tokenizer (a real
    WordPiece vocabulary, so real text is not all [UNK]), built as any sentence-transformers model is."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(str(packaged_minilm()))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=hidden, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=2 * hidden, max_position_embeddings=512)  # fmt: skip
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    modules = [Transformer(str(folder), max_seq_length=128), Pooling(hidden, "mean")]
    return SentenceTransformer(modules=modules, device="cpu")


def _cli(*args: str):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result


def _demo_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "demo"
    shutil.copytree(DEMO, folder)
    return folder


# ------------------------------------------------------------------------------- reduced corpora


def test_reduced_corpus_is_relevant_plus_bm25_top_k_lines_kept_as_they_are(tmp_path):
    from gtr_eval.data.units import DatasetUnit

    unit = DatasetUnit("demo", _demo_copy(tmp_path), "test")
    reduced = reduce_unit(unit, 2, CacheRoot(tmp_path / "cache"), echo=lambda _: None)
    assert reduced.name == "demo~bm25top2"
    assert reduced.path.parent == tmp_path / "cache" / "reduced" / "demo~bm25top2"  # in the cache
    lines = (unit.path / "corpus.jsonl").read_bytes().splitlines(keepends=True)
    kept = (reduced.path / "corpus.jsonl").read_bytes().splitlines(keepends=True)
    assert kept == [line for line in lines if line in kept]  # a sub-list, in order, byte for byte
    ids = {json.loads(line)["_id"] for line in kept}
    data = unit.load(store_dir=tmp_path / "store")
    relevant = {d for docs in data.qrels.values() for d, g in docs.items() if g > 0}
    assert relevant <= ids
    out = _cli(
        "run", "-m", "bm25", "-d", unit.path, "--results-dir", tmp_path / "bm25", "--top-k", 2, "--quiet"
    )
    assert out.exit_code == 0, out.output
    (stored,) = list(ResultsStore(tmp_path / "bm25"))
    from gtr_eval.evaluation import read_trec_run

    top = {d for docs in read_trec_run(stored.run_path).values() for d in docs}
    assert top <= ids and ids == relevant | top  # nothing else
    assert len(ids) < len(lines)
    for name in ("queries.jsonl", "qrels/test.tsv"):
        assert (reduced.path / name).read_bytes() == (unit.path / name).read_bytes()
    made = reduction_of(reduced.path)
    assert made["made_from"]["top_k"] == 2 and made["documents"] == len(ids)
    assert made["made_from"]["source"]["files_sha256"]["corpus.jsonl"]


def test_reduction_is_made_again_when_its_source_changes_and_reused_otherwise(tmp_path):
    from gtr_eval.data.units import DatasetUnit

    unit = DatasetUnit("demo", _demo_copy(tmp_path), "test")
    said: list[str] = []
    first = reduce_unit(unit, 2, CacheRoot(tmp_path / "cache"), echo=said.append)
    stamp = (first.path / "corpus.jsonl").stat().st_mtime_ns
    again = reduce_unit(unit, 2, CacheRoot(tmp_path / "cache"), echo=said.append)
    assert len(said) == 1 and (again.path / "corpus.jsonl").stat().st_mtime_ns == stamp
    corpus = unit.path / "corpus.jsonl"
    corpus.write_bytes(corpus.read_bytes().replace(b"bread", b"BREAD", 1))
    remade = reduce_unit(unit, 2, CacheRoot(tmp_path / "cache"), echo=said.append)
    assert len(said) == 2  # rebuilt: the recipe names the source's digests
    from gtr_eval.io import sha256_file

    source = reduction_of(remade.path)["made_from"]["source"]["files_sha256"]
    assert source["corpus.jsonl"] == sha256_file(corpus)
    with pytest.raises(ValueError, match="positive"):
        reduce_unit(unit, 0, CacheRoot(tmp_path / "cache"))


def test_run_reduce_corpus_names_the_dataset_as_reduced_and_records_how(tmp_path):
    out = _cli("run", "-m", "bm25", "-d", _demo_copy(tmp_path), "--reduce-corpus", 2, "--data-dir",
               tmp_path / "data", "--results-dir", tmp_path / "r", "--cache-dir", tmp_path / "cache", "--quiet")  # fmt: skip
    assert out.exit_code == 0, out.output
    (stored,) = list(ResultsStore(tmp_path / "r"))
    assert stored.dataset == "demo~bm25top2"  # never labelled as the full dataset
    assert stored.manifest["dataset"]["reduction"]["made_from"]["top_k"] == 2
    assert stored.manifest["dataset"]["num_docs"] == stored.manifest["dataset"]["reduction"]["documents"]


# ------------------------------------------------------------------------------------ the evaluator


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp("tiny"))


def test_evaluator_metrics_are_prefixed_as_sentence_transformers_expects(tmp_path, model):
    from gtr_eval.training import BeirEvaluator

    ev = BeirEvaluator(["demo"], name="beir", metrics=("NDCG@10", "R@100"), primary_metric="nDCG@10")
    assert ev.primary_metric == "beir_demo_ndcg@10"  # before any evaluation: a trainer reads it then
    model.train()
    metrics = ev(model, steps=3)
    assert ev.primary_metric == "beir_demo_ndcg@10" and set(metrics) == {
        "beir_demo_ndcg@10",
        "beir_demo_recall@100",
    }
    assert 0 <= metrics["beir_demo_ndcg@10"] <= 1 and model.training  # train mode given back
    both = BeirEvaluator(["demo", _demo_copy(tmp_path)], name="b", metrics=("ndcg@10",))
    m = both(model)
    assert both.primary_metric == "b_mean_ndcg@10"
    assert m["b_mean_ndcg@10"] == pytest.approx((m["b_demo_ndcg@10"] + m["b_demo_ndcg@10"]) / 2)


def test_evaluator_fails_before_training_on_a_typo_and_refuses_other_families(tmp_path, model):
    from gtr_eval.data.registry import UnknownDatasetError
    from gtr_eval.training import BeirEvaluator

    with pytest.raises(UnknownDatasetError, match="scifact"):
        BeirEvaluator(["scifactt"], data_dir=tmp_path)
    with pytest.raises(Mistake, match="SentenceTransformer"):
        BeirEvaluator(["demo"])(object())


def test_tokenization_is_remembered_and_changes_no_vector(model):
    import numpy as np

    from gtr_eval.retrieval.backends import EncoderSpec
    from gtr_eval.retrieval.encoders import TorchEncoder
    from gtr_eval.retrieval.in_memory import TokenizationMemo

    texts = [f"a passage about bread number {i} " * (i % 7 + 1) for i in range(40)]
    plain = TorchEncoder(EncoderSpec(path="", batch_size=8), model)
    memo = TokenizationMemo(model)
    remembered = TorchEncoder(EncoderSpec(path="", batch_size=8), model)
    remembered.tokenizing = memo
    np.testing.assert_array_equal(plain.encode(texts), remembered.encode(texts))
    calls = []
    real = model.preprocess
    model.preprocess = lambda *a, **k: calls.append(1) or real(*a, **k)
    try:
        np.testing.assert_array_equal(plain.encode(texts), remembered.encode(texts))
    finally:
        del model.preprocess
    assert len(calls) == 1  # the plain encoder tokenised; the remembered one did not


def test_stored_evaluations_are_ordinary_results_and_never_silently_replaced(tmp_path, model):
    import torch

    from gtr_eval.training import BeirEvaluator

    lines: list[str] = []
    ev = BeirEvaluator(["demo"], system="tiny", results_dir=tmp_path / "r", echo=lines.append)
    first = ev(model, steps=5)
    stored = ResultsStore(tmp_path / "r").load("tiny@step-5", "demo")
    assert stored.metrics["ndcg@10"] == first["beir_demo_ndcg@10"]
    assert stored.spec["model"] == "(a model in memory)" and stored.identity is not None
    stamp = stored.path.stat().st_mtime_ns
    assert ev(model, steps=5) == first and stored.path.stat().st_mtime_ns == stamp  # same weights: kept
    with torch.no_grad():
        next(model.parameters()).add_(0.5)
    try:
        ev(model, steps=5)
        assert any(
            line.startswith("[refused] not stored: tiny@step-5 on demo was made with other weights (")
            and line.endswith("; use system=NAME to keep both, or --overwrite to replace it")
            for line in lines
        )
        assert ResultsStore(tmp_path / "r").load("tiny@step-5", "demo").path.stat().st_mtime_ns == stamp
    finally:
        with torch.no_grad():
            next(model.parameters()).sub_(0.5)
    table = _cli("table", "--results-dir", tmp_path / "r")
    assert table.exit_code == 0 and "tiny@step-5" in table.output


# --------------------------------------------------------------- the trainer, then run on its checkpoints


def _train_pairs(scifact: Path):
    from datasets import Dataset

    docs = {}
    for line in (scifact / "corpus.jsonl").open(encoding="utf-8"):
        r = json.loads(line)
        docs[r["_id"]] = f"{r.get('title', '')} {r.get('text', '')}".strip()
    queries = {}
    for line in (scifact / "queries.jsonl").open(encoding="utf-8"):
        r = json.loads(line)
        queries[r["_id"]] = r["text"]
    rows = [line.rstrip("\n").split("\t") for line in (scifact / "qrels" / "train.tsv").open()][1:]
    pairs = [(queries[q], docs[d]) for q, d, grade in rows if int(grade) > 0]
    return Dataset.from_dict({"anchor": [a for a, _ in pairs], "positive": [p for _, p in pairs]})


@pytest.mark.slow
def test_trainer_logs_beir_metrics_and_run_on_its_checkpoints_gives_the_same(
    beir_data, tmp_path, shared_cache_dir
):
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from gtr_eval.training import BeirEvaluator

    scifact = beir_data / "scifact"
    model = tiny_model(tmp_path / "init")
    evaluator = BeirEvaluator([str(scifact)], system="tiny-run", data_dir=tmp_path / "data", reduce_corpus=10,
                              cache_dir=shared_cache_dir, results_dir=tmp_path / "in-loop")  # fmt: skip
    out = tmp_path / "out" / "tiny-run"
    args = SentenceTransformerTrainingArguments(
        output_dir=str(out), max_steps=6, per_device_train_batch_size=16, learning_rate=1e-3, seed=0,
        eval_strategy="steps", eval_steps=2, save_steps=2, logging_steps=2, report_to="none", use_cpu=True,
    )  # fmt: skip
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=_train_pairs(scifact),
                                         loss=MultipleNegativesRankingLoss(model), evaluator=evaluator)  # fmt: skip
    trainer.train()
    key = "eval_beir_scifact~bm25top10_ndcg@10"
    logged = {h["step"]: h[key] for h in trainer.state.log_history if key in h}
    assert sorted(logged) == [2, 4, 6]
    assert len(set(logged.values())) > 1  # the model did change between evaluations

    ran = _cli("run", "-m", f"{out}/checkpoint-*", "-d", scifact, "--reduce-corpus", 10, "--data-dir",
               tmp_path / "data", "--results-dir", tmp_path / "after", "--cache-dir", shared_cache_dir)  # fmt: skip
    assert ran.exit_code == 0, ran.output
    done = [line.split()[1] for line in ran.output.splitlines() if line.startswith("[done]")]
    assert done == ["tiny-run@step-2", "tiny-run@step-4", "tiny-run@step-6"]  # in step order
    for step, in_loop in logged.items():
        after = ResultsStore(tmp_path / "after").load(f"tiny-run@step-{step}", "scifact~bm25top10")
        assert after.metrics["ndcg@10"] == pytest.approx(in_loop, abs=1e-6)
        stored = ResultsStore(tmp_path / "in-loop").load(f"tiny-run@step-{step}", "scifact~bm25top10")
        assert stored.metrics["ndcg@10"] == in_loop
        assert after.manifest["dataset"]["files_sha256"] == stored.manifest["dataset"]["files_sha256"]


@pytest.mark.slow
def test_the_docs_training_script_runs_as_written(beir_data, tmp_path, shared_cache_dir, monkeypatch):
    """docs/training.md's script, with the real MiniLM weights (the package's copy of the hub model),
    SciFact from ../shared, and 2 training steps instead of an epoch; every substitution must apply."""
    import re
    import runpy

    doc = (Path(__file__).resolve().parents[1] / "docs" / "training.md").read_text(encoding="utf-8")
    (script,) = re.findall(r"```python\n(.*?)```", doc, flags=re.S)
    data = tmp_path / "data"
    data.mkdir()
    (data / "scifact").symlink_to(beir_data / "scifact")
    changes = {
        'DATA = Path("data")': f"DATA = Path({str(data)!r})",
        'MODEL = "sentence-transformers/all-MiniLM-L6-v2"': f"MODEL = {str(packaged_minilm())!r}",
        "num_train_epochs=1,": "max_steps=2, use_cpu=True,",
        "eval_steps=10,": "eval_steps=2,",
        "save_steps=10,": "save_steps=2,",
        "reduce_corpus=100,": "reduce_corpus=3, cache_dir=CACHE,",
    }
    for old, new in changes.items():
        assert script.count(old) == 1, old
        script = script.replace(old, new)
    (tmp_path / "train.py").write_text(f"CACHE = {str(shared_cache_dir)!r}\n" + script, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(tmp_path / "train.py"), run_name="__main__")
    assert (tmp_path / "out" / "minilm-scifact" / "checkpoint-2" / "model.safetensors").is_file()
    stored = ResultsStore(tmp_path / "results").load("minilm-scifact@step-2", "scifact~bm25top3")
    assert 0.3 < stored.metrics["ndcg@10"] <= 1  # a real model on a small corpus: far above chance
