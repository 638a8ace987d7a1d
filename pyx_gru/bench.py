"""``python -m pyx_gru.bench``: pyx_gru against its NumPy reference, PyTorch
and the GEMM roofline.

For every cell (RNN, simplified GRU, GRU and MGU with the reset gate after and
before the matmul, LSTM, minGRU, minLSTM) and every size (B, D, H), at T = 100 in float32 (and
float64 at (32, 128, 128)), it times an inference forward pass (``fwd``) and
a forward and backward pass (``fwd+bwd``) of pyx_gru, of the NumPy reference
(``pyx_gru.reference``), of PyTorch's ``torch.nn`` modules holding the same
weights and, when they are installed, of ONNX Runtime and JAX: all with the
same number of threads, in interleaved rounds. It also times the workload's
matrix products alone with SciPy's BLAS, the *roofline*. It prints the
medians and their spreads, a peers table and the project's performance
targets (met or MISSED), and writes every raw time to a JSON file.
``--kernels`` adds pyx_gru with its per-step products from the BLAS;
``--regularisation`` adds pyx_gru with recurrent dropout and zoneout on, in
a training pass, against the same cell with them off;
``--scaling`` times growing T and B, with peak memory.

Usage::

    python -m pyx_gru.bench [--quick] [--threads N] [--cells ...] [--sizes ...]
                            [--json PATH] [--scaling] [--kernels]
                            [--regularisation [P,Z]] [--hide-avx512]
    python -m pyx_gru.bench --markdown PATH    # the README's tables of a results file

``--help`` lists the cell names. Results go to
``benchmarks/results/bench-<YYYYMMDD-HHMMSS>.json`` unless ``--json`` says
otherwise. A run needs threadpoolctl (``pip install "pyx_gru[bench]"``);
PyTorch, ONNX Runtime and JAX are optional peers: a missing one is reported,
and its targets are "not run".

The method (what is timed and how, the pauses between calls, the roofline,
the targets, scaling) and the measured results are in :doc:`/performance`
(``docs/performance.rst``).
"""
import argparse
import datetime
import gc
import json
import os
import platform
import subprocess
import sys
import time
import tracemalloc
from dataclasses import dataclass

import numpy as np
import scipy
from scipy.linalg import blas as scipy_blas

import pyx_gru
from pyx_gru import _cpuid, _files, _kinds, _recurrent, _scan, _workspace, interop, reference

T_STEPS = 100

# name -> (label, class, constructor keywords, torch.nn class name or None),
# for every cell kind with a benchmark label (pyx_gru._kinds)
CELLS = {k.id: (k.bench_label, k.cell_class, k.keywords, k.torch)
         for k in _kinds.KINDS.values() if k.bench_label}
# A class's name for all its benchmarked forms ("gru": gru_after and
# gru_before, "mgu" likewise), and "all"
_FAMILIES = {}
for _kind in _kinds.KINDS.values():
    if _kind.bench_label:
        _FAMILIES.setdefault(_kind.cls.lower(), []).append(_kind.id)
CELL_ALIASES = {family: tuple(ids) for family, ids in _FAMILIES.items()
                if len(ids) > 1 and family not in CELLS}
CELL_ALIASES["all"] = tuple(CELLS)
del _kind

SIZES = ((1, 32, 32), (16, 64, 64), (32, 128, 128), (32, 256, 256), (64, 512, 512), (1, 256, 256))
FLOAT64_SIZE = (32, 128, 128)
# The two largest workloads: the NumPy reference sits them out in quick mode.
LARGE_SIZES = ((32, 256, 256), (64, 512, 512))

CONTENDERS = ("pyx_gru", "numpy", "torch")
TASKS = ("fwd", "fwd+bwd")

# --regularisation: the contender pyx_gru with recurrent dropout and zoneout
# on in a training pass, the rates (recurrent_dropout, zoneout) of the option
# without a value, and the seed of every call's masks
REGULARISED = "pyx_gru/regularised"
REGULARISATION_RATES = (0.25, 0.1)
REGULARISATION_SEED = 0


@dataclass(frozen=True)
class Settings:
    """How hard to try: warm-up calls, rounds and the time budget per case.

    Parameters
    ----------
    threads : int
        BLAS and PyTorch threads of every contender.
    warmup : int
        Untimed calls of each runner before the rounds.
    min_rounds, max_rounds : int
        The least and the most timed rounds per case.
    budget : float
        Seconds of timed rounds per case, once ``min_rounds`` are done.
    skip_reference : tuple of (int, int, int)
        The sizes (B, D, H) at which the NumPy reference is not run.
    kernels : bool
        Also time pyx_gru with its per-step products from the BLAS.
    regularisation : tuple of (float, float) or None
        ``(recurrent_dropout, zoneout)``: also time pyx_gru with these rates
        on, in a training pass (``REGULARISED``); None: not.
    """

    threads: int
    warmup: int
    min_rounds: int
    max_rounds: int
    budget: float  # seconds of timed rounds per case
    skip_reference: tuple  # sizes at which the NumPy reference is not run
    kernels: bool = False  # also time pyx_gru with its per-step products from the BLAS
    regularisation: tuple = None  # (recurrent_dropout, zoneout): also time pyx_gru with them on

    @classmethod
    def make(cls, quick, threads, kernels=False, regularisation=None):
        """The settings of a quick or a full run.

        Parameters
        ----------
        quick : bool
            Few rounds and a 0.25 s budget, the NumPy reference skipped at
            the largest sizes; else at least 10 rounds and 3 s per case.
        threads : int
            BLAS and PyTorch threads.
        kernels : bool
            Also time pyx_gru with its per-step products from the BLAS.
        regularisation : tuple of (float, float) or None
            ``(recurrent_dropout, zoneout)`` to time pyx_gru with on, or None.

        Returns
        -------
        Settings
            The settings of that run.
        """
        if quick:
            # Two warm-up calls, as in a full run: a library's first call
            # (PyTorch's LSTM builds its oneDNN primitives, 40 ms) is no
            # estimate of the next ones, and its next few may still be slow.
            return cls(threads, warmup=2, min_rounds=2, max_rounds=25, budget=0.25,
                       skip_reference=LARGE_SIZES, kernels=kernels, regularisation=regularisation)
        return cls(threads, warmup=2, min_rounds=10, max_rounds=200, budget=3.0,
                   skip_reference=(), kernels=kernels, regularisation=regularisation)


@dataclass(frozen=True)
class Case:
    """One benchmark problem: a cell configuration at one size and dtype.

    Parameters
    ----------
    cell : str
        A key of ``CELLS`` (``"rnn"``, ``"simple_gru"``, ``"gru_after"``,
        ``"gru_before"``, ``"mgu_after"``, ``"mgu_before"``, ``"lstm"``,
        ``"cifg"``).
    B, D, H : int
        Batch size, input size and hidden size (T is ``T_STEPS``).
    dtype : {"float32", "float64"}
        Precision of the cell and its data.
    """

    cell: str
    B: int
    D: int
    H: int
    dtype: str

    @property
    def label(self):
        """str: the cell's name in the tables ("GRU after", ...)."""
        return CELLS[self.cell][0]

    @property
    def gates(self):
        """int: G, the number of gate blocks of the cell."""
        return len(CELLS[self.cell][1].gates)

    @property
    def scan(self):
        """bool: the cell's gates read only x_t (minGRU, minLSTM): no U."""
        return _kinds.get(self.cell).scan

    @property
    def torch_name(self):
        """str or None: the ``torch.nn`` class of the same cell, None if PyTorch has none."""
        return CELLS[self.cell][3]


# --------------------------------------------------------------------------
# dependencies
# --------------------------------------------------------------------------

def import_threadpoolctl():
    """Import threadpoolctl, which the benchmark needs.

    Returns
    -------
    module
        ``threadpoolctl``.

    Raises
    ------
    SystemExit
        With the ``pip install`` line, when it is not installed.
    """
    try:
        import threadpoolctl
    except ImportError:
        raise SystemExit(
            "pyx_gru.bench needs threadpoolctl to give every library the same number "
            "of threads: pip install threadpoolctl"
        ) from None
    return threadpoolctl


def import_torch():
    """Import PyTorch if it is there.

    Returns
    -------
    module or None
        ``torch``, or None if it cannot be imported (the PyTorch column is
        then skipped).
    """
    try:
        import torch
    except ImportError:
        return None
    return torch


# --------------------------------------------------------------------------
# timing
# --------------------------------------------------------------------------

def summarize(times):
    """Median, quartiles, extremes and the IQR as a percentage of the median.

    Parameters
    ----------
    times : array_like of float
        Seconds per call, one per round.

    Returns
    -------
    dict
        ``n``, ``median``, ``q25``, ``q75``, ``min``, ``max`` (seconds) and
        ``iqr_pct``, (q75 - q25) / median in percent.
    """
    t = np.asarray(times, dtype=float)
    q25, med, q75 = np.percentile(t, [25, 50, 75])
    return {
        "n": int(t.size), "median": float(med), "q25": float(q25), "q75": float(q75),
        "min": float(t.min()), "max": float(t.max()),
        "iqr_pct": float(100 * (q75 - q25) / med) if med > 0 else 0.0,
    }


def time_call(fn):
    """Time one call.

    Parameters
    ----------
    fn : callable
        Called once, without arguments.

    Returns
    -------
    float
        The wall-clock seconds it took (``time.perf_counter``).
    """
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# Calls shorter than this are timed in blocks; every timed call or block
# follows REWARM_SECONDS of untimed calls of the same runner (at least one):
# after the pause between runners its library's threads are asleep, and
# waking them, and on some machines letting the kernel spread them over the
# cores again, would otherwise be part of the measurement
# (docs/performance.rst, "How it is timed").
SHORT_CALL = 0.02
BLOCK_SECONDS = 0.005
REWARM_SECONDS = 0.012


def settle():
    """Sleep SETTLE_SECONDS, then on in IDLE_WINDOW steps until the process
    (every thread of every library in it) used less than IDLE_FRACTION of a
    CPU over one of them, or SETTLE_MAX_SECONDS have passed.

    Returns
    -------
    float
        The seconds slept.
    """
    t0 = time.perf_counter()
    time.sleep(SETTLE_SECONDS)
    while time.perf_counter() - t0 < SETTLE_MAX_SECONDS:
        c0 = time.process_time()
        time.sleep(IDLE_WINDOW)
        if time.process_time() - c0 < IDLE_FRACTION * IDLE_WINDOW:
            break
    return time.perf_counter() - t0


def rewarm(fn):
    """Call ``fn`` untimed until REWARM_SECONDS have passed (at least once).

    Parameters
    ----------
    fn : callable
        The runner, called without arguments.

    Returns
    -------
    int
        The number of calls.
    """
    t0 = time.perf_counter()
    calls = 0
    while calls == 0 or time.perf_counter() - t0 < REWARM_SECONDS:
        fn()
        calls += 1
    return calls


def time_after_pause(fn, estimate):
    """Time ``fn`` after the settling pause (``settle``) and REWARM_SECONDS
    of untimed calls (``rewarm``).

    One call for a long ``fn``; for a short one, a block of about
    BLOCK_SECONDS of calls (their mean).

    Parameters
    ----------
    fn : callable
        The runner, called without arguments.
    estimate : float
        Its seconds per call from the warm-up: below SHORT_CALL it is timed
        in a block.

    Returns
    -------
    float
        Seconds per call.
    """
    settle()
    rewarm(fn)
    if estimate >= SHORT_CALL:
        return time_call(fn)
    n = max(1, int(BLOCK_SECONDS / max(estimate, 1e-6)))
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def interleaved_rounds(runners, settings, rng):
    """Warm up every runner, then time them in rounds, one call each per round
    in an order shuffled every round (by ``rng``); rounds go on until the time
    budget is spent (at least ``min_rounds``, at most ``max_rounds``).

    Parameters
    ----------
    runners : dict of str to callable
        The contenders, each a zero-argument callable.
    settings : Settings
        The warm-up calls, rounds and time budget.
    rng : numpy.random.Generator
        Shuffles the order of every round.

    Returns
    -------
    warmup_times : dict of str to list of float
        The seconds of each warm-up call, by key.
    times : dict of str to list of float
        The seconds per call of each round, by key.
    orders : list of list of str
        The order of the keys in each round.
    """
    keys = list(runners)
    warm = {k: [time_call(runners[k]) for _ in range(settings.warmup)] for k in keys}
    estimate = {k: min(v) for k, v in warm.items()}
    times = {k: [] for k in keys}
    orders = []
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        while len(orders) < settings.max_rounds and (
                len(orders) < settings.min_rounds or time.perf_counter() - start < settings.budget):
            orders.append([keys[i] for i in rng.permutation(len(keys))])
            for k in orders[-1]:
                times[k].append(time_after_pause(runners[k], estimate[k]))
    finally:
        gc.enable()
    return warm, times, orders


# --------------------------------------------------------------------------
# the GEMM roofline
# --------------------------------------------------------------------------

def gemm_plan(G, B, D, H, T=T_STEPS, recurrent=True):
    """The GEMMs of a cell's passes, as pyx_gru's kernels call them.

    Parameters
    ----------
    G : int
        The number of gate blocks.
    B, D, H : int
        Batch size, input size and hidden size.
    T : int
        Time steps.
    recurrent : bool
        The cell has recurrent weights U. Without (minGRU, minLSTM: their
        gates read only x_t), a pass is x @ W and, backward, dW = x.T @ dA
        and dx = dA @ W.T only: no per-step product.

    Returns
    -------
    dict of str to list
        ``{task: [(count, (m, n, k, trans_a, trans_b)), ...]}`` for the tasks
        "fwd" and "fwd+bwd": each GEMM as the row-major product C (m, n) =
        op(A) (m, k) @ op(B) (k, n), with the transpose flags of the kernels,
        and how many times a pass runs it.
    """
    GH, TB = G * H, T * B
    if not recurrent:
        fwd = [(1, (TB, GH, D, False, False))]  # x @ W, all steps at once
        bwd = [(1, (D, GH, TB, True, False)),  # dW = x.T @ dA
               (1, (TB, D, GH, False, True))]  # dx = dA @ W.T
        return {"fwd": fwd, "fwd+bwd": fwd + bwd}
    fwd = [(1, (TB, GH, D, False, False)),  # x @ W, all steps at once
           (T, (B, GH, H, False, False))]  # h_{t-1} @ U, per step
    bwd = [(T, (B, H, GH, False, True)),  # dA_t @ U.T, per step
           (1, (D, GH, TB, True, False)),  # dW = x.T @ dA
           (1, (H, GH, TB, True, False)),  # dU = h.T @ dA
           (1, (TB, D, GH, False, True))]  # dx = dA @ W.T
    return {"fwd": fwd, "fwd+bwd": fwd + bwd}


def aligned_normal(shape, dtype, rng, align=64):
    """A C-contiguous array of standard normal values whose data starts on an
    ``align``-byte boundary (NumPy only promises 16).

    Parameters
    ----------
    shape : tuple of int
        The array's shape.
    dtype : numpy.dtype or str
        Its dtype.
    rng : numpy.random.Generator
        Draws the values.
    align : int
        The alignment of the data, in bytes.

    Returns
    -------
    ndarray, shape ``shape``
        A view into a slightly larger buffer, aligned as asked.
    """
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    buf = np.empty(nbytes + align, dtype=np.uint8)
    start = -buf.ctypes.data % align
    out = buf[start:start + nbytes].view(dtype).reshape(shape)
    out[...] = rng.standard_normal(shape)
    return out


def gemm_caller(shape, dtype, rng):
    """A zero-argument callable doing one GEMM of ``shape`` as pyx_gru does:
    row-major C = op(A) @ op(B) is column-major C.T = op(B).T @ op(A).T, so the
    operands go in swapped, with the same flags, and C is written in place.
    The operands are 64-byte aligned: with AVX-512 OpenBLAS, a GEMM with one
    row (B = 1) runs up to ~1.9x slower on an operand that is not.

    Parameters
    ----------
    shape : tuple
        ``(m, n, k, trans_a, trans_b)``, as ``gemm_plan`` gives it.
    dtype : numpy.dtype or str
        The precision: float32 (sgemm) or float64 (dgemm).
    rng : numpy.random.Generator
        Draws the operands.

    Returns
    -------
    callable
        A zero-argument function running the GEMM once.
    """
    m, n, k, ta, tb = shape
    a = aligned_normal((k, m) if ta else (m, k), dtype, rng)
    b = aligned_normal((n, k) if tb else (k, n), dtype, rng)
    c = aligned_normal((m, n), dtype, rng)
    gemm = scipy_blas.sgemm if np.dtype(dtype) == np.float32 else scipy_blas.dgemm

    def call():
        gemm(1.0, b.T, a.T, beta=0.0, c=c.T, trans_a=tb, trans_b=ta, overwrite_c=True)

    return call


def block_times(fn, min_block=2e-3, blocks=7):
    """Time of one call of fn, averaged over each of several blocks of calls
    lasting at least min_block seconds (the first call is a warm-up).

    Parameters
    ----------
    fn : callable
        Called without arguments.
    min_block : float
        The least seconds of a block.
    blocks : int
        The number of blocks.

    Returns
    -------
    list of float
        Seconds per call in each block.
    """
    n = max(1, int(min_block / max(time_call(fn), 1e-9)))
    return [time_call(lambda: [fn() for _ in range(n)]) / n for _ in range(blocks)]


def gemm_time(shape, dtype, memo, rng):
    """Time one GEMM of ``shape``, without the Python call's overhead, once per run.

    Parameters
    ----------
    shape : tuple
        ``(m, n, k, trans_a, trans_b)``, as ``gemm_plan`` gives it.
    dtype : numpy.dtype or str
        The precision: float32 or float64.
    memo : dict
        ``{dtype name: {"overhead": seconds, shape: (seconds, blocks)}}``,
        kept for the whole run; filled in here.
    rng : numpy.random.Generator
        Draws the operands.

    Returns
    -------
    seconds : float
        The median time of one GEMM less the overhead of a 1x1x1 call (at
        least a tenth of the raw time).
    blocks : list of float
        The per-call times of the blocks that median is taken over.
    """
    times = memo.setdefault(np.dtype(dtype).name, {})
    # Each new shape is timed after the settling pause: the contenders' thread
    # pools, busy-waiting after the agreement check, slowed some GEMMs of two
    # threads 30-fold (a (1600 x 192 x 64) sgemm at 7.8 ms, 0.22 ms idle).
    if "overhead" not in times:
        settle()
        times["overhead"] = float(np.median(
            block_times(gemm_caller((1, 1, 1, False, False), dtype, rng))))
    if shape not in times:
        settle()
        blocks = block_times(gemm_caller(shape, dtype, rng))
        raw = float(np.median(blocks))
        times[shape] = (max(raw - times["overhead"], raw / 10), blocks)
    return times[shape]


def roofline(case, memo, rng):
    """The GEMM roofline of a case: the time its passes' matrix products alone take.

    Parameters
    ----------
    case : Case
        The problem.
    memo : dict
        The GEMM times of the run, as ``gemm_time`` keeps them.
    rng : numpy.random.Generator
        Draws the operands of GEMMs not timed yet.

    Returns
    -------
    dict of str to dict
        ``{task: {"seconds", "gflop", "gemms": [...]}}`` for "fwd" and
        "fwd+bwd": the summed GEMM seconds, the GFLOP, and per GEMM its
        count, sizes, flags, seconds and GFLOP/s.
    """
    out = {}
    for task, gemms in gemm_plan(case.gates, case.B, case.D, case.H,
                                 recurrent=not case.scan).items():
        rows, total, flops = [], 0.0, 0
        for count, shape in gemms:
            t, blocks = gemm_time(shape, case.dtype, memo, rng)
            m, n, k = shape[:3]
            total += count * t
            flops += count * 2 * m * n * k
            rows.append({"count": count, "m": m, "n": n, "k": k, "trans_a": shape[3],
                         "trans_b": shape[4], "seconds": t, "raw_call_seconds": blocks,
                         "gflops_per_s": 2 * m * n * k / t / 1e9})
        out[task] = {"seconds": total, "gflop": flops / 1e9, "gemms": rows}
    return out


# --------------------------------------------------------------------------
# the contenders
# --------------------------------------------------------------------------

def make_problem(case, rng):
    """The cell and its inputs: x, state0, dy and dstate (tuples for the LSTM).

    Parameters
    ----------
    case : Case
        The problem.
    rng : numpy.random.Generator
        Draws the inputs (the cell is seeded with 0).

    Returns
    -------
    cell : Cell
        The case's compiled cell.
    data : dict of str to ndarray or tuple
        ``x`` (T, B, D), ``state0`` zeros (B, H) or (h0, c0), ``dy`` (T, B,
        H) and ``dstate`` (B, H) or (dh, dc), in the case's dtype.
    """
    _, cls, kwargs, _ = CELLS[case.cell]
    dt = np.dtype(case.dtype)
    cell = cls(case.D, case.H, dtype=dt, seed=0, **kwargs)
    B, H = case.B, case.H
    x = rng.standard_normal((T_STEPS, B, case.D)).astype(dt)
    dy = rng.standard_normal((T_STEPS, B, H)).astype(dt)
    zeros = np.zeros((B, H), dtype=dt)
    dh = rng.standard_normal((B, H)).astype(dt)
    if len(_kinds.of(cell).state) == 2:
        state0, dstate = (zeros, zeros), (dh, rng.standard_normal((B, H)).astype(dt))
    else:
        state0, dstate = zeros, dh
    return cell, {"x": x, "state0": state0, "dy": dy, "dstate": dstate}


def numpy_runners(cell, data, **options):
    """Make the fwd and fwd+bwd callables of a pyx_gru cell or of its NumPy reference.

    fwd is inference: ``cache=False``, as PyTorch's forward runs under
    ``no_grad``; fwd+bwd keeps the cache its backward pass needs.

    Parameters
    ----------
    cell : Cell
        A compiled cell or its ``reference`` twin.
    data : dict
        The inputs of ``make_problem``: ``x``, ``state0``, ``dy``, ``dstate``.
    **options
        More keywords of both passes' ``forward`` (``training=True,
        seed=...`` for a training pass).

    Returns
    -------
    dict of str to callable
        ``{"fwd": ..., "fwd+bwd": ...}``, zero-argument callables.
    """
    x, state0, dy, dstate = data["x"], data["state0"], data["dy"], data["dstate"]

    def fwd():
        return cell.forward(x, state0, cache=False, **options)

    def fwd_bwd():
        _, _, cache = cell.forward(x, state0, **options)
        return cell.backward(cache, dy, dstate)

    return {"fwd": fwd, "fwd+bwd": fwd_bwd}


def regularised_runners(case, cell, data, rates):
    """Make the fwd and fwd+bwd callables of the case's cell with recurrent
    dropout and zoneout on, in a training pass: a cell of the same kind and
    parameters as ``cell`` with these rates (the LSTMs' ``zoneout_c`` left
    at its default, zoneout's rate), whose passes run ``forward(...,
    training=True, seed=REGULARISATION_SEED)``, the same masks every call.

    Parameters
    ----------
    case : Case
        The problem.
    cell : Cell
        The case's compiled cell (``make_problem``), rates off.
    data : dict
        The inputs of ``make_problem``: ``x``, ``state0``, ``dy``, ``dstate``.
    rates : tuple of (float, float)
        ``(recurrent_dropout, zoneout)``.

    Returns
    -------
    dict of str to callable
        ``{"fwd": ..., "fwd+bwd": ...}``, zero-argument callables.

    Raises
    ------
    ValueError
        From a cell that takes no such rates (minGRU, minLSTM: no recurrent
        product), saying so.
    """
    _, cls, kwargs, _ = CELLS[case.cell]
    p, z = rates
    on = cls(case.D, case.H, dtype=cell.dtype, seed=0, recurrent_dropout=p, zoneout=z, **kwargs)
    on.params = cell.params
    return numpy_runners(on, data, training=True, seed=REGULARISATION_SEED)


def blas_kernel_runners(runners):
    """The same runners with pyx_gru's per-step products from the BLAS rather
    than its packed kernel (``_recurrent._set_packed(False)`` around each call).

    Parameters
    ----------
    runners : dict of str to callable
        The runners of pyx_gru, as ``numpy_runners`` makes them.

    Returns
    -------
    dict of str to callable
        The same tasks, each call wrapped.
    """
    def wrap(fn):
        def call():
            previous = _recurrent._set_packed(False)  # (on, min_batch, min_hidden)
            try:
                return fn()
            finally:
                _recurrent._set_packed(*previous)
        return call
    return {task: wrap(fn) for task, fn in runners.items()}


def torch_module(torch, case, cell):
    """The torch.nn module with the cell's weights, in the cell's dtype.

    Parameters
    ----------
    torch : module
        ``torch``.
    case : Case
        The problem (its ``torch_name`` must not be None).
    cell : Cell
        The compiled cell whose weights are copied (``interop.to_torch``).

    Returns
    -------
    torch.nn.Module
        A ``torch.nn.RNN``, ``GRU`` or ``LSTM`` computing what ``cell`` does.
    """
    module = getattr(torch.nn, case.torch_name)(case.D, case.H)
    module = module.to(torch.float64 if case.dtype == "float64" else torch.float32)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in interop.to_torch(cell).items()})
    return module


def torch_runners(torch, module, data):
    """Make the fwd (eval, no_grad) and fwd+bwd (train, autograd) callables of a module.

    Parameters
    ----------
    torch : module
        ``torch``.
    module : torch.nn.Module
        From ``torch_module``.
    data : dict
        The inputs of ``make_problem``: ``x``, ``state0``, ``dy``, ``dstate``.

    Returns
    -------
    dict of str to callable
        ``{"fwd": ..., "fwd+bwd": ...}``, zero-argument callables.
    """
    lstm = isinstance(module, torch.nn.LSTM)

    def tensor(a, grad=False):
        """A tensor copy of ``a``; a (B, H) state gets torch's leading layer axis."""
        a = np.array(a)
        return torch.from_numpy(a[None] if a.ndim == 2 else a).requires_grad_(grad)

    x = tensor(data["x"])
    x_g = tensor(data["x"], True)
    dy = tensor(data["dy"])
    if lstm:
        s0 = tuple(tensor(s) for s in data["state0"])
        s0_g = tuple(tensor(s, True) for s in data["state0"])
        ds = tuple(tensor(s) for s in data["dstate"])
    else:
        s0, s0_g, ds = tensor(data["state0"]), tensor(data["state0"], True), tensor(data["dstate"])
    leaves = [x_g, *(s0_g if lstm else (s0_g,)), *module.parameters()]

    def fwd():
        module.eval()
        with torch.no_grad():
            return module(x, s0)

    def fwd_bwd():
        module.train()
        for leaf in leaves:
            leaf.grad = None
        y, state = module(x_g, s0_g)
        outs = [y, *state] if lstm else [y, state]
        grads = [dy, *ds] if lstm else [dy, ds]
        torch.autograd.backward(outs, grads)

    return {"fwd": fwd, "fwd+bwd": fwd_bwd}


# The optional peers: their contender names, what the report calls them, and
# what to install when they are missing.
PEERS = {
    "onnxruntime": ("ONNX Runtime", "pip install onnxruntime onnx"),
    "jax": ("JAX", "pip install jax jaxlib"),
}
# The peers run the cells PyTorch has (RNN, GRU with the reset gate after the
# matmul, LSTM), named by their torch.nn class, which is also the ONNX
# operator. ONNX's gate order, as positions in PyTorch's (RNN g; GRU r, z, n;
# LSTM i, f, g, o):
ONNX_GATES = {"RNN": (0,), "GRU": (1, 0, 2), "LSTM": (0, 3, 1, 2)}  # z r h; i o f c
ONNX_OPSET = 17
ONNX_IR_VERSION = 8  # opset 17's (onnx.helper.VERSION_TABLE); newer onnx would write a newer one


def import_onnxruntime():
    """Import ONNX Runtime and onnx if they are there.

    Returns
    -------
    tuple of module or None
        ``(onnxruntime, onnx)``, or None if either cannot be imported (the
        ONNX Runtime column is then reported as not installed).
    """
    try:
        import onnx
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime, onnx


def import_jax(threads):
    """Import JAX with its CPU thread pool held to ``threads``, if it is there.

    With jax/jaxlib 0.10.2, the size of the CPU client's thread pool (which
    runs XLA's matmuls) is read from ``PJRT_NPROC`` when the client starts:
    a jitted (2000 x 2000) matmul used 1.0 CPU with ``PJRT_NPROC=1`` and 1.95
    with 2, on 2 cores. ``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false`` did
    not hold it to one thread (1.75 CPUs, and slower), and
    ``intra_op_parallelism_threads=N`` is no XLA flag: after that one it
    changed nothing, and alone XLA took it for the name of a file of flags
    and aborted. So this sets ``PJRT_NPROC`` (XLA's ``DefaultThreadPoolSize``
    reads it, then ``NPROC``), which counts only if jax's CPU client has not
    started yet in this process.

    Parameters
    ----------
    threads : int
        The size of JAX's CPU thread pool.

    Returns
    -------
    module or None
        ``jax``, or None if it cannot be imported (the JAX column is then
        reported as not installed).
    """
    os.environ["PJRT_NPROC"] = str(threads)
    try:
        import jax
    except ImportError:
        return None
    return jax


def import_peers(threads):
    """Import the optional peers of ``PEERS``.

    Parameters
    ----------
    threads : int
        Threads of each peer.

    Returns
    -------
    dict
        ``{peer name: its module(s), or None when not installed}``.
    """
    return {"onnxruntime": import_onnxruntime(), "jax": import_jax(threads)}


def peer_versions(peers):
    """The versions of the optional peers.

    Parameters
    ----------
    peers : dict
        As ``import_peers`` returns it.

    Returns
    -------
    dict of str to str or None
        ``{peer name: version string, or None when not installed}``.
    """
    versions = {}
    for name, mods in peers.items():
        if mods is None:
            versions[name] = None
        elif name == "onnxruntime":
            versions[name] = f"{mods[0].__version__} (onnx {mods[1].__version__})"
        else:
            versions[name] = mods.__version__
    return versions


def peer_lines(versions):
    """One line per optional peer: its version, or "not installed" and how to
    install it.

    Parameters
    ----------
    versions : dict of str to str or None
        As ``peer_versions`` returns it.

    Returns
    -------
    list of str
        The lines, for the report.
    """
    return [f"{PEERS[name][0]}: {v}" if v is not None
            else f"{PEERS[name][0]}: not installed ({PEERS[name][1]})"
            for name, v in versions.items()]


def onnx_weights(cell, kind):
    """The cell's weights in ONNX's layout: W (1, G*H, D), R (1, G*H, H) and
    B (1, 2*G*H) = [Wb, Rb], gate blocks in ONNX's order (GRU z, r, h; LSTM
    i, o, f, c), from PyTorch's layout (``interop.to_torch``), whose blocks
    ONNX's equations use unchanged (GRU with ``linear_before_reset=1``: Rbh
    inside the reset product, like PyTorch's b_hn).

    Parameters
    ----------
    cell : RNN, GRU (reset="after") or LSTM
        The compiled cell.
    kind : {"RNN", "GRU", "LSTM"}
        The cell, by its ``torch.nn`` class (GRU: reset after the matmul).

    Returns
    -------
    dict of str to ndarray
        ``W`` (1, G*H, D), ``R`` (1, G*H, H) and ``B`` (1, 2*G*H).
    """
    H = cell.hidden_size
    t = interop.to_torch(cell)

    def reorder(a):
        return np.concatenate([a[k * H:(k + 1) * H] for k in ONNX_GATES[kind]])

    return {"W": reorder(t["weight_ih_l0"])[None], "R": reorder(t["weight_hh_l0"])[None],
            "B": np.concatenate([reorder(t["bias_ih_l0"]), reorder(t["bias_hh_l0"])])[None]}


def onnx_session(ort, onnx, cell, kind, B, threads):
    """An onnxruntime InferenceSession of one ONNX RNN, GRU or LSTM node with
    the cell's weights as initializers; inputs X (T, B, D) and initial_h (and
    initial_c) (1, B, H); outputs Y (T, 1, B, H), Y_h (and Y_c) (1, B, H).
    Float32 only; intra- and inter-op threads = ``threads``, sequential.

    Parameters
    ----------
    ort : module
        ``onnxruntime``.
    onnx : module
        ``onnx``.
    cell : RNN, GRU (reset="after") or LSTM
        The compiled cell whose weights the node gets.
    kind : {"RNN", "GRU", "LSTM"}
        The cell, by its ``torch.nn`` class (GRU: reset after the matmul).
    B : int
        The batch size the graph is built for.
    threads : int
        ONNX Runtime's intra- and inter-op threads.

    Returns
    -------
    onnxruntime.InferenceSession
        The session, on the CPU execution provider.
    """
    h = onnx.helper
    lstm = kind == "LSTM"
    D, H = cell.input_size, cell.hidden_size
    f32 = onnx.TensorProto.FLOAT
    states = ["initial_h", "initial_c"] if lstm else ["initial_h"]
    outputs = ["Y", "Y_h", "Y_c"] if lstm else ["Y", "Y_h"]
    attrs = {"hidden_size": H}
    if kind == "GRU":
        attrs["linear_before_reset"] = 1  # PyTorch's and pyx_gru's reset="after"
    node = h.make_node(kind, ["X", "W", "R", "B", "", *states], outputs, **attrs)
    inits = [onnx.numpy_helper.from_array(a.astype(np.float32), name)
             for name, a in onnx_weights(cell, kind).items()]
    graph = h.make_graph(
        [node], f"pyx_gru_{kind}",
        [h.make_tensor_value_info("X", f32, [T_STEPS, B, D]),
         *(h.make_tensor_value_info(s, f32, [1, B, H]) for s in states)],
        [h.make_tensor_value_info("Y", f32, [T_STEPS, 1, B, H]),
         *(h.make_tensor_value_info(o, f32, [1, B, H]) for o in outputs[1:])],
        initializer=inits)
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", ONNX_OPSET)])
    model.ir_version = ONNX_IR_VERSION
    onnx.checker.check_model(model)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = threads
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def onnx_runners(session, data):
    """Make the fwd callable of an ONNX session (ONNX Runtime has no backward).

    Parameters
    ----------
    session : onnxruntime.InferenceSession
        From ``onnx_session``.
    data : dict
        The inputs of ``make_problem``: ``x``, ``state0``, ``dy``, ``dstate``.

    Returns
    -------
    dict of str to callable
        ``{"fwd": ...}``: a zero-argument callable returning (y (T, B, H),
        final state (1, B, H) or an (h, c) tuple).
    """
    lstm = isinstance(data["state0"], tuple)
    states = data["state0"] if lstm else (data["state0"],)
    feeds = {"X": np.ascontiguousarray(data["x"], dtype=np.float32),
             **{name: np.ascontiguousarray(s[None], dtype=np.float32)
                for name, s in zip(("initial_h", "initial_c")[:len(states)], states, strict=True)}}

    def fwd():
        y, *state = session.run(None, feeds)
        return y[:, 0], (tuple(state) if lstm else state[0])

    return {"fwd": fwd}


def jax_cell(jnp, jax, kind):
    """The step of a cell in JAX, with PyTorch's equations and layout: a
    function ``(params, state, xw_t) -> (state, h)`` where params are
    (weight_ih (G*H, D), weight_hh (G*H, H), bias_ih, bias_hh (G*H,)), state
    is h (B, H) or (h, c), and xw_t = x_t @ weight_ih.T + bias_ih (B, G*H)
    (the input side of every step is computed before the scan, as pyx_gru and
    PyTorch do).

    Parameters
    ----------
    jnp : module
        ``jax.numpy``.
    jax : module
        ``jax``.
    kind : {"RNN", "GRU", "LSTM"}
        The cell, by its ``torch.nn`` class (GRU: reset after the matmul).

    Returns
    -------
    callable
        The step function ``(params, state, xw_t) -> (state, h)``.
    """
    sigmoid = jax.nn.sigmoid

    def rnn(params, h, xw):
        h = jnp.tanh(xw + h @ params[1].T + params[3])
        return h, h

    def gru(params, h, xw):
        hw = h @ params[1].T + params[3]
        xr, xz, xn = jnp.split(xw, 3, axis=-1)
        hr, hz, hn = jnp.split(hw, 3, axis=-1)
        r, z = sigmoid(xr + hr), sigmoid(xz + hz)
        n = jnp.tanh(xn + r * hn)  # reset after the matmul: b_hn inside the product
        h = (1 - z) * n + z * h
        return h, h

    def lstm(params, state, xw):
        h, c = state
        i, f, g, o = jnp.split(xw + h @ params[1].T + params[3], 4, axis=-1)
        c = sigmoid(f) * c + sigmoid(i) * jnp.tanh(g)
        h = sigmoid(o) * jnp.tanh(c)
        return (h, c), h

    return {"RNN": rnn, "GRU": gru, "LSTM": lstm}[kind]


def jax_functions(jax, kind):
    """Jitted ``forward(params, x, state0) -> (y, final state)`` and
    ``gradients(params, x, state0, dy, dstate) -> (dparams, dx, dstate0)``,
    the gradients of L = sum(y * dy) + sum(h_T * dh) (+ sum(c_T * dc)), as
    pyx_gru's backward gives them; x (T, B, D), y and dy (T, B, H), states
    (B, H) or (h, c) tuples, params in PyTorch's layout (see ``jax_cell``).

    Parameters
    ----------
    jax : module
        ``jax``.
    kind : {"RNN", "GRU", "LSTM"}
        The cell, by its ``torch.nn`` class (GRU: reset after the matmul).

    Returns
    -------
    forward : callable
        The jitted forward pass over a whole sequence (``lax.scan``).
    gradients : callable
        The jitted gradients of L with respect to params, x and state0.
    """
    jnp = jax.numpy
    step = jax_cell(jnp, jax, kind)

    def forward(params, x, state0):
        xw = x @ params[0].T + params[2]  # (T, B, G*H)
        state, y = jax.lax.scan(lambda s, xw_t: step(params, s, xw_t), state0, xw)
        return y, state

    def loss(params, x, state0, dy, dstate):
        y, state = forward(params, x, state0)
        return jnp.sum(y * dy) + sum(jnp.sum(s * d) for s, d in zip(
            jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(dstate), strict=True))

    return jax.jit(forward), jax.jit(jax.grad(loss, argnums=(0, 1, 2)))


def jax_runners(jax, cell, kind, data):
    """Make the fwd and fwd+bwd callables of the cell in JAX (``lax.scan`` under
    ``jit``), each waiting for its results (``block_until_ready``), compiled
    here by one call each, outside any timed region. fwd returns (y, final
    state) as NumPy-convertible arrays; fwd+bwd returns (dparams (PyTorch's
    names), dx, dstate0).

    Parameters
    ----------
    jax : module
        ``jax``.
    cell : RNN, GRU (reset="after") or LSTM
        The compiled cell whose weights JAX gets.
    kind : {"RNN", "GRU", "LSTM"}
        The cell, by its ``torch.nn`` class (GRU: reset after the matmul).
    data : dict
        The inputs of ``make_problem``: ``x``, ``state0``, ``dy``, ``dstate``.

    Returns
    -------
    dict of str to callable
        ``{"fwd": ..., "fwd+bwd": ...}``, zero-argument callables.
    """
    forward, gradients = jax_functions(jax, kind)
    t = interop.to_torch(cell)
    names = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
    params = jax.device_put(tuple(t[n] for n in names))
    x, state0, dy, dstate = jax.device_put(
        (data["x"], data["state0"], data["dy"], data["dstate"]))

    def fwd():
        return jax.block_until_ready(forward(params, x, state0))

    def fwd_bwd():
        dparams, dx, dstate0 = jax.block_until_ready(gradients(params, x, state0, dy, dstate))
        return dict(zip(names, dparams, strict=True)), dx, dstate0

    fwd()
    fwd_bwd()
    return {"fwd": fwd, "fwd+bwd": fwd_bwd}


# Largest relative forward difference from pyx_gru that counts as the same
# function: a float32 tolerance (the summation orders of the libraries differ).
AGREEMENT = {"float32": 1e-3, "float64": 1e-9}


def forward_disagreement(runners, cell_dtype):
    """How far each contender's forward is from pyx_gru's.

    Parameters
    ----------
    runners : dict of str to dict of str to callable
        The contenders' runners by name, ``"pyx_gru"`` among them; every
        ``fwd`` runner returns y (T, B, H) first (NumPy, torch or JAX
        arrays).
    cell_dtype : numpy.dtype
        The cell's dtype (its smallest normal number bounds the scale).

    Returns
    -------
    dict of str to float
        For each other contender, the largest ``|y - y_pyx_gru| /
        max|y_pyx_gru|``.
    """
    def as_numpy(out):
        y = out[0]
        return y.detach().numpy() if hasattr(y, "detach") else np.asarray(y)

    base = as_numpy(runners["pyx_gru"]["fwd"]())
    scale = max(float(np.abs(base).max()), np.finfo(cell_dtype).tiny)
    return {name: float(np.abs(as_numpy(r["fwd"]()) - base).max() / scale)
            for name, r in runners.items() if name != "pyx_gru"}


def run_case(case, settings, torch, peers, memo, rng):
    """Roofline and interleaved timings of every contender of one case.

    Parameters
    ----------
    case : Case
        The problem.
    settings : Settings
        Rounds, budget and threads.
    torch : module or None
        ``torch``, or None to leave PyTorch out.
    peers : dict
        ``import_peers``'s dict (the optional peers run float32 RNN, GRU
        with the reset gate after and LSTM).
    memo : dict
        The GEMM times of the run (see ``gemm_time``).
    rng : numpy.random.Generator
        Draws the data and shuffles the rounds.

    Returns
    -------
    dict
        The case's sizes, the forward agreement of the contenders, the
        roofline, and per task and contender the warm-up times, every
        round's time and their summary; the JSON record of the case. With
        ``settings.regularisation``, also ``regularisation``: the rates, the
        seed and ``on_over_off``, the ratio of the medians per task (or
        ``skipped``, the reason, for a cell that takes no such rates).
    """
    cell, data = make_problem(case, rng)
    contenders = {"pyx_gru": numpy_runners(cell, data),
                  "pyx_gru/cache": {"fwd": lambda: cell.forward(data["x"], data["state0"])}}
    if settings.kernels and _recurrent.packed_available():
        contenders["pyx_gru/blas"] = blas_kernel_runners(contenders["pyx_gru"])
    size = (case.B, case.D, case.H)
    if size not in settings.skip_reference:
        contenders["numpy"] = numpy_runners(reference.from_cell(cell), data)
    if torch is not None and case.torch_name is not None:
        contenders["torch"] = torch_runners(torch, torch_module(torch, case, cell), data)
    # The peers run float32 only: JAX computes in float64 only with x64
    # switched on for the whole process, and the targets are float32.
    if case.torch_name is not None and case.dtype == "float32":
        if peers["onnxruntime"] is not None:
            session = onnx_session(*peers["onnxruntime"], cell, case.torch_name, case.B,
                                   settings.threads)
            contenders["onnxruntime"] = onnx_runners(session, data)
        if peers["jax"] is not None:
            contenders["jax"] = jax_runners(peers["jax"], cell, case.torch_name, data)
    agreement = forward_disagreement(contenders, cell.dtype)
    disagree = sorted(name for name, d in agreement.items() if d > AGREEMENT[case.dtype])
    for name in disagree:
        # Said at once (stderr) and again in the report: timing a contender
        # that computes another function would compare nothing.
        print(f"WARNING: {name} disagrees with pyx_gru on {case.label} ({case.B}, {case.D}, "
              f"{case.H}) {case.dtype}: max rel diff "
              f"{agreement[name]:.1e} > {AGREEMENT[case.dtype]:.0e}", file=sys.stderr, flush=True)
    regularisation = None
    if settings.regularisation is not None:
        # Added after the agreement check: dropout and zoneout change the outputs.
        regularisation = dict(zip(("recurrent_dropout", "zoneout"), settings.regularisation, strict=True),
                              seed=REGULARISATION_SEED)
        try:
            contenders[REGULARISED] = regularised_runners(case, cell, data, settings.regularisation)
        except ValueError as exc:
            regularisation["skipped"] = str(exc)
            print(f"  skipped with --regularisation: {exc}", file=sys.stderr, flush=True)
    clock = cpu_clock()
    roof = roofline(case, memo, rng)
    runners = {(name, task): fns[task] for name, fns in contenders.items() for task in TASKS
               if task in fns}
    warm, times, orders = interleaved_rounds(runners, settings, rng)
    others = other_cpus(clock, cpu_clock())
    timings = {task: {name: {"warmup": warm[name, task], "times": times[name, task],
                             **summarize(times[name, task])}
                      for name in contenders if task in contenders[name]}
               for task in TASKS}
    record = {"cell": case.cell, "label": case.label, "T": T_STEPS, "B": case.B, "D": case.D,
              "H": case.H, "dtype": case.dtype, "gates": case.gates, "other_cpus": others,
              "forward_max_rel_diff": agreement, "forward_disagrees": disagree,
              "roofline": roof, "timings": timings,
              "round_orders": [[f"{name} {task}" for name, task in order] for order in orders]}
    if regularisation is not None:
        if REGULARISED in contenders:
            regularisation["on_over_off"] = {task: peer_speedup(record, task, REGULARISED)
                                             for task in TASKS}
        record["regularisation"] = regularisation
    return record


# --------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------

def fmt_ms(stats):
    """Format a median time in ms with its IQR, for the tables.

    Parameters
    ----------
    stats : dict or None
        As ``summarize`` returns it; None for a contender not run.

    Returns
    -------
    str
        15 characters, "median ±IQR%", or "-".
    """
    if stats is None:
        return f"{'-':>15}"
    return f"{stats['median'] * 1e3:>9.3f} ±{stats['iqr_pct']:>3.0f}%"


def fmt_ratio(x, width=7, suffix=""):
    """Format a ratio right-aligned, for the tables.

    Parameters
    ----------
    x : float or None
        The ratio; None prints "-".
    width : int
        The field's width, ``suffix`` included.
    suffix : str
        Appended, e.g. "x".

    Returns
    -------
    str
        ``x`` with two decimals (none from 100 on).
    """
    if x is None:
        return f"{'-':>{width}}"
    return f"{x:>{width - len(suffix)}.{2 if x < 100 else 0}f}{suffix}"


def table(results, task):
    """The table of one task, as a string.

    Parameters
    ----------
    results : list of dict
        ``run_case``'s records.
    task : {"fwd", "fwd+bwd"}
        The task tabulated.

    Returns
    -------
    str
        A header, a rule and a line per case: the median times, speed-ups
        and roofline ratios.
    """
    head = (f"{'cell':<10} {'B':>3} {'D':>4} {'H':>4} {'dtype':<5} "
            f"{'pyx_gru ms':>15} {'numpy ms':>15} {'torch ms':>15} {'speed-up':>8} "
            f"{'roof ms':>9} {'pyx/roof':>8} {'np/roof':>7} {'th/roof':>7}")
    lines = [head, "-" * len(head)]
    for r in results:
        t = r["timings"][task]
        roof = r["roofline"][task]["seconds"]
        over = {c: over_roofline(r, task, c) for c in CONTENDERS}
        lines.append(
            f"{r['label']:<10} {r['B']:>3} {r['D']:>4} {r['H']:>4} {'f' + r['dtype'][5:]:<5} "
            f"{fmt_ms(t.get('pyx_gru'))} {fmt_ms(t.get('numpy'))} {fmt_ms(t.get('torch'))} "
            f"{fmt_ratio(speedup(r, task), 8, 'x')} {roof * 1e3:>9.3f} {fmt_ratio(over['pyx_gru'], 8)} "
            f"{fmt_ratio(over['numpy'])} {fmt_ratio(over['torch'])}"
        )
    return "\n".join(lines)


def machine_lines(info):
    """What the figures were measured on: CPU model, pyx_gru's vector path,
    the BLAS's core type and the optional peers' versions (or that they are
    not installed).

    Parameters
    ----------
    info : dict
        As ``machine_info`` returns it.

    Returns
    -------
    list of str
        The lines, for the report.
    """
    env = info["environment"]
    forced = [f"{k}={env[k]}" for k in ("PYX_GRU_SIMD", "OPENBLAS_CORETYPE") if env.get(k)]
    blas = ", ".join(f"{arch} ({lib})" for lib, arch in info["blas_core_types"]) or "no OpenBLAS"
    lines = [f"CPU: {info['cpu_model']}; pyx_gru's vector path: {info['vector_path']}; "
             f"OpenBLAS core type: {blas}" + (f"; set: {' '.join(forced)}" if forced else "")]
    if info.get("avx512_hidden"):
        lines.append("AVX-512 hidden (--hide-avx512): pyx_gru and every library loaded after "
                     "it (PyTorch, JAX, ONNX Runtime) took their AVX2 kernels as on an AVX2 CPU; "
                     "NumPy's loops and OpenBLAS's kernels were chosen before (its core type "
                     "above)")
    return lines + peer_lines({name: info["versions"][name] for name in PEERS
                               if name in info["versions"]})


def print_report(results, info):
    """Print the report of a run: the machine, the tables and the warnings.

    Parameters
    ----------
    results : list of dict
        ``run_case``'s records.
    info : dict
        As ``machine_info`` returns it.
    """
    print()
    print("\n".join(machine_lines(info)))
    print(f"\nT = {T_STEPS}, time-major, {info['threads']} thread(s); median ms of one call "
          "±IQR as % of the median;\nspeed-up = torch / pyx_gru; x/roof = time over the GEMM "
          "roofline (sum of the task's GEMMs at the measured sgemm/dgemm rate)")
    for task in TASKS:
        print(f"\n== {task} ==")
        print(table(results, task))
    for r in results:
        for name in r["forward_disagrees"]:
            print(f"WARNING: {name} DISAGREES with pyx_gru on {r['label']} "
                  f"({r['B']}, {r['D']}, {r['H']}) {r['dtype']}: max rel diff of the forward "
                  f"{r['forward_max_rel_diff'][name]:.1e} > {AGREEMENT[r['dtype']]:.0e}; "
                  "its times are not comparable")
    cached = [r for r in results if "pyx_gru/cache" in r["timings"]["fwd"]]
    if cached:
        print("\n== pyx_gru's forward keeping its cache (as for training), against the "
              "inference forward above (ms; ratio) ==")
        for r in cached:
            t = r["timings"]["fwd"]
            keep, infer = t["pyx_gru/cache"]["median"], t["pyx_gru"]["median"]
            print(f"{r['label']:<10} {r['B']:>3} {r['D']:>4} {r['H']:>4} {'f' + r['dtype'][5:]:<5} "
                  f"{keep * 1e3:9.3f} vs {infer * 1e3:9.3f} {keep / infer:5.2f}x")
    print_side_by_side(results, "pyx_gru/blas",
                       "the per-step products: packed kernel against the BLAS (ms; blas / packed)")
    print_regularisation(results)


def print_side_by_side(results, other, heading):
    """Print pyx_gru against another form of it timed in the same rounds: per
    case that has it, each task's two medians (ms) and their ratio, other /
    pyx_gru (``peer_speedup``); nothing when no case has it.

    Parameters
    ----------
    results : list of dict
        ``run_case``'s records.
    other : str
        The contender set against ``pyx_gru`` ("pyx_gru/blas", ``REGULARISED``).
    heading : str
        The section's heading.
    """
    rows = [r for r in results if other in r["timings"]["fwd"]]
    if not rows:
        return
    print(f"\n== {heading} ==")
    for r in rows:
        cols = [f"{task}: {r['timings'][task]['pyx_gru']['median'] * 1e3:9.3f} vs "
                f"{r['timings'][task][other]['median'] * 1e3:9.3f} {peer_speedup(r, task, other):5.2f}x"
                for task in TASKS]
        print(f"{r['label']:<10} {r['B']:>3} {r['D']:>4} {r['H']:>4} {'f' + r['dtype'][5:]:<5} "
              + " | ".join(cols))


def print_regularisation(results):
    """Print the ``--regularisation`` section of the report: pyx_gru with
    recurrent dropout and zoneout on, in a training pass, against the same
    parameters with them off (``print_side_by_side``), then the cells
    skipped and why, once each; nothing when the run did not ask for it.

    Parameters
    ----------
    results : list of dict
        ``run_case``'s records.
    """
    asked = [r["regularisation"] for r in results if "regularisation" in r]
    if not asked:
        return
    print_side_by_side(
        results, REGULARISED,
        f"recurrent dropout {asked[0]['recurrent_dropout']:g} and zoneout {asked[0]['zoneout']:g} "
        f"on, in a training pass (seed {asked[0]['seed']}), against off (ms; on / off)")
    skipped = {r["label"]: r["regularisation"]["skipped"] for r in results
               if "skipped" in r.get("regularisation", {})}
    for label, reason in skipped.items():
        print(f"{label}: skipped with --regularisation ({reason})")


# The peers table: its columns of each task, contender names.
PEER_COLUMNS = {"fwd": ("pyx_gru", "torch", "jax", "onnxruntime"),
                "fwd+bwd": ("pyx_gru", "torch", "jax")}
CONTENDER_LABELS = {"pyx_gru": "pyx_gru", "torch": "PyTorch", "jax": "JAX",
                    "onnxruntime": "ONNX Runtime"}


def peer_results(results):
    """The results the peers table covers: float32 cases of the cells PyTorch,
    JAX and ONNX Runtime have (RNN, GRU with the reset gate after, LSTM).

    Parameters
    ----------
    results : list of dict
        ``run_case``'s records.

    Returns
    -------
    list of dict
        Those records, in their order.
    """
    return [r for r in results if r["dtype"] == "float32" and CELLS[r["cell"]][3] is not None]


def peers_table(results):
    """The peers table, as a string: median ms of each contender of
    PEER_COLUMNS, per case; "-" where one did not run.

    Parameters
    ----------
    results : list of dict
        ``run_case``'s records.

    Returns
    -------
    str
        A header, a rule and a line per case of ``peer_results``.
    """
    def ms(t, who):
        return f"{t[who]['median'] * 1e3:>12.3f}" if who in t else f"{'-':>12}"

    head = f"{'cell':<10} {'B':>3} {'D':>4} {'H':>4} | " + " | ".join(
        f"{task}: " + " ".join(f"{CONTENDER_LABELS[c]:>12}" for c in cols)
        for task, cols in PEER_COLUMNS.items())
    lines = [head, "-" * len(head)]
    for r in peer_results(results):
        lines.append(f"{r['label']:<10} {r['B']:>3} {r['D']:>4} {r['H']:>4} | " + " | ".join(
            " " * len(f"{task}: ") + " ".join(ms(r["timings"][task], c) for c in cols)
            for task, cols in PEER_COLUMNS.items()))
    return "\n".join(lines)


def print_peers(results):
    """Print the peers table of the report (nothing when no case has peers).

    Parameters
    ----------
    results : list of dict
        ``run_case``'s records.
    """
    if peer_results(results):
        print("\n== peers (float32; median ms of one call; fwd is inference, ONNX Runtime "
              "runs no backward) ==")
        print(peers_table(results))


# The performance targets (issue 5), for float32 in one run at 2 threads:
# the least speed-up over PyTorch of (cell, (B, D, H)), forward+backward;
# and pyx_gru's forward+backward within ROOFLINE_TARGET of the roofline for
# every cell wherever B >= 32 and H >= 256; minGRU and minLSTM (no per-step
# product) within SCAN_ROOFLINE_TARGET of theirs at every size (issue 20).
SPEEDUP_TARGETS = (
    ("gru_after", (1, 32, 32), 20.0), ("gru_after", (16, 64, 64), 5.0),
    ("gru_after", (32, 128, 128), 1.5), ("gru_after", (64, 512, 512), 1.2),
    ("lstm", (1, 32, 32), 2.0), ("lstm", (64, 512, 512), 1.0),
)
ROOFLINE_TARGET = 1.15
SCAN_ROOFLINE_TARGET = 1.2
# Issue 16: pyx_gru faster than each of these peers, for RNN, GRU (reset
# after) and LSTM at every size; ONNX Runtime runs the forward only.
PEER_TARGETS = {"fwd": ("torch", "jax", "onnxruntime"), "fwd+bwd": ("torch", "jax")}
# The scaling run: the peak memory of forward+backward over what the cache,
# outputs and gradients need.
MEMORY_TARGET = 1.25
# --regularisation: recurrent dropout and zoneout on, in a training pass, at
# most this many times slower than off (the issue that added them).
REGULARISATION_TARGET = 1.10
TARGET_THREADS = 2


def speedup(result, task):
    """The ratio of PyTorch's median time to pyx_gru's for one task.

    Parameters
    ----------
    result : dict
        One record of ``run_case``.
    task : {"fwd", "fwd+bwd"}
        The task.

    Returns
    -------
    float or None
        The ratio, None when PyTorch did not run.
    """
    t = result["timings"][task]
    if "torch" not in t:
        return None
    return t["torch"]["median"] / t["pyx_gru"]["median"]


def over_roofline(result, task, who="pyx_gru"):
    """A contender's median time for one task over the task's roofline.

    Parameters
    ----------
    result : dict
        One record of ``run_case``.
    task : {"fwd", "fwd+bwd"}
        The task.
    who : str
        The contender.

    Returns
    -------
    float or None
        The ratio, None when the contender did not run.
    """
    t = result["timings"][task]
    if who not in t:
        return None
    return t[who]["median"] / result["roofline"][task]["seconds"]


def peer_speedup(result, task, peer):
    """A peer's median time over pyx_gru's for one task.

    Parameters
    ----------
    result : dict
        One record of ``run_case``.
    task : {"fwd", "fwd+bwd"}
        The task.
    peer : str
        The peer's contender name ("torch", "jax", "onnxruntime"; or
        another form of pyx_gru, "pyx_gru/blas" or ``REGULARISED``).

    Returns
    -------
    float or None
        The ratio, None when the peer did not run.
    """
    t = result["timings"][task]
    if peer not in t:
        return None
    return t[peer]["median"] / t["pyx_gru"]["median"]


def target_rows(results):
    """The targets a run's results can check, as rows
    ``(kind, what, measured, bound, met)``; kind is ``"speed-up"`` (measured
    >= bound), ``"roofline"`` (measured <= bound; both for forward+backward
    and, separately, the forward alone, which meets the same numbers but
    need not be further ahead) or ``"faster than"`` (a peer's time over pyx_gru's,
    measured > bound = 1, for every cell with peers at every size, each peer
    of PEER_TARGETS; measured and met are None, "not run", where the peer
    did not run) or ``"regularisation"`` (``REGULARISED``'s time over
    pyx_gru's, dropout and zoneout on over off, measured <= bound, for
    every case that timed it). Float32 results only.

    Parameters
    ----------
    results : list of dict
        ``run_case``'s records.

    Returns
    -------
    list of tuple
        The rows ``(kind, what, measured, bound, met)``.
    """
    rows = []
    f32 = [r for r in results if r["dtype"] == "float32"]
    by_case = {(r["cell"], (r["B"], r["D"], r["H"])): r for r in f32}
    for cell, size, least in SPEEDUP_TARGETS:
        r = by_case.get((cell, size))
        if r is None:
            continue
        for task in TASKS:
            x = speedup(r, task)
            if x is not None:
                rows.append(("speed-up", f"{r['label']} {size} {task}", x, least, x >= least))
    for r in f32:
        scan = _kinds.get(r["cell"]).scan
        if scan or (r["B"] >= 32 and r["H"] >= 256):
            bound = SCAN_ROOFLINE_TARGET if scan else ROOFLINE_TARGET
            for task in TASKS:
                x = over_roofline(r, task)
                rows.append(("roofline", f"{r['label']} {(r['B'], r['D'], r['H'])} {task}", x,
                             bound, x <= bound))
    for r in f32:
        if CELLS[r["cell"]][3] is None:
            continue
        for task, peers in PEER_TARGETS.items():
            for peer in peers:
                x = peer_speedup(r, task, peer)
                what = f"{r['label']} {(r['B'], r['D'], r['H'])} {task} vs {peer}"
                rows.append(("faster than", what, x, 1.0, None if x is None else x > 1.0))
    for r in f32:
        if REGULARISED in r["timings"]["fwd"]:
            for task in TASKS:
                x = peer_speedup(r, task, REGULARISED)
                rows.append(("regularisation", f"{r['label']} {(r['B'], r['D'], r['H'])} {task} on/off",
                             x, REGULARISATION_TARGET, x <= REGULARISATION_TARGET))
    return rows


def target_status(met):
    """Say whether a target row was met.

    Parameters
    ----------
    met : bool or None
        The row's ``met``.

    Returns
    -------
    str
        "met", "MISS", or "not run" when ``met`` is None.
    """
    return "not run" if met is None else "met" if met else "MISS"


def print_targets(rows, threads, path, cpu_model):
    """Print the targets section of the report (nothing without rows).

    Parameters
    ----------
    rows : list of tuple
        As ``target_rows`` returns them.
    threads : int
        The run's threads (the targets are set for ``TARGET_THREADS``).
    path : str
        The vector path of pyx_gru (``vector_path()``), named in the heading.
    cpu_model : str
        The CPU measured, named in the heading.
    """
    if not rows:
        return
    words = {"speed-up": ">=", "roofline": "<=", "faster than": ">", "regularisation": "<="}
    ratios = ["speed-up = torch / pyx_gru", "faster than = peer / pyx_gru"]
    if any(row[0] == "regularisation" for row in rows):
        ratios.append("regularisation = dropout and zoneout on / off")
    print(f"\n== targets (float32, this run; pyx_gru's {path} path on {cpu_model}): "
          f"{'; '.join(ratios)} ==")
    if threads != TARGET_THREADS:
        print(f"(the targets are set for {TARGET_THREADS} threads; this run used {threads})")
    for kind, what, measured, bound, met in rows:
        if met is None:
            print(f"{'--':<4}  {kind:<14} {what:<45} not run")
        else:
            print(f"{'met ' if met else 'MISS'}  {kind:<14} {what:<45} {measured:8.2f} "
                  f"{words[kind]} {bound:.2f}")
    for kind in words:
        mine = [row for row in rows if row[0] == kind]
        run = [row for row in mine if row[4] is not None]
        if mine:
            print(f"{kind}: {sum(row[4] for row in run)} of {len(run)} met"
                  + (f", {len(mine) - len(run)} not run" if len(run) < len(mine) else ""))


def load_average():
    """The 1, 5 and 15 minute load averages.

    Returns
    -------
    list of float or None
        The three averages, None where the platform has none.
    """
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def cpu_clock():
    """Read the clocks ``other_cpus`` compares.

    Returns
    -------
    tuple of (float, float or None, float)
        Wall seconds, busy CPU-seconds of the whole machine from /proc/stat
        (None without it), and CPU-seconds of this process.
    """
    busy = None
    try:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:9]]
        # user nice system idle iowait irq softirq steal
        busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        pass
    own = os.times()
    return time.perf_counter(), busy, own.user + own.system


def other_cpus(start, end):
    """How many CPUs other processes kept busy, on average, between two readings.

    Parameters
    ----------
    start, end : tuple
        Two ``cpu_clock`` readings, in this order.

    Returns
    -------
    float or None
        The average number of CPUs busy outside this process, None without
        /proc/stat.
    """
    if start[1] is None or end[1] is None or end[0] <= start[0]:
        return None
    return max(0.0, ((end[1] - start[1]) - (end[2] - start[2])) / (end[0] - start[0]))


def warn_if_busy(parts, whole_run):
    """Say how busy other processes kept the CPUs, and warn if it matters.

    Parameters
    ----------
    parts : list of tuple
        ``[(CPUs busy or None, what was being timed), ...]``.
    whole_run : float or None
        The CPUs busy over the whole run; None prints nothing.
    """
    if whole_run is None:
        return
    busy = [(cpus, what) for cpus, what in parts if cpus is not None]
    print(f"\nother processes kept {whole_run:.2f} CPUs busy on average during the run", end="")
    if busy:
        worst, what = max(busy, key=lambda b: b[0])
        print(f" (at most {worst:.2f}, during {what})", end="")
    print()
    if whole_run > 0.2 or any(cpus > 0.5 for cpus, _ in busy):
        print("WARNING: other processes competed for the CPUs: expect noisy, inflated times")


def vector_path():
    """The vector path of pyx_gru's compiled kernels.

    Returns
    -------
    str
        "avx512", "avx2" or "portable" (``PYX_GRU_SIMD`` may force a
        narrower one than the CPU's widest).
    """
    return _recurrent.simd_path()


def blas_core_types(threadpools):
    """[(library file name, core type), ...] of the OpenBLAS builds loaded
    (threadpoolctl's ``architecture``: the kernels OpenBLAS picked for this
    CPU, or the ones ``OPENBLAS_CORETYPE`` asked for).

    Parameters
    ----------
    threadpools : list of dict
        ``threadpoolctl.threadpool_info()``.

    Returns
    -------
    list of tuple of (str, str)
        One pair per OpenBLAS build loaded.
    """
    return [(os.path.basename(p["filepath"]), p.get("architecture"))
            for p in threadpools if p.get("internal_api") == "openblas"]


def machine_info(threads, threadpoolctl, torch, peers):
    """Describe the machine, the libraries and the settings a run measured.

    Parameters
    ----------
    threads : int
        The run's threads.
    threadpoolctl : module
        ``threadpoolctl``.
    torch : module or None
        ``torch``, None when not installed.
    peers : dict
        As ``import_peers`` returns it.

    Returns
    -------
    dict
        Date, CPU model and counts, threads, load average, platform, the
        versions of Python and every library, the vector path, the BLAS
        core types, the git commit, the thread-related environment
        variables and the thread pools: the JSON record's ``machine``.
    """
    def cpu_model():
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.startswith("model name"):
                        return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return platform.processor() or "unknown"

    def git_commit():
        here = os.path.dirname(os.path.abspath(__file__))
        try:
            out = subprocess.run(["git", "-C", here, "rev-parse", "HEAD"],
                                 capture_output=True, text=True, timeout=10)
            return out.stdout.strip() or None
        except (OSError, subprocess.SubprocessError):
            return None

    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "threads": threads,
        "load_average_at_start": load_average(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "versions": {
            "numpy": np.__version__, "scipy": scipy.__version__,
            "torch": torch.__version__ if torch is not None else None,
            "pyx_gru": pyx_gru.__version__, "threadpoolctl": threadpoolctl.__version__,
            **peer_versions(peers),
        },
        "vector_path": vector_path(),
        "avx512_hidden": _cpuid.hidden(),
        "blas_core_types": blas_core_types(threadpoolctl.threadpool_info()),
        "pyx_gru_git_commit": git_commit(),
        "environment": {k: os.environ.get(k) for k in (
            "OPENBLAS_THREAD_TIMEOUT", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
            "OMP_WAIT_POLICY", "MKL_NUM_THREADS", "OPENBLAS_CORETYPE", "PYX_GRU_SIMD",
            "PJRT_NPROC")},
        "threadpools": threadpoolctl.threadpool_info(),
        "torch_num_threads": torch.get_num_threads() if torch is not None else None,
    }


def write_json(path, payload):
    """Write a run's results as JSON.

    Parameters
    ----------
    path : str or None
        The file; None writes ``benchmarks/results/bench-<date>-<time>.json``.
    payload : dict
        The results.

    Returns
    -------
    str
        The path written.
    """
    if path is None:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = os.path.join("benchmarks", "results", f"bench-{stamp}.json")
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    _files.write_text(path, json.dumps(payload, indent=1))
    return path


# --------------------------------------------------------------------------
# scaling
# --------------------------------------------------------------------------

def needed_bytes(cache, dx, dstate0, dparams):
    """Count the bytes of what the results need: the cache's arrays, dx, dstate0, dparams.

    Parameters
    ----------
    cache : Cache
        A compiled cell's forward cache.
    dx : ndarray, shape (T, B, D)
        From ``backward``.
    dstate0 : ndarray (B, H) or tuple
        From ``backward``.
    dparams : dict of str to ndarray
        From ``backward``.

    Returns
    -------
    int
        The bytes of all these arrays.
    """
    arrays = [getattr(cache, n) for n in ("x", "gates", "hs", "cs", "extra")]
    arrays += [dx, *(dstate0 if isinstance(dstate0, tuple) else (dstate0,)), *dparams.values()]
    return sum(a.nbytes for a in arrays if a is not None)


def peak_memory(cell, x, dy):
    """Measure the peak memory of one forward+backward with ``tracemalloc``.

    Parameters
    ----------
    cell : Cell
        A compiled cell.
    x : ndarray, shape (T, B, D)
        Inputs.
    dy : ndarray, shape (T, B, H)
        The gradient of the outputs.

    Returns
    -------
    peak : int
        The peak bytes traced during the call beyond what was traced before it.
    needed : int
        The bytes the results need (``needed_bytes``).
    """
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        gc.collect()
        # Empty pyx_gru's recycled buffers first, so that this call allocates
        # (and tracemalloc sees) everything it uses.
        _workspace.clear()
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        _, _, cache = cell.forward(x)
        dx, dstate0, dparams = cell.backward(cache, dy)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        if not was_tracing:
            tracemalloc.stop()
    return peak, needed_bytes(cache, dx, dstate0, dparams)


def growth_exponent(sizes, values):
    """Slope of the least-squares line through (log size, log value): the exponent of a power law.

    Parameters
    ----------
    sizes : sequence of float
        The sizes (T or B), at least two, positive.
    values : sequence of float
        The measured values (seconds or bytes), positive, one per size.

    Returns
    -------
    float
        The least-squares slope: 1 for linear growth.
    """
    return float(np.polyfit(np.log(sizes), np.log(values), 1)[0])


def scaling(settings, rng, H=64, dtype=np.float32):
    """Time and peak memory of pyx_gru fwd+bwd against T and against B (``--scaling``).

    For the GRU (reset after) and the LSTM with D = H, one sweep over T
    (B = 1) and one over B.

    Parameters
    ----------
    settings : Settings
        Rounds and budget of each point.
    rng : numpy.random.Generator
        Draws the data and shuffles the rounds.
    H : int
        The hidden (and input) size.
    dtype : numpy.dtype
        Precision of the cells.

    Returns
    -------
    list of dict
        One per (cell, axis): the points' times and peak and needed bytes,
        and the growth exponents of time and peak memory (over all points
        and over the last two).
    """
    sweeps = {"T": [(T, 1) for T in (10, 100, 1000, 10000)],
              "B": [(100, B) for B in (1, 4, 16, 64, 256)]}
    out = []
    for name in ("gru_after", "lstm"):
        label, cls, kwargs, _ = CELLS[name]
        cell = cls(H, H, dtype=dtype, seed=0, **kwargs)
        for axis, points in sweeps.items():
            rows, clock = [], cpu_clock()
            for T, B in points:
                x = rng.standard_normal((T, B, H)).astype(dtype)
                dy = rng.standard_normal((T, B, H)).astype(dtype)
                run = numpy_runners(cell, {"x": x, "state0": None, "dy": dy, "dstate": None})
                _, times, _ = interleaved_rounds({"fwd+bwd": run["fwd+bwd"]}, settings, rng)
                peak, need = peak_memory(cell, x, dy)
                rows.append({"T": T, "B": B, "times": times["fwd+bwd"],
                             **summarize(times["fwd+bwd"]),
                             "peak_bytes": peak, "needed_bytes": need})
            n = [r[axis] for r in rows]
            out.append({
                "cell": name, "label": label, "axis": axis, "D": H, "H": H,
                "other_cpus": other_cpus(clock, cpu_clock()),
                "dtype": np.dtype(dtype).name, "points": rows,
                "time_exponent": growth_exponent(n, [r["median"] for r in rows]),
                "memory_exponent": growth_exponent(n, [r["peak_bytes"] for r in rows]),
                "time_exponent_last_two": growth_exponent(n[-2:], [r["median"] for r in rows[-2:]]),
                "memory_exponent_last_two": growth_exponent(n[-2:], [r["peak_bytes"] for r in rows[-2:]]),
            })
    return out


def print_scaling(sweeps, threads):
    """Print the scaling report: every point, the growth exponents, the memory target.

    Parameters
    ----------
    sweeps : list of dict
        As ``scaling`` returns them.
    threads : int
        The run's threads, named in the heading.
    """
    print(f"\nScaling of pyx_gru forward+backward, {sweeps[0]['dtype']}, D = H = "
          f"{sweeps[0]['H']}, {threads} thread(s); peak = tracemalloc peak during the call;\n"
          "needed = cache arrays + dx + dstate0 + dparams")
    head = (f"{'cell':<10} {'T':>6} {'B':>4} {'median ms':>10} {'IQR%':>5} {'peak MiB':>9} "
            f"{'needed MiB':>10} {'peak/needed':>11}")
    print(head)
    print("-" * len(head))
    for s in sweeps:
        for p in s["points"]:
            print(f"{s['label']:<10} {p['T']:>6} {p['B']:>4} {p['median'] * 1e3:>10.3f} "
                  f"{p['iqr_pct']:>4.0f}% {p['peak_bytes'] / 2**20:>9.3f} "
                  f"{p['needed_bytes'] / 2**20:>10.3f} {p['peak_bytes'] / p['needed_bytes']:>11.2f}")
    print("\ngrowth exponents: slope of log(value) against log(T or B) over all points, and in "
          "brackets over the last two\n(fixed costs, e.g. the weight gradients, flatten the "
          "small end of the memory curves)")
    for s in sweeps:
        print(f"{s['label']:<10} vs {s['axis']}: time {s['time_exponent']:.2f} "
              f"({s['time_exponent_last_two']:.2f}), peak memory {s['memory_exponent']:.2f} "
              f"({s['memory_exponent_last_two']:.2f})")
    worst = max(p["peak_bytes"] / p["needed_bytes"] for s in sweeps for p in s["points"])
    print(f"\ntarget: peak memory within {MEMORY_TARGET:.2f}x of what is needed, at every "
          f"point: {'met' if worst <= MEMORY_TARGET else 'MISSED'} (at most {worst:.2f}x)")


# --------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------

def parse_cells(text):
    """Parse ``--cells``: names of ``CELLS`` or aliases ("gru", "all"), comma-separated.

    Parameters
    ----------
    text : str
        The option's value.

    Returns
    -------
    tuple of str
        The cell names, aliases expanded, each once, in order.

    Raises
    ------
    argparse.ArgumentTypeError
        For an unknown name.
    """
    names = []
    for part in text.replace(" ", "").lower().split(","):
        if part in CELL_ALIASES:
            names.extend(CELL_ALIASES[part])
        elif part in CELLS:
            names.append(part)
        else:
            raise argparse.ArgumentTypeError(
                f"unknown cell {part!r}; choose from {', '.join([*CELLS, *CELL_ALIASES])}")
    return tuple(dict.fromkeys(names))


def parse_size(text):
    """Parse one ``--sizes`` entry, "B,D,H".

    Parameters
    ----------
    text : str
        Three positive integers separated by commas.

    Returns
    -------
    tuple of int
        ``(B, D, H)``.

    Raises
    ------
    argparse.ArgumentTypeError
        When it is not three positive integers.
    """
    try:
        size = tuple(int(v) for v in text.split(","))
    except ValueError:
        size = ()
    if len(size) != 3 or min(size) < 1:
        raise argparse.ArgumentTypeError(f"a size is B,D,H (three positive ints), got {text!r}")
    return size


def parse_rates(text):
    """Parse ``--regularisation``'s value, "P,Z": the rates of recurrent
    dropout and of zoneout.

    Parameters
    ----------
    text : str
        Two numbers in [0, 1), not both 0, separated by a comma.

    Returns
    -------
    tuple of float
        ``(recurrent_dropout, zoneout)``.

    Raises
    ------
    argparse.ArgumentTypeError
        When it is not two rates in [0, 1) (NaN is not one), or both are 0
        (the cell would be the plain one).
    """
    try:
        rates = tuple(float(v) for v in text.split(","))
    except ValueError:
        rates = ()
    if len(rates) != 2 or not all(0 <= r < 1 for r in rates):
        raise argparse.ArgumentTypeError(
            f"the rates are P,Z (recurrent dropout, zoneout), two numbers in [0, 1), got {text!r}")
    if not any(rates):
        raise argparse.ArgumentTypeError(
            f"at least one rate must be above 0 (with both 0 the cell is the plain one), got {text!r}")
    return rates


def build_cases(cells, sizes):
    """Every (cell, size) in float32, and float64 at FLOAT64_SIZE if selected.

    Parameters
    ----------
    cells : sequence of str
        Keys of ``CELLS``.
    sizes : sequence of tuple of int
        The sizes (B, D, H).

    Returns
    -------
    list of Case
        Size by size, cell by cell; then the float64 cases, if FLOAT64_SIZE
        is among ``sizes``.
    """
    cases = [Case(c, *s, "float32") for s in sizes for c in cells]
    if FLOAT64_SIZE in sizes:
        cases += [Case(c, *FLOAT64_SIZE, "float64") for c in cells]
    return cases


BLAS_SPIN_ENV = "OPENBLAS_THREAD_TIMEOUT"
BLAS_SPIN_VALUE = "24"
# Pause between two timed calls, long enough for the previous library's
# worker threads (OpenBLAS, spinning 2**24 cycles; OpenMP) to go idle.
SETTLE_SECONDS = 0.01
# Then wait for the process to be idle (see settle()).
IDLE_WINDOW = 0.005
IDLE_FRACTION = 0.1
SETTLE_MAX_SECONDS = 0.5


# The OpenBLAS core type of --hide-avx512 (the one OpenBLAS picks on AVX2 CPUs).
HIDDEN_BLAS_CORE = "Haswell"


def hide_avx512(parser):
    """``--hide-avx512``: hide AVX-512 from every library loaded or started
    from now on (``pyx_gru._cpuid``; before the peers are imported) and take
    pyx_gru's AVX2 path where it was wider. SciPy's OpenBLAS chose its
    kernels when it loaded: ``restart_with_short_blas_spin`` set
    OPENBLAS_CORETYPE for that, and a note says so when it is not set.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        Reports a machine that cannot hide it, as a usage error.
    """
    try:
        _cpuid.hide_avx512()
    except OSError as e:
        parser.error(f"--hide-avx512: {e}")
    for module in (_recurrent, _scan):
        if module.simd_path() == "avx512":
            module._set_simd("avx2")
    if not os.environ.get("OPENBLAS_CORETYPE"):
        print(f"note: OPENBLAS_CORETYPE is not set: SciPy's OpenBLAS keeps the kernels it chose "
              f"when it loaded (set OPENBLAS_CORETYPE={HIDDEN_BLAS_CORE} for those of an AVX2 CPU)")


def restart_with_short_blas_spin():
    """Re-run this command with OPENBLAS_THREAD_TIMEOUT set, unless it is set
    already (OpenBLAS reads it when it loads, so it cannot be set later).
    """
    if BLAS_SPIN_ENV in os.environ:
        return
    env = dict(os.environ, **{BLAS_SPIN_ENV: BLAS_SPIN_VALUE})
    if "--hide-avx512" in sys.argv[1:]:
        env.setdefault("OPENBLAS_CORETYPE", HIDDEN_BLAS_CORE)
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, "-m", "pyx_gru.bench", *sys.argv[1:]], env)


def _sig(x):
    """Three significant figures, as the README's table gives them."""
    return f"{x:.3g}" if x < 1000 else f"{x:.0f}"


def markdown_table(payload):
    """The README's table (Markdown) of a run's JSON payload: per case,
    fwd+bwd times of pyx_gru, NumPy and PyTorch (ms), the speed-up over
    PyTorch and pyx_gru over the roofline, then fwd times and speed-up.

    Parameters
    ----------
    payload : dict
        A run's JSON record, as ``main`` writes it (``--json``).

    Returns
    -------
    str
        The Markdown table.
    """
    def ms(t, who):
        return _sig(t[who]["median"] * 1e3) if who in t else "–"

    def times(x):
        return "–" if x is None else f"{x:.2f}×"

    lines = ["| cell | B, D, H | dtype | fwd+bwd: pyx_gru | NumPy | PyTorch | speed-up "
             "| pyx_gru / roofline | fwd: pyx_gru | PyTorch | speed-up |",
             "|" + "---|" * 11]
    for r in payload["results"]:
        fb, fwd = r["timings"]["fwd+bwd"], r["timings"]["fwd"]
        cols = [r["label"], f"{r['B']}, {r['D']}, {r['H']}", "f" + r["dtype"][5:],
                ms(fb, "pyx_gru"), ms(fb, "numpy"), ms(fb, "torch"), times(speedup(r, "fwd+bwd")),
                f"{over_roofline(r, 'fwd+bwd'):.2f}", ms(fwd, "pyx_gru"), ms(fwd, "torch"), times(speedup(r, "fwd"))]
        lines.append("| " + " | ".join(cols) + " |")
    return "\n".join(lines)


def markdown_peers_table(payload):
    """The peers table (Markdown) of a run's JSON payload: per float32 case of
    RNN, GRU (reset after) and LSTM, median ms of pyx_gru, PyTorch, JAX and
    ONNX Runtime (fwd), then of pyx_gru, PyTorch and JAX (fwd+bwd); "–"
    where one did not run.

    Parameters
    ----------
    payload : dict
        A run's JSON record, as ``main`` writes it (``--json``).

    Returns
    -------
    str
        The Markdown table; empty when no case has peers.
    """
    rows = peer_results(payload["results"])
    if not rows:
        return ""
    head = ["cell", "B, D, H"]
    for task, cols in PEER_COLUMNS.items():
        head += [f"{task}: {CONTENDER_LABELS[cols[0]]}", *(CONTENDER_LABELS[c] for c in cols[1:])]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cols = [r["label"], f"{r['B']}, {r['D']}, {r['H']}"]
        for task, who in PEER_COLUMNS.items():
            t = r["timings"][task]
            cols += [_sig(t[c]["median"] * 1e3) if c in t else "–" for c in who]
        lines.append("| " + " | ".join(cols) + " |")
    return "\n".join(lines)


def main(argv=None):
    """Run ``python -m pyx_gru.bench [options]``: time the cases, print the report, write the JSON.

    Parameters
    ----------
    argv : list of str, optional
        The options; None reads ``sys.argv[1:]``.

    Returns
    -------
    int
        The exit status, 0.
    """
    parser = argparse.ArgumentParser(
        prog="python -m pyx_gru.bench",
        description="Time pyx_gru against its NumPy reference, PyTorch and the GEMM roofline.",
    )
    parser.add_argument("--quick", action="store_true",
                        help="few rounds, no NumPy reference at the two largest sizes (< 1 min)")
    parser.add_argument("--threads", type=int, default=2, help="threads for every library (default 2)")
    parser.add_argument("--cells", type=parse_cells, default=tuple(CELLS),
                        help=f"comma-separated, from {', '.join([*CELLS, *CELL_ALIASES])} (default all)")
    parser.add_argument("--sizes", type=parse_size, nargs="+", default=list(SIZES), metavar="B,D,H",
                        help="sizes to run (default: the six standard ones)")
    parser.add_argument("--json", metavar="PATH", default=None,
                        help="where to write the results (default benchmarks/results/bench-<date>.json)")
    parser.add_argument("--scaling", action="store_true",
                        help="run the time and memory scaling study instead")
    parser.add_argument("--markdown", metavar="JSON", default=None,
                        help="print the README's table and the peers table of a results file "
                             "(Markdown), and exit")
    parser.add_argument("--kernels", action="store_true",
                        help="also time pyx_gru with its per-step products from the BLAS "
                             "instead of its packed kernel")
    parser.add_argument("--regularisation", type=parse_rates, nargs="?", default=None,
                        const=REGULARISATION_RATES, metavar="P,Z",
                        help="also time pyx_gru with recurrent dropout P and zoneout Z on, in a "
                             "training pass, against the same cell with them off (default "
                             f"{','.join(map(str, REGULARISATION_RATES))}; minGRU and minLSTM, "
                             "which take neither, are skipped)")
    parser.add_argument("--hide-avx512", action="store_true",
                        help="time every library as on a CPU with AVX2 and no AVX-512: CPUID "
                             "reports none to any library that asks (ONNX Runtime has no switch "
                             "of its own), and pyx_gru takes its AVX2 path; Linux on x86-64 "
                             "with CPUID faulting; sets OPENBLAS_CORETYPE=Haswell unless set")
    args = parser.parse_args(argv)
    if args.markdown:
        with open(args.markdown, encoding="utf-8") as f:
            payload = json.load(f)
        print(markdown_table(payload))
        peers = markdown_peers_table(payload)
        if peers:
            print("\n" + peers)
        return 0
    if args.threads < 1:
        parser.error("--threads must be >= 1")
    if BLAS_SPIN_ENV not in os.environ:
        print(f"note: {BLAS_SPIN_ENV} is not set: OpenBLAS threads spinning after a call "
              "may slow the next contender (run as python -m pyx_gru.bench to avoid it)")

    if args.hide_avx512:
        hide_avx512(parser)
    threadpoolctl = import_threadpoolctl()
    torch = None if args.scaling else import_torch()
    peers = {} if args.scaling else import_peers(args.threads)
    settings = Settings.make(args.quick, args.threads, args.kernels, args.regularisation)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    clock = cpu_clock()
    with threadpoolctl.threadpool_limits(limits=args.threads):
        if torch is not None:
            torch.set_num_threads(args.threads)
        info = machine_info(args.threads, threadpoolctl, torch, peers)
        payload = {"machine": info, "mode": "quick" if args.quick else "full",
                   "settings": settings.__dict__}
        if args.scaling:
            payload["scaling"] = sweeps = scaling(settings, rng)
            print_scaling(sweeps, args.threads)
        else:
            if torch is None:
                print("note: torch is not importable; the PyTorch column is skipped")
            memo, results = {}, []
            for case in build_cases(args.cells, args.sizes):
                print(f"  {case.label} B={case.B} D={case.D} H={case.H} {case.dtype}",
                      file=sys.stderr, flush=True)
                results.append(run_case(case, settings, torch, peers, memo, rng))
            payload["results"] = results
            payload["gemm_call_overhead_seconds"] = {dt: v["overhead"] for dt, v in memo.items()}
            payload["targets"] = [dict(zip(("kind", "what", "measured", "bound", "met"), row, strict=True),
                                       status=target_status(row[4]))
                                  for row in target_rows(results)]
            print_report(results, info)
            print_peers(results)
            print_targets(target_rows(results), args.threads, info["vector_path"],
                          info["cpu_model"])
    elapsed = time.perf_counter() - start
    info["elapsed_seconds"] = elapsed
    info["load_average_at_end"] = load_average()
    info["other_cpus"] = other_cpus(clock, cpu_clock())
    path = write_json(args.json, payload)
    parts = [(r["other_cpus"], f"{r['label']} B={r['B']} D={r['D']} H={r['H']} {r['dtype']}")
             for r in payload.get("results", [])]
    parts += [(s["other_cpus"], f"{s['label']} against {s['axis']}") for s in payload.get("scaling", [])]
    warn_if_busy(parts, info["other_cpus"])
    print(f"\n{elapsed:.1f} s; results in {path}")
    return 0


if __name__ == "__main__":
    restart_with_short_blas_spin()
    sys.exit(main())
