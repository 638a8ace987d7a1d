"""pyx_gru.tasks: the Task container and the synthetic generators.

Labels are checked against reimplementations written here from the
definitions (decoding the inputs, a regular expression for the Reber
grammar), and every baseline against the loss of the memoryless predictor
computed directly in NumPy, in the loss units of the interface: "mse" mean
over counted steps, rows and outputs; "softmax" mean NLL (nats) per counted
step.
"""
import math
import re
from pathlib import Path

import numpy as np
import pytest

from pyx_gru import tasks
from pyx_gru.tasks import Task

SYNTHETIC = {
    "adding": lambda seed=0: tasks.adding(40, 30, seed=seed),
    "copy_memory": lambda seed=0: tasks.copy_memory(30, 25, seed=seed),
    "temporal_order": lambda seed=0: tasks.temporal_order(30, 40, seed=seed),
    "reber": lambda seed=0: tasks.reber(50, seed=seed),
    "reber_plain": lambda seed=0: tasks.reber(50, embedded=False, seed=seed),
}


def softmax_nll(probs, y, counted):
    """Mean -log p(target) over counted steps; probs (..., K), y (...) int."""
    p = np.take_along_axis(probs, y[..., None], axis=-1)[..., 0]
    with np.errstate(divide="ignore"):
        return float(np.mean(-np.log(p[counted])))


def decode(x):
    """One-hot inputs (T, N, D) -> symbol indices (T, N), -1 where all zero."""
    return np.where(x.any(axis=2), x.argmax(axis=2), -1)


# -- the interface: shapes, dtypes, determinism -------------------------------


@pytest.mark.parametrize("name", list(SYNTHETIC))
def test_shapes_dtypes_and_interface(name):
    task = SYNTHETIC[name]()
    T, N, D = task.x.shape
    K = task.n_classes
    assert task.x.dtype == np.float64 and task.x.flags.c_contiguous
    assert task.readout in ("last", "every") and task.loss in ("mse", "softmax", "sigmoid")
    expected = {
        ("last", "mse"): ((N, K), np.float64),
        ("last", "softmax"): ((N,), np.int64),
        ("every", "softmax"): ((T, N), np.int64),
    }[task.readout, task.loss]
    assert (task.y.shape, task.y.dtype) == expected
    if task.loss == "softmax":
        assert task.y.min() >= 0 and task.y.max() < K
    if task.lengths is not None:
        assert task.lengths.dtype == np.int64 and task.lengths.shape == (N,)
        assert task.lengths.min() >= 1 and task.lengths.max() == T
        # padding inputs are zero
        assert not task.x[np.arange(T)[:, None] >= task.lengths[None, :]].any()
    assert task.mask is None
    assert isinstance(task.baseline, float) and np.isfinite(task.baseline)
    assert (task.T, task.N, task.D, len(task), task.n_outputs) == (T, N, D, N, K)
    assert task.info["seed"] == 0 and "reference" in task.info
    for arr in (task.x, task.y, task.lengths):
        if arr is not None:
            with pytest.raises(ValueError):
                arr[(0,) * arr.ndim] = 1
    with pytest.raises(AttributeError):
        task.baseline = 0.0
    assert repr(task).startswith(f"Task({task.name!r}, T={T}, N={N}")


@pytest.mark.parametrize("name", list(SYNTHETIC))
def test_deterministic_by_seed(name):
    a, b, c = SYNTHETIC[name](0), SYNTHETIC[name](0), SYNTHETIC[name](1)
    for field in ("x", "y", "lengths"):
        u, v = getattr(a, field), getattr(b, field)
        if u is None:
            assert v is None
            continue
        assert u.dtype == v.dtype and u.shape == v.shape and u.tobytes() == v.tobytes()
    assert a.baseline == b.baseline
    assert a.x.shape != c.x.shape or not np.array_equal(a.x, c.x)


# -- adding problem -----------------------------------------------------------


def test_adding_labels_are_the_marked_sum():
    T, N = 31, 200
    task = tasks.adding(N, T, seed=3)
    values, markers = task.x[:, :, 0], task.x[:, :, 1]
    assert task.x.shape == (T, N, 2) and task.n_classes == 1
    assert values.min() >= 0 and values.max() < 1
    assert set(np.unique(markers)) == {0.0, 1.0}
    assert np.all(markers.sum(axis=0) == 2)
    # one marker in each half
    assert np.all(markers[: T // 2].sum(axis=0) == 1) and np.all(markers[T // 2:].sum(axis=0) == 1)
    for n in range(N):
        marked = np.flatnonzero(markers[:, n])
        assert task.y[n, 0] == values[marked[0], n] + values[marked[1], n]
        assert marked.tolist() == task.info["rows"]["positions"][n].tolist()


def test_adding_baseline_matches_predicting_one():
    N = 100_000
    task = tasks.adding(N, 10, seed=1)
    mse = float(np.mean((np.ones((N, 1)) - task.y) ** 2))
    assert task.baseline == task.info["baseline_analytic"] == 1 / 6
    assert task.info["baseline_empirical"] == pytest.approx(mse, rel=1e-12)
    # d = a + b - 1 has the triangular density 1 - |d| on [-1, 1]:
    # E d^2 = 1/6, Var d^2 = E d^4 - 1/36 = 1/15 - 1/36. Five standard errors:
    assert abs(mse - 1 / 6) < 5 * math.sqrt((1 / 15 - 1 / 36) / N)


# -- copy memory --------------------------------------------------------------


@pytest.mark.parametrize("T, S, C", [(25, 8, 10), (1, 3, 2), (100, 8, 10)])
def test_copy_memory_labels(T, S, C):
    N = 20
    task = tasks.copy_memory(N, T, n_symbols=S, n_copy=C, seed=2)
    L = T + 2 * C
    assert task.x.shape == (L, N, S + 2) and task.y.shape == (L, N) and task.n_classes == S + 1
    assert np.all(task.x.sum(axis=2) == 1)  # one-hot everywhere
    seq = decode(task.x)
    symbols = seq[:C]
    assert symbols.min() >= 1 and symbols.max() <= S
    assert np.all(seq[C: T + C - 1] == 0)  # T - 1 blanks
    assert np.all(seq[T + C - 1] == S + 1)  # the marker
    assert np.all(seq[T + C:] == 0)
    assert np.all(task.y[: T + C] == 0)
    assert np.array_equal(task.y[T + C:], symbols)


@pytest.mark.parametrize("T", [1, 50, 100])
def test_copy_memory_baseline(T):
    N, S, C = 64, 8, 10
    task = tasks.copy_memory(N, T, seed=0)
    L = T + 2 * C
    probs = np.zeros((L, N, S + 1))
    probs[: T + C, :, 0] = 1.0
    probs[T + C:, :, 1:] = 1.0 / S
    nll = softmax_nll(probs, task.y, np.ones((L, N), bool))
    assert task.baseline == pytest.approx(10 * math.log(8) / (T + 20), rel=1e-12)
    assert nll == pytest.approx(task.baseline, rel=1e-12)
    assert task.info["baseline_empirical"] == pytest.approx(nll, rel=1e-12)


# -- temporal order -----------------------------------------------------------


@pytest.mark.parametrize("L", [20, 100])
def test_temporal_order_labels(L):
    N = 300
    task = tasks.temporal_order(N, L, seed=4)
    sym = tasks.TEMPORAL_ORDER_SYMBOLS
    assert task.x.shape == (L + L // 10, N, 8) and task.n_classes == 4
    lengths = task.lengths
    assert lengths.min() >= L and lengths.max() <= L + L // 10
    seq = decode(task.x)
    for n in range(N):
        s = "".join(sym[i] for i in seq[: lengths[n], n])
        assert np.all(seq[lengths[n]:, n] == -1)
        assert s[0] == "E" and s[-1] == "B"
        assert set(s[1:-1]) <= set("abcdXY")
        relevant = [i + 1 for i, ch in enumerate(s) if ch in "XY"]  # positions from 1
        assert len(relevant) == 2
        t1, t2 = relevant
        assert L // 10 <= t1 <= L // 5 and L // 2 <= t2 <= 6 * L // 10
        assert [t1, t2] == [task.info["rows"]["t1"][n], task.info["rows"]["t2"][n]]
        assert task.y[n] == ["XX", "XY", "YX", "YY"].index(s[t1 - 1] + s[t2 - 1])
    if L == 100:  # the paper's ranges
        assert lengths.min() == 100 and lengths.max() == 110


def test_temporal_order_baseline():
    N = 20_000
    task = tasks.temporal_order(N, 20, seed=5)
    counts = np.array([np.sum(task.y == k) for k in range(4)])
    prior = counts / N
    nll = float(np.mean(-np.log(prior[task.y])))
    assert task.baseline == math.log(4)
    assert task.info["baseline_empirical"] == pytest.approx(nll, rel=1e-12)
    # uniform classes: each frequency within 5 standard errors of 1/4
    assert np.all(np.abs(prior - 0.25) < 5 * math.sqrt(0.25 * 0.75 / N))
    assert 0 <= math.log(4) - nll < 1e-3


# -- embedded Reber grammar ---------------------------------------------------

# The Reber grammar as a regular expression, derived by hand from the graph in
# Hochreiter & Schmidhuber 1997 (fig. 3): from the state after P..V or X..P,
# (PXT*V)*(PSE|VE) reaches the end.
_TAIL = "(?:PXT*V)*(?:PSE|VE)"
REBER_RE = re.compile(f"B(?:TS*X(?:XT*V{_TAIL}|SE)|PT*V{_TAIL})")
EMBEDDED_RE = re.compile(f"B([TP]){REBER_RE.pattern}\\1E")
# Shortest completions from every point of a string, enough to decide whether a
# prefix can still be completed (each grammar state reaches E in <= 5 symbols).
_INNER_TAILS = ["", "E", "SE", "VE", "XSE", "VVE", "TXSE", "PVVE", "BTXSE"]
_COMPLETIONS = [a + b for a in _INNER_TAILS for b in ("", "E", "TE", "PE")] + ["TBTXSETE", "PBTXSEPE"]


def _accepts(string, embedded):
    return (EMBEDDED_RE if embedded else REBER_RE).fullmatch(string) is not None


def _options(prefix, embedded):
    """The symbols that can follow ``prefix`` in some accepted string."""
    return {s for s in "BTPSXVE" if any(_accepts(prefix + s + c, embedded) for c in _COMPLETIONS)}


def _reber_strings(task):
    """Strings decoded from x and y alone."""
    seq = decode(task.x)
    out = []
    for n in range(task.N):
        L = task.lengths[n]
        out.append("".join("BTPSXVE"[i] for i in seq[:L, n]) + "BTPSXVE"[task.y[L - 1, n]])
    return out


def test_regex_acceptor_itself():
    assert _accepts("BTSSXXTVVE", False) and _accepts("BPVVE", False) and _accepts("BTXSE", False)
    assert _accepts("BTBPVVETE", True) and _accepts("BPBTSXSEPE", True)
    assert not _accepts("BTBPVVEPE", True)  # second-to-last must repeat the second
    assert not _accepts("BTSSXXTVE", False) and not _accepts("BPVE", False)


@pytest.mark.parametrize("embedded", [True, False])
def test_reber_strings_are_grammatical(embedded):
    task = tasks.reber(400, embedded=embedded, seed=6)
    strings = _reber_strings(task)
    assert strings == task.info["rows"]["string"]
    assert all(_accepts(s, embedded) for s in strings)
    # targets are the next symbols: x shifted by one
    seq = decode(task.x)
    for n in range(task.N):
        L = task.lengths[n]
        assert np.array_equal(task.y[: L - 1, n], seq[1:L, n])
        assert not task.x[L:, n].any() and np.all(task.y[L:, n] == 0)
    # each string's second-to-last symbol repeats the second one
    if embedded:
        assert all(s[1] == s[-2] and s[1] in "TP" for s in strings)
    # both branches of the first choices occur
    assert {s[1] for s in strings} == {"T", "P"}


@pytest.mark.parametrize("embedded", [True, False])
def test_reber_baselines(embedded):
    task = tasks.reber(150, embedded=embedded, seed=7)
    strings = _reber_strings(task)
    pairs = [(s[i], s[i + 1]) for s in strings for i in range(len(s) - 1)]
    steps = len(pairs)
    assert steps == task.lengths.sum()
    # memoryless: the empirical P(next | current) scored on the same pairs
    joint, marginal = {}, {}
    for a, b in pairs:
        joint[a, b] = joint.get((a, b), 0) + 1
        marginal[a] = marginal.get(a, 0) + 1
    memoryless = sum(-math.log(joint[a, b] / marginal[a]) for a, b in pairs) / steps
    assert task.baseline == pytest.approx(memoryless, rel=1e-12)
    # perfect: every branch has two equally likely options, so the NLL of the
    # true model at a step is ln(number of possible next symbols)
    perfect = 0.0
    for s in strings:
        for i in range(len(s) - 1):
            options = _options(s[: i + 1], embedded)
            assert s[i + 1] in options and len(options) in (1, 2)
            perfect += math.log(len(options))
    assert task.info["baseline_perfect"] == pytest.approx(perfect / steps, rel=1e-12)
    if embedded:
        # forgetting the second symbol costs ln 2 at the second-to-last one
        short = perfect + len(strings) * math.log(2)
        assert task.info["baseline_short_memory"] == pytest.approx(short / steps, rel=1e-12)
        assert task.info["baseline_perfect"] < task.info["baseline_short_memory"] < task.baseline
    else:
        assert "baseline_short_memory" not in task.info


# -- Task: split, subset, validation ------------------------------------------


def test_split_partitions_rows_deterministically():
    task = tasks.reber(103, seed=8)
    parts = task.split((0.6, 0.2, 0.2), seed=3)
    again = task.split((0.6, 0.2, 0.2), seed=3)
    other = task.split((0.6, 0.2, 0.2), seed=4)
    assert [p.N for p in parts] == [62, 20, 21]  # round(61.8), round(82.4) - 62, rest
    strings = [p.info["rows"]["string"] for p in parts]
    assert sorted(sum(strings, [])) == sorted(task.info["rows"]["string"])
    for p, q in zip(parts, again, strict=True):
        assert np.array_equal(p.x, q.x) and np.array_equal(p.y, q.y) and np.array_equal(p.lengths, q.lengths)
    assert strings[0] != other[0].info["rows"]["string"]
    with pytest.raises(TypeError, match="seed must be None, an int >= 0"):
        task.split((0.6, 0.2, 0.2), seed="x")
    for p in parts:
        # T shrinks to the longest kept sequence; the baselines are the part's own
        assert p.T == p.lengths.max()
        fresh = Task(p.name, p.x, p.y, p.lengths, None, p.readout, p.loss, p.n_classes, 0.0,
                     info=p.info, baseline_fn=p.baseline_fn)._with_baselines()
        assert p.baseline == fresh.baseline and p.info["baseline_perfect"] == fresh.info["baseline_perfect"]
        assert p.baseline != task.baseline


def test_subset_selects_rows_and_recomputes_empirical_baselines():
    task = tasks.adding(50, 12, seed=9)
    idx = [4, 0, 7]
    sub = task.subset(idx)
    assert np.array_equal(sub.x, task.x[:, idx]) and np.array_equal(sub.y, task.y[idx])
    assert np.array_equal(sub.info["rows"]["positions"], task.info["rows"]["positions"][idx])
    assert sub.baseline == 1 / 6
    assert sub.info["baseline_empirical"] == pytest.approx(float(np.mean((task.y[idx] - 1) ** 2)), rel=1e-12)
    mask = np.zeros(50, bool)
    mask[[0, 4, 7]] = True
    assert np.array_equal(task.subset(mask).y, task.y[[0, 4, 7]])
    lasts = tasks.temporal_order(20, 20, seed=0)
    part = lasts.subset([3, 1])
    assert part.T == lasts.lengths[[3, 1]].max() and np.array_equal(part.y, lasts.y[[3, 1]])
    empty = task.subset([])
    assert empty.N == 0 and empty.baseline == 1 / 6 and math.isnan(empty.info["baseline_empirical"])
    with pytest.raises(ValueError, match="indices"):
        task.subset([50])
    with pytest.raises(TypeError, match="indices"):
        task.subset([0.5])
    with pytest.raises(ValueError, match="bool mask"):
        task.subset(np.ones(3, bool))
    with pytest.raises(ValueError, match="one-dimensional"):
        task.subset(3)


@pytest.mark.parametrize("fractions", [(0.5, 0.5), (0.5, 0.6, -0.1), (0.5, 0.2, 0.2), (np.nan, 0.5, 0.5)])
def test_split_rejects_bad_fractions(fractions):
    with pytest.raises(ValueError, match="fractions"):
        tasks.adding(10, 4).split(fractions)


def test_split_rejects_an_empty_part():
    with pytest.raises(ValueError, match="empty"):
        tasks.adding(3, 4).split((0.8, 0.1, 0.1))


@pytest.mark.parametrize("length", [1, 3, 7, 50])
@pytest.mark.parametrize("loss", ["sigmoid", "softmax"])
def test_chunks_keep_every_counted_step_once(length, loss):
    rng = np.random.default_rng(1)
    T, N, D, K = 12, 5, 2, 3
    lengths = np.array([12, 0, 5, 7, 1])
    x = rng.normal(size=(T, N, D))
    y = (rng.integers(0, K, (T, N)) if loss == "softmax"
         else (rng.random((T, N, K)) < 0.5).astype(float))
    mask = rng.random((T, N)) < 0.7
    task = Task("t", x, y, lengths, mask, "every", loss, K, 0.5,
                info={"rows": {"piece": [f"p{n}" for n in range(N)]}})
    parts = task.chunks(length)
    expected_windows = [(n, s) for n in range(N) for s in range(0, lengths[n], length)]
    assert parts.N == len(expected_windows)
    assert parts.T == min(length, lengths.max())
    counted = parts.counted()
    for m, (n, s) in enumerate(expected_windows):
        L = min(length, lengths[n] - s)
        assert parts.lengths[m] == L and parts.info["rows"]["chunk_of"][m] == n
        assert parts.info["rows"]["piece"][m] == f"p{n}"
        np.testing.assert_array_equal(parts.x[:L, m], x[s:s + L, n])
        np.testing.assert_array_equal(parts.y[:L, m], y[s:s + L, n])
        np.testing.assert_array_equal(counted[:L, m], mask[s:s + L, n])
        assert not parts.x[L:, m].any() and not counted[L:, m].any()
    assert counted.sum() == task.counted().sum()
    assert parts.info["chunk_length"] == length and parts.readout == "every"


def test_chunks_of_a_polyphonic_set_keep_its_frames_and_baseline():
    train = tasks.polyphonic("jsb")[0]
    parts = train.chunks(40)
    assert parts.counted().sum() == train.counted().sum()
    assert parts.baseline == pytest.approx(train.baseline, rel=1e-12)
    assert parts.lengths.max() == 40 and parts.N > train.N


@pytest.mark.parametrize("length", [0, -1, 2.0, True, None])
def test_chunks_reject_bad_lengths(length):
    task = Task("t", np.zeros((4, 2, 1)), np.zeros((4, 2, 1)), None, None, "every", "mse", 1, 0.0)
    with pytest.raises(ValueError, match="length must be an int >= 1"):
        task.chunks(length)


def test_chunks_need_a_target_at_every_step():
    with pytest.raises(ValueError, match="readout='every'"):
        tasks.adding(10, 7).chunks(3)


def test_counted_steps():
    task = tasks.reber(5, seed=0)
    c = task.counted()
    assert c.shape == (task.T, task.N) and np.array_equal(c.sum(axis=0), task.lengths)
    mask = np.zeros((task.T, task.N), bool)
    mask[0] = True
    masked = Task("m", task.x, task.y, task.lengths, mask, "every", "softmax", 7, 1.0)
    assert np.array_equal(masked.counted(), mask & c)
    last = tasks.temporal_order(4, 20, seed=0).counted()
    assert np.array_equal(np.argmax(last, axis=0), tasks.temporal_order(4, 20, seed=0).lengths - 1)
    assert np.all(last.sum(axis=0) == 1)


def _task(**kw):
    args = dict(name="t", x=np.zeros((3, 2, 1)), y=np.zeros(2, np.int64), lengths=None, mask=None,
                readout="last", loss="softmax", n_classes=2, baseline=1.0)
    args.update(kw)
    return Task(**args)


@pytest.mark.parametrize(
    "kw, error, match",
    [
        (dict(x=np.zeros((3, 2))), ValueError, r"x must have shape \(T, N, D\)"),
        (dict(x=np.zeros((3, 2, 1), complex)), TypeError, "x must hold real numbers"),
        (dict(y=np.zeros(3, np.int64)), ValueError, r"y must have shape \(2,\)"),
        (dict(y=np.zeros(2)), TypeError, "integer class indices"),
        (dict(y=np.array([0, 2])), ValueError, r"class indices in \[0, 2\)"),
        (dict(loss="mse", y=np.zeros(2)), ValueError, r"y must have shape \(2, 2\)"),
        (dict(loss="mse", y=np.full((2, 2), np.nan)), ValueError, "finite"),
        (dict(loss="sigmoid", y=np.full((2, 2), 2.0)), ValueError, r"\[0, 1\]"),
        (dict(readout="every", y=np.zeros((3, 3), np.int64)), ValueError, r"y must have shape \(3, 2\)"),
        (dict(readout="all"), ValueError, "readout must be one of"),
        (dict(loss="ce"), ValueError, "loss must be one of"),
        (dict(n_classes=0), ValueError, "n_classes must be >= 1"),
        (dict(lengths=[1, 4]), ValueError, "lengths must lie in"),
        (dict(lengths=[1.0, 2.0]), TypeError, "lengths must hold integers"),
        (dict(lengths=[1, 2, 3]), ValueError, r"lengths must have shape \(2,\)"),
        (dict(mask=np.ones((3, 2), bool)), ValueError, "mask applies only"),
        (dict(readout="every", y=np.zeros((3, 2), np.int64), mask=np.ones((3, 2))), TypeError, "mask must be a bool"),
        (dict(readout="every", y=np.zeros((3, 2), np.int64), mask=np.ones((2, 2), bool)),
         ValueError, r"mask must have shape \(3, 2\)"),
        (dict(baseline="low"), TypeError, "baseline must be a real number"),
        (dict(info=[]), TypeError, "info must be a dict"),
        (dict(info={"rows": {"a": [1]}}), ValueError, "one entry per sequence"),
        (dict(info={"rows": [1, 2]}), TypeError, r"info\['rows'\] must be a dict"),
        (dict(name=3), TypeError, "name must be a str"),
        (dict(baseline_fn=3), TypeError, "baseline_fn must be callable"),
    ],
)
def test_task_rejects_bad_input(kw, error, match):
    with pytest.raises(error, match=match):
        _task(**kw)


def test_task_converts_and_does_not_freeze_the_callers_arrays():
    x = np.zeros((3, 2, 1), np.float32)
    y = np.array([0, 1], np.int32)
    lengths = np.array([3, 1])
    task = _task(x=x, y=y, lengths=lengths, baseline=np.float32(0.5))
    assert task.x.dtype == np.float64 and task.y.dtype == np.int64 and task.lengths.dtype == np.int64
    assert type(task.baseline) is float
    lengths[0] = 2  # the caller's array stays writable and the task keeps its copy
    assert task.lengths[0] == 3
    x64 = np.zeros((3, 2, 1))
    assert _task(x=x64).x.flags.writeable is False and x64.flags.writeable


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda: tasks.adding(0), ValueError),
        (lambda: tasks.adding(2.0), TypeError),
        (lambda: tasks.adding(2, 1), ValueError),
        (lambda: tasks.adding(2, seed=-1), ValueError),
        (lambda: tasks.adding(2, seed=1.5), TypeError),
        (lambda: tasks.copy_memory(2, 0), ValueError),
        (lambda: tasks.copy_memory(2, n_symbols=1), ValueError),
        (lambda: tasks.copy_memory(2, n_copy=0), ValueError),
        (lambda: tasks.temporal_order(2, 19), ValueError),
        (lambda: tasks.reber(2, embedded="yes"), TypeError),
        (lambda: tasks.reber(True), TypeError),
    ],
)
def test_generators_reject_bad_arguments(call, error):
    with pytest.raises(error):
        call()


def test_readme_example_runs():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Tasks", 1)[1]
    code = section.split("```python", 1)[1].split("```", 1)[0]
    scope = {}
    exec(code, scope)
    assert scope["task"].baseline == 1 / 6
    assert [p.N for p in (scope["train"], scope["valid"], scope["test"])] == [8000, 1000, 1000]


def test_make_task_by_name():
    """The registry of the command line: a name of TASKS and the generator's
    arguments give the generator's task; an unknown name is a ValueError."""
    assert set(tasks.POLYPHONIC_TASKS) < set(tasks.TASKS)
    a, b = tasks.make_task("adding", length=7, n=5, seed=3), tasks.adding(5, 7, seed=3)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y, b.y)
    c = tasks.make_task("copy", length=12, n=4, seed=1)
    np.testing.assert_array_equal(c.x, tasks.copy_memory(4, 12, seed=1).x)
    parts = tasks.make_task("jsb", max_pieces=2)
    assert [p.x.shape[1] for p in parts] == [2, 2, 2]
    with pytest.raises(ValueError, match="task must be one of"):
        tasks.make_task("addition")
