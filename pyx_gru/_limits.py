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
* forward: s T B D for the copy of x, and the memory plan
  (``forward_plan``): the gates, the states (and the cell states and the
  ``extra`` array where the cell kind has them: ``pyx_gru._kinds``),
  s T B (G H + H e) with e = 1 or 2 state-sized arrays, or rings of a few
  steps without a cache, plus O(B G H) scratch and U and W packed for the
  per-step products (rounded up to whole 64-byte panels);
* backward: s T B (D + H) for dx and dy, and the memory plan
  (``backward_plan``): the gate gradients of one chunk of ``chunk_steps``
  steps, about T B / 8 rows of G H (and as many of H where the reset acts
  after the product), O(B H) scratch and U.T and W.T packed; plus the
  parameter gradients;

and each adds 64 KiB for the Python objects around the arrays.
"""
import os
from math import prod
from types import MappingProxyType

from . import _recurrent, _scan

__all__ = ["memory_limit", "check_fits", "cell_bytes", "forward_bytes", "backward_bytes",
           "forward_plan", "backward_plan", "chunk_steps"]

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
        if limit < 0:
            raise ValueError(f"{ENV} must be a number of bytes >= 0, got {value!r}")
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


# The memory plan: the arrays a pass allocates, by name and shape, which
# Cell._forward and Cell._backward allocate and the estimates count (one
# description of both). Beyond these a pass takes a few (B, H) arrays (the
# states it is given and returns), counted as _STATE_ROWS of them.
_STATE_ROWS = 6

# Plans already made, by their arguments and the policy's epoch (a plan
# depends on _recurrent's packed_size and gate_steps), with the total of
# their elements: a small forward pass would otherwise spend more time
# planning (twice: the estimate and the allocation) than computing.
_PLANS = {}
_PLANS_MAX = 256


def _memo(make, kind, *args):
    key = (make, kind.name, *args, _recurrent.policy_epoch())
    entry = _PLANS.get(key)
    if entry is None:
        if len(_PLANS) >= _PLANS_MAX:
            _PLANS.clear()
        plan = make(kind, *args)
        entry = _PLANS[key] = (MappingProxyType(plan), sum(map(prod, plan.values())))
    return entry


def forward_plan(kind, T, B, D, H, itemsize, cache=True, dropout=False, zoneout=False):
    """{name: shape}, read-only, of the arrays ``Cell._forward`` allocates; see
    ``_forward_plan``."""
    return _memo(_forward_plan, kind, T, B, D, H, itemsize, cache, dropout, zoneout)[0]


def _forward_plan(kind, T, B, D, H, itemsize, cache, dropout, zoneout):
    """{name: shape} of the arrays ``Cell._forward`` allocates for a kind
    (``pyx_gru._kinds.Kind``): the gates (a ring of ``gate_steps`` steps
    without a cache), the states hs and the last state h, the cell states
    cs and c (a ring of two without a cache) and ``extra`` (a ring of one)
    where the kind has them, the per-step product hu, and the packed
    operands (``packed_size`` elements, 0 on the BLAS path). A pass with
    recurrent dropout adds its mask and the masked state rows (``drop``,
    ``hm``); with zoneout, a kind with a cell state keeps its steps' c^_t
    in ``extra``."""
    GH = len(kind.gates) * H
    if kind.scan:
        # minGRU, minLSTM (_scan): every step's gates and a_t with a cache;
        # without, the kernel holds a chunk of rows of them per thread (and
        # every step's a_t when it splits by blocks of time, as at B = 1)
        if not cache:
            return {"hs": (T + 1, B, H), "h": (B, H)}
        return {"gates": (T, B, GH), "a": (T, B, H), "hs": (T + 1, B, H), "h": (B, H)}
    Tg = T if cache else _recurrent.gate_steps(T, B, D, H, GH, itemsize)
    plan = {"gates": (Tg, B, GH), "hs": (T + 1, B, H), "h": (B, H), "hu": (B, GH),
            "packed": (_recurrent.packed_size(B, D, H, GH, False, itemsize),)}
    if len(kind.state) == 2:
        plan["cs"] = (T + 1 if cache else 2, B, H)
        plan["c"] = (B, H)
    if kind.extra or zoneout and len(kind.state) == 2:
        plan["extra"] = (T if cache else 1, B, H)
    if dropout:
        plan["drop"] = plan["hm"] = (B, H)
    return plan


def chunk_steps(T, B):
    """K, the steps of gate gradients the backward pass keeps at a time:
    about an eighth of the cache's gates, and at least 32 rows so the GEMMs
    stay efficient."""
    return min(T, max(1, -(-max(32, T * B // 8) // max(B, 1))))


def backward_plan(kind, T, B, D, H, itemsize, dropout=False, zoneout=False):
    """{name: shape}, read-only, of the arrays ``Cell._backward`` allocates;
    see ``_backward_plan``."""
    return _memo(_backward_plan, kind, T, B, D, H, itemsize, dropout, zoneout)[0]


def _backward_plan(kind, T, B, D, H, itemsize, dropout, zoneout):
    """{name: shape} of the arrays ``Cell._backward`` allocates (the
    float64 sums ``acc`` apart): dx, the gate gradients of a chunk of
    ``chunk_steps`` steps (dA, and dxg where the reset acts after the
    product), the scratch rows ``work`` (two more with zoneout), the
    packed operands, and with recurrent dropout a chunk's masked states
    ``hmc``."""
    GH = len(kind.gates) * H
    if kind.scan:
        # the gate gradients of every step (the scan reads them all)
        return {"dx": (T, B, D), "dA": (T, B, GH)}
    K = chunk_steps(T, B)
    plan = {"dx": (T, B, D), "dA": (K, B, GH), "work": (5 if zoneout else 3, B, H),
            "packed": (_recurrent.packed_size(B, D, H, GH, True, itemsize),)}
    if kind.reset_after:
        plan["dxg"] = (K, B, H)
    if dropout:
        plan["hmc"] = (K, B, H)
    return plan


def _options(cell):
    # (dropout, zoneout) at most: what a training pass of the cell allocates
    rates = getattr(cell, "_zone_rates", (0.0, 0.0))
    return bool(getattr(cell, "recurrent_dropout", 0)), any(rates)


def _scan_scratch(cell, T, B, cache, backward):
    """Elements the scan kernels (minGRU, minLSTM) allocate for themselves, at
    most: ``_scan.own_elements`` for a team as large as the CPU count (the
    largest it can be; a larger team holds more chunks, and one that splits
    by blocks of time every step's a_t)."""
    D, H, _, s = _sizes(cell)
    return _scan.own_elements(cell._kind, T, B, D, H, s, cache, backward,
                              max(1, os.cpu_count() or 1))


def forward_bytes(cell, T, B, cache=True):
    """Bytes ``cell.forward`` allocates for T steps of a batch of B (at most),
    with or without a cache: x (its copy, or its cast), the memory plan
    (y is a view of its hs), the states and, for the scan cells, what their
    kernel allocates for itself (``_scan_scratch``)."""
    D, H, GH, s = _sizes(cell)
    plan = _memo(_forward_plan, cell._description, T, B, D, H, s, cache, *_options(cell))[1]
    if cell._description.scan:
        plan += _scan_scratch(cell, T, B, cache, False)
    return s * (T * B * D + plan + _STATE_ROWS * B * H) + 8 * B + OVERHEAD


def backward_bytes(cell, T, B):
    """Bytes ``cell.backward`` allocates for a cache of T steps of a batch of B
    (at most): dy, the memory plan, the parameter gradients, the states and,
    for the scan cells, what their kernel allocates for itself."""
    D, H, GH, s = _sizes(cell)
    plan = _memo(_backward_plan, cell._description, T, B, D, H, s, *_options(cell))[1]
    if cell._description.scan:
        plan += _scan_scratch(cell, T, B, True, True)
    params = (D + H + 1) * GH + 4 * H
    return (s * (T * B * H + plan + params + _STATE_ROWS * B * H)
            + 8 * (GH + 4 * H) + OVERHEAD)
