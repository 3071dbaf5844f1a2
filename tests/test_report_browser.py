"""The report in a real browser: headless Chromium (Debian's `chromium`) driven by Playwright.

The site is generated from the committed results/, opened from file://, and every number the page
shows is compared with the stored metrics.  Every test also checks that no request left file:// (any
other request is aborted and recorded) and that the page logged no console error.  Skipped, with a
message, where Chromium or Playwright is missing; CI installs both.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from gtr_eval.report import paper
from gtr_eval.report.site import ReportConfig, build_site
from gtr_eval.report.tables import AVERAGE, JUDGED_MARK, leaderboard
from gtr_eval.results import ResultsStore
from gtr_eval.uncertainty import Bootstrap

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "results"
BEIR_DATA = ROOT.parent / "shared" / "data" / "beir"
CHROMIUM = Path(os.environ.get("GTR_EVAL_CHROMIUM", "/usr/bin/chromium"))
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
]


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        pytest.skip(
            f"Chromium not found at {CHROMIUM}: `apt-get install chromium` (or set GTR_EVAL_CHROMIUM)"
        )
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (the `test` extra)"
    )
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def results():
    return list(ResultsStore(COMMITTED))


@pytest.fixture(scope="module")
def site(tmp_path_factory, results) -> Path:
    data_dir = BEIR_DATA if BEIR_DATA.is_dir() else None
    config = ReportConfig(output=tmp_path_factory.mktemp("report"), data_dir=data_dir)
    return build_site(results, config, results_dir=COMMITTED).parent


class Tab:
    """A page plus everything it requested and every console error it logged."""

    def __init__(self, browser, url: str):
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.requests: list[str] = []
        self.blocked: list[str] = []
        self.errors: list[str] = []
        self.context.route(re.compile(r"^(?!file:).*"), self._block)
        self.page = self.context.new_page()
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(url)
        self.page.wait_for_load_state("load")

    def _block(self, route) -> None:
        self.blocked.append(route.request.url)
        route.abort()

    def close(self) -> None:
        """Close, then insist nothing left file:// and nothing went wrong in the page."""
        self.page.wait_for_timeout(100)
        self.context.close()
        assert not self.blocked, f"requests outside file://: {self.blocked}"
        assert self.requests and all(u.startswith("file://") for u in self.requests), self.requests
        assert not self.errors, f"console errors: {self.errors}"


@pytest.fixture()
def index(browser, site):
    tab = Tab(browser, (site / "index.html").as_uri())
    yield tab
    tab.close()


def cell(page, row: str, col: str):
    return page.locator(f'#leaderboard-table td[data-row="{row}"][data-col="{col}"]')


def test_the_page_loads_its_own_assets_and_nothing_else(index):
    loaded = {u.rsplit("/", 2)[-1] for u in index.requests}
    assert {"index.html", "report.css", "report.js"} <= loaded


def number(td) -> str:
    """The number and its marks, without the interval and Δ lines that follow them."""
    return td.inner_text().split()[0]


@pytest.mark.parametrize("metric", ["ndcg@10", "recall@100", "mrr@10", "map@10"])
def test_leaderboard_numbers_equal_the_stored_metrics(index, results, metric):
    page = index.page
    page.select_option("#metric", metric)
    assert page.locator("#leaderboard-table").get_attribute("data-metric") == metric
    board = leaderboard(results, metric=metric, baseline="bm25", ci=Bootstrap())
    for r in results:
        td = cell(page, r.dataset, r.system)
        assert float(td.get_attribute("data-value")) == r.metrics[metric]  # the full stored value
        assert number(td) == f"{r.metrics[metric]:.4f}" + board.marks.loc[r.dataset, r.system]
    for system in {r.system for r in results}:
        mean = sum(r.metrics[metric] for r in results if r.system == system) / 2
        assert number(cell(page, AVERAGE, system)) == f"{mean:.4f}"
    for row in board.values.index:  # bold = best in the row, as the table code decides
        for col in board.system_columns:
            assert (cell(page, row, col).locator("b").count() == 1) == bool(board.best.loc[row, col])


def test_intervals_and_paired_differences_are_the_tables(index, results):
    """Every system cell shows the interval `table --ci` computes, and against the baseline its
    paired Δ interval; the chart draws them as error bars; a box hides them, and the URL keeps it."""
    page = index.page
    page.select_option("#metric", "ndcg@10")
    page.select_option("#baseline", "bm25")
    board = leaderboard(results, metric="ndcg@10", baseline="bm25", ci=Bootstrap())
    systems = board.system_columns
    for row in board.values.index:
        for system in systems:
            td = cell(page, row, system)
            lo, hi = board.ci_low.loc[row, system], board.ci_high.loc[row, system]
            assert td.locator(".ci").inner_text().strip() == f"[{lo:.4f}, {hi:.4f}]"
            assert float(td.get_attribute("data-low")) == lo and float(td.get_attribute("data-high")) == hi
            if system == "bm25":
                assert td.locator(".diff").count() == 0
                continue
            d, dl, dh = (
                board.diff.loc[row, system],
                board.diff_low.loc[row, system],
                board.diff_high.loc[row, system],
            )
            assert td.locator(".diff").inner_text() == f"Δ {d:+.4f} [{dl:+.4f}, {dh:+.4f}]"
    bars = page.locator("#leaderboard-chart svg line.errbar")
    assert bars.count() == len(board.values.index) * len(systems)  # (2 datasets + Average) × systems
    lows = sorted(float(x) for x in bars.evaluate_all("ls => ls.map(l => l.getAttribute('data-low'))"))
    assert lows == sorted(float(board.ci_low.loc[r, s]) for r in board.values.index for s in systems)
    assert "95% bootstrap intervals" in page.locator("#leaderboard-caption").inner_text()
    page.locator("#show-ci").uncheck()
    assert page.locator("#leaderboard-table .ci").count() == 0 and bars.count() == 0
    assert "ci=0" in page.evaluate("location.hash")
    page.locator("#show-judged").check()
    judged = cell(page, "scifact", "bm25").locator(".judged").inner_text()
    assert judged.strip() == "(9% judged)"  # Judged@10 0.0907, computed from the run file and qrels


def test_a_system_the_pool_never_saw_is_marked_in_the_report(browser, tmp_path):
    from pooled_results import DATASET, make_pooled_results, stored_without_judged

    results_dir, _ = make_pooled_results(tmp_path)
    stored_without_judged(results_dir)
    index = build_site(
        list(ResultsStore(results_dir)), ReportConfig(output=tmp_path / "site"), results_dir=results_dir
    )
    tab = Tab(browser, index.as_uri())
    try:
        page = tab.page
        assert cell(page, DATASET, "newmodel").locator(".jmark").inner_text() == JUDGED_MARK
        assert cell(page, DATASET, "bm25").locator(".jmark").count() == 0
        notes = page.locator("#leaderboard-notes").inner_text()
        assert (
            "newmodel on pooled: ndcg@10 may be underestimated: 20% of its top 10 is judged, bm25's 100%."
            in notes
        )
        page.select_option("#baseline", "none")  # the mark does not depend on the baseline picked
        assert cell(page, DATASET, "newmodel").locator(".jmark").count() == 1
        page.locator("#show-judged").check()
        assert cell(page, DATASET, "newmodel").locator(".judged").inner_text().strip() == "(20% judged)"
    finally:
        tab.close()


def test_sorting_by_a_column_and_back(index, results):
    page = index.page
    page.select_option("#metric", "ndcg@10")

    def order():
        return page.locator("#leaderboard-table tbody tr").evaluate_all(
            "rows => rows.map(r => r.dataset.row)"
        )

    assert order() == ["nfcorpus", "scifact"]  # BEIR's order
    values = {r.dataset: r.metrics["ndcg@10"] for r in results if r.system == "all-MiniLM-L6-v2"}
    header = page.locator('#leaderboard-table th[data-col="0"]')
    assert header.inner_text().startswith("all-MiniLM-L6-v2")
    header.locator("button").click()
    assert order() == sorted(values, key=values.get, reverse=True)
    assert page.locator('#leaderboard-table th[data-col="0"]').get_attribute("aria-sort") == "descending"
    page.locator('#leaderboard-table th[data-col="0"] button').click()
    assert order() == sorted(values, key=values.get)
    page.locator('#leaderboard-table th[data-col="-1"] button').click()
    assert order() == ["nfcorpus", "scifact"]
    assert page.locator("#leaderboard-table tfoot tr").evaluate("r => r.dataset.row") == AVERAGE


def test_metric_switch_redraws_the_chart_and_is_kept_in_the_url(index, browser, site, results):
    page = index.page
    page.select_option("#metric", "recall@100")
    labels = page.locator("#leaderboard-chart svg text.value").all_text_contents()
    for r in results:
        assert f"{r.metrics['recall@100']:.4f}" in labels
    systems = {r.system for r in results}
    assert len(systems) >= 2
    assert page.locator("#leaderboard-chart svg rect").count() == 3 * len(
        systems
    )  # (2 datasets + Average) × systems
    assert "metric=recall%40100" in page.evaluate("location.hash")
    again = Tab(browser, (site / "index.html").as_uri() + "#metric=mrr%4010&baseline=none")
    try:
        assert again.page.locator("#metric").input_value() == "mrr@10"
        assert again.page.locator("#baseline").input_value() == "none"
        assert again.page.locator("#leaderboard-table .mark").count() == 0
    finally:
        again.close()


def test_baseline_switch_moves_the_significance_marks(index, results):
    page = index.page
    page.select_option("#metric", "ndcg@10")
    for baseline in ("all-MiniLM-L6-v2", "bm25"):
        page.select_option("#baseline", baseline)
        board = leaderboard(results, metric="ndcg@10", baseline=baseline)
        shown = {
            (r.dataset, r.system): cell(page, r.dataset, r.system).locator(".mark").all_inner_texts()
            for r in results
        }
        assert shown == {k: [board.marks.loc[k]] if board.marks.loc[k] else [] for k in shown}
    assert any(shown.values()), "bm25 vs all-MiniLM-L6-v2 on SciFact is significant in the committed results"
    page.select_option("#baseline", "none")
    assert page.locator("#leaderboard-table .mark").count() == 0


def test_a_click_on_a_number_shows_its_provenance(index, results):
    page = index.page
    stored = next(r for r in results if (r.system, r.dataset) == ("all-MiniLM-L6-v2", "scifact"))
    cell(page, "scifact", "all-MiniLM-L6-v2").click()
    dialog = page.locator("dialog#provenance")
    assert dialog.is_visible()
    text = dialog.inner_text()
    assert f"ndcg@10 of all-MiniLM-L6-v2 on scifact = {stored.metrics['ndcg@10']!r}" in text
    for fact in (
        stored.spec["weights_sha256"],
        stored.spec["revision"],
        stored.spec["hub_id"],
        stored.manifest["versions"]["torch"],
        stored.manifest["hardware"]["platform"],
        "search_s",
    ):
        assert fact in text
    dialog.locator("button.close").click()
    assert not dialog.is_visible()
    cell(page, AVERAGE, "bm25").click()
    assert "Computed from 2 stored results" in dialog.inner_text()


def test_paper_tables_and_golden_check(index, results):
    page = index.page
    first = page.locator("table.paper").first
    assert first.get_attribute("data-metric") == "ndcg@10"
    scifact = first.locator("tbody tr", has=page.locator("th", has_text="scifact"))
    bm25 = next(r for r in results if (r.system, r.dataset) == ("bm25", "scifact"))
    assert scifact.locator("td.ours").first.inner_text().startswith(f"{bm25.metrics['ndcg@10']:.4f}")
    golden = paper.load_golden(COMMITTED / "golden.yaml")
    stored = {r.system for r in results}
    checked = {
        e.system for e in golden if e.dataset == "scifact" and e.metric == "ndcg@10" and e.system in stored
    }
    assert {"bm25", "all-MiniLM-L6-v2"} <= checked
    assert scifact.locator("td.ours .badge.ok").count() == len(checked)
    assert page.locator("table.golden .badge.fail").count() == 0
    assert page.locator("table.golden .badge.ok").count() == sum(e.system in stored for e in golden)
    assert page.locator("table.golden .badge.missing").count() == sum(e.system not in stored for e in golden)
    # the published figure as published and the exact difference, as `paper --check` prints them
    rows = [r.split("\t") for r in page.locator("table.golden tbody tr").all_inner_texts()]
    published = next(r for r in rows if r[1:4] == ["bm25", "scifact", "ndcg@10"] and "published" in r[-1])
    assert published[4:7] == ["0.68736", "0.68630", "\u22120.00106"]


def test_print_hides_the_controls(index):
    index.page.emulate_media(media="print")
    assert not index.page.locator(".controls").first.is_visible()
    assert index.page.locator("#leaderboard-table").is_visible()
    assert index.page.locator("#leaderboard-chart svg").is_visible()


def test_dataset_page(browser, site, results):
    tab = Tab(browser, (site / "datasets" / "scifact.html").as_uri())
    page = tab.page
    try:
        stored = {r.system: r for r in results if r.dataset == "scifact"}
        for system, r in stored.items():
            for metric, value in r.metrics.items():
                td = page.locator(f'#metrics-table td[data-row="{metric}"][data-col="{system}"]')
                assert td.inner_text() == f"{value:.4f}"
        assert page.locator("#system-a").input_value() == "bm25"
        assert page.locator("#system-b").input_value() == "all-MiniLM-L6-v2"
        for metric in ("ndcg@10", "recall@100"):
            page.select_option("#query-metric", metric)
            a, b = stored["bm25"].per_query[metric], stored["all-MiniLM-L6-v2"].per_query[metric]
            wins, ties, losses = (
                sum(b[q] > a[q] for q in a),
                sum(b[q] == a[q] for q in a),
                sum(b[q] < a[q] for q in a),
            )
            summary = page.locator("#compare-summary").inner_text()
            assert f"B better on {wins}, tied on {ties}, worse on {losses} queries" in summary
            assert page.locator("#scatter svg").get_attribute("data-points") == str(len(a))
            distinct = {(f"{a[q]:.4f}", f"{b[q]:.4f}") for q in a}
            assert page.locator("#scatter svg circle").count() == len(distinct)
            rows = page.locator("#disagree-table tbody tr")
            assert rows.count() == min(20, sum(a[q] != b[q] for q in a))
            first = rows.first
            qid = first.get_attribute("data-query")
            gap = max(abs(b[q] - a[q]) for q in a)
            assert abs(b[qid] - a[qid]) == pytest.approx(gap)
            if BEIR_DATA.is_dir():
                import json

                queries = {}
                with open(BEIR_DATA / "scifact" / "queries.jsonl") as fh:
                    for line in fh:
                        rec = json.loads(line)
                        queries[rec["_id"]] = rec["text"]
                assert queries[qid] in first.locator("td.query").inner_text()
                assert re.search(r"\(grade \d", first.locator("td.doccell").inner_text())
        page.select_option("#system-a", "all-MiniLM-L6-v2")  # swapped pair: signs flip
        page.select_option("#system-b", "bm25")
        assert "A (all-MiniLM-L6-v2)" in page.locator("#compare-summary").inner_text()
        page.locator('#metrics-table td[data-row="ndcg@10"][data-col="bm25"]').click()
        assert stored["bm25"].spec["bm25"]["method"] in page.locator("dialog#provenance").inner_text()
    finally:
        tab.close()


def test_the_checks_catch_an_outside_request_and_a_console_error(browser, tmp_path):
    page = tmp_path / "bad.html"
    page.write_text(
        '<html><body><img src="https://example.invalid/pixel.png">'
        "<script>console.error('broken')</script></body></html>"
    )
    tab = Tab(browser, page.as_uri())
    with pytest.raises(
        AssertionError, match="requests outside file://: \\['https://example.invalid/pixel.png'\\]"
    ):
        tab.close()
    assert tab.errors and "broken" in tab.errors


def test_a_single_system_report_renders_without_errors(browser, tmp_path):
    """One system: no baseline to test against and nothing to compare; the pages still render."""
    from demo_results import make_demo_results

    results_dir = make_demo_results(tmp_path / "results", systems={"alpha": 0.5})
    index = build_site(
        list(ResultsStore(results_dir)), ReportConfig(output=tmp_path / "site"), results_dir=results_dir
    )
    tab = Tab(browser, index.as_uri())
    try:
        assert tab.page.locator("#baseline option").all_inner_texts() == ["none"]
        stored = list(ResultsStore(results_dir))[0]
        assert number(cell(tab.page, "demo", "alpha")) == f"{stored.metrics['ndcg@10']:.4f}"
        assert (
            "None of the stored datasets is in the paper's table" in tab.page.locator("#paper").inner_text()
        )
    finally:
        tab.close()
    tab = Tab(browser, (index.parent / "datasets" / "demo.html").as_uri())
    try:
        assert "Only one system is stored" in tab.page.locator("#compare").inner_text()
    finally:
        tab.close()
