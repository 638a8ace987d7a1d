# Design:
# Forward and backward passes of the cells whose gates read only x_t
# (minGRU and minLSTM, Feng et al. 2024). With no h_{t-1} inside a gate,
# every step's gates come from one product over all T*B rows, and what is
# left of the recurrence is linear:
#     h_t = a_t * h_{t-1} + b_t          (elementwise, a_t in [0, 1])
# minGRU:  a = 1 - z,  b = z * g                    (gates z, g)
# minLSTM: a = f / (f + i),  b = i / (f + i) * g    (gates f, i, g)
# Shapes: x (T, B, D), W (D, GH), b (GH,), gates (T, B, GH), a (T, B, H),
# hs (T+1, B, H) with hs[0] = h_0; validated by pyx_gru._cells (this module
# checks shapes, then trusts its inputs and never raises in nogil code).
#
# The products with W go through _gemm.h's kernel, W (and W.T for the
# backward) packed once per call by the team: a chunk of about _CHUNK_ROWS
# rows is projected, then taken through its pointwise work while it is in
# cache (one BLAS GEMM over all T*B rows left the pointwise passes reading
# it back from memory). Each element of a product is one chain of
# multiply-adds in k order, however the rows are chunked or split.
#
# The team splits the scan one of two ways (split()):
# - by rows (B >= 16 * team size): each member takes its batch rows over every
#   step, exact from h_0 (backward: from dstate), with no carries; all
#   but dW (the BLAS's, split by columns) bitwise those of one thread.
# - by blocks of time (smaller batches, as B = 1), each member on its own
#   block of steps [t0, t1):
#   gates[t0:t1] = x[t0:t1] @ W, in chunks, each followed by its steps:
#             gates + b -> activations, a_t -> a[t], b_t -> hs[t+1]
#             then the recurrence hs[t+1] += a_t * hs[t], from a zero carry
#             (member 0 starts from h_0: its block is exact at once)
#             and P = the product of the block's a_t
#   barrier; the carries in order of the blocks (each member a slice of the
#   B*H elements): hs[t1] = P * hs[t0] + hs[t1], block after block
#   barrier; each member k > 0 corrects its block with its carry hs[t0]:
#             hs[t+1] += (a_t0 ... a_t) * hs[t0]
# Backward, the reverse linear recurrence of dL/dh_t (written g_t):
#   g_t = d_t + a_{t+1} g_{t+1},  g_{T-1} = d_{T-1} + dstate, d_t = dy[t]
#   dstate0 = a_0 g_0
# by rows: each member its rows, every step from the last, the gate
# gradients (dA) per step and dx = dA @ W.T per chunk while dA is in cache;
# by blocks of time: the same way as forward (the last member starts from
# dstate and is exact at once; the others from zero, then the carries in
# reverse order, then a correction), g_t kept in the candidate's block of
# dA, then per row the gate gradients, and each member's dx[t0:t1] = dA[t0:t1]
# @ W.T. Then, either way: barrier, dW = x.T @ dA (BLAS) and db = dA.sum(0),
# each member its columns of dW, over all rows.
# Masked steps (t >= lengths[b]) take a = 1, b = 0 (the state is carried),
# y = 0 afterwards, and their dA is 0 (the gradient passes straight).
# The pointwise work (bias, activations, a_t, b_t and the step of the
# recurrence in one pass per row; the carry of g_t and the gate gradients
# in one pass per row; the passes over B*H; the column sums of db) is C in
# _scan.h, compiled per vector path of _simd.h and dispatched at run time:
# the same operations in the same order on every path, so the same bits.
# A step's rows go in one call when none is masked or pinned; otherwise
# row by row, a masked or pinned row the general way.
#
# The team: pyx_gru._blas.team_enter / team_leave, as for _recurrent (the
# BLAS held at one thread inside, the team at most the BLAS's thread count,
# threadpoolctl governs both). A result depends on the team size only: for
# one size it is bitwise the same; by rows, but for dW, that of one thread; by
# blocks of time the scan regroups the products of a's, which changes the
# last bits (tests/test_mincells.py). BLAS only through _blas.gemm (dW);
# every buffer comes from the caller except the team's carries (2 or 3 *
# team * B * H) and the packed W or W.T, allocated once before the loop.
import os

from cython cimport floating
from cython.parallel cimport parallel, threadid
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

from ._blas cimport gemm, team_enter, team_leave
from ._gemm cimport gemm_packed, pack, panel_width, pyx_packed_size
from ._math cimport column_sums

cdef extern from "_simd.h" nogil:
    # this module's own copy of the vector path of the activations
    int pyx_simd()
    int pyx_simd_widest()
    int pyx_simd_set(int level)

# The vector paths by name, narrowest first (as _recurrent.SIMD_PATHS). The
# activations give bitwise the same results on every path; the path only
# changes their speed. PYX_GRU_SIMD narrows it, as for _recurrent (which
# checks the variable's value on import).
SIMD_PATHS = ("portable", "avx2", "avx512")


def simd_path():
    """The vector path this module's activations take now."""
    return SIMD_PATHS[pyx_simd()]


def _set_simd(str name):
    """Take the vector path ``name`` (for the tests and the benchmark, as
    ``_recurrent._set_simd``); returns the previous one, to restore it."""
    if name not in SIMD_PATHS[pyx_simd_widest()::-1]:
        raise ValueError(f"vector path {name!r} is not one this CPU runs")
    previous = simd_path()
    pyx_simd_set(SIMD_PATHS.index(name))
    return previous


_simd_value = os.environ.get("PYX_GRU_SIMD", "").strip().lower()
if _simd_value in SIMD_PATHS:
    pyx_simd_set(SIMD_PATHS.index(_simd_value))
simd_path()  # the path is fixed here, not by the first call in a team

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define PYX_SCAN_TEAM_SIZE() omp_get_num_threads()
    #define PYX_SCAN_BARRIER() _Pragma("omp barrier")
    #else
    #define PYX_SCAN_TEAM_SIZE() 1
    #define PYX_SCAN_BARRIER()
    #endif
    """
    int PYX_SCAN_TEAM_SIZE() noexcept nogil
    void PYX_SCAN_BARRIER() noexcept nogil


# The kinds of this module (their numbers are its interface).
cdef enum:
    _MINGRU = 0
    _MINLSTM
    _N_SCAN_KINDS

MINGRU = _MINGRU
MINLSTM = _MINLSTM
N_KINDS = _N_SCAN_KINDS


def kind_table():
    """The kernels' description of each kind, by number: ``n_gates`` (gate
    blocks of H columns in W, b and the gates; the candidate is the last)."""
    return ({"n_gates": 2}, {"n_gates": 3})


cdef inline Py_ssize_t _n_gates(int kind) noexcept nogil:
    return 2 if kind == _MINGRU else 3


# ---------------------------------------------------------------------------
# The team's policy: a member per _MIN_WORK multiply-adds of the GEMMs, and
# at least _MIN_STEPS steps per member (the carries cost B*H per member).
# ---------------------------------------------------------------------------
cdef double _MIN_WORK = 2e5
cdef Py_ssize_t _MIN_STEPS = 4
# The split by rows when each member has at least this many batch rows: with
# fewer, the packed products' row blocks are small and the split by time was
# faster (docs/performance.rst).
cdef Py_ssize_t _MIN_ROWS = 16
# Rows of a chunk of the forward's input projection (x @ W, then the
# activations and the recurrence on those rows while they are in cache).
cdef Py_ssize_t _CHUNK_ROWS = 64


def _set_chunk_rows(Py_ssize_t rows):
    """Set the rows of a chunk of the forward's projection (for the tests
    and the benchmark; at least 1); returns the previous value, to restore it."""
    global _CHUNK_ROWS
    previous = _CHUNK_ROWS
    _CHUNK_ROWS = rows if rows > 1 else 1
    return previous


def _set_split(double min_work, Py_ssize_t min_steps, Py_ssize_t min_rows=-1):
    """Set the team thresholds (for the tests and the benchmark): work and
    steps per member, and the batch rows per member from which the team
    splits by rows (negative: keep it); returns the previous (min_work,
    min_steps, min_rows), to restore them."""
    global _MIN_WORK, _MIN_STEPS, _MIN_ROWS
    previous = (_MIN_WORK, _MIN_STEPS, _MIN_ROWS)
    _MIN_WORK = min_work
    _MIN_STEPS = min_steps if min_steps > 1 else 1
    if min_rows >= 0:
        _MIN_ROWS = min_rows if min_rows > 1 else 1
    return previous


cdef int _wanted_team(Py_ssize_t T, Py_ssize_t B, Py_ssize_t D, Py_ssize_t GH) noexcept nogil:
    cdef double n = <double> T * B * D * GH / _MIN_WORK
    cdef double most = T // _MIN_STEPS
    if n > most:
        n = most
    if n < 1:
        return 1
    return <int> n if n < 1024 else 1024


def own_elements(int kind, Py_ssize_t T, Py_ssize_t B, Py_ssize_t D, Py_ssize_t H,
                 int itemsize, bint cache, bint backward, int team):
    """Elements (of itemsize bytes) a pass allocates for itself on a team of
    ``team`` threads, as ``forward`` and ``backward`` do: W packed (W.T
    backward) and the team's carries; a forward without a cache also each
    member's chunk of gates and a_t, or every step's a_t when it splits by
    blocks of time. (The backward's float64 column sums come on top: GH.)"""
    cdef Py_ssize_t GH = _n_gates(kind) * H
    cdef size_t pw = 16 if itemsize == 4 else 8
    cdef Py_ssize_t chunk = _CHUNK_ROWS if _CHUNK_ROWS > B else B
    if backward:
        return pyx_packed_size(GH, D, pw) + 3 * team * B * H
    n = pyx_packed_size(D, GH, pw) + 2 * team * B * H
    if not cache:
        n += team * chunk * GH
        n += team * chunk * H if team == 1 or _by_rows(team, B) else T * B * H
    return n


def team_size(Py_ssize_t T, Py_ssize_t B, Py_ssize_t D, Py_ssize_t GH):
    """The number of threads a pass over (T, B) with input size D and GH gate
    columns would run on now."""
    cdef int n = team_enter(_wanted_team(T, B, D, GH))
    team_leave()
    return n


cdef inline Py_ssize_t _part(Py_ssize_t n, int i, int parts) noexcept nogil:
    # Start of part i of [0, n) cut into `parts` nearly equal pieces.
    return n * i // parts


# ---------------------------------------------------------------------------
# Pointwise steps (_scan.h: compiled per vector path, dispatched at run
# time). Rows: step t, batch entry b, H units; gate block k of a row is
# g[k*H:(k+1)*H], the candidate the last.
# ---------------------------------------------------------------------------

cdef extern from "_scan.h" nogil:
    void pyx_scan_fwd_f(int lstm, Py_ssize_t n, Py_ssize_t H, float* g, const float* bias,
                        const float* hp, float* a, float* h)
    void pyx_scan_fwd_d(int lstm, Py_ssize_t n, Py_ssize_t H, double* g, const double* bias,
                        const double* hp, double* a, double* h)
    void pyx_scan_fwd_pinned_f(int lstm, Py_ssize_t H, float* g, const float* bias,
                               const float* keep, const float* pin, float* a, float* hb)
    void pyx_scan_fwd_pinned_d(int lstm, Py_ssize_t H, double* g, const double* bias,
                               const double* keep, const double* pin, double* a, double* hb)
    void pyx_scan_bwd_f(int lstm, int exact, Py_ssize_t n, Py_ssize_t H, const float* g,
                        const float* hp, float k0, float k1, const float* dy, const float* at,
                        float* carry, float* d)
    void pyx_scan_bwd_d(int lstm, int exact, Py_ssize_t n, Py_ssize_t H, const double* g,
                        const double* hp, double k0, double k1, const double* dy,
                        const double* at, double* carry, double* d)
    void pyx_scan_axpy_f(Py_ssize_t n, const float* m, const float* x, float* y)
    void pyx_scan_axpy_d(Py_ssize_t n, const double* m, const double* x, double* y)
    void pyx_scan_mul_f(Py_ssize_t n, const float* m, float* p, int m_first)
    void pyx_scan_mul_d(Py_ssize_t n, const double* m, double* p, int m_first)


cdef inline void _fwd_rows(int kind, Py_ssize_t n, Py_ssize_t H, floating* g,
                           const floating* bias, const floating* hp, floating* a,
                           floating* h) noexcept nogil:
    # n rows, no gate pinned: g <- the activations, a <- a_t, h <- a_t hp + b_t
    # (b_t where hp is NULL)
    if floating is float:
        pyx_scan_fwd_f(kind == _MINLSTM, n, H, g, bias, hp, a, h)
    else:
        pyx_scan_fwd_d(kind == _MINLSTM, n, H, g, bias, hp, a, h)


cdef inline void _fwd_pinned(int kind, Py_ssize_t H, floating* g, const floating* bias,
                             const floating* keep, const floating* pin, floating* a,
                             floating* hb) noexcept nogil:
    # one row, a gate may be pinned: g <- the activations, a <- a_t, hb <- b_t
    if floating is float:
        pyx_scan_fwd_pinned_f(kind == _MINLSTM, H, g, bias, keep, pin, a, hb)
    else:
        pyx_scan_fwd_pinned_d(kind == _MINLSTM, H, g, bias, keep, pin, a, hb)


cdef inline void _bwd_rows(int kind, bint exact, Py_ssize_t n, Py_ssize_t H,
                           const floating* g, const floating* hp, const floating* keep,
                           const floating* dy, const floating* at, floating* carry,
                           floating* d) noexcept nogil:
    # n rows: dh = dy + carry (exact) or d's candidate block + carry, the
    # carry times a_t, then d <- the gradients of the gates' pre-activations
    # (0 for a pinned gate)
    cdef floating k1 = keep[1] if kind == _MINLSTM else keep[0]
    if floating is float:
        pyx_scan_bwd_f(kind == _MINLSTM, exact, n, H, g, hp, keep[0], k1, dy, at, carry, d)
    else:
        pyx_scan_bwd_d(kind == _MINLSTM, exact, n, H, g, hp, keep[0], k1, dy, at, carry, d)


cdef inline void _axpy(Py_ssize_t n, const floating* m, const floating* x,
                       floating* y) noexcept nogil:
    # y <- m * x + y (y overlaps neither)
    if floating is float:
        pyx_scan_axpy_f(n, m, x, y)
    else:
        pyx_scan_axpy_d(n, m, x, y)


cdef inline void _mul(Py_ssize_t n, const floating* m, floating* p, bint m_first) noexcept nogil:
    # p <- m * p (m_first) or p * m
    if floating is float:
        pyx_scan_mul_f(n, m, p, m_first)
    else:
        pyx_scan_mul_d(n, m, p, m_first)


# ---------------------------------------------------------------------------
# The forward driver
# ---------------------------------------------------------------------------

cdef inline bint _by_rows(int nth, Py_ssize_t B) noexcept nogil:
    # The team's split of the scan: by batch rows when every member has
    # _MIN_ROWS (each member's rows exact from h_0: no carries, no
    # corrections), else by blocks of time.
    return nth > 1 and B >= nth * _MIN_ROWS


def split(int team, Py_ssize_t B):
    """How a team of ``team`` threads splits the scan of a batch of B:
    ``"rows"`` (each member its batch rows, over all steps; from 16 rows a
    member, ``_set_split``'s min_rows) or ``"time"`` (each member a block of
    steps, joined by carries); ``"none"`` for one."""
    if team <= 1:
        return "none"
    return "rows" if _by_rows(team, B) else "time"


cdef void _fwd_step(int kind, bint masked, bint pinned, bint first, Py_ssize_t t,
                    Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t B, Py_ssize_t H,
                    floating* g, const floating* bias, const Py_ssize_t* lengths,
                    const floating* keep, const floating* pin, floating* at,
                    floating* hs) noexcept nogil:
    # Rows [r0, r1) of step t, their gates at g (rows GH apart) and their
    # a_t at `at` (rows H apart): the activations into g, a_t into `at` and
    # hs[t+1] = a_t * hs[t] + b_t, or b_t from a zero carry when `first`.
    cdef Py_ssize_t GH = _n_gates(kind) * H
    cdef Py_ssize_t BH = B * H
    cdef floating* h = hs + (t + 1) * BH
    cdef const floating* hp = NULL
    cdef const floating* hr
    cdef floating* ar
    cdef floating* gr
    cdef Py_ssize_t bb, j
    if not first:
        hp = hs + t * BH
    if not (masked or pinned):
        # the common case: the rows in one call, the recurrence fused in
        hr = NULL
        if not first:
            hr = hp + r0 * H
        _fwd_rows(kind, r1 - r0, H, g, bias, hr, at, h + r0 * H)
        return
    for bb in range(r0, r1):
        gr = g + (bb - r0) * GH
        ar = at + (bb - r0) * H
        if not pinned and not (masked and t >= lengths[bb]):
            hr = NULL
            if not first:
                hr = hp + bb * H
            _fwd_rows(kind, 1, H, gr, bias, hr, ar, h + bb * H)
            continue
        if pinned:
            _fwd_pinned(kind, H, gr, bias, keep, pin, ar, h + bb * H)
        else:
            _fwd_rows(kind, 1, H, gr, bias, NULL, ar, h + bb * H)
        if masked and t >= lengths[bb]:
            # past the end: the state is carried
            for j in range(H):
                ar[j] = 1
                h[bb * H + j] = 0
        if not first:
            _axpy(H, ar, hp + bb * H, h + bb * H)


cdef void _forward_member(int tid, int nth, int kind, bint masked, Py_ssize_t T,
                          Py_ssize_t B, Py_ssize_t D, Py_ssize_t H, const floating* x,
                          const floating* W, const floating* bias,
                          const Py_ssize_t* lengths, const floating* keep,
                          const floating* pin, floating* gates, floating* a,
                          floating* hs, floating* h_last, floating* prods,
                          floating* Wp, Py_ssize_t chunk_rows, bint ring) noexcept nogil:
    # gates (T, B, GH) and a (T, B, H) as the forward's docstring has them;
    # or, with `ring` (no cache), gates a buffer of `chunk` rows per member
    # for the current chunk, and a the same (by rows, or alone) or (T, B, H)
    # (by time: the correction reads them), chunk = max(chunk_rows, B).
    cdef Py_ssize_t GH = _n_gates(kind) * H
    cdef Py_ssize_t BH = B * H
    cdef Py_ssize_t t0 = _part(T, tid, nth)
    cdef Py_ssize_t t1 = _part(T, tid + 1, nth)
    cdef Py_ssize_t e0 = _part(BH, tid, nth)
    cdef Py_ssize_t e1 = _part(BH, tid + 1, nth)
    cdef Py_ssize_t r0 = 0, r1 = B
    cdef Py_ssize_t t, bb, k, e
    cdef floating* P = prods + tid * BH     # the product of the block's a_t
    cdef floating* q = prods + (nth + tid) * BH
    cdef floating* h
    cdef const floating* hp
    cdef bint first, pinned = False
    cdef bint by_rows = _by_rows(nth, B)
    cdef size_t pw = panel_width(W)
    cdef Py_ssize_t npan = (GH + pw - 1) // pw
    cdef Py_ssize_t s, c, rows
    cdef Py_ssize_t chunk = chunk_rows if chunk_rows > B else B
    cdef bint ring_a = ring and (by_rows or nth == 1)
    cdef floating* gc       # the chunk's gates: its first step, row r0
    cdef floating* ac       # the chunk's a_t, the same
    cdef Py_ssize_t gstep, astep    # from one step to the next in them
    for k in range(_n_gates(kind) - 1):
        if keep[k] == 0:
            pinned = True
    # W packed once (this member's panels), then read as it lies
    pack(D, GH, W, GH, 1, _part(npan, tid, nth), _part(npan, tid + 1, nth), Wp)
    PYX_SCAN_BARRIER()   # all of W is packed
    if by_rows:
        # every step of this member's rows, exact from h_0
        r0 = _part(B, tid, nth)
        r1 = _part(B, tid + 1, nth)
        t0, t1 = 0, T
    rows = r1 - r0
    gstep = rows * GH if ring else B * GH
    astep = rows * H if ring_a else B * H
    # steps in chunks of about chunk_rows rows: each chunk's gates are
    # projected, then taken through the activations and the recurrence
    # while they are in cache
    c = chunk_rows // rows if rows < chunk_rows else 1
    s = t0
    while s < t1:
        e = s + c if s + c < t1 else t1
        gc = gates + tid * chunk * GH if ring else gates + (s * B + r0) * GH
        ac = a + tid * chunk * H if ring_a else a + s * B * H + r0 * H
        # gates[s:e, r0:r1] = x[s:e, r0:r1] @ W, as e - s groups of rows
        gemm_packed(<int> rows, <int> GH, <int> D, x + (s * B + r0) * D, <int> D, Wp,
                    D * pw, <floating> 0, gc, <int> GH, <int> (e - s), B * D, gstep)
        for t in range(s, e):
            # a block after the first starts from a zero carry: h_t0 = b_t0
            first = t == t0 and tid > 0 and not by_rows
            _fwd_step(kind, masked, pinned, first, t, r0, r1, B, H, gc + (t - s) * gstep,
                      bias, lengths, keep, pin, ac + (t - s) * astep, hs)
            if by_rows:
                continue
            if first:
                # the product starts at a_t0
                memcpy(P, a + t * BH, BH * sizeof(floating))
            elif tid > 0:
                _mul(BH, a + t * BH, P, False)
        s = e
    if by_rows:
        memcpy(h_last + r0 * H, hs + T * BH + r0 * H, (r1 - r0) * H * sizeof(floating))
        if masked:
            # zeros past each length (the final states are read)
            for t in range(T):
                for bb in range(r0, r1):
                    if t >= lengths[bb]:
                        memset(hs + ((t + 1) * B + bb) * H, 0, H * sizeof(floating))
        return
    if nth > 1:
        PYX_SCAN_BARRIER()   # every block's local recurrence and product
        # the carries, block after block, for this member's elements:
        # hs[t1_k] = P_k * hs[t0_k] + hs[t1_k]
        for k in range(1, nth):
            t = _part(T, k + 1, nth)
            if t > _part(T, k, nth) and e1 > e0:
                h = hs + t * BH
                hp = hs + _part(T, k, nth) * BH
                _axpy(e1 - e0, prods + k * BH + e0, hp + e0, h + e0)
        PYX_SCAN_BARRIER()   # every block's carry is in hs[t0]
        if tid > 0 and t1 - t0 > 1:
            # hs[t+1] += (a_t0 ... a_t) * hs[t0] for t in [t0, t1 - 1)
            hp = hs + t0 * BH
            memcpy(q, a + t0 * BH, BH * sizeof(floating))
            for t in range(t0, t1 - 1):
                h = hs + (t + 1) * BH
                if t > t0:
                    _mul(BH, a + t * BH, q, False)
                _axpy(BH, q, hp, h)
    if tid == nth - 1:
        memcpy(h_last, hs + T * BH, BH * sizeof(floating))
    if masked:
        PYX_SCAN_BARRIER()   # the final state is read before the zeros
        for t in range(t0, t1):
            for bb in range(B):
                if t >= lengths[bb]:
                    memset(hs + ((t + 1) * B + bb) * H, 0, H * sizeof(floating))


# ---------------------------------------------------------------------------
# The backward driver
# ---------------------------------------------------------------------------

cdef void _bwd_exact_step(int kind, bint masked, Py_ssize_t t, Py_ssize_t r0,
                          Py_ssize_t r1, Py_ssize_t B, Py_ssize_t H, const floating* gates,
                          const floating* a, const floating* hs, const floating* dy,
                          const Py_ssize_t* lengths, const floating* keep, floating* R,
                          floating* dA) noexcept nogil:
    # Rows [r0, r1) of step t, their carry R (rows H apart) known: g_t =
    # dy_t + R, R <- a_t g_t, and the gate gradients into dA.
    cdef Py_ssize_t GH = _n_gates(kind) * H
    cdef const floating* at = a + t * B * H
    cdef Py_ssize_t bb, k
    if not masked:
        k = t * B + r0
        _bwd_rows(kind, True, r1 - r0, H, gates + k * GH, hs + k * H, keep, dy + k * H,
                  at + r0 * H, R + r0 * H, dA + k * GH)
        return
    for bb in range(r0, r1):
        k = t * B + bb
        if t >= lengths[bb]:
            # no gradient past the end: the carry passes (a_t = 1)
            memset(dA + k * GH, 0, GH * sizeof(floating))
            _mul(H, at + bb * H, R + bb * H, True)
        else:
            _bwd_rows(kind, True, 1, H, gates + k * GH, hs + k * H, keep, dy + k * H,
                      at + bb * H, R + bb * H, dA + k * GH)


cdef void _dx_rows(Py_ssize_t s, Py_ssize_t e, Py_ssize_t r0, Py_ssize_t r1,
                   Py_ssize_t B, Py_ssize_t D, Py_ssize_t GH, const floating* dA,
                   const floating* Wtp, floating* dx) noexcept nogil:
    # dx[s:e, r0:r1] = dA[s:e, r0:r1] @ W.T, as e - s groups of rows; Wtp:
    # W.T packed (pyx_packed_size(GH, D))
    cdef size_t pw = panel_width(dA)
    gemm_packed(<int> (r1 - r0), <int> D, <int> GH, dA + (s * B + r0) * GH, <int> GH, Wtp,
                GH * pw, <floating> 0, dx + (s * B + r0) * D, <int> D, <int> (e - s), B * GH,
                B * D)


cdef void _bwd_exact_rows(int kind, bint masked, Py_ssize_t ta, Py_ssize_t tb,
                          Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t B, Py_ssize_t D,
                          Py_ssize_t H, const floating* gates, const floating* a,
                          const floating* hs, const floating* dy, const Py_ssize_t* lengths,
                          const floating* keep, floating* R, floating* dA,
                          const floating* Wtp, floating* dx) noexcept nogil:
    # Steps [ta, tb), last first, rows [r0, r1), their carry R known (see
    # _bwd_exact_step); each chunk's dx right after its dA, while in cache
    # (no dx where Wtp is NULL).
    cdef Py_ssize_t GH = _n_gates(kind) * H
    cdef Py_ssize_t rows = r1 - r0
    cdef Py_ssize_t c = _CHUNK_ROWS // rows if rows < _CHUNK_ROWS else 1
    cdef Py_ssize_t s, t, e = tb
    while e > ta:
        s = e - c if e - c > ta else ta
        for t in range(e - 1, s - 1, -1):
            _bwd_exact_step(kind, masked, t, r0, r1, B, H, gates, a, hs, dy, lengths, keep, R,
                            dA)
        if Wtp != NULL:
            _dx_rows(s, e, r0, r1, B, D, GH, dA, Wtp, dx)
        e = s


cdef void _backward_member(int tid, int nth, int kind, bint masked, Py_ssize_t T,
                           Py_ssize_t B, Py_ssize_t D, Py_ssize_t H, const floating* x,
                           const floating* W, const Py_ssize_t* lengths,
                           const floating* keep, const floating* gates, const floating* a,
                           const floating* hs, const floating* dy, floating* dh,
                           floating* dA, floating* dx, floating* dW, double* acc,
                           floating* work, floating* Wtp) noexcept nogil:
    # On entry dh holds dL/d(final state); on exit dL/dh_0. work: 3 * nth
    # rows of B*H (the products P, the carries R out of each block, and Q).
    cdef Py_ssize_t GH = _n_gates(kind) * H
    cdef Py_ssize_t cand = GH - H
    cdef Py_ssize_t BH = B * H
    cdef Py_ssize_t t0 = _part(T, tid, nth)
    cdef Py_ssize_t t1 = _part(T, tid + 1, nth)
    cdef Py_ssize_t e0 = _part(BH, tid, nth)
    cdef Py_ssize_t e1 = _part(BH, tid + 1, nth)
    cdef Py_ssize_t c0 = _part(GH // 16, tid, nth) * 16
    cdef Py_ssize_t c1 = GH if tid == nth - 1 else _part(GH // 16, tid + 1, nth) * 16
    cdef Py_ssize_t t, bb, j, k
    cdef floating* P = work + tid * BH      # the product of the block's a_t
    cdef floating* R = work + (nth + tid) * BH   # the carry into the block before
    cdef floating* C = work + (2 * nth + tid) * BH   # the carry into this block
    cdef bint last = tid == nth - 1
    cdef floating* gt
    cdef const floating* at
    cdef floating v
    cdef Py_ssize_t r0, r1
    cdef size_t pw = panel_width(W)
    cdef Py_ssize_t npan = (D + pw - 1) // pw
    # W.T packed once (this member's panels), then read as it lies
    pack(GH, D, W, 1, GH, _part(npan, tid, nth), _part(npan, tid + 1, nth), Wtp)
    PYX_SCAN_BARRIER()   # all of W.T is packed
    if _by_rows(nth, B):
        # this member's rows over every step, exact from dstate, and their dx
        r0 = _part(B, tid, nth)
        r1 = _part(B, tid + 1, nth)
        memcpy(R + r0 * H, dh + r0 * H, (r1 - r0) * H * sizeof(floating))
        _bwd_exact_rows(kind, masked, 0, T, r0, r1, B, D, H, gates, a, hs, dy, lengths, keep,
                        R, dA, Wtp, dx)
        memcpy(dh + r0 * H, R + r0 * H, (r1 - r0) * H * sizeof(floating))   # a_0 g_0
    else:
        # Pass 1, backwards over the block. The last starts from dstate and is
        # exact at once (its gate gradients, and its dx when alone); the
        # others start from a zero carry: g_t = d_t + carry, carry = a_t g_t,
        # and P = the product of the block's a_t.
        if last:
            memcpy(R, dh, BH * sizeof(floating))
            _bwd_exact_rows(kind, masked, t0, t1, 0, B, B, D, H, gates, a, hs, dy, lengths,
                            keep, R, dA, Wtp if nth == 1 else NULL, dx)
        else:
            memset(R, 0, BH * sizeof(floating))
            for t in range(t1 - 1, t0 - 1, -1):
                at = a + t * BH
                for bb in range(B):
                    k = t * B + bb
                    if masked and t >= lengths[bb]:
                        # no gradient past the end: the carry passes (a_t = 1)
                        memcpy(dA + k * GH + cand, R + bb * H, H * sizeof(floating))
                        _mul(H, at + bb * H, R + bb * H, True)
                    else:
                        gt = dA + k * GH + cand
                        for j in range(H):
                            gt[j] = dy[k * H + j] + R[bb * H + j]
                        for j in range(H):
                            R[bb * H + j] = at[bb * H + j] * gt[j]
                if t == t1 - 1:
                    memcpy(P, at, BH * sizeof(floating))
                else:
                    _mul(BH, at, P, False)
        if nth > 1:
            PYX_SCAN_BARRIER()   # every block's R and P
            # the carries in reverse order of the blocks, for this member's
            # elements: C_{last-1} = R_last, C_{k-1} = R_k + P_k C_k
            for j in range(e0, e1):
                v = work[(2 * nth - 1) * BH + j]    # R of the last block
                for k in range(nth - 2, -1, -1):
                    work[(2 * nth + k) * BH + j] = v
                    if _part(T, k + 1, nth) > _part(T, k, nth):
                        v = work[(nth + k) * BH + j] + work[k * BH + j] * v
                dh[j] = v                            # dL/dh_0 = a_0 g_0
            PYX_SCAN_BARRIER()   # every block's carry C
            if not last:
                # g_t += (a_{t+1} ... a_{t1-1}) C, then the gate gradients
                memcpy(P, C, BH * sizeof(floating))  # P <- Q C, Q = 1 at t1 - 1
                for t in range(t1 - 1, t0 - 1, -1):
                    at = a + t * BH
                    if not masked:
                        _bwd_rows(kind, False, B, H, gates + t * B * GH, hs + t * BH, keep,
                                  NULL, at, P, dA + t * B * GH)
                        continue
                    for bb in range(B):
                        k = t * B + bb
                        if t >= lengths[bb]:
                            _mul(H, at + bb * H, P + bb * H, True)
                            memset(dA + k * GH, 0, GH * sizeof(floating))
                        else:
                            _bwd_rows(kind, False, 1, H, gates + k * GH, hs + k * H, keep,
                                      NULL, at + bb * H, P + bb * H, dA + k * GH)
            # every member's dx at once, its block's rows
            _dx_rows(t0, t1, 0, B, B, D, GH, dA, Wtp, dx)
        else:
            memcpy(dh, R, BH * sizeof(floating))
    if nth > 1:
        PYX_SCAN_BARRIER()   # all of dA
    if c1 > c0:
        # dW[:, c0:c1] = x.T @ dA[:, c0:c1], db[c0:c1] = dA[:, c0:c1].sum(0)
        gemm(True, False, <int> D, <int> (c1 - c0), <int> (T * B), <floating> 1, x, <int> D,
             dA + c0, <int> GH, <floating> 0, dW + c0, <int> GH)
        column_sums(T * B, c1 - c0, dA + c0, GH, acc + c0)


# ---------------------------------------------------------------------------
# Entry points: the shape contract, then the team.
# ---------------------------------------------------------------------------

cdef bint _is(object array, tuple want):
    # array (a typed memoryview, seen as a Python object) has shape `want`
    return tuple(array.shape) == want


cdef int _wrong(str pass_, str name, object array, str want) except -1:
    got = "is None" if array is None else f"has shape {tuple(array.shape)}"
    raise ValueError(f"_scan.{pass_}: {name} {got}, expected {want} (see its docstring)")


cdef int _check_common(str pass_, int kind, bint masked, Py_ssize_t T, Py_ssize_t B,
                       Py_ssize_t D, Py_ssize_t H, x, W, lengths, keep) except -1:
    if kind < 0 or kind >= _N_SCAN_KINDS:
        raise ValueError(f"_scan.{pass_}: kind must be one of 0..{_N_SCAN_KINDS - 1}, got {kind}")
    cdef Py_ssize_t G = _n_gates(kind)
    if H < 1:
        _wrong(pass_, "hs", x, "H >= 1")
    if not _is(x, (T, B, D)):
        _wrong(pass_, "x", x, f"(T, B, D) = ({T}, {B}, {D})")
    if not _is(W, (D, G * H)):
        _wrong(pass_, "W", W, f"(D, GH) = ({D}, {G * H})")
    if masked and not _is(lengths, (B,)):
        _wrong(pass_, "lengths", lengths, f"(B,) = ({B},)")
    if not _is(keep, (G,)):
        _wrong(pass_, "keep", keep, f"(G,) = ({G},)")
    return 0


def forward(int kind, bint masked,
            const floating[:, :, ::1] x,
            const floating[:, ::1] W,
            const floating[::1] b,
            const Py_ssize_t[::1] lengths,
            const floating[::1] keep,
            const floating[:, ::1] pin,
            floating[:, :, ::1] gates,
            floating[:, :, ::1] a,
            floating[:, :, ::1] hs,
            floating[:, ::1] h_last):
    """Forward pass over whole sequences, in place.

    x (T, B, D), W (D, GH), b (GH,), lengths (B,) [used when ``masked``],
    keep (G,): 1 for a learned gate, 0 for a gate pinned to pin[k] (pin
    (G, H), or any placeholder when nothing is pinned). hs (T+1, B, H) holds
    h_0 in hs[0] on entry. Writes gates (T, B, GH) (the activations: the
    sigmoid gates and the linear candidate), a (T, B, H) (the recurrence's
    a_t; 1 past a sequence's length), hs[1:] (the states, 0 past each
    length) and the final state into h_last (B, H). With gates and a None
    (no cache for a backward pass), neither is kept: the kernel holds a
    chunk of rows of each per thread, and, split by blocks of time (B
    smaller than the team), every step's a_t (T * B * H more numbers).
    """
    cdef Py_ssize_t T = hs.shape[0] - 1
    cdef Py_ssize_t B = hs.shape[1]
    cdef Py_ssize_t H = hs.shape[2]
    cdef Py_ssize_t D = x.shape[2]
    cdef Py_ssize_t G, j
    cdef int nt
    cdef floating* prods
    cdef floating* Wp
    _check_common("forward", kind, masked, T, B, D, H, x, W, lengths, keep)
    G = _n_gates(kind)
    if not _is(b, (G * H,)):
        _wrong("forward", "b", b, f"(GH,) = ({G * H},)")
    for j in range(G):
        if keep[j] == 0 and not _is(pin, (G, H)):
            _wrong("forward", "pin", pin, f"(G, H) = ({G}, {H})")
    cdef bint ring = gates is None and a is None
    if not ring and (gates is None or not _is(gates, (T, B, G * H))):
        _wrong("forward", "gates", gates, f"(T, B, GH) = ({T}, {B}, {G * H}), or None with a")
    if not ring and (a is None or not _is(a, (T, B, H))):
        _wrong("forward", "a", a, f"(T, B, H) = ({T}, {B}, {H}), or None with gates")
    if not _is(h_last, (B, H)):
        _wrong("forward", "h_last", h_last, f"(B, H) = ({B}, {H})")
    if B == 0:
        return
    if T == 0:
        h_last[:, :] = hs[0]
        return
    cdef const floating* px = &x[0, 0, 0]
    cdef const floating* pW = &W[0, 0]
    cdef const floating* pb = &b[0]
    cdef const Py_ssize_t* plen = &lengths[0]
    cdef const floating* pkeep = &keep[0]
    cdef const floating* ppin = &pin[0, 0]
    cdef floating* pgates = NULL if ring else &gates[0, 0, 0]
    cdef floating* pa = NULL if ring else &a[0, 0, 0]
    cdef floating* phs = &hs[0, 0, 0]
    cdef floating* plast = &h_last[0, 0]
    cdef Py_ssize_t chunk_rows = _CHUNK_ROWS
    cdef Py_ssize_t chunk = chunk_rows if chunk_rows > B else B
    with nogil:
        nt = team_enter(_wanted_team(T, B, D, G * H))
        prods = <floating*> malloc(2 * nt * B * H * sizeof(floating))
        Wp = <floating*> malloc(pyx_packed_size(D, G * H, panel_width(pW)) * sizeof(floating))
        if ring:
            # a chunk of gates per member; a_t the same by rows or alone, else
            # every step's
            pgates = <floating*> malloc(nt * chunk * G * H * sizeof(floating))
            if nt == 1 or _by_rows(nt, B):
                pa = <floating*> malloc(nt * chunk * H * sizeof(floating))
            else:
                pa = <floating*> malloc(T * B * H * sizeof(floating))
        if prods == NULL or Wp == NULL or pgates == NULL or pa == NULL:
            nt = 0
        elif nt == 1:
            _forward_member(0, 1, kind, masked, T, B, D, H, px, pW, pb, plen, pkeep, ppin,
                            pgates, pa, phs, plast, prods, Wp, chunk_rows, ring)
        else:
            with parallel(num_threads=nt):
                _forward_member(threadid(), PYX_SCAN_TEAM_SIZE(), kind, masked, T, B, D, H,
                                px, pW, pb, plen, pkeep, ppin, pgates, pa, phs, plast, prods,
                                Wp, chunk_rows, ring)
        free(prods)
        free(Wp)
        if ring:
            free(pgates)
            free(pa)
        team_leave()
    if nt == 0:
        raise MemoryError("_scan.forward: no memory for the team's carries")


def backward(int kind, bint masked,
             const floating[:, :, ::1] x,
             const floating[:, ::1] W,
             const Py_ssize_t[::1] lengths,
             const floating[::1] keep,
             const floating[:, :, ::1] gates,
             const floating[:, :, ::1] a,
             const floating[:, :, ::1] hs,
             const floating[:, :, ::1] dy,
             floating[:, ::1] dh,
             floating[:, :, ::1] dA,
             floating[:, :, ::1] dx,
             floating[:, ::1] dW,
             floating[::1] db):
    """Backward pass, in place.

    Reads the forward's x, lengths, keep, gates, a and hs, and dy (T, B, H)
    (ignored past each length). On entry dh (B, H) holds dL/d(final state);
    on exit dL/dh_0. dA (T, B, GH) is scratch (the gradients of the gates'
    pre-activations on exit); writes dx (T, B, D), dW (D, GH) and db (GH,).
    """
    cdef Py_ssize_t T = gates.shape[0]
    cdef Py_ssize_t B = gates.shape[1]
    cdef Py_ssize_t H = hs.shape[2]
    cdef Py_ssize_t D = x.shape[2]
    cdef Py_ssize_t G, GH, j
    cdef int nt
    cdef floating* work
    cdef floating* Wtp
    cdef double* acc
    _check_common("backward", kind, masked, T, B, D, H, x, W, lengths, keep)
    G = _n_gates(kind)
    GH = G * H
    if not _is(gates, (T, B, GH)):
        _wrong("backward", "gates", gates, f"(T, B, GH) = ({T}, {B}, {GH})")
    for name, arr, want in (("a", a, (T, B, H)), ("hs", hs, (T + 1, B, H)),
                            ("dy", dy, (T, B, H)), ("dh", dh, (B, H)),
                            ("dA", dA, (T, B, GH)), ("dx", dx, (T, B, D)),
                            ("dW", dW, (D, GH)), ("db", db, (GH,))):
        if not _is(arr, want):
            _wrong("backward", name, arr, str(want))
    if T * B == 0:
        dW[:, :] = 0
        db[:] = 0
        return
    cdef const floating* px = &x[0, 0, 0]
    cdef const floating* pW = &W[0, 0]
    cdef const Py_ssize_t* plen = &lengths[0]
    cdef const floating* pkeep = &keep[0]
    cdef const floating* pgates = &gates[0, 0, 0]
    cdef const floating* pa = &a[0, 0, 0]
    cdef const floating* phs = &hs[0, 0, 0]
    cdef const floating* pdy = &dy[0, 0, 0]
    cdef floating* pdh = &dh[0, 0]
    cdef floating* pdA = &dA[0, 0, 0]
    cdef floating* pdx = &dx[0, 0, 0]
    cdef floating* pdW = &dW[0, 0]
    with nogil:
        nt = team_enter(_wanted_team(T, B, D, GH))
        work = <floating*> malloc(3 * nt * B * H * sizeof(floating))
        acc = <double*> malloc(GH * sizeof(double))
        Wtp = <floating*> malloc(pyx_packed_size(GH, D, panel_width(pW)) * sizeof(floating))
        if work == NULL or acc == NULL or Wtp == NULL:
            nt = 0
        else:
            for j in range(GH):
                acc[j] = 0
            if nt == 1:
                _backward_member(0, 1, kind, masked, T, B, D, H, px, pW, plen, pkeep, pgates,
                                 pa, phs, pdy, pdh, pdA, pdx, pdW, acc, work, Wtp)
            else:
                with parallel(num_threads=nt):
                    _backward_member(threadid(), PYX_SCAN_TEAM_SIZE(), kind, masked, T, B, D,
                                     H, px, pW, plen, pkeep, pgates, pa, phs, pdy, pdh, pdA,
                                     pdx, pdW, acc, work, Wtp)
            for j in range(GH):
                db[j] = <floating> acc[j]
        free(work)
        free(acc)
        free(Wtp)
        team_leave()
    if nt == 0:
        raise MemoryError("_scan.backward: no memory for the team's carries")
