"""The recurrent cells: one interface, compiled forward and backward passes.

Notation (the same in the docs, the reference and the kernels). A batch of B
sequences of length T with D features enters as ``x`` of shape (T, B, D),
time-major; the hidden state has H units. Rows are batch entries, so the
textbooks' ``W x_t`` is written ``x_t @ W`` here, as in the docs' ``x_t W``.
A cell with G gates keeps

* ``W`` (D, G*H): input weights, gate k in columns ``k*H:(k+1)*H``,
* ``U`` (H, G*H): recurrent weights, same column blocks,
* ``b`` (G*H,): biases,

in the gate order of ``cell.gates``, plus ``b_hg`` (H,) for the GRU with the
reset gate after the matmul, ``P`` (3, H) for the LSTM with peepholes and
``P`` (2, H) for the coupled-gate LSTM with peepholes.
"""
import secrets
from collections import namedtuple
from numbers import Real
from types import MappingProxyType

import numpy as np

from . import _kinds, _recurrent, _scan, _threads, _workspace  # noqa: F401  (_threads binds the BLAS thread hooks)
from ._limits import (backward_bytes, backward_plan, cell_bytes, check_fits,
                      forward_bytes, forward_plan)
from ._validation import (
    INT_MAX,
    check_dtype,
    check_flag,
    check_rng,
    check_size,
    float_array,
    kernel_array_problem,
    kernel_form,
    lengths_array,
    real_array,
    shaped_array,
)

__all__ = ["Cell", "RNN", "SimpleGRU", "GRU", "MGU", "LSTM", "CoupledLSTM", "MinGRU", "MinLSTM",
           "Cache"]


class Cache:
    """What a forward pass saved for its backward pass.

    Only the cell that made it can use it, and only while that cell's
    parameter arrays are the ones the forward pass read (replacing an entry
    of ``cell.params`` invalidates it; changing an array in place between
    forward and backward is not detected, so don't). All arrays are read-only.

    For the compiled cells the attributes are

    * ``x`` (T, B, D): the input (a private copy, zero past each length),
    * ``lengths`` (B,) or None,
    * ``pins``: the gates pinned by ``forward(..., gates=...)``, as (H,) arrays,
    * ``gates`` (T, B, G*H): the gate activations, gate k of ``cell.gates``
      in columns ``k*H:(k+1)*H``,
    * ``hs`` (T+1, B, H): ``hs[0]`` is h_0 and ``hs[1:]`` is ``y``,
    * ``cs`` (T+1, B, H): the cell states of the LSTM and the CoupledLSTM,
      ``cs[0]`` = c_0 (else None),
    * ``extra`` (T, B, H): GRU and MGU only: n_t = h_{t-1} U_g + b_hg (reset
      after) or r_t * h_{t-1} (reset before; f_t * h_{t-1} for the MGU; times
      the dropout mask in a training pass with recurrent dropout); for the
      LSTM with zoneout, the step's own c^_t before zoneout,
    * ``a`` (T, B, H): minGRU and minLSTM only: the coefficient a_t of their
      linear recurrence h_t = a_t * h_{t-1} + b_t (1 past each length);
      their ``gates`` hold the sigmoid gates and the linear candidate.
    * ``regularisation``: only with ``recurrent_dropout`` or ``zoneout``, a
      ``Regularisation`` (the dropout mask, the zoneout mode, rates and key
      of the pass), which the backward pass reads.

    The NumPy reference cells keep ``x``, ``lengths``, ``pins`` and ``steps``:
    a list of per-step caches (and ``regularisation``).

    Parameters
    ----------
    cell : Cell
        The cell whose ``forward`` made the cache.
    params : dict of str to ndarray
        The parameter arrays that forward pass read (kept to detect a
        replaced entry of ``cell.params``).
    **arrays
        What the pass saved, by name (listed above); arrays are made
        read-only and dicts are wrapped read-only.
    """

    def __init__(self, cell, params, **arrays):
        # Made by forward, never by hand: the arrays become read-only here.
        # (Set through __dict__, as __setattr__ refuses; setflags is about
        # twice as fast as assigning to .flags.writeable.)
        for name, value in arrays.items():
            if isinstance(value, np.ndarray):
                value.setflags(write=False)
            elif isinstance(value, dict):
                arrays[name] = MappingProxyType(dict(value))
        self.__dict__.update(arrays, cell=cell, params=MappingProxyType(dict(params)),
                             _names=tuple(arrays))

    def __setattr__(self, name, value):
        raise AttributeError("a Cache is read-only; run forward again for a new one")

    def __delattr__(self, name):
        raise AttributeError("a Cache is read-only; run forward again for a new one")

    def __repr__(self):
        parts = ", ".join(
            f"{n}={getattr(self, n).shape}" if isinstance(getattr(self, n), np.ndarray)
            else n for n in self._names
        )
        return f"Cache({type(self.cell).__name__}, {parts})"


def _placeholder(ndim, dtype):
    # Stands in for an array a cell does not use; the kernels never touch it.
    return np.zeros((1,) * ndim, dtype=dtype)


_PLACEHOLDERS = {
    (n, np.dtype(dt)): _placeholder(n, dt) for n in (1, 2, 3) for dt in (np.float32, np.float64)
}
_NO_LENGTHS = np.zeros(1, dtype=np.intp)
# keep (G,) with every gate learned, the kernels' usual case (read-only).
_ALL_KEPT = {(g, np.dtype(dt)): np.ones(g, dtype=dt) for g in (1, 2, 3, 4)
             for dt in (np.float32, np.float64)}
for _keep in _ALL_KEPT.values():
    _keep.flags.writeable = False


#: What a forward pass did about recurrent dropout and zoneout, kept in its
#: Cache for the backward pass (None when both are off): ``drop`` the
#: dropout mask m (B, H), 0 or 1 / (1 - p) (None: no dropout), ``zoneout``
#: 0 (off), 1 (training: the hashed Bernoulli masks of ``key``) or 2
#: (evaluation: the expectation), ``zone_h`` and ``zone_c`` the rates of h
#: and c (docs/theory/regularisation.rst).
Regularisation = namedtuple("Regularisation", "drop zoneout zone_h zone_c key")
ZONE_OFF, ZONE_TRAIN, ZONE_EVAL = 0, 1, 2


def _rate(name, value):
    # A dropout or zoneout rate: a real number in [0, 1), as a float.
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a number in [0, 1), got {type(value).__name__} {value!r}")
    value = float(value)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must lie in [0, 1), got {value!r}")
    return value


def _pass_key(seed):
    # A training pass's 64-bit key. An int in [0, 2**64) is mixed by one
    # SplitMix64 step and None takes fresh entropy: no NumPy generator to
    # build (some 8 us a pass); a Generator or SeedSequence (or a larger
    # int) gives its next 64 bits.
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, (bool, np.bool_)) \
            and 0 <= seed < 2**64:
        return _recurrent.seed_key(int(seed))
    if seed is None:
        return secrets.randbits(64)
    try:
        rng = np.random.default_rng(seed)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"seed must be an int, a numpy Generator or SeedSequence, or "
                        f"None, got {seed!r} ({exc})") from None
    return int(rng.integers(0, 2**64, dtype=np.uint64))


def is_regularised(cell):
    """Whether a cell has recurrent dropout or zoneout (which a training
    pass, ``forward(..., training=True)``, turns on); False for any object
    without them (a Cell subclass of another library, say)."""
    return bool(getattr(cell, "recurrent_dropout", 0) or getattr(cell, "zoneout", 0)
                or getattr(cell, "zoneout_c", None))


def _aligned(array, dtype):
    """A C-contiguous copy of ``array`` in ``dtype`` whose data starts on a
    64-byte boundary: OpenBLAS reads an aligned weight matrix up to twice as
    fast in the one-row products of a batch of 1."""
    array = np.asarray(array, dtype=dtype)
    buf = np.empty(array.nbytes + 64, dtype=np.uint8)
    offset = -buf.ctypes.data % 64
    out = buf[offset:offset + array.nbytes].view(dtype).reshape(array.shape)
    out[...] = array
    return out


def _glorot_uniform(rng, fan_in, fan_out, blocks):
    # U(-a, a) with a = sqrt(6 / (fan_in + fan_out)), per gate block.
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=(fan_in, blocks * fan_out))


def _orthogonal(rng, n, blocks):
    # One random orthogonal (n, n) matrix per gate block (QR of a Gaussian,
    # signs fixed so the distribution is uniform over orthogonal matrices).
    out = []
    for _ in range(blocks):
        q, r = np.linalg.qr(rng.standard_normal((n, n)))
        out.append(q * np.sign(np.diag(r)))
    return np.concatenate(out, axis=1)


class Cell:
    """Base class of the recurrent cells. Use a subclass.

    Theory: :doc:`/theory/index` (the notation, and backpropagation through
    time for every cell).

    Parameters
    ----------
    input_size : int
        D, the number of input features.
    hidden_size : int
        H, the number of hidden units.
    dtype : {numpy.float64, numpy.float32}
        Precision of the parameters and of every computation.
    seed : int, numpy.random.Generator or None
        Seeds the initialisation: input weights Glorot-uniform per gate block,
        recurrent weights orthogonal per gate block, biases zero (the
        forget-gate bias of the LSTM and the CoupledLSTM 1), extra biases and
        peepholes zero.
    recurrent_dropout : float in [0, 1), default 0
        Recurrent dropout (Gal & Ghahramani 2016) in a training pass
        (``forward(..., training=True)``): the state entering the recurrent
        product is h_{t-1} * m, one mask m (B, H) per pass, each unit 0 with
        probability p and 1 / (1 - p) otherwise. Evaluation passes are the
        cell without it. See :doc:`/theory/regularisation`.
    zoneout : float in [0, 1), default 0
        Zoneout (Krueger et al. 2017): in a training pass each unit of the
        state keeps its previous value with this probability, a fresh mask
        per step; in an evaluation pass, h_t = p h_{t-1} + (1 - p) h^_t.
        For the LSTM it applies to h, and to c unless ``zoneout_c`` is given.
    """

    #: tuple of str: the gate names, in the order of the column blocks of
    #: ``W``, ``U`` and ``b`` (and of ``cache.gates``).
    gates = ()
    _kind = None
    _lstm = False

    def __init__(self, input_size, hidden_size, *, dtype=np.float64, seed=None,
                 recurrent_dropout=0.0, zoneout=0.0):
        self._recurrent_dropout = _rate("recurrent_dropout", recurrent_dropout)
        self._zoneout = _rate("zoneout", zoneout)
        self._input_size = check_size("input_size", input_size)
        self._hidden_size = check_size("hidden_size", hidden_size)
        if len(self.gates) * self._hidden_size > INT_MAX:
            raise ValueError(f"hidden_size {hidden_size} is too large for 32-bit BLAS")
        self._dtype = check_dtype(dtype)
        check_fits(
            f"{type(self).__name__}(input_size={self._input_size}, hidden_size={self._hidden_size})",
            cell_bytes(self._input_size, self._hidden_size, len(self.gates), self._dtype.itemsize),
            "choose a smaller input_size or hidden_size",
        )
        rng = check_rng("seed", seed)
        self._params = {k: _aligned(v, self._dtype) for k, v in self._init_params(rng).items()}

    # The architecture is fixed at construction: the kernels rely on it.
    input_size = property(lambda self: self._input_size, doc="int: D, the input size.")
    hidden_size = property(lambda self: self._hidden_size, doc="int: H, the hidden size.")
    dtype = property(lambda self: self._dtype, doc="numpy.dtype: float32 or float64.")
    recurrent_dropout = property(lambda self: self._recurrent_dropout,
                                 doc="float: the recurrent dropout rate (0: off).")
    zoneout = property(lambda self: self._zoneout, doc="float: the zoneout rate of h (0: off).")

    @property
    def _zone_rates(self):
        # (rate of h, rate of c): the LSTM overrides
        return self._zoneout, 0.0

    def _regularisation_config(self):
        # The regularisation's constructor arguments that differ from their
        # defaults (so that a cell without them has the config it always had)
        out = {}
        if self._recurrent_dropout:
            out["recurrent_dropout"] = self._recurrent_dropout
        if self._zoneout:
            out["zoneout"] = self._zoneout
        return out

    # -- parameters -------------------------------------------------------

    def _init_params(self, rng):
        D, H, G = self._input_size, self._hidden_size, len(self.gates)
        params = {
            "W": _glorot_uniform(rng, D, H, G),
            "U": _orthogonal(rng, H, G),
            "b": np.zeros(G * H),
        }
        # the kind's extra biases and peepholes start at zero
        for name, shape in self.param_shapes.items():
            params.setdefault(name, np.zeros(shape))
        return params

    @property
    def _description(self):
        # This cell's kind (pyx_gru._kinds), found once from its class and form.
        kind = self.__dict__.get("_kind_description")
        if kind is None:
            kind = self._kind_description = _kinds.of(self)
        return kind

    @property
    def param_shapes(self):
        """dict: the name and shape of every parameter."""
        return self._description.param_shapes(self._input_size, self._hidden_size)

    @property
    def n_params(self):
        """int: the number of scalar parameters."""
        return int(sum(np.prod(s) for s in self.param_shapes.values()))

    @property
    def params(self):
        """dict of str to ndarray: the parameters, by name (see ``param_shapes``).

        Arrays may be changed in place (an optimiser step) or replaced by
        arrays of the same shape and dtype. Assigning a whole dict validates
        it, casts it to the cell's dtype and copies it.
        """
        return self._params

    @params.setter
    def params(self, new):
        if not isinstance(new, dict):
            raise TypeError(f"params must be a dict of arrays, got {type(new).__name__}")
        self._check_keys(new)
        self._params = {
            k: _aligned(float_array(f"params[{k!r}]", new[k], shape, self._dtype), self._dtype)
            for k, shape in self.param_shapes.items()
        }

    def _check_keys(self, params):
        expected = set(self.param_shapes)
        missing = sorted(expected - set(params))
        extra = sorted(set(params) - expected)
        if missing or extra:
            raise ValueError(
                f"{type(self).__name__} params need exactly the keys {sorted(expected)}; "
                f"missing {missing}, unexpected {extra}"
            )

    def _checked_params(self):
        # The kernels trust these arrays, so check them every call.
        p = self._params
        if not isinstance(p, dict):
            raise TypeError(f"cell.params must be a dict, got {type(p).__name__}")
        shapes = self.__dict__.get("_shapes")
        if shapes is None:  # fixed with the architecture: computed once
            shapes = self._shapes = self.param_shapes
        if p.keys() != shapes.keys():
            self._check_keys(p)
        for k, shape in shapes.items():
            got = kernel_array_problem(p[k], shape, self._dtype)
            if got is not None:
                raise ValueError(
                    f"params[{k!r}] must be a C-contiguous, aligned {self._dtype} array of shape "
                    f"{shape}, got {got} (assign cell.params = {{...}} to cast and copy)"
                )
        return dict(p)

    @property
    def config(self):
        """dict: the constructor arguments that fix the architecture (and the
        regularisation's, ``recurrent_dropout``, ``zoneout``, ``zoneout_c``,
        where they are not their defaults).
        """
        return {"input_size": self._input_size, "hidden_size": self._hidden_size,
                **self._regularisation_config()}

    def astype(self, dtype):
        """A new cell of the same architecture with the parameters cast to ``dtype``.

        Parameters
        ----------
        dtype : {numpy.float64, numpy.float32}
            The new cell's precision.

        Returns
        -------
        Cell
            A cell of the same class and ``config``; its parameters are
            copies, cast to ``dtype``.
        """
        new = type(self)(**self.config, dtype=dtype, seed=0)
        new.params = self._checked_params()
        return new

    def copy(self):
        """A new cell with a copy of the parameters.

        Returns
        -------
        Cell
            A cell of the same class, ``config`` and dtype, whose parameter
            arrays are copies (changing one leaves this cell's as they are).
        """
        return self.astype(self._dtype)

    def save(self, path):
        """Save the cell (sizes, form, dtype and parameters) to an ``.npz`` file.

        ``pyx_gru.load(path)`` gives back an equal cell, bitwise. The file is
        written to a temporary file in the same directory and renamed over
        ``path`` only once complete, so an interrupted save leaves any older
        file at ``path`` as it was.

        Parameters
        ----------
        path : str or os.PathLike
            Where to write, used exactly as given: no ``.npz`` suffix is
            added (unlike ``numpy.savez``), so ``load(path)`` reads it back.

        Returns
        -------
        pathlib.Path
            The path written.
        """
        from ._saving import save

        return save(self, path)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        return f"{type(self).__name__}({args}, dtype={self._dtype.name})"

    # -- the interface ----------------------------------------------------

    def forward(self, x, state0=None, lengths=None, *, gates=None, cache=True, training=False,
                seed=None):
        """Run the cell over whole sequences.

        Parameters
        ----------
        x : array_like, shape (T, B, D)
            Inputs, time-major. Any real dtype; cast to the cell's dtype.
            T = 0 and B = 0 are allowed.
        state0 : array_like of shape (B, H), or for LSTM a tuple (h0, c0), optional
            The initial state; None means zeros (for LSTM, either part may be None).
        lengths : array_like of int, shape (B,), optional
            Sequence b is ``x[:lengths[b], b]``: from step ``lengths[b]`` on its
            state is carried unchanged and ``y[t, b]`` is 0. Values in [0, T].
        gates : dict, optional
            Pin sigmoid gates to fixed values, for experiments and ablations:
            ``{"z": 1.0}`` makes a GRU keep its state, ``{"f": 0.3}`` turns the
            simplified GRU into a leaky RNN with lambda = 0.3. Keys are gate
            names of ``cell.gates`` other than ``"g"``; values are scalars or
            (H,) arrays in [0, 1]. A pinned gate ignores its weights, and the
            backward pass gives its pre-activation no gradient (so its rows of
            W, U and b get zero gradient).
        cache : bool, default True
            Keep what ``backward`` needs. ``cache=False`` is for inference (as
            PyTorch's forward under ``no_grad``): nothing is saved, so beyond
            ``y`` the pass needs memory for a few steps only, not for all T
            (the gate activations, (T, B, G*H), are G times the size of
            ``y``: 1 to 4), and x is not copied when it already has the
            cell's dtype and is C-contiguous and aligned. The outputs are the
            same as with a cache.
        training : bool, default False
            A training pass: ``recurrent_dropout`` and ``zoneout`` draw their
            masks (``pyx_gru.fit`` asks for it). False is an evaluation pass:
            no dropout, zoneout's expectation. A cell with neither option
            computes the same either way.
        seed : int, numpy.random.Generator, numpy.random.SeedSequence or None
            Seeds a training pass's masks: the same seed gives the same masks
            and bitwise the same results; None draws fresh entropy. An int
            in [0, 2**64) is mixed into the masks' key directly, a Generator
            gives its next 64 bits (so ``seed=7`` and
            ``seed=numpy.random.default_rng(7)`` give different masks, each
            repeatably). Unused by evaluation passes and by cells without
            the options.

        Returns
        -------
        y : ndarray, shape (T, B, H)
            The hidden state at every step (0 past each length). With a
            cache it is read-only (the backward pass reads it from there).
        state : ndarray (B, H), or for LSTM a tuple (h, c)
            The final state: each sequence's state after its last step.
        cache : Cache or None
            What ``backward`` needs; None with ``cache=False``.

        Notes
        -----
        NaN and Inf reach only what depends on them; nothing checks for them,
        so they never raise and cost nothing. A NaN in ``x[t, b]`` makes row
        b's outputs NaN from step t on (from step 0 for a NaN in row b of
        ``state0``), while the other rows, and row b before step t, stay
        bitwise as they would be without it. An Inf may instead saturate a
        gate: row b's later outputs are then NaN or finite. In ``backward``
        such a row's ``dx`` and ``dstate0`` become NaN, and so do the
        parameter gradients, which sum over all rows; a NaN in ``dy[t, b]``
        reaches ``dx[:t + 1, b]``, row b of ``dstate0`` and the parameter
        gradients only. Steps past a sequence's length are never read, so
        padding may hold anything.
        """
        cache = check_flag("cache", cache)
        training = check_flag("training", training)
        p = self._checked_params()
        x, h0, c0, lengths = self._check_inputs(x, state0, lengths, cache)
        pins = self._check_gates(gates)
        reg = self._regularisation(training, seed, x.shape[1])
        if reg is None:  # the call as it was before the options (and its bits)
            y, h, c, saved = self._forward(x, h0, c0, lengths, p, pins, cache)
        else:
            y, h, c, saved = self._forward(x, h0, c0, lengths, p, pins, cache, reg)
        return y, ((h, c) if self._lstm else h), saved

    def _regularisation(self, training, seed, B):
        """The Regularisation of a pass with a batch of B, or None when both
        options are off (or only dropout is on and the pass evaluates)."""
        zone_h, zone_c = self._zone_rates
        dropout = training and self._recurrent_dropout > 0
        zoned = zone_h > 0 or zone_c > 0
        if not (dropout or zoned):
            return None
        drop, key = None, 0
        if training:
            # Both options' masks come from one 64-bit key, each its own
            # stream: either option's masks are the same with the other on
            # or off.
            key = _pass_key(seed)
            if dropout:
                drop = np.empty((B, self._hidden_size), dtype=self._dtype)
                _recurrent.dropout_mask(key, self._recurrent_dropout, drop)
                drop.flags.writeable = False
        mode = ZONE_OFF if not zoned else ZONE_TRAIN if training else ZONE_EVAL
        return Regularisation(drop, mode, zone_h, zone_c, key)

    def backward(self, cache, dy=None, dstate=None):
        """Backpropagate through the whole sequence.

        Parameters
        ----------
        cache : Cache
            From this cell's ``forward``.
        dy : array_like, shape (T, B, H), optional
            The gradient dL/dy; None means zeros. Entries past a sequence's
            length are ignored.
        dstate : array_like of shape (B, H), or for LSTM a tuple (dh, dc), optional
            The gradient dL/d(final state); None means zeros.

        Returns
        -------
        dx : ndarray, shape (T, B, D)
            The gradient dL/dx (0 past each length).
        dstate0 : ndarray (B, H), or for LSTM a tuple (dh0, dc0)
            The gradient dL/d(initial state).
        dparams : dict of str to ndarray
            The gradient dL/d(each parameter), summed over steps and batch
            entries; same keys and shapes as ``params``.

        Notes
        -----
        For NaN and Inf in ``dy`` or in the forward pass's inputs, see
        ``forward``.
        """
        if not isinstance(cache, Cache):
            raise TypeError(f"cache must be the Cache returned by forward, got {type(cache).__name__}")
        if cache.cell is not self:
            raise ValueError(
                f"cache was made by another cell ({cache.cell!r}), not by this one ({self!r})"
            )
        p = self._checked_params()
        if not isinstance(cache.params, MappingProxyType) or cache.params.keys() != p.keys():
            raise ValueError("cache does not match this cell's parameters; run forward again")
        for k, v in cache.params.items():
            if p[k] is not v:
                raise ValueError(
                    f"params[{k!r}] was replaced after the forward pass that made this "
                    "cache; run forward again"
                )
        T, B = self._check_cache_input(cache)
        H, dt = self._hidden_size, self._dtype
        check_fits(lambda: f"{self!r}.backward of a cache with (T, B) = {(T, B)}",
                   self._pass_bytes(True, T, B), "run forward and backward in chunks of steps")
        if dy is None:
            dy = np.zeros((T, B, H), dtype=dt)
        else:
            dy = float_array("dy", dy, (T, B, H), dt)
        dh, dc = self._check_state("dstate", dstate, B)
        pins = getattr(cache, "pins", None)
        if not isinstance(pins, MappingProxyType) or not set(pins) <= set(self.pinnable_gates):
            raise ValueError("cache.pins does not belong to this cell: run forward again")
        reg = getattr(cache, "regularisation", None)
        if reg is None:
            dx, dh0, dc0, dparams = self._backward(cache, dy, dh, dc, p, pins)
        else:
            self._check_regularisation(reg, B)
            dx, dh0, dc0, dparams = self._backward(cache, dy, dh, dc, p, pins, reg)
        return dx, ((dh0, dc0) if self._lstm else dh0), dparams

    def _check_regularisation(self, reg, B):
        # The kernels read the mask with no bounds checks.
        if (not isinstance(reg, Regularisation) or reg.zoneout not in (0, 1, 2)
                or not isinstance(reg.key, int) or not 0 <= reg.key < 2**64
                or not all(isinstance(p, float) and 0 <= p < 1 for p in reg[2:4])):
            raise ValueError("cache.regularisation was not made by forward: run forward again")
        if reg.drop is not None:
            self._check_array("cache.regularisation.drop", reg.drop, (B, self._hidden_size),
                              self._dtype)

    # -- validation -------------------------------------------------------

    def _check_array(self, what, a, shape, dtype):
        got = kernel_array_problem(a, shape, dtype)
        if got is not None:
            raise ValueError(
                f"{what} should be a C-contiguous, aligned {np.dtype(dtype)} array of shape "
                f"{shape}, got {got}: this cache was not made by this cell's forward"
            )

    def _check_cache_input(self, cache):
        """(T, B) of a cache whose x and lengths are sound."""
        x = getattr(cache, "x", None)
        if not isinstance(x, np.ndarray) or x.ndim != 3:
            raise ValueError("cache.x is missing or not (T, B, D): run forward again")
        T, B = x.shape[:2]
        self._check_array("cache.x", x, (T, B, self._input_size), self._dtype)
        lengths = getattr(cache, "lengths", None)
        if lengths is not None:
            self._check_array("cache.lengths", lengths, (B,), np.intp)
            if B and (lengths.min() < 0 or lengths.max() > T):
                raise ValueError("cache.lengths lie outside [0, T]: run forward again")
        return T, B


    def _check_inputs(self, x, state0, lengths, cache=True):
        D, dt = self._input_size, self._dtype
        if not (type(x) is np.ndarray and x.ndim == 3 and x.shape[2] == D and x.dtype == dt):
            x = shaped_array("x", x, ("T", "B", D))
        T, B = x.shape[:2]
        if T * B > INT_MAX:
            raise ValueError(f"x has T*B = {T * B} rows, more than 32-bit BLAS allows ({INT_MAX})")
        check_fits(lambda: f"{self!r}.forward of x with (T, B, D) = {x.shape}",
                   self._pass_bytes(False, T, B, cache),
                   "run the sequence in chunks (each chunk's final state is the next "
                   "one's state0) or split the batch")
        if cache:
            x = _workspace.copy(x, dt)  # the cache's own copy (pooled: no page faults)
        else:
            x = kernel_form(x, dt)  # only read: no copy if it fits
        h0, c0 = self._check_state("state0", state0, B, fresh=self._fresh_state0)
        if lengths is not None:
            lengths = lengths_array(lengths, T, B)
            lengths.flags.writeable = False
            # Steps past a sequence's end never reach its outputs; zero them so
            # that padding (even NaN) cannot leak into the weight gradients.
            # (Without a cache there are no gradients, and x is the caller's.)
            for b in np.flatnonzero(lengths < T) if cache else ():
                x[lengths[b]:, b] = 0
        return x, h0, c0, lengths

    def _pass_bytes(self, backward, T, B, cache=True):
        # forward_bytes or backward_bytes, kept for the last few (T, B,
        # cache) until the team's policy changes: a small pass would spend
        # a microsecond or two on it
        key = (backward, T, B, cache, _recurrent.policy_epoch())
        memo = self.__dict__.get("_bytes_memo")
        if memo is None or len(memo) >= 64:
            memo = self._bytes_memo = {}
        nbytes = memo.get(key)
        if nbytes is None:
            nbytes = memo[key] = (backward_bytes(self, T, B) if backward
                                  else forward_bytes(self, T, B, cache))
        return nbytes

    @property
    def pinnable_gates(self):
        """tuple: the gates ``forward(..., gates=...)`` can pin (the sigmoid ones)."""
        return tuple(g for g in self.gates if g != "g")

    def _check_gates(self, gates):
        """{name: read-only (H,) array in [0, 1]} from forward's ``gates``."""
        if gates is None:
            return {}
        if not isinstance(gates, dict):
            raise TypeError(f"gates must be a dict such as {{'z': 1.0}}, got {type(gates).__name__}")
        H = self._hidden_size
        pins = {}
        for name, value in gates.items():
            if name not in self.pinnable_gates:
                raise ValueError(
                    f"gates: {type(self).__name__} can pin "
                    f"{list(self.pinnable_gates) or 'no gate'}, not {name!r}"
                )
            arr = real_array(f"gates[{name!r}]", value, f"() or ({H},)")
            if arr.ndim == 0:
                arr = np.full(H, arr)
            elif arr.shape != (H,):
                raise ValueError(f"gates[{name!r}] must be a scalar or have shape ({H},), got {arr.shape}")
            arr = np.array(arr, dtype=self._dtype, order="C")
            if not np.all((arr >= 0) & (arr <= 1)):
                raise ValueError(f"gates[{name!r}] must lie in [0, 1]")
            arr.flags.writeable = False
            pins[name] = arr
        return pins

    def _keep_and_pin(self, pins):
        """The kernels' form of ``pins``: keep (G,), 1 for a learned gate and 0
        for a pinned one, and pin (G, H), the pinned values."""
        G, dt = len(self.gates), self._dtype
        if not pins:
            return _ALL_KEPT[G, dt], _PLACEHOLDERS[2, dt]
        keep = np.ones(G, dtype=dt)
        pin = np.zeros((G, self._hidden_size), dtype=dt)
        for name, value in pins.items():
            k = self.gates.index(name)
            keep[k] = 0
            pin[k] = value
        return keep, pin

    # _forward copies state0 into hs[0] (and cs[0]), so it needs no private
    # copy of its own, and a part left None may be 0.0 (hs[0] = 0.0 fills it)
    _fresh_state0 = False

    def _check_state(self, name, state, B, fresh=True):
        """(h, c) as fresh writable arrays (B, H); c is None unless LSTM.
        Without ``fresh``, arrays the kernels can read (the caller's own when
        they are already so) and 0.0 for a part that is None."""
        H = self._hidden_size
        if self._lstm:
            if state is None:
                state = (None, None)
            if not isinstance(state, (tuple, list)) or len(state) != 2:
                raise TypeError(
                    f"{name} of {type(self).__name__} must be a tuple (h, c) of two "
                    f"({B}, {H}) arrays (or None), got {type(state).__name__}"
                )
            return (self._state_part(f"{name}[0] (h)", state[0], B, fresh),
                    self._state_part(f"{name}[1] (c)", state[1], B, fresh))
        if isinstance(state, tuple):
            raise TypeError(
                f"{name} of {type(self).__name__} is one ({B}, {H}) array, not a tuple "
                "(a tuple (h, c) is the state of the LSTM and CoupledLSTM)"
            )
        return self._state_part(name, state, B, fresh), None

    def _state_part(self, label, value, B, fresh=True):
        # One part of a state: zeros for None, else a checked private copy
        # (without fresh: 0.0 for None, else the checked array, a copy only
        # if it must be).
        if value is None:
            return np.zeros((B, self._hidden_size), dtype=self._dtype) if fresh else 0.0
        return float_array(label, value, (B, self._hidden_size), self._dtype, copy=fresh)

    # -- compiled passes --------------------------------------------------

    def _extra_arrays(self, p):
        ph1, ph2 = _PLACEHOLDERS[1, self._dtype], _PLACEHOLDERS[2, self._dtype]
        return p.get("b_hg", ph1), p.get("P", ph2), "P" in p

    def _workspace_or_placeholder(self, shape):
        # Room for U and W packed for the per-step products (U.T for
        # backward), or a placeholder when they call the BLAS (size 0).
        dt = self._dtype
        return _workspace.empty(shape, dtype=dt) if shape[0] else _PLACEHOLDERS[1, dt]

    def _forward(self, x, h0, c0, lengths, p, pins, cache=True, reg=None):
        T, B, D = x.shape
        H, dt = self._hidden_size, self._dtype
        ph3 = _PLACEHOLDERS[3, dt]
        ph2 = _PLACEHOLDERS[2, dt]
        b_hg, P, peephole = self._extra_arrays(p)
        # With a cache every step keeps its gates, c and extra; without, they
        # are rings of a few steps (see _recurrent.forward). The shapes are
        # the memory plan's (_limits.forward_plan), which the estimate counts.
        dropout = reg is not None and reg.drop is not None
        zoneout = 0 if reg is None else reg.zoneout
        plan = forward_plan(self._description, T, B, D, H, dt.itemsize, cache, dropout,
                            bool(zoneout))
        gates = _workspace.empty(plan["gates"], dtype=dt)
        hs = _workspace.empty(plan["hs"], dtype=dt)
        hs[0] = h0
        h = np.empty(plan["h"], dtype=dt)
        if "cs" in plan:
            cs = _workspace.empty(plan["cs"], dtype=dt)
            cs[0] = c0
            c = np.empty(plan["c"], dtype=dt)
        else:
            cs, c = ph3, _PLACEHOLDERS[2, dt]
        extra = _workspace.empty(plan["extra"], dtype=dt) if "extra" in plan else ph3
        hu = np.empty(plan["hu"], dtype=dt)
        packed = self._workspace_or_placeholder(plan["packed"])
        keep, pin = self._keep_and_pin(pins)
        # recurrent dropout's mask and masked state rows, zoneout's rates and key
        drop, hm = (reg.drop, np.empty(plan["hm"], dtype=dt)) if dropout else (ph2, ph2)
        zone_h, zone_c, key = (0.0, 0.0, 0) if reg is None else reg[2:]
        # With B = 0 there is nothing to compute (and the kernel would take
        # the address of element 0 of empty arrays).
        if B:
            _recurrent.forward(
                self._kind, peephole, lengths is not None, x, p["W"], p["U"], p["b"],
                b_hg, P, _NO_LENGTHS if lengths is None else lengths,
                gates, hs, cs, extra, h, c, hu, packed, keep, pin,
                dropout, drop, hm, zoneout, zone_h, zone_c, key,
            )
        extras = {} if reg is None else {"regularisation": reg}
        saved = Cache(
            self, p, x=x, lengths=lengths, pins=pins, gates=gates, hs=hs,
            cs=cs if self._lstm else None, extra=extra if extra is not ph3 else None, **extras,
        ) if cache else None
        return hs[1:], h, (c if self._lstm else None), saved

    def _backward(self, cache, dy, dh, dc, p, pins, reg=None):
        x, lengths = cache.x, getattr(cache, "lengths", None)
        T, B, D = x.shape
        H, GH, dt = self._hidden_size, len(self.gates) * self._hidden_size, self._dtype
        # The kernel reads these with no bounds checks: their shapes must be
        # exact (and a Cache built by hand may lack them).
        self._check_array("cache.gates", getattr(cache, "gates", None), (T, B, GH), dt)
        self._check_array("cache.hs", getattr(cache, "hs", None), (T + 1, B, H), dt)
        if self._lstm:
            self._check_array("cache.cs", getattr(cache, "cs", None), (T + 1, B, H), dt)
        kind = self._description
        zoneout = 0 if reg is None else reg.zoneout
        uses_extra = kind.extra or self._lstm and zoneout
        if uses_extra:
            self._check_array("cache.extra", getattr(cache, "extra", None), (T, B, H), dt)
        ph2, ph3 = _PLACEHOLDERS[2, dt], _PLACEHOLDERS[3, dt]
        _, P, peephole = self._extra_arrays(p)
        grads = {k: np.zeros(v.shape, dtype=dt) for k, v in p.items()}
        # The memory plan (_limits.backward_plan): the gate gradients of K
        # steps at a time (_limits.chunk_steps), which the estimate counts.
        dropout = reg is not None and reg.drop is not None
        plan = backward_plan(kind, T, B, D, H, dt.itemsize, dropout, bool(zoneout))
        dx = _workspace.empty(plan["dx"], dtype=dt)
        dA = _workspace.empty(plan["dA"], dtype=dt)
        dxg = _workspace.empty(plan["dxg"], dtype=dt) if "dxg" in plan else ph3
        work = np.empty(plan["work"], dtype=dt)
        hmc = _workspace.empty(plan["hmc"], dtype=dt) if dropout else ph3
        packed = self._workspace_or_placeholder(plan["packed"])
        acc = np.empty(GH + 4 * H, dtype=np.float64)  # float64 sums for db, db_hg and dP
        # With T * B = 0 the gradients are zero and dstate0 is dstate.
        if T * B:
            _recurrent.backward(
                self._kind, peephole, lengths is not None, x, p["W"], p["U"], P,
                _NO_LENGTHS if lengths is None else lengths,
                cache.gates, cache.hs, cache.cs if self._lstm else ph3,
                cache.extra if uses_extra else ph3,
                dy,
                dh, ph2 if dc is None else dc, dA, dxg, work, packed, dx,
                grads["W"], grads["U"], grads["b"],
                grads.get("b_hg", _PLACEHOLDERS[1, dt]), grads.get("P", ph2), acc,
                self._keep_and_pin(pins)[0],
                dropout, reg.drop if dropout else ph2, hmc, zoneout,
                0.0 if reg is None else reg.zone_h, 0.0 if reg is None else reg.zone_c,
                0 if reg is None else reg.key,
            )
        return dx, dh, dc, grads


class RNN(Cell):
    """Vanilla (Elman) RNN with tanh.

    h_t = tanh(x_t W + h_{t-1} U + b). Gates: ``("g",)``.

    Theory: :doc:`/theory/rnn`.

    Parameters
    ----------
    input_size : int
        D, the number of input features.
    hidden_size : int
        H, the number of hidden units.
    dtype : {numpy.float64, numpy.float32}, default numpy.float64
        Precision of the parameters and of every computation.
    seed : int, numpy.random.Generator or None, optional
        Seeds the initialisation (see ``Cell``); None draws fresh entropy.
    recurrent_dropout, zoneout : float in [0, 1), default 0
        Recurrent dropout and zoneout in training passes (see ``Cell``).
    """

    gates = ("g",)
    _kind = _recurrent.RNN


class SimpleGRU(Cell):
    """The simplified GRU: one gate f mixes the old state and the candidate.

    ::

        f_t = sigmoid(x_t W_f + h_{t-1} U_f + b_f)
        g_t = tanh(x_t W_g + h_{t-1} U_g + b_g)
        h_t = f_t * h_{t-1} + (1 - f_t) * g_t

    f = 1 keeps the state; f = 0 is the vanilla RNN. Gates: ``("f", "g")``.

    Theory: :doc:`/theory/simple_gru`.

    Parameters
    ----------
    input_size : int
        D, the number of input features.
    hidden_size : int
        H, the number of hidden units.
    dtype : {numpy.float64, numpy.float32}, default numpy.float64
        Precision of the parameters and of every computation.
    seed : int, numpy.random.Generator or None, optional
        Seeds the initialisation (see ``Cell``); None draws fresh entropy.
    recurrent_dropout, zoneout : float in [0, 1), default 0
        Recurrent dropout and zoneout in training passes (see ``Cell``).
    """

    gates = ("f", "g")
    _kind = _recurrent.SIMPLE_GRU


class GRU(Cell):
    """Gated recurrent unit, with the reset gate before or after the matmul.

    ::

        z_t = sigmoid(x_t W_z + h_{t-1} U_z + b_z)          (update)
        r_t = sigmoid(x_t W_r + h_{t-1} U_r + b_r)          (reset)
        reset="after" (cuDNN, PyTorch, Keras' default):
            g_t = tanh(x_t W_g + b_g + r_t * (h_{t-1} U_g + b_hg))
        reset="before" (Cho et al. 2014):
            g_t = tanh(x_t W_g + b_g + (r_t * h_{t-1}) U_g)
        h_t = z_t * h_{t-1} + (1 - z_t) * g_t

    z = 1 keeps the state. Gates: ``("z", "r", "g")``; ``reset="after"`` adds
    the parameter ``b_hg`` (H,), zero at initialisation.

    Theory: :doc:`/theory/gru`; one step in numbers: :doc:`/theory/worked_step`.

    Parameters
    ----------
    input_size : int
        D, the number of input features.
    hidden_size : int
        H, the number of hidden units.
    reset : {"after", "before"}, default "after"
        Where the reset gate acts: on h_{t-1} U_g + b_hg (after the matmul)
        or on h_{t-1} (before it).
    dtype : {numpy.float64, numpy.float32}, default numpy.float64
        Precision of the parameters and of every computation.
    seed : int, numpy.random.Generator or None, optional
        Seeds the initialisation (see ``Cell``); None draws fresh entropy.
    recurrent_dropout, zoneout : float in [0, 1), default 0
        Recurrent dropout and zoneout in training passes (see ``Cell``).
    """

    gates = ("z", "r", "g")

    def __init__(self, input_size, hidden_size, *, reset="after", dtype=np.float64, seed=None,
                 recurrent_dropout=0.0, zoneout=0.0):
        if reset not in ("after", "before"):
            raise ValueError(f'reset must be "after" or "before", got {reset!r}')
        self._reset = reset
        self._kind = _recurrent.GRU_AFTER if reset == "after" else _recurrent.GRU_BEFORE
        super().__init__(input_size, hidden_size, dtype=dtype, seed=seed,
                         recurrent_dropout=recurrent_dropout, zoneout=zoneout)

    reset = property(lambda self: self._reset, doc='str: "after" or "before" (fixed).')

    @property
    def config(self):
        """dict: the constructor arguments that fix the architecture, ``reset`` among them."""
        return {**super().config, "reset": self.reset}


class MGU(Cell):
    """The minimal gated unit: the simplified GRU whose one gate f also resets
    the state inside the candidate, with the reset before or after the matmul.

    ::

        f_t = sigmoid(x_t W_f + h_{t-1} U_f + b_f)
        reset="after" (Flax's MGUCell):
            g_t = tanh(x_t W_g + b_g + f_t * (h_{t-1} U_g + b_hg))
        reset="before":
            g_t = tanh(x_t W_g + b_g + (f_t * h_{t-1}) U_g)
        h_t = f_t * h_{t-1} + (1 - f_t) * g_t

    A GRU whose update and reset gates are one gate (z = r = f); f = 1
    keeps the state. Zhou et al. (2016) write the mix the other way round,
    h_t = (1 - f_t) h_{t-1} + f_t g_t, with the same f_t resetting the
    candidate: their f is this cell's 1 - f in the mix but f in the reset,
    so their MGU is this one with the reset gate 1 - f (not a relabelling).
    Gates: ``("f", "g")``; ``reset="after"`` adds the parameter ``b_hg``
    (H,), zero at initialisation.

    Parameters
    ----------
    input_size : int
        D, the number of input features.
    hidden_size : int
        H, the number of hidden units.
    reset : {"after", "before"}, default "after"
        Where the gate resets the state: on h_{t-1} U_g + b_hg (after the
        matmul, as Flax's MGUCell) or on h_{t-1} (before it).
    dtype : {numpy.float64, numpy.float32}, default numpy.float64
        Precision of the parameters and of every computation.
    seed : int, numpy.random.Generator or None, optional
        Seeds the initialisation (see ``Cell``); None draws fresh entropy.
    recurrent_dropout, zoneout : float in [0, 1), default 0
        Recurrent dropout and zoneout in training passes (see ``Cell``).
    """

    gates = ("f", "g")

    def __init__(self, input_size, hidden_size, *, reset="after", dtype=np.float64, seed=None,
                 recurrent_dropout=0.0, zoneout=0.0):
        if reset not in ("after", "before"):
            raise ValueError(f'reset must be "after" or "before", got {reset!r}')
        self._reset = reset
        self._kind = _recurrent.MGU_AFTER if reset == "after" else _recurrent.MGU_BEFORE
        super().__init__(input_size, hidden_size, dtype=dtype, seed=seed,
                         recurrent_dropout=recurrent_dropout, zoneout=zoneout)

    reset = property(lambda self: self._reset, doc='str: "after" or "before" (fixed).')

    @property
    def config(self):
        """dict: the constructor arguments that fix the architecture, ``reset`` among them."""
        return {**super().config, "reset": self.reset}


class _CellState:
    """What the cells with a cell state c (LSTM, CoupledLSTM) share: the
    optional peepholes, the forget-gate bias that starts at 1, and c's own
    zoneout rate, ``zoneout_c``, None meaning ``zoneout``'s."""

    def __init__(self, input_size, hidden_size, *, peephole=False, dtype=np.float64, seed=None,
                 recurrent_dropout=0.0, zoneout=0.0, zoneout_c=None):
        if not isinstance(peephole, (bool, np.bool_)):
            raise TypeError(f"peephole must be True or False, got {peephole!r}")
        self._peephole = bool(peephole)
        self._set_zoneout_c(zoneout_c)
        super().__init__(input_size, hidden_size, dtype=dtype, seed=seed,
                         recurrent_dropout=recurrent_dropout, zoneout=zoneout)

    peephole = property(lambda self: self._peephole, doc="bool: peepholes or not (fixed).")

    def _init_params(self, rng):
        p = super()._init_params(rng)
        f = self.gates.index("f")
        H = self._hidden_size
        p["b"][f * H:(f + 1) * H] = 1.0
        return p

    @property
    def config(self):
        """dict: the constructor arguments that fix the architecture, ``peephole`` among them."""
        return {**super().config, "peephole": self.peephole}

    zoneout_c = property(lambda self: self._zoneout_c,
                         doc="float or None: the zoneout rate of c (None: ``zoneout``'s).")

    def _set_zoneout_c(self, zoneout_c):
        self._zoneout_c = None if zoneout_c is None else _rate("zoneout_c", zoneout_c)

    @property
    def _zone_rates(self):
        return self._zoneout, self._zoneout if self._zoneout_c is None else self._zoneout_c

    def _regularisation_config(self):
        out = super()._regularisation_config()
        if self._zoneout_c is not None:
            out["zoneout_c"] = self._zoneout_c
        return out


class LSTM(_CellState, Cell):
    """Long short-term memory, optionally with diagonal peepholes.

    ::

        i_t = sigmoid(x_t W_i + h_{t-1} U_i + b_i + p_i * c_{t-1})
        f_t = sigmoid(x_t W_f + h_{t-1} U_f + b_f + p_f * c_{t-1})
        g_t = tanh(x_t W_g + h_{t-1} U_g + b_g)
        c_t = f_t * c_{t-1} + i_t * g_t
        o_t = sigmoid(x_t W_o + h_{t-1} U_o + b_o + p_o * c_t)
        h_t = o_t * tanh(c_t)

    The peephole terms are there only with ``peephole=True``, which adds the
    parameter ``P`` (3, H) = [p_i; p_f; p_o], zero at initialisation. The state
    is the tuple (h, c). Gates: ``("i", "f", "g", "o")``; the forget-gate bias
    starts at 1.

    Theory: :doc:`/theory/lstm`.

    Parameters
    ----------
    input_size : int
        D, the number of input features.
    hidden_size : int
        H, the number of hidden units.
    peephole : bool, default False
        Add the diagonal peephole connections, the parameter ``P`` (3, H).
    dtype : {numpy.float64, numpy.float32}, default numpy.float64
        Precision of the parameters and of every computation.
    seed : int, numpy.random.Generator or None, optional
        Seeds the initialisation (see ``Cell``); None draws fresh entropy.
    recurrent_dropout, zoneout : float in [0, 1), default 0
        Recurrent dropout and zoneout (see ``Cell``); zoneout acts on h and c.
    zoneout_c : float in [0, 1) or None, default None
        The zoneout rate of c when it should differ from h's (Krueger et
        al. found c 0.5 and h 0.05 best on character-level Penn Treebank);
        None: ``zoneout``. c and h get independent masks either way.
    """

    gates = ("i", "f", "g", "o")
    _kind = _recurrent.LSTM
    _lstm = True



class _ScanCell(Cell):
    """A cell whose gates read only x_t (minGRU, minLSTM): no recurrent
    weights U, so a pass is one product over all steps plus the linear
    recurrence h_t = a_t * h_{t-1} + b_t, run by ``pyx_gru._scan`` (split
    over the team by batch rows, or by blocks of time when the batch has
    fewer than 16 rows a thread). A forward pass without a cache
    holds only a chunk of rows of the gates and a_t per thread (and, split
    by time, every step's a_t: as many numbers as its output). Split by
    rows, the results are bitwise those of one thread (dW to rounding: the
    BLAS's split product); split by time, the blocks regroup the products
    of the a_t, so results differ from one thread's to rounding only. For
    one team size they are bitwise the same."""

    def __init__(self, input_size, hidden_size, *, dtype=np.float64, seed=None,
                 recurrent_dropout=0.0, zoneout=0.0):
        # No product with U to drop the state from, and zoneout is not in
        # the scan's kernels: both are refused rather than ignored.
        for name, rate in (("recurrent_dropout", recurrent_dropout), ("zoneout", zoneout)):
            if _rate(name, rate) != 0:
                raise ValueError(f"{name}: {type(self).__name__} has no recurrent product and "
                                 f"takes no {name}; got {rate!r}, expected 0")
        super().__init__(input_size, hidden_size, dtype=dtype, seed=seed)

    def _init_params(self, rng):
        # W Glorot-uniform per gate block, b zero (no U to initialise)
        D, H, G = self._input_size, self._hidden_size, len(self.gates)
        return {"W": _glorot_uniform(rng, D, H, G), "b": np.zeros(G * H)}

    def _forward(self, x, h0, c0, lengths, p, pins, cache=True):
        T, B, _ = x.shape
        dt = self._dtype
        plan = forward_plan(self._description, T, B, self._input_size, self._hidden_size,
                            dt.itemsize, cache)
        # without a cache the kernel keeps only a chunk of the gates and a_t
        gates = _workspace.empty(plan["gates"], dtype=dt) if cache else None
        a = _workspace.empty(plan["a"], dtype=dt) if cache else None
        hs = _workspace.empty(plan["hs"], dtype=dt)
        hs[0] = h0
        h = np.empty(plan["h"], dtype=dt)
        keep, pin = self._keep_and_pin(pins)
        _scan.forward(self._kind, lengths is not None, x, p["W"], p["b"],
                      _NO_LENGTHS if lengths is None else lengths, keep, pin, gates, a, hs, h)
        saved = Cache(self, p, x=x, lengths=lengths, pins=pins, gates=gates, hs=hs, a=a,
                      cs=None, extra=None) if cache else None
        return hs[1:], h, None, saved

    def _backward(self, cache, dy, dh, dc, p, pins):
        x, lengths = cache.x, getattr(cache, "lengths", None)
        T, B, D = x.shape
        H, GH, dt = self._hidden_size, len(self.gates) * self._hidden_size, self._dtype
        # The kernel reads these with no bounds checks: their shapes must be exact.
        self._check_array("cache.gates", getattr(cache, "gates", None), (T, B, GH), dt)
        self._check_array("cache.hs", getattr(cache, "hs", None), (T + 1, B, H), dt)
        self._check_array("cache.a", getattr(cache, "a", None), (T, B, H), dt)
        plan = backward_plan(self._description, T, B, D, H, dt.itemsize)
        dx = _workspace.empty(plan["dx"], dtype=dt)
        dA = _workspace.empty(plan["dA"], dtype=dt)
        grads = {"W": np.empty(p["W"].shape, dtype=dt), "b": np.empty(p["b"].shape, dtype=dt)}
        _scan.backward(self._kind, lengths is not None, x, p["W"],
                       _NO_LENGTHS if lengths is None else lengths,
                       self._keep_and_pin(pins)[0], cache.gates, cache.a, cache.hs, dy, dh,
                       dA, dx, grads["W"], grads["b"])
        return dx, dh, None, grads


class MinGRU(_ScanCell):
    """The minGRU of Feng et al. (2024): a GRU whose gate and candidate read x_t alone.

    ::

        z_t = sigmoid(x_t W_z + b_z)
        g_t = x_t W_g + b_g                    (the candidate, linear)
        h_t = (1 - z_t) * h_{t-1} + z_t * g_t

    The sequential mode of Feng et al.'s "Were RNNs All We Needed?"
    (arXiv:2410.01201), in this toolkit's notation (their h-tilde is g).
    Note the mix: z = 0 keeps the state (the other GRUs here keep it at
    z = 1). No recurrent weights: ``params`` are ``W`` (D, 2H) and ``b``
    (2H,). The whole sequence is one product x @ W over all T*B rows and
    the linear recurrence h_t = a_t * h_{t-1} + b_t with a_t = 1 - z_t,
    b_t = z_t * g_t, which the kernels split over threads (results equal
    to rounding across thread counts, bitwise for one; see ``_ScanCell``).
    Gates: ``("z", "g")``.

    Theory: :doc:`/theory/mingru`.

    Parameters
    ----------
    input_size : int
        D, the number of input features.
    hidden_size : int
        H, the number of hidden units.
    dtype : {numpy.float64, numpy.float32}, default numpy.float64
        Precision of the parameters and of every computation.
    seed : int, numpy.random.Generator or None, optional
        Seeds the initialisation: W Glorot-uniform per gate block, b zero.
    recurrent_dropout, zoneout : float, default 0
        Only 0: with no product with U and no zoneout in the scan's kernels,
        any other rate is a ValueError.
    """

    gates = ("z", "g")
    _kind = _scan.MINGRU


class MinLSTM(_ScanCell):
    """The minLSTM of Feng et al. (2024): forget and input gates from x_t alone,
    normalised to sum to 1, and no cell state or output gate.

    ::

        f_t = sigmoid(x_t W_f + b_f)
        i_t = sigmoid(x_t W_i + b_i)
        g_t = x_t W_g + b_g                    (the candidate, linear)
        f'_t = f_t / (f_t + i_t),  i'_t = i_t / (f_t + i_t)
        h_t = f'_t * h_{t-1} + i'_t * g_t

    The sequential mode of Feng et al.'s "Were RNNs All We Needed?"
    (arXiv:2410.01201), with their h-tilde written g. f' + i' = 1, so h_t
    is a convex mix of h_{t-1} and g_t. No recurrent weights: ``params`` are
    ``W`` (D, 3H) and ``b`` (3H,). Pinning both f and i to 0 (``gates=``)
    makes f' and i' 0/0 = NaN. Run as minGRU's linear recurrence, with a_t =
    f'_t and b_t = i'_t * g_t (see ``MinGRU`` for threads and memory).
    Gates: ``("f", "i", "g")``.

    Theory: :doc:`/theory/mingru`.

    Parameters
    ----------
    input_size : int
        D, the number of input features.
    hidden_size : int
        H, the number of hidden units.
    dtype : {numpy.float64, numpy.float32}, default numpy.float64
        Precision of the parameters and of every computation.
    seed : int, numpy.random.Generator or None, optional
        Seeds the initialisation: W Glorot-uniform per gate block, b zero.
    recurrent_dropout, zoneout : float, default 0
        Only 0: with no product with U and no zoneout in the scan's kernels,
        any other rate is a ValueError.
    """

    gates = ("f", "i", "g")
    _kind = _scan.MINLSTM
class CoupledLSTM(_CellState, Cell):
    """The LSTM with coupled input and forget gates (CIFG), optionally with
    diagonal peepholes: the input gate is i_t = 1 - f_t.

    ::

        f_t = sigmoid(x_t W_f + h_{t-1} U_f + b_f + p_f * c_{t-1})
        g_t = tanh(x_t W_g + h_{t-1} U_g + b_g)
        c_t = f_t * c_{t-1} + (1 - f_t) * g_t
        o_t = sigmoid(x_t W_o + h_{t-1} U_o + b_o + p_o * c_t)
        h_t = o_t * tanh(c_t)

    The variant CIFG of Greff et al. (2017, "LSTM: A Search Space Odyssey"):
    the LSTM's input gate is gone, and 1 - f_t takes its place, so a unit
    writes into its cell exactly as much as it forgets (c_t is a convex
    mix of c_{t-1} and g_t, as the GRU's h_t). Gates: ``("f", "g", "o")``,
    three blocks instead of the LSTM's four (``W`` (D, 3H), ``U`` (H, 3H),
    ``b`` (3H,)): the input gate has no weights, no column block and no
    entry in ``cache.gates`` (it is 1 - f), and cannot be pinned apart from
    f. The peephole terms are there only with ``peephole=True``, which adds
    the parameter ``P`` (2, H) = [p_f; p_o] (no row for the input gate),
    zero at initialisation. The state is the tuple (h, c); the forget-gate
    bias starts at 1.

    Theory: :doc:`/theory/cifg`.

    Parameters
    ----------
    input_size : int
        D, the number of input features.
    hidden_size : int
        H, the number of hidden units.
    peephole : bool, default False
        Add the diagonal peephole connections, the parameter ``P`` (2, H).
    dtype : {numpy.float64, numpy.float32}, default numpy.float64
        Precision of the parameters and of every computation.
    seed : int, numpy.random.Generator or None, optional
        Seeds the initialisation (see ``Cell``); None draws fresh entropy.
    recurrent_dropout, zoneout : float in [0, 1), default 0
        Recurrent dropout and zoneout (see ``Cell``); zoneout acts on h and c.
    zoneout_c : float in [0, 1) or None, default None
        The zoneout rate of c when it should differ from h's; None:
        ``zoneout``.
    """

    gates = ("f", "g", "o")
    _kind = _recurrent.CIFG
    _lstm = True

