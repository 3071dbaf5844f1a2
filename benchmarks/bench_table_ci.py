"""(6) `gtr-eval table --ci`: how long a table with bootstrap intervals takes to render.

Committed results (bm25, all-MiniLM-L6-v2 and their RRF fusion on SciFact and NFCorpus): `gtr-eval
table --ci --baseline bm25` (95% intervals, 10,000 resamples, paired Δ intervals, Holm) as a user
runs it, a fresh process each round, imports included, against the same command without `--ci`
(the peer: what the intervals add).  Target: under 2 s.

BEIR's shape, in process: 18 datasets (the GTR paper's zero-shot table; CQADupStack as its 12
subforums) × 10 systems, every dataset with as many judged queries as the registry says (MS MARCO
aside, 46,000 in all), synthetic per-query scores; `leaderboard(..., ci=Bootstrap(), baseline=...)`
and its rendering timed, which is what "renders in seconds" means for a full table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from _common import ROOT, run_child, write_record

NAME = "table_ci"
TARGET_S = 2.0
SYSTEMS = 10


def _table(*extra: str) -> list[str]:
    return [sys.executable, "-m", "gtr_eval.cli", "table", "--results-dir", str(ROOT / "results"), *extra]


def _end_to_end(rounds: int) -> dict:
    """Median wall time of each command over `rounds` alternating rounds, a fresh process each."""
    commands = {
        "ci": _table("--ci", "--baseline", "bm25"),
        "plain": _table("--baseline", "bm25"),
        "ci_no_baseline": _table("--ci"),
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for r in range(rounds):
        order = list(commands) if r % 2 == 0 else list(reversed(commands))
        for name in order:
            times[name].append(run_child(commands[name])["wall_s"])
    return {name: {"median_s": statistics.median(ts), "all_s": ts} for name, ts in times.items()}


def _beir_shape(resamples: int, seed: int = 0):
    """StoredResults of BEIR's shape with synthetic per-query scores (no files behind them)."""
    import numpy as np

    from gtr_eval.data import registry
    from gtr_eval.results import StoredResult

    rng = np.random.default_rng(seed)
    units: dict[str, int] = {}
    for name in registry.group("paper").members:
        info = registry.get(name)
        if info.expected:
            units.update({u: e.queries for u, e in zip(info.unit_names(), info.expected, strict=True)})
        else:
            units[name] = info.num_queries
    results = []
    for unit, n in units.items():
        qids = [f"q{i}" for i in range(n)]
        base = rng.beta(2, 3, size=n)
        for s in range(SYSTEMS):
            scores = np.clip(base + rng.normal(0.01 * s, 0.15, size=n), 0, 1)
            pq = dict(zip(qids, scores.tolist(), strict=True))
            results.append(
                StoredResult(
                    f"sys{s}",
                    unit,
                    "test",
                    {"ndcg@10": float(scores.mean())},
                    {"ndcg@10": pq},
                    {},
                    Path(f"{unit}/sys{s}.json"),
                )  # fmt: skip
            )
    return results, len(units), sum(units.values())


def _in_process(resamples: int, rounds: int) -> dict:
    from gtr_eval.report.tables import leaderboard, render
    from gtr_eval.results import ResultsStore
    from gtr_eval.uncertainty import Bootstrap

    config = Bootstrap(resamples=resamples)
    committed = list(ResultsStore(ROOT / "results"))
    leaderboard(committed, baseline="bm25")  # scipy's import, paid by any table with a baseline
    small = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        render(leaderboard(committed, baseline="bm25", ci=config))
        small.append(time.perf_counter() - t0)
    results, units, queries = _beir_shape(resamples)
    big = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        board = leaderboard(results, baseline="sys0", ci=config)
        render(board)
        big.append(time.perf_counter() - t0)
    return {
        "committed_leaderboard_s": statistics.median(small),
        "beir_shape": {
            "datasets": len(board.values.index) - 1,
            "evaluation_units": units,
            "systems": SYSTEMS,
            "queries": queries,
            "resamples": resamples,
            "median_s": statistics.median(big),
            "all_s": big,
        },
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="one round, 1,000 resamples for BEIR's shape")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)
    rounds = 1 if args.quick else args.rounds
    e2e = _end_to_end(rounds)
    inproc = _in_process(1_000 if args.quick else 10_000, 1 if args.quick else 3)
    ci, plain = e2e["ci"]["median_s"], e2e["plain"]["median_s"]
    print(f"table --ci --baseline bm25 {ci:.2f} s vs without --ci {plain:.2f} s (medians of {rounds}): ratio "
          f"{ci / plain:.3f}; target < {TARGET_S} s: {'met' if ci < TARGET_S else 'NOT met'}")  # fmt: skip
    shape = inproc["beir_shape"]
    print(f"BEIR's shape ({shape['datasets']} datasets × {SYSTEMS} systems, {shape['queries']:,} queries): "
          f"{shape['median_s']:.2f} s in process")  # fmt: skip
    record = {
        "what": "gtr-eval table --ci --baseline bm25 over the committed results, end to end, vs without --ci",
        "resamples": 10_000,
        "rounds": rounds,
        "sides": e2e,
        "ours_s": ci,
        "peer_s": plain,
        "ratio": ci / plain,
        "target_s": TARGET_S,
        "target_met": ci < TARGET_S,
        **inproc,
    }
    write_record(NAME, record, args.quick)
    return record


if __name__ == "__main__":
    main()
