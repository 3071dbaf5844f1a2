"""Datasets from the Hugging Face hub (`--source hf-beir|hf-mteb|auto`), offline.

Each test writes the hub copies itself, in the exact layouts of BeIR/* and mteb/* (parquet and
jsonl; see hub_fixtures.py), into a hub cache, and fetches them through the real code path with
HF_HUB_OFFLINE=1: `snapshot_download`, conversion, the BEIR loader. The real-data tests use the
official SciFact and NFCorpus files from ../shared/data as the content, so "the same dataset as the
jsonl loader gives" is checked on real data; the fast tests use a five-document set registered as
`tiny`.

Without HF_HUB_OFFLINE the hub is tried as a user offline meets it: HF_ENDPOINT points at a closed
port on 127.0.0.1 (connection refused), at a host under `.invalid` (DNS fails) or at a loopback
server answering HTTP 500, with an empty hub cache; it must end at once, or within `--retries`.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cli_process import gtr_eval
from hub_fixtures import (
    beir_jsonl_gz_files,
    beir_parquet_files,
    install,
    jsonl,
    mteb_jsonl_files,
    mteb_parquet_files,
    parquet,
    read_beir,
)

from gtr_eval.data import download as dl
from gtr_eval.data import registry
from gtr_eval.data.download import MARKER, DownloadError, download
from gtr_eval.data.loader import BeirData, DataError, load_beir_folder, read_qrels, read_queries
from gtr_eval.data.registry import DatasetInfo, ExpectedRows, HubCopy

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "beir"
LAYOUTS = ("hf-beir parquet", "hf-beir jsonl.gz", "hf-mteb jsonl", "hf-mteb parquet")


def install_copy(hub: Path, info: DatasetInfo, layout: str, folder: Path, unit: int = 0) -> None:
    """Put `folder` (a BEIR folder) into the hub cache as `info`'s copy in `layout`."""
    corpus, queries, qrels = read_beir(folder)
    source = layout.split()[0]
    copy = info.hub[source][unit]
    if source == "hf-beir":
        tables = (
            beir_parquet_files(corpus, queries)
            if "parquet" in layout
            else beir_jsonl_gz_files(corpus, queries)
        )
        install(hub, copy.repo, copy.revision or "f" * 40, tables)
        install(
            hub, copy.qrels_repo, copy.qrels_revision or "e" * 40, {f"{k}.tsv": v for k, v in qrels.items()}
        )
    else:
        files = (
            mteb_parquet_files(corpus, queries, qrels)
            if "parquet" in layout
            else mteb_jsonl_files(corpus, queries, qrels)
        )
        install(hub, copy.repo, copy.revision, files)


def assert_same(converted: BeirData, original: BeirData) -> None:
    a, b = converted.corpus, original.corpus
    assert a.ids == b.ids
    assert list(a.titles) == list(b.titles) and list(a.bodies) == list(b.bodies)
    assert converted.queries == original.queries
    assert converted.qrels == original.qrels
    assert converted.split == original.split


def hub_env(hub: Path) -> dict[str, str]:
    return dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(hub))


class _Failing(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        self.server.hits += 1  # type: ignore[attr-defined]
        self.send_error(self.server.status)  # type: ignore[attr-defined]


@pytest.fixture
def failing_server():
    """A zip server on loopback that answers every request with HTTP 500."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Failing)
    srv.daemon_threads = True
    srv.hits, srv.status = 0, 500  # type: ignore[attr-defined]
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/"  # type: ignore[attr-defined]
    yield srv
    srv.shutdown()
    srv.server_close()
    t.join(timeout=5)


# ---------------------------------------------------------------------------------------------
# The tiny registered dataset (fast tests, in-process)

TINY_FILES = {
    "corpus.jsonl": jsonl([{"_id": f"d{i}", "title": f"T{i}", "text": f"text {i} é"} for i in range(5)]),
    "queries.jsonl": jsonl(
        [{"_id": "q1", "text": "what"}, {"_id": "q2", "text": "who"}, {"_id": "q3", "text": "a train query"}]
    ),
    "qrels/test.tsv": b"query-id\tcorpus-id\tscore\r\nq1\td1\t1\r\nq2\td3\t2\r\nq2\td4\t0\r\n",
    "qrels/train.tsv": b"query-id\tcorpus-id\tscore\nq3\td0\t1\n",
}


def _write_folder(path: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_bytes(data)
    return path


@pytest.fixture
def tiny(monkeypatch, tmp_path) -> DatasetInfo:
    """`tiny` in the registry with a copy on each source; HF_HUB_CACHE is an empty cache under tmp."""
    info = DatasetInfo(
        name="tiny",
        url=None,
        md5="0" * 32,
        split="test",
        num_docs=5,
        num_queries=2,
        hub={
            "hf-beir": (HubCopy("BeIR/tiny", "1" * 40, "BeIR/tiny-qrels", "2" * 40),),
            "hf-mteb": (HubCopy("mteb/tiny", "3" * 40, "mteb/tiny", "3" * 40),),
        },
        expected=(ExpectedRows(5, 2, 2),),
    )
    monkeypatch.setitem(registry._REGISTRY, "tiny", info)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(dl, "RETRY_BACKOFF_S", 0.0)
    return info


@pytest.fixture
def tiny_folder(tmp_path) -> Path:
    return _write_folder(tmp_path / "original" / "tiny", TINY_FILES)


def _leftovers(data: Path) -> list[str]:
    return sorted(p.name for p in data.iterdir() if p.name.startswith(".tiny")) if data.exists() else []


@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_hub_layout_gives_the_dataset_the_jsonl_loader_gives(tiny, tiny_folder, tmp_path, layout):
    install_copy(tmp_path / "hub", tiny, layout, tiny_folder)
    source = layout.split()[0]
    path = download("tiny", tmp_path / "data", source=source, progress=False)
    assert_same(load_beir_folder(path, "test"), load_beir_folder(tiny_folder, "test"))
    if layout != "hf-mteb parquet":  # MTEB's parquet copies hold the evaluation split only
        assert read_queries(path / "queries.jsonl")[0] == read_queries(tiny_folder / "queries.jsonl")[0]
        assert read_qrels(path / "qrels/train.tsv")[0] == read_qrels(tiny_folder / "qrels/train.tsv")[0]
    marker = json.loads((path / MARKER).read_text())
    assert marker["source"] == source
    copy = tiny.hub[source][0]
    assert marker["hub"][0]["repo"] == copy.repo and marker["hub"][0]["revision"] == copy.revision
    assert all(len(sha) == 64 for sha in marker["hub"][0]["files_sha256"].values())


def test_a_copy_with_a_missing_document_is_refused(tiny, tiny_folder, tmp_path):
    corpus, queries, qrels = read_beir(tiny_folder)
    copy = tiny.hub["hf-beir"][0]
    install(tmp_path / "hub", copy.repo, copy.revision, beir_parquet_files(corpus[:-1], queries))
    install(tmp_path / "hub", copy.qrels_repo, copy.qrels_revision, {f"{k}.tsv": v for k, v in qrels.items()})
    with pytest.raises(DataError) as e:
        download("tiny", tmp_path / "data", source="hf-beir", progress=False)
    msg = str(e.value)
    assert "corpus-00000-of-00001.parquet" in msg
    assert "4 documents; the registry expects 5: a different or incomplete copy" in msg
    assert not (tmp_path / "data" / "tiny").exists() and _leftovers(tmp_path / "data") == []


def test_a_copy_without_the_evaluation_split_is_refused(tiny, tiny_folder, tmp_path):
    corpus, queries, qrels = read_beir(tiny_folder)
    copy = tiny.hub["hf-beir"][0]
    install(tmp_path / "hub", copy.repo, copy.revision, beir_parquet_files(corpus, queries))
    install(tmp_path / "hub", copy.qrels_repo, copy.qrels_revision, {"train.tsv": qrels["train"]})
    with pytest.raises(DataError, match=r"no qrels for split 'test' in this copy \(splits found: train\)"):
        download("tiny", tmp_path / "data", source="hf-beir", progress=False)
    assert not (tmp_path / "data" / "tiny").exists()


def test_a_copy_judging_other_queries_is_refused(tiny, tiny_folder, tmp_path):
    corpus, queries, qrels = read_beir(tiny_folder)
    copy = tiny.hub["hf-mteb"][0]
    files = mteb_jsonl_files(corpus, queries, qrels)
    files["qrels/test.jsonl"] = jsonl([{"query-id": "q1", "corpus-id": "d1", "score": 1.0}])
    install(tmp_path / "hub", copy.repo, copy.revision, files)
    with pytest.raises(DataError, match=r"qrels/test.jsonl: 1 judged test queries .* the registry expects 2"):
        download("tiny", tmp_path / "data", source="hf-mteb", progress=False)


@pytest.mark.parametrize(
    ("layout", "file", "broken", "message"),
    [
        (
            "hf-beir parquet",
            "corpus/corpus-00000-of-00001.parquet",
            parquet({"_id": ["d0", "d1", None], "title": ["", "", ""], "text": ["a", "b", "c"]}),
            r"corpus-00000-of-00001.parquet:row 2: field '_id' must be a non-empty string",
        ),
        (
            "hf-beir parquet",
            "corpus/corpus-00000-of-00001.parquet",
            parquet({"_id": ["d0", "d1", "d0"], "title": ["", "", ""], "text": ["a", "b", "c"]}),
            r"corpus-00000-of-00001.parquet:row 2: duplicate document id 'd0' \(first at row 0\)",
        ),
        (
            "hf-beir parquet",
            "queries/queries-00000-of-00001.parquet",
            parquet({"_id": ["q1", "q 2"], "title": ["", ""], "text": ["a", "b"]}),
            r"queries-00000-of-00001.parquet:row 1: query id 'q 2' contains a space",
        ),
        (
            "hf-beir parquet",
            "queries/queries-00000-of-00001.parquet",
            parquet({"_id": ["q1"], "title": [""]}),
            r"queries-00000-of-00001.parquet:row 0: missing field 'text'",
        ),
        ("hf-beir jsonl.gz", "corpus.jsonl.gz", None, r"corpus.jsonl.gz:3: invalid JSON"),
        (
            "hf-mteb jsonl",
            "qrels/test.jsonl",
            jsonl(
                [
                    {"query-id": "q1", "corpus-id": "d1", "score": 1.0},
                    {"query-id": "q2", "corpus-id": "d3", "score": 1.5},
                ]
            ),
            r"qrels/test.jsonl:2: score 1.5 is not an integer",
        ),
        (
            "hf-mteb parquet",
            "corpus/test-00000-of-00001.parquet",
            b"PAR1 this is not parquet",
            r"corpus/test-00000-of-00001.parquet:row 0: unreadable parquet",
        ),
    ],
)
def test_a_bad_hub_record_names_the_file_and_row(tiny, tiny_folder, tmp_path, layout, file, broken, message):
    import gzip

    if broken is None:  # a gzip-compressed jsonl whose third line is cut short
        lines = TINY_FILES["corpus.jsonl"].splitlines(keepends=True)
        broken = gzip.compress(b"".join([lines[0], lines[1], lines[2][:12] + b"\n", *lines[3:]]))
    source = layout.split()[0]
    corpus, queries, qrels = read_beir(tiny_folder)
    copy = tiny.hub[source][0]
    if source == "hf-beir":
        files = (beir_parquet_files if "parquet" in layout else beir_jsonl_gz_files)(corpus, queries)
        install(
            tmp_path / "hub", copy.qrels_repo, copy.qrels_revision, {f"{k}.tsv": v for k, v in qrels.items()}
        )
    else:
        files = (mteb_parquet_files if "parquet" in layout else mteb_jsonl_files)(corpus, queries, qrels)
    files[file] = broken
    install(tmp_path / "hub", copy.repo, copy.revision, files)
    with pytest.raises(DataError, match=message):
        download("tiny", tmp_path / "data", source=source, progress=False)
    assert _leftovers(tmp_path / "data") == [] and not (tmp_path / "data" / "tiny").exists()


def test_auto_falls_back_from_a_failing_zip_server_and_says_so(
    tiny, tiny_folder, tmp_path, failing_server, capsys
):
    install_copy(tmp_path / "hub", tiny, "hf-beir parquet", tiny_folder)
    path = download("tiny", tmp_path / "data", base_url=failing_server.url, progress=False, retries=1)
    err = capsys.readouterr().err
    assert failing_server.hits == 2  # the first try and one retry
    assert "tiny: ukp failed (HTTP 500" in err and "falling back to hf-beir" in err
    assert "tiny: downloaded from hf-beir after ukp failed" in err
    assert_same(load_beir_folder(path, "test"), load_beir_folder(tiny_folder, "test"))
    # A second call finds the hub copy current and does not go back to the zip server.
    download("tiny", tmp_path / "data", base_url=failing_server.url, progress=False)
    assert failing_server.hits == 2 and "already downloaded" in capsys.readouterr().err


def test_auto_goes_on_to_mteb_when_beir_is_missing_too(tiny, tiny_folder, tmp_path, failing_server, capsys):
    install_copy(tmp_path / "hub", tiny, "hf-mteb jsonl", tiny_folder)
    download("tiny", tmp_path / "data", base_url=failing_server.url, progress=False, retries=0)
    err = capsys.readouterr().err
    assert "hf-beir failed (cannot get BeIR/tiny@" in err and "falling back to hf-mteb" in err
    assert "downloaded from hf-mteb after ukp, hf-beir failed" in err
    assert json.loads((tmp_path / "data" / "tiny" / MARKER).read_text())["source"] == "hf-mteb"


def test_when_every_source_fails_each_is_one_line(tiny, tmp_path, failing_server, capsys):
    with pytest.raises(DownloadError) as e:
        download("tiny", tmp_path / "data", base_url=failing_server.url, progress=False, retries=0)
    msg = str(e.value)
    # the error: which sources failed and the last one's reason; the name is the caller's to add
    assert msg.startswith("every source failed (ukp, hf-beir, hf-mteb); hf-mteb: cannot get mteb/tiny@3333")
    assert "HF_HUB_OFFLINE is set" in msg and not msg.startswith("tiny")
    # the others were said as they failed, one line each with the reason
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2, err
    assert err[0].startswith("tiny: ukp failed (HTTP 500") and err[0].endswith("falling back to hf-beir")
    assert err[1].startswith("tiny: hf-beir failed (cannot get BeIR/tiny@1111")
    assert err[1].endswith("falling back to hf-mteb")
    # and every reason stays on the exception
    assert [s for s, _ in e.value.failures] == ["ukp", "hf-beir", "hf-mteb"]
    ukp, beir, mteb = (m for _, m in e.value.failures)
    assert ukp.startswith("HTTP 500") and beir.startswith("cannot get BeIR/tiny@1111")
    assert mteb.startswith("cannot get mteb/tiny@3333")
    assert not (tmp_path / "data").exists()  # nothing left behind


def test_an_explicit_source_does_not_fall_back(tiny, tiny_folder, tmp_path, failing_server):
    install_copy(tmp_path / "hub", tiny, "hf-mteb parquet", tiny_folder)
    with pytest.raises(DownloadError, match="cannot get BeIR/tiny"):
        download("tiny", tmp_path / "data", source="hf-beir", progress=False)
    with pytest.raises(DownloadError, match="HTTP 500"):
        download(
            "tiny", tmp_path / "data", source="ukp", base_url=failing_server.url, progress=False, retries=0
        )
    with pytest.raises(ValueError, match="unknown source 'hf'"):
        download("tiny", tmp_path / "data", source="hf")


def test_the_manifest_records_source_and_revision(tiny, tiny_folder, tmp_path):
    from gtr_eval.api import run

    install_copy(tmp_path / "hub", tiny, "hf-beir parquet", tiny_folder)
    results = run(
        ["bm25"],
        ["tiny"],
        data_dir=tmp_path / "data",
        results_dir=tmp_path / "r",
        source="hf-beir",
        no_cache=True,
        progress=False,
        echo=lambda s: None,
    )
    dataset = results[0].manifest["dataset"]
    assert dataset["source"]["source"] == "hf-beir"
    hub = dataset["source"]["hub"][0]
    assert (hub["repo"], hub["revision"]) == ("BeIR/tiny", "1" * 40)
    assert (hub["qrels_repo"], hub["qrels_revision"]) == ("BeIR/tiny-qrels", "2" * 40)
    # the converted corpus's sha256, as always; files are named by their path in the dataset folder
    assert set(dataset["files_sha256"]) == {"corpus.jsonl", "queries.jsonl", "qrels/test.tsv"}
    corpus_sha = dataset["files_sha256"]["corpus.jsonl"]
    assert len(corpus_sha) == 64
    assert (
        corpus_sha == hashlib.sha256((tmp_path / "data" / "tiny" / "corpus.jsonl").read_bytes()).hexdigest()
    )
    assert results[0].identity.dataset["files_sha256"] == dataset["files_sha256"]  # what is compared


def test_registry_hub_copies_and_counts_are_consistent():
    for name in registry.names():
        info = registry.get(name)
        if not info.public or info.bundled:
            assert info.sources == ()
            continue
        if name in registry.NANOBEIR_NAMES:  # hub copies only (tests/test_nanobeir.py)
            continue
        assert info.sources == ("ukp", "hf-beir", "hf-mteb"), name
        units = info.unit_names()
        assert len(info.expected) == len(units) == len(info.hub["hf-beir"]) == len(info.hub["hf-mteb"])
        # Two independent sources agree: BEIR's Table 1 (registry sizes) and MTEB's statistics.
        assert sum(e.documents for e in info.expected) == info.num_docs, name
        assert sum(e.queries for e in info.expected) == info.num_queries, name
        for copy in (*info.hub["hf-beir"], *info.hub["hf-mteb"]):
            assert copy.repo.startswith(("BeIR/", "mteb/"))
            for rev in (copy.revision, copy.qrels_revision):
                assert rev is None or (len(rev) == 40 and int(rev, 16) >= 0)
        assert all(c.revision for c in info.hub["hf-mteb"]), "every MTEB copy is pinned"
    cqa = registry.get("cqadupstack")
    assert [c.folder for c in cqa.hub["hf-beir"]] == list(registry.CQADUPSTACK_SUBSETS)


def test_datasets_json_lists_the_sources():
    from click.testing import CliRunner

    from gtr_eval.cli import cli

    rows = {r["name"]: r for r in json.loads(CliRunner().invoke(cli, ["datasets", "--json"]).stdout)}
    scifact = rows["scifact"]["sources"]
    assert list(scifact) == ["ukp", "hf-beir", "hf-mteb"]
    assert scifact["ukp"]["md5"] == "5f7d1de60b170fc8027bb7898e2efca1"
    assert scifact["hf-beir"][0]["repo"] == "BeIR/scifact" and scifact["hf-mteb"][0]["repo"] == "mteb/scifact"
    assert rows["scifact"]["expected"] == [
        {"unit": "scifact", "documents": 5183, "queries": 300, "judgments": 339}
    ]
    assert rows["bioasq"]["sources"] == {} and rows["demo"]["sources"] == {}
    assert len(rows["cqadupstack"]["sources"]["hf-mteb"]) == 12


# ---------------------------------------------------------------------------------------------
# Real SciFact and NFCorpus through the command line (slow: a subprocess per layout)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "layout"),
    [("scifact", layout) for layout in LAYOUTS]
    + [("nfcorpus", "hf-beir parquet"), ("nfcorpus", "hf-mteb jsonl")],
)
def test_cli_download_from_the_hub_equals_the_official_folder(beir_data, tmp_path, name, layout):
    info = registry.get(name)
    install_copy(tmp_path / "hub", info, layout, beir_data / name)
    source = layout.split()[0]
    data = tmp_path / "data"
    cmd = ["download", name, "--source", source, "--data-dir", str(data), "--no-progress"]
    out = gtr_eval(*cmd, env=hub_env(tmp_path / "hub"), timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(data / name)
    assert f"{name}: downloaded from {source} and verified" in out.stderr
    assert_same(load_beir_folder(data / name, info.split), load_beir_folder(beir_data / name, info.split))


@pytest.mark.slow
def test_cli_auto_uses_the_hub_when_the_zip_server_fails(beir_data, tmp_path, failing_server):
    install_copy(tmp_path / "hub", registry.get("scifact"), "hf-beir parquet", beir_data / "scifact")
    data = tmp_path / "data"
    cmd = [
        "download",
        "scifact",
        "--data-dir",
        str(data),
        "--base-url",
        failing_server.url,
        "--retries",
        "0",
        "--no-progress",
    ]
    out = gtr_eval(*cmd, env=hub_env(tmp_path / "hub"), timeout=300)
    assert out.returncode == 0, out.stderr
    assert failing_server.hits == 1
    assert (
        f"scifact: ukp failed (HTTP 500 Internal Server Error from {failing_server.url}scifact.zip"
        in out.stderr
    )
    assert (
        "falling back to hf-beir" in out.stderr and "downloaded from hf-beir after ukp failed" in out.stderr
    )
    assert_same(load_beir_folder(data / "scifact"), load_beir_folder(beir_data / "scifact"))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["scifact", "nfcorpus"])
def test_registry_counts_match_the_official_files(beir_data, name):
    """The registry's expected rows (MTEB's statistics) counted on BEIR's own files, as the hub check counts."""
    info = registry.get(name)
    data = load_beir_folder(beir_data / name, info.split)
    qrels = read_qrels(beir_data / name / "qrels" / f"{info.split}.tsv")[0]
    nonzero = sum(1 for docs in qrels.values() for s in docs.values() if s != 0)
    assert (len(data.corpus), len(data.queries), nonzero) == tuple(vars(info.expected[0]).values())


@pytest.mark.parametrize("source", ["hf-beir", "hf-mteb"])
def test_a_dataset_of_subforums_is_converted_forum_by_forum(monkeypatch, tmp_path, source):
    """CQADupStack's shape: BeIR keeps a folder per forum in one repo pair, MTEB a repo per forum."""
    forums = ("android", "gis")
    info = DatasetInfo(
        name="cqa",
        url=None,
        md5="0" * 32,
        split="test",
        num_docs=10,
        num_queries=4,
        subsets=forums,
        hub={
            "hf-beir": tuple(HubCopy("BeIR/cqa", "4" * 40, "BeIR/cqa-qrels", "5" * 40, f) for f in forums),
            "hf-mteb": tuple(
                HubCopy(f"mteb/cqa-{f}", c * 40, f"mteb/cqa-{f}", c * 40)
                for f, c in zip(forums, "67", strict=True)
            ),
        },
        expected=(ExpectedRows(5, 2, 2), ExpectedRows(5, 2, 2)),
    )
    monkeypatch.setitem(registry._REGISTRY, "cqa", info)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    originals = {}
    beir_tables, beir_qrels = {}, {}
    for i, forum in enumerate(forums):
        files = {
            k: v.replace(b'"d', f'"{forum}-d'.encode()) if k.endswith(".jsonl") else v
            for k, v in TINY_FILES.items()
        }
        files = {
            k: v.replace(b"\td", f"\t{forum}-d".encode()) if k.endswith(".tsv") else v
            for k, v in files.items()
        }
        originals[forum] = _write_folder(tmp_path / "original" / forum, files)
        corpus, queries, qrels = read_beir(originals[forum])
        beir_tables |= {f"{forum}/{k}": v for k, v in beir_parquet_files(corpus, queries).items()}
        beir_qrels |= {f"{forum}/{k}.tsv": v for k, v in qrels.items()}
        install_copy(tmp_path / "hub", info, "hf-mteb parquet", originals[forum], unit=i)
    install(tmp_path / "hub", "BeIR/cqa", "4" * 40, beir_tables)
    install(tmp_path / "hub", "BeIR/cqa-qrels", "5" * 40, beir_qrels)
    path = download("cqa", tmp_path / "data", source=source, progress=False)
    for forum in forums:
        assert_same(load_beir_folder(path / forum, "test"), load_beir_folder(originals[forum], "test"))
    marker = json.loads((path / MARKER).read_text())
    assert [h["folder"] for h in marker["hub"]] == (list(forums) if source == "hf-beir" else ["", ""])
    assert dl.dataset_source(path / "gis")["source"] == source  # a forum's manifest finds the marker above it


# ---------------------------------------------------------------------------------------------
# An unreachable hub: at once, or within --retries; a complete cached copy is still served


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _online(monkeypatch, endpoint: str) -> None:
    """Not HF_HUB_OFFLINE: the hub at `endpoint` is tried, as for a user who set nothing."""
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # as read at import, maybe by another test
    monkeypatch.setenv("HF_ENDPOINT", endpoint)


@pytest.mark.parametrize(
    ("endpoint", "reason"),
    [
        (lambda: f"http://127.0.0.1:{closed_port()}", "connection refused"),
        (lambda: "http://hub.invalid", "DNS lookup failed"),
    ],
    ids=["refused", "dns"],
)
def test_an_unreachable_hub_ends_each_source_at_once(tiny, tmp_path, monkeypatch, capsys, endpoint, reason):
    url = endpoint()
    _online(monkeypatch, url)
    monkeypatch.setattr(dl, "RETRY_BACKOFF_S", 2.0)  # a retry would show in the elapsed time
    start = time.monotonic()
    with pytest.raises(DownloadError) as e:
        download("tiny", tmp_path / "data", source="hf-beir", progress=False, retries=5)
    assert time.monotonic() - start < 5
    assert str(e.value).startswith(f"cannot get BeIR/tiny@111111111111: {url} cannot be reached ({reason}")
    assert str(e.value).endswith("and the hub cache holds no complete copy")
    assert capsys.readouterr().err == ""  # no retry lines, nothing from huggingface_hub
    assert not (tmp_path / "data").exists()


def test_an_unreachable_hub_still_serves_a_complete_cached_copy(tiny, tiny_folder, tmp_path, monkeypatch):
    install_copy(tmp_path / "hub", tiny, "hf-mteb jsonl", tiny_folder)
    _online(monkeypatch, f"http://127.0.0.1:{closed_port()}")
    path = download("tiny", tmp_path / "data", source="hf-mteb", progress=False)
    assert_same(load_beir_folder(path, "test"), load_beir_folder(tiny_folder, "test"))


def test_a_failing_hub_is_retried_only_as_retries_says(tiny, tmp_path, monkeypatch, failing_server, capsys):
    """HTTP 500 from the hub: `--retries 1` is two requests in all, not huggingface_hub's six per
    request; the second hub source does not ask again."""
    _online(monkeypatch, failing_server.url)
    with pytest.raises(DownloadError) as e:
        download(
            "tiny", tmp_path / "data", source="auto", base_url=failing_server.url, progress=False, retries=1
        )
    assert failing_server.hits == 2 + 2  # ukp: a try and a retry; the hub: a try and a retry, once
    ep = failing_server.url.rstrip("/")
    err = capsys.readouterr().err
    assert f"BeIR/tiny: {ep} answered HTTP 500; retrying in 0 s (1 left)" in err
    assert "Retry 1/5" not in err and "thrown while requesting" not in err
    assert f"hf-mteb: cannot get mteb/tiny@333333333333: {ep} answered HTTP 500 (gave up after 2" in str(
        e.value
    )


@pytest.mark.parametrize("where", ["refused", "dns"])
def test_cli_offline_download_of_scifact_and_nfcorpus_is_quick_and_one_line_per_source(tmp_path, where):
    """The issue's case: `gtr-eval download scifact nfcorpus` with no network and an empty hub cache."""
    if where == "refused":
        base, endpoint, reason = (
            f"http://127.0.0.1:{closed_port()}",
            f"http://127.0.0.1:{closed_port()}",
            "connection refused",
        )
    else:
        base, endpoint, reason = "http://beir-mirror.invalid", "http://hub.invalid", "DNS lookup failed"
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env |= {"HF_ENDPOINT": endpoint, "HF_HUB_CACHE": str(tmp_path / "hub"), "GTR_EVAL_BASE_URL": base}
    data = tmp_path / "data"
    cmd = ["download", "scifact", "nfcorpus", "--data-dir", str(data), "--retries", "3"]
    start = time.monotonic()
    out = gtr_eval(*cmd, env=env, timeout=120)
    elapsed = time.monotonic() - start
    assert out.returncode == 3 and out.stdout == ""
    assert elapsed < 20, f"{elapsed:.1f} s"  # the process starts in a few; no retries, no waits
    lines = out.stderr.splitlines()
    assert len(lines) == 6, out.stderr  # one per source and dataset
    for name, (ukp, beir, mteb) in zip(["scifact", "nfcorpus"], [lines[:3], lines[3:]], strict=True):
        assert ukp.startswith(f"{name}: ukp failed (could not download {base}/{name}.zip: {reason}")
        assert ukp.endswith("); falling back to hf-beir")
        assert beir.startswith(f"{name}: hf-beir failed (cannot get BeIR/{name}@")
        assert f"{endpoint} cannot be reached ({reason}" in beir and beir.endswith("falling back to hf-mteb")
        assert mteb.startswith(
            f"Error: {name}: every source failed (ukp, hf-beir, hf-mteb); hf-mteb: cannot get mteb/{name}@"
        )
    assert all(len(line) < 300 for line in lines), max(map(len, lines))
    for noise in ("scifact: scifact", "Retrying in", "Downloading data from", "Traceback", "Max retries"):
        assert noise not in out.stderr
    assert not data.exists()  # no empty .downloads/, no lock files, not even the data folder
