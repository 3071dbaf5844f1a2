"""Progress that reads well in a terminal and in a log.

On a terminal (stderr is a TTY) a stage is a tqdm bar: the pairs of a command at the bottom, the
stage of the current pair above it, moving at least once per batch (`tick`). Piped or redirected
(`2>log`, CI, SLURM) there is no bar, no carriage return and no cursor escape: a stage says one plain
line when it ends (`all-MiniLM-L6-v2: encode corpus: 3,633 docs in 1 min 17 s`, or `5,183 docs
from cache (0.0 s)` when nothing had to be computed) and, while it runs, where it is at least once a
minute in its own units (documents, queries, pairs), moving or not, so a log shows that a long job is
alive.

Dependencies draw their own bars and log lines (transformers' "Loading weights", huggingface_hub's
downloads); `quiet_dependencies` keeps them out while a model loads, and puts their settings back.
"""

from __future__ import annotations

import sys
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

HEARTBEAT_S = 60.0  # a plain log line says where a long stage is this often


def interactive(stream: TextIO | None = None) -> bool:
    """Whether `stream` (stderr by default) is a terminal that can redraw a bar in place: a TTY of a
    known width (tqdm draws nothing on one of 0 columns, as some containers give)."""
    import os

    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty()) and os.get_terminal_size(stream.fileno()).columns > 0
    except (AttributeError, OSError, ValueError):  # closed, or not a file
        return False


def elapsed(seconds: float) -> str:
    """`0.5 s`, `42 s`, `1 min 17 s`, `2 h 03 min`: how long a stage took, for a log line."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def plural(unit: str, n: int = 2) -> str:
    """`doc` -> `docs`, `query` -> `queries`; the unit itself for one."""
    if n == 1:
        return unit
    return unit[:-1] + "ies" if unit.endswith("y") and unit[-2:-1] not in "aeiou" else unit + "s"


class LogLine:
    """A stage's progress as plain lines (no `\\r`): one when it ends, and one a minute while it runs.

    With `watch`, a timer thread says where the stage is once a minute even when nothing moves (a
    batch that takes minutes, a model still loading), so a log never goes quiet for longer.  Items
    served from a cache (`served`) are counted apart: a stage that computed nothing says `from cache`.
    It offers the part of tqdm's interface this package uses (`update`, `set_postfix`, `close`,
    `n`, `total`, `disable`, a context manager), so callers do not care which one they hold."""

    disable = False

    def __init__(
        self,
        total: int | None,
        desc: str,
        unit: str,
        stream: TextIO | None = None,
        heartbeat: float | None = HEARTBEAT_S,
        clock=time.monotonic,
        watch: bool = False,
    ):
        self.total, self.desc, self.unit = total, desc, unit
        self.n = 0
        self.cached = 0  # of `n`, served from a cache
        self._stream = stream
        self._heartbeat = heartbeat
        self._clock = clock
        self._start = self._last = clock()
        self._postfix: dict[str, Any] = {}
        self._closed = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        if watch and heartbeat is not None:
            wake = max(0.01, min(heartbeat / 60, 1.0))  # a line at most a second late
            # It holds the line weakly: a stage dropped without `close` (an error) stops its timer too.
            args = (weakref.ref(self), self._stop, wake)
            threading.Thread(target=_watch, args=args, daemon=True, name=f"progress {desc}").start()

    def update(self, n: int = 1) -> None:
        self.n += n
        self.beat()

    def served(self, n: int) -> None:
        """`n` more items, read from a cache rather than computed."""
        self.cached += n
        self.update(n)

    def beat(self) -> None:
        """Say where the stage is, if the last line is a heartbeat old."""
        with self._lock:
            now = self._clock()
            if self._closed or self._heartbeat is None or now - self._last < self._heartbeat:
                return
            self._last = now
            of = f"/{self.total:,}" if self.total else ""
            self._write(f"{self.desc}: {self.n:,}{of} {plural(self.unit)} ({elapsed(now - self._start)})")

    def set_postfix(self, refresh: bool = True, **values: Any) -> None:
        self._postfix.update(values)

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self.n == 0 and not self.total:
                return  # a stage with nothing to do says nothing
            extra = "".join(f", {k} {v}" for k, v in self._postfix.items())
            took = elapsed(self._clock() - self._start)
            count = f"{self.n:,} {plural(self.unit, self.n)}"
            if self.n and self.cached == self.n:
                self._write(f"{self.desc}: {count} from cache ({took}){extra}")
            else:
                cached = f" ({self.cached:,} from cache)" if self.cached else ""
                self._write(f"{self.desc}: {count} in {took}{cached}{extra}")

    def _write(self, line: str) -> None:
        stream = sys.stderr if self._stream is None else self._stream
        print(line, file=stream, flush=True)

    def __enter__(self) -> LogLine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _watch(line: weakref.ref[LogLine], stop: threading.Event, wake: float) -> None:
    """A `LogLine`'s timer: a beat every `wake` seconds until it is closed or gone."""
    while not stop.wait(wake):
        alive = line()
        if alive is None:
            return
        alive.beat()
        del alive


def served(progress_bar, n: int) -> None:
    """`n` items of `progress_bar`'s stage read from a cache: a `LogLine` says so, a tqdm bar moves."""
    getattr(progress_bar, "served", progress_bar.update)(n)


def bar(
    total: int | None,
    desc: str,
    unit: str = "it",
    *,
    enabled: bool = True,
    leave: bool = False,
    position: int | None = None,
    heartbeat: float | None = HEARTBEAT_S,
):
    """A progress bar for one stage: tqdm on a terminal, `LogLine` when stderr is piped, a silent
    tqdm when `enabled` is False."""
    from tqdm.auto import tqdm

    if not enabled:
        return tqdm(total=total, disable=True)
    if not interactive():
        return LogLine(total, desc, unit, heartbeat=heartbeat, watch=True)
    return tqdm(total=total, desc=desc, unit=unit, leave=leave, position=position, file=sys.stderr,
                dynamic_ncols=True)  # fmt: skip


# ------------------------------------------------------------------------------------- batch ticks

_current = threading.local()


@contextmanager
def ticking(target) -> Iterator[None]:
    """While inside, `tick(n)` (called by the batch loops, once per batch) moves `target`'s bar."""
    before = getattr(_current, "target", None)
    _current.target = target
    try:
        yield
    finally:
        _current.target = before


def tick(n: int) -> None:
    """`n` more items done (a batch); a no-op outside `ticking`."""
    target = getattr(_current, "target", None)
    if target is not None:
        target.tick(n)


class ShardTicks:
    """A bar moved per batch while a shard encodes, and squared with the shard's size when it is
    written: an encoder that does not tick (a GPU's `encode`, a worker process) moves it per shard."""

    def __init__(self, progress_bar):
        self.bar = progress_bar
        self.pending = 0

    def tick(self, n: int) -> None:
        self.pending += n
        self.bar.update(n)

    def done(self, n: int) -> None:
        """A shard of `n` rows is written (its batches may have ticked already)."""
        if n > self.pending:
            self.bar.update(n - self.pending)
        self.pending = max(0, self.pending - n)


# ------------------------------------------------------------------------------ dependencies' output


@contextmanager
def quiet_dependencies() -> Iterator[None]:
    """No bars or info lines from transformers and huggingface_hub inside (warnings and errors
    still show); their own settings are restored afterwards, so importing or calling this package
    changes nothing for the caller's other code."""
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    hub_bars_on = not are_progress_bars_disabled()
    try:
        from transformers.utils import logging as tf_logging
    except ImportError:  # pragma: no cover - a dependency of sentence-transformers
        tf_logging = None
    tf_bars_on = tf_logging is not None and tf_logging.is_progress_bar_enabled()
    tf_level = tf_logging.get_verbosity() if tf_logging is not None else None
    if tf_logging is not None:
        tf_logging.disable_progress_bar()  # it also turns huggingface_hub's off
        tf_logging.set_verbosity(max(tf_level, tf_logging.WARNING))
    else:
        disable_progress_bars()
    try:
        yield
    finally:
        if tf_logging is not None:
            tf_logging.set_verbosity(tf_level)
            if tf_bars_on:
                tf_logging.enable_progress_bar()
        if hub_bars_on:
            enable_progress_bars()
        elif not are_progress_bars_disabled():
            disable_progress_bars()
