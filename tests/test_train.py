"""fit, evaluate, predict and History: learning a tiny problem, reproducibility,
early stopping, weight noise and clipping inside fit, progress output, Tasks."""
import io
import json
from dataclasses import dataclass

import numpy as np
import pytest

import pyx_gru as pg
from pyx_gru import losses
from pyx_gru.layers import Model
from pyx_gru.train import History, evaluate, fit, predict


def sum_problem(N=160, T=6, seed=0):
    """y = (sum of the first lengths[b] inputs) / 3: variance about 0.1."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (T, N, 1))
    lengths = rng.integers(1, T + 1, N)
    y = np.array([x[:n, b].sum(0) / 3 for b, n in enumerate(lengths)])
    return x, y, lengths


@dataclass(frozen=True)
class FakeTask:
    """The fields of pyx_gru.tasks.Task that fit reads (data_interface.md)."""
    name: str
    x: np.ndarray
    y: np.ndarray
    lengths: np.ndarray
    mask: np.ndarray
    readout: str
    loss: str


def drop_time(h):
    d = h.to_dict()
    d.pop("time")
    return d


def test_a_tiny_gru_learns_a_running_sum():
    x, y, lengths = sum_problem()
    model = Model(1, 8, 1, cell="gru", seed=0)
    valid = (x[:, 120:], y[120:], lengths[120:])
    h = fit(model, x[:, :120], y[:120], lengths=lengths[:120], valid=valid, epochs=25, lr=0.02,
            batch_size=16, verbose=0)
    assert len(h.epoch) == 25 and h.best_epoch is not None
    baseline = np.mean((y[120:] - y[:120].mean()) ** 2)  # predicting the mean
    result = evaluate(model, *valid[:2], lengths=valid[2])
    assert result["loss"] == h.best_valid_loss  # best parameters restored
    assert result["loss"] < 0.05 * baseline, (result, baseline)
    assert h.train_loss[-1] < h.train_loss[0] / 10


def test_per_step_classification_with_a_mask_beats_chance():
    """readout "every", softmax: the label at step t is the sign of x_t (only
    the odd steps count); bidirectional LSTM, bucketing, float32."""
    rng = np.random.default_rng(1)
    T, N = 7, 96
    x = rng.standard_normal((T, N, 1))
    labels = (x[..., 0] > 0).astype(int)
    lengths = rng.integers(2, T + 1, N)
    mask = np.zeros((T, N), bool)
    mask[1::2] = True
    model = Model(1, 4, 2, cell="lstm", bidirectional=True, readout="every", dtype=np.float32, seed=0)
    h = fit(model, x, labels, lengths=lengths, mask=mask, loss="softmax", epochs=15, lr=0.03,
            batch_size=16, bucket=True, verbose=0)
    result = evaluate(model, x, labels, lengths=lengths, mask=mask)
    counted = mask & (np.arange(T)[:, None] < lengths)
    assert result["count"] == counted.sum()
    assert result["loss"] < 0.3 < np.log(2) and result["accuracy"] > 0.9
    assert h.settings["loss"] == "softmax" and h.settings["dtype"] == "float32"


def test_the_same_seed_gives_bitwise_the_same_history():
    x, y, lengths = sum_problem(N=64)
    runs = []
    for seed in (3, 3, 4):
        model = Model(1, 5, 1, cell="sgru", seed=0)
        h = fit(model, x[:, :48], y[:48], lengths=lengths[:48], valid=(x[:, 48:], y[48:], lengths[48:]),
                epochs=4, batch_size=8, weight_noise=0.05, clip=1.0, bucket=True, seed=seed, verbose=0)
        runs.append((drop_time(h), model.get_params()))
    assert runs[0][0] == runs[1][0]
    for k in runs[0][1]:
        np.testing.assert_array_equal(runs[0][1][k], runs[1][1][k])
    assert runs[0][0]["train_loss"] != runs[2][0]["train_loss"]


def test_early_stopping_restores_the_best_parameters():
    """The validation targets are the negated training targets, so validation
    gets worse as training succeeds: training stops after `patience` epochs
    without improvement and ends with the best epoch's parameters."""
    x, y, lengths = sum_problem(N=64)
    model = Model(1, 4, 1, cell="rnn", seed=0)
    snapshots = {}

    def record(epoch, m, history):
        snapshots[epoch] = m.get_params()

    valid = (x[:, 48:], -y[48:] + 0.5, lengths[48:])
    h = fit(model, x[:, :48], y[:48], lengths=lengths[:48], valid=valid, epochs=40, patience=3,
            lr=0.05, batch_size=8, verbose=0, callback=record)
    assert h.stopped_early and len(h.epoch) == h.best_epoch + 3 < 40
    assert h.best_valid_loss == min(h.valid_loss)
    for k, v in model.params.items():
        np.testing.assert_array_equal(v, snapshots[h.best_epoch][k])
    assert evaluate(model, *valid[:2], lengths=valid[2])["loss"] == h.best_valid_loss
    # restore_best=False keeps the last epoch's parameters
    model2 = Model(1, 4, 1, cell="rnn", seed=0)
    h2 = fit(model2, x[:, :48], y[:48], lengths=lengths[:48], valid=valid, epochs=40, patience=3,
             lr=0.05, batch_size=8, verbose=0, restore_best=False)
    assert drop_time(h2)["valid_loss"] == drop_time(h)["valid_loss"]
    assert evaluate(model2, *valid[:2], lengths=valid[2])["loss"] == h2.valid_loss[-1]


def test_weight_noise_in_fit_updates_the_clean_weights():
    """With a tiny step, the weights after an epoch are within lr of where
    they started although the noise was large; the noise did reach the
    forward pass (the losses differ from a run without it)."""
    x, y, lengths = sum_problem(N=16)
    before = Model(1, 4, 1, seed=0).get_params()
    losses_ = []
    for std in (0.0, 1.0):
        model = Model(1, 4, 1, seed=0)
        h = fit(model, x, y, lengths=lengths, optimizer=pg.optim.SGD(1e-9), epochs=1,
                batch_size=16, weight_noise=std, verbose=0)
        losses_.append(h.train_loss[0])
        for k, v in model.params.items():
            assert np.max(np.abs(v - before[k])) < 1e-6, k
    assert losses_[0] != losses_[1]


def test_clipping_in_fit_bounds_each_step():
    x, y, lengths = sum_problem(N=16)
    model = Model(1, 4, 1, seed=0)
    before = model.get_params()
    h = fit(model, x, y * 100, lengths=lengths, optimizer="sgd", lr=1.0, clip=1e-3, epochs=1,
            batch_size=16, verbose=0)
    step = np.sqrt(sum(np.sum((model.params[k] - before[k]) ** 2) for k in before))
    assert h.grad_norm[0] > 1.0  # the gradient was large
    assert step == pytest.approx(1e-3, rel=1e-9)  # one step of lr * theta


def test_divergence_stops_the_run():
    x, y, lengths = sum_problem(N=32)
    model = Model(1, 4, 1, cell="rnn", seed=0)
    with pytest.warns(RuntimeWarning, match="not finite at epoch"):
        h = fit(model, x, y * 1e3, lengths=lengths, optimizer="sgd", lr=1e12, epochs=5,
                batch_size=4, verbose=0)
    assert h.diverged and len(h.epoch) < 5
    assert all(np.all(np.isfinite(v)) for v in model.params.values())


def test_fit_on_a_task_equals_fit_on_its_arrays():
    x, y, lengths = sum_problem(N=40)
    T = x.shape[0]
    labels = (np.cumsum(x[..., 0], axis=0) > 0).astype(np.int64)  # (T, N)
    mask = np.random.default_rng(0).uniform(size=(T, 40)) < 0.8
    task = FakeTask("toy", x, labels, lengths, mask, "every", "softmax")
    valid = FakeTask("toy-valid", x[:, :10], labels[:, :10], lengths[:10], mask[:, :10], "every", "softmax")
    m1, m2 = (Model(1, 3, 2, readout="every", seed=0) for _ in range(2))
    h1 = fit(m1, task, valid=valid, epochs=2, batch_size=8, verbose=0)
    h2 = fit(m2, x, labels, lengths=lengths, mask=mask, valid=(x[:, :10], labels[:, :10], lengths[:10], mask[:, :10]),
             epochs=2, batch_size=8, verbose=0)
    assert drop_time(h1) == drop_time(h2)
    assert evaluate(m1, task) == evaluate(m1, x, labels, lengths=lengths, mask=mask, loss="softmax")
    p = predict(m1, task)
    assert p.shape == (T, 40, 2)
    np.testing.assert_allclose(p.sum(-1)[np.arange(T)[:, None] < lengths], 1.0, rtol=1e-12)
    with pytest.raises(ValueError, match="uses 'softmax'"):
        fit(m1, task, loss="mse")
    with pytest.raises(ValueError, match="reads out 'every', the model 'last'"):
        fit(Model(1, 3, 2, seed=0), task)
    with pytest.raises(TypeError, match="either a Task or arrays"):
        fit(m1, task, labels)


def test_evaluate_and_predict_agree_with_the_model():
    x, y, lengths = sum_problem(N=30)
    model = Model(1, 4, 1, cell="gru_before", seed=2)
    out, _ = model.forward(x, lengths)
    np.testing.assert_allclose(predict(model, x, lengths=lengths, batch_size=7), out, rtol=1e-13)
    value, _ = losses.mse(out, y)
    r = evaluate(model, x, y, lengths=lengths, batch_size=7)
    assert r["loss"] == pytest.approx(value, rel=1e-13) and r["count"] == 30 and "accuracy" not in r
    # every-step readout, sigmoid: probabilities, zero past the lengths
    m = Model(1, 4, 3, readout="every", seed=0)
    p = predict(m, x, lengths=lengths, loss="sigmoid", batch_size=4)
    out, _ = m.forward(x, lengths)
    within = (np.arange(x.shape[0])[:, None] < lengths)[..., None]
    np.testing.assert_allclose(p, losses.sigmoid(out) * within, rtol=1e-13)
    assert predict(m, x[:, :0]).shape == (x.shape[0], 0, 3)


@pytest.mark.parametrize("loss", ["sigmoid", "softmax", "mse"])
@pytest.mark.parametrize("batch_size", [1, 3, 256])
def test_evaluate_every_step_is_the_loss_of_one_whole_pass(loss, batch_size):
    """evaluate batches sequences of similar lengths and scores only their
    counted steps; the value is the loss of one pass over all of them."""
    rng = np.random.default_rng(5)
    T, N, K = 40, 23, 3
    x = rng.normal(size=(T, N, 2))
    lengths = rng.integers(0, T + 1, N)
    lengths[3] = T
    mask = rng.random((T, N)) < 0.8
    y = (rng.integers(0, K, (T, N)) if loss == "softmax"
         else (rng.random((T, N, K)) < 0.3).astype(float))
    model = Model(2, 5, K, readout="every", cell="lstm", seed=1, dtype=np.float64)
    out, _ = model.forward(x, lengths)
    counted = losses.step_mask((T, N), lengths, mask)
    value, _ = losses.LOSSES[loss](out, y, counted)
    r = evaluate(model, x, y, lengths=lengths, mask=mask, loss=loss, batch_size=batch_size)
    assert r["loss"] == pytest.approx(value, rel=1e-12)
    assert r["count"] == counted.sum() * (K if loss == "mse" else 1)
    if loss == "softmax":
        hits = (np.argmax(out, axis=-1) == y) & counted
        assert r["accuracy"] == hits.sum() / counted.sum()


@pytest.mark.parametrize("batch_size", [1, 4, 10, 1000])
def test_evaluation_batches_group_similar_lengths(batch_size):
    from pyx_gru.train import _evaluation_batches

    rng = np.random.default_rng(0)
    lengths = rng.integers(0, 500, 97)
    batches = _evaluation_batches(97, lengths, batch_size)
    assert sorted(np.concatenate(batches).tolist()) == list(range(97))
    for b in batches:
        assert 1 <= len(b) <= batch_size
        assert lengths[b].max() <= 1.5 * max(lengths[b].min(), 1)
    padded = sum(lengths[b].max() * len(b) for b in batches)
    assert padded <= 1.5 * lengths.sum() + 2 * len(batches)
    without = _evaluation_batches(10, None, 4)
    assert [b.tolist() for b in without] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_history_json(tmp_path):
    x, y, lengths = sum_problem(N=24)
    h = fit(Model(1, 3, 1, seed=0), x, y, lengths=lengths, valid=(x, y, lengths), epochs=2, verbose=0)
    text = h.to_json(tmp_path / "h.json")
    assert json.loads(text)["train_loss"] == h.train_loss
    again = History.from_json(tmp_path / "h.json")
    assert again == h and History.from_json(text) == h
    assert set(h.to_dict()) >= {"epoch", "train_loss", "valid_loss", "time", "best_epoch"}
    assert h.time == sorted(h.time) and h.steps == [1, 2]
    with pytest.raises(TypeError, match="a History is read from a dict"):
        History.from_json("[1, 2]")  # JSON text, not a file name
    with pytest.raises(TypeError, match=r"unknown keys \['nope'\]"):
        History.from_json('{"nope": 1}')


def test_history_plot():
    matplotlib = pytest.importorskip("matplotlib", reason="matplotlib (an optional extra) is not installed")
    x, y, lengths = sum_problem(N=24)
    h = fit(Model(1, 3, 1, seed=0), x, y, lengths=lengths, valid=(x, y, lengths), epochs=2, verbose=0)
    matplotlib.use("Agg")
    ax = h.plot(baseline=0.1)
    assert len(ax.lines) == 4  # train, valid, best epoch, baseline
    import matplotlib.pyplot as plt
    plt.close("all")


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_progress_output(monkeypatch, capsys):
    x, y, lengths = sum_problem(N=16)

    def run(verbose):
        fit(Model(1, 3, 1, seed=0), x, y, lengths=lengths, epochs=2, batch_size=4, verbose=verbose)

    run(1)  # stderr is not a terminal under pytest: silent
    run(0)
    assert capsys.readouterr().err == ""
    run(2)  # one line per epoch, whatever the stream
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "epoch 2/2 train" in err and "\r" not in err
    tty = FakeTTY()
    monkeypatch.setattr("sys.stderr", tty)
    run(1)
    out = tty.getvalue()
    assert "\repoch 1/2 [" in out and "4/4 loss" in out and out.count("\n") == 2
    tty2 = FakeTTY()
    monkeypatch.setattr("sys.stderr", tty2)
    run(0)
    assert tty2.getvalue() == ""


def test_errors_name_the_argument():
    x, y, lengths = sum_problem(N=8)
    model = Model(1, 3, 1, seed=0)
    with pytest.raises(ValueError, match=r"train y must be a float array of shape \(8, 'K'\)"):
        fit(model, x, y[:, 0], verbose=0)
    with pytest.raises(ValueError, match=r"train y has 1 outputs, the model gives 2"):
        fit(Model(1, 3, 2, seed=0), x, y, verbose=0)
    with pytest.raises(ValueError, match=r"train x has 1 features, the model takes 2"):
        fit(Model(2, 3, 1, seed=0), x, y, verbose=0)
    with pytest.raises(ValueError, match=r"train lengths must have shape \(8,\)"):
        fit(model, x, y, lengths=lengths[:4], verbose=0)
    with pytest.raises(ValueError, match=r"valid x must be a real array of shape \(T, N, D\)"):
        fit(model, x, y, valid=(x[0], y), verbose=0)
    with pytest.raises(TypeError, match="valid must be a Task or a tuple"):
        fit(model, x, y, valid=x, verbose=0)
    with pytest.raises(ValueError, match="patience .* needs valid data"):
        fit(model, x, y, patience=2, verbose=0)
    with pytest.raises(ValueError, match="readout='every' but the model reads out 'last'"):
        fit(model, x, y, readout="every", verbose=0)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        fit(model, x, y, batch_size=0, verbose=0)
    with pytest.raises(ValueError, match="clip must be > 0"):
        fit(model, x, y, clip=0, verbose=0)
    with pytest.raises(ValueError, match=r"mask must be a bool array of shape \(8,\)"):
        fit(model, x, y, mask=np.ones((6, 8), bool), verbose=0)
    with pytest.raises(ValueError, match=r"integer class labels of shape \(8,\)"):
        fit(model, x, y, loss="softmax", verbose=0)
    with pytest.raises(TypeError, match="model must be a pyx_gru.layers.Model"):
        fit(pg.GRU(1, 3), x, y)


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"epochs": 1.5}, TypeError, "epochs must be an int"),
    ({"epochs": True}, TypeError, "epochs must be an int"),
    ({"epochs": -1}, ValueError, "epochs must be >= 0"),
    ({"patience": 1.5, "valid": "v"}, TypeError, "patience must be an int"),
    ({"patience": 0, "valid": "v"}, ValueError, "patience must be >= 1"),
    ({"patience": -1, "valid": "v"}, ValueError, "patience must be >= 1"),
    ({"restore_best": "no"}, TypeError, "restore_best must be True or False"),
    ({"bucket": "yes"}, TypeError, "bucket must be True or False"),
    ({"lr": "a"}, TypeError, "lr must be a real number"),
    ({"clip": "1"}, TypeError, "clip must be a real number"),
    ({"weight_noise": -1.0}, ValueError, "weight_noise must be a finite number >= 0"),
    ({"weight_noise": float("nan")}, ValueError, "weight_noise must be a finite number >= 0"),
    ({"weight_noise": float("inf")}, ValueError, "weight_noise must be a finite number >= 0"),
    ({"weight_noise": "0.1"}, TypeError, "weight_noise must be a real number"),
    ({"seed": -1}, ValueError, "seed must be None, an int >= 0"),
    ({"seed": "a"}, TypeError, "seed must be None, an int >= 0"),
    ({"verbose": 3}, ValueError, "verbose must be 0, 1 or 2"),
    ({"verbose": 1.0}, ValueError, "verbose must be 0, 1 or 2"),
    ({"callback": 3}, TypeError, "callback must be callable"),
])
def test_bad_training_arguments_are_refused_by_name(kwargs, exc, match):
    x, y, _ = sum_problem(N=8)
    model = Model(1, 3, 1, seed=0)
    before = model.params
    if kwargs.get("valid") == "v":
        kwargs = {**kwargs, "valid": (x, y)}
    with pytest.raises(exc, match=match):
        fit(model, x, y, **{"verbose": 0, **kwargs})
    for k, v in model.params.items():  # refused before any training
        np.testing.assert_array_equal(v, before[k])


def test_verbose_takes_a_bool_as_0_or_1():
    x, y, _ = sum_problem(N=8)
    h0 = fit(Model(1, 3, 1, seed=0), x, y, epochs=1, verbose=False)
    h1 = fit(Model(1, 3, 1, seed=0), x, y, epochs=1, verbose=0)
    assert h0.train_loss == h1.train_loss



def test_predict_checks_its_lengths_and_model():
    x, y, _ = sum_problem(N=8)
    model = Model(1, 3, 1, seed=0)
    with pytest.raises(ValueError, match=r"lengths must have shape \(8,\)"):
        predict(model, x, lengths=np.full(9, 2), batch_size=2)
    with pytest.raises(ValueError, match=r"lengths must have shape \(8,\)"):
        predict(model, x, lengths=np.full(4, 2), batch_size=2)
    with pytest.raises((TypeError, ValueError), match="lengths"):
        predict(model, x, lengths="abcdefgh")
    with pytest.raises(TypeError, match="model must be a pyx_gru.layers.Model"):
        predict(pg.GRU(1, 3), x)


def test_fit_refuses_data_with_nothing_to_fit():
    x, y, _ = sum_problem(N=8)
    with pytest.raises(ValueError, match="train has no target to fit"):
        fit(Model(1, 3, 1, seed=0), x[:, :0], y[:0], verbose=0)
    with pytest.raises(ValueError, match="train has no target to fit"):
        fit(Model(1, 3, 1, seed=0), x, y, mask=np.zeros(8, bool), verbose=0)
    ye = np.zeros(x.shape[:2] + (1,))
    with pytest.raises(ValueError, match="train has no target to fit"):
        fit(Model(1, 3, 1, readout="every", seed=0), x, ye, lengths=np.zeros(8, int), verbose=0)


def test_a_step_that_leaves_a_parameter_non_finite_stops_the_run():
    class Overflowing(pg.optim.SGD):
        def _update(self, p, g, state):
            p[...] = np.inf  # as a finite but huge step can do

    x, y, _ = sum_problem(N=8)
    with pytest.warns(RuntimeWarning, match="a parameter is not finite after epoch 1"):
        h = fit(Model(1, 3, 1, seed=0), x, y, optimizer=Overflowing(0.1), epochs=3,
                batch_size=8, valid=(x, y), verbose=0)
    assert h.diverged and h.epoch == [] and h.best_epoch is None


def test_a_sequence_of_length_0_has_no_last_target():
    """As Task.counted says: evaluate does not count it and fit does not train on it."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 1))
    y = rng.standard_normal((3, 1))
    from pyx_gru.tasks import Task
    task = Task("t", x, y, np.array([4, 0, 2]), None, "last", "mse", 1, 0.0)
    assert task.counted()[:, 1].sum() == 0
    model = Model(1, 3, 1, seed=0)
    assert evaluate(model, task)["count"] == 2
    y_other = y.copy()
    y_other[1] = 1e6  # its target changes nothing
    h1 = fit(Model(1, 3, 1, seed=0), x, y, lengths=[4, 0, 2], epochs=2, verbose=0)
    h2 = fit(Model(1, 3, 1, seed=0), x, y_other, lengths=[4, 0, 2], epochs=2, verbose=0)
    assert h1.train_loss == h2.train_loss
