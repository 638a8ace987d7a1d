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


cdef extern from *:
    """
    #include <pthread.h>
    typedef int (*pyx_gru_get_threads_t)(void);
    typedef void (*pyx_gru_set_threads_t)(int);
    static pyx_gru_get_threads_t pyx_gru_get_threads = NULL;
    static pyx_gru_set_threads_t pyx_gru_set_threads = NULL;
    static pthread_mutex_t pyx_gru_team_lock = PTHREAD_MUTEX_INITIALIZER;
    static int pyx_gru_team_users = 0;  /* calls inside enter/leave */
    static int pyx_gru_team_saved = 1;  /* the BLAS's threads before the first of them */

    static int pyx_gru_team_enter(int want) {
        int n;
        if (pyx_gru_get_threads == NULL || pyx_gru_set_threads == NULL)
            return 1;
        pthread_mutex_lock(&pyx_gru_team_lock);
        if (pyx_gru_team_users++ == 0) {
            pyx_gru_team_saved = pyx_gru_get_threads();
            if (pyx_gru_team_saved > 1)
                pyx_gru_set_threads(1);
            else
                pyx_gru_team_saved = 1;
        }
        n = want < pyx_gru_team_saved ? want : pyx_gru_team_saved;
        pthread_mutex_unlock(&pyx_gru_team_lock);
        return n > 1 ? n : 1;
    }

    static void pyx_gru_team_leave(void) {
        if (pyx_gru_get_threads == NULL || pyx_gru_set_threads == NULL)
            return;
        pthread_mutex_lock(&pyx_gru_team_lock);
        if (--pyx_gru_team_users == 0 && pyx_gru_team_saved > 1)
            pyx_gru_set_threads(pyx_gru_team_saved);
        pthread_mutex_unlock(&pyx_gru_team_lock);
    }

    static int pyx_gru_bind(size_t get, size_t set) {
        pthread_mutex_lock(&pyx_gru_team_lock);
        if (pyx_gru_team_users > 0) {   /* never rebind under a running call */
            pthread_mutex_unlock(&pyx_gru_team_lock);
            return pyx_gru_get_threads != NULL;
        }
        pyx_gru_get_threads = (pyx_gru_get_threads_t) get;
        pyx_gru_set_threads = (pyx_gru_set_threads_t) set;
        pthread_mutex_unlock(&pyx_gru_team_lock);
        return get != 0 && set != 0;
    }

    static int pyx_gru_blas_threads(void) {
        int n = 1;
        if (pyx_gru_get_threads != NULL) {
            pthread_mutex_lock(&pyx_gru_team_lock);
            n = pyx_gru_team_users > 0 ? pyx_gru_team_saved : pyx_gru_get_threads();
            pthread_mutex_unlock(&pyx_gru_team_lock);
        }
        return n > 1 ? n : 1;
    }
    """
    int pyx_gru_team_enter(int want) noexcept nogil
    void pyx_gru_team_leave() noexcept nogil
    int pyx_gru_bind(size_t get, size_t set) noexcept nogil
    int pyx_gru_blas_threads() noexcept nogil


cdef int team_enter(int want) noexcept nogil:
    return pyx_gru_team_enter(want)


cdef void team_leave() noexcept nogil:
    pyx_gru_team_leave()


def bind_openblas(size_t get_num_threads, size_t set_num_threads):
    """Bind OpenBLAS's ``openblas_get_num_threads`` and
    ``openblas_set_num_threads`` (their addresses, from ctypes), or unbind
    both with zeros. Called once, by pyx_gru._threads. Returns whether bound."""
    if get_num_threads == 0 or set_num_threads == 0:
        get_num_threads = set_num_threads = 0
    return bool(pyx_gru_bind(get_num_threads, set_num_threads))


def threads():
    """The BLAS's thread count as the kernels see it (1 when unbound): the
    largest team a call may run on."""
    return pyx_gru_blas_threads()
