"""Recurrent dropout and zoneout (docs/theory/regularisation.rst): the compiled
cells against the NumPy reference on every vector path, seeded masks, the
properties that define the two options, the option's API (validation,
config, saving) and fit's training passes. The gradient check with the masks
fixed is in test_gradcheck.py, the team of threads in test_team.py."""
import numpy as np
import pytest

import pyx_gru as pg
from pyx_gru import _cells, reference
from pyx_gru._gradcheck import gradcheck_layer

from helpers import CONFIGS, DTYPES, SCAN_CONFIGS, assert_close, make_cell, parts, random_problem, skip_scan

# (recurrent_dropout, zoneout): each alone and both
OPTIONS = {"dropout": (0.3, 0.0), "zoneout": (0.0, 0.4), "both": (0.3, 0.25)}


def regularised(name, rd, zo, D=3, H=7, dtype=np.float64, **kw):
    """make_cell's cell (every parameter non-zero) with the options."""
    skip_scan(name, "no recurrent product: minGRU and minLSTM refuse the rates "
                    "(test_the_scan_cells_refuse_the_rates)")
    cell = make_cell(name, D, H, dtype=dtype)
    cls, form = CONFIGS[name]
    out = cls(D, H, dtype=dtype, seed=0, recurrent_dropout=rd, zoneout=zo, **form, **kw)
    out.params = cell.params
    return out


def run(cell, x, state0, dy, dstate, lengths=None, **kw):
    y, state, cache = cell.forward(x, state0, lengths, **kw)
    dx, dstate0, grads = cell.backward(cache, dy, dstate)
    return [y, *parts(state), dx, *parts(dstate0), *grads.values()]


@pytest.mark.parametrize("training", [True, False], ids=["training", "evaluation"])
@pytest.mark.parametrize("lengths", [None, [6, 2, 0, 5]], ids=["full", "lengths"])
@pytest.mark.parametrize("option", list(OPTIONS))
def test_compiled_matches_reference(simd_path, config, dtype, option, lengths, training):
    """Forward and backward, float32 and float64, every vector path: the
    compiled cells draw the reference's masks (a different mask would be
    an error of order 1, not of rounding)."""
    cell = regularised(config, *OPTIONS[option], dtype=dtype)
    ref = reference.from_cell(cell)
    assert ref.config == cell.config
    x, state0, dy, dstate = random_problem(cell, 6, 4, seed=3)
    got = run(cell, x, state0, dy, dstate, lengths, training=training, seed=11)
    want = run(ref, x, state0, dy, dstate, lengths, training=training, seed=11)
    for a, b in zip(got, want, strict=True):
        assert_close(a, b, dtype)


def test_lstm_zoneout_c_matches_reference(dtype):
    cell = regularised("lstm_peephole", 0.2, 0.1, dtype=dtype, zoneout_c=0.6)
    x, state0, dy, dstate = random_problem(cell, 6, 4, seed=5)
    for training in (True, False):
        got = run(cell, x, state0, dy, dstate, [6, 1, 4, 6], training=training, seed=2)
        want = run(reference.from_cell(cell), x, state0, dy, dstate, [6, 1, 4, 6],
                   training=training, seed=2)
        for a, b in zip(got, want, strict=True):
            assert_close(a, b, dtype)


@pytest.mark.parametrize("option", list(OPTIONS))
def test_seeded_and_repeatable(config, option):
    cell = regularised(config, *OPTIONS[option])
    x, state0, dy, dstate = random_problem(cell, 5, 3)
    a = run(cell, x, state0, dy, dstate, training=True, seed=7)
    b = run(cell, x, state0, dy, dstate, training=True, seed=7)
    c = run(cell, x, state0, dy, dstate, training=True, seed=8)
    d = run(cell, x, state0, dy, dstate, training=True, seed=np.random.default_rng(7))
    e = run(cell, x, state0, dy, dstate, training=True, seed=np.random.SeedSequence(7))
    for u, v in zip(a + d, b + e, strict=True):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[0], c[0])  # another seed, other masks
    assert not np.array_equal(a[0], d[0])  # an int is not its Generator


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_dropout_mask_is_the_references_and_has_rate_p(dtype):
    """The compiled cells' dropout mask is reference.dropout_mask of the
    pass's key, bit for bit; an int seed's key is reference.pass_key; the
    zoneout masks of a seed are the same with dropout on or off."""
    for seed, B, H, p in ((0, 3, 5, 0.25), (2**64 - 1, 40, 50, 0.5), (12345, 1, 1, 0.9)):
        cell = pg.GRU(2, H, dtype=dtype, seed=0, recurrent_dropout=p, zoneout=0.2)
        _, _, cache = cell.forward(np.zeros((2, B, 2)), training=True, seed=seed)
        reg = cache.regularisation
        assert reg.key == reference.pass_key(seed)
        want = reference.dropout_mask(reg.key, B, H, p, dtype)
        assert reg.drop.dtype == want.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(reg.drop, want)
        zoned = pg.GRU(2, H, dtype=dtype, seed=0, zoneout=0.2)
        assert zoned.forward(np.zeros((2, B, 2)), training=True, seed=seed)[2].regularisation.key == reg.key
    m = reference.dropout_mask(99, 200, 300, 0.3)
    assert set(np.unique(m)) == {0.0, 1 / 0.7}
    assert abs((m == 0).mean() - 0.3) < 4 * np.sqrt(0.3 * 0.7 / m.size)
    assert not reference.dropout_mask(99, 200, 300, 0.0).min() == 0.0
    # the dropout stream is apart from zoneout's (another salt, other rows)
    assert not np.array_equal(reference.dropout_mask(99, 4, 64, 0.5) == 0,
                              reference.zoneout_mask(99, 0, 4, 64, 0, 0.5))


def test_rate_zero_and_evaluation_are_the_plain_cell_bitwise(config):
    """Off is free: rates of 0, or dropout alone in an evaluation pass, give
    bitwise the cell without the options (the kernels take the same path)."""
    plain = make_cell(config, 3, 7)
    x, state0, dy, dstate = random_problem(plain, 5, 3)
    want = run(plain, x, state0, dy, dstate, [5, 2, 0])
    assert regularised(config, 0.0, 0.0).config == plain.config
    for cell, kw in ((regularised(config, 0.0, 0.0), {"training": True, "seed": 1}),
                     (regularised(config, 0.5, 0.0), {}),
                     (regularised(config, 0.5, 0.0), {"training": False, "seed": 3})):
        got = run(cell, x, state0, dy, dstate, [5, 2, 0], **kw)
        for a, b in zip(got, want, strict=True):
            np.testing.assert_array_equal(a, b)


def test_the_dropout_mask_is_fixed_over_time():
    """A unit dropped for a sequence never feeds U, at any step: its rows of
    dU are exactly 0 (B = 1), and the LSTM's outputs (where h_{t-1} enters
    only through U) do not depend on its value in h0."""
    for name in (n for n in CONFIGS if n not in SCAN_CONFIGS):
        cell = regularised(name, 0.5, 0.0, H=16)
        x, state0, dy, dstate = random_problem(cell, 8, 1, seed=4)
        y, _, cache = cell.forward(x, state0, training=True, seed=5)
        m = cache.regularisation.drop[0]
        assert set(np.unique(m)) == {0.0, 2.0}, name  # 0 or 1 / (1 - p)
        _, _, grads = cell.backward(cache, dy, dstate)
        dropped = m == 0
        assert np.all(grads["U"][dropped] == 0), name
        assert np.all(np.abs(grads["U"][~dropped]).sum(axis=1) > 0), name
        if name.startswith("lstm"):
            h0, c0 = state0
            h0 = h0.copy()
            h0[0, dropped] += 1.0
            y2, _, _ = cell.forward(x, (h0, c0), training=True, seed=5)
            np.testing.assert_array_equal(y2, y)


def test_zoneout_masks_are_the_references_and_have_rate_p():
    key, B, H = 2**63 + 12345, 50, 40
    for part, p in ((0, 0.1), (1, 0.5), (0, 0.9)):
        d = np.stack([reference.zoneout_mask(key, t, B, H, part, p) for t in range(20)])
        assert abs(d.mean() - p) < 4 * np.sqrt(p * (1 - p) / d.size)
        assert not np.array_equal(d[0], d[1])  # a fresh mask every step
    assert not reference.zoneout_mask(key, 0, B, H, 0, 0.0).any()
    # the kernel's masks: with T = 1, h0 = 1 and h^_1 != 1, a unit kept its
    # value exactly where the mask is True
    cell = pg.RNN(2, H, seed=0, zoneout=0.3)
    cell.params["b"][:] = 5.0  # h^_1 = tanh(...) < 1
    y, _, cache = cell.forward(np.zeros((1, B, 2)), np.ones((B, H)), training=True, seed=9)
    d = reference.zoneout_mask(cache.regularisation.key, 0, B, H, 0, 0.3)
    np.testing.assert_array_equal(y[0] == 1.0, d)


@pytest.mark.parametrize("name", ["gru_after", "lstm"])
def test_zoneout_evaluation_is_the_expectation_of_training(name):
    """One step from the same state: over many rows (independent masks), the
    mean of the training pass's h_1 (and c_1) tends to the evaluation
    pass's, p h_0 + (1 - p) h^_1."""
    cell = regularised(name, 0.0, 0.35, D=2, H=3)
    B = 20000
    rng = np.random.default_rng(0)
    x = np.broadcast_to(rng.uniform(-1, 1, (1, 1, 2)), (1, B, 2))
    s0 = [np.broadcast_to(rng.uniform(-1, 1, (1, 3)), (B, 3)) for _ in range(2)]
    state0 = tuple(s0) if cell._lstm else s0[0]
    _, train, _ = cell.forward(x, state0, training=True, seed=1)
    _, evaluate, _ = cell.forward(x, state0)
    for a, b in zip(parts(train), parts(evaluate), strict=True):
        np.testing.assert_allclose(a.mean(axis=0), b[0], atol=0.02)
        np.testing.assert_allclose(b, b[:1].repeat(B, 0), rtol=0, atol=0)


def test_inference_forward_is_the_forward():
    """cache=False (rings of a few steps, c^_t in a ring of one) gives the
    outputs of the forward that keeps everything, in both passes."""
    for name in ("lstm", "lstm_peephole", "gru_before", "mgu_after"):
        cell = regularised(name, 0.3, 0.3, H=19)
        x, state0, _, _ = random_problem(cell, 40, 5)
        for kw in ({"training": True, "seed": 4}, {}):
            y1, s1, _ = cell.forward(x, state0, [40, 3, 0, 17, 40], **kw)
            y2, s2, c2 = cell.forward(x, state0, [40, 3, 0, 17, 40], cache=False, **kw)
            assert c2 is None
            for a, b in zip([y1, *parts(s1)], [y2, *parts(s2)], strict=True):
                np.testing.assert_array_equal(a, b)


def test_options_are_validated():
    for bad in (1.0, -0.1, 2, float("nan")):
        with pytest.raises(ValueError, match="recurrent_dropout must lie in"):
            pg.GRU(2, 3, recurrent_dropout=bad)
        with pytest.raises(ValueError, match="zoneout must lie in"):
            pg.SimpleGRU(2, 3, zoneout=bad)
        with pytest.raises(ValueError, match="zoneout_c must lie in"):
            pg.LSTM(2, 3, zoneout_c=bad)
    for bad in ("0.1", True, None, [0.1]):
        with pytest.raises(TypeError, match="zoneout must be a number"):
            pg.RNN(2, 3, zoneout=bad)
    with pytest.raises(TypeError):
        pg.GRU(2, 3, zoneout_c=0.1)  # the LSTM's only
    cell = pg.GRU(2, 3, zoneout=0.1)
    with pytest.raises(TypeError, match="training must be True or False"):
        cell.forward(np.zeros((2, 1, 2)), training=1)
    with pytest.raises(TypeError, match="seed must be"):
        cell.forward(np.zeros((2, 1, 2)), training=True, seed="x")


def test_config_repr_copies_and_saving_keep_the_options(tmp_path):
    cell = pg.LSTM(3, 4, peephole=True, recurrent_dropout=0.25, zoneout=0.1, zoneout_c=0.5,
                   seed=0, dtype=np.float32)
    assert cell.config == {"input_size": 3, "hidden_size": 4, "recurrent_dropout": 0.25,
                           "zoneout": 0.1, "zoneout_c": 0.5, "peephole": True}
    assert "zoneout_c=0.5" in repr(cell)
    assert pg.GRU(3, 4).config == {"input_size": 3, "hidden_size": 4, "reset": "after"}
    for other in (cell.copy(), cell.astype(np.float64), reference.from_cell(cell),
                  pg.load(cell.save(tmp_path / "c.npz"))):
        assert other.config == cell.config
        assert other._zone_rates == (0.1, 0.5)
    model = pg.layers.Model(3, 4, 2, cell="mgu_before", zoneout=0.2, recurrent_dropout=0.1,
                            num_layers=2, bidirectional=True)
    loaded = pg.load(model.save(tmp_path / "m.npz"))
    assert [c.config for c in loaded.cells] == [c.config for c in model.cells]
    assert all(c.zoneout == 0.2 and c.recurrent_dropout == 0.1 for c in loaded.cells)


def test_a_saved_form_with_bad_rates_is_refused(tmp_path):
    import json
    import zipfile

    path = pg.GRU(2, 3, zoneout=0.5, seed=0).save(tmp_path / "g.npz")
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    meta = np.load(path)["metadata"].item()
    for form in ({"reset": "after", "zoneout": 1.5}, {"reset": "after", "zoneout_c": 0.1},
                 {"reset": "after", "zoneout": "0.5"}):
        bad = json.loads(meta)
        bad["form"] = form
        arr = tmp_path / "meta.npy"
        np.save(arr, np.array(json.dumps(bad)))
        out = tmp_path / "bad.npz"
        with zipfile.ZipFile(out, "w") as z:
            for n, data in members.items():
                z.writestr(n, arr.read_bytes() if n == "metadata.npy" else data)
        with pytest.raises(ValueError, match="metadata form"):
            pg.load(out)


def test_layers_pass_training_and_seed_to_every_cell():
    model = pg.layers.Model(3, 5, 2, cell="gru", zoneout=0.3, recurrent_dropout=0.3,
                            num_layers=2, bidirectional=True, seed=0)
    x = np.random.default_rng(0).standard_normal((6, 4, 3))
    evaluate, _ = model.forward(x)
    np.testing.assert_array_equal(model.forward(x, cache=False)[0], evaluate)
    a, cache = model.forward(x, training=True, seed=1)
    b, _ = model.forward(x, training=True, seed=1)
    c, _ = model.forward(x, training=True, seed=2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and not np.array_equal(a, evaluate)
    # every cell drew its own masks
    keys = [cache.rnn.caches[i].f.cell_cache.regularisation.key for i in range(2)]
    keys += [cache.rnn.caches[i].b.cell_cache.regularisation.key for i in range(2)]
    assert len(set(keys)) == 4
    errors = gradcheck_layer(_Training(model, 3), x)
    assert max(errors.values()) < 1e-6, errors


class _Training:
    """A model whose forward is a training pass with fixed masks (for
    gradcheck_layer)."""

    def __init__(self, model, seed):
        self.model, self.seed = model, seed
        self.params = model.params

    def astype(self, dtype):
        return _Training(self.model.astype(dtype), self.seed)

    def forward(self, x, *args):
        return self.model.forward(x, *args, training=True, seed=self.seed)

    def backward(self, cache, dout):
        return self.model.backward(cache, dout)


def test_fit_trains_with_the_masks_and_evaluates_without(monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 40, 3))
    y = (x.sum(axis=(0, 2)) > 0).astype(int)
    calls = []
    real = pg.layers.Model.forward

    def spy(self, *args, **kw):
        calls.append(kw)
        return real(self, *args, **kw)

    monkeypatch.setattr(pg.layers.Model, "forward", spy)
    plain = pg.layers.Model(3, 8, 2, cell="lstm", seed=0)
    pg.fit(plain, x, y, loss="softmax", epochs=1, batch_size=20, verbose=0, valid=(x, y))
    assert not any("training" in kw for kw in calls)  # as before: no training passes
    calls.clear()
    runs = []
    for _ in range(2):
        model = pg.layers.Model(3, 8, 2, cell="lstm", seed=0, zoneout=0.2, recurrent_dropout=0.2)
        runs.append(pg.fit(model, x, y, loss="softmax", epochs=2, batch_size=20, verbose=0,
                           valid=(x, y), seed=4))
    train = [kw for kw in calls if kw.get("training")]
    assert len(train) == 2 * 2 * 2  # two runs of 2 epochs of 2 batches
    assert len({str(kw["seed"].spawn_key) for kw in train}) == 4  # a seed per batch
    assert all(kw.get("cache") is False for kw in calls if not kw.get("training"))
    assert runs[0].train_loss == runs[1].train_loss  # seeded: bitwise repeatable
    assert runs[0].valid_loss == runs[1].valid_loss


def test_cache_regularisation_is_checked():
    cell = pg.GRU(2, 3, recurrent_dropout=0.5, seed=0)
    _, _, cache = cell.forward(np.zeros((2, 4, 2)), training=True, seed=0)
    assert isinstance(cache.regularisation, _cells.Regularisation)
    assert cache.regularisation.drop.shape == (4, 3)
    assert not cache.regularisation.drop.flags.writeable
    bad = _cells.Cache(cell, cache.params, **{n: getattr(cache, n) for n in cache._names
                                             if n != "regularisation"},
                       regularisation=cache.regularisation._replace(drop=np.ones((3, 3))))
    with pytest.raises(ValueError, match="cache.regularisation.drop"):
        cell.backward(bad)


@pytest.mark.parametrize("cls", [pg.MinGRU, pg.MinLSTM])
def test_the_scan_cells_refuse_the_rates(cls):
    """minGRU and minLSTM have no product with U and no zoneout in their
    kernels: a non-zero rate is a ValueError naming it, not ignored."""
    for kw in ({"recurrent_dropout": 0.2}, {"zoneout": 0.1}):
        with pytest.raises(ValueError, match=next(iter(kw))):
            cls(3, 4, **kw)
    with pytest.raises(ValueError, match="zoneout"):
        cls(3, 4, zoneout=1.5)
    assert cls(3, 4, recurrent_dropout=0.0, zoneout=0).config == cls(3, 4).config
