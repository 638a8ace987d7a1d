"""``python -m pyx_gru.bench``: pyx_gru against its NumPy reference, PyTorch
and the GEMM roofline.

What is timed
-------------
For every cell (RNN, simplified GRU, GRU and MGU with the reset gate after and
before the matmul, LSTM) and every size (B, D, H), with T = 100, time-major, float32
(and float64 at (32, 128, 128)), two tasks:

* ``fwd``: one inference forward pass from a zero initial state (pyx_gru
  with ``cache=False``, PyTorch under ``no_grad``: neither keeps what a
  backward pass would need); pyx_gru's forward that keeps its cache is timed
  too, as ``pyx_gru/cache``, and printed after the tables;
* ``fwd+bwd``: one forward pass and one backward pass that computes the
  gradients of every parameter, of x and of the initial state, from given
  dL/dy and dL/d(final state).

Each task is run by these contenders holding the same weights:
``pyx_gru`` (the compiled cell), ``numpy`` (``pyx_gru.reference``),
``torch`` (``torch.nn.RNN``/``GRU``/``LSTM`` loaded through
``pyx_gru.interop.to_torch``; the simplified GRU and the GRU with the reset
gate before the matmul have no PyTorch peer) and the optional peers below.
PyTorch runs ``fwd`` in eval mode under ``torch.no_grad()`` and ``fwd+bwd``
in train mode, with x and the initial state requiring gradients and
``torch.autograd.backward([y, h_n (, c_n)], [dy, dh (, dc)])``; its
``.grad`` fields are reset to None before each call, as pyx_gru allocates
fresh gradients on every call. Before timing, the contenders' forward
outputs are compared, to be sure they compute the same function: a largest
difference above 1e-3 of the largest output (float32; 1e-9 in float64) is a
warning, at once and in the report, and is recorded (``forward_disagrees``).

Two optional peers run the cells PyTorch has (RNN, GRU with the reset gate
after the matmul, LSTM), in float32:

* ``onnxruntime``: a one-node ONNX model (``RNN``, ``GRU`` with
  ``linear_before_reset=1``, ``LSTM``) built in the process with
  ``onnx.helper``, the cell's weights as initializers in ONNX's layout and
  gate order; ``fwd`` only, x (T, B, D) and the initial state as inputs,
  ``intra_op_num_threads`` and ``inter_op_num_threads`` set to the thread
  count, sequential execution;
* ``jax``: the cell's step under ``jax.lax.scan`` in ``jax.jit``, with
  PyTorch's equations and weights (the input projection of all steps done
  before the scan, as pyx_gru and PyTorch do); ``fwd`` and ``fwd+bwd``
  (``jax.grad`` of sum(y * dy) + sum(h_T * dh) (+ sum(c_T * dc)), the
  gradients of every parameter, x and the initial state), each waiting for
  its results, compiled before the warm-up; its CPU thread pool is sized
  with ``PJRT_NPROC`` (see ``import_jax``).

A peer that is not installed is reported as such, and its targets as "not
run". The report names the CPU model, pyx_gru's vector path
(``vector_path``) and the core type of each OpenBLAS loaded (threadpoolctl's
``architecture``), and records ``OPENBLAS_CORETYPE`` and ``PYX_GRU_SIMD``
when set; a peers table gives the medians of pyx_gru, PyTorch, JAX and ONNX
Runtime side by side.

How it is timed
---------------
All libraries get the same number of threads (``--threads``, default 2):
``threadpoolctl.threadpool_limits`` for the OpenBLAS of NumPy and of SciPy
(pyx_gru calls SciPy's) and for OpenMP, ``torch.set_num_threads``, ONNX
Runtime's session options and JAX's ``PJRT_NPROC``. For one
(cell, size, dtype) case, every (contender, task) pair is a *runner*; after a
few warm-up calls of each, the runners are timed in interleaved rounds: each
round calls every runner once, in an order shuffled every round (a fixed
cyclic order would always put the same runner before each one), so a burst
of machine noise hits all of them alike rather than one contender's block of
repeats. The number of rounds fills a time budget per case, within a
minimum and a maximum. The garbage collector is off while timing. Reported
are the median time of one call and its spread, the interquartile range as a
percentage of the median; every raw time, and the order of the runners in
every round, goes to the JSON file (so an interference between contenders
shows up as a dependence on which runner came just before).

Interleaving has one trap: after a call, OpenBLAS's worker threads busy-wait
for 2**28 cycles (~0.1 s) by default, so on a machine with as many cores as
threads a PyTorch call right after a pyx_gru call found a core taken and ran
2-3x slower than on its own. Waiting that long between calls would make the
benchmark slow, and cutting the spin short (2**20 cycles) let the threads fall
asleep between pyx_gru's own per-step GEMMs, which made pyx_gru slower and
noisier. Unless ``OPENBLAS_THREAD_TIMEOUT`` is already set, ``python -m
pyx_gru.bench`` therefore restarts itself with ``OPENBLAS_THREAD_TIMEOUT=24``
(2**24 cycles, a few ms: longer than any gap between the GEMMs of one call)
and, before every timed call, pauses until every library's threads are idle:
10 ms at least, then on until the process used less than a tenth of a CPU
over 5 ms (at most 0.5 s more). A fixed pause is not enough: after a call,
ONNX Runtime's worker threads spin for about 50 ms on 2 cores, and a pyx_gru
call timed 10 ms after one took twice as long as on its own (GRU
(16, 64, 64) forward: 1.07 ms against 0.55 ms). A call shorter than 20 ms is then run once untimed
(to wake its own threads) and timed as the mean of a block of about 5 ms of
calls; a longer one is timed alone. the value used is recorded with the results.

The GEMM roofline
-----------------
A cell with G gates (RNN 1, simplified GRU and MGU 2, GRU 3, LSTM 4), GH =
G*H, does these GEMMs (as pyx_gru does them; (m, k) x (k, n)):

* forward: one (T*B, D) x (D, GH) for the input side of all steps, and T
  (B, H) x (H, GH), one per step;
* backward: T (B, GH) x (GH, H), one per step, then dW (D, T*B) x (T*B, GH),
  dU (H, T*B) x (T*B, GH) and dx (T*B, GH) x (GH, D).

(pyx_gru's GRU with the reset gate before the matmul splits some of these into
two GEMMs of the same total FLOPs; the roofline uses the shapes above for
every cell.) Each distinct shape is timed in the same run, at the same thread
count, with ``scipy.linalg.blas.sgemm``/``dgemm`` called exactly as pyx_gru
calls BLAS (row-major operands passed swapped, same transpose flags, output
written in place), on operands aligned to 64 bytes (misaligned ones make the
one-row GEMMs of B = 1 up to ~1.9x slower: the roofline takes the fast case,
whatever alignment NumPy happened to give the contenders' arrays). The time of a Python call of the wrapper on a 1x1x1
problem is subtracted from each shape's time, since pyx_gru calls BLAS from C
(the difference is kept at least a tenth of the raw time, so noise cannot make
it vanish). The roofline of a task is the sum over its GEMMs of count x
measured time: what the task would take if it did nothing but its GEMMs at
the rate BLAS reaches on those shapes. Each contender's time over it ("x
roof") says how far it is from that. PyTorch uses MKL and oneDNN, which may
beat OpenBLAS on some shapes, and pyx_gru computes its per-step products
with its own kernel against a U packed once per call (``_gemm.h``), which
beats OpenBLAS at those few-row shapes; so either ratio can fall below 1.

The targets
-----------
The report ends with the project's performance targets, each as met or
MISS with the figure of this run (float32; they are set for 2 threads, and
the report says so when the run used another count): the speed-ups over
PyTorch (GRU at least 20x at (1, 32, 32), 5x at (16, 64, 64), 1.5x at
(32, 128, 128), 1.2x at (64, 512, 512); LSTM at least 2x at (1, 32, 32) and
1x at (64, 512, 512)) and every cell within 1.15x of the roofline wherever
B >= 32 and H >= 256, for forward+backward and for the forward alone (the
forward meets the same numbers; it need not be further ahead than
forward+backward); and for RNN, GRU (reset after) and LSTM at every size, pyx_gru faster
than PyTorch, JAX and ONNX Runtime in the forward and than PyTorch and JAX
in forward+backward (a peer that did not run is "not run", neither met nor
missed). The section's heading names the vector path and the CPU it
measured. They go to the JSON file too (``targets``). The scaling run checks
the peak memory: within 1.25x of what is needed at every point.

The per-step kernel (``--kernels``)
-----------------------------------
Adds a contender ``pyx_gru/blas``: pyx_gru with its per-step products from
the BLAS instead of its packed kernel, timed in the same interleaved rounds,
and prints the two side by side.

Scaling (``--scaling``)
-----------------------
Time and peak memory of pyx_gru's forward+backward (float32, D = H = 64, GRU
and LSTM) for T in 10, 100, 1000, 10000 at B = 1 and for B in 1, 4, 16, 64,
256 at T = 100, with the growth exponents of both (slopes of log-log
least-squares fits, which should be close to 1). Peak memory is measured
with ``tracemalloc`` (NumPy reports its allocations to it): the peak traced
during one forward+backward minus what was traced just before it. It is set
against what the results need: the nbytes of the cache's arrays (x, gates,
hs, cs, extra; y is a view of hs) plus dx, dstate0 and dparams.

Usage
-----
``python -m pyx_gru.bench [--quick] [--threads N] [--cells ...] [--sizes ...]
[--json PATH] [--scaling] [--kernels]``; ``--help`` lists the cell names.
``python -m pyx_gru.bench --markdown PATH`` prints the README's table of a
results file, then its peers table. Results go to
``benchmarks/results/bench-<YYYYMMDD-HHMMSS>.json`` unless ``--json`` says
otherwise.
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
from pyx_gru import _kinds, _recurrent, _workspace, interop, reference

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


@dataclass(frozen=True)
class Settings:
    """How hard to try: warm-up calls, rounds and the time budget per case."""

    threads: int
    warmup: int
    min_rounds: int
    max_rounds: int
    budget: float  # seconds of timed rounds per case
    skip_reference: tuple  # sizes at which the NumPy reference is not run
    kernels: bool = False  # also time pyx_gru with its per-step products from the BLAS

    @classmethod
    def make(cls, quick, threads, kernels=False):
        if quick:
            # Two warm-up calls, as in a full run: a library's first call
            # (PyTorch's LSTM builds its oneDNN primitives, 40 ms) is no
            # estimate of the next ones, and its next few may still be slow.
            return cls(threads, warmup=2, min_rounds=2, max_rounds=25, budget=0.25,
                       skip_reference=LARGE_SIZES, kernels=kernels)
        return cls(threads, warmup=2, min_rounds=10, max_rounds=200, budget=3.0,
                   skip_reference=(), kernels=kernels)


@dataclass(frozen=True)
class Case:
    """One benchmark problem: a cell configuration at one size and dtype."""

    cell: str
    B: int
    D: int
    H: int
    dtype: str

    @property
    def label(self):
        return CELLS[self.cell][0]

    @property
    def gates(self):
        return len(CELLS[self.cell][1].gates)

    @property
    def torch_name(self):
        return CELLS[self.cell][3]


# --------------------------------------------------------------------------
# dependencies
# --------------------------------------------------------------------------

def import_threadpoolctl():
    try:
        import threadpoolctl
    except ImportError:
        raise SystemExit(
            "pyx_gru.bench needs threadpoolctl to give every library the same number "
            "of threads: pip install threadpoolctl"
        ) from None
    return threadpoolctl


def import_torch():
    """torch, or None if it cannot be imported (the PyTorch column is skipped)."""
    try:
        import torch
    except ImportError:
        return None
    return torch


# --------------------------------------------------------------------------
# timing
# --------------------------------------------------------------------------

def summarize(times):
    """Median, quartiles, extremes and the IQR as a percentage of the median."""
    t = np.asarray(times, dtype=float)
    q25, med, q75 = np.percentile(t, [25, 50, 75])
    return {
        "n": int(t.size), "median": float(med), "q25": float(q25), "q75": float(q75),
        "min": float(t.min()), "max": float(t.max()),
        "iqr_pct": float(100 * (q75 - q25) / med) if med > 0 else 0.0,
    }


def time_call(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# Calls shorter than this are timed in blocks, after one untimed call: after
# the pause between runners their library's threads are asleep, and waking
# them would otherwise be part of a sub-millisecond measurement.
SHORT_CALL = 0.02
BLOCK_SECONDS = 0.005


def settle():
    """Sleep SETTLE_SECONDS, then on in IDLE_WINDOW steps until the process
    (every thread of every library in it) used less than IDLE_FRACTION of a
    CPU over one of them, or SETTLE_MAX_SECONDS have passed; returns the
    seconds slept."""
    t0 = time.perf_counter()
    time.sleep(SETTLE_SECONDS)
    while time.perf_counter() - t0 < SETTLE_MAX_SECONDS:
        c0 = time.process_time()
        time.sleep(IDLE_WINDOW)
        if time.process_time() - c0 < IDLE_FRACTION * IDLE_WINDOW:
            break
    return time.perf_counter() - t0


def time_after_pause(fn, estimate):
    """Seconds per call of ``fn`` after the settling pause: one call for a
    long ``fn``; a re-warming call and then a block of about BLOCK_SECONDS of
    calls (their mean) for a short one."""
    settle()
    if estimate >= SHORT_CALL:
        return time_call(fn)
    fn()
    n = max(1, int(BLOCK_SECONDS / max(estimate, 1e-6)))
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def interleaved_rounds(runners, settings, rng):
    """Warm up every runner, then time them in rounds, one call each per round
    in an order shuffled every round (by ``rng``); rounds go on until the time
    budget is spent (at least ``min_rounds``, at most ``max_rounds``).

    ``runners`` maps a key to a zero-argument callable. Returns
    ``(warmup_times, times, orders)``: {key: [seconds, ...]} twice, and the
    order of the keys in each round.
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

def gemm_plan(G, B, D, H, T=T_STEPS):
    """{task: [(count, (m, n, k, trans_a, trans_b)), ...]}: the GEMMs of a cell
    with G gates, each as the row-major product C (m, n) = op(A) (m, k) @ op(B)
    (k, n), with the transpose flags of pyx_gru's kernels."""
    GH, TB = G * H, T * B
    fwd = [(1, (TB, GH, D, False, False)),  # x @ W, all steps at once
           (T, (B, GH, H, False, False))]  # h_{t-1} @ U, per step
    bwd = [(T, (B, H, GH, False, True)),  # dA_t @ U.T, per step
           (1, (D, GH, TB, True, False)),  # dW = x.T @ dA
           (1, (H, GH, TB, True, False)),  # dU = h.T @ dA
           (1, (TB, D, GH, False, True))]  # dx = dA @ W.T
    return {"fwd": fwd, "fwd+bwd": fwd + bwd}


def aligned_normal(shape, dtype, rng, align=64):
    """A C-contiguous array of standard normal values whose data starts on an
    ``align``-byte boundary (NumPy only promises 16)."""
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
    row (B = 1) runs up to ~1.9x slower on an operand that is not."""
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
    lasting at least min_block seconds (the first call is a warm-up)."""
    n = max(1, int(min_block / max(time_call(fn), 1e-9)))
    return [time_call(lambda: [fn() for _ in range(n)]) / n for _ in range(blocks)]


def gemm_time(shape, dtype, memo, rng):
    """(seconds of one GEMM of ``shape``, Python-call overhead removed; the
    per-call times of the blocks it is the median of), memoized in ``memo``:
    {dtype name: {"overhead": seconds, shape: (seconds, blocks)}}, kept for
    the whole run."""
    times = memo.setdefault(np.dtype(dtype).name, {})
    if "overhead" not in times:
        times["overhead"] = float(np.median(
            block_times(gemm_caller((1, 1, 1, False, False), dtype, rng))))
    if shape not in times:
        blocks = block_times(gemm_caller(shape, dtype, rng))
        raw = float(np.median(blocks))
        times[shape] = (max(raw - times["overhead"], raw / 10), blocks)
    return times[shape]


def roofline(case, memo, rng):
    """{task: {"seconds", "gflop", "gemms": [...]}}: the GEMM roofline of a case."""
    out = {}
    for task, gemms in gemm_plan(case.gates, case.B, case.D, case.H).items():
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
    """The cell and its inputs: x, state0, dy and dstate (tuples for the LSTM)."""
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


def numpy_runners(cell, data):
    """fwd and fwd+bwd callables of a pyx_gru cell or of its NumPy reference.
    fwd is inference: ``cache=False``, as PyTorch's forward runs under
    ``no_grad``; fwd+bwd keeps the cache its backward pass needs."""
    x, state0, dy, dstate = data["x"], data["state0"], data["dy"], data["dstate"]

    def fwd():
        return cell.forward(x, state0, cache=False)

    def fwd_bwd():
        _, _, cache = cell.forward(x, state0)
        return cell.backward(cache, dy, dstate)

    return {"fwd": fwd, "fwd+bwd": fwd_bwd}


def blas_kernel_runners(runners):
    """The same runners with pyx_gru's per-step products from the BLAS rather
    than its packed kernel (``_recurrent._set_packed(False)`` around each call)."""
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
    """The torch.nn module with the cell's weights, in the cell's dtype."""
    module = getattr(torch.nn, case.torch_name)(case.D, case.H)
    module = module.to(torch.float64 if case.dtype == "float64" else torch.float32)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in interop.to_torch(cell).items()})
    return module


def torch_runners(torch, module, data):
    """fwd (eval, no_grad) and fwd+bwd (train, autograd) callables of a module."""
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
    """(onnxruntime, onnx), or None if either cannot be imported (the ONNX
    Runtime column is then reported as not installed)."""
    try:
        import onnx
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime, onnx


def import_jax(threads):
    """jax with its CPU thread pool held to ``threads``, or None if it cannot
    be imported (the JAX column is then reported as not installed).

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
    """
    os.environ["PJRT_NPROC"] = str(threads)
    try:
        import jax
    except ImportError:
        return None
    return jax


def import_peers(threads):
    """{peer name: its module(s), or None when not installed} for PEERS."""
    return {"onnxruntime": import_onnxruntime(), "jax": import_jax(threads)}


def peer_versions(peers):
    """{peer name: version string, or None when not installed}."""
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
    install it."""
    return [f"{PEERS[name][0]}: {v}" if v is not None
            else f"{PEERS[name][0]}: not installed ({PEERS[name][1]})"
            for name, v in versions.items()]


def onnx_weights(cell, kind):
    """The cell's weights in ONNX's layout: W (1, G*H, D), R (1, G*H, H) and
    B (1, 2*G*H) = [Wb, Rb], gate blocks in ONNX's order (GRU z, r, h; LSTM
    i, o, f, c), from PyTorch's layout (``interop.to_torch``), whose blocks
    ONNX's equations use unchanged (GRU with ``linear_before_reset=1``: Rbh
    inside the reset product, like PyTorch's b_hn). ``kind`` is "RNN",
    "GRU" or "LSTM"."""
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
    ``kind`` is "RNN", "GRU" (reset after) or "LSTM"."""
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
    """The fwd callable of an ONNX session (ONNX Runtime has no backward):
    returns (y (T, B, H), final state (1, B, H) or an (h, c) tuple)."""
    lstm = isinstance(data["state0"], tuple)
    states = data["state0"] if lstm else (data["state0"],)
    feeds = {"X": np.ascontiguousarray(data["x"], dtype=np.float32),
             **{name: np.ascontiguousarray(s[None], dtype=np.float32)
                for name, s in zip(("initial_h", "initial_c"), states)}}

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
    PyTorch do)."""
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
    (B, H) or (h, c) tuples, params in PyTorch's layout (see ``jax_cell``)."""
    jnp = jax.numpy
    step = jax_cell(jnp, jax, kind)

    def forward(params, x, state0):
        xw = x @ params[0].T + params[2]  # (T, B, G*H)
        state, y = jax.lax.scan(lambda s, xw_t: step(params, s, xw_t), state0, xw)
        return y, state

    def loss(params, x, state0, dy, dstate):
        y, state = forward(params, x, state0)
        return jnp.sum(y * dy) + sum(jnp.sum(s * d) for s, d in zip(
            jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(dstate)))

    return jax.jit(forward), jax.jit(jax.grad(loss, argnums=(0, 1, 2)))


def jax_runners(jax, cell, kind, data):
    """fwd and fwd+bwd callables of the cell in JAX (``lax.scan`` under
    ``jit``), each waiting for its results (``block_until_ready``), compiled
    here by one call each, outside any timed region. fwd returns (y, final
    state) as NumPy-convertible arrays; fwd+bwd returns (dparams (PyTorch's
    names), dx, dstate0). ``kind`` is "RNN", "GRU" (reset after) or "LSTM"."""
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
        return dict(zip(names, dparams)), dx, dstate0

    fwd()
    fwd_bwd()
    return {"fwd": fwd, "fwd+bwd": fwd_bwd}


# Largest relative forward difference from pyx_gru that counts as the same
# function: a float32 tolerance (the summation orders of the libraries differ).
AGREEMENT = {"float32": 1e-3, "float64": 1e-9}


def forward_disagreement(runners, cell_dtype):
    """Largest ``|y - y_pyx_gru| / max|y_pyx_gru|`` of each other contender's
    forward; every ``fwd`` runner returns y (T, B, H) first (NumPy, torch or
    JAX arrays)."""
    def as_numpy(out):
        y = out[0]
        return y.detach().numpy() if hasattr(y, "detach") else np.asarray(y)

    base = as_numpy(runners["pyx_gru"]["fwd"]())
    scale = max(float(np.abs(base).max()), np.finfo(cell_dtype).tiny)
    return {name: float(np.abs(as_numpy(r["fwd"]()) - base).max() / scale)
            for name, r in runners.items() if name != "pyx_gru"}


def run_case(case, settings, torch, peers, memo, rng):
    """Roofline and interleaved timings of every contender of one case;
    ``peers`` is ``import_peers``'s dict (the optional peers run float32
    RNN, GRU with the reset gate after and LSTM)."""
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
    return {"cell": case.cell, "label": case.label, "T": T_STEPS, "B": case.B, "D": case.D,
            "H": case.H, "dtype": case.dtype, "gates": case.gates, "other_cpus": others,
            "forward_max_rel_diff": agreement, "forward_disagrees": disagree,
            "roofline": roof, "timings": timings,
            "round_orders": [[f"{name} {task}" for name, task in order] for order in orders]}


# --------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------

def fmt_ms(stats):
    if stats is None:
        return f"{'-':>15}"
    return f"{stats['median'] * 1e3:>9.3f} ±{stats['iqr_pct']:>3.0f}%"


def fmt_ratio(x, width=7, suffix=""):
    if x is None:
        return f"{'-':>{width}}"
    return f"{x:>{width - len(suffix)}.{2 if x < 100 else 0}f}{suffix}"


def table(results, task):
    """The table of one task, as a string."""
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
    not installed)."""
    env = info["environment"]
    forced = [f"{k}={env[k]}" for k in ("PYX_GRU_SIMD", "OPENBLAS_CORETYPE") if env.get(k)]
    blas = ", ".join(f"{arch} ({lib})" for lib, arch in info["blas_core_types"]) or "no OpenBLAS"
    lines = [f"CPU: {info['cpu_model']}; pyx_gru's vector path: {info['vector_path']}; "
             f"OpenBLAS core type: {blas}" + (f"; set: {' '.join(forced)}" if forced else "")]
    return lines + peer_lines({name: info["versions"][name] for name in PEERS
                               if name in info["versions"]})


def print_report(results, info):
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
    kernels = [r for r in results if "pyx_gru/blas" in r["timings"]["fwd"]]
    if kernels:
        print("\n== the per-step products: packed kernel against the BLAS (ms; blas / packed) ==")
        for r in kernels:
            cols = []
            for task in TASKS:
                t = r["timings"][task]
                packed, blas = t["pyx_gru"]["median"], t["pyx_gru/blas"]["median"]
                cols.append(f"{task}: {packed * 1e3:9.3f} vs {blas * 1e3:9.3f} {blas / packed:5.2f}x")
            print(f"{r['label']:<10} {r['B']:>3} {r['D']:>4} {r['H']:>4} {'f' + r['dtype'][5:]:<5} "
                  + " | ".join(cols))


# The peers table: its columns of each task, contender names.
PEER_COLUMNS = {"fwd": ("pyx_gru", "torch", "jax", "onnxruntime"),
                "fwd+bwd": ("pyx_gru", "torch", "jax")}
CONTENDER_LABELS = {"pyx_gru": "pyx_gru", "torch": "PyTorch", "jax": "JAX",
                    "onnxruntime": "ONNX Runtime"}


def peer_results(results):
    """The results the peers table covers: float32 cases of the cells PyTorch,
    JAX and ONNX Runtime have (RNN, GRU with the reset gate after, LSTM)."""
    return [r for r in results if r["dtype"] == "float32" and CELLS[r["cell"]][3] is not None]


def peers_table(results):
    """The peers table, as a string: median ms of each contender of
    PEER_COLUMNS, per case; "-" where one did not run."""
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
    """The peers table of the report (nothing when no case has peers)."""
    if peer_results(results):
        print("\n== peers (float32; median ms of one call; fwd is inference, ONNX Runtime "
              "runs no backward) ==")
        print(peers_table(results))


# The performance targets (issue 5), for float32 in one run at 2 threads:
# the least speed-up over PyTorch of (cell, (B, D, H)), forward+backward;
# and pyx_gru's forward+backward within ROOFLINE_TARGET of the roofline for
# every cell wherever B >= 32 and H >= 256.
SPEEDUP_TARGETS = (
    ("gru_after", (1, 32, 32), 20.0), ("gru_after", (16, 64, 64), 5.0),
    ("gru_after", (32, 128, 128), 1.5), ("gru_after", (64, 512, 512), 1.2),
    ("lstm", (1, 32, 32), 2.0), ("lstm", (64, 512, 512), 1.0),
)
ROOFLINE_TARGET = 1.15
# Issue 16: pyx_gru faster than each of these peers, for RNN, GRU (reset
# after) and LSTM at every size; ONNX Runtime runs the forward only.
PEER_TARGETS = {"fwd": ("torch", "jax", "onnxruntime"), "fwd+bwd": ("torch", "jax")}
# The scaling run: the peak memory of forward+backward over what the cache,
# outputs and gradients need.
MEMORY_TARGET = 1.25
TARGET_THREADS = 2


def speedup(result, task):
    """PyTorch's median time over pyx_gru's for one task, or None."""
    t = result["timings"][task]
    if "torch" not in t:
        return None
    return t["torch"]["median"] / t["pyx_gru"]["median"]


def over_roofline(result, task, who="pyx_gru"):
    """A contender's median time for one task over the task's roofline, or
    None when it did not run."""
    t = result["timings"][task]
    if who not in t:
        return None
    return t[who]["median"] / result["roofline"][task]["seconds"]


def peer_speedup(result, task, peer):
    """A peer's median time over pyx_gru's for one task, or None when the peer
    did not run."""
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
    did not run). Float32 results only."""
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
        if r["B"] >= 32 and r["H"] >= 256:
            for task in TASKS:
                x = over_roofline(r, task)
                rows.append(("roofline", f"{r['label']} {(r['B'], r['D'], r['H'])} {task}", x,
                             ROOFLINE_TARGET, x <= ROOFLINE_TARGET))
    for r in f32:
        if CELLS[r["cell"]][3] is None:
            continue
        for task, peers in PEER_TARGETS.items():
            for peer in peers:
                x = peer_speedup(r, task, peer)
                what = f"{r['label']} {(r['B'], r['D'], r['H'])} {task} vs {peer}"
                rows.append(("faster than", what, x, 1.0, None if x is None else x > 1.0))
    return rows


def target_status(met):
    """"met", "MISS" or "not run" (met is None) for a target row."""
    return "not run" if met is None else "met" if met else "MISS"


def print_targets(rows, threads, path, cpu_model):
    """The targets section of the report, naming the vector path of pyx_gru
    (``vector_path()``) and the CPU model it measured."""
    if not rows:
        return
    print(f"\n== targets (float32, this run; pyx_gru's {path} path on {cpu_model}): "
          "speed-up = torch / pyx_gru; faster than = peer / pyx_gru ==")
    if threads != TARGET_THREADS:
        print(f"(the targets are set for {TARGET_THREADS} threads; this run used {threads})")
    words = {"speed-up": ">=", "roofline": "<=", "faster than": ">"}
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
    """The 1, 5 and 15 minute load averages, or None where unavailable."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def cpu_clock():
    """(wall seconds, busy CPU-seconds of the whole machine from /proc/stat or
    None, CPU-seconds of this process): a reading for ``other_cpus``."""
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
    """How many CPUs other processes kept busy, on average, between two
    ``cpu_clock`` readings (None without /proc/stat)."""
    if start[1] is None or end[1] is None or end[0] <= start[0]:
        return None
    return max(0.0, ((end[1] - start[1]) - (end[2] - start[2])) / (end[0] - start[0]))


def warn_if_busy(parts, whole_run):
    """Say how busy other processes kept the CPUs, and warn if it matters.

    ``parts`` is [(CPUs busy or None, what was being timed), ...]."""
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
    """The vector path of pyx_gru's compiled kernels: "avx512", "avx2" or
    "portable" (``PYX_GRU_SIMD`` may force a narrower one than the CPU's
    widest)."""
    return _recurrent.simd_path()


def blas_core_types(threadpools):
    """[(library file name, core type), ...] of the OpenBLAS builds loaded
    (threadpoolctl's ``architecture``: the kernels OpenBLAS picked for this
    CPU, or the ones ``OPENBLAS_CORETYPE`` asked for)."""
    return [(os.path.basename(p["filepath"]), p.get("architecture"))
            for p in threadpools if p.get("internal_api") == "openblas"]


def machine_info(threads, threadpoolctl, torch, peers):
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
    if path is None:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = os.path.join("benchmarks", "results", f"bench-{stamp}.json")
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    with open(path, "w") as f:
        json.dump(payload, f, indent=1)
    return path


# --------------------------------------------------------------------------
# scaling
# --------------------------------------------------------------------------

def needed_bytes(cache, dx, dstate0, dparams):
    """Bytes of what the results need: the cache's arrays, dx, dstate0, dparams."""
    arrays = [getattr(cache, n) for n in ("x", "gates", "hs", "cs", "extra")]
    arrays += [dx, *(dstate0 if isinstance(dstate0, tuple) else (dstate0,)), *dparams.values()]
    return sum(a.nbytes for a in arrays if a is not None)


def peak_memory(cell, x, dy):
    """(peak bytes traced during one forward+backward beyond what was traced
    before it, bytes the results need)."""
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
    """Slope of the least-squares line through (log size, log value)."""
    return float(np.polyfit(np.log(sizes), np.log(values), 1)[0])


def scaling(settings, rng, H=64, dtype=np.float32):
    """Time and peak memory of pyx_gru fwd+bwd against T and against B."""
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
    try:
        size = tuple(int(v) for v in text.split(","))
    except ValueError:
        size = ()
    if len(size) != 3 or min(size) < 1:
        raise argparse.ArgumentTypeError(f"a size is B,D,H (three positive ints), got {text!r}")
    return size


def build_cases(cells, sizes):
    """Every (cell, size) in float32, and float64 at FLOAT64_SIZE if selected."""
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


def restart_with_short_blas_spin():
    """Re-run this command with OPENBLAS_THREAD_TIMEOUT set, unless it is set
    already (OpenBLAS reads it when it loads, so it cannot be set later)."""
    if BLAS_SPIN_ENV in os.environ:
        return
    env = dict(os.environ, **{BLAS_SPIN_ENV: BLAS_SPIN_VALUE})
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, "-m", "pyx_gru.bench", *sys.argv[1:]], env)


def _sig(x):
    """Three significant figures, as the README's table gives them."""
    return f"{x:.3g}" if x < 1000 else f"{x:.0f}"


def markdown_table(payload):
    """The README's table (Markdown) of a run's JSON payload: per case,
    fwd+bwd times of pyx_gru, NumPy and PyTorch (ms), the speed-up over
    PyTorch and pyx_gru over the roofline, then fwd times and speed-up."""
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
    where one did not run. Empty when no case has peers."""
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

    threadpoolctl = import_threadpoolctl()
    torch = None if args.scaling else import_torch()
    peers = {} if args.scaling else import_peers(args.threads)
    settings = Settings.make(args.quick, args.threads, args.kernels)
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
            payload["targets"] = [dict(zip(("kind", "what", "measured", "bound", "met"), row),
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
