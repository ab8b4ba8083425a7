"""The MLflow model of a ``--save-model`` run: audio file paths in, class and probabilities out.

A ``pyfunc`` model wrapping the saved bundle (the estimator fitted on every present fold, its
scaler inside, the class list, and the exact feature and decoder specs), so that
``mlflow.pyfunc.load_model("runs:/<id>/model").predict(pd.DataFrame({"path": [...]}))`` and
``mlflow models serve`` work with only usbench installed, and ``usbench predict`` loads the
same model. The native estimator stays reachable:
``load_model(uri).unwrap_python_model().bundle.estimator``.

Output columns: ``path``, ``class`` (the predicted class name, "" when the clip could not be
decoded), ``error`` ("" or the one-line reason) and ``proba.<class>`` for every class.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd

from usbench.errors import AudioError, ConfigError

PATH = "path"
PROBA = "proba."


def output_columns(classes) -> list[str]:
    return [PATH, "class", "error", *(f"{PROBA}{c}" for c in classes)]


def feature_set_from_spec(spec: dict, name: str | None = None):
    """Rebuild the exact feature set a model was trained on.

    Args:
        spec: the feature set's spec when the model was saved.
        name: the feature name the run was given (``birdnet``, ``encoder:CARD``, ``hear:M``):
            a pretrained encoder is opened again by name, and must still give `spec` (the same
            model file, weights and runtime).
    """
    from usbench.features import get_feature_set

    if spec["name"] in ("encoder", "hear"):
        fs = get_feature_set(name or "")
        if fs.spec() != spec:
            changed = sorted(k for k in {*spec, *fs.spec()} if spec.get(k) != fs.spec().get(k))
            raise ConfigError(
                f"The model was trained on '{name}', which now differs ({', '.join(changed)} "
                "changed). Restore the encoder it was trained with, or re-run the experiment "
                "(`usbench run ... --save-model`).")
        return fs
    fs = get_feature_set(spec["name"])
    if spec.get("version") != fs.version:
        raise ConfigError(
            f"The model was trained on '{spec['name']}' version {spec.get('version')}, but this "
            f"usbench computes version {fs.version}. Re-run the experiment with this version "
            "(`usbench run ... --save-model`), or predict with the usbench that saved it."
        )
    fields = {f.name for f in dataclasses.fields(fs)}
    return dataclasses.replace(fs, **{k: v for k, v in spec.items() if k in fields})


def classify(bundle, fs, paths) -> pd.DataFrame:
    """Decode, extract and classify each of `paths` with `bundle` (features `fs`).

    Returns:
        One row per path, columns ``output_columns(bundle.classes)``; an undecodable clip has
        its error and NaN probabilities, and the others are classified.
    """
    from usbench.audio import load

    rows = []
    for path in paths:
        row = {PATH: str(path), "class": "", "error": ""}
        try:
            y = load(path, sr=fs.sr)
        except AudioError as exc:
            row["error"] = str(exc)
            proba = np.full(len(bundle.classes), np.nan)
        else:
            x = fs.extract(y, fs.sr)[None].astype(np.float32)
            proba = np.asarray(bundle.estimator.predict_proba(x), dtype=np.float64)[0]
            row["class"] = bundle.classes[int(proba.argmax())]
        rows.append({**row, **{f"{PROBA}{c}": float(p) for c, p in zip(bundle.classes, proba,
                                                                        strict=True)}})
    return pd.DataFrame(rows, columns=output_columns(bundle.classes))


class AudioClassifier(mlflow.pyfunc.PythonModel):
    """The pyfunc flavour of a usbench model (see the module docstring)."""

    def load_context(self, context) -> None:
        from usbench.saved_model import bundle

        self.bundle = bundle.load(Path(context.artifacts["bundle"]))
        # Refuses a model whose feature set this usbench computes differently.
        self.feature_set = feature_set_from_spec(self.bundle.feature_spec,
                                                  self.bundle.meta.get("feature_name"))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        if isinstance(model_input, pd.DataFrame):
            paths = model_input[PATH].tolist()
        else:
            paths = list(model_input)
        return classify(self.bundle, self.feature_set, paths)


def signature(classes):
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    outputs = [ColSpec("string", PATH), ColSpec("string", "class"), ColSpec("string", "error")]
    outputs += [ColSpec("double", f"{PROBA}{c}") for c in classes]
    return ModelSignature(inputs=Schema([ColSpec("string", PATH)]), outputs=Schema(outputs))


def log_model(bundle_folder: Path, classes, example: str, register: str | None):
    """Log the pyfunc model of `bundle_folder` as ``model`` of the active run.

    Args:
        example: an audio file path for the input example (a training clip).
        register: model registry name, or None.
    """
    from usbench import __version__

    return mlflow.pyfunc.log_model(
        name="model", python_model=AudioClassifier(),
        artifacts={"bundle": str(bundle_folder)}, signature=signature(classes),
        input_example=pd.DataFrame({PATH: [example]}),
        pip_requirements=[f"usbench=={__version__}"], registered_model_name=register)
