"""Bad input gets a clear exception that names the argument; good input of
any real dtype or memory layout works."""
import numpy as np
import pytest

import pyx_gru as pg
from helpers import make_cell, parts, random_problem


@pytest.fixture
def gru():
    return make_cell("gru_after", 3, 4)


@pytest.fixture
def lstm():
    return make_cell("lstm", 3, 4)


# -- constructors ------------------------------------------------------------

@pytest.mark.parametrize("kwargs,exc,match", [
    ({"input_size": 0, "hidden_size": 4}, ValueError, "input_size must be >= 1"),
    ({"input_size": 3, "hidden_size": -1}, ValueError, "hidden_size must be >= 1"),
    ({"input_size": 3.0, "hidden_size": 4}, TypeError, "input_size must be an int"),
    ({"input_size": True, "hidden_size": 4}, TypeError, "input_size must be an int"),
    ({"input_size": 3, "hidden_size": 4, "dtype": np.int64}, TypeError, "float32 or float64"),
    ({"input_size": 3, "hidden_size": 4, "dtype": np.float16}, TypeError, "float32 or float64"),
    ({"input_size": 3, "hidden_size": 4, "dtype": "nonsense"}, TypeError, "float32 or float64"),
    ({"input_size": 3, "hidden_size": 4, "seed": -1}, ValueError, "seed must be None, an int >= 0"),
    ({"input_size": 3, "hidden_size": 4, "seed": "a"}, TypeError, "seed must be None, an int >= 0"),
])
def test_constructor_rejects(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        pg.RNN(**kwargs)


def test_constructor_options_are_checked():
    with pytest.raises(ValueError, match='reset must be "after" or "before"'):
        pg.GRU(3, 4, reset="middle")
    with pytest.raises(TypeError, match="peephole must be True or False"):
        pg.LSTM(3, 4, peephole="yes")


# -- x -----------------------------------------------------------------------

@pytest.mark.parametrize("x,exc,match", [
    (np.zeros((5, 3)), ValueError, r"x must have shape \(T, B, 3\), got \(5, 3\)"),
    (np.zeros((5, 2, 4)), ValueError, r"x must have shape \(T, B, 3\), got \(5, 2, 4\)"),
    (np.zeros((5, 2, 3), dtype=bool), TypeError, "x must hold real numbers.*bool"),
    (np.zeros((5, 2, 3), dtype=complex), TypeError, "x must hold real numbers.*complex"),
    (np.zeros((5, 2, 3), dtype=object), TypeError, "x must hold real numbers.*object"),
    ([[[1.0, 2.0, 3.0]], [[1.0, 2.0]]], TypeError, "x must be an array of real numbers"),
    ("abc", TypeError, "x must hold real numbers"),
    (None, TypeError, "x must be an array"),
])
def test_bad_x(gru, x, exc, match):
    with pytest.raises(exc, match=match):
        gru.forward(x)


def test_x_of_any_real_dtype_and_layout_gives_the_same_result(gru):
    x, state0, _, _ = random_problem(gru, 4, 3)
    want = gru.forward(x, state0)[0]
    x_int = np.round(x * 3).astype(np.int32)
    np.testing.assert_array_equal(gru.forward(x_int, state0)[0], gru.forward(x_int.astype(float), state0)[0])
    np.testing.assert_array_equal(gru.forward(x.tolist(), state0)[0], want)
    np.testing.assert_array_equal(gru.forward(np.asfortranarray(x), state0)[0], want)
    strided = np.zeros((4, 6, 3))
    strided[:, ::2] = x
    np.testing.assert_array_equal(gru.forward(strided[:, ::2], state0)[0], want)
    readonly = x.copy()
    readonly.flags.writeable = False
    np.testing.assert_array_equal(gru.forward(readonly, state0)[0], want)
    y16 = gru.forward(x.astype(np.float16), state0)[0]
    assert y16.dtype == np.float64


def test_forward_does_not_keep_or_change_the_input(gru):
    """The cache owns a copy of x: changing x after forward changes nothing."""
    x, state0, dy, _ = random_problem(gru, 4, 2)
    x_before = x.copy()
    y, _, cache = gru.forward(x, state0, lengths=[4, 1])
    np.testing.assert_array_equal(x, x_before)
    g1 = gru.backward(cache, dy)
    x[:] = 99.0
    g2 = gru.backward(cache, dy)
    for k in g1[2]:
        np.testing.assert_array_equal(g1[2][k], g2[2][k])


# -- state0, lengths ----------------------------------------------------------

def test_bad_state0(gru, lstm):
    x = np.zeros((4, 2, 3))
    with pytest.raises(ValueError, match=r"state0 must have shape \(2, 4\), got \(2, 5\)"):
        gru.forward(x, np.zeros((2, 5)))
    with pytest.raises(TypeError, match="not a tuple"):
        gru.forward(x, (np.zeros((2, 4)), np.zeros((2, 4))))
    with pytest.raises(TypeError, match=r"state0 of LSTM must be a tuple \(h, c\)"):
        lstm.forward(x, np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"state0\[1\] \(c\) must have shape \(2, 4\)"):
        lstm.forward(x, (np.zeros((2, 4)), np.zeros((4, 2))))
    with pytest.raises(TypeError, match="state0 must hold real numbers"):
        gru.forward(x, np.zeros((2, 4), dtype=complex))


def test_lstm_state_parts_may_be_none(lstm):
    x, (h0, c0), _, _ = random_problem(lstm, 3, 2)
    a = lstm.forward(x, (None, c0))[0]
    b = lstm.forward(x, (np.zeros_like(h0), c0))[0]
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("lengths,exc,match", [
    ([4, 5], ValueError, r"lengths must lie in \[0, T\] = \[0, 4\], got \[5\]"),
    ([-1, 2], ValueError, r"lengths must lie in \[0, T\] = \[0, 4\], got \[-1\]"),
    ([4], ValueError, r"lengths must have shape \(2,\)"),
    ([[4, 4]], ValueError, r"lengths must have shape \(2,\)"),
    ([4.0, 2.0], TypeError, r"lengths must hold integers, got dtype float64; expected shape \(2,\)"),
    ([True, False], TypeError, "lengths must hold integers, got dtype bool"),
])
def test_bad_lengths(gru, lengths, exc, match):
    with pytest.raises(exc, match=match):
        gru.forward(np.zeros((4, 2, 3)), lengths=lengths)


def test_lengths_of_any_int_dtype(gru):
    x, state0, _, _ = random_problem(gru, 4, 2)
    want = gru.forward(x, state0, [4, 2])[0]
    for dt in (np.int8, np.uint16, np.int64):
        np.testing.assert_array_equal(gru.forward(x, state0, np.array([4, 2], dtype=dt))[0], want)


# -- backward -----------------------------------------------------------------

def test_bad_dy_and_dstate(gru, lstm):
    _, _, cache = gru.forward(np.zeros((4, 2, 3)))
    with pytest.raises(ValueError, match=r"dy must have shape \(4, 2, 4\), got \(4, 2, 3\)"):
        gru.backward(cache, np.zeros((4, 2, 3)))
    with pytest.raises(ValueError, match=r"dstate must have shape \(2, 4\)"):
        gru.backward(cache, None, np.zeros(4))
    _, _, lcache = lstm.forward(np.zeros((4, 2, 3)))
    with pytest.raises(TypeError, match=r"dstate of LSTM must be a tuple \(h, c\)"):
        lstm.backward(lcache, None, np.zeros((2, 4)))


def test_dy_dtype_is_cast(config):
    cell = make_cell(config, 3, 4, np.float32)
    x, state0, dy, dstate = random_problem(cell, 4, 2)
    _, _, cache = cell.forward(x, state0)
    a = cell.backward(cache, dy, dstate)
    b = cell.backward(cache, dy.astype(np.float32), tuple(np.float32(s) for s in parts(dstate))
                      if cell._lstm else dstate.astype(np.float32))
    np.testing.assert_array_equal(a[0], b[0])
    assert a[0].dtype == np.float32


def test_cache_must_come_from_this_cell(gru):
    other = make_cell("gru_after", 3, 4)
    _, _, cache = other.forward(np.zeros((2, 1, 3)))
    with pytest.raises(ValueError, match="cache was made by another cell"):
        gru.backward(cache, np.zeros((2, 1, 4)))
    with pytest.raises(TypeError, match="cache must be the Cache returned by forward"):
        gru.backward({"x": 1}, np.zeros((2, 1, 4)))


def test_cache_is_invalid_after_params_are_replaced(gru):
    _, _, cache = gru.forward(np.zeros((2, 1, 3)))
    gru.params["U"] = gru.params["U"].copy()
    with pytest.raises(ValueError, match=r"params\['U'\] was replaced"):
        gru.backward(cache)


def test_outputs_and_cache_are_read_only(gru):
    y, state, cache = gru.forward(np.zeros((2, 1, 3)))
    with pytest.raises(ValueError, match="read-only"):
        y[0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        cache.gates[0] = 1.0
    state[0] = 1.0  # the final state is the caller's own


# -- parameters ---------------------------------------------------------------

@pytest.mark.parametrize("key,value,match", [
    ("W", np.zeros((3, 11)), r"params\['W'\] must be a C-contiguous, aligned float64 array of shape \(3, 12\)"),
    ("U", np.zeros((4, 12), dtype=np.float32), r"params\['U'\] must be a C-contiguous, aligned float64"),
    ("U", np.zeros((12, 4)).T, "not C-contiguous"),
    ("b", [0.0] * 12, r"params\['b'\] must be a C-contiguous, aligned float64 array of shape \(12,\), got list"),
])
def test_replaced_params_are_checked_before_the_kernels(gru, key, value, match):
    gru.params[key] = value
    with pytest.raises(ValueError, match=match):
        gru.forward(np.zeros((2, 1, 3)))


def test_missing_or_extra_params(gru):
    del gru.params["b_hg"]
    with pytest.raises(ValueError, match=r"missing \['b_hg'\]"):
        gru.forward(np.zeros((2, 1, 3)))
    with pytest.raises(ValueError, match=r"unexpected \['P'\]"):
        gru.params = {**make_cell("gru_after").params, "P": np.zeros((3, 4))}


def test_params_setter_casts_and_copies(gru):
    new = {k: np.ones(v.shape, dtype=np.float32).tolist() if k == "b" else np.ones(v.shape)
           for k, v in gru.params.items()}
    gru.params = new
    assert all(v.dtype == np.float64 and v.flags.c_contiguous for v in gru.params.values())
    new["W"][:] = 5.0
    assert np.all(gru.params["W"] == 1.0)
    with pytest.raises(ValueError, match=r"params\['W'\] must have shape \(3, 12\)"):
        gru.params = {**new, "W": np.ones((12, 3))}
    with pytest.raises(TypeError, match="params must be a dict"):
        gru.params = [1, 2]


# -- things that must not change after construction or after forward -------

@pytest.mark.parametrize("name,attr,value", [
    ("gru_after", "reset", "before"),
    ("lstm", "peephole", True),
    ("rnn", "hidden_size", 64),
    ("rnn", "input_size", 64),
    ("rnn", "dtype", np.float32),
])
def test_architecture_is_read_only(name, attr, value):
    cell = make_cell(name)
    with pytest.raises(AttributeError):
        setattr(cell, attr, value)


def test_cache_attributes_are_read_only(gru):
    _, _, cache = gru.forward(np.zeros((2, 1, 3)))
    with pytest.raises(AttributeError, match="read-only"):
        cache.x = np.zeros((5, 1, 3))
    with pytest.raises(AttributeError, match="read-only"):
        cache.params = {}
    with pytest.raises(AttributeError, match="read-only"):
        del cache.gates


def test_params_added_after_forward_invalidate_the_cache(lstm):
    _, _, cache = lstm.forward(np.zeros((2, 1, 3)))
    lstm.params["P"] = np.zeros((3, 4))
    with pytest.raises(ValueError):
        lstm.backward(cache)


FORGED_CACHE = """
import numpy as np, pyx_gru as pg
cell = pg.{cls}(4, 16, seed=0)
_, _, big = cell.forward(np.ones((400, 20, 4)))
fields = dict(x=big.x, lengths=big.lengths, gates=big.gates, hs=big.hs, cs=big.cs, extra=big.extra)
fields[{field!r}] = {value}
forged = pg.Cache(cell, cell.params, **fields)
try:
    cell.backward(forged)
except ValueError as e:
    print("ValueError:", e)
"""


@pytest.mark.parametrize("cls", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("field,value", [
    ("x", "np.ones((1, 1, 4))"),
    ("gates", "big.gates[:10].copy()"),
    ("hs", "np.ones((3, 20, 16))"),
    ("cs", "np.ones((2, 20, 16))"),
    ("extra", "np.ones((2, 20, 16))"),
    ("lengths", "np.array([400], dtype=np.intp)"),
    ("lengths", "np.full(20, 9999, dtype=np.intp)"),
])
def test_a_forged_cache_is_an_error_not_a_crash(cls, field, value):
    """Even a Cache built by hand from arrays of the wrong shapes reaches no
    compiled code: run in a subprocess so that a crash is a failure."""
    import subprocess
    import sys
    code = FORGED_CACHE.format(cls=cls, field=field, value=value)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"crashed with {proc.returncode}: {proc.stderr[-2000:]}"
    relevant = (field not in ("cs", "extra")) or (cls == "LSTM" and field == "cs") or \
        (cls == "GRU" and field == "extra")
    if relevant:
        assert "ValueError:" in proc.stdout, proc.stdout


# -- pinned gates --------------------------------------------------------------

@pytest.mark.parametrize("gates,exc,match", [
    ({"g": 0.5}, ValueError, r"can pin \['z', 'r'\], not 'g'"),
    ({"f": 0.5}, ValueError, r"can pin \['z', 'r'\], not 'f'"),
    ({"z": 1.5}, ValueError, r"gates\['z'\] must lie in \[0, 1\]"),
    ({"z": np.nan}, ValueError, r"gates\['z'\] must lie in \[0, 1\]"),
    ({"z": [0.5, 0.5]}, ValueError, r"gates\['z'\] must be a scalar or have shape \(4,\)"),
    ({"z": "half"}, TypeError, r"gates\['z'\] must hold real numbers"),
    ([("z", 1.0)], TypeError, "gates must be a dict"),
])
def test_bad_gates(gru, gates, exc, match):
    with pytest.raises(exc, match=match):
        gru.forward(np.zeros((2, 1, 3)), gates=gates)


def test_a_cell_without_sigmoid_gates_says_so():
    with pytest.raises(ValueError, match=r"gates: RNN can pin no gate, not 'g'"):
        pg.RNN(3, 4).forward(np.zeros((2, 1, 3)), gates={"g": 0.5})


def test_state_errors_name_the_class():
    x = np.zeros((2, 1, 3))
    with pytest.raises(TypeError, match=r"state0 of CoupledLSTM must be a tuple \(h, c\)"):
        pg.CoupledLSTM(3, 4).forward(x, np.zeros((1, 4)))
    with pytest.raises(TypeError, match=r"state0 of MinGRU is one \(1, 4\) array, not a tuple"):
        pg.MinGRU(3, 4).forward(x, (np.zeros((1, 4)), np.zeros((1, 4))))


def test_gradcheck_takes_a_cell():
    for bad in ("gru", None):
        with pytest.raises(TypeError, match="cell must be a pyx_gru cell"):
            pg.gradcheck(bad)
    with pytest.raises(TypeError, match="cell must be a pyx_gru cell .* got Model"):
        pg.gradcheck(pg.Model(2, 4, 1))
    with pytest.raises(ValueError, match="seed must be None, an int >= 0"):
        pg.gradcheck(pg.GRU(2, 3), seed=-1)


def test_layer_seeds_and_flags_are_checked():
    with pytest.raises(ValueError, match="seed must be None, an int >= 0"):
        pg.Model(2, 4, 1, seed=-1)
    with pytest.raises(ValueError, match="seed must be None, an int >= 0"):
        pg.layers.Dense(2, 4, seed=-1)
    with pytest.raises(TypeError, match="bidirectional must be True or False"):
        pg.Model(2, 4, 1, bidirectional="yes")


def test_pinnable_gates():
    assert make_cell("rnn").pinnable_gates == ()
    assert make_cell("simple_gru").pinnable_gates == ("f",)
    assert make_cell("gru_before").pinnable_gates == ("z", "r")
    assert make_cell("lstm").pinnable_gates == ("i", "f", "o")


def test_cache_pins_and_params_cannot_be_edited(gru):
    """The pinned gates decide which gradients are zero: the cache's record of
    them (and of the parameters) is read-only."""
    _, _, cache = gru.forward(np.zeros((2, 1, 3)), gates={"z": 0.5})
    with pytest.raises(AttributeError):
        cache.pins.clear()
    with pytest.raises(TypeError):
        cache.pins["r"] = np.ones(4)
    with pytest.raises(TypeError):
        cache.params["W"] = np.zeros((3, 12))
    assert np.all(gru.backward(cache, np.ones((2, 1, 4)))[2]["W"][:, :4] == 0)


def test_masked_arrays_get_a_hint_that_fits_the_argument(gru):
    x = np.zeros((2, 2, 3))
    with pytest.raises(TypeError, match=r"fill them \(lengths\.filled\(0\)\); expected") as info:
        gru.forward(x, lengths=np.ma.array([1, 2], mask=[0, 1]))
    assert "pass lengths" not in str(info.value)
    with pytest.raises(TypeError, match=r"fill them \(x\.filled\(0\)\) \(for padded sequences, "
                                        r"pass lengths\)"):
        gru.forward(np.ma.array(x, mask=np.ones(x.shape, bool)))
