"""The feature-set contract: a pure function of one waveform, with a version and a shape.

Extractors never read files, cache, or normalise across clips (that is fit-time work).
``extract_batch`` computes many clips at once and must equal ``extract`` clip by clip.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from usbench.errors import FeatureError


@dataclass(frozen=True, kw_only=True)
class FeatureSet:
    """Base of every feature set.

    Attributes:
        sr: sample rate in Hz the waveforms must have (the cache resamples to it).
    Class attributes:
        name: registry name; version: bump when the output changes for the same fields;
        kind: "vector" or "matrix"; summary: one line for ``usbench features ls``.
    """

    name: ClassVar[str]
    version: ClassVar[int]
    kind: ClassVar[str]
    summary: ClassVar[str]
    dtype: ClassVar[np.dtype] = np.dtype(np.float32)

    sr: int = 22050

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one clip's features."""
        raise NotImplementedError

    def spec(self) -> dict:
        """Everything that determines the output: name, version and every field."""
        return {"name": self.name, "version": self.version, **dataclasses.asdict(self)}

    def extract(self, y: np.ndarray, sr: int) -> np.ndarray:
        """Features of one clip.

        Args:
            y: float32 mono waveform, shape (n_samples,), n_samples >= 1.
            sr: its sample rate in Hz; must equal ``self.sr``.

        Returns:
            float32 array of shape ``self.shape``.
        """
        return self.extract_batch([y], sr)[0]

    def extract_batch(self, ys: list[np.ndarray], sr: int) -> np.ndarray:
        """Features of many clips: float32, shape (len(ys), *self.shape)."""
        raise NotImplementedError

    def _check_sr(self, sr: int) -> None:
        if sr != self.sr:
            raise FeatureError(
                f"Feature set '{self.name}' expects audio at {self.sr} Hz but got {sr} Hz. "
                "Resample with usbench.audio.load(path, sr=feature_set.sr)."
            )


@dataclass(frozen=True, kw_only=True)
class FixedWindow(FeatureSet):
    """A spectrogram of the first ``window_s`` seconds of a clip, shorter clips zero-padded at
    the end: ``frames = 1 + window_s * sr // hop_length`` columns of ``n_fft``-sample windows.
    """

    n_fft: int = 1024
    hop_length: int = 512
    window_s: float = 4.0

    @property
    def n_samples(self) -> int:
        return int(round(self.window_s * self.sr))

    @property
    def n_frames(self) -> int:
        return 1 + self.n_samples // self.hop_length


def pad_stack(ys: list[np.ndarray], length: int | None = None) -> np.ndarray:
    """Zero-pad (or cut) waveforms at the end to a common length: float32 (n, length)."""
    length = max(y.size for y in ys) if length is None else length
    out = np.zeros((len(ys), length), dtype=np.float32)
    for i, y in enumerate(ys):
        n = min(y.size, length)
        out[i, :n] = y[:n]
    return out
