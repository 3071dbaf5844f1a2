"""BEIR scores while a model trains: a sentence-transformers evaluator (`BeirEvaluator`).

Give it to `SentenceTransformerTrainer(..., evaluator=BeirEvaluator(["scifact"], system="my-run"))`
and every evaluation step logs `eval_beir_scifact_ndcg@10` and the other metrics asked for, or call it
on a model yourself.  It scores exactly as `gtr-eval run` scores the checkpoint saved at that step:
the same retriever (`retrieval.in_memory`: the `DenseRetriever` a run of the saved folder builds, with
the model handed in), the same corpus order and batching, exact search, BEIR's evaluation
conventions.  So the curve drawn in training is the one `run -m 'out/checkpoint-*'` gives afterwards.

What is kept across evaluations: the datasets (loaded and checked when the evaluator is made, so a
typo fails before training starts, with the corpus memory-mapped from the store) and the tokenised
texts (the tokenizer does not train).  The vectors are not: the weights change at every step.

`reduce_corpus=k` evaluates on a smaller corpus (relevant documents plus BM25's top k per query,
`pipeline.reduction`), named `<dataset>~bm25top<k>` in the metrics and in stored results: never as the
full dataset.  `results_dir` stores each evaluation as an ordinary result of system `NAME@step-N`
(`checkpoints`), which `table`, `plot --curve`, `report` and the significance tests then read.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sentence_transformers.base.evaluation import BaseEvaluator

from . import defaults, paths
from .artifacts import CacheRoot
from .checkpoints import checkpoint_system
from .data.loader import BeirData
from .data.units import DataOptions, DatasetUnit
from .errors import Mistake
from .evaluation import average_subsets, evaluate, normalise_metric
from .identity import Identity
from .pipeline.pairs import Made, load_unit, store_pair
from .pipeline.reduction import reduce_unit, reduced_name
from .results import Refused, ResultsStore, reuse
from .retrieval.backends import AUTO
from .retrieval.in_memory import InMemoryDense, TokenizationMemo, in_memory_spec

DEFAULT_METRICS = ("ndcg@10", "recall@100", "mrr@10")


@dataclass
class _Dataset:
    """One `datasets` entry: its units (CQADupStack: 12, averaged), loaded once."""

    key: str  # how the metrics name it
    units: list[tuple[DatasetUnit, BeirData]]


class BeirEvaluator(BaseEvaluator):
    """Score a `SentenceTransformer` on BEIR datasets the way `gtr-eval run` does.

    `datasets`: registry names, sweeps (`beir-small`, `nanobeir`) or BEIR folders, downloaded into
    `data_dir` (None: `$GTR_EVAL_DATA_DIR`, else ./data) when missing (unless `download=False`).  `metrics`: any of `gtr-eval table`'s (normalised
    as it does); `primary_metric`: the one a trainer selects checkpoints by (`load_best_model_at_end`),
    of the single dataset or, for several, their mean.  `system`: the run's name for stored results
    (`<system>@step-<N>`).  `backend`: as `run --backend` (`auto`: ONNX on a non-Intel CPU, torch
    elsewhere).  `cache_dir`: where the corpus store and the BM25 index of a reduction live (None: the
    user cache).  `echo`: where progress lines go (None: nowhere).
    """

    def __init__(
        self,
        datasets: Sequence[str] = ("scifact",),
        *,
        system: str = "model",
        name: str = "beir",
        data_dir: Path | str | None = None,
        split: str | None = None,
        download: bool = True,
        reduce_corpus: int | None = None,
        metrics: Sequence[str] = DEFAULT_METRICS,
        primary_metric: str = "ndcg@10",
        batch_size: int = defaults.BATCH_SIZE,
        top_k: int = defaults.TOP_K,
        backend: str = AUTO,
        results_dir: Path | str | None = None,
        overwrite: bool = False,
        cache_dir: Path | str | None = None,
        echo: Callable[[str], None] | None = None,
    ):
        super().__init__()
        if isinstance(datasets, str):
            datasets = [datasets]
        self.metrics = tuple(normalise_metric(m) for m in metrics)
        primary = normalise_metric(primary_metric)
        self.system, self.name, self.batch_size, self.top_k, self.backend = (
            system,
            name,
            batch_size,
            top_k,
            backend,
        )
        self.results_dir = Path(results_dir) if results_dir is not None else None
        self.overwrite = overwrite
        self.reduce_corpus = reduce_corpus
        self.echo = echo or (lambda _line: None)
        cache = Path(cache_dir) if cache_dir is not None else None
        self.store_dir = CacheRoot.corpus_area(cache)
        options = DataOptions(paths.data_dir(data_dir), split, download)
        self.datasets = [self._load(spec, options, cache) for spec in options.expand(list(datasets)).datasets]
        key = self.datasets[0].key if len(self.datasets) == 1 else "mean"
        # Prefixed now, not at the first evaluation: a trainer reads it before (`metric_for_best_model`).
        self.primary_metric = f"{name}_{key}_{primary}" if name else f"{key}_{primary}"
        if primary not in self.metrics:
            self.metrics += (primary,)
        self._memo: TokenizationMemo | None = None

    def _load(self, spec: str, options: DataOptions, cache: Path | None) -> _Dataset:
        units = options.units(spec)
        if self.reduce_corpus is not None:
            root = CacheRoot.of(cache)
            units = [reduce_unit(u, self.reduce_corpus, root, self.store_dir, self.echo) for u in units]
        key = spec if len(units) > 1 else units[0].name
        if len(units) > 1 and self.reduce_corpus is not None:
            key = reduced_name(spec, self.reduce_corpus)
        return _Dataset(key, [(u, load_unit(u, self.echo, self.store_dir)) for u in units])

    def __call__(self, model, output_path: str | None = None, epoch: int = -1, steps: int = -1) -> dict:
        """The metrics of `model` as it is now, `<name>_<dataset>_<metric>` (and `_mean_` for several
        datasets); stored as system `<system>@step-<steps>` when a results folder was given."""
        _check_model(model)
        was_training = model.training
        model.eval()
        try:
            scores = self._score(model, steps)
        finally:
            model.train(was_training)
        metrics = {f"{d.key}_{m}": scores[d.key][m] for d in self.datasets for m in self.metrics}
        if len(self.datasets) > 1:
            metrics |= {f"mean_{m}": sum(scores[d.key][m] for d in self.datasets) / len(self.datasets)
                        for m in self.metrics}  # fmt: skip
        metrics = self.prefix_name_to_metrics(metrics, self.name)
        self.store_metrics_in_model_card_data(model, metrics, epoch, steps)
        return metrics

    def _score(self, model, steps: int) -> dict[str, dict[str, float]]:
        if self._memo is None or self._memo._model is not model:
            self._memo = TokenizationMemo(model)
        system = checkpoint_system(self.system, steps) if steps >= 0 else self.system
        spec = in_memory_spec(
            model, system, batch_size=self.batch_size, top_k=self.top_k, backend=self.backend
        )
        scores: dict[str, dict[str, float]] = {}
        with tempfile.TemporaryDirectory(prefix="gtr-eval-onnx-") as export_dir:
            retriever = InMemoryDense(model, spec, self._memo, Path(export_dir))
            try:
                for dataset in self.datasets:
                    per_unit = [self._unit(retriever, unit, data) for unit, data in dataset.units]
                    scores[dataset.key] = per_unit[0] if len(per_unit) == 1 else average_subsets(per_unit)
            finally:
                retriever.close()
        return scores

    def _unit(self, retriever: InMemoryDense, unit: DatasetUnit, data: BeirData) -> dict[str, float]:
        t0 = time.perf_counter()
        report = retriever.index(data.corpus)
        searched = retriever.search(data.queries, self.top_k)
        seconds = time.perf_counter() - t0
        made = Made(retriever.spec, searched.run, report + searched.report)
        if self.results_dir is not None and self._may_store(made, unit, data):
            return dict(store_pair(self.results_dir, unit, data, made, seconds, self.echo).metrics)
        evaluation = evaluate(data.qrels, searched.run, ignore_identical_ids=unit.ignore_identical_ids)
        self.echo(f"[eval] {made.spec.system} on {unit.name}: nDCG@10 {evaluation.metrics['ndcg@10']:.4f}")
        return dict(evaluation.metrics)

    def _may_store(self, made: Made, unit: DatasetUnit, data: BeirData) -> bool:
        """Store unless a result of this system on this unit is there already: made from these inputs
        (nothing to add), or from others (kept, with one line, unless `overwrite`)."""
        system = made.spec.system
        results = ResultsStore(self.results_dir)
        if self.overwrite or not results.done(system, unit.name, unit.split):
            return True
        stored = results.load(system, unit.name, unit.split)
        try:
            reuse(
                stored, Identity.of(made.spec, unit.fingerprint(files_sha256=data.checksums)), "system=NAME"
            )
        except Refused as e:  # it says what differs
            self.echo(f"[refused] not stored: {str(e).splitlines()[0]}")
        return False


def _check_model(model) -> None:
    from sentence_transformers import SentenceTransformer

    if not isinstance(model, SentenceTransformer):
        raise Mistake(
            f"BeirEvaluator scores SentenceTransformer models (dense retrieval), not {type(model).__name__}; "
            "save the checkpoints and run `gtr-eval run -m 'out/checkpoint-*'` for other families"
        )
