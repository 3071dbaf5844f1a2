"""The `gtr-eval` command. Each subcommand is a thin shell over a function of the Python API."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from . import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="gtr-eval")
def cli() -> None:
    """Zero-shot BEIR evaluation of dense (GTR, sentence-transformers) and BM25 retrievers."""


@cli.command("datasets")
@click.option("--json", "as_json", is_flag=True, help="Print the registry as a JSON list.")
def datasets_cmd(as_json: bool) -> None:
    """List the datasets gtr-eval knows (BEIR's 18 and the bundled demo)."""
    from .datasets import datasets_json, datasets_table

    click.echo(datasets_json() if as_json else datasets_table())


@cli.command("download")
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=str),
    envvar="GTR_EVAL_DATA_DIR",
    default="./data",
    show_default="$GTR_EVAL_DATA_DIR or ./data",
    help="Folder that receives NAME/.",
)
@click.option(
    "--base-url", default=None, help="Mirror serving NAME.zip (default: $GTR_EVAL_BASE_URL, else BEIR's)."
)
@click.option(
    "--timeout", type=float, default=60.0, show_default=True, help="Seconds without data before giving up."
)
@click.option("--retries", type=click.IntRange(0, 20), default=2, show_default=True)
@click.option("--progress/--no-progress", default=True, show_default=True)
def download_cmd(
    names: tuple[str, ...], data_dir: str, base_url: str | None, timeout: float, retries: int, progress: bool
) -> None:
    """Download, md5-verify and unpack BEIR datasets into DATA_DIR/NAME; prints each folder."""
    from .download import download

    failed = 0
    for name in names:
        try:
            path = download(
                name, Path(data_dir), base_url=base_url, progress=progress, timeout=timeout, retries=retries
            )
        except (RuntimeError, KeyError, ValueError, OSError) as e:
            click.echo(f"Error: {name}: {e}", err=True)
            failed += 1
        else:
            click.echo(str(path))
    if failed:
        sys.exit(1)


@cli.command("run")
@click.option("-m", "--model", "models", multiple=True, required=True,
              help="bm25, a preset (gtr-t5-base/large/xl/xxl, all-MiniLM-L6-v2), a hub id or a local folder. Repeatable.")
@click.option("-d", "--dataset", "datasets", multiple=True, required=True,
              help="A registry name (see `gtr-eval datasets`), demo, peerqa, or a BEIR folder. Repeatable.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), envvar="GTR_EVAL_DATA_DIR",
              default="./data", show_default="$GTR_EVAL_DATA_DIR or ./data")
@click.option("--results-dir", type=click.Path(file_okay=False, path_type=Path), envvar="GTR_EVAL_RESULTS_DIR",
              default="./results", show_default="$GTR_EVAL_RESULTS_DIR or ./results")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Embedding cache  [default: $GTR_EVAL_CACHE_DIR, else the user cache dir (XDG_CACHE_HOME)]")
@click.option("--no-cache", is_flag=True, help="Encode into a temporary folder, removed afterwards.")
@click.option("--top-k", type=click.IntRange(1), default=1000, show_default=True)
@click.option("--split", default=None, help="Evaluation split  [default: the dataset's, e.g. test; dev for msmarco]")
@click.option("--overwrite", is_flag=True, help="Re-run pairs that already have results.")
@click.option("--no-download", is_flag=True, help="Fail instead of downloading a missing dataset.")
@click.option("--base-url", default=None, help="Dataset mirror serving NAME.zip (or $GTR_EVAL_BASE_URL).")
@click.option("--device", default=None, help="cpu, cuda, cuda:1, mps …  [default: cuda if available]")
@click.option("--dtype", type=click.Choice(["fp32", "fp16", "bf16"]), default="fp32", show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=None, help="[default: the preset's, else 64]")
@click.option("--backend", type=click.Choice(["torch", "onnx", "onnx-int8", "openvino"]), default="torch",
              show_default=True, help="onnx: ONNX Runtime fp32; onnx-int8: dynamic int8 (CPU; own cache key).")
@click.option("--query-prompt", default=None, help="Prefix for queries  [default: the model family's known one]")
@click.option("--doc-prompt", default=None, help="Prefix for documents  [default: the model family's known one]")
@click.option("--max-length", type=click.IntRange(1), default=None, help="Max tokens  [default: preset's or model's]")
@click.option("--trust-remote-code", is_flag=True, help="Allow a model folder to run its own Python code.")
@click.option("--bm25-k1", type=float, default=1.5, show_default=True)
@click.option("--bm25-b", type=float, default=0.75, show_default=True)
@click.option("--bm25-method", type=click.Choice(["lucene", "robertson", "atire", "bm25l", "bm25+"]),
              default="lucene", show_default=True)
@click.option("--shard-size", type=click.IntRange(1), default=2048, show_default=True,
              help="Documents per embedding-cache shard (the unit an interrupted encode resumes from).")
@click.option("--processes", type=click.IntRange(1), default=1, show_default=True,
              help="Encode the corpus in N worker processes on --device (CPU threads are split between them).")
@click.option("--devices", default=None, help="One corpus-encoding worker per device, e.g. cuda:0,cuda:1.")
@click.option("--ray", "use_ray", is_flag=True, help="Encode corpora as Ray tasks first (see `gtr-eval encode`).")
@click.option("--ray-address", default=None, help="Ray cluster address  [default: a local Ray]")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def run_cmd(models, datasets, data_dir, results_dir, cache_dir, no_cache, top_k, split, overwrite, no_download,
            base_url, device, dtype, batch_size, backend, query_prompt, doc_prompt, max_length,
            trust_remote_code, bm25_k1, bm25_b, bm25_method, shard_size, processes, devices, use_ray, ray_address,
            quiet) -> None:
    """Evaluate MODELs on DATASETs; results go to RESULTS_DIR/<system>/<dataset>.json.

    Pairs already done are skipped (use --overwrite to redo them); an interrupted encode resumes from
    its last complete cache shard.

    \b
    Examples:
      gtr-eval run -m bm25 -m gtr-t5-base -d scifact -d nfcorpus
      gtr-eval run -m ./my-model --query-prompt "query: " -d ~/beir/fiqa
    """
    from .cache import default_cache_dir
    from .retrievers import BM25Config, RetrieverOptions
    from .runner import RunConfig, run, summary_table

    opts = RetrieverOptions(
        cache_dir=None if no_cache else (cache_dir or default_cache_dir()),
        device=device, dtype=dtype, batch_size=batch_size, backend=backend,
        query_prompt=query_prompt, doc_prompt=doc_prompt, max_length=max_length,
        trust_remote_code=trust_remote_code,
        bm25=BM25Config(k1=bm25_k1, b=bm25_b, method=bm25_method), progress=not quiet, shard_size=shard_size,
        processes=processes, devices=devices,
    )
    cfg = RunConfig(list(models), list(datasets), data_dir=data_dir, results_dir=results_dir, top_k=top_k,
                    overwrite=overwrite, download=not no_download, base_url=base_url, split=split, options=opts)
    try:
        if use_ray:
            from .distributed import ray_encode_for_run

            ray_encode_for_run(cfg, address=ray_address, echo=lambda s: click.echo(s, err=True))
        results = run(cfg, echo=lambda s: click.echo(s, err=True))
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise click.ClickException(str(e)) from e
    click.echo(summary_table(results))


_RESULTS_DIR_OPTION = click.option(
    "--results-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="GTR_EVAL_RESULTS_DIR",
    default="./results",
    show_default="$GTR_EVAL_RESULTS_DIR or ./results",
)


@cli.command("evaluate")
@click.option("--qrels", "qrels_path", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              required=True, help="BEIR qrels tsv (with header) or TREC qrels 'qid 0 docid grade'.")
@click.option("--run", "run_path", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              required=True, help="TREC run 'qid Q0 docid rank score tag', plain or .gz.")
@click.option("--no-ignore-identical-ids", is_flag=True,
              help="Keep retrieved documents whose id equals the query id (BEIR drops them by default).")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
def evaluate_cmd(qrels_path: Path, run_path: Path, no_ignore_identical_ids: bool, as_json: bool) -> None:
    """Score a TREC run file against qrels exactly as `gtr-eval run` scores its runs."""
    import json

    from tabulate import tabulate

    from .evaluation import evaluate, metric_names, read_qrels_any, read_trec_run
    from .loader import DataError

    try:
        ev = evaluate(read_qrels_any(qrels_path), read_trec_run(run_path),
                      ignore_identical_ids=not no_ignore_identical_ids)
    except (DataError, OSError, ValueError) as e:
        raise click.ClickException(str(e)) from e
    if ev.missing_queries or ev.unjudged_queries:
        click.echo(f"note: {len(ev.missing_queries)} judged queries have no results (scored 0); "
                   f"{ev.unjudged_queries} unjudged queries in the run were ignored", err=True)
    if as_json:
        click.echo(json.dumps({"metrics": ev.metrics, "judged_queries": ev.n_queries}, indent=1))
        return
    rows = [(m, f"{ev.metrics[m]:.4f}") for m in metric_names(ev.k_values)]
    click.echo(tabulate(rows, headers=["metric", "value"], tablefmt="pipe", disable_numparse=True))


@cli.command("table")
@_RESULTS_DIR_OPTION
@click.option("--metric", default="ndcg@10", show_default=True)
@click.option("--format", "fmt", type=click.Choice(["markdown", "csv", "latex", "html"]), default="markdown",
              show_default=True)
@click.option("--reference", "references", multiple=True, metavar="SOURCE:SYSTEM",
              help="Add a published column from the bundled published_scores.csv (a unique source prefix is "
                   "enough, e.g. mteb-results:gtr-t5-base). Repeatable.")
@click.option("--diff-against", default=None, metavar="SYSTEM", help="Add Δ columns: SYSTEM minus each reference.")
@click.option("--baseline", default=None, metavar="SYSTEM", help="Mark systems significantly better/worse than it.")
@click.option("--test", type=click.Choice(["ttest", "wilcoxon"]), default="ttest", show_default=True)
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05,
              show_default=True)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write here (atomically) instead of printing.")
def table_cmd(results_dir: Path, metric: str, fmt: str, references: tuple[str, ...], diff_against: str | None,
              baseline: str | None, test: str, alpha: float, output: Path | None) -> None:
    """Leaderboard of stored results: datasets × systems, with notes explaining every mark."""
    from .io import atomic_write_text
    from .loader import DataError
    from .results import load_results
    from .tables import RefSpec, leaderboard, render

    try:
        board = leaderboard(load_results(results_dir), metric=metric,
                            references=[RefSpec.parse(r) for r in references], baseline=baseline,
                            alpha=alpha, diff_against=diff_against, test=test)
    except (DataError, ValueError) as e:
        raise click.ClickException(str(e)) from e
    text = render(board, fmt)
    if output is None:
        click.echo(text, nl=False)
    else:
        atomic_write_text(output, text)
        click.echo(str(output))


@cli.command("plot")
@_RESULTS_DIR_OPTION
@click.option("--metric", default="ndcg@10", show_default=True)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("chart.png"),
              show_default=True)
def plot_cmd(results_dir: Path, metric: str, output: Path) -> None:
    """Grouped bar chart (PNG) of one metric: a group per dataset, a bar per system."""
    from .loader import DataError
    from .plots import plot_results
    from .results import load_results

    try:
        path = plot_results(load_results(results_dir), metric, output)
    except (DataError, ValueError) as e:
        raise click.ClickException(str(e)) from e
    click.echo(str(path))


@cli.command("paper")
@click.option("--results-dir", type=click.Path(file_okay=False, path_type=Path), envvar="GTR_EVAL_RESULTS_DIR",
              default="./results", show_default="$GTR_EVAL_RESULTS_DIR or ./results")
@click.option("--metric", "metrics", multiple=True, default=("ndcg@10", "recall@100"), show_default=True)
@click.option("--format", "fmt", type=click.Choice(["markdown", "csv", "latex", "html"]), default="markdown",
              show_default=True)
@click.option("--only-run", is_flag=True, help="Only datasets with at least one stored result.")
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write the committed tables (paper-*.md, leaderboard-*.md, both metrics) here.")
@click.option("--check", is_flag=True, help="Compare stored results with the golden file; exit 1 on any FAIL.")
@click.option("--golden", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="[default: RESULTS_DIR/golden.yaml]")
@click.option("--reproduce", is_flag=True,
              help="Run all four GTR sizes and BM25 on every public BEIR dataset (GPU and internet needed).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), envvar="GTR_EVAL_DATA_DIR",
              default="./data", show_default="$GTR_EVAL_DATA_DIR or ./data")
@click.option("--dry-run", is_flag=True, help="With --reproduce: print the plan and stop.")
@click.option("--device", default=None, help="With --reproduce: device for the dense models.")
@click.option("--dtype", type=click.Choice(["fp32", "fp16", "bf16"]), default="fp16", show_default=True,
              help="With --reproduce.")
@click.option("--yes", is_flag=True, help="With --reproduce: do not ask before starting.")
def paper_cmd(results_dir, metrics, fmt, only_run, output_dir, check, golden, reproduce, data_dir, dry_run,
              device, dtype, yes) -> None:
    """The GTR paper's BEIR tables from stored results, beside the paper's and MTEB's figures.

    \b
    gtr-eval paper                      print the NDCG@10 and Recall@100 tables
    gtr-eval paper --check              stored results vs results/golden.yaml (OK / OKISH / FAIL)
    gtr-eval paper --reproduce          everything for the full table (resumable)
    """
    from . import paper
    from .results import load_results

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
    from .cache import default_cache_dir
    from .results import load_results
    from .retrievers import RetrieverOptions
    from .runner import RunConfig, run

    plan = paper.reproduce_plan(Path(data_dir))
    click.echo(paper.render_plan(plan))
    if dry_run or not (yes or click.confirm("Start?", default=True)):
        return
    opts = RetrieverOptions(cache_dir=default_cache_dir(), device=device, dtype=dtype)
    cfg = RunConfig(["bm25", *paper.GTR_MODELS], [r.dataset for r in plan], data_dir=Path(data_dir),
                    results_dir=Path(results_dir), options=opts)
    run(cfg, echo=lambda s: click.echo(s, err=True))
    for metric in paper.METRICS:
        click.echo(paper.render_paper(paper.paper_table(load_results(results_dir), metric), metric))


from .distributed import encode_cmd  # noqa: E402  (`gtr-eval encode`: sharded / Ray corpus encoding)

cli.add_command(encode_cmd)


def main() -> None:
    try:
        cli.main(standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
