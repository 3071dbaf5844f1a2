"""The Python API, mirroring the CLI: `run`, `table`, `paper_check`, `evaluate_run`.

>>> from gtr_eval.api import run, table
>>> results = run(["bm25", "gtr-t5-base"], ["scifact"], data_dir="data", results_dir="results")
>>> print(table("results", metric="ndcg@10", baseline="bm25"))
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .results import StoredResult, load_results


def run(
    models: Sequence[str],
    datasets: Sequence[str],
    data_dir: Path | str = "data",
    results_dir: Path | str = "results",
    cache_dir: Path | str | None = "default",
    top_k: int = 1000,
    overwrite: bool = False,
    download: bool = True,
    split: str | None = None,
    progress: bool = True,
    echo=print,
    **retriever_options,
) -> list[StoredResult]:
    """`gtr-eval run`. `cache_dir=None` disables the cache; other keyword arguments are
    `RetrieverOptions` fields (device, dtype, batch_size, backend (default "auto"), cache_dtype,
    query_prompt, doc_prompt, max_length, trust_remote_code, bm25=BM25Config(...))."""
    from .data.units import DataOptions
    from .paths import default_cache_dir
    from .retrieval.factory import RetrieverOptions
    from .runner import RunConfig
    from .runner import run as _run

    cache = default_cache_dir() if cache_dir == "default" else (Path(cache_dir) if cache_dir else None)
    opts = RetrieverOptions(cache_dir=cache, progress=progress, **retriever_options)
    cfg = RunConfig(
        list(models),
        list(datasets),
        data=DataOptions(Path(data_dir), split=split, download=download),
        results_dir=Path(results_dir),
        top_k=top_k,
        overwrite=overwrite,
        options=opts,
    )
    return _run(cfg, echo=echo)


def table(
    results_dir: Path | str = "results",
    metric: str = "ndcg@10",
    fmt: str = "markdown",
    baseline: str | None = None,
    references: Sequence[str] = (),
    diff_against: str | None = None,
) -> str:
    """`gtr-eval table`: the rendered leaderboard."""
    from .report.tables import RefSpec, leaderboard, render

    board = leaderboard(
        load_results(results_dir),
        metric=metric,
        baseline=baseline,
        references=[RefSpec.parse(r) for r in references],
        diff_against=diff_against,
    )
    return render(board, fmt)


def paper_check(results_dir: Path | str = "results", golden: Path | str | None = None):
    """`gtr-eval paper --check`: one row per expectation (status OK / OKISH / FAIL)."""
    from .report.paper import check_golden, load_golden

    return check_golden(load_results(results_dir), load_golden(golden or Path(results_dir) / "golden.yaml"))


def evaluate_run(qrels_path: Path | str, run_path: Path | str, ignore_identical_ids: bool = True):
    """`gtr-eval evaluate`: score a TREC run file against a qrels file."""
    from .evaluation import evaluate, read_qrels_any, read_trec_run

    return evaluate(
        read_qrels_any(qrels_path), read_trec_run(run_path), ignore_identical_ids=ignore_identical_ids
    )
