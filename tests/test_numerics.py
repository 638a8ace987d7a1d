"""Numerics at the extremes, through the cells: saturated sigmoid and tanh
(pre-activations up to +-1e4 and beyond) without overflow warnings and with
finite gradients, and NaN or Inf reaching only the outputs that depend on it."""
import platform
import warnings

import numpy as np
import pytest
from scipy.special import expit

import pyx_gru as pg
from pyx_gru import _recurrent
from helpers import assert_close, make_cell, parts, random_problem, skip_scan

# The portable vector path multiplies and adds (two roundings) on x86-64;
# elsewhere (aarch64) it fuses them, as the AVX paths do.
NO_FMA_PORTABLE = platform.machine() in ("x86_64", "AMD64", "i686")

# Pre-activations from 1e-3 to 1e4 in size, both signs, and the points where
# exp overflows in float32 (88.7) and float64 (709.8).
GRID = np.concatenate([
    np.logspace(-3, 4, 300), -np.logspace(-3, 4, 300),
    [0.0, 1e4, -1e4, 9999.5, -9999.5, 88.7, -88.7, 89.0, -89.0, 709.8, -709.8, 710.0, -710.0],
])


class strict:
    """Any warning is an error, and so is any floating-point error NumPy sees
    (but underflow, with ``underflow=False``: the NumPy reference's sigmoid
    underflows to 0 on purpose)."""

    def __init__(self, underflow=True):
        self.under = "raise" if underflow else "ignore"

    def __enter__(self):
        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("error")
        self._e = np.errstate(all="raise", under=self.under)
        self._e.__enter__()

    def __exit__(self, *exc):
        self._e.__exit__(*exc)
        self._w.__exit__(*exc)


def one_unit_cell(cls, W, dtype, **kw):
    """A cell with D = H = 1, input weights W (1, G), no recurrence, no bias."""
    cell = cls(1, 1, dtype=dtype, seed=0, **kw)
    cell.params = {k: np.zeros(v.shape) for k, v in cell.params.items()} | {"W": W}
    return cell


@pytest.mark.parametrize("scaled", ["inputs", "weights"])
def test_tanh_through_the_rnn_up_to_1e4(dtype, scaled):
    """h = tanh(w x) of the RNN with one unit, one step, U = 0, b = 0: for
    pre-activations w x on GRID (either x on the grid and w = 1, or the
    reverse), y is tanh within the dtype's tolerance and dx = w (1 - tanh^2),
    with no warning at all."""
    w, x = (1.0, GRID) if scaled == "inputs" else (GRID, np.ones_like(GRID))
    results = []
    for wi, xs in ([(w, x)] if scaled == "inputs" else [(wi, [1.0]) for wi in w]):
        cell = one_unit_cell(pg.RNN, np.array([[wi]]), dtype)
        xs = np.asarray(xs, dtype=np.float64).reshape(1, -1, 1)
        with strict():
            y, _, cache = cell.forward(xs)
            dx, _, grads = cell.backward(cache, np.ones_like(y))
        results.append((y.ravel(), dx.ravel(), grads))
    y = np.concatenate([r[0] for r in results])
    dx = np.concatenate([r[1] for r in results])
    a = (np.asarray(w) * x).astype(dtype).astype(np.float64)
    exact = np.tanh(a)
    assert_close(y, exact, dtype)
    assert_close(dx, np.asarray(w).astype(dtype) * (1 - exact**2), dtype)
    assert np.all(np.abs(y) <= 1) and np.all(dx * np.asarray(w) >= 0)
    assert y[np.argmax(a)] == 1 and y[np.argmin(a)] == -1
    for grads in (r[2] for r in results):
        assert all(np.all(np.isfinite(g)) for g in grads.values())


def test_sigmoid_through_the_simple_gru_up_to_1e4(dtype):
    """With h0 = 1 and a zero candidate, the simplified GRU's state after one
    step is its forget gate: h = sigmoid(x W_f). On GRID it is the exact
    sigmoid within the dtype's tolerance, and dx = sigmoid' W_f."""
    cell = one_unit_cell(pg.SimpleGRU, np.array([[1.0, 0.0]]), dtype)
    x = GRID.reshape(1, -1, 1)
    with strict():
        y, _, cache = cell.forward(x, np.ones((x.shape[1], 1)))
        dx, _, grads = cell.backward(cache, np.ones_like(y))
    s = expit(GRID.astype(dtype).astype(np.float64))
    assert_close(y.ravel(), s, dtype)
    assert_close(dx.ravel(), s * (1 - s), dtype)
    assert np.all((y >= 0) & (y <= 1)) and y.max() == 1 and y.min() < 1e-30
    assert all(np.all(np.isfinite(g)) for g in grads.values())


@pytest.mark.parametrize("huge", ["weights", "inputs"])
def test_saturated_cells_are_finite_and_agree_with_the_reference(config, dtype, huge):
    """Every cell with weights of size up to 1e4 (inputs in [-1, 1]), or inputs
    up to 1e4 (weights in [-0.5, 0.5]): most gates saturate (more than half of
    the gate values are exactly 0, 1 or -1), no warning is raised, the
    outputs and every gradient are finite and bounded, and they agree with
    the NumPy reference."""
    skip_scan(config, "the candidate is linear, so |h| is not bounded by 1; test_mincells.py "
                      "checks saturated min cells")
    cell = make_cell(config, 4, 6, dtype, scale=1e4 if huge == "weights" else 0.5)
    x, state0, dy, dstate = random_problem(cell, 8, 3)
    if huge == "inputs":
        x = x * 1e4
    with strict():
        y, state, cache = cell.forward(x, state0)
        dx, dstate0, grads = cell.backward(cache, dy, dstate)
    assert np.all(np.abs(y) <= 1) and np.all((cache.gates >= -1) & (cache.gates <= 1))
    saturated = np.isin(cache.gates, [0.0, 1.0, -1.0]).mean()
    assert saturated > 0.5, saturated
    for a in [y, *parts(state), dx, *parts(dstate0), *grads.values()]:
        assert np.all(np.isfinite(a))
    ref = pg.reference.from_cell(cell)
    with strict(underflow=False):
        ry, rstate, rcache = ref.forward(x, state0)
        rdx, rdstate0, rgrads = ref.backward(rcache, dy, dstate)
    # A pre-activation here can be a value near 0 summed from terms of 1e3
    # and more. Without a fused multiply-add (the portable path on x86-64)
    # each term is rounded once more, by up to eps/2 of its size, which can
    # reach an unsaturated gate: 10 times float32's tolerance there (4.6e-5
    # seen on y, 1.4e-5 on db).
    factor = 10.0 if _recurrent.simd_path() == "portable" and NO_FMA_PORTABLE else 1.0
    assert_close(y, ry, dtype, factor=factor)
    # dx sums dA * W: its rounding error scales with |W|, so compare it in
    # units of W's size (1e4 with huge weights). A state value that differs
    # by an ulp between the two backends (their own tanh and sigmoid) moves
    # dA by ~1e-16 and dx by ~1e-12 through such weights: over 20 seeds the
    # LSTM's dx differs by up to 1.5e-10, the coupled-gate LSTM's by 1.4e-10.
    w_scale = max(1.0, float(np.abs(cell.params["W"]).max()))
    assert_close(dx / w_scale, rdx / w_scale, dtype, factor=factor)
    for u, v in zip(parts(dstate0), parts(rdstate0), strict=True):
        assert_close(u, v, dtype, factor=factor)
    # dW sums x * dA: its rounding error scales with |x|, so compare it in
    # units of |x|'s size (1e4 with huge inputs).
    x_scale = np.abs(x).max()
    for k in grads:
        scale = x_scale if k == "W" else 1.0
        assert_close(grads[k] / scale, rgrads[k] / scale, dtype, k, factor=factor)


# -- NaN and Inf ---------------------------------------------------------------------

T, B, ROW, STEP = 6, 3, 1, 2
OTHERS = [0, 2]


def run(cell, x, state0, dy, dstate):
    y, state, cache = cell.forward(x, state0)
    dx, dstate0, grads = cell.backward(cache, dy, dstate)
    return y, parts(state), dx, parts(dstate0), grads


def same(a, b):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_a_non_finite_input_reaches_only_what_depends_on_it(config, dtype, value):
    """x[2, 1, 0] is NaN or +-Inf. Outputs of the other rows, and of row 1
    before step 2, are bitwise those of the clean input, and so are dx and
    dstate0 of the other rows. For NaN, row 1's outputs from step 2 on, its
    final state, its dx and dstate0, and every parameter gradient (a sum over
    all rows) are NaN; an Inf may instead saturate a gate, so row 1's outputs
    are NaN or within [-1, 1]."""
    skip_scan(config, "the candidate is linear: an Inf input gives an Inf state, not a "
                      "saturated one")
    cell = make_cell(config, 3, 4, dtype)
    x, state0, dy, dstate = random_problem(cell, T, B)
    clean = run(cell, x, state0, dy, dstate)
    x[STEP, ROW, 0] = value
    y, state, dx, dstate0, grads = run(cell, x, state0, dy, dstate)
    same(y[:STEP], clean[0][:STEP])
    same(y[:, OTHERS], clean[0][:, OTHERS])
    same(dx[:, OTHERS], clean[2][:, OTHERS])
    for u, v in zip(state + dstate0, clean[1] + clean[3], strict=True):
        same(u[OTHERS], v[OTHERS])
    if np.isnan(value):
        assert np.all(np.isnan(y[STEP:, ROW])) and np.all(np.isnan(dx[:, ROW]))
        assert all(np.all(np.isnan(s[ROW])) for s in state + dstate0)
        assert all(np.all(np.isnan(g)) for g in grads.values())
    else:
        row = y[STEP:, ROW]
        assert np.all(np.isnan(row) | (np.abs(row) <= 1))


def test_a_nan_state0_or_dy_reaches_only_its_row(config, dtype):
    """A NaN in row 1 of state0 makes row 1's outputs NaN and leaves the
    other rows bitwise unchanged. A NaN in dy[3, 1] makes dx[:4, 1] NaN
    (gradients flow back in time only), row 1 of dstate0 and the parameter
    gradients, and leaves dx[4:, 1] and the other rows bitwise unchanged."""
    skip_scan(config, "no U: a NaN in one unit never reaches the other units")
    cell = make_cell(config, 3, 4, dtype)
    x, state0, dy, dstate = random_problem(cell, T, B)
    clean = run(cell, x, state0, dy, dstate)
    bad0 = tuple(s.copy() for s in parts(state0))
    bad0[0][ROW, 0] = np.nan
    y, state, dx, dstate0, _ = run(cell, x, bad0 if cell._lstm else bad0[0], dy, dstate)
    same(y[:, OTHERS], clean[0][:, OTHERS])
    assert np.all(np.isnan(y[:, ROW]))
    dy_bad = dy.copy()
    dy_bad[3, ROW, 0] = np.nan
    y, state, dx, dstate0, grads = run(cell, x, state0, dy_bad, dstate)
    same(y, clean[0])
    same(dx[:, OTHERS], clean[2][:, OTHERS])
    same(dx[4:, ROW], clean[2][4:, ROW])
    assert np.all(np.isnan(dx[:4, ROW]))
    for u, v in zip(dstate0, clean[3], strict=True):
        same(u[OTHERS], v[OTHERS])
        assert np.all(np.isnan(u[ROW]))
    assert all(np.any(np.isnan(g)) for g in grads.values())
