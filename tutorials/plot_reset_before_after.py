"""
Reset before versus after the product
=====================================

The GRU's reset gate can act on the old state *before* it is multiplied by the
recurrent weights (:ref:`Cho et al. 2014 <ref-cho2014>`, Keras with
``reset_after=False``), or on the product *after* it (cuDNN, PyTorch, Flax,
Keras' default). pyx_gru has both: ``pg.GRU(reset="before")`` and
``pg.GRU(reset="after")``. This tutorial runs the two on the same weights,
finds exactly when they agree, and shows why only the second lets one matrix
product per step serve all three gates.
"""

# %%
# The two forms
# -------------
#
# Both forms share the gates and the update,
#
# .. math::
#
#    z_t &= \sigma(x_t W_z + h_{t-1} U_z + b_z), \\
#    r_t &= \sigma(x_t W_r + h_{t-1} U_r + b_r), \\
#    h_t &= z_t \odot h_{t-1} + (1 - z_t) \odot g_t,
#
# and differ only in the candidate:
#
# .. math::
#
#    g_t^{\text{after}} &= \tanh\big(x_t W_g + b_g \\
#                       &\qquad + r_t \odot (h_{t-1} U_g + b_{hg})\big), \\
#    g_t^{\text{before}} &= \tanh\big(x_t W_g + b_g \\
#                        &\qquad + (r_t \odot h_{t-1})\, U_g\big).
#
# Give both cells the same :math:`W`, :math:`U` and :math:`b`, and the
# after-form's extra bias :math:`b_{hg}` the value 0, so that the only
# difference left is where :math:`r_t` acts.
import time

import matplotlib.pyplot as plt
import numpy as np
from threadpoolctl import threadpool_limits

import pyx_gru as pg

D, H, T = 3, 8, 80
rng = np.random.default_rng(1)
after = pg.GRU(D, H, reset="after", seed=0)
after.params = {k: rng.uniform(-0.8, 0.8, v.shape) for k, v in after.params.items()}
after.params["b_hg"][:] = 0.0
before = pg.GRU(D, H, reset="before", seed=0)
before.params = {k: v for k, v in after.params.items() if k != "b_hg"}

# One sequence (B = 1): a slow oscillation in three channels, plus noise.
t = np.arange(T)
x = np.stack([np.sin(t / 6), np.cos(t / 11), rng.normal(0, 0.5, T)], axis=1)[:, None, :]
h0 = rng.uniform(-0.5, 0.5, (1, H))

y_after, _, cache_after = after.forward(x, h0)
y_before, _, cache_before = before.forward(x, h0)
print(f"largest |h_after - h_before| over {T} steps: {np.abs(y_after - y_before).max():.3f}")

fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8, 6.5), sharex=True, layout="constrained")
for j, color in zip(range(3), ["C0", "C1", "C2"], strict=True):
    ax1.plot(y_after[:, 0, j], color=color, label=f"unit {j}, after")
    ax1.plot(y_before[:, 0, j], color=color, linestyle="--", label=f"unit {j}, before")
ax1.set_ylabel("$h_t$")
ax1.legend(fontsize=9, ncol=3, loc="lower center", bbox_to_anchor=(0.5, 1.0))
fig.suptitle("Same weights, same input, two GRUs")
ax2.semilogy(np.abs(y_after - y_before)[:, 0].max(axis=1) + 1e-17, color="k")
ax2.set_xlabel("step t")
ax2.set_ylabel("max over units of\n$|h_t^{after} - h_t^{before}|$")

# %%
# They start apart at the first step and stay apart: the same weights make
# two different cells. So weights trained in one form cannot be loaded into
# the other (which is why ``pyx_gru.interop`` refuses to turn a PyTorch GRU
# into ``GRU(reset="before")``).
#
# Where they differ
# -----------------
#
# Write the recurrent part of candidate unit :math:`j` in each form:
#
# .. math::
#
#    \text{after:}\quad & r_j \sum_i h_i\, (U_g)_{ij} \\
#    \text{before:}\quad & \sum_i r_i\, h_i\, (U_g)_{ij}.
#
# After the product, the reset gate of the *receiving* unit :math:`j` scales
# everything it hears. Before the product, the reset gate of each *sending*
# unit :math:`i` scales what that unit says to every candidate unit. The two
# are the same exactly when :math:`r` is the same number for every unit: a
# scalar commutes with the product. Pinning the gate
# (``forward(x, gates={"r": value})``) tests this: a uniform value, a
# different value per unit, and the learned gate.
settings = {"learned r": None}
for value in (0.0, 0.25, 0.5, 0.75, 1.0):
    settings[f"r = {value}"] = {"r": value}
settings["r per unit\n(mean 0.5)"] = {"r": np.linspace(0.05, 0.95, H)}

gaps = {}
for name, gates in settings.items():
    ya, _, _ = after.forward(x, h0, gates=gates)
    yb, _, _ = before.forward(x, h0, gates=gates)
    gaps[name] = np.abs(ya - yb).max()
    print(f"{name.replace(chr(10), ' '):<22} max |difference| = {gaps[name]:.1e}")

# %%
# With a uniform reset gate the two forms agree to rounding (about 1e-16
# in float64, the last bit of a sum taken in another order); with a
# per-unit gate, learned or pinned, they differ in the first decimals.
#
# The extra bias :math:`b_{hg}` of the after-form breaks the agreement
# again, except at :math:`r = 0`, where the candidate ignores the state and
# the bias alike. (``tests/test_properties.py`` checks both cases on random
# problems: ``test_gru_forms_agree_when_reset_is_pinned``.)
with_bias = after.copy()
with_bias.params["b_hg"][:] = rng.uniform(-0.8, 0.8, H)
gaps_bias = {}
for name, gates in settings.items():
    ya, _, _ = with_bias.forward(x, h0, gates=gates)
    yb, _, _ = before.forward(x, h0, gates=gates)
    gaps_bias[name] = np.abs(ya - yb).max()

fig, ax = plt.subplots(figsize=(8, 4.5))
pos = np.arange(len(settings))
floor = 1e-18  # the bottom of the log scale
for offset, values, label, color in ((-0.2, gaps, "$b_{hg} = 0$", "C0"),
                                     (0.2, gaps_bias, "$b_{hg} \\neq 0$", "C1")):
    heights = np.array([values[n] for n in settings])
    ax.bar(pos + offset, heights, 0.4, bottom=floor, label=label, color=color)
    # an exact 0 has no bar on a log scale: write it
    for at in (pos + offset)[heights == 0]:
        ax.annotate("0", (at, floor), xytext=(0, 2), textcoords="offset points", ha="center",
                    va="bottom", color=color, fontweight="bold")
ax.set_xticks(pos, list(settings))
ax.set_yscale("log")
ax.set_ylim(floor, 1e5)
ax.axhline(1e-12, color="k", linestyle=":", linewidth=1)
ax.text(1.01, 1e-12, "rounding", va="center", transform=ax.get_yaxis_transform())
ax.set_ylabel("max $|h^{after} - h^{before}|$")
ax.set_title("The two forms agree only when every unit has the same reset value")
ax.legend(loc="upper center", ncol=2)
fig.tight_layout()

# %%
# One product per step, or two
# ----------------------------
#
# Each step of a GRU needs :math:`h_{t-1}` multiplied by the recurrent
# weights of all three gates. In the after-form nothing has to be known
# before that product, so it is one matrix product,
# :math:`h_{t-1} [U_z, U_r, U_g]`, of shape :math:`(B, H) \times (H, 3H)`,
# followed by pointwise work. In the before-form the candidate's product
# needs :math:`r_t \odot h_{t-1}`, and :math:`r_t` needs the first product:
# the step is product, sigmoid, second product, tanh, one after the other.
# The NumPy reference shows it in its lines:
#
# .. code-block:: python
#
#    # after: one product for every gate (in gru_after_step_forward)
#    ah_z, ah_r, ah_g = _gate_blocks(h_prev @ p["U"], 3)
#
#    # before: r first, then a second product (in gru_before_step_forward)
#    r = gate(ax_r + h_prev @ U_r, "r", pins)
#    g = np.tanh(ax_g + (r * h_prev) @ U_g)
#
# The backward pass mirrors it: one product :math:`\bar{a}_t U^\top` per step
# after, two before (:math:`\bar{a}_{g,t} U_g^\top` and then the gates'
# share). On a GPU each product is a kernel launch and the fused one is a
# single large one, which is why cuDNN chose the after-form. On a CPU the two
# products do the same arithmetic as the fused one, and calling BLAS from
# compiled code costs about a tenth of a microsecond, so the difference is
# small. Timing both here, forward and backward at a batch of 1, in
# interleaved rounds (so that a burst of load on the machine hits both
# alike), keeping each form's fastest round, with one BLAS thread (at a
# batch of 1 the products are too small for a second thread to help, and on
# a busy machine it only adds waiting):


def fwd_bwd(cell, x):
    dy = np.ones((x.shape[0], x.shape[1], cell.hidden_size), dtype=cell.dtype)

    def run():
        _, _, cache = cell.forward(x)
        cell.backward(cache, dy)
    return run


def fastest_ms(runners, rounds=25):
    best = {name: np.inf for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            t0 = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - t0)
    return {name: 1e3 * v for name, v in best.items()}


xs = rng.standard_normal((200, 1, 32)).astype(np.float32)
sizes = [16, 64, 256]
ms = {"after": [], "before": []}
for H_ in sizes:
    runners = {form: fwd_bwd(pg.GRU(32, H_, reset=form, dtype=np.float32, seed=0), xs)
               for form in ms}
    with threadpool_limits(limits=1):
        fastest = fastest_ms(runners)
    for form, value in fastest.items():
        ms[form].append(value)
    print(f"H = {H_:>3}: after {ms['after'][-1]:.3f} ms, before {ms['before'][-1]:.3f} ms "
          f"(T = 200, B = 1, float32)")

fig, ax = plt.subplots(figsize=(6, 3.5))
pos = np.arange(len(sizes))
ax.bar(pos - 0.2, ms["after"], 0.4, label='reset="after"')
ax.bar(pos + 0.2, ms["before"], 0.4, label='reset="before"')
ax.set_xticks(pos, [f"H = {s}" for s in sizes])
ax.set_yscale("log")
ax.set_ylabel("forward + backward, ms")
ax.set_title("T = 200, B = 1: measured while this page was built")
ax.legend()
fig.tight_layout()

# %%
# The two forms come out close. Timings from one run on a shared machine
# are noisy; the benchmark in :doc:`../performance`, with many more rounds
# and sizes, also finds the two forms within a few percent of each other.
# (The README's table shows one exception, 0.198 against 0.131 ms for the
# forward and backward at (1, 32, 32); it did not repeat: that case run
# again on its own gave 0.123 and 0.124 ms.) The choice between the forms is
# therefore about the model (and about compatibility with the weights you
# have) more than about speed on a CPU.
plt.show()
