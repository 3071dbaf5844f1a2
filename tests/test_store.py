"""gtr_eval.data.store: the memory-mapped corpus store, its fast path's agreement with the strict
reader (differential fuzzing), reuse, staleness, interruption, and the Arrow-backed `Corpus`."""

from __future__ import annotations

import faulthandler
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gtr_eval.data import store
from gtr_eval.data.jsonl import DataError
from gtr_eval.data.loader import Corpus, load_beir_folder, read_corpus

ROOT = Path(__file__).resolve().parents[1]
SHARED_BEIR = ROOT.parent / "shared" / "data" / "beir"


def _lines(*records) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in records)


DOCS = _lines(
    {"_id": "d1", "title": "T1", "text": "one", "metadata": {}},
    {"_id": "d2", "text": "two", "metadata": {"url": "http://x"}},
    {"_id": "d3", "title": None, "text": "thr\u00e9e \u2028 \ud83d\ude00"},
)


def _strict(src: Path, tmp_path: Path) -> pa.Table:
    dst = tmp_path / "strict.arrow"
    store._convert_strict(src, dst, store.scan_file(src).sha256)
    return pa.ipc.open_file(pa.memory_map(str(dst))).read_all().replace_schema_metadata(None)


def _fast(src: Path, tmp_path: Path) -> pa.Table | None:
    """The fast path's table when it accepts the file (None when it declines)."""
    dst = tmp_path / "fast.arrow"
    if not store._convert_fast(src, dst, store.scan_file(src)):
        return None
    return pa.ipc.open_file(pa.memory_map(str(dst))).read_all().replace_schema_metadata(None)


def test_parser_crash_is_contained_in_the_child(tmp_path):
    """pyarrow 26 segfaults on a first line holding only `null`: the real child dies, the run does not."""
    src = tmp_path / "corpus.jsonl"
    src.write_bytes(b"null\n" + DOCS)
    child = store._spawn_fast_child(src, tmp_path / "x.arrow")
    child.communicate()
    assert child.returncode != 0 and _fast(src, tmp_path) is None


def test_fast_path_equals_the_strict_reader(tmp_path):
    src = tmp_path / "corpus.jsonl"
    src.write_bytes(DOCS)
    fast = _fast(src, tmp_path)
    assert fast is not None, "a clean file must take the fast path"
    assert fast.equals(_strict(src, tmp_path))
    assert fast.column("title").to_pylist() == ["T1", "", ""]


class _Forked:
    """A Popen look-alike running `_fast_child` in a fork: the same code without a fresh interpreter
    (a crash of the parser stays in the fork)."""

    def __init__(self, src: Path, dst: Path):
        out = tempfile.TemporaryFile()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            faulthandler.disable()  # a crash of the parser is expected here; no traceback dump
            os.dup2(out.fileno(), 1)
            os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
            code = 0
            try:
                store._fast_child(str(src), str(dst))
            except BaseException:  # noqa: BLE001 - any failure is an exit status for the parent
                code = 1
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        out.seek(0)
        self.returncode, self.stdout = os.waitstatus_to_exitcode(status), out.read().decode()

    def poll(self) -> int:
        return self.returncode

    def kill(self) -> None:
        pass

    def communicate(self) -> tuple[str, str]:
        return self.stdout, ""


@pytest.fixture
def forked(monkeypatch):
    """The fast path's child as a fork of this process: the same code, without a fresh interpreter."""
    monkeypatch.setattr(store, "_spawn_fast_child", _Forked)


# Each: bytes the fast reader must not accept as they are; what the strict reader says of them.
DECLINED = [
    ("null-first-line", b"null\n" + DOCS, "expected a JSON object"),  # segfaults pyarrow 26
    ("null-later-line", DOCS + b"null\n", "expected a JSON object"),
    ("two-objects-one-line", DOCS.replace(b"}\n", b"} ", 1), ": extra data"),
    ("two-objects-and-a-blank-line", DOCS.replace(b"}\n", b"} ", 1) + b"\n", ": extra data"),
    ("cr-only-lines", DOCS.replace(b"\n", b"\r"), ": extra data"),
    ("byte-order-mark", b"\xef\xbb\xbf" + DOCS, "invalid JSON"),
    ("bad-utf8-in-ignored-field", DOCS + b'{"_id": "d4", "text": "x", "metadata": {"u": "\xe9"}}\n', "UTF-8"),
    ("duplicate-id", DOCS + _lines({"_id": "d2", "text": "again"}), "duplicate document id 'd2'"),
    ("missing-text", DOCS + _lines({"_id": "d4"}), "missing field 'text'"),
    ("missing-id", DOCS + _lines({"text": "x"}), "missing field '_id'"),
    ("empty-id", DOCS + _lines({"_id": "", "text": "x"}), "'_id' must be"),
    ("lone-surrogate", DOCS + b'{"_id": "d4", "text": "\\ud800"}\n', "surrogate"),
    ("text-not-string", DOCS + _lines({"_id": "d4", "text": 5}), "must be a string"),
    ("duplicate-key", DOCS + b'{"_id": "d4", "_id": "d2", "text": "x"}\n', "duplicate document id 'd2'"),
    ("id-with-space", DOCS + _lines({"_id": "d 4", "text": "x"}), "document id 'd 4' contains a space"),
    ("id-with-tab", DOCS + _lines({"_id": "d4\t", "text": "x"}), "contains a tab"),
    ("id-with-nbsp", DOCS + _lines({"_id": "d\u00a04", "text": "x"}), "contains whitespace U+00A0"),
    ("id-with-control", DOCS + _lines({"_id": "d\x7f", "text": "x"}), "contains a control character U+007F"),
]
ACCEPTED_BY_STRICT_ONLY = [
    ("integer-id", DOCS + _lines({"_id": 7, "text": "x"})),
    ("null-text", DOCS + _lines({"_id": "d4", "text": None})),
    ("blank-lines", DOCS + b"\n  \n" + _lines({"_id": "d4", "text": "x"})),
    ("indented-line", DOCS + b"  " + _lines({"_id": "d4", "text": "x"})),
    ("lone-surrogate-in-ignored-field", DOCS + b'{"_id": "d4", "text": "x", "z": "\\ud800"}\n'),
]


@pytest.mark.parametrize("case, data, problem", DECLINED, ids=[c[0] for c in DECLINED])
def test_fast_path_declines_and_the_strict_reader_names_the_line(
    tmp_path, monkeypatch, forked, case, data, problem
):
    src = tmp_path / "corpus.jsonl"
    src.write_bytes(data)
    assert _fast(src, tmp_path) is None
    monkeypatch.setattr(store, "FAST_PATH_MIN_BYTES", 0)
    with pytest.raises(DataError) as e:
        store.open_corpus(src, tmp_path / "cache")
    assert e.value.path == str(src) and e.value.line and problem in e.value.problem
    assert not list((tmp_path / "cache").rglob("*.arrow")) and not list((tmp_path / "cache").rglob("*.tmp"))


@pytest.mark.parametrize("case, data", ACCEPTED_BY_STRICT_ONLY, ids=[c[0] for c in ACCEPTED_BY_STRICT_ONLY])
def test_inputs_only_the_strict_reader_accepts_still_load(tmp_path, monkeypatch, forked, case, data):
    src = tmp_path / "corpus.jsonl"
    src.write_bytes(data)
    assert _fast(src, tmp_path) is None
    monkeypatch.setattr(store, "FAST_PATH_MIN_BYTES", 0)
    assert store.open_corpus(src, tmp_path / "cache").table.equals(_strict(src, tmp_path))


# --- differential fuzzing: whatever the bytes, the fast path accepts only what the strict reader
# --- accepts, and then gives the same table.  The child runs forked (a crash stays in the fork).

_pieces = st.sampled_from(
    [
        '{"_id": "a", "text": "x"}', '{"_id": "b", "title": null, "text": "y", "metadata": {}}',
        '{"_id": 3, "text": "z"}', '{"_id": "c", "text": null}', '{"_id": "", "text": "e"}', '{"text": "m"}',
        '{"_id": "d", "text": "\\ud800"}', '{"_id": "e", "text": "\\ud83d\\ude00 \\u0000"}', "null", "[]", "5",
        '{"_id": "a", "text": "dup"}', '{"_id": "f", "text": "t", "x": [1, {"y": NaN}]}', '"s"', "{", "}",
        '{"_id": "g", "text": "h"} {"_id": "i", "text": "j"}', '{"_id": "k", "title": 1, "text": "l"}',
        '{"_id": "n", "text": "o", "_id": "p"}', '{"_id": "q r", "text": "s"}', '{"_id": "t\\u2028", "text": "u"}',
        '{"_id": "v\\u0000", "text": "w"}', " ", "", "\t", "\r", "\ufeff", "\u2028", "\xe9",
    ]
)  # fmt: skip
_corpora = st.one_of(
    st.lists(_pieces, min_size=1, max_size=8).flatmap(
        lambda parts: st.sampled_from(["\n", "\r\n", " ", "\r"]).map(lambda sep: sep.join(parts))
    ),
    st.lists(st.text(max_size=20), max_size=4).map("\n".join),
).map(lambda text: text.encode("utf-8", "surrogatepass"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=_corpora)
def test_fuzz_fast_path_never_disagrees_with_the_strict_reader(data):
    with tempfile.TemporaryDirectory() as d, pytest.MonkeyPatch.context() as mp:
        mp.setattr(store, "_spawn_fast_child", _Forked)
        src = Path(d) / "corpus.jsonl"
        src.write_bytes(data)
        fast = _fast(src, Path(d))
        try:
            strict = _strict(src, Path(d))
        except DataError:
            assert fast is None, "the fast path accepted a file the strict reader rejects"
            event("both reject" if fast is None else "DISAGREE")
            return
        event("strict accepts, fast declines" if fast is None else "both accept")
        assert fast is None or fast.equals(strict)


# --- reuse, staleness, interruption, read-only cache


def test_second_open_maps_the_store_without_reading_the_file(tmp_path, monkeypatch):
    src = tmp_path / "corpus.jsonl"
    src.write_bytes(_lines(*({"_id": str(i), "text": "some words " * 20} for i in range(20_000))))
    first = store.open_corpus(src, tmp_path / "cache")
    monkeypatch.setattr(store, "scan_file", lambda p: pytest.fail("hashed again"))
    monkeypatch.setattr(store, "_converted", lambda *a: pytest.fail("converted again"))
    before = pa.total_allocated_bytes()
    second = store.open_corpus(src, tmp_path / "cache")
    assert second.sha256 == first.sha256 and second.path == first.path and second.table.equals(first.table)
    text_bytes = sum(c.nbytes for c in second.table.column("text").chunks)
    assert text_bytes > 4_000_000 and pa.total_allocated_bytes() - before < 10_000  # mapped, not read


def test_a_changed_file_gets_a_new_store(tmp_path):
    src = tmp_path / "corpus.jsonl"
    src.write_bytes(DOCS)
    first = store.open_corpus(src, tmp_path / "cache")
    time.sleep(0.01)
    src.write_bytes(DOCS + _lines({"_id": "d4", "text": "four"}))
    second = store.open_corpus(src, tmp_path / "cache")
    assert second.sha256 != first.sha256 and second.table.num_rows == 4
    os.utime(src, ns=(1, 1))  # same content, other mtime: hashed again, same store reused
    assert store.open_corpus(src, tmp_path / "cache").path == second.path


def test_a_store_for_the_same_content_is_shared_between_paths(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(DOCS)
    (tmp_path / "b.jsonl").write_bytes(DOCS)
    assert (
        store.open_corpus(tmp_path / "a.jsonl", tmp_path / "c").path
        == store.open_corpus(tmp_path / "b.jsonl", tmp_path / "c").path
    )


def test_a_corrupt_store_is_converted_again(tmp_path):
    src = tmp_path / "corpus.jsonl"
    src.write_bytes(DOCS)
    first = store.open_corpus(src, tmp_path / "cache")
    first.path.write_bytes(first.path.read_bytes()[:100])
    again = store.open_corpus(src, tmp_path / "cache")
    assert again.table.num_rows == 3 and again.table.column("_id").to_pylist() == ["d1", "d2", "d3"]


def test_conversion_killed_midway_leaves_no_store_and_the_next_open_completes(tmp_path):
    src = tmp_path / "corpus.jsonl"
    line = json.dumps({"_id": "x", "text": "word " * 40})
    with open(src, "w") as fh:
        fh.writelines(line.replace('"x"', f'"{i}"') + "\n" for i in range(300_000))
    cache = tmp_path / "cache"
    code = f"from gtr_eval.data.store import open_corpus; open_corpus({str(src)!r}, {str(cache)!r})"
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, start_new_session=True)
    deadline = time.time() + 60
    while not list(cache.rglob("*.tmp")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the parent and its fast-path child
    proc.wait()
    assert not list(cache.rglob("*.arrow")), "a killed conversion must not leave a store"
    done = store.open_corpus(src, cache)
    assert done.table.num_rows == 300_000 and not list(cache.rglob("*.tmp"))


def test_unwritable_cache_warns_and_loads(tmp_path):
    src = tmp_path / "corpus.jsonl"
    src.write_bytes(DOCS)
    cache = tmp_path / "not-a-folder"
    cache.write_text("")
    with pytest.warns(UserWarning, match="not writable"):
        found = store.open_corpus(src, cache)
    assert found.path is None and found.table.column("_id").to_pylist() == ["d1", "d2", "d3"]


# --- the Arrow-backed Corpus


def test_corpus_reads_rows_by_range_and_by_index(tmp_path):
    src = tmp_path / "corpus.jsonl"
    src.write_bytes(DOCS)
    corpus, sha = read_corpus(src)
    assert corpus.store_path is not None and corpus.content_hash() == sha and len(sha) == 64
    assert corpus.ids == ["d1", "d2", "d3"] and list(corpus.ids) == ["d1", "d2", "d3"]
    assert corpus.texts(range(1, 3)) == ["two", "thr\u00e9e \u2028 \U0001f600"]
    assert corpus.texts(np.array([2, 0])) == ["thr\u00e9e \u2028 \U0001f600", "T1 one"]
    assert corpus.texts() == [corpus.text(i) for i in range(3)]
    assert corpus.char_lengths().tolist() == [5, 3, len("thr\u00e9e \u2028 \U0001f600".encode())]
    assert corpus.ids.positions({"d3", "nope", "d1"}) == {"d1": 0, "d3": 2}
    assert corpus.ids.index("d2") == 1 and corpus.ids.take([2, 2]) == ["d3", "d3"] and corpus.ids[-1] == "d3"
    sub = corpus.subset([2, 0])
    assert sub.ids == ["d3", "d1"] and sub.store_path is None and sub.content_hash().startswith("content:")


def test_rows_of_a_many_chunk_store_are_gathered_chunk_by_chunk():
    """A store's columns come in many chunks; `Table.take` would concatenate each column whole first
    (at MS MARCO size past Arrow's 2 GiB string offsets: "offset overflow").  Rows are gathered
    chunk by chunk instead, in the order asked, repeats and all (the 8.8M run of
    benchmarks/bench_scale.py is where the overflow showed)."""
    records = [(f"d{i}", f"t{i % 5}", "w" * (i % 11) + str(i)) for i in range(1_000)]
    whole = Corpus.from_records(records)
    chunked = Corpus(pa.concat_tables([whole.table.slice(a, 97) for a in range(0, 1_000, 97)]))
    assert chunked.table.column("text").num_chunks == 11
    idx = np.random.default_rng(0).integers(0, 1_000, 700)
    idx[:3] = [999, 0, 999]

    expected = whole.rows(idx)
    assert chunked.rows(idx).equals(expected)
    assert chunked.texts(idx) == [whole.text(int(i)) for i in idx]
    assert chunked.subset(idx[:5]).ids == [f"d{i}" for i in idx[:5]]
    with pytest.raises(IndexError, match="out of range"):
        chunked.rows(np.array([3, 1_000]))


def test_in_memory_corpus_hash_is_unchanged():
    """The content hash of in-memory corpora (PeerQA) keys embedding caches: it must not move."""
    corpus = Corpus.from_records([("p/0", "", "x"), ("p/1", "T", "y")])
    import hashlib

    expected = hashlib.sha256(b"p/0\0\0x\np/1\0T\0y\n").hexdigest()
    assert corpus.content_hash() == "content:" + expected


@pytest.mark.slow
@pytest.mark.parametrize("name", ["scifact", "nfcorpus"])
def test_real_sets_take_the_fast_path_with_the_same_result(tmp_path, monkeypatch, name):
    src = SHARED_BEIR / name / "corpus.jsonl"
    if not src.is_file():
        pytest.skip(f"real BEIR data not found at {src}")
    fast = _fast(src, tmp_path)
    assert fast is not None and fast.equals(_strict(src, tmp_path))
    monkeypatch.setattr(store, "FAST_PATH_MIN_BYTES", 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = load_beir_folder(SHARED_BEIR / name)
    assert data.corpus.table.equals(fast)
