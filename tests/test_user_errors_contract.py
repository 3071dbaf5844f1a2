"""The exit-code contract (`errors.EXIT_CODES`, docs/exit-codes.md), command by command: each runs with
a typical mistake and must exit 2 with ONE `Error:` line on stderr, printed once, nothing on stdout,
and nothing written (results, outputs, report folder, data folder); a refusal exits 3 the same way."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from demo_results import make_demo_results

from gtr_eval.cli import cli
from gtr_eval.errors import EXIT_CODES, FAILED, MISTAKE, Mistake, PairError, Refused, exit_code
from gtr_eval.paths import BUNDLED

DEMO = BUNDLED / "demo"
R, DATA, OUT = "{results}", "{data}", "{out}"  # filled in per test: folders under tmp_path

# (command line, the exit code, what the one line says)
CASES = [
    (["run", "-m", "bm-25", "-d", "demo"], MISTAKE, "unknown model 'bm-25'; did you mean bm25?"),
    (["run", "-m", "bm25", "-d", "Demoo"], MISTAKE, "unknown dataset 'Demoo'; did you mean demo?"),
    (["run", "-m", "bm25", "-d", "demo", "--split", "validation"], MISTAKE, "demo has no such split (its splits: test)"),
    (["run", "-m", "bm25", "out/checkpoint-1", "out/checkpoint-2", "-d", "demo"], MISTAKE, "quote a glob"),
    (["runn", "-m", "bm25", "-d", "demo"], MISTAKE, "No such command 'runn'. Did you mean 'run'?"),
    (["encode", "-m", "gtr-t5-bse", "-d", "demo"], MISTAKE, "did you mean gtr-t5-base?"),
    (["rerank", "--run", "alpha", "-m", "all-MiniLM-L6-v2", "-d", "demo"], MISTAKE, "is a bi-encoder"),
    (["rerank", "--run", "alfa", "-m", "ms-marco-MiniLM-L6-v2", "-d", "demo"], MISTAKE, "did you mean alpha?"),
    (["rerank", "--run", "alpha", "-m", "example-org/no-such-reranker", "-d", "demo"], MISTAKE, "no-such-reranker"),
    (["fuse", "--rrf", "alpha", "-d", "demo"], MISTAKE, "fusion needs at least two systems, got 1"),
    (["fuse", "--minmax", "--weights", "0.3", "alpha", "beta", "-d", "demo"], MISTAKE, "1 weights for 2 systems"),
    (["table", "--baseline", "alfa"], MISTAKE, "baseline 'alfa' has no stored results; did you mean alpha?"),
    (["table", "--metric", "ndcg@11"], MISTAKE, "did you mean ndcg@10?"),
    (["plot", "--metric", "ndcg@11", "--output", f"{OUT}/chart.png"], MISTAKE, "did you mean ndcg@10?"),
    (["paper", "--metric", "nDCG@10", "--results-dir", f"{OUT}/none"], MISTAKE, "no stored result in"),
    (["report", "--baseline", "nope", "--output", f"{OUT}/site"], MISTAKE, "baseline 'nope' has no stored"),
    (["export", "--format", "csv", "--output", f"{OUT}/x", "--system", "gamma"], MISTAKE, "system 'gamma'"),
    (["import", "--run", "{bad}", "--name", "ext", "--dataset", "demo", "--qrels", str(DEMO / "qrels" / "test.tsv")],
     MISTAKE, "expected 6 columns"),
    (["import", "--run", "{good}", "--name", "ext", "--dataset", "Demoo"], MISTAKE, "did you mean demo?"),
    (["evaluate", "--qrels", str(DEMO / "qrels" / "test.tsv"), "--run", "{bad}"], MISTAKE, "{bad}:1: expected 6"),
    (["datasets", "--jsn"], MISTAKE, "Did you mean '--json'?"),
    (["download", "scifct"], MISTAKE, "unknown dataset 'scifct'; did you mean scifact?"),
    (["references", "--metric", "foo"], MISTAKE, "unknown metric 'foo'"),
    (["import", "--run", "{good}", "--name", "alpha", "--dataset", "demo", "--qrels", str(DEMO / "qrels" / "test.tsv")],
     FAILED, "[refused] alpha on demo"),
]  # fmt: skip
# the commands whose options take --results-dir / --data-dir
WITH_RESULTS = {"run", "rerank", "fuse", "table", "plot", "paper", "report", "export", "import"}
WITH_DATA = {"run", "encode", "rerank", "fuse", "import", "download"}


@pytest.fixture(scope="module")
def stored(tmp_path_factory) -> Path:
    """Two systems (alpha, beta) stored on the demo set, and a good and a bad TREC run file."""
    root = tmp_path_factory.mktemp("contract")
    make_demo_results(root / "results")
    shutil.copyfile(next((root / "results" / "alpha").glob("demo.*.run.trec.gz")), root / "good.trec.gz")
    (root / "bad.trec").write_text("q1 Q0 d01\n")
    (root / "data").mkdir()
    return root


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under `root` but the user cache (memos of file digests), with size and time."""
    found = [p for p in sorted(root.rglob("*")) if p.relative_to(root).parts[0] != "user-cache"]
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in found}


def _line(args: list[str], stored: Path, out: Path) -> list[str]:
    fill = {R: str(stored / "results"), DATA: str(stored / "data"), OUT: str(out)}
    fill |= {"{bad}": str(stored / "bad.trec"), "{good}": str(stored / "good.trec.gz")}
    line = [_fill(a, fill) for a in args]
    command = line[0]
    if command in WITH_RESULTS and "--results-dir" not in line:
        line += ["--results-dir", fill[R]]
    if command in WITH_DATA:
        line += ["--data-dir", fill[DATA]]
    return line


def _fill(text: str, fill: dict[str, str]) -> str:
    for key, value in fill.items():
        text = text.replace(key, value)
    return text


@pytest.mark.parametrize(
    "args, code, said", CASES, ids=[" ".join(c[0][:2]) + f" #{i}" for i, c in enumerate(CASES)]
)
def test_a_typical_mistake_exits_with_its_code_in_one_line_and_writes_nothing(
    stored, tmp_path, monkeypatch, args, code, said
):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a hub model is not found: said before any work
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    before, here = _snapshot(stored), _snapshot(tmp_path)
    result = CliRunner().invoke(cli, _line(args, stored, out))
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, result.stderr  # one line, printed once
    assert lines[0].startswith("Error: " if code == MISTAKE else "[refused]"), lines[0]
    assert _fill(said, {"{bad}": str(stored / "bad.trec")}) in lines[0], lines[0]
    assert len(lines[0]) < 300 and "['" not in lines[0]  # no long or raw Python lists
    assert result.stdout == ""
    assert _snapshot(stored) == before  # results and data folders untouched
    assert _snapshot(tmp_path) == here and not out.exists()  # no output file, no report folder


def test_names_are_taken_case_aside_when_that_is_unambiguous(stored, tmp_path):
    runner = CliRunner()
    table = runner.invoke(cli, ["table", "--baseline", "ALPHA", "--results-dir", str(stored / "results")])
    assert table.exit_code == 0, table.output
    assert table.stdout.splitlines()[0].split("|")[2].strip() == "alpha"  # the baseline's column first
    run = runner.invoke(cli, ["run", "-m", "BM25", "-d", "Demo", "--results-dir", str(tmp_path), "--quiet"])
    assert run.exit_code == 0, run.output
    assert (tmp_path / "bm25" / "demo.json").is_file()  # stored under the canonical names
    results = shutil.copytree(stored / "results", tmp_path / "copy")
    fused = runner.invoke(
        cli, ["fuse", "--rrf", "ALPHA", "Beta", "-d", "demo", "--results-dir", str(results)]
    )
    assert fused.exit_code == 0, fused.output
    assert (results / "rrf(alpha+beta)" / "demo.json").is_file()


def test_the_table_decides_each_kind_of_failure():
    from gtr_eval.data.jsonl import DataError

    assert [code for _, code in EXIT_CODES] == [MISTAKE, FAILED, 130]
    assert exit_code(Mistake("x")) == 2 and exit_code(DataError("f", 1, "x")) == 2  # bad input, alone
    assert exit_code(Refused("x")) == 3 and exit_code(PairError("x")) == 3
    assert exit_code(KeyboardInterrupt()) == 130 and exit_code(RuntimeError("bug")) == 1


def test_a_failed_pair_in_a_sweep_exits_3_and_the_others_finish(tmp_path):
    bad = shutil.copytree(DEMO, tmp_path / "bad")
    (bad / "corpus.jsonl").write_text('{"_id": "d01", "text": "cut short\n')
    results = tmp_path / "results"
    line = ["run", "-m", "bm25", "-d", str(bad), "-d", "demo", "--results-dir", str(results), "--quiet"]
    out = CliRunner().invoke(cli, line)
    assert out.exit_code == FAILED, out.output
    assert (results / "bm25" / "demo.json").is_file() and not (results / "bm25" / "bad.json").exists()
    assert f"bm25 on bad: data failed: {bad / 'corpus.jsonl'}:1" in out.stderr
