"""JSON text in and out, for the results that ``train.History`` and
``experiments.Comparison`` write and read back."""
import json
import os

from ._files import write_text


def json_text(obj, path=None):
    """``obj`` as indented JSON text, also written to ``path`` when given
    (atomically: ``_files.write_text``)."""
    text = json.dumps(obj, indent=1)
    if path is not None:
        write_text(path, text)
    return text


def read_json(text_or_path):
    """The object in JSON text, or in the file at that path (a path-like
    object, or text that does not start with ``{`` or ``[``)."""
    text = os.fspath(text_or_path) if isinstance(text_or_path, os.PathLike) else str(text_or_path)
    if isinstance(text_or_path, os.PathLike) or not text.lstrip().startswith(("{", "[")):
        with open(text) as f:
            text = f.read()
    return json.loads(text)
