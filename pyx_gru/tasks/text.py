"""Text for character-level language models: the Python standard library's own source.

Every Python installation has it, so nothing is downloaded. ``stdlib_source``
picks whole ``.py`` files by a fixed rule and returns a :class:`CharText`:
the text, its vocabulary, its characters as integer codes, and which
characters lie inside a string literal or a comment (from the standard
library's ``tokenize``), for looking at what a model's hidden units track.
The files differ between Python versions, so the text does too; on one
installation the same arguments give the same text.
"""
import io
import os
import sys
import tokenize
from dataclasses import dataclass, field

import numpy as np

from .._validation import check_size
from ._task import task_seed

__all__ = ["CharText", "stdlib_source"]

_CODE, _STRING, _COMMENT = range(3)
# printable ASCII and the newline: the characters a file may hold
_ALLOWED = frozenset(chr(c) for c in range(32, 127)) | {"\n"}


def _frozen(arr):
    arr = np.ascontiguousarray(arr)
    arr.flags.writeable = False
    return arr


@dataclass(frozen=True, eq=False)
class CharText:
    """A text, its vocabulary and its characters as class indices.

    Made by :func:`stdlib_source`; the arrays are read-only.

    Parameters
    ----------
    text : str
        The text, n characters.
    chars : str
        The vocabulary: the distinct characters of ``text``, sorted by code
        point. K = ``len(chars)``.
    codes : ndarray, shape (n,), int64
        ``text[i] == chars[codes[i]]``: the class index of every character.
    kinds : ndarray, shape (n,), int8
        What each character is part of, by ``tokenize``: 0 code (everything
        else, whitespace included), 1 a string literal (its prefix and
        quotes included; docstrings too), 2 a comment (from ``#`` to the
        end of the line). ``CharText.KIND_NAMES[k]`` names value k.
    files : tuple of (str, int, int)
        ``(name, start, stop)``: ``text[start:stop]`` comes from the file
        ``name``, in the order of the text (the last one may be cut short).
    info : dict
        How the text was chosen: the directory, seed, skipped words, the
        number of files that qualified, the Python version.
    """

    text: str = field(repr=False)
    chars: str
    codes: np.ndarray = field(repr=False)
    kinds: np.ndarray = field(repr=False)
    files: tuple = field(repr=False)
    info: dict = field(default_factory=dict, repr=False)

    KIND_NAMES = ("code", "string", "comment")  # not a field: no annotation

    n_chars = property(lambda self: len(self.text), doc="int: n, the length of the text.")
    n_classes = property(lambda self: len(self.chars), doc="int: K, the size of the vocabulary.")

    def __len__(self):
        return len(self.text)

    def encode(self, s):
        """Class indices of the characters of ``s``.

        Parameters
        ----------
        s : str
            Characters of the vocabulary.

        Returns
        -------
        ndarray, shape (len(s),), int64
            The class index of each character: ``chars[out[i]] == s[i]``.

        Raises
        ------
        ValueError
            When ``s`` has a character outside the vocabulary.
        """
        if not isinstance(s, str):
            raise TypeError(f"s must be a str, got {type(s).__name__}")
        index = {c: i for i, c in enumerate(self.chars)}
        try:
            return np.array([index[c] for c in s], dtype=np.int64)
        except KeyError as exc:
            raise ValueError(f"{exc.args[0]!r} is not in the vocabulary of {self.n_classes} "
                             "characters") from None

    def decode(self, codes):
        """The text of class indices: the inverse of :meth:`encode`.

        Parameters
        ----------
        codes : array_like of int, shape (m,)
            Values in [0, K).

        Returns
        -------
        str
            The m characters ``chars[codes[i]]``.
        """
        codes = np.asarray(codes)
        if codes.ndim != 1 or (codes.size and codes.dtype.kind not in "iu"):
            raise ValueError(f"codes must be a 1-D array of ints, got {codes.dtype} {codes.shape}")
        if codes.size and (codes.min() < 0 or codes.max() >= self.n_classes):
            raise ValueError(f"codes must lie in [0, {self.n_classes}), got values in "
                             f"[{codes.min()}, {codes.max()}]")
        return "".join(self.chars[i] for i in codes.tolist())

    def one_hot(self, codes, dtype=np.float64):
        """One-hot vectors of class indices: the inputs of a model.

        Parameters
        ----------
        codes : array_like of int, any shape S
            Values in [0, K).
        dtype : {numpy.float64, numpy.float32}
            The vectors' dtype.

        Returns
        -------
        ndarray, shape S + (K,)
            ``out[..., k]`` is 1 where ``codes == k``, else 0.
        """
        codes = np.asarray(codes)
        if codes.size and codes.dtype.kind not in "iu":
            raise ValueError(f"codes must be ints, got {codes.dtype}")
        if codes.size and (codes.min() < 0 or codes.max() >= self.n_classes):
            raise ValueError(f"codes must lie in [0, {self.n_classes}), got values in "
                             f"[{codes.min()}, {codes.max()}]")
        return np.eye(self.n_classes, dtype=dtype)[codes.astype(np.intp)]


def _kinds(source):
    """(len(source),) int8: 0 code, 1 string, 2 comment, by ``tokenize``.

    Raises tokenize.TokenError, SyntaxError (IndentationError) when the
    source cannot be tokenized.
    """
    starts = [0]  # offset of the start of each line (tokenize's rows are 1-based)
    for line in source.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    out = np.zeros(len(source), dtype=np.int8)
    fstring = getattr(tokenize, "FSTRING_START", None)  # Python >= 3.12 splits f-strings
    depth, opened = 0, None
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        a = starts[tok.start[0] - 1] + tok.start[1]
        b = starts[tok.end[0] - 1] + tok.end[1]
        if fstring is not None and tok.type == fstring:
            depth += 1
            if depth == 1:
                opened = a
        elif fstring is not None and tok.type == tokenize.FSTRING_END:
            depth -= 1
            if depth == 0:  # the whole f-string, as Python < 3.12 gives it
                out[opened:b] = _STRING
        elif tok.type == tokenize.STRING and not depth:
            out[a:b] = _STRING
        elif tok.type == tokenize.COMMENT:
            out[a:b] = _COMMENT
    return out


def _qualifies(source, skip_words):
    return (set(source) <= _ALLOWED
            and not any(w in source.lower() for w in skip_words))


def stdlib_source(n_chars=None, *, seed=0, skip_words=(), directory=None):
    """The Python standard library's own source, whole files, as one text.

    The rule, fixed so that the same installation and arguments always give
    the same text:

    1. the ``.py`` files directly in ``directory`` (the standard library's,
       ``os.path.dirname(os.__file__)``, unless given; not its packages),
       whose names do not start with ``_`` (private modules, among them
       generated ones such as ``_sysconfigdata_*``), sorted by name;
    2. in the order of a permutation drawn from ``seed``;
    3. keeping a file only if it is UTF-8 holding printable ASCII and
       newlines only (no tab, no form feed, no non-ASCII letter), contains
       none of ``skip_words`` (case-insensitive), and ``tokenize`` reads it;
    4. concatenated, a newline added to a file without a final one, until
       ``n_chars`` characters (the last file cut there).

    Parameters
    ----------
    n_chars : int, optional
        The length of the text; None takes every file that qualifies.
    seed : int
        Seeds the order of the files (non-negative).
    skip_words : sequence of str
        Leave out the files that contain any of these (case-insensitive).
    directory : str or os.PathLike, optional
        Where to read ``.py`` files; None is the standard library's.

    Returns
    -------
    CharText
        The text, its vocabulary (the distinct characters, at most 96), the
        codes, the string/comment kinds, and the files used.

    Raises
    ------
    ValueError
        When the qualifying files hold fewer than ``n_chars`` characters.
    """
    if n_chars is not None:
        n_chars = check_size("n_chars", n_chars)
    seed = task_seed(seed)
    if isinstance(skip_words, str) or not all(isinstance(w, str) and w for w in skip_words):
        raise TypeError(f"skip_words must be a sequence of non-empty str, got {skip_words!r}")
    skip_words = tuple(w.lower() for w in skip_words)
    directory = os.fspath(os.path.dirname(os.__file__) if directory is None else directory)
    names = sorted(n for n in os.listdir(directory)
                   if n.endswith(".py") and not n.startswith("_")
                   and os.path.isfile(os.path.join(directory, n)))
    order = [names[i] for i in np.random.default_rng(seed).permutation(len(names))]
    parts, kinds, files, total = [], [], [], 0
    for name in order:
        if n_chars is not None and total >= n_chars:
            break
        try:
            with open(os.path.join(directory, name), encoding="utf-8", newline="") as f:
                source = f.read()
        except (UnicodeDecodeError, OSError):
            continue
        if not source or not _qualifies(source, skip_words):
            continue
        if not source.endswith("\n"):
            source += "\n"
        try:
            k = _kinds(source)
        except (tokenize.TokenError, SyntaxError):
            continue
        if n_chars is not None:
            source, k = source[:n_chars - total], k[:n_chars - total]
        files.append((name, total, total + len(source)))
        parts.append(source)
        kinds.append(k)
        total += len(source)
    if n_chars is not None and total < n_chars:
        raise ValueError(f"n_chars={n_chars}, but the qualifying files of {directory} hold only "
                         f"{total} characters")
    if not parts:
        raise ValueError(f"no file of {directory} qualifies")
    text = "".join(parts)
    chars = "".join(sorted(set(text)))
    lookup = np.zeros(128, dtype=np.int64)
    lookup[[ord(c) for c in chars]] = np.arange(len(chars))
    codes = lookup[np.frombuffer(text.encode("ascii"), dtype=np.uint8)]
    info = {"directory": directory, "seed": seed, "skip_words": skip_words,
            "n_files_listed": len(names), "python": sys.version.split()[0]}
    return CharText(text=text, chars=chars, codes=_frozen(codes),
                    kinds=_frozen(np.concatenate(kinds)), files=tuple(files), info=info)
