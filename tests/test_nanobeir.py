"""NanoBEIR as datasets: `nano-<BEIR name>` (13 of them) and the sweep `-d nanobeir`.

The registry's facts are checked against MTEB's own files where the package is installed (the pinned
revisions, the row counts). The download tests write a copy of NanoSciFact into a hub cache in the
exact layout of each real repo (hub_fixtures.py: zeta-alpha-ai/NanoSciFact, mteb/NanoSciFactRetrieval),
its rows drawn from the real SciFact in ../shared/data at NanoSciFact's real size (2,919 documents, 50
queries, 56 judgments), so the registry entry itself is what is fetched and checked; the BEIR folder
the conversion must give is written out here, independently, and compared byte for byte.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import socket
import subprocess
from pathlib import Path

import pytest
from cli_process import gtr_eval as run_gtr_eval
from click.testing import CliRunner
from hub_fixtures import NANO_FILE, install, nanobeir_files, nanobeir_mteb_files, read_beir

from gtr_eval.artifacts import RECORD
from gtr_eval.cli import cli
from gtr_eval.data import registry
from gtr_eval.data.download import MARKER, download
from gtr_eval.data.loader import DataError, load_beir_folder

NANO = [
    "nano-arguana",
    "nano-climate-fever",
    "nano-dbpedia-entity",
    "nano-fever",
    "nano-fiqa",
    "nano-hotpotqa",
    "nano-msmarco",
    "nano-nfcorpus",
    "nano-nq",
    "nano-quora",
    "nano-scidocs",
    "nano-scifact",
    "nano-webis-touche2020",
]
# MTEB's task name for each (its NanoBEIR benchmark), where the package keeps its pin and statistics.
MTEB_TASK = {
    "nano-arguana": "NanoArguAnaRetrieval",
    "nano-climate-fever": "NanoClimateFeverRetrieval",
    "nano-dbpedia-entity": "NanoDBPediaRetrieval",
    "nano-fever": "NanoFEVERRetrieval",
    "nano-fiqa": "NanoFiQA2018Retrieval",
    "nano-hotpotqa": "NanoHotpotQARetrieval",
    "nano-msmarco": "NanoMSMARCORetrieval",
    "nano-nfcorpus": "NanoNFCorpusRetrieval",
    "nano-nq": "NanoNQRetrieval",
    "nano-quora": "NanoQuoraRetrieval",
    "nano-scidocs": "NanoSCIDOCSRetrieval",
    "nano-scifact": "NanoSciFactRetrieval",
    "nano-webis-touche2020": "NanoTouche2020Retrieval",
}
Pairs = list[tuple[str, str]]


def _cli(*args: str):
    return CliRunner().invoke(cli, list(args))


# ---------------------------------------------------------------------------------------------
# The registry


def test_the_13_sets_are_registered_with_two_pinned_hub_copies_and_a_sweep():
    assert [n for n in registry.names() if n.startswith("nano-")] == NANO
    assert list(registry.GROUPS["nanobeir"].members) == NANO
    for name in NANO:
        info = registry.get(name)
        beir = registry.get(name.removeprefix("nano-"))  # the set it was cut from, by the same name
        assert info.public and info.split == "train" and info.md5 is None and info.url is None
        assert info.sources == ("hf-nanobeir", "hf-mteb"), name
        (zeta,), (mteb,) = info.hub["hf-nanobeir"], info.hub["hf-mteb"]
        assert zeta.repo == zeta.qrels_repo == f"zeta-alpha-ai/{info.title}" and not zeta.scored
        assert mteb.repo == mteb.qrels_repo == f"mteb/{MTEB_TASK[name]}" and mteb.scored
        for rev in (zeta.revision, zeta.qrels_revision, mteb.revision, mteb.qrels_revision):
            assert re.fullmatch(r"[0-9a-f]{40}", rev or ""), name
        (rows,) = info.expected
        assert (rows.documents, rows.queries) == (info.num_docs, info.num_queries)
        assert rows.queries == (49 if name == "nano-webis-touche2020" else 50)
        assert rows.documents <= 10_000 and rows.judgments >= rows.queries  # every query judged
        assert 0 < info.zip_gb < 0.01 and info.doc_words == beir.doc_words
        assert info.remove_identical_ids and not info.judges_nonrelevant  # positives only
    assert registry.default_split("nano-scifact") == "train"


def _mteb_files() -> Path:
    spec = importlib.util.find_spec("mteb")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("mteb (a test extra) is not installed")
    return Path(spec.submodule_search_locations[0])


def test_revisions_and_counts_are_those_mteb_ships():
    """Read from the installed package's files, without importing it (seconds): each task's pinned
    `dataset` and its descriptive statistics."""
    root = _mteb_files()
    pins = {}
    for source in (root / "tasks" / "retrieval" / "eng").glob("nano_*.py"):
        for task, repo, revision in re.findall(
            r'name="(\w+)",.*?"path": "([^"]+)",\s*"revision": "([0-9a-f]{40})"', source.read_text(), re.S
        ):
            pins[task] = (repo, revision)
    for name, task in MTEB_TASK.items():
        copy = registry.get(name).hub["hf-mteb"][0]
        assert pins[task] == (copy.repo, copy.revision), name
        stats = json.loads((root / "descriptive_stats" / "Retrieval" / f"{task}.json").read_text())
        assert list(stats) == ["train"], name  # the one split, the registry's
        (rows,) = registry.get(name).expected
        split = stats["train"]
        judgments = split["relevant_docs_statistics"]["num_relevant_docs"]
        shipped = (split["num_documents"], split["num_queries"], judgments)
        assert (rows.documents, rows.queries, rows.judgments) == shipped, name


# ---------------------------------------------------------------------------------------------
# The commands that only read the registry


def _plan_rows(output: str) -> dict[str, list[str]]:
    rows = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] != "dataset" and not set(cells[0]) <= set("-:"):
            rows[cells[0]] = cells[1:]
    return rows


def test_plan_of_the_nanobeir_sweep_lists_the_13_sets_with_their_sizes(tmp_path):
    data, results = tmp_path / "data", tmp_path / "results"
    out = _cli(
        "run",
        "-m",
        "bm25",
        "-d",
        "nanobeir",
        "--plan",
        "--data-dir",
        str(data),
        "--results-dir",
        str(results),
    )
    assert out.exit_code == 0, out.output
    rows = _plan_rows(out.stdout)
    assert list(rows) == [*NANO, "total"]
    assert "13 dataset(s) = 13 pairs" in out.stdout
    for name in NANO:
        info = registry.get(name)
        documents, queries, download_gb, done, time = rows[name]
        assert documents == f"{info.num_docs:,}" and download_gb == f"{info.zip_gb:.3f}", name
        assert queries == f"{info.num_queries:,}", name
        assert done == "0/1" and time not in ("?", "–")
    assert rows["total"][0] == f"{sum(registry.get(n).num_docs for n in NANO):,}"
    assert not data.exists() and not results.exists()


def test_datasets_shows_each_set_its_split_sizes_and_sources_and_the_sweep():
    out = _cli("datasets")
    assert out.exit_code == 0, out.output
    lines = {line.split()[0]: line for line in out.stdout.splitlines() if line.startswith("nano-")}
    assert list(lines) == NANO
    scifact = lines["nano-scifact"].split()
    assert scifact[1:4] == ["train", "2,919", "50"] and scifact[-2:] == ["hf-nanobeir,", "hf-mteb"]
    assert "-d nanobeir: NanoBEIR's 13 small sets" in out.stdout
    rows = {r["name"]: r for r in json.loads(_cli("datasets", "--json").stdout)}
    assert rows["nano-scifact"]["groups"] == ["nanobeir"]
    assert rows["nano-scifact"]["expected"] == [
        {"unit": "nano-scifact", "documents": 2919, "queries": 50, "judgments": 56}
    ]
    assert rows["nano-scifact"]["sources"]["hf-nanobeir"][0]["revision"] == (
        "309f1d1ae3ae2e092444a8a0c25bed59b82318bc"
    )


def test_a_misspelt_name_gets_the_closest_one():
    out = _cli("run", "-m", "bm25", "-d", "nano-scifactt", "--plan")
    assert out.exit_code == 2
    assert "unknown dataset 'nano-scifactt'; did you mean nano-scifact?" in out.output
    assert "(see `gtr-eval datasets`; or a BEIR folder)" in out.output  # which lists them all, sweeps too


# ---------------------------------------------------------------------------------------------
# Download and conversion, offline, from a hub cache


def nano_slice(folder: Path, queries: int = 50, judgments: int = 56, documents: int = 2_919):
    """NanoSciFact's shape cut from a BEIR SciFact folder: `queries` test queries holding `judgments`
    judgments, and a corpus of `documents` with every document they judge, in BEIR's order. As in the
    real copy, documents keep their text only (NanoBEIR dropped the titles) and queries `_id`, `text`."""
    corpus, all_queries, qrels = read_beir(folder)
    judged: dict[str, list[str]] = {}
    for line in qrels["test"].decode().splitlines()[1:]:
        qid, did, score = line.split("\t")
        if int(score) > 0:
            judged.setdefault(qid, []).append(did)
    chosen, extra = [], judgments - queries
    for qid, docs in judged.items():  # enough queries judging several documents ...
        if 1 < len(docs) <= extra + 1:
            chosen.append(qid)
            extra -= len(docs) - 1
    chosen += [q for q, docs in judged.items() if len(docs) == 1][: queries - len(chosen)]  # ... and singles
    assert extra == 0 and len(chosen) == queries
    keep = set(chosen)
    pairs = [(q, d) for q, docs in judged.items() if q in keep for d in docs]
    relevant = {d for _, d in pairs}
    filler = documents - len(relevant)
    docs_out = []
    for doc in corpus:
        if doc["_id"] in relevant or filler > 0:
            filler -= doc["_id"] not in relevant
            docs_out.append({"_id": doc["_id"], "text": doc["text"]})
    queries_out = [{"_id": q["_id"], "text": q["text"]} for q in all_queries if q["_id"] in keep]
    assert (len(docs_out), len(queries_out), len(pairs)) == (documents, queries, judgments)
    return docs_out, queries_out, pairs


def beir_folder(corpus: list[dict], queries: list[dict], pairs: Pairs) -> dict[str, bytes]:
    """The BEIR folder a copy of these rows must convert to, file by file."""

    def jsonl(rows: list[dict]) -> bytes:
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")

    return {
        "corpus.jsonl": jsonl([{"_id": d["_id"], "title": "", "text": d["text"]} for d in corpus]),
        "queries.jsonl": jsonl(queries),
        "qrels/train.tsv": (
            "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q, d in pairs)
        ).encode(),
    }


def folder_files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in (MARKER, RECORD)
    }


@pytest.fixture
def nano_scifact(beir_data):
    return nano_slice(beir_data / "scifact")


def install_nano(hub: Path, source: str, corpus: list[dict], queries: list[dict], pairs: Pairs) -> None:
    copy = registry.get("nano-scifact").hub[source][0]
    build = nanobeir_files if source == "hf-nanobeir" else nanobeir_mteb_files
    install(hub, copy.repo, copy.revision, build(corpus, queries, pairs))


def offline_hub(hub: Path) -> dict[str, str]:
    return dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(hub))


def gtr_eval(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return run_gtr_eval(*args, env=env, timeout=300)


@pytest.mark.slow
def test_download_converts_the_original_copy_into_beir_s_layout_byte_for_byte(nano_scifact, tmp_path):
    hub, data = tmp_path / "hub", tmp_path / "data"
    install_nano(hub, "hf-nanobeir", *nano_scifact)
    out = gtr_eval("download", "nano-scifact", "--data-dir", str(data), "--no-progress", env=offline_hub(hub))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(data / "nano-scifact")
    assert (
        "nano-scifact: downloaded from hf-nanobeir and verified (zeta-alpha-ai/NanoSciFact@309f1d1ae3ae)"
        in (out.stderr)
    )
    assert folder_files(data / "nano-scifact") == beir_folder(*nano_scifact)
    marker = json.loads((data / "nano-scifact" / MARKER).read_text())
    (hub_copy,) = marker["hub"]
    assert (
        marker["source"] == "hf-nanobeir"
        and hub_copy["revision"] == "309f1d1ae3ae2e092444a8a0c25bed59b82318bc"
    )
    assert set(hub_copy["files_sha256"]) == {
        f"zeta-alpha-ai/NanoSciFact/{NANO_FILE.format(config=c)}" for c in ("corpus", "queries", "qrels")
    }
    loaded = load_beir_folder(data / "nano-scifact", "train")
    assert (len(loaded.corpus.ids), len(loaded.queries)) == (2_919, 50)
    again = gtr_eval("download", "nano-scifact", "--data-dir", str(data), env=offline_hub(hub))
    assert again.returncode == 0 and "already downloaded" in again.stderr  # the marker matches the pins


@pytest.mark.slow
def test_mteb_s_copy_converts_to_the_same_folder_and_bm25_runs_on_it(nano_scifact, tmp_path):
    hub, data, results = tmp_path / "hub", tmp_path / "data", tmp_path / "results"
    install_nano(hub, "hf-mteb", *nano_scifact)
    env = offline_hub(hub)
    out = gtr_eval("download", "nano-scifact", "--data-dir", str(data), "--no-progress", env=env)
    assert out.returncode == 0, out.stderr
    assert "nano-scifact: hf-nanobeir failed (cannot get zeta-alpha-ai/NanoSciFact@309f1d1ae3ae" in out.stderr
    assert "downloaded from hf-mteb after hf-nanobeir failed" in out.stderr
    assert folder_files(data / "nano-scifact") == beir_folder(*nano_scifact)
    run = gtr_eval(
        *("run", "-m", "bm25", "-d", "nano-scifact", "--data-dir", str(data), "--results-dir", str(results)),
        *("--cache-dir", str(tmp_path / "cache")),
        env=env,
    )
    assert run.returncode == 0, run.stderr
    result = json.loads((results / "bm25" / "nano-scifact.json").read_text())  # the registry's split
    assert len(result["per_query"]["ndcg@10"]) == 50
    assert 0.0 < result["metrics"]["ndcg@10"] <= 1.0


@pytest.mark.slow
def test_a_copy_with_other_counts_is_refused_in_one_line_naming_the_file(nano_scifact, tmp_path, monkeypatch):
    corpus, queries, pairs = nano_scifact
    hub, data = tmp_path / "hub", tmp_path / "data"
    install_nano(hub, "hf-mteb", corpus[:-1], queries, pairs)
    out = gtr_eval(
        "download",
        "nano-scifact",
        "--source",
        "hf-mteb",
        "--data-dir",
        str(data),
        "--no-progress",
        env=offline_hub(hub),
    )
    assert out.returncode == 3
    (line,) = out.stderr.splitlines()
    assert line.startswith("Error: nano-scifact: ") and "Traceback" not in out.stderr
    assert line.endswith(
        f"/{NANO_FILE.format(config='corpus')}: 2,918 documents; the registry expects 2,919: "
        "a different or incomplete copy of the dataset, refused"
    )
    assert not data.exists()
    # The original's qrels one judgment short (of a query judging two or more): its qrels file is named.
    qids = [q for q, _ in pairs]
    short = next(i for i, q in enumerate(qids) if qids.count(q) > 1)
    install_nano(hub, "hf-nanobeir", corpus, queries, pairs[:short] + pairs[short + 1 :])
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    with pytest.raises(DataError) as e:
        download("nano-scifact", data, source="hf-nanobeir", progress=False)
    assert str(e.value).endswith(
        f"/{NANO_FILE.format(config='qrels')}: 55 non-zero train judgments; the registry expects 56: "
        "a different or incomplete copy of the dataset, refused"
    )
    assert "\n" not in str(e.value)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_offline_with_an_empty_hub_cache_each_source_fails_in_one_line(tmp_path):
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env |= {"HF_ENDPOINT": endpoint, "HF_HUB_CACHE": str(tmp_path / "hub")}
    out = gtr_eval("download", "nano-scifact", "--data-dir", str(tmp_path / "data"), env=env)
    assert out.returncode == 3 and out.stdout == ""
    first, last = out.stderr.splitlines()
    assert first.startswith(
        "nano-scifact: hf-nanobeir failed (cannot get zeta-alpha-ai/NanoSciFact@309f1d1ae3ae: "
    )
    assert f"{endpoint} cannot be reached (connection refused" in first
    assert first.endswith("); falling back to hf-mteb")
    assert last.startswith(
        "Error: nano-scifact: every source failed (hf-nanobeir, hf-mteb); "
        "hf-mteb: cannot get mteb/NanoSciFactRetrieval@8c5f7bbe90bb: "
    )
    assert "Traceback" not in out.stderr and not (tmp_path / "data").exists()
