"""Comparing cells fairly: equal parameter counts, several seeds, a grid of
learning rates, run in parallel through joblib.

``compare`` trains one model per (cell, learning rate, seed) on a task's
training part, with early stopping on its validation part, and scores the
best parameters on its test part. As in Chung et al. (2014), the cells are
compared at about equal numbers of parameters: ``match_hidden_size`` picks,
for each cell, the hidden size H whose whole model (recurrent layers and
readout) comes closest to a target count. The result, a ``Comparison``, is a
tidy table (one row per cell x lr x seed) with every run's learning curves;
it writes CSV and JSON and draws the plots (matplotlib, imported only
then). ``Comparison.summary`` picks each cell's learning rate by the lowest
mean best validation loss over the seeds and reports that learning rate's
test losses (choosing by test loss would flatter every cell). ``python -m
pyx_gru compare`` runs it from the command line (``add_compare_arguments``,
``check_compare_arguments``, ``run_compare``, ``main``).

The command's task registry (``TASKS``, ``make_task``) lives in
:mod:`pyx_gru.tasks` and the gradient-flow analysis (``flow_curve``,
``decay_rate``, ``rnn_rate_predictions``) in :mod:`pyx_gru.diagnostics`;
both are importable from here too.

Parallel and distributed runs
-----------------------------
The runs are independent jobs handed to ``joblib.Parallel``: ``n_jobs=1``
runs them one after the other in this process, ``n_jobs=2`` (or -1 for every
core) in worker processes (joblib's default ``loky`` backend; ``backend=``
names another). Each job limits the BLAS and OpenMP thread pools to
``threads_per_job`` threads (threadpoolctl; 1 by default, as extra threads
only fight over the cores: :doc:`/performance`) and records what the kernels
then saw in the column ``blas_threads``. A run depends only on its seed, so
the table is the same, up to the ``time`` column, whatever ``n_jobs`` and
``backend``.

joblib's backends move the same sweep onto a cluster; every worker needs
``pyx_gru`` (built) and its dependencies. With Dask (``pip install
"dask[distributed]"``), through the context manager (``backend="dask"``
passed to ``compare`` failed inside joblib when the recipe was checked)::

    import joblib
    from dask.distributed import Client
    from pyx_gru import experiments, tasks

    client = Client("tcp://scheduler-host:8786")    # or Client() for a local cluster
    train, valid, test = tasks.adding(10_000, length=200).split()
    # scatter: send the data to the workers once, not with every job
    with joblib.parallel_config(backend="dask", scatter=[train, valid, test]):
        result = experiments.compare((train, valid, test), cells=["rnn", "gru", "lstm"],
                                     n_params=10_000, lrs=[1e-3, 3e-3, 1e-2],
                                     seeds=range(5), n_jobs=-1)
    result.save("results/adding200")

With Ray (``pip install "ray[default]"``), call
``ray.util.joblib.register_ray()`` first (``ray.init(address="auto")`` for a
cluster), then ``with joblib.parallel_config(backend="ray"): ...``.

joblib and threadpoolctl are the optional extra ``experiments``
(``pip install "pyx_gru[experiments]"``); without them ``compare`` raises an
``ImportError`` that says so. Parameter matching needs neither.
"""
import contextlib
import csv
import functools
import io
import json
import hashlib
import math
import pathlib
import sys
import time

import numpy as np

from . import _blas
from ._files import write_atomically, write_text
from ._json import json_text, read_json
from ._validation import check_dtype, check_size
# the gradient-flow analysis and the task registry live in diagnostics and
# tasks; importable from here too, as before
from .diagnostics import decay_rate, flow_curve, rnn_rate_predictions
from .layers import CELL_ALIASES, CELLS, Model
from .optim import make_optimizer
from .tasks import POLYPHONIC_TASKS, TASKS, make_task  # noqa: F401 (importable here, as before)
from .train import History, evaluate, fit

__all__ = [
    "count_params",
    "match_hidden_size",
    "compare",
    "flow_curve",
    "decay_rate",
    "rnn_rate_predictions",
    "Comparison",
    "COLUMNS",
    "make_task",
    "TASKS",
    "add_compare_arguments",
    "check_compare_arguments",
    "run_compare",
    "main",
]

#: The columns of ``Comparison.rows``, in order (and the header of its CSV).
COLUMNS = (
    "task", "cell", "hidden_size", "n_params", "lr", "seed", "test_loss", "test_accuracy",
    "best_valid_loss", "best_epoch", "epochs", "stopped_early", "diverged", "time", "baseline",
    "blas_threads",
)

_EXTRA = 'pip install "pyx_gru[experiments]"'


def _parallel_tools():
    """(joblib, threadpoolctl), or an ImportError that says what to install."""
    try:
        import joblib
        import threadpoolctl
    except ImportError as exc:
        raise ImportError(
            f"pyx_gru.experiments.compare runs its jobs through joblib and limits their threads "
            f"with threadpoolctl ({exc.name} is missing): {_EXTRA}"
        ) from None
    return joblib, threadpoolctl


def _log_axis(ax):
    """A logarithmic y axis with plain numbers (0.01, 9) on its ticks."""
    from matplotlib.ticker import LogFormatter

    ax.set_yscale("log")
    # minor ticks labelled only when the axis spans about a decade or less
    ax.yaxis.set_major_formatter(LogFormatter())
    ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.4)))
    ax.tick_params(axis="y", which="minor", labelsize="x-small")


def _pyplot_free_figure(**kwargs):
    """A matplotlib Figure that needs no GUI backend (no pyplot)."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("the plots need matplotlib: pip install matplotlib") from None
    return Figure(**kwargs)


# ---------------------------------------------------------------------------
# Equal parameter counts
# ---------------------------------------------------------------------------

def _cell_name(cell):
    if isinstance(cell, str):
        name = CELL_ALIASES.get(cell, cell)
        if name not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS) + sorted(CELL_ALIASES)}, got {cell!r}")
        return name
    return cell


@functools.lru_cache(maxsize=256)
def _quadratic(cell, input_size, output_size, num_layers, bidirectional, cell_kwargs):
    return _count_coefficients(cell, input_size, output_size, num_layers, bidirectional,
                               dict(cell_kwargs))


def _count_coefficients(cell, input_size, output_size, num_layers, bidirectional, cell_kwargs):
    """(a, b, c) with count(H) = a H^2 + b H + c for the whole model.

    Every weight matrix of a model is (D or H) x (multiple of H) and every
    bias a multiple of H, or of K for the readout, so the count is a
    quadratic in H: three tiny models give its coefficients, a fourth checks
    them."""
    counts = [Model(input_size, h, output_size, cell=cell, num_layers=num_layers,
                    bidirectional=bidirectional, seed=0, **cell_kwargs).n_params
              for h in (1, 2, 3, 4)]
    c1, c2, c3, c4 = counts
    a2 = c3 - 2 * c2 + c1  # 2a
    if a2 % 2:
        raise AssertionError(f"parameter counts {counts} are not a quadratic in H")
    a = a2 // 2
    b = c2 - c1 - 3 * a
    c = c1 - a - b
    if a * 16 + b * 4 + c != c4:
        raise AssertionError(f"parameter counts {counts} are not a quadratic in H")
    return a, b, c


def _count_key(cell_kwargs):
    # The cell keywords that shape the parameters, hashable; gate_bias sets
    # values only, and a dict cannot key the cache.
    return tuple(sorted((k, v) for k, v in cell_kwargs.items() if k != "gate_bias"))


def count_params(cell, hidden_size, input_size, output_size, *, num_layers=1,
                 bidirectional=False, **cell_kwargs):
    """The number of parameters of a whole model, readout included.

    The same as ``Model(input_size, hidden_size, output_size, cell=cell,
    ...).n_params``, without building it.

    Parameters
    ----------
    cell : str or type
        As in ``pyx_gru.layers.make_cell``.
    hidden_size : int
        H.
    input_size, output_size : int
        D and K.
    num_layers : int
        Recurrent layers stacked (default 1).
    bidirectional : bool
        Each layer reads both ways (2H features per layer).
    **cell_kwargs
        More cell keywords (``reset=``, ``peephole=``; ``gate_bias=`` is
        taken and changes nothing here).

    Returns
    -------
    int
        The number of scalar parameters, every bias included.
    """
    hidden_size = check_size("hidden_size", hidden_size)
    a, b, c = _quadratic(_cell_name(cell), input_size, output_size, num_layers, bidirectional,
                         _count_key(cell_kwargs))
    return a * hidden_size ** 2 + b * hidden_size + c


def match_hidden_size(cell, n_params, input_size, output_size, *, num_layers=1,
                      bidirectional=False, **cell_kwargs):
    """The hidden size whose whole model comes closest to ``n_params`` parameters.

    Chung et al. (2014) compared the tanh RNN, the GRU and the LSTM at about
    20,000 parameters each (100, 46 and 36 units on their music data). Here
    the count includes the recurrent layers and the dense readout, with
    every bias; ties go to the smaller H.

    Parameters
    ----------
    cell : str or type
        As in ``pyx_gru.layers.make_cell``.
    n_params : int
        The target count.
    input_size, output_size : int
        D and K.
    num_layers : int
        Recurrent layers stacked (default 1).
    bidirectional : bool
        Each layer reads both ways (2H features per layer).
    **cell_kwargs
        More cell keywords (``reset=``, ``peephole=``).

    Returns
    -------
    int
        H >= 1 minimising ``|count_params(cell, H, ...) - n_params|``.
    """
    n_params = check_size("n_params", n_params)
    a, b, c = _quadratic(_cell_name(cell), input_size, output_size, num_layers, bidirectional,
                         _count_key(cell_kwargs))
    if a:
        # the positive root of a H^2 + b H + c = n_params (a > 0: H x H recurrent weights)
        root = (-b + math.sqrt(b * b - 4 * a * (c - n_params))) / (2 * a)
    else:
        # one layer of a cell with no recurrent weights (minGRU, minLSTM): linear in H
        root = (n_params - c) / b
    candidates = {max(1, math.floor(root)), max(1, math.ceil(root))}
    return min(sorted(candidates), key=lambda h: abs(a * h * h + b * h + c - n_params))


# ---------------------------------------------------------------------------
# One run, and the sweep
# ---------------------------------------------------------------------------

def _thread_limit(threadpoolctl, threads):
    if threads is None:
        return contextlib.nullcontext()
    return threadpoolctl.threadpool_limits(limits=threads)


def _run(job, train, valid, test, model_kwargs, fit_kwargs, threads):
    """Train and score one model; (row, history as a dict). Runs in a worker."""
    _, threadpoolctl = _parallel_tools()
    with _thread_limit(threadpoolctl, threads):
        blas_threads = _blas.threads()
        model = Model(train.D, job["hidden_size"], train.n_classes, cell=job["cell"],
                      readout=train.readout, seed=job["seed"], **model_kwargs)
        start = time.perf_counter()
        history = fit(model, train, valid=valid, lr=job["lr"], seed=job["seed"], verbose=0,
                      **fit_kwargs)
        elapsed = time.perf_counter() - start
        scores = evaluate(model, test)
    row = {
        "task": train.name, "cell": job["cell"], "hidden_size": job["hidden_size"],
        "n_params": model.n_params, "lr": job["lr"], "seed": job["seed"],
        "test_loss": scores["loss"], "test_accuracy": scores.get("accuracy"),
        "best_valid_loss": history.best_valid_loss, "best_epoch": history.best_epoch,
        "epochs": len(history.epoch), "stopped_early": history.stopped_early,
        "diverged": history.diverged, "time": elapsed, "baseline": test.baseline,
        "blas_threads": blas_threads,
    }
    return row, history.to_dict()


def _run_keyed(key, *args):
    """``_run`` with its job's key, for results that arrive in any order."""
    return (key, *_run(*args))


def _as_list(name, values, kind):
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        values = [values]
    values = list(values)
    if not values:
        raise ValueError(f"{name} must not be empty")
    for v in values:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, kind):
            raise TypeError(f"{name} must hold {kind[0].__name__}s, got {v!r}")
    if len(set(values)) != len(values):
        raise ValueError(f"{name} has duplicates: {values}")
    return values


def _split_data(task, split, split_seed):
    if isinstance(task, (tuple, list)):
        if len(task) != 3:
            raise ValueError("task must be a Task or a tuple (train, valid, test) of Tasks")
        parts = tuple(task)
    else:
        parts = task.split(split, seed=split_seed) if hasattr(task, "split") else None
    if parts is None or not all(hasattr(p, "readout") and hasattr(p, "baseline") for p in parts):
        raise TypeError("task must be a pyx_gru.tasks.Task or a tuple (train, valid, test) of Tasks")
    train, valid, test = parts
    for what, p in (("valid", valid), ("test", test)):
        if (p.D, p.n_classes, p.readout, p.loss) != (train.D, train.n_classes, train.readout, train.loss):
            raise ValueError(f"the {what} part does not match the training part (D, K, readout, loss)")
    return train, valid, test


def _cell_gate_bias(cell, gate_bias):
    """The entries of ``gate_bias`` that the cell has gates for."""
    if not gate_bias:
        return None
    gates = CELLS[cell][0].gates
    own = {g: v for g, v in gate_bias.items() if g in gates}
    return own or None


def compare(task, *, cells=("rnn", "sgru", "gru", "lstm"), n_params=None, hidden_size=None,
            lrs=(1e-3,), seeds=(0,), optimizer="adam", epochs=15, batch_size=32, clip=1.0,
            weight_noise=0.0, patience=None, bucket=False, chunk=None, dtype="float32",
            num_layers=1, gate_bias=None, split=(0.8, 0.1, 0.1), split_seed=0, n_jobs=1,
            backend=None,
            threads_per_job=1, verbose=0, journal=None, resume=False):
    """Train every cell with every learning rate and seed, and score them.

    Parameters
    ----------
    task : pyx_gru.tasks.Task or tuple (train, valid, test)
        A Task is split by ``Task.split(split, seed=split_seed)``.
    cells : sequence of str
        Names of ``pyx_gru.layers.CELLS`` (or their aliases).
    n_params : int, optional
        Give each cell the hidden size whose whole model comes closest to
        this many parameters (``match_hidden_size``).
    hidden_size : int, optional
        One H for every cell instead (give exactly one of the two).
    lrs : sequence of float
        The learning-rate grid.
    seeds : sequence of int
        Each seeds a model's initialisation and its training's shuffling
        (and weight noise).
    optimizer : {"adam", "rmsprop", "sgd"}
        The optimiser of every run.
    epochs : int
        As in ``pyx_gru.fit``.
    batch_size : int
        As in ``pyx_gru.fit``.
    clip : float or None
        As in ``pyx_gru.fit`` (None for no clipping).
    weight_noise : float
        As in ``pyx_gru.fit``.
    patience : int, optional
        As in ``pyx_gru.fit``.
    bucket : bool
        As in ``pyx_gru.fit``.
    chunk : int, optional
        Train on the training sequences cut into windows of at most this
        many steps (``Task.chunks``; ``readout="every"`` tasks only): more
        updates per epoch and less padding on long sequences. Validation
        and test stay whole. None: whole sequences.
    dtype : {"float32", "float64"}
        Precision of every model.
    num_layers : int
        Recurrent layers stacked in every model.
    gate_bias : dict of str to float, optional
        Initial gate biases (``pyx_gru.layers.set_gate_bias``), applied to
        every cell that has the gate: ``{"z": 2.0}`` sets the GRU's update
        gate, ``{"f": 2.0}`` the SimpleGRU's f and the LSTM's forget gate.
        None keeps each cell's defaults.
    split : tuple of 3 floats
        The train, valid and test fractions a Task is split into.
    split_seed : int
        Seeds that split.
    n_jobs : int
        Jobs at once (joblib): 1 runs them in this process, -1 on every core.
    backend : str, optional
        A joblib backend name (``"loky"``, ``"threading"``, ...); None takes
        the one of an enclosing ``joblib.parallel_config``, else loky. For a
        Dask or Ray cluster, use ``joblib.parallel_config`` as the module
        docstring shows.
    threads_per_job : int or None
        BLAS and OpenMP threads inside each job (None: no limit).
    verbose : int
        0 silent; 1 a line on stderr per finished run.
    journal : str or path-like, optional
        A directory (created if needed) where every finished run is
        recorded as it finishes, in a JSON file of its own (written
        atomically) named after everything its result depends on: the
        data, the run's cell, size, learning rate and seed, and the
        training settings.
    resume : bool
        Take the runs already recorded in ``journal`` instead of running
        them again, so that an interrupted sweep re-runs only the jobs that
        had not finished (the result is the same, as every run is seeded).
        Needs ``journal``.

    Returns
    -------
    Comparison
        Rows ordered by cell, then lr, then seed.

    Raises
    ------
    ImportError
        Without joblib or threadpoolctl (``pip install "pyx_gru[experiments]"``).
    """
    joblib, _ = _parallel_tools()
    train, valid, test = _split_data(task, split, split_seed)
    if chunk is not None:
        train = train.chunks(check_size("chunk", chunk))
    cells = [_cell_name(c) for c in _as_list("cells", cells, (str,))]
    lrs = [float(v) for v in _as_list("lrs", lrs, (int, float, np.integer, np.floating))]
    if not all(v > 0 and math.isfinite(v) for v in lrs):
        raise ValueError(f"lrs must be positive, got {lrs}")
    seeds = [int(s) for s in _as_list("seeds", seeds, (int, np.integer))]
    if (n_params is None) == (hidden_size is None):
        raise ValueError("give exactly one of n_params (a target count) and hidden_size")
    if threads_per_job is not None:
        threads_per_job = check_size("threads_per_job", threads_per_job)
    dtype = check_dtype(dtype).name
    make_optimizer(optimizer, lrs[0])  # a bad name fails here, not in every job
    if gate_bias:
        known = {g for c in cells for g in CELLS[c][0].gates}
        unknown = sorted(set(gate_bias) - known)
        if unknown:
            raise ValueError(f"gate_bias names gates {unknown} that none of the cells {cells} has")
    D, K = train.D, train.n_classes
    sizes = {}
    for c in cells:
        if n_params is not None:
            sizes[c] = match_hidden_size(c, n_params, D, K, num_layers=num_layers)
        else:
            sizes[c] = check_size("hidden_size", hidden_size)
    fit_kwargs = {"optimizer": optimizer, "epochs": epochs, "batch_size": batch_size,
                  "clip": clip, "weight_noise": weight_noise, "patience": patience,
                  "bucket": bucket}
    jobs = [{"cell": c, "hidden_size": sizes[c], "lr": lr, "seed": s}
            for c in cells for lr in lrs for s in seeds]

    def model_kwargs(cell):
        own = _cell_gate_bias(cell, gate_bias)
        return {"dtype": dtype, "num_layers": num_layers, **({"gate_bias": own} if own else {})}

    if resume and journal is None:
        raise ValueError("resume=True needs journal= (the directory of the runs recorded)")
    digest = _data_digest((train, valid, test))
    keys = [_job_key(job, digest, model_kwargs(job["cell"]), fit_kwargs) for job in jobs]
    done = {}
    if journal is not None:
        journal = pathlib.Path(journal)
        journal.mkdir(parents=True, exist_ok=True)
        if resume:
            done = {k: v for k in keys if (v := _read_job(journal, k)) is not None}
    todo = [(key, job) for key, job in zip(keys, jobs, strict=True) if key not in done]
    calls = (joblib.delayed(_run_keyed)(key, job, train, valid, test, model_kwargs(job["cell"]),
                                        fit_kwargs, threads_per_job)
             for key, job in todo)
    results = dict(done)
    start = time.perf_counter()
    if verbose and done:
        print(f"{len(done)} of {len(jobs)} runs taken from {journal}", file=sys.stderr, flush=True)
    # unordered: each run is recorded (and reported) as soon as it finishes, so
    # a long run does not hold back the progress of those after it
    with joblib.Parallel(n_jobs=n_jobs, backend=backend,
                         return_as="generator_unordered") as parallel:
        for key, row, history in parallel(calls):
            results[key] = (row, history)
            if journal is not None:
                _write_job(journal, key, row, history)
            if verbose:
                print(f"[{len(results)}/{len(jobs)}] {_row_line(row)}", file=sys.stderr, flush=True)
    rows = [results[k][0] for k in keys]
    histories = [History.from_dict(results[k][1]) for k in keys]
    settings = {
        "task": train.name, "T": train.T, "D": D, "K": K, "loss": train.loss,
        "readout": train.readout,
        "task_info": {k: v for k, v in train.info.items() if k != "rows"},
        "n_train": train.N, "n_valid": valid.N, "n_test": test.N,
        "baseline_train": train.baseline, "baseline_valid": valid.baseline,
        "baseline": test.baseline, "cells": cells, "hidden_sizes": sizes,
        "target_params": n_params, "lrs": lrs, "seeds": seeds, "dtype": dtype,
        "num_layers": num_layers, "gate_bias": gate_bias, "split": list(split),
        "split_seed": split_seed, "chunk": chunk, "n_jobs": n_jobs, "backend": backend,
        "threads_per_job": threads_per_job, "wall_time": time.perf_counter() - start,
        **fit_kwargs,
    }
    return Comparison(rows, histories, _jsonable(settings))


def _data_digest(parts):
    """A SHA-256 object fed with the three parts' data, to be copied by
    ``_job_key`` for each run (hashing the data once per sweep)."""
    h = hashlib.sha256()
    for part in parts:
        for a in (part.x, part.y, part.lengths, part.mask):
            if a is not None:
                a = np.ascontiguousarray(a)
                h.update(f"{a.dtype.str}{a.shape}".encode())
                # the array's own buffer: a.tobytes() would copy it (1.1 GB
                # for MuseData's training split)
                h.update(a.reshape(-1).view(np.uint8))
        h.update(f"{part.loss}{part.readout}{part.n_classes}".encode())
    return h


def _job_key(job, data_digest, model_kwargs, fit_kwargs):
    """The name of a run's journal file: a digest of everything its result
    depends on (the three parts' data, as ``_data_digest``, the run, the
    model's and fit's settings, and pyx_gru's version)."""
    from . import __version__

    h = data_digest.copy()
    h.update(json.dumps({"job": job, "model": model_kwargs, "fit": fit_kwargs,
                         "version": __version__}, sort_keys=True, default=str).encode())
    return f"{job['cell']}-lr{job['lr']:g}-seed{job['seed']}-{h.hexdigest()[:20]}"


def _write_job(journal, key, row, history):
    text = json.dumps({"key": key, "row": row, "history": history}, default=_to_json)
    write_text(journal / f"{key}.json", text)


def _read_job(journal, key):
    """(row, history dict) of a recorded run, or None when there is no
    complete record of it (a damaged one is reported and run again)."""
    path = journal / f"{key}.json"
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("key") != key or not isinstance(data.get("row"), dict):
            raise ValueError("not this run's record")
        History.from_dict(data["history"])
    except (ValueError, TypeError, KeyError) as exc:
        print(f"compare: {path} is not a complete record ({exc}); running it again",
              file=sys.stderr, flush=True)
        return None
    return data["row"], data["history"]


def _to_json(o):
    return o.tolist() if hasattr(o, "tolist") else str(o)


def _jsonable(obj):
    """obj with NumPy scalars and arrays as Python values (JSON-safe)."""
    return json.loads(json.dumps(obj, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def _row_line(row):
    acc = "" if row["test_accuracy"] is None else f" acc {row['test_accuracy']:.3f}"
    return (f"{row['cell']} H={row['hidden_size']} ({row['n_params']} params) lr={row['lr']:g} "
            f"seed={row['seed']}: test {row['test_loss']:.4g}{acc}, {row['epochs']} epochs, "
            f"{row['time']:.1f}s")


# ---------------------------------------------------------------------------
# The result
# ---------------------------------------------------------------------------

def _format_value(v):
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _format_table(rows, columns):
    """Rows (dicts) as a plain-text table with a header, columns aligned."""
    cells = [[c for c in columns]] + [[_format_value(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = ["  ".join(s.rjust(w) for s, w in zip(line, widths, strict=True)) for line in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


class Comparison:
    """The result of ``compare``: a tidy table and every run's history.

    ``compare`` makes it (or ``Comparison.from_json``); each parameter is
    kept as the attribute of its name.

    Parameters
    ----------
    rows : list of dict
        One per (cell, lr, seed), with the keys of ``COLUMNS``: ``test_loss``
        and ``test_accuracy`` (softmax tasks; else None) of the best
        parameters on the test part, ``best_valid_loss`` and ``best_epoch``,
        ``epochs`` run, ``time`` (s of training), ``n_params``,
        ``hidden_size``, ``baseline`` (the test part's memoryless baseline)
        and ``blas_threads`` (the BLAS threads the job ran with).
        ``pandas.DataFrame(result.rows)`` makes a data frame of it.
    histories : list of pyx_gru.History
        The learning curves, in the order of ``rows``.
    settings : dict
        The task, its sizes and baselines, the grid and the training settings.
    """

    def __init__(self, rows, histories, settings):
        if len(rows) != len(histories):
            raise ValueError("rows and histories must have the same length")
        self.rows = [dict(r) for r in rows]
        self.histories = list(histories)
        self.settings = dict(settings)

    def __len__(self):
        return len(self.rows)

    def __repr__(self):
        return (f"Comparison({self.settings.get('task')!r}, cells={self.settings.get('cells')}, "
                f"{len(self.rows)} runs)")

    @property
    def baseline(self):
        """float: the test part's memoryless baseline."""
        return self.settings["baseline"]

    def summary(self):
        """Per cell, the learning rate chosen on validation data and its test losses.

        Returns
        -------
        list of dict
            One per cell, in the order of ``settings["cells"]``: ``cell``,
            ``hidden_size``, ``n_params``, ``lr`` (the lowest mean best
            validation loss over the seeds; runs without one count as
            infinite), ``valid_loss`` (that mean), ``test_loss`` (mean over
            the seeds at that lr), ``test_std`` (their standard deviation,
            ddof=0), ``test_min``, ``test_max``, ``seeds``, ``baseline`` and
            ``ratio`` (test_loss / baseline).
        """
        out = []
        for cell in dict.fromkeys(r["cell"] for r in self.rows):
            mine = [r for r in self.rows if r["cell"] == cell]
            by_lr = {}
            for r in mine:
                by_lr.setdefault(r["lr"], []).append(r)

            def valid_mean(runs):
                v = [math.inf if r["best_valid_loss"] is None else r["best_valid_loss"] for r in runs]
                return float(np.mean(v))

            lr = min(by_lr, key=lambda k: valid_mean(by_lr[k]))
            runs = by_lr[lr]
            test = np.array([r["test_loss"] for r in runs], dtype=float)
            out.append({
                "cell": cell, "hidden_size": runs[0]["hidden_size"], "n_params": runs[0]["n_params"],
                "lr": lr, "valid_loss": valid_mean(runs), "test_loss": float(test.mean()),
                "test_std": float(test.std()), "test_min": float(test.min()),
                "test_max": float(test.max()), "seeds": len(runs), "baseline": runs[0]["baseline"],
                "ratio": float(test.mean() / runs[0]["baseline"]) if runs[0]["baseline"] else None,
            })
        return out

    def against(self, reference="rnn"):
        """Test whether each cell's advantage over ``reference`` exceeds the seeds' spread.

        Each cell is taken at its learning rate chosen on validation data
        (:meth:`summary`), and its test losses over the seeds are compared
        with the reference cell's by Welch's t-test (unequal variances),
        one-sided: the alternative is that the cell's mean test loss is
        lower.

        Parameters
        ----------
        reference : str
            The cell to compare the others with (default the tanh RNN).

        Returns
        -------
        list of dict
            One per other cell, in the order of :meth:`summary`: ``cell``,
            ``reference``, ``advantage`` (the reference's mean test loss
            minus the cell's; positive when the cell is better), ``spread``
            (the larger of the two standard deviations over the seeds,
            ddof=1), ``t`` and ``p`` (Welch's statistic and its one-sided
            p-value; NaN with fewer than 2 seeds or no spread at all) and
            ``separated`` (True when every seed of the cell has a lower test
            loss than every seed of the reference).

        Raises
        ------
        ValueError
            If ``reference`` is not one of the table's cells.
        """
        from scipy import stats

        summary = {s["cell"]: s for s in self.summary()}
        reference = _cell_name(reference) if reference not in summary else reference
        if reference not in summary:
            raise ValueError(f"reference must be one of the cells {list(summary)}, got {reference!r}")

        def losses(cell):
            lr = summary[cell]["lr"]
            return np.array([r["test_loss"] for r in self.rows
                             if r["cell"] == cell and r["lr"] == lr], dtype=float)

        ref = losses(reference)
        out = []
        for cell in summary:
            if cell == reference:
                continue
            mine = losses(cell)
            t = p = math.nan
            spread = math.nan
            if len(mine) >= 2 and len(ref) >= 2:
                spread = float(max(mine.std(ddof=1), ref.std(ddof=1)))
                if spread > 0:
                    test = stats.ttest_ind(ref, mine, equal_var=False, alternative="greater")
                    t, p = float(test.statistic), float(test.pvalue)
            out.append({"cell": cell, "reference": reference,
                        "advantage": float(ref.mean() - mine.mean()), "spread": spread,
                        "t": t, "p": p, "separated": bool(mine.max() < ref.min())})
        return out

    def format(self):
        """The table and the summary as text.

        Returns
        -------
        str
            A heading line (task, sizes, loss, baseline), the table of every
            run and the ``summary`` table, as aligned columns.
        """
        s = self.settings
        head = (f"task {s.get('task')} (T={s.get('T')}, {s.get('n_train')}/{s.get('n_valid')}/"
                f"{s.get('n_test')} sequences), loss {s.get('loss')}, baseline {self.baseline:.4g}")
        summary_cols = ("cell", "hidden_size", "n_params", "lr", "valid_loss", "test_loss",
                        "test_std", "test_min", "test_max", "seeds", "ratio")
        cols = [c for c in COLUMNS if c != "task" and not (
            c == "test_accuracy" and all(r[c] is None for r in self.rows))]
        parts = [head, _format_table(self.rows, cols),
                 "learning rate chosen on validation loss; test loss over the seeds:",
                 _format_table(self.summary(), summary_cols)]
        cells = [r["cell"] for r in self.rows]
        if "rnn" in cells and len(set(cells)) > 1 and cells.count("rnn") > 1:
            parts += ["advantage over the tanh RNN against the spread between seeds "
                      "(Welch's t-test, one-sided):",
                      _format_table(self.against("rnn"),
                                    ("cell", "advantage", "spread", "t", "p", "separated"))]
        return "\n\n".join(parts)

    # -- files --------------------------------------------------------------

    def to_csv(self, path=None):
        """The table as CSV (header ``COLUMNS``; None as an empty field).

        Parameters
        ----------
        path : str or os.PathLike, optional
            A file to write the text to as well.

        Returns
        -------
        str
            The CSV text, one line per row of ``rows``.
        """
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(COLUMNS)
        for r in self.rows:
            writer.writerow(["" if r[c] is None else repr(r[c]) if isinstance(r[c], float) else r[c]
                             for c in COLUMNS])
        text = buf.getvalue()
        if path is not None:
            write_text(path, text)
        return text

    def to_dict(self):
        """The whole result as a dict.

        Returns
        -------
        dict
            ``settings``, ``columns``, ``rows`` and ``histories`` (as dicts),
            with a format name and version; JSON-safe.
        """
        return {"format": "pyx_gru.experiments.Comparison", "version": 1,
                "settings": self.settings, "columns": list(COLUMNS), "rows": self.rows,
                "histories": [h.to_dict() for h in self.histories]}

    def to_json(self, path=None):
        """The whole result as JSON; written to ``path`` too when given.

        Parameters
        ----------
        path : str or os.PathLike, optional
            A file to write the text to as well.

        Returns
        -------
        str
            The JSON text of ``to_dict()``; ``Comparison.from_json`` reads it.
        """
        return json_text(_jsonable(self.to_dict()), path)

    @classmethod
    def from_json(cls, text_or_path):
        """A Comparison from ``to_json``'s text or the path of a file holding it.

        Parameters
        ----------
        text_or_path : str or os.PathLike
            The JSON text, or the file ``to_json`` (or ``save``) wrote.

        Returns
        -------
        Comparison
            The result read back, histories included.
        """
        d = read_json(text_or_path)
        if d.get("format") != "pyx_gru.experiments.Comparison":
            raise ValueError("not the JSON of a pyx_gru.experiments.Comparison")
        return cls(d["rows"], [History.from_dict(h) for h in d["histories"]], d["settings"])

    def save(self, directory, *, plots=True):
        """Write ``results.csv``, ``results.json`` and (with ``plots``)
        ``learning_curves.png`` and ``test_loss.png`` into ``directory``
        (created if needed).

        Parameters
        ----------
        directory : str or os.PathLike
            Where to write.
        plots : bool
            Draw the two plots too (needs matplotlib).

        Returns
        -------
        dict of str to pathlib.Path
            What was written, by kind.
        """
        from pathlib import Path

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        paths = {"csv": directory / "results.csv", "json": directory / "results.json"}
        self.to_csv(paths["csv"])
        self.to_json(paths["json"])
        if plots:
            paths["learning_curves"] = directory / "learning_curves.png"
            paths["test_loss"] = directory / "test_loss.png"
            for key, fig in (("learning_curves", self.plot_learning_curves()),
                             ("test_loss", self.plot_test_loss())):
                write_atomically(paths[key], lambda f, fig=fig: fig.savefig(f, format="png", dpi=110))
        return paths

    # -- plots ----------------------------------------------------------------

    def plot_learning_curves(self, *, logy=True):
        """Validation loss per epoch, one panel per cell, a colour per learning rate.

        Each run is a line (its seeds share the colour); the training loss
        is dotted; the dashed black line is the memoryless baseline. Needs
        matplotlib.

        Parameters
        ----------
        logy : bool
            Logarithmic loss axis.

        Returns
        -------
        matplotlib.figure.Figure
            A new figure (not registered with pyplot).
        """
        cells = list(dict.fromkeys(r["cell"] for r in self.rows))
        lrs = sorted({r["lr"] for r in self.rows})
        fig = _pyplot_free_figure(figsize=(3.6 * len(cells), 3.4), layout="constrained")
        axes = fig.subplots(1, len(cells), sharey=True, squeeze=False)[0]
        colours = {lr: f"C{i % 10}" for i, lr in enumerate(lrs)}
        for ax, cell in zip(axes, cells, strict=True):
            for r, h in zip(self.rows, self.histories, strict=True):
                if r["cell"] != cell:
                    continue
                label = f"lr {r['lr']:g}" if r["seed"] == min(
                    q["seed"] for q in self.rows if q["cell"] == cell and q["lr"] == r["lr"]) else None
                valid = [np.nan if v is None else v for v in h.valid_loss]
                ax.plot(h.epoch, valid, color=colours[r["lr"]], lw=1.2, label=label)
                ax.plot(h.epoch, h.train_loss, color=colours[r["lr"]], lw=0.8, ls=":", alpha=0.7)
            ax.axhline(self.baseline, color="k", ls="--", lw=1)
            if logy:
                _log_axis(ax)
            first = next(r for r in self.rows if r["cell"] == cell)
            ax.set_title(f"{cell} (H={first['hidden_size']}, {first['n_params']} params)")
            ax.set_xlabel("epoch")
        axes[0].set_ylabel(f"valid loss ({self.settings.get('loss')}); train dotted")
        axes[-1].legend(fontsize="small")
        fig.suptitle(f"{self.settings.get('task')}, T={self.settings.get('T')}: "
                     "learning curves (dashed: baseline)")
        return fig

    def plot_test_loss(self, *, logy=True):
        """Test loss per cell against the baseline: a point per run (a colour
        per learning rate), the chosen learning rate's mean as a black bar.
        Needs matplotlib.

        Parameters
        ----------
        logy : bool
            Logarithmic loss axis.

        Returns
        -------
        matplotlib.figure.Figure
            A new figure (not registered with pyplot).
        """
        cells = list(dict.fromkeys(r["cell"] for r in self.rows))
        lrs = sorted({r["lr"] for r in self.rows})
        fig = _pyplot_free_figure(figsize=(1.6 * len(cells) + 2.5, 3.6), layout="constrained")
        ax = fig.subplots()
        width = 0.6
        for i, lr in enumerate(lrs):
            offset = (i - (len(lrs) - 1) / 2) * width / max(len(lrs), 1)
            xs, ys = [], []
            for j, cell in enumerate(cells):
                for r in self.rows:
                    if r["cell"] == cell and r["lr"] == lr:
                        xs.append(j + offset)
                        ys.append(r["test_loss"])
            ax.plot(xs, ys, "o", color=f"C{i % 10}", ms=5, alpha=0.8, label=f"lr {lr:g}")
        for j, s in enumerate(self.summary()):
            ax.plot([j - width / 2, j + width / 2], [s["test_loss"]] * 2, color="k", lw=2,
                    label="chosen lr, mean" if j == 0 else None)
        ax.axhline(self.baseline, color="k", ls="--", lw=1, label="baseline")
        ax.set_xticks(range(len(cells)))
        ax.set_xticklabels([f"{s['cell']}\nH={s['hidden_size']}" for s in self.summary()])
        if logy:
            _log_axis(ax)
        ax.set_ylabel(f"test loss ({self.settings.get('loss')})")
        ax.set_title(f"{self.settings.get('task')}, T={self.settings.get('T')}, "
                     f"~{self.settings.get('target_params') or ''} params")
        ax.legend(fontsize="small", loc="best")
        return fig


# ---------------------------------------------------------------------------
# The command: python -m pyx_gru compare
# ---------------------------------------------------------------------------

def _list_of(kind, what):
    def parse(text):
        try:
            values = [kind(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise _argparse().ArgumentTypeError(
                f"{what}: expected a comma-separated list, got {text!r}") from None
        if not values:
            raise _argparse().ArgumentTypeError(f"{what}: empty list")
        return values
    return parse


def _gate_bias_arg(text):
    try:
        gate, value = text.split("=")
        return gate.strip(), float(value)
    except ValueError:
        raise _argparse().ArgumentTypeError(
            f"--gate-bias: expected GATE=VALUE such as z=2, got {text!r}") from None


def _argparse():
    import argparse
    return argparse


# --quick: a smoke test of the whole pipeline in seconds
_QUICK = {"n": 200, "length": 20, "params": 600, "epochs": 2, "seeds": 1, "max_pieces": 6}


def add_compare_arguments(parser):
    """Add the ``compare`` command's options to an ``argparse`` parser.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        Gets the options ``--task``, ``--cells``, ``--params``, ... in place.

    Returns
    -------
    argparse.ArgumentParser
        ``parser`` itself.
    """
    p = parser
    p.add_argument("--task", choices=TASKS, default="adding", help="the task (default adding)")
    p.add_argument("--length", type=int, default=100,
                   help="T for adding, copy and temporal_order (default 100)")
    p.add_argument("--n", type=int, default=10_000,
                   help="sequences generated for the synthetic tasks (default 10000)")
    p.add_argument("--max-pieces", type=int, default=None,
                   help="chorales and the polyphonic sets: only the first this many pieces "
                        "(of each split) (default all)")
    p.add_argument("--task-seed", type=int, default=0, help="seeds the task's generator (default 0)")
    p.add_argument("--split", type=_list_of(float, "--split"), default=[0.8, 0.1, 0.1],
                   help="train,valid,test fractions (default 0.8,0.1,0.1; the polyphonic "
                        "sets keep their original splits)")
    p.add_argument("--cells", type=_list_of(str, "--cells"), default=["rnn", "sgru", "gru", "lstm"],
                   help=f"comma-separated, from {', '.join(CELLS)} (default rnn,sgru,gru,lstm)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--params", type=int, default=None,
                      help="match every model to this many parameters (default 10000)")
    size.add_argument("--hidden", type=int, default=None, help="one hidden size for every cell")
    p.add_argument("--layers", type=int, default=1, help="stacked recurrent layers (default 1)")
    p.add_argument("--seeds", type=int, default=2, help="seeds 0..N-1 per cell and lr (default 2)")
    p.add_argument("--lr", type=_list_of(float, "--lr"), default=None,
                   help="comma-separated learning rates (default 1e-3,3e-3)")
    p.add_argument("--optimizer", choices=["adam", "rmsprop", "sgd"], default="adam")
    p.add_argument("--epochs", type=int, default=15, help="at most this many epochs (default 15)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--clip", type=float, default=1.0, help="global-norm clipping, 0 for none (default 1)")
    p.add_argument("--weight-noise", type=float, default=0.0, help="weight noise std (default 0)")
    p.add_argument("--patience", type=int, default=None,
                   help="early stopping after this many epochs without progress (default none)")
    p.add_argument("--bucket", action="store_true",
                   help="batch sequences of similar lengths together (less padding; "
                        "fit's bucket=True)")
    p.add_argument("--chunk", type=int, default=None, metavar="STEPS",
                   help="train on the training sequences cut into windows of at most this "
                        "many steps (Task.chunks); validation and test stay whole")
    p.add_argument("--gate-bias", type=_gate_bias_arg, action="append", default=[],
                   metavar="GATE=VALUE", help="initial bias of a gate in every cell that has it, "
                   "e.g. z=2 (GRU update gate) or f=2; repeatable")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--n-jobs", type=int, default=1, help="parallel jobs, -1 for every core (default 1)")
    p.add_argument("--backend", default=None, help="joblib backend (default loky)")
    p.add_argument("--threads-per-job", type=int, default=1,
                   help="BLAS/OpenMP threads in each job, 0 for no limit (default 1)")
    p.add_argument("--out", default=None,
                   help="directory for results.csv/.json and the plots (default pyx_gru_results/TASK)")
    p.add_argument("--no-plots", action="store_true", help="write no plots")
    p.add_argument("--resume", action="store_true",
                   help="take the runs already finished in OUT/runs (each finished run is "
                        "recorded there) and run only the others")
    p.add_argument("--quick", action="store_true",
                   help=f"a smoke test: {_QUICK['n']} sequences, T <= {_QUICK['length']}, "
                        f"~{_QUICK['params']} params, {_QUICK['epochs']} epochs, 1 seed, one lr")
    p.add_argument("--verbose", "-v", action="store_true", help="a line per finished run on stderr")
    return parser


def run_compare(args):
    """Run ``compare`` as the parsed ``args`` ask, print the table, write the files.

    Parameters
    ----------
    args : argparse.Namespace
        The options of ``add_compare_arguments``, parsed.

    Returns
    -------
    int
        The exit status (0).

    Raises
    ------
    ValueError
        For an option out of range, naming it.
    """
    check_compare_arguments(args)
    n, length, epochs, seeds = args.n, args.length, args.epochs, args.seeds
    params, lrs, max_pieces = args.params, args.lr or [1e-3, 3e-3], args.max_pieces
    if args.quick:
        n, length = min(n, _QUICK["n"]), min(length, _QUICK["length"])
        epochs, seeds = min(epochs, _QUICK["epochs"]), min(seeds, _QUICK["seeds"])
        params = min(params or _QUICK["params"], _QUICK["params"]) if args.hidden is None else None
        lrs = lrs[-1:] if args.lr is None else lrs[:1]
        max_pieces = min(max_pieces or _QUICK["max_pieces"], _QUICK["max_pieces"])
    if args.hidden is None and params is None:
        params = 10_000
    task = make_task(args.task, length=length, n=n, seed=args.task_seed, max_pieces=max_pieces)
    out = pathlib.Path(args.out) if args.out else pathlib.Path("pyx_gru_results") / args.task
    result = compare(
        task, cells=args.cells, n_params=params, hidden_size=args.hidden, lrs=lrs,
        seeds=range(seeds), optimizer=args.optimizer, epochs=epochs,
        batch_size=args.batch_size, clip=args.clip or None, weight_noise=args.weight_noise,
        patience=args.patience, bucket=args.bucket, chunk=args.chunk, dtype=args.dtype,
        num_layers=args.layers,
        gate_bias=dict(args.gate_bias) or None, split=tuple(args.split), n_jobs=args.n_jobs,
        backend=args.backend, threads_per_job=args.threads_per_job or None,
        verbose=int(args.verbose), journal=out / "runs", resume=args.resume)
    print(result.format())
    try:
        paths = result.save(out, plots=not args.no_plots)
    except ImportError as exc:  # no matplotlib: keep the table
        print(f"no plots: {exc}", file=sys.stderr)
        paths = result.save(out, plots=False)
    print("\nwrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def check_compare_arguments(args):
    """Check the parsed options of ``compare``.

    Parameters
    ----------
    args : argparse.Namespace
        The options of ``add_compare_arguments``, parsed.

    Returns
    -------
    None
        It only raises.

    Raises
    ------
    ValueError
        Naming the first option out of range.
    """
    for name in ("n", "length", "epochs", "batch_size", "seeds", "layers"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1")
    for name in ("params", "hidden", "max_pieces", "patience", "chunk"):
        v = getattr(args, name)
        if v is not None and v < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1")
    if args.n_jobs == 0:
        raise ValueError("--n-jobs must not be 0 (1 for serial, -1 for every core)")
    if args.threads_per_job < 0:
        raise ValueError("--threads-per-job must be >= 0")
    if any(not lr > 0 for lr in args.lr or []):
        raise ValueError("--lr values must be > 0")
    if args.clip < 0 or args.weight_noise < 0:
        raise ValueError("--clip and --weight-noise must be >= 0")
    if len(args.split) != 3:
        raise ValueError("--split needs three fractions")
    for c in args.cells:
        if CELL_ALIASES.get(c, c) not in CELLS:
            raise ValueError(f"--cells: unknown cell {c!r}; choose from {', '.join(CELLS)}")


COMPARE_DESCRIPTION = ("Train cells at equal parameter counts over seeds and learning rates, "
                       "print the table, write results.csv/.json and plots.")


def main(argv=None):
    """Run ``python -m pyx_gru compare [options]``, also ``python -m pyx_gru.experiments [options]``.

    Parameters
    ----------
    argv : list of str, optional
        The options; None reads ``sys.argv[1:]``.

    Returns
    -------
    int
        The exit status of ``run_compare`` (0).

    Raises
    ------
    SystemExit
        For a bad option, with status 2 and the message on stderr (as
        ``argparse`` does).
    """
    parser = _argparse().ArgumentParser(prog="python -m pyx_gru compare",
                                        description=COMPARE_DESCRIPTION)
    add_compare_arguments(parser)
    args = parser.parse_args(argv)
    try:
        check_compare_arguments(args)
    except ValueError as exc:
        parser.error(str(exc))
    return run_compare(args)


if __name__ == "__main__":
    sys.exit(main())
