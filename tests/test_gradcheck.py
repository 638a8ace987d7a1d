"""Gradients against centered finite differences in float64."""
import numpy as np
import pytest

import pyx_gru as pg
from pyx_gru import reference
from helpers import CONFIGS, make_cell, skip_scan


@pytest.mark.parametrize("backend", ["compiled", "reference"])
@pytest.mark.parametrize("lengths", [None, [5, 0, 2]], ids=["full", "lengths"])
def test_gradcheck_all_configurations(config, backend, lengths):
    """Every parameter, x and the initial state: relative error < 1e-6."""
    cell = make_cell(config, 3, 4)
    if backend == "reference":
        cell = reference.from_cell(cell)
    errors = pg.gradcheck(cell, T=5, B=3, lengths=lengths)
    assert set(errors) == set(cell.params) | {"x", "h0"} | ({"c0"} if cell._lstm else set())
    assert max(errors.values()) < 1e-6, errors


def test_gradcheck_of_a_float32_cell_leaves_it_unchanged():
    cell = make_cell("lstm_peephole", dtype=np.float32)
    before = {k: v.copy() for k, v in cell.params.items()}
    errors = pg.gradcheck(cell)
    assert max(errors.values()) < 1e-6
    assert cell.dtype == np.float32
    for k in before:
        np.testing.assert_array_equal(cell.params[k], before[k])


def test_gradcheck_max_entries_samples():
    cell = make_cell("gru_after", 6, 7)
    errors = pg.gradcheck(cell, max_entries=5)
    assert max(errors.values()) < 1e-6


class _WrongRecurrentGradient(pg.GRU):
    """A GRU whose dU is off by a little: gradcheck must notice."""

    def backward(self, cache, dy=None, dstate=None):
        dx, dh0, dparams = super().backward(cache, dy, dstate)
        dparams["U"] = dparams["U"] * 1.001
        return dx, dh0, dparams


def test_gradcheck_detects_a_wrong_gradient():
    cell = _WrongRecurrentGradient(3, 4, seed=0)
    errors = pg.gradcheck(cell)
    assert errors["U"] > 1e-4
    assert errors["W"] < 1e-6


def test_gradcheck_across_backward_chunks(config):
    """T = 70 at B = 1 makes the backward pass run three chunks (32, 32, 6
    steps): finite differences still agree, lengths ending inside a chunk."""
    cell = make_cell(config, 2, 2)
    errors = pg.gradcheck(cell, T=70, B=2, lengths=[70, 40], max_entries=40)
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("backend", ["compiled", "reference"])
@pytest.mark.parametrize("training", [True, False], ids=["training", "evaluation"])
@pytest.mark.parametrize("lengths", [None, [5, 0, 2]], ids=["full", "lengths"])
@pytest.mark.parametrize("rates", [(0.3, 0.0), (0.0, 0.4), (0.3, 0.4)],
                         ids=["dropout", "zoneout", "both"])
def test_gradcheck_with_dropout_and_zoneout(config, rates, lengths, training, backend):
    """With the masks fixed (the same seed in every pass of the check), the
    backward pass is the exact gradient of the training pass, and of the
    evaluation pass (zoneout's expectation)."""
    skip_scan(config, "no recurrent product: minGRU and minLSTM refuse the rates")
    cls, form = CONFIGS[config]
    cell = cls(3, 4, seed=0, recurrent_dropout=rates[0], zoneout=rates[1], **form)
    cell.params = make_cell(config, 3, 4).params
    if backend == "reference":
        cell = reference.from_cell(cell)
    errors = pg.gradcheck(cell, T=5, B=3, lengths=lengths, training=training)
    assert max(errors.values()) < 1e-6, errors


def test_gradcheck_lstm_zoneout_c_across_chunks():
    cell = pg.LSTM(2, 3, peephole=True, zoneout=0.2, zoneout_c=0.6, recurrent_dropout=0.3,
                   seed=0)
    cell.params = make_cell("lstm_peephole", 2, 3).params
    errors = pg.gradcheck(cell, T=70, B=2, lengths=[70, 40], max_entries=40, training=True)
    assert max(errors.values()) < 1e-6, errors
