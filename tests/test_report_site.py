"""`gtr-eval report`: what the pages embed (checked against the stored results and the table code),
that they reference nothing outside the site, and the command line.  The rendering in a real
browser is tested in test_report_browser.py."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner
from demo_results import DEMO, make_demo_results

from gtr_eval.cli import cli
from gtr_eval.data.loader import load_beir_folder
from gtr_eval.evaluation import ranked, read_trec_run
from gtr_eval.report import paper
from gtr_eval.report.site import QUERY_METRICS, ReportConfig, _json_for_script, build_site, dataset_href
from gtr_eval.report.tables import AVERAGE, leaderboard
from gtr_eval.results import ResultsStore
from gtr_eval.uncertainty import Bootstrap


def page_data(path: Path) -> dict:
    m = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', path.read_text(), re.S)
    assert m is not None
    return json.loads(m.group(1))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("site")
    results_dir = make_demo_results(tmp_path / "results")
    index = build_site(
        list(ResultsStore(results_dir)),
        ReportConfig(output=tmp_path / "site", baseline="alpha"),
        results_dir=results_dir,
    )
    return results_dir, index


def expected_judged(results, row: str, system: str) -> float:
    """Judged@10 as stored (the demo results were scored since gtr-eval stores it)."""
    values = [
        r.metrics["judged@10"] for r in results if r.system == system and (r.label == row or row == AVERAGE)
    ]
    return sum(values) / len(values)


def test_site_layout(site):
    _, index = site
    root = index.parent
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) == [
        "assets/report.css",
        "assets/report.js",
        "datasets/demo.html",
        "index.html",
    ]
    assert dataset_href("cqadupstack/android") == "datasets/cqadupstack--android.html"


def test_leaderboard_data_is_the_table_codes(site):
    results_dir, index = site
    data = page_data(index)
    results = list(ResultsStore(results_dir))
    assert data["defaultBaseline"] == "alpha" and data["baselines"] == ["alpha", "beta"]
    # 26 relevance measures and the 5 judged@k every result stores since gtr-eval computes them
    assert data["metrics"][:4] == ["ndcg@10", "recall@100", "mrr@10", "map@10"] and len(data["metrics"]) == 31
    assert "judged@10" in data["metrics"]
    for metric in ("ndcg@10", "recall@100", "p@5"):
        board = data["boards"][metric]
        for baseline in ("alpha", "beta"):
            expected = leaderboard(results, metric=metric, baseline=baseline, ci=Bootstrap())
            for i, row in enumerate(board["rows"]):
                for j, col in enumerate(board["columns"]):
                    assert board["values"][i][j] == expected.values.loc[row, col]
                    assert board["sig"][baseline]["marks"][i][j] == expected.marks.loc[row, col]
                    assert board["best"][i][j] == bool(expected.best.loc[row, col])
                    assert board["ciLow"][i][j] == expected.ci_low.loc[row, col]  # the table's intervals
                    assert board["ciHigh"][i][j] == expected.ci_high.loc[row, col]
                    other = "beta" if baseline == "alpha" else "alpha"
                    if col == other:
                        assert board["sig"][baseline]["diffLow"][i][j] == expected.diff_low.loc[row, col]
                        assert board["sig"][baseline]["diffHigh"][i][j] == expected.diff_high.loc[row, col]
                    assert board["judged"][i][j] == pytest.approx(expected_judged(results, row, col))
        assert board["rows"] == ["demo", AVERAGE]
        stored = {r.system: r.metrics[metric] for r in results}
        assert board["values"][0] == [stored["alpha"], stored["beta"]]


def test_provenance_is_the_stored_manifest(site):
    results_dir, index = site
    data = page_data(index)
    board = data["boards"]["ndcg@10"]
    (i,) = board["provenance"][0][board["columns"].index("beta")]
    entry = data["provenance"][i]
    stored = ResultsStore(results_dir).load("beta", "demo")
    assert (entry["system"], entry["dataset"]) == ("beta", "demo")
    assert entry["manifest"] == json.loads(json.dumps(stored.manifest))
    assert entry["manifest"]["spec"]["weights_sha256"] == stored.spec["weights_sha256"]
    assert entry["result_file"] == "results/beta/demo.json"
    assert sorted(board["provenance"][1][0] + board["provenance"][1][1]) == [
        0,
        1,
    ]  # the Average: its datasets


def test_dataset_page_holds_every_metric_per_query_scores_and_disagreements(site):
    results_dir, index = site
    data = page_data(index.parent / "datasets" / "demo.html")
    results = {r.system: r for r in list(ResultsStore(results_dir))}
    beir = load_beir_folder(DEMO, "test")
    assert data["systems"] == ["alpha", "beta"] and data["textMissing"] is None
    for system, r in results.items():
        assert data["values"][system] == r.metrics
        for metric in QUERY_METRICS:
            assert data["perQuery"][system][metric] == [
                round(r.per_query[metric][q], 6) for q in data["qids"]
            ]
    pair = data["pairs"]["alpha\tbeta"]["ndcg@10"]
    a, b = results["alpha"].per_query["ndcg@10"], results["beta"].per_query["ndcg@10"]
    assert (pair["wins"], pair["ties"], pair["losses"]) == (
        sum(b[q] > a[q] for q in a),
        sum(b[q] == a[q] for q in a),
        sum(b[q] < a[q] for q in a),
    )
    assert pair["top"], "the two made-up systems disagree somewhere"
    diffs = [abs(row["b"] - row["a"]) for row in pair["top"]]
    assert diffs == sorted(diffs, reverse=True)
    runs = {s: read_trec_run(r.run_path) for s, r in results.items()}
    for row in pair["top"]:
        assert data["queries"][row["q"]] == beir.queries[row["q"]]
        assert beir.qrels[row["q"]][row["doc"]] == row["grade"] > 0
        for side, system in (("rankA", "alpha"), ("rankB", "beta")):
            order = [d for d, _ in ranked(runs[system][row["q"]])]
            assert row[side] == order.index(row["doc"]) + 1
        winner = runs["beta" if row["b"] > row["a"] else "alpha"][row["q"]]
        best_rank = min(row["rankB"] if row["b"] > row["a"] else row["rankA"], 10**9)
        ranks = [i for i, (d, _) in enumerate(ranked(winner), 1) if beir.qrels[row["q"]].get(d, 0) > 0]
        assert best_rank == ranks[0]  # the relevant document the better system ranks highest
        title, text = (
            beir.corpus.titles[beir.corpus.index_of(row["doc"])],
            beir.corpus.bodies[beir.corpus.index_of(row["doc"])],
        )
        assert data["docs"][row["doc"]] == {
            "title": title,
            "text": text[:400] + ("…" if len(text) > 400 else ""),
        }


def test_pages_reference_nothing_outside_the_site(site):
    _, index = site

    class Links(HTMLParser):
        found: list[str] = []

        def handle_starttag(self, tag, attrs):
            self.found += [v for k, v in attrs if k in ("src", "href") and v]

    for page in index.parent.rglob("*.html"):
        parser = Links()
        parser.found = []
        parser.feed(page.read_text())
        assert parser.found, page
        for link in parser.found:
            assert not re.match(r"^[a-z][a-z0-9+.-]*:|^//", link, re.I), f"{page}: {link}"
            target = (page.parent / link.split("#")[0]) if not link.startswith("#") else page
            assert target.is_file(), f"{page}: {link} -> {target}"
    js = (index.parent / "assets" / "report.js").read_text()
    assert not re.search(r"\bfetch\(|XMLHttpRequest|https?://(?!www\.w3\.org/2000/svg)", js)


def test_embedded_json_cannot_close_its_script_element():
    hostile = {"q": "</script><script>alert(1)</script> <!-- x", "nan": float("nan")}
    text = _json_for_script(hostile)
    assert "</" not in text and "<!--" not in text
    assert json.loads(text) == {"q": hostile["q"], "nan": None}


def test_report_without_dataset_files_says_why(tmp_path):
    results_dir = make_demo_results(tmp_path / "results")
    for system in ("alpha", "beta"):
        path = results_dir / system / "demo.json"
        record = json.loads(path.read_text())
        record["manifest"]["dataset"]["path"] = str(tmp_path / "moved")
        record["manifest"]["dataset"].pop("path_from_results", None)  # the only route to the files
        path.write_text(json.dumps(record))
    index = build_site(
        list(ResultsStore(results_dir)), ReportConfig(output=tmp_path / "site"), results_dir=results_dir
    )
    data = page_data(index.parent / "datasets" / "demo.html")
    assert data["queries"] == {} and data["docs"] == {}
    assert "moved" in data["textMissing"]
    assert all("doc" not in row for row in data["pairs"]["alpha\tbeta"]["ndcg@10"]["top"])
    index = build_site(
        list(ResultsStore(results_dir)),
        ReportConfig(output=tmp_path / "site2", data_dir=DEMO.parent),
        results_dir=results_dir,
    )
    assert page_data(index.parent / "datasets" / "demo.html")["queries"]


def test_changed_dataset_files_are_not_used(tmp_path):
    results_dir = make_demo_results(tmp_path / "results")
    copy = tmp_path / "demo"
    (copy / "qrels").mkdir(parents=True)
    for name in ("corpus.jsonl", "queries.jsonl"):
        (copy / name).write_bytes((DEMO / name).read_bytes())
    (copy / "qrels" / "test.tsv").write_text((DEMO / "qrels" / "test.tsv").read_text() + "q1\td24\t1\n")
    for system in ("alpha", "beta"):
        path = results_dir / system / "demo.json"
        record = json.loads(path.read_text())
        record["manifest"]["dataset"]["path"] = str(copy)
        record["manifest"]["dataset"].pop("path_from_results", None)  # the only route to the files
        path.write_text(json.dumps(record))
    index = build_site(
        list(ResultsStore(results_dir)), ReportConfig(output=tmp_path / "site"), results_dir=results_dir
    )
    assert (
        "qrels/test.tsv differ from the files the run was scored with"
        in page_data(index.parent / "datasets" / "demo.html")["textMissing"]
    )


def test_report_cli(tmp_path):
    results_dir = make_demo_results(tmp_path / "results")
    runner = CliRunner()
    out = runner.invoke(
        cli,
        [
            "report",
            "--results-dir",
            str(results_dir),
            "--output",
            str(tmp_path / "site"),
            "--baseline",
            "none",
            "--title",
            "Demo <results>",
        ],
    )
    assert out.exit_code == 0, out.output
    index = tmp_path / "site" / "index.html"
    assert out.output.strip().endswith(str(index))
    assert "<title>Demo &lt;results&gt;</title>" in index.read_text()
    assert page_data(index)["defaultBaseline"] is None
    bad = runner.invoke(
        cli,
        [
            "report",
            "--results-dir",
            str(results_dir),
            "--output",
            str(tmp_path / "x"),
            "--baseline",
            "nobody",
        ],
    )
    assert bad.exit_code != 0 and "baseline 'nobody' has no stored results" in bad.output
    empty = runner.invoke(
        cli, ["report", "--results-dir", str(tmp_path / "none"), "--output", str(tmp_path / "y")]
    )
    assert empty.exit_code != 0 and "results folder does not exist" in empty.output


@pytest.mark.slow
def test_report_of_the_committed_results_has_golden_badges(tmp_path):
    root = Path(__file__).resolve().parents[1] / "results"
    index = build_site(list(ResultsStore(root)), ReportConfig(output=tmp_path / "site"), results_dir=root)
    text = index.read_text()
    golden = paper.load_golden(root / "golden.yaml")
    shown = {r.system for r in list(ResultsStore(root))}
    # one badge per golden check, and one per `ours` cell of the two paper tables that a check covers
    ours = {
        (e.system, e.dataset, e.metric) for e in golden if e.metric in paper.METRICS and e.system in shown
    }
    assert len(golden) >= 24 and len(ours) >= 8
    run = [e for e in golden if e.system in shown]  # the others are MISSING (not run), not failures
    assert len(run) < len(golden) and text.count('<span class="badge missing"') == len(golden) - len(run)
    assert text.count('<span class="badge ok"') == len(run) + len(ours)
    assert "FAIL</span>" not in text
    data = page_data(index)
    assert data["defaultBaseline"] == "bm25"
