"""Which systems and datasets a reading command shows: `-s/--system` and `-d/--dataset`.

One `Selection` (shell-style globs, matched case-folded) is applied by one function, `select`, that
`table`, `plot`, `paper`, `report`, `export` and their `api` twins all call, so a selection means the
same in each.  The patterns also give the order: columns (systems) and rows (datasets) come in the
order of the first pattern each matches, then as they would without a selection.  A pattern that
matches nothing is a mistake (`errors.Mistake`, exit 2), found before any work, since a table
silently without the asked-for column reads as one where it was never run.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..errors import Mistake, did_you_mean
from ..results import StoredResult, matches


@dataclass(frozen=True)
class Selection:
    """Glob patterns for the systems and the datasets to show; empty: all of them."""

    systems: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()

    def __post_init__(self) -> None:  # lists (or one name) from the API as tuples: the dataclass is frozen
        for name in ("systems", "datasets"):
            value = getattr(self, name)
            object.__setattr__(self, name, (value,) if isinstance(value, str) else tuple(value))

    def shows(self, system: str, dataset: str) -> bool:
        """Whether the selection keeps `system` on `dataset` (the golden checks of a report use it)."""
        return (not self.systems or self.system_rank(system) < len(self.systems)) and (
            not self.datasets or self.dataset_rank(dataset) < len(self.datasets)
        )

    def system_rank(self, system: str) -> int:
        """The index of the first system pattern matching `system` (0 with none given); a sort key."""
        return _rank(self.systems, [system])

    def dataset_rank(self, dataset: str) -> int:
        """The index of the first dataset pattern matching `dataset` (a table row such as
        `scifact [train]` or `cqadupstack` reads as its dataset); 0 with none given."""
        return _rank(self.datasets, _dataset_names(dataset))


def _dataset_names(dataset: str) -> list[str]:
    """What a dataset pattern is matched against: the dataset (`scifact`, from a row `scifact [train]`
    too) and, for a CQADupStack subforum `cqadupstack/android`, its group `cqadupstack` as well."""
    name = dataset.split(" [")[0].split(" (")[0]
    return [name, name.split("/")[0]] if "/" in name else [name]


def _matches(pattern: str, names: Iterable[str]) -> bool:
    return any(matches(pattern, n) for n in names)


def _rank(patterns: Sequence[str], names: Sequence[str]) -> int:
    return next((i for i, p in enumerate(patterns) if _matches(p, names)), len(patterns))


def select(results: Iterable[StoredResult], selection: Selection | None = None) -> list[StoredResult]:
    """The stored results `selection` chooses, ordered by its patterns (then by system and dataset);
    all of them, in that order, with no selection.  A pattern that matches no stored system (or
    dataset) is a `Mistake` naming what is stored."""
    results = list(results)
    selection = selection or Selection()
    systems = sorted({r.system for r in results})
    _check(selection.systems, "--system", systems, systems, lambda p, n: _matches(p, [n]))
    datasets = sorted({r.dataset for r in results})
    shown = sorted({_dataset_names(d)[-1] for d in datasets})  # CQADupStack once, not its 12 subforums
    _check(selection.datasets, "--dataset", datasets, shown, lambda p, n: _matches(p, _dataset_names(n)))
    chosen = [r for r in results if selection.shows(r.system, r.dataset)]
    if results and not chosen:
        raise Mistake(
            f"no stored result of systems {', '.join(selection.systems)} on datasets "
            f"{', '.join(selection.datasets)}: each is stored, but not together"
        )
    return sorted(
        chosen,
        key=lambda r: (
            selection.system_rank(r.system),
            r.system,
            selection.dataset_rank(r.dataset),
            r.dataset,
        ),
    )


def _check(patterns: Sequence[str], flag: str, names: Sequence[str], shown: Sequence[str], match) -> None:
    for pattern in patterns:
        if not any(match(pattern, n) for n in names):
            stored = ", ".join(shown) if shown else "none"
            hint = did_you_mean(pattern, shown)
            raise Mistake(f"{flag} {pattern!r} matches nothing stored{hint or '; stored: ' + stored}")
