"""Opening a report in headless Chromium and checking what a reader would see.

The harness drives Debian's ``chromium`` through its ``chromedriver`` with Selenium, found on PATH so
that selenium-manager never downloads a driver. Each check returns what it found wrong (an empty list
when all is well) rather than asserting, so that the tests can say which check failed and why, and so
that deliberately broken pages can show that every check is able to fail.
"""
from __future__ import annotations

import base64
import json
import math
import os
import re
import shutil
import struct
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

# A laptop-sized viewport: the issue asks that the page fit 1280 px; 900 px is the fold.
VIEWPORT_WIDTH = 1280
VIEWPORT_HEIGHT = 900
# The names Debian (and others) give the browser and its driver.
CHROMIUM_NAMES = ("chromium", "chromium-browser")
CHROMEDRIVER_NAMES = ("chromedriver",)
# How long a page may take to load, and its load event to be recorded, before the harness gives up.
PAGE_LOAD_TIMEOUT_S = 120
LOAD_EVENT_WAIT_S = 10
# A sortable table needs this many body rows for a click to show an order.
MIN_SORT_ROWS = 3
# Request schemes that reach no network and no other file: the page's images must be data: URIs.
LOCAL_SCHEMES = ("data:", "about:", "blob:", "chrome:", "devtools:")
# Where a copy of the screenshots and the timing goes when set (for a person to look at).
SCREENSHOT_DIR_ENV = "ZOOPROBE_SCREENSHOT_DIR"
FULL_SCREENSHOT = "screenshot.png"
FOLD_SCREENSHOT = "screenshot-fold.png"
TIMING_JSON = "screenshot-timing.json"
# A cell's leading number: "0.812 [0.79, 0.83] (#1)" sorts as 0.812, "-3e-2 x" as -0.03.
LEADING_NUMBER = re.compile(r"^\s*([-+\u2212]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)")


@dataclass(frozen=True)
class BrowserTools:
    """The browser and driver executables the harness runs.

    Attributes:
        chromium: path of the Chromium executable.
        chromedriver: path of the matching chromedriver.
    """

    chromium: str
    chromedriver: str


def find_browser_tools() -> tuple[BrowserTools | None, str]:
    """Look for Selenium, Chromium and chromedriver.

    Returns:
        The tools and ``""`` when all three are there; else ``None`` and why not, with how to install them.
    """
    install = "install Debian's chromium and chromium-driver (.ci/run does, as root) and pip install '.[test]'"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return None, f"selenium is not installed; {install}"
    chromium = next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)
    if chromium is None:
        return None, f"no Chromium on PATH (looked for {', '.join(CHROMIUM_NAMES)}); {install}"
    driver = next((p for p in map(shutil.which, CHROMEDRIVER_NAMES) if p), None)
    if driver is None:
        return None, f"no chromedriver on PATH; {install}"
    return BrowserTools(chromium=chromium, chromedriver=driver), ""


def sort_key(text: str) -> tuple[int, float | str]:
    """How the report's contract orders a cell: by its leading number if it has one, else by its text.

    Args:
        text: the cell's text as shown.

    Returns:
        ``(0, number)`` or ``(1, casefolded text)``; the first item keeps the two kinds apart.
    """
    match = LEADING_NUMBER.match(text)
    if match:
        return 0, float(match.group(1).replace("\u2212", "-"))
    return 1, text.strip().casefold()


@dataclass(frozen=True)
class SortOutcome:
    """One column of one sortable table, clicked twice.

    Attributes:
        table: index of the table among the page's ``table.sortable``.
        column: the header's index in the table's header row (:meth:`ReportBrowser.sortable_tables`).
        header: the header's text.
        before: the column's cells before the first click, top to bottom.
        after: per click, the column's cells after it.
        aria_sort: per click, the header's ``aria-sort`` after it.
        problems: what did not match the contract; empty when the clicks sorted as they should.
    """

    table: int
    column: int
    header: str
    before: list[str]
    after: list[list[str]]
    aria_sort: list[str | None]
    problems: list[str]


@dataclass
class PageCheck:
    """What the harness saw on one page.

    Attributes:
        url: the page opened.
        load_ms: Navigation Timing's loadEventEnd - startTime, in milliseconds.
        dom_content_loaded_ms: domContentLoadedEventEnd - startTime, in milliseconds.
        page_bytes: size of the HTML file.
        scroll_width: ``document.documentElement.scrollWidth`` at the viewport width.
        scroll_height: the document's height.
        inner_width: ``window.innerWidth``.
        console_errors: SEVERE browser log entries.
        images: how many ``<img>`` the page has.
        undecoded_images: images whose ``naturalWidth`` is 0 (alt text or start of src).
        decoded_images: alt texts of the images that decoded (``naturalWidth > 0``).
        non_data_images: images whose ``src`` is not a data: URI.
        requests: URLs the page requested beyond itself and data: URIs.
        toc_links: how many links ``nav#toc`` has.
        toc_problems: no TOC, or TOC links that do not point at an element of the page.
        wide_elements: elements whose right edge is past the viewport (a hint at what overflows).
        sort: the sort check's outcome, if a candidate column was found.
        sort_problem: why no sort check could run, else "".
        screenshots: file names of the saved screenshots and their (width, height).
    """

    url: str
    load_ms: float = math.nan
    dom_content_loaded_ms: float = math.nan
    page_bytes: int = 0
    scroll_width: int = 0
    scroll_height: int = 0
    inner_width: int = 0
    console_errors: list[str] = field(default_factory=list)
    images: int = 0
    undecoded_images: list[str] = field(default_factory=list)
    decoded_images: list[str] = field(default_factory=list)
    non_data_images: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    toc_links: int = 0
    toc_problems: list[str] = field(default_factory=list)
    wide_elements: list[str] = field(default_factory=list)
    sort: SortOutcome | None = None
    sort_problem: str = ""
    screenshots: dict[str, tuple[int, int]] = field(default_factory=dict)


class ReportBrowser:
    """A headless Chromium at 1280 x 900 that opens pages and checks them.

    Use :func:`open_browser`, which quits the browser afterwards.
    """

    def __init__(self, tools: BrowserTools) -> None:
        """Start Chromium through chromedriver.

        Args:
            tools: the executables (:func:`find_browser_tools`).
        """
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = tools.chromium
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                         f"--window-size={VIEWPORT_WIDTH},{VIEWPORT_HEIGHT}", "--hide-scrollbars"):
            options.add_argument(argument)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        # An explicit driver path: selenium-manager would otherwise look for (and download) one.
        self.driver = webdriver.Chrome(service=Service(executable_path=tools.chromedriver), options=options)
        self.driver.set_page_load_timeout(PAGE_LOAD_TIMEOUT_S)
        # The window size includes the browser's frame; this makes the layout viewport exactly 1280 x 900.
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": VIEWPORT_WIDTH, "height": VIEWPORT_HEIGHT, "deviceScaleFactor": 1, "mobile": False})
        self.version = f"{self.driver.capabilities.get('browserName', 'chrome')} {self.driver.capabilities.get('browserVersion', '?')}"

    def quit(self) -> None:
        """End the browser and its driver."""
        self.driver.quit()

    def open(self, page: Path) -> PageCheck:
        """Load a local HTML file and wait for its load event.

        Args:
            page: the HTML file.

        Returns:
            A check record with the load timing filled in; the other checks fill in the rest.
        """
        url = page.resolve().as_uri()
        # Drop what an earlier page logged, so that each page's errors and requests are its own.
        self.driver.get_log("browser")
        self.driver.get_log("performance")
        self.driver.get(url)
        deadline = time.monotonic() + LOAD_EVENT_WAIT_S
        timing = None
        while time.monotonic() < deadline:
            timing = self.driver.execute_script(
                "const n = performance.getEntriesByType('navigation')[0];"
                "return n && n.loadEventEnd > 0 ? [n.loadEventEnd - n.startTime,"
                " n.domContentLoadedEventEnd - n.startTime] : null;")
            if timing:
                break
            time.sleep(0.05)
        check = PageCheck(url=url, page_bytes=page.stat().st_size)
        if timing:
            check.load_ms, check.dom_content_loaded_ms = float(timing[0]), float(timing[1])
        return check

    def run_checks(self, check: PageCheck) -> PageCheck:
        """Fill in every check but the sort (which changes the page) and the screenshots.

        Args:
            check: the record :meth:`open` returned for the page now loaded.

        Returns:
            The same record, filled in.
        """
        check.console_errors = self.console_errors()
        check.requests = self.outside_requests(check.url)
        images = self.driver.execute_script(
            "return Array.from(document.images, i => [i.complete && i.naturalWidth > 0,"
            " i.getAttribute('src') || '', i.alt || '']);")
        check.images = len(images)
        check.undecoded_images = [alt or src[:80] for decoded, src, alt in images if not decoded]
        check.decoded_images = [alt for decoded, _, alt in images if decoded]
        check.non_data_images = [src[:80] for _, src, _ in images if not src.startswith("data:")]
        check.toc_links, check.toc_problems = self.toc_links()
        check.scroll_width, check.scroll_height, check.inner_width = self.driver.execute_script(
            "const d = document.documentElement;"
            "return [d.scrollWidth, Math.max(d.scrollHeight, document.body.scrollHeight), window.innerWidth];")
        if check.scroll_width > check.inner_width:
            check.wide_elements = self.driver.execute_script(
                "const w = document.documentElement.clientWidth, out = [];"
                "const clipped = e => { for (let p = e.parentElement; p && p !== document.body; p = p.parentElement)"
                "  if (getComputedStyle(p).overflowX !== 'visible') return true; return false; };"
                "for (const e of document.body.querySelectorAll('*')) {"
                "  if (e.getBoundingClientRect().right <= w + 0.5 || clipped(e)) continue;"
                "  const p = e.parentElement;"
                "  if (p && p !== document.body && p.getBoundingClientRect().right > w + 0.5) continue;"
                "  out.push(`<${e.tagName.toLowerCase()}${e.id ? ' id=' + e.id : ''}"
                "${e.className ? ' class=' + e.className : ''}> right edge ${Math.round(e.getBoundingClientRect().right)} px`);"
                "  if (out.length >= 5) break; }"
                "return out;")
        return check

    def console_errors(self) -> list[str]:
        """SEVERE entries of the browser's console log since the last call."""
        return [entry["message"] for entry in self.driver.get_log("browser") if entry["level"] == "SEVERE"]

    def outside_requests(self, page_url: str) -> list[str]:
        """URLs requested since the last call other than the page itself and data:/about:/blob: URIs.

        Args:
            page_url: the page's own URL, the one request a self-contained page makes.

        Returns:
            The other URLs, in the order requested (data: URIs are cut short).
        """
        urls = []
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message.get("method") == "Network.requestWillBeSent":
                url = message["params"]["request"]["url"]
                if url != page_url and not url.startswith(LOCAL_SCHEMES):
                    urls.append(url)
        return urls

    def toc_links(self) -> tuple[int, list[str]]:
        """Check the table of contents: ``nav#toc`` with ``<a href="#id">`` links whose ids exist.

        Returns:
            How many links the TOC has, and what is wrong with it (an empty list when nothing is).
        """
        links = self.driver.execute_script(
            "const nav = document.querySelector('nav#toc');"
            "if (!nav) return null;"
            "return Array.from(nav.querySelectorAll('a'), a => {"
            "  const href = a.getAttribute('href') || '';"
            "  let id = null; try { id = decodeURIComponent(href.slice(1)); } catch (e) {}"
            "  return [href, href.startsWith('#') && id !== null && id !== '' && !!document.getElementById(id)];"
            "});")
        if links is None:
            return 0, ["the page has no <nav id='toc'>"]
        problems = [f"TOC link {href!r} points at no element of the page" for href, found in links if not found]
        if not links:
            problems.append("<nav id='toc'> has no links")
        return len(links), problems

    def sortable_tables(self) -> list[dict[str, Any]]:
        """Each ``table.sortable``: its header row, that row's texts and its body's cell texts, row by row.

        The header row is the one with the most named ``<th>`` (the first of those): pandas puts a row
        of the index's name, with blank cells, under the column names.
        """
        return self.driver.execute_script(
            "return Array.from(document.querySelectorAll('table.sortable'), t => {"
            "  const named = r => Array.from(r.cells).filter(c => c.tagName === 'TH' && c.innerText.trim()).length;"
            "  let head = null, headRow = 0;"
            "  if (t.tHead) Array.from(t.tHead.rows).forEach((r, i) => {"
            "    if (!head || named(r) > named(head)) { head = r; headRow = i; } });"
            "  const body = t.tBodies[0];"
            "  return {headRow: headRow,"
            "          headers: head ? Array.from(head.cells, c => c.tagName === 'TH' ? c.innerText.trim() : null) : [],"
            "          rows: body ? Array.from(body.rows, r => Array.from(r.cells, c => c.innerText.trim())) : []};"
            "});")

    def sort_candidate(self) -> tuple[int, int] | None:
        """A table and column to click: >= 3 body rows, a header ``<th>``, cells of one kind, >= 2 distinct keys.

        Numeric columns come first (the contract's numeric-aware order is the part worth testing), the
        first of them whose numeric order differs from the order of its text, if any.

        Returns:
            ``(table, column)`` indices, or ``None`` when no table has such a column.
        """
        numeric, numeric_not_textual, textual = [], [], []
        for t, table in enumerate(self.sortable_tables()):
            rows = table["rows"]
            if len(rows) < MIN_SORT_ROWS:
                continue
            for c, header in enumerate(table["headers"]):
                if header is None or any(len(row) <= c for row in rows):
                    continue
                keys = [sort_key(row[c]) for row in rows]
                if len({k[0] for k in keys}) != 1 or len(set(keys)) < 2:
                    continue
                if keys[0][0] == 1:
                    textual.append((t, c))
                    continue
                numeric.append((t, c))
                cells = [row[c] for row in rows]
                if sorted(cells, key=sort_key) != sorted(cells, key=str.casefold):
                    numeric_not_textual.append((t, c))
        for candidates in (numeric_not_textual, numeric, textual):
            if candidates:
                return candidates[0]
        return None

    def check_sort(self, table: int, column: int) -> SortOutcome:
        """Click a header twice; each click must sort the body rows by that column, the two in opposite directions.

        The order expected is computed here from the cell texts (:func:`sort_key`), not by the page's script.
        Ties may come in any order; the rows themselves must be the same rows, each kept whole.

        Args:
            table: index among the page's ``table.sortable``.
            column: index of the cell in the table's header row (:meth:`sortable_tables`).

        Returns:
            What the clicks did and what did not match.
        """
        from selenium.webdriver.common.by import By

        before = self.sortable_tables()[table]
        header_cell = self.driver.find_elements(By.CSS_SELECTOR, "table.sortable")[table].find_element(
            By.XPATH, f"./thead/tr[{before['headRow'] + 1}]/*[{column + 1}]")
        problems, after, aria = [], [], []
        rows_before = sorted(map(tuple, before["rows"]))
        for click in range(2):
            self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", header_cell)
            header_cell.click()
            now = self.sortable_tables()[table]
            direction = header_cell.get_attribute("aria-sort")
            cells = [row[column] for row in now["rows"]]
            after.append(cells)
            aria.append(direction)
            keys = [sort_key(cell) for cell in cells]
            if sorted(map(tuple, now["rows"])) != rows_before:
                problems.append(f"click {click + 1}: the body rows are not the same rows as before")
            if direction not in ("ascending", "descending"):
                problems.append(f"click {click + 1}: aria-sort is {direction!r}, not 'ascending' or 'descending'")
                continue
            expected = sorted(keys, reverse=direction == "descending")
            if keys != expected:
                problems.append(f"click {click + 1}: column {before['headers'][column]!r} is not in {direction} "
                                f"order of its leading numbers (else text): {cells}")
        if len(aria) == 2 and aria[0] == aria[1]:
            problems.append(f"a second click left aria-sort at {aria[1]!r}; it should toggle")
        column_before = [row[column] for row in before["rows"]]
        if all(cells == column_before for cells in after):
            problems.append(f"neither click changed the order of column {before['headers'][column]!r}")
        return SortOutcome(table=table, column=column, header=before["headers"][column], before=column_before,
                           after=after, aria_sort=aria, problems=problems)

    def screenshots(self, folder: Path, check: PageCheck) -> None:
        """Save the viewport (the first 1280 x 900) and the whole page as PNGs in ``folder``.

        Args:
            folder: where :data:`FOLD_SCREENSHOT` and :data:`FULL_SCREENSHOT` go.
            check: the page's record; its ``screenshots`` get each file's name and size.
        """
        folder.mkdir(parents=True, exist_ok=True)
        self.driver.execute_script("window.scrollTo(0, 0);")
        fold = self.driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
        width, height = self.driver.execute_script(
            "const d = document.documentElement;"
            "return [Math.max(d.scrollWidth, window.innerWidth),"
            " Math.max(d.scrollHeight, document.body.scrollHeight)];")
        full = self.driver.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}})
        for name, shot in ((FOLD_SCREENSHOT, fold), (FULL_SCREENSHOT, full)):
            data = base64.b64decode(shot["data"])
            write_atomically(folder / name, data)
            check.screenshots[name] = png_size(data)


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary name beside ``path``, then rename it into place."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def png_size(data: bytes) -> tuple[int, int]:
    """A PNG's (width, height), read from its IHDR chunk.

    Raises:
        ValueError: if ``data`` is not a PNG.
    """
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ValueError("not a PNG (no PNG signature and IHDR chunk at its start)")
    return struct.unpack(">II", data[16:24])


@contextmanager
def open_browser(tools: BrowserTools) -> Iterator[ReportBrowser]:
    """A :class:`ReportBrowser` for the ``with`` block; the browser is ended after it."""
    browser = ReportBrowser(tools)
    try:
        yield browser
    finally:
        browser.quit()


def check_page(browser: ReportBrowser, page: Path, *, screenshot_dir: Path | None = None,
               sort_table: tuple[int, int] | None = None) -> PageCheck:
    """Open ``page``, run every check, save the screenshots, then try a sort click.

    Args:
        browser: the browser (:func:`open_browser`).
        page: the HTML file.
        screenshot_dir: where to save the screenshots and the timing JSON; none saved when ``None``.
        sort_table: ``(table, column)`` to click; by default :meth:`ReportBrowser.sort_candidate` picks one.

    Returns:
        Everything the checks saw.
    """
    check = browser.run_checks(browser.open(page))
    if screenshot_dir is not None:
        browser.screenshots(screenshot_dir, check)
    target = sort_table or browser.sort_candidate()
    if target is None:
        check.sort_problem = (f"no <table class='sortable'> with a <thead> of <th> and >= {MIN_SORT_ROWS} "
                              f"<tbody> rows has a column of >= 2 distinct keys of one kind "
                              f"({len(browser.sortable_tables())} sortable tables on the page)")
    else:
        check.sort = browser.check_sort(*target)
    # A sort click must not log errors either.
    check.console_errors += browser.console_errors()
    if screenshot_dir is not None:
        write_timing(screenshot_dir, check, browser.version)
    return check


def write_timing(folder: Path, check: PageCheck, version: str) -> Path:
    """Write the load timing (and page size, viewport, browser) beside the screenshots as JSON.

    Args:
        folder: where the screenshots are.
        check: the page's record.
        version: the browser's version line.

    Returns:
        The JSON file's path.
    """
    record = {"url": check.url, "load_ms": round(check.load_ms, 1),
              "dom_content_loaded_ms": round(check.dom_content_loaded_ms, 1),
              "measured_as": "Navigation Timing: loadEventEnd - startTime (domContentLoadedEventEnd - startTime)",
              "page_bytes": check.page_bytes, "viewport": [VIEWPORT_WIDTH, VIEWPORT_HEIGHT],
              "document_size": [check.scroll_width, check.scroll_height], "images": check.images,
              "screenshots": {name: list(size) for name, size in check.screenshots.items()}, "browser": version}
    path = folder / TIMING_JSON
    write_atomically(path, (json.dumps(record, indent=2) + "\n").encode())
    return path


def copy_for_viewing(folder: Path, label: str) -> Path | None:
    """Copy the screenshots and timing to ``$ZOOPROBE_SCREENSHOT_DIR/<label>/``, if that is set.

    Args:
        folder: where :func:`check_page` saved them.
        label: a subfolder name, so that several reports' screenshots do not overwrite one another.

    Returns:
        The folder copied to, or ``None`` when the variable is unset.
    """
    location = os.environ.get(SCREENSHOT_DIR_ENV)
    if not location:
        return None
    dest = Path(location) / label
    dest.mkdir(parents=True, exist_ok=True)
    for name in (FULL_SCREENSHOT, FOLD_SCREENSHOT, TIMING_JSON):
        if (folder / name).exists():
            shutil.copy2(folder / name, dest / name)
    return dest


def summary(check: PageCheck) -> dict[str, Any]:
    """The record as plain data, for a failing assertion's message."""
    record = asdict(check)
    if check.sort is not None:
        record["sort"] = asdict(check.sort)
    return record
