# Design:
# Forward and backward passes over whole sequences for every cell, from one
# sequence driver. Shapes: x (T, B, D), states (B, H), G gate blocks of H
# columns each, all arrays C-contiguous and validated by pyx_gru._cells before
# they get here (this module trusts its inputs and never raises).
#
# Forward:
#   gates = x @ W                          inside the loop, about 256 rows (several
#                                           steps) at a time, against a packed W
#                                           (_gemm.h; the BLAS path, kept for the
#                                           tests and --kernels: one GEMM over all
#                                           T*B rows before the loop)
#   for t:   hu = h_{t-1} @ U               one product per step, every gate at once
#            <cell pointwise step>          gates[t] + hu + b -> activations,
#                                           hs[t+1] <- h_t
#            <mask rows with t >= lengths>  carry the state, y = 0
#   Without a cache (inference), gates, c and extra are rings of a few steps,
#   and the BLAS path projects the input a chunk of steps at a time.
# Backward:
#   for t backwards:
#            dh = dh_next + dy[t]           (active rows only)
#            <cell pointwise step>          dA[t] <- gradients w.r.t. the gates'
#                                           pre-activations, dh_prev <- direct part
#            dh_prev += dA[t] @ U.T         one GEMM per step
#   dW = x.T @ dA, dU = hs[:T].T @ dA, dx = dA @ W.T, db = dA.sum(0)
#                                           one product each per chunk of steps
#                                           (dx against a packed W.T, the others
#                                           from the BLAS)
# Threads: batch rows are independent through time, so a large enough call
# runs on a team of threads, each taking the whole time loop for its own
# block of rows (no synchronisation between steps) and a share of the GEMMs
# over all rows; see "The sequence driver" below.
# A cell differs from the others only in its pointwise step. Two cells have a
# little more: GRU with the reset gate after the matmul keeps two versions of
# the candidate's gradient (input side dXg, recurrent side r * dXg in dA), and
# GRU with the reset before the matmul runs a second, (B, H) x (H, H) GEMM
# inside its step, on r * h_{t-1} (kept in `extra` for dU).
# Files: _kinds.pxi describes each kind (its gate blocks, state parts and
# extra arrays: the driver reads nothing else about a kind), _pointwise.pxi
# holds the pointwise steps and the one dispatch on a kind's number,
# _policy.pxi the team's tuning policy and its setters, _regularisation.pxi
# recurrent dropout and zoneout (which the driver applies around the steps:
# the state entering the products times a mask, the new state zoned out
# after the step; off, a flag tested per step); this file the drivers, the
# shape contract and the entry points.
#
# The cache the backward pass reads is what forward wrote: `gates` holds the
# gate activations (not pre-activations), `hs` (T+1, B, H) the states with
# hs[0] = h0 and hs[t+1] = y[t] (zero past a sequence's length: the rows the
# backward pass reads there are exactly the rows it never uses), `cs` the LSTM
# cell states, `extra` the GRU's per-step n_t = h_{t-1} U_g + b_hg (reset after)
# or r_t * h_{t-1} (reset before).
import os

from cython cimport floating
from cython.parallel cimport parallel, threadid
from libc.string cimport memcpy, memset

from ._blas cimport gemm, team_enter, team_leave
from ._gemm cimport (PYX_PANEL_D, PYX_PANEL_F, PYX_SIMD_AVX512, gemm_packed, pack,
                     panel_width, pyx_packed_size, pyx_set_prefetch_bytes, pyx_simd,
                     pyx_simd_set, pyx_simd_widest)
from ._math cimport (after_back_row, after_row, cell_back_row, cell_row, column_sums,
                     reset_back_row, rnn_back_row, rnn_row, sigmoid_block, sigmoid_row,
                     tanh_block, update_back_row, update_row)

include "_kinds.pxi"
include "_pointwise.pxi"
include "_regularisation.pxi"


# ---------------------------------------------------------------------------
# The sequence driver
#
# Each pass runs on a team of threads (OpenMP), calling BLAS single-threaded.
# The team splits the time loop in one of two ways:
# - by batch rows: row b of h_t depends only on row b of h_{t-1}, so every
#   member runs the whole time loop for its own block of rows, with no
#   synchronisation between steps. Each member's per-step GEMM reads all of
#   U (and the BLAS packs all of it, every step) for a few rows.
# - by hidden units, when U is large: every member runs all rows for its own
#   block of units (their columns in every gate block, which is all a unit's
#   pointwise step needs), reading only its share of U per step, with a
#   barrier per step (the next step's GEMM reads every unit of h_{t-1}).
# The GEMMs over all rows (the forward's input projection on the BLAS path,
# the backward's weight gradients) are split over the team by rows or by
# columns, between barriers. The team has as many threads as the BLAS may use (so
# threadpoolctl governs both), fewer when the work is small (a team of one
# is the plain serial driver). The BLAS is held at one thread while any call
# is inside (pyx_gru._blas.team_enter), so a result depends on the team size
# only, never on what runs beside it.
# ---------------------------------------------------------------------------

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define PYX_TEAM_SIZE() omp_get_num_threads()
    #define PYX_BARRIER() _Pragma("omp barrier")
    #else
    #define PYX_TEAM_SIZE() 1
    #define PYX_BARRIER()
    #endif
    """
    int PYX_TEAM_SIZE() noexcept nogil
    void PYX_BARRIER() noexcept nogil

include "_policy.pxi"


cdef inline Py_ssize_t _part(Py_ssize_t n, int i, int parts, Py_ssize_t unit) noexcept nogil:
    # Start of part i of [0, n) cut into `parts` nearly equal pieces, at
    # multiples of `unit` (part `parts` starts at n).
    cdef Py_ssize_t units = (n + unit - 1) // unit
    cdef Py_ssize_t s = (units * i // parts) * unit
    return s if s < n else n


cdef floating* _packed_or_null(floating[::1] packed, Py_ssize_t B, Py_ssize_t D,
                               Py_ssize_t H, Py_ssize_t GH, bint backward):
    # The packed workspace, if it is on and large enough; else NULL (BLAS).
    cdef Py_ssize_t need = packed_size(B, D, H, GH, backward, sizeof(floating))
    if need == 0 or packed.shape[0] < need:
        return NULL
    return &packed[0]


cdef void _times_blocks(Py_ssize_t nb, Py_ssize_t K, Py_ssize_t H, Py_ssize_t GH,
                        Py_ssize_t k0, Py_ssize_t k1, Py_ssize_t u0, Py_ssize_t nu,
                        const floating* A, const floating* Mp, floating* C,
                        Py_ssize_t groups=1, size_t gsa=0, size_t gsc=0,
                        size_t rs=0) noexcept nogil:
    # C[:, cols] = A @ M[:, cols] for the columns of units [u0, u0+nu) in gate
    # blocks [k0, k1); A (nb, K), C (nb, GH), M (K, GH) packed a gate block at
    # a time (pyx_packed_size(K, H) each): U (K = H) or W (K = D); or, with
    # rs = GH, M itself. The same for `groups` groups of nb rows, gsa and
    # gsc apart in A and C.
    cdef Py_ssize_t k
    cdef size_t pw = panel_width(A)
    cdef size_t blk = pyx_packed_size(K, H, pw)
    if rs:
        # M as it lies, panels pw apart and rows rs = GH apart (H % pw == 0,
        # so no panel reads past M's end): the same products, read in place
        if nu == H:
            gemm_packed(<int> nb, <int> ((k1 - k0) * H), <int> K, A, <int> K, Mp + k0 * H,
                        pw, <floating> 0, C + k0 * H, <int> GH, <int> groups, gsa, gsc, rs)
            return
        for k in range(k0, k1):
            gemm_packed(<int> nb, <int> nu, <int> K, A, <int> K, Mp + k * H + u0,
                        pw, <floating> 0, C + k * H + u0, <int> GH, <int> groups, gsa, gsc, rs)
        return
    if nu == H and H % pw == 0:
        # whole gate blocks of whole panels lie side by side, in M packed as
        # in C: one product for all of them, so that a row or two gets all
        # their panels at once (more independent chains of multiply-adds)
        gemm_packed(<int> nb, <int> ((k1 - k0) * H), <int> K, A, <int> K, Mp + k0 * blk,
                    K * pw, <floating> 0, C + k0 * H, <int> GH, <int> groups, gsa, gsc)
        return
    for k in range(k0, k1):
        # C[:, kH+u0 : kH+u0+nu] = A @ M[:, kH+u0 : kH+u0+nu]
        gemm_packed(<int> nb, <int> nu, <int> K, A, <int> K,
                    Mp + k * blk + (u0 // pw) * K * pw, K * pw, <floating> 0,
                    C + k * H + u0, <int> GH, <int> groups, gsa, gsc)


cdef void _times_gates(Py_ssize_t nb, Py_ssize_t K, Py_ssize_t H, Py_ssize_t GH,
                       Py_ssize_t k0, Py_ssize_t k1, Py_ssize_t u0, Py_ssize_t nu,
                       const floating* A, const floating* M, const floating* Mp,
                       floating* C, size_t rs=0) noexcept nogil:
    # C[:, cols] = A @ M[:, cols] for the columns of units [u0, u0+nu) in
    # gate blocks [k0, k1); A (nb, K), C (nb, GH), M (K, GH): U (K = H) or W
    # (K = D). Mp: M packed (a pyx_packed_size(K, H) block per gate, as
    # _times_blocks reads it), or M itself with rs = GH, or NULL to call
    # the BLAS.
    cdef Py_ssize_t k
    if Mp != NULL:
        _times_blocks(nb, K, H, GH, k0, k1, u0, nu, A, Mp, C, 1, 0, 0, rs)
        return
    if nu == H and k0 == 0:
        # C[:, :k1 H] = A @ M[:, :k1 H]
        gemm(False, False, <int> nb, <int> (k1 * H), <int> K, <floating> 1, A, <int> K,
             M, <int> GH, <floating> 0, C, <int> GH)
        return
    for k in range(k0, k1):
        # C[:, kH+u0 : kH+u0+nu] = A @ M[:, kH+u0 : kH+u0+nu]
        gemm(False, False, <int> nb, <int> nu, <int> K, <floating> 1, A, <int> K,
             M + k * H + u0, <int> GH, <floating> 0, C + k * H + u0, <int> GH)


cdef void _times_ut(Py_ssize_t nb, Py_ssize_t H, Py_ssize_t GH, Py_ssize_t k0,
                    Py_ssize_t nk, Py_ssize_t u0, Py_ssize_t nu, const floating* A,
                    Py_ssize_t lda, const floating* U, const floating* Utp, floating beta,
                    floating* C) noexcept nogil:
    # C[:, :nu] = beta * C + A[:, :nk] @ U[u0:u0+nu, k0:k0+nk].T, C (nb, H)
    # rows. Utp: U.T packed (pyx_packed_size(GH, H)), or NULL to call the BLAS.
    cdef size_t pw = panel_width(U)
    if Utp != NULL:
        gemm_packed(<int> nb, <int> nu, <int> nk, A, <int> lda,
                    Utp + (u0 // pw) * GH * pw + k0 * pw, GH * pw, beta, C, <int> H)
    else:
        gemm(False, True, <int> nb, <int> nu, <int> nk, <floating> 1, A, <int> lda,
             U + u0 * GH + k0, <int> GH, beta, C, <int> H)


cdef void _forward_rows(int kind, bint peephole, bint masked, bint units, bint blocked,
                        Py_ssize_t t0, Py_ssize_t t1, Py_ssize_t Tg, Py_ssize_t Tc,
                        Py_ssize_t Te, Py_ssize_t Kx, Py_ssize_t B, Py_ssize_t D,
                        Py_ssize_t H,
                        Py_ssize_t GH, Py_ssize_t b0, Py_ssize_t b1, Py_ssize_t u0,
                        Py_ssize_t u1, const floating* x, const floating* Wp,
                        const floating* U, const floating* Up, const floating* b,
                        const floating* b_hg, const floating* P,
                        const Py_ssize_t* lengths, floating* gates, floating* hs,
                        floating* cs, floating* extra, floating* h_last, floating* c_last,
                        floating* hu, const floating* keep,
                        const floating* pin, size_t rs, const _Reg* reg) noexcept nogil:
    # Steps [t0, t1) of batch rows [b0, b1) and units [u0, u1). With Wp (W
    # packed; or with rs = GH, Wp = W and Up = U read as they lie), every
    # Kx-th step first writes x_t @ W into the gates of the
    # next Kx steps, its rows and units (t0 = 0; Tg is Kx or T, so that a
    # projection never wraps around the ring of gates);
    # without (Wp NULL), they hold x_t @ W on entry. With `units`,
    # the team splits by units and every member must take every step
    # (barriers), even with an empty share. gates, cs and extra hold Tg, Tc
    # and Te steps, used as rings: step t's gates are gates[t % Tg], its
    # c_{t-1} and c_t are cs[t % Tc] and cs[(t + 1) % Tc], its extra is
    # extra[t % Te] (with a cache, Tg = Te = T and Tc = T + 1: no wrapping).
    # With `blocked` (a ring that only this call reads, split by rows), the
    # ring is laid out by member: this member's Tg steps of nb rows lie
    # together at gates[b0 * Tg], so that no page of it holds another
    # member's rows (the two cores' prefetchers would contend for it).
    # reg: recurrent dropout and zoneout (_regularisation.pxi).
    cdef Py_ssize_t nb = b1 - b0
    cdef Py_ssize_t nu = u1 - u0
    cdef Py_ssize_t n_rec = _KINDS[kind].n_rec * H
    cdef bint lstm = _KINDS[kind].cell_state
    cdef size_t part = nu * sizeof(floating)
    cdef Py_ssize_t t, bb, s, sc, kx
    cdef floating* a
    cdef floating* h
    cdef floating* h_prev
    cdef floating* c_prev = NULL
    cdef floating* c = NULL
    cdef floating* e
    cdef floating* hu_rows = hu + b0 * GH
    cdef const floating* m = <const floating*> reg.drop + b0 * H
    cdef floating* hm = <floating*> reg.hm + b0 * H
    cdef const floating* h_rec
    if nb <= 0 or (nu <= 0 and not units):
        return
    for t in range(t0, t1):
        s = (t * B + b0) * H            # offset of [t, b0] in (T+1, B, H) arrays
        if blocked:
            a = gates + (b0 * Tg + (t % Tg) * nb) * GH + u0
        else:
            a = gates + ((t % Tg) * B + b0) * GH + u0
        h = hs + s + B * H + u0         # hs[t + 1, b0, u0]
        e = extra + ((t % Te) * B + b0) * H
        # Without lengths, every state is in hs; with them, the carried state
        # lives in h_last / c_last.
        h_prev = h_last + b0 * H if masked else hs + s
        if lstm:
            c_prev = (c_last + b0 * H if masked else cs + ((t % Tc) * B + b0) * H) + u0
            c = cs + (((t + 1) % Tc) * B + b0) * H + u0
        h_rec = h_prev
        if reg.dropout:
            # the state enters the product as h_prev * m
            _times_mask(nb, H, nu, h_prev + u0, m + u0, hm + u0)
            h_rec = hm
            if units:
                PYX_BARRIER()   # every unit of h_prev * m is written
        if nu > 0:
            if Wp != NULL and t % Kx == 0:
                kx = Kx if t + Kx <= t1 else t1 - t
                # gates[t:t+kx, b0:b1] = x[t:t+kx, b0:b1] @ W, this member's
                # columns, the steps as groups of rows (a - u0 is gates[t, b0, 0])
                _times_blocks(nb, D, H, GH, 0, GH // H, u0, nu, x + (t * B + b0) * D, Wp,
                              a - u0, kx, B * D, (nb if blocked else B) * GH, rs)
            # hu[b0:b1, :n_rec] = h_prev @ U[:, :n_rec], this member's columns
            _times_gates(nb, H, H, GH, 0, n_rec // H, u0, nu, h_rec, U, Up, hu_rows, rs)
        if units and masked:
            PYX_BARRIER()   # all have read h_last before it changes
        _step_forward(kind, peephole, nb, H, nu, a, hu_rows + u0, b + u0, b_hg + u0, P + u0,
                      h_prev + u0, e + u0, c_prev, c, h, keep, pin + u0)
        if n_rec < GH:
            # the reset before the product: the candidate's blocks take
            # extra[t] = r * h_prev, not h_prev, in a second product
            if reg.dropout:
                # (r * h_prev * m with dropout: the state enters this product too)
                _times_mask(nb, H, nu, e + u0, m + u0, e + u0)
            if units:
                PYX_BARRIER()   # every unit of r * h_prev is written
            if nu > 0:
                # hu[b0:b1, n_rec+u0 : ...] = (r * h_prev) @ U[:, n_rec+u0 : ...], each block
                _times_gates(nb, H, H, GH, n_rec // H, GH // H, u0, nu, e, U, Up, hu_rows, rs)
            _step_forward_second(kind, nb, H, nu, a, hu_rows + u0, b + u0, h_prev + u0, h)
        if reg.zoneout:
            if lstm:
                # c holds the step's c^_t: keep it for the backward, then zone it
                for bb in range(nb):
                    memcpy(e + bb * H + u0, c + bb * H, part)
                _zone_forward(reg, 1, t, B, H, b0, nb, u0, nu, c_prev, c)
            _zone_forward(reg, 0, t, B, H, b0, nb, u0, nu, h_prev + u0, h)
        if masked:
            for bb in range(b0, b1):
                s = ((t + 1) * B + bb) * H + u0
                sc = (((t + 1) % Tc) * B + bb) * H + u0
                if t < lengths[bb]:
                    memcpy(h_last + bb * H + u0, hs + s, part)
                    if lstm:
                        memcpy(c_last + bb * H + u0, cs + sc, part)
                else:
                    memset(hs + s, 0, part)
                    if lstm:
                        memcpy(cs + sc, c_last + bb * H + u0, part)
        if units:
            PYX_BARRIER()   # h_t is complete before the next step reads it


cdef void _forward_member(int tid, int nth, int kind, bint peephole, bint masked,
                          bint units, Py_ssize_t T, Py_ssize_t Tg, Py_ssize_t Tc,
                          Py_ssize_t Te, Py_ssize_t Kx, Py_ssize_t B, Py_ssize_t D,
                          Py_ssize_t H, Py_ssize_t GH, const floating* x,
                          const floating* W, const floating* U, floating* Up,
                          const floating* b, const floating* b_hg, const floating* P,
                          const Py_ssize_t* lengths, floating* gates, floating* hs,
                          floating* cs, floating* extra, floating* h_last,
                          floating* c_last, floating* hu, const floating* keep,
                          const floating* pin, bint raw, const _Reg* reg) noexcept nogil:
    # Member tid of a team of nth. With Up (the packed path): its share of
    # packing U into Up and W after it (unless `raw`: the kernel then reads
    # U and W as they lie), and then the time loop of its batch
    # rows, or of its units, which projects the input of Kx steps at a time
    # itself. Without (Up NULL: the BLAS path): chunks of Tg steps (all T
    # with a cache, one chunk), each its share of the chunk's input
    # projection by rows, then the chunk's time loop.
    cdef Py_ssize_t r0, r1, t1
    cdef Py_ssize_t t0 = 0
    cdef size_t pw = panel_width(U)
    cdef Py_ssize_t G = GH // H
    cdef Py_ssize_t npan = (H + pw - 1) // pw
    cdef Py_ssize_t q0 = _part(2 * G * npan, tid, nth, 1)
    cdef Py_ssize_t q1 = _part(2 * G * npan, tid + 1, nth, 1)
    cdef Py_ssize_t g, p0, p1
    cdef floating* Wp = NULL
    cdef bint split_units = units and nth > 1
    cdef Py_ssize_t b0 = 0 if split_units else _part(B, tid, nth, 1)
    cdef Py_ssize_t b1 = B if split_units else _part(B, tid + 1, nth, 1)
    cdef Py_ssize_t u0 = _part(H, tid, nth, _UNIT_BLOCK) if split_units else 0
    cdef Py_ssize_t u1 = _part(H, tid + 1, nth, _UNIT_BLOCK) if split_units else H
    # the ring of gates by member where only this call reads it (no cache)
    cdef bint blocked = Tg < T and not split_units
    if Up != NULL and raw:
        _forward_rows(kind, peephole, masked, split_units, blocked, 0, T, Tg, Tc, Te, Kx, B,
                      D, H, GH, b0, b1, u0, u1, x, W, U, U, b, b_hg, P, lengths, gates, hs,
                      cs, extra, h_last, c_last, hu, keep, pin, GH, reg)
        return
    if Up != NULL:
        Wp = Up + G * pyx_packed_size(H, H, pw)
        # Up[gate g] = U[:, gH:(g+1)H] packed, then Wp[gate g] the same of W:
        # panels [q0, q1) of all 2G blocks' (U's blocks are g < G)
        for g in range(2 * G):
            p0 = q0 - g * npan if q0 > g * npan else 0
            p1 = q1 - g * npan if q1 < (g + 1) * npan else npan
            if p1 <= p0:
                continue
            if g < G:
                pack(H, H, U + g * H, GH, 1, p0, p1, Up + g * pyx_packed_size(H, H, pw))
            else:
                pack(D, H, W + (g - G) * H, GH, 1, p0, p1,
                     Wp + (g - G) * pyx_packed_size(D, H, pw))
        PYX_BARRIER()   # U and W are packed
        _forward_rows(kind, peephole, masked, split_units, blocked, 0, T, Tg, Tc, Te, Kx, B,
                      D, H, GH, b0, b1, u0, u1, x, Wp, U, Up, b, b_hg, P, lengths, gates, hs,
                      cs, extra, h_last, c_last, hu, keep, pin, 0, reg)
        return
    while t0 < T:
        t1 = t0 + Tg if t0 + Tg < T else T
        # Split by units, each member projects all rows for the columns of
        # its own units, the only gates its steps read (none passes from one
        # core's cache to the other's); by rows, its share of the rows for
        # all columns (u0, u1 = 0, H).
        r0 = 0 if split_units else _part((t1 - t0) * B, tid, nth, 1)
        r1 = (t1 - t0) * B if split_units else _part((t1 - t0) * B, tid + 1, nth, 1)
        # gates[:t1-t0] (as rows) [r0:r1, this member's columns] =
        #     x[t0:t1] (as rows) [r0:r1] @ W[:, this member's columns]
        # (b is added step by step, in the pass that adds h_prev @ U)
        _times_gates(r1 - r0, D, H, GH, 0, G, u0, u1 - u0, x + (t0 * B + r0) * D, W, NULL,
                     gates + r0 * GH)
        PYX_BARRIER()   # the chunk's input projection is complete
        _forward_rows(kind, peephole, masked, split_units, False, t0, t1, Tg, Tc, Te, 1, B, D,
                      H, GH, b0, b1, u0, u1, x, Wp, U, Up, b, b_hg, P, lengths, gates, hs,
                      cs, extra, h_last, c_last, hu, keep, pin, 0, reg)
        PYX_BARRIER()   # everyone is done with the chunk before the next overwrites it
        t0 = t1


# ---------------------------------------------------------------------------
# The shape contract of forward and backward, checked before any nogil code:
# the kernels index every array with no bounds checks. Cell._forward and
# Cell._backward always meet it; the checks make a direct call with arrays
# of the wrong shapes a ValueError, not a crash (a few dozen integer
# comparisons; an array a cell does not use may be any placeholder).
# ---------------------------------------------------------------------------

cdef inline bint _has(const Py_ssize_t* shape, int ndim, Py_ssize_t n0, Py_ssize_t n1=0,
                      Py_ssize_t n2=0) noexcept nogil:
    # shape[:ndim] == (n0, n1, n2)[:ndim]
    return shape[0] == n0 and (ndim < 2 or shape[1] == n1) and (ndim < 3 or shape[2] == n2)


cdef int _wrong(str pass_, str name, object array, str want) except -1:
    raise ValueError(f"_recurrent.{pass_}: {name} has shape {tuple(array.shape)}, "
                     f"expected {want} (see its docstring)")


cdef int _common_problem(int kind, bint peephole, bint masked, Py_ssize_t T, Py_ssize_t B,
                         Py_ssize_t D, Py_ssize_t H, Py_ssize_t GH, const Py_ssize_t* x_shape,
                         const Py_ssize_t* W_shape,
                         const Py_ssize_t* U_shape, const Py_ssize_t* P_shape,
                         const Py_ssize_t* lengths_shape,
                         const Py_ssize_t* keep_shape) noexcept nogil:
    # What both passes read, in shapes only (no Python objects unless one is
    # wrong): 0 when all is well, else which check failed, for _common_error.
    if kind < 0 or kind >= _N_KINDS:
        return 1
    if not _has(x_shape, 2, T, B):
        return 8
    if H < 1 or GH != _KINDS[kind].n_gates * H:
        return 2
    if not _has(W_shape, 2, D, GH):
        return 3
    if not _has(U_shape, 2, H, GH):
        return 4
    if _KINDS[kind].peephole and peephole and not _has(P_shape, 2, _KINDS[kind].peephole, H):
        return 5
    if masked and not _has(lengths_shape, 1, B):
        return 6
    if not _has(keep_shape, 1, GH // H):
        return 7
    return 0


def _common_error(str pass_, int problem, int kind, Py_ssize_t T, Py_ssize_t B, Py_ssize_t D,
                  Py_ssize_t H, Py_ssize_t GH, x, W, U, P, lengths, keep):
    # Raise the ValueError of _common_problem's finding.
    if problem == 1:
        raise ValueError(f"_recurrent.{pass_}: kind must be one of 0..{_N_KINDS - 1}, got {kind}")
    if problem == 2:
        raise ValueError(f"_recurrent.{pass_}: {GH} gate columns for H = {H}, expected "
                         f"{_KINDS[kind].n_gates} * H for kind {kind}")
    name, array, want = {
        3: ("W", W, f"(D, GH) = ({D}, {GH})"), 4: ("U", U, f"(H, GH) = ({H}, {GH})"),
        5: ("P", P, f"(R, H) = ({_KINDS[kind].peephole}, {H})"),
        6: ("lengths", lengths, f"(B,) = ({B},)"),
        7: ("keep", keep, f"(G,) = ({GH // H},)"), 8: ("x", x, f"(T, B, D) = ({T}, {B}, D)"),
    }[problem]
    _wrong(pass_, name, array, want)


def forward(int kind, bint peephole, bint masked,
            const floating[:, :, ::1] x,
            const floating[:, ::1] W,
            const floating[:, ::1] U,
            const floating[::1] b,
            const floating[::1] b_hg,
            const floating[:, ::1] P,
            const Py_ssize_t[::1] lengths,
            floating[:, :, ::1] gates,
            floating[:, :, ::1] hs,
            floating[:, :, ::1] cs,
            floating[:, :, ::1] extra,
            floating[:, ::1] h_last,
            floating[:, ::1] c_last,
            floating[:, ::1] hu,
            floating[::1] packed,
            const floating[::1] keep,
            const floating[:, ::1] pin,
            bint dropout,
            const floating[:, ::1] drop,
            floating[:, ::1] hm,
            int zoneout,
            double zone_h,
            double zone_c,
            unsigned long long key):
    """Forward pass over a whole sequence, in place.

    x (T, B, D), W (D, GH), U (H, GH), b (GH,), b_hg (H,) [GRU reset after],
    P (R, H) [peepholes: R rows, _kinds.pxi; (3, H) for the LSTM, (2, H) for
    the CIFG], lengths (B,) [used when ``masked``].
    Writes gates (T, B, GH), hs (T+1, B, H) from hs[0], cs (T+1, B, H) from
    cs[0] [LSTM], extra (T, B, H) [GRU], the final state into h_last and
    c_last (B, H) [LSTM], and uses hu (B, GH) and packed
    (``packed_size(B, D, H, GH, False, itemsize)``, or any placeholder for the BLAS
    path) as workspace. Arrays a cell does not use may be any placeholder of
    the right dtype. keep (G,) is 1 for a
    learned gate and 0 for a gate pinned to the values pin[k] (pin is (G, H),
    or any placeholder when nothing is pinned).

    T is ``hs.shape[0] - 1``. Without a cache to keep, gates, cs and extra
    may hold fewer steps, used as rings: gates (Tg, B, GH) with 1 <= Tg <= T
    (the input projection then goes Tg steps at a time; with Tg < T, on the
    packed path and a team split by rows, its rows lie by team member, not
    by step), cs (2, B, H)
    from cs[0], extra (1, B, H).

    Recurrent dropout (``dropout``): the state enters the recurrent product
    as h_{t-1} * drop, drop (B, H) (the mask, 0 or 1 / (1 - p)), through hm
    (B, H) workspace. Zoneout (``zoneout`` ZONE_TRAIN or ZONE_EVAL, at rates
    zone_h for h and zone_c for c, in [0, 1)): the masks come from ``key``;
    a cell_state kind then keeps its c^_t in extra ((T, B, H), or a ring
    (1, B, H) without a cache). See _regularisation.pxi.
    """
    cdef Py_ssize_t T = hs.shape[0] - 1
    cdef Py_ssize_t Tg = gates.shape[0]
    cdef Py_ssize_t Tc = cs.shape[0]
    cdef Py_ssize_t Te = extra.shape[0]
    cdef Py_ssize_t B = gates.shape[1]
    cdef Py_ssize_t Kx
    cdef Py_ssize_t GH = gates.shape[2]
    cdef Py_ssize_t H = hs.shape[2]
    cdef Py_ssize_t D = x.shape[2]
    cdef bint lstm, gru
    cdef bint units
    cdef size_t row = H * sizeof(floating)
    cdef int nt, k
    # The contract (see the section above)
    if T < 0 or not _has(hs.shape, 3, T + 1, B, H):
        _wrong("forward", "hs", hs, f"(T + 1, B, H) with B = {B} (from gates), T >= 0")
    nt = _common_problem(kind, peephole, masked, T, B, D, H, GH, x.shape, W.shape, U.shape,
                         P.shape, lengths.shape, keep.shape)
    if nt:
        _common_error("forward", nt, kind, T, B, D, H, GH, x, W, U, P, lengths, keep)
    lstm = _KINDS[kind].cell_state
    gru = _KINDS[kind].extra
    peephole = peephole and _KINDS[kind].peephole
    if T > 0 and not 1 <= Tg <= T:
        _wrong("forward", "gates", gates, f"(Tg, B, GH) with 1 <= Tg <= T = {T}")
    if not _has(b.shape, 1, GH):
        _wrong("forward", "b", b, f"(GH,) = ({GH},)")
    if _KINDS[kind].reset_after and not _has(b_hg.shape, 1, H):
        _wrong("forward", "b_hg", b_hg, f"(H,) = ({H},)")
    if lstm and not (_has(&cs.shape[1], 2, B, H) and (Tc >= 2 or T == 0 and Tc == 1)):
        _wrong("forward", "cs", cs, f"(T + 1, B, H) or a ring (2, B, H), B = {B}, H = {H}")
    if not 0 <= zoneout <= _ZONE_EVAL or not (0 <= zone_h < 1 and 0 <= zone_c < 1):
        raise ValueError(f"_recurrent.forward: zoneout {zoneout} or its rates {zone_h}, "
                         f"{zone_c} out of range")
    if dropout and not _has(drop.shape, 2, B, H):
        _wrong("forward", "drop", drop, f"(B, H) = ({B}, {H})")
    if dropout and not _has(hm.shape, 2, B, H):
        _wrong("forward", "hm", hm, f"(B, H) = ({B}, {H})")
    gru = gru or lstm and zoneout != _ZONE_OFF    # extra holds c^_t
    if gru and not (_has(&extra.shape[1], 2, B, H) and (Te >= 1 or T == 0)):
        _wrong("forward", "extra", extra, f"(T, B, H) or a ring (1, B, H), B = {B}, H = {H}")
    if not _has(h_last.shape, 2, B, H):
        _wrong("forward", "h_last", h_last, f"(B, H) = ({B}, {H})")
    if lstm and not _has(c_last.shape, 2, B, H):
        _wrong("forward", "c_last", c_last, f"(B, H) = ({B}, {H})")
    if not _has(hu.shape, 2, B, GH):
        _wrong("forward", "hu", hu, f"(B, GH) = ({B}, {GH})")
    for k in range(GH // H):
        if keep[k] == 0 and not _has(pin.shape, 2, GH // H, H):
            _wrong("forward", "pin", pin, f"(G, H) = ({GH // H}, {H}) when a gate is pinned")
    # Steps per input projection on the packed path: a ring of gates holds
    # exactly one projection (so the two can never disagree)
    Kx = Tg if Tg < T else _projection_steps(T, B)
    units = _by_units(B, H, GH)
    if B == 0:
        return
    if T <= 0:
        memcpy(&h_last[0, 0], &hs[0, 0, 0], B * row)
        if lstm:
            memcpy(&c_last[0, 0], &cs[0, 0, 0], B * row)
        return
    cdef const floating* px = &x[0, 0, 0]
    cdef const floating* pW = &W[0, 0]
    cdef const floating* pU = &U[0, 0]
    cdef const floating* pb = &b[0]
    cdef const floating* pb_hg = &b_hg[0]
    cdef const floating* pP = &P[0, 0]
    cdef const Py_ssize_t* plen = &lengths[0]
    cdef floating* pgates = &gates[0, 0, 0]
    cdef floating* phs = &hs[0, 0, 0]
    cdef floating* pcs = &cs[0, 0, 0]
    cdef floating* pextra = &extra[0, 0, 0]
    cdef floating* ph_last = &h_last[0, 0]
    cdef floating* pc_last = &c_last[0, 0]
    cdef floating* phu = &hu[0, 0]
    cdef floating* pUp = _packed_or_null(packed, B, D, H, GH, False)
    cdef bint raw = pUp != NULL and _reads_in_place(T, B, H, sizeof(floating))
    cdef const floating* pkeep = &keep[0]
    cdef const floating* ppin = &pin[0, 0]
    cdef _Reg reg = _make_reg(dropout, &drop[0, 0] if dropout else NULL,
                              &hm[0, 0] if dropout else NULL, zoneout, zone_h,
                              zone_c if lstm else 0, key)

    with nogil:
        memcpy(ph_last, phs, B * row)
        if lstm:
            memcpy(pc_last, pcs, B * row)
        nt = team_enter(_wanted_team(T, B, H, GH))
        if nt == 1:
            _forward_member(0, 1, kind, peephole, masked, False, T, Tg, Tc, Te, Kx, B, D, H,
                            GH, px, pW, pU, pUp, pb, pb_hg, pP, plen, pgates, phs, pcs, pextra,
                            ph_last, pc_last, phu, pkeep, ppin, raw, &reg)
        else:
            with parallel(num_threads=nt):
                _forward_member(threadid(), PYX_TEAM_SIZE(), kind, peephole, masked,
                                units, T, Tg, Tc, Te, Kx, B, D, H, GH, px, pW, pU, pUp, pb,
                                pb_hg, pP, plen, pgates, phs, pcs, pextra, ph_last, pc_last,
                                phu, pkeep, ppin, raw, &reg)
        team_leave()
        if not masked:
            memcpy(ph_last, phs + T * B * H, B * row)
            if lstm:
                memcpy(pc_last, pcs + (T % Tc) * B * H, B * row)


cdef void _pass_masked(Py_ssize_t nb, Py_ssize_t H, Py_ssize_t GH, Py_ssize_t u0,
                       Py_ssize_t nu, Py_ssize_t k0, Py_ssize_t k1, Py_ssize_t t,
                       const Py_ssize_t* lengths, floating* da) noexcept nogil:
    # da[bb, k*H+u0 : k*H+u0+nu] = 0 for gate blocks k in [k0, k1), in the
    # rows whose sequence has ended before step t
    cdef Py_ssize_t bb, k
    for bb in range(nb):
        if t >= lengths[bb]:
            for k in range(k0, k1):
                memset(da + bb * GH + k * H + u0, 0, nu * sizeof(floating))


cdef void _backward_rows(int kind, bint peephole, bint masked, bint units,
                         Py_ssize_t B, Py_ssize_t H, Py_ssize_t GH,
                         Py_ssize_t t0, Py_ssize_t t1, Py_ssize_t b0, Py_ssize_t b1,
                         Py_ssize_t u0, Py_ssize_t u1,
                         bint into_dh, const floating* U, const floating* Utp,
                         const floating* P, const Py_ssize_t* lengths,
                         const floating* gates,
                         const floating* hs, const floating* cs, const floating* extra,
                         const floating* dy, floating* dh, floating* dc,
                         floating* dA, floating* dxg, floating* work,
                         const floating* keep, const _Reg* reg) noexcept nogil:
    # Steps t1-1 down to t0 of batch rows [b0, b1) and units [u0, u1). dh/dc
    # (B, H) and work[0]/work[1] take turns holding dL/dh_t and dL/dc_t;
    # `into_dh` says that dh/dc hold them on entry. dA (K, B, GH) and dxg
    # (K, B, H) are the chunk's, row 0 being step t0. With `units`, as in
    # _forward_rows. reg: recurrent dropout (reg.hm the chunk's rows of
    # hs * m, for dU) and zoneout (work[3], work[4]: the parts of dL/dh_t
    # and dL/dc_t that skip the step).
    cdef Py_ssize_t nb = b1 - b0
    cdef Py_ssize_t nu = u1 - u0
    cdef Py_ssize_t BH = B * H
    cdef Py_ssize_t n_rec = _KINDS[kind].n_rec * H
    cdef bint lstm = _KINDS[kind].cell_state
    cdef bint reset_after = _KINDS[kind].reset_after
    cdef Py_ssize_t t, bb, j, s, k
    cdef floating* dh_cur = (dh if into_dh else work) + b0 * H
    cdef floating* dh_prev = (work if into_dh else dh) + b0 * H
    cdef floating* dc_cur = (dc if into_dh else work + BH) + b0 * H
    cdef floating* dc_prev = (work + BH if into_dh else dc) + b0 * H
    cdef floating* scratch = work + 2 * BH + b0 * H
    cdef floating* zh = work + 3 * BH + b0 * H
    cdef floating* zc = work + 4 * BH + b0 * H
    cdef const floating* m = <const floating*> reg.drop + b0 * H
    cdef floating* hm = <floating*> reg.hm
    # c_t as the step made it: c^_t in extra when zoneout changed cs
    cdef const floating* c_step = extra if lstm and reg.zoneout else cs + BH
    cdef floating* swap
    cdef floating* da
    cdef const floating* a
    if nb <= 0 or (nu <= 0 and not units):
        return
    for t in range(t1 - 1, t0 - 1, -1):
        s = (t * B + b0) * H              # offset of [t, b0] in (T+1, B, H) arrays
        k = ((t - t0) * B + b0)           # row of [t - t0, b0] in the chunk
        a = gates + (t * B + b0) * GH + u0
        da = dA + k * GH
        # dh = dh_next + dy[t], for the rows still inside their sequence
        for bb in range(nb):
            if not masked or t < lengths[b0 + bb]:
                for j in range(bb * H + u0, bb * H + u1):
                    dh_cur[j] += dy[s + j]
        if reg.zoneout:
            # what the zoned units kept of h_{t-1} (and c_{t-1}) skips the step
            _zone_backward(reg, 0, t, B, H, b0, nb, u0, nu, masked, lengths + b0,
                           dh_cur + u0, zh + u0)
            if lstm:
                _zone_backward(reg, 1, t, B, H, b0, nb, u0, nu, masked, lengths + b0,
                               dc_cur + u0, zc + u0)
        _step_backward(kind, peephole, nb, H, nu, a, P + u0, hs + s + u0, extra + s + u0,
                       cs + s + u0, c_step + s + u0, dh_cur + u0, dc_cur + u0, da + u0,
                       dxg + k * H + u0, dh_prev + u0, dc_prev + u0, keep, scratch + u0)
        if n_rec < GH:
            # the reset before the product: the candidate's gradient reaches
            # extra[t] = r * h_prev through the second product
            if masked:
                _pass_masked(nb, H, GH, u0, nu, n_rec // H, GH // H, t, lengths + b0, da)
            if units:
                PYX_BARRIER()   # every unit of da_g is written
            if nu > 0:
                # drh[:, u0:u1] = da[:, n_rec:] @ U[u0:u1, n_rec:].T
                _times_ut(nb, H, GH, n_rec, GH - n_rec, u0, nu, da + n_rec, GH, U, Utp, 0,
                          scratch + u0)
                if reg.dropout:
                    # dL/d(r * h_prev) from dL/d(r * h_prev * m)
                    _times_mask(nb, H, nu, scratch + u0, m + u0, scratch + u0)
            _step_backward_second(kind, nb, H, nu, a, hs + s + u0, scratch + u0, da + u0,
                                  dh_prev + u0, keep)
        if masked:
            # Past its length a row's state was carried unchanged: its
            # gradient passes straight through and its gates get none.
            _pass_masked(nb, H, GH, u0, nu, 0, n_rec // H, t, lengths + b0, da)
            for bb in range(nb):
                if t >= lengths[b0 + bb]:
                    j = bb * H + u0
                    memcpy(dh_prev + j, dh_cur + j, nu * sizeof(floating))
                    if reset_after:
                        memset(dxg + k * H + j, 0, nu * sizeof(floating))
                    if lstm:
                        memcpy(dc_prev + j, dc_cur + j, nu * sizeof(floating))
        if units:
            PYX_BARRIER()   # every column of dA[t] is written
        if nu > 0 and reg.dropout:
            # dh_prev[:, u0:u1] += (dA[t][b0:b1, :n_rec] @ U[u0:u1, :n_rec].T) * m,
            # and the chunk's row of h_prev * m for dU
            _times_ut(nb, H, GH, 0, n_rec, u0, nu, da, GH, U, Utp, 0, scratch + u0)
            _add_times_mask(nb, H, nu, scratch + u0, m + u0, dh_prev + u0)
            _times_mask(nb, H, nu, hs + s + u0, m + u0, hm + k * H + u0)
        elif nu > 0:
            # dh_prev[:, u0:u1] += dA[t][b0:b1, :n_rec] @ U[u0:u1, :n_rec].T
            _times_ut(nb, H, GH, 0, n_rec, u0, nu, da, GH, U, Utp, 1, dh_prev + u0)
        if reg.zoneout:
            _add_rows(nb, H, nu, zh + u0, dh_prev + u0)
            if lstm:
                _add_rows(nb, H, nu, zc + u0, dc_prev + u0)
        swap = dh_cur
        dh_cur = dh_prev
        dh_prev = swap
        if lstm:
            swap = dc_cur
            dc_cur = dc_prev
            dc_prev = swap


cdef void _chunk_grads(int kind, bint peephole, Py_ssize_t B, Py_ssize_t D,
                       Py_ssize_t H, Py_ssize_t GH, Py_ssize_t t0, Py_ssize_t t1,
                       Py_ssize_t c0, Py_ssize_t c1, Py_ssize_t r0, Py_ssize_t r1,
                       const floating* x, const floating* W, const floating* Wtp,
                       const floating* hs, const floating* cs, const floating* extra,
                       const floating* dA, const floating* dxg, floating* dx,
                       floating* dW, floating* dU, double* acc, const floating* hrec,
                       const floating* c_step) noexcept nogil:
    # The chunk [t0, t1)'s share of the sums over time, for gate columns
    # [c0, c1) of dW, dU and the biases, and rows [r0, r1) of the chunk's dx.
    # hrec: the chunk's states as they entered the product (hs[t0:t1], or
    # their rows times the dropout mask); c_step: c_t as the step made it
    # (cs[1:], or c^_t in extra with zoneout), for the o-gate's peephole.
    # acc: float64 sums of db (GH), db_hg (H) and dP (R*H <= 3H). Wtp: W.T packed
    # (pyx_packed_size(GH, D)) for dx, or NULL to call the BLAS; packed, a
    # row of dx is one chain of multiply-adds over the gate columns, the same
    # whatever chunk the row falls in (a BLAS may round a row differently
    # with the number of rows).
    cdef Py_ssize_t rows = (t1 - t0) * B
    cdef Py_ssize_t n_rec = _KINDS[kind].n_rec * H
    cdef bint reset_after = _KINDS[kind].reset_after
    cdef Py_ssize_t cand = GH - H      # the last block: the candidate's (o's for an LSTM)
    cdef Py_ssize_t n_peep = _KINDS[kind].peephole    # rows of P
    cdef Py_ssize_t e, s, i, j, k, t, bb
    cdef const floating* xc = x + t0 * B * D
    cdef const floating* d
    cdef double* acc_hg = acc + GH
    cdef double* acc_p = acc + GH + H
    cdef floating* dxr = dx + (t0 * B + r0) * D
    cdef size_t pw = panel_width(W)
    # Input side: dx = dA @ W.T; with the reset after the matmul the
    # candidate's input-side gradient is dxg, not r * dxg (the last H
    # columns of dA).
    if Wtp != NULL and reset_after:
        # dx[r0:r1] = dA[r0:r1, :cand] @ W[:, :cand].T + dxg[r0:r1] @ W[:, cand:].T
        gemm_packed(<int> (r1 - r0), <int> D, <int> cand, dA + r0 * GH, <int> GH, Wtp,
                    GH * pw, <floating> 0, dxr, <int> D)
        gemm_packed(<int> (r1 - r0), <int> D, <int> H, dxg + r0 * H, <int> H, Wtp + cand * pw,
                    GH * pw, <floating> 1, dxr, <int> D)
    elif Wtp != NULL:
        # dx[r0:r1] = dA[r0:r1] @ W.T
        gemm_packed(<int> (r1 - r0), <int> D, <int> GH, dA + r0 * GH, <int> GH, Wtp,
                    GH * pw, <floating> 0, dxr, <int> D)
    elif reset_after:
        # dx[r0:r1] = dA[r0:r1, :cand] @ W[:, :cand].T + dxg[r0:r1] @ W[:, cand:].T
        gemm(False, True, <int> (r1 - r0), <int> D, <int> cand, <floating> 1, dA + r0 * GH,
             <int> GH, W, <int> GH, <floating> 0, dxr, <int> D)
        gemm(False, True, <int> (r1 - r0), <int> D, <int> H, <floating> 1, dxg + r0 * H,
             <int> H, W + cand, <int> GH, <floating> 1, dxr, <int> D)
    else:
        # dx[r0:r1] = dA[r0:r1] @ W.T
        gemm(False, True, <int> (r1 - r0), <int> D, <int> GH, <floating> 1, dA + r0 * GH,
             <int> GH, W, <int> GH, <floating> 0, dxr, <int> D)
    # Columns [c0, e) whose input-side gradient is dA:
    # dW[:, c0:e] += x.T @ dA[:, c0:e], db[c0:e] += dA[:, c0:e].sum(0)
    e = c1 if not reset_after or c1 < cand else cand
    if e > c0:
        gemm(True, False, <int> D, <int> (e - c0), <int> rows, <floating> 1, xc, <int> D,
             dA + c0, <int> GH, <floating> 1, dW + c0, <int> GH)
        column_sums(rows, e - c0, dA + c0, GH, acc + c0)
    if reset_after:
        # The candidate's columns [s, c1) (of the last block, cand..GH):
        # dW[:, s:c1] += x.T @ dxg, db += dxg.sum(0), db_hg += (r * dxg).sum(0)
        s = c0 if c0 > cand else cand
        if c1 > s:
            d = dxg + (s - cand)
            gemm(True, False, <int> D, <int> (c1 - s), <int> rows, <floating> 1, xc,
                 <int> D, d, <int> H, <floating> 1, dW + s, <int> GH)
            column_sums(rows, c1 - s, d, H, acc + s)
            column_sums(rows, c1 - s, dA + s, GH, acc_hg + (s - cand))
    # Recurrent side: dU[:, c0:e] += hs[t0:t1].T @ dA[:, c0:e] (hs[t] is h_{t-1}
    # of step t), for the columns that multiply h_prev
    e = c1 if c1 < n_rec else n_rec
    if e > c0:
        gemm(True, False, <int> H, <int> (e - c0), <int> rows, <floating> 1,
             hrec, <int> H, dA + c0, <int> GH, <floating> 1, dU + c0, <int> GH)
    if n_rec < GH:
        # dU[:, s:c1] += (r * h_prev).T @ dA[:, s:c1] for the columns of the
        # second product (the reset before the matmul: extra is r * h_prev)
        s = c0 if c0 > n_rec else n_rec
        if c1 > s:
            gemm(True, False, <int> H, <int> (c1 - s), <int> rows, <floating> 1,
                 extra + t0 * B * H, <int> H, dA + s, <int> GH, <floating> 1, dU + s,
                 <int> GH)
    if peephole:
        # dP's rows (_kinds.pxi): row k < R - 1 += sum(da_k * c_prev) for the
        # first R - 1 gate blocks, row R - 1 += sum(da_last * c) for the last
        # block (the LSTM: [sum(da_i * c_prev), sum(da_f * c_prev),
        # sum(da_o * c)]); column j of those blocks against c_{t-1}[j] or c_t[j]
        for t in range(t0, t1):
            for bb in range(B):
                d = dA + ((t - t0) * B + bb) * GH
                i = (t * B + bb) * H
                for k in range(n_peep - 1):
                    for j in range(c0 if c0 > k * H else k * H,
                                   c1 if c1 < (k + 1) * H else (k + 1) * H):
                        acc_p[j] += d[j] * cs[i + j - k * H]
                for j in range(c0 if c0 > cand else cand, c1):
                    acc_p[j - cand + (n_peep - 1) * H] += d[j] * c_step[i + j - cand]


cdef void _backward_member(int tid, int nth, int kind, bint peephole, bint masked,
                           bint units, Py_ssize_t T, Py_ssize_t B, Py_ssize_t D,
                           Py_ssize_t H, Py_ssize_t GH, Py_ssize_t K,
                           const floating* x, const floating* W, const floating* U,
                           floating* Utp, const floating* P, const Py_ssize_t* lengths,
                           const floating* gates, const floating* hs, const floating* cs,
                           const floating* extra, const floating* dy,
                           floating* dh, floating* dc, floating* dA, floating* dxg,
                           floating* work, floating* dx, floating* dW, floating* dU,
                           double* acc, const floating* keep, const _Reg* reg) noexcept nogil:
    # Member tid of a team of nth. Steps are taken backwards in chunks
    # [t0, t1) of K steps: the member runs the chunk's steps for its batch
    # rows (or its units), then (after a barrier) its columns of the chunk's
    # weight and bias gradients and its rows of dx; a second barrier keeps
    # the next chunk from overwriting dA before everyone has read it.
    cdef bint split_units = units and nth > 1
    cdef Py_ssize_t b0 = 0 if split_units else _part(B, tid, nth, 1)
    cdef Py_ssize_t b1 = B if split_units else _part(B, tid + 1, nth, 1)
    cdef Py_ssize_t u0 = _part(H, tid, nth, _UNIT_BLOCK) if split_units else 0
    cdef Py_ssize_t u1 = _part(H, tid + 1, nth, _UNIT_BLOCK) if split_units else H
    cdef Py_ssize_t c0 = _part(GH, tid, nth, 16)
    cdef Py_ssize_t c1 = _part(GH, tid + 1, nth, 16)
    cdef Py_ssize_t t0, t1 = T, rows
    cdef bint lstm = _KINDS[kind].cell_state
    cdef size_t pw = panel_width(U)
    cdef Py_ssize_t npan = (H + pw - 1) // pw
    cdef Py_ssize_t npx = (D + pw - 1) // pw
    cdef floating* Wtp = NULL
    if Utp != NULL:
        # Utp = U.T packed, then Wtp = W.T packed: this member's panels of each
        Wtp = Utp + pyx_packed_size(GH, H, pw)
        pack(GH, H, U, 1, GH, _part(npan, tid, nth, 1), _part(npan, tid + 1, nth, 1), Utp)
        pack(GH, D, W, 1, GH, _part(npx, tid, nth, 1), _part(npx, tid + 1, nth, 1), Wtp)
        PYX_BARRIER()
    while t1 > 0:
        t0 = t1 - K if t1 > K else 0
        _backward_rows(kind, peephole, masked, split_units, B, H, GH, t0, t1, b0, b1, u0, u1,
                       (T - t1) % 2 == 0, U, Utp, P, lengths, gates, hs, cs, extra, dy,
                       dh, dc, dA, dxg, work, keep, reg)
        PYX_BARRIER()
        rows = (t1 - t0) * B
        _chunk_grads(kind, peephole, B, D, H, GH, t0, t1, c0, c1,
                     _part(rows, tid, nth, 1), _part(rows, tid + 1, nth, 1),
                     x, W, Wtp, hs, cs, extra, dA, dxg, dx, dW, dU, acc,
                     <const floating*> reg.hm if reg.dropout else hs + t0 * B * H,
                     extra if lstm and reg.zoneout else cs + B * H)
        PYX_BARRIER()
        t1 = t0


def backward(int kind, bint peephole, bint masked,
             const floating[:, :, ::1] x,
             const floating[:, ::1] W,
             const floating[:, ::1] U,
             const floating[:, ::1] P,
             const Py_ssize_t[::1] lengths,
             const floating[:, :, ::1] gates,
             const floating[:, :, ::1] hs,
             const floating[:, :, ::1] cs,
             const floating[:, :, ::1] extra,
             const floating[:, :, ::1] dy,
             floating[:, ::1] dh,
             floating[:, ::1] dc,
             floating[:, :, ::1] dA,
             floating[:, :, ::1] dxg,
             floating[:, :, ::1] work,
             floating[::1] packed,
             floating[:, :, ::1] dx,
             floating[:, ::1] dW,
             floating[:, ::1] dU,
             floating[::1] db,
             floating[::1] db_hg,
             floating[:, ::1] dP,
             double[::1] acc,
             const floating[::1] keep,
             bint dropout,
             const floating[:, ::1] drop,
             floating[:, :, ::1] hmc,
             int zoneout,
             double zone_h,
             double zone_c,
             unsigned long long key):
    """Backward pass through time, in place.

    Reads the forward cache (x, gates, hs, cs, extra, lengths) and dy
    (T, B, H). On entry dh and dc (B, H) hold dL/d(final state); on exit
    dL/d(initial state). dA (K, B, GH) and dxg (K, B, H) [GRU reset after]
    hold the gate gradients of one chunk of K steps; work is (3, B, H)
    scratch, packed ``packed_size(B, D, H, GH, True, itemsize)`` scratch (or any
    placeholder for the BLAS path) and acc (GH + 4H,) float64 scratch. Writes dx (T, B, D), and adds
    into dW, dU (which the caller zeroes); writes db, db_hg [GRU reset after]
    and dP (R, H) [peepholes, as P]. keep (G,) is the forward pass's: 0 for a
    pinned gate, whose pre-activation gets no gradient. dropout, drop,
    zoneout, zone_h, zone_c and key are the forward pass's (extra then
    holds c^_t for a cell_state kind); with dropout, hmc (K, B, H) is
    scratch for a chunk's h_{t-1} * drop rows, and with zoneout work is
    (5, B, H).
    """
    cdef Py_ssize_t T = gates.shape[0]
    cdef Py_ssize_t B = gates.shape[1]
    cdef Py_ssize_t GH = gates.shape[2]
    cdef Py_ssize_t H = hs.shape[2]
    cdef Py_ssize_t D = x.shape[2]
    cdef Py_ssize_t K = dA.shape[0]
    cdef bint lstm, reset_after
    cdef size_t row = H * sizeof(floating)
    cdef Py_ssize_t j
    cdef int nt
    # The contract (see the section above forward)
    nt = _common_problem(kind, peephole, masked, T, B, D, H, GH, x.shape, W.shape, U.shape,
                         P.shape, lengths.shape, keep.shape)
    if nt:
        _common_error("backward", nt, kind, T, B, D, H, GH, x, W, U, P, lengths, keep)
    lstm = _KINDS[kind].cell_state
    reset_after = _KINDS[kind].reset_after
    peephole = peephole and _KINDS[kind].peephole
    if not _has(hs.shape, 2, T + 1, B):
        _wrong("backward", "hs", hs, f"(T + 1, B, H) = ({T + 1}, {B}, H)")
    if lstm and not _has(cs.shape, 3, T + 1, B, H):
        _wrong("backward", "cs", cs, f"(T + 1, B, H) = ({T + 1}, {B}, {H})")
    if not 0 <= zoneout <= _ZONE_EVAL or not (0 <= zone_h < 1 and 0 <= zone_c < 1):
        raise ValueError(f"_recurrent.backward: zoneout {zoneout} or its rates {zone_h}, "
                         f"{zone_c} out of range")
    if ((_KINDS[kind].extra or lstm and zoneout != _ZONE_OFF)
            and not _has(extra.shape, 3, T, B, H)):
        _wrong("backward", "extra", extra, f"(T, B, H) = ({T}, {B}, {H})")
    if dropout and not _has(drop.shape, 2, B, H):
        _wrong("backward", "drop", drop, f"(B, H) = ({B}, {H})")
    if dropout and T * B and not _has(hmc.shape, 3, K, B, H):
        _wrong("backward", "hmc", hmc, f"(K, B, H) = ({K}, {B}, {H})")
    if not _has(dy.shape, 3, T, B, H):
        _wrong("backward", "dy", dy, f"(T, B, H) = ({T}, {B}, {H})")
    if not _has(dh.shape, 2, B, H):
        _wrong("backward", "dh", dh, f"(B, H) = ({B}, {H})")
    if lstm and not _has(dc.shape, 2, B, H):
        _wrong("backward", "dc", dc, f"(B, H) = ({B}, {H})")
    if T * B and not (K >= 1 and _has(&dA.shape[1], 2, B, GH)):
        _wrong("backward", "dA", dA, f"(K, B, GH) with K >= 1, B = {B}, GH = {GH}")
    if reset_after and T * B and not _has(dxg.shape, 3, K, B, H):
        _wrong("backward", "dxg", dxg, f"(K, B, H) = ({K}, {B}, {H})")
    if not _has(work.shape, 3, 5 if zoneout else 3, B, H):
        _wrong("backward", "work", work,
               f"({5 if zoneout else 3}, B, H) = ({5 if zoneout else 3}, {B}, {H})")
    if not _has(dx.shape, 3, T, B, D):
        _wrong("backward", "dx", dx, f"(T, B, D) = ({T}, {B}, {D})")
    if not _has(dW.shape, 2, D, GH):
        _wrong("backward", "dW", dW, f"(D, GH) = ({D}, {GH})")
    if not _has(dU.shape, 2, H, GH):
        _wrong("backward", "dU", dU, f"(H, GH) = ({H}, {GH})")
    if not _has(db.shape, 1, GH):
        _wrong("backward", "db", db, f"(GH,) = ({GH},)")
    if reset_after and not _has(db_hg.shape, 1, H):
        _wrong("backward", "db_hg", db_hg, f"(H,) = ({H},)")
    if lstm and peephole and not _has(dP.shape, 2, _KINDS[kind].peephole, H):
        _wrong("backward", "dP", dP, f"(R, H) = ({_KINDS[kind].peephole}, {H})")
    if acc.shape[0] < GH + 4 * H:
        _wrong("backward", "acc", acc, f"(GH + 4H,) = ({GH + 4 * H},) at least")
    if T * B == 0:
        return
    cdef const floating* px = &x[0, 0, 0]
    cdef const floating* pW = &W[0, 0]
    cdef const floating* pU = &U[0, 0]
    cdef const floating* pP = &P[0, 0]
    cdef const Py_ssize_t* plen = &lengths[0]
    cdef const floating* pgates = &gates[0, 0, 0]
    cdef const floating* phs = &hs[0, 0, 0]
    cdef const floating* pcs = &cs[0, 0, 0]
    cdef const floating* pextra = &extra[0, 0, 0]
    cdef const floating* pdy = &dy[0, 0, 0]
    cdef floating* pdh = &dh[0, 0]
    cdef floating* pdc = &dc[0, 0]
    cdef floating* pdA = &dA[0, 0, 0]
    cdef floating* pdxg = &dxg[0, 0, 0]
    cdef floating* pwork = &work[0, 0, 0]
    cdef floating* pUtp = _packed_or_null(packed, B, D, H, GH, True)
    cdef floating* pdx = &dx[0, 0, 0]
    cdef floating* pdW = &dW[0, 0]
    cdef floating* pdU = &dU[0, 0]
    cdef double* pacc = &acc[0]
    cdef floating* pdP = &dP[0, 0]
    cdef const floating* pkeep = &keep[0]
    cdef _Reg reg = _make_reg(dropout, &drop[0, 0] if dropout else NULL,
                              &hmc[0, 0, 0] if dropout else NULL, zoneout, zone_h,
                              zone_c if lstm else 0, key)

    with nogil:
        for j in range(acc.shape[0]):
            pacc[j] = 0
        nt = team_enter(_wanted_team(T, B, H, GH))
        if nt == 1:
            _backward_member(0, 1, kind, peephole, masked, False, T, B, D, H, GH, K, px,
                             pW, pU, pUtp, pP, plen, pgates, phs, pcs, pextra, pdy, pdh, pdc,
                             pdA, pdxg, pwork, pdx, pdW, pdU, pacc, pkeep, &reg)
        else:
            with parallel(num_threads=nt):
                _backward_member(threadid(), PYX_TEAM_SIZE(), kind, peephole, masked,
                                 _by_units(B, H, GH), T, B, D, H, GH, K, px, pW, pU, pUtp,
                                 pP, plen, pgates, phs, pcs, pextra, pdy, pdh, pdc, pdA,
                                 pdxg, pwork, pdx, pdW, pdU, pacc, pkeep, &reg)
        team_leave()
        # After T steps the gradients of the initial state are in dh/dc when
        # T is even, in work[0]/work[1] when odd.
        if T % 2 == 1:
            memcpy(pdh, pwork, B * row)
            if lstm:
                memcpy(pdc, pwork + B * H, B * row)
        for j in range(GH):
            db[j] = <floating> pacc[j]
        if reset_after:
            for j in range(H):
                db_hg[j] = <floating> pacc[GH + j]
        if lstm and peephole:
            for j in range(_KINDS[kind].peephole * H):
                pdP[j] = <floating> pacc[GH + H + j]


def _activation(str name, floating[::1] v):
    """Apply the kernels' own sigmoid or tanh to v in place (for the tests)."""
    if v.shape[0] == 0:
        return
    if name == "sigmoid":
        with nogil:
            sigmoid_block(&v[0], v.shape[0])
    elif name == "tanh":
        with nogil:
            tanh_block(&v[0], v.shape[0])
    else:
        raise ValueError(f"unknown activation {name!r}")
