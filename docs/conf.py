"""Sphinx configuration of the pyx_gru site.

Build it with ``python -m pyx_gru docs`` (or ``sphinx-build -W --keep-going -b
html docs docs/_build/html``). Everything is offline: MathJax comes from
sphinx-mathjax-offline, the theme ships its own assets, and the tutorials in
``tutorials/`` are executed by sphinx-gallery at build time. The compiled
extension must be built first (``pip install -e ".[docs]"``), since autodoc
imports pyx_gru.
"""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

import pyx_gru  # noqa: E402  (autodoc and the tutorials need the compiled package)

project = "pyx_gru"
author = "the pyx_gru developers"
copyright = "2026, the pyx_gru developers; BSD 3-Clause licence"
release = version = pyx_gru.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # after sphinx.ext.mathjax: a local MathJax 3, no CDN
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "pyx_gru_docs",  # docs/_ext: the README's benchmark table, the CLI's help, tutorial order
    "diagrams",  # docs/_ext: the cells' pictures and the theory pages' figures, into _diagrams/
]
# docs/_ext: the folded solutions of the theory pages' exercises
extensions.append("pyx_gru_exercises")
# docs/_ext: the results pages' figures, from docs/results/polyphonic.json into _results/
extensions.append("results_figures")

exclude_patterns = ["_build", "auto_tutorials/*.ipynb", "auto_tutorials/*.py", "auto_tutorials/*.zip"]
templates_path = ["_templates"]
root_doc = "index"
default_role = "math"  # `x_t` in a page is inline math, as in the docstrings' prose
nitpicky = False

# -- math: MathJax 3 from the package, configured here ---------------------------
mathjax3_config = {
    "tex": {"macros": {}},
    "chtml": {"displayAlign": "center"},
}

# -- API reference -----------------------------------------------------------------
autosummary_generate = True
autodoc_member_order = "bysource"
autodoc_typehints = "none"
autodoc_preserve_defaults = True  # dtype=np.float64, as written, not <class ...>
numpydoc_show_class_members = False  # autodoc lists the members; avoids autosummary stubs
numpydoc_class_members_toctree = False
# Each name is documented once, in the public module that defines it: the
# module template leaves out the names a module re-exports from another
# module with a page (pyx_gru.Model is pyx_gru.layers.Model).
import pyx_gru_docs  # noqa: E402  (docs/_ext)

autosummary_context = {"reexports": pyx_gru_docs.reexports(pyx_gru_docs.api_modules())}

# -- the results page: docs/results/README.md, Markdown as on GitHub ----------------
extensions.append("myst_parser")
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}

# -- tutorials ---------------------------------------------------------------------
# docs/_ext: the gallery's BLAS threads, its figures' text sizes, its notebooks
extensions.append("pyx_gru_gallery")
sphinx_gallery_conf = {
    "examples_dirs": "../tutorials",
    "gallery_dirs": "auto_tutorials",
    "filename_pattern": r"/plot_",
    "within_subsection_order": "pyx_gru_docs.TutorialOrder",
    # The execution-times pages load jQuery and DataTables from CDNs.
    "write_computation_times": False,
    # Always run the tutorials: the site shows what the current code computes,
    # never output cached from an earlier build of other code.
    "run_stale_examples": True,
    "show_signature": False,
    "download_all_examples": False,
    "remove_config_comments": True,
    # matplotlib's scraper, noting each figure's smallest text for the
    # browser test; every figure also at twice the pixels for sharp screens.
    "image_scrapers": ("pyx_gru_gallery.matplotlib_scraper",),
    "image_srcset": ["2x"],
    # One BLAS thread per tutorial on the shared build machine (not a block
    # of code in every tutorial and notebook).
    "reset_modules": ("matplotlib", "pyx_gru_gallery.one_blas_thread"),
    # A cell ending in a call that returns a matplotlib object (a colorbar, a
    # title) prints nothing.
    "ignore_repr_types": r"matplotlib\.",
}

# -- HTML --------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = "pyx_gru"
html_theme_options = {
    "show_toc_level": 2,
    "navigation_depth": 3,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
# The section navigation only where a section has pages; elsewhere the article
# gets the width.
html_sidebars = {page: [] for page in ("index", "story", "notation", "performance")}
html_sidebars["**"] = ["sidebar-nav-bs"]
# No section navigation beside the references and the theory's table of cells
# (its seven columns need the width; the page lists its sub-pages itself).
html_sidebars.update({"references": [], "theory/index": []})
html_static_path = ["_static"]
html_css_files = ["pyx_gru.css"]
html_show_sourcelink = True
