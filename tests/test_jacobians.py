"""The closed-form step Jacobians of the theory pages against
``pyx_gru.diagnostics.state_jacobians``, in float64.

Each ``*_jacobian`` function below is one displayed equation of a theory
page, written with the page's symbols (rows are outputs: ``J[i, j]`` is the
derivative of unit i of the new state with respect to unit j of the old
one). Its gate values come from the compiled forward pass's cache; the
diagnostics get the same matrix from the compiled backward pass, one unit
vector at a time, so the two meet only if the formula is right. Each test
checks the one-step Jacobian J_t at every step of a sequence, and that the
product J_T ... J_1 is the diagnostics' dh_T/dh_0. (The vanilla RNN's,
diag(1 - g_t^2) U^T, is checked in test_diagnostics.py.)
"""
import numpy as np
import pytest

from pyx_gru import diagnostics as dg
from helpers import make_cell, random_state

T, B, D, H = 5, 3, 2, 4


def slope(s):
    """A sigmoid gate's derivative from its value: s (1 - s)."""
    return s * (1 - s)


def simple_gru_jacobian(U, h_prev, f, g):
    """J_t = diag(f) + diag((h_{t-1} - g) f (1 - f)) U_f^T
    + diag((1 - f)(1 - g^2)) U_g^T."""
    U_f, U_g = np.split(U, 2, axis=1)
    return (np.diag(f)
            + np.diag((h_prev - g) * slope(f)) @ U_f.T
            + np.diag((1 - f) * (1 - g**2)) @ U_g.T)


def gru_after_jacobian(U, h_prev, z, r, n, g):
    """J_t = diag(z) + diag((h_{t-1} - g) z (1 - z)) U_z^T
    + diag(s n r (1 - r)) U_r^T + diag(s r) U_g^T, s = (1 - z)(1 - g^2)."""
    U_z, U_r, U_g = np.split(U, 3, axis=1)
    s = (1 - z) * (1 - g**2)
    return (np.diag(z)
            + np.diag((h_prev - g) * slope(z)) @ U_z.T
            + np.diag(s * n * slope(r)) @ U_r.T
            + np.diag(s * r) @ U_g.T)


def gru_before_jacobian(U, h_prev, z, r, g):
    """J_t = diag(z) + diag((h_{t-1} - g) z (1 - z)) U_z^T
    + diag(s) U_g^T (diag(r) + diag(h_{t-1} r (1 - r)) U_r^T), s = (1 - z)(1 - g^2)."""
    U_z, U_r, U_g = np.split(U, 3, axis=1)
    s = (1 - z) * (1 - g**2)
    return (np.diag(z)
            + np.diag((h_prev - g) * slope(z)) @ U_z.T
            + np.diag(s) @ U_g.T @ (np.diag(r) + np.diag(h_prev * slope(r)) @ U_r.T))


def lstm_jacobian(U, P, c_prev, i, f, g, c, o):
    """The four blocks of J_t = d(h_t, c_t) / d(h_{t-1}, c_{t-1}), (2H, 2H):

    d_t = f + p_f c_{t-1} f (1 - f) + p_i g i (1 - i)
    k_t = o (1 - tanh^2 c_t) + p_o tanh(c_t) o (1 - o)
    dc_t/dc_{t-1} = diag(d_t)
    dc_t/dh_{t-1} = diag(c_{t-1} f (1 - f)) U_f^T + diag(g i (1 - i)) U_i^T
                    + diag(i (1 - g^2)) U_g^T
    dh_t/dc_{t-1} = diag(k_t d_t)
    dh_t/dh_{t-1} = diag(tanh(c_t) o (1 - o)) U_o^T + diag(k_t) dc_t/dh_{t-1}

    P = [p_i; p_f; p_o] (3, H), zeros without peepholes.
    """
    U_i, U_f, U_g, U_o = np.split(U, 4, axis=1)
    p_i, p_f, p_o = P
    d = f + p_f * c_prev * slope(f) + p_i * g * slope(i)
    k = o * (1 - np.tanh(c) ** 2) + p_o * np.tanh(c) * slope(o)
    c_h = (np.diag(c_prev * slope(f)) @ U_f.T + np.diag(g * slope(i)) @ U_i.T
           + np.diag(i * (1 - g**2)) @ U_g.T)
    h_h = np.diag(np.tanh(c) * slope(o)) @ U_o.T + np.diag(k) @ c_h
    return np.block([[h_h, np.diag(k * d)], [c_h, np.diag(d)]])


def step_jacobians(cell, x, state0):
    """The closed form's J_t for t = 1..T of every row: (B, T, n, n), from the
    gate values the compiled forward pass cached."""
    _, _, cache = cell.forward(x, state0)
    p = cell.params
    out = []
    for b in range(B):
        rows = []
        for t in range(T):
            gates = np.split(cache.gates[t, b], len(cell.gates))
            h_prev = cache.hs[t, b]
            if cell.gates == ("f", "g"):
                rows.append(simple_gru_jacobian(p["U"], h_prev, *gates))
            elif cell.gates == ("z", "r", "g") and cell.reset == "after":
                z, r, g = gates
                rows.append(gru_after_jacobian(p["U"], h_prev, z, r, cache.extra[t, b], g))
            elif cell.gates == ("z", "r", "g"):
                rows.append(gru_before_jacobian(p["U"], h_prev, *gates))
            else:
                i, f, g, o = gates
                P = p["P"] if cell.peephole else np.zeros((3, H))
                rows.append(lstm_jacobian(p["U"], P, cache.cs[t, b], i, f, g, cache.cs[t + 1, b], o))
        out.append(rows)
    return np.array(out)


def check_against_diagnostics(name, scale=1.0, seed=0):
    """Closed form against the diagnostics: every one-step J_t (a run of one
    step from the cached state) and the whole product dh_T/dh_0."""
    cell = make_cell(name, D, H, scale=scale, seed=seed)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (T, B, D))
    state0 = random_state(cell, B, rng, scale=0.8)
    state = "full" if cell._lstm else "h"
    closed = step_jacobians(cell, x, state0)
    _, _, cache = cell.forward(x, state0)
    for t in range(T):
        s = (cache.hs[t], cache.cs[t]) if cell._lstm else cache.hs[t]
        one = dg.state_jacobians(cell, x[t:t + 1], state0=s, state=state)[:, 0]
        np.testing.assert_allclose(closed[:, t], one, rtol=0, atol=1e-12, err_msg=f"J_{t + 1}")
    whole = dg.state_jacobians(cell, x, state0=state0, state=state)[:, 0]
    for b in range(B):
        prod = np.eye(closed.shape[-1])
        for t in range(T):
            prod = closed[b, t] @ prod
        np.testing.assert_allclose(prod, whole[b], rtol=0, atol=1e-12, err_msg=f"row {b}")
    return closed


@pytest.mark.parametrize("scale", [0.5, 2.0], ids=["small-weights", "saturating-weights"])
def test_simple_gru_jacobian(scale):
    """docs/theory/simple_gru.rst, "Through time": J_t of the simplified GRU."""
    check_against_diagnostics("simple_gru", scale)


@pytest.mark.parametrize("scale", [0.5, 2.0], ids=["small-weights", "saturating-weights"])
def test_gru_after_jacobian(scale):
    """docs/theory/gru.rst, "Through time": J_t with the reset gate after the product."""
    check_against_diagnostics("gru_after", scale)


@pytest.mark.parametrize("scale", [0.5, 2.0], ids=["small-weights", "saturating-weights"])
def test_gru_before_jacobian(scale):
    """docs/theory/gru.rst, "Through time": J_t with the reset gate before the product."""
    check_against_diagnostics("gru_before", scale)


@pytest.mark.parametrize("name", ["lstm", "lstm_peephole"], ids=["plain", "peephole"])
@pytest.mark.parametrize("scale", [0.5, 2.0], ids=["small-weights", "saturating-weights"])
def test_lstm_full_jacobian(name, scale):
    """docs/theory/lstm.rst, "Through time": the four blocks of the LSTM's
    (h, c) Jacobian. The c -> c block is diagonal (no U in it), while
    dc_t/dh_{t-1} is not zero: the cell state does depend on h_{t-1}."""
    closed = check_against_diagnostics(name, scale)
    cc, ch = closed[..., H:, H:], closed[..., H:, :H]
    off = ~np.eye(H, dtype=bool)
    assert np.all(cc[..., off] == 0)
    assert np.min(np.abs(ch).max(axis=(-2, -1))) > 1e-3


def test_lstm_cell_path_without_peepholes_is_diag_f():
    """docs/theory/lstm.rst and docs/story.rst: holding h fixed and without
    peepholes, the gradient along c is multiplied by diag(f_t) per step."""
    cell = make_cell("lstm", D, H)
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (T, B, D))
    state0 = random_state(cell, B, rng)
    _, _, cache = cell.forward(x, state0)
    f = cache.gates[..., H:2 * H]  # (T, B, H)
    for t in range(T):
        J = dg.state_jacobians(cell, x[t:t + 1], state0=(cache.hs[t], cache.cs[t]), state="full")[:, 0]
        for b in range(B):
            np.testing.assert_allclose(J[b, H:, H:], np.diag(f[t, b]), rtol=0, atol=1e-13)
