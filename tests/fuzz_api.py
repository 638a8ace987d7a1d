"""Fuzz pyx_gru's public API with Hypothesis; run by tests/test_fuzz.py in a
subprocess, so that a crash (a segfault in compiled code) fails the test.

Each example builds a cell (any class and configuration, sometimes from
invalid constructor arguments) and makes a few calls on it, drawn from:
forward (x, state0, lengths, gates), backward (the forward's cache, another
cell's, a hand-forged one, or anything else; dy, dstate), the params setter
and item assignment, astype, save/load (of the cell's file with its bytes or
its arrays and metadata changed), save/load of a model or one of its layers
built around the cell (its file damaged likewise, any node of its JSON
structure replaced), and gradcheck. Every argument is drawn
from everything: arrays of every dtype (bool, int, float16 to longdouble,
byte-swapped, complex, object, strings, dates), of the right shape or one
mutated, in every layout (Fortran, strided, reversed, broadcast, read-only,
unaligned, masked), filled with any value (NaN, Inf, huge); Python lists,
scalars, None, strings and dicts.

A call may succeed, or raise ValueError or TypeError with a non-empty
message; any other exception fails the example (Hypothesis then shrinks it
and prints the smallest failing call), and a crash kills the process. On a
success the results are checked too: their shapes and dtype, and that the
inputs were not changed.

    python tests/fuzz_api.py --examples 2000 --seed 0 --report fuzz.json

prints, and writes to the report, how many examples and calls were tried
and how each kind of call ended.
"""
import argparse
import faulthandler
import io
import json
import os
import sys
import tempfile
import time
import warnings
import zipfile
from collections import Counter

import numpy as np
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import pyx_gru as pg
from pyx_gru import _kinds

ALLOWED = (ValueError, TypeError)
CONFIGS = [(k.cell_class, dict(k.form)) for k in _kinds.KINDS.values()]
# the cells with a recurrence, which take recurrent dropout and zoneout
RECURRENT = {k.cell_class for k in _kinds.KINDS.values() if not k.scan}
DTYPES = [
    np.float64, np.float32, np.float16, np.longdouble, ">f8", ">f4", np.int8, np.int64,
    np.uint8, np.uint64, np.bool_, np.complex64, np.complex128, "U3", "S2", "M8[s]", "m8[s]",
    [("a", "f8")], object,
]
LAYOUTS = ["C", "F", "strided", "reversed", "readonly", "broadcast", "unaligned", "list",
           "masked", "matrix"]

COUNTS = Counter()      # calls by "op:outcome"
MESSAGES = Counter()    # with --messages: the start of each rejection's message
EXAMPLES = Counter()    # examples run


# -- drawing arguments -------------------------------------------------------------------

def garbage():
    return st.one_of(
        st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(),
        st.complex_numbers(), st.text(max_size=3), st.binary(max_size=3),
        st.lists(st.floats(), max_size=3), st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
        st.tuples(st.integers(), st.floats()), st.just(object()), st.just(Ellipsis),
    )


def values(dtype):
    dt = np.dtype(dtype)
    if dt.kind == "O":
        return st.one_of(st.floats(), st.integers(-10, 10), st.none(), st.text(max_size=2))
    if dt.kind == "f" and dt.itemsize > 8:
        return st.floats(width=64).map(np.longdouble)
    return hnp.from_dtype(dt)


@st.composite
def mutated(draw, shape):
    """``shape`` (a tuple of ints) or, one time in four, a mutation of it."""
    shape = list(shape)
    if draw(st.integers(0, 3)):
        return tuple(shape)
    how = draw(st.sampled_from(["resize", "drop", "add", "reverse", "scalar", "empty"]))
    if how == "resize" and shape:
        i = draw(st.integers(0, len(shape) - 1))
        shape[i] = max(0, shape[i] + draw(st.sampled_from([-1, 1, 2])))
    elif how == "drop" and shape:
        shape.pop(draw(st.integers(0, len(shape) - 1)))
    elif how == "add":
        shape.insert(draw(st.integers(0, len(shape))), draw(st.integers(0, 2)))
    elif how == "reverse":
        shape = shape[::-1]
    elif how == "scalar":
        shape = []
    elif how == "empty" and shape:
        shape[draw(st.integers(0, len(shape) - 1))] = 0
    return tuple(shape)


def layout(a, how):
    """``a`` in the memory layout ``how`` (same values)."""
    if how == "F":
        return np.asfortranarray(a)
    if how == "strided" and a.ndim:
        return np.repeat(a, 2, axis=-1)[..., ::2]
    if how == "reversed" and a.ndim:
        return np.ascontiguousarray(a[::-1])[::-1]
    if how == "readonly":
        a = a.copy()
        a.flags.writeable = False
        return a
    if how == "broadcast" and a.size:
        return np.broadcast_to(a.reshape(-1)[:1].reshape((1,) * a.ndim), a.shape)
    if how == "unaligned" and a.dtype.itemsize > 1 and not a.dtype.hasobject:
        buf = np.zeros(a.nbytes + 1, dtype=np.uint8)
        out = buf[1:].view(a.dtype).reshape(a.shape)
        out[...] = a
        return out
    if how == "list":
        return a.tolist()
    if how == "masked":
        return np.ma.array(a, mask=np.zeros(a.shape, bool) if a.size % 2 else True)
    if how == "matrix" and a.ndim == 2:
        return np.asmatrix(a)
    return a


@st.composite
def arg(draw, shape, float_weight=6):
    """Something to pass where an array of ``shape`` belongs: usually an
    array (a float one of the right shape most often), else anything."""
    kind = draw(st.integers(0, 9))
    if kind >= 9:
        return draw(garbage())
    dtype = (draw(st.sampled_from([np.float64, np.float32])) if kind < float_weight
             else draw(st.sampled_from(DTYPES)))
    shape = draw(mutated(shape))
    if np.prod(shape) > 64:
        shape = tuple(min(s, 2) for s in shape)
    bounded = draw(st.booleans())
    if bounded and np.dtype(dtype).kind == "f":
        elements = st.floats(-2, 2, width=16 if np.dtype(dtype).itemsize == 2 else 32)
    else:
        elements = values(dtype)
    a = draw(hnp.arrays(dtype, shape, elements=elements))
    return layout(a, draw(st.sampled_from(LAYOUTS)))


@st.composite
def state_arg(draw, cell, B):
    shape = (B, cell.hidden_size)
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return None
    if cell._lstm and kind < 4:
        parts = [draw(st.one_of(st.none(), arg(shape))) for _ in range(draw(st.sampled_from([2, 2, 1, 3])))]
        return tuple(parts) if draw(st.booleans()) else parts
    if not cell._lstm and kind == 5:
        return (draw(arg(shape)), draw(arg(shape)))
    return draw(arg(shape))


@st.composite
def lengths_arg(draw, T, B):
    kind = draw(st.integers(0, 4))
    if kind == 0:
        return None
    if kind < 3:
        dtype = draw(st.sampled_from([np.intp, np.int8, np.uint16, np.int64, np.uint64]))
        lo = 0 if np.dtype(dtype).kind == "u" else -2
        a = draw(hnp.arrays(dtype, draw(mutated((B,))), elements=st.integers(lo, T + 2)))
        return layout(a, draw(st.sampled_from(LAYOUTS)))
    return draw(arg((B,), float_weight=2))


@st.composite
def gates_arg(draw, cell):
    kind = draw(st.integers(0, 4))
    if kind == 0:
        return None
    if kind == 4:
        return draw(garbage())
    names = list(cell.pinnable_gates) + ["g", "q"]
    out = {}
    for name in draw(st.lists(st.sampled_from(names), max_size=3, unique=True)):
        out[name] = draw(st.one_of(
            st.floats(-0.5, 1.5), st.sampled_from([0.0, 1.0, np.nan, np.inf]),
            arg((cell.hidden_size,)), garbage(),
        ))
    return out


def params_arg(draw, cell):
    shapes = cell.param_shapes
    if draw(st.booleans()):  # sound values in any dtype and layout
        return {k: layout(draw(hnp.arrays(draw(st.sampled_from([np.float64, np.float32, np.int8])),
                                          shape, elements=st.integers(-3, 3))),
                          draw(st.sampled_from(LAYOUTS)))
                for k, shape in shapes.items()}
    new = {k: draw(arg(shape, float_weight=7)) for k, shape in shapes.items()}
    if draw(st.integers(0, 4)) == 0:
        if draw(st.booleans()) and new:
            new.pop(draw(st.sampled_from(sorted(new))))
        else:
            new[draw(st.sampled_from(["P", "b_hg", "Q"]))] = draw(arg((3, cell.hidden_size)))
    return new


# -- calling ------------------------------------------------------------------------------

class Rejected:
    """What ``call`` returns when the call raised an allowed exception."""


def call(op, f, *args, **kwargs):
    """f(*args, **kwargs), counted; ValueError and TypeError become Rejected."""
    try:
        out = f(*args, **kwargs)
    except ALLOWED as exc:
        assert str(exc), f"{op} raised {type(exc).__name__} with an empty message"
        COUNTS[f"{op}:{type(exc).__name__}"] += 1
        MESSAGES[f"{op}: {str(exc)[:70]}"] += 1
        return Rejected
    COUNTS[f"{op}:ok"] += 1
    return out


def snapshot(a):
    """The bytes of an array argument, to check it was not changed."""
    if isinstance(a, np.ndarray) and not a.dtype.hasobject:
        return a.tobytes()
    return None


def check_forward(cell, x, out, keep=True):
    y, state, cache = out
    T, B = np.shape(y)[:2]
    H = cell.hidden_size
    assert y.shape == (T, B, H) and y.dtype == cell.dtype, (y.shape, y.dtype)
    for s in (state if cell._lstm else (state,)):
        assert s.shape == (B, H) and s.dtype == cell.dtype
    if not keep:  # cache=False: inference, nothing kept
        assert cache is None
        return
    assert isinstance(cache, pg.Cache) and cache.cell is cell
    assert cache.x.shape == (T, B, cell.input_size)


def check_backward(cell, cache, out):
    dx, dstate0, grads = out
    assert dx.shape == cache.x.shape and dx.dtype == cell.dtype
    for s in (dstate0 if cell._lstm else (dstate0,)):
        assert s.shape == (cache.x.shape[1], cell.hidden_size) and s.dtype == cell.dtype
    assert {k: g.shape for k, g in grads.items()} == cell.param_shapes


def new_cell(draw):
    """A cell from drawn constructor arguments (sometimes invalid: then the
    constructor must refuse them), else a small valid cell."""
    if draw(st.integers(0, 5)) == 0:
        cls = draw(st.sampled_from(sorted({c for c, _ in CONFIGS}, key=lambda c: c.__name__)))
        # about half of the sizes and dtypes are valid
        size = st.one_of(st.integers(1, 4), st.sampled_from([np.int64(3), np.uint8(2)]), st.one_of(
            st.integers(-3, 0), st.sampled_from([2**31, 2**63, 10**7]), st.floats(0, 5),
            st.booleans(), st.none(), st.text(max_size=2), st.just(np.float64(3))))
        kw = {"dtype": draw(st.sampled_from(
            [np.float32, np.float64, "float32", "f8", np.float16, np.int64, None, "x", object, complex]))}
        if draw(st.booleans()):
            kw["seed"] = draw(st.one_of(st.none(), st.integers(-3, 2**70), st.floats(), st.text(max_size=2)))
        if cls in (pg.GRU, pg.MGU) and draw(st.booleans()):
            kw["reset"] = draw(st.one_of(st.sampled_from(["after", "before"]), garbage()))
        if cls in (pg.LSTM, pg.CoupledLSTM) and draw(st.booleans()):
            kw["peephole"] = draw(st.one_of(st.booleans(), garbage()))
        for name in ("recurrent_dropout", "zoneout") + (("zoneout_c",) if cls._lstm else ()):
            if draw(st.integers(0, 3)) == 0:
                kw[name] = draw(st.one_of(st.sampled_from([0.0, 0.3, 0.99, 1.0, -0.1]), garbage()))
        cell = call("constructor", cls, draw(size), draw(size), **kw)
        if cell is not Rejected:
            return cell
    cls, kw = draw(st.sampled_from(CONFIGS))
    D, H = draw(st.integers(1, 4)), draw(st.integers(1, 5))
    if cls in RECURRENT and draw(st.booleans()):
        kw = {**kw, "recurrent_dropout": draw(st.sampled_from([0.0, 0.5])),
              "zoneout": draw(st.sampled_from([0.0, 0.2]))}
    cell = cls(D, H, dtype=draw(st.sampled_from([np.float32, np.float64])), seed=0, **kw)
    if draw(st.booleans()):
        cell.params = {k: draw(hnp.arrays(np.float64, s, elements=st.floats(-3, 3)))
                       for k, s in cell.param_shapes.items()}
    return cell


def op_forward(draw, cell, state):
    T, B = draw(st.integers(0, 5)), draw(st.integers(0, 4))
    x = draw(arg((T, B, cell.input_size), float_weight=7))
    state0 = draw(state_arg(cell, B))
    lengths = draw(lengths_arg(T, B))
    gates = draw(gates_arg(cell))
    kw = {"gates": gates}
    keep = draw(st.integers(0, 5))  # usually the default; else False or anything
    if keep == 0:
        kw["cache"] = False
    elif keep == 1:
        kw["cache"] = draw(st.one_of(st.sampled_from([True, np.bool_(False)]), garbage()))
    if draw(st.integers(0, 2)) == 0:
        kw["training"] = draw(st.one_of(st.booleans(), garbage()))
        kw["seed"] = draw(st.one_of(st.integers(0, 3), st.none(), garbage()))
    before = [snapshot(a) for a in (x, lengths)]
    out = call("forward", cell.forward, x, state0, lengths, **kw)
    assert [snapshot(a) for a in (x, lengths)] == before, "forward changed its input"
    if out is not Rejected:
        check_forward(cell, x, out, bool(kw.get("cache", True)))
        if out[2] is not None:
            state["cache"] = out[2]


def op_backward(draw, cell, state):
    kind = draw(st.integers(0, 5))
    cache = state.get("cache")
    if kind < 3 and cache is None:
        # This cell's own cache, from a forward pass that works (if the
        # parameters are sound)
        x = np.zeros((draw(st.integers(0, 4)), draw(st.integers(0, 3)), cell.input_size))
        cache = call("forward", cell.forward, x)
        cache = draw(garbage()) if cache is Rejected else cache[2]
    elif kind == 3:
        other_cls, kw = draw(st.sampled_from(CONFIGS))
        other = other_cls(cell.input_size, cell.hidden_size, dtype=cell.dtype, seed=0, **kw)
        cache = call("forward", other.forward, np.zeros((2, 1, cell.input_size)))[2]
    elif kind == 4:
        T, B = draw(st.integers(0, 3)), draw(st.integers(0, 3))
        H, GH = cell.hidden_size, len(cell.gates) * cell.hidden_size
        fields = {
            "x": draw(arg((T, B, cell.input_size))), "lengths": draw(lengths_arg(T, B)),
            "pins": draw(st.one_of(st.just({}), gates_arg(cell))),
            "gates": draw(arg((T, B, GH))), "hs": draw(arg((T + 1, B, H))),
            "cs": draw(arg((T + 1, B, H))), "extra": draw(arg((T, B, H))),
        }
        for k in draw(st.lists(st.sampled_from(sorted(fields)), max_size=2, unique=True)):
            del fields[k]
        try:
            cache = pg.Cache(cell, draw(st.sampled_from([cell.params, {}])), **fields)
        except (ValueError, TypeError, AttributeError):
            cache = draw(garbage())
    elif kind == 5:
        cache = draw(garbage())
    T, B = (cache.x.shape[:2] if isinstance(cache, pg.Cache) and isinstance(
        getattr(cache, "x", None), np.ndarray) and cache.x.ndim == 3 else (2, 1))
    dy = None if draw(st.integers(0, 3)) == 0 else draw(arg((T, B, cell.hidden_size)))
    dstate = draw(state_arg(cell, B))
    before = snapshot(dy)
    out = call("backward", cell.backward, cache, dy, dstate)
    assert snapshot(dy) == before, "backward changed dy"
    if out is not Rejected:
        check_backward(cell, cache, out)


def op_params(draw, cell, state):
    kind = draw(st.integers(0, 4))
    if kind == 0:
        call("params setter", setattr, cell, "params", draw(st.one_of(garbage(), st.just([]))))
    elif kind <= 2:
        call("params setter", setattr, cell, "params", params_arg(draw, cell))
    else:
        # Item assignment is a plain dict's: the next call must notice.
        key = draw(st.sampled_from(sorted(cell.param_shapes) + ["Z"]))
        shape = cell.param_shapes.get(key, (2,))
        if draw(st.integers(0, 4)) == 0:
            cell.params.pop(key, None)
        else:
            cell.params[key] = draw(arg(shape, float_weight=7))
        COUNTS["params item:assigned"] += 1


def op_astype(draw, cell, state):
    dtype = draw(st.sampled_from([np.float32, np.float64, np.float16, "f4", None, object]))
    out = call("astype", cell.astype, dtype)
    if out is not Rejected:
        assert out.dtype == np.dtype(dtype) and out.param_shapes == cell.param_shapes


def _npz_bytes(arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def damage(draw, path, edit_metadata):
    """Rewrite the saved file at ``path`` as is or damaged one way:
    truncated, a few bytes flipped, an array removed, replaced or added, or
    its metadata changed by ``edit_metadata(draw, meta)``."""
    data = _damaged_bytes(draw, path, edit_metadata)
    with open(path, "wb") as f:
        f.write(data)


def _damaged_bytes(draw, path, edit_metadata):
    data = open(path, "rb").read()
    how = draw(st.sampled_from(["as is", "truncate", "flip", "arrays", "metadata"]))
    if how == "truncate":
        return data[:draw(st.integers(0, len(data)))]
    if how == "flip":
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, len(data) - 1))
            data = data[:i] + bytes([data[i] ^ draw(st.integers(1, 255))]) + data[i + 1:]
        return data
    if how == "as is":
        return data
    with zipfile.ZipFile(io.BytesIO(data)) as z, np.load(io.BytesIO(data)) as npz:
        arrays = {k: npz[k] for k in npz.files}
        assert len(z.namelist()) == len(arrays)
    if how == "arrays":
        key = draw(st.sampled_from(sorted(arrays) + ["extra"]))
        if draw(st.booleans()) and key in arrays:
            del arrays[key]
        else:
            arrays[key] = draw(arg(arrays.get(key, np.zeros(2)).shape, float_weight=3))
            if not isinstance(arrays[key], np.ndarray):
                arrays[key] = np.asarray(arrays[key], dtype=object)
    else:
        meta = json.loads(str(arrays["metadata"]))
        edit_metadata(draw, meta)
        arrays["metadata"] = np.array(json.dumps(meta))
    return _npz_bytes(arrays)


def _edit_cell_metadata(draw, meta):
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats() | st.text(max_size=4),
        lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=3), inner, max_size=2),
        max_leaves=4)
    key = draw(st.sampled_from(sorted(meta) + ["other"]))
    meta[key] = draw(st.one_of(json_values, st.sampled_from(
        ["GRU", "LSTM", "RNN", "SimpleGRU", "float32", "float64", 1, 2, 3, 4, 5, True, False,
         {"reset": "after"}, {"reset": "before"}, {"peephole": True}, {}])))


def op_save_load(draw, cell, state):
    path = os.path.join(state["tmp"], "cell.npz")
    if call("save", cell.save, path) is Rejected:
        return
    damage(draw, path, _edit_cell_metadata)
    new = call("load", pg.load, path)
    if new is not Rejected:
        assert isinstance(new, pg.Cell) and set(new.params) == set(new.param_shapes)
        call("forward", new.forward, np.zeros((2, 1, new.input_size)))


def _json_node_paths(node, path=()):
    """Every path to a value in a JSON tree (dict keys and list indices)."""
    yield path
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _json_node_paths(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _json_node_paths(v, path + (i,))


def _edit_any_node(draw, meta):
    """Replace one node of the metadata's JSON tree, at any depth."""
    where = draw(st.sampled_from(list(_json_node_paths(meta))[1:]))
    node = meta
    for k in where[:-1]:
        node = node[k]
    node[where[-1]] = draw(st.one_of(
        st.none(), st.booleans(), st.integers(-2**40, 2**40), st.floats(), st.text(max_size=4),
        st.sampled_from(["GRU", "LSTM", "Stack", "Dense", "Model", "Recurrent", "float32",
                         0, 1, 2, 3, 2**31, [], {}, {"reset": "after"}, "every"])))


def op_model_save_load(draw, cell, state):
    """A model (or one of its layers) built around the cell's kind, saved,
    its file damaged in one way, and loaded."""
    from pyx_gru import layers

    model = layers.Model(cell.input_size, cell.hidden_size, draw(st.integers(1, 3)),
                         cell=_kinds.of(cell).name, num_layers=draw(st.integers(1, 2)),
                         bidirectional=draw(st.booleans()),
                         readout=draw(st.sampled_from(["last", "every"])), dtype=cell.dtype, seed=0)
    obj = draw(st.sampled_from([model, model.rnn, model.head, model.rnn.layers[0]]))
    path = os.path.join(state["tmp"], "model.npz")
    if call("save model", obj.save, path) is Rejected:
        return
    damage(draw, path, _edit_any_node)
    new = call("load model", pg.load, path)
    if new is not Rejected:
        assert type(new) is type(obj), (type(new), type(obj))
        call("forward", new.forward, np.zeros((2, 1, new.input_size)))


def op_gradcheck(draw, cell, state):
    T = draw(st.integers(-1, 3)) if draw(st.integers(0, 3)) else draw(garbage())
    B = draw(st.integers(-1, 2)) if draw(st.integers(0, 3)) else draw(garbage())
    call("gradcheck", pg.gradcheck, cell, T, B, max_entries=2)


OPS = [op_forward] * 4 + [op_backward] * 4 + [op_params, op_params, op_astype, op_save_load,
                                               op_model_save_load, op_gradcheck]


def example(draw, tmp):
    """One example: a cell and one to five calls. ``draw`` is Hypothesis'
    ``data.draw``, so a failing example prints every value drawn."""
    cell = new_cell(draw)
    state = {"tmp": tmp}
    for op in draw(st.lists(st.sampled_from(OPS), min_size=1, max_size=5)):
        op(draw, cell, state)
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report", help="write the counts here as JSON")
    parser.add_argument("--messages", type=int, default=0,
                        help="print the N most common rejection messages")
    args = parser.parse_args(argv)
    faulthandler.enable()
    warnings.simplefilter("ignore")  # casts overflow, NaN comparisons: expected here
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:

        @seed(args.seed)
        @settings(max_examples=args.examples, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(data=st.data())
        def fuzz(data):
            EXAMPLES["examples"] += 1
            example(data.draw, tmp)

        fuzz()
    calls = sum(COUNTS.values())
    report = {
        "examples": EXAMPLES["examples"], "calls": calls, "seed": args.seed,
        "seconds": round(time.perf_counter() - start, 1),
        "outcomes": dict(sorted(COUNTS.items())), "crashes": 0,
    }
    print(f"fuzz: {report['examples']} examples, {calls} calls, 0 crashes, "
          f"{report['seconds']} s (seed {args.seed})")
    for key, n in report["outcomes"].items():
        print(f"  {key}: {n}")
    for message, n in MESSAGES.most_common(args.messages):
        print(f"  {n:6d}  {message}")
    if args.report:
        with open(args.report, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
