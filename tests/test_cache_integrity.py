"""A stored number is served only for the inputs that made it, and only if what is on disk is what was written.

Stat-keyed memos (file digests, weights digests) must see an edit of the same size whose mtime was
restored (`touch -r`, `cp -p`, `rsync -t` do this): ctime moves, and it is part of the key.  Cached
artifacts (corpus store, BM25 index, ONNX export) are verified against the checksum record written
with them the first time a process opens them; a corrupted one is rebuilt with a note, and the score
is the true one.
"""

from __future__ import annotations

import codecs
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from gtr_eval import artifacts
from gtr_eval.artifacts import CacheRoot, build_folder, memoised_sha256, verify_folder
from gtr_eval.cli import cli
from gtr_eval.io import sha256_file
from gtr_eval.paths import BUNDLED


def _demo(tmp_path: Path) -> Path:
    folder = tmp_path / "data" / "demo"
    shutil.copytree(BUNDLED / "demo", folder)
    return folder


def _run(model: str, data: Path, results: Path, cache: Path, *extra: str):
    args = ["run", "-m", model, "-d", str(data), "--results-dir", str(results), "--cache-dir", str(cache)]
    return CliRunner().invoke(cli, [*args, "--quiet", *extra])


def _stored(results: Path) -> dict:
    (file,) = results.glob("*/demo.json")
    return json.loads(file.read_text())


def _edit_in_place(path: Path, edit) -> None:
    """Rewrite `path` with `edit(bytes)` (same size), then set its atime and mtime back."""
    before = path.stat()
    data = path.read_bytes()
    new = edit(data)
    assert len(new) == len(data) and new != data
    path.write_bytes(new)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        before.st_size,
        before.st_mtime_ns,
        before.st_ino,
    )


def _rot13_texts(data: bytes, texts: list[str]) -> bytes:
    for text in texts:
        data = data.replace(text.encode(), codecs.encode(text, "rot13").encode())
    return data


def _texts(demo: Path, ids: tuple[str, ...] | None = None) -> list[str]:
    rows = [json.loads(line) for line in (demo / "corpus.jsonl").read_text().splitlines()]
    return [r["text"] for r in rows if ids is None or r["_id"] in ids]


# --- case 1: memos keyed by stat must not miss a content change ---------------------------------


def test_memoised_digest_sees_a_same_size_edit_with_its_mtime_restored(tmp_path):
    file = tmp_path / "qrels.tsv"
    file.write_text("q1\td1\t2\n")
    memos = tmp_path / "memos"
    first = memoised_sha256(file, memos)
    _edit_in_place(file, lambda b: b.replace(b"\t2", b"\t0"))
    assert memoised_sha256(file, memos) == sha256_file(file) != first


def test_qrels_edited_in_place_is_refused_not_served(tmp_path):
    demo, results, cache = _demo(tmp_path), tmp_path / "results", tmp_path / "cache"
    assert _run("bm25", demo, results, cache).exit_code == 0
    assert "[skip] bm25 on demo: already done" in _run("bm25", demo, results, cache).output  # memos written
    qrels = demo / "qrels" / "test.tsv"
    _edit_in_place(qrels, lambda b: b.replace(b"\t2\n", b"\t0\n", 3))
    again = _run("bm25", demo, results, cache)
    assert "[skip]" not in again.output
    assert again.exit_code == 3
    refusals = [line for line in again.output.splitlines() if line.startswith("[refused]")]
    assert refusals == [
        "[refused] bm25 on demo was made with other qrels (qrels/test.tsv differs); use --name NAME to keep "
        "both, or --overwrite to replace it"
    ]
    recomputed = _run("bm25", demo, results, cache, "--overwrite")
    assert recomputed.exit_code == 0, recomputed.output
    stored = _stored(results)
    assert stored["identity"]["dataset"]["files_sha256"]["qrels/test.tsv"] == sha256_file(qrels)
    fresh = _run("bm25", demo, tmp_path / "fresh-results", tmp_path / "fresh-cache")
    assert fresh.exit_code == 0
    assert stored["metrics"]["ndcg@10"] == _stored(tmp_path / "fresh-results")["metrics"]["ndcg@10"]


def test_corpus_edited_in_place_gets_a_new_store_and_index(tmp_path):
    demo, cache = _demo(tmp_path), tmp_path / "cache"
    assert _run("bm25", demo, tmp_path / "r1", cache).exit_code == 0
    before = _stored(tmp_path / "r1")["metrics"]["ndcg@10"]
    # the relevant documents of q1, q2 and q3, their letters rotated: same size, other words
    _edit_in_place(demo / "corpus.jsonl", lambda b: _rot13_texts(b, _texts(demo, ("d02", "d04", "d05"))))
    same_root = _run("bm25", demo, tmp_path / "r2", cache)  # a new results folder, the old cache
    assert same_root.exit_code == 0, same_root.output
    assert _run("bm25", demo, tmp_path / "r3", tmp_path / "fresh-cache").exit_code == 0
    true = _stored(tmp_path / "r3")["metrics"]["ndcg@10"]
    assert true < before  # the edit matters
    stored = _stored(tmp_path / "r2")
    assert stored["metrics"]["ndcg@10"] == true
    assert stored["identity"]["dataset"]["files_sha256"]["corpus.jsonl"] == sha256_file(demo / "corpus.jsonl")
    assert "[skip]" not in _run("bm25", demo, tmp_path / "r1", cache).output


def _scramble_safetensors(data: bytes) -> bytes:
    """The tensors' bytes reversed in 4-byte words (fp32 values stay finite): same size, other weights."""
    header = 8 + int.from_bytes(data[:8], "little")
    words = np.frombuffer(data[header:], dtype=np.uint32)
    return data[:header] + words[::-1].tobytes()


def test_weights_edited_in_place_are_fingerprinted_again_under_a_fresh_cache_dir(tiny_gtr, tmp_path):
    from gtr_eval.retrieval.weights import _model_files

    model = tmp_path / "model"
    shutil.copytree(tiny_gtr, model)
    demo = _demo(tmp_path)
    args = ("--backend", "torch")
    assert _run(str(model), demo, tmp_path / "r1", tmp_path / "cache-a", *args).exit_code == 0
    old = _stored(tmp_path / "r1")
    (weights,) = model.glob("*.safetensors")
    _edit_in_place(weights, _scramble_safetensors)
    fresh = _run(str(model), demo, tmp_path / "r2", tmp_path / "cache-b", *args)
    assert fresh.exit_code == 0, fresh.output
    new = _stored(tmp_path / "r2")
    h = __import__("hashlib").sha256()
    for p in _model_files(model):
        h.update(str(p.relative_to(model)).encode() + b"\0" + p.read_bytes())
    assert (
        new["manifest"]["spec"]["weights_sha256"]
        == h.hexdigest()
        != old["manifest"]["spec"]["weights_sha256"]
    )
    assert new["metrics"]["ndcg@10"] != old["metrics"]["ndcg@10"]
    # the memo lives under the cache root in use, never the user cache
    assert list((tmp_path / "cache-b" / "memos" / "weights").iterdir())
    assert not (tmp_path / "user-cache").exists()
    again = _run(str(model), demo, tmp_path / "r1", tmp_path / "cache-a", *args)
    assert "[skip]" not in again.output and again.exit_code == 3


# --- case 3: cached artifacts are verified before they are trusted ------------------------------


def test_build_folder_records_checksums_and_rebuilds_a_corrupted_folder(tmp_path, caplog):
    folder = tmp_path / "bm25" / "ab" / "abc"
    calls = []

    def make(tmp: Path) -> None:
        calls.append(tmp)
        (tmp / "data.npy").write_bytes(b"\1" * 300)

    assert build_folder(folder, make, "test artifact", tmp_path / "memos") is False
    record = json.loads((folder / artifacts.RECORD).read_text())["files"]
    assert record == {"data.npy": [300, sha256_file(folder / "data.npy")]}
    assert build_folder(folder, make, "test artifact", tmp_path / "memos") is True and len(calls) == 1
    _edit_in_place(folder / "data.npy", lambda b: b"\0" * 100 + b[100:])
    assert verify_folder(folder, tmp_path / "memos") == "data.npy"
    with caplog.at_level(logging.WARNING):
        assert build_folder(folder, make, "test artifact", tmp_path / "memos") is False
    assert f"[cache] test artifact {folder} failed its checksum (data.npy); rebuilding" in caplog.text
    assert len(calls) == 2 and verify_folder(folder) is None


def test_verdicts_are_memoised_by_stat_key_across_processes(tmp_path, monkeypatch):
    folder = tmp_path / "entry"
    build_folder(folder, lambda tmp: (tmp / "f").write_bytes(b"x" * 10), "test artifact", tmp_path / "m")
    artifacts._VERIFIED.clear()  # as a new process
    monkeypatch.setattr(artifacts, "sha256_file", lambda p: pytest.fail("hashed although the memo knew"))
    assert verify_folder(folder, tmp_path / "m") is None


def test_cache_root_names_areas_and_entries():
    root = CacheRoot(Path("/c"))
    entry = root.entry("bm25", {"a": 1})
    assert entry.parent.parent == Path("/c/bm25") and entry.parent.name == entry.name[:2]
    assert root.entry("bm25", {"a": 1}) == entry != root.entry("bm25", {"a": 2})
    with pytest.raises(ValueError, match="no cache area"):
        root.area("fingerprints")


def test_corrupted_bm25_index_is_rebuilt_with_a_note(tmp_path, caplog):
    demo, cache = _demo(tmp_path), tmp_path / "cache"
    assert _run("bm25", demo, tmp_path / "r1", cache).exit_code == 0
    true = _stored(tmp_path / "r1")["metrics"]["ndcg@10"]
    (data,) = cache.glob("bm25/*/*/data.csc.index.npy")
    _edit_in_place(data, lambda b: b[: len(b) - len(b) // 3] + b"\0" * (len(b) // 3))  # its last third zeroed
    with caplog.at_level(logging.WARNING):
        again = _run("bm25", demo, tmp_path / "r2", cache)
    assert again.exit_code == 0, again.output
    assert (
        "bm25 index" in caplog.text and "failed its checksum (data.csc.index.npy); rebuilding" in caplog.text
    )
    assert _stored(tmp_path / "r2")["metrics"]["ndcg@10"] == true
    assert verify_folder(data.parent) is None


def test_corrupted_corpus_store_is_converted_again_with_a_note(tmp_path, caplog):
    demo, cache = _demo(tmp_path), tmp_path / "cache"
    assert _run("bm25", demo, tmp_path / "r1", cache).exit_code == 0
    true = _stored(tmp_path / "r1")["metrics"]["ndcg@10"]
    (store,) = cache.glob("corpus/*/*/corpus.arrow")
    _edit_in_place(store, lambda b: _rot13_texts(b, _texts(demo)))  # letters edited inside the store
    shutil.rmtree(cache / "bm25")  # so that the index is built from the store again
    with caplog.at_level(logging.WARNING):
        again = _run("bm25", demo, tmp_path / "r2", cache)
    assert again.exit_code == 0, again.output
    assert "[cache] corpus store" in caplog.text and "failed its checksum (corpus.arrow)" in caplog.text
    assert _stored(tmp_path / "r2")["metrics"]["ndcg@10"] == true
    assert _texts(demo)[0].encode() in store.read_bytes()


def _shuffle_onnx_tensors(path: Path) -> None:
    import onnx

    before = path.stat()
    model = onnx.load(str(path))
    for tensor in model.graph.initializer:
        if len(tensor.raw_data) >= 64 and tensor.data_type == onnx.TensorProto.FLOAT:
            values = np.frombuffer(tensor.raw_data, dtype=np.float32)
            tensor.raw_data = values[np.random.default_rng(0).permutation(len(values))].tobytes()
    onnx.save(model, str(path))
    assert path.stat().st_size == before.st_size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_corrupted_onnx_export_is_exported_again_and_stores_no_wrong_vectors(tiny_gtr, tmp_path, caplog):
    pytest.importorskip("onnxruntime")
    demo, cache = _demo(tmp_path), tmp_path / "cache"
    args = ("--backend", "onnx")
    first = _run(str(tiny_gtr), demo, tmp_path / "r1", cache, *args)
    assert first.exit_code == 0, first.output
    true = _stored(tmp_path / "r1")["metrics"]["ndcg@10"]
    shards = {p.relative_to(cache): np.load(p) for p in cache.glob("embeddings/**/shard-*.npy")}
    assert shards
    (graph,) = cache.glob("onnx/*/fp32/model-opt.onnx")
    _shuffle_onnx_tensors(graph)
    shutil.rmtree(cache / "embeddings")  # so that documents and queries are encoded again
    with caplog.at_level(logging.WARNING):
        again = _run(str(tiny_gtr), demo, tmp_path / "r2", cache, *args)
    assert again.exit_code == 0, again.output
    assert "[cache] ONNX export" in caplog.text and "failed its checksum (model-opt.onnx)" in caplog.text
    assert _stored(tmp_path / "r2")["metrics"]["ndcg@10"] == true
    for rel, vectors in shards.items():
        np.testing.assert_allclose(np.load(cache / rel), vectors, rtol=0, atol=1e-6)


def test_an_edited_reduced_corpus_is_made_again_with_a_note(tmp_path, caplog):
    from gtr_eval.data.units import DatasetUnit
    from gtr_eval.pipeline.reduction import reduce_unit

    unit = DatasetUnit("demo", _demo(tmp_path), "test")
    made = reduce_unit(unit, 2, CacheRoot(tmp_path / "cache"), echo=lambda _: None)
    corpus = made.path / "corpus.jsonl"
    original = corpus.read_bytes()
    _edit_in_place(corpus, lambda b: _rot13_texts(b, [json.loads(b.splitlines()[0])["text"]]))
    with caplog.at_level(logging.WARNING):
        again = reduce_unit(unit, 2, CacheRoot(tmp_path / "cache"), echo=lambda _: None)
    assert "[cache] reduced dataset" in caplog.text and "failed its checksum (corpus.jsonl)" in caplog.text
    assert (again.path / "corpus.jsonl").read_bytes() == original


def test_an_index_is_keyed_by_the_store_it_was_read_from(tmp_path):
    """A store converted again makes what was derived from it be built again: an index read from a
    wrong store (here one whose record was rewritten to match) is not served once the store is right."""
    demo, cache = _demo(tmp_path), tmp_path / "cache"
    assert _run("bm25", demo, tmp_path / "r1", cache).exit_code == 0
    true = _stored(tmp_path / "r1")["metrics"]["ndcg@10"]
    (store,) = cache.glob("corpus/*/*/corpus.arrow")
    _edit_in_place(store, lambda b: _rot13_texts(b, _texts(demo)))
    (store.parent / artifacts.RECORD).unlink()
    artifacts.write_record(store.parent)
    assert _run("bm25", demo, tmp_path / "r2", cache).exit_code == 0
    assert _stored(tmp_path / "r2")["metrics"]["ndcg@10"] != true  # read from the wrong store
    shutil.rmtree(store.parent)  # converted again
    assert _run("bm25", demo, tmp_path / "r3", cache).exit_code == 0
    assert _stored(tmp_path / "r3")["metrics"]["ndcg@10"] == true
    assert len(list(cache.glob("bm25/*/*/data.csc.index.npy"))) == 2
