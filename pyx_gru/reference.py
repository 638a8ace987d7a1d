"""The cells in plain NumPy, one time step at a time, read like the equations.

This module is for reading and for checking. Each cell is a pair of
functions, ``*_step_forward`` and ``*_step_backward``, in the style of
CS231n's ``rnn_layers.py``: the forward step returns the new state and a cache
of what its backward step needs; the backward step takes the gradient of the
loss with respect to the new state and returns the gradients with respect to
the input, the previous state and the parameters. One loop over time,
``_ReferenceCell``, drives every cell, and the classes ``RNN``,
``SimpleGRU``, ``GRU``, ``MGU``, ``LSTM``, ``CoupledLSTM``, ``MinGRU`` and
``MinLSTM`` have exactly the interface of the
compiled ones (same constructor, same seeded parameters, same ``forward``
and ``backward``), so either can stand in for the other.

Shapes, for one step: ``x_t`` (B, D), ``h_prev`` and ``c_prev`` (B, H);
``W`` (D, G*H), ``U`` (H, G*H), ``b`` (G*H,), gate k of ``cell.gates`` in
columns ``k*H:(k+1)*H``. Rows are batch entries, so the textbooks' ``W x_t``
is ``x_t @ W`` here, as in the docs' ``x_t W``. A state is a tuple:
``(h,)``, or ``(h, c)`` for the LSTM and the CoupledLSTM.

Theory: :doc:`/theory/index` derives every step function below, one page per
cell, and :doc:`/theory/worked_step` runs the GRU's in numbers.
"""
import numpy as np

from . import _cells, _kinds
from ._cells import Cache

__all__ = [
    "RNN", "SimpleGRU", "GRU", "MGU", "LSTM", "CoupledLSTM", "from_cell", "sigmoid", "gate",
    "gate_slope", "zoneout_mask", "dropout_mask", "pass_key",
    "rnn_step_forward", "rnn_step_backward",
    "simple_gru_step_forward", "simple_gru_step_backward",
    "gru_after_step_forward", "gru_after_step_backward",
    "gru_before_step_forward", "gru_before_step_backward",
    "mgu_after_step_forward", "mgu_after_step_backward",
    "mgu_before_step_forward", "mgu_before_step_backward",
    "lstm_step_forward", "lstm_step_backward",
    "cifg_step_forward", "cifg_step_backward",
    "MinGRU", "MinLSTM",
    "mingru_step_forward", "mingru_step_backward",
    "minlstm_step_forward", "minlstm_step_backward",
]


def sigmoid(a):
    """The logistic function, sigma(a) = 1 / (1 + exp(-a)).

    Computed as exp(-log(1 + exp(-a))) so that no exp overflows for large
    negative a.

    Parameters
    ----------
    a : ndarray
        Pre-activations, any shape.

    Returns
    -------
    ndarray
        The values sigma(a), in (0, 1) (exactly 0 or 1 where they round so),
        in the shape of ``a``.
    """
    return np.exp(-np.logaddexp(0, -a))


def gate(a, name, pins):
    """The sigmoid gate called ``name``: sigma(a), or the value it is pinned to.

    Parameters
    ----------
    a : ndarray, shape (B, H)
        The gate's pre-activations.
    name : str
        The gate's name in ``cell.gates`` ("z", "r", "f", "i" or "o").
    pins : dict of str to ndarray or None
        The pinned gates (the ``gates=`` of ``forward``), each (H,); if it
        names this gate, its value is used instead of sigma(a).

    Returns
    -------
    ndarray, shape (B, H)
        The gate's values (a read-only broadcast view when pinned).
    """
    if pins and name in pins:
        return np.broadcast_to(pins[name], a.shape)
    return sigmoid(a)


def gate_slope(s, name, pins):
    """The slope d gate / d a for a gate of value s: s (1 - s), or 0 when pinned.

    Parameters
    ----------
    s : ndarray, shape (B, H)
        The gate's values, sigma(a).
    name : str
        The gate's name in ``cell.gates``.
    pins : dict of str to ndarray or None
        The pinned gates, as given to ``gate``.

    Returns
    -------
    ndarray, shape (B, H), or float
        The slope s (1 - s); the scalar 0.0 when the gate is pinned (no gradient
        reaches a pinned gate's pre-activation).
    """
    if pins and name in pins:
        return 0.0
    return s * (1 - s)


def _dropped(h, drop):
    """The state as it enters the recurrent product: h * drop with recurrent
    dropout (drop the (B, H) mask, 0 or 1 / (1 - p)), else h itself."""
    return h if drop is None else h * drop


def _through_u(dh, drop):
    """A gradient that came back through U, as the gradient of h_{t-1}:
    times the dropout mask (as ``_dropped``)."""
    return dh if drop is None else dh * drop


def _gate_blocks(m, G):
    """Split the columns of m, (B, G*H), into its G gate blocks, each (B, H)."""
    return np.split(m, G, axis=-1)


# --------------------------------------------------------------------------
# Vanilla RNN
# --------------------------------------------------------------------------

def rnn_step_forward(x_t, state, p, pins=None, drop=None):
    """One forward step of the vanilla RNN: h_t = g = tanh(x_t W + h_{t-1} U + b).

    Parameters
    ----------
    x_t : ndarray, shape (B, D)
        The inputs at step t.
    state : tuple of ndarray
        ``(h_prev,)``, h_prev (B, H) being h_{t-1}.
    p : dict of str to ndarray
        The parameters, keyed as ``cell.params``: ``W`` (D, G*H), ``U``
        (H, G*H), ``b`` (G*H,); G = 1.
    pins : dict of str to ndarray, optional
        Pinned gates, by name, each (H,) (the ``gates=`` of ``forward``);
        None pins none.
    drop : ndarray, shape (B, H), optional
        The recurrent dropout mask: the state enters the recurrent product
        as h_prev * drop. None: no dropout.

    Returns
    -------
    state : tuple of ndarray
        ``(h_t,)``, h_t (B, H).
    cache : tuple of ndarray
        What ``rnn_step_backward`` needs: ``(x_t, h_prev, g)``.
    """
    (h_prev,) = state
    g = np.tanh(x_t @ p["W"] + _dropped(h_prev, drop) @ p["U"] + p["b"])
    return (g,), (x_t, h_prev, g)


def rnn_step_backward(dstate, cache, p, pins=None, drop=None):
    """Backward of ``rnn_step_forward``: da = dh * (1 - g**2).

    Parameters
    ----------
    dstate : tuple of ndarray
        ``(dh,)``, dh (B, H) being dL/dh_t.
    cache : tuple of ndarray
        The cache ``rnn_step_forward`` returned for this step.
    p : dict of str to ndarray
        The parameters, as given to ``rnn_step_forward``.
    pins : dict of str to ndarray, optional
        The pinned gates, as given to ``rnn_step_forward``; a pinned gate passes
        no gradient to its pre-activation.
    drop : ndarray, shape (B, H), optional
        The dropout mask, as given to ``rnn_step_forward``.

    Returns
    -------
    dx_t : ndarray, shape (B, D)
        The gradient dL/dx_t.
    dstate_prev : tuple of ndarray
        ``(dh_prev,)``, dh_prev (B, H) being dL/dh_{t-1}.
    grads : dict of str to ndarray
        This step's share of every parameter gradient, keyed and shaped like
        ``p``.
    """
    (dh,) = dstate
    x_t, h_prev, g = cache
    da = dh * (1 - g**2)  # through tanh
    grads = {"W": x_t.T @ da, "U": _dropped(h_prev, drop).T @ da, "b": da.sum(0)}
    return da @ p["W"].T, (_through_u(da @ p["U"].T, drop),), grads


# --------------------------------------------------------------------------
# Simplified GRU: h_t = f * h_{t-1} + (1 - f) * g
# --------------------------------------------------------------------------

def simple_gru_step_forward(x_t, state, p, pins=None, drop=None):
    """One forward step of the simplified GRU.

    f = sigma(x_t W_f + h_{t-1} U_f + b_f), g = tanh(x_t W_g + h_{t-1} U_g + b_g),
    h_t = f * h_{t-1} + (1 - f) * g.

    Parameters
    ----------
    x_t : ndarray, shape (B, D)
        The inputs at step t.
    state : tuple of ndarray
        ``(h_prev,)``, h_prev (B, H) being h_{t-1}.
    p : dict of str to ndarray
        The parameters, keyed as ``cell.params``: ``W`` (D, G*H), ``U``
        (H, G*H), ``b`` (G*H,); G = 2, gates f, g.
    pins : dict of str to ndarray, optional
        Pinned gates, by name, each (H,) (the ``gates=`` of ``forward``);
        None pins none.
    drop : ndarray, shape (B, H), optional
        The recurrent dropout mask: the state enters the recurrent product
        as h_prev * drop. None: no dropout.

    Returns
    -------
    state : tuple of ndarray
        ``(h_t,)``, h_t (B, H).
    cache : tuple of ndarray
        What ``simple_gru_step_backward`` needs: ``(x_t, h_prev, f, g)``.
    """
    (h_prev,) = state
    a_f, a_g = _gate_blocks(x_t @ p["W"] + _dropped(h_prev, drop) @ p["U"] + p["b"], 2)
    f = gate(a_f, "f", pins)
    g = np.tanh(a_g)
    h = f * h_prev + (1 - f) * g
    return (h,), (x_t, h_prev, f, g)


def simple_gru_step_backward(dstate, cache, p, pins=None, drop=None):
    """Backward of ``simple_gru_step_forward``: df = dh * (h_prev - g),
    dg = dh * (1 - f), and the direct path dh * f to h_prev.

    Parameters
    ----------
    dstate : tuple of ndarray
        ``(dh,)``, dh (B, H) being dL/dh_t.
    cache : tuple of ndarray
        The cache ``simple_gru_step_forward`` returned for this step.
    p : dict of str to ndarray
        The parameters, as given to ``simple_gru_step_forward``.
    pins : dict of str to ndarray, optional
        The pinned gates, as given to ``simple_gru_step_forward``; a pinned gate passes
        no gradient to its pre-activation.
    drop : ndarray, shape (B, H), optional
        The dropout mask, as given to ``simple_gru_step_forward``.

    Returns
    -------
    dx_t : ndarray, shape (B, D)
        The gradient dL/dx_t.
    dstate_prev : tuple of ndarray
        ``(dh_prev,)``, dh_prev (B, H) being dL/dh_{t-1}.
    grads : dict of str to ndarray
        This step's share of every parameter gradient, keyed and shaped like
        ``p``.
    """
    (dh,) = dstate
    x_t, h_prev, f, g = cache
    df = dh * (h_prev - g)
    dg = dh * (1 - f)
    da = np.concatenate([df * gate_slope(f, "f", pins), dg * (1 - g**2)], axis=1)
    dh_prev = dh * f + _through_u(da @ p["U"].T, drop)
    grads = {"W": x_t.T @ da, "U": _dropped(h_prev, drop).T @ da, "b": da.sum(0)}
    return da @ p["W"].T, (dh_prev,), grads


# --------------------------------------------------------------------------
# GRU, reset gate after the matmul (cuDNN, PyTorch)
# --------------------------------------------------------------------------

def gru_after_step_forward(x_t, state, p, pins=None, drop=None):
    """One forward step of the GRU with the reset gate after the matmul.

    z = sigma(x_t W_z + h_{t-1} U_z + b_z), r = sigma(x_t W_r + h_{t-1} U_r + b_r),
    n = h_{t-1} U_g + b_hg, g = tanh(x_t W_g + b_g + r * n),
    h_t = z * h_{t-1} + (1 - z) * g.

    Parameters
    ----------
    x_t : ndarray, shape (B, D)
        The inputs at step t.
    state : tuple of ndarray
        ``(h_prev,)``, h_prev (B, H) being h_{t-1}.
    p : dict of str to ndarray
        The parameters, keyed as ``cell.params``: ``W`` (D, G*H), ``U``
        (H, G*H), ``b`` (G*H,); G = 3, gates z, r, g; and ``b_hg`` (H,).
    pins : dict of str to ndarray, optional
        Pinned gates, by name, each (H,) (the ``gates=`` of ``forward``);
        None pins none.
    drop : ndarray, shape (B, H), optional
        The recurrent dropout mask: the state enters the recurrent product
        as h_prev * drop. None: no dropout.

    Returns
    -------
    state : tuple of ndarray
        ``(h_t,)``, h_t (B, H).
    cache : tuple of ndarray
        What ``gru_after_step_backward`` needs: ``(x_t, h_prev, z, r, n, g)``.
    """
    (h_prev,) = state
    ax_z, ax_r, ax_g = _gate_blocks(x_t @ p["W"] + p["b"], 3)
    ah_z, ah_r, ah_g = _gate_blocks(_dropped(h_prev, drop) @ p["U"], 3)
    z = gate(ax_z + ah_z, "z", pins)
    r = gate(ax_r + ah_r, "r", pins)
    n = ah_g + p["b_hg"]
    g = np.tanh(ax_g + r * n)
    h = z * h_prev + (1 - z) * g
    return (h,), (x_t, h_prev, z, r, n, g)


def gru_after_step_backward(dstate, cache, p, pins=None, drop=None):
    """Backward of ``gru_after_step_forward``. The candidate's gradient has
    an input side (da_g, for W_g and b_g) and a recurrent side
    (dn = r * da_g, for U_g and b_hg).

    Parameters
    ----------
    dstate : tuple of ndarray
        ``(dh,)``, dh (B, H) being dL/dh_t.
    cache : tuple of ndarray
        The cache ``gru_after_step_forward`` returned for this step.
    p : dict of str to ndarray
        The parameters, as given to ``gru_after_step_forward``.
    pins : dict of str to ndarray, optional
        The pinned gates, as given to ``gru_after_step_forward``; a pinned gate passes
        no gradient to its pre-activation.
    drop : ndarray, shape (B, H), optional
        The dropout mask, as given to ``gru_after_step_forward``.

    Returns
    -------
    dx_t : ndarray, shape (B, D)
        The gradient dL/dx_t.
    dstate_prev : tuple of ndarray
        ``(dh_prev,)``, dh_prev (B, H) being dL/dh_{t-1}.
    grads : dict of str to ndarray
        This step's share of every parameter gradient, keyed and shaped like
        ``p``.
    """
    (dh,) = dstate
    x_t, h_prev, z, r, n, g = cache
    dz = dh * (h_prev - g)
    da_g = dh * (1 - z) * (1 - g**2)  # dL/d(x W_g + b_g + r * n)
    dr = da_g * n
    dn = da_g * r
    da_z = dz * gate_slope(z, "z", pins)
    da_r = dr * gate_slope(r, "r", pins)
    dax = np.concatenate([da_z, da_r, da_g], axis=1)  # input side
    dah = np.concatenate([da_z, da_r, dn], axis=1)  # recurrent side
    dh_prev = dh * z + _through_u(dah @ p["U"].T, drop)
    grads = {"W": x_t.T @ dax, "U": _dropped(h_prev, drop).T @ dah, "b": dax.sum(0),
             "b_hg": dn.sum(0)}
    return dax @ p["W"].T, (dh_prev,), grads


# --------------------------------------------------------------------------
# GRU, reset gate before the matmul (Cho et al. 2014)
# --------------------------------------------------------------------------

def gru_before_step_forward(x_t, state, p, pins=None, drop=None):
    """One forward step of the GRU with the reset gate before the matmul.

    z = sigma(x_t W_z + h_{t-1} U_z + b_z), r = sigma(x_t W_r + h_{t-1} U_r + b_r),
    g = tanh(x_t W_g + b_g + (r * h_{t-1}) U_g), h_t = z * h_{t-1} + (1 - z) * g.

    Parameters
    ----------
    x_t : ndarray, shape (B, D)
        The inputs at step t.
    state : tuple of ndarray
        ``(h_prev,)``, h_prev (B, H) being h_{t-1}.
    p : dict of str to ndarray
        The parameters, keyed as ``cell.params``: ``W`` (D, G*H), ``U``
        (H, G*H), ``b`` (G*H,); G = 3, gates z, r, g.
    pins : dict of str to ndarray, optional
        Pinned gates, by name, each (H,) (the ``gates=`` of ``forward``);
        None pins none.
    drop : ndarray, shape (B, H), optional
        The recurrent dropout mask: the state enters the recurrent product
        as h_prev * drop. None: no dropout.

    Returns
    -------
    state : tuple of ndarray
        ``(h_t,)``, h_t (B, H).
    cache : tuple of ndarray
        What ``gru_before_step_backward`` needs: ``(x_t, h_prev, z, r, rh, g)``, rh = r * h_prev.
    """
    (h_prev,) = state
    U_z, U_r, U_g = _gate_blocks(p["U"], 3)
    ax_z, ax_r, ax_g = _gate_blocks(x_t @ p["W"] + p["b"], 3)
    hd = _dropped(h_prev, drop)
    z = gate(ax_z + hd @ U_z, "z", pins)
    r = gate(ax_r + hd @ U_r, "r", pins)
    rh = r * hd
    g = np.tanh(ax_g + rh @ U_g)
    h = z * h_prev + (1 - z) * g
    return (h,), (x_t, h_prev, z, r, rh, g)


def gru_before_step_backward(dstate, cache, p, pins=None, drop=None):
    """Backward of ``gru_before_step_forward``: drh = da_g @ U_g.T is the
    gradient of r * h_prev, shared between r and h_prev.

    Parameters
    ----------
    dstate : tuple of ndarray
        ``(dh,)``, dh (B, H) being dL/dh_t.
    cache : tuple of ndarray
        The cache ``gru_before_step_forward`` returned for this step.
    p : dict of str to ndarray
        The parameters, as given to ``gru_before_step_forward``.
    pins : dict of str to ndarray, optional
        The pinned gates, as given to ``gru_before_step_forward``; a pinned gate passes
        no gradient to its pre-activation.
    drop : ndarray, shape (B, H), optional
        The dropout mask, as given to ``gru_before_step_forward``.

    Returns
    -------
    dx_t : ndarray, shape (B, D)
        The gradient dL/dx_t.
    dstate_prev : tuple of ndarray
        ``(dh_prev,)``, dh_prev (B, H) being dL/dh_{t-1}.
    grads : dict of str to ndarray
        This step's share of every parameter gradient, keyed and shaped like
        ``p``.
    """
    (dh,) = dstate
    x_t, h_prev, z, r, rh, g = cache
    U_z, U_r, U_g = _gate_blocks(p["U"], 3)
    dz = dh * (h_prev - g)
    da_g = dh * (1 - z) * (1 - g**2)
    hd = _dropped(h_prev, drop)
    drh = da_g @ U_g.T  # dL/d(r * h_prev)
    dr = drh * hd
    da_z = dz * gate_slope(z, "z", pins)
    da_r = dr * gate_slope(r, "r", pins)
    da = np.concatenate([da_z, da_r, da_g], axis=1)
    dh_prev = dh * z + _through_u(drh * r + da_z @ U_z.T + da_r @ U_r.T, drop)
    dU = np.concatenate([hd.T @ da_z, hd.T @ da_r, rh.T @ da_g], axis=1)
    grads = {"W": x_t.T @ da, "U": dU, "b": da.sum(0)}
    return da @ p["W"].T, (dh_prev,), grads


# --------------------------------------------------------------------------
# MGU, the minimal gated unit: the simplified GRU whose one gate f also
# resets the state inside the candidate (a GRU with r = z = f), reset after
# the matmul (Flax's MGUCell) or before it
# --------------------------------------------------------------------------

def mgu_after_step_forward(x_t, state, p, pins=None, drop=None):
    """One forward step of the MGU with the reset after the matmul (Flax's MGUCell).

    f = sigma(x_t W_f + h_{t-1} U_f + b_f), n = h_{t-1} U_g + b_hg,
    g = tanh(x_t W_g + b_g + f * n), h_t = f * h_{t-1} + (1 - f) * g.

    Parameters
    ----------
    x_t : ndarray, shape (B, D)
        The inputs at step t.
    state : tuple of ndarray
        ``(h_prev,)``, h_prev (B, H) being h_{t-1}.
    p : dict of str to ndarray
        The parameters, keyed as ``cell.params``: ``W`` (D, G*H), ``U``
        (H, G*H), ``b`` (G*H,); G = 2, gates f, g; and ``b_hg`` (H,).
    pins : dict of str to ndarray, optional
        Pinned gates, by name, each (H,) (the ``gates=`` of ``forward``);
        None pins none.
    drop : ndarray, shape (B, H), optional
        The recurrent dropout mask: the state enters the recurrent product
        as h_prev * drop. None: no dropout.

    Returns
    -------
    state : tuple of ndarray
        ``(h_t,)``, h_t (B, H).
    cache : tuple of ndarray
        What ``mgu_after_step_backward`` needs: ``(x_t, h_prev, f, n, g)``.
    """
    (h_prev,) = state
    ax_f, ax_g = _gate_blocks(x_t @ p["W"] + p["b"], 2)
    ah_f, ah_g = _gate_blocks(_dropped(h_prev, drop) @ p["U"], 2)
    f = gate(ax_f + ah_f, "f", pins)
    n = ah_g + p["b_hg"]
    g = np.tanh(ax_g + f * n)
    h = f * h_prev + (1 - f) * g
    return (h,), (x_t, h_prev, f, n, g)


def mgu_after_step_backward(dstate, cache, p, pins=None, drop=None):
    """Backward of ``mgu_after_step_forward``.

    f reaches the loss twice, as the mix (df = dh * (h_prev - g)) and as the
    reset (df = da_g * n); the candidate's gradient has an input side (da_g)
    and a recurrent side (dn = f * da_g, for U_g and b_hg).

    Parameters
    ----------
    dstate : tuple of ndarray
        ``(dh,)``, dh (B, H) being dL/dh_t.
    cache : tuple of ndarray
        The cache ``mgu_after_step_forward`` returned for this step.
    p : dict of str to ndarray
        The parameters, as given to ``mgu_after_step_forward``.
    pins : dict of str to ndarray, optional
        The pinned gates, as given to ``mgu_after_step_forward``; a pinned gate
        passes no gradient to its pre-activation.
    drop : ndarray, shape (B, H), optional
        The dropout mask, as given to ``mgu_after_step_forward``.

    Returns
    -------
    dx_t : ndarray, shape (B, D)
        The gradient dL/dx_t.
    dstate_prev : tuple of ndarray
        ``(dh_prev,)``, dh_prev (B, H) being dL/dh_{t-1}.
    grads : dict of str to ndarray
        This step's share of every parameter gradient, keyed and shaped like
        ``p``.
    """
    (dh,) = dstate
    x_t, h_prev, f, n, g = cache
    da_g = dh * (1 - f) * (1 - g**2)  # dL/d(x W_g + b_g + f * n)
    df = dh * (h_prev - g) + da_g * n
    dn = da_g * f
    da_f = df * gate_slope(f, "f", pins)
    dax = np.concatenate([da_f, da_g], axis=1)  # input side
    dah = np.concatenate([da_f, dn], axis=1)  # recurrent side
    dh_prev = dh * f + _through_u(dah @ p["U"].T, drop)
    grads = {"W": x_t.T @ dax, "U": _dropped(h_prev, drop).T @ dah, "b": dax.sum(0),
             "b_hg": dn.sum(0)}
    return dax @ p["W"].T, (dh_prev,), grads


def mgu_before_step_forward(x_t, state, p, pins=None, drop=None):
    """One forward step of the MGU with the reset before the matmul.

    f = sigma(x_t W_f + h_{t-1} U_f + b_f),
    g = tanh(x_t W_g + b_g + (f * h_{t-1}) U_g), h_t = f * h_{t-1} + (1 - f) * g.

    Parameters
    ----------
    x_t : ndarray, shape (B, D)
        The inputs at step t.
    state : tuple of ndarray
        ``(h_prev,)``, h_prev (B, H) being h_{t-1}.
    p : dict of str to ndarray
        The parameters, keyed as ``cell.params``: ``W`` (D, G*H), ``U``
        (H, G*H), ``b`` (G*H,); G = 2, gates f, g.
    pins : dict of str to ndarray, optional
        Pinned gates, by name, each (H,) (the ``gates=`` of ``forward``);
        None pins none.
    drop : ndarray, shape (B, H), optional
        The recurrent dropout mask: the state enters the recurrent product
        as h_prev * drop. None: no dropout.

    Returns
    -------
    state : tuple of ndarray
        ``(h_t,)``, h_t (B, H).
    cache : tuple of ndarray
        What ``mgu_before_step_backward`` needs: ``(x_t, h_prev, f, fh, g)``.
    """
    (h_prev,) = state
    U_f, U_g = _gate_blocks(p["U"], 2)
    ax_f, ax_g = _gate_blocks(x_t @ p["W"] + p["b"], 2)
    hd = _dropped(h_prev, drop)
    f = gate(ax_f + hd @ U_f, "f", pins)
    fh = f * hd
    g = np.tanh(ax_g + fh @ U_g)
    h = f * h_prev + (1 - f) * g
    return (h,), (x_t, h_prev, f, fh, g)


def mgu_before_step_backward(dstate, cache, p, pins=None, drop=None):
    """Backward of ``mgu_before_step_forward``.

    dfh = da_g @ U_g.T is the gradient of f * h_prev, shared between f and
    h_prev.

    Parameters
    ----------
    dstate : tuple of ndarray
        ``(dh,)``, dh (B, H) being dL/dh_t.
    cache : tuple of ndarray
        The cache ``mgu_before_step_forward`` returned for this step.
    p : dict of str to ndarray
        The parameters, as given to ``mgu_before_step_forward``.
    pins : dict of str to ndarray, optional
        The pinned gates, as given to ``mgu_before_step_forward``; a pinned gate
        passes no gradient to its pre-activation.
    drop : ndarray, shape (B, H), optional
        The dropout mask, as given to ``mgu_before_step_forward``.

    Returns
    -------
    dx_t : ndarray, shape (B, D)
        The gradient dL/dx_t.
    dstate_prev : tuple of ndarray
        ``(dh_prev,)``, dh_prev (B, H) being dL/dh_{t-1}.
    grads : dict of str to ndarray
        This step's share of every parameter gradient, keyed and shaped like
        ``p``.
    """
    (dh,) = dstate
    x_t, h_prev, f, fh, g = cache
    U_f, U_g = _gate_blocks(p["U"], 2)
    da_g = dh * (1 - f) * (1 - g**2)
    hd = _dropped(h_prev, drop)
    dfh = da_g @ U_g.T  # dL/d(f * h_prev)
    df = dh * (h_prev - g) + dfh * hd
    da_f = df * gate_slope(f, "f", pins)
    da = np.concatenate([da_f, da_g], axis=1)
    dh_prev = dh * f + _through_u(dfh * f + da_f @ U_f.T, drop)
    dU = np.concatenate([hd.T @ da_f, fh.T @ da_g], axis=1)
    grads = {"W": x_t.T @ da, "U": dU, "b": da.sum(0)}
    return da @ p["W"].T, (dh_prev,), grads


# --------------------------------------------------------------------------
# LSTM, with optional diagonal peepholes P = [p_i; p_f; p_o]
# --------------------------------------------------------------------------

def _peepholes(p):
    return tuple(p["P"]) if "P" in p else (0.0, 0.0, 0.0)


def lstm_step_forward(x_t, state, p, pins=None, drop=None):
    """One forward step of the LSTM, with peepholes if ``p`` has ``P``.

    i = sigma(a_i + p_i * c_{t-1}), f = sigma(a_f + p_f * c_{t-1}), g = tanh(a_g),
    c_t = f * c_{t-1} + i * g, o = sigma(a_o + p_o * c_t), h_t = o * tanh(c_t),
    with [a_i, a_f, a_g, a_o] = x_t W + h_{t-1} U + b.

    Parameters
    ----------
    x_t : ndarray, shape (B, D)
        The inputs at step t.
    state : tuple of ndarray
        ``(h_prev, c_prev)``, each (B, H): h_{t-1} and c_{t-1}.
    p : dict of str to ndarray
        The parameters, keyed as ``cell.params``: ``W`` (D, G*H), ``U``
        (H, G*H), ``b`` (G*H,); G = 4, gates i, f, g, o; optionally ``P`` (3, H) = [p_i; p_f; p_o].
    pins : dict of str to ndarray, optional
        Pinned gates, by name, each (H,) (the ``gates=`` of ``forward``);
        None pins none.
    drop : ndarray, shape (B, H), optional
        The recurrent dropout mask: the state enters the recurrent product
        as h_prev * drop. None: no dropout.

    Returns
    -------
    state : tuple of ndarray
        ``(h_t, c_t)``, each (B, H).
    cache : tuple of ndarray
        What ``lstm_step_backward`` needs: ``(x_t, h_prev, c_prev, i, f, g, c, o)``.
    """
    h_prev, c_prev = state
    p_i, p_f, p_o = _peepholes(p)
    a_i, a_f, a_g, a_o = _gate_blocks(x_t @ p["W"] + _dropped(h_prev, drop) @ p["U"] + p["b"], 4)
    i = gate(a_i + p_i * c_prev, "i", pins)
    f = gate(a_f + p_f * c_prev, "f", pins)
    g = np.tanh(a_g)
    c = f * c_prev + i * g
    o = gate(a_o + p_o * c, "o", pins)
    h = o * np.tanh(c)
    return (h, c), (x_t, h_prev, c_prev, i, f, g, c, o)


def lstm_step_backward(dstate, cache, p, pins=None, drop=None):
    """Backward of ``lstm_step_forward``, given ``dstate = (dh, dc_next)``
    (dc_next is dL/dc_t from the next step).

    Parameters
    ----------
    dstate : tuple of ndarray
        ``(dh, dc_next)``, each (B, H): dL/dh_t and dL/dc_t.
    cache : tuple of ndarray
        The cache ``lstm_step_forward`` returned for this step.
    p : dict of str to ndarray
        The parameters, as given to ``lstm_step_forward``.
    pins : dict of str to ndarray, optional
        The pinned gates, as given to ``lstm_step_forward``; a pinned gate passes
        no gradient to its pre-activation.
    drop : ndarray, shape (B, H), optional
        The dropout mask, as given to ``lstm_step_forward``.

    Returns
    -------
    dx_t : ndarray, shape (B, D)
        The gradient dL/dx_t.
    dstate_prev : tuple of ndarray
        ``(dh_prev, dc_prev)``, each (B, H): dL/dh_{t-1} and dL/dc_{t-1}.
    grads : dict of str to ndarray
        This step's share of every parameter gradient, keyed and shaped like
        ``p``.
    """
    dh, dc_next = dstate
    x_t, h_prev, c_prev, i, f, g, c, o = cache
    p_i, p_f, p_o = _peepholes(p)
    tanh_c = np.tanh(c)
    da_o = dh * tanh_c * gate_slope(o, "o", pins)
    dc = dc_next + dh * o * (1 - tanh_c**2) + da_o * p_o
    da_i = dc * g * gate_slope(i, "i", pins)
    da_f = dc * c_prev * gate_slope(f, "f", pins)
    da_g = dc * i * (1 - g**2)
    dc_prev = dc * f + da_i * p_i + da_f * p_f
    da = np.concatenate([da_i, da_f, da_g, da_o], axis=1)
    grads = {"W": x_t.T @ da, "U": _dropped(h_prev, drop).T @ da, "b": da.sum(0)}
    if "P" in p:
        grads["P"] = np.stack([(da_i * c_prev).sum(0), (da_f * c_prev).sum(0), (da_o * c).sum(0)])
    return da @ p["W"].T, (_through_u(da @ p["U"].T, drop), dc_prev), grads


# --------------------------------------------------------------------------
# The LSTM with coupled input and forget gates (CIFG, Greff et al. 2017):
# i = 1 - f, gates f, g, o, optional peepholes P = [p_f; p_o]
# --------------------------------------------------------------------------

def _cifg_peepholes(p):
    return tuple(p["P"]) if "P" in p else (0.0, 0.0)


def cifg_step_forward(x_t, state, p, pins=None, drop=None):
    """One forward step of the coupled-gate LSTM, with peepholes if ``p`` has ``P``.

    f = sigma(a_f + p_f * c_{t-1}), i = 1 - f, g = tanh(a_g),
    c_t = f * c_{t-1} + i * g, o = sigma(a_o + p_o * c_t), h_t = o * tanh(c_t),
    with [a_f, a_g, a_o] = x_t W + h_{t-1} U + b.

    Parameters
    ----------
    x_t : ndarray, shape (B, D)
        The inputs at step t.
    state : tuple of ndarray
        ``(h_prev, c_prev)``, each (B, H): h_{t-1} and c_{t-1}.
    p : dict of str to ndarray
        The parameters, keyed as ``cell.params``: ``W`` (D, G*H), ``U``
        (H, G*H), ``b`` (G*H,); G = 3, gates f, g, o; optionally ``P``
        (2, H) = [p_f; p_o].
    pins : dict of str to ndarray, optional
        Pinned gates, by name, each (H,) (the ``gates=`` of ``forward``);
        None pins none. Pinning f pins the input gate to 1 - f with it.
    drop : ndarray, shape (B, H), optional
        The recurrent dropout mask: the state enters the recurrent product
        as h_prev * drop. None: no dropout.

    Returns
    -------
    state : tuple of ndarray
        ``(h_t, c_t)``, each (B, H).
    cache : tuple of ndarray
        What ``cifg_step_backward`` needs: ``(x_t, h_prev, c_prev, f, g, c, o)``.
    """
    h_prev, c_prev = state
    p_f, p_o = _cifg_peepholes(p)
    a_f, a_g, a_o = _gate_blocks(x_t @ p["W"] + _dropped(h_prev, drop) @ p["U"] + p["b"], 3)
    f = gate(a_f + p_f * c_prev, "f", pins)
    i = 1 - f  # the input gate, coupled to the forget gate
    g = np.tanh(a_g)
    c = f * c_prev + i * g
    o = gate(a_o + p_o * c, "o", pins)
    h = o * np.tanh(c)
    return (h, c), (x_t, h_prev, c_prev, f, g, c, o)


def cifg_step_backward(dstate, cache, p, pins=None, drop=None):
    """Backward of ``cifg_step_forward``, given ``dstate = (dh, dc_next)``
    (dc_next is dL/dc_t from the next step).

    f reaches c_t twice, as the forget gate (dc * c_prev) and as the input
    gate 1 - f (-dc * g): df = dc * (c_prev - g).

    Parameters
    ----------
    dstate : tuple of ndarray
        ``(dh, dc_next)``, each (B, H): dL/dh_t and dL/dc_t.
    cache : tuple of ndarray
        The cache ``cifg_step_forward`` returned for this step.
    p : dict of str to ndarray
        The parameters, as given to ``cifg_step_forward``.
    pins : dict of str to ndarray, optional
        The pinned gates, as given to ``cifg_step_forward``; a pinned gate passes
        no gradient to its pre-activation.
    drop : ndarray, shape (B, H), optional
        The dropout mask, as given to ``cifg_step_forward``.

    Returns
    -------
    dx_t : ndarray, shape (B, D)
        The gradient dL/dx_t.
    dstate_prev : tuple of ndarray
        ``(dh_prev, dc_prev)``, each (B, H): dL/dh_{t-1} and dL/dc_{t-1}.
    grads : dict of str to ndarray
        This step's share of every parameter gradient, keyed and shaped like
        ``p``.
    """
    dh, dc_next = dstate
    x_t, h_prev, c_prev, f, g, c, o = cache
    p_f, p_o = _cifg_peepholes(p)
    tanh_c = np.tanh(c)
    da_o = dh * tanh_c * gate_slope(o, "o", pins)
    dc = dc_next + dh * o * (1 - tanh_c**2) + da_o * p_o
    df = dc * (c_prev - g)
    da_f = df * gate_slope(f, "f", pins)
    da_g = dc * (1 - f) * (1 - g**2)
    dc_prev = dc * f + da_f * p_f
    da = np.concatenate([da_f, da_g, da_o], axis=1)
    grads = {"W": x_t.T @ da, "U": _dropped(h_prev, drop).T @ da, "b": da.sum(0)}
    if "P" in p:
        grads["P"] = np.stack([(da_f * c_prev).sum(0), (da_o * c).sum(0)])
    return da @ p["W"].T, (_through_u(da @ p["U"].T, drop), dc_prev), grads


# --------------------------------------------------------------------------
# minGRU (Feng et al. 2024): h_t = (1 - z) * h_{t-1} + z * g, gates from x_t
# --------------------------------------------------------------------------

def mingru_step_forward(x_t, state, p, pins=None):
    """One forward step of minGRU: no h_{t-1} in the gate or the candidate.

    z = sigma(x_t W_z + b_z), g = x_t W_g + b_g (linear),
    h_t = (1 - z) * h_{t-1} + z * g.

    Parameters
    ----------
    x_t : ndarray, shape (B, D)
        The inputs at step t.
    state : tuple of ndarray
        ``(h_prev,)``, h_prev (B, H) being h_{t-1}.
    p : dict of str to ndarray
        The parameters, keyed as ``cell.params``: ``W`` (D, G*H), ``b``
        (G*H,); G = 2, gates z, g. No ``U``.
    pins : dict of str to ndarray, optional
        Pinned gates, by name, each (H,) (the ``gates=`` of ``forward``);
        None pins none.

    Returns
    -------
    state : tuple of ndarray
        ``(h_t,)``, h_t (B, H).
    cache : tuple of ndarray
        What ``mingru_step_backward`` needs: ``(x_t, h_prev, z, g)``.
    """
    (h_prev,) = state
    a_z, a_g = _gate_blocks(x_t @ p["W"] + p["b"], 2)
    z = gate(a_z, "z", pins)
    g = a_g
    h = (1 - z) * h_prev + z * g
    return (h,), (x_t, h_prev, z, g)


def mingru_step_backward(dstate, cache, p, pins=None):
    """Backward of ``mingru_step_forward``: dz = dh * (g - h_prev), dg = dh * z,
    and the only path to h_prev, dh * (1 - z) (no product with U).

    Parameters
    ----------
    dstate : tuple of ndarray
        ``(dh,)``, dh (B, H) being dL/dh_t.
    cache : tuple of ndarray
        The cache ``mingru_step_forward`` returned for this step.
    p : dict of str to ndarray
        The parameters, as given to ``mingru_step_forward``.
    pins : dict of str to ndarray, optional
        The pinned gates, as given to ``mingru_step_forward``; a pinned gate
        passes no gradient to its pre-activation.

    Returns
    -------
    dx_t : ndarray, shape (B, D)
        The gradient dL/dx_t.
    dstate_prev : tuple of ndarray
        ``(dh_prev,)``, dh_prev (B, H) being dL/dh_{t-1}.
    grads : dict of str to ndarray
        This step's share of every parameter gradient, keyed and shaped like
        ``p``.
    """
    (dh,) = dstate
    x_t, h_prev, z, g = cache
    dz = dh * (g - h_prev)
    dg = dh * z
    da = np.concatenate([dz * gate_slope(z, "z", pins), dg], axis=1)
    grads = {"W": x_t.T @ da, "b": da.sum(0)}
    return da @ p["W"].T, (dh * (1 - z),), grads


# --------------------------------------------------------------------------
# minLSTM (Feng et al. 2024): h_t = f' * h_{t-1} + i' * g, f' + i' = 1
# --------------------------------------------------------------------------

def minlstm_step_forward(x_t, state, p, pins=None):
    """One forward step of minLSTM: gates from x_t alone, normalised.

    f = sigma(x_t W_f + b_f), i = sigma(x_t W_i + b_i), g = x_t W_g + b_g,
    f' = f / (f + i), i' = i / (f + i), h_t = f' * h_{t-1} + i' * g.

    Parameters
    ----------
    x_t : ndarray, shape (B, D)
        The inputs at step t.
    state : tuple of ndarray
        ``(h_prev,)``, h_prev (B, H) being h_{t-1}.
    p : dict of str to ndarray
        The parameters, keyed as ``cell.params``: ``W`` (D, G*H), ``b``
        (G*H,); G = 3, gates f, i, g. No ``U``.
    pins : dict of str to ndarray, optional
        Pinned gates, by name, each (H,) (the ``gates=`` of ``forward``);
        None pins none.

    Returns
    -------
    state : tuple of ndarray
        ``(h_t,)``, h_t (B, H).
    cache : tuple of ndarray
        What ``minlstm_step_backward`` needs: ``(x_t, h_prev, f, i, g)``.
    """
    (h_prev,) = state
    a_f, a_i, a_g = _gate_blocks(x_t @ p["W"] + p["b"], 3)
    f = gate(a_f, "f", pins)
    i = gate(a_i, "i", pins)
    g = a_g
    f_n, i_n = f / (f + i), i / (f + i)
    h = f_n * h_prev + i_n * g
    return (h,), (x_t, h_prev, f, i, g)


def minlstm_step_backward(dstate, cache, p, pins=None):
    """Backward of ``minlstm_step_forward``: df' = dh * h_prev, di' = dh * g,
    through the normalisation df = (df' - di') i / (f + i)^2 and
    di = (di' - df') f / (f + i)^2, dg = dh * i', and dh * f' to h_prev.

    Parameters
    ----------
    dstate : tuple of ndarray
        ``(dh,)``, dh (B, H) being dL/dh_t.
    cache : tuple of ndarray
        The cache ``minlstm_step_forward`` returned for this step.
    p : dict of str to ndarray
        The parameters, as given to ``minlstm_step_forward``.
    pins : dict of str to ndarray, optional
        The pinned gates, as given to ``minlstm_step_forward``; a pinned gate
        passes no gradient to its pre-activation.

    Returns
    -------
    dx_t : ndarray, shape (B, D)
        The gradient dL/dx_t.
    dstate_prev : tuple of ndarray
        ``(dh_prev,)``, dh_prev (B, H) being dL/dh_{t-1}.
    grads : dict of str to ndarray
        This step's share of every parameter gradient, keyed and shaped like
        ``p``.
    """
    (dh,) = dstate
    x_t, h_prev, f, i, g = cache
    s = f + i
    df_n, di_n = dh * h_prev, dh * g        # through h = f' h_prev + i' g
    df = (df_n - di_n) * i / s**2           # f' = f / s, i' = i / s
    di = (di_n - df_n) * f / s**2
    dg = dh * (i / s)
    da = np.concatenate([df * gate_slope(f, "f", pins), di * gate_slope(i, "i", pins), dg],
                        axis=1)
    grads = {"W": x_t.T @ da, "b": da.sum(0)}
    return da @ p["W"].T, (dh * (f / s),), grads


# --------------------------------------------------------------------------
# One loop over time for every cell
# --------------------------------------------------------------------------

class _ReferenceCell:
    """Replaces the compiled passes of a cell class with a NumPy loop over time.

    Past a sequence's length (``t >= lengths[b]``) the step still runs, but
    its result is dropped for that row: the state is carried, y is 0, and in
    the backward pass the row's gradient flows straight past the step.
    """

    def _steps(self):
        # The step functions of this cell's kind (pyx_gru._kinds: Kind.step)
        step = self._description.step
        return globals()[f"{step}_step_forward"], globals()[f"{step}_step_backward"]

    # the steps keep the states they are given in their caches
    _fresh_state0 = True

    def _forward(self, x, h0, c0, lengths, p, pins, cache=True, reg=None):
        step_forward, _ = self._steps()
        T, B, _ = x.shape
        drop = None if reg is None else reg.drop
        kw = {} if drop is None else {"drop": drop}   # (a step may predate the keyword)
        state = (h0,) if c0 is None else (h0, c0)
        y = np.zeros((T, B, self.hidden_size), dtype=self.dtype)
        steps = []
        for t in range(T):
            new_state, step_cache = step_forward(x[t], state, p, pins, **kw)
            new_state = self._zone(reg, t, state, new_state)
            on = _active(t, lengths, B)
            state = tuple(np.where(on, new, old) for new, old in zip(new_state, state, strict=True))
            y[t] = np.where(on, new_state[0], 0)
            if cache:
                steps.append(step_cache)
        extras = {} if reg is None else {"regularisation": reg}
        saved = Cache(self, p, x=x, lengths=lengths, pins=pins, steps=steps,
                      **extras) if cache else None
        return y, state[0], (state[1] if c0 is not None else None), saved

    def _backward(self, cache, dy, dh, dc, p, pins, reg=None):
        _, step_backward = self._steps()
        T, B, _ = cache.x.shape
        drop = None if reg is None else reg.drop
        kw = {} if drop is None else {"drop": drop}
        dstate = (dh,) if dc is None else (dh, dc)
        grads = {k: np.zeros_like(v) for k, v in p.items()}
        dx = np.zeros(cache.x.shape, dtype=self.dtype)
        for t in reversed(range(T)):
            on = _active(t, cache.lengths, B)
            dstate = (dstate[0] + np.where(on, dy[t], 0),) + dstate[1:]
            d_new = tuple(np.where(on, d, 0) for d in dstate)
            # zoneout: the kept units' gradient goes straight to the previous state
            d_new, d_kept = self._zone_backward(reg, t, d_new)
            dx[t], d_prev, step_grads = step_backward(d_new, cache.steps[t], p, pins, **kw)
            d_prev = tuple(d + k for d, k in zip(d_prev, d_kept, strict=True))
            for k in grads:
                grads[k] += step_grads[k]
            dstate = tuple(np.where(on, dp, d) for dp, d in zip(d_prev, dstate, strict=True))
        return dx, dstate[0], (dstate[1] if dc is not None else None), grads

    def _zone(self, reg, t, old, new):
        """The state after zoneout: each part (h, then c) keeps its old value
        where the mask d is 1 (training), or p old + (1 - p) new (evaluation)."""
        if reg is None or not reg.zoneout:
            return new
        out = []
        rates = (reg.zone_h, reg.zone_c)[:len(new)]
        for part, (o, n, rate) in enumerate(zip(old, new, rates, strict=True)):
            if rate == 0:
                out.append(n)
            elif reg.zoneout == _cells.ZONE_TRAIN:
                out.append(np.where(zoneout_mask(reg.key, t, *n.shape, part, rate), o, n))
            else:
                p = self.dtype.type(rate)
                out.append(p * o + (self.dtype.type(1) - p) * n)
        return tuple(out)

    def _zone_backward(self, reg, t, d):
        """Split dL/d(zoned state) into the step's part and the part that
        skips the step (the backward of ``_zone``), each a tuple like d."""
        if reg is None or not reg.zoneout:
            return d, tuple(np.zeros_like(g) for g in d)
        step, kept = [], []
        rates = (reg.zone_h, reg.zone_c)[:len(d)]
        for part, (g, rate) in enumerate(zip(d, rates, strict=True)):
            if rate == 0:
                step.append(g)
                kept.append(np.zeros_like(g))
            elif reg.zoneout == _cells.ZONE_TRAIN:
                keep = zoneout_mask(reg.key, t, *g.shape, part, rate)
                step.append(np.where(keep, 0, g))
                kept.append(np.where(keep, g, 0))
            else:
                p = self.dtype.type(rate)
                step.append((self.dtype.type(1) - p) * g)
                kept.append(p * g)
        return tuple(step), tuple(kept)


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def zoneout_mask(key, t, B, H, part, rate):
    """The zoneout mask of step t, as the kernels draw it: True where a unit
    keeps its previous value.

    Row b's stream is r = splitmix64(key, n), the n-th output of the
    SplitMix64 generator seeded with ``key``, n = 2 (t B + b) + part; unit
    j's draw is u = lowbias32((lo + j * 0x9E3779B9) ^ hi) (mod 2**32), lo and
    hi the low and high halves of r; d[b, j] = u < rate * 2**32. In uint64
    and uint32 arithmetic: the same bits as the compiled cells' masks.

    Parameters
    ----------
    key : int
        The pass's key, in [0, 2**64) (``cache.regularisation.key``).
    t : int
        The step.
    B, H : int
        The batch and hidden sizes.
    part : {0, 1}
        The state part: 0 for h, 1 for the LSTM's c.
    rate : float
        The zoneout rate p, in [0, 1).

    Returns
    -------
    ndarray of bool, shape (B, H)
        The mask d, True with probability ``rate``.
    """
    n = (np.uint64(t) * np.uint64(B) + np.arange(B, dtype=np.uint64)) * np.uint64(2) + np.uint64(part)
    return _draws(key, n, H) < np.uint32(int(rate * 2.0**32))


def dropout_mask(key, B, H, rate, dtype=np.float64):
    """Recurrent dropout's mask of a training pass, as the kernels draw it:
    0 where a unit is dropped, else 1 / (1 - rate).

    Row b's stream is r = splitmix64(key ^ 0xD1B54A32D192ED03, b) (a stream
    apart from zoneout's), unit j's draw u as in ``zoneout_mask``, and
    m[b, j] = 0 where u < rate * 2**32.

    Parameters
    ----------
    key : int
        The pass's key, in [0, 2**64) (``cache.regularisation.key``).
    B, H : int
        The batch and hidden sizes.
    rate : float
        The dropout rate p, in [0, 1).
    dtype : numpy dtype, default numpy.float64
        The mask's dtype (the cell's).

    Returns
    -------
    ndarray, shape (B, H)
        The mask m, the same bits as ``cache.regularisation.drop``.
    """
    u = _draws(int(key) ^ _DROP_SALT, np.arange(B, dtype=np.uint64), H)
    return np.where(u < np.uint32(int(rate * 2.0**32)), 0.0, 1.0 / (1.0 - rate)).astype(dtype)


def pass_key(seed):
    """The key of a training pass seeded with an int in [0, 2**64), as the
    cells derive it: splitmix64(seed, 0), the first output of SplitMix64
    seeded with it.

    Parameters
    ----------
    seed : int
        The ``seed`` of ``forward(..., training=True, seed=seed)``.

    Returns
    -------
    int
        The key, in [0, 2**64) (``cache.regularisation.key``).
    """
    return int(_splitmix64(seed, np.zeros(1, dtype=np.uint64))[0])


_DROP_SALT = 0xD1B54A32D192ED03


def _splitmix64(key, n):
    # The n-th outputs of SplitMix64 seeded with key (uint64 array n)
    with np.errstate(over="ignore"):
        z = np.uint64(key) + (n + np.uint64(1)) * _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        return z ^ (z >> np.uint64(31))


def _draws(key, n, H):
    # (len(n), H) uint32: unit j's draw from stream splitmix64(key, n[b])
    z = _splitmix64(key, n)
    lo = (z & np.uint64(0xFFFFFFFF)).astype(np.uint32)[:, None]
    hi = (z >> np.uint64(32)).astype(np.uint32)[:, None]
    with np.errstate(over="ignore"):
        x = (lo + np.arange(H, dtype=np.uint32) * np.uint32(0x9E3779B9)) ^ hi
        x = (x ^ (x >> np.uint32(16))) * np.uint32(0x7FEB352D)
        x = (x ^ (x >> np.uint32(15))) * np.uint32(0x846CA68B)
        return x ^ (x >> np.uint32(16))


def _active(t, lengths, B):
    """(B, 1) bool: which rows are still inside their sequence at step t."""
    if lengths is None:
        return np.ones((B, 1), dtype=bool)
    return (t < lengths)[:, None]


class RNN(_ReferenceCell, _cells.RNN):
    __doc__ = "NumPy reference. " + _cells.RNN.__doc__


class SimpleGRU(_ReferenceCell, _cells.SimpleGRU):
    __doc__ = "NumPy reference. " + _cells.SimpleGRU.__doc__


class GRU(_ReferenceCell, _cells.GRU):
    __doc__ = "NumPy reference. " + _cells.GRU.__doc__


class MGU(_ReferenceCell, _cells.MGU):
    __doc__ = "NumPy reference. " + _cells.MGU.__doc__


class LSTM(_ReferenceCell, _cells.LSTM):
    __doc__ = "NumPy reference. " + _cells.LSTM.__doc__


class CoupledLSTM(_ReferenceCell, _cells.CoupledLSTM):
    __doc__ = "NumPy reference. " + _cells.CoupledLSTM.__doc__


class MinGRU(_ReferenceCell, _cells.MinGRU):
    __doc__ = "NumPy reference. " + _cells.MinGRU.__doc__


class MinLSTM(_ReferenceCell, _cells.MinLSTM):
    __doc__ = "NumPy reference. " + _cells.MinLSTM.__doc__


# compiled class -> its reference twin, for every cell kind (the twin has
# the compiled class's name)
_TWINS = {k.cell_class: globals()[k.cls] for k in _kinds.KINDS.values()}


def from_cell(cell):
    """The NumPy reference twin of ``cell``: same class, config, dtype, and a
    copy of its parameters.

    Parameters
    ----------
    cell : RNN, SimpleGRU, GRU, MGU, LSTM, CoupledLSTM, MinGRU or MinLSTM
        A compiled pyx_gru cell.

    Returns
    -------
    RNN, SimpleGRU, GRU, MGU, LSTM, CoupledLSTM, MinGRU or MinLSTM
        The cell of ``pyx_gru.reference`` of the same class, whose forward
        and backward passes run the step functions above in a loop over time.

    Examples
    --------
    >>> import pyx_gru
    >>> ref = pyx_gru.reference.from_cell(pyx_gru.GRU(3, 4, seed=0))
    """
    for compiled, ref in _TWINS.items():
        if isinstance(cell, compiled):
            twin = ref(**cell.config, dtype=cell.dtype, seed=0)
            twin.params = cell.params
            return twin
    raise TypeError(f"from_cell needs a pyx_gru cell, got {type(cell).__name__}")
