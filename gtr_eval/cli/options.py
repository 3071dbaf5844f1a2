"""Options shared by several commands, declared once.

Single options (`data_dir_option`, `results_dir_option`) are plain click decorators.  Groups of
options that always travel together are collected before the command sees them (`option_group`):
`run` receives its retriever options as one dict of the Python API's keyword arguments, which it
hands to `api.run` as they are, so the command line and the API build the same configuration.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from ..data import registry
from ..paths import CACHE_DIR_ENV, DATA_DIR_ENV, RESULTS_DIR_ENV

FolderPath = click.Path(file_okay=False, path_type=Path)

data_dir_option = click.option(
    "--data-dir",
    type=FolderPath,
    envvar=DATA_DIR_ENV,
    default="./data",
    show_default=f"${DATA_DIR_ENV} or ./data",
    help="Where datasets are (and are downloaded to).",
)
results_dir_option = click.option(
    "--results-dir",
    type=FolderPath,
    envvar=RESULTS_DIR_ENV,
    default="./results",
    show_default=f"${RESULTS_DIR_ENV} or ./results",
    help="The results store.",
)
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
split_option = click.option(
    "--split", default=None, help="Evaluation split  [default: the dataset's, e.g. test; dev for msmarco]"
)
no_download_option = click.option(
    "--no-download", is_flag=True, help="Fail instead of downloading a missing dataset."
)
quiet_option = click.option("--quiet", is_flag=True, help="No progress bars.")


class Mistaken(click.ClickException):
    """A mistake in what was asked: `Error: <one line>`, exit code 2 (as click's own usage errors)."""

    exit_code = 2


@contextmanager
def one_line_errors() -> Iterator[None]:
    """A command's errors as one `Error:` line, no traceback: a mistake in what was asked exits 2
    (`errors.Mistake`), any other failure before the pairs run exits 1."""
    from ..errors import Mistake

    try:
        yield
    except Mistake as e:
        raise Mistaken(str(e)) from e
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise click.ClickException(str(e)) from e


def option_group(dest: str, build: Callable[..., Any], *options: Callable) -> Callable:
    """A decorator adding `options` to a command and handing it `build(**their values)` as `dest`."""

    def probe() -> None: ...

    for option in options:
        option(probe)
    names = [p.name for p in probe.__click_params__]  # type: ignore[attr-defined]

    def decorate(command: Callable) -> Callable:
        @functools.wraps(command)
        def wrapper(*args, **kwargs):
            kwargs[dest] = build(**{n: kwargs.pop(n) for n in names})
            return command(*args, **kwargs)

        for option in reversed(options):
            wrapper = option(wrapper)
        return wrapper

    return decorate


def _cache_dir(cache_dir: Path | None, no_cache: bool) -> Path | None:
    from ..paths import default_cache_dir

    return None if no_cache else (cache_dir or default_cache_dir())


CACHE_OPTIONS = (
    click.option(
        "--cache-dir",
        type=FolderPath,
        default=None,
        help=f"Cache of embeddings and pair scores  [default: ${CACHE_DIR_ENV}, else the user cache dir "
        "(XDG_CACHE_HOME)]",
    ),
    click.option("--no-cache", is_flag=True, help="Encode into a temporary folder, removed afterwards."),
)
cache_dir_options = option_group("cache_dir", _cache_dir, *CACHE_OPTIONS)
"""`--cache-dir` / `--no-cache`, handed to the command as the cache folder or None (`cache_dir`)."""

# Options that decide how a model runs; the encoder options below and `rerank`'s share them.
device_option = click.option(
    "--device", default=None, help="cpu, cuda, cuda:1, mps …  [default: cuda if available]"
)
dtype_option = click.option(
    "--dtype", type=click.Choice(["fp32", "fp16", "bf16"]), default="fp32", show_default=True
)
batch_size_option = click.option(
    "--batch-size", type=click.IntRange(1), default=None, help="[default: the preset's, else 64]"
)
max_length_option = click.option(
    "--max-length", type=click.IntRange(1), default=None, help="Max tokens  [default: preset's or model's]"
)
trust_remote_code_option = click.option(
    "--trust-remote-code", is_flag=True, help="Allow a model folder to run its own Python code."
)


class FamilyChoice(click.Choice):
    """`--family`: auto or a family's name, read from the list of families (third-party ones
    included) when first needed, so starting the CLI loads no model code."""

    def __init__(self) -> None:
        super().__init__(())

    @property
    def choices(self) -> tuple[str, ...]:
        from ..errors import Mistake
        from ..retrieval import families

        try:
            return ("auto", *families.names())
        except Mistake as e:  # a family that does not load: one line, while the options are read
            raise click.ClickException(str(e)) from e

    @choices.setter
    def choices(self, value) -> None:  # click's __init__ sets them; ours come from the list
        pass


# Options that decide how a dense model encodes: `run` and `encode` share them (they are part of the
# cache key, so an `encode` job and the later `run` must agree).
ENCODER_OPTIONS = (
    device_option,
    dtype_option,
    batch_size_option,
    click.option(
        "--backend",
        type=click.Choice(["auto", "torch", "onnx", "onnx-int8", "openvino"]),
        default="auto",
        show_default=True,
        help="auto: ONNX Runtime fp32 on a non-Intel CPU (same scores, about 2x faster; exported once, "
        "cached), torch on an Intel CPU (MKL is faster there), on a GPU, for --dtype fp16/bf16, for "
        "weights of 2 GiB or more, for separate query/document encoders, or if the export fails. "
        "onnx-int8: dynamic int8 (CPU; own cache key).",
    ),
    click.option(
        "--query-prompt", default=None, help="Prefix for queries  [default: the model family's known one]"
    ),
    click.option(
        "--doc-prompt", default=None, help="Prefix for documents  [default: the model family's known one]"
    ),
    max_length_option,
    trust_remote_code_option,
    click.option(
        "--shard-size",
        type=click.IntRange(1),
        default=2048,
        show_default=True,
        help="Documents per embedding-cache shard (the unit an interrupted encode resumes from).",
    ),
    click.option(
        "--cache-dtype",
        type=click.Choice(["fp32", "fp16"]),
        default="fp32",
        show_default=True,
        help="How corpus vectors are stored in the cache: fp16 takes half the disk; scores are "
        "computed in fp32 either way (NDCG@10 within 1e-4 of fp32 on SciFact and NFCorpus).",
    ),
    click.option(
        "--processes",
        type=click.IntRange(1),
        default=1,
        show_default=True,
        help="Encode the corpus in N worker processes on --device (CPU threads are split between them).",
    ),
    click.option(
        "--devices", default=None, help="One corpus-encoding worker per device, e.g. cuda:0,cuda:1."
    ),
    click.option(
        "--family",
        type=FamilyChoice(),
        default="auto",
        show_default=True,
        help="Model family; auto: from the preset or the model's files (docs/families.md).",
    ),
)
BM25_OPTIONS = (
    click.option("--bm25-k1", type=float, default=1.5, show_default=True),
    click.option("--bm25-b", type=float, default=0.75, show_default=True),
    click.option(
        "--bm25-method",
        type=click.Choice(["lucene", "robertson", "atire", "bm25l", "bm25+"]),
        default="lucene",
        show_default=True,
    ),
)


# How a system searches (not part of the embedding cache key): `run` only.
SEARCH_OPTIONS = (
    click.option(
        "--score",
        type=click.Choice(["dot", "cos"]),
        default=None,
        help="Dense score function  [default: the preset's, else the model's own, else cos]",
    ),
    click.option(
        "--maxsim-search",
        type=click.Choice(["auto", "full"]),
        default="auto",
        show_default=True,
        help="Late interaction: auto searches corpora up to 200,000 documents by exact MaxSim; full "
        "any corpus.  Two-stage: gtr-eval rerank --run SYSTEM -m MODEL.",
    ),
)


def _retriever_options(
    cache_dir: Path | None,
    no_cache: bool,
    quiet: bool,
    bm25_k1: float | None = None,
    bm25_b: float | None = None,
    bm25_method: str | None = None,
    **encoder,
) -> dict[str, Any]:
    """The options as `api.run_config`'s keyword arguments (`cache_dir` None: no cache)."""
    out = dict(cache_dir=_cache_dir(cache_dir, no_cache), progress=not quiet, **encoder)
    if bm25_k1 is not None:
        from ..retrieval.bm25 import BM25Config

        out["bm25"] = BM25Config(k1=bm25_k1, b=bm25_b, method=bm25_method)
    return out


def retriever_options(bm25: bool = True, search: bool | None = None) -> Callable:
    """Every option that shapes a retriever, handed to the command as one dict of `api.run_config`
    keyword arguments (`options`).

    `search` (default: like `bm25`) adds the options that only searching uses (`--score`,
    `--maxsim-search`)."""
    search = bm25 if search is None else search
    return option_group(
        "options", _retriever_options, *CACHE_OPTIONS, quiet_option, *ENCODER_OPTIONS,
        *(SEARCH_OPTIONS if search else ()), *(BM25_OPTIONS if bm25 else ()),
    )  # fmt: skip


def _model_pair(query_model: str | None, doc_model: str | None) -> Any:
    from ..retrieval.factory import ModelPair

    if (query_model is None) != (doc_model is None):
        raise click.UsageError("--query-model and --doc-model go together")
    return ModelPair(query_model, doc_model) if query_model else None


model_pair_options = option_group(
    "pair", _model_pair,
    click.option("--query-model", default=None, metavar="MODEL",
                 help="With --doc-model: one asymmetric system (e.g. DPR's question encoder). Preset, hub id or folder."),
    click.option("--doc-model", default=None, metavar="MODEL", help="The document encoder of --query-model's system."),
)  # fmt: skip
"""`--query-model A --doc-model B`, handed to the command as one `ModelPair` or None (`pair`)."""


def _data_options(
    data_dir: Path, split: str | None, no_download: bool, base_url: str | None, source: str
) -> dict[str, Any]:
    """Where datasets come from, as the Python API's keyword arguments."""
    return dict(data_dir=data_dir, split=split, download=not no_download, base_url=base_url, source=source)


base_url_option = click.option(
    "--base-url",
    default=None,
    help="Dataset mirror serving NAME.zip (default: $GTR_EVAL_BASE_URL, else BEIR's).",
)
source_option = click.option(
    "--source",
    type=click.Choice(["auto", *registry.SOURCES]),
    default="auto",
    show_default=True,
    help="Where missing datasets come from: BEIR's zip server (ukp), the Hugging Face hub copies of BEIR "
    "(hf-beir), of NanoBEIR (hf-nanobeir) or MTEB's (hf-mteb); auto tries those a dataset has, in that "
    "order, and says when it falls back.",
)

data_options = option_group(
    "data", _data_options, data_dir_option, split_option, no_download_option, base_url_option, source_option
)
"""Where datasets come from, handed to the command as one dict of API keyword arguments (`data`)."""


def bootstrap_options(command):
    """`--resamples` and `--seed`, handed to the command as one `uncertainty.Bootstrap` (`bootstrap`)."""
    import functools

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
