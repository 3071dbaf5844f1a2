"""Hugging Face hub copies of a BEIR folder, laid out exactly as the hub and its local cache hold them.

`install(...)` writes a dataset repo into a hub cache (`datasets--org--name/blobs/`, `snapshots/<commit>/`
with symlinks into the blobs, `refs/main`), which `snapshot_download(..., repo_type="dataset")` then
serves with HF_HUB_OFFLINE=1 as if it had downloaded it. The layouts, from the repos themselves:

- BeIR/<name> at its pinned commit: `corpus/corpus-00000-of-00001.parquet` (_id, title, text),
  `queries/queries-00000-of-00001.parquet` (_id, title, text; every query of every split);
  older commits: `corpus.jsonl.gz`, `queries.jsonl.gz`.
- BeIR/<name>-qrels: `test.tsv`, `train.tsv` (BEIR's own files).
- mteb/<name>, jsonl (MTEB's first uploads): `corpus.jsonl`, `queries.jsonl`, `qrels/<split>.jsonl`
  (`score` a float), plus `README.md`.
- mteb/<name>, parquet (what MTEB's `push_to_hub` writes): `corpus/test-00000-of-00001.parquet` (id,
  title, text), `queries/test-…` (id, text; the split's queries only), `qrels/test-…` (query-id,
  corpus-id, score int64).
- zeta-alpha-ai/Nano<name> (NanoBEIR's originals; the card of NanoSciFact@309f1d1): `README.md`,
  `corpus/train-00000-of-00001.parquet` (_id, text: no title), `queries/train-…` (_id, text),
  `qrels/train-…` (query-id, corpus-id: no score, every pair relevant); all strings.
- mteb/Nano<name>Retrieval (the card of mteb/NanoSciFactRetrieval@8c5f7bb): `README.md`,
  `corpus/train-00000-of-00001.parquet` (id, text, title: empty), `queries/train-…` (id, text),
  `qrels/train-…` (query-id, corpus-id, score int64).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
from pathlib import Path


def read_beir(folder: Path) -> tuple[list[dict], list[dict], dict[str, bytes]]:
    corpus = [
        json.loads(line)
        for line in (folder / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
        if line
    ]
    queries = [
        json.loads(line)
        for line in (folder / "queries.jsonl").read_text(encoding="utf-8").splitlines()
        if line
    ]
    qrels = {p.stem: p.read_bytes() for p in sorted((folder / "qrels").glob("*.tsv"))}
    return corpus, queries, qrels


def install(hub_cache: Path, repo: str, commit: str, files: dict[str, bytes], main: bool = True) -> Path:
    """Write `files` as repo `repo` at `commit` into the hub cache; returns the snapshot folder."""
    base = hub_cache / ("datasets--" + repo.replace("/", "--"))
    snap = base / "snapshots" / commit
    for rel, data in files.items():
        blob = base / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = snap / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    if main:
        (base / "refs").mkdir(parents=True, exist_ok=True)
        (base / "refs" / "main").write_text(commit)
    return snap


def parquet(columns: dict[str, list], types: dict[str, str] | None = None) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = types or {}
    table = pa.table({k: pa.array(v, type=getattr(pa, types.get(k, "string"))()) for k, v in columns.items()})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def qrels_rows(tsv: bytes) -> list[tuple[str, str, int]]:
    lines = tsv.decode("utf-8").splitlines()[1:]
    return [(q, d, int(s)) for q, d, s in (line.split("\t") for line in lines if line.strip())]


def beir_parquet_files(corpus: list[dict], queries: list[dict]) -> dict[str, bytes]:
    return {
        "corpus/corpus-00000-of-00001.parquet": parquet(
            {k: [d.get(k, "") for d in corpus] for k in ("_id", "title", "text")}
        ),
        "queries/queries-00000-of-00001.parquet": parquet(
            {
                "_id": [q["_id"] for q in queries],
                "title": [""] * len(queries),
                "text": [q["text"] for q in queries],
            }
        ),
    }


def beir_jsonl_gz_files(corpus: list[dict], queries: list[dict]) -> dict[str, bytes]:
    return {
        "corpus.jsonl.gz": gzip.compress(jsonl(corpus)),
        "queries.jsonl.gz": gzip.compress(jsonl(queries)),
    }


def mteb_jsonl_files(corpus: list[dict], queries: list[dict], qrels: dict[str, bytes]) -> dict[str, bytes]:
    files = {
        "README.md": b"---\nconfigs: [corpus, queries, default]\n---\n",
        "corpus.jsonl": jsonl(corpus),
        "queries.jsonl": jsonl([{"_id": q["_id"], "text": q["text"]} for q in queries]),
    }
    for split, tsv in qrels.items():
        rows = [{"query-id": q, "corpus-id": d, "score": float(s)} for q, d, s in qrels_rows(tsv)]
        files[f"qrels/{split}.jsonl"] = jsonl(rows)
    return files


def mteb_parquet_files(corpus: list[dict], queries: list[dict], qrels: dict[str, bytes], split: str = "test"):
    judged = {q for q, _, _ in qrels_rows(qrels[split])}
    split_queries = [q for q in queries if q["_id"] in judged]
    rows = qrels_rows(qrels[split])
    return {
        f"corpus/{split}-00000-of-00001.parquet": parquet(
            {
                "id": [d["_id"] for d in corpus],
                "title": [d.get("title", "") for d in corpus],
                "text": [d["text"] for d in corpus],
            }
        ),
        f"queries/{split}-00000-of-00001.parquet": parquet(
            {"id": [q["_id"] for q in split_queries], "text": [q["text"] for q in split_queries]}
        ),
        f"qrels/{split}-00000-of-00001.parquet": parquet(
            {
                "query-id": [r[0] for r in rows],
                "corpus-id": [r[1] for r in rows],
                "score": [r[2] for r in rows],
            },
            {"score": "int64"},
        ),
    }


# ------------------------------------------------------------------------------------------ NanoBEIR
NANO_FILE = "{config}/train-00000-of-00001.parquet"


def _card(features: dict[str, tuple[tuple[str, str], ...]], source: str) -> bytes:
    """A dataset card as the NanoBEIR repos carry it: `dataset_info` (features, split `train`) and
    `configs` (one per table, `<config>/train-*`)."""
    lines = [
        "---",
        "language:",
        "- en",
        "license: cc-by-4.0",
        "source_datasets:",
        f"- {source}",
        "dataset_info:",
    ]
    for config, columns in features.items():
        lines += [f"- config_name: {config}", "  features:"]
        lines += [f"  - name: {name}\n    dtype: {dtype}" for name, dtype in columns]
        lines += ["  splits:", "  - name: train"]
    lines.append("configs:")
    for config in features:
        lines += [
            f"- config_name: {config}",
            "  data_files:",
            "  - split: train",
            f"    path: {config}/train-*",
        ]
    return ("\n".join([*lines, "---", ""])).encode("utf-8")


def nanobeir_files(corpus: list[dict], queries: list[dict], pairs: list[tuple[str, str]]) -> dict[str, bytes]:
    """zeta-alpha-ai/Nano<name>: documents and queries as `_id`, `text`; qrels the relevant pairs."""
    features = {
        "corpus": (("_id", "string"), ("text", "string")),
        "qrels": (("query-id", "string"), ("corpus-id", "string")),
        "queries": (("_id", "string"), ("text", "string")),
    }
    return {
        "README.md": _card(features, "SciFact"),
        NANO_FILE.format(config="corpus"): parquet(
            {"_id": [d["_id"] for d in corpus], "text": [d["text"] for d in corpus]}
        ),
        NANO_FILE.format(config="queries"): parquet(
            {"_id": [q["_id"] for q in queries], "text": [q["text"] for q in queries]}
        ),
        NANO_FILE.format(config="qrels"): parquet(
            {"query-id": [q for q, _ in pairs], "corpus-id": [d for _, d in pairs]}
        ),
    }


def nanobeir_mteb_files(
    corpus: list[dict], queries: list[dict], pairs: list[tuple[str, str]]
) -> dict[str, bytes]:
    """mteb/Nano<name>Retrieval: MTEB's parquet (`id`; an empty `title`; `score` int64, all 1)."""
    features = {
        "corpus": (("id", "string"), ("text", "string"), ("title", "string")),
        "qrels": (("query-id", "string"), ("corpus-id", "string"), ("score", "int64")),
        "queries": (("id", "string"), ("text", "string")),
    }
    return {
        "README.md": _card(features, "zeta-alpha-ai/NanoSciFact"),
        NANO_FILE.format(config="corpus"): parquet(
            {
                "id": [d["_id"] for d in corpus],
                "text": [d["text"] for d in corpus],
                "title": [""] * len(corpus),
            }
        ),
        NANO_FILE.format(config="queries"): parquet(
            {"id": [q["_id"] for q in queries], "text": [q["text"] for q in queries]}
        ),
        NANO_FILE.format(config="qrels"): parquet(
            {
                "query-id": [q for q, _ in pairs],
                "corpus-id": [d for _, d in pairs],
                "score": [1] * len(pairs),
            },
            {"score": "int64"},
        ),
    }
