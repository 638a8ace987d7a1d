"""pyx_gru: recurrent cells to understand and to run fast.

The cells (``RNN``, ``SimpleGRU``, ``GRU``, ``MGU``, ``LSTM``) share one interface::

    cell = pyx_gru.GRU(input_size=8, hidden_size=16, reset="after", seed=0)
    y, state, cache = cell.forward(x, state0=None, lengths=None)
    dx, dstate0, dparams = cell.backward(cache, dy, dstate=None)
    y, state, _ = cell.forward(x, cache=False)    # inference: no cache kept

with compiled forward and backward passes over whole sequences.
``pyx_gru.reference`` has the same cells in plain NumPy, and ``gradcheck``
checks any cell's gradients against finite differences. ``interop``
converts weights from and to PyTorch and Keras. ``cell.save(path)`` writes a
cell to an ``.npz`` file (no pickle) and ``pyx_gru.load(path)`` reads it back.
"""
from ._cells import GRU, LSTM, MGU, RNN, Cache, Cell, SimpleGRU
from ._gradcheck import gradcheck
from ._saving import load
from . import interop, reference
# training and diagnostics (issue 6)
from . import diagnostics, layers, losses, optim, train
from .layers import Model
from .train import History, evaluate, fit, predict

__version__ = "0.1.0"

__all__ = ["RNN", "SimpleGRU", "GRU", "MGU", "LSTM", "Cell", "Cache", "gradcheck", "load", "reference", "interop"]
__all__ += ["layers", "losses", "optim", "train", "diagnostics", "Model", "fit", "evaluate",
            "predict", "History"]
