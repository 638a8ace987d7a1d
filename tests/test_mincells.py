"""minGRU and minLSTM (Feng et al. 2024): the compiled passes (pyx_gru._scan)
against the NumPy reference and finite differences, the time-blocked scan
against the sequential recurrence, the cells' properties, saving, inference
step by step and the checks on bad input.

The scan's tolerance: split by blocks of time (small batches), the blocks
regroup the products of the a_t, so results differ from one thread's in
the last bits; with |a_t| <= 1 the difference stays within a few units of
rounding of the largest state times the steps of a block. The tests compare
with helpers.TOL (1e-5 float32, 1e-12 float64, relative to the scale) times
SCAN_FACTOR; for one team size the results are bitwise the same, and split
by rows bitwise those of one thread."""
import numpy as np
import pytest

import pyx_gru as pg
from pyx_gru import _blas, _scan, _threads, reference
from helpers import DTYPES, assert_close, assert_results_close, make_cell, random_problem, whole_and_halves

MIN_CELLS = ["mingru", "minlstm"]
needs_hooks = pytest.mark.skipif(not _threads.BOUND, reason="no OpenBLAS thread hooks in this process")
# The scan against the sequential recurrence: at most this many times TOL.
SCAN_FACTOR = 10


@pytest.fixture
def split_every_call():
    """Let every call run on as many threads as the BLAS allows (one step a
    member at least), split by rows from one row a member; restored after."""
    previous = _scan._set_split(1.0, 1, 1)
    yield
    _scan._set_split(*previous)


def run(cell, x, state0, dy, dstate, lengths=None, gates=None):
    y, state, cache = cell.forward(x, state0, lengths, gates=gates)
    dx, dstate0, dparams = cell.backward(cache, dy, dstate)
    return [y, state, dx, dstate0, *dparams.values()]


# -- against the reference and finite differences ---------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("name", MIN_CELLS)
@pytest.mark.parametrize("lengths", [None, [11, 4, 0, 7]], ids=["full", "lengths"])
@pytest.mark.parametrize("pinned", [False, True], ids=["learned", "pinned"])
@pytest.mark.parametrize("H", [6, 37])
def test_compiled_matches_reference(simd_path, name, dtype, lengths, pinned, H):
    # H = 37: the forward's rows run whole vectors of every path, then a tail
    assert _scan.simd_path() == simd_path
    cell = make_cell(name, 5, H, dtype=dtype)
    ref = reference.from_cell(cell)
    x, state0, dy, dstate = random_problem(cell, 11, 4)
    gates = {cell.gates[0]: np.linspace(0.1, 0.9, H)} if pinned else None
    got = cell.forward(x, state0, lengths, gates=gates)
    want = ref.forward(x, state0, lengths, gates=gates)
    assert_results_close(got, want, dtype)
    assert_results_close(cell.backward(got[2], dy, dstate), ref.backward(want[2], dy, dstate),
                         dtype)


@pytest.mark.parametrize("name", MIN_CELLS)
def test_empty_sequences_and_batches(name):
    cell = make_cell(name, 3, 4)
    h0 = np.ones((2, 4))
    y, h, cache = cell.forward(np.zeros((0, 2, 3)), h0)
    assert y.shape == (0, 2, 4)
    np.testing.assert_array_equal(h, h0)
    dx, dh0, grads = cell.backward(cache, None, np.full((2, 4), 3.0))
    assert dx.shape == (0, 2, 3)
    np.testing.assert_array_equal(dh0, 3.0)
    assert not any(np.any(g) for g in grads.values())
    y, h, cache = cell.forward(np.zeros((4, 0, 3)))
    assert y.shape == (4, 0, 4) and h.shape == (0, 4)
    dx, dh0, _ = cell.backward(cache)
    assert dx.shape == (4, 0, 3) and dh0.shape == (0, 4)


# -- the scan by blocks of time against the sequential recurrence ------------

@needs_hooks
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("name", MIN_CELLS)
@pytest.mark.parametrize("T,B", [(64, 1), (37, 3), (5, 2), (3, 4)])
@pytest.mark.parametrize("masked", [False, True], ids=["full", "lengths"])
def test_scan_matches_sequential_and_repeats_bitwise(split_every_call, name, dtype, T, B,
                                                     masked):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    cell = make_cell(name, 4, 8, dtype=dtype)
    x, state0, dy, dstate = random_problem(cell, T, B)
    lengths = np.arange(B) * T // max(B, 1) + 1 if masked else None
    results = {}
    GH = cell.params["W"].shape[1]
    # 3 and 4 members (more threads than cores is allowed) chain several carries
    for n in (1, 2, 2, 3, 4, 4):
        with threadpoolctl.threadpool_limits(n, user_api="blas"):
            if _scan.team_size(T, B, 4, GH) != min(n, T):
                pytest.skip(f"the BLAS does not give this process {n} threads")
            got = run(cell, x, state0, dy, dstate, lengths)
        if n in results:   # the same team size: bitwise the same
            for u, v in zip(got, results[n], strict=True):
                np.testing.assert_array_equal(u, v)
        results[n] = got
    for n in (2, 3, 4):
        for u, v in zip(results[n], results[1], strict=True):
            assert_close(u, v, dtype, factor=SCAN_FACTOR)


def test_split_takes_rows_from_16_rows_a_member():
    assert _scan.split(1, 7) == "none"
    assert _scan.split(2, 32) == _scan.split(2, 33) == _scan.split(3, 48) == "rows"
    assert _scan.split(2, 1) == _scan.split(2, 31) == _scan.split(4, 63) == "time"
    previous = _scan._set_split(2e5, 4, 1)
    try:
        assert _scan.split(2, 2) == _scan.split(3, 3) == "rows"
        assert _scan.split(4, 3) == "time"
    finally:
        _scan._set_split(*previous)


@needs_hooks
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("name", MIN_CELLS)
@pytest.mark.parametrize("masked", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("pinned", [False, True], ids=["learned", "pinned"])
def test_split_by_rows_is_bitwise_one_thread(simd_path, split_every_call, name, dtype, masked,
                                             pinned):
    """Split by rows (here from one row a member): each member's rows run
    exact from h_0 (and dstate), and every element of x @ W and dA @ W.T is
    one chain in k order, so the outputs, dx, dstate0 and db are bitwise
    those of one thread (5 rows: 3 + 2, 2 + 2 + 1, ...). dW = x.T @ dA is
    the BLAS's, each member its columns: OpenBLAS's Haswell kernels round a
    split product differently, so dW is equal to rounding."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    cell = make_cell(name, 6, 20, dtype=dtype)
    T, B = 13, 5
    x, state0, dy, dstate = random_problem(cell, T, B)
    lengths = [13, 4, 0, 9, 1] if masked else None
    gates = {cell.gates[0]: np.linspace(0.1, 0.9, 20)} if pinned else None
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        want = run(cell, x, state0, dy, dstate, lengths, gates)
    for n in (2, 3, 5):
        with threadpoolctl.threadpool_limits(n, user_api="blas"):
            if _scan.team_size(T, B, 6, cell.params["W"].shape[1]) != n:
                pytest.skip(f"the BLAS does not give this process {n} threads")
            assert _scan.split(n, B) == "rows"
            got = run(cell, x, state0, dy, dstate, lengths, gates)
        y, state, dx, dstate0, dW, db = got
        for u, v in zip((y, state, dx, dstate0, db), want[:4] + want[5:], strict=True):
            np.testing.assert_array_equal(u, v)
        assert_close(dW, want[4], dtype)


@needs_hooks
@pytest.mark.parametrize("name", MIN_CELLS)
@pytest.mark.parametrize("team,B", [(1, 3), (2, 1), (2, 4)], ids=["alone", "time", "rows"])
def test_chunks_of_the_projection_change_no_bit(split_every_call, name, team, B):
    """The forward projects x @ W and the backward dx = dA @ W.T a chunk of
    rows at a time: any chunk size gives the same bits."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    cell = make_cell(name, 5, 24, dtype=np.float32)
    x, state0, dy, dstate = random_problem(cell, 23, B)
    results = []
    previous = _scan._set_chunk_rows(64)
    try:
        for rows in (64, 1, 3, 10_000):
            _scan._set_chunk_rows(rows)
            with threadpoolctl.threadpool_limits(team, user_api="blas"):
                if _scan.team_size(23, B, 5, cell.params["W"].shape[1]) != team:
                    pytest.skip(f"the BLAS does not give this process {team} threads")
                results.append(run(cell, x, state0, dy, dstate, [23, 5, 17, 0][:B]))
    finally:
        _scan._set_chunk_rows(previous)
    for got in results[1:]:
        for u, v in zip(got, results[0], strict=True):
            np.testing.assert_array_equal(u, v)


@needs_hooks
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("name", MIN_CELLS)
@pytest.mark.parametrize("team,B", [(1, 3), (2, 1), (2, 4), (3, 2)],
                         ids=["alone", "time", "rows", "time3"])
@pytest.mark.parametrize("masked", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("pinned", [False, True], ids=["learned", "pinned"])
def test_forward_without_a_cache_is_bitwise_the_cached(split_every_call, name, dtype, team, B,
                                                       masked, pinned):
    """Without a cache the kernel keeps a chunk of gates and a_t per thread
    (chunks of 3 rows here: several per member), not every step's: the
    outputs and final state are bitwise those of the forward with a cache."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    cell = make_cell(name, 5, 12, dtype=dtype)
    x, state0, _, _ = random_problem(cell, 17, B)
    lengths = [17, 6, 0, 11][:B] if masked else None
    gates = {cell.gates[0]: np.linspace(0.1, 0.9, 12)} if pinned else None
    previous = _scan._set_chunk_rows(3)
    try:
        with threadpoolctl.threadpool_limits(team, user_api="blas"):
            if _scan.team_size(17, B, 5, cell.params["W"].shape[1]) != team:
                pytest.skip(f"the BLAS does not give this process {team} threads")
            y, h, cache = cell.forward(x, state0, lengths, gates=gates)
            y2, h2, none = cell.forward(x, state0, lengths, gates=gates, cache=False)
    finally:
        _scan._set_chunk_rows(previous)
    assert none is None
    np.testing.assert_array_equal(y2, y)
    np.testing.assert_array_equal(h2, h)


def test_own_elements_are_the_kernels_buffers():
    """What _scan's passes malloc, counted by hand: W packed in panels of 16
    floats (8 doubles), the carries, and without a cache the chunks of
    gates (and a_t, or every step's a_t when split by time)."""
    # minGRU, D = 8, H = 32 (GH = 64), float32: W packed 4 panels x 8 x 16
    own = _scan.own_elements
    assert own(_scan.MINGRU, 5000, 1, 8, 32, 4, True, False, 2) == 512 + 2 * 2 * 32
    assert own(_scan.MINGRU, 5000, 1, 8, 32, 4, False, False, 2) == (
        512 + 2 * 2 * 32 + 2 * 64 * 64 + 5000 * 32)           # by time: every a_t
    assert own(_scan.MINGRU, 5000, 1, 8, 32, 4, False, False, 1) == (
        512 + 2 * 32 + 64 * 64 + 64 * 32)                      # alone: a chunk of a_t
    assert own(_scan.MINGRU, 5000, 96, 8, 32, 4, False, False, 2) == (
        512 + 2 * 2 * 96 * 32 + 2 * 96 * 64 + 2 * 96 * 32)     # by rows, chunks of B rows
    # minLSTM backward, D = 20, H = 10 (GH = 30), float64: W.T packed in
    # panels of 8 (20 -> 3 panels x 30 rows x 8), and 3 carries a member
    assert own(_scan.MINLSTM, 7, 3, 20, 10, 8, True, True, 4) == 3 * 30 * 8 + 3 * 4 * 3 * 10


@pytest.mark.parametrize("name", MIN_CELLS)
def test_the_estimate_counts_the_kernels_own_buffers(name):
    """forward_bytes and backward_bytes add, to the arrays of the memory plan,
    exactly what _scan.own_elements counts (checked by hand above) for a
    team as large as the CPU count. Without a cache at B = 1 on two CPUs or
    more (a split by blocks of time) that includes every step's a_t, as much
    again as the output; with a cache the plan holds every step's gates."""
    import math
    import os

    from pyx_gru import _limits
    cell = make_cell(name, 8, 32, dtype=np.float32)
    T, G, n = 5000, len(cell.gates), max(1, os.cpu_count() or 1)
    y_bytes = T * 32 * 4

    def plan_bytes(plan, B):
        # what the estimate holds besides the kernel's own buffers
        return (4 * (T * B * 8 + sum(math.prod(v) for v in plan.values())
                     + _limits._STATE_ROWS * B * 32) + 8 * B + _limits.OVERHEAD)

    for B in (1, 64):
        plan = _limits.forward_plan(cell._description, T, B, 8, 32, 4, cache=False)
        own = _scan.own_elements(cell._kind, T, B, 8, 32, 4, False, False, n)
        assert _limits.forward_bytes(cell, T, B, cache=False) == plan_bytes(plan, B) + 4 * own
    if n > 1:
        assert _limits.forward_bytes(cell, T, 1, cache=False) >= 2 * y_bytes
    assert _limits.forward_bytes(cell, T, 64, cache=False) < 64 * (1.3 * y_bytes + 4 * 8 * T) + 2**22
    assert _limits.forward_bytes(cell, T, 64) > 64 * (G + 2) * y_bytes
    back = _scan.own_elements(cell._kind, T, 64, 8, 32, 4, True, True, n)
    bplan = _limits.backward_plan(cell._description, T, 64, 8, 32, 4)
    params = (8 + 32 + 1) * G * 32 + 4 * 32
    want = (4 * (T * 64 * 32 + sum(math.prod(v) for v in bplan.values()) + back + params
                 + _limits._STATE_ROWS * 64 * 32) + 8 * (G * 32 + 4 * 32) + _limits.OVERHEAD)
    assert _limits.backward_bytes(cell, T, 64) == want


@needs_hooks
@pytest.mark.parametrize("name", MIN_CELLS)
def test_long_slow_scan_stays_within_the_tolerance(split_every_call, name):
    """a_t close to 1 (the state fades slowly) over 3000 steps in float32:
    the regrouped products keep the scan within the stated tolerance."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    cell = make_cell(name, 4, 8, dtype=np.float32)
    p = dict(cell.params)
    H = 8
    b = p["b"].copy()
    if name == "mingru":
        b[:H] = -6.0           # z ~ 0.0025: a = 1 - z ~ 0.9975
    else:
        b[:H], b[H:2 * H] = 4.0, -4.0   # f' ~ 0.98
    p["b"] = b
    cell.params = p
    x, state0, dy, dstate = random_problem(cell, 3000, 1)
    out = []
    for n in (1, 2):
        with threadpoolctl.threadpool_limits(n, user_api="blas"):
            out.append(run(cell, x, state0, dy, dstate))
    for u, v in zip(out[1], out[0], strict=True):
        assert_close(u, v, np.float32, factor=SCAN_FACTOR)


@needs_hooks
def test_team_follows_the_blas_limit(split_every_call):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        assert _scan.team_size(1000, 1, 64, 128) == 1
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        assert _scan.team_size(1000, 1, 64, 128) == min(2, _blas.threads())
    # small calls stay on one thread with the default thresholds
    _scan._set_split(2e5, 4)
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        assert _scan.team_size(4, 1, 4, 8) == 1


# -- properties ---------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_mingru_z0_keeps_the_state(dtype):
    """z = 0: h_t = h_{t-1}, so y[t] = h_0 at every step, and the gradient
    reaches h_0 untouched: dstate0 = dstate + sum_t dy[t]."""
    cell = make_cell("mingru", 3, 4, dtype=dtype)
    x, h0, dy, dh = random_problem(cell, 9, 2)
    y, h, cache = cell.forward(x, h0, gates={"z": 0.0})
    np.testing.assert_array_equal(y, np.broadcast_to(h0.astype(dtype), y.shape))
    np.testing.assert_array_equal(h, h0.astype(dtype))
    dx, dh0, grads = cell.backward(cache, dy, dh)
    assert_close(dh0, dh + dy.sum(0), dtype)
    assert not np.any(dx) and not np.any(grads["W"]) and not np.any(grads["b"])


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_mingru_z1_forgets_the_state(dtype):
    """z = 1: h_t = g_t = x_t W_g + b_g, whatever h_{t-1}; dstate0 = 0."""
    cell = make_cell("mingru", 3, 4, dtype=dtype)
    x, h0, dy, dh = random_problem(cell, 6, 2)
    y, _, cache = cell.forward(x, h0, gates={"z": 1.0})
    W, b = cell.params["W"], cell.params["b"]
    assert_close(y, x @ W[:, 4:] + b[4:], dtype)
    _, dh0, _ = cell.backward(cache, dy, dh)
    assert not np.any(dh0)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_minlstm_weights_sum_to_one(dtype):
    """f' + i' = 1: h_t is a convex mix of h_{t-1} and g_t (a_t = f' in the
    cache, and b_t = i' g_t = (1 - a_t) g_t)."""
    cell = make_cell("minlstm", 3, 5, dtype=dtype, scale=2.0)
    x, h0, _, _ = random_problem(cell, 20, 3)
    y, _, cache = cell.forward(x, h0)
    H = 5
    f, i, g = cache.gates[..., :H], cache.gates[..., H:2 * H], cache.gates[..., 2 * H:]
    eps = np.finfo(dtype).eps
    assert np.all(np.abs(f / (f + i) + i / (f + i) - 1) <= 2 * eps)
    np.testing.assert_array_equal(cache.a, f / (f + i))
    h_prev = cache.hs[:-1]
    lo, hi = np.minimum(h_prev, g), np.maximum(h_prev, g)
    slack = 4 * eps * np.maximum(np.abs(lo), np.abs(hi))
    assert np.all((y >= lo - slack) & (y <= hi + slack))


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("name", MIN_CELLS)
def test_forward_rows_do_the_scalar_operations_on_every_path(simd_path, name, dtype):
    """The forward row (_scan.h) runs whole vectors of the path and then
    single elements (H = 37): each element gets the scalar code's operations,
    so a_t and h_1 are bitwise the NumPy expressions of the stored gates:
    minGRU a = 1 - z, h = a h_0 + z g; minLSTM a = f / (f + i),
    h = a h_0 + (i / (f + i)) g."""
    H = 37
    cell = make_cell(name, 5, H, dtype=dtype, scale=2.0)
    x, h0, _, _ = random_problem(cell, 3, 2)
    h0 = h0.astype(dtype)
    y, _, cache = cell.forward(x, h0)
    gates = cache.gates[0]
    g = gates[:, -H:]
    if name == "mingru":
        z = gates[:, :H]
        a, b = 1 - z, z * g
    else:
        f, i = gates[:, :H], gates[:, H:2 * H]
        a, b = f / (f + i), i / (f + i) * g
    np.testing.assert_array_equal(cache.a[0], a)
    np.testing.assert_array_equal(y[0], a * h0 + b)


@pytest.mark.parametrize("name", MIN_CELLS)
def test_a_constant_input_drives_h_to_the_candidate(name):
    """With x_t = x constant, a and b are constant and h_t -> b / (1 - a) =
    g = x W_g + b_g, the fixed point, geometrically at the rate a."""
    cell = make_cell(name, 3, 4)
    x = np.tile(np.array([0.3, -0.2, 0.5]), (400, 2, 1))
    y, h, cache = cell.forward(x, np.full((2, 4), 5.0))
    G = len(cell.gates)
    g = x[0] @ cell.params["W"][:, (G - 1) * 4:] + cell.params["b"][(G - 1) * 4:]
    a = cache.a[0]
    assert np.all(a < 1)
    np.testing.assert_allclose(h, g, rtol=0, atol=1e-9 + 10 * np.max(a) ** 400)
    # the distance to the fixed point shrinks by a at each step
    np.testing.assert_allclose(y[1] - g, a * (y[0] - g), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", MIN_CELLS)
def test_cache_a_is_the_recurrence_coefficient(name):
    cell = make_cell(name, 3, 4)
    x, h0, _, _ = random_problem(cell, 7, 2)
    y, _, cache = cell.forward(x, h0, lengths=[7, 3])
    if name == "mingru":
        np.testing.assert_array_equal(cache.a[:, 0], 1 - cache.gates[:, 0, :4])
    assert np.all(cache.a[3:, 1] == 1)        # past the length: carried
    assert not np.any(y[3:, 1])


# -- inference, saving, layers -------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("name", MIN_CELLS)
def test_inference_and_step_by_step(name, dtype):
    cell = make_cell(name, 3, 4, dtype=dtype)
    x, h0, _, _ = random_problem(cell, 8, 2)
    y, h, _ = cell.forward(x, h0)
    y2, h2, c2 = cell.forward(x, h0, cache=False)
    assert c2 is None
    np.testing.assert_array_equal(y2, y)
    np.testing.assert_array_equal(h2, h)
    state = h0
    for t in range(8):
        yt, state, _ = cell.forward(x[t:t + 1], state, cache=False)
        assert_close(yt[0], y[t], dtype)
    assert_close(state, h, dtype)


@pytest.mark.parametrize("name", MIN_CELLS)
def test_save_and_load(tmp_path, name):
    cell = make_cell(name, 3, 4, dtype=np.float32)
    loaded = pg.load(cell.save(tmp_path / "c.npz"))
    assert type(loaded) is type(cell) and loaded.config == cell.config
    assert loaded.dtype == cell.dtype and set(loaded.params) == {"W", "b"}
    for k in cell.params:
        np.testing.assert_array_equal(loaded.params[k], cell.params[k])


@pytest.mark.parametrize("name", MIN_CELLS)
def test_a_model_of_min_cells_trains_and_steps(name):
    """make_cell knows the cells; Model.step, one step at a time, gives
    forward's outputs; backward gives every parameter's gradient."""
    model = pg.Model(3, 5, 2, cell=name, num_layers=2, readout="every", seed=0)
    x = np.random.default_rng(0).standard_normal((6, 2, 3))
    out, cache = model.forward(x)
    state = None
    for t in range(6):
        out_t, state = model.step(x[t], state)
        np.testing.assert_allclose(out_t, out[t], rtol=1e-12, atol=1e-12)
    _, grads = model.backward(cache, np.ones_like(out))
    assert set(grads) == set(model.params) and not any("U" in k for k in grads)


# -- bad input ---------------------------------------------------------------

def test_parameters_are_w_and_b_only():
    cell = pg.MinGRU(3, 4, seed=0)
    assert cell.param_shapes == {"W": (3, 8), "b": (8,)}
    assert pg.MinLSTM(3, 4).param_shapes == {"W": (3, 12), "b": (12,)}
    with pytest.raises(ValueError, match="unexpected \\['U'\\]"):
        cell.params = {**cell.params, "U": np.zeros((4, 8))}
    with pytest.raises(ValueError, match="params\\['W'\\]"):
        cell.params = {"W": np.zeros((3, 7)), "b": np.zeros(8)}


@pytest.mark.parametrize("name", MIN_CELLS)
def test_bad_inputs_name_the_argument(name):
    cell = make_cell(name, 3, 4)
    with pytest.raises(ValueError, match="x"):
        cell.forward(np.zeros((2, 1, 5)))
    with pytest.raises(ValueError, match="state0"):
        cell.forward(np.zeros((2, 1, 3)), np.zeros((1, 5)))
    with pytest.raises(TypeError, match="state0"):
        cell.forward(np.zeros((2, 1, 3)), (np.zeros((1, 4)), np.zeros((1, 4))))
    with pytest.raises(ValueError, match="gates"):
        cell.forward(np.zeros((2, 1, 3)), gates={"g": 0.5})
    with pytest.raises(ValueError, match="lengths"):
        cell.forward(np.zeros((2, 1, 3)), lengths=[3])
    with pytest.raises(TypeError, match="dtype|x"):
        cell.forward(np.array([[["a", "b", "c"]]]))
    _, _, cache = cell.forward(np.zeros((2, 1, 3)))
    with pytest.raises(ValueError, match="dy"):
        cell.backward(cache, np.zeros((2, 1, 5)))


def test_the_kernels_check_shapes():
    x, W, b = np.zeros((2, 1, 3)), np.zeros((3, 8)), np.zeros(8)
    keep, pin = np.ones(2), np.zeros((1, 1))
    lengths = np.zeros(1, dtype=np.intp)
    good = dict(gates=np.zeros((2, 1, 8)), a=np.zeros((2, 1, 4)), hs=np.zeros((3, 1, 4)),
                h_last=np.zeros((1, 4)))
    _scan.forward(_scan.MINGRU, False, x, W, b, lengths, keep, pin, *good.values())
    for name, bad in [("W", np.zeros((3, 12))), ("b", np.zeros(4)), ("gates", np.zeros((2, 1, 4))),
                      ("a", np.zeros((1, 1, 4))), ("h_last", np.zeros((2, 4)))]:
        args = dict(x=x, W=W, b=b, lengths=lengths, keep=keep, pin=pin, **good)
        args[name] = bad
        with pytest.raises(ValueError, match=f"_scan.forward: {name} has shape"):
            _scan.forward(_scan.MINGRU, False, *args.values())
    with pytest.raises(ValueError, match="kind"):
        _scan.forward(7, False, x, W, b, lengths, keep, pin, *good.values())
    # no cache: gates and a both None, never one of them
    _scan.forward(_scan.MINGRU, False, x, W, b, lengths, keep, pin, None, None, good["hs"],
                  good["h_last"])
    for name in ("gates", "a"):
        args = dict(x=x, W=W, b=b, lengths=lengths, keep=keep, pin=pin, **good)
        args[name] = None
        with pytest.raises(ValueError, match=f"_scan.forward: {name} is None, expected .*or None"):
            _scan.forward(_scan.MINGRU, False, *args.values())


# -- what the shared suites skip for these cells ------------------------------

@pytest.mark.parametrize("name", MIN_CELLS)
def test_documented_initialisation(name):
    """W Glorot-uniform per gate block (within sqrt(6 / (D + H))), b zero."""
    cell = make_cell(name, 5, 6, scale=0.0)
    cell = type(cell)(5, 6, seed=0)
    W, b = cell.params["W"], cell.params["b"]
    assert W.shape == (5, 6 * len(cell.gates)) and not np.any(b)
    limit = np.sqrt(6 / (5 + 6))
    assert np.all(np.abs(W) <= limit) and np.abs(W).max() > limit / 2


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("name", MIN_CELLS)
@pytest.mark.parametrize("huge", ["weights", "inputs"])
def test_saturated_gates_stay_finite_and_agree_with_the_reference(name, dtype, huge):
    """Pre-activations up to about 80 (weights up to 20, or inputs up to 40):
    sigmoid gates down to 1e-12 and below, and outputs and
    gradients are finite and agree with the reference (minLSTM's f i / (f +
    i)^2 is computed as f' i', since f i underflows in float32)."""
    cell = make_cell(name, 4, 6, dtype, scale=20.0 if huge == "weights" else 0.5)
    x, state0, dy, dstate = random_problem(cell, 8, 3)
    if huge == "inputs":
        x = x * 40
    ref = reference.from_cell(cell)
    got = cell.forward(x, state0)
    want = ref.forward(x, state0)
    sig = got[2].gates[..., :(len(cell.gates) - 1) * 6]
    assert sig.min() < 1e-12 and sig.max() > 1 - 1e-6
    grads = cell.backward(got[2], dy, dstate)
    for arr in [got[0], got[1], grads[0], grads[1], *grads[2].values()]:
        assert np.all(np.isfinite(arr))
    scale = np.abs(x).max() * np.abs(cell.params["W"]).max() * 4
    assert_close(got[0] / scale, want[0] / scale, dtype, factor=10)


@pytest.mark.parametrize("name,gate", [("mingru", "z"), ("minlstm", "f"), ("minlstm", "i")])
def test_a_pinned_gate_gets_no_gradient(name, gate):
    cell = make_cell(name, 3, 4)
    x, state0, dy, dstate = random_problem(cell, 5, 3)
    _, _, cache = cell.forward(x, state0, [5, 2, 0], gates={gate: 0.3})
    _, _, grads = cell.backward(cache, dy, dstate)
    k = cell.gates.index(gate)
    assert not np.any(grads["W"][:, k * 4:(k + 1) * 4]) and not np.any(grads["b"][k * 4:(k + 1) * 4])
    assert np.all(grads["W"][:, (len(cell.gates) - 1) * 4:] != 0)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("name", MIN_CELLS)
def test_a_sequence_of_100000_steps_equals_two_halves_to_rounding(name, dtype):
    """T = 100,000, B = 1, H = 32: the two halves (state and dstate carried)
    give the whole sequence's results to the scan's tolerance."""
    (y, state, dx, dstate0, grads), (y12, s2, dx12, d0, (g1, g2)) = whole_and_halves(name, dtype)
    assert_close(y12, y, dtype, factor=SCAN_FACTOR)
    assert_close(dx12, dx, dtype, factor=SCAN_FACTOR)
    assert_close(s2, state, dtype, factor=SCAN_FACTOR)
    assert_close(d0, dstate0, dtype, factor=SCAN_FACTOR)
    for k in grads:
        assert_close(g1[k] + g2[k], grads[k], dtype, k, factor=SCAN_FACTOR)
    assert np.all(np.isfinite(y)) and np.abs(y).max() > 0.1
