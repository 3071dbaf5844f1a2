"""Where things live by default: data, results and the user cache, each overridable by environment.

The environment is read here and only here, when a command or an API call runs (not at import), so
`gtr-eval run` and `api.run` find the same folders.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "GTR_EVAL_DATA_DIR"
RESULTS_DIR_ENV = "GTR_EVAL_RESULTS_DIR"
CACHE_DIR_ENV = "GTR_EVAL_CACHE_DIR"

DATA_DIR = Path("data")
"""Datasets when neither the caller nor `$GTR_EVAL_DATA_DIR` says where (relative to the working folder)."""
RESULTS_DIR = Path("runs")
"""The results store when neither the caller nor `$GTR_EVAL_RESULTS_DIR` says where: not `results/`, a
checkout's committed results, so a newcomer's first run computes their own (runs/ is git-ignored)."""

BUNDLED = Path(__file__).resolve().parent / "data" / "bundled"


def data_dir(given: Path | str | None = None) -> Path:
    """`given`, else `$GTR_EVAL_DATA_DIR`, else ./data."""
    return _folder(given, DATA_DIR_ENV, DATA_DIR)


def results_dir(given: Path | str | None = None) -> Path:
    """`given`, else `$GTR_EVAL_RESULTS_DIR`, else RESULTS_DIR (./runs)."""
    return _folder(given, RESULTS_DIR_ENV, RESULTS_DIR)


def cache_dir(given: Path | str | None = None, no_cache: bool = False) -> Path | None:
    """The cache in use: None with `no_cache` (a temporary folder, removed afterwards), else `given`,
    else `default_cache_dir()`."""
    return None if no_cache else (Path(given) if given else default_cache_dir())


def default_cache_dir() -> Path:
    """`$GTR_EVAL_CACHE_DIR`, else the user cache directory (honours `XDG_CACHE_HOME`)."""
    if env := os.environ.get(CACHE_DIR_ENV):
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("gtr-eval"))


def _folder(given: Path | str | None, env: str, default: Path) -> Path:
    if given is not None and str(given) != "":
        return Path(given)
    return Path(os.environ.get(env) or default)
