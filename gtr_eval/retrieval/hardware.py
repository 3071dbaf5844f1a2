"""Which CPU this is, for the two choices that depend on it: the encoder backend and the search kernel.

torch's CPU wheels do their fp32 matrix products with Intel's MKL, which takes its fastest code
paths on Intel CPUs only.  On the 2-core benchmark machines (benchmarks/README.md) that decided
both choices, in opposite directions:

- AMD EPYC: ONNX Runtime encoded all-MiniLM-L6-v2 2.2x faster than torch, and FAISS's `knn`
  searched top-1000 1.7x faster than torch's matmul + topk;
- Intel Xeon (AVX-512): torch in batches of 16 ran SciFact end to end 1.13x faster than ONNX
  Runtime (153.0 s vs 173.4 s), and torch's matmul + topk searched top-1000 1.7x (384-d) to 2.6x
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
