"""``logmel``: a 128-band log-mel spectrogram of a fixed 4 s window, for the CNN."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from usbench.features.base import FixedWindow
from usbench.features.spectral import mel_power, power_db


@dataclass(frozen=True, kw_only=True)
class LogMel(FixedWindow):
    """Log-power mel spectrogram (dB re 1.0, floor at ``amin``) of the first ``window_s``
    seconds, shorter clips zero-padded at the end: float32, shape (n_mels, frames) with
    ``frames = 1 + window_s * sr // hop_length`` (173 at the defaults).
    """

    name: ClassVar[str] = "logmel"
    version: ClassVar[int] = 1
    kind: ClassVar[str] = "matrix"
    summary: ClassVar[str] = "128-band log-mel spectrogram, fixed 4 s window (CNN input)"

    n_mels: int = 128
    amin: float = 1e-10

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.n_mels, self.n_frames)

    def extract_batch(self, ys: list[np.ndarray], sr: int) -> np.ndarray:
        self._check_sr(sr)
        power = mel_power(ys, sr, n_fft=self.n_fft, hop_length=self.hop_length,
                          n_mels=self.n_mels, length=self.n_samples)
        return power_db(power, amin=self.amin)
