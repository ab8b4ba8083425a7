"""``usbench predict``: classify clips with the model a run saved (``--save-model``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from usbench.bundle import Bundle
from usbench.errors import AudioError, ConfigError


@dataclass(frozen=True)
class Prediction:
    """One clip: its top classes with probabilities, or the decoding error."""

    path: str
    top: list[tuple[str, float]]
    error: str | None = None


def feature_set_from_spec(spec: dict):
    """Rebuild the exact feature set a model was trained on."""
    from usbench.features import get_feature_set

    fs = get_feature_set(spec["name"])
    if spec.get("version") != fs.version:
        raise ConfigError(
            f"The model was trained on '{spec['name']}' version {spec.get('version')}, but this "
            f"usbench computes version {fs.version}. Re-run the experiment with this version."
        )
    fields = {f.name for f in dataclasses.fields(fs)}
    return dataclasses.replace(fs, **{k: v for k, v in spec.items() if k in fields})


def predict_files(bundle: Bundle, paths: list[str], k: int = 3) -> Iterator[Prediction]:
    """Decode, extract and classify each clip; undecodable clips yield their error."""
    from usbench.audio import load

    fs = feature_set_from_spec(bundle.feature_spec)
    for path in paths:
        try:
            y = load(path, sr=fs.sr)
        except AudioError as exc:
            yield Prediction(path=path, top=[], error=str(exc))
            continue
        x = fs.extract(y, fs.sr)[None].astype(np.float32)
        proba = np.asarray(bundle.estimator.predict_proba(x))[0]
        order = np.argsort(proba)[::-1][:k]
        yield Prediction(path=path, top=[(bundle.classes[i], float(proba[i])) for i in order])


def fetch_bundle(run_id: str, tracking_uri: str, dest: Path) -> Bundle:
    """Download the ``model/`` artifacts of `run_id` and load them."""
    from usbench import bundle, tracking

    folder = tracking.download_model(tracking_uri, run_id, dest)
    return bundle.load(folder)
