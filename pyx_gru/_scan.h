/* The pointwise work of the scan cells (_scan.pyx: minGRU, minLSTM),
 * compiled once per vector path of _simd.h and dispatched like the blocks
 * of _activations.h (PYX_CLONES; the forward row, which holds the
 * sigmoids, on the path's vector kit, PYX_KIT_CLONES, as the LSTM's and
 * GRU's rows are).
 *
 * Design: each function does, per element, the operations of the Cython
 * loops it replaces in the same order (no fma: setup.py's -ffp-contract=off;
 * no reassociation; divisions kept), so every path, and the code before,
 * give bitwise the same results; only the vector width changes. Pointers
 * are restrict wherever the buffers cannot overlap, so that the compiler
 * sees the loops as independent and vectorises them (minLSTM's backward
 * row did not vectorise as Cython wrote it). A row's steps that used to be
 * separate passes (bias, activations, a_t and b_t, the recurrence; the
 * carry and the gate gradients) are fused into one pass per row: the same
 * operations on each element, with fewer trips through memory.
 *
 * Rows: n rows of H units; a row's gate blocks are H apart and its rows
 * GH = G*H apart (G = 2 for minGRU, 3 for minLSTM: the candidate last);
 * the H-unit buffers (a_t, h, dy, carries) have their rows H apart.
 */
#ifndef PYX_GRU_SCAN_H
#define PYX_GRU_SCAN_H

#include <stddef.h>
#include <string.h>

#include "_activations.h"

/* Forward, every gate learned: g (x_t W) <- the activations (gates + bias,
 * the sigmoid on all but the candidate), a <- a_t, h <- a_t * hp + b_t, or
 * h <- b_t where hp is NULL (a block's first step from a zero carry). On
 * the path's vectors (PYX_EACH, the kits of _activations.h), as the LSTM's
 * and GRU's rows are: a vector does each element's operations, so the
 * results are those of the scalar loop. */
#define PYX_MINGRU_FWD(K, j) {                                                  \
    K##_T z = K##_SIG(K##_LD(g + j) + K##_LD(bias + j));                        \
    K##_T c = K##_LD(g + H + j) + K##_LD(bias + H + j);                         \
    K##_T at = K##_K(1) - z;                                                    \
    K##_T hb = z * c;                                                           \
    K##_ST(g + j, z);                                                           \
    K##_ST(g + H + j, c);                                                       \
    K##_ST(a + j, at);                                                          \
    K##_ST(h + j, hp ? (K##_T)(at * K##_LD(hp + r * H + j) + hb) : hb);         \
}
#define PYX_MINLSTM_FWD(K, j) {                                                 \
    K##_T f = K##_SIG(K##_LD(g + j) + K##_LD(bias + j));                        \
    K##_T i = K##_SIG(K##_LD(g + H + j) + K##_LD(bias + H + j));                \
    K##_T c = K##_LD(g + 2 * H + j) + K##_LD(bias + 2 * H + j);                 \
    K##_T s = f + i;                                                            \
    K##_T at = f / s;                                                           \
    K##_T hb = i / s * c;                                                       \
    K##_ST(g + j, f);                                                           \
    K##_ST(g + H + j, i);                                                       \
    K##_ST(g + 2 * H + j, c);                                                   \
    K##_ST(a + j, at);                                                          \
    K##_ST(h + j, hp ? (K##_T)(at * K##_LD(hp + r * H + j) + hb) : hb);         \
}
#define PYX_SCAN_FWD_ONE(NAME, TARGET, VK, SK, ...)                             \
TARGET static void NAME(int lstm, ptrdiff_t n, ptrdiff_t H, VK##_E* __restrict g, \
                        const VK##_E* __restrict bias, const VK##_E* __restrict hp, \
                        VK##_E* __restrict a, VK##_E* __restrict h) {          \
    ptrdiff_t GH = (lstm ? 3 : 2) * H;                                          \
    for (ptrdiff_t r = 0; r < n; r++, g += GH, a += H, h += H) {                \
        if (!lstm)                                                              \
            PYX_EACH(VK, SK, j, 0, H, PYX_MINGRU_FWD)                           \
        else                                                                    \
            PYX_EACH(VK, SK, j, 0, H, PYX_MINLSTM_FWD)                          \
    }                                                                           \
}

/* Forward, the general row (a gate may be pinned: keep[k] == 0 takes
 * pin[k*H:(k+1)*H] instead of the sigmoid): g <- the activations, a <- a_t,
 * hb <- b_t (no recurrence: the caller runs it). */
#define PYX_SCAN_FWD_PINNED_ONE(NAME, TARGET, T, SIG)                           \
TARGET static void NAME(int lstm, ptrdiff_t H, T* __restrict g,                 \
                        const T* __restrict bias, const T* __restrict keep,    \
                        const T* __restrict pin, T* __restrict a,              \
                        T* __restrict hb) {                                    \
    ptrdiff_t G = lstm ? 3 : 2;                                                 \
    T* c = g + (G - 1) * H;                                                     \
    for (ptrdiff_t k = 0; k < G * H; k++)                                       \
        g[k] = g[k] + bias[k];                                                  \
    for (ptrdiff_t k = 0; k < G - 1; k++) {                                     \
        if (keep[k] == 0)                                                       \
            memcpy(g + k * H, pin + k * H, H * sizeof(T));                      \
        else                                                                    \
            for (ptrdiff_t j = k * H; j < (k + 1) * H; j++) g[j] = SIG(g[j]);   \
    }                                                                           \
    if (!lstm) {                                                                \
        for (ptrdiff_t j = 0; j < H; j++) {                                     \
            a[j] = 1 - g[j];                                                    \
            hb[j] = g[j] * c[j];                                                \
        }                                                                       \
    } else {                                                                    \
        for (ptrdiff_t j = 0; j < H; j++) {                                     \
            T s = g[j] + g[H + j];                                              \
            a[j] = g[j] / s;                                                    \
            hb[j] = g[H + j] / s * c[j];                                        \
        }                                                                       \
    }                                                                           \
}

/* Backward over n rows: the carry of dL/dh and the gate gradients.
 * exact (a block whose carry is known): dh = dy + carry, carry <- a_t dh;
 * otherwise (the correction of a block run from a zero carry; dy unread):
 * d's candidate block holds g_t so far, dh = it + carry, carry <- a_t carry.
 * Then d <- the gradients of the gates' pre-activations (k0, k1: keep,
 * 0 for a pinned gate), from g (the activations) and hp (h_{t-1}). The
 * literal 1.0 is the Cython loops' (which wrote 1 - g as 1.0 - g): for
 * float data the products that follow it run in double, rounded once at
 * the store, and must stay so for the same bits. */
/* h = (1 - z) h_prev + z g: dz = dh (g - h_prev), dg = dh z */
#define PYX_SCAN_BWD_GRU(T, DH, NEW)                                            \
    for (ptrdiff_t j = 0; j < H; j++) {                                         \
        T v = carry[j];                                                         \
        T dh = DH;                                                              \
        carry[j] = at[j] * NEW;                                                 \
        d[j] = dh * (c[j] - hp[j]) * (g[j] * (1.0 - g[j])) * k0;                \
        dc[j] = dh * g[j];                                                      \
    }
/* f' = f / s, i' = i / s, s = f + i: u = dh (h_prev - g) f' i' (f i and
 * s^2 underflow for tiny gates), df = u (1 - f), di = -u (1 - i), dg = dh i' */
#define PYX_SCAN_BWD_LSTM(T, DH, NEW)                                           \
    for (ptrdiff_t j = 0; j < H; j++) {                                         \
        T v = carry[j];                                                         \
        T dh = DH;                                                              \
        T f = g[j], i = g[H + j];                                               \
        T s = f + i;                                                            \
        T u = dh * (hp[j] - c[j]) * ((f / s) * (i / s));                        \
        carry[j] = at[j] * NEW;                                                 \
        d[j] = u * (1.0 - f) * k0;                                              \
        d[H + j] = -u * (1.0 - i) * k1;                                         \
        dc[j] = dh * (i / s);                                                   \
    }
#define PYX_SCAN_BWD_ONE(NAME, TARGET, T)                                       \
TARGET static void NAME(int lstm, int exact, ptrdiff_t n, ptrdiff_t H,          \
                        const T* __restrict g, const T* __restrict hp,         \
                        T k0, T k1, const T* __restrict dy,                    \
                        const T* __restrict at, T* __restrict carry,           \
                        T* __restrict d) {                                     \
    ptrdiff_t GH = (lstm ? 3 : 2) * H;                                          \
    for (ptrdiff_t r = 0; r < n; r++) {                                         \
        T* dc = d + GH - H;                                                     \
        const T* c = g + GH - H;                                                \
        if (!lstm && exact) {                                                   \
            PYX_SCAN_BWD_GRU(T, dy[j] + v, dh)                                  \
        } else if (!lstm) {                                                     \
            PYX_SCAN_BWD_GRU(T, dc[j] + v, v)                                   \
        } else if (exact) {                                                     \
            PYX_SCAN_BWD_LSTM(T, dy[j] + v, dh)                                 \
        } else {                                                                \
            PYX_SCAN_BWD_LSTM(T, dc[j] + v, v)                                  \
        }                                                                       \
        g += GH; d += GH; hp += H; at += H; carry += H;                         \
        if (exact) dy += H;                                                     \
    }                                                                           \
}

/* The scans' passes over B*H: y <- m * x + y (the recurrence, the carries
 * and the corrections), p <- p * m or m * p (products of a_t; the operands
 * in the order of the loops this replaces). */
#define PYX_SCAN_AXPY_ONE(NAME, TARGET, T)                                      \
TARGET static void NAME(ptrdiff_t n, const T* __restrict m,                    \
                        const T* __restrict x, T* __restrict y) {              \
    for (ptrdiff_t j = 0; j < n; j++) y[j] = m[j] * x[j] + y[j];                \
}
#define PYX_SCAN_MUL_ONE(NAME, TARGET, T)                                       \
TARGET static void NAME(ptrdiff_t n, const T* __restrict m, T* __restrict p,   \
                        int m_first) {                                         \
    if (m_first)                                                                \
        for (ptrdiff_t j = 0; j < n; j++) p[j] = m[j] * p[j];                   \
    else                                                                        \
        for (ptrdiff_t j = 0; j < n; j++) p[j] = p[j] * m[j];                   \
}

#define PYX_SCAN_FUNCS(S, T, SIG)                                               \
PYX_KIT_CLONES(pyx_scan_fwd_##S, PYX_SCAN_FWD_ONE,                              \
               (int lstm, ptrdiff_t n, ptrdiff_t H, T* g, const T* bias,        \
                const T* hp, T* a, T* h),                                       \
               (lstm, n, H, g, bias, hp, a, h), pyx_kits_##S)                   \
PYX_CLONES(pyx_scan_fwd_pinned_##S, PYX_SCAN_FWD_PINNED_ONE,                    \
           (int lstm, ptrdiff_t H, T* g, const T* bias, const T* keep,          \
            const T* pin, T* a, T* hb),                                         \
           (lstm, H, g, bias, keep, pin, a, hb), T, SIG)                        \
PYX_CLONES(pyx_scan_bwd_##S, PYX_SCAN_BWD_ONE,                                  \
           (int lstm, int exact, ptrdiff_t n, ptrdiff_t H, const T* g,          \
            const T* hp, T k0, T k1, const T* dy, const T* at, T* carry,        \
            T* d),                                                              \
           (lstm, exact, n, H, g, hp, k0, k1, dy, at, carry, d), T)             \
PYX_CLONES(pyx_scan_axpy_##S, PYX_SCAN_AXPY_ONE,                                \
           (ptrdiff_t n, const T* m, const T* x, T* y), (n, m, x, y), T)        \
PYX_CLONES(pyx_scan_mul_##S, PYX_SCAN_MUL_ONE,                                  \
           (ptrdiff_t n, const T* m, T* p, int m_first), (n, m, p, m_first), T)

PYX_SCAN_FUNCS(f, float, pyx_sigmoid_f)
PYX_SCAN_FUNCS(d, double, pyx_sigmoid_d)

#endif
