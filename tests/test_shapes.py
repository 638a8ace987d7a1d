"""Edge sizes: T = 0, B = 0 and 1, D = 1, H = 1, and the shapes of results."""
import numpy as np
import pytest

from pyx_gru import reference
from helpers import assert_results_close, make_cell, parts, random_problem


def test_result_shapes_and_dtypes(config, dtype):
    cell = make_cell(config, 3, 4, dtype)
    x, state0, dy, dstate = random_problem(cell, 5, 2)
    y, state, cache = cell.forward(x, state0)
    assert y.shape == (5, 2, 4) and y.dtype == dtype
    assert all(s.shape == (2, 4) and s.dtype == dtype for s in parts(state))
    assert isinstance(state, tuple) == cell._lstm
    dx, dstate0, dparams = cell.backward(cache, dy, dstate)
    assert dx.shape == (5, 2, 3) and dx.dtype == dtype
    assert all(s.shape == (2, 4) and s.dtype == dtype for s in parts(dstate0))
    assert {k: v.shape for k, v in dparams.items()} == cell.param_shapes
    assert all(v.dtype == dtype for v in dparams.values())


def test_empty_sequence(config, dtype):
    """T = 0: no output, the final state is state0, the gradient of state0 is
    dstate and every parameter gradient is 0."""
    cell = make_cell(config, 3, 4, dtype)
    _, state0, _, dstate = random_problem(cell, 1, 2)
    y, state, cache = cell.forward(np.zeros((0, 2, 3)), state0)
    assert y.shape == (0, 2, 4)
    for a, b in zip(parts(state), parts(state0), strict=True):
        np.testing.assert_array_equal(a, np.asarray(b, dtype=dtype))
    dx, dstate0, dparams = cell.backward(cache, np.zeros((0, 2, 4)), dstate)
    assert dx.shape == (0, 2, 3)
    for a, b in zip(parts(dstate0), parts(dstate), strict=True):
        np.testing.assert_array_equal(a, np.asarray(b, dtype=dtype))
    assert all(np.all(v == 0) for v in dparams.values())


def test_empty_batch(config):
    cell = make_cell(config, 3, 4)
    y, state, cache = cell.forward(np.zeros((5, 0, 3)))
    assert y.shape == (5, 0, 4)
    dx, dstate0, dparams = cell.backward(cache, np.zeros((5, 0, 4)))
    assert dx.shape == (5, 0, 3)
    assert all(np.all(v == 0) for v in dparams.values())


@pytest.mark.parametrize("T,B,D,H", [(7, 1, 1, 1), (3, 1, 5, 1), (3, 4, 1, 6), (1, 1, 1, 1)])
def test_tiny_sizes_match_reference(config, dtype, T, B, D, H):
    cell = make_cell(config, D, H, dtype)
    ref = reference.from_cell(cell)
    x, state0, dy, dstate = random_problem(cell, T, B)
    got, want = cell.forward(x, state0), ref.forward(x, state0)
    assert_results_close(got, want, dtype)
    assert_results_close(cell.backward(got[2], dy, dstate), ref.backward(want[2], dy, dstate), dtype)


def test_default_state_and_gradients_are_zero(config):
    cell = make_cell(config, 3, 4)
    x, state0, _, _ = random_problem(cell, 4, 2)
    zeros = (np.zeros((2, 4)),) * 2 if cell._lstm else np.zeros((2, 4))
    a = cell.forward(x)
    b = cell.forward(x, zeros)
    np.testing.assert_array_equal(a[0], b[0])
    dx, dstate0, dparams = cell.backward(a[2])
    assert np.all(dx == 0) and all(np.all(v == 0) for v in dparams.values())


def test_results_are_deterministic(config):
    """Same inputs, bitwise the same results, call after call."""
    cell = make_cell(config, 6, 8, np.float32)
    x, state0, dy, dstate = random_problem(cell, 30, 5)
    first = cell.forward(x, state0)
    g1 = cell.backward(first[2], dy, dstate)
    for _ in range(3):
        again = cell.forward(x, state0)
        g2 = cell.backward(again[2], dy, dstate)
        np.testing.assert_array_equal(again[0], first[0])
        np.testing.assert_array_equal(g2[0], g1[0])
        for k in g1[2]:
            np.testing.assert_array_equal(g2[2][k], g1[2][k])


def test_long_sequence_batch_one():
    """T = 1000 at B = 1 stays finite and bounded (GRU state is a convex mix)."""
    cell = make_cell("gru_after", 8, 8, np.float32)
    x, _, dy, _ = random_problem(cell, 1000, 1)
    y, state, cache = cell.forward(x)
    assert np.all(np.abs(y) <= 1)
    dx, dstate0, dparams = cell.backward(cache, dy)
    assert np.all(np.isfinite(dx)) and all(np.all(np.isfinite(v)) for v in dparams.values())
