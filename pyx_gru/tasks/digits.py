"""scikit-learn's 8×8 handwritten digits read as sequences.

Needs the optional extra scikit-learn (``pip install "pyx_gru[tasks]"``);
the data ship inside its wheel, nothing is downloaded.
"""
import numpy as np

from ._task import Task, class_prior_nll, task_seed

__all__ = ["digits"]

MODES = ("rows", "pixels")


def _load_digits():
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise ImportError(
            "pyx_gru.tasks.digits needs scikit-learn, an optional extra: "
            'pip install "pyx_gru[tasks]" (or pip install scikit-learn)'
        ) from exc
    data = load_digits()
    return np.asarray(data.images, dtype=np.float64), np.asarray(data.target, dtype=np.int64)


def _digits_baselines(task):
    return {"baseline": class_prior_nll(task.y, 10)}


def digits(mode="rows", *, permute=False, seed=0):
    """Classify scikit-learn's 8×8 digits read as a sequence.

    The 1797 images of ``sklearn.datasets.load_digits`` (the test part of
    the UCI "Optical Recognition of Handwritten Digits" set, Alpaydin &
    Kaynak 1998), pixel values 0..16 scaled to [0, 1]. ``mode="rows"``
    reads an image row by row, top to bottom (T = 8 steps of D = 8 pixels);
    ``mode="pixels"`` reads it pixel by pixel in row-major order (T = 64,
    D = 1), the small cousin of pixel-by-pixel MNIST (Le, Jaitly & Hinton
    2015). ``permute=True`` applies one fixed permutation of the 64 pixels,
    drawn from ``seed``, before reading them (pixel mode only), as in
    permuted MNIST: neighbouring pixels end up far apart in time. The class
    is read out after the last step.

    Memoryless baseline: the cross-entropy of the class prior, i.e. the
    entropy of the empirical class frequencies of the task's own labels
    (about ln 10 ≈ 2.302; recomputed on each part by
    :meth:`Task.split`).

    Parameters
    ----------
    mode : {"rows", "pixels"}
        Row by row (T = 8, D = 8) or pixel by pixel (T = 64, D = 1).
    permute : bool
        Permute the pixels (``mode="pixels"`` only).
    seed : int
        Seeds the permutation; unused without ``permute``.

    Returns
    -------
    Task
        ``x`` (8, 1797, 8) or (64, 1797, 1), ``y`` (1797,) int classes,
        ``readout="last"``, ``loss="softmax"``, ``n_classes=10``;
        ``info["permutation"]`` (64,) gives, for step t in pixel mode, the
        row-major index of the pixel read at t.

    Raises
    ------
    ImportError
        Without scikit-learn.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if not isinstance(permute, (bool, np.bool_)):
        raise TypeError(f"permute must be a bool, got {type(permute).__name__}")
    if permute and mode != "pixels":
        raise ValueError("permute=True needs mode='pixels'")
    seed = task_seed(seed)
    images, labels = _load_digits()
    N = images.shape[0]
    images = images / 16.0
    if mode == "rows":
        x = images.transpose(1, 0, 2)
        permutation = None
    else:
        permutation = np.random.default_rng(seed).permutation(64) if permute else np.arange(64)
        x = images.reshape(N, 64)[:, permutation].T[:, :, None]
    info = {"mode": mode, "permute": bool(permute), "seed": seed, "scale": 1 / 16,
            "rows": {"index": np.arange(N)},
            "reference": "sklearn.datasets.load_digits; UCI optdigits (Alpaydin & Kaynak 1998)"}
    if permutation is not None:
        info["permutation"] = permutation
    name = "digits_rows" if mode == "rows" else ("digits_permuted_pixels" if permute else "digits_pixels")
    task = Task(name, x, labels, None, None, "last", "softmax", 10, 0.0, info=info,
                baseline_fn=_digits_baselines)
    return task._with_baselines()
