"""Every claim of the theory pages' exercise solutions, one test per exercise.

A test's name starts with the page and the exercise's number on it
(``test_gru_3_...`` is exercise 3 of docs/theory/gru.rst); each solution on
the site names its test. Jacobians come from
``pyx_gru.diagnostics.state_jacobians`` (the compiled backward pass, exactly,
in float64), never from the formulas being checked.
"""
import ast
import re
from pathlib import Path

import numpy as np
import pytest

import pyx_gru as pg
from pyx_gru import diagnostics as dg, reference
from helpers import make_cell, parts, random_state, skip_scan
from test_jacobians import check_against_diagnostics

ROOT = Path(__file__).resolve().parent.parent
THEORY = ROOT / "docs" / "theory"
SIGMOID = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731


def one_step_jacobian(cell, T=1, **kw):
    """J_1 = d state_1 / d state_0 at zero input (D columns) from a zero state."""
    x = np.zeros((T, 1, cell.input_size))
    return dg.state_jacobians(cell, x, **kw)[0]


def moduli(M):
    return np.sort(np.abs(np.linalg.eigvals(M)))


# --------------------------------------------------------------------------
# docs/theory/index.rst
# --------------------------------------------------------------------------

def per_step_da(cell, x, state0, dy):
    """The reference's per-step, per-row dL/da_t (input side), (T, B, G*H),
    and its per-step caches, by its step functions on one row at a time."""
    ref = reference.from_cell(cell)
    step_forward, step_backward = ref._steps()
    T, B, _ = x.shape
    da = np.zeros((T, B, len(cell.gates) * cell.hidden_size))
    caches = [[None] * B for _ in range(T)]
    for n in range(B):
        state = tuple(s[n:n + 1] for s in parts(state0))
        for t in range(T):
            state, caches[t][n] = step_forward(x[t, n:n + 1], state, ref.params)
        d = (np.zeros((1, cell.hidden_size)),) * len(state)
        for t in reversed(range(T)):
            d = (d[0] + dy[t, n:n + 1],) + d[1:]
            _, d, grads = step_backward(d, caches[t][n], ref.params)
            da[t, n] = grads["b"]  # one row: db is this step's dL/da
    return da, caches


def test_index_1_dU_is_the_sum_of_outer_products(config):
    """Exercise 1 of theory/index: dU = sum_t h_{t-1}^T da_t (recurrent side
    for the reset-after GRU: n-bar = r * da_g; (r * h)^T da_g for U_g before;
    the MGU likewise with f as its reset gate)."""
    skip_scan(config, "no recurrent weights U, so no dU")
    cell = make_cell(config, 3, 4)
    rng = np.random.default_rng(1)
    T, B, H = 5, 3, 4
    x = rng.uniform(-1, 1, (T, B, 3))
    state0 = random_state(cell, B, rng)
    dy = rng.standard_normal((T, B, H))
    _, _, cache = cell.forward(x, state0)
    _, _, grads = cell.backward(cache, dy)
    da, caches = per_step_da(cell, x, state0, dy)
    h_prev = cache.hs[:T]  # (T, B, H)
    rec = da.copy()
    reset = {"gru_after": 1, "gru_before": 1, "mgu_after": 0, "mgu_before": 0}.get(config)
    g0 = (len(cell.gates) - 1) * H  # the candidate's columns, the last block
    if config.endswith("_after"):
        r = cache.gates[..., reset * H:(reset + 1) * H]
        rec[..., g0:] = r * da[..., g0:]  # n-bar
    want = np.einsum("tni,tnk->ik", h_prev, rec)
    if config.endswith("_before"):
        rh = cache.extra  # r_t * h_{t-1}
        want[:, g0:] = np.einsum("tni,tnk->ik", rh, da[..., g0:])
    np.testing.assert_allclose(grads["U"], want, rtol=0, atol=1e-12)
    # and W-bar, derived on the page: sum_t x_t^T da_t
    np.testing.assert_allclose(grads["W"], np.einsum("tnd,tnk->dk", x, da), rtol=0, atol=1e-12)


def test_index_2_batch_gradients_are_sums(config):
    """Exercise 2 of theory/index: parameter gradients of a batch are the sums
    of the rows' gradients; dx and dstate0 are per row."""
    cell = make_cell(config, 3, 4)
    rng = np.random.default_rng(2)
    T, B = 4, 3
    x = rng.uniform(-1, 1, (T, B, 3))
    state0 = random_state(cell, B, rng)
    dy = rng.standard_normal((T, B, 4))
    _, _, cache = cell.forward(x, state0)
    dx, d0, grads = cell.backward(cache, dy)
    total = {k: np.zeros_like(v) for k, v in grads.items()}
    for n in range(B):
        s0 = tuple(s[n:n + 1] for s in parts(state0))
        _, _, c = cell.forward(x[:, n:n + 1], s0 if cell._lstm else s0[0])
        dxn, d0n, gn = cell.backward(c, dy[:, n:n + 1])
        np.testing.assert_allclose(dx[:, n:n + 1], dxn, rtol=0, atol=1e-12)
        for a, b in zip(parts(d0), parts(d0n), strict=True):
            np.testing.assert_allclose(a[n:n + 1], b, rtol=0, atol=1e-12)
        for k in total:
            total[k] += gn[k]
    for k in grads:
        np.testing.assert_allclose(grads[k], total[k], rtol=0, atol=1e-12, err_msg=k)


def test_index_3_equal_parameter_counts():
    """Exercise 3 of theory/index: LSTM(2, 32) has 4480 parameters; the nearest
    counts are RNN H = 65 (4420), SimpleGRU H = 46 (4508), GRU before H = 37 (4440)."""
    assert pg.LSTM(2, 32).n_params == 4480
    for cls, kw, H, n in ((pg.RNN, {}, 65, 4420), (pg.SimpleGRU, {}, 46, 4508),
                          (pg.GRU, {"reset": "before"}, 37, 4440)):
        assert cls(2, H, **kw).n_params == n
        counts = {h: cls(2, h, **kw).n_params for h in range(2, 100)}
        assert min(counts, key=lambda h: abs(counts[h] - 4480)) == H


# --------------------------------------------------------------------------
# docs/theory/rnn.rst
# --------------------------------------------------------------------------

@pytest.mark.parametrize("alpha", [0.9, 1.0, 1.1])
def test_rnn_1_orthogonal_U_scales_the_norm_by_alpha(alpha):
    """Exercise 1 of theory/rnn: zero input, b = 0, h_0 = 0, U = alpha Q:
    the states stay 0 and every singular value of dh_T/dh_k is alpha^(T-k)."""
    T = 30
    cell = pg.RNN(2, 5, seed=3)  # U orthogonal, b = 0
    cell.params["U"][:] *= alpha
    y, _, _ = cell.forward(np.zeros((T, 1, 2)))
    assert np.all(y == 0)
    sv = dg.singular_values(dg.state_jacobians(cell, np.zeros((T, 1, 2))))[0]  # (T + 1, H)
    want = alpha ** (T - np.arange(T + 1.0))
    np.testing.assert_allclose(sv, np.repeat(want[:, None], 5, 1), rtol=1e-12)


def test_rnn_2_saturation_bounds_the_step():
    """Exercise 2 of theory/rnn: ||J_t||_2 <= max_j (1 - g_j^2) sigma_max(U);
    in a saturated regime (every |g| >= 0.95) that is <= 0.0975 sigma_max(U)."""
    rng = np.random.default_rng(4)
    saturated = 0
    for scale in (0.5, 3.0, 6.0):
        cell = make_cell("rnn", 3, 4, scale=scale, seed=5)
        x = rng.uniform(-2, 2, (6, 4, 3))
        y, _, cache = cell.forward(x)
        s_max = np.linalg.norm(cell.params["U"], 2)
        for t in range(6):
            J = dg.state_jacobians(cell, x[t:t + 1], state0=cache.hs[t])[:, 0]
            g = y[t]
            bound = np.max(1 - g**2, axis=1) * s_max
            assert np.all(dg.singular_values(J)[:, 0] <= bound * (1 + 1e-12))
            full = np.all(np.abs(g) >= 0.95, axis=1)
            saturated += full.sum()
            assert np.all(dg.singular_values(J[full])[:, 0] <= 0.0975 * s_max)
    assert saturated > 0  # the saturated case was exercised


def test_rnn_3_non_normal_U_peaks_at_11():
    """Exercise 3 of theory/rnn: U = [[0.9, 0], [3, 0.9]], dh_T/dh_{T-n} =
    [[0.9^n, 3n 0.9^(n-1)], [0, 0.9^n]]; the corner peaks at n = 9 and 10,
    30 * 0.9^9 = 11.62."""
    T = 40
    cell = pg.RNN(1, 2, seed=0)
    cell.params["U"][:] = [[0.9, 0.0], [3.0, 0.9]]
    J = dg.state_jacobians(cell, np.zeros((T, 1, 1)))[0]  # J[t] = dh_T/dh_t
    n = T - np.arange(T + 1)
    want = np.zeros((T + 1, 2, 2))
    want[:, 0, 0] = want[:, 1, 1] = 0.9 ** n
    want[:T, 0, 1] = 3 * n[:T] * 0.9 ** (n[:T] - 1.0)
    np.testing.assert_allclose(J, want, rtol=1e-12, atol=1e-15)
    corner = J[:, 0, 1]
    assert set(n[np.isclose(corner, corner.max(), rtol=1e-12)]) == {9, 10}
    assert round(corner.max(), 2) == 11.62
    np.testing.assert_allclose(np.linalg.eigvals(cell.params["U"]), [0.9, 0.9], rtol=1e-15)


def test_rnn_4_saturation_vanishes_with_unit_U():
    """Exercise 4 of theory/rnn: W = U = 1, b = 0, x_t = 1: h -> h* = tanh(1 + h*)
    = 0.9612 and the per-step factor is 1 - h*^2 = 0.0761."""
    T = 40
    cell = pg.RNN(1, 1, seed=0)
    cell.params = {"W": [[1.0]], "U": [[1.0]], "b": [0.0]}
    x = np.ones((T, 1, 1))
    y, _, _ = cell.forward(x)
    h = y[-1, 0, 0]
    assert abs(h - np.tanh(1 + h)) < 1e-15 and round(h, 4) == 0.9612
    assert np.all(y >= 0)
    J = dg.state_jacobians(cell, x)[0, :, 0, 0]  # dh_T/dh_t
    assert round(J[T - 1], 4) == round(1 - h**2, 4) == 0.0761
    np.testing.assert_allclose(J[T - 10], (1 - h**2) ** 10, rtol=1e-9)
    assert np.linalg.norm(cell.params["U"], 2) == 1


# --------------------------------------------------------------------------
# docs/theory/simple_gru.rst
# --------------------------------------------------------------------------

def test_simple_gru_1_pinned_gate_forgets_at_lambda():
    """Exercise 1 of theory/simple_gru: f pinned to lambda and U_g = 0 give
    dh_T/dh_k = lambda^(T-k) I for any input; lambda = 0.9 halves in 6.6 steps."""
    T, H, lam = 12, 3, 0.9
    cell = make_cell("simple_gru", 2, H, scale=1.5)
    cell.params["U"][:, H:] = 0
    x = np.random.default_rng(6).uniform(-2, 2, (T, 2, 2))
    J = dg.state_jacobians(cell, x, gates={"f": lam})
    k = T - np.arange(T + 1.0)
    want = lam ** k[None, :, None, None] * np.eye(H)
    np.testing.assert_allclose(J, np.broadcast_to(want, J.shape), rtol=1e-12, atol=1e-15)
    assert round(np.log(2) / -np.log(lam), 1) == 6.6


def test_simple_gru_2_jacobian_at_initialisation():
    """Exercise 2 of theory/simple_gru: at initialisation, zero input and state,
    J = (I + U_g^T) / 2, eigenvalue moduli |cos(theta / 2)| = singular values <= 1."""
    H = 6
    cell = pg.SimpleGRU(3, H, seed=7)
    J = one_step_jacobian(cell)[0]
    U_g = cell.params["U"][:, H:]
    np.testing.assert_allclose(J, (np.eye(H) + U_g.T) / 2, rtol=0, atol=1e-15)
    theta = np.angle(np.linalg.eigvals(U_g))
    np.testing.assert_allclose(moduli(J), np.sort(np.abs(np.cos(theta / 2))), atol=1e-12)
    np.testing.assert_allclose(np.sort(dg.singular_values(J)), moduli(J), atol=1e-12)
    assert dg.singular_values(J)[0] <= 1 + 1e-12


def test_simple_gru_3_kept_units_are_identity_rows():
    """Exercise 3 of theory/simple_gru: units whose f is pinned to 1 have rows
    e_j in dh_T/dh_k for every k, whatever U and the input."""
    T, H = 10, 4
    cell = make_cell("simple_gru", 2, H, scale=2.0)
    f = np.array([1.0, 0.4, 1.0, 0.8])
    x = np.random.default_rng(8).uniform(-2, 2, (T, 2, 2))
    J = dg.state_jacobians(cell, x, gates={"f": f})
    for j in (0, 2):
        np.testing.assert_array_equal(J[:, :, j, :], np.broadcast_to(np.eye(H)[j], J[:, :, j, :].shape))
    assert np.abs(J[:, T - 1, 1, :] - np.eye(H)[1]).max() > 1e-3  # the other rows are not


# --------------------------------------------------------------------------
# docs/theory/gru.rst
# --------------------------------------------------------------------------

@pytest.mark.parametrize("scale", [0.5, 2.0])
def test_gru_1_reset_before_jacobian(scale):
    """Exercise 1 of theory/gru: the derived J_t of the reset-before form
    against the diagnostics (see test_jacobians.gru_before_jacobian)."""
    check_against_diagnostics("gru_before", scale, seed=11)


@pytest.mark.parametrize("reset", ["after", "before"])
def test_gru_2_jacobian_at_initialisation(reset):
    """Exercise 2 of theory/gru: at initialisation, zero input and state,
    J = I/2 + U_g^T/4 in both forms; eigenvalue moduli in [1/4, 3/4]; norm <= 3/4."""
    H = 6
    cell = pg.GRU(3, H, reset=reset, seed=9)
    J = one_step_jacobian(cell)[0]
    U_g = cell.params["U"][:, 2 * H:]
    np.testing.assert_allclose(J, np.eye(H) / 2 + U_g.T / 4, rtol=0, atol=1e-15)
    m = moduli(J)
    assert 0.25 - 1e-12 <= m.min() and m.max() <= 0.75 + 1e-12
    assert dg.singular_values(J)[0] <= 0.75 + 1e-12
    assert (4 / 3) ** 20 > 300


@pytest.mark.parametrize("reset", ["after", "before"])
def test_gru_3_update_bias_two(reset):
    """Exercise 3 of theory/gru: b_z = 2 gives J = sigma(2) I + (1 - sigma(2))/2 U_g^T
    = 0.8808 I + 0.0596 U_g^T; singular values in [0.8212, 0.9404] per step, and
    over 20 steps at least 0.02 of the norm is kept."""
    H, T = 6, 20
    cell = pg.GRU(3, H, reset=reset, seed=10)
    cell.params["b"][:H] = 2.0
    J = one_step_jacobian(cell, T=T)  # J[t] = dh_T/dh_t
    s2 = SIGMOID(2.0)
    assert (round(s2, 4), round((1 - s2) / 2, 4)) == (0.8808, 0.0596)
    U_g = cell.params["U"][:, 2 * H:]
    np.testing.assert_allclose(J[T - 1], s2 * np.eye(H) + (1 - s2) / 2 * U_g.T, rtol=0, atol=1e-15)
    sv = dg.singular_values(J[T - 1])
    lo, hi = s2 - (1 - s2) / 2, s2 + (1 - s2) / 2
    assert (round(lo, 4), round(hi, 4)) == (0.8212, 0.9404)
    assert lo - 1e-12 <= sv.min() and sv.max() <= hi + 1e-12
    whole = dg.singular_values(J[0])  # 20 steps
    assert whole.min() >= lo**T * (1 - 1e-9) and lo**T > 0.019
    assert 0.75**T < 0.0032


def test_gru_4_forms_agree_for_a_scalar_reset():
    """Exercise 4 of theory/gru: with r pinned to one number in every unit and
    b_hg = 0 the two forms agree; the page's example with r = (1, 0) and U_g
    the swap gives candidate inputs (0, 0) after and (0, 1) before."""
    after = make_cell("gru_after", 3, 4)
    after.params["b_hg"][:] = 0
    before = pg.GRU(3, 4, reset="before")
    before.params = {k: v for k, v in after.params.items() if k != "b_hg"}
    x = np.random.default_rng(12).uniform(-1, 1, (6, 2, 3))
    for rho in (0.0, 0.3, 1.0):
        ya, _, _ = after.forward(x, gates={"r": rho})
        yb, _, _ = before.forward(x, gates={"r": rho})
        np.testing.assert_allclose(ya, yb, rtol=0, atol=1e-14)
    ya, _, _ = after.forward(x, gates={"r": [1.0, 0.2, 0.7, 0.0]})
    yb, _, _ = before.forward(x, gates={"r": [1.0, 0.2, 0.7, 0.0]})
    assert np.abs(ya - yb).max() > 1e-3
    # the page's example: H = 2, W = b = b_hg = 0, U_g the swap, h_0 = (1, 0)
    U = np.zeros((2, 6))
    U[:, 4:] = [[0, 1], [1, 0]]
    g = {}
    for reset in ("after", "before"):
        cell = pg.GRU(1, 2, reset=reset)
        cell.params = {**{k: np.zeros(v) for k, v in cell.param_shapes.items()}, "U": U}
        _, _, cache = cell.forward(np.zeros((1, 1, 1)), [[1.0, 0.0]], gates={"r": [1.0, 0.0]})
        g[reset] = np.arctanh(cache.gates[0, 0, 4:])  # the candidate's input
    np.testing.assert_allclose(g["after"], [0, 0], atol=1e-15)
    np.testing.assert_allclose(g["before"], [0, 1], atol=1e-12)


def test_gru_5_b_hg_is_not_redundant():
    """Exercise 5 of theory/gru: moving b_hg into b_g changes the candidate's
    input by (1 - r) * b_hg: the cells agree when r = 1, never with a learned r."""
    cell = make_cell("gru_after", 3, 4)
    moved = cell.copy()
    p = moved.params
    p["b"][8:] += p["b_hg"]
    p["b_hg"][:] = 0
    x = np.random.default_rng(13).uniform(-1, 1, (5, 2, 3))
    y1, _, _ = cell.forward(x, gates={"r": 1.0})
    y2, _, _ = moved.forward(x, gates={"r": 1.0})
    np.testing.assert_allclose(y1, y2, rtol=0, atol=1e-14)
    y1, _, c1 = cell.forward(x)
    y2, _, c2 = moved.forward(x)
    assert np.abs(y1 - y2).min() > 0  # every output differs
    # first step: the candidates' inputs differ by exactly (1 - r) * b_hg
    r = c1.gates[0, :, 4:8]
    diff = np.arctanh(c2.gates[0, :, 8:]) - np.arctanh(c1.gates[0, :, 8:])
    np.testing.assert_allclose(diff, (1 - r) * cell.params["b_hg"], rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------------------
# docs/theory/lstm.rst
# --------------------------------------------------------------------------

def tied_lstm_forward(params, x, h0):
    """The LSTM's equations with i = 1 - f, o = 1 and h = c (no output tanh),
    written out in NumPy: returns h_1 .. h_T, (T, B, H)."""
    _, W_f, W_g, _ = np.split(params["W"], 4, axis=1)
    _, U_f, U_g, _ = np.split(params["U"], 4, axis=1)
    _, b_f, b_g, _ = np.split(params["b"], 4)
    c = h = h0
    out = []
    for x_t in x:
        f = SIGMOID(x_t @ W_f + h @ U_f + b_f)
        i = 1 - f
        g = np.tanh(x_t @ W_g + h @ U_g + b_g)
        c = f * c + i * g
        h = c  # o = 1, no tanh
        out.append(h)
    return np.array(out)


def test_lstm_1_tied_lstm_is_the_simplified_gru():
    """Exercise 1 of theory/lstm: the LSTM with i = 1 - f, o = 1 and h = c is the
    simplified GRU with the LSTM's f and g blocks of W, U and b."""
    lstm = make_cell("lstm", 3, 4, scale=1.0)
    p = lstm.params
    H = 4
    sgru = pg.SimpleGRU(3, H)
    sgru.params = {"W": p["W"][:, H:3 * H], "U": p["U"][:, H:3 * H], "b": p["b"][H:3 * H]}
    rng = np.random.default_rng(14)
    x = rng.uniform(-1, 1, (8, 2, 3))
    h0 = rng.uniform(-0.5, 0.5, (2, H))
    y, _, _ = sgru.forward(x, h0)
    np.testing.assert_allclose(tied_lstm_forward(p, x, h0), y, rtol=0, atol=1e-14)


@pytest.mark.parametrize("b_f, steps", [(1.0, 7.4), (3.0, 47.4)])
def test_lstm_2_carousel_at_initialisation(b_f, steps):
    """Exercise 2 of theory/lstm: U = 0, zero input and state: the c -> c block
    of d(h_T, c_T)/d(h_k, c_k) is sigma(b_f)^(T-k) I; a factor 10 takes
    ln 10 / -ln sigma(b_f) steps (7.4 for b_f = 1, 47.4 for b_f = 3)."""
    H, T = 4, 15
    cell = pg.LSTM(2, H, seed=15)
    cell.params["U"][:] = 0
    cell.params["b"][H:2 * H] = b_f
    J = one_step_jacobian(cell, T=T, state="full")
    k = T - np.arange(T + 1.0)
    want = SIGMOID(b_f) ** k[:, None, None] * np.eye(H)
    np.testing.assert_allclose(J[:, H:, H:], want, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(J[:T, :, :H], 0)  # U = 0: nothing through h_k
    n = np.log(10) / -np.log(SIGMOID(b_f))
    assert round(n, 1) == steps


def test_lstm_3_full_jacobian_at_initialisation():
    """Exercise 3 of theory/lstm: at initialisation, zero input and state,
    J = [[U_g^T/4, sigma(1)/2 I], [U_g^T/2, sigma(1) I]]: h-rows are half the
    c-rows, rank H, non-zero eigenvalues sigma(1) + lambda(U_g^T)/4, moduli in
    [0.48, 0.98]."""
    H = 5
    cell = pg.LSTM(3, H, seed=16)
    J = one_step_jacobian(cell, state="full")[0]
    U_g = cell.params["U"][:, 2 * H:3 * H]
    s1, I = SIGMOID(1.0), np.eye(H)
    want = np.block([[U_g.T / 4, s1 / 2 * I], [U_g.T / 2, s1 * I]])
    np.testing.assert_allclose(J, want, rtol=0, atol=1e-15)
    np.testing.assert_allclose(J[:H], J[H:] / 2, rtol=0, atol=1e-15)
    assert np.linalg.matrix_rank(J) == H
    eig = np.linalg.eigvals(J)
    nonzero = np.sort_complex(eig[np.abs(eig) > 1e-9])
    np.testing.assert_allclose(nonzero, np.sort_complex(s1 + np.linalg.eigvals(U_g.T) / 4), atol=1e-12)
    assert (round(s1 - 0.25, 2), round(s1 + 0.25, 2)) == (0.48, 0.98)
    assert np.all((np.abs(nonzero) >= s1 - 0.25 - 1e-12) & (np.abs(nonzero) <= s1 + 0.25 + 1e-12))


@pytest.mark.parametrize("peephole", [False, True])
def test_lstm_4_open_gates_count(peephole):
    """Exercise 4 of theory/lstm: with f = i = 1 pinned, c_T = c_0 + sum_t g_t,
    the c -> c block of every J_t is I; with U_g = 0 also dc_T/dc_0 = I, and
    with U_g != 0 it is not."""
    H, T = 4, 7
    cell = make_cell("lstm_peephole" if peephole else "lstm", 3, H, scale=1.0)
    rng = np.random.default_rng(17)
    x = rng.uniform(-1, 1, (T, 2, 3))
    state0 = random_state(cell, 2, rng)
    pins = {"f": 1.0, "i": 1.0}
    _, (h, c), cache = cell.forward(x, state0, gates=pins)
    g = cache.gates[..., 2 * H:3 * H]
    np.testing.assert_allclose(c, state0[1] + g.sum(0), rtol=0, atol=1e-13)
    for t in range(T):
        s = (cache.hs[t], cache.cs[t])
        J = dg.state_jacobians(cell, x[t:t + 1], state0=s, state="full", gates=pins)[:, 0]
        np.testing.assert_array_equal(J[:, H:, H:], np.broadcast_to(np.eye(H), (2, H, H)))
    J = dg.state_jacobians(cell, x, state0=state0, state="full", gates=pins)[:, 0]
    assert np.abs(J[:, H:, H:] - np.eye(H)).max() > 1e-3  # mixed paths through h and U_g
    cell.params["U"][:, 2 * H:3 * H] = 0
    J = dg.state_jacobians(cell, x, state0=state0, state="full", gates=pins)[:, 0]
    np.testing.assert_allclose(J[:, H:, H:], np.broadcast_to(np.eye(H), (2, H, H)), rtol=0, atol=1e-15)
    np.testing.assert_allclose(J[:, H:, :H], 0, atol=1e-15)


# --------------------------------------------------------------------------
# Every exercise on the pages has its test here, and every test its exercise
# --------------------------------------------------------------------------

PAGES = {"index": "index", "rnn": "rnn", "simple_gru": "simple_gru", "gru": "gru", "lstm": "lstm"}


def test_every_exercise_names_a_test_that_exists():
    tree = ast.parse(Path(__file__).read_text())
    tests = {n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}
    exercise_tests = {t for t in tests if re.match(r"test_(index|rnn|simple_gru|gru|lstm)_\d+_", t)}
    named = set()
    for prefix, page in PAGES.items():
        text = (THEORY / f"{page}.rst").read_text()
        titles = re.findall(r"^\.\. admonition:: Exercise (\d+):", text, re.M)
        assert 3 <= len(titles) <= 5, f"{page}.rst has {len(titles)} exercises"
        assert titles == [str(i) for i in range(1, len(titles) + 1)], titles
        cited = re.findall(r"Checked by ``(test_\w+)``", text)
        assert len(cited) == len(titles), f"{page}.rst: {len(cited)} tests for {len(titles)} exercises"
        for number, test in zip(titles, cited, strict=True):
            assert test.startswith(f"test_{prefix}_{number}_"), (page, number, test)
        named |= set(cited)
    assert named == exercise_tests, (named ^ exercise_tests)
