"""Options are declared once (`gtr_eval.options`): the CLI and the Python API take the same names with
the same defaults, and the folders' environment variables work from Python as from the command line."""

from __future__ import annotations

import inspect
import shutil
from dataclasses import fields

import click
import pytest
from click.testing import CliRunner

from gtr_eval import api, options
from gtr_eval.cli import cli
from gtr_eval.cli.options import click_options
from gtr_eval.paths import BUNDLED, CACHE_DIR_ENV, DATA_DIR_ENV, RESULTS_DIR_ENV
from gtr_eval.retrieval.factory import RetrieverOptions

# Arguments and options a command has that are no option of its API function (the API takes the
# models and datasets positionally, a ModelPair for the pair; Ray and --plan are other functions).
CLI_ONLY = {
    "run": {"models", "datasets", "query_model", "doc_model", "use_ray", "ray_address", "plan_only"},
    "rerank": {"candidates", "models", "datasets"},
    "fuse": {"systems", "datasets"},
}
API = {"run": api.run, "rerank": api.rerank, "fuse": api.fuse}
# Where progress goes, and whether a failed pair raises: the commands print and exit 3 instead.
API_ONLY = {"echo", "failures"}


def _cli_defaults(command: click.Command) -> dict[str, object]:
    """Each parameter's default as the command sees it (of flags sharing one name, `--rrf`'s)."""
    ctx = click.Context(command)
    out: dict[str, object] = {}
    for p in command.params:
        if p.name not in out:
            out[p.name] = p.get_default(ctx)
    return out


def _api_defaults(func) -> dict[str, object]:
    params = inspect.signature(func).parameters.values()
    return {p.name: p.default for p in params if p.kind is p.KEYWORD_ONLY and p.name not in API_ONLY}


@pytest.mark.parametrize("name", sorted(API))
def test_every_cli_option_has_the_api_parameters_default(name):
    cli_side = _cli_defaults(cli.commands[name])
    api_side = _api_defaults(API[name])
    assert len(api_side) >= 10  # the options really are in the signature, not hidden behind **options
    assert set(cli_side) - CLI_ONLY[name] == set(api_side)
    assert {n: cli_side[n] for n in api_side} == api_side


def test_api_signatures_are_explicit_and_checked():
    params = inspect.signature(api.run).parameters
    assert params["top_k"].default == 1000 and params["shard_size"].default == 2048
    assert params["data_dir"].kind is inspect.Parameter.KEYWORD_ONLY
    assert not any(p.kind is p.VAR_KEYWORD for p in params.values())
    with pytest.raises(TypeError, match="bacth_size"):
        api.run_config(["bm25"], ["demo"], bacth_size=8)


def test_retriever_options_keep_the_groups_defaults():
    """`RetrieverOptions()` and a run with no options agree on every shared field."""
    built = api.run_config(["bm25"], ["demo"], no_cache=True).options
    plain = RetrieverOptions()
    shared = {f.name for f in fields(RetrieverOptions)} - {"cache_dir", "bm25"}
    assert {n: getattr(built, n) for n in shared} == {n: getattr(plain, n) for n in shared}
    assert built.bm25 == plain.bm25 and built.cache_dir is None


def test_flags_set_their_field():
    """`--no-download`, `--quiet`, `--no-cache` and the fusion method flags land on the API's names."""
    seen = {}

    @click.command()
    @click_options(options.FUSE)
    def probe(**values):
        seen.update(values)

    picked = ("download", "progress", "no_cache", "method")
    CliRunner().invoke(probe, [])
    assert tuple(seen[n] for n in picked) == (True, True, False, "rrf")
    CliRunner().invoke(probe, ["--no-download", "--quiet", "--no-cache", "--zscore"])
    assert tuple(seen[n] for n in picked) == (False, False, True, "zscore")


def test_api_run_honours_the_folder_environment_variables(tmp_path, monkeypatch):
    """No folder argument: data from $GTR_EVAL_DATA_DIR, results to $GTR_EVAL_RESULTS_DIR, the cache in
    $GTR_EVAL_CACHE_DIR, read at call time (none of ./data, ./runs or the user cache is touched)."""
    data, results, cache, work = (tmp_path / n for n in ("data", "results", "cache", "work"))
    shutil.copytree(BUNDLED / "demo", data / "mine")
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv(DATA_DIR_ENV, str(data))
    monkeypatch.setenv(RESULTS_DIR_ENV, str(results))
    monkeypatch.setenv(CACHE_DIR_ENV, str(cache))
    done = api.run(["bm25"], [str(data / "mine")], progress=False, download=False, echo=lambda _: None)
    assert not done.failures and [r.path for r in done] == [results / "bm25" / "mine.json"]
    assert done[0].run_path.is_file() and done[0].run_path.parent == results / "bm25"
    assert any((cache / "bm25").iterdir()) and any((cache / "corpus").iterdir())
    assert list(work.iterdir()) == []
    cfg = api.run_config(["bm25"], ["scifact"])
    assert (cfg.data.data_dir, cfg.results_dir, cfg.options.cache_dir) == (data, results, cache)
    # the CLI reads the same variables
    monkeypatch.setenv(RESULTS_DIR_ENV, str(tmp_path / "cli-results"))
    out = CliRunner().invoke(cli, ["run", "-m", "bm25", "-d", str(data / "mine"), "--quiet"])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "cli-results" / "bm25" / "mine.json").is_file()
    assert list(work.iterdir()) == []


@pytest.mark.parametrize(
    ("group", "name", "resolved"),
    [
        (options.DataGroup, "data_dir", lambda g: g.data_options().data_dir),
        (options.ResultsGroup, "results_dir", lambda g: g.folder()),
        (options.CacheGroup, "cache_dir", lambda g: g.folder()),
    ],
)
def test_a_folders_documented_variable_is_the_one_read(group, name, resolved, tmp_path, monkeypatch):
    meta = options.pick(group, only=[name])[0].metadata
    env = meta["env"]
    assert env in f"{meta['help']} {meta['show']}"  # --help names it
    monkeypatch.setenv(env, str(tmp_path / "from-env"))
    assert resolved(group()) == tmp_path / "from-env"
    assert resolved(group(**{name: tmp_path / "given"})) == tmp_path / "given"


def test_explicit_folders_win_over_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "env-data"))
    monkeypatch.setenv(RESULTS_DIR_ENV, str(tmp_path / "env-results"))
    cfg = api.run_config(
        ["bm25"], ["demo"], data_dir=tmp_path / "d", results_dir=tmp_path / "r", no_cache=True
    )
    assert (cfg.data.data_dir, cfg.results_dir, cfg.options.cache_dir) == (
        tmp_path / "d",
        tmp_path / "r",
        None,
    )
