"""HEAR-API modules as feature sets: ``--features hear:MODULE`` (``--weights PATH``, recorded
as ``hear:MODULE@PATH``).

A HEAR module (the HEAR 2021 benchmark's common API) defines ``load_model(model_file_path)``,
whose model has ``sample_rate`` (Hz) and ``scene_embedding_size``, and
``get_scene_embeddings(audio, model)``: audio (n_sounds, n_samples) at the model's rate, all of
one length, to (n_sounds, scene_embedding_size). Clips are resampled to the model's rate and
sent in batches of up to BATCH clips of equal length, as torch tensors when the model is a
torch module, TensorFlow tensors when it is a TensorFlow or Keras object, numpy arrays
otherwise. usbench never imports torch itself: a torch module brings its own.

Nothing is fitted. The cache key covers the module (its version and the sha256 of its source
file), the sha256 of the weights file, the model's rate and embedding size, and the runtime.
"""

from __future__ import annotations

import importlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from usbench.errors import ClipFeatureError, FeatureError
from usbench.features.base import FeatureSet
from usbench.features.cards import weights_digest

BATCH = 16  # clips per get_scene_embeddings call
PROBE_S = 1.0  # seconds of silence embedded once when the model is opened, to check it

_lock = threading.Lock()  # one call into a module at a time: modules need not be thread-safe


def split_name(text: str) -> tuple[str, str | None]:
    """``MODULE`` or ``MODULE@WEIGHTS`` -> (module, weights or None)."""
    module, sep, weights = text.partition("@")
    if not module or (sep and not weights):
        raise FeatureError(f"'hear:{text}' is not a HEAR module name. Use hear:MODULE, with "
                           "--weights PATH if its load_model needs a file.")
    return module, weights or None


def _framework(model) -> str:
    """'torch', 'tensorflow' or 'numpy': the tensors `model` takes, from its class's bases."""
    roots = {c.__module__.split(".")[0] for c in type(model).__mro__}
    if "torch" in roots:
        return "torch"
    return "tensorflow" if roots & {"tensorflow", "keras", "tf_keras"} else "numpy"


class _Opened:
    """A loaded HEAR model with what the key and the calls need."""

    def __init__(self, module_name: str, weights: str | None):
        where = f"HEAR module '{module_name}'"
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # as usbench's own Keras import
        try:
            self.module = importlib.import_module(module_name)
        except ImportError as exc:
            raise FeatureError(f"{where} cannot be imported ({exc}). Install it into this "
                               "environment or put its folder on PYTHONPATH.") from None
        for fn in ("load_model", "get_scene_embeddings"):
            if not callable(getattr(self.module, fn, None)):
                raise FeatureError(f"{where} ({self.module.__file__}) has no {fn}(). A HEAR "
                                   "module defines load_model(model_file_path) and "
                                   "get_scene_embeddings(audio, model).")
        self.weights_sha256 = ""
        if weights is not None:
            path = Path(weights)
            if not path.exists():
                raise FeatureError(f"Weights file {weights} for {where} not found. Check "
                                   "--weights.")
            self.weights_sha256 = weights_digest(str(path))
        try:
            self.model = (self.module.load_model(str(weights)) if weights is not None
                          else self.module.load_model())
        except Exception as exc:  # a module's own failure, reported in one line
            raise FeatureError(
                f"{where}: load_model({weights or ''!r}) failed ({type(exc).__name__}: {exc}). "
                + ("Check that --weights names this module's weights file." if weights else
                   "Pass its weights file with --weights PATH.")) from None
        for attr in ("sample_rate", "scene_embedding_size"):
            value = getattr(self.model, attr, None)
            if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 1:
                raise FeatureError(f"{where}: its model has no positive integer '{attr}' "
                                   f"(got {value!r}). A HEAR model states both sample_rate "
                                   "and scene_embedding_size.")
        self.sr = int(self.model.sample_rate)
        self.dim = int(self.model.scene_embedding_size)
        self.framework = _framework(self.model)
        self.name = module_name
        self.where = where
        self.source_sha256 = weights_digest(self.module.__file__) if self.module.__file__ else ""
        self.version = str(getattr(self.module, "__version__", ""))
        self.embed(np.zeros((1, int(PROBE_S * self.sr)), np.float32))  # fails here, not mid-build

    @property
    def runtime(self) -> str:
        fw = self.framework
        mod = importlib.import_module(fw)
        return f"{fw} {mod.__version__}"

    def embed(self, audio: np.ndarray) -> np.ndarray:
        """float32 (n, samples) -> float32 (n, dim), one call of get_scene_embeddings."""
        x = audio
        if self.framework == "torch":
            import torch

            x = torch.from_numpy(np.ascontiguousarray(audio))
        elif self.framework == "tensorflow":
            import tensorflow as tf

            x = tf.constant(audio)
        try:
            with _lock:
                if self.framework == "torch":
                    with torch.no_grad():
                        got = self.module.get_scene_embeddings(x, self.model)
                else:
                    got = self.module.get_scene_embeddings(x, self.model)
        except Exception as exc:  # a clip the module cannot embed (too short, say)
            raise ClipFeatureError(
                f"{self.where}: get_scene_embeddings failed on {audio.shape[0]} clip(s) of "
                f"{audio.shape[1]} samples ({type(exc).__name__}: {exc}). Check the module, "
                "or leave such clips out with --skip-bad.",
                f"{self.name}: {type(exc).__name__}: {exc}") from None
        if hasattr(got, "detach"):
            got = got.detach().cpu()
        got = np.asarray(got.numpy() if hasattr(got, "numpy") else got, np.float32)
        if got.shape != (audio.shape[0], self.dim):
            raise FeatureError(
                f"{self.where}: get_scene_embeddings returned shape {got.shape}, not "
                f"({audio.shape[0]}, {self.dim}) (n_sounds, scene_embedding_size). Fix the "
                "module's output or its scene_embedding_size.")
        return got


_opened: dict[tuple[str, str | None], _Opened] = {}


def open_module(module: str, weights: str | None) -> _Opened:
    """The loaded model of `module` with `weights`, once per process."""
    key = (module, weights)
    if key not in _opened:
        _opened[key] = _Opened(module, weights)
    return _opened[key]


@dataclass(frozen=True, kw_only=True)
class HearFeatures(FeatureSet):
    """Scene embeddings of a HEAR-API module.

    Attributes:
        module: the module's import name.
        weights: the file passed to its load_model, or None.
        sr: the model's sample rate.
    """

    name: ClassVar[str] = "hear"
    version: ClassVar[int] = 1
    kind: ClassVar[str] = "vector"
    pretrained: ClassVar[bool] = True

    module: str = ""
    weights: str | None = None

    @classmethod
    def from_module(cls, text: str) -> HearFeatures:
        """From ``MODULE`` or ``MODULE@WEIGHTS``: loads the model and checks it on a probe."""
        module, weights = split_name(text)
        opened = open_module(module, weights)
        return cls(module=module, weights=weights, sr=opened.sr)

    @property
    def _opened(self) -> _Opened:
        return open_module(self.module, self.weights)

    @property
    def label(self) -> str:
        return f"hear-{self.module}"

    @property
    def summary(self) -> str:  # type: ignore[override]
        return f"HEAR module {self.module}: scene embeddings [pretrained]"

    @property
    def shape(self) -> tuple[int, ...]:
        return (self._opened.dim,)

    def spec(self) -> dict:
        o = self._opened
        return {"name": self.name, "version": self.version, "module": self.module,
                "module_version": o.version, "module_sha256": o.source_sha256,
                "weights_sha256": o.weights_sha256, "sr": self.sr, "dim": o.dim,
                "runtime": o.runtime}

    def encoder_info(self) -> dict[str, str]:
        """What a run on this module records about it (``usbench.record.encoder_tags``): its
        name and weights digest, and the module's PRETRAINING, LICENCE and OVERLAP strings."""
        o = self._opened
        return {"name": f"hear:{self.module}", "weights_sha256": o.weights_sha256,
                "pretraining": str(getattr(o.module, "PRETRAINING", "unknown")),
                "licence": str(getattr(o.module, "LICENCE", "unknown")),
                "overlap": str(getattr(o.module, "OVERLAP", ""))}

    def extract_batch(self, ys: list[np.ndarray], sr: int) -> np.ndarray:
        self._check_sr(sr)
        out = np.empty((len(ys), *self.shape), np.float32)
        by_length: dict[int, list[int]] = {}
        for i, y in enumerate(ys):
            by_length.setdefault(len(y), []).append(i)
        for rows in by_length.values():
            for a in range(0, len(rows), BATCH):
                idx = rows[a:a + BATCH]
                out[idx] = self._opened.embed(np.stack([ys[i] for i in idx]).astype(np.float32))
        if not np.isfinite(out).all():
            raise ClipFeatureError(
                f"{self._opened.where} returned NaN or infinite embeddings. Check the module "
                "and its weights.", f"{self.module} returned NaN or inf")
        return out
