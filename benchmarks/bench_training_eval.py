"""(7) The trainer evaluator's cost: one in-loop evaluation against `gtr-eval run --no-cache`.

all-MiniLM-L6-v2 on the full SciFact corpus (5,183 documents, 300 test queries), each side in its own
process, side by side:

- peer: `gtr-eval run -m all-MiniLM-L6-v2 -d <scifact> --no-cache` as a user types it (a fresh
  process: imports, model load, ONNX export from its cache as any later run has it, encode, search,
  evaluate, store); its wall time.
- ours: a process holding the model as a trainer does (`SentenceTransformer(...)`), with a
  `BeirEvaluator(["<scifact>"])` made once before training (data loaded then); each evaluation
  `evaluator(model, steps=N)` timed.  The weights are perturbed between evaluations (as a training
  step does), so nothing of the previous evaluation's vectors can be reused, and each evaluation
  exports and encodes afresh.  `first_s` is the first evaluation (it tokenises the corpus),
  `later_s` the median of the next ones (tokenisation remembered).

Target: an in-loop evaluation costs no more than the peer's run: the median evaluation of a training
loop (`ratio` ≤ 1); the first, which also tokenises the corpus and imports ONNX Runtime's optimizer,
is reported beside it (`ratio_first`).  Both sides' NDCG@10 of the unperturbed model must agree to
1e-6 (the same retriever).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import BEIR, BENCH_CACHE, last_json, minilm_path, run_child, write_record

NAME = "training_eval"


def _child(data: Path, evaluations: int, store: Path) -> None:
    """Ours: the evaluator in a process that holds the model; prints one JSON line."""
    import torch
    from sentence_transformers import SentenceTransformer

    from gtr_eval.training import BeirEvaluator

    model = SentenceTransformer(str(minilm_path()), device="cpu")
    t0 = time.perf_counter()
    evaluator = BeirEvaluator([str(data)], system="minilm", data_dir=store / "data", cache_dir=store)
    setup = time.perf_counter() - t0
    times, ndcg = [], []
    for step in range(evaluations):
        if step:
            with torch.no_grad():  # a training step's worth of change: new weights, new vectors
                for p in model.parameters():
                    p.add_(torch.randn_like(p) * 1e-4)
        t0 = time.perf_counter()
        metrics = evaluator(model, steps=step)
        times.append(time.perf_counter() - t0)
        ndcg.append(metrics[evaluator.primary_metric])
    print(json.dumps({"setup_s": setup, "evaluations_s": times, "ndcg@10": ndcg}))


def summarise(loop: dict, ours_rss: float, peer_s: float, peer_rss: float, peer_ndcg: float) -> dict:
    """The record from both sides' measurements (`loop`: what the child printed)."""
    times = loop["evaluations_s"]
    median = statistics.median(times)
    return {
        "what": "in-loop BeirEvaluator evaluations of all-MiniLM-L6-v2 on full SciFact vs gtr-eval run --no-cache",
        "sides": {
            "ours": {
                "setup_s": loop["setup_s"],
                "evaluations_s": times,
                "peak_rss_mib": ours_rss,
                "ndcg@10": loop["ndcg@10"],
            },  # fmt: skip
            "run_no_cache": {"wall_s": peer_s, "peak_rss_mib": peer_rss, "ndcg@10": peer_ndcg},
        },
        "ours_s": median,
        "ours_first_s": times[0],
        "peer_s": peer_s,
        "ratio": median / peer_s,
        "ratio_first": times[0] / peer_s,
        "target_met": median <= peer_s,
        "ndcg_agree_1e-6": abs(loop["ndcg@10"][0] - peer_ndcg) <= 1e-6,
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="two evaluations instead of three")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--evaluations", type=int, default=3)
    args = ap.parse_args(argv)
    if args.child is not None:
        _child(args.child, args.evaluations, args.store)
        return {}
    data = BEIR / "scifact"
    env = {"GTR_EVAL_CACHE_DIR": str(BENCH_CACHE)}
    evaluations = 2 if args.quick else args.evaluations
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        peer_cmd = [sys.executable, "-m", "gtr_eval.cli", "run", "-m", "all-MiniLM-L6-v2", "-d", str(data),
                    "--no-cache", "--results-dir", f"{tmp}/results", "--quiet"]  # fmt: skip
        peer = run_child(peer_cmd, env)
        peer_ndcg = json.loads(next(Path(tmp, "results").rglob("scifact.json")).read_text())["metrics"][
            "ndcg@10"
        ]
        ours_cmd = [sys.executable, __file__, "--child", str(data), "--store", f"{tmp}/store",
                    "--evaluations", str(evaluations)]  # fmt: skip
        ours = run_child(ours_cmd, env)
    record = summarise(
        last_json(ours["stdout"]), ours["peak_rss_mib"], peer["wall_s"], peer["peak_rss_mib"], peer_ndcg
    )
    print(f"in-loop evaluations {', '.join(f'{t:.1f}' for t in record['sides']['ours']['evaluations_s'])} s "
          f"(median {record['ours_s']:.1f} s); run --no-cache {record['peer_s']:.1f} s; ratio {record['ratio']:.3f}, "
          f"first {record['ratio_first']:.3f} (target <= 1: {'met' if record['target_met'] else 'NOT met'}); "
          f"NDCG@10 equal to 1e-6: {record['ndcg_agree_1e-6']}")  # fmt: skip
    write_record(NAME, record, args.quick)
    return record


if __name__ == "__main__":
    main()
