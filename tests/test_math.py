"""The kernels' own sigmoid and tanh: accuracy in ulp against extended
precision, and the special values."""
import numpy as np
import pytest

from pyx_gru import _recurrent

RNG = np.random.default_rng(0)
POINTS = np.concatenate([
    RNG.uniform(-1, 1, 100_000), RNG.uniform(-20, 20, 100_000), RNG.uniform(-800, 800, 10_000),
    np.logspace(-30, 4, 5_000), -np.logspace(-30, 4, 5_000),
    [0.0, -0.0, 0.625, -0.625, 0.6249999, 87.0, -87.0, -88.0, -100.0, 1e4, -1e4],
])
EXACT = {"sigmoid": lambda v: 1 / (1 + np.exp(-v)), "tanh": np.tanh}


@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_activation_within_3_ulp(name, dtype):
    """Within 3 ulp of the exact value everywhere the result is a normal
    number (the sigmoid of a pre-activation below -87 in float32, or -708 in
    float64, is the smallest normal number or so instead of a denormal)."""
    x = POINTS.astype(dtype)
    got = x.copy()
    _recurrent._activation(name, got)
    with np.errstate(over="ignore"):
        exact = EXACT[name](x.astype(np.longdouble))
    normal = np.abs(exact) >= 2 * np.finfo(dtype).tiny
    ulp = np.spacing(np.abs(exact).astype(dtype)).astype(np.longdouble)
    err = np.abs(got.astype(np.longdouble) - exact) / ulp
    assert err[normal].max() <= 3, (x[normal][np.argmax(err[normal])], err[normal].max())
    assert np.all(np.abs(got - exact.astype(dtype))[~normal] <= 2 * np.finfo(dtype).tiny)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_activation_special_values(dtype):
    v = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0], dtype=dtype)
    s, t = v.copy(), v.copy()
    _recurrent._activation("sigmoid", s)
    _recurrent._activation("tanh", t)
    assert np.isnan(s[0]) and np.isnan(t[0])
    assert s[1] == 1 and 0 <= s[2] < 1e-37 and s[3] == s[4] == 0.5
    assert t[1] == 1 and t[2] == -1 and t[3] == 0 and t[4] == 0
    assert not np.signbit(t[3]) and np.signbit(t[4])
