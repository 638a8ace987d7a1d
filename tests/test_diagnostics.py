"""Diagnostics against independent computations: backpropagation step by step
through the NumPy reference cells, finite differences, the vanilla RNN's
closed-form Jacobian, and gate activations recomputed by the reference."""
from pathlib import Path

import numpy as np
import pytest

import pyx_gru as pg
from pyx_gru import diagnostics as dg, reference, tasks
from pyx_gru.layers import Model
from helpers import TOL, make_cell, parts, random_state

ROOT = Path(__file__).resolve().parents[1]

T, B, D, H = 6, 3, 2, 3
LENGTHS = np.array([6, 2, 0])


def problem(cell, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (T, B, D))
    return x, random_state(cell, B, rng), rng.standard_normal((B, H))


def reference_backprop(cell, x_seq, state0, d_final):
    """dL/d(state_t) for t = 0..L of one sequence by the reference step
    functions (B = n rows, all the same sequence): a list of tuples."""
    ref = reference.from_cell(cell.astype(np.float64))
    n = parts(d_final)[0].shape[0]
    L = x_seq.shape[0]
    s0 = tuple(np.repeat(s[None], n, 0) for s in parts(state0))
    _, _, cache = ref.forward(np.repeat(x_seq[:, None], n, 1), s0 if cell._lstm else s0[0])
    _, step_backward = ref._steps()
    d = parts(d_final)
    out = [d]
    for t in reversed(range(L)):
        _, d, _ = step_backward(d, cache.steps[t], ref.params)
        out.append(d)
    return out[::-1]


def reference_states(cell, x_seq, state0):
    """(h_t, c_t) for t = 0..L of one sequence by the reference forward."""
    ref = reference.from_cell(cell.astype(np.float64))
    s = tuple(v[None] for v in parts(state0))
    states = [s]
    for t in range(x_seq.shape[0]):
        _, st, _ = ref.forward(x_seq[t:t + 1, None], s if cell._lstm else s[0])
        s = parts(st)
        states.append(s)
    return states


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_state_gradients_equal_step_by_step_backprop(config, dtype):
    cell = make_cell(config, D, H, dtype=dtype)
    x, state0, dstate = problem(cell)
    got = dg.state_gradients(cell, x, dstate, state0=state0, lengths=LENGTHS)
    got = parts(got)
    assert got[0].shape == (T + 1, B, H) and got[0].dtype == dtype
    for b, L in enumerate(LENGTHS):
        s0 = tuple(s[b] for s in parts(state0))
        d_final = (dstate[b:b + 1],) + ((np.zeros((1, H)),) if cell._lstm else ())
        want = reference_backprop(cell, x[:L, b], s0 if cell._lstm else s0[0], d_final)
        for t in range(L + 1):
            for g, w in zip(got, want[t], strict=True):
                np.testing.assert_allclose(g[t, b], w[0], rtol=0, atol=10 * TOL[dtype],
                                           err_msg=f"row {b}, t = {t}")
        assert np.all(np.isnan(got[0][L + 1:, b]))
    norms = dg.gradient_norms(cell, x, dstate, state0=state0, lengths=LENGTHS)
    for b, L in enumerate(LENGTHS):      # against the reference's dL/dh_t
        s0 = tuple(s[b] for s in parts(state0))
        d_final = (dstate[b:b + 1],) + ((np.zeros((1, H)),) if cell._lstm else ())
        want = reference_backprop(cell, x[:L, b], s0 if cell._lstm else s0[0], d_final)
        np.testing.assert_allclose(norms[:L + 1, b], [np.linalg.norm(w[0]) for w in want],
                                   rtol=0, atol=10 * TOL[dtype] * np.sqrt(H))


@pytest.mark.parametrize("name", ["gru_before", "lstm_peephole"])
def test_state_gradients_equal_finite_differences(name):
    """dL/dh_t for L = <dstate, h_L>: perturb h_t (c_t held fixed) and run the
    reference forward over the rest of the sequence."""
    cell = make_cell(name, D, H)
    x, state0, dstate = problem(cell, seed=2)
    dh = parts(dg.state_gradients(cell, x, dstate, state0=state0))[0]
    ref = reference.from_cell(cell)
    b, eps = 1, 1e-6
    states = reference_states(cell, x[:, b], tuple(s[b] for s in parts(state0)))
    for t in (0, 3, T - 1):
        numeric = np.empty(H)
        for j in range(H):
            vals = []
            for sign in (1, -1):
                s = [v.copy() for v in states[t]]
                s[0][0, j] += sign * eps
                _, final, _ = ref.forward(x[t:, b:b + 1], tuple(s) if cell._lstm else s[0])
                vals.append(np.sum(dstate[b] * parts(final)[0][0]))
            numeric[j] = (vals[0] - vals[1]) / (2 * eps)
        np.testing.assert_allclose(dh[t, b], numeric, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("state", ["h", "full"])
def test_jacobians_equal_step_by_step_backprop(config, state):
    cell = make_cell(config, D, H)
    x, state0, _ = problem(cell, seed=1)
    J = dg.state_jacobians(cell, x, state0=state0, lengths=LENGTHS, state=state)
    full = cell._lstm and state == "full"
    n = 2 * H if full else H
    assert J.shape == (B, T + 1, n, n)
    for b, L in enumerate(LENGTHS):
        s0 = tuple(s[b] for s in parts(state0))
        eye = np.eye(n)
        d_final = (eye[:, :H], eye[:, H:]) if full else (
            (eye, np.zeros((n, H))) if cell._lstm else (eye,))
        want = reference_backprop(cell, x[:L, b], s0 if cell._lstm else s0[0], d_final)
        for t in range(L + 1):
            rows = np.concatenate(want[t], axis=1) if full else want[t][0]
            np.testing.assert_allclose(J[b, t], rows, rtol=0, atol=1e-12, err_msg=f"b={b} t={t}")
        np.testing.assert_array_equal(J[b, L], np.eye(n))
        assert np.all(np.isnan(J[b, L + 1:]))


def test_jacobian_full_lstm_state_equals_finite_differences_and_composes():
    cell = make_cell("lstm_peephole", D, H)
    x, state0, _ = problem(cell, seed=4)
    J = dg.state_jacobians(cell, x, state0=state0, state="full")[0]
    states = reference_states(cell, x[:, 0], tuple(s[0] for s in state0))
    ref = reference.from_cell(cell)
    t, eps = 2, 1e-6
    numeric = np.empty((2 * H, 2 * H))
    for j in range(2 * H):
        outs = []
        for sign in (1, -1):
            s = [v.copy() for v in states[t]]
            s[j // H][0, j % H] += sign * eps
            _, (h, c), _ = ref.forward(x[t:, :1], tuple(s))
            outs.append(np.concatenate([h[0], c[0]]))
        numeric[:, j] = (outs[0] - outs[1]) / (2 * eps)
    np.testing.assert_allclose(J[t], numeric, rtol=1e-7, atol=1e-9)
    # the full-state Jacobians compose along the chain: J_{T,1} = J_{T,3} J_{3,1}
    J31 = dg.state_jacobians(cell, x[:3, :1], state0=tuple(s[:1] for s in state0), state="full")[0, 1]
    np.testing.assert_allclose(J[1], J[3] @ J31, rtol=0, atol=1e-13)


def test_rnn_jacobian_is_the_product_of_diag_tanh_slope_times_U_transposed():
    """h_s = tanh(x_s W + h_{s-1} U + b): dh_s/dh_{s-1} = diag(1 - h_s^2) U^T."""
    cell = make_cell("rnn", D, H, scale=1.0)
    x, state0, _ = problem(cell, seed=5)
    J = dg.state_jacobians(cell, x, state0=state0)
    y, _, _ = cell.forward(x, state0)
    U = cell.params["U"]
    for b in range(B):
        prod = np.eye(H)
        for t in range(T, 0, -1):
            prod = prod @ (np.diag(1 - y[t - 1, b] ** 2) @ U.T)
            np.testing.assert_allclose(J[b, t - 1], prod, rtol=0, atol=1e-13)


def test_chunking_does_not_change_the_result():
    cell = make_cell("gru_after", D, H)
    x, state0, dstate = problem(cell)
    whole = dg.state_jacobians(cell, x, lengths=LENGTHS)
    chunked = dg.state_jacobians(cell, x, lengths=LENGTHS, max_rows=5)
    np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-14)
    np.testing.assert_allclose(dg.state_gradients(cell, x, dstate, max_rows=1),
                               dg.state_gradients(cell, x, dstate), rtol=0, atol=1e-14)


def test_singular_values():
    rng = np.random.default_rng(0)
    J = rng.standard_normal((2, 3, 4, 4))
    J[1, 2] = np.nan
    s = dg.singular_values(J)
    assert s.shape == (2, 3, 4)
    for idx in [(0, 0), (1, 1)]:
        np.testing.assert_allclose(s[idx], np.linalg.svd(J[idx], compute_uv=False), rtol=1e-13)
        assert s[idx][0] == pytest.approx(np.linalg.norm(J[idx], 2), rel=1e-13)
    assert np.all(np.isnan(s[1, 2]))
    with pytest.raises(ValueError, match=r"J must have shape"):
        dg.singular_values(np.zeros(3))


def test_model_state_gradients_through_the_loss_and_readout():
    """dL/dh_L is the readout's backward of the loss gradient; dL/dh_0 equals
    the cell's own backward pass's dstate0."""
    model = Model(D, H, 2, cell="lstm", seed=0)
    x, _, _ = problem(model.cells[0])
    y = np.random.default_rng(0).standard_normal((B, 2))
    dh, dc = dg.model_state_gradients(model, x, y, lengths=LENGTHS)
    cell = model.cells[0]
    out, cache = model.forward(x, LENGTHS)
    _, dout = pg.losses.mse(out, y)
    dh_last = dout @ model.params["readout.W"].T     # the readout's backward, by hand
    zeros = np.zeros(H)
    for b, L in enumerate(LENGTHS):      # every step against the reference cell's backprop
        want = reference_backprop(cell, x[:L, b], (zeros, zeros),
                                  (dh_last[b:b + 1], np.zeros((1, H))))
        for t in range(L + 1):
            np.testing.assert_allclose(dh[t, b], want[t][0][0], rtol=0, atol=1e-12)
            np.testing.assert_allclose(dc[t, b], want[t][1][0], rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="one unidirectional layer"):
        dg.model_state_gradients(Model(D, H, 2, num_layers=2), x, y)


def reference_gates(cell, x, lengths):
    """{gate: (T, B, H)} recomputed by the reference cell's step caches."""
    ref = reference.from_cell(cell)
    _, _, cache = ref.forward(x, lengths=lengths)
    # positions of the gate values in each reference step cache
    where = {"rnn": {"g": 2}, "simple_gru": {"f": 2, "g": 3},
             "gru_after": {"z": 2, "r": 3, "g": 5}, "gru_before": {"z": 2, "r": 3, "g": 5},
             "mgu_after": {"f": 2, "g": 4}, "mgu_before": {"f": 2, "g": 4},
             "lstm": {"i": 3, "f": 4, "g": 5, "o": 7},
             "cifg": {"f": 3, "g": 4, "o": 6},
             "mingru": {"z": 2, "g": 3}, "minlstm": {"f": 2, "i": 3, "g": 4}}
    name = {pg.RNN: "rnn", pg.SimpleGRU: "simple_gru", pg.LSTM: "lstm", pg.CoupledLSTM: "cifg",
            pg.MinGRU: "mingru", pg.MinLSTM: "minlstm"}.get(type(cell))
    name = name or f"{type(cell).__name__.lower()}_{cell.reset}"
    return {g: np.stack([np.broadcast_to(s[i], (B, H)) for s in cache.steps])
            for g, i in where[name].items()}


def test_gate_statistics_equal_a_direct_count(config):
    cell = make_cell(config, D, H, scale=3.0)  # large weights: saturated gates
    x, _, _ = problem(cell)
    _, _, cache = cell.forward(x, lengths=LENGTHS)
    stats = dg.gate_statistics(cache)
    assert set(stats) == set(cell.gates)
    gates = reference_gates(cell, x, LENGTHS)
    active = np.arange(T)[:, None] < LENGTHS[None, :]
    for g, a in gates.items():
        lo, hi = (-0.95, 0.95) if g == "g" else (0.05, 0.95)
        for t in range(T):
            v = a[t][active[t]]
            np.testing.assert_allclose(stats[g]["mean"][t], v.mean(), rtol=1e-12)
            assert stats[g]["low"][t] == np.mean(v < lo)
            assert stats[g]["high"][t] == np.mean(v > hi)
            assert stats[g]["saturated"][t] == np.mean((v < lo) | (v > hi))
    assert max(stats[g]["saturated"].max() for g in stats) > 0  # the test can see saturation


def test_gate_statistics_pins_thresholds_and_empty_steps():
    cell = make_cell("gru_after", D, H)
    x, _, _ = problem(cell)
    _, _, cache = cell.forward(x, lengths=[3, 2, 0], gates={"z": 0.97, "r": 0.5})
    stats = dg.gate_statistics(cache)
    np.testing.assert_allclose(stats["z"]["mean"][:3], 0.97, rtol=1e-15)
    np.testing.assert_array_equal(stats["z"]["high"][:3], 1.0)
    np.testing.assert_array_equal(stats["r"]["saturated"][:3], 0.0)
    assert np.all(np.isnan(stats["z"]["mean"][3:]))  # no sequence active
    loose = dg.gate_statistics(cache, sigmoid_saturation=(0.01, 0.99))
    np.testing.assert_array_equal(loose["z"]["high"][:3], 0.0)
    with pytest.raises(ValueError, match="sigmoid_saturation"):
        dg.gate_statistics(cache, sigmoid_saturation=(0.9, 0.1))
    with pytest.raises(ValueError, match="tanh_saturation"):
        dg.gate_statistics(cache, tanh_saturation=2)
    _, _, ref_cache = reference.from_cell(cell).forward(x)
    with pytest.raises(TypeError, match="compiled cell"):
        dg.gate_statistics(ref_cache)


def test_errors():
    cell = make_cell("lstm", D, H)
    x, state0, dstate = problem(cell)
    with pytest.raises(TypeError, match="compiled cell"):
        dg.state_gradients(reference.from_cell(cell), x, dstate)
    with pytest.raises(ValueError, match=r"dstate\[0\] \(h\) must have shape \(3, 3\)"):
        dg.state_gradients(cell, x, (np.zeros((2, H)), None))
    with pytest.raises(TypeError, match="not a tuple"):
        dg.state_gradients(make_cell("rnn", D, H), x, (dstate, dstate))
    with pytest.raises(ValueError, match='state must be "h" or "full"'):
        dg.state_jacobians(cell, x, state="c")
    with pytest.raises(ValueError, match=r"x must have shape \(T, B, 2\)"):
        dg.state_jacobians(cell, x[..., :1])
    with pytest.raises(ValueError, match="max_rows must be >= 1"):
        dg.state_jacobians(cell, x, max_rows=0)
    with pytest.raises(TypeError, match="cell must be a pyx_gru cell"):
        dg.flow_curve("gru", x)
    _, _, cache = cell.forward(x)
    with pytest.raises(TypeError, match=r"sigmoid_saturation must be a pair"):
        dg.gate_statistics(cache, sigmoid_saturation=0.5)
    with pytest.raises(TypeError, match="tanh_saturation must be a real number"):
        dg.gate_statistics(cache, tanh_saturation="0.9")
    # an LSTM dstate may be a plain array (dL/dc_L = 0) or (dh, dc)
    a = dg.state_gradients(cell, x, dstate)
    b = dg.state_gradients(cell, x, (dstate, np.zeros((B, H))))
    np.testing.assert_array_equal(a[0], b[0])


# -- gradient flow at initialisation -----------------------------------------------

def test_decay_rate_of_a_geometric_curve():
    T = 30
    curve = 3.0 * 0.8 ** (T - np.arange(T + 1))
    assert dg.decay_rate(curve) == pytest.approx(0.8, rel=1e-12)
    bent = curve.copy()
    bent[:10] = 1e-30  # outside the window: ignored
    assert dg.decay_rate(bent, start=10) == pytest.approx(0.8, rel=1e-12)
    with pytest.raises(ValueError, match="at least 2 steps"):
        dg.decay_rate(curve, start=30)
    with pytest.raises(ValueError, match="positive and finite"):
        dg.decay_rate(np.zeros(5))


@pytest.mark.parametrize("s", [0.5, 0.9, 1.3])
def test_a_linear_rnn_decays_at_exactly_sigma_max(s):
    """x = 0 and h_0 = 0 keep h_t = 0, where tanh' = 1: then
    dL/dh_{t-1} = dL/dh_t U^T, and with U = s Q (Q orthogonal) every step
    scales the norm by exactly s. Every prediction is s."""
    cell = pg.RNN(2, 8, seed=0)
    cell.params["U"][...] *= s
    x = np.zeros((40, 3, 2))
    curve = dg.flow_curve(cell, x)
    assert curve.shape == (41,) and curve[-1] == pytest.approx(1.0, rel=1e-12)
    np.testing.assert_allclose(curve, s ** (40 - np.arange(41)), rtol=1e-10)
    assert dg.decay_rate(curve) == pytest.approx(s, rel=1e-10)
    pred = dg.rnn_rate_predictions(cell, x)
    for key in ("sigma_max", "mean", "rms", "bound"):
        assert pred[key] == pytest.approx(s, rel=1e-12)
    assert pred["radius"] == pytest.approx(s, rel=1e-10)


@pytest.mark.parametrize("s", [0.6, 1.0])
def test_an_rnns_decay_follows_sigma_max_times_rms_slope(s):
    """With inputs that drive tanh off its linear range, the fitted rate sits
    below the bound sigma_max max|tanh'| and within 2% of sigma_max times the
    root mean square slope (the measured gap is under 0.5%)."""
    cell = pg.RNN(2, 32, seed=0)
    cell.params["U"][...] *= s
    x = tasks.adding(16, 60, seed=0).x
    curve = dg.flow_curve(cell, x, seed=1)
    rate = dg.decay_rate(curve, start=30)
    pred = dg.rnn_rate_predictions(cell, x, start=30)
    assert pred["sigma_max"] == pytest.approx(s, rel=1e-12)
    assert rate < pred["bound"]
    assert rate == pytest.approx(pred["rms"], rel=0.02)
    assert pred["mean_slope"] < 1 and pred["max_slope"] <= 1


def test_flow_curve_of_an_lstm_and_bad_input():
    cell = pg.LSTM(2, 4, seed=0)
    x = tasks.adding(3, 10, seed=0).x
    curve = dg.flow_curve(cell, x)
    # the documented recipe (seeded unit directions at T, geometric mean over
    # rows), with the norms from the reference cell's step-by-step backprop
    d = np.random.default_rng(0).standard_normal((3, 4))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    zeros = np.zeros(4)
    norms = np.array([[np.linalg.norm(w[0]) for w in
                       reference_backprop(cell, x[:, b], (zeros, zeros), (d[b:b + 1], np.zeros((1, 4))))]
                      for b in range(3)])
    np.testing.assert_allclose(curve, np.exp(np.log(norms).mean(axis=0)), rtol=1e-10)
    assert curve[-1] == pytest.approx(1.0, rel=1e-12)
    with pytest.raises(TypeError, match="must be a pyx_gru.RNN"):
        dg.rnn_rate_predictions(cell, x)
    with pytest.raises(ValueError, match=r"shape \(T, B, D\)"):
        dg.flow_curve(cell, x[0])


def test_the_gradient_flow_script_runs(tmp_path, capsys):
    """docs/results/gradient_flow.py, at a small size."""
    import runpy

    pytest.importorskip("matplotlib", reason="matplotlib (the script's plot) is not installed")

    script = runpy.run_path(str(ROOT / "docs" / "results" / "gradient_flow.py"))
    assert script["main"](["--hidden", "8", "--length", "20", "--batch", "3",
                           "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "U = 0.5 Q" in out and "GRU, b_z=3" in out and "LSTM (b_f=1)" in out
    assert (tmp_path / "gradient_flow.png").read_bytes()[:4] == b"\x89PNG"
