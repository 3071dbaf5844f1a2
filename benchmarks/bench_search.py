"""(1e) Exact search at scale: 1,000,000 x 384 float32 corpus vectors, 10,000 queries, top-1000.

The corpus is written as our embedding-cache shards (2048 rows each, `.npy` + sidecar) and searched
memory-mapped by `exact_search` in a child process (time, peak RSS).  The peer, in its own process,
is what one would write with FAISS: load the matrix, `IndexFlatIP.add`, `search`.  Our peak RSS must
stay under 1.5 x the matrix bytes + 1 GiB.

Kernel choice: on a slice (200,000 rows, 2,000 queries, top-1000) `exact_search` runs with its torch
kernel (matmul + topk) and its faiss kernel (`faiss.knn` per block), alternating; the faster one is
the default in `gtr_eval/retrieval/search.py`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import last_json, run_child, write_record

NAME = "search"
SHARD = 2048


def write_corpus(folder: Path, n: int, dim: int) -> list[Path]:
    from gtr_eval.retrieval.cache import encode_sharded

    def encode(texts: list[str]) -> np.ndarray:  # "texts" are row numbers: deterministic vectors
        rng = np.random.default_rng(int(texts[0]))
        return rng.standard_normal((len(texts), dim), dtype=np.float32)

    emb = encode_sharded(
        texts=lambda idx: [str(i) for i in idx],
        order=np.arange(n),
        encode=encode,
        key={"benchmark": "search", "n": n, "dim": dim},
        cache_dir=None,
        folder=folder,
        shard_size=SHARD,
        progress=False,
    )
    return emb.shard_paths


def _chunks(folder: Path):
    paths = sorted(folder.glob("shard-*.npy"))
    for i, p in enumerate(paths):
        yield i * SHARD, np.load(p, mmap_mode="r", allow_pickle=False)


def child(side: str, folder: str, queries: str, k: int) -> None:
    import faiss

    from gtr_eval.retrieval.search import exact_search

    q = np.load(queries, allow_pickle=False)
    t0 = time.perf_counter()
    if side == "ours":
        scores, idx = exact_search(q, _chunks(Path(folder)), k, score="dot")
    else:
        x = np.concatenate([c for _, c in _chunks(Path(folder))])
        index = faiss.IndexFlatIP(x.shape[1])
        index.add(x)
        scores, idx = index.search(q, k)
    dt = time.perf_counter() - t0
    np.save(Path(folder).parent / f"top-{side}.npy", idx[:, :10], allow_pickle=False)
    print(json.dumps({"search_s": dt, "k": int(idx.shape[1])}))


def kernels(folder: Path, rows: int, n_q: int, k: int, rounds: int) -> dict:
    from gtr_eval.retrieval.search import exact_search

    q = np.random.default_rng(1).standard_normal((n_q, 384), dtype=np.float32)

    def sliced():
        for start, c in _chunks(folder):
            if start >= rows:
                return
            yield start, c[: rows - start]

    times: dict[str, list[float]] = {"torch": [], "faiss": []}
    results = {}
    for r in range(rounds):
        for kern in ("torch", "faiss") if r % 2 == 0 else ("faiss", "torch"):
            t0 = time.perf_counter()
            results[kern] = exact_search(q, sliced(), k, kernel=kern)
            times[kern].append(time.perf_counter() - t0)
    same = float((results["torch"][1] == results["faiss"][1]).mean())
    med = {kern: statistics.median(v) for kern, v in times.items()}
    return {"rows": rows, "queries": n_q, "top_k": k, "rounds": rounds, "median_s": med, "all_s": times,
            "same_indices": same, "faster": min(med, key=med.get)}  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="20,000 x 384, 200 queries, top-100")
    ap.add_argument("--docs", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=10_000)
    ap.add_argument("--top-k", type=int, default=1000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--no-peer", action="store_true", help="skip the FAISS IndexFlatIP side")
    args = ap.parse_args(argv)
    n, n_q, k = (20_000, 200, 100) if args.quick else (args.docs, args.queries, args.top_k)
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        folder = Path(tmp) / "shards"
        t0 = time.perf_counter()
        write_corpus(folder, n, args.dim)
        write_s = time.perf_counter() - t0
        qpath = Path(tmp) / "queries.npy"
        np.save(qpath, np.random.default_rng(7).standard_normal((n_q, args.dim), dtype=np.float32))
        matrix_mib = n * args.dim * 4 / 2**20
        sides = {}
        for side in ("ours",) + (() if args.no_peer else ("faiss-flat",)):
            out = run_child([sys.executable, __file__, "--child", side, str(folder), str(qpath), str(k)])
            sides[side] = {
                "wall_s": out["wall_s"],
                "peak_rss_mib": out["peak_rss_mib"],
                **last_json(out["stdout"]),
            }
            s = sides[side]
            print(
                f"{side}: search {s['search_s']:.1f} s (process {s['wall_s']:.1f} s), peak RSS {s['peak_rss_mib']:.0f} MiB"
            )
        limit = 1.5 * matrix_mib + 1024
        rec = {
            "what": f"exact top-{k}: {n:,} x {args.dim} float32 cache shards (memory-mapped), {n_q:,} queries",
            "docs": n,
            "dim": args.dim,
            "queries": n_q,
            "top_k": k,
            "matrix_mib": matrix_mib,
            "write_shards_s": write_s,
            "sides": sides,
            "rss_limit_mib": limit,
            "rss_ok": sides["ours"]["peak_rss_mib"] < limit,
        }
        if "faiss-flat" in sides:
            a, b = np.load(Path(tmp) / "top-ours.npy"), np.load(Path(tmp) / "top-faiss-flat.npy")
            rec["same_top10_indices"] = float((a == b).mean())
            rec["ratio_time"] = sides["ours"]["search_s"] / sides["faiss-flat"]["search_s"]
            rec["ratio_rss"] = sides["ours"]["peak_rss_mib"] / sides["faiss-flat"]["peak_rss_mib"]
            print(f"ours/faiss: time {rec['ratio_time']:.3f}, peak RSS {rec['ratio_rss']:.3f}; same top-10 "
                  f"{100 * rec['same_top10_indices']:.2f}%")  # fmt: skip
        print(f"peak RSS {sides['ours']['peak_rss_mib']:.0f} MiB vs limit {limit:.0f} MiB: "
              f"{'OK' if rec['rss_ok'] else 'OVER'}")  # fmt: skip
        rows, kq, kk = (min(n, 20_000), 200, 100) if args.quick else (min(n, 200_000), 2_000, 1000)
        rec["kernels"] = kernels(folder, rows, kq, kk, rounds=2)
        kr = rec["kernels"]
        print(f"kernels on {rows:,} rows x {kq:,} queries, top-{kk}: torch {kr['median_s']['torch']:.2f} s, "
              f"faiss {kr['median_s']['faiss']:.2f} s -> {kr['faster']}")  # fmt: skip
    write_record(NAME, rec, args.quick)
    return rec


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        main()
