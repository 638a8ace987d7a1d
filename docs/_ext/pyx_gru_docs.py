"""Sphinx helpers of the pyx_gru site.

* ``.. readme-benchmark:: [start]`` renders a benchmark table of
  ``README.md`` (the paragraph that starts with *start*, "Full run," unless
  given, and the Markdown table after it), so the site shows the figures the
  README has, with their date and machine, without a second copy to keep in
  step.
* ``.. program-help:: [subcommand]`` prints ``python -m pyx_gru [subcommand]
  --help`` as the parser gives it.
* ``TutorialOrder`` sorts the tutorials in reading order for sphinx-gallery.
* The API pages document each name once, in the public module that defines
  it (``reexports``: ``pyx_gru.Model`` is ``pyx_gru.layers.Model``); the
  name it is re-exported under becomes an alias of that entry, so that
  ``:class:`pyx_gru.Model``` and the tutorials' code links still resolve.
* Each cell's API entry links to its theory page (``THEORY``).
"""
import re
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import Directive
from docutils.statemachine import StringList
from sphinx.errors import ExtensionError

ROOT = Path(__file__).resolve().parents[2]

# Reading order of tutorials/plot_*.py.
TUTORIALS = [
    "plot_rnn_to_gru.py",             # 1
    "plot_gradient_flow.py",          # 2
    "plot_gates_at_work.py",          # 3
    "plot_reset_before_after.py",     # 4
    "plot_cells_compared.py",         # 5
    "plot_chorales.py",               # 6
    "plot_char_lm.py",                # 6b: a character-level language model
    "plot_torch_interop.py",          # 7
    "plot_check_gradients.py",        # 8
]


class TutorialOrder:
    """sphinx-gallery ``within_subsection_order``: the order of ``TUTORIALS``,
    then any other script by name."""

    def __init__(self, src_dir):
        self.src_dir = src_dir

    def __call__(self, filename):
        name = Path(filename).name
        if name in TUTORIALS:
            return (0, TUTORIALS.index(name), name)
        return (1, 0, name)


def _inline(text):
    """Markdown inline code to reST."""
    return re.sub(r"`([^`]+)`", r"``\1``", text)


def readme_benchmark_rst(readme, start="Full run,"):
    """reST for one of the README's benchmark paragraphs and its table.

    Parameters
    ----------
    readme : str
        The text of README.md.
    start : str
        How the paragraph begins (the first such paragraph is taken).

    Returns
    -------
    list of str
        reST lines: the paragraph, then a ``list-table``.
    """
    lines = readme.splitlines()
    try:
        first = next(i for i, line in enumerate(lines) if line.startswith(start))
    except StopIteration:
        raise ExtensionError(
            f"readme-benchmark: README.md has no paragraph starting {start!r}") from None
    paragraph = []
    i = first
    while i < len(lines) and lines[i].strip():
        paragraph.append(lines[i].strip())
        i += 1
    while i < len(lines) and not lines[i].strip():
        i += 1
    rows = []
    while i < len(lines) and lines[i].startswith("|"):
        cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
        if not all(re.fullmatch(r":?-+:?", c) for c in cells):
            rows.append(cells)
        i += 1
    if len(rows) < 2 or any(len(r) != len(rows[0]) for r in rows):
        raise ExtensionError(f"readme-benchmark: no well-formed table after the {start!r} paragraph")
    out = [_inline(" ".join(paragraph)), "", ".. list-table::", "   :header-rows: 1", ""]
    for row in rows:
        for k, cell in enumerate(row):
            out.append(("   * - " if k == 0 else "     - ") + (_inline(cell) or " "))
    out.append("")
    return out


class ReadmeBenchmark(Directive):
    optional_arguments = 1
    final_argument_whitespace = True
    has_content = False

    def run(self):
        readme = ROOT / "README.md"
        self.state.document.settings.env.note_dependency(str(readme))
        start = self.arguments[0] if self.arguments else "Full run,"
        content = StringList(readme_benchmark_rst(readme.read_text(encoding="utf-8"), start), str(readme))
        node = nodes.container()
        self.state.nested_parse(content, self.content_offset, node)
        return node.children


class ProgramHelp(Directive):
    optional_arguments = 1
    has_content = False

    def run(self):
        from pyx_gru.__main__ import build_parser

        parser = build_parser()
        if self.arguments:
            parser = parser.subcommands[self.arguments[0]]
        text = parser.format_help()
        return [nodes.literal_block(text, text, language="text")]


def api_modules():
    """list of str: the modules with a page of their own, as listed in
    docs/api/index.rst's autosummary."""
    text = (ROOT / "docs" / "api" / "index.rst").read_text(encoding="utf-8")
    block = text.split(".. autosummary::", 1)[1]
    return re.findall(r"^ {3}(pyx_gru[\w.]*)\s*$", block, flags=re.M)


def _assigned_at_top(module, name):
    """Whether the source of ``module`` assigns ``name`` at its top level."""
    import ast
    import importlib
    import inspect

    tree = ast.parse(inspect.getsource(importlib.import_module(module)))
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, ast.AnnAssign) else [])
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            return True
    return False


def reexports(modules):
    """{module: [(name, home), ...]}: the names of each module's ``__all__``
    defined in another module of ``modules`` (``home``), which documents them.

    A class or function is defined where its ``__module__`` says; data (a
    tuple, a dict) in the module of ``modules`` whose source assigns it.

    Parameters
    ----------
    modules : list of str
        The modules with an API page.

    Returns
    -------
    dict
    """
    import importlib
    import inspect

    out = {}
    for module in modules:
        mod = importlib.import_module(module)
        for name in getattr(mod, "__all__", ()):
            obj = getattr(mod, name)
            if inspect.isclass(obj) or inspect.isroutine(obj) or inspect.ismodule(obj):
                home = getattr(obj, "__module__", None)
            else:
                home = next((m for m in modules if _assigned_at_top(m, name)
                             and getattr(importlib.import_module(m), name, None) is obj), None)
            if home != module and home in modules:
                out.setdefault(module, []).append((name, home))
    return out


def _alias_reexports(app, env):
    """Enter ``module.name`` (and its members) as aliases of the entries
    of ``home.name``."""
    from sphinx.domains.python import ObjectEntry

    objects = env.get_domain("py").objects
    for module, names in reexports(api_modules()).items():
        for name, home in names:
            prefix = f"{home}.{name}"
            for full, entry in list(objects.items()):
                if full == prefix or full.startswith(prefix + "."):
                    alias = f"{module}.{name}" + full[len(prefix):]
                    if alias not in objects:
                        objects[alias] = ObjectEntry(entry.docname, entry.node_id, entry.objtype, True)


# The theory page of each cell's classes and step functions (by name).
THEORY = {
    "theory/rnn": ("pyx_gru.RNN", "pyx_gru.reference.RNN", "pyx_gru.reference.rnn_step_"),
    "theory/simple_gru": ("pyx_gru.SimpleGRU", "pyx_gru.reference.SimpleGRU",
                          "pyx_gru.reference.simple_gru_step_"),
    "theory/gru": ("pyx_gru.GRU", "pyx_gru.reference.GRU", "pyx_gru.reference.gru_after_step_",
                   "pyx_gru.reference.gru_before_step_"),
    "theory/lstm": ("pyx_gru.LSTM", "pyx_gru.reference.LSTM", "pyx_gru.reference.lstm_step_"),
    "theory/index": ("pyx_gru.Cell",),
}


def _link_theory(app, what, name, obj, options, lines):
    for page, names in THEORY.items():
        if any(name == n or (n.endswith("_") and name.startswith(n)) for n in names):
            title = "the equations, the backward pass and the Jacobian"
            if page == "theory/index":
                title = "the notation and backpropagation through time, for every cell"
            lines += ["", f".. seealso:: :doc:`/{page}`: {title}.", ""]
            return


def setup(app):
    app.add_directive("readme-benchmark", ReadmeBenchmark)
    app.add_directive("program-help", ProgramHelp)
    app.connect("env-updated", _alias_reexports)
    app.connect("autodoc-process-docstring", _link_theory, priority=600)  # after numpydoc
    return {"parallel_read_safe": True, "parallel_write_safe": True}
