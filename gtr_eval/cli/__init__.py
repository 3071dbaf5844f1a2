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


class Commands(click.Group):
    """The group of commands, and the one place a command's failure becomes its exit code
    (`errors.EXIT_CODES`): a `Mistake` exits 2 and a `PairError` (a refusal) 3, each as one `Error:`
    line printed once; click's usage errors exit 2 as one line too (where to read the usage instead of
    the usage itself), with a hint when the shell expanded a glob."""

    def invoke(self, ctx: click.Context):
        from ..errors import Mistake, PairError, exit_code

        try:
            return super().invoke(ctx)
        except click.UsageError as e:
            raise _one_line(_usage_line(e), e.exit_code) from e
        except (Mistake, PairError) as e:
            raise _one_line(str(e), exit_code(e)) from e


def _one_line(message: str, code: int) -> click.ClickException:
    """`Error: <message>` (its first line), exiting with `code`."""
    error = click.ClickException(message.strip().splitlines()[0] if message.strip() else "failed")
    error.exit_code = code
    return error


def _usage_line(e: click.UsageError) -> str:
    """click's usage error in one line: what is wrong, then where its usage is (`gtr-eval run --help`);
    for `Got unexpected extra argument (out/checkpoint-2 …)` after paths, how to pass a glob (the
    shell expanded an unquoted `-m out/checkpoint-*`)."""
    import re
    from pathlib import Path

    message = " ".join(e.format_message().split())
    found = re.match(r"Got unexpected extra arguments? \((.*)\)$", message)
    if found and any("/" in a or Path(a).exists() for a in found.group(1).split()):
        message += "; -m takes one model: quote a glob so the shell leaves it (-m 'out/checkpoint-*')"
    if e.ctx is None or "see `gtr-eval" in message:
        return message
    command = e.ctx.command_path[len(e.ctx.find_root().command_path) :].strip()
    return f"{message} (see `gtr-eval {command + ' ' if command else ''}--help`)"


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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
