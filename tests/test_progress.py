"""A terminal and a log that read well: piped, one plain line per stage (no carriage return, no cursor
escape, nothing from dependencies); on a terminal, bars that move once per batch."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import struct
import subprocess
import termios
import threading

import numpy as np
import pytest
from cli_process import GTR_EVAL

from gtr_eval import progress
from gtr_eval.paths import BUNDLED
from gtr_eval.retrieval.backends import EncoderSpec
from gtr_eval.retrieval.cache import encode_sharded
from gtr_eval.retrieval.encoders import load_encoder
from tests.test_batching import _texts

DEPENDENCY_LINES = ("Loading weights", "Split strings", "Stem Tokens", "Downloading data from", "it/s]")


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_piped_stage_is_one_line_when_it_ends_and_one_a_minute_while_it_runs():
    out, clock = io.StringIO(), _Clock()
    line = progress.LogLine(3633, "encode corpus", "doc", stream=out, clock=clock)
    for _ in range(5):
        clock.now += 20
        line.update(512)
    clock.now += 17
    line.set_postfix(failed=1)
    line.close()
    line.close()  # once only
    lines = out.getvalue().splitlines()
    assert lines[0] == "encode corpus: 1,536/3,633 docs (1 min 0 s)"
    assert lines[-1] == "encode corpus: 2,560 docs in 1 min 57 s, failed 1"
    assert len(lines) == 2  # 100 s in, the next beat was not due yet
    assert "\r" not in out.getvalue()


def test_elapsed_reads_as_a_person_would_say_it():
    assert [progress.elapsed(s) for s in (0.04, 9.94, 42.4, 77, 3600 + 180)] == [
        "0.0 s",
        "9.9 s",
        "42 s",
        "1 min 17 s",
        "1 h 03 min",
    ]


def test_a_terminal_of_no_width_gets_plain_lines():
    master, slave = pty.openpty()  # 0 columns, as some containers' terminals: tqdm would draw nothing
    try:
        with open(slave, "w", closefd=False) as stream:
            assert not progress.interactive(stream)
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
            assert progress.interactive(stream)
    finally:
        os.close(master)
        os.close(slave)


def test_a_stage_with_nothing_to_do_says_nothing():
    out = io.StringIO()
    progress.LogLine(0, "encode corpus", "doc", stream=out).close()
    assert out.getvalue() == ""


def test_the_encode_bar_moves_once_per_batch_not_once_per_shard(tiny_gtr, monkeypatch, tmp_path):
    moves: list[int] = []

    class Recorder(progress.LogLine):
        def update(self, n: int = 1) -> None:
            moves.append(n)
            super().update(n)

    monkeypatch.setattr(progress, "bar", lambda total, desc, unit, **kw: Recorder(total, desc, unit))
    enc = load_encoder(EncoderSpec(str(tiny_gtr), batch_size=8, device="cpu"))
    assert enc.by_tokens
    texts = _texts(70, seed=3)

    emb = encode_sharded(
        texts=lambda idx: [texts[i] for i in idx],
        order=np.arange(len(texts)),
        encode=lambda batch: enc.encode(batch),
        key={"kind": "test"},
        cache_dir=tmp_path,
        shard_size=32,
        desc="encode corpus",
    )
    assert emb.stats.shards_encoded == 3
    assert sum(moves) == 70
    assert len(moves) >= 70 // enc.batch_size > 3  # per batch: more moves than shards
    assert max(moves) <= enc.batch_size


def test_quiet_dependencies_silences_transformers_and_puts_its_settings_back():
    from huggingface_hub.utils import are_progress_bars_disabled
    from transformers.utils import logging as tf_logging

    level = tf_logging.get_verbosity()
    with progress.quiet_dependencies():
        assert not tf_logging.is_progress_bar_enabled()
        assert are_progress_bars_disabled()
    assert tf_logging.is_progress_bar_enabled() and not are_progress_bars_disabled()
    assert tf_logging.get_verbosity() == level


def _run_demo(tiny_gtr, tmp_path, stderr) -> subprocess.Popen:
    args = ["run", "-m", "bm25", "-m", str(tiny_gtr), "-d", "demo", "--results-dir", str(tmp_path / "r"),
            "--cache-dir", str(tmp_path / "c")]  # fmt: skip
    env = dict(os.environ, COLUMNS="100")
    return subprocess.Popen([*GTR_EVAL, *args], stdout=subprocess.PIPE, stderr=stderr, env=env, text=True)


def test_piped_output_is_plain_lines_per_stage_with_nothing_from_dependencies(tiny_gtr, tmp_path):
    proc = _run_demo(tiny_gtr, tmp_path, subprocess.PIPE)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "\r" not in err and "\x1b[" not in err
    for noise in DEPENDENCY_LINES:
        assert noise not in err
    lines = err.splitlines()
    n_docs = sum(1 for _ in (BUNDLED / "demo" / "corpus.jsonl").open())
    assert f"BM25: tokenise: {n_docs} docs in" in "\n".join(lines)
    assert any(x.startswith(f"{tiny_gtr.name}: encode corpus: {n_docs} docs in ") for x in lines), lines
    assert lines[-1].startswith("pairs: 2 pairs in ")
    assert sum(x.startswith("[done]") for x in lines) == 2


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal (POSIX)")
def test_on_a_terminal_the_stages_are_bars(tiny_gtr, tmp_path):
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # a 120-column terminal
    proc = _run_demo(tiny_gtr, tmp_path, slave)
    os.close(slave)
    chunks: list[bytes] = []

    def read() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # the other side closed
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    proc.communicate(timeout=300)
    reader.join(timeout=10)
    os.close(master)
    err = b"".join(chunks).decode("utf-8", "replace")
    assert proc.returncode == 0, err
    assert "\r" in err and "pairs:" in err and "|" in err  # tqdm redraws its bars in place
    assert "[done]" in err
    for noise in DEPENDENCY_LINES[:3]:
        assert noise not in err
