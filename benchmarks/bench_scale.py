"""(scale) MS MARCO-size corpora on one machine: the corpus store, lean BM25 and the dense pipeline
against beir's `GenericDataLoader`, bm25s called directly and beir's `DenseRetrievalExactSearch`.

Every side runs in its own process, one after the other.  A watchdog reads the memory of the
side's process tree from /proc every 0.2 s: RSS (resident pages, file-backed ones included: the
memory-mapped corpus store, index and embedding shards count while mapped) and RssAnon (anonymous
memory: what the process itself holds, "page cache aside").  A side whose anonymous memory passes
`--limit-gb`, or that drives the machine's MemAvailable under 1 GiB, is killed and recorded as out
of memory, not dropped.  Sides:

  open       load_beir_folder twice: first open (corpus.jsonl -> store) and second (maps the store)
  beir-load  beir's GenericDataLoader on the same folder
  bm25       `gtr-eval run -m bm25` twice: first run (indexes, saves the index), second (reuses it)
  bm25s      beir's loader + bm25s tokenize / index / retrieve (n_threads=2), as MTEB's baseline does
  dense      `gtr-eval run -m <stand-in>`: store -> encode shards -> cache -> search -> evaluation
             -> run file; the stand-in is a random StaticEmbedding (word-level tokenizer over the
             synthetic vocabulary's 50k most frequent words, 768 dimensions), so the harness, not a
             model, is measured
  dres       beir's loader + DenseRetrievalExactSearch(SentenceBERT(stand-in)), cos_sim, top-1000

    python benchmarks/bench_scale.py --size 1m
    python benchmarks/bench_scale.py --size 8.8m --sides open,beir-load,bm25,bm25s,dense
    python benchmarks/bench_scale.py --quick            # 30,000 passages in a temporary folder

Corpora (made by make_synthetic.py when missing) live under $GTR_EVAL_SCALE_DATA (default
/work/scale-data): synth-<size>/, with the caches and results of the runs in synth-<size>.bench/.
The record is benchmarks/results/scale.json, one entry per size.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import HERE, last_json, machine, record_path

NAME = "scale"
SIZES = {"1m": 1_000_000, "8.8m": 8_841_823}
ALL_SIDES = ("open", "beir-load", "bm25", "bm25s", "dense", "dres")
DATA_ROOT = Path(os.environ.get("GTR_EVAL_SCALE_DATA", "/work/scale-data"))
SPLIT = "dev"
TOP_K = 1000
STANDIN_VOCAB, STANDIN_DIM = 50_000, 768
QUICK_VOCAB = 200_000  # --quick: a smaller synthetic vocabulary (the stand-in is built over the same)
_corpus_vocab = {"size": 2_000_000}  # the synthetic vocabulary size of the corpus being measured
BATCH = 1024


# --- measuring a process tree -------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                ppid = int(fh.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def tree_memory(pid: int) -> tuple[float, float, float]:
    """(RSS, RssAnon + RssShmem) in MiB summed over `pid` and its descendants, and `pid`'s own peak
    RSS so far (VmHWM: catches a spike between two polls)."""
    kids, todo, rss, anon, hwm = _children(), [pid], 0, 0, 0
    while todo:
        p = todo.pop()
        todo += kids.get(p, [])
        try:
            fields = dict(
                line.split(":", 1)
                for line in Path(f"/proc/{p}/status").read_text().splitlines()
                if ":" in line
            )
        except OSError:
            continue
        rss += int(fields.get("VmRSS", "0 kB").split()[0])
        if p == pid:
            hwm = int(fields.get("VmHWM", "0 kB").split()[0])
        anon += int(fields.get("RssAnon", "0 kB").split()[0]) + int(fields.get("RssShmem", "0 kB").split()[0])
    return rss / 1024, anon / 1024, hwm / 1024


def mem_available_mib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return float("inf")


def measure(
    cmd: list[str], env: dict | None = None, limit_gb: float = 20.0, timeout_s: float = 6 * 3600
) -> dict:
    """Run `cmd` in its own session; wall time, CPU time, peak RSS / anonymous memory, timed output."""
    lines: list[tuple[float, str]] = []
    samples: list[tuple[float, float, float]] = []
    usage0 = os.times()
    t0 = time.monotonic()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )  # fmt: skip

    def read() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.append((time.monotonic() - t0, line.rstrip("\n")))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    status = "ok"
    root_peak = 0.0
    while proc.poll() is None:
        now = time.monotonic() - t0
        rss, anon, hwm = tree_memory(proc.pid)
        root_peak = max(root_peak, hwm)
        samples.append((now, rss, anon))
        why = None
        if anon > limit_gb * 1024:
            why = f"out of memory (killed at {anon / 1024:.1f} GB anonymous memory, limit {limit_gb:g} GB)"
        elif mem_available_mib() < 1024:
            why = f"out of memory (killed at {anon / 1024:.1f} GB anonymous memory: the machine had < 1 GiB available)"
        elif now > timeout_s:
            why = f"stopped after the {timeout_s / 3600:g} h time limit"
        if why:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            status = why
            break
        time.sleep(0.2)
    wall = time.monotonic() - t0
    reader.join(timeout=10)
    usage1 = os.times()
    if status == "ok" and proc.returncode != 0:
        status = f"failed (exit {proc.returncode})"
    return {
        "status": status,
        "wall_s": wall,
        "cpu_s": (usage1.children_user - usage0.children_user)
        + (usage1.children_system - usage0.children_system),
        "peak_rss_mib": max(max((s[1] for s in samples), default=0.0), root_peak),
        "peak_anon_mib": max((s[2] for s in samples), default=0.0),
        "samples": samples,
        "lines": lines,
    }


def _window_peaks(samples, start: float, end: float) -> dict:
    inside = [s for s in samples if start <= s[0] <= end] or [min(samples, key=lambda s: abs(s[0] - end))]
    return {"peak_rss_mib": max(s[1] for s in inside), "peak_anon_mib": max(s[2] for s in inside)}


def stages_of_run(m: dict, result: dict) -> dict:
    """Per-stage seconds and memory of a `gtr-eval run`: its manifest's timings, placed in time by its
    `[data]` and `[done]` output lines (the stages run one after the other in between)."""
    t = result["manifest"]["timings"]
    at = {
        tag: next((ts for ts, line in m["lines"] if line.startswith(tag)), None)
        for tag in ("[data]", "[done]")
    }
    if at["[data]"] is None or at["[done]"] is None or not m["samples"]:
        return {}
    index_s = t.get("index_s", t.get("encode_corpus_s", 0.0))
    bounds = [("start, load data", 0.0, at["[data]"])]
    a = at["[data]"]
    for name, secs in (("index" if "index_s" in t else "encode corpus", index_s),
                       ("search", t["retrieve_total_s"] - index_s), ("evaluate", t["evaluate_s"])):  # fmt: skip
        bounds.append((name, a, a + secs))
        a += secs
    bounds.append(("write results", a, at["[done]"]))
    return {
        name: {"s": end - start, **_window_peaks(m["samples"], start, end)} for name, start, end in bounds
    }


# --- the sides ----------------------------------------------------------------------------------


def _py(*args: str) -> list[str]:
    return [sys.executable, __file__, *args]


def _run_cmd(model: str, data: Path, work: Path, results: str) -> list[str]:
    return [sys.executable, "-m", "gtr_eval.cli", "run", "-m", model, "-d", str(data), "--split", SPLIT,
            "--cache-dir", str(work / "cache"), "--results-dir", str(work / results), "--top-k", str(TOP_K),
            "--batch-size", str(BATCH), "--overwrite", "--quiet"]  # fmt: skip


def _stored(work: Path, results: str) -> dict:
    return json.loads(next((work / results).glob("*/*.json")).read_text())


def side_open(data: Path, work: Path, env: dict, limit: float, timeout: float) -> dict:
    store = work / "cache" / "corpus"
    shutil.rmtree(store, ignore_errors=True)
    out = {}
    for which in ("first", "second"):
        m = measure(_py("--child-open", str(data), str(store)), env, limit, timeout)
        out[f"open-{which}"] = _summary(m)
    return out


def side_beir_load(data: Path, work: Path, env: dict, limit: float, timeout: float) -> dict:
    return {"beir-load": _summary(measure(_py("--child-beir-load", str(data)), env, limit, timeout))}


def side_bm25(data: Path, work: Path, env: dict, limit: float, timeout: float) -> dict:
    shutil.rmtree(work / "cache" / "bm25", ignore_errors=True)
    out = {}
    for which in ("first", "second"):
        results = f"bm25-{which}"
        shutil.rmtree(work / results, ignore_errors=True)
        m = measure(_run_cmd("bm25", data, work, results), env, limit, timeout)
        out[f"bm25-{which}"] = _summary(m, work, results)
    return out


def side_bm25s(data: Path, work: Path, env: dict, limit: float, timeout: float) -> dict:
    return {"bm25s-direct": _summary(measure(_py("--child-bm25s", str(data)), env, limit, timeout))}


def side_dense(data: Path, work: Path, env: dict, limit: float, timeout: float) -> dict:
    model = standin(work)
    shutil.rmtree(work / "cache" / "embeddings", ignore_errors=True)
    shutil.rmtree(work / "dense-first", ignore_errors=True)
    m = measure(_run_cmd(str(model), data, work, "dense-first"), env, limit, timeout)
    out = {"dense-first": _summary(m, work, "dense-first")}
    emb = work / "cache" / "embeddings"
    out["dense-first"]["cache_gb"] = sum(p.stat().st_size for p in emb.rglob("*") if p.is_file()) / 1e9
    return out


def side_dres(data: Path, work: Path, env: dict, limit: float, timeout: float) -> dict:
    model = standin(work)
    return {"beir-dres": _summary(measure(_py("--child-dres", str(data), str(model)), env, limit, timeout))}


SIDE_FUNCS = {"open": side_open, "beir-load": side_beir_load, "bm25": side_bm25, "bm25s": side_bm25s,
              "dense": side_dense, "dres": side_dres}  # fmt: skip


def _summary(m: dict, work: Path | None = None, results: str | None = None) -> dict:
    out = {k: m[k] for k in ("status", "wall_s", "cpu_s", "peak_rss_mib", "peak_anon_mib")}
    child = _last_json([line for _, line in m["lines"]])
    out.update(child)
    out["peak_rss_mib"] = max(out["peak_rss_mib"], child.get("vmhwm_mib", 0.0))
    if work is not None and m["status"] == "ok":
        stored = _stored(work, results)
        out["ndcg@10"] = stored["metrics"]["ndcg@10"]
        out["timings"] = stored["manifest"]["timings"]
        out["stages"] = stages_of_run(m, stored)
        stats = stored["manifest"].get("stats") or {}
        if "bm25_index" in stats:
            out["index_reused"] = stats["bm25_index"].get("reused")
        if "corpus_shards" in stats:
            out["encode_stats"] = {k: v for k, v in stats.items() if k.startswith("corpus_shards")}
    if m["status"] != "ok":
        out["output_tail"] = [line for _, line in m["lines"][-15:]]
    status = m["status"] + (f", NDCG@10 {out['ndcg@10']:.5f}" if "ndcg@10" in out else "")
    print(f"    {m['wall_s']:8.1f} s  RSS {m['peak_rss_mib']:8.0f} MiB  anon {m['peak_anon_mib']:8.0f} MiB  {status}",
          flush=True)  # fmt: skip
    return out


def _last_json(lines: list[str]) -> dict:
    try:
        return last_json("\n".join(lines))
    except ValueError:
        return {}


def standin(work: Path) -> Path:
    """The stand-in encoder: a random StaticEmbedding over a word-level tokenizer (built once)."""
    folder = work / f"standin-{STANDIN_DIM}"
    if (folder / "modules.json").is_file():
        return folder
    import make_synthetic
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    words = make_synthetic.vocabulary(_corpus_vocab["size"], np.random.default_rng(0))[:STANDIN_VOCAB]
    tok = Tokenizer(
        models.WordLevel({"[UNK]": 0} | {w: i + 1 for i, w in enumerate(words)}, unk_token="[UNK]")
    )
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    weights = torch.randn(tok.get_vocab_size(), STANDIN_DIM, generator=torch.Generator().manual_seed(0))
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    SentenceTransformer(modules=[StaticEmbedding(tok, embedding_weights=weights)]).save(str(tmp))
    tmp.rename(folder)
    return folder


# --- children -----------------------------------------------------------------------------------


def _self_peak_mib() -> float:
    """This process' peak RSS (VmHWM), for sides too short for the 0.2 s polling to catch."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def child_open(folder: str, store: str) -> None:
    sys.path.insert(0, str(HERE.parent))
    from gtr_eval.data.loader import load_beir_folder

    t0 = time.perf_counter()
    data = load_beir_folder(Path(folder), split=SPLIT, store_dir=Path(store))
    print(
        json.dumps(
            {"docs": len(data.corpus), "queries": len(data.queries), "load_s": time.perf_counter() - t0}
        )
    )


def child_beir_load(folder: str) -> None:
    from beir.datasets.data_loader import GenericDataLoader

    t0 = time.perf_counter()
    corpus, queries, _ = GenericDataLoader(data_folder=folder).load(split=SPLIT)
    print(json.dumps({"docs": len(corpus), "queries": len(queries), "load_s": time.perf_counter() - t0,
                      "vmhwm_mib": _self_peak_mib()}))  # fmt: skip


def _evaluate(qrels: dict, run: dict) -> float:
    sys.path.insert(0, str(HERE.parent))
    from gtr_eval.evaluation import evaluate

    return evaluate(qrels, run).metrics["ndcg@10"]


def child_bm25s(folder: str) -> None:
    """bm25s as MTEB's bm25s baseline runs it, on beir's loader; the run dict keeps hits with score > 0."""
    import bm25s
    import Stemmer
    from beir.datasets.data_loader import GenericDataLoader

    t = {}
    t0 = time.perf_counter()
    corpus, queries, qrels = GenericDataLoader(data_folder=folder).load(split=SPLIT)
    ids = list(corpus)
    texts = [(corpus[d].get("title", "") + " " + corpus[d].get("text", "")).strip() for d in ids]
    t["load_s"] = time.perf_counter() - t0
    stemmer = Stemmer.Stemmer("english")
    t0 = time.perf_counter()
    tokens = bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False)
    del texts
    model = bm25s.BM25(k1=1.5, b=0.75, method="lucene")
    model.index(tokens, show_progress=False)
    del tokens
    t["index_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    qids = list(queries)
    q_tokens = bm25s.tokenize(
        [queries[q] for q in qids], stopwords="en", stemmer=stemmer, show_progress=False
    )
    idx, scores = model.retrieve(q_tokens, k=min(TOP_K, len(ids)), show_progress=False, n_threads=2)
    run = {
        q: {ids[j]: float(s) for j, s in zip(idx[r], scores[r], strict=True) if s > 0}
        for r, q in enumerate(qids)
    }
    t["search_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ndcg = _evaluate(qrels, run)
    t["evaluate_s"] = time.perf_counter() - t0
    print(json.dumps({"ndcg@10": ndcg, "timings": t, "vmhwm_mib": _self_peak_mib()}))


def child_dres(folder: str, model: str) -> None:
    from beir.datasets.data_loader import GenericDataLoader
    from beir.retrieval import models
    from beir.retrieval.evaluation import EvaluateRetrieval
    from beir.retrieval.search.dense import DenseRetrievalExactSearch

    t = {}
    t0 = time.perf_counter()
    corpus, queries, qrels = GenericDataLoader(data_folder=folder).load(split=SPLIT)
    t["load_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    dres = DenseRetrievalExactSearch(models.SentenceBERT(model), batch_size=BATCH, show_progress_bar=False)
    results = EvaluateRetrieval(dres, score_function="cos_sim", k_values=[TOP_K]).retrieve(corpus, queries)
    t["retrieve_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ndcg = _evaluate(qrels, results)
    t["evaluate_s"] = time.perf_counter() - t0
    print(json.dumps({"ndcg@10": ndcg, "timings": t, "vmhwm_mib": _self_peak_mib()}))


CHILDREN = {"--child-open": child_open, "--child-beir-load": child_beir_load, "--child-bm25s": child_bm25s,
            "--child-dres": child_dres}  # fmt: skip


# --- main ---------------------------------------------------------------------------------------


def ensure_corpus(folder: Path, docs: int) -> Path:
    if not (folder / "corpus.jsonl").is_file():
        import make_synthetic

        make_synthetic.generate(folder, docs, make_synthetic.MSMARCO_DEV_QUERIES, seed=0)
    return folder


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="1m", help=f"one of {', '.join(SIZES)}")
    ap.add_argument("--sides", default=",".join(ALL_SIDES), help=f"comma list of {', '.join(ALL_SIDES)}")
    ap.add_argument("--limit-gb", type=float, default=20.0, help="kill a side above this anonymous memory")
    ap.add_argument("--timeout-h", type=float, default=6.0, help="kill a side after this many hours")
    ap.add_argument(
        "--quick", action="store_true", help="30,000 passages and 300 queries, in a temporary folder"
    )
    ap.add_argument("--note", default="", help="recorded with the entry (e.g. what else ran on the machine)")
    args = ap.parse_args(argv)
    sides = args.sides.split(",")
    tmp = tempfile.TemporaryDirectory(prefix="bench-scale-") if args.quick else None
    if tmp:
        import make_synthetic

        size = "quick"
        _corpus_vocab["size"] = QUICK_VOCAB
        data = make_synthetic.generate(
            Path(tmp.name) / "synth-quick", 30_000, 300, seed=0, vocab_size=QUICK_VOCAB
        )
    else:
        size = args.size
        data = ensure_corpus(DATA_ROOT / f"synth-{size}", SIZES[size])
    work = data.with_name(data.name + ".bench")
    work.mkdir(exist_ok=True)
    env = {"GTR_EVAL_CACHE_DIR": str(work / "cache"), "OMP_NUM_THREADS": str(os.cpu_count())}
    entry = {"corpus": str(data), "docs": SIZES.get(size, 30_000), "corpus_bytes": (data / "corpus.jsonl").stat().st_size,
             "split": SPLIT, "top_k": TOP_K, "limit_gb": args.limit_gb, "note": args.note, "sides": {}}  # fmt: skip
    try:
        for side in sides:
            print(f"== {size}: {side}", flush=True)
            began = time.strftime("%Y-%m-%d %H:%M:%S")
            load = os.getloadavg()
            for name, result in SIDE_FUNCS[side](
                data, work, env, args.limit_gb, args.timeout_h * 3600
            ).items():
                entry["sides"][name] = {"started": began, "loadavg_before": list(load), **result}
            _save(size, entry, args.quick)
    finally:
        if tmp:
            tmp.cleanup()
    return entry


def _save(size: str, entry: dict, quick: bool) -> Path:
    """Merge this size's entry into the record (benchmarks/results/scale.json; other sizes are kept)."""
    path = record_path(NAME, quick)
    record = json.loads(path.read_text()) if path.is_file() else {"benchmark": NAME, "sizes": {}}
    old = record["sizes"].get(size, {})
    merged = {
        **old,
        **{k: v for k, v in entry.items() if k != "sides"},
        "sides": {**old.get("sides", {}), **entry["sides"]},
    }
    record["sizes"][size] = merged
    record.update(
        quick=quick,
        machine=machine(),
        date=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        loadavg=list(os.getloadavg()),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")
    print(f"-> {path}")
    return path


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in CHILDREN:
        CHILDREN[sys.argv[1]](*sys.argv[2:])
    else:
        main()
