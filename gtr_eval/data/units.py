"""What a dataset name on the command line means: one or more folders, each scored on its own.

A registry name (downloaded when missing), the bundled `demo`, PeerQA, a BEIR folder path, or a
sweep (`beir`, `beir-small`, `paper`: see `registry.GROUPS`) that stands for several of those.
CQADupStack becomes its 12 subforum units; the reporting layer averages them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .. import paths
from ..errors import Mistake, did_you_mean
from ..paths import BUNDLED
from . import registry
from .jsonl import DataError
from .loader import BeirData, load_beir_folder
from .store import data_file_sha256


@dataclass(frozen=True)
class DatasetFingerprint:
    """What a result's data is: the dataset and split, the sha256 of every file its scores were made
    from (corpus, queries and the split's qrels, by path in the folder), and the scoring convention
    that applies.  With the system's spec it is the identity of a result (`identity.Identity`)."""

    name: str
    split: str
    files_sha256: Mapping[str, str]
    ignore_identical_ids: bool = True
    scope: str | None = None  # "paper": each query searches only its own paper's documents (PeerQA)


@dataclass
class DatasetUnit:
    """One folder scored on its own (a cqadupstack subforum is one unit)."""

    name: str
    path: Path
    split: str
    ignore_identical_ids: bool = True
    loader: Callable[[DatasetUnit], BeirData] | None = None
    files: tuple[str, ...] | None = None  # what the data is read from; None: BEIR's three files
    scope: str | None = None

    def load(self, store_dir: Path | None = None) -> BeirData:
        """The unit's data; `store_dir` is where the corpus store lives (default: the user cache)."""
        if self.loader is not None:
            return self.loader(self)
        return load_beir_folder(self.path, split=self.split, name=self.name, store_dir=store_dir)

    def data_files(self) -> tuple[str, ...]:
        return self.files or ("corpus.jsonl", "queries.jsonl", f"qrels/{self.split}.tsv")

    def fingerprint(
        self, store_dir: Path | None = None, files_sha256: Mapping[str, str] | None = None
    ) -> DatasetFingerprint:
        """The unit's fingerprint: of `files_sha256` (what a load read, `BeirData.checksums`), else of
        the files as they are now, hashed without loading them (memoised by their full stat key, as the
        corpus store memoises corpus.jsonl: an unchanged 4 GB corpus is not read again, an edited one is)."""
        if files_sha256 is None:
            files_sha256 = {name: self._sha256(name, store_dir) for name in self.data_files()}
        return DatasetFingerprint(
            self.name, self.split, dict(files_sha256), self.ignore_identical_ids, self.scope
        )

    def _sha256(self, name: str, store_dir: Path | None) -> str:
        path = Path(self.path) / name
        if not path.is_file():
            raise DataError(path, None, f"missing: not a BEIR folder with split {self.split!r}")
        return data_file_sha256(path, store_dir)


@dataclass
class DataOptions:
    """Where datasets come from: shared by `run`, `encode` and the Python API."""

    data_dir: Path = paths.DATA_DIR
    split: str | None = None  # None: each dataset's own (test; dev for msmarco)
    download: bool = True
    base_url: str | None = None
    source: str = "auto"  # ukp, hf-beir, hf-mteb, or auto (the registry's order, with fallback)

    def units(self, spec: str) -> list[DatasetUnit]:
        """The dataset units `spec` names, downloaded first when missing (unless `download` is off)."""
        return resolve_dataset(spec, self.data_dir, self.split, self.download, self.base_url, self.source)

    def expand(self, specs: list[str]) -> Selection:
        """The datasets `specs` stand for, sweeps expanded; nothing is downloaded or read."""
        return expand_datasets(specs, self.data_dir)

    def check_split(self, specs: list[str]) -> None:
        """A `--split` that a dataset found here does not have: a `Mistake` naming the splits it has
        (a dataset still to be downloaded is checked once it is there)."""
        if self.split is None:
            return
        for spec in self.expand(specs).datasets:
            for name, folder in _local_folders(spec, self.data_dir):
                check_has_split(name, folder, self.split)


def check_has_split(name: str, folder: Path, split: str) -> None:
    """A split the dataset in `folder` lacks (it has qrels/, but no qrels/<split>.tsv): a `Mistake`
    naming the splits it has."""
    qrels = Path(folder) / "qrels"
    if qrels.is_dir() and not (qrels / f"{split}.tsv").is_file():
        have = ", ".join(sorted(p.stem for p in qrels.glob("*.tsv"))) or "none"
        raise Mistake(f"--split {split}: {name} has no such split (its splits: {have})")


def _local_folders(spec: str, data_dir: Path) -> list[tuple[str, Path]]:
    """Where the units of `spec` are (or will be, once downloaded); none for PeerQA."""
    if _is_folder(spec):
        return [(Path(spec).expanduser().resolve().name, Path(spec).expanduser())]
    if spec in ("peerqa", "peerqa-sentences"):
        return []
    info = registry.get(spec)
    return [(info.name, BUNDLED / info.name)] if info.bundled else registry.evaluation_units(spec, data_dir)


@dataclass
class Selection:
    """What the `-d` arguments stand for: datasets to evaluate, in order, each once, and the datasets
    of a sweep that are left out, with the reason (a non-public set not found locally)."""

    datasets: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)


def expand_datasets(specs: list[str], data_dir: Path | str = paths.DATA_DIR) -> Selection:
    """Expand sweeps and check every name before anything runs: an unknown name (with the closest known
    one suggested) or a folder that is not there is a `Mistake` (`UnknownDatasetError` for names)."""
    data_dir = Path(data_dir).expanduser()
    chosen: list[str] = []
    skipped: list[tuple[str, str]] = []
    for spec in specs:
        check_folder(spec)
        spec = spec if _is_folder(spec) else registry.canonical_name(spec)  # `SciFact`: scifact
        group = None if _is_folder(spec) else registry.group(spec)
        if group is None:
            if not _is_folder(spec) and spec not in ("peerqa", "peerqa-sentences"):
                registry.get(spec)  # raises, listing the known names, for a typo
            names = [spec]
        else:
            names = []
            for name in group.members:
                info = registry.get(name)
                if info.public or registry.is_present(name, data_dir):
                    names.append(name)
                else:
                    skipped.append(
                        (name, f"not public and not found at {data_dir / name} (see `gtr-eval datasets`)")
                    )
        chosen += [n for n in names if n not in chosen]
    skipped = [(n, why) for n, why in skipped if n not in chosen]
    return Selection(chosen, list(dict(skipped).items()))


def unit_names(spec: str, data_dir: Path | str = paths.DATA_DIR) -> list[str]:
    """The names of the units `spec` will give, without downloading or reading anything."""
    if _is_folder(spec):
        return [Path(spec).expanduser().resolve().name]
    if spec in ("peerqa", "peerqa-sentences"):
        return [spec]
    return [n for n, _ in registry.evaluation_units(spec, Path(data_dir))]


def _is_folder(spec: str) -> bool:
    return (Path(spec).expanduser() / "corpus.jsonl").is_file()


def looks_like_path(spec: str) -> bool:
    """`./x`, `../x`, `~/x`, `/x`, `a/b`: meant as a folder, not a registry name."""
    return spec.startswith((".", "~")) or "/" in spec or "\\" in spec


def check_folder(spec: str) -> None:
    """A `-d` argument meant as a folder must be a BEIR folder that exists."""
    if _is_folder(spec) or not looks_like_path(spec):
        return
    if Path(spec).expanduser().is_dir():
        raise Mistake(f"{spec}: not a BEIR folder (it has no corpus.jsonl)")
    raise missing_folder(spec)


def missing_folder(spec: str, what: str = "folder") -> Mistake:
    """`<spec>: no such folder`, with the closest folder beside it that does exist."""
    path = Path(spec).expanduser()
    parent = path.parent
    near = (
        did_you_mean(path.name, [p.name for p in parent.iterdir() if p.is_dir()]) if parent.is_dir() else ""
    )
    return Mistake(f"{spec}: no such {what}{near}")


def resolve_dataset(
    spec: str,
    data_dir: Path | str = paths.DATA_DIR,
    split: str | None = None,
    download: bool = True,
    base_url: str | None = None,
    source: str = "auto",
) -> list[DatasetUnit]:
    """The units `spec` stands for; a missing registry dataset is downloaded into `data_dir` first."""
    if spec in ("peerqa", "peerqa-sentences"):
        return peerqa_units(Path(data_dir), spec)
    units = folder_units(spec, data_dir, split)
    if any(not (u.path / "corpus.jsonl").is_file() for u in units):
        if not download:
            from .download import DownloadError

            raise DownloadError(
                f"not found under {data_dir} and --no-download given (run `gtr-eval download {spec}`)"
            )
        from .download import download as fetch

        fetch(spec, Path(data_dir), base_url=base_url, source=source)
    return units


def folder_units(
    spec: str, data_dir: Path | str = paths.DATA_DIR, split: str | None = None
) -> list[DatasetUnit]:
    """The BEIR-folder units `spec` stands for (a folder, the bundled demo, a registry name), where
    they are or will be downloaded to; nothing is downloaded or read."""
    path = Path(spec).expanduser()
    if _is_folder(spec):
        name = path.resolve().name
        known = registry.get(name) if name in registry.names() else None  # e.g. ~/beir/msmarco: dev
        return [
            DatasetUnit(
                name,
                path,
                split or (known.split if known else "test"),
                known.remove_identical_ids if known else True,
            )
        ]
    info = registry.get(spec)
    if info.bundled:
        return [DatasetUnit(info.name, BUNDLED / info.name, split or info.split)]
    units = registry.evaluation_units(spec, Path(data_dir))
    return [DatasetUnit(n, p, split or info.split, info.remove_identical_ids) for n, p in units]


def peerqa_units(data_dir: Path, spec: str = "peerqa") -> list[DatasetUnit]:
    """The unit for `peerqa` (paragraphs) or `peerqa-sentences`: DATA_DIR/peerqa/."""
    from . import peerqa

    granularity = peerqa.GRANULARITIES[spec]
    folder = Path(data_dir).expanduser() / "peerqa"
    peerqa.check_files(folder)
    return [
        DatasetUnit(
            spec,
            folder,
            "test",
            ignore_identical_ids=False,
            loader=lambda unit: peerqa.load_peerqa(unit.path, granularity, name=unit.name),
            files=(peerqa.PAPERS_FILE, peerqa.QA_FILE),
            scope="paper",
        )
    ]
