#!/bin/bash
# The device call of benchmarks/bench_gpu.py (benchmarks/README.md, section 8): carry [".whl", ".gpu-data"],
# filled here by `python benchmarks/bench_gpu.py --prepare`; the record and the log come back under $OUT.
i="python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target" && $i /tmp/site .whl/run/*.whl && $i /tmp/site-beir .whl/beir/*.whl && export PYTHONPATH=/tmp/site:$PWD BENCH_GPU_BEIR_SITE=/tmp/site-beir PYTHONUNBUFFERED=1 && set -o pipefail && python3 benchmarks/bench_gpu.py --output "${OUT:?}" 2>&1 | tee "$OUT/gpu.log"
