"""JSON text in and out, for the results that ``train.History`` and
``experiments.Comparison`` write and read back."""
import json


def json_text(obj, path=None):
    """``obj`` as indented JSON text, also written to ``path`` when given."""
    text = json.dumps(obj, indent=1)
    if path is not None:
        with open(path, "w") as f:
            f.write(text)
    return text


def read_json(text_or_path):
    """The object in JSON text, or in the file at that path (text that does
    not start with ``{`` is taken for a path)."""
    text = str(text_or_path)
    if not text.lstrip().startswith("{"):
        with open(text) as f:
            text = f.read()
    return json.loads(text)
