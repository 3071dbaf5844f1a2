"""(8) One GPU: the path most users run (GTR sizes, `gtr-eval run`), prepared here, run on a lent GPU.

No machine of this project has a GPU; one is sometimes lent for a few minutes, bare (nothing can be
downloaded there) and fed at most 64 MiB of the working tree.  So this script builds what it needs
there and is planned to end within 8 minutes (past `--budget-s` it skips the sections left):

1. a gtr-t5-base-shaped and a gtr-t5-large-shaped model (`SHAPES`: the real T5 1.0 encoder configs,
   mean pooling, a dense projection to 768, normalize, 512 tokens) with seeded random weights
   (compute does not depend on their values) and a BPE tokenizer trained on the carried corpora,
   saved as the hub checkpoints are (fp16 weights, sentence-transformers layout) into a private hub
   cache, and run as `-m gtr-t5-base` / `-m gtr-t5-large`: the preset, the loader and the batch size
   a user gets;
2. `gtr-eval run` with each on SciFact and NFCorpus, by default (fp32) and with `--dtype bf16|fp16`:
   documents/s, tokens/s, peak GPU memory (`torch.cuda.max_memory_allocated`), each stage's share of
   the run (the result manifest's timings); whether fp16 gives non-finite vectors or collapses
   the score (`probe`: 256 documents through the same loader in fp32 and fp16);
3. beir's `DenseRetrievalExactSearch` with the same model and batch size on SciFact: time ratio and
   NDCG@10 (and @100) difference;
4. exact top-1000 search of 1,000,000 × 768 fp16 vectors for 10,000 queries: ours (`exact_search`
   over 2,048-row shards, as the cache holds them) against `torch.topk` over blocks of the matrix
   held on the GPU (and FAISS GPU where importable with GPU support): time, peak GPU memory,
   agreement of the top 10;
5. the same seeded model's NDCG@10 with `--device cpu` and on the GPU (`CPU_GPU_TOLERANCE`);
6. the record `gpu.json` (under `--output`) and the projected wall time of the 14 public BEIR sets
   with gtr-t5-base and gtr-t5-xxl from the measured tokens/s.

    python benchmarks/bench_gpu.py --prepare     # here: data and wheels into the carried folders, sizes
    bash benchmarks/bench_gpu_device.sh          # there: the device command (benchmarks/README.md)
    python benchmarks/bench_gpu.py --quick       # CPU, tiny sizes; the record goes to a temporary folder

The base size runs first, then beir and the search, then the larger size, each child process with
the budget left as its time limit: a section that fails or overruns is recorded in `skipped` and the
rest goes on, so the record is written before the device call's own limit.  fp16: seeded random
weights lack the activation scales of trained T5 checkpoints (what overflows fp16 there), so a clean
fp16 here says nothing about the real weights; the record says so (`FP16_NOTE`).

`--quick` runs the same code on the CPU (tiny T5 sizes, a SciFact subset, 2,000 × 64 vectors);
`tests/test_bench_gpu.py` runs it.  Without a GPU the record never goes to benchmarks/results/, and
every GPU-only field says why it is absent.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

from _common import BEIR, RESULTS, ROOT, last_json, run_child, subset_folder, write_record

sys.path.insert(0, str(ROOT / "tests"))
from tiny_gtr import T5Shape, build_gtr, install_as_hub_snapshot  # noqa: E402

NAME = "gpu"
SHAPES = {  # the hub checkpoints' T5 1.0 encoder configs
    "gtr-t5-base": T5Shape(d_model=768, num_layers=12, num_heads=12, d_ff=3072),
    "gtr-t5-large": T5Shape(d_model=1024, num_layers=24, num_heads=16, d_ff=4096),
}
QUICK_SHAPES = {
    "gtr-t5-base": T5Shape(d_model=32, num_layers=2, num_heads=4, d_ff=64, vocab_size=0, d_kv=8, out_dim=16),
    "gtr-t5-large": T5Shape(
        d_model=48, num_layers=3, num_heads=4, d_ff=96, vocab_size=0, d_kv=12, out_dim=16
    ),
}
DATASETS = ("scifact", "nfcorpus")
DTYPES = ("fp32", "bf16", "fp16")
TOKENIZER_VOCAB = {"full": 32_000, "quick": 1_000}
MAX_LENGTH = {"full": 512, "quick": 64}  # the presets' 512; --quick: the model's own and `--max-length`
QUICK_SUBSET = {"n_docs": 100, "n_queries": 10}
CPU_CHECK_SUBSET = {"n_docs": 300, "n_queries": 30}  # small: its CPU side encodes with GTR-base
CPU_GPU_TOLERANCE = 0.002  # |NDCG@10 (and @100) on CPU - on GPU|, both fp32: rounding flips only near-ties
BEIR_TOLERANCE = 0.002  # |NDCG@10 (and @100) ours - beir|, same model, same dtype, same device
PROBE_DOCS = 256
SEARCH = {"full": (1_000_000, 768, 10_000, 1000), "quick": (2_000, 64, 50, 1000)}  # docs, dim, queries, k
SHARD_ROWS = 2048  # the cache's corpus shard size (`--shard-size`)
PEER_BLOCK_ROWS = 65_536
BUDGET_S = 420
CARRY = (".whl", ".gpu-data")  # the device call's carry list (both git-ignored)
# What `gtr-eval run` (.whl/run) and beir (.whl/beir) import that the GPU machine lacks, at this
# venv's versions.  beir's go to their own folder, on the path of beir's process alone
# (BEIR_SITE): a `datasets` that does not suit the machine's pyarrow can then fail only that side.
WHEELS = {
    "run": ("pytrec-eval-terrier", "platformdirs"),
    "beir": ("beir", "datasets", "dill", "multiprocess"),
}
BEIR_SITE = "BENCH_GPU_BEIR_SITE"
CARRY_LIMIT = 64 << 20
MIB = 1 << 20


# -- here: the carried folders ---------------------------------------------------------------------


def prepare(data: Path = BEIR) -> dict:
    """Copy the datasets' files into .gpu-data/, download the wheels into .whl/, measure what travels."""
    dst = ROOT / ".gpu-data" / "beir"
    for name in DATASETS:
        for rel in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"):
            (dst / name / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(data / name / rel, dst / name / rel)
    shutil.rmtree(ROOT / ".whl", ignore_errors=True)  # one version of each wheel
    for group, names in WHEELS.items():
        pins = [f"{w}=={metadata.version(w)}" for w in names]
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                        "--python-version", "3.12", "--implementation", "cp",
                        *(a for p in ("manylinux_2_28", "manylinux_2_17", "manylinux2014") for a in ("--platform", f"{p}_x86_64")),
                        "-d", str(ROOT / ".whl" / group), *pins], check=True)  # fmt: skip
    sizes = carry_sizes()
    print(json.dumps(sizes, indent=1))
    if sizes["total_mib"] > CARRY_LIMIT / MIB:
        raise SystemExit(f"what the device call carries is {sizes['total_mib']:.1f} MiB, over 64 MiB")
    return sizes


def carry_sizes() -> dict:
    """Bytes that travel: tracked and untracked-not-ignored files, and each carried folder."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")  # fmt: skip
    tree = sum((ROOT / p.decode()).stat().st_size for p in listed if p and (ROOT / p.decode()).is_file())
    carried = {c: sum(f.stat().st_size for f in (ROOT / c).rglob("*") if f.is_file()) for c in CARRY}
    return {"tree_mib": tree / MIB, **{f"{c}_mib": b / MIB for c, b in carried.items()},
            "total_mib": (tree + sum(carried.values())) / MIB}  # fmt: skip


# -- the models --------------------------------------------------------------------------------------


def corpus_texts(folder: Path) -> list[str]:
    """Each document as the dense retrievers encode it: (title + " " + text).strip()."""
    with open(folder / "corpus.jsonl") as f:
        docs = [json.loads(line) for line in f if line.strip()]
    return [(d.get("title", "") + " " + d.get("text", "")).strip() for d in docs]


def build_models(work: Path, shapes: dict[str, T5Shape], folders: dict[str, Path], mode: str) -> dict:
    """Each shape as a hub snapshot of its preset's repo in `work/hub`; the timing of each build."""
    from gtr_eval.retrieval.presets import PRESETS

    texts = [t for folder in folders.values() for t in corpus_texts(folder)]
    built = {}
    for seed, (name, shape) in enumerate(shapes.items()):
        t0 = time.perf_counter()
        folder = build_gtr(work / "build" / name, shape, seed=seed, texts=texts,
                           tokenizer_vocab=TOKENIZER_VOCAB[mode], weights_dtype="float16", name=name,
                           max_seq_length=MAX_LENGTH[mode])  # fmt: skip
        snap = install_as_hub_snapshot(folder, work / "hub", PRESETS[name].hub_id)
        built[name] = {"path": str(snap), "shape": asdict(shape), "build_s": time.perf_counter() - t0,
                       "parameters": _parameters(snap)}  # fmt: skip
    return built


def _parameters(folder: Path) -> int:
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        return sum(_prod(f.get_slice(k).get_shape()) for k in f.keys())


def _prod(shape) -> int:
    n = 1
    for x in shape:
        n *= int(x)
    return n


def token_counts(model: Path, folder: Path, max_length: int = 512) -> dict:
    """Corpus tokens as the encoder sees them (truncated to `max_length`), and words."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model))
    texts = corpus_texts(folder)
    lengths = [len(ids) for ids in tok(texts, truncation=True, max_length=max_length)["input_ids"]]
    words = sum(len(t.split()) for t in texts)
    return {
        "docs": len(texts),
        "tokens": sum(lengths),
        "words": words,
        "tokens_per_word": sum(lengths) / words,
    }


# -- children: gtr-eval runs and beir, each in its own process --------------------------------------


def child_runs(spec: dict) -> dict:
    """In a child process: each `gtr-eval run` of `spec["runs"]` through the program's own entry point,
    with the GPU's peak memory per run; then the fp16 probe."""
    import sentence_transformers  # noqa: F401  (imported before the clock starts, as on beir's side)
    import torch

    from gtr_eval.cli import main

    cuda = torch.cuda.is_available()
    _warm_up(cuda)
    out = []
    for args in spec["runs"]:
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        sys.argv = ["gtr-eval", *args]
        t0 = time.perf_counter()
        try:
            main()
        except SystemExit as e:
            if e.code not in (0, None):
                raise
        wall = time.perf_counter() - t0
        gc.collect()
        out.append({"wall_s": wall, **_cuda_memory(cuda)})
        if cuda:
            torch.cuda.empty_cache()
    probe = (
        fp16_probe(Path(spec["probe"]["model"]), Path(spec["probe"]["folder"])) if spec.get("probe") else None
    )
    return {"runs": out, "probe": probe}


def _warm_up(cuda: bool) -> None:
    """CUDA's context and cuBLAS' handle, made before any clock starts (on both sides)."""
    import torch

    if cuda:
        x = torch.ones((256, 256), device="cuda")
        (x @ x).sum().item()


def _cuda_memory(cuda: bool) -> dict:
    import torch

    if not cuda:
        return {"gpu_peak_mib": None, "gpu_left_mib": None}
    return {
        "gpu_peak_mib": torch.cuda.max_memory_allocated() / MIB,
        "gpu_left_mib": torch.cuda.memory_allocated() / MIB,
    }


def fp16_probe(model: Path, folder: Path, n: int = PROBE_DOCS) -> dict:
    """The first `n` documents through the run's loader in fp32 and in fp16 on the default device:
    non-finite vectors and the worst cosine between the two."""
    import numpy as np
    import torch

    from gtr_eval.retrieval.loaders import load_sentence_transformer

    texts = corpus_texts(folder)[:n]
    vectors = {}
    for dtype in ("fp32", "fp16"):
        m = load_sentence_transformer(model, dtype=dtype, max_length=512)
        vectors[dtype] = m.encode(texts, batch_size=32, convert_to_numpy=True).astype(np.float32)
        del m
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    a, b = vectors["fp32"], vectors["fp16"]
    finite = np.isfinite(b).all(axis=1)
    cos = (a * b).sum(1)[finite] / np.maximum(
        np.linalg.norm(a[finite], axis=1) * np.linalg.norm(b[finite], axis=1), 1e-12
    )
    return {
        "docs": n,
        "nonfinite_vectors": int((~finite).sum()),
        "min_cosine_to_fp32": float(cos.min()) if len(cos) else None,
    }


def beir_child(folder: str, model: str, batch_size: int) -> None:
    import torch
    from beir.datasets.data_loader import GenericDataLoader
    from beir.retrieval import models
    from beir.retrieval.evaluation import EvaluateRetrieval
    from beir.retrieval.search.dense import DenseRetrievalExactSearch

    cuda = torch.cuda.is_available()
    _warm_up(cuda)
    t0 = time.perf_counter()
    corpus, queries, qrels = GenericDataLoader(data_folder=folder).load(split="test")
    dres = DenseRetrievalExactSearch(
        models.SentenceBERT(model), batch_size=batch_size, show_progress_bar=False
    )
    retriever = EvaluateRetrieval(dres, score_function="dot", k_values=[1, 3, 5, 10, 100, 1000])
    results = retriever.retrieve(corpus, queries)
    ndcg, _map, _recall, _p = retriever.evaluate(qrels, results, retriever.k_values)
    wall = time.perf_counter() - t0
    print(
        json.dumps(
            {"ndcg@10": ndcg["NDCG@10"], "ndcg@100": ndcg["NDCG@100"], "wall_s": wall, **_cuda_memory(cuda)}
        )
    )


def run_args(model: str, folder: Path, results: Path, extra: list[str], mode: str) -> list[str]:
    """`gtr-eval run` as a user types it (the preset's settings); --quick shortens the texts.  Stored
    under the model's name (`--name`), whatever its dtype: each dtype has a results folder of its own."""
    short = [] if mode == "full" else ["--max-length", str(MAX_LENGTH[mode])]
    return ["run", "-m", model, "-d", str(folder), "--no-cache", "--results-dir", str(results), "--overwrite",
            "--name", model, "--quiet", *short, *extra]  # fmt: skip


def spawn(args: list[str], env: dict, timeout: float) -> dict:
    out = run_child([sys.executable, __file__, *args], env, timeout=timeout)
    return {"process_wall_s": out["wall_s"], "peak_rss_mib": out["peak_rss_mib"], **last_json(out["stdout"])}


def describe_run(result_file: Path, measured: dict, tokens: dict) -> dict:
    """One run's figures from its stored result: throughput, memory, each stage's share of its time.

    The model loads at its first use, inside the corpus encode (`--no-cache`), and its manifest
    counts that time twice (`load_model_s` and `encode_corpus_s`): encoding is the difference."""
    stored = json.loads(result_file.read_text())
    m, t = stored["manifest"]["spec"], stored["manifest"]["timings"]
    wall = measured["wall_s"]
    corpus_s = t["encode_corpus_s"] - t.get("load_model_s", 0.0)
    stages = {"encode": corpus_s + t.get("encode_queries_s", 0), "search": t.get("search_s", 0),
              "evaluation": t.get("evaluate_s", 0), "io_load_data": t.get("load_data_s", 0),
              "load_model": t.get("load_model_s", 0)}  # fmt: skip
    stages["rest"] = max(0.0, wall - sum(stages.values()))  # writing the results and run file, set-up
    return {
        "dtype": m["dtype"], "backend": m["backend"], "device": m.get("device"), "batch_size": m["batch_size"],
        "ndcg@10": stored["metrics"]["ndcg@10"], "ndcg@100": stored["metrics"]["ndcg@100"],
        "wall_s": wall, "timings": t, "encode_corpus_only_s": corpus_s,
        "docs_per_s": tokens["docs"] / corpus_s, "tokens_per_s": tokens["tokens"] / corpus_s,
        "share": {k: v / wall for k, v in stages.items()},
        "gpu_peak_mib": measured["gpu_peak_mib"], "gpu_left_after_mib": measured["gpu_left_mib"],
    }  # fmt: skip


# -- exact search -----------------------------------------------------------------------------------


def search_section(n_docs: int, dim: int, n_queries: int, k: int, device: str, seed: int = 0) -> dict:
    """Ours over fp16 shards on the host against torch.topk over the fp16 matrix held on `device`."""
    import numpy as np
    import torch

    from gtr_eval.retrieval.search import array_chunks, exact_search

    g = torch.Generator(device).manual_seed(seed)
    corpus = torch.nn.functional.normalize(torch.randn(n_docs, dim, generator=g, device=device), dim=1).half()
    queries = torch.nn.functional.normalize(torch.randn(n_queries, dim, generator=g, device=device), dim=1)
    host, q_host = corpus.cpu().numpy(), queries.cpu().numpy()
    cuda = device.startswith("cuda")
    del corpus
    _sync_reset(cuda)

    t0 = time.perf_counter()
    _s, ours_i = exact_search(q_host, array_chunks(host, SHARD_ROWS), k, device=device)
    _sync_reset(cuda, done=True)
    ours = {"search_s": time.perf_counter() - t0, **_cuda_memory(cuda)}

    _sync_reset(cuda)
    t0 = time.perf_counter()
    on_device = torch.from_numpy(host).to(device)
    _sync_reset(cuda, done=True)
    transfer = time.perf_counter() - t0
    t0 = time.perf_counter()
    peer_i = _torch_topk_blocks(queries.to(on_device.dtype), on_device, k)
    _sync_reset(cuda, done=True)
    peer = {"search_s": time.perf_counter() - t0, "transfer_s": transfer, **_cuda_memory(cuda)}
    del on_device
    same = float(np.mean([set(a[:10]) == set(b[:10]) for a, b in zip(ours_i, peer_i, strict=True)]))
    record = {"docs": n_docs, "dim": dim, "queries": n_queries, "top_k": k, "device": device,
              "vectors": "float16, unit norm, seeded normal", "ours": ours, "torch_topk_blocks": peer,
              "same_top10": same, "ratio_time": ours["search_s"] / peer["search_s"],
              "faiss_gpu": _faiss_gpu(host, q_host, k) if cuda else {"absent": "no GPU"}}  # fmt: skip
    if cuda:
        torch.cuda.empty_cache()
    return record


def _sync_reset(cuda: bool, done: bool = False) -> None:
    import torch

    if cuda:
        torch.cuda.synchronize()
        if not done:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()


def _torch_topk_blocks(q, d, k: int):
    """The plain way: per block of rows one product and torch.topk, merged into a running top k."""
    import torch

    best_s = torch.full((q.shape[0], 0), -torch.inf, device=q.device, dtype=q.dtype)
    best_i = torch.zeros((q.shape[0], 0), dtype=torch.int64, device=q.device)
    for start in range(0, d.shape[0], PEER_BLOCK_ROWS):
        s = q @ d[start : start + PEER_BLOCK_ROWS].T
        vs, vi = torch.topk(s, min(k, s.shape[1]), dim=1)
        all_s, all_i = torch.cat([best_s, vs], 1), torch.cat([best_i, vi + start], 1)
        best_s, pos = torch.topk(all_s, min(k, all_s.shape[1]), dim=1)
        best_i = torch.gather(all_i, 1, pos)
    return best_i.cpu().numpy()


def _faiss_gpu(host, q_host, k: int) -> dict:
    try:
        import faiss
    except ImportError:
        return {"absent": "faiss is not installed on this machine (no wheel carried)"}
    if not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() < 1:
        return {"absent": "this faiss has no GPU support"}
    import numpy as np

    t0 = time.perf_counter()
    index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, faiss.IndexFlatIP(host.shape[1]))
    index.add(np.asarray(host, dtype=np.float32))
    index.search(q_host, k)
    return {"search_s": time.perf_counter() - t0, "includes": "add + search"}


# -- the whole public BEIR --------------------------------------------------------------------------


def projection(base_tokens_per_s: dict[str, float], search_flops: float | None) -> dict:
    """The 14 public BEIR sets with gtr-t5-base (measured tokens/s) and gtr-t5-xxl (the same rate
    scaled by the presets' compute parameters, as `run --plan` counts), per dtype."""
    from gtr_eval.data import registry
    from gtr_eval.pipeline.plan import TOKENS_PER_WORD, _tokens
    from gtr_eval.retrieval.presets import PRESETS

    base, xxl = PRESETS["gtr-t5-base"], PRESETS["gtr-t5-xxl"]
    sets = []
    for name in registry.GROUPS["beir"].members:
        info = registry.get(name)
        tokens = info.num_docs * _tokens(info.doc_words, 512) + info.num_queries * _tokens(
            info.query_words, 512
        )
        search = 2 * info.num_queries * info.num_docs * base.dim / search_flops if search_flops else 0.0
        sets.append({"dataset": name, "docs": info.num_docs, "queries": info.num_queries,
                     "tokens_estimated": tokens, "search_s": search})  # fmt: skip
    total_tokens = sum(s["tokens_estimated"] for s in sets)
    total_search = sum(s["search_s"] for s in sets)
    hours = {}
    for dtype, tps in base_tokens_per_s.items():
        hours[dtype] = {
            "gtr-t5-base": (total_tokens / tps + total_search) / 3600,
            "gtr-t5-xxl": (total_tokens / (tps * base.compute_params / xxl.compute_params) + total_search)
            / 3600,
        }
    return {
        "datasets": sets,
        "tokens_estimated": total_tokens,
        "hours": hours,
        "how": f"tokens = documents x min(words x {TOKENS_PER_WORD} + 2, 512) + the same for queries, from "
        "the registry's counts and average lengths (an estimate: no dataset's T5 token count is stored); "
        "gtr-t5-xxl's rate = gtr-t5-base's x compute parameters "
        f"{base.compute_params:,} / {xxl.compute_params:,} (attention ignored); exact search at the rate "
        "measured in section 4",
    }


# -- the whole check --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    """What every section shares: the mode, the device, the data, the models and their token counts."""

    work: Path
    mode: str
    cuda: bool
    folders: dict[str, Path]
    models: dict[str, dict]
    tokens: dict[str, dict[str, dict]]  # size -> dataset -> token_counts
    cpu_check: Path
    env: dict[str, str]
    budget_s: float
    t_start: float
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return next(iter(self.models))

    def left_s(self) -> float:
        """What a child may take: the budget left, plus a minute's grace to finish (at least 30 s)."""
        return max(30.0, self.budget_s + 60 - (time.perf_counter() - self.t_start))

    def guarded(self, what: str, section, *args):
        try:
            return section(*args)
        except (RuntimeError, TimeoutError) as e:
            self.skipped[what] = f"failed: {str(e)[-600:]}"
            print(f"[failed] {what}: {str(e)[-2000:]}", flush=True)
            return None

    def in_budget(self, what: str) -> bool:
        if time.perf_counter() - self.t_start < self.budget_s:
            return True
        self.skipped[what] = f"not run: past the {self.budget_s:.0f} s budget"
        print(f"[skip] {what}", flush=True)
        return False


def set_up(work: Path, args: argparse.Namespace, cuda: bool, t_start: float) -> Setup:
    mode = "quick" if args.quick else "full"
    data = args.data or (ROOT / ".gpu-data" / "beir" if (ROOT / ".gpu-data" / "beir").is_dir() else BEIR)
    names = (args.datasets or ("scifact" if args.quick else ",".join(DATASETS))).split(",")
    folders = {n: data / n for n in names}
    if args.quick:
        folders = {n: subset_folder(data / n, work / "data" / n, **QUICK_SUBSET) for n in names}
    shapes = QUICK_SHAPES if args.quick else SHAPES
    models = build_models(work, {s: shapes[s] for s in args.sizes.split(",")}, folders, mode)
    print(
        "[built] " + ", ".join(f"{n} {m['parameters']:,} parameters" for n, m in models.items()), flush=True
    )
    tokens = {
        s: {n: token_counts(Path(m["path"]), f, MAX_LENGTH[mode]) for n, f in folders.items()}
        for s, m in models.items()
    }
    env = {
        "HF_HUB_CACHE": str(work / "hub"),
        "HF_HUB_OFFLINE": "1",
        "GTR_EVAL_CACHE_DIR": str(work / "cache"),
    }
    cpu_check = subset_folder(data / "scifact", work / "cpu-check" / "scifact", **CPU_CHECK_SUBSET)
    return Setup(work, mode, cuda, folders, models, tokens, cpu_check, env, args.budget_s, t_start)


def size_runs(st: Setup, size: str) -> tuple[dict, dict]:
    """2 and 5: one child process runs every `gtr-eval run` of `size`, then the fp16 probe."""
    plan = []
    for dtype in ("default", *DTYPES[1:]):
        for n, folder in st.folders.items():
            extra = [] if dtype == "default" else ["--dtype", dtype]
            plan.append((n, dtype, folder, run_args(size, folder, st.work / "res" / dtype, extra, st.mode)))
    if st.cuda and size == st.base:  # 5: the same model with --device cpu and on the GPU
        for dev in ("cpu", "cuda"):
            res = st.work / "res" / dev
            plan.append(
                (
                    "cpu-check",
                    dev,
                    st.cpu_check,
                    run_args(size, st.cpu_check, res, ["--device", dev], st.mode),
                )
            )
    spec = st.work / f"spec-{size}.json"
    probe = {"model": st.models[size]["path"], "folder": str(next(iter(st.folders.values())))}
    spec.write_text(json.dumps({"runs": [p[3] for p in plan], "probe": probe}))
    got = spawn(["--child-runs", str(spec)], st.env, timeout=st.left_s())
    runs: dict = {}
    for (n, dtype, folder, a), measured in zip(plan, got["runs"], strict=True):
        result = Path(a[a.index("--results-dir") + 1]) / size / f"{folder.name}.json"
        toks = st.tokens[size].get(n) or token_counts(
            Path(st.models[size]["path"]), folder, MAX_LENGTH[st.mode]
        )
        runs.setdefault(n, {})[dtype] = describe_run(result, measured, toks)
    print(f"[runs] {size}: " + "; ".join(f"{n} {d} {r['tokens_per_s']:,.0f} tokens/s NDCG@10 {r['ndcg@10']:.4f}"
                                          for n, rs in runs.items() for d, r in rs.items()), flush=True)  # fmt: skip
    return runs, got["probe"]


def beir_section(st: Setup, runs: dict) -> dict:
    """3: beir's DenseRetrievalExactSearch with the same model and batch size, on SciFact."""
    if "scifact" not in st.folders or st.base not in runs or not st.in_budget("beir"):
        return {"absent": "not run (needs scifact and the base runs)"}
    ours = runs[st.base]["scifact"]["default"]
    env = st.env
    if site := os.environ.get(BEIR_SITE):  # the device call's beir wheels
        env = {**env, "PYTHONPATH": os.pathsep.join([site, os.environ.get("PYTHONPATH", "")])}
    peer = spawn(["--child-beir", str(st.folders["scifact"]), st.models[st.base]["path"], str(ours["batch_size"])],
                 env, timeout=st.left_s())  # fmt: skip
    keys = ("wall_s", "ndcg@10", "ndcg@100", "gpu_peak_mib")
    diff = {m: ours[m] - peer[m] for m in ("ndcg@10", "ndcg@100")}
    return {"model": st.base, "dataset": "scifact", "batch_size": ours["batch_size"], "dtype": ours["dtype"],
            "ours": {k: ours[k] for k in keys}, "beir": {k: peer[k] for k in keys},
            "ratio_time": ours["wall_s"] / peer["wall_s"], "ndcg_diff": diff, "tolerance": BEIR_TOLERANCE,
            "ndcg_equal": all(abs(d) <= BEIR_TOLERANCE for d in diff.values()),
            "timed": "each side in its own process, from its first step (loading the data) to its scores; "
                     "imports and CUDA's start before the clock on both sides"}  # fmt: skip


def cpu_gpu_section(st: Setup, runs: dict) -> dict:
    """5: the base model's NDCG@10 with --device cpu against the GPU's."""
    if not st.cuda:
        return {"absent": "no GPU: runs only where CUDA is available"}
    if "cpu-check" not in runs.get(st.base, {}):
        return {"absent": "not run"}
    c, g = runs[st.base]["cpu-check"]["cpu"], runs[st.base]["cpu-check"]["cuda"]
    diff = {m: g[m] - c[m] for m in ("ndcg@10", "ndcg@100")}
    return {"model": st.base, "dataset": f"scifact subset {CPU_CHECK_SUBSET}", "dtype": c["dtype"],
            "cpu": {m: c[m] for m in diff}, "gpu": {m: g[m] for m in diff}, "diff": diff,
            "tolerance": CPU_GPU_TOLERANCE,
            "within_tolerance": all(abs(d) <= CPU_GPU_TOLERANCE for d in diff.values())}  # fmt: skip


def base_rates(st: Setup, runs: dict) -> dict[str, float]:
    """The base model's corpus tokens/s over all its datasets, per dtype (the default under its own)."""
    rates = {}
    for dtype in ("default", *DTYPES[1:]):
        rs = {n: runs[st.base][n][dtype] for n in st.folders}
        tokens = sum(st.tokens[st.base][n]["tokens"] for n in rs)
        name = next(iter(rs.values()))["dtype"] if dtype == "default" else dtype
        rates[name] = tokens / sum(r["encode_corpus_only_s"] for r in rs.values())
    return rates


def fp16_verdict(runs: dict, probes: dict) -> dict:
    """fp16 against the default per size: non-finite vectors in the probe, and the score collapsing."""
    out = {}
    for size, by_set in runs.items():
        drops = {
            n: rs["fp16"]["ndcg@10"] - rs["default"]["ndcg@10"] for n, rs in by_set.items() if "fp16" in rs
        }
        probe = probes.get(size) or {}
        collapsed = any(d < -0.5 * by_set[n]["default"]["ndcg@10"] for n, d in drops.items())
        out[size] = {"probe": probe, "ndcg@10_fp16_minus_default": drops,
                     "overflows": bool(probe.get("nonfinite_vectors")) or collapsed}  # fmt: skip
    out["note"] = FP16_NOTE
    return out


FP16_NOTE = (
    "seeded random weights lack the large activations trained T5 checkpoints build up, which is what overflows "
    "fp16 there: finite fp16 vectors here do not show that fp16 is safe for the real gtr-t5 weights. The default "
    "dtype is fp32 on every device (`--dtype fp32` unless another is given), so the default never meets it."
)


def measure(st: Setup) -> dict:
    """The base size first, then beir and search, then the larger sizes: past the budget, what is
    skipped is the least needed.  A child that fails or overruns is recorded, and the rest goes on."""
    runs, probes = {}, {}
    beir, search = {"absent": "not run"}, {}
    for size in st.models:
        if st.in_budget(f"runs of {size}"):
            got = st.guarded(f"runs of {size}", size_runs, st, size)
            if got is not None:
                runs[size], probes[size] = got
        if size == st.base:
            beir = st.guarded("beir", beir_section, st, runs) or {"absent": "failed (see skipped)"}
            if st.in_budget("search"):
                device = "cuda" if st.cuda else "cpu"
                search = st.guarded("search", search_section, *SEARCH[st.mode], device) or {}
    flops = (
        2 * search["queries"] * search["docs"] * search["dim"] / search["ours"]["search_s"]
        if search
        else None
    )
    rates = base_rates(st, runs) if st.base in runs else {}
    return {
        "models": st.models,
        "tokenizer": f"BPE, {TOKENIZER_VOCAB[st.mode]:,} pieces, trained on the corpora run (not T5's SentencePiece)",
        "max_length": MAX_LENGTH[st.mode],
        "data": {
            s: {n: {"folder": f.name, **st.tokens[s][n]} for n, f in st.folders.items()} for s in st.models
        },
        "default_dtype": next((r["default"]["dtype"] for rs in runs.values() for r in rs.values()), None),
        "runs": runs,
        "base_tokens_per_s": rates,
        "fp16": fp16_verdict(runs, probes),
        "beir": beir,
        "search": search or {"absent": "not run"},
        "cpu_vs_gpu": cpu_gpu_section(st, runs),
        "projection": projection(rates, flops) if rates else {"absent": "no base runs"},
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="CPU, tiny sizes, a SciFact subset")
    ap.add_argument("--prepare", action="store_true", help="fill .gpu-data/ and .whl/ here, print sizes")
    ap.add_argument(
        "--data", type=Path, default=None, help="[default: .gpu-data/beir if there, else ../shared]"
    )
    ap.add_argument("--output", type=Path, default=None,
                    help="folder of the record [default: benchmarks/results on a GPU, else a temporary one]")  # fmt: skip
    ap.add_argument("--sizes", default=",".join(SHAPES), help="the first is the base of sections 3, 5, 6")
    ap.add_argument("--datasets", default=None, help=f"[default: {','.join(DATASETS)}; --quick: scifact]")
    ap.add_argument("--budget-s", type=float, default=BUDGET_S, help="skip what is left past this")
    args = ap.parse_args(argv)
    if args.prepare:
        return prepare()
    t_start = time.perf_counter()
    import torch

    cuda = torch.cuda.is_available()
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
        st = set_up(Path(tmp), args, cuda, t_start)
        record = {
            "what": "GTR-shaped models (seeded random weights) through `gtr-eval run`; beir side by side; exact "
            "search; CPU/GPU agreement; whole-BEIR projection",
            "device": torch.cuda.get_device_name(0) if cuda else "cpu (no GPU)",
            "versions": {p: _version(p) for p in ("torch", "sentence-transformers", "transformers", "beir")},
            **measure(st),
            "skipped": st.skipped,
            "total_s": time.perf_counter() - st.t_start,
        }
    if not cuda:
        record["gpu_fields"] = "absent: no GPU here (GPU memory null; cpu_vs_gpu and faiss_gpu absent)"
    # gpu.json in benchmarks/results/ only from a GPU
    folder = args.output or (RESULTS if cuda else Path(tempfile.mkdtemp(prefix="bench-gpu-record-")))
    write_record(NAME, record, quick=args.quick, folder=folder)
    return record


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child-runs":
        print(json.dumps(child_runs(json.loads(Path(sys.argv[2]).read_text()))))
    elif len(sys.argv) > 1 and sys.argv[1] == "--child-beir":
        beir_child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main()
