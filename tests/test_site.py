"""The documentation site, built once per session with ``python -m pyx_gru docs``
(README command A's job), then checked offline and in a real headless
Chromium: every formula typeset by the bundled MathJax (no raw TeX left on any
page), every figure loaded, nothing fetched from another host.

The browser checks run where ``/usr/bin/chromium`` exists (``.ci/run``
installs Debian's ``chromium`` and ``chromium-driver``) and are skipped, with
the reason, elsewhere.
"""
import html.parser
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

import pyx_gru
import pyx_gru.experiments  # noqa: F401  (modules that pyx_gru does not import)
import pyx_gru.tasks  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
TUTORIALS = sorted(p.stem for p in (ROOT / "tutorials").glob("plot_*.py"))
# Raw TeX in visible text: \( \) \[ \] or a control word such as \frac, \bar.
RAW_TEX = re.compile(r"\\[()\[\]]|\\[A-Za-z]+")

needs_chromium = pytest.mark.skipif(
    not os.path.exists(CHROMIUM),
    reason=f"{CHROMIUM} not found: the browser check of the site needs Debian's chromium "
           "and chromium-driver (apt-get install -y chromium chromium-driver; .ci/run does)",
)


@pytest.fixture(scope="session")
def site(tmp_path_factory):
    """Build the site into a temporary directory; return its root."""
    out = tmp_path_factory.mktemp("site") / "html"
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pyx_gru", "docs", "--out", str(out), "--quiet"],
        capture_output=True, text=True, timeout=1800, cwd=ROOT,
    )
    seconds = time.perf_counter() - start
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-6000:])
    printed = Path(proc.stdout.strip().splitlines()[-1])
    assert printed == (out / "index.html").resolve() and printed.is_file()
    print(f"\nsite built in {seconds:.0f} s")
    return out


def pages(site):
    return sorted(site.rglob("*.html"))


# --------------------------------------------------------------------------
# Offline checks of the built files
# --------------------------------------------------------------------------

def test_every_page_and_tutorial_is_built(site):
    expected = ["index", "story", "notation", "performance", "api/index", "api/cli",
                "theory/index", "theory/rnn", "theory/simple_gru", "theory/gru", "theory/lstm",
                "theory/invariants", "auto_tutorials/index"]
    expected += [f"auto_tutorials/{name}" for name in TUTORIALS]
    expected += [f"api/generated/{module}" for module in (
        "pyx_gru", "pyx_gru.reference", "pyx_gru.interop", "pyx_gru.layers", "pyx_gru.losses",
        "pyx_gru.optim", "pyx_gru.train", "pyx_gru.diagnostics", "pyx_gru.tasks",
        "pyx_gru.experiments", "pyx_gru.bench")]
    for page in expected:
        assert (site / f"{page}.html").is_file(), page


class _Resources(html.parser.HTMLParser):
    """The URLs a page loads by itself: scripts, stylesheets, images, fonts."""

    def __init__(self):
        super().__init__()
        self.urls = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("script", "img", "iframe", "source", "video", "audio"):
            self.urls.append(attrs.get("src"))
        elif tag == "link" and attrs.get("rel") in ("stylesheet", "preload", "icon", "modulepreload"):
            self.urls.append(attrs.get("href"))


def test_no_page_loads_anything_from_another_host(site):
    remote = []
    for page in pages(site):
        parser = _Resources()
        parser.feed(page.read_text(encoding="utf-8"))
        remote += [(page.name, u) for u in parser.urls if u and re.match(r"(https?:)?//", u)]
    for css in site.rglob("*.css"):
        remote += [(css.name, u) for u in re.findall(r"url\(\s*['\"]?((?:https?:)?//[^'\")]+)",
                                                     css.read_text(encoding="utf-8", errors="replace"))]
    assert not remote, remote


def test_mathjax_is_the_local_copy(site):
    page = (site / "theory" / "gru.html").read_text(encoding="utf-8")
    scripts = re.findall(r'<script[^>]*src="([^"]*tex-chtml[^"]*)"', page)
    assert scripts and all(not re.match(r"(https?:)?//", s) for s in scripts), scripts
    assert (site / "theory" / scripts[0]).resolve().is_file()


def test_pages_show_their_pictures(site):
    """docs/_ext/diagrams.py's figures reach the pages (tests/test_diagrams.py
    checks the figures themselves): the front page links every cell's diagram
    to its theory page and every tutorial's thumbnail to the tutorial."""
    index = (site / "index.html").read_text(encoding="utf-8")
    for name in ("cell_rnn", "cell_simple_gru", "cell_gru_after", "cell_gru_before", "cell_lstm"):
        assert f'src="_images/{name}.svg"' in index, name
    for doc in ("rnn", "simple_gru", "gru", "lstm"):
        assert f'href="theory/{doc}.html"' in index, doc
    for name in TUTORIALS:
        assert f"sphx_glr_{name}_thumb.png" in index and f'href="auto_tutorials/{name}.html' in index, name
    shown = {"theory/index": ["bptt"], "theory/rnn": ["cell_rnn", "claim_rnn"],
             "theory/simple_gru": ["cell_simple_gru", "claim_simple_gru"],
             "theory/gru": ["cell_gru_after", "cell_gru_before", "reset_before_after", "claim_gru"],
             "theory/lstm": ["cell_lstm", "bptt_lstm", "claim_lstm"]}
    for page, names in shown.items():
        text = (site / f"{page}.html").read_text(encoding="utf-8")
        for name in names:
            assert f'src="../_images/{name}.svg"' in text, (page, name)


def test_api_reference_covers_every_public_name(site):
    from sphinx.util.inventory import InventoryFile

    with open(site / "objects.inv", "rb") as f:
        inventory = InventoryFile.load(f, "", os.path.join)
    documented = {name for kind in inventory for name in inventory[kind]}
    missing = []
    modules = (pyx_gru, pyx_gru.reference, pyx_gru.interop, pyx_gru.layers, pyx_gru.losses,
               pyx_gru.optim, pyx_gru.train, pyx_gru.diagnostics, pyx_gru.tasks,
               pyx_gru.experiments)
    for module in modules:
        for name in module.__all__:
            obj = getattr(module, name)
            if isinstance(obj, type(pyx_gru)):  # submodules have their own page
                continue
            full = f"{module.__name__}.{name}"
            if full not in documented:
                missing.append(full)
            if isinstance(obj, type):  # and a class's own public methods and properties
                missing += [f"{full}.{member}" for member, value in vars(obj).items()
                            if not member.startswith("_")
                            and (callable(value) or isinstance(value, (property, classmethod,
                                                                       staticmethod)))
                            and f"{full}.{member}" not in documented]
    for method in ("forward", "backward", "params", "gates", "pinnable_gates"):
        if f"pyx_gru.Cell.{method}" not in documented:
            missing.append(f"pyx_gru.Cell.{method}")
    for module in [m.__name__ for m in modules] + ["pyx_gru.bench"]:
        if module not in inventory.get("py:module", {}):
            missing.append(module)
    assert not missing, missing


# --------------------------------------------------------------------------
# In a real browser
# --------------------------------------------------------------------------

# Run in the page after load: wait for MathJax to finish, make every image
# load (none is lazy here, but be sure), then report what a reader would see.
_INSPECT = r"""
const done = arguments[arguments.length - 1];
const skip = new Set(["SCRIPT", "STYLE", "PRE", "CODE", "TEXTAREA", "NOSCRIPT", "MJX-CONTAINER"]);
function visibleText() {
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT, {
    acceptNode(node) {
      for (let e = node.parentElement; e; e = e.parentElement) {
        if (skip.has(e.tagName) || e.classList.contains("highlight")) return NodeFilter.FILTER_REJECT;
      }
      return NodeFilter.FILTER_ACCEPT;
    }
  });
  const parts = [];
  while (walker.nextNode()) parts.push(walker.currentNode.nodeValue);
  return parts.join(" ");
}
const typeset = (window.MathJax && MathJax.startup && MathJax.startup.promise)
  ? MathJax.startup.promise.then(() => true, (e) => String(e)) : Promise.resolve(false);
const images = Array.from(document.images);
images.forEach((img) => { img.loading = "eager"; });
Promise.all([typeset, ...images.map((img) => img.decode().then(() => true, () => false))])
  .then(([mathjax]) => done({
    mathjax: mathjax,
    math: document.querySelectorAll(".math").length,
    untypeset: Array.from(document.querySelectorAll(".math"))
      .filter((e) => !e.querySelector("mjx-container")).map((e) => e.textContent.slice(0, 80)),
    containers: document.querySelectorAll("mjx-container").length,
    errors: Array.from(document.querySelectorAll("mjx-merror")).map((e) => e.textContent.slice(0, 80)),
    text: visibleText(),
    images: images.map((img) => [img.getAttribute("src"), img.complete, img.naturalWidth]),
    gallery: document.querySelectorAll("img.sphx-glr-single-img, img.sphx-glr-multi-img").length,
  }));
"""


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    if not os.path.exists(CHROMEDRIVER):
        pytest.fail(f"{CHROMIUM} exists but {CHROMEDRIVER} does not: "
                    "apt-get install -y chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # no Selenium Manager downloads
    options = Options()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1200,900",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(30)
    yield driver
    driver.quit()


def inspect(browser, page, tries=3):
    """What the browser saw on one page (_INSPECT), loading it again when
    the script's answer never comes back: Chromium 150's chromedriver now
    and then loses the callback of an asynchronous script (seen on 1 or 2 of
    about 100 pages per run, a different page each time, with the page
    complete and nothing left to wait for); the page loaded again answers
    at once. A page that fails every time fails the test."""
    from selenium.common.exceptions import TimeoutException
    for attempt in range(tries):
        browser.get(page.as_uri())
        try:
            return browser.execute_async_script(_INSPECT)
        except TimeoutException:
            if attempt == tries - 1:
                raise


@pytest.fixture(scope="session")
def rendered(site, browser):
    """{page path relative to the site: what the browser saw}, every page."""
    seen = {}
    start = time.perf_counter()
    for page in pages(site):
        seen[page.relative_to(site).as_posix()] = inspect(browser, page)
    seconds = time.perf_counter() - start
    n_math = sum(1 for v in seen.values() if v["math"])
    print(f"\nbrowser: {len(seen)} pages in {seconds:.0f} s; {n_math} with math, "
          f"{sum(v['containers'] for v in seen.values())} formulas typeset, "
          f"{sum(len(v['images']) for v in seen.values())} images, "
          f"{sum(v['gallery'] for v in seen.values())} of them tutorial figures")
    return seen


@needs_chromium
def test_every_formula_is_typeset(rendered):
    with_math = {page: v for page, v in rendered.items() if v["math"]}
    for page in ["story.html", "notation.html", "performance.html", "theory/index.html",
                 "theory/gru.html", "theory/lstm.html"] + [f"auto_tutorials/{t}.html" for t in TUTORIALS]:
        assert page in with_math, f"{page} should have math"
    problems = {}
    for page, v in with_math.items():
        raw = sorted(set(RAW_TEX.findall(v["text"])))
        if v["mathjax"] is not True or v["containers"] == 0 or v["untypeset"] or v["errors"] or raw:
            problems[page] = {"mathjax": v["mathjax"], "containers": v["containers"],
                              "untypeset": v["untypeset"][:3], "errors": v["errors"][:3],
                              "raw TeX": raw[:10]}
    assert not problems, problems


@needs_chromium
def test_no_raw_tex_on_any_page(rendered):
    raw = {page: sorted(set(RAW_TEX.findall(v["text"])))[:10] for page, v in rendered.items()}
    assert not {page: r for page, r in raw.items() if r}


@needs_chromium
def test_every_figure_loads(rendered):
    for name in TUTORIALS:
        assert rendered[f"auto_tutorials/{name}.html"]["gallery"] >= 1, f"{name} shows no figure"
    broken = {page: [img for img in v["images"] if not (img[1] and img[2] > 0)]
              for page, v in rendered.items()}
    assert not {page: b for page, b in broken.items() if b}, broken
