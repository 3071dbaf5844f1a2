"""The click face of the option groups (`gtr_eval.options`), and the options only commands have.

`click_options(fields)` turns fields of the option groups into click options named as the fields, so
a command hands what it receives to the Python API as it is: `gtr-eval run` and `api.run` take the
same names with the same defaults (tests/test_options.py holds them to it).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import Field
from pathlib import Path

import click

from .. import paths
from ..errors import MISTAKE
from ..options import DataGroup, ResultsGroup, pick

FolderPath = click.Path(file_okay=False, path_type=Path)


def click_option(f: Field, help: str | None = None, resolve: Callable | None = None) -> Callable:
    """The click option of field `f` (`help` instead of the field's own; `resolve` maps the value, e.g.
    a missing folder to its environment variable's, for commands that take it as it is)."""
    m = f.metadata
    kw: dict = {"help": help if help is not None else (m["help"] or None)}
    if resolve is not None:
        kw["callback"] = lambda _ctx, _param, value: resolve(value)
    if m["flags"]:  # one flag per value; only the default's carries a default (another would override it)
        flags = [(v, h, {"default": True} if v == f.default else {}) for v, h in m["flags"].items()]
        return _stack([click.option(f"--{v}", f.name, flag_value=v, help=h, **d) for v, h, d in flags])
    if isinstance(f.default, bool):
        kw.update(is_flag=True, flag_value=not f.default, default=f.default)
    else:
        kw.update(type=_type(m), default=f.default, metavar=m["metavar"], show_default=m["show"] or False)
    return click.option(m["flag"] or "--" + f.name.replace("_", "-"), f.name, **kw)


def _type(m) -> click.ParamType | type | None:
    if callable(m["choices"]):
        return LazyChoice(m["choices"])
    if m["choices"]:
        return click.Choice(list(m["choices"]))
    if m["folder"]:
        return FolderPath
    if m["kind"] is int and m["minimum"] is not None:
        return click.IntRange(m["minimum"])
    return m["kind"]


def click_options(fields: Iterable[Field], help: dict[str, str] | None = None) -> Callable:
    """A decorator adding the options of `fields`, in that order (`help`: texts by field name)."""
    return _stack([click_option(f, (help or {}).get(f.name)) for f in fields])


def _stack(decorators: list[Callable]) -> Callable:
    def decorate(command: Callable) -> Callable:
        for d in reversed(decorators):
            command = d(command)
        return command

    return decorate


def _field(group: type, name: str) -> Field:
    return pick(group, only=[name])[0]


data_dir_option = click_option(_field(DataGroup, "data_dir"), resolve=paths.data_dir)
"""`--data-dir` for commands that take the folder itself (`$GTR_EVAL_DATA_DIR` or ./data when not given)."""
results_dir_option = click_option(_field(ResultsGroup, "results_dir"), resolve=paths.results_dir)
"""`--results-dir` for commands that take the folder itself (`$GTR_EVAL_RESULTS_DIR` or ./runs)."""
base_url_option = click_option(_field(DataGroup, "base_url"))
source_option = click_option(_field(DataGroup, "source"))
models_option = click.option(
    "-m",
    "--model",
    "models",
    multiple=True,
    help="bm25, bm25-flat or bm25-multifield (Lucene's, with the lucene extra), a preset (gtr-t5-base/large/xl/xxl, "
    "all-MiniLM-L6-v2, tas-b, ance, dpr, contriever-msmarco, e5-base-v2, bge-base-en-v1.5, splade-pp-ed, "
    "colbertv2), a hub id or a local folder; checkpoints: a quoted glob ('out/checkpoint-*') or a trainer's "
    "output folder (out/), each checkpoint-N a system out@step-N. Repeatable.",
)
datasets_option = click.option(
    "-d",
    "--dataset",
    "datasets",
    multiple=True,
    required=True,
    help="A registry name (see `gtr-eval datasets`), demo, peerqa, or a BEIR folder. Repeatable.",
)


class Mistaken(click.ClickException):
    """A mistake in what was asked, found in the CLI's own checks: `Error: <one line>`, exit code 2 (as
    `errors.Mistake`, and click's own usage errors)."""

    exit_code = MISTAKE


@contextmanager
def one_line_errors() -> Iterator[None]:
    """A command's errors as one `Error:` line, no traceback: a `Mistake` or a `PairError` goes on to
    the group of commands, which gives it its exit code (2, 3: `errors.EXIT_CODES`); any other failure
    of the kinds below, before the pairs run, exits 1."""
    from ..errors import Mistake, PairError

    try:
        yield
    except (Mistake, PairError):
        raise
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise click.ClickException(str(e)) from e


def model_pair_options(command: Callable) -> Callable:
    """`--query-model A --doc-model B`, handed to the command as one `ModelPair` or None (`pair`)."""

    @click.option(
        "--query-model",
        default=None,
        metavar="MODEL",
        help="With --doc-model: one asymmetric system (e.g. DPR's question encoder). Preset, hub id or folder.",
    )
    @click.option(
        "--doc-model", default=None, metavar="MODEL", help="The document encoder of --query-model's system."
    )
    @functools.wraps(command)
    def wrapper(*args, query_model: str | None, doc_model: str | None, **kwargs):
        from ..retrieval.factory import ModelPair

        if (query_model is None) != (doc_model is None):
            raise click.UsageError("--query-model and --doc-model go together")
        return command(*args, pair=ModelPair(query_model, doc_model) if query_model else None, **kwargs)

    return wrapper  # fmt: skip


def bootstrap_options(command):
    """`--resamples` and `--seed`, handed to the command as one `uncertainty.Bootstrap` (`bootstrap`)."""

    @click.option(
        "--resamples",
        type=click.IntRange(min=100),
        default=10_000,
        show_default=True,
        help="Bootstrap resamples of the queries for the 95% intervals.",
    )
    @click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap draws.")
    @functools.wraps(command)
    def wrapper(*args, resamples: int, seed: int, **kwargs):
        from ..uncertainty import Bootstrap

        return command(*args, bootstrap=Bootstrap(resamples=resamples, seed=seed), **kwargs)

    return wrapper


class LazyChoice(click.Choice):
    """A choice whose values are read when first needed (`--family`: the list of families, third-party
    ones included), so starting the CLI loads no model code."""

    def __init__(self, read: Callable[[], Sequence[str]]) -> None:
        self._read = read
        super().__init__(())

    @property
    def choices(self) -> tuple[str, ...]:
        from ..errors import Mistake

        try:
            return tuple(self._read())
        except Mistake as e:  # a family that does not load: one line, while the options are read
            raise click.ClickException(str(e)) from e

    @choices.setter
    def choices(self, value) -> None:  # click's __init__ sets them; ours are read
        pass


def selection_options(command: Callable) -> Callable:
    """`-s/--system` and `-d/--dataset` (repeatable globs), handed to the command as one
    `report.selection.Selection` (`selection`): what a reading command shows, in that order."""

    @click.option(
        "-s",
        "--system",
        "systems",
        multiple=True,
        metavar="GLOB",
        help="Only the systems matching GLOB (shell-style, case-insensitive: 'bm25*'), as columns in "
        "the order given. Repeatable.",
    )
    @click.option(
        "-d",
        "--dataset",
        "datasets",
        multiple=True,
        metavar="GLOB",
        help="Only the datasets matching GLOB (cqadupstack: its subforums), as rows in the order given. "
        "Repeatable.",
    )
    @functools.wraps(command)
    def wrapper(*args, systems: tuple[str, ...], datasets: tuple[str, ...], **kwargs):
        from ..report.selection import Selection

        return command(*args, selection=Selection(systems, datasets), **kwargs)

    return wrapper
