"""pyx_gru.experiments: parameter matching, the sweep and its table, files,
plots, determinism across n_jobs, and the compare command end to end."""
import csv
import importlib.util
import io
import json
import math
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import pyx_gru as pg
from pyx_gru import experiments, tasks
from pyx_gru.__main__ import main as pyx_gru_main
from pyx_gru.experiments import COLUMNS, Comparison, compare, count_params, match_hidden_size


# compare runs its jobs through joblib, each held to its threads by threadpoolctl
needs_parallel = pytest.mark.skipif(
    any(importlib.util.find_spec(name) is None for name in ("joblib", "threadpoolctl")),
    reason="compare needs joblib and threadpoolctl (the 'experiments' extra), not installed")
CELL_NAMES = sorted(pg.layers.CELLS)
ROOT = pathlib.Path(__file__).resolve().parents[1]


# -- parameter counts --------------------------------------------------------

@pytest.mark.parametrize("cell", CELL_NAMES)
@pytest.mark.parametrize("layers, bidirectional", [(1, False), (2, False), (2, True)])
def test_count_params_is_the_models_count(cell, layers, bidirectional):
    for H in (1, 5, 17, 64):
        model = pg.Model(3, H, 7, cell=cell, num_layers=layers, bidirectional=bidirectional, seed=0)
        assert count_params(cell, H, 3, 7, num_layers=layers, bidirectional=bidirectional) == model.n_params


def test_count_params_closed_forms():
    D, H, K = 88, 46, 88
    readout = H * K + K
    assert count_params("rnn", H, D, K) == D * H + H * H + H + readout
    # GRU (reset after): 3 gate blocks and the recurrent candidate bias b_hg
    assert count_params("gru", H, D, K) == 3 * (D * H + H * H + H) + H + readout
    assert count_params("gru_before", H, D, K) == 3 * (D * H + H * H + H) + readout
    assert count_params("sgru", H, D, K) == 2 * (D * H + H * H + H) + readout
    assert count_params("lstm", H, D, K) == 4 * (D * H + H * H + H) + readout
    assert count_params("lstm_peephole", H, D, K) == 4 * (D * H + H * H + H) + 3 * H + readout


@pytest.mark.parametrize("cell", CELL_NAMES)
@pytest.mark.parametrize("target", [10, 500, 10_000, 20_000, 123_457])
def test_match_hidden_size_is_the_closest_count(cell, target):
    D, K = 88, 88
    H = match_hidden_size(cell, target, D, K)
    counts = {h: count_params(cell, h, D, K) for h in range(1, 1000)}  # minGRU, minLSTM: linear in H
    best = min(abs(c - target) for c in counts.values())
    assert abs(counts[H] - target) == best
    assert H == min(h for h, c in counts.items() if abs(c - target) == best)  # ties: the smaller H


def test_match_hidden_size_at_chung_et_al_s_budget():
    """About 20,000 parameters with 88 inputs and outputs (Chung et al. 2014
    used 100 tanh units, 46 GRU units, 36 LSTM units)."""
    sizes = {c: match_hidden_size(c, 20_000, 88, 88) for c in ("rnn", "gru", "lstm")}
    assert sizes["rnn"] > sizes["gru"] > sizes["lstm"]
    for c, H in sizes.items():
        # within half a step of H of the target
        step = count_params(c, H + 1, 88, 88) - count_params(c, H, 88, 88)
        assert abs(count_params(c, H, 88, 88) - 20_000) <= step / 2


def test_matching_rejects_bad_arguments():
    with pytest.raises(ValueError, match="cell must be one of"):
        match_hidden_size("transformer", 1000, 2, 1)
    with pytest.raises(ValueError, match="n_params must be >= 1"):
        match_hidden_size("gru", 0, 2, 1)
    with pytest.raises(TypeError, match="hidden_size must be an int"):
        count_params("gru", 2.5, 2, 1)


# -- gate bias initialisation ------------------------------------------------

def test_default_gate_biases_are_unchanged():
    H = 5
    assert np.all(pg.GRU(2, H, seed=0).params["b"] == 0)
    assert np.all(pg.SimpleGRU(2, H, seed=0).params["b"] == 0)
    b = pg.LSTM(2, H, seed=0).params["b"]
    assert np.all(b[H:2 * H] == 1) and np.all(np.delete(b, np.s_[H:2 * H]) == 0)


@pytest.mark.parametrize("cell, gate", [("gru", "z"), ("gru_before", "r"), ("sgru", "f"),
                                        ("lstm", "f"), ("lstm_peephole", "i")])
def test_gate_bias_sets_the_gate_at_the_start(cell, gate):
    """With x = 0 and h_0 = 0 the gate's pre-activation is its bias alone."""
    c = pg.layers.make_cell(cell, 2, 4, seed=0, gate_bias={gate: 2.5})
    _, _, cache = c.forward(np.zeros((1, 3, 2)))
    k = c.gates.index(gate)
    H = c.hidden_size
    np.testing.assert_allclose(cache.gates[0, :, k * H:(k + 1) * H], 1 / (1 + np.exp(-2.5)), rtol=1e-14)
    # every other bias keeps its default
    default = pg.layers.make_cell(cell, 2, 4, seed=0)
    mask = np.ones(len(c.gates) * H, bool)
    mask[k * H:(k + 1) * H] = False
    np.testing.assert_array_equal(c.params["b"][mask], default.params["b"][mask])
    np.testing.assert_array_equal(c.params["W"], default.params["W"])


def test_model_gate_bias_round_trips_through_config():
    model = pg.Model(2, 4, 1, cell="gru", gate_bias={"z": 2.0}, seed=0)
    assert model.config["gate_bias"] == {"z": 2.0}
    again = pg.Model(**model.config)
    for k, v in model.params.items():
        np.testing.assert_array_equal(again.params[k], v)
    assert np.all(model.params["layer0.b"][:4] == 2.0)


def test_set_gate_bias_rejects_bad_input():
    cell = pg.GRU(2, 3, seed=0)
    with pytest.raises(ValueError, match=r"has the gates \('z', 'r', 'g'\), not 'f'"):
        pg.layers.set_gate_bias(cell, {"f": 1.0})
    with pytest.raises(TypeError, match="must be a real number"):
        pg.layers.set_gate_bias(cell, {"z": True})
    with pytest.raises(ValueError, match="must be finite"):
        pg.layers.set_gate_bias(cell, {"z": 5.0, "r": np.nan})
    assert np.all(cell.params["b"] == 0)  # nothing changed by a call that failed
    with pytest.raises(TypeError, match="gate_bias must be a dict"):
        pg.layers.set_gate_bias(cell, 2.0)
    with pytest.raises(TypeError, match="cell must be a pyx_gru cell"):
        pg.layers.set_gate_bias("gru", {"z": 1.0})


# -- the sweep -----------------------------------------------------------------

@pytest.fixture(scope="module")
def small_task():
    return tasks.adding(120, 8, seed=0)


def run_small(task, **kw):
    settings = dict(cells=["rnn", "gru"], n_params=300, lrs=[3e-3, 1e-2], seeds=[0, 1], epochs=2,
                    batch_size=16)
    settings.update(kw)
    return compare(task, **settings)


@pytest.fixture(scope="module")
def small_result(small_task):
    return run_small(small_task)


@needs_parallel
def test_the_table_has_a_row_per_cell_lr_and_seed(small_result, small_task):
    rows = small_result.rows
    assert len(rows) == len(small_result.histories) == 2 * 2 * 2
    assert all(tuple(r) == COLUMNS for r in rows)
    assert [(r["cell"], r["lr"], r["seed"]) for r in rows] == [
        (c, lr, s) for c in ("rnn", "gru") for lr in (3e-3, 1e-2) for s in (0, 1)]
    train, valid, test = small_task.split((0.8, 0.1, 0.1), seed=0)
    for r, h in zip(rows, small_result.histories, strict=True):
        assert r["task"] == "adding" and r["hidden_size"] == match_hidden_size(r["cell"], 300, 2, 1)
        assert r["n_params"] == count_params(r["cell"], r["hidden_size"], 2, 1)
        assert r["epochs"] == len(h.epoch) == 2
        assert r["best_valid_loss"] == min(h.valid_loss) and r["best_epoch"] == h.best_epoch
        assert r["baseline"] == test.baseline and r["test_accuracy"] is None
        assert r["time"] > 0 and not r["diverged"]
        assert h.settings["model"]["seed"] == r["seed"] and h.settings["seed"] == r["seed"]
        assert h.settings["n_train"] == train.N and h.settings["n_valid"] == valid.N
    s = small_result.settings
    assert s["hidden_sizes"] == {"rnn": rows[0]["hidden_size"], "gru": rows[-1]["hidden_size"]}
    assert (s["n_train"], s["n_valid"], s["n_test"]) == (96, 12, 12)


@needs_parallel
def test_a_row_is_the_same_run_by_hand(small_result, small_task):
    """The sweep's numbers are those of fit and evaluate called directly."""
    import threadpoolctl

    train, valid, test = small_task.split((0.8, 0.1, 0.1), seed=0)
    r = small_result.rows[5]  # gru, lr 3e-3, seed 1
    assert (r["cell"], r["lr"], r["seed"]) == ("gru", 3e-3, 1)
    with threadpoolctl.threadpool_limits(1):
        model = pg.Model(2, r["hidden_size"], 1, cell="gru", seed=1, dtype=np.float32)
        h = pg.fit(model, train, valid=valid, lr=3e-3, epochs=2, batch_size=16, clip=1.0, seed=1,
                   verbose=0)
        assert pg.evaluate(model, test)["loss"] == r["test_loss"]
    assert h.valid_loss == small_result.histories[5].valid_loss


@needs_parallel
def test_each_job_runs_with_one_blas_thread(small_result):
    assert {r["blas_threads"] for r in small_result.rows} == {1}


@needs_parallel
def test_the_thread_limit_is_what_the_jobs_see(small_task):
    """threads_per_job=2 lets the BLAS (and the kernels' team) use 2 threads,
    where the machine has them."""
    import threadpoolctl

    blas = [p for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]
    if min((p["num_threads"] for p in blas), default=1) < 2:
        pytest.skip("the BLAS runs one thread here")
    result = run_small(small_task, cells=["gru"], lrs=[1e-2], seeds=[0], epochs=1, threads_per_job=2)
    assert result.rows[0]["blas_threads"] == 2


@needs_parallel
def test_n_jobs_1_and_2_give_identical_results(small_task, small_result):
    parallel = run_small(small_task, n_jobs=2)

    def strip(result):
        rows = [{k: v for k, v in r.items() if k != "time"} for r in result.rows]
        hist = [{k: v for k, v in h.to_dict().items() if k != "time"} for h in result.histories]
        return rows, hist

    assert strip(parallel) == strip(small_result)
    assert parallel.settings["n_jobs"] == 2


@needs_parallel
def test_split_tuple_and_fixed_hidden_size(small_task):
    parts = small_task.split((0.5, 0.25, 0.25), seed=3)
    result = compare(parts, cells=["lstm"], hidden_size=3, lrs=[0.01], seeds=[4], epochs=1)
    (row,) = result.rows
    assert row["hidden_size"] == 3 and row["n_params"] == pg.Model(2, 3, 1, cell="lstm").n_params
    assert result.settings["n_train"] == parts[0].N and row["baseline"] == parts[2].baseline


@needs_parallel
def test_softmax_tasks_report_accuracy():
    task = tasks.temporal_order(60, 20, seed=0)
    result = compare(task, cells=["gru"], hidden_size=4, lrs=[0.01], seeds=[0], epochs=1)
    assert 0 <= result.rows[0]["test_accuracy"] <= 1


@needs_parallel
def test_gate_bias_reaches_the_cells_that_have_the_gate(small_task, monkeypatch):
    made = []
    real = pg.layers.make_cell

    def spy(cell, *args, **kwargs):
        made.append((cell, kwargs.get("gate_bias")))
        return real(cell, *args, **kwargs)

    monkeypatch.setattr(pg.layers, "make_cell", spy)
    compare(small_task, cells=["rnn", "gru", "lstm"], hidden_size=2, lrs=[0.01], seeds=[0],
            epochs=1, gate_bias={"z": 2.0, "f": 3.0})
    assert made == [("rnn", None), ("gru", {"z": 2.0}), ("lstm", {"f": 3.0})]


@needs_parallel
def test_compare_rejects_bad_arguments(small_task):
    with pytest.raises(ValueError, match="exactly one of n_params"):
        compare(small_task, cells=["gru"], epochs=1)
    with pytest.raises(ValueError, match="exactly one of n_params"):
        compare(small_task, cells=["gru"], n_params=100, hidden_size=3, epochs=1)
    with pytest.raises(ValueError, match="cell must be one of"):
        compare(small_task, cells=["gruu"], hidden_size=3)
    with pytest.raises(ValueError, match="lrs must be positive"):
        compare(small_task, cells=["gru"], hidden_size=3, lrs=[-1.0])
    with pytest.raises(ValueError, match="seeds has duplicates"):
        compare(small_task, cells=["gru"], hidden_size=3, seeds=[0, 0])
    with pytest.raises(TypeError, match="seeds must hold ints"):
        compare(small_task, cells=["gru"], hidden_size=3, seeds=[0.5])
    with pytest.raises(ValueError, match=r"gate_bias names gates \['q'\]"):
        compare(small_task, cells=["gru"], hidden_size=3, gate_bias={"q": 1.0})
    with pytest.raises(TypeError, match="tuple \\(train, valid, test\\)"):
        compare(np.zeros((3, 2, 1)), cells=["gru"], hidden_size=3)
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        compare(small_task, cells=["gru"], hidden_size=3, dtype="int8")
    with pytest.raises(ValueError, match="optimizer must be one of"):
        compare(small_task, cells=["gru"], hidden_size=3, optimizer="lbfgs")
    with pytest.raises(ValueError, match="threads_per_job must be >= 1"):
        compare(small_task, cells=["gru"], hidden_size=3, threads_per_job=0)


def test_without_joblib_compare_says_what_to_install(small_task, monkeypatch):
    monkeypatch.setitem(sys.modules, "joblib", None)
    with pytest.raises(ImportError, match=r'pip install "pyx_gru\[experiments\]"'):
        compare(small_task, cells=["gru"], hidden_size=3)
    assert match_hidden_size("gru", 100, 2, 1) >= 1  # matching needs no joblib


# -- summary, files and plots --------------------------------------------------

def handmade(rows):
    keys = dict(task="t", hidden_size=4, n_params=10, test_accuracy=None, best_epoch=1, epochs=1,
                stopped_early=False, diverged=False, time=0.1, baseline=1.0, blas_threads=1)
    full = [{c: {**keys, **r}[c] for c in COLUMNS} for r in rows]
    histories = [pg.History(epoch=[1], train_loss=[1.0], valid_loss=[r["best_valid_loss"]])
                 for r in full]
    return Comparison(full, histories, {"task": "t", "T": 5, "loss": "mse", "baseline": 1.0,
                                        "cells": ["a", "b"], "target_params": 10})


def test_summary_chooses_the_lr_by_validation_loss():
    result = handmade([
        dict(cell="a", lr=0.1, seed=0, best_valid_loss=0.5, test_loss=0.1),   # best test, worse valid
        dict(cell="a", lr=0.1, seed=1, best_valid_loss=0.7, test_loss=0.2),
        dict(cell="a", lr=0.01, seed=0, best_valid_loss=0.4, test_loss=0.3),
        dict(cell="a", lr=0.01, seed=1, best_valid_loss=0.6, test_loss=0.5),
        dict(cell="b", lr=0.1, seed=0, best_valid_loss=None, test_loss=0.9),  # diverged at once
        dict(cell="b", lr=0.01, seed=0, best_valid_loss=0.8, test_loss=0.8),
    ])
    a, b = result.summary()
    assert (a["cell"], a["lr"], a["seeds"]) == ("a", 0.01, 2)
    assert a["valid_loss"] == pytest.approx(0.5) and a["test_loss"] == pytest.approx(0.4)
    assert a["test_std"] == pytest.approx(0.1) and (a["test_min"], a["test_max"]) == (0.3, 0.5)
    assert a["ratio"] == pytest.approx(0.4)
    assert (b["cell"], b["lr"], b["test_loss"]) == ("b", 0.01, 0.8)
    text = result.format()
    assert "learning rate chosen on validation loss" in text and "test_accuracy" not in text


def test_against_the_rnn_is_welchs_one_sided_test_at_the_chosen_lr():
    from scipy import stats

    rnn = [9.10, 9.12, 9.08, 9.11, 9.09]
    gru = [8.52, 8.55, 8.51, 8.56, 8.53]      # far ahead, every seed
    lstm = [9.05, 9.14, 9.02, 9.16, 9.07]     # ahead on average, within the spread
    rows = [dict(cell=c, lr=1e-3, seed=k, best_valid_loss=v, test_loss=v)
            for c, vals in (("rnn", rnn), ("gru", gru), ("lstm", lstm))
            for k, v in enumerate(vals)]
    # a worse learning rate for the GRU, with better test losses: not the one chosen
    rows += [dict(cell="gru", lr=1e-2, seed=k, best_valid_loss=99.0, test_loss=1.0) for k in range(5)]
    result = handmade(rows)
    g, lstm_vs = result.against("rnn")
    assert (g["cell"], g["reference"], lstm_vs["cell"]) == ("gru", "rnn", "lstm")
    assert g["advantage"] == pytest.approx(np.mean(rnn) - np.mean(gru))
    assert g["spread"] == pytest.approx(max(np.std(rnn, ddof=1), np.std(gru, ddof=1)))
    expected = stats.ttest_ind(rnn, gru, equal_var=False, alternative="greater")
    assert g["t"] == pytest.approx(expected.statistic) and g["p"] == pytest.approx(expected.pvalue)
    assert g["p"] < 1e-6 and g["separated"]
    assert 0.01 < lstm_vs["p"] < 0.5 and not lstm_vs["separated"] and lstm_vs["advantage"] > 0
    assert [r["cell"] for r in result.against("gru")] == ["rnn", "lstm"]
    assert result.against("gru")[0]["advantage"] < 0
    text = result.format()
    assert "advantage over the tanh RNN" in text
    with pytest.raises(ValueError, match="reference must be one of the cells"):
        result.against("sgru")
    one_seed = handmade([dict(cell=c, lr=1e-3, seed=0, best_valid_loss=1.0, test_loss=v)
                         for c, v in (("rnn", 2.0), ("gru", 1.0))])
    (only,) = one_seed.against()
    assert math.isnan(only["t"]) and math.isnan(only["p"]) and only["separated"]
    assert "advantage over the tanh RNN" not in one_seed.format()


@needs_parallel
def test_csv_holds_the_table(small_result, tmp_path):
    text = small_result.to_csv(tmp_path / "r.csv")
    assert (tmp_path / "r.csv").read_text() == text
    read = list(csv.DictReader(io.StringIO(text)))
    assert tuple(read[0]) == COLUMNS and len(read) == len(small_result.rows)
    for got, row in zip(read, small_result.rows, strict=True):
        for c in COLUMNS:
            v = row[c]
            if v is None:
                assert got[c] == ""
            elif isinstance(v, float):
                assert float(got[c]) == v  # repr: exact round trip
            else:
                assert got[c] == str(v)


@needs_parallel
def test_json_round_trip(small_result, tmp_path):
    text = small_result.to_json(tmp_path / "r.json")
    data = json.loads(text)
    assert data["format"] == "pyx_gru.experiments.Comparison" and data["columns"] == list(COLUMNS)
    again = Comparison.from_json(tmp_path / "r.json")
    assert again.rows == small_result.rows and again.settings == small_result.settings
    assert [h.to_dict() for h in again.histories] == [h.to_dict() for h in small_result.histories]
    assert Comparison.from_json(text).rows == small_result.rows
    with pytest.raises(ValueError, match="not the JSON of"):
        Comparison.from_json('{"rows": []}')


@needs_parallel
def test_save_writes_the_table_and_the_plots(small_result, tmp_path):
    pytest.importorskip("matplotlib")
    paths = small_result.save(tmp_path / "out")
    assert set(paths) == {"csv", "json", "learning_curves", "test_loss"}
    for kind in ("learning_curves", "test_loss"):
        assert paths[kind].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fig = small_result.plot_learning_curves()
    assert len(fig.axes) == 2  # a panel per cell
    lines = [ln for ln in fig.axes[0].lines if ln.get_linestyle() == "-"]
    assert len(lines) == 4  # rnn: 2 lrs x 2 seeds, valid curves
    ax = small_result.plot_test_loss().axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()][0].startswith("rnn")
    assert any(ln.get_ydata()[0] == small_result.baseline for ln in ax.lines)


# -- resuming an interrupted sweep --------------------------------------------------

def _without_time(rows):
    return [{k: v for k, v in r.items() if k not in ("time", "blas_threads")} for r in rows]


@needs_parallel
def test_a_sweep_resumed_from_its_journal_runs_only_what_is_missing(small_task, small_result,
                                                                    tmp_path, monkeypatch):
    journal = tmp_path / "runs"
    full = run_small(small_task, journal=journal)
    files = sorted(journal.glob("*.json"))
    assert len(files) == 8 and not list(journal.glob("*.tmp"))
    assert _without_time(full.rows) == _without_time(small_result.rows)
    # as if the sweep had been killed with three runs unfinished, one of
    # them mid-write (an incomplete record)
    for f in files[:2]:
        f.unlink()
    files[2].write_text(files[2].read_text()[:50])
    ran = []
    real_run = experiments._run
    monkeypatch.setattr(experiments, "_run", lambda job, *a: ran.append(job) or real_run(job, *a))
    resumed = run_small(small_task, journal=journal, resume=True)
    assert len(ran) == 3
    assert _without_time(resumed.rows) == _without_time(full.rows)
    for a, b in zip(resumed.histories, full.histories, strict=True):
        assert a.train_loss == b.train_loss and a.valid_loss == b.valid_loss
    # without resume, everything runs again; other settings are other runs
    ran.clear()
    run_small(small_task, journal=journal)
    assert len(ran) == 8
    ran.clear()
    run_small(small_task, journal=journal, resume=True, epochs=3)
    assert len(ran) == 8


def test_the_data_digest_hashes_the_arrays_without_copying_them():
    """The journal's keys hash every array of the three parts: the digest is
    the one of their bytes (a journal written before stays valid), read from
    the arrays' own buffers, not from copies (MuseData's training x and y
    are 1.3 GB each). Non-contiguous arrays hash as their contiguous copy."""
    import hashlib
    import tracemalloc

    rng = np.random.default_rng(0)
    x = rng.random((200, 64, 88))                    # 9 MB
    y = (x > 0.5).astype(np.float64)
    part = tasks.Task("t", x, y, np.full(64, 150), None, "every", "sigmoid", 88, 0.0)
    odd = tasks.Task("t", x[:, ::2], y[:, ::2], None, None, "every", "sigmoid", 88, 0.0)

    def by_copies(parts):
        # one SHA-256 of the concatenated bytes, as the digest was made before
        blob = b"".join(
            b"".join(f"{a.dtype.str}{a.shape}".encode() + np.ascontiguousarray(a).tobytes()
                     for a in (p.x, p.y, p.lengths, p.mask) if a is not None)
            + f"{p.loss}{p.readout}{p.n_classes}".encode()
            for p in parts)
        return hashlib.sha256(blob).hexdigest()

    for parts in ((part, part, part), (part, odd, part)):
        assert experiments._data_digest(parts).hexdigest() == by_copies(parts)
    tracemalloc.start()
    try:
        experiments._data_digest((part, part, part))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < x.nbytes // 20, peak


@needs_parallel
def test_resume_needs_a_journal(small_task):
    with pytest.raises(ValueError, match="resume=True needs journal="):
        run_small(small_task, resume=True)


@needs_parallel
def test_a_killed_compare_command_resumes(tmp_path):
    """The command killed (SIGKILL) after two of its runs finished, then
    run again with --resume: only the other runs are run, and the table is
    the one of a run never killed."""
    import signal

    argv = [sys.executable, "-m", "pyx_gru", "compare", "--task", "adding", "--length", "10",
            "--n", "60", "--cells", "rnn,gru", "--hidden", "3", "--seeds", "2", "--lr", "0.01",
            "--epochs", "3", "--no-plots", "--verbose"]
    full = subprocess.run([*argv, "--out", str(tmp_path / "full")], capture_output=True,
                          text=True, timeout=300)
    assert full.returncode == 0, full.stderr
    out = tmp_path / "killed"
    proc = subprocess.Popen([*argv, "--out", str(out)], stderr=subprocess.PIPE, text=True,
                            stdout=subprocess.DEVNULL)
    finished = 0
    for line in proc.stderr:
        if line.startswith("["):
            finished += 1
            if finished == 2:
                proc.send_signal(signal.SIGKILL)
                break
    proc.wait(timeout=60)
    assert finished == 2 and len(list((out / "runs").glob("*.json"))) >= 2
    again = subprocess.run([*argv, "--out", str(out), "--resume"], capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr
    recorded = int(again.stderr.split(" of 4 runs taken from")[0].split()[-1])
    assert recorded >= 2 and again.stderr.count("] ") == 4 - recorded
    want = Comparison.from_json(tmp_path / "full" / "results.json")
    got = Comparison.from_json(out / "results.json")
    assert _without_time(got.rows) == _without_time(want.rows)


# -- the command -----------------------------------------------------------------

@needs_parallel
def test_compare_command_quick_end_to_end(tmp_path, capsys):
    out = tmp_path / "cmp"
    status = pyx_gru_main(["compare", "--task", "adding", "--length", "100", "--cells",
                           "rnn,sgru,gru,lstm", "--quick", "--out", str(out)])
    assert status == 0
    printed = capsys.readouterr().out
    assert "learning rate chosen on validation loss" in printed and str(out) in printed
    result = Comparison.from_json(out / "results.json")
    assert [r["cell"] for r in result.rows] == ["rnn", "sgru", "gru", "lstm"]
    assert result.settings["T"] == 20 and result.settings["epochs"] == 2
    assert all(abs(r["n_params"] - 600) < 100 for r in result.rows)
    assert (out / "learning_curves.png").exists() and (out / "test_loss.png").exists()
    assert len(list(csv.reader(open(out / "results.csv")))) == 5


@needs_parallel
def test_compare_command_options(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert experiments.main(["--task", "temporal_order", "--length", "20", "--n", "40", "--cells", "gru",
                             "--hidden", "3", "--seeds", "2", "--lr", "0.01,0.02", "--epochs", "1",
                             "--gate-bias", "z=2", "--no-plots", "--out", str(out)]) == 0
    result = Comparison.from_json(out / "results.json")
    assert [(r["lr"], r["seed"], r["hidden_size"]) for r in result.rows] == [
        (0.01, 0, 3), (0.01, 1, 3), (0.02, 0, 3), (0.02, 1, 3)]
    assert result.settings["gate_bias"] == {"z": 2.0} and not (out / "test_loss.png").exists()
    assert "test_accuracy" in capsys.readouterr().out


@needs_parallel
def test_compare_command_on_a_polyphonic_set_keeps_its_original_splits(tmp_path, capsys):
    """--task jsb trains on the first pieces of JSB Chorales' own training
    split and scores on its own test split (no random split); --bucket
    reaches fit."""
    out = tmp_path / "jsb"
    assert pyx_gru_main(["compare", "--task", "jsb", "--max-pieces", "4", "--cells", "gru",
                         "--hidden", "3", "--seeds", "1", "--lr", "0.01", "--epochs", "1",
                         "--bucket", "--no-plots", "--out", str(out)]) == 0
    result = Comparison.from_json(out / "results.json")
    train, valid, test = experiments.make_task("jsb", max_pieces=4)
    assert [p.x.shape[1] for p in (train, valid, test)] == [4, 4, 4]
    assert train.name == "jsb" and test.info["split"] == "test"
    assert result.rows[0]["baseline"] == pytest.approx(test.baseline)
    assert result.settings["bucket"] is True
    full = experiments.make_task("jsb")
    assert [p.x.shape[1] for p in full] == [229, 76, 77]


@needs_parallel
def test_chunk_trains_on_windows_and_scores_whole_pieces(tmp_path):
    """compare(chunk=L) is fit on train.chunks(L), evaluated on the whole
    validation and test pieces; --chunk reaches it."""
    import threadpoolctl

    train, valid, test = experiments.make_task("jsb", max_pieces=6)
    result = compare((train, valid, test), cells=["gru"], hidden_size=4, lrs=[1e-2], seeds=[0],
                     epochs=2, batch_size=4, optimizer="rmsprop", chunk=16)
    row = result.rows[0]
    assert result.settings["chunk"] == 16 and result.settings["n_train"] == train.chunks(16).N
    with threadpoolctl.threadpool_limits(1):
        model = pg.Model(88, 4, 88, cell="gru", readout="every", seed=0, dtype=np.float32)
        history = pg.fit(model, train.chunks(16), valid=valid, optimizer="rmsprop", lr=1e-2,
                         epochs=2, batch_size=4, clip=1.0, seed=0, verbose=0)
        assert pg.evaluate(model, test)["loss"] == row["test_loss"]
    assert history.valid_loss == result.histories[0].valid_loss
    whole = compare((train, valid, test), cells=["gru"], hidden_size=4, lrs=[1e-2], seeds=[0],
                    epochs=2, batch_size=4, optimizer="rmsprop")
    assert whole.settings["chunk"] is None and whole.rows[0]["test_loss"] != row["test_loss"]
    out = tmp_path / "c"
    assert pyx_gru_main(["compare", "--task", "jsb", "--max-pieces", "6", "--cells", "gru",
                         "--hidden", "4", "--seeds", "1", "--lr", "0.01", "--epochs", "2",
                         "--batch-size", "4", "--optimizer", "rmsprop", "--chunk", "16",
                         "--no-plots", "--out", str(out)]) == 0
    again = Comparison.from_json(out / "results.json")
    assert again.settings["chunk"] == 16 and again.rows[0]["test_loss"] == row["test_loss"]
    with pytest.raises(ValueError, match="readout='every'"):
        compare(tasks.adding(40, 5, seed=0), cells=["gru"], hidden_size=3, chunk=2, epochs=1)


@pytest.mark.parametrize("argv, message", [
    (["--epochs", "0"], "--epochs must be >= 1"),
    (["--cells", "rnn,foo"], "unknown cell 'foo'"),
    (["--lr", "0.1,x"], "comma-separated list"),
    (["--n-jobs", "0"], "--n-jobs must not be 0"),
    (["--gate-bias", "z"], "GATE=VALUE"),
    (["--params", "100", "--hidden", "4"], "not allowed with argument"),
    (["--chunk", "0"], "--chunk must be >= 1"),
])
def test_compare_command_rejects_bad_options(argv, message, capsys):
    with pytest.raises(SystemExit):
        pyx_gru_main(["compare", *argv])
    assert message in capsys.readouterr().err


@needs_parallel
def test_compare_runs_as_a_module(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pyx_gru", "compare", "--quick", "--cells", "gru",
                           "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "baseline 0.1667" in proc.stdout
    assert math.isfinite(Comparison.from_json(tmp_path / "results.json").rows[0]["test_loss"])


def test_the_moved_names_are_the_same_objects():
    """The gradient-flow analysis moved to diagnostics and the task registry
    to tasks; the old names are the same objects."""
    for name in ("flow_curve", "decay_rate", "rnn_rate_predictions"):
        assert getattr(experiments, name) is getattr(pg.diagnostics, name)
        assert name in experiments.__all__ and name in pg.diagnostics.__all__
    for name in ("TASKS", "make_task", "POLYPHONIC_TASKS"):
        assert getattr(experiments, name) is getattr(tasks, name)
    assert "TASKS" in experiments.__all__ and "make_task" in experiments.__all__


@needs_parallel
def test_readme_example_runs(capsys, tmp_path, monkeypatch):
    import re

    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Comparing cells"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert "learning rate chosen on validation loss" in capsys.readouterr().out
    assert len(namespace["result"].rows) == 8
    assert (tmp_path / "pyx_gru_results" / "adding20" / "results.csv").exists()
    assert "# 34:" in code and experiments.match_hidden_size("lstm", 20_000, 88, 88) == 34


def test_the_commands_in_the_results_page_parse():
    """Every `python -m pyx_gru compare ...` command of docs/results/README.md
    is valid for the parser (and its checks), so the page can be rerun."""
    import argparse
    import shlex

    text = (ROOT / "docs" / "results" / "README.md").read_text().replace("\\\n", " ")
    commands = [line.split("compare", 1)[1] for line in text.splitlines()
                if line.strip().startswith("python -m pyx_gru compare")]
    assert len(commands) >= 2
    for command in commands:
        parser = experiments.add_compare_arguments(argparse.ArgumentParser())
        args = parser.parse_args(shlex.split(command))
        experiments.check_compare_arguments(args)


def test_count_params_takes_gate_bias_as_the_model_does():
    from pyx_gru.experiments import count_params, match_hidden_size
    kw = {"gate_bias": {"z": 1.0}}
    assert count_params("gru", 4, 2, 1, **kw) == pg.Model(2, 4, 1, cell="gru", **kw).n_params
    assert match_hidden_size("gru", 500, 2, 1, **kw) == match_hidden_size("gru", 500, 2, 1)
