"""A user's install, as the README's first lines give it: `benchmarks/check_install.sh` makes an empty
venv, installs torch 2.13.0 and then `pip install .` from this checkout, checks that pip brought no
CUDA libraries, test tools or peers, and runs the demo with bm25 from the installed package."""

from __future__ import annotations

import json
import subprocess

import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow


def test_pip_install_then_a_demo_run_stores_a_result(tmp_path):
    out = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "check_install.sh"), str(tmp_path)],
        capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    said = out.stdout[-3000:] + out.stderr[-3000:]
    assert out.returncode == 0, said
    assert f"gtr_eval from {tmp_path / 'venv'}" in out.stdout, said  # the installed copy, not the checkout
    installed = (tmp_path / "installed.txt").read_text().lower().split()
    assert any(line.startswith("gtr-eval==") for line in installed), installed
    assert not any(line.startswith(("nvidia-", "pytest==", "beir==", "pyserini==")) for line in installed)
    stored = json.loads((tmp_path / "results" / "bm25" / "demo.json").read_text())
    assert 0 < stored["metrics"]["ndcg@10"] <= 1
