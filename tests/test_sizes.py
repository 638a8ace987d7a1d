"""Sizes: a request too large for memory is a clear ValueError raised before
anything is allocated; the estimates bound what is really allocated; and a
long sequence (T = 100,000) runs, equal to the same sequence in two chunks."""
import tracemalloc

import numpy as np
import pytest

import pyx_gru as pg
from pyx_gru import _limits, _workspace
from helpers import (CONFIGS, TOL, assert_close, make_cell, parts, skip_scan,
                     whole_and_halves)


def traced_peak(f):
    """The peak of memory traced (NumPy's arrays and Python's objects) while
    f() runs, and f's result. The buffer pool is emptied first: a buffer
    left free by an earlier call would be reused untraced."""
    _workspace.clear()
    tracemalloc.start()
    try:
        out = f()
        return tracemalloc.get_traced_memory()[1], out
    finally:
        tracemalloc.stop()


# (1, 8, 4, 256): the packed U and W of the per-step products (B >= 8, H >= 64)
# is most of what such a call allocates
@pytest.mark.parametrize("T,B,D,H", [(2000, 4, 16, 64), (300, 4, 8, 16), (40, 1, 3, 5),
                                     (1, 8, 4, 256)])
def test_estimates_bound_what_is_allocated(config, dtype, T, B, D, H):
    """forward_bytes, backward_bytes and cell_bytes are upper bounds of the
    memory traced during each call, and within 15% of it for the passes when
    the arrays dominate (estimates over 2 MiB)."""
    cls, kw = CONFIGS[config]
    cell_peak, cell = traced_peak(lambda: cls(D, H, dtype=dtype, seed=0, **kw))
    x = np.ones((T, B, D))
    fwd_peak, (_, _, cache) = traced_peak(lambda: cell.forward(x))
    bwd_peak, _ = traced_peak(lambda: cell.backward(cache))
    estimates = {
        "forward": (fwd_peak, _limits.forward_bytes(cell, T, B)),
        "backward": (bwd_peak, _limits.backward_bytes(cell, T, B)),
        "cell": (cell_peak, _limits.cell_bytes(D, H, len(cell.gates), np.dtype(dtype).itemsize)),
    }
    for what, (peak, estimate) in estimates.items():
        assert peak <= estimate, (what, peak, estimate)
        if estimate > 2**21 and what != "cell":
            assert peak >= 0.85 * estimate, (what, peak, estimate)


@pytest.mark.parametrize("make", [
    lambda: pg.LSTM(3, 2**29),   # G*H = 2**31 overflows BLAS's int
    lambda: pg.LSTM(10**6, 10**6),
    lambda: pg.GRU(2**31 - 1, 1000),
    lambda: pg.RNN(3, 500_000),
])
def test_a_cell_too_large_is_refused_before_allocating(make):
    peak, _ = traced_peak(lambda: pytest.raises(ValueError, make))
    assert peak < 2**20


def test_inputs_too_large_are_refused_before_allocating():
    cell = pg.GRU(3, 64)
    # A broadcast view: 24 bytes of data standing for 2**36 rows of x.
    x = np.broadcast_to(np.zeros(3), (2**20, 2**16, 3))
    with pytest.raises(ValueError, match=r"x has T\*B = 68719476736 rows, more than 32-bit BLAS"):
        cell.forward(x)
    x = np.broadcast_to(np.zeros(3), (2**20, 2**10, 3))
    peak, info = traced_peak(lambda: pytest.raises(ValueError, cell.forward, x))
    assert peak < 2**20
    message = str(info.value)
    assert "forward of x with (T, B, D) = (1048576, 1024, 3) needs about" in message
    assert "run the sequence in chunks" in message and "PYX_GRU_MEMORY_LIMIT" in message


def test_the_limit_is_exact_and_settable(monkeypatch):
    """A forward (or backward) pass runs when its estimate equals the limit
    and is refused one byte below; backward is checked on its own."""
    cell = make_cell("lstm", 3, 8)
    x = np.ones((50, 2, 3))
    need_f = _limits.forward_bytes(cell, 50, 2)
    need_b = _limits.backward_bytes(cell, 50, 2)
    monkeypatch.setenv("PYX_GRU_MEMORY_LIMIT", str(need_f))
    _, _, cache = cell.forward(x)
    monkeypatch.setenv("PYX_GRU_MEMORY_LIMIT", str(need_f - 1))
    with pytest.raises(ValueError, match="more than the .* of PYX_GRU_MEMORY_LIMIT"):
        cell.forward(x)
    monkeypatch.setenv("PYX_GRU_MEMORY_LIMIT", str(need_b))
    cell.backward(cache)
    monkeypatch.setenv("PYX_GRU_MEMORY_LIMIT", str(need_b - 1))
    with pytest.raises(ValueError, match=r"backward of a cache with \(T, B\) = \(50, 2\) needs about"):
        cell.backward(cache)
    monkeypatch.setenv("PYX_GRU_MEMORY_LIMIT", "lots")
    with pytest.raises(ValueError, match="PYX_GRU_MEMORY_LIMIT must be an integer"):
        cell.forward(x)
    monkeypatch.setenv("PYX_GRU_MEMORY_LIMIT", "-5")
    with pytest.raises(ValueError, match="PYX_GRU_MEMORY_LIMIT must be a number of bytes >= 0"):
        cell.forward(x)


def test_memory_plans_follow_the_policy():
    """The plans are kept between calls, read-only, and made again when the
    policy changes what they hold: with the per-step products sent to the
    BLAS there is no packed workspace, and the estimate and the pass shrink
    with it."""
    from pyx_gru import _recurrent
    cell = make_cell("gru_after", 8, 16, dtype=np.float32)
    kind = cell._description
    packed = _limits.forward_plan(kind, 10, 4, 8, 16, 4, False)
    packed_bytes = _limits.forward_bytes(cell, 10, 4, False)
    assert packed["packed"][0] > 0
    with pytest.raises(TypeError):
        packed["packed"] = (0,)
    x = np.ones((10, 4, 8), dtype=np.float32)
    y_packed = cell.forward(x, cache=False)[0]
    previous = _recurrent._set_packed(False)
    try:
        blas = _limits.forward_plan(kind, 10, 4, 8, 16, 4, False)
        assert blas["packed"] == (0,)
        assert cell._pass_bytes(False, 10, 4, False) == _limits.forward_bytes(cell, 10, 4, False) < packed_bytes
        assert cell._pass_bytes(True, 10, 4) == _limits.backward_bytes(cell, 10, 4)
        assert_close(cell.forward(x, cache=False)[0], y_packed, "float32")
    finally:
        _recurrent._set_packed(*previous)
    assert _limits.forward_plan(kind, 10, 4, 8, 16, 4, False) == packed
    assert cell._pass_bytes(False, 10, 4, False) == packed_bytes


def test_the_default_limit_is_the_available_memory(monkeypatch):
    """Without PYX_GRU_MEMORY_LIMIT: the memory available now, at most the
    physical memory; requests up to ALWAYS_FITS are not even checked."""
    monkeypatch.delenv("PYX_GRU_MEMORY_LIMIT", raising=False)
    limit, source = _limits.memory_limit()
    physical = _limits._physical_memory()
    assert source in ("available memory", "physical memory")
    assert 0 < limit <= physical
    calls = []
    monkeypatch.setattr(_limits, "memory_limit", lambda: calls.append(1) or (0, "nothing"))
    _limits.check_fits("small", _limits.ALWAYS_FITS, "")
    assert not calls
    with pytest.raises(ValueError, match=r"big needs about 64 MiB \(67108865 bytes\), more than the 0 MiB of nothing"):
        _limits.check_fits("big", _limits.ALWAYS_FITS + 1, "")
    assert calls


# -- a long sequence ---------------------------------------------------------------

def test_a_sequence_of_100000_steps_runs_and_equals_two_chunks(simd_path, config, dtype):
    """T = 100,000, B = 1, H = 32, forward and backward, on every vector
    path. The same sequence in two halves (the first half's final state is
    the second's state0; the second half's dstate0 is the first's dstate)
    gives bitwise the same outputs, states, dx and dstate0, and parameter
    gradients that sum to the whole one's within the dtype's tolerance (they
    are sums over 100,000 steps, accumulated in a different grouping)."""
    skip_scan(config, "two halves regroup the scan's blocks: equal to rounding, not bitwise "
                      "(test_mincells.py checks 100,000 steps to its tolerance)")
    (y, state, dx, dstate0, grads), (y12, s2, dx12, d0, (g1, g2)) = whole_and_halves(config, dtype)
    np.testing.assert_array_equal(y12, y)
    np.testing.assert_array_equal(dx12, dx)
    for a, b in zip(parts(s2) + parts(d0), parts(state) + parts(dstate0), strict=True):
        np.testing.assert_array_equal(a, b)
    assert np.all(np.isfinite(y)) and np.abs(y).max() > 0.1
    for k in grads:
        assert_close(g1[k] + g2[k], grads[k], dtype, k)
        assert np.all(np.isfinite(grads[k])) and np.abs(grads[k]).max() > TOL[dtype]
