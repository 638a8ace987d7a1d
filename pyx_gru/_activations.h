/* The activations of the kernels, in the precision of the data.
 *
 * Design: libm's tanhf and expf are calls that do not vectorise, so a loop
 * over a gate block ran at the speed of its calls (docs/performance.rst,
 * The activations). These are branch-free arithmetic (selects, not
 * jumps) that the compiler vectorises when applied over a contiguous block
 * (the *_block functions). The block functions are compiled once per
 * vector path of _simd.h (portable: SSE2 on x86-64; AVX2 + FMA; AVX-512)
 * and each call takes the path in use (pyx_simd()). The polynomials are written with explicit fused multiply-adds
 * (fmaf, fma: one rounding each), faster than a multiply and an add
 * (docs/performance.rst). With -ffp-contract=off (setup.py)
 * nothing else is fused, so the paths with FMA (AVX2, AVX-512, aarch64)
 * do the same IEEE operations and give bitwise the same results. The
 * portable path on x86-64, whose CPUs may lack FMA (libm's fmaf is then a
 * routine of some 20 ns), multiplies and adds instead, as its products do
 * (_gemm.h): the same to rounding, within the same 3 ulp.
 *
 * - exp(x) for x <= 0, after Cephes: x = n ln2 + r with |r| <= ln2 / 2 (n
 *   rounded by adding and subtracting 1.5 * 2^p + the exponent's bias, ln2
 *   split in two for Cody-Waite), exp(r) - 1 by a polynomial (float) or a
 *   Pade approximant (double), 2^n built in the exponent bits
 *   (pyx_exp_parts_*). x is clamped at -87 (float) or -708 (double), near
 *   the smallest normal number: the sigmoid of a pre-activation below that
 *   is ~1e-38 (1e-308) instead of a denormal.
 * - sigmoid(a) = 1 / (1 + e) for a >= 0 and e / (1 + e) for a < 0, with
 *   e = exp(-|a|) <= 1: no overflow, full relative accuracy on both sides
 *   (the numerator selected first: one division).
 * - tanh(|a|), float: -m / (2 + m) with m = exp(-2|a|) - 1 = 2^n (exp(r)
 *   - 1) + (2^n - 1), accurate near 0 without a second branch; double (whose
 *   Pade form of exp(r) - 1 lost up to 3.6 ulp that way): Cephes' odd
 *   rational for |a| < 0.625, otherwise (1 - e) / (1 + e) with
 *   e = exp(-2|a|). Then the sign of a.
 * NaN gives NaN; +-inf give the limits. Within 3 ulp of the exact values
 * (tests/test_math.py).
 */
#ifndef PYX_GRU_ACTIVATIONS_H
#define PYX_GRU_ACTIVATIONS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "_simd.h"

/* The scalar functions, in two builds of one source: with FMAF and FMA
 * fused (fmaf, fma: one rounding), and with the suffix _nf as a multiply
 * and an add (two roundings). The vector paths with FMA and aarch64 take
 * the fused ones; the portable path on x86-64 takes _nf, as its products
 * do (_gemm.h): its CPUs need not have FMA, and there libm's fmaf is a
 * routine of some 20 ns a call (the sigmoid and tanh took 50 times the
 * time of the products; docs/performance.rst). */
#define PYX_MULADD(a, b, c) ((a) * (b) + (c))
#define PYX_SCALARS(SFX, FMAF, FMA)                                             \
/* exp(x) = scale * (1 + q) for x <= 0: returns q = exp(r) - 1 and sets     \
 * *scale = 2^n (x = n ln2 + r). */                                            \
static inline float pyx_exp_parts_f##SFX(float x, float* scale)                \
{                                                                               \
    float t, n, r, p;                                                           \
    uint32_t bits;                                                              \
    x = -87.0f > x ? -87.0f : x;                                                \
    /* n + 127 in the low bits: 1.5 * 2^23 + 127 */                             \
    t = FMAF(x, 1.44269504088896341f, 12583039.0f);                             \
    n = t - 12583039.0f;                                                        \
    r = FMAF(n, -0.693359375f, x);                                              \
    r = FMAF(n, 2.12194440e-4f, r);                                             \
    p = 1.9875691500e-4f;                                                       \
    p = FMAF(p, r, 1.3981999507e-3f);                                           \
    p = FMAF(p, r, 8.3334519073e-3f);                                           \
    p = FMAF(p, r, 4.1665795894e-2f);                                           \
    p = FMAF(p, r, 1.6666665459e-1f);                                           \
    p = FMAF(p, r, 5.0000001201e-1f);                                           \
    memcpy(&bits, &t, 4);                                                       \
    bits <<= 23; /* 2^n: the magic number's high bits shift out */             \
    memcpy(scale, &bits, 4);                                                    \
    return FMAF(p, r * r, r);                                                   \
}                                                                               \
                                                                                \
static inline double pyx_exp_parts_d##SFX(double x, double* scale)             \
{                                                                               \
    double t, n, r, rr, px;                                                     \
    uint64_t bits;                                                              \
    x = -708.0 > x ? -708.0 : x;                                                \
    t = FMA(x, 1.4426950408889634073599, 6755399441055744.0 + 1023.0);          \
    n = t - (6755399441055744.0 + 1023.0);                                      \
    r = FMA(n, -6.93145751953125e-1, x);                                        \
    r = FMA(n, -1.42860682030941723212e-6, r);                                  \
    rr = r * r;                                                                 \
    px = r * FMA(FMA(1.26177193074810590878e-4, rr, 3.02994407707441961300e-2), rr, \
                 9.99999999999999999910e-1);                                    \
    r = px / (FMA(FMA(FMA(3.00198505138664455042e-6, rr, 2.52448340349684104192e-3), rr, \
                      2.27265548208155028766e-1), rr, 2.00000000000000000009e0) - px); \
    memcpy(&bits, &t, 8);                                                       \
    bits <<= 52;                                                                \
    memcpy(scale, &bits, 8);                                                    \
    return 2.0 * r;                                                             \
}                                                                               \
                                                                                \
static inline float pyx_sigmoid_f##SFX(float a)                                 \
{                                                                               \
    float scale, q = pyx_exp_parts_f##SFX(-fabsf(a), &scale);                   \
    float e = (q + 1.0f) * scale;                                               \
    return (a >= 0.0f ? 1.0f : e) / (1.0f + e);                                 \
}                                                                               \
                                                                                \
static inline double pyx_sigmoid_d##SFX(double a)                               \
{                                                                               \
    double scale, q = pyx_exp_parts_d##SFX(-fabs(a), &scale);                   \
    double e = (q + 1.0) * scale;                                               \
    return (a >= 0.0 ? 1.0 : e) / (1.0 + e);                                    \
}                                                                               \
                                                                                \
/* tanh(|a|) = -m / (2 + m), m = exp(-2|a|) - 1 = scale * q + (scale - 1),     \
 * which keeps full relative accuracy near 0; then the sign of a. */           \
static inline float pyx_tanh_f##SFX(float a)                                    \
{                                                                               \
    float scale, q = pyx_exp_parts_f##SFX(-2.0f * fabsf(a), &scale);            \
    float m = FMAF(scale, q, scale - 1.0f);                                     \
    return copysignf(-m / (2.0f + m), a);                                       \
}                                                                               \
                                                                                \
/* In double, -m / (2 + m) lost up to 3.6 ulp near 0 (the Pade expm1 is    \
 * less accurate there), so tanh takes Cephes' odd rational for |a| <      \
 * 0.625 and (1 - e) / (1 + e) with e = exp(-2|a|) elsewhere. */              \
static inline double pyx_tanh_d##SFX(double a)                                  \
{                                                                               \
    double x = fabs(a), scale, q = pyx_exp_parts_d##SFX(-2.0 * x, &scale);      \
    double e = (q + 1.0) * scale;                                               \
    double big = (1.0 - e) / (1.0 + e);                                         \
    double z = x * x;                                                           \
    double num = FMA(FMA(-9.64399179425052238628e-1, z, -9.92877231001918586564e1), z, \
                     -1.61468768441708447952e3);                                \
    double den = FMA(FMA(z + 1.12811678491632931402e2, z, 2.23548839060100448583e3), z, \
                     4.84406305325125486048e3);                                 \
    double small = FMA(x * z, num / den, x);                                    \
    return copysign(x < 0.625 ? small : big, a);                                \
}

PYX_SCALARS(, fmaf, fma)
PYX_SCALARS(_nf, PYX_MULADD, PYX_MULADD)

/* PYX_NF(T, F...): the arguments with every function F named _nf (the
 * unfused scalars), for the clones of the portable path on x86-64. */
#define PYX_NF_1(T) T
#define PYX_NF_2(T, A) T, A##_nf
#define PYX_NF_3(T, A, B) T, A##_nf, B##_nf
#define PYX_NF_PICK(_1, _2, _3, N, ...) N
#define PYX_NF(...) PYX_NF_PICK(__VA_ARGS__, PYX_NF_3, PYX_NF_2, PYX_NF_1, _)(__VA_ARGS__)
#define PYX_EXPAND(M, ...) M(__VA_ARGS__)
/* NAME: the function ONE(NAME_path, TARGET, ...) compiled once per vector
 * path, and NAME itself, which calls the one of the path in use (PARAMS
 * and ARGS: its parameter and argument lists); the portable path's takes
 * the unfused scalars. With PYX_GRU_NO_CLONES (or without the x86 paths),
 * only NAME, for the flags of the build, unfused on x86-64 without FMA
 * (tests/test_math.py compiles it so for each instruction set). NAME is
 * marked unused: a file that includes this header (_scan.h) need not call
 * every function. */
#define PYX_UNUSED __attribute__((unused))
#if PYX_SIMD_X86 && !defined(PYX_GRU_NO_CLONES)
#define PYX_CLONES(NAME, ONE, PARAMS, ARGS, ...)                                \
PYX_EXPAND(ONE, NAME##_portable, , PYX_NF(__VA_ARGS__))                         \
ONE(NAME##_avx2, PYX_TARGET_AVX2, __VA_ARGS__)                                  \
ONE(NAME##_avx512, PYX_TARGET_AVX512, __VA_ARGS__)                              \
PYX_UNUSED static void NAME PARAMS {                                            \
    switch (pyx_simd()) {                                                       \
    case PYX_SIMD_AVX512: NAME##_avx512 ARGS; return;                           \
    case PYX_SIMD_AVX2: NAME##_avx2 ARGS; return;                               \
    default: NAME##_portable ARGS;                                              \
    }                                                                           \
}
#elif defined(__x86_64__) && !defined(__FMA__)
#define PYX_CLONES(NAME, ONE, PARAMS, ARGS, ...) \
    PYX_EXPAND(ONE, NAME, PYX_UNUSED, PYX_NF(__VA_ARGS__))
#else
#define PYX_CLONES(NAME, ONE, PARAMS, ARGS, ...) ONE(NAME, PYX_UNUSED, __VA_ARGS__)
#endif

/* v[:n] = F(v[:n]) */
#define PYX_BLOCK_ONE(NAME, TARGET, T, F)                                       \
TARGET static void NAME(T* v, ptrdiff_t n) {                                    \
    for (ptrdiff_t i = 0; i < n; i++) v[i] = F(v[i]);                           \
}
#define PYX_BLOCK(NAME, T, F) PYX_CLONES(NAME, PYX_BLOCK_ONE, (T* v, ptrdiff_t n), (v, n), T, F)

PYX_BLOCK(pyx_sigmoid_block_f, float, pyx_sigmoid_f)
PYX_BLOCK(pyx_sigmoid_block_d, double, pyx_sigmoid_d)
PYX_BLOCK(pyx_tanh_block_f, float, pyx_tanh_f)
PYX_BLOCK(pyx_tanh_block_d, double, pyx_tanh_d)

/* The LSTM's forward pointwise step for one row, for the kernels' common
 * case (no peepholes, no pinned gate), compiled per path like the blocks.
 * a holds the row's gate blocks i, f, g, o (H apart), x_t W on entry and
 * the activations on return; hu is h_{t-1} U for the same columns; for j
 * in [0, n):
 *   i = sigmoid(a_i + (hu_i + b_i)), f and o alike, g = tanh(a_g + (hu_g + b_g))
 *   c = f * c_prev + i * g,  h = tanh(c) * o
 * the operations, and so the results, of _lstm_forward in _pointwise.pxi.
 * A loop a gate, each adding its bias and recurrent part as it activates:
 * one loop over all four gates kept too many constants live for the
 * registers and was slower than separate passes (docs/performance.rst). */
#define PYX_LSTM_ROW_ONE(NAME, TARGET, T, SIG, TANH)                            \
TARGET static void NAME(ptrdiff_t n, ptrdiff_t H, T* __restrict a,              \
                        const T* __restrict hu, const T* __restrict b,          \
                        const T* __restrict c_prev, T* __restrict c,            \
                        T* __restrict h) {                                      \
    for (ptrdiff_t k = 0; k < 4 * H; k += H) {                                  \
        if (k == 2 * H) continue;                                               \
        for (ptrdiff_t j = k; j < k + n; j++)                                   \
            a[j] = SIG(a[j] + (hu[j] + b[j]));                                  \
    }                                                                           \
    for (ptrdiff_t j = 2 * H; j < 2 * H + n; j++)                               \
        a[j] = TANH(a[j] + (hu[j] + b[j]));                                     \
    for (ptrdiff_t j = 0; j < n; j++)                                           \
        c[j] = a[H + j] * c_prev[j] + a[j] * a[2 * H + j];                      \
    for (ptrdiff_t j = 0; j < n; j++)                                           \
        h[j] = TANH(c[j]) * a[3 * H + j];                                       \
}
#define PYX_LSTM_ROW(NAME, T, SIG, TANH)                                        \
PYX_CLONES(NAME, PYX_LSTM_ROW_ONE,                                              \
           (ptrdiff_t n, ptrdiff_t H, T* a, const T* hu, const T* b,            \
            const T* c_prev, T* c, T* h),                                       \
           (n, H, a, hu, b, c_prev, c, h), T, SIG, TANH)

PYX_LSTM_ROW(pyx_lstm_row_f, float, pyx_sigmoid_f, pyx_tanh_f)
PYX_LSTM_ROW(pyx_lstm_row_d, double, pyx_sigmoid_d, pyx_tanh_d)

/* The GRU's (reset after the product) forward pointwise step for one row,
 * for the common case (no pinned gate), in loops like the LSTM's: a holds
 * the row's gate blocks z, r, g (H apart), x_t W on entry and the
 * activations on return; hu is h_{t-1} U for the same columns; for j in
 * [0, n):
 *   z = sigmoid(a_z + (hu_z + b_z)), r alike, nn = hu_g + b_hg,
 *   g = tanh(a_g + (b_g + r * nn)),  h = z * h_prev + (1 - z) * g
 * the operations, and so the results, of _gru_after_forward in
 * _pointwise.pxi. */
#define PYX_GRU_AFTER_ROW_ONE(NAME, TARGET, T, SIG, TANH)                       \
TARGET static void NAME(ptrdiff_t n, ptrdiff_t H, T* __restrict a,              \
                        const T* __restrict hu, const T* __restrict b,          \
                        const T* __restrict b_hg, const T* __restrict h_prev,   \
                        T* __restrict nn, T* __restrict h) {                    \
    for (ptrdiff_t k = 0; k < 2 * H; k += H)                                    \
        for (ptrdiff_t j = k; j < k + n; j++)                                   \
            a[j] = SIG(a[j] + (hu[j] + b[j]));                                  \
    for (ptrdiff_t j = 0; j < n; j++) {                                         \
        T m = hu[2 * H + j] + b_hg[j];                                          \
        nn[j] = m;                                                              \
        a[2 * H + j] = TANH(a[2 * H + j] + (b[2 * H + j] + a[H + j] * m));      \
    }                                                                           \
    for (ptrdiff_t j = 0; j < n; j++)                                           \
        h[j] = a[j] * h_prev[j] + ((T) 1 - a[j]) * a[2 * H + j];                \
}
#define PYX_GRU_AFTER_ROW(NAME, T, SIG, TANH)                                   \
PYX_CLONES(NAME, PYX_GRU_AFTER_ROW_ONE,                                         \
           (ptrdiff_t n, ptrdiff_t H, T* a, const T* hu, const T* b,            \
            const T* b_hg, const T* h_prev, T* nn, T* h),                       \
           (n, H, a, hu, b, b_hg, h_prev, nn, h), T, SIG, TANH)

PYX_GRU_AFTER_ROW(pyx_gru_after_row_f, float, pyx_sigmoid_f, pyx_tanh_f)
PYX_GRU_AFTER_ROW(pyx_gru_after_row_d, double, pyx_sigmoid_d, pyx_tanh_d)

#endif
