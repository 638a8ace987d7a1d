"""The tutorials' gallery: what sphinx-gallery does not do for us.

* ``one_blas_thread``, a ``reset_modules`` entry: every tutorial runs with one
  BLAS thread on the shared machine that builds the site, without a block of
  code about it in the tutorials and their notebooks.
* ``matplotlib_scraper``: sphinx-gallery's own, which also records the
  smallest text of each figure in pixels of the saved image (written to
  ``.figure_text.json`` in the output directory), so that the browser test
  can check how large that text is where the page shows the figure.
* The gallery's thumbnails get their tutorial's title as alt text
  (sphinx-gallery leaves it empty).
* The downloadable notebooks: sphinx-gallery converts ``:math:`` to Markdown,
  turns ``:ref:`label``` into a code span and leaves every other Sphinx role
  as it is. After the pages are read, the Markdown cells of every notebook
  get the page and section titles the roles stand for.
"""
import json
import re
from pathlib import Path, PurePosixPath

from sphinx.util import logging

logger = logging.getLogger(__name__)

FIGURE_TEXT = {}  # image file name -> smallest text of the figure, px in the saved image
FIGURE_TEXT_FILE = ".figure_text.json"


def one_blas_thread(gallery_conf, fname, when=None):
    """Hold BLAS to one thread while the tutorials run: their matrices are
    small, and on the build machine's 2 shared cores a second thread only
    waits for a busy core."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)


def smallest_text_px(fig, dpi):
    """The size (px, at ``dpi``) of the smallest visible, non-empty text of
    ``fig``: tick labels, axis labels, titles, legends, annotations."""
    from matplotlib.text import Text

    fig.canvas.draw()  # tick labels exist once drawn
    sizes = [t.get_fontsize() for t in fig.findobj(Text)
             if t.get_visible() and t.get_text().strip()
             and t.get_window_extent().overlaps(fig.bbox)]
    return min(sizes) * dpi / 72 if sizes else None


def matplotlib_scraper(block, block_vars, gallery_conf, **kwargs):
    """sphinx-gallery's matplotlib scraper, recording ``smallest_text_px`` of
    every figure it saves (keyed by the image's file name)."""
    import matplotlib
    import matplotlib.pyplot as plt
    from sphinx_gallery.scrapers import matplotlib_scraper as scrape

    dpi = kwargs.get("dpi", matplotlib.rcParams["savefig.dpi"])
    sizes = []
    for number in plt.get_fignums():
        fig = plt.figure(number)
        sizes.append((smallest_text_px(fig, fig.dpi if dpi == "figure" else dpi),
                      fig.get_size_inches()[0] * (fig.dpi if dpi == "figure" else dpi)))
    paths = block_vars["image_path_iterator"]
    first = len(paths)
    rst = scrape(block, block_vars, gallery_conf, **kwargs)
    for path, (text, width) in zip(paths.paths[first:], sizes, strict=True):
        FIGURE_TEXT[PurePosixPath(path).name] = {"smallest_text_px": text, "width_px": width}
    return rst


def _write_figure_text(app, exception):
    if exception is None and app.builder.format == "html" and FIGURE_TEXT:
        path = Path(app.outdir) / FIGURE_TEXT_FILE
        path.write_text(json.dumps(FIGURE_TEXT, indent=1, sort_keys=True), encoding="utf-8")


# -- notebooks ---------------------------------------------------------------------

# A role with its text: :doc:`x`, :py:func:`~a.b`, :class:`title <a.B>`.
ROLE = re.compile(r":(?:(?P<domain>[a-z]+):)?(?P<role>[a-z]+):`(?P<text>[^`]+)`")
# What sphinx-gallery leaves of :ref:`label` and :ref:`title <label>`.
CODE_SPAN = re.compile(r"(?<!`)`(?P<text>[^`\n]+)`(?!`)")
TITLE_TARGET = re.compile(r"^(?P<title>.+?)\s*<(?P<target>[^<>]+)>$", re.S)
PY_ROLES = {"func", "class", "meth", "mod", "attr", "obj", "data", "exc", "const", "prop"}


def _split(text):
    """(explicit title or None, target) of a role's text."""
    match = TITLE_TARGET.match(text.strip())
    return (match["title"], match["target"]) if match else (None, text.strip())


def markdown_without_roles(markdown, docname, titles, labels):
    """``markdown`` with every Sphinx role replaced by what a reader of the
    notebook can use: a page's or section's title in italics, a Python name
    as code.

    Parameters
    ----------
    markdown : str
        A notebook's Markdown cell, as sphinx-gallery wrote it.
    docname : str
        The tutorial's page (``auto_tutorials/plot_x``): ``:doc:`` targets are
        relative to it.
    titles : dict
        Page name -> title.
    labels : dict
        Label -> the title a ``:ref:`` to it shows.

    Returns
    -------
    str
    """
    def role(match):
        title, target = _split(match["text"])
        kind = match["role"]
        if kind == "doc":
            if title is None:
                page = (target.lstrip("/") if target.startswith("/")
                        else str(PurePosixPath(docname).parent / target))
                page = _normalise(page)
                title = titles.get(page, target)
            return f"*{title}*"
        if kind == "ref":
            return f"*{title or labels.get(target.lower(), target)}*"
        if kind in PY_ROLES:
            if title is None:
                title = target.lstrip("~").rsplit(".", 1)[-1] if target.startswith("~") \
                    else target.lstrip("!.")
            return f"`{title}`"
        return title or target

    def code_span(match):  # sphinx-gallery's remains of a :ref:
        title, target = _split(match["text"])
        if target.lower() in labels and (title or not _is_test_name(target)):
            return f"*{title or labels[target.lower()]}*"
        return match[0]

    return CODE_SPAN.sub(code_span, ROLE.sub(role, markdown))


def _is_test_name(label):
    # labels on the tests the pages quote read best as the test's name, in code
    return label.startswith("test_")


def _normalise(page):
    parts = []
    for part in PurePosixPath(page).parts:
        if part == "..":
            parts.pop()
        elif part != ".":
            parts.append(part)
    return "/".join(parts)


def _fix_notebooks(app, env):
    conf = app.config.sphinx_gallery_conf
    gallery_dirs = conf.get("gallery_dirs", [])
    if isinstance(gallery_dirs, str):
        gallery_dirs = [gallery_dirs]
    titles = {doc: node.astext() for doc, node in env.titles.items()}
    std = env.get_domain("std")
    labels = {name: title for name, (_, _, title) in std.labels.items() if title}
    for gallery in gallery_dirs:
        for path in sorted((Path(app.srcdir) / gallery).glob("*.ipynb")):
            notebook = json.loads(path.read_text(encoding="utf-8"))
            docname = f"{gallery}/{path.stem}"
            changed = False
            for cell in notebook["cells"]:
                if cell["cell_type"] != "markdown":
                    continue
                text = "".join(cell["source"])
                new = markdown_without_roles(text, docname, titles, labels)
                if new != text:
                    cell["source"] = [new]
                    changed = True
            if changed:
                path.write_text(json.dumps(notebook, indent=2), encoding="utf-8")


THUMBNAIL = re.compile(r"sphx_glr_(?P<stem>.+)_thumb\.\w+$")


def _thumbnail_alt(app, doctree, docname):
    from docutils import nodes

    titles = app.env.titles
    for image in doctree.findall(nodes.image):
        match = THUMBNAIL.search(image.get("uri", ""))
        if match and not image.get("alt", "").strip():
            page = next((doc for doc in titles if doc.rsplit("/", 1)[-1] == match["stem"]), None)
            if page is not None:
                image["alt"] = titles[page].astext()


def setup(app):
    app.connect("env-updated", _fix_notebooks)
    app.connect("doctree-resolved", _thumbnail_alt)
    app.connect("build-finished", _write_figure_text)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
