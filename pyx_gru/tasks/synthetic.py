"""Synthetic tasks with long-range dependencies: the adding problem, copy
memory, temporal order and the embedded Reber grammar.

Every generator is seeded (the same arguments give bitwise the same task),
vectorised over the N sequences, and returns a :class:`~pyx_gru.tasks.Task`
whose ``baseline`` is the loss of a memoryless predictor.
"""
import math

import numpy as np

from .._validation import check_size
from ._task import Task, class_prior_nll, nll_of_counts, task_seed, transition_counts

__all__ = ["adding", "copy_memory", "temporal_order", "reber", "REBER_SYMBOLS", "TEMPORAL_ORDER_SYMBOLS"]


def _one_hot(indices, depth):
    """indices (...) int, -1 for padding -> (..., depth) float64, zero rows at padding."""
    indices = np.asarray(indices)
    out = np.zeros(indices.shape + (depth,))
    np.put_along_axis(out, np.maximum(indices, 0)[..., None], 1.0, axis=-1)
    out[indices < 0] = 0.0
    return out


# -- adding problem ------------------------------------------------------------


def _adding_baselines(task):
    # Predicting 1 = E[a + b] for every sequence: its MSE is Var(a + b) = 2/12.
    return {
        "baseline": 1.0 / 6.0,
        "baseline_analytic": 1.0 / 6.0,
        "baseline_empirical": float(np.mean((task.y - 1.0) ** 2)) if task.N else math.nan,
    }


def adding(n, length=100, *, seed=0):
    """The adding problem: remember two marked numbers, output their sum.

    The common variant (Le, Jaitly & Hinton 2015; Arjovsky, Shah & Bengio
    2016, "Unitary evolution recurrent neural networks", their generator
    ``adding_problem.py``) of Hochreiter & Schmidhuber's experiment 4 (1997,
    "Long short-term memory", Neural Computation 9(8)). Channel 0 carries
    numbers drawn from U[0, 1); channel 1 marks two steps with 1, the first
    drawn uniformly from ``[0, T // 2)``, the second from ``[T // 2, T)``.
    The target, read out after the last step, is the sum of the two marked
    numbers; the loss is the mean squared error.

    Memoryless baseline: always predicting 1 (the mean of the sum) gives MSE
    Var(a + b) = 2 · 1/12 = 1/6 ≈ 0.1667 (``baseline``, also
    ``info["baseline_analytic"]``); ``info["baseline_empirical"]`` is the
    MSE of predicting 1 on the generated targets.

    Parameters
    ----------
    n : int
        N, the number of sequences.
    length : int
        T >= 2, the number of steps.
    seed : int
        Seeds the draws.

    Returns
    -------
    Task
        ``x`` (T, N, 2), ``y`` (N, 1), ``readout="last"``, ``loss="mse"``,
        ``n_classes=1``; ``info["rows"]["positions"]`` (N, 2) holds the two
        marked steps.
    """
    N = check_size("n", n)
    T = check_size("length", length, minimum=2)
    rng = np.random.default_rng(task_seed(seed))
    values = rng.uniform(0.0, 1.0, (T, N))
    positions = np.stack([rng.integers(0, T // 2, N), rng.integers(T // 2, T, N)], axis=1)
    rows = np.arange(N)
    x = np.zeros((T, N, 2))
    x[:, :, 0] = values
    x[positions[:, 0], rows, 1] = 1.0
    x[positions[:, 1], rows, 1] = 1.0
    y = (values[positions[:, 0], rows] + values[positions[:, 1], rows])[:, None]
    task = Task(
        "adding", x, y, None, None, "last", "mse", 1, 1.0 / 6.0,
        info={"length": T, "seed": seed, "rows": {"positions": positions},
              "reference": "Hochreiter & Schmidhuber 1997 exp. 4; variant of Arjovsky et al. 2016"},
        baseline_fn=_adding_baselines,
    )
    return task._with_baselines()


# -- copy memory ---------------------------------------------------------------


def _copy_baselines(task):
    info = task.info
    T, C, S = info["length"], info["n_copy"], info["n_symbols"]
    # The memoryless strategy: blank for the first T + C steps, then a
    # uniform guess among the S symbols. Its NLL on the data, exactly:
    probs = np.zeros((T + 2 * C, S + 1))
    probs[: T + C, 0] = 1.0
    probs[T + C:, 1:] = 1.0 / S
    p = np.take_along_axis(probs, task.y, axis=1)
    with np.errstate(divide="ignore"):
        empirical = float(np.mean(-np.log(p))) if task.N else math.nan
    analytic = C * math.log(S) / (T + 2 * C)
    return {"baseline": analytic, "baseline_analytic": analytic, "baseline_empirical": empirical}


def copy_memory(n, length=100, *, n_symbols=8, n_copy=10, seed=0):
    """The copy memory task: reproduce a sequence of symbols after a delay.

    Arjovsky, Shah & Bengio 2016 ("Unitary evolution recurrent neural
    networks", ICML; section 4.1). With S = ``n_symbols`` and C =
    ``n_copy`` (8 and 10 in the paper), each sequence has T + 2C steps:
    C symbols drawn uniformly from {1, ..., S}, T - 1 blanks (class 0), the
    marker S + 1, and C blanks. The target is blank for the first T + C
    steps and the C symbols, in order, for the last C. Inputs are one-hot
    over the S + 2 input symbols; the output is a softmax over the S + 1
    target classes (blank and the S symbols; the marker is never a target)
    at every step.

    Memoryless baseline: output blank for T + C steps, then guess uniformly
    among the S symbols: C · ln S / (T + 2C) nats per step, which is
    10 ln 8 / (T + 20) in the paper's setting (0.173 at T = 100).
    ``info["baseline_empirical"]`` is that strategy's NLL on the generated
    targets (equal to the analytic value whenever the targets are right).

    Parameters
    ----------
    n : int
        N, the number of sequences.
    length : int
        T >= 1, the delay: the number of steps from the last symbol to the
        marker is T.
    n_symbols : int
        S >= 2, the alphabet size.
    n_copy : int
        C >= 1, how many symbols to copy.
    seed : int
        Seeds the draws.

    Returns
    -------
    Task
        ``x`` (T + 2C, N, S + 2), ``y`` (T + 2C, N) int, ``readout="every"``,
        ``loss="softmax"``, ``n_classes=S + 1``.
    """
    N = check_size("n", n)
    T = check_size("length", length)
    S = check_size("n_symbols", n_symbols, minimum=2)
    C = check_size("n_copy", n_copy)
    rng = np.random.default_rng(task_seed(seed))
    symbols = rng.integers(1, S + 1, (C, N))
    L = T + 2 * C
    inputs = np.zeros((L, N), dtype=np.int64)
    inputs[:C] = symbols
    inputs[T + C - 1] = S + 1
    y = np.zeros((L, N), dtype=np.int64)
    y[T + C:] = symbols
    task = Task(
        "copy_memory", _one_hot(inputs, S + 2), y, None, None, "every", "softmax", S + 1, 0.0,
        info={"length": T, "n_symbols": S, "n_copy": C, "seed": seed,
              "reference": "Arjovsky, Shah & Bengio 2016, sec. 4.1"},
        baseline_fn=_copy_baselines,
    )
    return task._with_baselines()


# -- temporal order ------------------------------------------------------------

#: Input symbols of :func:`temporal_order`, in one-hot order.
TEMPORAL_ORDER_SYMBOLS = "abcdXYBE"


def _temporal_order_baselines(task):
    return {
        "baseline": math.log(4),
        "baseline_analytic": math.log(4),
        "baseline_empirical": class_prior_nll(task.y, 4),
    }


def temporal_order(n, length=100, *, seed=0):
    """The temporal order problem with two relevant symbols (4 classes).

    Hochreiter & Schmidhuber 1997 ("Long short-term memory", Neural
    Computation 9(8), experiment 6a). A sequence starts with E, ends with
    the trigger symbol B, and is otherwise made of symbols drawn uniformly
    from {a, b, c, d}, except at two positions t1 and t2 (counted from 1,
    E being position 1) that hold X or Y, each with probability 1/2. Its
    class, read out at the trigger, is the order of the two: XX → 0 (the
    paper's Q), XY → 1 (R), YX → 2 (S), YY → 3 (U). In the paper the length
    is drawn from [100, 110], t1 from [10, 20] and t2 from [50, 60]; for
    ``length`` = L they are drawn uniformly from [L, L + L//10],
    [L//10, L//5] and [L//2, 6L//10] (all inclusive), which gives the paper's
    ranges at L = 100.

    Memoryless baseline: the classes are equally likely, so predicting the
    prior costs ln 4 ≈ 1.386 nats (``baseline``); ``info
    ["baseline_empirical"]`` is the cross-entropy of the empirical class
    frequencies of the generated labels (the best constant prediction in
    hindsight, just under ln 4).

    Parameters
    ----------
    n : int
        N, the number of sequences.
    length : int
        L >= 20, the shortest sequence length (100 in the paper).
    seed : int
        Seeds the draws.

    Returns
    -------
    Task
        ``x`` (L + L//10, N, 8) one-hot over ``TEMPORAL_ORDER_SYMBOLS``
        (zero past each length), ``y`` (N,) int classes, ``lengths`` (N,),
        ``readout="last"``, ``loss="softmax"``, ``n_classes=4``;
        ``info["rows"]`` holds ``t1`` and ``t2``.
    """
    N = check_size("n", n)
    L = check_size("length", length, minimum=20)
    rng = np.random.default_rng(task_seed(seed))
    T = L + L // 10
    lengths = rng.integers(L, T + 1, N)
    t1 = rng.integers(L // 10, L // 5 + 1, N)
    t2 = rng.integers(L // 2, 6 * L // 10 + 1, N)
    first, second = rng.integers(0, 2, N), rng.integers(0, 2, N)
    seq = rng.integers(0, 4, (T, N))
    rows = np.arange(N)
    seq[0] = TEMPORAL_ORDER_SYMBOLS.index("E")
    seq[t1 - 1, rows] = TEMPORAL_ORDER_SYMBOLS.index("X") + first
    seq[t2 - 1, rows] = TEMPORAL_ORDER_SYMBOLS.index("X") + second
    seq[lengths - 1, rows] = TEMPORAL_ORDER_SYMBOLS.index("B")
    seq[np.arange(T)[:, None] >= lengths[None, :]] = -1
    task = Task(
        "temporal_order", _one_hot(seq, len(TEMPORAL_ORDER_SYMBOLS)), 2 * first + second, lengths, None,
        "last", "softmax", 4, math.log(4),
        info={"length": L, "seed": seed, "symbols": TEMPORAL_ORDER_SYMBOLS, "classes": ("XX", "XY", "YX", "YY"),
              "rows": {"t1": t1, "t2": t2}, "reference": "Hochreiter & Schmidhuber 1997, exp. 6a"},
        baseline_fn=_temporal_order_baselines,
    )
    return task._with_baselines()


# -- embedded Reber grammar ----------------------------------------------------

#: Symbols of :func:`reber`, in one-hot order.
REBER_SYMBOLS = "BTPSXVE"
_B, _T, _P, _S, _X, _V, _E = range(7)
# The Reber grammar's automaton (Reber 1967; the graph drawn in Hochreiter &
# Schmidhuber 1997, fig. 3, and Cleeremans, Servan-Schreiber & McClelland
# 1989): state -> its two edges (symbol, next state), each taken with
# probability 1/2. State 5 is final: it emits E.
_REBER_SYMBOL = np.array([[_T, _P], [_S, _X], [_T, _V], [_X, _S], [_P, _V], [_E, _E]])
_REBER_NEXT = np.array([[1, 2], [1, 3], [2, 4], [2, 5], [3, 5], [5, 5]])
_FINAL = 5


def _reber_inner(rng, N):
    """N Reber strings (B ... E) as a padded (L, N) int array (-1 past the
    end), their lengths (N,), and the number of random choices in each."""
    columns = [np.full(N, _B)]
    state = np.zeros(N, dtype=np.int64)
    done = np.zeros(N, dtype=bool)
    while not done.all():
        coin = rng.integers(0, 2, N)
        symbol = np.where(done, -1, _REBER_SYMBOL[state, coin])
        done |= state == _FINAL
        state = _REBER_NEXT[state, coin]
        columns.append(symbol)
    inner = np.stack(columns)
    lengths = (inner >= 0).sum(axis=0)
    # Every state but the final one chooses between two edges: the symbols
    # strictly between B and E are the random choices.
    return inner, lengths, lengths - 2


def _reber_baselines(task):
    counted = task.counted()
    current = np.argmax(task.x, axis=2)[counted]
    nxt = task.y[counted]
    steps = int(counted.sum())
    memoryless = nll_of_counts(transition_counts(current, nxt, 7, 7)) / steps if steps else math.nan
    branches = task.info["rows"]["branches"]
    perfect = math.log(2) * float(np.sum(branches)) / steps if steps else math.nan
    out = {"baseline": memoryless, "baseline_perfect": perfect}
    if task.info["embedded"]:
        # Knowing the inner grammar state but not the first choice costs ln 2
        # once per string, when predicting the second-to-last symbol.
        out["baseline_short_memory"] = math.log(2) * float(np.sum(branches + 1)) / steps if steps else math.nan
    return out


def reber(n, *, embedded=True, seed=0):
    """Next-symbol prediction on strings of the (embedded) Reber grammar.

    Hochreiter & Schmidhuber 1997 ("Long short-term memory", experiment 1;
    the grammar from Reber 1967 as used by Cleeremans, Servan-Schreiber &
    McClelland 1989 and Fahlman 1991). A Reber string starts with B, walks
    the grammar's automaton taking each of a state's two edges with
    probability 1/2, and ends with E. An embedded Reber string is B, then T
    or P (probability 1/2), then a Reber string, then the same T or P again,
    then E: predicting that second-to-last symbol needs a memory of the
    second symbol across the whole inner string.

    At step t the input is symbol t (one-hot over ``REBER_SYMBOLS`` =
    B, T, P, S, X, V, E) and the target is symbol t + 1; a string of L
    symbols gives L - 1 steps (``lengths``).

    Baselines, in nats per counted step, computed exactly on the task's own
    data (and recomputed by :meth:`Task.subset`/:meth:`Task.split`):

    * ``baseline``: the best memoryless predictor, which sees only the
      current symbol: the empirical conditional distribution P(next |
      current), scored on the same data (the conditional entropy).
    * ``info["baseline_perfect"]``: a perfect model, which knows the
      grammar and the whole prefix: it pays ln 2 at each of the string's
      random choices and nothing elsewhere.
    * ``info["baseline_short_memory"]`` (embedded only): a model that knows
      the inner grammar state but has forgotten the second symbol: the
      perfect cost plus ln 2 per string.

    Parameters
    ----------
    n : int
        N, the number of strings.
    embedded : bool
        The embedded grammar (default) or plain Reber strings.
    seed : int
        Seeds the draws.

    Returns
    -------
    Task
        ``x`` (T, N, 7), ``y`` (T, N) int, ``lengths`` (N,) with T the
        longest length, ``readout="every"``, ``loss="softmax"``,
        ``n_classes=7``; ``info["rows"]`` holds the ``string`` (str) and its
        number of random ``branches``.
    """
    N = check_size("n", n)
    if not isinstance(embedded, (bool, np.bool_)):
        raise TypeError(f"embedded must be a bool, got {type(embedded).__name__}")
    rng = np.random.default_rng(task_seed(seed))
    inner, inner_lengths, branches = _reber_inner(rng, N)
    if embedded:
        choice = np.where(rng.integers(0, 2, N) == 0, _T, _P)
        seq = np.full((inner.shape[0] + 4, N), -1, dtype=np.int64)
        rows = np.arange(N)
        seq[0], seq[1] = _B, choice
        seq[2: 2 + inner.shape[0]] = inner
        seq[inner_lengths + 2, rows] = choice
        seq[inner_lengths + 3, rows] = _E
        lengths, branches = inner_lengths + 4, branches + 1
    else:
        seq, lengths = inner, inner_lengths
    strings = ["".join(REBER_SYMBOLS[s] for s in seq[: lengths[i], i]) for i in range(N)]
    inputs = np.where(np.arange(seq.shape[0] - 1)[:, None] < (lengths - 1)[None, :], seq[:-1], -1)
    x = _one_hot(inputs, len(REBER_SYMBOLS))
    y = np.maximum(seq[1:], 0)
    task = Task(
        "embedded_reber" if embedded else "reber", x, y, lengths - 1, None, "every", "softmax", 7, 0.0,
        info={"embedded": bool(embedded), "seed": seed, "symbols": REBER_SYMBOLS,
              "rows": {"string": strings, "branches": branches},
              "reference": "Hochreiter & Schmidhuber 1997, exp. 1"},
        baseline_fn=_reber_baselines,
    )
    return task._with_baselines()
