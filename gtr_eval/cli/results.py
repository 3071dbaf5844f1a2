"""Commands over stored results: `evaluate` (a run file), `table`, `plot` and `paper`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .options import data_dir_option, results_dir_option


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
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
def evaluate_cmd(qrels_path: Path, run_path: Path, no_ignore_identical_ids: bool, as_json: bool) -> None:
    """Score a TREC run file against qrels exactly as `gtr-eval run` scores its runs."""
    import json

    from tabulate import tabulate

    from ..data.loader import DataError
    from ..evaluation import evaluate, metric_names, read_qrels_any, read_trec_run

    try:
        ev = evaluate(
            read_qrels_any(qrels_path),
            read_trec_run(run_path),
            ignore_identical_ids=not no_ignore_identical_ids,
        )
    except (DataError, OSError, ValueError) as e:
        raise click.ClickException(str(e)) from e
    if ev.missing_queries or ev.unjudged_queries:
        click.echo(
            f"note: {len(ev.missing_queries)} judged queries have no results (scored 0); "
            f"{ev.unjudged_queries} unjudged queries in the run were ignored",
            err=True,
        )
    if as_json:
        click.echo(json.dumps({"metrics": ev.metrics, "judged_queries": ev.n_queries}, indent=1))
        return
    rows = [(m, f"{ev.metrics[m]:.4f}") for m in metric_names(ev.k_values)]
    click.echo(tabulate(rows, headers=["metric", "value"], tablefmt="pipe", disable_numparse=True))


@click.command("table")
@results_dir_option
@click.option("--metric", default="ndcg@10", show_default=True)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["markdown", "csv", "latex", "html"]),
    default="markdown",
    show_default=True,
)
@click.option(
    "--reference",
    "references",
    multiple=True,
    metavar="SOURCE:SYSTEM",
    help="Add a published column from the bundled published_scores.csv (a unique source prefix is "
    "enough, e.g. mteb-results:gtr-t5-base). Repeatable.",
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
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write here (atomically) instead of printing.",
)
def table_cmd(
    results_dir: Path,
    metric: str,
    fmt: str,
    references: tuple[str, ...],
    diff_against: str | None,
    baseline: str | None,
    test: str,
    alpha: float,
    output: Path | None,
) -> None:
    """Leaderboard of stored results: datasets × systems, with notes explaining every mark."""
    from ..data.loader import DataError
    from ..io import atomic_write_text
    from ..report.tables import RefSpec, leaderboard, render
    from ..results import load_results

    try:
        board = leaderboard(
            load_results(results_dir),
            metric=metric,
            references=[RefSpec.parse(r) for r in references],
            baseline=baseline,
            alpha=alpha,
            diff_against=diff_against,
            test=test,
        )
    except (DataError, ValueError) as e:
        raise click.ClickException(str(e)) from e
    text = render(board, fmt)
    if output is None:
        click.echo(text, nl=False)
    else:
        atomic_write_text(output, text)
        click.echo(str(output))


@click.command("plot")
@results_dir_option
@click.option("--metric", default="ndcg@10", show_default=True)
@click.option(
    "--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("chart.png"), show_default=True
)
def plot_cmd(results_dir: Path, metric: str, output: Path) -> None:
    """Grouped bar chart (PNG) of one metric: a group per dataset, a bar per system."""
    from ..data.loader import DataError
    from ..report.plots import plot_results
    from ..results import load_results

    try:
        path = plot_results(load_results(results_dir), metric, output)
    except (DataError, ValueError) as e:
        raise click.ClickException(str(e)) from e
    click.echo(str(path))


@click.command("paper")
@results_dir_option
@click.option("--metric", "metrics", multiple=True, default=("ndcg@10", "recall@100"), show_default=True)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["markdown", "csv", "latex", "html"]),
    default="markdown",
    show_default=True,
)
@click.option("--only-run", is_flag=True, help="Only datasets with at least one stored result.")
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write the committed tables (paper-*.md, leaderboard-*.md, both metrics) here.",
)
@click.option(
    "--check", is_flag=True, help="Compare stored results with the golden file; exit 1 on any FAIL."
)
@click.option(
    "--golden",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="[default: RESULTS_DIR/golden.yaml]",
)
@click.option(
    "--reproduce",
    is_flag=True,
    help="Run all four GTR sizes and BM25 on every public BEIR dataset (GPU and internet needed).",
)
@data_dir_option
@click.option("--dry-run", is_flag=True, help="With --reproduce: print the plan and stop.")
@click.option("--device", default=None, help="With --reproduce: device for the dense models.")
@click.option(
    "--dtype",
    type=click.Choice(["fp32", "fp16", "bf16"]),
    default="fp16",
    show_default=True,
    help="With --reproduce.",
)
@click.option("--yes", is_flag=True, help="With --reproduce: do not ask before starting.")
def paper_cmd(
    results_dir,
    metrics,
    fmt,
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
    gtr-eval paper                      print the NDCG@10 and Recall@100 tables
    gtr-eval paper --check              stored results vs results/golden.yaml (OK / OKISH / FAIL)
    gtr-eval paper --reproduce          everything for the full table (resumable)
    """
    from ..report import paper
    from ..results import load_results

    if reproduce:
        _reproduce(paper, data_dir, results_dir, dry_run, device, dtype, yes)
        return
    results = load_results(results_dir) if Path(results_dir).is_dir() else []
    if check:
        try:
            expected = paper.load_golden(golden or Path(results_dir) / "golden.yaml")
        except ValueError as e:
            raise click.ClickException(str(e)) from e
        rows = paper.check_golden(results, expected)
        click.echo(paper.render_check(rows))
        if any(r.status == "FAIL" for r in rows):
            sys.exit(1)
        return
    if output_dir:
        for path in paper.regenerate_tables(results, Path(output_dir), only_run=only_run):
            click.echo(str(path))
        return
    for metric in metrics:
        click.echo(paper.render_paper(paper.paper_table(results, metric, only_run=only_run), metric, fmt))


def _reproduce(paper, data_dir, results_dir, dry_run, device, dtype, yes) -> None:
    from ..api import run
    from ..results import load_results

    plan = paper.reproduce_plan(Path(data_dir), Path(results_dir), device, dtype)
    click.echo(paper.render_plan(plan))
    if dry_run or not (yes or click.confirm("Start?", default=True)):
        return
    run(["bm25", *paper.GTR_MODELS], [r.dataset for r in plan.datasets], data_dir=data_dir, results_dir=results_dir,
        device=device, dtype=dtype, echo=lambda s: click.echo(s, err=True))  # fmt: skip
    for metric in paper.METRICS:
        click.echo(paper.render_paper(paper.paper_table(load_results(results_dir), metric), metric))
