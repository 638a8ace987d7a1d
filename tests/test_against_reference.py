"""The compiled cells against the NumPy reference, and both against the
equations written out by hand for one step."""
import numpy as np
import pytest

import pyx_gru as pg
from pyx_gru import reference
from helpers import (
    CONFIGS, DTYPES, assert_results_close, make_cell, parts, random_problem, skip_scan,
)


# The larger sizes fill the per-step kernel's blocks of rows (up to 6) and
# panels (16 floats, 8 doubles; up to 8 a block) and leave partial ones.
@pytest.mark.parametrize("T,B,D,H", [(1, 1, 1, 1), (6, 3, 4, 5), (13, 5, 7, 3), (5, 1, 9, 70),
                                     (4, 13, 6, 40), (3, 2, 5, 136)])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_compiled_equals_reference(simd_path, config, dtype, T, B, D, H, with_lengths):
    """Outputs, final state, dx, dstate0 and every parameter gradient agree
    (float64 to 1e-12, float32 to 1e-5, relative to scale), on every vector
    path this CPU runs."""
    cell = make_cell(config, D, H, dtype, seed=T + B)
    ref = reference.from_cell(cell)
    x, state0, dy, dstate = random_problem(cell, T, B, seed=H)
    lengths = None
    if with_lengths:
        lengths = np.random.default_rng(D).integers(0, T + 1, size=B)
        lengths[0] = T
    got = cell.forward(x, state0, lengths)
    want = ref.forward(x, state0, lengths)
    assert_results_close(got, want, dtype)
    assert_results_close(cell.backward(got[2], dy, dstate), ref.backward(want[2], dy, dstate), dtype)


def test_reference_is_float32_end_to_end():
    cell = reference.from_cell(make_cell("gru_after", dtype=np.float32))
    x, state0, dy, dstate = random_problem(cell, 3, 2)
    y, state, cache = cell.forward(x, state0)
    dx, dstate0, dparams = cell.backward(cache, dy, dstate)
    assert y.dtype == state.dtype == dx.dtype == dstate0.dtype == np.float32
    assert all(v.dtype == np.float32 for v in dparams.values())


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def one_step_by_hand(name, p, x, h, c):
    """The equations of the docs, one gate at a time, for a single step."""
    H = h.shape[1]

    def blk(m, k):
        return m[..., k * H:(k + 1) * H]

    W, U, b = p["W"], p["U"], p["b"]
    if name == "rnn":
        return np.tanh(x @ W + h @ U + b), None
    if name == "simple_gru":
        f = sigmoid(x @ blk(W, 0) + h @ blk(U, 0) + blk(b, 0))
        g = np.tanh(x @ blk(W, 1) + h @ blk(U, 1) + blk(b, 1))
        return f * h + (1 - f) * g, None
    if name.startswith("gru"):
        z = sigmoid(x @ blk(W, 0) + h @ blk(U, 0) + blk(b, 0))
        r = sigmoid(x @ blk(W, 1) + h @ blk(U, 1) + blk(b, 1))
        if name == "gru_after":
            g = np.tanh(x @ blk(W, 2) + blk(b, 2) + r * (h @ blk(U, 2) + p["b_hg"]))
        else:
            g = np.tanh(x @ blk(W, 2) + blk(b, 2) + (r * h) @ blk(U, 2))
        return z * h + (1 - z) * g, None
    if name.startswith("mgu"):
        f = sigmoid(x @ blk(W, 0) + h @ blk(U, 0) + blk(b, 0))
        if name == "mgu_after":
            g = np.tanh(x @ blk(W, 1) + blk(b, 1) + f * (h @ blk(U, 1) + p["b_hg"]))
        else:
            g = np.tanh(x @ blk(W, 1) + blk(b, 1) + (f * h) @ blk(U, 1))
        return f * h + (1 - f) * g, None
    if name.startswith("cifg"):
        P = p.get("P", np.zeros((2, H)))
        f = sigmoid(x @ blk(W, 0) + h @ blk(U, 0) + blk(b, 0) + P[0] * c)
        g = np.tanh(x @ blk(W, 1) + h @ blk(U, 1) + blk(b, 1))
        c_new = f * c + (1 - f) * g
        o = sigmoid(x @ blk(W, 2) + h @ blk(U, 2) + blk(b, 2) + P[1] * c_new)
        return o * np.tanh(c_new), c_new
    P = p.get("P", np.zeros((3, H)))
    i = sigmoid(x @ blk(W, 0) + h @ blk(U, 0) + blk(b, 0) + P[0] * c)
    f = sigmoid(x @ blk(W, 1) + h @ blk(U, 1) + blk(b, 1) + P[1] * c)
    g = np.tanh(x @ blk(W, 2) + h @ blk(U, 2) + blk(b, 2))
    c_new = f * c + i * g
    o = sigmoid(x @ blk(W, 3) + h @ blk(U, 3) + blk(b, 3) + P[2] * c_new)
    return o * np.tanh(c_new), c_new


@pytest.mark.parametrize("backend", ["compiled", "reference"])
def test_two_steps_match_the_equations(config, backend):
    """Two steps of each cell equal the equations applied twice by hand."""
    skip_scan(config, "the equations here use U; tests/test_mincells.py checks minGRU/minLSTM "
                      "against their reference steps")
    cell = make_cell(config, 3, 4, np.float64)
    if backend == "reference":
        cell = reference.from_cell(cell)
    x, state0, _, _ = random_problem(cell, 2, 3)
    y, state, cache = cell.forward(x, state0)
    h, c = (state0 if cell._lstm else (state0, None))
    for t in range(2):
        h, c = one_step_by_hand(config, cell.params, x[t], h, c)
        np.testing.assert_allclose(y[t], h, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(parts(state)[0], h, rtol=1e-13, atol=1e-14)
    if c is not None:
        np.testing.assert_allclose(state[1], c, rtol=1e-13, atol=1e-14)


def test_cache_holds_the_gate_activations(config):
    """cache.gates[t] holds the gate values, block k = cell.gates[k]; for the
    simplified GRU, h_t = f h_{t-1} + (1 - f) g can be rebuilt from them."""
    cell = make_cell(config, 2, 3)
    x, state0, _, _ = random_problem(cell, 4, 2)
    y, _, cache = cell.forward(x, state0)
    H = cell.hidden_size
    assert cache.gates.shape == (4, 2, len(cell.gates) * H)
    np.testing.assert_array_equal(cache.hs[1:], y)
    for k, gate in enumerate(cell.gates):
        block = cache.gates[..., k * H:(k + 1) * H]
        lo, hi = (-1, 1) if gate == "g" else (0, 1)
        assert np.all((block >= lo) & (block <= hi)), gate
    if config == "simple_gru":
        f, g = cache.gates[..., :H], cache.gates[..., H:]
        np.testing.assert_allclose(y, f * cache.hs[:-1] + (1 - f) * g, rtol=1e-14)


def test_float32_agrees_with_float64(config):
    """The same cell in float32 and float64 agrees to float32 precision."""
    c64 = make_cell(config, 5, 6, np.float64)
    c32 = c64.astype(np.float32)
    x, state0, dy, dstate = random_problem(c64, 20, 4)
    r64, r32 = c64.forward(x, state0), c32.forward(x, state0)
    tol = dict(rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(r32[0], r64[0], **tol)
    g64, g32 = c64.backward(r64[2], dy, dstate), c32.backward(r32[2], dy, dstate)
    np.testing.assert_allclose(g32[0], g64[0], **tol)
    for k in g64[2]:
        np.testing.assert_allclose(g32[2][k], g64[2][k], rtol=2e-4, atol=2e-4, err_msg=k)


def test_all_cells_listed():
    assert {type(make_cell(n)).__name__ for n in CONFIGS} == {"RNN", "SimpleGRU", "GRU", "MGU",
                                                              "LSTM", "CoupledLSTM", "MinGRU",
                                                              "MinLSTM"}
    assert pg.reference.from_cell(pg.GRU(2, 3, reset="before")).reset == "before"
    assert pg.reference.from_cell(pg.MGU(2, 3, reset="before")).reset == "before"


def test_float32_bias_and_peephole_sums_keep_float32_precision():
    """db and dP sum T*B rows; in float32 they are accumulated in float64, so
    a million equal terms still sum to float32 precision."""
    T, B = 4096, 256
    cell = pg.LSTM(1, 1, peephole=True, dtype=np.float32, seed=0)
    cell.params = {"W": np.zeros((1, 4)), "U": np.zeros((1, 4)),
                   "b": [0.3, 0.8, 0.5, -0.2], "P": [[0.1], [0.2], [0.3]]}
    c64 = cell.astype(np.float64)
    x = np.zeros((T, B, 1))
    dy = np.ones((T, B, 1))
    g32 = cell.backward(cell.forward(x)[2], dy)[2]
    g64 = c64.backward(c64.forward(x)[2], dy)[2]
    for k in ("b", "P"):
        np.testing.assert_allclose(g32[k], g64[k], rtol=1e-5, err_msg=k)
    # The coupled-gate LSTM's P (2, H), through the same sums: its last row
    # is o's. (f's terms hold c_{t-1} - g_t, which here tends to 0: rounding
    # noise in float32, so its sums are not a test of the summation.)
    cell = pg.CoupledLSTM(1, 1, peephole=True, dtype=np.float32, seed=0)
    cell.params = {"W": np.zeros((1, 3)), "U": np.zeros((1, 3)),
                   "b": [0.8, 0.5, -0.2], "P": [[0.2], [0.3]]}
    c64 = cell.astype(np.float64)
    g32 = cell.backward(cell.forward(x)[2], dy)[2]
    g64 = c64.backward(c64.forward(x)[2], dy)[2]
    for k in ("b", "P"):
        np.testing.assert_allclose(g32[k][1:], g64[k][1:], rtol=1e-5, err_msg=k)


def _pin_cases():
    for name in CONFIGS:
        cls, kw = CONFIGS[name]
        for gate in cls(1, 1, **kw).pinnable_gates:
            for value in (0.0, 1.0, 0.3, "per-unit"):
                yield name, gate, value


@pytest.mark.parametrize("config_name,gate,value", list(_pin_cases()))
def test_pinned_gates_compiled_equals_reference(config_name, gate, value, dtype):
    """forward(..., gates={name: value}) means the same in both backends, and
    the pinned gate's pre-activation gets no gradient."""
    skip_scan(config_name, "the zero-gradient check reads dU; test_mincells.py pins their "
                           "gates against the reference")
    cell = make_cell(config_name, 3, 4, dtype)
    ref = reference.from_cell(cell)
    pins = {gate: np.linspace(0, 1, 4) if value == "per-unit" else value}
    x, state0, dy, dstate = random_problem(cell, 5, 3)
    got = cell.forward(x, state0, [5, 2, 0], gates=pins)
    want = ref.forward(x, state0, [5, 2, 0], gates=pins)
    assert_results_close(got, want, dtype)
    k = cell.gates.index(gate)
    H = cell.hidden_size
    np.testing.assert_array_equal(got[2].gates[..., k * H:(k + 1) * H][:, 0],
                                  np.broadcast_to(np.asarray(pins[gate], dtype=dtype), (5, H)))
    g_got = cell.backward(got[2], dy, dstate)
    assert_results_close(g_got, ref.backward(want[2], dy, dstate), dtype)
    for name in ("W", "U", "b"):
        assert np.all(g_got[2][name][..., k * H:(k + 1) * H] == 0), name


@pytest.mark.parametrize("config_name,gate,value", [c for c in _pin_cases() if c[2] == 0.3])
def test_gradcheck_with_pinned_gates(config_name, gate, value):
    cell = make_cell(config_name, 3, 4)
    assert max(pg.gradcheck(cell, T=5, B=3, gates={gate: value}).values()) < 1e-6


@pytest.mark.parametrize("T,B", [(150, 1), (97, 3), (65, 2)])
def test_backward_in_chunks_equals_reference(config, dtype, T, B):
    """The backward pass sums the weight gradients chunk by chunk (about
    max(32, T*B/8) rows at a time): sequences long enough for several chunks,
    with lengths that end inside different chunks, agree with the reference."""
    cell = make_cell(config, 3, 4, dtype, seed=T)
    ref = reference.from_cell(cell)
    x, state0, dy, dstate = random_problem(cell, T, B, seed=B)
    lengths = np.linspace(T, T // 3, B).astype(int)
    pins = {cell.pinnable_gates[0]: 0.4} if cell.pinnable_gates else None
    got = cell.forward(x, state0, lengths, gates=pins)
    want = ref.forward(x, state0, lengths, gates=pins)
    assert_results_close(got, want, dtype)
    assert_results_close(cell.backward(got[2], dy, dstate), ref.backward(want[2], dy, dstate), dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("T,B,H", [(6, 1, 5), (9, 3, 37), (4, 16, 64)])
def test_lstm_one_pass_step_is_the_general_step(simd_path, dtype, T, B, H):
    """Without peepholes or pinned gates the LSTM's forward step runs as one
    pass a row (_activations.h); with peepholes the general step runs. Zero
    peepholes add exactly 0, so the two must give the same bits, on every
    vector path, lengths and all."""
    plain = make_cell("lstm", D=4, H=H, dtype=dtype)
    peep = make_cell("lstm_peephole", D=4, H=H, dtype=dtype)
    peep.params = {**plain.params, "P": np.zeros_like(peep.params["P"])}
    x, state0, dy, dstate = random_problem(plain, T, B, seed=H)
    lengths = np.random.default_rng(B).integers(0, T + 1, B)
    for cache in (True, False):
        y1, (h1, c1), saved = plain.forward(x, state0, lengths, cache=cache)
        y2, (h2, c2), saved2 = peep.forward(x, state0, lengths, cache=cache)
        for a, b in [(y1, y2), (h1, h2), (c1, c2)]:
            np.testing.assert_array_equal(a, b)
        if cache:
            np.testing.assert_array_equal(saved.gates, saved2.gates)
