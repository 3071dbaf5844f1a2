"""`gtr-eval rerank` and `gtr-eval fuse`: new systems made from stored runs."""

from __future__ import annotations

import sys

import click

from .options import (
    batch_size_option,
    cache_dir_options,
    data_options,
    datasets_option,
    device_option,
    dtype_option,
    max_length_option,
    one_line_errors,
    option_group,
    quiet_option,
    results_dir_option,
    trust_remote_code_option,
)


def _echo(text: str) -> None:
    click.echo(text, err=True)


def _finish(results) -> None:
    """The summary of what was stored; what failed and why, with exit code 3, as `run` does."""
    from ..pipeline.pairs import failure_summary, summary_table

    if results:
        click.echo(summary_table(results))
    if results.failures:
        _echo(failure_summary(results))
        sys.exit(3)


def _cross_encoder(device, dtype, batch_size, max_length, trust_remote_code, pair_shard_size) -> dict:
    """The cross-encoder options as `api.rerank`'s keyword arguments."""
    return dict(device=device, dtype=dtype, batch_size=batch_size, max_length=max_length,
                trust_remote_code=trust_remote_code, shard_size=pair_shard_size)  # fmt: skip


cross_encoder_options = option_group(
    "encoder", _cross_encoder, device_option, dtype_option, batch_size_option, max_length_option,
    trust_remote_code_option,
    click.option("--pair-shard-size", type=click.IntRange(1), default=2048, show_default=True,
                 help="Pairs per score-cache shard (the unit an interrupted re-ranking resumes from)."),
)  # fmt: skip


@click.command("rerank")
@click.option(
    "--run",
    "candidates",
    required=True,
    metavar="SYSTEM",
    help="The stored system whose runs are re-ranked (e.g. bm25).",
)
@click.option(
    "-m",
    "--model",
    "models",
    multiple=True,
    required=True,
    help="Cross-encoder (hub id, folder, or ms-marco-MiniLM-L6-v2 / -L12-v2) or late-interaction model "
    "(colbertv2, any MultiVectorEncoder). Repeatable.",
)
@click.option(
    "--depth",
    type=click.IntRange(1),
    default=100,
    show_default=True,
    help="Documents re-scored per query (BEIR: 100); those below are dropped.",
)
@datasets_option
@data_options
@results_dir_option
@cross_encoder_options
@cache_dir_options
@quiet_option
@click.option("--name", default=None, help="The new system's name  [default: SYSTEM>>MODEL]")
@click.option("--overwrite", is_flag=True, help="Redo pairs that already have results.")
def rerank_cmd(
    candidates, models, depth, datasets, data, results_dir, encoder, cache_dir, quiet, name, overwrite
) -> None:
    """Re-rank a stored run with a cross-encoder or a late-interaction model: a new system SYSTEM>>MODEL.

    The top --depth documents of each query are re-scored with the model's own scores
    (CrossEncoder.predict, or exact MaxSim for a late-interaction model: the two-stage search);
    documents below the depth are dropped, as in BEIR.  A cross-encoder's scores are cached per
    (model, query text, document text), so a re-ranking resumes after an interruption and reuses
    pairs any earlier re-ranking scored; a late-interaction model reuses run's corpus token vectors.
    A bi-encoder is refused (it searches: gtr-eval run).

    \b
    Examples:
      gtr-eval rerank --run bm25 -m cross-encoder/ms-marco-MiniLM-L6-v2 --depth 100 -d scifact
      gtr-eval rerank --run bm25 -m colbertv2 --depth 1000 -d nq
      gtr-eval rerank --run rrf(bm25+all-MiniLM-L6-v2) -m ./my-cross-encoder -d nfcorpus
    """
    from ..api import rerank

    with one_line_errors():
        results = rerank(candidates, list(models), list(datasets), depth=depth, **data, results_dir=results_dir,
                         cache_dir=cache_dir, overwrite=overwrite, name=name, progress=not quiet, echo=_echo,
                         **encoder)  # fmt: skip
    _finish(results)


@click.command("fuse")
@click.argument("systems", nargs=-1, required=True)
@click.option("--rrf", "method", flag_value="rrf", default=True, help="Reciprocal rank fusion (the default).")
@click.option("--minmax", "method", flag_value="minmax", help="Min-max normalised weighted sum.")
@click.option("--zscore", "method", flag_value="zscore", help="Z-score normalised weighted sum.")
@click.option("--k", "k", type=click.IntRange(0), default=60, show_default=True, help="RRF's k.")
@click.option(
    "--weights",
    default=None,
    metavar="W1,W2,…",
    help="Weights of --minmax/--zscore, in SYSTEMS order  [default: equal, summing to 1]",
)
@click.option(
    "--top-k", type=click.IntRange(1), default=1000, show_default=True, help="Documents kept per query."
)
@datasets_option
@data_options
@results_dir_option
@cache_dir_options
@quiet_option
@click.option(
    "--name", default=None, help="The new system's name  [default: e.g. rrf(bm25+all-MiniLM-L6-v2)]"
)
@click.option("--overwrite", is_flag=True, help="Redo pairs that already have results.")
def fuse_cmd(
    systems, method, k, weights, top_k, datasets, data, results_dir, cache_dir, quiet, name, overwrite
) -> None:
    """Fuse the stored runs of SYSTEMS into a new system, on each dataset.

    Reciprocal rank fusion sums 1/(k + rank) over the runs; --minmax and --zscore normalise each
    run's scores per query and sum them with --weights.  Ranks follow trec_eval's tie order.  The new
    system is named METHOD(SYSTEM+SYSTEM…) (e.g. rrf(bm25+all-MiniLM-L6-v2), rrf-k10(…),
    minmax(bm25@0.3+dense@0.7)); its manifest names each input and its run file's sha256.

    \b
    Examples:
      gtr-eval fuse --rrf bm25 all-MiniLM-L6-v2 -d scifact -d nfcorpus
      gtr-eval fuse --minmax --weights 0.3,0.7 bm25 tas-b -d scifact
    """
    from ..api import fuse
    from ..fusion import parse_weights

    with one_line_errors():
        results = fuse(list(systems), list(datasets), method=method, k=k, weights=parse_weights(weights),
                       top_k=top_k, name=name, **data, results_dir=results_dir, cache_dir=cache_dir,
                       overwrite=overwrite, progress=not quiet, echo=_echo)  # fmt: skip
    _finish(results)
