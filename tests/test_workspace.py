"""The recycled memory of pyx_gru._workspace: a buffer comes back only when
nothing uses it, caches kept by the user are never overwritten, and the pool
stays bounded."""
import threading

import numpy as np

import pyx_gru as pg
from pyx_gru import _workspace

from helpers import make_cell, random_problem

BIG = (64, 1024)  # 512 KiB of float64: pooled


def owner(a):
    return a.base if a.base is not None else a


def test_small_arrays_are_plain_numpy():
    a = _workspace.empty((3, 4), np.float32)
    assert a.base is None and a.shape == (3, 4) and a.dtype == np.float32


def test_reused_only_when_free():
    _workspace.clear()  # free buffers of earlier tests could be handed out instead
    a = _workspace.empty(BIG, np.float64)
    buf = id(owner(a))           # not a reference: that would keep it busy
    y = a[1:]                    # a derived view keeps the buffer busy
    del a
    b = _workspace.empty(BIG, np.float64)
    assert id(owner(b)) != buf and not np.shares_memory(b, y)
    del y, b
    c = _workspace.empty(BIG, np.float64)
    assert id(owner(c)) == buf   # free again: handed out again
    assert c.ctypes.data % 64 == 0 and c.flags.c_contiguous and c.flags.writeable


def test_a_slightly_larger_request_fits_a_reused_buffer():
    """A freed buffer comes back for requests up to twice its size, and the
    64-byte-aligned start may lie up to 63 bytes into it: a request a few
    bytes larger than the first must still fit (it once failed to reshape:
    compare() on the chorales, batches of a few more steps)."""
    _workspace.clear()
    for extra in range(0, 129, 4):
        a = _workspace.empty((1 << 17,), np.uint8)
        del a
        b = _workspace.empty(((1 << 17) + extra,), np.uint8)
        assert b.shape == ((1 << 17) + extra,) and b.ctypes.data % 64 == 0
        b[...] = 1
        del b


def test_zeros_and_copy():
    z = _workspace.zeros(BIG, np.float32)
    assert not z.any()
    src = np.arange(np.prod(BIG)).reshape(BIG)[:, ::1]
    c = _workspace.copy(src, np.float32)
    np.testing.assert_array_equal(c, src.astype(np.float32))
    assert not np.shares_memory(c, src)


def test_kept_caches_are_never_overwritten():
    cell = make_cell("lstm_peephole", D=16, H=64)
    x1, s1, dy1, ds1 = random_problem(cell, 40, 8, seed=1)
    y1, _, cache1 = cell.forward(x1, s1)
    expected_y1 = y1.copy()
    expected = cell.backward(cell.forward(x1, s1)[2], dy1, ds1)
    for seed in range(2, 6):     # other calls, whose memory is recycled
        x, s, dy, ds = random_problem(cell, 40, 8, seed=seed)
        cell.backward(cell.forward(x, s)[2], dy, ds)
    np.testing.assert_array_equal(y1, expected_y1)
    got = cell.backward(cache1, dy1, ds1)
    np.testing.assert_array_equal(got[0], expected[0])
    for k in expected[2]:
        np.testing.assert_array_equal(got[2][k], expected[2][k])


def test_threads_get_distinct_buffers():
    # Four threads take buffers in rounds, while the buffers of the round
    # before are released: every live array of a round must have memory of
    # its own, still holding its thread's values after all have written.
    n, rounds = 4, 20
    barrier = threading.Barrier(n)
    live = [None] * n
    errors = []

    def work(i):
        for r in range(rounds):
            live[i] = None                     # release last round's buffer
            barrier.wait()
            a = _workspace.empty(BIG, np.float64)
            a.fill(n * r + i)
            live[i] = a
            barrier.wait()                     # everyone has written
            if not (a == n * r + i).all():
                errors.append((r, i))
            if i == 0 and any(np.shares_memory(live[j], live[k])
                              for j in range(n) for k in range(j + 1, n)):
                errors.append((r, "shared"))
            barrier.wait()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_pool_is_bounded(monkeypatch):
    monkeypatch.setattr(_workspace, "MAX_FREE_BYTES", 4 << 20)
    for n in range(1, 40):       # many sizes, all released at once
        _workspace.empty((n, 1 << 14), np.float64)
    # the cap, plus the last buffer (in use when the pool last trimmed)
    assert _workspace.free_bytes() <= (4 << 20) + 39 * (1 << 17) + 64
    assert len(_workspace._pool) <= _workspace.MAX_BUFFERS
    _workspace.clear()
    assert _workspace.free_bytes() == 0


def test_results_do_not_depend_on_recycling():
    cell = pg.GRU(8, 32, seed=0)
    x = np.random.default_rng(0).standard_normal((50, 16, 8))
    _workspace.clear()
    first = cell.forward(x)[0].copy()
    again = [cell.forward(x)[0].copy() for _ in range(3)]
    for a in again:
        np.testing.assert_array_equal(a, first)
