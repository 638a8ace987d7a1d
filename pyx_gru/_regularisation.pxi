# Recurrent dropout and zoneout, the driver's side (included by
# _recurrent.pyx; the equations are on docs/theory/regularisation.rst).
#
# Both act around a cell's pointwise step, never inside it, so every kind
# with a recurrent product gets them from the driver alone:
# - recurrent dropout (Gal & Ghahramani 2016): the state that enters the
#   recurrent product is h_{t-1} * m, m (B, H) one mask per sequence with
#   values 0 and 1 / (1 - p) (drawn by the caller, the same for every step).
#   The reset-before kinds put the mask on the state inside their second
#   product too: extra = r * h_{t-1} * m. Backwards, what comes back through
#   U is multiplied by m, and dU reads (h * m) rows.
# - zoneout (Krueger et al. 2017): after the step, h_t = d * h_{t-1} +
#   (1 - d) * h^_t, d Bernoulli(p) per step, row and unit (training), or
#   h_t = p h_{t-1} + (1 - p) h^_t (evaluation); for the LSTM the same on c
#   with its own rate and mask, the step's own c^_t kept in `extra` (the
#   backward's tanh(c) and o-peephole read c^_t, not the zoned c_t). The
#   masks are never stored: a counter-based hash of (key, t, row, part,
#   unit) (below), which the backward regenerates and pyx_gru.reference
#   computes the same way in uint64/uint32 arrays.
# Off (dropout False, zoneout _ZONE_OFF), the driver tests a flag a step
# and runs the same calls as without this file.

cdef extern from *:
    """
    #include <stdint.h>
    #include <stddef.h>
    /* The zoneout masks. A row's stream: the n-th output of splitmix64
       (Steele, Lea & Flood 2014) from the pass's key, n = (t B + b) 2 +
       part, computed once per row; a unit's draw: a 32-bit finaliser
       (lowbias32, C. Wellons) of (lo + j * golden) ^ hi, lo and hi the
       row's two halves, which vectorises (32-bit multiplies) where a
       64-bit hash per unit would not. d = 1 where the draw < p 2^32. */
    static inline uint64_t pyx_zone_row(uint64_t key, uint64_t n) {
        uint64_t z = key + (n + 1) * 0x9E3779B97F4A7C15ULL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        return z ^ (z >> 31);
    }
    static inline uint32_t pyx_zone_draw(uint32_t lo, uint32_t hi, uint32_t j) {
        uint32_t x = (lo + j * 0x9E3779B9u) ^ hi;
        x ^= x >> 16; x *= 0x7FEB352Du;
        x ^= x >> 15; x *= 0x846CA68Bu;
        return x ^ (x >> 16);
    }
    static inline uint32_t pyx_zone_threshold(double p) {
        return (uint32_t)(p * 4294967296.0);   /* p in [0, 1): exact */
    }
    /* cur[i] = prev[i] where unit j0 + i is kept, i < n (integer hashing
       and selects: every path gives the same bits; the wider the 32-bit
       multiplies, the faster) */
    #define PYX_ZONE_ROWS(T, name, ATTR) \
    ATTR static void name##_forward(T* cur, const T* prev, ptrdiff_t n, uint64_t row, \
                               uint32_t thr, uint32_t j0) { \
        uint32_t lo = (uint32_t) row, hi = (uint32_t) (row >> 32); \
        for (ptrdiff_t i = 0; i < n; i++) { \
            uint32_t u = pyx_zone_draw(lo, hi, j0 + (uint32_t) i); \
            T a = prev[i], b = cur[i];  /* both loaded: the select vectorises */ \
            cur[i] = u < thr ? a : b; \
        } \
    } \
    /* kept[i] = d[i] where kept (d[i] = 0 there), else 0 */ \
    ATTR static void name##_backward(T* d, T* kept, ptrdiff_t n, uint64_t row, \
                                uint32_t thr, uint32_t j0) { \
        uint32_t lo = (uint32_t) row, hi = (uint32_t) (row >> 32); \
        for (ptrdiff_t i = 0; i < n; i++) { \
            uint32_t u = pyx_zone_draw(lo, hi, j0 + (uint32_t) i); \
            T v = d[i]; \
            kept[i] = u < thr ? v : (T) 0; \
            d[i] = u < thr ? (T) 0 : v; \
        } \
    }
    #include "_simd.h"
    PYX_ZONE_ROWS(float, pyx_zone_fp, )
    PYX_ZONE_ROWS(double, pyx_zone_dp, )
    #if PYX_SIMD_X86
    PYX_ZONE_ROWS(float, pyx_zone_fa, PYX_TARGET_AVX2)
    PYX_ZONE_ROWS(double, pyx_zone_da, PYX_TARGET_AVX2)
    PYX_ZONE_ROWS(float, pyx_zone_fz, PYX_TARGET_AVX512)
    PYX_ZONE_ROWS(double, pyx_zone_dz, PYX_TARGET_AVX512)
    #define PYX_ZONE_PATH pyx_simd()
    #else
    #define PYX_ZONE_PATH 0
    #endif
    /* the widest path's clone (its 16 32-bit lanes hash twice AVX2's) */
    #define PYX_ZONE_DISPATCH(T, name, p, a, z) \
    static void name##_forward(T* cur, const T* prev, ptrdiff_t n, uint64_t row, \
                               uint32_t thr, uint32_t j0) { \
        int path = PYX_ZONE_PATH; \
        if (path >= PYX_SIMD_AVX512) z##_forward(cur, prev, n, row, thr, j0); \
        else if (path >= PYX_SIMD_AVX2) a##_forward(cur, prev, n, row, thr, j0); \
        else p##_forward(cur, prev, n, row, thr, j0); \
    } \
    static void name##_backward(T* d, T* kept, ptrdiff_t n, uint64_t row, \
                                uint32_t thr, uint32_t j0) { \
        int path = PYX_ZONE_PATH; \
        if (path >= PYX_SIMD_AVX512) z##_backward(d, kept, n, row, thr, j0); \
        else if (path >= PYX_SIMD_AVX2) a##_backward(d, kept, n, row, thr, j0); \
        else p##_backward(d, kept, n, row, thr, j0); \
    }
    /* Recurrent dropout's mask, one (B, H) array a pass: row b's stream is
       splitmix64(key ^ PYX_DROP_SALT, b) (apart from zoneout's), unit j's
       draw as zoneout's; m = 0 where the draw < p 2^32, else scale. */
    #define PYX_DROP_SALT 0xD1B54A32D192ED03ULL
    #define PYX_DROP_MASK(T, name) \
    static void name(T* m, ptrdiff_t B, ptrdiff_t H, uint64_t key, uint32_t thr, T scale) { \
        for (ptrdiff_t b = 0; b < B; b++) { \
            uint64_t row = pyx_zone_row(key ^ PYX_DROP_SALT, (uint64_t) b); \
            uint32_t lo = (uint32_t) row, hi = (uint32_t) (row >> 32); \
            for (ptrdiff_t j = 0; j < H; j++) \
                m[b * H + j] = pyx_zone_draw(lo, hi, (uint32_t) j) < thr ? (T) 0 : scale; \
        } \
    }
    PYX_DROP_MASK(float, pyx_drop_mask_f)
    PYX_DROP_MASK(double, pyx_drop_mask_d)
    #if PYX_SIMD_X86
    PYX_ZONE_DISPATCH(float, pyx_zone_f, pyx_zone_fp, pyx_zone_fa, pyx_zone_fz)
    PYX_ZONE_DISPATCH(double, pyx_zone_d, pyx_zone_dp, pyx_zone_da, pyx_zone_dz)
    #else
    PYX_ZONE_DISPATCH(float, pyx_zone_f, pyx_zone_fp, pyx_zone_fp, pyx_zone_fp)
    PYX_ZONE_DISPATCH(double, pyx_zone_d, pyx_zone_dp, pyx_zone_dp, pyx_zone_dp)
    #endif
    """
    unsigned long long pyx_zone_row(unsigned long long key, unsigned long long n) noexcept nogil
    void pyx_drop_mask_f(float* m, Py_ssize_t B, Py_ssize_t H, unsigned long long key,
                         unsigned int thr, float scale) noexcept nogil
    void pyx_drop_mask_d(double* m, Py_ssize_t B, Py_ssize_t H, unsigned long long key,
                         unsigned int thr, double scale) noexcept nogil
    unsigned int pyx_zone_threshold(double p) noexcept nogil
    void pyx_zone_f_forward(float* cur, const float* prev, Py_ssize_t n, unsigned long long row,
                            unsigned int thr, unsigned int j0) noexcept nogil
    void pyx_zone_d_forward(double* cur, const double* prev, Py_ssize_t n,
                            unsigned long long row, unsigned int thr,
                            unsigned int j0) noexcept nogil
    void pyx_zone_f_backward(float* d, float* kept, Py_ssize_t n, unsigned long long row,
                             unsigned int thr, unsigned int j0) noexcept nogil
    void pyx_zone_d_backward(double* d, double* kept, Py_ssize_t n, unsigned long long row,
                             unsigned int thr, unsigned int j0) noexcept nogil


def seed_key(unsigned long long seed):
    """The 64-bit key of a training pass seeded with an int in [0, 2**64):
    the first output of SplitMix64 seeded with it (docs/theory/regularisation.rst)."""
    return pyx_zone_row(seed, 0)


def dropout_mask(unsigned long long key, double p, floating[:, ::1] out):
    """Fill ``out`` (B, H) with recurrent dropout's mask m of the pass with
    key ``key``: 0 where unit j of row b is dropped (probability p), else
    1 / (1 - p). The same bits as ``pyx_gru.reference.dropout_mask``
    (docs/theory/regularisation.rst)."""
    if not 0 <= p < 1:
        raise ValueError(f"dropout_mask: p must lie in [0, 1), got {p!r}")
    cdef Py_ssize_t B = out.shape[0]
    cdef Py_ssize_t H = out.shape[1]
    cdef unsigned int thr = pyx_zone_threshold(p)
    cdef double scale = 1.0 / (1.0 - p)
    if B * H == 0:
        return
    with nogil:
        if floating is float:
            pyx_drop_mask_f(&out[0, 0], B, H, key, thr, <float> scale)
        else:
            pyx_drop_mask_d(&out[0, 0], B, H, key, thr, scale)


cdef enum:
    _ZONE_OFF = 0
    _ZONE_TRAIN = 1     # Bernoulli masks from the hash
    _ZONE_EVAL = 2      # the expectation

ZONE_OFF = _ZONE_OFF
ZONE_TRAIN = _ZONE_TRAIN
ZONE_EVAL = _ZONE_EVAL


ctypedef struct _Reg:
    # What a pass needs of the two options (pointers to the pass's floating
    # type: a struct cannot hold a fused type).
    bint dropout
    const void* drop    # m (B, H)
    void* hm            # forward: (B, H) rows h_{t-1} * m; backward: (K, B, H), hs * m of a chunk
    int zoneout         # _ZONE_*
    double p_h          # zoneout rate of h
    double p_c          # of c (cell_state kinds)
    unsigned long long key
    unsigned int thr_h
    unsigned int thr_c


cdef _Reg _make_reg(bint dropout, const void* drop, void* hm, int zoneout, double p_h,
                    double p_c, unsigned long long key) noexcept:
    cdef _Reg r
    r.dropout = dropout
    r.drop = drop
    r.hm = hm
    r.zoneout = zoneout
    r.p_h = p_h
    r.p_c = p_c
    r.key = key
    r.thr_h = pyx_zone_threshold(p_h)
    r.thr_c = pyx_zone_threshold(p_c)
    return r


cdef inline void _times_mask(Py_ssize_t nb, Py_ssize_t H, Py_ssize_t n, const floating* a,
                             const floating* m, floating* out) noexcept nogil:
    # out = a * m over nb rows of n units, rows H apart (out may be a)
    cdef Py_ssize_t bb, j
    for bb in range(nb):
        for j in range(bb * H, bb * H + n):
            out[j] = a[j] * m[j]


cdef inline void _add_times_mask(Py_ssize_t nb, Py_ssize_t H, Py_ssize_t n, const floating* a,
                                 const floating* m, floating* out) noexcept nogil:
    # out += a * m, as _times_mask
    cdef Py_ssize_t bb, j
    for bb in range(nb):
        for j in range(bb * H, bb * H + n):
            out[j] += a[j] * m[j]


cdef inline void _add_rows(Py_ssize_t nb, Py_ssize_t H, Py_ssize_t n, const floating* a,
                           floating* out) noexcept nogil:
    # out += a, as _times_mask
    cdef Py_ssize_t bb, j
    for bb in range(nb):
        for j in range(bb * H, bb * H + n):
            out[j] += a[j]


cdef void _zone_forward(const _Reg* reg, int part, Py_ssize_t t, Py_ssize_t B, Py_ssize_t H,
                        Py_ssize_t b0, Py_ssize_t nb, Py_ssize_t u0, Py_ssize_t nu,
                        const floating* prev, floating* cur) noexcept nogil:
    # Zone out state part `part` (0: h, 1: c) of step t, rows [b0, b0 + nb)
    # and units [u0, u0 + nu): cur (the step's new value, rows H apart,
    # offset to [b0, u0]) keeps prev where d = 1 (training), or becomes
    # p prev + (1 - p) cur (evaluation).
    cdef double p = reg.p_c if part else reg.p_h
    cdef unsigned int thr = reg.thr_c if part else reg.thr_h
    cdef unsigned long long row
    cdef floating fp = <floating> p
    cdef floating q = 1 - fp
    cdef Py_ssize_t bb, j, k
    if p == 0:
        return
    for bb in range(nb):
        k = bb * H
        if reg.zoneout == _ZONE_TRAIN:
            row = pyx_zone_row(reg.key, <unsigned long long> ((t * B + b0 + bb) * 2 + part))
            if floating is float:
                pyx_zone_f_forward(cur + k, prev + k, nu, row, thr, <unsigned int> u0)
            else:
                pyx_zone_d_forward(cur + k, prev + k, nu, row, thr, <unsigned int> u0)
        else:
            for j in range(k, k + nu):
                cur[j] = fp * prev[j] + q * cur[j]


cdef void _zone_backward(const _Reg* reg, int part, Py_ssize_t t, Py_ssize_t B, Py_ssize_t H,
                         Py_ssize_t b0, Py_ssize_t nb, Py_ssize_t u0, Py_ssize_t nu,
                         bint masked, const Py_ssize_t* lengths, floating* d,
                         floating* kept) noexcept nogil:
    # Split d = dL/d(zoned state) of step t (rows and units as _zone_forward,
    # lengths offset to row b0) into the step's part, left in d, and the
    # part that goes straight to the previous state, written to kept (0 in
    # the rows past their length, whose d is left as it is: they carry the
    # state unchanged).
    cdef double p = reg.p_c if part else reg.p_h
    cdef unsigned int thr = reg.thr_c if part else reg.thr_h
    cdef unsigned long long row
    cdef floating fp = <floating> p
    cdef floating q = 1 - fp
    cdef floating zero = 0
    cdef Py_ssize_t bb, j, k
    for bb in range(nb):
        k = bb * H
        if p == 0 or masked and t >= lengths[bb]:
            for j in range(k, k + nu):
                kept[j] = zero
        elif reg.zoneout == _ZONE_TRAIN:
            row = pyx_zone_row(reg.key, <unsigned long long> ((t * B + b0 + bb) * 2 + part))
            if floating is float:
                pyx_zone_f_backward(d + k, kept + k, nu, row, thr, <unsigned int> u0)
            else:
                pyx_zone_d_backward(d + k, kept + k, nu, row, thr, <unsigned int> u0)
        else:
            for j in range(k, k + nu):
                kept[j] = fp * d[j]
                d[j] = q * d[j]
