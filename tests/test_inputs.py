"""The input audit: every array argument of the public API, against every
kind of input (lists, integer, bool, complex, object, float16 and other
dtypes; Fortran-ordered, strided, reversed, read-only, broadcast, unaligned
and masked arrays; wrong shapes). Each is accepted (then the result is
bitwise the one of the same values as a plain float64 array, and the input is
neither changed nor aliased) or refused with a TypeError or ValueError whose
message names the argument and the expected shape. The README's table "What
input is accepted" is this file's CASES and OUTCOMES."""
import re

import numpy as np
import pytest

import pyx_gru as pg
from helpers import make_cell, parts

T, B, D, H = 5, 2, 3, 4
RNG = np.random.default_rng(0)


def unaligned(a):
    buf = np.zeros(a.nbytes + 1, dtype=np.uint8)
    out = buf[1:].view(a.dtype).reshape(a.shape)
    out[...] = a
    assert not out.flags.aligned
    return out


def readonly(a):
    a = a.copy()
    a.flags.writeable = False
    return a


# name -> a variant of the array a (same shape; values cast where the dtype says)
CASES = {
    "list": lambda a: a.tolist(),
    "int32": lambda a: np.round(a).astype(np.int32),
    "uint8": lambda a: np.abs(np.round(a)).astype(np.uint8),
    "float16": lambda a: a.astype(np.float16),
    "float32": lambda a: a.astype(np.float32),
    "longdouble": lambda a: a.astype(np.longdouble),
    "big-endian": lambda a: a.astype(a.dtype.newbyteorder(">")),
    "Fortran-ordered": np.asfortranarray,
    "strided": lambda a: np.repeat(a, 2, axis=-1)[..., ::2],
    "reversed (negative strides)": lambda a: np.ascontiguousarray(a[::-1])[::-1],
    "read-only": readonly,
    "broadcast (zero strides)": lambda a: np.broadcast_to(a.reshape(-1)[:1].reshape((1,) * a.ndim), a.shape),
    "unaligned": unaligned,
    "masked, none masked": lambda a: np.ma.array(a, mask=False),
    "masked entries": lambda a: np.ma.array(a, mask=np.ones(a.shape, bool)),
    "bool": lambda a: a > 0,
    "complex": lambda a: a.astype(complex),
    "object": lambda a: a.astype(object),
    "str": lambda a: a.astype(str),
    "ragged list": lambda a: [[0.0], [0.0, 1.0]],
    "0-d": lambda a: np.asarray(a.reshape(-1)[0]),
    "wrong shape": lambda a: np.zeros(a.shape[:-1] + (a.shape[-1] + 1,), a.dtype),
    "extra axis": lambda a: a[None],
}
OK, TYPE, VALUE = "accepted", TypeError, ValueError
FLOAT_OUTCOMES = dict.fromkeys(CASES, OK) | {
    "masked entries": TYPE, "bool": TYPE, "complex": TYPE, "object": TYPE, "str": TYPE,
    "ragged list": TYPE, "0-d": VALUE, "wrong shape": VALUE, "extra axis": VALUE,
}
# cell.params[k] = v is a dict assignment: the next call checks v and uses
# it as it is, so it must already be a C-contiguous, aligned array of the
# cell's dtype; anything else is refused (assign cell.params = {...} to cast).
ITEM_OUTCOMES = dict.fromkeys(CASES, VALUE) | {"read-only": OK, "masked, none masked": OK}
OUTCOMES = {
    "x": FLOAT_OUTCOMES,
    "state0": FLOAT_OUTCOMES,
    "state0[1] (c)": FLOAT_OUTCOMES,
    "lengths": FLOAT_OUTCOMES | {"float16": TYPE, "float32": TYPE, "longdouble": TYPE},
    "dy": FLOAT_OUTCOMES,
    "dstate": FLOAT_OUTCOMES,
    "dstate[0] (h)": FLOAT_OUTCOMES,
    "gates['z']": FLOAT_OUTCOMES | {"0-d": OK},
    "params = {..., 'U': v}": FLOAT_OUTCOMES,
    "params['U'] = v": ITEM_OUTCOMES,
}
# The argument's expected shape, as the error messages write it.
EXPECTED = {
    "x": "(T, B, 3)", "state0": "(2, 4)", "state0[1] (c)": "(2, 4)", "lengths": "(2,)",
    "dy": "(5, 2, 4)", "dstate": "(2, 4)", "dstate[0] (h)": "(2, 4)", "gates['z']": "(4,)",
    "params = {..., 'U': v}": "(4, 12)", "params['U'] = v": "(4, 12)",
}


def base_values():
    gru, lstm = make_cell("gru_after", D, H), make_cell("lstm", D, H)
    return {
        "x": RNG.uniform(-1, 1, (T, B, D)),
        "state0": RNG.uniform(-1, 1, (B, H)),
        "state0[1] (c)": RNG.uniform(-1, 1, (B, H)),
        "lengths": np.array([5, 3]),
        "dy": RNG.uniform(-1, 1, (T, B, H)),
        "dstate": RNG.uniform(-1, 1, (B, H)),
        "dstate[0] (h)": RNG.uniform(-1, 1, (B, H)),
        "gates['z']": RNG.uniform(0.1, 0.9, H),
        "params = {..., 'U': v}": gru.params["U"].copy(),
        "params['U'] = v": gru.params["U"].copy(),
    }, gru, lstm


BASE, GRU, LSTM = base_values()


def run(target, value):
    """Forward and backward with ``value`` as the argument ``target`` (the
    others at their base values); the results as a flat list of arrays."""
    args = {k: v for k, v in BASE.items()}
    args[target] = value
    lstm = target in ("state0[1] (c)", "dstate[0] (h)")
    cell = (LSTM if lstm else GRU).copy()
    if target == "params = {..., 'U': v}":
        cell.params = {**cell.params, "U": value}
    if target == "params['U'] = v":
        cell.params["U"] = value
    if lstm:
        state0 = (args["state0"], args["state0[1] (c)"])
        dstate = (args["dstate[0] (h)"], args["dstate"])
    else:
        state0, dstate = args["state0"], args["dstate"]
    gates = None if lstm else {"z": args["gates['z']"]}
    y, state, cache = cell.forward(args["x"], state0, args["lengths"], gates=gates)
    dx, dstate0, grads = cell.backward(cache, args["dy"], dstate)
    return [y, *parts(state), dx, *parts(dstate0), *(grads[k] for k in sorted(grads))]


def equivalent(target, variant):
    """The plain array with the values ``variant`` stands for."""
    dtype = np.intp if target == "lengths" else np.float64
    return np.array(np.asarray(variant), dtype=dtype, order="C")


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("target", list(OUTCOMES))
def test_every_input_is_accepted_as_its_values_or_refused_by_name(target, case):
    variant = CASES[case](BASE[target])
    outcome = OUTCOMES[target][case]
    if outcome is OK:
        snapshot = np.array(variant, copy=True) if isinstance(variant, np.ndarray) else None
        got = run(target, variant)
        want = run(target, equivalent(target, variant))
        for u, v in zip(got, want, strict=True):
            np.testing.assert_array_equal(u, v)
            if isinstance(variant, np.ndarray):
                assert not np.shares_memory(u, variant)
        if snapshot is not None:
            np.testing.assert_array_equal(np.asarray(variant), snapshot)
    else:
        with pytest.raises(outcome) as info:
            run(target, variant)
        message = str(info.value)
        name = "params['U']" if target.startswith("params") else target
        assert name in message, message
        assert EXPECTED[target] in message, message


@pytest.mark.parametrize("lstm", [False, True], ids=["gru", "lstm"])
def test_the_state_given_to_forward_is_not_kept(lstm):
    """forward takes state0 as it is without copying it, so the cache must
    hold its own copy: overwriting state0 before backward changes nothing."""
    cell = LSTM if lstm else GRU

    def forward_then_backward(overwrite):
        state0 = [BASE["state0"].copy(), BASE["state0[1] (c)"].copy()]
        y, state, cache = cell.forward(BASE["x"], tuple(state0) if lstm else state0[0],
                                       cache=True)
        if overwrite:
            for part in state0:
                part[...] = 1e3
        dx, dstate0, grads = cell.backward(cache, BASE["dy"], None)
        return [y, *parts(state), dx, *parts(dstate0), *(grads[k] for k in sorted(grads))]

    for u, v in zip(forward_then_backward(True), forward_then_backward(False), strict=True):
        np.testing.assert_array_equal(u, v)


def test_lengths_out_of_range_are_refused():
    for bad, shown in [([6, 3], [6]), ([-1, 3], [-1]), ([2**40, 0], [2**40])]:
        with pytest.raises(ValueError, match=re.escape(f"lengths must lie in [0, T] = [0, 5], got {shown}")):
            run("lengths", np.array(bad))
    # uint64 beyond int64: refused, never wrapped to a negative number
    with pytest.raises(ValueError, match="lengths must lie in"):
        run("lengths", np.array([2**64 - 1, 3], dtype=np.uint64))


def test_states_of_the_wrong_kind_are_refused():
    x = BASE["x"]
    with pytest.raises(TypeError, match=r"state0 of GRU is one \(2, 4\) array, not a tuple"):
        GRU.forward(x, (BASE["state0"], BASE["state0"]))
    for bad in (BASE["state0"], [BASE["state0"]], (None,) * 3, {"h": None}):
        with pytest.raises(TypeError, match=r"state0 of LSTM must be a tuple \(h, c\) of two \(2, 4\) arrays"):
            LSTM.forward(x, bad)
    _, _, cache = LSTM.forward(x)
    with pytest.raises(TypeError, match=r"dstate of LSTM must be a tuple \(h, c\) of two \(2, 4\)"):
        LSTM.backward(cache, None, BASE["dstate"])
    # a list [h, c] works like the tuple
    a = LSTM.forward(x, [BASE["state0"], BASE["state0[1] (c)"]])[0]
    b = LSTM.forward(x, (BASE["state0"], BASE["state0[1] (c)"]))[0]
    np.testing.assert_array_equal(a, b)


def test_a_cache_from_elsewhere_is_refused():
    """A cache from another cell (even an identical one), from the NumPy
    reference, from before the parameters were replaced, or built by hand
    without some of its arrays."""
    _, _, cache = GRU.forward(BASE["x"])
    with pytest.raises(ValueError, match="cache was made by another cell"):
        GRU.copy().backward(cache)
    ref = pg.reference.from_cell(GRU)
    with pytest.raises(ValueError, match="cache was made by another cell"):
        GRU.backward(ref.forward(BASE["x"])[2])
    cell = GRU.copy()
    _, _, cache = cell.forward(BASE["x"])
    cell.params = dict(cell.params)
    with pytest.raises(ValueError, match=r"params\['W'\] was replaced"):
        cell.backward(cache)
    for cell in (GRU, LSTM):
        _, _, cache = cell.forward(BASE["x"], lengths=[5, 3])
        fields = {n: getattr(cache, n) for n in ("x", "lengths", "pins", "gates", "hs", "cs", "extra")}
        for drop in ("x", "pins", "gates", "hs", "cs" if cell is LSTM else "extra"):
            forged = pg.Cache(cell, cache.params, **{k: v for k, v in fields.items() if k != drop})
            with pytest.raises(ValueError, match=f"cache.{drop}"):
                cell.backward(forged)


def unaligned_copy(a):
    """A copy of ``a`` that starts one byte into a buffer: C-contiguous, right
    dtype and shape, but ``flags.aligned`` is False."""
    buf = np.empty(a.nbytes + 1, dtype=np.uint8)[1:]
    out = buf.view(a.dtype).reshape(a.shape)
    out[...] = a
    assert not out.flags.aligned and out.flags.c_contiguous
    return out


@pytest.mark.parametrize("field", ["x", "gates", "hs", "cs"])
def test_a_cache_with_unaligned_arrays_is_refused(field):
    # The kernels read a cache's arrays unchecked: an unaligned one is an error
    # before it gets there, like an unaligned parameter.
    _, _, cache = LSTM.forward(BASE["x"])
    fields = {n: getattr(cache, n) for n in ("x", "lengths", "pins", "gates", "hs", "cs", "extra")}
    fields[field] = unaligned_copy(fields[field])
    forged = pg.Cache(LSTM, cache.params, **fields)
    with pytest.raises(ValueError, match=rf"cache\.{field} should be .*not aligned"):
        LSTM.backward(forged)
