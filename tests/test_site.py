"""The documentation site, built once per session with ``python -m pyx_gru docs``
(README command A's job), then checked offline and in a real headless
Chromium: every formula typeset by the bundled MathJax (no raw TeX left on any
page), every figure loaded, nothing fetched from another host.

Offline, in the built files: every internal link and cross-reference
resolves, the tutorials print no warning, traceback or object repr, the
downloadable notebooks hold no Sphinx role, each API name is documented once.
In Chromium, at 1400 px (desktop) and 400 px (phone) wide, on every page: no
typeset equation is wider than its column, every image loads and has alt
text, and at 1400 px the tutorials' figures show their smallest text at 9 px
or more. Each check prints what it counted.

The browser checks run where ``/usr/bin/chromium`` and
``/usr/bin/chromedriver`` exist (``.ci/run`` installs Debian's ``chromium``
and ``chromium-driver``) and are skipped, with the reason, elsewhere.
"""
import html
import html.parser
import json
import os
import re
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest

import pyx_gru
import pyx_gru.experiments  # noqa: F401  (modules that pyx_gru does not import)
import pyx_gru.tasks  # noqa: F401
from pyx_gru import _site

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
TUTORIALS = sorted(p.stem for p in (ROOT / "tutorials").glob("plot_*.py"))
# Raw TeX in visible text: \( \) \[ \] or a control word such as \frac, \bar.
RAW_TEX = re.compile(r"\\[()\[\]]|\\[A-Za-z]+")

WIDTHS = (1400, 400)        # desktop and phone, CSS px
SMALLEST_TEXT_PX = 9        # a figure's smallest text where it is shown, at 1400 px
TOLERANCE_PX = 2            # rounding of layout boxes


def _browser_missing():
    """Why the browser checks cannot run here, or None."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(path)]
    if missing:
        return (f"{' and '.join(missing)} not found: the browser check of the site needs "
                "Debian's chromium and chromium-driver (apt-get install -y chromium "
                "chromium-driver; .ci/run does)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e \".[test]\")"
    return None


needs_chromium = pytest.mark.skipif(_browser_missing() is not None,
                                    reason=_browser_missing() or "")


@pytest.fixture(scope="session")
def site(tmp_path_factory):
    """Build the site into a temporary directory; return its root. With
    PYX_GRU_SITE set to a site built already (its html directory), check that
    one instead."""
    if os.environ.get("PYX_GRU_SITE"):
        built = Path(os.environ["PYX_GRU_SITE"]).resolve()
        assert (built / "index.html").is_file(), f"PYX_GRU_SITE={built} holds no index.html"
        return built
    missing = _site.missing_packages()
    if missing:
        pytest.skip(f"building the site needs {', '.join(missing)} (the 'docs' extra), not installed")
    out = tmp_path_factory.mktemp("site").resolve() / "html"
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
    """Every page of the site (not the theme's HTML fragments in _static)."""
    return sorted(p for p in site.rglob("*.html") if "_static" not in p.relative_to(site).parts)


# --------------------------------------------------------------------------
# Offline checks of the built files
# --------------------------------------------------------------------------

def test_every_page_and_tutorial_is_built(site):
    expected = ["index", "story", "notation", "performance", "api/index", "api/cli",
                "theory/index", "theory/rnn", "theory/simple_gru", "theory/gru", "theory/lstm",
                "theory/invariants", "theory/worked_step", "references", "auto_tutorials/index"]
    expected += [f"auto_tutorials/{name}" for name in TUTORIALS]
    expected += [f"api/generated/{module}" for module in (
        "pyx_gru", "pyx_gru.reference", "pyx_gru.interop", "pyx_gru.layers", "pyx_gru.losses",
        "pyx_gru.optim", "pyx_gru.train", "pyx_gru.diagnostics", "pyx_gru.tasks",
        "pyx_gru.experiments", "pyx_gru.bench")]
    expected += ["results/README", "results/polyphonic"]  # the measured results, published
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
    assert (site / "theory" / scripts[0].split("?")[0]).resolve().is_file()  # less ?v=checksum


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


def _inventory(site):
    from sphinx.util.inventory import InventoryFile

    with open(site / "objects.inv", "rb") as f:
        return InventoryFile.load(f, "", os.path.join)


def _resolve(name):
    """The Python object a dotted name of pyx_gru stands for, or None."""
    import importlib

    parts = name.split(".")
    for k in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:k]))
        except ImportError:
            continue
        try:
            for part in parts[k:]:
                obj = getattr(obj, part)
        except AttributeError:
            return None
        return obj
    return None


def test_each_class_and_function_is_documented_once(site):
    """A name re-exported by another module (pyx_gru.Model is
    pyx_gru.layers.Model) is an alias of the one description, not a second
    description: every entry of the inventory that stands for the same class
    or function points to the same place."""
    import types

    inventory = _inventory(site)
    places = {}
    for kind in ("py:class", "py:function", "py:exception"):
        for name, item in inventory.get(kind, {}).items():
            obj = _resolve(name)
            if isinstance(obj, (type, types.FunctionType, types.BuiltinFunctionType)) \
                    or callable(obj):
                places.setdefault(id(obj), (obj, set()))[1].add(
                    (item[2] if isinstance(item, tuple) else item.uri, name))
    twice = {getattr(obj, "__qualname__", repr(obj)): sorted(name for _, name in entries)
             for obj, entries in places.values() if len({uri for uri, _ in entries}) > 1}
    print(f"\n{sum(len(e) for _, e in places.values())} inventory entries of "
          f"{len(places)} classes and functions: {len(twice)} documented twice")
    assert not twice, twice


class _Links(html.parser.HTMLParser):
    """A page's ids (anchors), its <a href>s, its cross-references that did
    not resolve (code.xref outside a link), and the text of its tutorial
    output blocks."""

    OUTPUT_CLASSES = {"sphx-glr-script-out", "output_subarea"}
    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
            "param", "source", "track", "wbr"}

    def __init__(self):
        super().__init__()
        self.ids, self.hrefs, self.unresolved, self.outputs = set(), [], [], []
        self.xrefs = 0
        self._a = 0
        self._xref = None
        self._output = None  # [depth, text parts]
        self._depth = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = set((attrs.get("class") or "").split())
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a":
            if attrs.get("name"):
                self.ids.add(attrs["name"])
            if attrs.get("href") is not None:
                self.hrefs.append(attrs["href"])
            self._a += 1
        if tag in ("code", "span") and "xref" in classes:
            self.xrefs += 1
            if self._a == 0:
                self._xref = []
        if tag not in self.VOID:
            self._depth += 1
            if self._output is None and classes & self.OUTPUT_CLASSES:
                self._output = [self._depth, []]

    def handle_endtag(self, tag):
        if tag == "a":
            self._a -= 1
        if tag in ("code", "span") and self._xref is not None:
            self.unresolved.append("".join(self._xref))
            self._xref = None
        if tag not in self.VOID:
            if self._output is not None and self._depth == self._output[0]:
                self.outputs.append("".join(self._output[1]))
                self._output = None
            self._depth -= 1

    def handle_data(self, data):
        if self._xref is not None:
            self._xref.append(data)
        if self._output is not None:
            self._output[1].append(data)


@pytest.fixture(scope="session")
def parsed(site):
    """{page: _Links}, every page."""
    out = {}
    for page in pages(site):
        parser = _Links()
        parser.feed(page.read_text(encoding="utf-8"))
        out[page] = parser
    return out


def test_every_internal_link_resolves(site, parsed):
    """Every <a href> to this site names a file that exists and, with a
    #fragment, an id on that page (the source view's "[docs]" links, the
    gallery's, the API's, the tutorials' links to other pages)."""
    broken, n_links, n_anchors = [], 0, 0
    for page, links in parsed.items():
        for href in links.hrefs:
            parts = urllib.parse.urlsplit(href)
            if parts.scheme or parts.netloc:
                continue  # another host, mailto: and javascript: are not ours
            n_links += 1
            path = urllib.parse.unquote(parts.path)
            target = (page.parent / path).resolve() if path else page
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file():
                broken.append((page.relative_to(site).as_posix(), href, "no such file"))
                continue
            fragment = urllib.parse.unquote(parts.fragment)
            if fragment and target.suffix == ".html":
                n_anchors += 1
                ids = parsed[target].ids if target in parsed else _Links().ids
                if fragment not in ids:
                    broken.append((page.relative_to(site).as_posix(), href, "no such anchor"))
    print(f"\nlinks: {n_links} internal links on {len(parsed)} pages, {n_anchors} of them "
          f"to an anchor; {len(broken)} broken")
    assert not broken, broken[:40]


def test_every_cross_reference_resolves(parsed, site):
    """A :class:, :func:, :meth: ... that found no target is printed as code
    without a link (Sphinx says nothing unless nitpicky): there is none."""
    unresolved = {page.relative_to(site).as_posix(): links.unresolved
                  for page, links in parsed.items() if links.unresolved}
    print(f"\ncross-references: {sum(links.xrefs for links in parsed.values())} on {len(parsed)} pages; "
          f"{sum(map(len, unresolved.values()))} unresolved")
    assert not unresolved, unresolved


# What a tutorial must not print: a warning (with the build machine's path),
# a traceback, an object's default repr.
BAD_OUTPUT = re.compile(r"Warning\b|Traceback|object at 0x[0-9a-fA-F]+|" + re.escape(str(ROOT)))


def test_tutorial_output_is_clean(parsed, site):
    tutorials = {p: links for p, links in parsed.items()
                 if p.parent.name == "auto_tutorials" and p.stem.startswith("plot_")}
    assert len(tutorials) == len(TUTORIALS)
    bad = [(page.stem, m.group(0), out[max(0, m.start() - 100):m.end() + 100])
           for page, links in tutorials.items() for out in links.outputs
           for m in BAD_OUTPUT.finditer(out)]
    n_blocks = sum(len(links.outputs) for links in tutorials.values())
    print(f"\ntutorial output: {n_blocks} output blocks of {len(tutorials)} tutorials; "
          f"{len(bad)} with a warning, traceback or repr")
    assert all(links.outputs for links in tutorials.values())
    assert not bad, bad


# reST left in a notebook's Markdown: a role (:doc:`...`, :py:func:`...`),
# what sphinx-gallery leaves of a :ref: to a tutorial, a directive.
REST_IN_MARKDOWN = re.compile(r":(?:[a-z]+:)?[a-z]+:`|`sphx_glr_|^\s*\.\. [a-z-]+::", re.M)


def test_notebooks_hold_no_sphinx_roles(site):
    notebooks = sorted(site.rglob("*.ipynb"))
    assert len({nb.stem for nb in notebooks}) == len(TUTORIALS), notebooks
    left, n_cells = {}, 0
    for nb in notebooks:
        cells = [c for c in json.loads(nb.read_text(encoding="utf-8"))["cells"]
                 if c["cell_type"] == "markdown"]
        n_cells += len(cells)
        found = [m.group(0) for c in cells for m in REST_IN_MARKDOWN.finditer("".join(c["source"]))]
        if found:
            left[nb.name] = found
    print(f"\nnotebooks: {len(notebooks)} with {n_cells} Markdown cells; "
          f"{sum(map(len, left.values()))} reST roles or directives left")
    assert not left, left


# --------------------------------------------------------------------------
# In a real browser
# --------------------------------------------------------------------------

# Run in the page after load: open every <details> (folded solutions are
# checked too), wait for MathJax to finish, make every image load (none is
# lazy here, but be sure), then report what a reader would see.
_INSPECT = r"""
const done = arguments[arguments.length - 1];
document.querySelectorAll("details").forEach((d) => { d.open = true; });
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
function tex(container) {
  try {
    const items = MathJax.startup.document.getMathItemsWithin(container);
    return items.length ? items[0].math.slice(0, 120) : "";
  } catch (e) { return ""; }
}
// Every typeset equation that is laid out: is it wider than its column (the
// nearest enclosing block's content box), or scrolled inside its own box?
function equations() {
  let checked = 0;
  const wide = [];
  for (const c of document.querySelectorAll("mjx-container")) {
    const math = c.querySelector("mjx-math") || c;
    const box = math.getBoundingClientRect();
    if (box.width === 0 && box.height === 0) continue;  // not laid out
    checked += 1;
    let col = c.parentElement;
    while (col.parentElement && getComputedStyle(col).display.startsWith("inline")) col = col.parentElement;
    const s = getComputedStyle(col), r = col.getBoundingClientRect();
    const left = r.left + parseFloat(s.borderLeftWidth) + parseFloat(s.paddingLeft);
    const right = r.right - parseFloat(s.borderRightWidth) - parseFloat(s.paddingRight);
    const scrolled = c.getAttribute("display") === "true" && c.scrollWidth > c.clientWidth + TOL;
    if (scrolled || box.left < left - TOL || box.right > right + TOL) {
      wide.push({tex: tex(c), width: Math.round(box.width), column: Math.round(right - left),
                 scrolled: scrolled});
    }
  }
  return {checked: checked, wide: wide};
}
const typeset = (window.MathJax && MathJax.startup && MathJax.startup.promise)
  ? MathJax.startup.promise.then(() => true, (e) => String(e)) : Promise.resolve(false);
const images = Array.from(document.images);
images.forEach((img) => { img.loading = "eager"; });
Promise.all([typeset, ...images.map((img) => img.decode().then(() => true, () => false))])
  .then(([mathjax]) => done({
    width: window.innerWidth,
    mathjax: mathjax,
    math: document.querySelectorAll(".math").length,
    untypeset: Array.from(document.querySelectorAll(".math"))
      .filter((e) => !e.querySelector("mjx-container")).map((e) => e.textContent.slice(0, 80)),
    containers: document.querySelectorAll("mjx-container").length,
    errors: Array.from(document.querySelectorAll("mjx-merror")).map((e) => e.textContent.slice(0, 80)),
    equations: equations(),
    text: visibleText(),
    images: images.map((img) => ({
      src: img.getAttribute("src"), complete: img.complete, natural: img.naturalWidth,
      alt: img.getAttribute("alt"), shown: img.getBoundingClientRect().width,
      gallery: img.classList.contains("sphx-glr-single-img")
               || img.classList.contains("sphx-glr-multi-img"),
    })),
    gallery: document.querySelectorAll("img.sphx-glr-single-img, img.sphx-glr-multi-img").length,
  }));
""".replace("TOL", str(TOLERANCE_PX))


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    reason = _browser_missing()
    if reason:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # no Selenium Manager downloads
    options = Options()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1400,900",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(30)
    yield driver
    driver.quit()


def set_width(browser, width):
    """Lay pages out at ``width`` CSS px (one device pixel each), whatever
    the window manager allows for the window itself."""
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": width, "height": 900, "deviceScaleFactor": 1,
                             "mobile": False})


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
    """{width: {page path relative to the site: what the browser saw}},
    every page at every width of WIDTHS."""
    seen = {}
    for width in WIDTHS:
        set_width(browser, width)
        start = time.perf_counter()
        seen[width] = {page.relative_to(site).as_posix(): inspect(browser, page)
                       for page in pages(site)}
        seconds = time.perf_counter() - start
        at = seen[width].values()
        print(f"\nbrowser at {width} px: {len(at)} pages in {seconds:.0f} s; "
              f"{sum(1 for v in at if v['math'])} with math, "
              f"{sum(v['containers'] for v in at)} formulas typeset, "
              f"{sum(len(v['images']) for v in at)} images, "
              f"{sum(v['gallery'] for v in at)} of them tutorial figures")
    return seen


@needs_chromium
def test_pages_are_laid_out_at_each_width(rendered):
    for width, at in rendered.items():
        assert {v["width"] for v in at.values()} == {width}


@needs_chromium
@pytest.mark.parametrize("width", WIDTHS)
def test_every_formula_is_typeset(rendered, width):
    with_math = {page: v for page, v in rendered[width].items() if v["math"]}
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
    raw = {page: sorted(set(RAW_TEX.findall(v["text"])))[:10]
           for page, v in rendered[WIDTHS[0]].items()}
    assert not {page: r for page, r in raw.items() if r}


@needs_chromium
def test_no_equation_is_wider_than_its_column(rendered):
    """At 1400 and at 400 px, every typeset equation fits its column: none is
    clipped behind a scroll bar or runs past the text."""
    wide, counts = {}, []
    for width, at in rendered.items():
        counts.append(f"{sum(v['equations']['checked'] for v in at.values())} equations on "
                      f"{len(at)} pages at {width} px")
        for page, v in at.items():
            for eq in v["equations"]["wide"]:
                wide.setdefault(f"{page} at {width} px", []).append(eq)
    print("\nequations: " + "; ".join(counts)
          + f"; {sum(map(len, wide.values()))} wider than their column")
    assert not wide, wide


@needs_chromium
def test_every_image_loads_and_has_alt_text(rendered):
    for name in TUTORIALS:
        assert rendered[WIDTHS[0]][f"auto_tutorials/{name}.html"]["gallery"] >= 1, \
            f"{name} shows no figure"
    broken, no_alt, n = {}, {}, 0
    for width, at in rendered.items():
        for page, v in at.items():
            n += len(v["images"])
            bad = [img["src"] for img in v["images"] if not (img["complete"] and img["natural"] > 0)]
            if bad:
                broken[f"{page} at {width} px"] = bad
            bad = [img["src"] for img in v["images"] if not (img["alt"] or "").strip()]
            if bad:
                no_alt[page] = bad
    print(f"\nimages: {n} on {sum(len(at) for at in rendered.values())} pages x widths; "
          f"{sum(map(len, broken.values()))} not loaded, {sum(map(len, no_alt.values()))} "
          "without alt text")
    assert not broken, broken
    assert not no_alt, no_alt


@needs_chromium
def test_figure_text_is_legible_at_desktop_width(site, rendered):
    """The smallest text of each tutorial figure (a tick label, a legend), as
    the page shows it at 1400 px: its size in the saved image (recorded by
    the gallery's scraper, docs/_ext/pyx_gru_gallery.py) times the scale at
    which the image is shown."""
    recorded = json.loads((site / ".figure_text.json").read_text(encoding="utf-8"))
    shown, small = [], []
    for page, v in rendered[WIDTHS[0]].items():
        for img in v["images"]:
            if not img["gallery"]:
                continue
            name = img["src"].rsplit("/", 1)[-1]
            assert name in recorded, f"{page}: no text size recorded for {name}"
            px = recorded[name]["smallest_text_px"]
            if px is None:
                continue  # a figure without text
            size = px * img["shown"] / img["natural"]
            shown.append(size)
            if size < SMALLEST_TEXT_PX:
                small.append((page, name, round(size, 1), f"shown at {img['shown']:.0f} of "
                              f"{img['natural']} px"))
    assert shown
    print(f"\nfigures: {len(shown)} tutorial figures at {WIDTHS[0]} px; smallest text "
          f"{min(shown):.1f} px (median {sorted(shown)[len(shown) // 2]:.1f}); "
          f"{len(small)} under {SMALLEST_TEXT_PX} px")
    assert not small, small
