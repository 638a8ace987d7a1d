"""Gradient flow and gate saturation, exact, from the compiled passes.

Steps are numbered as in the cells: h_0 is the initial state and h_t the
state after reading ``x[t - 1]``, so a sequence of length L has states
h_0 .. h_L (``cache.hs[t]``), and "a loss at the last step" is a loss
L(h_L) of the final state alone.

How the exact values come out of the compiled backward pass
-----------------------------------------------------------
``cell.backward`` returns only dL/d(initial state). But the state h_t of
a forward pass, used as the initial state of the rest of the sequence,
determines everything after it: running the cell from ``state0 = h_t`` over
``x[t:L]`` gives the same h_L (the same computation, up to the rounding of
the batched matrix products), so that run's ``dstate0`` is dL/dh_t. One
batch holds every suffix: row (b, t) reads ``x[t:L_b, b]`` (length L_b - t,
padded), starts from ``hs[t, b]`` (for the LSTM, ``(hs[t, b], cs[t, b])``)
and gets ``dstate = dL/dh_{L_b}``; one compiled forward and backward pass
over that batch (in chunks of rows when memory asks for it) gives dL/dh_t
for every t at once, in O(T^2) work and no per-step Python. With
``dstate = e_i`` instead, ``dstate0`` is row i of the Jacobian
dh_L/dh_t, so H rows per t give the whole matrix.

The LSTM's state is (h, c). Its ``dstate0`` is (dL/dh_t, dL/dc_t), each
with the other part of the state held fixed. ``state_gradients`` returns
both. ``state_jacobians(..., state="h")`` gives dh_L/dh_t with c_t held
fixed (the block that maps a loss on h_L back to h_t);
``state="full"`` gives the Jacobian of the whole state,
d(h_L, c_L)/d(h_t, c_t), (2H, 2H), the one that composes along the chain
(J_{L,s} J_{s,t} = J_{L,t}) and that carries memory through c.

Gate statistics read the gate activations that the compiled forward pass
caches (``cache.gates``), over the steps within each sequence's length.

Gradient flow at initialisation: ``flow_curve`` is ||dL/dh_t|| over t for a
loss at the last step, ``decay_rate`` the per-step factor of a geometric fit
to it, and ``rnn_rate_predictions`` what U's singular values and tanh's
slopes predict for a tanh RNN's factor (docs/results/gradient_flow.py runs
them; measured rates in docs/results/README.md).
"""
import numpy as np

from ._cells import RNN, Cache, Cell
from ._validation import check_real, check_rng, check_size, float_array, lengths_array

__all__ = [
    "state_gradients",
    "gradient_norms",
    "model_state_gradients",
    "state_jacobians",
    "singular_values",
    "gate_statistics",
    "SIGMOID_SATURATION",
    "TANH_SATURATION",
    "flow_curve",
    "decay_rate",
    "rnn_rate_predictions",
]

#: (low, high): a sigmoid gate ``s`` is saturated below ``low`` or above
#: ``high`` (its slope ``s (1 - s)`` is then below 0.0475, under a fifth of
#: its maximum 0.25); the default of ``gate_statistics``.
SIGMOID_SATURATION = (0.05, 0.95)
#: The tanh candidate ``g`` is saturated when ``abs(g)`` exceeds this (slope
#: ``1 - g**2 < 0.0975``); the default of ``gate_statistics``.
TANH_SATURATION = 0.95

# Memory for one chunk of suffix rows (inputs and cache), in bytes.
_CHUNK_BYTES = 1 << 27


def _check_cell(cell):
    if not isinstance(cell, Cell):
        raise TypeError(f"cell must be a pyx_gru cell, got {type(cell).__name__}")
    from . import reference

    if isinstance(cell, (reference.RNN, reference.SimpleGRU, reference.GRU, reference.LSTM)):
        raise TypeError("cell must be a compiled cell: the NumPy reference cells do not cache "
                        "the states the diagnostics start from")


def _dstate_parts(cell, dstate, B):
    """dL/dh_final (B, H) and, for the LSTM, dL/dc_final (B, H) or None."""
    H, dt = cell.hidden_size, cell.dtype
    if cell._lstm and isinstance(dstate, tuple):
        if len(dstate) != 2:
            raise TypeError("dstate of an LSTM must be an array (B, H) or a tuple (dh, dc)")
        dh, dc = dstate
        dc = None if dc is None else float_array("dstate[1] (c)", dc, (B, H), dt)
        return float_array("dstate[0] (h)", dh, (B, H), dt), dc
    if isinstance(dstate, tuple):
        raise TypeError(f"dstate of a {type(cell).__name__} is one ({B}, {H}) array, not a tuple")
    return float_array("dstate", dstate, (B, H), dt), None


def _forward(cell, x, state0, lengths, gates):
    x = float_array("x", x, ("T", "B", cell.input_size), cell.dtype)
    T, B = x.shape[:2]
    if lengths is not None:
        lengths = lengths_array(lengths, T, B)
    _, _, cache = cell.forward(x, state0, lengths, gates=gates)
    full = np.full(B, T, dtype=np.intp) if lengths is None else lengths
    return x, full, cache


def _suffix_backward(cell, x, cache, rows_b, rows_t, full, dh, dc, gates, max_rows):
    """dstate0 of the suffix runs: for row r, the cell runs over
    x[rows_t[r]:full[rows_b[r]], rows_b[r]] from the cached state at step
    rows_t[r], with dstate (dh[r], dc[r]). Returns dh0 (R, H) and, for the
    LSTM, dc0 (R, H)."""
    T, _, D = x.shape
    H, G = cell.hidden_size, len(cell.gates)
    R = rows_b.size
    span = full[rows_b] - rows_t  # suffix lengths
    if max_rows is None:
        per_row = max(T, 1) * (D + (G + 3) * H) * cell.dtype.itemsize
        max_rows = max(1, _CHUNK_BYTES // per_row)
    dh0 = np.empty((R, H), dtype=cell.dtype)
    dc0 = np.empty((R, H), dtype=cell.dtype) if cell._lstm else None
    for lo in range(0, R, max_rows):
        sl = slice(lo, min(lo + max_rows, R))
        b, t, n = rows_b[sl], rows_t[sl], span[sl]
        Tc = int(n.max())
        steps = np.minimum(t[None, :] + np.arange(Tc)[:, None], max(T - 1, 0))
        xs = x[steps, b[None, :]] if T else np.zeros((0, b.size, D), dtype=cell.dtype)
        h0 = cache.hs[t, b]
        state0 = (h0, cache.cs[t, b]) if cell._lstm else h0
        _, _, sub = cell.forward(xs, state0, n, gates=gates)
        dstate = (dh[sl], None if dc is None else dc[sl]) if cell._lstm else dh[sl]
        _, d0, _ = cell.backward(sub, None, dstate)
        if cell._lstm:
            dh0[sl], dc0[sl] = d0
        else:
            dh0[sl] = d0
    return dh0, dc0


def _check_max_rows(max_rows):
    return None if max_rows is None else check_size("max_rows", max_rows)


def state_gradients(cell, x, dstate, *, state0=None, lengths=None, gates=None, max_rows=None):
    """The exact gradient dL/dh_t at every step t for a loss at the last step.

    Parameters
    ----------
    cell : pyx_gru.Cell
        A compiled cell.
    x : array_like, shape (T, B, D)
        Inputs, time-major.
    dstate : array_like (B, H), or for the LSTM a tuple (dh, dc)
        The gradient dL/d(final state): the gradient of the loss at each sequence's last
        step (an LSTM's dc may be None, or dstate a plain (B, H) array: zero
        dL/dc).
    state0 : array_like (B, H) or tuple, optional
        The initial state (zeros when None).
    lengths : array_like of int, shape (B,), optional
        Sequence b ends at step lengths[b].
    gates : dict, optional
        Pinned gates, as in ``cell.forward``.
    max_rows : int, optional
        Suffix rows per compiled call (default: as many as fit in 128 MB).

    Returns
    -------
    dh : ndarray, shape (T + 1, B, H)
        ``dh[t, b]`` = dL/dh_t of sequence b (``dh[lengths[b], b]`` is
        ``dstate``), NaN for t > lengths[b].
    dc : ndarray, shape (T + 1, B, H)
        LSTM only (then the result is the tuple ``(dh, dc)``): dL/dc_t, each
        of dh and dc with the other part of the state held fixed.
    """
    _check_cell(cell)
    x, full, cache = _forward(cell, x, state0, lengths, gates)
    T, B = x.shape[:2]
    dh, dc = _dstate_parts(cell, dstate, B)
    # one row per (b, t), t = 0 .. lengths[b]
    rows_b = np.repeat(np.arange(B), full + 1)
    rows_t = np.concatenate([np.arange(n + 1) for n in full]) if B else np.zeros(0, np.intp)
    dh0, dc0 = _suffix_backward(
        cell, x, cache, rows_b, rows_t, full, dh[rows_b],
        None if dc is None else dc[rows_b], gates, _check_max_rows(max_rows))
    out_h = np.full((T + 1, B, cell.hidden_size), np.nan, dtype=cell.dtype)
    out_h[rows_t, rows_b] = dh0
    if not cell._lstm:
        return out_h
    out_c = np.full_like(out_h, np.nan)
    out_c[rows_t, rows_b] = dc0
    return out_h, out_c


def gradient_norms(cell, x, dstate, **kwargs):
    """||dL/dh_t|| (Euclidean, over the H units) at every step t.

    Parameters
    ----------
    cell : pyx_gru.Cell
        A compiled cell.
    x : array_like, shape (T, B, D)
        Inputs, time-major.
    dstate : array_like (B, H), or for the LSTM a tuple (dh, dc)
        The gradient dL/d(final state), as in ``state_gradients``.
    **kwargs
        ``state0``, ``lengths``, ``gates``, ``max_rows``: as in
        ``state_gradients``.

    Returns
    -------
    ndarray, shape (T + 1, B)
        NaN for t > lengths[b]. For the LSTM, the norm of dL/dh_t with c_t
        held fixed (see the module docstring).
    """
    dh = state_gradients(cell, x, dstate, **kwargs)
    dh = dh[0] if isinstance(dh, tuple) else dh
    return np.linalg.norm(dh, axis=-1)


def model_state_gradients(model, x, y, *, lengths=None, loss=None):
    """The gradient dL/dh_t of a one-layer model's cell for its loss on the last step.

    Runs the model, takes dL/d(out) from the loss and through the readout
    dL/dh_L, and calls ``state_gradients`` on the model's cell.

    Parameters
    ----------
    model : pyx_gru.layers.Model
        One unidirectional layer, ``readout="last"``.
    x : array_like, shape (T, B, D)
        Inputs, time-major.
    y : array_like
        Targets, (B, K) float or (B,) int (see ``pyx_gru.losses``).
    lengths : array_like of int, shape (B,), optional
        Sequence b ends at step lengths[b]; None means all T.
    loss : {"mse", "softmax", "sigmoid"}, optional
        None: "softmax" for integer y, else "mse".

    Returns
    -------
    dh : ndarray, shape (T + 1, B, H)
        The gradient dL/dh_t, as ``state_gradients`` returns it (NaN for
        t > lengths[b]).
    dc : ndarray, shape (T + 1, B, H)
        LSTM only (then the result is the tuple ``(dh, dc)``): the gradient
        dL/dc_t.
    """
    from . import losses
    from .layers import Model, Recurrent

    if not isinstance(model, Model):
        raise TypeError(f"model must be a pyx_gru.layers.Model, got {type(model).__name__}")
    layers = model.rnn.layers
    if model.readout != "last" or len(layers) != 1 or not isinstance(layers[0], Recurrent):
        raise ValueError("model_state_gradients needs one unidirectional layer and readout 'last'")
    if loss is None:
        loss = "softmax" if np.asarray(y).dtype.kind in "iu" else "mse"
    out, cache = model.forward(x, lengths)
    _, dout = losses.get_loss(loss)(out, y)
    dh_last, _ = model.head.backward(cache.head, dout)
    return state_gradients(layers[0].cell, x, dh_last, lengths=lengths)


def state_jacobians(cell, x, *, state0=None, lengths=None, state="h", gates=None, max_rows=None):
    """The Jacobians of the final state with respect to every earlier state.

    Parameters
    ----------
    cell : pyx_gru.Cell
        A compiled cell.
    x : array_like, shape (T, B, D)
        Inputs, time-major.
    state0 : array_like (B, H) or tuple, optional
        The initial state (zeros when None).
    lengths : array_like of int, shape (B,), optional
        Sequence b ends at step L = lengths[b]; None means all T.
    state : {"h", "full"}
        For the LSTM: ``"h"`` gives dh_L/dh_t with c_t held fixed (H, H);
        ``"full"`` the Jacobian of the whole state (h, c), (2H, 2H), blocks
        [[dh_L/dh_t, dh_L/dc_t], [dc_L/dh_t, dc_L/dc_t]]. The same for the
        other cells (their state is h).
    gates : dict, optional
        Pinned gates, as in ``cell.forward``.
    max_rows : int, optional
        Rows per compiled call, as in ``state_gradients``.

    Returns
    -------
    ndarray, shape (B, T + 1, n, n)
        ``J[b, t, i, j]`` = d(state_L)_i / d(state_t)_j for sequence b of
        length L = lengths[b] (``J[b, L]`` is the identity); NaN for t > L.
        n = H, or 2H for the LSTM with ``state="full"``.
    """
    _check_cell(cell)
    if state not in ("h", "full"):
        raise ValueError(f'state must be "h" or "full", got {state!r}')
    x, full, cache = _forward(cell, x, state0, lengths, gates)
    T, B = x.shape[:2]
    H = cell.hidden_size
    both = cell._lstm and state == "full"
    n = 2 * H if both else H
    # one row per (b, t, i): t = 0 .. lengths[b], i = 0 .. n - 1
    per_b = (full + 1) * n
    rows_b = np.repeat(np.arange(B), per_b)
    rows_t = np.concatenate([np.repeat(np.arange(L + 1), n) for L in full]) if B else np.zeros(0, np.intp)
    rows_i = np.concatenate([np.tile(np.arange(n), L + 1) for L in full]) if B else np.zeros(0, np.intp)
    R = rows_b.size
    dh = np.zeros((R, H), dtype=cell.dtype)
    dc = np.zeros((R, H), dtype=cell.dtype) if cell._lstm else None
    on_h = rows_i < H
    dh[np.flatnonzero(on_h), rows_i[on_h]] = 1
    if both:
        dc[np.flatnonzero(~on_h), rows_i[~on_h] - H] = 1
    dh0, dc0 = _suffix_backward(cell, x, cache, rows_b, rows_t, full, dh, dc, gates,
                                _check_max_rows(max_rows))
    rows = np.concatenate([dh0, dc0], axis=1) if both else dh0
    J = np.full((B, T + 1, n, n), np.nan, dtype=cell.dtype)
    J[rows_b, rows_t, rows_i] = rows
    return J


def singular_values(J):
    """Singular values of a stack of Jacobians, largest first.

    Parameters
    ----------
    J : array_like, shape (..., n, n)
        E.g. from ``state_jacobians``; matrices holding NaN give NaN.

    Returns
    -------
    ndarray, shape (..., n)
        ``[..., 0]`` is the spectral norm ||J||_2.
    """
    J = np.asarray(J)
    if J.ndim < 2:
        raise ValueError(f"J must have shape (..., n, m), got {J.shape}")
    k = min(J.shape[-2:])
    out = np.full(J.shape[:-2] + (k,), np.nan, dtype=np.result_type(J.dtype, np.float32))
    ok = np.all(np.isfinite(J), axis=(-2, -1))
    if np.any(ok):
        out[ok] = np.linalg.svd(J[ok], compute_uv=False)
    return out


def gate_statistics(cache, *, sigmoid_saturation=SIGMOID_SATURATION, tanh_saturation=TANH_SATURATION):
    """Mean and saturation of every gate at every step, from a forward cache.

    A sigmoid gate s counts as saturated low when s < sigmoid_saturation[0]
    and high when s > sigmoid_saturation[1] (defaults 0.05 and 0.95: the
    slope s (1 - s) is then below 0.0475, a fifth of its maximum); the tanh
    candidate g when g < -tanh_saturation or g > tanh_saturation (default
    0.95: slope 1 - g^2 < 0.0975). Averages run over the units and over the
    sequences still within their length at that step. A pinned gate reports
    its pinned values.

    Parameters
    ----------
    cache : pyx_gru.Cache
        From a compiled cell's ``forward`` (the NumPy reference cells do not
        cache gate activations).
    sigmoid_saturation : (float, float)
        The (low, high) thresholds of a saturated sigmoid gate, with
        0 <= low < high <= 1.
    tanh_saturation : float
        The threshold of a saturated candidate g, in [0, 1].

    Returns
    -------
    dict of str to dict of str to ndarray
        For each gate name of ``cell.gates``: ``"mean"``, ``"low"``,
        ``"high"`` and ``"saturated"`` (low or high), each of shape (T,):
        the mean activation and the fractions saturated low, high and
        either; NaN at steps where no sequence is active.
    """
    if not isinstance(cache, Cache) or not isinstance(getattr(cache, "gates", None), np.ndarray):
        raise TypeError("cache must be the Cache of a compiled cell's forward (it holds the gates)")
    if not isinstance(sigmoid_saturation, (tuple, list)) or len(sigmoid_saturation) != 2:
        raise TypeError(f"sigmoid_saturation must be a pair (low, high), got {sigmoid_saturation!r}")
    lo, hi = (check_real("sigmoid_saturation", v) for v in sigmoid_saturation)
    if not 0 <= lo < hi <= 1:
        raise ValueError(f"sigmoid_saturation must be (low, high) with 0 <= low < high <= 1, got {sigmoid_saturation}")
    th = check_real("tanh_saturation", tanh_saturation)
    if not 0 <= th <= 1:
        raise ValueError(f"tanh_saturation must lie in [0, 1], got {tanh_saturation}")
    cell = cache.cell
    H = cell.hidden_size
    T, B = cache.gates.shape[:2]
    if cache.lengths is None:
        active = np.ones((T, B), dtype=bool)
    else:
        active = np.arange(T)[:, None] < cache.lengths[None, :]
    n = active.sum(axis=1) * H  # entries per step
    with np.errstate(invalid="ignore", divide="ignore"):
        stats = {}
        for k, name in enumerate(cell.gates):
            a = cache.gates[:, :, k * H:(k + 1) * H].astype(np.float64)
            low, high = (-th, th) if name == "g" else (lo, hi)
            w = active[:, :, None]

            def frac(m, w=w):
                return np.sum(m & w, axis=(1, 2)) / n

            stats[name] = {"mean": np.sum(np.where(w, a, 0.0), axis=(1, 2)) / n,
                           "low": frac(a < low), "high": frac(a > high),
                           "saturated": frac((a < low) | (a > high))}
    return stats


# ---------------------------------------------------------------------------
# Gradient flow at initialisation
# ---------------------------------------------------------------------------

def flow_curve(cell, x, *, seed=0):
    """||dL/dh_t|| for a loss at the last step, as one curve over t.

    dL/dh_T is a random unit vector per sequence (seeded); the curve is the
    geometric mean over the B sequences of ``gradient_norms``
    (exact, from the compiled backward pass).

    Parameters
    ----------
    cell : pyx_gru.Cell
        A compiled cell.
    x : array_like, shape (T, B, D)
        Inputs, time-major.
    seed : int
        Seeds the directions of dL/dh_T.

    Returns
    -------
    ndarray, shape (T + 1,)
        ``curve[t]`` for t = 0 .. T (``curve[T]`` = 1).
    """
    if not isinstance(cell, Cell):
        raise TypeError(f"cell must be a pyx_gru cell (pyx_gru.GRU, ...), got {type(cell).__name__}")
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"x must have shape (T, B, D), got {x.shape}")
    d = check_rng("seed", seed).standard_normal((x.shape[1], cell.hidden_size))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    norms = gradient_norms(cell, x, d)
    return np.exp(np.mean(np.log(norms), axis=1))


def decay_rate(curve, *, start=0, stop=None):
    """The per-step factor of a geometric fit to a gradient-norm curve.

    Fits ``log curve[t] = a + (T - t) log(rho)`` by least squares over
    ``start <= t < stop``: rho < 1 means ||dL/dh_t|| shrinks by rho per step
    back in time; rho^100 is what is left after 100 steps.

    Parameters
    ----------
    curve : array_like, shape (T + 1,)
        Positive, e.g. ``flow_curve``'s.
    start, stop : int
        The steps fitted (stop None: T + 1).

    Returns
    -------
    float
        The fitted factor rho.
    """
    curve = np.asarray(curve, dtype=np.float64)
    t = np.arange(curve.size)[start:stop]
    if t.size < 2:
        raise ValueError(f"decay_rate needs at least 2 steps in [start, stop), got {t.size}")
    y = curve[start:stop]
    if not np.all(np.isfinite(y) & (y > 0)):
        raise ValueError("curve must be positive and finite over the fitted steps")
    slope = np.polyfit(curve.size - 1 - t, np.log(y), 1)[0]
    return float(np.exp(slope))


def rnn_rate_predictions(cell, x, *, start=0, stop=None):
    """What the recurrent matrix and tanh's slopes predict for a tanh RNN's decay rate.

    Back through one step, dL/dh_{t-1} = (dL/dh_t * s_t) U^T with s_t =
    1 - h_t^2, tanh's slope. Hence ||dL/dh_{t-1}|| <= sigma_max(U) max(s_t)
    ||dL/dh_t|| (Pascanu et al. 2013: gradients vanish when sigma_max < 1 /
    max tanh' = 1). When every singular value of U equals sigma_max (the
    default orthogonal initialisation, and any multiple of it), the factor
    is exactly sigma_max ||dL/dh_t * s_t|| / ||dL/dh_t||, which is about
    sigma_max times the root mean square of s_t over the units when the
    gradient is spread over them.

    Parameters
    ----------
    cell : pyx_gru.RNN
        A compiled tanh RNN.
    x : array_like, shape (T, B, D)
        Inputs, time-major.
    start, stop : int
        The window of ``decay_rate``: the slopes s_t of the steps between
        its points, t = start + 1 .. stop - 1 (stop None: T + 1), are
        averaged.

    Returns
    -------
    dict
        ``sigma_max`` (of U), ``mean_slope`` (the mean of tanh'), ``rms_slope`` (the
        geometric mean over steps and sequences of the root mean square over
        the units), ``max_slope``, and the per-step rates ``mean`` =
        sigma_max mean_slope, ``rms`` = sigma_max rms_slope, ``bound`` =
        sigma_max max_slope, plus ``radius``, U's spectral radius (the rate
        over many steps when U is far from orthogonal and tanh' is near 1).
    """
    if not isinstance(cell, RNN):
        raise TypeError(f"cell must be a pyx_gru.RNN, got {type(cell).__name__}")
    _, _, cache = cell.forward(x)
    slopes = 1.0 - np.asarray(cache.hs, dtype=np.float64) ** 2  # (T + 1, B, H), t = 0 .. T
    slopes = slopes[start + 1:stop]
    if slopes.shape[0] < 1:
        raise ValueError("no steps in [start, stop)")
    U = np.asarray(cell.params["U"], dtype=np.float64)
    sigma = float(np.linalg.svd(U, compute_uv=False)[0])
    rms = float(np.exp(np.mean(np.log(np.sqrt(np.mean(slopes ** 2, axis=-1))))))
    mean, top = float(slopes.mean()), float(slopes.max())
    return {"sigma_max": sigma, "radius": float(np.abs(np.linalg.eigvals(U)).max()),
            "mean_slope": mean, "rms_slope": rms, "max_slope": top,
            "mean": sigma * mean, "rms": sigma * rms, "bound": sigma * top}
