"""The registry of datasets gtr-eval knows: the 18 of BEIR plus the bundled `demo` set.

Sources, checked against each other:
- md5 of each zip: the table in the BEIR README (github.com/beir-cellar/beir, "Available Datasets"),
  which ir_datasets also uses. BEIR's older `examples/dataset/md5.csv` lists superseded md5s for
  `fever` and `webis-touche2020` (the v1 Touché zip); the README values are the current ones.
- document and query counts: BEIR paper (Thakur et al., NeurIPS 2021 Datasets track), Table 1;
  `num_queries` counts the queries judged in the evaluation split (`split`), which is what BEIR's
  `GenericDataLoader.load(split)` keeps.

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

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["subsets"] = list(self.subsets)
        return d


def _public(
    name: str, md5: str, split: str, num_docs: int, num_queries: int, title: str, **kw
) -> DatasetInfo:
    return DatasetInfo(
        name=name,
        url=f"{BEIR_BASE_URL}/{name}.zip",
        md5=md5,
        split=split,
        num_docs=num_docs,
        num_queries=num_queries,
        title=title,
        **kw,
    )


def _private(name: str, num_docs: int, num_queries: int, title: str, how: str) -> DatasetInfo:
    return DatasetInfo(
        name=name,
        url=None,
        md5=None,
        split="test",
        num_docs=num_docs,
        num_queries=num_queries,
        public=False,
        title=title,
        how_to_obtain=(
            f"{how} Build the BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv) as BEIR "
            f"describes in {BEIR_NONPUBLIC_HELP}, then place it at DATA_DIR/{name}/ or pass the "
            "folder itself to the evaluation as a local dataset."
        ),
    )


_REGISTRY: dict[str, DatasetInfo] = {
    d.name: d
    for d in (
        _public("msmarco", "444067daf65d982533ea17ebd59501e4", "dev", 8_841_823, 6_980, "MS MARCO"),
        _public("trec-covid", "ce62140cb23feb9becf6270d0d1fe6d1", "test", 171_332, 50, "TREC-COVID"),
        _public("nfcorpus", "a89dba18a62ef92f7d323ec890a0d38d", "test", 3_633, 323, "NFCorpus"),
        _public("nq", "d4d3d2e48787a744b6f6e691ff534307", "test", 2_681_468, 3_452, "NQ"),
        _public("hotpotqa", "f412724f78b0d91183a0e86805e16114", "test", 5_233_329, 7_405, "HotpotQA"),
        _public("fiqa", "17918ed23cd04fb15047f73e6c3bd9d9", "test", 57_638, 648, "FiQA-2018"),
        _public("arguana", "8ad3e3c2a5867cdced806d6503f29b99", "test", 8_674, 1_406, "ArguAna"),
        # Touché-2020 v2: BEIR re-released the corrected corpus under the same file name.
        _public(
            "webis-touche2020", "46f650ba5a527fc69e0a6521c5a23563", "test", 382_545, 49, "Touché-2020 (v2)"
        ),
        _public(
            "cqadupstack",
            "4e41456d7df8ee7760a7f866133bda78",
            "test",
            457_199,
            13_145,
            "CQADupStack",
            subsets=CQADUPSTACK_SUBSETS,
        ),
        _public("quora", "18fb154900ba42a600f84b839c173167", "test", 522_931, 10_000, "Quora"),
        _public("dbpedia-entity", "c2a39eb420a3164af735795df012ac2c", "test", 4_635_922, 400, "DBPedia"),
        _public("scidocs", "38121350fc3a4d2f48850f6aff52e4a9", "test", 25_657, 1_000, "SCIDOCS"),
        _public("fever", "5a818580227bfb4b35bb6fa46d9b6c03", "test", 5_416_568, 6_666, "FEVER"),
        _public(
            "climate-fever", "8b66f0a9126c521bae2bde127b4dc99d", "test", 5_416_593, 1_535, "Climate-FEVER"
        ),
        _public("scifact", "5f7d1de60b170fc8027bb7898e2efca1", "test", 5_183, 300, "SciFact"),
        _private(
            "bioasq",
            14_914_602,
            500,
            "BioASQ",
            "Register at http://bioasq.org/ and download the task 9a (2020) documents and the "
            "Task 8b training and test questions; BEIR adds a few documents by hand.",
        ),
        _private(
            "signal1m",
            2_866_316,
            97,
            "Signal-1M (RT)",
            "Request the Signal-1M corpus, queries and qrels at "
            "https://research.signal-ai.com/datasets/signal1m-tweetir.html and scrape the tweets "
            "with BEIR's scrape_tweets.py.",
        ),
        _private(
            "trec-news",
            594_977,
            57,
            "TREC-NEWS",
            "Apply for the Washington Post corpus at https://trec.nist.gov/data/wapost/ and take the "
            "2019 News Track background-linking topics and qrels from "
            "https://trec.nist.gov/data/news2019.html.",
        ),
        _private(
            "robust04",
            528_155,
            249,
            "Robust04",
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
        ),
    )
}


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
            f"unknown dataset {name!r}; known datasets: {', '.join(_REGISTRY)}"
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
    return tabulate(rows, headers=headers, intfmt=",")


def datasets_json() -> str:
    return json.dumps([d.to_dict() for d in _REGISTRY.values()], indent=2, ensure_ascii=False)
