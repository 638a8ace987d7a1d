/* The per-step matrix products of the time loop, against a packed U.
 *
 * Design: every step of the time loop multiplies a few rows (the batch, or
 * a team member's share of it) by the same U: h_{t-1} @ U forward,
 * dA[t] @ U.T backward. A BLAS call packs its B operand on every call, so it
 * repacked all of U at every step: at 16 rows that cost as much as the
 * multiply-adds (OpenBLAS reached 44 GFLOP/s on one core at (16 x 256) @
 * (256 x 512), where this kernel reaches 117), and U's power-of-two row
 * strides (4H columns for the LSTM) made a direct read alias in the caches.
 * So U (and U.T for the backward) is packed once per call, and these
 * kernels read it as it lies. W is packed too, and each step takes its own
 * x_t @ W just before h_{t-1} @ U, while x_t is in cache: no pass over a
 * (T*B, G*H) array written before the loop and read back during it.
 *
 *   packed layout: the columns of a (K x N) operand cut into panels of one
 *   vector (PW = 16 floats or 8 doubles), each panel K rows of PW, contiguous
 *   (zeros past column N). Panel p, row k, lane c is column p*PW + c.
 *
 *   C[m x n] = beta * C + A[m x k] @ Bp[0:k, 0:n]   (beta 0 or 1)
 *
 * The micro-kernel keeps a block of up to 6 rows x 4 vectors of C in 24
 * AVX-512 registers: per k it loads 4 vectors of the panels, broadcasts 6
 * elements of A and does 24 fused multiply-adds. k goes in blocks of
 * PYX_KC (the 4 panels' block then stays in L1 for every row block), each
 * block continuing the chain from C, so each element of C is still one
 * chain of fused multiply-adds in k order, started from beta * C: a result
 * does not depend on how the rows or columns were split between threads.
 * Columns past the last full 4-vector block go one vector at a time, the
 * last one masked. AVX-512F only: pyx_gemm_available() says whether the CPU
 * has it, and the callers use BLAS otherwise.
 */
#ifndef PYX_GRU_GEMM_H
#define PYX_GRU_GEMM_H

#include <stddef.h>
#include <string.h>

#if defined(__GNUC__) && defined(__x86_64__) && !defined(PYX_GRU_NO_PACKED_GEMM)
#include <immintrin.h>
#define PYX_GEMM_BUILT 1
#define PYX_GEMM_TARGET __attribute__((target("avx512f")))
#define PYX_GEMM_INLINE PYX_GEMM_TARGET static inline __attribute__((always_inline))
#else
#define PYX_GEMM_BUILT 0
#endif

#define PYX_PANEL_F 16
#define PYX_PANEL_D 8

/* The packed size, in elements, of a (K x N) operand. */
static inline size_t pyx_packed_size(size_t K, size_t N, size_t pw) {
    return ((N + pw - 1) / pw) * K * pw;
}

/* A packed operand of at least this many bytes (per call: k x n) is read
 * with software prefetch: while the rows go through one block of the
 * panels, the kernel asks for the next block (the next k block, else the
 * next 4 panels, else the first), one 64-byte line per k per row block, so
 * that the first row block of the next finds it in L1. One core, float32,
 * GFLOP/s without and with: (32 x 512) @ (512 x 2048), a 4 MiB operand
 * read from L3, 147 and 168; (32 x 512) @ (512 x 512), 1 MiB, 167 and
 * 170; (32 x 128) @ (128 x 384), 192 KiB, 177 and 174 (a smaller operand
 * stays in L2, where the extra instruction costs more than it saves).
 * A row block asks for as many lines as its own block has k, so when the
 * next block is shorter (the last k block) some addresses lie past it,
 * possibly past the operand: harmless, as a prefetch never faults and
 * nothing is read from it. pyx_set_prefetch_bytes sets the threshold (for
 * the tests) and returns the old one. */
static size_t pyx_prefetch_bytes = 512 * 1024;

static size_t pyx_set_prefetch_bytes(size_t bytes) {
    size_t previous = pyx_prefetch_bytes;
    pyx_prefetch_bytes = bytes;
    return previous;
}

static int pyx_gemm_available(void) {
#if PYX_GEMM_BUILT
    static int have = -1;
    if (have < 0) {
        __builtin_cpu_init();
        have = __builtin_cpu_supports("avx512f") ? 1 : 0;
    }
    return have;
#else
    return 0;
#endif
}

/* Pack panels [p0, p1) of the (K x N) operand whose element (k, j) is
 * src[k * sk + j * sj] (sk, sj: strides; U is (1, ...) as is, U.T swaps
 * them) into dst, laid out as above. */
#define PYX_PACK(NAME, T, PW)                                                   \
static void NAME(size_t K, size_t N, const T* src, size_t sk, size_t sj,       \
                 size_t p0, size_t p1, T* dst) {                               \
    for (size_t p = p0; p < p1; p++) {                                          \
        T* out = dst + p * K * PW;                                              \
        size_t j0 = p * PW, nc = N - j0 < PW ? N - j0 : PW;                     \
        if (nc < PW) memset(out, 0, K * PW * sizeof(T));                        \
        if (sj == 1) {                /* rows of the panel lie in rows of src */ \
            for (size_t k = 0; k < K; k++)                                      \
                memcpy(out + k * PW, src + k * sk + j0, nc * sizeof(T));        \
        } else {                      /* columns of the panel lie in rows */    \
            for (size_t c = 0; c < nc; c++) {                                   \
                const T* s = src + (j0 + c) * sj;                               \
                for (size_t k = 0; k < K; k++) out[k * PW + c] = s[k * sk];     \
            }                                                                   \
        }                                                                       \
    }                                                                           \
}
PYX_PACK(pyx_pack_f, float, PYX_PANEL_F)
PYX_PACK(pyx_pack_d, double, PYX_PANEL_D)

#if PYX_GEMM_BUILT

/* C[RB x NV vectors] (+)= A[RB x k] @ panels[0:k, NV vectors]; the last
 * vector's lanes masked by `last`. With PF, also prefetch line kk of the
 * panel at pf at each kk (pyx_prefetch_bytes). */
#define PYX_MICRO(NAME, T, VT, MT, PW, RB, NV, PF, SET0, LOAD, MLOAD, BCAST, FMA, ADD, MSTORE) \
PYX_GEMM_INLINE void NAME(int k, const T* A, int lda, const T* Bp, size_t ps,   \
                          T beta, T* C, int ldc, MT last, const T* pf) {        \
    VT acc[RB][NV];                                                             \
    for (int r = 0; r < RB; r++)                                                \
        for (int v = 0; v < NV; v++)                                            \
            acc[r][v] = beta != 0 ? MLOAD(v == NV - 1 ? last : (MT) -1,         \
                                          C + (size_t)r * ldc + v * PW)         \
                                  : SET0();                                     \
    for (int kk = 0; kk < k; kk++) {                                            \
        VT b[NV];                                                               \
        for (int v = 0; v < NV; v++) b[v] = LOAD(Bp + v * ps + (size_t)kk * PW);\
        if (PF) _mm_prefetch((const char*)(pf + (size_t)kk * PW), _MM_HINT_T0); \
        for (int r = 0; r < RB; r++) {                                          \
            VT a = BCAST(A[(size_t)r * lda + kk]);                              \
            for (int v = 0; v < NV; v++) acc[r][v] = FMA(a, b[v], acc[r][v]);  \
        }                                                                       \
    }                                                                           \
    for (int r = 0; r < RB; r++)                                                \
        for (int v = 0; v < NV; v++)                                            \
            MSTORE(C + (size_t)r * ldc + v * PW, v == NV - 1 ? last : (MT) -1,  \
                   acc[r][v]);                                                  \
}

#define PYX_MICROS(P, T, VT, MT, PW, NV, PF, ...)                               \
    PYX_MICRO(P##_1, T, VT, MT, PW, 1, NV, PF, __VA_ARGS__)                     \
    PYX_MICRO(P##_2, T, VT, MT, PW, 2, NV, PF, __VA_ARGS__)                     \
    PYX_MICRO(P##_3, T, VT, MT, PW, 3, NV, PF, __VA_ARGS__)                     \
    PYX_MICRO(P##_4, T, VT, MT, PW, 4, NV, PF, __VA_ARGS__)                     \
    PYX_MICRO(P##_5, T, VT, MT, PW, 5, NV, PF, __VA_ARGS__)                     \
    PYX_MICRO(P##_6, T, VT, MT, PW, 6, NV, PF, __VA_ARGS__)

#define PYX_F_OPS _mm512_setzero_ps, _mm512_loadu_ps, _mm512_maskz_loadu_ps, \
    _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps, _mm512_mask_storeu_ps
#define PYX_D_OPS _mm512_setzero_pd, _mm512_loadu_pd, _mm512_maskz_loadu_pd, \
    _mm512_set1_pd, _mm512_fmadd_pd, _mm512_add_pd, _mm512_mask_storeu_pd

PYX_MICROS(pyx_micro4_f, float, __m512, __mmask16, PYX_PANEL_F, 4, 0, PYX_F_OPS)
PYX_MICROS(pyx_micro4pf_f, float, __m512, __mmask16, PYX_PANEL_F, 4, 1, PYX_F_OPS)
PYX_MICROS(pyx_micro1_f, float, __m512, __mmask16, PYX_PANEL_F, 1, 0, PYX_F_OPS)
PYX_MICROS(pyx_micro4_d, double, __m512d, __mmask8, PYX_PANEL_D, 4, 0, PYX_D_OPS)
PYX_MICROS(pyx_micro4pf_d, double, __m512d, __mmask8, PYX_PANEL_D, 4, 1, PYX_D_OPS)
PYX_MICROS(pyx_micro1_d, double, __m512d, __mmask8, PYX_PANEL_D, 1, 0, PYX_D_OPS)

/* Rows in ceil(m / 6) blocks of nearly equal size (at most 6 rows, each
 * size its own unrolled kernel; 8 rows go as 4 + 4: 167 GFLOP/s on one
 * core at (8 x 64) @ (64 x 64), against 151 as 6 + 2), within a block of
 * columns. Row block r is given panel r % npf of the block at pf to
 * prefetch (the prefetching kernels read it; npf: the panels there). */
#define PYX_ROWS(P, k, A, lda, Bp, ps, beta, C, ldc, last, m, pf, npf)         \
    for (int i = 0, nblk = ((m) + 5) / 6, blk = 0; i < (m); blk++) {           \
        const int rows = ((m) - i) / (nblk - blk) + (((m) - i) % (nblk - blk) != 0); \
        const size_t ia = (size_t)i * (lda), ic = (size_t)i * (ldc);            \
        __typeof__(pf) pr = (pf) + (size_t)(blk % (npf)) * (ps);                \
        i += rows;                                                              \
        switch (rows) {                                                         \
        case 1: P##_1(k, A + ia, lda, Bp, ps, beta, C + ic, ldc, last, pr); break; \
        case 2: P##_2(k, A + ia, lda, Bp, ps, beta, C + ic, ldc, last, pr); break; \
        case 3: P##_3(k, A + ia, lda, Bp, ps, beta, C + ic, ldc, last, pr); break; \
        case 4: P##_4(k, A + ia, lda, Bp, ps, beta, C + ic, ldc, last, pr); break; \
        case 5: P##_5(k, A + ia, lda, Bp, ps, beta, C + ic, ldc, last, pr); break; \
        default: P##_6(k, A + ia, lda, Bp, ps, beta, C + ic, ldc, last, pr); break; \
        }                                                                       \
    }

/* k per block: 4 panels x 128 k x 64 bytes = 32 KiB, 2/3 of L1 here (about
 * 6% faster than whole k at (32 x 512) @ (512 x 2048), one core). */
#define PYX_KC 128

/* The columns of the panels from bp on (NV = 4 vectors with P4, 1 with
 * P1), every k block, every group of rows: within a function below. The
 * block after each is the next k block of the same panels, else nextp. */
#define PYX_KBLOCKS(T, PW, P, NV, bp, j, mask, nextp)                           \
    for (int k0 = 0; k0 < k; k0 += PYX_KC) {                                    \
        const int kc = k - k0 < PYX_KC ? k - k0 : PYX_KC;                       \
        const T b0 = k0 ? (T) 1 : beta;                                         \
        const T* pf = k0 + PYX_KC < k ? (bp) + (size_t)(k0 + PYX_KC) * PW : (nextp); \
        for (int g = 0; g < groups; g++) {                                      \
            PYX_ROWS(P, kc, A + g * gsa + k0, lda, (bp) + (size_t)k0 * PW, ps, b0, \
                     C + g * gsc + (j), ldc, mask, m, pf, NV)                   \
        }                                                                       \
    }

/* C[m x n] = beta * C + A[m x k] @ Bp[0:k, 0:n]; Bp's panels are ps
 * elements apart (K_total * PW: a panel may hold more rows than k). The
 * rows come in `groups` groups of m, group g's at A + g * gsa and
 * C + g * gsc (several steps' rows of one batch block): every block of the
 * panels, once in L1, serves all of them. */
#define PYX_GEMM_PACKED(NAME, T, MT, PW, P4, P4PF, P1)                          \
PYX_GEMM_TARGET static void NAME(int m, int n, int k, const T* A, int lda,     \
                                 const T* Bp, size_t ps, T beta, T* C, int ldc, \
                                 int groups, size_t gsa, size_t gsc) {          \
    int j = 0;                                                                  \
    const MT full = (MT) -1;                                                    \
    const int prefetch = (size_t)k * n * sizeof(T) >= pyx_prefetch_bytes;      \
    for (; j + 4 * PW <= n; j += 4 * PW) {                                      \
        const T* bp = Bp + (size_t)(j / PW) * ps;                               \
        /* the next 4 full panels, else the first 4 (the next call's) */        \
        const T* nextp = j + 8 * PW <= n ? bp + 4 * ps : Bp;                    \
        if (prefetch) {                                                         \
            PYX_KBLOCKS(T, PW, P4PF, 4, bp, j, full, nextp)                     \
        } else {                                                                \
            PYX_KBLOCKS(T, PW, P4, 4, bp, j, full, nextp)                       \
        }                                                                       \
    }                                                                           \
    for (; j < n; j += PW) {       /* no prefetch: a panel or three at most */  \
        const int nc = n - j < PW ? n - j : PW;                                 \
        const MT last = (MT)((1u << nc) - 1);                                   \
        const T* bp = Bp + (size_t)(j / PW) * ps;                               \
        PYX_KBLOCKS(T, PW, P1, 1, bp, j, last, bp)                              \
    }                                                                           \
}
PYX_GEMM_PACKED(pyx_gemm_packed_f, float, __mmask16, PYX_PANEL_F, pyx_micro4_f,
                pyx_micro4pf_f, pyx_micro1_f)
PYX_GEMM_PACKED(pyx_gemm_packed_d, double, __mmask8, PYX_PANEL_D, pyx_micro4_d,
                pyx_micro4pf_d, pyx_micro1_d)

#else  /* no AVX-512 build: never called (pyx_gemm_available() is 0) */

static void pyx_gemm_packed_f(int m, int n, int k, const float* A, int lda,
                              const float* Bp, size_t ps, float beta, float* C, int ldc,
                              int groups, size_t gsa, size_t gsc) {}
static void pyx_gemm_packed_d(int m, int n, int k, const double* A, int lda,
                              const double* Bp, size_t ps, double beta, double* C, int ldc,
                              int groups, size_t gsa, size_t gsc) {}

#endif
#endif
