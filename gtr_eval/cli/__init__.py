"""The `gtr-eval` command. Each subcommand is a thin shell over a function of the Python API."""

from __future__ import annotations

import sys

import click

from .. import __version__
from .compose import fuse_cmd, rerank_cmd
from .data import datasets_cmd, download_cmd
from .report import export_cmd, import_cmd, report_cmd
from .results import evaluate_cmd, paper_cmd, plot_cmd, references_cmd, table_cmd
from .run import encode_cmd, run_cmd


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="gtr-eval")
def cli() -> None:
    """Zero-shot BEIR evaluation of dense (GTR, sentence-transformers) and BM25 retrievers, re-ranking and fusion."""


for command in (
    datasets_cmd,
    download_cmd,
    run_cmd,
    encode_cmd,
    evaluate_cmd,
    table_cmd,
    plot_cmd,
    paper_cmd,
):
    cli.add_command(command)
for command in (report_cmd, export_cmd, import_cmd, rerank_cmd, fuse_cmd, references_cmd):
    cli.add_command(command)


def main() -> None:
    """The `gtr-eval` program.  As the process's owner (not a library imported into someone else's), it
    tunes its memory allocator for encoding: `hardware.reuse_freed_memory`."""
    from ..retrieval.hardware import reuse_freed_memory

    reuse_freed_memory()
    try:
        code = cli.main(standalone_mode=False)
    except click.exceptions.Abort as e:  # click's answer to Ctrl-C, or to no answer at a prompt
        cause = e.__cause__ or e.__context__
        if not isinstance(cause, KeyboardInterrupt):
            click.echo(
                "Aborted: no answer (stdin is closed)" if isinstance(cause, EOFError) else "Aborted", err=True
            )
            sys.exit(1)
        _interrupted(cause)
    except KeyboardInterrupt as e:
        _interrupted(e)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    sys.exit(code if isinstance(code, int) else 0)


def _interrupted(e: BaseException | None) -> None:
    """One line, no traceback, exit code 130 (a shell's code for Ctrl-C)."""
    from ..errors import Interrupted

    click.echo(str(e) if isinstance(e, Interrupted) else "interrupted", err=True)
    sys.exit(130)
