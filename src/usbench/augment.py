"""Audio-domain augmentation: SB-CNN's deformations, computed once per clip and cached.

Salamon & Bello (2017) train SB-CNN on deformed copies of every training clip: time
stretching, pitch shifting, dynamic range compression and added background noise. Here each
clip gets ``variants`` deformed copies; copy i applies family ``families[i % len(families)]``
with a parameter drawn from that family's values by a generator seeded with the spec's seed
and the clip id, so a clip's variants never depend on chunking, worker count or fold.

The signal processing is the field's libraries': ``librosa.effects.time_stretch`` and
``pitch_shift``, and Spotify's ``pedalboard.Compressor``; the noise is Gaussian at a random
signal-to-noise ratio (SB-CNN mixed in recorded street ambience, which this repository cannot
ship). Variants are features of training rows only: ``usbench.cv`` hands a fit the variants of
its training clips, never those of a test clip.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import math
import warnings
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from usbench.errors import ConfigError

FAMILIES = ("time_stretch", "pitch_shift", "drc", "noise")
PREFIX = "augment."


@dataclass(frozen=True, kw_only=True)
class AudioAugment:
    """One augmentation spec (part of the variants' cache key and of the run's config id).

    Attributes:
        variants: deformed copies per clip.
        families: deformations, applied in turn (copy i uses ``families[i % len]``).
        time_stretch: playback-rate factors (SB-CNN: 0.81, 0.93, 1.07, 1.23).
        pitch_shift: shifts in semitones (SB-CNN's PS1 and PS2 sets).
        drc_ratio: compression ratios; the threshold lies ``drc_threshold_db`` below the
            clip's peak, attack 1 ms, release 100 ms.
        drc_threshold_db: compressor threshold relative to the clip's peak level, dB (< 0).
        noise_snr_db: (low, high) signal-to-noise ratio in dB of the added Gaussian noise.
        seed: seeds every random choice, with the clip id.
    """

    version: ClassVar[int] = 1

    variants: int = 4
    families: tuple[str, ...] = FAMILIES
    time_stretch: tuple[float, ...] = (0.81, 0.93, 1.07, 1.23)
    pitch_shift: tuple[float, ...] = (-3.5, -2.5, -2.0, -1.0, 1.0, 2.0, 2.5, 3.5)
    drc_ratio: tuple[float, ...] = (2.0, 4.0, 8.0)
    drc_threshold_db: float = -20.0
    noise_snr_db: tuple[float, ...] = (10.0, 30.0)
    seed: int = 0

    def spec(self) -> dict:
        """Everything that determines the variants: version and every field."""
        return {"version": self.version, **dataclasses.asdict(self)}

    def check(self) -> AudioAugment:
        """Raise ConfigError for any value out of range; return self."""
        def bad(key: str, must: str) -> ConfigError:
            example = _format(getattr(AudioAugment(), key))
            return ConfigError(
                f"Augmentation parameter '{key}' must be {must}, got "
                f"{_format(getattr(self, key))}. Example: --set {PREFIX}{key}={example}"
            )

        if not 1 <= self.variants <= 64:
            raise bad("variants", "an int in [1, 64]")
        if not self.families or any(f not in FAMILIES for f in self.families):
            raise bad("families", f"one or more of {', '.join(FAMILIES)}")
        used = set(self.families)
        if "time_stretch" in used and not (
                self.time_stretch and all(0.5 <= r <= 2.0 for r in self.time_stretch)):
            raise bad("time_stretch", "rates in [0.5, 2]")
        if "pitch_shift" in used and not (
                self.pitch_shift and all(-12 <= s <= 12 for s in self.pitch_shift)):
            raise bad("pitch_shift", "semitones in [-12, 12]")
        if "drc" in used and not (self.drc_ratio and all(r >= 1 for r in self.drc_ratio)):
            raise bad("drc_ratio", "ratios >= 1")
        if "drc" in used and not -60 <= self.drc_threshold_db < 0:
            raise bad("drc_threshold_db", "a number of dB in [-60, 0)")
        snr = self.noise_snr_db
        if "noise" in used and not (len(snr) == 2 and -10 <= snr[0] <= snr[1] <= 60):
            raise bad("noise_snr_db", "two numbers low,high of dB with -10 <= low <= high <= 60")
        return self

    def make(self, y: np.ndarray, sr: int, clip_id: str) -> list[np.ndarray]:
        """The deformed copies of one clip.

        Args:
            y: float32 mono waveform, shape (n_samples,). sr: its sample rate in Hz.
            clip_id: the clip's id (seeds the draws with ``seed``).

        Returns:
            ``variants`` float32 waveforms at `sr` (time stretching changes their length).
        """
        digest = int.from_bytes(hashlib.sha256(clip_id.encode()).digest()[:8], "little")
        rng = np.random.default_rng([self.seed, digest])
        out = []
        for i in range(self.variants):
            family = self.families[i % len(self.families)]
            out.append(np.asarray(self._apply(family, y, sr, rng), dtype=np.float32))
        return out

    def _apply(self, family: str, y: np.ndarray, sr: int, rng: np.random.Generator):
        import librosa

        with warnings.catch_warnings():
            # librosa 1.0 warns about its own deprecated defaults inside the phase vocoder.
            warnings.filterwarnings("ignore", message=".*parameter is deprecated",
                                    category=FutureWarning)
            warnings.filterwarnings("ignore", message="n_fft=.*is too large")
            # Its phase vocoder casts a NaN it never uses (the output stays finite).
            warnings.filterwarnings("ignore", message="invalid value encountered in cast",
                                    category=RuntimeWarning)
            if family == "time_stretch":
                return librosa.effects.time_stretch(y, rate=float(rng.choice(self.time_stretch)))
            if family == "pitch_shift":
                return librosa.effects.pitch_shift(
                    y, sr=sr, n_steps=float(rng.choice(self.pitch_shift)))
        if family == "drc":
            import pedalboard

            peak = float(np.max(np.abs(y))) if y.size else 0.0
            if peak <= 0:
                return y
            threshold = 20 * math.log10(peak) + self.drc_threshold_db
            comp = pedalboard.Compressor(threshold_db=threshold,
                                         ratio=float(rng.choice(self.drc_ratio)),
                                         attack_ms=1.0, release_ms=100.0)
            return comp(y.astype(np.float32), sr)
        snr = rng.uniform(self.noise_snr_db[0], self.noise_snr_db[1])
        power = float(np.mean(np.square(y, dtype=np.float64))) if y.size else 0.0
        noise = rng.standard_normal(y.size)
        return y + math.sqrt(power / 10 ** (snr / 10)) * noise


def parse(overrides: dict[str, str] | None) -> AudioAugment:
    """An AudioAugment from ``--set augment.KEY=VALUE`` pairs (keys without the prefix).

    Raises:
        ConfigError: an unknown key, or a value of the wrong type or out of range.
    """
    fields = {f.name: f for f in dataclasses.fields(AudioAugment)}
    values = {}
    for key, text in (overrides or {}).items():
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1, cutoff=0.5)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(
                f"Unknown augmentation parameter '{key}'.{hint} "
                f"Valid: {', '.join(sorted(fields))}."
            )
        default = getattr(AudioAugment(), key)
        values[key] = _convert(key, text, default)
    return AudioAugment(**values).check()


def _convert(key: str, text: object, default: object) -> object:
    try:
        if isinstance(default, tuple):
            parts = [p.strip() for p in str(text).strip("()[]").split(",") if p.strip()]
            if isinstance(default[0], str):
                return tuple(p.lower() for p in parts)
            values = tuple(float(p) for p in parts)
            if all(math.isfinite(v) for v in values):
                return values
        elif isinstance(default, int):
            return int(str(text))
        else:
            value = float(str(text))
            if math.isfinite(value):
                return value
    except ValueError:
        pass
    raise ConfigError(
        f"Augmentation parameter '{key}' must be "
        f"{'comma-separated values' if isinstance(default, tuple) else type(default).__name__},"
        f" got {text!r}. Example: --set {PREFIX}{key}={_format(default)}"
    )


def _format(value: object) -> str:
    if isinstance(value, tuple):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def split_overrides(overrides: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(model overrides, augmentation overrides without the ``augment.`` prefix)."""
    model = {k: v for k, v in overrides.items() if not k.startswith(PREFIX)}
    aug = {k[len(PREFIX):]: v for k, v in overrides.items() if k.startswith(PREFIX)}
    return model, aug
