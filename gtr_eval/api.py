"""The Python API, mirroring the CLI: `run`, `plan`, `rerank`, `fuse`, `table`, `plot`, `plot_curve`,
`paper_check`, `evaluate_run`, `report`, `export`, `import_run`.

>>> from gtr_eval.api import run, table
>>> results = run(["bm25", "gtr-t5-base"], ["scifact"], data_dir="data", results_dir="results")
>>> print(table("results", metric="ndcg@10", baseline="bm25", ci=True))
>>> evaluate_run("data/scifact/qrels/test.tsv", "my-run.trec.gz").intervals()

`run`, `rerank` and `fuse` say what they do, line by line, to `echo` (default: stderr, never stdout;
pass any callable to collect the lines), and raise `errors.PairsFailed` when a pair fails unless
`failures="collect"` (then the returned list's `.failures` says which and why).

Functions that take folders read `$GTR_EVAL_DATA_DIR`, `$GTR_EVAL_RESULTS_DIR` and `$GTR_EVAL_CACHE_DIR`
when none is given, as the commands do (`paths`); `run`, `plan`, `rerank` and `fuse` take their
command's options under the same names with the same defaults (`options`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from . import defaults, options, paths
from .errors import PairsFailed
from .options import takes
from .results import ResultsStore

Failures = Literal["raise", "collect"]


def to_stderr(line: str) -> None:
    """Where the API says what it does by default (`echo=`): stderr, apart from the caller's own output."""
    print(line, file=sys.stderr, flush=True)


def _check(failures: Failures) -> None:
    """Said before any work, as a command says a mistake."""
    if failures not in ("raise", "collect"):
        raise ValueError(f'failures must be "raise" or "collect", not {failures!r}')


def _finished(results: RunResults, failures: Failures) -> RunResults:
    """`failures="raise"`: a sweep with a failed (or refused) pair raises `errors.PairsFailed` once the
    other pairs are done; `"collect"`: the failures stay in `.failures`, as the commands report them."""
    if results.failures and failures == "raise":
        raise PairsFailed(results) from results.failures[0].cause
    return results


if TYPE_CHECKING:
    from .pipeline.pairs import RunResults
    from .pipeline.runner import RunConfig
    from .retrieval.factory import ModelPair


@takes(options.RUN)
def run_config(models: Sequence[str | ModelPair], datasets: Sequence[str], **values) -> RunConfig:
    """What `run` (and `gtr-eval run`, which calls this with its options) will do.  The keyword
    parameters are `gtr-eval run`'s options under their field names (`options.RUN`), with the same
    defaults: `data_dir`, `results_dir` and `cache_dir` None are `$GTR_EVAL_DATA_DIR` (else ./data),
    `$GTR_EVAL_RESULTS_DIR` (else ./runs) and `$GTR_EVAL_CACHE_DIR` (else the user cache), read at
    call time; `no_cache=True` encodes into a temporary folder.  `reduce_corpus=k`: each corpus reduced
    to the documents judged relevant plus BM25's top k per query (a dataset of its own,
    `<name>~bm25top<k>`; `pipeline.reduction`)."""
    from .pipeline.runner import RunConfig

    data, stored = options.group(options.DataGroup, values), options.group(options.ResultsGroup, values)
    return RunConfig(list(models), list(datasets), data=data.data_options(), results_dir=stored.folder(),
                     top_k=values["top_k"], overwrite=stored.overwrite, options=options.retriever_options(values),
                     name=stored.name, reduce_corpus=data.reduce_corpus)  # fmt: skip


@takes(options.RUN)
def run(
    models: Sequence[str | ModelPair],
    datasets: Sequence[str],
    *,
    echo: Callable[[str], None] = to_stderr,
    failures: Failures = "raise",
    **values,
) -> RunResults:
    """`gtr-eval run`: every model on every dataset (the options as for `run_config`). `datasets` may
    hold sweeps (`beir`); `source` is where missing datasets come from (auto, ukp, hf-beir, hf-mteb). A
    model may be a `retrieval.factory.ModelPair(query, doc)`: one asymmetric system
    (`--query-model/--doc-model`); a glob (`"out/checkpoint-*"`) or a trainer's output folder, its
    checkpoints, each as system `out@step-N` (`RunConfig` expands them). A stored result is served only
    for the inputs that made it (one made otherwise is refused, `overwrite=True` replaces it). The
    returned list holds the pairs that succeeded.  A pair that fails or is refused raises
    `errors.PairsFailed` once the others are done (its `.results` holds them); with
    `failures="collect"` it is listed in the returned list's `.failures` instead.  Progress and each
    pair's line go to `echo` (stderr by default)."""
    from .pipeline.runner import run as _run

    _check(failures)
    return _finished(_run(run_config(models, datasets, **values), echo=echo), failures)


@takes(options.RUN)
def plan(models: Sequence[str | ModelPair], datasets: Sequence[str], **values) -> str:
    """`gtr-eval run --plan`: what would be downloaded, what is done, rough time; nothing is run.
    Takes `run`'s options, with the same defaults."""
    from .pipeline.plan import plan_run, render_plan

    return render_plan(plan_run(run_config(models, datasets, **values)))


@takes(options.RERANK)
def rerank(
    candidates: str,
    models: Sequence[str],
    datasets: Sequence[str],
    *,
    echo: Callable[[str], None] = to_stderr,
    failures: Failures = "raise",
    **values,
) -> RunResults:
    """`gtr-eval rerank`: the stored run of `candidates` re-ranked by each model in `models` (a
    cross-encoder, or a late-interaction model: exact MaxSim, the two-stage search; a bi-encoder is
    refused).
    The keyword parameters are `gtr-eval rerank`'s options (`options.RERANK`; folders as for
    `run_config`).  Returns what `run` returns; `echo` and `failures` as for `run`."""
    _check(failures)
    from .pipeline.compose import RerankConfig
    from .pipeline.compose import rerank as _rerank
    from .retrieval.rerank import CrossEncoderConfig

    stored = options.group(options.ResultsGroup, values)
    encoder = {f.name: values[f.name] for f in options.CROSS_ENCODER}
    cfg = RerankConfig(
        candidates,
        list(models),
        list(datasets),
        depth=values["depth"],
        data=options.group(options.DataGroup, values).data_options(),
        results_dir=stored.folder(),
        cache_dir=options.group(options.CacheGroup, values).folder(),
        overwrite=stored.overwrite,
        name=stored.name,
        encoder=CrossEncoderConfig(model="", **encoder, shard_size=values["pair_shard_size"]),
        progress=values["progress"],
    )
    return _finished(_rerank(cfg, echo=echo), failures)


@takes(options.FUSE)
def fuse(
    systems: Sequence[str],
    datasets: Sequence[str],
    *,
    echo: Callable[[str], None] = to_stderr,
    failures: Failures = "raise",
    **values,
) -> RunResults:
    """`gtr-eval fuse`: the stored runs of `systems` fused (method "rrf", "minmax" or "zscore").  The
    keyword parameters are `gtr-eval fuse`'s options (`options.FUSE`; folders as for `run_config`);
    `echo` and `failures` as for `run`."""
    _check(failures)
    from .pipeline.compose import FuseConfig
    from .pipeline.compose import fuse as _fuse

    stored, weights = options.group(options.ResultsGroup, values), values["weights"]
    cfg = FuseConfig(
        list(systems),
        list(datasets),
        method=values["method"],
        k=values["k"],
        weights=list(weights) if weights is not None else None,
        top_k=values["top_k"],
        name=stored.name,
        data=options.group(options.DataGroup, values).data_options(),
        results_dir=stored.folder(),
        cache_dir=options.group(options.CacheGroup, values).folder(),
        overwrite=stored.overwrite,
        progress=values["progress"],
    )
    return _finished(_fuse(cfg, echo=echo), failures)


def table(
    results_dir: Path | str | None = None,
    metric: str = "ndcg@10",
    fmt: str = "markdown",
    baseline: str | None = None,
    references: Sequence[str] = (),
    diff_against: str | None = None,
    test: str = "ttest",
    alpha: float = 0.05,
    ci: bool = False,
    ci_style: str = "brackets",
    resamples: int = 10_000,
    seed: int = 0,
    show: Sequence[str] = (),
    data_dir: Path | str | None = None,
    best_checkpoint: bool = False,
    systems: Sequence[str] = (),
    datasets: Sequence[str] = (),
    decimals: int = defaults.DECIMALS,
):
    """`gtr-eval table`: the leaderboard as a `report.tables.Table`: `.text` the rendered table (what
    the command prints; `str(table)` too), `.frame` a DataFrame of its cells (value, interval, marks)
    and `.board` the model itself.  `systems`, `datasets`: globs choosing the columns and rows, in
    their order (`-s`, `-d`); a glob matching nothing is a `Mistake`.  `metric` as papers write it (`NDCG@10`, `R@100`,
    `Judged@10`, `NDCG@10'` for the condensed lists) is normalised; an unknown one is a ValueError
    naming the closest and listing the valid names.  `ci`: 95% bootstrap intervals (`resamples`,
    `seed`; with `baseline`, paired Δ intervals, Holm-corrected), `ci_style` "brackets" or "pm";
    `show=["judged"]`: each system's Judged@10; `best_checkpoint`: each training run's `NAME@step-N`
    systems as one column, its best step per dataset (chosen on the evaluated split).  `data_dir`: where the dataset folders are, for the
    qrels behind Judged@k (when the results' manifests do not lead there).  CSV is clean
    (`pandas.read_csv` reads it as it is): its notes are `report.tables.render_notes(board)` of the
    `leaderboard` with the same arguments; the other formats carry them inside."""
    from .judgments import Judgments
    from .report.selection import Selection
    from .report.tables import RefSpec, Table, leaderboard
    from .uncertainty import Bootstrap

    board = leaderboard(
        list(ResultsStore(paths.results_dir(results_dir))),
        metric=metric,
        baseline=baseline,
        references=[RefSpec.parse(r) for r in references],
        diff_against=diff_against,
        test=test,
        alpha=alpha,
        ci=Bootstrap(resamples=resamples, seed=seed) if ci else None,
        show=show,
        judgments=Judgments(paths.data_dir(data_dir)),
        best_checkpoint=best_checkpoint,
        selection=Selection(systems, datasets),
        decimals=decimals,
    )
    return Table(board, fmt, ci_style)


def plot(
    results_dir: Path | str | None = None,
    metric: str = "ndcg@10",
    output: Path | str = "chart.png",
    ci: bool = True,
    resamples: int = 10_000,
    seed: int = 0,
    data_dir: Path | str | None = None,
    systems: Sequence[str] = (),
    datasets: Sequence[str] = (),
    baseline: str | None = None,
    width: str = defaults.FIGURE_WIDTH,
) -> Path:
    """`gtr-eval plot`: the bar chart of `metric` in the format `output`'s suffix names (.pdf, .svg,
    .png), labelled as the table with significance marks against `baseline` (None: bm25 where
    stored), with 95% bootstrap error bars unless `ci=False`, `width` "single" or "double" column;
    returns its path.  `systems`, `datasets`: globs choosing what it shows (as `api.table`)."""
    from .judgments import Judgments
    from .report.plots import plot_results
    from .report.selection import Selection, select
    from .uncertainty import Bootstrap

    bootstrap = Bootstrap(resamples=resamples, seed=seed) if ci else None
    selection = Selection(systems, datasets)
    return plot_results(
        select(ResultsStore(paths.results_dir(results_dir)), selection),
        metric,
        output,
        ci=bootstrap,
        judgments=Judgments(paths.data_dir(data_dir)),
        baseline=baseline,
        width=width,
        selection=selection,
    )


def plot_curve(
    results_dir: Path | str | None = None,
    metric: str = "ndcg@10",
    run: str | None = None,
    baseline: str | None = None,
    reference: str | None = None,
    output: Path | str | None = None,
    data_dir: Path | str | None = None,
    ci: bool = True,
    resamples: int = 10_000,
    seed: int = 0,
    width: str = defaults.FIGURE_WIDTH,
) -> Path:
    """`gtr-eval plot --curve`: the learning curve of training run `run` (None: the only one
    stored), `metric` against the step of its `NAME@step-N` systems, a line per dataset with 95%
    bootstrap error bars unless `ci=False`, `baseline` (None: bm25 where stored) dashed and the
    `reference` SOURCE:SYSTEM dotted; returns its path (default RESULTS_DIR/plots/curve-<run>-<metric>.png;
    the suffix names the format).  `report.plots.learning_curve` and `curve_figure` give what it
    draws and the Figure itself."""
    from .judgments import Judgments
    from .report.plots import default_curve_output, learning_curve
    from .report.plots import plot_curve as _plot_curve
    from .uncertainty import Bootstrap

    results_dir = paths.results_dir(results_dir)
    results = list(ResultsStore(results_dir))
    judgments = Judgments(paths.data_dir(data_dir))
    bootstrap = Bootstrap(resamples=resamples, seed=seed) if ci else None
    curve = learning_curve(results, metric, run, baseline, reference, judgments=judgments, ci=bootstrap)
    return _plot_curve(curve, output or default_curve_output(results_dir, curve), width)


def paper_check(results_dir: Path | str | None = None, golden: Path | str | None = None):
    """`gtr-eval paper --check`: one row per expectation (status OK / OKISH / FAIL, or MISSING for a
    pair with no stored result).  `golden` defaults to RESULTS_DIR/golden.yaml, else the golden file
    shipped with gtr-eval (`report.paper.BUNDLED_GOLDEN`)."""
    from .report.paper import check_golden, default_golden, load_golden

    results_dir = paths.results_dir(results_dir)
    return check_golden(list(ResultsStore(results_dir)), load_golden(golden or default_golden(results_dir)))


def evaluate_run(
    qrels_path: Path | str, run_path: Path | str, ignore_identical_ids: bool = True, condensed: bool = False
):
    """`gtr-eval evaluate`: score a TREC run file against a qrels file (a run none of whose queries is
    judged there is a `DataError`; a small overlap warns).  The `Evaluation` holds `judged@k` among
    its metrics, with `condensed` the condensed-list measures (`ndcg@10'`), and its `intervals()`
    are what `evaluate --json` prints as `ci95`."""
    import warnings

    from .evaluation import check_overlap, evaluate, read_qrels_any, read_trec_run

    qrels, run = read_qrels_any(qrels_path), read_trec_run(run_path)
    if warning := check_overlap(qrels, run, qrels_path, run_path):
        warnings.warn(warning, stacklevel=2)
    return evaluate(qrels, run, ignore_identical_ids=ignore_identical_ids, condensed=condensed)


def report(
    results_dir: Path | str | None = None,
    output: Path | str = "report",
    data_dir: Path | str | None = None,
    baseline: str | None = "auto",
    references: Sequence[str] = (),
    golden: Path | str | None = None,
    test: str = "ttest",
    alpha: float = 0.05,
    top_queries: int = 20,
    title: str = "Retrieval results",
    echo=lambda _: None,
    ci: bool = True,
    resamples: int = 10_000,
    seed: int = 0,
    systems: Sequence[str] = (),
    datasets: Sequence[str] = (),
) -> Path:
    """`gtr-eval report`: write the static site; returns the path of its index.html.  `ci`: the
    leaderboard's 95% bootstrap intervals and error bars (`resamples`, `seed`).  `systems`,
    `datasets`: globs choosing what every page shows (as `api.table`)."""
    from .report.selection import Selection
    from .report.site import ReportConfig, build_site
    from .report.tables import RefSpec
    from .uncertainty import Bootstrap

    config = ReportConfig(
        output=Path(output),
        data_dir=Path(data_dir) if data_dir else None,
        baseline=baseline,
        references=[RefSpec.parse(r) for r in references],
        golden=Path(golden) if golden else None,
        alpha=alpha,
        test=test,
        top_queries=top_queries,
        title=title,
        bootstrap=Bootstrap(resamples=resamples, seed=seed) if ci else None,
        selection=Selection(systems, datasets),
    )
    results_dir = paths.results_dir(results_dir)
    return build_site(list(ResultsStore(results_dir)), config, results_dir=results_dir, echo=echo)


def export(
    results_dir: Path | str,
    fmt: str,
    output: Path | str,
    systems: Sequence[str] = (),
    datasets: Sequence[str] = (),
    data_dir: Path | str | None = None,
):
    """`gtr-eval export`: stored results as MTEB files, TREC runs, ranx JSON or CSV; `systems`,
    `datasets`: globs choosing which (as `api.table`)."""
    from .report.export import export_results
    from .report.selection import Selection, select

    chosen = select(ResultsStore(results_dir), Selection(systems, datasets))
    return export_results(chosen, fmt, output, data_dir=data_dir)


def import_run(
    run_file: Path | str,
    system: str,
    dataset: str,
    results_dir: Path | str | None = None,
    qrels: Path | str | None = None,
    data_dir: Path | str | None = None,
    split: str | None = None,
    ignore_identical_ids: bool = True,
    overwrite: bool = False,
    echo=lambda _: None,
):
    """`gtr-eval import`: score an external TREC run and store it as `system` (the same file again
    is served as done; another under the same name is refused unless `overwrite`)."""
    from .pipeline.imported import import_trec_run

    return import_trec_run(
        run_file,
        paths.results_dir(results_dir),
        system,
        dataset,
        qrels_file=qrels,
        data_dir=paths.data_dir(data_dir),
        split=split,
        ignore_identical_ids=ignore_identical_ids,
        overwrite=overwrite,
        echo=echo,
    )
