"""Optimisers against hand-computed updates and torch.optim 2.13.0; global-norm
clipping; weight noise."""
import numpy as np
import pytest

from pyx_gru import optim
from pyx_gru.optim import SGD, Adam, RMSProp, clip_grad_norm, global_norm, weight_noise

# float64: the same formulas in a different order of operations round apart
# by a few ulp; float32 likewise, relative to the parameters' scale.
STEP_TOL = {np.float32: 1e-5, np.float64: 1e-12}


def one(p, g, opt, steps=1):
    """Run opt on a single scalar parameter with the gradients g (one per step)."""
    params = {"p": np.array([p], dtype=np.float64)}
    for gi in (g if isinstance(g, list) else [g] * steps):
        opt.step(params, {"p": np.array([gi])})
    return params["p"][0]


def test_hand_computed_updates():
    # SGD: p - lr g
    assert one(1.0, 2.0, SGD(0.1)) == pytest.approx(0.8, abs=1e-15)
    # momentum 0.9: b1 = g1 = 2, b2 = 0.9 * 2 + 1 = 2.8; p = 1 - 0.1 (2 + 2.8)
    assert one(1.0, [2.0, 1.0], SGD(0.1, momentum=0.9)) == pytest.approx(0.52, abs=1e-15)
    # Nesterov: d1 = 2 + 0.9 * 2 = 3.8; b2 = 2.8, d2 = 1 + 0.9 * 2.8 = 3.52
    assert one(1.0, [2.0, 1.0], SGD(0.1, momentum=0.9, nesterov=True)) == pytest.approx(
        1 - 0.1 * (3.8 + 3.52), abs=1e-15)
    # weight decay 0.5: g = 2 + 0.5 * 1 = 2.5
    assert one(1.0, 2.0, SGD(0.1, weight_decay=0.5)) == pytest.approx(0.75, abs=1e-15)
    # RMSProp, alpha 0.9: v = 0.1 * 4, s = sqrt(0.4) + eps (eps outside the root)
    assert one(1.0, 2.0, RMSProp(0.01, alpha=0.9, eps=0.1)) == pytest.approx(
        1 - 0.01 * 2 / (np.sqrt(0.4) + 0.1), abs=1e-15)
    # centered: m = 0.1 * 2, s = sqrt(0.4 - 0.04) + eps
    assert one(1.0, 2.0, RMSProp(0.01, alpha=0.9, eps=0.1, centered=True)) == pytest.approx(
        1 - 0.01 * 2 / (np.sqrt(0.36) + 0.1), abs=1e-15)
    # Adam, first step: m_hat = g, v_hat = g^2: p - lr g / (|g| + eps)
    assert one(1.0, 2.0, Adam(0.1, eps=0.5)) == pytest.approx(1 - 0.1 * 2 / 2.5, abs=1e-15)
    # Adam, second step with g = 2 then 0: m = 0.9 * 0.2 = 0.18, v = 0.999 * 0.004;
    # m_hat = 0.18 / 0.19, v_hat = 0.003996 / (1 - 0.999^2)
    p1 = 1 - 0.1 * 2 / 2.5
    m_hat, v_hat = 0.18 / (1 - 0.81), 0.999 * 0.004 / (1 - 0.999**2)
    assert one(1.0, [2.0, 0.0], Adam(0.1, eps=0.5)) == pytest.approx(
        p1 - 0.1 * m_hat / (np.sqrt(v_hat) + 0.5), abs=1e-15)


# (ours, the name of its torch.optim twin, keywords of both)
CASES = [
    (SGD, "SGD", dict(lr=0.1)),
    (SGD, "SGD", dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
    (SGD, "SGD", dict(lr=0.05, momentum=0.8, nesterov=True)),
    (RMSProp, "RMSprop", dict(lr=0.01)),
    (RMSProp, "RMSprop", dict(lr=0.01, alpha=0.9, eps=1e-6, momentum=0.9, centered=True)),
    (RMSProp, "RMSprop", dict(lr=0.003, alpha=0.95, weight_decay=0.1, momentum=0.5)),
    (Adam, "Adam", dict(lr=0.01)),
    (Adam, "Adam", dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
]


@pytest.mark.parametrize("ours, theirs, kw", CASES, ids=[f"{c[0].__name__}-{i}" for i, c in enumerate(CASES)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_equal_torch_optim(ours, theirs, kw, dtype, torch):
    """Six steps on two arrays with the same gradients (some tiny, some
    large); parameters agree after every step."""
    rng = np.random.default_rng(0)
    params = {"W": rng.standard_normal((3, 4)).astype(dtype), "b": rng.standard_normal(4).astype(dtype)}
    tparams = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    opt = ours(**kw)
    topt = getattr(torch.optim, theirs)(list(tparams.values()), foreach=False, **kw)
    for step in range(6):
        grads = {k: (rng.standard_normal(v.shape) * 10.0 ** rng.integers(-4, 2, v.shape)).astype(dtype)
                 for k, v in params.items()}
        opt.step(params, grads)
        for k, t in tparams.items():
            t.grad = torch.tensor(grads[k])
        topt.step()
        for k in params:
            assert params[k].dtype == dtype
            np.testing.assert_allclose(params[k], tparams[k].detach().numpy(), rtol=0,
                                       atol=STEP_TOL[dtype] * max(1, np.abs(params[k]).max()),
                                       err_msg=f"{k} after step {step + 1}")


def test_clip_grad_norm():
    rng = np.random.default_rng(0)
    grads = {"a": rng.standard_normal((3, 4)), "b": rng.standard_normal(5)}
    norm = np.sqrt(sum(np.sum(g**2) for g in grads.values()))
    before = {k: v.copy() for k, v in grads.items()}
    assert clip_grad_norm(grads, norm * 2) == pytest.approx(norm, rel=1e-15)
    for k in grads:  # below the threshold: untouched
        np.testing.assert_array_equal(grads[k], before[k])
    assert clip_grad_norm(grads, 0.5) == pytest.approx(norm, rel=1e-15)
    assert global_norm(grads) == pytest.approx(0.5, rel=1e-15)
    for k in grads:  # theta g / ||g||
        np.testing.assert_allclose(grads[k], before[k] * 0.5 / norm, rtol=1e-15)
    with pytest.raises(TypeError, match="max_norm must be a real number"):
        clip_grad_norm(grads, "1")
    with pytest.raises(TypeError, match=r"grads\['i'\] must be a float ndarray"):
        clip_grad_norm({"i": np.ones(3, dtype=int)}, 1.0)
    f32 = {"a": np.full(4, 3.0, dtype=np.float32)}
    clip_grad_norm(f32, 1.0)
    assert f32["a"].dtype == np.float32 and global_norm(f32) == pytest.approx(1.0, rel=1e-6)
    with pytest.raises(ValueError, match="max_norm must be > 0"):
        clip_grad_norm(grads, 0)


def test_clip_grad_norm_equals_torch(torch):
    # torch divides by ||g|| + 1e-6: the same up to that
    rng = np.random.default_rng(0)
    grads = {"a": rng.standard_normal((3, 4)), "b": rng.standard_normal(5)}
    ts = [torch.tensor(v, requires_grad=True) for v in grads.values()]
    for t, v in zip(ts, grads.values(), strict=True):
        t.grad = torch.tensor(v)
    clip_grad_norm(grads, 0.5)
    torch.nn.utils.clip_grad_norm_(ts, 0.5)
    for t, g in zip(ts, grads.values(), strict=True):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-5)


def test_weight_noise_is_added_then_removed_exactly():
    rng = np.random.default_rng(0)
    params = {"W": rng.standard_normal((200, 100)), "b": np.zeros(100, dtype=np.float32)}
    clean = {k: v.copy() for k, v in params.items()}
    ids = {k: id(v) for k, v in params.items()}
    with weight_noise(params, 0.075, np.random.default_rng(1)) as noise:
        for k in params:
            np.testing.assert_array_equal(params[k], (clean[k] + noise[k]).astype(clean[k].dtype))
            assert id(params[k]) == ids[k] and noise[k].dtype == clean[k].dtype
        assert np.std(noise["W"]) == pytest.approx(0.075, rel=0.02)
        assert abs(np.mean(noise["W"])) < 0.002
    for k in params:  # bitwise the clean weights
        np.testing.assert_array_equal(params[k], clean[k])
    # the same generator state gives the same noise
    with weight_noise(params, 0.075, np.random.default_rng(1)) as again:
        np.testing.assert_array_equal(again["W"], noise["W"])
    # restored on an exception too
    with pytest.raises(RuntimeError):
        with weight_noise(params, 1.0, rng):
            raise RuntimeError
    for k in params:
        np.testing.assert_array_equal(params[k], clean[k])
    with weight_noise(params, 0.0, rng) as none:
        assert none == {} and np.array_equal(params["W"], clean["W"])
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        with weight_noise({"a": np.zeros(2)}, 0.1, 0):
            pass
    with pytest.raises(ValueError, match="std must be a finite number >= 0"):
        with weight_noise(params, -1.0, rng):
            pass


def test_make_optimizer_and_errors():
    assert isinstance(optim.make_optimizer("adam"), Adam)
    assert optim.make_optimizer("RMSProp", 0.5).lr == 0.5
    assert optim.make_optimizer("sgd", 0.1, momentum=0.9).momentum == 0.9
    opt = Adam()
    assert optim.make_optimizer(opt) is opt
    with pytest.raises(ValueError, match="pass lr and options"):
        optim.make_optimizer(opt, 0.1)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        optim.make_optimizer("lbfgs")
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        SGD(0)
    for bad in (np.inf, np.nan):
        with pytest.raises(ValueError, match="lr must be a finite number > 0"):
            SGD(bad)
        with pytest.raises(ValueError, match="eps must be a finite number >= 0"):
            Adam(eps=bad)
        with pytest.raises(ValueError, match="weight_decay must be a finite number >= 0"):
            SGD(0.1, weight_decay=bad)
    with pytest.raises(TypeError, match="lr must be a real number"):
        SGD("0.1")
    with pytest.raises(TypeError, match="nesterov must be True or False"):
        SGD(0.1, 0.9, nesterov="no")
    with pytest.raises(TypeError, match="centered must be True or False"):
        optim.RMSProp(centered="no")
    with pytest.raises(TypeError, match=r"betas must be a pair"):
        Adam(betas=0.9)
    with pytest.raises(ValueError, match="momentum must lie in"):
        SGD(0.1, momentum=1.0)
    with pytest.raises(ValueError, match="nesterov needs momentum"):
        SGD(0.1, nesterov=True)
    with pytest.raises(ValueError, match=r"betas\[1\] must lie in"):
        Adam(betas=(0.9, 1.5))
    p = {"a": np.zeros(3)}
    with pytest.raises(ValueError, match="same keys"):
        SGD().step(p, {"b": np.zeros(3)})
    with pytest.raises(ValueError, match=r"grads\['a'\] must have shape \(3,\)"):
        SGD().step(p, {"a": np.zeros(4)})
    assert "lr=0.01" in repr(SGD())


@pytest.mark.parametrize("opt", [SGD(0.1, 0.9), RMSProp(0.1), Adam(0.1)], ids=repr)
def test_a_refused_step_changes_nothing(opt):
    params = {"a": np.ones(3), "w": np.ones(3)}
    ro = {"a": np.ones(3), "w": np.ones(3)}
    ro["w"].flags.writeable = False
    for p, g, exc in ((params, {"a": np.ones(3), "w": np.array(["x", "y", "z"])}, TypeError),
                      (params, {"a": np.ones(3), "w": np.ones(3) * 1j}, TypeError),
                      (ro, {"a": np.ones(3), "w": np.ones(3)}, ValueError)):
        with pytest.raises(exc, match=r"\['w'\]"):
            opt.step(p, g)
        assert opt.t == 0 and opt.state == {}
        np.testing.assert_array_equal(p["a"], np.ones(3))
