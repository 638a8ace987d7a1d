"""Layers and Model: gradients against finite differences (float64), the
whole model against PyTorch's stacked bidirectional modules, reversal within
lengths, parameters, seeding and dtypes."""
import json

import numpy as np
import pytest

import pyx_gru as pg
from pyx_gru import interop
from pyx_gru._gradcheck import gradcheck_layer
from pyx_gru.layers import (CELLS, Bidirectional, Dense, Model, Recurrent, Stack, make_cell,
                            reverse_sequences)
from helpers import assert_close, make_cell as make_test_cell

LENGTHS = [5, 2, 0, 4]


def randomize(model, seed=0, scale=0.5):
    """Every parameter from U(-scale, scale), biases included."""
    rng = np.random.default_rng(seed)
    model.params = {k: rng.uniform(-scale, scale, v.shape) for k, v in model.params.items()}
    return model


def x_of(T=5, B=4, D=2, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (T, B, D))


# --------------------------------------------------------------------------
# gradients against finite differences
# --------------------------------------------------------------------------

@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("readout", ["last", "every"])
def test_gradcheck_model(cell, bidirectional, readout):
    """Two layers, lengths with a 0 and a full one: every parameter and x."""
    model = randomize(Model(2, 3, 2, cell=cell, num_layers=2, bidirectional=bidirectional,
                            readout=readout, seed=1))
    errors = gradcheck_layer(model, x_of(), LENGTHS)
    assert set(errors) == set(model.params) | {"x"}
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["full", "lengths"])
def test_gradcheck_recurrent(reverse, lengths):
    layer = Recurrent(make_test_cell("lstm_peephole", 2, 3), reverse=reverse)
    errors = gradcheck_layer(layer, x_of(), lengths)
    assert max(errors.values()) < 1e-6, errors


def test_gradcheck_bidirectional_stack_and_dense():
    bi = Bidirectional(make_test_cell("gru_after", 2, 3, seed=1), make_test_cell("gru_after", 2, 3, seed=2))
    stack = Stack([bi, Recurrent(make_test_cell("simple_gru", 6, 2, seed=3), reverse=True)])
    dense = Dense(3, 4, seed=0)
    dense.params["b"][...] = [0.1, -0.2, 0.3, 0.4]
    for layer, x, lengths in [(bi, x_of(), LENGTHS), (stack, x_of(), LENGTHS),
                              (dense, x_of(D=3), None), (dense, x_of(D=3)[0], None)]:
        errors = gradcheck_layer(layer, x, lengths)
        assert max(errors.values()) < 1e-6, (layer, errors)


def test_gradcheck_layer_notices_a_wrong_gradient():
    class Wrong(Dense):
        def backward(self, cache, dout):
            dh, grads = super().backward(cache, dout)
            grads["W"] = grads["W"] * 1.001
            return dh, grads

    layer = Wrong(3, 2, seed=0)
    errors = gradcheck_layer(layer, x_of(D=3))
    assert errors["W"] > 1e-4 and errors["x"] < 1e-6


# --------------------------------------------------------------------------
# the whole model against PyTorch
# --------------------------------------------------------------------------

TORCH_KIND = {"rnn": "RNN", "gru": "GRU", "lstm": "LSTM"}


def torch_twin(model, torch):
    """torch.nn.<RNN|GRU|LSTM>(num_layers, bidirectional) and a Linear with the
    model's weights."""
    c = model.config
    kind = TORCH_KIND[c["cell"]]
    dt = torch.float64 if model.dtype == np.float64 else torch.float32
    rnn = getattr(torch.nn, kind)(c["input_size"], c["hidden_size"], num_layers=c["num_layers"],
                                  bidirectional=c["bidirectional"]).to(dt)
    state = {}
    for name, cell in torch_names(model):
        state.update({k.replace("_l0", name): torch.from_numpy(v.copy())
                      for k, v in interop.to_torch(cell).items()})
    rnn.load_state_dict(state)
    head = torch.nn.Linear(model.head.input_size, model.output_size).to(dt)
    head.load_state_dict({"weight": torch.from_numpy(model.head.params["W"].T.copy()),
                          "bias": torch.from_numpy(model.head.params["b"].copy())})
    return rnn, head


def torch_names(model):
    """(torch suffix, cell) for each cell: _l0, _l0_reverse, _l1, ..."""
    out = []
    for i, layer in enumerate(model.rnn.layers):
        if isinstance(layer, Bidirectional):
            out += [(f"_l{i}", layer.fwd.cell), (f"_l{i}_reverse", layer.bwd.cell)]
        else:
            out.append((f"_l{i}", layer.cell))
    return out


@pytest.mark.parametrize("cell", sorted(TORCH_KIND))
@pytest.mark.parametrize("readout", ["last", "every"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_model_equals_torch(cell, readout, dtype, torch):
    """Two bidirectional layers over packed sequences of unequal lengths and a
    Linear readout (on h_n of the top layer, or at every step): the output,
    dL/dx and every parameter's gradient equal autograd's for
    L = sum(dout * out)."""
    model = randomize(Model(3, 4, 2, cell=cell, num_layers=2, bidirectional=True,
                            readout=readout, dtype=dtype, seed=0))
    T, B = 6, 4
    lengths = np.array([6, 3, 1, 5])
    x = x_of(T, B, 3).astype(dtype)
    rng = np.random.default_rng(1)
    out, cache = model.forward(x, lengths)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx, grads = model.backward(cache, dout)

    rnn, head = torch_twin(model, torch)
    xt = torch.tensor(x, requires_grad=True)
    packed = torch.nn.utils.rnn.pack_padded_sequence(xt, torch.tensor(lengths), enforce_sorted=False)
    y, state = rnn(packed)
    h_n = state[0] if cell == "lstm" else state
    if readout == "last":
        feats = torch.cat([h_n[-2], h_n[-1]], dim=1)  # top layer: forward, backward
    else:
        feats, _ = torch.nn.utils.rnn.pad_packed_sequence(y, total_length=T)
    out_t = head(feats)
    if readout == "every":
        out_t = out_t * torch.tensor(np.arange(T)[:, None] < lengths[None, :])[..., None]
    (out_t * torch.tensor(dout)).sum().backward()

    assert_close(out, out_t.detach().numpy(), dtype, "out")
    assert_close(dx, xt.grad.numpy(), dtype, "dx")
    assert_close(grads["readout.W"], head.weight.grad.numpy().T, dtype, "readout.W")
    assert_close(grads["readout.b"], head.bias.grad.numpy(), dtype, "readout.b")
    torch_grads = {n: p.grad.numpy() for n, p in rnn.named_parameters()}
    for name, c in torch_names(model):
        prefix = next(k[: -len("W")] for k, v in model.params.items() if v is c.params["W"])
        ours = interop.to_torch(c, {k: grads[prefix + k] for k in c.params}, gradient=True)
        for k, v in ours.items():
            assert_close(v, torch_grads[k.replace("_l0", name)], dtype, k.replace("_l0", name))


# --------------------------------------------------------------------------
# reversal within lengths
# --------------------------------------------------------------------------

def test_reverse_sequences_within_lengths():
    x = np.arange(12).reshape(4, 3)
    np.testing.assert_array_equal(
        reverse_sequences(x, np.array([4, 2, 0])),
        [[9, 4, 2], [6, 1, 5], [3, 7, 8], [0, 10, 11]],
    )
    np.testing.assert_array_equal(reverse_sequences(x), x[::-1])
    np.testing.assert_array_equal(reverse_sequences(x, [4, 2, 0]), reverse_sequences(x, np.array([4, 2, 0])))
    with pytest.raises(ValueError, match="lengths must lie in"):
        reverse_sequences(x, [5, 2, 0])
    with pytest.raises(ValueError, match="lengths must lie in"):
        reverse_sequences(x, [-1, 2, 0])
    with pytest.raises(ValueError, match=r"lengths must have shape \(3,\)"):
        reverse_sequences(x, [4, 2])
    x3 = x_of(5, 4, 2)
    lengths = np.array(LENGTHS)
    r = reverse_sequences(x3, lengths)
    np.testing.assert_array_equal(reverse_sequences(r, lengths), x3)  # its own inverse
    for b, n in enumerate(LENGTHS):
        np.testing.assert_array_equal(r[:n, b], x3[:n, b][::-1])
        np.testing.assert_array_equal(r[n:, b], x3[n:, b])


def test_reversed_layer_is_the_cell_on_each_reversed_sequence(dtype):
    """Row by row: the cell run on x[:L][::-1] alone gives y reversed back and
    the same final state; padding stays zero."""
    cell = make_test_cell("gru_before", 2, 3, dtype=dtype)
    layer = Recurrent(cell, reverse=True)
    x = x_of(5, 4, 2)
    y, h_last, _ = layer.forward(x, LENGTHS)
    for b, n in enumerate(LENGTHS):
        y_b, h_b, _ = cell.forward(x[:n, b:b + 1][::-1])
        assert_close(y[:n, b], y_b[::-1, 0], dtype)
        assert_close(h_last[b], h_b[0], dtype)
        assert np.all(y[n:, b] == 0)


# --------------------------------------------------------------------------
# parameters, seeding, dtypes, errors
# --------------------------------------------------------------------------

def test_params_are_live_and_counted():
    model = Model(3, 5, 2, cell="lstm_peephole", num_layers=2, bidirectional=True, seed=0)
    cells = model.cells
    assert len(cells) == 4
    expected = sum(c.n_params for c in cells) + 10 * 2 + 2
    assert model.n_params == expected == sum(v.size for v in model.params.values())
    assert model.params["layer1.bwd.P"] is cells[3].params["P"]
    assert model.params["readout.W"].shape == (10, 2)
    snapshot = model.get_params()
    model.params["layer0.fwd.W"] += 1.0  # in place: the cell sees it
    assert np.array_equal(cells[0].params["W"], snapshot["layer0.fwd.W"] + 1.0)
    model.params = snapshot  # copies back into the same arrays
    assert np.array_equal(cells[0].params["W"], snapshot["layer0.fwd.W"])
    assert model.params["layer1.bwd.P"] is cells[3].params["P"]


def test_seeded_initialisation():
    a, b = Model(2, 3, 1, seed=7), Model(2, 3, 1, seed=7)
    c = Model(2, 3, 1, seed=8)
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    assert any(not np.array_equal(a.params[k], c.params[k]) for k in a.params if "W" in k)
    # the configuration rebuilds the same model
    m = Model(2, 3, 4, cell="gru_before", num_layers=2, bidirectional=True, readout="every",
              dtype=np.float32, seed=5)
    again = Model(**m.config)
    assert again.config == m.config and again.dtype == np.float32
    for k in m.params:
        np.testing.assert_array_equal(m.params[k], again.params[k])
    assert m.astype(np.float64).config["dtype"] == "float64"
    assert repr(Model(2, 3, 4, seed=5)).endswith("seed=5; 73 parameters)")
    # the cell's own initialisation: LSTM forget bias 1, readout bias 0
    m = Model(2, 3, 1, cell="lstm", seed=0)
    np.testing.assert_array_equal(m.params["layer0.b"][3:6], 1.0)
    np.testing.assert_array_equal(m.params["readout.b"], 0.0)


def test_float32_model_matches_float64():
    m64 = randomize(Model(2, 4, 3, cell="lstm", num_layers=2, readout="every", seed=0))
    m32 = m64.astype(np.float32)
    assert m32.dtype == np.float32 and all(v.dtype == np.float32 for v in m32.params.values())
    x = x_of()
    o64, c64 = m64.forward(x, LENGTHS)
    o32, c32 = m32.forward(x, LENGTHS)
    assert o32.dtype == np.float32
    assert_close(o32, o64, np.float32)
    dout = np.random.default_rng(0).standard_normal(o64.shape)
    dx64, g64 = m64.backward(c64, dout)
    dx32, g32 = m32.backward(c32, dout)
    assert m32.grads is g32 and all(g.dtype == np.float32 for g in g32.values())
    assert_close(dx32, dx64, np.float32)
    for k in g64:
        assert_close(g32[k], g64[k], np.float32, k)


def test_every_readout_is_zero_past_lengths():
    model = randomize(Model(2, 3, 2, readout="every", seed=0))
    out, cache = model.forward(x_of(), LENGTHS)
    for b, n in enumerate(LENGTHS):
        assert np.all(out[n:, b] == 0) and np.all(out[:n, b] != 0)
    # dout past the lengths is ignored, even NaN or Inf: bitwise as zeros there
    dout = np.random.default_rng(0).standard_normal(out.shape)
    clean = dout.copy()
    for b, n in enumerate(LENGTHS):
        clean[n:, b] = 0
        dout[n:, b] = np.nan if b % 2 else np.inf
    dx, grads = model.backward(cache, dout)
    dx0, grads0 = model.backward(cache, clean)
    np.testing.assert_array_equal(dx, dx0)
    for k in grads0:
        np.testing.assert_array_equal(grads[k], grads0[k])


def test_make_cell_names_and_errors():
    assert isinstance(make_cell("sgru", 2, 3), pg.SimpleGRU)
    assert make_cell("simple_gru", 2, 3).gates == ("f", "g")
    assert make_cell("gru_before", 2, 3).reset == "before"
    assert make_cell("gru_after", 2, 3).reset == "after"
    assert make_cell("lstm_peephole", 2, 3).peephole
    assert make_cell(pg.GRU, 2, 3, reset="before").reset == "before"
    with pytest.raises(ValueError, match="cell must be one of"):
        make_cell("transformer", 2, 3)
    with pytest.raises(TypeError, match="cell must be a name"):
        make_cell(3, 2, 3)


def test_errors_name_the_argument():
    model = Model(2, 3, 1, seed=0)
    with pytest.raises(ValueError, match="readout"):
        Model(2, 3, 1, readout="first")
    with pytest.raises(ValueError, match=r"x must have shape \(T, B, 2\)"):
        model.forward(np.zeros((4, 3, 5)))
    with pytest.raises(ValueError, match="lengths must lie in"):
        model.forward(np.zeros((4, 3, 2)), [1, 2, 9])
    out, cache = model.forward(np.zeros((4, 3, 2)))
    with pytest.raises(ValueError, match="dout must have shape"):
        model.backward(cache, np.zeros((3, 2)))
    stepper = Model(2, 3, 1, cell="lstm", num_layers=2, readout="every")
    with pytest.raises(TypeError, match=r"state\[1\] of LSTM must be a tuple"):
        stepper.step(np.zeros((2, 2)), [None, np.zeros((2, 3))])
    with pytest.raises(ValueError, match=r"state\[0\]\[0\] \(h\) must have shape \(2, 3\)"):
        stepper.step(np.zeros((2, 2)), [(np.zeros((2, 4)), None), None])
    for cell in ("gru", "lstm"):
        layer = Recurrent(make_cell(cell, 2, 3))
        _, _, lcache = layer.forward(np.zeros((4, 2, 2)))
        with pytest.raises(ValueError, match=r"dh_last must have shape \(2, 3\), got \(2, 4\)"):
            layer.backward(lcache, None, np.zeros((2, 4)))
    other = Model(2, 3, 1, seed=0)
    with pytest.raises(ValueError, match="cache must be the one"):
        other.backward(cache, np.zeros((3, 1)))
    with pytest.raises(ValueError, match="params need exactly the keys"):
        model.params = {"readout.W": np.zeros((3, 1))}
    with pytest.raises(ValueError, match=r"params\['readout.b'\] must have shape"):
        model.params = {**model.get_params(), "readout.b": np.zeros(2)}
    with pytest.raises(ValueError, match="same input_size, hidden_size and dtype"):
        Bidirectional(pg.GRU(2, 3), pg.GRU(2, 4))
    with pytest.raises(ValueError, match=r"layers\[1\] reads 3 features"):
        Stack([Recurrent(pg.GRU(2, 4)), Recurrent(pg.GRU(3, 4))])
    with pytest.raises(ValueError, match=r"h must have shape \(\.\.\., 3\)"):
        Dense(3, 2).forward(np.zeros((4, 2)))


def test_empty_batch_and_zero_steps():
    model = Model(2, 3, 2, readout="last", seed=0)
    out, cache = model.forward(np.zeros((0, 4, 2)))
    np.testing.assert_array_equal(out, np.broadcast_to(model.params["readout.b"], (4, 2)))
    dx, grads = model.backward(cache, np.ones((4, 2)))
    assert dx.shape == (0, 4, 2)
    out, cache = model.forward(np.zeros((5, 0, 2)))
    assert out.shape == (0, 2)


# --------------------------------------------------------------------------
# inference: cache=False
# --------------------------------------------------------------------------

@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("readout", ["last", "every"])
@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["full", "lengths"])
def test_model_inference_is_the_forward(cell, bidirectional, readout, lengths):
    """Model.forward(..., cache=False) (what evaluate and predict run) gives
    bitwise the outputs of the forward that keeps its caches, and no cache."""
    model = randomize(Model(2, 3, 2, cell=cell, num_layers=2, bidirectional=bidirectional,
                            readout=readout, seed=0))
    x = x_of()
    out, cache = model.forward(x, lengths)
    out_inf, none = model.forward(x, lengths, cache=False)
    assert none is None and cache is not None
    np.testing.assert_array_equal(out_inf, out)
    with pytest.raises(TypeError, match="cache must be True or False"):
        model.forward(x, lengths, cache="no")
    with pytest.raises(ValueError, match="cache must be the one Model.forward returned"):
        model.backward(None, np.ones_like(out))


def test_evaluate_and_predict_keep_no_cache(monkeypatch):
    # they only read outputs: every cell call they make is an inference pass
    model = Model(2, 3, 1, cell="gru", seed=0)
    x = x_of(T=6, B=5)
    seen = []
    forward = pg.GRU.forward

    def spy(self, *args, **kwargs):
        seen.append(kwargs.get("cache", True))
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(pg.GRU, "forward", spy)
    pg.predict(model, x, batch_size=2)
    pg.evaluate(model, x, np.zeros((5, 1)), loss="mse", batch_size=2)
    assert seen and not any(seen)


def test_cell_subclasses_with_their_own_forward():
    """A Cell subclass that overrides forward (as the first tutorial's leaky
    RNN does) trains and is evaluated whatever its signature: one that
    passes its other keywords on gets cache=False, one written before the
    keyword existed gets the forward that keeps a cache (same outputs)."""
    asked = []  # (class, the cache= its forward was given, or None for none)

    class Old(pg.SimpleGRU):  # a forward written before cache= existed
        def forward(self, x, state0=None, lengths=None, *, gates=None):
            asked.append((Old, None))
            return super().forward(x, state0, lengths, gates={"f": 0.5})

    class New(pg.SimpleGRU):
        def forward(self, x, state0=None, lengths=None, *, gates=None, **kwargs):
            asked.append((New, kwargs.get("cache")))
            return super().forward(x, state0, lengths, gates={"f": 0.5}, **kwargs)

    x, y = x_of(T=6, B=5), np.zeros((5, 1))
    outs = []
    for cls in (Old, New):
        model = Model(2, 3, 1, cell=cls, seed=0)
        out, cache = model.forward(x)
        model.backward(cache, np.ones_like(out))
        outs.append(out)
    np.testing.assert_array_equal(outs[0], outs[1])
    asked.clear()
    new = pg.evaluate(Model(2, 3, 1, cell=New, seed=0), x, y, loss="mse")
    old = pg.evaluate(Model(2, 3, 1, cell=Old, seed=0), x, y, loss="mse")
    assert new == old and new["count"] == 5
    # New was asked for the inference pass, Old (which could not take it) was not
    assert set(asked) == {(New, False), (Old, None)}
    np.testing.assert_array_equal(pg.predict(Model(2, 3, 1, cell=Old, seed=0), x), outs[0])
    for cls in (Old, New):
        with pytest.raises(TypeError, match="cache must be True or False"):
            Model(2, 3, 1, cell=cls, seed=0).forward(x, cache=None)


def test_a_cell_class_made_per_call_is_freed():
    # the record of which classes take cache= must not keep them alive (the
    # first tutorial makes one class per value of lambda)
    import gc
    import weakref

    def make():
        class Leaky(pg.SimpleGRU):
            def forward(self, x, state0=None, lengths=None, *, gates=None, **kwargs):
                return super().forward(x, state0, lengths, gates={"f": 0.3}, **kwargs)
        Model(2, 3, 1, cell=Leaky, seed=0).forward(x_of(), cache=False)
        return weakref.ref(Leaky)

    ref = make()
    gc.collect()
    assert ref() is None


def test_a_model_config_rebuilds_the_model():
    for cell, kw in ((pg.GRU, {"reset": "before"}), (pg.LSTM, {"peephole": True}),
                     ("cifg", {}), (pg.MinGRU, {})):
        model = Model(np.int64(2), np.int64(3), 2, cell=cell, seed=np.int64(4), **kw)
        again = Model(**model.config)
        json.dumps(model.config)  # NumPy ints kept as Python ints
        for k, v in model.params.items():
            np.testing.assert_array_equal(again.params[k], v)
        assert again.config == model.config
