"""A terminal and a log that read well: piped, one plain line per stage (no carriage return, no cursor
escape, nothing from dependencies); on a terminal, bars that move once per batch."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import struct
import subprocess
import termios
import threading
import time

import numpy as np
import pytest
from cli_process import GTR_EVAL

from gtr_eval import progress
from gtr_eval.errors import Interrupted
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
    n_queries = sum(1 for _ in (BUNDLED / "demo" / "queries.jsonl").open())
    assert any(x.startswith(f"BM25: search: {n_queries} queries in ") for x in lines), lines
    assert any(x.startswith(f"{tiny_gtr.name}: search: {n_queries} queries in ") for x in lines), lines
    assert f"[cache] {tiny_gtr.name} on demo: corpus embeddings: 1 shard computed and saved" in lines
    assert any(re.fullmatch(r"BM25: weigh terms: [\d,]+ terms in \d\.\d s", x) for x in lines), lines
    assert "bucket" not in err and "reused" not in err  # plain words
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


# ------------------------------------------------------------------ a line a minute, in its own units


def test_a_stage_that_does_not_move_still_says_where_it_is_once_a_minute():
    out, clock = io.StringIO(), _Clock()
    line = progress.LogLine(3000, "ce: score pairs", "pair", stream=out, clock=clock)
    seen = []
    for _ in range(6 * 60):  # six minutes, one shard's predict, nothing moves; the timer looks every second
        clock.now += 1
        line.beat()
        seen.append(out.getvalue().count("\n"))
    assert seen[59 - 1] == 0 and seen[60 - 1] == 1 and seen[-1] == 6  # a line at each whole minute
    assert out.getvalue().splitlines()[:2] == ["ce: score pairs: 0/3,000 pairs (1 min 0 s)",
                                               "ce: score pairs: 0/3,000 pairs (2 min 0 s)"]  # fmt: skip


def test_a_piped_bar_has_a_timer_that_speaks_without_updates(monkeypatch):
    out = io.StringIO()
    line = progress.LogLine(10, "encode queries", "query", stream=out, heartbeat=0.05, watch=True)
    deadline = time.monotonic() + 5
    while out.getvalue().count("\n") < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    line.close()
    lines = out.getvalue().splitlines()
    assert len(lines) >= 3 and lines[0].startswith("encode queries: 0/10 queries (")
    assert lines[-1].startswith("encode queries: 0 queries in ")
    time.sleep(0.2)
    assert out.getvalue().splitlines() == lines  # closed: the timer stopped
    dropped = io.StringIO()
    progress.LogLine(10, "encode queries", "query", stream=dropped, heartbeat=0.05, watch=True)
    time.sleep(0.2)  # never closed (an error dropped it): its timer stops with it
    assert dropped.getvalue() == ""
    assert not [t for t in threading.enumerate() if t.name.startswith("progress encode queries")]


def test_a_stage_served_from_cache_says_so():
    out = io.StringIO()
    with progress.LogLine(5183, "m: encode corpus", "doc", stream=out) as line:
        progress.served(line, 5183)
    with progress.LogLine(5183, "m: encode corpus", "doc", stream=out) as line:
        progress.served(line, 3000)
        line.update(2183)
    first, second = out.getvalue().splitlines()
    assert re.fullmatch(r"m: encode corpus: 5,183 docs from cache \(\d\.\d s\)", first), first
    assert re.fullmatch(r"m: encode corpus: 5,183 docs in \d\.\d s \(3,000 from cache\)", second), second


def _shards(tmp_path, encode, n=10, shard_size=3, **kw):
    return encode_sharded(texts=lambda idx: [f"t{i}" for i in idx], order=np.arange(n),
                          encode=encode, key={"kind": "test"}, cache_dir=tmp_path, shard_size=shard_size,
                          desc="m: encode corpus", **kw)  # fmt: skip


def test_a_cached_encode_says_from_cache(tmp_path, capsys):
    vectors = lambda batch: np.ones((len(batch), 2), dtype=np.float32)  # noqa: E731
    _shards(tmp_path, vectors).close()
    assert re.fullmatch(r"m: encode corpus: 10 docs in \d\.\d s\n", capsys.readouterr().err)
    again = _shards(tmp_path, vectors)
    assert again.stats.shards_reused == 4
    assert re.fullmatch(r"m: encode corpus: 10 docs from cache \(\d\.\d s\)\n", capsys.readouterr().err)


def test_ctrl_c_in_an_encode_says_how_many_shards_are_saved(tmp_path):
    calls = []

    def encode(batch):
        calls.append(batch)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return np.ones((len(batch), 2), dtype=np.float32)

    with pytest.raises(Interrupted) as caught:
        _shards(tmp_path, encode, progress=False)
    assert str(caught.value) == (
        "interrupted: 2 of 4 corpus shards saved (6 of 10 docs); rerun the same command to resume"
    )
    calls.clear()
    done = _shards(tmp_path, lambda b: encode(b) if len(calls) < 2 else np.ones((len(b), 2), np.float32))
    assert (done.stats.shards_reused, done.stats.shards_encoded) == (2, 2)  # resumed where it stopped


def test_rerank_progress_counts_pairs_and_speaks_within_a_shard(tmp_path, monkeypatch):
    from tiny_models import build_tiny_cross_encoder

    from gtr_eval.retrieval.rerank import CrossEncoderConfig, CrossEncoderReranker, resolve_cross_encoder

    out, clock = io.StringIO(), _Clock()

    def fake_bar(total, desc, unit, **kw):
        return progress.LogLine(total, desc, unit, stream=out, clock=clock)

    monkeypatch.setattr(progress, "bar", fake_bar)
    model = build_tiny_cross_encoder(tmp_path / "ce")
    config = CrossEncoderConfig(str(model), batch_size=4, device="cpu", shard_size=1000)
    reranker = CrossEncoderReranker(resolve_cross_encoder(config, "bm25", 10), tmp_path / "cache")
    predict = reranker.predict

    def slow_predict(pairs):  # each batch takes 25 s of the fake clock
        monkeypatch.setattr(reranker.model, "predict", _slowed(reranker.model.predict, clock))
        return predict(pairs)

    reranker.predict = slow_predict
    pairs = [(f"query {q}", f"document {d} " * (1 + d % 5)) for q in range(6) for d in range(5)]  # 30 pairs
    scores, _ = reranker.score(pairs, desc="bm25>>ce: score pairs")
    assert len(scores) == 30
    lines = out.getvalue().splitlines()
    # One shard of 30 pairs in batches of 4: 8 batches, 200 s; a line each minute, counted in pairs.
    assert lines == ["bm25>>ce: score pairs: 12/30 pairs (1 min 15 s)",
                     "bm25>>ce: score pairs: 24/30 pairs (2 min 30 s)",
                     "bm25>>ce: score pairs: 30 pairs in 3 min 20 s"]  # fmt: skip
    out.truncate(0), out.seek(0)
    reranker.score(pairs, desc="bm25>>ce: score pairs")
    assert re.fullmatch(r"bm25>>ce: score pairs: 30 pairs from cache \(0\.0 s\)\n", out.getvalue())


def _slowed(predict, clock):
    def slow(batch, **kw):
        clock.now += 25
        return predict(batch, **kw)

    return slow
