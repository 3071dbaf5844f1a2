"""What makes a stored result what it is, and how two results' makings differ.

A stored number is served only for the inputs that made it.  Those inputs are two frozen
dataclasses: the system's spec (`retrieval.spec`) and the dataset's fingerprint (`data.units`).
Every field of them changes a ranking unless it is declared with `setting()` (batch size, threads,
paths, progress): settings are recorded in the manifest but never compared.  So the identity of a
result, the manifest and the cache keys are all derived from the same objects (`record`,
`cache_fields`), and a field is declared once, where it is defined.

`Identity` is the pair (system, dataset) as plain JSON data with its digest; `differences` names, in
one short line, what differs between a stored identity and the one asked for now.  The same
declarations name variants (`variant_suffix`: `bm25[k1=0.9]`, what a run's options change from its
preset's) and say why a stored result is refused (`made_otherwise`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any

_RANKING = "ranking"
_CACHES = "caches"
_FOLLOWS = "follows"


def setting(default: Any = MISSING, *, default_factory: Any = MISSING) -> Any:
    """A field that cannot change a ranking (batch size, threads, a path, progress): recorded, never
    compared, and part of no cache key."""
    return dataclasses.field(default=default, default_factory=default_factory, metadata={_RANKING: False})


def ranking(
    default: Any = MISSING,
    *,
    caches: tuple[str, ...] = (),
    default_factory: Any = MISSING,
    follows: str | None = None,
) -> Any:
    """A field that changes the ranking (any field not declared otherwise does); `caches` names the
    caches whose key it is part of (`corpus`, `queries`, `pairs`), i.e. what it changes the vectors or
    scores of.  `follows`: the field whose value it takes unless set apart (a variant's name shows it
    only when it differs from that one's)."""
    meta = {_RANKING: True, _CACHES: caches, **({_FOLLOWS: follows} if follows else {})}
    return dataclasses.field(default=default, default_factory=default_factory, metadata=meta)


def is_setting(f: dataclasses.Field) -> bool:
    return f.metadata.get(_RANKING) is False


def record(value: Any, ranking_only: bool = False) -> Any:
    """`value` as plain JSON data: dataclasses as dicts (settings left out with `ranking_only`), tuples
    as lists, paths as strings."""
    if is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: record(getattr(value, f.name), ranking_only)
            for f in fields(value)
            if not (ranking_only and is_setting(f))
        }
    if isinstance(value, Mapping):
        return {str(k): record(v, ranking_only) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [record(v, ranking_only) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def cache_fields(spec: Any, cache: str) -> dict[str, Any]:
    """The fields of `spec` that key `cache` (declared with `ranking(caches=...)`), as JSON data."""
    return {
        f.name: record(getattr(spec, f.name), ranking_only=True)
        for f in fields(spec)
        if cache in f.metadata.get(_CACHES, ())
    }


def digest(value: Any) -> str:
    """sha256 of `value`'s canonical JSON (sorted keys): equal data, equal digest."""
    text = json.dumps(record(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Identity:
    """What made a result: the ranking fields of its system's spec and its dataset's fingerprint."""

    system: Mapping[str, Any]
    dataset: Mapping[str, Any]

    @property
    def digest(self) -> str:
        return digest({"system": self.system, "dataset": self.dataset})

    def record(self) -> dict[str, Any]:
        return {"digest": self.digest, "system": record(self.system), "dataset": record(self.dataset)}

    @classmethod
    def of(cls, spec: Any, fingerprint: Any) -> Identity:
        return cls(record(spec, ranking_only=True), record(fingerprint, ranking_only=True))

    @classmethod
    def from_record(cls, data: Any) -> Identity | None:
        """The identity a stored result records; None for results made before identities were kept."""
        if not isinstance(data, Mapping) or not all(
            isinstance(data.get(k), Mapping) for k in ("system", "dataset")
        ):
            return None
        return cls(data["system"], data["dataset"])


# ----------------------------------------------------------------------------------- differences

_ABSENT = object()
_SHA = re.compile(r"^(?:content:)?[0-9a-f]{40,64}$")


@dataclass(frozen=True)
class Change:
    """One field that differs: where (a path of keys), its stored value and the value asked for now."""

    where: tuple[str, ...]
    stored: Any
    wanted: Any

    def __str__(self) -> str:
        area, rest = self.where[:1], self.where[1:]
        # a file or an input run: what the result was made from, named by its content
        made_from = len(rest) > 1 and (area, rest[0]) in (
            (("dataset",), "files_sha256"),
            (("system",), "inputs"),
        )
        if made_from:
            what = "/".join(rest[1:]) if rest[0] == "files_sha256" else f"the run of {rest[1]}"
        elif self.where == ("dataset", "split"):
            what = "the split"
        else:
            what = ".".join(rest if area in (("system",), ("dataset",)) else self.where) or "the result"
        if self.stored is _ABSENT:
            if made_from:
                return f"the stored result was not made from {what}"
            return f"the stored result does not record {what} (made by an older gtr-eval)"
        if self.wanted is _ABSENT:
            if made_from:
                return f"the stored result was made from {what}, which is not asked for now"
            return f"the stored result has {what}, which is not asked for now"
        since = "changed since the stored result" + (
            " was made from it" if made_from and rest[0] == "inputs" else ""
        )
        return f"{what} {since} ({_values(self.stored, self.wanted)})"


def _values(stored: Any, wanted: Any) -> str:
    if all(isinstance(v, str) and _SHA.match(v) for v in (stored, wanted)):
        return f"sha256 {_short(stored)}… → {_short(wanted)}…"
    return f"{_show(stored)} → {_show(wanted)}"


def _short(sha: str) -> str:
    return sha.removeprefix("content:")[:4]


def _show(value: Any) -> str:
    text = json.dumps(record(value), ensure_ascii=False, sort_keys=True)
    return text if len(text) <= 40 else text[:37] + "..."


def _by_system(value: Any) -> Any:
    """A list of input runs as a mapping by system name, so that a change names the input."""
    if isinstance(value, list) and value and all(isinstance(x, Mapping) and "system" in x for x in value):
        return {str(x["system"]): {k: v for k, v in x.items() if k != "system"} for x in value}
    return value


def differences(stored: Any, wanted: Any, where: tuple[str, ...] = ()) -> list[Change]:
    """Every leaf where `stored` and `wanted` differ (mappings compared key by key, in `wanted`'s
    order, then the keys only `stored` has; lists of input runs by system name)."""
    stored, wanted = _by_system(stored), _by_system(wanted)
    if isinstance(stored, Mapping) and isinstance(wanted, Mapping):
        out: list[Change] = []
        for key, value in wanted.items():
            here = (*where, str(key))
            out += differences(stored[key], value, here) if key in stored else [Change(here, _ABSENT, value)]
        out += [Change((*where, str(k)), v, _ABSENT) for k, v in stored.items() if k not in wanted]
        return out
    return [] if record(stored) == record(wanted) else [Change(where, stored, wanted)]


def describe(changes: list[Change], limit: int = 2) -> str:
    """One short line: the first `limit` changes, and how many more."""
    shown = "; ".join(str(c) for c in changes[:limit])
    more = len(changes) - limit
    return shown + (f" (and {more} more difference{'s' if more > 1 else ''})" if more > 0 else "")


# --------------------------------------------------------------------------------------- variants

# A string shown as itself in a variant name: short, from a letter on, no character that names use
# (`[`, `,`, `=`, `]`) or a file name cannot hold, and not a word or number other values are written
# as; any other is shown by a digest of its JSON (`#1a2b3c4d`).
_PLAIN = re.compile(r"(?!(?:none|true|false)$)[A-Za-z][A-Za-z0-9._+-]{0,31}")
_LONGEST = 96  # characters between the brackets before they become one digest


def variant_suffix(preset: Any, spec: Any) -> str:
    """What in `spec` changes rankings unlike `preset` (the same system with the default options), as
    a name's suffix: `[k1=0.9,b=0.4]`, or "" when nothing does.  Only ranking fields count (settings
    never do); fields in their declaration order, each by its name (dotted where two share one) and
    its value written canonically (floats as Python's shortest repr, strings plain or as a digest)."""
    changes = _followed(spec, differences(record(preset, ranking_only=True), record(spec, ranking_only=True)))
    if not changes:
        return ""
    leaves = [c.where[-1] for c in changes]
    inner = ",".join(
        f"{c.where[-1] if leaves.count(c.where[-1]) == 1 else '.'.join(c.where)}={_canonical(c.wanted)}"
        for c in changes
    )
    return f"[{inner if len(inner) <= _LONGEST else '#' + digest(inner)[:12]}]"


def _followed(spec: Any, changes: list[Change]) -> list[Change]:
    """`changes` as a name says them where a field follows another (`ranking(follows=...)`): when the
    leader changed, the follower is named only if it holds another value than the leader's (then
    also when it did not change itself), so that every spec keeps a name of its own."""
    if not is_dataclass(spec):
        return changes
    order = list(record(spec, ranking_only=True))
    by_where = {c.where: c for c in changes}
    for f in fields(spec):
        leader = f.metadata.get(_FOLLOWS)
        if leader is None or (leader,) not in by_where:
            continue
        value = getattr(spec, f.name)
        if value == getattr(spec, leader):
            by_where.pop((f.name,), None)
        elif (f.name,) not in by_where:
            by_where[(f.name,)] = Change((f.name,), _ABSENT, record(value))
    return sorted(
        by_where.values(), key=lambda c: order.index(c.where[0]) if c.where[0] in order else len(order)
    )


def _canonical(value: Any) -> str:
    if value is _ABSENT or value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str) and _PLAIN.fullmatch(value):
        return value
    return "#" + digest(value)[:8]


# ------------------------------------------------------------------------------------ refusals


def made_otherwise(changes: list[Change], limit: int = 2) -> str:
    """What a stored result was made with, unlike what is asked for now, in a few words and then the
    first `limit` differences: `with other qrels (qrels/test.tsv differs)`."""
    kinds = list(dict.fromkeys(_kind(c) for c in changes)) or ["inputs"]
    kinds = kinds[:2] + ([f"{len(kinds) - 2} more kinds"] if len(kinds) > 3 else kinds[2:])
    shown = "; ".join(_shortened(_detail(c)) for c in changes[:limit])
    more = len(changes) - limit
    shown += f" and {more} more" if more > 0 else ""
    return f"with other {' and '.join(kinds)}" + (f" ({shown})" if shown else "")


def _shortened(text: str, most: int = 60) -> str:
    """One difference in at most `most` characters: a refusal stays one short line."""
    return text if len(text) <= most else text[: most - 1] + "…"


def _kind(change: Change) -> str:
    area, rest = change.where[:1], change.where[1:]
    if area == ("dataset",) and rest[:1] == ("files_sha256",) and len(rest) > 1:
        top = rest[1].split("/")[0].removesuffix(".jsonl")
        return top if top in ("qrels", "corpus", "queries") else "data files"
    if area == ("dataset",):
        return "data"
    if rest[:1] == ("inputs",):
        return "input runs"
    if rest[:1] in (("weights_sha256",), ("query_weights_sha256",)):
        return "weights"
    return "settings"


def _detail(change: Change) -> str:
    area, rest = change.where[:1], change.where[1:]
    if area == ("dataset",) and rest[:1] == ("files_sha256",) and len(rest) > 1:
        return f"{'/'.join(rest[1:])} differs"
    if rest[:1] == ("inputs",) and len(rest) > 1:
        return f"the run of {rest[1]} differs"
    what = ".".join(rest) or ".".join(change.where)
    if change.stored is _ABSENT:
        return f"{what} not recorded"
    if change.wanted is _ABSENT:
        return f"{what} not asked for now"
    return f"{what} {_values(change.stored, change.wanted)}"
