"""The kernels' C sources built as they would be on other CPUs: the per-step
product (_gemm.h), the activations and the LSTM's and GRU's forward and
backward row functions (_activations.h; float32 on each path's own vectors)
and the scan cells' forward row (_scan.h; the rest of that file compiled
only), built with GCC for x86-64 with every vector path, for x86-64 with
SSE2 only (no AVX code at all), and for aarch64 (a cross compiler, run
under qemu-user), then run on the same operands.

- Every build agrees with a float64 product to float32 rounding.
- The x86-64 AVX-512 and AVX2 paths and aarch64 (NEON's fused multiply-add)
  do the same fused multiply-adds in the same order: bitwise the same.
- The x86-64 portable path (multiply, then add) gives bitwise what an
  SSE2-only build gives.

A build whose compiler is missing is skipped with a message (`.ci/run`
installs Debian's gcc-aarch64-linux-gnu and qemu-user); a path this CPU
cannot run is left out."""
import platform
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from pyx_gru import _recurrent

HEADERS = Path(_recurrent.__file__).parent
FLAGS = ["-O3", "-fno-trapping-math", "-ffp-contract=off"]  # as setup.py
PATH_LEVELS = {"portable": 0, "avx2": 1, "avx512": 2}

HARNESS = r"""
#include <stdio.h>
#include <stdlib.h>
#include "_gemm.h"
#include "_activations.h"
#include "_scan.h" /* its forward row runs here; the rest must compile */
/* argv: level, input file, output file. The input holds three int32
   (m, n, k), then A (m x k), B (k x n), C (m x n) in float32, then the same
   three in float64. Writes, in float32 then in float64: C + A @ B with B
   packed; the same with B read in place (its rows n apart) when n is a
   multiple of the panel width, else the packed result again; sigmoid and
   tanh of A; then the row functions of _activations.h on each row of A,
   H = k / 4 units (ROWS below). */
/* Per row r of A, with H = k / 4: the LSTM's forward row (a <- A's row,
   hu, b and c_prev derived from it; writes a (4H), c, h), the GRU's (a <-
   the same, 3H; writes a, nn, h), then the backward rows on those
   activations (dh, dc, h_prev derived; gate 2 pinned in keep; writes da
   (4H or 3H), dh_prev and dc_prev or dxg), then the scan cells' forward
   row (_scan.h) of minGRU and of minLSTM (g <- A's row, 2H or 3H; the
   same b and h_prev; writes g, a_t and h), then the LSTM's forward row
   with peepholes (a <- A's row again, P <- b's first 3H; writes a, c, h):
   37 H values a row. */
#define ROWS(T, S)                                                            \
    for (long r = 0; r < m; r++) {                                            \
        long H = k / 4;                                                       \
        T *w = malloc((42 * H + 1) * sizeof(T)), *x = a + r * k;              \
        T *la = w, *hu = w + 4 * H, *bb = w + 8 * H, *cp = w + 12 * H;        \
        T *cc = w + 13 * H, *hh = w + 14 * H, *ga = w + 15 * H;               \
        T *nn = w + 18 * H, *gh = w + 19 * H, *dh = w + 20 * H;               \
        T *dc = w + 21 * H, *da = w + 22 * H, *d1 = w + 26 * H;               \
        T *d2 = w + 27 * H, *gda = w + 28 * H, keep[4] = {1, 1, 0, 1};        \
        T *sg = w + 31 * H, *sa = w + 34 * H, *sh = w + 35 * H;               \
        T *pa = w + 36 * H, *pc = w + 40 * H, *ph = w + 41 * H;               \
        for (long j = 0; j < 4 * H; j++) {                                    \
            la[j] = x[j];                                                     \
            hu[j] = (T) 0.5 * x[(j + 1) % (4 * H)];                           \
            bb[j] = (T) 0.1 * (T) (j % 7) - (T) 0.3;                          \
        }                                                                     \
        for (long j = 0; j < H; j++) {                                        \
            cp[j] = (T) 0.7 * x[j];  dh[j] = (T) 0.3 * x[H + j];              \
            dc[j] = (T) 0.2 * x[2 * H + j];                                   \
        }                                                                     \
        memcpy(ga, la, 3 * H * sizeof(T));                                    \
        memcpy(pa, la, 4 * H * sizeof(T));                                    \
        pyx_lstm_row_##S(H, H, la, hu, bb, NULL, cp, cc, hh);                 \
        pyx_gru_after_row_##S(H, H, ga, hu, bb, bb + 3 * H, cp, nn, gh);      \
        fwrite(la, sizeof(T), 4 * H, out); fwrite(cc, sizeof(T), H, out);     \
        fwrite(hh, sizeof(T), H, out); fwrite(ga, sizeof(T), 3 * H, out);     \
        fwrite(nn, sizeof(T), H, out); fwrite(gh, sizeof(T), H, out);         \
        pyx_lstm_back_row_##S(H, H, la, cp, cc, dh, dc, keep, da, d1, d2);    \
        fwrite(da, sizeof(T), 4 * H, out); fwrite(d1, sizeof(T), H, out);     \
        fwrite(d2, sizeof(T), H, out);                                        \
        pyx_gru_after_back_row_##S(H, H, ga, cp, nn, dh, keep, gda, d1, d2);  \
        fwrite(gda, sizeof(T), 3 * H, out); fwrite(d1, sizeof(T), H, out);    \
        fwrite(d2, sizeof(T), H, out);                                        \
        for (int lstm = 0; lstm < 2; lstm++) {                                \
            memcpy(sg, x, (2 + lstm) * H * sizeof(T));                        \
            pyx_scan_fwd_##S(lstm, 1, H, sg, bb, cp, sa, sh);                 \
            fwrite(sg, sizeof(T), (2 + lstm) * H, out);                       \
            fwrite(sa, sizeof(T), H, out); fwrite(sh, sizeof(T), H, out);     \
        }                                                                     \
        pyx_lstm_row_##S(H, H, pa, hu, bb, bb, cp, pc, ph);                   \
        fwrite(pa, sizeof(T), 4 * H, out); fwrite(pc, sizeof(T), H, out);     \
        fwrite(ph, sizeof(T), H, out);                                        \
        free(w);                                                              \
    }
#define PRODUCT(T, S, PACK, GEMM, PW)                                         \
    {                                                                         \
        T *a = malloc(m * k * sizeof(T)), *b = malloc(k * n * sizeof(T));     \
        T *c = malloc(m * n * sizeof(T)), *s = malloc(m * k * sizeof(T));     \
        T *t = malloc(m * k * sizeof(T)), *c2 = malloc(m * n * sizeof(T));   \
        T *bp = malloc((pyx_packed_size(k, n, PW) + 1) * sizeof(T));          \
        if (fread(a, sizeof(T), m * k, in) != (size_t)(m * k)                 \
            || fread(b, sizeof(T), k * n, in) != (size_t)(k * n)              \
            || fread(c, sizeof(T), m * n, in) != (size_t)(m * n)) return 3;   \
        PACK(k, n, b, n, 1, 0, (n + PW - 1) / PW, bp);                        \
        if (m * n) memcpy(c2, c, m * n * sizeof(T));                          \
        GEMM(m, n, k, a, k, bp, (size_t)k * PW, PW, 1, c, n, 1, 0, 0);        \
        if (n % PW == 0) GEMM(m, n, k, a, k, b, PW, n, 1, c2, n, 1, 0, 0);    \
        else if (m * n) memcpy(c2, c, m * n * sizeof(T));                     \
        fwrite(c, sizeof(T), m * n, out);                                     \
        fwrite(c2, sizeof(T), m * n, out);                                    \
        for (long i = 0; i < m * k; i++) s[i] = t[i] = a[i];                  \
        if (sizeof(T) == 4) {                                                 \
            pyx_sigmoid_block_f((float*)s, m * k); pyx_tanh_block_f((float*)t, m * k); \
        } else {                                                              \
            pyx_sigmoid_block_d((double*)s, m * k); pyx_tanh_block_d((double*)t, m * k); \
        }                                                                     \
        fwrite(s, sizeof(T), m * k, out); fwrite(t, sizeof(T), m * k, out);   \
        ROWS(T, S)                                                            \
    }
int main(int argc, char **argv) {
    int shape[3];
    FILE *in = fopen(argv[2], "rb"), *out = fopen(argv[3], "wb");
    if (!in || !out || fread(shape, sizeof(int), 3, in) != 3) return 2;
    if (pyx_simd_set(atoi(argv[1])) != atoi(argv[1])) return 4;
    long m = shape[0], n = shape[1], k = shape[2];
    PRODUCT(float, f, pyx_pack_f, pyx_gemm_packed_f, PYX_PANEL_F)
    PRODUCT(double, d, pyx_pack_d, pyx_gemm_packed_d, PYX_PANEL_D)
    return fclose(out) != 0;
}
"""

# (m, n, k): one and a few rows (1, 2 and 3 rows over several panels: the
# AVX2 path's 1 x 4, 2 x 2 and 3 x 2 blocks), full and partial blocks of
# panels and of rows, k over several k blocks; no rows (a team member may
# have none), and k = 0 (C stays C).
SHAPES = [(1, 96, 32), (2, 200, 70), (7, 1030, 300), (13, 45, 129), (3, 16, 1),
          (3, 90, 40), (0, 16, 5), (4, 40, 0), (5, 64, 600)]


def operands(m, n, k, seed):
    rng = np.random.default_rng(seed)
    return rng.uniform(-3, 3, (m, k)), rng.uniform(-1, 1, (k, n)), rng.uniform(-1, 1, (m, n))


def input_bytes(m, n, k, seed):
    a, b, c = operands(m, n, k, seed)
    data = np.array([m, n, k], dtype=np.int32).tobytes()
    for dtype in (np.float32, np.float64):
        data += b"".join(v.astype(dtype).tobytes() for v in (a, b, c))
    return data


def split_output(data, m, n, k):
    """(C, C read in place, sigmoid(A), tanh(A), the rows' outputs) of
    float32, then of float64."""
    out, pos = [], 0
    for dtype in (np.float32, np.float64):
        for count in (m * n, m * n, m * k, m * k, m * 37 * (k // 4)):
            size = count * np.dtype(dtype).itemsize
            out.append(np.frombuffer(data[pos:pos + size], dtype=dtype))
            pos += size
    assert pos == len(data)
    return out


def build(tmp_path, name, compiler, flags):
    if shutil.which(compiler) is None:
        pytest.skip(f"{compiler} not found: apt-get install -y gcc-aarch64-linux-gnu "
                    "libc6-dev-arm64-cross qemu-user (.ci/run does)")
    source = tmp_path / "harness.c"
    source.write_text(HARNESS)
    exe = tmp_path / name
    run = subprocess.run([compiler, *FLAGS, *flags, f"-I{HEADERS}", str(source), "-o", str(exe),
                          "-lm"], capture_output=True, text=True, timeout=300)
    if run.returncode and compiler != "gcc" and "No such file" in run.stderr:
        # a cross compiler without its C library's headers
        pytest.skip(f"{compiler} cannot build a program: {run.stderr.strip()[-200:]} "
                    "(apt-get install -y libc6-dev-arm64-cross)")
    assert run.returncode == 0, run.stderr[-2000:]
    return exe


def run_all(exe, tmp_path, level, prefix=()):
    """Outputs of every shape, or None when this CPU lacks the path."""
    results = []
    for i, (m, n, k) in enumerate(SHAPES):
        src, dst = tmp_path / f"in{i}.bin", tmp_path / f"out{i}.bin"
        src.write_bytes(input_bytes(m, n, k, seed=i))
        run = subprocess.run([*prefix, str(exe), str(level), str(src), str(dst)],
                             capture_output=True, timeout=300)
        if run.returncode == 4:
            return None
        assert run.returncode == 0, (exe.name, level, run.returncode, run.stderr[-500:])
        results.append(split_output(dst.read_bytes(), m, n, k))
    return results


def check_against_float64(results):
    for (m, n, k), outs, i in zip(SHAPES, results, range(len(SHAPES)), strict=True):
        a, b, c = operands(m, n, k, seed=i)
        for dtype, got, in_place in ((np.float32, outs[0], outs[1]),
                                     (np.float64, outs[5], outs[6])):
            # the product reading B in place takes the same multiply-adds
            # in the same order as the one reading it packed
            np.testing.assert_array_equal(in_place, got)
            a_, b_, c_ = (v.astype(dtype).astype(np.float64) for v in (a, b, c))
            want = (c_ + a_ @ b_).ravel()
            scale = (np.abs(c_) + np.abs(a_) @ np.abs(b_)).ravel()
            eps = np.finfo(dtype).eps
            assert np.all(np.abs(got - want) <= 2 * k * eps * scale + eps), (m, n, k, dtype)


x86_only = pytest.mark.skipif(platform.machine() != "x86_64" or shutil.which("gcc") is None,
                              reason="needs gcc on x86-64")


@x86_only
def test_x86_paths_and_an_sse2_only_build(tmp_path):
    exe = build(tmp_path, "x86", "gcc", [])
    sse2 = build(tmp_path, "sse2", "gcc", ["-march=x86-64", "-DPYX_GRU_NO_X86_PATHS"])
    results = {p: run_all(exe, tmp_path, level) for p, level in PATH_LEVELS.items()}
    results = {p: r for p, r in results.items() if r is not None}
    assert set(results) == set(_recurrent.simd_paths())
    for r in results.values():
        check_against_float64(r)
    only_sse2 = run_all(sse2, tmp_path, 0)
    for got, want in zip(only_sse2, results["portable"], strict=True):
        for u, v in zip(got, want, strict=True):
            np.testing.assert_array_equal(u, v)
    if {"avx512", "avx2"} <= set(results):
        for got, want in zip(results["avx2"], results["avx512"], strict=True):
            for u, v in zip(got, want, strict=True):
                np.testing.assert_array_equal(u, v)


@x86_only
def test_aarch64_build_gives_the_bits_of_the_fma_paths(tmp_path):
    if shutil.which("qemu-aarch64") is None:
        pytest.skip("qemu-aarch64 not found: apt-get install -y qemu-user (.ci/run does)")
    arm = build(tmp_path, "arm", "aarch64-linux-gnu-gcc", [])
    on_arm = run_all(arm, tmp_path, 0, prefix=("qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"))
    check_against_float64(on_arm)
    fma_paths = [p for p in ("avx2", "avx512") if p in _recurrent.simd_paths()]
    if not fma_paths:
        pytest.skip("this x86-64 CPU has no FMA path to compare with")
    x86 = run_all(build(tmp_path, "x86", "gcc", []), tmp_path, PATH_LEVELS[fma_paths[0]])
    for got, want in zip(on_arm, x86, strict=True):
        for u, v in zip(got, want, strict=True):
            np.testing.assert_array_equal(u, v)
