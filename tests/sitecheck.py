"""Check the built book in a real browser (headless Chromium driven by selenium).

A test tool (tests/test_sitecheck.py, tests/test_book.py), kept out of the library: it
needs selenium and a browser, which only the test extra installs.

:func:`check_site` serves ``_build/html`` on ``127.0.0.1`` (:func:`serve_directory`),
opens the index page and every chapter in headless Chromium and, on each page,

* checks that every ``<img>`` loaded (the browser decoded it: ``naturalWidth > 0``);
* checks that every internal ``<a href>`` resolves: the target file exists under
  ``html_dir`` and, when the link has a ``#fragment`` and the target is an HTML page,
  an element with that ``id`` (or an ``<a name=...>``) exists on the target page
  (found by parsing the target file with :mod:`html.parser`);
* checks that every same-origin resource the page fetched (CSS, scripts, fonts,
  images) was served without an HTTP error (Resource Timing ``responseStatus``; the
  browser's own request for ``/favicon.ico`` is ignored);
* saves a screenshot (PNG) when ``screenshot_dir`` is given.

Which pages are checked
-----------------------
:func:`discover_pages` crawls the built HTML statically, without a browser: it starts
at ``index.html`` and follows every internal link (and the ``<meta http-equiv=Refresh>``
redirect that Jupyter Book writes into ``index.html``) to ``.html`` files under
``html_dir``. The pages checked are therefore exactly those a reader can reach from
the index: the root page and every chapter of the table of contents (they are all
listed in the sidebar of every page), but not stale pages that an earlier build left
behind. Sphinx's own folders (any path component starting with ``_`` or ``.``, e.g.
``_static``, ``_sources``, ``_images``) and its utility pages (``genindex.html``,
``search.html``, ``py-modindex.html``) are not visited; links to them are still checked.

The browser is the system's (Debian's ``chromium`` and ``chromium-driver``), found by
:func:`find_chromium` and :func:`find_chromedriver`; selenium is given the driver's
path explicitly so that Selenium Manager never tries to download one. By default
every host name other than the local server's fails to resolve in the browser
(``block_external=True``), so a check gives the same answer with or without internet:
images on other hosts are then not checked (they are counted in
``SiteReport.external_images``), and links to other hosts are never checked.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import html.parser
import http.server
import logging
import os
import shutil
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

logger = logging.getLogger(__name__)

#: Environment variables that name the browser / driver binaries explicitly.
CHROMIUM_ENV = "RGENIMA_CHROMIUM"
CHROMEDRIVER_ENV = "RGENIMA_CHROMEDRIVER"

CHROMIUM_NAMES: tuple[str, ...] = ("chromium", "chromium-browser")
CHROMEDRIVER_NAMES: tuple[str, ...] = ("chromedriver",)
CHROMEDRIVER_PATHS: tuple[str, ...] = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")

#: Sphinx's generated utility pages: links to them are checked, they are not visited.
UTILITY_PAGES: frozenset[str] = frozenset({"genindex.html", "search.html", "py-modindex.html"})

WINDOW_SIZE: tuple[int, int] = (1280, 2000)
#: Screenshots grow with the page up to this height (pixels), then are cut.
MAX_SCREENSHOT_HEIGHT = 12000

_INSTALL_HINT = "install Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"


class BrowserNotFoundError(FileNotFoundError):
    """Chromium or chromedriver is not installed (or an override points nowhere)."""


class SiteCheckError(AssertionError):
    """The built site has broken images, links or resources (see the message)."""


# --------------------------------------------------------------------------- server


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Static file handler that logs to the module logger at DEBUG, not to stderr."""

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (stdlib signature)
        logger.debug("http: " + format, *args)


@contextlib.contextmanager
def serve_directory(html_dir: str | os.PathLike) -> Iterator[str]:
    """Serve ``html_dir`` over HTTP on 127.0.0.1 (a free port) in a background thread.

    Yields the base URL (``http://127.0.0.1:PORT/``); the server is shut down and its
    socket closed when the ``with`` block ends.
    """
    root = Path(html_dir).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such directory to serve")
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="sitecheck-http", daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host}:{port}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# ------------------------------------------------------------------------- binaries


def _find_binary(env: str, names: Iterable[str], paths: Iterable[str], what: str) -> str:
    override = os.environ.get(env)
    if override:
        found = shutil.which(override)
        if found is None:
            raise BrowserNotFoundError(f"{env}={override!r} is not an executable file")
        return found
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    for path in paths:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    tried = ", ".join([*names, *paths])
    raise BrowserNotFoundError(f"{what} not found (tried {tried}, and ${env}): {_INSTALL_HINT}")


def find_chromium() -> str:
    """Path of the system Chromium: ``$RGENIMA_CHROMIUM``, else ``chromium`` or
    ``chromium-browser`` on PATH. Raises :class:`BrowserNotFoundError` when absent."""
    return _find_binary(CHROMIUM_ENV, CHROMIUM_NAMES, ("/usr/lib/chromium/chromium",), "Chromium")


def find_chromedriver() -> str:
    """Path of the system chromedriver: ``$RGENIMA_CHROMEDRIVER``, else ``chromedriver``
    on PATH or ``/usr/bin/chromedriver``. Raises :class:`BrowserNotFoundError` when absent."""
    return _find_binary(CHROMEDRIVER_ENV, CHROMEDRIVER_NAMES, CHROMEDRIVER_PATHS, "chromedriver")


# --------------------------------------------------------------------- HTML parsing


class _PageParser(html.parser.HTMLParser):
    """Collects hrefs, element ids (and ``<a name>``) and a meta-refresh target."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []
        self.ids: set[str] = set()
        self.refresh: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v or "") for k, v in attrs}
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "a":
            if "name" in a:
                self.ids.add(a["name"])
            if a.get("href"):
                self.hrefs.append(a["href"])
        elif tag == "meta" and a.get("http-equiv", "").lower() == "refresh":
            content = a.get("content", "")
            _, sep, rest = content.partition(";")
            rest = rest.strip()
            if sep and rest.lower().startswith("url="):
                self.refresh = rest[4:].strip().strip("'\"")

    handle_startendtag = handle_starttag


@functools.lru_cache(maxsize=512)
def _parse_cached(path: str, mtime_ns: int, size: int) -> _PageParser:
    parser = _PageParser()
    parser.feed(Path(path).read_text(encoding="utf-8", errors="replace"))
    parser.close()
    return parser


def _parse(path: Path) -> _PageParser:
    st = path.stat()
    return _parse_cached(str(path), st.st_mtime_ns, st.st_size)


def _is_visitable(rel: str) -> bool:
    parts = rel.split("/")
    if any(p.startswith(("_", ".")) for p in parts[:-1]):
        return False
    return rel.endswith(".html") and parts[-1] not in UTILITY_PAGES


def _resolve_file(root: Path, url_path: str) -> Path | None:
    """File under ``root`` that a site path (``/a/b.html``) names, or None."""
    rel = unquote(url_path).lstrip("/")
    target = (root / rel).resolve() if rel else root
    if target != root and root not in target.parents:
        return None
    if target.is_dir():
        target = target / "index.html"
    return target if target.is_file() else None


def discover_pages(html_dir: str | os.PathLike, start: str = "index.html") -> list[str]:
    """Pages of the built book, as paths relative to ``html_dir`` (``/``-separated).

    A static breadth-first crawl from ``start``: every internal link and meta-refresh
    target that names an ``.html`` file under ``html_dir`` is followed, except Sphinx's
    folders (a path component starting with ``_`` or ``.``) and utility pages
    (:data:`UTILITY_PAGES`). ``start`` comes first; the others in crawl order.
    """
    root = Path(html_dir).resolve()
    if not (root / start).is_file():
        raise FileNotFoundError(f"{root / start}: no such page (was the book built?)")
    seen = {start}
    order: list[str] = []
    queue = deque([start])
    while queue:
        rel = queue.popleft()
        order.append(rel)
        parser = _parse(root / rel)
        page_url = "http://site.invalid/" + rel
        targets = list(parser.hrefs) + ([parser.refresh] if parser.refresh else [])
        for href in targets:
            url = urldefrag(urljoin(page_url, href)).url
            parts = urlsplit(url)
            if parts.scheme != "http" or parts.netloc != "site.invalid":
                continue
            target = _resolve_file(root, parts.path)
            if target is None:
                continue
            target_rel = target.relative_to(root).as_posix()
            if target_rel not in seen and _is_visitable(target_rel):
                seen.add(target_rel)
                queue.append(target_rel)
    return order


# ------------------------------------------------------------------------- report


@dataclass(frozen=True)
class Problem:
    """One thing that is broken: ``kind`` is image, link, fragment, resource, page,
    figure (the same picture twice on a page) or table (wider than the content column)."""

    page: str
    kind: str
    url: str
    detail: str

    def __str__(self) -> str:
        return f"{self.page}: {self.kind} {self.url}: {self.detail}"


@dataclass
class PageResult:
    page: str  # path relative to html_dir
    final_url: str  # after redirects
    title: str
    images: int
    links: int
    resources: int
    screenshot: Path | None = None


@dataclass
class SiteReport:
    html_dir: Path
    base_url: str
    pages: list[PageResult] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    external_images: int = 0

    @property
    def pages_checked(self) -> int:
        return len(self.pages)

    @property
    def images_checked(self) -> int:
        return sum(p.images for p in self.pages)

    @property
    def links_checked(self) -> int:
        return sum(p.links for p in self.pages)

    @property
    def resources_checked(self) -> int:
        return sum(p.resources for p in self.pages)

    @property
    def screenshots(self) -> list[Path]:
        return [p.screenshot for p in self.pages if p.screenshot is not None]

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        head = (
            f"{self.html_dir}: {self.pages_checked} pages, {self.images_checked} images, "
            f"{self.links_checked} internal links, {self.resources_checked} resources checked; "
            f"{len(self.problems)} problem(s)"
        )
        return "\n".join([head, *(f"  {p}" for p in self.problems)])

    def raise_for_problems(self) -> None:
        """Raise :class:`SiteCheckError` listing every problem, if there is any."""
        if self.problems:
            raise SiteCheckError(self.summary())


# ------------------------------------------------------------------------ browser

_COLLECT_JS = """
const origin = window.location.origin;
const images = Array.from(document.images).map(i => ({
    src: i.currentSrc || i.src, attr: i.getAttribute('src') || '',
    complete: i.complete, width: i.naturalWidth}));
const links = Array.from(document.querySelectorAll('a[href]')).map(a => ({
    href: a.href, attr: a.getAttribute('href')}));
const resources = performance.getEntriesByType('resource')
    .filter(r => r.name.startsWith(origin + '/') && r.name !== origin + '/favicon.ico')
    .map(r => ({url: r.name, status: r.responseStatus || 0}));
const content = document.querySelector('.bd-article') || document.querySelector('main') || document.body;
const right = content.getBoundingClientRect().right;
const wideTables = Array.from(content.querySelectorAll('table'))
    .filter(t => t.getBoundingClientRect().right > right + 1)
    .map(t => `${Math.round(t.getBoundingClientRect().width)} px wide, column ends at ${Math.round(right)} px`);
return {url: window.location.href, title: document.title, images, links, resources, wideTables,
        height: Math.max(document.body ? document.body.scrollHeight : 0,
                         document.documentElement.scrollHeight)};
"""

_IMAGES_SETTLED_JS = """
for (const i of document.images) { if (i.loading === 'lazy') i.loading = 'eager'; }
return document.readyState === 'complete' &&
       Array.from(document.images).every(i => i.complete);
"""


def _make_driver(chromium: str, chromedriver: str, block_external: bool):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={WINDOW_SIZE[0]},{WINDOW_SIZE[1]}",
        "--hide-scrollbars",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-extensions",
        "--disable-sync",
        "--mute-audio",
    ):
        options.add_argument(arg)
    if block_external:
        options.add_argument("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")
    service = Service(executable_path=chromedriver)
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(30)
    driver.set_window_size(*WINDOW_SIZE)
    return driver


def _wait(predicate, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return True
        except Exception:  # page navigating away mid-script: try again
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def _screenshot_name(rel: str) -> str:
    stem = rel[: -len(".html")] if rel.endswith(".html") else rel
    return stem.replace("/", "__") + ".png"


class _Checker:
    def __init__(self, root: Path, base_url: str, report: SiteReport) -> None:
        self.root = root
        self.base_url = base_url
        self.report = report
        self.base_path = urlsplit(base_url).path
        self._link_cache: dict[str, str | None] = {}

    def _site_rel(self, url: str) -> str | None:
        """``url`` as a site path if it is on the local server, else None."""
        if not url.startswith(self.base_url):
            return None
        return "/" + urlsplit(url).path[len(self.base_path) :].lstrip("/")

    def link_error(self, url: str) -> str | None:
        """Why an internal URL does not resolve, or None when it does."""
        if url in self._link_cache:
            return self._link_cache[url]
        base, fragment = urldefrag(url)
        target = _resolve_file(self.root, self._site_rel(base) or "/")
        error = None
        if target is None:
            error = "target does not exist under the html folder"
        elif fragment and target.suffix == ".html":
            anchor = unquote(fragment)
            if anchor not in _parse(target).ids:
                error = f"no element with id {anchor!r} on {target.relative_to(self.root).as_posix()}"
        self._link_cache[url] = error
        return error

    def check_page(self, driver, rel: str, screenshot_dir: Path | None) -> None:
        report, problems = self.report, self.report.problems
        if _resolve_file(self.root, "/" + rel) is None:
            problems.append(Problem(rel, "page", rel, "no such file under the html folder"))
            return
        url = self.base_url + rel
        parser = _parse(self.root / rel)
        driver.get(url)
        if parser.refresh:  # Jupyter Book's index.html: wait for the redirect to land
            if not _wait(lambda: urldefrag(driver.current_url).url != url, 15):
                problems.append(Problem(rel, "page", parser.refresh, "meta refresh did not redirect"))
        if not _wait(lambda: driver.execute_script(_IMAGES_SETTLED_JS), 30):
            logger.warning("%s: images still loading after 30 s", rel)
        data = driver.execute_script(_COLLECT_JS)

        images = 0
        broken_images: set[str] = set()
        for img in data["images"]:
            if not img["src"]:
                continue
            if img["src"].startswith("data:"):
                pass
            elif self._site_rel(img["src"]) is None:
                report.external_images += 1
                continue
            images += 1
            if not img["complete"] or img["width"] == 0:
                why = "did not finish loading" if not img["complete"] else "failed to load"
                if self._site_rel(img["src"]) and self.link_error(urldefrag(img["src"]).url):
                    why += " (file does not exist)"
                problems.append(Problem(rel, "image", img["attr"] or img["src"], why))
                broken_images.add(img["src"])

        # The same picture twice on one page (a figure shown by its cell and again where
        # it is glued) is found by content: the two copies are different files.
        seen: dict[str, str] = {}
        for img in data["images"]:
            site = self._site_rel(img["src"]) if img["src"] and not img["src"].startswith("data:") else None
            path = _resolve_file(self.root, site) if site else None
            if path is None or img["src"] in broken_images:
                continue
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if digest in seen and seen[digest] != img["src"]:
                problems.append(Problem(rel, "figure", img["attr"], f"same picture as {seen[digest]} on this page"))
            seen.setdefault(digest, img["src"])
        for why in data.get("wideTables", []):
            problems.append(Problem(rel, "table", "table", f"wider than the content column ({why})"))

        links = 0
        checked: set[str] = set()
        for link in data["links"]:
            href = link["href"]
            if self._site_rel(href) is None or href in checked:
                continue  # other host or scheme (mailto:, javascript:), or already seen
            checked.add(href)
            links += 1
            error = self.link_error(href)
            if error:
                kind = "fragment" if error.startswith("no element") else "link"
                problems.append(Problem(rel, kind, link["attr"], error))

        resources = 0
        for res in data["resources"]:
            resources += 1
            if res["status"] >= 400 and res["url"] not in broken_images:
                problems.append(Problem(rel, "resource", res["url"], f"HTTP {res['status']}"))

        shot = None
        if screenshot_dir is not None:
            height = min(max(int(data["height"] or 0), WINDOW_SIZE[1]), MAX_SCREENSHOT_HEIGHT)
            if height != WINDOW_SIZE[1]:
                driver.set_window_size(WINDOW_SIZE[0], height)
            shot = screenshot_dir / _screenshot_name(rel)
            if not driver.save_screenshot(str(shot)):
                problems.append(Problem(rel, "page", str(shot), "screenshot failed"))
                shot = None
            if height != WINDOW_SIZE[1]:
                driver.set_window_size(*WINDOW_SIZE)

        report.pages.append(PageResult(rel, data["url"], data["title"], images, links, resources, shot))


def check_site(
    html_dir: str | os.PathLike,
    screenshot_dir: str | os.PathLike | None = None,
    pages: Iterable[str] | None = None,
    *,
    block_external: bool = True,
) -> SiteReport:
    """Open the built book in headless Chromium and check images, links and resources.

    Parameters
    ----------
    html_dir : path
        The built HTML (``_build/html``).
    screenshot_dir : path, optional
        Where to save one PNG per page (``book__intro.png`` for ``book/intro.html``);
        created if missing.
    pages : iterable of str, optional
        Pages to check, relative to ``html_dir``; default :func:`discover_pages`.
    block_external : bool
        Make every host but 127.0.0.1 unresolvable in the browser (default), so the
        result does not depend on internet access.

    Returns a :class:`SiteReport`; call ``report.raise_for_problems()`` to fail on
    any problem. Raises :class:`BrowserNotFoundError` if Chromium or chromedriver is
    missing.
    """
    root = Path(html_dir).resolve()
    page_list = list(pages) if pages is not None else discover_pages(root)
    chromium, chromedriver = find_chromium(), find_chromedriver()
    shots = None
    if screenshot_dir is not None:
        shots = Path(screenshot_dir)
        shots.mkdir(parents=True, exist_ok=True)

    with serve_directory(root) as base_url:
        report = SiteReport(html_dir=root, base_url=base_url)
        checker = _Checker(root, base_url, report)
        driver = _make_driver(chromium, chromedriver, block_external)
        try:
            for rel in page_list:
                checker.check_page(driver, rel.lstrip("/"), shots)
        finally:
            driver.quit()
    logger.info("%s", report.summary())
    return report
