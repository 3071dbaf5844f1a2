"""`--cache-dtype fp16`: corpus vectors stored in half precision, scored in float32.

Half the bytes on disk; the storage dtype keys the cache entry and is checked in every shard's
sidecar; resume after a kill works as for float32; search upcasts before any product, so half
precision never reaches the top-k.  (The NDCG@10 of fp16 vs fp32 storage on the real SciFact and
NFCorpus is checked in test_real_data.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from gtr_eval.cli import cli
from gtr_eval.data.loader import load_beir_folder
from gtr_eval.data.units import DatasetFingerprint
from gtr_eval.identity import Identity, cache_fields
from gtr_eval.paths import BUNDLED
from gtr_eval.retrieval.cache import encode_sharded
from gtr_eval.retrieval.dense import DenseConfig, DenseRetriever
from gtr_eval.retrieval.search import exact_search

DEMO = BUNDLED / "demo"
ROWS, DIM = 300, 64
VECTORS = np.random.default_rng(0).standard_normal((ROWS, DIM)).astype(np.float32)


def _kw(tmp_path, calls: list[int] | None = None, **extra) -> dict:
    def encode(texts: list[str]) -> np.ndarray:
        if calls is not None:
            calls.append(len(texts))
        return VECTORS[[int(t) for t in texts]]

    return (
        dict(
            texts=lambda idx: [str(i) for i in idx],
            order=np.arange(ROWS),
            encode=encode,
            key={"test": "fp16"},
            cache_dir=tmp_path,
            shard_size=100,
            progress=False,
        )
        | extra
    )


def test_fp16_shards_take_half_the_bytes_and_read_back_as_float32(tmp_path):
    full = encode_sharded(**_kw(tmp_path / "32"))
    half = encode_sharded(**_kw(tmp_path / "16", storage_dtype="float16"))
    for a, b in zip(full.shard_paths, half.shard_paths, strict=True):
        header = 128  # np.save's header for a 2-d array, either dtype
        assert b.stat().st_size - header == (a.stat().st_size - header) // 2
        assert np.load(b, allow_pickle=False).dtype == np.float16
        assert json.loads(b.with_suffix(".json").read_text())["dtype"] == "float16"
        assert json.loads(a.with_suffix(".json").read_text())["dtype"] == "float32"
    m = half.matrix()
    assert m.dtype == np.float32
    np.testing.assert_array_equal(m, VECTORS.astype(np.float16).astype(np.float32))
    np.testing.assert_array_equal(full.matrix(), VECTORS)
    with pytest.raises(ValueError, match="storage dtype"):
        encode_sharded(**_kw(tmp_path / "8", storage_dtype="int8"))


def test_fp16_resume_after_a_kill_encodes_only_the_missing_shards(tmp_path):
    calls: list[int] = []
    first = encode_sharded(**_kw(tmp_path, calls, storage_dtype="float16"))
    assert calls == [100, 100, 100]
    before = first.matrix()
    first.shard_paths[1].with_suffix(".json").unlink()  # killed between the shard and its sidecar
    first.shard_paths[2].write_bytes(first.shard_paths[2].read_bytes()[:-10])  # cut short
    calls.clear()
    again = encode_sharded(**_kw(tmp_path, calls, storage_dtype="float16"))
    assert calls == [100, 100] and (again.stats.shards_reused, again.stats.shards_encoded) == (1, 2)
    np.testing.assert_array_equal(again.matrix(), before)
    # shard jobs (`--shard I/N`) split fp16 entries as they split fp32 ones
    jobs = tmp_path / "jobs"
    a = encode_sharded(**_kw(jobs, storage_dtype="float16"), select=lambda i: i % 2 == 0)
    assert not a.complete and a.stats.shards_encoded == 2
    b = encode_sharded(**_kw(jobs, storage_dtype="float16"), select=lambda i: i % 2 == 1)
    assert b.complete and b.stats.shards_encoded == 1
    np.testing.assert_array_equal(encode_sharded(**_kw(jobs, storage_dtype="float16")).matrix(), before)


def test_a_shard_whose_sidecar_names_another_dtype_is_encoded_again(tmp_path):
    folder = tmp_path / "entry"
    calls: list[int] = []
    encode_sharded(**_kw(tmp_path, calls), folder=folder)  # float32 shards
    calls.clear()
    half = encode_sharded(**_kw(tmp_path, calls, storage_dtype="float16"), folder=folder)
    assert calls == [100, 100, 100] and half.stats.shards_reused == 0  # not misread as fp16
    assert np.load(half.shard_paths[0], allow_pickle=False).dtype == np.float16
    # a sidecar edited to claim another dtype does not make a shard complete either
    meta_path = half.shard_paths[0].with_suffix(".json")
    meta_path.write_text(json.dumps(json.loads(meta_path.read_text()) | {"dtype": "float32"}))
    calls.clear()
    encode_sharded(**_kw(tmp_path, calls, storage_dtype="float16"), folder=folder)
    assert calls == [100]


def test_search_over_fp16_shards_scores_in_float32(tmp_path):
    """Two documents one fp16 step apart in one component: float32 products tell them apart, half
    precision products round both scores onto the same value (a spurious tie)."""
    rng = np.random.default_rng(1)
    base = rng.uniform(0.5, 1.0, 256).astype(np.float16)
    near = base.copy()
    near[7] = np.nextafter(base[7], np.float16(2))  # one fp16 ulp larger
    docs = np.stack([base, near, -base])
    q = np.ones((1, 256), np.float32)
    half_scores = q.astype(np.float16) @ docs.T
    assert half_scores[0, 0] == half_scores[0, 1]  # what scoring in fp16 would give

    scores, idx = exact_search(q, [(0, docs)], top_k=3, score="dot")
    assert scores.dtype == np.float32
    assert list(idx[0]) == [1, 0, 2] and scores[0, 0] > scores[0, 1]
    np.testing.assert_allclose(scores[0], (q @ docs.astype(np.float32).T)[0][[1, 0, 2]], rtol=1e-6)
    for kernel in ("torch", "faiss"):
        s, i = exact_search(q, [(0, docs)], top_k=3, score="cos", kernel=kernel)
        assert list(i[0]) == [1, 0, 2] and s[0, 0] > s[0, 1] and s.dtype == np.float32


def test_dense_fp16_storage_keys_apart_records_it_and_ranks_like_fp32(tiny_gtr, tmp_path):
    data = load_beir_folder(DEMO)
    cfg = DenseConfig(model=str(tiny_gtr), backend="torch", shard_size=8)
    full = DenseRetriever(cfg, cache_dir=tmp_path, progress=False)
    full_stats = full.index(data.corpus).stats
    half = DenseRetriever(
        DenseConfig(**{**cfg.__dict__, "cache_dtype": "fp16"}), cache_dir=tmp_path, progress=False
    )
    folder16 = Path(half.index(data.corpus).stats["cache_folder"])
    folder32 = Path(full_stats["cache_folder"])
    assert folder16 != folder32
    key32 = json.loads((folder32 / "key.json").read_text())
    key16 = json.loads((folder16 / "key.json").read_text())
    content = data.corpus.content_hash()
    assert key32 == full.key("corpus", content) and key16 == half.key("corpus", content)
    assert (key32["storage"], key32["cache_dtype"]) == ("dense:float32", "fp32")
    assert key16 == key32 | {"storage": "dense:float16", "cache_dtype": "fp16"}  # only the storage differs
    # queries are always stored in fp32 (few, and the left side of every score): one entry for both
    assert half.key("queries", "q") == full.key("queries", "q") and "cache_dtype" not in cache_fields(
        half.spec, "queries"
    )
    shards16, shards32 = sorted(folder16.glob("shard-*.npy")), sorted(folder32.glob("shard-*.npy"))
    assert len(shards16) == len(shards32) == full_stats["corpus_shards"] > 1
    for p16, p32 in zip(shards16, shards32, strict=True):
        assert p16.stat().st_size - 128 == (p32.stat().st_size - 128) // 2  # data bytes, past the header
    assert (half.spec.record()["cache_dtype"], full.spec.record()["cache_dtype"]) == ("fp16", "fp32")
    fp = DatasetFingerprint("demo", "test", data.checksums)
    assert Identity.of(half.spec, fp).system["cache_dtype"] == "fp16"  # it changes the ranking
    assert Identity.of(half.spec, fp) != Identity.of(full.spec, fp)
    r16, r32 = half.search(data.queries, 10).run, full.search(data.queries, 10).run
    assert r16.keys() == r32.keys()
    for q in r32:
        assert max(abs(r16[q][d] - s) for d, s in r32[q].items() if d in r16[q]) < 1e-3
    with pytest.raises(ValueError, match="cache dtype"):
        DenseRetriever(DenseConfig(model=str(tiny_gtr), cache_dtype="bf16"), progress=False)


def test_cli_cache_dtype_encode_then_run_and_the_reuse_check(tiny_gtr, tmp_path):
    common = ["-m", str(tiny_gtr), "-d", "demo", "--cache-dir", str(tmp_path / "cache"), "--quiet"]
    results = ["--results-dir", str(tmp_path / "results")]
    enc = CliRunner().invoke(cli, ["encode", *common, "--cache-dtype", "fp16"])
    assert enc.exit_code == 0, enc.output
    res = CliRunner().invoke(cli, ["run", *common, *results, "--cache-dtype", "fp16"])
    assert res.exit_code == 0, res.output
    assert "corpus embeddings: 1 shard from cache" in res.output  # the same key as `encode`
    half = tmp_path / "results" / "model[cache_dtype=fp16]" / "demo.json"  # a variant of the preset
    assert json.loads(half.read_text())["manifest"]["spec"]["cache_dtype"] == "fp16"
    assert json.loads(half.read_text())["identity"]["system"]["cache_dtype"] == "fp16"
    # a result stored with fp16 vectors is not passed off as an fp32 one, nor the other way round
    full = CliRunner().invoke(cli, ["run", *common, *results])
    assert full.exit_code == 0 and "[done] model on demo" in full.output, full.output
    path = tmp_path / "results" / "model" / "demo.json"
    stored = json.loads(path.read_text())
    assert stored["manifest"]["spec"]["cache_dtype"] == stored["identity"]["system"]["cache_dtype"] == "fp32"
    again = CliRunner().invoke(cli, ["run", *common, *results, "--cache-dtype", "fp16"])
    assert again.exit_code == 0 and "[skip] model[cache_dtype=fp16] on demo: already done" in again.output
    # a result whose identity does not record the storage dtype (made before the option existed) is
    # served for neither: which vectors made it is not known
    del stored["identity"]["system"]["cache_dtype"]
    path.write_text(json.dumps(stored))
    out = CliRunner().invoke(cli, ["run", *common, *results])
    assert (
        out.exit_code == 3
        and "model on demo was made with other settings (cache_dtype not recorded)" in out.output
    )
    named = CliRunner().invoke(cli, ["run", *common, *results, "--cache-dtype", "fp16", "--name", "model"])
    assert named.exit_code == 3 and "(cache_dtype not recorded)" in named.output
