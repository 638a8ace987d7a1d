# The team's tuning policy (included by _recurrent.pyx): when a call runs
# on a team of threads and how the team splits it, which per-step products
# take the packed kernel and on which vector path, and how many steps the
# input projection takes at a time; with the setters the tests and the
# benchmark use. The driver reads these; none changes a result's bits
# except the team's size and split (see "The sequence driver").

# A call is split only when its GEMM work (multiply-adds) is at least
# _MIN_WORK per member: below that, waking a second thread costs more than it
# saves. It splits by rows, with at least _MIN_ROWS rows per member, unless
# the batch is too small for that, or U has at least _UNIT_SPLIT elements
# and the batch fewer than _UNIT_MAX_B rows (each member would read all of
# a large U and W every step for a few rows): then by units, if each
# member's share of a step is at least _MIN_STEP_WORK multiply-adds (a
# barrier per step costs a few microseconds, and a member slowed by other
# work on its core stalls the whole team at each one).
# The values come from timing rows against units (docs/performance.rst, Threads).
cdef Py_ssize_t _MIN_ROWS = 2
cdef double _MIN_WORK = 2e5
cdef Py_ssize_t _UNIT_SPLIT = 1 << 20
cdef Py_ssize_t _UNIT_MAX_B = 32
cdef double _MIN_STEP_WORK = 6e4
# Units are split in blocks of this many (64 bytes of float32).
cdef Py_ssize_t _UNIT_BLOCK = 16


def _set_split(Py_ssize_t min_rows, double min_work, Py_ssize_t unit_split=-1,
               double min_step_work=-1, Py_ssize_t unit_max_b=-1):
    """Set the team thresholds (for the tests and the benchmark); returns the
    previous (min_rows, min_work, unit_split, min_step_work, unit_max_b), to
    restore them. A negative unit_split, min_step_work or unit_max_b keeps
    the current one."""
    global _MIN_ROWS, _MIN_WORK, _UNIT_SPLIT, _MIN_STEP_WORK, _UNIT_MAX_B
    previous = (_MIN_ROWS, _MIN_WORK, _UNIT_SPLIT, _MIN_STEP_WORK, _UNIT_MAX_B)
    _MIN_ROWS = min_rows if min_rows > 1 else 1
    _MIN_WORK = min_work
    if unit_split >= 0:
        _UNIT_SPLIT = unit_split
    if min_step_work >= 0:
        _MIN_STEP_WORK = min_step_work
    if unit_max_b >= 0:
        _UNIT_MAX_B = unit_max_b
    return previous


cdef bint _by_units(Py_ssize_t B, Py_ssize_t H, Py_ssize_t GH) noexcept nogil:
    # Whether a team splits this call's time loop by units (else by rows).
    return ((H * GH >= _UNIT_SPLIT and B < _UNIT_MAX_B) or B < 2 * _MIN_ROWS) and H > _UNIT_BLOCK


cdef int _wanted_team(Py_ssize_t T, Py_ssize_t B, Py_ssize_t H, Py_ssize_t GH) noexcept nogil:
    # The largest team this call is worth: _MIN_WORK multiply-adds per member
    # at least, and _MIN_ROWS rows or _MIN_STEP_WORK per step and a block of
    # units each.
    cdef double step = <double> B * H * GH
    cdef double n = T * step / _MIN_WORK
    cdef double most
    if _by_units(B, H, GH):
        most = step / _MIN_STEP_WORK
        if most > (H + _UNIT_BLOCK - 1) // _UNIT_BLOCK:
            most = (H + _UNIT_BLOCK - 1) // _UNIT_BLOCK
    else:
        most = B // _MIN_ROWS
    if n > most:
        n = most
    return <int> n if n < 1024 else 1024


def team_size(Py_ssize_t T, Py_ssize_t B, Py_ssize_t H, Py_ssize_t GH):
    """The number of threads a pass over (T, B) with hidden size H and GH gate
    columns would run on now, and whether they split it by units (else by
    batch rows): ``(n, by_units)``."""
    cdef int n = team_enter(_wanted_team(T, B, H, GH))
    team_leave()
    return n, bool(n > 1 and _by_units(B, H, GH))


# The per-step products use the packed kernel of _gemm.h, which every CPU
# runs (on the widest vector path it has, _simd.h), at every size: a BLAS's
# one-row products cost a library call and a repacking of U per step, and
# some are slow (docs/performance.rst). _set_packed(False) sends them to the
# BLAS instead, for the tests and the benchmark's --kernels; min_batch and
# min_hidden keep the BLAS below those sizes.
cdef bint _PACKED = True
cdef Py_ssize_t _PACKED_MIN_B = 1
cdef Py_ssize_t _PACKED_MIN_H = 1

# Counts the setters' calls that change packed_size or gate_steps: memory
# plans computed from them (_limits.forward_plan, kept between calls) are
# stale once it moves.
cdef Py_ssize_t _EPOCH = 0


def policy_epoch():
    """A number that changes whenever ``packed_size`` or ``gate_steps`` may
    give other values than before (after ``_set_packed`` or
    ``_set_projection_rows``)."""
    return _EPOCH


# The vector paths by name, narrowest first (_simd.h's levels are the indices).
SIMD_PATHS = ("portable", "avx2", "avx512")


def simd_paths():
    """The vector paths this CPU runs, widest first: ``("avx512", "avx2",
    "portable")`` on a CPU with AVX-512F, ``("avx2", "portable")`` with AVX2
    and FMA, ``("portable",)`` on any other (aarch64, older x86-64)."""
    return SIMD_PATHS[pyx_simd_widest()::-1]


def simd_path():
    """The vector path the kernels take now (one of :func:`simd_paths`)."""
    return SIMD_PATHS[pyx_simd()]


def _set_simd(str name):
    """Take the vector path ``name`` (one of :func:`simd_paths`; for the
    tests and the benchmark); returns the previous one, to restore it. Not
    for use while another thread runs a pass (it would change path midway)."""
    if name not in simd_paths():
        raise ValueError(f"vector path {name!r} is not one this CPU runs: {simd_paths()}")
    previous = simd_path()
    pyx_simd_set(SIMD_PATHS.index(name))
    return previous


def _simd_from_environment(environ):
    """Take the path PYX_GRU_SIMD names, if set: the widest path allowed
    (a CPU without it takes its own widest). Called once, on import."""
    value = environ.get("PYX_GRU_SIMD", "").strip().lower()
    if not value:
        return
    if value not in SIMD_PATHS:
        raise ValueError(f"PYX_GRU_SIMD must be one of {', '.join(SIMD_PATHS[::-1])} "
                         f"(or unset), got {value!r}")
    pyx_simd_set(SIMD_PATHS.index(value))


_simd_from_environment(os.environ)
simd_path()  # the path is fixed here, not by the first call in a team


def packed_available():
    """Whether this CPU runs the packed per-step kernel: always (it has a
    portable path); kept for callers of earlier versions."""
    return True


def _set_packed(bint on, Py_ssize_t min_batch=-1, Py_ssize_t min_hidden=-1):
    """Use the packed per-step kernel or the BLAS, and from which batch and
    hidden sizes (negative: keep them); returns the previous (on,
    min_batch, min_hidden), to restore them."""
    global _PACKED, _PACKED_MIN_B, _PACKED_MIN_H, _EPOCH
    previous = (_PACKED, _PACKED_MIN_B, _PACKED_MIN_H)
    _EPOCH += 1
    _PACKED = on
    if min_batch >= 0:
        _PACKED_MIN_B = min_batch
    if min_hidden >= 0:
        _PACKED_MIN_H = min_hidden
    return previous


# The forward's products read U and W as they lie, not packed, when packing
# them would cost more than it saves: with few rows in all (T * B at most
# _IN_PLACE_ROWS: each packed panel would serve only a few rows), and on the
# AVX-512 path with up to _IN_PLACE_B_AVX512 rows per step, where reading in
# place is as fast per step as reading packed (docs/performance.rst). Both
# read the same numbers in the same order: the results are bitwise the
# same. Only whole panels (H a multiple of the panel width), so that no
# panel reads past the end of U or W.
cdef Py_ssize_t _IN_PLACE_ROWS = 16
cdef Py_ssize_t _IN_PLACE_B_AVX512 = 4


cdef bint _reads_in_place(Py_ssize_t T, Py_ssize_t B, Py_ssize_t H,
                          size_t itemsize) noexcept nogil:
    cdef size_t pw = PYX_PANEL_F if itemsize == 4 else PYX_PANEL_D
    if H % pw:
        return False
    return T * B <= _IN_PLACE_ROWS or (pyx_simd() == PYX_SIMD_AVX512 and B <= _IN_PLACE_B_AVX512)


def _set_in_place(Py_ssize_t rows, Py_ssize_t b_avx512):
    """Read U and W in place (not packed) up to ``rows`` rows in all, or on
    the AVX-512 path up to ``b_avx512`` rows per step (negative: never);
    for the tests and the benchmark. Returns the previous (rows, b_avx512)."""
    global _IN_PLACE_ROWS, _IN_PLACE_B_AVX512
    previous = (_IN_PLACE_ROWS, _IN_PLACE_B_AVX512)
    _IN_PLACE_ROWS, _IN_PLACE_B_AVX512 = rows, b_avx512
    return previous


def _set_prefetch(size_t nbytes):
    """Read packed operands of at least nbytes per product with software
    prefetch (_gemm.h's pyx_prefetch_bytes; for the tests); returns the
    previous threshold, to restore it."""
    return pyx_set_prefetch_bytes(nbytes)


def packed_size(Py_ssize_t B, Py_ssize_t D, Py_ssize_t H, Py_ssize_t GH, bint backward,
                int itemsize):
    """Elements of the workspace the packed operands take for a batch of B
    (forward: each gate block of U, then each gate block of W; backward:
    U.T, then W.T), 0 when the per-step products call the BLAS."""
    cdef size_t pw = PYX_PANEL_F if itemsize == 4 else PYX_PANEL_D
    if not _PACKED or H == 0 or B < _PACKED_MIN_B or H < _PACKED_MIN_H:
        return 0
    if backward:
        return pyx_packed_size(GH, H, pw) + pyx_packed_size(GH, D, pw)
    return GH // H * (pyx_packed_size(H, H, pw) + pyx_packed_size(D, H, pw))


# Without a cache, the BLAS path projects the input this many rows (steps
# times batch) at a time, at least: enough for an efficient GEMM, and a
# small fraction of the cache's T * B rows on long sequences.
cdef Py_ssize_t _CHUNK_ROWS = 256
# The packed path projects the input of this many rows (steps times batch)
# at a time, at least, within the time loop: each block of the packed W
# then serves several steps while it is in L1.
cdef Py_ssize_t _PROJECTION_ROWS = 256


cdef Py_ssize_t _projection_steps(Py_ssize_t T, Py_ssize_t B) noexcept nogil:
    # Kx: steps per input projection on the packed path, in [1, max(T, 1)].
    cdef Py_ssize_t k = (_PROJECTION_ROWS + B - 1) // (B if B > 0 else 1)
    if k > T:
        k = T
    return k if k > 1 else 1


def _set_projection_rows(Py_ssize_t rows):
    """Set the packed path's rows per input projection (for the tests and
    the benchmark); returns the previous value."""
    global _PROJECTION_ROWS, _EPOCH
    previous = _PROJECTION_ROWS
    _EPOCH += 1
    _PROJECTION_ROWS = rows if rows > 1 else 1
    return previous


def gate_steps(Py_ssize_t T, Py_ssize_t B, Py_ssize_t D, Py_ssize_t H, Py_ssize_t GH,
               int itemsize):
    """Steps of gates a forward pass without a cache keeps (``forward``'s
    Tg): on the packed path, the steps of one input projection; else chunks
    of at least _CHUNK_ROWS rows; never more than T."""
    if packed_size(B, D, H, GH, False, itemsize):
        return min(T, _projection_steps(T, B))
    return min(T, max(1, (_CHUNK_ROWS + B - 1) // max(B, 1)))
