"""Training a ``pyx_gru.layers.Model``: ``fit``, ``evaluate``, ``predict`` and ``History``.

Data is time-major, as everywhere in pyx_gru: ``x`` (T, N, D) for N
sequences, ``lengths`` (N,) or None, and targets by readout and loss:

=============  =====================  =========================
readout        "mse" / "sigmoid"      "softmax"
=============  =====================  =========================
``"last"``     y (N, K) float         y (N,) int in [0, K)
``"every"``    y (T, N, K) float      y (T, N) int in [0, K)
=============  =====================  =========================

``mask`` (T, N) bool (readout "every") says which steps count in the loss,
on top of the lengths (None: every step within its length); for readout
"last" it may be (N,) (which sequences count). A ``pyx_gru.tasks.Task``
carries all of these, and its loss and readout: ``fit(model, task)``. The
loss units are those of ``pyx_gru.losses``.
"""
import copy
import dataclasses
import hashlib
import math
import os
import signal
import sys
import threading
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import _saving, losses as _losses
from ._json import json_text, read_json
from ._validation import (check_flag, check_nonnegative, check_real, check_rng, check_size,
                          lengths_array)
from .layers import Model
from .optim import clip_grad_norm, global_norm, make_optimizer, weight_noise as _weight_noise

__all__ = ["fit", "evaluate", "predict", "History", "read_checkpoint", "CHECKPOINT_FILE", "BEST_FILE"]

#: The file in which ``fit(..., checkpoint=directory)`` keeps the run's state.
CHECKPOINT_FILE = "checkpoint.npz"
#: The file in which ``fit(..., checkpoint=directory, valid=...)`` keeps the
#: best model so far (``pyx_gru.load`` reads it).
BEST_FILE = "best.npz"


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------

class _Data:
    """Checked arrays of one data set: x (T, N, D), y, lengths, mask."""

    def __init__(self, x, y, lengths, mask, loss, readout, what):
        x = np.asarray(x)
        if x.ndim != 3 or x.dtype.kind not in "iuf":
            raise ValueError(f"{what} x must be a real array of shape (T, N, D), got "
                             f"{x.dtype} {x.shape}")
        T, N, _ = x.shape
        if lengths is not None:
            try:
                lengths = lengths_array(lengths, T, N)
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"{what} {exc}") from None
        rows = (N,) if readout == "last" else (T, N)
        if mask is not None:
            mask = np.asarray(mask)
            if mask.dtype != bool or mask.shape != rows:
                raise ValueError(f"{what} mask must be a bool array of shape {rows} for readout "
                                 f"{readout!r}, got {mask.dtype} {mask.shape}")
        y = np.asarray(y) if y is not None else None
        if y is None:
            raise TypeError(f"{what} y (the targets) is missing")
        if loss == "softmax":
            if y.dtype.kind not in "iu" or y.shape != rows:
                raise ValueError(f"{what} y must be integer class labels of shape {rows} for loss "
                                 f"'softmax' and readout {readout!r}, got {y.dtype} {y.shape}")
        elif y.dtype.kind not in "iuf" or y.ndim != len(rows) + 1 or y.shape[:-1] != rows:
            raise ValueError(f"{what} y must be a float array of shape {rows + ('K',)} for loss "
                             f"{loss!r} and readout {readout!r}, got {y.dtype} {y.shape}")
        if readout == "last" and lengths is not None and not lengths.all():
            # a sequence of length 0 has no last step, so no target (as Task.counted)
            mask = (lengths > 0) if mask is None else mask & (lengths > 0)
        self.x, self.y, self.lengths, self.mask = x, y, lengths, mask
        self.readout, self.N = readout, N

    def has_targets(self):
        """Whether any target counts in the loss (a sequence, and for readout
        "every" a step within a length, that the mask keeps)."""
        if self.N == 0:
            return False
        if self.readout == "last":
            return self.mask is None or bool(self.mask.any())
        T = self.x.shape[0]
        mask = _losses.step_mask((T, self.N), self.lengths, self.mask)
        return mask is None or bool(np.asarray(mask).any())

    def fingerprint(self, h):
        """Feed the arrays' dtypes, shapes and bytes to the hash ``h``."""
        for a in (self.x, self.y, self.lengths, self.mask):
            if a is None:
                h.update(b"none;")
                continue
            a = np.ascontiguousarray(a)
            h.update(f"{a.dtype.str}{a.shape};".encode())
            h.update(a.view(np.uint8).reshape(-1))

    def batch(self, idx):
        """x, y, lengths and the counted-steps mask of rows ``idx``, cut to
        the batch's longest sequence."""
        T = self.x.shape[0]
        lengths = None if self.lengths is None else self.lengths[idx]
        Tb = T if lengths is None or not len(idx) else int(lengths.max())
        x = self.x[:Tb, idx]
        if self.readout == "last":
            y = self.y[idx]
            mask = None if self.mask is None else self.mask[idx]
        else:
            y = self.y[:Tb, idx]
            mask = None if self.mask is None else self.mask[:Tb, idx]
            mask = _losses.step_mask((Tb, len(idx)), lengths, mask)
        return x, y, lengths, mask


def _is_task(obj):
    return not isinstance(obj, np.ndarray) and all(
        hasattr(obj, a) for a in ("x", "y", "lengths", "mask", "loss", "readout"))


def _resolve(model, x, y, lengths, mask, loss, readout, what="data"):
    """(_Data, loss name) from arrays or a Task, checked against the model."""
    if not isinstance(model, Model):
        raise TypeError(f"model must be a pyx_gru.layers.Model, got {type(model).__name__}")
    if readout is not None and readout != model.readout:
        raise ValueError(f"readout={readout!r} but the model reads out {model.readout!r}")
    if _is_task(x):
        task = x
        if y is not None or lengths is not None or mask is not None:
            raise TypeError(f"{what}: pass either a Task or arrays (x, y, lengths, mask), not both")
        if loss is not None and loss != task.loss:
            raise ValueError(f"loss={loss!r} but the task {task.name!r} uses {task.loss!r}")
        if task.readout != model.readout:
            raise ValueError(f"the task {getattr(task, 'name', '')!r} reads out {task.readout!r}, "
                             f"the model {model.readout!r}")
        x, y, lengths, mask, loss = task.x, task.y, task.lengths, task.mask, task.loss
    if loss is None:
        loss = "softmax" if y is not None and np.asarray(y).dtype.kind in "iu" else "mse"
    _losses.get_loss(loss)
    data = _Data(x, y, lengths, mask, loss, model.readout, what)
    if data.x.shape[2] != model.input_size:
        raise ValueError(f"{what} x has {data.x.shape[2]} features, the model takes {model.input_size}")
    if loss != "softmax" and data.y.shape[-1] != model.output_size:
        raise ValueError(f"{what} y has {data.y.shape[-1]} outputs, the model gives {model.output_size}")
    return data, loss


def _valid_data(model, valid, loss):
    if valid is None:
        return None
    if _is_task(valid):
        return _resolve(model, valid, None, None, None, loss, None, "valid")[0]
    if not isinstance(valid, (tuple, list)) or not 2 <= len(valid) <= 4:
        raise TypeError("valid must be a Task or a tuple (x, y[, lengths[, mask]])")
    x, y, lengths, mask = (tuple(valid) + (None, None))[:4]
    return _resolve(model, x, y, lengths, mask, loss, None, "valid")[0]


def _json_seed(seed):
    """A seed as JSON can hold it: an int, None, or its repr (a Generator)."""
    if seed is None or isinstance(seed, (int, np.integer)):
        return None if seed is None else int(seed)
    return repr(seed)


def _batches(N, batch_size):
    return [slice(i, min(i + batch_size, N)) for i in range(0, N, batch_size)]


def _evaluation_batches(N, lengths, batch_size):
    """Index arrays of at most ``batch_size`` sequences each, for a pass that
    needs no particular order: sequences of similar lengths together (in
    order of length, a new batch once a length exceeds 1.5 times the
    batch's shortest), so that cutting each batch to its longest sequence
    leaves little padding. Without lengths, consecutive slices."""
    if lengths is None:
        return [np.arange(s.start, s.stop) for s in _batches(N, batch_size)]
    order = np.argsort(lengths, kind="stable")
    batches, start = [], 0
    for i in range(1, N + 1):
        if (i == N or i - start == batch_size
                or lengths[order[i]] > 1.5 * max(int(lengths[order[start]]), 1)):
            batches.append(order[start:i])
            start = i
    return batches


def _check_batch_size(batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    return int(batch_size)


# ---------------------------------------------------------------------------
# History and progress
# ---------------------------------------------------------------------------

@dataclass
class History:
    """What ``fit`` measured, epoch by epoch.

    ``fit`` makes it; each parameter is kept as the attribute of its name.

    Parameters
    ----------
    epoch : list of int
        1, 2, ... (one entry per completed epoch).
    train_loss : list of float
        The mean training loss over the epoch's batches, as the weights
        changed (and with the weight noise on, if any): the sum of the
        batches' loss terms over the number of counted terms.
    valid_loss : list of float or None
        The loss on ``valid`` after the epoch (None without ``valid``).
    grad_norm : list of float
        The mean global gradient norm over the epoch's steps, before clipping.
    time : list of float
        Wall-clock seconds from the start of ``fit`` to the end of the epoch.
    steps : list of int
        Optimiser steps taken by the end of the epoch.
    best_epoch : int or None
        The epoch with the lowest validation loss (whose parameters ``fit``
        restored), None without ``valid``.
    stopped_early : bool
        Early stopping ended the run.
    diverged : bool
        A batch's loss or gradient was not finite: the run stopped there (the
        step was not applied).
    interrupted : bool
        Ctrl-C (SIGINT) stopped a run that keeps checkpoints, after the
        mini-batch it was in and a checkpoint.
    settings : dict
        ``fit``'s arguments and the model's configuration.
    """

    epoch: list = field(default_factory=list)
    train_loss: list = field(default_factory=list)
    valid_loss: list = field(default_factory=list)
    grad_norm: list = field(default_factory=list)
    time: list = field(default_factory=list)
    steps: list = field(default_factory=list)
    best_epoch: int = None
    stopped_early: bool = False
    diverged: bool = False
    interrupted: bool = False
    settings: dict = field(default_factory=dict)

    @property
    def best_valid_loss(self):
        """float or None: the validation loss at ``best_epoch``."""
        return None if self.best_epoch is None else self.valid_loss[self.best_epoch - 1]

    def to_dict(self):
        """Every attribute, as a dict.

        Returns
        -------
        dict
            The fields by name (lists, numbers, booleans and ``settings``),
            JSON-serialisable; ``History.from_dict`` takes it back.
        """
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        """The History that ``to_dict`` gave ``d``.

        Parameters
        ----------
        d : dict
            As ``to_dict`` returns it (or as read from its JSON).

        Returns
        -------
        History
            A history equal to the one ``d`` came from.
        """
        if not isinstance(d, dict):
            raise TypeError(f"a History is read from a dict (to_dict's), got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        if set(d) - names:
            raise TypeError(f"not a History: unknown keys {sorted(set(d) - names)}")
        return cls(**d)

    def to_json(self, path=None):
        """The history as JSON text; written to ``path`` as well when given.

        Parameters
        ----------
        path : str or os.PathLike, optional
            A file to write the text to.

        Returns
        -------
        str
            The JSON text of ``to_dict()``.
        """
        return json_text(self.to_dict(), path)

    @classmethod
    def from_json(cls, text_or_path):
        """A History from JSON text or from the path of a file holding it.

        Parameters
        ----------
        text_or_path : str or os.PathLike
            The text ``to_json`` returned, or the file it wrote.

        Returns
        -------
        History
            The history read back.
        """
        return cls.from_dict(read_json(text_or_path))

    def plot(self, ax=None, *, baseline=None, logy=True):
        """Plot the training and validation losses against the epoch.

        Needs matplotlib (imported only here).

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
            Where to draw; a new figure when None.
        baseline : float, optional
            Draw a horizontal line there (e.g. a task's memoryless baseline).
        logy : bool
            Logarithmic loss axis.

        Returns
        -------
        matplotlib.axes.Axes
            The axes drawn on.
        """
        try:
            import matplotlib.pyplot as plt
        except ImportError:  # pragma: no cover - depends on the environment
            raise ImportError("History.plot needs matplotlib: pip install matplotlib") from None
        if ax is None:
            _, ax = plt.subplots()
        ax.plot(self.epoch, self.train_loss, label="train")
        if any(v is not None for v in self.valid_loss):
            ax.plot(self.epoch, [np.nan if v is None else v for v in self.valid_loss], label="valid")
        if self.best_epoch is not None:
            ax.axvline(self.best_epoch, color="0.6", linestyle=":", label="best")
        if baseline is not None:
            ax.axhline(baseline, color="k", linestyle="--", label="baseline")
        if logy:
            ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"loss ({self.settings.get('loss', '')})")
        ax.legend()
        return ax


class _Progress:
    """One status line on stderr, redrawn in place (``\\r``), at most every
    0.1 s; a line per epoch. Off when ``verbose`` is 0, or 1 and stderr is
    not a terminal; ``verbose=2`` prints only the epoch lines, whatever the
    stream."""

    def __init__(self, verbose, epochs, n_batches, stream=None):
        self.stream = sys.stderr if stream is None else stream
        tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.bar = verbose == 1 and tty
        self.lines = self.bar or verbose >= 2
        self.epochs, self.n_batches = epochs, n_batches
        self.last = 0.0

    def update(self, epoch, batch, loss, elapsed):
        if not self.bar or (time.perf_counter() - self.last < 0.1 and batch < self.n_batches):
            return
        self.last = time.perf_counter()
        width = 20
        done = width * batch // max(self.n_batches, 1)
        self.stream.write(f"\repoch {epoch}/{self.epochs} [{'#' * done}{'.' * (width - done)}] "
                          f"{batch}/{self.n_batches} loss {loss:.4g} {elapsed:.1f}s ")
        self.stream.flush()

    def epoch_end(self, epoch, train, valid, elapsed):
        if not self.lines:
            return
        v = "" if valid is None else f" valid {valid:.6g}"
        line = f"epoch {epoch}/{self.epochs} train {train:.6g}{v} {elapsed:.1f}s"
        # over a bar: back to the line's start, and clear what the bar left
        self.stream.write(f"\r{line}\x1b[K\n" if self.bar else line + "\n")
        self.stream.flush()


# ---------------------------------------------------------------------------
# fit, evaluate, predict
# ---------------------------------------------------------------------------

def fit(model, x, y=None, *, lengths=None, mask=None, loss=None, readout=None, valid=None,
        optimizer="adam", lr=None, epochs=10, batch_size=32, clip=None, weight_noise=0.0,
        patience=None, restore_best=True, bucket=False, seed=0, verbose=1, callback=None,
        checkpoint=None, checkpoint_every=None, resume=None):
    """Train ``model`` by mini-batch gradient descent.

    Each epoch shuffles the N sequences (seeded), and for each mini-batch:
    adds weight noise (optional), runs forward (a training pass: cells with
    ``recurrent_dropout`` or ``zoneout`` draw fresh masks for every batch;
    ``valid`` is evaluated without them), the loss and backward, takes
    the clean weights back, clips the gradients' global norm (optional), and
    lets the optimiser update the parameters in place. After each epoch it
    evaluates ``valid`` (if given), keeps the best parameters, and stops
    early after ``patience`` epochs without improvement.

    Parameters
    ----------
    model : pyx_gru.layers.Model
        Trained in place.
    x : array_like (T, N, D), or a pyx_gru.tasks.Task
        The inputs; a Task brings y, lengths, mask, loss and readout too
        (then pass none of those).
    y : array_like
        Targets: (N, K) float or (N,) int for readout "last", (T, N, K)
        float or (T, N) int for "every" (int: class labels for "softmax";
        see the module docstring).
    lengths : array_like of int, shape (N,), optional
        Sequence n is ``x[:lengths[n], n]``; None means all T steps.
    mask : array_like of bool, shape (T, N) ("every") or (N,) ("last"), optional
        Which steps (or sequences) count in the loss, on top of the
        lengths; None counts all.
    loss : {"mse", "softmax", "sigmoid"}, optional
        None: the task's, else "softmax" for integer y and "mse" otherwise.
    readout : {"last", "every"}, optional
        Only checked against ``model.readout``.
    valid : Task or tuple (x, y[, lengths[, mask]]), optional
        Held-out data, evaluated after every epoch.
    optimizer : {"adam", "rmsprop", "sgd"} or pyx_gru.optim.Optimizer
        A name (see ``pyx_gru.optim.make_optimizer``) or an optimiser
        instance, used as it is (its state is updated in place).
    lr : float, optional
        The learning rate for a named optimiser (None: its default).
    epochs : int
        At most this many passes over the data (>= 0).
    batch_size : int
        Sequences per step (the last batch may be smaller). Each batch is
        cut to its longest sequence.
    clip : float, optional
        Clip the global gradient norm to this (Pascanu et al. 2013).
    weight_noise : float
        Standard deviation of the Gaussian weight noise (Chung et al. 2014);
        0 for none.
    patience : int, optional
        Stop after this many (>= 1) epochs without a lower validation loss.
        Needs ``valid``.
    restore_best : bool
        With ``valid``, end with the parameters of the best epoch.
    bucket : bool
        Batch sequences of similar length (sort a random permutation by
        length, then shuffle the batches): less padding, less compute.
    seed : int
        Seeds the shuffling, the weight noise and the dropout and zoneout
        masks (not the model's initialisation, which its constructor
        seeds). The same seed, data and model give bitwise the same losses.
    verbose : {0, 1, 2}
        0: silent. 1: a progress line on stderr when it is a terminal.
        2: one line per epoch on stderr, always.
    callback : callable, optional
        ``callback(epoch, model, history)`` after each epoch; returning True
        stops training.
    checkpoint : str or path-like, optional
        A directory (created if needed) where the run keeps
        ``checkpoint.npz``: everything needed to continue it (the model, the
        optimiser's state, the random generators, the history, the
        position, the best parameters so far and the early-stopping count),
        written atomically after every epoch (and every ``checkpoint_every``
        mini-batches), replacing the one before only once complete; and,
        with ``valid``, ``best.npz``, the best model so far
        (``pyx_gru.load`` reads it). If the directory holds a checkpoint of
        this run already, ``fit`` continues from it. With a checkpoint,
        Ctrl-C (SIGINT) stops the run after the current mini-batch, writes
        a checkpoint and returns the history so far (``interrupted``; the
        model keeps its current parameters); a second Ctrl-C stops at once.
    checkpoint_every : int, optional
        Also write a checkpoint after every this many mini-batches.
    resume : str or path-like, optional
        Continue the run whose checkpoint is in this directory (an error if
        there is none), and keep writing checkpoints there. The model,
        data and arguments must be those of the run (``epochs`` may grow);
        the continued run ends with bitwise the parameters and history of
        the run never stopped (but for the wall-clock ``time``).

    Returns
    -------
    History
        The losses, gradient norms and times of every epoch, and how the
        run ended.
    """
    train, loss = _resolve(model, x, y, lengths, mask, loss, readout, "train")
    valid = _valid_data(model, valid, loss)
    batch_size = _check_batch_size(batch_size)
    if not train.has_targets():
        raise ValueError("train has no target to fit: no sequence, or every one has length 0 "
                         "or is masked out")
    epochs = check_size("epochs", epochs, minimum=0)
    if patience is not None:
        patience = check_size("patience", patience)
        if valid is None:
            raise ValueError("patience (early stopping) needs valid data")
    if clip is not None and not check_real("clip", clip) > 0:
        raise ValueError(f"clip must be > 0, got {clip}")
    weight_noise = check_nonnegative("weight_noise", weight_noise)
    restore_best = check_flag("restore_best", restore_best)
    bucket = check_flag("bucket", bucket)
    if not isinstance(verbose, (int, np.integer)) or verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable or None, got {type(callback).__name__}")
    opt = make_optimizer(optimizer, lr)
    terms = _losses.TERMS[loss]
    # (the third stream is new: the first two are the ones spawn(2) gave)
    shuffle_rng, noise_rng, mask_rng = check_rng("seed", seed).spawn(3)
    # A training pass only for a model that has something to draw; each
    # batch's masks from (epoch, batch), so that a resumed run draws the same
    regularised = any(getattr(c, "recurrent_dropout", 0) or getattr(c, "zoneout", 0)
                      or getattr(c, "zoneout_c", None) for c in model.cells)
    masks = mask_rng.bit_generator.seed_seq if regularised else None
    history = History(settings={
        "loss": loss, "readout": model.readout, "optimizer": repr(opt), "epochs": epochs,
        "batch_size": batch_size, "clip": None if clip is None else float(clip),
        "weight_noise": float(weight_noise), "patience": None if patience is None else int(patience),
        "bucket": bool(bucket), "seed": _json_seed(seed), "n_train": train.N,
        "n_valid": None if valid is None else valid.N, "n_params": model.n_params,
        "dtype": model.dtype.name, "model": model.config,
    })
    run_dir, every = _checkpoint_args(checkpoint, checkpoint_every, resume)
    fingerprint = None if run_dir is None else _data_fingerprint(train, valid)
    params = model.params
    best, best_loss, waited = None, math.inf, 0
    slices = _batches(train.N, batch_size)
    # where to start: the first epoch, or a checkpoint's position
    start_epoch, skip, accum, elapsed, finished = 1, 0, None, 0.0, False
    if run_dir is not None and (run_dir / CHECKPOINT_FILE).exists():
        state = _resume(run_dir, model, opt, history, (shuffle_rng, noise_rng), len(slices),
                        fingerprint)
        history, best, best_loss, waited = state["history"], state["best"], state["best_loss"], state["waited"]
        start_epoch, skip, accum = state["epoch"], state["batch"], state["accum"]
        elapsed, finished = state["elapsed"], state["finished"]
    elif resume is not None:
        raise FileNotFoundError(f"resume: no {CHECKPOINT_FILE} in {run_dir}")
    progress = _Progress(verbose, epochs, len(slices))
    start = time.perf_counter() - elapsed

    def save(epoch, batch, shuffle_state, acc, done=False):
        if run_dir is None:
            return
        record = {"epoch": epoch, "batch": batch, "shuffle_state": shuffle_state,
                  "noise_state": noise_rng.bit_generator.state, "accum": acc,
                  "history": history.to_dict(), "best_loss": best_loss, "waited": waited,
                  "elapsed": time.perf_counter() - start, "finished": done,
                  "n_batches": len(slices), "data": fingerprint}
        _saving.save_checkpoint(run_dir / CHECKPOINT_FILE, model, opt, best, record)

    with _StopOnSigint(run_dir is not None) as sigint:
        for epoch in range(start_epoch, epochs + 1) if not finished else ():
            epoch_state = copy.deepcopy(shuffle_rng.bit_generator.state)
            order = shuffle_rng.permutation(train.N)
            if bucket and train.lengths is not None:
                order = order[np.argsort(train.lengths[order], kind="stable")]
                batches = [order[s] for s in slices]
                batches = [batches[i] for i in shuffle_rng.permutation(len(batches))]
            else:
                batches = [order[s] for s in slices]
            total, count, norms = (accum["total"], accum["count"], list(accum["norms"])) if skip \
                else (0.0, 0, [])
            for b, idx in enumerate(batches, 1):
                if b <= skip:
                    continue
                xb, yb, lb, mb = train.batch(idx)
                # overflow is caught below as a non-finite loss or gradient norm
                with _weight_noise(params, weight_noise, noise_rng), \
                        np.errstate(over="ignore", invalid="ignore"):
                    if masks is None:
                        out, cache = model.forward(xb, lb)
                    else:
                        out, cache = model.forward(xb, lb, training=True, seed=np.random.SeedSequence(
                            masks.entropy, spawn_key=masks.spawn_key + (epoch, b)))
                    s, n, dsum = terms(out, yb, mb)
                    if n:
                        _, grads = model.backward(cache, (dsum / n).astype(model.dtype))
                        norm = global_norm(grads) if clip is None else clip_grad_norm(grads, clip)
                if n:
                    if not (math.isfinite(s) and math.isfinite(norm)):
                        history.diverged = True
                        warnings.warn(f"fit: the loss or gradient is not finite at epoch {epoch}, "
                                      f"batch {b}; training stopped (try a smaller lr or clip=...)",
                                      RuntimeWarning, stacklevel=2)
                        break
                    opt.step(params, grads)
                    total, count = total + s, count + n
                    norms.append(norm)
                    progress.update(epoch, b, total / count, time.perf_counter() - start)
                # (after the last batch, the epoch's end checkpoints)
                if b < len(batches) and (sigint.stopped or (every and b % every == 0)):
                    save(epoch, b, epoch_state, {"total": total, "count": count, "norms": norms})
                    if sigint.stopped:
                        history.interrupted = True
                        return history
            skip = 0
            if not history.diverged and not all(np.isfinite(p).all() for p in params.values()):
                # a finite step can still overflow a parameter
                history.diverged = True
                warnings.warn(f"fit: a parameter is not finite after epoch {epoch}; training "
                              "stopped (try a smaller lr or clip=...)", RuntimeWarning,
                              stacklevel=2)
            if history.diverged:
                save(epoch, 0, epoch_state, None, done=True)
                break
            history.epoch.append(epoch)
            history.train_loss.append(total / count if count else 0.0)
            history.grad_norm.append(float(np.mean(norms)) if norms else 0.0)
            history.steps.append(opt.t)
            v = None
            if valid is not None:
                v = _evaluate_data(model, valid, loss, 256)["loss"]
                if v < best_loss:
                    best, best_loss, waited = model.get_params(), v, 0
                    history.best_epoch = epoch
                    if run_dir is not None:
                        _save_best(run_dir / BEST_FILE, model, best)
                else:
                    waited += 1
            history.valid_loss.append(v)
            history.time.append(time.perf_counter() - start)
            progress.epoch_end(epoch, history.train_loss[-1], v, history.time[-1])
            stop = callback is not None and callback(epoch, model, history)
            if not stop and patience is not None and waited >= patience:
                history.stopped_early = stop = True
            save(epoch + 1, 0, shuffle_rng.bit_generator.state, None, done=bool(stop))
            if stop:
                break
            if sigint.stopped:
                history.interrupted = True
                return history
    if restore_best and best is not None:
        model.params = best
    return history


def _checkpoint_args(checkpoint, checkpoint_every, resume):
    """(run directory or None, mini-batches between checkpoints or None)."""
    paths = [p for p in (checkpoint, resume) if p is not None]
    for name, p in (("checkpoint", checkpoint), ("resume", resume)):
        if p is not None and not isinstance(p, (str, os.PathLike)):
            raise TypeError(f"{name} must be a directory path, got {type(p).__name__}")
    if len(paths) == 2 and Path(checkpoint).resolve() != Path(resume).resolve():
        raise ValueError(f"checkpoint={checkpoint!r} and resume={resume!r} name different "
                         "directories; a resumed run keeps its checkpoints where it was")
    if checkpoint_every is not None:
        if isinstance(checkpoint_every, (bool, np.bool_)) or not isinstance(
                checkpoint_every, (int, np.integer)) or checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be an int >= 1, got {checkpoint_every!r}")
        if not paths:
            raise ValueError("checkpoint_every needs checkpoint= (a directory)")
    if not paths:
        return None, None
    run_dir = Path(paths[0])
    if run_dir.exists() and not run_dir.is_dir():
        raise NotADirectoryError(f"checkpoint must be a directory, {run_dir} is a file")
    if resume is None:
        run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir, None if checkpoint_every is None else int(checkpoint_every)


def _save_best(path, model, best):
    snapshot = model.copy()
    snapshot.params = best
    snapshot.save(path)


_RECORD_KEYS = {"epoch", "batch", "shuffle_state", "noise_state", "accum", "history", "best_loss",
                "waited", "elapsed", "finished", "n_batches", "data"}


def _data_fingerprint(train, valid):
    """A SHA-256 of the training and validation arrays (hex): a checkpoint
    keeps it, so that a run is resumed on the data it was started on."""
    h = hashlib.sha256()
    for data in (train, valid):
        if data is None:
            h.update(b"no data;")
        else:
            data.fingerprint(h)
    return h.hexdigest()


def _resume(run_dir, model, opt, history, rngs, n_batches, data):
    """Restore the run in ``run_dir`` into model, opt and the generators;
    returns fit's loop state, after checking that the checkpoint belongs to
    this run."""
    path = run_dir / CHECKPOINT_FILE
    saved = _saving.read_checkpoint(path)
    rec = saved["fit"]

    def bad(message):
        return ValueError(f"{path}: {message}")

    if set(rec) != _RECORD_KEYS:
        raise bad(f"fit's record must have the keys {sorted(_RECORD_KEYS)}")
    if _saving._layer_spec(saved["model"]) != _saving._layer_spec(model):
        raise bad("the checkpoint is of another model (its layers, sizes or configuration differ)")
    try:
        old = History.from_dict(rec["history"])
    except TypeError as exc:
        raise bad(f"the history is not one of fit's ({exc})") from None
    differ = sorted(k for k in set(old.settings) | set(history.settings)
                    if k != "epochs" and old.settings.get(k) != history.settings.get(k))
    if differ:
        raise bad(f"the run was made with other arguments or data: {differ} differ "
                  f"({ {k: old.settings.get(k) for k in differ} } then, "
                  f"{ {k: history.settings.get(k) for k in differ} } now)")
    old_epochs = old.settings.get("epochs")
    if type(old_epochs) is not int or old_epochs < 0:
        raise bad(f"the run's epochs must be an int >= 0, got {old_epochs!r}")
    if history.settings["epochs"] < old_epochs:
        raise bad(f"the run was made with epochs={old_epochs}; a resumed run may have more "
                  f"epochs, not fewer (got epochs={history.settings['epochs']})")
    if rec["data"] != data:
        raise bad("the run was made with other training or validation data (the arrays' "
                  "SHA-256 differs); resume it on the data it was started on")
    if rec["n_batches"] != n_batches:
        raise bad(f"the run had {rec['n_batches']} mini-batches an epoch, this one {n_batches}")
    epoch, batch = rec["epoch"], rec["batch"]
    if type(epoch) is not int or epoch < 1 or type(batch) is not int or not 0 <= batch < n_batches:
        raise bad(f"position (epoch {epoch!r}, batch {batch!r}) is not one of this run's")
    if type(rec["waited"]) is not int or rec["waited"] < 0 or type(rec["finished"]) is not bool:
        raise bad("waited must be an int >= 0 and finished true or false")
    accum = rec["accum"]
    if batch and not (isinstance(accum, dict) and set(accum) == {"total", "count", "norms"}):
        raise bad("a checkpoint inside an epoch needs the epoch's running sums")
    best_loss = rec["best_loss"]
    if not isinstance(best_loss, (int, float)) or (saved["best"] is None) != (best_loss == math.inf):
        raise bad("best_loss does not agree with the best parameters kept")
    for rng, name in zip(rngs, ("shuffle_state", "noise_state"), strict=True):
        try:
            rng.bit_generator.state = rec[name]
        except (TypeError, ValueError, KeyError) as exc:
            raise bad(f"{name} is not a random generator's state ({exc})") from None
    opt.load_state_dict(saved["optimizer"].state_dict())
    model.params = saved["model"].params
    old.settings = history.settings  # the same but for epochs, which may have grown
    return {"history": old, "best": saved["best"], "best_loss": float(best_loss),
            "waited": rec["waited"], "epoch": epoch, "batch": batch, "accum": accum,
            "elapsed": float(rec["elapsed"]), "finished": rec["finished"]}


def read_checkpoint(directory):
    """The state of a run that ``fit(..., checkpoint=directory)`` keeps.

    Parameters
    ----------
    directory : str or path-like
        The run's directory (``checkpoint.npz`` is read from it).

    Returns
    -------
    dict
        ``"model"``: a Model with the parameters at the checkpoint;
        ``"best"``: the best parameters so far (a dict) or None;
        ``"optimizer"``: the optimiser with its state; ``"history"``: the
        History so far; ``"epoch"``, ``"batch"``: where the run continues
        (batch 0: at the start of that epoch); ``"finished"``: whether the
        run had ended (early stopping, a callback or divergence).

    Raises
    ------
    ValueError
        If the file is not a complete, valid checkpoint.
    """
    saved = _saving.read_checkpoint(Path(directory) / CHECKPOINT_FILE)
    rec = saved["fit"]
    return {"model": saved["model"], "best": saved["best"], "optimizer": saved["optimizer"],
            "history": History.from_dict(rec.get("history", {})), "epoch": rec.get("epoch"),
            "batch": rec.get("batch"), "finished": rec.get("finished")}


class _StopOnSigint:
    """While active (in the main thread only), the first SIGINT sets
    ``stopped`` instead of raising, so that fit ends at a point where the
    run can be saved; a second one raises KeyboardInterrupt."""

    def __init__(self, active):
        self.active = active and threading.current_thread() is threading.main_thread()
        self.stopped = False
        self.previous = None

    def _handle(self, signum, frame):
        if self.stopped:
            raise KeyboardInterrupt
        self.stopped = True

    def __enter__(self):
        if self.active:
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc):
        if self.active:
            signal.signal(signal.SIGINT, self.previous)
        return False


def _evaluate_data(model, data, loss, batch_size):
    terms = _losses.TERMS[loss]
    total, count, correct = 0.0, 0, 0
    for idx in _evaluation_batches(data.N, data.lengths, batch_size):
        xb, yb, lb, mb = data.batch(idx)
        out, _ = model.forward(xb, lb, cache=False)
        if mb is not None:
            out, yb = out[mb], yb[mb]
        t, n, _ = terms(out, yb, None)
        total, count = total + t, count + n
        if loss == "softmax":
            correct += int(np.sum(np.argmax(out, axis=-1) == yb))
    result = {"loss": total / count if count else 0.0, "count": count}
    if loss == "softmax":
        result["accuracy"] = correct / count if count else 0.0
    return result


def evaluate(model, x, y=None, *, lengths=None, mask=None, loss=None, batch_size=256):
    """The model's loss on a data set, in the units of ``pyx_gru.losses``.

    Parameters
    ----------
    model : pyx_gru.layers.Model
        The model to evaluate (not changed).
    x : array_like (T, N, D), or a Task
        The inputs; a Task brings y, lengths, mask and loss too.
    y : array_like, optional
        Targets, shaped as in ``fit``.
    lengths : array_like of int, shape (N,), optional
        As in ``fit``.
    mask : array_like of bool, shape (T, N) or (N,), optional
        As in ``fit``.
    loss : {"mse", "softmax", "sigmoid"}, optional
        As in ``fit``.
    batch_size : int
        Sequences per forward pass (memory only; the result does not depend
        on it beyond rounding).

    Returns
    -------
    dict
        ``"loss"``: the mean over all counted terms; ``"count"``: their
        number (steps, or steps times outputs for "mse"); for "softmax",
        ``"accuracy"``: the fraction of counted steps whose largest logit is
        the target class.
    """
    data, loss = _resolve(model, x, y, lengths, mask, loss, None)
    return _evaluate_data(model, data, loss, _check_batch_size(batch_size))


def predict(model, x, *, lengths=None, loss=None, batch_size=256):
    """The model's outputs, in batches.

    Parameters
    ----------
    model : pyx_gru.layers.Model
        The model to run (not changed).
    x : array_like (T, N, D), or a Task (its lengths and loss are used)
        The inputs, time-major.
    lengths : array_like of int, shape (N,), optional
        Sequence n is ``x[:lengths[n], n]``; None means all T steps.
    loss : {"mse", "softmax", "sigmoid"}, optional
        "softmax" and "sigmoid" turn the logits into probabilities; None or
        "mse" gives the raw readout.
    batch_size : int
        Sequences per forward pass (memory only).

    Returns
    -------
    ndarray
        (N, K) for readout "last", (T, N, K) for "every" (zero past each
        sequence's length).
    """
    if not isinstance(model, Model):
        raise TypeError(f"model must be a pyx_gru.layers.Model, got {type(model).__name__}")
    if _is_task(x):
        if lengths is not None:
            raise TypeError("pass either a Task or x and lengths, not both")
        loss = x.loss if loss is None else loss
        x, lengths = x.x, x.lengths
    if loss is not None:
        _losses.get_loss(loss)
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"x must have shape (T, N, D), got {x.shape}")
    T, N, _ = x.shape
    if lengths is not None:
        lengths = lengths_array(lengths, T, N)
    batch_size = _check_batch_size(batch_size)
    outs = []
    for s in _batches(N, batch_size):
        lb = None if lengths is None else lengths[s]
        Tb = T if lb is None or not len(lb) else int(lb.max())
        out, _ = model.forward(x[:Tb, s], lb, cache=False)
        if model.readout == "every" and Tb < T:
            out = np.concatenate([out, np.zeros((T - Tb,) + out.shape[1:], dtype=out.dtype)])
        outs.append(out)
    if not outs:
        shape = (0, model.output_size) if model.readout == "last" else (T, 0, model.output_size)
        return np.zeros(shape, dtype=model.dtype)
    out = np.concatenate(outs, axis=0 if model.readout == "last" else 1)
    if loss == "softmax":
        out = _losses.softmax(out).astype(model.dtype)
    elif loss == "sigmoid":
        out = _losses.sigmoid(out).astype(model.dtype)
    if model.readout == "every" and lengths is not None and loss in ("softmax", "sigmoid"):
        out *= _losses.step_mask(out.shape[:2], lengths)[..., None]
    return out
