"""Layers around the compiled cells, and a model that chains them.

Every layer has a forward and a backward pass over whole batches, and its
parameters as a live dict of arrays (``layer.params``: the same array
objects the layer computes with, so an optimiser may update them in place).

* ``Recurrent(cell, reverse=False)``: one cell over whole sequences; with
  ``reverse=True`` each sequence is read backwards within its own length.
* ``Bidirectional(forward_cell, backward_cell)``: both directions, outputs
  concatenated (2H features).
* ``Stack(layers)``: recurrent layers, each reading the previous one's output.
* ``Dense(input_size, output_size)``: the readout ``out = h @ W + b``.
* ``Model``: a ``Stack`` and a ``Dense`` readout, either at every step
  (``readout="every"``) or on the final state (``readout="last"``, each
  sequence's state after its last valid step when ``lengths`` is given).

The protocol, shared by every layer (``gradcheck_layer`` relies on it)::

    *outputs, cache = layer.forward(*inputs)
    dinput, grads = layer.backward(cache, *doutputs)

Recurrent layers take ``(x, lengths=None)`` and give ``(y, h_last)``: ``y``
(T, B, H_out), zero past each sequence's length, and ``h_last`` (B, H_out),
the hidden state h at the end of each sequence (for the LSTM, h and not c;
for a reversed pass, the state after it has read the sequence back to step
0). ``Dense`` takes ``(h,)`` and gives ``(out,)``. ``Model`` takes
``(x, lengths=None)`` and gives ``(out,)``. A ``None`` upstream gradient
means zeros. Shapes: T steps, B sequences, D inputs, H hidden units per
direction, K outputs; time-major, like the cells.
"""
import inspect
import weakref

import numpy as np

from . import _kinds
from ._cells import Cell, is_regularised
from ._validation import (check_dtype, check_flag, check_rng, check_size, float_array,
                          lengths_array)
from .losses import step_mask

__all__ = [
    "CELLS",
    "CELL_ALIASES",
    "make_cell",
    "set_gate_bias",
    "reverse_sequences",
    "Recurrent",
    "Bidirectional",
    "Stack",
    "Dense",
    "Model",
]

#: Cell names for ``Model(cell=...)`` and ``make_cell``: name -> (class,
#: constructor keywords), from the cells' descriptions (``pyx_gru._kinds``).
CELLS = {k.name: (k.cell_class, k.keywords) for k in _kinds.KINDS.values()}
#: Other names ``make_cell`` takes for some of ``CELLS``: alias -> name.
CELL_ALIASES = dict(_kinds.ALIASES)
# pyx_gru's cell classes by class name (a Model built from a class keeps its name)
_CELL_CLASSES = {k.cell_class.__name__: k.cell_class for k in _kinds.KINDS.values()}


def make_cell(cell, input_size, hidden_size, *, dtype=np.float64, seed=None, gate_bias=None,
              **kwargs):
    """A new cell from a name of ``CELLS`` (or an alias) or a cell class.

    Parameters
    ----------
    cell : str or type
        ``"rnn"``, ``"sgru"`` (alias ``"simple_gru"``), ``"gru"`` (reset
        after, alias ``"gru_after"``), ``"gru_before"``, ``"mgu"`` (alias
        ``"mgu_after"``), ``"mgu_before"``, ``"lstm"``, ``"lstm_peephole"``,
        ``"cifg"`` (``CoupledLSTM``), ``"cifg_peephole"``, ``"mingru"``,
        ``"minlstm"`` (every name of ``CELLS``); the class name of one of
        pyx_gru's cells (``"GRU"``, ``"LSTM"``, ...: what ``Model.config``
        keeps for a model built from a class); or a subclass of
        ``pyx_gru.Cell`` (one that
        overrides ``forward`` should pass on the keywords it does not
        handle, so that ``pyx_gru.evaluate`` and ``predict`` can ask for
        ``cache=False``; without them it runs the forward that keeps a cache).
    input_size, hidden_size : int
        D and H.
    dtype : {numpy.float64, numpy.float32}, default numpy.float64
        Precision of the cell.
    seed : int, numpy.random.Generator or None, optional
        Seeds the cell's initialisation (see ``pyx_gru.Cell``).
    gate_bias : dict of str to float, optional
        Initial biases that replace the default ones, by gate name (see
        ``set_gate_bias``), e.g. ``{"z": 2.0}`` for a GRU whose update gate
        starts near sigmoid(2) = 0.88, keeping most of the state. None keeps
        the cell's own initialisation.
    **kwargs
        More constructor keywords (``reset=``, ``peephole=``); they override
        the name's.

    Returns
    -------
    pyx_gru.Cell
        The new cell, (D, H) as asked.
    """
    if isinstance(cell, str) and cell in _CELL_CLASSES and cell not in CELLS:
        cls = _CELL_CLASSES[cell]
    elif isinstance(cell, str):
        name = CELL_ALIASES.get(cell, cell)
        if name not in CELLS:
            raise ValueError(
                f"cell must be one of {sorted(CELLS) + sorted(CELL_ALIASES)} or a Cell class, got {cell!r}"
            )
        cls, kw = CELLS[name]
        kwargs = {**kw, **kwargs}
    elif isinstance(cell, type) and issubclass(cell, Cell):
        cls = cell
    else:
        raise TypeError(f"cell must be a name such as 'gru' or a Cell class, got {cell!r}")
    new = cls(input_size, hidden_size, dtype=dtype, seed=seed, **kwargs)
    if gate_bias is not None:
        set_gate_bias(new, gate_bias)
    return new


def set_gate_bias(cell, gate_bias):
    """Set whole gate blocks of a cell's bias ``b`` to constants, in place.

    The default initialisation (biases 0, the LSTM's forget-gate bias 1)
    leaves a GRU's update gate z and a SimpleGRU's f near 0.5 at first, so
    each step keeps only about half of the state and gradients vanish fast
    over long sequences; a bias of 2-3 makes these gates keep most of the state from
    the start (the "chrono" and forget-bias heuristics: Gers et al. 2000,
    Jozefowicz et al. 2015, Tallec & Ollivier 2018).

    Parameters
    ----------
    cell : pyx_gru.Cell
        The cell whose ``params["b"]`` is changed in place.
    gate_bias : dict of str to float
        Gate name (one of ``cell.gates``, e.g. ``"z"``, ``"f"``) to the
        value its H bias entries ``b[k*H:(k+1)*H]`` take. For the GRU this
        is the gate's only bias (``b_hg`` belongs to the candidate g).

    Returns
    -------
    pyx_gru.Cell
        ``cell`` itself.
    """
    if not isinstance(cell, Cell):
        raise TypeError(f"cell must be a pyx_gru cell, got {type(cell).__name__}")
    if not isinstance(gate_bias, dict):
        raise TypeError(f"gate_bias must be a dict of gate name to float, got {type(gate_bias).__name__}")
    for gate, value in gate_bias.items():  # check everything before changing anything
        if gate not in cell.gates:
            raise ValueError(f"gate_bias: {type(cell).__name__} has the gates {cell.gates}, not {gate!r}")
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"gate_bias[{gate!r}] must be a real number, got {value!r}")
        if not np.isfinite(value):
            raise ValueError(f"gate_bias[{gate!r}] must be finite, got {value!r}")
    H, b = cell.hidden_size, cell.params["b"]
    for gate, value in gate_bias.items():
        k = cell.gates.index(gate)
        b[k * H:(k + 1) * H] = value
    return cell


def reverse_sequences(x, lengths=None):
    """Reverse each sequence in time within its own length.

    Row b's first ``lengths[b]`` steps are reversed; its padding stays where
    it is. The map is its own inverse, so it also takes a reversed pass's
    outputs (and gradients) back to the original order.

    Parameters
    ----------
    x : array_like, shape (T, B, ...)
        Sequences, time-major (inputs, outputs or their gradients).
    lengths : array_like of int, shape (B,), optional
        The sequences' lengths, each in [0, T]; None means all T.

    Returns
    -------
    ndarray, shape (T, B, ...)
        A new array: ``out[t, b] = x[lengths[b] - 1 - t, b]`` for
        ``t < lengths[b]``, else ``x[t, b]``.
    """
    x = np.asarray(x)
    if x.ndim < 2:
        raise ValueError(f"x must have shape (T, B, ...), got {x.shape}")
    if lengths is None:
        return x[::-1].copy()
    T, B = x.shape[:2]
    lengths = lengths_array(lengths, T, B)
    t = np.arange(T)[:, None]
    idx = np.where(t < lengths[None, :], lengths[None, :] - 1 - t, t)
    idx = idx.reshape(idx.shape + (1,) * (x.ndim - 2))
    return np.take_along_axis(x, idx, axis=0)


class _Cache:
    """A layer's forward record for its backward pass. Only the layer that
    made it can use it."""

    def __init__(self, layer, **fields):
        self.layer = layer
        self.__dict__.update(fields)


def _check_cache(layer, cache):
    if not isinstance(cache, _Cache) or cache.layer is not layer:
        raise ValueError(
            f"cache must be the one {type(layer).__name__}.forward returned for this layer"
        )


def _inputs(x, lengths, D, dtype):
    """x as a (T, B, D) array of dtype, lengths as checked intp (B,) or None."""
    x = float_array("x", x, ("T", "B", D), dtype)
    if lengths is not None:
        lengths = lengths_array(lengths, x.shape[0], x.shape[1])
    return x, lengths


def _prefixed(parts):
    """{prefix + name: array} over (prefix, dict) pairs."""
    return {prefix + k: v for prefix, d in parts for k, v in d.items()}


def _split(grads, prefix):
    return {k[len(prefix):]: v for k, v in grads.items() if k.startswith(prefix)}


_TAKES_CACHE = weakref.WeakKeyDictionary()  # a class made per call (the tutorial's) is freed


def _takes_cache(cell):
    """Whether ``cell.forward`` accepts ``cache=``: a Cell subclass may
    override forward with the signature it had before the keyword existed
    (then it runs the forward that keeps a cache, with the same outputs)."""
    cls = type(cell)
    known = _TAKES_CACHE.get(cls)
    if known is None:
        try:
            params = inspect.signature(cls.forward).parameters.values()
            known = any(p.name == "cache" or p.kind is p.VAR_KEYWORD for p in params)
        except (TypeError, ValueError):
            known = True
        _TAKES_CACHE[cls] = known
    return known


def _seeds(training, seed, n):
    """The keywords of n parts' forward calls: each its own stream of
    ``seed`` in a training pass, none otherwise."""
    if not check_flag("training", training):
        return [{}] * n
    return [{"training": True, "seed": g} for g in check_rng("seed", seed).spawn(n)]


def _save(self, path):
    """Save to an ``.npz`` file: the structure (every layer, cell, form,
    size and dtype) as JSON and the parameters as arrays, in one file
    written atomically (a crash while writing leaves any older file at
    ``path`` as it was). No pickle: ``pyx_gru.load(path)`` reads it with
    ``allow_pickle=False`` and gives back an object of the same class
    that computes bitwise the same outputs and gradients.

    Parameters
    ----------
    path : str or os.PathLike
        The file, exactly as named (no suffix is added).

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    TypeError
        If a cell is not one of pyx_gru's own classes (a subclass
        defined elsewhere cannot be rebuilt from a file).
    """
    from ._saving import save_layer

    return save_layer(self, path)


class Recurrent:
    """One recurrent layer: a cell over whole sequences, forwards or backwards.

    Parameters
    ----------
    cell : pyx_gru.Cell
        The cell; its parameter arrays are the layer's (``params`` is the
        cell's own dict).
    reverse : bool
        Read each sequence from its last valid step back to step 0 (see
        ``reverse_sequences``); ``y`` is still returned in the original
        order, so ``y[t]`` summarises steps t..lengths[b]-1.
    """

    def __init__(self, cell, *, reverse=False):
        if not isinstance(cell, Cell):
            raise TypeError(f"cell must be a pyx_gru cell, got {type(cell).__name__}")
        self.cell = cell
        self.reverse = check_flag("reverse", reverse)

    input_size = property(lambda self: self.cell.input_size, doc="int: D.")
    output_size = property(lambda self: self.cell.hidden_size, doc="int: H.")
    dtype = property(lambda self: self.cell.dtype, doc="numpy.dtype of the parameters.")

    @property
    def params(self):
        """dict of str to ndarray: the cell's parameters (live)."""
        return self.cell.params

    save = _save

    def astype(self, dtype):
        """A copy with the parameters cast to ``dtype``.

        Parameters
        ----------
        dtype : {numpy.float64, numpy.float32}
            The new precision.

        Returns
        -------
        Recurrent
            A layer with a new cell of the same architecture and direction.
        """
        return type(self)(self.cell.astype(dtype), reverse=self.reverse)

    def __repr__(self):
        return f"Recurrent({self.cell!r}{', reverse=True' if self.reverse else ''})"

    def forward(self, x, lengths=None, *, cache=True, training=False, seed=None):
        """Run the layer.

        Parameters
        ----------
        x : array_like, shape (T, B, D)
            Inputs, time-major.
        lengths : array_like of int, shape (B,), optional
            Sequence b is ``x[:lengths[b], b]``; None means all T steps.
        cache : bool, default True
            Keep what ``backward`` needs; False for inference (see
            ``Cell.forward``): the cache returned is then None.
        training : bool, default False
            A training pass: cells with ``recurrent_dropout`` or ``zoneout``
            draw their masks (``pyx_gru.fit`` asks for it); False evaluates
            (see ``Cell.forward``).
        seed : int, numpy.random.Generator, numpy.random.SeedSequence or None
            Seeds a training pass's masks (each cell gets its own stream);
            None draws fresh entropy.

        Returns
        -------
        y : ndarray, shape (T, B, H)
            Zero past each sequence's length.
        h_last : ndarray, shape (B, H)
            The hidden state after each sequence's last step (for
            ``reverse=True``, after reading back to step 0).
        cache : object or None
            What ``backward`` needs (None with ``cache=False``).
        """
        x, lengths = _inputs(x, lengths, self.input_size, self.dtype)
        if self.reverse:
            x = reverse_sequences(x, lengths)
        cache = check_flag("cache", cache)
        training = check_flag("training", training)
        # cache is passed on only when False and the cell's forward takes it
        # (a Cell subclass may override forward without the keyword), and
        # training only to a cell that has something to train with it
        kw = {"training": True, "seed": seed} if training and is_regularised(self.cell) else {}
        if cache or not _takes_cache(self.cell):
            y, state, cell_cache = self.cell.forward(x, lengths=lengths, **kw)
        else:
            y, state, cell_cache = self.cell.forward(x, lengths=lengths, cache=False, **kw)
        h_last = state[0] if isinstance(state, tuple) else state
        if self.reverse:
            y = reverse_sequences(y, lengths)
        return y, h_last, _Cache(self, cell_cache=cell_cache, lengths=lengths) if cache else None

    def backward(self, cache, dy=None, dh_last=None):
        """Backpropagate.

        Parameters
        ----------
        cache : object
            The cache this layer's ``forward`` returned.
        dy : array_like, shape (T, B, H), optional
            The gradient dL/dy; entries past a sequence's length are
            ignored. None means zeros.
        dh_last : array_like, shape (B, H), optional
            The gradient dL/dh_last; None means zeros.

        Returns
        -------
        dx : ndarray, shape (T, B, D)
            The gradient dL/dx.
        grads : dict of str to ndarray
            The gradient dL/d(each parameter), keyed and shaped like ``params``.
        """
        _check_cache(self, cache)
        if dy is not None and self.reverse:
            T, B = cache.cell_cache.x.shape[:2]
            dy = reverse_sequences(float_array("dy", dy, (T, B, self.output_size), self.dtype),
                                   cache.lengths)
        if dh_last is not None:
            B = cache.cell_cache.x.shape[1]
            dh_last = float_array("dh_last", dh_last, (B, self.output_size), self.dtype)
        dstate = (dh_last, None) if self.cell._lstm else dh_last
        dx, _, grads = self.cell.backward(cache.cell_cache, dy, dstate)
        if self.reverse:
            dx = reverse_sequences(dx, cache.lengths)
        return dx, grads


class Bidirectional:
    """Two recurrent layers, one reading forwards and one backwards.

    ``y = [y_fwd, y_bwd]`` and ``h_last = [h_fwd, h_bwd]`` along the last
    axis (2H features): at step t, ``y_fwd`` has read steps 0..t and
    ``y_bwd`` steps t..lengths[b]-1; ``h_bwd`` is the backward cell's state
    after reading back to step 0. Parameters are named ``fwd.<name>`` and
    ``bwd.<name>``.

    Parameters
    ----------
    forward_cell, backward_cell : pyx_gru.Cell
        Same input size, hidden size and dtype.
    """

    def __init__(self, forward_cell, backward_cell):
        self.fwd = Recurrent(forward_cell)
        self.bwd = Recurrent(backward_cell, reverse=True)
        f, b = forward_cell, backward_cell
        if (f.input_size, f.hidden_size, f.dtype) != (b.input_size, b.hidden_size, b.dtype):
            raise ValueError(
                "forward_cell and backward_cell need the same input_size, hidden_size and "
                f"dtype, got {f!r} and {b!r}"
            )

    input_size = property(lambda self: self.fwd.input_size, doc="int: D.")
    output_size = property(lambda self: 2 * self.fwd.output_size, doc="int: 2H.")
    dtype = property(lambda self: self.fwd.dtype, doc="numpy.dtype of the parameters.")

    @property
    def params(self):
        """dict of str to ndarray: ``fwd.*`` and ``bwd.*`` (live arrays)."""
        return _prefixed([("fwd.", self.fwd.params), ("bwd.", self.bwd.params)])

    save = _save

    def astype(self, dtype):
        """A copy with the parameters cast to ``dtype``.

        Parameters
        ----------
        dtype : {numpy.float64, numpy.float32}
            The new precision.

        Returns
        -------
        Bidirectional
            A layer with new cells of the same architecture.
        """
        return type(self)(self.fwd.cell.astype(dtype), self.bwd.cell.astype(dtype))

    def __repr__(self):
        return f"Bidirectional({self.fwd.cell!r}, {self.bwd.cell!r})"

    def forward(self, x, lengths=None, *, cache=True, training=False, seed=None):
        """Run both directions; see ``Recurrent.forward`` (H is doubled).

        Parameters
        ----------
        x : array_like, shape (T, B, D)
            Inputs, time-major.
        lengths : array_like of int, shape (B,), optional
            Sequence b is ``x[:lengths[b], b]``; None means all T steps.
        cache : bool, default True
            Keep what ``backward`` needs; False for inference (the cache
            returned is then None).
        training : bool, default False
            A training pass: cells with ``recurrent_dropout`` or ``zoneout``
            draw their masks (``pyx_gru.fit`` asks for it); False evaluates
            (see ``Cell.forward``).
        seed : int, numpy.random.Generator, numpy.random.SeedSequence or None
            Seeds a training pass's masks (each cell gets its own stream);
            None draws fresh entropy.

        Returns
        -------
        y : ndarray, shape (T, B, 2H)
            ``[y_fwd, y_bwd]``; zero past each sequence's length.
        h_last : ndarray, shape (B, 2H)
            ``[h_fwd, h_bwd]``: the forward cell's state after each sequence's
            last step, the backward cell's after reading back to step 0.
        cache : object or None
            What ``backward`` needs (None with ``cache=False``).
        """
        seeds = _seeds(training, seed, 2)
        y_f, h_f, cache_f = self.fwd.forward(x, lengths, cache=cache, **seeds[0])
        y_b, h_b, cache_b = self.bwd.forward(x, lengths, cache=cache, **seeds[1])
        y = np.concatenate([y_f, y_b], axis=-1)
        h_last = np.concatenate([h_f, h_b], axis=-1)
        return y, h_last, _Cache(self, f=cache_f, b=cache_b) if cache else None

    def backward(self, cache, dy=None, dh_last=None):
        """Backpropagate through both directions (see ``Recurrent.backward``).

        Parameters
        ----------
        cache : object
            The cache this layer's ``forward`` returned.
        dy : array_like, shape (T, B, 2H), optional
            The gradient dL/dy (both halves); entries past a sequence's length are
            ignored. None means zeros.
        dh_last : array_like, shape (B, 2H), optional
            The gradient dL/dh_last; None means zeros.

        Returns
        -------
        dx : ndarray, shape (T, B, D)
            The gradient dL/dx.
        grads : dict of str to ndarray
            The gradient dL/d(each parameter), keyed and shaped like ``params``.
        """
        _check_cache(self, cache)
        H = self.fwd.output_size
        T, B = cache.f.cell_cache.x.shape[:2]
        if dy is not None:
            dy = float_array("dy", dy, (T, B, 2 * H), self.dtype)
        if dh_last is not None:
            dh_last = float_array("dh_last", dh_last, (B, 2 * H), self.dtype)

        def half(a, k):
            return None if a is None else a[..., k * H:(k + 1) * H]

        dx_f, g_f = self.fwd.backward(cache.f, half(dy, 0), half(dh_last, 0))
        dx_b, g_b = self.bwd.backward(cache.b, half(dy, 1), half(dh_last, 1))
        dx_f += dx_b
        return dx_f, _prefixed([("fwd.", g_f), ("bwd.", g_b)])


class Stack:
    """Recurrent layers in sequence: layer i + 1 reads layer i's ``y``.

    ``h_last`` is the top layer's. Parameters are named ``layer<i>.<name>``.

    Parameters
    ----------
    layers : sequence of Recurrent or Bidirectional
        Each layer's ``input_size`` equals the previous one's ``output_size``;
        all share one dtype.
    """

    def __init__(self, layers):
        layers = list(layers)
        if not layers:
            raise ValueError("a Stack needs at least one layer")
        for i, layer in enumerate(layers):
            if not isinstance(layer, (Recurrent, Bidirectional)):
                raise TypeError(
                    f"layers[{i}] must be a Recurrent or Bidirectional layer, got "
                    f"{type(layer).__name__}"
                )
            if i and layer.input_size != layers[i - 1].output_size:
                raise ValueError(
                    f"layers[{i}] reads {layer.input_size} features but layers[{i - 1}] "
                    f"gives {layers[i - 1].output_size}"
                )
            if layer.dtype != layers[0].dtype:
                raise ValueError(f"layers[{i}] is {layer.dtype}, layers[0] is {layers[0].dtype}")
        self.layers = layers

    input_size = property(lambda self: self.layers[0].input_size, doc="int: D.")
    output_size = property(lambda self: self.layers[-1].output_size, doc="int: the top layer's.")
    dtype = property(lambda self: self.layers[0].dtype, doc="numpy.dtype of the parameters.")

    @property
    def params(self):
        """dict of str to ndarray: ``layer<i>.*`` (live arrays)."""
        return _prefixed([(f"layer{i}.", layer.params) for i, layer in enumerate(self.layers)])

    save = _save

    def astype(self, dtype):
        """A copy with the parameters cast to ``dtype``.

        Parameters
        ----------
        dtype : {numpy.float64, numpy.float32}
            The new precision.

        Returns
        -------
        Stack
            A stack of copies of the layers, cast.
        """
        return type(self)([layer.astype(dtype) for layer in self.layers])

    def __repr__(self):
        return "Stack([" + ", ".join(repr(layer) for layer in self.layers) + "])"

    def forward(self, x, lengths=None, *, cache=True, training=False, seed=None):
        """Run every layer, bottom first; see ``Recurrent.forward``.

        Parameters
        ----------
        x : array_like, shape (T, B, D)
            Inputs, time-major.
        lengths : array_like of int, shape (B,), optional
            Sequence b is ``x[:lengths[b], b]``; None means all T steps.
        cache : bool, default True
            Keep what ``backward`` needs; False for inference (the cache
            returned is then None).
        training : bool, default False
            A training pass: cells with ``recurrent_dropout`` or ``zoneout``
            draw their masks (``pyx_gru.fit`` asks for it); False evaluates
            (see ``Cell.forward``).
        seed : int, numpy.random.Generator, numpy.random.SeedSequence or None
            Seeds a training pass's masks (each cell gets its own stream);
            None draws fresh entropy.

        Returns
        -------
        y : ndarray, shape (T, B, H_out)
            The top layer's outputs (H_out = ``output_size``); zero past each
            sequence's length.
        h_last : ndarray, shape (B, H_out)
            The top layer's final state.
        cache : object or None
            What ``backward`` needs (None with ``cache=False``).
        """
        caches = []
        seeds = _seeds(training, seed, len(self.layers))
        for layer, kw in zip(self.layers, seeds, strict=True):
            x, h_last, layer_cache = layer.forward(x, lengths, cache=cache, **kw)
            caches.append(layer_cache)
        return x, h_last, _Cache(self, caches=caches) if cache else None

    def backward(self, cache, dy=None, dh_last=None):
        """Backpropagate through every layer, top first (see ``Recurrent.backward``).

        Parameters
        ----------
        cache : object
            The cache this layer's ``forward`` returned.
        dy : array_like, shape (T, B, H_out), optional
            The gradient dL/dy of the top layer's outputs; entries past a sequence's length are
            ignored. None means zeros.
        dh_last : array_like, shape (B, H_out), optional
            The gradient dL/dh_last of the top layer's final state; None means zeros.

        Returns
        -------
        dx : ndarray, shape (T, B, D)
            The gradient dL/dx.
        grads : dict of str to ndarray
            The gradient dL/d(each parameter), keyed and shaped like ``params``.
        """
        _check_cache(self, cache)
        grads = {}
        for i in reversed(range(len(self.layers))):
            dy, g = self.layers[i].backward(cache.caches[i], dy, dh_last)
            dh_last = None
            grads.update((f"layer{i}.{k}", v) for k, v in g.items())
        return dy, {k: grads[k] for k in self.params}


class Dense:
    """The affine readout ``out = h @ W + b`` on the last axis.

    Parameters
    ----------
    input_size, output_size : int
        H and K.
    dtype : {numpy.float64, numpy.float32}
        Precision of the parameters.
    seed : int, numpy.random.Generator or None
        W is Glorot-uniform, U(-a, a) with a = sqrt(6 / (H + K)); b is 0.
    """

    def __init__(self, input_size, output_size, *, dtype=np.float64, seed=None):
        self.input_size = check_size("input_size", input_size)
        self.output_size = check_size("output_size", output_size)
        self.dtype = check_dtype(dtype)
        rng = check_rng("seed", seed)
        limit = np.sqrt(6.0 / (self.input_size + self.output_size))
        self._params = {
            "W": rng.uniform(-limit, limit, (self.input_size, self.output_size)).astype(self.dtype),
            "b": np.zeros(self.output_size, dtype=self.dtype),
        }

    @property
    def params(self):
        """dict: ``W`` (H, K) and ``b`` (K,) (live arrays)."""
        return self._params

    save = _save

    def astype(self, dtype):
        """A copy with the parameters cast to ``dtype``.

        Parameters
        ----------
        dtype : {numpy.float64, numpy.float32}
            The new precision.

        Returns
        -------
        Dense
            A readout of the same sizes.
        """
        new = type(self)(self.input_size, self.output_size, dtype=dtype, seed=0)
        for k, v in self._params.items():
            new._params[k][...] = v
        return new

    def __repr__(self):
        return f"Dense({self.input_size}, {self.output_size}, dtype={self.dtype.name})"

    def forward(self, h):
        """Compute the readout, out = h @ W + b.

        Parameters
        ----------
        h : array_like, shape (..., H)
            Hidden states: (B, H) for the final state or (T, B, H) for
            every step.

        Returns
        -------
        out : ndarray, shape (..., K)
            The readout for each row of ``h``.
        cache : object
            What ``backward`` needs (``h``, cast to the layer's dtype).
        """
        h = np.asarray(h)
        if h.ndim < 1 or h.shape[-1] != self.input_size:
            raise ValueError(f"h must have shape (..., {self.input_size}), got {h.shape}")
        h = float_array("h", h, h.shape, self.dtype)
        out = h @ self._params["W"] + self._params["b"]
        return out, _Cache(self, h=h)

    def backward(self, cache, dout):
        """Backpropagate through out = h @ W + b.

        Parameters
        ----------
        cache : object
            The cache this layer's ``forward`` returned.
        dout : array_like, shape (..., K)
            The gradient dL/dout, in the shape of ``out``.

        Returns
        -------
        dh : ndarray, shape (..., H)
            The gradient dL/dh.
        grads : dict of str to ndarray
            The gradients dL/dW (H, K) and dL/db (K,), keys ``W`` and ``b``.
        """
        _check_cache(self, cache)
        h = cache.h
        dout = float_array("dout", dout, h.shape[:-1] + (self.output_size,), self.dtype)
        h2 = h.reshape(-1, self.input_size)
        d2 = dout.reshape(-1, self.output_size)
        grads = {"W": h2.T @ d2, "b": d2.sum(axis=0, dtype=np.float64).astype(self.dtype)}
        return dout @ self._params["W"].T, grads


class Model:
    """Recurrent layers and a dense readout, trained end to end.

    ``out = Dense(y)`` at every step (``readout="every"``, out (T, B, K),
    zero past each sequence's length) or ``out = Dense(h_last)`` on the
    final state (``readout="last"``, out (B, K)). ``out`` is the raw
    readout: values for a squared error, logits for the cross-entropies
    (``pyx_gru.losses`` applies the softmax or sigmoid). ``step`` runs a
    unidirectional model one time step at a time, carrying its state, to
    generate sequences.

    Parameters
    ----------
    input_size : int
        D.
    hidden_size : int
        H of every layer (per direction).
    output_size : int
        K.
    cell : str or type
        See ``make_cell``: ``"rnn"``, ``"sgru"``, ``"gru"``, ``"gru_before"``,
        ``"mgu"``, ``"mgu_before"``, ``"lstm"``, ``"lstm_peephole"``, ``"cifg"``,
        ``"cifg_peephole"`` or a Cell class.
    num_layers : int
        Recurrent layers stacked.
    bidirectional : bool
        Each layer reads both ways (``Bidirectional``), 2H features.
    readout : {"last", "every"}
        Read out the final state, out (B, K), or every step, out (T, B, K).
    dtype : {numpy.float64, numpy.float32}
        Precision of every layer.
    seed : int, numpy.random.Generator or None
        Seeds every layer's initialisation, in order (bottom layer first,
        forward before backward cell, the readout last).
    **cell_kwargs
        More cell keywords (``reset=``, ``peephole=``, ``gate_bias=``: see
        ``make_cell``), for every cell.

    Attributes
    ----------
    rnn : Stack
    head : Dense
    grads : dict or None
        The gradients of the last ``backward``, keys of ``params``.
    """

    def __init__(self, input_size, hidden_size, output_size, *, cell="gru", num_layers=1,
                 bidirectional=False, readout="last", dtype=np.float64, seed=None,
                 **cell_kwargs):
        if readout not in ("last", "every"):
            raise ValueError(f'readout must be "last" or "every", got {readout!r}')
        num_layers = check_size("num_layers", num_layers)
        bidirectional = check_flag("bidirectional", bidirectional)
        dtype = check_dtype(dtype)
        rng = check_rng("seed", seed)
        layers, D = [], input_size
        for _ in range(num_layers):
            if bidirectional:
                f, b = (make_cell(cell, D, hidden_size, dtype=dtype, seed=rng, **cell_kwargs)
                        for _ in range(2))
                layers.append(Bidirectional(f, b))
            else:
                layers.append(Recurrent(make_cell(cell, D, hidden_size, dtype=dtype, seed=rng,
                                                  **cell_kwargs)))
            D = layers[-1].output_size
        self.rnn = Stack(layers)
        self.head = Dense(D, output_size, dtype=dtype, seed=rng)
        self.readout = readout
        self.grads = None
        self._config = {
            "input_size": int(input_size), "hidden_size": int(hidden_size),
            "output_size": int(output_size),
            "cell": cell if isinstance(cell, str) else cell.__name__, "num_layers": num_layers,
            "bidirectional": bool(bidirectional), "readout": readout, "dtype": dtype.name,
            "seed": int(seed) if isinstance(seed, (int, np.integer)) else
                    None if seed is None else repr(seed),
            **cell_kwargs,
        }

    input_size = property(lambda self: self.rnn.input_size, doc="int: D.")
    output_size = property(lambda self: self.head.output_size, doc="int: K.")
    dtype = property(lambda self: self.head.dtype, doc="numpy.dtype of the parameters.")
    config = property(lambda self: dict(self._config), doc=(
        "dict: the constructor's arguments (a Generator seed as its repr): "
        "``Model(**model.config)`` builds the same model as initialised."))

    @property
    def cells(self):
        """list of Cell: every cell, bottom layer first (forward before backward)."""
        out = []
        for layer in self.rnn.layers:
            out += [layer.fwd.cell, layer.bwd.cell] if isinstance(layer, Bidirectional) else [layer.cell]
        return out

    @property
    def params(self):
        """dict of str to ndarray: every parameter, by name (live arrays).

        ``layer<i>.<name>`` (``layer<i>.fwd.<name>`` and ``layer<i>.bwd.<name>``
        when bidirectional) for the cells, ``readout.W`` (H_out, K) and
        ``readout.b`` (K,). The arrays are the ones the layers compute with:
        change them in place (as the optimisers do), or assign a whole dict
        to ``model.params``, which copies its values into them.
        """
        return _prefixed([("", self.rnn.params), ("readout.", self.head.params)])

    @params.setter
    def params(self, new):
        current = self.params
        if not isinstance(new, dict):
            raise TypeError(f"params must be a dict of arrays, got {type(new).__name__}")
        if set(new) != set(current):
            raise ValueError(
                f"params need exactly the keys {sorted(current)}; missing "
                f"{sorted(set(current) - set(new))}, unexpected {sorted(set(new) - set(current))}"
            )
        checked = {k: float_array(f"params[{k!r}]", new[k], v.shape, self.dtype)
                   for k, v in current.items()}
        for k, v in checked.items():
            np.copyto(current[k], v)

    @property
    def n_params(self):
        """int: the number of scalar parameters."""
        return int(sum(v.size for v in self.params.values()))

    def get_params(self):
        """Copy every parameter: a snapshot to restore with ``model.params = ...``.

        Returns
        -------
        dict of str to ndarray
            A copy of ``params``, same keys and shapes.
        """
        return {k: v.copy() for k, v in self.params.items()}

    save = _save

    def astype(self, dtype):
        """A new model of the same architecture with the parameters cast to ``dtype``.

        Parameters
        ----------
        dtype : {numpy.float64, numpy.float32}
            The new precision.

        Returns
        -------
        Model
            A model with the same ``config`` (but ``dtype``); ``grads`` is None.
        """
        new = object.__new__(type(self))
        new.rnn, new.head = self.rnn.astype(dtype), self.head.astype(dtype)
        new.readout, new.grads = self.readout, None
        new._config = {**self._config, "dtype": check_dtype(dtype).name}
        return new

    def copy(self):
        """A new model with a copy of the parameters.

        Returns
        -------
        Model
            A model of the same ``config`` and dtype whose parameter arrays
            are copies; ``grads`` is None.
        """
        return self.astype(self.dtype)

    def __repr__(self):
        c = self._config
        return (f"Model({c['input_size']}, {c['hidden_size']}, {c['output_size']}, "
                f"cell={c['cell']!r}, num_layers={c['num_layers']}, "
                f"bidirectional={c['bidirectional']}, readout={c['readout']!r}, "
                f"dtype={self.dtype.name}, seed={c['seed']!r}; {self.n_params} parameters)")

    def forward(self, x, lengths=None, *, cache=True, training=False, seed=None):
        """Run the model: every recurrent layer, then the readout.

        Parameters
        ----------
        x : array_like, shape (T, B, D)
            Inputs, time-major.
        lengths : array_like of int, shape (B,), optional
            Sequence b is ``x[:lengths[b], b]``; None means all T steps.
        cache : bool, default True
            Keep what ``backward`` needs; False to evaluate or predict (the
            recurrent layers then run ``Cell.forward(..., cache=False)``, and
            the cache returned is None).
        training : bool, default False
            A training pass: cells with ``recurrent_dropout`` or ``zoneout``
            draw their masks (``pyx_gru.fit`` asks for it); False evaluates
            (see ``Cell.forward``).
        seed : int, numpy.random.Generator, numpy.random.SeedSequence or None
            Seeds a training pass's masks (each cell gets its own stream);
            None draws fresh entropy.

        Returns
        -------
        out : ndarray, shape (B, K) for readout "last", (T, B, K) for "every"
            The raw readout (zero past each sequence's length for "every").
        cache : object or None
            What ``backward`` needs (None with ``cache=False``).
        """
        x, lengths = _inputs(x, lengths, self.input_size, self.dtype)
        kw = {"training": True, "seed": seed} if check_flag("training", training) else {}
        y, h_last, rnn_cache = self.rnn.forward(x, lengths, cache=cache, **kw)
        out, head_cache = self.head.forward(y if self.readout == "every" else h_last)
        valid = None
        if self.readout == "every" and lengths is not None:
            valid = step_mask(out.shape[:2], lengths)[..., None]
            out *= valid
        return out, _Cache(self, rnn=rnn_cache, head=head_cache, valid=valid) if cache else None

    def step(self, x, state=None):
        """Advance the model by one time step, carrying the state: for generation.

        Feeding ``x`` one step at a time, each call given the ``state`` the
        previous one returned, gives the outputs of ``forward`` over the
        whole sequence (for readout "every"; for readout "last", the output
        after the steps fed so far). A language model samples its next
        input from ``out`` this way. Nothing is kept for a backward pass.

        Parameters
        ----------
        x : array_like, shape (B, D)
            The inputs of one step.
        state : list, optional
            The state returned by the previous call: one entry per layer,
            bottom first, an (B, H) array (for an LSTM, a tuple (h, c) of
            them). None starts every layer from zeros.

        Returns
        -------
        out : ndarray, shape (B, K)
            The readout of this step (logits for the softmax).
        state : list
            The state after this step, for the next call.

        Raises
        ------
        ValueError
            For a bidirectional model (its backward direction needs the
            whole sequence first), or a ``state`` of the wrong length.
        """
        if any(isinstance(layer, Bidirectional) for layer in self.rnn.layers):
            raise ValueError("step needs a unidirectional model: a bidirectional layer reads the "
                             "sequence backwards, so it cannot run one step at a time")
        x = float_array("x", x, ("B", self.input_size), self.dtype)
        n = len(self.rnn.layers)
        if state is None:
            state = [None] * n
        elif not isinstance(state, (list, tuple)) or len(state) != n:
            raise ValueError(f"state must be a list of {n} layer state(s), as step returns, "
                             f"or None; got {type(state).__name__}"
                             + (f" of length {len(state)}" if isinstance(state, (list, tuple)) else ""))
        h, new = x[None], []
        for i, (layer, s) in enumerate(zip(self.rnn.layers, state, strict=True)):
            cell = layer.cell
            try:
                if _takes_cache(cell):
                    h, s, _ = cell.forward(h, s, cache=False)
                else:
                    h, s, _ = cell.forward(h, s)
            except (TypeError, ValueError) as exc:
                if "state0" not in str(exc):
                    raise
                # the cell calls it state0; here it is the layer's entry of state
                raise type(exc)(str(exc).replace("state0", f"state[{i}]")) from None
            new.append(s)
        out, _ = self.head.forward(h[0])
        return out, new

    def backward(self, cache, dout):
        """Backpropagate dL/dout through the readout and every layer.

        Parameters
        ----------
        cache : object
            The cache this model's ``forward`` returned.
        dout : array_like, shape of ``out``
            The gradient dL/dout (ignored past each sequence's length).

        Returns
        -------
        dx : ndarray, shape (T, B, D)
            The gradient dL/dx.
        grads : dict of str to ndarray
            The gradient dL/d(each parameter), keyed and shaped like
            ``params``; also kept as ``model.grads``.
        """
        _check_cache(self, cache)
        dout = float_array("dout", dout, cache.head.h.shape[:-1] + (self.output_size,), self.dtype)
        if cache.valid is not None:
            # a select, not a product: NaN or Inf in the padding must not reach the gradients
            dout = np.where(cache.valid, dout, self.dtype.type(0))
        dh, g_head = self.head.backward(cache.head, dout)
        if self.readout == "every":
            dx, g_rnn = self.rnn.backward(cache.rnn, dh, None)
        else:
            dx, g_rnn = self.rnn.backward(cache.rnn, None, dh)
        self.grads = _prefixed([("", g_rnn), ("readout.", g_head)])
        return dx, self.grads
