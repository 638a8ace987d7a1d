"""Saving a cell to an ``.npz`` file and loading it back, with no pickle.

The file is a NumPy ``.npz`` archive (a zip of ``.npy`` files) holding

* one array per parameter, named as in ``cell.params`` (``W``, ``U``, ``b``,
  and ``b_hg`` or ``P`` where the cell has them), in the cell's dtype, and
* ``metadata``: a 0-d unicode array holding a JSON object::

      {"format": "pyx_gru.cell", "format_version": 1, "cell": "GRU",
       "input_size": 8, "hidden_size": 16, "dtype": "float32",
       "form": {"reset": "after"}, "pyx_gru_version": "0.1.0"}

  where ``form`` holds the constructor's remaining arguments: ``reset`` for
  a GRU, ``peephole`` for an LSTM, nothing for the RNN and the simplified GRU.

Loading trusts nothing in the file. It reads with ``allow_pickle=False``, and
before reading an array's data it checks the array's ``.npy`` header (dtype,
shape, and the member's size in the zip) against what the metadata implies;
the metadata itself must name one of the four cells, with sizes, a dtype and
a form that the arrays agree with, and nothing else. An object array (a
pickle) is refused from its header, before its data is read, so no payload
can run. Every problem is a ``ValueError`` that names the file and what is
wrong.
"""
import json
import lzma
import os
import pathlib
import secrets
import zipfile
import zlib

import numpy as np

from . import _cells
from ._limits import cell_bytes, check_fits
from ._validation import check_size

__all__ = ["save", "load", "FORMAT", "FORMAT_VERSION"]

FORMAT = "pyx_gru.cell"
FORMAT_VERSION = 1
METADATA = "metadata"
# Metadata is a few hundred characters; anything much longer is not ours.
MAX_METADATA_CHARS = 4096
_CLASSES = {cls.__name__: cls for cls in (_cells.RNN, _cells.SimpleGRU, _cells.GRU, _cells.LSTM)}
# The constructor arguments beyond the sizes, with their allowed values.
_FORMS = {
    "RNN": {},
    "SimpleGRU": {},
    "GRU": {"reset": ("after", "before")},
    "LSTM": {"peephole": (False, True)},
}
# What reading a damaged zip member can raise (bad headers, bad compressed
# data, encrypted or unsupported members, truncation).
_READ_ERRORS = (ValueError, TypeError, SyntaxError, EOFError, OSError, RuntimeError,
                NotImplementedError, zipfile.BadZipFile, zlib.error, lzma.LZMAError)
_METADATA_KEYS = {"format", "format_version", "cell", "input_size", "hidden_size", "dtype",
                  "form", "pyx_gru_version"}


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


def _write_atomically(path, write):
    """Call ``write(f)`` on a new temporary file beside ``path``, then rename
    it to ``path`` (``os.replace``, atomic on POSIX): readers see the old
    file or the whole new one, never a part. On any exception, KeyboardInterrupt
    included, the temporary file is removed and ``path`` is untouched."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    # O_EXCL: never follow or reuse an existing name; mode 0o666 less the umask,
    # as for any new file.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def save(cell, path):
    """Save ``cell`` to ``path``; see ``Cell.save``."""
    if type(cell) not in _CLASSES.values():
        raise TypeError(
            f"only the cells {sorted(_CLASSES)} can be saved, got {type(cell).__name__}"
        )
    path = _as_path(path)
    arrays = dict(cell._checked_params())
    arrays[METADATA] = np.array(json.dumps(_metadata(cell), sort_keys=True))
    _write_atomically(path, lambda f: np.savez(f, allow_pickle=False, **arrays))
    return path


def _shapes(name, D, H, form):
    """The parameter shapes of cell ``name`` with these sizes and form (as
    ``Cell.param_shapes``, without building the cell)."""
    G = len(_CLASSES[name].gates)
    shapes = {"W": (D, G * H), "U": (H, G * H), "b": (G * H,)}
    if form.get("reset") == "after":
        shapes["b_hg"] = (H,)
    if form.get("peephole"):
        shapes["P"] = (3, H)
    return shapes


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

    def metadata(self):
        shape, dtype = self.header(METADATA)
        if shape != () or dtype.kind != "U" or dtype.itemsize > 4 * MAX_METADATA_CHARS:
            raise self.error(
                f"{METADATA!r} must be a 0-d unicode array (a JSON string) of at most "
                f"{MAX_METADATA_CHARS} characters, got {dtype} of shape {shape}"
            )
        text = str(self.array(METADATA, (), dtype)[()])
        try:
            meta = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise self.error(f"metadata is not valid JSON ({exc})") from None
        return self.check_metadata(meta)

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
        if not isinstance(form, dict) or set(form) != set(allowed) or any(
            type(form[k]) is not type(allowed[k][0]) or form[k] not in allowed[k] for k in form
        ):
            raise self.error(
                f"metadata form of a {name} must be "
                f"{ {k: ' or '.join(map(repr, v)) for k, v in allowed.items()} }, got {form!r}"
            )
        return name, D, H, np.dtype(meta["dtype"]), form


def load(path):
    """Load a cell saved by ``Cell.save``.

    Parameters
    ----------
    path : str or os.PathLike
        The file, exactly as named (no ``.npz`` suffix is added).

    Returns
    -------
    cell : RNN, SimpleGRU, GRU or LSTM
        A new cell with the saved sizes, dtype, form and parameters (bitwise).

    Raises
    ------
    ValueError
        If the file is not a pyx_gru cell: not a zip archive, an object array
        (pickle) inside, missing or unexpected arrays, wrong shapes or dtypes,
        metadata that is invalid or disagrees with the arrays, or sizes too
        large for memory. Nothing in the file is executed.
    TypeError
        If ``path`` is not a str or os.PathLike.
    OSError
        If the file cannot be read (FileNotFoundError when it does not exist).
    """
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
    with npz:
        reader = _Reader(path, npz)
        members = npz.zip.namelist()
        if len(members) != len(set(members)) or not all(m.endswith(".npy") for m in members):
            raise ValueError(f"{path}: the archive must hold distinct .npy members only, "
                             f"got {members}")
        if METADATA not in npz.files:
            raise ValueError(f"{path}: no {METADATA!r} array: not a pyx_gru cell file")
        name, D, H, dtype, form = reader.metadata()
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
