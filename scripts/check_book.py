"""Open every page of the built book in headless Chromium and fail on what a reader would hit.

    python scripts/check_book.py [--html _build/html] [--screenshots _build/screenshots]

For each ``*.html`` page of the book it reports, and exits non-zero on:

- an image that did not load (``<img>`` whose ``naturalWidth`` is 0 once the page is loaded);
- an internal link (same site, not ``http(s)://`` elsewhere) to a file that does not exist, or to an
  ``#anchor`` the target page does not have;
- a console error or an uncaught page error.

Resources on other hosts (the Colab badge, fonts, scripts from CDNs) are not checked: the book is
checked offline, and a machine without network cannot tell a broken external link from no network.

A full-page screenshot of every page is saved, so a reviewer can look at the book without building it.
Chromium is the Debian package (``/usr/bin/chromium``); Playwright only drives it (no browser download).
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
REDIRECT = re.compile(r"""<meta\s+http-equiv=["']refresh["']\s+content=["'][^"']*?url=([^"']+)["']""", re.IGNORECASE)
# Pages Sphinx generates that are not chapters: nothing there is ours to check.
SKIPPED_PAGES = {"genindex.html", "search.html"}


def chromium_path() -> str:
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    sys.exit("check_book: no Chromium found (apt-get install chromium); looked for " + ", ".join(CHROMIUM_CANDIDATES))


def is_external(url: str) -> bool:
    """Whether ``url`` points to another host (not a file of the book)."""
    parsed = urlparse(url)
    return parsed.scheme in ("http", "https") or bool(parsed.netloc)


def internal_link_problems(page: Path, html_root: Path, hrefs: list[str], anchors_of) -> list[str]:
    """Broken internal links of ``page``: missing files or anchors."""
    problems = []
    for href in hrefs:
        parsed = urlparse(href)
        if parsed.scheme in ("http", "https", "mailto", "javascript", "data") or parsed.netloc:
            continue
        if parsed.scheme == "file":
            target = Path(unquote(parsed.path))
        elif parsed.path:
            target = (page.parent / unquote(parsed.path)).resolve()
        else:
            target = page
        if target.is_dir():
            target = target / "index.html"
        if not target.exists():
            problems.append(f"broken link {href!r}: {target} does not exist")
            continue
        if parsed.fragment and target.suffix == ".html" and parsed.fragment not in anchors_of(target):
            problems.append(f"broken anchor {href!r}: no id {parsed.fragment!r} in {target.name}")
    return problems


def main() -> int:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--html", default="_build/html")
    parser.add_argument("--screenshots", default="_build/screenshots")
    args = parser.parse_args()
    html_root = Path(args.html).resolve()
    pages = sorted(p for p in html_root.rglob("*.html")
                   if p.name not in SKIPPED_PAGES and "_static" not in p.parts and "_sources" not in p.parts)
    if not pages:
        sys.exit(f"check_book: no pages under {html_root}: build the book first (mixq reproduce)")
    shots = Path(args.screenshots)
    shots.mkdir(parents=True, exist_ok=True)
    anchors: dict[Path, set[str]] = {}
    failures: dict[str, list[str]] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1280, "height": 900})

        def anchors_of(target: Path) -> set[str]:
            if target not in anchors:
                probe = context.new_page()
                probe.goto(target.as_uri())
                anchors[target] = set(probe.eval_on_selector_all("[id]", "els => els.map(e => e.id)"))
                anchors[target] |= set(probe.eval_on_selector_all("a[name]", "els => els.map(e => e.name)"))
                probe.close()
            return anchors[target]

        for page_path in pages:
            problems: list[str] = []
            page = context.new_page()
            page.on("console", lambda msg, p=problems: p.append(f"console {msg.type}: {msg.text}")
                    if msg.type == "error" and not is_external(msg.location.get("url", "")) else None)
            page.on("pageerror", lambda exc, p=problems: p.append(f"page error: {exc}"))
            redirect = REDIRECT.search(page_path.read_text(errors="replace"))
            if redirect:  # index.html only forwards to the root chapter, which is checked as a page itself
                target = redirect.group(1).strip()
                problems += internal_link_problems(page_path, html_root, [target], anchors_of)
                print(f"{page_path.relative_to(html_root)}: redirects to {target}: "
                      f"{'ok' if not problems else 'broken'}")
                if problems:
                    failures[str(page_path.relative_to(html_root))] = problems
                page.close()
                continue
            page.goto(page_path.as_uri(), wait_until="load")
            shown = page_path
            broken = page.eval_on_selector_all(
                "img", "els => els.filter(e => !e.complete || e.naturalWidth === 0).map(e => e.getAttribute('src'))")
            problems += [f"image did not load: {src}" for src in broken if not is_external(src)]
            hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))")
            problems += internal_link_problems(shown, html_root, hrefs, anchors_of)
            name = page_path.relative_to(html_root).with_suffix(".png").as_posix().replace("/", "__")
            page.screenshot(path=str(shots / name), full_page=True)
            page.close()
            status = "ok" if not problems else f"{len(problems)} problem(s)"
            print(f"{page_path.relative_to(html_root)}: {status}")
            if problems:
                failures[str(page_path.relative_to(html_root))] = problems
        browser.close()
    for page_name, problems in failures.items():
        for problem in problems:
            print(f"  {page_name}: {problem}", file=sys.stderr)
    print(f"checked {len(pages)} pages; screenshots in {shots}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
