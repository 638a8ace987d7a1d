/* The activations of the kernels, in the precision of the data.
 *
 * Design: libm's tanhf and expf are calls that do not vectorise, so a loop
 * over a gate block ran at the speed of its calls (docs/performance.rst,
 * The activations). These are branch-free arithmetic (selects, not
 * jumps) that vectorise over a contiguous block (the *_block functions;
 * float32 written on the vectors themselves, see below). The block functions are compiled once per
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
 *
 * In float32 the same arithmetic is also written on whole vectors, with
 * each path's own instructions, for the blocks and the rows: compiled from
 * the scalar form, the clamp and the sigmoid's select became a compare and
 * a blend (3 micro-operations, one a cycle), where a vector max is one;
 * the vector form is 7 to 15% faster (docs/performance.rst). The scalar and
 * vector forms are one macro (PYX_FLOAT_MATH), so they do the same IEEE
 * operations and give the same bits; a block's elements past its last
 * whole vector take the scalar form.
 */
#ifndef PYX_GRU_ACTIVATIONS_H
#define PYX_GRU_ACTIVATIONS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "_simd.h"

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#elif defined(__GNUC__) && defined(__aarch64__)
#include <arm_neon.h>
#endif

/* The float32 functions, written once for a scalar and for a vector of any
 * path: VT is float or the path's vector of floats, ATTR the functions'
 * attributes, and the kit's operations
 *   K(x)            every element x (a constant)
 *   FMA(a, b, c)    a * b + c: fused (one rounding), or a multiply and an
 *                   add where the path's products are (x86-64 without FMA)
 *   MAXK(k, x)      k > x ? k : x, for a constant k (NaN x stays NaN)
 *   SELGE(a, p, q)  a >= 0 ? p : q; a vector may choose by a's sign bit,
 *                   which differs for -0 and NaN only, where the sigmoid's
 *                   two numerators give the same result
 *   NABS(a)         -|a|
 *   POW2(t)         the float whose bits are those of t shifted left by 23
 *   COPYSIGN(x, a)  x with the sign of a
 * with + - * / elementwise (GCC's vector extensions on a vector). */
#define PYX_FLOAT_MATH(SFX, ATTR, VT, K, FMA, MAXK, SELGE, NABS, POW2, COPYSIGN) \
/* exp(x) = scale * (1 + q) for x <= 0: returns q = exp(r) - 1 and sets     \
 * *scale = 2^n (x = n ln2 + r). q = r + r^2 p(r), p of degree 5 in pairs   \
 * of terms (Estrin's scheme): (c0 + c1 r) + r^2 ((c2 + c3 r) + r^2 (c4 +   \
 * c5 r)), the five multiply-adds of Horner's rule in a chain of three, not \
 * five (these functions wait on their chains more than on the ALUs). */    \
ATTR VT pyx_exp_parts_f##SFX(VT x, VT* scale)                                   \
{                                                                               \
    VT t, n, r, r2, p;                                                          \
    x = MAXK(-87.0f, x);                                                        \
    /* n + 127 in the low bits: 1.5 * 2^23 + 127 */                             \
    t = FMA(x, K(1.44269504088896341f), K(12583039.0f));                        \
    n = t - K(12583039.0f);                                                     \
    r = FMA(n, K(-0.693359375f), x);                                            \
    r = FMA(n, K(2.12194440e-4f), r);                                           \
    r2 = r * r;                                                                 \
    p = FMA(K(1.9875691500e-4f), r, K(1.3981999507e-3f));                      \
    p = FMA(p, r2, FMA(K(8.3334519073e-3f), r, K(4.1665795894e-2f)));          \
    p = FMA(p, r2, FMA(K(1.6666665459e-1f), r, K(5.0000001201e-1f)));          \
    *scale = POW2(t); /* 2^n: the magic number's high bits shift out */         \
    return FMA(p, r2, r);                                                       \
}                                                                               \
                                                                                \
ATTR VT pyx_sigmoid_f##SFX(VT a)                                                \
{                                                                               \
    VT scale, q = pyx_exp_parts_f##SFX(NABS(a), &scale);                        \
    VT e = FMA(q, scale, scale);  /* exp(-|a|) */                               \
    return SELGE(a, K(1.0f), e) / (K(1.0f) + e);                                \
}                                                                               \
                                                                                \
/* tanh(|a|) = -m / (2 + m), m = exp(-2|a|) - 1 = scale * q + (scale - 1),     \
 * which keeps full relative accuracy near 0; then the sign of a. */           \
ATTR VT pyx_tanh_f##SFX(VT a)                                                   \
{                                                                               \
    VT scale, q = pyx_exp_parts_f##SFX(K(2.0f) * NABS(a), &scale);              \
    VT m = FMA(scale, q, scale - K(1.0f));                                      \
    return COPYSIGN(-m / (K(2.0f) + m), a);                                     \
}

/* The scalar functions, in two builds: with fmaf and fma (one rounding),
 * and with the suffix _nf as a multiply and an add (two roundings). The
 * vector paths with FMA and aarch64 take the fused ones; the portable path
 * on x86-64 takes _nf, as its products do (_gemm.h): its CPUs need not have
 * FMA, and there libm's fmaf is a routine of some 20 ns a call (the sigmoid
 * and tanh took 50 times the time of the products; docs/performance.rst). */
#define PYX_MULADD(a, b, c) ((a) * (b) + (c))
static inline float pyx_pow2_f(float t) {
    uint32_t bits;
    memcpy(&bits, &t, 4);
    bits <<= 23;
    memcpy(&t, &bits, 4);
    return t;
}
#define PYX_SCALAR_K(x) (x)
#define PYX_SCALAR_MAXK(k, x) ((k) > (x) ? (k) : (x))
#define PYX_SCALAR_SELGE(a, p, q) ((a) >= 0 ? (p) : (q))
#define PYX_SCALAR_NABS(a) (-fabsf(a))
PYX_FLOAT_MATH(, static inline, float, PYX_SCALAR_K, fmaf, PYX_SCALAR_MAXK, PYX_SCALAR_SELGE,
               PYX_SCALAR_NABS, pyx_pow2_f, copysignf)
PYX_FLOAT_MATH(_nf, static inline, float, PYX_SCALAR_K, PYX_MULADD, PYX_SCALAR_MAXK,
               PYX_SCALAR_SELGE, PYX_SCALAR_NABS, pyx_pow2_f, copysignf)

#define PYX_DOUBLES(SFX, FMA)                                                   \
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
static inline double pyx_sigmoid_d##SFX(double a)                               \
{                                                                               \
    double scale, q = pyx_exp_parts_d##SFX(-fabs(a), &scale);                   \
    double e = (q + 1.0) * scale;                                               \
    return (a >= 0.0 ? 1.0 : e) / (1.0 + e);                                    \
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

PYX_DOUBLES(, fma)
PYX_DOUBLES(_nf, PYX_MULADD)

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
#define PYX_DISPATCH(NAME, PARAMS, ARGS)                                        \
PYX_UNUSED static void NAME PARAMS {                                            \
    switch (pyx_simd()) {                                                       \
    case PYX_SIMD_AVX512: NAME##_avx512 ARGS; return;                           \
    case PYX_SIMD_AVX2: NAME##_avx2 ARGS; return;                               \
    default: NAME##_portable ARGS;                                              \
    }                                                                           \
}
#if PYX_SIMD_X86 && !defined(PYX_GRU_NO_CLONES)
#define PYX_CLONES(NAME, ONE, PARAMS, ARGS, ...)                                \
PYX_EXPAND(ONE, NAME##_portable, , PYX_NF(__VA_ARGS__))                         \
ONE(NAME##_avx2, PYX_TARGET_AVX2, __VA_ARGS__)                                  \
ONE(NAME##_avx512, PYX_TARGET_AVX512, __VA_ARGS__)                              \
PYX_DISPATCH(NAME, PARAMS, ARGS)
#elif defined(__x86_64__) && !defined(__FMA__)
#define PYX_CLONES(NAME, ONE, PARAMS, ARGS, ...) \
    PYX_EXPAND(ONE, NAME, PYX_UNUSED, PYX_NF(__VA_ARGS__))
#else
#define PYX_CLONES(NAME, ONE, PARAMS, ARGS, ...) ONE(NAME, PYX_UNUSED, __VA_ARGS__)
#endif

/* Kits: what a loop over elements (PYX_EACH) does with them. A kit X has
 * X_E (the element type), X_N (elements at a time), X_T (their type),
 * X_LD(p) and X_ST(p, v) (unaligned load and store), X_K(x) (every
 * element x), X_SIG and X_TANH. The scalar kits: */
#define pyx_sf_E float
#define pyx_sf_N 1
#define pyx_sf_T float
#define pyx_sf_LD(p) (*(p))
#define pyx_sf_ST(p, v) (*(p) = (v))
#define pyx_sf_K(x) ((float)(x))
#define pyx_sf_SIG pyx_sigmoid_f
#define pyx_sf_TANH pyx_tanh_f
#define pyx_sf_nf_E float
#define pyx_sf_nf_N 1
#define pyx_sf_nf_T float
#define pyx_sf_nf_LD(p) (*(p))
#define pyx_sf_nf_ST(p, v) (*(p) = (v))
#define pyx_sf_nf_K(x) ((float)(x))
#define pyx_sf_nf_SIG pyx_sigmoid_f_nf
#define pyx_sf_nf_TANH pyx_tanh_f_nf
#define pyx_sd_E double
#define pyx_sd_N 1
#define pyx_sd_T double
#define pyx_sd_LD(p) (*(p))
#define pyx_sd_ST(p, v) (*(p) = (v))
#define pyx_sd_K(x) ((double)(x))
#define pyx_sd_SIG pyx_sigmoid_d
#define pyx_sd_TANH pyx_tanh_d
#define pyx_sd_nf_E double
#define pyx_sd_nf_N 1
#define pyx_sd_nf_T double
#define pyx_sd_nf_LD(p) (*(p))
#define pyx_sd_nf_ST(p, v) (*(p) = (v))
#define pyx_sd_nf_K(x) ((double)(x))
#define pyx_sd_nf_SIG pyx_sigmoid_d_nf
#define pyx_sd_nf_TANH pyx_tanh_d_nf

/* The float32 vector kits, one per path, each with PYX_FLOAT_MATH's
 * functions on its vectors (suffix _v<path>). The bit operations (-|a|,
 * 2^n, the sign) are GCC's vector extensions on the same bits as int32;
 * FMA, the max and the select the path's own instructions. */
typedef int pyx_vi4 __attribute__((vector_size(16)));
typedef int pyx_vi8 __attribute__((vector_size(32)));
typedef int pyx_vi16 __attribute__((vector_size(64)));
#define PYX_VNABS(VT, VI, K, a) ((VT)((VI)(a) | (VI)K(-0.0f)))
#define PYX_VPOW2(VT, VI, t) ((VT)((VI)(t) << 23))
#define PYX_VCOPYSIGN(VT, VI, K, x, a) \
    ((VT)(((VI)(x) & ~(VI)K(-0.0f)) | ((VI)(a) & (VI)K(-0.0f))))
#define PYX_VKIT_MATH(P, TARGET)                                                \
PYX_FLOAT_MATH(_v##P, TARGET static inline __attribute__((always_inline)), pyx_v##P##_T, \
               pyx_v##P##_K, pyx_v##P##_FMA, pyx_v##P##_MAXK, pyx_v##P##_SELGE,      \
               pyx_v##P##_NABS, pyx_v##P##_POW2, pyx_v##P##_COPYSIGN)
#define pyx_vsse_E float
#define pyx_vneon_E float
#define pyx_vavx2_E float
#define pyx_vavx512_E float

#if defined(__GNUC__) && defined(__x86_64__)
/* x86-64 without FMA (the portable path): SSE2, a multiply and an add */
#define pyx_vsse_N 4
#define pyx_vsse_T __m128
#define pyx_vsse_LD _mm_loadu_ps
#define pyx_vsse_ST _mm_storeu_ps
#define pyx_vsse_K _mm_set1_ps
#define pyx_vsse_FMA PYX_MULADD
#define pyx_vsse_MAXK(k, x) _mm_max_ps(_mm_set1_ps(k), x)
#define pyx_vsse_SELGE(a, p, q) ((__m128)(((pyx_vi4)((a) >= _mm_setzero_ps()) & (pyx_vi4)(p)) \
                                          | (~(pyx_vi4)((a) >= _mm_setzero_ps()) & (pyx_vi4)(q))))
#define pyx_vsse_NABS(a) PYX_VNABS(__m128, pyx_vi4, _mm_set1_ps, a)
#define pyx_vsse_POW2(t) PYX_VPOW2(__m128, pyx_vi4, t)
#define pyx_vsse_COPYSIGN(x, a) PYX_VCOPYSIGN(__m128, pyx_vi4, _mm_set1_ps, x, a)
#define pyx_vsse_SIG pyx_sigmoid_f_vsse
#define pyx_vsse_TANH pyx_tanh_f_vsse
PYX_VKIT_MATH(sse, )
#endif

#if PYX_SIMD_X86
/* AVX2 + FMA; the sigmoid's select takes a's sign bit (vblendvps) */
#define pyx_vavx2_N 8
#define pyx_vavx2_T __m256
#define pyx_vavx2_LD _mm256_loadu_ps
#define pyx_vavx2_ST _mm256_storeu_ps
#define pyx_vavx2_K _mm256_set1_ps
#define pyx_vavx2_FMA _mm256_fmadd_ps
#define pyx_vavx2_MAXK(k, x) _mm256_max_ps(_mm256_set1_ps(k), x)
#define pyx_vavx2_SELGE(a, p, q) _mm256_blendv_ps(p, q, a)
#define pyx_vavx2_NABS(a) PYX_VNABS(__m256, pyx_vi8, _mm256_set1_ps, a)
#define pyx_vavx2_POW2(t) PYX_VPOW2(__m256, pyx_vi8, t)
#define pyx_vavx2_COPYSIGN(x, a) PYX_VCOPYSIGN(__m256, pyx_vi8, _mm256_set1_ps, x, a)
#define pyx_vavx2_SIG pyx_sigmoid_f_vavx2
#define pyx_vavx2_TANH pyx_tanh_f_vavx2
PYX_VKIT_MATH(avx2, PYX_TARGET_AVX2)

/* AVX-512F; the select through a mask register */
#define pyx_vavx512_N 16
#define pyx_vavx512_T __m512
#define pyx_vavx512_LD _mm512_loadu_ps
#define pyx_vavx512_ST _mm512_storeu_ps
#define pyx_vavx512_K _mm512_set1_ps
#define pyx_vavx512_FMA _mm512_fmadd_ps
#define pyx_vavx512_MAXK(k, x) _mm512_max_ps(_mm512_set1_ps(k), x)
#define pyx_vavx512_SELGE(a, p, q) \
    _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, _mm512_setzero_ps(), _CMP_GE_OQ), q, p)
#define pyx_vavx512_NABS(a) PYX_VNABS(__m512, pyx_vi16, _mm512_set1_ps, a)
#define pyx_vavx512_POW2(t) PYX_VPOW2(__m512, pyx_vi16, t)
#define pyx_vavx512_COPYSIGN(x, a) PYX_VCOPYSIGN(__m512, pyx_vi16, _mm512_set1_ps, x, a)
#define pyx_vavx512_SIG pyx_sigmoid_f_vavx512
#define pyx_vavx512_TANH pyx_tanh_f_vavx512
PYX_VKIT_MATH(avx512, PYX_TARGET_AVX512)
#endif

#if defined(__GNUC__) && defined(__aarch64__)
/* aarch64: NEON, fused. FMAX gives NaN for a NaN operand: the clamp keeps
 * NaN, as the scalar's select does. */
#define pyx_vneon_N 4
#define pyx_vneon_T float32x4_t
#define pyx_vneon_LD vld1q_f32
#define pyx_vneon_ST vst1q_f32
#define pyx_vneon_K vdupq_n_f32
#define pyx_vneon_FMA(a, b, c) vfmaq_f32(c, a, b)
#define pyx_vneon_MAXK(k, x) vmaxq_f32(vdupq_n_f32(k), x)
#define pyx_vneon_SELGE(a, p, q) vbslq_f32(vcgeq_f32(a, vdupq_n_f32(0.0f)), p, q)
#define pyx_vneon_NABS(a) PYX_VNABS(float32x4_t, pyx_vi4, vdupq_n_f32, a)
#define pyx_vneon_POW2(t) PYX_VPOW2(float32x4_t, pyx_vi4, t)
#define pyx_vneon_COPYSIGN(x, a) PYX_VCOPYSIGN(float32x4_t, pyx_vi4, vdupq_n_f32, x, a)
#define pyx_vneon_SIG pyx_sigmoid_f_vneon
#define pyx_vneon_TANH pyx_tanh_f_vneon
PYX_VKIT_MATH(neon, )
#endif

/* Each path's kits, "vector kit, scalar kit for the rest": float32 takes
 * its vectors, float64 the scalars (which GCC vectorises). *_build: the one
 * version of a build without clones, by its flags. */
#define pyx_kits_f_portable pyx_vsse, pyx_sf_nf
#define pyx_kits_f_avx2 pyx_vavx2, pyx_sf
#define pyx_kits_f_avx512 pyx_vavx512, pyx_sf
#define pyx_kits_d_portable pyx_sd_nf, pyx_sd_nf
#define pyx_kits_d_avx2 pyx_sd, pyx_sd
#define pyx_kits_d_avx512 pyx_sd, pyx_sd
#if PYX_SIMD_X86 && defined(__AVX512F__) && defined(__FMA__)
#define pyx_kits_f_build pyx_vavx512, pyx_sf
#elif PYX_SIMD_X86 && defined(__AVX2__) && defined(__FMA__)
#define pyx_kits_f_build pyx_vavx2, pyx_sf
#elif defined(__x86_64__) && !defined(__FMA__)
#define pyx_kits_f_build pyx_vsse, pyx_sf_nf
#elif defined(__GNUC__) && defined(__aarch64__)
#define pyx_kits_f_build pyx_vneon, pyx_sf
#else
#define pyx_kits_f_build pyx_sf, pyx_sf
#endif
#if defined(__x86_64__) && !defined(__FMA__)
#define pyx_kits_d_build pyx_sd_nf, pyx_sd_nf
#else
#define pyx_kits_d_build pyx_sd, pyx_sd
#endif

/* NAME compiled once per path as ONE(NAME_path, TARGET, VK, SK, ...) with
 * the path's kits from KITS (pyx_kits_f or pyx_kits_d), and NAME calling
 * the one of the path in use; or once, with the build's kits (as
 * PYX_CLONES). */
#if PYX_SIMD_X86 && !defined(PYX_GRU_NO_CLONES)
#define PYX_KIT_CLONES(NAME, ONE, PARAMS, ARGS, KITS, ...)                      \
PYX_EXPAND(ONE, NAME##_portable, , KITS##_portable, __VA_ARGS__)                \
PYX_EXPAND(ONE, NAME##_avx2, PYX_TARGET_AVX2, KITS##_avx2, __VA_ARGS__)         \
PYX_EXPAND(ONE, NAME##_avx512, PYX_TARGET_AVX512, KITS##_avx512, __VA_ARGS__)   \
PYX_DISPATCH(NAME, PARAMS, ARGS)
#else
#define PYX_KIT_CLONES(NAME, ONE, PARAMS, ARGS, KITS, ...) \
    PYX_EXPAND(ONE, NAME, PYX_UNUSED, KITS##_build, __VA_ARGS__)
#endif

/* for j in [lo, hi): BODY(VK, j) on VK_N elements at a time, then
 * BODY(SK, j) on each element left (with a scalar kit VK, only the
 * second loop, which GCC vectorises) */
#define PYX_EACH(VK, SK, j, lo, hi, BODY) {                                     \
    ptrdiff_t j = (lo);                                                         \
    if (VK##_N > 1)                                                             \
        for (; j <= (hi) - VK##_N; j += VK##_N) { BODY(VK, j) }                 \
    for (; j < (hi); j++) { BODY(SK, j) }                                       \
}

/* v[:n] = F(v[:n]) */
#define PYX_SIG_V(K, j) K##_ST(v + j, K##_SIG(K##_LD(v + j)));
#define PYX_TANH_V(K, j) K##_ST(v + j, K##_TANH(K##_LD(v + j)));
#define PYX_BLOCK_ONE(NAME, TARGET, VK, SK, BODY)                               \
TARGET static void NAME(VK##_E* v, ptrdiff_t n) PYX_EACH(VK, SK, i, 0, n, BODY)
#define PYX_BLOCK(NAME, T, KITS, BODY) \
    PYX_KIT_CLONES(NAME, PYX_BLOCK_ONE, (T* v, ptrdiff_t n), (v, n), KITS, BODY)

PYX_BLOCK(pyx_sigmoid_block_f, float, pyx_kits_f, PYX_SIG_V)
PYX_BLOCK(pyx_sigmoid_block_d, double, pyx_kits_d, PYX_SIG_V)
PYX_BLOCK(pyx_tanh_block_f, float, pyx_kits_f, PYX_TANH_V)
PYX_BLOCK(pyx_tanh_block_d, double, pyx_kits_d, PYX_TANH_V)

/* a[j] = F(a[j] + (hu[j] + b[j])), F the sigmoid or tanh */
#define PYX_SIG_GATE(K, j) K##_ST(a + j, K##_SIG(K##_LD(a + j) + (K##_LD(hu + j) + K##_LD(b + j))));
#define PYX_TANH_GATE(K, j) K##_ST(a + j, K##_TANH(K##_LD(a + j) + (K##_LD(hu + j) + K##_LD(b + j))));

/* The LSTM's forward pointwise step for one row, for the kernels' common
 * case (no pinned gate), compiled per path like the blocks.
 * a holds the row's gate blocks i, f, g, o (H apart), x_t W on entry and
 * the activations on return; hu is h_{t-1} U for the same columns; for j
 * in [0, n):
 *   i = sigmoid(a_i + (hu_i + b_i)), f and o alike, g = tanh(a_g + (hu_g + b_g))
 *   c = f * c_prev + i * g,  h = tanh(c) * o
 * the operations, and so the results, of _lstm_forward in _pointwise.pxi.
 * A loop a gate, each adding its bias and recurrent part as it activates:
 * one loop over all four gates kept too many constants live for the
 * registers and was slower than separate passes (docs/performance.rst). */
#define PYX_LSTM_C(K, j) \
    K##_ST(c + j, K##_LD(a + H + j) * K##_LD(c_prev + j) + K##_LD(a + j) * K##_LD(a + 2 * H + j));
#define PYX_LSTM_H(K, j) K##_ST(h + j, K##_TANH(K##_LD(c + j)) * K##_LD(a + 3 * H + j));
#define PYX_LSTM_ROW_BODY(VK, SK)                                               \
    for (ptrdiff_t k = 0; k < 4 * H; k += H) {                                  \
        if (k == 2 * H) continue;                                               \
        PYX_EACH(VK, SK, j, k, k + n, PYX_SIG_GATE)                             \
    }                                                                           \
    PYX_EACH(VK, SK, j, 2 * H, 2 * H + n, PYX_TANH_GATE)                        \
    PYX_EACH(VK, SK, j, 0, n, PYX_LSTM_C)                                       \
    PYX_EACH(VK, SK, j, 0, n, PYX_LSTM_H)
/* With peepholes (P: p_i, p_f, p_o, H apart), in the passes' order: the
 * input and forget gates add p * c_prev before the rest, the output gate
 * p_o * c after it, c being known only then:
 *   i = sigmoid((a_i + p_i * c_prev) + (hu_i + b_i)), f alike,
 *   o = sigmoid((a_o + (hu_o + b_o)) + p_o * c)
 * PYX_PEEP_IN_GATE takes gate block k ([k, k + H) of a, of P), and
 * PYX_PEEP_OUT_GATE the output gate's block ko, whose peephole is the last
 * H of P (P + ko - H: the LSTM's third block, the CIFG's second). */
#define PYX_PEEP_IN_GATE(K, j) K##_ST(a + j, K##_SIG((K##_LD(a + j)               \
    + K##_LD(P + j) * K##_LD(c_prev + j - k)) + (K##_LD(hu + j) + K##_LD(b + j))));
#define PYX_PEEP_OUT_GATE(K, j) K##_ST(a + j, K##_SIG((K##_LD(a + j)              \
    + (K##_LD(hu + j) + K##_LD(b + j))) + K##_LD(P + j - H) * K##_LD(c + j - ko)));
/* The peephole rows of both kinds: NIN gates that see c_prev (the LSTM's
 * i and f, the CIFG's f), g, then c by CSTEP, o, and h by HSTEP. */
#define PYX_PEEP_ROW(VK, SK, NIN, CSTEP, HSTEP)                                 \
    for (ptrdiff_t k = 0; k < (NIN) * H; k += H)                                \
        PYX_EACH(VK, SK, j, k, k + n, PYX_PEEP_IN_GATE)                         \
    PYX_EACH(VK, SK, j, (NIN) * H, (NIN) * H + n, PYX_TANH_GATE)                \
    PYX_EACH(VK, SK, j, 0, n, CSTEP)                                            \
    {                                                                           \
        const ptrdiff_t ko = ((NIN) + 1) * H;                                   \
        PYX_EACH(VK, SK, j, ko, ko + n, PYX_PEEP_OUT_GATE)                      \
    }                                                                           \
    PYX_EACH(VK, SK, j, 0, n, HSTEP)
#define PYX_LSTM_PEEP_ROW_BODY(VK, SK) PYX_PEEP_ROW(VK, SK, 2, PYX_LSTM_C, PYX_LSTM_H)
/* The forward rows of the kinds with a cell state (the LSTM, the CIFG):
 * BODY(VK, SK) their loops without peepholes (P NULL), PEEP with the
 * peepholes P. */
#define PYX_CELL_ROW_ONE(NAME, TARGET, VK, SK, BODY, PEEP)                      \
TARGET static void NAME(ptrdiff_t n, ptrdiff_t H, VK##_E* __restrict a,         \
                        const VK##_E* __restrict hu, const VK##_E* __restrict b, \
                        const VK##_E* __restrict P,                             \
                        const VK##_E* __restrict c_prev, VK##_E* __restrict c,  \
                        VK##_E* __restrict h) {                                 \
    if (P == NULL) { BODY(VK, SK) } else { PEEP(VK, SK) }                       \
}
#define PYX_CELL_ROW(NAME, T, KITS, BODY, PEEP)                                 \
PYX_KIT_CLONES(NAME, PYX_CELL_ROW_ONE,                                          \
               (ptrdiff_t n, ptrdiff_t H, T* a, const T* hu, const T* b,        \
                const T* P, const T* c_prev, T* c, T* h),                       \
               (n, H, a, hu, b, P, c_prev, c, h), KITS, BODY, PEEP)

PYX_CELL_ROW(pyx_lstm_row_f, float, pyx_kits_f, PYX_LSTM_ROW_BODY, PYX_LSTM_PEEP_ROW_BODY)
PYX_CELL_ROW(pyx_lstm_row_d, double, pyx_kits_d, PYX_LSTM_ROW_BODY, PYX_LSTM_PEEP_ROW_BODY)

/* The GRU's (reset after the product) forward pointwise step for one row,
 * for the common case (no pinned gate), in loops like the LSTM's: a holds
 * the row's gate blocks z, r, g (H apart), x_t W on entry and the
 * activations on return; hu is h_{t-1} U for the same columns; for j in
 * [0, n):
 *   z = sigmoid(a_z + (hu_z + b_z)), r alike, nn = hu_g + b_hg,
 *   g = tanh(a_g + (b_g + r * nn)),  h = z * h_prev + (1 - z) * g
 * the operations, and so the results, of _gru_after_forward in
 * _pointwise.pxi. */
#define PYX_GRU_G(K, j) {                                                       \
    K##_T m = K##_LD(hu + 2 * H + j) + K##_LD(b_hg + j);                        \
    K##_ST(nn + j, m);                                                          \
    K##_ST(a + 2 * H + j,                                                       \
           K##_TANH(K##_LD(a + 2 * H + j) + (K##_LD(b + 2 * H + j) + K##_LD(a + H + j) * m))); \
}
#define PYX_GRU_H(K, j)                                                         \
    K##_ST(h + j, K##_LD(a + j) * K##_LD(h_prev + j)                            \
                  + (K##_K(1) - K##_LD(a + j)) * K##_LD(a + 2 * H + j));
#define PYX_GRU_AFTER_ROW_BODY(VK, SK)                                          \
    for (ptrdiff_t k = 0; k < 2 * H; k += H)                                    \
        PYX_EACH(VK, SK, j, k, k + n, PYX_SIG_GATE)                             \
    PYX_EACH(VK, SK, j, 0, n, PYX_GRU_G)                                        \
    PYX_EACH(VK, SK, j, 0, n, PYX_GRU_H)
/* The forward rows of the kinds with the reset after the product (the GRU,
 * the MGU): BODY(VK, SK) their loops. */
#define PYX_AFTER_ROW_ONE(NAME, TARGET, VK, SK, BODY)                           \
TARGET static void NAME(ptrdiff_t n, ptrdiff_t H, VK##_E* __restrict a,         \
                        const VK##_E* __restrict hu, const VK##_E* __restrict b, \
                        const VK##_E* __restrict b_hg,                          \
                        const VK##_E* __restrict h_prev,                        \
                        VK##_E* __restrict nn, VK##_E* __restrict h) { BODY(VK, SK) }
#define PYX_AFTER_ROW(NAME, T, KITS, BODY)                                      \
PYX_KIT_CLONES(NAME, PYX_AFTER_ROW_ONE,                                         \
               (ptrdiff_t n, ptrdiff_t H, T* a, const T* hu, const T* b,        \
                const T* b_hg, const T* h_prev, T* nn, T* h),                   \
               (n, H, a, hu, b, b_hg, h_prev, nn, h), KITS, BODY)

PYX_AFTER_ROW(pyx_gru_after_row_f, float, pyx_kits_f, PYX_GRU_AFTER_ROW_BODY)
PYX_AFTER_ROW(pyx_gru_after_row_d, double, pyx_kits_d, PYX_GRU_AFTER_ROW_BODY)

/* The other kinds' forward steps where no gate is pinned, a row a call in
 * the same way (the operations, and so the results, of their passes in
 * _pointwise.pxi). The vanilla RNN: h = a = tanh(a + (hu + b)). */
#define PYX_RNN_H(K, j) {                                                       \
    K##_T g = K##_TANH(K##_LD(a + j) + (K##_LD(hu + j) + K##_LD(b + j)));       \
    K##_ST(a + j, g);                                                           \
    K##_ST(h + j, g);                                                           \
}
#define PYX_RNN_ROW_ONE(NAME, TARGET, VK, SK, ...)                              \
TARGET static void NAME(ptrdiff_t n, VK##_E* __restrict a,                      \
                        const VK##_E* __restrict hu, const VK##_E* __restrict b, \
                        VK##_E* __restrict h) {                                 \
    PYX_EACH(VK, SK, j, 0, n, PYX_RNN_H)                                        \
}
#define PYX_RNN_ROW(NAME, T, KITS)                                              \
PYX_KIT_CLONES(NAME, PYX_RNN_ROW_ONE,                                           \
               (ptrdiff_t n, T* a, const T* hu, const T* b, T* h),              \
               (n, a, hu, b, h), KITS)
PYX_RNN_ROW(pyx_rnn_row_f, float, pyx_kits_f)
PYX_RNN_ROW(pyx_rnn_row_d, double, pyx_kits_d)

/* The candidate and the update, z already activated, the gate blocks az
 * and ag given apart (the second half of the GRU and the MGU with the
 * reset before the product; the simplified GRU after its gate):
 *   g = tanh(a_g + (hu_g + b_g)),  h = z * h_prev + (1 - z) * g */
#define PYX_UPDATE_H(K, j) {                                                    \
    K##_T z = K##_LD(az + j);                                                   \
    K##_T g = K##_TANH(K##_LD(ag + j) + (K##_LD(hug + j) + K##_LD(bg + j)));    \
    K##_ST(ag + j, g);                                                          \
    K##_ST(h + j, z * K##_LD(h_prev + j) + (K##_K(1) - z) * g);                 \
}
#define PYX_UPDATE_ROW_ONE(NAME, TARGET, VK, SK, ...)                           \
TARGET static void NAME(ptrdiff_t n, const VK##_E* __restrict az,               \
                        VK##_E* __restrict ag, const VK##_E* __restrict hug,    \
                        const VK##_E* __restrict bg,                            \
                        const VK##_E* __restrict h_prev, VK##_E* __restrict h) { \
    PYX_EACH(VK, SK, j, 0, n, PYX_UPDATE_H)                                     \
}
#define PYX_UPDATE_ROW(NAME, T, KITS)                                           \
PYX_KIT_CLONES(NAME, PYX_UPDATE_ROW_ONE,                                        \
               (ptrdiff_t n, const T* az, T* ag, const T* hug, const T* bg,     \
                const T* h_prev, T* h),                                         \
               (n, az, ag, hug, bg, h_prev, h), KITS)
PYX_UPDATE_ROW(pyx_update_row_f, float, pyx_kits_f)
PYX_UPDATE_ROW(pyx_update_row_d, double, pyx_kits_d)

/* The first `gates` gate blocks of a row (H apart): a = sigmoid(a + (hu +
 * b)) (the simplified GRU's and the MGU's f, the GRU's z and r). */
#define PYX_SIGMOID_ROW_ONE(NAME, TARGET, VK, SK, ...)                          \
TARGET static void NAME(ptrdiff_t n, ptrdiff_t H, ptrdiff_t gates,              \
                        VK##_E* __restrict a, const VK##_E* __restrict hu,      \
                        const VK##_E* __restrict b) {                           \
    for (ptrdiff_t k = 0; k < gates * H; k += H)                                \
        PYX_EACH(VK, SK, j, k, k + n, PYX_SIG_GATE)                             \
}
#define PYX_SIGMOID_ROW(NAME, T, KITS)                                          \
PYX_KIT_CLONES(NAME, PYX_SIGMOID_ROW_ONE,                                       \
               (ptrdiff_t n, ptrdiff_t H, ptrdiff_t gates, T* a, const T* hu,   \
                const T* b),                                                    \
               (n, H, gates, a, hu, b), KITS)
PYX_SIGMOID_ROW(pyx_sigmoid_row_f, float, pyx_kits_f)
PYX_SIGMOID_ROW(pyx_sigmoid_row_d, double, pyx_kits_d)

/* The MGU with the reset after the product: f = sigmoid(a_f + (hu_f +
 * b_f)), nn = hu_g + b_hg, g = tanh(a_g + (b_g + f * nn)),
 * h = f * h_prev + (1 - f) * g (the GRU's row with r = z = f). */
#define PYX_MGU_G(K, j) {                                                       \
    K##_T m = K##_LD(hu + H + j) + K##_LD(b_hg + j);                            \
    K##_ST(nn + j, m);                                                          \
    K##_T f = K##_LD(a + j);                                                    \
    K##_T g = K##_TANH(K##_LD(a + H + j) + (K##_LD(b + H + j) + f * m));        \
    K##_ST(a + H + j, g);                                                       \
    K##_ST(h + j, f * K##_LD(h_prev + j) + (K##_K(1) - f) * g);                 \
}
#define PYX_MGU_AFTER_ROW_BODY(VK, SK)                                          \
    PYX_EACH(VK, SK, j, 0, n, PYX_SIG_GATE)                                     \
    PYX_EACH(VK, SK, j, 0, n, PYX_MGU_G)
PYX_AFTER_ROW(pyx_mgu_after_row_f, float, pyx_kits_f, PYX_MGU_AFTER_ROW_BODY)
PYX_AFTER_ROW(pyx_mgu_after_row_d, double, pyx_kits_d, PYX_MGU_AFTER_ROW_BODY)

/* The coupled LSTM (i = 1 - f), no peepholes: a holds f, g, o (H apart);
 *   f = sigmoid(a_f + (hu_f + b_f)), o alike, g = tanh(a_g + (hu_g + b_g))
 *   c = f * c_prev + (1 - f) * g,  h = tanh(c) * o */
#define PYX_CIFG_C(K, j) {                                                      \
    K##_T f = K##_LD(a + j);                                                    \
    K##_ST(c + j, f * K##_LD(c_prev + j) + (K##_K(1) - f) * K##_LD(a + H + j)); \
}
#define PYX_CIFG_H(K, j) K##_ST(h + j, K##_TANH(K##_LD(c + j)) * K##_LD(a + 2 * H + j));
#define PYX_CIFG_ROW_BODY(VK, SK)                                               \
    PYX_EACH(VK, SK, j, 0, n, PYX_SIG_GATE)                                     \
    PYX_EACH(VK, SK, j, H, H + n, PYX_TANH_GATE)                                \
    PYX_EACH(VK, SK, j, 2 * H, 2 * H + n, PYX_SIG_GATE)                         \
    PYX_EACH(VK, SK, j, 0, n, PYX_CIFG_C)                                       \
    PYX_EACH(VK, SK, j, 0, n, PYX_CIFG_H)
/* With peepholes (P: p_f, p_o, H apart), as the LSTM's. */
#define PYX_CIFG_PEEP_ROW_BODY(VK, SK) PYX_PEEP_ROW(VK, SK, 1, PYX_CIFG_C, PYX_CIFG_H)
PYX_CELL_ROW(pyx_cifg_row_f, float, pyx_kits_f, PYX_CIFG_ROW_BODY, PYX_CIFG_PEEP_ROW_BODY)
PYX_CELL_ROW(pyx_cifg_row_d, double, pyx_kits_d, PYX_CIFG_ROW_BODY, PYX_CIFG_PEEP_ROW_BODY)

/* The LSTM's backward pointwise step for one row, no peepholes: a holds
 * the row's activations i, f, g, o (H apart), c_prev and c the cell states
 * c_{t-1} and c_t, dh and dc dL/dh_t and dL/dc_t, k the gates' keep (1, or
 * 0 for a pinned gate); for j in [0, n), with t = tanh(c):
 *   da_o = dh * t * o * (1 - o) * k_o,   dc' = dc + dh * o * (1 - t * t)
 *   da_i = dc' * g * i * (1 - i) * k_i,  da_f = dc' * c_prev * f * (1 - f) * k_f
 *   da_g = dc' * i * (1 - g * g),        dc_prev = dc' * f,  dh_prev = 0
 * into da (the same layout as a), dc_prev and dh_prev: the operations, and
 * so the results, of _lstm_backward in _pointwise.pxi. Compiled from
 * Cython for the baseline x86-64, that loop ran one element at a time. */
#define PYX_LSTM_BACK(K, j) {                                                   \
    K##_T i_ = K##_LD(a + j), f = K##_LD(a + H + j);                            \
    K##_T g = K##_LD(a + 2 * H + j), og = K##_LD(a + 3 * H + j);                \
    K##_T t = K##_TANH(K##_LD(c + j)), d = K##_LD(dh + j), one = K##_K(1);      \
    K##_T dao = d * t * og * (one - og) * K##_K(k[3]);                          \
    K##_T dct = K##_LD(dc + j) + d * og * (one - t * t);                        \
    K##_ST(da + j, dct * g * i_ * (one - i_) * K##_K(k[0]));                    \
    K##_ST(da + H + j, dct * K##_LD(c_prev + j) * f * (one - f) * K##_K(k[1])); \
    K##_ST(da + 2 * H + j, dct * i_ * (one - g * g));                           \
    K##_ST(da + 3 * H + j, dao);                                                \
    K##_ST(dc_prev + j, dct * f);                                               \
    K##_ST(dh_prev + j, K##_K(0));                                              \
}
/* The backward rows of the kinds with a cell state (the LSTM, the CIFG):
 * BODY(K, j) a unit's step. */
#define PYX_CELL_BACK_ROW_ONE(NAME, TARGET, VK, SK, BODY)                       \
TARGET static void NAME(ptrdiff_t n, ptrdiff_t H, const VK##_E* __restrict a,   \
                        const VK##_E* __restrict c_prev,                        \
                        const VK##_E* __restrict c, const VK##_E* __restrict dh, \
                        const VK##_E* __restrict dc, const VK##_E* __restrict k, \
                        VK##_E* __restrict da, VK##_E* __restrict dh_prev,      \
                        VK##_E* __restrict dc_prev) {                           \
    PYX_EACH(VK, SK, j, 0, n, BODY)                                             \
}
#define PYX_CELL_BACK_ROW(NAME, T, KITS, BODY)                                  \
PYX_KIT_CLONES(NAME, PYX_CELL_BACK_ROW_ONE,                                     \
               (ptrdiff_t n, ptrdiff_t H, const T* a, const T* c_prev,          \
                const T* c, const T* dh, const T* dc, const T* k, T* da,        \
                T* dh_prev, T* dc_prev),                                        \
               (n, H, a, c_prev, c, dh, dc, k, da, dh_prev, dc_prev), KITS, BODY)

PYX_CELL_BACK_ROW(pyx_lstm_back_row_f, float, pyx_kits_f, PYX_LSTM_BACK)
PYX_CELL_BACK_ROW(pyx_lstm_back_row_d, double, pyx_kits_d, PYX_LSTM_BACK)

/* The GRU's (reset after) backward pointwise step for one row: a holds the
 * row's activations z, r, g (H apart), nn the step's h_{t-1} U_g + b_hg,
 * h_prev h_{t-1}, dh dL/dh_t, k the gates' keep; for j in [0, n):
 *   da_z = dh * (h_prev - g) * z * (1 - z) * k_z,  dh_prev = dh * z
 *   dg = dh * (1 - z) * (1 - g * g)
 *   da_r = dg * nn * r * (1 - r) * k_r,  da_g = dg * r,  dxg = dg
 * into da (the layout of a), dh_prev and dxg: the operations, and so the
 * results, of _gru_after_backward in _pointwise.pxi. */
#define PYX_GRU_AFTER_BACK(K, j) {                                              \
    K##_T z = K##_LD(a + j), r = K##_LD(a + H + j), g = K##_LD(a + 2 * H + j);  \
    K##_T d = K##_LD(dh + j), one = K##_K(1);                                   \
    K##_T dg = d * (one - z) * (one - g * g);                                   \
    K##_ST(da + j, d * (K##_LD(h_prev + j) - g) * z * (one - z) * K##_K(k[0])); \
    K##_ST(dh_prev + j, d * z);                                                 \
    K##_ST(da + H + j, dg * K##_LD(nn + j) * r * (one - r) * K##_K(k[1]));      \
    K##_ST(da + 2 * H + j, dg * r);                                             \
    K##_ST(dxg + j, dg);                                                        \
}
/* The backward rows of the kinds with the reset after the product (the
 * GRU, the MGU): BODY(K, j) a unit's step. */
#define PYX_AFTER_BACK_ROW_ONE(NAME, TARGET, VK, SK, BODY)                      \
TARGET static void NAME(ptrdiff_t n, ptrdiff_t H, const VK##_E* __restrict a,   \
                        const VK##_E* __restrict h_prev,                        \
                        const VK##_E* __restrict nn, const VK##_E* __restrict dh, \
                        const VK##_E* __restrict k, VK##_E* __restrict da,      \
                        VK##_E* __restrict dxg, VK##_E* __restrict dh_prev) {   \
    PYX_EACH(VK, SK, j, 0, n, BODY)                                             \
}
#define PYX_AFTER_BACK_ROW(NAME, T, KITS, BODY)                                 \
PYX_KIT_CLONES(NAME, PYX_AFTER_BACK_ROW_ONE,                                    \
               (ptrdiff_t n, ptrdiff_t H, const T* a, const T* h_prev,          \
                const T* nn, const T* dh, const T* k, T* da, T* dxg, T* dh_prev), \
               (n, H, a, h_prev, nn, dh, k, da, dxg, dh_prev), KITS, BODY)

PYX_AFTER_BACK_ROW(pyx_gru_after_back_row_f, float, pyx_kits_f, PYX_GRU_AFTER_BACK)
PYX_AFTER_BACK_ROW(pyx_gru_after_back_row_d, double, pyx_kits_d, PYX_GRU_AFTER_BACK)

/* The other kinds' backward pointwise steps, a row a call, per vector path
 * like the two above: the operations, and so the results, of their passes
 * in _pointwise.pxi, which Cython compiled for the baseline x86-64 into
 * loops of one element at a time. The update h = z * h_prev + (1 - z) * g,
 * backwards (_mix_backward there), for j in [0, n):
 *   da_z = dh * (h_prev - g) * z * (1 - z) * k_z,  dh_prev = dh * z,
 *   dg = dh * (1 - z)
 * PYX_MIX_BACK declares da_z (dz) and dg and stores dh_prev. */
#define PYX_MIX_BACK(K, j, z, g, d, kz, dz, dg)                                 \
    K##_T dz = d * (K##_LD(h_prev + j) - g) * z * (K##_K(1) - z) * K##_K(kz);   \
    K##_ST(dh_prev + j, d * z);                                                 \
    K##_T dg = d * (K##_K(1) - z);

/* The vanilla RNN (h = g = tanh(...)): da = dh * (1 - g * g), dh_prev = 0. */
#define PYX_RNN_BACK(K, j) {                                                    \
    K##_T g = K##_LD(a + j);                                                    \
    K##_ST(da + j, K##_LD(dh + j) * (K##_K(1) - g * g));                        \
    K##_ST(dh_prev + j, K##_K(0));                                              \
}
#define PYX_RNN_BACK_ROW_ONE(NAME, TARGET, VK, SK, ...)                         \
TARGET static void NAME(ptrdiff_t n, const VK##_E* __restrict a,                \
                        const VK##_E* __restrict dh, VK##_E* __restrict da,     \
                        VK##_E* __restrict dh_prev) {                           \
    PYX_EACH(VK, SK, j, 0, n, PYX_RNN_BACK)                                     \
}
#define PYX_RNN_BACK_ROW(NAME, T, KITS)                                         \
PYX_KIT_CLONES(NAME, PYX_RNN_BACK_ROW_ONE,                                      \
               (ptrdiff_t n, const T* a, const T* dh, T* da, T* dh_prev),       \
               (n, a, dh, da, dh_prev), KITS)
PYX_RNN_BACK_ROW(pyx_rnn_back_row_f, float, pyx_kits_f)
PYX_RNN_BACK_ROW(pyx_rnn_back_row_d, double, pyx_kits_d)

/* The update and the candidate, whose gate blocks az and ag are given
 * apart (the simplified GRU: z and g; the GRU with the reset before the
 * product: z and g, its first half; the MGU likewise, f and g):
 *   da_z and dh_prev as above,  da_g = dg * (1 - g * g) */
#define PYX_UPDATE_BACK(K, j) {                                                 \
    K##_T z = K##_LD(az + j), g = K##_LD(ag + j), d = K##_LD(dh + j);           \
    PYX_MIX_BACK(K, j, z, g, d, k[0], dz, dg)                                   \
    K##_ST(daz + j, dz);                                                        \
    K##_ST(dag + j, dg * (K##_K(1) - g * g));                                   \
}
#define PYX_UPDATE_BACK_ROW_ONE(NAME, TARGET, VK, SK, ...)                      \
TARGET static void NAME(ptrdiff_t n, const VK##_E* __restrict az,               \
                        const VK##_E* __restrict ag,                            \
                        const VK##_E* __restrict h_prev,                        \
                        const VK##_E* __restrict dh, const VK##_E* __restrict k, \
                        VK##_E* __restrict daz, VK##_E* __restrict dag,         \
                        VK##_E* __restrict dh_prev) {                           \
    PYX_EACH(VK, SK, j, 0, n, PYX_UPDATE_BACK)                                  \
}
#define PYX_UPDATE_BACK_ROW(NAME, T, KITS)                                      \
PYX_KIT_CLONES(NAME, PYX_UPDATE_BACK_ROW_ONE,                                   \
               (ptrdiff_t n, const T* az, const T* ag, const T* h_prev,         \
                const T* dh, const T* k, T* daz, T* dag, T* dh_prev),           \
               (n, az, ag, h_prev, dh, k, daz, dag, dh_prev), KITS)
PYX_UPDATE_BACK_ROW(pyx_update_back_row_f, float, pyx_kits_f)
PYX_UPDATE_BACK_ROW(pyx_update_back_row_d, double, pyx_kits_d)

/* The second half of a kind with the reset before the product, once
 * de = dL/d(r * h_prev) is known: the reset gate's block ar (r; the MGU's
 * f, whose da_f already holds the update's part: add, `add` nonzero)
 *   da_r (+)= de * h_prev * r * (1 - r) * k_r,  dh_prev += de * r */
#define PYX_RESET_BACK(K, j) {                                                  \
    K##_T r = K##_LD(ar + j), d = K##_LD(de + j);                               \
    K##_T v = d * K##_LD(h_prev + j) * r * (K##_K(1) - r) * K##_K(kr);          \
    if (add) v = K##_LD(dar + j) + v;                                           \
    K##_ST(dar + j, v);                                                         \
    K##_ST(dh_prev + j, K##_LD(dh_prev + j) + d * r);                           \
}
#define PYX_RESET_BACK_ROW_ONE(NAME, TARGET, VK, SK, ...)                       \
TARGET static void NAME(ptrdiff_t n, const VK##_E* __restrict ar,               \
                        const VK##_E* __restrict h_prev,                        \
                        const VK##_E* __restrict de, VK##_E kr, int add,        \
                        VK##_E* __restrict dar, VK##_E* __restrict dh_prev) {   \
    PYX_EACH(VK, SK, j, 0, n, PYX_RESET_BACK)                                   \
}
#define PYX_RESET_BACK_ROW(NAME, T, KITS)                                       \
PYX_KIT_CLONES(NAME, PYX_RESET_BACK_ROW_ONE,                                    \
               (ptrdiff_t n, const T* ar, const T* h_prev, const T* de, T kr,   \
                int add, T* dar, T* dh_prev),                                   \
               (n, ar, h_prev, de, kr, add, dar, dh_prev), KITS)
PYX_RESET_BACK_ROW(pyx_reset_back_row_f, float, pyx_kits_f)
PYX_RESET_BACK_ROW(pyx_reset_back_row_d, double, pyx_kits_d)

/* The MGU with the reset after the product: f is both gates, nn the
 * step's h_prev U_g + b_hg:
 *   dag = dg * (1 - g * g),  da_f = da_z + dag * nn * f * (1 - f) * k_f,
 *   da_g = dag * f,  dxg = dag */
#define PYX_MGU_AFTER_BACK(K, j) {                                              \
    K##_T f = K##_LD(a + j), g = K##_LD(a + H + j), d = K##_LD(dh + j);         \
    PYX_MIX_BACK(K, j, f, g, d, k[0], dz, dg)                                   \
    K##_T dag = dg * (K##_K(1) - g * g);                                        \
    K##_ST(da + j, dz + dag * K##_LD(nn + j) * f * (K##_K(1) - f) * K##_K(k[0])); \
    K##_ST(da + H + j, dag * f);                                                \
    K##_ST(dxg + j, dag);                                                       \
}
PYX_AFTER_BACK_ROW(pyx_mgu_after_back_row_f, float, pyx_kits_f, PYX_MGU_AFTER_BACK)
PYX_AFTER_BACK_ROW(pyx_mgu_after_back_row_d, double, pyx_kits_d, PYX_MGU_AFTER_BACK)

/* The coupled LSTM (i = 1 - f), no peepholes: a holds f, g, o (H apart);
 * with t = tanh(c):
 *   da_o = dh * t * o * (1 - o) * k_o,  dc' = dc + dh * o * (1 - t * t)
 *   da_f = dc' * (c_prev - g) * f * (1 - f) * k_f,
 *   da_g = dc' * (1 - f) * (1 - g * g),  dc_prev = dc' * f,  dh_prev = 0 */
#define PYX_CIFG_BACK(K, j) {                                                   \
    K##_T f = K##_LD(a + j), g = K##_LD(a + H + j), og = K##_LD(a + 2 * H + j); \
    K##_T t = K##_TANH(K##_LD(c + j)), d = K##_LD(dh + j), one = K##_K(1);      \
    K##_T dao = d * t * og * (one - og) * K##_K(k[2]);                          \
    K##_T dct = K##_LD(dc + j) + d * og * (one - t * t);                        \
    K##_ST(da + j, dct * (K##_LD(c_prev + j) - g) * f * (one - f) * K##_K(k[0])); \
    K##_ST(da + H + j, dct * (one - f) * (one - g * g));                        \
    K##_ST(da + 2 * H + j, dao);                                                \
    K##_ST(dc_prev + j, dct * f);                                               \
    K##_ST(dh_prev + j, K##_K(0));                                              \
}
PYX_CELL_BACK_ROW(pyx_cifg_back_row_f, float, pyx_kits_f, PYX_CIFG_BACK)
PYX_CELL_BACK_ROW(pyx_cifg_back_row_d, double, pyx_kits_d, PYX_CIFG_BACK)

/* acc[:n] += the sum of `rows` rows of src (ld apart), in double, row
 * after row (each column's sum in the order of the rows, at any width):
 * the bias gradients of the recurrent and the scan cells. */
#define PYX_COLSUM_ONE(NAME, TARGET, T)                                         \
TARGET static void NAME(ptrdiff_t rows, ptrdiff_t n, ptrdiff_t ld,              \
                        const T* __restrict src, double* __restrict acc) {     \
    for (ptrdiff_t m = 0; m < rows; m++, src += ld)                             \
        for (ptrdiff_t j = 0; j < n; j++) acc[j] += src[j];                     \
}
PYX_CLONES(pyx_colsum_f, PYX_COLSUM_ONE,
           (ptrdiff_t rows, ptrdiff_t n, ptrdiff_t ld, const float* src, double* acc),
           (rows, n, ld, src, acc), float)
PYX_CLONES(pyx_colsum_d, PYX_COLSUM_ONE,
           (ptrdiff_t rows, ptrdiff_t n, ptrdiff_t ld, const double* src, double* acc),
           (rows, n, ld, src, acc), double)

#endif
