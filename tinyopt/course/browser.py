"""Open every page of a built course site in headless Chromium, as a student's browser sees it.

`check_site(folder)` loads each `*.html` page through Selenium driving the system's Chromium
(Debian's `chromium` and `chromium-driver` packages) and reports, per page: images that did not
load (naturalWidth 0), links to pages or files that do not exist in the site, and errors in the
browser console. Pages of lessons that make plots must show at least one image.

    python -m tinyopt.course.browser SITE_FOLDER      # exit code 1 when a page has a problem
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

_PROBE = """
const images = Array.from(document.images).map(i => ({src: i.src.slice(0, 80), ok: i.complete && i.naturalWidth > 0}));
const links = Array.from(document.querySelectorAll('a[href]')).map(a => a.getAttribute('href'));
return JSON.stringify({images: images, links: links});
"""


def find_browser():
    """(chromium binary, chromedriver binary), or raise FileNotFoundError naming the packages."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        raise FileNotFoundError("headless Chromium not found: apt-get install chromium chromium-driver "
                                "(and pip install selenium)")
    return browser, driver


def _local_target(page: Path, href: str):
    """The file a relative link points at, or None for external links and in-page anchors."""
    parsed = urlparse(href)
    if parsed.scheme in ("http", "https", "mailto", "data", "javascript") or href.startswith("#"):
        return None
    if not parsed.path:
        return None
    return (page.parent / unquote(parsed.path)).resolve()


def check_site(folder, must_have_images=()) -> dict:
    """{page name: [problems]} for every page of the site in `folder` (empty lists: all good)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    folder = Path(folder).resolve()
    pages = sorted(folder.glob("*.html"))
    if not pages:
        raise FileNotFoundError(f"no .html pages in {folder}: build the site first (tinyopt course build)")
    browser, driver_path = find_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--allow-file-access-from-files"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    problems = {}
    try:
        for page in pages:
            found = []
            driver.get(page.as_uri())
            report = json.loads(driver.execute_script(_PROBE))
            broken = [i["src"] for i in report["images"] if not i["ok"]]
            if broken:
                found.append(f"{len(broken)} image(s) did not load: {broken[:3]}")
            if page.stem in must_have_images and not report["images"]:
                found.append("no plot on the page")
            for href in report["links"]:
                target = _local_target(page, href)
                if target is not None and not target.exists():
                    found.append(f"broken link {href}")
            for entry in driver.get_log("browser"):
                if entry.get("level") == "SEVERE":
                    found.append(f"console error: {entry.get('message', '')[:160]}")
            problems[page.name] = found
    finally:
        driver.quit()
    return problems


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 1:
        print("usage: python -m tinyopt.course.browser SITE_FOLDER", file=sys.stderr)
        return 2
    folder = Path(argv[0])
    try:
        meta = json.loads((folder / "course.json").read_text())
    except (OSError, ValueError):
        meta = {}
    with_plots = set() if meta.get("student") else set(meta.get("plots", meta.get("lessons", [])))
    try:
        problems = check_site(folder, must_have_images=with_plots)
    except FileNotFoundError as e:
        print(f"browser check: error: {e}", file=sys.stderr)
        return 2
    bad = 0
    for page, found in problems.items():
        print(f"{page:40s} {'ok' if not found else 'PROBLEMS'}")
        for line in found:
            print(f"    {line}")
        bad += bool(found)
    print(f"{len(problems) - bad}/{len(problems)} pages without problems")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
