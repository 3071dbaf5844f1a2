"""What a dataset name on the command line means: one or more folders, each scored on its own.

A registry name (downloaded when missing), the bundled `demo`, PeerQA, or a BEIR folder path.
CQADupStack becomes its 12 subforum units; the reporting layer averages them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..paths import BUNDLED
from . import registry
from .loader import BeirData, load_beir_folder


@dataclass
class DatasetUnit:
    """One folder scored on its own (a cqadupstack subforum is one unit)."""

    name: str
    path: Path
    split: str
    ignore_identical_ids: bool = True
    loader: Callable[[DatasetUnit], BeirData] | None = None

    def load(self, store_dir: Path | None = None) -> BeirData:
        """The unit's data; `store_dir` is where the corpus store lives (default: the user cache)."""
        if self.loader is not None:
            return self.loader(self)
        return load_beir_folder(self.path, split=self.split, name=self.name, store_dir=store_dir)


@dataclass
class DataOptions:
    """Where datasets come from: shared by `run`, `encode` and the Python API."""

    data_dir: Path = Path("data")
    split: str | None = None  # None: each dataset's own (test; dev for msmarco)
    download: bool = True
    base_url: str | None = None

    def units(self, spec: str) -> list[DatasetUnit]:
        """The dataset units `spec` names, downloaded first when missing (unless `download` is off)."""
        return resolve_dataset(spec, self.data_dir, self.split, self.download, self.base_url)


def resolve_dataset(
    spec: str,
    data_dir: Path | str = "data",
    split: str | None = None,
    download: bool = True,
    base_url: str | None = None,
) -> list[DatasetUnit]:
    """The units `spec` stands for; a missing registry dataset is downloaded into `data_dir` first."""
    path = Path(spec).expanduser()
    if (path / "corpus.jsonl").is_file():
        name = path.resolve().name
        known = registry.get(name) if name in registry.names() else None  # e.g. ~/beir/msmarco: dev
        return [
            DatasetUnit(
                name, path, split or (known.split if known else "test"), known.remove_identical_ids if known else True
            )
        ]
    if spec in ("peerqa", "peerqa-sentences"):
        return peerqa_units(Path(data_dir), spec)
    info = registry.get(spec)
    if info.bundled:
        return [DatasetUnit(info.name, BUNDLED / info.name, split or info.split)]
    units = registry.evaluation_units(spec, Path(data_dir))
    if any(not (p / "corpus.jsonl").is_file() for _, p in units):
        if not download:
            raise FileNotFoundError(f"{spec}: not found under {data_dir} (run `gtr-eval download {spec}`)")
        from .download import download as fetch

        fetch(spec, Path(data_dir), base_url=base_url)
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
        )
    ]
