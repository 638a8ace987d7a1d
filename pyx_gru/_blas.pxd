# The one place pyx_gru calls BLAS. Declared here, defined in _blas.pyx.
from cython cimport floating

# Row-major C = alpha * op(A) @ op(B) + beta * C, with op(M) = M.T when
# trans_M is true. C is (m, n), op(A) is (m, k), op(B) is (k, n); lda, ldb and
# ldc are the row strides (in elements) of A, B and C as stored.
cdef void gemm(bint trans_a, bint trans_b, int m, int n, int k,
               floating alpha, const floating* a, int lda,
               const floating* b, int ldb,
               floating beta, floating* c, int ldc) noexcept nogil



# A team of threads in the kernels. pyx_gru's kernels can split a batch over
# threads that each call BLAS, and the BLAS must then run single-threaded
# (as scikit-learn's OpenMP code does with threadpoolctl). team_enter(want)
# returns the team size to use, at most `want` and at most the BLAS's current
# thread count (so threadpoolctl and OPENBLAS_NUM_THREADS govern pyx_gru too);
# when it returns more than 1, the BLAS is held at one thread until
# team_leave(). It returns 1 when the hooks are unbound (pyx_gru._threads binds
# OpenBLAS's) or while another team runs.
cdef int team_enter(int want) noexcept nogil
cdef void team_leave() noexcept nogil
