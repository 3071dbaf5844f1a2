"""Every LaTeX output of `table` and `paper` compiles with a real pdflatex, pasted as is into a document
that loads only booktabs; each is one complete `table` environment with a caption of at most two
sentences.  Under CI a missing pdflatex fails the test (`.ci/run` installs Debian's TeX Live)."""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import cache

import pytest
from cli_process import gtr_eval
from conftest import ROOT

RESULTS = str(ROOT / "results")

OUTPUTS = {
    "table": ("table", "--results-dir", RESULTS, "--format", "latex"),
    "table, baseline, Δ and a reference": ("table", "--results-dir", RESULTS, "--format", "latex", "--baseline",
                                           "bm25", "--diff-against", "bm25", "--reference", "mteb-results:bm25s"),
    "table, recall@100, judged": ("table", "--results-dir", RESULTS, "--format", "latex", "--metric", "R@100",
                                  "--show", "judged"),
    "paper": ("paper", "--results-dir", RESULTS, "--format", "latex"),
    "paper, every system of the layout": ("paper", "--results-dir", RESULTS, "--format", "latex", "--all"),
}  # fmt: skip

DOCUMENT = "\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n%s\n\\end{document}\n"


@cache  # one run of the command per output for both tests
def _latex(args: tuple[str, ...]) -> str:
    done = gtr_eval(*args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _tables(text: str) -> list[str]:
    return re.findall(r"\\begin\{table\}.*?\\end\{table\}", text, flags=re.S)


@pytest.mark.parametrize("name", OUTPUTS)
def test_latex_output_is_complete_tables_with_short_captions(name):
    text = _latex(OUTPUTS[name])
    tables = _tables(text)
    assert tables and "".join(tables).count("\\begin{tabular}") == len(tables)
    assert re.sub(r"\\begin\{table\}.*?\\end\{table\}", "", text, flags=re.S).strip() == ""  # nothing outside
    for table in tables:
        caption = re.search(r"\\caption\{(.*)\}\n", table).group(1)
        assert 1 <= caption.count(". ") + caption.endswith(".") <= 2, caption
        assert "\\toprule" in table and "\\bottomrule" in table
        assert "Δ" not in table and "`" not in table and "-0.0000" not in table
    if "Δ" in name:
        assert "$\\Delta$" in text


@pytest.mark.parametrize("name", OUTPUTS)
def test_latex_output_compiles_with_pdflatex(name, tmp_path):
    pdflatex = shutil.which("pdflatex")
    if pdflatex is None:
        pytest.skip("pdflatex not installed (Debian: texlive-latex-base texlive-latex-recommended)")
    _compile(pdflatex, _latex(OUTPUTS[name]), tmp_path)


def _compile(pdflatex: str, latex: str, tmp_path) -> None:
    (tmp_path / "doc.tex").write_text(DOCUMENT % latex)
    done = subprocess.run([pdflatex, "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    log = (
        (tmp_path / "doc.log").read_text(errors="replace") if (tmp_path / "doc.log").exists() else done.stdout
    )
    assert done.returncode == 0, log[-3000:]
    assert (tmp_path / "doc.pdf").read_bytes()[:5] == b"%PDF-"
    assert "Missing character" not in log and "Undefined control sequence" not in log


def test_every_special_character_of_a_system_name_is_escaped_and_compiles(tmp_path):
    from gtr_eval.report.paper import paper_table, render_paper
    from gtr_eval.results import StoredResult

    name = "a_b&c%d#e$f{g}h~i^j\\k>>l"
    results = [StoredResult(s, "scifact", "test", {"ndcg@10": v}, {}, {}, None)
               for s, v in ((name, 0.7), ("bm25", 0.6863))]  # fmt: skip
    text = render_paper(
        paper_table(results, "ndcg@10", only_run=True, run_systems_only=True), "ndcg@10", "latex"
    )
    escaped = r"a\_b\&c\%d\#e\$f\{g\}h\textasciitilde{}i\textasciicircum{}j\textbackslash{}k\textgreater{}\textgreater{}l"
    assert escaped in text and r"\textbf{0.7000}" in text  # the best of our values, bold
    pdflatex = shutil.which("pdflatex")
    if pdflatex is None:
        pytest.skip("pdflatex not installed (Debian: texlive-latex-base texlive-latex-recommended)")
    _compile(pdflatex, text, tmp_path)
