"""Build the documentation site (``python -m pyx_gru docs``).

The sources live in the clone, not in the installed package: ``docs/`` (the
pages and ``conf.py``) and ``tutorials/`` (the sphinx-gallery scripts, run at
build time). The build is Sphinx with warnings as errors, fully offline.
"""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

__all__ = ["ROOT", "DOCS", "build"]

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
# What the build needs (import names; the docs extra installs them all), and
# what running the tutorials needs on top.
NEEDS = ("sphinx", "sphinx_gallery", "numpydoc", "pydata_sphinx_theme", "sphinx-mathjax-offline",
         "myst_parser")
NEEDS_GALLERY = ("matplotlib", "torch", "threadpoolctl", "joblib", "music21")


def missing_packages(gallery=True):
    """list of str: the packages the build needs (and, with ``gallery``, the
    tutorials) that cannot be imported."""
    names = NEEDS + (NEEDS_GALLERY if gallery else ())
    return [name for name in names if importlib.util.find_spec(name) is None]


def build(out=None, *, source=None, gallery=True, quiet=False):
    """Build the HTML site with ``sphinx-build -W --keep-going``.

    Parameters
    ----------
    out : str or path-like, optional
        The output directory; default ``docs/_build/html`` of the clone.
    source : str or path-like, optional
        The Sphinx source directory (holding ``conf.py``); default ``docs/``.
    gallery : bool
        Execute the tutorials (default). False builds the pages without
        running them (quick, but the tutorial pages have no output).
    quiet : bool
        Pass ``-q`` to Sphinx: only warnings and errors are printed.

    Returns
    -------
    pathlib.Path
        The site's ``index.html``.

    Raises
    ------
    FileNotFoundError
        When ``source`` has no ``conf.py`` (the package was installed from a
        wheel rather than a clone).
    ImportError
        When a package of the ``docs`` extra is missing.
    RuntimeError
        When Sphinx fails or warns.
    """
    source = Path(source) if source is not None else DOCS
    if not (source / "conf.py").is_file():
        raise FileNotFoundError(
            f"no Sphinx sources at {source} (docs/conf.py): the site is built from a clone "
            "of pyx_gru, installed with pip install -e \".[docs]\""
        )
    missing = missing_packages(gallery)
    if missing:
        raise ImportError(
            f"building the site needs {', '.join(missing)}: "
            "pip install -e \".[docs]\" from the clone"
        )
    out = Path(out) if out is not None else source / "_build" / "html"
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html"]
    if quiet:
        cmd.append("-q")
    if not gallery:
        cmd += ["-D", "plot_gallery=0"]
    cmd += [str(source), str(out)]
    env = {**os.environ, "MPLBACKEND": "Agg"}
    proc = subprocess.run(cmd, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"sphinx-build failed (exit code {proc.returncode}): {' '.join(cmd)}")
    return (out / "index.html").resolve()
