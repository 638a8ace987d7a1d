"""Tasks to train and compare the cells on, each with its memoryless baseline.

Every generator returns a :class:`Task`: inputs ``x`` (T, N, D) time-major,
targets ``y``, optional ``lengths`` and ``mask``, the readout ("last" or
"every"), the loss ("mse", "softmax" or "sigmoid"), the output size K and
``baseline``, the loss of a predictor without memory, in the units the loss
reports (see :class:`Task`). ``Task.split`` and ``Task.subset`` select
sequences.

Synthetic, with long-range dependencies (NumPy only, seeded):

* :func:`adding` — the adding problem (baseline 1/6),
* :func:`copy_memory` — copy memory (baseline 10 ln 8 / (T + 20)),
* :func:`temporal_order` — temporal order, 4 classes (baseline ln 4),
* :func:`reber` — next-symbol prediction on the embedded Reber grammar.

Real data that ship inside wheels (optional extras, ``pip install
"pyx_gru[tasks]"``; nothing is downloaded):

* :func:`digits` — scikit-learn's 8×8 digits, row by row or pixel by pixel,
* :func:`chorales` — piano rolls of Bach chorales from music21's corpus,
  converted once and cached (:func:`load_chorales`).

Real data that ship inside pyx_gru itself:

* :func:`polyphonic` — the four polyphonic music sets of Chung et al. 2014
  (JSB Chorales, Nottingham, MuseData, Piano-midi.de) in their original
  train/valid/test splits (:func:`load_polyphonic` for the piano rolls).

The symbols behind the one-hot inputs:

.. data:: REBER_SYMBOLS

   str: the symbols of :func:`reber` (B, T, P, S, X, V, E), in the order
   of the one-hot inputs and of the class labels.

.. data:: TEMPORAL_ORDER_SYMBOLS

   str: the input symbols of :func:`temporal_order` (a, b, c, d, X, Y, B,
   E), in one-hot order.
"""
from ._task import Task
from .chorales import chorales, default_cache_dir, load_chorales, piano_roll
from .digits import digits
from .polyphonic import POLYPHONIC_SETS, load_polyphonic, polyphonic
from .synthetic import REBER_SYMBOLS, TEMPORAL_ORDER_SYMBOLS, adding, copy_memory, reber, temporal_order

__all__ = [
    "Task",
    "adding",
    "copy_memory",
    "temporal_order",
    "reber",
    "digits",
    "chorales",
    "load_chorales",
    "piano_roll",
    "default_cache_dir",
    "polyphonic",
    "load_polyphonic",
    "POLYPHONIC_SETS",
    "REBER_SYMBOLS",
    "TEMPORAL_ORDER_SYMBOLS",
]
