"""Commands over stored results: `evaluate` (a run file), `table`, `plot`, `paper`, and `references` (the
published columns `table --reference` accepts)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .. import defaults
from .options import (
    Mistaken,
    bootstrap_options,
    data_dir_option,
    one_line_errors,
    results_dir_option,
    selection_options,
)


class MetricName(click.ParamType):
    """A metric as papers write it (`NDCG@10`, `nDCG@10`, `R@100`, `MRR@10`), as stored (`ndcg@10`,
    `recall@100`, `mrr@10`); an unknown one is a usage error (exit 2) naming the closest."""

    name = "metric"

    def convert(self, value, param, ctx):
        from ..errors import Mistake
        from ..evaluation import normalise_metric

        try:
            return normalise_metric(value)
        except Mistake as e:
            self.fail(str(e), param, ctx)


METRIC = MetricName()
METRIC_HELP = (
    "Any case or usual spelling: NDCG@10, R@100 (recall@100), MRR@10, P@10, MAP@100; Judged@10; a "
    'trailing prime for the condensed list ("NDCG@10\'").'
)


@click.command("evaluate")
@click.option(
    "--qrels",
    "qrels_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    required=True,
    help="BEIR qrels tsv (with header) or TREC qrels 'qid 0 docid grade'.",
)
@click.option(
    "--run",
    "run_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    required=True,
    help="TREC run 'qid Q0 docid rank score tag', plain or .gz.",
)
@click.option(
    "--no-ignore-identical-ids",
    is_flag=True,
    help="Keep retrieved documents whose id equals the query id (BEIR drops them by default).",
)
@click.option(
    "--condensed",
    is_flag=True,
    help="Also score the condensed lists (unjudged documents removed first; NDCG@10' and so on).",
)
@click.option("--ci", is_flag=True, help="Add each metric's 95% bootstrap interval to the table.")
@bootstrap_options
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the metrics as JSON, with a ci95 object of [low, high] per metric and the bootstrap used.",
)
def evaluate_cmd(
    qrels_path: Path,
    run_path: Path,
    no_ignore_identical_ids: bool,
    condensed: bool,
    ci: bool,
    bootstrap,
    as_json: bool,
) -> None:
    """Score a TREC run file against qrels exactly as `gtr-eval run` scores its runs."""
    import json

    from tabulate import tabulate

    from ..evaluation import (
        check_overlap,
        condensed_names,
        evaluate,
        metric_names,
        read_qrels_any,
        read_trec_run,
    )

    with one_line_errors():
        qrels, run = read_qrels_any(qrels_path), read_trec_run(run_path)
        if warning := check_overlap(qrels, run, qrels_path, run_path):
            click.echo(f"warning: {warning}", err=True)
        ev = evaluate(qrels, run, ignore_identical_ids=not no_ignore_identical_ids, condensed=condensed)
    if ev.missing_queries or ev.unjudged_queries:
        click.echo(
            f"note: {len(ev.missing_queries)} judged queries have no results (scored 0); "
            f"{ev.unjudged_queries} unjudged queries in the run were ignored",
            err=True,
        )
    if as_json:
        record = {"metrics": ev.metrics, "judged_queries": ev.n_queries, "ci95": ev.intervals(bootstrap)}
        click.echo(json.dumps({**record, "bootstrap": bootstrap.record()}, indent=1))
        return
    names = metric_names(ev.k_values) + (condensed_names(ev.k_values) if condensed else [])
    intervals = ev.intervals(bootstrap) if ci else {}
    rows = [(m, f"{ev.metrics[m]:.4f}", *_interval_cells(intervals.get(m), ci)) for m in names]
    headers = ["metric", "value", *(["95% low", "95% high"] if ci else [])]
    click.echo(tabulate(rows, headers=headers, tablefmt="pipe", disable_numparse=True))
    if ci:
        click.echo(f"\n95% intervals: {bootstrap.describe()}.")


def _interval_cells(interval, ci: bool) -> list[str]:
    if not ci:
        return []
    return ["–", "–"] if interval is None else [f"{v:.4f}" for v in interval]


@click.command("table")
@results_dir_option
@selection_options
@click.option("--metric", type=METRIC, default="ndcg@10", show_default=True, help=METRIC_HELP)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["markdown", "csv", "latex", "html"]),
    default="markdown",
    show_default=True,
    help="csv is plain CSV (pandas.read_csv reads it as it is), every digit kept: its notes go to "
    "stderr, or to --notes.",
)
@click.option(
    "--decimals",
    type=click.IntRange(0, 12),
    default=defaults.DECIMALS,
    show_default=True,
    help="Decimals the text formats show (markdown, LaTeX, HTML; MTEB publishes 5); best is decided on "
    "the numbers as shown.",
)
@click.option(
    "--reference",
    "references",
    multiple=True,
    metavar="SOURCE:SYSTEM",
    help="Add a published column from the bundled published_scores.csv (a unique source prefix is "
    "enough, e.g. mteb-results:gtr-t5-base; `gtr-eval references` lists them). Repeatable.",
)
@click.option(
    "--diff-against", default=None, metavar="SYSTEM", help="Add Δ columns: SYSTEM minus each reference."
)
@click.option(
    "--baseline", default=None, metavar="SYSTEM", help="Mark systems significantly better/worse than it."
)
@click.option("--test", type=click.Choice(["ttest", "wilcoxon"]), default="ttest", show_default=True)
@click.option(
    "--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05, show_default=True
)
@click.option(
    "--ci",
    is_flag=True,
    help="95% bootstrap intervals over queries for every system (the Average's from the datasets' "
    "draws); with --baseline also a Δ column per system: the paired interval, Holm-corrected across "
    "the datasets. CSV: separate low and high columns.",
)
@click.option(
    "--ci-style",
    type=click.Choice(["brackets", "pm"]),
    default="brackets",
    show_default=True,
    help="brackets: 0.6863 [0.6429, 0.7291]; pm: 0.6863 ±0.0431 (half the interval's width).",
)
@bootstrap_options
@click.option(
    "--show",
    type=click.Choice(["judged"]),
    multiple=True,
    help="judged: each system's Judged@10, the share of its top 10 the qrels judge (computed from "
    "the run files and qrels for results that do not store it).",
)
@data_dir_option
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write here (atomically) instead of printing.",
)
@click.option(
    "--notes",
    "notes_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE",
    help="Write the table's notes (what every mark and the Average mean), one '# ' line each, to FILE. "
    "With --format csv they are otherwise printed to stderr, never into the CSV; the other formats "
    "also keep them inside the table text.",
)
@click.option(
    "--best-checkpoint",
    is_flag=True,
    help="Each training run's checkpoints (NAME@step-N) as one column NAME (best): per dataset the best "
    "stored checkpoint, with its step (0.6512 @1000; CSV: a 'NAME (best) step' column). Chosen on the "
    "evaluated split itself, so optimistic; the notes say so.",
)
def table_cmd(
    results_dir: Path,
    selection,
    metric: str,
    fmt: str,
    decimals: int,
    references: tuple[str, ...],
    diff_against: str | None,
    baseline: str | None,
    test: str,
    alpha: float,
    ci: bool,
    ci_style: str,
    bootstrap,
    show: tuple[str, ...],
    data_dir: Path,
    output: Path | None,
    notes_path: Path | None,
    best_checkpoint: bool,
) -> None:
    """Leaderboard of stored results: datasets × systems, with notes explaining every mark.

    \b
    gtr-eval table -s bm25 -s 'gtr-*' -d scifact  these columns and rows, in this order
    gtr-eval table --ci --baseline bm25           intervals, and paired Δ intervals against bm25
    gtr-eval table --show judged                  each system's Judged@10 beside its score
    gtr-eval table --metric "ndcg@10'"            condensed lists: unjudged documents removed first
    gtr-eval table --best-checkpoint              a training run's best checkpoint per dataset
    """
    from ..data.loader import DataError
    from ..errors import Mistake
    from ..io import atomic_write_text
    from ..judgments import Judgments
    from ..report.tables import RefSpec, leaderboard, render, render_notes
    from ..results import ResultsStore

    try:
        board = leaderboard(
            list(ResultsStore(results_dir)),
            metric=metric,
            references=[RefSpec.parse(r) for r in references],
            baseline=baseline,
            alpha=alpha,
            diff_against=diff_against,
            test=test,
            ci=bootstrap if ci else None,
            show=show,
            judgments=Judgments(data_dir),
            best_checkpoint=best_checkpoint,
            selection=selection,
            decimals=decimals,
        )
    except Mistake as e:
        raise Mistaken(str(e)) from e
    except (DataError, ValueError) as e:
        raise click.ClickException(str(e)) from e
    text = render(board, fmt, ci_style=ci_style)
    if output is None:
        click.echo(text, nl=False)
    else:
        atomic_write_text(output, text)
        click.echo(str(output))
    if notes_path is not None:
        atomic_write_text(notes_path, render_notes(board))
    elif fmt == "csv":
        click.echo(render_notes(board), nl=False, err=True)


@click.command("plot")
@results_dir_option
@selection_options
@click.option("--metric", type=METRIC, default="ndcg@10", show_default=True, help=METRIC_HELP)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The figure; its suffix picks the format: .pdf and .svg (vector), .png (300 dpi) "
    "[default: chart.png; with --curve RESULTS_DIR/plots/curve-<run>-<metric>.png]",
)
@click.option(
    "--width",
    type=click.Choice(list(defaults.FIGURE_WIDTHS)),
    default=defaults.FIGURE_WIDTH,
    show_default=True,
    help=f"single: one column of a two-column paper ({defaults.FIGURE_WIDTHS['single']} in); double: the full "
    f"text width ({defaults.FIGURE_WIDTHS['double']} in). Text is {defaults.FIGURE_FONT_SIZE} pt at that size.",
)
@click.option(
    "--ci/--no-ci",
    default=True,
    show_default=True,
    help="Error bars: each system's (each checkpoint's) 95% bootstrap interval over queries.",
)
@bootstrap_options
@data_dir_option
@click.option(
    "--curve",
    is_flag=True,
    help="A learning curve instead: the metric against the training step of the checkpoint systems "
    "(NAME@step-N) of one training run, a line per dataset.",
)
@click.option(
    "--run",
    "run_name",
    default=None,
    metavar="NAME",
    help="With --curve: the training run [default: the only one stored].",
)
@click.option(
    "--baseline",
    default=None,
    metavar="SYSTEM",
    help="The system the bars' significance marks (the table's paired test, †/‡) compare with; with "
    "--curve the dashed line per dataset and the checkpoints' marks [default: bm25, where stored].",
)
@click.option(
    "--reference",
    default=None,
    metavar="SOURCE:SYSTEM",
    help="With --curve: a published figure as a dotted line per dataset (the names `table --reference` "
    "takes; `gtr-eval references` lists them).",
)
def plot_cmd(
    results_dir: Path,
    selection,
    metric: str,
    output: Path | None,
    width: str,
    ci: bool,
    bootstrap,
    data_dir: Path,
    curve: bool,
    run_name: str | None,
    baseline: str | None,
    reference: str | None,
) -> None:
    """Figure of one metric for a paper, as the table has it: a group of bars per dataset, a bar per
    system, labelled with the table's 4-decimal value and significance marks, with error bars.

    \b
    gtr-eval plot --output ndcg.pdf --width single   one-column vector figure
    gtr-eval plot --curve                            learning curve of the stored training run
    gtr-eval plot --curve --run tiny-mnrl --reference mteb-results:gtr-t5-base
    """
    from ..data.loader import DataError
    from ..errors import Mistake
    from ..judgments import Judgments
    from ..report.plots import figure_format, plot_results
    from ..report.selection import select
    from ..results import ResultsStore

    if not curve and (run_name or reference):
        raise Mistaken("--run and --reference go with --curve")
    try:
        if output is not None:
            figure_format(output)  # before any work
        results, judgments = select(ResultsStore(results_dir), selection), Judgments(data_dir)
        ci_config = bootstrap if ci else None
        if curve:
            _plot_curve(
                results,
                results_dir,
                metric,
                output,
                run_name,
                baseline,
                reference,
                judgments,
                ci_config,
                width,
            )
            return
        path = plot_results(
            results,
            metric,
            output or Path("chart.png"),
            ci=ci_config,
            judgments=judgments,
            baseline=baseline,
            width=width,
            selection=selection,
        )
    except Mistake as e:
        raise Mistaken(str(e)) from e
    except (DataError, ValueError) as e:
        raise click.ClickException(str(e)) from e
    click.echo(str(path))


def _plot_curve(
    results, results_dir: Path, metric, output, run_name, baseline, reference, judgments, ci, width
) -> None:
    """`plot --curve`: the figure, its path on stdout and what it lacks on stderr."""
    from ..report.plots import default_curve_output, learning_curve, plot_curve

    curve = learning_curve(results, metric, run_name, baseline, reference, judgments=judgments, ci=ci)
    path = plot_curve(curve, output or default_curve_output(results_dir, curve), width)
    for note in curve.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(str(path))


@click.command("references")
@click.option(
    "--metric", type=METRIC, default=None, help="Only the references that have this metric. " + METRIC_HELP
)
def references_cmd(metric: str | None) -> None:
    """The published columns `table --reference SOURCE:SYSTEM` accepts (the bundled
    published_scores.csv): each SOURCE:SYSTEM with its metrics and datasets."""
    from ..report.tables import render_references

    click.echo(render_references(metric=metric), nl=False)


@click.command("paper")
@results_dir_option
@selection_options
@click.option(
    "--metric",
    "metrics",
    type=METRIC,
    multiple=True,
    default=("ndcg@10", "recall@100"),
    show_default=True,
    help=METRIC_HELP,
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["markdown", "csv", "latex", "html"]),
    default="markdown",
    show_default=True,
)
@click.option(
    "--all",
    "show_all",
    is_flag=True,
    help="Print every dataset and every system of the paper's layout (gaps marked `not run`); by "
    "default only the systems and datasets with a stored result.",
)
@click.option(
    "--only-run",
    is_flag=True,
    help="With --output-dir: only datasets with at least one stored result (printing does this by default).",
)
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write the committed tables (paper-*.md, leaderboard-*.md, both metrics) here.",
)
@click.option(
    "--check",
    is_flag=True,
    help="Compare stored results with the golden file: OK / OKISH / FAIL, and MISSING for a pair not "
    "run (not a failure); exit 1 on any FAIL, or when no check has a stored result.",
)
@click.option(
    "--golden",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="[default: RESULTS_DIR/golden.yaml, else the golden file shipped with gtr-eval]",
)
@click.option(
    "--reproduce",
    is_flag=True,
    help="Run all four GTR sizes and BM25 on every public BEIR dataset (a GPU and internet needed).",
)
@data_dir_option
@click.option("--dry-run", is_flag=True, help="With --reproduce: print the plan and stop.")
@click.option(
    "--device",
    default=None,
    help="With --reproduce: device for the dense models [default: cuda if any, else cpu].",
)
@click.option(
    "--dtype",
    type=click.Choice(["fp32", "fp16", "bf16"]),
    default=None,
    help="With --reproduce [default: fp16 on a GPU; the CPU runs fp32].",
)
@click.option("--yes", is_flag=True, help="With --reproduce: do not ask before starting.")
def paper_cmd(
    results_dir,
    selection,
    metrics,
    fmt,
    show_all,
    only_run,
    output_dir,
    check,
    golden,
    reproduce,
    data_dir,
    dry_run,
    device,
    dtype,
    yes,
) -> None:
    """The GTR paper's BEIR tables from stored results, beside the paper's and MTEB's figures.

    \b
    gtr-eval paper                      the NDCG@10 and Recall@100 tables of what was run
    gtr-eval paper --all                every system and dataset of the paper's layout
    gtr-eval paper --check              stored results vs the golden file: OK / OKISH / FAIL / MISSING
    gtr-eval paper --reproduce          everything for the full table (resumable)
    gtr-eval paper -s bm25 -s 'gtr-t5-*'   only these systems, in this order
    """
    from ..errors import Mistake
    from ..report import paper
    from ..report.selection import select
    from ..report.tables import mixed_data
    from ..results import ResultsStore

    if reproduce:
        _reproduce(paper, data_dir, results_dir, dry_run, device, dtype, yes)
        return
    try:
        results = select(ResultsStore(results_dir) if Path(results_dir).is_dir() else [], selection)
    except Mistake as e:
        raise Mistaken(str(e)) from e
    if check:
        _check(paper, results, Path(results_dir), golden)
        return
    if output_dir:
        for path in paper.regenerate_tables(results, Path(output_dir), only_run=only_run):
            click.echo(str(path))
        return
    try:
        tables = {
            m: paper.paper_table(
                results,
                m,
                only_run=only_run or not show_all,
                run_systems_only=not show_all,
                systems=selection.systems or None,
            )
            for m in metrics
        }
    except ValueError as e:  # an unknown system or metric
        raise click.ClickException(str(e)) from e
    if not show_all and all(t.empty for t in tables.values()):
        where = "" if Path(results_dir).is_dir() else " (the folder does not exist)"
        raise Mistaken(
            f"no stored result in {results_dir}{where} on a dataset of the paper for "
            f"{', '.join(metrics)}: nothing to print; `gtr-eval paper --all` prints the paper's layout "
            "with the published figures alone"
        )
    for metric, table in tables.items():
        click.echo(paper.render_paper(table, metric, fmt, compact=not show_all))
    for note in mixed_data(results)[1]:
        click.echo(f"note: {note}", err=True)


def _check(paper, results, results_dir: Path, golden: Path | None) -> None:
    path = golden or paper.default_golden(results_dir)
    if golden is None and path == paper.BUNDLED_GOLDEN:
        click.echo(f"golden file: the one shipped with gtr-eval ({results_dir} has no golden.yaml)", err=True)
    try:
        expected = paper.load_golden(path)
    except ValueError as e:
        raise click.ClickException(str(e)) from e
    rows = paper.check_golden(results, expected)
    click.echo(paper.render_check(rows))
    if all(r.status == "MISSING" for r in rows):
        raise Mistaken(
            f"nothing checked: none of the {len(rows)} checks of {path} has a stored result in {results_dir}"
        )
    if any(r.status == "FAIL" for r in rows):
        sys.exit(1)


def _reproduce(paper, data_dir, results_dir, dry_run, device, dtype, yes) -> None:
    from ..api import run
    from ..pipeline.plan import duration
    from ..results import ResultsStore

    plan = paper.reproduce_plan(Path(data_dir), Path(results_dir), device, dtype)
    if plan.device.kind == "cpu":
        why = "No GPU found (torch sees no CUDA device)" if device is None else f"--device {device}"
        click.echo(
            f"{why}: the plan is for the CPU, in fp32 (the GTR models take days there; "
            "--device cuda on a machine with a GPU)",
            err=True,
        )
    click.echo(paper.render_plan(plan))
    if dry_run:
        return
    seconds = paper.plan_seconds(plan)
    long = seconds is None or seconds > paper.LONG_JOB_S
    about = "time unknown" if seconds is None else f"about {duration(seconds)}"
    if not (yes or click.confirm(f"Start? ({about})", default=not long)):
        click.echo("not started", err=True)
        return
    # each model under its own name, the paper's column, in the precision the plan chose (it says which)
    for model in ("bm25", *paper.GTR_MODELS):
        run([model], [r.dataset for r in plan.datasets], data_dir=data_dir, results_dir=results_dir, name=model,
            device=plan.device.name, dtype=plan.device.dtype, echo=lambda s: click.echo(s, err=True))  # fmt: skip
    for metric in paper.METRICS:
        table = paper.paper_table(
            list(ResultsStore(results_dir)), metric, only_run=True, run_systems_only=True
        )
        click.echo(paper.render_paper(table, metric, compact=True))
