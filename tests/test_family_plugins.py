"""A family from outside the package (tests/toy_family.py) plugs in without editing gtr_eval: through
the `gtr_eval.families` entry-point group of an installed distribution (a temporary dist-info on a
subprocess's PYTHONPATH), `gtr-eval run` recognises its folder, stores its result under its own
spec's identity, serves it again, refuses it once its setting changes and recomputes it with
--overwrite; `--plan` prices it by the family's own cost and `--family` offers it.  From Python,
`families.register` adds it for the process."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from cli_process import gtr_eval
from toy_family import MARKER, OverlapFamily, OverlapRetriever, OverlapSpec

from gtr_eval.data.loader import load_beir_folder
from gtr_eval.evaluation import read_trec_run
from gtr_eval.paths import BUNDLED
from gtr_eval.results import ResultsStore
from gtr_eval.retrieval import factory, families

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent


@pytest.fixture()
def installed(tmp_path) -> dict[str, str]:
    """The environment of a process in which the toy family's distribution is installed: a
    `toy_family-0.0.dist-info` declaring the entry point, on PYTHONPATH with the module it names."""
    site = tmp_path / "site"
    info = site / "toy_family-0.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-family\nVersion: 0.0\n")
    (info / "entry_points.txt").write_text(f"[{families.GROUP}]\nword-overlap = toy_family:OverlapFamily\n")
    path = [str(site), str(TESTS), str(ROOT), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in path if p)}


def _model(folder: Path, min_length: int) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / MARKER).write_text(json.dumps({"min_length": min_length}))
    return folder


def _gtr(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return gtr_eval(*args, env=env, cwd=cwd)


def _own_run(min_length: int) -> dict:
    """The toy retriever's run on demo, computed here in-process (as a TREC file holds it: queries
    with no document left out)."""
    data = load_beir_folder(BUNDLED / "demo")
    r = OverlapRetriever(OverlapSpec(system="overlap", min_length=min_length))
    r.index(data.corpus)
    return {q: docs for q, docs in r.search(data.queries, 1000).run.items() if docs}


def test_nothing_in_the_package_names_the_toy_family():
    for needle in ("toy_family", "word-overlap", "OverlapFamily", "OverlapSpec"):
        found = subprocess.run(
            ["grep", "-rIl", needle, str(ROOT / "gtr_eval")], capture_output=True, text=True
        )
        assert found.returncode == 1 and found.stdout == "", f"{needle} named in {found.stdout}"


def test_an_entry_point_family_runs_through_gtr_eval_run_into_a_stored_result(installed, tmp_path):
    model = _model(tmp_path / "overlap", 3)
    run = ("run", "-m", str(model), "-d", "demo", "--results-dir", "results", "--cache-dir", "cache")
    first = _gtr(installed, tmp_path, *run)
    assert first.returncode == 0, first.stderr
    stored_path = tmp_path / "results" / "overlap" / "demo.json"
    stored = json.loads(stored_path.read_text())
    system = stored["identity"]["system"]
    assert (system["retriever"], system["min_length"], system["top_k"]) == ("word-overlap", 3, 1000)
    assert "folder" not in system  # a setting: recorded in the manifest, not part of the identity
    assert stored["manifest"]["spec"]["folder"] == str(model.resolve())
    assert read_trec_run(ResultsStore(tmp_path / "results").load("overlap", "demo").run_path) == _own_run(3)
    assert 0 < stored["metrics"]["ndcg@10"] <= 1

    again = _gtr(installed, tmp_path, *run)
    assert again.returncode == 0 and "[skip] overlap on demo" in again.stdout + again.stderr
    assert json.loads(stored_path.read_text()) == stored

    _model(model, 5)  # its setting changed: the stored result is not this system's any more
    refused = _gtr(installed, tmp_path, *run)
    said = refused.stdout + refused.stderr
    assert "min_length" in said and "--overwrite" in said
    assert json.loads(stored_path.read_text())["identity"]["system"]["min_length"] == 3

    redone = _gtr(installed, tmp_path, *run, "--overwrite")
    assert redone.returncode == 0, redone.stderr
    assert json.loads(stored_path.read_text())["identity"]["system"]["min_length"] == 5
    assert (
        read_trec_run(ResultsStore(tmp_path / "results").load("overlap", "demo").run_path)
        == _own_run(5)
        != _own_run(3)
    )


def test_plan_and_family_choice_come_from_the_entry_point_family(installed, tmp_path):
    model = _model(tmp_path / "overlap", 3)
    plan = _gtr(installed, tmp_path, "run", "-m", str(model), "-d", "demo", "--results-dir", "r", "--plan")
    assert plan.returncode == 0, plan.stderr
    row = next(line for line in plan.stdout.splitlines() if line.startswith("| demo"))
    assert "0/1" in row and "?" not in row  # a time, from the toy family's own cost
    helped = _gtr(installed, tmp_path, "run", "--help")
    assert "word-overlap" in helped.stdout
    plain = _gtr({**os.environ}, tmp_path, "run", "--help")  # not installed: not offered
    assert plain.returncode == 0 and "word-overlap" not in plain.stdout


def test_a_family_registered_from_python_resolves_and_builds(tmp_path):
    family = families.register(OverlapFamily())
    try:
        model = _model(tmp_path / "overlap", 4)
        assert families.detecting(model) is family and "word-overlap" in families.names()
        spec = factory.resolve(str(model), factory.RetrieverOptions(progress=False), top_k=10)
        assert spec == OverlapSpec(system="overlap", min_length=4, folder=str(model.resolve()), top_k=10)
        assert isinstance(factory.build(spec), OverlapRetriever)
        with pytest.raises(ValueError, match="already registered"):
            families.register(OverlapFamily())
        with pytest.raises(TypeError, match="not a family"):
            families.register(object())
    finally:
        families.unregister("word-overlap")
    assert "word-overlap" not in families.names()
    with pytest.raises(TypeError, match="no family runs"):
        factory.build(spec)


def test_the_docs_show_the_toy_family_as_it_is_tested():
    text = (ROOT / "docs" / "families.md").read_text(encoding="utf-8")
    section = text[text.index("## Writing a family") :]
    block = section[section.index("```python\n") + len("```python\n") : section.index("```\n", 10)]
    assert block == (TESTS / "toy_family.py").read_text(encoding="utf-8")
    assert '[project.entry-points."gtr_eval.families"]' in section and families.GROUP == "gtr_eval.families"


def test_the_plan_prices_the_spec_the_run_resolves(tiny_gtr):
    from gtr_eval.pipeline.plan import model_cost
    from gtr_eval.retrieval.weights import compute_params

    for max_length in (None, 7):
        opts = factory.RetrieverOptions(max_length=max_length, progress=False)
        spec = factory.resolve_named(str(tiny_gtr), opts)  # named as the run stores it (a variant for 7)
        cost = model_cost(str(tiny_gtr), opts)
        assert cost.system == spec.system and cost.cost.download_gb == 0.0
        assert cost.cost.encoding.max_length == (spec.max_length or 512)
        assert max_length is None or spec.max_length == max_length
        assert cost.cost.encoding.compute_params == compute_params(tiny_gtr) > 0
    assert model_cost("bm25").cost.encoding is None and model_cost("bm25").cost.seconds is not None


def test_a_family_that_does_not_load_is_said_in_one_line(installed, tmp_path):
    info = Path(installed["PYTHONPATH"].split(os.pathsep)[0]) / "toy_family-0.0.dist-info"
    (info / "entry_points.txt").write_text(f"[{families.GROUP}]\nbroken = no_such_module:Family\n")
    out = _gtr(installed, tmp_path, "run", "-m", "bm25", "-d", "demo", "--results-dir", "r", "--plan")
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "broken = no_such_module:Family" in out.stderr and "does not load" in out.stderr
