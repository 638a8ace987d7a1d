"""
Loading a PyTorch GRU and checking equality
===========================================

``pyx_gru.interop.from_torch`` turns a ``torch.nn.GRU``, ``LSTM`` or ``RNN``
(or their ``*Cell`` classes) into a pyx_gru cell computing the same function,
and ``to_torch`` goes back. This tutorial loads a PyTorch GRU, shows how its
weights are rearranged, and checks that the two agree: outputs, final state,
and every gradient, against PyTorch's autograd. PyTorch is a test-only
dependency of pyx_gru (``torch==2.13.0``); nothing here needs a GPU.
"""

# %%
# Two layouts of the same weights
# -------------------------------
#
# PyTorch's GRU computes, for column vectors,
#
# .. math::
#
#    r &= \sigma(W_{ir} x + b_{ir} + W_{hr} h + b_{hr}), \\
#    z &= \sigma(W_{iz} x + b_{iz} + W_{hz} h + b_{hz}), \\
#    n &= \tanh\big(W_{in} x + b_{in} \\
#      &\qquad + r \odot (W_{hn} h + b_{hn})\big),
#
# and :math:`h' = (1 - z) \odot n + z \odot h`: the reset gate after the
# product, :math:`z = 1` keeping the past, exactly our ``GRU(reset="after")``.
# Three things differ. Its matrices are the transposes of ours (it computes
# :math:`W x`, we compute :math:`x W`). Its gate blocks come in the order
# r, z, n, ours in the order z, r, g. And it has two biases per gate, of
# which only the sum matters for r and z, while :math:`b_{hn}` sits inside
# the reset product: that one is our :math:`b_{hg}`.
import matplotlib.pyplot as plt
import numpy as np
import torch

import pyx_gru as pg

torch.manual_seed(0)
D, H, T, B = 4, 6, 30, 3
gru = torch.nn.GRU(input_size=D, hidden_size=H).double()   # time-major, like pyx_gru
cell = pg.interop.from_torch(gru)
print(cell)
for name, value in gru.state_dict().items():
    print(f"torch   {name:<14} {tuple(value.shape)}")
for name, value in cell.params.items():
    print(f"pyx_gru {name:<14} {value.shape}")

# %%
# The picture below shows the recurrent weights both ways: PyTorch's
# ``weight_hh_l0`` is :math:`3H \times H` with the blocks r, z, n stacked as
# rows; our :math:`U` is :math:`H \times 3H` with the blocks z, r, g side by
# side. Each block of one is the transpose of a block of the other.
w_hh = gru.weight_hh_l0.detach().numpy()
U = cell.params["U"]
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 4), gridspec_kw={"width_ratios": [1, 3]})
lim = np.abs(w_hh).max()
ax1.imshow(w_hh, cmap="RdBu", vmin=-lim, vmax=lim)
ax1.set_title("torch weight_hh_l0\n(3H, H)")
for k, gate in enumerate(["r", "z", "n"]):
    ax1.text(-1.2, k * H + H / 2 - 0.5, gate, ha="right", va="center")
    ax1.axhline(k * H - 0.5, color="k", linewidth=0.8)
ax2.imshow(U, cmap="RdBu", vmin=-lim, vmax=lim)
ax2.set_title("pyx_gru U\n(H, 3H)")
for k, gate in enumerate(cell.gates):
    ax2.text(k * H + H / 2 - 0.5, H + 0.3, gate, ha="center", va="top")
    ax2.axvline(k * H - 0.5, color="k", linewidth=0.8)
for ax in (ax1, ax2):
    ax.set_xticks([])
    ax.set_yticks([])
fig.tight_layout()

# %%
# The forward pass
# ----------------
#
# Same input, same initial state. PyTorch wants the initial state as
# ``(num_layers, B, H)`` and returns its final state that way.
rng = np.random.default_rng(0)
x = rng.standard_normal((T, B, D))
h0 = rng.uniform(-0.5, 0.5, (B, H))

with torch.no_grad():
    y_torch, h_torch = gru(torch.from_numpy(x), torch.from_numpy(h0)[None])
y, h, cache = cell.forward(x, h0)
print("max |y - y_torch| =", np.abs(y - y_torch.numpy()).max())
print("max |h - h_torch| =", np.abs(h - h_torch[0].numpy()).max())

fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8, 6), sharex=True, layout="constrained")
for j in range(3):
    ax1.plot(y[:, 0, j], color=f"C{j}", linewidth=3, alpha=0.4, label=f"pyx_gru, unit {j}")
    ax1.plot(y_torch.numpy()[:, 0, j], color=f"C{j}", linestyle=":", label=f"torch, unit {j}")
ax1.set_ylabel("$h_t$")
ax1.legend(fontsize=9, ncol=3, loc="lower center", bbox_to_anchor=(0.5, 1.0))
fig.suptitle("torch.nn.GRU and the pyx_gru GRU loaded from it (float64)")
ax2.semilogy(np.abs(y - y_torch.numpy()).max(axis=(1, 2)) + 1e-20, color="k")
ax2.set_ylabel("max $|y - y_{torch}|$")
ax2.set_xlabel("step t")

# %%
# The two agree to the last few bits of float64: the same arithmetic, summed
# in a different order.
#
# Every gradient
# --------------
#
# Give both the same upstream gradients, :math:`\partial L / \partial y`
# (``dy``) and :math:`\partial L / \partial h_T` (``dh``): PyTorch's
# ``autograd.backward`` and pyx_gru's ``backward`` then compute the gradients
# of the same loss. ``to_torch(cell, dparams, gradient=True)`` names and
# shapes ours like PyTorch's ``.grad`` fields. (Where PyTorch has two biases
# whose sum is all that matters, each of them gets the gradient of the sum.)


def compare(module, dtype):
    """Largest difference, relative to the largest entry, of each gradient."""
    module = module.to(dtype)
    cell = pg.interop.from_torch(module)
    lstm = isinstance(module, torch.nn.LSTM)
    rng = np.random.default_rng(1)
    H, D = module.hidden_size, module.input_size
    x = rng.standard_normal((T, B, D))
    state0 = [rng.uniform(-0.5, 0.5, (B, H)) for _ in range(2 if lstm else 1)]
    dy = rng.standard_normal((T, B, H))
    dstate = [rng.standard_normal((B, H)) for _ in state0]

    # PyTorch: autograd
    tx = torch.tensor(x, dtype=dtype, requires_grad=True)
    ts = [torch.tensor(s[None], dtype=dtype, requires_grad=True) for s in state0]
    module.zero_grad()
    ty, tstate = module(tx, tuple(ts) if lstm else ts[0])
    tstate = tstate if lstm else (tstate,)
    torch.autograd.backward([ty, *tstate], [torch.tensor(dy, dtype=dtype)]
                            + [torch.tensor(d[None], dtype=dtype) for d in dstate])

    # pyx_gru: forward and backward
    y, _, cache = cell.forward(x, tuple(state0) if lstm else state0[0])
    dx, dstate0, dparams = cell.backward(cache, dy, tuple(dstate) if lstm else dstate[0])
    dstate0 = dstate0 if lstm else (dstate0,)

    def rel(a, b):
        b = b.detach().numpy() if hasattr(b, "detach") else b
        return np.abs(a - b).max() / max(np.abs(b).max(), 1e-30)

    out = {"y": rel(y, ty), "dx": rel(dx, tx.grad), "dh0": rel(dstate0[0], ts[0].grad[0])}
    if lstm:
        out["dc0"] = rel(dstate0[1], ts[1].grad[0])
    grads = pg.interop.to_torch(cell, dparams, gradient=True)
    for name, value in module.named_parameters():
        out[name.replace("_l0", "")] = rel(grads[name], value.grad)
    return out


torch.manual_seed(1)
results = {}
for kind in (torch.nn.RNN, torch.nn.GRU, torch.nn.LSTM):
    for dtype in (torch.float32, torch.float64):
        label = f"{kind.__name__}, {str(dtype).replace('torch.', '')}"
        results[label] = compare(kind(input_size=D, hidden_size=H), dtype)
        worst = max(results[label], key=results[label].get)
        print(f"{label:<16} largest relative difference {results[label][worst]:.1e} ({worst})")

# %%
# In float32 the differences are a few units of float32's rounding
# (:math:`2^{-24} \approx 6 \times 10^{-8}`), in float64 a few units of
# float64's (:math:`10^{-16}`): the two libraries compute the same function
# and the same gradients, and differ only in the order of their sums.
names = ["y", "dx", "dh0", "weight_ih", "weight_hh", "bias_ih", "bias_hh"]
fig, ax = plt.subplots(figsize=(8, 4))
width = 0.8 / len(results)
floor = 1e-18  # the bottom of the log scale
for k, (label, res) in enumerate(results.items()):
    heights = np.array([res[n] for n in names])
    at = np.arange(len(names)) + k * width
    ax.bar(at, heights, width, bottom=floor, label=label, color=f"C{k // 2}",
           alpha=0.5 if "32" in label else 1.0)
    for x0 in at[heights == 0]:  # an exact 0 has no bar on a log scale: write it
        ax.annotate("0", (x0, floor), xytext=(0, 2), textcoords="offset points", ha="center",
                    va="bottom", color=f"C{k // 2}", fontweight="bold")
ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2, names)
ax.set_yscale("log")
ax.set_ylim(floor, 1e-1)
ax.axhline(2.0**-24, color="k", linestyle=":", linewidth=1)
ax.axhline(2.0**-53, color="k", linestyle=":", linewidth=1)
ax.set_ylabel("relative difference to PyTorch")
ax.set_title("pyx_gru against torch 2.13.0 autograd")
ax.legend(fontsize=9, ncol=3, loc="upper center")
fig.tight_layout()

# %%
# And back
# --------
#
# ``to_torch`` gives a state dict to load into a fresh PyTorch module. The
# whole bias goes into ``bias_ih`` and the redundant part of ``bias_hh`` is
# zero, so the split may differ from the one you started with while the
# function is the same.
fresh = torch.nn.GRU(input_size=D, hidden_size=H).double()
fresh.load_state_dict({k: torch.from_numpy(v) for k, v in pg.interop.to_torch(cell).items()})
with torch.no_grad():
    y_back, _ = fresh(torch.from_numpy(x), torch.from_numpy(h0)[None])
print("round trip: max |y - y_torch| =", np.abs(y_back.numpy() - y).max())
plt.show()
