"""Build the compiled kernels of pyx_gru.

Metadata lives in pyproject.toml; this file only declares the Cython
extensions. ``PYX_GRU_BOUNDSCHECK=1`` builds them with bounds and
initialisation checks on (slower; for debugging memory errors).
"""
import os

from Cython.Build import cythonize
from setuptools import Extension, setup

checks = os.environ.get("PYX_GRU_BOUNDSCHECK", "0") == "1"

directives = {
    "language_level": 3,
    "boundscheck": checks,
    "wraparound": False,
    "initializedcheck": checks,
    "cdivision": True,
    "embedsignature": True,
}

# -fno-trapping-math lets GCC turn the activations' selects into vector blends
# (it gives up FP exception flags, which nothing reads); -ffp-contract=off
# keeps a*b + c two roundings in every clone of _activations.h, so AVX-512,
# AVX2 and SSE2 machines compute bitwise the same. No -ffast-math: no
# reassociation, NaN and inf honoured.
COMPILE_ARGS = ["-O3", "-fno-trapping-math", "-ffp-contract=off"]

extensions = [
    Extension(name, [name.replace(".", "/") + ".pyx"], include_dirs=["pyx_gru"],
              extra_compile_args=COMPILE_ARGS)
    for name in ("pyx_gru._blas", "pyx_gru._recurrent")
]

setup(ext_modules=cythonize(extensions, compiler_directives=directives))
