"""The built book checked in a real browser (headless Chromium via selenium).

A tiny Jupyter Book (a root page and two chapters, one with a matplotlib PNG and
cross-chapter links) is built once per module; :func:`sitecheck.check_site`
must find nothing wrong with it, and must find a broken image, link and anchor
planted in a copy of it. The browser tests skip when Debian's chromium and
chromium-driver are missing, unless RGENIMA_REQUIRE_BROWSER=1 (set by ``.ci/run``),
in which case they fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import sitecheck

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

CONFIG = """\
title: Site check test book
author: rgenima tests
only_build_toc_files: true
execute:
  execute_notebooks: "off"
html:
  use_issues_button: false
  use_repository_button: false
  use_download_button: false
launch_buttons:
  thebe: false
"""

TOC = """\
format: jb-book
root: intro
chapters:
  - file: chapters/one
  - file: chapters/two
"""

INTRO = """\
# Test book

The root page. Read [the first chapter](chapters/one.md) first.
"""

ONE = """\
# Chapter one

A figure drawn with matplotlib:

![A line plot](../figures/line.png)

The results are in {ref}`sec-results` of [chapter two](two.md).
"""

TWO = """\
# Chapter two

Back to [chapter one](one.md).

(sec-results)=
## Results

Nothing to see.
"""


def require_browser() -> None:
    """Skip when Chromium, chromedriver or selenium is missing, unless CI requires it."""
    try:
        import selenium  # noqa: F401

        sitecheck.find_chromium()
        sitecheck.find_chromedriver()
    except (ImportError, sitecheck.BrowserNotFoundError) as err:
        if os.environ.get("RGENIMA_REQUIRE_BROWSER") == "1":
            pytest.fail(f"a browser is required (RGENIMA_REQUIRE_BROWSER=1): {err}")
        pytest.skip(f"no headless browser: {err}")


def _write_book(src: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (src / "chapters").mkdir(parents=True)
    (src / "figures").mkdir()
    (src / "_config.yml").write_text(CONFIG)
    (src / "_toc.yml").write_text(TOC)
    (src / "intro.md").write_text(INTRO)
    (src / "chapters" / "one.md").write_text(ONE)
    (src / "chapters" / "two.md").write_text(TWO)
    fig, ax = plt.subplots(figsize=(4, 3), dpi=80)
    ax.plot([0, 1, 2, 3], [1, 3, 2, 4])
    fig.savefig(src / "figures" / "line.png")
    plt.close(fig)


@pytest.fixture(scope="module")
def built_book(tmp_path_factory) -> Path:
    """``_build/html`` of the tiny book (built once for the module)."""
    src = tmp_path_factory.mktemp("sitecheck") / "book"
    _write_book(src)
    out = src.parent / "out"
    jb = Path(sys.executable).parent / "jupyter-book"
    proc = subprocess.run(
        [str(jb), "build", str(src), "--path-output", str(out), "--builder", "html", "--warningiserror"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    html = out / "_build" / "html"
    assert (html / "chapters" / "one.html").is_file()
    return html


def test_serve_directory_serves_files_and_shuts_down(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello")
    with sitecheck.serve_directory(tmp_path) as base:
        assert base.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(base + "a.txt", timeout=10) as resp:
            assert resp.status == 200 and resp.read() == b"hello"
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(base + "missing.txt", timeout=10)
        assert err.value.code == 404
    with pytest.raises(OSError):
        urllib.request.urlopen(base + "a.txt", timeout=2)


def test_binary_override_pointing_nowhere_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setenv(sitecheck.CHROMIUM_ENV, "/nonexistent/chromium")
    monkeypatch.setenv(sitecheck.CHROMEDRIVER_ENV, "/nonexistent/chromedriver")
    with pytest.raises(sitecheck.BrowserNotFoundError, match="RGENIMA_CHROMIUM"):
        sitecheck.find_chromium()
    with pytest.raises(sitecheck.BrowserNotFoundError, match="RGENIMA_CHROMEDRIVER"):
        sitecheck.find_chromedriver()


def test_discover_pages_follows_the_book_not_sphinx_files(built_book: Path, tmp_path: Path) -> None:
    html = tmp_path / "html"
    shutil.copytree(built_book, html)
    # A stale page that nothing links to (left by an earlier build) is not a chapter.
    (html / "stale.html").write_text("<html><body>old</body></html>")
    pages = sitecheck.discover_pages(html)
    assert pages[0] == "index.html"
    assert set(pages) == {"index.html", "intro.html", "chapters/one.html", "chapters/two.html"}


def test_built_book_passes_in_headless_chromium(built_book: Path, tmp_path: Path) -> None:
    require_browser()
    shots = tmp_path / "screenshots"
    report = sitecheck.check_site(built_book, screenshot_dir=shots)
    report.raise_for_problems()
    assert report.ok
    assert [p.page for p in report.pages] == sitecheck.discover_pages(built_book)
    assert report.pages_checked == 4
    # Jupyter Book's index.html redirects to the root page.
    index = report.pages[0]
    assert index.final_url.endswith("/intro.html")
    one = next(p for p in report.pages if p.page == "chapters/one.html")
    assert one.images >= 1 and "Chapter one" in one.title
    assert report.images_checked > 0
    assert report.links_checked > 0 and report.resources_checked > 0
    assert len(report.screenshots) == 4
    for shot in report.screenshots:
        data = shot.read_bytes()
        assert data[:8] == PNG_MAGIC, shot
        assert len(data) > 10_000, shot
        width = int.from_bytes(data[16:20], "big")
        assert width == sitecheck.WINDOW_SIZE[0], shot


def test_broken_image_link_and_anchor_are_reported(built_book: Path, tmp_path: Path) -> None:
    require_browser()
    html = tmp_path / "html"
    shutil.copytree(built_book, html)
    page = html / "chapters" / "one.html"
    text = page.read_text(encoding="utf-8")
    planted = (
        '<img src="../_images/no-such-figure.png" alt="broken">'
        '<a href="no-such-chapter.html">gone</a>'
        '<a href="two.html#no-such-section">bad anchor</a>'
        '<a href="two.html#sec-results">good anchor</a>'
    )
    page.write_text(text.replace("<h1>", planted + "<h1>", 1), encoding="utf-8")

    report = sitecheck.check_site(html)
    found = {(p.page, p.kind, p.url) for p in report.problems}
    assert found == {
        ("chapters/one.html", "image", "../_images/no-such-figure.png"),
        ("chapters/one.html", "link", "no-such-chapter.html"),
        ("chapters/one.html", "fragment", "two.html#no-such-section"),
    }, report.summary()
    assert not report.ok
    with pytest.raises(sitecheck.SiteCheckError, match="no-such-chapter.html"):
        report.raise_for_problems()


def test_a_figure_shown_twice_and_a_table_too_wide_are_reported(built_book: Path, tmp_path: Path) -> None:
    require_browser()
    html = tmp_path / "html"
    shutil.copytree(built_book, html)
    page = html / "chapters" / "one.html"
    original = next(p for p in (html / "_images").iterdir() if p.suffix == ".png")
    shutil.copy(original, html / "_images" / "copy-of-the-figure.png")  # same picture, another file
    row = "".join(f"<td>column_{k}_with_a_long_unbreakable_value</td>" for k in range(40))
    planted = f'<img src="../_images/copy-of-the-figure.png" alt="again"><table id="wide"><tr>{row}</tr></table>'
    text = page.read_text(encoding="utf-8")
    body = text.index(">", text.index("<article")) + 1  # inside the chapter's content column
    page.write_text(text[:body] + planted + text[body:], encoding="utf-8")

    report = sitecheck.check_site(html)
    kinds = {(p.page, p.kind) for p in report.problems}
    assert kinds == {("chapters/one.html", "figure"), ("chapters/one.html", "table")}, report.summary()
    # The tiny book itself (one figure, no table) has neither problem.
    assert sitecheck.check_site(built_book).ok
