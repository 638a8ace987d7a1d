"""Every public name's docstring passes numpydoc's validator (issue 21), as
scikit-learn's ``sklearn/tests/test_docstrings.py`` checks its own.

The public names are found at run time, not listed here, so that moving a
function between modules moves its check with it:

* the modules: ``pyx_gru`` and every submodule whose dotted name has no
  part starting with ``_``;
* in each, the names of its ``__all__``, or, without one, the public names
  defined in it (whose ``__module__`` is that module);
* of those, the functions and classes defined in pyx_gru (constants have no
  docstring of their own to check), each once, under the name of the public
  module that defines it (``pyx_gru.layers.Model``, not ``pyx_gru.Model``);
* of each class, the public methods, classmethods, staticmethods and
  properties defined in pyx_gru (inherited ones once, on the class that
  defines them).

Compiled functions are not filtered out: a public name whose ``__module__``
is a compiled module would be checked like any other, and it needs an
introspectable signature (Cython's ``binding=True``) for the parameter
checks, which ``test_no_public_compiled_function_lacks_a_signature``
demands. Today no compiled function is public: the kernels live in the
private ``pyx_gru._recurrent`` and are reached through the cells.

Module docstrings are not validated: they are the pages' narrative (sections
such as "What is timed"), not numpydoc API docstrings.

Every numpydoc check is run except those in ``IGNORED`` (and, for
properties, ``IGNORED_FOR_PROPERTIES``), each with its reason.
"""
import importlib
import inspect
import pkgutil
import sys
import types

import pytest

numpydoc_validate = pytest.importorskip("numpydoc.validate")
from numpydoc.docscrape import get_doc_object  # noqa: E402  (numpydoc is optional)

import pyx_gru  # noqa: E402

# The checks left out, each with why. The rest of numpydoc's checks run,
# among them GL08 (no docstring), GL02 (closing quotes on a line of their
# own), GL07 (section order), SS01/SS03 (a summary, ending with a period),
# SS05 (an infinitive verb, not "Returns"), PR01/PR02 (every parameter
# documented, no unknown one), PR03 (their order), PR04/PR07 (a type and a
# description for each), PR08/PR09/PR10 (descriptions' capital and period,
# "name : type"), RT01 (a Returns section when something is returned), RT02
# (a single return value given by its type), RT03 (each return value
# described) and YD01 (a Yields section for generators).
IGNORED = {
    "ES01": "an extended summary is not needed where the summary says it all",
    "EX01": "examples live in the tutorials and the API page's prose, not in every docstring",
    "SA01": "cross-references are made in the prose where they help, not in a See Also section",
    "SS06": "a summary sentence may wrap onto a second line (house style, 100 columns)",
}
# A property's docstring opens with the value's type, "int: D, the input size.",
# the form numpydoc and autodoc show for attributes.
IGNORED_FOR_PROPERTIES = {
    "SS02": 'the summary opens with the type ("int: ..."), not a capital',
}
# Checks that must stay on: the ones issue 21 asks for.
REQUIRED = {"GL07", "GL08", "SS01", "SS03", "PR01", "PR02", "PR04", "PR07", "PR08", "RT01",
            "RT03", "YD01"}


def _is_public_module(name):
    return not any(part.startswith("_") for part in name.split("."))


def public_modules():
    """list of str: ``pyx_gru`` and its public submodules, by dotted name."""
    names = ["pyx_gru"]
    for info in pkgutil.walk_packages(pyx_gru.__path__, "pyx_gru."):
        if _is_public_module(info.name):
            names.append(info.name)
    return names


def _defined_in_pyx_gru(obj):
    module = getattr(obj, "__module__", None) or ""
    return module == "pyx_gru" or module.startswith("pyx_gru.")


def _public_names(module):
    if hasattr(module, "__all__"):
        return list(module.__all__)
    return [name for name, obj in vars(module).items()
            if not name.startswith("_") and getattr(obj, "__module__", None) == module.__name__]


def _members(cls):
    """(name, defining class, attribute) of the public methods and properties
    of ``cls`` defined in pyx_gru."""
    for name in dir(cls):
        if name.startswith("_"):
            continue
        owner = next(k for k in cls.__mro__ if name in vars(k))
        if not _defined_in_pyx_gru(owner):
            continue  # from object, tuple, ...
        attr = vars(owner)[name]
        if isinstance(attr, (property, classmethod, staticmethod, types.FunctionType)):
            yield name, owner, attr


def public_objects():
    """list of (path, object): every public function, class, method and
    property of pyx_gru, each once, by the dotted name it is checked under."""
    found = {}  # id(object) -> (path, object), in order of discovery
    for module_name in public_modules():
        module = importlib.import_module(module_name)
        for name in _public_names(module):
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or callable(obj)) or not _defined_in_pyx_gru(obj):
                continue
            home = obj.__module__
            at_home = _is_public_module(home) and getattr(sys.modules[home], name, None) is obj
            found.setdefault(id(obj), (f"{home if at_home else module_name}.{name}", obj))
    objects = dict(found)
    for path, obj in list(found.values()):
        if not inspect.isclass(obj):
            continue
        for name, owner, attr in _members(obj):
            key = id(attr.fget if isinstance(attr, property) else getattr(attr, "__func__", attr))
            owner_path = found.get(id(owner), (path, None))[0]
            objects.setdefault(key, (f"{owner_path}.{name}", getattr(owner, name)
                                     if not isinstance(attr, property) else attr))
    return sorted(objects.values(), key=lambda item: item[0])


class _Validator(numpydoc_validate.Validator):
    """numpydoc's Validator, given the object itself; it also copes with a
    property made by ``property(lambda self: ..., doc=...)``, whose source
    has no ``def`` line (numpydoc 1.11 raises StopIteration there)."""

    def __init__(self, obj_name):
        super().__init__(get_doc_object(obj_name))

    @property
    def source_file_def_line(self):
        try:
            return super().source_file_def_line
        except StopIteration:
            return None


def docstring_errors(obj):
    """list of str: numpydoc's findings on ``obj``'s docstring, less the
    ignored checks, each as "CODE: message"."""
    ignored = set(IGNORED)
    if isinstance(obj, property):
        ignored |= set(IGNORED_FOR_PROPERTIES)
    result = numpydoc_validate.validate(obj, validator_cls=_Validator)
    return [f"{code}: {message}" for code, message in result["errors"] if code not in ignored]


OBJECTS = public_objects()


@pytest.mark.parametrize("path, obj", OBJECTS, ids=[path for path, _ in OBJECTS])
def test_docstring(path, obj):
    errors = docstring_errors(obj)
    assert not errors, f"{path}:\n  " + "\n  ".join(errors)


def test_the_required_checks_are_on():
    assert REQUIRED <= set(numpydoc_validate.ERROR_MSGS)
    assert not REQUIRED & (set(IGNORED) | set(IGNORED_FOR_PROPERTIES))


def test_every_kind_of_public_name_is_found():
    paths = {path for path, _ in OBJECTS}
    # a re-exported class, under its home; a method inherited by every cell,
    # on the class defining it; a property made with property(lambda ...);
    # a function of a module without __all__; a class of a subpackage
    for path in ("pyx_gru.layers.Model", "pyx_gru.Cell.forward", "pyx_gru.Cell.input_size",
                 "pyx_gru.reference.gru_after_step_forward", "pyx_gru.bench.roofline",
                 "pyx_gru.tasks.Task", "pyx_gru.tasks.Task.split"):
        assert path in paths, path
    assert "pyx_gru.Model" not in paths and "pyx_gru.RNN.forward" not in paths
    assert not any(part.startswith("_") for path in paths for part in path.split("."))
    assert len(OBJECTS) > 200


def test_every_module_with_an_api_page_is_checked():
    from pathlib import Path
    import re

    index = Path(__file__).resolve().parent.parent / "docs" / "api" / "index.rst"
    block = index.read_text(encoding="utf-8").split(".. autosummary::", 1)[1]
    pages = re.findall(r"^ {3}(pyx_gru[\w.]*)\s*$", block, flags=re.M)
    assert pages and set(pages) <= set(public_modules())


def test_no_public_compiled_function_lacks_a_signature():
    for _path, obj in OBJECTS:
        if callable(obj) and not isinstance(obj, (type, types.FunctionType, types.MethodType)):
            inspect.signature(obj)  # raises for a compiled function without binding=True


def test_a_missing_parameter_is_found():
    def scaled(x, scale):
        """Scale an array.

        Parameters
        ----------
        x : ndarray, shape (T, B, D)
            The inputs.

        Returns
        -------
        ndarray, shape (T, B, D)
            ``scale * x``.
        """
        return scale * x

    assert any(e.startswith("PR01:") and "scale" in e for e in docstring_errors(scaled))
