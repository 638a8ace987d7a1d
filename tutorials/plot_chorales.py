"""
JSB Chorales: Chung et al.'s experiment on their own data
=========================================================

:ref:`Chung et al. (2014) <ref-chung2014>` ("Empirical evaluation of gated
recurrent neural networks on sequence modeling") trained a tanh RNN, a GRU
and an LSTM of about 20,000 parameters each to predict polyphonic music one
frame ahead.
On JSB Chorales, Bach's four-part chorales, they report a test negative
log-likelihood of 9.10 nats per frame for the tanh RNN, 8.54 for the GRU
and 8.67 for the LSTM (their Table 2). pyx_gru ships their data, with its
original split, so this tutorial repeats the experiment on the same pieces
with their recipe, cut down to run in about a minute: two seeds, at most 60
epochs. The full run, five seeds and the six cell configurations, is on the
page :doc:`../results/polyphonic`.
"""

# %%
# The data
# --------
#
# ``pyx_gru.tasks.polyphonic("jsb")`` gives the three parts of the data set
# as :ref:`Boulanger-Lewandowski et al. (2012) <ref-boulanger2012>` prepared
# and split it: 229 chorales to train on, 76 to validate, 77 to test. Each
# chorale is a piano roll, one frame per quarter note and 88 binary inputs,
# one per piano key, set while the key sounds. The input at step :math:`t` is
# frame :math:`t` and the target is frame :math:`t + 1`, so
# :math:`D = K = 88`, and the model has a sigmoid per key: an estimate of the
# probability that the key sounds in the next frame. The loss is the negative
# log-likelihood of the next frame, the 88 binary cross-entropies summed, in
# nats per frame (Chung et al.'s unit). The data ship inside the package:
# nothing is downloaded.
import matplotlib.pyplot as plt
import numpy as np

from pyx_gru import experiments, tasks

train, valid, test = tasks.polyphonic("jsb")
for part in (train, valid, test):
    print(f"{part.info['split']:>5}: {part.N} chorales, {int(part.lengths.sum()):,} steps, "
          f"{part.lengths.min()} to {part.lengths.max()} per piece")
lowest = train.info["lowest_midi"]

piece = 0
n = train.lengths[piece] + 1                              # frames of the piece
roll = np.concatenate([train.x[:1, piece], train.y[:n - 1, piece]])   # (F, 88)
keys = np.flatnonzero(train.x.any(axis=(0, 1)))           # the keys the chorales use
fig, ax = plt.subplots(figsize=(8, 3.2))
ax.imshow(roll[:, keys[0]:keys[-1] + 1].T, origin="lower", aspect="auto", cmap="Greys",
          extent=(-0.5, n - 0.5, lowest + keys[0] - 0.5, lowest + keys[-1] + 0.5))
ax.set_xlabel("frame (quarter notes)")
ax.set_ylabel("MIDI note")
ax.set_title(f"The first training chorale: four voices, {n} frames")
fig.tight_layout()

# %%
# The four voices make four lines of black cells, moving mostly in small
# steps; a held note is a run of frames.
#
# A baseline frames the numbers. The **memoryless** predictor gives every
# key its frequency among the frames it is scored on, whatever came before;
# it needs no model of time at all. Fitted on the test frames themselves it
# flatters itself a little; fitted on the training frames, as a model has
# to be, it is the number a model must beat first:
print(f"memoryless, fitted on the test frames:     {test.baseline:.2f} nats per frame")
print(f"memoryless, fitted on the training frames: {test.info['baseline_train_fit']:.2f}")

# %%
# Chung et al.'s recipe
# ---------------------
#
# About 20,000 parameters per model; RMSProp; the gradient norm clipped at
# 1; weight noise of standard deviation 0.075 (each step's forward and
# backward pass see noisy weights, the update goes to the clean ones); early
# stopping on the validation chorales; the learning rate chosen on the
# validation loss. Here: two learning rates, :math:`3 \cdot 10^{-3}` and
# :math:`10^{-2}`, two seeds, batches of 10 chorales of similar lengths, at
# most 60 epochs with a patience of 10. With :math:`D = K = 88`,
# ``match_hidden_size`` gives:
D = K = 88
cells = ["rnn", "gru", "lstm"]
theirs = {"rnn": 100, "gru": 46, "lstm": 36}             # Chung et al.'s units
for c in cells:
    H = experiments.match_hidden_size(c, 20_000, D, K)
    h = theirs[c]
    without_readout = experiments.count_params(c, h, D, K) - (h * K + K)
    print(f"{c:<5} H = {H} ({experiments.count_params(c, H, D, K):,} parameters); "
          f"Chung et al.'s H = {h} makes {without_readout:,} without the readout")

# %%
# Chung et al. had 100, 46 and 36 units, which come to 18,000 to 19,000
# parameters without the readout, close to their 20,000;
# ``pyx_gru.experiments`` counts the whole model, readout included, so its
# units are fewer. Their LSTM had peepholes (``"lstm_peephole"``; the full
# run has it), and they drew their learning rates at random.
#
# The twelve runs go to ``experiments.compare`` as two jobs at a time, each
# held to one BLAS thread:
result = experiments.compare((train, valid, test), cells=cells, n_params=20_000,
                             lrs=[3e-3, 1e-2], seeds=[0, 1], optimizer="rmsprop", clip=1.0,
                             weight_noise=0.075, batch_size=10, bucket=True, epochs=60,
                             patience=10, n_jobs=2)
print(result.format())

# %%
# The learning curves, validation NLL after every epoch, of each cell at its
# chosen learning rate (the two seeds are the solid and the dashed line):
summary = {s["cell"]: s for s in result.summary()}
colors = {"rnn": "C0", "gru": "C2", "lstm": "C3"}
fig, ax = plt.subplots(figsize=(8, 4.5))
for row, history in zip(result.rows, result.histories, strict=True):
    if row["lr"] != summary[row["cell"]]["lr"]:
        continue
    ax.plot(history.epoch, history.valid_loss, "-" if row["seed"] == 0 else "--",
            color=colors[row["cell"]],
            label=f"{row['cell']} (H = {row['hidden_size']}, lr {row['lr']:g})"
            if row["seed"] == 0 else None)
ax.axhline(valid.info["baseline_train_fit"], color="k", linestyle=":", linewidth=1,
           label="memoryless baseline (fitted on the training chorales)")
ax.set_ylim(8, 12)
ax.set_xlabel("epoch")
ax.set_ylabel("validation NLL (nats per frame)")
ax.set_title("JSB Chorales: RMSProp, weight noise 0.075, about 20,000 parameters")
ax.legend(fontsize=9)
fig.tight_layout()

# %%
# Every model starts out worse than the memoryless baseline (it has yet to
# learn how rarely each key sounds) and passes it within the first few
# epochs. After that the curves fall slowly; the gated cells fall further.
#
# Against Chung et al.'s table
# ----------------------------
#
# The test NLL of each cell at its chosen learning rate (a point per seed,
# and their mean), next to the full run of the same experiment (five seeds,
# up to 200 epochs; :doc:`../results/polyphonic`) and Chung et al.'s JSB
# Chorales column:
full_run = {"rnn": 8.61, "gru": 8.52, "lstm": 8.50}   # the results page: 5 seeds
chung = {"rnn": 9.10, "gru": 8.54, "lstm": 8.67}        # Chung et al. 2014, Table 2
mine = {c: [r["test_loss"] for r in result.rows if r["cell"] == c and r["lr"] == summary[c]["lr"]]
        for c in cells}
print(f"{'cell':<6}{'this page (seeds)':>20}{'mean':>8}{'full run':>10}{'Chung et al.':>14}")
for c in cells:
    seeds = " / ".join(f"{v:.2f}" for v in mine[c])
    print(f"{c:<6}{seeds:>20}{summary[c]['test_loss']:>8.2f}{full_run[c]:>10.2f}{chung[c]:>14.2f}")
gap = min(summary["gru"]["test_loss"], summary["lstm"]["test_loss"]) - summary["rnn"]["test_loss"]
print(f"best gated cell minus the tanh RNN: {gap:+.2f} nats per frame")

fig, ax = plt.subplots(figsize=(8, 4.5))
pos = np.arange(len(cells))
for k, c in enumerate(cells):
    ax.plot([k - 0.2] * len(mine[c]), mine[c], "o", color="C1", alpha=0.6, markersize=5)
ax.plot(pos - 0.2, [summary[c]["test_loss"] for c in cells], "_", color="C1", markersize=22,
        markeredgewidth=2.5, label="this page (two seeds and their mean)")
ax.plot(pos, [full_run[c] for c in cells], "s", color="C4", markersize=8,
        label="full run (five seeds, the results page)")
ax.plot(pos + 0.2, [chung[c] for c in cells], "D", color="C5", markersize=8,
        label="Chung et al. 2014, Table 2")
ax.set_xticks(pos, ["tanh RNN", "GRU", "LSTM"])
ax.set_xlim(-0.6, len(cells) - 0.4)
ax.set_ylabel("test NLL (nats per frame)")
ax.set_title("JSB Chorales, lower is better: about 20,000 parameters per model")
ax.legend(fontsize=9)
fig.tight_layout()

# %%
# Reading the numbers
# -------------------
#
# These are the same chorales, split the same way, scored in the same unit
# as Chung et al.'s, so the numbers can be set side by side. This short run
# stops early and has two seeds; the full run trains longer, chooses among
# learning rates on five seeds, and tests whether each gated cell's
# advantage over the tanh RNN is larger than the spread between seeds.
# Every model gains far more over the memoryless baseline (about 11 nats
# per frame, which the models bring down to 8.5 to 8.7: some 2.5 nats) than
# the cells differ from one another (two tenths at most).
#
# The full run is one command (under 10 minutes on 2 cores):
#
# .. code-block:: bash
#
#    python -m pyx_gru compare --task jsb \
#        --cells rnn,sgru,gru,gru_before,lstm,lstm_peephole --params 20000 --seeds 5 \
#        --lr 1e-3,3e-3 --optimizer rmsprop --epochs 200 --patience 20 --batch-size 10 \
#        --clip 1 --weight-noise 0.075 --bucket --n-jobs 2 --out jsb
#
# :ref:`sphx_glr_auto_tutorials_plot_cells_compared.py` compares the cells on
# synthetic tasks where the distance to remember is set by hand.
plt.show()
