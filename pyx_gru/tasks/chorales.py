"""Piano rolls of the Bach chorales that ship inside music21's wheel.

In the spirit of the JSB Chorales set of Boulanger-Lewandowski, Bengio &
Vincent 2012 (382 four-part chorales, after Allan & Williams 2005), used by
Chung et al. 2014 ("Empirical evaluation of gated recurrent neural networks
on sequence modeling"): binary frames of 88 piano keys, next-frame
prediction with sigmoid outputs, NLL per frame. It is not the same data:
the pieces, their encoding and the split differ, so numbers compare only in
kind.

Choices:

* Pieces: music21's list of the 371 chorales in Riemenschneider's numbering
  (``music21.corpus.chorales.Iterator``), each distinct piece once (350),
  in that order, keeping those with exactly four parts (the vocal S, A, T,
  B; pieces with obbligato instruments are skipped and listed in the
  metadata). Repeats are not expanded.
* Time: a frame every ``step`` quarter notes (default 1.0, the quarter
  note of JSB Chorales; 0.5 gives eighths). Frame f holds the notes
  sounding at time f · step, counted from the first beat of the score
  (a note sounds on [onset, onset + duration)). A piece of duration d
  quarters has ceil(d / step) frames. Notes that start and end between two
  sampling times (passing eighths at step 1, grace notes) are not seen.
* Pitch: MIDI 21 (A0) to 108 (C8), the 88 piano keys; channel k is MIDI
  21 + k. The four voices span MIDI 36 to 81. Voices in unison share a key.

Parsing all the pieces takes 15 to 25 s on 2 cores, so the rolls are cached once, as
``.npz`` (``allow_pickle=False``) with JSON metadata (music21's version,
the settings, the list of pieces), in ``cache_dir``, else ``$PYX_GRU_DATA``,
else ``$XDG_CACHE_HOME/pyx_gru``, else ``~/.cache/pyx_gru``. music21 reads
the corpus from its installed package, with ``forceSource=True`` so that it
neither reads nor writes its own pickle cache; nothing is downloaded.
"""
import json
import math
import os
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from .._files import write_atomically, write_text
from .._validation import check_size
from ._task import Task, nll_of_counts

__all__ = ["chorales", "load_chorales", "piano_roll", "default_cache_dir", "LOWEST_MIDI", "N_KEYS"]

LOWEST_MIDI = 21  # A0
N_KEYS = 88  # A0..C8
STEPS = (1.0, 0.5, 0.25)
N_PARTS = 4
FORMAT = 2  # bump when the conversion changes, to invalidate old caches
CACHE_ENV = "PYX_GRU_DATA"


def _music21():
    try:
        import music21
        import music21.converter  # noqa: F401
        import music21.corpus.chorales  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "the Bach chorales need music21, an optional extra: "
            'pip install "pyx_gru[tasks]" (or pip install music21)'
        ) from exc
    return music21


def default_cache_dir():
    """Where the piano rolls are cached unless told otherwise.

    Returns
    -------
    pathlib.Path
        ``$PYX_GRU_DATA`` if set, else ``$XDG_CACHE_HOME/pyx_gru``, else
        ``~/.cache/pyx_gru``.
    """
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "pyx_gru"


def _check_step(step):
    if isinstance(step, (bool, np.bool_)) or not isinstance(step, (int, float, np.integer, np.floating)):
        raise TypeError(f"step must be one of {STEPS} (quarter notes), got {step!r}")
    if float(step) not in STEPS:
        raise ValueError(f"step must be one of {STEPS} (quarter notes), got {step!r}")
    return float(step)


def _chorale_files(music21):
    """(name, path) of each distinct chorale file in music21's Riemenschneider
    list, in its order."""
    names = list(dict.fromkeys(music21.corpus.chorales.Iterator(returnType="filename")))
    by_stem = {}
    for path in music21.corpus.getComposer("bach"):
        by_stem.setdefault(Path(path).stem, []).append(Path(path))
    files = []
    for name in names:
        # The name's own file, not a variant (bwv190.7-inst) or a longer
        # number (bwv244.32 for bwv244.3); MusicXML before Humdrum. A name
        # with no file of its own takes the one file it abbreviates
        # (bwv18.5-l: bwv18.5-lz).
        stem = name.split("/")[-1]
        candidates = by_stem.get(stem) or [p for s, ps in by_stem.items() if s.startswith(stem) for p in ps]
        candidates = sorted(candidates, key=lambda p: (p.suffix == ".krn", p.suffix))
        if len({p.stem for p in candidates}) == 1:
            files.append((name, candidates[0]))
    return files


def piano_roll(score, step=1.0):
    """Sample a music21 score into a binary piano roll.

    Parameters
    ----------
    score : music21.stream.Score
        A parsed score (every part's notes and chords are read).
    step : float
        Frame step in quarter notes.

    Returns
    -------
    roll : ndarray, shape (F, 88), bool
        ``roll[f, k]``: MIDI note 21 + k sounds at time f · step, with
        F = ceil(duration / step).
    out_of_range : int
        The number of pitches outside MIDI 21..108 (dropped).
    """
    step = Fraction(_check_step(step))
    n_frames = math.ceil(Fraction(score.highestTime) / step)
    roll = np.zeros((n_frames, N_KEYS), dtype=bool)
    out_of_range = 0
    for part in score.parts:
        for element in part.flatten().notes:
            onset = Fraction(element.offset)
            first = math.ceil(onset / step)
            stop = math.ceil((onset + Fraction(element.quarterLength)) / step)
            for pitch in element.pitches:
                key = pitch.midi - LOWEST_MIDI
                if 0 <= key < N_KEYS:
                    roll[first:stop, key] = True
                else:
                    out_of_range += 1
    return roll, out_of_range


def _cache_paths(directory, step, max_pieces):
    stem = f"chorales_step{step:g}_{'all' if max_pieces is None else f'first{max_pieces}'}"
    return directory / f"{stem}.npz", directory / f"{stem}.json"


def _build(music21, step, max_pieces):
    rolls, pieces, files, skipped = [], [], [], {}
    out_of_range = 0
    start = time.perf_counter()
    for name, path in _chorale_files(music21):
        if max_pieces is not None and len(pieces) == max_pieces:
            break
        score = music21.converter.parse(path, forceSource=True)
        if len(score.parts) != N_PARTS:
            skipped[name] = f"{len(score.parts)} parts"
            continue
        roll, dropped = piano_roll(score, step)
        rolls.append(roll)
        pieces.append(name)
        files.append(path.name)
        out_of_range += dropped
    meta = {
        "format": FORMAT,
        "music21_version": music21.__version__,
        "step": step,
        "lowest_midi": LOWEST_MIDI,
        "n_keys": N_KEYS,
        "max_pieces": max_pieces,
        "pieces": pieces,
        "files": files,
        "n_frames": [int(r.shape[0]) for r in rolls],
        "skipped": skipped,
        "notes_out_of_range": out_of_range,
        "parse_seconds": round(time.perf_counter() - start, 3),
    }
    return rolls, meta


def _save(npz_path, json_path, rolls, meta):
    npz_path.parent.mkdir(parents=True, exist_ok=True)
    offsets = np.concatenate([[0], np.cumsum([r.shape[0] for r in rolls])]).astype(np.int64)
    frames = np.concatenate(rolls) if rolls else np.zeros((0, N_KEYS), dtype=bool)
    write_atomically(npz_path, lambda f: np.savez_compressed(f, frames=frames, offsets=offsets))
    write_text(json_path, json.dumps(meta, indent=1))


def _load(npz_path, json_path):
    """(rolls, meta) from the cache, or None if it is missing or inconsistent."""
    try:
        meta = json.loads(json_path.read_text())
        with np.load(npz_path, allow_pickle=False) as data:
            frames, offsets = data["frames"], data["offsets"]
    except (OSError, ValueError, KeyError):
        return None
    if (
        meta.get("format") != FORMAT
        or frames.dtype != np.bool_
        or frames.ndim != 2
        or frames.shape[1] != N_KEYS
        or offsets.ndim != 1
        or len(offsets) != len(meta.get("pieces", ())) + 1
        or len(meta.get("files", ())) != len(meta["pieces"])
        or offsets[0] != 0
        or offsets[-1] != frames.shape[0]
        or np.any(np.diff(offsets) < 0)
        or np.diff(offsets).tolist() != meta.get("n_frames")
    ):
        return None
    return [frames[a:b] for a, b in zip(offsets[:-1], offsets[1:], strict=True)], meta


def load_chorales(*, step=1.0, max_pieces=None, cache_dir=None, refresh=False):
    """The chorales' piano rolls, from the cache or parsed once and cached.

    Parameters
    ----------
    step : {1.0, 0.5, 0.25}
        Frame step in quarter notes (1.0: quarters, as JSB Chorales).
    max_pieces : int or None
        Keep only the first ``max_pieces`` four-part chorales of the list
        (for quick tests); None: all of them. Cached separately.
    cache_dir : str or path-like or None
        Directory of the cache; None: :func:`default_cache_dir`.
    refresh : bool
        Parse again even if a matching cache exists.

    Returns
    -------
    rolls : list of ndarray, shape (F_i, 88), bool
        One piano roll per piece (see :func:`piano_roll`).
    meta : dict
        ``music21_version``, ``step``, ``lowest_midi``, ``n_keys``,
        ``pieces`` (corpus names, in order), ``files`` (their file names in
        music21's ``corpus/bach``), ``n_frames``, ``skipped``
        (name: reason), ``notes_out_of_range``, ``parse_seconds`` (of the
        run that built the cache), ``cache`` (the ``.npz`` path) and
        ``from_cache`` (whether this call read it).

    Notes
    -----
    A cache is used when its metadata match the settings and the installed
    music21's version. Without music21, a matching cache is still read
    (whatever version built it); with neither, an ``ImportError`` says what
    to install.
    """
    step = _check_step(step)
    if max_pieces is not None:
        max_pieces = check_size("max_pieces", max_pieces)
    directory = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    npz_path, json_path = _cache_paths(directory, step, max_pieces)
    try:
        music21 = _music21()
    except ImportError:
        music21 = None
    cached = None if refresh else _load(npz_path, json_path)
    if cached is not None:
        rolls, meta = cached
        same = meta.get("step") == step and meta.get("max_pieces") == max_pieces
        if same and (music21 is None or meta.get("music21_version") == music21.__version__):
            return rolls, dict(meta, cache=str(npz_path), from_cache=True)
    if music21 is None:
        _music21()  # raises the ImportError that says what to install
    rolls, meta = _build(music21, step, max_pieces)
    _save(npz_path, json_path, rolls, meta)
    return rolls, dict(meta, cache=str(npz_path), from_cache=False)


def next_frame_arrays(rolls):
    """Next-frame prediction over piano rolls of at least 2 frames each:
    x[t, n] is frame t of roll n and y[t, n] frame t + 1, zero past the
    roll's end. Returns x and y (T, N, 88) float64 with T the longest roll's
    frames minus 1, and F (N,) int64, the frames of each roll."""
    F = np.array([r.shape[0] for r in rolls], dtype=np.int64)
    T, N = int(F.max(initial=1)) - 1, len(rolls)
    x = np.zeros((T, N, N_KEYS))
    y = np.zeros((T, N, N_KEYS))
    for i, roll in enumerate(rolls):
        x[: F[i] - 1, i] = roll[:-1]
        y[: F[i] - 1, i] = roll[1:]
    return x, y, F


def _chorale_baselines(task):
    counted = task.counted()
    prev = task.x[counted].astype(np.int64)  # (M, K): the current frame
    target = task.y[counted].astype(np.int64)  # (M, K): the next frame
    M, K = target.shape
    if M == 0:
        return {"baseline": math.nan, "baseline_repeat": math.nan}
    on = target.sum(axis=0)
    # Independent Bernoulli per key, its frequency fitted on these frames.
    bernoulli = nll_of_counts(np.stack([M - on, on], axis=1)) / M
    # Per key, P(on | on in the current frame) and P(on | off): "repeat the
    # previous frame", smoothed by the fitted switching rates.
    joint = np.stack([np.bincount(2 * prev[:, k] + target[:, k], minlength=4) for k in range(K)])
    repeat = nll_of_counts(joint.reshape(K, 2, 2)) / M
    return {"baseline": bernoulli, "baseline_repeat": repeat}


def chorales(*, step=1.0, max_pieces=None, cache_dir=None, refresh=False):
    """Next-frame prediction on piano rolls of Bach's four-part chorales.

    The rolls come from :func:`load_chorales` (see the module docstring for
    the pieces, the sampling and the pitch range). Each piece is one
    sequence: the input at step t is frame t and the target is frame t + 1,
    so a piece of F frames gives F - 1 steps. :meth:`Task.split` splits by
    piece, deterministically for a given seed.

    Baselines, in nats per frame summed over the 88 keys (the "sigmoid"
    units), computed exactly on the task's own frames (and on each part by
    :meth:`Task.split`):

    * ``baseline``: independent Bernoulli per key with its frequency over
      the target frames (memoryless: it sees nothing);
    * ``info["baseline_repeat"]``: per key, a two-state model P(on at t+1 |
      on or off at t), fitted on the same frames: "repeat the previous
      frame", smoothed by how often keys switch. It sees the current input.

    Parameters
    ----------
    step : {1.0, 0.5, 0.25}
        Frame step in quarter notes, as in :func:`load_chorales`.
    max_pieces : int or None
        Keep only the first chorales, as in :func:`load_chorales`.
    cache_dir : str or path-like or None
        Directory of the cache, as in :func:`load_chorales`.
    refresh : bool
        Convert the corpus again, as in :func:`load_chorales`.

    Returns
    -------
    Task
        ``x`` and ``y`` (T, N, 88) float64 in {0, 1}, ``lengths`` (N,),
        ``readout="every"``, ``loss="sigmoid"``, ``n_classes=88``, with T
        the longest piece's frame count minus 1; ``info["rows"]`` holds each
        row's ``piece`` name, ``file`` and ``n_frames``; ``info`` the metadata of
        :func:`load_chorales`.

    Raises
    ------
    ImportError
        Without music21 (and no matching cache).
    """
    rolls, meta = load_chorales(step=step, max_pieces=max_pieces, cache_dir=cache_dir, refresh=refresh)
    keep = [i for i, r in enumerate(rolls) if r.shape[0] >= 2]
    x, y, F = next_frame_arrays([rolls[i] for i in keep])
    info = {k: v for k, v in meta.items() if k not in ("pieces", "files", "n_frames")}
    info["rows"] = {"piece": [meta["pieces"][i] for i in keep], "file": [meta["files"][i] for i in keep],
                    "n_frames": F}
    info["reference"] = "in the spirit of JSB Chorales (Boulanger-Lewandowski et al. 2012; Chung et al. 2014)"
    task = Task("chorales", x, y, F - 1, None, "every", "sigmoid", N_KEYS, 0.0, info=info,
                baseline_fn=_chorale_baselines)
    return task._with_baselines()
