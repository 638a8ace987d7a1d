"""The team of threads inside one call, and the kernels of the per-step
products: a call split over threads, by batch rows or by hidden units, with
the per-step products from the BLAS or from the packed kernel (_gemm.h) on
each vector path this CPU runs, gives the serial BLAS result (to rounding:
the BLAS's kernels for other shapes may round differently) and is bitwise
repeatable; the packed kernel's results do not depend on the split at all,
and its AVX-512 and AVX2 paths give bitwise the same. The team follows the BLAS's
thread limit and gives it back, and the kernels still run when the thread
hooks are not bound."""
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from pyx_gru import _blas, _recurrent, _scan, _threads

from helpers import (
    CONFIGS, DTYPES, SIMD_PATHS, assert_close, make_cell, parts, random_problem, skip_scan,
)

NO_THREADPOOLCTL = "threadpoolctl (an optional peer, in the 'test' extra) is not installed"
needs_hooks = pytest.mark.skipif(not _threads.BOUND, reason="no OpenBLAS thread hooks in this process")


# _set_split's thresholds: never split; split every batch of >= 2 rows by
# rows; split every call by units.
MODES = {"serial": (10**9, 1e300), "rows": (1, 0.0, 2**62, 0.0),
         "units": (1, 0.0, 0, 0.0, 2**62)}


@pytest.fixture
def split_mode():
    """set(mode, kernel="blas"): mode one of MODES, kernel "blas" or a vector
    path of the packed kernel (one of SIMD_PATHS; the scan cells' kernels
    take the same path, the widest with "blas"); restored after the test."""
    saved = []

    def set_(mode, kernel="blas"):
        path = SIMD_PATHS[0] if kernel == "blas" else kernel
        previous = (_recurrent._set_split(*MODES[mode]),
                    _recurrent._set_packed(kernel != "blas", 1, 1),
                    _recurrent._set_simd(path), _scan._set_simd(path))
        if not saved:
            saved.append(previous)
    yield set_
    if saved:
        _recurrent._set_split(*saved[0][0])
        _recurrent._set_packed(*saved[0][1])
        _recurrent._set_simd(saved[0][2])
        _scan._set_simd(saved[0][3])


# The BLAS, and the packed kernel on every vector path this CPU runs.
KERNELS = ["blas", *SIMD_PATHS]


def run(cell, x, state0, dy, dstate, lengths, gates=None):
    y, state, cache = cell.forward(x, state0, lengths, gates=gates)
    dx, dstate0, dparams = cell.backward(cache, dy, dstate)
    return [y, *parts(state), dx, *parts(dstate0), *dparams.values()]


@needs_hooks
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("T,B", [(9, 5), (37, 2), (4, 16)])
@pytest.mark.parametrize("masked", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("mode", ["rows", "units"])
@pytest.mark.parametrize("kernel", KERNELS)
def test_split_matches_serial(split_mode, kernel, mode, name, dtype, T, B, masked):
    skip_scan(name, "this is _recurrent's team, which splits by rows or units; the scan's "
                    "split (by rows or blocks of time) is tested in test_mincells.py")
    cell = make_cell(name, D=5, H=19, dtype=dtype)
    x, state0, dy, dstate = random_problem(cell, T, B, seed=T * B)
    lengths = np.random.default_rng(B).integers(0, T + 1, B) if masked else None
    gates = {cell.pinnable_gates[0]: 0.75} if name != "rnn" and B == 5 else None
    threads_before = _blas.threads()
    split_mode("serial")
    serial = run(cell, x, state0, dy, dstate, lengths, gates)
    split_mode(mode, kernel)
    # H = 19: with units, one member takes a block of 16 and the other 3
    assert _recurrent.team_size(T, B, 19, cell.params["U"].shape[1]) == (2, mode == "units")
    split = run(cell, x, state0, dy, dstate, lengths, gates)
    again = run(cell, x, state0, dy, dstate, lengths, gates)
    assert _blas.threads() == threads_before  # the BLAS got its threads back
    for a, b, c in zip(serial, split, again, strict=True):
        assert_close(b, a, dtype)
        np.testing.assert_array_equal(c, b)
    if kernel != "blas":
        # one chain of multiply-adds per element: the split does not show
        # in the recurrence nor in dx (only in the BLAS's weight-gradient
        # products, the last len(dparams) results)
        split_mode("serial", kernel)
        alone = run(cell, x, state0, dy, dstate, lengths, gates)
        n_params = len(cell.params)
        for a, b in zip(alone[:-n_params], split[:-n_params], strict=True):
            np.testing.assert_array_equal(b, a)


@needs_hooks
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("T", [1, 33])
@pytest.mark.parametrize("kernel", KERNELS)
def test_a_member_with_no_rows(split_mode, kernel, name, dtype, T):
    """Split by units, the team also shares out the rows of each chunk of
    the backward's dx product: at B = 1 a chunk of one step (T = 1, or the
    last chunk of T = 33) leaves one member no rows, which must do nothing.
    The packed kernel's results, but for the BLAS's weight gradients, are
    bitwise those of one thread."""
    skip_scan(name, "this is _recurrent's team, which splits by rows or units; the scan's "
                    "split (by rows or blocks of time) is tested in test_mincells.py")
    cell = make_cell(name, D=5, H=40, dtype=dtype)
    x, state0, dy, dstate = random_problem(cell, T, 1, seed=T)
    split_mode("serial", kernel)
    serial = run(cell, x, state0, dy, dstate, None)
    split_mode("units", kernel)
    assert _recurrent.team_size(T, 1, 40, cell.params["U"].shape[1]) == (2, True)
    split = run(cell, x, state0, dy, dstate, None)
    exact = 0 if kernel == "blas" else len(serial) - len(cell.params)
    for i, (a, b) in enumerate(zip(serial, split, strict=True)):
        if i < exact:
            np.testing.assert_array_equal(b, a)
        else:
            assert_close(b, a, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("name", CONFIGS)
# B = 5 and 16: the BLAS path projects the input ceil(256 / B) steps at a
# time without a cache (52 and 16): T = 120 and 37 cross chunk boundaries
@pytest.mark.parametrize("T,B", [(120, 5), (37, 16), (3, 2)])
@pytest.mark.parametrize("masked", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("mode", ["serial", "rows", "units"])
@pytest.mark.parametrize("kernel", KERNELS)
def test_inference_forward_is_the_forward(split_mode, kernel, mode, name, dtype, T, B, masked):
    """forward(..., cache=False) keeps gates, c and extra in rings of a few
    steps (and the BLAS path projects the input a chunk at a time), yet
    gives bitwise the outputs of the forward that keeps everything."""
    cell = make_cell(name, D=5, H=19, dtype=dtype)
    x, state0, _, _ = random_problem(cell, T, B, seed=T + B)
    lengths = np.random.default_rng(B).integers(0, T + 1, B) if masked else None
    gates = {cell.pinnable_gates[-1]: 0.25} if name != "rnn" and B == 16 else None
    split_mode(mode, kernel)
    y, state, cache = cell.forward(x, state0, lengths, gates=gates)
    y_inf, state_inf, none = cell.forward(x, state0, lengths, gates=gates, cache=False)
    assert none is None and cache is not None
    for a, b in zip([y, *parts(state)], [y_inf, *parts(state_inf)], strict=True):
        np.testing.assert_array_equal(b, a)


def _setting(setter, args, spread=False):
    """The body of a fixture that switches one of _recurrent's settings:
    yields set_(on), which calls setter(*args(on)), then restores the value
    the first call replaced (spread: the setter returns its arguments as a
    tuple)."""
    saved = []

    def set_(on):
        previous = setter(*args(on))
        if not saved:
            saved.append(previous)
    yield set_
    if saved:
        setter(*saved[0]) if spread else setter(saved[0])


@pytest.fixture
def prefetch():
    """set(on): the packed kernel prefetches at every size (on) or never;
    restored after the test."""
    yield from _setting(_recurrent._set_prefetch, lambda on: (0 if on else 2**62,))


@pytest.mark.parametrize("path", SIMD_PATHS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("name", ["rnn", "gru_before", "lstm_peephole"])
@pytest.mark.parametrize("H,B", [(64, 13), (70, 7), (80, 1), (136, 6), (200, 25), (33, 2),
                                 (256, 1)])
@pytest.mark.parametrize("mode", ["serial", "units"])
def test_packed_kernel_against_blas(split_mode, prefetch, mode, path, name, dtype, H, B):
    # Hidden sizes that fill the kernel's blocks of panels (up to 8 of 64
    # bytes) and leave partial panels, batches of whole and partial row
    # blocks (up to 6 rows, 3 on the portable path), k over several k
    # blocks (U.T's k is G * H). The prefetching kernel (by default only for
    # operands of 512 KiB and more) gives bitwise the plain kernel's
    # results: it reads the same panels, and asks for the next.
    cell = make_cell(name, D=7, H=H, dtype=dtype, scale=0.2)
    x, state0, dy, dstate = random_problem(cell, 6, B, seed=H + B)
    split_mode("serial")
    blas = run(cell, x, state0, dy, dstate, None)
    split_mode(mode, path)
    prefetch(False)
    packed = run(cell, x, state0, dy, dstate, None)
    for a, b in zip(blas, packed, strict=True):
        assert_close(b, a, dtype)
    prefetch(True)
    fetched = run(cell, x, state0, dy, dstate, None)
    for a, b in zip(packed, fetched, strict=True):
        np.testing.assert_array_equal(b, a)


@pytest.mark.parametrize("path", SIMD_PATHS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("mode", ["serial", "rows", "units"])
def test_input_projection_in_chunks_of_steps(split_mode, mode, path, name, dtype):
    """The packed path projects the input several steps at a time (the rows
    of several steps in one product, inside the time loop): any number of
    steps per projection, ragged last chunk included, gives bitwise the
    same (each element is one chain of multiply-adds), with or without a
    cache, and the BLAS path's result to rounding."""
    cell = make_cell(name, D=7, H=24, dtype=dtype, scale=0.3)
    T, B = 23, 4
    x, state0, dy, dstate = random_problem(cell, T, B, seed=3)
    lengths = np.array([23, 5, 0, 17])
    split_mode("serial")
    blas = run(cell, x, state0, dy, dstate, lengths)
    split_mode(mode, path)
    outs = []
    previous = _recurrent._set_projection_rows(B)
    try:
        for rows in (1, 5 * B, 7 * B, 10**6):   # 1, 5, 7 and all 23 steps at a time
            _recurrent._set_projection_rows(rows)
            outs.append(run(cell, x, state0, dy, dstate, lengths))
            y, state, _ = cell.forward(x, state0, lengths, cache=False)
            np.testing.assert_array_equal(y, outs[-1][0])
    finally:
        _recurrent._set_projection_rows(previous)
    for out in outs[1:]:
        for a, b in zip(outs[0], out, strict=True):
            np.testing.assert_array_equal(b, a)
    for a, b in zip(blas, outs[0], strict=True):
        assert_close(b, a, dtype)


@pytest.fixture
def in_place():
    """set(on): the forward reads U and W in place at every size (on) or
    always packs them; restored after the test."""
    yield from _setting(_recurrent._set_in_place,
                        lambda on: (2**62, 2**62) if on else (-1, -1), spread=True)


@pytest.mark.parametrize("path", SIMD_PATHS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("T,B,H", [(1, 1, 64), (9, 3, 32), (5, 8, 48), (4, 2, 24)])
@pytest.mark.parametrize("mode", ["serial", "rows", "units"])
def test_reading_in_place_gives_the_packed_bits(split_mode, in_place, mode, path, name,
                                                dtype, T, B, H):
    """With few rows the forward's products read U and W where they lie
    instead of packing them first: the same multiply-adds in the same
    order, so bitwise the same outputs and cache, with lengths and pinned
    gates, on every vector path and split. H = 24 in float32 is not a whole
    number of panels (16 floats): that size always packs."""
    cell = make_cell(name, D=5, H=H, dtype=dtype, scale=0.3)
    x, state0, dy, dstate = random_problem(cell, T, B, seed=T + B)
    lengths = np.random.default_rng(H).integers(0, T + 1, B)
    pins = {cell.pinnable_gates[0]: 0.4} if cell.pinnable_gates else None
    split_mode(mode, path)
    outs = {}
    for on in (False, True):
        in_place(on)
        y, state, cache = cell.forward(x, state0, lengths, gates=pins)
        y_inf, state_inf, _ = cell.forward(x, state0, lengths, gates=pins, cache=False)
        outs[on] = [y, *parts(state), cache.gates, y_inf, *parts(state_inf),
                    *cell.backward(cache, dy, dstate)[2].values()]
    for a, b in zip(outs[False], outs[True], strict=True):
        np.testing.assert_array_equal(b, a)


@pytest.fixture
def fused_rows():
    """set(on): every kind's forward and backward steps take their row
    functions (on) or the general step's passes; restored after the test."""
    yield from _setting(_recurrent._set_fused_rows, lambda on: (on,))


@pytest.mark.parametrize("path", SIMD_PATHS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("name", ["lstm", "gru_after", "rnn", "simple_gru", "gru_before",
                                  "mgu_after", "mgu_before", "cifg", "lstm_peephole",
                                  "cifg_peephole"])
@pytest.mark.parametrize("T,B,H", [(1, 1, 7), (9, 3, 32), (5, 8, 48), (4, 2, 24), (3, 16, 64)])
@pytest.mark.parametrize("mode", ["serial", "rows", "units"])
def test_fused_rows_give_the_general_steps_bits(split_mode, fused_rows, mode, path, name,
                                                 dtype, T, B, H):
    """Every kind's forward and backward steps (forward, where no gate is
    pinned; backward, the LSTM's and the CIFG's without peepholes), row by
    row in one function per vector path (_activations.h), do the operations
    of the general step's passes (_pointwise.pxi) in the same order:
    bitwise the same outputs, cache and gradients (dx, dstate0 and the
    parameters'), with lengths, on every vector path and split (the units
    split hands a row function part of a gate block). Two of the sizes pin a
    gate (the first, the last), whose keep of 0 the backward rows multiply
    by."""
    cell = make_cell(name, D=5, H=H, dtype=dtype, scale=0.8)
    x, state0, dy, dstate = random_problem(cell, T, B, seed=T + B)
    x = 3 * x  # pre-activations on both sides of the activations' branches
    lengths = np.random.default_rng(H).integers(0, T + 1, B)
    pin = {(5, 8): 0, (3, 16): -1}.get((T, B))  # which pinnable gate, if any
    pins = {cell.pinnable_gates[pin]: 0.4} if pin is not None and cell.pinnable_gates else None
    split_mode(mode, path)
    outs = {}
    for on in (False, True):
        fused_rows(on)
        y, state, cache = cell.forward(x, state0, lengths, gates=pins)
        y_inf, state_inf, _ = cell.forward(x, state0, lengths, gates=pins, cache=False)
        kept = [cache.gates] + [a for a in (cache.cs, cache.extra) if a is not None]
        dx, dstate0, dparams = cell.backward(cache, dy, dstate)
        outs[on] = [y, *parts(state), *kept, y_inf, *parts(state_inf), dx, *parts(dstate0),
                    *dparams.values()]
    for a, b in zip(outs[False], outs[True], strict=True):
        np.testing.assert_array_equal(b, a)


@needs_hooks
@pytest.mark.parametrize("mode", ["rows", "units"])
def test_team_follows_blas_limit(split_mode, mode):
    threadpoolctl = pytest.importorskip("threadpoolctl", reason=NO_THREADPOOLCTL)
    split_mode(mode)
    n = _blas.threads()
    assert n >= 1
    assert _recurrent.team_size(100, 64, 512, 1536) == (n, n > 1 and mode == "units")
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        assert _blas.threads() == 1
        assert _recurrent.team_size(100, 64, 512, 1536) == (1, False)


def test_every_size_is_packed(split_mode):
    # the per-step products of every batch and hidden size take the packed
    # kernel (a BLAS's one-row products are slow on some CPUs); operands are
    # packed in whole 64-byte panels on every vector path: forward each gate
    # block of U (H rows) and of W (D rows), backward U.T and W.T (GH rows)
    assert _recurrent.packed_size(1, 32, 32, 96, False, 4) == (32 + 32) * 3 * 32
    assert _recurrent.packed_size(1, 1, 1, 1, False, 8) == (1 + 1) * 8
    assert _recurrent.packed_size(7, 64, 128, 384, False, 4) == (128 + 64) * 384
    assert _recurrent.packed_size(8, 64, 128, 384, False, 4) == (128 + 64) * 384
    assert _recurrent.packed_size(8, 32, 64, 192, False, 4) == (64 + 32) * 192
    assert _recurrent.packed_size(8, 5, 130, 390, False, 8) == 3 * 17 * 8 * (130 + 5)
    assert _recurrent.packed_size(8, 5, 130, 390, True, 8) == (17 + 1) * 8 * 390
    for path in SIMD_PATHS:
        split_mode("serial", path)
        assert _recurrent.packed_size(1, 32, 32, 96, False, 4) == (32 + 32) * 3 * 32
    split_mode("serial", "blas")
    assert _recurrent.packed_size(1, 32, 32, 96, False, 4) == 0


def test_default_thresholds():
    # tiny work stays on one thread; a batch splits by rows; a batch too
    # small for that, or under 32 rows with a U of 2**20 elements or more
    # (larger than a core's cache), by units if each step is worth a barrier
    n = _blas.threads()
    assert _recurrent.team_size(4, 3, 8, 24) == (1, False)
    assert _recurrent.team_size(100, 1, 64, 192) == (1, False)
    assert _recurrent.team_size(100, 64, 64, 192) == (n, False)
    assert _recurrent.team_size(100, 32, 128, 512) == (n, False)
    assert _recurrent.team_size(100, 64, 512, 1536) == (n, False)
    assert _recurrent.team_size(100, 64, 512, 2048) == (n, False)
    assert _recurrent.team_size(100, 32, 512, 2048) == (n, False)
    assert _recurrent.team_size(100, 31, 512, 2048) == (n, n > 1)
    assert _recurrent.team_size(100, 16, 1024, 3072) == (n, n > 1)
    assert _recurrent.team_size(100, 1, 256, 768) == (n, n > 1)
    assert _recurrent.team_size(100, 1, 512, 2048) == (n, n > 1)


@needs_hooks
@pytest.mark.parametrize("mode", ["rows", "units"])
@pytest.mark.parametrize("kernel", KERNELS)
def test_split_calls_from_many_threads(split_mode, kernel, mode):
    # Four callers at once, each call a team of its own: bitwise the serial results.
    split_mode(mode, kernel)
    cells = {n: make_cell(n, D=4, H=24) for n in ("gru_after", "lstm_peephole")}
    problems = {n: random_problem(c, 30, 8, seed=3) for n, c in cells.items()}
    expected = {n: run(c, *problems[n], None) for n, c in cells.items()}
    errors = []

    def work(n):
        for _ in range(10):
            got = run(cells[n], *problems[n], None)
            if not all(np.array_equal(a, b) for a, b in zip(got, expected[n], strict=True)):
                errors.append(n)

    threads = [threading.Thread(target=work, args=(n,)) for n in list(cells) * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_unbound_hooks_give_the_same_numbers(tmp_path):
    # PYX_GRU_SPLIT=0 leaves the hooks unbound: one thread, same results.
    script = (
        "import numpy as np, sys\n"
        "sys.path.insert(0, %r)\n"
        "from helpers import make_cell, random_problem\n"
        "from pyx_gru import _threads, _blas, _recurrent\n"
        "assert not _threads.BOUND and _blas.threads() == 1\n"
        "assert _recurrent.team_size(100, 64, 512, 2048) == (1, False)\n"
        "cell = make_cell('gru_before', D=5, H=19)\n"
        "x, s0, dy, ds = random_problem(cell, 9, 6, seed=1)\n"
        "y, s, c = cell.forward(x, s0)\n"
        "dx, d0, dp = cell.backward(c, dy, ds)\n"
        "np.savez(%r, y=y, dx=dx, **dp)\n" % (os.path.dirname(__file__), str(tmp_path / "out.npz"))
    )
    env = dict(os.environ, PYX_GRU_SPLIT="0")
    subprocess.run([sys.executable, "-c", script], check=True, env=env, timeout=120)
    cell = make_cell("gru_before", D=5, H=19)
    x, s0, dy, ds = random_problem(cell, 9, 6, seed=1)
    y, _, c = cell.forward(x, s0)
    dx, _, dp = cell.backward(c, dy, ds)
    with np.load(tmp_path / "out.npz", allow_pickle=False) as f:
        assert_close(f["y"], y, np.float64)
        assert_close(f["dx"], dx, np.float64)
        for k, v in dp.items():
            assert_close(f[k], v, np.float64)


@needs_hooks
def test_results_do_not_depend_on_what_runs_beside():
    # A team call (B = 16) and single-thread calls (B = 1, B = 3) running at the
    # same time give bitwise what each gives alone, and the BLAS gets its
    # thread count back when the last call returns.
    threadpoolctl = pytest.importorskip("threadpoolctl", reason=NO_THREADPOOLCTL)
    threads_before = _blas.threads()
    problems = []
    for i, (name, B) in enumerate([("gru_after", 16), ("lstm", 1), ("rnn", 3), ("gru_before", 16)]):
        cell = make_cell(name, D=24, H=40, seed=i)
        problems.append((cell, random_problem(cell, 60, B, seed=i)))
    alone = [run(cell, *p, None) for cell, p in problems]
    errors = []

    def work(i):
        cell, p = problems[i]
        for _ in range(8):
            if not all(np.array_equal(a, b) for a, b in zip(run(cell, *p, None), alone[i], strict=True)):
                errors.append(i)

    threads = [threading.Thread(target=work, args=(i % 4,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert _blas.threads() == threads_before
    with threadpoolctl.threadpool_limits(1, user_api="blas") as limits:
        run(*problems[0][:1], *problems[0][1], None)
        assert limits.get_original_num_threads()["blas"] == threads_before
        assert _blas.threads() == 1
    assert _blas.threads() == threads_before


FMA_PATHS = [p for p in SIMD_PATHS if p in ("avx512", "avx2")]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("T,B,H", [(7, 1, 32), (5, 3, 70), (4, 9, 136), (3, 2, 256)])
def test_vector_paths_agree(split_mode, name, dtype, T, B, H):
    """Every vector path computes the same function. The AVX-512 and AVX2
    paths do the same fused multiply-adds in the same order, only in vectors
    of another width: bitwise the same results. The portable path on x86-64
    multiplies and adds (no FMA there): the same to rounding."""
    cell = make_cell(name, D=6, H=H, dtype=dtype, scale=0.3)
    x, state0, dy, dstate = random_problem(cell, T, B, seed=H + B)
    lengths = np.random.default_rng(B).integers(0, T + 1, B)
    if len(SIMD_PATHS) < 2:
        pytest.skip(f"this CPU runs one vector path ({SIMD_PATHS[0]})")
    results = {}
    for path in SIMD_PATHS:
        split_mode("serial", path)
        results[path] = run(cell, x, state0, dy, dstate, lengths)
    first = results[SIMD_PATHS[0]]
    for path in SIMD_PATHS[1:]:
        for a, b in zip(first, results[path], strict=True):
            if path in FMA_PATHS and SIMD_PATHS[0] in FMA_PATHS:
                np.testing.assert_array_equal(b, a, err_msg=path)
            else:
                assert_close(b, a, dtype, path)


def test_the_switch_takes_a_narrower_path():
    """PYX_GRU_SIMD names the widest path the kernels may take: a narrower
    one this CPU runs is taken, a wider one gives this CPU's widest, and a
    name that is no path stops the import with a clear message."""
    script = "from pyx_gru import _recurrent; print(_recurrent.simd_path())"

    def path_with(value):
        env = dict(os.environ, PYX_GRU_SIMD=value)
        return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                              text=True, timeout=120)

    for path in SIMD_PATHS:
        assert path_with(path).stdout.split() == [path]
        assert path_with(path.upper() + " ").stdout.split() == [path]
    assert path_with("avx512").stdout.split() == [SIMD_PATHS[0]]
    assert path_with("").stdout.split() == [SIMD_PATHS[0]]
    bad = path_with("sse9")
    assert bad.returncode != 0
    assert "PYX_GRU_SIMD must be one of avx512, avx2, portable (or unset), got 'sse9'" in bad.stderr
    with pytest.raises(ValueError, match="is not one this CPU runs"):
        _recurrent._set_simd("neon")


@needs_hooks
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("training", [True, False], ids=["training", "evaluation"])
@pytest.mark.parametrize("mode", ["rows", "units"])
@pytest.mark.parametrize("kernel", KERNELS)
def test_split_with_dropout_and_zoneout(split_mode, kernel, mode, training, name, dtype):
    """Recurrent dropout and zoneout split over the team as everything else:
    the serial result to rounding, bitwise repeatable, and with the packed
    kernel bitwise the serial result but for the weight gradients (the
    masks depend on the row and unit, never on the member)."""
    skip_scan(name, "no recurrent product: minGRU and minLSTM refuse the rates")
    cls, form = CONFIGS[name]
    cell = cls(5, 19, dtype=dtype, seed=0, recurrent_dropout=0.3, zoneout=0.25, **form)
    cell.params = make_cell(name, D=5, H=19, dtype=dtype).params
    x, state0, dy, dstate = random_problem(cell, 37, 2, seed=1)
    lengths = np.array([37, 20])

    def go():
        y, state, cache = cell.forward(x, state0, lengths, training=training, seed=3)
        dx, dstate0, dparams = cell.backward(cache, dy, dstate)
        return [y, *parts(state), dx, *parts(dstate0), *dparams.values()]

    split_mode("serial", kernel)
    serial = go()
    split_mode(mode, kernel)
    assert _recurrent.team_size(37, 2, 19, cell.params["U"].shape[1]) == (2, mode == "units")
    split, again = go(), go()
    exact = 0 if kernel == "blas" else len(serial) - len(cell.params)
    for i, (a, b, c) in enumerate(zip(serial, split, again, strict=True)):
        np.testing.assert_array_equal(c, b)
        if i < exact:
            np.testing.assert_array_equal(b, a)
        else:
            assert_close(b, a, dtype)
