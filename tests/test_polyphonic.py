"""The four polyphonic music sets that ship inside pyx_gru
(``pyx_gru.tasks.polyphonic``): their counts against the source files', the
exact round trip of the conversion, and the Tasks made from them."""
import importlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from pyx_gru import tasks

P = importlib.import_module("pyx_gru.tasks.polyphonic")  # the module (tasks.polyphonic is its function)

# Pieces and frames per split, as the source files hold them (the table of
# the data's README: pieces of every split and the training frames; the
# valid and test frames counted in the MATLAB files with scipy.io.loadmat).
SOURCE_COUNTS = {
    "jsb": {"train": (229, 13807), "valid": (76, 4602), "test": (77, 4725)},
    "nottingham": {"train": (694, 176561), "valid": (173, 45513), "test": (170, 44463)},
    "musedata": {"train": (524, 245202), "valid": (135, 82755), "test": (124, 64339)},
    "piano_midi": {"train": (87, 75911), "valid": (12, 8540), "test": (25, 19036)},
}
# The MATLAB files, where this machine has them (the tests that need them
# skip elsewhere; the shipped digests cover the round trip without them).
SOURCE_DIR = Path(os.environ.get("PYX_GRU_POLYPHONIC_SOURCE",
                                 Path(__file__).resolve().parents[2] / "shared/data/polyphonic"))
NAMES = list(P.POLYPHONIC_SETS)


@pytest.fixture(scope="module")
def rolls():
    return {name: P.load_polyphonic(name) for name in NAMES}


@pytest.mark.parametrize("name", NAMES)
def test_counts_of_pieces_and_frames_are_the_sources(rolls, name):
    meta = json.loads((P.DATA_DIR / P.METADATA).read_text())["sets"][name]
    for split, (pieces, frames) in SOURCE_COUNTS[name].items():
        got = rolls[name][split]
        assert (len(got), sum(r.shape[0] for r in got)) == (pieces, frames), split
        assert (meta["splits"][split]["pieces"], meta["splits"][split]["frames"]) == (pieces, frames)
        assert all(r.dtype == np.uint8 and r.shape[1] == 88 for r in got)


@pytest.mark.parametrize("name", NAMES)
def test_shipped_data_decode_to_the_sources_rolls(rolls, name):
    """The digest of the decoded rolls is the one the conversion computed
    from the MATLAB arrays; re-encoding gives back the stored arrays."""
    meta = json.loads((P.DATA_DIR / P.METADATA).read_text())["sets"][name]
    with np.load(P.DATA_DIR / f"{name}.npz", allow_pickle=False) as z:
        stored = {k: z[k] for k in z.files}
    assert sorted(stored) == sorted(f"{s}_{a}" for s in P.SPLITS for a in ("frames", "counts", "keys"))
    for split in P.SPLITS:
        assert P.roll_digest(rolls[name][split]) == meta["splits"][split]["sha256_rolls"]
        again = P.encode_rolls(rolls[name][split])
        for a, got in zip(("frames", "counts", "keys"), again, strict=True):
            np.testing.assert_array_equal(got, stored[f"{split}_{a}"])
            assert got.dtype == stored[f"{split}_{a}"].dtype


@pytest.mark.skipif(not (SOURCE_DIR / "JSB_Chorales.mat").is_file(),
                    reason=f"the source MATLAB files are not at {SOURCE_DIR} "
                           "(set PYX_GRU_POLYPHONIC_SOURCE)")
@pytest.mark.parametrize("name", NAMES)
def test_shipped_data_equal_the_matlab_files(rolls, name):
    scipy_io = pytest.importorskip("scipy.io")
    mat = scipy_io.loadmat(SOURCE_DIR / P.POLYPHONIC_SETS[name][0])
    for split in P.SPLITS:
        source = [np.asarray(r) for r in mat[f"{split}data"][0]]
        assert len(source) == len(rolls[name][split])
        for a, b in zip(source, rolls[name][split], strict=True):
            np.testing.assert_array_equal(b, a)
    meta = json.loads((P.DATA_DIR / P.METADATA).read_text())["sets"][name]
    import hashlib
    digest = hashlib.sha256((SOURCE_DIR / P.POLYPHONIC_SETS[name][0]).read_bytes()).hexdigest()
    assert digest == meta["sha256_source"]


def test_encoding_round_trips_any_rolls():
    rng = np.random.default_rng(0)
    rolls = [(rng.random((F, 88)) < 0.05).astype(np.uint8) for F in (0, 1, 7, 30)]
    frames, counts, keys = P.encode_rolls(rolls)
    back = P.decode_rolls(frames, counts, keys)
    assert P.roll_digest(back) == P.roll_digest(rolls)
    for a, b in zip(rolls, back, strict=True):
        np.testing.assert_array_equal(b, a)
    assert P.decode_rolls(*P.encode_rolls([])) == []


@pytest.mark.parametrize("bad,match", [
    (([2], [1, 1], [3]), "counts must be >= 0 and sum"),
    (([1], [1, 1], [3, 4]), "frames must be >= 0 and sum"),
    (([1], [1], [88]), r"keys must lie in \[0, 88\)"),
    (([1], [2], [5, 5]), "listed twice"),
])
def test_decode_refuses_arrays_that_do_not_fit(bad, match):
    with pytest.raises(ValueError, match=match):
        P.decode_rolls(*bad)


def test_encode_refuses_what_is_not_a_piano_roll():
    with pytest.raises(ValueError, match=r"rolls\[0\] must have shape \(F, 88\)"):
        P.encode_rolls([np.zeros((3, 87))])
    with pytest.raises(ValueError, match="only 0 and 1"):
        P.encode_rolls([np.full((2, 88), 2)])


def test_jsb_tasks_are_next_frame_prediction_with_their_baselines(rolls):
    train, valid, test = tasks.polyphonic("jsb")
    for task, split in zip((train, valid, test), P.SPLITS, strict=True):
        pieces = rolls["jsb"][split]
        assert task.x.shape[1:] == (len(pieces), 88) and task.loss == "sigmoid"
        assert task.readout == "every" and task.n_classes == 88
        np.testing.assert_array_equal(task.lengths, [r.shape[0] - 1 for r in pieces])
        i = int(np.argmax(task.lengths))
        n = task.lengths[i]
        np.testing.assert_array_equal(task.x[:n, i], pieces[i][:-1])
        np.testing.assert_array_equal(task.y[:n, i], pieces[i][1:])
        assert not task.x[n:, i].any() and not task.y[n:, i].any()
        # baseline: independent keys with their frequencies over this
        # split's target frames, computed here without nll_of_counts
        frames = np.concatenate([r[1:] for r in pieces]).astype(float)
        p = frames.mean(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            ll = np.where(frames == 1, np.log(p), np.log1p(-p))
        assert task.baseline == pytest.approx(-ll.sum() / len(frames), rel=1e-12)
        assert task.info["baseline_train_fit"] >= task.baseline - 1e-12
        assert task.info["chung_table_2"] == {"rnn": 9.10, "gru": 8.54, "lstm": 8.67}
    # fitted on the training split, the memoryless predictor is the split's own there
    assert train.info["baseline_train_fit"] == pytest.approx(train.baseline, rel=1e-3)


@pytest.mark.parametrize("name,expected", [("JSB_Chorales", "jsb"), ("piano-midi", "piano_midi"),
                                           ("Nottingham", "nottingham")])
def test_names_are_forgiving_about_case_and_dashes(name, expected):
    assert P._check_name(name) == expected


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="name must be one of"):
        tasks.polyphonic("bach")
    with pytest.raises(TypeError, match="name must be a str"):
        tasks.polyphonic(3)


def test_the_docstrings_memory_figures(rolls):
    """polyphonic()'s docstring gives the bytes of x and y over the three splits:
    (longest piece - 1) x pieces x 88 float64, twice, per split."""
    doc = " ".join(P.polyphonic.__doc__.split())
    for name in NAMES:
        total = 0
        for pieces in rolls[name].values():
            kept = [r.shape[0] for r in pieces if r.shape[0] >= 2]
            total += 2 * (max(kept) - 1) * len(kept) * P.N_KEYS * 8
        title = P.POLYPHONIC_SETS[name][1]
        shown = f"{total / 1e6:.0f} MB ({title})" if total < 1e9 else f"{total / 1e9:.1f} GB ({title})"
        assert shown in doc, shown
