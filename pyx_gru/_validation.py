"""Checks that run in Python before any compiled code sees an array.

Every function here either returns an array the kernels can trust (the cell's
dtype, C-contiguous, the exact shape) or raises a ``TypeError`` or
``ValueError`` that names the argument and the shape it should have.
"""
import numbers

import numpy as np

from . import _workspace

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
# BLAS takes 32-bit ints for sizes and strides.
INT_MAX = 2**31 - 1


def check_size(name, value, minimum=1):
    """An int >= minimum (bool and float rejected)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if value > INT_MAX:
        raise ValueError(f"{name} must be <= {INT_MAX}, got {value}")
    return value


def check_real(name, value):
    """A real number (bool, strings and arrays rejected) as a Python float."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    return float(value)


def check_nonnegative(name, value):
    """A finite real number >= 0 as a Python float."""
    value = check_real(name, value)
    if not 0 <= value < np.inf:
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value


def check_rng(name, seed):
    """``numpy.random.default_rng(seed)``, with an error that names the argument."""
    try:
        return np.random.default_rng(seed)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{name} must be None, an int >= 0, a numpy Generator or SeedSequence, "
                        f"got {seed!r} ({exc})") from None


def check_flag(name, value):
    """A bool (NumPy's included) as a Python bool; anything else is a TypeError."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def check_dtype(dtype):
    """float32 or float64 as an np.dtype."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    return dt


def _no_masked_entries(name, value, expected):
    # np.asarray drops a mask silently: masked entries would be computed with.
    if isinstance(value, np.ma.MaskedArray) and np.ma.is_masked(value):
        hint = "" if name == "lengths" else " (for padded sequences, pass lengths)"
        raise TypeError(
            f"{name} is a masked array with masked entries, which would be read as "
            f"numbers; fill them ({name}.filled(0)){hint}; expected shape {_text(expected)}"
        )


def _array_of(name, value, expected, kinds, what):
    """``value`` as an ndarray whose dtype kind is one of ``kinds``, else a
    TypeError saying it must hold ``what``. ``expected`` describes the shape,
    as text or as a ``shaped_array`` shape (formatted only for an error)."""
    if type(value) is np.ndarray:  # the common case: no mask, no conversion
        arr = value
    else:
        _no_masked_entries(name, value, expected)
        try:
            arr = np.asarray(value)
        except (ValueError, TypeError) as exc:
            raise TypeError(
                f"{name} must be an array of {what} with shape {_text(expected)}; "
                f"it could not be converted to one ({exc})"
            ) from None
    if arr.dtype.kind not in kinds:
        raise TypeError(
            f"{name} must hold {what}, got dtype {arr.dtype}; expected shape {_text(expected)}"
        )
    return arr


def real_array(name, value, expected):
    """``value`` as an ndarray of real numbers (any float or int dtype).

    Lists are converted; bool, complex, object and string data are rejected,
    as is anything that is not rectangular and a masked array with masked
    entries. ``expected`` describes the shape for the error message, e.g.
    ``"(T, B, 8)"`` (or a ``shaped_array`` shape). No copy is made of an ndarray.
    """
    if value is None:
        raise TypeError(f"{name} must be an array of shape {_text(expected)}, got None")
    return _array_of(name, value, expected, "iuf", "real numbers (a float or integer dtype)")


def shape_text(shape):
    """``(T, B, 3)`` for ``("T", "B", 3)``; ``(4,)`` for ``(4,)``."""
    return "(" + ", ".join(str(s) for s in shape) + (",)" if len(shape) == 1 else ")")


def _text(expected):
    # An expected shape as text: a str is already text, a tuple is formatted.
    return expected if isinstance(expected, str) else shape_text(expected)


def shaped_array(name, value, shape):
    """``value`` as a real ndarray of exactly ``shape`` (not yet copied or cast).

    An int in ``shape`` is a required size; a str (``"T"``, ``"B"``) is a free
    dimension, named in the error message.
    """
    arr = real_array(name, value, shape)
    got = arr.shape
    if len(got) == len(shape):
        for s, n in zip(shape, got, strict=True):  # a loop, not any(...): no generator per call
            if s != n and type(s) is not str:
                break
        else:
            return arr
    raise ValueError(f"{name} must have shape {shape_text(shape)}, got {got}")


def float_array(name, value, shape, dtype, *, copy=False):
    """A C-contiguous, aligned array of ``dtype`` and exactly ``shape``.

    ``shape`` is as in ``shaped_array``. Integer and other float inputs are
    cast to ``dtype``; Fortran-ordered, strided, byte-swapped and unaligned
    arrays are copied. With ``copy`` the result never shares memory with
    ``value``.
    """
    if (not copy and type(value) is np.ndarray and value.shape == shape
            and kernel_array_problem(value, shape, dtype) is None):
        return value  # the common case, without the general checks' cost
    arr = shaped_array(name, value, shape)
    if copy:
        return _workspace.copy(arr, dtype)
    return kernel_form(arr, dtype)


def kernel_form(arr, dtype):
    """``arr`` (an ndarray already of the right shape) as a plain ndarray the
    kernels can read (``kernel_array_problem``): ``arr`` itself when it is
    one, else a copy."""
    if type(arr) is np.ndarray and kernel_array_problem(arr, arr.shape, dtype) is None:
        return arr
    arr = np.ascontiguousarray(arr, dtype=dtype)  # a subclass becomes an ndarray
    return arr if arr.flags.aligned else arr.copy()


def lengths_array(lengths, T, B):
    """``lengths`` as a C-contiguous intp array of shape (B,), values in [0, T]."""
    arr = _array_of("lengths", lengths, f"({B},)", "iu", "integers")
    if arr.shape != (B,):
        raise ValueError(f"lengths must have shape ({B},) (one per batch row), got {arr.shape}")
    if B and (arr.min() < 0 or arr.max() > T):
        bad = arr[(arr < 0) | (arr > T)]
        raise ValueError(f"lengths must lie in [0, T] = [0, {T}], got {bad.tolist()[:5]}")
    return np.array(arr, dtype=np.intp, order="C", copy=True)


def kernel_array_problem(a, shape, dtype):
    """What keeps ``a`` from being an array the kernels can read with no
    checks (an unmasked, C-contiguous, aligned ndarray of exactly ``shape``
    and ``dtype``), as text for an error message; None if nothing does."""
    if not isinstance(a, np.ndarray):
        return type(a).__name__
    flags = a.flags  # one flags object: each .flags makes a new one
    # Cheap tests first; only a subclass can be masked.
    if a.shape == shape and a.dtype == dtype and flags.c_contiguous and flags.aligned and (
            type(a) is np.ndarray or not np.ma.is_masked(a)):
        return None
    masked = type(a) is not np.ndarray and np.ma.is_masked(a)
    return (
        f"{a.dtype} array of shape {a.shape}"
        + ("" if flags.c_contiguous else ", not C-contiguous")
        + ("" if flags.aligned else ", not aligned")
        + (", with masked entries" if masked else "")
    )
