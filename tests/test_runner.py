"""Which name a run stores its results under, and when a stored result is served or refused.

A run with other ranking options than its preset's is a variant, stored beside the preset under a
name derived from what differs (`bm25[k1=0.9]`); a refusal is left for what a name cannot tell apart
(changed data, another spec under an explicit `--name`), in one line that suggests `--name` first.
"""

from __future__ import annotations

import json

from click.testing import CliRunner

from gtr_eval import api
from gtr_eval.cli import cli
from gtr_eval.results import ResultsStore


def _cli(*args):
    return CliRunner().invoke(cli, [*map(str, args)])


def _run(results, *extra):
    return _cli("run", "-m", "bm25", "-d", "demo", "--results-dir", results, "--quiet", *extra)


def _k1(results, system: str) -> float:
    return ResultsStore(results).load(system, "demo").identity.system["bm25"]["k1"]


def test_a_variant_is_stored_beside_its_preset_and_served_again(tmp_path):
    results = tmp_path / "r"
    assert _run(results).exit_code == 0
    preset = (results / "bm25" / "demo.json").read_bytes()
    variant = _run(results, "--bm25-k1", "0.9")
    assert variant.exit_code == 0, variant.output
    assert "[done] bm25[k1=0.9] on demo" in variant.output and "[refused]" not in variant.output
    assert (results / "bm25" / "demo.json").read_bytes() == preset  # the preset's result untouched
    assert (_k1(results, "bm25"), _k1(results, "bm25[k1=0.9]")) == (1.5, 0.9)
    again = _run(results, "--bm25-k1", "0.9")
    assert again.exit_code == 0 and "[skip] bm25[k1=0.9] on demo: already done" in again.output
    # several differences, in the order the spec declares them
    both = _run(results, "--bm25-b", "0.4", "--bm25-k1", "0.9")
    assert both.exit_code == 0 and "[done] bm25[k1=0.9,b=0.4] on demo" in both.output
    deeper = _run(results, "--top-k", "5")
    assert deeper.exit_code == 0 and "[done] bm25[top_k=5] on demo" in deeper.output
    # the default value given explicitly is the preset itself
    explicit = _run(results, "--bm25-k1", "1.5")
    assert explicit.exit_code == 0 and "[skip] bm25 on demo: already done" in explicit.output
    table = _cli("table", "--results-dir", results, "--metric", "ndcg@10")
    header = table.output.splitlines()[0]
    assert table.exit_code == 0
    columns = [c.strip() for c in header.strip("|").split("|")][1:]
    assert sorted(columns) == sorted(["bm25", "bm25[k1=0.9]", "bm25[k1=0.9,b=0.4]", "bm25[top_k=5]"])
    # -s takes a variant's name as itself (its brackets are not a glob's class), and globs over names
    chosen = _cli(
        "table", "--results-dir", results, "--metric", "ndcg@10", "-s", "bm25[k1=0.9]", "-s", "bm25"
    )
    header = chosen.output.splitlines()[0]
    assert chosen.exit_code == 0, chosen.output
    assert [c.strip() for c in header.strip("|").split("|")][1:] == ["bm25[k1=0.9]", "bm25"]
    globbed = _cli("table", "--results-dir", results, "--metric", "ndcg@10", "-s", "bm25[[]k1*")
    header = globbed.output.splitlines()[0]
    assert [c.strip() for c in header.strip("|").split("|")][1:] == sorted(
        ["bm25[k1=0.9]", "bm25[k1=0.9,b=0.4]"]
    )


def test_plan_names_the_variant_as_run_stores_it(tmp_path):
    results = tmp_path / "r"
    plan = _run(results, "--bm25-k1", "0.9", "--plan")
    assert plan.exit_code == 0 and "bm25[k1=0.9] done" in plan.output and "0 already done" in plan.output
    assert _run(results, "--bm25-k1", "0.9").exit_code == 0
    assert "1 already done, 0 to run" in _run(results, "--bm25-k1", "0.9", "--plan").output


def test_an_explicit_name_is_kept_and_refused_in_one_line_when_its_spec_differs(tmp_path):
    results = tmp_path / "r"
    named = _run(results, "--bm25-k1", "0.9", "--name", "mine")
    assert named.exit_code == 0 and "[done] mine on demo" in named.output
    assert _k1(results, "mine") == 0.9 and not (results / "bm25[k1=0.9]").exists()
    refused = _run(results, "--name", "mine")
    assert refused.exit_code == 3
    assert refused.output.splitlines() == [
        "[refused] mine on demo was made with other settings (bm25.k1 0.9 → 1.5); use --name NAME to keep "
        "both, or --overwrite to replace it"
    ]
    replaced = _run(results, "--name", "mine", "--overwrite")
    assert replaced.exit_code == 0 and _k1(results, "mine") == 1.5


def test_the_api_names_variants_as_the_command_does(tmp_path):
    results = tmp_path / "r"
    say = []
    first = api.run(["bm25"], ["demo"], results_dir=results, bm25_k1=0.9, progress=False, echo=say.append)
    assert [r.system for r in first] == ["bm25[k1=0.9]"] and not first.failures
    again = api.run(["bm25"], ["demo"], results_dir=results, bm25_k1=0.9, progress=False, echo=say.append)
    assert [r.path for r in again] == [r.path for r in first] and "[skip] bm25[k1=0.9] on demo" in say[-1]
    named = api.run(
        ["bm25"], ["demo"], results_dir=results, bm25_k1=0.9, name="mine", progress=False, echo=say.append
    )
    assert [r.system for r in named] == ["mine"]
    stored = json.loads((results / "bm25[k1=0.9]" / "demo.json").read_text())
    assert stored["system"] == "bm25[k1=0.9]" and stored["manifest"]["spec"]["system"] == "bm25[k1=0.9]"


def test_fuse_and_export_take_variant_names(tmp_path):
    results = tmp_path / "r"
    assert _run(results).exit_code == 0 and _run(results, "--bm25-k1", "0.9").exit_code == 0
    fused = _cli("fuse", "bm25", "bm25[k1=0.9]", "-d", "demo", "--results-dir", results, "--quiet")
    assert fused.exit_code == 0 and "[done] rrf(bm25+bm25[k1=0.9]) on demo" in fused.output
    inputs = ResultsStore(results).load("rrf(bm25+bm25[k1=0.9])", "demo").spec["inputs"]
    assert [i["system"] for i in inputs] == ["bm25", "bm25[k1=0.9]"]
    out = tmp_path / "export"
    exported = _cli("export", "--results-dir", results, "--format", "trec", "--output", out,
                    "--system", "bm25[k1=0.9]")  # fmt: skip
    assert exported.exit_code == 0, exported.output
    assert [p.relative_to(out).as_posix() for p in sorted(out.glob("*/*.run.trec.gz"))] == [
        "bm25[k1=0.9]/demo.run.trec.gz"
    ]
