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
