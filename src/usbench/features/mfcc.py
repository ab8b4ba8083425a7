"""MFCC feature sets: ``mfcc-mean`` (the tutorials' 40-MFCC mean) and ``mfcc-stats``.

Clips of different lengths are computed in one batch: waveforms are zero-padded at the end,
and each clip keeps only its own ``1 + n_samples // hop_length`` frames. With librosa's
centred STFT and zero padding those frames are exactly the frames of the clip alone; the
80 dB floor of ``power_to_db`` is applied per clip, as a single-clip call would.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from usbench.features.base import FeatureSet, pad_stack
from usbench.features.spectral import mel_power, power_db

STATS = ("min", "max", "median", "mean", "var", "skew", "kurtosis")


def mfcc_frames(ys: list[np.ndarray], sr: int, *, n_mfcc: int, n_fft: int, hop_length: int,
                n_mels: int, top_db: float = 80.0) -> list[np.ndarray]:
    """MFCCs of each clip, as ``librosa.feature.mfcc(y=y, sr=sr, ...)`` would give.

    Returns:
        One float32 array per clip, shape (n_mfcc, 1 + len(y) // hop_length).
    """
    from scipy import fft

    power = mel_power(pad_stack(ys), sr, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels)
    log = power_db(power)
    frames = [1 + y.size // hop_length for y in ys]
    for i, n in enumerate(frames):
        np.maximum(log[i], log[i, :, :n].max() - top_db, out=log[i])
    # librosa.feature.mfcc(S=log, n_mfcc=n_mfcc): an orthonormal DCT-II over the mel axis.
    mfcc = fft.dct(log, axis=-2, type=2, norm="ortho")[..., :n_mfcc, :]
    return [mfcc[i, :, :n] for i, n in enumerate(frames)]


def _by_frame_count(mats: list[np.ndarray]) -> dict[int, list[int]]:
    groups: dict[int, list[int]] = {}
    for i, m in enumerate(mats):
        groups.setdefault(m.shape[-1], []).append(i)
    return groups


@dataclass(frozen=True, kw_only=True)
class _Mfcc(FeatureSet):
    """Shared fields of the MFCC feature sets (librosa's defaults but for ``n_mfcc``)."""

    n_mfcc: int = 20
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 128

    def _frames(self, ys: list[np.ndarray], sr: int) -> list[np.ndarray]:
        self._check_sr(sr)
        return mfcc_frames(ys, sr, n_mfcc=self.n_mfcc, n_fft=self.n_fft,
                           hop_length=self.hop_length, n_mels=self.n_mels)


@dataclass(frozen=True, kw_only=True)
class MfccMean(_Mfcc):
    """Mean over frames of 40 MFCCs (the blog tutorials' feature): float32, shape (40,)."""

    name: ClassVar[str] = "mfcc-mean"
    version: ClassVar[int] = 1
    kind: ClassVar[str] = "vector"
    summary: ClassVar[str] = "mean over frames of 40 MFCCs (the tutorials' feature)"

    n_mfcc: int = 40

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.n_mfcc,)

    def extract_batch(self, ys: list[np.ndarray], sr: int) -> np.ndarray:
        return np.stack([m.mean(axis=1) for m in self._frames(ys, sr)]).astype(np.float32)


@dataclass(frozen=True, kw_only=True)
class MfccStats(_Mfcc):
    """20 MFCCs summarised per coefficient by min, max, median, mean, variance, skewness and
    kurtosis over frames: float32, shape (140,), laid out statistic-major
    (``[min_0..min_19, max_0..max_19, ...]``). Skewness and (Fisher) kurtosis are the biased
    sample moments of ``scipy.stats``; a coefficient constant over frames gets 0 for both.
    """

    name: ClassVar[str] = "mfcc-stats"
    version: ClassVar[int] = 1
    kind: ClassVar[str] = "vector"
    summary: ClassVar[str] = "20 MFCCs x (min, max, median, mean, var, skew, kurtosis)"

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.n_mfcc * len(STATS),)

    def extract_batch(self, ys: list[np.ndarray], sr: int) -> np.ndarray:
        mats = self._frames(ys, sr)
        out = np.empty((len(ys), *self.shape), dtype=np.float32)
        for idx in _by_frame_count(mats).values():
            m = np.stack([mats[i] for i in idx]).astype(np.float64)  # (g, n_mfcc, frames)
            mean = m.mean(-1)
            d = m - mean[..., None]
            d2 = d * d
            var = d2.mean(-1)  # the biased moments of scipy.stats.skew and .kurtosis
            m3, m4 = (d2 * d).mean(-1), (d2 * d2).mean(-1)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                skew = m3 / var**1.5
                kurt = m4 / var**2 - 3.0
            flat = var == 0
            parts = [m.min(-1), m.max(-1), np.median(m, -1), mean, var,
                     np.where(flat | ~np.isfinite(skew), 0.0, skew),
                     np.where(flat | ~np.isfinite(kurt), 0.0, kurt)]
            out[idx] = np.concatenate(parts, axis=1)
        return out
