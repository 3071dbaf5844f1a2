"""(3) ONNX Runtime backends vs fp32 torch: throughput and NDCG@10 (all-MiniLM-L6-v2).

Throughput: a seeded sample of SciFact documents, encoded by the torch, onnx (fp32) and onnx-int8
encoders of the harness, in one process with the same intra-op threads; the sample is split into
groups and the three sides rotate within each group (the machine is shared).  The one-time ONNX
export / optimization / quantization is done before timing (it is cached per weights).

Quality: SciFact and NFCorpus end to end (`DenseRetriever`, top-1000, our evaluation) with each
backend; vectors are cached in benchmarks/.cache, one cache folder per backend (the harness itself
shares fp32 vectors across backends, as they are the same), so a rerun reuses them.
Targets: onnx-int8 >= 1.8x torch fp32 throughput, |NDCG@10 - torch's| <= 0.005 on both sets.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

from _common import BEIR, BENCH_CACHE, subset_folder, write_record

NAME = "onnx"
BACKENDS = ("torch", "onnx", "onnx-int8")


def throughput(model: str, dataset: Path, n_docs: int, groups: int, threads: int) -> dict:
    from gtr_eval.data.loader import load_beir_folder
    from gtr_eval.retrieval.dense import DenseConfig, DenseRetriever

    corpus = load_beir_folder(dataset).corpus
    sample = sorted(random.Random(0).sample(range(len(corpus)), min(n_docs, len(corpus))))
    enc = {}
    for b in BACKENDS:
        r = DenseRetriever(DenseConfig(model=model, backend=b, device="cpu", threads=threads), progress=False)
        enc[b] = r.encoder("document")
        enc[b].encode(corpus.texts(sample[:4]))  # warm-up (and the one-time export)
    secs = dict.fromkeys(BACKENDS, 0.0)
    for g in range(groups):
        texts = corpus.texts(sample[g::groups])
        for b in BACKENDS[g % 3 :] + BACKENDS[: g % 3]:
            t0 = time.perf_counter()
            enc[b].encode(texts)
            secs[b] += time.perf_counter() - t0
    dps = {b: len(sample) / secs[b] for b in BACKENDS}
    return {"docs": len(sample), "groups": groups, "threads": threads, "seconds": secs, "docs_per_s": dps,
            "speedup_vs_torch": {b: dps[b] / dps["torch"] for b in BACKENDS}}  # fmt: skip


def quality(model: str, dataset: Path, cache: Path) -> dict:
    from gtr_eval.data.loader import load_beir_folder
    from gtr_eval.evaluation import evaluate
    from gtr_eval.retrieval.dense import DenseConfig, DenseRetriever

    data = load_beir_folder(dataset)
    out = {}
    for b in BACKENDS:
        # Each backend its own cache folder: one shared folder would serve torch's vectors to onnx.
        r = DenseRetriever(
            DenseConfig(model=model, backend=b, device="cpu"), cache_dir=cache / b, progress=False
        )
        t0 = time.perf_counter()
        indexed = r.index(data.corpus)
        run = r.search(data.queries, 1000).run
        out[b] = {
            "ndcg@10": evaluate(data.qrels, run).metrics["ndcg@10"],
            "encode_corpus_s": indexed.timings.get("encode_corpus_s"),
            "cached": indexed.stats.get("corpus_shards_reused", 0) == indexed.stats.get("corpus_shards"),
            "seconds": time.perf_counter() - t0,
        }
        r.close()
        print(
            f"  {dataset.name} {b}: NDCG@10 {out[b]['ndcg@10']:.5f}"
            + (" (cached vectors)" if out[b]["cached"] else "")
        )
    for b in BACKENDS:
        out[b]["ndcg@10_diff_vs_torch"] = out[b]["ndcg@10"] - out["torch"]["ndcg@10"]
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="48-document throughput, 150-document subsets")
    ap.add_argument("--model", default="all-MiniLM-L6-v2")
    ap.add_argument("--docs", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--datasets", default="scifact,nfcorpus")
    args = ap.parse_args(argv)
    os.environ.setdefault("GTR_EVAL_CACHE_DIR", str(BENCH_CACHE))  # ONNX exports, fingerprints
    names = args.datasets.split(",")
    with tempfile.TemporaryDirectory(prefix="bench-onnx-") as tmp:
        if args.quick:
            folders = {n: subset_folder(BEIR / n, Path(tmp) / n, 150, 15) for n in names}
            cache = Path(tmp) / "cache"
        else:
            folders = {n: BEIR / n for n in names}
            cache = BENCH_CACHE
        tp = throughput(args.model, folders[names[0]], 48 if args.quick else args.docs, 3 if args.quick else 6,
                        args.threads)  # fmt: skip
        print(
            "throughput (docs/s): "
            + ", ".join(f"{b} {tp['docs_per_s'][b]:.1f} ({tp['speedup_vs_torch'][b]:.2f}x)" for b in BACKENDS)
        )
        q = {n: quality(args.model, f, cache) for n, f in folders.items()}
    rec = {
        "what": "ONNX Runtime fp32 / dynamic int8 (per-channel, fused graph) vs torch fp32",
        "model": args.model,
        "throughput": tp,
        "quality": q,
        "targets": {"int8_speedup": ">= 1.8", "ndcg@10_diff": "<= 0.005"},
        "targets_met": {
            "int8_speedup": tp["speedup_vs_torch"]["onnx-int8"] >= 1.8,
            "ndcg": all(abs(q[n]["onnx-int8"]["ndcg@10_diff_vs_torch"]) <= 0.005 for n in q),
        },
    }
    write_record(NAME, rec, args.quick)
    return rec


if __name__ == "__main__":
    main()
