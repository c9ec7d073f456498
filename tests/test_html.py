"""The rendered book as a reader sees it: built from the committed book/ into a temporary folder,
served on localhost (nothing else reachable) and opened page by page in headless Chromium.

Each page must have no broken image or internal link, MathJax loaded from the book itself with no
raw LaTeX left in the visible text, no HTML tag swallowed from a table, no truncated table cell,
no integer count printed with decimals, the parameters and papermill's injected cells hidden, and
(for chapters that judge claims) its verdict table. Full-page screenshots are kept as artifacts
(under pytest's tmp folder, and under $APTBOOK_ARTIFACTS when set). A planted page shows the
checker catches each defect.

Needs Debian's `chromium` and `chromium-driver` (installed by .ci/setup) and pip `selenium`.
"""
from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import threading
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from aptutils.notebooks import chapter_sources, render_book

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (.ci/setup)")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
if not (CHROMIUM and CHROMEDRIVER):  # a missing capability; .ci/setup installs both or fails
    pytest.skip("no chromium / chromedriver on this machine (.ci/setup installs them)",
                allow_module_level=True)

RAW_LATEX = re.compile(r"\\\(|\\\)|\$\$|\\mathrm|\\langle|\\frac|\$[^$\n]*[\\_^][^$\n]*\$")
FLOAT_COUNT = re.compile(r"^\d{1,3}(,\d{3})+\.0+$|^\d{4,}\.0+$")

# Runs in the page: what a reader would see that is wrong with it.
PAGE_SCRIPT = r"""
const done = arguments[arguments.length - 1];
const found = {unknown_tags: [], broken_images: [], text: [], empty_headers: [], cells: [],
               links: [], fragments: [], tables: [], code: [], mathjax: null};
const visible = el => el.checkVisibility ? el.checkVisibility({visibilityProperty: true}) : !!el.offsetParent;
const skipped = new Set(["SCRIPT", "STYLE", "NOSCRIPT", "PRE", "CODE", "TEXTAREA"]);
function finish() {
  if (!document.body) { done(found); return; }  // e.g. index.html, a bare redirect
  for (const el of document.body.querySelectorAll("*")) {
    if (el instanceof HTMLUnknownElement && !el.tagName.includes("-")) found.unknown_tags.push(el.tagName.toLowerCase());
  }
  for (const img of document.images) {
    if (!img.complete || img.naturalWidth === 0) found.broken_images.push(img.getAttribute("src"));
  }
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    let el = node.parentElement, keep = true;
    for (let up = el; up; up = up.parentElement) {
      if (skipped.has(up.tagName) || up.tagName.startsWith("MJX-")) { keep = false; break; }
    }
    if (keep && node.textContent.trim() && visible(el)) found.text.push(node.textContent);
  }
  for (const pre of document.querySelectorAll("pre")) if (visible(pre)) found.code.push(pre.innerText.slice(0, 200));
  for (const table of document.querySelectorAll("table")) {
    if (!visible(table)) continue;
    found.tables.push(Array.from(table.querySelectorAll("thead th, tr:first-child th")).map(th => th.innerText.trim()));
    for (const row of table.querySelectorAll("tr")) {
      const heads = Array.from(row.children).slice(1).filter(c => c.tagName === "TH" && !/blank/.test(c.className));
      const named = heads.filter(c => c.innerText.trim());
      if (named.length) for (const c of heads) if (!c.innerText.trim()) found.empty_headers.push(row.innerText.trim());
    }
    for (const cell of table.querySelectorAll("td, th")) found.cells.push(cell.innerText.trim());
  }
  for (const a of document.querySelectorAll("a[href]")) {
    const url = new URL(a.href, location.href);
    if (url.origin !== location.origin) continue;
    if (url.pathname === location.pathname && url.hash) {
      const id = decodeURIComponent(url.hash.slice(1));
      if (id && !document.getElementById(id)) found.fragments.push(url.hash);
    } else {
      found.links.push(url.origin + url.pathname);
    }
  }
  done(found);
}
if (window.MathJax && window.MathJax.startup && window.MathJax.startup.promise) {
  found.mathjax = "loaded";
  window.MathJax.startup.promise.then(finish, () => { found.mathjax = "failed"; finish(); });
} else {
  found.mathjax = document.querySelector("script[src*='mathjax']") ? "not loaded" : "absent";
  finish();
}
"""


@contextmanager
def serve(root: Path):
    """An HTTP server on localhost for `root`, in a thread; yields its base URL."""
    handler = functools.partial(QuietHandler, directory=str(root))
    server = QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # the browser closing a connection early is no defect of the book


@contextmanager
def chromium():
    """Headless Debian Chromium driven by chromedriver."""
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1280,1000", "--force-device-scale-factor=1"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_script_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@functools.lru_cache(maxsize=None)
def link_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def page_problems(driver, url: str, needs_verdicts: bool = False) -> list[str]:
    """Open `url` and list what a reader would see wrong with it (empty list: none)."""
    driver.get(url)
    found = driver.execute_async_script(PAGE_SCRIPT)
    problems = [f"HTML tag swallowed: <{tag}>" for tag in found["unknown_tags"]]
    problems += [f"broken image: {src}" for src in found["broken_images"]]
    problems += [f"broken internal link: {link}" for link in sorted(set(found["links"]))
                 if link_status(link) != 200]
    problems += [f"link to a missing anchor: {hash_}" for hash_ in found["fragments"]]
    problems += [f"empty column header in table row: {row[:80]!r}" for row in found["empty_headers"]]
    text = "\n".join(found["text"])
    problems += [f"raw LaTeX: {m.group(0)!r} in {text[max(0, m.start() - 40):m.end() + 40]!r}"
                 for m in RAW_LATEX.finditer(text)]
    if re.search(r"\\\(|\$", text) and found["mathjax"] != "loaded":
        problems.append(f"MathJax {found['mathjax']}")
    problems += [f"truncated table cell: {c[:80]!r}" for c in found["cells"] if c.endswith("...")]
    problems += [f"integer count printed with decimals: {c!r}" for c in found["cells"] if FLOAT_COUNT.match(c)]
    if any(code.lstrip().startswith("# Parameters") for code in found["code"]):
        problems.append("parameters cell shown")
    if needs_verdicts and not any("verdict" in headers and "claim text" in headers
                                  for headers in found["tables"]):
        problems.append("no verdict table")
    return problems


def screenshot(driver, path: Path) -> None:
    """A full-page PNG of the open page."""
    import base64

    height = driver.execute_script("return document.documentElement.scrollHeight")
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": 1280, "height": min(height, 30000), "scale": 1}})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))


def artifact_folders(tmp_path: Path) -> list[Path]:
    folders = [tmp_path / "screenshots"]
    if os.environ.get("APTBOOK_ARTIFACTS"):
        folders.append(Path(os.environ["APTBOOK_ARTIFACTS"]) / "screenshots")
    return folders


@pytest.fixture(scope="module")
def built_html(tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("html")
    result = render_book(output)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return output / "_build" / "html"


def test_every_page_reads_right_in_chromium(built_html, tmp_path):
    pages = sorted(p.relative_to(built_html).as_posix() for p in built_html.rglob("*.html")
                   if not p.name.startswith(("genindex", "search")) and "_static" not in p.parts
                   and 'http-equiv="Refresh"' not in p.read_text())  # a bare redirect is no page
    assert {f"book/{s.stem}.html" for s in chapter_sources()} <= set(pages)
    judged = {s.stem for s in chapter_sources() if "verdicts.report(" in s.read_text()}
    assert judged, "no chapter judges a claim"
    report = {}
    with serve(built_html) as base, chromium() as driver:
        for page in pages:
            problems = page_problems(driver, f"{base}/{page}", Path(page).stem in judged)
            for folder in artifact_folders(tmp_path):
                screenshot(driver, folder / page.replace("/", "__").replace(".html", ".png"))
            if problems:
                report[page] = problems
    assert not report, "\n".join(f"{page}: {p}" for page, problems in report.items() for p in problems)
    assert (tmp_path / "screenshots" / "book__02_apt.png").stat().st_size > 10_000


def test_no_cdn_left_in_the_built_html(built_html):
    """Every script and stylesheet is served from the book itself, MathJax included."""
    external = set()
    for page in built_html.rglob("*.html"):
        external |= set(re.findall(r"""(?:src|href)=["'](https?://[^"']+\.(?:js|css|woff2?)\b[^"']*)""",
                                   page.read_text()))
    assert not external, sorted(external)
    assert (built_html / "_static" / "mathjax" / "tex-mml-chtml.js").is_file()
    assert list((built_html / "_static" / "mathjax" / "output" / "chtml" / "fonts").rglob("*.woff"))


PLANTED = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>planted</title>{head}</head><body>
<p>{text}</p>
<table><thead><tr><th></th><th>{header}</th><th>count</th></tr></thead>
<tbody><tr><th>0</th><td>{cell}</td><td>{count}</td></tr></tbody></table>
<img src="{image}"><a href="{link}">next</a>
</body></html>"""
CLEAN = dict(head='<script defer src="mathjax/tex-mml-chtml.js"></script>', text=r"The rule \(W_\mathrm{test}\).",
             header="⟨APT⟩", cell="a full cell", count="1,138", image="ok.png", link="clean.html")


def planted_site(folder: Path, **defects) -> Path:
    from aptutils.plugins.sphinx import mathjax_source

    shutil.copytree(mathjax_source(), folder / "mathjax")
    from PIL import Image

    Image.new("RGB", (4, 4), "red").save(folder / "ok.png")
    (folder / "clean.html").write_text(PLANTED.format(**CLEAN))
    (folder / "planted.html").write_text(PLANTED.format(**{**CLEAN, **defects}))
    return folder


@pytest.mark.parametrize("defect, expected", [
    ({}, None),
    ({"head": ""}, "raw LaTeX"),
    ({"text": r"the set W_\mathrm{test}, outside any delimiter, stays raw"}, "raw LaTeX"),
    ({"header": "<APT>"}, "HTML tag swallowed: <apt>"),
    ({"header": ""}, "empty column header"),
    ({"cell": "a cell pandas cut at fifty charac..."}, "truncated table cell"),
    ({"count": "1,138.000"}, "integer count printed with decimals"),
    ({"image": "missing.png"}, "broken image"),
    ({"link": "nowhere.html"}, "broken internal link"),
    ({"link": "#nowhere"}, "missing anchor"),
    ({"text": "</p><pre># Parameters\nprofile = 'smoke'</pre><p>"}, "parameters cell shown"),
])
def test_the_checker_catches_a_planted_defect(tmp_path, defect, expected):
    site = planted_site(tmp_path, **defect)
    with serve(site) as base, chromium() as driver:
        problems = page_problems(driver, f"{base}/planted.html")
        if expected is None:
            assert problems == []
        else:
            assert any(expected in p for p in problems), problems
        assert "no verdict table" in page_problems(driver, f"{base}/planted.html", needs_verdicts=True)


EXPLORER_SCRIPT = r"""
const done = arguments[arguments.length - 1];
const typed = arguments[0];
const started = Date.now();
function rows() {
  const table = document.querySelector("table.dataTable[id^='itables_']");
  if (!table) return null;
  return Array.from(table.querySelectorAll("tbody tr")).map(r => r.innerText.trim());
}
function info() {
  const el = document.querySelector(".dt-info");
  return el ? el.innerText : "";
}
function wait(test, then) {
  if (test()) { then(); return; }
  if (Date.now() - started > 30000) { done({error: "timed out", info: info()}); return; }
  setTimeout(() => wait(test, then), 100);
}
wait(() => rows() !== null && rows().length > 0, () => {
  const before = {rows: rows(), info: info()};
  const token = typed || before.rows[0].split("\t")[0];
  const box = document.querySelector(".dt-container input[type='search']");
  if (!box) { done({error: "no search box", before}); return; }
  box.value = token;
  box.dispatchEvent(new Event("input", {bubbles: true}));
  box.dispatchEvent(new KeyboardEvent("keyup", {bubbles: true}));
  wait(() => info() !== before.info, () => done({before, token, after: {rows: rows(), info: info()}}));
});
"""


def test_the_token_explorer_filters_its_rows_by_the_typed_token(built_html, tmp_path):
    with serve(built_html) as base, chromium() as driver:
        driver.get(f"{base}/book/04_clustering.html")
        found = driver.execute_async_script(EXPLORER_SCRIPT, None)
        for folder in artifact_folders(tmp_path):
            screenshot(driver, folder / "explorer_search.png")
    assert "error" not in found, found
    before, after = found["before"], found["after"]
    assert "filtered from" in after["info"] and "filtered from" not in before["info"], found
    # DataTables searches every column: each row left names the token somewhere (its own cell,
    # a strong match, a cluster or a wrong prediction), and the token's own row comes first
    token = found["token"].lower()
    assert 0 < len(after["rows"]) and all(token in row.lower() for row in after["rows"]), found
    assert after["rows"][0].split("\t")[0] == found["token"], found


SCOREBOARD_SCRIPT = r"""
const board = Array.from(document.querySelectorAll("table")).find(
  t => Array.from(t.querySelectorAll("th")).some(th => th.innerText.trim() === "this run, at a glance"));
if (!board) return null;
return Array.from(board.querySelectorAll("tbody tr")).map(r => ({
  claim: r.children[0].innerText.trim(),
  verdict: r.children[2].innerText.trim(),
  link: r.querySelector("a") ? r.querySelector("a").href : null}));
"""


def test_the_scoreboard_has_a_row_per_claim_and_its_links_reach_their_sections(built_html):
    from aptutils.core.verdicts import CLAIMS, VERDICTS

    with serve(built_html) as base, chromium() as driver:
        for page in ("book/verdicts.html", "book/intro.html"):
            driver.get(f"{base}/{page}")
            rows = driver.execute_script(SCOREBOARD_SCRIPT)
            assert rows, f"{page}: no scoreboard"
            assert [r["claim"] for r in rows if " at " not in r["claim"]] == list(CLAIMS)
            assert all(r["verdict"] in VERDICTS for r in rows)
            for row in rows:
                target, _, anchor = row["link"].partition("#")
                driver.get(target)
                assert driver.execute_script("return !!document.getElementById(arguments[0])",
                                             anchor), f"{page}: {row['claim']} links to {row['link']}"


def test_set_up_code_and_knob_table_are_collapsed_on_every_chapter(built_html):
    hidden_script = r"""
const wanted = arguments[0];
const visible = el => el.checkVisibility ? el.checkVisibility({visibilityProperty: true}) : !!el.offsetParent;
return Array.from(document.querySelectorAll("pre, caption")).filter(
  el => el.textContent.includes(wanted)).map(el => visible(el));
"""
    with serve(built_html) as base, chromium() as driver:
        for source in chapter_sources():
            driver.get(f"{base}/book/{source.stem}.html")
            for text in ("from aptutils.chapter import", "The settings of this run"):
                seen = driver.execute_script(hidden_script, text)
                assert seen and not any(seen), f"{source.stem}: {text!r} shown ({seen})"
