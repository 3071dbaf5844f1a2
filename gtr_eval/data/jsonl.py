"""Line-by-line reading of BEIR's JSONL files, with every problem reported by file and line.

This is the strict reference reader: the corpus store's fast Arrow path (`store`) accepts a file
only where this reader would accept it too, and falls back to it to name the line of a problem.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

from ..errors import Mistake, PairError


class DataError(PairError, Mistake):
    """Bad input: the message names the file, the line and the problem.  In a sweep, its pair's failure
    (exit 3, the others finish); alone, a mistake in what was given (exit 2)."""

    stage = "data"

    def __init__(self, path: Path | str, line: int | str | None, problem: str):
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {problem}")
        self.path, self.line, self.problem = str(path), line, problem


def numbered_lines(path: Path, hasher, opener=open) -> Iterator[tuple[int, str]]:
    """Numbered lines, LF or CRLF, with UTF-8 errors reported by line; feeds `hasher` the raw bytes.

    `opener` may be `gzip.open` (the hub's `corpus.jsonl.gz`): lines are then those of the content."""
    with opener(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            hasher.update(raw)
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(path, lineno, f"not valid UTF-8 ({e.reason} at byte {e.start})") from None
            yield lineno, line.rstrip("\r\n")


def json_problem(e: ValueError) -> str:
    """What is wrong with a line that does not parse, as a person reads it: `invalid JSON at column 29:
    unterminated string` (json's `Unterminated string starting at: line 1 column 29 (char 28)`)."""
    if isinstance(e, json.JSONDecodeError):
        reason = e.msg.removesuffix(" starting at").removesuffix(" at")
        return f"invalid JSON at column {e.colno}: {reason[:1].lower()}{reason[1:]}"
    if isinstance(e, RecursionError):
        return "invalid JSON: nested too deeply"
    return f"invalid JSON: {e}"  # e.g. an integer literal longer than Python's 4300-digit limit


def json_record(path: Path, lineno: int, line: str, required: tuple[str, ...], what: str = "record") -> dict:
    """One BEIR record: a JSON object with a non-empty `_id` and string (or null) `title`/`text`."""
    try:
        rec = json.loads(line)
    except (ValueError, RecursionError) as e:
        raise DataError(path, lineno, json_problem(e)) from None
    if not isinstance(rec, dict):
        raise DataError(path, lineno, "expected a JSON object")
    check_record(path, lineno, rec, required, what)
    if "\\u" in line:  # only a \uXXXX escape can yield a lone surrogate, which UTF-8 cannot encode
        for key in ("_id", "title", "text"):
            if isinstance(rec.get(key), str):
                try:
                    rec[key].encode("utf-8")
                except UnicodeEncodeError:
                    raise DataError(
                        path, lineno, f"field {key!r} holds a lone surrogate escape (\\ud800-\\udfff)"
                    ) from None
    return rec


# An id is one token of a TREC run or qrels line, so it holds no whitespace (what `str.split` splits
# on) and no control character (C0, DEL, C1).  As code points, to build both Python's pattern and
# RE2's (pyarrow's, for the corpus store's vectorised check) from this one list.
_BAD_ID_RANGES = (
    (0x00, 0x20), (0x7F, 0xA0), (0x1680, 0x1680), (0x2000, 0x200A),
    (0x2028, 0x2029), (0x202F, 0x202F), (0x205F, 0x205F), (0x3000, 0x3000),
)  # fmt: skip
_NAMES = {" ": "a space", "\t": "a tab", "\n": "a newline", "\r": "a carriage return"}


def _char_class(char: str) -> str:
    return "[" + "".join(f"{char.format(lo)}-{char.format(hi)}" for lo, hi in _BAD_ID_RANGES) + "]"


BAD_ID_CHAR = re.compile(_char_class("\\U{:08x}"))
BAD_ID_CHAR_RE2 = _char_class("\\x{{{:04x}}}")  # for `pyarrow.compute.match_substring_regex`


def id_problem(value: str) -> str | None:
    """What makes `value` unusable as a document or query id (`contains a tab`), or None."""
    if value == "":
        return "is empty"
    found = BAD_ID_CHAR.search(value)
    if found is None:
        return None
    c = found.group()
    kind = "whitespace" if c.isspace() else "a control character"
    return f"contains {_NAMES.get(c) or f'{kind} U+{ord(c):04X}'}"


def check_id(path: Path | str, where: int | str | None, value: str, what: str) -> None:
    """A `DataError` naming file and line when `value` is not a usable id (`id_problem`)."""
    if (problem := id_problem(value)) is not None:
        raise DataError(path, where, f"{what} id {value!r} {problem}")


def check_record(
    path: Path | str, where: int | str, rec: dict, required: tuple[str, ...], what: str = "record"
) -> None:
    """The checks every corpus or query record passes, from a jsonl line or a parquet row alike.  The
    id is taken as BEIR takes it: as written, nothing stripped."""
    for key in required:
        if key not in rec:
            raise DataError(path, where, f"missing field {key!r}")
    if not isinstance(rec["_id"], str | int) or str(rec["_id"]) == "":
        raise DataError(path, where, "field '_id' must be a non-empty string")
    check_id(path, where, str(rec["_id"]), what)
    for key in ("title", "text"):
        if key in rec and rec[key] is not None and not isinstance(rec[key], str):
            raise DataError(path, where, f"field {key!r} must be a string")


def jsonl_records(
    path: Path, required: tuple[str, ...], opener=open, what: str = "record"
) -> Iterator[tuple[int, dict]]:
    """(line number, record) for each non-blank line, checked exactly as corpus.jsonl's lines are."""
    for lineno, line in numbered_lines(path, _NoHash(), opener):
        if line.strip():
            yield lineno, json_record(path, lineno, line, required, what)


class _NoHash:
    def update(self, _: bytes) -> None:
        pass


def unique_records(path: Path, hasher, what: str) -> Iterator[tuple[str, dict]]:
    """(id, record) per non-blank line, validated; a repeated id is a `DataError` naming both lines."""
    seen: dict[str, int] = {}
    for lineno, line in numbered_lines(path, hasher):
        if not line.strip():
            continue
        rec = json_record(path, lineno, line, ("_id", "text"), what)
        rid = str(rec["_id"])
        if rid in seen:
            raise DataError(path, lineno, f"duplicate {what} id {rid!r} (first on line {seen[rid]})")
        seen[rid] = lineno
        yield rid, rec


def corpus_records(path: Path, hasher) -> Iterator[tuple[str, str, str]]:
    """(id, title, text) per document of a corpus.jsonl, validated; duplicates and emptiness caught."""
    empty = True
    for doc_id, rec in unique_records(path, hasher, "document"):
        empty = False
        yield doc_id, rec.get("title") or "", rec.get("text") or ""
    if empty:
        raise DataError(path, None, "empty corpus: no documents")
