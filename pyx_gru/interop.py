"""Weights from and to PyTorch and Keras, converted exactly.

Which GRU do you have? The peers agree on the update rule
h_t = z * h_{t-1} + (1 - z) * g (z = 1 keeps the past), but not on the order
of the gate blocks, on the layout of the weights, on where the reset gate
acts, or on how many biases there are:

=========  ================  ================================  ==============================  ======================
peer       gate order        input / recurrent weights         biases                          reset gate
=========  ================  ================================  ==============================  ======================
pyx_gru    RNN: g            ``W`` (D, G*H)                    ``b`` (G*H,); GRU with reset    ``reset="after"`` or
           GRU: z r g        ``U`` (H, G*H)                    after also ``b_hg`` (H,)        ``reset="before"``
           LSTM: i f g o
PyTorch    RNN: g            ``weight_ih_l0`` (G*H, D)         ``bias_ih_l0`` (G*H,)           after only
           GRU: r z n        ``weight_hh_l0`` (G*H, H)         ``bias_hh_l0`` (G*H,)
           LSTM: i f g o
Keras 3    SimpleRNN: h      ``kernel`` (D, G*H)               ``bias`` (G*H,); GRU with       ``reset_after=True``
           GRU: z r h        ``recurrent_kernel`` (H, G*H)     ``reset_after=True``: (2, 3H)   (default) or ``False``
           LSTM: i f c o
=========  ================  ================================  ==============================  ======================

PyTorch's matrices are the transposes of ours (it multiplies ``W @ x``, we
multiply ``x @ W``), and its GRU lists the reset gate first. PyTorch's ``*Cell``
classes (``GRUCell``, ...) use the same names without ``_l0``.

The rules for the two biases. Where a peer adds an input bias and a recurrent
bias to the same pre-activation (PyTorch's every gate but the GRU's n, Keras'
GRU z and r with ``reset_after=True``), only their sum matters: ``from_*``
adds them into our ``b``; ``to_*`` puts all of ``b`` in the input bias and 0
in the recurrent one, so the outputs are identical though the split may differ
from the one you started with. The GRU candidate's recurrent bias (PyTorch's
``b_hn``, Keras' ``bias[1, 2H:]``) sits inside the reset product and is not
redundant: it is our ``b_hg``.

Gradients are converted with ``gradient=True``: a sum of two biases passes the
same gradient to both, so both receive ``db`` of that gate, exactly as
autograd reports them.

Not every pyx_gru cell exists elsewhere: the simplified GRU, the MGU, the
coupled-gate LSTM (``CoupledLSTM``), the GRU with the reset gate before the
matmul (PyTorch) and the peephole LSTM (both) raise a ``ValueError`` on
conversion.
"""
import warnings

import numpy as np

from ._cells import GRU, LSTM, RNN, Cell, SimpleGRU
from ._validation import FLOAT_DTYPES, float_array

__all__ = ["from_torch", "to_torch", "from_keras", "to_keras"]

# Gate order of each peer, in our gate names.
_TORCH_ORDER = {"RNN": ("g",), "GRU": ("r", "z", "g"), "LSTM": ("i", "f", "g", "o")}


# --------------------------------------------------------------------------
# gate blocks: the one representation both directions go through
# --------------------------------------------------------------------------

def _blocks(cell, params):
    """{gate: (W_k (D, H), U_k (H, H), b_k (H,))} of a cell's params."""
    H = cell.hidden_size
    out = {}
    for k, gate in enumerate(cell.gates):
        cols = slice(k * H, (k + 1) * H)
        out[gate] = (params["W"][:, cols], params["U"][:, cols], params["b"][cols])
    return out


def _from_blocks(cell, blocks, extra=None):
    """Set the cell's params from {gate: (W_k, U_k, b_k)} (plus extra keys)."""
    params = {
        "W": np.concatenate([blocks[g][0] for g in cell.gates], axis=1),
        "U": np.concatenate([blocks[g][1] for g in cell.gates], axis=1),
        "b": np.concatenate([blocks[g][2] for g in cell.gates]),
        **(extra or {}),
    }
    cell.params = params
    return cell


def _checked(cell, params):
    """``params`` (default ``cell.params``) with the keys and shapes of the cell."""
    if params is None:
        return cell.params
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict like cell.params, got {type(params).__name__}")
    cell._check_keys(params)
    return {
        k: float_array(f"params[{k!r}]", params[k], shape, cell.dtype)
        for k, shape in cell.param_shapes.items()
    }


def _dtype_of(array, who):
    dt = np.asarray(array).dtype
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"{who} holds {dt} weights; pyx_gru cells are float32 or float64")
    return dt


# --------------------------------------------------------------------------
# PyTorch
# --------------------------------------------------------------------------

def _torch_kind(cell):
    if isinstance(cell, SimpleGRU):
        raise ValueError("PyTorch has no simplified GRU")
    if isinstance(cell, GRU):
        if cell.reset != "after":
            raise ValueError('PyTorch\'s GRU puts the reset gate after the matmul: only GRU(reset="after") converts')
        return "GRU"
    if isinstance(cell, LSTM):
        if cell.peephole:
            raise ValueError("PyTorch's LSTM has no peepholes")
        return "LSTM"
    if isinstance(cell, RNN):
        return "RNN"
    if isinstance(cell, Cell):  # a cell PyTorch does not have (MGU, CoupledLSTM)
        raise ValueError(f"PyTorch has no {type(cell).__name__}")
    raise TypeError(f"expected a pyx_gru cell, got {type(cell).__name__}")


def from_torch(module):
    """A pyx_gru cell with the weights of a PyTorch recurrent module.

    Parameters
    ----------
    module : torch.nn.RNN, GRU, LSTM, RNNCell, GRUCell or LSTMCell
        One layer, one direction; ``nn.RNN`` with ``nonlinearity="tanh"``;
        ``nn.LSTM`` without ``proj_size``; float32 or float64. A module
        without biases gives zero biases. ``batch_first`` does not matter for
        the weights (pyx_gru is always time-major).

    Returns
    -------
    RNN, GRU (reset="after") or LSTM
        In the module's dtype, computing the same function.
    """
    import torch

    name = type(module).__name__
    is_cell = name.endswith("Cell")
    kind = name[:-4] if is_cell else name
    if not isinstance(module, torch.nn.Module) or kind not in _TORCH_ORDER:
        raise TypeError(
            f"from_torch takes torch.nn.RNN, GRU, LSTM or their *Cell classes, got {name}"
        )
    if not is_cell:
        if module.num_layers != 1 or module.bidirectional:
            raise ValueError(
                f"from_torch converts one layer in one direction; this {name} has "
                f"num_layers={module.num_layers}, bidirectional={module.bidirectional} "
                "(convert each layer and direction, then put them together with "
                "pyx_gru.layers.Recurrent, Bidirectional and Stack)"
            )
        if kind == "LSTM" and module.proj_size:
            raise ValueError("from_torch cannot convert an LSTM with proj_size > 0")
    if kind == "RNN" and module.nonlinearity != "tanh":
        raise ValueError(f"pyx_gru's RNN is tanh; this one is {module.nonlinearity}")
    suffix = "" if is_cell else "_l0"
    sd = {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}
    w_ih, w_hh = sd["weight_ih" + suffix], sd["weight_hh" + suffix]
    dtype = _dtype_of(w_ih, f"this {name}")
    H, D = module.hidden_size, module.input_size
    G = len(_TORCH_ORDER[kind])
    zeros = np.zeros(G * H, dtype=dtype)
    b_ih, b_hh = sd.get("bias_ih" + suffix, zeros), sd.get("bias_hh" + suffix, zeros)

    cell = {"RNN": RNN, "GRU": GRU, "LSTM": LSTM}[kind](D, H, dtype=dtype, seed=0)
    blocks, extra = {}, {}
    for k, gate in enumerate(_TORCH_ORDER[kind]):
        rows = slice(k * H, (k + 1) * H)
        if kind == "GRU" and gate == "g":
            b = b_ih[rows]  # n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
            extra["b_hg"] = b_hh[rows]
        else:
            b = b_ih[rows] + b_hh[rows]  # only the sum matters
        blocks[gate] = (w_ih[rows].T, w_hh[rows].T, b)
    return _from_blocks(cell, blocks, extra)


def to_torch(cell, params=None, *, gradient=False, cell_names=False):
    """The cell's parameters (or any dict like them) in PyTorch's layout.

    Parameters
    ----------
    cell : RNN, GRU (reset="after") or LSTM (no peepholes)
        The cell whose layout (and, by default, parameters) is converted.
    params : dict, optional
        Arrays with the keys and shapes of ``cell.params``: the parameters
        (default) or, with ``gradient=True``, the ``dparams`` of ``backward``.
    gradient : bool
        Convert gradients: each of two redundant biases gets the gradient of
        their sum, as autograd reports it. Otherwise the whole bias goes into
        ``bias_ih`` and the redundant part of ``bias_hh`` is 0.
    cell_names : bool
        Name the arrays like ``nn.GRUCell``'s (``weight_ih``) instead of
        ``nn.GRU``'s (``weight_ih_l0``).

    Returns
    -------
    dict of str to ndarray
        ``weight_ih_l0`` (G*H, D), ``weight_hh_l0`` (G*H, H), ``bias_ih_l0``
        and ``bias_hh_l0`` (G*H,): load with
        ``module.load_state_dict({k: torch.from_numpy(v) for k, v in d.items()})``.
        The cell's recurrent dropout and zoneout have no counterpart in
        ``torch.nn`` (whose ``dropout`` acts between stacked layers): only
        the weights are converted.
    """
    kind = _torch_kind(cell)
    params = _checked(cell, params)
    blocks = _blocks(cell, params)
    H = cell.hidden_size
    w_ih, w_hh, b_ih, b_hh = [], [], [], []
    for gate in _TORCH_ORDER[kind]:
        W, U, b = blocks[gate]
        w_ih.append(W.T)
        w_hh.append(U.T)
        b_ih.append(b)
        if kind == "GRU" and gate == "g":
            b_hh.append(params["b_hg"])
        else:
            b_hh.append(b if gradient else np.zeros(H, dtype=cell.dtype))
    suffix = "" if cell_names else "_l0"
    return {
        "weight_ih" + suffix: np.ascontiguousarray(np.concatenate(w_ih)),
        "weight_hh" + suffix: np.ascontiguousarray(np.concatenate(w_hh)),
        "bias_ih" + suffix: np.concatenate(b_ih),
        "bias_hh" + suffix: np.concatenate(b_hh),
    }


# --------------------------------------------------------------------------
# Keras 3
# --------------------------------------------------------------------------

_KERAS_KINDS = ("SimpleRNN", "GRU", "LSTM")


def from_keras(layer, *, kind=None, reset_after=True):
    """A pyx_gru cell with the weights of a Keras 3 recurrent layer.

    Parameters
    ----------
    layer : keras.layers.SimpleRNN, GRU or LSTM, or a list of arrays
        A built layer (its ``get_weights()`` and configuration are read), or
        the list ``layer.get_weights()`` returned: ``[kernel (D, G*H),
        recurrent_kernel (H, G*H), bias]``, the bias missing when
        ``use_bias=False``.
    kind : {"SimpleRNN", "GRU", "LSTM"}
        Only with a list of arrays: which layer they came from.
    reset_after : bool
        Only with a list of arrays from a GRU: the layer's ``reset_after``.

    Returns
    -------
    RNN, GRU (reset="after" if reset_after else "before") or LSTM
        A new cell, (D, H) and dtype from the weights, computing what the
        layer computes. From a layer, its ``recurrent_dropout`` comes too
        (the same mask on the state entering the recurrent products, in a
        training pass). Its input ``dropout`` has no counterpart in a cell
        and a layer with ``go_backwards=True`` reads ``x`` reversed (run the
        cell on ``x[::-1]``): both are named in a ``UserWarning``.
    """
    rates = {}
    if hasattr(layer, "get_weights"):
        kind = type(layer).__name__
        if kind not in _KERAS_KINDS:
            raise TypeError(f"from_keras takes SimpleRNN, GRU or LSTM layers, got {kind}")
        config = layer.get_config()
        if config.get("activation", "tanh") != "tanh":
            raise ValueError(f"pyx_gru cells use tanh; this {kind} uses {config['activation']}")
        if config.get("recurrent_activation", "sigmoid") != "sigmoid":
            raise ValueError(
                f"pyx_gru gates use the sigmoid; this {kind} uses {config['recurrent_activation']}"
            )
        reset_after = config.get("reset_after", True)
        rates["recurrent_dropout"] = float(config.get("recurrent_dropout", 0.0))
        lost = [f"dropout={config['dropout']} (input dropout is the model's, not the cell's)"
                if config.get("dropout", 0) else None,
                "go_backwards=True (run the cell on x[::-1])" if config.get("go_backwards") else None]
        lost = [item for item in lost if item]
        if lost:
            warnings.warn(f"from_keras: this {kind} has {'; '.join(lost)}; the cell does not "
                          "carry it", UserWarning, stacklevel=2)
        weights = layer.get_weights()
        if not weights:
            raise ValueError(f"this {kind} is not built yet: call it once or build it first")
    else:
        weights = layer
        if kind not in _KERAS_KINDS:
            raise ValueError(f"with a list of arrays, kind must be one of {_KERAS_KINDS}, got {kind!r}")
    if not isinstance(weights, (list, tuple)) or len(weights) not in (2, 3):
        raise ValueError("expected [kernel, recurrent_kernel] or [kernel, recurrent_kernel, bias]")
    kernel, recurrent = np.asarray(weights[0]), np.asarray(weights[1])
    dtype = _dtype_of(kernel, f"this {kind}")
    G = {"SimpleRNN": 1, "GRU": 3, "LSTM": 4}[kind]
    if kernel.ndim != 2 or kernel.shape[1] % G:
        raise ValueError(f"kernel must be (D, {G}*H), got {kernel.shape}")
    D, H = kernel.shape[0], kernel.shape[1] // G
    if recurrent.shape != (H, G * H):
        raise ValueError(f"recurrent_kernel must be ({H}, {G * H}), got {recurrent.shape}")
    two_biases = kind == "GRU" and reset_after
    bias_shape = (2, G * H) if two_biases else (G * H,)
    bias = np.asarray(weights[2]) if len(weights) == 3 else np.zeros(bias_shape, dtype=dtype)
    if bias.shape != bias_shape:
        raise ValueError(f"bias must be {bias_shape}, got {bias.shape}")

    if kind == "SimpleRNN":
        cell = RNN(D, H, dtype=dtype, seed=0, **rates)
    elif kind == "GRU":
        cell = GRU(D, H, reset="after" if reset_after else "before", dtype=dtype, seed=0, **rates)
    else:
        cell = LSTM(D, H, dtype=dtype, seed=0, **rates)
    extra = {}
    if two_biases:
        # z, r: input and recurrent bias add up; h: the recurrent one is b_hg
        b = bias[0] + np.concatenate([bias[1, :2 * H], np.zeros(H, dtype=dtype)])
        extra["b_hg"] = bias[1, 2 * H:]
    else:
        b = bias
    # Keras' gate order (z r h; i f c o) is ours, and its layout too.
    cell.params = {"W": kernel, "U": recurrent, "b": b, **extra}
    return cell


def to_keras(cell, params=None, *, gradient=False):
    """The cell's parameters (or any dict like them) as Keras'
    ``layer.get_weights()`` list: ``[kernel, recurrent_kernel, bias]``.

    ``RNN`` gives a SimpleRNN's weights, ``GRU`` a GRU's (``reset="after"``:
    bias (2, 3H) for ``reset_after=True``; ``"before"``: bias (3H,) for
    ``reset_after=False``), ``LSTM`` (no peepholes) an LSTM's. Load them with
    ``layer.set_weights(...)``. The cell's ``recurrent_dropout`` is an
    argument of the layer (``keras.layers.GRU(H, recurrent_dropout=...)``);
    zoneout has no counterpart in Keras.

    Parameters
    ----------
    cell : RNN, GRU or LSTM (no peepholes)
        The cell whose layout (and, by default, parameters) is converted.
    params : dict of str to ndarray, optional
        Arrays with the keys and shapes of ``cell.params``: the parameters
        (default) or, with ``gradient=True``, the ``dparams`` of ``backward``.
    gradient : bool
        Convert gradients: both halves of a redundant bias pair (a GRU with
        reset="after") get the pair's gradient. Otherwise the whole bias of
        the gates z and r goes into the input bias and their recurrent bias
        is 0.

    Returns
    -------
    list of ndarray
        ``[kernel (D, G*H), recurrent_kernel (H, G*H), bias]``, bias (G*H,),
        or (2, 3H) for a GRU with reset="after"; copies, in the cell's dtype.
    """
    if isinstance(cell, SimpleGRU):
        raise ValueError("Keras has no simplified GRU")
    if isinstance(cell, LSTM) and cell.peephole:
        raise ValueError("Keras' LSTM has no peepholes")
    if isinstance(cell, Cell) and not isinstance(cell, (RNN, GRU, LSTM)):
        raise ValueError(f"Keras has no {type(cell).__name__}")  # (MGU, CoupledLSTM)
    if not isinstance(cell, (RNN, GRU, LSTM)):
        raise TypeError(f"expected a pyx_gru cell, got {type(cell).__name__}")
    params = _checked(cell, params)
    W, U, b = (np.array(params[k]) for k in ("W", "U", "b"))
    if isinstance(cell, GRU) and cell.reset == "after":
        H = cell.hidden_size
        recurrent_bias = np.concatenate([b[:2 * H] if gradient else np.zeros(2 * H, dtype=cell.dtype),
                                         params["b_hg"]])
        b = np.stack([b, recurrent_bias])
    return [W, U, b]
