"""How tests call the command line in a fresh process: one spelling of the command, one runner.

Use `gtr_eval(*args, **kw)` for a command run to its end (output captured as text), and `GTR_EVAL`
for a process a test must watch, signal or kill while it runs (`subprocess.Popen`).  Tests that only
check what a command prints or stores can use click's `CliRunner` in-process instead, which saves the
start-up of a Python process with torch.
"""

from __future__ import annotations

import subprocess
import sys

GTR_EVAL = [sys.executable, "-m", "gtr_eval.cli"]


def gtr_eval(*args, timeout: float | None = 600, **kw) -> subprocess.CompletedProcess:
    """`gtr-eval ARGS` in a new process, its stdout and stderr captured as text (kw: env, cwd, ...)."""
    return subprocess.run([*GTR_EVAL, *map(str, args)], capture_output=True, text=True, timeout=timeout, **kw)
