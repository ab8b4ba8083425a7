"""Batched power and mel spectrograms: librosa's, for many equal-length clips at once.

``librosa.feature.melspectrogram(y=batch, ...)`` frames, windows and transforms the whole
batch, then applies a mel filterbank it builds on every call. Here the frames of a few clips
at a time go through one real FFT (``scipy.fft``, single precision, so they stay in cache),
and all frames of the batch through one matrix product with librosa's own filterbank, built
once per (sr, n_fft, n_mels). Same framing as librosa's ``stft(center=True,
pad_mode="constant")`` with a periodic Hann window: equal to librosa's within float32 rounding
(tests/features/test_spectral.py).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

# Clips whose frames are transformed together: their windowed frames (4 x 173 x 2,048 float32,
# 5.7 MB at the MFCC defaults) stay in cache.
FFT_GROUP = 4


@lru_cache(maxsize=16)
def mel_basis(sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    """librosa's mel filterbank, transposed: float32, shape (1 + n_fft // 2, n_mels)."""
    import librosa

    return np.ascontiguousarray(librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels).T,
                                dtype=np.float32)


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


def power_frames(batch: np.ndarray, n_fft: int, hop_length: int) -> np.ndarray:
    """|STFT|^2 of each row of `batch`, centred and zero-padded like librosa's.

    Args:
        batch: float32 waveforms of equal length L, shape (n, L).

    Returns:
        float32, shape (n, 1 + L // hop_length, 1 + n_fft // 2): frames, then frequency bins.
    """
    from scipy import fft

    n, length = batch.shape
    frames, half = 1 + length // hop_length, n_fft // 2
    out = np.empty((n, frames, 1 + half), dtype=np.float32)
    window = hann(n_fft)
    group = min(FFT_GROUP, n)
    padded = np.zeros((group, length + 2 * half), dtype=np.float32)  # centred, zero-padded
    windowed = np.empty((group, frames, n_fft), dtype=np.float32)
    for a in range(0, n, group):
        g = min(group, n - a)
        padded[:g, half:half + length] = batch[a:a + g]
        view = np.lib.stride_tricks.sliding_window_view(padded[:g], n_fft, axis=-1)
        np.multiply(view[:, ::hop_length], window, out=windowed[:g])
        spec = fft.rfft(windowed[:g], axis=-1, overwrite_x=True)
        power = out[a:a + g]
        np.multiply(spec.real, spec.real, out=power)
        power += spec.imag * spec.imag
    return out


def mel_power(batch: np.ndarray, sr: int, *, n_fft: int, hop_length: int,
              n_mels: int) -> np.ndarray:
    """Mel power spectrogram of each row of `batch`, as
    ``librosa.feature.melspectrogram(y=row, sr=sr, n_fft=..., hop_length=..., n_mels=...)``.

    Returns:
        float32, shape (n, n_mels, 1 + L // hop_length).
    """
    power = power_frames(batch, n_fft, hop_length)
    n, frames, bins = power.shape
    mel = power.reshape(n * frames, bins) @ mel_basis(sr, n_fft, n_mels)
    return np.ascontiguousarray(mel.reshape(n, frames, n_mels).transpose(0, 2, 1))
