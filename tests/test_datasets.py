"""The dataset registry and the `gtr-eval datasets` command."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from gtr_eval.cli import cli
from gtr_eval.data import registry as datasets

PUBLIC = [
    "msmarco",
    "trec-covid",
    "nfcorpus",
    "nq",
    "hotpotqa",
    "fiqa",
    "arguana",
    "webis-touche2020",
    "cqadupstack",
    "quora",
    "dbpedia-entity",
    "scidocs",
    "fever",
    "climate-fever",
    "scifact",
]
PRIVATE = ["bioasq", "signal1m", "trec-news", "robust04"]
# NanoBEIR's cuts of 13 of them (tests/test_nanobeir.py checks what they are).
NANO = [
    f"nano-{name}"
    for name in ("arguana", "climate-fever", "dbpedia-entity", "fever", "fiqa", "hotpotqa", "msmarco")
    + ("nfcorpus", "nq", "quora", "scidocs", "scifact", "webis-touche2020")
]
CQA = (
    "android english gaming gis mathematica physics programmers stats tex unix webmasters wordpress"
).split()

# The BEIR README's md5 column (github.com/beir-cellar/beir, "Available Datasets").
BEIR_MD5 = {
    "msmarco": "444067daf65d982533ea17ebd59501e4",
    "trec-covid": "ce62140cb23feb9becf6270d0d1fe6d1",
    "nfcorpus": "a89dba18a62ef92f7d323ec890a0d38d",
    "nq": "d4d3d2e48787a744b6f6e691ff534307",
    "hotpotqa": "f412724f78b0d91183a0e86805e16114",
    "fiqa": "17918ed23cd04fb15047f73e6c3bd9d9",
    "arguana": "8ad3e3c2a5867cdced806d6503f29b99",
    "webis-touche2020": "46f650ba5a527fc69e0a6521c5a23563",
    "cqadupstack": "4e41456d7df8ee7760a7f866133bda78",
    "quora": "18fb154900ba42a600f84b839c173167",
    "dbpedia-entity": "c2a39eb420a3164af735795df012ac2c",
    "scidocs": "38121350fc3a4d2f48850f6aff52e4a9",
    "fever": "5a818580227bfb4b35bb6fa46d9b6c03",
    "climate-fever": "8b66f0a9126c521bae2bde127b4dc99d",
    "scifact": "5f7d1de60b170fc8027bb7898e2efca1",
}


def test_registry_is_complete():
    assert set(datasets.names()) == set(PUBLIC) | set(PRIVATE) | set(NANO) | {"demo"}
    for name in PUBLIC:
        d = datasets.get(name)
        assert d.public and not d.bundled
        assert d.md5 == BEIR_MD5[name]
        assert re.fullmatch(r"[0-9a-f]{32}", d.md5)
        assert d.url == f"https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/{name}.zip"
        assert d.num_docs > 0 and d.num_queries > 0
        assert d.remove_identical_ids  # BEIR's evaluate(ignore_identical_ids=True) default
    for name in PRIVATE:
        d = datasets.get(name)
        assert not d.public and d.url is None and d.md5 is None
        assert "beir" in d.how_to_obtain.lower() and "local" in d.how_to_obtain


def test_key_facts():
    assert datasets.get("nfcorpus").md5 == "a89dba18a62ef92f7d323ec890a0d38d"
    assert datasets.get("msmarco").split == "dev"
    assert {d: datasets.get(d).split for d in PUBLIC if d != "msmarco"} == {
        d: "test" for d in PUBLIC if d != "msmarco"
    }
    assert datasets.get("cqadupstack").subsets == tuple(CQA)
    assert (datasets.get("scifact").num_docs, datasets.get("scifact").num_queries) == (5183, 300)
    assert (datasets.get("nfcorpus").num_docs, datasets.get("nfcorpus").num_queries) == (3633, 323)
    assert datasets.get("webis-touche2020").url.endswith("/webis-touche2020.zip")
    demo = datasets.get("demo")
    assert demo.bundled and demo.url is None and demo.md5 is None
    assert [d for d in datasets.names() if datasets.get(d).bundled] == ["demo"]
    assert (
        "robust04" in datasets.get("robust04").how_to_obtain
        and "ir_datasets" in datasets.get("robust04").how_to_obtain
    )


def test_info_is_frozen():
    with pytest.raises(AttributeError):
        datasets.get("scifact").md5 = "x"  # type: ignore[misc]


def test_evaluation_units(tmp_path):
    assert datasets.evaluation_units("scifact", tmp_path) == [("scifact", tmp_path / "scifact")]
    units = datasets.evaluation_units("cqadupstack", tmp_path)
    assert units == [(f"cqadupstack/{s}", tmp_path / "cqadupstack" / s) for s in CQA]
    assert len(units) == 12


@pytest.mark.parametrize(
    "name, problem",
    [
        ("../etc", "'..'|separator"),
        ("a/b", "separator"),
        ("a\\b", "separator"),
        ("..", "'..'"),
        (".hidden", "starts with '.'"),
        ("", "non-empty"),
    ],
)
def test_name_validation(name, problem):
    with pytest.raises(ValueError, match=problem):
        datasets.get(name)
    with pytest.raises(ValueError):
        datasets.evaluation_units(name, Path("/tmp"))


def test_unknown_name_suggests_the_closest_or_lists_a_few_known():
    with pytest.raises(KeyError) as e:
        datasets.get("scifcat")
    msg = str(e.value)
    assert msg.startswith("unknown dataset 'scifcat'; did you mean scifact?") and "gtr-eval datasets" in msg
    with pytest.raises(KeyError) as e:
        datasets.get("zzzzzz")
    assert "(known: " in str(e.value) and "nfcorpus" in str(e.value) and len(str(e.value)) < 150


def test_cli_datasets_table():
    res = CliRunner().invoke(cli, ["datasets"])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0].split()[:3] == ["name", "split", "docs"]
    for name in [*PUBLIC, *PRIVATE, "demo"]:
        assert any(line.split()[0] == name for line in lines[2:]), name
    nf = next(line for line in lines if line.startswith("nfcorpus "))
    assert "a89dba18a62ef92f7d323ec890a0d38d" in nf and "3,633" in nf and "323" in nf
    ms = next(line for line in lines if line.startswith("msmarco "))
    assert ms.split()[1] == "dev"


def test_cli_datasets_json():
    res = CliRunner().invoke(cli, ["datasets", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    by = {r["name"]: r for r in rows}
    assert set(by) == set(PUBLIC) | set(PRIVATE) | set(NANO) | {"demo"}
    for r in rows:
        assert {"name", "url", "md5", "split", "public", "num_docs", "num_queries", "subsets"} <= set(r)
        assert {"remove_identical_ids", "how_to_obtain", "bundled"} <= set(r)
    assert by["nfcorpus"]["md5"] == "a89dba18a62ef92f7d323ec890a0d38d"
    assert by["msmarco"]["split"] == "dev"
    assert by["cqadupstack"]["subsets"] == CQA
    assert by["robust04"]["public"] is False and by["robust04"]["url"] is None
    assert by["arguana"]["remove_identical_ids"] is True
