"""(1b) What the harness adds to encoding: `DenseRetriever.index` vs bare `SentenceTransformer.encode`.

The same documents (a seeded sample of SciFact), the same model settings, backend (torch) and batch
size (the one our encoder runs: at most 16 on a CPU), in one process.  Ours includes everything `run` does around the model: the longest-first order, cache-shard
files (written, hashed, checked), the key, progress accounting; each of our rounds uses a fresh,
empty temporary cache.  The sample is split into groups and the two sides alternate within each
group, so load drift on the shared machine hits both alike.  Target: overhead <= 5%.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from _common import BEIR, minilm_path, write_record

NAME = "encode_overhead"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="48 documents")
    ap.add_argument("--docs", type=int, default=1000)
    ap.add_argument("--groups", type=int, default=4)
    ap.add_argument("--model", default=None)
    ap.add_argument("--dataset", default=str(BEIR / "scifact"))
    ap.add_argument("--batch-size", type=int, default=128)
    args = ap.parse_args(argv)
    n_docs, groups = (48, 2) if args.quick else (args.docs, args.groups)

    from gtr_eval.data.loader import load_beir_folder
    from gtr_eval.retrieval.dense import DenseConfig, DenseRetriever
    from gtr_eval.retrieval.loaders import load_sentence_transformer

    model_path = args.model or str(minilm_path())
    corpus = load_beir_folder(Path(args.dataset)).corpus
    sample = sorted(random.Random(0).sample(range(len(corpus)), min(n_docs, len(corpus))))
    bare = load_sentence_transformer(Path(model_path), device="cpu")
    cfg = DenseConfig(
        model=model_path, batch_size=args.batch_size, device="cpu", max_length=bare.max_seq_length,
        backend="torch",
    )  # fmt: skip
    ours_r = DenseRetriever(cfg, progress=False)
    encoder = ours_r.encoder("document")  # loaded outside the timing, as the bare side's model is
    args.batch_size = encoder.batch_size  # the bare side runs the batches ours runs (16 on a CPU)
    bare.encode(corpus.texts(sample[:4]), batch_size=args.batch_size)  # warm-up both
    encoder.encode(corpus.texts(sample[:4]))
    t_ours = t_bare = 0.0
    per_group = []
    for g in range(groups):
        part = sample[g::groups]
        sub = corpus.subset(part)
        for side in ("ours", "bare") if g % 2 == 0 else ("bare", "ours"):
            t0 = time.perf_counter()
            if side == "ours":
                with tempfile.TemporaryDirectory() as tmp:
                    r = DenseRetriever(cfg, cache_dir=Path(tmp), progress=False)
                    r._encoders["document"] = encoder  # same loaded model; index() does the rest
                    r.index(sub)
                    r.close()
                dt = time.perf_counter() - t0
                t_ours += dt
            else:
                bare.encode(
                    sub.texts(), batch_size=args.batch_size, convert_to_numpy=True, show_progress_bar=False
                )
                dt = time.perf_counter() - t0
                t_bare += dt
            per_group.append({"group": g, "side": side, "docs": len(part), "s": dt})
    overhead = t_ours / t_bare - 1
    ratios = [
        next(x["s"] for x in per_group if x["group"] == g and x["side"] == "ours")
        / next(x["s"] for x in per_group if x["group"] == g and x["side"] == "bare")
        for g in range(groups)
    ]
    print(f"ours {t_ours:.1f} s, bare SentenceTransformer.encode {t_bare:.1f} s: ratio {t_ours / t_bare:.3f} "
          f"(overhead {100 * overhead:+.1f}%) on {len(sample)} docs")  # fmt: skip
    record = {
        "what": "DenseRetriever.index (fresh cache) vs bare SentenceTransformer.encode, same texts",
        "dataset": Path(args.dataset).name,
        "model": Path(model_path).name if args.model else "all-MiniLM-L6-v2",
        "docs": len(sample),
        "batch_size": args.batch_size,
        "ours_s": t_ours,
        "peer_s": t_bare,
        "ratio": t_ours / t_bare,
        "overhead_pct": 100 * overhead,
        "groups": per_group,
        "median_group_ratio": statistics.median(ratios),  # robust to a load spike in one group
        "target": "overhead <= 5%",
    }
    write_record(NAME, record, args.quick)
    return record


if __name__ == "__main__":
    main()
