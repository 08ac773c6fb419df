"""Open every page of the built book in headless Chromium and fail on what a reader would hit.

    python scripts/check_book.py [--html _build/html] [--screenshots _build/screenshots]

For each ``*.html`` page of the book it reports, and exits non-zero on:

- an image that did not load (``<img>`` whose ``naturalWidth`` is 0 once the page is loaded), or one in the
  chapter without alternative text (none, or its own file path: what a screen reader would read out);
- an internal link (same site, not ``http(s)://`` elsewhere) to a file that does not exist, or to an
  ``#anchor`` the target page does not have;
- a console error or an uncaught page error;
- in the chapter's text, what a reader should never see: a warning (``...Warning:``, a cell's stderr
  output), a machine path (``/tmp/``, ``/work/``, ``/home/``), ``NaN``, a traceback, an object's repr
  (``<matplotlib.legend.Legend at 0x...>``), or a widget block that
  renders as blank space (progress bars saved without their widget state);
- at 1280 px, an element wider than the content column (a wide table must scroll inside its own
  container, or sit in a cell tagged ``full-width``, which spans the column and its margin), or a
  figure shown at under half its pixel width (too wide for the page to read);
- at 390 px (a phone), a page that scrolls sideways.

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
DESKTOP, PHONE = {"width": 1280, "height": 900}, {"width": 390, "height": 844}
# Text a reader should never meet in a chapter, with what to call it.
UNWANTED_TEXT = (
    (re.compile(r"\b[A-Z]\w*Warning\b:|^W\d{4} \d\d:\d\d", re.MULTILINE), "a warning"),
    (re.compile(r"(?<![\w.])/(?:tmp|work|home)/"), "a machine path"),
    (re.compile(r"\bNaN\b"), "NaN"),
    (re.compile(r"Traceback \(most recent call last\)"), "a traceback"),
    (re.compile(r"<[\w.]+(?: object)? at 0x[0-9a-f]+>"), "an object's repr"),  # a cell that forgot its ";"
)
ARTICLE = "main article, article.bd-article, div[role=main]"
# The article's elements wider than their room, leaving out those inside a container that scrolls them. The room
# is the column, except in a cell tagged `full-width`, which the theme widens over the margin beside the column:
# what such a cell holds is measured against the cell, and the cell must end inside the window.
WIDE_ELEMENTS_JS = """
article => {
  const column = article.getBoundingClientRect().width + 1;
  const room = e => {
    const cell = e.closest('div.cell.tag_full-width');
    if (!cell) return column;
    const left = e.getBoundingClientRect().left;
    return e === cell ? document.documentElement.clientWidth - left + 1 : cell.getBoundingClientRect().width + 1;
  };
  const scrolls = e => { for (let p = e.parentElement; p && p !== article; p = p.parentElement) {
    const x = getComputedStyle(p).overflowX; if (x === 'auto' || x === 'scroll') return true; } return false; };
  return [...article.querySelectorAll('*')]
    .filter(e => e.getBoundingClientRect().width > room(e) && !scrolls(e))
    .filter(e => ![...e.children].some(c => c.getBoundingClientRect().width > room(c)))  // innermost only
    .map(e => `${e.tagName.toLowerCase()}${e.className ? '.' + String(e.className).split(' ')[0] : ''}`
              + ` ${Math.round(e.getBoundingClientRect().width)} px > ${Math.round(room(e))} px`);
}"""
SHRUNK_FIGURES_JS = """
article => [...article.querySelectorAll('img')]
  .filter(e => e.naturalWidth > 0 && e.getBoundingClientRect().width > 0
               && e.naturalWidth > 2 * e.getBoundingClientRect().width)
  .map(e => `${(e.getAttribute('src') || '').slice(0, 60)}: ${e.naturalWidth} px shown at `
            + `${Math.round(e.getBoundingClientRect().width)} px`)"""
WIDGETS = "script[type='application/vnd.jupyter.widget-view+json'], .jupyter-widgets, .output_widget, .widget-area"


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


def text_problems(text: str, stderr_blocks: int = 0, widget_blocks: int = 0) -> list[str]:
    """What a reader should not see in a chapter: ``text`` is its visible text; ``stderr_blocks`` and
    ``widget_blocks`` count its cells' stderr outputs and its widget blocks."""
    problems = []
    for pattern, what in UNWANTED_TEXT:
        found = pattern.search(text)
        if found:
            line = text[text.rfind("\n", 0, found.start()) + 1:].split("\n", 1)[0].strip()
            problems.append(f"{what} in the text: {line[:100]!r}")
    if stderr_blocks:
        problems.append(f"{stderr_blocks} cell output(s) on stderr (warnings or logs)")
    if widget_blocks:
        problems.append(f"{widget_blocks} widget block(s), blank space in a static page")
    return problems


def alt_text_problems(images: list[tuple[str, str | None]]) -> list[str]:
    """``images``: (src, alt) of the chapter's ``<img>`` elements. An image needs alternative text that says
    something: none, an empty one, or its own file path (what the HTML writer puts there when a figure has
    none, and what a screen reader then reads out) is a problem."""
    problems = []
    for src, alt in images:
        alt = (alt or "").strip()
        if not alt or alt == src or alt.rsplit("/", 1)[-1] == (src or "").rsplit("/", 1)[-1]:
            problems.append(f"image without alt text (a screen reader reads its file name): {(src or '')[:60]}")
    return problems


def layout_problems(page, phone: bool) -> list[str]:
    """At phone width, sideways scrolling of the page; at desktop width, elements wider than the content
    column and figures shown at under half their width."""
    if phone:
        overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        return [f"the page scrolls sideways by {overflow} px at {PHONE['width']} px"] if overflow > 1 else []
    article = page.query_selector(ARTICLE)
    if article is None:
        return []
    return ([f"wider than the column: {e}" for e in article.evaluate(WIDE_ELEMENTS_JS)]
            + [f"figure too wide to read: {e}" for e in article.evaluate(SHRUNK_FIGURES_JS)])


def content_problems(page) -> list[str]:
    article = page.query_selector(ARTICLE)
    if article is None:
        return []
    text = article.inner_text()
    stderr_blocks = len(article.query_selector_all(".output.stderr, .cell_output .stderr"))
    widget_blocks = len(article.query_selector_all(WIDGETS))
    return text_problems(text, stderr_blocks, widget_blocks)


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
        context = browser.new_context(viewport=DESKTOP)
        phone = browser.new_context(viewport=PHONE)

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
            problems += alt_text_problems(page.eval_on_selector_all(
                f"{ARTICLE.replace(',', ' img,')} img",
                "els => els.map(e => [e.getAttribute('src'), e.getAttribute('alt')])"))
            hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))")
            problems += internal_link_problems(shown, html_root, hrefs, anchors_of)
            problems += content_problems(page) + layout_problems(page, phone=False)
            name = page_path.relative_to(html_root).with_suffix(".png").as_posix().replace("/", "__")
            page.screenshot(path=str(shots / name), full_page=True)
            page.close()
            small = phone.new_page()
            small.goto(page_path.as_uri(), wait_until="load")
            problems += layout_problems(small, phone=True)
            small.screenshot(path=str(shots / name.replace(".png", f"@{PHONE['width']}.png")), full_page=True)
            small.close()
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
