/* The per-step matrix products of the time loop, against a packed U.
 *
 * Design: every step of the time loop multiplies a few rows (the batch, or
 * a team member's share of it) by the same U: h_{t-1} @ U forward,
 * dA[t] @ U.T backward. A BLAS call packs its B operand on every call, so it
 * repacked all of U at every step, and its one-row products are slow on
 * some CPUs (docs/performance.rst). So U (and U.T for the backward) is
 * packed once per call, and these kernels read it as it lies. W is packed
 * too, and each step takes its own x_t @ W just before h_{t-1} @ U, while
 * x_t is in cache.
 *
 *   packed layout: the columns of a (K x N) operand cut into panels of 64
 *   bytes (PW = 16 floats or 8 doubles), each panel K rows of PW,
 *   contiguous (zeros past column N). Panel p, row k, lane c is column
 *   p*PW + c. The layout is the same on every vector path.
 *
 *   C[m x n] = beta * C + A[m x k] @ Bp[0:k, 0:n]   (beta 0 or 1)
 *
 * One micro-kernel (PYX_MICRO) keeps a block of RB rows x NP panels of C in
 * registers: per k it loads the NP panels' row k, broadcasts RB elements of
 * A and does RB x NP x (vectors per panel) fused multiply-adds. It is
 * compiled for each vector path of _simd.h (AVX-512: a panel is one
 * vector; AVX2: two; portable: four of 16 bytes), and the paths differ only
 * in the vector type and its five operations. Rows go in balanced blocks
 * of at most RBMAX; a block of few rows takes more panels at once (a row or
 * two needs 8 independent chains of multiply-adds to hide their latency).
 * k goes in blocks of PYX_KBYTES of panels, at most the path's KROWS rows
 * (the block then stays in L1 for every row block), each block continuing
 * the chain from C, so each element of C is one chain of fused
 * multiply-adds in k order, started from beta * C, whatever the path, the
 * blocking, or how the rows or columns were split between threads. A last
 * partial panel goes through a small buffer of whole panels.
 */
#ifndef PYX_GRU_GEMM_H
#define PYX_GRU_GEMM_H

#include <stddef.h>
#include <string.h>

#include "_simd.h"

#if PYX_SIMD_X86
#include <immintrin.h>
#endif
#if defined(__aarch64__)
#include <arm_neon.h>
#endif

#define PYX_PANEL_F 16
#define PYX_PANEL_D 8
/* Bytes of panels per k block: 4 panels of 128 rows, L1 on most cores.
 * The AVX2 path's blocks of 6 rows take a single panel, which that would
 * make 512 rows long: beside those rows of A it no longer stayed in L1
 * (docs/performance.rst), so its k blocks are at most 256 rows. */
#define PYX_KBYTES 32768
#define PYX_KROWS_AVX2 256
#define PYX_KROWS_ANY (1 << 30)

/* The packed size, in elements, of a (K x N) operand. */
static inline size_t pyx_packed_size(size_t K, size_t N, size_t pw) {
    return ((N + pw - 1) / pw) * K * pw;
}

/* A packed operand of at least this many bytes (per call: k x n) is read
 * with software prefetch: while the rows go through one block of the
 * panels, the kernel asks for the next block (the next k block, else the
 * next panels, else the first), one 64-byte line per k per row block, so
 * that the first row block of the next finds it in L1 (measured gains in
 * docs/performance.rst; a smaller operand stays in L2, where the extra
 * instruction costs more than it saves). A row block asks for as many
 * lines as its own block has k, so when the next block is shorter some
 * addresses lie past it, possibly past the operand: harmless, as a
 * prefetch never faults and nothing is read from it.
 * pyx_set_prefetch_bytes sets the threshold (for the tests) and returns the
 * old one. */
static size_t pyx_prefetch_bytes = 512 * 1024;

static size_t pyx_set_prefetch_bytes(size_t bytes) {
    size_t previous = pyx_prefetch_bytes;
    pyx_prefetch_bytes = bytes;
    return previous;
}

/* Pack panels [p0, p1) of the (K x N) operand whose element (k, j) is
 * src[k * sk + j * sj] (sk, sj: strides; U is (1, ...) as is, U.T swaps
 * them) into dst, laid out as above. */
#define PYX_PACK(NAME, T, PW)                                                   \
static void NAME(size_t K, size_t N, const T* src, size_t sk, size_t sj,        \
                 size_t p0, size_t p1, T* dst) {                                \
    if (sj == 1) {                                                              \
        /* rows of a panel lie in rows of src, sk apart (often 4 KB: a new      \
         * page each, which the hardware does not prefetch); a few rows of      \
         * every panel at a time read along src's rows instead: 2 to 3          \
         * times as fast from memory (docs/performance.rst) */                  \
        const size_t pfull = p1 < N / PW ? p1 : N / PW;                         \
        for (size_t k0 = 0; k0 < K; k0 += 8) {                                  \
            const size_t k1 = K - k0 < 8 ? K : k0 + 8;                          \
            for (size_t p = p0; p < pfull; p++)                                 \
                for (size_t k = k0; k < k1; k++)   /* constant size: inlined */ \
                    memcpy(dst + p * K * PW + k * PW, src + k * sk + p * PW,    \
                           PW * sizeof(T));                                     \
        }                                                                       \
        for (size_t p = pfull > p0 ? pfull : p0; p < p1; p++) {   /* partial */ \
            T* out = dst + p * K * PW;                                          \
            const size_t j0 = p * PW, nc = N - j0;                              \
            memset(out, 0, K * PW * sizeof(T));                                 \
            for (size_t k = 0; k < K; k++)                                      \
                memcpy(out + k * PW, src + k * sk + j0, nc * sizeof(T));        \
        }                                                                       \
        return;                                                                 \
    }                                                                           \
    for (size_t p = p0; p < p1; p++) {                                          \
        /* columns of the panel lie in rows of src: in blocks of PW rows, so    \
         * that the reads of each column and the writes of each row stay in a   \
         * few cache lines */                                                   \
        T* out = dst + p * K * PW;                                              \
        size_t j0 = p * PW, nc = N - j0 < PW ? N - j0 : PW;                     \
        if (nc < PW) memset(out, 0, K * PW * sizeof(T));                        \
        for (size_t k0 = 0; k0 < K; k0 += PW) {                                 \
            const size_t k1 = K - k0 < PW ? K : k0 + PW;                        \
            for (size_t c = 0; c < nc; c++) {                                   \
                const T* s = src + (j0 + c) * sj;                               \
                for (size_t k = k0; k < k1; k++) out[k * PW + c] = s[k * sk];   \
            }                                                                   \
        }                                                                       \
    }                                                                           \
}
PYX_PACK(pyx_pack_f, float, PYX_PANEL_F)
PYX_PACK(pyx_pack_d, double, PYX_PANEL_D)

/* One step kk of the micro-kernel's loop: row kk of the NP panels, times
 * element kk of each of the RB rows of A, into the accumulators. */
#define PYX_MICRO_STEP(VT, VN, VPP, RB, NP, LOAD, BCAST, FMA) {                 \
    VT b[(NP) * (VPP)];                                                         \
    for (int v = 0; v < (NP) * (VPP); v++)                                      \
        b[v] = LOAD(Bp + (size_t)(v / (VPP)) * ps + (size_t)kk * rs             \
                    + (v % (VPP)) * VN);                                        \
    if (pf) __builtin_prefetch(pf + (size_t)kk * (VN) * (VPP), 0, 3);           \
    for (int r = 0; r < RB; r++) {                                              \
        VT a = BCAST(A0[ar[r] + kk]);                                           \
        for (int v = 0; v < (NP) * (VPP); v++)                                  \
            acc[r][v] = FMA(a, b[v], acc[r][v]);                                \
    }                                                                           \
}

/* C[RB x NP panels] (+)= A[RB x k] @ panels[0:k, NP]: the micro-kernel of
 * every path. Row r of A is at A + ao[r], of C at C + co[r] (the rows of a
 * block may span two steps' groups, which lie apart). VT is the path's
 * vector of VN elements, VPP of them a panel; LOAD, STORE (unaligned),
 * BCAST, FMA (a * b + c, one rounding where the path has it) and ZERO its
 * operations; NREG its vector registers. With pf, also prefetch line kk of
 * the panel at pf at each kk.
 * The loop over k goes 4 steps at a time (fewer loop instructions per
 * multiply-add) where the block's accumulators and one step's panel vectors
 * fit in the registers with one to spare; where they do not (AVX2's 3 rows
 * x 2 panels: 12 + 4 of 16), the unrolled loop spilled, and a single row,
 * whose panel vectors are read once from memory, gained nothing (portable:
 * lost); those go one step at a time (docs/performance.rst). */
#define PYX_UNROLLS(RB, NP, VPP, NREG) ((RB) > 1 && ((RB) + 1) * (NP) * (VPP) < (NREG))
#define PYX_MICRO(NAME, TARGET, T, VT, VN, VPP, NREG, RB, NP, LOAD, STORE, BCAST, FMA, ZERO) \
TARGET static inline __attribute__((always_inline)) void NAME(                  \
        int k, const T* A, const ptrdiff_t* ao, const T* Bp, size_t ps,         \
        size_t rs, T beta, T* C, const ptrdiff_t* co, const T* pf) {            \
    VT acc[RB][(NP) * (VPP)];                                                   \
    /* rows from row 0's (ar[0] = 0 is known here: one register fewer) */     \
    const T* A0 = A + ao[0];                                                    \
    ptrdiff_t ar[RB];                                                           \
    for (int r = 0; r < RB; r++) {                                              \
        ar[r] = r ? ao[r] - ao[0] : 0;                                          \
        for (int v = 0; v < (NP) * (VPP); v++)                                  \
            acc[r][v] = beta != 0 ? LOAD(C + co[r] + v * VN) : ZERO();          \
    }                                                                           \
    if (PYX_UNROLLS(RB, NP, VPP, NREG)) {                                       \
        _Pragma("GCC unroll 4")                                                 \
        for (int kk = 0; kk < k; kk++)                                          \
            PYX_MICRO_STEP(VT, VN, VPP, RB, NP, LOAD, BCAST, FMA)               \
    } else {                                                                    \
        for (int kk = 0; kk < k; kk++)                                          \
            PYX_MICRO_STEP(VT, VN, VPP, RB, NP, LOAD, BCAST, FMA)               \
    }                                                                           \
    for (int r = 0; r < RB; r++)                                                \
        for (int v = 0; v < (NP) * (VPP); v++)                                  \
            STORE(C + co[r] + v * VN, acc[r][v]);                               \
}

/* The m * groups rows of `groups` groups of m rows (row j of group g at
 * A + g * gsa + j * lda, and of C alike), in ceil(m * groups / RBMAX)
 * blocks of nearly equal size (8 rows go as 4 + 4, not 6 + 2; 2 groups of
 * 8 as 6 + 5 + 5, a block across the groups' boundary), or, where the path
 * sets SPLIT8, 8 rows as 5 + 3; each size and panel count its own unrolled
 * kernel, within a block of NP panels, which a block whose own panel count
 * (NPFOR) is smaller takes in parts. The last NP row blocks prefetch one
 * panel each of the block at pf (NULL: none), the latest that still finds
 * it in L1: with more row blocks than panels, the others would fetch the
 * same lines again (docs/performance.rst). */
#define PYX_ROWS(P, RBMAX, NPFOR, SPLIT8, PW, NP, k, A, lda, gsa, Bp, ps, rs,   \
                 beta, C, ldc, gsc, m, groups, pf)                              \
    for (int i = 0, nrow = (m) * (groups), nblk = (nrow + RBMAX - 1) / RBMAX,   \
         blk = 0; i < nrow; blk++) {                                            \
        const int rows = (SPLIT8) && nrow == 8 ? (blk ? 3 : 5)                  \
            : (nrow - i) / (nblk - blk) + ((nrow - i) % (nblk - blk) != 0);     \
        const int npr = NPFOR(rows) < (NP) ? NPFOR(rows) : (NP);                \
        const int pfi = blk - (nblk > (NP) ? nblk - (NP) : 0);                  \
        const __typeof__(pf) pr = (pf) && pfi >= 0 ? (pf) + (size_t)pfi * (ps) : NULL; \
        ptrdiff_t ao[RBMAX], co[RBMAX];                                         \
        for (int r = 0; r < rows; r++) {                                        \
            const int g = (groups) > 1 ? (i + r) / (m) : 0, j = i + r - g * (m); \
            ao[r] = (ptrdiff_t)(g * (gsa) + (size_t)j * (lda));                 \
            co[r] = (ptrdiff_t)(g * (gsc) + (size_t)j * (ldc));                 \
        }                                                                       \
        i += rows;                                                              \
        for (int q = 0; q < (NP); q += npr)                                     \
            P(rows, (NP) - q < npr ? (NP) - q : npr, k, A, ao, Bp + (size_t)q * (ps), \
              ps, rs, beta, C + q * (PW), co, q ? NULL : pr);                  \
    }

/* The whole product on one path: full panels in blocks of NP(rows) (the
 * last block the rest), every k block, all rows of every group
 * (`groups` groups of m rows, group g's at A + g * gsa and C + g * gsc:
 * several steps' rows of one batch block, so that every block of the
 * panels, once in L1, serves all of them; the rows of all groups go in
 * blocks of RBMAX, so that 8 rows a step are not blocks of 4), then the
 * partial panel. Bp's panels are ps elements apart (K_total * PW: a panel
 * may hold more rows than k). CALL(rows, np, ...) runs the micro-kernel of
 * that shape. */
#define PYX_GEMM_PATH(NAME, TARGET, T, PW, RBMAX, NPFOR, KROWS, SPLIT8, CALL)   \
TARGET static void NAME(int m, int n, int k, const T* A, int lda, const T* Bp, \
                        size_t ps, size_t rs, T beta, T* C, int ldc,           \
                        int groups, size_t gsa, size_t gsc) {                  \
    /* a team member may have no rows; with k = 0, C = beta * C */            \
    if (m <= 0 || n <= 0) return;                                               \
    if (k <= 0) {                                                               \
        if (beta == 0)                                                          \
            for (int g = 0; g < groups; g++)                                    \
                for (int i = 0; i < m; i++)                                     \
                    memset(C + g * gsc + (size_t)i * ldc, 0, (size_t)n * sizeof(T)); \
        return;                                                                 \
    }                                                                           \
    if (groups > 1 && gsa == (size_t)m * lda && gsc == (size_t)m * ldc) {      \
        /* groups that follow one another are one block of rows (at B = 1:   \
         * the steps of an input projection), in blocks of RBMAX rows */       \
        m *= groups;                                                            \
        groups = 1;                                                             \
    }                                                                           \
    /* the rows of all groups go in blocks of up to RBMAX (PYX_ROWS) */       \
    const int nrow = m * groups, nvblk = (nrow + RBMAX - 1) / RBMAX;            \
    const int npmax = NPFOR((SPLIT8) && nrow == 8 ? 3 : (nrow + nvblk - 1) / nvblk); \
    const int full = n / PW, nc = n % PW;                                       \
    const int prefetch = rs == PW && (size_t)k * n * sizeof(T) >= pyx_prefetch_bytes; \
    int p = 0;                                                                  \
    while (p < full) {                                                          \
        /* blocks of npmax panels, then the rest as one block */               \
        const int np = full - p < npmax ? full - p : npmax;                     \
        const int kcfit = PYX_KBYTES / (np * PW * (int)sizeof(T));              \
        const int kcmax = kcfit < (KROWS) ? kcfit : (KROWS);                    \
        const T* bp = Bp + (size_t)p * ps;                                      \
        /* the next block of panels, else the first (the next call's) */       \
        const T* nextp = p + np < full ? bp + (size_t)np * ps : Bp;             \
        for (int k0 = 0; k0 < k; k0 += kcmax) {                                 \
            const int kc = k - k0 < kcmax ? k - k0 : kcmax;                     \
            const T b0 = k0 ? (T) 1 : beta;                                     \
            const T* pf = !prefetch ? NULL                                      \
                : k0 + kcmax < k ? bp + (size_t)(k0 + kcmax) * rs : nextp;      \
            PYX_ROWS(CALL, RBMAX, NPFOR, SPLIT8, PW, np, kc, A + k0, lda, gsa,   \
                     bp + (size_t)k0 * rs, ps, rs, b0, C + p * PW, ldc, gsc, m,  \
                     groups, pf)                                                 \
        }                                                                       \
        p += np;                                                                \
    }                                                                           \
    if (nc) {                                                                   \
        /* the partial panel, through whole panels of buf */                   \
        T buf[RBMAX * PW];                                                      \
        const T* bp = Bp + (size_t)full * ps;                                   \
        const int nblk = (m + RBMAX - 1) / RBMAX;                               \
        ptrdiff_t ao[RBMAX], co[RBMAX];                                         \
        for (int r = 0; r < RBMAX; r++) {                                       \
            ao[r] = (ptrdiff_t)r * lda;                                         \
            co[r] = (ptrdiff_t)r * PW;                                          \
        }                                                                       \
        for (int g = 0; g < groups; g++) {                                      \
            for (int i = 0, blk = 0; i < m; blk++) {                            \
                const int rows = (m - i) / (nblk - blk) + ((m - i) % (nblk - blk) != 0); \
                T* c = C + g * gsc + (size_t)i * ldc + full * PW;               \
                for (int r = 0; r < rows; r++)                                  \
                    for (int j = 0; j < PW; j++)                                \
                        buf[r * PW + j] = j < nc && beta != 0 ? c[(size_t)r * ldc + j] : 0; \
                CALL(rows, 1, k, A + g * gsa + (size_t)i * lda, ao, bp, ps, rs, \
                     beta, buf, co, (const T*)NULL);                            \
                for (int r = 0; r < rows; r++)                                  \
                    memcpy(c + (size_t)r * ldc, buf + r * PW, nc * sizeof(T));  \
                i += rows;                                                      \
            }                                                                   \
        }                                                                       \
    }                                                                           \
}

/* Each path: its vector operations, its micro-kernels (rows x panels, every
 * panel count up to NPFOR(rows)), and its product. */
#define PYX_ARGS k, A, ao, Bp, ps, rs, beta, C, co, pf
#define PYX_DEF(P, RB, NP) PYX_MICRO_(P##_##RB##_##NP, P##_TARGET, P##_T, P##_VEC, RB, NP, P##_OPS)
#define PYX_MICRO_(...) PYX_MICRO(__VA_ARGS__)
#define PYX_CASE(P, RB, NP) case RB * 16 + NP: P##_##RB##_##NP(PYX_ARGS); return;
#define PYX_PATH(P, PW, RBMAX, NPFOR, KROWS, SPLIT8, SHAPES)                    \
SHAPES(PYX_DEF, P)                                                              \
P##_TARGET static inline __attribute__((always_inline)) void P##_call(          \
        int rows, int np, int k, const P##_T* A, const ptrdiff_t* ao,           \
        const P##_T* Bp, size_t ps, size_t rs, P##_T beta, P##_T* C,            \
        const ptrdiff_t* co, const P##_T* pf) {                                 \
    switch (rows * 16 + np) { SHAPES(PYX_CASE, P) }                             \
}                                                                               \
PYX_GEMM_PATH(P, P##_TARGET, P##_T, PW, RBMAX, NPFOR, KROWS, SPLIT8, P##_call)

/* Portable: GCC's generic vectors of 16 bytes. On aarch64 the fused
 * multiply-add is NEON's; elsewhere a multiply and an add (-ffp-contract=off
 * keeps them apart, so every build of this path rounds alike). */
typedef float pyx_vf __attribute__((vector_size(16)));
typedef double pyx_vd __attribute__((vector_size(16)));
static inline pyx_vf pyx_vf_load(const float* p) { pyx_vf v; memcpy(&v, p, 16); return v; }
static inline pyx_vd pyx_vd_load(const double* p) { pyx_vd v; memcpy(&v, p, 16); return v; }
static inline void pyx_vf_store(float* p, pyx_vf v) { memcpy(p, &v, 16); }
static inline void pyx_vd_store(double* p, pyx_vd v) { memcpy(p, &v, 16); }
static inline pyx_vf pyx_vf_bcast(float s) { pyx_vf v = {s, s, s, s}; return v; }
static inline pyx_vd pyx_vd_bcast(double s) { pyx_vd v = {s, s}; return v; }
static inline pyx_vf pyx_vf_zero(void) { pyx_vf v = {0, 0, 0, 0}; return v; }
static inline pyx_vd pyx_vd_zero(void) { pyx_vd v = {0, 0}; return v; }
static inline pyx_vf pyx_vf_fma(pyx_vf a, pyx_vf b, pyx_vf c) {
#if defined(__aarch64__)
    return (pyx_vf) vfmaq_f32((float32x4_t) c, (float32x4_t) a, (float32x4_t) b);
#else
    return a * b + c;
#endif
}
static inline pyx_vd pyx_vd_fma(pyx_vd a, pyx_vd b, pyx_vd c) {
#if defined(__aarch64__)
    return (pyx_vd) vfmaq_f64((float64x2_t) c, (float64x2_t) a, (float64x2_t) b);
#else
    return a * b + c;
#endif
}

/* 16 registers of 16 bytes: up to 3 rows of one panel (12 accumulators),
 * a single row two panels. */
#define PYX_NP_PORTABLE(rows) ((rows) == 1 ? 2 : 1)
#define PYX_SHAPES_PORTABLE(X, P) X(P, 1, 1) X(P, 1, 2) X(P, 2, 1) X(P, 3, 1)
#define pyx_portable_f_TARGET
#define pyx_portable_f_T float
#define pyx_portable_f_VEC pyx_vf, 4, 4, 16
#define pyx_portable_f_OPS pyx_vf_load, pyx_vf_store, pyx_vf_bcast, pyx_vf_fma, pyx_vf_zero
#define pyx_portable_d_TARGET
#define pyx_portable_d_T double
#define pyx_portable_d_VEC pyx_vd, 2, 4, 16
#define pyx_portable_d_OPS pyx_vd_load, pyx_vd_store, pyx_vd_bcast, pyx_vd_fma, pyx_vd_zero
PYX_PATH(pyx_portable_f, PYX_PANEL_F, 3, PYX_NP_PORTABLE, PYX_KROWS_ANY, 0, PYX_SHAPES_PORTABLE)
PYX_PATH(pyx_portable_d, PYX_PANEL_D, 3, PYX_NP_PORTABLE, PYX_KROWS_ANY, 0, PYX_SHAPES_PORTABLE)

#if PYX_SIMD_X86
/* AVX2 + FMA, 16 registers of 32 bytes: 6 rows x 1 panel (12
 * accumulators, the classic 6 x 16 block), 3 rows x 2 (12 again; 3 x 1
 * left the two FMA units short of chains), 2 rows x 2, 1 row x 4. (2 x 3
 * made GCC keep accumulators on the stack.) 8 rows go as 5 x 1 and 3 x 2
 * (10 and 12 chains), not 4 x 1 twice (8): 8% faster (PYX_ROWS). */
#define PYX_NP_AVX2(rows) ((rows) == 1 ? 4 : (rows) <= 3 ? 2 : 1)
#define PYX_SHAPES_AVX2(X, P) X(P, 1, 1) X(P, 1, 2) X(P, 1, 3) X(P, 1, 4) \
    X(P, 2, 1) X(P, 2, 2) X(P, 3, 1) X(P, 3, 2) X(P, 4, 1) X(P, 5, 1) X(P, 6, 1)
#define pyx_avx2_f_TARGET PYX_TARGET_AVX2
#define pyx_avx2_f_T float
#define pyx_avx2_f_VEC __m256, 8, 2, 16
#define pyx_avx2_f_OPS _mm256_loadu_ps, _mm256_storeu_ps, _mm256_set1_ps, _mm256_fmadd_ps, \
    _mm256_setzero_ps
#define pyx_avx2_d_TARGET PYX_TARGET_AVX2
#define pyx_avx2_d_T double
#define pyx_avx2_d_VEC __m256d, 4, 2, 16
#define pyx_avx2_d_OPS _mm256_loadu_pd, _mm256_storeu_pd, _mm256_set1_pd, _mm256_fmadd_pd, \
    _mm256_setzero_pd
PYX_PATH(pyx_avx2_f, PYX_PANEL_F, 6, PYX_NP_AVX2, PYX_KROWS_AVX2, 1, PYX_SHAPES_AVX2)
PYX_PATH(pyx_avx2_d, PYX_PANEL_D, 6, PYX_NP_AVX2, PYX_KROWS_AVX2, 1, PYX_SHAPES_AVX2)

/* AVX-512, 32 registers of 64 bytes: 6 rows x 4 panels (24
 * accumulators), a row or two 8 panels. */
#define PYX_NP_AVX512(rows) ((rows) <= 2 ? 8 : 4)
#define PYX_SHAPES_AVX512(X, P) \
    X(P, 1, 1) X(P, 1, 2) X(P, 1, 3) X(P, 1, 4) X(P, 1, 5) X(P, 1, 6) X(P, 1, 7) X(P, 1, 8) \
    X(P, 2, 1) X(P, 2, 2) X(P, 2, 3) X(P, 2, 4) X(P, 2, 5) X(P, 2, 6) X(P, 2, 7) X(P, 2, 8) \
    X(P, 3, 1) X(P, 3, 2) X(P, 3, 3) X(P, 3, 4) X(P, 4, 1) X(P, 4, 2) X(P, 4, 3) X(P, 4, 4) \
    X(P, 5, 1) X(P, 5, 2) X(P, 5, 3) X(P, 5, 4) X(P, 6, 1) X(P, 6, 2) X(P, 6, 3) X(P, 6, 4)
#define pyx_avx512_f_TARGET PYX_TARGET_AVX512
#define pyx_avx512_f_T float
#define pyx_avx512_f_VEC __m512, 16, 1, 32
#define pyx_avx512_f_OPS _mm512_loadu_ps, _mm512_storeu_ps, _mm512_set1_ps, _mm512_fmadd_ps, \
    _mm512_setzero_ps
#define pyx_avx512_d_TARGET PYX_TARGET_AVX512
#define pyx_avx512_d_T double
#define pyx_avx512_d_VEC __m512d, 8, 1, 32
#define pyx_avx512_d_OPS _mm512_loadu_pd, _mm512_storeu_pd, _mm512_set1_pd, _mm512_fmadd_pd, \
    _mm512_setzero_pd
PYX_PATH(pyx_avx512_f, PYX_PANEL_F, 6, PYX_NP_AVX512, PYX_KROWS_ANY, 0, PYX_SHAPES_AVX512)
PYX_PATH(pyx_avx512_d, PYX_PANEL_D, 6, PYX_NP_AVX512, PYX_KROWS_ANY, 0, PYX_SHAPES_AVX512)
#endif

/* C[m x n] = beta * C + A[m x k] @ Bp[0:k, 0:n] on the path in use
 * (pyx_simd()); see PYX_GEMM_PATH. */
#define PYX_GEMM_PACKED(NAME, T, SUF)                                           \
static void NAME(int m, int n, int k, const T* A, int lda, const T* Bp,        \
                 size_t ps, size_t rs, T beta, T* C, int ldc, int groups,      \
                 size_t gsa, size_t gsc) {                                      \
    switch (pyx_simd()) {                                                       \
    PYX_X86_CASES(SUF)                                                          \
    default:                                                                    \
        pyx_portable_##SUF(m, n, k, A, lda, Bp, ps, rs, beta, C, ldc, groups, gsa, gsc); \
    }                                                                           \
}
#if PYX_SIMD_X86
#define PYX_X86_CASES(SUF)                                                      \
    case PYX_SIMD_AVX512:                                                       \
        pyx_avx512_##SUF(m, n, k, A, lda, Bp, ps, rs, beta, C, ldc, groups, gsa, gsc); \
        return;                                                                 \
    case PYX_SIMD_AVX2:                                                         \
        pyx_avx2_##SUF(m, n, k, A, lda, Bp, ps, rs, beta, C, ldc, groups, gsa, gsc); \
        return;
#else
#define PYX_X86_CASES(SUF)
#endif
PYX_GEMM_PACKED(pyx_gemm_packed_f, float, f)
PYX_GEMM_PACKED(pyx_gemm_packed_d, double, d)

#endif
