"""pyx_gru.tasks on real data: scikit-learn's digits and music21's Bach chorales.

The digit sequences are compared with ``load_digits`` itself. The chorale
piano rolls are compared with a MusicXML reader written here (zipfile and
ElementTree, not music21) on a small subset built into a temporary cache,
with the network switched off. Tests that need an optional package skip,
saying which, when it is missing; the clear ImportError is tested without
them.
"""
import json
import math
import os
import shutil
import socket
import sys
import xml.etree.ElementTree as ET
import zipfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from scipy.special import xlogy

from pyx_gru import tasks

# -- optional packages missing: a clear ImportError ---------------------------


def test_digits_without_scikit_learn_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r'scikit-learn.*pip install "pyx_gru\[tasks\]"'):
        tasks.digits()


def test_chorales_without_music21_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "music21", None)
    with pytest.raises(ImportError, match=r'music21.*pip install "pyx_gru\[tasks\]"'):
        tasks.chorales(cache_dir=tmp_path)


# -- digits --------------------------------------------------------------------


@pytest.fixture(scope="module")
def sklearn_digits():
    datasets = pytest.importorskip("sklearn.datasets", reason="scikit-learn (optional extra 'tasks') is not installed")
    data = datasets.load_digits()
    return data.images, data.target


def prior_nll(labels):
    counts = np.unique(labels, return_counts=True)[1]
    p = counts / counts.sum()
    return float(-np.sum(counts * np.log(p)) / counts.sum())


def test_digits_rows(sklearn_digits):
    images, labels = sklearn_digits
    task = tasks.digits("rows")
    N = len(labels)
    assert N == 1797
    assert task.x.shape == (8, N, 8) and task.y.shape == (N,) and task.y.dtype == np.int64
    assert (task.readout, task.loss, task.n_classes, task.lengths) == ("last", "softmax", 10, None)
    for n in (0, 1, 500, N - 1):
        for r in range(8):
            np.testing.assert_array_equal(task.x[r, n], images[n, r] / 16)
    np.testing.assert_array_equal(task.y, labels)
    assert task.x.min() == 0 and task.x.max() == 1
    assert task.baseline == pytest.approx(prior_nll(labels), rel=1e-12)
    assert abs(task.baseline - math.log(10)) < 0.01


def test_digits_pixels_and_permutation(sklearn_digits):
    images, labels = sklearn_digits
    plain = tasks.digits("pixels")
    assert plain.x.shape == (64, 1797, 1)
    for n in (0, 9, 1796):
        np.testing.assert_array_equal(plain.x[:, n, 0], images[n].ravel() / 16)
    perm = tasks.digits("pixels", permute=True, seed=3)
    p = perm.info["permutation"]
    assert sorted(p.tolist()) == list(range(64)) and not np.array_equal(p, np.arange(64))
    np.testing.assert_array_equal(perm.x, plain.x[p])
    np.testing.assert_array_equal(perm.y, plain.y)
    assert np.array_equal(tasks.digits("pixels", permute=True, seed=3).x, perm.x)
    assert not np.array_equal(tasks.digits("pixels", permute=True, seed=4).info["permutation"], p)
    assert perm.baseline == plain.baseline
    assert np.array_equal(plain.info["permutation"], np.arange(64))


def test_digits_split_gives_each_part_its_prior(sklearn_digits):
    train, valid, test = tasks.digits().split(seed=1)
    assert (train.N, valid.N, test.N) == (1438, 179, 180)  # round(1437.6), round(1617.3) - 1438, rest
    for part in (train, valid, test):
        assert part.baseline == pytest.approx(prior_nll(part.y), rel=1e-12)
    rows = np.concatenate([p.info["rows"]["index"] for p in (train, valid, test)])
    assert sorted(rows.tolist()) == list(range(1797))


@pytest.mark.parametrize(
    "kw, error", [(dict(mode="cols"), ValueError), (dict(permute=True), ValueError), (dict(permute=1), TypeError)]
)
def test_digits_rejects_bad_arguments(kw, error):
    with pytest.raises(error):
        tasks.digits(**kw)


# -- chorales: an independent MusicXML reader ----------------------------------

_SEMITONE = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def read_musicxml(path):
    """The score element of a .mxl (zipped) or .xml MusicXML file."""
    path = Path(path)
    if path.suffix == ".mxl":
        with zipfile.ZipFile(path) as z:
            container = ET.fromstring(z.read("META-INF/container.xml"))
            root = next(e.get("full-path") for e in container.iter() if e.tag.endswith("rootfile"))
            return ET.fromstring(z.read(root))
    return ET.parse(path).getroot()


def musicxml_notes(root):
    """Pitched notes as (onset, end, midi) in quarter notes, the end of the
    last note or rest, and the number of parts. Measures follow each other;
    within one, a note advances the time unless it is part of a chord;
    <backup> and <forward> move it; grace notes take no time."""
    notes, piece_end = [], Fraction(0)
    parts = root.findall("part")
    for part in parts:
        start, divisions = Fraction(0), 1
        for measure in part.findall("measure"):
            pos = longest = last_onset = Fraction(0)
            for el in measure:
                if el.tag == "attributes" and el.find("divisions") is not None:
                    divisions = int(el.find("divisions").text)
                elif el.tag == "note" and el.find("grace") is None:
                    duration = Fraction(int(el.find("duration").text), divisions)
                    onset = last_onset if el.find("chord") is not None else pos
                    if el.find("chord") is None:
                        pos += duration
                    last_onset = onset
                    piece_end = max(piece_end, start + onset + duration)
                    pitch = el.find("pitch")
                    if pitch is not None:
                        alter = pitch.find("alter")
                        midi = (12 * (int(pitch.find("octave").text) + 1) + _SEMITONE[pitch.find("step").text]
                                + (int(float(alter.text)) if alter is not None else 0))
                        notes.append((start + onset, start + onset + duration, midi))
                elif el.tag in ("backup", "forward"):
                    d = Fraction(int(el.find("duration").text), divisions)
                    pos += d if el.tag == "forward" else -d
                longest = max(longest, pos)
            start += longest
    return notes, piece_end, len(parts)


def musicxml_roll(path, step):
    """The roll sampled at multiples of ``step``: key k is on in frame f when
    MIDI 21 + k sounds at f * step."""
    notes, end, _ = musicxml_notes(read_musicxml(path))
    step = Fraction(step)
    roll = np.zeros((math.ceil(end / step), 88), dtype=bool)
    for onset, stop, midi in notes:
        roll[math.ceil(onset / step): math.ceil(stop / step), midi - 21] = True
    return roll


def corpus_file(music21, name):
    """music21's corpus file for a name such as 'bach/bwv66.6' (the file name
    itself, such as 'bwv66.6.mxl', also works)."""
    base = Path(music21.__file__).parent / "corpus" / name
    if base.suffix in (".mxl", ".xml"):
        return base
    candidates = (base.with_suffix(base.suffix + ".mxl"), base.with_suffix(base.suffix + ".xml"))
    return next(p for p in candidates if p.exists())


def _offline(*args, **kwargs):
    raise AssertionError("tried to use the network")


N_PIECES = 4


@pytest.fixture(scope="module")
def music21():
    return pytest.importorskip("music21", reason="music21 (optional extra 'tasks') is not installed")


@pytest.fixture(scope="module")
def built(music21, tmp_path_factory):
    """A cache of the first few chorales, built with the network forbidden."""
    directory = tmp_path_factory.mktemp("chorales")
    with pytest.MonkeyPatch.context() as mp:
        for name in ("connect", "connect_ex", "sendto", "sendmsg"):
            mp.setattr(socket.socket, name, _offline)
        mp.setattr(socket, "create_connection", _offline)
        mp.setattr(socket, "getaddrinfo", _offline)
        rolls, meta = tasks.load_chorales(max_pieces=N_PIECES, cache_dir=directory)
        task = tasks.chorales(max_pieces=N_PIECES, cache_dir=directory)
    return directory, rolls, meta, task


def test_chorales_build_offline_and_metadata(built, music21):
    directory, rolls, meta, task = built
    assert meta["from_cache"] is False and task.info["from_cache"] is True
    assert meta["music21_version"] == music21.__version__
    assert (meta["step"], meta["lowest_midi"], meta["n_keys"], meta["max_pieces"]) == (1.0, 21, 88, N_PIECES)
    assert len(meta["pieces"]) == N_PIECES and meta["notes_out_of_range"] == 0
    assert meta["parse_seconds"] > 0
    # the pieces come from music21's Riemenschneider list, four-part ones only
    listed = list(dict.fromkeys(music21.corpus.chorales.Iterator(returnType="filename")))
    assert meta["pieces"] == [n for n in listed[: listed.index(meta["pieces"][-1]) + 1] if n not in meta["skipped"]]
    for name, file in zip(meta["pieces"], meta["files"], strict=True):
        assert file.startswith(name.split("/")[1])
        assert musicxml_notes(read_musicxml(corpus_file(music21, "bach/" + file)))[2] == 4
    saved = json.loads((directory / "chorales_step1_first4.json").read_text())
    assert saved["pieces"] == meta["pieces"] and saved["n_frames"] == [r.shape[0] for r in rolls]
    assert saved["files"] == meta["files"] and saved["format"] == 2


def test_chorale_rolls_match_the_musicxml(built, music21):
    _, rolls, meta, _ = built
    for name, file, roll in zip(meta["pieces"], meta["files"], rolls, strict=True):
        expected = musicxml_roll(corpus_file(music21, "bach/" + file), 1.0)
        assert roll.dtype == np.bool_ and roll.shape == expected.shape, name
        np.testing.assert_array_equal(roll, expected, err_msg=name)
        assert 3 <= roll.sum(axis=1).mean() <= 4  # four voices, sometimes in unison or resting


@pytest.mark.parametrize("step, frames", [(1.0, 36), (0.5, 72), (0.25, 144)])
def test_known_chorale_first_chord_and_frame_count(music21, step, frames):
    # BWV 66.6 ("Christ unser Herr zum Jordan kam" setting), F-sharp minor,
    # 36 quarter notes long; its first chord is C#5 E4 A3 A3 (tenor and bass
    # in unison), MIDI 73, 64, 57.
    path = corpus_file(music21, "bach/bwv66.6")
    notes, end, _ = musicxml_notes(read_musicxml(path))
    assert end == 36 and sorted(m for on, _, m in notes if on == 0) == [57, 57, 64, 73]
    roll, dropped = tasks.piano_roll(music21.converter.parse(path, forceSource=True), step)
    assert dropped == 0 and roll.shape == (frames, 88) == (math.ceil(end / Fraction(step)), 88)
    assert (np.flatnonzero(roll[0]) + 21).tolist() == [57, 64, 73]
    np.testing.assert_array_equal(roll, musicxml_roll(path, step))


def test_chorale_task_arrays(built):
    _, rolls, meta, task = built
    F = np.array([r.shape[0] for r in rolls])
    assert task.x.shape == (F.max() - 1, N_PIECES, 88) and task.y.shape == task.x.shape
    assert task.x.dtype == np.float64 and (task.readout, task.loss, task.n_classes) == ("every", "sigmoid", 88)
    np.testing.assert_array_equal(task.lengths, F - 1)
    assert task.info["rows"]["piece"] == meta["pieces"] and task.info["rows"]["file"] == meta["files"]
    for i, roll in enumerate(rolls):
        np.testing.assert_array_equal(task.x[: F[i] - 1, i], roll[:-1])
        np.testing.assert_array_equal(task.y[: F[i] - 1, i], roll[1:])
        assert not task.x[F[i] - 1:, i].any() and not task.y[F[i] - 1:, i].any()


def bernoulli_nll(x, y, counted):
    """NLL per frame, summed over keys, of an independent Bernoulli per key
    with its frequency over the counted target frames."""
    target = y[counted]
    p = target.mean(axis=0)
    return float(-np.sum(xlogy(target, p) + xlogy(1 - target, 1 - p)) / len(target))


def repeat_nll(x, y, counted):
    """The same for P(key on | key on or off in the current frame)."""
    prev, target = x[counted], y[counted]
    total = 0.0
    for state in (0, 1):
        rows = prev == state
        n = rows.sum(axis=0)
        p = np.where(n > 0, (target * rows).sum(axis=0) / np.maximum(n, 1), 0.5)
        with np.errstate(divide="ignore", invalid="ignore"):
            ll = xlogy(target, p) + xlogy(1 - target, 1 - p)
        total -= np.sum(ll[rows])  # frames in this state only
    return float(total / len(target))


def test_chorale_baselines(built):
    *_, task = built
    counted = np.arange(task.T)[:, None] < task.lengths[None, :]
    assert task.baseline == pytest.approx(bernoulli_nll(task.x, task.y, counted), rel=1e-12)
    assert task.info["baseline_repeat"] == pytest.approx(repeat_nll(task.x, task.y, counted), rel=1e-12)
    assert 0 < task.info["baseline_repeat"] < task.baseline
    train, valid, test = task.split((0.5, 0.25, 0.25), seed=0)
    for part in (train, valid, test):
        c = np.arange(part.T)[:, None] < part.lengths[None, :]
        assert part.baseline == pytest.approx(bernoulli_nll(part.x, part.y, c), rel=1e-12)


def test_chorale_split_is_by_piece_and_deterministic(built):
    *_, task = built
    parts = task.split((0.5, 0.25, 0.25), seed=5)
    pieces = [p.info["rows"]["piece"] for p in parts]
    assert sorted(sum(pieces, [])) == sorted(task.info["rows"]["piece"])
    assert pieces == [p.info["rows"]["piece"] for p in task.split((0.5, 0.25, 0.25), seed=5)]
    for part in parts:
        for i, name in enumerate(part.info["rows"]["piece"]):
            j = task.info["rows"]["piece"].index(name)
            np.testing.assert_array_equal(part.y[:, i], task.y[: part.T, j])


def test_chorale_cache_round_trip_is_bitwise(built):
    directory, rolls, meta, _ = built
    again, meta2 = tasks.load_chorales(max_pieces=N_PIECES, cache_dir=directory)
    assert meta2["from_cache"] is True
    assert {k: v for k, v in meta2.items() if k != "from_cache"} == {k: v for k, v in meta.items() if k != "from_cache"}
    for a, b in zip(rolls, again, strict=True):
        assert a.dtype == b.dtype == np.bool_ and a.shape == b.shape and a.tobytes() == b.tobytes()
    with np.load(directory / "chorales_step1_first4.npz", allow_pickle=False) as data:
        assert sorted(data.files) == ["frames", "offsets"]
        assert data["frames"].tobytes() == np.concatenate(rolls).tobytes()


def test_chorale_cache_is_rebuilt_when_stale_or_broken(built, tmp_path):
    directory, rolls, meta, _ = built
    for name in ("chorales_step1_first4.npz", "chorales_step1_first4.json"):
        shutil.copy(directory / name, tmp_path / name)
    stale = json.loads((tmp_path / "chorales_step1_first4.json").read_text())
    stale["music21_version"] = "0.0"
    (tmp_path / "chorales_step1_first4.json").write_text(json.dumps(stale))
    rebuilt, meta2 = tasks.load_chorales(max_pieces=N_PIECES, cache_dir=tmp_path)
    assert meta2["from_cache"] is False and meta2["music21_version"] == meta["music21_version"]
    assert all(np.array_equal(a, b) for a, b in zip(rolls, rebuilt, strict=True))
    (tmp_path / "chorales_step1_first4.npz").write_bytes(b"not a zip file")
    assert tasks.load_chorales(max_pieces=N_PIECES, cache_dir=tmp_path)[1]["from_cache"] is False
    assert tasks.load_chorales(max_pieces=N_PIECES, cache_dir=tmp_path)[1]["from_cache"] is True
    assert tasks.load_chorales(max_pieces=N_PIECES, cache_dir=tmp_path, refresh=True)[1]["from_cache"] is False


def test_chorale_cache_reads_without_music21(built, monkeypatch, tmp_path):
    directory, rolls, _, _ = built
    monkeypatch.setitem(sys.modules, "music21", None)
    again, meta = tasks.load_chorales(max_pieces=N_PIECES, cache_dir=directory)
    assert meta["from_cache"] is True and all(np.array_equal(a, b) for a, b in zip(rolls, again, strict=True))
    with pytest.raises(ImportError, match="music21"):
        tasks.load_chorales(max_pieces=N_PIECES, cache_dir=tmp_path)


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("PYX_GRU_DATA", str(tmp_path / "data"))
    assert tasks.default_cache_dir() == tmp_path / "data"
    monkeypatch.delenv("PYX_GRU_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert tasks.default_cache_dir() == tmp_path / "xdg" / "pyx_gru"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert tasks.default_cache_dir() == Path(os.path.expanduser("~")) / ".cache" / "pyx_gru"


@pytest.mark.parametrize("kw, error", [
    (dict(step=0.3), ValueError), (dict(step="1"), TypeError), (dict(max_pieces=0), ValueError),
])
def test_chorales_reject_bad_arguments(kw, error, tmp_path):
    with pytest.raises(error):
        tasks.load_chorales(cache_dir=tmp_path, **kw)


def test_piano_roll_samples_at_frame_starts(music21):
    from music21 import chord, note, stream

    def part(*elements):
        p = stream.Part()
        for offset, element in elements:
            p.insert(offset, element)
        return p

    triplet = note.Note(62, quarterLength=Fraction(1, 3))
    grace = note.Note(64, quarterLength=1).getGrace()
    score = stream.Score([
        part((0, note.Note(60, quarterLength=2.5)), (2.5, note.Note(67, quarterLength=0.5))),  # 67 misses t = 2
        part((0.5, note.Note(48, quarterLength=1)), (Fraction(5, 3), triplet),
             (3, chord.Chord([50, 53], quarterLength=1))),
        part((1, grace), (1, note.Note(110, quarterLength=1))),  # a grace note and one above C8
    ])
    roll, dropped = tasks.piano_roll(score, 1.0)
    on = [sorted((np.flatnonzero(frame) + 21).tolist()) for frame in roll]
    # t = 0: 60; t = 1: 60 and 48 (onset 0.5; the grace note takes no
    # time); t = 2: 60 only, the triplet [5/3, 2) and 67 [2.5, 3) fall between
    # samples; t = 3: the chord. MIDI 110 is above the piano: dropped.
    assert on == [[60], [48, 60], [60], [50, 53]] and dropped == 1
    halves, _ = tasks.piano_roll(score, 0.5)
    # every half beat: 60 ends at 2.5, where 67 starts
    assert [sorted((np.flatnonzero(f) + 21).tolist()) for f in halves] == [
        [60], [48, 60], [48, 60], [60], [60], [67], [50, 53], [50, 53]]
    assert halves.shape == (8, 88)
