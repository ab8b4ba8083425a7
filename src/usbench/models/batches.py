"""Training-time transforms of feature rows, and the test-time crop windows.

Pure numpy, seeded by the caller's ``numpy.random.Generator``; no Keras. Used by the Keras
families once per epoch on the training part only: nothing here is ever applied to
validation or test rows except ``crop_offsets`` / ``crop``, which take fixed, evenly spaced
windows for prediction.

Shapes: vector rows are (n, d); matrix rows are (n, bands, frames) in standardised units.
"""

from __future__ import annotations

import numpy as np


def pick_variants(X: np.ndarray, variants: np.ndarray | None, share: float,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Replace a share of rows by one of their own audio-augmented variants.

    Args:
        X: float32, shape (n, *shape): the original rows.
        variants: float32, shape (n, k, *shape): k variants of each row (same clip), or None.
        share: probability that a row is replaced by one of its variants (chosen uniformly).
        rng: the random generator.

    Returns:
        (rows, choice): float32 array of shape (n, *shape); choice[i] = -1 for the original,
        else the variant index used for row i.
    """
    n = len(X)
    choice = np.full(n, -1, dtype=np.int64)
    if variants is None or share <= 0 or variants.shape[1] == 0:
        return np.array(X, dtype=np.float32), choice
    use = rng.random(n) < share
    choice[use] = rng.integers(0, variants.shape[1], size=int(use.sum()))
    out = np.array(X, dtype=np.float32)
    idx = np.flatnonzero(use)
    if len(idx):
        out[idx] = variants[idx, choice[idx]]
    return out, choice


def random_crops(X: np.ndarray, width: int, rng: np.random.Generator) -> np.ndarray:
    """One random window of `width` frames per row: (n, bands, frames) -> (n, bands, width)."""
    frames = X.shape[-1]
    if width >= frames:
        return X
    offsets = rng.integers(0, frames - width + 1, size=len(X))
    windows = np.lib.stride_tricks.sliding_window_view(X, width, axis=-1)
    return np.ascontiguousarray(windows[np.arange(len(X)), :, offsets, :])


def crop_offsets(frames: int, width: int, count: int) -> np.ndarray:
    """Start frames of `count` evenly spaced windows of `width` frames covering the matrix."""
    if width >= frames:
        return np.zeros(1, dtype=np.int64)
    return np.unique(np.rint(np.linspace(0, frames - width, max(count, 1))).astype(np.int64))


def crop(X: np.ndarray, offset: int, width: int) -> np.ndarray:
    """The window ``[offset, offset + width)`` of every row: (n, bands, width)."""
    if width >= X.shape[-1]:
        return X
    return X[..., offset:offset + width]


def spec_masks(X: np.ndarray, rng: np.random.Generator, *, time_masks: int, time_width: int,
               freq_masks: int, freq_width: int) -> np.ndarray:
    """SpecAugment-style masking (Park et al. 2019), in place, to 0 (the standardised mean).

    Each row gets `time_masks` masks of 0..time_width frames and `freq_masks` masks of
    0..freq_width bands, at uniform random positions.

    Args:
        X: float32, shape (n, bands, frames), standardised.

    Returns:
        X, modified in place.
    """
    n, bands, frames = X.shape
    for count, width, size, view in ((time_masks, time_width, frames, (n, 1, frames)),
                                     (freq_masks, freq_width, bands, (n, bands, 1))):
        if count <= 0 or width <= 0:
            continue
        pos = np.arange(size)
        for _ in range(count):
            w = rng.integers(0, min(width, size) + 1, size=n)
            start = rng.integers(0, size - w + 1)
            keep = (pos[None, :] < start[:, None]) | (pos[None, :] >= (start + w)[:, None])
            X *= keep.reshape(view).astype(X.dtype)
    return X


def mixup(X: np.ndarray, Y: np.ndarray, alpha: float,
          rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """mixup (Zhang et al. 2018): each row blended with a random partner row.

    Args:
        X: float32, shape (n, ...). Y: float32 one-hot (or soft) labels, shape (n, classes).
        alpha: Beta(alpha, alpha) parameter of the blend weight; 0 returns the inputs.

    Returns:
        (lam * X + (1 - lam) * X[perm], lam * Y + (1 - lam) * Y[perm]), lam per row.
    """
    if alpha <= 0:
        return X, Y
    lam = rng.beta(alpha, alpha, size=len(X)).astype(np.float32)
    perm = rng.permutation(len(X))
    shape = (len(X),) + (1,) * (X.ndim - 1)
    mixed_x = lam.reshape(shape) * X + (1 - lam.reshape(shape)) * X[perm]
    mixed_y = lam[:, None] * Y + (1 - lam[:, None]) * Y[perm]
    return mixed_x.astype(np.float32, copy=False), mixed_y.astype(np.float32, copy=False)
