# Scalar activations shared by the kernels, in the precision of the data.
#
# Design: libm's tanhf costs 15-20 ns and expf 2 ns here, and neither call
# vectorises, so a loop over a gate block ran at the speed of its calls. These
# versions are branch-free arithmetic (selects, not jumps) that GCC
# vectorises when they are applied over a contiguous block
# (``sigmoid_block``/``tanh_block``):
#
# * exp(x) for x <= 0, after Cephes: x = n ln2 + r with |r| <= ln2 / 2
#   (n rounded by the 1.5 * 2^p "magic number" trick, ln2 split in two for
#   Cody-Waite), exp(r) by a polynomial (float) or a Pade approximant
#   (double), 2^n built in the exponent bits. x is clamped at -87 (float) or
#   -708 (double), where exp(x) is the smallest normal number or so: the
#   sigmoid of a pre-activation below -87 is then 1.6e-38 instead of a
#   denormal (absolute error < 2e-38).
# * sigmoid(a) = 1 / (1 + e) for a >= 0 and e / (1 + e) for a < 0, with
#   e = exp(-|a|) <= 1: no overflow, full relative accuracy on both sides.
# * tanh(a): |a| < 0.625 by Cephes' odd rational (no cancellation near 0),
#   otherwise (1 - e) / (1 + e) with e = exp(-2|a|), sign restored.
# NaN in gives NaN out; +-inf gives the limits. Accuracy (tests/test_math.py):
# within a few ulp of NumPy's float64 functions.
from cython cimport floating
from libc.math cimport copysign, copysignf, fabs, fabsf
from libc.stdint cimport uint32_t, uint64_t
from libc.string cimport memcpy


cdef inline float _exp_nonpos_f(float x) noexcept nogil:
    # exp(x) for x <= 0
    cdef float t, n, r, p
    cdef uint32_t bits
    cdef float scale
    x = <float> -87.0 if x < <float> -87.0 else x
    # t's low mantissa bits hold round(x / ln2); n is that integer as a float
    t = x * <float> 1.44269504088896341 + <float> 12582912.0
    n = t - <float> 12582912.0
    r = x - n * <float> 0.693359375
    r = r + n * <float> 2.12194440e-4
    p = <float> 1.9875691500e-4
    p = p * r + <float> 1.3981999507e-3
    p = p * r + <float> 8.3334519073e-3
    p = p * r + <float> 4.1665795894e-2
    p = p * r + <float> 1.6666665459e-1
    p = p * r + <float> 5.0000001201e-1
    p = p * (r * r) + r + <float> 1.0
    memcpy(&bits, &t, 4)
    bits = (bits + <uint32_t> 127) << 23  # 2^n (the magic's high bits shift out)
    memcpy(&scale, &bits, 4)
    return p * scale


cdef inline double _exp_nonpos_d(double x) noexcept nogil:
    # exp(x) for x <= 0
    cdef double t, n, r, rr, px
    cdef uint64_t bits
    cdef double scale
    x = -708.0 if x < -708.0 else x
    t = x * 1.4426950408889634073599 + 6755399441055744.0
    n = t - 6755399441055744.0
    r = x - n * 6.93145751953125e-1
    r = r - n * 1.42860682030941723212e-6
    rr = r * r
    px = r * ((1.26177193074810590878e-4 * rr + 3.02994407707441961300e-2) * rr
              + 9.99999999999999999910e-1)
    r = px / ((((3.00198505138664455042e-6 * rr + 2.52448340349684104192e-3) * rr
               + 2.27265548208155028766e-1) * rr + 2.00000000000000000009e0) - px)
    r = 1.0 + 2.0 * r
    memcpy(&bits, &t, 8)
    bits = (bits + <uint64_t> 1023) << 52
    memcpy(&scale, &bits, 8)
    return r * scale


cdef inline floating sigmoid(floating a) noexcept nogil:
    """1 / (1 + exp(-a)), without overflow for any a."""
    cdef floating e, s
    cdef floating one = 1
    if floating is float:
        e = _exp_nonpos_f(-fabsf(a))
    else:
        e = _exp_nonpos_d(-fabs(a))
    s = one / (one + e)
    return s if a >= 0 else e * s


cdef inline floating tanh_(floating a) noexcept nogil:
    # tanh(|a|) by one of two formulas, then the sign of a (so tanh(-0) = -0)
    cdef floating x, z, e, big, small
    cdef floating one = 1
    if floating is float:
        x = fabsf(a)
        e = _exp_nonpos_f(<float> -2.0 * x)
        big = (one - e) / (one + e)
        z = x * x
        small = x + x * z * ((((<float> -5.70498872745e-3 * z + <float> 2.06390887954e-2) * z
                                - <float> 5.37397155531e-2) * z + <float> 1.33314422036e-1) * z
                              - <float> 3.33332819422e-1)
        return copysignf(small if x < <float> 0.625 else big, a)
    else:
        x = fabs(a)
        e = _exp_nonpos_d(-2.0 * x)
        big = (one - e) / (one + e)
        z = x * x
        small = x + x * z * (((-9.64399179425052238628e-1 * z - 9.92877231001918586564e1) * z
                              - 1.61468768441708447952e3)
                             / (((z + 1.12811678491632931402e2) * z
                                 + 2.23548839060100448583e3) * z + 4.84406305325125486048e3))
        return copysign(small if x < 0.625 else big, a)


cdef inline void sigmoid_block(floating* v, Py_ssize_t n) noexcept nogil:
    # v[:n] = sigmoid(v[:n]), one simple loop so that it vectorises
    cdef Py_ssize_t i
    for i in range(n):
        v[i] = sigmoid(v[i])


cdef inline void tanh_block(floating* v, Py_ssize_t n) noexcept nogil:
    # v[:n] = tanh(v[:n])
    cdef Py_ssize_t i
    for i in range(n):
        v[i] = tanh_(v[i])
