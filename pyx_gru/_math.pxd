# The activations of the kernels, in the precision of the data. The math is
# in _activations.h (one C source, block functions compiled per instruction
# set); this file gives it fused-type names for the Cython kernels.
from cython cimport floating


cdef extern from "_activations.h" nogil:
    float pyx_sigmoid_f(float a)
    double pyx_sigmoid_d(double a)
    float pyx_tanh_f(float a)
    double pyx_tanh_d(double a)
    void pyx_sigmoid_block_f(float* v, Py_ssize_t n)
    void pyx_sigmoid_block_d(double* v, Py_ssize_t n)
    void pyx_tanh_block_f(float* v, Py_ssize_t n)
    void pyx_tanh_block_d(double* v, Py_ssize_t n)
    # the cell rows: P the peepholes, or NULL for none
    void pyx_lstm_row_f(Py_ssize_t n, Py_ssize_t H, float* a, const float* hu, const float* b,
                        const float* P, const float* c_prev, float* c, float* h)
    void pyx_lstm_row_d(Py_ssize_t n, Py_ssize_t H, double* a, const double* hu,
                        const double* b, const double* P, const double* c_prev, double* c,
                        double* h)
    void pyx_gru_after_row_f(Py_ssize_t n, Py_ssize_t H, float* a, const float* hu,
                             const float* b, const float* b_hg, const float* h_prev,
                             float* nn, float* h)
    void pyx_gru_after_row_d(Py_ssize_t n, Py_ssize_t H, double* a, const double* hu,
                             const double* b, const double* b_hg, const double* h_prev,
                             double* nn, double* h)
    void pyx_rnn_row_f(Py_ssize_t n, float* a, const float* hu, const float* b, float* h)
    void pyx_rnn_row_d(Py_ssize_t n, double* a, const double* hu, const double* b, double* h)
    void pyx_update_row_f(Py_ssize_t n, const float* az, float* ag, const float* hug,
                          const float* bg, const float* h_prev, float* h)
    void pyx_update_row_d(Py_ssize_t n, const double* az, double* ag, const double* hug,
                          const double* bg, const double* h_prev, double* h)
    void pyx_sigmoid_row_f(Py_ssize_t n, Py_ssize_t H, Py_ssize_t gates, float* a,
                           const float* hu, const float* b)
    void pyx_sigmoid_row_d(Py_ssize_t n, Py_ssize_t H, Py_ssize_t gates, double* a,
                           const double* hu, const double* b)
    void pyx_mgu_after_row_f(Py_ssize_t n, Py_ssize_t H, float* a, const float* hu,
                             const float* b, const float* b_hg, const float* h_prev,
                             float* nn, float* h)
    void pyx_mgu_after_row_d(Py_ssize_t n, Py_ssize_t H, double* a, const double* hu,
                             const double* b, const double* b_hg, const double* h_prev,
                             double* nn, double* h)
    void pyx_cifg_row_f(Py_ssize_t n, Py_ssize_t H, float* a, const float* hu, const float* b,
                        const float* P, const float* c_prev, float* c, float* h)
    void pyx_cifg_row_d(Py_ssize_t n, Py_ssize_t H, double* a, const double* hu,
                        const double* b, const double* P, const double* c_prev, double* c,
                        double* h)
    void pyx_lstm_back_row_f(Py_ssize_t n, Py_ssize_t H, const float* a, const float* c_prev,
                             const float* c, const float* dh, const float* dc,
                             const float* k, float* da, float* dh_prev, float* dc_prev)
    void pyx_lstm_back_row_d(Py_ssize_t n, Py_ssize_t H, const double* a,
                             const double* c_prev, const double* c, const double* dh,
                             const double* dc, const double* k, double* da,
                             double* dh_prev, double* dc_prev)
    void pyx_gru_after_back_row_f(Py_ssize_t n, Py_ssize_t H, const float* a,
                                  const float* h_prev, const float* nn, const float* dh,
                                  const float* k, float* da, float* dxg, float* dh_prev)
    void pyx_gru_after_back_row_d(Py_ssize_t n, Py_ssize_t H, const double* a,
                                  const double* h_prev, const double* nn, const double* dh,
                                  const double* k, double* da, double* dxg, double* dh_prev)
    void pyx_rnn_back_row_f(Py_ssize_t n, const float* a, const float* dh, float* da,
                            float* dh_prev)
    void pyx_rnn_back_row_d(Py_ssize_t n, const double* a, const double* dh, double* da,
                            double* dh_prev)
    void pyx_update_back_row_f(Py_ssize_t n, const float* az, const float* ag,
                               const float* h_prev, const float* dh, const float* k,
                               float* daz, float* dag, float* dh_prev)
    void pyx_update_back_row_d(Py_ssize_t n, const double* az, const double* ag,
                               const double* h_prev, const double* dh, const double* k,
                               double* daz, double* dag, double* dh_prev)
    void pyx_reset_back_row_f(Py_ssize_t n, const float* ar, const float* h_prev,
                              const float* de, float kr, int add, float* dar,
                              float* dh_prev)
    void pyx_reset_back_row_d(Py_ssize_t n, const double* ar, const double* h_prev,
                              const double* de, double kr, int add, double* dar,
                              double* dh_prev)
    void pyx_mgu_after_back_row_f(Py_ssize_t n, Py_ssize_t H, const float* a,
                                  const float* h_prev, const float* nn, const float* dh,
                                  const float* k, float* da, float* dxg, float* dh_prev)
    void pyx_mgu_after_back_row_d(Py_ssize_t n, Py_ssize_t H, const double* a,
                                  const double* h_prev, const double* nn, const double* dh,
                                  const double* k, double* da, double* dxg, double* dh_prev)
    void pyx_cifg_back_row_f(Py_ssize_t n, Py_ssize_t H, const float* a, const float* c_prev,
                             const float* c, const float* dh, const float* dc,
                             const float* k, float* da, float* dh_prev, float* dc_prev)
    void pyx_cifg_back_row_d(Py_ssize_t n, Py_ssize_t H, const double* a,
                             const double* c_prev, const double* c, const double* dh,
                             const double* dc, const double* k, double* da,
                             double* dh_prev, double* dc_prev)
    void pyx_colsum_f(Py_ssize_t rows, Py_ssize_t n, Py_ssize_t ld, const float* src,
                      double* acc)
    void pyx_colsum_d(Py_ssize_t rows, Py_ssize_t n, Py_ssize_t ld, const double* src,
                      double* acc)


cdef inline floating sigmoid(floating a) noexcept nogil:
    """1 / (1 + exp(-a)), without overflow for any a."""
    if floating is float:
        return pyx_sigmoid_f(a)
    else:
        return pyx_sigmoid_d(a)


cdef inline floating tanh_(floating a) noexcept nogil:
    if floating is float:
        return pyx_tanh_f(a)
    else:
        return pyx_tanh_d(a)


cdef inline void sigmoid_block(floating* v, Py_ssize_t n) noexcept nogil:
    # v[:n] = sigmoid(v[:n])
    if floating is float:
        pyx_sigmoid_block_f(v, n)
    else:
        pyx_sigmoid_block_d(v, n)


cdef inline void tanh_block(floating* v, Py_ssize_t n) noexcept nogil:
    # v[:n] = tanh(v[:n])
    if floating is float:
        pyx_tanh_block_f(v, n)
    else:
        pyx_tanh_block_d(v, n)


cdef inline void cell_row(bint coupled, Py_ssize_t n, Py_ssize_t H, floating* a,
                          const floating* hu, const floating* b, const floating* P,
                          const floating* c_prev, floating* c, floating* h) noexcept nogil:
    # One row of the LSTM's forward step (the CIFG's with `coupled`), with
    # the peepholes P (NULL: none), no pinned gate (_activations.h): a <- the
    # gates (i, f, g, o; the CIFG's f, g, o); c and h of the step.
    if floating is float:
        if coupled:
            pyx_cifg_row_f(n, H, a, hu, b, P, c_prev, c, h)
        else:
            pyx_lstm_row_f(n, H, a, hu, b, P, c_prev, c, h)
    elif coupled:
        pyx_cifg_row_d(n, H, a, hu, b, P, c_prev, c, h)
    else:
        pyx_lstm_row_d(n, H, a, hu, b, P, c_prev, c, h)


cdef inline void after_row(bint minimal, Py_ssize_t n, Py_ssize_t H, floating* a,
                           const floating* hu, const floating* b, const floating* b_hg,
                           const floating* h_prev, floating* nn, floating* h) noexcept nogil:
    # One row of the GRU's (reset after) forward step (the MGU's with
    # `minimal`), no pinned gate (_activations.h): a <- the gates (z, r, g;
    # the MGU's f, g); nn = h_prev U_g + b_hg; h.
    if floating is float:
        if minimal:
            pyx_mgu_after_row_f(n, H, a, hu, b, b_hg, h_prev, nn, h)
        else:
            pyx_gru_after_row_f(n, H, a, hu, b, b_hg, h_prev, nn, h)
    elif minimal:
        pyx_mgu_after_row_d(n, H, a, hu, b, b_hg, h_prev, nn, h)
    else:
        pyx_gru_after_row_d(n, H, a, hu, b, b_hg, h_prev, nn, h)


cdef inline void rnn_row(Py_ssize_t n, floating* a, const floating* hu, const floating* b,
                         floating* h) noexcept nogil:
    # One row of the vanilla RNN's forward step (_activations.h): a and h
    # <- tanh(a + hu + b).
    if floating is float:
        pyx_rnn_row_f(n, a, hu, b, h)
    else:
        pyx_rnn_row_d(n, a, hu, b, h)


cdef inline void update_row(Py_ssize_t n, const floating* az, floating* ag,
                            const floating* hug, const floating* bg,
                            const floating* h_prev, floating* h) noexcept nogil:
    # One row of the candidate and the update (_activations.h), the update
    # gate az activated: ag <- g = tanh(ag + hug + bg), h <- the new state.
    if floating is float:
        pyx_update_row_f(n, az, ag, hug, bg, h_prev, h)
    else:
        pyx_update_row_d(n, az, ag, hug, bg, h_prev, h)


cdef inline void sigmoid_row(Py_ssize_t n, Py_ssize_t H, Py_ssize_t gates, floating* a,
                             const floating* hu, const floating* b) noexcept nogil:
    # The first `gates` gate blocks of one row (_activations.h): a <-
    # sigmoid(a + hu + b).
    if floating is float:
        pyx_sigmoid_row_f(n, H, gates, a, hu, b)
    else:
        pyx_sigmoid_row_d(n, H, gates, a, hu, b)


cdef inline void cell_back_row(bint coupled, Py_ssize_t n, Py_ssize_t H,
                               const floating* a, const floating* c_prev,
                               const floating* c, const floating* dh, const floating* dc,
                               const floating* keep, floating* da, floating* dh_prev,
                               floating* dc_prev) noexcept nogil:
    # One row of the LSTM's backward step (the CIFG's with `coupled`), no
    # peepholes (_activations.h): da <- the gates' gradients; dh_prev <- 0,
    # dc_prev <- dL/dc_{t-1}.
    if floating is float:
        if coupled:
            pyx_cifg_back_row_f(n, H, a, c_prev, c, dh, dc, keep, da, dh_prev, dc_prev)
        else:
            pyx_lstm_back_row_f(n, H, a, c_prev, c, dh, dc, keep, da, dh_prev, dc_prev)
    elif coupled:
        pyx_cifg_back_row_d(n, H, a, c_prev, c, dh, dc, keep, da, dh_prev, dc_prev)
    else:
        pyx_lstm_back_row_d(n, H, a, c_prev, c, dh, dc, keep, da, dh_prev, dc_prev)


cdef inline void after_back_row(bint minimal, Py_ssize_t n, Py_ssize_t H, const floating* a,
                                const floating* h_prev, const floating* nn,
                                const floating* dh, const floating* keep, floating* da,
                                floating* dxg, floating* dh_prev) noexcept nogil:
    # One row of the GRU's (reset after) backward step (the MGU's with
    # `minimal`; _activations.h): da <- the gates' gradients, dxg <- the
    # candidate's input side, dh_prev <- the part of dL/dh_{t-1} that
    # bypasses U.
    if floating is float:
        if minimal:
            pyx_mgu_after_back_row_f(n, H, a, h_prev, nn, dh, keep, da, dxg, dh_prev)
        else:
            pyx_gru_after_back_row_f(n, H, a, h_prev, nn, dh, keep, da, dxg, dh_prev)
    elif minimal:
        pyx_mgu_after_back_row_d(n, H, a, h_prev, nn, dh, keep, da, dxg, dh_prev)
    else:
        pyx_gru_after_back_row_d(n, H, a, h_prev, nn, dh, keep, da, dxg, dh_prev)


cdef inline void rnn_back_row(Py_ssize_t n, const floating* a, const floating* dh,
                              floating* da, floating* dh_prev) noexcept nogil:
    # One row of the vanilla RNN's backward step (_activations.h): da <-
    # dh * (1 - g * g), dh_prev <- 0.
    if floating is float:
        pyx_rnn_back_row_f(n, a, dh, da, dh_prev)
    else:
        pyx_rnn_back_row_d(n, a, dh, da, dh_prev)


cdef inline void update_back_row(Py_ssize_t n, const floating* az, const floating* ag,
                                 const floating* h_prev, const floating* dh,
                                 const floating* keep, floating* daz, floating* dag,
                                 floating* dh_prev) noexcept nogil:
    # One row of the update and the candidate, backwards (_activations.h),
    # gate blocks az (z, or the MGU's f) and ag (g): daz, dag <- their
    # gradients, dh_prev <- the part of dL/dh_{t-1} that bypasses U.
    if floating is float:
        pyx_update_back_row_f(n, az, ag, h_prev, dh, keep, daz, dag, dh_prev)
    else:
        pyx_update_back_row_d(n, az, ag, h_prev, dh, keep, daz, dag, dh_prev)


cdef inline void reset_back_row(Py_ssize_t n, const floating* ar, const floating* h_prev,
                                const floating* de, floating keep_r, bint add,
                                floating* dar, floating* dh_prev) noexcept nogil:
    # One row of the second half of a reset-before kind (_activations.h):
    # dar <- (or += with add) the reset gate's gradient, dh_prev += de * r.
    if floating is float:
        pyx_reset_back_row_f(n, ar, h_prev, de, keep_r, add, dar, dh_prev)
    else:
        pyx_reset_back_row_d(n, ar, h_prev, de, keep_r, add, dar, dh_prev)


cdef inline void column_sums(Py_ssize_t rows, Py_ssize_t n, const floating* m,
                             Py_ssize_t ld, double* acc) noexcept nogil:
    # acc[:n] += m[:rows, :n].sum(axis=0) (rows ld apart), in double, row
    # after row (_activations.h)
    if floating is float:
        pyx_colsum_f(rows, n, ld, m, acc)
    else:
        pyx_colsum_d(rows, n, ld, m, acc)
