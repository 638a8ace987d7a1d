"""pyx_gru._files: every file pyx_gru writes is written atomically, in one
place. A failed write leaves the old file and no temporary file; no other
module of the package (or script of docs/results) opens a file for writing,
renames one or saves a figure or an array to a path itself."""
import ast
import os
import pathlib

import numpy as np
import pytest

from pyx_gru import _files

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("exc", [OSError("disk full"), KeyboardInterrupt()])
def test_a_failed_write_leaves_the_old_file_and_nothing_else(tmp_path, exc):
    target = tmp_path / "results.json"
    _files.write_text(str(target), "old")

    def half_then_fail(f):
        f.write(b"half of the new")
        raise exc

    with pytest.raises(type(exc)):
        _files.write_atomically(target, half_then_fail)
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["results.json"]


def test_a_write_replaces_the_file_with_the_usual_mode(tmp_path):
    target = tmp_path / "a.npz"
    _files.write_atomically(target, lambda f: np.savez(f, x=np.arange(3)))
    _files.write_atomically(target, lambda f: np.savez(f, x=np.arange(4)))
    with np.load(target, allow_pickle=False) as data:
        np.testing.assert_array_equal(data["x"], np.arange(4))
    assert os.listdir(tmp_path) == ["a.npz"]
    umask = os.umask(0o022)
    os.umask(umask)
    assert os.stat(target).st_mode & 0o777 == 0o666 & ~umask


def test_a_missing_directory_is_named(tmp_path):
    target = tmp_path / "no such dir" / "x.txt"
    with pytest.raises(FileNotFoundError, match=r"cannot write '.*no such dir/x\.txt'") as info:
        _files.write_text(target, "x")
    assert ".tmp" not in str(info.value)


# What writes a file, other than through _files: open() for writing, the
# Path and os calls that write or rename, and the savers given a path (a
# saver given the file object `f` of write_atomically's callback is fine).
WRITE_MODES = set("wax+")
PATH_WRITERS = {"write_text", "write_bytes", "replace", "rename", "mkstemp", "NamedTemporaryFile"}
SAVERS = {"savefig", "save", "savez", "savez_compressed", "dump", "tofile"}


def _writes(tree):
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name == "open" and not isinstance(func, ast.Attribute) or name == "fdopen":
            mode = node.args[1] if len(node.args) > 1 else next(
                (k.value for k in node.keywords if k.arg == "mode"), None)
            if isinstance(mode, ast.Constant) and WRITE_MODES & set(str(mode.value)):
                yield node.lineno, f"{name}(..., {mode.value!r})"
        elif name in PATH_WRITERS and isinstance(func, ast.Attribute):
            owner = getattr(func.value, "id", None)
            # str.replace is not a file operation; _files' own functions are the way
            if owner == "_files" or name in ("replace", "rename") and owner != "os":
                continue
            yield node.lineno, name
        elif name in SAVERS and isinstance(func, ast.Attribute) and node.args:
            owner = getattr(func.value, "id", None)
            # NumPy's savers and json.dump; a cell's or a result's own .save
            # writes through _files
            if name in ("save", "savez", "savez_compressed") and owner not in ("np", "numpy"):
                continue
            if name == "dump" and owner != "json":
                continue
            first = node.args[0]
            if name == "dump":  # json.dump(obj, fp): the file is the second argument
                first = node.args[1] if len(node.args) > 1 else None
            if not (isinstance(first, ast.Name) and first.id == "f"):
                yield node.lineno, name


def _sources():
    for path in sorted((ROOT / "pyx_gru").rglob("*.py")):
        if path.name != "_files.py":
            yield path
    yield from sorted((ROOT / "docs" / "results").glob("*.py"))


def test_every_file_is_written_through_one_place():
    found = []
    for path in _sources():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found += [f"{path.relative_to(ROOT)}:{line}: {what}" for line, what in _writes(tree)]
    assert not found, "written outside pyx_gru._files:\n" + "\n".join(found)


def test_the_scan_finds_a_direct_write():
    tree = ast.parse("with open(p, 'w') as g:\n    g.write(t)\n"
                     "os.replace(a, b)\nfig.savefig(path)\nnp.savez(path, x=x)\n"
                     "json.dump(obj, g)\nq.write_text('x')\n"
                     "fig.savefig(f, format='png')\nname.replace('a', 'b')\nopen(p)\n"
                     "model.save(path)\n_files.write_text(p, t)\n")
    assert [what for _, what in sorted(_writes(tree))] == [
        "open(..., 'w')", "replace", "savefig", "savez", "dump", "write_text"]
