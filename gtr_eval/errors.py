"""What can go wrong, and the exit code each kind of failure ends a `gtr-eval` command with.

One contract for every command (`exit_code` reads it from `EXIT_CODES`; the CLI applies it):

    code  meaning                                                  raised as
    0     done
    2     a mistake in what was asked, found before any work:      `Mistake`, click's usage errors;
          one line, printed once                                   `DataError` raised alone (bad input)
    3     a refusal, or a failed pair in a sweep (the others       `Refused`, `PairError` (and its
          finish)                                                  kinds: `ModelError`, `TooLarge`)
    1     an unexpected error (a bug, or a failure outside these)  anything else
    130   Ctrl-C                                                   `Interrupted`, `KeyboardInterrupt`

A check of the input (an unknown name, a folder that is not there, a malformed file, an option that
does not fit) raises `Mistake` with one line that says what and where; names it does not know it
suggests with `did_you_mean` / `unknown` (case folded, the closest few, then where to see them all).

The failures one (system, dataset) pair may have without stopping a sweep, each with its stage:
a dataset that does not download (`download`), bad data (`data`), a stored run a composed system
needs that is missing or made from other data (`input`), a model that cannot be found, loaded or
exported (`model`), a search the corpus is too large for (`size`: exact MaxSim over more documents
than it allows), a stored result made from other inputs (`reuse`: refused, not replaced), or too
little memory (`is_out_of_memory`).  Anything else is a bug and stops the run.
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
    exist, options that do not fit together): said in one line, with the closest known name, before
    any work starts.  Exit code 2."""


def closest(name: str, known: Iterable[str], n: int = 3) -> list[str]:
    """The (at most `n`) known names closest to `name`, case folded, closest first (not `name` itself)."""
    by_folded = {k.casefold(): k for k in known if k != name}
    return [
        by_folded[c] for c in difflib.get_close_matches(name.casefold(), list(by_folded), n=n, cutoff=0.6)
    ]


def canonical(name: str, known: Iterable[str]) -> str | None:
    """The known name `name` is, case aside (`SciFact` -> `scifact`, `BM25` -> `bm25`): itself when
    known, the one known name equal to it after case folding, else None (none, or several)."""
    known = list(known)
    if name in known:
        return name
    same = [k for k in known if k.casefold() == name.casefold()]
    return same[0] if len(same) == 1 else None


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`; did you mean X?` for the known name closest to `name` (case aside), or nothing."""
    near = closest(name, known, n=1)
    return f"; did you mean {near[0]}?" if near else ""


def short_list(names: Iterable[str], see: str, near: str | None = None, few: int = 4) -> str:
    """A list for a one-line message: the `few` names closest to `near` (else the first few), then
    `…; see `gtr-eval <see>``: never the whole list, never a Python list."""
    names = list(dict.fromkeys(names))
    shown = (closest(near, names, n=few) if near else []) or names[:few]
    more = " …" if len(names) > len(shown) else ""
    return f"{', '.join(shown)}{more}; see `gtr-eval {see}`"


def unknown(
    what: str, name: str, known: Iterable[str], see: str, other: str = "", problem: str | None = None
) -> Mistake:
    """`unknown <what> 'name'; did you mean X? (see `gtr-eval <see>`)`, or with no close name
    `unknown <what> 'name' (known: a, b, c, d …; see `gtr-eval <see>`)`: one line.  `other` says
    what else is accepted (e.g. `or a BEIR folder`); `problem` replaces `unknown <what> 'name'`."""
    known = list(known)
    hint = did_you_mean(name, known)
    listed = f"see `gtr-eval {see}`" if hint else f"known: {short_list(known, see)}"
    head = problem or f"unknown {what} {name!r}"
    return Mistake(f"{head}{hint} ({listed}{f'; {other}' if other else ''})")


def resolve(what: str, name: str, known: Iterable[str], see: str, **unknown_kw) -> str:
    """The known name `name` stands for, case aside (`canonical`), else the `unknown` mistake."""
    known = list(known)
    found = canonical(name, known)
    if found is None:
        raise unknown(what, name, known, see, **unknown_kw)
    return found


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a command, with what was kept: the pairs that had finished (stored) and, for a
    stage cut short, its shards already saved (`saved`).  The same command resumes from both."""

    def __init__(self, done: int | None = None, failed: int = 0, saved: str | None = None):
        kept = [saved] if saved else []
        if done is not None:
            kept.append(f"{done} pair{'' if done == 1 else 's'} done")
        super().__init__(f"interrupted: {'; '.join(kept + ['rerun the same command to resume'])}")
        self.done, self.failed, self.saved = done, failed, saved


# Exit codes, as the module docstring's table: the first class `e` is an instance of decides.
DONE, UNEXPECTED, MISTAKE, FAILED, INTERRUPTED = 0, 1, 2, 3, 130
EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (Mistake, MISTAKE),
    (PairError, FAILED),
    (KeyboardInterrupt, INTERRUPTED),
)


def exit_code(e: BaseException) -> int:
    """The exit code a command ends with when `e` ends it (`EXIT_CODES`; anything else: 1)."""
    return next((code for kind, code in EXIT_CODES if isinstance(e, kind)), UNEXPECTED)
