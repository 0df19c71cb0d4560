"""The HTML report opened from disk in a real headless Chromium (through Selenium and chromedriver).

Checks only the HTML contract, not particular sections: the page loads without console errors, its
title is the report's first heading, every figure is an <img> that decoded, one per PNG written under
figures/, every table has data rows (and the same tables as report.md), nothing is fetched from or
linked to outside the page, and a full-page screenshot is a real, non-blank PNG.

Needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver) and selenium
(requirements.txt); skips, saying which is missing, without them. Selenium Manager is never used: the
driver's path is always given, so nothing is downloaded. Set REPORT_SCREENSHOT_DIR to keep a copy of
the screenshot for a person to look at.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import struct
from pathlib import Path

import pytest
from conftest_report_helpers import build_experiment

from sft_vs_rlvr.report import analysis as report

BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome")
DRIVER_NAMES = ("chromedriver",)
INSTALL_HINT = "apt-get install chromium chromium-driver"
# No network here (or in CI): without the background-networking flags Chromium keeps retrying closed connections.
CHROME_ARGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--no-first-run", "--disable-quic", "--window-size=1280,900")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# A Markdown table's header separator line: |---|---| (optionally with alignment colons).
MD_SEPARATOR = re.compile(r"^\|(?:\s*:?-{3,}:?\s*\|)+\s*$")
EXTERNAL = re.compile(r"^\s*(?:[a-z][a-z0-9+.-]*:|//)", re.IGNORECASE)  # any scheme, or scheme-relative


def find_browser_tools(path: str | None = None) -> tuple[str | None, str | None, str | None]:
    """(browser, driver, why_missing) looked up on `path` (default: $PATH); why_missing is None when both exist."""
    browser = next((found for name in BROWSER_NAMES if (found := shutil.which(name, path=path))), None)
    driver = next((found for name in DRIVER_NAMES if (found := shutil.which(name, path=path))), None)
    missing = [what for what, found in (("chromium (or chromium-browser, google-chrome)", browser),
                                        ("chromedriver", driver)) if found is None]
    why = f"{' and '.join(missing)} not found on PATH: {INSTALL_HINT}" if missing else None
    return browser, driver, why


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR", "not a PNG"
    return struct.unpack(">II", data[16:24])


def markdown_tables(md: str) -> list[int]:
    """The number of data rows of each Markdown table, in order."""
    lines = md.splitlines()
    counts = []
    for i, line in enumerate(lines):
        if MD_SEPARATOR.match(line):
            rows = 0
            for following in lines[i + 1:]:
                if not following.startswith("|"):
                    break
                rows += 1
            counts.append(rows)
    return counts


def test_lookup_names_what_is_missing(tmp_path):
    """The skip path: an empty search folder has neither tool; a folder with only a browser lacks the driver."""
    empty = tmp_path / "empty"
    empty.mkdir()
    browser, driver, why = find_browser_tools(str(empty))
    assert (browser, driver) == (None, None)
    assert "chromium" in why and "chromedriver" in why and INSTALL_HINT in why

    only_browser = tmp_path / "only-browser"
    only_browser.mkdir()
    fake = only_browser / "chromium"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    browser, driver, why = find_browser_tools(str(only_browser))
    assert (browser, driver) == (str(fake), None)
    assert why.startswith("chromedriver not found") and INSTALL_HINT in why

    assert find_browser_tools(f"{only_browser}{os.pathsep}{only_browser}")[0] == str(fake)


def test_markdown_table_counter():
    md = "# T\n\n| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |\n\ntext |---| not a table\n\n| x |\n|:---:|\n"
    assert markdown_tables(md) == [2, 0]


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """The report built from a synthetic experiment, opened in headless Chromium; yields what the tests read."""
    browser, driver_path, why = find_browser_tools()
    if why:
        pytest.skip(why)
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed: "
                                    "pip install -r requirements.txt -c requirements.lock")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    tmp = tmp_path_factory.mktemp("browser")
    built = build_experiment(tmp / "exp")
    out = tmp / "report"
    report.build_report(built["dir"], out)

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in CHROME_ARGS:
        options.add_argument(arg)
    options.add_argument(f"--user-data-dir={tmp / 'chrome-profile'}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    # An explicit driver path: Selenium Manager (which would try to download one) is never run.
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        driver.set_page_load_timeout(60)
        url = (out / "report.html").resolve().as_uri()
        for log in ("browser", "performance"):  # start from empty logs
            driver.get_log(log)
        driver.get(url)
        WebDriverWait(driver, 30).until(lambda d: d.execute_script(
            "return document.readyState === 'complete' && Array.from(document.images).every(i => i.complete)"))
        yield {
            "driver": driver, "url": url, "out": out, "tmp": tmp,
            # Read the logs once, right after loading: reading drains them.
            "console": driver.get_log("browser"),
            "performance": driver.get_log("performance"),
        }
    finally:
        driver.quit()


def test_no_console_errors(page):
    severe = [entry for entry in page["console"] if entry["level"] == "SEVERE"]
    assert severe == []


def test_title_is_the_first_heading(page):
    driver = page["driver"]
    title = driver.title
    assert title.strip()
    assert title == driver.execute_script("return document.querySelector('h1').textContent")
    first_md_heading = next(line for line in (page["out"] / "report.md").read_text().splitlines()
                            if line.startswith("# "))
    assert title == first_md_heading[2:]


def test_every_image_loaded_one_per_figure_file(page):
    images = page["driver"].execute_script(
        "return Array.from(document.images).map(i => ({complete: i.complete, width: i.naturalWidth,"
        " height: i.naturalHeight, data: i.currentSrc.startsWith('data:image/png;base64,')}))")
    pngs = sorted((page["out"] / "figures").glob("*.png"))
    assert pngs, "the report wrote no figures"
    assert len(images) == len(pngs)
    for image in images:
        assert image["complete"] and image["width"] > 0 and image["height"] > 0, image
        assert image["data"], "a figure is not embedded as a PNG data: URI"


def test_every_table_has_data_rows_same_as_markdown(page):
    rows_per_table = page["driver"].execute_script(
        "return Array.from(document.querySelectorAll('table'))"
        ".map(t => Array.from(t.rows).filter(r => r.querySelector('td')).length)")
    assert rows_per_table, "the report has no tables"
    assert all(rows >= 1 for rows in rows_per_table), rows_per_table
    # The two renderings agree: as many tables, with as many data rows each, in report.md.
    assert markdown_tables((page["out"] / "report.md").read_text()) == rows_per_table


def test_nothing_external(page):
    """No src/href/... names another resource, no CSS url() does, and the browser requested only the page."""
    driver, url = page["driver"], page["url"]
    refs = driver.execute_script("""
        const attrs = ['src', 'href', 'srcset', 'poster', 'data', 'action', 'background', 'xlink:href'];
        const found = [];
        for (const el of document.querySelectorAll('*'))
          for (const a of attrs) { const v = el.getAttribute(a); if (v !== null) found.push([el.tagName, a, v]); }
        return found;""")
    external = [(tag, attr, value[:100]) for tag, attr, value in refs
                if EXTERNAL.match(value) and not value.strip().lower().startswith("data:") and value.strip() != url]
    assert external == []
    html_text = (page["out"] / "report.html").read_text()
    assert not re.search(r"url\(\s*['\"]?(?!data:)", html_text, re.IGNORECASE), "CSS url() to a resource"
    assert not re.search(r"@import", html_text, re.IGNORECASE)

    # The performance log also holds Chromium's own start-up tab (chrome://new-tab-page), loaded in the
    # background: keep the requests of every other document, which are the report and anything it embeds.
    requests = [entry["params"] for entry in (json.loads(e["message"])["message"] for e in page["performance"])
                if entry["method"] == "Network.requestWillBeSent"]
    ours = {r["request"]["url"] for r in requests
            if not r.get("documentURL", "").startswith(("chrome://", "chrome-untrusted://"))}
    assert url in ours, "the performance log did not record the page's own request"
    assert {u for u in ours if not u.startswith("data:")} == {url}
    resources = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert [name for name in resources if not name.startswith("data:")] == []


def test_full_page_screenshot(page):
    from PIL import Image

    driver = page["driver"]
    css_width, css_height = driver.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": css_width, "height": css_height, "scale": 1}})
    png = base64.b64decode(shot["data"])
    path = page["tmp"] / "report-full-page.png"
    path.write_bytes(png)
    if os.environ.get("REPORT_SCREENSHOT_DIR"):
        target = Path(os.environ["REPORT_SCREENSHOT_DIR"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target / path.name)

    width, height = png_size(png)
    ratio = driver.execute_script("return window.devicePixelRatio")
    assert (width, height) == (round(css_width * ratio), round(css_height * ratio))
    viewport = driver.execute_script("return window.innerHeight")
    assert width >= 600 and height > viewport * ratio, "not the full page"  # the report is longer than one screen
    assert len(png) > 20_000
    with Image.open(io.BytesIO(png)) as image:
        image.verify()
    with Image.open(io.BytesIO(png)) as image:
        assert image.convert("RGB").getcolors(maxcolors=1) is None, "the screenshot is one colour"
