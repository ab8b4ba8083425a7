"""Pretrained encoders as feature sets: windows of each clip through a frozen network, pooled.

A clip is cut into ``window_s`` windows every ``hop_s`` seconds; a last window holding at least
``min_window_s`` seconds is kept, zero-padded, and a clip shorter than one window gives one
zero-padded window. The windows of every clip in a batch go through the network together, and
each clip's embeddings are pooled: ``mean`` (float32, shape (dim,)) or ``mean+max`` (shape
(2 * dim,), means first). Nothing is fitted: the features of a clip depend on that clip alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import ClassVar

import numpy as np

from usbench.errors import ClipFeatureError, FeatureError
from usbench.features.base import FeatureSet
from usbench.features.cards import EncoderCard, builtin_card, load_card, weights_digest


def windows_of(y: np.ndarray, card: EncoderCard) -> np.ndarray:
    """The windows of one clip: float32, shape (n_windows >= 1, card.window)."""
    starts = list(range(0, max(1, y.size - card.window + 1), card.hop))
    last = starts[-1] + card.hop
    # The tail after the last full window, if it holds min_window samples (and any).
    if last < y.size and y.size - last >= max(1, card.min_window) and y.size > card.window:
        starts.append(last)
    out = np.zeros((len(starts), card.window), np.float32)
    for i, s in enumerate(starts):
        piece = y[s:s + card.window]
        out[i, :piece.size] = piece
    return out


@dataclass(frozen=True, kw_only=True)
class EncoderFeatures(FeatureSet):
    """Pooled embeddings of a frozen encoder described by a card (see ``usbench.features.cards``).

    Attributes:
        card: the encoder card; sr equals its sample rate.
    """

    name: ClassVar[str] = "encoder"
    version: ClassVar[int] = 1
    kind: ClassVar[str] = "vector"
    pretrained: ClassVar[bool] = True

    card: EncoderCard = field(default=None)  # type: ignore[assignment]

    @classmethod
    def from_card(cls, path) -> EncoderFeatures:
        card = load_card(path)
        return cls(card=card, sr=card.sample_rate)

    @property
    def label(self) -> str:
        """The name runs and the cache file this encoder under."""
        return self.card.name

    @property
    def summary(self) -> str:  # type: ignore[override]
        return self.card.about.get("summary", f"{self.card.format} encoder {self.card.model}")

    @cached_property
    def digest(self) -> str:
        """sha256 of the model file: part of the cache key."""
        return weights_digest(self.card.model)

    def _runner(self):
        from usbench.features.runtimes import open_runner

        return open_runner(self.card, self.digest)

    @cached_property
    def dim(self) -> int:
        """Size of one window's embedding (opens the model: checks the card against it)."""
        return self._runner().dim

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.dim * (2 if self.card.pooling == "mean+max" else 1),)

    def spec(self) -> dict:
        from usbench.features.runtimes import runtime_version

        c = self.card
        return {"name": self.name, "version": self.version, "encoder": c.name,
                "weights_sha256": self.digest, "format": c.format, "sr": c.sample_rate,
                "window_s": c.window_s, "hop_s": c.hop_s, "min_window_s": c.min_window_s,
                "input": c.input, "embedding": c.embedding, "pooling": c.pooling,
                "runtime": runtime_version(c.format)}

    def encoder_info(self) -> dict[str, str]:
        """What a run on this encoder records about it (``usbench.record.encoder_tags``): its
        name and weights digest, and the card's pretraining, licence and overlap."""
        about = self.card.about
        return {"name": self.card.name, "weights_sha256": self.digest,
                "pretraining": about.get("pretraining", "unknown"),
                "licence": about.get("licence", "unknown"), "overlap": about.get("overlap", "")}

    def extract_batch(self, ys: list[np.ndarray], sr: int) -> np.ndarray:
        self._check_sr(sr)
        if not ys:
            return np.empty((0, *self.shape), np.float32)
        wins = [windows_of(y, self.card) for y in ys]
        emb = self._runner().embed(np.concatenate(wins))
        if emb.shape != (sum(len(w) for w in wins), self.dim):
            raise FeatureError(
                f"Encoder '{self.card.name}' returned embeddings of shape {emb.shape}, not "
                f"(windows, {self.dim}). Check 'embedding' in {self.card.path}.")
        out = np.empty((len(ys), *self.shape), np.float32)
        a = 0
        for i, w in enumerate(wins):
            e = emb[a:a + len(w)]
            a += len(w)
            out[i, :self.dim] = e.mean(axis=0)
            if self.card.pooling == "mean+max":
                out[i, self.dim:] = e.max(axis=0)
        if not np.isfinite(out).all():
            raise ClipFeatureError(
                f"Encoder '{self.card.name}' returned NaN or infinite embeddings. Check the "
                f"model file {self.card.model} and its input ('input', 'sample_rate' in "
                f"{self.card.path}).", f"encoder '{self.card.name}' returned NaN or inf")
        return out


def birdnet() -> EncoderFeatures:
    """The built-in BirdNET v2.4 encoder (its card ships in the package)."""
    return EncoderFeatures.from_card(builtin_card("birdnet"))
