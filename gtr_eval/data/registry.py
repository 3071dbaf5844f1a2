"""The registry of datasets gtr-eval knows: the 18 of BEIR plus the bundled `demo` set.

Sources, checked against each other:
- md5 of each zip: the table in the BEIR README (github.com/beir-cellar/beir, "Available Datasets"),
  which ir_datasets also uses. BEIR's older `examples/dataset/md5.csv` lists superseded md5s for
  `fever` and `webis-touche2020` (the v1 Touché zip); the README values are the current ones.
- document and query counts, and average query and document lengths in words: BEIR paper (Thakur et
  al., NeurIPS 2021 Datasets track), Table 1; `num_queries` counts the queries judged in the
  evaluation split (`split`), which is what BEIR's `GenericDataLoader.load(split)` keeps. (The
  lengths agree with the real SciFact and NFCorpus files to within 1 %: 214.6 and 233.8 words per
  `title + " " + text`, 12.38 and 3.32 per query.) They only feed `run --plan`'s time estimates.
- `zip_gb`: the archive sizes listed in BEIR's README (rounded; nfcorpus.zip is 2,448,432 bytes).

A dataset name becomes a folder name (`data_dir/name`), so `get` refuses names that could escape
the data folder before looking them up.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from tabulate import tabulate

BEIR_BASE_URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets"
BEIR_NONPUBLIC_HELP = "https://github.com/beir-cellar/beir/blob/main/examples/dataset/README.md"

CQADUPSTACK_SUBSETS = (
    "android",
    "english",
    "gaming",
    "gis",
    "mathematica",
    "physics",
    "programmers",
    "stats",
    "tex",
    "unix",
    "webmasters",
    "wordpress",
)


@dataclass(frozen=True)
class DatasetInfo:
    """One dataset.

    `remove_identical_ids`: whether the evaluation drops retrieved documents whose id equals the
    query id before scoring. BEIR's `EvaluateRetrieval.evaluate(..., ignore_identical_ids=True)`
    does so by default, and every published BEIR figure uses that default, so it is True for every
    dataset here. It changes scores only where query and document ids share a namespace: ArguAna
    (a query is itself a corpus argument, so it would retrieve itself first) and Quora (questions
    are both queries and documents).

    `subsets`: for CQADupStack, the 12 StackExchange sub-forums; each is its own BEIR folder and is
    evaluated separately, and the dataset's score is the mean over them (BEIR's convention).
    """

    name: str
    url: str | None
    md5: str | None
    split: str
    num_docs: int
    num_queries: int
    public: bool = True
    remove_identical_ids: bool = True
    subsets: tuple[str, ...] = ()
    how_to_obtain: str = ""
    bundled: bool = False
    title: str = ""
    query_words: float = 0.0
    doc_words: float = 0.0
    zip_gb: float = 0.0

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["subsets"] = list(self.subsets)
        return d


def _public(
    name: str,
    md5: str,
    split: str,
    num_docs: int,
    num_queries: int,
    title: str,
    words: tuple[float, float],
    zip_gb: float,
    **kw,
) -> DatasetInfo:
    return DatasetInfo(
        name=name,
        url=f"{BEIR_BASE_URL}/{name}.zip",
        md5=md5,
        split=split,
        num_docs=num_docs,
        num_queries=num_queries,
        title=title,
        query_words=words[0],
        doc_words=words[1],
        zip_gb=zip_gb,
        **kw,
    )


def _private(
    name: str, num_docs: int, num_queries: int, title: str, words: tuple[float, float], how: str
) -> DatasetInfo:
    return DatasetInfo(
        name=name,
        url=None,
        md5=None,
        split="test",
        num_docs=num_docs,
        num_queries=num_queries,
        public=False,
        title=title,
        query_words=words[0],
        doc_words=words[1],
        how_to_obtain=(
            f"{how} Build the BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv) as BEIR "
            f"describes in {BEIR_NONPUBLIC_HELP}, then place it at DATA_DIR/{name}/ or pass the "
            "folder itself to the evaluation as a local dataset."
        ),
    )


_REGISTRY: dict[str, DatasetInfo] = {
    d.name: d
    for d in (
        # name, md5, split, documents, judged queries, title, (query words, document words), zip GB
        _public("msmarco", "444067daf65d982533ea17ebd59501e4", "dev", 8_841_823, 6_980, "MS MARCO",
                (5.96, 55.98), 1.0),
        _public("trec-covid", "ce62140cb23feb9becf6270d0d1fe6d1", "test", 171_332, 50, "TREC-COVID",
                (10.60, 160.77), 0.07),
        _public("nfcorpus", "a89dba18a62ef92f7d323ec890a0d38d", "test", 3_633, 323, "NFCorpus",
                (3.30, 232.26), 0.002),
        _public("nq", "d4d3d2e48787a744b6f6e691ff534307", "test", 2_681_468, 3_452, "NQ",
                (9.16, 78.88), 0.5),
        _public("hotpotqa", "f412724f78b0d91183a0e86805e16114", "test", 5_233_329, 7_405, "HotpotQA",
                (17.61, 46.30), 0.38),
        _public("fiqa", "17918ed23cd04fb15047f73e6c3bd9d9", "test", 57_638, 648, "FiQA-2018",
                (10.77, 132.32), 0.017),
        _public("arguana", "8ad3e3c2a5867cdced806d6503f29b99", "test", 8_674, 1_406, "ArguAna",
                (192.98, 166.80), 0.008),
        # Touché-2020 v2: BEIR re-released the corrected corpus under the same file name.
        _public("webis-touche2020", "46f650ba5a527fc69e0a6521c5a23563", "test", 382_545, 49,
                "Touché-2020 (v2)", (6.55, 292.37), 0.23),
        _public("cqadupstack", "4e41456d7df8ee7760a7f866133bda78", "test", 457_199, 13_145, "CQADupStack",
                (8.59, 129.09), 0.12, subsets=CQADUPSTACK_SUBSETS),
        _public("quora", "18fb154900ba42a600f84b839c173167", "test", 522_931, 10_000, "Quora",
                (9.53, 11.44), 0.015),
        _public("dbpedia-entity", "c2a39eb420a3164af735795df012ac2c", "test", 4_635_922, 400, "DBPedia",
                (5.39, 49.68), 0.4),
        _public("scidocs", "38121350fc3a4d2f48850f6aff52e4a9", "test", 25_657, 1_000, "SCIDOCS",
                (9.38, 176.19), 0.023),
        _public("fever", "5a818580227bfb4b35bb6fa46d9b6c03", "test", 5_416_568, 6_666, "FEVER",
                (8.13, 84.76), 1.2),
        _public("climate-fever", "8b66f0a9126c521bae2bde127b4dc99d", "test", 5_416_593, 1_535,
                "Climate-FEVER", (20.13, 84.76), 1.2),
        _public("scifact", "5f7d1de60b170fc8027bb7898e2efca1", "test", 5_183, 300, "SciFact",
                (12.37, 213.63), 0.003),
        _private(
            "bioasq",
            14_914_602,
            500,
            "BioASQ",
            (8.05, 202.61),
            "Register at http://bioasq.org/ and download the task 9a (2020) documents and the "
            "Task 8b training and test questions; BEIR adds a few documents by hand.",
        ),
        _private(
            "signal1m",
            2_866_316,
            97,
            "Signal-1M (RT)",
            (9.30, 13.93),
            "Request the Signal-1M corpus, queries and qrels at "
            "https://research.signal-ai.com/datasets/signal1m-tweetir.html and scrape the tweets "
            "with BEIR's scrape_tweets.py.",
        ),
        _private(
            "trec-news",
            594_977,
            57,
            "TREC-NEWS",
            (11.14, 634.79),
            "Apply for the Washington Post corpus at https://trec.nist.gov/data/wapost/ and take the "
            "2019 News Track background-linking topics and qrels from "
            "https://trec.nist.gov/data/news2019.html.",
        ),
        _private(
            "robust04",
            528_155,
            249,
            "Robust04",
            (15.27, 466.99),
            "Apply for TREC disks 4 and 5 at https://trec.nist.gov/data/cd45/index.html, then build "
            "corpus, queries (descriptions) and qrels with ir_datasets key 'trec-robust04' "
            "(https://ir-datasets.com/trec-robust04.html).",
        ),
        DatasetInfo(
            name="demo",
            url=None,
            md5=None,
            split="test",
            num_docs=24,
            num_queries=8,
            public=True,
            bundled=True,
            title="gtr-eval demo (not a benchmark)",
            how_to_obtain="Shipped inside the package (gtr_eval/data/demo); nothing to download.",
            query_words=7.1,
            doc_words=23.5,
        ),
    )
}

# The GTR paper's (and BEIR paper's) row order: MS MARCO first; reports sort datasets by it.
DATASET_ORDER = (
    "msmarco",
    "trec-covid",
    "bioasq",
    "nfcorpus",
    "nq",
    "hotpotqa",
    "fiqa",
    "signal1m",
    "trec-news",
    "robust04",
    "arguana",
    "webis-touche2020",
    "cqadupstack",
    "quora",
    "dbpedia-entity",
    "scidocs",
    "fever",
    "climate-fever",
    "scifact",
)
SMALL_MAX_DOCS = 600_000


@dataclass(frozen=True)
class DatasetGroup:
    """A one-word sweep (`-d beir`): its datasets in the paper's order, and what it means."""

    name: str
    members: tuple[str, ...]
    description: str


def _zero_shot(public_only: bool) -> tuple[str, ...]:
    # MS MARCO is GTR's training set, so the zero-shot table (and BEIR's zero-shot average) leaves it out.
    return tuple(
        d for d in DATASET_ORDER if d != "msmarco" and (_REGISTRY[d].public or not public_only)
    )


GROUPS: dict[str, DatasetGroup] = {
    g.name: g
    for g in (
        DatasetGroup(
            "beir",
            _zero_shot(public_only=True),
            "the 14 public BEIR datasets of the zero-shot table (MS MARCO, GTR's training set, is "
            "left out: add -d msmarco)",
        ),
        DatasetGroup(
            "beir-small",
            tuple(d for d in _zero_shot(public_only=True) if _REGISTRY[d].num_docs < SMALL_MAX_DOCS),
            f"those of `beir` with fewer than {SMALL_MAX_DOCS:,} documents",
        ),
        DatasetGroup(
            "paper",
            _zero_shot(public_only=False),
            "the 18 of the GTR paper's table: `beir`, plus bioasq, signal1m, trec-news and robust04 "
            "where found under the data folder (not public)",
        ),
    )
}


def group(name: str) -> DatasetGroup | None:
    return GROUPS.get(name)


def names() -> list[str]:
    return list(_REGISTRY)


def validate_name(name: str) -> str:
    """Refuse names that could become a path outside the data folder."""
    if not isinstance(name, str) or not name:
        raise ValueError("dataset name must be a non-empty string")
    if "/" in name or "\\" in name:
        raise ValueError(f"invalid dataset name {name!r}: it contains a path separator")
    if ".." in name:
        raise ValueError(f"invalid dataset name {name!r}: it contains '..'")
    if name.startswith("."):
        raise ValueError(f"invalid dataset name {name!r}: it starts with '.'")
    if "\x00" in name or ":" in name:
        raise ValueError(f"invalid dataset name {name!r}: it contains a NUL or ':'")
    return name


class UnknownDatasetError(KeyError):
    """An unknown dataset name; the message lists the known ones."""

    def __str__(self) -> str:  # KeyError would print the repr of its argument
        return str(self.args[0])


def get(name: str) -> DatasetInfo:
    validate_name(name)
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownDatasetError(
            f"unknown dataset {name!r}; known datasets: {', '.join(_REGISTRY)}; "
            f"sweeps: {', '.join(GROUPS)}"
        ) from None


def evaluation_units(name: str, root: Path) -> list[tuple[str, Path]]:
    """The BEIR folders to evaluate for `name` under `root`, with their display names.

    CQADupStack yields one unit per sub-forum (`cqadupstack/android`, ...); the evaluation code
    averages their scores, as BEIR does.
    """
    info = get(name)
    root = Path(root)
    if info.subsets:
        return [(f"{name}/{sub}", root / name / sub) for sub in info.subsets]
    return [(name, root / name)]


def is_present(name: str, root: Path) -> bool:
    """Whether every BEIR folder of `name` is under `root` (a corpus.jsonl in each)."""
    return all((p / "corpus.jsonl").is_file() for _, p in evaluation_units(name, Path(root)))


def datasets_table() -> str:
    rows = [
        (
            d.name,
            d.split,
            d.num_docs,
            d.num_queries,
            "bundled" if d.bundled else ("yes" if d.public else "no"),
            d.md5 or "-",
            len(d.subsets) or "",
        )
        for d in _REGISTRY.values()
    ]
    headers = ("name", "split", "docs", "queries", "public", "md5", "subsets")
    sweeps = "\n".join(
        f"  -d {g.name}: {g.description}\n      {', '.join(g.members)}" for g in GROUPS.values()
    )
    return tabulate(rows, headers=headers, intfmt=",") + "\n\nSweeps (one word for many datasets):\n" + sweeps


def datasets_json() -> str:
    rows = []
    for d in _REGISTRY.values():
        row = d.to_dict()
        row["groups"] = [g.name for g in GROUPS.values() if d.name in g.members]
        rows.append(row)
    return json.dumps(rows, indent=2, ensure_ascii=False)
