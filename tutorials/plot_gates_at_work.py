"""
Gates at work: the update and reset gates on the embedded Reber grammar
=======================================================================

The GRU's two gates have simple jobs on paper (:doc:`../theory/gru`): the
update gate :math:`z_t` decides how much of the old state to keep, the reset
gate :math:`r_t` how much of it the candidate may see. This tutorial trains
a small GRU on a task whose start must be remembered until its end, then
reads both gates out of the forward pass's cache, step by step and unit by
unit, to see them do those jobs.
"""

# %%
# A task where the start decides the end
# --------------------------------------
#
# A string of the embedded Reber grammar (``tasks.reber``; Hochreiter and
# Schmidhuber's experiment 1) starts with B, then T or P, then a whole
# string of the inner Reber grammar, then **the same** T or P again, then
# E: for example ``BTBPVVETE`` or ``BPBTSXSEPE``. The model reads one symbol
# per step and predicts the next. Most of the inner string can be predicted
# from the grammar's current state; the second-to-last symbol only from the
# second one, read up to thirty steps earlier. Three reference losses, in
# nats per predicted symbol, say how much memory a model has:
#
# * seeing only the current symbol: ``task.baseline``;
# * knowing the inner grammar's state but not the second symbol
#   (``info["baseline_short_memory"]``): a coin flip at the end of every
#   string;
# * knowing everything (``info["baseline_perfect"]``): the grammar's own
#   coin flips, :math:`\ln 2` at each of them, and nothing else.
#
# Train a GRU (reset after the product, the default) with 16 units on 2,400
# strings: Adam, learning rate 0.01, batches of 32 strings of similar length
# (``bucket=True``), the gradient clipped at norm 1, 30 epochs.
import matplotlib.pyplot as plt
import numpy as np

import pyx_gru as pg
from pyx_gru import tasks

task = tasks.reber(3000, seed=0)
train, valid, test = task.split((0.8, 0.1, 0.1), seed=0)
symbols = task.info["symbols"]                      # "BTPSXVE", the one-hot order
H = 16
model = pg.Model(len(symbols), H, len(symbols), cell="gru", readout="every", seed=0)
history = pg.fit(model, train, valid=valid, lr=0.01, epochs=30, batch_size=32, clip=1.0,
                 bucket=True, seed=0, verbose=0)
references = {"current symbol only": test.baseline,
              "forgets the second symbol": test.info["baseline_short_memory"],
              "perfect": test.info["baseline_perfect"]}
print(f"test loss {pg.evaluate(model, test)['loss']:.4f} nats per symbol; "
      + ", ".join(f"{k}: {v:.4f}" for k, v in references.items()))

# The second-to-last symbol of every test string: does the model know it?
N, L, rows = test.N, test.lengths, np.arange(test.N)
strings = test.info["rows"]["string"]
probs = pg.predict(model, test)                     # (T, N, 7) probabilities
target = test.y[L - 2, rows]                        # T or P, predicted at step L - 1
print(f"second-to-last symbol: mean probability given to the right one "
      f"{probs[L - 2, rows, target].mean():.3f}, "
      f"right in {np.mean(probs[L - 2, rows].argmax(axis=1) == target):.1%} of the strings")

fig, ax = plt.subplots(figsize=(7, 3.8))
ax.plot(history.epoch, history.valid_loss, "o-", color="C3", markersize=3, label="GRU, validation")
for (name, value), style in zip(references.items(), [":", "--", "-"], strict=True):
    ax.axhline(value, color="k", linestyle=style, linewidth=1, label=name)
ax.set_yscale("log")
ax.set_xlabel("epoch")
ax.set_ylabel("loss, nats per symbol")
ax.set_title("Embedded Reber grammar")
ax.legend()
fig.tight_layout()

# %%
# The GRU passes the short-memory line within a few epochs and ends close
# to the perfect one: it carries the second symbol to the end of the string.
#
# Both gates, step by step
# ------------------------
#
# The compiled forward pass keeps every gate activation in its cache:
# ``cache.gates`` is (T, B, 3H), with :math:`z` in columns ``0:H`` and
# :math:`r` in ``H:2H`` (the order of ``cell.gates``). Below, two test
# strings of the same inner string length, one with T and one with P, each
# unit a row, each step a column labelled with the symbol read.
cell = model.cells[0]
print(cell.gates)
_, _, cache = cell.forward(test.x, lengths=L)
z = cache.gates[:, :, :H]                           # (T, N, H)
r = cache.gates[:, :, H:2 * H]
h = cache.hs[1:]                                    # h_t after reading symbol t

# The unit that best tells T-strings from P-strings inside the inner string
# (the states after the fourth symbol up to the inner string's closing E,
# not included): the model's memory.
second = np.array([s[1] for s in strings])
inner = (np.arange(h.shape[0])[:, None] >= 3) & (np.arange(h.shape[0])[:, None] < L - 2)
gap = np.abs(h[inner & (second == "T")].mean(axis=0) - h[inner & (second == "P")].mean(axis=0))
memory = int(np.argmax(gap))
others = [j for j in np.argsort(z[inner].mean(axis=0))[::-1] if j != memory]
order = [memory] + others                           # memory unit on top, then by mean z
print(f"memory unit: {memory}; |mean h (T strings) - mean h (P strings)| inside the "
      f"string, by unit: {np.round(gap, 2)}")

# two strings that differ in their second symbol and have the same length
# (about 13 steps: long enough to show the memory, short enough to read)
n = min(set(L[second == "T"]) & set(L[second == "P"]), key=lambda n: abs(n - 13))
b_T = np.flatnonzero((second == "T") & (L == n))[0]
b_P = np.flatnonzero((second == "P") & (L == n))[0]
fig, axes = plt.subplots(2, 2, figsize=(9, 7), sharey=True, layout="constrained")
for col, b in enumerate((b_T, b_P)):
    read = strings[b][:L[b]]                        # the symbols read at steps 1 .. L
    for row, (gate, name) in enumerate(((z, "z"), (r, "r"))):
        ax = axes[row, col]
        im = ax.imshow(gate[:L[b], b, order].T, aspect="auto", cmap="viridis", vmin=0, vmax=1)
        ax.set_xticks(range(L[b]), list(read))
        ax.set_yticks([0], ["memory"])
        ax.set_title(f"${name}_t$ while reading {strings[b]}")
        ax.axhline(0.5, color="w", linewidth=1)
for ax in axes[:, 0]:
    ax.set_ylabel("other units, by mean $z$")
axes[1, 0].set_xlabel("symbol read at step t")
axes[1, 1].set_xlabel("symbol read at step t")
colorbar = fig.colorbar(im, ax=axes, fraction=0.04)
colorbar.set_label("gate activation")

# %%
# Read the top row of each :math:`z` map, the memory unit. After the first
# symbol, and for a few symbols, its update gate is low: the unit takes its
# candidate, which by then depends on whether the second symbol was T or P.
# Then the gate goes high and stays high through the inner string: the unit
# keeps what it wrote, whatever the grammar does in between. This is the
# book review of :doc:`../theory/gru` whose verdict comes in its first
# sentence: an update gate near 1 carries the verdict through pages of
# plot.
#
# Most other units have :math:`z` low: they follow the string as it
# goes, refreshing their state at every step. Several of them have
# :math:`r` low as well: their candidate is computed from the current
# symbol with the old state reset, a fresh reading of the present,
# which is the review whose verdict comes last.
#
# One unit, over every string
# ---------------------------
#
# The memory unit's state and gates in all test strings, aligned on the
# first symbol (left) and on the last (right), coloured by the second
# symbol:
fig, axes = plt.subplots(3, 2, figsize=(9, 8), sharey="row", sharex="col")
span = 8
for b in range(min(N, 120)):
    color = "C0" if second[b] == "T" else "C3"
    start = np.arange(1, span + 1)
    end = np.arange(-span + 1, 1)                   # steps counted back from the last
    for row, values in enumerate((h, z, r)):
        series = values[:L[b], b, memory]
        axes[row, 0].plot(start, series[:span], color=color, alpha=0.15, linewidth=1)
        axes[row, 1].plot(end, series[-span:], color=color, alpha=0.15, linewidth=1)
for row, name in enumerate(("$h_t$", "$z_t$", "$r_t$")):
    axes[row, 0].set_ylabel(f"{name}, memory unit")
axes[2, 0].set_xlabel("step t (symbol 2 is T or P)")
axes[2, 1].set_xlabel("steps before the end (0: E is read)")
axes[0, 0].plot([], [], color="C0", label="strings B T ...")
axes[0, 0].plot([], [], color="C3", label="strings B P ...")
axes[0, 0].legend(fontsize=9)
axes[0, 0].set_title("from the start")
axes[0, 1].set_title("to the end")
fig.tight_layout()
for t in range(1, 6):
    print(f"step {t}: memory unit's mean h, T strings {h[t - 1, second == 'T', memory].mean():+.2f}, "
          f"P strings {h[t - 1, second == 'P', memory].mean():+.2f}; mean z {z[t - 1, :, memory].mean():.2f}")
print(f"inside the inner string: mean z {z[inner][:, memory].mean():.2f}, "
      f"mean r {r[inner][:, memory].mean():.2f}")

# %%
# The second symbol is read at step 2, but the two colours part a step or
# two later: other units take the symbol in first, and it reaches the memory
# unit through its candidate, which sees the old state, while the unit's
# update gate is still low. From then on :math:`z` is mostly close to 1 and
# the two groups stay apart, with the state hardly moving, to the end of the
# string, where the model reads this unit to predict T or P a second time.
# (Training found this arrangement on its own; with another seed the memory
# may sit in another unit, or be shared by two.)
#
# Over the whole test set
# -----------------------
#
# ``diagnostics.gate_statistics(cache)`` summarises each gate at every step
# over the units and the strings still running: the mean activation, and
# the fraction *saturated*, close enough to 0 or 1 that the gate's slope is
# below a fifth of its maximum (a sigmoid below 0.05 or above 0.95, the
# candidate's tanh beyond ±0.95), where it passes little gradient to its own
# weights.
stats = pg.diagnostics.gate_statistics(cache)
steps = np.arange(1, 21)
fig, axes = plt.subplot_mosaic([["mean", "units"], ["saturated", "units"]], figsize=(9, 6))
ax1, ax2, ax3 = axes["mean"], axes["saturated"], axes["units"]
for name, color in zip(cell.gates, ("C0", "C1", "C2"), strict=True):
    ax1.plot(steps, stats[name]["mean"][:20], "o-", markersize=3, color=color, label=name)
    ax2.plot(steps, stats[name]["saturated"][:20], "o-", markersize=3, color=color, label=name)
ax1.set_title("mean activation")
ax2.set_title("fraction saturated")
ax2.set_xlabel("step t")
ax1.legend(fontsize=9, ncol=3)

# and per unit, inside the inner strings: which units keep, which reset
mean_z, mean_r = z[inner].mean(axis=0), r[inner].mean(axis=0)
ax3.scatter(mean_r, mean_z, c=gap, cmap="magma_r", edgecolor="k", vmin=0)
ax3.annotate("memory", (mean_r[memory], mean_z[memory]), xytext=(5, 5),
             textcoords="offset points")
ax3.set_xlim(0, 1)
ax3.set_ylim(0, 1)
ax3.set_xlabel("mean $r$ inside the string")
ax3.set_ylabel("mean $z$ inside the string")
ax3.set_aspect("equal")
ax3.set_title("one dot per unit (dark: T/P memory)")
fig.tight_layout()
for name in cell.gates:
    print(f"{name}: mean {np.nanmean(stats[name]['mean']):.2f}, "
          f"saturated {np.nanmean(stats[name]['saturated']):.0%} of unit-steps (averaged over steps)")

# %%
# Averaged over units, the gates look unremarkable: :math:`z` mostly low
# and :math:`r` in the middle. The work is done by a few units at a few
# moments, and by gates that are often saturated: a trained gate is close
# to a switch much of the time. Per unit, inside the strings, the memory
# unit is the one with :math:`z` high; units with both gates low take a
# fresh reading of each symbol; units with :math:`r` high and :math:`z` low
# combine the symbol with the old state, which is what tracking the inner
# grammar's state needs.
#
# The gradient that trained this memory travelled back from the
# second-to-last symbol to the second through the same path: the
# :math:`\operatorname{diag}(z_t)` term of the Jacobian, close to the
# identity where :math:`z_t` is close to 1
# (:ref:`sphx_glr_auto_tutorials_plot_gradient_flow.py`).
plt.show()
