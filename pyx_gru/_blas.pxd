# The one place pyx_gru calls BLAS. Declared here, defined in _blas.pyx.
from cython cimport floating

# Row-major C = alpha * op(A) @ op(B) + beta * C, with op(M) = M.T when
# trans_M is true. C is (m, n), op(A) is (m, k), op(B) is (k, n); lda, ldb and
# ldc are the row strides (in elements) of A, B and C as stored.
cdef void gemm(bint trans_a, bint trans_b, int m, int n, int k,
               floating alpha, const floating* a, int lda,
               const floating* b, int ldb,
               floating beta, floating* c, int ldc) noexcept nogil


# A team of threads in the kernels. Every kernel call runs between
# team_enter(want) and team_leave(). While any call is inside, SciPy's BLAS is
# held at one thread (as scikit-learn's OpenMP code does with threadpoolctl)
# and the setting it had is given back when the last call leaves; so every
# BLAS call of a kernel is single-threaded, whatever runs beside it, and a
# result depends only on the team size. team_enter returns that size: at most
# `want` and at most the BLAS's own thread count (threadpoolctl and
# OPENBLAS_NUM_THREADS govern pyx_gru too). Unbound hooks (pyx_gru._threads
# binds OpenBLAS's): always 1, and the BLAS is left alone.
cdef int team_enter(int want) noexcept nogil
cdef void team_leave() noexcept nogil
