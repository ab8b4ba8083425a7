"""``stft`` and ``stft-mag``: a linear-frequency spectrogram of a fixed 4 s window.

The input of the cats-and-dogs tutorials (an STFT "image" of the clip), so that pipeline can
be run under the fold protocol as is: 16 kHz, 512-sample (32 ms) Hann window, 256-sample hop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from usbench.features.base import FixedWindow, pad_stack


@dataclass(frozen=True, kw_only=True)
class Stft(FixedWindow):
    """Log-magnitude STFT (dB re 1.0, floor at ``amin``) of the first ``window_s`` seconds,
    shorter clips zero-padded at the end: float32, shape (1 + n_fft // 2, frames) with
    ``frames = 1 + window_s * sr // hop_length`` (257 x 251 at the defaults).
    """

    name: ClassVar[str] = "stft"
    version: ClassVar[int] = 1
    kind: ClassVar[str] = "matrix"
    summary: ClassVar[str] = "log-magnitude linear-frequency STFT (dB), 32 ms window, fixed 4 s"

    sr: int = 16000
    n_fft: int = 512
    hop_length: int = 256
    amin: float = 1e-5

    @property
    def shape(self) -> tuple[int, ...]:
        return (1 + self.n_fft // 2, self.n_frames)

    def magnitude(self, ys: list[np.ndarray], sr: int) -> np.ndarray:
        import librosa

        self._check_sr(sr)
        return np.abs(librosa.stft(pad_stack(ys, self.n_samples), n_fft=self.n_fft,
                                   hop_length=self.hop_length))

    def extract_batch(self, ys: list[np.ndarray], sr: int) -> np.ndarray:
        import librosa

        return librosa.amplitude_to_db(self.magnitude(ys, sr), ref=1.0, amin=self.amin,
                                       top_db=None).astype(np.float32)


@dataclass(frozen=True, kw_only=True)
class StftMagnitude(Stft):
    """Magnitude STFT (linear amplitude), otherwise as ``stft``: float32, shape
    (1 + n_fft // 2, frames)."""

    name: ClassVar[str] = "stft-mag"
    version: ClassVar[int] = 1
    summary: ClassVar[str] = "magnitude linear-frequency STFT, 32 ms window, fixed 4 s"

    def extract_batch(self, ys: list[np.ndarray], sr: int) -> np.ndarray:
        return self.magnitude(ys, sr).astype(np.float32)
