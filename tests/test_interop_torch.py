"""pyx_gru against PyTorch 2.13.0's own modules: weights converted by
pyx_gru.interop, outputs, states and every gradient compared with autograd's."""
import numpy as np
import pytest

import pyx_gru as pg
from pyx_gru import interop

torch = pytest.importorskip("torch", reason="torch (an optional peer, in the 'test' extra) is not installed")

TORCH_DTYPE = {np.float32: torch.float32, np.float64: torch.float64}
# float64: about 1e-10 relative (the bar; seen ~1e-15); float32: both
# sides round differently, so a few 1e-6.
TOL = {np.float32: 2e-5, np.float64: 1e-10}
KINDS = ["RNN", "GRU", "LSTM", "RNNCell", "GRUCell", "LSTMCell"]


def close(a, b, dtype, what):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(1.0, float(np.max(np.abs(b), initial=0.0)))
    np.testing.assert_allclose(a, b, rtol=0, atol=TOL[dtype] * scale, err_msg=what)


def make_module(kind, D, H, dtype, seed, **kw):
    torch.manual_seed(seed)
    return getattr(torch.nn, kind)(D, H, **kw).to(TORCH_DTYPE[dtype])


def run_torch(module, x, state0, dy, dstate):
    """forward over (T, B, D) and autograd of L = <dy, y> + <dstate, final state>.

    The *Cell classes are stepped over time in Python. Returns y, the final
    state, dx, dstate0 and {parameter name: gradient}, all NumPy.
    """
    kind = type(module).__name__
    lstm = kind.startswith("LSTM")
    x = torch.tensor(x, requires_grad=True)
    s0 = [torch.tensor(s, requires_grad=True) for s in (state0 if lstm else (state0,))]
    if kind.endswith("Cell"):
        state = tuple(s0) if lstm else s0[0]
        ys = []
        for t in range(x.shape[0]):
            state = module(x[t], state)
            ys.append(state[0] if lstm else state)
        y = torch.stack(ys)
        final = list(state) if lstm else [state]
    else:
        init = tuple(s[None] for s in s0) if lstm else s0[0][None]
        y, state = module(x, init)
        final = [s[0] for s in state] if lstm else [state[0]]
    loss = (y * torch.tensor(dy)).sum()
    for s, d in zip(final, dstate if lstm else (dstate,), strict=True):
        loss = loss + (s * torch.tensor(d)).sum()
    loss.backward()
    grads = {n: p.grad.numpy() for n, p in module.named_parameters()}
    return (y.detach().numpy(), [s.detach().numpy() for s in final], x.grad.numpy(),
            [s.grad.numpy() for s in s0], grads)


def random_inputs(cell, T, B, dtype, seed):
    rng = np.random.default_rng(seed)
    H, D = cell.hidden_size, cell.input_size
    n = 2 if cell._lstm else 1
    x = rng.standard_normal((T, B, D)).astype(dtype)
    s0 = [rng.standard_normal((B, H)).astype(dtype) for _ in range(n)]
    dy = rng.standard_normal((T, B, H)).astype(dtype)
    ds = [rng.standard_normal((B, H)).astype(dtype) for _ in range(n)]
    return x, (tuple(s0) if cell._lstm else s0[0]), dy, (tuple(ds) if cell._lstm else ds[0])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_outputs_states_and_gradients_equal_autograd(kind, dtype, seed):
    """Every output, final state, dx, dstate0 and parameter gradient of the
    converted cell equals PyTorch's (float64 to 1e-10 relative)."""
    rng = np.random.default_rng(seed)
    T, B, D, H = (int(v) for v in rng.integers(1, 9, size=4))
    module = make_module(kind, D, H, dtype, seed)
    cell = interop.from_torch(module)
    assert cell.dtype == dtype
    x, state0, dy, dstate = random_inputs(cell, T, B, dtype, seed)
    y_t, s_t, dx_t, ds0_t, grads_t = run_torch(module, x, state0, dy, dstate)

    y, state, cache = cell.forward(x, state0)
    dx, dstate0, dparams = cell.backward(cache, dy, dstate)
    close(y, y_t, dtype, "y")
    close(dx, dx_t, dtype, "dx")
    for u, v in zip(state if cell._lstm else (state,), s_t, strict=True):
        close(u, v, dtype, "final state")
    for u, v in zip(dstate0 if cell._lstm else (dstate0,), ds0_t, strict=True):
        close(u, v, dtype, "dstate0")
    mine = interop.to_torch(cell, dparams, gradient=True, cell_names=kind.endswith("Cell"))
    assert mine.keys() == grads_t.keys()
    for name in grads_t:
        close(mine[name], grads_t[name], dtype, f"gradient of {name}")


@pytest.mark.parametrize("kind", KINDS)
def test_round_trip_into_a_fresh_module(kind):
    """to_torch(from_torch(m)) loaded into a fresh module computes what m
    computes; the weights come back exactly, the redundant biases as their sum."""
    D, H = 3, 5
    module = make_module(kind, D, H, np.float64, seed=7)
    cell = interop.from_torch(module)
    fresh = make_module(kind, D, H, np.float64, seed=8)
    state = interop.to_torch(cell, cell_names=kind.endswith("Cell"))
    fresh.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    sd, sd2 = module.state_dict(), fresh.state_dict()
    for name in sd:
        if name.startswith("weight"):
            np.testing.assert_array_equal(sd2[name].numpy(), sd[name].numpy())
    x, s0, dy, ds = random_inputs(cell, 4, 2, np.float64, 0)
    close(run_torch(fresh, x, s0, dy, ds)[0], run_torch(module, x, s0, dy, ds)[0], np.float64, "y")


def test_readme_example_a_pytorch_gru_gives_identical_outputs():
    torch.manual_seed(0)
    gru = torch.nn.GRU(input_size=8, hidden_size=16)
    cell = pg.interop.from_torch(gru)
    x = torch.randn(20, 4, 8)
    with torch.no_grad():
        y_torch, h_torch = gru(x)
    y, h, _ = cell.forward(x.numpy())
    np.testing.assert_allclose(y, y_torch.numpy(), atol=1e-6)
    np.testing.assert_allclose(h, h_torch[0].numpy(), atol=1e-6)


def test_batch_first_and_biasless_modules_convert():
    m = make_module("GRU", 3, 4, np.float64, 0, batch_first=True, bias=False)
    cell = interop.from_torch(m)
    assert np.all(cell.params["b"] == 0) and np.all(cell.params["b_hg"] == 0)
    x = np.random.default_rng(0).standard_normal((2, 5, 3))
    with torch.no_grad():
        y_t, _ = m(torch.from_numpy(x))
    y, _, _ = cell.forward(x.transpose(1, 0, 2))
    close(y.transpose(1, 0, 2), y_t.numpy(), np.float64, "y")


@pytest.mark.parametrize("module,match", [
    (lambda: torch.nn.GRU(3, 4, num_layers=2), "one layer in one direction.*Bidirectional and Stack"),
    (lambda: torch.nn.LSTM(3, 4, bidirectional=True), "one layer in one direction"),
    (lambda: torch.nn.RNN(3, 4, nonlinearity="relu"), "tanh; this one is relu"),
    (lambda: torch.nn.LSTM(3, 4, proj_size=2), "proj_size"),
    (lambda: torch.nn.GRU(3, 4).half(), "float16 weights"),
    (lambda: torch.nn.Linear(3, 4), "takes torch.nn.RNN, GRU, LSTM"),
])
def test_from_torch_rejects(module, match):
    with pytest.raises((ValueError, TypeError), match=match):
        interop.from_torch(module())


@pytest.mark.parametrize("cell,match", [
    (pg.SimpleGRU(3, 4), "no simplified GRU"),
    (pg.MGU(3, 4), "no MGU"),
    (pg.GRU(3, 4, reset="before"), "reset gate after the matmul"),
    (pg.LSTM(3, 4, peephole=True), "no peepholes"),
    (pg.CoupledLSTM(3, 4), "no CoupledLSTM"),
    (pg.CoupledLSTM(3, 4, peephole=True), "no CoupledLSTM"),
])
def test_to_torch_rejects_cells_pytorch_does_not_have(cell, match):
    with pytest.raises(ValueError, match=match):
        interop.to_torch(cell)


def test_to_torch_checks_the_params_it_is_given():
    cell = pg.GRU(3, 4)
    with pytest.raises(ValueError, match=r"missing \['b_hg'\]"):
        interop.to_torch(cell, {k: v for k, v in cell.params.items() if k != "b_hg"})
    with pytest.raises(ValueError, match=r"params\['W'\] must have shape \(3, 12\)"):
        interop.to_torch(cell, {**cell.params, "W": np.zeros((12, 3))})
