"""
A character-level language model: a GRU that writes Python
==========================================================

Karpathy's :ref:`"The Unreasonable Effectiveness of Recurrent Neural
Networks" (2015) <ref-karpathy2015>`, and the hundred lines of his
``min-char-rnn.py``, train a recurrent network to read a text one character
at a time and predict the next one; sampled one character after another, the
predictions become new text. This tutorial does the same, on a small scale,
with a pyx_gru GRU and text that every Python installation has: the standard
library's own source code. It trains for under a minute on one core, prints
samples at three temperatures as training goes, compares the loss with what
counting characters achieves, and draws one hidden unit over a passage of
code.
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
import textwrap
import time

import matplotlib.pyplot as plt
import numpy as np
from threadpoolctl import threadpool_limits

import pyx_gru as pg
from pyx_gru import tasks

# The setting. PYX_GRU_CHAR_LM_FULL=1 runs a longer version by hand: all the
# text that qualifies (about 1.25 million characters with Python 3.11), twice
# the units, more steps.
FULL = os.environ.get("PYX_GRU_CHAR_LM_FULL") == "1"
N_CHARS = None if FULL else 800_000        # characters of text (None: all)
H = 256 if FULL else 128                   # hidden units
STEPS = 2000 if FULL else 900              # training steps
CHECKPOINTS = (100, STEPS // 3, STEPS)     # steps after which we sample

# The matrices here are small: one BLAS thread is as fast as two on the
# shared machine that builds this page (restored at the end).
blas = threadpool_limits(limits=1)

text = tasks.stdlib_source(N_CHARS, seed=0,
                           skip_words=("warning", "traceback", "object at 0x"))
K = text.n_classes
split = int(0.9 * text.n_chars)
train_codes, held_codes = text.codes[:split], text.codes[split:]
print(f"{text.n_chars:,} characters from {len(text.files)} files of the "
      f"Python {text.info['python']} standard library;\n"
      f"a vocabulary of K = {K} characters")
print(textwrap.fill("files: " + ", ".join(name for name, _, _ in text.files),
                    79, subsequent_indent="  "))
print(f"training text: {split:,} characters; held-out text: "
      f"{len(held_codes):,} characters,")
print(textwrap.fill("from " + ", ".join(name for name, a, b in text.files
                                        if b > split), 79))
print("A passage of the training text:")
print(text.text[text.files[0][1]:text.files[0][1] + 400])

# %%
# What counting achieves
# ----------------------
#
# A language model is scored by its mean negative log-likelihood of the
# next character, :math:`-\frac1n \sum_t \ln p(c_{t+1} \mid c_1, \ldots,
# c_t)`, in nats per character (divide by :math:`\ln 2` for bits). Models
# without any learning set the bar. The **unigram** model predicts every
# character by its frequency in the training text, ignoring what came
# before; the **bigram** model by its frequency after the previous
# character, the **trigram** model after the previous two. All three are
# counts, smoothed by adding one half to every count (the
# Krichevsky--Trofimov estimate) so that a combination never seen in
# training does not cost an infinite loss, and all three are scored on the
# held-out text. For reference, the entropy of the held-out text's own
# character frequencies is the best any unigram model could do there, even
# one fitted on the held-out text itself.
LN2 = np.log(2)


def ngram_loss(train, held, K, context):
    """Held-out NLL (nats per character) of counts of (previous `context`
    characters, next character) in `train`, each count plus one half."""
    def keys(codes):
        key = np.zeros(len(codes) - context, dtype=np.int64)
        for j in range(context):    # the previous characters as one number
            key = key * K + codes[j:len(codes) - context + j]
        return key * K + codes[context:]

    counts = np.bincount(keys(train), minlength=K ** (context + 1))
    counts = counts.reshape(-1, K) + 0.5            # one row per context
    p = counts / counts.sum(axis=1, keepdims=True)
    return float(-np.mean(np.log(p.reshape(-1)[keys(held)])))


freq = np.bincount(held_codes, minlength=K) / len(held_codes)
entropy = float(-np.sum(freq[freq > 0] * np.log(freq[freq > 0])))
baselines = {name: ngram_loss(train_codes, held_codes, K, context)
             for context, name in enumerate(("unigram", "bigram", "trigram"))}
for name, value in baselines.items():
    print(f"{name} model, held-out text: {value:.3f} nats "
          f"= {value / LN2:.3f} bits per character")
print(f"entropy of the held-out character frequencies: {entropy:.3f} nats "
      f"= {entropy / LN2:.3f} bits")

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
# The training loop is written with pyx_gru's parts: each step takes B
# windows of T + 1 characters at random places in the training text, the
# first T as inputs and the last T as targets, runs the model forward and
# backward, clips the gradients' global norm at 1, and lets Adam (learning
# rate :math:`6 \cdot 10^{-3}`) update the parameters. Every window starts
# from a zero state, so the model learns to read from scratch; 100
# characters are a few lines of code. (Karpathy's ``min-char-rnn.py``
# instead walks through the text in order and carries the state from one
# window into the next.) Float32 halves the memory traffic of float64 and
# is plenty here.
T, B, LR, CLIP = 100, 32, 6e-3, 1.0
model = pg.Model(K, H, K, cell="gru", readout="every", dtype=np.float32,
                 seed=0)
opt = pg.optim.Adam(lr=LR)
rng = np.random.default_rng(0)
print(f"GRU, H = {H}: {model.n_params:,} parameters; T = {T}, B = {B};")
print(f"{STEPS} steps, {STEPS * T * B / split:.1f} passes over the training "
      "text")


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
    chunk = codes[idx]                                  # (length + 1, n)
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
        x = text.one_hot(np.full(rows, code), np.float32)       # (rows, K)
        out, state = model.step(x, state)
    written = []
    for _ in range(n):
        p = pg.losses.softmax(out.astype(np.float64) / tau)
        # one draw per row from p: the first k with cumsum(p)[k] >= u
        u = rng.random((rows, 1))
        code = (p.cumsum(axis=1) < u).sum(axis=1).clip(max=K - 1)
        written.append(code)
        out, state = model.step(text.one_hot(code, np.float32), state)
    return [start + text.decode(c) for c in np.array(written).T]


def show_samples(step):
    tic = time.perf_counter()
    samples = sample(model, "def ", 240, TEMPERATURES,
                     np.random.default_rng(step))
    seconds = time.perf_counter() - tic
    for tau, s in zip(TEMPERATURES, samples, strict=True):
        print(f"----- after {step} steps, temperature {tau} -----")
        print(s)
    return seconds


# %%
# Training, with samples as it goes
# ---------------------------------
#
# The held-out loss is measured every 100 steps; the samples come from the
# untrained model first, then after each checkpoint.
train_loss, evaluated, held = [], [0], [held_out_loss(model, held_codes)]
print(f"before training: held-out loss {held[0]:.3f} nats per character "
      f"(ln K = {np.log(K):.3f}: a uniform guess)")
sample_seconds = show_samples(0)
tic = time.perf_counter()
for step in range(1, STEPS + 1):
    x, y = windows(train_codes, rng)
    out, cache = model.forward(x)
    loss, dout = pg.losses.softmax_cross_entropy(out, y)
    _, grads = model.backward(cache, dout)
    pg.optim.clip_grad_norm(grads, CLIP)
    opt.step(model.params, grads)
    train_loss.append(loss)
    if step % 100 == 0 or step in CHECKPOINTS:
        evaluated.append(step)
        held.append(held_out_loss(model, held_codes))
    if step in CHECKPOINTS:
        print(f"\n===== step {step}: loss {np.mean(train_loss[-50:]):.3f} "
              f"(training, last 50 steps), {held[-1]:.3f} (held out)")
        sample_seconds += show_samples(step)
train_seconds = time.perf_counter() - tic - sample_seconds
print(f"\ntraining and held-out losses: {train_seconds:.0f} s; sampling "
      f"{len(CHECKPOINTS) + 1} times 244 steps\nof the model (three rows "
      f"each): {sample_seconds:.1f} s")

# %%
# At first the samples are characters drawn almost uniformly. After a
# hundred steps spaces, newlines and common letters dominate, and words such
# as ``self`` appear. By the end the low-temperature sample has lines of
# plausible shape: indentation, names with dots and underscores, calls with
# parentheses, ``return``; it is not working code, and it falls into
# repeating itself (long runs of spaces). At temperature 1.5 the text comes
# apart into a jumble of rarer characters; temperature 1 sits in between.
#
# The learning curve, with the counting models:
fig, ax = plt.subplots(figsize=(8, 4.2))
steps = np.arange(1, STEPS + 1)
smooth = np.convolve(train_loss, np.ones(50) / 50, mode="valid")
ax.plot(steps[49:], smooth, color="C0",
        label="training windows (mean of 50 steps)")
ax.plot(evaluated, held, "o-", color="C3", markersize=4, label="held-out text")
for (name, value), style in zip(baselines.items(), ("--", "-.", ":"), strict=True):
    ax.axhline(value, color="k", linestyle=style, linewidth=1,
               label=f"{name} counts, held-out")
ax.set_ylim(0.9 * min(min(held), smooth.min()), 1.05 * np.log(K))
ax.set_xlabel("training step")
ax.set_ylabel("loss (nats per character)")
bits = ax.secondary_yaxis("right",
                          functions=(lambda v: v / LN2, lambda v: v * LN2))
bits.set_ylabel("bits per character")
ax.set_title(f"GRU, H = {H}, on {split:,} characters of Python")
ax.legend(fontsize=9, loc="upper right")
fig.tight_layout()
print(f"held-out loss after {STEPS} steps: {held[-1]:.3f} nats = "
      f"{held[-1] / LN2:.3f} bits per character;")
print("counts: " + ", ".join(f"{name} {value / LN2:.3f}"
                             for name, value in baselines.items()) + " bits")

# %%
# The held-out loss drops below the unigram and bigram models' within the
# first hundred steps and below the trigram model's within the first third
# of the run (``tests/test_char_lm.py`` checks both); after that it falls
# slowly. The loss on the training windows keeps falling and ends below
# the held-out loss: part of what the model learns is particular to the
# files it trains on.
#
# One hidden unit over a passage
# ------------------------------
#
# Karpathy found units that switch on inside quotes, that count the
# characters of a line, that follow the depth of indentation. Which unit to
# look at is a choice that can flatter a model, so the rule comes first. Run
# the trained GRU over the whole held-out text; mark each character by
# whether ``tokenize`` puts it inside a string literal or a comment, the
# parts of a Python file that are not code (docstrings, comments,
# messages); draw the unit whose activation :math:`h_{t,j}` has the largest
# absolute correlation with that mark. (:math:`h_t` is the state *after*
# reading character :math:`t`, so it can know that the character opened or
# continued a string, not that one is coming.)
cell = model.cells[0]
x = text.one_hot(held_codes, np.float32)[:, None]        # (n_held, 1, K)
y, _, _ = cell.forward(x, cache=False)
h = y[:, 0].astype(np.float64)                            # (n_held, H)
kinds = text.kinds[split:]                # 0 code, 1 string, 2 comment


def correlation(h, v):
    """Pearson correlation of each column of h (n, H) with v (n,)."""
    a = h - h.mean(axis=0)
    b = v - v.mean()
    norm = np.sqrt((a * a).sum(axis=0) * (b * b).sum())
    return (a * b[:, None]).sum(axis=0) / norm


not_code = (kinds != 0).astype(np.float64)
r = correlation(h, not_code)
unit = int(np.argmax(np.abs(r)))
print(f"{not_code.mean():.0%} of the held-out characters lie inside a "
      "string or a comment;\nlargest |r| with that: units "
      + ", ".join(f"{j} (r = {r[j]:+.2f})"
                  for j in np.argsort(-np.abs(r))[:3]))

# The same unit against other things it might track: strings and comments
# apart, and the column (the characters since the start of the line).
held_text = text.text[split:]
n_held = len(held_text)
newline = np.frombuffer(held_text.encode(), np.uint8) == ord("\n")
line_start = np.flatnonzero(newline) + 1   # where each complete line starts
own_start = np.concatenate([[0], line_start])[
    np.searchsorted(line_start, np.arange(n_held), side="right")]
column = (np.arange(n_held) - own_start).astype(np.float64)
hu, prose = h[:, [unit]], not_code == 1
for name, where in (("in strings and comments", prose), ("in code", ~prose)):
    r_column = correlation(hu[where], column[where])[0]
    print(f"unit {unit} {name}: mean {hu[where].mean():+.2f}, above 0 at "
          f"{np.mean(hu[where] > 0):.0%} of the characters,\n"
          f"  r with the column {r_column:+.2f}")
r_string = correlation(hu, (kinds == 1).astype(np.float64))[0]
r_comment = correlation(hu, (kinds == 2).astype(np.float64))[0]
print(f"unit {unit}: r with being inside a string {r_string:+.2f}, "
      f"inside a comment {r_comment:+.2f}")

# %%
# The passage: the 14 consecutive complete lines of the held-out text with
# the most even mix of code, strings and comments (the largest smallest
# share of the three), each cut at 72 columns. Each character's background
# is the unit's value after reading it, from blue (-1) through white (0) to
# red (+1).
LINES, COLS = 14, 72
seen = np.cumsum(kinds[:, None] == np.arange(3), axis=0)    # running counts
seen = np.concatenate([np.zeros((1, 3)), seen])
a, b = line_start[:-LINES], line_start[LINES:]
first = int(np.argmax((seen[b] - seen[a]).min(axis=1) / (b - a)))
fig, ax = plt.subplots(figsize=(8, 0.3 * LINES + 0.6))
cmap = plt.get_cmap("coolwarm")
for row in range(LINES):
    a = line_start[first + row]
    b = line_start[first + row + 1] - 1                # without the newline
    for col in range(min(b - a, COLS)):
        ax.add_patch(plt.Rectangle((col, row), 1, 1, linewidth=0,
                                   color=cmap((h[a + col, unit] + 1) / 2)))
        ax.text(col + 0.5, row + 0.55, held_text[a + col], ha="center",
                va="center", family="monospace", fontsize=10)
ax.set_xlim(0, COLS)
ax.set_ylim(LINES, 0)
ax.set_axis_off()
ax.set_title(f"Unit {unit} after each character: blue -1, white 0, red +1 "
             f"(r = {r[unit]:+.2f} with being inside a string or a comment)",
             fontsize=10)
fig.tight_layout()

# %%
# In the run shown here the unit reads as a detector of "not code". It is
# negative through code and through the spaces that indent it, and turns
# positive within a character or two of an opening ``#`` or triple quote.
# Inside the docstring it stays positive across a line break and through
# the indentation of the next line, where nothing nearby says that this is
# a docstring: the state carries it, as Karpathy's quote-detecting cell
# did. After a blank line, though, it starts the next line negative and
# turns positive only as the words begin.
#
# It is far from a clean switch, and the numbers above say how far. Its
# correlation with the mark is about a half. Many code characters push it
# above zero as well. And within strings and comments it climbs along the
# line (its correlation with the column there), so part of what it follows
# is how far into a line of prose the model has read: the two are tangled
# in this text, where lines of prose run longer than lines of code. It is
# also not alone: the rule's runner-up is about as correlated, and the
# readout uses the whole state, not one coordinate of it. A hundred-odd
# units trained for a minute need not divide the work into tidy roles, and
# one picture of one unit should not be read as if they had.
#
# Going further
# -------------
#
# ``PYX_GRU_CHAR_LM_FULL=1 python plot_char_lm.py`` runs the longer setting
# by hand: all the text that qualifies, :math:`H = 256` and 2000 steps
# (six to seven times the build's arithmetic, with its longer held-out
# checks; three minutes on one core here). Run longer, its held-out loss
# levels off within the first thousand or two steps while the loss on the
# training windows keeps falling: from there on the model learns its
# training files rather than Python.
# Karpathy's models were larger still (two or three layers of hundreds of
# LSTM units) and trained for hours on a GPU; ``pg.Model(..., cell="lstm",
# num_layers=2)`` runs in the same loop, and so does ``model.step``. A
# window starts from a zero state here; carrying each window's final state
# into the next window of the same stream (truncated backpropagation
# through time, as in Karpathy's ``min-char-rnn.py``) would let the model
# use more than 100 characters of context: ``model.forward`` always
# starts from zeros, but each cell's ``forward`` takes a ``state0`` and
# returns the final state for that. The GRU's gates, and where its
# gradients go, are in :doc:`../theory/gru`.
blas.restore_original_limits()
plt.show()
