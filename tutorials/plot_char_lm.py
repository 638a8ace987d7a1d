"""
A character-level language model: a GRU that writes Python
==========================================================

Karpathy's "The Unreasonable Effectiveness of Recurrent Neural Networks"
(2015), and the hundred lines of his ``min-char-rnn.py``, train a recurrent
network to read a text one character at a time and predict the next one;
sampled one character after another, the predictions become new text. This
tutorial does the same, on a small scale, with a pyx_gru GRU and text that
every Python installation has: the standard library's own source code. It
trains for about a minute, prints samples at three temperatures as training
goes, compares the loss with what counting characters achieves, and draws
one hidden unit over a passage of code.
"""

# %%
# The text
# --------
#
# Source code rather than prose, for two reasons. It ships with Python, so
# the script needs no download. And it has structure over many characters
# that a model must carry in its state to predict well: an indented block
# keeps its indentation line after line, a string or a comment runs until
# its closing quote or the end of the line, brackets close. Python's own
# ``tokenize`` says exactly which characters lie inside a string or a
# comment, so we can ask afterwards whether a hidden unit follows them.
#
# ``tasks.stdlib_source`` reads whole ``.py`` files of the standard library
# by a fixed rule: the public top-level modules, in an order shuffled by a
# seed, keeping those that are plain ASCII. It also leaves out the files that
# mention warnings or tracebacks, for a reason of this site's own: its build
# checks that no tutorial prints these words, and a model that has read them
# would write them in its samples. The files differ between Python versions,
# so the text, and every number below, does too.
#
# The first nine tenths of the text are for training, the last tenth is
# held out to measure the loss on text the model has never read.
import os
import time

import matplotlib.pyplot as plt
import numpy as np
from threadpoolctl import threadpool_limits

import pyx_gru as pg
from pyx_gru import tasks

# The whole setting in four numbers. PYX_GRU_CHAR_LM_FULL=1 runs a longer
# version by hand (more text, a larger model, more steps: several minutes).
FULL = os.environ.get("PYX_GRU_CHAR_LM_FULL") == "1"
N_CHARS = 1_000_000 if FULL else 300_000   # characters of text
H = 256 if FULL else 128                   # hidden units
STEPS = 6000 if FULL else 1200             # training steps
CHECKPOINTS = (100, 400, STEPS)            # steps after which we sample

# The matrices here are small: one BLAS thread is as fast as two on the
# shared machine that builds this page (restored at the end).
blas = threadpool_limits(limits=1)

text = tasks.stdlib_source(N_CHARS, seed=0, skip_words=("warning", "traceback", "object at 0x"))
K = text.n_classes
split = int(0.9 * text.n_chars)
train_codes, held_codes = text.codes[:split], text.codes[split:]
print(f"{text.n_chars:,} characters from {len(text.files)} files of the Python "
      f"{text.info['python']} standard library; a vocabulary of K = {K} characters")
print("files:", ", ".join(name for name, _, _ in text.files))
print(f"training text: {split:,} characters; held-out text: {len(held_codes):,}, "
      f"from {', '.join(name for name, a, b in text.files if b > split)}")
print("A passage of the training text:")
print(text.text[text.files[0][1]:text.files[0][1] + 400])

# %%
# What counting achieves
# ----------------------
#
# A language model is scored by its mean negative log-likelihood of the
# next character, :math:`-\frac1n \sum_t \ln p(c_{t+1} \mid c_1, \ldots,
# c_t)`, in nats per character (divide by :math:`\ln 2` for bits). Two
# models without any learning set the bar. The **unigram** model predicts
# every character by its frequency in the training text, ignoring what came
# before; the **bigram** model by its frequency after the previous
# character. Both are counts, smoothed by adding one half to every count
# (the Krichevsky--Trofimov estimate) so that a pair never seen in
# training does not cost an infinite loss, and both are scored on the
# held-out text. For reference, the entropy of the held-out text's own
# character frequencies is the best any unigram model could do there, even
# one fitted on the held-out text itself.
LN2 = np.log(2)


def ngram_loss(train, held, K, context):
    """Held-out NLL (nats per character) of counts of (previous `context`
    characters, next character) in `train`, each count plus one half."""
    def keys(codes):
        key = np.zeros(len(codes) - context, dtype=np.int64)
        for j in range(context):                    # the previous characters as one number
            key = key * K + codes[j:len(codes) - context + j]
        return key * K + codes[context:]

    counts = np.bincount(keys(train), minlength=K ** (context + 1)).reshape(-1, K) + 0.5
    p = counts / counts.sum(axis=1, keepdims=True)
    return float(-np.mean(np.log(p.reshape(-1)[keys(held)])))


freq = np.bincount(held_codes, minlength=K) / len(held_codes)
entropy = float(-np.sum(freq[freq > 0] * np.log(freq[freq > 0])))
baselines = {"unigram": ngram_loss(train_codes, held_codes, K, 0),
             "bigram": ngram_loss(train_codes, held_codes, K, 1)}
for name, value in baselines.items():
    print(f"{name} model, held-out text: {value:.3f} nats = {value / LN2:.3f} bits per character")
print(f"entropy of the held-out character frequencies: {entropy:.3f} nats = "
      f"{entropy / LN2:.3f} bits per character")

# %%
# The model
# ---------
#
# A GRU with :math:`H` units reads the characters as one-hot vectors
# (:math:`D = K`), and a dense readout turns its state after every step into
# :math:`K` logits: ``readout="every"``. The softmax of the logits at step
# :math:`t` is the model's distribution of character :math:`t + 1`, and
# ``losses.softmax_cross_entropy`` gives its mean negative log-likelihood
# over the (T, B) steps of a batch, with the gradient.
#
# The training loop is Karpathy's, written with pyx_gru's parts: each step
# takes B windows of T + 1 characters at random places in the training
# text, the first T as inputs and the last T as targets, runs the model
# forward and backward, clips the gradients' global norm at 1, and lets Adam
# update the parameters. Every window starts from a zero state, so the
# model learns to read from scratch; 100 characters are a few lines of
# code. Float32 halves the memory traffic of float64 and is plenty here.
T, B = 100, 32
model = pg.Model(K, H, K, cell="gru", readout="every", dtype=np.float32, seed=0)
opt = pg.optim.Adam(lr=3e-3)
rng = np.random.default_rng(0)
print(f"GRU, H = {H}: {model.n_params:,} parameters; T = {T}, B = {B}, "
      f"{STEPS} steps ({STEPS * T * B / split:.1f} passes over the training text)")


def windows(codes, rng):
    """Inputs (T, B, K) one-hot and targets (T, B) of B random windows."""
    starts = rng.integers(0, len(codes) - T - 1, size=B)
    chunk = codes[starts[None, :] + np.arange(T + 1)[:, None]]     # (T + 1, B)
    return text.one_hot(chunk[:-1], np.float32), chunk[1:]


def held_out_loss(model, codes, length=500):
    """Mean NLL over `codes`, read in pieces of `length` characters, each
    from a zero state."""
    n = (len(codes) - 1) // length
    idx = np.arange(n)[None, :] * length + np.arange(length + 1)[:, None]
    chunk = codes[idx]                                               # (length + 1, n)
    out, _ = model.forward(text.one_hot(chunk[:-1], np.float32), cache=False)
    return pg.losses.softmax_cross_entropy(out, chunk[1:])[0]


# %%
# Sampling
# --------
#
# To write, the model runs one step at a time: ``model.step(x, state)``
# takes one character per row, (B, K), and the state the previous step
# returned, and gives the logits of the next character. Dividing the logits
# by a **temperature** :math:`\tau` before the softmax,
# :math:`p_k \propto \exp(\text{logit}_k / \tau)`, sharpens the distribution
# for :math:`\tau < 1` (safer, more repetitive text) and flattens it for
# :math:`\tau > 1` (more varied, more mistakes); :math:`\tau = 1` samples
# the model as it is. The three temperatures run side by side as three rows
# of one batch, each from the same start, ``"def "``.
TEMPERATURES = (0.5, 1.0, 1.5)


def sample(model, start, n, temperatures, rng):
    """n characters after `start`, one row per temperature."""
    tau = np.array(temperatures)[:, None]
    rows = len(temperatures)
    out, state = None, None
    for code in text.encode(start):                     # read the start
        out, state = model.step(text.one_hot(np.full(rows, code), np.float32), state)
    written = []
    for _ in range(n):
        p = pg.losses.softmax(out.astype(np.float64) / tau)
        code = (p.cumsum(axis=1) < rng.random((rows, 1))).sum(axis=1).clip(max=K - 1)
        written.append(code)
        out, state = model.step(text.one_hot(code, np.float32), state)
    return [start + text.decode(c) for c in np.array(written).T]


def show_samples(step):
    tic = time.perf_counter()
    samples = sample(model, "def ", 240, TEMPERATURES, np.random.default_rng(step))
    seconds = time.perf_counter() - tic
    for tau, s in zip(TEMPERATURES, samples):
        print(f"----- after {step} steps, temperature {tau} -----")
        print(s)
    return seconds


# %%
# Training, with samples as it goes
# ---------------------------------
#
# The untrained model first, then the samples after each checkpoint, with
# the held-out loss.
train_loss, checkpoints, held = [], [0], [held_out_loss(model, held_codes)]
print(f"before training: held-out loss {held[0]:.3f} nats per character "
      f"(ln K = {np.log(K):.3f}: a uniform guess)")
sample_seconds = show_samples(0)
tic = time.perf_counter()
for step in range(1, STEPS + 1):
    x, y = windows(train_codes, rng)
    out, cache = model.forward(x)
    loss, dout = pg.losses.softmax_cross_entropy(out, y)
    _, grads = model.backward(cache, dout)
    pg.optim.clip_grad_norm(grads, 1.0)
    opt.step(model.params, grads)
    train_loss.append(loss)
    if step in CHECKPOINTS:
        checkpoints.append(step)
        held.append(held_out_loss(model, held_codes))
        print(f"\n===== step {step}: training loss (mean of the last 50 steps) "
              f"{np.mean(train_loss[-50:]):.3f}, held-out loss {held[-1]:.3f} nats per character")
        sample_seconds += show_samples(step)
train_seconds = time.perf_counter() - tic - sample_seconds
n_sampled = 4 * 3 * (240 + 4)
print(f"\ntraining: {train_seconds:.0f} s; sampling: {n_sampled:,} steps of the model in "
      f"{sample_seconds:.1f} s")

# %%
# At first the samples are characters drawn almost uniformly. Within a few
# hundred steps spaces, newlines and common letters dominate, and words
# appear. By the end the low-temperature sample has lines of plausible
# shape: indentation, names with dots and underscores, calls with
# parentheses, ``self``, ``return``; it is not working code, and it repeats
# itself. At temperature 1.5 the text falls apart into a jumble of rarer
# characters.
#
# The learning curve, with the counting models:
fig, ax = plt.subplots(figsize=(8, 4.2))
steps = np.arange(1, STEPS + 1)
smooth = np.convolve(train_loss, np.ones(50) / 50, mode="valid")
ax.plot(steps[49:], smooth, color="C0", label="training windows (mean of 50 steps)")
ax.plot(checkpoints, held, "o-", color="C3", label="held-out text")
for (name, value), style in zip(baselines.items(), ("--", ":")):
    ax.axhline(value, color="k", linestyle=style, linewidth=1, label=f"{name} counts, held-out")
ax.set_ylim(0.5, 4.8)
ax.set_xlabel("training step")
ax.set_ylabel("loss (nats per character)")
bits = ax.secondary_yaxis("right", functions=(lambda v: v / LN2, lambda v: v * LN2))
bits.set_ylabel("bits per character")
ax.set_title(f"GRU, H = {H}, on {split:,} characters of Python")
ax.legend(fontsize=9, loc="upper right")
fig.tight_layout()
print(f"held-out loss after {STEPS} steps: {held[-1]:.3f} nats = {held[-1] / LN2:.3f} bits per "
      f"character; unigram {baselines['unigram'] / LN2:.3f}, bigram "
      f"{baselines['bigram'] / LN2:.3f} bits")

# %%
# One hidden unit over a passage
# ------------------------------
#
# Karpathy found units that switch on inside quotes, that count the
# characters of a line, that follow the depth of indentation. Which unit to
# look at is a choice that can flatter a model, so the rule comes first:
# run the trained GRU over the whole held-out text, and for every unit
# compute the correlation of its activation :math:`h_{t,j}` with two
# indicators from ``tokenize``, "the character read at step t is inside a
# string literal" and "inside a comment"; draw the unit with the largest
# absolute correlation with either. (``h`` is the state *after* reading the
# character, so it can tell that the character opened or continued a
# string, not predict that one is coming.)
cell = model.cells[0]
y, _, _ = cell.forward(text.one_hot(held_codes, np.float32)[:, None], cache=False)
h = y[:, 0].astype(np.float64)                                    # (n_held, H)
kinds = text.kinds[split:]


def correlation(h, indicator):
    """Pearson correlation of each column of h with a 0/1 indicator."""
    a = h - h.mean(axis=0)
    b = indicator - indicator.mean()
    return (a * b[:, None]).sum(axis=0) / np.sqrt((a * a).sum(axis=0) * (b * b).sum())


r = {name: correlation(h, (kinds == k).astype(np.float64))
     for k, name in enumerate(text.KIND_NAMES) if name != "code"}
for name, values in r.items():
    top = np.argsort(-np.abs(values))[:3]
    print(f"inside a {name} ({np.mean(kinds == text.KIND_NAMES.index(name)):.0%} of the "
          f"held-out characters): largest |r| for units "
          + ", ".join(f"{j} (r = {values[j]:+.2f})" for j in top))
feature, unit = max(((name, int(np.argmax(np.abs(v)))) for name, v in r.items()),
                    key=lambda fu: abs(r[fu[0]][fu[1]]))
print(f"drawn: unit {unit}, r = {r[feature][unit]:+.2f} with being inside a {feature}")

# %%
# The passage: the first 14 lines of the held-out text, from its first
# complete line, in which at least a tenth of the characters lie inside
# strings and a tenth inside comments, each line cut at 56 columns. Each
# character's background is the unit's value after reading it, from blue
# (-1) through white to red (+1).
LINES, COLS = 14, 56
held_text = text.text[split:]
starts = np.flatnonzero(np.frombuffer(held_text.encode(), np.uint8) == ord("\n")) + 1
for first in range(len(starts) - LINES):
    a, b = starts[first], starts[first + LINES]
    if np.mean(kinds[a:b] == 1) >= 0.1 and np.mean(kinds[a:b] == 2) >= 0.1:
        break
fig, ax = plt.subplots(figsize=(8, 0.3 * LINES + 0.8))
cmap = plt.get_cmap("coolwarm")
for row in range(LINES):
    a, b = starts[first + row], starts[first + row + 1] - 1        # without the newline
    for col in range(min(b - a, COLS)):
        value = h[a + col, unit]
        ax.add_patch(plt.Rectangle((col, row), 1, 1, color=cmap((value + 1) / 2), linewidth=0))
        ax.text(col + 0.5, row + 0.55, held_text[a + col], ha="center", va="center",
                family="monospace", fontsize=10)
ax.set_xlim(0, COLS)
ax.set_ylim(LINES, 0)
ax.set_axis_off()
ax.set_title(f"Unit {unit} after each character (blue -1, red +1); "
             f"r = {r[feature][unit]:+.2f} with being inside a {feature}", fontsize=10)
fig.tight_layout()

inside = kinds == text.KIND_NAMES.index(feature)
print(f"unit {unit}: mean {h[inside, unit].mean():+.2f} inside a {feature}, "
      f"{h[~inside, unit].mean():+.2f} elsewhere")

# %%
# What the unit does, and what it does not, is in the numbers above and in
# the picture: it separates the two kinds of characters on average, but a
# correlation is not a switch, and the picture shows where it errs.
#
# Going further
# -------------
#
# ``PYX_GRU_CHAR_LM_FULL=1 python plot_char_lm.py`` runs the longer setting
# by hand. Karpathy's models were far larger (several layers of hundreds of
# LSTM units) and trained for hours; ``pg.Model(..., cell="lstm",
# num_layers=2)`` is the same loop. The GRU's gates and where its gradients
# go are in :doc:`../theory/gru`.
blas.restore_original_limits()
plt.show()
