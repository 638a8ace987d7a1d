"""Losses with their gradients, masked for variable lengths, numerically stable.

Each loss takes the model's raw output and the targets and returns
``(loss, dout)``, the loss (a Python float) and dL/dout (the output's shape
and dtype). The units are those of ``pyx_gru.tasks`` (so a task's
``baseline`` compares directly):

* ``mse``: mean of (out - y)^2 over counted steps, batch rows and outputs;
* ``softmax_cross_entropy``: mean negative log-likelihood (natural log)
  of the target class, per counted step;
* ``sigmoid_cross_entropy``: the K binary cross-entropies summed over
  outputs, mean per counted step ("NLL per frame" for piano rolls).

The output is (B, K) for a readout on the last step or (T, B, K) for a
readout at every step; ``mask``, of shape ``out.shape[:-1]`` ((B,) or
(T, B)), says which steps (or rows) count. A mask that counts nothing gives
a loss of 0 and a zero gradient. Targets at uncounted positions are never
read (they may be NaN, or -1 for classes). ``step_mask`` turns ``lengths``
and an optional mask into that boolean array.

Each loss is computed in float64 whatever the output's dtype: log-sum-exp
for the softmax, softplus for the sigmoid, so no exp overflows.
"""
import numpy as np

from ._validation import float_array, lengths_array, real_array

__all__ = [
    "mse",
    "softmax_cross_entropy",
    "sigmoid_cross_entropy",
    "LOSSES",
    "get_loss",
    "step_mask",
    "softmax",
    "sigmoid",
]


def step_mask(shape, lengths=None, mask=None):
    """Which outputs count in a loss: ``mask`` and ``t < lengths[b]``.

    Parameters
    ----------
    shape : tuple
        ``out.shape[:-1]``: (B,) for a readout on the last step, (T, B) for
        one at every step.
    lengths : array_like of int, shape (B,), optional
        Only used for (T, B): step t of row b counts if t < lengths[b].
    mask : array_like of bool, shape ``shape``, optional
        Which outputs count (True), before the lengths are applied; None
        counts all.

    Returns
    -------
    ndarray of bool, shape ``shape``, or None
        True where an output counts (a new array); None when everything
        counts.
    """
    shape = tuple(shape)
    out = None
    if mask is not None:
        m = np.asarray(mask)
        if m.dtype != bool:
            raise TypeError(f"mask must be a bool array of shape {shape}, got dtype {m.dtype}")
        if m.shape != shape:
            raise ValueError(f"mask must have shape {shape}, got {m.shape}")
        out = m.copy()
    if lengths is not None and len(shape) == 2:
        T, B = shape
        lengths = lengths_array(lengths, T, B)
        within = np.arange(T)[:, None] < lengths[None, :]
        out = within if out is None else out & within
    return out


def _check_mask(mask, shape):
    if mask is None:
        return None
    return step_mask(shape, mask=mask)


def _out(out):
    out = real_array("out", out, "(B, K) or (T, B, K)")
    if out.ndim not in (2, 3):
        raise ValueError(f"out must have shape (B, K) or (T, B, K), got {out.shape}")
    return out


def _finish(total, count, dtotal, dtype):
    """(mean, dmean) from the sum and the number of counted terms."""
    if count == 0:
        return 0.0, np.zeros(dtotal.shape, dtype=dtype)
    return float(total / count), (dtotal / count).astype(dtype, copy=False)


def _mse_terms(out, target, mask):
    """(sum, count, dsum) of the squared errors."""
    out = _out(out)
    target = float_array("target", target, out.shape, np.float64)
    mask = _check_mask(mask, out.shape[:-1])
    diff = out.astype(np.float64) - target
    if mask is not None:
        diff = np.where(mask[..., None], diff, 0.0)
        count = int(mask.sum()) * out.shape[-1]
    else:
        count = diff.size
    return float(np.sum(diff * diff)), count, 2.0 * diff


def _labels(labels, shape, mask, K):
    """Integer labels of ``shape``, checked in [0, K) where the mask counts."""
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"labels must be integers (class indices) of shape {shape}, got dtype {labels.dtype}")
    if labels.shape != shape:
        raise ValueError(f"labels must have shape {shape} (out.shape[:-1]), got {labels.shape}")
    counted = labels if mask is None else labels[mask]
    if counted.size and (counted.min() < 0 or counted.max() >= K):
        raise ValueError(f"labels must lie in [0, {K}) where they count, got {counted.min()}..{counted.max()}")
    return np.where(mask, labels, 0) if mask is not None else labels


def _softmax_terms(out, labels, mask):
    """(sum, count, dsum) of -log softmax(out)[label], by log-sum-exp."""
    out = _out(out)
    mask = _check_mask(mask, out.shape[:-1])
    labels = _labels(labels, out.shape[:-1], mask, out.shape[-1])
    z = out.astype(np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    log_p = z - np.log(np.sum(np.exp(z), axis=-1, keepdims=True))
    nll = -np.take_along_axis(log_p, labels[..., None], axis=-1)[..., 0]
    dz = np.exp(log_p)
    np.put_along_axis(dz, labels[..., None], np.take_along_axis(dz, labels[..., None], -1) - 1, -1)
    if mask is not None:
        nll = np.where(mask, nll, 0.0)
        dz = np.where(mask[..., None], dz, 0.0)
        count = int(mask.sum())
    else:
        count = nll.size
    return float(nll.sum()), count, dz


def _sigmoid_terms(out, target, mask):
    """(sum, count, dsum) of the binary cross-entropies summed over outputs.

    -[y log sigma(z) + (1 - y) log(1 - sigma(z))] = softplus(z) - y z, with
    softplus(z) = max(z, 0) + log1p(exp(-|z|)).
    """
    out = _out(out)
    target = float_array("target", target, out.shape, np.float64)
    mask = _check_mask(mask, out.shape[:-1])
    z = out.astype(np.float64)
    if mask is not None:
        target = np.where(mask[..., None], target, 0.0)
    if not np.all((target >= 0) & (target <= 1)):  # NaN too
        raise ValueError("target of the sigmoid cross-entropy must lie in [0, 1] (no NaN)")
    e = np.exp(-np.abs(z))  # shared by softplus and sigmoid (as sigmoid() computes them)
    terms = np.maximum(z, 0.0) + np.log1p(e) - target * z
    dz = np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e)) - target
    if mask is not None:
        terms = np.where(mask[..., None], terms, 0.0)
        dz = np.where(mask[..., None], dz, 0.0)
        count = int(mask.sum())
    else:
        count = int(np.prod(out.shape[:-1]))
    return float(terms.sum()), count, dz


def _mean(terms, out, target, mask):
    out_dtype = np.asarray(out).dtype
    dtype = out_dtype if out_dtype in (np.float32, np.float64) else np.float64
    return _finish(*terms(out, target, mask), dtype)


_PARAMETERS = """
    Parameters
    ----------
    out : array_like, shape (B, K) or (T, B, K)
        The model's raw output (values, or logits for the cross-entropies).
    {target}
    mask : array_like of bool, shape out.shape[:-1], optional
        Which steps (rows) count; None counts all.

    Returns
    -------
    loss : float
        The mean loss over what counts (natural log for the cross-entropies).
    dout : ndarray, shape of ``out``
        The gradient dL/dout, in out's dtype when that is float32 or
        float64 (float64 for any other, integer or float16);
        zero where a step does not count.
"""


def mse(out, target, mask=None):
    return _mean(_mse_terms, out, target, mask)


def softmax_cross_entropy(out, target, mask=None):
    return _mean(_softmax_terms, out, target, mask)


def sigmoid_cross_entropy(out, target, mask=None):
    return _mean(_sigmoid_terms, out, target, mask)


mse.__doc__ = """Mean squared error: the mean of (out - target)^2 over counted steps,
    batch rows and the K outputs.
""" + _PARAMETERS.format(
    target="target : array_like, shape of ``out``\n        The values to fit."
)
softmax_cross_entropy.__doc__ = """Softmax cross-entropy: the mean over counted steps of
    -log softmax(out)[target], natural log.
""" + _PARAMETERS.format(
    target="target : array_like of int, shape out.shape[:-1]\n        Class labels in [0, K)."
)
sigmoid_cross_entropy.__doc__ = """Sigmoid cross-entropy for multi-label outputs (piano-roll
    frames): the K binary cross-entropies summed, mean over counted steps.
""" + _PARAMETERS.format(
    target="target : array_like, shape of ``out``\n        Values in [0, 1] (1 = note on)."
)

#: The losses by name (``fit(..., loss=name)``): name -> function
#: ``(out, target, mask=None) -> (loss, dout)``.
LOSSES = {"mse": mse, "softmax": softmax_cross_entropy, "sigmoid": sigmoid_cross_entropy}
# (sum, count, dsum) of each loss: evaluate() sums these over batches.
TERMS = {"mse": _mse_terms, "softmax": _softmax_terms, "sigmoid": _sigmoid_terms}


def get_loss(name):
    """The loss function called ``name``: ``"mse"``, ``"softmax"`` or ``"sigmoid"``.

    Parameters
    ----------
    name : {"mse", "softmax", "sigmoid"}
        A key of ``LOSSES``.

    Returns
    -------
    callable
        ``mse``, ``softmax_cross_entropy`` or ``sigmoid_cross_entropy``:
        ``(out, target, mask=None) -> (loss, dout)``.
    """
    if not isinstance(name, str) or name not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {name!r}")
    return LOSSES[name]


def softmax(z):
    """Softmax over the last axis, shifted by the maximum (no overflow).

    Parameters
    ----------
    z : array_like, shape (..., K)
        Logits.

    Returns
    -------
    ndarray, shape (..., K)
        Probabilities: exp(z) / sum(exp(z)) along the last axis, each row
        summing to 1.
    """
    z = real_array("z", z, "(..., K)")
    if z.ndim == 0 or z.shape[-1] == 0:
        raise ValueError(f"z must have shape (..., K) with K >= 1, got {z.shape}")
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def sigmoid(z):
    """The logistic function 1 / (1 + exp(-z)), elementwise, without overflow for any z.

    Parameters
    ----------
    z : array_like
        Logits, any shape.

    Returns
    -------
    ndarray
        Values in [0, 1], in the shape of ``z``.
    """
    z = np.asarray(z)
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
