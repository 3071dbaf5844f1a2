"""Commands that move results out and in: `report` (a static site), `export`, `import`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .. import paths
from ..options import DataGroup, pick
from .options import (
    FolderPath,
    bootstrap_options,
    click_option,
    one_line_errors,
    results_dir_option,
    selection_options,
)

_text_dir_option = click_option(
    pick(DataGroup, only=["data_dir"])[0],
    help="Where to look for datasets' queries, qrels and documents when the folder a run recorded is gone.",
    resolve=paths.data_dir,
)


@click.command("report")
@results_dir_option
@selection_options
@click.option(
    "--output",
    type=FolderPath,
    default=Path("report"),
    show_default=True,
    help="Folder for the site (index.html, datasets/, assets/).",
)
@_text_dir_option
@click.option(
    "--baseline",
    default="auto",
    metavar="SYSTEM",
    show_default=True,
    help="Default significance baseline on the page ('auto': bm25 when stored; 'none'); any "
    "system can be picked in the page.",
)
@click.option(
    "--reference",
    "references",
    multiple=True,
    metavar="SOURCE:SYSTEM",
    help="Add a published column to the leaderboard, as in `table` (mteb:DIR reads MTEB result files). "
    "Repeatable.",
)
@click.option(
    "--golden",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="[default: RESULTS_DIR/golden.yaml when it exists]",
)
@click.option("--test", type=click.Choice(["ttest", "wilcoxon"]), default="ttest", show_default=True)
@click.option(
    "--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05, show_default=True
)
@click.option(
    "--top-queries",
    type=click.IntRange(1),
    default=20,
    show_default=True,
    help="Queries listed per system pair and metric where the two disagree most.",
)
@click.option("--title", default="Retrieval results", show_default=True)
@click.option("--ci/--no-ci", default=True, show_default=True, help="95% bootstrap intervals and error bars.")
@bootstrap_options
def report_cmd(
    results_dir: Path,
    selection,
    output: Path,
    data_dir: Path | None,
    baseline: str,
    references: tuple[str, ...],
    golden: Path | None,
    test: str,
    alpha: float,
    top_queries: int,
    title: str,
    ci: bool,
    bootstrap,
) -> None:
    """A static results site that opens from file:// offline: leaderboard, paper tables, a page per dataset.

    \b
    gtr-eval report                                  ./runs -> ./report/index.html
    gtr-eval report --reference mteb:mteb-results/sentence-transformers__gtr-t5-base
    """
    from ..api import report

    with one_line_errors():
        index = report(
            results_dir,
            output,
            data_dir=data_dir,
            baseline=None if baseline == "none" else baseline,
            references=references,
            golden=golden,
            test=test,
            alpha=alpha,
            top_queries=top_queries,
            title=title,
            echo=lambda s: click.echo(s, err=True),
            ci=ci,
            resamples=bootstrap.resamples,
            seed=bootstrap.seed,
            systems=selection.systems,
            datasets=selection.datasets,
        )
    click.echo(str(index))


@click.command("export")
@results_dir_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["mteb", "trec", "ranx", "csv"]),
    required=True,
    help="mteb: MTEB result files; trec: the run files (+ TREC qrels); ranx: Run/Qrels JSON; "
    "csv: per-query and mean metrics, long form.",
)
@click.option("--output", type=FolderPath, required=True, help="Folder to write into.")
@selection_options
@_text_dir_option
def export_cmd(
    results_dir: Path,
    fmt: str,
    output: Path,
    selection,
    data_dir: Path | None,
) -> None:
    """Write stored results for other tools: MTEB, trec_eval, ranx, pandas."""
    from ..api import export

    with one_line_errors():
        done = export(
            results_dir,
            fmt,
            output,
            systems=selection.systems,
            datasets=selection.datasets,
            data_dir=data_dir,
        )
    for note in done.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"{len(done.written)} files written under {output}")


@click.command("import")
@results_dir_option
@click.option(
    "--run",
    "run_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    required=True,
    help="TREC run 'qid Q0 docid rank score tag', plain or .gz (Pyserini, Anserini, ...).",
)
@click.option("--name", "system", required=True, metavar="SYSTEM", help="The system name to store it under.")
@click.option(
    "--dataset",
    required=True,
    metavar="DATASET",
    help="The dataset it was run on, as our results name it (scifact, cqadupstack/android, ...).",
)
@click.option(
    "--qrels",
    "qrels_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="BEIR qrels tsv or TREC qrels  [default: DATA_DIR/DATASET/qrels/SPLIT.tsv]",
)
@click_option(
    pick(DataGroup, only=["data_dir"])[0],
    help="Where the dataset is, when --qrels is not given.",
    resolve=paths.data_dir,
)
@click.option(
    "--split", default=None, help="[default: the dataset's evaluation split, e.g. test; dev for msmarco]"
)
@click.option(
    "--no-ignore-identical-ids",
    is_flag=True,
    help="Keep retrieved documents whose id equals the query id (BEIR drops them by default).",
)
@click.option("--overwrite", is_flag=True, help="Replace a stored result of the same system and dataset.")
def import_cmd(
    results_dir: Path,
    run_file: Path,
    system: str,
    dataset: str,
    qrels_file: Path | None,
    data_dir: Path | None,
    split: str | None,
    no_ignore_identical_ids: bool,
    overwrite: bool,
) -> None:
    """Store an external TREC run as a system, scored like ours (tables, significance, reports)."""
    from ..api import import_run
    from ..errors import Refused

    with one_line_errors():
        try:
            done = import_run(
                run_file,
                system,
                dataset,
                results_dir=results_dir,
                qrels=qrels_file,
                data_dir=data_dir,
                split=split,
                ignore_identical_ids=not no_ignore_identical_ids,
                overwrite=overwrite,
                echo=lambda line: click.echo(line, err=True) if line.startswith("[skip]") else None,
            )
        except Refused as e:  # a stored result of this name made from another file: as `run` says it
            click.echo(f"[refused] {e}", err=True)
            sys.exit(3)
    for warning in done.warnings:
        click.echo(f"warning: {warning}", err=True)
    m, judged = done.result.metrics, len(done.result.per_query.get("ndcg@10", {}))
    click.echo(
        f"[imported] {system} on {dataset}: nDCG@10 {m['ndcg@10']:.4f}  Recall@100 {m['recall@100']:.4f}  "
        f"MRR@10 {m['mrr@10']:.4f} ({judged} judged queries) -> {done.path}"
    )
