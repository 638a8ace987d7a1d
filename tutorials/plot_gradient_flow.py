"""
Gradient flow: vanishing, exploding, and what the gates change
==============================================================

A loss on the last step of a sequence reaches an early state only through
the chain of the steps' Jacobians. This tutorial measures that gradient in
every cell, exactly, with ``pyx_gru.diagnostics``: how it fades with distance
at initialisation (including a surprise about the GRU), how the scale of the
vanilla RNN's recurrent matrix decides between vanishing and exploding, and
how a matrix whose eigenvalues are all below 1 can still amplify it.
"""

# %%
# What is measured
# ----------------
#
# For a loss :math:`L` of the final state :math:`h_T`, the gradient at an
# earlier state is (:ref:`bptt`)
#
# .. math::
#
#    \bar{h}_t &= \frac{\partial L}{\partial h_t}
#              = \bar{h}_T \, J_T J_{T-1} \cdots J_{t+1}, \\
#    J_s &= \frac{\partial h_s}{\partial h_{s-1}} ,
#
# a product of :math:`T - t` Jacobians. ``diagnostics.gradient_norms(cell,
# x, dstate)`` returns :math:`\lVert \bar{h}_t \rVert` for every
# :math:`t`, given :math:`\bar{h}_T` (``dstate``); the values are exact, from
# the compiled backward pass (the module's docstring says how), not
# estimates. Here :math:`\bar{h}_T` is a random unit vector, so the curve is
# the factor by which the gradient has grown or shrunk on its way back.
#
# The inputs are eight sequences of the adding problem (``tasks.adding``):
# a number in :math:`[0, 1)` and a marker channel at each of
# :math:`T = 100` steps. Every cell has :math:`H = 64` units and pyx_gru's
# default initialisation: Glorot-uniform input weights, orthogonal recurrent
# blocks, zero biases except the LSTM's forget gate (1).
import matplotlib.pyplot as plt
import numpy as np

import pyx_gru as pg
from pyx_gru import tasks
from pyx_gru.diagnostics import gradient_norms, singular_values, state_jacobians

T, B, D, H = 100, 8, 2, 64
x = tasks.adding(B, length=T, seed=0).x                  # (T, B, 2)
rng = np.random.default_rng(0)
dstate = rng.standard_normal((B, H))
dstate /= np.linalg.norm(dstate, axis=1, keepdims=True)  # |dL/dh_T| = 1
distance = T - np.arange(T + 1)                           # of h_t from the loss


def typical(norms):
    """The geometric mean over the batch, (T + 1, B) -> (T + 1,)."""
    return np.exp(np.log(norms).mean(axis=1))


cells = {
    "RNN": pg.RNN(D, H, seed=0),
    "SimpleGRU": pg.SimpleGRU(D, H, seed=0),
    'GRU reset="after"': pg.GRU(D, H, reset="after", seed=0),
    'GRU reset="before"': pg.GRU(D, H, reset="before", seed=0),
    "LSTM": pg.LSTM(D, H, seed=0),
    "LSTM, peepholes": pg.LSTM(D, H, peephole=True, seed=0),
}
norms = {name: typical(gradient_norms(cell, x, dstate)) for name, cell in cells.items()}
for name, n in norms.items():
    print(f"{name:<20} |dL/dh_t| at distance 10: {n[T - 10]:.1e}, 50: {n[T - 50]:.1e}, "
          f"100: {n[0]:.1e}")

fig, ax = plt.subplots(figsize=(8, 4.5))
styles = ["-", "-", "-", (0, (4, 3)), "-", (0, (4, 3))]
for (name, n), style, color in zip(norms.items(), styles, ["C0", "C1", "C3", "k", "C2", "C4"], strict=True):
    ax.semilogy(distance, n, linestyle=style, color=color, label=name)
ax.set_xlabel("distance from the loss, T − t")
ax.set_ylabel(r"$\|\partial L / \partial h_t\|$")
ax.set_title("Every cell at initialisation (H = 64, adding-problem inputs)")
ax.legend()
fig.tight_layout()

# %%
# After the first few steps every curve is close to a straight line on this
# scale: the gradient shrinks by a roughly constant factor per step. The
# simplified GRU keeps the most over 100 steps. The LSTM loses a factor of
# ten in its first steps back (from :math:`h_T` the gradient reaches the
# cell state through the output gate, :math:`o_T \approx 1/2`, and the
# tanh) and then fades about as slowly as the simplified GRU. (The curve is
# :math:`\partial L / \partial h_t` with :math:`c_t` held fixed; see
# ``diagnostics``.) The vanilla RNN's orthogonal :math:`U` has every
# singular value 1, so it loses only what the tanh's slopes take. The
# peepholes start at zero, so at initialisation the two LSTMs coincide.
#
# The GRU is the surprise: both forms lose the gradient fastest of all, by
# a factor of about 0.74 per step, :math:`10^{-13}` over 100 steps, far more
# than the vanilla RNN it is meant to improve on. More on that below.
#
# Is the LSTM's slow fade its cell state, the path through no matrix? Not
# yet. With :math:`U = 0` that path is all that is left, and it multiplies
# the gradient by the forget gate at every step, :math:`\sigma(1) \approx
# 0.73` at initialisation:
lstm_c_only = cells["LSTM"].copy()
lstm_c_only.params["U"][:] = 0.0
_, dc_only = pg.diagnostics.state_gradients(lstm_c_only, x, dstate)
_, dc_full = pg.diagnostics.state_gradients(cells["LSTM"], x, dstate)
# dc[t] for t = 0 .. T - 1: dc[T] = dL/dc_T is 0, since the loss reads h_T only
full, only = (typical(np.linalg.norm(dc[:T], axis=-1)) for dc in (dc_full, dc_only))
print(f"LSTM |dL/dc_0|: {full[0]:.1e} with U, {only[0]:.1e} with U = 0, where the factor "
      f"per step (from c_(T-1) back to c_0) is {(only[0] / only[T - 1]) ** (1 / (T - 1)):.2f}")

# %%
# The cell state alone loses the gradient at the forget gate's rate; the
# paths through :math:`U` keep it, as in the other cells. The carousel pays
# off once training pushes :math:`f_t` towards 1 (:doc:`../theory/lstm`).
#
# Why the GRU starts worse than the simplified GRU
# ------------------------------------------------
#
# With zero biases every gate starts near :math:`\sigma(0) = 1/2`. Near
# :math:`h = 0`, where the tanh is nearly linear, the GRU's Jacobian
# (:doc:`../theory/gru`) is then about
#
# .. math::
#
#    J_t \approx \tfrac12 I + \tfrac12 \cdot \tfrac12\, U_g^\top ,
#
# the direct path :math:`z_t = 1/2` plus the candidate's path, which the
# update gate halves (:math:`1 - z_t`) and the reset gate halves again
# (:math:`r_t`); the paths through :math:`U_z` and :math:`U_r` carry the
# factors :math:`h_{t-1} - g_t` and :math:`n_t`, which vanish there. :math:`U_g` is orthogonal, with eigenvalues
# :math:`e^{i\theta}` on the unit circle, so :math:`J_t` has eigenvalues
# :math:`\tfrac12 + \tfrac14 e^{i\theta}`, of modulus at most
# :math:`3/4`: the gradient shrinks by about :math:`3/4` per step, and
# :math:`0.75^{100} \approx 3 \cdot 10^{-13}`. The simplified GRU has no
# reset gate: its Jacobian is about :math:`\tfrac12 I + \tfrac12 U_g^\top`,
# with eigenvalues up to modulus 1, and the gradient along those directions
# survives. Pinning the GRU's reset gate open (``gates={"r": 1.0}``) removes
# the second halving and should give the simplified GRU's behaviour back:
gru = cells['GRU reset="after"']
open_reset = typical(gradient_norms(gru, x, dstate, gates={"r": 1.0}))
closed = norms['GRU reset="after"']
print(f"GRU: factor per step {closed[0] ** (1 / T):.3f} (predicted: at most 0.75); "
      f"|dL/dh_0| = {closed[0]:.1e}, with r pinned to 1: {open_reset[0]:.1e} "
      f"(SimpleGRU: {norms['SimpleGRU'][0]:.1e})")

# %%
# The fix: start the update gate near 1
# -------------------------------------
#
# The update gate decides how much of the old state, and of its gradient,
# passes straight through. A positive bias :math:`b_z` starts it closer to
# 1, :math:`z \approx \sigma(b_z)`, and the Jacobian closer to the identity.
# pyx_gru does not do this by default (its biases start at zero, as in
# Keras and Flax, except the LSTM's forget-gate bias of 1, the same idea
# for the LSTM, recommended by Jozefowicz, Zaremba and Sutskever, 2015). To
# try it, set the bias by hand: :math:`z` is the first gate block of
# ``cell.params["b"]``, columns ``0:H``.
biased = {}
for b_z in (0.0, 1.0, 2.0, 3.0):
    cell = pg.GRU(D, H, reset="after", seed=0)
    cell.params["b"][:H] = b_z                 # the update gate's bias
    biased[b_z] = typical(gradient_norms(cell, x, dstate))
    print(f"b_z = {b_z}: z starts near {1 / (1 + np.exp(-b_z)):.2f}, "
          f"|dL/dh_0| = {biased[b_z][0]:.1e}")

fig, ax = plt.subplots(figsize=(8, 4))
for k, (b_z, n) in enumerate(biased.items()):
    ax.semilogy(distance, n, color=plt.cm.viridis(k / 3),
                label=rf"GRU, $b_z = {b_z:g}$ ($z \approx {1 / (1 + np.exp(-b_z)):.2f}$)")
ax.semilogy(distance, open_reset, color="C3", linestyle=":", label=r"GRU, $r$ pinned to 1")
ax.semilogy(distance, norms["RNN"], color="C0", linestyle="--", label="RNN")
ax.semilogy(distance, norms["LSTM"], color="C2", linestyle="--", label="LSTM")
ax.set_xlabel("distance from the loss, T − t")
ax.set_ylabel(r"$\|\partial L / \partial h_t\|$")
ax.set_title("The GRU's update-gate bias at initialisation")
ax.legend()
fig.tight_layout()

# %%
# A bias of 2 lifts the GRU above the vanilla RNN, and 3 above the LSTM. This
# is about the starting point only: training moves the gates. Train a GRU
# with the default bias, one with :math:`b_z = 2`, and a vanilla RNN, for
# eight epochs on the adding problem at :math:`T = 100` (32 units each),
# and measure the gradient of the trained models' own loss
# (``diagnostics.model_state_gradients``) before and after.
task = tasks.adding(2000, length=T, seed=1)
train, valid, test = task.split((0.8, 0.1, 0.1), seed=0)
probe_x, probe_y = test.x[:, :B], test.y[:B]
runs = {}
for name, cell, b_z in (("GRU, b_z = 0", "gru", 0.0), ("GRU, b_z = 2", "gru", 2.0),
                        ("RNN", "rnn", 0.0)):
    model = pg.Model(D, 32, 1, cell=cell, seed=0)
    if b_z:
        model.cells[0].params["b"][:32] = b_z
    before = typical(np.linalg.norm(pg.diagnostics.model_state_gradients(model, probe_x, probe_y), axis=-1))
    history = pg.fit(model, train, valid=valid, lr=0.01, epochs=8, batch_size=50, clip=1.0,
                     seed=0, verbose=0)
    after = typical(np.linalg.norm(pg.diagnostics.model_state_gradients(model, probe_x, probe_y), axis=-1))
    runs[name] = (before / before[-1], after / after[-1], history)
    print(f"{name:<13} validation MSE by epoch: "
          + " ".join(f"{v:.3f}" for v in history.valid_loss)
          + f"; |dL/dh_0| / |dL/dh_T|: {runs[name][0][0]:.0e} before, {runs[name][1][0]:.0e} after")

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 4.2))
for (name, (before, after, history)), color in zip(runs.items(), ["C3", "C1", "C0"], strict=True):
    ax1.semilogy(distance, before, color=color, linestyle="--")
    ax1.semilogy(distance, after, color=color, label=name)
    ax2.plot(history.epoch, history.valid_loss, "o-", color=color, label=name)
ax1.plot([], [], color="k", linestyle="--", label="at initialisation")
ax1.plot([], [], color="k", label="after 8 epochs")
ax1.set_xlabel("distance from the loss, T − t")
ax1.set_ylabel(r"$\|\partial L / \partial h_t\| \;/\; \|\partial L / \partial h_T\|$")
ax1.legend(fontsize=9)
ax2.axhline(task.baseline, color="k", linestyle=":", linewidth=1)
ax2.set_yscale("log")
ax2.set_xlabel("epoch")
ax2.set_ylabel("validation MSE (dotted: baseline 1/6)")
ax2.legend(fontsize=9)
fig.suptitle("Adding problem, T = 100: the gradient of the models' own loss")
fig.tight_layout()

# %%
# Both GRUs learn the task, the biased one an epoch or two sooner, and once
# they do, their gradient reaches the start of the sequence: the update
# gates have learned to stay near 1 between the marked steps. The vanilla
# RNN never leaves the baseline, and its gradient over 100 steps shrinks
# further as it trains. The default GRU's poor start cost it an epoch or
# two here; the bias is one line, but not pyx_gru's default, so a model
# that should start with long memory has to ask for it.
#
# The vanilla RNN: the largest singular value sets the rate
# ---------------------------------------------------------
#
# For the vanilla RNN, :math:`J_t = \operatorname{diag}(1 - g_t^2)\, U^\top`
# and :math:`\lVert J_t \rVert_2 \le \sigma_{\max}(U)`
# (:doc:`../theory/rnn`): over :math:`k` steps the gradient can grow at most
# like :math:`\sigma_{\max}(U)^k`. Scale the orthogonal initial :math:`U`
# by :math:`\alpha`: every singular value becomes :math:`\alpha`. With zero
# input the state stays at 0, where the tanh's slope is exactly 1, and the
# bound is reached: the gradient is exactly :math:`\alpha^{k}`, vanishing
# for :math:`\alpha < 1` and exploding for :math:`\alpha > 1`. With the
# task's inputs the tanh's slopes are below 1, and the rate falls below the
# bound.
rnn = pg.RNN(D, H, seed=0)
Q = rnn.params["U"].copy()
quiet = np.zeros_like(x)
alphas = np.round(np.arange(0.5, 1.51, 0.05), 2)
shown = (0.8, 0.9, 1.0, 1.1, 1.2)
rates = {"zero input": [], "adding-problem input": []}
curves = {}
for alpha in alphas:
    rnn.params["U"][:] = alpha * Q
    for label, inputs in (("zero input", quiet), ("adding-problem input", x)):
        n = typical(gradient_norms(rnn, inputs, dstate))
        rates[label].append(n[0] ** (1 / T))   # the mean factor per step
        if alpha in shown:
            curves[label, alpha] = n

fig, axes = plt.subplot_mosaic([["zero", "adding"], ["rate", "rate"]], figsize=(8, 8),
                              height_ratios=[1, 1.1])
ax1, ax2, ax3 = axes["zero"], axes["adding"], axes["rate"]
for k, alpha in enumerate(shown):
    color = plt.cm.coolwarm(k / (len(shown) - 1))
    ax1.semilogy(distance, curves["zero input", alpha], color=color, label=rf"$\alpha = {alpha}$")
    ax1.semilogy(distance, alpha ** distance, color="k", linestyle=":", linewidth=1)
    ax2.semilogy(distance, curves["adding-problem input", alpha], color=color)
ax1.set_title(r"zero input (dotted: $\alpha^{T-t}$)")
ax2.set_title("adding-problem input")
for ax in (ax1, ax2):
    ax.set_xlabel("distance from the loss, T − t")
ax1.set_ylabel(r"$\|\partial L / \partial h_t\|$")
ax1.legend(fontsize=9)
ax3.plot(alphas, rates["zero input"], "o", color="C0", label="zero input")
ax3.plot(alphas, rates["adding-problem input"], "s", color="C1", label="adding-problem input")
ax3.plot(alphas, alphas, color="k", linewidth=1, label=r"bound $\sigma_{\max}(U) = \alpha$")
ax3.axhline(1, color="0.6", linestyle=":", linewidth=1)
ax3.set_xlabel(r"$\sigma_{\max}(U) = \alpha$")
ax3.set_ylabel(r"factor per step, $\|\partial L/\partial h_0\|^{1/T}$")
ax3.set_title("measured rate against the bound")
ax3.legend()
fig.suptitle(r"Vanilla RNN with $U = \alpha Q$, $Q$ orthogonal")
fig.tight_layout()

# %%
# With zero input every measured rate lies on the line: the gradient is
# multiplied by :math:`\sigma_{\max}(U)` at every step. With real input the
# rate lies below it, and for :math:`\alpha` a little above 1 even below 1:
# the states grow until the tanh saturates, and the saturated slopes undo
# the growth. So :math:`\sigma_{\max}(U) < 1` is *sufficient* for vanishing,
# and :math:`\sigma_{\max}(U) > 1` only *necessary* for exploding (Pascanu,
# Mikolov and Bengio, 2013). With zero input and :math:`\alpha = 1.2`, the
# gradient over 100 steps is :math:`1.2^{100} \approx 8 \cdot 10^{7}`: the
# kind of step that gradient clipping (``fit(..., clip=1.0)``) exists for.
#
# A matrix that amplifies with every eigenvalue below 1
# -----------------------------------------------------
#
# The eigenvalues of :math:`U` decide what happens after many steps, but not
# before. Take a non-normal matrix (the behaviour Trefethen and Embree's
# *Spectra and Pseudospectra*, 2005, is about), written for column vectors
# (:math:`h_t = W \sigma(h_{t-1}) + \dots`) as in most papers:
#
# .. math::
#
#    W &= \begin{pmatrix} 0.9 & 3 \\ 0 & 0.9 \end{pmatrix}, \\
#    W^k &= \begin{pmatrix} 0.9^k & 3k \cdot 0.9^{k-1} \\ 0 & 0.9^k \end{pmatrix} .
#
# Both eigenvalues are 0.9, so :math:`W^k \to 0`; but the corner entry first
# grows like :math:`k`, and :math:`\lVert W^k \rVert_2` peaks above 10
# before the factor :math:`0.9^k` wins. :math:`W` is *non-normal*
# (:math:`W W^\top \neq W^\top W`): its singular values (3.25 and 0.25) are
# not the moduli of its eigenvalues. In our row convention the recurrent
# matrix is :math:`U = W^\top`. A two-unit RNN with that :math:`U`, zero
# input, and ``diagnostics.state_jacobians``, which returns the whole
# Jacobian :math:`\partial h_T / \partial h_t` at every :math:`t`, with its
# spectral norm from ``diagnostics.singular_values``; and for comparison the
# normal matrix :math:`0.9 I`, which has the same eigenvalues:
W = np.array([[0.9, 3.0], [0.0, 0.9]])
print("eigenvalues", np.linalg.eigvals(W), "singular values", np.linalg.svd(W, compute_uv=False).round(3))
T2 = 80
spectral = {}
for name, U in (("non-normal U = Wᵀ", W.T), ("normal U = 0.9 I", 0.9 * np.eye(2))):
    two = pg.RNN(1, 2, seed=0)
    two.params["U"][:] = U
    J = state_jacobians(two, np.zeros((T2, 1, 1)))      # (1, T2 + 1, 2, 2)
    spectral[name] = singular_values(J)[0, :, 0]        # |dh_T / dh_t|_2, by t
k = T2 - np.arange(T2 + 1)
peak = np.argmax(spectral["non-normal U = Wᵀ"])
amplified = k[spectral["non-normal U = Wᵀ"] > 1]
print(f"|dh_T/dh_t|_2 peaks at {spectral['non-normal U = Wᵀ'][peak]:.1f}, "
      f"{k[peak]} steps back (0.9^{k[peak]} = {0.9 ** k[peak]:.2f}), and is above 1 "
      f"from 1 to {amplified.max()} steps back")

fig, ax = plt.subplots(figsize=(8, 4))
ax.semilogy(k, spectral["non-normal U = Wᵀ"], color="C3", linewidth=2.5,
            label=r"$\|\partial h_T / \partial h_t\|_2$, non-normal $U = W^\top$")
ax.semilogy(k, spectral["normal U = 0.9 I"], color="C0", linewidth=2.5,
            label=r"$\|\partial h_T / \partial h_t\|_2$, normal $U = 0.9 I$")
ax.semilogy(k, [np.linalg.norm(np.linalg.matrix_power(W, j), 2) for j in k], "k:",
            label=r"$\|W^{T-t}\|_2$, by NumPy")
ax.semilogy(k, 0.9 ** k, color="0.5", linestyle="--", label=r"spectral radius$^{T-t} = 0.9^{T-t}$")
ax.axhline(1, color="0.6", linewidth=0.8)
ax.set_ylim(1e-4, 100)
ax.set_xlabel("distance from the loss, T − t")
ax.set_title("Same eigenvalues, different transients")
ax.legend(fontsize=9)
fig.tight_layout()

# %%
# With zero input the tanh's slopes are 1 and the RNN's Jacobian products
# are exactly :math:`W^{T-t}`: the measured curve lies on NumPy's. The
# gradient grows elevenfold over the first ten steps back, with a
# spectral radius of 0.9, and stays above 1 for about fifty steps. (The
# bound :math:`\sigma_{\max}^k = 3.25^k` holds, far above.) In a trained network
# the recurrent matrix is rarely normal, so eigenvalues alone do not tell
# whether a gradient will be amplified over the distances that matter;
# the singular values of the products, which ``state_jacobians`` and
# ``singular_values`` give for any cell, do.
#
# In short: the vanilla RNN's gradient is at the mercy of :math:`U` and the
# tanh's slopes, at every step. Each gated cell adds a path through a
# diagonal matrix (:math:`\operatorname{diag}(f_t)`,
# :math:`\operatorname{diag}(z_t)`, or the LSTM's cell state) that a gate
# can hold near the identity; where and when it does is what the gates
# learn (:ref:`sphx_glr_auto_tutorials_plot_gates_at_work.py`).
plt.show()
