"""`gtr-eval rerank` and `gtr-eval fuse`: new systems made from stored runs."""

from __future__ import annotations

import sys

import click

from .. import options as groups
from .options import click_options, datasets_option, one_line_errors

_REDO = "Redo pairs that already have results."
RERANK_HELP = {"name": "The new system's name  [default: SYSTEM>>MODEL]", "overwrite": _REDO}
FUSE_HELP = {"name": "The new system's name  [default: e.g. rrf(bm25+all-MiniLM-L6-v2)]", "overwrite": _REDO}


def _echo(text: str) -> None:
    click.echo(text, err=True)


def _finish(results) -> None:
    """The summary of what was stored; what failed and why, with exit code 3, as `run` does."""
    from ..pipeline.pairs import failure_summary, summary_table

    if results:
        click.echo(summary_table(results))
    if results.failures:
        if summary := failure_summary(results):  # one failed pair: its line said it
            _echo(summary)
        sys.exit(3)


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
@datasets_option
@click_options(groups.RERANK, help=RERANK_HELP)
def rerank_cmd(candidates, models, datasets, **options) -> None:
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
        results = rerank(candidates, list(models), list(datasets), echo=_echo, failures="collect", **options)
    _finish(results)


@click.command("fuse")
@click.argument("systems", nargs=-1, required=True)
@datasets_option
@click_options(groups.FUSE, help=FUSE_HELP)
def fuse_cmd(systems, datasets, weights: str | None, **options) -> None:
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
        results = fuse(
            list(systems),
            list(datasets),
            weights=parse_weights(weights),
            echo=_echo,
            failures="collect",
            **options,
        )
    _finish(results)
