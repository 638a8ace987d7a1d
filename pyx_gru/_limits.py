"""How much memory a request needs, checked before anything is allocated.

A cell, a forward pass and a backward pass each estimate the bytes they are
about to allocate and compare them with ``memory_limit()``; a request that
does not fit is a ``ValueError`` that says what it needs and why, raised
before NumPy allocates anything (NumPy's own ``MemoryError``, or the
operating system's out-of-memory killer, would come from deep inside, or
kill the process outright).

The rule
--------
``memory_limit()`` is, in bytes:

* ``PYX_GRU_MEMORY_LIMIT`` when that environment variable is set (an
  integer number of bytes, read at every call), else
* the memory available now: ``MemAvailable`` in ``/proc/meminfo``, lowered to
  the head-room of the process's cgroup (``memory.max - memory.current``, or
  cgroup v1's ``limit_in_bytes - usage_in_bytes``) when that is smaller,
  falling back to the physical memory (``os.sysconf``) where neither exists.

Requests of at most 64 MiB (``ALWAYS_FITS``) are taken to fit without
looking, unless ``PYX_GRU_MEMORY_LIMIT`` is set.

The estimates, with s the bytes per number (4 or 8), G the number of gates,
D the input size, H the hidden size, T the steps and B the batch (each an
upper bound, checked against ``tracemalloc`` in ``tests/test_sizes.py``):

* a cell: s (D + H + 1) G H for the parameters, plus the float64 arrays of
  the initialisation, 8 (D G H + 2 H G H + 4 H^2) (drawn weights and QR);
* forward: s T B (D + G H + H e) for the copy of x, the gates and the
  states (e = 1 for the RNN and the simplified GRU, 2 for the GRU with its
  ``extra`` array, and the LSTM with its cell states), plus O(B G H) scratch
  and U packed for the per-step products (G H^2, rounded up to whole
  64-byte panels);
* backward: s T B (D + H) for dx and dy, the gate gradients of one chunk,
  s (T B / 8 + 32 + B) G H (and as many times H for the GRU with the reset
  after), the parameter gradients, O(B H) scratch and U.T packed (as
  forward);

and each adds 64 KiB for the Python objects around the arrays.
"""
import os

from . import _recurrent

__all__ = ["memory_limit", "check_fits", "cell_bytes", "forward_bytes", "backward_bytes"]

ENV = "PYX_GRU_MEMORY_LIMIT"
ALWAYS_FITS = 64 * 2**20
# A cgroup "limit" this large means no limit.
_UNLIMITED = 2**60


def _read_int(path):
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _meminfo_available():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_headroom():
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        limit, usage = _read_int(limit_file), _read_int(usage_file)
        if limit is not None and usage is not None and limit < _UNLIMITED:
            return max(0, limit - usage)
    return None


def _physical_memory():
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def memory_limit():
    """The bytes one request may allocate, and where that figure comes from.

    Returns
    -------
    limit : int or None
        Bytes; None when nothing is known (then nothing is refused).
    source : str
        ``"PYX_GRU_MEMORY_LIMIT"``, ``"available memory"`` or ``"physical memory"``.
    """
    value = os.environ.get(ENV)
    if value is not None and value.strip():
        try:
            limit = int(value)
        except ValueError:
            raise ValueError(f"{ENV} must be an integer number of bytes, got {value!r}") from None
        return limit, ENV
    found = [v for v in (_meminfo_available(), _cgroup_headroom()) if v is not None]
    if found:
        return min(found), "available memory"
    return _physical_memory(), "physical memory"


def _gib(n):
    return f"{n / 2**30:.3g} GiB" if n >= 2**30 else f"{n / 2**20:.3g} MiB"


def check_fits(what, nbytes, advice):
    """Raise a ValueError when ``nbytes`` exceed ``memory_limit()``.

    ``what`` names the request ("GRU(...).forward of x (T, B, D) = ..."), or
    is a function that returns the name (called only to raise: a cell's repr
    costs more than a small forward pass); ``advice`` says how to make the
    request smaller. Up to ``ALWAYS_FITS`` bytes are not checked unless
    ``PYX_GRU_MEMORY_LIMIT`` is set: reading the available memory costs more
    than a small forward pass too.
    """
    if nbytes <= ALWAYS_FITS and not os.environ.get(ENV, "").strip():
        return
    limit, source = memory_limit()
    if limit is not None and nbytes > limit:
        what = what() if callable(what) else what
        raise ValueError(
            f"{what} needs about {_gib(nbytes)} ({nbytes} bytes), more than the "
            f"{_gib(max(limit, 0))} of {source}; {advice} (the limit can be set with "
            f"the environment variable {ENV}, in bytes)"
        )


def _sizes(cell):
    G, H = len(cell.gates), cell.hidden_size
    return cell.input_size, H, G * H, cell.dtype.itemsize


def cell_bytes(D, H, G, itemsize):
    """Bytes a new cell with G gates allocates: its parameters and the float64
    arrays its initialisation draws."""
    GH = G * H
    params = itemsize * ((D + H + 1) * GH + 4 * H)   # W, U, b, and b_hg or P
    init = 8 * (D * GH + 2 * H * GH + 4 * H * H)
    return params + init + OVERHEAD


# Python objects (the cache, dicts, array headers) on top of the arrays.
OVERHEAD = 64 * 1024


def forward_bytes(cell, T, B, cache=True):
    """Bytes ``cell.forward`` allocates for T steps of a batch of B (at most),
    with or without a cache."""
    D, H, GH, s = _sizes(cell)
    states = 2 if cell._lstm or cell._kind in (_recurrent.GRU_AFTER, _recurrent.GRU_BEFORE) else 1
    scratch = B * (GH + 6 * H) + 2 * states * B * H + _recurrent.packed_size(B, D, H, GH, False, s)
    if not cache:  # y, x if cast, and rings: a chunk of gates, two cell states, one extra
        Tg = _recurrent.gate_steps(T, B, D, H, GH, s)
        return s * (T * B * (H + D) + Tg * B * GH + 3 * B * H + scratch) + 8 * B + OVERHEAD
    per_row = D + GH + states * H
    return s * (T * B * per_row + scratch) + 8 * B + OVERHEAD


def backward_bytes(cell, T, B):
    """Bytes ``cell.backward`` allocates for a cache of T steps of a batch of B
    (at most)."""
    D, H, GH, s = _sizes(cell)
    chunk_rows = min(T * B, T * B // 8 + 32 + B)
    chunk = GH + (H if cell._kind == _recurrent.GRU_AFTER else 0)
    params = (D + H + 1) * GH + 4 * H
    scratch = 5 * B * H + _recurrent.packed_size(B, D, H, GH, True, s)
    return (s * (T * B * (D + H) + chunk_rows * chunk + params + scratch)
            + 8 * (GH + 4 * H) + OVERHEAD)
