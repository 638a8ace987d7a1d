"""Saving whole models, layers and optimisers, and loading them back with
``pyx_gru.load``: bitwise the same outputs, gradients and optimiser steps;
every kind of bad file refused, naming what is wrong, with nothing run."""
import json
import os
import pathlib
import zipfile

import numpy as np
import pytest

import pyx_gru as pg
from pyx_gru import layers, optim

from test_save import Payload, bits, write_npz

CELL_NAMES = ["rnn", "sgru", "gru", "gru_before", "lstm", "lstm_peephole"]
ARCHITECTURES = {
    "one layer, last": dict(num_layers=1, bidirectional=False, readout="last"),
    "stacked, every": dict(num_layers=2, bidirectional=False, readout="every"),
    "bidirectional stack, every": dict(num_layers=2, bidirectional=True, readout="every"),
    "bidirectional, last": dict(num_layers=1, bidirectional=True, readout="last"),
}


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def problem(model, T=5, B=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, model.input_size))
    lengths = np.array([T, T - 2, 1][:B])
    return x, lengths


def outputs_and_grads(model, x, lengths):
    out, cache = model.forward(x, lengths)
    dout = np.cos(np.arange(out.size)).reshape(out.shape)
    dx, grads = model.backward(cache, dout)
    return [out, dx, *(grads[k] for k in sorted(grads))]


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("cell", CELL_NAMES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_a_loaded_model_computes_bitwise_the_same(cell, arch, dtype):
    model = layers.Model(4, 6, 3, cell=cell, dtype=dtype, seed=3, **ARCHITECTURES[arch])
    # move away from the initialisation, so that a model rebuilt from its
    # seed would differ
    for v in model.params.values():
        v += np.asarray(0.01, dtype=v.dtype)
    path = model.save("model.npz")
    new = pg.load(path)
    assert type(new) is layers.Model and repr(new) == repr(model) and new.config == model.config
    assert new.params.keys() == model.params.keys()
    for k in model.params:
        np.testing.assert_array_equal(bits(new.params[k]), bits(model.params[k]))
        assert not np.shares_memory(new.params[k], model.params[k])
    x, lengths = problem(model)
    for a, b in zip(outputs_and_grads(model, x, lengths), outputs_and_grads(new, x, lengths), strict=True):
        np.testing.assert_array_equal(bits(b), bits(a))


def test_model_config_still_builds_the_same_architecture():
    model = layers.Model(4, 6, 3, cell="gru", reset="before", num_layers=2, seed=1,
                         gate_bias={"z": 1.5})
    new = pg.load(model.save("m.npz"))
    again = layers.Model(**new.config)
    assert repr(again) == repr(model)
    for k in model.params:  # the same seed: the same initialisation
        np.testing.assert_array_equal(again.params[k], model.params[k])


@pytest.mark.parametrize("make", [
    lambda: layers.Recurrent(pg.GRU(3, 4, seed=0), reverse=True),
    lambda: layers.Recurrent(pg.LSTM(3, 4, peephole=True, dtype=np.float32, seed=0)),
    lambda: layers.Bidirectional(pg.SimpleGRU(3, 4, seed=0), pg.SimpleGRU(3, 4, seed=1)),
    lambda: layers.Stack([layers.Recurrent(pg.RNN(3, 4, seed=0)),
                          layers.Bidirectional(pg.GRU(4, 2, seed=1), pg.GRU(4, 2, seed=2))]),
    lambda: layers.Dense(4, 2, seed=0),
], ids=["recurrent reversed", "lstm peephole f32", "bidirectional", "stack", "dense"])
def test_layers_on_their_own_round_trip(make):
    layer = make()
    new = pg.load(layer.save("layer.npz"))
    assert type(new) is type(layer) and repr(new) == repr(layer)
    x = np.random.default_rng(0).standard_normal((5, 2, layer.input_size))
    if isinstance(layer, layers.Dense):
        a, b = layer.forward(x), new.forward(x)
        np.testing.assert_array_equal(b[0], a[0])
        return
    a, b = layer.forward(x, [5, 3]), new.forward(x, [5, 3])
    np.testing.assert_array_equal(b[0], a[0])
    np.testing.assert_array_equal(b[1], a[1])
    ga = layer.backward(a[2], np.ones_like(a[0]))
    gb = new.backward(b[2], np.ones_like(b[0]))
    np.testing.assert_array_equal(gb[0], ga[0])
    for k in ga[1]:
        np.testing.assert_array_equal(gb[1][k], ga[1][k])


def test_a_cell_class_defined_elsewhere_is_not_saved():
    class MyGRU(pg.GRU):
        pass

    model = layers.Model(3, 4, 2, cell=MyGRU, seed=0)
    with pytest.raises(TypeError, match="only the cells .* can be saved, got MyGRU"):
        model.save("m.npz")
    assert not os.listdir(".")


def test_cells_saved_before_still_load():
    cell = pg.GRU(3, 4, seed=0)
    new = pg.load(cell.save("cell.npz"))
    assert type(new) is pg.GRU and json.loads(str(np.load("cell.npz")["metadata"]))["format"] == "pyx_gru.cell"


# -- bad files ---------------------------------------------------------------------

def model_file(path="m.npz", **meta_changes):
    """(arrays, metadata) of a saved two-layer GRU model, metadata changed."""
    model = layers.Model(3, 4, 2, cell="gru", num_layers=2, seed=0)
    model.save(path)
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files if k != "metadata"}
        meta = json.loads(str(z["metadata"]))
    meta.update(meta_changes)
    return arrays, meta


def spec_with(change):
    arrays, meta = model_file()
    change(meta["spec"])
    return arrays, meta


@pytest.mark.parametrize("change,match", [
    (lambda s: s["rnn"]["layers"][0]["cell"].update(hidden_size=5),
     r"spec.rnn.layers\[1\] does not fit on layers\[0\]"),
    (lambda s: [c["cell"].update(hidden_size=5) for c in s["rnn"]["layers"]] + [
        s["rnn"]["layers"][1]["cell"].update(input_size=5), s["head"].update(input_size=5)],
     r"'layer0.W' must be a float64 array of shape \(3, 15\), got float64 \(3, 12\)"),
    (lambda s: s["rnn"]["layers"][0]["cell"].update(cell="LSTM", form={"peephole": False}),
     r"does not fit|missing"),
    (lambda s: s["rnn"]["layers"].pop(), r"does not fit on the recurrent layers|unexpected \['layer1"),
    (lambda s: s["rnn"]["layers"][1].update(type="Model"), "must be a Recurrent or Bidirectional"),
    (lambda s: s["head"].update(output_size=3), r"'readout.W' must be a float64 array of shape \(4, 3\)"),
    (lambda s: s["head"].update(dtype="float16"), "dtype must be 'float32' or 'float64'"),
    (lambda s: s.update(readout="first"), "readout must be 'last' or 'every'"),
    (lambda s: s["rnn"]["layers"][0]["cell"].update(cell="os.system"), "cell must be one of"),
    (lambda s: s["rnn"]["layers"][0].update(reverse="yes"), "reverse must be true or false"),
    (lambda s: s["rnn"]["layers"][0]["cell"].update(input_size=2**40), "input_size must be <="),
    (lambda s: s["rnn"].update(layers=[]), "layers must be a list of 1 to"),
    (lambda s: s.update(extra=1), r"unexpected \['extra'\]"),
    (lambda s: [c["cell"].update(hidden_size=2**20) for c in s["rnn"]["layers"]] + [
        s["rnn"]["layers"][1]["cell"].update(input_size=2**20), s["head"].update(input_size=2**20)],
     "this file's model is too large"),
])
def test_a_model_file_that_lies_is_refused(change, match):
    arrays, meta = spec_with(change)
    write_npz("lie.npz", arrays, meta)
    with pytest.raises(ValueError, match=match) as info:
        pg.load("lie.npz")
    assert "lie.npz" in str(info.value)


@pytest.mark.parametrize("edit,match", [
    (lambda a: a.pop("layer1.U"), r"missing \['layer1.U'\], unexpected \[\]"),
    (lambda a: a.update(extra=np.zeros(2)), r"missing \[\], unexpected \['extra'\]"),
    (lambda a: a.update({"readout.b": np.zeros(3)}), r"'readout.b' must be a float64 array of shape \(2,\)"),
    (lambda a: a.update({"layer0.b": a["layer0.b"].astype(np.float32)}),
     "must be a float64 array of shape .* got float32"),
    (lambda a: a.update({"layer0.W": np.array([Payload("PWNED")] * 3, dtype=object)}),
     "holds Python objects"),
])
def test_a_model_file_with_wrong_arrays_is_refused(edit, match, tmp_path):
    arrays, meta = model_file()
    edit(arrays)
    write_npz("bad.npz", arrays, meta)
    with pytest.raises(ValueError, match=match):
        pg.load("bad.npz")
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("changes,match", [
    ({"format_version": 2}, r"format_version 2 cannot be read: this pyx_gru reads version 1 "
                            r"\(the file is from a newer pyx_gru\)"),
    ({"format_version": "1"}, "format_version '1' cannot be read"),
    ({"format": "pyx_gru.layer"}, "a pyx_gru.layer file cannot hold a Model|type must be one of"),
    ({"format": "pyx_gru.rocket"}, "format must be one of"),
    ({"spec": None}, "spec must be a JSON object"),
    ({"surprise": 1}, r"unexpected \['surprise'\]"),
])
def test_a_model_file_with_a_bad_envelope_is_refused(changes, match):
    arrays, meta = model_file(**changes)
    write_npz("bad.npz", arrays, meta)
    with pytest.raises(ValueError, match=match):
        pg.load("bad.npz")


def test_truncated_and_foreign_model_files_are_refused():
    data = layers.Model(3, 4, 2, seed=0).save("good.npz").read_bytes()
    for name, content in {"half": data[: len(data) // 2], "empty": b"",
                          "text": b"not a model", "no directory": data[:-22]}.items():
        pathlib.Path(name).write_bytes(content)
        with pytest.raises(ValueError) as info:
            pg.load(name)
        assert str(info.value).startswith(name + ":"), info.value
    with zipfile.ZipFile("junk.npz", "w") as z:
        z.writestr("model.json", "{}")
    with pytest.raises(ValueError, match="distinct .npy members only"):
        pg.load("junk.npz")


def test_an_interrupted_model_save_leaves_the_old_file(monkeypatch):
    model = layers.Model(3, 4, 2, seed=0)
    model.save("m.npz")
    before = pathlib.Path("m.npz").read_bytes()

    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", fail)
    with pytest.raises(KeyboardInterrupt):
        layers.Model(3, 4, 2, seed=1).save("m.npz")
    assert pathlib.Path("m.npz").read_bytes() == before and os.listdir(".") == ["m.npz"]


# -- optimisers ----------------------------------------------------------------------

OPTIMIZERS = {
    "sgd": lambda: optim.SGD(0.05),
    "sgd momentum": lambda: optim.SGD(0.05, momentum=0.9),
    "sgd nesterov": lambda: optim.SGD(0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "rmsprop": lambda: optim.RMSProp(0.01),
    "rmsprop centered momentum": lambda: optim.RMSProp(0.01, momentum=0.5, centered=True),
    "adam": lambda: optim.Adam(0.01, betas=(0.8, 0.99), weight_decay=1e-4),
}


def train_steps(model, opt, n, seed):
    x, lengths = problem(model, seed=seed)
    for _ in range(n):
        out, cache = model.forward(x, lengths)
        model.backward(cache, out - 0.5)
        opt.step(model.params, model.grads)


@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("through", ["file", "state_dict"])
def test_training_continues_as_if_never_stopped(name, through):
    """5 steps, save model and optimiser, load both, 4 more steps: bitwise
    the parameters of 9 steps without a stop."""
    model, opt = layers.Model(3, 4, 2, cell="lstm", seed=0), OPTIMIZERS[name]()
    train_steps(model, opt, 5, seed=1)
    if through == "file":
        model2, opt2 = pg.load(model.save("m.npz")), pg.load(opt.save("o.npz"))
    else:
        model2, opt2 = model.copy(), OPTIMIZERS[name]()
        opt2.lr = 123.0  # overwritten by the state
        opt2.load_state_dict(opt.state_dict())
    assert type(opt2) is type(opt) and repr(opt2) == repr(opt) and opt2.t == opt.t == 5
    train_steps(model, opt, 4, seed=1)
    train_steps(model2, opt2, 4, seed=1)
    for k in model.params:
        np.testing.assert_array_equal(bits(model2.params[k]), bits(model.params[k]))


def test_the_learning_rate_in_force_is_kept():
    opt = optim.RMSProp(0.01)
    opt.lr = 0.002  # a schedule changed it
    assert pg.load(opt.save("o.npz")).lr == 0.002


def test_a_state_dict_is_a_copy():
    model, opt = layers.Model(3, 4, 2, seed=0), optim.Adam()
    train_steps(model, opt, 1, seed=0)
    state = opt.state_dict()
    state["state"]["readout.b"]["m"][...] = 7
    assert not np.any(opt.state["readout.b"]["m"] == 7)


@pytest.mark.parametrize("change,match", [
    (lambda s: s.update(optimizer="Lion"), "optimizer must be one of"),
    (lambda s: s.update(t=-1), r"t must be an int >= 0"),
    (lambda s: s.update(t=2.5), r"t must be an int >= 0"),
    (lambda s: s["settings"].update(lr=-1), "lr must be a finite number > 0"),
    (lambda s: s["settings"].update(rocket=True), "settings of a Adam"),
    (lambda s: s["settings"].pop("eps"), "settings of a Adam must have the keys"),
    (lambda s: s["state"]["readout.b"].pop("m"), r"must have the buffers \['m', 'v'\]"),
    (lambda s: s["state"]["readout.b"].update(m=None), "buffer 'm' must be an array"),
    (lambda s: s["state"]["readout.b"].update(m=np.zeros(2, dtype=int)), "must hold float32 or float64"),
    (lambda s: s.update(extra=1), r"unexpected \['extra'\]"),
])
def test_a_bad_optimizer_state_is_refused(change, match):
    model, opt = layers.Model(3, 4, 2, seed=0), optim.Adam()
    train_steps(model, opt, 1, seed=0)
    state = opt.state_dict()
    change(state)
    with pytest.raises(ValueError, match=match):
        optim.Optimizer.from_state_dict(state)
    with pytest.raises(ValueError, match=match):
        optim.Adam().load_state_dict(state)


def test_a_state_of_another_class_or_shape_is_refused():
    model, opt = layers.Model(3, 4, 2, seed=0), optim.Adam()
    train_steps(model, opt, 1, seed=0)
    with pytest.raises(ValueError, match="a Adam state cannot be loaded into a SGD"):
        optim.SGD().load_state_dict(opt.state_dict())
    other = layers.Model(3, 5, 2, seed=0)
    with pytest.raises(ValueError, match=r"the state of 'layer0.W' .* does not fit the parameter"):
        train_steps(other, opt, 1, seed=0)


def test_an_optimizer_file_that_lies_is_refused(tmp_path):
    model, opt = layers.Model(3, 4, 2, seed=0), optim.Adam()
    train_steps(model, opt, 1, seed=0)
    opt.save("o.npz")
    with np.load("o.npz") as z:
        arrays = {k: z[k] for k in z.files if k != "metadata"}
        meta = json.loads(str(z["metadata"]))
    cases = {
        "missing": ({k: v for k, v in arrays.items() if k != "state/readout.b/m"}, meta,
                    "lists 'state/readout.b/m', which is missing"),
        "extra": ({**arrays, "state/x/m": np.zeros(2)}, meta, r"unexpected \['state/x/m'\]"),
        "object": ({**arrays, "state/readout.b/m": np.array([Payload(tmp_path / "PWNED")])}, meta,
                   "holds Python objects"),
        "newer": (arrays, {**meta, "format_version": 3}, "from a newer pyx_gru"),
        "class": (arrays, {**meta, "spec": {**meta["spec"], "optimizer": "os.system"}},
                  "optimizer must be one of"),
    }
    for name, (a, m, match) in cases.items():
        write_npz(f"{name}.npz", a, m)
        with pytest.raises(ValueError, match=match):
            pg.load(f"{name}.npz")
    assert not (tmp_path / "PWNED").exists()
