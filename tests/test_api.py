"""The Python API as a script meets it: its options in the signature, a failed pair raised (unless
failures are collected, as the commands do), and what it says on stderr, never mixed into stdout."""

from __future__ import annotations

import inspect
import shutil

import pytest

from gtr_eval import api, options
from gtr_eval.errors import PairsFailed
from gtr_eval.paths import BUNDLED


@pytest.mark.parametrize("func, group", [(api.run, options.RUN), (api.rerank, options.RERANK),
                                         (api.fuse, options.FUSE)])  # fmt: skip
def test_the_signature_shows_every_option_with_its_default(func, group):
    params = inspect.signature(func).parameters
    for field in group:
        assert field.name in params, field.name
        assert params[field.name].default == field.default
    assert params["failures"].default == "raise" and params["echo"].default is api.to_stderr
    assert not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    with pytest.raises(TypeError, match="top_kk"):
        func(["x"], ["demo"], top_kk=5) if func is not api.rerank else func("x", ["y"], ["demo"], top_kk=5)


def _bad_copy(tmp_path):
    bad = shutil.copytree(BUNDLED / "demo", tmp_path / "bad")
    (bad / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\thigh\n")
    return bad


def test_a_failed_pair_raises_after_the_others_are_done(tmp_path, capsys):
    results = tmp_path / "r"
    with pytest.raises(PairsFailed) as caught:
        api.run(["bm25"], ["demo", str(_bad_copy(tmp_path))], results_dir=results, progress=False)
    e = caught.value
    assert str(e).startswith("1 pair failed: bm25 on bad: data failed: ")
    assert "score 'high' is not an integer" in str(e.__cause__)
    assert [(r.system, r.dataset) for r in e.results] == [("bm25", "demo")]  # the other pair is stored
    assert (results / "bm25" / "demo.json").is_file()
    assert capsys.readouterr().out == ""


def test_collected_failures_are_returned_as_the_commands_report_them(tmp_path):
    said: list[str] = []
    out = api.run(["bm25"], ["demo", str(_bad_copy(tmp_path))], results_dir=tmp_path / "r", progress=False,
                  echo=said.append, failures="collect")  # fmt: skip
    assert [r.dataset for r in out] == ["demo"]
    assert [(f.dataset, f.stage) for f in out.failures] == [("bad", "data")]
    assert any(line.startswith("[fail] bm25 on bad: data failed") for line in said)
    with pytest.raises(ValueError, match='failures must be "raise" or "collect"'):
        api.run(["bm25"], ["demo"], results_dir=tmp_path / "r", failures="ignore")


def test_progress_goes_to_stderr_never_stdout(tmp_path, capsys):
    done = api.run(["bm25"], ["demo"], results_dir=tmp_path / "r")
    captured = capsys.readouterr()
    assert len(done) == 1 and captured.out == ""
    assert "BM25: tokenise: " in captured.err and "[done] bm25 on demo: nDCG@10 " in captured.err
    api.run(["bm25"], ["demo"], results_dir=tmp_path / "r")
    captured = capsys.readouterr()
    assert captured.out == "" and "[skip] bm25 on demo: already done" in captured.err
