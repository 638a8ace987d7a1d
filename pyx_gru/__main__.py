"""``python -m pyx_gru``: the command line.

Subcommands:

``docs``
    Build the documentation site (Sphinx, offline, tutorials executed) and
    print the path of its ``index.html``. Needs a clone and the ``docs`` extra.
``check``
    For each cell configuration (``pyx_gru._kinds``), the parameter count,
    the largest relative error of ``gradcheck`` (float64 finite differences), and the
    median time of one forward + backward pass of the compiled cell and of the
    NumPy reference on the same problem, with their ratio.
``compare``
    Train and compare cells on a task at equal parameter counts, over seeds
    and learning rates; print the table, write CSV, JSON and plots
    (``pyx_gru.experiments``; needs the ``experiments`` extra).
"""
import argparse
import sys
import time

import numpy as np

from . import _kinds, _site, gradcheck, reference

# (label, class, constructor keywords) of every cell kind (pyx_gru._kinds)
CONFIGS = [(k.label, k.cell_class, k.keywords) for k in _kinds.KINDS.values()]


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


def add_check_arguments(parser):
    """The options of ``check``: problem sizes, dtype and repeats."""
    parser.add_argument("--T", type=int, default=1000, help="sequence length (default 1000)")
    parser.add_argument("--B", type=int, default=1, help="batch size (default 1)")
    parser.add_argument("--D", type=int, default=8, help="input size (default 8)")
    parser.add_argument("--H", type=int, default=8, help="hidden size (default 8)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls at least (default 5)")


def check(args, parser):
    """``python -m pyx_gru check``: print the table; 0 if every gradient checks."""
    for name in ("T", "B", "D", "H", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1")

    dtype = np.dtype(args.dtype)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.T, args.B, args.D)).astype(dtype)
    dy = rng.standard_normal((args.T, args.B, args.H)).astype(dtype)
    print(f"pyx_gru: forward+backward, T={args.T} B={args.B} D={args.D} H={args.H} {dtype.name}; "
          "gradcheck in float64 (T=4, B=3)")
    width = max(len(label) for label, _, _ in CONFIGS)
    header = (f"{'cell':<{width}} {'params':>8} {'gradcheck':>10} {'compiled ms':>12} "
              f"{'NumPy ms':>10} {'speed-up':>9}")
    print(header)
    print("-" * len(header))
    worst = 0.0
    for label, cls, kw in CONFIGS:
        cell = cls(args.D, args.H, dtype=dtype, seed=0, **kw)
        err = max(gradcheck(cell, max_entries=200).values())
        worst = max(worst, err)
        fast = _median_time(_fwd_bwd(cell, x, dy), args.repeats)
        slow = _median_time(_fwd_bwd(reference.from_cell(cell), x, dy), args.repeats, min_time=0)
        print(f"{label:<{width}} {cell.n_params:>8d} {err:>10.1e} {fast * 1e3:>12.3f} "
              f"{slow * 1e3:>10.2f} {slow / fast:>8.1f}x")
    ok = worst < 1e-6
    print(f"largest gradcheck error {worst:.1e}: {'OK' if ok else 'FAILED'} (threshold 1e-6)")
    return 0 if ok else 1


def docs(args, parser):
    """``python -m pyx_gru docs``: build the site, print its index.html."""
    try:
        index = _site.build(args.out, gallery=not args.no_gallery, quiet=args.quiet)
    except (FileNotFoundError, ImportError, RuntimeError) as err:
        print(f"python -m pyx_gru docs: {err}", file=sys.stderr)
        return 1
    print(index)
    return 0


def compare(args, parser):
    """``python -m pyx_gru compare``: see ``pyx_gru.experiments.run_compare``."""
    from .experiments import check_compare_arguments, run_compare

    try:
        check_compare_arguments(args)
    except ValueError as err:
        parser.error(str(err))
    return run_compare(args)


def build_parser():
    """The argument parser of ``python -m pyx_gru``.

    Returns
    -------
    argparse.ArgumentParser
        With one subparser per subcommand, also reachable by name as
        ``parser.subcommands[name]``; each sets ``func(args, parser)``.
    """
    parser = argparse.ArgumentParser(
        prog="python -m pyx_gru",
        description="pyx_gru's command line: build the documentation site, check "
                    "and time every cell, or train and compare cells.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    parser.subcommands = {}

    p = sub.add_parser(
        "docs", help="build the documentation site and print the path of its index.html",
        description="Build the documentation site from the clone's docs/ and tutorials/ "
                    "(sphinx-build -W, offline, tutorials executed) and print the path of "
                    "index.html. Needs pip install -e \".[docs]\".",
    )
    p.add_argument("--out", default=None,
                   help="output directory (default docs/_build/html in the clone)")
    p.add_argument("--no-gallery", action="store_true",
                   help="do not run the tutorials (quick; their pages have no output)")
    p.add_argument("--quiet", action="store_true", help="print only Sphinx's warnings and errors")
    p.set_defaults(func=docs)
    parser.subcommands["docs"] = p

    p = sub.add_parser(
        "check", help="every cell's parameter count, gradient check and speed",
        description="Parameter count, gradient check and forward+backward time "
                    "(compiled vs NumPy reference) of every cell.",
    )
    add_check_arguments(p)
    p.set_defaults(func=check)
    parser.subcommands["check"] = p

    from .experiments import COMPARE_DESCRIPTION, add_compare_arguments

    p = sub.add_parser(
        "compare", help="train and compare cells at equal parameter counts",
        description=COMPARE_DESCRIPTION,
    )
    add_compare_arguments(p)
    p.set_defaults(func=compare)
    parser.subcommands["compare"] = p
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.func(args, parser.subcommands[args.command])


if __name__ == "__main__":
    sys.exit(main())
