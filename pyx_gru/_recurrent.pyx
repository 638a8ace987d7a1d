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
from libc.string cimport memcpy, memset

from ._blas cimport gemm
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
# Helpers of the driver
# ---------------------------------------------------------------------------

cdef void _add_column_sums(Py_ssize_t rows, Py_ssize_t ncols, const floating* m,
                           Py_ssize_t ld, double* acc) noexcept nogil:
    # acc[:ncols] += m[:rows, :ncols].sum(axis=0), in double so that float32
    # sums over T*B rows keep float32 precision.
    cdef Py_ssize_t i, j
    for i in range(rows):
        for j in range(ncols):
            acc[j] += m[i * ld + j]


cdef void _input_grads(Py_ssize_t rows, Py_ssize_t D, Py_ssize_t GH,
                       Py_ssize_t off, Py_ssize_t ncols,
                       const floating* delta, Py_ssize_t ld,
                       const floating* x, const floating* W,
                       floating* dx, floating* dW, floating beta,
                       double* acc_b) noexcept nogil:
    # The input-side gradients of gate columns [off, off + ncols) for `rows`
    # rows whose pre-activation gradients are `delta` (rows, ncols), stride ld.
    # dW[:, off:off+ncols] += x.T @ delta
    gemm(True, False, <int> D, <int> ncols, <int> rows, <floating> 1, x, <int> D,
         delta, <int> ld, <floating> 1, dW + off, <int> GH)
    # dx = beta * dx + delta @ W[:, off:off+ncols].T
    gemm(False, True, <int> rows, <int> D, <int> ncols, <floating> 1, delta,
         <int> ld, W + off, <int> GH, beta, dx, <int> D)
    # db[off:off+ncols] += delta.sum(axis=0)
    _add_column_sums(rows, ncols, delta, ld, acc_b + off)


# ---------------------------------------------------------------------------
# The sequence driver
# ---------------------------------------------------------------------------

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
    cdef Py_ssize_t TB = T * B
    cdef Py_ssize_t n_rec = 2 * H if kind == _GRU_BEFORE else GH
    cdef bint lstm = kind == _LSTM
    cdef size_t row = H * sizeof(floating)
    cdef Py_ssize_t t, i, bb
    cdef floating* a
    cdef floating* h_prev
    cdef floating* h
    cdef floating* c_prev = NULL

    with nogil:
        memcpy(&h_last[0, 0], &hs[0, 0, 0], B * row)
        if lstm:
            memcpy(&c_last[0, 0], &cs[0, 0, 0], B * row)
        if TB > 0:
            # gates = x @ W, all T steps at once (b is added step by step,
            # in the pass that adds h_prev @ U)
            gemm(False, False, <int> TB, <int> GH, <int> D, <floating> 1,
                 &x[0, 0, 0], <int> D, &W[0, 0], <int> GH, <floating> 0,
                 &gates[0, 0, 0], <int> GH)
            for t in range(T):
                a = &gates[t, 0, 0]
                h = &hs[t + 1, 0, 0]
                # Without lengths, every state is in hs; with them, the carried
                # state lives in h_last / c_last.
                h_prev = &h_last[0, 0] if masked else &hs[t, 0, 0]
                if lstm:
                    c_prev = &c_last[0, 0] if masked else &cs[t, 0, 0]
                # hu[:, :n_rec] = h_prev @ U[:, :n_rec]
                gemm(False, False, <int> B, <int> n_rec, <int> H, <floating> 1,
                     h_prev, <int> H, &U[0, 0], <int> GH, <floating> 0,
                     &hu[0, 0], <int> GH)
                if kind == _RNN:
                    _rnn_forward(B, H, a, &hu[0, 0], &b[0], h)
                elif kind == _SIMPLE_GRU:
                    _simple_gru_forward(B, H, a, &hu[0, 0], &b[0], h_prev, h, &keep[0],
                                        &pin[0, 0])
                elif kind == _GRU_AFTER:
                    _gru_after_forward(B, H, a, &hu[0, 0], &b[0], &b_hg[0], h_prev,
                                       &extra[t, 0, 0], h, &keep[0], &pin[0, 0])
                elif kind == _GRU_BEFORE:
                    _gru_before_forward(B, H, a, &hu[0, 0], &b[0], &U[0, 0], h_prev,
                                        &extra[t, 0, 0], h, &keep[0], &pin[0, 0])
                else:
                    _lstm_forward(B, H, peephole, a, &hu[0, 0], &b[0], &P[0, 0],
                                  c_prev, &cs[t + 1, 0, 0], h, &keep[0], &pin[0, 0])
                if masked:
                    for bb in range(B):
                        if t < lengths[bb]:
                            memcpy(&h_last[bb, 0], h + bb * H, row)
                            if lstm:
                                memcpy(&c_last[bb, 0], &cs[t + 1, bb, 0], row)
                        else:
                            memset(h + bb * H, 0, row)
                            if lstm:
                                memcpy(&cs[t + 1, bb, 0], &c_last[bb, 0], row)
            if not masked:
                memcpy(&h_last[0, 0], &hs[T, 0, 0], B * row)
                if lstm:
                    memcpy(&c_last[0, 0], &cs[T, 0, 0], B * row)


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
    cdef Py_ssize_t n_rec = 2 * H if kind == _GRU_BEFORE else GH
    cdef bint lstm = kind == _LSTM
    cdef size_t row = H * sizeof(floating)
    cdef Py_ssize_t t, t0, t1, rows, j, bb
    cdef floating* dh_cur = &dh[0, 0]
    cdef floating* dh_prev = &work[0, 0, 0]
    cdef floating* dc_cur = &dc[0, 0]
    cdef floating* dc_prev = &work[1, 0, 0]
    cdef floating* swap
    cdef floating* da
    cdef floating* d0
    cdef const floating* a
    # acc: float64 sums of db (GH), db_hg (H) and dP (3H)
    cdef double* acc_b = &acc[0]
    cdef double* acc_hg = &acc[GH]
    cdef double* acc_p = &acc[GH + H]

    if T * B == 0:
        return
    with nogil:
        for j in range(acc.shape[0]):
            acc[j] = 0
        # Steps are taken backwards in chunks [t0, t1) of K steps; dA holds
        # one chunk, and the chunk's weight gradients are one GEMM each.
        t1 = T
        while t1 > 0:
            t0 = t1 - K if t1 > K else 0
            for t in range(t1 - 1, t0 - 1, -1):
                a = &gates[t, 0, 0]
                da = &dA[t - t0, 0, 0]
                # dh = dh_next + dy[t], for the rows still inside their sequence
                for bb in range(B):
                    if not masked or t < lengths[bb]:
                        for j in range(H):
                            dh_cur[bb * H + j] += dy[t, bb, j]
                if kind == _RNN:
                    _rnn_backward(B, H, a, dh_cur, da, dh_prev)
                elif kind == _SIMPLE_GRU:
                    _simple_gru_backward(B, H, a, &hs[t, 0, 0], dh_cur, da, dh_prev,
                                         &keep[0])
                elif kind == _GRU_AFTER:
                    _gru_after_backward(B, H, a, &hs[t, 0, 0], &extra[t, 0, 0],
                                        dh_cur, da, &dxg[t - t0, 0, 0], dh_prev, &keep[0])
                elif kind == _GRU_BEFORE:
                    _gru_before_backward(B, H, a, &U[0, 0], &hs[t, 0, 0], dh_cur,
                                         da, &work[2, 0, 0], dh_prev, &keep[0])
                else:
                    _lstm_backward(B, H, peephole, a, &P[0, 0], &cs[t, 0, 0],
                                   &cs[t + 1, 0, 0], dh_cur, dc_cur, da, dh_prev,
                                   dc_prev, &keep[0], &work[2, 0, 0])
                if masked:
                    # Past its length a row's state was carried unchanged: its
                    # gradient passes straight through and its gates get none.
                    for bb in range(B):
                        if t >= lengths[bb]:
                            memset(da + bb * GH, 0, GH * sizeof(floating))
                            memcpy(dh_prev + bb * H, dh_cur + bb * H, row)
                            if kind == _GRU_AFTER:
                                memset(&dxg[t - t0, bb, 0], 0, row)
                            if lstm:
                                memcpy(dc_prev + bb * H, dc_cur + bb * H, row)
                # dh_prev += dA[t][:, :n_rec] @ U[:, :n_rec].T
                gemm(False, True, <int> B, <int> H, <int> n_rec, <floating> 1, da,
                     <int> GH, &U[0, 0], <int> GH, <floating> 1, dh_prev, <int> H)
                swap = dh_cur
                dh_cur = dh_prev
                dh_prev = swap
                if lstm:
                    swap = dc_cur
                    dc_cur = dc_prev
                    dc_prev = swap

            # The chunk's share of the sums over time, rows [t0*B, t1*B).
            rows = (t1 - t0) * B
            d0 = &dA[0, 0, 0]
            # Input side: dW += x.T @ dA, dx = dA @ W.T, db += dA.sum(0)
            if kind == _GRU_AFTER:
                # the candidate's input-side gradient is dxg, not r * dxg
                _input_grads(rows, D, GH, 0, 2 * H, d0, GH, &x[t0, 0, 0], &W[0, 0],
                             &dx[t0, 0, 0], &dW[0, 0], 0, acc_b)
                _input_grads(rows, D, GH, 2 * H, H, &dxg[0, 0, 0], H, &x[t0, 0, 0],
                             &W[0, 0], &dx[t0, 0, 0], &dW[0, 0], 1, acc_b)
                # db_hg += (r * dxg).sum(0)
                _add_column_sums(rows, H, d0 + 2 * H, GH, acc_hg)
            else:
                _input_grads(rows, D, GH, 0, GH, d0, GH, &x[t0, 0, 0], &W[0, 0],
                             &dx[t0, 0, 0], &dW[0, 0], 0, acc_b)
            # Recurrent side: dU += h_prev.T @ dA (hs[t0:t1] is h_{t-1} of each step)
            gemm(True, False, <int> H, <int> n_rec, <int> rows, <floating> 1,
                 &hs[t0, 0, 0], <int> H, d0, <int> GH, <floating> 1, &dU[0, 0], <int> GH)
            if kind == _GRU_BEFORE:
                # dU[:, 2H:] += (r * h_prev).T @ dA[:, 2H:]
                gemm(True, False, <int> H, <int> H, <int> rows, <floating> 1,
                     &extra[t0, 0, 0], <int> H, d0 + 2 * H, <int> GH, <floating> 1,
                     &dU[0, 0] + 2 * H, <int> GH)
            if lstm and peephole:
                # dP += [sum(da_i * c_prev), sum(da_f * c_prev), sum(da_o * c)]
                for t in range(t0, t1):
                    for bb in range(B):
                        for j in range(H):
                            acc_p[j] += dA[t - t0, bb, j] * cs[t, bb, j]
                            acc_p[H + j] += dA[t - t0, bb, H + j] * cs[t, bb, j]
                            acc_p[2 * H + j] += dA[t - t0, bb, 3 * H + j] * cs[t + 1, bb, j]
            t1 = t0

        if dh_cur != &dh[0, 0]:
            memcpy(&dh[0, 0], dh_cur, B * row)
        if lstm and dc_cur != &dc[0, 0]:
            memcpy(&dc[0, 0], dc_cur, B * row)
        for j in range(GH):
            db[j] = <floating> acc_b[j]
        if kind == _GRU_AFTER:
            for j in range(H):
                db_hg[j] = <floating> acc_hg[j]
        if lstm and peephole:
            for j in range(H):
                dP[0, j] = <floating> acc_p[j]
                dP[1, j] = <floating> acc_p[H + j]
                dP[2, j] = <floating> acc_p[2 * H + j]


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
