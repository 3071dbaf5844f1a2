"""(1f) Learned sparse search at scale: 1,000,000 synthetic SPLADE-like documents over a 30,522-term
vocabulary (about 150 non-zeros each), 1,000 queries (20-40 non-zeros), top-1000.

The corpus is written as our CSR cache shards (2048 documents each, data / indices / indptr `.npy`
parts + sidecar) and searched by `sparse_search` in a child process (time, peak RSS via wait4).  The
peer, in its own process, is what one would write with scipy alone: load the whole matrix D, compute
Q @ D.T in one product, then take each row's top-k from the result.  Both must give the same top-10.

Terms are drawn from a power law, p(rank r) ∝ r^-a, as real vocabularies are skewed: `a` = 0.5 by
default, where a query shares a term with about a third of the corpus.  `--skew 0.8` makes the
common terms hit almost every document (closer to SPLADE's expansion terms); the whole-matrix
product then holds about a billion pairs, and the peer is skipped when its estimated memory exceeds
`--peer-budget-gib` (the record says so), since the machine is shared.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import last_json, run_child, write_record

NAME = "sparse"
SHARD = 2048
VOCAB = 30_522


@functools.lru_cache(maxsize=4)
def _term_sampler(skew: float):
    """Cumulative term probabilities by frequency rank, and the term id of each rank (one shared
    vocabulary for documents and queries; frequent terms spread over the id range)."""
    cdf = np.cumsum(1.0 / np.arange(1, VOCAB + 1) ** skew)
    cdf /= cdf[-1]
    return cdf, np.random.default_rng(0).permutation(VOCAB)


@functools.lru_cache(maxsize=16)
def _draws_for(distinct: float, skew: float) -> float:
    """How many draws with replacement give `distinct` different terms on average."""
    p = 1.0 / np.arange(1, VOCAB + 1) ** skew
    p /= p.sum()
    lo, hi = distinct, 50 * distinct
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if (1 - (1 - p) ** mid).sum() < distinct else (lo, mid)
    return lo


def synthetic_rows(first: int, n: int, nnz: tuple[int, int], skew: float, seed: int):
    """`n` CSR rows, deterministic in (`first`, `seed`): about U(nnz) distinct power-law terms per
    row, SPLADE-like positive weights."""
    import scipy.sparse as sp

    cdf, perm = _term_sampler(skew)
    rng = np.random.default_rng([seed, first])
    scale = _draws_for(sum(nnz) / 2, skew) / (sum(nnz) / 2)
    draws = np.round(rng.integers(nnz[0], nnz[1] + 1, size=n) * scale).astype(np.int64)
    rows = np.repeat(np.arange(n), draws)
    terms = perm[np.searchsorted(cdf, rng.random(len(rows)), side="right").clip(0, VOCAB - 1)]
    key = np.sort(rows.astype(np.int64) * VOCAB + terms)
    key = key[np.r_[True, key[1:] != key[:-1]]]  # one entry per (row, term); np.unique hashes slowly here
    r, t = key // VOCAB, key % VOCAB
    weights = rng.gamma(2.0, 0.4, size=len(key)).astype(np.float32)
    return sp.csr_matrix((weights, (r, t)), shape=(n, VOCAB), dtype=np.float32)


def write_corpus(folder: Path, n: int, skew: float) -> None:
    from gtr_eval.retrieval.cache import CSRFormat, encode_sharded

    encode_sharded(
        texts=lambda idx: [str(i) for i in idx],
        order=np.arange(n),
        encode=lambda texts: synthetic_rows(int(texts[0]), len(texts), (150, 160), skew, seed=1),
        key={"benchmark": NAME, "n": n, "skew": skew},
        cache_dir=None,
        folder=folder,
        shard_size=SHARD,
        progress=False,
        fmt=CSRFormat(),
    )


def _chunks(folder: Path):
    from gtr_eval.retrieval.cache import CSRFormat

    fmt = CSRFormat()
    for i, path in enumerate(sorted(folder.glob("shard-*.json"))):
        yield i * SHARD, fmt.load(path)


def _load_queries(path: Path):
    import scipy.sparse as sp

    parts = {p: np.load(path / f"q.{p}.npy", allow_pickle=False) for p in ("data", "indices", "indptr")}
    return sp.csr_matrix(
        (parts["data"], parts["indices"], parts["indptr"]), shape=(len(parts["indptr"]) - 1, VOCAB)
    )


def child(side: str, folder: str, k: int) -> None:
    import scipy.sparse as sp

    from gtr_eval.retrieval.sparse_search import sparse_search
    from gtr_eval.retrieval.topk import csr_row_top_k

    folder = Path(folder)
    q = _load_queries(folder)
    stats: dict = {}
    t0 = time.perf_counter()
    if side == "ours":
        scores, idx = sparse_search(q, _chunks(folder / "shards"), k, stats=stats)
    else:  # the whole matrix, one product, then each row's top-k
        d = sp.vstack([c for _, c in _chunks(folder / "shards")], format="csr")
        product = q @ d.T
        stats["pairs"] = int(product.nnz)
        scores, idx = csr_row_top_k(product.tocsr(), k)
        order = np.argsort(-scores, axis=1, kind="stable")
        scores, idx = np.take_along_axis(scores, order, 1), np.take_along_axis(idx, order, 1)
    dt = time.perf_counter() - t0
    np.save(folder / f"top-{side}.npy", idx[:, :10], allow_pickle=False)
    np.save(folder / f"score-{side}.npy", scores[:, :10], allow_pickle=False)
    print(json.dumps({"search_s": dt, "k": int(idx.shape[1]), **stats}))


def _same_top10(folder: Path) -> float:
    """Share of queries whose top-10 documents agree (as sets, since near-ties may swap places)."""
    a, b = np.load(folder / "top-ours.npy"), np.load(folder / "top-scipy.npy")
    sa, sb = np.load(folder / "score-ours.npy"), np.load(folder / "score-scipy.npy")
    same = [set(x) == set(y) or np.allclose(s, t, rtol=1e-6) for x, y, s, t in zip(a, b, sa, sb, strict=True)]
    return float(np.mean(same))


def _side(out: dict) -> dict:
    """A child's wall time, peak RSS, what it printed, and the machine's load when it ended (shared)."""
    return {"wall_s": out["wall_s"], "peak_rss_mib": out["peak_rss_mib"], "loadavg_1m": os.getloadavg()[0],
            **last_json(out["stdout"])}  # fmt: skip


def measure(n: int, n_q: int, k: int, skew: float, budget_gib: float, tmp: Path) -> dict:
    folder = tmp / f"skew-{skew}"
    t0 = time.perf_counter()
    write_corpus(folder / "shards", n, skew)
    write_s = time.perf_counter() - t0
    q = synthetic_rows(0, n_q, (20, 40), skew, seed=2)
    for part in ("data", "indices", "indptr"):
        np.save(folder / f"q.{part}.npy", getattr(q, part), allow_pickle=False)
    parts = sorted((folder / "shards").glob("shard-*.npy"))
    index_bytes = sum(p.stat().st_size for p in parts)
    nnz = sum(json.loads(p.read_text())["nnz"] for p in (folder / "shards").glob("shard-*.json"))
    rec = {"docs": n, "queries": n_q, "top_k": k, "skew": skew, "vocab": VOCAB, "write_shards_s": write_s,
           "index_bytes": index_bytes, "avg_nnz_per_doc": nnz / n, "avg_nnz_per_query": q.nnz / n_q, "sides": {}}  # fmt: skip
    cmd = [sys.executable, __file__, "--child"]
    out = run_child([*cmd, "ours", str(folder), str(k)])
    rec["sides"]["ours"] = _side(out)
    pairs = rec["sides"]["ours"]["pairs"]
    # scipy: the loaded matrix, its transpose made CSR for the product, and the product itself
    # (float32 data + int32 or int64 column indices per pair)
    estimate = 2 * index_bytes + pairs * (4 + (8 if pairs >= 2**31 else 4)) + 8 * n_q
    rec["scipy_estimated_gib"] = estimate / 2**30
    if estimate / 2**30 > budget_gib:
        rec["sides"]["scipy"] = {"skipped": f"estimated {estimate / 2**30:.1f} GiB > budget {budget_gib} GiB"}
    else:
        out = run_child([*cmd, "scipy", str(folder), str(k)])
        rec["sides"]["scipy"] = _side(out)
        o, p = rec["sides"]["ours"], rec["sides"]["scipy"]
        rec["same_top10"] = _same_top10(folder)
        rec["ratio_time"] = o["search_s"] / p["search_s"]
        rec["ratio_rss"] = o["peak_rss_mib"] / p["peak_rss_mib"]
    return rec


def _print(rec: dict) -> None:
    o, p = rec["sides"]["ours"], rec["sides"]["scipy"]
    print(f"skew {rec['skew']}: {rec['docs']:,} docs, avg nnz/doc {rec['avg_nnz_per_doc']:.1f}, /query "
          f"{rec['avg_nnz_per_query']:.1f}; index {rec['index_bytes'] / 2**20:.0f} MiB; pairs sharing a term "
          f"{o['pairs']:,}")  # fmt: skip
    print(f"  ours:  search {o['search_s']:.1f} s, peak RSS {o['peak_rss_mib']:.0f} MiB")
    if "skipped" in p:
        print(f"  scipy: skipped ({p['skipped']})")
    else:
        print(f"  scipy: search {p['search_s']:.1f} s, peak RSS {p['peak_rss_mib']:.0f} MiB; ours/scipy time "
              f"{rec['ratio_time']:.2f}, RSS {rec['ratio_rss']:.2f}; same top-10 {100 * rec['same_top10']:.1f}%")  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="20,000 documents, 100 queries")
    ap.add_argument("--docs", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--top-k", type=int, default=1000)
    ap.add_argument("--skews", default="0.5,0.8", help="comma list of power-law exponents")
    ap.add_argument("--peer-budget-gib", type=float, default=9.0)
    args = ap.parse_args(argv)
    n, n_q = (20_000, 100) if args.quick else (args.docs, args.queries)
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-sparse-") as tmp:
        for skew in (float(s) for s in args.skews.split(",")):
            runs.append(measure(n, n_q, args.top_k, skew, args.peer_budget_gib, Path(tmp)))
            _print(runs[-1])
    rec = {"what": f"exact top-{args.top_k}, {n:,} synthetic sparse documents x {VOCAB:,} terms, {n_q:,} queries",
           "runs": runs, "peer_budget_gib": args.peer_budget_gib}  # fmt: skip
    write_record(NAME, rec, args.quick)
    return rec


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main()
