"""Telling a server that cannot be reached at all from a fault a retry may cure.

A download (BEIR's zip server, a mirror, the Hugging Face hub, a model) gives up at once when the
connection cannot even be opened, and retries the rest; both the dataset and the model paths ask here.
"""

from __future__ import annotations

import errno
import os
import socket

_NO_ROUTE = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN, getattr(errno, "EHOSTDOWN", -1)}


def connection_failure(e: BaseException) -> str | None:
    """Why a connection could not even be opened, when `e` (or what caused it) says so: a DNS
    lookup that failed, a refused connection, no route to the host. None for anything else (a
    timeout, a dropped connection, an HTTP error), which a retry may cure."""
    seen: set[int] = set()
    todo: list[BaseException] = [e]
    while todo:
        x = todo.pop()
        if id(x) in seen:
            continue
        seen.add(id(x))
        if isinstance(x, socket.gaierror):
            return f"DNS lookup failed: {x.strerror or x}"
        if isinstance(x, ConnectionRefusedError):
            return "connection refused"
        if isinstance(x, OSError) and x.errno in _NO_ROUTE:
            return (x.strerror or os.strerror(x.errno)).lower()
        linked = [x.__cause__, x.__context__, getattr(x, "reason", None), *x.args]  # urllib3: .reason
        todo += [y for y in linked if isinstance(y, BaseException)]
    return None
