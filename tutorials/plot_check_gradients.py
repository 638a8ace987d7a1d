"""
Checking your own gradients
===========================

Every backward pass in pyx_gru is written by hand, so every one of them is
checked against finite differences: move one number by a tiny step up and
down, see how much the loss changes, and compare that slope with what the
backward pass says. This tutorial does that for all twelve cell
configurations, then shows what a wrong gradient looks like.
"""

# %%
# The loss
# --------
#
# ``pyx_gru.gradcheck`` builds a random problem (inputs ``x``, an initial
# state, and random "upstream" gradients ``dy`` and ``dstate``) and uses the
# loss :math:`L = \sum_t \langle dy_t, y_t \rangle + \langle dstate, h_T \rangle`.
# Its gradients are exactly what ``backward(cache, dy, dstate)`` returns, so
# for every entry :math:`v` of every parameter, of ``x`` and of the initial
# state it compares
#
# .. math::
#
#    \frac{L(v + \epsilon) - L(v - \epsilon)}{2 \epsilon}
#    \quad\text{with}\quad \frac{\partial L}{\partial v}
#
# in float64, and reports for each array the largest difference relative to
# the largest gradient.
import matplotlib.pyplot as plt
import numpy as np

import pyx_gru as pg

cells = {
    "RNN": pg.RNN(3, 4, seed=0),
    "SimpleGRU": pg.SimpleGRU(3, 4, seed=0),
    "GRU (after)": pg.GRU(3, 4, reset="after", seed=0),
    "GRU (before)": pg.GRU(3, 4, reset="before", seed=0),
    "MGU (after)": pg.MGU(3, 4, reset="after", seed=0),
    "MGU (before)": pg.MGU(3, 4, reset="before", seed=0),
    "LSTM": pg.LSTM(3, 4, seed=0),
    "LSTM (peephole)": pg.LSTM(3, 4, peephole=True, seed=0),
    "CoupledLSTM": pg.CoupledLSTM(3, 4, seed=0),
    "CoupledLSTM (peephole)": pg.CoupledLSTM(3, 4, peephole=True, seed=0),
    "minGRU": pg.MinGRU(3, 4, seed=0),
    "minLSTM": pg.MinLSTM(3, 4, seed=0),
}

# Initial biases and peepholes are zero, and a zero parameter can hide a bug
# in its gradient: give every parameter a random value first.
rng = np.random.default_rng(0)
for cell in cells.values():
    cell.params = {k: rng.uniform(-0.5, 0.5, v.shape) for k, v in cell.params.items()}

errors = {name: pg.gradcheck(cell, T=5, B=3) for name, cell in cells.items()}
for name, err in errors.items():
    worst = max(err, key=err.get)
    print(f"{name:<22} largest relative error {err[worst]:.1e} (in {worst})")

# %%
# All errors are around 1e-9: the size of the finite-difference error itself
# (a step of 1e-6 leaves about 1e-10 of rounding in a loss of order 1, plus
# a truncation error of order :math:`\epsilon^2`). A wrong gradient shows up
# as an error many orders of magnitude larger. (minGRU and minLSTM have no
# :math:`U`: their gates read only :math:`x_t`.)

fig, ax = plt.subplots(figsize=(8, 4.5))
names = ["W", "U", "b", "x", "h0"]
width = 0.8 / len(errors)
colors = plt.cm.tab20(np.r_[0:20:2, 1:20:2])  # the ten dark colours, then the light ones
for k, (label, err) in enumerate(errors.items()):
    ax.bar(np.arange(len(names)) + k * width, [err.get(n, np.nan) for n in names], width,
           label=label, color=colors[k])
ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2, names)
ax.set_yscale("log")
ax.set_ylim(1e-13, 1e4)  # room for the legend above the bars
ax.axhline(1e-6, color="k", linestyle="--", linewidth=1)
ax.text(len(names) - 0.5, 2e-6, "pass below 1e-6", ha="right")
ax.set_ylabel("relative error vs finite differences")
ax.legend(fontsize=8, ncol=4, loc="upper center")
ax.set_title("Every backward pass agrees with finite differences")
fig.tight_layout()

# %%
# What a bug looks like
# ---------------------
#
# A classic mistake in a GRU's backward pass is to forget the direct path
# from :math:`h_{t-1}` to :math:`h_t`: the term :math:`z_t \odot \bar{h}_t`.
# We cannot break the compiled kernel from here, but we can break the NumPy
# reference, whose step functions are plain Python, and let ``gradcheck``
# find it.

from pyx_gru import reference


def forgetful_step_backward(dstate, cache, p, pins=None):
    dx, (dh_prev,), grads = reference.gru_after_step_backward(dstate, cache, p, pins)
    (dh,) = dstate
    _, _, z, _, _, _ = cache
    return dx, (dh_prev - dh * z,), grads  # drop the direct path


class ForgetfulGRU(reference.GRU):
    def _steps(self):
        return reference.gru_after_step_forward, forgetful_step_backward


buggy = ForgetfulGRU(3, 4, seed=0)
buggy.params = cells["GRU (after)"].params
bad = pg.gradcheck(buggy, T=5, B=3)
good = pg.gradcheck(reference.from_cell(cells["GRU (after)"]), T=5, B=3)
for name, value in bad.items():
    print(f"{name:<5} {value:.1e}")

fig, ax = plt.subplots(figsize=(7, 4))
names = list(good)
pos = np.arange(len(names))
ax.bar(pos - 0.2, [good[n] for n in names], 0.4, label="reference GRU")
ax.bar(pos + 0.2, [bad[n] for n in names], 0.4, color="C3", label="without the direct path")
ax.set_xticks(pos, names)
ax.set_yscale("log")
ax.set_ylim(1e-13, 1e4)  # the legend above the tallest bars
ax.axhline(1e-6, color="k", linestyle="--", linewidth=1)
ax.set_ylabel("relative error vs finite differences")
ax.set_title("One missing term, every gradient wrong")
ax.legend(loc="upper center", ncol=2)
fig.tight_layout()

# %%
# Every array now has a relative error between 0.1 and 1, some eight orders
# of magnitude above a correct gradient's: there is no mistaking a real bug
# for rounding. The missing term sits in the recursion of the backward pass,
# so the error reaches every earlier step and, from there, every gradient,
# even those of weights that the dropped term never touches directly.
plt.show()
