"""Threads: the kernels run with the GIL released, and many threads calling
forward and backward at once on shared cells (and backward on shared caches)
get bitwise the results of serial calls."""
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from helpers import CONFIGS, DTYPES, make_cell, parts, random_problem

THREADS = 16
REPEATS = 8
# (T, B, lengths, pins) of each problem; every cell gets all three.
PROBLEMS = [(120, 4, None, False), (60, 8, "random", False), (90, 3, "random", True)]


def flat(dx, dstate0, grads, y=None, state=None):
    """The results as a list of arrays."""
    out = [dx, *parts(dstate0), *(grads[k] for k in sorted(grads))]
    return out if y is None else [y, *parts(state)] + out


def make_jobs():
    """One shared cell per configuration and dtype, three problems each."""
    jobs = []
    for i, config in enumerate(CONFIGS):
        for dtype in DTYPES:
            cell = make_cell(config, 8, 32, dtype, seed=i)
            for j, (T, B, lengths, pin) in enumerate(PROBLEMS):
                x, state0, dy, dstate = random_problem(cell, T, B, seed=j)
                if lengths:
                    lengths = np.random.default_rng(j).integers(0, T + 1, B)
                gates = {cell.pinnable_gates[0]: 0.25} if pin and cell.pinnable_gates else None
                jobs.append((cell, x, state0, lengths, gates, dy, dstate))
    return jobs


def forward_backward(job):
    cell, x, state0, lengths, gates, dy, dstate = job
    y, state, cache = cell.forward(x, state0, lengths, gates=gates)
    return flat(*cell.backward(cache, dy, dstate), y, state)


def backward_only(job, cache):
    cell, _, _, _, _, dy, dstate = job
    return flat(*cell.backward(cache, dy, dstate))


def test_many_threads_on_shared_cells_give_the_serial_results():
    """16 threads, started together, share one cell per configuration and
    dtype, each with 3 problems (lengths and pinned gates in some): every
    problem runs forward+backward 8 times and backward 8 more times on one
    cache shared by all threads, in a shuffled order (with the 6 configurations
    of the first release, 288 forward and 576 backward calls), each compared
    bitwise with a serial run."""
    jobs = make_jobs()
    serial = [forward_backward(job) for job in jobs]
    caches = []
    for job in jobs:
        cell, x, state0, lengths, gates, _, _ = job
        caches.append(cell.forward(x, state0, lengths, gates=gates)[2])
    serial_bw = [backward_only(job, cache) for job, cache in zip(jobs, caches, strict=True)]

    tasks = [(kind, i) for i in range(len(jobs)) for kind in ("fb", "b") for _ in range(REPEATS)]
    order = np.random.default_rng(0).permutation(len(tasks))
    tasks = [tasks[k] for k in order]
    start = threading.Barrier(THREADS)
    counts = {"fb": 0, "b": 0}
    lock = threading.Lock()

    def worker(w):
        start.wait()
        out = []
        for kind, i in tasks[w::THREADS]:
            if kind == "fb":
                out.append((kind, i, forward_backward(jobs[i])))
            else:
                out.append((kind, i, backward_only(jobs[i], caches[i])))
            with lock:
                counts[kind] += 1
        return out

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        results = [r for chunk in pool.map(worker, range(THREADS)) for r in chunk]
    assert len(results) == len(tasks) == 2 * REPEATS * len(jobs) == 2 * REPEATS * 3 * 2 * len(CONFIGS)
    assert counts == {"fb": REPEATS * len(jobs), "b": REPEATS * len(jobs)}
    for kind, i, got in results:
        want = serial[i] if kind == "fb" else serial_bw[i]
        assert len(got) == len(want)
        for u, v in zip(got, want, strict=True):
            np.testing.assert_array_equal(u, v, err_msg=f"{kind} job {i}")
