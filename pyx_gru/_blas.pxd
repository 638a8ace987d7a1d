# The one place pyx_gru calls BLAS. Declared here, defined in _blas.pyx.
from cython cimport floating

# Row-major C = alpha * op(A) @ op(B) + beta * C, with op(M) = M.T when
# trans_M is true. C is (m, n), op(A) is (m, k), op(B) is (k, n); lda, ldb and
# ldc are the row strides (in elements) of A, B and C as stored.
cdef void gemm(bint trans_a, bint trans_b, int m, int n, int k,
               floating alpha, const floating* a, int lda,
               const floating* b, int ldb,
               floating beta, floating* c, int ldc) noexcept nogil
