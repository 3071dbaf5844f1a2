"""(1c) BM25: `BM25Retriever` (index + search top-1000) vs bm25s called directly with the same
settings (Lucene BM25 k1=1.5 b=0.75, English stopwords, PyStemmer English).

Same process; the sides alternate over several rounds and the median of each is compared.  The
peer's run is checked to be the same ranking (NDCG@10 of both).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from _common import BEIR, write_record

NAME = "bm25"


def peer(texts: list[str], queries: list[str], k: int):
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    model = bm25s.BM25(k1=1.5, b=0.75, method="lucene")
    model.index(
        bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False), show_progress=False
    )
    q_tokens = bm25s.tokenize(queries, stopwords="en", stemmer=stemmer, show_progress=False)
    return model.retrieve(q_tokens, k=k, show_progress=False)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="one round")
    ap.add_argument("--dataset", default=str(BEIR / "scifact"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--top-k", type=int, default=1000)
    args = ap.parse_args(argv)
    rounds = 1 if args.quick else args.rounds

    from gtr_eval.data.loader import load_beir_folder
    from gtr_eval.evaluation import evaluate
    from gtr_eval.retrieval.bm25 import BM25Retriever

    data = load_beir_folder(Path(args.dataset))
    qids = list(data.queries)
    k = min(args.top_k, len(data.corpus))
    t_ours, t_peer = [], []
    for r in range(rounds):
        for side in ("ours", "peer") if r % 2 == 0 else ("peer", "ours"):
            t0 = time.perf_counter()
            if side == "ours":
                bm25 = BM25Retriever(progress=False)
                bm25.index(data.corpus)
                run = bm25.search(data.queries, k).run
                t_ours.append(time.perf_counter() - t0)
            else:
                idx, scores = peer(data.corpus.texts(), [data.queries[q] for q in qids], k)
                ids = data.corpus.ids  # the same output as ours: a run dict, padding hits dropped
                peer_run = {
                    q: {ids[j]: float(s) for j, s in zip(idx[i], scores[i], strict=True) if s > 0}
                    for i, q in enumerate(qids)
                }
                t_peer.append(time.perf_counter() - t0)
    ours_ndcg = evaluate(data.qrels, run).metrics["ndcg@10"]
    peer_ndcg = evaluate(data.qrels, peer_run).metrics["ndcg@10"]
    mo, mp = statistics.median(t_ours), statistics.median(t_peer)
    print(f"ours {mo:.2f} s, bm25s direct {mp:.2f} s (medians of {rounds}): ratio {mo / mp:.3f}; "
          f"NDCG@10 {ours_ndcg:.5f} vs {peer_ndcg:.5f}")  # fmt: skip
    record = {
        "what": "BM25Retriever index+search vs bm25s direct (tokenize+index+retrieve+run dict), same settings",
        "dataset": Path(args.dataset).name,
        "docs": len(data.corpus),
        "queries": len(qids),
        "top_k": k,
        "rounds": rounds,
        "ours_s": mo,
        "peer_s": mp,
        "ours_all_s": t_ours,
        "peer_all_s": t_peer,
        "ratio": mo / mp,
        "ndcg@10": {"ours": ours_ndcg, "peer": peer_ndcg},
    }
    write_record(NAME, record, args.quick)
    return record


if __name__ == "__main__":
    main()
