"""The README's usage block, walked as written, offline, in a working folder as its commands expect it:
`results/` (a copy of the committed results) and `data/`, empty while the block's downloads run (they
fail, offline) and then holding the real SciFact and NFCorpus, as a reader's would once they have them.

Every command ends within a minute, without a traceback.  Those that need nothing from the network
succeed (exit 0); those that do (downloads, hub models, folders only the reader has) fail the way
they tell a user: one `Error:` line, or `[fail]` lines for the pairs that could not run while the
others finish (exit 3), naming what is missing.  The network is made unreachable on purpose (the
dataset server and the Hugging Face hub pointed at a closed port on 127.0.0.1), so the walk is the
same on every machine.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from cli_process import gtr_eval
from conftest import ROOT

from gtr_eval.results import ResultsStore

pytestmark = pytest.mark.slow

# What each command of the block does offline: 0 (it succeeds), or the exit code and a phrase of the
# one line that says why it cannot (matched against the start of the command).
NEEDS_MORE = {
    "gtr-eval download scifact nfcorpus": (1, "every source failed"),
    "gtr-eval download scifact --source hf-beir": (1, "cannot get BeIR/scifact"),
    "gtr-eval run -m bm25 -m gtr-t5-base": (3, "gtr-t5-base: model failed"),
    "gtr-eval run -m bm25 -d beir-small": (3, "download failed"),
    "gtr-eval run -m ./my-model": (2, "./my-model: no such model folder"),
    "gtr-eval run -m dpr -m tas-b --query-model ./q-encoder": (2, "./q-encoder: no such model folder"),
    "gtr-eval rerank --run bm25 -m cross-encoder/ms-marco-MiniLM-L6-v2": (
        1,
        "cannot get model 'cross-encoder/ms-marco-MiniLM-L6-v2' from the Hugging Face hub (connection refused)",
    ),
    "gtr-eval paper --reproduce": (1, "Aborted: no answer"),
}


def usage_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text[text.index("## Usage") :]
    start = block.index("```sh") + len("```sh")
    block = block[start : block.index("```", start)]
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.startswith("gtr-eval ")]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def working_folder(tmp_path, beir_data) -> Path:
    shutil.copytree(ROOT / "results", tmp_path / "results")
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


def test_every_usage_command_runs_offline_as_written(working_folder, tmp_path, beir_data):
    commands = usage_commands()
    assert len(commands) >= 18 and all(any(c.startswith(k) for c in commands) for k in NEEDS_MORE)
    port = _closed_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), HOME=str(tmp_path / "home"),
               GTR_EVAL_CACHE_DIR=str(tmp_path / "cache"), GTR_EVAL_BASE_URL=f"http://127.0.0.1:{port}",
               HF_ENDPOINT=f"http://127.0.0.1:{port}", HF_HUB_CACHE=str(tmp_path / "hub"))  # fmt: skip
    downloads = [i for i, c in enumerate(commands) if c.startswith("gtr-eval download")]
    for i, command in enumerate(commands):
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
    imported = ResultsStore(working_folder / "results").load("pyserini-bm25", "scifact")
    committed = ResultsStore(ROOT / "results").load("bm25", "scifact").metrics  # stored before judged@k was
    assert {m: imported.metrics[m] for m in committed} == committed
    assert (working_folder / "report" / "index.html").is_file() and (working_folder / "ndcg.png").is_file()
