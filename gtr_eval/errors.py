"""The failures one (system, dataset) pair may have without stopping a sweep, each with its stage.

A sweep (`-d beir`) reports such a pair and goes on with the others: a dataset that does not download
(`download`), bad data (`data`), a stored run a composed system needs that is missing or made from
other data (`input`), a model that cannot be found, loaded or exported (`model`), a search the corpus
is too large for (`size`: exact MaxSim over more documents than it allows), a stored result made
from other inputs (`reuse`: refused, not replaced), or too little memory (`is_out_of_memory`).
Anything else is a bug and stops the run.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class PairError(Exception):
    """A failure of one pair at a known stage; the message says what and where."""

    stage = "run"


class ModelError(PairError, RuntimeError):
    """A model that cannot be resolved (hub, folder) or loaded."""

    stage = "model"


class TooLarge(PairError, ValueError):
    """A search this corpus is too large for (and an option that would allow it)."""

    stage = "size"


class Refused(PairError, ValueError):
    """A stored result was made from other inputs than asked for now: it is neither served nor replaced."""

    stage = "reuse"


def is_out_of_memory(e: BaseException) -> bool:
    """A host `MemoryError`, or torch's (CUDA / MPS) `OutOfMemoryError`."""
    return isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError"


def isolated(e: BaseException) -> bool:
    """Whether `e` is a pair's own failure (reported, the sweep goes on) rather than a bug."""
    return isinstance(e, PairError) or is_out_of_memory(e)


class PairsFailed(RuntimeError):
    """Pairs of a sweep failed (or were refused); raised by the Python API once the others are done
    (`failures="raise"`).  `results` holds what succeeded, `results.failures` what did not; the
    first failure's own exception is the `__cause__`."""

    def __init__(self, results):
        failures = results.failures
        listed = "; ".join(str(f) for f in failures[:3]) + ("; …" if len(failures) > 3 else "")
        super().__init__(f"{len(failures)} pair{'' if len(failures) == 1 else 's'} failed: {listed}")
        self.results, self.failures = results, failures


class Mistake(ValueError):
    """A mistake in what was asked (an unknown model, dataset or metric name, a folder that does not
    exist): said in one line, with the closest known name, before any work starts."""


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`; did you mean X?` for the known name closest to `name` (case aside), or nothing."""
    by_lower = {k.lower(): k for k in known}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.6)
    return f"; did you mean {by_lower[close[0]]}?" if close else ""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a command, with what was kept: the pairs that had finished (stored) and, for a
    stage cut short, its shards already saved (`saved`).  The same command resumes from both."""

    def __init__(self, done: int | None = None, failed: int = 0, saved: str | None = None):
        kept = [saved] if saved else []
        if done is not None:
            kept.append(f"{done} pair{'' if done == 1 else 's'} done")
        super().__init__(f"interrupted: {'; '.join(kept + ['rerun the same command to resume'])}")
        self.done, self.failed, self.saved = done, failed, saved
