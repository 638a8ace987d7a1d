"""Find the OpenBLAS behind ``scipy.linalg.cython_blas`` and bind its thread
controls into the kernels (``pyx_gru._blas.bind_openblas``).

The kernels split a batch over a team of as many threads as the BLAS may use,
and hold the BLAS at one thread while any kernel call runs (every BLAS call
of a kernel is single-threaded), restoring its setting when the last call
returns: what scikit-learn's OpenMP code does with threadpoolctl, in C and
per call. Meanwhile other threads' calls into the same BLAS (SciPy's; NumPy
has its own) run single-threaded too, and a change of its thread count made
during a kernel call is undone when the call returns. The library is found among the shared objects this
process has mapped (``/proc/self/maps``): the one whose file name
``cython_blas`` names as a dependency. Anything else (another BLAS, another
OS, an older OpenBLAS) leaves the hooks unbound, and the kernels then run the
recurrence on one thread with the BLAS threading each call as it likes:
slower at large batches, never wrong.
"""
import ctypes
import os

import scipy.linalg.cython_blas as _cython_blas

from . import _blas

_GET_NAMES = ("scipy_openblas_get_num_threads", "openblas_get_num_threads")
_SET_NAMES = ("scipy_openblas_set_num_threads", "openblas_set_num_threads")


def _mapped_libraries():
    try:
        with open("/proc/self/maps") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    paths = []
    for line in lines:
        parts = line.split(None, 5)
        if len(parts) == 6 and ".so" in parts[5] and parts[5] not in paths:
            paths.append(parts[5])
    return paths


def _find_openblas():
    """(get_num_threads, set_num_threads) addresses, or (0, 0)."""
    try:
        with open(_cython_blas.__file__, "rb") as f:
            needed = f.read()
    except OSError:
        return 0, 0
    for path in _mapped_libraries():
        name = os.path.basename(path)
        if "openblas" not in name or name.encode() not in needed:
            continue
        try:
            lib = ctypes.CDLL(path, mode=getattr(os, "RTLD_NOLOAD", 0) | ctypes.RTLD_LOCAL)
        except OSError:
            continue
        get = next((getattr(lib, n) for n in _GET_NAMES if hasattr(lib, n)), None)
        set_ = next((getattr(lib, n) for n in _SET_NAMES if hasattr(lib, n)), None)
        if get is not None and set_ is not None:
            return (ctypes.cast(get, ctypes.c_void_p).value,
                    ctypes.cast(set_, ctypes.c_void_p).value)
    return 0, 0


def bind():
    """Bind the hooks unless ``PYX_GRU_SPLIT=0``; returns whether bound."""
    get, set_ = (0, 0) if os.environ.get("PYX_GRU_SPLIT", "1") == "0" else _find_openblas()
    return _blas.bind_openblas(get or 0, set_ or 0)


BOUND = bind()
