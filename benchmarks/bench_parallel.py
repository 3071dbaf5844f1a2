"""(4) Corpus encoding in 2 worker processes x 1 thread vs 1 process x 2 threads (all-MiniLM-L6-v2).

Both sides are `DenseRetriever.index` on the same seeded SciFact sample with a fresh temporary cache;
the pool side (`devices=("cpu", "cpu")`, i.e. `--processes 2`) includes starting its workers
(spawn, import, model load), which a real run pays once per model.  The sides alternate over
groups of the sample.  The vectors of both are compared (max |difference|).
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import BEIR, BENCH_CACHE, write_record

NAME = "parallel"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="32 documents, 1 group")
    ap.add_argument("--docs", type=int, default=1000)
    ap.add_argument("--groups", type=int, default=2)
    ap.add_argument("--model", default="all-MiniLM-L6-v2")
    ap.add_argument("--backend", default="torch")
    ap.add_argument("--dataset", default=str(BEIR / "scifact"))
    args = ap.parse_args(argv)
    n_docs, groups = (32, 1) if args.quick else (args.docs, args.groups)
    os.environ.setdefault("GTR_EVAL_CACHE_DIR", str(BENCH_CACHE))
    cores = os.cpu_count() or 2

    import torch

    from gtr_eval.data.loader import load_beir_folder
    from gtr_eval.retrieval.dense import DenseConfig, DenseRetriever

    torch.set_num_threads(cores)
    corpus = load_beir_folder(Path(args.dataset)).corpus
    sample = sorted(random.Random(0).sample(range(len(corpus)), min(n_docs, len(corpus))))
    one = DenseRetriever(
        DenseConfig(model=args.model, backend=args.backend, device="cpu", threads=cores), progress=False
    )
    encoder = one.encoder("document")  # the in-process model loads once, outside the timing
    encoder.encode(corpus.texts(sample[:4]))
    secs = {f"1x{cores}": 0.0, f"{cores}x1": 0.0}
    diffs = []
    for g in range(groups):
        sub = corpus.subset(sample[g::groups])
        mats = {}
        for side in list(secs) if g % 2 == 0 else list(secs)[::-1]:
            with tempfile.TemporaryDirectory() as tmp:
                if side.startswith("1x"):
                    r = DenseRetriever(one.spec, cache_dir=Path(tmp), progress=False)
                    r._encoders["document"] = encoder
                else:
                    cfg = DenseConfig(model=args.model, backend=args.backend, device="cpu", threads=cores,
                                      devices=("cpu",) * cores)  # fmt: skip
                    r = DenseRetriever(cfg, cache_dir=Path(tmp), progress=False)
                t0 = time.perf_counter()
                r.index(sub)
                secs[side] += time.perf_counter() - t0
                mats[side] = r._corpus().matrix()
                r.close()
        a, b = mats.values()
        diffs.append(float(np.abs(a - b).max()))
    single, multi = secs.values()
    print(f"1 process x {cores} threads {single:.1f} s, {cores} processes x 1 thread {multi:.1f} s: "
          f"ratio {multi / single:.3f}; max |diff| of vectors {max(diffs):.2g}")  # fmt: skip
    rec = {
        "what": f"DenseRetriever.index: {cores} worker processes x 1 thread vs 1 process x {cores} threads",
        "model": args.model,
        "backend": args.backend,
        "docs": len(sample),
        "seconds": secs,
        "docs_per_s": {k: len(sample) / v for k, v in secs.items()},
        "ratio_multi_over_single": multi / single,
        "max_abs_diff": max(diffs),
    }
    write_record(NAME, rec, args.quick)
    return rec


if __name__ == "__main__":
    main()
