"""``python -m pyx_gru``: every cell's size, gradient check and speed.

For each of the six cell configurations it prints the parameter count, the
largest relative error of ``gradcheck`` (float64 finite differences), and the
median time of one forward + backward pass of the compiled cell and of the
NumPy reference on the same problem, with their ratio.

``python -m pyx_gru compare ...`` trains and compares cells on a task
instead (``pyx_gru.experiments``; ``python -m pyx_gru compare --help``).
"""
import argparse
import sys
import time

import numpy as np

from . import GRU, LSTM, RNN, SimpleGRU, gradcheck, reference

CONFIGS = [
    ("RNN", RNN, {}),
    ("SimpleGRU", SimpleGRU, {}),
    ("GRU reset=after", GRU, {"reset": "after"}),
    ("GRU reset=before", GRU, {"reset": "before"}),
    ("LSTM", LSTM, {}),
    ("LSTM peephole", LSTM, {"peephole": True}),
]


def _median_time(fn, repeats, min_time=0.2):
    """Median wall time of fn() over at least `repeats` calls (and min_time s)."""
    fn()  # warm up
    times = []
    start = time.perf_counter()
    while len(times) < repeats or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if len(times) >= 1000:
            break
    return float(np.median(times))


def _fwd_bwd(cell, x, dy):
    def run():
        _, _, cache = cell.forward(x)
        cell.backward(cache, dy)
    return run


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "compare":  # python -m pyx_gru compare: see pyx_gru.experiments
        from .experiments import main as compare_main
        return compare_main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="python -m pyx_gru",
        description="Parameter count, gradient check and forward+backward time "
                    "(compiled vs NumPy reference) of every cell.",
    )
    parser.add_argument("--T", type=int, default=1000, help="sequence length (default 1000)")
    parser.add_argument("--B", type=int, default=1, help="batch size (default 1)")
    parser.add_argument("--D", type=int, default=8, help="input size (default 8)")
    parser.add_argument("--H", type=int, default=8, help="hidden size (default 8)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls at least (default 5)")
    args = parser.parse_args(argv)
    for name in ("T", "B", "D", "H", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1")

    dtype = np.dtype(args.dtype)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.T, args.B, args.D)).astype(dtype)
    dy = rng.standard_normal((args.T, args.B, args.H)).astype(dtype)
    print(f"pyx_gru: forward+backward, T={args.T} B={args.B} D={args.D} H={args.H} {dtype.name}; "
          "gradcheck in float64 (T=4, B=3)")
    header = f"{'cell':<18} {'params':>8} {'gradcheck':>10} {'compiled ms':>12} {'NumPy ms':>10} {'speed-up':>9}"
    print(header)
    print("-" * len(header))
    worst = 0.0
    for label, cls, kw in CONFIGS:
        cell = cls(args.D, args.H, dtype=dtype, seed=0, **kw)
        err = max(gradcheck(cell, max_entries=200).values())
        worst = max(worst, err)
        fast = _median_time(_fwd_bwd(cell, x, dy), args.repeats)
        slow = _median_time(_fwd_bwd(reference.from_cell(cell), x, dy), args.repeats, min_time=0)
        print(f"{label:<18} {cell.n_params:>8d} {err:>10.1e} {fast * 1e3:>12.3f} "
              f"{slow * 1e3:>10.2f} {slow / fast:>8.1f}x")
    ok = worst < 1e-6
    print(f"largest gradcheck error {worst:.1e}: {'OK' if ok else 'FAILED'} (threshold 1e-6)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
