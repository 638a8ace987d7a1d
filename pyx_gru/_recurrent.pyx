# Design:
# Forward and backward passes over whole sequences for every cell, from one
# sequence driver. Shapes: x (T, B, D), states (B, H), G gate blocks of H
# columns each, all arrays C-contiguous and validated by pyx_gru._cells before
# they get here (this module trusts its inputs and never raises).
#
# Forward:
#   gates = x @ W                          one GEMM over all T*B rows, before the loop
#   for t:   hu = h_{t-1} @ U               one GEMM per step, every gate at once
#            <cell pointwise step>          gates[t] + hu + b -> activations,
#                                           hs[t+1] <- h_t
#            <mask rows with t >= lengths>  carry the state, y = 0
# Backward:
#   for t backwards:
#            dh = dh_next + dy[t]           (active rows only)
#            <cell pointwise step>          dA[t] <- gradients w.r.t. the gates'
#                                           pre-activations, dh_prev <- direct part
#            dh_prev += dA[t] @ U.T         one GEMM per step
#   dW = x.T @ dA, dU = hs[:T].T @ dA, dx = dA @ W.T, db = dA.sum(0)
#                                           one GEMM each, after the loop
# Threads: batch rows are independent through time, so a large enough call
# runs on a team of threads, each taking the whole time loop for its own
# block of rows (no synchronisation between steps) and a share of the GEMMs
# over all rows; see "The sequence driver" below.
# A cell differs from the others only in its pointwise step. Two cells have a
# little more: GRU with the reset gate after the matmul keeps two versions of
# the candidate's gradient (input side dXg, recurrent side r * dXg in dA), and
# GRU with the reset before the matmul runs a second, (B, H) x (H, H) GEMM
# inside its step, on r * h_{t-1} (kept in `extra` for dU).
#
# The cache the backward pass reads is what forward wrote: `gates` holds the
# gate activations (not pre-activations), `hs` (T+1, B, H) the states with
# hs[0] = h0 and hs[t+1] = y[t] (zero past a sequence's length: the rows the
# backward pass reads there are exactly the rows it never uses), `cs` the LSTM
# cell states, `extra` the GRU's per-step n_t = U_g h_{t-1} + b_hg (reset after)
# or r_t * h_{t-1} (reset before).
from cython cimport floating
from cython.parallel cimport parallel, threadid
from libc.string cimport memcpy, memset

from ._blas cimport gemm, team_enter, team_leave
from ._math cimport sigmoid_block, tanh_block

cdef enum:
    _RNN = 0
    _SIMPLE_GRU = 1
    _GRU_AFTER = 2
    _GRU_BEFORE = 3
    _LSTM = 4

RNN = _RNN
SIMPLE_GRU = _SIMPLE_GRU
GRU_AFTER = _GRU_AFTER
GRU_BEFORE = _GRU_BEFORE
LSTM = _LSTM


cdef inline void _pin(floating* a, Py_ssize_t k, Py_ssize_t H,
                      const floating* keep, const floating* pin) noexcept nogil:
    # a[k*H:(k+1)*H] = pin[k] if gate k is pinned (keep[k] == 0)
    if keep[k] == 0:
        memcpy(a + k * H, pin + k * H, H * sizeof(floating))


cdef inline void _sigmoid_gates(floating* a, const floating* hu, const floating* b,
                                Py_ssize_t n_gates, Py_ssize_t H, const floating* keep,
                                const floating* pin) noexcept nogil:
    # The first n_gates gate blocks of one row: a = sigmoid(a + hu + b), then
    # the pinned gates set to their values.
    cdef Py_ssize_t j, k
    for j in range(n_gates * H):
        a[j] += hu[j] + b[j]
    sigmoid_block(a, n_gates * H)
    for k in range(n_gates):
        _pin(a, k, H, keep, pin)


cdef inline floating _mix(floating z, floating h_prev, floating g) noexcept nogil:
    # The update of the simplified GRU (z is f) and the GRU:
    # h = z * h_prev + (1 - z) * g
    cdef floating one = 1
    return z * h_prev + (one - z) * g


cdef inline floating _mix_backward(floating dh, floating h_prev, floating z,
                                   floating g, floating keep_z, floating* da_z,
                                   floating* dh_direct) noexcept nogil:
    # Backward of _mix: da_z = dL/d(z's pre-activation) (0 if z is pinned),
    # dh_direct = the part of dL/dh_prev that bypasses U; returns dL/dg.
    cdef floating one = 1
    da_z[0] = dh * (h_prev - g) * z * (one - z) * keep_z
    dh_direct[0] = dh * z
    return dh * (one - z)


# ---------------------------------------------------------------------------
# Pointwise steps, forward. `a` is gates[t], (B, G*H): on entry x_t @ W, on
# exit the gate activations. `hu` is h_{t-1} @ U, (B, G*H); `b` the bias (G*H,),
# added in the same pass as hu. A sigmoid gate
# k with keep[k] == 0 is pinned to pin[k, :] (``forward(..., gates=...)``).
# Each step works row by row in simple passes (add the recurrent part, apply
# an activation to a contiguous block, combine) so that every pass vectorises.
# ---------------------------------------------------------------------------

cdef void _rnn_forward(Py_ssize_t B, Py_ssize_t H, floating* a,
                       const floating* hu, const floating* b,
                       floating* h) noexcept nogil:
    # h = g = tanh(x W + h_prev U + b)
    cdef Py_ssize_t bb, j
    for bb in range(B):
        for j in range(H):
            a[bb * H + j] += hu[bb * H + j] + b[j]
    tanh_block(a, B * H)
    memcpy(h, a, B * H * sizeof(floating))


cdef void _simple_gru_forward(Py_ssize_t B, Py_ssize_t H, floating* a,
                              const floating* hu, const floating* b,
                              const floating* h_prev,
                              floating* h, const floating* keep,
                              const floating* pin) noexcept nogil:
    # f = sigmoid(.), g = tanh(.), h = f * h_prev + (1 - f) * g
    cdef Py_ssize_t bb, j, o, k
    for bb in range(B):
        o = bb * 2 * H
        _sigmoid_gates(a + o, hu + o, b, 1, H, keep, pin)
        for j in range(H):
            a[o + H + j] += hu[o + H + j] + b[H + j]
        tanh_block(a + o + H, H)
        for j in range(H):
            k = bb * H + j
            h[k] = _mix(a[o + j], h_prev[k], a[o + H + j])


cdef void _gru_after_forward(Py_ssize_t B, Py_ssize_t H, floating* a,
                             const floating* hu, const floating* b,
                             const floating* b_hg,
                             const floating* h_prev, floating* n,
                             floating* h, const floating* keep,
                             const floating* pin) noexcept nogil:
    # z = sigmoid(.), r = sigmoid(.), n = h_prev U_g + b_hg,
    # g = tanh(x W_g + b_g + r * n), h = z * h_prev + (1 - z) * g
    cdef Py_ssize_t bb, j, o, k
    for bb in range(B):
        o = bb * 3 * H
        _sigmoid_gates(a + o, hu + o, b, 2, H, keep, pin)
        for j in range(H):
            k = bb * H + j
            n[k] = hu[o + 2 * H + j] + b_hg[j]
            a[o + 2 * H + j] += b[2 * H + j] + a[o + H + j] * n[k]
        tanh_block(a + o + 2 * H, H)
        for j in range(H):
            k = bb * H + j
            h[k] = _mix(a[o + j], h_prev[k], a[o + 2 * H + j])


cdef void _gru_before_forward(Py_ssize_t B, Py_ssize_t H, floating* a,
                              floating* hu, const floating* b, const floating* U,
                              const floating* h_prev, floating* rh,
                              floating* h, const floating* keep,
                              const floating* pin) noexcept nogil:
    # z = sigmoid(.), r = sigmoid(.), g = tanh(x W_g + b_g + (r * h_prev) U_g),
    # h = z * h_prev + (1 - z) * g. Only hu[:, :2H] is filled on entry.
    cdef Py_ssize_t bb, j, o, k
    cdef Py_ssize_t GH = 3 * H
    for bb in range(B):
        o = bb * GH
        _sigmoid_gates(a + o, hu + o, b, 2, H, keep, pin)
        for j in range(H):
            k = bb * H + j
            rh[k] = a[o + H + j] * h_prev[k]
    # hu[:, 2H:] = (r * h_prev) @ U[:, 2H:]
    gemm(False, False, <int> B, <int> H, <int> H, <floating> 1, rh, <int> H,
         U + 2 * H, <int> GH, <floating> 0, hu + 2 * H, <int> GH)
    for bb in range(B):
        o = bb * GH
        for j in range(H):
            a[o + 2 * H + j] += hu[o + 2 * H + j] + b[2 * H + j]
        tanh_block(a + o + 2 * H, H)
        for j in range(H):
            k = bb * H + j
            h[k] = _mix(a[o + j], h_prev[k], a[o + 2 * H + j])


cdef void _lstm_forward(Py_ssize_t B, Py_ssize_t H, bint peephole,
                        floating* a, const floating* hu, const floating* b,
                        const floating* P,
                        const floating* c_prev, floating* c,
                        floating* h, const floating* keep,
                        const floating* pin) noexcept nogil:
    # i = sigmoid(. + p_i c_prev), f = sigmoid(. + p_f c_prev), g = tanh(.),
    # c = f * c_prev + i * g, o = sigmoid(. + p_o c), h = o * tanh(c)
    cdef Py_ssize_t bb, j, o, k
    for bb in range(B):
        o = bb * 4 * H
        if peephole:
            for j in range(H):
                a[o + j] += P[j] * c_prev[bb * H + j]
                a[o + H + j] += P[H + j] * c_prev[bb * H + j]
        _sigmoid_gates(a + o, hu + o, b, 2, H, keep, pin)
        for j in range(2 * H, 4 * H):
            a[o + j] += hu[o + j] + b[j]
        tanh_block(a + o + 2 * H, H)
        for j in range(H):
            k = bb * H + j
            c[k] = a[o + H + j] * c_prev[k] + a[o + j] * a[o + 2 * H + j]
        if peephole:
            for j in range(H):
                a[o + 3 * H + j] += P[2 * H + j] * c[bb * H + j]
        sigmoid_block(a + o + 3 * H, H)
        _pin(a + o, 3, H, keep, pin)
        # h = o * tanh(c)
        memcpy(h + bb * H, c + bb * H, H * sizeof(floating))
        tanh_block(h + bb * H, H)
        for j in range(H):
            h[bb * H + j] *= a[o + 3 * H + j]


# ---------------------------------------------------------------------------
# Pointwise steps, backward. `dh` is dL/dh_t (B, H); `da` is dA[t] (B, G*H),
# written with dL/d(pre-activation) of each gate on the recurrent side (what
# multiplies U); `dh_prev` gets the part of dL/dh_{t-1} that does not go
# through U (the driver adds da @ U.T). A pinned gate is a constant: its
# derivative is multiplied by keep[k] == 0.
# ---------------------------------------------------------------------------

cdef void _rnn_backward(Py_ssize_t B, Py_ssize_t H, const floating* a,
                        const floating* dh, floating* da,
                        floating* dh_prev) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating one = 1
    for i in range(B * H):
        da[i] = dh[i] * (one - a[i] * a[i])
        dh_prev[i] = 0


cdef void _simple_gru_backward(Py_ssize_t B, Py_ssize_t H, const floating* a,
                               const floating* h_prev, const floating* dh,
                               floating* da, floating* dh_prev,
                               const floating* keep) noexcept nogil:
    cdef Py_ssize_t bb, j, o, k
    cdef floating g, dg, one = 1
    for bb in range(B):
        o = bb * 2 * H
        for j in range(H):
            k = bb * H + j
            g = a[o + H + j]
            dg = _mix_backward(dh[k], h_prev[k], a[o + j], g, keep[0], &da[o + j],
                               &dh_prev[k])
            da[o + H + j] = dg * (one - g * g)


cdef void _gru_after_backward(Py_ssize_t B, Py_ssize_t H, const floating* a,
                              const floating* h_prev, const floating* n,
                              const floating* dh, floating* da,
                              floating* dxg, floating* dh_prev,
                              const floating* keep) noexcept nogil:
    # dxg = dL/d(x W_g + b_g + r * n) (input side);
    # da[:, 2H:] = r * dxg = dL/dn (recurrent side, also dL/db_hg)
    cdef Py_ssize_t bb, j, o, k
    cdef floating z, r, g, dag, one = 1
    for bb in range(B):
        o = bb * 3 * H
        for j in range(H):
            k = bb * H + j
            r = a[o + H + j]
            g = a[o + 2 * H + j]
            dag = _mix_backward(dh[k], h_prev[k], a[o + j], g, keep[0], &da[o + j],
                                &dh_prev[k]) * (one - g * g)
            da[o + H + j] = dag * n[k] * r * (one - r) * keep[1]
            da[o + 2 * H + j] = dag * r
            dxg[k] = dag


cdef void _gru_before_backward(Py_ssize_t B, Py_ssize_t H, const floating* a,
                               const floating* U, const floating* h_prev,
                               const floating* dh, floating* da,
                               floating* drh, floating* dh_prev,
                               const floating* keep) noexcept nogil:
    # drh = dL/d(r * h_prev) = da_g @ U_g.T
    cdef Py_ssize_t bb, j, o, k
    cdef Py_ssize_t GH = 3 * H
    cdef floating z, r, g, one = 1
    for bb in range(B):
        o = bb * GH
        for j in range(H):
            k = bb * H + j
            g = a[o + 2 * H + j]
            da[o + 2 * H + j] = _mix_backward(dh[k], h_prev[k], a[o + j], g, keep[0],
                                              &da[o + j], &dh_prev[k]) * (one - g * g)
    # drh = da[:, 2H:] @ U[:, 2H:].T
    gemm(False, True, <int> B, <int> H, <int> H, <floating> 1, da + 2 * H,
         <int> GH, U + 2 * H, <int> GH, <floating> 0, drh, <int> H)
    for bb in range(B):
        o = bb * GH
        for j in range(H):
            k = bb * H + j
            r = a[o + H + j]
            da[o + H + j] = drh[k] * h_prev[k] * r * (one - r) * keep[1]
            dh_prev[k] += drh[k] * r


cdef void _lstm_backward(Py_ssize_t B, Py_ssize_t H, bint peephole,
                         const floating* a, const floating* P,
                         const floating* c_prev, const floating* c,
                         const floating* dh, const floating* dc,
                         floating* da, floating* dh_prev,
                         floating* dc_prev, const floating* keep,
                         floating* tc) noexcept nogil:
    # dc is dL/dc_t from step t+1; dc_prev gets dL/dc_{t-1}. tc is (B, H)
    # scratch for tanh(c_t), computed in one vectorised pass.
    cdef Py_ssize_t bb, j, o, k
    cdef floating i_, f, g, og, t_, dao, dai, daf, dct, one = 1
    memcpy(tc, c, B * H * sizeof(floating))
    tanh_block(tc, B * H)
    for bb in range(B):
        o = bb * 4 * H
        for j in range(H):
            k = bb * H + j
            i_ = a[o + j]
            f = a[o + H + j]
            g = a[o + 2 * H + j]
            og = a[o + 3 * H + j]
            t_ = tc[k]
            dao = dh[k] * t_ * og * (one - og) * keep[3]
            dct = dc[k] + dh[k] * og * (one - t_ * t_)
            if peephole:
                dct = dct + dao * P[2 * H + j]
            dai = dct * g * i_ * (one - i_) * keep[0]
            daf = dct * c_prev[k] * f * (one - f) * keep[1]
            da[o + j] = dai
            da[o + H + j] = daf
            da[o + 2 * H + j] = dct * i_ * (one - g * g)
            da[o + 3 * H + j] = dao
            dc_prev[k] = dct * f
            if peephole:
                dc_prev[k] = dc_prev[k] + dai * P[j] + daf * P[H + j]
            dh_prev[k] = 0


# ---------------------------------------------------------------------------
# The sequence driver
#
# Each pass runs on a team of threads (OpenMP). Batch rows are independent
# through time (row b of h_t depends only on row b of h_{t-1}), so every
# member runs the whole time loop for its own block of rows, calling BLAS
# single-threaded, with no synchronisation between steps. The GEMMs over all
# rows (the forward's input projection, the backward's weight gradients)
# are split over the team by rows or by columns, between barriers. The team
# has as many threads as the BLAS may use (so threadpoolctl governs both),
# fewer when the batch or the work is small (a team of one is the plain
# serial driver). Every BLAS call runs single-threaded: the BLAS is held at
# one thread while any call is inside (pyx_gru._blas.team_enter), so a result
# depends on the team size only, never on what runs beside it.
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

# A team member gets at least _MIN_ROWS batch rows, and a call is split only
# when its GEMM work (multiply-adds) is at least _MIN_WORK per member: below
# that, waking a second thread costs more than it saves.
cdef Py_ssize_t _MIN_ROWS = 2
cdef double _MIN_WORK = 2e5


def _set_split(Py_ssize_t min_rows, double min_work):
    """Set the team-size thresholds (for the tests and the benchmark);
    returns the previous (min_rows, min_work), to restore them."""
    global _MIN_ROWS, _MIN_WORK
    previous = (_MIN_ROWS, _MIN_WORK)
    _MIN_ROWS = min_rows if min_rows > 1 else 1
    _MIN_WORK = min_work
    return previous


cdef int _wanted_team(Py_ssize_t B, double work) noexcept nogil:
    # The largest team this call is worth: _MIN_ROWS rows and _MIN_WORK
    # multiply-adds per member at least.
    cdef double n = B // _MIN_ROWS
    if n > work / _MIN_WORK:
        n = work / _MIN_WORK
    return <int> n if n < 1024 else 1024


def team_size(Py_ssize_t T, Py_ssize_t B, Py_ssize_t H, Py_ssize_t GH):
    """The number of threads a pass over (T, B) with hidden size H and GH gate
    columns would run on now."""
    cdef int n = team_enter(_wanted_team(B, <double> T * B * H * GH))
    team_leave()
    return n


cdef inline Py_ssize_t _part(Py_ssize_t n, int i, int parts, Py_ssize_t unit) noexcept nogil:
    # Start of part i of [0, n) cut into `parts` nearly equal pieces, at
    # multiples of `unit` (part `parts` starts at n).
    cdef Py_ssize_t units = (n + unit - 1) // unit
    cdef Py_ssize_t s = (units * i // parts) * unit
    return s if s < n else n


cdef void _add_column_sums(Py_ssize_t rows, Py_ssize_t ncols, const floating* m,
                           Py_ssize_t ld, double* acc) noexcept nogil:
    # acc[:ncols] += m[:rows, :ncols].sum(axis=0), in double so that float32
    # sums over T*B rows keep float32 precision.
    cdef Py_ssize_t i, j
    for i in range(rows):
        for j in range(ncols):
            acc[j] += m[i * ld + j]


cdef void _forward_rows(int kind, bint peephole, bint masked,
                        Py_ssize_t T, Py_ssize_t B, Py_ssize_t H, Py_ssize_t GH,
                        Py_ssize_t b0, Py_ssize_t b1,
                        const floating* U, const floating* b, const floating* b_hg,
                        const floating* P, const Py_ssize_t* lengths,
                        floating* gates, floating* hs, floating* cs, floating* extra,
                        floating* h_last, floating* c_last, floating* hu,
                        const floating* keep, const floating* pin) noexcept nogil:
    # The time loop of batch rows [b0, b1). gates[t] holds x_t @ W on entry.
    cdef Py_ssize_t nb = b1 - b0
    cdef Py_ssize_t n_rec = 2 * H if kind == _GRU_BEFORE else GH
    cdef bint lstm = kind == _LSTM
    cdef size_t row = H * sizeof(floating)
    cdef Py_ssize_t t, bb, s
    cdef floating* a
    cdef floating* h
    cdef floating* h_prev
    cdef floating* c_prev = NULL
    cdef floating* hu_rows = hu + b0 * GH
    if nb <= 0:
        return
    for t in range(T):
        s = (t * B + b0) * H            # offset of [t, b0] in (T+1, B, H) arrays
        a = gates + (t * B + b0) * GH
        h = hs + s + B * H              # hs[t + 1, b0]
        # Without lengths, every state is in hs; with them, the carried state
        # lives in h_last / c_last.
        h_prev = h_last + b0 * H if masked else hs + s
        if lstm:
            c_prev = c_last + b0 * H if masked else cs + s
        # hu[b0:b1, :n_rec] = h_prev @ U[:, :n_rec]
        gemm(False, False, <int> nb, <int> n_rec, <int> H, <floating> 1,
             h_prev, <int> H, U, <int> GH, <floating> 0, hu_rows, <int> GH)
        if kind == _RNN:
            _rnn_forward(nb, H, a, hu_rows, b, h)
        elif kind == _SIMPLE_GRU:
            _simple_gru_forward(nb, H, a, hu_rows, b, h_prev, h, keep, pin)
        elif kind == _GRU_AFTER:
            _gru_after_forward(nb, H, a, hu_rows, b, b_hg, h_prev, extra + s, h, keep, pin)
        elif kind == _GRU_BEFORE:
            _gru_before_forward(nb, H, a, hu_rows, b, U, h_prev, extra + s, h, keep, pin)
        else:
            _lstm_forward(nb, H, peephole, a, hu_rows, b, P, c_prev, cs + s + B * H, h,
                          keep, pin)
        if masked:
            for bb in range(b0, b1):
                s = ((t + 1) * B + bb) * H
                if t < lengths[bb]:
                    memcpy(h_last + bb * H, hs + s, row)
                    if lstm:
                        memcpy(c_last + bb * H, cs + s, row)
                else:
                    memset(hs + s, 0, row)
                    if lstm:
                        memcpy(cs + s, c_last + bb * H, row)


cdef void _forward_member(int tid, int nth, int kind, bint peephole, bint masked,
                          Py_ssize_t T, Py_ssize_t B, Py_ssize_t D, Py_ssize_t H,
                          Py_ssize_t GH, const floating* x, const floating* W,
                          const floating* U, const floating* b, const floating* b_hg,
                          const floating* P, const Py_ssize_t* lengths,
                          floating* gates, floating* hs, floating* cs, floating* extra,
                          floating* h_last, floating* c_last, floating* hu,
                          const floating* keep, const floating* pin) noexcept nogil:
    # Member tid of a team of nth: its rows of the input projection, then
    # the time loop of its batch rows.
    cdef Py_ssize_t r0 = _part(T * B, tid, nth, 1)
    cdef Py_ssize_t r1 = _part(T * B, tid + 1, nth, 1)
    # gates[r0:r1] = x[r0:r1] @ W, x and gates seen as (T*B, D) and (T*B, GH)
    # (b is added step by step, in the pass that adds h_prev @ U)
    gemm(False, False, <int> (r1 - r0), <int> GH, <int> D, <floating> 1,
         x + r0 * D, <int> D, W, <int> GH, <floating> 0, gates + r0 * GH, <int> GH)
    PYX_BARRIER()
    _forward_rows(kind, peephole, masked, T, B, H, GH,
                  _part(B, tid, nth, 1), _part(B, tid + 1, nth, 1),
                  U, b, b_hg, P, lengths, gates, hs, cs, extra, h_last, c_last, hu,
                  keep, pin)


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
            const floating[::1] keep,
            const floating[:, ::1] pin):
    """Forward pass over a whole sequence, in place.

    x (T, B, D), W (D, GH), U (H, GH), b (GH,), b_hg (H,) [GRU reset after],
    P (3, H) [LSTM with peepholes], lengths (B,) [used when ``masked``].
    Writes gates (T, B, GH), hs (T+1, B, H) from hs[0], cs (T+1, B, H) from
    cs[0] [LSTM], extra (T, B, H) [GRU], the final state into h_last and
    c_last (B, H) [LSTM], and uses hu (B, GH) as workspace. Arrays a cell does
    not use may be any placeholder of the right dtype. keep (G,) is 1 for a
    learned gate and 0 for a gate pinned to the values pin[k] (pin is (G, H),
    or any placeholder when nothing is pinned).
    """
    cdef Py_ssize_t T = gates.shape[0]
    cdef Py_ssize_t B = gates.shape[1]
    cdef Py_ssize_t GH = gates.shape[2]
    cdef Py_ssize_t H = hs.shape[2]
    cdef Py_ssize_t D = x.shape[2]
    cdef bint lstm = kind == _LSTM
    cdef size_t row = H * sizeof(floating)
    cdef int nt
    if B == 0:
        return
    if T == 0:
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
    cdef const floating* pkeep = &keep[0]
    cdef const floating* ppin = &pin[0, 0]

    with nogil:
        memcpy(ph_last, phs, B * row)
        if lstm:
            memcpy(pc_last, pcs, B * row)
        nt = team_enter(_wanted_team(B, <double> T * B * H * GH))
        if nt == 1:
            _forward_member(0, 1, kind, peephole, masked, T, B, D, H, GH, px, pW, pU, pb,
                            pb_hg, pP, plen, pgates, phs, pcs, pextra, ph_last, pc_last,
                            phu, pkeep, ppin)
        else:
            with parallel(num_threads=nt):
                _forward_member(threadid(), PYX_TEAM_SIZE(), kind, peephole, masked,
                                T, B, D, H, GH, px, pW, pU, pb, pb_hg, pP, plen, pgates,
                                phs, pcs, pextra, ph_last, pc_last, phu, pkeep, ppin)
        team_leave()
        if not masked:
            memcpy(ph_last, phs + T * B * H, B * row)
            if lstm:
                memcpy(pc_last, pcs + T * B * H, B * row)


cdef void _backward_rows(int kind, bint peephole, bint masked,
                         Py_ssize_t B, Py_ssize_t H, Py_ssize_t GH,
                         Py_ssize_t t0, Py_ssize_t t1, Py_ssize_t b0, Py_ssize_t b1,
                         bint into_dh, const floating* U, const floating* P,
                         const Py_ssize_t* lengths, const floating* gates,
                         const floating* hs, const floating* cs, const floating* extra,
                         const floating* dy, floating* dh, floating* dc,
                         floating* dA, floating* dxg, floating* work,
                         const floating* keep) noexcept nogil:
    # Steps t1-1 down to t0 of batch rows [b0, b1). dh/dc (B, H) and
    # work[0]/work[1] take turns holding dL/dh_t and dL/dc_t; `into_dh` says
    # that dh/dc hold them on entry. dA (K, B, GH) and dxg (K, B, H) are the
    # chunk's, row 0 being step t0.
    cdef Py_ssize_t nb = b1 - b0
    cdef Py_ssize_t BH = B * H
    cdef Py_ssize_t n_rec = 2 * H if kind == _GRU_BEFORE else GH
    cdef bint lstm = kind == _LSTM
    cdef size_t row = H * sizeof(floating)
    cdef Py_ssize_t t, bb, j, s, k
    cdef floating* dh_cur = (dh if into_dh else work) + b0 * H
    cdef floating* dh_prev = (work if into_dh else dh) + b0 * H
    cdef floating* dc_cur = (dc if into_dh else work + BH) + b0 * H
    cdef floating* dc_prev = (work + BH if into_dh else dc) + b0 * H
    cdef floating* scratch = work + 2 * BH + b0 * H
    cdef floating* swap
    cdef floating* da
    cdef const floating* a
    if nb <= 0:
        return
    for t in range(t1 - 1, t0 - 1, -1):
        s = (t * B + b0) * H              # offset of [t, b0] in (T+1, B, H) arrays
        k = ((t - t0) * B + b0)           # row of [t - t0, b0] in the chunk
        a = gates + (t * B + b0) * GH
        da = dA + k * GH
        # dh = dh_next + dy[t], for the rows still inside their sequence
        for bb in range(nb):
            if not masked or t < lengths[b0 + bb]:
                for j in range(H):
                    dh_cur[bb * H + j] += dy[s + bb * H + j]
        if kind == _RNN:
            _rnn_backward(nb, H, a, dh_cur, da, dh_prev)
        elif kind == _SIMPLE_GRU:
            _simple_gru_backward(nb, H, a, hs + s, dh_cur, da, dh_prev, keep)
        elif kind == _GRU_AFTER:
            _gru_after_backward(nb, H, a, hs + s, extra + s, dh_cur, da, dxg + k * H,
                                dh_prev, keep)
        elif kind == _GRU_BEFORE:
            _gru_before_backward(nb, H, a, U, hs + s, dh_cur, da, scratch, dh_prev, keep)
        else:
            _lstm_backward(nb, H, peephole, a, P, cs + s, cs + s + BH, dh_cur, dc_cur,
                           da, dh_prev, dc_prev, keep, scratch)
        if masked:
            # Past its length a row's state was carried unchanged: its
            # gradient passes straight through and its gates get none.
            for bb in range(nb):
                if t >= lengths[b0 + bb]:
                    memset(da + bb * GH, 0, GH * sizeof(floating))
                    memcpy(dh_prev + bb * H, dh_cur + bb * H, row)
                    if kind == _GRU_AFTER:
                        memset(dxg + (k + bb) * H, 0, row)
                    if lstm:
                        memcpy(dc_prev + bb * H, dc_cur + bb * H, row)
        # dh_prev += dA[t][b0:b1, :n_rec] @ U[:, :n_rec].T
        gemm(False, True, <int> nb, <int> H, <int> n_rec, <floating> 1, da,
             <int> GH, U, <int> GH, <floating> 1, dh_prev, <int> H)
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
                       const floating* x, const floating* W, const floating* hs,
                       const floating* cs, const floating* extra,
                       const floating* dA, const floating* dxg, floating* dx,
                       floating* dW, floating* dU, double* acc) noexcept nogil:
    # The chunk [t0, t1)'s share of the sums over time, for gate columns
    # [c0, c1) of dW, dU and the biases, and rows [r0, r1) of the chunk's dx.
    # acc: float64 sums of db (GH), db_hg (H) and dP (3H).
    cdef Py_ssize_t rows = (t1 - t0) * B
    cdef Py_ssize_t n_rec = 2 * H if kind == _GRU_BEFORE else GH
    cdef Py_ssize_t H2 = 2 * H
    cdef Py_ssize_t e, s, i, j, t, bb
    cdef const floating* xc = x + t0 * B * D
    cdef const floating* d
    cdef double* acc_hg = acc + GH
    cdef double* acc_p = acc + GH + H
    cdef floating* dxr = dx + (t0 * B + r0) * D
    # Input side: dx = dA @ W.T; for the GRU with the reset after the matmul
    # the candidate's input-side gradient is dxg, not r * dxg (the last H
    # columns of dA).
    if kind == _GRU_AFTER:
        # dx[r0:r1] = dA[r0:r1, :2H] @ W[:, :2H].T + dxg[r0:r1] @ W[:, 2H:].T
        gemm(False, True, <int> (r1 - r0), <int> D, <int> H2, <floating> 1, dA + r0 * GH,
             <int> GH, W, <int> GH, <floating> 0, dxr, <int> D)
        gemm(False, True, <int> (r1 - r0), <int> D, <int> H, <floating> 1, dxg + r0 * H,
             <int> H, W + H2, <int> GH, <floating> 1, dxr, <int> D)
    else:
        # dx[r0:r1] = dA[r0:r1] @ W.T
        gemm(False, True, <int> (r1 - r0), <int> D, <int> GH, <floating> 1, dA + r0 * GH,
             <int> GH, W, <int> GH, <floating> 0, dxr, <int> D)
    # Columns [c0, e) whose input-side gradient is dA:
    # dW[:, c0:e] += x.T @ dA[:, c0:e], db[c0:e] += dA[:, c0:e].sum(0)
    e = c1 if kind != _GRU_AFTER or c1 < H2 else H2
    if e > c0:
        gemm(True, False, <int> D, <int> (e - c0), <int> rows, <floating> 1, xc, <int> D,
             dA + c0, <int> GH, <floating> 1, dW + c0, <int> GH)
        _add_column_sums(rows, e - c0, dA + c0, GH, acc + c0)
    if kind == _GRU_AFTER:
        # The candidate's columns [s, c1) (of the 2H..3H block):
        # dW[:, s:c1] += x.T @ dxg, db += dxg.sum(0), db_hg += (r * dxg).sum(0)
        s = c0 if c0 > H2 else H2
        if c1 > s:
            d = dxg + (s - H2)
            gemm(True, False, <int> D, <int> (c1 - s), <int> rows, <floating> 1, xc,
                 <int> D, d, <int> H, <floating> 1, dW + s, <int> GH)
            _add_column_sums(rows, c1 - s, d, H, acc + s)
            _add_column_sums(rows, c1 - s, dA + s, GH, acc_hg + (s - H2))
    # Recurrent side: dU[:, c0:e] += hs[t0:t1].T @ dA[:, c0:e] (hs[t] is h_{t-1}
    # of step t), for the columns that multiply h_prev
    e = c1 if c1 < n_rec else n_rec
    if e > c0:
        gemm(True, False, <int> H, <int> (e - c0), <int> rows, <floating> 1,
             hs + t0 * B * H, <int> H, dA + c0, <int> GH, <floating> 1, dU + c0, <int> GH)
    if kind == _GRU_BEFORE:
        # dU[:, s:c1] += (r * h_prev).T @ dA[:, s:c1] for the candidate's columns
        s = c0 if c0 > H2 else H2
        if c1 > s:
            gemm(True, False, <int> H, <int> (c1 - s), <int> rows, <floating> 1,
                 extra + t0 * B * H, <int> H, dA + s, <int> GH, <floating> 1, dU + s,
                 <int> GH)
    if kind == _LSTM and peephole:
        # dP += [sum(da_i * c_prev), sum(da_f * c_prev), sum(da_o * c)]: column j
        # of i and f, and 3H + j of o, against c_{t-1}[j] and c_t[j]
        for t in range(t0, t1):
            for bb in range(B):
                d = dA + ((t - t0) * B + bb) * GH
                i = (t * B + bb) * H
                for j in range(c0, c1 if c1 < H2 else H2):
                    acc_p[j] += d[j] * cs[i + (j if j < H else j - H)]
                for j in range(c0 if c0 > 3 * H else 3 * H, c1):
                    acc_p[j - H] += d[j] * cs[i + B * H + j - 3 * H]


cdef void _backward_member(int tid, int nth, int kind, bint peephole, bint masked,
                           Py_ssize_t T, Py_ssize_t B, Py_ssize_t D, Py_ssize_t H,
                           Py_ssize_t GH, Py_ssize_t K,
                           const floating* x, const floating* W, const floating* U,
                           const floating* P, const Py_ssize_t* lengths,
                           const floating* gates, const floating* hs, const floating* cs,
                           const floating* extra, const floating* dy,
                           floating* dh, floating* dc, floating* dA, floating* dxg,
                           floating* work, floating* dx, floating* dW, floating* dU,
                           double* acc, const floating* keep) noexcept nogil:
    # Member tid of a team of nth. Steps are taken backwards in chunks
    # [t0, t1) of K steps: the member runs the chunk's steps for its batch
    # rows, then (after a barrier) its columns of the chunk's weight and bias
    # gradients and its rows of dx; a second barrier keeps the next chunk
    # from overwriting dA before everyone has read it.
    cdef Py_ssize_t b0 = _part(B, tid, nth, 1)
    cdef Py_ssize_t b1 = _part(B, tid + 1, nth, 1)
    cdef Py_ssize_t c0 = _part(GH, tid, nth, 16)
    cdef Py_ssize_t c1 = _part(GH, tid + 1, nth, 16)
    cdef Py_ssize_t t0, t1 = T, rows
    while t1 > 0:
        t0 = t1 - K if t1 > K else 0
        _backward_rows(kind, peephole, masked, B, H, GH, t0, t1, b0, b1,
                       (T - t1) % 2 == 0, U, P, lengths, gates, hs, cs, extra, dy,
                       dh, dc, dA, dxg, work, keep)
        PYX_BARRIER()
        rows = (t1 - t0) * B
        _chunk_grads(kind, peephole, B, D, H, GH, t0, t1, c0, c1,
                     _part(rows, tid, nth, 1), _part(rows, tid + 1, nth, 1),
                     x, W, hs, cs, extra, dA, dxg, dx, dW, dU, acc)
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
             floating[:, :, ::1] dx,
             floating[:, ::1] dW,
             floating[:, ::1] dU,
             floating[::1] db,
             floating[::1] db_hg,
             floating[:, ::1] dP,
             double[::1] acc,
             const floating[::1] keep):
    """Backward pass through time, in place.

    Reads the forward cache (x, gates, hs, cs, extra, lengths) and dy
    (T, B, H). On entry dh and dc (B, H) hold dL/d(final state); on exit
    dL/d(initial state). dA (K, B, GH) and dxg (K, B, H) [GRU reset after]
    hold the gate gradients of one chunk of K steps; work is (3, B, H)
    scratch and acc (GH + 4H,) float64 scratch. Writes dx (T, B, D), and adds
    into dW, dU (which the caller zeroes); writes db, db_hg [GRU reset after]
    and dP [LSTM with peepholes]. keep (G,) is the forward pass's: 0 for a
    pinned gate, whose pre-activation gets no gradient.
    """
    cdef Py_ssize_t T = gates.shape[0]
    cdef Py_ssize_t B = gates.shape[1]
    cdef Py_ssize_t GH = gates.shape[2]
    cdef Py_ssize_t H = hs.shape[2]
    cdef Py_ssize_t D = x.shape[2]
    cdef Py_ssize_t K = dA.shape[0]
    cdef bint lstm = kind == _LSTM
    cdef size_t row = H * sizeof(floating)
    cdef Py_ssize_t j
    cdef int nt
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
    cdef floating* pdx = &dx[0, 0, 0]
    cdef floating* pdW = &dW[0, 0]
    cdef floating* pdU = &dU[0, 0]
    cdef double* pacc = &acc[0]
    cdef const floating* pkeep = &keep[0]

    with nogil:
        for j in range(acc.shape[0]):
            pacc[j] = 0
        nt = team_enter(_wanted_team(B, <double> T * B * H * GH))
        if nt == 1:
            _backward_member(0, 1, kind, peephole, masked, T, B, D, H, GH, K, px, pW, pU,
                             pP, plen, pgates, phs, pcs, pextra, pdy, pdh, pdc, pdA,
                             pdxg, pwork, pdx, pdW, pdU, pacc, pkeep)
        else:
            with parallel(num_threads=nt):
                _backward_member(threadid(), PYX_TEAM_SIZE(), kind, peephole, masked,
                                 T, B, D, H, GH, K, px, pW, pU, pP, plen, pgates, phs,
                                 pcs, pextra, pdy, pdh, pdc, pdA, pdxg, pwork, pdx, pdW,
                                 pdU, pacc, pkeep)
        team_leave()
        # After T steps the gradients of the initial state are in dh/dc when
        # T is even, in work[0]/work[1] when odd.
        if T % 2 == 1:
            memcpy(pdh, pwork, B * row)
            if lstm:
                memcpy(pdc, pwork + B * H, B * row)
        for j in range(GH):
            db[j] = <floating> pacc[j]
        if kind == _GRU_AFTER:
            for j in range(H):
                db_hg[j] = <floating> pacc[GH + j]
        if lstm and peephole:
            for j in range(H):
                dP[0, j] = <floating> pacc[GH + H + j]
                dP[1, j] = <floating> pacc[GH + 2 * H + j]
                dP[2, j] = <floating> pacc[GH + 3 * H + j]


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
