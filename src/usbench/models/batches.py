"""Training-time transforms of feature rows, and the test-time crop windows.

Pure numpy, seeded by the caller's ``numpy.random.Generator``; no Keras. The Keras families
draw an epoch's random choices once (``variant_choice``, ``crop_starts``, ``mask_plan``,
``mixup_plan``), then apply them a few batches at a time to rows gathered by index
(``gather``, ``crop_rows``, ``apply_masks``, ``mix``), so no epoch-sized copy of the rows is
made; ``pick_variants``, ``random_crops``, ``spec_masks`` and ``mixup`` do the same to whole
arrays. Only the training part sees these: nothing here is ever applied to validation or
test rows except ``crop_offsets`` / ``crop``, which take fixed, evenly spaced windows for
prediction.

Shapes: vector rows are (n, d); matrix rows are (n, bands, frames) in standardised units.
"""

from __future__ import annotations

import numpy as np


def variant_choice(n: int, k: int, share: float, rng: np.random.Generator) -> np.ndarray:
    """Which audio variant each of `n` rows trains on this epoch.

    Args:
        k: variants per row (0: none). share: probability that a row is replaced by one of
            its variants (chosen uniformly).

    Returns:
        int64, shape (n,): -1 for the original row, else the variant index.
    """
    choice = np.full(n, -1, dtype=np.int64)
    if k == 0 or share <= 0:
        return choice
    use = rng.random(n) < share
    choice[use] = rng.integers(0, k, size=int(use.sum()))
    return choice


def gather(X: np.ndarray, variants: np.ndarray | None, rows: np.ndarray,
           picked: np.ndarray) -> np.ndarray:
    """Rows `rows` of X, each replaced by its variant ``picked`` where that is >= 0.

    Args:
        X: shape (n, *shape). variants: shape (n, k, *shape), or None when `picked` is -1
            everywhere. rows: int indices into X. picked: int, shape (len(rows),).

    Returns:
        A new float32 array, shape (len(rows), *shape).
    """
    out = np.asarray(X[rows], dtype=np.float32)
    use = np.flatnonzero(picked >= 0)
    if len(use):
        out[use] = variants[rows[use], picked[use]]
    return out


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
    choice = variant_choice(len(X), 0 if variants is None else variants.shape[1], share, rng)
    return gather(X, variants, np.arange(len(X)), choice), choice


def crop_starts(n: int, frames: int, width: int, rng: np.random.Generator) -> np.ndarray | None:
    """Random start frames of one `width`-frame window per row (None: no crop)."""
    if width >= frames:
        return None
    return rng.integers(0, frames - width + 1, size=n)


def crop_rows(X: np.ndarray, starts: np.ndarray | None, width: int) -> np.ndarray:
    """Each row's window from its start frame: (n, bands, frames) -> (n, bands, width)."""
    if starts is None:
        return X
    windows = np.lib.stride_tricks.sliding_window_view(X, width, axis=-1)
    return np.ascontiguousarray(windows[np.arange(len(X)), :, starts, :])


def random_crops(X: np.ndarray, width: int, rng: np.random.Generator) -> np.ndarray:
    """One random window of `width` frames per row: (n, bands, frames) -> (n, bands, width)."""
    return crop_rows(X, crop_starts(len(X), X.shape[-1], width, rng), width)


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


def mask_plan(n: int, bands: int, frames: int, rng: np.random.Generator, *, time_masks: int,
              time_width: int, freq_masks: int, freq_width: int) -> list[tuple]:
    """The SpecAugment masks of `n` rows (see ``spec_masks``): a list of (axis, start, width),
    axis -1 (frames) or -2 (bands), start and width int arrays of shape (n,)."""
    plan = []
    for axis, count, width, size in ((-1, time_masks, time_width, frames),
                                     (-2, freq_masks, freq_width, bands)):
        if count <= 0 or width <= 0:
            continue
        for _ in range(count):
            w = rng.integers(0, min(width, size) + 1, size=n)
            start = rng.integers(0, size - w + 1)
            plan.append((axis, start, w))
    return plan


def apply_masks(X: np.ndarray, plan: list[tuple], rows: np.ndarray) -> np.ndarray:
    """The masks of `plan` for rows `rows` set to 0 in X (shape (len(rows), bands, frames)),
    in place; returns X."""
    n, bands, frames = X.shape
    for axis, start, w in plan:
        size, view = (frames, (n, 1, frames)) if axis == -1 else (bands, (n, bands, 1))
        pos = np.arange(size)
        first, end = start[rows][:, None], (start + w)[rows][:, None]
        keep = (pos[None, :] < first) | (pos[None, :] >= end)
        X *= keep.reshape(view).astype(X.dtype)
    return X


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
    plan = mask_plan(n, bands, frames, rng, time_masks=time_masks, time_width=time_width,
                     freq_masks=freq_masks, freq_width=freq_width)
    return apply_masks(X, plan, np.arange(n))


def mixup_plan(n: int, alpha: float, rng: np.random.Generator
               ) -> tuple[np.ndarray, np.ndarray] | None:
    """mixup's draws for `n` rows: (blend weight float32 (n,), partner row (n,)), or None
    for alpha 0."""
    if alpha <= 0:
        return None
    lam = rng.beta(alpha, alpha, size=n).astype(np.float32)
    return lam, rng.permutation(n)


def mix(X: np.ndarray, X_partner: np.ndarray, Y: np.ndarray, Y_partner: np.ndarray,
        lam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``lam * X + (1 - lam) * X_partner`` and the same of the labels, lam per row."""
    shape = (len(X),) + (1,) * (X.ndim - 1)
    mixed_x = lam.reshape(shape) * X + (1 - lam.reshape(shape)) * X_partner
    mixed_y = lam[:, None] * Y + (1 - lam[:, None]) * Y_partner
    return mixed_x.astype(np.float32, copy=False), mixed_y.astype(np.float32, copy=False)


def mixup(X: np.ndarray, Y: np.ndarray, alpha: float,
          rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """mixup (Zhang et al. 2018): each row blended with a random partner row.

    Args:
        X: float32, shape (n, ...). Y: float32 one-hot (or soft) labels, shape (n, classes).
        alpha: Beta(alpha, alpha) parameter of the blend weight; 0 returns the inputs.

    Returns:
        (lam * X + (1 - lam) * X[perm], lam * Y + (1 - lam) * Y[perm]), lam per row.
    """
    plan = mixup_plan(len(X), alpha, rng)
    if plan is None:
        return X, Y
    lam, perm = plan
    return mix(X, X[perm], Y, Y[perm], lam)
