"""Build the compiled kernels of pyx_gru.

Metadata lives in pyproject.toml; this file only declares the Cython
extensions. ``PYX_GRU_BOUNDSCHECK=1`` builds them with bounds and
initialisation checks on (slower; for debugging memory errors).
``PYX_GRU_OPENMP=0`` builds the kernels without OpenMP: every pass then runs
on the calling thread (with the BLAS threading its own calls).
"""
import os

from Cython.Build import cythonize
from setuptools import Extension, setup

checks = os.environ.get("PYX_GRU_BOUNDSCHECK", "0") == "1"
openmp = os.environ.get("PYX_GRU_OPENMP", "1") != "0"

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
# keeps a*b + c two roundings in every clone of _activations.h (its fused
# multiply-adds are explicit fma calls), so AVX-512, AVX2 and aarch64
# machines compute bitwise the same. No -ffast-math: no
# reassociation, NaN and inf honoured.
COMPILE_ARGS = ["-O3", "-fno-trapping-math", "-ffp-contract=off"]
# The sequence driver splits a batch over a team of OpenMP threads.
OPENMP_ARGS = ["-fopenmp"] if openmp else []

# The C headers every extension may include (directly or through another):
# Cython sees only those a .pyx or .pxd names, so without these an edit of,
# say, _activations.h would leave _scan (which reaches it through _scan.h)
# built from the old one.
HEADERS = ["pyx_gru/_activations.h", "pyx_gru/_gemm.h", "pyx_gru/_scan.h", "pyx_gru/_simd.h"]

extensions = [
    Extension("pyx_gru._blas", ["pyx_gru/_blas.pyx"], include_dirs=["pyx_gru"],
              extra_compile_args=COMPILE_ARGS, depends=HEADERS),
    Extension("pyx_gru._recurrent", ["pyx_gru/_recurrent.pyx"], include_dirs=["pyx_gru"],
              extra_compile_args=COMPILE_ARGS + OPENMP_ARGS, extra_link_args=OPENMP_ARGS,
              depends=HEADERS),
    # minGRU and minLSTM: products over all steps plus a linear scan over time
    Extension("pyx_gru._scan", ["pyx_gru/_scan.pyx"], include_dirs=["pyx_gru"],
              extra_compile_args=COMPILE_ARGS + OPENMP_ARGS, extra_link_args=OPENMP_ARGS,
              depends=HEADERS),
    # the benchmark's --hide-avx512: CPUID without AVX-512, for every library
    Extension("pyx_gru._cpuid", ["pyx_gru/_cpuid.pyx"], extra_compile_args=COMPILE_ARGS),
]

setup(ext_modules=cythonize(extensions, compiler_directives=directives))
