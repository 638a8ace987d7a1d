"""Check a cell's backward pass against centered finite differences."""
import numpy as np

from ._limits import backward_bytes, check_fits, forward_bytes
from ._cells import Cell
from ._validation import check_rng, check_size

__all__ = ["gradcheck", "gradcheck_layer", "finite_difference_errors"]


# Below this fraction of the loss's magnitude, a gradient is compared in
# absolute terms. Central differences with step eps carry a rounding error of
# about 1e-16 * |L| / eps ~ 1e-10 |L|; relative to a gradient much smaller
# than |L| that noise alone would look like an error.
FLOOR = 1e-3


def _relative_error(analytic, numeric, floor=0.0):
    """max |a - n| / max(max |a|, max |n|, floor); 0 when all are zero."""
    scale = max(np.max(np.abs(analytic), initial=0.0), np.max(np.abs(numeric), initial=0.0), floor)
    if scale == 0.0:
        return 0.0
    return float(np.max(np.abs(analytic - numeric)) / scale)


def finite_difference_errors(loss, checks, *, eps=1e-6, floor=0.0, max_entries=None, rng=None):
    """Relative errors of analytic gradients against centered finite differences.

    Parameters
    ----------
    loss : callable
        ``loss()`` returns the scalar loss for the current values of the arrays.
    checks : iterable of (str, ndarray, ndarray)
        ``(name, array, analytic)``: ``array`` is perturbed in place (so
        ``loss`` must read it), ``analytic`` is dL/d(array), same shape.
    eps : float
        The finite-difference step.
    floor : float
        Gradients are compared relative to at least this scale (see
        ``gradcheck``).
    max_entries : int, optional
        Check at most this many randomly chosen entries of each array.
    rng : numpy.random.Generator, optional
        Chooses the entries when ``max_entries`` is set.

    Returns
    -------
    dict of str to float
        max|analytic - numeric| / max(max|analytic|, max|numeric|, floor),
        by name.
    """
    rng = check_rng("rng", rng)
    errors = {}
    for name, array, analytic in checks:
        if np.shape(analytic) != array.shape:
            raise ValueError(
                f"the gradient of {name} has shape {np.shape(analytic)}, not {array.shape}"
            )
        flat = array.reshape(-1)  # a view: writes reach the array
        if not np.shares_memory(flat, array):
            raise ValueError(f"{name} must be contiguous so that it can be perturbed in place")
        idx = np.arange(flat.size)
        if max_entries is not None and flat.size > max_entries:
            idx = rng.choice(flat.size, size=max_entries, replace=False)
        numeric = np.empty(idx.size)
        for n, i in enumerate(idx):
            v = flat[i]
            flat[i] = v + eps
            up = loss()
            flat[i] = v - eps
            down = loss()
            flat[i] = v
            numeric[n] = (up - down) / (2 * eps)
        errors[name] = _relative_error(np.asarray(analytic).reshape(-1)[idx], numeric, floor)
    return errors


def gradcheck(cell, T=4, B=3, *, lengths=None, gates=None, eps=1e-6, max_entries=None, seed=0,
              training=False):
    """Compare ``cell.backward`` with centered finite differences, in float64.

    The loss is L = sum(dy * y) + sum(dstate * state) for random x, initial
    state, dy and dstate, so backward's dx, dstate0 and dparams are exact
    gradients of L. Each entry v of every parameter, of x and of the initial
    state is moved to v + eps and v - eps, and (L+ - L-) / (2 eps) is compared
    with the analytic gradient. A float32 cell is checked through a float64
    copy (finite differences need the precision); the cell itself is not
    changed.

    Parameters
    ----------
    cell : pyx_gru.Cell
        Any cell, compiled or reference.
    T, B : int
        Sequence length and batch size of the random problem.
    lengths : array_like of int, shape (B,), optional
        Passed to ``forward``.
    gates : dict, optional
        Pinned gates, passed to ``forward``.
    eps : float
        The finite-difference step.
    max_entries : int, optional
        Check at most this many randomly chosen entries of each array
        (all when None): keeps big cells cheap.
    seed : int
        Seeds x, the state and the upstream gradients (and, with
        ``training``, the masks).
    training : bool, default False
        Check a training pass (``forward(..., training=True, seed=seed)``):
        with recurrent dropout or zoneout, every pass of the check draws the
        same masks, so the loss is a smooth function of the arrays and its
        gradient is what ``backward`` gives.

    Returns
    -------
    dict of str to float
        The relative error max|analytic - numeric| / max(max|analytic|,
        max|numeric|, floor) of each parameter (by name), of ``"x"`` and of
        the initial state (``"h0"``, and ``"c0"`` for LSTM), where floor is
        1e-3 times the loss's magnitude sum|dy * y| + sum|dstate * state|:
        finite differences cannot resolve a gradient much smaller than that,
        so such a gradient is judged by its absolute error. About 1e-9 or
        less means the gradients are right.
    """
    if not isinstance(cell, Cell):
        raise TypeError(f"cell must be a pyx_gru cell (pyx_gru.RNN, GRU, LSTM, ...), "
                        f"got {type(cell).__name__} {cell!r:.60}")
    cell = cell.astype(np.float64)
    T, B = check_size("T", T), check_size("B", B)
    rng = check_rng("seed", seed)
    D, H = cell.input_size, cell.hidden_size
    check_fits(lambda: f"gradcheck of {cell!r} with T={T}, B={B}",
               2 * forward_bytes(cell, T, B) + backward_bytes(cell, T, B) + 8 * T * B * (D + H),
               "use a smaller T or B")
    lstm = cell._lstm
    x = rng.uniform(-1, 1, size=(T, B, D))
    state0 = [rng.uniform(-0.5, 0.5, size=(B, H)) for _ in range(2 if lstm else 1)]
    dy = rng.standard_normal((T, B, H))
    dstate = [rng.standard_normal((B, H)) for _ in state0]

    # only a training pass passes the keywords (a Cell subclass may not take them)
    masks = {"training": True, "seed": seed} if training else {}

    def as_state(parts):
        return tuple(parts) if lstm else parts[0]

    def loss(magnitude=False):
        y, state, _ = cell.forward(x, as_state(state0), lengths, gates=gates, **masks)
        state = state if lstm else (state,)
        f = np.abs if magnitude else (lambda v: v)
        return float(np.sum(f(dy * y)) + sum(np.sum(f(d * s)) for d, s in zip(dstate, state, strict=True)))

    floor = FLOOR * loss(magnitude=True)

    _, _, cache = cell.forward(x, as_state(state0), lengths, gates=gates, **masks)
    dx, dstate0, dparams = cell.backward(cache, dy, as_state(dstate))
    dstate0 = dstate0 if lstm else (dstate0,)

    # (name, array perturbed in place, analytic gradient)
    checks = [(k, cell.params[k], dparams[k]) for k in cell.params]
    checks.append(("x", x, dx))
    checks += [(name, s, d) for name, s, d in zip(("h0", "c0")[:len(state0)], state0, dstate0, strict=True)]

    return finite_difference_errors(loss, checks, eps=eps, floor=floor, max_entries=max_entries, rng=rng)


def gradcheck_layer(layer, x, lengths=None, *, eps=1e-6, max_entries=None, seed=0):
    """Check a layer's backward pass (``pyx_gru.layers``) against finite differences.

    The loss is L = sum over the forward's outputs of sum(d * output), for
    random upstream gradients d, so ``backward(cache, *d)`` gives exact
    gradients of L for every parameter and the input. The layer is checked
    through a float64 copy (``layer.astype``); it is not changed.

    Parameters
    ----------
    layer : Recurrent, Bidirectional, Stack, Dense or Model
        Anything with ``params``, ``astype``, ``forward(x[, lengths]) ->
        (*outputs, cache)`` and ``backward(cache, *doutputs) -> (dx, grads)``.
    x : array_like
        The input, e.g. (T, B, D), or (..., H) for ``Dense``.
    lengths : array_like of int, shape (B,), optional
        Passed to ``forward`` when given.
    eps, max_entries, seed
        As in ``gradcheck``; ``seed`` seeds the upstream gradients.

    Returns
    -------
    dict of str to float
        The relative error of each parameter (by name) and of ``"x"``, as in
        ``gradcheck`` (floor: 1e-3 times sum |d * output|).
    """
    layer = layer.astype(np.float64)
    rng = check_rng("seed", seed)
    x = np.array(x, dtype=np.float64, order="C")
    args = () if lengths is None else (lengths,)

    def outputs():
        return layer.forward(x, *args)[:-1]

    douts = [rng.standard_normal(np.shape(o)) for o in outputs()]

    def loss(magnitude=False):
        f = np.abs if magnitude else (lambda v: v)
        return float(sum(np.sum(f(d * o)) for d, o in zip(douts, outputs(), strict=True)))

    floor = FLOOR * loss(magnitude=True)
    cache = layer.forward(x, *args)[-1]
    dx, grads = layer.backward(cache, *douts)
    params = layer.params
    if set(grads) != set(params):
        raise ValueError(f"backward's gradients {sorted(grads)} do not match params {sorted(params)}")
    checks = [(k, params[k], grads[k]) for k in params] + [("x", x, dx)]
    return finite_difference_errors(loss, checks, eps=eps, floor=floor, max_entries=max_entries, rng=rng)
