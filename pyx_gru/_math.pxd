# The activations of the kernels, in the precision of the data. The math is
# in _activations.h (one C source, block functions compiled per instruction
# set); this file gives it fused-type names for the Cython kernels.
from cython cimport floating


cdef extern from "_activations.h" nogil:
    float pyx_sigmoid_f(float a)
    double pyx_sigmoid_d(double a)
    float pyx_tanh_f(float a)
    double pyx_tanh_d(double a)
    void pyx_sigmoid_block_f(float* v, Py_ssize_t n)
    void pyx_sigmoid_block_d(double* v, Py_ssize_t n)
    void pyx_tanh_block_f(float* v, Py_ssize_t n)
    void pyx_tanh_block_d(double* v, Py_ssize_t n)


cdef inline floating sigmoid(floating a) noexcept nogil:
    """1 / (1 + exp(-a)), without overflow for any a."""
    if floating is float:
        return pyx_sigmoid_f(a)
    else:
        return pyx_sigmoid_d(a)


cdef inline floating tanh_(floating a) noexcept nogil:
    if floating is float:
        return pyx_tanh_f(a)
    else:
        return pyx_tanh_d(a)


cdef inline void sigmoid_block(floating* v, Py_ssize_t n) noexcept nogil:
    # v[:n] = sigmoid(v[:n])
    if floating is float:
        pyx_sigmoid_block_f(v, n)
    else:
        pyx_sigmoid_block_d(v, n)


cdef inline void tanh_block(floating* v, Py_ssize_t n) noexcept nogil:
    # v[:n] = tanh(v[:n])
    if floating is float:
        pyx_tanh_block_f(v, n)
    else:
        pyx_tanh_block_d(v, n)
