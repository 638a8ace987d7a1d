"""Recycled memory for the large arrays of forward and backward passes.

A forward pass allocates its cache (gates, states, a copy of x) and a
backward pass its gradients, several megabytes at a time. glibc hands large
blocks back to the operating system when they are freed together, so a loop
of forward/backward calls page-faults its way through fresh memory on every
call: at (T, B, H) = (100, 32, 128) that cost a third of a forward pass.

This module keeps the buffers it handed out and hands one out again once
nothing refers to it any more: every array it returns is a view whose base is
the pooled buffer, and so is every view derived from it (NumPy collapses
bases to the owner), so a buffer is free exactly when the pool holds its only
reference. Nothing is reused while any array, view or cache still uses it.
Small arrays (< MIN_BYTES) go to NumPy directly. The pool keeps at most
MAX_BUFFERS buffers; free buffers beyond MAX_FREE_BYTES are dropped.
"""
import math
import sys
import threading

import numpy as np

MIN_BYTES = 1 << 16
MAX_BUFFERS = 32
MAX_FREE_BYTES = 1 << 30
_ALIGN = 64

_lock = threading.Lock()
# One entry [buffer, its size in bytes, the offset of its first 64-byte
# boundary] per uint8 array the pool owns, oldest first. The entry keeps the
# numbers so that a search reads no array attribute (buf.ctypes alone costs
# about 1 us), and iterating entries takes no reference to a buffer.
_pool = []


def _is_free(entry):
    # The entry's reference and getrefcount's argument: nobody else holds it.
    return sys.getrefcount(entry[0]) == 2


def _take(nbytes):
    """A free buffer with room for nbytes at a 64-byte boundary, and that
    boundary's offset: of nbytes + _ALIGN .. 2 * (nbytes + _ALIGN) bytes (the
    smallest), or a new one."""
    nbytes += _ALIGN  # the aligned start may lie up to _ALIGN - 1 bytes in
    with _lock:
        best, best_size = -1, 2 * nbytes + 1
        for i, entry in enumerate(_pool):
            if nbytes <= entry[1] < best_size and _is_free(entry):
                best, best_size = i, entry[1]
        if best >= 0:
            entry = _pool.pop(best)
            _pool.append(entry)  # most recently used last
            return entry[0], entry[2]
        buf = np.empty(nbytes, dtype=np.uint8)
        start = (-buf.ctypes.data) % _ALIGN
        _pool.append([buf, nbytes, start])
        _trim()
        return buf, start


def _trim():
    free = [i for i, entry in enumerate(_pool) if _is_free(entry)]
    free_bytes = sum(_pool[i][1] for i in free)
    drop = set()
    for i in free:  # oldest first
        if len(_pool) - len(drop) <= MAX_BUFFERS and free_bytes <= MAX_FREE_BYTES:
            break
        drop.add(i)
        free_bytes -= _pool[i][1]
    if len(_pool) - len(drop) > MAX_BUFFERS:
        # too many in use: stop tracking the oldest (they stay valid; the
        # pool just forgets them)
        keep = [i for i in range(len(_pool)) if i not in drop]
        drop.update(keep[:len(keep) - MAX_BUFFERS])
    _pool[:] = [entry for i, entry in enumerate(_pool) if i not in drop]


def empty(shape, dtype):
    """Like ``np.empty(shape, dtype)`` (C order, 64-byte aligned when pooled)."""
    if not isinstance(dtype, np.dtype):
        dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize  # 30x faster than NumPy's prod
    if type(nbytes) is not int:  # NumPy integers in shape could overflow: Python ints
        shape = tuple(int(n) for n in shape)
        nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < MIN_BYTES:
        return np.empty(shape, dtype=dtype)
    buf, start = _take(nbytes)
    return buf[start:start + nbytes].view(dtype).reshape(shape)


def zeros(shape, dtype):
    """Like ``np.zeros(shape, dtype)``."""
    out = empty(shape, dtype)
    out.fill(0)
    return out


def copy(array, dtype):
    """A C-ordered copy of ``array`` cast to ``dtype``."""
    if np.size(array) * np.dtype(dtype).itemsize < MIN_BYTES:  # not pooled: NumPy's copy is quicker
        return np.array(array, dtype=dtype, order="C", copy=True)
    out = empty(np.shape(array), dtype)
    np.copyto(out, array, casting="unsafe")
    return out


def free_bytes():
    """Bytes the pool holds that nothing else uses (for tests and curiosity)."""
    with _lock:
        return sum(entry[1] for entry in _pool if _is_free(entry))


def clear():
    """Drop every free buffer."""
    with _lock:
        _pool[:] = [entry for entry in _pool if not _is_free(entry)]
