"""Checkpoints of ``fit``: a run killed (SIGKILL, at any point, even while
it writes a checkpoint) or stopped with Ctrl-C and then resumed ends with
bitwise the parameters, history (but for wall-clock time) and test loss of
the same run never stopped; a checkpoint of another run, or a damaged one,
is refused."""
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import pyx_gru as pg
from pyx_gru import layers, tasks, train

ROOT = Path(__file__).resolve().parent.parent

# The run, as a script: a child process trains, checkpointing after every
# mini-batch, and writes its final parameters and history when it ends.
# With SLOW_RENAME set it announces each checkpoint's rename and pauses
# before it, so that a kill can land while a checkpoint is being written.
CHILD = textwrap.dedent("""
    import json, os, sys, time
    import numpy as np
    import pyx_gru as pg
    from pyx_gru import _files, layers, tasks

    run_dir, out, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if os.environ.get("SLOW_RENAME"):
        real_replace = _files.os.replace
        def slow_replace(src, dst):
            print("RENAMING", flush=True)
            time.sleep(float(os.environ["SLOW_RENAME"]))
            return real_replace(src, dst)
        _files.os.replace = slow_replace
    if os.environ.get("STEP_DELAY"):
        real_step = pg.optim.Adam.step
        def slow_step(self, params, grads):
            print("STEP", flush=True)
            time.sleep(float(os.environ["STEP_DELAY"]))
            return real_step(self, params, grads)
        pg.optim.Adam.step = slow_step
    train_, valid, test = tasks.adding(48, 10, seed=0).split((0.5, 0.25, 0.25), seed=0)
    model = layers.Model(train_.D, 5, 1, cell="lstm", seed=1, dtype=np.float32)
    history = pg.fit(model, train_, valid=valid, epochs=epochs, batch_size=6, weight_noise=0.02,
                     clip=1.0, patience=50, seed=7, verbose=0, checkpoint=run_dir,
                     checkpoint_every=1)
    np.savez(out, **model.params)
    with open(out + ".json", "w") as f:
        json.dump({"history": history.to_dict(), "test": pg.evaluate(model, test)["loss"]}, f)
    print("DONE", flush=True)
""")
EPOCHS = 4


def start(run_dir, out, env=None, epochs=EPOCHS):
    return subprocess.Popen([sys.executable, "-c", CHILD, str(run_dir), str(out), str(epochs)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})}, cwd=ROOT)


def finish(proc, timeout=120):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return out


def result(out):
    with np.load(str(out) + ".npz" if not str(out).endswith(".npz") else out) as z:
        params = {k: z[k] for k in z.files}
    with open(str(out) + ".json") as f:
        meta = json.load(f)
    meta["history"].pop("time")  # wall-clock seconds: never the same twice
    return params, meta


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    d = tmp_path_factory.mktemp("reference")
    finish(start(d / "run", d / "out"))
    return result(d / "out")


def same_as(reference, out):
    params, meta = result(out)
    want_params, want_meta = reference
    assert params.keys() == want_params.keys()
    for k in params:
        np.testing.assert_array_equal(params[k].view(np.uint32), want_params[k].view(np.uint32))
    assert meta == want_meta


def kill_after_lines(proc, word, count):
    """SIGKILL ``proc`` once it has printed ``word`` ``count`` times."""
    seen = 0
    for line in proc.stdout:
        if line.strip() == word:
            seen += 1
            if seen == count:
                proc.send_signal(signal.SIGKILL)
                break
    proc.wait(timeout=60)
    return seen


@pytest.mark.parametrize("word,count", [("STEP", 1), ("STEP", 7), ("STEP", 14), ("RENAMING", 3),
                                        ("RENAMING", 9)])
def test_killed_runs_resume_to_the_same_end(uninterrupted, tmp_path, word, count):
    """Killed after a few steps (before its first checkpoint, mid-epoch, near
    the end) or while renaming a new checkpoint over the old one, then run
    again with the same command: the same parameters, history and test loss
    as the run never killed."""
    run_dir, out = tmp_path / "run", tmp_path / "out"
    env = {"STEP_DELAY": "0.02"} if word == "STEP" else {"SLOW_RENAME": "0.5"}
    proc = start(run_dir, out, env)
    assert kill_after_lines(proc, word, count) == count
    assert proc.returncode == -signal.SIGKILL
    leftovers = [p.name for p in run_dir.iterdir() if p.name.endswith(".tmp")] if run_dir.exists() else []
    if word == "RENAMING":
        assert leftovers, "the kill landed while a checkpoint was being written"
        # the checkpoint in place is the previous, complete one
        train.read_checkpoint(run_dir)
    finish(start(run_dir, out))
    same_as(uninterrupted, out)


def test_repeated_kills_still_resume_to_the_same_end(uninterrupted, tmp_path):
    run_dir, out = tmp_path / "run", tmp_path / "out"
    for count in (2, 3, 4):
        proc = start(run_dir, out, {"STEP_DELAY": "0.02"})
        kill_after_lines(proc, "STEP", count)
    finish(start(run_dir, out))
    same_as(uninterrupted, out)


def test_ctrl_c_stops_after_a_checkpoint_and_the_run_resumes(uninterrupted, tmp_path):
    run_dir, out = tmp_path / "run", tmp_path / "out"
    proc = start(run_dir, out, {"STEP_DELAY": "0.05"})
    for line in proc.stdout:
        if line.strip() == "STEP":
            proc.send_signal(signal.SIGINT)
            break
    rest, err = proc.communicate(timeout=60)
    # fit returned (the script went on to write its results) ...
    assert proc.returncode == 0, err[-2000:]
    assert "DONE" in rest
    _, meta = result(out)
    assert meta["history"]["interrupted"] is True
    state = train.read_checkpoint(run_dir)
    assert (state["epoch"], state["batch"]) == (1, 1)
    # ... and the same command continues the run to its normal end
    finish(start(run_dir, out))
    same_as(uninterrupted, out)


def test_the_best_model_file_is_the_best_epoch(uninterrupted, tmp_path):
    run_dir, out = tmp_path / "run", tmp_path / "out"
    finish(start(run_dir, out))
    assert sorted(p.name for p in run_dir.iterdir()) == ["best.npz", "checkpoint.npz"]
    best = pg.load(run_dir / "best.npz")
    state = train.read_checkpoint(run_dir)
    for k, v in best.params.items():
        np.testing.assert_array_equal(v, state["best"][k])
    # restore_best: the model fit returned is the best one
    params, _ = result(out)
    for k in params:
        np.testing.assert_array_equal(params[k], best.params[k])


# -- in-process checks -------------------------------------------------------------

def small_run(epochs, **kwargs):
    train_, valid, _ = tasks.adding(40, 8, seed=1).split((0.6, 0.2, 0.2), seed=0)
    model = layers.Model(train_.D, 4, 1, cell="gru", seed=2)
    kwargs.setdefault("seed", 5)
    history = pg.fit(model, train_, valid=valid, epochs=epochs, batch_size=8, verbose=0, **kwargs)
    return model, history


def test_a_run_can_be_extended_and_checkpoints_change_nothing(tmp_path):
    plain, h_plain = small_run(5)
    small_run(2, checkpoint=tmp_path)
    extended, h_ext = small_run(5, checkpoint=tmp_path, checkpoint_every=2)
    for k in plain.params:
        np.testing.assert_array_equal(extended.params[k], plain.params[k])
    for key in ("epoch", "train_loss", "valid_loss", "grad_norm", "steps", "best_epoch"):
        assert getattr(h_ext, key) == getattr(h_plain, key), key
    # a finished run resumed does nothing more
    again, h_again = small_run(5, resume=tmp_path)
    assert h_again.epoch == h_plain.epoch
    for k in plain.params:
        np.testing.assert_array_equal(again.params[k], plain.params[k])


def test_a_run_cannot_be_resumed_with_fewer_epochs(tmp_path):
    small_run(3, checkpoint=tmp_path)
    for kwargs in ({"checkpoint": tmp_path}, {"resume": tmp_path}):
        with pytest.raises(ValueError, match=r"made with epochs=3; a resumed run may have more "
                                             r"epochs, not fewer \(got epochs=2\)"):
            small_run(2, **kwargs)
    # the same number of epochs is the finished run itself
    _, h = small_run(3, resume=tmp_path)
    assert h.epoch == [1, 2, 3] and h.settings["epochs"] == 3


def test_a_run_is_resumed_only_on_its_own_data(tmp_path):
    train_, valid, _ = tasks.adding(40, 8, seed=1).split((0.6, 0.2, 0.2), seed=0)
    other, other_valid, _ = tasks.adding(40, 8, seed=2).split((0.6, 0.2, 0.2), seed=0)

    def run(tr, va, epochs):
        return pg.fit(layers.Model(train_.D, 4, 1, cell="gru", seed=2), tr, valid=va,
                      epochs=epochs, batch_size=8, seed=5, verbose=0, checkpoint=tmp_path)

    run(train_, valid, 1)
    for tr, va in ((other, valid), (train_, other_valid)):  # the same shapes, other numbers
        with pytest.raises(ValueError, match="other training or validation data"):
            run(tr, va, 2)
    assert run(train_, valid, 2).epoch == [1, 2]


def test_a_checkpoint_of_another_run_is_refused(tmp_path):
    small_run(1, checkpoint=tmp_path)
    with pytest.raises(ValueError, match=r"other arguments or data: \['batch_size'\]"):
        train_, valid, _ = tasks.adding(40, 8, seed=1).split((0.6, 0.2, 0.2), seed=0)
        pg.fit(layers.Model(train_.D, 4, 1, cell="gru", seed=2), train_, valid=valid, epochs=2,
               batch_size=4, seed=5, verbose=0, checkpoint=tmp_path)
    with pytest.raises(ValueError, match="another model"):
        train_, valid, _ = tasks.adding(40, 8, seed=1).split((0.6, 0.2, 0.2), seed=0)
        pg.fit(layers.Model(train_.D, 5, 1, cell="gru", seed=2), train_, valid=valid, epochs=2,
               batch_size=8, seed=5, verbose=0, checkpoint=tmp_path)
    with pytest.raises(ValueError, match=r"\['seed'\]"):
        small_run(2, checkpoint=tmp_path, seed=6)


def test_bad_checkpoint_arguments_and_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="resume: no checkpoint.npz"):
        small_run(1, resume=tmp_path / "nothing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError):
        small_run(1, checkpoint=tmp_path / "file")
    with pytest.raises(ValueError, match="checkpoint_every must be an int >= 1"):
        small_run(1, checkpoint=tmp_path / "a", checkpoint_every=0)
    with pytest.raises(ValueError, match="checkpoint_every needs checkpoint="):
        small_run(1, checkpoint_every=3)
    with pytest.raises(ValueError, match="name different directories"):
        small_run(1, checkpoint=tmp_path / "a", resume=tmp_path / "b")
    run = tmp_path / "run"
    small_run(1, checkpoint=run)
    data = (run / "checkpoint.npz").read_bytes()
    (run / "checkpoint.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="checkpoint.npz"):
        small_run(2, checkpoint=run)
    with pytest.raises(ValueError, match="a checkpoint of fit: continue it with fit"):
        (run / "checkpoint.npz").write_bytes(data)
        pg.load(run / "checkpoint.npz")
