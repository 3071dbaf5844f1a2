"""Which CPU this is, for the two choices that depend on it (the encoder backend and the search kernel),
and how a process's memory allocator may treat activations (`reuse_freed_memory`: the `gtr-eval`
program calls it for itself; the library never changes the process it is imported into).

torch's CPU wheels do their fp32 matrix products with Intel's MKL, which takes its fastest code
paths on Intel CPUs only.  On the 2-core benchmark machines (benchmarks/README.md) that decided
both choices, in opposite directions:

- AMD EPYC: ONNX Runtime encoded all-MiniLM-L6-v2 2.2x faster than torch, and FAISS's `knn`
  searched top-1000 1.7x faster than torch's matmul + topk;
- Intel Xeon (AVX-512): torch in batches of 16 ran SciFact end to end 1.25x faster than ONNX
  Runtime (127.1 s vs 159.5 s), and torch's matmul + topk searched top-1000 1.7x (384-d) to 2.6x
  (768-d) faster than FAISS's `knn`.

Both choices give the same vectors and rankings up to float rounding, so this decides speed only.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

# Transformers on the CPU run in batches of at most this many texts, whatever `--batch-size` says
# (see `encoders`): small batches keep their activations in the CPU's caches.
CPU_BATCH = 16


def cpu_batch(batch_size: int) -> int:
    """The batch size a transformer runs with on the CPU when `batch_size` is asked for."""
    return max(1, min(batch_size, CPU_BATCH))


@functools.cache
def cpu_vendor() -> str:
    """`GenuineIntel`, `AuthenticAMD`, … (Linux); elsewhere what `platform.processor()` says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("vendor_id"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()  # Windows names the vendor in it ("Intel64 Family 6 …, GenuineIntel")


def torch_fastest_on_cpu() -> bool:
    """Whether torch's own CPU kernels beat ONNX Runtime and FAISS here: MKL on an Intel CPU."""
    import torch

    return "GenuineIntel" in cpu_vendor() and torch.backends.mkl.is_available()


# glibc serves blocks over its mmap threshold (128 KiB, raised only by frees of bigger blocks) with
# fresh mmaps, and returns freed memory at the top of the heap beyond its trim threshold: each
# batch's activations (16 × 256 tokens × 1,536 floats = 25 MB per MiniLM feed-forward layer) come back
# as new pages the kernel must fault in and zero.  With these limits they are reused instead.
# all-MiniLM-L6-v2, 1,000 SciFact documents, 2-core Intel Xeon: 26.0 s → 24.1 s (three runs each),
# 887k → 229k minor page faults.  The cost is freed memory kept for reuse (at most the trim threshold
# at the top of the heap) instead of being handed back at once.
MMAP_THRESHOLD = 256 << 20
TRIM_THRESHOLD = 512 << 20


@functools.cache
def reuse_freed_memory() -> bool:
    """Make glibc's malloc keep freed blocks of up to `MMAP_THRESHOLD` for reuse (once a process).

    A process-wide setting, so only a program that owns its process calls it (`cli.main`).

    True when the limits were set; False where there is no glibc (macOS, Windows, musl)."""
    import ctypes
    import ctypes.util

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # malloc.h
    ok = libc.mallopt(m_mmap_threshold, MMAP_THRESHOLD) == 1
    return libc.mallopt(m_trim_threshold, TRIM_THRESHOLD) == 1 and ok
