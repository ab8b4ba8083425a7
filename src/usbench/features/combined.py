"""Combined feature sets (``birdnet+mfcc-stats``): the columns of cached vector sets, side by side.

Each part is built and cached on its own (its own key); a run concatenates them, in the order
named. Models standardise each column inside each training fold, so every part is scaled by
statistics of the training folds alone, as if it were used by itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from usbench.errors import ConfigError
from usbench.features.base import FeatureSet


@dataclass(frozen=True, kw_only=True)
class Combined(FeatureSet):
    """Several vector feature sets joined: float32, shape (sum of the parts' sizes,).

    Attributes:
        parts: the feature sets, in the order named.
        label: the name as given (``birdnet+mfcc-stats``).
    """

    name: ClassVar[str] = "combined"
    version: ClassVar[int] = 1
    kind: ClassVar[str] = "vector"

    parts: tuple[FeatureSet, ...] = ()
    label: str = ""

    @classmethod
    def of(cls, parts: list[FeatureSet], label: str) -> Combined:
        matrices = [p.name for p in parts if p.kind != "vector"]
        if matrices:
            raise ConfigError(
                f"Feature set '{matrices[0]}' gives one matrix per clip and cannot be joined "
                f"with others in '{label}'. Join vector sets only (e.g. birdnet+mfcc-stats).")
        return cls(parts=tuple(parts), label=label, sr=0)

    @property
    def pretrained(self) -> bool:  # type: ignore[override]
        return any(getattr(p, "pretrained", False) for p in self.parts)

    @property
    def summary(self) -> str:  # type: ignore[override]
        return " + ".join(p.summary for p in self.parts)

    @property
    def shape(self) -> tuple[int, ...]:
        return (sum(p.shape[0] for p in self.parts),)

    def spec(self) -> dict:
        return {"name": self.name, "version": self.version,
                "parts": [p.spec() for p in self.parts]}

    def encoder_info(self) -> dict[str, str]:
        """The encoder parts' ``encoder_info``, each field joined with ", "."""
        info: dict[str, str] = {}
        for p in self.parts:
            for k, v in (p.encoder_info() if hasattr(p, "encoder_info") else {}).items():
                info[k] = f"{info[k]}, {v}" if k in info and v else v
        return info

    def extract_batch(self, ys: list[np.ndarray], sr: int) -> np.ndarray:
        raise NotImplementedError("combined sets are built part by part; see runner")
