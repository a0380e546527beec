"""The HTML report in a real browser: headless Chromium at 1280 x 900 (zooprobe issue 21).

Two hand-written pages prove the harness first: one that follows the report's contract, on which
every check passes, and one that breaks it once per check, on which each check reports its defect.
Then the embedded default's and the tiny config's reports are opened and checked; a full-page and an
above-the-fold screenshot and the load timing are saved under ``results/report/`` (and copied to
``$ZOOPROBE_SCREENSHOT_DIR/<config>/`` when that is set). Everything skips, saying why, without
Chromium, chromedriver or Selenium.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse
from urllib.request import url2pathname

import pytest

from browser_helpers import (FOLD_SCREENSHOT, FULL_SCREENSHOT, TIMING_JSON, VIEWPORT_HEIGHT, VIEWPORT_WIDTH,
                             PageCheck, ReportBrowser, check_page, copy_for_viewing,
                             find_browser_tools, open_browser, sort_key, summary)

PAGES = Path(__file__).resolve().parent / "browser_pages"
# The reports checked, and the session fixture (tests/conftest.py) that runs the workflow to make each.
REPORT_RUNS = {"tiny": "tiny_checkout_run", "default": "default_run"}


@pytest.fixture(scope="session")
def browser() -> Iterator[ReportBrowser]:
    """One headless Chromium for the session; the test skips, saying how to install it, without one."""
    tools, why_not = find_browser_tools()
    if tools is None:
        pytest.skip(why_not)
    with open_browser(tools) as started:
        yield started


def test_without_chromium_the_tests_are_told_why_and_how_to_install_it(monkeypatch: pytest.MonkeyPatch,
                                                                         tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    tools, why_not = find_browser_tools()
    assert tools is None
    assert why_not.startswith("no Chromium on PATH") and "chromium-driver" in why_not, why_not


def test_sort_key_orders_by_leading_number_else_text() -> None:
    cells = ["0.812 [0.79, 0.83] (#1)", "10", "9", "-0.5 x", "1e-3", ".25", "\u22122"]
    assert [sort_key(c) for c in cells] == [(0, 0.812), (0, 10.0), (0, 9.0), (0, -0.5), (0, 0.001), (0, 0.25),
                                            (0, -2.0)]
    assert sort_key("  ResNet10t ") == (1, "resnet10t")
    assert sorted(["9", "100", "10"], key=sort_key) == ["9", "10", "100"]


def test_every_check_passes_on_a_page_that_follows_the_contract(browser: ReportBrowser,
                                                                tmp_path: Path) -> None:
    check = check_page(browser, PAGES / "contract_ok.html", screenshot_dir=tmp_path)
    assert check.console_errors == [] and check.requests == []
    assert check.images == 1 and check.undecoded_images == [] and check.non_data_images == []
    assert check.toc_links == 3 and check.toc_problems == []
    # Its 2000 px table scrolls inside an overflow box, so the page itself stays 1280 px wide.
    assert check.inner_width == VIEWPORT_WIDTH and check.scroll_width == VIEWPORT_WIDTH
    # The harness prefers a numeric column whose numeric order is not its text order: "n" (9, 100, 10, 80).
    assert check.sort is not None and check.sort.header == "n" and check.sort.problems == []
    assert check.sort.after == [["9", "10", "80", "100"], ["100", "80", "10", "9"]]
    assert check.sort.aria_sort == ["ascending", "descending"]
    assert check.screenshots == {FOLD_SCREENSHOT: (VIEWPORT_WIDTH, VIEWPORT_HEIGHT),
                                 FULL_SCREENSHOT: (VIEWPORT_WIDTH, check.scroll_height)}
    timing = json.loads((tmp_path / TIMING_JSON).read_text())
    assert timing["load_ms"] > 0 and timing["load_ms"] >= timing["dom_content_loaded_ms"] > 0
    assert timing["viewport"] == [VIEWPORT_WIDTH, VIEWPORT_HEIGHT]


def test_sort_check_passes_a_pandas_style_table_with_two_header_rows(browser: ReportBrowser) -> None:
    browser.open(PAGES / "contract_ok.html")
    outcome = browser.check_sort(1, 1)  # "score", in the first of its two header rows
    assert outcome.header == "score" and outcome.problems == []
    # Numeric, not text, order: -29.7 < -27.3 < -3.1 (as text "-3.1" would sort between them).
    assert outcome.after[0] == ["-29.7 [-33.4, -26.1]", "-27.3 [-30.5, -25.5]", "-3.1 [-4.0, -2.2]"]


def test_each_check_reports_its_defect_on_a_broken_page(browser: ReportBrowser, tmp_path: Path) -> None:
    check = check_page(browser, PAGES / "contract_broken.html", screenshot_dir=tmp_path)
    assert any("deliberate console error" in error for error in check.console_errors), check.console_errors
    assert check.undecoded_images == ["corrupt data URI", "fetched over the network"]
    assert check.non_data_images == ["http://127.0.0.1:9/figure.png"]
    assert check.requests == ["http://127.0.0.1:9/figure.png"]
    assert check.toc_problems == ["TOC link '#nowhere' points at no element of the page"]
    assert check.scroll_width > check.inner_width == VIEWPORT_WIDTH
    assert any("id=too-wide" in element for element in check.wide_elements), check.wide_elements
    assert check.screenshots[FULL_SCREENSHOT] == (check.scroll_width, check.scroll_height)
    # Its first table sorts "n" as text (10, 100, 80, 9): both clicks are caught.
    assert check.sort is not None and check.sort.header == "n"
    assert [p.split(":")[0] for p in check.sort.problems] == ["click 1", "click 2"], check.sort.problems
    assert "not in ascending order" in check.sort.problems[0]


def test_sort_check_fails_a_table_that_a_click_does_not_sort(browser: ReportBrowser) -> None:
    browser.open(PAGES / "contract_broken.html")
    outcome = browser.check_sort(1, 0)  # the table with no click handler
    assert outcome.after == [["3", "1", "2"], ["3", "1", "2"]] and outcome.aria_sort == [None, None]
    assert "neither click changed the order of column 'n'" in outcome.problems


def test_a_page_without_toc_or_sortable_tables_fails_those_checks(browser: ReportBrowser,
                                                                 tmp_path: Path) -> None:
    page = tmp_path / "bare.html"
    page.write_text("<!doctype html><html><head><meta charset='utf-8'><title>bare</title></head><body>"
                    "<table><thead><tr><th>n</th></tr></thead><tbody><tr><td>2</td></tr><tr><td>1</td></tr>"
                    "<tr><td>3</td></tr></tbody></table></body></html>")
    check = check_page(browser, page)
    assert check.toc_problems == ["the page has no <nav id='toc'>"]
    assert check.sort is None and "0 sortable tables on the page" in check.sort_problem


@pytest.fixture(scope="module", params=list(REPORT_RUNS))
def report_check(request: pytest.FixtureRequest, browser: ReportBrowser) -> tuple[str, PageCheck]:
    """One report opened in the browser, checked, and screenshotted; the config's name beside it."""
    checkout = request.getfixturevalue(REPORT_RUNS[request.param])
    folder = checkout / "results" / "report"
    check = check_page(browser, folder / "index.html", screenshot_dir=folder)
    copied = copy_for_viewing(folder, request.param)
    print(f"\n{request.param} report: load {check.load_ms:.0f} ms (DOMContentLoaded {check.dom_content_loaded_ms:.0f} "
          f"ms), {check.page_bytes / 1e6:.2f} MB, {check.images} images, document {check.scroll_width} x "
          f"{check.scroll_height} px; screenshots in {folder}" + (f" and {copied}" if copied else ""))
    return request.param, check


@pytest.mark.workflow
def test_report_logs_no_console_errors(report_check: tuple[str, PageCheck]) -> None:
    name, check = report_check
    assert check.console_errors == [], f"{name} report: {check.console_errors}"


@pytest.mark.workflow
def test_report_images_are_data_uris_and_decode(report_check: tuple[str, PageCheck]) -> None:
    name, check = report_check
    assert check.images > 0, f"{name} report has no <img>"
    assert check.non_data_images == [], f"{name} report: images not embedded as data: URIs"
    assert check.undecoded_images == [], f"{name} report: images with naturalWidth 0"


@pytest.mark.workflow
def test_report_shows_the_critical_difference_diagram_decoded(report_check: tuple[str, PageCheck]) -> None:
    name, check = report_check
    diagrams = [alt for alt in check.decoded_images if alt.startswith("Critical-difference diagram")]
    assert len(diagrams) == 1, f"{name} report: decoded images {check.decoded_images}"


@pytest.mark.workflow
def test_report_makes_no_network_requests(report_check: tuple[str, PageCheck]) -> None:
    name, check = report_check
    assert check.requests == [], f"{name} report requested {check.requests}"


@pytest.mark.workflow
def test_report_toc_links_resolve(report_check: tuple[str, PageCheck]) -> None:
    name, check = report_check
    assert check.toc_problems == [], f"{name} report: {check.toc_problems}"
    assert check.toc_links > 0


@pytest.mark.workflow
def test_report_fits_a_1280_px_viewport(report_check: tuple[str, PageCheck]) -> None:
    name, check = report_check
    assert check.inner_width == VIEWPORT_WIDTH
    assert check.scroll_width <= check.inner_width, (
        f"{name} report is {check.scroll_width} px wide at {check.inner_width} px; too wide: {check.wide_elements}")


@pytest.mark.workflow
def test_report_sort_click_reorders_a_table(report_check: tuple[str, PageCheck]) -> None:
    name, check = report_check
    assert check.sort is not None, f"{name} report: {check.sort_problem}"
    assert check.sort.problems == [], f"{name} report: {summary(check)['sort']}"


@pytest.mark.workflow
def test_report_screenshots_and_timing_are_saved(report_check: tuple[str, PageCheck]) -> None:
    name, check = report_check
    assert check.screenshots == {FOLD_SCREENSHOT: (VIEWPORT_WIDTH, VIEWPORT_HEIGHT),
                                 FULL_SCREENSHOT: (max(VIEWPORT_WIDTH, check.scroll_width), check.scroll_height)}
    assert check.scroll_height >= VIEWPORT_HEIGHT, f"{name} report is shorter than one screen"
    folder = Path(url2pathname(urlparse(check.url).path)).parent
    timing = json.loads((folder / TIMING_JSON).read_text())
    assert timing["load_ms"] == round(check.load_ms, 1) and timing["load_ms"] > 0
    assert (folder / FULL_SCREENSHOT).stat().st_size > 0 and (folder / FOLD_SCREENSHOT).stat().st_size > 0
