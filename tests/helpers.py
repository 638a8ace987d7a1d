"""Helpers the tests import: every cell configuration, per-dtype
tolerances, random problems with every parameter non-zero, and the
comparisons. Fixtures, hooks and the Hypothesis profiles are in
``conftest.py``; Hypothesis strategies in ``strategies.py``."""
import os

import numpy as np
import pytest
from hypothesis import settings

from pyx_gru import _kinds, _recurrent

# The Hypothesis profile of this run (conftest.py registers and loads it):
# "ci" when CI is set, else "dev", unless HYPOTHESIS_PROFILE names one.
# Property tests scale their example counts with EXAMPLE_SCALE.
PROFILE = os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
EXAMPLE_SCALE = {"ci": 1.0, "dev": 0.25, "thorough": 4.0}.get(PROFILE, 1.0)

# Lines for the end of the run (the fuzz suite's counts): conftest's
# pytest_terminal_summary prints them.
SUMMARY = []


def examples(n):
    """max_examples for a property test that should draw n examples on CI."""
    return settings(max_examples=max(5, int(n * EXAMPLE_SCALE)))


# name -> (class, constructor keywords): every cell kind (pyx_gru._kinds),
# by its explicit name ("simple_gru", "gru_after", ...)
CONFIGS = {k.id: (k.cell_class, k.keywords) for k in _kinds.KINDS.values()}
# The configurations whose gates read only x_t (minGRU, minLSTM: no recurrent
# weights U, a linear candidate, run by pyx_gru._scan); tests/test_mincells.py
# covers what a suite below cannot ask of them.
SCAN_CONFIGS = frozenset(k.id for k in _kinds.KINDS.values() if k.scan)


def skip_scan(config, why):
    """Skip a test of a suite over CONFIGS for minGRU and minLSTM, saying why."""
    if config in SCAN_CONFIGS:
        pytest.skip(f"{config}: {why}")


DTYPES = [np.float32, np.float64]
# Compiled vs reference, relative to the scale of the compared array.
TOL = {np.float32: 1e-5, np.float64: 1e-12}

# The vector paths of the kernels this CPU runs (widest first): every kernel
# test that takes conftest's simd_path fixture runs on each of them.
SIMD_PATHS = _recurrent.simd_paths()


def make_cell(name, D=3, H=4, dtype=np.float64, seed=0, scale=0.5):
    """A cell whose every parameter (biases, b_hg and peepholes included) is
    drawn from U(-scale, scale), so that no term of the equations is zero."""
    cls, kw = CONFIGS[name]
    cell = cls(D, H, dtype=dtype, seed=seed, **kw)
    rng = np.random.default_rng(seed + 1000)
    cell.params = {k: rng.uniform(-scale, scale, v.shape) for k, v in cell.params.items()}
    return cell


def random_state(cell, B, rng, scale=0.5):
    H = cell.hidden_size
    if cell._lstm:
        return (rng.uniform(-scale, scale, (B, H)), rng.uniform(-scale, scale, (B, H)))
    return rng.uniform(-scale, scale, (B, H))


def random_problem(cell, T, B, seed=0):
    """x, state0, dy, dstate for a cell (float64; the cell casts)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (T, B, cell.input_size))
    state0 = random_state(cell, B, rng)
    dy = rng.standard_normal((T, B, cell.hidden_size))
    dstate = random_state(cell, B, rng, scale=1.0)
    return x, state0, dy, dstate


def whole_and_halves(config, dtype, T=100_000, h=50_000, D=8, H=32):
    """Run one sequence (B = 1) whole and as two halves, the first half's
    final state the second's state0 and the second half's dstate0 the
    first's dstate.

    Returns
    -------
    whole : tuple
        y, state, dx, dstate0, grads of the whole sequence.
    halves : tuple
        The same of the halves (y and dx concatenated, the second half's
        state, the first half's dstate0), and the two halves' grads.
    """
    cell = make_cell(config, D, H, dtype)
    x, state0, dy, dstate = random_problem(cell, T, 1)
    y, state, cache = cell.forward(x, state0)
    dx, dstate0, grads = cell.backward(cache, dy, dstate)
    y1, s1, c1 = cell.forward(x[:h], state0)
    y2, s2, c2 = cell.forward(x[h:], s1)
    dx2, d_mid, g2 = cell.backward(c2, dy[h:], dstate)
    dx1, d0, g1 = cell.backward(c1, dy[:h], d_mid)
    return ((y, state, dx, dstate0, grads),
            (np.concatenate([y1, y2]), s2, np.concatenate([dx1, dx2]), d0, (g1, g2)))


def parts(state):
    """A state or state gradient as a tuple of arrays."""
    return tuple(state) if isinstance(state, tuple) else (state,)


def assert_close(actual, expected, dtype, err_msg="", factor=1.0):
    """Equal to the dtype's tolerance (times ``factor``), relative to the
    scale of ``expected``."""
    expected = np.asarray(expected, dtype=np.float64)
    tol = TOL[np.dtype(dtype).type] * factor
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol * scale, err_msg=err_msg)


def assert_results_close(got, want, dtype):
    """Compare (y, state, _) forward results or (dx, dstate0, dparams) backward
    results."""
    a0, a1, a2 = got
    b0, b1, b2 = want
    assert_close(a0, b0, dtype, "first output")
    for i, (u, v) in enumerate(zip(parts(a1), parts(b1), strict=True)):
        assert_close(u, v, dtype, f"state part {i}")
    if isinstance(b2, dict):
        assert a2.keys() == b2.keys()
        for k in b2:
            assert_close(a2[k], b2[k], dtype, f"gradient of {k}")
