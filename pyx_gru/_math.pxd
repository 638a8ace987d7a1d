# Scalar activations shared by the kernels, in the precision of the data:
# float data uses expf/tanhf, double data exp/tanh.
from cython cimport floating
from libc.math cimport exp, expf, tanh, tanhf


cdef inline floating sigmoid(floating a) noexcept nogil:
    """1 / (1 + exp(-a)), without overflow for large |a|."""
    cdef floating one = 1
    cdef floating e
    if floating is float:
        if a >= 0:
            return one / (one + expf(-a))
        e = expf(a)
        return e / (one + e)
    else:
        if a >= 0:
            return one / (one + exp(-a))
        e = exp(a)
        return e / (one + e)


cdef inline floating tanh_(floating a) noexcept nogil:
    if floating is float:
        return tanhf(a)
    else:
        return tanh(a)
