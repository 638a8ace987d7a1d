"""Losses: gradients against finite differences, values against PyTorch's
functional losses, masks, numerical stability and errors."""
import numpy as np
import pytest

from pyx_gru import losses
from pyx_gru._gradcheck import finite_difference_errors
from pyx_gru.losses import mse, sigmoid_cross_entropy, softmax_cross_entropy, step_mask
from helpers import TOL

K = 5
SHAPES = {"last": (6,), "every": (4, 6)}


def problem(name, rows, seed=0, scale=3.0):
    """out (rows + (K,)), target and a mask that drops some rows/steps."""
    rng = np.random.default_rng(seed)
    out = rng.uniform(-scale, scale, rows + (K,))
    if name == "softmax":
        target = rng.integers(0, K, rows)
    elif name == "sigmoid":
        target = (rng.uniform(size=rows + (K,)) < 0.3).astype(float)
    else:
        target = rng.standard_normal(rows + (K,))
    mask = rng.uniform(size=rows) < 0.7
    mask.flat[0] = True
    return out, target, mask


@pytest.mark.parametrize("name", sorted(losses.LOSSES))
@pytest.mark.parametrize("readout", sorted(SHAPES))
@pytest.mark.parametrize("masked", [False, True])
def test_gradcheck(name, readout, masked):
    out, target, mask = problem(name, SHAPES[readout])
    mask = mask if masked else None
    fn = losses.get_loss(name)
    _, dout = fn(out, target, mask)
    errors = finite_difference_errors(lambda: fn(out, target, mask)[0], [("out", out, dout)])
    assert errors["out"] < 1e-7, errors


def torch_reference(torch, name, out, target, mask):
    """The loss in the documented units, from torch.nn.functional, with autograd."""
    F = torch.nn.functional
    z = torch.tensor(out, requires_grad=True)
    m = torch.ones(out.shape[:-1], dtype=torch.bool) if mask is None else torch.tensor(mask)
    if name == "mse":
        per = F.mse_loss(z, torch.tensor(target), reduction="none")[m]
        value = per.mean()  # over counted steps and outputs
    elif name == "softmax":
        per = F.cross_entropy(z.reshape(-1, K), torch.tensor(target).reshape(-1), reduction="none")
        value = per[m.reshape(-1)].mean()
    else:
        per = F.binary_cross_entropy_with_logits(z, torch.tensor(target), reduction="none").sum(-1)
        value = per[m].mean()
    value.backward()
    return value.item(), z.grad.numpy()


@pytest.mark.parametrize("name", sorted(losses.LOSSES))
@pytest.mark.parametrize("readout", sorted(SHAPES))
@pytest.mark.parametrize("masked", [False, True])
def test_values_and_gradients_equal_torch(name, readout, masked, torch):
    out, target, mask = problem(name, SHAPES[readout], seed=3)
    mask = mask if masked else None
    value, dout = losses.get_loss(name)(out, target, mask)
    ref_value, ref_dout = torch_reference(torch, name, out, target, mask)
    assert abs(value - ref_value) <= 1e-12 * max(1.0, abs(ref_value))
    np.testing.assert_allclose(dout, ref_dout, rtol=0, atol=1e-15)


def test_stable_for_huge_logits():
    """log-sum-exp and softplus: no overflow, exact values far in the tails."""
    z = np.array([[1000.0, 0.0, -1000.0], [-800.0, -800.0, -800.0]])
    value, d = softmax_cross_entropy(z, np.array([2, 1]))
    assert value == pytest.approx((2000.0 + np.log(3)) / 2, rel=1e-15)
    np.testing.assert_allclose(d, [[0.5, 0, -0.5], [1 / 6, -1 / 3, 1 / 6]], atol=1e-16)
    value, d = sigmoid_cross_entropy(np.array([[1000.0, -1000.0, 0.0]]), np.array([[0.0, 0.0, 1.0]]))
    assert value == pytest.approx(1000.0 + np.log(2), rel=1e-15)
    np.testing.assert_allclose(d, [[1.0, 0.0, -0.5]], atol=1e-300)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        softmax_cross_entropy(np.array([[1e300, -1e300]]), np.array([1]))
        sigmoid_cross_entropy(np.array([[1e300, -1e300]]), np.array([[0.0, 1.0]]))
    assert np.all(np.isfinite(losses.sigmoid(np.array([-1e300, 1e300]))))


def test_units():
    """mse: mean over outputs too; sigmoid: summed over outputs, mean per frame;
    softmax at chance: ln K."""
    assert mse(np.zeros((2, 3, 2)), np.ones((2, 3, 2)))[0] == 1.0
    value, _ = sigmoid_cross_entropy(np.zeros((3, 4)), np.ones((3, 4)))
    assert value == pytest.approx(4 * np.log(2), rel=1e-15)
    value, _ = softmax_cross_entropy(np.zeros((7, K)), np.arange(7) % K)
    assert value == pytest.approx(np.log(K), rel=1e-15)


def test_masked_positions_are_never_read():
    out, target, mask = problem("mse", (4, 6))
    target = np.where(mask[..., None], target, np.nan)
    value, d = mse(out, target, mask)
    assert np.isfinite(value) and np.all(d[~mask] == 0)
    out, labels, mask = problem("softmax", (4, 6))
    labels = np.where(mask, labels, -1)  # padding labels out of range
    value, d = softmax_cross_entropy(out, labels, mask)
    assert np.isfinite(value) and np.all(d[~mask] == 0)
    # counting nothing: zero loss and gradient
    value, d = sigmoid_cross_entropy(out, np.zeros_like(out), np.zeros((4, 6), bool))
    assert value == 0.0 and not d.any()


def test_gradient_dtype_follows_out(dtype):
    out, target, _ = problem("softmax", (4, 6))
    value, d = softmax_cross_entropy(out.astype(dtype), target)
    assert d.dtype == dtype
    ref, d64 = softmax_cross_entropy(out.astype(dtype).astype(np.float64), target)
    assert value == ref
    np.testing.assert_allclose(d, d64, rtol=TOL[dtype], atol=TOL[dtype])


def test_step_mask():
    assert step_mask((3,)) is None
    np.testing.assert_array_equal(step_mask((3, 2), lengths=[3, 1]),
                                  [[1, 1], [1, 0], [1, 0]])
    m = np.array([[0, 1], [1, 1], [1, 1]], bool)
    np.testing.assert_array_equal(step_mask((3, 2), lengths=[3, 1], mask=m), [[0, 1], [1, 0], [1, 0]])
    np.testing.assert_array_equal(step_mask((2,), lengths=[3, 1], mask=[True, False]), [1, 0])
    with pytest.raises(TypeError, match="mask must be a bool array"):
        step_mask((3, 2), mask=np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"mask must have shape \(3, 2\)"):
        step_mask((3, 2), mask=np.ones((2, 3), bool))


def test_errors():
    out = np.zeros((4, 3))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        softmax_cross_entropy(out, np.array([0, 1, 2, 3]))
    with pytest.raises(TypeError, match="labels must be integers"):
        softmax_cross_entropy(out, np.zeros(4))
    with pytest.raises(ValueError, match=r"labels must have shape \(4,\)"):
        softmax_cross_entropy(out, np.zeros((4, 3), int))
    with pytest.raises(ValueError, match=r"target must have shape \(4, 3\)"):
        mse(out, np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        sigmoid_cross_entropy(out, np.full((4, 3), 2.0))
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\] \(no NaN\)"):
        sigmoid_cross_entropy(out, np.full((4, 3), np.nan))
    # a NaN target where the mask drops it is never read
    target = np.zeros((4, 3))
    target[1] = np.nan
    keep = np.array([True, False, True, True])
    value, _ = sigmoid_cross_entropy(out, target, keep)
    assert np.isfinite(value)
    with pytest.raises(ValueError, match="loss must be one of"):
        losses.get_loss(["mse"])
    with pytest.raises(ValueError, match=r"z must have shape \(\.\.\., K\) with K >= 1"):
        losses.softmax(np.zeros((2, 0)))
    with pytest.raises(TypeError, match="z must hold real numbers"):
        losses.softmax("ab")
    with pytest.raises(ValueError, match=r"out must have shape \(B, K\) or \(T, B, K\)"):
        mse(np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="loss must be one of"):
        losses.get_loss("hinge")
