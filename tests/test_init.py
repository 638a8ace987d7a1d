"""Initialisation, parameter bookkeeping, copies."""
import numpy as np
import pytest

import pyx_gru as pg
from helpers import CONFIGS, skip_scan


def _cell(name, D=5, H=6, **kw):
    cls, ckw = CONFIGS[name]
    return cls(D, H, **ckw, **kw)


def test_seed_makes_parameters_reproducible(config):
    a, b, c = _cell(config, seed=3), _cell(config, seed=3), _cell(config, seed=4)
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    assert not np.array_equal(a.params["W"], c.params["W"])


def test_documented_initialisation(config):
    skip_scan(config, "no U to initialise; test_mincells.py checks W and b")
    D, H = 5, 6
    cell = _cell(config, D, H, seed=0)
    G = len(cell.gates)
    limit = np.sqrt(6 / (D + H))
    assert np.all(np.abs(cell.params["W"]) <= limit)
    assert np.std(cell.params["W"]) > limit / 4  # uses the range, not zeros
    for k in range(G):  # every recurrent gate block is orthogonal
        Uk = cell.params["U"][:, k * H:(k + 1) * H]
        np.testing.assert_allclose(Uk.T @ Uk, np.eye(H), atol=1e-12)
    b = cell.params["b"].reshape(G, H)
    for k, gate in enumerate(cell.gates):
        want = 1.0 if (cell._lstm and gate == "f") else 0.0
        assert np.all(b[k] == want), gate
    for extra in ("b_hg", "P"):
        if extra in cell.params:
            assert np.all(cell.params[extra] == 0)


@pytest.mark.parametrize("name,G,extra", [
    ("rnn", 1, 0), ("simple_gru", 2, 0), ("gru_after", 3, 1), ("gru_before", 3, 0),
    ("lstm", 4, 0), ("lstm_peephole", 4, 3),
])
def test_parameter_shapes_and_count(name, G, extra):
    D, H = 5, 6
    cell = _cell(name, D, H)
    assert cell.param_shapes["W"] == (D, G * H)
    assert cell.param_shapes["U"] == (H, G * H)
    assert cell.param_shapes["b"] == (G * H,)
    assert {k: v.shape for k, v in cell.params.items()} == cell.param_shapes
    assert cell.n_params == (D + H + 1) * G * H + extra * H
    assert len(cell.gates) == G


def test_gate_orders():
    assert pg.RNN.gates == ("g",)
    assert pg.SimpleGRU.gates == ("f", "g")
    assert pg.GRU.gates == ("z", "r", "g")
    assert pg.LSTM.gates == ("i", "f", "g", "o")


def test_dtype_is_honoured(config, dtype):
    cell = _cell(config, dtype=dtype)
    assert cell.dtype == dtype
    assert all(v.dtype == dtype for v in cell.params.values())


def test_astype_and_copy_are_independent(config):
    cell = _cell(config, seed=1)
    c32 = cell.astype(np.float32)
    dup = cell.copy()
    assert c32.dtype == np.float32 and c32.config == cell.config
    for k in cell.params:
        np.testing.assert_array_equal(dup.params[k], cell.params[k])
        np.testing.assert_allclose(c32.params[k], cell.params[k], rtol=1e-7)
    dup.params["W"][:] = 0
    assert np.any(cell.params["W"] != 0)


def test_repr_and_config():
    cell = pg.GRU(3, 4, reset="before", dtype=np.float32)
    assert repr(cell) == "GRU(input_size=3, hidden_size=4, reset='before', dtype=float32)"
    assert pg.LSTM(2, 3, peephole=True).config == {"input_size": 2, "hidden_size": 3, "peephole": True}


def test_one_version_and_the_licence_file():
    """The version is written once (pyx_gru.__version__; pyproject.toml takes
    it from there), and the BSD-3-Clause licence pyproject.toml declares is
    in LICENSE."""
    import importlib.metadata
    import pathlib
    import tomllib

    import pyx_gru

    root = pathlib.Path(__file__).resolve().parent.parent
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert "version" not in project and project["dynamic"] == ["version"]
    assert importlib.metadata.version("pyx_gru") == pyx_gru.__version__
    assert project["license"] == {"text": "BSD-3-Clause"}
    text = (root / "LICENSE").read_text()
    assert text.startswith("BSD 3-Clause License") and "Neither the name of the copyright holder" in text
