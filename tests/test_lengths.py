"""Variable-length sequences: each sequence equals running it alone."""
import numpy as np
import pytest

from helpers import assert_close, make_cell, parts, random_problem


@pytest.mark.parametrize("lengths", [[6, 0, 3, 1], [2, 2, 2, 2], [6, 6, 5, 6]])
def test_each_sequence_equals_running_it_alone(config, dtype, lengths):
    """y, final state, dx, dstate0 and each sequence's share of the parameter
    gradients equal those of x[:L, b] run alone; y is 0 past the length."""
    cell = make_cell(config, 3, 4, dtype)
    T, B = 6, 4
    x, state0, dy, dstate = random_problem(cell, T, B, seed=sum(lengths))
    lengths = np.array(lengths)
    y, state, cache = cell.forward(x, state0, lengths)
    dx, dstate0, dparams = cell.backward(cache, dy, dstate)
    total = {k: np.zeros_like(v) for k, v in dparams.items()}
    for b, L in enumerate(lengths):
        s0 = tuple(s[b:b + 1] for s in parts(state0))
        ds = tuple(s[b:b + 1] for s in parts(dstate))
        s0, ds = (s0, ds) if cell._lstm else (s0[0], ds[0])
        yb, sb, cb = cell.forward(x[:L, b:b + 1], s0)
        dxb, ds0b, dpb = cell.backward(cb, dy[:L, b:b + 1], ds)
        assert_close(y[:L, b:b + 1], yb, dtype)
        assert np.all(y[L:, b] == 0)
        for u, v in zip(parts(state), parts(sb), strict=True):
            assert_close(u[b:b + 1], v, dtype)
        assert_close(dx[:L, b:b + 1], dxb, dtype)
        assert np.all(dx[L:, b] == 0)
        for u, v in zip(parts(dstate0), parts(ds0b), strict=True):
            assert_close(u[b:b + 1], v, dtype)
        for k in total:
            total[k] += dpb[k]
    for k in total:
        assert_close(dparams[k], total[k], dtype, k)


def test_padding_never_matters(config):
    """Past a sequence's end x may hold anything, NaN included, and dy too."""
    cell = make_cell(config, 3, 4)
    x, state0, dy, dstate = random_problem(cell, 5, 3)
    lengths = [5, 2, 0]
    clean = cell.forward(x, state0, lengths)
    grads = cell.backward(clean[2], dy, dstate)
    x_bad, dy_bad = x.copy(), dy.copy()
    x_bad[2:, 1] = np.nan
    x_bad[:, 2] = 1e30
    dy_bad[2:, 1] = np.inf
    dy_bad[:, 2] = np.nan
    dirty = cell.forward(x_bad, state0, lengths)
    dirty_grads = cell.backward(dirty[2], dy_bad, dstate)
    np.testing.assert_array_equal(dirty[0], clean[0])
    for a, b in zip(parts(dirty[1]), parts(clean[1]), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(dirty_grads[0], grads[0])
    for k in grads[2]:
        np.testing.assert_array_equal(dirty_grads[2][k], grads[2][k])


def test_full_lengths_equal_no_lengths(config):
    cell = make_cell(config, 3, 4)
    x, state0, dy, dstate = random_problem(cell, 4, 2)
    a = cell.forward(x, state0, [4, 4])
    b = cell.forward(x, state0)
    np.testing.assert_array_equal(a[0], b[0])
    ga, gb = cell.backward(a[2], dy, dstate), cell.backward(b[2], dy, dstate)
    np.testing.assert_array_equal(ga[0], gb[0])
    for k in ga[2]:
        np.testing.assert_allclose(ga[2][k], gb[2][k], rtol=1e-14, atol=1e-15)


def test_zero_lengths_return_the_initial_state(config):
    cell = make_cell(config, 3, 4)
    x, state0, dy, dstate = random_problem(cell, 4, 2)
    y, state, cache = cell.forward(x, state0, [0, 0])
    assert np.all(y == 0)
    for a, b in zip(parts(state), parts(state0), strict=True):
        np.testing.assert_array_equal(a, b)
    dx, dstate0, dparams = cell.backward(cache, dy, dstate)
    assert np.all(dx == 0)
    for a, b in zip(parts(dstate0), parts(dstate), strict=True):
        np.testing.assert_array_equal(a, b)
    assert all(np.all(v == 0) for v in dparams.values())
