"""(1a) Dense retrieval end to end: `gtr-eval run` vs beir's DenseRetrievalExactSearch.

Same model folder (all-MiniLM-L6-v2), same batch size, same torch threads (OMP_NUM_THREADS), each
side in its own process (wall time and peak RSS of that process), our run without a cache
(`--no-cache`: encodes into a fresh temporary folder).  Both load the data, encode corpus and
queries, search top-1000 and score; NDCG@10 of both is reported.

Variants of our side (`--variants`, default `default,torch`): `default` (the command as a user
types it, no backend flag: `--backend auto`, which is torch on an Intel CPU and ONNX Runtime fp32 on
others; run cold, with an empty user cache, so its time includes the one-time ONNX export a first run
pays where ONNX is chosen), `torch`
(`--backend torch`), `torch-2proc` (`--backend torch --processes 2`, one thread each; not faster
here, see bench_parallel.py), `onnx` (`--backend onnx`; its export done beforehand and cached, as
after the first run).

`--rounds N` repeats every side N times, the order reversed each round (beir, ours, ours, beir…),
and reports medians: on a machine shared with other jobs a change of load during the run then
hits both sides alike.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from _common import (
    BEIR,
    BENCH_CACHE,
    fmt_ratio,
    last_json,
    minilm_path,
    run_child,
    subset_folder,
    write_record,
)

NAME = "dense_e2e"


def beir_child(folder: str, model: str, batch_size: int) -> None:
    import torch
    from beir.datasets.data_loader import GenericDataLoader
    from beir.retrieval import models
    from beir.retrieval.evaluation import EvaluateRetrieval
    from beir.retrieval.search.dense import DenseRetrievalExactSearch

    corpus, queries, qrels = GenericDataLoader(data_folder=folder).load(split="test")
    dres = DenseRetrievalExactSearch(
        models.SentenceBERT(model), batch_size=batch_size, show_progress_bar=False
    )
    retriever = EvaluateRetrieval(dres, score_function="cos_sim", k_values=[1, 3, 5, 10, 100, 1000])
    results = retriever.retrieve(corpus, queries)
    ndcg, _map, _recall, _p = retriever.evaluate(qrels, results, retriever.k_values)
    print(json.dumps({"ndcg@10": ndcg["NDCG@10"], "threads": torch.get_num_threads()}))


def ours_args(folder: Path, model: str | None, batch_size: int, extra: list[str]) -> list[str]:
    """`gtr-eval run` arguments: the preset name, as a user types it, unless another model is given;
    the batch size only where it differs from the preset's (128)."""
    bs = [] if model is None and batch_size == 128 else ["--batch-size", str(batch_size)]
    return ["run", "-m", model or "all-MiniLM-L6-v2", "-d", str(folder), "--no-cache", *bs, *extra]


def ours_cmd(args: list[str], results: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gtr_eval.cli",
        *args,
        "--results-dir",
        str(results),
        "--overwrite",
        "--quiet",
    ]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="150 SciFact documents, 15 queries")
    ap.add_argument("--model", default=None, help="model folder  [default: the packaged all-MiniLM-L6-v2]")
    ap.add_argument("--dataset", default=str(BEIR / "scifact"))
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--variants", default=None, help="comma list of: default, torch, torch-2proc, onnx")
    ap.add_argument(
        "--rounds", type=int, default=1, help="repeat every side, order reversed each round; medians"
    )
    args = ap.parse_args(argv)
    model = args.model or str(minilm_path())
    variants = (args.variants or ("default" if args.quick else "default,torch")).split(",")
    env = {"OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        tmp = Path(tmp)
        folder = Path(args.dataset)
        if args.quick:
            folder = subset_folder(folder, tmp / "data", n_docs=150, n_queries=15)
        env["GTR_EVAL_CACHE_DIR"] = str(BENCH_CACHE)  # fingerprints and the ONNX export only
        extra_of = {"default": [], "torch": ["--backend", "torch"], "onnx": ["--backend", "onnx"],
                    "torch-2proc": ["--backend", "torch", "--processes", "2"]}  # fmt: skip
        if "onnx" in variants:  # the one-time export, so that the timed run measures encoding
            run_child(
                ours_cmd(ours_args(folder, args.model, args.batch_size, ["--backend", "onnx"]), tmp / "warm"),
                env,
            )

        def measure(side: str, r: int) -> dict:
            if side == "beir":
                out = run_child(
                    [sys.executable, __file__, "--child-beir", str(folder), model, str(args.batch_size)], env
                )
                return {
                    "wall_s": out["wall_s"],
                    "peak_rss_mib": out["peak_rss_mib"],
                    **last_json(out["stdout"]),
                }
            res = tmp / f"results-{side}-{r}"
            # the default side starts cold: no ONNX export, no fingerprint memo (as a first run)
            cold = {"GTR_EVAL_CACHE_DIR": str(tmp / f"cold-user-cache-{r}")} if side == "default" else {}
            cli_args = ours_args(folder, args.model, args.batch_size, extra_of[side])
            out = run_child(ours_cmd(cli_args, res), env | cold)
            stored = json.loads(next(res.glob("*/*.json")).read_text())
            timings = stored["manifest"]["timings"]
            return {
                "command": " ".join(["gtr-eval", *cli_args]).replace(str(folder), folder.name),
                "backend": stored["manifest"]["spec"]["backend"],
                "wall_s": out["wall_s"],
                "peak_rss_mib": out["peak_rss_mib"],
                "ndcg@10": stored["metrics"]["ndcg@10"],
                "encode_corpus_s": timings.get("encode_corpus_s"),
                "onnx_export_s": timings.get("onnx_export_s"),
            }

        order = ["beir", *variants]
        rounds: dict[str, list[dict]] = {side: [] for side in order}
        for r in range(args.rounds):  # ABBA...: a drift in the machine's load hits every side alike
            for side in order if r % 2 == 0 else order[::-1]:
                m = measure(side, r)
                rounds[side].append(m | {"loadavg_1min": os.getloadavg()[0]})
                print(f"round {r} {side}{' (' + m['backend'] + ')' if 'backend' in m else ''}: {m['wall_s']:.1f} s, "
                      f"{m['peak_rss_mib']:.0f} MiB, NDCG@10 {m['ndcg@10']:.5f}", flush=True)  # fmt: skip
        sides = {
            side: {**ms[-1], "wall_s": statistics.median(m["wall_s"] for m in ms),
                   "peak_rss_mib": max(m["peak_rss_mib"] for m in ms), "rounds": ms}
            for side, ms in rounds.items()
        }  # fmt: skip
        for v in variants:
            print(f"ours[{v}]: median {sides[v]['wall_s']:.1f} s vs beir {sides['beir']['wall_s']:.1f} s: "
                  f"time ratio ours/beir {fmt_ratio(sides[v]['wall_s'], sides['beir']['wall_s'])}")  # fmt: skip
    b = sides["beir"]
    record = {
        "what": "gtr-eval run --no-cache vs beir DenseRetrievalExactSearch(SentenceBERT), end to end",
        "dataset": Path(args.dataset).name + (" (quick subset)" if args.quick else ""),
        "model": Path(model).name if args.model else "all-MiniLM-L6-v2",
        "batch_size": args.batch_size,
        "threads": args.threads,
        "rounds": args.rounds,
        "sides": sides,
        "ratios": {
            v: {
                "time": sides[v]["wall_s"] / b["wall_s"],
                "peak_rss": sides[v]["peak_rss_mib"] / b["peak_rss_mib"],
                "ndcg@10_diff": sides[v]["ndcg@10"] - b["ndcg@10"],
            }
            for v in variants
        },
        "target": "the default command (public APIs only): time ratio ≤ 0.75 at equal NDCG@10",
    }
    write_record(NAME, record, args.quick)
    return record


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child-beir":
        beir_child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main()
