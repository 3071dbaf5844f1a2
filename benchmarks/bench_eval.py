"""(1d) Evaluation: `gtr_eval.evaluation.evaluate` vs pytrec_eval called directly.

The run is BM25's top-1000 on SciFact.  The peer computes the same measure families (nDCG, recall,
MAP, P at 1/3/5/10/100/1000, reciprocal rank) in one `RelevanceEvaluator` pass; ours adds what
BEIR does around it (judged queries only, identical-id removal, MRR@10, zero for missing queries,
means).  Same process, alternating rounds, medians compared.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from _common import BEIR, write_record

NAME = "evaluation"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="one round")
    ap.add_argument("--dataset", default=str(BEIR / "scifact"))
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args(argv)
    rounds = 1 if args.quick else args.rounds

    import pytrec_eval

    from gtr_eval.data.loader import load_beir_folder
    from gtr_eval.evaluation import DEFAULT_K_VALUES, evaluate
    from gtr_eval.retrieval.bm25 import BM25Retriever

    data = load_beir_folder(Path(args.dataset))
    bm25 = BM25Retriever(progress=False)
    bm25.index(data.corpus)
    run = bm25.search(data.queries, 1000).run
    cut = ",".join(str(k) for k in DEFAULT_K_VALUES)
    measures = {f"ndcg_cut.{cut}", f"recall.{cut}", f"map_cut.{cut}", f"P.{cut}", "recip_rank"}
    t_ours, t_peer = [], []
    for r in range(rounds):
        for side in ("ours", "peer") if r % 2 == 0 else ("peer", "ours"):
            t0 = time.perf_counter()
            if side == "ours":
                ev = evaluate(data.qrels, run)
                t_ours.append(time.perf_counter() - t0)
            else:
                scores = pytrec_eval.RelevanceEvaluator(data.qrels, measures, relevance_level=1).evaluate(run)
                peer_ndcg = sum(s["ndcg_cut_10"] for s in scores.values()) / len(data.qrels)
                t_peer.append(time.perf_counter() - t0)
    mo, mp = statistics.median(t_ours), statistics.median(t_peer)
    n_pairs = sum(len(d) for d in run.values())
    print(f"ours {1000 * mo:.0f} ms, pytrec_eval direct {1000 * mp:.0f} ms (medians of {rounds}, {n_pairs:,} "
          f"run entries): ratio {mo / mp:.3f}; NDCG@10 {ev.metrics['ndcg@10']:.5f} vs {peer_ndcg:.5f}")  # fmt: skip
    record = {
        "what": "gtr_eval evaluate() vs one pytrec_eval RelevanceEvaluator pass, same measures",
        "dataset": Path(args.dataset).name,
        "queries": len(run),
        "run_entries": n_pairs,
        "rounds": rounds,
        "ours_s": mo,
        "peer_s": mp,
        "ours_all_s": t_ours,
        "peer_all_s": t_peer,
        "ratio": mo / mp,
        "ndcg@10": {"ours": ev.metrics["ndcg@10"], "peer": peer_ndcg},
    }
    write_record(NAME, record, args.quick)
    return record


if __name__ == "__main__":
    main()
