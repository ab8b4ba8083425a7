"""Batched mel spectrograms: librosa's, for many equal-length clips at once.

``librosa.feature.melspectrogram(y=batch, ...)`` frames, windows and transforms the whole
batch, then applies a mel filterbank it builds on every call. Here the frames of two clips at
a time go through one real FFT (``scipy.fft``, single precision), and their power spectra,
still in the core's cache, straight through librosa's own filterbank, built once per (sr,
n_fft, n_mels). The filterbank is banded (each mel band covers a few FFT bins), so it is
applied block by block of ``MEL_BLOCK`` bands, each to the bins it covers: a sixth of the
dense product's work. Same framing as librosa's ``stft(center=True, pad_mode="constant")``
with a periodic Hann window: equal to librosa's within float32 rounding
(tests/features/test_spectral.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

# Clips whose frames are transformed together (measured on 512 us8k-dev clips, two threads: 2
# beats 1 by about 15 %, with half the GIL hand-overs; 4 spills out of the core's cache).
FFT_GROUP = 2
# Mel bands per block of the banded filterbank product (measured: 16 beats 8 and 32, and the
# dense product by 3x, at 128 bands of a 2,048-point FFT).
MEL_BLOCK = 16


@lru_cache(maxsize=16)
def mel_basis(sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    """librosa's mel filterbank, transposed: float32, shape (1 + n_fft // 2, n_mels).

    Kept in the cache folder (``filterbanks/``, named by the librosa version that built it):
    building it imports librosa and compiles its numba code, about 0.3 s of every process's
    start-up, more than a 300-clip build's FFTs.
    """
    from importlib.metadata import version

    from usbench.paths import cache_dir

    shape = (1 + n_fft // 2, n_mels)
    path = (cache_dir() / "filterbanks"
            / f"mel-{sr}-{n_fft}-{n_mels}-librosa-{version('librosa')}.npy")
    try:
        basis = np.load(path)
        if basis.shape == shape and basis.dtype == np.float32:
            return basis
    except (OSError, ValueError, EOFError):
        pass  # absent or damaged: built again below
    import librosa

    from usbench.cache import atomic_write, save_npy

    basis = np.ascontiguousarray(librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels).T,
                                 dtype=np.float32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: save_npy(tmp, basis))
    except OSError:
        pass  # a read-only cache folder costs the rebuild next time, never a wrong value
    return basis


@lru_cache(maxsize=16)
def mel_blocks(sr: int, n_fft: int, n_mels: int) -> tuple[tuple[int, int, int, int], ...]:
    """The filterbank's non-zero blocks: (first band, end band, first bin, end bin) per block
    of ``MEL_BLOCK`` bands; a block of all-zero bands has first bin == end bin."""
    nonzero = mel_basis(sr, n_fft, n_mels) != 0
    blocks = []
    for a in range(0, n_mels, MEL_BLOCK):
        b = min(a + MEL_BLOCK, n_mels)
        bins = np.flatnonzero(nonzero[:, a:b].any(axis=1))
        lo, hi = (int(bins[0]), int(bins[-1]) + 1) if bins.size else (0, 0)
        blocks.append((a, b, lo, hi))
    return tuple(blocks)


@lru_cache(maxsize=16)
def hann(n_fft: int) -> np.ndarray:
    """The periodic Hann window librosa's STFT uses (``scipy.signal.get_window("hann", n_fft,
    fftbins=True)``, without importing scipy.signal): float32, shape (n_fft,)."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)


def power_db(power: np.ndarray, amin: float = 1e-10) -> np.ndarray:
    """``librosa.power_to_db(power, ref=1.0, amin=amin, top_db=None)``: 10 log10(max(amin,
    power)), in place when `power` is float32; amin < 1."""
    out = np.maximum(power, amin, out=power if power.dtype == np.float32 else None)
    np.log10(out, out=out)
    out *= 10.0
    return out


def mel_power(ys: Sequence[np.ndarray], sr: int, *, n_fft: int, hop_length: int, n_mels: int,
              length: int | None = None) -> np.ndarray:
    """Mel power spectrogram of each waveform, cut or zero-padded at the end to `length`
    samples, as ``librosa.feature.melspectrogram(y=padded, sr=sr, n_fft=..., hop_length=...,
    n_mels=...)``.

    Args:
        ys: float32 waveforms, shape (n_samples,) each (or the rows of one 2-D array).
        length: samples per clip; default, the longest clip's.

    Returns:
        float32, shape (len(ys), n_mels, 1 + length // hop_length).
    """
    from scipy import fft

    n = len(ys)
    length = max(y.size for y in ys) if length is None else length
    frames, half = 1 + length // hop_length, n_fft // 2
    basis, blocks, window = mel_basis(sr, n_fft, n_mels), mel_blocks(sr, n_fft, n_mels), hann(n_fft)
    mel = np.empty((n, n_mels, frames), dtype=np.float32)
    # FFT_GROUP clips at a time, in buffers reused across groups: their frames, spectra and
    # power stay in the core's cache. Each clip is copied (cut or padded) straight into the
    # centred, zero-padded frame source: no padded copy of the whole batch.
    group = min(FFT_GROUP, n)
    padded = np.zeros((group, length + 2 * half), dtype=np.float32)
    windowed = np.empty((group, frames, n_fft), dtype=np.float32)
    power = np.empty((group * frames, 1 + half), dtype=np.float32)
    bands = np.zeros((group * frames, n_mels), dtype=np.float32)  # all-zero bands stay 0
    view = np.lib.stride_tricks.sliding_window_view(padded, n_fft, axis=-1)[:, ::hop_length]
    for i in range(0, n, group):
        g = min(group, n - i)
        for j in range(g):
            y = ys[i + j]
            k = min(y.size, length)
            padded[j, half:half + k] = y[:k]
            padded[j, half + k:half + length] = 0
        np.multiply(view[:g], window, out=windowed[:g])
        spec = fft.rfft(windowed[:g], axis=-1).reshape(g * frames, 1 + half)
        rows = power[:g * frames]
        np.abs(spec, out=rows)
        np.square(rows, out=rows)
        out = bands[:g * frames]
        for a, b, lo, hi in blocks:
            if hi > lo:
                np.matmul(rows[:, lo:hi], basis[lo:hi, a:b], out=out[:, a:b])
        mel[i:i + g] = out.reshape(g, frames, n_mels).transpose(0, 2, 1)
    return mel
