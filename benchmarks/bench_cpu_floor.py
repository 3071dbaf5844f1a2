"""(1a, the floor) The default CPU encoder against this CPU's arithmetic: how fast could a dense run be at all?

A transformer encoder's time on a CPU is its floating-point work divided by the rate the CPU does it.
This measures both sides in one process, for the default model (all-MiniLM-L6-v2) on SciFact:

* the work: every document and test query tokenised as the model does (truncated to its
  `max_seq_length`), counted exactly: per token, each layer's linear products (2 · (4h² + 2hi)
  FLOP); per text of L tokens, each layer's attention products (4 · L² · h FLOP);
* the CPU's rates: one of the model's own feed-forward products (16 × 256 tokens × h → i) through
  `F.linear` in fp32, bf16 and fp16: whether lower precision would be faster here at all;
* our encoder: the default `DenseRetriever` encoder (what `gtr-eval run` loads) on a seeded sample of
  SciFact documents, and the rate it achieves on their counted work.

From these it projects the encode time of all of SciFact at the achieved rate and at the fp32 product
rate for every FLOP (the floor: attention and LayerNorm as fast as the largest matrix products).  With
beir's time and our time outside encoding from the end-to-end record (`dense_e2e.json`, or
`--beir-seconds` / `--other-seconds`), it prints the rate the 0.75× target needs (`--target`).
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import statistics
import time
from pathlib import Path

from _common import BEIR, RESULTS, minilm_path, write_record

NAME = "cpu_floor"


def work(lengths: list[int], hidden: int, inter: int, layers: int) -> dict:
    """FLOP of encoding texts of these token counts (multiply-add = 2 FLOP)."""
    linear = sum(lengths) * layers * 2 * (4 * hidden * hidden + 2 * hidden * inter)
    attention = sum(n * n for n in lengths) * layers * 4 * hidden
    return {"linear": float(linear), "attention": float(attention), "total": float(linear + attention)}


def rates(hidden: int, inter: int, reps: int) -> dict:
    """GFLOP/s of one (16·256 × h) @ (h × i) product by precision (`F.linear`), medians of `reps`,
    the precisions interleaved."""
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(0)
    fp32 = (
        torch.randn(16 * 256, hidden, generator=g),
        torch.randn(inter, hidden, generator=g),
        torch.randn(inter),
    )
    by_dtype = {"fp32": fp32, "bf16": [t.bfloat16() for t in fp32], "fp16": [t.half() for t in fp32]}
    kernels = {f"{d} F.linear": functools.partial(F.linear, *args) for d, args in by_dtype.items()}
    times: dict[str, list[float]] = {k: [] for k in kernels}
    for fn in kernels.values():
        fn()
    for _ in range(reps):
        for name, fn in kernels.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    flop = 2 * fp32[0].shape[0] * hidden * inter
    return {name: flop / statistics.median(ts) / 1e9 for name, ts in times.items()}


def e2e_record() -> tuple[float | None, float | None, str | None]:
    """beir's time and ours outside encoding, from the end-to-end record when there is one."""
    path = RESULTS / "dense_e2e.json"
    if not path.is_file():
        return None, None, None
    r = json.loads(path.read_text())
    d = r["sides"].get("default", {})
    rounds = d.get("rounds", [d])
    other = [m["wall_s"] - m["encode_corpus_s"] for m in rounds if m.get("encode_corpus_s")]
    return r["sides"]["beir"]["wall_s"], (statistics.median(other) if other else None), r["date"]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="48 documents, 5 repetitions")
    ap.add_argument(
        "--docs", type=int, default=480, help="SciFact documents our encoder encodes (seeded sample)"
    )
    ap.add_argument("--reps", type=int, default=30, help="repetitions of each product")
    ap.add_argument("--dataset", default=str(BEIR / "scifact"))
    ap.add_argument("--target", type=float, default=0.75, help="time ratio ours / beir to test against")
    ap.add_argument("--beir-seconds", type=float, default=None, help="[default: from dense_e2e.json]")
    ap.add_argument("--other-seconds", type=float, default=None,
                    help="our wall time outside encoding the corpus [default: from dense_e2e.json]")  # fmt: skip
    args = ap.parse_args(argv)
    n_docs, reps = (48, 5) if args.quick else (args.docs, args.reps)

    import torch

    from gtr_eval.data.loader import load_beir_folder
    from gtr_eval.retrieval.dense import DenseConfig, DenseRetriever

    data = load_beir_folder(Path(args.dataset))
    retriever = DenseRetriever(DenseConfig(model=str(minilm_path())), progress=False)
    encoder = retriever.encoder("document")
    st = encoder.model
    cfg = st[0].auto_model.config
    shape = (cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers)

    def lengths(texts: list[str]) -> list[int]:
        enc = st.tokenizer(texts, truncation=True, max_length=st.max_seq_length)
        return [len(ids) for ids in enc["input_ids"]]

    corpus_texts = data.corpus.texts()
    corpus_lengths = lengths(corpus_texts)
    full = work(corpus_lengths, *shape)
    sample = sorted(random.Random(0).sample(range(len(corpus_texts)), min(n_docs, len(corpus_texts))))
    texts = [corpus_texts[i] for i in sample]
    sample_work = work([corpus_lengths[i] for i in sample], *shape)
    encoder.encode(texts[:16])  # warm-up
    runs = []
    for _ in range(1 if args.quick else 2):
        t0 = time.perf_counter()
        encoder.encode(texts)
        runs.append(time.perf_counter() - t0)
    encode_s = statistics.median(runs)
    achieved = sample_work["total"] / encode_s / 1e9
    rate = rates(cfg.hidden_size, cfg.intermediate_size, reps)
    fp32_peak = max(v for k, v in rate.items() if k.startswith("fp32"))
    low_best = max(v for k, v in rate.items() if not k.startswith("fp32"))

    beir_s, other_s, e2e_date = e2e_record()
    beir_s = args.beir_seconds or beir_s
    other_s = args.other_seconds if args.other_seconds is not None else other_s
    at_achieved = full["total"] / achieved / 1e9
    floor = full["total"] / fp32_peak / 1e9
    record = {
        "what": "FLOP of all-MiniLM-L6-v2 over SciFact vs the rates this CPU reaches, one process",
        "dataset": Path(args.dataset).name,
        "model": "all-MiniLM-L6-v2",
        "backend": encoder.spec.backend,
        "threads": torch.get_num_threads(),
        "corpus_docs": len(corpus_texts),
        "corpus_tflop": {k: v / 1e12 for k, v in full.items()},
        "sample_docs": len(texts),
        "sample_encode_s": encode_s,
        "sample_encode_runs_s": runs,
        "achieved_gflops": achieved,
        "product_gflops": rate,
        "fp32_product_peak_gflops": fp32_peak,
        "lower_precision_over_fp32": low_best / fp32_peak,
        "projected_encode_s": {"at_achieved_rate": at_achieved, "every_flop_at_fp32_product_peak": floor},
    }
    if beir_s and other_s is not None:
        budget = args.target * beir_s - other_s
        record["target"] = {
            "ratio": args.target,
            "beir_s": beir_s,
            "ours_outside_encoding_s": other_s,
            "from": f"dense_e2e.json ({e2e_date})" if args.beir_seconds is None else "command line",
            "encode_budget_s": budget,
            "needed_gflops": full["total"] / budget / 1e9 if budget > 0 else None,
            "best_ratio_at_fp32_peak": (floor + other_s) / beir_s,
        }
    print(
        f"SciFact corpus: {full['total'] / 1e12:.1f} TFLOP ({100 * full['attention'] / full['total']:.0f}% attention)"
    )
    for name, v in rate.items():
        print(f"  {name:20s} {v:6.0f} GFLOP/s")
    print(f"ours ({record['backend']}): {len(texts)} docs in {encode_s:.1f} s = {achieved:.0f} GFLOP/s "
          f"({100 * achieved / fp32_peak:.0f}% of the fp32 product rate)")  # fmt: skip
    print(
        f"SciFact encode: {at_achieved:.0f} s at our rate, {floor:.0f} s with every FLOP at the fp32 product rate"
    )
    if t := record.get("target"):
        print(f"target {t['ratio']}x beir ({t['beir_s']:.1f} s): encode budget {t['encode_budget_s']:.0f} s needs "
              f"{t['needed_gflops'] or float('inf'):.0f} GFLOP/s; best ratio at the fp32 peak "
              f"{t['best_ratio_at_fp32_peak']:.3f}")  # fmt: skip
    write_record(NAME, record, args.quick)
    return record


if __name__ == "__main__":
    main()
