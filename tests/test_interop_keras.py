"""pyx_gru against Keras 3.15.1 layers on the PyTorch backend: weights from
``layer.get_weights()``, outputs, states and (through torch's autograd) every
gradient compared, and the weights sent back into the layer."""
import os

os.environ["KERAS_BACKEND"] = "torch"  # before keras is imported

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import pyx_gru as pg  # noqa: E402
from pyx_gru import interop  # noqa: E402

torch = pytest.importorskip("torch", reason="torch (an optional peer, in the 'test' extra) is not installed")
keras = pytest.importorskip("keras", reason="keras (an optional peer, in the 'test' extra) is not installed")

LAYERS = {
    "SimpleRNN": (keras.layers.SimpleRNN, {}),
    "GRU-reset_after": (keras.layers.GRU, {"reset_after": True}),
    "GRU-reset_before": (keras.layers.GRU, {"reset_after": False}),
    "LSTM": (keras.layers.LSTM, {}),
}
# Keras 3 maps float64 to float32 in its type promotion on every backend but
# TensorFlow (keras/src/backend/common/dtypes.py, BIT64_TO_BIT32_DTYPE), so
# keras.ops.matmul of two float64 tensors is computed in float32. SimpleRNN and
# GRU(reset_after=False) run through keras.ops and are float32-accurate even
# with dtype="float64"; GRU(reset_after=True) and LSTM call torch directly and
# are exact. The tolerances say so.
TOL = {
    ("float32", False): 2e-5, ("float64", False): 1e-10,
    ("float32", True): 2e-5, ("float64", True): 2e-6,
}


def build(name, dtype, D, H, seed):
    cls, kw = LAYERS[name]
    layer = cls(H, return_sequences=True, return_state=True, dtype=dtype, **kw)
    layer.build((None, None, D))
    rng = np.random.default_rng(seed)
    # every weight random, biases included (the defaults are zero)
    layer.set_weights([rng.uniform(-0.5, 0.5, w.shape).astype(dtype) for w in layer.get_weights()])
    return layer


def run_keras(layer, x, state0, dy, dstate):
    """Batch-major Keras call, time-major NumPy in and out, autograd grads."""
    x_t = torch.tensor(x.transpose(1, 0, 2).copy(), requires_grad=True)
    s0 = [torch.tensor(s, requires_grad=True) for s in state0]
    y, *final = layer(x_t, initial_state=s0)
    loss = (y * torch.tensor(dy.transpose(1, 0, 2).copy())).sum()
    for s, d in zip(final, dstate, strict=True):
        loss = loss + (s * torch.tensor(d)).sum()
    loss.backward()
    return (y.detach().numpy().transpose(1, 0, 2), [s.detach().numpy() for s in final],
            x_t.grad.numpy().transpose(1, 0, 2), [s.grad.numpy() for s in s0],
            [v.value.grad.numpy() for v in layer.trainable_weights])


@pytest.mark.parametrize("name", list(LAYERS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("seed", [0, 1])
def test_layer_equals_cell_from_its_weights(name, dtype, seed):
    """Outputs, final states, dx, dstate0 and the gradient of every weight of
    the Keras layer equal those of the cell built from get_weights()."""
    rng = np.random.default_rng(seed)
    T, B, D, H = (int(v) for v in rng.integers(1, 7, size=4))
    layer = build(name, dtype, D, H, seed)
    cell = interop.from_keras(layer)
    assert cell.dtype == np.dtype(dtype)
    assert isinstance(cell, {"SimpleRNN": pg.RNN, "LSTM": pg.LSTM}.get(name, pg.GRU))
    n = 2 if cell._lstm else 1
    x = rng.standard_normal((T, B, D)).astype(dtype)
    state0 = [rng.standard_normal((B, H)).astype(dtype) for _ in range(n)]
    dy = rng.standard_normal((T, B, H)).astype(dtype)
    dstate = [rng.standard_normal((B, H)).astype(dtype) for _ in range(n)]
    y_k, s_k, dx_k, ds0_k, grads_k = run_keras(layer, x, state0, dy, dstate)

    as_state = tuple if cell._lstm else (lambda parts: parts[0])
    y, state, cache = cell.forward(x, as_state(state0))
    dx, dstate0, dparams = cell.backward(cache, dy, as_state(dstate))
    tol = TOL[dtype, name in ("SimpleRNN", "GRU-reset_before")]

    def close(a, b, what):
        scale = max(1.0, float(np.max(np.abs(b), initial=0.0)))
        np.testing.assert_allclose(a, b, rtol=0, atol=tol * scale, err_msg=what)

    close(y, y_k, "y")
    close(dx, dx_k, "dx")
    for u, v in zip(state if cell._lstm else (state,), s_k, strict=True):
        close(u, v, "final state")
    for u, v in zip(dstate0 if cell._lstm else (dstate0,), ds0_k, strict=True):
        close(u, v, "dstate0")
    mine = interop.to_keras(cell, dparams, gradient=True)
    assert [a.shape for a in mine] == [g.shape for g in grads_k]
    for k, (u, v) in enumerate(zip(mine, grads_k, strict=True)):
        close(u, v, f"gradient of weight {k}")


@pytest.mark.parametrize("name", list(LAYERS))
def test_round_trip_back_into_the_layer(name):
    """set_weights(to_keras(from_keras(layer))) leaves the layer computing
    the same outputs; kernels come back exactly."""
    layer = build(name, "float64", 3, 4, seed=3)
    before = layer.get_weights()
    x = np.random.default_rng(0).standard_normal((2, 5, 3))
    y_before = layer(torch.tensor(x))[0].detach().numpy()
    cell = interop.from_keras(layer)
    layer.set_weights(interop.to_keras(cell))
    after = layer.get_weights()
    np.testing.assert_array_equal(after[0], before[0])
    np.testing.assert_array_equal(after[1], before[1])
    np.testing.assert_allclose(np.sum(after[2], axis=0), np.sum(before[2], axis=0), rtol=1e-15)
    np.testing.assert_allclose(layer(torch.tensor(x))[0].detach().numpy(), y_before, atol=1e-12)


@pytest.mark.parametrize("name", list(LAYERS))
def test_recurrent_dropout_comes_along_and_what_cannot_is_named(name):
    """A layer's recurrent_dropout becomes the cell's, silently; its input
    dropout and go_backwards, which a cell cannot carry, are named in a
    warning (the weights still convert)."""
    import warnings
    cls, kw = LAYERS[name]
    layer = cls(4, recurrent_dropout=0.25, **kw)
    layer.build((None, None, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        cell = interop.from_keras(layer)
    assert cell.recurrent_dropout == 0.25
    np.testing.assert_array_equal(cell.params["W"], layer.get_weights()[0])
    for extra, match in [({"dropout": 0.1}, r"dropout=0\.1 \(input dropout"),
                         ({"go_backwards": True}, r"go_backwards=True \(run the cell on x\[::-1\]\)")]:
        layer = cls(4, **kw, **extra)
        layer.build((None, None, 3))
        with pytest.warns(UserWarning, match=match):
            cell = interop.from_keras(layer)
        assert cell.recurrent_dropout == 0
        np.testing.assert_array_equal(cell.params["U"], layer.get_weights()[1])


def test_from_a_list_of_arrays():
    layer = build("GRU-reset_before", "float64", 3, 4, seed=0)
    a = interop.from_keras(layer)
    b = interop.from_keras(layer.get_weights(), kind="GRU", reset_after=False)
    assert b.reset == "before"
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    no_bias = interop.from_keras(layer.get_weights()[:2], kind="GRU", reset_after=True)
    assert np.all(no_bias.params["b"] == 0) and np.all(no_bias.params["b_hg"] == 0)


@pytest.mark.parametrize("make,match", [
    (lambda: build("SimpleRNN", "float64", 3, 4, 0).get_weights(), "kind must be one of"),
    (lambda: keras.layers.GRU(4), "not built yet"),
    (lambda: keras.layers.Dense(4), "takes SimpleRNN, GRU or LSTM"),
])
def test_from_keras_rejects(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        interop.from_keras(make())


def test_from_keras_rejects_other_activations():
    layer = keras.layers.GRU(4, recurrent_activation="hard_sigmoid")
    layer.build((None, None, 3))
    with pytest.raises(ValueError, match="hard_sigmoid"):
        interop.from_keras(layer)
    layer = keras.layers.SimpleRNN(4, activation="relu")
    layer.build((None, None, 3))
    with pytest.raises(ValueError, match="relu"):
        interop.from_keras(layer)


def test_from_keras_checks_shapes():
    with pytest.raises(ValueError, match=r"recurrent_kernel must be \(4, 12\)"):
        interop.from_keras([np.zeros((3, 12)), np.zeros((4, 4))], kind="GRU")
    with pytest.raises(ValueError, match=r"bias must be \(2, 12\)"):
        interop.from_keras([np.zeros((3, 12)), np.zeros((4, 12)), np.zeros(12)], kind="GRU")


@pytest.mark.parametrize("cell,match", [
    (pg.SimpleGRU(3, 4), "no simplified GRU"),
    (pg.MGU(3, 4, reset="before"), "no MGU"),
    (pg.LSTM(3, 4, peephole=True), "no peepholes"),
    (pg.CoupledLSTM(3, 4), "no CoupledLSTM"),
    (pg.CoupledLSTM(3, 4, peephole=True), "no CoupledLSTM"),
])
def test_to_keras_rejects_cells_keras_does_not_have(cell, match):
    with pytest.raises(ValueError, match=match):
        interop.to_keras(cell)
