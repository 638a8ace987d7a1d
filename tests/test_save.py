"""cell.save(path) and pyx_gru.load(path): a bitwise round trip through an
.npz file with JSON metadata; anything else in a file is a clear ValueError,
and nothing in it ever runs; an interrupted save leaves the old file."""
import io
import json
import os
import pathlib
import pickle
import zipfile

import numpy as np
import pytest

import pyx_gru as pg
from pyx_gru import _saving
from helpers import CONFIGS, make_cell, parts, random_problem


def bits(a):
    """An array's bytes, so that NaN payloads and -0.0 compare too."""
    return np.ascontiguousarray(a).view(np.uint8)


def metadata_of(cell):
    return json.loads(str(np.load(save_to(cell, "tmp.npz"))["metadata"]))


def save_to(cell, name):
    return cell.save(pathlib.Path(os.getcwd()) / name)


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def write_npz(path, arrays, meta=None, **meta_changes):
    """An .npz as np.savez writes it (pickles included), with ``meta`` (a dict,
    dumped to JSON, or any array) as its metadata."""
    arrays = dict(arrays)
    if meta is not None:
        if isinstance(meta, dict):
            meta = {**meta, **meta_changes}
            meta = np.array(json.dumps(meta))
        arrays["metadata"] = meta
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def good_file(config="gru_after", dtype=np.float64, D=3, H=4):
    cell = make_cell(config, D, H, dtype)
    return cell, dict(cell.params), metadata_of(cell)


# -- the round trip -------------------------------------------------------------

def test_round_trip_is_bitwise(config, dtype):
    cell = make_cell(config, 3, 5, dtype)
    cell.params["b"][0] = np.nan
    cell.params["b"][1] = -0.0
    cell.params["W"][0, 0] = -np.inf
    path = cell.save("cell.npz")
    new = pg.load(path)
    assert type(new) is type(cell) and new.config == cell.config and new.dtype == cell.dtype
    assert new.params.keys() == cell.params.keys()
    for k in cell.params:
        np.testing.assert_array_equal(bits(new.params[k]), bits(cell.params[k]))
        assert not np.shares_memory(new.params[k], cell.params[k])
    cell.params["b"][0] = 0.5
    cell.params["W"][0, 0] = 0.5
    new.params["b"][0] = 0.5
    new.params["W"][0, 0] = 0.5
    x, state0, dy, dstate = random_problem(cell, 6, 2)
    a = cell.forward(x, state0, [6, 3])
    b = new.forward(x, state0, [6, 3])
    for u, v in zip([a[0], *parts(a[1])], [b[0], *parts(b[1])], strict=True):
        np.testing.assert_array_equal(bits(u), bits(v))
    ga, gb = cell.backward(a[2], dy, dstate)[2], new.backward(b[2], dy, dstate)[2]
    for k in ga:
        np.testing.assert_array_equal(bits(ga[k]), bits(gb[k]))


def test_metadata_holds_type_sizes_dtype_form_and_version():
    meta = metadata_of(make_cell("lstm_peephole", 3, 4, np.float32))
    assert meta == {
        "format": "pyx_gru.cell", "format_version": 1, "cell": "LSTM", "input_size": 3,
        "hidden_size": 4, "dtype": "float32", "form": {"peephole": True},
        "pyx_gru_version": pg.__version__,
    }
    assert metadata_of(make_cell("gru_before"))["form"] == {"reset": "before"}
    assert metadata_of(make_cell("simple_gru"))["form"] == {}


def test_the_file_is_an_npz_that_numpy_reads_without_pickle():
    cell = make_cell("gru_after")
    with np.load(cell.save("c.npz"), allow_pickle=False) as npz:
        assert sorted(npz.files) == ["U", "W", "b", "b_hg", "metadata"]
        for k in cell.params:
            np.testing.assert_array_equal(npz[k], cell.params[k])


def test_paths_str_pathlike_bytes_and_no_suffix_added(tmp_path):
    cell = make_cell("rnn")

    class MyPath:
        def __fspath__(self):
            return str(tmp_path / "custom")

    for target, written in [("plain", "plain"), (tmp_path / "p.npz", "p.npz"),
                            (MyPath(), "custom"), (b"bytes.npz", "bytes.npz")]:
        out = cell.save(target)
        assert isinstance(out, pathlib.Path) and out.resolve() == (tmp_path / written).resolve()
        assert (tmp_path / written).exists() and not (tmp_path / (written + ".npz")).exists()
        np.testing.assert_array_equal(pg.load(target).params["W"], cell.params["W"])
    # numpy.savez adds .npz; load names the file it would have meant
    np.savez("numpy_style", **cell.params)
    with pytest.raises(FileNotFoundError, match=r"did you mean numpy_style\.npz"):
        pg.load("numpy_style")
    for bad in (None, 3, ["a"]):
        with pytest.raises(TypeError, match="path must be a str or an os.PathLike"):
            cell.save(bad)
        with pytest.raises(TypeError, match="path must be a str or an os.PathLike"):
            pg.load(bad)


def test_compressed_and_byte_swapped_files_load():
    cell, params, meta = good_file(dtype=np.float32)
    swapped = {k: v.astype(v.dtype.newbyteorder(">")) for k, v in params.items()}
    np.savez_compressed("z.npz", metadata=np.array(json.dumps(meta)), **swapped)
    new = pg.load("z.npz")
    for k in params:
        np.testing.assert_array_equal(bits(new.params[k]), bits(params[k]))
        assert new.params[k].dtype == np.float32


def test_shapes_helper_agrees_with_the_cells():
    for cls, kw in CONFIGS.values():
        for D, H in [(1, 1), (3, 5), (7, 2)]:
            cell = cls(D, H, **kw)
            assert _saving._shapes(type(cell).__name__, D, H, kw) == cell.param_shapes


def test_only_sound_builtin_cells_are_saved():
    class Mine(pg.GRU):
        pass

    with pytest.raises(TypeError, match="only the cells"):
        Mine(2, 3).save("mine.npz")
    cell = make_cell("rnn")
    cell.params["W"] = np.zeros((5, 5))
    with pytest.raises(ValueError, match=r"params\['W'\] must be"):
        cell.save("bad.npz")
    assert not os.listdir(".")


# -- pickles never run -------------------------------------------------------------

class Payload:
    """Unpickling this creates the file ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("where", ["W", "metadata", "extra"])
def test_a_pickle_inside_the_npz_never_runs(where, tmp_path):
    marker = tmp_path / "PWNED"
    _, params, meta = good_file()
    bomb = np.array([Payload(marker)], dtype=object)
    arrays = dict(params, metadata=np.array(json.dumps(meta)))
    arrays[where] = bomb
    write_npz("evil.npz", arrays)
    with pytest.raises(ValueError, match="holds Python objects|unexpected"):
        pg.load("evil.npz")
    assert not marker.exists()
    # The payload is live: numpy with allow_pickle=True would have run it.
    with np.load("evil.npz", allow_pickle=True) as npz:
        npz[where]
    assert marker.exists()


@pytest.mark.parametrize("kind", ["pickle", "npy"])
def test_a_pickle_file_never_runs(kind, tmp_path):
    marker = tmp_path / "PWNED"
    if kind == "pickle":
        pathlib.Path("evil.npz").write_bytes(pickle.dumps(Payload(marker)))
    else:
        with open("evil.npz", "wb") as f:
            np.save(f, np.array([Payload(marker)], dtype=object))
    with pytest.raises(ValueError, match="not a zip archive"):
        pg.load("evil.npz")
    assert not marker.exists()
    if kind == "pickle":
        with open("evil.npz", "rb") as f:
            pickle.load(f)
        assert marker.exists()


# -- files that lie or are broken ------------------------------------------------------

def lie(path, config="gru_after", **changes):
    """The file of a ``config`` cell (3 -> 4) with ``changes`` to its metadata."""
    _, params, meta = good_file(config)
    return write_npz(path, params, meta, **changes)


@pytest.mark.parametrize("changes,match", [
    ({"hidden_size": 5}, r"'W' must be a float64 array of shape \(3, 15\), got float64 \(3, 12\)"),
    ({"input_size": 2}, r"'W' must be a float64 array of shape \(2, 12\)"),
    ({"cell": "LSTM", "form": {"peephole": False}}, r"missing \[\], unexpected \['b_hg'\]"),
    ({"config": "simple_gru", "cell": "RNN"}, r"'W' must be a float64 array of shape \(3, 4\), got float64 \(3, 8\)"),
    ({"config": "lstm", "cell": "SimpleGRU", "form": {}}, r"'W' must be a float64 array of shape \(3, 8\)"),
    ({"config": "lstm", "form": {"peephole": True}}, r"missing \['P'\], unexpected \[\]"),
    ({"cell": "RNN", "form": {}}, r"missing \[\], unexpected \['b_hg'\]"),
    ({"form": {"reset": "before"}}, r"missing \[\], unexpected \['b_hg'\]"),
    ({"dtype": "float32"}, r"must be a float32 array of shape \(3, 12\), got float64"),
    ({"dtype": "float16"}, "dtype must be 'float32' or 'float64'"),
    ({"cell": "os.system"}, "cell must be one of"),
    ({"cell": ["GRU"]}, "cell must be one of"),
    ({"format": "other"}, r"format must be one of \['pyx_gru.cell', 'pyx_gru.model'"),
    ({"format_version": 2}, "format_version 2 cannot be read"),
    ({"format_version": True}, "format_version True cannot be read"),
    ({"input_size": "3"}, "input_size must be an int"),
    ({"hidden_size": 4.0}, "hidden_size must be an int"),
    ({"hidden_size": -4}, "hidden_size must be >= 1"),
    ({"hidden_size": 2**40}, r"hidden_size must be <= 2147483647"),
    ({"form": {"reset": "middle"}}, "form of a GRU must be"),
    ({"form": {"reset": "after", "peephole": True}}, "form of a GRU must be"),
    ({"form": []}, "form of a GRU must be"),
    ({"shapes": [1]}, r"unexpected \['shapes'\]"),
])
def test_metadata_that_lies_is_refused(changes, match):
    lie("lie.npz", **changes)
    with pytest.raises(ValueError, match=match):
        pg.load("lie.npz")


def test_lies_about_huge_sizes_fail_before_allocating():
    """Metadata and a header claiming a huge U, with a tiny member: refused
    from the headers and the member sizes, before reading any data."""
    _, params, meta = good_file()
    H = 10**6
    write_npz("huge.npz", params, meta, hidden_size=H)
    with pytest.raises(ValueError, match=r"hidden_size=1000000\) needs about .* GiB"):
        pg.load("huge.npz")
    write_npz("large.npz", params, meta, hidden_size=1000)
    with pytest.raises(ValueError, match=r"'W' must be a float64 array of shape \(3, 3000\)"):
        pg.load("large.npz")
    # A header of U claiming (H, 3H) over a few bytes of data, metadata agreeing.
    header = {"descr": "<f8", "fortran_order": False, "shape": (H, 3 * H)}
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    with zipfile.ZipFile("forged.npz", "w") as z:
        for k, v in params.items():
            z.writestr(k + ".npy", buf.getvalue() + v.tobytes() if k == "U" else _npy_bytes(v))
        z.writestr("metadata.npy", _npy_bytes(np.array(json.dumps({**meta, "hidden_size": H}))))
    with pytest.raises(ValueError, match="needs about .* GiB"):
        pg.load("forged.npz")
    with zipfile.ZipFile("forged2.npz", "w") as z:
        for k, v in params.items():
            z.writestr(k + ".npy", buf.getvalue() + v.tobytes() if k == "U" else _npy_bytes(v))
        z.writestr("metadata.npy", _npy_bytes(np.array(json.dumps(meta))))
    with pytest.raises(ValueError, match=r"'U' has \d+ bytes, which does not match its header"):
        pg.load("forged2.npz")


def _npy_bytes(a):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, a, allow_pickle=False)
    return buf.getvalue()


@pytest.mark.parametrize("edit,match", [
    (lambda p: p.pop("U"), r"missing \['U'\]"),
    (lambda p: p.update(extra=np.zeros(3)), r"unexpected \['extra'\]"),
    (lambda p: p.update(W=np.zeros((3, 11))), r"'W' must be a float64 array of shape \(3, 12\)"),
    (lambda p: p.update(W=np.zeros((3, 12), dtype=np.float32)), r"'W' must be a float64 array"),
    (lambda p: p.update(b=np.zeros(12, dtype=np.int64)), r"'b' must be a float64 array"),
    (lambda p: p.update(b=np.zeros(12, dtype=complex)), r"'b' must be a float64 array"),
    (lambda p: p.update(b=np.zeros((), dtype=np.float64)), r"'b' must be a float64 array of shape \(12,\)"),
])
def test_wrong_arrays_are_refused(edit, match):
    _, params, meta = good_file()
    edit(params)
    write_npz("bad.npz", params, meta)
    with pytest.raises(ValueError, match=match):
        pg.load("bad.npz")


@pytest.mark.parametrize("meta,match", [
    (None, "no 'metadata' array"),
    (np.array("{not json"), "metadata is not valid JSON"),
    (np.array("[1, 2]"), "metadata must be a JSON object"),
    (np.array("[" * 2000 + "]" * 2000), "metadata is not valid JSON"),
    (np.array(["{}"]), "must be a 0-d unicode array"),
    (np.array(b"{}"), "must be a 0-d unicode array"),
    (np.array("x" * (_saving.MAX_SPEC_CHARS + 1)), "must be a 0-d unicode array"),
    (np.array(json.dumps({"format": "pyx_gru.cell"})), r"missing \['cell', 'dtype'"),
])
def test_bad_metadata_is_refused(meta, match):
    _, params, _ = good_file()
    write_npz("bad.npz", params, meta)
    with pytest.raises(ValueError, match=match):
        pg.load("bad.npz")


def test_broken_files_are_refused():
    cell = make_cell("lstm")
    data = cell.save("good.npz").read_bytes()
    cases = {
        "empty": b"",
        "text": b"hello world",
        "half": data[: len(data) // 2],
        "no directory": data[:-22],
        "zip magic only": b"PK\x03\x04" + b"\0" * 40,
    }
    # One flipped byte inside a member's data: the zip's CRC catches it.
    pos = data.index(b"\x93NUMPY") + 200
    cases["flipped byte"] = data[:pos] + bytes([data[pos] ^ 0xFF]) + data[pos + 1:]
    for name, content in cases.items():
        pathlib.Path(name).write_bytes(content)
        with pytest.raises(ValueError) as info:
            pg.load(name)
        assert str(info.value).startswith(name + ":"), info.value
    with zipfile.ZipFile("junk.npz", "w") as z:
        z.writestr("readme.txt", "hi")
    with pytest.raises(ValueError, match="distinct .npy members only"):
        pg.load("junk.npz")
    with pytest.raises(IsADirectoryError):
        pg.load(".")


# -- writes are atomic -----------------------------------------------------------------

@pytest.mark.parametrize("exc", [OSError("disk full"), KeyboardInterrupt()])
def test_an_interrupted_save_leaves_the_old_file_and_no_temp_file(exc, monkeypatch):
    old = make_cell("gru_after", seed=1)
    old.save("model.npz")
    before = pathlib.Path("model.npz").read_bytes()
    real_write = np.lib.format.write_array
    calls = []

    def write_then_fail(fp, array, *args, **kwargs):
        calls.append(array.shape)
        if len(calls) == 2:
            fp.write(b"half of an array")
            raise exc
        return real_write(fp, array, *args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", write_then_fail)
    with pytest.raises(type(exc)):
        make_cell("gru_after", seed=2).save("model.npz")
    assert len(calls) == 2
    assert pathlib.Path("model.npz").read_bytes() == before
    assert os.listdir(".") == ["model.npz"]
    monkeypatch.setattr(np.lib.format, "write_array", real_write)
    np.testing.assert_array_equal(pg.load("model.npz").params["W"], old.params["W"])


def test_a_save_replaces_the_file_and_leaves_nothing_else():
    make_cell("rnn", seed=1).save("m.npz")
    new = make_cell("rnn", seed=2)
    new.save("m.npz")
    assert os.listdir(".") == ["m.npz"]
    np.testing.assert_array_equal(pg.load("m.npz").params["W"], new.params["W"])
    umask = os.umask(0o022)
    os.umask(umask)
    assert os.stat("m.npz").st_mode & 0o777 == 0o666 & ~umask


def test_a_save_into_a_missing_directory_names_the_path(tmp_path):
    target = tmp_path / "no such dir" / "cell.npz"
    with pytest.raises(FileNotFoundError, match=r"cannot write '.*no such dir/cell\.npz'") as info:
        pg.GRU(2, 3, seed=0).save(target)
    assert ".tmp" not in str(info.value)
    assert not target.parent.exists()
