"""Saving a cell to an ``.npz`` file and loading it back, with no pickle.

The file is a NumPy ``.npz`` archive (a zip of ``.npy`` files) holding

* one array per parameter, named as in ``cell.params`` (``W``, ``U``, ``b``,
  and ``b_hg`` or ``P`` where the cell has them), in the cell's dtype, and
* ``metadata``: a 0-d unicode array holding a JSON object::

      {"format": "pyx_gru.cell", "format_version": 1, "cell": "GRU",
       "input_size": 8, "hidden_size": 16, "dtype": "float32",
       "form": {"reset": "after"}, "pyx_gru_version": "0.1.0"}

  where ``form`` holds the constructor's remaining arguments: ``reset`` for
  a GRU or an MGU, ``peephole`` for an LSTM, nothing for the RNN and the
  simplified GRU; and ``recurrent_dropout``, ``zoneout`` (and the LSTM's
  ``zoneout_c``) when the cell has them, numbers in [0, 1).

Loading trusts nothing in the file. It reads with ``allow_pickle=False``, and
before reading an array's data it checks the array's ``.npy`` header (dtype,
shape, and the member's size in the zip) against what the metadata implies;
the metadata itself must name one of the cell classes, with sizes, a dtype and
a form that the arrays agree with, and nothing else. An object array (a
pickle) is refused from its header, before its data is read, so no payload
can run. Every problem is a ``ValueError`` that names the file and what is
wrong.
"""
import json
import lzma
import os
import pathlib
import zipfile
import zlib

import numpy as np

from . import _kinds
from ._files import write_atomically
from ._limits import cell_bytes, check_fits
from ._validation import check_size

__all__ = ["save", "load", "save_layer", "save_optimizer", "FORMAT", "FORMAT_VERSION"]

FORMAT = "pyx_gru.cell"
FORMAT_VERSION = 1
METADATA = "metadata"
# The cell classes by name, and the constructor arguments beyond the sizes
# with their allowed values, from the cells' descriptions (pyx_gru._kinds):
# {"GRU": {"reset": ("after", "before")}, "LSTM": {"peephole": (False, True)}, ...}
_CLASSES = {k.cls: k.cell_class for k in _kinds.KINDS.values()}
_FORMS = {name: {} for name in _CLASSES}
for _kind in _kinds.KINDS.values():
    for _key, _value in _kinds.full_form(_kind).items():
        _values = _FORMS[_kind.cls].setdefault(_key, ())
        if _value not in _values:
            _FORMS[_kind.cls][_key] = _values + (_value,)
del _kind, _key, _value, _values
# What reading a damaged zip member can raise (bad headers, bad compressed
# data, encrypted or unsupported members, truncation).
_READ_ERRORS = (ValueError, TypeError, SyntaxError, EOFError, OSError, RuntimeError,
                NotImplementedError, zipfile.BadZipFile, zlib.error, lzma.LZMAError)
_METADATA_KEYS = {"format", "format_version", "cell", "input_size", "hidden_size", "dtype",
                  "form", "pyx_gru_version"}


def _regularisation_problem(name, form):
    """What is wrong with the regularisation keywords of a saved form (None
    if nothing): numbers in [0, 1), zoneout_c for an LSTM only."""
    for key in _kinds.REGULARISATION:
        if key not in form:
            continue
        value = form[key]
        if key == "zoneout_c" and name != "LSTM":
            return f"{key} is an LSTM's only"
        if type(value) not in (int, float) or not 0 <= value < 1:
            return f"{key} must be a number in [0, 1), got {value!r}"
    return None


def _architecture(form):
    # the form less the regularisation keywords
    return {k: v for k, v in form.items() if k not in _kinds.REGULARISATION}


def _as_path(path):
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"path must be a str or an os.PathLike, got {type(path).__name__}")
    return pathlib.Path(os.fsdecode(os.fspath(path)))


def _metadata(cell):
    from . import __version__

    config = dict(cell.config)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "cell": type(cell).__name__,
        "input_size": config.pop("input_size"),
        "hidden_size": config.pop("hidden_size"),
        "dtype": cell.dtype.name,
        "form": config,
        "pyx_gru_version": __version__,
    }


def save(cell, path):
    """Save ``cell`` to ``path``; see ``Cell.save``."""
    if type(cell) not in _CLASSES.values():
        raise TypeError(
            f"only the cells {sorted(_CLASSES)} can be saved, got {type(cell).__name__}"
        )
    path = _as_path(path)
    arrays = dict(cell._checked_params())
    arrays[METADATA] = np.array(json.dumps(_metadata(cell), sort_keys=True))
    write_atomically(path, lambda f: np.savez(f, allow_pickle=False, **arrays))
    return path


def _shapes(name, D, H, form):
    """The parameter shapes of cell ``name`` with these sizes and form (as
    ``Cell.param_shapes``, without building the cell)."""
    return _kinds.of_form(name, form).param_shapes(D, H)


class _Reader:
    """Reads the members of one .npz file, checking each header first."""

    def __init__(self, path, npz):
        self.path, self.npz = path, npz

    def error(self, message):
        return ValueError(f"{self.path}: {message}")

    def header(self, key):
        """(shape, dtype) of member ``key``, read from its header alone, after
        checking that the member's size in the archive agrees with it."""
        info = self.npz.zip.getinfo(key + ".npy")
        try:
            with self.npz.zip.open(info) as fp:
                version = np.lib.format.read_magic(fp)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(fp)
                elif version == (2, 0):
                    shape, _, dtype = np.lib.format.read_array_header_2_0(fp)
                else:
                    raise ValueError(f"unsupported .npy version {version}")
                header_size = fp.tell()
        except _READ_ERRORS as exc:
            raise self.error(f"{key!r} is not a valid .npy array ({exc})") from None
        if dtype.hasobject:
            raise self.error(
                f"{key!r} holds Python objects (a pickle); refusing to load it "
                "(pyx_gru files hold only numbers and a JSON string)"
            )
        if info.file_size != header_size + dtype.itemsize * int(np.prod(shape, dtype=object)):
            raise self.error(f"{key!r} has {info.file_size} bytes, which does not match its "
                             f"header (dtype {dtype}, shape {shape})")
        return shape, dtype

    def array(self, key, shape, dtype):
        """Member ``key``, which must have exactly ``shape`` and ``dtype``
        (in either byte order)."""
        got_shape, got_dtype = self.header(key)
        if got_shape != shape or got_dtype.newbyteorder("=") != dtype:
            raise self.error(
                f"{key!r} must be a {dtype} array of shape {shape}, got {got_dtype} {got_shape}"
            )
        try:
            arr = self.npz[key]
        except _READ_ERRORS as exc:
            raise self.error(f"{key!r} could not be read ({exc})") from None
        return np.array(arr, dtype=dtype, order="C")

    def check_metadata(self, meta):
        """(class name, D, H, dtype, form) from the metadata, every field checked."""
        if not isinstance(meta, dict):
            raise self.error(f"metadata must be a JSON object, got {type(meta).__name__}")
        missing = sorted(_METADATA_KEYS - {"pyx_gru_version"} - set(meta))
        extra = sorted(set(meta) - _METADATA_KEYS)
        if missing or extra:
            raise self.error(f"metadata must have the keys {sorted(_METADATA_KEYS)}; "
                             f"missing {missing}, unexpected {extra}")
        if meta["format"] != FORMAT:
            raise self.error(f"metadata format must be {FORMAT!r}, got {meta['format']!r}")
        version = meta["format_version"]
        if type(version) is not int or version != FORMAT_VERSION:
            raise self.error(f"format_version {version!r} cannot be read: this pyx_gru reads "
                             f"version {FORMAT_VERSION}")
        name = meta["cell"]
        if not isinstance(name, str) or name not in _CLASSES:
            raise self.error(f"metadata cell must be one of {sorted(_CLASSES)}, got {name!r}")
        try:
            D = check_size("input_size", meta["input_size"])
            H = check_size("hidden_size", meta["hidden_size"])
        except (TypeError, ValueError) as exc:
            raise self.error(f"metadata: {exc}") from None
        if meta["dtype"] not in ("float32", "float64"):
            raise self.error(f"metadata dtype must be 'float32' or 'float64', got {meta['dtype']!r}")
        form = meta["form"]
        allowed = _FORMS[name]
        problem = _regularisation_problem(name, form) if isinstance(form, dict) else None
        if problem:
            raise self.error(f"metadata form: {problem}")
        arch = _architecture(form) if isinstance(form, dict) else form
        if not isinstance(arch, dict) or set(arch) != set(allowed) or any(
            type(arch[k]) is not type(allowed[k][0]) or arch[k] not in allowed[k] for k in arch
        ):
            raise self.error(
                f"metadata form of a {name} must be "
                f"{ {k: ' or '.join(map(repr, v)) for k, v in allowed.items()} }, got {form!r}"
            )
        return name, D, H, np.dtype(meta["dtype"]), form


def load(path):
    """Load a cell, layer, model or optimiser saved by pyx_gru.

    Parameters
    ----------
    path : str or os.PathLike
        The file, exactly as named (no ``.npz`` suffix is added).

    Returns
    -------
    object
        What was saved: a cell (``Cell.save``: RNN, SimpleGRU, GRU, MGU or LSTM),
        a ``Model`` (``Model.save``), a layer (``Recurrent``,
        ``Bidirectional``, ``Stack`` or ``Dense``, with their ``save``), or
        an optimiser (``Optimizer.save``), with the saved sizes, dtype,
        form and parameters, bitwise: a loaded model computes bitwise the
        same outputs and gradients as the one saved.

    Raises
    ------
    ValueError
        If the file is not one pyx_gru wrote, naming what is wrong: not a
        zip archive or truncated, an object array (pickle) inside, missing
        or unexpected arrays, wrong shapes or dtypes, metadata that is
        invalid, of a newer format version or disagrees with the arrays,
        or sizes too large for memory. Nothing in the file is executed.
    TypeError
        If ``path`` is not a str or os.PathLike.
    OSError
        If the file cannot be read (FileNotFoundError when it does not exist).
    """
    npz, reader, meta = _open(path)
    path = reader.path
    with npz:
        fmt = meta.get("format")
        if fmt in (MODEL_FORMAT, LAYER_FORMAT):
            return _load_layer(path, npz, reader, meta, fmt)
        if fmt == OPTIMIZER_FORMAT:
            return _load_optimizer(path, npz, reader, meta)
        if fmt == CHECKPOINT_FORMAT:
            raise reader.error("a checkpoint of fit: continue it with fit(..., resume=its "
                               "directory), or read it with pyx_gru.train.read_checkpoint")
        if fmt != FORMAT:
            known = [FORMAT, MODEL_FORMAT, LAYER_FORMAT, OPTIMIZER_FORMAT]
            raise reader.error(f"metadata format must be one of {known}, got {fmt!r}")
        name, D, H, dtype, form = reader.check_metadata(meta)
        shapes = _shapes(name, D, H, form)
        missing = sorted(set(shapes) - set(npz.files))
        extra = sorted(set(npz.files) - set(shapes) - {METADATA})
        if missing or extra:
            raise ValueError(
                f"{path}: a {name} with form {form} has the arrays {sorted(shapes)}; "
                f"missing {missing}, unexpected {extra}"
            )
        G = len(_CLASSES[name].gates)
        check_fits(f"loading {path} ({name} with input_size={D}, hidden_size={H})",
                   cell_bytes(D, H, G, dtype.itemsize) * 2, "this file's cell is too large")
        params = {k: reader.array(k, shape, dtype) for k, shape in shapes.items()}
    cell = _CLASSES[name](D, H, dtype=dtype, seed=0, **form)
    cell.params = params
    return cell


# ---------------------------------------------------------------------------
# Layers, models and optimisers
#
# The same container: one .npz of numeric arrays and a 0-d unicode
# ``metadata`` array holding JSON, {"format": ..., "format_version": 1,
# "pyx_gru_version": ..., "spec": ...}. A layer's or model's spec is its
# structure, every cell described as a cell file's metadata describes it;
# the arrays are its ``params`` (keys as ``model.params`` names them). An
# optimiser's spec is its class, settings and step count, and the arrays
# its state, ``state/<parameter>/<buffer>``. Loading checks the spec, the
# memory it implies, then every array's header, before reading any data.
# ---------------------------------------------------------------------------

MODEL_FORMAT = "pyx_gru.model"
LAYER_FORMAT = "pyx_gru.layer"
OPTIMIZER_FORMAT = "pyx_gru.optimizer"
# A model of many layers has a long spec; still bounded.
MAX_SPEC_CHARS = 1 << 20
MAX_LAYERS = 1024
_CELL_SPEC_KEYS = {"cell", "input_size", "hidden_size", "dtype", "form"}


def _cell_spec(cell):
    if type(cell) not in _CLASSES.values():
        raise TypeError(f"only the cells {sorted(_CLASSES)} can be saved, got {type(cell).__name__}")
    meta = _metadata(cell)
    return {k: meta[k] for k in _CELL_SPEC_KEYS}


def _layer_spec(obj):
    """The JSON description of a layer or model (its structure, no arrays)."""
    from . import layers

    if isinstance(obj, layers.Recurrent):
        return {"type": "Recurrent", "reverse": obj.reverse, "cell": _cell_spec(obj.cell)}
    if isinstance(obj, layers.Bidirectional):
        return {"type": "Bidirectional", "fwd": _cell_spec(obj.fwd.cell),
                "bwd": _cell_spec(obj.bwd.cell)}
    if isinstance(obj, layers.Stack):
        return {"type": "Stack", "layers": [_layer_spec(layer) for layer in obj.layers]}
    if isinstance(obj, layers.Dense):
        return {"type": "Dense", "input_size": obj.input_size, "output_size": obj.output_size,
                "dtype": obj.dtype.name}
    if isinstance(obj, layers.Model):
        return {"type": "Model", "readout": obj.readout, "rnn": _layer_spec(obj.rnn),
                "head": _layer_spec(obj.head), "config": _json_config(obj.config)}
    raise TypeError("save takes a pyx_gru cell, Recurrent, Bidirectional, Stack, Dense or "
                    f"Model, got {type(obj).__name__}")


def _json_config(config):
    """The model's constructor arguments as JSON values (a non-JSON value,
    such as a cell class or a Generator, as its repr): for the record, and
    for ``Model(**model.config)`` after loading."""
    def plain(v):
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        if isinstance(v, (np.integer, np.floating)):
            return v.item()
        if isinstance(v, dict):
            return {str(k): plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return repr(v)
    return {str(k): plain(v) for k, v in config.items()}


def _write_archive(path, fmt, spec, arrays):
    from . import __version__

    meta = {"format": fmt, "format_version": FORMAT_VERSION, "pyx_gru_version": __version__,
            "spec": spec}
    arrays = dict(arrays)
    arrays[METADATA] = np.array(json.dumps(meta, sort_keys=True))
    write_atomically(path, lambda f: np.savez(f, allow_pickle=False, **arrays))
    return path


def save_layer(obj, path):
    """Save a layer or a model; see ``Model.save``."""
    spec = _layer_spec(obj)
    path = _as_path(path)
    fmt = MODEL_FORMAT if spec["type"] == "Model" else LAYER_FORMAT
    return _write_archive(path, fmt, spec, {k: np.ascontiguousarray(v) for k, v in obj.params.items()})


class _SpecError(ValueError):
    pass


def _fields(where, spec, keys):
    if not isinstance(spec, dict):
        raise _SpecError(f"{where} must be a JSON object, got {type(spec).__name__}")
    missing, extra = sorted(set(keys) - set(spec)), sorted(set(spec) - set(keys))
    if missing or extra:
        raise _SpecError(f"{where} must have the keys {sorted(keys)}; missing {missing}, "
                         f"unexpected {extra}")
    return spec


def _dtype_of(where, value):
    if value not in ("float32", "float64"):
        raise _SpecError(f"{where} dtype must be 'float32' or 'float64', got {value!r}")
    return np.dtype(value)


def _size(where, name, value):
    try:
        return check_size(name, value)
    except (TypeError, ValueError) as exc:
        raise _SpecError(f"{where}: {exc}") from None


def _check_cell_spec(where, spec):
    """(class name, D, H, dtype, form) of a cell spec, every field checked."""
    _fields(where, spec, _CELL_SPEC_KEYS)
    name = spec["cell"]
    if not isinstance(name, str) or name not in _CLASSES:
        raise _SpecError(f"{where} cell must be one of {sorted(_CLASSES)}, got {name!r}")
    D = _size(where, "input_size", spec["input_size"])
    H = _size(where, "hidden_size", spec["hidden_size"])
    dtype = _dtype_of(where, spec["dtype"])
    form, allowed = spec["form"], _FORMS[name]
    problem = _regularisation_problem(name, form) if isinstance(form, dict) else None
    if problem:
        raise _SpecError(f"{where} form: {problem}")
    arch = _architecture(form) if isinstance(form, dict) else form
    if not isinstance(arch, dict) or set(arch) != set(allowed) or any(
        type(arch[k]) is not type(allowed[k][0]) or arch[k] not in allowed[k] for k in arch
    ):
        raise _SpecError(f"{where} form of a {name} must be "
                         f"{ {k: ' or '.join(map(repr, v)) for k, v in allowed.items()} }, "
                         f"got {form!r}")
    return name, D, H, dtype, form


def _plan(where, spec, top=True):
    """Check a layer or model spec; returns (bytes of its parameters, a
    function that builds it). Nothing is allocated until the caller has
    checked the bytes against the memory available."""
    from . import layers

    if not isinstance(spec, dict) or "type" not in spec:
        raise _SpecError(f"{where} must be a JSON object with a 'type'")
    kind = spec["type"]
    if kind == "Recurrent":
        _fields(where, spec, {"type", "reverse", "cell"})
        if type(spec["reverse"]) is not bool:
            raise _SpecError(f"{where} reverse must be true or false, got {spec['reverse']!r}")
        name, D, H, dtype, form = _check_cell_spec(f"{where}.cell", spec["cell"])
        nbytes = cell_bytes(D, H, len(_CLASSES[name].gates), dtype.itemsize)
        return nbytes, (D, H * 1, dtype), lambda: layers.Recurrent(
            _CLASSES[name](D, H, dtype=dtype, seed=0, **form), reverse=spec["reverse"])
    if kind == "Bidirectional":
        _fields(where, spec, {"type", "fwd", "bwd"})
        cells = [_check_cell_spec(f"{where}.{d}", spec[d]) for d in ("fwd", "bwd")]
        if cells[0][1:4] != cells[1][1:4]:
            raise _SpecError(f"{where}: fwd and bwd need the same input_size, hidden_size and dtype")
        nbytes = sum(cell_bytes(D, H, len(_CLASSES[n].gates), dt.itemsize) for n, D, H, dt, _ in cells)
        (n0, D, H, dtype, f0), (n1, _, _, _, f1) = cells
        return nbytes, (D, 2 * H, dtype), lambda: layers.Bidirectional(
            _CLASSES[n0](D, H, dtype=dtype, seed=0, **f0), _CLASSES[n1](D, H, dtype=dtype, seed=0, **f1))
    if kind == "Stack":
        _fields(where, spec, {"type", "layers"})
        parts = spec["layers"]
        if not isinstance(parts, list) or not 1 <= len(parts) <= MAX_LAYERS:
            raise _SpecError(f"{where} layers must be a list of 1 to {MAX_LAYERS} layers")
        plans = []
        for i, part in enumerate(parts):
            if not isinstance(part, dict) or part.get("type") not in ("Recurrent", "Bidirectional"):
                raise _SpecError(f"{where}.layers[{i}] must be a Recurrent or Bidirectional layer")
            plans.append(_plan(f"{where}.layers[{i}]", part, top=False))
        for i in range(1, len(plans)):
            if plans[i][1][0] != plans[i - 1][1][1] or plans[i][1][2] != plans[0][1][2]:
                raise _SpecError(f"{where}.layers[{i}] does not fit on layers[{i - 1}] "
                                 "(input size or dtype)")
        shape = (plans[0][1][0], plans[-1][1][1], plans[0][1][2])
        return sum(p[0] for p in plans), shape, lambda: layers.Stack([p[2]() for p in plans])
    if kind == "Dense":
        _fields(where, spec, {"type", "input_size", "output_size", "dtype"})
        D = _size(where, "input_size", spec["input_size"])
        K = _size(where, "output_size", spec["output_size"])
        dtype = _dtype_of(where, spec["dtype"])
        return 2 * (D + 1) * K * 8, (D, K, dtype), lambda: layers.Dense(D, K, dtype=dtype, seed=0)
    if kind == "Model" and top:
        _fields(where, spec, {"type", "readout", "rnn", "head", "config"})
        if spec["readout"] not in ("last", "every"):
            raise _SpecError(f"{where} readout must be 'last' or 'every', got {spec['readout']!r}")
        if not isinstance(spec["rnn"], dict) or spec["rnn"].get("type") != "Stack":
            raise _SpecError(f"{where}.rnn must be a Stack")
        if not isinstance(spec["head"], dict) or spec["head"].get("type") != "Dense":
            raise _SpecError(f"{where}.head must be a Dense layer")
        rnn, head = _plan(f"{where}.rnn", spec["rnn"], False), _plan(f"{where}.head", spec["head"], False)
        if head[1][0] != rnn[1][1] or head[1][2] != rnn[1][2]:
            raise _SpecError(f"{where}.head does not fit on the recurrent layers (size or dtype)")
        config = spec["config"]
        if not isinstance(config, dict):
            raise _SpecError(f"{where}.config must be a JSON object")

        def build():
            model = object.__new__(layers.Model)
            model.rnn, model.head, model.readout, model.grads = rnn[2](), head[2](), spec["readout"], None
            model._config = dict(config)
            return model
        return rnn[0] + head[0], (rnn[1][0], head[1][1], rnn[1][2]), build
    raise _SpecError(f"{where} type must be one of Recurrent, Bidirectional, Stack, Dense"
                     f"{', Model' if top else ''}; got {kind!r}")


def _open(path):
    """(npz, reader, metadata dict) of a pyx_gru file, after the checks every
    format shares; the caller closes npz."""
    path = _as_path(path)
    if not path.exists() and path.with_name(path.name + ".npz").exists():
        raise FileNotFoundError(f"{path} does not exist; did you mean {path}.npz? "
                                "(load uses the name exactly as given)")
    with open(path, "rb") as f:
        magic = f.read(4)
    # A zip archive (an .npz) starts with a local file header, or, if empty,
    # with the end-of-archive record. Anything else (a raw pickle, a .npy) is
    # refused before NumPy looks at it.
    if magic not in (b"PK\x03\x04", b"PK\x05\x06"):
        raise ValueError(f"{path}: not a pyx_gru .npz file (it is not a zip archive)")
    try:
        npz = np.load(path, allow_pickle=False)
    except _READ_ERRORS as exc:
        if isinstance(exc, OSError) and not isinstance(exc, zipfile.BadZipFile):
            raise
        raise ValueError(f"{path}: not a readable .npz file ({exc})") from None
    try:
        reader = _Reader(path, npz)
        members = npz.zip.namelist()
        if len(members) != len(set(members)) or not all(m.endswith(".npy") for m in members):
            raise ValueError(f"{path}: the archive must hold distinct .npy members only, "
                             f"got {members}")
        if METADATA not in npz.files:
            raise ValueError(f"{path}: no {METADATA!r} array: not a pyx_gru file")
        shape, dtype = reader.header(METADATA)
        if shape != () or dtype.kind != "U" or dtype.itemsize > 4 * MAX_SPEC_CHARS:
            raise reader.error(f"{METADATA!r} must be a 0-d unicode array (a JSON string) of "
                               f"at most {MAX_SPEC_CHARS} characters, got {dtype} of shape {shape}")
        text = str(reader.array(METADATA, (), dtype)[()])
        try:
            meta = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise reader.error(f"metadata is not valid JSON ({exc})") from None
        if not isinstance(meta, dict):
            raise reader.error(f"metadata must be a JSON object, got {type(meta).__name__}")
        return npz, reader, meta
    except BaseException:
        npz.close()
        raise


def _check_envelope(reader, meta, fmt):
    _KEYS = {"format", "format_version", "pyx_gru_version", "spec"}
    missing, extra = sorted(_KEYS - {"pyx_gru_version"} - set(meta)), sorted(set(meta) - _KEYS)
    if missing or extra:
        raise reader.error(f"metadata must have the keys {sorted(_KEYS)}; missing {missing}, "
                           f"unexpected {extra}")
    version = meta["format_version"]
    if type(version) is not int or version != FORMAT_VERSION:
        newer = type(version) is int and version > FORMAT_VERSION
        raise reader.error(f"{fmt} format_version {version!r} cannot be read: this pyx_gru reads "
                           f"version {FORMAT_VERSION}" + (" (the file is from a newer pyx_gru)"
                                                          if newer else ""))


def _read_arrays(reader, npz, expected, what):
    """{name: array} for exactly the members ``expected`` ({name: (shape,
    dtype)}), every header checked before any data is read."""
    files = set(npz.files) - {METADATA}
    missing, extra = sorted(set(expected) - files), sorted(files - set(expected))
    if missing or extra:
        raise reader.error(f"{what} has the arrays {sorted(expected)}; missing {missing}, "
                           f"unexpected {extra}")
    for k, (shape, dtype) in expected.items():
        got_shape, got_dtype = reader.header(k)
        if got_shape != shape or got_dtype.newbyteorder("=") != dtype:
            raise reader.error(f"{k!r} must be a {dtype} array of shape {shape}, "
                               f"got {got_dtype} {got_shape}")
    return {k: reader.array(k, shape, dtype) for k, (shape, dtype) in expected.items()}


def _load_layer(path, npz, reader, meta, fmt):
    _check_envelope(reader, meta, fmt)
    try:
        nbytes, _, build = _plan("spec", meta["spec"], top=fmt == MODEL_FORMAT)
    except _SpecError as exc:
        raise reader.error(f"metadata {exc}") from None
    if (meta["spec"]["type"] == "Model") != (fmt == MODEL_FORMAT):
        raise reader.error(f"a {fmt} file cannot hold a {meta['spec']['type']}")
    check_fits(f"loading {path} ({meta['spec']['type']})", 2 * nbytes,
               "this file's model is too large")
    obj = build()
    live = obj.params
    arrays = _read_arrays(reader, npz, {k: (v.shape, v.dtype) for k, v in live.items()},
                          f"this {meta['spec']['type']}")
    for k, v in arrays.items():
        np.copyto(live[k], v)
    return obj


# -- optimisers --------------------------------------------------------------

def save_optimizer(opt, path):
    """Save an optimiser's settings, step count and state; see ``Optimizer.save``."""
    state = opt.state_dict()
    arrays, buffers = {}, {}
    for key, bufs in state["state"].items():
        buffers[key] = {}
        for name, a in bufs.items():
            buffers[key][name] = a is not None
            if a is not None:
                arrays[f"state/{key}/{name}"] = np.ascontiguousarray(a)
    spec = {"optimizer": state["optimizer"], "settings": state["settings"], "t": state["t"],
            "buffers": buffers}
    return _write_archive(_as_path(path), OPTIMIZER_FORMAT, spec, arrays)


def _load_optimizer(path, npz, reader, meta):
    from . import optim

    _check_envelope(reader, meta, OPTIMIZER_FORMAT)
    spec = meta["spec"]
    try:
        _fields("spec", spec, {"optimizer", "settings", "t", "buffers"})
        if not isinstance(spec["buffers"], dict) or not all(
                isinstance(b, dict) and all(type(v) is bool for v in b.values())
                for b in spec["buffers"].values()):
            raise _SpecError("spec buffers must map each parameter to {buffer: true or false}")
    except _SpecError as exc:
        raise reader.error(f"metadata {exc}") from None
    expected = {}
    for key, bufs in spec["buffers"].items():
        for name, present in bufs.items():
            if present:
                member = f"state/{key}/{name}"
                if member not in npz.files:
                    raise reader.error(f"the optimiser state lists {member!r}, which is missing")
                expected[member] = reader.header(member)
    for member, (_shape, dtype) in expected.items():
        if dtype.newbyteorder("=") not in (np.float32, np.float64):
            raise reader.error(f"{member!r} must hold float32 or float64, got {dtype}")
    nbytes = sum(int(np.prod(s, dtype=object)) * d.itemsize for s, d in expected.values())
    check_fits(f"loading {path} (optimiser state)", nbytes, "this file's state is too large")
    arrays = _read_arrays(reader, npz, {k: (s, d.newbyteorder("=")) for k, (s, d) in expected.items()},
                          "this optimiser's state")
    state = {key: {name: arrays[f"state/{key}/{name}"] if present else None
                   for name, present in bufs.items()}
             for key, bufs in spec["buffers"].items()}
    try:
        return optim.Optimizer.from_state_dict({"optimizer": spec["optimizer"],
                                                "settings": spec["settings"], "t": spec["t"],
                                                "state": state})
    except (TypeError, ValueError) as exc:
        raise reader.error(f"metadata: {exc}") from None


# -- checkpoints of fit -----------------------------------------------------------
#
# One file, the run's whole state at a point between two mini-batches: the
# model's parameters ("model/<name>"), the best ones so far ("best/<name>",
# when there are), the optimiser's state ("optim/<name>/<buffer>"), and in
# the metadata the model's structure, the optimiser's settings and step
# count, and fit's own record (position, random generators, history, ...),
# which fit checks and interprets.

CHECKPOINT_FORMAT = "pyx_gru.checkpoint"


def save_checkpoint(path, model, opt, best, record):
    """Write a checkpoint of ``fit`` atomically (see ``train.fit``)."""
    state = opt.state_dict()
    arrays = {f"model/{k}": np.ascontiguousarray(v) for k, v in model.params.items()}
    if best is not None:
        arrays.update((f"best/{k}", np.ascontiguousarray(v)) for k, v in best.items())
    buffers = {}
    for key, bufs in state["state"].items():
        buffers[key] = {name: a is not None for name, a in bufs.items()}
        arrays.update((f"optim/{key}/{name}", np.ascontiguousarray(a))
                      for name, a in bufs.items() if a is not None)
    spec = {"model": _layer_spec(model), "has_best": best is not None,
            "optimizer": {"optimizer": state["optimizer"], "settings": state["settings"],
                          "t": state["t"], "buffers": buffers},
            "fit": record}
    return _write_archive(_as_path(path), CHECKPOINT_FORMAT, spec, arrays)


def read_checkpoint(path):
    """A checkpoint of ``fit``: {"model": Model, "best": dict or None,
    "optimizer": Optimizer, "fit": dict}, every part checked as ``load``
    checks its own files."""
    from . import optim

    npz, reader, meta = _open(path)
    path = reader.path
    with npz:
        if meta.get("format") != CHECKPOINT_FORMAT:
            raise reader.error(f"not a checkpoint of fit (format {meta.get('format')!r})")
        _check_envelope(reader, meta, CHECKPOINT_FORMAT)
        spec = meta["spec"]
        try:
            _fields("spec", spec, {"model", "has_best", "optimizer", "fit"})
            nbytes, _, build = _plan("spec.model", spec["model"], top=True)
            if spec["model"]["type"] != "Model" or type(spec["has_best"]) is not bool:
                raise _SpecError("spec must describe a Model, with has_best true or false")
            ospec = _fields("spec.optimizer", spec["optimizer"], {"optimizer", "settings", "t", "buffers"})
            if not isinstance(ospec["buffers"], dict) or not all(
                    isinstance(b, dict) and all(type(v) is bool for v in b.values())
                    for b in ospec["buffers"].values()):
                raise _SpecError("spec.optimizer buffers must map each parameter to "
                                 "{buffer: true or false}")
            if not isinstance(spec["fit"], dict):
                raise _SpecError("spec.fit must be a JSON object")
        except _SpecError as exc:
            raise reader.error(f"metadata {exc}") from None
        check_fits(f"loading {path} (checkpoint)", 4 * nbytes, "this checkpoint is too large")
        model = build()
        live = model.params
        expected = {f"model/{k}": (v.shape, v.dtype) for k, v in live.items()}
        if spec["has_best"]:
            expected.update((f"best/{k}", (v.shape, v.dtype)) for k, v in live.items())
        for key, bufs in ospec["buffers"].items():
            if key not in live:
                raise reader.error(f"the optimiser state names {key!r}, which the model does not have")
            expected.update((f"optim/{key}/{name}", (live[key].shape, live[key].dtype))
                            for name, present in bufs.items() if present)
        arrays = _read_arrays(reader, npz, expected, "this checkpoint")
    for k, v in live.items():
        np.copyto(v, arrays[f"model/{k}"])
    best = {k: arrays[f"best/{k}"] for k in live} if spec["has_best"] else None
    state = {key: {name: arrays[f"optim/{key}/{name}"] if present else None
                   for name, present in bufs.items()}
             for key, bufs in ospec["buffers"].items()}
    try:
        opt = optim.Optimizer.from_state_dict({**{k: ospec[k] for k in ("optimizer", "settings", "t")},
                                               "state": state})
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: metadata optimiser: {exc}") from None
    return {"model": model, "best": best, "optimizer": opt, "fit": spec["fit"]}
