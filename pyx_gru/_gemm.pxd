# The per-step products against a packed U (_gemm.h): fused-type names for
# the sequence driver. Everything else goes through _blas.gemm.
from cython cimport floating


cdef extern from "_simd.h" nogil:
    int PYX_SIMD_AVX512
    int pyx_simd()
    int pyx_simd_widest()
    int pyx_simd_set(int level)


cdef extern from "_gemm.h" nogil:
    size_t PYX_PANEL_F
    size_t PYX_PANEL_D
    size_t pyx_set_prefetch_bytes(size_t bytes)
    size_t pyx_packed_size(size_t K, size_t N, size_t pw)
    void pyx_pack_f(size_t K, size_t N, const float* src, size_t sk, size_t sj,
                    size_t p0, size_t p1, float* dst)
    void pyx_pack_d(size_t K, size_t N, const double* src, size_t sk, size_t sj,
                    size_t p0, size_t p1, double* dst)
    void pyx_gemm_packed_f(int m, int n, int k, const float* A, int lda, const float* Bp,
                           size_t ps, size_t rs, float beta, float* C, int ldc, int groups,
                           size_t gsa, size_t gsc)
    void pyx_gemm_packed_d(int m, int n, int k, const double* A, int lda, const double* Bp,
                           size_t ps, size_t rs, double beta, double* C, int ldc, int groups,
                           size_t gsa, size_t gsc)


cdef inline size_t panel_width(const floating* like) noexcept nogil:
    """Columns per panel: one 64-byte vector (_gemm.h's PYX_PANEL_F/_D)."""
    return PYX_PANEL_F if floating is float else PYX_PANEL_D


cdef inline void pack(size_t K, size_t N, const floating* src, size_t sk, size_t sj,
                      size_t p0, size_t p1, floating* dst) noexcept nogil:
    """Panels [p0, p1) of the (K x N) operand src[k * sk + j * sj] into dst."""
    if floating is float:
        pyx_pack_f(K, N, src, sk, sj, p0, p1, dst)
    else:
        pyx_pack_d(K, N, src, sk, sj, p0, p1, dst)


cdef inline void gemm_packed(int m, int n, int k, const floating* A, int lda,
                             const floating* Bp, size_t ps, floating beta,
                             floating* C, int ldc, int groups=1, size_t gsa=0,
                             size_t gsc=0, size_t rs=0) noexcept nogil:
    """C[m x n] = beta * C + A[m x k] @ Bp[0:k, 0:n], Bp packed (panels ps
    apart, rows rs apart: 0 means one panel's width, as packed); the same
    for `groups` groups of m rows, at A + g * gsa and C + g * gsc."""
    if floating is float:
        pyx_gemm_packed_f(m, n, k, A, lda, Bp, ps, rs if rs else PYX_PANEL_F, beta, C, ldc,
                          groups, gsa, gsc)
    else:
        pyx_gemm_packed_d(m, n, k, A, lda, Bp, ps, rs if rs else PYX_PANEL_D, beta, C, ldc,
                          groups, gsa, gsc)
