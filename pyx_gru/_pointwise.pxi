# The pointwise steps of every cell kind, forward and backward (included by
# _recurrent.pyx, so that they compile into the same C file as the driver
# and inline into its time loop as before).
#
# A cell is only its pointwise step: the driver (_recurrent.pyx) takes the
# products, the time loop, the masks and the threads, and calls the step of
# its kind through _step_forward / _step_backward at the end of this file,
# once per step (the one place that tests a kind's number). A kind whose
# reset gate acts before the product (n_rec < n_gates in _kinds.pxi) has a
# second half, _step_forward_second / _step_backward_second, which the
# driver calls after the second product of the step.

# Every kind's forward step takes a row in one call of a function per
# vector path (_activations.h) where no gate is pinned, with the adds in
# the activations' loops, and so does every kind's backward step (the
# LSTM's and the CIFG's without peepholes, both ways): Cython compiles the
# passes below for the baseline x86-64, where most of their loops ran one
# element at a time. _set_fused_rows(False) sends them to the passes below,
# which do the same operations (the tests check that both give bitwise the
# same results).
cdef bint _FUSED_ROWS = True


def _set_fused_rows(bint on):
    """Take the row functions of every kind's forward and backward steps,
    or the passes of the general step (for the tests and timing); returns
    the previous setting."""
    global _FUSED_ROWS
    previous = _FUSED_ROWS
    _FUSED_ROWS = on
    return previous


cdef inline void _pin(floating* a, Py_ssize_t k, Py_ssize_t H, Py_ssize_t n,
                      const floating* keep, const floating* pin) noexcept nogil:
    # a[k*H : k*H+n] = pin[k, :n] if gate k is pinned (keep[k] == 0)
    if keep[k] == 0:
        memcpy(a + k * H, pin + k * H, n * sizeof(floating))


cdef inline void _activate(floating* a, Py_ssize_t B, Py_ssize_t ld, Py_ssize_t n,
                           bint tanh) noexcept nogil:
    # tanh or sigmoid of a[bb*ld : bb*ld + n] for each of B rows, in one call
    # when those rows are one contiguous block
    cdef Py_ssize_t bb
    if n == ld:
        if tanh:
            tanh_block(a, B * n)
        else:
            sigmoid_block(a, B * n)
        return
    for bb in range(B):
        if tanh:
            tanh_block(a + bb * ld, n)
        else:
            sigmoid_block(a + bb * ld, n)


cdef inline void _sigmoid_gates(floating* a, const floating* hu, const floating* b,
                                Py_ssize_t n_gates, Py_ssize_t H, Py_ssize_t n,
                                const floating* keep, const floating* pin) noexcept nogil:
    # The first n_gates gate blocks of one row: a = sigmoid(a + hu + b), then
    # the pinned gates set to their values.
    cdef Py_ssize_t j, k
    for k in range(n_gates):
        for j in range(k * H, k * H + n):
            a[j] += hu[j] + b[j]
    if n == H:
        sigmoid_block(a, n_gates * H)
    else:
        for k in range(n_gates):
            sigmoid_block(a + k * H, n)
    for k in range(n_gates):
        _pin(a, k, H, n, keep, pin)


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
# A step handles the first n of its H hidden units (n = H, or a team member's
# share): every pointer comes offset to the first unit, and H is the stride
# (the width of a gate block, and of a state row).
# ---------------------------------------------------------------------------

cdef void _rnn_forward(Py_ssize_t B, Py_ssize_t H, Py_ssize_t n, floating* a,
                       const floating* hu, const floating* b,
                       floating* h) noexcept nogil:
    # h = g = tanh(x W + h_prev U + b)
    cdef Py_ssize_t bb, j
    if _FUSED_ROWS:
        for bb in range(B):
            rnn_row(n, a + bb * H, hu + bb * H, b, h + bb * H)
        return
    for bb in range(B):
        for j in range(n):
            a[bb * H + j] += hu[bb * H + j] + b[j]
    _activate(a, B, H, n, True)
    for bb in range(B):
        memcpy(h + bb * H, a + bb * H, n * sizeof(floating))


cdef void _simple_gru_forward(Py_ssize_t B, Py_ssize_t H, Py_ssize_t n, floating* a,
                              const floating* hu, const floating* b,
                              const floating* h_prev,
                              floating* h, const floating* keep,
                              const floating* pin) noexcept nogil:
    # f = sigmoid(.), g = tanh(.), h = f * h_prev + (1 - f) * g
    cdef Py_ssize_t bb, j, o, k
    if _FUSED_ROWS and keep[0] != 0:
        for bb in range(B):
            o = bb * 2 * H
            sigmoid_row(n, H, 1, a + o, hu + o, b)
            update_row(n, a + o, a + o + H, hu + o + H, b + H, h_prev + bb * H, h + bb * H)
        return
    for bb in range(B):
        o = bb * 2 * H
        _sigmoid_gates(a + o, hu + o, b, 1, H, n, keep, pin)
        for j in range(n):
            a[o + H + j] += hu[o + H + j] + b[H + j]
        tanh_block(a + o + H, n)
        for j in range(n):
            k = bb * H + j
            h[k] = _mix(a[o + j], h_prev[k], a[o + H + j])


cdef void _gru_after_forward(Py_ssize_t B, Py_ssize_t H, Py_ssize_t n, floating* a,
                             const floating* hu, const floating* b,
                             const floating* b_hg,
                             const floating* h_prev, floating* nn,
                             floating* h, const floating* keep,
                             const floating* pin) noexcept nogil:
    # z = sigmoid(.), r = sigmoid(.), n = h_prev U_g + b_hg (kept in nn),
    # g = tanh(x W_g + b_g + r * n), h = z * h_prev + (1 - z) * g
    cdef Py_ssize_t bb, j, o, k
    if _FUSED_ROWS and keep[0] != 0 and keep[1] != 0:
        # the same, a row a call, per vector path (_activations.h)
        for bb in range(B):
            after_row(False, n, H, a + bb * 3 * H, hu + bb * 3 * H, b, b_hg,
                      h_prev + bb * H, nn + bb * H, h + bb * H)
        return
    for bb in range(B):
        o = bb * 3 * H
        _sigmoid_gates(a + o, hu + o, b, 2, H, n, keep, pin)
        for j in range(n):
            k = bb * H + j
            nn[k] = hu[o + 2 * H + j] + b_hg[j]
            a[o + 2 * H + j] += b[2 * H + j] + a[o + H + j] * nn[k]
        tanh_block(a + o + 2 * H, n)
        for j in range(n):
            k = bb * H + j
            h[k] = _mix(a[o + j], h_prev[k], a[o + 2 * H + j])


cdef void _gru_before_gates(Py_ssize_t B, Py_ssize_t H, Py_ssize_t n, floating* a,
                            const floating* hu, const floating* b,
                            const floating* h_prev, floating* rh,
                            const floating* keep, const floating* pin) noexcept nogil:
    # First half of the GRU with the reset before the matmul: z = sigmoid(.),
    # r = sigmoid(.), rh = r * h_prev. Only hu[:, :2H] is filled on entry.
    cdef Py_ssize_t bb, j, o, k
    cdef bint row = _FUSED_ROWS and keep[0] != 0 and keep[1] != 0
    for bb in range(B):
        o = bb * 3 * H
        if row:
            sigmoid_row(n, H, 2, a + o, hu + o, b)
        else:
            _sigmoid_gates(a + o, hu + o, b, 2, H, n, keep, pin)
        for j in range(n):
            k = bb * H + j
            rh[k] = a[o + H + j] * h_prev[k]


cdef void _gru_before_forward(Py_ssize_t B, Py_ssize_t H, Py_ssize_t n, floating* a,
                              const floating* hu, const floating* b,
                              const floating* h_prev, floating* h) noexcept nogil:
    # Second half, once the driver has put (r * h_prev) @ U_g in hu[:, 2H:]:
    # g = tanh(x W_g + b_g + (r * h_prev) U_g), h = z * h_prev + (1 - z) * g.
    cdef Py_ssize_t bb, j, o, k
    if _FUSED_ROWS:
        for bb in range(B):
            o = bb * 3 * H
            update_row(n, a + o, a + o + 2 * H, hu + o + 2 * H, b + 2 * H, h_prev + bb * H,
                       h + bb * H)
        return
    for bb in range(B):
        o = bb * 3 * H
        for j in range(n):
            a[o + 2 * H + j] += hu[o + 2 * H + j] + b[2 * H + j]
        tanh_block(a + o + 2 * H, n)
        for j in range(n):
            k = bb * H + j
            h[k] = _mix(a[o + j], h_prev[k], a[o + 2 * H + j])


cdef void _lstm_forward(Py_ssize_t B, Py_ssize_t H, Py_ssize_t n, bint peephole,
                        floating* a, const floating* hu, const floating* b,
                        const floating* P,
                        const floating* c_prev, floating* c,
                        floating* h, const floating* keep,
                        const floating* pin) noexcept nogil:
    # i = sigmoid(. + p_i c_prev), f = sigmoid(. + p_f c_prev), g = tanh(.),
    # c = f * c_prev + i * g, o = sigmoid(. + p_o c), h = o * tanh(c)
    cdef Py_ssize_t bb, j, o, k
    if _FUSED_ROWS and keep[0] != 0 and keep[1] != 0 and keep[3] != 0:
        # the same, a row a call, per vector path (_activations.h)
        for bb in range(B):
            cell_row(False, n, H, a + bb * 4 * H, hu + bb * 4 * H, b, P if peephole else NULL,
                     c_prev + bb * H, c + bb * H, h + bb * H)
        return
    for bb in range(B):
        o = bb * 4 * H
        if peephole:
            for j in range(n):
                a[o + j] += P[j] * c_prev[bb * H + j]
                a[o + H + j] += P[H + j] * c_prev[bb * H + j]
        _sigmoid_gates(a + o, hu + o, b, 2, H, n, keep, pin)
        for j in range(n):
            a[o + 2 * H + j] += hu[o + 2 * H + j] + b[2 * H + j]
            a[o + 3 * H + j] += hu[o + 3 * H + j] + b[3 * H + j]
        tanh_block(a + o + 2 * H, n)
        for j in range(n):
            k = bb * H + j
            c[k] = a[o + H + j] * c_prev[k] + a[o + j] * a[o + 2 * H + j]
        if peephole:
            for j in range(n):
                a[o + 3 * H + j] += P[2 * H + j] * c[bb * H + j]
        sigmoid_block(a + o + 3 * H, n)
        _pin(a + o, 3, H, n, keep, pin)
        # h = o * tanh(c)
        memcpy(h + bb * H, c + bb * H, n * sizeof(floating))
        tanh_block(h + bb * H, n)
        for j in range(n):
            h[bb * H + j] *= a[o + 3 * H + j]


cdef void _mgu_after_forward(Py_ssize_t B, Py_ssize_t H, Py_ssize_t n, floating* a,
                             const floating* hu, const floating* b,
                             const floating* b_hg,
                             const floating* h_prev, floating* nn,
                             floating* h, const floating* keep,
                             const floating* pin) noexcept nogil:
    # f = sigmoid(.), n = h_prev U_g + b_hg (kept in nn),
    # g = tanh(x W_g + b_g + f * n), h = f * h_prev + (1 - f) * g
    cdef Py_ssize_t bb, j, o, k
    if _FUSED_ROWS and keep[0] != 0:
        for bb in range(B):
            after_row(True, n, H, a + bb * 2 * H, hu + bb * 2 * H, b, b_hg,
                      h_prev + bb * H, nn + bb * H, h + bb * H)
        return
    for bb in range(B):
        o = bb * 2 * H
        _sigmoid_gates(a + o, hu + o, b, 1, H, n, keep, pin)
        for j in range(n):
            k = bb * H + j
            nn[k] = hu[o + H + j] + b_hg[j]
            a[o + H + j] += b[H + j] + a[o + j] * nn[k]
        tanh_block(a + o + H, n)
        for j in range(n):
            k = bb * H + j
            h[k] = _mix(a[o + j], h_prev[k], a[o + H + j])


cdef void _mgu_before_gates(Py_ssize_t B, Py_ssize_t H, Py_ssize_t n, floating* a,
                            const floating* hu, const floating* b,
                            const floating* h_prev, floating* fh,
                            const floating* keep, const floating* pin) noexcept nogil:
    # First half of the MGU with the reset before the matmul: f = sigmoid(.),
    # fh = f * h_prev. Only hu[:, :H] is filled on entry.
    cdef Py_ssize_t bb, j, o, k
    cdef bint row = _FUSED_ROWS and keep[0] != 0
    for bb in range(B):
        o = bb * 2 * H
        if row:
            sigmoid_row(n, H, 1, a + o, hu + o, b)
        else:
            _sigmoid_gates(a + o, hu + o, b, 1, H, n, keep, pin)
        for j in range(n):
            k = bb * H + j
            fh[k] = a[o + j] * h_prev[k]


cdef void _mgu_before_forward(Py_ssize_t B, Py_ssize_t H, Py_ssize_t n, floating* a,
                              const floating* hu, const floating* b,
                              const floating* h_prev, floating* h) noexcept nogil:
    # Second half, once the driver has put (f * h_prev) @ U_g in hu[:, H:]:
    # g = tanh(x W_g + b_g + (f * h_prev) U_g), h = f * h_prev + (1 - f) * g.
    cdef Py_ssize_t bb, j, o, k
    if _FUSED_ROWS:
        for bb in range(B):
            o = bb * 2 * H
            update_row(n, a + o, a + o + H, hu + o + H, b + H, h_prev + bb * H, h + bb * H)
        return
    for bb in range(B):
        o = bb * 2 * H
        for j in range(n):
            a[o + H + j] += hu[o + H + j] + b[H + j]
        tanh_block(a + o + H, n)
        for j in range(n):
            k = bb * H + j
            h[k] = _mix(a[o + j], h_prev[k], a[o + H + j])


cdef void _cifg_forward(Py_ssize_t B, Py_ssize_t H, Py_ssize_t n, bint peephole,
                        floating* a, const floating* hu, const floating* b,
                        const floating* P,
                        const floating* c_prev, floating* c,
                        floating* h, const floating* keep,
                        const floating* pin) noexcept nogil:
    # The LSTM with coupled input and forget gates (i = 1 - f), gate blocks
    # f, g, o and P = [p_f; p_o]: f = sigmoid(. + p_f c_prev), g = tanh(.),
    # c = f * c_prev + (1 - f) * g, o = sigmoid(. + p_o c), h = o * tanh(c)
    cdef Py_ssize_t bb, j, o, k
    if _FUSED_ROWS and keep[0] != 0 and keep[2] != 0:
        # the same, a row a call, per vector path (_activations.h)
        for bb in range(B):
            cell_row(True, n, H, a + bb * 3 * H, hu + bb * 3 * H, b, P if peephole else NULL,
                     c_prev + bb * H, c + bb * H, h + bb * H)
        return
    for bb in range(B):
        o = bb * 3 * H
        if peephole:
            for j in range(n):
                a[o + j] += P[j] * c_prev[bb * H + j]
        _sigmoid_gates(a + o, hu + o, b, 1, H, n, keep, pin)
        for j in range(n):
            a[o + H + j] += hu[o + H + j] + b[H + j]
            a[o + 2 * H + j] += hu[o + 2 * H + j] + b[2 * H + j]
        tanh_block(a + o + H, n)
        for j in range(n):
            k = bb * H + j
            c[k] = _mix(a[o + j], c_prev[k], a[o + H + j])
        if peephole:
            for j in range(n):
                a[o + 2 * H + j] += P[H + j] * c[bb * H + j]
        sigmoid_block(a + o + 2 * H, n)
        _pin(a + o, 2, H, n, keep, pin)
        # h = o * tanh(c)
        memcpy(h + bb * H, c + bb * H, n * sizeof(floating))
        tanh_block(h + bb * H, n)
        for j in range(n):
            h[bb * H + j] *= a[o + 2 * H + j]


# ---------------------------------------------------------------------------
# Pointwise steps, backward. `dh` is dL/dh_t (B, H); `da` is dA[t] (B, G*H),
# written with dL/d(pre-activation) of each gate on the recurrent side (what
# multiplies U); `dh_prev` gets the part of dL/dh_{t-1} that does not go
# through U (the driver adds da @ U.T). A pinned gate is a constant: its
# derivative is multiplied by keep[k] == 0. As forward: the first n units,
# pointers offset to the first, H the stride.
# ---------------------------------------------------------------------------

cdef void _rnn_backward(Py_ssize_t B, Py_ssize_t H, Py_ssize_t n, const floating* a,
                        const floating* dh, floating* da,
                        floating* dh_prev) noexcept nogil:
    cdef Py_ssize_t bb, j, k
    cdef floating one = 1
    if _FUSED_ROWS and n == H:
        # one gate block: all rows are one block
        rnn_back_row(B * H, a, dh, da, dh_prev)
        return
    if _FUSED_ROWS:
        for bb in range(B):
            rnn_back_row(n, a + bb * H, dh + bb * H, da + bb * H, dh_prev + bb * H)
        return
    for bb in range(B):
        for j in range(n):
            k = bb * H + j
            da[k] = dh[k] * (one - a[k] * a[k])
            dh_prev[k] = 0


cdef void _simple_gru_backward(Py_ssize_t B, Py_ssize_t H, Py_ssize_t n,
                               const floating* a,
                               const floating* h_prev, const floating* dh,
                               floating* da, floating* dh_prev,
                               const floating* keep) noexcept nogil:
    cdef Py_ssize_t bb, j, o, k
    cdef floating g, dg, one = 1
    if _FUSED_ROWS:
        for bb in range(B):
            o = bb * 2 * H
            update_back_row(n, a + o, a + o + H, h_prev + bb * H, dh + bb * H, keep,
                            da + o, da + o + H, dh_prev + bb * H)
        return
    for bb in range(B):
        o = bb * 2 * H
        for j in range(n):
            k = bb * H + j
            g = a[o + H + j]
            dg = _mix_backward(dh[k], h_prev[k], a[o + j], g, keep[0], &da[o + j],
                               &dh_prev[k])
            da[o + H + j] = dg * (one - g * g)


cdef void _gru_after_backward(Py_ssize_t B, Py_ssize_t H, Py_ssize_t n,
                              const floating* a,
                              const floating* h_prev, const floating* nn,
                              const floating* dh, floating* da,
                              floating* dxg, floating* dh_prev,
                              const floating* keep) noexcept nogil:
    # dxg = dL/d(x W_g + b_g + r * n) (input side);
    # da[:, 2H:] = r * dxg = dL/dn (recurrent side, also dL/db_hg)
    cdef Py_ssize_t bb, j, o, k
    cdef floating r, g, dag, one = 1
    if _FUSED_ROWS:
        # the same, a row a call, per vector path (_activations.h)
        for bb in range(B):
            after_back_row(False, n, H, a + bb * 3 * H, h_prev + bb * H, nn + bb * H,
                           dh + bb * H, keep, da + bb * 3 * H, dxg + bb * H, dh_prev + bb * H)
        return
    for bb in range(B):
        o = bb * 3 * H
        for j in range(n):
            k = bb * H + j
            r = a[o + H + j]
            g = a[o + 2 * H + j]
            dag = _mix_backward(dh[k], h_prev[k], a[o + j], g, keep[0], &da[o + j],
                                &dh_prev[k]) * (one - g * g)
            da[o + H + j] = dag * nn[k] * r * (one - r) * keep[1]
            da[o + 2 * H + j] = dag * r
            dxg[k] = dag


cdef void _gru_before_candidate_backward(Py_ssize_t B, Py_ssize_t H, Py_ssize_t n,
                                         const floating* a, const floating* h_prev,
                                         const floating* dh, floating* da,
                                         floating* dh_prev,
                                         const floating* keep) noexcept nogil:
    # First half of the GRU with the reset before the matmul, backwards:
    # da_g, da_z and the direct part of dh_prev.
    cdef Py_ssize_t bb, j, o, k
    cdef floating g, one = 1
    if _FUSED_ROWS:
        for bb in range(B):
            o = bb * 3 * H
            update_back_row(n, a + o, a + o + 2 * H, h_prev + bb * H, dh + bb * H, keep,
                            da + o, da + o + 2 * H, dh_prev + bb * H)
        return
    for bb in range(B):
        o = bb * 3 * H
        for j in range(n):
            k = bb * H + j
            g = a[o + 2 * H + j]
            da[o + 2 * H + j] = _mix_backward(dh[k], h_prev[k], a[o + j], g, keep[0],
                                              &da[o + j], &dh_prev[k]) * (one - g * g)


cdef void _gru_before_reset_backward(Py_ssize_t B, Py_ssize_t H, Py_ssize_t n,
                                     const floating* a, const floating* h_prev,
                                     const floating* drh, floating* da,
                                     floating* dh_prev,
                                     const floating* keep) noexcept nogil:
    # Second half, once the driver has put drh = dL/d(r * h_prev) =
    # da_g @ U_g.T in drh: da_r, and dh_prev += drh * r.
    cdef Py_ssize_t bb, j, o, k
    cdef floating r, one = 1
    if _FUSED_ROWS:
        for bb in range(B):
            o = bb * 3 * H
            reset_back_row(n, a + o + H, h_prev + bb * H, drh + bb * H, keep[1], False,
                           da + o + H, dh_prev + bb * H)
        return
    for bb in range(B):
        o = bb * 3 * H
        for j in range(n):
            k = bb * H + j
            r = a[o + H + j]
            da[o + H + j] = drh[k] * h_prev[k] * r * (one - r) * keep[1]
            dh_prev[k] += drh[k] * r


cdef void _lstm_backward(Py_ssize_t B, Py_ssize_t H, Py_ssize_t n, bint peephole,
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
    if _FUSED_ROWS and not peephole:
        # the same, a row a call, per vector path, tanh(c) inline (_activations.h)
        for bb in range(B):
            cell_back_row(False, n, H, a + bb * 4 * H, c_prev + bb * H, c + bb * H,
                          dh + bb * H, dc + bb * H, keep, da + bb * 4 * H, dh_prev + bb * H,
                          dc_prev + bb * H)
        return
    for bb in range(B):
        memcpy(tc + bb * H, c + bb * H, n * sizeof(floating))
    _activate(tc, B, H, n, True)
    for bb in range(B):
        o = bb * 4 * H
        for j in range(n):
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


cdef void _mgu_after_backward(Py_ssize_t B, Py_ssize_t H, Py_ssize_t n,
                              const floating* a,
                              const floating* h_prev, const floating* nn,
                              const floating* dh, floating* da,
                              floating* dxg, floating* dh_prev,
                              const floating* keep) noexcept nogil:
    # dxg = dL/d(x W_g + b_g + f * n) (input side); da[:, H:] = f * dxg =
    # dL/dn (recurrent side, also dL/db_hg); da_f gets the mix's part and
    # the reset's, dxg * n * f (1 - f)
    cdef Py_ssize_t bb, j, o, k
    cdef floating f, g, dag, one = 1
    if _FUSED_ROWS:
        for bb in range(B):
            after_back_row(True, n, H, a + bb * 2 * H, h_prev + bb * H, nn + bb * H,
                           dh + bb * H, keep, da + bb * 2 * H, dxg + bb * H, dh_prev + bb * H)
        return
    for bb in range(B):
        o = bb * 2 * H
        for j in range(n):
            k = bb * H + j
            f = a[o + j]
            g = a[o + H + j]
            dag = _mix_backward(dh[k], h_prev[k], f, g, keep[0], &da[o + j],
                                &dh_prev[k]) * (one - g * g)
            da[o + j] += dag * nn[k] * f * (one - f) * keep[0]
            da[o + H + j] = dag * f
            dxg[k] = dag


cdef void _mgu_before_candidate_backward(Py_ssize_t B, Py_ssize_t H, Py_ssize_t n,
                                         const floating* a, const floating* h_prev,
                                         const floating* dh, floating* da,
                                         floating* dh_prev,
                                         const floating* keep) noexcept nogil:
    # First half of the MGU with the reset before the matmul, backwards:
    # da_g, the mix's part of da_f and the direct part of dh_prev.
    cdef Py_ssize_t bb, j, o, k
    cdef floating g, one = 1
    if _FUSED_ROWS:
        for bb in range(B):
            o = bb * 2 * H
            update_back_row(n, a + o, a + o + H, h_prev + bb * H, dh + bb * H, keep,
                            da + o, da + o + H, dh_prev + bb * H)
        return
    for bb in range(B):
        o = bb * 2 * H
        for j in range(n):
            k = bb * H + j
            g = a[o + H + j]
            da[o + H + j] = _mix_backward(dh[k], h_prev[k], a[o + j], g, keep[0],
                                          &da[o + j], &dh_prev[k]) * (one - g * g)


cdef void _mgu_before_reset_backward(Py_ssize_t B, Py_ssize_t H, Py_ssize_t n,
                                     const floating* a, const floating* h_prev,
                                     const floating* dfh, floating* da,
                                     floating* dh_prev,
                                     const floating* keep) noexcept nogil:
    # Second half, once the driver has put dfh = dL/d(f * h_prev) =
    # da_g @ U_g.T in dfh: the reset's part of da_f, and dh_prev += dfh * f.
    cdef Py_ssize_t bb, j, o, k
    cdef floating f, one = 1
    if _FUSED_ROWS:
        for bb in range(B):
            o = bb * 2 * H
            reset_back_row(n, a + o, h_prev + bb * H, dfh + bb * H, keep[0], True, da + o,
                           dh_prev + bb * H)
        return
    for bb in range(B):
        o = bb * 2 * H
        for j in range(n):
            k = bb * H + j
            f = a[o + j]
            da[o + j] += dfh[k] * h_prev[k] * f * (one - f) * keep[0]
            dh_prev[k] += dfh[k] * f


cdef void _cifg_backward(Py_ssize_t B, Py_ssize_t H, Py_ssize_t n, bint peephole,
                         const floating* a, const floating* P,
                         const floating* c_prev, const floating* c,
                         const floating* dh, const floating* dc,
                         floating* da, floating* dh_prev,
                         floating* dc_prev, const floating* keep,
                         floating* tc) noexcept nogil:
    # As _lstm_backward, with i = 1 - f: f reaches c twice, as the forget
    # gate and as the input gate, df = dc_t * (c_prev - g). tc is (B, H)
    # scratch for tanh(c_t).
    cdef Py_ssize_t bb, j, o, k
    cdef floating f, g, og, t_, dao, daf, dct, one = 1
    if _FUSED_ROWS and not peephole:
        # tanh(c) inline, as the LSTM's row
        for bb in range(B):
            cell_back_row(True, n, H, a + bb * 3 * H, c_prev + bb * H, c + bb * H,
                          dh + bb * H, dc + bb * H, keep, da + bb * 3 * H, dh_prev + bb * H,
                          dc_prev + bb * H)
        return
    for bb in range(B):
        memcpy(tc + bb * H, c + bb * H, n * sizeof(floating))
    _activate(tc, B, H, n, True)
    for bb in range(B):
        o = bb * 3 * H
        for j in range(n):
            k = bb * H + j
            f = a[o + j]
            g = a[o + H + j]
            og = a[o + 2 * H + j]
            t_ = tc[k]
            dao = dh[k] * t_ * og * (one - og) * keep[2]
            dct = dc[k] + dh[k] * og * (one - t_ * t_)
            if peephole:
                dct = dct + dao * P[H + j]
            daf = dct * (c_prev[k] - g) * f * (one - f) * keep[0]
            da[o + j] = daf
            da[o + H + j] = dct * (one - f) * (one - g * g)
            da[o + 2 * H + j] = dao
            dc_prev[k] = dct * f
            if peephole:
                dc_prev[k] = dc_prev[k] + daf * P[j]
            dh_prev[k] = 0


# ---------------------------------------------------------------------------
# The dispatch: the step of each kind, forward and backward. The driver
# passes every array a kind might read (pointers offset to its first unit);
# a kind reads only its own (the others may be placeholders).
# ---------------------------------------------------------------------------

cdef inline void _step_forward(int kind, bint peephole, Py_ssize_t B, Py_ssize_t H,
                               Py_ssize_t n, floating* a, const floating* hu,
                               const floating* b, const floating* b_hg, const floating* P,
                               const floating* h_prev, floating* e, const floating* c_prev,
                               floating* c, floating* h, const floating* keep,
                               const floating* pin) noexcept nogil:
    # a: gates[t] (x_t @ W on entry); hu: h_{t-1} @ U for the first n_rec
    # gate blocks; e: extra[t]; h: the new state, hs[t + 1]; c_prev, c: the
    # cell states c_{t-1} and c_t (cell_state kinds).
    if kind == _RNN:
        _rnn_forward(B, H, n, a, hu, b, h)
    elif kind == _SIMPLE_GRU:
        _simple_gru_forward(B, H, n, a, hu, b, h_prev, h, keep, pin)
    elif kind == _GRU_AFTER:
        _gru_after_forward(B, H, n, a, hu, b, b_hg, h_prev, e, h, keep, pin)
    elif kind == _GRU_BEFORE:
        _gru_before_gates(B, H, n, a, hu, b, h_prev, e, keep, pin)
    elif kind == _MGU_AFTER:
        _mgu_after_forward(B, H, n, a, hu, b, b_hg, h_prev, e, h, keep, pin)
    elif kind == _MGU_BEFORE:
        _mgu_before_gates(B, H, n, a, hu, b, h_prev, e, keep, pin)
    elif kind == _CIFG:
        _cifg_forward(B, H, n, peephole, a, hu, b, P, c_prev, c, h, keep, pin)
    else:
        _lstm_forward(B, H, n, peephole, a, hu, b, P, c_prev, c, h, keep, pin)


cdef inline void _step_forward_second(int kind, Py_ssize_t B, Py_ssize_t H, Py_ssize_t n,
                                      floating* a, const floating* hu, const floating* b,
                                      const floating* h_prev, floating* h) noexcept nogil:
    # The second half of a reset-before kind, once hu's last blocks hold
    # extra[t] @ U (the driver's second product).
    if kind == _GRU_BEFORE:
        _gru_before_forward(B, H, n, a, hu, b, h_prev, h)
    elif kind == _MGU_BEFORE:
        _mgu_before_forward(B, H, n, a, hu, b, h_prev, h)


cdef inline void _step_backward(int kind, bint peephole, Py_ssize_t B, Py_ssize_t H,
                                Py_ssize_t n, const floating* a, const floating* P,
                                const floating* h_prev, const floating* e,
                                const floating* c_prev, const floating* c,
                                const floating* dh, const floating* dc, floating* da,
                                floating* dxg, floating* dh_prev, floating* dc_prev,
                                const floating* keep, floating* scratch) noexcept nogil:
    # dh, dc: dL/dh_t, dL/dc_t; da: dA[t]; dxg: the candidate's input-side
    # gradient (reset_after kinds); dh_prev, dc_prev: the parts of
    # dL/dh_{t-1}, dL/dc_{t-1} that bypass U; scratch: (B, H) rows.
    if kind == _RNN:
        _rnn_backward(B, H, n, a, dh, da, dh_prev)
    elif kind == _SIMPLE_GRU:
        _simple_gru_backward(B, H, n, a, h_prev, dh, da, dh_prev, keep)
    elif kind == _GRU_AFTER:
        _gru_after_backward(B, H, n, a, h_prev, e, dh, da, dxg, dh_prev, keep)
    elif kind == _GRU_BEFORE:
        _gru_before_candidate_backward(B, H, n, a, h_prev, dh, da, dh_prev, keep)
    elif kind == _MGU_AFTER:
        _mgu_after_backward(B, H, n, a, h_prev, e, dh, da, dxg, dh_prev, keep)
    elif kind == _MGU_BEFORE:
        _mgu_before_candidate_backward(B, H, n, a, h_prev, dh, da, dh_prev, keep)
    elif kind == _CIFG:
        _cifg_backward(B, H, n, peephole, a, P, c_prev, c, dh, dc, da, dh_prev, dc_prev,
                       keep, scratch)
    else:
        _lstm_backward(B, H, n, peephole, a, P, c_prev, c, dh, dc, da, dh_prev, dc_prev,
                       keep, scratch)


cdef inline void _step_backward_second(int kind, Py_ssize_t B, Py_ssize_t H, Py_ssize_t n,
                                       const floating* a, const floating* h_prev,
                                       const floating* de, floating* da, floating* dh_prev,
                                       const floating* keep) noexcept nogil:
    # The second half of a reset-before kind, once de = dL/d(extra[t]) (the
    # candidate's da @ U.T, the driver's second product) is computed.
    if kind == _GRU_BEFORE:
        _gru_before_reset_backward(B, H, n, a, h_prev, de, da, dh_prev, keep)
    elif kind == _MGU_BEFORE:
        _mgu_before_reset_backward(B, H, n, a, h_prev, de, da, dh_prev, keep)
