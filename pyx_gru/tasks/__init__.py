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

Text for character-level language models, from every Python installation:

* :func:`stdlib_source` — the standard library's own source as a
  :class:`CharText` (text, vocabulary, codes, string and comment spans).

The symbols behind the one-hot inputs:

.. data:: REBER_SYMBOLS

   str: the symbols of :func:`reber` (B, T, P, S, X, V, E), in the order
   of the one-hot inputs and of the class labels.

.. data:: POLYPHONIC_SETS

   dict: the names :func:`polyphonic` takes ("nottingham", "jsb",
   "musedata", "piano_midi"), each with its source file and title.

.. data:: TEMPORAL_ORDER_SYMBOLS

   str: the input symbols of :func:`temporal_order` (a, b, c, d, X, Y, B,
   E), in one-hot order.
"""
import numpy as np

from ._task import Task
from .chorales import chorales, default_cache_dir, load_chorales, piano_roll
from .digits import digits
from .polyphonic import POLYPHONIC_SETS, load_polyphonic, polyphonic
from .text import CharText, stdlib_source
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
    "stdlib_source",
    "CharText",
    "REBER_SYMBOLS",
    "TEMPORAL_ORDER_SYMBOLS",
    "TASKS",
    "make_task",
]

#: The polyphonic music sets among ``TASKS`` (each in its original splits).
POLYPHONIC_TASKS = ("jsb", "nottingham", "musedata", "piano_midi")
#: The task names of ``make_task`` and of ``python -m pyx_gru compare --task``.
TASKS = ("adding", "copy", "temporal_order", "reber", "digits", "digits_pixels", "chorales",
         *POLYPHONIC_TASKS)


def make_task(name, *, length=100, n=10_000, seed=0, max_pieces=None):
    """A task of ``pyx_gru.tasks`` by its name in ``TASKS``.

    Parameters
    ----------
    name : str
        ``"adding"``, ``"copy"`` (copy memory), ``"temporal_order"``,
        ``"reber"`` (embedded), ``"digits"`` (rows), ``"digits_pixels"``,
        ``"chorales"``, or one of the polyphonic music sets in their
        original splits: ``"jsb"``, ``"nottingham"``, ``"musedata"``,
        ``"piano_midi"``.
    length : int
        T, for the adding, copy and temporal-order tasks.
    n : int
        The number of sequences, for the synthetic tasks.
    seed : int
        Seeds the generator.
    max_pieces : int, optional
        Chorales and the polyphonic sets: the first this many pieces (of
        each split, for the polyphonic sets; None: all).

    Returns
    -------
    pyx_gru.tasks.Task or tuple of three Tasks
        A polyphonic set gives its (train, valid, test) splits.
    """
    if name not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {name!r}")
    if name == "adding":
        return adding(n, length, seed=seed)
    if name == "copy":
        return copy_memory(n, length, seed=seed)
    if name == "temporal_order":
        return temporal_order(n, length, seed=seed)
    if name == "reber":
        return reber(n, seed=seed)
    if name in ("digits", "digits_pixels"):
        return digits("rows" if name == "digits" else "pixels", seed=seed)
    if name in POLYPHONIC_TASKS:
        parts = polyphonic(name)
        if max_pieces is not None:
            parts = tuple(p.subset(np.arange(min(max_pieces, p.x.shape[1]))) for p in parts)
        return parts
    return chorales(max_pieces=max_pieces)
