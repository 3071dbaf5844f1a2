"""Runner rules that decide whether a stored result may be reused."""

from __future__ import annotations

from click.testing import CliRunner

from gtr_eval.cli import cli


def _run(results, *extra):
    args = ["run", "-m", "bm25", "-d", "demo", "--results-dir", str(results), "--quiet", *extra]
    return CliRunner().invoke(cli, args)


def test_a_stored_result_made_with_other_settings_is_not_reused_silently(tmp_path):
    assert _run(tmp_path).exit_code == 0
    again = _run(tmp_path)
    assert again.exit_code == 0 and "[skip] bm25 on demo: already done" in again.output
    changed = _run(tmp_path, "--bm25-k1", "0.9")
    assert changed.exit_code == 3
    assert (
        "[refused] bm25 on demo: bm25.k1 changed since the stored result (1.5 → 0.9); --overwrite replaces it"
        in (changed.output)
    )
    deeper = _run(tmp_path, "--top-k", "5")
    assert deeper.exit_code == 3 and "top_k changed since the stored result (1000 → 5)" in deeper.output
    replaced = _run(tmp_path, "--bm25-k1", "0.9", "--overwrite")
    assert replaced.exit_code == 0 and "[done] bm25 on demo" in replaced.output
