"""Property tests: the invariants that make each cell what it is.

Each test's docstring states its invariant in words; the documentation cites
them. Strategies are in ``strategies.py``; example counts follow the
Hypothesis profile chosen in ``conftest.py`` (``ci`` draws the counts given
to ``helpers.examples``). Run this suite alone with ``pytest -m properties`` (or
``pytest -k properties``).

Where an invariant holds exactly in real arithmetic and the kernel computes
it with the same operations on the same numbers (multiplying by a gate that
is exactly 0 or 1), the test demands bitwise equality. Where two
computations take different routes (different matrix shapes, sums in a
different order) it allows the per-dtype tolerance of ``helpers.TOL``,
relative to the scale of the result.
"""
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import pyx_gru as pg
from pyx_gru import reference
from helpers import CONFIGS, TOL, assert_close, examples, parts, skip_scan
from strategies import Run, dtypes, problems, take_rows

pytestmark = pytest.mark.properties

ALL = sorted(CONFIGS)
GRUS = ["gru_after", "gru_before"]
DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["float32", "float64"]
dtype_param = pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)


def block(m, cell, gate):
    """The columns of gate ``gate`` in a (..., G*H) array."""
    H = cell.hidden_size
    k = cell.gates.index(gate)
    return m[..., k * H:(k + 1) * H]


def assert_grads_close(got, want, dtype, keys=None):
    for k in keys or want:
        assert_close(got[k], want[k], dtype, f"gradient of {k}")


def assert_runs_agree(got, want, dtype=None, *, exact=False, atol=None, params=None):
    """Assert that two ``Run``s (strategies.Run) agree on the outputs y, dx,
    every part of the final state and of dstate0, and the parameter
    gradients.

    Parameters
    ----------
    got, want : Run
    dtype : numpy float type
        Compare to this dtype's tolerance (``helpers.assert_close``: rtol and
        atol ``TOL[dtype]``, relative to max(1, |want|)), unless ``exact`` or
        ``atol`` is given.
    exact : bool
        Demand bitwise equality instead.
    atol : float, optional
        Demand |got - want| <= atol * max(1, |want|) instead.
    params : sequence of str, optional
        The parameter gradients compared: by default all of ``want``'s;
        ``()`` for none.
    """
    if exact:
        def check(u, v, what):
            np.testing.assert_array_equal(u, v, err_msg=what)
    elif atol is not None:
        def check(u, v, what):
            scale = max(1.0, float(np.max(np.abs(v), initial=0.0)))
            np.testing.assert_allclose(u, v, rtol=0, atol=atol * scale, err_msg=what)
    else:
        def check(u, v, what):
            assert_close(u, v, dtype, what)
    check(got.y, want.y, "y")
    check(got.dx, want.dx, "dx")
    for name in ("state", "dstate0"):
        ours, theirs = parts(getattr(got, name)), parts(getattr(want, name))
        assert len(ours) == len(theirs), name
        for i, (u, v) in enumerate(zip(ours, theirs, strict=True)):
            check(u, v, f"{name} part {i}")
    for k in want.dparams if params is None else params:
        check(got.dparams[k], want.dparams[k], f"gradient of {k}")


# --------------------------------------------------------------------------
# 1. GRU: the update gate
# --------------------------------------------------------------------------

@pytest.mark.parametrize("config", GRUS)
@dtype_param
@examples(150)
@given(data=st.data())
def test_gru_update_gate_one_keeps_the_state(config, dtype, data):
    """GRU, both forms: with z = 1 every step keeps the state exactly,
    h_t = h_{t-1} bitwise, so the final state is state0 and nothing flows
    into the weights: dx = 0, dW = dU = db = 0, and dstate0 = dstate plus
    the sum of dy over each sequence's steps."""
    p = data.draw(problems(config, dtype, lengths=True))
    y, state, cache, dx, dstate0, dparams = p.run(gates={"z": 1.0})
    h0 = np.asarray(p.state0, dtype=dtype)
    np.testing.assert_array_equal(state, h0)
    for b, L in enumerate(p.lengths):
        np.testing.assert_array_equal(y[:L, b], np.broadcast_to(h0[b], (L, h0.shape[1])))
    assert np.all(dx == 0)
    assert all(np.all(v == 0) for v in dparams.values())
    active = np.arange(p.T)[:, None] < p.lengths[None, :]
    want = np.asarray(p.dstate, dtype=dtype) + np.where(active[..., None], p.dy, 0).sum(0)
    assert_close(dstate0, want, dtype)


@pytest.mark.parametrize("config", GRUS)
@dtype_param
@examples(150)
@given(data=st.data())
def test_gru_update_gate_zero_takes_the_candidate(config, dtype, data):
    """GRU, both forms: with z = 0 the new state is the candidate,
    h_t = g_t, bitwise."""
    p = data.draw(problems(config, dtype))
    y, _, cache, *_ = p.run(gates={"z": 0.0})
    np.testing.assert_array_equal(y, block(cache.gates, p.cell, "g"))


# --------------------------------------------------------------------------
# 2. Simplified GRU: from memory to the vanilla RNN
# --------------------------------------------------------------------------

@dtype_param
@examples(200)
@given(data=st.data())
def test_simple_gru_forget_gate_one_is_pure_memory(dtype, data):
    """Simplified GRU: with f = 1 the cell is pure memory, h_t = h_0 for
    every t, bitwise."""
    p = data.draw(problems("simple_gru", dtype))
    y, state, *_ = p.run(gates={"f": 1.0})
    h0 = np.asarray(p.state0, dtype=dtype)
    np.testing.assert_array_equal(y, np.broadcast_to(h0, y.shape))
    np.testing.assert_array_equal(state, h0)


@dtype_param
@examples(200)
@given(data=st.data())
def test_simple_gru_forget_gate_zero_is_the_vanilla_rnn(dtype, data):
    """Simplified GRU: with f = 0 it is exactly the vanilla RNN with the same
    W_g, U_g, b_g: the same outputs, final state and gradients, and no
    gradient for W_f, U_f, b_f."""
    p = data.draw(problems("simple_gru", dtype, lengths=True))
    sgru = p.cell
    rnn = pg.RNN(sgru.input_size, sgru.hidden_size, dtype=dtype, seed=0)
    rnn.params = {k: block(v, sgru, "g") for k, v in sgru.params.items()}
    got = p.run(gates={"f": 0.0})
    want = p.run(cell=rnn)
    assert_runs_agree(got, want, dtype, params=())
    for k in ("W", "U", "b"):
        assert_close(block(got.dparams[k], sgru, "g"), want.dparams[k], dtype, k)
        assert np.all(block(got.dparams[k], sgru, "f") == 0)


@dtype_param
@examples(200)
@given(data=st.data(), lam=st.floats(0, 1))
def test_simple_gru_scalar_gate_is_the_leaky_rnn(dtype, data, lam):
    """Simplified GRU: a fixed scalar f = lambda gives the leaky RNN
    h_t = lambda h_{t-1} + (1 - lambda) g_t, with g_t the vanilla RNN's new
    state."""
    p = data.draw(problems("simple_gru", dtype))
    y, _, cache, *_ = p.run(gates={"f": lam})
    g = block(cache.gates, p.cell, "g")
    lam = dtype(lam)
    h = np.asarray(p.state0, dtype=dtype)
    for t in range(p.T):
        h = lam * h + (1 - lam) * g[t]
        assert_close(y[t], h, dtype)
    W, U, b = (block(p.cell.params[k], p.cell, "g") for k in ("W", "U", "b"))
    prev = np.concatenate([np.asarray(p.state0, dtype=dtype)[None], y[:-1]])
    assert_close(g, np.tanh(np.asarray(p.x, dtype=dtype) @ W + prev @ U + b), dtype)


# --------------------------------------------------------------------------
# 3. GRU: reset before and after the matmul
# --------------------------------------------------------------------------

def _gru_pair(p, dtype):
    after = p.cell
    before = pg.GRU(after.input_size, after.hidden_size, reset="before", dtype=dtype, seed=0)
    before.params = {k: v for k, v in after.params.items() if k != "b_hg"}
    return after, before


@dtype_param
@examples(200)
@given(data=st.data(), r=st.sampled_from([0.0, 1.0]))
def test_gru_forms_agree_when_reset_is_pinned(dtype, data, r):
    """GRU: with r = 1 and the recurrent candidate bias b_hg = 0, reset-before
    equals reset-after (r (h U_g) = (r h) U_g); with r = 0 they agree too,
    whatever b_hg (the candidate ignores the state). Outputs, final states
    and the gradients of x, state0, W, U and b agree."""
    p = data.draw(problems("gru_after", dtype, lengths=True))
    after, before = _gru_pair(p, dtype)
    if r == 1.0:
        after.params["b_hg"] = np.zeros_like(after.params["b_hg"])
    got = p.run(cell=after, gates={"r": r})
    want = p.run(cell=before, gates={"r": r})
    assert_runs_agree(got, want, dtype, params=("W", "U", "b"))


# --------------------------------------------------------------------------
# 3b. MGU: the simplified GRU whose one gate also resets
# --------------------------------------------------------------------------

MGUS = ["mgu_after", "mgu_before"]


@pytest.mark.parametrize("config", MGUS)
@dtype_param
@examples(150)
@given(data=st.data())
def test_mgu_forget_gate_one_keeps_the_state(config, dtype, data):
    """MGU, both forms: with f = 1 every step keeps the state, h_t = h_{t-1}
    bitwise, nothing flows into the weights, and dstate0 = dstate plus the
    sum of dy over each sequence's steps."""
    p = data.draw(problems(config, dtype, lengths=True))
    y, state, cache, dx, dstate0, dparams = p.run(gates={"f": 1.0})
    h0 = np.asarray(p.state0, dtype=dtype)
    np.testing.assert_array_equal(state, h0)
    for b, L in enumerate(p.lengths):
        np.testing.assert_array_equal(y[:L, b], np.broadcast_to(h0[b], (L, h0.shape[1])))
    assert np.all(dx == 0)
    assert all(np.all(v == 0) for v in dparams.values())
    active = np.arange(p.T)[:, None] < p.lengths[None, :]
    want = np.asarray(p.dstate, dtype=dtype) + np.where(active[..., None], p.dy, 0).sum(0)
    assert_close(dstate0, want, dtype)


@pytest.mark.parametrize("config", MGUS)
@dtype_param
@examples(150)
@given(data=st.data())
def test_mgu_forget_gate_zero_forgets_the_state(config, dtype, data):
    """MGU, both forms: with f = 0 the gate also resets the whole state
    inside the candidate, so every step is the feedforward layer
    h_t = tanh(x_t W_g + b_g), whatever h_{t-1} (and b_hg)."""
    p = data.draw(problems(config, dtype))
    y, *_ = p.run(gates={"f": 0.0})
    W, b = (block(p.cell.params[k], p.cell, "g") for k in ("W", "b"))
    assert_close(y, np.tanh(np.asarray(p.x, dtype=dtype) @ W + b), dtype)


@pytest.mark.parametrize("config", MGUS)
@dtype_param
@examples(150)
@given(data=st.data())
def test_mgu_is_a_gru_whose_update_and_reset_gates_are_one(config, dtype, data):
    """MGU, both forms: the GRU of the same form with z and r both given
    f's weights (W_z = W_r = W_f, likewise U and b) and the MGU's candidate
    computes the same outputs and final state, and the same dx and dstate0;
    f's gradients are the sums of z's and r's."""
    p = data.draw(problems(config, dtype, lengths=True))
    mgu = p.cell
    gru = pg.GRU(mgu.input_size, mgu.hidden_size, reset=mgu.reset, dtype=dtype, seed=0)
    gru.params = {k: (np.concatenate([block(v, mgu, "f"), v], axis=-1) if k in ("W", "U", "b")
                      else v) for k, v in mgu.params.items()}
    got, want = p.run(), p.run(cell=gru)
    for i in (0, 1, 3, 4):
        assert_close(got[i], want[i], dtype)
    for k in ("W", "U", "b"):
        assert_close(block(got[5][k], mgu, "g"), block(want[5][k], gru, "g"), dtype, k)
        assert_close(block(got[5][k], mgu, "f"),
                     block(want[5][k], gru, "z") + block(want[5][k], gru, "r"), dtype, k)
    if mgu.reset == "after":
        assert_close(got[5]["b_hg"], want[5]["b_hg"], dtype, "b_hg")


# --------------------------------------------------------------------------
# 4. LSTM
# --------------------------------------------------------------------------

@pytest.mark.parametrize("config", ["lstm", "lstm_peephole"])
@dtype_param
@examples(150)
@given(data=st.data())
def test_lstm_open_forget_closed_input_keeps_the_cell(config, dtype, data):
    """LSTM: with f = 1 and i = 0 the cell state is carried exactly,
    c_t = c_{t-1} bitwise, so the final c is c_0."""
    p = data.draw(problems(config, dtype))
    _, (h, c), cache, *_ = p.run(gates={"f": 1.0, "i": 0.0})
    c0 = np.asarray(p.state0[1], dtype=dtype)
    np.testing.assert_array_equal(cache.cs, np.broadcast_to(c0, cache.cs.shape))
    np.testing.assert_array_equal(c, c0)


@pytest.mark.parametrize("config", ["lstm", "lstm_peephole"])
@dtype_param
@examples(150)
@given(data=st.data())
def test_lstm_closed_output_gate_gives_zero_output(config, dtype, data):
    """LSTM: with o = 0 the output is h_t = 0 at every step, and no gradient
    reaches x, h_0 or the weights through y."""
    p = data.draw(problems(config, dtype))
    y, (h, c), cache, dx, (dh0, dc0), dparams = p.run(gates={"o": 0.0}, dstate=(p.dstate[0], None))
    assert np.all(y == 0) and np.all(h == 0)
    assert np.all(dx == 0) and np.all(dh0 == 0) and np.all(dc0 == 0)
    assert all(np.all(v == 0) for v in dparams.values())


@dtype_param
@examples(200)
@given(data=st.data())
def test_lstm_zero_peepholes_equal_the_plain_lstm(dtype, data):
    """LSTM: a peephole LSTM whose peepholes are 0 is the plain LSTM, bitwise:
    same outputs, states and gradients."""
    p = data.draw(problems("lstm", dtype, lengths=True))
    plain = p.cell
    peep = pg.LSTM(plain.input_size, plain.hidden_size, peephole=True, dtype=dtype, seed=0)
    peep.params = {**plain.params, "P": np.zeros((3, plain.hidden_size))}
    got, want = p.run(cell=peep), p.run(cell=plain)
    assert_runs_agree(got, want, exact=True, params=("W", "U", "b"))


# --------------------------------------------------------------------------
# 4b. The LSTM with coupled input and forget gates (CIFG): i = 1 - f
# --------------------------------------------------------------------------

CIFGS = ["cifg", "cifg_peephole"]


@pytest.mark.parametrize("config", CIFGS)
@dtype_param
@examples(150)
@given(data=st.data())
def test_cifg_forget_gate_one_keeps_the_cell(config, dtype, data):
    """CIFG, with and without peepholes: with f = 1 the input gate 1 - f is
    0, so every step carries the cell state exactly, c_t = c_{t-1} bitwise
    (the final c is c_0, past each length too), the output is
    h_t = o_t * tanh(c_0), and neither f nor the candidate g gets any
    gradient: their blocks of dW, dU and db, and p_f's row of dP, are 0."""
    p = data.draw(problems(config, dtype, lengths=True))
    cell = p.cell
    y, (h, c), cache, dx, dstate0, dparams = p.run(gates={"f": 1.0})
    c0 = np.asarray(p.state0[1], dtype=dtype)
    np.testing.assert_array_equal(cache.cs, np.broadcast_to(c0, cache.cs.shape))
    np.testing.assert_array_equal(c, c0)
    o = block(cache.gates, cell, "o")
    active = np.arange(p.T)[:, None, None] < p.lengths[None, :, None]
    assert_close(y, np.where(active, o * np.tanh(c0), 0), dtype)
    for k in ("W", "U", "b"):
        for gate in ("f", "g"):
            assert np.all(block(dparams[k], cell, gate) == 0), (k, gate)
    if cell.peephole:
        assert np.all(dparams["P"][0] == 0)


@pytest.mark.parametrize("config", CIFGS)
@dtype_param
@examples(150)
@given(data=st.data())
def test_cifg_forget_gate_zero_makes_the_cell_the_candidate(config, dtype, data):
    """CIFG, with and without peepholes: with f = 0 the input gate is 1, so
    c_t = g_t bitwise: the cell state remembers nothing of c_{t-1}. No
    output depends on c_0 (another c_0 gives the same y, h and c, bitwise),
    and dc_0 = 0."""
    p = data.draw(problems(config, dtype))
    run = p.run(gates={"f": 0.0})
    np.testing.assert_array_equal(run.cache.cs[1:], block(run.cache.gates, p.cell, "g"))
    np.testing.assert_array_equal(run.dstate0[1], 0)
    h0, c0 = p.state0
    other = p.run(gates={"f": 0.0}, state0=(h0, 2 * np.asarray(c0) + 1))
    np.testing.assert_array_equal(other.y, run.y)
    np.testing.assert_array_equal(other.state[0], run.state[0])
    np.testing.assert_array_equal(other.state[1], run.state[1])


def _lstm_of_cifg(cifg):
    """The LSTM whose input gate is 1 - f by construction: sigma(-a) =
    1 - sigma(a), so i's weights, bias and peephole are f's, negated."""
    lstm = pg.LSTM(cifg.input_size, cifg.hidden_size, peephole=cifg.peephole,
                   dtype=cifg.dtype, seed=0)
    params = {k: np.concatenate([-block(v, cifg, "f"), v], axis=-1)
              for k, v in cifg.params.items() if k in ("W", "U", "b")}
    if cifg.peephole:
        p_f, p_o = cifg.params["P"]
        params["P"] = np.stack([-p_f, p_f, p_o])
    lstm.params = params
    return lstm


@pytest.mark.parametrize("config", CIFGS)
@dtype_param
@examples(150)
@given(data=st.data())
def test_cifg_is_an_lstm_whose_input_gate_is_one_minus_f(config, dtype, data):
    """CIFG, with and without peepholes: the LSTM whose input gate has f's
    weights, bias and peephole negated (W_i = -W_f, likewise U, b and
    p_i = -p_f, so that i = sigma(-a_f) = 1 - f) and the CIFG's f, g, o
    computes the same outputs and final state (h, c), and the same dx and
    dstate0; f's gradients are the LSTM's f's minus its i's."""
    p = data.draw(problems(config, dtype, lengths=True))
    cifg = p.cell
    lstm = _lstm_of_cifg(cifg)
    got, want = p.run(), p.run(cell=lstm)
    assert_runs_agree(got, want, dtype, params=())
    for k in ("W", "U", "b"):
        for gate in ("g", "o"):
            assert_close(block(got.dparams[k], cifg, gate), block(want.dparams[k], lstm, gate),
                         dtype, k)
        assert_close(block(got.dparams[k], cifg, "f"),
                     block(want.dparams[k], lstm, "f") - block(want.dparams[k], lstm, "i"),
                     dtype, k)
    if cifg.peephole:
        dP = want.dparams["P"]
        assert_close(got.dparams["P"], np.stack([dP[1] - dP[0], dP[2]]), dtype, "P")


@dtype_param
@examples(200)
@given(data=st.data())
def test_cifg_zero_peepholes_equal_the_plain_cifg(dtype, data):
    """CIFG: a peephole CIFG whose peepholes are 0 is the plain CIFG,
    bitwise: same outputs, states and gradients."""
    p = data.draw(problems("cifg", dtype, lengths=True))
    plain = p.cell
    peep = pg.CoupledLSTM(plain.input_size, plain.hidden_size, peephole=True, dtype=dtype,
                          seed=0)
    peep.params = {**plain.params, "P": np.zeros((2, plain.hidden_size))}
    got, want = p.run(cell=peep), p.run(cell=plain)
    assert_runs_agree(got, want, exact=True, params=("W", "U", "b"))


# --------------------------------------------------------------------------
# 5. Bounds
# --------------------------------------------------------------------------

@pytest.mark.parametrize("config", ALL)
@dtype_param
@examples(60)
@given(data=st.data())
def test_gates_and_states_are_bounded(config, dtype, data):
    """Bounds: sigmoid gates lie in [0, 1] and the candidate g in [-1, 1];
    |h_t| <= max(1, |h_0|) elementwise for RNN, simplified GRU and GRU (each
    step mixes h_{t-1} and a tanh; 4 ulp of slack for rounding); |h_t| <= 1
    for the LSTM. Drawn with moderate and with saturating weights."""
    skip_scan(config, "the candidate is linear, so g and h are not bounded by 1; "
                      "test_mincells.py checks h is a convex mix")
    p = data.draw(problems(config, dtype, saturated=True))
    y, state, cache, *_ = p.run()
    cell = p.cell
    for gate in cell.gates:
        v = block(cache.gates, cell, gate)
        lo = -1 if gate == "g" else 0
        assert np.all((v >= lo) & (v <= 1)), gate
    if cell._lstm:
        assert np.all(np.abs(y) <= 1)
    else:
        bound = np.maximum(1, np.abs(np.asarray(p.state0, dtype=dtype)))
        slack = 1 + 4 * np.finfo(dtype).eps
        assert np.all(np.abs(y) <= bound * slack)


# --------------------------------------------------------------------------
# 6. The batch
# --------------------------------------------------------------------------

@pytest.mark.parametrize("config", ALL)
@dtype_param
@examples(40)
@given(data=st.data())
def test_batch_permutation_permutes_everything(config, dtype, data):
    """Batch: permuting the batch rows of x, state0, lengths, dy and dstate
    permutes y, the final state, dx and dstate0 the same way and leaves the
    parameter gradients unchanged."""
    p = data.draw(problems(config, dtype, lengths=True))
    perm = np.array(data.draw(st.permutations(range(p.B))))
    want = p.run()
    got = p.run(x=p.x[:, perm], state0=take_rows(p.state0, perm), lengths=p.lengths[perm],
                dy=p.dy[:, perm], dstate=take_rows(p.dstate, perm))
    assert_runs_agree(got, want.rows(perm), dtype)


@pytest.mark.parametrize("config", ALL)
@dtype_param
@examples(40)
@given(data=st.data())
def test_batch_rows_are_independent(config, dtype, data):
    """Batch: each row depends only on its own inputs. Changing row b's x,
    state0 and dy leaves every other row's y, final state, dx and dstate0
    bitwise unchanged."""
    p = data.draw(problems(config, dtype, lengths=True))
    b = data.draw(st.integers(0, p.B - 1))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x, dy = p.x.copy(), p.dy.copy()
    x[:, b] = rng.uniform(-1, 1, x[:, b].shape)
    dy[:, b] = rng.uniform(-1, 1, dy[:, b].shape)
    state0 = tuple(np.array(s) for s in parts(p.state0))
    for s in state0:
        s[b] = rng.uniform(-1, 1, s[b].shape)
    want = p.run()
    got = p.run(x=x, dy=dy, state0=state0 if p.cell._lstm else state0[0])
    others = [i for i in range(p.B) if i != b]
    assert_runs_agree(got.rows(others), want.rows(others), exact=True, params=())


# --------------------------------------------------------------------------
# 7. Splitting a sequence
# --------------------------------------------------------------------------

@pytest.mark.parametrize("config", ALL)
@dtype_param
@examples(40)
@given(data=st.data())
def test_splitting_a_sequence_changes_nothing(config, dtype, data):
    """Splitting: running x[:k] and then x[k:] from the carried state gives
    the same outputs and final state as running x; chaining the backward
    passes (the second's dstate0 is the first's dstate) gives the same dx and
    dstate0, and the two parameter gradients add up to the whole's. Lengths
    split too."""
    p = data.draw(problems(config, dtype, lengths=True))
    k = data.draw(st.integers(0, p.T))
    cell = p.cell
    whole = p.run()
    len1, len2 = np.minimum(p.lengths, k), np.maximum(p.lengths - k, 0)
    y1, s1, c1 = cell.forward(p.x[:k], p.state0, len1)
    y2, s2, c2 = cell.forward(p.x[k:], s1, len2)
    dx2, dmid, g2 = cell.backward(c2, p.dy[k:], p.dstate)
    dx1, d0, g1 = cell.backward(c1, p.dy[:k], dmid)
    chained = Run(y=np.concatenate([y1, y2]), state=s2, cache=None, dx=np.concatenate([dx1, dx2]),
                  dstate0=d0, dparams={key: g1[key] + g2[key] for key in g1})
    assert_runs_agree(chained, whole, dtype)


# --------------------------------------------------------------------------
# 8. Variable length
# --------------------------------------------------------------------------

@pytest.mark.parametrize("config", ALL)
@dtype_param
@examples(40)
@given(data=st.data())
def test_variable_length_equals_running_alone(config, dtype, data):
    """Variable length: a row with lengths[b] = L gives the same outputs (and
    0 after L), final state, dx (0 after L) and dstate0 as running x[:L, b]
    alone, and the parameter gradients are the sum of the rows' own."""
    p = data.draw(problems(config, dtype, lengths=True))
    run = p.run()
    total = {k: np.zeros_like(v) for k, v in run.dparams.items()}
    for b, L in enumerate(p.lengths):
        row = slice(b, b + 1)
        alone = p.run(x=p.x[:L, row], state0=take_rows(p.state0, row), lengths=None,
                      dy=p.dy[:L, row], dstate=take_rows(p.dstate, row))
        mine = run.rows(row)
        assert_runs_agree(mine._replace(y=mine.y[:L], dx=mine.dx[:L]), alone, dtype, params=())
        assert np.all(run.y[L:, b] == 0) and np.all(run.dx[L:, b] == 0)
        for k in total:
            total[k] += alone.dparams[k]
    assert_grads_close(run.dparams, total, dtype)


# --------------------------------------------------------------------------
# 9. Linearity of the backward pass
# --------------------------------------------------------------------------

@pytest.mark.parametrize("config", ALL)
@dtype_param
@examples(40)
@given(data=st.data(), a=st.floats(-2, 2), b=st.floats(-2, 2))
def test_backward_is_linear_in_the_upstream_gradients(config, dtype, data, a, b):
    """Linearity: backward(a dy1 + b dy2, a ds1 + b ds2) =
    a backward(dy1, ds1) + b backward(dy2, ds2), for dx, dstate0 and every
    parameter gradient (to rounding, relative to |a g1| + |b g2|)."""
    p = data.draw(problems(config, dtype, lengths=True))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    dy2 = rng.uniform(-1, 1, p.dy.shape)
    ds2 = tuple(rng.uniform(-1, 1, np.shape(s)) for s in parts(p.dstate))
    ds2 = ds2 if p.cell._lstm else ds2[0]
    _, _, cache = p.cell.forward(p.x, p.state0, p.lengths)

    def back(dy, ds):
        dx, d0, g = p.cell.backward(cache, dy, ds)
        return [dx, *parts(d0), *(g[k] for k in sorted(g))]

    combo = tuple(a * u + b * v for u, v in zip(parts(p.dstate), parts(ds2), strict=True))
    got = back(a * p.dy + b * dy2, combo if p.cell._lstm else combo[0])
    g1, g2 = back(p.dy, p.dstate), back(dy2, ds2)
    tol = TOL[dtype] * 10
    for u, v1, v2 in zip(got, g1, g2, strict=True):
        scale = max(1.0, float(np.max(np.abs(a * v1) + np.abs(b * v2), initial=0.0)))
        np.testing.assert_allclose(u, a * v1 + b * v2, rtol=0, atol=tol * scale)


# --------------------------------------------------------------------------
# 10. Finite differences
# --------------------------------------------------------------------------

@pytest.mark.parametrize("config", ALL)
@examples(50)
@given(data=st.data())
def test_gradients_equal_finite_differences(config, data):
    """Gradients: in float64, every parameter gradient, dx and dstate0 equal
    centered finite differences (relative error < 1e-6), on random small
    shapes, with random lengths and, sometimes, a pinned gate."""
    p = data.draw(problems(config, np.float64, max_T=5, max_B=3))
    cell = p.cell
    lengths = np.array(data.draw(st.lists(st.integers(0, p.T), min_size=p.B, max_size=p.B)))
    gates = None
    if cell.pinnable_gates and data.draw(st.booleans()):
        gates = {data.draw(st.sampled_from(cell.pinnable_gates)): data.draw(st.floats(0, 1))}
    seed = data.draw(st.integers(0, 2**16))
    errors = pg.gradcheck(cell, T=p.T, B=p.B, lengths=lengths, gates=gates, seed=seed)
    assert max(errors.values()) < 1e-6, errors


# --------------------------------------------------------------------------
# 11. Precision and the reference
# --------------------------------------------------------------------------

F32_VS_F64 = 5e-5


@pytest.mark.parametrize("config", ALL)
@examples(60)
@given(data=st.data())
def test_float32_agrees_with_float64(config, data):
    """Precision: the same cell and data in float32 and float64 agree to
    5e-5 relative to max(1, |result|), for outputs, states and all
    gradients (sequences of up to 6 steps)."""
    p = data.draw(problems(config, np.float64, lengths=True))
    c32 = p.cell.astype(np.float32)
    assert_runs_agree(p.run(cell=c32), p.run(), atol=F32_VS_F64)


def _agrees_with_reference(p, dtype, data, **overrides):
    """Run p's cell and its NumPy twin, with a randomly pinned gate half of
    the time, and compare outputs, states and every gradient (per-dtype
    tolerance)."""
    gates = None
    if p.cell.pinnable_gates and data.draw(st.booleans()):
        gates = {data.draw(st.sampled_from(p.cell.pinnable_gates)): data.draw(st.floats(0, 1))}
    got = p.run(gates=gates, **overrides)
    want = p.run(cell=reference.from_cell(p.cell), gates=gates, **overrides)
    assert_runs_agree(got, want, dtype)


@pytest.mark.parametrize("config", ALL)
@dtype_param
@examples(40)
@given(data=st.data())
def test_compiled_agrees_with_reference(config, dtype, data):
    """Reference: the compiled cell and the NumPy reference agree (float64 to
    1e-12, float32 to 1e-5, relative to scale) on outputs, states and every
    gradient, with lengths and, sometimes, pinned gates."""
    _agrees_with_reference(data.draw(problems(config, dtype, lengths=True)), dtype, data)


@pytest.mark.parametrize("config", ALL)
@dtype_param
@examples(40)
@given(data=st.data())
def test_compiled_agrees_with_reference_across_backward_chunks(config, dtype, data):
    """Chunks: the backward pass sums the weight gradients over chunks of at
    least 32 rows; on sequences long enough for several chunks (T up to 80),
    with lengths ending anywhere (chunk edges included) and, sometimes, a
    pinned gate, the compiled cell still agrees with the reference."""
    p = data.draw(problems(config, dtype, lengths=True, min_T=33, max_T=80, max_B=2))
    if data.draw(st.booleans()):
        p.lengths[0] = min(data.draw(st.sampled_from([32, 64, p.T])), p.T)
    _agrees_with_reference(p, dtype, data)


# --------------------------------------------------------------------------
# 12. Determinism
# --------------------------------------------------------------------------

def _flat(run):
    return [run.y, *parts(run.state), run.dx, *parts(run.dstate0),
            *(run.dparams[k] for k in sorted(run.dparams))]


@pytest.mark.parametrize("config", ALL)
@given(data=st.data(), dtype=dtypes)
@examples(50)
def test_results_are_bitwise_deterministic_across_calls_and_threads(config, data, dtype):
    """Determinism: the same inputs give bitwise identical outputs and
    gradients on every call, including 8 calls running at once in 4 threads
    on the same cell (the kernels release the GIL)."""
    p = data.draw(problems(config, dtype, lengths=True))
    first = _flat(p.run())
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: _flat(p.run()), range(8)))
    for again in [_flat(p.run())] + results:
        for u, v in zip(again, first, strict=True):
            np.testing.assert_array_equal(u, v)
