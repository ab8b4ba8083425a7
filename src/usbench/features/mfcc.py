"""MFCC feature sets: ``mfcc-mean`` (the tutorials' 40-MFCC mean) and ``mfcc-stats``.

Clips of different lengths are computed in one batch: waveforms are zero-padded at the end,
and each clip keeps only its own ``1 + n_samples // hop_length`` frames. With librosa's
centred STFT and zero padding those frames are exactly the frames of the clip alone; the
80 dB floor of ``power_to_db`` is applied per clip, as a single-clip call would.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar

import numpy as np

from usbench.features.base import FeatureSet
from usbench.features.spectral import mel_power, power_db

STATS = ("min", "max", "median", "mean", "var", "skew", "kurtosis")


@lru_cache(maxsize=8)
def dct_matrix(n_mels: int, n_mfcc: int) -> np.ndarray:
    """The first `n_mfcc` rows of the orthonormal DCT-II over `n_mels` bands, built by
    ``scipy.fft.dct`` itself (librosa's MFCC transform): float32, shape (n_mfcc, n_mels)."""
    from scipy import fft

    return fft.dct(np.eye(n_mels), type=2, norm="ortho", axis=0)[:n_mfcc].astype(np.float32)


def log_mel(ys: list[np.ndarray], sr: int, *, n_fft: int, hop_length: int, n_mels: int,
            top_db: float = 80.0) -> tuple[np.ndarray, list[int]]:
    """librosa's ``power_to_db(melspectrogram(y), top_db=80)`` of each clip, the 80 dB floor
    taken from the clip's own frames.

    Returns:
        (float32 array of shape (len(ys), n_mels, longest clip's frames), each clip's own
        frame count ``1 + len(y) // hop_length``: its columns beyond are padding).
    """
    log = power_db(mel_power(ys, sr, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels))
    frames = [1 + y.size // hop_length for y in ys]
    for i, n in enumerate(frames):
        np.maximum(log[i], log[i, :, :n].max() - top_db, out=log[i])
    return log, frames


def mfcc_frames(ys: list[np.ndarray], sr: int, *, n_mfcc: int, n_fft: int, hop_length: int,
                n_mels: int, top_db: float = 80.0) -> list[np.ndarray]:
    """MFCCs of each clip, as ``librosa.feature.mfcc(y=y, sr=sr, ...)`` would give.

    Returns:
        One float32 array per clip, shape (n_mfcc, 1 + len(y) // hop_length).
    """
    log, frames = log_mel(ys, sr, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels,
                          top_db=top_db)
    # librosa.feature.mfcc(S=log, n_mfcc=n_mfcc): an orthonormal DCT-II over the mel axis.
    mfcc = np.matmul(dct_matrix(n_mels, n_mfcc), log)
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

    def _log_mel(self, ys: list[np.ndarray], sr: int) -> tuple[np.ndarray, list[int]]:
        self._check_sr(sr)
        return log_mel(ys, sr, n_fft=self.n_fft, hop_length=self.hop_length,
                       n_mels=self.n_mels)


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
        # The DCT is linear: the mean of the MFCCs is the DCT of the mean log-mel frame.
        log, frames = self._log_mel(ys, sr)
        means = np.stack([log[i, :, :n].mean(axis=1) for i, n in enumerate(frames)])
        return np.matmul(means, dct_matrix(self.n_mels, self.n_mfcc).T).astype(np.float32)


@dataclass(frozen=True, kw_only=True)
class MfccStats(_Mfcc):
    """20 MFCCs summarised per coefficient by min, max, median, mean, variance, skewness and
    kurtosis over frames: float32, shape (140,), laid out statistic-major
    (``[min_0..min_19, max_0..max_19, ...]``). Skewness and (Fisher) kurtosis are the biased
    sample moments of ``scipy.stats``; a coefficient constant over frames (up to rounding, see
    ``frame_stats``) gets 0 for both.
    """

    name: ClassVar[str] = "mfcc-stats"
    version: ClassVar[int] = 2
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
            out[idx] = np.concatenate(frame_stats(m), axis=1)
        return out


# A coefficient whose standard deviation over frames is at most this fraction of its clip's
# largest |MFCC| is constant up to float32 rounding (eps 1.2e-7, times the 128-term sums of the
# DCT and the mel filterbank): its skewness and kurtosis would be moments of rounding noise,
# and are defined as 0. Real coefficients vary by 1e-3 of that scale or more.
NEAR_CONSTANT_RTOL = 1e-5


def frame_stats(m: np.ndarray) -> list[np.ndarray]:
    """Per-coefficient statistics over frames, in the order of ``STATS``.

    Skewness and (Fisher) kurtosis are the biased sample moments of ``scipy.stats``, and 0 for
    a near-constant coefficient (see ``NEAR_CONSTANT_RTOL``), so that silent and near-silent
    clips get the same features whatever the BLAS kernel, batch or release that computed them.

    Args:
        m: float64, shape (n_clips, n_mfcc, n_frames): each clip's MFCCs.

    Returns:
        Seven float64 arrays of shape (n_clips, n_mfcc).
    """
    mean = m.mean(-1)
    d = m - mean[..., None]
    d2 = d * d
    var = d2.mean(-1)
    m3, m4 = (d2 * d).mean(-1), (d2 * d2).mean(-1)
    scale = np.abs(m).max(axis=(-2, -1), keepdims=True)[..., 0]  # (n_clips, 1)
    flat = np.sqrt(var) <= NEAR_CONSTANT_RTOL * scale
    safe = np.where(flat, 1.0, var)
    skew = np.where(flat, 0.0, m3 / safe**1.5)
    kurt = np.where(flat, 0.0, m4 / safe**2 - 3.0)
    return [m.min(-1), m.max(-1), np.median(m, -1), mean, var, skew, kurt]
