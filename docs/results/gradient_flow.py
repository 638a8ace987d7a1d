"""Gradient flow at initialisation: how fast ||dL/dh_t|| shrinks with the
distance T - t from a loss at the last step, for every cell.

    python docs/results/gradient_flow.py [--hidden 64] [--length 100] [--out DIR]

Inputs: B sequences of the adding problem (D = 2). dL/dh_T: a random unit
vector per sequence. Curves: the geometric mean over the sequences of the
exact ||dL/dh_t|| (``pyx_gru.diagnostics.flow_curve``). Rates: the
per-step factor of a geometric fit over the second half of the sequence,
t in [T/2, T] (``decay_rate``), where the state has left h_0 = 0.

Part 1, the tanh RNN with U = s Q (Q its orthogonal initialisation, so every
singular value of U is s) for several s, and with a Gaussian U, against
sigma_max(U) E|tanh'|, sigma_max(U) rms(tanh') and the bound sigma_max(U)
max|tanh'| (``rnn_rate_predictions``). Part 2, every cell at its default
initialisation and with larger update/forget-gate biases. Prints two tables
and writes ``gradient_flow.png`` into ``--out`` (matplotlib).
"""
import argparse
import sys
from pathlib import Path

import numpy as np

import pyx_gru as pg
from pyx_gru import diagnostics, tasks
from pyx_gru._files import write_atomically

SCALES = (0.5, 0.8, 1.0, 1.2, 1.5, 2.0)
CELLS = [  # label, cell name, gate biases (None: the defaults)
    ("RNN", "rnn", None),
    ("SimpleGRU", "sgru", None),
    ("SimpleGRU, b_f=2", "sgru", {"f": 2.0}),
    ("GRU", "gru", None),
    ("GRU, b_z=2", "gru", {"z": 2.0}),
    ("GRU, b_z=3", "gru", {"z": 3.0}),
    ("LSTM (b_f=1)", "lstm", None),
    ("LSTM, b_f=3", "lstm", {"f": 3.0}),
]


def rnn_rates(x, H, seed, start):
    """Rows of part 1: fitted and predicted rates of tanh RNNs."""
    rows = []
    for s in SCALES:
        cell = pg.RNN(x.shape[2], H, seed=seed)
        cell.params["U"][...] *= s
        rows.append((f"U = {s:g} Q", cell))
    cell = pg.RNN(x.shape[2], H, seed=seed)
    cell.params["U"] = np.random.default_rng(seed).standard_normal((H, H)) / np.sqrt(H)
    rows.append(("U Gaussian, var 1/H", cell))
    out = []
    for label, cell in rows:
        curve = diagnostics.flow_curve(cell, x, seed=seed)
        pred = diagnostics.rnn_rate_predictions(cell, x, start=start)
        out.append({"label": label, "fitted": diagnostics.decay_rate(curve, start=start),
                    "left": curve[0], **pred})
    return out


def cell_rates(x, H, seed, start):
    """Rows of part 2: every cell, default and biased gates."""
    out = []
    for label, name, bias in CELLS:
        cell = pg.layers.make_cell(name, x.shape[2], H, seed=seed, gate_bias=bias)
        curve = diagnostics.flow_curve(cell, x, seed=seed)
        out.append({"label": label, "curve": curve,
                    "fitted": diagnostics.decay_rate(curve, start=start), "left": curve[0]})
    return out


def plot(part1, part2, T, path):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4), layout="constrained")
    ax, bx = fig.subplots(1, 2)
    for i, r in enumerate(part2):
        ax.semilogy(T - np.arange(T + 1), r["curve"], color=f"C{i}",
                    ls="--" if "b_" in r["label"] and "b_f=1" not in r["label"] else "-",
                    label=f"{r['label']}: {r['fitted']:.3f}/step")
    ax.set_xlabel("distance T - t from the loss")
    ax.set_ylabel("||dL/dh_t|| (geometric mean)")
    ax.set_title(f"at initialisation, T = {T}")
    ax.legend(fontsize="x-small")
    lo = min(min(r["fitted"], r["rms"], r["mean"]) for r in part1) * 0.95
    hi = max(max(r["fitted"], r["rms"], r["mean"]) for r in part1) * 1.05
    bx.plot([lo, hi], [lo, hi], color="0.6", lw=1)
    for key, marker, name in (("rms", "o", "sigma_max rms(tanh')"), ("mean", "x", "sigma_max E|tanh'|")):
        bx.plot([r[key] for r in part1], [r["fitted"] for r in part1], marker, ls="", label=name)
    for r in part1:
        bx.annotate(r["label"], (r["rms"], r["fitted"]), fontsize="x-small",
                    xytext=(4, -8), textcoords="offset points")
    bx.set_xlabel("predicted rate per step")
    bx.set_ylabel("fitted rate per step")
    bx.set_title("tanh RNN: fitted against predicted")
    bx.legend(fontsize="small")
    fmt = Path(path).suffix.lstrip(".") or "png"
    write_atomically(path, lambda f: fig.savefig(f, format=fmt, dpi=110))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--length", type=int, default=100)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="pyx_gru_results", help="where the plot goes")
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args(argv)
    T, H = args.length, args.hidden
    x = tasks.adding(args.batch, T, seed=args.seed).x
    start = T // 2
    print(f"H = {H}, T = {T}, {args.batch} adding-problem sequences, float64; rates fitted over "
          f"t in [{start}, {T}]")
    print("\npart 1: tanh RNN, per-step rate of ||dL/dh_t||")
    print(f"{'recurrent matrix':<22}{'sigma_max':>10}{'radius':>8}{'fitted':>8}{'s*E|tanh`|':>12}"
          f"{'s*rms':>8}{'bound':>8}{'|dL/dh_0|':>11}")
    part1 = rnn_rates(x, H, args.seed, start)
    for r in part1:
        print(f"{r['label']:<22}{r['sigma_max']:>10.3f}{r['radius']:>8.3f}{r['fitted']:>8.4f}"
              f"{r['mean']:>12.4f}{r['rms']:>8.4f}{r['bound']:>8.4f}{r['left']:>11.2e}")
    print("\npart 2: every cell (default init unless a bias is named)")
    print(f"{'cell':<22}{'fitted':>8}{'|dL/dh_0|':>11}")
    part2 = cell_rates(x, H, args.seed, start)
    for r in part2:
        print(f"{r['label']:<22}{r['fitted']:>8.4f}{r['left']:>11.2e}")
    if not args.no_plot:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        plot(part1, part2, T, out / "gradient_flow.png")
        print(f"\nwrote {out / 'gradient_flow.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
