"""Shared helpers: data subsets, child processes with their own peak RSS, JSON records.

Every benchmark runs this harness and a peer in the same invocation and reports the ratio
(ours / peer): the machine is shared, so absolute times drift with its load, ratios much less.
Each record carries `os.getloadavg()` taken when it was written.
"""

from __future__ import annotations

import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
QUICK_DIR_ENV = "GTR_EVAL_BENCH_QUICK_DIR"  # where --quick runs write their records (tests: a tmp folder)
BENCH_CACHE = HERE / ".cache"  # model fingerprints, ONNX exports, reusable embeddings (git-ignored)
BEIR = Path(os.environ.get("GTR_EVAL_BENCH_DATA", ROOT.parent / "shared" / "data" / "beir"))
sys.path.insert(0, str(ROOT))


def machine() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return {
        "cpu": cpu or platform.processor(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }


def record_path(name: str, quick: bool) -> Path:
    """benchmarks/results/<name>.json for a full run (the README's source); a --quick run's record,
    a smoke test's, goes to <name>.quick.json in $GTR_EVAL_BENCH_QUICK_DIR, else in the system's
    temporary folder: never into the repository."""
    if not quick:
        return RESULTS / f"{name}.json"
    folder = os.environ.get(QUICK_DIR_ENV) or Path(tempfile.gettempdir()) / "gtr-eval-bench-quick"
    return Path(folder) / f"{name}.quick.json"


def write_record(name: str, record: dict, quick: bool, folder: Path | None = None) -> Path:
    """The record of a run, at `record_path(name, quick)` (or under that name in `folder`), with the
    machine and its load."""
    record = {
        "benchmark": name,
        "quick": quick,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "loadavg": list(os.getloadavg()),
        "machine": machine(),
        **record,
    }
    path = record_path(name, quick) if folder is None else Path(folder) / record_path(name, quick).name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")
    print(f"-> {path}")
    return path


def run_child(cmd: list[str], env: dict | None = None, timeout: float = 3600) -> dict:
    """Run `cmd`, return its wall time, peak RSS (its own `ru_maxrss`, via wait4), stdout, stderr."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env={**os.environ, **(env or {})})
        deadline = t0 + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                raise TimeoutError(" ".join(cmd))
            time.sleep(0.05)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{stderr[-4000:]}")
    return {"wall_s": wall, "peak_rss_mib": usage.ru_maxrss / 1024, "stdout": stdout, "stderr": stderr}


def last_json(text: str) -> dict:
    """The last line of `text` that parses as a JSON object (what a child prints for its parent)."""
    from gtr_eval.io import last_json_object

    if (value := last_json_object(text)) is None:
        raise ValueError("no JSON line in child output")
    return value


def subset_folder(src: Path, dst: Path, n_docs: int, n_queries: int, seed: int = 0) -> Path:
    """A BEIR folder with `n_queries` judged test queries and `n_docs` documents (their relevant ones
    first, then random others), for --quick runs."""
    qrels_lines = (src / "qrels" / "test.tsv").read_text().splitlines()
    header, rows = qrels_lines[0], [r.split("\t") for r in qrels_lines[1:] if r.strip()]
    qids = sorted({r[0] for r in rows})
    random.Random(seed).shuffle(qids)
    keep_q = set(qids[:n_queries])
    rel_docs = {r[1] for r in rows if r[0] in keep_q}
    docs = [json.loads(line) for line in (src / "corpus.jsonl").read_text().splitlines() if line.strip()]
    others = [d for d in docs if d["_id"] not in rel_docs]
    random.Random(seed).shuffle(others)
    chosen = [d for d in docs if d["_id"] in rel_docs] + others[: max(0, n_docs - len(rel_docs))]
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "qrels").mkdir(exist_ok=True)
    (dst / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in chosen))
    queries = [json.loads(line) for line in (src / "queries.jsonl").read_text().splitlines() if line.strip()]
    (dst / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries if q["_id"] in keep_q))
    kept = [header] + ["\t".join(r) for r in rows if r[0] in keep_q]
    (dst / "qrels" / "test.tsv").write_text("\n".join(kept) + "\n")
    return dst


def minilm_path() -> Path:
    from gtr_eval.retrieval.models import resolve_model

    return resolve_model("all-MiniLM-L6-v2").path


def fmt_ratio(ours: float, peer: float) -> str:
    return f"{ours / peer:.3f}" if peer else "n/a"
