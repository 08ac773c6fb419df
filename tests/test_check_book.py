"""The browser check's link logic (the browser part runs in CI as `make check-book`)."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "check_book.py"
spec = importlib.util.spec_from_file_location("check_book", SCRIPT)
check_book = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_book)


def test_internal_links_to_missing_files_and_anchors_are_reported(tmp_path):
    (tmp_path / "a.html").write_text("<p id='top'>a</p>")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "index.html").write_text("")
    page = tmp_path / "a.html"
    anchors = {page: {"top"}, (tmp_path / "sub" / "index.html"): set()}
    hrefs = ["#top", "a.html#top", "sub/", "https://example.org/x", "mailto:x@y", "missing.html", "a.html#nowhere"]
    problems = check_book.internal_link_problems(page, tmp_path, hrefs, lambda target: anchors[target])
    assert len(problems) == 2
    assert "missing.html" in problems[0] and "does not exist" in problems[0]
    assert "nowhere" in problems[1]


def test_text_a_reader_should_not_see_is_reported():
    clean = "Top-1 91.49 ± 0.12 for resnet18 W2A4 (3 seeds). See results/ptq/mini-full."
    assert check_book.text_problems(clean) == []
    cases = {
        "/usr/lib/python3/site-packages/torch/x.py:12: UserWarning: TypedStorage is deprecated": "a warning",
        "W1128 05:21:53.516000 5300 torch/utils/cpp_extension.py:183] No CUDA runtime": "a warning",
        "saved to /tmp/pytest-1/records": "a machine path",
        "std NaN count 1": "NaN",
        "Traceback (most recent call last):": "a traceback",
        "<matplotlib.legend.Legend at 0x7f89004f1a10>": "an object's repr",
    }
    for text, what in cases.items():
        [problem] = check_book.text_problems(f"intro\n{text}\nmore")
        assert problem.startswith(what), (text, problem)
    assert check_book.text_problems("NaNs are dropped; a Nano model; /workflow/") == []  # words, not findings
    assert check_book.text_problems(clean, stderr_blocks=2, widget_blocks=688) == [
        "2 cell output(s) on stderr (warnings or logs)", "688 widget block(s), blank space in a static page"]


def test_layout_checks_find_wide_elements_shrunk_figures_and_sideways_scrolling(tmp_path):
    import shutil

    import pytest

    if not any(shutil.which(name) for name in check_book.CHROMIUM_CANDIDATES):
        pytest.skip("needs Chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    wide_png = tmp_path / "wide.png"
    from PIL import Image

    Image.new("RGB", (2400, 100), "white").save(wide_png)
    page_html = tmp_path / "page.html"
    page_html.write_text(
        "<html><body style='margin:0'><main><article style='width:700px'>"
        "<div style='overflow-x:auto'><table style='width:1500px'><tr><td>scrolls in its box</td></tr></table></div>"
        "<pre style='width:1100px'>too wide</pre>"
        "<div class='cell tag_full-width' style='width:950px'><table style='width:900px'><tr><td>fits its full-width"
        " cell</td></tr></table><table style='width:1000px'><tr><td>wider than it</td></tr></table></div>"
        "<img src='wide.png' style='max-width:100%'>"
        "<img src='wide.png' style='width:1400px; max-width:none' id='x'>"
        "</article></main></body></html>")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=check_book.chromium_path(), args=["--no-sandbox"])
        desktop = browser.new_page(viewport=check_book.DESKTOP)
        desktop.goto(page_html.as_uri(), wait_until="load")
        found = check_book.layout_problems(desktop, phone=False)
        phone = browser.new_page(viewport=check_book.PHONE)
        phone.goto(page_html.as_uri(), wait_until="load")
        sideways = check_book.layout_problems(phone, phone=True)
        browser.close()
    wide = [p for p in found if p.startswith("wider than the column")]
    # not the table in its scroller, nor the full-width cell or the table that fits in it
    assert [p.split(":")[1].split()[0] for p in wide] == ["pre", "td", "img"], found
    assert "> 951 px" in wide[1]  # the full-width cell is the room of what it holds
    assert len([p for p in found if p.startswith("figure too wide")]) == 1, found  # 2400 px shown at 700 px
    assert len(sideways) == 1 and "scrolls sideways" in sideways[0]


def test_images_without_alt_text_are_reported():
    images = [("../_images/f81001.png", "Mixup-class prompts minus each baseline"),  # a caption: fine
              ("../_images/df6fcc.png", "../_images/df6fcc.png"),  # the writer's fallback: its own path
              ("figures/pipeline.svg", "pipeline.svg"), ("badge.svg", ""), ("x.png", None)]
    problems = check_book.alt_text_problems(images)
    assert len(problems) == 4 and all(p.startswith("image without alt text") for p in problems)
    assert "f81001" not in " ".join(problems)
