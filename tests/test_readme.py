"""The README, walked as written: every `gtr-eval` command in it runs here, offline.

- The first hour ("Your model on your data"): a model folder (a tiny GTR-architecture model standing
  in for the reader's) and BM25 on a read-only copy of the real SciFact, in a working folder as a
  newcomer's; the run's BM25 line is the one the README shows, and nothing is written under the
  data folder.  Then the "What next" commands on those results.
- "Usage by task": every command, in a working folder whose `runs/` already holds results (a copy of
  the committed ones) and whose `data/` is empty while the block's downloads run (they fail, offline)
  and then holds the real SciFact and NFCorpus.  Those that need nothing from the network succeed
  (exit 0); those that do fail the way they tell a user: one `Error:` line, or `[fail]` lines for
  the pairs that could not run while the others finish (exit 3), naming what is missing.  The network
  is made unreachable on purpose (the dataset server and the Hugging Face hub pointed at a closed port
  on 127.0.0.1), so the walk is the same on every machine.
- The install lines are the ones `benchmarks/check_install.sh` runs (tests/test_install.py) and
  `make run` / `make test` are what CI runs; the default results folder is not the committed one.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest
from cli_process import gtr_eval
from click.testing import CliRunner
from conftest import ROOT

from gtr_eval.cli import cli
from gtr_eval.results import ResultsStore

README = ROOT / "README.md"

# What each command of the usage block does offline: 0 (it succeeds), or the exit code and a phrase of
# the one line that says why it cannot (matched against the start of the command).
NEEDS_MORE = {
    "gtr-eval download scifact nfcorpus": (3, "every source failed"),
    "gtr-eval download scifact --source hf-beir": (3, "cannot get BeIR/scifact"),
    "gtr-eval run -m bm25 -m gtr-t5-base": (3, "gtr-t5-base: model failed"),
    "gtr-eval run -m bm25 -d beir-small": (3, "download failed"),
    "gtr-eval run -m ./my-model": (2, "./my-model: no such model folder"),
    "gtr-eval run -m dpr -m tas-b --query-model ./q-encoder": (2, "./q-encoder: no such model folder"),
    "gtr-eval rerank --run bm25 -m cross-encoder/ms-marco-MiniLM-L6-v2": (
        2,
        "cannot get model 'cross-encoder/ms-marco-MiniLM-L6-v2' from the Hugging Face hub (connection refused)",
    ),
    "gtr-eval paper --reproduce": (1, "Aborted: no answer"),
}


def section(title: str) -> str:
    """The README's text from the heading `## title` (or `**title.**`) to the next `## ` heading."""
    text = README.read_text(encoding="utf-8")
    start = text.index(title)
    end = text.find("\n## ", start)
    return text[start : end if end != -1 else len(text)]


def blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def commands(text: str, prefix: str = "gtr-eval ") -> list[str]:
    """The command lines of `text`'s sh blocks that start with `prefix`, comments removed."""
    lines = [line for block in blocks(text, "sh") for line in block.splitlines()]
    return [line.split("  #")[0].strip() for line in lines if line.startswith(prefix)]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _offline_env(tmp_path: Path) -> dict[str, str]:
    port = _closed_port()
    return dict(os.environ, PYTHONPATH=str(ROOT), HOME=str(tmp_path / "home"),
                GTR_EVAL_CACHE_DIR=str(tmp_path / "cache"), GTR_EVAL_BASE_URL=f"http://127.0.0.1:{port}",
                HF_ENDPOINT=f"http://127.0.0.1:{port}", HF_HUB_CACHE=str(tmp_path / "hub"),
                HF_HUB_OFFLINE="1")  # fmt: skip


def test_every_command_in_the_readme_is_walked_by_a_test():
    text = README.read_text(encoding="utf-8")
    walked = [*commands(section("## Usage by task")), *commands(section("## Your model on your data"))]
    assert sorted(commands(text)) == sorted(walked)
    # the install lines: torch pinned as benchmarks/check_install.sh installs it, then the checkout
    install = [line for block in blocks(section("## Install"), "sh") for line in block.splitlines()]
    script = (ROOT / "benchmarks" / "check_install.sh").read_text()
    (torch,) = set(re.findall(r"torch==[\d.]+", "\n".join(install)))
    assert torch in script and re.findall(r"torch==[\d.]+", (ROOT / "Makefile").read_text()) == [torch]
    assert (
        any(line.startswith("pip install . ") for line in install) and '-m pip install -q "$ROOT"' in script
    )
    assert {"make run", "make test"} <= {line.split("#")[0].strip() for line in install}
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_make_run_prints_the_next_steps_the_readme_promises():
    """`make run`'s closing lines name the demo's results folder and commands that exist in the README."""
    makefile = (ROOT / "Makefile").read_text()
    demo = re.search(r"^DEMO := (\S+)$", makefile, flags=re.M).group(1)
    assert "--results-dir $(DEMO)" in makefile and "Results: $(DEMO)/<system>/demo.json" in makefile
    shown = section("## Install")
    assert f"Results: {demo}/<system>/demo.json" in shown and "source .venv/bin/activate" in shown
    assert "'Your model on your data'" in makefile and "## Your model on your data" in README.read_text()
    # the run target installs no test extra; the test target does, with Lucene for its tests
    run_stamp = makefile[makefile.index("$(RUN_STAMP): ") : makefile.index("$(TEST_STAMP): ")]
    assert "pip install -q --no-compile -e .\n" in run_stamp and "[test" not in run_stamp
    assert "-e '.[test,lucene]'" in makefile[makefile.index("$(TEST_STAMP): ") :]


def test_the_default_results_folder_is_not_the_committed_one(tmp_path, monkeypatch):
    """Run in a checkout with no --results-dir, a result goes to ./runs (git-ignored), and the
    committed results/ is neither read nor written."""
    (tmp_path / "results" / "bm25").mkdir(parents=True)
    before = sorted(p.name for p in (tmp_path / "results").rglob("*"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GTR_EVAL_RESULTS_DIR", raising=False)
    out = CliRunner().invoke(cli, ["run", "-m", "bm25", "-d", "demo", "--cache-dir", "cache", "--quiet"])
    assert out.exit_code == 0, out.output
    assert ResultsStore(tmp_path / "runs").load("bm25", "demo").metrics["ndcg@10"] > 0
    assert sorted(p.name for p in (tmp_path / "results").rglob("*")) == before
    ignored = subprocess.run(["git", "check-ignore", "-q", "runs/bm25/demo.json"], cwd=ROOT)
    assert ignored.returncode == 0  # a run in the checkout leaves nothing for git to pick up
    assert "--results-dir results" in (ROOT / "Makefile").read_text()  # make report: the committed ones


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def _read_only(folder: Path) -> None:
    for p in [*folder.rglob("*"), folder]:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


@pytest.mark.slow
def test_the_first_hour_example_on_real_scifact_writes_nothing_under_the_data(tmp_path, beir_data):
    from tiny_gtr import TINY, build_gtr

    work, home = tmp_path / "work", tmp_path / "home"
    data = home / "beir" / "scifact"
    shutil.copytree(beir_data / "scifact", data)
    _read_only(data)
    before = _snapshot(data)
    work.mkdir()
    # the reader's model folder: GTR's architecture at toy size, 32 tokens, so 5,183 documents take seconds
    shutil.copytree(build_gtr(tmp_path / "tiny", TINY, max_seq_length=32), work / "my-model")
    env = _offline_env(tmp_path)
    text = section("## Your model on your data")
    shown = re.search(r"\[done\] bm25 on scifact: (nDCG@10 .*?MRR@10 \S+)", text).group(1)
    said = ""
    try:
        for command in commands(text):
            args = [str(home) + a[1:] if a.startswith("~/") else a for a in shlex.split(command)[1:]]
            out = gtr_eval(*args, cwd=work, env=env, stdin=subprocess.DEVNULL, timeout=300)
            said += f"{command}\n--- exit {out.returncode}\n{out.stdout[-1500:]}\n{out.stderr[-2500:]}\n"
            assert out.returncode == 0 and "Traceback" not in out.stderr, said
    finally:
        for p in [*data.rglob("*"), data]:
            p.chmod(p.stat().st_mode | stat.S_IWUSR)  # so that tmp_path can be removed
    assert shown in said  # the README's BM25 line is what this run prints
    assert _snapshot(data) == before
    runs = ResultsStore(work / "runs" / "first")
    assert {r.spec["system"] for r in runs} == {"my-model", "bm25"}
    assert (work / "ndcg.png").is_file() and (work / "report" / "index.html").is_file()


@pytest.fixture
def working_folder(tmp_path) -> Path:
    shutil.copytree(ROOT / "results", tmp_path / "runs")  # a reader's results so far
    shutil.copy(
        ResultsStore(ROOT / "results").load("bm25", "scifact").run_path, tmp_path / "pyserini.trec.gz"
    )
    subprocess.run(["gunzip", str(tmp_path / "pyserini.trec.gz")], check=True)  # the file `import` names
    return tmp_path


def _add_data(folder: Path, beir_data: Path) -> None:
    (folder / "data").mkdir(exist_ok=True)
    for name in ("scifact", "nfcorpus"):
        if not (folder / "data" / name).exists():
            (folder / "data" / name).symlink_to(beir_data / name)


@pytest.mark.slow
def test_every_usage_command_runs_offline_as_written(working_folder, tmp_path, beir_data):
    commands_ = commands(section("## Usage by task"))
    assert len(commands_) >= 18 and all(any(c.startswith(k) for c in commands_) for k in NEEDS_MORE)
    env = _offline_env(tmp_path)
    env.pop("HF_HUB_OFFLINE")  # the hub is unreachable instead, as a reader's offline machine is
    downloads = [i for i, c in enumerate(commands_) if c.startswith("gtr-eval download")]
    for i, command in enumerate(commands_):
        if i > downloads[-1]:
            _add_data(working_folder, beir_data)
        t0 = time.perf_counter()
        out = gtr_eval(*shlex.split(command)[1:], cwd=working_folder, env=env, stdin=subprocess.DEVNULL)
        seconds = time.perf_counter() - t0
        said = f"{command}\n--- exit {out.returncode} in {seconds:.0f} s\n{out.stdout[-1500:]}\n{out.stderr[-2500:]}"
        assert "Traceback" not in out.stderr, said
        expected = next((v for k, v in NEEDS_MORE.items() if command.startswith(k)), (0, ""))
        assert out.returncode == expected[0], said
        assert expected[1] in out.stderr, said
        assert seconds < 120, said
        if command.startswith("gtr-eval download"):  # an offline download fails fast, leaving nothing
            assert seconds < 30 and not (working_folder / "data").exists(), said
    imported = ResultsStore(working_folder / "runs").load("pyserini-bm25", "scifact")
    committed = ResultsStore(ROOT / "results").load("bm25", "scifact").metrics  # stored before judged@k was
    assert {m: imported.metrics[m] for m in committed} == committed
    assert (working_folder / "report" / "index.html").is_file() and (
        working_folder / "ndcg.pdf"
    ).read_bytes()[:5] == b"%PDF-"
