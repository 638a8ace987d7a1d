"""The ``Task`` container shared by every generator, and the counting
helpers that give the memoryless baselines exactly.

Loss units (agreed with the training code, so that a model's loss and a
baseline compare directly):

* ``"mse"``: mean over counted steps, batch rows and the K outputs;
* ``"softmax"``: mean negative log-likelihood (natural log) per counted step;
* ``"sigmoid"``: summed over the K outputs, mean per counted frame (the "NLL
  per frame" of Chung et al. 2014 for piano rolls).

With ``readout="last"`` the counted steps are the N sequences' last steps;
with ``readout="every"`` they are the steps ``t < lengths[n]`` where ``mask``
is True (all of them when ``mask`` is None).
"""
import dataclasses
import math
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from .._validation import check_rng, check_size, lengths_array, real_array, shaped_array
from ..losses import step_mask

__all__ = ["Task"]

LOSSES = ("mse", "softmax", "sigmoid")
READOUTS = ("last", "every")


def _frozen(arr):
    """A read-only view of ``arr`` (the caller's array keeps its own flags)."""
    view = arr.view()
    view.flags.writeable = False
    return view


def _target_shape(readout, loss, T, N, K):
    if readout == "last":
        return (N,) if loss == "softmax" else (N, K)
    return (T, N) if loss == "softmax" else (T, N, K)


def _fmt(shape):
    return "(" + ", ".join(map(str, shape)) + (",)" if len(shape) == 1 else ")")


@dataclass(frozen=True, eq=False)
class Task:
    """A supervised sequence task: inputs, targets, loss and baseline.

    Made by the generators of :mod:`pyx_gru.tasks`; every array is stored
    read-only, in the dtype given below (inputs of other real dtypes are
    converted, other shapes rejected with a ``ValueError`` naming the
    argument and the expected shape).

    Parameters
    ----------
    name : str
        Short name of the task, e.g. ``"adding"``.
    x : ndarray, shape (T, N, D), float64
        Inputs, time-major: step t of sequence n is ``x[t, n]``.
    y : ndarray
        Targets. ``readout="last"``: (N, K) float64 for ``loss`` "mse" and
        "sigmoid", (N,) int64 class indices in [0, K) for "softmax".
        ``readout="every"``: (T, N, K) float64, or (T, N) int64 for
        "softmax". Values at steps that do not count are padding (0).
    lengths : ndarray, shape (N,), int64, or None
        Length of each sequence, in [0, T]; None means all T. With
        ``readout="last"`` the target belongs to step ``lengths[n] - 1``.
    mask : ndarray, shape (T, N), bool, or None
        ``readout="every"`` only: which steps count in the loss (a step also
        needs ``t < lengths[n]``). None: every step within its length.
    readout : {"last", "every"}
        One target per sequence (its last step) or one per step.
    loss : {"mse", "softmax", "sigmoid"}
        The loss the targets are meant for; units as in the module docstring.
    n_classes : int
        K: the number of classes ("softmax") or of outputs ("mse",
        "sigmoid"). Also readable as ``n_outputs``.
    baseline : float
        The loss of the task's memoryless baseline, in the loss's units.
    info : dict
        Free-form metadata: the generator's parameters and seed, other
        baselines (``"baseline_*"``), references. ``info["rows"]``, when
        present, maps names to per-sequence values (length N), which
        :meth:`subset` and :meth:`split` select along with the rows.
    baseline_fn : callable or None
        For baselines that depend on the data: ``baseline_fn(task)``
        returns a dict with the key ``"baseline"`` (and optionally other
        ``"baseline_*"`` entries for ``info``), computed on ``task``'s own
        data. :meth:`subset` and :meth:`split` call it to give each part its
        own value. None: the baseline is a constant of the generator.
    """

    name: str
    x: np.ndarray = field(repr=False)
    y: np.ndarray = field(repr=False)
    lengths: Optional[np.ndarray] = field(repr=False)
    mask: Optional[np.ndarray] = field(repr=False)
    readout: str
    loss: str
    n_classes: int
    baseline: float
    info: dict = field(default_factory=dict, repr=False)
    baseline_fn: Optional[Callable] = field(default=None, repr=False)

    def __post_init__(self):
        put = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen)
        if not isinstance(self.name, str):
            raise TypeError(f"name must be a str, got {type(self.name).__name__}")
        if self.readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {self.readout!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        K = check_size("n_classes", self.n_classes)
        put("n_classes", K)

        x = shaped_array("x", self.x, ("T", "N", "D"))
        T, N, _ = x.shape
        put("x", _frozen(np.ascontiguousarray(x, dtype=np.float64)))

        shape = _target_shape(self.readout, self.loss, T, N, K)
        y = real_array("y", self.y, _fmt(shape))
        if y.shape != shape:
            raise ValueError(
                f"y must have shape {_fmt(shape)} for readout={self.readout!r}, "
                f"loss={self.loss!r} (T={T}, N={N}, K={K}), got {y.shape}"
            )
        if self.loss == "softmax":
            if y.dtype.kind not in "iu":
                raise TypeError(f"y must hold integer class indices for loss='softmax', got {y.dtype}")
            if y.size and (y.min() < 0 or y.max() >= K):
                raise ValueError(f"y must hold class indices in [0, {K}), got values in [{y.min()}, {y.max()}]")
            y = np.ascontiguousarray(y, dtype=np.int64)
        else:
            y = np.ascontiguousarray(y, dtype=np.float64)
            if not np.all(np.isfinite(y)):
                raise ValueError("y must be finite")
            if self.loss == "sigmoid" and y.size and (y.min() < 0 or y.max() > 1):
                raise ValueError("y must lie in [0, 1] for loss='sigmoid'")
        put("y", _frozen(y))

        if self.lengths is not None:
            put("lengths", _frozen(lengths_array(self.lengths, T, N).astype(np.int64)))
        if self.mask is not None:
            if self.readout != "every":
                raise ValueError("mask applies only to readout='every'; use None with readout='last'")
            put("mask", _frozen(np.ascontiguousarray(step_mask((T, N), mask=self.mask))))

        baseline = self.baseline
        if isinstance(baseline, (bool, np.bool_)) or not isinstance(baseline, (int, float, np.integer, np.floating)):
            raise TypeError(f"baseline must be a real number, got {type(baseline).__name__}")
        put("baseline", float(baseline))
        if not isinstance(self.info, dict):
            raise TypeError(f"info must be a dict, got {type(self.info).__name__}")
        info = dict(self.info)
        rows = info.get("rows")
        if rows is not None:
            if not isinstance(rows, dict):
                raise TypeError(f"info['rows'] must be a dict of per-sequence lists, got "
                                f"{type(rows).__name__}")
            for key, value in rows.items():
                if len(value) != N:
                    raise ValueError(
                        f"info['rows'][{key!r}] must have one entry per sequence (N={N}), got {len(value)}"
                    )
            info["rows"] = dict(rows)
        put("info", info)
        if self.baseline_fn is not None and not callable(self.baseline_fn):
            raise TypeError("baseline_fn must be callable or None")

    # -- sizes ------------------------------------------------------------

    T = property(lambda self: self.x.shape[0], doc="int: the number of time steps.")
    N = property(lambda self: self.x.shape[1], doc="int: the number of sequences.")
    D = property(lambda self: self.x.shape[2], doc="int: the input size.")
    n_outputs = property(lambda self: self.n_classes, doc="int: K, the same as ``n_classes``.")

    def __len__(self):
        return self.N

    def __repr__(self):
        extra = ""
        if self.lengths is not None and self.N:
            extra = f", lengths in [{self.lengths.min()}, {self.lengths.max()}]"
        return (
            f"Task({self.name!r}, T={self.T}, N={self.N}, D={self.D}, K={self.n_classes}, "
            f"readout={self.readout!r}, loss={self.loss!r}, baseline={self.baseline:.6g}{extra})"
        )

    def counted(self):
        """Which steps count in the loss.

        Returns
        -------
        ndarray, shape (T, N), bool
            ``readout="every"``: ``t < lengths[n]`` and ``mask[t, n]``.
            ``readout="last"``: True at each sequence's last step
            ``lengths[n] - 1`` (nowhere for a sequence of length 0).
        """
        T, N = self.T, self.N
        lengths = np.full(N, T, dtype=np.int64) if self.lengths is None else self.lengths
        t = np.arange(T)[:, None]
        if self.readout == "last":
            return t == (lengths - 1)[None, :]
        within = t < lengths[None, :]
        return within if self.mask is None else within & self.mask

    # -- selecting rows ---------------------------------------------------

    def subset(self, indices):
        """The task restricted to some sequences.

        Parameters
        ----------
        indices : array_like of int, shape (M,), or of bool, shape (N,)
            The rows (sequences) to keep, in this order (a negative index
            counts from the end, as in NumPy).

        Returns
        -------
        Task
            With M sequences. When ``lengths`` is given, T shrinks to the
            longest kept sequence. ``info["rows"]`` entries are selected
            too, and a data-dependent baseline (``baseline_fn``) is computed
            afresh on the kept rows.
        """
        idx = np.asarray(indices)
        if idx.ndim != 1:
            raise ValueError(f"indices must be one-dimensional, got shape {idx.shape}")
        if idx.dtype == np.bool_:
            if idx.shape != (self.N,):
                raise ValueError(f"indices as a bool mask must have shape ({self.N},), got {idx.shape}")
            idx = np.flatnonzero(idx)
        elif idx.dtype.kind not in "iu" and idx.size:  # [] arrives as float64
            raise TypeError(f"indices must be integers or a bool mask, got dtype {idx.dtype}")
        idx = idx.astype(np.int64)
        if idx.size and (idx.min() < -self.N or idx.max() >= self.N):
            raise ValueError(f"indices must lie in [0, {self.N}), got values in [{idx.min()}, {idx.max()}]")
        lengths = None if self.lengths is None else self.lengths[idx]
        T = self.T if lengths is None else int(lengths.max(initial=0))
        every = self.readout == "every"
        info = dict(self.info)
        if "rows" in info:
            info["rows"] = {k: _take(v, idx) for k, v in info["rows"].items()}
        part = dataclasses.replace(
            self,
            x=self.x[:T, idx],
            y=self.y[:T, idx] if every else self.y[idx],
            lengths=lengths,
            mask=None if self.mask is None else self.mask[:T, idx],
            info=info,
        )
        return part._with_baselines()

    def split(self, fractions=(0.8, 0.1, 0.1), seed=0):
        """Split the sequences at random into train, validation and test.

        Parameters
        ----------
        fractions : tuple of 3 floats
            Shares of the N sequences, non-negative, summing to 1. Part k
            gets the rows from ``round(N * cumsum[k-1])`` to
            ``round(N * cumsum[k])`` of a seeded permutation.
        seed : int
            Seeds the permutation: the same seed gives the same split.

        Returns
        -------
        (Task, Task, Task)
            Each part is :meth:`subset` of the shuffled rows; every part
            must get at least one sequence.
        """
        f = np.asarray(fractions, dtype=np.float64)
        if f.shape != (3,) or not np.all(np.isfinite(f)) or np.any(f < 0) or abs(f.sum() - 1) > 1e-9:
            raise ValueError(f"fractions must be 3 non-negative numbers summing to 1, got {fractions!r}")
        perm = check_rng("seed", seed).permutation(self.N)
        cuts = np.rint(np.cumsum(f) * self.N).astype(np.int64)
        cuts[-1] = self.N
        bounds = np.concatenate([[0], cuts])
        sizes = np.diff(bounds)
        if np.any(sizes == 0):
            raise ValueError(
                f"split of N={self.N} sequences by {tuple(f)} leaves a part empty (sizes {sizes.tolist()})"
            )
        return tuple(self.subset(perm[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True))

    def chunks(self, length):
        """Every sequence cut into consecutive windows of at most ``length`` steps.

        For training on long sequences: each window becomes a sequence of
        its own, which the model starts from the zero state, so an epoch
        over the same steps makes more updates and pads less. Every counted
        step stays counted exactly once. Evaluate on the uncut sequences.

        Parameters
        ----------
        length : int
            Steps per window (>= 1); a sequence's last window holds the
            rest. Sequences of length 0 give no window.

        Returns
        -------
        Task
            ``readout="every"`` only. T = ``length`` (or less, when no
            sequence is that long), one row per window, in the order of the
            sequences and then of time. ``info["rows"]`` entries are
            repeated for each window of their sequence, and
            ``info["rows"]["chunk_of"]`` holds the index of the sequence
            each window comes from.

        Raises
        ------
        ValueError
            For a task with ``readout="last"`` (one target per sequence has
            no windows) or a ``length`` that is not an int >= 1.
        """
        if self.readout != "every":
            raise ValueError("chunks needs a task with readout='every' (a target at every step)")
        if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 1:
            raise ValueError(f"length must be an int >= 1, got {length!r}")
        length = int(length)
        lengths = (np.full(self.N, self.T, dtype=np.int64) if self.lengths is None
                   else self.lengths)
        source, start = [], []
        for n, L in enumerate(lengths.tolist()):
            for s in range(0, L, length):
                source.append(n)
                start.append(s)
        source = np.array(source, dtype=np.int64)
        start = np.array(start, dtype=np.int64)
        new_lengths = np.minimum(lengths[source] - start, length)
        T = int(new_lengths.max(initial=0))
        M = len(source)
        t = np.arange(T)[:, None] + start[None, :]            # (T, M): source steps
        valid = np.arange(T)[:, None] < new_lengths[None, :]
        t = np.where(valid, t, 0)
        x = np.where(valid[..., None], self.x[t, source[None, :]], 0.0)
        y_src = self.y[t, source[None, :]]
        fill = 0 if self.loss == "softmax" else 0.0
        y = np.where(valid if self.loss == "softmax" else valid[..., None], y_src, fill)
        mask = None if self.mask is None else self.mask[t, source[None, :]] & valid
        info = dict(self.info)
        rows = {k: _take(v, source) for k, v in info.get("rows", {}).items()}
        rows["chunk_of"] = source
        info["rows"] = rows
        info["chunk_length"] = length
        part = dataclasses.replace(self, x=x.reshape(T, M, self.D), y=y, lengths=new_lengths,
                                   mask=mask, info=info)
        return part._with_baselines()

    def _with_baselines(self):
        """This task with ``baseline`` and ``info["baseline_*"]`` computed by
        ``baseline_fn`` on its own data (itself when there is none)."""
        if self.baseline_fn is None:
            return self
        values = self.baseline_fn(self)
        info = dict(self.info)
        info.update({k: v for k, v in values.items() if k != "baseline"})
        return dataclasses.replace(self, baseline=values["baseline"], info=info)


def _take(value, idx):
    if isinstance(value, np.ndarray):
        return value[idx]
    return [value[i] for i in idx]


def task_seed(seed):
    """The seed as recorded in ``info`` (ints only, so that a task can be
    regenerated from its metadata)."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be a non-negative int, got {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed}")
    return int(seed)


# -- exact losses of counting models ------------------------------------------


def nll_of_counts(counts):
    """Total negative log-likelihood of the maximum-likelihood model of
    contingency counts: each row is a context, each column an outcome, and
    the model predicts each row's empirical distribution.

    Parameters
    ----------
    counts : array_like, shape (..., C, M)
        Non-negative counts; the last axis holds the outcomes.

    Returns
    -------
    float
        ``-sum(c * log(c / row_sum))`` over non-zero cells (0 log 0 = 0), in
        nats.
    """
    c = np.asarray(counts, dtype=np.float64)
    rows = c.sum(axis=-1, keepdims=True)
    nz = c > 0
    ratio = np.divide(c, rows, out=np.ones_like(c), where=nz)
    return float(-np.sum(c[nz] * np.log(ratio[nz])))


def class_prior_nll(labels, n_classes):
    """Mean cross-entropy of the class prior fitted on ``labels`` themselves,
    i.e. the entropy of their empirical distribution, in nats.

    Parameters
    ----------
    labels : ndarray, shape (M,), int
    n_classes : int
    """
    labels = np.asarray(labels)
    if labels.size == 0:
        return math.nan
    return nll_of_counts(np.bincount(labels, minlength=n_classes)) / labels.size


def transition_counts(context, target, n_context, n_target):
    """Joint counts of (context, target) pairs.

    Parameters
    ----------
    context, target : ndarray, shape (M,), int
    n_context, n_target : int

    Returns
    -------
    ndarray, shape (n_context, n_target), int64
    """
    flat = np.asarray(context, np.int64) * n_target + np.asarray(target, np.int64)
    return np.bincount(flat, minlength=n_context * n_target).reshape(n_context, n_target)
