"""The registry of datasets gtr-eval knows: the 18 of BEIR, the 13 of NanoBEIR and the bundled `demo` set.

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
- NanoBEIR (`nano-<BEIR name>`): hub copies only, pinned and row-checked like BEIR's; see `NANOBEIR`.

A dataset name becomes a folder name (`data_dir/name`), so `get` refuses names that could escape
the data folder before looking them up.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from tabulate import tabulate

from ..errors import Mistake, canonical, unknown

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


SOURCES = ("ukp", "hf-beir", "hf-nanobeir", "hf-mteb")
SOURCE_HELP = {
    "ukp": "BEIR's zip server (public.ukp.informatik.tu-darmstadt.de), md5-verified",
    "hf-beir": "BEIR's own copies on the Hugging Face hub: BeIR/<name> and BeIR/<name>-qrels",
    "hf-nanobeir": "NanoBEIR's own copies on the Hugging Face hub: zeta-alpha-ai/Nano<name>",
    "hf-mteb": "MTEB's copies on the Hugging Face hub: mteb/<name>, at the revision MTEB pins",
}


@dataclass(frozen=True)
class HubCopy:
    """Where one BEIR folder lives on the Hugging Face hub.

    `revision` None means the repo's `main`: no published commit is known for it (the commit actually
    fetched is recorded in the download marker and the result manifest). `folder` is the folder
    inside the repos (BeIR/cqadupstack keeps one per forum). `scored` False: the qrels have no score
    column, every pair listed being relevant (NanoBEIR's originals), so each is read as grade 1, as
    sentence-transformers and MTEB read them."""

    repo: str
    revision: str | None
    qrels_repo: str
    qrels_revision: str | None
    folder: str = ""
    scored: bool = True


@dataclass(frozen=True)
class ExpectedRows:
    """What a correct copy of one BEIR folder holds for the evaluation split; a hub copy that differs
    is refused. `judgments` counts qrels with a non-zero score (MTEB's `num_relevant_docs`)."""

    documents: int
    queries: int
    judgments: int


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

    `judges_nonrelevant`: whether the evaluation split's qrels judge documents as non-relevant too
    (grade 0), as pooled assessments do (TREC-COVID, Touché, DBPedia, Robust04, TREC-NEWS, Signal-1M;
    SciDocs lists 25 judged negatives per query).  Only there does a low Judged@k say that the
    assessors never saw much of a ranking, so that its score may be underestimated; tables mark a
    system whose Judged@10 falls well below the baseline's on such a dataset.  Qrels of positives
    only (SciFact, NQ, FiQA, ...; NFCorpus too: BEIR's file holds grades 1 and 2, none 0) make
    Judged@k a precision, and a lower one is already in the score.
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
    # Per source, one copy per evaluation unit (CQADupStack: 12); per unit, what a copy must hold.
    hub: dict[str, tuple[HubCopy, ...]] = dataclasses.field(default_factory=dict)
    expected: tuple[ExpectedRows, ...] = ()
    judges_nonrelevant: bool = False

    @property
    def sources(self) -> tuple[str, ...]:
        """Where the dataset can be fetched from, the preferred source first (`--source auto`): BEIR's
        zip server for a set with a zip (an md5 to check it by), then its hub copies."""
        if self.bundled or not self.public:
            return ()
        return (*(("ukp",) if self.md5 else ()), *(s for s in SOURCES[1:] if s in self.hub))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["subsets"] = list(self.subsets)
        hub = d.pop("hub")
        d["sources"] = {s: {"url": self.url, "md5": self.md5} if s == "ukp" else hub[s] for s in self.sources}
        d["expected"] = [{"unit": u, **e} for u, e in zip(self.unit_names(), d["expected"], strict=False)]
        return d

    def unit_names(self) -> list[str]:
        return [f"{self.name}/{s}" for s in self.subsets] if self.subsets else [self.name]


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
    # The four non-public sets are TREC-style pooled assessments (BioASQ's experts judged positives).
    return DatasetInfo(
        name=name,
        url=None,
        md5=None,
        split="test",
        num_docs=num_docs,
        num_queries=num_queries,
        public=False,
        title=title,
        judges_nonrelevant=name != "bioasq",
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
        _public(
            "msmarco",
            "444067daf65d982533ea17ebd59501e4",
            "dev",
            8_841_823,
            6_980,
            "MS MARCO",
            (5.96, 55.98),
            1.0,
        ),
        _public(
            "trec-covid",
            "ce62140cb23feb9becf6270d0d1fe6d1",
            "test",
            171_332,
            50,
            "TREC-COVID",
            (10.60, 160.77),
            0.07,
            judges_nonrelevant=True,
        ),
        _public(
            "nfcorpus",
            "a89dba18a62ef92f7d323ec890a0d38d",
            "test",
            3_633,
            323,
            "NFCorpus",
            (3.30, 232.26),
            0.002,
        ),
        _public("nq", "d4d3d2e48787a744b6f6e691ff534307", "test", 2_681_468, 3_452, "NQ", (9.16, 78.88), 0.5),
        _public(
            "hotpotqa",
            "f412724f78b0d91183a0e86805e16114",
            "test",
            5_233_329,
            7_405,
            "HotpotQA",
            (17.61, 46.30),
            0.38,
        ),
        _public(
            "fiqa",
            "17918ed23cd04fb15047f73e6c3bd9d9",
            "test",
            57_638,
            648,
            "FiQA-2018",
            (10.77, 132.32),
            0.017,
        ),
        _public(
            "arguana",
            "8ad3e3c2a5867cdced806d6503f29b99",
            "test",
            8_674,
            1_406,
            "ArguAna",
            (192.98, 166.80),
            0.008,
        ),
        # Touché-2020 v2: BEIR re-released the corrected corpus under the same file name.
        _public(
            "webis-touche2020",
            "46f650ba5a527fc69e0a6521c5a23563",
            "test",
            382_545,
            49,
            "Touché-2020 (v2)",
            (6.55, 292.37),
            0.23,
            judges_nonrelevant=True,
        ),
        _public(
            "cqadupstack",
            "4e41456d7df8ee7760a7f866133bda78",
            "test",
            457_199,
            13_145,
            "CQADupStack",
            (8.59, 129.09),
            0.12,
            subsets=CQADUPSTACK_SUBSETS,
        ),
        _public(
            "quora",
            "18fb154900ba42a600f84b839c173167",
            "test",
            522_931,
            10_000,
            "Quora",
            (9.53, 11.44),
            0.015,
        ),
        _public(
            "dbpedia-entity",
            "c2a39eb420a3164af735795df012ac2c",
            "test",
            4_635_922,
            400,
            "DBPedia",
            (5.39, 49.68),
            0.4,
            judges_nonrelevant=True,
        ),
        _public(
            "scidocs",
            "38121350fc3a4d2f48850f6aff52e4a9",
            "test",
            25_657,
            1_000,
            "SCIDOCS",
            (9.38, 176.19),
            0.023,
            judges_nonrelevant=True,
        ),
        _public(
            "fever", "5a818580227bfb4b35bb6fa46d9b6c03", "test", 5_416_568, 6_666, "FEVER", (8.13, 84.76), 1.2
        ),
        _public(
            "climate-fever",
            "8b66f0a9126c521bae2bde127b4dc99d",
            "test",
            5_416_593,
            1_535,
            "Climate-FEVER",
            (20.13, 84.76),
            1.2,
        ),
        _public(
            "scifact",
            "5f7d1de60b170fc8027bb7898e2efca1",
            "test",
            5_183,
            300,
            "SciFact",
            (12.37, 213.63),
            0.003,
        ),
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

# ------------------------------------------------------------------------------------------- hub
# BeIR/<name> and BeIR/<name>-qrels: (corpus-and-queries commit, qrels commit). These commits are
# the ones public code pins and downloads (with file sha256s or row counts that agree with BEIR's):
# scifact, msmarco, nq, trec-covid (one acquisition script recording sha256 and row counts);
# nfcorpus, fiqa, hotpotqa, cqadupstack (projects pinning them with the parquet paths read here).
# None: no published commit is known, so `main` is fetched and the commit it had is recorded.
BEIR_HUB: dict[str, tuple[str | None, str | None]] = {
    "msmarco": ("a918e0d11a77ed33f42f29d98340b655593b96ad", "253fbf8a3f8d4a0932b63882b5162bedc84779f5"),
    "trec-covid": ("7e16fde3016c639c7f856e803f4bab92645562c4", "532ac68ee6756ac22c9346eebf65bd3c6a042e10"),
    "nfcorpus": ("b5026a0e96e8a7ac4f95f482a596389289d46269", "a451b3b26d3ae1358f259c1a3a4dd61fcea35a65"),
    "nq": ("b7253e6c379163d024ddb1d6948152a91a2e3b46", "519acd4e48bb3e5da22b2b888ce36c614f4f2bc9"),
    "hotpotqa": ("a7e8bab212f5a89f9be1bc9b654aa6dfa317f32b", "b15429e9244c8ec966985d7778427c3b1543b314"),
    "fiqa": ("979c07a7cb5ccc6ca009792241fa1250b98055dd", "252958f2d646e22cab6d0c72dd3f0d5de6d0655a"),
    "arguana": (None, None),
    "webis-touche2020": (None, None),
    "cqadupstack": ("e84b7220ce5a4e6c49aeb568983b0ec5a7584c2c", "13595a9f221256a9a21e91c8b0fed3563382b6a7"),
    "quora": (None, None),
    "dbpedia-entity": (None, None),
    "scidocs": (None, None),
    "fever": (None, None),
    "climate-fever": (None, None),
    "scifact": ("b3b5335604bf5ee3c4447671af975ea25143d4f5", "2938d17dc3b09882fdb8c12bbbe2e2dc0e75a029"),
}
# mteb/<repo> at the revision the MTEB package (2.26.24) pins for its task. Touché: MTEB's BEIR-v2
# task `Touche2020` (its newer Touche2020Retrieval.v3 is another corpus, 303,732 documents).
MTEB_HUB: dict[str, tuple[str, str]] = {
    "msmarco": ("msmarco", "c5a29a104738b98a9e76336939199e264163d4a0"),
    "trec-covid": ("trec-covid", "bb9466bac8153a0349341eb1b22e06409e78ef4e"),
    "nfcorpus": ("nfcorpus", "ec0fa4fe99da2ff19ca1214b7966684033a58814"),
    "nq": ("nq", "b774495ed302d8c44a3a7ea25c90dbce03968f31"),
    "hotpotqa": ("hotpotqa", "ab518f4d6fcca38d87c25209f94beba119d02014"),
    "fiqa": ("fiqa", "27a168819829fe9bcd655c2df245fb19452e8e06"),
    "arguana": ("arguana", "c22ab2a51041ffd869aaddef7af8d8215647e41a"),
    "webis-touche2020": ("touche2020", "a34f9a33db75fa0cbb21bb5cfc3dae8dc8bec93f"),
    "quora": ("quora", "e4e08e0b7dbe3c8700f0daef558ff32256715259"),
    "dbpedia-entity": ("dbpedia", "c0f706b76e590d620bd6618b3ca8efdd34e2d659"),
    "scidocs": ("scidocs", "f8c2fcf00f625baaa80f62ec5bd9e1fff3b8ae88"),
    "fever": ("fever", "bea83ef9e8fb933d90a2f1d5515737465d613e12"),
    "climate-fever": ("climate-fever", "47f2ac6acb640fc46020b02a5b59fdda04d39380"),
    "scifact": ("scifact", "d56462d0e63a25450459c4f213e49ffdb866f7f9"),
    "cqadupstack/android": ("CQADupstackAndroidRetrieval", "9be4c0e46342e8e3aff577a89b9a1ec9bc6b4af3"),
    "cqadupstack/english": ("cqadupstack-english", "ad9991cb51e31e31e430383c75ffb2885547b5f0"),
    "cqadupstack/gaming": ("cqadupstack-gaming", "4885aa143210c98657558c04aaf3dc47cfb54340"),
    "cqadupstack/gis": ("cqadupstack-gis", "5003b3064772da1887988e05400cf3806fe491f2"),
    "cqadupstack/mathematica": ("cqadupstack-mathematica", "90fceea13679c63fe563ded68f3b6f06e50061de"),
    "cqadupstack/physics": ("cqadupstack-physics", "79531abbd1fb92d06c6d6315a0cbbbf5bb247ea4"),
    "cqadupstack/programmers": ("cqadupstack-programmers", "6184bc1440d2dbc7612be22b50686b8826d22b32"),
    "cqadupstack/stats": ("cqadupstack-stats", "65ac3a16b8e91f9cee4c9828cc7c335575432a2a"),
    "cqadupstack/tex": ("cqadupstack-tex", "46989137a86843e03a6195de44b09deda022eec7"),
    "cqadupstack/unix": ("cqadupstack-unix", "6c6430d3a6d36f8d2a829195bc5dc94d7e063e53"),
    "cqadupstack/webmasters": ("cqadupstack-webmasters", "160c094312a0e1facb97e55eeddb698c0abe3571"),
    "cqadupstack/wordpress": ("cqadupstack-wordpress", "4ffe81d471b1924886b33c7567bfb200e9eec5c4"),
}
# Per evaluation unit: documents, queries judged in the evaluation split, non-zero judgments in it.
# From the statistics MTEB ships for its tasks (descriptive_stats/Retrieval/*.json, mteb 2.26.24),
# which agree with BEIR's Table 1 on documents and queries; SciFact's and NFCorpus's are also checked
# against the real BEIR files by the tests.
EXPECTED_ROWS: dict[str, tuple[int, int, int]] = {
    "msmarco": (8_841_823, 6_980, 7_437),
    "trec-covid": (171_332, 50, 24_675),
    "nfcorpus": (3_633, 323, 12_334),
    "nq": (2_681_468, 3_452, 4_201),
    "hotpotqa": (5_233_329, 7_405, 14_810),
    "fiqa": (57_638, 648, 1_706),
    "arguana": (8_674, 1_406, 1_406),
    "webis-touche2020": (382_545, 49, 932),
    "quora": (522_931, 10_000, 15_675),
    "dbpedia-entity": (4_635_922, 400, 15_286),
    "scidocs": (25_657, 1_000, 4_928),
    "fever": (5_416_568, 6_666, 7_937),
    "climate-fever": (5_416_593, 1_535, 4_681),
    "scifact": (5_183, 300, 339),
    "cqadupstack/android": (22_998, 699, 1_696),
    "cqadupstack/english": (40_221, 1_570, 3_765),
    "cqadupstack/gaming": (45_301, 1_595, 2_263),
    "cqadupstack/gis": (37_637, 885, 1_114),
    "cqadupstack/mathematica": (16_705, 804, 1_358),
    "cqadupstack/physics": (38_316, 1_039, 1_933),
    "cqadupstack/programmers": (32_176, 876, 1_675),
    "cqadupstack/stats": (42_269, 652, 913),
    "cqadupstack/tex": (68_184, 2_906, 5_154),
    "cqadupstack/unix": (47_382, 1_072, 1_693),
    "cqadupstack/webmasters": (17_405, 506, 1_395),
    "cqadupstack/wordpress": (48_605, 541, 744),
}


def _with_hub(info: DatasetInfo) -> DatasetInfo:
    if info.name not in BEIR_HUB:
        return info
    units = info.unit_names()
    rev, qrev = BEIR_HUB[info.name]
    beir = tuple(
        HubCopy(
            f"BeIR/{info.name}",
            rev,
            f"BeIR/{info.name}-qrels",
            qrev,
            u.split("/", 1)[1] if info.subsets else "",
        )
        for u in units
    )
    mteb = tuple(
        HubCopy(f"mteb/{MTEB_HUB[u][0]}", MTEB_HUB[u][1], f"mteb/{MTEB_HUB[u][0]}", MTEB_HUB[u][1])
        for u in units
    )
    expected = tuple(ExpectedRows(*EXPECTED_ROWS[u]) for u in units)
    return dataclasses.replace(info, hub={"hf-beir": beir, "hf-mteb": mteb}, expected=expected)


_REGISTRY = {name: _with_hub(info) for name, info in _REGISTRY.items()}

# ------------------------------------------------------------------------------------- NanoBEIR
# NanoBEIR (Zeta Alpha, 2024): 13 BEIR sets, each cut to 50 queries (Touché: 49) and a corpus of
# the documents judged relevant to them plus BM25's top-ranked ones (up to 10K documents). Registry name
# `nano-<BEIR name>`. BEIR name -> (NanoBEIR's name, MTEB's repo), the hub copies:
# - hf-nanobeir: zeta-alpha-ai/<NanoBEIR name>, the originals; sentence-transformers'
#   NanoBEIREvaluator loads them (v3.3 to v5.1, unpinned: `load_dataset(id, "corpus", split="train")`;
#   v5.2+ reads sentence-transformers/NanoBEIR-en, a reformatted copy in one repo, also unpinned).
# - hf-mteb: mteb/<MTEB repo>, rebuilt by MTEB from the originals (`source_datasets` on its card).
# Both: parquet `corpus/`, `queries/`, `qrels/` with the one split `train`.
NANOBEIR: dict[str, tuple[str, str]] = {
    "arguana": ("NanoArguAna", "NanoArguAnaRetrieval"),
    "climate-fever": ("NanoClimateFEVER", "NanoClimateFeverRetrieval"),
    "dbpedia-entity": ("NanoDBPedia", "NanoDBPediaRetrieval"),
    "fever": ("NanoFEVER", "NanoFEVERRetrieval"),
    "fiqa": ("NanoFiQA2018", "NanoFiQA2018Retrieval"),
    "hotpotqa": ("NanoHotpotQA", "NanoHotpotQARetrieval"),
    "msmarco": ("NanoMSMARCO", "NanoMSMARCORetrieval"),
    "nfcorpus": ("NanoNFCorpus", "NanoNFCorpusRetrieval"),
    "nq": ("NanoNQ", "NanoNQRetrieval"),
    "quora": ("NanoQuoraRetrieval", "NanoQuoraRetrieval"),
    "scidocs": ("NanoSCIDOCS", "NanoSCIDOCSRetrieval"),
    "scifact": ("NanoSciFact", "NanoSciFactRetrieval"),
    "webis-touche2020": ("NanoTouche2020", "NanoTouche2020Retrieval"),
}
# (zeta-alpha-ai commit, mteb commit). The first: MTEB 1.39.7, the last 1.x release, pinned them in its
# task metadata (mteb/tasks/Retrieval/eng/Nano*Retrieval.py, `dataset["revision"]`, the commit
# `load_data` fetches). The second: the revision MTEB 2.26.24 pins for the same task
# (`mteb.get_task("NanoSciFactRetrieval").metadata.dataset`; the tasks of its benchmark "NanoBEIR").
NANOBEIR_HUB: dict[str, tuple[str, str]] = {
    "arguana": ("8f4a982d470a32c45817738b9d29042ca55d75ad", "63ac9f026e8f6b85dc0622f3d630ed7a1758e9ec"),
    "climate-fever": ("96741bfa30b9f56db8c9eb7d08e775ed6474f206", "ccb5552bc17e87afe0f9479fb4346898213a71db"),
    "dbpedia-entity": (
        "438f1c25129f05db6238699b5afdc9c6b58d2096",
        "2d088f80d7a640eac0be5c66408d68c3f782baa1",
    ),
    "fever": ("a8bfdf1bf15181167a7e22e69cf8754bdea9b4c8", "a6490dfeed0f13c2a052e39c6ddaeb6086afd4a8"),
    "fiqa": ("4163ba032953d5044a7a6244261413f609c14342", "ede84da4793cd2d4e61bba0dd08fc58de90f3681"),
    "hotpotqa": ("d79c0cdda980aba54842756770928035e1b61a51", "a38a2615f29adba8b47a42905031aa9c137d8fae"),
    "msmarco": ("7b8ff22f2771dc65ac5b439f222eb19a1f56abda", "5a5aa0c3df65d6883d85c8f5cdc88e679633595e"),
    "nfcorpus": ("dd542a7efb9ad2136b9e00768b60fca9038f8156", "2eec9d63140fb9af7c75ad0fdbf6350aaf20e94e"),
    "nq": ("77540146379abf95df8326a3c5bb9eb21c7146c3", "e3973b405feb9e94d07fd971d690d24d7f45264a"),
    "quora": ("2ab2d73e6c862026282808b913a34f4136928545", "3ee153e5710da83a7f35df0cb1db4a0ad036072a"),
    "scidocs": ("484eb90549fc3f0b9c42b3551e80ceb999515537", "cf39b8741a6f2e984d0b8f4796b2dd5bb65390f9"),
    "scifact": ("309f1d1ae3ae2e092444a8a0c25bed59b82318bc", "8c5f7bbe90bb865f46c67710221afa7d9096251b"),
    "webis-touche2020": (
        "0d2f26ed8c5ad309f95c7f9499c70a40e140fccd",
        "ff81c0caff8b6febe1495eae9f2ca3eddad074b8",
    ),
}
# Documents, queries, judgments (all relevant: the originals list positive pairs only) and the hub
# download in MB. The counts: the statistics MTEB 2.26.24 ships for the tasks
# (descriptive_stats/Retrieval/Nano*Retrieval.json: num_documents, num_queries, num_relevant_docs);
# their sums are the row totals the zeta-alpha-ai collection page lists for each repo (NanoSciFact:
# 2,919 + 50 + 56 = 3.03k). The MB: NanoSciFact's from its card (corpus 2,408,011 + queries 5,482 +
# qrels 2,082 bytes), the others at its 0.58 bytes of parquet per character of MTEB's
# number_of_characters; they only feed `run --plan`.
NANOBEIR_ROWS: dict[str, tuple[int, int, int, float]] = {
    "arguana": (3_635, 50, 50, 2.2),
    "climate-fever": (3_408, 50, 148, 3.2),
    "dbpedia-entity": (6_045, 50, 1_158, 1.2),
    "fever": (4_996, 50, 57, 3.5),
    "fiqa": (4_598, 50, 123, 2.4),
    "hotpotqa": (5_090, 50, 100, 1.0),
    "msmarco": (5_043, 50, 50, 1.0),
    "nfcorpus": (2_953, 50, 2_518, 2.6),
    "nq": (5_035, 50, 57, 1.5),
    "quora": (5_046, 50, 70, 0.2),
    "scidocs": (2_210, 50, 244, 1.2),
    "scifact": (2_919, 50, 56, 2.4),
    "webis-touche2020": (5_745, 49, 932, 7.1),
}
# The copies' one split; the registry evaluates it, so results are `nano-<name>.json`, not `@train`.
NANOBEIR_SPLIT = "train"


def _nano(beir: str) -> DatasetInfo:
    """`nano-<beir>`: NanoBEIR's cut of the BEIR set `beir`. Its words per query and document (for
    `run --plan` only) are the BEIR set's: the documents and queries are drawn from it."""
    nano, mteb_repo = NANOBEIR[beir]
    zeta_revision, mteb_revision = NANOBEIR_HUB[beir]
    docs, queries, judgments, mb = NANOBEIR_ROWS[beir]
    full = _REGISTRY[beir]
    zeta, mteb = f"zeta-alpha-ai/{nano}", f"mteb/{mteb_repo}"
    return DatasetInfo(
        name=f"nano-{beir}",
        url=None,
        md5=None,
        split=NANOBEIR_SPLIT,
        num_docs=docs,
        num_queries=queries,
        title=nano,
        query_words=full.query_words,
        doc_words=full.doc_words,
        zip_gb=mb / 1000,
        hub={
            "hf-nanobeir": (HubCopy(zeta, zeta_revision, zeta, zeta_revision, scored=False),),
            "hf-mteb": (HubCopy(mteb, mteb_revision, mteb, mteb_revision),),
        },
        expected=(ExpectedRows(docs, queries, judgments),),
    )


_NANO = [_nano(beir) for beir in NANOBEIR]
_REGISTRY.update({info.name: info for info in _NANO})
NANOBEIR_NAMES = tuple(info.name for info in _NANO)


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
    return tuple(d for d in DATASET_ORDER if d != "msmarco" and (_REGISTRY[d].public or not public_only))


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
        DatasetGroup(
            "nanobeir",
            NANOBEIR_NAMES,
            "NanoBEIR's 13 small sets (50 queries each; MS MARCO included, as in NanoBEIR's mean); "
            "their scores are not comparable with BEIR's",
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
        raise Mistake("dataset name must be a non-empty string")
    if "/" in name or "\\" in name:
        raise Mistake(f"invalid dataset name {name!r}: it contains a path separator")
    if ".." in name:
        raise Mistake(f"invalid dataset name {name!r}: it contains '..'")
    if name.startswith("."):
        raise Mistake(f"invalid dataset name {name!r}: it starts with '.'")
    if "\x00" in name or ":" in name:
        raise Mistake(f"invalid dataset name {name!r}: it contains a NUL or ':'")
    return name


class UnknownDatasetError(Mistake, KeyError):
    """An unknown dataset name; the message suggests the closest and lists the known ones."""

    def __str__(self) -> str:  # KeyError would print the repr of its argument
        return str(self.args[0])


def get(name: str) -> DatasetInfo:
    validate_name(name)
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownDatasetError(
            str(unknown("dataset", name, known_names(), "datasets", other="or a BEIR folder"))
        ) from None


def known_names() -> list[str]:
    """Every name `-d` accepts besides a folder: datasets, sweeps, PeerQA."""
    return [*_REGISTRY, *GROUPS, "peerqa", "peerqa-sentences"]


def canonical_name(spec: str) -> str:
    """The known name `spec` is, case aside (`SciFact` -> `scifact`), else `spec` as it is."""
    return canonical(spec, known_names()) or spec


def default_split(dataset: str) -> str:
    """The split a dataset (or a CQADupStack subforum, `cqadupstack/android`) is evaluated on unless
    asked otherwise: the registry's (dev for msmarco), else test."""
    base = dataset.split("/", 1)[0]
    return _REGISTRY[base].split if base in _REGISTRY else "test"


def judges_nonrelevant(dataset: str) -> bool | None:
    """The registry's `judges_nonrelevant` for a dataset (or a CQADupStack subforum); None for a
    dataset it does not know (a local folder: then its qrels say, see `judgments`)."""
    base = dataset.split("/", 1)[0]
    return _REGISTRY[base].judges_nonrelevant if base in _REGISTRY else None


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
            ", ".join(d.sources) or "-",
        )
        for d in _REGISTRY.values()
    ]
    headers = ("name", "split", "docs", "queries", "public", "md5", "subsets", "sources")
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
