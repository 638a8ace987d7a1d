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
#   masks are never stored: d = [hash(key, 2 ((t B + b) H + j) + part) <
#   p 2^64], splitmix64's finaliser on a counter, which the backward
#   regenerates and pyx_gru.reference computes the same way in uint64.
# Off (dropout False, zoneout _ZONE_OFF), the driver tests a flag a step
# and runs the same calls as without this file.

cdef extern from *:
    """
    #include <stdint.h>
    /* splitmix64 (Steele, Lea & Flood 2014) as a counter-based generator:
       the n-th output of the stream seeded with key */
    static inline uint64_t pyx_zone_hash(uint64_t key, uint64_t n) {
        uint64_t z = key + (n + 1) * 0x9E3779B97F4A7C15ULL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        return z ^ (z >> 31);
    }
    /* P(hash < threshold) = p for p in [0, 1): p 2^64, truncated (exact) */
    static inline uint64_t pyx_zone_threshold(double p) {
        return (uint64_t)(p * 18446744073709551616.0);
    }
    """
    unsigned long long pyx_zone_hash(unsigned long long key, unsigned long long n) noexcept nogil
    unsigned long long pyx_zone_threshold(double p) noexcept nogil


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
    unsigned long long thr_h
    unsigned long long thr_c


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
    cdef unsigned long long thr = reg.thr_c if part else reg.thr_h
    cdef unsigned long long n
    cdef floating fp = <floating> p
    cdef floating q = 1 - fp
    cdef Py_ssize_t bb, j, k
    if p == 0:
        return
    for bb in range(nb):
        k = bb * H
        if reg.zoneout == _ZONE_TRAIN:
            n = <unsigned long long> (((t * B + b0 + bb) * H + u0) * 2 + part)
            for j in range(nu):
                if pyx_zone_hash(reg.key, n + 2 * j) < thr:
                    cur[k + j] = prev[k + j]
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
    cdef unsigned long long thr = reg.thr_c if part else reg.thr_h
    cdef unsigned long long n
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
            n = <unsigned long long> (((t * B + b0 + bb) * H + u0) * 2 + part)
            for j in range(nu):
                if pyx_zone_hash(reg.key, n + 2 * j) < thr:
                    kept[k + j] = d[k + j]
                    d[k + j] = zero
                else:
                    kept[k + j] = zero
        else:
            for j in range(k, k + nu):
                kept[j] = fp * d[j]
                d[j] = q * d[j]
