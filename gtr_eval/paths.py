"""Where things live by default: data, results and the user cache, each overridable by environment."""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "GTR_EVAL_DATA_DIR"
RESULTS_DIR_ENV = "GTR_EVAL_RESULTS_DIR"
CACHE_DIR_ENV = "GTR_EVAL_CACHE_DIR"

BUNDLED = Path(__file__).resolve().parent / "data" / "bundled"


def default_cache_dir() -> Path:
    """`$GTR_EVAL_CACHE_DIR`, else the user cache directory (honours `XDG_CACHE_HOME`)."""
    if env := os.environ.get(CACHE_DIR_ENV):
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("gtr-eval"))
