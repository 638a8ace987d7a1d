"""The kernels' own sigmoid and tanh: accuracy in ulp against extended
precision on every vector path, the special values, and which builds give
the same bits."""
import platform
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from pyx_gru import _recurrent

RNG = np.random.default_rng(0)
POINTS = np.concatenate([
    RNG.uniform(-1, 1, 100_000), RNG.uniform(-20, 20, 100_000), RNG.uniform(-800, 800, 10_000),
    np.logspace(-30, 4, 5_000), -np.logspace(-30, 4, 5_000),
    [0.0, -0.0, 0.625, -0.625, 0.6249999, 87.0, -87.0, -88.0, -100.0, 1e4, -1e4],
])
EXACT = {"sigmoid": lambda v: 1 / (1 + np.exp(-v)), "tanh": np.tanh}


@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_activation_within_3_ulp(simd_path, name, dtype):
    """Within 3 ulp of the exact value everywhere the result is a normal
    number (the sigmoid of a pre-activation below -87 in float32, or -708 in
    float64, is the smallest normal number or so instead of a denormal), on
    every vector path (the portable one on x86-64 multiplies and adds where
    the others fuse)."""
    x = POINTS.astype(dtype)
    got = x.copy()
    _recurrent._activation(name, got)
    with np.errstate(over="ignore"):
        exact = EXACT[name](x.astype(np.longdouble))
    normal = np.abs(exact) >= 2 * np.finfo(dtype).tiny
    ulp = np.spacing(np.abs(exact).astype(dtype)).astype(np.longdouble)
    err = np.abs(got.astype(np.longdouble) - exact) / ulp
    assert err[normal].max() <= 3, (x[normal][np.argmax(err[normal])], err[normal].max())
    assert np.all(np.abs(got - exact.astype(dtype))[~normal] <= 2 * np.finfo(dtype).tiny)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_activation_special_values(dtype):
    v = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0], dtype=dtype)
    s, t = v.copy(), v.copy()
    _recurrent._activation("sigmoid", s)
    _recurrent._activation("tanh", t)
    assert np.isnan(s[0]) and np.isnan(t[0])
    assert s[1] == 1 and 0 <= s[2] < 1e-37 and s[3] == s[4] == 0.5
    assert t[1] == 1 and t[2] == -1 and t[3] == 0 and t[4] == 0
    assert not np.signbit(t[3]) and np.signbit(t[4])


C_HARNESS = r"""
#include <stdio.h>
#include <stdlib.h>
#include "_activations.h"
/* argv: n, input file of n floats then n doubles; writes sigmoid and tanh
   of both to the output file, block functions over the whole array */
int main(int argc, char **argv) {
    long n = atol(argv[1]);
    float *f = malloc(n * sizeof(float)), *g = malloc(n * sizeof(float));
    double *d = malloc(n * sizeof(double)), *e = malloc(n * sizeof(double));
    FILE *in = fopen(argv[2], "rb"), *out = fopen(argv[3], "wb");
    if (!in || !out || fread(f, sizeof(float), n, in) != (size_t) n
        || fread(d, sizeof(double), n, in) != (size_t) n) return 2;
    for (long i = 0; i < n; i++) { g[i] = f[i]; e[i] = d[i]; }
    pyx_sigmoid_block_f(f, n); pyx_tanh_block_f(g, n);
    pyx_sigmoid_block_d(d, n); pyx_tanh_block_d(e, n);
    fwrite(f, sizeof(float), n, out); fwrite(g, sizeof(float), n, out);
    fwrite(d, sizeof(double), n, out); fwrite(e, sizeof(double), n, out);
    return fclose(out) != 0;
}
"""

# How _activations.h is compiled: as the extension is (a version per vector
# path, the widest this CPU runs taken), and as a single version for each
# instruction set: with FMA, fused; SSE2 alone multiplies and adds.
BUILDS = {
    "clones": [],
    "sse2": ["-DPYX_GRU_NO_CLONES", "-march=x86-64"],
    "avx2_fma": ["-DPYX_GRU_NO_CLONES", "-march=x86-64-v3"],
    "avx512": ["-DPYX_GRU_NO_CLONES", "-march=x86-64-v4"],
}
UNFUSED = {"sse2"}


@pytest.mark.skipif(shutil.which("gcc") is None or platform.machine() != "x86_64",
                    reason="needs gcc on x86-64")
def test_every_instruction_set_computes_the_same_bits(tmp_path, simd_path):
    """The activations' fused multiply-adds are explicit and nothing else is
    fused (-ffp-contract=off), so the AVX2 and AVX-512 versions do the same
    IEEE operations: bitwise the same results, and the same as the compiled
    kernels' own on those vector paths. The SSE2 version multiplies and adds
    instead, and gives the bits of the kernels' portable path (and not those
    of the others: the test sees the difference). (A version this CPU cannot
    run is skipped.)"""
    header = Path(_recurrent.__file__).with_name("_activations.h")
    if not header.exists():
        pytest.skip("_activations.h is not installed beside the extension")
    (tmp_path / "harness.c").write_text(C_HARNESS)
    n = POINTS.size
    (tmp_path / "in.bin").write_bytes(POINTS.astype(np.float32).tobytes()
                                      + POINTS.astype(np.float64).tobytes())
    results = {}
    for name, flags in BUILDS.items():
        exe = tmp_path / name
        subprocess.run(["gcc", "-O3", "-fno-trapping-math", "-ffp-contract=off", *flags,
                        f"-I{header.parent}", str(tmp_path / "harness.c"), "-o", str(exe), "-lm"],
                       check=True, capture_output=True)
        out = tmp_path / f"{name}.out"
        run = subprocess.run([str(exe), str(n), str(tmp_path / "in.bin"), str(out)],
                             capture_output=True)
        if run.returncode < 0:  # SIGILL: this CPU lacks the instruction set
            continue
        assert run.returncode == 0, (name, run.returncode)
        results[name] = out.read_bytes()
    assert {"clones", "sse2"} <= set(results)
    # the clones build takes the widest path this CPU runs: fused, if it has FMA
    fused_here = _recurrent.simd_paths()[0] != "portable"
    fused = {n for n in results if n not in UNFUSED and (n != "clones" or fused_here)}
    for name in fused:
        assert results[name] == results[min(fused)], f"{name} differs from {min(fused)}"
    if fused:
        assert results[min(fused)] != results["sse2"]
    ours = []
    for dtype in (np.float32, np.float64):
        for what in ("sigmoid", "tanh"):
            v = POINTS.astype(dtype)
            _recurrent._activation(what, v)
            ours.append(v.tobytes())
    want = "sse2" if simd_path == "portable" else min(fused)
    assert b"".join(ours) == results[want], f"the {simd_path} path differs from the {want} build"
