"""Pictures of the pyx_gru site, drawn with matplotlib when the site is built.

Two kinds of figure, none of them committed:

* **Diagrams** (``DIAGRAMS``): the data flow of one step of every cell, the
  graph of backpropagation through time, and where the GRU's reset gate
  acts. Drawn from patches, arrows and mathtext in the symbols of
  ``docs/theory`` (vectors are rows: ``x_t W``, ``h_{t-1} U``), each box and
  wire one operation of ``pyx_gru/reference.py``.
* **Claim figures** (``CLAIMS``): what each theory page's main claim looks
  like, computed from the compiled cells with ``pyx_gru.diagnostics`` (a
  few seconds in all). The functions ``*_data`` return the numbers that the
  figures draw, so that ``tests/test_diagrams.py`` checks the captions'
  claims on the same numbers.

As a Sphinx extension (``"diagrams"`` in ``conf.py``), it writes every figure
as SVG into ``docs/_diagrams/`` when the builder starts (a file is rewritten
only when its bytes change, so an unchanged figure does not make Sphinx read
its pages again); the pages include them with ``.. figure:: /_diagrams/NAME.svg``.
The directory ignores itself in git. It also gives the front page two
directives: ``.. cell-cards::`` (the cells' diagrams, each linking to its
theory page) and ``.. tutorial-cards::`` (every tutorial's thumbnail, in
reading order).

Legend of the diagrams: a yellow box applies sigma or tanh to the sum of
what flows into it plus its bias (so the box of gate ``z`` computes
``sigma(x_t W_z + h_{t-1} U_z + b_z)``); a blue square multiplies the row
vector that enters it by the matrix it names; circles are elementwise
(``⊙``, ``+``, ``1 −``); a dot joins wires; the orange line is the path that
carries the state from one step to the next through no matrix; dashed
wires are the LSTM's optional peepholes.
"""
import io
import re
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib import patheffects
from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch, Rectangle
from matplotlib.path import Path as MPath

__all__ = ["DIAGRAMS", "CLAIMS", "FIGURES", "render", "write_all", "setup"]

# Okabe-Ito colours: told apart with every kind of colour blindness.
INK = "#1f1f1f"
HIGHWAY = "#e69f00"   # the state's path through no matrix
GRADIENT = "#d55e00"  # backward pass
PEEPHOLE = "#0072b2"
GATE_FILL = "#fff0b8"
MATRIX_FILL = "#dbe7f5"
MUTED = "#8a8a8a"

# Data units: 1 unit = UNIT inches, so that a diagram 11 units wide is about
# 5 inches (480 CSS px at its natural size) and its 13 pt labels stay above
# 10 px when a phone shrinks it to 360 px.
UNIT = 0.46
FONT = 16
SMALL = 13
STYLE = {
    "font.size": FONT,
    "mathtext.fontset": "cm",   # the TeX look of the pages' MathJax
    "svg.fonttype": "path",     # no font needed by the browser
    "svg.hashsalt": "pyx_gru",  # the same bytes at every build
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
}


# ---------------------------------------------------------------------------
# A small drawing kit: nodes with ports, and wires between points
# ---------------------------------------------------------------------------

class Node:
    """A box or circle at (x, y); ``port(side, offset)`` is a point on its edge."""

    def __init__(self, x, y, w, h):
        self.x, self.y, self.w, self.h = x, y, w, h

    def port(self, side, offset=0.0):
        if side == "top":
            return (self.x + offset, self.y + self.h / 2)
        if side == "bottom":
            return (self.x + offset, self.y - self.h / 2)
        if side == "left":
            return (self.x - self.w / 2, self.y + offset)
        if side == "right":
            return (self.x + self.w / 2, self.y + offset)
        raise ValueError(side)


class Canvas:
    """A figure whose axes span it, in data units (``UNIT`` inches each)."""

    def __init__(self, width, height, *, x0=0.0, y0=0.0):
        self.fig = Figure(figsize=(width * UNIT, height * UNIT))
        ax = self.fig.add_axes((0, 0, 1, 1))
        ax.set_xlim(x0, x0 + width)
        ax.set_ylim(y0, y0 + height)
        ax.set_axis_off()
        self.ax = ax
        self.ids = {}

    # nodes ---------------------------------------------------------------
    def box(self, x, y, text, *, w=1.3, h=0.75, fill=GATE_FILL, size=FONT, edge=INK):
        patch = FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0,rounding_size=0.14",
                               facecolor=fill, edgecolor=edge, linewidth=1.3, zorder=4)
        self.ax.add_patch(patch)
        self.ax.text(x, y, text, ha="center", va="center", fontsize=size, zorder=5)
        return Node(x, y, w, h)

    def matrix(self, x, y, text, *, w=0.84, h=0.6):
        """A square that multiplies the row entering it by a matrix."""
        patch = Rectangle((x - w / 2, y - h / 2), w, h, facecolor=MATRIX_FILL, edgecolor=INK,
                          linewidth=1.1, zorder=4)
        self.ax.add_patch(patch)
        self.ax.text(x, y, text, ha="center", va="center", fontsize=SMALL, zorder=5)
        return Node(x, y, w, h)

    def op(self, x, y, symbol, *, r=0.24, size=FONT, color=INK, fill="white", lw=1.2):
        """An elementwise operation: a circle with its symbol."""
        self.ax.add_patch(Circle((x, y), r, facecolor=fill, edgecolor=color, linewidth=lw, zorder=4))
        self.ax.text(x, y, symbol, ha="center", va="center_baseline", fontsize=size, zorder=5)
        return Node(x, y, 2 * r, 2 * r)

    def dot(self, x, y, color=INK):
        self.ax.add_patch(Circle((x, y), 0.075, facecolor=color, edgecolor="none", zorder=6))

    def label(self, x, y, text, *, ha="center", va="center", size=FONT, color=INK, **kw):
        self.ax.text(x, y, text, ha=ha, va=va, fontsize=size, color=color, zorder=7, **kw)

    # wires ---------------------------------------------------------------
    def wire(self, *points, color=INK, lw=1.4, arrow=True, dashed=False, hop=False, z=2, gid=None):
        """A polyline through ``points`` with an arrowhead at the end.

        ``hop``: a white halo under it, so that where it crosses a wire drawn
        earlier the other wire shows a gap (crossing, not joined).
        """
        path = MPath(np.asarray(points, dtype=float))
        style = "-|>,head_length=0.42,head_width=0.2" if arrow else "-"
        patch = FancyArrowPatch(path=path, arrowstyle=style, mutation_scale=9 + 2.5 * lw if arrow else 1,
                                color=color, linewidth=lw, zorder=z + (0.5 if hop else 0),
                                linestyle=(0, (4, 2.5)) if dashed else "-",
                                joinstyle="miter", capstyle="butt")
        if hop:
            patch.set_path_effects([patheffects.withStroke(linewidth=lw + 6, foreground="white"),
                                    patheffects.Normal()])
        if gid:  # ids must be unique in the SVG: number them
            self.ids[gid] = self.ids.get(gid, 0) + 1
            patch.set_gid(f"{gid}-{self.ids[gid]}")
        self.ax.add_patch(patch)
        return patch


# ---------------------------------------------------------------------------
# Cell diagrams
# ---------------------------------------------------------------------------

# Heights shared by the cell diagrams.
Y_XBUS, Y_HBUS, Y_MAT, Y_GATE = 0.55, 1.25, 2.2, 3.4
X_DROP, X_XIN = 0.8, 1.45  # where h_{t-1} drops to its bus, where x_t comes in
LABEL_DY = 0.52  # a state's label sits this far above its line
DX = 0.47  # a gate's U and W squares sit DX left and right of its centre


def _inputs(c, y_top, x_bus_end, h_bus_end, *, h_label=r"$h_{t-1}$", highway=True):
    """h_{t-1} from the left on the line y_top, dropping to its bus; x_t
    from below onto its bus."""
    c.label(0.05, y_top + LABEL_DY, h_label, ha="left")
    c.wire((0.0, y_top), (X_DROP, y_top), arrow=False, color=HIGHWAY if highway else INK,
           lw=3.2 if highway else 1.4, gid="highway" if highway else None)
    c.dot(X_DROP, y_top, HIGHWAY if highway else INK)
    c.wire((X_DROP, y_top), (X_DROP, Y_HBUS), (h_bus_end, Y_HBUS), arrow=False)
    c.label(X_XIN, -0.12, r"$x_t$", va="top")
    c.wire((X_XIN, -0.05), (X_XIN, Y_XBUS), (x_bus_end, Y_XBUS), arrow=False)


def _taps(c, cx, gate, box, *, dx=DX):
    """The two products of a gate, h_{t-1} U_gate and x_t W_gate, into its
    box (``gate`` "" for the RNN's U and W)."""
    sub = f"_{gate}" if gate else ""
    c.dot(cx - dx, Y_HBUS)
    m = c.matrix(cx - dx, Y_MAT, rf"$U{sub}$")
    c.wire((cx - dx, Y_HBUS), m.port("bottom"), lw=1.2)
    c.wire(m.port("top"), box.port("bottom", -dx), lw=1.2)
    # x_t's tap crosses the h_{t-1} bus: a gap shows they are not joined
    c.dot(cx + dx, Y_XBUS)
    m = c.matrix(cx + dx, Y_MAT, rf"$W{sub}$")
    c.wire((cx + dx, Y_XBUS), m.port("bottom"), lw=1.2, hop=True)
    c.wire(m.port("top"), box.port("bottom", dx), lw=1.2)


def _gate(c, cx, gate, act=r"$\sigma$", **kw):
    box = c.box(cx, Y_GATE, act)
    _taps(c, cx, gate, box, **kw)
    return box


def _interpolation(c, y_top, keep, cand, gate, x_keep, x_cand, x_one, y_mid, x_out):
    """h_t = gate * h_{t-1} + (1 - gate) * g_t along the top line, highlighted
    from h_{t-1} through the product with the gate to h_t."""
    k = c.op(x_keep, y_top, r"$\odot$", color=HIGHWAY, lw=2.2)
    plus = c.op(x_cand, y_top, r"$+$", color=HIGHWAY, lw=2.2)
    hw = dict(color=HIGHWAY, lw=3.2, arrow=True, gid="highway")
    c.wire((X_DROP, y_top), k.port("left"), **hw)
    c.wire(k.port("right"), plus.port("left"), **hw)
    c.wire(plus.port("right"), (x_out, y_top), **hw)
    # the gate: up to the keep product, and through 1 - gate to the candidate's
    c.wire(keep.port("top"), k.port("bottom"))
    c.label(x_keep - 0.14, (keep.port("top")[1] + y_mid) / 2, rf"${gate}_t$", ha="right")
    c.dot(x_keep, y_mid)
    one = c.op(x_one, y_mid, r"$1{-}$", r=0.36, size=SMALL)
    c.wire((x_keep, y_mid), one.port("left"))
    prod = c.op(x_cand, y_mid, r"$\odot$")
    c.wire(one.port("right"), prod.port("left"))
    c.label((x_one + x_cand) / 2 + 0.1, y_mid + 0.3, rf"$1-{gate}_t$", size=SMALL)
    c.wire(cand.port("top"), prod.port("bottom"))
    c.label(x_cand + 0.14, (cand.port("top")[1] + prod.port("bottom")[1]) / 2, r"$g_t$", ha="left")
    c.wire(prod.port("top"), plus.port("bottom"))


def draw_rnn():
    """h_t = g_t = tanh(x_t W + h_{t-1} U + b): no path around U."""
    c = Canvas(7.0, 6.5, y0=-0.75)
    y_top = 4.9
    cx = 3.2
    _inputs(c, y_top, cx + DX, cx - DX, highway=False)
    box = _gate(c, cx, "", r"$\tanh$")  # one block: U and W themselves
    c.wire(box.port("top"), (cx, y_top), (6.7, y_top))
    c.label(cx + 0.14, 4.2, r"$g_t$", ha="left")
    c.label(6.75, y_top + LABEL_DY, r"$h_t$", ha="right")
    return c.fig


def draw_simple_gru():
    """f = sigma(.), g = tanh(.), h_t = f * h_{t-1} + (1 - f) * g."""
    c = Canvas(9.0, 7.9, y0=-0.75)
    y_top, y_mid = 6.3, 5.05
    xf, xg = 2.6, 6.4
    _inputs(c, y_top, xg + DX, xg - DX)
    f = _gate(c, xf, "f")
    g = _gate(c, xg, "g", r"$\tanh$")
    _interpolation(c, y_top, f, g, "f", xf, xg, 4.3, y_mid, 8.9)
    c.label(8.95, y_top + LABEL_DY, r"$h_t$", ha="right")
    return c.fig


def _draw_gru(reset):
    c = Canvas(11.2, 8.5, y0=-0.75)
    y_top, y_mid, y_reset = 6.9, 5.6, 4.35
    xz, xr, xn, xg = 2.6, 4.5, 6.6, 9.3
    _inputs(c, y_top, xg, xn)
    z = _gate(c, xz, "z")
    r = _gate(c, xr, "r")
    # the candidate: tanh of x_t W_g + b_g plus the reset part
    g = c.box(xg, y_reset, r"$\tanh$")
    c.dot(xg, Y_XBUS)
    wg = c.matrix(xg, Y_MAT + 0.35, r"$W_g$")
    c.wire((xg, Y_XBUS), wg.port("bottom"), lw=1.2, hop=True)
    c.wire(wg.port("top"), g.port("bottom"), lw=1.2)
    prod = c.op(xn, y_reset, r"$\odot$")
    c.wire(r.port("top"), (xr, y_reset), prod.port("left"))
    c.label(xr - 0.14, (r.port("top")[1] + y_reset) / 2, r"$r_t$", ha="right")
    c.dot(xn, Y_HBUS)
    if reset == "after":
        # n_t = h_{t-1} U_g + b_hg, then r_t * n_t
        ug = c.matrix(xn, Y_MAT, r"$U_g$")
        c.wire((xn, Y_HBUS), ug.port("bottom"), lw=1.2)
        y_b = 3.1
        bias = c.op(xn, y_b, r"$+$")
        c.wire(ug.port("top"), bias.port("bottom"), lw=1.2)
        c.wire((xn + 0.85, y_b), bias.port("right"), lw=1.2)
        c.label(xn + 0.9, y_b, r"$b_{hg}$", ha="left", size=SMALL + 1)
        c.wire(bias.port("top"), prod.port("bottom"))
        c.label(xn - 0.16, (y_b + 0.24 + y_reset - 0.24) / 2, r"$n_t$", ha="right")
        c.wire(prod.port("right"), g.port("left"))
    else:
        # r_t * h_{t-1}, then times U_g
        c.wire((xn, Y_HBUS), prod.port("bottom"))
        ug = c.matrix((xn + g.port("left")[0]) / 2, y_reset, r"$U_g$")
        c.wire(prod.port("right"), ug.port("left"), lw=1.2)
        c.wire(ug.port("right"), g.port("left"), lw=1.2)
    _interpolation(c, y_top, z, g, "z", xz, xg, 5.2, y_mid, 11.2)
    c.label(11.15, y_top + LABEL_DY, r"$h_t$", ha="right")
    return c.fig


def draw_gru_after():
    """The GRU, reset gate after the product: g = tanh(x_t W_g + b_g + r * (h_{t-1} U_g + b_hg))."""
    return _draw_gru("after")


def draw_gru_before():
    """The GRU, reset gate before the product: g = tanh(x_t W_g + b_g + (r * h_{t-1}) U_g)."""
    return _draw_gru("before")


def draw_lstm():
    """c_t = f * c_{t-1} + i * g, h_t = o * tanh(c_t), peepholes dashed."""
    c = Canvas(11.7, 9.3, y0=-0.75)
    y_c, y_h_in, y_ig, y_o = 7.7, 5.2, 6.0, 4.65
    xf, xi, xg, xo, xt = 2.6, 4.6, 6.6, 8.6, 10.1
    # h_{t-1} from the left, below the cell state; x_t from below
    c.label(0.05, y_h_in + LABEL_DY, r"$h_{t-1}$", ha="left")
    c.wire((0.0, y_h_in), (X_DROP, y_h_in), (X_DROP, Y_HBUS), (xo - DX, Y_HBUS), arrow=False)
    c.label(X_XIN, -0.12, r"$x_t$", va="top")
    c.wire((X_XIN, -0.05), (X_XIN, Y_XBUS), (xo + DX, Y_XBUS), arrow=False)
    f = _gate(c, xf, "f")
    i = _gate(c, xi, "i")
    g = _gate(c, xg, "g", r"$\tanh$")
    o = _gate(c, xo, "o")
    # the cell state's line: c_{t-1} -> (* f) -> (+ i * g) -> c_t, no matrix
    c.label(0.05, y_c + LABEL_DY, r"$c_{t-1}$", ha="left")
    kf = c.op(xf, y_c, r"$\odot$", color=HIGHWAY, lw=2.2)
    plus = c.op(xg, y_c, r"$+$", color=HIGHWAY, lw=2.2)
    hw = dict(color=HIGHWAY, lw=3.2, gid="highway")
    c.wire((0.0, y_c), kf.port("left"), **hw)
    c.wire(kf.port("right"), plus.port("left"), **hw)
    c.wire(plus.port("right"), (11.7, y_c), **hw)
    c.label(11.65, y_c + LABEL_DY, r"$c_t$", ha="right")
    c.wire(f.port("top"), kf.port("bottom"))
    c.label(xf + 0.14, 5.4, r"$f_t$", ha="left")
    ig = c.op(xg, y_ig, r"$\odot$")
    c.wire(i.port("top"), (xi, y_ig), ig.port("left"))
    c.label(xi - 0.14, 4.9, r"$i_t$", ha="right")
    c.wire(g.port("top"), ig.port("bottom"))
    c.label(xg + 0.14, 4.9, r"$g_t$", ha="left")
    c.wire(ig.port("top"), plus.port("bottom"))
    # h_t = o * tanh(c_t)
    c.dot(xt, y_c, HIGHWAY)
    th = c.box(xt, 6.15, r"$\tanh$", w=1.05, h=0.62, fill="white")
    c.wire((xt, y_c), th.port("top"))
    ko = c.op(xt, y_o, r"$\odot$")
    c.wire(th.port("bottom"), ko.port("top"))
    c.wire(o.port("top"), (xo, y_o), ko.port("left"))
    c.label(xo - 0.14, 4.2, r"$o_t$", ha="right")
    c.wire(ko.port("right"), (11.7, y_o))
    c.label(11.65, y_o + LABEL_DY, r"$h_t$", ha="right")
    # peepholes (peephole=True): c_{t-1} into i and f, c_t into o; dashed
    pk = dict(color=PEEPHOLE, dashed=True, lw=1.3, z=3, gid="peephole")
    xp = 1.45
    y_p = 4.55
    c.dot(xp, y_c, PEEPHOLE)
    c.wire((xp, y_c), (xp, y_p), (xf - 0.32, y_p), f.port("top", -0.32), **pk)
    c.wire((xf - 0.32, y_p), (xi - 0.32, y_p), i.port("top", -0.32), **pk)
    c.label(xp - 0.1, 6.35, r"$p_f, p_i$", ha="right", color=PEEPHOLE, size=SMALL + 1)
    xq = xo + 0.4
    c.dot(xq, y_c, PEEPHOLE)
    c.wire((xq, y_c), o.port("top", 0.4), **pk)
    c.label(xq + 0.12, 5.45, r"$p_o$", ha="left", color=PEEPHOLE, size=SMALL + 1)
    return c.fig


# ---------------------------------------------------------------------------
# Backpropagation through time, and the reset gate
# ---------------------------------------------------------------------------

def _draw_bptt(lstm):
    T = 4
    step = 2.75
    xs = [0.75 + step * k for k in range(T + 1)]
    # forward rows below, backward rows above; the LSTM's c rows sit
    # between, so that ybar_t comes straight down into hbar_t
    rows_f = {"h": 1.2, "c": 2.15} if lstm else {"h": 1.2}
    rows_b = {"c": 3.9, "h": 4.85} if lstm else {"h": 2.95}
    y_loss = rows_b["h"] + 1.35
    c = Canvas(xs[-1] + 0.75, y_loss + 1.0, y0=-0.45)
    lo_f, hi_f = min(rows_f.values()) - 0.4, max(rows_f.values()) + 0.4
    lo_b, hi_b = min(rows_b.values()) - 0.42, max(rows_b.values()) + 0.42
    for t in range(1, T + 1):
        xm = (xs[t - 1] + xs[t]) / 2
        fwd = c.box(xm, (lo_f + hi_f) / 2, "step", w=1.15, h=hi_f - lo_f, fill="#eeeeee",
                    size=SMALL)
        for y in rows_f.values():
            c.wire((xs[t - 1] + 0.42, y), (fwd.port("left")[0], y), lw=1.2)
            c.wire((fwd.port("right")[0], y), (xs[t] - 0.42, y), lw=1.2)
        c.wire((xm, -0.3), fwd.port("bottom"), lw=1.2)
        c.label(xm + 0.12, -0.12, rf"$x_{t}$", ha="left", size=FONT - 1)
        # backward: step t's Jacobian, computed from step t's cache (dotted)
        jac = c.box(xm, (lo_b + hi_b) / 2, rf"$J_{t}$", w=1.1, h=hi_b - lo_b, fill="#fbe3d6",
                    edge=GRADIENT)
        c.wire(fwd.port("top"), jac.port("bottom"), color=MUTED, lw=1.0, dashed=True, arrow=False, z=1)
        for name, y in rows_b.items():
            style = dict(color=HIGHWAY, lw=2.4) if name == "c" else dict(color=GRADIENT, lw=1.6)
            c.wire((xs[t] - 0.42, y), (jac.port("right")[0], y), arrow=False, **style)
            c.wire((jac.port("left")[0], y), (xs[t - 1] + 0.42, y), **style)
        # the loss's gradient at the output y_t = h_t joins hbar_t
        c.wire((xs[t], y_loss - 0.3), (xs[t], rows_b["h"] + 0.36), color=GRADIENT, lw=1.3)
        c.label(xs[t], y_loss - 0.25, rf"$\bar{{y}}_{t}$", va="bottom", color=GRADIENT)
    for k, x in enumerate(xs):
        for name, y in rows_f.items():
            c.label(x, y, rf"${name}_{k}$")
        for name, y in rows_b.items():
            c.label(x, y, rf"$\bar{{{name}}}_{k}$", color=HIGHWAY if name == "c" else GRADIENT)
    return c.fig


def draw_bptt():
    """hbar flows back through J_T ... J_1; ybar_t joins at every step."""
    return _draw_bptt(lstm=False)


def draw_bptt_lstm():
    """The LSTM's two gradients, hbar and cbar, back through the steps."""
    return _draw_bptt(lstm=True)


def draw_reset():
    """Where r acts on h_{t-1} U_g: the rows of U_g (before) or its columns (after)."""
    H = 4
    r = np.array([1.0, 0.2, 0.6, 0.0])
    fig = Figure(figsize=(5.4, 3.3))
    axes = fig.subplots(1, 2)
    fig.subplots_adjust(left=0.02, right=0.98, top=0.8, bottom=0.02, wspace=0.12)
    titles = ["reset before\n" r"$(r_t \odot h_{t-1})\,U_g$",
              "reset after\n" r"$r_t \odot (h_{t-1} U_g + b_{hg})$"]
    notes = ["row $i$: what unit $i$\nof $h_{t-1}$ sends", "column $j$: what unit $j$\nof the candidate hears"]
    small = SMALL - 1
    products = [r"$h_{t-1}\,\mathrm{diag}(r_t)\,U_g$", r"$h_{t-1}\,U_g\,\mathrm{diag}(r_t)$"]
    for ax, title, product, note, rows in zip(axes, titles, products, notes, (True, False), strict=True):
        ax.set_xlim(-1.6, H + 0.3)
        ax.set_ylim(-2.2, H + 1.4)
        ax.set_aspect("equal")
        ax.set_axis_off()
        ax.set_title(title, fontsize=SMALL, pad=4)
        for i in range(H):
            for j in range(H):
                s = r[i] if rows else r[j]
                ax.add_patch(Rectangle((j, H - 1 - i), 1, 1, facecolor=(0.0, 0.447, 0.698, 0.12 + 0.75 * s),
                                       edgecolor="white", linewidth=1.5))
            # r along the side it scales
            if rows:
                ax.text(-0.2, H - 0.5 - i, f"{r[i]:g}", ha="right", va="center", fontsize=small)
            else:
                ax.text(i + 0.5, H + 0.2, f"{r[i]:g}", ha="center", va="bottom", fontsize=small)
        ax.text(-0.2, H + 0.2, r"$r_t$", ha="right", va="bottom", fontsize=FONT)
        ax.text(H / 2, -0.25, product, ha="center", va="top", fontsize=SMALL)
        ax.text(H / 2, -1.05, note, ha="center", va="top", fontsize=small, linespacing=1.2)
    return fig


DIAGRAMS = {
    "cell_rnn": draw_rnn,
    "cell_simple_gru": draw_simple_gru,
    "cell_gru_after": draw_gru_after,
    "cell_gru_before": draw_gru_before,
    "cell_lstm": draw_lstm,
    "bptt": draw_bptt,
    "bptt_lstm": draw_bptt_lstm,
    "reset_before_after": draw_reset,
}


# ---------------------------------------------------------------------------
# Claim figures, computed from the compiled cells
# ---------------------------------------------------------------------------

T_FLOW, B_FLOW, H_FLOW = 60, 8, 32


def _flow_inputs(T=T_FLOW, B=B_FLOW):
    from pyx_gru import tasks

    return tasks.adding(B, length=T, seed=0).x


def _curve(cell, x, **kwargs):
    """||dL/dh_t|| over t, geometric mean over the batch, for a random unit dL/dh_T."""
    from pyx_gru.diagnostics import gradient_norms

    d = np.random.default_rng(1).standard_normal((x.shape[1], cell.hidden_size))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return np.exp(np.log(gradient_norms(cell, x, d, **kwargs)).mean(axis=1))


def rnn_data(alphas=(0.8, 1.0, 1.2)):
    """The vanilla RNN with U = alpha Q (Q orthogonal, so sigma_max(U) = alpha).

    Returns
    -------
    dict
        ``t`` (T + 1,), and per alpha ``curve`` (T + 1,): ||dL/dh_t|| for a
        unit dL/dh_T, and ``bound`` = alpha^(T - t), the bound of the page.
    """
    import pyx_gru as pg

    x = _flow_inputs()
    out = {"t": np.arange(T_FLOW + 1), "alphas": alphas}
    for a in alphas:
        cell = pg.RNN(x.shape[2], H_FLOW, seed=0)
        cell.params["U"] *= a
        out[a] = {"curve": _curve(cell, x), "bound": a ** (T_FLOW - np.arange(T_FLOW + 1.0))}
    return out


def simple_gru_data(biases=(0.0, 2.0, 4.0)):
    """The simplified GRU with its gate bias b_f set, against the vanilla RNN.

    Returns
    -------
    dict
        ``t``; ``"rnn"``: the RNN's curve; per b_f: ``curve`` and ``f``,
        the mean of f_t over the steps, units and sequences.
    """
    import pyx_gru as pg

    x = _flow_inputs()
    D = x.shape[2]
    out = {"t": np.arange(T_FLOW + 1), "biases": biases, "rnn": _curve(pg.RNN(D, H_FLOW, seed=0), x)}
    for b in biases:
        cell = pg.SimpleGRU(D, H_FLOW, seed=0)
        cell.params["b"][:H_FLOW] = b  # the f block comes first
        _, _, cache = cell.forward(x)
        out[b] = {"curve": _curve(cell, x), "f": float(cache.gates[:, :, :H_FLOW].mean())}
    return out


def gru_data(b_z=2.0):
    """Both GRUs at initialisation, and reset="after" with update-gate bias b_z.

    Returns
    -------
    dict
        ``t``; curves ``"rnn"``, ``"after"``, ``"before"``, ``"after_bz"``,
        and ``b_z``.
    """
    import pyx_gru as pg

    x = _flow_inputs()
    D = x.shape[2]
    out = {"t": np.arange(T_FLOW + 1), "b_z": b_z, "rnn": _curve(pg.RNN(D, H_FLOW, seed=0), x)}
    for reset in ("after", "before"):
        out[reset] = _curve(pg.GRU(D, H_FLOW, reset=reset, seed=0), x)
    cell = pg.GRU(D, H_FLOW, reset="after", seed=0)
    cell.params["b"][:H_FLOW] = b_z  # gates ("z", "r", "g"): z first
    out["after_bz"] = _curve(cell, x)
    return out


def lstm_data(biases=(1.0, 3.0, 5.0)):
    """The LSTM's cell-state gradient ||dL/dc_t|| with U = 0 (the c path alone)
    for several forget-gate biases, and with its default U at b_f = 1.

    Returns
    -------
    dict
        ``t``; per forget bias: ``curve`` (||dL/dc_t||, geometric mean over
        the batch, for a unit dL/dc_T and dL/dh_T = 0), ``product`` (the same
        norm computed directly as ||dL/dc_T * f_T * ... * f_{t+1}||, the
        oracle of the claim ``dc_{t-1} = dc_t * f_t``), ``f`` (mean f_t);
        ``"full"``: the curve with the default U.
    """
    import pyx_gru as pg
    from pyx_gru.diagnostics import state_gradients

    x = _flow_inputs()
    D = x.shape[2]
    H = H_FLOW
    d = np.random.default_rng(1).standard_normal((x.shape[1], H))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    zero = np.zeros_like(d)

    def curve(cell):
        _, dc = state_gradients(cell, x, (zero, d))
        return np.exp(np.log(np.linalg.norm(dc, axis=-1)).mean(axis=1))

    out = {"t": np.arange(T_FLOW + 1), "biases": biases}
    for b in biases:
        cell = pg.LSTM(D, H, seed=0)
        cell.params["U"][:] = 0.0
        cell.params["b"][H:2 * H] = b  # gates ("i", "f", "g", "o"): f second
        _, _, cache = cell.forward(x)
        f = np.asarray(cache.gates[:, :, H:2 * H], dtype=np.float64)  # (T, B, H), f_1 .. f_T
        # dL/dc_t = dL/dc_T * f_T * ... * f_{t+1}
        prods = np.empty((T_FLOW + 1,) + d.shape)
        prods[T_FLOW] = d
        for t in range(T_FLOW, 0, -1):
            prods[t - 1] = prods[t] * f[t - 1]
        product = np.exp(np.log(np.linalg.norm(prods, axis=-1)).mean(axis=1))
        out[b] = {"curve": curve(cell), "product": product, "f": float(f.mean())}
    out["full"] = curve(pg.LSTM(D, H, seed=0))
    return out


def _plot_axes(figsize=(4.9, 3.4)):
    fig = Figure(figsize=figsize)
    ax = fig.add_subplot()
    ax.set_yscale("log")
    ax.set_xlabel(r"distance from the loss, $T - t$", fontsize=SMALL)
    ax.tick_params(labelsize=SMALL - 1)
    ax.grid(True, which="major", color="#e4e4e4", linewidth=0.8)
    return fig, ax


def _finish(fig, ax):
    ax.legend(fontsize=SMALL - 1, frameon=False, loc="lower left")
    fig.tight_layout(pad=0.4)
    return fig


def claim_rnn():
    data = rnn_data()
    fig, ax = _plot_axes()
    dist = T_FLOW - data["t"]
    for a, color in zip(data["alphas"], ("C0", "k", "C3"), strict=True):
        ax.plot(dist, data[a]["curve"], color=color, lw=2, label=rf"$\sigma_{{\max}}(U) = {a:g}$")
        ax.plot(dist, data[a]["bound"], color=color, lw=1, ls=(0, (4, 3)))
    ax.plot([], [], color="gray", lw=1, ls=(0, (4, 3)), label=r"bound $\sigma_{\max}(U)^{T-t}$")
    ax.set_ylim(1e-13, 1e6)  # room for the legend under the curves
    ax.set_yticks([10.0 ** k for k in range(-12, 6, 3)])
    ax.set_ylabel(r"$\|\partial L / \partial h_t\|$", fontsize=SMALL)
    return _finish(fig, ax)


def claim_simple_gru():
    data = simple_gru_data()
    fig, ax = _plot_axes()
    dist = T_FLOW - data["t"]
    ax.plot(dist, data["rnn"], color="k", lw=1.5, ls=(0, (4, 3)), label="vanilla RNN")
    for b, color in zip(data["biases"], ("C1", "C2", "C0"), strict=True):
        ax.plot(dist, data[b]["curve"], color=color, lw=2,
                label=rf"$b_f = {b:g}$, mean $f_t$ = {data[b]['f']:.2f}")
    ax.set_ylim(1e-5, 2)  # room for the legend under the curves
    ax.set_ylabel(r"$\|\partial L / \partial h_t\|$", fontsize=SMALL)
    return _finish(fig, ax)


def claim_gru():
    data = gru_data()
    fig, ax = _plot_axes()
    dist = T_FLOW - data["t"]
    ax.plot(dist, data["rnn"], color="k", lw=1.5, ls=(0, (4, 3)), label="vanilla RNN")
    ax.plot(dist, data["after"], color="C3", lw=2, label='GRU, reset="after"')
    ax.plot(dist, data["before"], color="C1", lw=2, ls=(0, (1, 1.5)), label='GRU, reset="before"')
    ax.plot(dist, data["after_bz"], color="C0", lw=2, label=rf'reset="after", $b_z = {data["b_z"]:g}$')
    ax.plot(dist, 0.75 ** dist, color="gray", lw=1, ls=(0, (4, 3)), label=r"$0.75^{T-t}$")
    ax.set_ylabel(r"$\|\partial L / \partial h_t\|$", fontsize=SMALL)
    return _finish(fig, ax)


def claim_lstm():
    data = lstm_data()
    fig, ax = _plot_axes()
    dist = T_FLOW - data["t"]
    for b, color in zip(data["biases"], ("C1", "C2", "C0"), strict=True):
        ax.plot(dist, data[b]["curve"], color=color, lw=2,
                label=rf"$U = 0$, $b_f = {b:g}$: mean $f_t$ = {data[b]['f']:.2f}")
    ax.plot(dist, data["full"], color="k", lw=1.5, ls=(0, (4, 3)), label=r"default $U$, $b_f = 1$")
    ax.set_ylabel(r"$\|\partial L / \partial c_t\|$", fontsize=SMALL)
    return _finish(fig, ax)


CLAIMS = {
    "claim_rnn": claim_rnn,
    "claim_simple_gru": claim_simple_gru,
    "claim_gru": claim_gru,
    "claim_lstm": claim_lstm,
}

FIGURES = {**DIAGRAMS, **CLAIMS}


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------

def render(name):
    """The SVG of figure ``name`` (a key of ``FIGURES``), as bytes."""
    with matplotlib.rc_context(STYLE):
        fig = FIGURES[name]()
        buf = io.BytesIO()
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    return buf.getvalue()


def write_all(directory, names=None):
    """Write ``NAME.svg`` for every figure (or ``names``) into ``directory``.

    A file is written only when its bytes change. Returns the list of paths.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ignore = directory / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# written by docs/_ext/diagrams.py at every build\n*\n")
    paths = []
    for name in names or FIGURES:
        path = directory / f"{name}.svg"
        svg = render(name)
        if not path.exists() or path.read_bytes() != svg:
            path.write_bytes(svg)
        paths.append(path)
    return paths


# ---------------------------------------------------------------------------
# Sphinx: write the figures, and the front page's cards
# ---------------------------------------------------------------------------

def _builder_inited(app):
    from sphinx.util import logging

    logger = logging.getLogger(__name__)
    import time

    start = time.perf_counter()
    write_all(Path(app.srcdir) / "_diagrams")
    logger.info(f"diagrams: {len(FIGURES)} figures in {time.perf_counter() - start:.1f} s")


def _title_of(script):
    """The RST title of a sphinx-gallery script's docstring."""
    import ast

    doc = ast.get_docstring(ast.parse(Path(script).read_text(encoding="utf-8"))) or ""
    lines = [line.strip() for line in doc.splitlines()]
    for k in range(len(lines) - 1):
        if lines[k] and re.fullmatch(r"=+", lines[k + 1]):
            return lines[k]
    return Path(script).stem


def _escape(text):
    return re.sub(r"([<>`*\\])", r"\\\1", text)


def _cards(directive, cards, kind):
    """Parse reST cards, (image uri or None, alt, link) each, into a grid
    container of class ``pyx-cards pyx-KIND``."""
    from docutils import nodes
    from docutils.statemachine import StringList

    lines = []
    for uri, alt, link in cards:
        lines += [f".. container:: pyx-card pyx-{kind[:-1]}", ""]
        if uri:
            lines += [f"   .. image:: {uri}", f"      :alt: {alt}", ""]
        lines += [f"   {link}", ""]
    grid = nodes.container(classes=["pyx-cards", f"pyx-{kind}"])
    directive.state.nested_parse(StringList(lines, "cards"), directive.content_offset, grid)
    return [grid]


def _make_directives():
    from docutils.parsers.rst import Directive

    class CellCards(Directive):
        """``.. cell-cards::`` with lines ``NAME DOC TITLE``: each cell's diagram
        ``/_diagrams/NAME.svg`` with the link TITLE to page DOC."""

        has_content = True

        def run(self):
            cards = []
            for line in self.content:
                if not line.strip():
                    continue
                name, doc, title = line.split(None, 2)
                if name not in DIAGRAMS:
                    raise self.error(f"cell-cards: no diagram {name!r}")
                cards.append((f"/_diagrams/{name}.svg", f"{title}: a diagram of one step",
                              f":doc:`{_escape(title)} <{doc}>`"))
            return _cards(self, cards, "cells")

    class TutorialCards(Directive):
        """``.. tutorial-cards::``: every tutorial's thumbnail and title, in
        the reading order of ``pyx_gru_docs.TUTORIALS``."""

        def run(self):
            from pyx_gru_docs import ROOT, TutorialOrder

            env = self.state.document.settings.env
            scripts = sorted((ROOT / "tutorials").glob("plot_*.py"), key=TutorialOrder(None))
            cards = []
            for script in scripts:
                env.note_dependency(str(script))
                title = _title_of(script)
                thumb = f"auto_tutorials/images/thumb/sphx_glr_{script.stem}_thumb.png"
                # no thumbnail when the gallery was not generated: the title alone
                uri = f"/{thumb}" if (Path(env.srcdir) / thumb).is_file() else None
                cards.append((uri, f"Thumbnail of the tutorial: {title}",
                              f":ref:`{_escape(title)} <sphx_glr_auto_tutorials_{script.stem}.py>`"))
            return _cards(self, cards, "tutorials")

    return CellCards, TutorialCards


def setup(app):
    cell_cards, tutorial_cards = _make_directives()
    app.add_directive("cell-cards", cell_cards)
    app.add_directive("tutorial-cards", tutorial_cards)
    app.add_css_file("diagrams.css")
    # after sphinx-gallery's builder-inited (it runs the tutorials) or before:
    # the figures do not depend on it
    app.connect("builder-inited", _builder_inited)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
