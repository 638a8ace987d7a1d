# Design:
# pyx_gru stores every matrix row-major (C order), and BLAS is column-major.
# A row-major matrix with row stride ld is, read column-major, its own
# transpose with leading dimension ld. So the row-major product
#     C = op(A) @ op(B)
# is the column-major product
#     C.T = op(B).T @ op(A).T
# and we call xgemm with the operands swapped and the same transpose flags.
# This is the only module that touches scipy.linalg.cython_blas; the kernels
# cimport ``gemm`` from here, so a change of BLAS or layout happens in one place.
from scipy.linalg.cython_blas cimport sgemm, dgemm


cdef void gemm(bint trans_a, bint trans_b, int m, int n, int k,
               floating alpha, const floating* a, int lda,
               const floating* b, int ldb,
               floating beta, floating* c, int ldc) noexcept nogil:
    cdef char ta = b"T" if trans_a else b"N"
    cdef char tb = b"T" if trans_b else b"N"
    cdef Py_ssize_t i, j
    if m <= 0 or n <= 0:
        return
    if k <= 0:
        # An empty sum: C = beta * C. BLAS does this too, but an explicit zero
        # fill keeps NaN from stale memory out when beta == 0.
        for i in range(m):
            for j in range(n):
                c[i * ldc + j] = 0 if beta == 0 else beta * c[i * ldc + j]
        return
    # C.T = op(B).T @ op(A).T, column-major: swap the operands.
    if floating is float:
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float*> b, &ldb,
              <float*> a, &lda, &beta, c, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*> b, &ldb,
              <double*> a, &lda, &beta, c, &ldc)
