"""forward(..., cache=False): the inference pass. It returns no cache, the
same outputs as the forward that keeps one (bitwise: see also
test_team.py, over thread splits and both product kernels), leaves its
input alone, and needs memory for y and a few steps, not for all T."""
import numpy as np
import pytest

import pyx_gru as pg
from pyx_gru import _limits, reference
from helpers import CONFIGS, make_cell, parts, random_problem
from test_sizes import traced_peak


def test_returns_no_cache_and_a_writable_y(config, dtype):
    cell = make_cell(config, D=3, H=4, dtype=dtype)
    x, state0, _, _ = random_problem(cell, 6, 2)
    y, state, cache = cell.forward(x, state0, cache=False)
    y_c, state_c, cache_c = cell.forward(x, state0)
    assert cache is None and isinstance(cache_c, pg.Cache)
    np.testing.assert_array_equal(y, y_c)
    for a, b in zip(parts(state), parts(state_c), strict=True):
        np.testing.assert_array_equal(a, b)
    assert y.flags.writeable and not y_c.flags.writeable  # y_c belongs to its cache
    y[0] = 7  # ours to keep
    with pytest.raises(TypeError, match="cache must be the Cache returned by forward"):
        cell.backward(cache)


def test_x_of_any_layout_gives_the_outputs_of_the_cached_pass(config, dtype):
    """Without a cache x is used as given when it already fits, and copied
    or cast otherwise: every layout gives the cached pass's y, bitwise."""
    cell = make_cell(config, D=3, H=4, dtype=dtype)
    x, state0, _, _ = random_problem(cell, 5, 2)
    x = x.astype(dtype)  # the cell's dtype: the layouts below are all it lacks
    want = cell.forward(x, state0)[0]
    wide = np.zeros((5, 4, 3), dtype=dtype)
    wide[:, ::2] = x
    unaligned = np.frombuffer(b"\0" + x.tobytes(), dtype=dtype, offset=1).reshape(x.shape)
    assert not unaligned.flags.aligned
    other = np.float64 if dtype == np.float32 else np.float32
    for given in (x, np.asfortranarray(x), wide[:, ::2], x.astype(x.dtype.newbyteorder()),
                  unaligned, np.ma.masked_array(x), x.tolist()):
        y = cell.forward(given, state0, cache=False)[0]
        np.testing.assert_array_equal(y, want)
        assert type(y) is np.ndarray
    cast = x.astype(other)
    np.testing.assert_array_equal(cell.forward(cast, state0, cache=False)[0],
                                  cell.forward(cast, state0)[0])


def test_padding_is_read_but_never_written(config):
    """Without a cache, x is not copied, so padding past the lengths is not
    zeroed either: it must still not reach any output, and x stays as given."""
    cell = make_cell(config, D=3, H=4)
    x, state0, _, _ = random_problem(cell, 7, 3)
    lengths = np.array([7, 2, 0])
    x[2:, 1] = np.nan
    x[:, 2] = np.inf
    given = x.copy()
    y, state, _ = cell.forward(x, state0, lengths, cache=False)
    np.testing.assert_array_equal(x, given)
    clean = x.copy()
    clean[2:, 1] = 0
    clean[:, 2] = 0
    y_c, state_c, _ = cell.forward(clean, state0, lengths)
    np.testing.assert_array_equal(y, y_c)
    for a, b in zip(parts(state), parts(state_c), strict=True):
        np.testing.assert_array_equal(a, b)
    assert np.all(y[2:, 1] == 0) and np.all(y[:, 2] == 0)


def test_the_reference_cells_take_it_too(config):
    # one interface: the NumPy cells accept cache=False and agree
    cell = make_cell(config, D=3, H=5)
    ref = reference.from_cell(cell)
    x, state0, _, _ = random_problem(cell, 5, 2)
    y, state, none = ref.forward(x, state0, cache=False)
    y_c, _, cache = ref.forward(x, state0)
    assert none is None and cache is not None
    np.testing.assert_array_equal(y, y_c)
    np.testing.assert_allclose(y, cell.forward(x, state0, cache=False)[0], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("value", [None, 0, 1, "no", [], 0.0])
def test_cache_must_be_a_bool(value):
    cell = pg.GRU(2, 3)
    with pytest.raises(TypeError, match="cache must be True or False, got"):
        cell.forward(np.zeros((2, 1, 2)), cache=value)
    cell.forward(np.zeros((2, 1, 2)), cache=np.bool_(False))  # NumPy's bool is a bool


@pytest.mark.parametrize("T,B,D,H", [(2000, 4, 16, 64), (500, 16, 8, 64), (40, 1, 3, 5)])
def test_memory_is_y_and_a_few_steps(config, dtype, T, B, D, H):
    """The estimate bounds what is allocated; on long sequences the pass
    takes a fraction of what the forward with a cache takes. (The scan
    cells' kernel allocates a chunk of gates per thread itself, out of
    tracemalloc's sight: test_mincells.py checks the estimate counts it.)"""
    cls, kw = CONFIGS[config]
    cell = cls(D, H, dtype=dtype, seed=0, **kw)
    x = np.ones((T, B, D), dtype=dtype)  # no cast: no copy of x either
    peak, _ = traced_peak(lambda: cell.forward(x, cache=False))
    estimate = _limits.forward_bytes(cell, T, B, cache=False)
    assert peak <= estimate
    if T * B >= 2000:
        y_bytes = T * B * H * np.dtype(dtype).itemsize
        assert peak <= 1.25 * y_bytes + 2**20, (peak, y_bytes)
        with_cache, _ = traced_peak(lambda: cell.forward(x))
        assert peak < 0.5 * with_cache, (peak, with_cache)
