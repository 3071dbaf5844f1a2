"""(1g) Exact late-interaction search: synthetic ColBERT-like token vectors (128 dimensions, unit
length, 60-180 per document, float16 on disk), 32-vector queries, top-100.

Ours, in a child process: `maxsim_full` reading our token cache shards (2048 documents each) one at
a time.  The peer, in its own process: sentence-transformers' `util.maxsim` (what
`MultiVectorEncoder.similarity` runs) over all document matrices held in memory as float32
tensors, then `torch.topk`.  Same top-10 checked; time and peak RSS (wait4) side by side.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import last_json, run_child, write_record

NAME = "maxsim"
SHARD = 2048
DIM = 128


def synthetic_docs(first: int, n: int, seed: int = 1) -> list[np.ndarray]:
    """`n` documents' token vectors, deterministic in `first`: unit vectors around a few topics, so
    that documents differ and MaxSim has something to find."""
    rng = np.random.default_rng([seed, first])
    topics = np.random.default_rng(seed).standard_normal((64, DIM)).astype(np.float32)
    out = []
    for length in rng.integers(60, 181, size=n):
        m = topics[rng.integers(0, 64, size=length)] + rng.standard_normal((length, DIM)).astype(np.float32)
        out.append(m / np.linalg.norm(m, axis=1, keepdims=True))
    return out


def write_corpus(folder: Path, n: int) -> None:
    from gtr_eval.retrieval.cache import RaggedTokens, TokensFormat, encode_sharded

    encode_sharded(
        texts=lambda idx: [str(i) for i in idx],
        order=np.arange(n),
        encode=lambda texts: RaggedTokens.from_list(synthetic_docs(int(texts[0]), len(texts))),
        key={"benchmark": NAME, "n": n},
        cache_dir=None,
        folder=folder,
        shard_size=SHARD,
        progress=False,
        fmt=TokensFormat("float16"),
    )


def _chunks(folder: Path):
    from gtr_eval.retrieval.cache import TokensFormat

    fmt = TokensFormat("float16")
    for i, path in enumerate(sorted(folder.glob("shard-*.json"))):
        yield i * SHARD, fmt.load(path)


def child(side: str, folder: str, k: int) -> None:
    import torch

    from gtr_eval.retrieval.cache import RaggedTokens
    from gtr_eval.retrieval.maxsim import maxsim_full

    folder = Path(folder)
    queries = [m[:32] for m in synthetic_docs(10**9, int((folder / "n_queries").read_text()), seed=2)]
    t0 = time.perf_counter()
    if side == "ours":
        scores, idx = maxsim_full(RaggedTokens.from_list(queries), _chunks(folder / "shards"), k)
    else:
        from sentence_transformers import util

        docs = [torch.from_numpy(s.item(j)) for _, s in _chunks(folder / "shards") for j in range(len(s))]
        sims = util.maxsim([torch.from_numpy(q) for q in queries], docs)
        top = torch.topk(sims, k, dim=1)
        scores, idx = top.values.numpy(), top.indices.numpy()
    dt = time.perf_counter() - t0
    np.save(folder / f"top-{side}.npy", idx[:, :10], allow_pickle=False)
    np.save(folder / f"score-{side}.npy", np.asarray(scores[:, :10], np.float32), allow_pickle=False)
    print(json.dumps({"search_s": dt, "k": int(idx.shape[1])}))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="500 documents, 5 queries")
    ap.add_argument("--docs", type=int, default=20_000)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--top-k", type=int, default=100)
    args = ap.parse_args(argv)
    n, n_q = (500, 5) if args.quick else (args.docs, args.queries)
    with tempfile.TemporaryDirectory(prefix="bench-maxsim-") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        write_corpus(folder / "shards", n)
        write_s = time.perf_counter() - t0
        (folder / "n_queries").write_text(str(n_q))
        metas = [json.loads(p.read_text()) for p in (folder / "shards").glob("shard-*.json")]
        tokens = sum(m["parts"]["tokens"]["shape"][0] for m in metas)
        index_bytes = sum(sum(p["bytes"] for p in m["parts"].values()) for m in metas)
        sides = {}
        for side in ("ours", "st-util-maxsim"):
            out = run_child([sys.executable, __file__, "--child", side, str(folder), str(args.top_k)])
            sides[side] = {
                "wall_s": out["wall_s"],
                "peak_rss_mib": out["peak_rss_mib"],
                **last_json(out["stdout"]),
            }
            s = sides[side]
            print(
                f"{side}: search {s['search_s']:.1f} s (process {s['wall_s']:.1f} s), peak RSS {s['peak_rss_mib']:.0f} MiB"
            )
        a, b = np.load(folder / "top-ours.npy"), np.load(folder / "top-st-util-maxsim.npy")
        sa, sb = np.load(folder / "score-ours.npy"), np.load(folder / "score-st-util-maxsim.npy")
        rec = {
            "what": f"exact MaxSim top-{args.top_k}: {n:,} documents ({tokens:,} token vectors x {DIM}, float16 "
            f"shards), {n_q} queries x 32 vectors",
            "docs": n, "queries": n_q, "top_k": args.top_k, "token_vectors": tokens, "index_bytes": index_bytes,
            "fp32_matrix_mib": tokens * DIM * 4 / 2**20, "write_shards_s": write_s, "sides": sides,
            "same_top10_sets": float(np.mean([set(x) == set(y) for x, y in zip(a, b, strict=True)])),
            "max_abs_score_diff_top10": float(np.abs(sa - sb).max()),
            "ratio_time": sides["ours"]["search_s"] / sides["st-util-maxsim"]["search_s"],
            "ratio_rss": sides["ours"]["peak_rss_mib"] / sides["st-util-maxsim"]["peak_rss_mib"],
        }  # fmt: skip
        print(f"ours/peer: time {rec['ratio_time']:.2f}, peak RSS {rec['ratio_rss']:.2f}; same top-10 "
              f"{100 * rec['same_top10_sets']:.1f}%, max |score diff| {rec['max_abs_score_diff_top10']:.1e}")  # fmt: skip
    write_record(NAME, rec, args.quick)
    return rec


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main()
