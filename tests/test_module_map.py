"""The module map (README's "Module map" and the package docstring) against
the package itself: it lists every module of pyx_gru/ and pyx_gru/tasks/,
the two copies agree, and each module imports only the modules of pyx_gru
its row allows. And no module imports a private name of a public module.

Imports are read with ``ast`` (every ``import`` statement, at the top or
inside a function); the compiled modules' ``.pyx`` sources by their
``from ... import``/``cimport`` lines, where a name with no module of its own
(``_gemm``, ``_math``: ``.pxd`` declarations of C headers) is not a module.
"""
import ast
import re
from pathlib import Path

import pytest

import pyx_gru

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "pyx_gru"
NONE = "—"


def module_files(pkg=PKG):
    """{name: path} of every module: ``pyx_gru`` for the package itself,
    ``_cells``, ``tasks`` (a package), ``tasks.synthetic``, ...: the .py and
    .pyx files of pyx_gru/ and its subpackages."""
    out = {}
    for path in sorted(pkg.rglob("*")):
        if path.suffix not in (".py", ".pyx") or not (path.parent / "__init__.py").exists():
            continue
        parts = list(path.relative_to(pkg).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts) or "pyx_gru"] = path
    return out


MODULES = module_files()


def _target(package, level, module):
    """The module parts (relative to pyx_gru) an import statement reads
    from, or None when it is not pyx_gru's."""
    if level:
        base = package[:len(package) - level + 1]
        return base + (module.split(".") if module else [])
    if module and module.split(".")[0] == "pyx_gru":
        return module.split(".")[1:]
    return None


def _name(parts):
    return ".".join(parts) or "pyx_gru"


def _package(name):
    """The package parts (relative to pyx_gru) that module ``name``'s
    relative imports start from."""
    parts = [] if name == "pyx_gru" else name.split(".")
    return parts if MODULES[name].name == "__init__.py" else parts[:-1]


def _statements(name, source, suffix=".py"):
    """(target parts, imported names) for every import statement of pyx_gru
    modules in a module's source."""
    package = _package(name)
    out = []
    if suffix == ".pyx":
        for m in re.finditer(r"^\s*from\s+(\.*)([\w.]*)\s+c?import\s+\(?([\w, ]+)", source, re.M):
            target = _target(package, len(m.group(1)), m.group(2))
            if target is not None:
                out.append((target, [n.strip() for n in m.group(3).split(",") if n.strip()]))
        return out
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            target = _target(package, node.level, node.module)
            if target is not None:
                out.append((target, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                target = _target(package, 0, alias.name)
                if target is not None:
                    out.append((target, []))
    return out


def imports_of(name, source=None, suffix=None):
    """The modules of pyx_gru that module ``name`` imports (its own package
    ``pyx_gru`` when it takes a name defined there, such as ``__version__``).

    ``from X import a, b`` imports the submodules among a, b, and X itself
    when some other name is taken from it (or nothing is: ``import X``)."""
    path = MODULES.get(name)
    source = path.read_text() if source is None else source
    suffix = suffix or (path.suffix if path else ".py")
    found = set()
    for target, names in _statements(name, source, suffix):
        if _name(target) not in MODULES:
            continue  # not a module: a C header's declarations (.pxd)
        subs = {_name(target + [n]) for n in names} & set(MODULES)
        if len(subs) < len(names) or not names:
            found.add(_name(target))
        found |= subs
    found.discard(name)
    return found


# -- the two copies of the map -------------------------------------------------

def _names(cell):
    """The module names of a 'may import' cell."""
    cell = cell.strip()
    if cell == NONE:
        return set()
    return {n.strip().strip("`") for n in cell.split(",")}


def readme_map():
    """{module: (holds, may import)} from README.md's table."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### Module map", 1)[1]
    rows = {}
    for line in section.splitlines():
        if not line.startswith("|"):
            if rows:
                break
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == "module" or set(cells[0]) <= set("-:"):
            continue
        assert len(cells) == 3, line
        module = cells[0].strip("`")
        assert module not in rows, f"README lists {module} twice"
        rows[module] = (cells[1].replace("`", ""), _names(cells[2]))
    return rows


def docstring_map():
    """{module: (holds, may import)} from the list-table of pyx_gru's docstring."""
    doc = pyx_gru.__doc__
    table = doc.split("Module map\n----------", 1)[1].split(".. list-table::", 1)[1]
    cells = []  # the text of each "- " cell, continuation lines joined
    for line in table.splitlines()[2:]:
        item = re.match(r"^     - (.*)$|^   \* - (.*)$", line)
        if item:
            cells.append((item.group(1) or item.group(2)).strip())
        elif line.startswith("       ") and cells:
            cells[-1] += " " + line.strip()
        elif line.strip():
            break
    assert len(cells) % 3 == 0, cells
    rows = {}
    for module, holds, may in zip(cells[3::3], cells[4::3], cells[5::3], strict=True):
        module = module.strip("`")
        assert module not in rows, f"the docstring lists {module} twice"
        rows[module] = (holds.replace("``", ""), _names(may.replace("``", "`")))
    return rows


def test_the_map_lists_every_module():
    listed = readme_map()
    assert set(listed) == set(MODULES), (
        f"modules missing from the map: {sorted(set(MODULES) - set(listed))}; "
        f"rows for no module: {sorted(set(listed) - set(MODULES))}")
    assert {"pyx_gru", "_recurrent", "_blas", "tasks", "tasks._task", "experiments"} <= set(listed)


def test_the_readme_and_the_docstring_hold_the_same_map():
    assert docstring_map() == readme_map()


def test_may_import_names_only_modules():
    for module, (_, allowed) in readme_map().items():
        assert allowed <= set(MODULES), f"{module} may import {sorted(allowed - set(MODULES))}: no such module"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_each_module_imports_only_what_the_map_allows(module):
    row = readme_map().get(module)
    assert row is not None, f"{module} has no row in the module map"
    allowed = row[1]
    extra = imports_of(module) - allowed
    assert not extra, (f"{module} imports {sorted(extra)}, which the module map does not allow "
                       f"(README.md 'Module map' and pyx_gru/__init__.py)")


def test_the_import_reader():
    """The reader behind the check: relative and absolute imports, names of a
    package against its submodules, function-level imports, cimports."""
    source = ("from .train import fit\n"
              "from . import _cells, __version__\n"
              "def f():\n"
              "    from .tasks import make_task\n"
              "import numpy, pyx_gru.layers\n"
              "from pyx_gru import interop\n")
    assert imports_of("losses", source, ".py") == {"train", "_cells", "pyx_gru", "tasks", "layers",
                                                   "interop"}
    assert imports_of("tasks.digits", "from .._validation import x\nfrom ..losses import y\n"
                      "from ._task import Task\nfrom . import synthetic\n", ".py") == {
        "_validation", "losses", "tasks._task", "tasks.synthetic"}
    assert imports_of("tasks", "from ._task import Task\nfrom .. import layers\n", ".py") == {
        "tasks._task", "layers"}
    assert imports_of("_recurrent", "from ._blas cimport gemm\nfrom ._gemm cimport (PYX, pack,\n"
                      "from libc.string cimport memcpy\n", ".pyx") == {"_blas"}
    assert imports_of("_cells") >= {"_recurrent", "_validation"}


# -- private names -------------------------------------------------------------

def _private(name):
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _sub(module, name):
    """The name of ``module``'s attribute ``name`` as a module of the map."""
    return name if module == "pyx_gru" else f"{module}.{name}"


def _public(module):
    return not any(_private(part) for part in module.split(".")) and module in MODULES


def private_names_taken(name, source=None):
    """The private names that module ``name`` takes from public modules of
    pyx_gru: by ``from X import _y`` (``_y`` not a submodule) and by
    attribute, ``X._y`` for a public module bound to a name in the file."""
    path = MODULES[name]
    source = path.read_text() if source is None else source
    if path.suffix == ".pyx":
        return []
    taken = []
    for target, names in _statements(name, source):
        module = _name(target)
        for n in names:
            if _public(module) and _private(n) and _sub(module, n) not in MODULES:
                taken.append(f"{module}.{n}")
    tree = ast.parse(source)
    package = _package(name)
    bound = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            target = _target(package, node.level, node.module)
            for alias in node.names if target is not None else []:
                full = _name(target + [alias.name])
                if full in MODULES:
                    bound[alias.asname or alias.name] = full
        elif isinstance(node, ast.Import):
            for alias in node.names:
                target = _target(package, 0, alias.name)
                if target is not None and alias.asname:
                    bound[alias.asname] = _name(target)
                elif target is not None:
                    bound[alias.name.split(".")[0]] = "pyx_gru"
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in bound):
            module = bound[node.value.id]
            if _public(module) and _private(node.attr) and _sub(module, node.attr) not in MODULES:
                taken.append(f"{module}.{node.attr}")
    return taken


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_takes_a_private_name_of_a_public_module(module):
    assert private_names_taken(module) == []


def test_the_private_name_reader():
    assert private_names_taken("experiments", "from .layers import CELLS, _ALIASES\n"
                               "from . import train\nx = train._read_json\n"
                               "from . import _blas\ny = _blas._anything\n") == [
        "layers._ALIASES", "train._read_json"]
    assert private_names_taken("bench", "import pyx_gru\nfrom pyx_gru import _recurrent, reference\n"
                               "v = pyx_gru.__version__\nw = reference._TWINS\n") == [
        "reference._TWINS"]
